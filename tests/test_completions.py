"""The committed completion scripts are what the command line generates today,
and completing through them offers the real commands and options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ig_metrics.cli.completions import COMPLETE_VAR, SCRIPT_FILES, run_completion, write_scripts

COMMITTED = Path(__file__).resolve().parent.parent / "completions"
CONSOLE_SCRIPT = Path(sys.executable).parent / "ig-metrics"


def bash_complete(line: str) -> list[str]:
    """What Click's protocol answers for the last word of `line` (COMP_WORDS and
    COMP_CWORD exactly as the generated bash function passes them)."""
    words = line.split(" ")
    result = run_completion({COMPLETE_VAR: "complete_bash", "COMP_WORDS": line,
                             "COMP_CWORD": str(len(words) - 1)})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_committed_completion_scripts_are_current(tmp_path: Path) -> None:
    write_scripts(tmp_path)
    stale = [name for name in SCRIPT_FILES.values()
             if not (COMMITTED / name).is_file()
             or (COMMITTED / name).read_text() != (tmp_path / name).read_text()]
    assert not stale, f"completions/{', '.join(stale)} stale: run ./scripts/gen-completions.sh"


def test_zsh_script_starts_with_compdef() -> None:
    assert (COMMITTED / SCRIPT_FILES["zsh"]).read_text().startswith("#compdef ig-metrics\n")


def test_bash_completion_offers_the_commands() -> None:
    assert {"run", "exporters", "gadgets", "doctor", "deploy"} <= set(bash_complete("ig-metrics "))
    assert set(bash_complete("ig-metrics d")) == {"deploy", "doctor"}


def test_bash_completion_offers_subcommands_and_options() -> None:
    assert {"list", "validate", "schema"} <= set(bash_complete("ig-metrics exporters "))
    assert {"list", "describe"} <= set(bash_complete("ig-metrics gadgets "))
    assert {"--gadget", "--compile", "--output"} <= set(bash_complete("ig-metrics doctor --"))
    assert set(bash_complete("ig-metrics doctor --output ")) == {"text", "json"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_committed_bash_script_completes_in_bash() -> None:
    """Sources completions/ig-metrics.bash in a real bash and calls its function
    the way bash does on Tab, with the installed ig-metrics on PATH."""
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} is missing: run scripts/setup.sh"
    script = (f'source {COMMITTED / SCRIPT_FILES["bash"]}\n'
              'COMP_WORDS=(ig-metrics exporters ""); COMP_CWORD=2\n'
              '_ig_metrics_completion ig-metrics\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert {"list", "validate", "schema"} <= set(result.stdout.split())
