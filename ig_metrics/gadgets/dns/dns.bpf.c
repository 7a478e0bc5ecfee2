/* dns gadget: DNS queries and responses over UDP by server, query type and
 * response code, and the time from each query to its response, read from
 * the packets themselves.
 *
 * The program is a socket filter on an AF_PACKET socket (SOCK_DGRAM, every
 * protocol) in the host's network namespace: it sees each packet sent or
 * received on any interface, from the network header on, whichever resolver
 * or program made it. It returns 0, so the socket never queues a packet.
 * Loopback shows every packet twice (sent, then received): only the received
 * copy is counted there.
 *
 * A query is matched to its response by (client, client port, server, DNS id,
 * query type). Socket filters run with bottom halves disabled and never nest
 * on a CPU; the per-CPU counters still use atomic adds, as they cost nothing
 * uncontended and keep the program correct wherever it runs.
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

#define DROP_SERIES 0        /* counts map full */
#define DROP_HISTOGRAMS 1    /* latency map full */
#define IG_DROP_REASONS 2

#ifndef MAX_SERIES
#define MAX_SERIES 4096
#endif
#ifndef MAX_PENDING
#define MAX_PENDING 16384
#endif

/* The series key. */
struct dns_key {
    u8 server[16];           /* the DNS server's address (IPv4: first 4 bytes) */
    u16 qtype;
    u8 rcode;                /* RCODE_NONE for queries */
    u8 family;               /* 4 or 6 */
};

struct dns_counts {
    u64 queries;
    u64 responses;
};

/* A query awaiting its response. */
struct query_id {
    u8 client[16];
    u8 server[16];
    u16 client_port;
    u16 id;
    u16 qtype;
    u8 family;
    u8 unused;
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
BPF_PERCPU_HASH(latency, struct dns_key, struct ig_hist, MAX_SERIES);
/* LRU: a query never answered ages out instead of filling the map. */
BPF_TABLE("lru_hash", struct query_id, u64, pending, MAX_PENDING);

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

static __always_inline struct dns_counts *series_counts(struct dns_key *key)
{
    struct dns_counts zero = {};
    struct dns_counts *c = counts.lookup_or_try_init(key, &zero);
    if (!c)
        ig_drop(DROP_SERIES);
    return c;
}

int on_packet(struct __sk_buff *skb)
{
    u32 protocol = skb->protocol, pkt_type = skb->pkt_type, ifindex = skb->ifindex;
    if (pkt_type == PACKET_OUTGOING && ifindex == LOOPBACK_IFINDEX)
        return 0;
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

    struct dns_key key = {};
    key.qtype = qtype;
    key.family = m.family;
    struct query_id query = {};
    query.id = dns.id;
    query.qtype = qtype;
    query.family = m.family;
    if (is_response) {
        __builtin_memcpy(key.server, m.saddr, 16);
        __builtin_memcpy(query.server, m.saddr, 16);
        __builtin_memcpy(query.client, m.daddr, 16);
        query.client_port = m.dport;
        key.rcode = flags & 0x0f;
    } else {
        __builtin_memcpy(key.server, m.daddr, 16);
        __builtin_memcpy(query.server, m.daddr, 16);
        __builtin_memcpy(query.client, m.saddr, 16);
        query.client_port = m.sport;
        key.rcode = RCODE_NONE;
    }

    u64 now = bpf_ktime_get_ns();
    struct dns_counts *c = series_counts(&key);
    if (!is_response) {
        if (c)
            __sync_fetch_and_add(&c->queries, 1);
        pending.update(&query, &now);
        return 0;
    }
    if (c)
        __sync_fetch_and_add(&c->responses, 1);
    u64 *asked = pending.lookup(&query);
    if (!asked)
        return 0;            /* asked before the start, or a duplicate response */
    u64 took = now > *asked ? now - *asked : 0;
    pending.delete(&query);
    struct ig_hist *empty = ig_empty_hist();
    if (empty)
        ig_hist_record(latency.lookup_or_try_init(&key, empty), took / 1000, DROP_HISTOGRAMS);
    return 0;
}
