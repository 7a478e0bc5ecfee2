"""The DaemonSet's exec readiness probe when its profile has no plain-HTTP
Prometheus endpoint: ready once the `ig-metrics run` of this container holds
BPF programs and their attachments (perf events, BPF links, packet sockets),
i.e. has attached its gadget. Standard library only: it starts in milliseconds.

    python -m ig_metrics.k8s.readiness      exit 0 ready, 1 not (one line why)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROGRAM_FD = "anon_inode:bpf-prog"
# A tracepoint program is attached through a perf event, a raw tracepoint
# program through a BPF link, a socket filter to a packet socket; all exist
# only between attach and detach.
ATTACHMENT_FDS = ("anon_inode:[perf_event]", "anon_inode:bpf_link", "anon_inode:bpf-link")
SOCKET_FD = "socket:["


@dataclass(frozen=True, slots=True)
class AgentState:
    pid: int
    programs: int
    attachments: int

    @property
    def attached(self) -> bool:
        return self.programs > 0 and self.attachments > 0


def is_agent(argv: list[str]) -> bool:
    """`ig-metrics run ...`, however the console script was started."""
    return any(Path(arg).name == "ig-metrics" and argv[index + 1:index + 2] == ["run"]
               for index, arg in enumerate(argv))


def agents(proc: Path = Path("/proc"), own_pid: int | None = None) -> list[int]:
    """The `ig-metrics run` processes in this process's cgroup: its container's,
    even when hostPID shows every process of the node."""
    own_pid = os.getpid() if own_pid is None else own_pid
    own_cgroup = _read(proc / str(own_pid) / "cgroup")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own_pid:
            continue
        argv = _read(entry / "cmdline").split("\0")
        if is_agent(argv) and _read(entry / "cgroup") == own_cgroup:
            found.append(int(entry.name))
    return sorted(found)


def agent_state(pid: int, proc: Path = Path("/proc")) -> AgentState:
    programs = attachments = 0
    fd_dir = proc / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return AgentState(pid, 0, 0)     # it exited: nothing attached
    packet_sockets = None
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue                     # closed since listed
        if target == PROGRAM_FD:
            programs += 1
        elif target.startswith(ATTACHMENT_FDS):
            attachments += 1
        elif target.startswith(SOCKET_FD):
            if packet_sockets is None:
                packet_sockets = packet_socket_inodes(proc, pid)
            attachments += int(target[len(SOCKET_FD):-1]) in packet_sockets
    return AgentState(pid, programs, attachments)


def packet_socket_inodes(proc: Path, pid: int) -> set[int]:
    """Inodes of the AF_PACKET sockets of `pid`'s network namespace (the last
    column of /proc/PID/net/packet)."""
    lines = _read(proc / str(pid) / "net" / "packet").splitlines()[1:]
    return {int(line.split()[-1]) for line in lines if line.split()}


def check(proc: Path = Path("/proc")) -> tuple[bool, str]:
    pids = agents(proc)
    if not pids:
        return False, "no 'ig-metrics run' process in this container"
    states = [agent_state(pid, proc) for pid in pids]
    ready = [state for state in states if state.attached]
    if ready:
        state = ready[0]
        return True, (f"ig-metrics (pid {state.pid}) has {state.programs} BPF programs "
                      f"with {state.attachments} attachments")
    return False, "; ".join(f"ig-metrics (pid {state.pid}) has {state.programs} BPF programs "
                            "and none attached yet" for state in states)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""          # the process exited while we looked: it is not the agent


def main() -> int:
    ready, reason = check()
    print(reason)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
