/* Test gadget: 1 KiB on the stack, twice the BPF limit. */
#define IG_DROP_REASONS 1

#include "ig_metrics.h"

struct event_key {
    u32 pid;
};

BPF_PERCPU_HASH(events, struct event_key, u64, 16);

int on_exec(void *ctx)
{
    char buffer[1024];
    bpf_get_current_comm(buffer, sizeof(buffer));
    struct event_key key = {.pid = buffer[1000]};
    events.increment(key);
    return 0;
}
