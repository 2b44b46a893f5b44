/*
 * Internal to the offload path (native/gso.c, native/offload.c): the
 * virtio-net header, where the headers of a TCP/UDP packet are, cutting a
 * super-packet into segments and joining segments back into one. Not part
 * of the cffi surface; lispd_gso_segment and lispd_gro_coalesce in
 * lispd_native.h expose it to the tests.
 *
 *     struct virtio_net_hdr (10 octets, little-endian: TUNSETVNETLE)
 *
 *      0        1        2                 4                 6
 *     +--------+--------+--------+--------+--------+--------+
 *     | flags  |gso_type|     hdr_len     |    gso_size     |
 *     +--------+--------+--------+--------+--------+--------+
 *     |   csum_start    |   csum_offset   |
 *     +--------+--------+--------+--------+
 */
#ifndef LISPD_GSO_H
#define LISPD_GSO_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum {
    VNET_NEEDS_CSUM = 1,
    VNET_GSO_NONE = 0,
    VNET_GSO_TCPV4 = 1,
    VNET_GSO_TCPV6 = 4,
    VNET_GSO_UDP_L4 = 5,
    SUPER_MAX = 65535,      /* the IP length field of a super-packet */
    /* Segment headers: L2 (at most 14 here) + IPv4 with options (60) + TCP
     * with options (60). */
    SEGMENT_HEADER_MAX = 14 + 60 + 60
};

struct vnet_hdr {
    uint8_t flags, gso_type;
    uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

void vnet_hdr_get(const uint8_t *p, struct vnet_hdr *h);
void vnet_hdr_put(uint8_t *p, const struct vnet_hdr *h);

/* Offsets, from the start of the buffer, of an IPv4/IPv6 + TCP/UDP
 * packet's headers, the IP header at l3. */
struct gso_layout {
    uint8_t version, protocol;
    size_t l3, l4, payload;
};

/* 0 with *out filled, -1 when p[l3..len) is no IPv4/IPv6 packet with a
 * whole TCP or UDP header (IPv6 extension headers are not walked). */
int gso_layout(const uint8_t *p, size_t len, size_t l3, struct gso_layout *out);

/* Complete a NEEDS_CSUM checksum in place (the field holds the
 * pseudo-header sum). -1 when the offsets lie outside the packet. */
int gso_complete_csum(uint8_t *p, size_t len, const struct vnet_hdr *h);

/* How a GSO super-packet is cut: its layout, segment count and size. */
struct gso_plan {
    struct gso_layout layout;
    uint32_t segments;
    size_t size;            /* payload octets per segment, the last may be less */
};

/* 0 and *plan, or -1 when the header and packet do not agree (gso_type
 * against the packet, gso_size 0, an unknown type). */
int gso_plan(const uint8_t *p, size_t len, size_t l3, const struct vnet_hdr *h,
             struct gso_plan *plan);

/* Segment k of the super-packet p (len octets): its headers (p[0, payload)
 * with lengths, IPv4 ID, sequence number, flags and every checksum made)
 * written at out, SEGMENT_HEADER_MAX octets at most; *chunk and *chunk_len
 * the payload it carries, which stays where it is. Returns the header
 * length. */
size_t gso_segment(const uint8_t *p, size_t len, const struct gso_plan *plan, uint32_t k,
                   uint8_t *out, const uint8_t **chunk, size_t *chunk_len);

/* Consecutive segments of one TCP (or UDP) flow, waiting to be written as one
 * super-packet. Each is a whole packet (frame) in memory that stays put
 * until the run is emitted; emit gets the iovecs to write: the virtio-net
 * header, the first segment whole, then the payload of each other. */
enum { COALESCE_MAX = 128, COALESCE_UDP_MAX = 64 /* the kernel's UDP_MAX_SEGMENTS */ };

/* bytes: the segments' own lengths, added up (what they were on arrival). */
typedef void (*coalesce_emit)(void *context, struct iovec *iov, int iovcnt, uint32_t segments,
                              size_t bytes);

struct coalescer {
    size_t l3;
    int udp;                /* the device takes UDP super-packets (USO) too */
    uint32_t n;
    size_t total;           /* IP length of the run as one packet */
    struct gso_layout layout;
    uint8_t *segs[COALESCE_MAX];
    size_t lens[COALESCE_MAX];
    uint8_t vnet[10];
    struct iovec iov[COALESCE_MAX + 1];
    coalesce_emit emit;
    void *context;
};

void coalescer_init(struct coalescer *c, size_t l3, coalesce_emit emit, void *context);

/* Add a packet (p, len octets; the IP header at c->l3); runs are emitted
 * as they end. The packet must stay unchanged until then; the first of a
 * run has its headers rewritten when the run is emitted. */
void coalescer_add(struct coalescer *c, uint8_t *p, size_t len);

/* Emit what is waiting. */
void coalescer_flush(struct coalescer *c);

#endif
