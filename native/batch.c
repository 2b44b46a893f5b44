/*
 * The fast path's I/O: one call per wake-up of the event loop moves a whole
 * batch between a device and the underlay. Reads go into reused buffers
 * behind LISPD_HEADROOM octets, native/steps.c decides and builds headers in
 * place, and the outer packets leave through raw sockets in one sendmmsg per
 * family. Python sees counters and misses; the only packets it touches are
 * missed ones, which it holds while their EID is resolved and hands back
 * one at a time (lispd_itr_inject).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dataplane.h"

_Static_assert(sizeof(((struct lispd_counters *)0)->drops) / sizeof(uint64_t) == LISPD_DROP_COUNT,
               "one drop counter per reason");
_Static_assert(sizeof(((struct lispd_fib_entry *)0)->locators) / sizeof(struct lispd_locator) ==
                   LISPD_MAX_LOCATORS,
               "locator array matches LISPD_MAX_LOCATORS");

struct lispd_dp *lispd_dp_new(struct lispd_fib *mapcache, struct lispd_fib *database,
                              struct lispd_fdb *fdb)
{
    struct lispd_dp *dp = calloc(1, sizeof *dp);
    if (dp == NULL)
        return NULL;
    dp->buffers = malloc((size_t)LISPD_BATCH * LISPD_BUFFER);
    dp->inject = malloc(LISPD_BUFFER);
    dp->probe = malloc(LISPD_BUFFER);
    dp->slow = malloc(SLOW_AREA);
    if (dp->buffers == NULL || dp->inject == NULL || dp->probe == NULL || dp->slow == NULL ||
        dp_recent_init(&dp->recent) < 0) {
        lispd_dp_free(dp);
        return NULL;
    }
    dp->mapcache = mapcache;
    dp->database = database;
    dp->fdb = fdb;
    dp->mtu = 1500;
    dp->raw4_fd = dp->raw6_fd = -1;
    dp->coalescer_fd = -1;
    dp_offload_init(dp);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)(uintptr_t)dp;
    lispd_dp_seed(dp, seed);
    return dp;
}

void lispd_dp_free(struct lispd_dp *dp)
{
    if (dp != NULL) {
        free(dp->buffers);
        free(dp->inject);
        free(dp->probe);
        free(dp->slow);
        dp_recent_free(&dp->recent);
    }
    free(dp);
}

struct lispd_counters *lispd_dp_counters(struct lispd_dp *dp)
{
    return &dp->counters;
}

void lispd_dp_seed(struct lispd_dp *dp, uint64_t seed)
{
    dp->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

/* xorshift64*: nonces need to be unpredictable enough to not collide, not
 * cryptographic (RFC 9300 5.3 asks for random, not secret). */
uint32_t dp_next_nonce(struct lispd_dp *dp)
{
    dp->rng ^= dp->rng >> 12;
    dp->rng ^= dp->rng << 25;
    dp->rng ^= dp->rng >> 27;
    return (uint32_t)((dp->rng * 0x2545F4914F6CDD1DULL) >> 40);
}

void lispd_dp_set_underlay(struct lispd_dp *dp, const uint8_t *rloc4, const uint8_t *rloc6,
                           uint32_t mtu, int raw4_fd, int raw6_fd)
{
    dp->has_rloc4 = rloc4 != NULL;
    dp->has_rloc6 = rloc6 != NULL;
    if (rloc4 != NULL)
        memcpy(dp->rloc4, rloc4, 4);
    if (rloc6 != NULL)
        memcpy(dp->rloc6, rloc6, 16);
    dp->mtu = mtu;
    dp->raw4_fd = raw4_fd;
    dp->raw6_fd = raw6_fd;
}

int lispd_dp_add_tun(struct lispd_dp *dp, int fd, uint32_t instance_id)
{
    if (dp->n_tuns == LISPD_MAX_TUNS || instance_id > 0xFFFFFF)
        return -1;
    for (uint32_t i = 0; i < dp->n_tuns; i++)
        if (dp->tuns[i].instance_id == instance_id)
            return -1;
    dp->tuns[dp->n_tuns] = (struct dp_tun){.fd = fd, .instance_id = instance_id};
    return (int)dp->n_tuns++;
}

int lispd_dp_add_segment(struct lispd_dp *dp, int tap_fd, uint32_t vni, uint8_t family,
                         const uint8_t *local, int learning)
{
    if (dp->n_segments == LISPD_MAX_SEGMENTS || vni > 0xFFFFFF ||
        (family != LISPD_FAMILY_IPV4 && family != LISPD_FAMILY_IPV6))
        return -1;
    for (uint32_t i = 0; i < dp->n_segments; i++)
        if (dp->segments[i].vni == vni)
            return -1;
    struct dp_segment *s = &dp->segments[dp->n_segments];
    memset(s, 0, sizeof *s);
    s->fd = tap_fd;
    s->vni = vni;
    s->family = family;
    memcpy(s->local, local, dp_addr_len(family));
    s->learning = learning != 0;
    return (int)dp->n_segments++;
}

int lispd_dp_set_flood(struct lispd_dp *dp, uint32_t segment, const struct lispd_locator *peers,
                       uint32_t n)
{
    if (segment >= dp->n_segments || n > LISPD_MAX_FLOOD)
        return -1;
    struct dp_segment *s = &dp->segments[segment];
    if (n > 0)
        memcpy(s->flood, peers, n * sizeof *peers);
    s->n_flood = n;
    return 0;
}

/* Octets of address past prefix_len bits are all zero (RFC 4632 form). */
static int prefix_form(const struct lispd_fib_key *key)
{
    size_t octets = dp_addr_len(key->family);
    if ((key->family != LISPD_FAMILY_IPV4 && key->family != LISPD_FAMILY_IPV6) ||
        key->prefix_len > 8 * octets)
        return 0;
    for (size_t i = 0; i < octets; i++) {
        unsigned keep = key->prefix_len >= 8 * (i + 1) ? 8
                        : key->prefix_len > 8 * i   ? key->prefix_len - 8 * i
                                                    : 0;
        uint8_t mask = (uint8_t)(0xFF00u >> keep);
        if (key->prefix[i] & (uint8_t)~mask)
            return 0;
    }
    return 1;
}

int lispd_dp_set_served_itrs(struct lispd_dp *dp, const struct lispd_fib_key *served,
                             uint32_t n)
{
    if (n > LISPD_MAX_SERVED_ITRS)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (!prefix_form(&served[i]))
            return -1;
    if (n > 0)
        memcpy(dp->served, served, n * sizeof *served);
    dp->n_served = n;
    return 0;
}

int lispd_dp_set_vnet(struct lispd_dp *dp, int layer, uint32_t index, int mode)
{
    int *vnet, *uso;
    if (layer == 3 && index < dp->n_tuns) {
        vnet = &dp->tuns[index].vnet;
        uso = &dp->tuns[index].uso;
    } else if (layer == 2 && index < dp->n_segments) {
        vnet = &dp->segments[index].vnet;
        uso = &dp->segments[index].uso;
    } else {
        return -1;
    }
    if (mode < 0 || mode > 2)
        return -1;
    *vnet = mode > 0;
    *uso = mode == 2;
    return 0;
}

int lispd_dp_set_gso_senders(struct lispd_dp *dp, uint8_t family, const int *fds,
                             const uint16_t *ports, uint32_t n)
{
    if ((family != LISPD_FAMILY_IPV4 && family != LISPD_FAMILY_IPV6) || n > LISPD_GSO_SENDERS)
        return -1;
    struct dp_senders *s = family == LISPD_FAMILY_IPV6 ? &dp->gso6 : &dp->gso4;
    for (uint32_t i = 0; i < n; i++) {
        s->fds[i] = fds[i];
        s->ports[i] = ports[i];
    }
    s->n = n;
    return 0;
}

static uint8_t *buffer(struct lispd_dp *dp, uint32_t i)
{
    return dp->buffers + (size_t)i * LISPD_BUFFER;
}

socklen_t dp_sockaddr(uint8_t family, const uint8_t *address, uint16_t port,
                      struct sockaddr_in6 *a)
{
    memset(a, 0, sizeof *a);
    if (family == LISPD_FAMILY_IPV6) {
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        memcpy(&a->sin6_addr, address, 16);
        return sizeof(struct sockaddr_in6);
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)a;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    memcpy(&a4->sin_addr, address, 4);
    return sizeof(struct sockaddr_in);
}

/* The destination of a SEND verdict (a raw socket's: no port). */
static socklen_t sockaddr_of(const struct lispd_verdict *v, struct sockaddr_in6 *a)
{
    return dp_sockaddr(v->family, v->address, 0, a);
}

static int raw_fd(const struct lispd_dp *dp, uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? dp->raw6_fd : dp->raw4_fd;
}

/* Send a SEND verdict's packet now, alone: whether the kernel took it. */
int dp_send_now(struct lispd_dp *dp, const uint8_t *buf, const struct lispd_verdict *v)
{
    struct sockaddr_in6 a;
    socklen_t alen = sockaddr_of(v, &a);
    int fd = raw_fd(dp, v->family);
    return fd >= 0 && sendto(fd, buf + v->offset, v->length, MSG_DONTWAIT, (struct sockaddr *)&a,
                             alen) == (ssize_t)v->length;
}

static uint32_t flush(struct lispd_dp *dp, struct dp_sendq *q, int fd, uint64_t *bytes);

/* Queue a SEND verdict on the raw socket of its family; a full queue is
 * sent first (a super-packet cut on the slow path fills it). */
void dp_enqueue(struct lispd_dp *dp, uint8_t *buf, const struct lispd_verdict *v)
{
    if (dp_senders_of(dp, v->family)->n > 0 && dp_train_add(dp, buf, v) == 0)
        return;
    struct dp_sendq *q = v->family == LISPD_FAMILY_IPV6 ? &dp->send6 : &dp->send4;
    if (q->n == LISPD_BATCH)
        dp_flush_queues(dp);
    uint32_t i = q->n++;
    socklen_t alen = sockaddr_of(v, &q->addrs[i]);
    q->iovs[i] = (struct iovec){.iov_base = buf + v->offset, .iov_len = v->length};
    q->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &q->addrs[i], .msg_namelen = alen, .msg_iov = &q->iovs[i], .msg_iovlen = 1};
}

/* Send what is queued; a message the kernel refuses is counted and skipped
 * so the rest of the batch still goes. Returns packets sent, adds bytes. */
static uint32_t flush(struct lispd_dp *dp, struct dp_sendq *q, int fd, uint64_t *bytes)
{
    uint32_t sent = 0, done = 0;
    while (done < q->n) {
        int r = fd < 0 ? -1 : sendmmsg(fd, q->msgs + done, q->n - done, MSG_DONTWAIT);
        if (r <= 0) {
            dp->counters.drops[LISPD_DROP_SEND_ERROR]++;
            done++;
            continue;
        }
        for (int k = 0; k < r; k++)
            *bytes += q->iovs[done + (uint32_t)k].iov_len;
        sent += (uint32_t)r;
        done += (uint32_t)r;
    }
    q->n = 0;
    return sent;
}

/* Send both queues, counted where the running batch says. */
void dp_flush_queues(struct lispd_dp *dp)
{
    dp_train_flush(dp);
    *dp->sent_packets += flush(dp, &dp->send4, dp->raw4_fd, dp->sent_bytes);
    *dp->sent_packets += flush(dp, &dp->send6, dp->raw6_fd, dp->sent_bytes);
}

static void count_sends_as(struct lispd_dp *dp, uint64_t *packets, uint64_t *bytes)
{
    dp->sent_packets = packets;
    dp->sent_bytes = bytes;
}

/* Hand a missed packet (still in its batch buffer) to Python; no room
 * left means nobody will send it: a drop. */
void dp_add_miss(struct lispd_dp *dp, const uint8_t *buf, const struct lispd_verdict *v,
                     struct lispd_miss *misses, uint32_t cap, uint32_t *n)
{
    if (*n == cap) {
        dp->counters.drops[LISPD_DROP_MISS]++;
        return;
    }
    struct lispd_miss *m = &misses[(*n)++];
    m->instance_id = v->instance_id;
    m->family = v->family;
    memcpy(m->address, v->address, 16);
    m->packet = buf + v->offset;
    m->length = v->length;
    dp->counters.misses++;
}

/* Write a WRITE verdict's packet to a device (behind an empty virtio-net
 * header when it has them): whether it all went. */
int dp_write_out(struct lispd_dp *dp, int fd, int vnet, const uint8_t *buf,
                 const struct lispd_verdict *v, uint64_t *packets, uint64_t *bytes)
{
    static const uint8_t none[LISPD_VNET_HDR];
    struct iovec iov[2] = {{(void *)none, sizeof none}, {(void *)(buf + v->offset), v->length}};
    ssize_t want = (ssize_t)v->length + (vnet ? LISPD_VNET_HDR : 0);
    if (writev(fd, vnet ? iov : iov + 1, vnet ? 2 : 1) == want) {
        (*packets)++;
        *bytes += v->length;
        return 1;
    }
    dp->counters.drops[LISPD_DROP_WRITE_ERROR]++;
    return 0;
}

/* Read one packet from a non-blocking device, LISPD_HEADROOM into buf
 * (its virtio-net header, when it has them, just in front): the packet's
 * length, 0 when drained, -1 on a real error. */
static ssize_t read_device(int fd, int vnet, uint8_t *buf)
{
    size_t at = LISPD_HEADROOM - (vnet ? LISPD_VNET_HDR : 0);
    for (;;) {
        ssize_t r = read(fd, buf + at, LISPD_BUFFER - LISPD_HEADROOM);
        if (r >= 0 && vnet && r < LISPD_VNET_HDR) {
            errno = EIO;
            return -1;
        }
        if (r >= 0)
            return vnet ? r - LISPD_VNET_HDR : r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

/* The read side of a device batch: read packets into the buffers until the
 * device is drained or the batch is full, handing each to step, then send
 * what the steps queued. Returns how many were read, -1 when the first read
 * fails. */
typedef void (*device_step)(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context);

static int device_batch(struct lispd_dp *dp, int fd, int vnet, device_step step, void *context,
                        uint64_t *packets, uint64_t *bytes)
{
    count_sends_as(dp, packets, bytes);
    dp->slow_used = 0;
    dp->slow_pinned = 0;
    uint32_t n = 0;
    for (; n < LISPD_BATCH; n++) {
        uint8_t *buf = buffer(dp, n);
        ssize_t r = read_device(fd, vnet, buf);
        if (r <= 0) {
            if (r < 0 && n == 0)
                return -1;
            break;
        }
        step(dp, buf, (size_t)r, context);
    }
    dp_flush_queues(dp);
    if (n > 0)
        dp->counters.batches++;
    return (int)n;
}

/* A device read with a virtio-net header: a super-packet goes to the
 * offload path (1), a packet whose checksum the kernel left to us has it
 * made (0), a header that makes no sense is a drop (-1). */
static int from_vnet(struct lispd_dp *dp, uint8_t *buf, size_t len, struct vnet_hdr *h)
{
    vnet_hdr_get(buf + LISPD_HEADROOM - LISPD_VNET_HDR, h);
    if (h->gso_type != VNET_GSO_NONE)
        return 1;
    if ((h->flags & VNET_NEEDS_CSUM) && gso_complete_csum(buf + LISPD_HEADROOM, len, h) < 0) {
        dp->counters.drops[LISPD_DROP_BAD_OFFLOAD]++;
        return -1;
    }
    return 0;
}

static void itr_step(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context)
{
    struct itr_context *c = context;
    if (dp->tuns[c->tun].vnet) {
        struct vnet_hdr h;
        int kind = from_vnet(dp, buf, len, &h);
        if (kind == 1)
            dp_itr_super(dp, buf, len, &h, c);
        if (kind != 0)
            return;
    }
    dp_itr_packet(dp, buf, len, c);
}

void dp_itr_packet(struct lispd_dp *dp, uint8_t *buf, size_t len, struct itr_context *c)
{
    struct lispd_verdict v;
    lispd_itr_process(dp, c->tun, buf, LISPD_BUFFER, LISPD_HEADROOM, len, dp_next_nonce(dp), &v);
    switch (v.verdict) {
    case LISPD_VERDICT_SEND:
        dp_enqueue(dp, buf, &v);
        break;
    case LISPD_VERDICT_WRITE:
        dp_write_out(dp, dp->tuns[c->tun].fd, dp->tuns[c->tun].vnet, buf, &v,
                     &dp->counters.icmp_too_big, &dp->counters.icmp_too_big_bytes);
        break;
    case LISPD_VERDICT_MISS:
        dp_add_miss(dp, buf, &v, c->misses, c->misses_cap, c->n_misses);
        break;
    default:
        dp->counters.drops[v.reason]++;
    }
}

int lispd_itr_batch(struct lispd_dp *dp, uint32_t tun, struct lispd_miss *misses,
                    uint32_t misses_cap, uint32_t *n_misses)
{
    *n_misses = 0;
    if (tun >= dp->n_tuns)
        return -1;
    struct itr_context context = {tun, misses, misses_cap, n_misses};
    return device_batch(dp, dp->tuns[tun].fd, dp->tuns[tun].vnet, itr_step, &context,
                        &dp->counters.itr_packets, &dp->counters.itr_bytes);
}

int lispd_itr_inject(struct lispd_dp *dp, uint32_t tun, const uint8_t *packet, size_t length,
                     struct lispd_verdict *v)
{
    uint8_t *buf = dp->inject;
    if (length > LISPD_BUFFER - LISPD_HEADROOM) { /* no TUN reads that much */
        memset(v, 0, sizeof *v);
        v->verdict = LISPD_VERDICT_DROP;
        v->reason = LISPD_DROP_TOO_BIG;
    } else {
        memcpy(buf + LISPD_HEADROOM, packet, length);
        lispd_itr_process(dp, tun, buf, LISPD_BUFFER, LISPD_HEADROOM, length, dp_next_nonce(dp), v);
    }
    switch (v->verdict) {
    case LISPD_VERDICT_SEND:
        if (dp_send_now(dp, buf, v)) {
            dp->counters.itr_packets++;
            dp->counters.itr_bytes += v->length;
        } else {
            v->verdict = LISPD_VERDICT_DROP;
            v->reason = LISPD_DROP_SEND_ERROR;
            dp->counters.drops[LISPD_DROP_SEND_ERROR]++;
        }
        break;
    case LISPD_VERDICT_WRITE:
        if (!dp_write_out(dp, dp->tuns[tun].fd, dp->tuns[tun].vnet, buf, v,
                          &dp->counters.icmp_too_big, &dp->counters.icmp_too_big_bytes)) {
            v->verdict = LISPD_VERDICT_DROP;
            v->reason = LISPD_DROP_WRITE_ERROR;
        }
        break;
    case LISPD_VERDICT_MISS:
        /* Still no mapping, and the caller will not try again. */
        dp->counters.drops[LISPD_DROP_MISS]++;
        break;
    default:
        dp->counters.drops[v->reason]++;
    }
    return v->verdict;
}

/* Receive a batch of UDP datagrams into the buffers, LISPD_HEADROOM in
 * (room for the headers of a re-encapsulation), asking for the outer
 * TTL/TOS (IP_RECVTTL/IP_RECVTOS, IPV6_RECVHOPLIMIT/IPV6_RECVTCLASS are set
 * on the socket by lispd.dataplane) and, with UDP_GRO on the socket, the
 * datagram size of a train. Returns how many, 0 when none, -1. */
static int receive(struct lispd_dp *dp, int fd)
{
    for (uint32_t i = 0; i < LISPD_BATCH; i++) {
        dp->rx_iovs[i] = (struct iovec){.iov_base = buffer(dp, i) + LISPD_HEADROOM,
                                        .iov_len = LISPD_BUFFER - LISPD_HEADROOM};
        dp->rx_msgs[i].msg_hdr = (struct msghdr){
            .msg_name = &dp->rx_addrs[i],
            .msg_namelen = sizeof dp->rx_addrs[i],
            .msg_iov = &dp->rx_iovs[i],
            .msg_iovlen = 1,
            .msg_control = dp->rx_control[i],
            .msg_controllen = sizeof dp->rx_control[i],
        };
    }
    for (;;) {
        int r = recvmmsg(fd, dp->rx_msgs, LISPD_BATCH, MSG_DONTWAIT, NULL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static void outer_fields(const struct msghdr *m, uint8_t *ttl, uint8_t *tos, uint16_t *gso)
{
    *ttl = 255;
    *tos = 0;
    *gso = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        int value;
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
            *tos = *CMSG_DATA(c);
        } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
                   (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
            memcpy(&value, CMSG_DATA(c), sizeof value);
            *ttl = (uint8_t)value;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
            memcpy(&value, CMSG_DATA(c), sizeof value);
            *tos = (uint8_t)value;
        } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
            memcpy(&value, CMSG_DATA(c), sizeof value);
            *gso = (uint16_t)value;
        }
    }
}

/* What a datagram step is given: the message it came in (i), the buffer,
 * where the datagram is in it and how long, and whether it is one of a
 * UDP_GRO train past the first (in_train 2: the octets in front of it are
 * the previous datagram's, so whatever the step builds there must leave
 * now) or the first of one (1), or alone (0). */
struct datagram {
    uint32_t i;
    uint8_t *buf;
    size_t offset, length;
    int in_train;
    uint8_t ttl, tos;
};

typedef void (*datagram_step)(struct lispd_dp *dp, const struct datagram *d, void *context);

/* What a re-encapsulation may write in front of a datagram: outer IPv6 and
 * UDP; saved and put back around a train's later datagrams. */
enum { REBUILT = 64 };

/* The receive side of a socket batch: one recvmmsg, then each datagram that
 * was not cut short to step, a train's datagrams one by one. Returns how
 * many messages arrived. */
static int socket_batch(struct lispd_dp *dp, int fd, datagram_step step, void *context)
{
    int n = receive(dp, fd);
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &dp->rx_msgs[i].msg_hdr;
        if (m->msg_flags & MSG_TRUNC) {
            dp->counters.drops[LISPD_DROP_TRUNCATED]++;
            continue;
        }
        struct datagram d = {.i = (uint32_t)i, .buf = buffer(dp, (uint32_t)i)};
        uint16_t gso;
        outer_fields(m, &d.ttl, &d.tos, &gso);
        size_t len = dp->rx_msgs[i].msg_len, size = gso && gso < len ? gso : len;
        if (size < len) {
            dp->counters.gro_trains++;
            dp->counters.gro_segments += (len + size - 1) / size;
        }
        size_t at = 0;
        do { /* an empty datagram too is looked at (and counted as truncated) */
            d.offset = LISPD_HEADROOM + at;
            d.length = len - at < size ? len - at : size;
            d.in_train = size == len ? 0 : at == 0 ? 1 : 2;
            uint8_t saved[REBUILT];
            if (d.in_train == 2)
                memcpy(saved, d.buf + d.offset - REBUILT, REBUILT);
            step(dp, &d, context);
            if (d.in_train == 2)
                memcpy(d.buf + d.offset - REBUILT, saved, REBUILT);
            at += size;
        } while (at < len);
    }
    dp_coalescer_flush(dp);
    if (n > 0)
        dp->counters.batches++;
    return n;
}

/* Who sent datagram i: family and address (an IPv4-mapped IPv6 source,
 * from a dual-stack socket, as the IPv4 address it is). */
static uint8_t sender(const struct lispd_dp *dp, uint32_t i, const uint8_t **address)
{
    const struct sockaddr_in6 *a = &dp->rx_addrs[i];
    if (a->sin6_family == AF_INET6) {
        const uint8_t *octets = (const uint8_t *)&a->sin6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (memcmp(octets, mapped, sizeof mapped) == 0) {
            *address = octets + 12;
            return LISPD_FAMILY_IPV4;
        }
        *address = octets;
        return LISPD_FAMILY_IPV6;
    }
    *address = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
    return LISPD_FAMILY_IPV4;
}

/* A SEND verdict built in front of a datagram: queued, or sent at once
 * when it overwrote the tail of the datagram before it in a train. */
static void send_built(struct lispd_dp *dp, const struct datagram *d,
                       const struct lispd_verdict *v, uint64_t *packets, uint64_t *bytes)
{
    if (d->in_train != 2) {
        dp_enqueue(dp, d->buf, v);
    } else if (dp_send_now(dp, d->buf, v)) {
        (*packets)++;
        *bytes += v->length;
    } else {
        dp->counters.drops[LISPD_DROP_SEND_ERROR]++;
    }
}

static void etr_step(struct lispd_dp *dp, const struct datagram *d, void *context)
{
    uint64_t now_ms = *(const uint64_t *)context;
    struct lispd_outer outer;
    memset(&outer, 0, sizeof outer);
    outer.ttl = d->ttl;
    outer.tos = d->tos;
    const uint8_t *source;
    outer.family = sender(dp, d->i, &source);
    memcpy(outer.source, source, dp_addr_len(outer.family));
    struct lispd_verdict v;
    lispd_etr_process(dp, d->buf, LISPD_BUFFER, d->offset, d->length, &outer, now_ms,
                      dp_next_nonce(dp), &v);
    if (v.verdict == LISPD_VERDICT_WRITE) {
        const struct dp_tun *t = &dp->tuns[v.index];
        if (t->vnet)
            dp_write_decapsulated(dp, t->fd, 0, t->uso, d->buf + v.offset, v.length,
                                  &dp->counters.etr_packets, &dp->counters.etr_bytes);
        else
            dp_write_out(dp, t->fd, 0, d->buf, &v, &dp->counters.etr_packets,
                         &dp->counters.etr_bytes);
    } else if (v.verdict == LISPD_VERDICT_SEND) {
        send_built(dp, d, &v, &dp->counters.etr_reencap_packets,
                   &dp->counters.etr_reencap_bytes);
    } else {
        dp->counters.drops[v.reason]++;
    }
}

int lispd_etr_batch(struct lispd_dp *dp, int udp_fd, uint64_t now_ms)
{
    /* Only re-encapsulated packets are queued. */
    count_sends_as(dp, &dp->counters.etr_reencap_packets, &dp->counters.etr_reencap_bytes);
    int n = socket_batch(dp, udp_fd, etr_step, &now_ms);
    dp_flush_queues(dp);
    return n;
}

/* Head-end replication (RFC 7348 4.2): one copy per flood peer, each built
 * in the same buffer and sent at once, so no copy of the frame is made. */
static void flood(struct lispd_dp *dp, uint32_t segment, uint8_t *buf,
                  const struct lispd_verdict *frame)
{
    const struct dp_segment *s = &dp->segments[segment];
    for (uint32_t p = 0; p < s->n_flood; p++) {
        struct lispd_verdict v;
        lispd_vxlan_encap(dp, segment, buf, LISPD_BUFFER, frame->offset, frame->length,
                          &s->flood[p], &v);
        if (v.verdict != LISPD_VERDICT_SEND) {
            dp->counters.drops[v.reason]++;
            continue;
        }
        /* Send this copy alone, now, before the buffer is rewritten. */
        if (dp_send_now(dp, buf, &v)) {
            dp->counters.flood_copies++;
            dp->counters.vxlan_tx_packets++;
            dp->counters.vxlan_tx_bytes += v.length;
        } else {
            dp->counters.drops[LISPD_DROP_SEND_ERROR]++;
        }
    }
}

static void vxlan_tx_step(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context)
{
    uint32_t segment = *(const uint32_t *)context;
    if (dp->segments[segment].vnet) {
        struct vnet_hdr h;
        int kind = from_vnet(dp, buf, len, &h);
        if (kind == 1)
            dp_vxlan_tx_super(dp, buf, len, &h, segment);
        if (kind != 0)
            return;
    }
    dp_vxlan_tx_frame(dp, buf, len, segment);
}

void dp_vxlan_tx_frame(struct lispd_dp *dp, uint8_t *buf, size_t len, uint32_t segment)
{
    struct lispd_verdict v;
    lispd_vxlan_tx_process(dp, segment, buf, LISPD_BUFFER, LISPD_HEADROOM, len, &v);
    if (v.verdict == LISPD_VERDICT_SEND)
        dp_enqueue(dp, buf, &v);
    else if (v.verdict == LISPD_VERDICT_FLOOD)
        flood(dp, segment, buf, &v);
    else
        dp->counters.drops[v.reason]++;
}

int lispd_vxlan_tx_batch(struct lispd_dp *dp, uint32_t segment)
{
    if (segment >= dp->n_segments)
        return -1;
    return device_batch(dp, dp->segments[segment].fd, dp->segments[segment].vnet, vxlan_tx_step,
                        &segment, &dp->counters.vxlan_tx_packets, &dp->counters.vxlan_tx_bytes);
}

static void vxlan_rx_step(struct lispd_dp *dp, const struct datagram *d, void *context)
{
    uint64_t now_ms = *(const uint64_t *)context;
    const uint8_t *source;
    uint8_t family = sender(dp, d->i, &source);
    struct lispd_verdict v;
    uint8_t *payload = d->buf + d->offset;
    lispd_vxlan_rx_process(dp, payload, d->length, family, source, now_ms, &v);
    if (v.verdict != LISPD_VERDICT_WRITE) {
        dp->counters.drops[v.reason]++;
        return;
    }
    const struct dp_segment *s = &dp->segments[v.index];
    if (s->vnet)
        dp_write_decapsulated(dp, s->fd, 14, s->uso, payload + v.offset, v.length,
                              &dp->counters.vxlan_rx_packets, &dp->counters.vxlan_rx_bytes);
    else
        dp_write_out(dp, s->fd, 0, payload, &v, &dp->counters.vxlan_rx_packets,
                     &dp->counters.vxlan_rx_bytes);
}

int lispd_vxlan_rx_batch(struct lispd_dp *dp, int udp_fd, uint64_t now_ms)
{
    return socket_batch(dp, udp_fd, vxlan_rx_step, &now_ms);
}
