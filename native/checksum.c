/* RFC 1071 Internet checksum and RFC 1624 incremental update. */
#include "bytes.h"
#include "lispd_native.h"

uint32_t lispd_csum_add(uint32_t sum, const uint8_t *data, size_t len)
{
    /* 64-bit accumulator: 2^48 16-bit words before it could overflow, so the
     * loop needs no carry handling. */
    uint64_t acc = sum;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        acc += (uint32_t)get_be16(data + i) + get_be16(data + i + 2) + get_be16(data + i + 4) +
               get_be16(data + i + 6);
    }
    for (; i + 2 <= len; i += 2)
        acc += get_be16(data + i);
    if (i < len)
        acc += (uint32_t)data[i] << 8; /* odd byte, padded with zero */
    while (acc >> 32)
        acc = (acc & 0xffffffffu) + (acc >> 32);
    return (uint32_t)acc;
}

uint16_t lispd_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)~sum;
}

uint16_t lispd_inet_checksum(const uint8_t *data, size_t len)
{
    /* The fast path's sum (native/gso.c): the same checksum, in fewer
     * steps; every IP header the ETR takes in is checked with it. */
    return lispd_csum_fold(lispd_csum_sum(data, len, 0));
}

uint16_t lispd_csum_update16(uint16_t check, uint16_t old_word, uint16_t new_word)
{
    /* HC' = ~(~HC + ~m + m') */
    uint32_t sum = (uint16_t)~check;
    sum += (uint16_t)~old_word;
    sum += new_word;
    return lispd_csum_fold(sum);
}

uint16_t lispd_csum_update32(uint16_t check, uint32_t old_value, uint32_t new_value)
{
    uint32_t sum = (uint16_t)~check;
    sum += (uint16_t)~(old_value >> 16);
    sum += (uint16_t)~(old_value & 0xffffu);
    sum += new_value >> 16;
    sum += new_value & 0xffffu;
    return lispd_csum_fold(sum);
}

uint16_t lispd_udp_checksum(const uint8_t *src, const uint8_t *dst, size_t addr_len,
                            const uint8_t *udp, size_t udp_len)
{
    if (addr_len != 4 && addr_len != 16)
        return 0;
    uint32_t sum = lispd_csum_add(0, src, addr_len);
    sum = lispd_csum_add(sum, dst, addr_len);
    /* IPv4 pseudo-header: zero, protocol, UDP length (16 bits); IPv6: UDP
     * length (32 bits), three zero octets, next header. Their sums agree. */
    sum += 17u;
    sum += (uint32_t)(udp_len >> 16) + (uint32_t)(udp_len & 0xffffu);
    if (udp_len >= 8) {
        sum = lispd_csum_add(sum, udp, 6); /* skip the checksum field */
        sum = lispd_csum_add(sum, udp + 8, udp_len - 8);
    } else {
        sum = lispd_csum_add(sum, udp, udp_len);
    }
    uint16_t check = lispd_csum_fold(sum);
    return check == 0 ? 0xffff : check;
}
