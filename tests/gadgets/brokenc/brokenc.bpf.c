/* Test gadget: line 16 uses a variable that does not exist. */
#define IG_DROP_REASONS 1

#include "ig_metrics.h"

struct event_key {
    u32 pid;
};

BPF_PERCPU_HASH(events, struct event_key, u64, 16);

int on_exec(void *ctx)
{
    struct event_key key = {};
    key.pid = bpf_get_current_pid_tgid() >> 32;
    key.pid += no_such_variable;
    return 0;
}
