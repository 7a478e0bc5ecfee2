"""The Python packages a guest installs with no network: the checkout's
requirements.lock, its test extras and the build backend, fetched on the host
as wheels for the guest's Python (Debian 12's 3.11, the host's /usr/bin/python3)."""

from __future__ import annotations

import hashlib
import shutil
import tomllib
from pathlib import Path

from .host import CACHE, run, say

SYSTEM_PYTHON = "/usr/bin/python3"


def requirements(checkout: Path) -> list[str]:
    """What `scripts/setup.sh --test` installs, as pip requirements: the lock's
    pins, the test extras, and the build backend of pyproject.toml (pip builds
    the editable install in an isolated environment it fills from the wheels)."""
    lock = (checkout / "requirements.lock").read_text().splitlines()
    project = tomllib.loads((checkout / "pyproject.toml").read_text())
    extras: list[str] = project["project"]["optional-dependencies"]["test"]
    backend: list[str] = project["build-system"]["requires"]
    pins = [line for line in (line.strip() for line in lock) if line and not line.startswith("#")]
    return pins + extras + backend


def wheels_key(checkout: Path) -> str:
    return hashlib.sha256("\n".join(requirements(checkout)).encode()).hexdigest()[:16]


def fetch_wheels(checkout: Path) -> Path:
    """A folder of wheels that satisfies requirements(checkout), made once per
    set of requirements. pip resolves them together, so the test extras get
    versions that agree with the lock's pins."""
    folder = CACHE / "wheels" / wheels_key(checkout)
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # --only-binary: the guest has no compilers and no build backends beyond setuptools
    run([SYSTEM_PYTHON, "-m", "pip", "download", "-qq", "--only-binary=:all:", "--dest", partial,
         *requirements(checkout)])
    for old in folder.parent.iterdir():
        if old != partial:
            shutil.rmtree(old)
    partial.rename(folder)
    say(f"wheels: {len(list(folder.glob('*.whl')))} in {folder}")
    return folder
