#!/usr/bin/env bash
# The test command (README's, and CI's through .ci/run): sets the machine up
# with what the tests need (scripts/setup.sh --test), then runs pytest from the
# repository root. Arguments go to pytest, e.g. -k doctor or -x.
# With CI=true in the environment, a test that needs BPF fails instead of skipping.
#
# Usage: ./scripts/test.sh [PYTEST ARGS...]
set -euo pipefail

# shellcheck source=scripts/as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
"$repo/scripts/setup.sh" --test
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest "$@"
