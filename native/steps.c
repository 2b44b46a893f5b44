/*
 * The per-packet steps of the fast path: pure functions of the tables and a
 * buffer, no I/O. native/batch.c calls them on whole batches; tests call them
 * one packet at a time against their Python twin (lispd.dataplane.reference).
 *
 * A packet sits in its buffer behind LISPD_HEADROOM free octets, so the
 * outer headers are written in place in front of it, never copied around.
 */
#include <string.h>

#include "dataplane.h"
#include "wire.h"

enum {
    LISP_FLAG_N = 0x80, /* nonce present */
    LISP_FLAG_L = 0x40, /* locator-status-bits present */
    LISP_FLAG_E = 0x20, /* echo-nonce request */
    LISP_FLAG_V = 0x10, /* map-version present */
    LISP_FLAG_I = 0x08, /* instance-id present */
    LISP_FLAG_K = 0x03, /* key id of LISP-crypto (RFC 8061), unsupported */
    LISP_HEADER = 8,
    VXLAN_HEADER = 8,
    ETHER_HEADER = 14,
    VXLAN_FLAG_I = 0x08,
    ECN_MASK = 0x03,
    ECN_NOT_ECT = 0x00,
    ECN_ECT1 = 0x01,
    ECN_ECT0 = 0x02,
    ECN_CE = 0x03,
    PARSED = -1
};

/* What the steps need to know of an inner IP packet. */
struct inner {
    uint8_t family;
    size_t length; /* from its own header: trailing octets are not part of it */
    const uint8_t *source, *destination;
    uint8_t tos, ttl;
    int dont_fragment;
};

static void drop(struct lispd_verdict *v, int32_t reason)
{
    v->verdict = LISPD_VERDICT_DROP;
    v->reason = reason;
}

/* Validate an IPv4/IPv6 packet of at most len octets into *in. Returns -1
 * when it is good, else the drop reason (LISPD_DROP_TRUNCATED is 0). */
static int32_t parse_inner(const uint8_t *p, size_t len, int check_ipv4_sum, struct inner *in)
{
    if (len < 1)
        return LISPD_DROP_TRUNCATED;
    switch (p[0] >> 4) {
    case 4: {
        if (len < IPV4_HEADER)
            return LISPD_DROP_TRUNCATED;
        size_t ihl = (size_t)(p[0] & 0x0F) * 4;
        size_t total = get_be16(p + 2);
        if (ihl < IPV4_HEADER || total < ihl)
            return LISPD_DROP_BAD_INNER;
        if (total > len)
            return LISPD_DROP_TRUNCATED;
        if (check_ipv4_sum && lispd_inet_checksum(p, ihl) != 0)
            return LISPD_DROP_BAD_INNER;
        in->family = LISPD_FAMILY_IPV4;
        in->length = total;
        in->source = p + 12;
        in->destination = p + 16;
        in->tos = p[1];
        in->ttl = p[8];
        in->dont_fragment = (p[6] & 0x40) != 0;
        return PARSED;
    }
    case 6: {
        if (len < IPV6_HEADER)
            return LISPD_DROP_TRUNCATED;
        size_t total = IPV6_HEADER + (size_t)get_be16(p + 4);
        if (total > len)
            return LISPD_DROP_TRUNCATED;
        in->family = LISPD_FAMILY_IPV6;
        in->length = total;
        in->source = p + 8;
        in->destination = p + 24;
        in->tos = (uint8_t)(((p[0] & 0x0F) << 4) | (p[1] >> 4));
        in->ttl = p[7];
        in->dont_fragment = 1; /* IPv6 routers never fragment */
        return PARSED;
    }
    default:
        return LISPD_DROP_BAD_INNER;
    }
}

/* RFC 9300 section 5.3 / RFC 9301: pick by weight among the entry's
 * locators on the flow hash (lispd.mapcache.choose_locator is the twin). */
static const struct lispd_locator *choose_locator(const struct lispd_fib_entry *e, uint32_t hash)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < e->n_locators; i++)
        total += e->locators[i].weight;
    if (total == 0)
        return &e->locators[hash % e->n_locators];
    uint64_t r = hash % total, cumulative = 0;
    for (uint32_t i = 0; i < e->n_locators; i++) {
        cumulative += e->locators[i].weight;
        if (r < cumulative)
            return &e->locators[i];
    }
    return &e->locators[e->n_locators - 1];
}

static size_t outer_ip_length(uint8_t family)
{
    return family == LISPD_FAMILY_IPV6 ? IPV6_HEADER : IPV4_HEADER;
}

/* The largest outer packet: the MTU, and what the length field can say
 * (IPv4 total length; IPv6 payload length, the 40-octet header not counted). */
static size_t outer_limit(uint32_t mtu, uint8_t family)
{
    size_t most = family == LISPD_FAMILY_IPV6 ? 65535 + IPV6_HEADER : 65535;
    return mtu < most ? mtu : most;
}

/* Multicast, broadcast and link-local destinations reach the TUN because
 * the kernel sends them out of every interface; no EID is there. */
static int overlay_destination(const struct inner *in)
{
    const uint8_t *d = in->destination;
    if (in->family == LISPD_FAMILY_IPV4)
        return (d[0] & 0xF0) != 0xE0 && !(d[0] == 169 && d[1] == 254) &&
               !(d[0] == 255 && d[1] == 255 && d[2] == 255 && d[3] == 255);
    return d[0] != 0xFF && !(d[0] == 0xFE && (d[1] & 0xC0) == 0x80);
}

/* Write outer IP + UDP in front of the UDP payload at buf + payload_off
 * (payload_len octets). Returns the offset of the outer IP header. */
static size_t write_outer(uint8_t *buf, size_t cap, size_t payload_off, size_t payload_len,
                          uint8_t family, const uint8_t *source, const uint8_t *destination,
                          uint16_t source_port, uint16_t dest_port, uint8_t tos, uint8_t ttl,
                          uint32_t flow_label)
{
    size_t udp_off = payload_off - UDP_HEADER;
    size_t udp_len = payload_len + UDP_HEADER;
    lispd_udp_header_write(buf, cap, udp_off, source_port, dest_port, (uint16_t)udp_len);
    if (family == LISPD_FAMILY_IPV4) {
        size_t ip_off = udp_off - IPV4_HEADER;
        /* UDP checksum zero (RFC 9300 5.3, RFC 7348 5); DF clear so a
         * smaller hop fragments the outer packet and the ETR reassembles;
         * identification 0, which the kernel replaces with a fresh one for
         * a raw IP_HDRINCL socket (so fragments of different packets never
         * share an ID, RFC 6864). */
        lispd_ipv4_header_write(buf, cap, ip_off, source, destination,
                                (uint16_t)(udp_len + IPV4_HEADER), 0, tos, ttl, PROTO_UDP, 0);
        return ip_off;
    }
    size_t ip_off = udp_off - IPV6_HEADER;
    lispd_ipv6_header_put(buf + ip_off, source, destination, (uint16_t)udp_len, tos, flow_label,
                          PROTO_UDP, ttl);
    /* A zero UDP checksum over IPv6 needs RFC 6936 on the receiver; the
     * kernel's vxlan and most peers expect a real one. */
    uint16_t sum = lispd_udp_checksum(source, destination, 16, buf + udp_off, udp_len);
    put_be16(buf + udp_off + 6, sum);
    return ip_off;
}

static void answer_too_big(struct lispd_dp *dp, uint32_t tun, uint8_t *buf, size_t cap,
                           size_t offset, const struct inner *in, size_t fits,
                           struct lispd_verdict *v)
{
    const uint8_t *source = in->destination; /* when no RLOC of the family */
    if (in->family == LISPD_FAMILY_IPV4 && dp->has_rloc4)
        source = dp->rloc4;
    else if (in->family == LISPD_FAMILY_IPV6 && dp->has_rloc6)
        source = dp->rloc6;
    int n = lispd_icmp_too_big(dp->scratch, sizeof dp->scratch, buf + offset, in->length,
                               (uint32_t)fits, source);
    if (n < 0 || (size_t)n > cap - offset) {
        drop(v, LISPD_DROP_TOO_BIG);
        return;
    }
    memcpy(buf + offset, dp->scratch, (size_t)n);
    v->verdict = LISPD_VERDICT_WRITE;
    v->index = tun;
    v->offset = (uint32_t)offset;
    v->length = (uint32_t)n;
}

/* Where lisp_encap left a packet that does not fit: the most the inner
 * packet may be, 0 when nothing fits. */
enum { ENCAP_DONE = 0, ENCAP_TOO_BIG = 1 };

/* RFC 9300 5.3: encapsulate the inner packet at buf + offset (in describes
 * it) towards a locator of entry e, in instance iid. On ENCAP_DONE v holds
 * SEND or a drop; on ENCAP_TOO_BIG *fits is the largest inner packet that
 * would have fit and the caller decides (ICMP answer or drop). */
static int lisp_encap(struct lispd_dp *dp, uint8_t *buf, size_t cap, size_t offset,
                      const struct inner *in, uint32_t iid, const struct lispd_fib_entry *e,
                      uint32_t nonce, size_t *fits, struct lispd_verdict *v)
{
    uint32_t hash = lispd_flow_hash(buf + offset, in->length);
    const struct lispd_locator *rloc = choose_locator(e, hash);
    const uint8_t *source = rloc->family == LISPD_FAMILY_IPV4 ? (dp->has_rloc4 ? dp->rloc4 : NULL)
                                                              : (dp->has_rloc6 ? dp->rloc6 : NULL);
    if (source == NULL) {
        drop(v, LISPD_DROP_NO_RLOC);
        return ENCAP_DONE;
    }
    size_t overhead = outer_ip_length(rloc->family) + UDP_HEADER + LISP_HEADER;
    size_t limit = outer_limit(dp->mtu, rloc->family);
    if (in->length + overhead > limit) {
        *fits = limit > overhead ? limit - overhead : 0;
        return ENCAP_TOO_BIG;
    }
    if (offset < overhead) {
        drop(v, LISPD_DROP_TRUNCATED);
        return ENCAP_DONE;
    }

    uint8_t flags = LISP_FLAG_N;
    uint32_t lsbs = 0;
    if (iid != 0)
        flags |= LISP_FLAG_I;
    const struct lispd_fib_entry *local =
        lispd_fib_lookup(dp->database, iid, in->family, in->source, NULL);
    if (local != NULL && local->action == LISPD_ACT_LOCAL) {
        flags |= LISP_FLAG_L;
        lsbs = local->lsbs;
    }
    size_t lisp_off = offset - LISP_HEADER;
    lispd_lisp_header_write(buf, cap, lisp_off, flags, nonce & 0xFFFFFF, iid, lsbs);
    /* RFC 9300 5.3: the inner TTL and TOS (ECN included, RFC 6040 normal
     * mode) are copied to the outer header. */
    size_t ip_off = write_outer(buf, cap, lisp_off, in->length + LISP_HEADER, rloc->family, source,
                                rloc->address, dp_source_port(dp, rloc->family, hash), LISPD_LISP_PORT, in->tos, in->ttl, hash & 0xFFFFF);
    v->verdict = LISPD_VERDICT_SEND;
    v->offset = (uint32_t)ip_off;
    v->length = (uint32_t)(in->length + overhead);
    v->family = rloc->family;
    memcpy(v->address, rloc->address, dp_addr_len(rloc->family));
    return ENCAP_DONE;
}

void lispd_itr_process(struct lispd_dp *dp, uint32_t tun, uint8_t *buf, size_t cap,
                       size_t offset, size_t length, uint32_t nonce, struct lispd_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (tun >= dp->n_tuns) {
        drop(v, LISPD_DROP_UNKNOWN_INSTANCE);
        return;
    }
    if (offset > cap || length > cap - offset) {
        drop(v, LISPD_DROP_TRUNCATED);
        return;
    }
    struct inner in;
    int32_t bad = parse_inner(buf + offset, length, 0, &in);
    if (bad != PARSED) {
        drop(v, bad);
        return;
    }
    if (!overlay_destination(&in)) {
        drop(v, LISPD_DROP_NOT_OVERLAY);
        return;
    }
    uint32_t iid = dp->tuns[tun].instance_id;
    const struct lispd_fib_entry *e =
        lispd_fib_lookup(dp->mapcache, iid, in.family, in.destination, NULL);
    if (e == NULL || e->action == LISPD_ACT_PUNT) {
        /* The packet goes along, so Python can send it once resolved. */
        v->verdict = LISPD_VERDICT_MISS;
        v->instance_id = iid;
        v->family = in.family;
        memcpy(v->address, in.destination, dp_addr_len(in.family));
        v->offset = (uint32_t)offset;
        v->length = (uint32_t)in.length;
        return;
    }
    if (e->action == LISPD_ACT_NATIVE) {
        drop(v, LISPD_DROP_NATIVE_FORWARD);
        return;
    }
    if (e->action != LISPD_ACT_ENCAP || e->n_locators == 0) {
        drop(v, LISPD_DROP_NEGATIVE);
        return;
    }
    size_t fits;
    if (lisp_encap(dp, buf, cap, offset, &in, iid, e, nonce, &fits, v) == ENCAP_TOO_BIG) {
        if (in.dont_fragment && fits > 0)
            answer_too_big(dp, tun, buf, cap, offset, &in, fits, v);
        else
            drop(v, LISPD_DROP_TOO_BIG);
    }
}

static int find_tun(const struct lispd_dp *dp, uint32_t instance_id)
{
    for (uint32_t i = 0; i < dp->n_tuns; i++)
        if (dp->tuns[i].instance_id == instance_id)
            return (int)i;
    return -1;
}

/* RFC 6040 section 4.2, Figure 4: the inner ECN field after decapsulation,
 * or -1 when the packet must be dropped (CE on a transport that did not ask
 * for ECN). */
static int decapsulated_ecn(int inner, int outer)
{
    if (inner == ECN_NOT_ECT)
        return outer == ECN_CE ? -1 : ECN_NOT_ECT;
    if (outer == ECN_CE)
        return ECN_CE;
    if (inner == ECN_ECT0 && outer == ECN_ECT1)
        return ECN_ECT1;
    return inner;
}

/* Set the inner packet's ECN field and TTL / hop limit; the IPv4 checksum
 * is updated (RFC 1624), not recomputed. */
static void set_ecn_ttl(uint8_t *p, struct inner *in, int ecn, uint8_t ttl)
{
    if (in->family == LISPD_FAMILY_IPV4) {
        uint16_t check = get_be16(p + 10);
        uint16_t old = get_be16(p);
        p[1] = (uint8_t)((p[1] & ~ECN_MASK) | ecn);
        check = lispd_csum_update16(check, old, get_be16(p));
        if (ttl != p[8]) {
            old = get_be16(p + 8);
            p[8] = ttl;
            check = lispd_csum_update16(check, old, get_be16(p + 8));
        }
        put_be16(p + 10, check);
    } else {
        /* The traffic class straddles octets 0 and 1; ECN is its low two bits. */
        p[1] = (uint8_t)((p[1] & ~(ECN_MASK << 4)) | (ecn << 4));
        p[7] = ttl;
    }
    in->tos = (uint8_t)((in->tos & ~ECN_MASK) | ecn);
    in->ttl = ttl;
}

/* The map-cache says the destination moved away from here: an ENCAP entry
 * with reencap set. Not a use of the entry (lispd_fib_find). */
static int moved_away(const struct lispd_dp *dp, uint32_t iid, const struct inner *in)
{
    const struct lispd_fib_entry *e =
        lispd_fib_find(dp->mapcache, iid, in->family, in->destination, NULL);
    return e != NULL && e->action == LISPD_ACT_ENCAP && e->reencap && e->n_locators > 0;
}

/* The outer source is an ITR this node is the proxy-ETR of. */
static int served_itr(const struct lispd_dp *dp, const struct lispd_outer *outer)
{
    for (uint32_t i = 0; i < dp->n_served; i++) {
        const struct lispd_fib_key *k = &dp->served[i];
        if (k->family != outer->family)
            continue;
        unsigned whole = k->prefix_len / 8, rest = k->prefix_len % 8;
        if (memcmp(k->prefix, outer->source, whole) != 0)
            continue;
        uint8_t mask = (uint8_t)(0xFF00u >> rest);
        if (rest == 0 || ((outer->source[whole] ^ k->prefix[whole]) & mask) == 0)
            return 1;
    }
    return 0;
}

/* Re-encapsulate towards where the destination moved (moved_away holds).
 * Only a packet that is sent on counts as use of the entry: anyone can send
 * packets for EIDs that are not here, and they must not keep map-cache
 * entries refreshed. The inner packet is at buf + offset. */
static void reencapsulate(struct lispd_dp *dp, uint8_t *buf, size_t cap, size_t offset,
                          struct inner *in, uint32_t iid, const struct lispd_outer *outer,
                          uint32_t nonce, struct lispd_verdict *v)
{
    const struct lispd_fib_entry *e =
        lispd_fib_lookup(dp->mapcache, iid, in->family, in->destination, NULL);
    /* Decapsulation first (RFC 6040, RFC 9300 5.3), then one hop. */
    int ecn = decapsulated_ecn(in->tos & ECN_MASK, outer->tos & ECN_MASK);
    if (ecn < 0) {
        drop(v, LISPD_DROP_ECN);
        return;
    }
    uint8_t ttl = outer->ttl < in->ttl ? outer->ttl : in->ttl;
    if (ttl <= 1) {
        drop(v, LISPD_DROP_TTL_EXPIRED);
        return;
    }
    set_ecn_ttl(buf + offset, in, ecn, (uint8_t)(ttl - 1));
    size_t fits;
    if (lisp_encap(dp, buf, cap, offset, in, iid, e, nonce, &fits, v) == ENCAP_TOO_BIG)
        drop(v, LISPD_DROP_TOO_BIG);
}

/* Decapsulate for the instance's TUN, index tun. */
static void decapsulate(uint8_t *buf, size_t offset, struct inner *in,
                        const struct lispd_outer *outer, int tun, struct lispd_verdict *v)
{
    int ecn = decapsulated_ecn(in->tos & ECN_MASK, outer->tos & ECN_MASK);
    if (ecn < 0) {
        drop(v, LISPD_DROP_ECN);
        return;
    }
    set_ecn_ttl(buf + offset, in, ecn, outer->ttl < in->ttl ? outer->ttl : in->ttl);
    v->verdict = LISPD_VERDICT_WRITE;
    v->index = (uint32_t)tun;
    v->offset = (uint32_t)offset;
    v->length = (uint32_t)in->length;
}

void lispd_etr_process(struct lispd_dp *dp, uint8_t *buf, size_t cap, size_t offset,
                       size_t length, const struct lispd_outer *outer, uint64_t now_ms,
                       uint32_t nonce, struct lispd_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (offset > cap || length > cap - offset || length < LISP_HEADER) {
        drop(v, LISPD_DROP_TRUNCATED);
        return;
    }
    const uint8_t *lisp = buf + offset;
    uint8_t flags = lisp[0];
    /* N and V exclude each other (RFC 9300 5.3); K bits mean LISP-crypto. */
    if (((flags & LISP_FLAG_N) && (flags & LISP_FLAG_V)) || (flags & LISP_FLAG_K)) {
        drop(v, LISPD_DROP_BAD_FLAGS);
        return;
    }
    uint32_t iid = (flags & LISP_FLAG_I) ? get_be24(lisp + 4) : 0;
    int tun = find_tun(dp, iid);
    if (tun < 0) {
        drop(v, LISPD_DROP_UNKNOWN_INSTANCE);
        return;
    }
    size_t inner_off = offset + LISP_HEADER;
    struct inner in;
    int32_t bad = parse_inner(buf + inner_off, length - LISP_HEADER, 1, &in);
    if (bad != PARSED) {
        drop(v, bad);
        return;
    }
    /* This node's EIDs, in that instance; else where one went; else, for
     * the ITRs it serves as proxy-ETR, anywhere; else no open relay. */
    const struct lispd_fib_entry *local =
        lispd_fib_lookup(dp->database, iid, in.family, in.destination, NULL);
    if (local != NULL && local->action == LISPD_ACT_LOCAL)
        decapsulate(buf, inner_off, &in, outer, tun, v);
    else if (moved_away(dp, iid, &in))
        reencapsulate(dp, buf, cap, inner_off, &in, iid, outer, nonce, v);
    else if (served_itr(dp, outer))
        decapsulate(buf, inner_off, &in, outer, tun, v);
    else
        drop(v, LISPD_DROP_NOT_LOCAL_EID);
    /* Whoever sent what was taken in is an ITR that may need an SMR. */
    if (v->verdict != LISPD_VERDICT_DROP &&
        (outer->family == LISPD_FAMILY_IPV4 || outer->family == LISPD_FAMILY_IPV6))
        dp_recent_seen(&dp->recent, outer->family, outer->source, now_ms);
}

void lispd_vxlan_encap(struct lispd_dp *dp, uint32_t segment, uint8_t *buf, size_t cap,
                       size_t offset, size_t length, const struct lispd_locator *peer,
                       struct lispd_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (segment >= dp->n_segments) {
        drop(v, LISPD_DROP_UNKNOWN_VNI);
        return;
    }
    const struct dp_segment *s = &dp->segments[segment];
    if (peer->family != s->family) {
        drop(v, LISPD_DROP_NO_RLOC);
        return;
    }
    size_t overhead = outer_ip_length(s->family) + UDP_HEADER + VXLAN_HEADER;
    if (offset > cap || length > cap - offset || offset < overhead) {
        drop(v, LISPD_DROP_TRUNCATED);
        return;
    }
    if (length + overhead > outer_limit(UINT32_MAX, s->family)) {
        drop(v, LISPD_DROP_TOO_BIG);
        return;
    }
    uint32_t hash = lispd_frame_hash(buf + offset, length);
    size_t vxlan_off = offset - VXLAN_HEADER;
    lispd_vxlan_header_write(buf, cap, vxlan_off, s->vni);
    size_t ip_off = write_outer(buf, cap, vxlan_off, length + VXLAN_HEADER, s->family, s->local,
                                peer->address, dp_source_port(dp, s->family, hash), LISPD_VXLAN_PORT, 0, 64, hash & 0xFFFFF);
    v->verdict = LISPD_VERDICT_SEND;
    v->offset = (uint32_t)ip_off;
    v->length = (uint32_t)(length + overhead);
    v->family = s->family;
    memcpy(v->address, peer->address, dp_addr_len(s->family));
}

void lispd_vxlan_tx_process(struct lispd_dp *dp, uint32_t segment, uint8_t *buf, size_t cap,
                            size_t offset, size_t length, struct lispd_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (segment >= dp->n_segments) {
        drop(v, LISPD_DROP_UNKNOWN_VNI);
        return;
    }
    if (offset > cap || length > cap - offset || length < ETHER_HEADER) {
        drop(v, LISPD_DROP_BAD_FRAME);
        return;
    }
    const struct dp_segment *s = &dp->segments[segment];
    const uint8_t *destination = buf + offset;
    const struct lispd_fdb_entry *known = NULL;
    if ((destination[0] & 0x01) == 0) /* unicast: look it up */
        known = lispd_fdb_lookup(dp->fdb, s->vni, destination);
    if (known != NULL && known->family == s->family) {
        struct lispd_locator peer = {.family = known->family, .weight = 0};
        memcpy(peer.address, known->vtep, sizeof peer.address);
        lispd_vxlan_encap(dp, segment, buf, cap, offset, length, &peer, v);
        return;
    }
    if (s->n_flood == 0) {
        drop(v, LISPD_DROP_NO_DESTINATION);
        return;
    }
    v->verdict = LISPD_VERDICT_FLOOD;
    v->index = segment;
    v->offset = (uint32_t)offset;
    v->length = (uint32_t)length;
}

void lispd_vxlan_rx_process(struct lispd_dp *dp, uint8_t *buf, size_t length, uint8_t family,
                            const uint8_t *source, uint64_t now_ms, struct lispd_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (length < VXLAN_HEADER) {
        drop(v, LISPD_DROP_TRUNCATED);
        return;
    }
    /* RFC 7348 5: the I flag must be set; other flag and reserved bits are
     * ignored on receipt. */
    if ((buf[0] & VXLAN_FLAG_I) == 0) {
        drop(v, LISPD_DROP_BAD_FLAGS);
        return;
    }
    uint32_t vni = get_be24(buf + 4);
    uint32_t segment = 0;
    while (segment < dp->n_segments && dp->segments[segment].vni != vni)
        segment++;
    if (segment == dp->n_segments) {
        drop(v, LISPD_DROP_UNKNOWN_VNI);
        return;
    }
    if (length - VXLAN_HEADER < ETHER_HEADER) {
        drop(v, LISPD_DROP_BAD_FRAME);
        return;
    }
    const struct dp_segment *s = &dp->segments[segment];
    const uint8_t *mac_source = buf + VXLAN_HEADER + 6;
    if (s->learning && (mac_source[0] & 0x01) == 0) {
        switch (lispd_fdb_learn(dp->fdb, vni, mac_source, family, source, now_ms)) {
        case 1:
            dp->counters.fdb_learned++;
            break;
        case -2:
            dp->counters.fdb_learn_full++;
            break;
        default:
            break;
        }
    }
    v->verdict = LISPD_VERDICT_WRITE;
    v->index = segment;
    v->offset = VXLAN_HEADER;
    v->length = (uint32_t)(length - VXLAN_HEADER);
}
