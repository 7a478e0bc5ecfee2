"""A tiny initramfs per kernel: busybox, the few modules a virtio ext4 root
needs, and a script that mounts it and hands over to the guest's init. Debian's
kernels build virtio_blk and ext4 as modules; this boots in a fraction of the
time mkinitramfs's udev-driven one takes under TCG."""

from __future__ import annotations

import lzma
import stat
from pathlib import Path

# What mounting /dev/vda needs (ext4 asks the crypto API for crc32c at every
# mount, which modules.dep does not say); their dependencies come from
# modules.dep. A name the kernel has built in is skipped.
ROOT_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
INIT = Path(__file__).with_name("initramfs-init.sh")


def write_initramfs(root: Path, release: str, destination: Path) -> None:
    """Writes the initramfs of kernel `release`, whose modules (with modules.dep)
    are in the root filesystem folder `root`, to `destination`."""
    modules = root / "usr/lib/modules" / release
    entries: list[tuple[str, int, bytes]] = [
        (folder, stat.S_IFDIR | 0o755, b"") for folder in ("bin", "dev", "proc", "sys", "newroot", "modules")]
    entries.append(("init", stat.S_IFREG | 0o755, INIT.read_bytes()))
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, (root / "usr/bin/busybox").read_bytes()))
    for number, path in enumerate(_load_order(modules)):
        # Decompressed here: busybox's insmod hands the kernel the bytes as they are.
        data = lzma.decompress(path.read_bytes()) if path.suffix == ".xz" else path.read_bytes()
        entries.append((f"modules/{number:02d}-{_module_name(path)}.ko", stat.S_IFREG | 0o644, data))
    destination.write_bytes(_newc(entries))


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def _load_order(modules: Path) -> list[Path]:
    """ROOT_MODULES and what they depend on, each after its dependencies."""
    dependencies: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        name = _module_name(Path(module))
        paths[name] = module
        dependencies[name] = [_module_name(Path(need)) for need in needs.split()]
    builtin = {_module_name(Path(line)) for line in (modules / "modules.builtin").read_text().split()}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for need in dependencies[name]:
            visit(need)
        order.append(name)

    for name in ROOT_MODULES:
        if name not in builtin:
            visit(name)
    return [modules / paths[name] for name in order]


def _newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """The entries, and /dev/console (the kernel opens it as init's stdin, stdout
    and stderr), as an uncompressed cpio archive in the kernel's "newc" format:
    decompressing would be slow under TCG."""
    records = [(name, mode, data, 0, 0) for name, mode, data in entries]
    records += [("dev/console", stat.S_IFCHR | 0o600, b"", 5, 1), ("TRAILER!!!", 0, b"", 0, 0)]
    archive = bytearray()
    for inode, (name, mode, data, major, minor) in enumerate(records, 1):
        encoded = name.encode() + b"\0"
        fields = (inode, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, major, minor,
                  len(encoded), 0)
        archive += b"070701" + "".join(f"{field:08X}" for field in fields).encode() + encoded
        archive += b"\0" * (-len(archive) % 4) + data
        archive += b"\0" * (-len(archive) % 4)
    return bytes(archive)
