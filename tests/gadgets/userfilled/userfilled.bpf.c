/* Test gadget: one counters map, filled from user space by tests and
 * benchmarks/export_cost.py; its hook exists because a gadget has one, and
 * does nothing. */
#define IG_DROP_REASONS 1

#include "ig_metrics.h"

#ifndef MAX_FLOWS
#define MAX_FLOWS 131072
#endif

struct flow_key {
    u32 pid;
    u16 port;
    u8 family;
    u8 pad;
    u8 peer[16];
};

struct flow_counts {
    u64 sent;
    u64 received;
};

BPF_HASH(flows, struct flow_key, struct flow_counts, MAX_FLOWS);

int on_getpgid(struct tracepoint__syscalls__sys_enter_getpgid *args)
{
    return 0;
}
