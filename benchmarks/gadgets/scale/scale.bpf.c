/* Benchmark gadget: maps shaped like the tcp gadget's, filled from user space
 * with any number of series, so the sampler and exporters can be measured at
 * 1k, 10k and 100k series without generating that much traffic. Its one
 * program never runs on its own (getppid of pid 0). */
#define IG_DROP_REASONS 1

#ifndef MAX_SERIES
#define MAX_SERIES 131072
#endif

struct series_key {
    u32 pid;
    u16 server_port;
    u8 family;
    u8 direction;
    u8 peer[16];
};

struct series_counts {
    u64 sent;
    u64 received;
    u64 opened;
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(counts, struct series_key, struct series_counts, MAX_SERIES);
BPF_PERCPU_HASH(latency, struct series_key, struct ig_hist, MAX_SERIES);

int on_getppid(struct tracepoint__syscalls__sys_enter_getppid *args)
{
    return 0;
}
