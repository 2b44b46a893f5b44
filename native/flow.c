/* Flow hash: 32-bit FNV-1a over the 5-tuple of an IP packet (or the MACs and
 * EtherType of a non-IP Ethernet frame). It chooses among an entry's RLOCs
 * and the outer UDP source port, so it must be stable: no seed, no host
 * dependence, the same value as the twin in lispd.wire.flow.
 *
 * The octets hashed, in order:
 *   IPv4: source (4), destination (4), protocol (1), ports (4)      13 octets
 *   IPv6: source (16), destination (16), next header (1), ports (4) 37 octets
 * where ports are the first four octets of the transport header (source
 * port, destination port, network order) for TCP, UDP, UDP-Lite and SCTP,
 * and four zero octets otherwise:
 *   - another protocol (ICMP, GRE, ESP, an IPv6 extension header: the IPv6
 *     next header is taken as it is, extension headers are not walked);
 *   - any IPv4 fragment, first or not (MF set or offset not 0), so that all
 *     fragments of a datagram take the same path;
 *   - fewer than four octets after the IP header in the buffer.
 * Well-formed means: IPv4 with version 4, IHL of at least 5 and the whole
 * header (options included) in the buffer; IPv6 with version 6 and 40
 * octets. Lengths in the header (total length, payload length) and the
 * IPv4 header checksum are not checked: the octets present are hashed.
 */
#include "bytes.h"
#include "lispd_native.h"

/* FNV-1a, 32 bits (draft-eastlake-fnv section 2) */
static const uint32_t FNV_OFFSET_BASIS = 0x811C9DC5u;
static const uint32_t FNV_PRIME = 0x01000193u;

enum {
    ETHERTYPE_IPV4 = 0x0800,
    ETHERTYPE_IPV6 = 0x86DD,
    ETHERTYPE_VLAN = 0x8100
};

static uint32_t fnv1a(uint32_t h, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= FNV_PRIME;
    }
    return h;
}

static int has_ports(uint8_t protocol)
{
    return protocol == 6 || protocol == 17 || protocol == 132 || protocol == 136;
}

static uint32_t hash_ports(uint32_t h, uint8_t protocol, const uint8_t *l4, size_t l4_len,
                           int fragment)
{
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    h = fnv1a(h, &protocol, 1);
    if (has_ports(protocol) && !fragment && l4_len >= 4)
        return fnv1a(h, l4, 4);
    return fnv1a(h, zeros, 4);
}

uint32_t lispd_flow_hash(const uint8_t *packet, size_t len)
{
    if (len < 1)
        return 0;
    uint8_t version = packet[0] >> 4;
    if (version == 4) {
        size_t ihl = (size_t)(packet[0] & 0x0f) * 4;
        if (len < 20 || ihl < 20 || ihl > len)
            return 0;
        /* flags and fragment offset: MF is 0x2000, the offset the low 13 bits */
        int fragment = (get_be16(packet + 6) & 0x3fff) != 0;
        uint32_t h = fnv1a(FNV_OFFSET_BASIS, packet + 12, 8); /* source, destination */
        return hash_ports(h, packet[9], packet + ihl, len - ihl, fragment);
    }
    if (version == 6) {
        if (len < 40)
            return 0;
        uint32_t h = fnv1a(FNV_OFFSET_BASIS, packet + 8, 32); /* source, destination */
        return hash_ports(h, packet[6], packet + 40, len - 40, 0);
    }
    return 0;
}

/* One 802.1Q tag is skipped (EtherType at 16, payload at 18); the VLAN ID is
 * not hashed. A 0x8100 frame too short for its tag hashes as a non-IP frame
 * of EtherType 0x8100. An IP EtherType always means lispd_flow_hash of the
 * payload, 0 when that is not a well-formed IP header. */
uint32_t lispd_frame_hash(const uint8_t *frame, size_t len)
{
    if (len < 14)
        return 0;
    size_t type_at = 12;
    if (get_be16(frame + 12) == ETHERTYPE_VLAN && len >= 18)
        type_at = 16; /* one 802.1Q tag: TPID, TCI, then the real EtherType */
    uint16_t ethertype = get_be16(frame + type_at);
    if (ethertype == ETHERTYPE_IPV4 || ethertype == ETHERTYPE_IPV6)
        return lispd_flow_hash(frame + type_at + 2, len - type_at - 2);
    uint32_t h = fnv1a(FNV_OFFSET_BASIS, frame, 12); /* destination, source MAC */
    return fnv1a(h, frame + type_at, 2);
}
