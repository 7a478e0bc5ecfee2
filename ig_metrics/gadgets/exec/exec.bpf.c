/* exec gadget: successful execs by command and the command that called
 * execve, and failed execs by errno, from stable tracepoints only.
 *
 * The parent command is the name of the process calling execve, taken at
 * syscalls:sys_enter_execve(at) and kept by thread id until the exec ends:
 * after a fork the child still carries its parent's name, so this is the
 * parent's command without reading task_struct (whose layout the tracepoint
 * formats do not give). sched:sched_process_exec then counts the exec under
 * the new command (the kernel has renamed the task by then); a failed exec
 * returns from sys_exit_execve(at) with an error instead, and is counted
 * under the name the program would have had: the last component of the
 * file name execve was given, cut to 15 characters as the kernel cuts a
 * task's name, read from the caller's memory at sys_enter_execve(at).
 */

#define DROP_EXECS 0         /* execs map full */
#define IG_DROP_REASONS 1

#ifndef MAX_EXECS
#define MAX_EXECS 4096
#endif
#ifndef MAX_CALLERS
#define MAX_CALLERS 4096
#endif
#define PATH_BYTES 4096      /* PATH_MAX: execve refuses a longer file name */
#define NAME_BYTES 256       /* NAME_MAX + 1: a last component that can exist */
#define COMM_BYTES 16        /* TASK_COMM_LEN: 15 characters and a NUL */

/* The series. */
struct exec_key {
    u64 cgroup_id;       /* the execing process's cgroup v2 id */
    char command[16];    /* the command after exec; for a failed exec, the
                            program it tried (its file name's last component) */
    char parent[16];     /* the command that called execve */
    u32 error;           /* errno of a failed exec, else 0 */
    u32 unused;
};

struct exec_counts {
    u64 executions;
    u64 failures;
};

/* Who called execve, and what it tried to run, by thread id, until the
 * exec succeeds or fails. */
struct exec_caller {
    char comm[16];
    char program[16];    /* the file name's last component, as a task's name */
};

/* A file name as execve was given it: too big for the BPF stack. */
struct path {
    char bytes[PATH_BYTES];
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(execs, struct exec_key, struct exec_counts, MAX_EXECS);
/* LRU: an exec whose end we never see (the thread was killed) ages out */
BPF_TABLE("lru_hash", u32, struct exec_caller, callers, MAX_CALLERS);
BPF_PERCPU_ARRAY(paths, struct path, 1);

static __always_inline struct exec_counts *exec_counters(struct exec_key *key)
{
    struct exec_counts *c = execs.lookup(key);
    if (c)
        return c;
    struct exec_counts zero = {};
    execs.insert(key, &zero);
    c = execs.lookup(key);
    if (!c)
        ig_drop(DROP_EXECS);
    return c;
}

/* The name the kernel gives a program it executes (kbasename, then cut to
 * 15 characters): what follows the file name's last '/', looked for from the
 * end over at most NAME_BYTES (a scan of the whole path is more jumps than
 * the verifier follows). Left empty when the file name cannot be read (a
 * page not present: no fault is taken here) or its last component is longer
 * than any file name (that exec fails with ENAMETOOLONG). */
static __always_inline void program_name(const char *filename, char *name)
{
    u32 zero = 0;
    struct path *path = paths.lookup(&zero);
    if (!path)
        return;
    long len = bpf_probe_read_user_str(path->bytes, sizeof(path->bytes), filename);
    if (len <= 0)
        return;
    u32 end = len - 1;       /* the NUL's index */
    u32 start = 0;           /* no '/': the name is the whole file name */
    for (u32 i = 1; i <= NAME_BYTES; i++) {
        if (i > end)
            break;
        u32 at = (end - i) & (PATH_BYTES - 1);
        if (path->bytes[at] == '/') {
            start = at + 1;
            break;
        }
        if (i == NAME_BYTES)
            return;
    }
    bpf_probe_read_kernel_str(name, COMM_BYTES, path->bytes + (start & (PATH_BYTES - 1)));
}

/* Remembers the calling command and the program it tries; the process
 * filter is decided here, on the process as it is before the exec. */
static __always_inline void remember_caller(const char *filename)
{
    if (!ig_filter_pass())
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_caller caller = {};
    bpf_get_current_comm(&caller.comm, sizeof(caller.comm));
    program_name(filename, caller.program);
    callers.update(&tid, &caller);
}

int on_execve_enter(struct tracepoint__syscalls__sys_enter_execve *args)
{
    remember_caller(args->filename);
    return 0;
}

int on_execveat_enter(struct tracepoint__syscalls__sys_enter_execveat *args)
{
    remember_caller(args->filename);
    return 0;
}

int on_exec(struct tracepoint__sched__sched_process_exec *args)
{
    /* old_pid: the thread that called execve, whose id changes when it was
     * not the thread group leader */
    u32 caller_tid = args->old_pid;
    struct exec_key key = {};
    struct exec_caller *caller = callers.lookup(&caller_tid);
    if (caller) {
        __builtin_memcpy(key.parent, caller->comm, sizeof(key.parent));
        callers.delete(&caller_tid);
    } else {
#ifdef IG_FILTERED
        return 0;        /* the caller did not pass the filter */
#endif
        /* the exec began before the run: parent unknown (left empty) */
    }
    bpf_get_current_comm(&key.command, sizeof(key.command));
    key.cgroup_id = bpf_get_current_cgroup_id();
    struct exec_counts *c = exec_counters(&key);
    if (c)
        c->executions++;
    return 0;
}

/* Only failures: a successful exec was counted at sched_process_exec. */
static __always_inline void exec_returned(long ret)
{
    if (ret >= 0)
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_caller *caller = callers.lookup(&tid);
    if (!caller)
        return;          /* filtered out, or began before the run */
    struct exec_key key = {};
    __builtin_memcpy(key.command, caller->program, sizeof(key.command));
    __builtin_memcpy(key.parent, caller->comm, sizeof(key.parent));
    key.error = (u32)-ret;
    key.cgroup_id = bpf_get_current_cgroup_id();
    callers.delete(&tid);
    struct exec_counts *c = exec_counters(&key);
    if (c)
        c->failures++;
}

int on_execve_exit(struct tracepoint__syscalls__sys_exit_execve *args)
{
    exec_returned(args->ret);
    return 0;
}

int on_execveat_exit(struct tracepoint__syscalls__sys_exit_execveat *args)
{
    exec_returned(args->ret);
    return 0;
}
