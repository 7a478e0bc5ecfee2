/* The path of every cgroup of the cgroup v2 hierarchy made while ig-metrics
 * runs, by cgroup id, recorded as the kernel makes it: user space
 * (ig_metrics/k8s/cgrouprecorder.py) then resolves a cgroup that is already
 * gone when it first asks about it. One event per mkdir: nothing per packet
 * or syscall. */

/* Enough for the paths kubelet and the runtimes make (~200 bytes), and for
 * a kind node's, which the node's own cgroup comes before (~320). A longer
 * path is not kept: user space resolves it as if it were not recorded. */
#define CGROUP_PATH_SIZE 512
/* Cgroups made since user space last asked; the least recently made go first. */
#define MAX_CGROUPS 4096
/* The hierarchy id of cgroup v2: the kernel sets its default hierarchy up
 * first, as hierarchy 0 (/proc/cgroups lists the controllers bound to it
 * under 0); cgroup v1 hierarchies, which number their cgroups apart, have 1.. */
#define DEFAULT_HIERARCHY 0

struct cgroup_path {
    u32 size;                       /* the kernel's path with its NUL: more than
                                       CGROUP_PATH_SIZE when cut */
    char path[CGROUP_PATH_SIZE];
};

BPF_TABLE("lru_hash", u64, struct cgroup_path, cgroup_paths, MAX_CGROUPS);
/* A value is too big for the 512-byte BPF stack: it is built here. */
BPF_PERCPU_ARRAY(cgroup_path_scratch, struct cgroup_path, 1);

int on_cgroup_mkdir(struct tracepoint__cgroup__cgroup_mkdir *args)
{
    if (args->root != DEFAULT_HIERARCHY)
        return 0;
    u32 zero = 0;
    struct cgroup_path *value = cgroup_path_scratch.lookup(&zero);
    if (!value)
        return 0;
    /* __data_loc: the string's size in the high 16 bits, its offset from the
     * start of the event in the low 16. */
    u32 location = args->data_loc_path;
    value->size = location >> 16;
    bpf_probe_read_kernel_str(value->path, sizeof(value->path),
                              (char *)args + (location & 0xFFFF));
    u64 id = args->id;
    cgroup_paths.update(&id, value);
    return 0;
}
