/*
 * Internal to the C core: sizes and numbers of the protocols the fast path
 * reads and writes, and the IPv6 header writer (native/headers.c) that the
 * encapsulation (native/steps.c) and the ICMPv6 answer (native/icmp.c)
 * share. Not part of the cffi surface.
 */
#ifndef LISPD_WIRE_H
#define LISPD_WIRE_H
#include <stdint.h>

enum {
    IPV4_HEADER = 20, /* without options */
    IPV6_HEADER = 40, /* the fixed header */
    UDP_HEADER = 8,
    ICMP_HEADER = 8,
    PROTO_ICMP = 1,
    PROTO_UDP = 17,
    PROTO_FRAGMENT = 44,
    PROTO_ICMPV6 = 58
};

/* Write the 40-octet IPv6 header at h: version 6, traffic_class, the low 20
 * bits of flow_label, payload_length, next_header, hop_limit, then src and
 * dst (16 octets each). */
void lispd_ipv6_header_put(uint8_t *h, const uint8_t *src, const uint8_t *dst,
                           uint16_t payload_length, uint8_t traffic_class, uint32_t flow_label,
                           uint8_t next_header, uint8_t hop_limit);

#endif
