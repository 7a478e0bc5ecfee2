"""The guests' shared root filesystem before any kernel goes in: Debian 12 from
`debootstrap --variant=minbase`, with every package the project needs to run
and test, kept as a folder in the cache and made again only when that list changes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from .host import CACHE, KEYRING, MIRROR, SECURITY_MIRROR, in_chroot, run, say

SUITE = "bookworm"

# Beyond the lists of scripts/setup.sh: what the guest's init and the tests call
# (kmod loads the 9p modules; busybox-static makes the initramfs and powers off).
EXTRA_PACKAGES = ["python3", "kmod", "util-linux", "curl", "busybox-static"]

# The image is thrown away after every boot: no docs, and dpkg need not fsync.
DPKG_CONFIG = """\
force-unsafe-io
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
"""


def packages(checkout: Path) -> list[str]:
    """setup.sh's RUNTIME_PACKAGES and TEST_PACKAGES, and EXTRA_PACKAGES: the
    image has all of them, so setup.sh --test finds nothing to install."""
    script = (checkout / "scripts" / "setup.sh").read_text()
    lists = re.findall(r"^(?:RUNTIME|TEST)_PACKAGES=\(([^)]*)\)", script, re.MULTILINE)
    if len(lists) != 2:
        raise RuntimeError("scripts/setup.sh: cannot find RUNTIME_PACKAGES=(...) and TEST_PACKAGES=(...)")
    return sorted({*" ".join(lists).split(), *EXTRA_PACKAGES})


def base_rootfs(checkout: Path, *, rebuild: bool) -> Path:
    """The cached root filesystem folder, made again when packages(checkout)
    changed or `rebuild` is set."""
    root = CACHE / "rootfs"
    stamp = CACHE / "rootfs.json"
    wanted = {"suite": SUITE, "packages": packages(checkout)}
    if not rebuild and root.is_dir() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return root
    partial = root.with_name("rootfs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    run(["debootstrap", "--variant=minbase", f"--keyring={KEYRING}", SUITE, partial, MIRROR],
        log=CACHE / "debootstrap.log")
    _configure(partial)
    in_chroot(partial, ["apt-get", "-qq", "update"])
    in_chroot(partial, ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "-o", "Dpkg::Use-Pty=0", *wanted["packages"]], log=CACHE / "apt-install.log")
    in_chroot(partial, ["apt-get", "clean"])
    shutil.rmtree(partial / "var/lib/apt/lists")
    (partial / "var/lib/apt/lists/partial").mkdir(parents=True)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    stamp.write_text(json.dumps(wanted, indent=1))
    say(f"root filesystem: {root}")
    return root


def _configure(root: Path) -> None:
    (root / "etc/apt/sources.list").write_text(
        f"deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n"
        f"deb [signed-by={KEYRING}] {MIRROR} {SUITE}-updates main\n"
        f"deb [signed-by={KEYRING}] {SECURITY_MIRROR} {SUITE}-security main\n")
    (root / "etc/dpkg/dpkg.cfg.d/ig-guests").write_text(DPKG_CONFIG)
    # Packages must not start services in the chroot, nor later in the guest.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/hostname").write_text("ig-guest\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost ig-guest\n::1 localhost ip6-localhost\n")
