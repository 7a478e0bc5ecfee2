/* file gadget: file opens by command and result (ok or errno), from the
 * open, openat, openat2 and creat syscall tracepoints.
 *
 * By default only the syscalls' returns are traced: the key is the command
 * and the errno, so the number of series stays small. With the parameter
 * path_prefix set (PATH_PREFIX_LEN > 0), each open's path is read at syscall
 * entry, opens outside the prefix are left out, and the path becomes part of
 * the key: the enter programs keep it by thread id until the return.
 */

#define DROP_OPENS 0         /* opens map full */
#define DROP_PENDING 1       /* no room to keep a path until its open returns */
#define IG_DROP_REASONS 2

#ifndef MAX_OPENS
#define MAX_OPENS 8192
#endif
#ifndef MAX_PENDING
#define MAX_PENDING 4096
#endif

/* PATH_PREFIX (a string literal), PATH_PREFIX_LEN and PATH_LENGTH come from
 * the gadget's parameters (gadget.yaml); defaults for compiling by hand: */
#ifndef PATH_PREFIX
#define PATH_PREFIX ""
#define PATH_PREFIX_LEN 0
#endif
#ifndef PATH_LENGTH
#define PATH_LENGTH 128
#endif
#if PATH_PREFIX_LEN >= PATH_LENGTH
#error "path_prefix must be shorter than path_length"
#endif

/* The series. */
struct open_key {
    u64 cgroup_id;           /* the opening process's cgroup v2 id */
    char command[16];
    u32 error;               /* errno of a failed open, else 0 */
    u32 unused;
#if PATH_PREFIX_LEN > 0
    char path[PATH_LENGTH];  /* as the process passed it, cut to PATH_LENGTH - 1 */
#endif
};

struct open_counts {
    u64 opens;
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(opens, struct open_key, struct open_counts, MAX_OPENS);

static __always_inline void count_open(struct open_key *key)
{
    struct open_counts *c = opens.lookup(key);
    if (!c) {
        struct open_counts zero = {};
        opens.insert(key, &zero);
        c = opens.lookup(key);
    }
    if (c)
        c->opens++;
    else
        ig_drop(DROP_OPENS);
}

#if PATH_PREFIX_LEN > 0
/* Opens in progress under the prefix, by thread id: the key they will count
 * under, path filled in at entry, the rest at return. Kept in the map, not
 * on the 512-byte BPF stack (LRU: a thread killed mid-open ages out). */
BPF_TABLE("lru_hash", u32, struct open_key, pending, MAX_PENDING);

static __always_inline int has_prefix(const char *path)
{
#pragma unroll
    for (int i = 0; i < PATH_PREFIX_LEN; i++) {
        if (path[i] != PATH_PREFIX[i])
            return 0;
    }
    return 1;
}

static __always_inline void open_entered(const char *filename)
{
    if (!ig_filter_pass())
        return;
    struct open_key key = {};
    if (bpf_probe_read_user_str(key.path, sizeof(key.path), filename) <= 0)
        return;
    if (!has_prefix(key.path))
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (pending.update(&tid, &key))
        ig_drop(DROP_PENDING);
}

static __always_inline void open_returned(long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct open_key *key = pending.lookup(&tid);
    if (!key)
        return;          /* outside the prefix, filtered out, or before the run */
    bpf_get_current_comm(key->command, sizeof(key->command));
    key->cgroup_id = bpf_get_current_cgroup_id();
    key->error = ret < 0 ? (u32)-ret : 0;
    count_open(key);
    pending.delete(&tid);
}
#else
/* not attached without a prefix (`when: path_prefix` in gadget.yaml) */
static __always_inline void open_entered(const char *filename)
{
}

static __always_inline void open_returned(long ret)
{
    if (!ig_filter_pass())
        return;
    struct open_key key = {};
    bpf_get_current_comm(&key.command, sizeof(key.command));
    key.cgroup_id = bpf_get_current_cgroup_id();
    key.error = ret < 0 ? (u32)-ret : 0;
    count_open(&key);
}
#endif

int on_open_enter(struct tracepoint__syscalls__sys_enter_open *args)
{
    open_entered(args->filename);
    return 0;
}

int on_openat_enter(struct tracepoint__syscalls__sys_enter_openat *args)
{
    open_entered(args->filename);
    return 0;
}

int on_openat2_enter(struct tracepoint__syscalls__sys_enter_openat2 *args)
{
    open_entered(args->filename);
    return 0;
}

int on_creat_enter(struct tracepoint__syscalls__sys_enter_creat *args)
{
    open_entered(args->pathname);
    return 0;
}

int on_open_exit(struct tracepoint__syscalls__sys_exit_open *args)
{
    open_returned(args->ret);
    return 0;
}

int on_openat_exit(struct tracepoint__syscalls__sys_exit_openat *args)
{
    open_returned(args->ret);
    return 0;
}

int on_openat2_exit(struct tracepoint__syscalls__sys_exit_openat2 *args)
{
    open_returned(args->ret);
    return 0;
}

int on_creat_exit(struct tracepoint__syscalls__sys_exit_creat *args)
{
    open_returned(args->ret);
    return 0;
}
