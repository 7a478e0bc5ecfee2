/* Test gadget: records the argument of getpgid() calls made by TARGET_PID
 * into a log2 histogram, so a test can place values exactly on the kernel's
 * bucket boundaries and check what is exported. */
#define IG_DROP_REASONS 1

#include "ig_metrics.h"

struct probe_key {
    u32 pid;
};

BPF_HASH(values, struct probe_key, struct ig_hist, 16);

int on_getpgid(struct tracepoint__syscalls__sys_enter_getpgid *args)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid != TARGET_PID)
        return 0;
    struct probe_key key = {.pid = tgid};
    struct ig_hist *empty = ig_empty_hist();
    if (empty)
        ig_hist_record(values.lookup_or_try_init(&key, empty), (u64)args->pid, 0);
    return 0;
}
