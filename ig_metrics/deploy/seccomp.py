"""The seccomp profile ig-metrics ships for container runtimes whose default
profile admits bpf() and perf_event_open() only with CAP_SYS_ADMIN (podman and
CRI-O on containers/common before 0.60, e.g. Debian 12's podman 4.3): the
calls a container may make by default on current runtimes, plus those two
with the capability that the kernel itself asks for (CAP_BPF, CAP_PERFMON).

`ig-metrics deploy --seccomp localhost` points the DaemonSet at it (the file
must be on every node, under the kubelet's seccomp directory), and
`ig-metrics deploy --print-seccomp-profile` prints it; podman takes the same
file: `podman run --security-opt seccomp=FILE`. docs/kubernetes.md says
which runtimes need it."""

from __future__ import annotations

import json
from typing import Any

# Where the DaemonSet's Localhost profile is, relative to the kubelet's seccomp
# directory (/var/lib/kubelet/seccomp by default).
LOCALHOST_PROFILE = "ig-metrics/bpf.json"
KUBELET_SECCOMP_DIR = "/var/lib/kubelet/seccomp"

# Allowed to every container by the default profiles of current runtimes
# (Docker, containerd, containers/common): nothing here needs a capability the
# kernel would not ask for itself. Sorted; names unknown to an architecture are
# skipped by the runtime.
ALLOWED = """
accept accept4 access adjtimex alarm arch_prctl bind brk cachestat capget capset chdir chmod
chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage
getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod
mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
""".split()

# Each call allowed only to a container holding the capability: the two BPF
# needs with the capabilities the DaemonSet grants, and with CAP_SYS_ADMIN as
# before 5.8 (deploy --sys-admin).
WITH_CAPABILITY = (
    ("bpf", "CAP_BPF"),
    ("perf_event_open", "CAP_PERFMON"),
    ("bpf", "CAP_SYS_ADMIN"),
    ("perf_event_open", "CAP_SYS_ADMIN"),
)

# clone() without the flags that make namespaces (CLONE_NEWNS, NEWUTS, NEWIPC,
# NEWUSER, NEWPID, NEWNET, NEWCGROUP): threads and processes only, as the
# runtimes' defaults have it. clone3() passes its flags in memory, where
# seccomp cannot look: it fails with ENOSYS, and the C library falls back to clone().
NAMESPACE_FLAGS = 0x7E020000
ENOSYS = 38
# personality(): Linux, and the few flags programs set (the runtimes' defaults).
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40      # host communication sockets: not for containers


def profile() -> dict[str, Any]:
    """The profile, in the JSON format of Docker, containerd, CRI-O and podman."""
    rules: list[dict[str, Any]] = [{"names": sorted(ALLOWED), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [capability]}}
              for name, capability in WITH_CAPABILITY]
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0,
                            "op": "SCMP_CMP_MASKED_EQ"}]})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]}
              for value in PERSONALITIES]
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,                       # EPERM, as the runtimes' defaults
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64",
             "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": rules,
    }


def render_profile() -> str:
    return json.dumps(profile(), indent=2) + "\n"
