/*
 * Internal to the fast path (native/steps.c, native/batch.c): the state
 * behind the opaque struct lispd_dp. Not part of the cffi surface.
 */
#ifndef LISPD_DATAPLANE_H
#define LISPD_DATAPLANE_H
#include <sys/socket.h>
#include <netinet/in.h>
#include "bytes.h"
#include "gso.h"
#include "hashindex.h"
#include "lispd_native.h"

struct dp_tun {
    int fd;
    uint32_t instance_id;
    int vnet;               /* IFF_VNET_HDR: a virtio-net header on every read/write */
    int uso;                /* and UDP super-packets may be written */
};

struct dp_segment {
    int fd;
    uint32_t vni;
    uint8_t family;
    uint8_t local[16];
    int learning;
    int vnet, uso;
    uint32_t n_flood;
    struct lispd_locator flood[LISPD_MAX_FLOOD];
};

/* One direction's pending sends: whole outer packets for one raw socket. */
struct dp_sendq {
    uint32_t n;
    struct mmsghdr msgs[LISPD_BATCH];
    struct iovec iovs[LISPD_BATCH];
    struct sockaddr_in6 addrs[LISPD_BATCH]; /* large enough for either family */
};

/* One remembered ITR: its address as (hi, lo) like the FIB's keys. */
struct dp_recent_itr {
    uint64_t hi, lo;
    uint64_t last_seen_ms;
    uint64_t seq;           /* when it was last seen, in touches: breaks ties */
    uint8_t family;
};

/* The recent-ITR table (native/recent.c): a dense array of at most
 * LISPD_RECENT_ITRS entries and the open-addressing index over it. */
struct dp_recent {
    uint32_t size;
    uint64_t seq;
    struct dp_recent_itr last;  /* the last touch */
    struct dp_recent_itr entries[LISPD_RECENT_ITRS];
    struct lispd_hi index;
};

int dp_recent_init(struct dp_recent *r);
void dp_recent_free(struct dp_recent *r);

/* address (4 or 16 octets of family) seen at now_ms. */
void dp_recent_seen(struct dp_recent *r, uint8_t family, const uint8_t *address,
                    uint64_t now_ms);

/* The UDP sockets that carry trains of one outer family. */
struct dp_senders {
    uint32_t n;
    int fds[LISPD_GSO_SENDERS];
    uint16_t ports[LISPD_GSO_SENDERS];
};

/* What every datagram of a train shares, read off the outer headers the
 * plain step built. */
struct train {
    int fd;
    uint8_t family;
    uint8_t source[16], destination[16];
    uint16_t port;
    uint8_t tos, ttl;
    uint8_t tunnel[8];              /* the LISP or VXLAN header */
    int fresh_nonce;                /* LISP with N: a nonce per datagram */
};

/* A train's UDP payload: under what one IP packet's length field can say,
 * so the kernel takes it whole (IPv6 headers included). */
enum { DP_TRAIN_BYTES = 65000 };

/* Packets of a batch, each encapsulated whole by the plain step, waiting to
 * leave as one train: same socket, addresses, TOS and TTL, every datagram
 * the size of the first but the last. */
struct dp_trainq {
    uint32_t n;
    struct train key;
    size_t size, bytes, outer_bytes;
    int short_last;
    struct iovec iov[LISPD_TRAIN];          /* the UDP payloads */
    struct iovec packets[LISPD_TRAIN];      /* their buffers, for a fallback */
    struct lispd_verdict verdicts[LISPD_TRAIN];
};

/* Room to cut one super-packet into whole segments, each behind headroom:
 * what the slow path (misses, drops, floods, ICMP, refused trains) uses. */
enum { SLOW_AREA = 2 * LISPD_BUFFER, TRAIN_HEADER = 8 + SEGMENT_HEADER_MAX };

struct lispd_dp {
    struct lispd_fib *mapcache;
    struct lispd_fib *database;
    struct lispd_fdb *fdb;
    struct lispd_counters counters;
    uint64_t rng;

    int has_rloc4, has_rloc6;
    uint8_t rloc4[4], rloc6[16];
    uint32_t mtu;
    int raw4_fd, raw6_fd;

    uint32_t n_tuns;
    struct dp_tun tuns[LISPD_MAX_TUNS];
    uint32_t n_segments;
    struct dp_segment segments[LISPD_MAX_SEGMENTS];
    uint32_t n_served;      /* RLOC prefixes of the ITRs this is the PETR of */
    struct lispd_fib_key served[LISPD_MAX_SERVED_ITRS];

    /* LISPD_BATCH buffers of LISPD_BUFFER octets, reused by every batch. */
    uint8_t *buffers;
    struct dp_sendq send4, send6;
    struct mmsghdr rx_msgs[LISPD_BATCH];
    struct iovec rx_iovs[LISPD_BATCH];
    struct sockaddr_in6 rx_addrs[LISPD_BATCH];
    uint8_t rx_control[LISPD_BATCH][64];
    uint8_t scratch[1280];  /* an ICMP answer is built here */
    uint8_t *inject;        /* LISPD_BUFFER octets for lispd_itr_inject */
    struct dp_recent recent;

    /* Offloads (native/offload.c). */
    struct dp_senders gso4, gso6;
    struct dp_trainq trainq;
    uint16_t rx_gso[LISPD_BATCH];   /* UDP_GRO: datagram size of a train, 0 */
    uint64_t *sent_packets, *sent_bytes; /* where a full send queue's flush counts */
    uint8_t *probe;                 /* LISPD_BUFFER: a super-packet's first segment */
    uint8_t *slow;                  /* SLOW_AREA octets, handed out per batch */
    size_t slow_used;
    int slow_pinned;                /* a miss points into the slow area */
    uint8_t train_headers[LISPD_TRAIN][TRAIN_HEADER];
    struct iovec train_iov[2 * LISPD_TRAIN];
    struct coalescer coalescer;     /* writes of UDP_GRO trains to one device */
    int coalescer_fd;
    uint64_t *coalescer_packets, *coalescer_bytes;
};

static inline size_t dp_addr_len(uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? 16 : 4;
}

static inline const struct dp_senders *dp_senders_of(const struct lispd_dp *dp, uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? &dp->gso6 : &dp->gso4;
}

/* RFC 9300 section 5.3 and RFC 7348 section 5: the UDP source port is a
 * hash of the inner flow, from the dynamic range 49152-65535; with train
 * senders, the port of the sender the flow's trains leave by. */
static inline uint16_t dp_source_port(const struct lispd_dp *dp, uint8_t family, uint32_t hash)
{
    const struct dp_senders *s = dp_senders_of(dp, family);
    return s->n ? s->ports[hash % s->n] : (uint16_t)(0xC000 | (hash & 0x3FFF));
}

/* Shared by native/batch.c and native/offload.c. */
/* address (4 or 16 octets of family) and port as a socket address in *a
 * (big enough for either family); returns its length. */
socklen_t dp_sockaddr(uint8_t family, const uint8_t *address, uint16_t port,
                      struct sockaddr_in6 *a);
uint32_t dp_next_nonce(struct lispd_dp *dp);
void dp_enqueue(struct lispd_dp *dp, uint8_t *buf, const struct lispd_verdict *v);
void dp_flush_queues(struct lispd_dp *dp);
int dp_send_now(struct lispd_dp *dp, const uint8_t *buf, const struct lispd_verdict *v);
int dp_write_out(struct lispd_dp *dp, int fd, int vnet, const uint8_t *buf,
                 const struct lispd_verdict *v, uint64_t *packets, uint64_t *bytes);
void dp_add_miss(struct lispd_dp *dp, const uint8_t *buf, const struct lispd_verdict *v,
                 struct lispd_miss *misses, uint32_t cap, uint32_t *n);

/* The ITR's and VXLAN transmit's plain step on one packet behind headroom
 * in buf (native/batch.c). */
struct itr_context {
    uint32_t tun;
    struct lispd_miss *misses;
    uint32_t misses_cap;
    uint32_t *n_misses;
};
void dp_itr_packet(struct lispd_dp *dp, uint8_t *buf, size_t len, struct itr_context *c);
void dp_vxlan_tx_frame(struct lispd_dp *dp, uint8_t *buf, size_t len, uint32_t segment);

/* native/offload.c: a super-packet read behind headroom in buf, len octets
 * after its virtio-net header h. */
void dp_itr_super(struct lispd_dp *dp, uint8_t *buf, size_t len, const struct vnet_hdr *h,
                  struct itr_context *c);
void dp_vxlan_tx_super(struct lispd_dp *dp, uint8_t *buf, size_t len, const struct vnet_hdr *h,
                       uint32_t segment);
/* A decapsulated packet for a device with IFF_VNET_HDR (l3: where its IP
 * header is): coalesced with the packets of its flow before and after it
 * in the batch, or written alone. It must stay put until the batch ends. */
void dp_write_decapsulated(struct lispd_dp *dp, int fd, size_t l3, int uso, uint8_t *p,
                           size_t len, uint64_t *packets, uint64_t *bytes);
void dp_coalescer_flush(struct lispd_dp *dp);
void dp_offload_init(struct lispd_dp *dp);  /* once, from lispd_dp_new */
/* Queue a SEND verdict's packet on the train of its family's senders (-1:
 * none has its source port); send what is queued. */
int dp_train_add(struct lispd_dp *dp, uint8_t *buf, const struct lispd_verdict *v);
void dp_train_flush(struct lispd_dp *dp);

#endif
