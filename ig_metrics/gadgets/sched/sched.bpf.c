/* sched gadget: run-queue latency (how long a runnable task waited for a CPU)
 * and context switches, per command, from the sched tracepoints only.
 *
 * sched_switch fires on every context switch, so its path is kept to array
 * lookups (inlined by the verifier) and one per-CPU hash update per side:
 * the command names come from the tracepoint record itself, not from a
 * helper or a pid -> name map.
 *
 * A task's wait starts when it is woken (sched_wakeup, sched_wakeup_new) or
 * when it is switched out while still runnable (preempted or yielding), and
 * ends when it is switched in. The start lives in `tasks`, an array indexed by
 * thread id: with pid_max <= TASK_SLOTS (32768 by default) no two threads
 * share a slot; above it a slot carries its tid and an overwritten wait is
 * counted as a drop.
 *
 * With the parameter per_cgroup (PER_CGROUP=1) series also carry the task's
 * cgroup (its container and pod): taken at each switch-out, when the task is
 * the current one, and kept in its slot for its next wait (a new task's, from
 * its parent at sched_wakeup_new).
 */

/* prev_state bits of a task that blocked (S, D, T, t, X, Z, P, I); 0 is a task
 * switched out while runnable, and 0x100 (TASK_REPORT_MAX) a preempted one:
 * exactly the switches the kernel counts in nivcsw. */
#define BLOCKED_STATES 0xff

#ifndef TASK_BITS
#define TASK_BITS 16
#endif
#define TASK_SLOTS (1 << TASK_BITS)

#ifndef MAX_COMMANDS
#define MAX_COMMANDS 10240
#endif

#define DROP_COMMANDS 0      /* switches map full */
#define DROP_HISTOGRAMS 1    /* runqueue_latency map full */
#define DROP_TASKS 2         /* a waiting task's start overwritten by another tid */
#define IG_DROP_REASONS 3

#ifndef PER_CGROUP
#define PER_CGROUP 0
#endif

/* The series key: the command name as the tracepoint gives it, and with
 * per_cgroup the task's cgroup v2 id (0 otherwise, or not known yet). */
struct command_key {
    u64 cgroup_id;
    char comm[16];
};

struct switch_counts {
    u64 voluntary;           /* the task blocked (nvcsw) */
    u64 involuntary;         /* preempted or yielded while runnable (nivcsw) */
};

/* One thread: when it became runnable, if it is waiting for a CPU. */
struct task_slot {
    u32 tid;
    u32 tracked;             /* passed the process filter at its last switch-out */
    u64 runnable_ns;         /* 0: not waiting (or not known to be) */
    u64 cgroup_id;           /* per_cgroup: its cgroup at its last switch-out */
};

#include "ig_metrics.h"

BPF_ARRAY(tasks, struct task_slot, TASK_SLOTS);
BPF_PERCPU_HASH(switches, struct command_key, struct switch_counts, MAX_COMMANDS);
BPF_PERCPU_HASH(runqueue_latency, struct command_key, struct ig_hist, MAX_COMMANDS);

static __always_inline struct task_slot *task_slot(u32 tid)
{
    u32 index = tid & (TASK_SLOTS - 1);
    return tasks.lookup(&index);
}

/* A woken task starts waiting for a CPU. Under a process filter a task is
 * known (and judged) from its first switch-out: the waker is the current
 * task here, not the one woken. */
static __always_inline void became_runnable(u32 tid, u64 cgroup_id)
{
    struct task_slot *slot = task_slot(tid);
    if (!slot || tid == 0)
        return;
    if (slot->tid != tid) {
#ifdef IG_FILTERED
        return;
#endif
        if (slot->runnable_ns)
            ig_drop(DROP_TASKS);
        slot->tid = tid;
        slot->tracked = 1;
#if PER_CGROUP
        slot->cgroup_id = cgroup_id;
#endif
    } else if (!slot->tracked) {
        return;
    }
    slot->runnable_ns = bpf_ktime_get_ns();
}

int on_wakeup(struct tracepoint__sched__sched_wakeup *args)
{
    /* the current task is the waker: the woken one's cgroup is known from
     * its first switch-out */
    became_runnable(args->pid, 0);
    return 0;
}

int on_wakeup_new(struct tracepoint__sched__sched_wakeup_new *args)
{
    /* a new task starts in its parent's cgroup, and its parent wakes it */
    became_runnable(args->pid, PER_CGROUP ? bpf_get_current_cgroup_id() : 0);
    return 0;
}

/* The task leaving the CPU is the current one: the filter judges it here. */
static __always_inline void switched_out(u32 tid, struct command_key *key, long state)
{
    struct task_slot *slot = task_slot(tid);
    if (!slot)
        return;
    int voluntary = (state & BLOCKED_STATES) != 0;
    int tracked = ig_filter_pass();
    if (slot->tid != tid && slot->runnable_ns)
        ig_drop(DROP_TASKS);
    slot->tid = tid;
    slot->tracked = tracked;
    /* a blocked task waits for a wakeup, a runnable one for a CPU from now */
    slot->runnable_ns = (voluntary || !tracked) ? 0 : bpf_ktime_get_ns();
    if (!tracked)
        return;
#if PER_CGROUP
    key->cgroup_id = slot->cgroup_id = bpf_get_current_cgroup_id();
#endif
    struct switch_counts zero = {};
    struct switch_counts *counts = switches.lookup_or_try_init(key, &zero);
    if (!counts) {
        ig_drop(DROP_COMMANDS);
        return;
    }
    /* plain adds: per-CPU, and tracepoint programs never nest on a CPU */
    if (voluntary)
        counts->voluntary++;
    else
        counts->involuntary++;
}

static __always_inline void switched_in(u32 tid, struct command_key *key)
{
    struct task_slot *slot = task_slot(tid);
    if (!slot || slot->tid != tid || !slot->runnable_ns)
        return;
    u64 now = bpf_ktime_get_ns();
    u64 since = slot->runnable_ns;
    slot->runnable_ns = 0;
#if PER_CGROUP
    key->cgroup_id = slot->cgroup_id;
#endif
    u64 waited = now > since ? now - since : 0;
    struct ig_hist *empty = ig_empty_hist();
    if (!empty)
        return;
    ig_hist_record(runqueue_latency.lookup_or_try_init(key, empty), waited / 1000,
                   DROP_HISTOGRAMS);
}

int on_switch(struct tracepoint__sched__sched_switch *args)
{
    /* every context field into locals first (see DESIGN.md) */
    u32 prev = args->prev_pid, next = args->next_pid;
    long state = args->prev_state;
    struct command_key prev_key = {}, next_key = {};
    __builtin_memcpy(prev_key.comm, args->prev_comm, sizeof(prev_key.comm));
    __builtin_memcpy(next_key.comm, args->next_comm, sizeof(next_key.comm));

    /* pid 0 is every CPU's idle task: never counted */
    if (prev)
        switched_out(prev, &prev_key, state);
    if (next)
        switched_in(next, &next_key);
    return 0;
}
