#!/usr/bin/env bash
# From a fresh Debian 12 machine to live TCP metrics in one command: sets the
# machine up (scripts/setup.sh), then runs the tcp gadget with the `local`
# profile (Prometheus scrape endpoint on 127.0.0.1:9464) and its live table.
# Extra arguments go to `ig-metrics run`, e.g. --duration 30s or --no-tui.
#
# Usage: ./scripts/quickstart.sh [RUN OPTIONS...]
set -euo pipefail

# shellcheck source=scripts/as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
"$repo/scripts/setup.sh"
cd "$repo"
exec "$repo/.venv/bin/ig-metrics" run --gadget tcp --profile local "$@"
