/* ICMP "packet too big" answers: what the ITR writes back into the TUN when
 * an inner packet plus the encapsulation does not fit the underlay MTU.
 *
 * IPv4 (RFC 792, RFC 1191 section 4): a 20-octet IPv4 header (TOS 0, ID 0,
 * DF clear, TTL 64, protocol 1), then
 *     | Type = 3 | Code = 4 |   Checksum    |
 *     |   unused = 0        | Next-Hop MTU  |
 * and as much of the original packet as fits in 576 octets (RFC 1812
 * section 4.3.2.3). The MTU is 16 bits here: a larger one is sent as 65535.
 *
 * IPv6 (RFC 4443 section 3.2): a 40-octet IPv6 header (traffic class 0,
 * flow label 0, next header 58, hop limit 64), then
 *     | Type = 2 | Code = 0 |   Checksum    |
 *     |              MTU (32 bits)          |
 * and as much of the original packet as fits in 1280 octets (the IPv6
 * minimum MTU), the checksum over the RFC 8200 section 8.1 pseudo-header.
 *
 * Refused (-1), following RFC 1122 section 3.2.2, RFC 1812 section 4.3.2.7
 * and RFC 4443 section 2.4 (e):
 *   - not IPv4/IPv6, or shorter than its IP header (IHL < 5, or the options
 *     cut off; an IPv6 packet under 40 octets);
 *   - an ICMP error itself: IPv4 protocol 1 with type 3, 4, 5, 11 or 12, or
 *     IPv6 next header 58 with a type below 128 (the next header directly
 *     after the fixed header; extension headers are not walked). When the
 *     type octet is not in the buffer we cannot tell, and refuse;
 *   - a non-first fragment: IPv4 fragment offset not 0; IPv6 whose next
 *     header is a Fragment header (44) with an offset not 0 (refused too when
 *     that header is cut off);
 *   - an IPv4 source that is not one host: 0.0.0.0/8, 127.0.0.0/8 (loopback),
 *     224.0.0.0/4 (multicast) and 240.0.0.0/4 (class E, 255.255.255.255
 *     included); an IPv4 destination that is multicast or 255.255.255.255;
 *   - an IPv6 source that is ::, ::1 or multicast (ff00::/8). A multicast
 *     IPv6 destination is answered: RFC 4443 2.4 (e.3) makes Packet Too Big
 *     the exception;
 *   - out_cap smaller than the answer.
 *
 * Everything needed from packet is read before out is written, and the
 * quoted part is moved with memmove, so out may overlap packet (the answer
 * can be built in place, in the packet's own buffer).
 */
#include <string.h>

#include "bytes.h"
#include "lispd_native.h"
#include "wire.h"

enum {
    IPV4_MIN_MTU = 576,  /* RFC 1812 4.3.2.3: the most an ICMPv4 error may be */
    IPV6_MIN_MTU = 1280, /* RFC 8200 section 5 */
    ANSWER_TTL = 64
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int icmpv4_is_error(uint8_t type)
{
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* RFC 1122 3.2.2: "a datagram whose source address does not define a single
 * host -- e.g., a zero address, a loopback address, a broadcast address, a
 * multicast address, or a Class E address". */
static int ipv4_source_ok(const uint8_t *a)
{
    return a[0] != 0 && a[0] != 127 && a[0] < 224;
}

static int ipv4_destination_ok(const uint8_t *a)
{
    int multicast = (a[0] & 0xf0) == 0xe0;
    int broadcast = a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255;
    return !multicast && !broadcast;
}

static int ipv6_source_ok(const uint8_t *a)
{
    if (a[0] == 0xff)
        return 0; /* multicast */
    for (int i = 0; i < 15; i++)
        if (a[i] != 0)
            return 1;
    return a[15] > 1; /* :: is unspecified, ::1 loopback */
}

/* What an answer's framing depends on: the IP version. */
struct answer_shape {
    size_t ip_header; /* the answer's IP header */
    size_t most;      /* the longest answer */
    size_t addr_len;
    size_t source_at; /* where an IP header holds the source address */
};

static const struct answer_shape SHAPE_V4 = {IPV4_HEADER, IPV4_MIN_MTU, 4, 12};
static const struct answer_shape SHAPE_V6 = {IPV6_HEADER, IPV6_MIN_MTU, 16, 8};

/* Start the answer to packet: save the addresses it goes between (from our
 * source to the packet's source), then move as much of packet as fits
 * behind the answer's IP and ICMP headers. Returns the answer's total
 * length, or 0 (nothing written) when it does not fit out_cap. */
static size_t quote_packet(const struct answer_shape *shape, uint8_t *out, size_t out_cap,
                           const uint8_t *packet, size_t len, const uint8_t *source,
                           uint8_t *from, uint8_t *destination)
{
    size_t quote = min_size(len, shape->most - shape->ip_header - ICMP_HEADER);
    size_t total = shape->ip_header + ICMP_HEADER + quote;
    if (out_cap < total)
        return 0;
    memcpy(from, source, shape->addr_len);
    memcpy(destination, packet + shape->source_at, shape->addr_len);
    memmove(out + shape->ip_header + ICMP_HEADER, packet, quote);
    return total;
}

static int too_big_v4(uint8_t *out, size_t out_cap, const uint8_t *packet, size_t len,
                      uint32_t mtu, const uint8_t *source)
{
    size_t ihl = (size_t)(packet[0] & 0x0f) * 4;
    if (len < IPV4_HEADER || ihl < IPV4_HEADER || ihl > len)
        return -1;
    if ((get_be16(packet + 6) & 0x1fff) != 0)
        return -1; /* a non-first fragment */
    if (packet[9] == PROTO_ICMP && (len == ihl || icmpv4_is_error(packet[ihl])))
        return -1;
    if (!ipv4_source_ok(packet + 12) || !ipv4_destination_ok(packet + 16))
        return -1;

    uint8_t from[4], destination[4];
    size_t total = quote_packet(&SHAPE_V4, out, out_cap, packet, len, source, from, destination);
    if (total == 0)
        return -1;

    lispd_ipv4_header_write(out, out_cap, 0, from, destination, (uint16_t)total, 0, 0,
                            ANSWER_TTL, PROTO_ICMP, 0);
    uint8_t *icmp = out + IPV4_HEADER;
    icmp[0] = 3; /* destination unreachable */
    icmp[1] = 4; /* fragmentation needed and DF set */
    put_be16(icmp + 2, 0);
    put_be16(icmp + 4, 0);
    put_be16(icmp + 6, mtu > 0xffff ? 0xffff : (uint16_t)mtu);
    put_be16(icmp + 2, lispd_inet_checksum(icmp, total - IPV4_HEADER));
    return (int)total;
}

static int too_big_v6(uint8_t *out, size_t out_cap, const uint8_t *packet, size_t len,
                      uint32_t mtu, const uint8_t *source)
{
    if (len < IPV6_HEADER)
        return -1;
    uint8_t next = packet[6];
    if (next == PROTO_ICMPV6 && (len == IPV6_HEADER || packet[IPV6_HEADER] < 128))
        return -1; /* an ICMPv6 error message, or one we cannot tell from one */
    if (next == PROTO_FRAGMENT &&
        (len < IPV6_HEADER + 8 || (get_be16(packet + IPV6_HEADER + 2) & 0xfff8) != 0))
        return -1; /* a non-first fragment (or a cut-off Fragment header) */
    if (!ipv6_source_ok(packet + 8))
        return -1;

    uint8_t from[16], destination[16];
    size_t total = quote_packet(&SHAPE_V6, out, out_cap, packet, len, source, from, destination);
    if (total == 0)
        return -1;
    size_t payload = total - IPV6_HEADER;

    /* traffic class 0, flow label 0 */
    lispd_ipv6_header_put(out, from, destination, (uint16_t)payload, 0, 0, PROTO_ICMPV6,
                          ANSWER_TTL);
    uint8_t *icmp = out + IPV6_HEADER;
    icmp[0] = 2; /* packet too big */
    icmp[1] = 0;
    put_be16(icmp + 2, 0);
    put_be32(icmp + 4, mtu);
    /* Pseudo-header: source, destination, upper-layer length (32 bits),
     * three zero octets and the next header. */
    uint32_t sum = lispd_csum_add(0, out + 8, 32);
    sum += (uint32_t)(payload >> 16) + (uint32_t)(payload & 0xffffu) + PROTO_ICMPV6;
    sum = lispd_csum_add(sum, icmp, payload);
    put_be16(icmp + 2, lispd_csum_fold(sum));
    return (int)total;
}

int lispd_icmp_too_big(uint8_t *out, size_t out_cap, const uint8_t *packet, size_t len,
                       uint32_t mtu, const uint8_t *source)
{
    if (len < 1)
        return -1;
    switch (packet[0] >> 4) {
    case 4:
        return too_big_v4(out, out_cap, packet, len, mtu, source);
    case 6:
        return too_big_v6(out, out_cap, packet, len, mtu, source);
    default:
        return -1;
    }
}
