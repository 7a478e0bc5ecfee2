"""Which profiles directory a command uses: --profiles-dir, then
$IG_METRICS_PROFILES_DIR, then ./profiles, then the profiles built into the package."""

from __future__ import annotations

import os
from pathlib import Path

PROFILES_DIR_VARIABLE = "IG_METRICS_PROFILES_DIR"
BUILTIN_PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


def resolve_profiles_dir(cli_value: Path | None) -> tuple[Path, str]:
    """The directory and the rule that chose it, in words for messages."""
    if cli_value is not None:
        return cli_value, "--profiles-dir"
    from_environment = os.environ.get(PROFILES_DIR_VARIABLE)
    if from_environment:
        return Path(from_environment), f"${PROFILES_DIR_VARIABLE}"
    local = Path("profiles")
    if local.is_dir():
        return local, "./profiles"
    return BUILTIN_PROFILES_DIR, "built-in"
