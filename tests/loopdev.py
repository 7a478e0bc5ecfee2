"""A loop block device over a file made in the test, and the kernel's own
per-device counters (/sys/block/NAME/stat, the numbers of /proc/diskstats)
to check a gadget against."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# /sys/block/NAME/stat, in order (Documentation/block/stat.rst)
STAT_FIELDS = ("read_ios", "read_merges", "read_sectors", "read_ticks",
               "write_ios", "write_merges", "write_sectors", "write_ticks",
               "in_flight", "io_ticks", "time_in_queue",
               "discard_ios", "discard_merges", "discard_sectors", "discard_ticks",
               "flush_ios", "flush_ticks")


@dataclass(frozen=True)
class LoopDevice:
    path: Path                     # /dev/loopN
    backing: Path

    @property
    def name(self) -> str:
        return self.path.name

    def stat(self) -> dict[str, int]:
        values = (Path("/sys/block") / self.name / "stat").read_text().split()
        return dict(zip(STAT_FIELDS, map(int, values)))

    def settle(self, timeout: float = 10.0) -> dict[str, int]:
        """Waits until no request is in flight and the counters stop moving
        (a device just set up may still be probed); returns them."""
        deadline = time.monotonic() + timeout
        previous = self.stat()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            current = self.stat()
            if current == previous and current["in_flight"] == 0:
                return current
            previous = current
        raise TimeoutError(f"{self.path} kept doing I/O: {previous}")


@contextlib.contextmanager
def loop_device(directory: Path, size: int) -> Iterator[LoopDevice]:
    """A loop device over a sparse file of `size` bytes in `directory`."""
    backing = directory / "disk.img"
    with open(backing, "wb") as image:
        image.truncate(size)
    path = subprocess.run(["losetup", "--find", "--show", str(backing)], check=True,
                          capture_output=True, text=True).stdout.strip()
    device = LoopDevice(Path(path), backing)
    try:
        device.settle()
        yield device
    finally:
        subprocess.run(["losetup", "--detach", path], check=True)
        os.unlink(backing)
