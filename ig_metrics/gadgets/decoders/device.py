"""Decoder for a block device number (the kernel's dev_t) into its name."""

from __future__ import annotations

from pathlib import Path

from ig_metrics.model.snapshot import AttrValue

MINOR_BITS = 20               # the kernel's dev_t: major << 20 | minor (MINORBITS)


def decode_device(value, fields, spec, ctx, sys_root: Path = Path("/sys"),
                  proc_root: Path = Path("/proc")) -> AttrValue:
    """The device's name (`vda`, `loop3`, `nvme0n1p2`) from
    /sys/dev/block/MAJ:MIN/uevent, else /proc/partitions, else 'MAJ:MIN'."""
    number = int(value)
    major, minor = number >> MINOR_BITS, number & ((1 << MINOR_BITS) - 1)
    return (_uevent_name(sys_root / "dev" / "block" / f"{major}:{minor}" / "uevent")
            or _partitions_name(proc_root / "partitions", major, minor)
            or f"{major}:{minor}")


def _uevent_name(path: Path) -> str:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""                # no such device (any more): try the next source
    return next((line.split("=", 1)[1] for line in lines if line.startswith("DEVNAME=")), "")


def _partitions_name(path: Path, major: int, minor: int) -> str:
    try:
        lines = path.read_text().splitlines()[2:]   # a header line, then a blank one
    except OSError:
        return ""                # no /proc: the number is all there is
    for line in lines:
        fields = line.split()
        if len(fields) == 4 and fields[:2] == [str(major), str(minor)]:
            return fields[3]
    return ""
