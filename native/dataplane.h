/*
 * Internal to the fast path (native/steps.c, native/batch.c): the state
 * behind the opaque struct lispd_dp. Not part of the cffi surface.
 */
#ifndef LISPD_DATAPLANE_H
#define LISPD_DATAPLANE_H
#include <sys/socket.h>
#include <netinet/in.h>
#include "bytes.h"
#include "hashindex.h"
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
    struct dp_recent_itr entries[LISPD_RECENT_ITRS];
    struct lispd_hi index;
};

int dp_recent_init(struct dp_recent *r);
void dp_recent_free(struct dp_recent *r);

/* address (4 or 16 octets of family) seen at now_ms. */
void dp_recent_seen(struct dp_recent *r, uint8_t family, const uint8_t *address,
                    uint64_t now_ms);

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
    uint8_t *inject;        /* LISPD_BUFFER octets for lispd_itr_inject */
    struct dp_recent recent;
};

static inline size_t dp_addr_len(uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? 16 : 4;
}

#endif
