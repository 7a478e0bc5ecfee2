"""The guests' disk image and boot files: the cached root filesystem plus every
kernel's modules and headers, the wheels, a ready venv and our init, made into
one ext4 image (booted read-only: QEMU's -snapshot), and per kernel a vmlinux
and an initramfs. Rebuilt only when one of its inputs changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import kernels, rootfs, wheels
from .host import CACHE, cache_lock, in_chroot, install_host_packages, run, say
from .initramfs import write_initramfs
from .kernel_files import KernelFiles, kernel_files

GUEST_INIT = Path(__file__).with_name("guest-init.sh")
GUEST_WHEELS = "/opt/ig-metrics/wheels"     # PIP_FIND_LINKS in the guest
GUEST_CHECKOUT = "/root/ig-metrics"         # where the guest's init copies the checkout
FREE_SPACE = 4 << 30                        # room the guest may write (sparse on the host)


@dataclass(frozen=True)
class GuestKernel:
    name: str            # "6.1"
    release: str         # uname -r
    vmlinux: Path        # uncompressed: see vmlinux.py
    initrd: Path


@dataclass(frozen=True)
class Image:
    disk: Path
    kernels: dict[str, GuestKernel]


def ensure_image(checkout: Path, *, refresh: bool = False, rebuild: bool = False) -> Image:
    """The image for `checkout`, built when missing or out of date. `refresh`
    looks for newer kernel builds on Debian's registry (otherwise the cached
    ones are used, with no network); `rebuild` makes the root filesystem and
    the kernels' trees again."""
    with cache_lock():
        install_host_packages()
        # The downloads, the unpacking and debootstrap wait on the network, xz
        # and dpkg, not on each other.
        with ThreadPoolExecutor(max_workers=2 + len(kernels.KERNELS)) as pool:
            base_job = pool.submit(rootfs.base_rootfs, checkout, rebuild=rebuild)
            wheels_job = pool.submit(wheels.fetch_wheels, checkout)
            kernel_jobs = {name: pool.submit(_kernel, kernel, refresh, rebuild)
                           for name, kernel in kernels.KERNELS.items()}
            files = {name: job.result() for name, job in kernel_jobs.items()}
            wheel_folder, base = wheels_job.result(), base_job.result()
        folder = CACHE / "image"
        manifest = {
            "rootfs": json.loads((CACHE / "rootfs.json").read_text()),
            "kernels": {name: list(kernel.debs) for name, kernel in files.items()},
            "wheels": wheel_folder.name,
            "pyproject": _sha256(checkout / "pyproject.toml"),   # setup.sh's stamp: see _add_venv
            "scripts": _digest(Path(__file__).parent),
        }
        if rebuild or _manifest(folder) != manifest:
            _build(folder, base, list(files.values()), wheel_folder, checkout)
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _remove_unused(CACHE / "kernels", {kernel.release for kernel in files.values()})
        return Image(folder / "root.img", {
            name: GuestKernel(name, kernel.release, folder / f"vmlinux-{kernel.release}",
                              folder / f"initrd-{kernel.release}")
            for name, kernel in files.items()})


def _kernel(kernel: kernels.Kernel, refresh: bool, rebuild: bool) -> KernelFiles:
    return kernel_files(kernels.kernel_debs(kernel, refresh=refresh), rebuild=rebuild)


def _remove_unused(folder: Path, keep: set[str]) -> None:
    """Older kernels' files: a kernel update leaves them behind."""
    for path in folder.iterdir():
        if path.name not in keep:
            shutil.rmtree(path)


def _manifest(folder: Path) -> object:
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(package: Path) -> str:
    """The harness's files that shape the image: a change to them makes it again."""
    digest = hashlib.sha256()
    for name in ("image.py", "initramfs.py", "initramfs-init.sh", "guest-init.sh"):
        digest.update(name.encode() + (package / name).read_bytes())
    return digest.hexdigest()[:16]


def _build(folder: Path, base: Path, files: list[KernelFiles], wheel_folder: Path, checkout: Path) -> None:
    staging = CACHE / "staging"
    partial = CACHE / "image.partial"
    for path in (staging, partial):
        shutil.rmtree(path, ignore_errors=True)
    partial.mkdir()
    # Hard links: the base and the kernels' trees copied in seconds, and the
    # steps below only add files (none rewrites one in place), so the cached
    # trees stay as they were.
    run(["cp", "-al", base, staging])
    for kernel in files:
        run(["cp", "-al", f"{kernel.tree}/.", staging])
        os.link(kernel.vmlinux, partial / f"vmlinux-{kernel.release}")
        write_initramfs(staging, kernel.release, partial / f"initrd-{kernel.release}")
    shutil.copytree(wheel_folder, staging / GUEST_WHEELS.lstrip("/"), copy_function=os.link)
    _add_venv(staging, checkout)
    init = staging / "usr/sbin/ig-guest-init"
    shutil.copyfile(GUEST_INIT, init)
    init.chmod(0o755)
    _make_ext4(staging, partial / "root.img")
    shutil.rmtree(staging)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    say(f"image: {folder}")


def _add_venv(root: Path, checkout: Path) -> None:
    """The venv scripts/setup.sh --test makes, as it leaves it: made with
    /usr/bin/python3 -m venv --system-site-packages, every requirement installed,
    ig-metrics installed editable from GUEST_CHECKOUT, setup.sh's stamp saying
    so for this pyproject.toml, and /usr/local/bin/ig-metrics linked to it. In
    the guest setup.sh then finds nothing to do (its pip takes 90 s under TCG).
    The stamp is setup.sh's own format: should that change, setup.sh just runs
    pip again."""
    source = root / GUEST_CHECKOUT.lstrip("/")
    venv = f"{GUEST_CHECKOUT}/.venv"
    in_chroot(root, ["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    pip = [f"{venv}/bin/python", "-m", "pip", "install", "-q", "--no-index", "--no-cache-dir",
           "--disable-pip-version-check", "--find-links", GUEST_WHEELS]
    in_chroot(root, [*pip, *wheels.requirements(checkout)])
    # What building the editable install reads; the guest's init copies the
    # whole checkout over it, and these copies go (a file deleted on the host
    # must not live on in the guest).
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(checkout / name, source / name)
    shutil.copytree(checkout / "ig_metrics", source / "ig_metrics",
                    ignore=shutil.ignore_patterns("__pycache__"))
    in_chroot(root, [*pip, "--no-deps", "--no-build-isolation", "-e", GUEST_CHECKOUT])
    for path in source.iterdir():
        if path.is_dir() and path.name != ".venv":
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()
    (source / ".venv/.ig-metrics-setup").write_text(f"{_sha256(checkout / 'pyproject.toml')} .[test]\n")
    (root / "usr/local/bin/ig-metrics").symlink_to(f"{venv}/bin/ig-metrics")


def _make_ext4(tree: Path, image: Path) -> None:
    used = int(subprocess.run(["du", "-s", "--block-size=1", tree], check=True, capture_output=True,
                              text=True).stdout.split()[0])
    with open(image, "wb") as disk:
        disk.truncate(used + used // 10 + FREE_SPACE)
    # Neither a journal nor metadata checksums: the disk is thrown away after
    # each boot, and under TCG every checksum costs.
    run(["mkfs.ext4", "-q", "-F", "-L", "ig-guest", "-O", "^has_journal,^metadata_csum", "-d", tree, image])
