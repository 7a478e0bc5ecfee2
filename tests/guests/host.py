"""The host side's plumbing: where the cache lives, running a command with its
line printed first, and installing the Debian packages the harness needs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

CACHE = Path(os.environ.get("IG_GUESTS_CACHE", "/var/cache/ig-metrics/guests"))
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# The Debian packages of the host commands the harness runs: qemu-system-x86_64,
# debootstrap, mkfs.ext4, unshare, depmod, zstd (6.12's vmlinuz) and pip (the wheels).
HOST_PACKAGES = ["qemu-system-x86", "debootstrap", "e2fsprogs", "util-linux", "kmod", "zstd", "python3-pip"]

# What a command run in a chroot sees: nothing of the caller's environment
# (the host's PIP_* settings name paths that only the host has).
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}


def say(message: str) -> None:
    print(f"guests: {message}", flush=True)


def run(command: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, capture: bool = False, log: Path | None = None) -> str:
    """Runs `command` (printing it first) and fails on a non-zero status. With
    `capture` it returns the standard output; with `log` the output goes to that
    file, and its last lines are printed if the command fails."""
    words = [os.fspath(word) for word in command]
    say("$ " + shlex.join(words) + (f"  > {log}" if log else ""))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(open(log, "w")) if log else None
        result = subprocess.run(words, check=False, env=None if env is None else dict(env), cwd=cwd,
                                text=True, stdout=subprocess.PIPE if capture else output,
                                stderr=subprocess.STDOUT if output else None)
    if result.returncode != 0:
        if log:
            print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:]), end="")
        raise subprocess.CalledProcessError(result.returncode, words)
    if (seconds := time.monotonic() - started) >= 2:
        # the build's steps run side by side: say which one this time is for
        say(f"{seconds:.0f} s: {shlex.join(words)[:100]}")
    return result.stdout if capture else ""


def in_chroot(root: Path, command: Sequence[str], *, capture: bool = False,
              log: Path | None = None) -> str:
    """Runs `command` chrooted in `root`, with /proc mounted in a mount namespace
    of its own: the mount goes away with the command, so nothing is left
    mounted under a tree that is later copied or deleted."""
    script = 'mount -t proc proc "$1/proc" && exec chroot "$@"'
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                str(root), *command], env=CHROOT_ENV, capture=capture, log=log)


def install_host_packages() -> None:
    """Installs, with apt, those of HOST_PACKAGES that are missing."""
    missing = [package for package in HOST_PACKAGES if not _installed(package)]
    if not missing:
        return
    say(f"installing host packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0",
         *missing], env=env, log=CACHE / "host-apt.log")


def _installed(package: str) -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], check=False, capture_output=True,
                            text=True)
    return status.stdout == "install ok installed"


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """Holds the cache's lock: one build at a time (two matrix runs, or pytest
    workers, may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
