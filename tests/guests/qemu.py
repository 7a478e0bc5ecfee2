"""Boots one of Debian's kernels under QEMU with the shared image, runs a
command from a copy of the checkout inside, and returns its output and exit status."""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .host import say
from .image import GUEST_WHEELS, Image, ensure_image

REPOSITORY = Path(__file__).resolve().parents[2]
GUEST_OUTPUT = "/mnt/output"    # where the guest sees `output_dir`


@dataclass(frozen=True)
class GuestResult:
    exit_code: int | None          # None: the command did not run to its end (timeout, crash)
    output: str                    # the command's stdout and stderr, interleaved
    duration: float                # seconds from starting QEMU to its end
    boot_duration: float | None    # seconds until the guest's init ran; None if it never did
    timed_out: bool
    console_log: Path              # the whole serial console: kernel messages, init, output


def boot(kernel: str, command: str, timeout: float, *, checkout: Path = REPOSITORY,
         output_dir: Path | None = None, env: Mapping[str, str] | None = None,
         console_log: Path | None = None, echo: bool = False, image: Image | None = None) -> GuestResult:
    """Boots `kernel` ("5.10", "6.1", "6.12"), runs `command` with bash in a copy
    of `checkout` (the guest reads the host's read-only and never writes to it),
    and powers off. `output_dir` is shared writable at /mnt/output
    ($IG_GUEST_OUTPUT). The serial console goes to `console_log` (default: in
    `output_dir`, else a temporary file) and, with `echo`, to stdout as it comes.
    After `timeout` seconds the guest is killed."""
    image = image or ensure_image(checkout)
    if kernel not in image.kernels:
        raise ValueError(f"no kernel {kernel!r}: the guests have {', '.join(image.kernels)}")
    guest = image.kernels[kernel]
    with tempfile.TemporaryDirectory(prefix="ig-guest-") as scratch:
        control = Path(scratch) / "control"
        control.mkdir()
        output = output_dir or Path(scratch) / "output"
        output.mkdir(parents=True, exist_ok=True)
        log = console_log or (output_dir / "console.log" if output_dir else _temporary_log(kernel))
        (control / "command").write_text(command + "\n")
        (control / "environment").write_text("".join(
            f"{name}={shlex.quote(value)}\n" for name, value in _guest_environment(env).items()))
        qemu = [
            "qemu-system-x86_64",
            # KVM guests hung at boot on these machines; TCG is slower but works.
            # -cpu max: under the default qemu64, numpy's wheel dies of an illegal instruction.
            "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2G",
            "-nic", "none", "-no-reboot", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-kernel", str(guest.vmlinux), "-initrd", str(guest.initrd),
            # panic=-1: a panic reboots at once, and -no-reboot turns that into QEMU's exit
            "-append", "console=ttyS0 loglevel=4 panic=-1",
            # snapshot=on: the guest's writes go to a temporary overlay, never to the image
            "-drive", f"file={image.disk},if=virtio,format=raw,snapshot=on",
            "-device", "virtio-rng-pci",
            *_share("checkout", checkout, readonly=True),
            *_share("control", control),
            *_share("output", output),
        ]
        say(f"kernel {kernel}: booting {guest.release}, console in {log}")
        started = time.monotonic()
        boot_duration, timed_out = _watch(qemu, log, echo, started + timeout)
        duration = time.monotonic() - started
        if timed_out:
            say(f"kernel {kernel}: timed out after {timeout:.0f} s: killed the guest")
        status = control / "status"
        exit_code = int(status.read_text()) if status.exists() else None
        if exit_code is None and not timed_out:
            say(f"kernel {kernel}: the guest stopped before the command ended: see {log}")
        teed = control / "output"
        output_text = teed.read_text(errors="replace") if teed.exists() else ""
        return GuestResult(exit_code, output_text, duration, boot_duration, timed_out, log)


def _temporary_log(kernel: str) -> Path:
    descriptor, path = tempfile.mkstemp(prefix=f"ig-guest-{kernel}-", suffix=".log")
    os.close(descriptor)
    return Path(path)


def _guest_environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    """pip installs from the image's wheels only (the guest has no network); CI
    passes through, so that a BPF test fails rather than skips there too."""
    environment = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": GUEST_WHEELS, "IG_GUEST_OUTPUT": GUEST_OUTPUT}
    if "CI" in os.environ:
        environment["CI"] = os.environ["CI"]
    return {**environment, **(extra or {})}


def _share(tag: str, path: Path, *, readonly: bool = False) -> list[str]:
    options = f"local,path={path},mount_tag={tag},security_model=none"
    return ["-virtfs", options + (",readonly=on" if readonly else "")]


def _watch(qemu: list[str], log: Path, echo: bool, deadline: float) -> tuple[float | None, bool]:
    """Runs QEMU until it exits or `deadline`, copying the console to `log` (and
    stdout). Returns when the guest's init said it started, and whether QEMU was killed."""
    started = time.monotonic()
    boot_duration = None
    seen = b""
    with open(log, "wb") as console, subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT) as process:
        assert process.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                return boot_duration, True
            if not select.select([process.stdout], [], [], min(remaining, 1.0))[0]:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            console.write(chunk)
            console.flush()
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            if boot_duration is None:
                seen = seen[-100:] + chunk
                if b"ig-guest: init started" in seen:
                    boot_duration = time.monotonic() - started
        process.wait()
    return boot_duration, False
