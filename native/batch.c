/*
 * The fast path's I/O: one call per wake-up of the event loop moves a whole
 * batch between a device and the underlay. Reads go into reused buffers
 * behind LISPD_HEADROOM octets, native/steps.c decides and builds headers in
 * place, and the outer packets leave through raw sockets in one sendmmsg per
 * family. Python sees counters and misses, never a packet.
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
    if (dp->buffers == NULL) {
        free(dp);
        return NULL;
    }
    dp->mapcache = mapcache;
    dp->database = database;
    dp->fdb = fdb;
    dp->mtu = 1500;
    dp->raw4_fd = dp->raw6_fd = -1;
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)(uintptr_t)dp;
    lispd_dp_seed(dp, seed);
    return dp;
}

void lispd_dp_free(struct lispd_dp *dp)
{
    if (dp != NULL)
        free(dp->buffers);
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
static uint32_t next_nonce(struct lispd_dp *dp)
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

static uint8_t *buffer(struct lispd_dp *dp, uint32_t i)
{
    return dp->buffers + (size_t)i * LISPD_BUFFER;
}

/* Queue a SEND verdict on the raw socket of its family. */
static void enqueue(struct lispd_dp *dp, uint8_t *buf, const struct lispd_verdict *v)
{
    struct dp_sendq *q = v->family == LISPD_FAMILY_IPV6 ? &dp->send6 : &dp->send4;
    uint32_t i = q->n++;
    struct sockaddr_in6 *a = &q->addrs[i];
    memset(a, 0, sizeof *a);
    socklen_t alen;
    if (v->family == LISPD_FAMILY_IPV6) {
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, v->address, 16);
        alen = sizeof(struct sockaddr_in6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)a;
        a4->sin_family = AF_INET;
        memcpy(&a4->sin_addr, v->address, 4);
        alen = sizeof(struct sockaddr_in);
    }
    q->iovs[i] = (struct iovec){.iov_base = buf + v->offset, .iov_len = v->length};
    q->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = a, .msg_namelen = alen, .msg_iov = &q->iovs[i], .msg_iovlen = 1};
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

static void flush_both(struct lispd_dp *dp, uint64_t *packets, uint64_t *bytes)
{
    *packets += flush(dp, &dp->send4, dp->raw4_fd, bytes);
    *packets += flush(dp, &dp->send6, dp->raw6_fd, bytes);
}

static void add_miss(const struct lispd_verdict *v, struct lispd_miss *misses, uint32_t cap,
                     uint32_t *n)
{
    for (uint32_t i = 0; i < *n; i++)
        if (misses[i].instance_id == v->instance_id && misses[i].family == v->family &&
            memcmp(misses[i].address, v->address, 16) == 0)
            return;
    if (*n < cap) {
        misses[*n].instance_id = v->instance_id;
        misses[*n].family = v->family;
        memcpy(misses[*n].address, v->address, 16);
        (*n)++;
    }
}

static void write_out(struct lispd_dp *dp, int fd, const uint8_t *buf,
                      const struct lispd_verdict *v, uint64_t *packets, uint64_t *bytes)
{
    if (write(fd, buf + v->offset, v->length) == (ssize_t)v->length) {
        (*packets)++;
        *bytes += v->length;
    } else {
        dp->counters.drops[LISPD_DROP_WRITE_ERROR]++;
    }
}

/* Read one packet from a non-blocking device: its length, 0 when drained,
 * -1 on a real error. */
static ssize_t read_device(int fd, uint8_t *buf)
{
    for (;;) {
        ssize_t r = read(fd, buf + LISPD_HEADROOM, LISPD_BUFFER - LISPD_HEADROOM);
        if (r >= 0)
            return r;
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

static int device_batch(struct lispd_dp *dp, int fd, device_step step, void *context,
                        uint64_t *packets, uint64_t *bytes)
{
    uint32_t n = 0;
    for (; n < LISPD_BATCH; n++) {
        uint8_t *buf = buffer(dp, n);
        ssize_t r = read_device(fd, buf);
        if (r <= 0) {
            if (r < 0 && n == 0)
                return -1;
            break;
        }
        step(dp, buf, (size_t)r, context);
    }
    flush_both(dp, packets, bytes);
    if (n > 0)
        dp->counters.batches++;
    return (int)n;
}

struct itr_context {
    uint32_t tun;
    struct lispd_miss *misses;
    uint32_t misses_cap;
    uint32_t *n_misses;
};

static void itr_step(struct lispd_dp *dp, uint8_t *buf, size_t len, void *context)
{
    struct itr_context *c = context;
    struct lispd_verdict v;
    lispd_itr_process(dp, c->tun, buf, LISPD_BUFFER, LISPD_HEADROOM, len, next_nonce(dp), &v);
    switch (v.verdict) {
    case LISPD_VERDICT_SEND:
        enqueue(dp, buf, &v);
        break;
    case LISPD_VERDICT_WRITE:
        write_out(dp, dp->tuns[c->tun].fd, buf, &v, &dp->counters.icmp_too_big,
                  &dp->counters.icmp_too_big_bytes);
        break;
    case LISPD_VERDICT_MISS:
        dp->counters.misses++;
        dp->counters.drops[LISPD_DROP_MISS]++;
        add_miss(&v, c->misses, c->misses_cap, c->n_misses);
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
    return device_batch(dp, dp->tuns[tun].fd, itr_step, &context, &dp->counters.itr_packets,
                        &dp->counters.itr_bytes);
}

/* Receive a batch of UDP datagrams into the buffers, asking for the outer
 * TTL/TOS (IP_RECVTTL/IP_RECVTOS, IPV6_RECVHOPLIMIT/IPV6_RECVTCLASS are set
 * on the socket by lispd.dataplane). Returns how many, 0 when none, -1. */
static int receive(struct lispd_dp *dp, int fd)
{
    for (uint32_t i = 0; i < LISPD_BATCH; i++) {
        dp->rx_iovs[i] = (struct iovec){.iov_base = buffer(dp, i), .iov_len = LISPD_BUFFER};
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

static void outer_fields(const struct msghdr *m, uint8_t *ttl, uint8_t *tos)
{
    *ttl = 255;
    *tos = 0;
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
        }
    }
}

/* The receive side of a socket batch: one recvmmsg, then each datagram
 * that was not cut short to step. Returns how many arrived. */
typedef void (*datagram_step)(struct lispd_dp *dp, uint32_t i, uint8_t *buf, size_t len,
                              void *context);

static int socket_batch(struct lispd_dp *dp, int fd, datagram_step step, void *context)
{
    int n = receive(dp, fd);
    for (int i = 0; i < n; i++) {
        if (dp->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            dp->counters.drops[LISPD_DROP_TRUNCATED]++;
            continue;
        }
        step(dp, (uint32_t)i, buffer(dp, (uint32_t)i), dp->rx_msgs[i].msg_len, context);
    }
    if (n > 0)
        dp->counters.batches++;
    return n;
}

static void etr_step(struct lispd_dp *dp, uint32_t i, uint8_t *buf, size_t len, void *context)
{
    (void)context;
    uint8_t ttl, tos;
    outer_fields(&dp->rx_msgs[i].msg_hdr, &ttl, &tos);
    struct lispd_verdict v;
    lispd_etr_process(dp, buf, len, ttl, tos, &v);
    if (v.verdict == LISPD_VERDICT_WRITE)
        write_out(dp, dp->tuns[v.index].fd, buf, &v, &dp->counters.etr_packets,
                  &dp->counters.etr_bytes);
    else
        dp->counters.drops[v.reason]++;
}

int lispd_etr_batch(struct lispd_dp *dp, int udp_fd)
{
    return socket_batch(dp, udp_fd, etr_step, NULL);
}

/* Head-end replication (RFC 7348 4.2): one copy per flood peer, each built
 * in the same buffer and sent at once, so no copy of the frame is made. */
static void flood(struct lispd_dp *dp, uint32_t segment, uint8_t *buf,
                  const struct lispd_verdict *frame)
{
    const struct dp_segment *s = &dp->segments[segment];
    int fd = s->family == LISPD_FAMILY_IPV6 ? dp->raw6_fd : dp->raw4_fd;
    for (uint32_t p = 0; p < s->n_flood; p++) {
        struct lispd_verdict v;
        lispd_vxlan_encap(dp, segment, buf, LISPD_BUFFER, frame->offset, frame->length,
                          &s->flood[p], &v);
        if (v.verdict != LISPD_VERDICT_SEND) {
            dp->counters.drops[v.reason]++;
            continue;
        }
        struct dp_sendq *q = s->family == LISPD_FAMILY_IPV6 ? &dp->send6 : &dp->send4;
        uint32_t queued = q->n;
        enqueue(dp, buf, &v);
        /* Send this copy alone, now, before the buffer is rewritten. */
        struct mmsghdr one = q->msgs[queued];
        q->n = queued;
        if (fd >= 0 && sendmsg(fd, &one.msg_hdr, MSG_DONTWAIT) == (ssize_t)v.length) {
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
    struct lispd_verdict v;
    lispd_vxlan_tx_process(dp, segment, buf, LISPD_BUFFER, LISPD_HEADROOM, len, &v);
    if (v.verdict == LISPD_VERDICT_SEND)
        enqueue(dp, buf, &v);
    else if (v.verdict == LISPD_VERDICT_FLOOD)
        flood(dp, segment, buf, &v);
    else
        dp->counters.drops[v.reason]++;
}

int lispd_vxlan_tx_batch(struct lispd_dp *dp, uint32_t segment)
{
    if (segment >= dp->n_segments)
        return -1;
    return device_batch(dp, dp->segments[segment].fd, vxlan_tx_step, &segment,
                        &dp->counters.vxlan_tx_packets, &dp->counters.vxlan_tx_bytes);
}

static void vxlan_rx_step(struct lispd_dp *dp, uint32_t i, uint8_t *buf, size_t len,
                          void *context)
{
    uint64_t now_ms = *(const uint64_t *)context;
    const struct sockaddr_in6 *a = &dp->rx_addrs[i];
    uint8_t family = LISPD_FAMILY_IPV4;
    const uint8_t *source = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
    if (a->sin6_family == AF_INET6) {
        family = LISPD_FAMILY_IPV6;
        source = (const uint8_t *)&a->sin6_addr;
    }
    struct lispd_verdict v;
    lispd_vxlan_rx_process(dp, buf, len, family, source, now_ms, &v);
    if (v.verdict == LISPD_VERDICT_WRITE)
        write_out(dp, dp->segments[v.index].fd, buf, &v, &dp->counters.vxlan_rx_packets,
                  &dp->counters.vxlan_rx_bytes);
    else
        dp->counters.drops[v.reason]++;
}

int lispd_vxlan_rx_batch(struct lispd_dp *dp, int udp_fd, uint64_t now_ms)
{
    return socket_batch(dp, udp_fd, vxlan_rx_step, &now_ms);
}
