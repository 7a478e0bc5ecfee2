"""The kernel as an uncompressed ELF, taken out of Debian's vmlinuz once at build
time. QEMU boots it through its PVH entry (Debian builds CONFIG_PVH), which
skips the 4 s an xz-compressed kernel takes to decompress itself under TCG."""

from __future__ import annotations

import lzma
import struct
import subprocess
from pathlib import Path


def extract_vmlinux(vmlinuz: Path, destination: Path) -> None:
    data = vmlinuz.read_bytes()
    # x86 boot protocol: the compressed kernel's place is given relative to the
    # protected-mode code, which follows the setup sectors (0 of them means 4).
    start = ((data[0x1F1] or 4) + 1) * 512
    offset, length = struct.unpack_from("<II", data, 0x248)
    # The build appends the uncompressed size (4 bytes) to the compressed stream.
    payload = data[start + offset:start + offset + length - 4]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        elf = subprocess.run(["zstd", "-dcq"], input=payload, capture_output=True, check=True).stdout
    else:
        raise RuntimeError(f"{vmlinuz}: the kernel is compressed neither with xz nor with zstd")
    if not elf.startswith(b"\x7fELF"):
        raise RuntimeError(f"{vmlinuz}: the decompressed kernel is not an ELF file")
    destination.write_bytes(elf)
