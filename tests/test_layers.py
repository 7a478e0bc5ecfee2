"""The packages of ig_metrics import only downwards, in the layer order that
docs/design.md writes ("## Layers"), and no module imports in a cycle. Reads
the source with ast: nothing is imported, so this runs in well under a second."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ig_metrics"
# Imports inside a function, each for a reason the import at the top would
# defeat: what costs start-up time (bcc, the kubernetes client, Rich's live
# view, every exporter type that loading a catalog takes in) is imported only
# by the command or the object that needs it, since every start of the command
# line (--help, shell completion) imports every command module.
DEFERRED_IMPORTS = {
    ("ig_metrics.cli.run", "ig_metrics.bpf.environment"),
    ("ig_metrics.cli.run", "ig_metrics.app.localrun"),      # the agent: bcc, LLVM
    ("ig_metrics.cli.run", "ig_metrics.catalog.loading"),
    ("ig_metrics.cli.exporters", "ig_metrics.catalog.loading"),
    ("ig_metrics.cli.exporters", "ig_metrics.catalog.listing"),
    ("ig_metrics.cli.exporters", "ig_metrics.catalog.schema"),
    ("ig_metrics.deploy.podprofiles", "ig_metrics.catalog.loading"),   # deploy's
    ("ig_metrics.k8s.attribution", "ig_metrics.k8s.pods"),    # the kubernetes client
    ("ig_metrics.cli.cluster", "ig_metrics.ui.cluster"),      # Rich's live view
    ("ig_metrics.cli.cluster", "ig_metrics.cluster.session"),   # the kubernetes client
    ("ig_metrics.cli.cluster", "ig_metrics.cluster.watch"),     # the kubernetes client
}


def documented_layers() -> dict[str, int]:
    """Package -> its layer (1 is the bottom), from docs/design.md's block
    under "## Layers": one line per layer, "N  package  package...". """
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("\n## Layers", 1)[1]
    block = section.split("```", 2)[1]
    layers: dict[str, int] = {}
    for line in block.splitlines():
        match = re.match(r"\s*(\d+)\s+([a-z0-9_ ]+?)\s*(?:#.*)?$", line)
        if match:
            for package in match.group(2).split():
                layers[package] = int(match.group(1))
    assert layers, "docs/design.md: no layer lines under '## Layers'"
    return layers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> list[tuple[str, bool]]:
    """(module imported, at top level) for every import of ours in `name`."""
    return _imports_in(MODULES[name])


@functools.cache
def _imports_in(path: Path) -> list[tuple[str, bool]]:
    name = next(module for module, where in MODULES.items() if where == path)
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for statement in tree.body
                 for node in ast.walk(statement)
                 if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef,
                                               ast.ClassDef))}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import"
            base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            if target == "ig_metrics" or target.startswith("ig_metrics."):
                found.append((target, id(node) in top_level))
    return found


def package_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_every_package_has_a_layer():
    layers = documented_layers()
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(layers), "docs/design.md's layers and ig_metrics/'s packages differ"


def test_packages_import_only_from_layers_below():
    layers = documented_layers()
    upward = []
    for name in MODULES:
        source = package_of(name)
        if source is None:
            continue
        for target, _ in imports_of(name):
            destination = package_of(target)
            if destination is None or destination == source:
                continue
            if layers[destination] >= layers[source]:
                upward.append(f"{name} -> {target} (layer {layers[source]} -> "
                              f"{layers[destination]})")
    assert not upward, "imports that do not go down the layers of docs/design.md:\n" + \
        "\n".join(upward)


def test_imports_inside_functions_are_only_the_deferred_ones():
    inside = {(name, target) for name in MODULES for target, top in imports_of(name)
              if not top}
    assert inside <= DEFERRED_IMPORTS, f"imports hidden in functions: {inside - DEFERRED_IMPORTS}"


def test_no_import_cycle():
    graph = {name: {target for target, top in imports_of(name) if top and target in MODULES}
             for name in MODULES}
    # A package's __init__ imported by its own modules is what Python resolves first.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join(
            visiting[visiting.index(name):] + [name])
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check above would fail on an upward import: model importing config."""
    layers = documented_layers()
    assert layers["model"] < layers["config"]
    fake = tmp_path / "ig_metrics" / "model" / "upward.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ig_metrics.config.model import Problem\n")
    monkeypatch.setitem(MODULES, "ig_metrics.model.upward", fake)
    try:
        test_packages_import_only_from_layers_below()
    except AssertionError as error:
        assert "ig_metrics.model.upward -> ig_metrics.config.model" in str(error)
    else:
        raise AssertionError("an upward import went unnoticed")
