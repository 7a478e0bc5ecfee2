/* Test gadget: counts getpgid() calls of TARGET_PID by their argument, in a
 * per-CPU array indexed by it (arguments 0 to 15). */
#define IG_DROP_REASONS 1

#include "ig_metrics.h"

struct call_counts {
    u64 calls;
};

BPF_PERCPU_ARRAY(calls, struct call_counts, 16);

int on_getpgid(struct tracepoint__syscalls__sys_enter_getpgid *args)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u32 argument = args->pid;
    if (tgid != TARGET_PID || argument >= 16)
        return 0;
    struct call_counts *c = calls.lookup(&argument);
    if (c)
        c->calls++;
    return 0;
}
