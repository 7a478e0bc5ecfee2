"""The kernels the guests boot: Debian's own, one per release, each resolved to
the newest build its suite has (through a private apt sources list on Debian's
registry) and its image and headers .debs cached."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .host import CACHE, KEYRING, MIRROR, SECURITY_MIRROR, run, say


@dataclass(frozen=True)
class Kernel:
    name: str        # what --kernel and boot() take: "6.1"
    suite: str       # the Debian release that ships it


KERNELS = {kernel.name: kernel for kernel in (
    Kernel("5.10", "bullseye"),
    Kernel("6.1", "bookworm"),
    Kernel("6.12", "trixie"),
)}


@dataclass(frozen=True)
class KernelDebs:
    release: str     # what `uname -r` says in the guest: "6.1.0-57-amd64"
    image: Path      # linux-image-<release>: vmlinuz and the modules
    headers: Path    # linux-headers-<release>: the -amd64 tree (build)
    common: Path     # linux-headers-<abi>-common: the shared tree (source)


def kernel_debs(kernel: Kernel, *, refresh: bool) -> KernelDebs:
    """The .debs of the newest build of `kernel`; the cached ones unless
    `refresh` is set or they are missing."""
    record = CACHE / "debs" / f"{kernel.suite}.json"
    if not refresh and record.exists():
        fields = json.loads(record.read_text())
        debs = KernelDebs(fields["release"], *(Path(fields[key]) for key in ("image", "headers", "common")))
        if all(path.exists() for path in (debs.image, debs.headers, debs.common)):
            return debs
    debs = _download(kernel)
    record.write_text(json.dumps({key: str(value) for key, value in asdict(debs).items()}, indent=1))
    return debs


def _apt_options(kernel: Kernel) -> list[str]:
    """apt options that read and write only this suite's own sources list, lists
    and cache: the host's apt configuration and state stay untouched."""
    state = CACHE / "apt" / kernel.suite
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {MIRROR} {kernel.suite} main\n"
                       f"deb [signed-by={KEYRING}] {SECURITY_MIRROR} {kernel.suite}-security main\n")
    return ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
            # root downloads itself: the _apt user may not reach the cache folder
            "-o", "APT::Sandbox::User=root"]


def _download(kernel: Kernel) -> KernelDebs:
    options = _apt_options(kernel)
    run(["apt-get", *options, "-qq", "update"])
    release = _newest_release(kernel, options)
    abi = release.removesuffix("-amd64")
    packages = [f"linux-image-{release}", f"linux-headers-{release}", f"linux-headers-{abi}-common"]
    folder = CACHE / "debs" / kernel.suite
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [folder / name for name in _deb_names(options, packages)]
    missing = [package for package, path in zip(packages, wanted, strict=True) if not path.exists()]
    if missing:
        run(["apt-get", *options, "-q", "download", *missing], cwd=folder)
    for stale in set(folder.glob("*.deb")) - set(wanted):
        stale.unlink()
    say(f"kernel {kernel.name}: {release} ({kernel.suite})")
    return KernelDebs(release, *wanted)


def _newest_release(kernel: Kernel, options: list[str]) -> str:
    # Only the generic amd64 flavour: not -cloud, -rt, -dbg or -unsigned.
    pattern = rf"^linux-image-({re.escape(kernel.name)}\.[0-9]+(\+deb[0-9]+)?(-[0-9]+)?-amd64)$"
    found = run(["apt-cache", *options, "search", "--names-only", pattern], capture=True)
    releases = [match.group(1) for line in found.splitlines()
                if (match := re.match(pattern, line.split(" - ")[0]))]
    if not releases:
        raise RuntimeError(f"kernel {kernel.name}: {kernel.suite} has no package matching {pattern}")
    return max(releases, key=lambda release: [int(number) for number in re.findall(r"\d+", release)])


def _deb_names(options: list[str], packages: list[str]) -> list[str]:
    """The file names `apt-get download` gives the candidate versions of `packages`."""
    records = run(["apt-cache", *options, "show", "--no-all-versions", *packages], capture=True)
    names = {}
    for record in records.strip().split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version|Architecture): (\S+)$", record, re.MULTILINE))
        version = fields["Version"].replace(":", "%3a")
        names[fields["Package"]] = f"{fields['Package']}_{version}_{fields['Architecture']}.deb"
    missing = set(packages) - set(names)
    if missing:
        raise RuntimeError(f"apt-cache show: no {', '.join(sorted(missing))}")
    return [names[package] for package in packages]
