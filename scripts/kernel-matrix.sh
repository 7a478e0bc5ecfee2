#!/usr/bin/env bash
# Runs scripts/setup.sh --test and a pytest selection in QEMU guests of Debian's
# own kernels (bullseye's 5.10, bookworm's 6.1, trixie's 6.12), building and
# caching what they need under /var/cache/ig-metrics/guests first.
# --help says everything; the code is tests/guests/.
#
# Usage: ./scripts/kernel-matrix.sh [--kernel 6.1] [OPTIONS] [-- PYTEST ARGS...]
set -euo pipefail

# shellcheck source=scripts/as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Debian's own Python: the harness needs only its standard library, and the
# checkout's .venv may not exist yet on a fresh machine.
exec /usr/bin/python3 -m tests.guests "$@"
