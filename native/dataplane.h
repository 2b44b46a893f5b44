/*
 * Internal to the fast path (native/steps.c, native/batch.c): the state
 * behind the opaque struct lispd_dp. Not part of the cffi surface.
 */
#ifndef LISPD_DATAPLANE_H
#define LISPD_DATAPLANE_H
#include <sys/socket.h>
#include <netinet/in.h>
#include "bytes.h"
#include "lispd_native.h"

struct dp_tun {
    int fd;
    uint32_t instance_id;
};

struct dp_segment {
    int fd;
    uint32_t vni;
    uint8_t family;
    uint8_t local[16];
    int learning;
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

    /* LISPD_BATCH buffers of LISPD_BUFFER octets, reused by every batch. */
    uint8_t *buffers;
    struct dp_sendq send4, send6;
    struct mmsghdr rx_msgs[LISPD_BATCH];
    struct iovec rx_iovs[LISPD_BATCH];
    struct sockaddr_in6 rx_addrs[LISPD_BATCH];
    uint8_t rx_control[LISPD_BATCH][64];
    uint8_t scratch[1280];  /* an ICMP answer is built here */
};

static inline size_t dp_addr_len(uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? 16 : 4;
}

#endif
