/* Example gadget: signals sent, by the command that sent them, the command
 * that was sent them, the signal and what became of it. The whole gadget is
 * this file and gadget.yaml beside it; docs/gadget-format.md walks through
 * both. Run it with:
 *     sudo ig-metrics run --gadget examples/gadgets/signals --profile debug
 */

/* Every gadget says why an event could not be recorded: here, one reason. */
#define DROP_SIGNALS 0       /* the signals map was full */
#define IG_DROP_REASONS 1

/* The series key: one entry of `signals` per distinct value of it. Its
 * fields are what the attributes in gadget.yaml decode. */
struct signal_key {
    char sender[16];         /* the command sending the signal */
    char target[16];         /* the command it is sent to */
    u32 sig;
    u32 result;              /* delivered, ignored, already pending, ... */
};

/* The counters of one series: u64 each, named by the metrics' `values`. */
struct signal_counts {
    u64 signals;
};

/* The shared helpers (ig_filter_pass, ig_drop, histograms): the loader
 * inlines this header here, after IG_DROP_REASONS is defined. */
#include "ig_metrics.h"

/* Per-CPU hash: no two CPUs ever write the same counter. */
BPF_PERCPU_HASH(signals, struct signal_key, struct signal_counts, 1024);

/* signal:signal_generate runs in the context of the sender (for kill(),
 * tgkill(), ...; a signal the kernel raises, such as SIGCHLD on exit or
 * SIGSEGV, is sent by whatever process was running). Its fields are the
 * ones /sys/kernel/tracing/events/signal/signal_generate/format lists. */
int on_signal(struct tracepoint__signal__signal_generate *args)
{
    /* --pid/--comm/--cgroup: decided in the kernel, before any map work */
    if (!ig_filter_pass())
        return 0;
    /* Read context fields into locals first: the verifier refuses a context
     * pointer the compiler has moved. */
    int sig = args->sig, result = args->result;
    struct signal_key key = {};
    bpf_get_current_comm(&key.sender, sizeof(key.sender));
    bpf_probe_read_kernel(&key.target, sizeof(key.target), args->comm);
    key.sig = sig;
    key.result = result;

    struct signal_counts *c = signals.lookup(&key);
    if (!c) {
        struct signal_counts zero = {};
        signals.insert(&key, &zero);
        c = signals.lookup(&key);
    }
    if (c)
        c->signals++;
    else
        ig_drop(DROP_SIGNALS);
    return 0;
}
