"""Seeders: fill a gadget's map, once its programs are attached, with what
existed before they were (e.g. sockets already listening). Each is a small
function registered by name in SEEDERS; a gadget spec names the seeder of a
map under `seed:`. A seeder is given how to find a process's cgroup id
(bpf.cgroupfs.process_cgroup, passed by the loader)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

TCP_LISTEN = "0A"      # the st column of /proc/net/tcp for a listening socket


def listening_ports(proc: Path = Path("/proc")) -> dict[int, int]:
    """Local port -> inode of every TCP socket listening, IPv4 and IPv6."""
    ports: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == TCP_LISTEN:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                ports.setdefault(port, int(fields[9]))
    return ports


def socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, int]:
    """Socket inode -> pid of a process holding it, for the inodes asked for."""
    owners: dict[int, int] = {}
    for fd_dir in _fd_dirs(proc):
        try:
            entries = os.listdir(fd_dir)
        except OSError:
            continue      # the process exited or hides its fds: nothing to learn
        for entry in entries:
            try:
                target = os.readlink(f"{fd_dir}/{entry}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    owners.setdefault(inode, int(fd_dir.split("/")[-2]))
        if len(owners) == len(inodes):
            break
    return owners


def _fd_dirs(proc: Path) -> Iterator[str]:
    for name in os.listdir(proc):
        if name.isdigit():
            yield f"{proc}/{name}/fd"


def seed_tcp_listeners(table, cgroup_of: Callable[[int], int],
                       keep: Callable[[int], bool] = lambda pid: True,
                       proc: Path = Path("/proc")) -> int:
    """Port -> the process listening on it (pid and cgroup), for listeners that
    opened before the gadget: without them, inbound connections to e.g. a web
    server started earlier would have no process. Entries already there are
    kept: the kernel side saw those listen() calls itself."""
    ports = listening_ports(proc)
    owners = socket_owners(set(ports.values()), proc)
    seeded = 0
    for port, inode in ports.items():
        pid = owners.get(inode)
        if pid is None or not keep(pid):     # not one of the processes this run looks at
            continue
        key = table.Key(port)
        if key not in table:
            listener = table.Leaf()
            listener.tgid = pid
            listener.cgroup_id = cgroup_of(pid)
            table[key] = listener
            seeded += 1
    return seeded


SEEDERS: dict[str, Callable[..., int]] = {
    "tcp_listeners": seed_tcp_listeners,
}
