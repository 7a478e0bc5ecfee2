"""`exporters schema`: a valid draft 2020-12 JSON Schema, made from the validator's
own tables, that accepts every good file and the built-in profiles and rejects
the mistakes a schema can see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ig_metrics.catalog.directories import BUILTIN_PROFILES_DIR
from ig_metrics.catalog.schema import json_schema
from ig_metrics.catalog.tables import EXPORTER_TYPES, PROFILE_FIELDS, exporter_fields
from ig_metrics.cli import app

# jsonschema is a test-only dependency (the `test` extra); without it these tests
# cannot check anything, so they say so instead of passing.
jsonschema = pytest.importorskip("jsonschema", reason="pip install jsonschema (test extra)")

CORPUS = Path(__file__).parent / "config"
ACCEPTED = sorted([
    *CORPUS.glob("good/**/*.y*ml"), *CORPUS.glob("warn/*.yaml"),
    CORPUS / "secrets" / "valid.yaml", *BUILTIN_PROFILES_DIR.glob("*.yaml"),
])
# Mistakes a schema can see; the others (duplicates, files, env, names across
# files) only the loader can.
REJECTED = [
    "unknown-key.yaml", "unknown-type.yaml", "wrong-type.yaml", "missing-required.yaml",
    "bad-duration.yaml", "bad-port.yaml", "bad-grpc-endpoint.yaml", "bad-http-endpoint.yaml",
    "profile-without-exporters.yaml", "invalid-name.yaml", "unknown-top-level-key.yaml",
    "not-a-mapping.yaml",
]


def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_valid_draft_2020_12() -> None:
    assert json_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator()


def test_accepted_corpus_is_not_empty() -> None:
    assert len(ACCEPTED) >= 10 and BUILTIN_PROFILES_DIR / "profiles.yaml" in ACCEPTED


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_accepts(path: Path) -> None:
    errors = [error.message for error in validator().iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("name", REJECTED)
def test_schema_rejects(name: str) -> None:
    document = yaml.safe_load((CORPUS / "bad" / name).read_text())
    assert not validator().is_valid(document)


@pytest.mark.parametrize(("fragment", "valid"), [
    ({"type": "console", "interval": "0s"}, False),
    ({"type": "console", "interval": "0.5s"}, True),
    ({"type": "console", "interval": "${env:IG_INTERVAL:-10s}"}, True),
    ({"type": "otlp-grpc", "endpoint": "localhost:4317", "insecure": "${env:INSECURE}"}, True),
    ({"type": "otlp-grpc", "endpoint": "localhost:4317", "insecure": "yes"}, False),
    ({"type": "otlp-grpc", "endpoint": "[::1]:4317"}, True),
    ({"type": "otlp-http", "endpoint": "http://localhost:4318"}, True),
    ({"type": "prometheus", "listen": ":65535"}, True),
    ({"type": "prometheus", "listen": ":65536"}, False),
    ({"type": "prometheus", "endpoint": "localhost:4317"}, False),
])
def test_schema_checks_values_per_type(fragment: dict, valid: bool) -> None:
    document = {"exporters": {"e": fragment}, "profiles": {"p": {"exporters": ["e"]}}}
    assert validator().is_valid(document) is valid


def test_schema_is_made_from_the_validator_tables() -> None:
    schema = json_schema()
    per_type = {rule["if"]["properties"]["type"]["const"]: rule["then"]["properties"]
                for rule in schema["$defs"]["exporter"]["allOf"]}
    assert list(per_type) == list(EXPORTER_TYPES)
    for name, properties in per_type.items():
        assert list(properties) == [f.key for f in exporter_fields(name)]
    assert list(schema["$defs"]["profile"]["properties"]) == [f.key for f in PROFILE_FIELDS]


def test_schema_command_prints_it() -> None:
    result = CliRunner().invoke(app, ["exporters", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json_schema()
