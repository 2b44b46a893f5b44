/*
 * lispd native core: the whole C surface, one header.
 *
 * Every function here has a pure-Python twin in the lispd package
 * (lispd.wire.inet, lispd.wire.data); tests check one against the other.
 * Multi-byte values in buffers are always network byte order; integers in
 * arguments and results are host values. No function allocates or keeps a
 * pointer past its return.
 *
 * This file is also fed to cffi's cdef, which is why it holds nothing but
 * declarations and the lines starting with '#' that the build script drops.
 */
#ifndef LISPD_NATIVE_H
#define LISPD_NATIVE_H
#include <stddef.h>
#include <stdint.h>

/* RFC 1071: one's-complement sum of data added to sum (not folded, not
 * complemented). Chain calls over consecutive pieces; every piece but the
 * last must have an even length. */
uint32_t lispd_csum_add(uint32_t sum, const uint8_t *data, size_t len);

/* Fold a 32-bit partial sum to 16 bits and complement it: the checksum. */
uint16_t lispd_csum_fold(uint32_t sum);

/* RFC 1071 Internet checksum of data. */
uint16_t lispd_inet_checksum(const uint8_t *data, size_t len);

/* RFC 1624 eqn. 3: the checksum after one 16-bit word changes from old_word
 * to new_word, without touching the rest of the data. */
uint16_t lispd_csum_update16(uint16_t check, uint16_t old_word, uint16_t new_word);

/* RFC 1624 for a 32-bit field (an IPv4 address, say). */
uint16_t lispd_csum_update32(uint16_t check, uint32_t old_value, uint32_t new_value);

/* Write a 20-byte IPv4 header (no options) with its checksum at buf + off.
 * src and dst point to 4 bytes in network order. Returns 20, or -1 when the
 * header does not fit in cap. */
int lispd_ipv4_header_write(uint8_t *buf, size_t cap, size_t off,
                            const uint8_t *src, const uint8_t *dst,
                            uint16_t total_length, uint16_t identification,
                            uint8_t tos, uint8_t ttl, uint8_t protocol,
                            int dont_fragment);

/* UDP checksum over the IPv4 (addr_len 4) or IPv6 (addr_len 16)
 * pseudo-header and the UDP header + payload at udp (whose checksum field is
 * taken as zero). A computed 0 is returned as 0xFFFF (RFC 768). Returns 0
 * for an addr_len that is neither 4 nor 16. */
uint16_t lispd_udp_checksum(const uint8_t *src, const uint8_t *dst, size_t addr_len,
                            const uint8_t *udp, size_t udp_len);

/* Write an 8-byte UDP header at buf + off with a zero checksum.
 * Returns 8, or -1 when it does not fit. */
int lispd_udp_header_write(uint8_t *buf, size_t cap, size_t off,
                           uint16_t source_port, uint16_t dest_port, uint16_t length);

/* RFC 9300 section 5.3: write the 8-byte LISP data header at buf + off.
 * flags is the first octet |N|L|E|V|I|R|K|K|; nonce_or_versions fills the
 * next 24 bits; with the I bit the last word is instance_id (24 bits) and
 * the low 8 bits of lsbs, otherwise all 32 bits of lsbs.
 * Returns 8, or -1 when it does not fit. */
int lispd_lisp_header_write(uint8_t *buf, size_t cap, size_t off, uint8_t flags,
                            uint32_t nonce_or_versions, uint32_t instance_id,
                            uint32_t lsbs);

/* RFC 7348 section 5: write the 8-byte VXLAN header (I flag, 24-bit VNI,
 * reserved bits zero) at buf + off. Returns 8, or -1 when it does not fit. */
int lispd_vxlan_header_write(uint8_t *buf, size_t cap, size_t off, uint32_t vni);

#endif
