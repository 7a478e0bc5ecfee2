/* Helpers shared by every gadget's BPF program: log2 histograms, drop
 * accounting and the process-name map. Inlined into the gadget source by the loader: bcc rewrites map calls only
 * in the main file, not in headers.
 * A gadget defines IG_DROP_REASONS (and may define IG_MAX_COMMS) first. */
#ifndef IG_METRICS_H
#define IG_METRICS_H

/* Histogram slots: slot 0 holds the value 0 and slot k >= 1 holds the
 * integers [2^(k-1), 2^k - 1]. User space turns slot k into the upper-inclusive
 * bound 2^k - 1, so the exported buckets are exactly these. */
#ifndef IG_HIST_SLOTS
#define IG_HIST_SLOTS 40
#endif

struct ig_hist {
    u64 slots[IG_HIST_SLOTS];
    u64 sum;
};

static __always_inline u32 ig_hist_slot(u64 v)
{
    /* bcc's bpf_log2l() maps both 0 and 1 to 1; keep 0 apart. */
    u32 slot = v ? bpf_log2l(v) : 0;
    if (slot >= IG_HIST_SLOTS)
        slot = IG_HIST_SLOTS - 1;
    return slot;
}

/* Makes the compiler forget what it knows of `var`, so that a bounds check
 * after it is kept and made on the very register the access then uses: the
 * verifiers of Linux 6.1 and older lose a bound the compiler proved on a copy
 * ("unbounded memory access"). */
#define ig_barrier_var(var) asm volatile("" : "+r"(var))

static __always_inline void ig_hist_add(struct ig_hist *h, u64 value)
{
    u64 slot = ig_hist_slot(value);
    ig_barrier_var(slot);
    if (slot < IG_HIST_SLOTS)
        h->slots[slot]++;
    h->sum += value;
}

/* Atomic operations beyond add (compare-and-swap, exchange, fetch-and-add)
 * came with Linux 5.12: the loader defines IG_ATOMICS where the kernel's
 * verifier takes them. Elsewhere a compare-and-swap takes a lock made of a
 * hash map insert, which fails while the key is present, and gives up (as a
 * lost race would) when another CPU holds it; an exchange is a plain store,
 * which on 64-bit machines is single-copy atomic. */
#ifdef IG_ATOMICS
static __always_inline int ig_cas(u64 *p, u64 old, u64 new, u64 lock)
{
    return __sync_val_compare_and_swap(p, old, new) == old;
}

static __always_inline void ig_store(u64 *p, u64 value)
{
    __sync_lock_test_and_set(p, value);
}
#else
BPF_HASH(ig_locks, u64, u8, 1024);

/* `lock` names what `p` points at, e.g. a table slot's index: one lock per
 * word that is ever compared-and-swapped. */
static __always_inline int ig_cas(u64 *p, u64 old, u64 new, u64 lock)
{
    u8 held = 1;
    if (ig_locks.insert(&lock, &held))
        return 0;
    int swapped = *(volatile u64 *)p == old;
    if (swapped)
        *(volatile u64 *)p = new;
    ig_locks.delete(&lock);
    return swapped;
}

static __always_inline void ig_store(u64 *p, u64 value)
{
    asm volatile("" ::: "memory");   /* what was written before stays before */
    *(volatile u64 *)p = value;
}
#endif

/* A zeroed histogram to insert new keys with: too big for the BPF stack. */
BPF_ARRAY(ig_zero_hist, struct ig_hist, 1);

static __always_inline struct ig_hist *ig_empty_hist(void)
{
    u32 zero = 0;
    return ig_zero_hist.lookup(&zero);
}

/* Per-CPU counts of events the kernel side could not record because a map
 * was full, by the gadget's drop reason. Exported as a self-metric. */
BPF_PERCPU_ARRAY(drops, u64, IG_DROP_REASONS);

static __always_inline void ig_drop(u32 reason)
{
    u64 *n = drops.lookup(&reason);
    if (n)
        (*n)++;
}

/* Adds `value` to histogram `h` as found or made by map.lookup_or_try_init();
 * a NULL `h` (the map is full) is counted as a drop of `reason`. */
static __always_inline void ig_hist_record(struct ig_hist *h, u64 value, u32 reason)
{
    if (h)
        ig_hist_add(h, value);
    else
        ig_drop(reason);
}

/* Which processes a run looks at (--pid, --comm, --cgroup), decided in the
 * kernel. Without -DIG_FILTERED every process passes at no cost; with it the
 * loader fills ig_filter (and ig_filter_cgroup) before attaching. */
#ifndef IG_FILTER_MAX_PIDS
#define IG_FILTER_MAX_PIDS 16
#endif

#ifdef IG_FILTERED
struct ig_filter {
    u32 npids;
    u32 comm_set;
    u32 cgroup_set;
    u32 unused;
    u32 pids[IG_FILTER_MAX_PIDS];
    u64 comm[2];
};

BPF_ARRAY(ig_filter, struct ig_filter, 1);
BPF_CGROUP_ARRAY(ig_filter_cgroup, 1);

static __always_inline int ig_filter_pass(void)
{
    u32 zero = 0;
    struct ig_filter *f = ig_filter.lookup(&zero);
    if (!f)
        return 1;
    if (f->npids) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;
        int found = 0;
#pragma unroll
        for (int i = 0; i < IG_FILTER_MAX_PIDS; i++) {
            if (i < f->npids && f->pids[i] == tgid)
                found = 1;
        }
        if (!found)
            return 0;
    }
    if (f->comm_set) {
        u64 comm[2] = {};
        bpf_get_current_comm(&comm, sizeof(comm));
        if (comm[0] != f->comm[0] || comm[1] != f->comm[1])
            return 0;
    }
    /* the cgroup given or any cgroup below it */
    if (f->cgroup_set && ig_filter_cgroup.check_current_task(0) != 1)
        return 0;
    return 1;
}
#else
static __always_inline int ig_filter_pass(void)
{
    return 1;
}
#endif

/* Process names, taken in the kernel once per new key (a process may exit
 * before user space could read /proc/PID/comm). LRU: old pids age out. */
#ifndef IG_MAX_COMMS
#define IG_MAX_COMMS 16384
#endif

struct ig_comm {
    char comm[16];
};

BPF_TABLE("lru_hash", u32, struct ig_comm, comms, IG_MAX_COMMS);

static __always_inline void ig_remember_comm(u32 tgid)
{
    struct ig_comm c = {};
    bpf_get_current_comm(&c.comm, sizeof(c.comm));
    comms.update(&tgid, &c);
}

#endif
