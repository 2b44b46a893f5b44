/* Header writers for the encapsulation path: each writes into a caller's
 * buffer at an offset, so packets are built in reserved headroom. */
#include <string.h>

#include "bytes.h"
#include "lispd_native.h"
#include "wire.h"

static int fits(size_t cap, size_t off, size_t len)
{
    return off <= cap && len <= cap - off;
}

int lispd_ipv4_header_write(uint8_t *buf, size_t cap, size_t off,
                            const uint8_t *src, const uint8_t *dst,
                            uint16_t total_length, uint16_t identification,
                            uint8_t tos, uint8_t ttl, uint8_t protocol,
                            int dont_fragment)
{
    if (!fits(cap, off, 20))
        return -1;
    uint8_t *h = buf + off;
    h[0] = 0x45; /* version 4, IHL 5 */
    h[1] = tos;
    put_be16(h + 2, total_length);
    put_be16(h + 4, identification);
    put_be16(h + 6, dont_fragment ? 0x4000 : 0);
    h[8] = ttl;
    h[9] = protocol;
    put_be16(h + 10, 0);
    for (int i = 0; i < 4; i++) {
        h[12 + i] = src[i];
        h[16 + i] = dst[i];
    }
    put_be16(h + 10, lispd_inet_checksum(h, 20));
    return 20;
}

void lispd_ipv6_header_put(uint8_t *h, const uint8_t *src, const uint8_t *dst,
                           uint16_t payload_length, uint8_t traffic_class, uint32_t flow_label,
                           uint8_t next_header, uint8_t hop_limit)
{
    h[0] = (uint8_t)(0x60 | (traffic_class >> 4));
    h[1] = (uint8_t)(((traffic_class & 0x0F) << 4) | ((flow_label >> 16) & 0x0F));
    put_be16(h + 2, (uint16_t)flow_label);
    put_be16(h + 4, payload_length);
    h[6] = next_header;
    h[7] = hop_limit;
    memcpy(h + 8, src, 16);
    memcpy(h + 24, dst, 16);
}

int lispd_udp_header_write(uint8_t *buf, size_t cap, size_t off,
                           uint16_t source_port, uint16_t dest_port, uint16_t length)
{
    if (!fits(cap, off, 8))
        return -1;
    uint8_t *h = buf + off;
    put_be16(h, source_port);
    put_be16(h + 2, dest_port);
    put_be16(h + 4, length);
    put_be16(h + 6, 0);
    return 8;
}

int lispd_lisp_header_write(uint8_t *buf, size_t cap, size_t off, uint8_t flags,
                            uint32_t nonce_or_versions, uint32_t instance_id,
                            uint32_t lsbs)
{
    if (!fits(cap, off, 8))
        return -1;
    uint8_t *h = buf + off;
    put_be32(h, (uint32_t)flags << 24 | (nonce_or_versions & 0xffffffu));
    if (flags & 0x08) /* I bit */
        put_be32(h + 4, (instance_id & 0xffffffu) << 8 | (lsbs & 0xffu));
    else
        put_be32(h + 4, lsbs);
    return 8;
}

int lispd_vxlan_header_write(uint8_t *buf, size_t cap, size_t off, uint32_t vni)
{
    if (!fits(cap, off, 8))
        return -1;
    uint8_t *h = buf + off;
    put_be32(h, 0x08000000u); /* I flag */
    put_be32(h + 4, (vni & 0xffffffu) << 8);
    return 8;
}
