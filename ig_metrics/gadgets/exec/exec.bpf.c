/* exec gadget: successful execs by command and the command that called
 * execve, and failed execs by errno, from stable tracepoints only.
 *
 * The parent command is the name of the process calling execve, taken at
 * syscalls:sys_enter_execve(at) and kept by thread id until the exec ends:
 * after a fork the child still carries its parent's name, so this is the
 * parent's command without reading task_struct (whose layout the tracepoint
 * formats do not give). sched:sched_process_exec then counts the exec under
 * the new command (the kernel has renamed the task by then); a failed exec
 * returns from sys_exit_execve(at) with an error instead.
 */

#define DROP_EXECS 0         /* execs map full */
#define IG_DROP_REASONS 1

#ifndef MAX_EXECS
#define MAX_EXECS 4096
#endif
#ifndef MAX_CALLERS
#define MAX_CALLERS 4096
#endif

/* The series. */
struct exec_key {
    u64 cgroup_id;       /* the execing process's cgroup v2 id */
    char command[16];    /* the command after exec; empty for a failed exec */
    char parent[16];     /* the command that called execve */
    u32 error;           /* errno of a failed exec, else 0 */
    u32 unused;
};

struct exec_counts {
    u64 executions;
    u64 failures;
};

/* Who called execve, by thread id, until the exec succeeds or fails. */
struct exec_caller {
    char comm[16];
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(execs, struct exec_key, struct exec_counts, MAX_EXECS);
/* LRU: an exec whose end we never see (the thread was killed) ages out */
BPF_TABLE("lru_hash", u32, struct exec_caller, callers, MAX_CALLERS);

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

/* Remembers the calling command; the process filter is decided here, on the
 * process as it is before the exec. */
static __always_inline void remember_caller(void)
{
    if (!ig_filter_pass())
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_caller caller = {};
    bpf_get_current_comm(&caller.comm, sizeof(caller.comm));
    callers.update(&tid, &caller);
}

int on_execve_enter(void *ctx)
{
    remember_caller();
    return 0;
}

int on_execveat_enter(void *ctx)
{
    remember_caller();
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
