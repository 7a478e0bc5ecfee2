#!/usr/bin/env bash
# The test command (README's, and CI's through .ci/run): sets the machine up
# with what the tests need (scripts/setup.sh --test), then, from the repository
# root, runs the linter (ruff) and the type checker (mypy), as pyproject.toml
# configures them, and pytest; any finding fails it. Arguments go to pytest,
# e.g. -k doctor or -x.
# With CI=true in the environment, a test that needs BPF fails instead of skipping.
#
# Usage: ./scripts/test.sh [PYTEST ARGS...]
set -euo pipefail

# shellcheck source=scripts/as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
python="$repo/.venv/bin/python"
"$repo/scripts/setup.sh" --test
cd "$repo"
echo "test: ruff check ig_metrics tests benchmarks scripts; mypy (ig_metrics); then pytest"
"$python" -m ruff check ig_metrics tests benchmarks scripts
"$python" -m mypy
exec "$python" -m pytest "$@"
