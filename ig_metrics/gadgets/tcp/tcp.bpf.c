/* tcp gadget: bytes, connections, retransmits and resets per process and
 * peer, from stable tracepoints only (no kprobes, no struct sock reads).
 *
 * Each TCP socket has a slot in `sockets`, an array used as an open-addressed
 * table keyed by the socket's address: an array lookup is inlined by the
 * verifier, while a hash lookup costs ~55 ns per event on the reference
 * machine, more than everything else a send or receive does here.
 *
 * How counts stay exact: a socket's counters live in its slot (atomic adds).
 * When the kernel destroys the socket no send or receive can follow, so the
 * slot is copied unchanged into `graveyard` under the slot's id and freed.
 * User space reads the live slots, then takes (lookup-and-delete) the
 * graveyard, counting a graveyard entry instead of a live slot with the same
 * id: nothing is lost or counted twice between two reads, and user space never
 * deletes anything the kernel still writes.
 *
 * Series carry the process's cgroup (its container and pod, resolved in user
 * space), taken with bpf_get_current_cgroup_id() where the process is known:
 * at connect() and listen(), and when a process first does I/O on a socket.
 * Never per send or receive: the fast path is unchanged.
 */

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

#define DIR_UNKNOWN 0
#define DIR_OUTBOUND 1   /* active open: this host connected */
#define DIR_INBOUND 2    /* passive open: this host accepted */

#define SOCK_ESTABLISHED 1   /* the connection reached ESTABLISHED */
#define SOCK_CLOSED 2        /* its close was counted */
#define SOCK_LATE 4          /* first seen after it opened (before we started) */

#define DROP_SOCKETS 0       /* no free slot near the socket's hash */
#define DROP_GRAVEYARD 1     /* graveyard full: the slot stays live instead */
#define DROP_FLOWS 2
#define DROP_HISTOGRAMS 3
#define IG_DROP_REASONS 4

#ifndef SOCKET_BITS
#define SOCKET_BITS 16
#endif
#define SOCKET_SLOTS (1 << SOCKET_BITS)
#define SOCKET_PROBES 8
#define SLOT_CLAIMED 1       /* sk value of a slot being filled in */
/* owner value while a process takes a socket: not a pid (user space reads the
 * low 32 bits, 0), so nobody counts into the slot until owner_cgroup is set */
#define OWNER_CLAIMING (1ULL << 32)

#ifndef MAX_GRAVEYARD
#define MAX_GRAVEYARD 16384
#endif
#ifndef MAX_FLOWS
#define MAX_FLOWS 16384
#endif
#ifndef MAX_HISTOGRAMS
#define MAX_HISTOGRAMS 4096
#endif

/* The series a count belongs to. */
struct flow_key {
    u64 cgroup_id;       /* the process's cgroup v2 id; 0: unknown */
    u32 pid;
    u16 server_port;
    u8 family;           /* 4 or 6 */
    u8 direction;
    u8 peer[16];
};

/* Counts that are not tied to a socket slot: connection events, I/O by a
 * process other than the socket's owner, events before an owner is known. */
struct flow_counts {
    u64 sent;
    u64 received;
    u64 retransmits;
    u64 resets_sent;
    u64 resets_received;
    u64 opened;
    u64 closed;
};

/* One socket. sk and id come first and id_end last: user space copies a slot
 * front to back and skips it when id != id_end (freed and reused mid-copy). */
struct sock_state {
    u64 sk;                  /* 0 free, SLOT_CLAIMED being filled, else the socket */
    u64 id;                  /* unique per connection; the graveyard key */
    struct flow_key key;     /* the series of its counts (pid, cgroup_id: see owner) */
    u64 owner;               /* process doing I/O; 0 until one does (u64: cmpxchg) */
    /* the owner's cgroup: after owner, written before it, as user space reads
     * owner first and this after (front to back) */
    u64 owner_cgroup;
    u64 sent;                /* counters: atomic adds */
    u64 received;
    u64 retransmits;
    u64 resets_sent;
    u64 resets_received;
    u64 syn_ns;
    u64 established_ns;
    u32 opener;              /* process that connected (outbound) or listens (inbound) */
    u32 flags;
    u64 id_end;
};

/* A listening port's process, and its cgroup (for connections it accepts). */
struct listener {
    u32 tgid;
    u32 unused;
    u64 cgroup_id;
};

#include "ig_metrics.h"

/* mmapable: user space reads the slots in place, without a syscall copy */
BPF_F_TABLE("array", int, struct sock_state, sockets, SOCKET_SLOTS, BPF_F_MMAPABLE);
BPF_HASH(graveyard, u64, struct sock_state, MAX_GRAVEYARD);
#ifdef IG_ATOMICS
BPF_ARRAY(next_id, u64, 1);
#else
BPF_PERCPU_ARRAY(next_id, u64, 1);   /* ids: this CPU's count, with the CPU on top */
#endif
BPF_PERCPU_HASH(flows, struct flow_key, struct flow_counts, MAX_FLOWS);
BPF_PERCPU_HASH(connect_latency, struct flow_key, struct ig_hist, MAX_HISTOGRAMS);
BPF_PERCPU_HASH(connection_lifetime, struct flow_key, struct ig_hist, MAX_HISTOGRAMS);
BPF_HASH(listeners, u16, struct listener, 4096);

static __always_inline u32 current_tgid(void)
{
    return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline u32 socket_hash(u64 sk)
{
    return (u32)((sk * 0x9E3779B97F4A7C15ULL) >> (64 - SOCKET_BITS));
}

static __always_inline struct sock_state *find_socket(u64 sk)
{
    u32 base = socket_hash(sk);
#pragma unroll
    for (int i = 0; i < SOCKET_PROBES; i++) {
        u32 idx = (base + i) & (SOCKET_SLOTS - 1);
        struct sock_state *s = sockets.lookup(&idx);
        if (s && s->sk == sk)
            return s;
    }
    return 0;
}

/* Takes a free slot for `sk` and fills it from `init`; NULL when the probe
 * window is full (counted) or another CPU published `sk` first. */
static __always_inline struct sock_state *claim_socket(u64 sk, struct sock_state *init)
{
    u32 base = socket_hash(sk);
    u32 zero = 0;
    u64 *ids = next_id.lookup(&zero);
    if (!ids)
        return 0;
#pragma unroll
    for (int i = 0; i < SOCKET_PROBES; i++) {
        u32 idx = (base + i) & (SOCKET_SLOTS - 1);
        struct sock_state *s = sockets.lookup(&idx);
        if (!s || s->sk != 0)
            continue;
        if (!ig_cas(&s->sk, 0, SLOT_CLAIMED, idx))
            continue;
#ifdef IG_ATOMICS
        u64 id = __sync_fetch_and_add(ids, 1) + 1;
#else
        u64 id = ((u64)bpf_get_smp_processor_id() << 48) | ++*ids;
#endif
        /* id_end first, then the body, then id, then sk: see struct sock_state */
        ig_store(&s->id_end, id);
        s->key = init->key;
        s->owner = init->owner;
        s->owner_cgroup = init->owner_cgroup;
        s->sent = 0;
        s->received = 0;
        s->retransmits = 0;
        s->resets_sent = 0;
        s->resets_received = 0;
        s->syn_ns = init->syn_ns;
        s->established_ns = init->established_ns;
        s->opener = init->opener;
        s->flags = init->flags;
        ig_store(&s->id, id);
        ig_store(&s->sk, sk);
        return s;
    }
    ig_drop(DROP_SOCKETS);
    return 0;
}

/* Moves a dead socket's final counts to the graveyard and frees its slot.
 * With the graveyard full the slot stays: it is still read, so still counted. */
static __always_inline void bury(struct sock_state *s)
{
    if (s->sent | s->received | s->retransmits | s->resets_sent | s->resets_received) {
        u64 id = s->id;
        if (graveyard.insert(&id, s)) {
            ig_drop(DROP_GRAVEYARD);
            return;
        }
    }
    ig_store(&s->sk, 0);
}

static __always_inline struct flow_counts *flow_counters(struct flow_key *key)
{
    struct flow_counts *c = flows.lookup(key);
    if (c)
        return c;
    struct flow_counts zero = {};
    flows.insert(key, &zero);
    c = flows.lookup(key);
    if (!c)
        ig_drop(DROP_FLOWS);
    return c;
}

/* The same for I/O by the current task, which becomes the series' process. */
static __always_inline struct flow_counts *flow_counter_for_io(struct flow_key *key)
{
    struct flow_counts *c = flows.lookup(key);
    if (c)
        return c;
    ig_remember_comm(key->pid);
    return flow_counters(key);
}

static __always_inline void add_io(struct flow_counts *c, s64 len, int is_send)
{
    /* atomic although per-CPU: a raw tracepoint program may interrupt us */
    if (is_send)
        __sync_fetch_and_add(&c->sent, len);
    else
        __sync_fetch_and_add(&c->received, len);
}

/* The peer of a connection; an IPv4-mapped IPv6 peer (::ffff:a.b.c.d on a
 * dual-stack socket) is recorded as the IPv4 address it is on the wire. */
static __always_inline void fill_peer(struct flow_key *key, u16 family,
                                      const u8 *daddr, const u8 *daddr_v6)
{
    if (family == AF_INET6) {
        u8 v6[16];
        __builtin_memcpy(v6, daddr_v6, 16);
        u64 head = *(u64 *)v6;
        u32 mark = *(u32 *)(v6 + 8);
        if (head == 0 && mark == 0xffff0000) {   /* 0000:0000:0000:0000:0000:ffff */
            key->family = 4;
            __builtin_memcpy(key->peer, v6 + 12, 4);
        } else {
            key->family = 6;
            __builtin_memcpy(key->peer, v6, 16);
        }
    } else {
        key->family = 4;
        __builtin_memcpy(key->peer, daddr, 4);
    }
}

int on_set_state(struct tracepoint__sock__inet_sock_set_state *args)
{
    if (args->protocol != IPPROTO_TCP)
        return 0;
    /* Read every context field once, up front: the verifier refuses a
     * context pointer the compiler has moved to pick between two fields. */
    u64 sk = (u64)args->skaddr;
    int old = args->oldstate, new = args->newstate;
    u16 sport = args->sport, dport = args->dport, family = args->family;
    u64 now = bpf_ktime_get_ns();

    if (new == TCP_LISTEN) {
        if (!ig_filter_pass())
            return 0;
        struct listener l = {};
        l.tgid = current_tgid();
        l.cgroup_id = bpf_get_current_cgroup_id();
        listeners.update(&sport, &l);
        ig_remember_comm(l.tgid);
        return 0;
    }
    if (old == TCP_LISTEN && new == TCP_CLOSE) {
        listeners.delete(&sport);
        return 0;
    }

    struct sock_state *s = find_socket(sk);
    if (new == TCP_SYN_SENT || new == TCP_SYN_RECV) {
        /* A new connection at this address: a slot still holding it belongs
         * to a socket whose destruction we did not see. */
        if (s)
            bury(s);
        if (new == TCP_SYN_SENT && !ig_filter_pass())
            return 0;
        struct sock_state init = {};
        fill_peer(&init.key, family, args->daddr, args->daddr_v6);
        if (new == TCP_SYN_SENT) {
            /* connect() runs in the caller's context */
            u32 tgid = current_tgid();
            init.owner = tgid;
            init.opener = tgid;
            init.key.cgroup_id = init.owner_cgroup = bpf_get_current_cgroup_id();
            init.key.direction = DIR_OUTBOUND;
            init.key.server_port = dport;
            init.syn_ns = now;
            ig_remember_comm(tgid);
        } else {
            /* the child socket of a listener, made in softirq context: the
             * process that will read it is not known yet */
            struct listener *listener = listeners.lookup(&sport);
#ifdef IG_FILTERED
            if (!listener)      /* only listeners that passed the filter are known */
                return 0;
#endif
            if (listener) {
                init.opener = listener->tgid;
                init.key.cgroup_id = listener->cgroup_id;
            }
            init.key.direction = DIR_INBOUND;
            init.key.server_port = sport;
        }
        claim_socket(sk, &init);
        return 0;
    }

    if (!s) {
        /* A connection that opened before we started. Under a process filter
         * it waits for its first byte, when its process is known. */
#ifdef IG_FILTERED
        return 0;
#endif
        struct sock_state init = {};
        init.flags = SOCK_LATE | SOCK_ESTABLISHED;
        fill_peer(&init.key, family, args->daddr, args->daddr_v6);
        if (listeners.lookup(&sport)) {
            init.key.direction = DIR_INBOUND;
            init.key.server_port = sport;
        } else {
            init.key.direction = DIR_OUTBOUND;
            init.key.server_port = dport;
        }
        s = claim_socket(sk, &init);
        if (!s)
            return 0;
    }

    /* Connection events belong to the opener; a connection that opened
     * before we started has none, so they go to the process using it. */
    struct flow_key conn = s->key;
    if (!s->opener) {
        conn.pid = (u32)s->owner;
        conn.cgroup_id = conn.pid ? s->owner_cgroup : 0;
    } else {
        conn.pid = s->opener;
    }
    if (new == TCP_ESTABLISHED && !(s->flags & SOCK_ESTABLISHED)) {
        s->flags |= SOCK_ESTABLISHED;
        s->established_ns = now;
        struct flow_counts *c = flow_counters(&conn);
        if (c)
            __sync_fetch_and_add(&c->opened, 1);
        struct ig_hist *empty = ig_empty_hist();
        if (s->syn_ns && empty)
            ig_hist_record(connect_latency.lookup_or_try_init(&conn, empty),
                           (now - s->syn_ns) / 1000, DROP_HISTOGRAMS);
    } else if (new == TCP_CLOSE && (s->flags & SOCK_ESTABLISHED) &&
               !(s->flags & SOCK_CLOSED)) {
        s->flags |= SOCK_CLOSED;
        struct flow_counts *c = flow_counters(&conn);
        if (c)
            __sync_fetch_and_add(&c->closed, 1);
        struct ig_hist *empty = ig_empty_hist();
        if (s->established_ns && empty)
            ig_hist_record(connection_lifetime.lookup_or_try_init(&conn, empty),
                           (now - s->established_ns) / 1000000, DROP_HISTOGRAMS);
    }
    return 0;
}

int on_destroy(struct tracepoint__tcp__tcp_destroy_sock *args)
{
    u64 sk = (u64)args->skaddr;
    /* Every slot: two CPUs may have claimed one each for the same socket. */
    u32 base = socket_hash(sk);
#pragma unroll
    for (int i = 0; i < SOCKET_PROBES; i++) {
        u32 idx = (base + i) & (SOCKET_SLOTS - 1);
        struct sock_state *s = sockets.lookup(&idx);
        if (s && s->sk == sk)
            bury(s);
    }
    return 0;
}

/* Counts `len` bytes sent or received on socket `sk` by the current process.
 * The fast path is one inlined array probe, one helper call and one atomic add. */
static __always_inline void count_io(u64 sk, u16 family, s64 len, int is_send)
{
    struct sock_state *s = find_socket(sk);
    u32 tgid = current_tgid();
    if (s && s->owner == tgid)
        goto own;
    if (!ig_filter_pass())
        return;
    if (!s) {
        /* A socket that connected before we started and has not changed
         * state since: its peer is unknown, its bytes and process are not. */
        struct sock_state init = {};
        init.owner = tgid;
        init.opener = tgid;
        init.key.cgroup_id = init.owner_cgroup = bpf_get_current_cgroup_id();
        init.flags = SOCK_LATE | SOCK_ESTABLISHED;
        init.key.family = family == AF_INET6 ? 6 : 4;
        s = claim_socket(sk, &init);
        if (s)
            ig_remember_comm(tgid);
        else
            s = find_socket(sk);   /* another CPU published it first */
        if (!s) {
            /* no slot: still count the bytes, without the peer */
            struct flow_key key = {};
            key.pid = tgid;
            key.cgroup_id = init.key.cgroup_id;
            key.family = init.key.family;
            struct flow_counts *c = flow_counter_for_io(&key);
            if (c)
                add_io(c, len, is_send);
            return;
        }
    }
    if (s->owner != tgid) {
        /* the lock of a socket's owner: its address, odd (slots' locks are
         * their indexes, and socket addresses are even) */
        if (s->owner == 0 && ig_cas(&s->owner, 0, OWNER_CLAIMING, sk | 1)) {
            s->owner_cgroup = bpf_get_current_cgroup_id();
            ig_store(&s->owner, (u64)tgid);     /* publishes both */
            ig_remember_comm(tgid);
        } else {
            /* another process uses the socket (inherited across fork) */
            struct flow_key key = s->key;
            key.pid = tgid;
            key.cgroup_id = bpf_get_current_cgroup_id();
            struct flow_counts *c = flow_counter_for_io(&key);
            if (c)
                add_io(c, len, is_send);
            return;
        }
    }
own:
    if (is_send)
        __sync_fetch_and_add(&s->sent, len);
    else
        __sync_fetch_and_add(&s->received, len);
}

/* Bytes as the send and receive calls return them (Linux 6.3 and later).
 * The loader defines IG_HOOK_<PROGRAM> for each program it attaches: bcc
 * cannot compile a program whose tracepoint this kernel lacks. */
#ifdef IG_HOOK_ON_SEND
int on_send(struct tracepoint__sock__sock_send_length *args)
{
    if (args->protocol != IPPROTO_TCP || args->ret <= 0)
        return 0;
    count_io((u64)args->sk, args->family, args->ret, 1);
    return 0;
}
#endif

#ifdef IG_HOOK_ON_RECV
int on_recv(struct tracepoint__sock__sock_recv_length *args)
{
    if (args->protocol != IPPROTO_TCP || args->ret <= 0 || (args->flags & MSG_PEEK))
        return 0;
    count_io((u64)args->sk, args->family, args->ret, 0);
    return 0;
}
#endif

/* Before Linux 6.3: what tcp_sendmsg and tcp_recvmsg return, the same bytes
 * for TCP as the calls above see. A thread's socket (and a receive's flags)
 * is kept from the function's entry to its return. */
#if defined(IG_HOOK_ON_TCP_SENDMSG) || defined(IG_HOOK_ON_TCP_RECVMSG)
#include <uapi/linux/ptrace.h>      /* struct pt_regs, for PT_REGS_PARMn() */

struct io_call {
    u64 sk;
    u64 flags;
};

BPF_HASH(io_calls, u64, struct io_call, 16384);

/* Linux 5.19 dropped tcp_recvmsg's `nonblock` argument, before `flags`.
 * IG_KERNEL_VERSION is the running kernel's (a << 16 | b << 8 | c). */
#if IG_KERNEL_VERSION >= 0x051300
#define TCP_RECVMSG_FLAGS(ctx) PT_REGS_PARM4(ctx)
#else
#define TCP_RECVMSG_FLAGS(ctx) PT_REGS_PARM5(ctx)
#endif

/* The socket's family: struct sock_common's skc_family, which has sat at
 * offset 16 since Linux 2.6 (after the address pair, the hash and the port
 * pair), so no kernel header is needed to read it. */
#define SKC_FAMILY_OFFSET 16

static __always_inline u16 socket_family(u64 sk)
{
    u16 family = 0;
    bpf_probe_read_kernel(&family, sizeof(family), (void *)(sk + SKC_FAMILY_OFFSET));
    return family;
}

static __always_inline void io_call_begins(u64 sk, u64 flags)
{
    u64 thread = bpf_get_current_pid_tgid();
    struct io_call call = {.sk = sk, .flags = flags};
    io_calls.update(&thread, &call);
}

static __always_inline void io_call_returns(long ret, int is_send)
{
    u64 thread = bpf_get_current_pid_tgid();
    struct io_call *call = io_calls.lookup(&thread);
    if (!call)
        return;
    u64 sk = call->sk, flags = call->flags;
    io_calls.delete(&thread);
    if (ret <= 0 || (flags & MSG_PEEK))
        return;
    count_io(sk, socket_family(sk), ret, is_send);
}
#endif

#ifdef IG_HOOK_ON_TCP_SENDMSG
int on_tcp_sendmsg(struct pt_regs *ctx)
{
    io_call_begins(PT_REGS_PARM1(ctx), 0);
    return 0;
}

int on_tcp_sendmsg_return(struct pt_regs *ctx)
{
    io_call_returns(PT_REGS_RC(ctx), 1);
    return 0;
}
#endif

#ifdef IG_HOOK_ON_TCP_RECVMSG
int on_tcp_recvmsg(struct pt_regs *ctx)
{
    io_call_begins(PT_REGS_PARM1(ctx), TCP_RECVMSG_FLAGS(ctx));
    return 0;
}

int on_tcp_recvmsg_return(struct pt_regs *ctx)
{
    io_call_returns(PT_REGS_RC(ctx), 0);
    return 0;
}
#endif

#define EVENT_RETRANSMIT 0
#define EVENT_RESET_SENT 1
#define EVENT_RESET_RECEIVED 2

/* Retransmits and resets happen in softirq context: they belong to the
 * socket's owner, never to the current task. */
static __always_inline void count_socket_event(u64 sk, int event)
{
    struct sock_state *s = find_socket(sk);
    if (!s)
        return;
    if (s->owner && s->owner != OWNER_CLAIMING) {
        if (event == EVENT_RETRANSMIT)
            __sync_fetch_and_add(&s->retransmits, 1);
        else if (event == EVENT_RESET_SENT)
            __sync_fetch_and_add(&s->resets_sent, 1);
        else
            __sync_fetch_and_add(&s->resets_received, 1);
        return;
    }
    struct flow_key key = s->key;
    key.pid = s->opener;
    struct flow_counts *c = flow_counters(&key);
    if (!c)
        return;
    if (event == EVENT_RETRANSMIT)
        __sync_fetch_and_add(&c->retransmits, 1);
    else if (event == EVENT_RESET_SENT)
        __sync_fetch_and_add(&c->resets_sent, 1);
    else
        __sync_fetch_and_add(&c->resets_received, 1);
}

int on_retransmit(struct tracepoint__tcp__tcp_retransmit_skb *args)
{
    count_socket_event((u64)args->skaddr, EVENT_RETRANSMIT);
    return 0;
}

/* A SYN-ACK sent again for a connection not yet accepted (no socket exists
 * for it yet): it belongs to the process listening on the port. */
int on_retransmit_synack(struct tracepoint__tcp__tcp_retransmit_synack *args)
{
    u16 sport = args->sport;
    struct flow_key key = {};
    /* The format has no family field on Linux 5.10; its daddr_v6 holds
     * every peer, an IPv4 one as ::ffff:a.b.c.d, which fill_peer unmaps. */
    fill_peer(&key, AF_INET6, args->daddr, args->daddr_v6);
    key.server_port = sport;
    key.direction = DIR_INBOUND;
    struct listener *listener = listeners.lookup(&sport);
#ifdef IG_FILTERED
    if (!listener)
        return 0;
#endif
    if (listener) {
        key.pid = listener->tgid;
        key.cgroup_id = listener->cgroup_id;
    }
    struct flow_counts *c = flow_counters(&key);
    if (c)
        __sync_fetch_and_add(&c->retransmits, 1);
    return 0;
}

/* A raw tracepoint: the tcp_send_reset format names a kernel enum that older
 * kernel headers lack. Only its first argument, the socket address, is used. */
int on_send_reset(struct bpf_raw_tracepoint_args *ctx)
{
    u64 sk = ctx->args[0];
    if (sk) {
        count_socket_event(sk, EVENT_RESET_SENT);
        return 0;
    }
    /* a reset the kernel sends for no socket (e.g. to a closed port): it is
     * no process's, so a process filter leaves it out */
#ifdef IG_FILTERED
    return 0;
#endif
    struct flow_key key = {};
    struct flow_counts *c = flow_counters(&key);
    if (c)
        __sync_fetch_and_add(&c->resets_sent, 1);
    return 0;
}

int on_receive_reset(struct tracepoint__tcp__tcp_receive_reset *args)
{
    count_socket_event((u64)args->skaddr, EVENT_RESET_RECEIVED);
    return 0;
}
