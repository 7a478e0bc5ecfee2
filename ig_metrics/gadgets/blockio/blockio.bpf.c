/* blockio gadget: block I/O bytes, requests and latency by device and
 * operation, from the block_rq_issue and block_rq_complete tracepoints.
 *
 * Requests are counted when they complete, as /proc/diskstats counts them;
 * their latency runs from issue (handed to the driver) to completion. A
 * request is matched across the two tracepoints by (device, operation,
 * sector): the formats give no request identity. A flush carries no sector
 * (issued as 0, completed as -1): flushes of one device are matched by
 * device alone, and one hardware queue has at most one flush in flight.
 *
 * A request's series carries the cgroup of the task that issued it to the
 * driver, taken at issue (one helper call per request) and kept with the issue
 * time until completion, which runs in interrupt context.
 */

#define SECTOR_SIZE 512

#define OP_READ 0
#define OP_WRITE 1
#define OP_FLUSH 2
#define OP_DISCARD 3
#define OP_OTHER 4

#define DROP_DEVICES 0       /* io map full */
#define DROP_HISTOGRAMS 1    /* latency map full */
#define IG_DROP_REASONS 2

#ifndef MAX_SERIES
#define MAX_SERIES 4096
#endif
#ifndef MAX_IN_FLIGHT
#define MAX_IN_FLIGHT 16384
#endif

/* The series key. */
struct io_key {
    u64 cgroup_id;           /* the issuing task's cgroup v2 id; 0: not seen issued */
    u32 dev;                 /* the kernel's dev_t: major << 20 | minor */
    u8 op;                   /* OP_* */
    u8 unused[3];
};

struct io_counts {
    u64 bytes;               /* read and write requests only */
    u64 requests;
};

/* A request between issue and completion. */
struct request_id {
    u32 dev;
    u32 op;
    u64 sector;
};

struct issue {
    u64 ns;                  /* when it was issued */
    u64 cgroup_id;           /* by a task of this cgroup */
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(io, struct io_key, struct io_counts, MAX_SERIES);
BPF_PERCPU_HASH(latency, struct io_key, struct ig_hist, MAX_SERIES);
/* LRU: a request whose completion never matches (e.g. completed in parts,
 * each with its own sector) ages out instead of filling the map. */
BPF_TABLE("lru_hash", struct request_id, struct issue, issued, MAX_IN_FLIGHT);

/* The operation from the rwbs string blk_fill_rwbs() writes: an optional
 * 'F' (preflush), then R, W, D (discard, secure erase), F (flush) or N. */
static __always_inline u8 operation(char first, char second)
{
    char op = first;
    if (first == 'F' && (second == 'R' || second == 'W' || second == 'D' ||
                         second == 'F' || second == 'N'))
        op = second;
    switch (op) {
    case 'R':
        return OP_READ;
    case 'W':
        return OP_WRITE;
    case 'F':
        return OP_FLUSH;
    case 'D':
        return OP_DISCARD;
    default:
        return OP_OTHER;
    }
}

static __always_inline void request_id(struct request_id *id, u32 dev, u8 op, u64 sector)
{
    id->dev = dev;
    id->op = op;
    id->sector = op == OP_FLUSH ? 0 : sector;
}

/* Issue runs in the context of the task handing the request to the driver:
 * the submitting process for direct and synchronous I/O, a kernel worker for
 * write-back and flushes. The process filter judges that task. */
int on_issue(struct tracepoint__block__block_rq_issue *args)
{
    u32 dev = args->dev;
    u64 sector = args->sector;
    char first = args->rwbs[0], second = args->rwbs[1];
    if (!ig_filter_pass())
        return 0;
    struct request_id id = {};
    request_id(&id, dev, operation(first, second), sector);
    struct issue issue = {};
    issue.ns = bpf_ktime_get_ns();
    issue.cgroup_id = bpf_get_current_cgroup_id();
    issued.update(&id, &issue);
    return 0;
}

int on_complete(struct tracepoint__block__block_rq_complete *args)
{
    u32 dev = args->dev;
    u64 sector = args->sector;
    u32 sectors = args->nr_sector;
    char first = args->rwbs[0], second = args->rwbs[1];
    u8 op = operation(first, second);

    u64 issued_ns = 0, cgroup_id = 0;
    /* An empty read or write (an fsync's preflush request, finished by the
     * flush machinery) was never issued: nothing to match. */
    if (sectors || (op != OP_READ && op != OP_WRITE)) {
        struct request_id id = {};
        request_id(&id, dev, op, sector);
        struct issue *found = issued.lookup(&id);
        if (found) {
            issued_ns = found->ns;
            cgroup_id = found->cgroup_id;
            issued.delete(&id);
        }
    }
#ifdef IG_FILTERED
    if (!issued_ns)          /* issued before the start, or by a filtered-out task */
        return 0;
#endif

    struct io_key key = {};
    key.cgroup_id = cgroup_id;
    key.dev = dev;
    key.op = op;
    struct io_counts zero = {};
    struct io_counts *counts = io.lookup_or_try_init(&key, &zero);
    if (counts) {
        /* plain adds: per-CPU, and tracepoint programs never nest on a CPU */
        counts->requests++;
        if (op == OP_READ || op == OP_WRITE)
            counts->bytes += (u64)sectors * SECTOR_SIZE;
    } else {
        ig_drop(DROP_DEVICES);
    }

    if (issued_ns) {
        u64 now = bpf_ktime_get_ns();
        u64 took = now > issued_ns ? now - issued_ns : 0;
        struct ig_hist *empty = ig_empty_hist();
        if (empty)
            ig_hist_record(latency.lookup_or_try_init(&key, empty), took / 1000,
                           DROP_HISTOGRAMS);
    }
    return 0;
}
