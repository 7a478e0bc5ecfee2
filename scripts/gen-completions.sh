#!/usr/bin/env bash
# Regenerates the bash, zsh and fish completion scripts in completions/ from the
# ig-metrics command line. Run it after adding or renaming a command or option;
# tests/test_completions.py fails while the committed scripts are stale.
#
# Usage: ./scripts/gen-completions.sh   (PYTHON=... to use another interpreter)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
exec "${PYTHON:-$repo/.venv/bin/python}" -m ig_metrics.cli.completions "$repo/completions"
