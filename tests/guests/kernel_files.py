"""Each kernel's files as the image needs them, unpacked once from its .debs
and cached: its modules (with depmod's indexes) and headers in a tree that
image.py merges into the root filesystem, and beside it the kernel as an
uncompressed ELF (vmlinux.py)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from .host import CACHE, run
from .kernels import KernelDebs
from .vmlinux import extract_vmlinux


@dataclass(frozen=True)
class KernelFiles:
    release: str
    debs: tuple[str, ...]    # the .debs' file names
    tree: Path               # usr/lib/modules/<release>, usr/src/linux-headers-*, boot/config-<release>, ...
    vmlinux: Path


def kernel_files(debs: KernelDebs, *, rebuild: bool) -> KernelFiles:
    """The files of `debs`, unpacked when they were not yet or `rebuild` is set."""
    folder = CACHE / "kernels" / debs.release
    packages = [path.name for path in (debs.image, debs.headers, debs.common)]
    files = KernelFiles(debs.release, tuple(packages), folder / "tree", folder / "vmlinux")
    stamp = folder / "debs.json"
    if not rebuild and stamp.exists() and json.loads(stamp.read_text()) == packages:
        return files
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tree = partial / "tree"
    (tree / "usr/lib").mkdir(parents=True)
    # As in the root filesystem (merged /usr): bullseye's and bookworm's
    # packages still put their modules in /lib/modules.
    (tree / "lib").symlink_to("usr/lib")
    unpack = 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink -C "$2"'
    for deb in (debs.image, debs.headers, debs.common):
        run(["sh", "-c", unpack, "sh", deb, tree])
    # bcc compiles against /lib/modules/<release>/build (the -amd64 tree) and
    # source (the -common tree). Only these files are there, not linux-kbuild
    # nor a compiler: bcc needs the headers alone.
    modules = tree / "usr/lib/modules" / debs.release
    common = f"linux-headers-{debs.release.removesuffix('-amd64')}-common"
    for link, target in (("build", f"linux-headers-{debs.release}"), ("source", common)):
        (modules / link).unlink(missing_ok=True)
        (modules / link).symlink_to(f"/usr/src/{target}")
    run(["depmod", "-b", tree, debs.release])
    vmlinuz = tree / "boot" / f"vmlinuz-{debs.release}"
    extract_vmlinux(vmlinuz, partial / "vmlinux")
    vmlinuz.unlink()
    (tree / "lib").unlink()     # merged into the root filesystem, it would replace the root's own link
    (partial / "debs.json").write_text(json.dumps(packages))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return files
