/*
 * Segmentation and coalescing of TCP/UDP super-packets: what a NIC does
 * with TSO/USO on the way out and GRO on the way in, done here because the
 * TUN/TAP device hands lispd super-packets (IFF_VNET_HDR + TUNSETOFFLOAD)
 * and the UDP socket carries trains of equal-size datagrams (UDP_SEGMENT,
 * UDP_GRO). Twin: lispd.dataplane.gso, octet for octet.
 */
#include <string.h>

#include "bytes.h"
#include "gso.h"
#include "lispd_native.h"

enum { PROTO_TCP = 6, PROTO_UDP_ = 17, TCP_FIN = 0x01, TCP_PSH = 0x08, TCP_ACK = 0x10,
       TCP_CWR = 0x80 };

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void vnet_hdr_get(const uint8_t *p, struct vnet_hdr *h)
{
    h->flags = p[0];
    h->gso_type = p[1];
    h->hdr_len = get_le16(p + 2);
    h->gso_size = get_le16(p + 4);
    h->csum_start = get_le16(p + 6);
    h->csum_offset = get_le16(p + 8);
}

void vnet_hdr_put(uint8_t *p, const struct vnet_hdr *h)
{
    p[0] = h->flags;
    p[1] = h->gso_type;
    put_le16(p + 2, h->hdr_len);
    put_le16(p + 4, h->gso_size);
    put_le16(p + 6, h->csum_start);
    put_le16(p + 8, h->csum_offset);
}

/* RFC 1071 over long payloads. 32-bit words summed in host order into
 * 64-bit lanes need no carry handling, and the one's-complement sum is
 * byte-order independent up to one swap at the end (RFC 1071 section
 * 2(B)); AVX2 does 32 octets an instruction where the CPU has it (a
 * segment's payload is summed once on each side, so this is most of the
 * fast path's own work). Returns a 16-bit sum in network order, to be added
 * to other partial sums. */
static uint32_t csum_finish(uint64_t acc, const uint8_t *data, size_t i, size_t len)
{
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, data + i, 4);
        acc += w;
    }
    uint32_t tail = 0;
    memcpy(&tail, data + i, len - i); /* zero-padded, like a last odd octet */
    acc += tail;
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc = (acc & 0xFFFF) + (acc >> 16);
    acc = (acc & 0xFFFF) + (acc >> 16);
    uint16_t host = (uint16_t)acc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    host = (uint16_t)(host >> 8 | host << 8);
#endif
    return host;
}

static uint32_t csum_words(const uint8_t *data, size_t len)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        uint32_t w[4];
        memcpy(w, data + i, 16);
        a0 += w[0];
        a1 += w[1];
        a2 += w[2];
        a3 += w[3];
    }
    return csum_finish(a0 + a1 + a2 + a3, data, i, len);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static uint32_t csum_avx2(const uint8_t *data, size_t len)
{
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256(), zero = a;
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(data + i));
        __m256i y = _mm256_loadu_si256((const __m256i *)(const void *)(data + i + 32));
        a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(x, zero));
        b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(x, zero));
        a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(y, zero));
        b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(y, zero));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, _mm256_add_epi64(a, b));
    return csum_finish(lanes[0] + lanes[1] + lanes[2] + lanes[3], data, i, len);
}

uint32_t lispd_csum_sum(const uint8_t *data, size_t len, int vector)
{
    return vector && __builtin_cpu_supports("avx2") ? csum_avx2(data, len)
                                                    : csum_words(data, len);
}
#else
uint32_t lispd_csum_sum(const uint8_t *data, size_t len, int vector)
{
    (void)vector;
    return csum_words(data, len);
}
#endif

static uint32_t csum_fast(const uint8_t *data, size_t len)
{
    return lispd_csum_sum(data, len, 1);
}

int gso_layout(const uint8_t *p, size_t len, size_t l3, struct gso_layout *out)
{
    if (len <= l3)
        return -1;
    const uint8_t *ip = p + l3;
    size_t room = len - l3, l4;
    uint8_t version = ip[0] >> 4, protocol;
    if (version == 4 && room >= 20) {
        l4 = (size_t)(ip[0] & 0x0F) * 4;
        protocol = ip[9];
        if (l4 < 20)
            return -1;
    } else if (version == 6 && room >= 40) {
        l4 = 40;
        protocol = ip[6];
    } else {
        return -1;
    }
    size_t payload;
    if (protocol == PROTO_TCP && room >= l4 + 20)
        payload = l4 + (size_t)(ip[l4 + 12] >> 4) * 4;
    else if (protocol == PROTO_UDP_ && room >= l4 + 8)
        payload = l4 + 8;
    else
        return -1;
    if (payload > room)
        return -1;
    *out = (struct gso_layout){version, protocol, l3, l3 + l4, l3 + payload};
    return 0;
}

int gso_complete_csum(uint8_t *p, size_t len, const struct vnet_hdr *h)
{
    size_t start = h->csum_start, at = start + h->csum_offset;
    if (at + 2 > len)
        return -1;
    uint16_t check = lispd_csum_fold(csum_fast(p + start, len - start));
    /* A computed 0 is sent as 0xFFFF, as skb_checksum_help does (for UDP,
     * RFC 768: 0 says "no checksum"; for TCP the two are the same). */
    put_be16(p + at, check ? check : 0xFFFF);
    return 0;
}

int gso_plan(const uint8_t *p, size_t len, size_t l3, const struct vnet_hdr *h,
             struct gso_plan *plan)
{
    if (gso_layout(p, len, l3, &plan->layout) < 0 || h->gso_size == 0)
        return -1;
    const struct gso_layout *L = &plan->layout;
    int ok = (h->gso_type == VNET_GSO_TCPV4 && L->version == 4 && L->protocol == PROTO_TCP) ||
             (h->gso_type == VNET_GSO_TCPV6 && L->version == 6 && L->protocol == PROTO_TCP) ||
             (h->gso_type == VNET_GSO_UDP_L4 && L->protocol == PROTO_UDP_);
    if (!ok || L->payload - L->l3 > SEGMENT_HEADER_MAX - 14)
        return -1;
    size_t data = len - L->payload;
    plan->size = h->gso_size;
    plan->segments = data == 0 ? 1 : (uint32_t)((data + h->gso_size - 1) / h->gso_size);
    return 0;
}

/* The unfolded pseudo-header sum (RFC 793, 768, 8200) for length octets. */
static uint32_t pseudo_sum(const uint8_t *ip, uint8_t version, uint8_t protocol, size_t length)
{
    uint32_t sum = version == 4 ? csum_words(ip + 12, 8) : csum_words(ip + 8, 32);
    return sum + protocol + (uint32_t)(length >> 16) + (uint32_t)(length & 0xFFFF);
}

/* Lengths and the IPv4 header checksum of a packet whose IP header is at
 * ip and which is total octets long from there. */
static void set_ip_lengths(uint8_t *ip, const struct gso_layout *L, size_t total)
{
    if (L->version == 4) {
        put_be16(ip + 2, (uint16_t)total);
        put_be16(ip + 10, 0);
        put_be16(ip + 10, lispd_inet_checksum(ip, L->l4 - L->l3));
    } else {
        put_be16(ip + 4, (uint16_t)(total - 40));
    }
}

/* Lengths, IPv4 checksum and L4 checksum (over header and chunk) of a
 * segment whose headers are at out. */
static void finish_segment(uint8_t *out, const struct gso_layout *L, const uint8_t *chunk,
                           size_t chunk_len)
{
    uint8_t *ip = out + L->l3;
    size_t l4 = L->l4 - L->l3, head = L->payload - L->l4;
    size_t total = L->payload - L->l3 + chunk_len;
    set_ip_lengths(ip, L, total);
    uint8_t *th = ip + l4;
    size_t l4_len = total - l4, at = L->protocol == PROTO_TCP ? 16 : 6;
    if (L->protocol == PROTO_UDP_)
        put_be16(th + 4, (uint16_t)l4_len);
    put_be16(th + at, 0);
    /* The transport header has an even length, so the sums chain. */
    uint32_t sum = pseudo_sum(ip, L->version, L->protocol, l4_len) + csum_words(th, head) +
                   csum_fast(chunk, chunk_len);
    uint16_t check = lispd_csum_fold(sum);
    if (L->protocol == PROTO_UDP_ && check == 0)
        check = 0xFFFF;
    put_be16(th + at, check);
}

size_t gso_segment(const uint8_t *p, size_t len, const struct gso_plan *plan, uint32_t k,
                   uint8_t *out, const uint8_t **chunk, size_t *chunk_len)
{
    const struct gso_layout *L = &plan->layout;
    size_t hlen = L->payload, l3 = L->l3, l4 = L->l4 - l3;
    size_t offset = (size_t)k * plan->size, left = len - hlen - offset;
    *chunk = p + hlen + offset;
    *chunk_len = left < plan->size ? left : plan->size;
    memcpy(out, p, hlen);
    uint8_t *ip = out + l3;
    if (L->version == 4)
        put_be16(ip + 4, (uint16_t)(get_be16(p + l3 + 4) + k));
    if (L->protocol == PROTO_TCP) {
        uint8_t *th = ip + l4;
        put_be32(th + 4, get_be32(p + l3 + l4 + 4) + (uint32_t)offset);
        uint8_t flags = th[13];
        if (k + 1 != plan->segments)
            flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
        if (k != 0)
            flags &= (uint8_t)~TCP_CWR;
        th[13] = flags;
    }
    finish_segment(out, L, *chunk, *chunk_len);
    return hlen;
}

int lispd_gso_segment(const uint8_t *vnet, const uint8_t *packet, size_t len, uint32_t l3,
                      uint8_t *out, size_t out_cap, uint32_t *lengths, uint32_t max_segments)
{
    struct vnet_hdr h;
    vnet_hdr_get(vnet, &h);
    if (h.gso_type == VNET_GSO_NONE) {
        if (max_segments < 1 || len > out_cap)
            return -2;
        memcpy(out, packet, len);
        if ((h.flags & VNET_NEEDS_CSUM) && gso_complete_csum(out, len, &h) < 0)
            return -1;
        lengths[0] = (uint32_t)len;
        return 1;
    }
    struct gso_plan plan;
    if (gso_plan(packet, len, l3, &h, &plan) < 0)
        return -1;
    if (plan.segments > max_segments)
        return -2;
    size_t used = 0;
    for (uint32_t k = 0; k < plan.segments; k++) {
        const uint8_t *chunk;
        size_t chunk_len;
        uint8_t header[SEGMENT_HEADER_MAX];
        size_t hlen = gso_segment(packet, len, &plan, k, header, &chunk, &chunk_len);
        if (used + hlen + chunk_len > out_cap)
            return -2;
        memcpy(out + used, header, hlen);
        memcpy(out + used + hlen, chunk, chunk_len);
        lengths[k] = (uint32_t)(hlen + chunk_len);
        used += hlen + chunk_len;
    }
    return (int)plan.segments;
}

/* -- coalescing ------------------------------------------------------------- */

void coalescer_init(struct coalescer *c, size_t l3, coalesce_emit emit, void *context)
{
    memset(c, 0, sizeof *c);
    c->l3 = l3;
    c->emit = emit;
    c->context = context;
}

/* Whether a segment's TCP or UDP checksum is right: a run goes up with its
 * checksum left to the kernel (NEEDS_CSUM), so a segment damaged on the
 * way must not hide in it (a zero outer UDP checksum covers nothing). A
 * zero UDP checksum over IPv4 says "none" (RFC 768): nothing to check, and
 * the run gets a real one; over IPv6 it is invalid (RFC 8200 8.1). */
static int l4_checksum_ok(const uint8_t *p, size_t len, const struct gso_layout *L)
{
    if (L->protocol == PROTO_UDP_ && get_be16(p + L->l4 + 6) == 0)
        return L->version == 4;
    size_t l4_len = len - L->l4;
    uint32_t sum = pseudo_sum(p + L->l3, L->version, L->protocol, l4_len) +
                   csum_fast(p + L->l4, l4_len);
    return lispd_csum_fold(sum) == 0;
}

static size_t ip_length(const uint8_t *p, const struct gso_layout *L)
{
    return L->version == 4 ? get_be16(p + L->l3 + 2) : 40 + (size_t)get_be16(p + L->l3 + 4);
}

/* A packet (behind an untagged Ethernet header of IPv4 or IPv6 when l3 is
 * 14) that may start a run: TCP (with c->udp, UDP too) with payload,
 * as long as its headers say, no IPv4 fragment, for TCP ACK and PSH the
 * only flags, its checksum right. */
static int coalescible(const struct coalescer *c, const uint8_t *p, size_t len,
                       struct gso_layout *L)
{
    if (c->l3 == 14) { /* a frame: untagged IPv4 or IPv6 only */
        uint16_t type = len >= 14 ? get_be16(p + 12) : 0;
        if (type != 0x0800 && type != 0x86DD)
            return 0;
    }
    if (gso_layout(p, len, c->l3, L) < 0 || (L->protocol == PROTO_UDP_ && !c->udp))
        return 0;
    if (ip_length(p, L) != len - c->l3 || len == L->payload) /* trailing octets, no payload */
        return 0;
    if (L->version == 4 && ((p[c->l3 + 6] & 0x3F) | p[c->l3 + 7]))
        return 0;
    if (L->protocol == PROTO_TCP && (p[L->l4 + 13] & (uint8_t)~(TCP_ACK | TCP_PSH)))
        return 0;
    if (L->protocol == PROTO_UDP_ && get_be16(p + L->l4 + 4) != len - L->l4)
        return 0;
    return l4_checksum_ok(p, len, L);
}

/* Whether the headers of a and b are those of one flow: equal but for IP
 * length, ID and checksum; for TCP, sequence number, PSH and checksum; for
 * UDP, the ports alone. */
static int same_flow(const uint8_t *a, const uint8_t *b, const struct gso_layout *L)
{
    const uint8_t *ia = a + L->l3, *ib = b + L->l3;
    size_t l4 = L->l4 - L->l3;
    if (L->version == 4) {
        if (memcmp(ia, ib, 2) || memcmp(ia + 6, ib + 6, 4) || memcmp(ia + 12, ib + 12, l4 - 12))
            return 0;
    } else if (memcmp(ia, ib, 4) || memcmp(ia + 6, ib + 6, 34)) {
        return 0;
    }
    const uint8_t *ta = ia + l4, *tb = ib + l4;
    if (L->protocol == PROTO_UDP_)
        return memcmp(ta, tb, 4) == 0;
    size_t thl = L->payload - L->l4;
    return memcmp(ta, tb, 4) == 0 && memcmp(ta + 8, tb + 8, 5) == 0 &&
           (ta[13] & (uint8_t)~TCP_PSH) == (tb[13] & (uint8_t)~TCP_PSH) &&
           memcmp(ta + 14, tb + 14, 2) == 0 && memcmp(ta + 18, tb + 18, thl - 18) == 0;
}

/* Whether p continues the run: the same flow, every segment so far of the
 * first one's size (TCP: not pushed), p no larger, the next IPv4 ID and TCP
 * sequence number (what cutting the run again gives back), its checksum
 * right. */
static int joinable(const struct coalescer *c, const uint8_t *p, size_t len)
{
    struct gso_layout L;
    if (gso_layout(p, len, c->l3, &L) < 0 || L.l4 != c->layout.l4 ||
        L.payload != c->layout.payload || L.version != c->layout.version ||
        L.protocol != c->layout.protocol)
        return 0;
    const uint8_t *first = c->segs[0], *last = c->segs[c->n - 1];
    size_t size = c->lens[0] - L.payload, last_len = c->lens[c->n - 1] - L.payload;
    size_t data = len - L.payload;
    int tcp = L.protocol == PROTO_TCP;
    if (!same_flow(first, p, &L) || last_len != size || (tcp && (last[L.l4 + 13] & TCP_PSH)))
        return 0;
    if (data == 0 || data > size || ip_length(p, &L) != len - L.l3)
        return 0;
    if (L.version == 4 &&
        get_be16(p + L.l3 + 4) != (uint16_t)(get_be16(first + L.l3 + 4) + c->n))
        return 0;
    if (tcp && get_be32(p + L.l4 + 4) != get_be32(last + L.l4 + 4) + (uint32_t)last_len)
        return 0;
    if (!tcp && get_be16(p + L.l4 + 4) != len - L.l4)
        return 0;
    return l4_checksum_ok(p, len, &L);
}

void coalescer_flush(struct coalescer *c)
{
    if (c->n == 0)
        return;
    memset(c->vnet, 0, sizeof c->vnet);
    c->iov[0] = (struct iovec){c->vnet, sizeof c->vnet};
    uint8_t *first = c->segs[0];
    c->iov[1] = (struct iovec){first, c->lens[0]};
    if (c->n > 1) {
        const struct gso_layout *L = &c->layout;
        int tcp = L->protocol == PROTO_TCP;
        uint8_t *ip = first + L->l3, *th = first + L->l4;
        size_t l4_len = c->total - (L->l4 - L->l3);
        if (tcp)
            th[13] |= c->segs[c->n - 1][L->l4 + 13] & TCP_PSH;
        else
            put_be16(th + 4, (uint16_t)l4_len);
        set_ip_lengths(ip, L, c->total);
        /* NEEDS_CSUM: the field holds the pseudo-header sum, folded, not
         * complemented; the kernel adds the rest. */
        put_be16(th + (tcp ? 16 : 6),
                 (uint16_t)~lispd_csum_fold(pseudo_sum(ip, L->version, L->protocol, l4_len)));
        struct vnet_hdr h = {
            .flags = VNET_NEEDS_CSUM,
            .gso_type = !tcp ? VNET_GSO_UDP_L4 : L->version == 4 ? VNET_GSO_TCPV4
                                                                  : VNET_GSO_TCPV6,
            .hdr_len = (uint16_t)L->payload,
            .gso_size = (uint16_t)(c->lens[0] - L->payload),
            .csum_start = (uint16_t)L->l4,
            .csum_offset = tcp ? 16 : 6,
        };
        vnet_hdr_put(c->vnet, &h);
        for (uint32_t i = 1; i < c->n; i++)
            c->iov[i + 1] = (struct iovec){c->segs[i] + L->payload, c->lens[i] - L->payload};
    }
    size_t bytes = 0;
    for (uint32_t i = 0; i < c->n; i++)
        bytes += c->lens[i];
    c->emit(c->context, c->iov, (int)c->n + 1, c->n, bytes);
    c->n = 0;
}

void coalescer_add(struct coalescer *c, uint8_t *p, size_t len)
{
    if (c->n > 0) {
        size_t grown = c->total + len - c->layout.payload;
        uint32_t most = c->layout.protocol == PROTO_TCP ? COALESCE_MAX : COALESCE_UDP_MAX;
        if (c->n < most && grown <= SUPER_MAX && joinable(c, p, len)) {
            c->segs[c->n] = p;
            c->lens[c->n++] = len;
            c->total = grown;
            return;
        }
        coalescer_flush(c);
    }
    c->segs[0] = p;
    c->lens[0] = len;
    c->n = 1;
    if (!coalescible(c, p, len, &c->layout)) {
        coalescer_flush(c); /* alone */
        return;
    }
    c->total = len - c->l3;
}

/* lispd_gro_coalesce: the coalescer writing into a flat buffer. */
struct flat {
    uint8_t *out;
    size_t cap, used;
    uint32_t *lengths;
    uint32_t n;
    int full;
};

static void flat_emit(void *context, struct iovec *iov, int iovcnt, uint32_t segments,
                      size_t bytes)
{
    struct flat *f = context;
    (void)segments;
    (void)bytes;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (f->full || f->used + total > f->cap) {
        f->full = 1;
        return;
    }
    for (int i = 0; i < iovcnt; i++) {
        memcpy(f->out + f->used, iov[i].iov_base, iov[i].iov_len);
        f->used += iov[i].iov_len;
    }
    f->lengths[f->n++] = (uint32_t)total;
}

int lispd_gro_coalesce(uint8_t *packets, const uint32_t *lengths, uint32_t n, uint32_t l3,
                       int udp, uint8_t *out, size_t out_cap, uint32_t *out_lengths)
{
    struct flat f = {out, out_cap, 0, out_lengths, 0, 0};
    struct coalescer c;
    coalescer_init(&c, l3, flat_emit, &f);
    c.udp = udp != 0;
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        coalescer_add(&c, packets + at, lengths[i]);
        at += lengths[i];
    }
    coalescer_flush(&c);
    return f.full ? -2 : (int)f.n;
}
