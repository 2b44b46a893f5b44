/*
 * The offload path of the fast path: super-packets read from a TUN/TAP
 * opened with IFF_VNET_HDR leave as UDP_SEGMENT trains (one sendmsg for up
 * to LISPD_TRAIN encapsulated segments, whose payloads are gathered from
 * the read buffer where they lie), and datagrams that arrived in UDP_GRO
 * trains are written back to the device as coalesced super-packets (one
 * writev). Whatever does not fit that shape (misses, drops, floods, ICMP
 * answers, a train the kernel refuses) is cut into whole segments and goes
 * through the plain steps one by one: the slow path.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <netinet/in.h>

#include "dataplane.h"
#include "wire.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

enum {
    ETHER = 14,
    TUNNEL_HEADER = 8,      /* LISP and VXLAN alike */
    LISP_N = 0x80,
    /* A train's UDP payload: under what one IP packet's length field can
     * say, so the kernel takes it whole (IPv6 headers included). */
    TRAIN_BYTES = DP_TRAIN_BYTES
};

/* -- the slow path ------------------------------------------------------------ */

/* Room for one whole segment behind headroom, good until the end of the
 * batch; NULL when there is none left (queued sends are flushed first and
 * the area reused, unless a miss handed to Python points into it). */
static uint8_t *slow_slot(struct lispd_dp *dp, size_t len)
{
    size_t need = (LISPD_HEADROOM + len + 7) & ~(size_t)7;
    if (need > SLOW_AREA)
        return NULL;
    if (dp->slow_used + need > SLOW_AREA) {
        dp_flush_queues(dp);
        if (dp->slow_pinned)
            return NULL;
        dp->slow_used = 0;
    }
    uint8_t *slot = dp->slow + dp->slow_used;
    dp->slow_used += need;
    return slot;
}

typedef void (*segment_step)(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context);

/* Segments from..end of the super-packet p, each whole in a slot of its
 * own, to step. */
static void cut_slowly(struct lispd_dp *dp, const uint8_t *p, size_t len,
                       const struct gso_plan *plan, uint32_t from, segment_step step,
                       void *context)
{
    for (uint32_t k = from; k < plan->segments; k++) {
        uint8_t header[SEGMENT_HEADER_MAX];
        const uint8_t *chunk;
        size_t chunk_len;
        size_t hlen = gso_segment(p, len, plan, k, header, &chunk, &chunk_len);
        uint8_t *slot = slow_slot(dp, hlen + chunk_len);
        if (slot == NULL) {
            dp->counters.drops[LISPD_DROP_BAD_OFFLOAD] += plan->segments - k;
            return;
        }
        memcpy(slot + LISPD_HEADROOM, header, hlen);
        memcpy(slot + LISPD_HEADROOM + hlen, chunk, chunk_len);
        step(dp, slot, hlen + chunk_len, context);
    }
}

static void itr_slow_step(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context)
{
    struct itr_context *c = context;
    uint32_t before = *c->n_misses;
    dp_itr_packet(dp, buf, len, c);
    if (*c->n_misses != before)
        dp->slow_pinned = 1;
}

static void vxlan_slow_step(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context)
{
    dp_vxlan_tx_frame(dp, buf, len, *(const uint32_t *)context);
}

/* -- trains ---------------------------------------------------------------------- */

/* From the outer headers the plain step built at o for SEND verdict v;
 * -1 when no train sender has its source port (none for the family). */
static int train_of(const struct lispd_dp *dp, const uint8_t *o, const struct lispd_verdict *v,
                    struct train *t)
{
    int v6 = v->family == LISPD_FAMILY_IPV6;
    size_t ip = v6 ? IPV6_HEADER : IPV4_HEADER, alen = v6 ? 16 : 4;
    const struct dp_senders *s = dp_senders_of(dp, v->family);
    uint16_t port = get_be16(o + ip);
    t->fd = -1;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->ports[i] == port)
            t->fd = s->fds[i];
    if (t->fd < 0)
        return -1;
    t->family = v->family;
    memcpy(t->source, o + (v6 ? 8 : 12), alen);
    memcpy(t->destination, o + (v6 ? 24 : 16), alen);
    t->port = get_be16(o + ip + 2);
    t->tos = v6 ? (uint8_t)((o[0] & 0x0F) << 4 | o[1] >> 4) : o[1];
    t->ttl = v6 ? o[7] : o[8];
    memcpy(t->tunnel, o + ip + UDP_HEADER, TUNNEL_HEADER);
    t->fresh_nonce = t->port == LISPD_LISP_PORT && (t->tunnel[0] & LISP_N);
    return 0;
}

/* Fill control message c of m; the next one's place. */
static struct cmsghdr *put_cmsg(struct msghdr *m, struct cmsghdr *c, int level, int type,
                                const void *data, size_t len)
{
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    return CMSG_NXTHDR(m, c);
}

/* One sendmsg: the datagrams in iov, every one size octets but the last
 * (a datagram may be gathered from several iovecs), towards t, from t's
 * source, with t's TOS and TTL. Whether the kernel took it. */
static int send_group(const struct train *t, struct iovec *iov, size_t n_iov, uint16_t size)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                 2 * CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct sockaddr_in6 to;
    struct msghdr m = {.msg_name = &to,
                       .msg_namelen = dp_sockaddr(t->family, t->destination, t->port, &to),
                       .msg_iov = iov, .msg_iovlen = n_iov, .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
    int v6 = t->family == LISPD_FAMILY_IPV6;
    int tos = t->tos, ttl = t->ttl ? t->ttl : 1;
    struct cmsghdr *c = put_cmsg(&m, CMSG_FIRSTHDR(&m), IPPROTO_UDP, UDP_SEGMENT, &size,
                                 sizeof size);
    if (v6) {
        struct in6_pktinfo info = {.ipi6_ifindex = 0};
        memcpy(&info.ipi6_addr, t->source, 16);
        c = put_cmsg(&m, c, IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof info);
        c = put_cmsg(&m, c, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
        put_cmsg(&m, c, IPPROTO_IPV6, IPV6_HOPLIMIT, &ttl, sizeof ttl);
    } else {
        struct in_pktinfo info = {.ipi_ifindex = 0};
        memcpy(&info.ipi_spec_dst, t->source, 4);
        c = put_cmsg(&m, c, IPPROTO_IP, IP_PKTINFO, &info, sizeof info);
        c = put_cmsg(&m, c, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
        put_cmsg(&m, c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    }
    size_t want = 0;
    for (size_t i = 0; i < n_iov; i++)
        want += iov[i].iov_len;
    ssize_t r;
    do
        r = sendmsg(t->fd, &m, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)want;
}

/* The super-packet p as trains behind t's tunnel header. Returns the first
 * segment not sent: plan->segments when all went. */
static uint32_t send_train(struct lispd_dp *dp, const struct train *t, const uint8_t *p,
                           size_t len, const struct gso_plan *plan, uint64_t *packets,
                           uint64_t *bytes)
{
    size_t outer = (t->family == LISPD_FAMILY_IPV6 ? IPV6_HEADER : IPV4_HEADER) + UDP_HEADER;
    uint32_t k = 0;
    while (k < plan->segments) {
        uint32_t j = 0;
        size_t sum = 0, size = 0;
        for (; k + j < plan->segments && j < LISPD_TRAIN; j++) {
            uint8_t *h = dp->train_headers[j];
            const uint8_t *chunk;
            size_t chunk_len;
            size_t hlen = gso_segment(p, len, plan, k + j, h + TUNNEL_HEADER, &chunk, &chunk_len);
            size_t one = TUNNEL_HEADER + hlen + chunk_len;
            if (sum + one > TRAIN_BYTES)
                break;
            if (j == 0)
                size = one;
            memcpy(h, t->tunnel, TUNNEL_HEADER);
            if (t->fresh_nonce) {
                uint32_t nonce = dp_next_nonce(dp);
                h[1] = (uint8_t)(nonce >> 16);
                h[2] = (uint8_t)(nonce >> 8);
                h[3] = (uint8_t)nonce;
            }
            dp->train_iov[2 * j] = (struct iovec){h, TUNNEL_HEADER + hlen};
            dp->train_iov[2 * j + 1] = (struct iovec){(void *)chunk, chunk_len};
            sum += one;
        }
        if (j == 0 || !send_group(t, dp->train_iov, 2 * (size_t)j, (uint16_t)size))
            return k;
        dp->counters.gso_trains++;
        dp->counters.gso_segments += j;
        *packets += j;
        *bytes += sum + j * outer;
        k += j;
    }
    return k;
}

/* -- packets that were read one by one, sent as trains ------------------------ */

static int same_train(const struct train *a, const struct train *b)
{
    size_t alen = dp_addr_len(a->family);
    return a->fd == b->fd && a->family == b->family && a->port == b->port && a->tos == b->tos &&
           a->ttl == b->ttl && memcmp(a->destination, b->destination, alen) == 0 &&
           memcmp(a->source, b->source, alen) == 0;
}

void dp_train_flush(struct lispd_dp *dp)
{
    struct dp_trainq *q = &dp->trainq;
    if (q->n == 0)
        return;
    if (send_group(&q->key, q->iov, q->n, (uint16_t)q->size)) {
        dp->counters.gso_trains++;
        dp->counters.gso_segments += q->n;
        *dp->sent_packets += q->n;
        *dp->sent_bytes += q->outer_bytes;
    } else {
        /* Refused (the kernel, the route, the buffer): each whole outer
         * packet, still built where it lies, through the raw socket. */
        dp->counters.gso_fallbacks++;
        for (uint32_t i = 0; i < q->n; i++) {
            if (dp_send_now(dp, q->packets[i].iov_base, &q->verdicts[i])) {
                (*dp->sent_packets)++;
                *dp->sent_bytes += q->verdicts[i].length;
            } else {
                dp->counters.drops[LISPD_DROP_SEND_ERROR]++;
            }
        }
    }
    q->n = 0;
}

int dp_train_add(struct lispd_dp *dp, uint8_t *buf, const struct lispd_verdict *v)
{
    struct train t;
    const uint8_t *outer = buf + v->offset;
    if (train_of(dp, outer, v, &t) < 0)
        return -1;
    size_t headers = (v->family == LISPD_FAMILY_IPV6 ? IPV6_HEADER : IPV4_HEADER) + UDP_HEADER;
    size_t len = v->length - headers;
    struct dp_trainq *q = &dp->trainq;
    if (q->n > 0 && (q->n == LISPD_TRAIN || len > q->size || q->short_last ||
                     q->bytes + len > TRAIN_BYTES || !same_train(&q->key, &t)))
        dp_train_flush(dp);
    if (q->n == 0) {
        q->key = t;
        q->size = len;
        q->bytes = q->outer_bytes = 0;
        q->short_last = 0;
    }
    q->iov[q->n] = (struct iovec){(void *)(outer + headers), len};
    q->packets[q->n] = (struct iovec){buf, 0};
    q->verdicts[q->n] = *v;
    q->bytes += len;
    q->outer_bytes += v->length;
    q->short_last = len < q->size;
    q->n++;
    return 0;
}

/* Segment 0 of the super-packet p into the probe, behind headroom: the
 * packet the plain step decides on for the whole super-packet (the same
 * addresses, ports and flow). Returns its length. */
static size_t probe_first(struct lispd_dp *dp, const uint8_t *p, size_t len,
                          const struct gso_plan *plan)
{
    const uint8_t *chunk;
    size_t chunk_len;
    uint8_t *at = dp->probe + LISPD_HEADROOM;
    size_t hlen = gso_segment(p, len, plan, 0, at, &chunk, &chunk_len);
    memcpy(at + hlen, chunk, chunk_len);
    return hlen + chunk_len;
}

/* The plain step on the probe (segment 0, first octets behind headroom). */
typedef void (*probe_step)(struct lispd_dp *dp, size_t first, void *context,
                           struct lispd_verdict *v);

/* A super-packet whose plan is made: segment 0 decides for all; a SEND
 * leaves as trains (counted in packets/bytes), anything else, or what the
 * kernel refuses, on the slow path through slow_step. */
static void super_out(struct lispd_dp *dp, const uint8_t *p, size_t len,
                      const struct gso_plan *plan, probe_step decide, segment_step slow_step,
                      void *context, uint64_t *packets, uint64_t *bytes)
{
    dp->counters.super_reads++;
    size_t first = probe_first(dp, p, len, plan);
    struct lispd_verdict v;
    decide(dp, first, context, &v);
    uint32_t from = 0;
    struct train t;
    if (v.verdict == LISPD_VERDICT_SEND && train_of(dp, dp->probe + v.offset, &v, &t) == 0) {
        /* Packets of this batch still queued go first: no reordering. */
        dp_flush_queues(dp);
        from = send_train(dp, &t, p, len, plan, packets, bytes);
        if (from == plan->segments)
            return;
        dp->counters.gso_fallbacks++;
    }
    cut_slowly(dp, p, len, plan, from, slow_step, context);
}

static void itr_decide(struct lispd_dp *dp, size_t first, void *context,
                       struct lispd_verdict *v)
{
    const struct itr_context *c = context;
    lispd_itr_process(dp, c->tun, dp->probe, LISPD_BUFFER, LISPD_HEADROOM, first,
                      dp_next_nonce(dp), v);
}

void dp_itr_super(struct lispd_dp *dp, uint8_t *buf, size_t len, const struct vnet_hdr *h,
                  struct itr_context *c)
{
    uint8_t *p = buf + LISPD_HEADROOM;
    struct gso_plan plan;
    if (gso_plan(p, len, 0, h, &plan) < 0) {
        dp->counters.drops[LISPD_DROP_BAD_OFFLOAD]++;
        return;
    }
    super_out(dp, p, len, &plan, itr_decide, itr_slow_step, c, &dp->counters.itr_packets,
              &dp->counters.itr_bytes);
}

static int ip_ethertype(const uint8_t *frame, size_t len)
{
    if (len < ETHER)
        return 0;
    uint16_t type = get_be16(frame + 12);
    return type == 0x0800 || type == 0x86DD;
}

static void vxlan_decide(struct lispd_dp *dp, size_t first, void *context,
                         struct lispd_verdict *v)
{
    lispd_vxlan_tx_process(dp, *(const uint32_t *)context, dp->probe, LISPD_BUFFER,
                           LISPD_HEADROOM, first, v);
}

void dp_vxlan_tx_super(struct lispd_dp *dp, uint8_t *buf, size_t len, const struct vnet_hdr *h,
                       uint32_t segment)
{
    uint8_t *p = buf + LISPD_HEADROOM;
    struct gso_plan plan;
    if (!ip_ethertype(p, len) || gso_plan(p, len, ETHER, h, &plan) < 0) {
        dp->counters.drops[LISPD_DROP_BAD_OFFLOAD]++;
        return;
    }
    super_out(dp, p, len, &plan, vxlan_decide, vxlan_slow_step, &segment,
              &dp->counters.vxlan_tx_packets, &dp->counters.vxlan_tx_bytes);
}

/* -- writes of what arrived in trains ------------------------------------------- */

static void emit_write(void *context, struct iovec *iov, int iovcnt, uint32_t segments,
                       size_t bytes)
{
    struct lispd_dp *dp = context;
    ssize_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += (ssize_t)iov[i].iov_len;
    if (writev(dp->coalescer_fd, iov, iovcnt) != want) {
        dp->counters.drops[LISPD_DROP_WRITE_ERROR] += segments;
        return;
    }
    *dp->coalescer_packets += segments;
    *dp->coalescer_bytes += bytes;
    if (segments > 1) {
        dp->counters.super_writes++;
        dp->counters.super_segments += segments;
    }
}

void dp_coalescer_flush(struct lispd_dp *dp)
{
    coalescer_flush(&dp->coalescer);
}

void dp_offload_init(struct lispd_dp *dp)
{
    coalescer_init(&dp->coalescer, 0, emit_write, dp);
}

void dp_write_decapsulated(struct lispd_dp *dp, int fd, size_t l3, int uso, uint8_t *p,
                           size_t len, uint64_t *packets, uint64_t *bytes)
{
    struct coalescer *c = &dp->coalescer;
    if (dp->coalescer_fd != fd || c->l3 != l3)
        coalescer_flush(c);
    dp->coalescer_fd = fd;
    dp->coalescer_packets = packets;
    dp->coalescer_bytes = bytes;
    c->l3 = l3;
    c->udp = uso;
    coalescer_add(c, p, len);
}
