/* syscalls gadget: calls, errors by errno and latency per syscall, from the
 * raw_syscalls tracepoints (every syscall of every process passes here).
 *
 * This is the hottest hook a gadget can have, so the common path touches
 * arrays only (the verifier inlines array lookups; a hash lookup costs ~55 ns
 * per event on the reference machine): counts and latency histograms are
 * per-CPU arrays indexed by syscall number, and the time a thread entered its
 * syscall sits in `threads`, an array used as an open-addressed table keyed by
 * thread id. Only errors go to a hash, keyed by (syscall, errno).
 *
 * A thread keeps its slot for its whole life (entering a syscall then writes
 * one timestamp, no atomic operation); the slot is freed when the thread
 * exits. Counts are plain increments: tracepoint programs do not nest and run
 * with preemption off, so nothing else touches this CPU's copy meanwhile.
 *
 * With the parameter per_cgroup (PER_CGROUP=1) every series also carries the
 * process's cgroup (its container and pod): counts and latencies then go to
 * per-CPU hashes keyed by (cgroup, syscall), a hash lookup and a helper call
 * more per syscall, which is why it is not the default (docs/performance.md).
 */

#define DROP_THREADS 0       /* no slot for a thread: its latencies go unrecorded */
#define DROP_ERRORS 1        /* errors map full */
#define DROP_NUMBERS 2       /* a syscall number beyond MAX_SYSCALLS (x32, invalid) */
#define DROP_SERIES 3        /* per_cgroup: calls or latency map full */
#define IG_DROP_REASONS 4

#ifndef PER_CGROUP
#define PER_CGROUP 0
#endif
#ifndef MAX_SERIES
#define MAX_SERIES 16384     /* per_cgroup: (cgroup, syscall) pairs */
#endif

#ifndef MAX_SYSCALLS
#define MAX_SYSCALLS 1024
#endif
#ifndef THREAD_BITS
#define THREAD_BITS 16
#endif
#define THREAD_SLOTS (1 << THREAD_BITS)
#define THREAD_PROBES 8
#ifndef MAX_ERRORS
#define MAX_ERRORS 4096
#endif

#define MAX_ERRNO 4095       /* returns in [-4095, -1] are errors (IS_ERR_VALUE) */

/* The series: a syscall, an errno for the error counts (0 otherwise), and
 * with per_cgroup the process's cgroup v2 id (0 otherwise). */
struct syscall_key {
    u64 cgroup_id;
    u32 nr;
    u32 error;
};

struct call_counts {
    u64 calls;
};

struct error_counts {
    u64 errors;
};

/* A thread's slot: its id (0 = free) and when its current syscall began
 * (0 = not in a syscall we saw begin). u64 tid: compare-and-swap needs 64 bits. */
struct thread_state {
    u64 tid;
    u64 start_ns;
};

#include "ig_metrics.h"

#if PER_CGROUP
BPF_PERCPU_HASH(calls, struct syscall_key, struct call_counts, MAX_SERIES);
BPF_PERCPU_HASH(latency, struct syscall_key, struct ig_hist, MAX_SERIES);
#else
BPF_PERCPU_ARRAY(calls, struct call_counts, MAX_SYSCALLS);
BPF_PERCPU_ARRAY(latency, struct ig_hist, MAX_SYSCALLS);
#endif
BPF_PERCPU_HASH(errors, struct syscall_key, struct error_counts, MAX_ERRORS);
BPF_ARRAY(threads, struct thread_state, THREAD_SLOTS);

static __always_inline u32 thread_hash(u64 tid)
{
    return (u32)((tid * 0x9E3779B97F4A7C15ULL) >> (64 - THREAD_BITS));
}

/* The slot of thread `tid`, claiming a free one for it if it has none. */
static __always_inline struct thread_state *thread_slot(u64 tid)
{
    u32 base = thread_hash(tid);
    u32 free_idx = THREAD_SLOTS;     /* none */
#pragma unroll
    for (int i = 0; i < THREAD_PROBES; i++) {
        u32 idx = (base + i) & (THREAD_SLOTS - 1);
        struct thread_state *t = threads.lookup(&idx);
        if (!t)
            return 0;
        if (t->tid == tid)
            return t;
        if (free_idx == THREAD_SLOTS && t->tid == 0)
            free_idx = idx;
    }
    /* looked up again by index: a pointer kept across the loop is merged by
     * the compiler in ways the verifier refuses */
    struct thread_state *free = free_idx < THREAD_SLOTS ? threads.lookup(&free_idx) : 0;
    if (free && ig_cas(&free->tid, 0, tid, free_idx))
        return free;
    ig_drop(DROP_THREADS);
    return 0;
}

static __always_inline struct thread_state *find_thread(u64 tid)
{
    u32 base = thread_hash(tid);
#pragma unroll
    for (int i = 0; i < THREAD_PROBES; i++) {
        u32 idx = (base + i) & (THREAD_SLOTS - 1);
        struct thread_state *t = threads.lookup(&idx);
        if (t && t->tid == tid)
            return t;
    }
    return 0;
}

int on_enter(struct tracepoint__raw_syscalls__sys_enter *args)
{
    if (!ig_filter_pass())
        return 0;
    u64 tid = (u32)bpf_get_current_pid_tgid();
    struct thread_state *t = thread_slot(tid);
    if (t)
        t->start_ns = bpf_ktime_get_ns();
    return 0;
}

int on_exit(struct tracepoint__raw_syscalls__sys_exit *args)
{
    long id = args->id, ret = args->ret;
    if (!ig_filter_pass())
        return 0;
    if ((unsigned long)id >= MAX_SYSCALLS) {
        ig_drop(DROP_NUMBERS);
        return 0;
    }
    u32 nr = id;
#if PER_CGROUP
    struct syscall_key series = {.cgroup_id = bpf_get_current_cgroup_id(), .nr = nr};
    struct call_counts none = {};
    struct call_counts *c = calls.lookup_or_try_init(&series, &none);
    if (c)
        c->calls++;
    else
        ig_drop(DROP_SERIES);
#else
    struct call_counts *c = calls.lookup(&nr);
    if (c)
        c->calls++;
#endif

    u64 tid = (u32)bpf_get_current_pid_tgid();
    struct thread_state *t = find_thread(tid);
    if (t && t->start_ns) {
        u64 elapsed = bpf_ktime_get_ns() - t->start_ns;
        t->start_ns = 0;
#if PER_CGROUP
        struct ig_hist *empty = ig_empty_hist();
        if (empty)
            ig_hist_record(latency.lookup_or_try_init(&series, empty), elapsed, DROP_SERIES);
#else
        struct ig_hist *h = latency.lookup(&nr);
        if (h)
            ig_hist_add(h, elapsed);
#endif
    }

    if (ret < 0 && ret >= -MAX_ERRNO) {
        struct syscall_key key = {.nr = nr, .error = (u32)-ret};
#if PER_CGROUP
        key.cgroup_id = series.cgroup_id;
#endif
        struct error_counts *e = errors.lookup(&key);
        if (!e) {
            struct error_counts zero = {};
            errors.insert(&key, &zero);
            e = errors.lookup(&key);
        }
        if (e)
            e->errors++;
        else
            ig_drop(DROP_ERRORS);
    }
    return 0;
}

/* A thread that exits never returns from exit() or exit_group(): its slot
 * is freed here, for the next thread that needs one. */
int on_thread_exit(void *ctx)
{
    struct thread_state *t = find_thread((u32)bpf_get_current_pid_tgid());
    if (t) {
        t->start_ns = 0;
        ig_store(&t->tid, 0);
    }
    return 0;
}
