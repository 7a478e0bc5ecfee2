/* dns gadget: DNS queries and responses over UDP by server, query type,
 * response code and the process that asked, and the time from each query to
 * its response, read from the packets themselves.
 *
 * The packets: a socket filter on an AF_PACKET socket (SOCK_DGRAM, every
 * protocol) in the agent's network namespace sees each packet sent or
 * received on any of its interfaces, from the network header on, whichever
 * resolver or program made it, and the packets of pods (network namespaces
 * of their own) where they cross this one: on the host end of their veth
 * pairs. It returns 0, so the socket never queues a packet. A DNS message is
 * counted once, where it first enters this namespace:
 *  - loopback shows each packet twice (sent, then received): the received
 *    copy counts;
 *  - a packet forwarded (routed or bridged: a pod's query to a server beyond
 *    the host or in another pod) is seen arriving and again leaving; the
 *    leaving copy has an ingress interface and is skipped;
 *  - a packet seen twice arriving (on a bridge port, then on the bridge, when
 *    it is for the host) or twice leaving (through a bridge, then its port)
 *    is the same message again within DUPLICATE_NS, and skipped.
 *
 * The process: a socket filter runs in no process' context, and it sees a
 * send's packet before the send call returns (sock:sock_send_length comes
 * after it). The route lookup of a UDP flow to port 53 runs in the sender's
 * context before its first packet: at connect() of a connected socket, at
 * every sendto() of an unconnected one, in whichever network namespace
 * (fib:fib_table_lookup, fib6:fib6_table_lookup). It records (client port,
 * server) -> process in `senders`; a query is matched there by its source
 * port and server, its response takes the process of its query.
 *
 * A query is matched to its response by (client port, DNS id, query type),
 * without the addresses, which NAT may change between them (a Service's DNAT
 * answers from a pod's address; masquerade sends from the node's). Socket
 * filters run with bottom halves disabled and never nest on a CPU; the
 * per-CPU counters still use atomic adds, as they cost nothing uncontended
 * and keep the program correct wherever it runs.
 */

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_UDP 17
#define PACKET_OUTGOING 4
#define LOOPBACK_IFINDEX 1   /* lo is interface 1 in every network namespace */
#define DNS_PORT 53
#define DNS_HEADER_LEN 12
#define MAX_LABELS 128       /* a name is at most 255 bytes: at most 127 labels */
#define RCODE_NONE 0xff      /* queries carry no response code */
/* Copies of one message on two interfaces come microseconds apart; a client
 * asks again with the same id and port after hundreds of milliseconds. */
#define DUPLICATE_NS 10000000ULL

#define DROP_SERIES 0        /* counts map full */
#define DROP_HISTOGRAMS 1    /* latency map full */
#define IG_DROP_REASONS 2

#ifndef MAX_SERIES
#define MAX_SERIES 16384
#endif
#ifndef MAX_HISTOGRAMS
#define MAX_HISTOGRAMS 4096
#endif
#ifndef MAX_PENDING
#define MAX_PENDING 16384
#endif
#ifndef MAX_SENDERS
#define MAX_SENDERS 16384
#endif

/* The series key. */
struct dns_key {
    u64 cgroup_id;           /* the asking process's cgroup v2 id; 0: unknown */
    u32 pid;                 /* the asking process; 0: unknown */
    u8 server[16];           /* the DNS server's address (IPv4: first 4 bytes) */
    u16 qtype;
    u8 rcode;                /* RCODE_NONE for queries */
    u8 family;               /* 4 or 6 */
};

struct dns_counts {
    u64 queries;
    u64 responses;
};

/* A client port and the server it sends to (all zeros: any server). */
struct flow {
    u8 server[16];
    u16 port;
    u8 family;
    u8 unused;
};

/* The process behind a flow. */
struct sender {
    u64 cgroup_id;
    u32 pid;
    u32 unused;
};

/* A query awaiting its response. */
struct query_id {
    u16 client_port;
    u16 id;
    u16 qtype;
    u8 family;
    u8 unused;
};

struct query {
    u64 asked_ns;
    u64 cgroup_id;
    u32 pid;
    u32 unused;
    u8 server[16];           /* as the client asked it (a Service's, before DNAT) */
};

/* One DNS message, to know it again on another interface. */
struct message_id {
    u8 client[16];
    u8 server[16];
    u16 client_port;
    u16 id;
    u16 qtype;
    u8 family;
    u8 is_response;
};

/* What one packet says, once parsed. */
struct dns_message {
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u8 family;
    u32 dns_offset;          /* where the DNS header starts in the packet */
};

#include "ig_metrics.h"

BPF_PERCPU_HASH(counts, struct dns_key, struct dns_counts, MAX_SERIES);
BPF_PERCPU_HASH(latency, struct dns_key, struct ig_hist, MAX_HISTOGRAMS);
/* LRU: a query never answered, a socket long closed, age out. */
BPF_TABLE("lru_hash", struct query_id, struct query, pending, MAX_PENDING);
BPF_TABLE("lru_hash", struct flow, struct sender, senders, MAX_SENDERS);
BPF_TABLE("lru_hash", struct message_id, u64, seen, MAX_PENDING);

/* --- who sends: route lookups in the sender's context ------------------- */

/* Records the current process as the sender of `port` to `server`, and to
 * any server (for packets whose destination NAT changed after the lookup).
 * A process that --pid/--comm/--cgroup leave out removes the flow's earlier
 * sender instead: the port is its own now. */
static __always_inline void remember_sender(u8 family, u16 port, const u8 *server)
{
    struct flow to_server = {}, to_any = {};
    to_server.port = to_any.port = port;
    to_server.family = to_any.family = family;
    __builtin_memcpy(to_server.server, server, 16);
    if (!ig_filter_pass()) {
        senders.delete(&to_server);
        senders.delete(&to_any);
        return;
    }
    struct sender s = {};
    s.pid = bpf_get_current_pid_tgid() >> 32;
    s.cgroup_id = bpf_get_current_cgroup_id();
    senders.update(&to_server, &s);
    senders.update(&to_any, &s);
    ig_remember_comm(s.pid);
}

/* An output route lookup (the input interface is loopback) of a UDP flow to
 * port 53 with its source port bound. */
int on_route_lookup(struct tracepoint__fib__fib_table_lookup *args)
{
    int iif = args->iif;
    u8 proto = args->proto;
    u16 sport = args->sport, dport = args->dport;
    if (iif != LOOPBACK_IFINDEX || proto != IPPROTO_UDP || dport != DNS_PORT || !sport)
        return 0;
    u8 server[16] = {};
    __builtin_memcpy(server, args->dst, 4);
    remember_sender(4, sport, server);
    return 0;
}

int on_route6_lookup(struct tracepoint__fib6__fib6_table_lookup *args)
{
    int iif = args->iif;
    u8 proto = args->proto;
    u16 sport = args->sport, dport = args->dport;
    if (iif != LOOPBACK_IFINDEX || proto != IPPROTO_UDP || dport != DNS_PORT || !sport)
        return 0;
    u8 server[16];
    __builtin_memcpy(server, args->dst, 16);
    remember_sender(6, sport, server);
    return 0;
}

/* --- the packets --------------------------------------------------------- */

struct ipv4_header {
    u8 version_ihl;
    u8 tos;
    u16 total_length;
    u16 id;
    u16 fragment;
    u8 ttl;
    u8 protocol;
    u16 checksum;
    u8 saddr[4];
    u8 daddr[4];
} __attribute__((packed));

struct ipv6_header {
    u32 version_class_label;
    u16 payload_length;
    u8 next_header;
    u8 hop_limit;
    u8 saddr[16];
    u8 daddr[16];
} __attribute__((packed));

struct udp_header {
    u16 sport;
    u16 dport;
    u16 length;
    u16 checksum;
} __attribute__((packed));

struct dns_header {
    u16 id;
    u16 flags;
    u16 questions;
    u16 answers;
    u16 authorities;
    u16 additionals;
} __attribute__((packed));

/* The IP and UDP headers; 0 unless this is UDP to or from port 53. Only the
 * first fragment of a datagram holds the DNS header. */
static __always_inline int parse_ip_udp(struct __sk_buff *skb, u32 protocol,
                                        struct dns_message *m)
{
    u32 udp_offset;
    if (protocol == bpf_htons(ETH_P_IP)) {
        struct ipv4_header ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
            return 0;
        if ((ip.version_ihl >> 4) != 4 || ip.protocol != IPPROTO_UDP ||
            (bpf_ntohs(ip.fragment) & 0x1fff))
            return 0;
        m->family = 4;
        __builtin_memcpy(m->saddr, ip.saddr, 4);
        __builtin_memcpy(m->daddr, ip.daddr, 4);
        udp_offset = (ip.version_ihl & 0x0f) * 4;
    } else if (protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6_header ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
            return 0;
        /* UDP right after the fixed header: extension headers are not followed */
        if (ip.next_header != IPPROTO_UDP)
            return 0;
        m->family = 6;
        __builtin_memcpy(m->saddr, ip.saddr, 16);
        __builtin_memcpy(m->daddr, ip.daddr, 16);
        udp_offset = sizeof(ip);
    } else {
        return 0;
    }
    struct udp_header udp;
    if (bpf_skb_load_bytes(skb, udp_offset, &udp, sizeof(udp)))
        return 0;
    m->sport = bpf_ntohs(udp.sport);
    m->dport = bpf_ntohs(udp.dport);
    if (m->sport != DNS_PORT && m->dport != DNS_PORT)
        return 0;
    m->dns_offset = udp_offset + sizeof(udp);
    return 1;
}

/* The QTYPE of the first question, after its name; 0 if malformed. */
static __always_inline u16 question_type(struct __sk_buff *skb, u32 offset)
{
    for (int i = 0; i < MAX_LABELS; i++) {
        u8 length;
        if (bpf_skb_load_bytes(skb, offset, &length, 1))
            return 0;
        offset += 1;
        if (length == 0) {
            u16 qtype;
            if (bpf_skb_load_bytes(skb, offset, &qtype, sizeof(qtype)))
                return 0;
            return bpf_ntohs(qtype);
        }
        if (length & 0xc0)   /* a compression pointer cannot start a message's first name */
            return 0;
        offset += length;
    }
    return 0;
}

/* Whether this message was counted on another interface a moment ago. */
static __always_inline int seen_before(struct message_id *message, u64 now)
{
    u64 *at = seen.lookup(message);
    if (at && now - *at < DUPLICATE_NS)
        return 1;
    seen.update(message, &now);
    return 0;
}

/* Who sends from `port` to `server`; a packet this namespace sends itself
 * (`local`) may also match a lookup made before destination NAT. */
static __always_inline struct sender *find_sender(u8 family, u16 port, const u8 *server,
                                                  int local)
{
    struct flow f = {};
    f.port = port;
    f.family = family;
    __builtin_memcpy(f.server, server, 16);
    struct sender *s = senders.lookup(&f);
    if (s || !local)
        return s;
    __builtin_memset(f.server, 0, 16);
    return senders.lookup(&f);
}

static __always_inline struct dns_counts *series_counts(struct dns_key *key)
{
    struct dns_counts zero = {};
    struct dns_counts *c = counts.lookup_or_try_init(key, &zero);
    if (!c)
        ig_drop(DROP_SERIES);
    return c;
}

static __always_inline void count_query(struct dns_message *m, struct query_id *qid,
                                        struct dns_key *key, int local, u64 now)
{
    __builtin_memcpy(key->server, m->daddr, 16);
    key->rcode = RCODE_NONE;
    struct sender *who = find_sender(m->family, m->sport, m->daddr, local);
    if (who) {
        key->pid = who->pid;
        key->cgroup_id = who->cgroup_id;
    }
#ifdef IG_FILTERED
    if (!key->pid)           /* not asked by a process the filter lets through */
        return;
#endif
    struct dns_counts *c = series_counts(key);
    if (c)
        __sync_fetch_and_add(&c->queries, 1);
    struct query q = {};
    q.asked_ns = now;
    q.pid = key->pid;
    q.cgroup_id = key->cgroup_id;
    __builtin_memcpy(q.server, m->daddr, 16);
    pending.update(qid, &q);
}

static __always_inline void count_response(struct dns_message *m, struct query_id *qid,
                                           struct dns_key *key, u8 rcode, u64 now)
{
    key->rcode = rcode;
    u64 asked = 0;
    struct query *q = pending.lookup(qid);
    if (q) {
        asked = q->asked_ns;
        key->pid = q->pid;
        key->cgroup_id = q->cgroup_id;
        __builtin_memcpy(key->server, q->server, 16);
        pending.delete(qid);
    } else {
        /* asked before the start, or a duplicate response */
        __builtin_memcpy(key->server, m->saddr, 16);
        struct sender *who = find_sender(m->family, m->dport, m->saddr, 0);
        if (who) {
            key->pid = who->pid;
            key->cgroup_id = who->cgroup_id;
        }
    }
#ifdef IG_FILTERED
    if (!key->pid)
        return;
#endif
    struct dns_counts *c = series_counts(key);
    if (c)
        __sync_fetch_and_add(&c->responses, 1);
    if (!asked)
        return;
    u64 took = now > asked ? now - asked : 0;
    struct ig_hist *empty = ig_empty_hist();
    if (empty)
        ig_hist_record(latency.lookup_or_try_init(key, empty), took / 1000, DROP_HISTOGRAMS);
}

int on_packet(struct __sk_buff *skb)
{
    u32 protocol = skb->protocol, pkt_type = skb->pkt_type, ifindex = skb->ifindex;
    u32 ingress = skb->ingress_ifindex;     /* 0 for a packet made on this host */
    int outgoing = pkt_type == PACKET_OUTGOING;
    if (outgoing && (ifindex == LOOPBACK_IFINDEX || ingress))
        return 0;
    /* sent by a process of this network namespace */
    int local = outgoing || ifindex == LOOPBACK_IFINDEX;
    struct dns_message m = {};
    if (!parse_ip_udp(skb, protocol, &m))
        return 0;
    struct dns_header dns;
    if (bpf_skb_load_bytes(skb, m.dns_offset, &dns, sizeof(dns)) || !dns.questions)
        return 0;
    u16 flags = bpf_ntohs(dns.flags);
    int is_response = flags >> 15;
    /* a query goes to port 53, a response comes from it */
    if ((is_response && m.sport != DNS_PORT) || (!is_response && m.dport != DNS_PORT))
        return 0;
    u16 qtype = question_type(skb, m.dns_offset + DNS_HEADER_LEN);
    if (!qtype)
        return 0;

    u64 now = bpf_ktime_get_ns();
    struct message_id message = {};
    message.id = dns.id;
    message.qtype = qtype;
    message.family = m.family;
    message.is_response = is_response;
    if (is_response) {
        __builtin_memcpy(message.client, m.daddr, 16);
        __builtin_memcpy(message.server, m.saddr, 16);
        message.client_port = m.dport;
    } else {
        __builtin_memcpy(message.client, m.saddr, 16);
        __builtin_memcpy(message.server, m.daddr, 16);
        message.client_port = m.sport;
    }
    if (seen_before(&message, now))
        return 0;

    struct query_id qid = {};
    qid.client_port = message.client_port;
    qid.id = dns.id;
    qid.qtype = qtype;
    qid.family = m.family;
    struct dns_key key = {};
    key.qtype = qtype;
    key.family = m.family;
    if (is_response)
        count_response(&m, &qid, &key, flags & 0x0f, now);
    else
        count_query(&m, &qid, &key, local, now);
    return 0;
}
