/*
 * lispd native core: the whole C surface, one header.
 *
 * Every function here has a pure-Python twin in the lispd package
 * (lispd.wire.inet, lispd.wire.data, lispd.dataplane.reference); tests
 * check one against the other. Multi-byte values in buffers are always
 * network byte order; integers in arguments and results are host values.
 * Only the constructors and the tables (growing towards their limit)
 * allocate; nothing keeps a pointer it was given past its return, and the
 * only pointers handed out into C memory are a FIB lookup's and a miss's
 * packet, each good until the change said at its declaration.
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

/* The one's-complement sum of data folded to 16 bits (not complemented), as
 * the offload path sums payloads: 32-bit words in 64-bit lanes, with AVX2
 * when vector is set and the CPU has it. Congruent to lispd_csum_add(0, ...)
 * modulo 0xFFFF. */
uint32_t lispd_csum_sum(const uint8_t *data, size_t len, int vector);

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

/* ===================================================================== *
 * Flow hash and ICMP (native/flow.c, native/icmp.c).                     *
 * Twins: lispd.wire.flow, lispd.wire.icmp.                               *
 * ===================================================================== */

/* 32-bit FNV-1a over the inner flow of an IP packet: source address,
 * destination address (4 or 16 octets each), protocol (IPv4 protocol or the
 * IPv6 next header), then the first four octets after the IP header (source
 * and destination port, as on the wire) for TCP (6), UDP (17), UDP-Lite (136)
 * and SCTP (132); four zero octets instead for any other protocol, for any
 * IPv4 fragment (MF set or offset not 0, so all fragments of a datagram hash
 * alike), or when fewer than four octets follow the header (options
 * included). IPv6 extension headers are not walked: the fixed header's next
 * header is hashed as it is. Returns 0 unless the packet starts with a whole
 * IPv4 header (version 4, IHL >= 5, IHL*4 <= len) or IPv6 header (version 6,
 * len >= 40); length fields and the checksum are not checked. Stable across
 * runs and hosts, so a flow sticks to one RLOC and one UDP source port. */
uint32_t lispd_flow_hash(const uint8_t *packet, size_t len);

/* The flow hash of an Ethernet frame: lispd_flow_hash of the payload for
 * EtherType 0x0800/0x86DD (one 802.1Q tag skipped when the frame holds all of
 * it: EtherType at 16, payload at 18); otherwise FNV-1a over the 12 MAC
 * octets and the (inner) EtherType, the VLAN ID not included. 0 for a frame
 * shorter than 14. */
uint32_t lispd_frame_hash(const uint8_t *frame, size_t len);

/* The answer an IP router gives when packet (an IPv4 or IPv6 packet of len
 * octets) does not fit the next hop's mtu: ICMPv4 type 3 code 4 with the
 * next-hop MTU (RFC 1191), or ICMPv6 type 2 (RFC 4443) with the MTU, from
 * source (4 or 16 octets, the packet's family) to the packet's source, TTL /
 * hop limit 64, carrying as much of the packet as fits in 576 (IPv4) or 1280
 * (IPv6) octets, with the IP header checksum (IPv4) and the ICMP checksum
 * (ICMPv6 over its pseudo-header) filled in. Written at out; returns its
 * length, or -1 when out_cap is too small or the packet is not one an ICMP
 * error may answer (RFC 1122 3.2.2, RFC 1812 4.3.2.7, RFC 4443 2.4(e)): not
 * IPv4/IPv6; shorter than its IP header; an ICMP error, i.e. ICMPv4 type
 * 3/4/5/11/12 or ICMPv6 next header 58 with type < 128, or ICMP without its
 * type octet; a non-first fragment, i.e. IPv4 offset != 0, or IPv6 whose next
 * header is a Fragment header with offset != 0 or cut off; an IPv4 source in
 * 0/8, 127/8, 224/4, 240/4 or an IPv4 destination in 224/4 or
 * 255.255.255.255; an IPv6 source ::, ::1 or ff00::/8. IPv4: TOS 0, ID 0, DF
 * clear; an mtu over 65535 is sent as 65535. out may overlap packet. */
int lispd_icmp_too_big(uint8_t *out, size_t out_cap, const uint8_t *packet, size_t len,
                       uint32_t mtu, const uint8_t *source);

/* ===================================================================== *
 * Forwarding tables (native/fib.c, native/fdb.c).                        *
 * The FIBs are copies of Python's map-cache and database (lispd.mapcache *
 * is authoritative). The FDB learns in C, where the frames are; its      *
 * static entries come from the configuration. Wrappers:                  *
 * lispd.dataplane.tables; naive twins in tests/property/test_tables.py.  *
 * ===================================================================== */

enum {
    LISPD_MAX_LOCATORS = 8,     /* per forwarding entry */
    LISPD_FAMILY_IPV4 = 4,
    LISPD_FAMILY_IPV6 = 6,
    LISPD_ANY_VNI = 0x7FFFFFFF  /* lispd_fdb_age: every segment */
};

/* What the fast path does with a packet that matches an entry. */
enum {
    LISPD_ACT_ENCAP = 0,        /* encapsulate to one of the locators */
    LISPD_ACT_DROP = 1,         /* negative entry, action drop */
    LISPD_ACT_NATIVE = 2,       /* negative entry, action native-forward */
    LISPD_ACT_PUNT = 3,         /* negative entry, send-map-request: to Python */
    LISPD_ACT_LOCAL = 4         /* database table: a local EID prefix */
};

/* An RLOC and its share of the traffic. The fast path picks among the
 * locators of an entry by weight on the flow hash: h % sum(weights) walked
 * over the cumulative weights in order; when every weight is 0, h % n. */
struct lispd_locator {
    uint8_t family;             /* LISPD_FAMILY_IPV4 or _IPV6 */
    uint8_t address[16];        /* 4 or 16 octets used */
    uint32_t weight;
};

/* (instance-id, family, prefix/len): prefix octets past prefix_len are zero. */
struct lispd_fib_key {
    uint32_t instance_id;       /* 24 bits */
    uint8_t family;
    uint8_t prefix_len;         /* 0..32 or 0..128 */
    uint8_t prefix[16];
};

struct lispd_fib_entry {
    uint8_t action;             /* LISPD_ACT_* */
    uint8_t reencap;            /* 0 or 1. Map-cache ENCAP entry: an ETR that
                                 * receives a packet for an EID of this prefix
                                 * that is not local (any more) sends it on to
                                 * the entry's locators (lispd_etr_process) */
    uint32_t lsbs;              /* database: the locator-status-bits to send */
    uint32_t n_locators;        /* ENCAP: 1..LISPD_MAX_LOCATORS */
    struct lispd_locator locators[8];
};

struct lispd_fib;

/* A longest-prefix-match table for at most limit entries. */
struct lispd_fib *lispd_fib_new(uint32_t limit);
void lispd_fib_free(struct lispd_fib *fib);

/* Insert or replace. Returns 0; -1 for an invalid key or entry (family,
 * prefix_len, bits past the prefix, instance-id over 24 bits, action,
 * reencap not 0/1, n_locators, a locator family); -2 when the table is
 * full. */
int lispd_fib_set(struct lispd_fib *fib, const struct lispd_fib_key *key,
                  const struct lispd_fib_entry *entry);

/* Returns 0, or -1 when there is no such entry. */
int lispd_fib_delete(struct lispd_fib *fib, const struct lispd_fib_key *key);
void lispd_fib_clear(struct lispd_fib *fib);
uint32_t lispd_fib_size(const struct lispd_fib *fib);

/* The longest prefix of (instance_id, family) covering address, or NULL;
 * the pointer is good until the next set, delete or clear of the table.
 * When matched is not NULL it receives the entry's key. The first hit on an
 * entry since the last drain queues its key for lispd_fib_drain_used. */
const struct lispd_fib_entry *lispd_fib_lookup(struct lispd_fib *fib, uint32_t instance_id,
                                               uint8_t family, const uint8_t *address,
                                               struct lispd_fib_key *matched);

/* As lispd_fib_lookup, but not a hit: for a look on behalf of a packet from
 * outside that may come to nothing (the ETR's check for a moved EID). */
const struct lispd_fib_entry *lispd_fib_find(const struct lispd_fib *fib, uint32_t instance_id,
                                             uint8_t family, const uint8_t *address,
                                             struct lispd_fib_key *matched);

/* Copy out (at most cap) keys of entries hit since the last drain and forget
 * them: how Python learns which map-cache entries are in use. */
uint32_t lispd_fib_drain_used(struct lispd_fib *fib, struct lispd_fib_key *out, uint32_t cap);

/* The VXLAN forwarding database: (VNI, MAC) -> remote VTEP. */
struct lispd_fdb_entry {
    uint32_t vni;
    uint8_t mac[6];
    uint8_t family;             /* of the VTEP address */
    uint8_t vtep[16];
    uint8_t is_static;          /* never aged, never overwritten by learning */
    uint64_t last_seen_ms;
};

struct lispd_fdb;

struct lispd_fdb *lispd_fdb_new(uint32_t limit);
void lispd_fdb_free(struct lispd_fdb *fdb);

/* Insert or replace (a static entry, or a learned one restored). Returns 0,
 * -1 invalid (VNI over 24 bits, family, a multicast MAC), -2 full. */
int lispd_fdb_set(struct lispd_fdb *fdb, const struct lispd_fdb_entry *entry);

/* Learning from a received frame: source MAC mac seen behind vtep. Returns
 * 0 when the entry existed with that VTEP (last_seen refreshed), 1 when it
 * was added or moved to a new VTEP, 2 when a static entry holds the MAC
 * (unchanged), -1 for a multicast MAC, -2 when the table is full. */
int lispd_fdb_learn(struct lispd_fdb *fdb, uint32_t vni, const uint8_t *mac, uint8_t family,
                    const uint8_t *vtep, uint64_t now_ms);

int lispd_fdb_delete(struct lispd_fdb *fdb, uint32_t vni, const uint8_t *mac);
const struct lispd_fdb_entry *lispd_fdb_lookup(const struct lispd_fdb *fdb, uint32_t vni,
                                               const uint8_t *mac);

/* Remove learned entries of segment vni (any segment for LISPD_ANY_VNI)
 * not seen for max_age_ms; returns how many. */
uint32_t lispd_fdb_age(struct lispd_fdb *fdb, uint32_t vni, uint64_t now_ms,
                       uint64_t max_age_ms);
uint32_t lispd_fdb_size(const struct lispd_fdb *fdb);

/* Copy out at most cap entries (in no particular order); returns how many. */
uint32_t lispd_fdb_dump(const struct lispd_fdb *fdb, struct lispd_fdb_entry *out, uint32_t cap);

/* ===================================================================== *
 * The batched fast path (native/steps.c, batch.c, recent.c).           *
 * Twin of the per-packet steps: lispd.dataplane.reference.               *
 * ===================================================================== */

enum {
    LISPD_BATCH = 64,           /* packets per wake-up and per sendmmsg */
    LISPD_HEADROOM = 128,       /* reserved in front of every packet buffer */
    LISPD_BUFFER = 65536 + 128, /* a 64 KiB read plus headroom */
    LISPD_MAX_TUNS = 64,
    LISPD_MAX_SEGMENTS = 256,
    LISPD_MAX_FLOOD = 64,
    LISPD_MAX_SERVED_ITRS = 16,
    LISPD_LISP_PORT = 4341,
    LISPD_VXLAN_PORT = 4789,
    LISPD_RECENT_ITRS = 256     /* outer sources the ETR remembers (SMR) */
};

/* Why a packet was dropped: the index into lispd_counters.drops. */
enum {
    LISPD_DROP_TRUNCATED = 0,       /* shorter than its headers */
    LISPD_DROP_BAD_INNER = 1,       /* inner packet not valid IPv4/IPv6 */
    LISPD_DROP_BAD_FLAGS = 2,       /* LISP N+V, K bits; VXLAN without I */
    LISPD_DROP_UNKNOWN_INSTANCE = 3,/* no TUN serves the instance-id */
    LISPD_DROP_NOT_LOCAL_EID = 4,   /* ETR: destination not a local EID */
    LISPD_DROP_MISS = 5,            /* ITR: no map-cache entry, and nobody
                                     * to hand the packet to (batch: more
                                     * misses than misses_cap; inject: the
                                     * caller gave up waiting) */
    LISPD_DROP_NEGATIVE = 6,        /* negative entry with action drop */
    LISPD_DROP_NATIVE_FORWARD = 7,  /* native-forward with no proxy-ETR */
    LISPD_DROP_TOO_BIG = 8,         /* does not fit and may not be answered */
    LISPD_DROP_NO_RLOC = 9,         /* no local RLOC of the locator's family */
    LISPD_DROP_SEND_ERROR = 10,
    LISPD_DROP_WRITE_ERROR = 11,
    LISPD_DROP_UNKNOWN_VNI = 12,
    LISPD_DROP_BAD_FRAME = 13,      /* Ethernet frame shorter than 14 */
    LISPD_DROP_NO_DESTINATION = 14, /* unknown MAC and nothing to flood to */
    LISPD_DROP_ECN = 15,            /* outer CE on a not-ECT inner (RFC 6040) */
    LISPD_DROP_NOT_OVERLAY = 16,    /* ITR: multicast or link-local destination */
    LISPD_DROP_TTL_EXPIRED = 17,    /* ETR re-encapsulation: no hop left */
    LISPD_DROP_BAD_OFFLOAD = 18,    /* a super-packet whose virtio-net header
                                     * and headers disagree, or no room to cut it */
    LISPD_DROP_COUNT = 19
};

struct lispd_counters {
    uint64_t itr_packets, itr_bytes;        /* encapsulated and sent (outer bytes) */
    uint64_t etr_packets, etr_bytes;        /* decapsulated and written (inner bytes) */
    uint64_t etr_reencap_packets, etr_reencap_bytes; /* re-encapsulated, sent (outer bytes) */
    uint64_t vxlan_tx_packets, vxlan_tx_bytes;
    uint64_t vxlan_rx_packets, vxlan_rx_bytes;
    uint64_t flood_copies;                  /* head-end replicas sent */
    uint64_t misses;                        /* missed packets handed to Python */
    uint64_t icmp_too_big, icmp_too_big_bytes;  /* answers written back */
    uint64_t fdb_learned, fdb_learn_full;   /* MACs added or moved; refused: full */
    uint64_t batches;                       /* wake-ups that moved something */
    uint64_t super_reads;                   /* GSO super-packets read from a TUN/TAP */
    uint64_t gso_trains, gso_segments;      /* UDP_SEGMENT sends, datagrams in them */
    uint64_t gso_fallbacks;                 /* trains the kernel refused: sent one by one */
    uint64_t gro_trains, gro_segments;      /* UDP_GRO receives of several datagrams */
    uint64_t super_writes, super_segments;  /* coalesced super-packets written, and
                                             * the segments they carry */
    uint64_t drops[19];                     /* by LISPD_DROP_* */
};

/* What to do with one packet (the result of a *_process step). */
enum {
    LISPD_VERDICT_SEND = 0,     /* send [offset, offset+length) to address */
    LISPD_VERDICT_WRITE = 1,    /* write [offset, offset+length) to device index */
    LISPD_VERDICT_DROP = 2,     /* reason says why */
    LISPD_VERDICT_MISS = 3,     /* no entry: (instance, family, address) to Python;
                                 * [offset, offset+length) is the packet */
    LISPD_VERDICT_FLOOD = 4     /* VXLAN: replicate to the segment's flood list */
};

struct lispd_verdict {
    int32_t verdict;            /* LISPD_VERDICT_* */
    int32_t reason;             /* LISPD_DROP_* when DROP */
    uint32_t offset, length;
    uint32_t index;             /* device index for WRITE */
    uint32_t instance_id;       /* MISS */
    uint8_t family;             /* SEND: of address; MISS: of the EID */
    uint8_t address[16];        /* SEND: outer destination; MISS: the EID */
};

/* A missed packet handed to Python, which queues it while the EID is
 * resolved (and sends it later with lispd_itr_inject). packet points into
 * the data plane's own batch buffers: it is good until the next *_batch
 * call on the same lispd_dp, so copy it out before anything else. */
struct lispd_miss {
    uint32_t instance_id;
    uint8_t family;
    uint8_t address[16];        /* the destination EID */
    const uint8_t *packet;      /* the inner packet, as long as its header says */
    uint32_t length;
};

/* What the ETR step knows of the outer packet. family 0: no source
 * (nothing is remembered in the recent-ITR table). */
struct lispd_outer {
    uint8_t ttl;                /* TTL / hop limit */
    uint8_t tos;                /* TOS / traffic class */
    uint8_t family;             /* of source: LISPD_FAMILY_IPV4/_IPV6, or 0 */
    uint8_t source[16];         /* the sending ITR's RLOC */
};

struct lispd_dp;

/* The fast path over the given tables (not owned, must outlive it). */
struct lispd_dp *lispd_dp_new(struct lispd_fib *mapcache, struct lispd_fib *database,
                              struct lispd_fdb *fdb);
void lispd_dp_free(struct lispd_dp *dp);
struct lispd_counters *lispd_dp_counters(struct lispd_dp *dp);

/* Deterministic nonces (tests); by default seeded from getrandom(). */
void lispd_dp_seed(struct lispd_dp *dp, uint64_t seed);

/* The underlay: local RLOCs used as outer sources (NULL for none of a
 * family), the underlay MTU, and the raw IPPROTO_RAW sockets that send
 * whole outer packets (-1 for none). */
void lispd_dp_set_underlay(struct lispd_dp *dp, const uint8_t *rloc4, const uint8_t *rloc6,
                           uint32_t mtu, int raw4_fd, int raw6_fd);

/* A TUN serving instance_id: returns its device index, -1 when full or the
 * instance already has one. */
int lispd_dp_add_tun(struct lispd_dp *dp, int fd, uint32_t instance_id);

/* A VXLAN segment: TAP fd, VNI, the local VTEP address (family 4/6) and
 * whether to learn; returns its index, -1 when full or the VNI is taken. */
int lispd_dp_add_segment(struct lispd_dp *dp, int tap_fd, uint32_t vni, uint8_t family,
                         const uint8_t *local, int learning);

/* Replace a segment's flood list (head-end replication peers). -1 when the
 * segment does not exist or n is over LISPD_MAX_FLOOD. */
int lispd_dp_set_flood(struct lispd_dp *dp, uint32_t segment,
                       const struct lispd_locator *peers, uint32_t n);

/* The RLOC prefixes (family, prefix_len, prefix; instance_id unused) of
 * the ITRs this node is the proxy-ETR of (RFC 6832), at most
 * LISPD_MAX_SERVED_ITRS; n = 0: none. -1 for too many or a bad prefix. */
int lispd_dp_set_served_itrs(struct lispd_dp *dp, const struct lispd_fib_key *served,
                             uint32_t n);

/* ITR step: the inner IP packet at buf[offset, offset+length), read from TUN
 * tun, with LISPD_HEADROOM free in front of it. A multicast or link-local
 * destination (224/4, 255.255.255.255, 169.254/16, ff00::/8, fe80::/10) is
 * not overlay traffic and is dropped before any lookup. The encapsulated
 * packet must fit the underlay MTU and its own length field (65535 octets
 * of IPv4, 65535 of IPv6 payload); one that does not and may not be
 * fragmented (IPv4 DF, or IPv6) is answered with ICMP too-big naming what
 * would fit, any other is dropped as too big. On SEND the outer IP, UDP
 * (source port from the flow hash, destination 4341) and LISP header (N bit
 * with nonce; I + instance-id when not 0; L + the source EID's
 * locator-status-bits when it is a local EID) have been written in front of
 * it. On WRITE the buffer holds an ICMP too-big answer for the TUN. On MISS
 * [offset, offset+length) is the packet, trailing octets past its own
 * length left out. */
void lispd_itr_process(struct lispd_dp *dp, uint32_t tun, uint8_t *buf, size_t cap,
                       size_t offset, size_t length, uint32_t nonce, struct lispd_verdict *v);

/* ETR step: the UDP payload (LISP header + inner packet) at
 * buf[offset, offset+length), with LISPD_HEADROOM free in front of it, that
 * arrived with the outer fields given. On WRITE the inner packet (TTL
 * lowered to the outer one when that is smaller, its ECN field set by RFC
 * 6040 section 4.2) is at [offset, offset+length) for TUN index.
 *
 * A destination that is not a local EID is dropped (not_local_eid: an ETR
 * is no open relay) unless the map-cache holds an ENCAP entry with reencap
 * set for it in the packet's instance: an EID that moved away. Then the
 * inner packet, its TTL the smaller of inner and outer less one (a router
 * hop: two nodes that point at each other cannot loop a packet forever;
 * ttl_expired when nothing is left) and its ECN field as on WRITE, is
 * encapsulated as the ITR step does (locator by the flow hash, nonce, the
 * received instance-id, L bit for a local source EID, outer TTL/TOS the
 * inner ones) and SEND says where; one that does not fit the underlay MTU
 * is dropped as too_big (no ICMP: its source is not behind this node).
 * Failing both, a packet whose outer source is a served ITR
 * (lispd_dp_set_served_itrs) is decapsulated as on WRITE: this node is its
 * proxy-ETR and the host routes it natively.
 *
 * On WRITE and SEND the outer source (when outer->family is 4 or 6) is
 * remembered as a recent ITR, last seen now_ms (lispd_dp_recent_itrs). */
void lispd_etr_process(struct lispd_dp *dp, uint8_t *buf, size_t cap, size_t offset,
                       size_t length, const struct lispd_outer *outer, uint64_t now_ms,
                       uint32_t nonce, struct lispd_verdict *v);

/* The recent ITRs: outer sources of LISP data packets the ETR step
 * decapsulated (written to a TUN or re-encapsulated), at most
 * LISPD_RECENT_ITRS of them; a new one when full replaces the one seen
 * least recently (the earliest remembered of those seen at the same ms).
 * Copies out (at most cap) those last seen at or after since_ms, most
 * recent first, family and address filled, weight 0; returns how many.
 * Who to send a Solicit-Map-Request to (RFC 9301 section 6.6.2). */
uint32_t lispd_dp_recent_itrs(const struct lispd_dp *dp, uint64_t since_ms,
                              struct lispd_locator *out, uint32_t cap);

/* VXLAN transmit step: the frame at buf[offset, offset+length) read from
 * segment's TAP. SEND: outer headers written for the known VTEP. FLOOD: the
 * frame is broadcast/multicast/unknown unicast; lispd_vxlan_encap then
 * builds each copy. */
void lispd_vxlan_tx_process(struct lispd_dp *dp, uint32_t segment, uint8_t *buf, size_t cap,
                            size_t offset, size_t length, struct lispd_verdict *v);

/* Write the outer IP + UDP + VXLAN headers for segment towards peer in front
 * of the frame at buf[offset, offset+length); fills v as for SEND. */
void lispd_vxlan_encap(struct lispd_dp *dp, uint32_t segment, uint8_t *buf, size_t cap,
                       size_t offset, size_t length, const struct lispd_locator *peer,
                       struct lispd_verdict *v);

/* VXLAN receive step: the UDP payload at buf[0, length) from VTEP source.
 * Learns the inner source MAC (when the segment learns); WRITE: the frame
 * for the segment's TAP at [offset, offset+length). */
void lispd_vxlan_rx_process(struct lispd_dp *dp, uint8_t *buf, size_t length, uint8_t family,
                            const uint8_t *source, uint64_t now_ms, struct lispd_verdict *v);

/* I/O: each moves at most LISPD_BATCH packets and returns how many it
 * read, or -1 with errno for a read error other than EAGAIN.
 *
 * lispd_itr_batch hands every missed packet over as one lispd_miss (no
 * dedup: each packet is one to queue), up to misses_cap of them (give it
 * LISPD_BATCH and none is lost; past the cap they are dropped as miss).
 * lispd_etr_batch sends re-encapsulated packets on the raw sockets and
 * remembers recent ITRs at now_ms. Datagrams are received LISPD_HEADROOM
 * into the buffers, so re-encapsulation builds in place. */
int lispd_itr_batch(struct lispd_dp *dp, uint32_t tun, struct lispd_miss *misses,
                    uint32_t misses_cap, uint32_t *n_misses);
int lispd_etr_batch(struct lispd_dp *dp, int udp_fd, uint64_t now_ms);
int lispd_vxlan_tx_batch(struct lispd_dp *dp, uint32_t segment);
int lispd_vxlan_rx_batch(struct lispd_dp *dp, int udp_fd, uint64_t now_ms);

/* ===================================================================== *
 * Offloads (native/gso.c, native/offload.c). Twin: lispd.dataplane.gso.   *
 * ===================================================================== */

enum {
    LISPD_VNET_HDR = 10,        /* struct virtio_net_hdr, little-endian */
    LISPD_GSO_SENDERS = 16,     /* UDP sockets per family for trains */
    LISPD_TRAIN = 64            /* datagrams per UDP_SEGMENT send at most */
};

/* Say that a device's fd was opened with IFF_VNET_HDR (layer 3: TUN index;
 * layer 2: segment index): every read and write then carries a virtio-net
 * header, reads may be GSO super-packets (cut here) and what the ETR
 * writes there is coalesced into super-packets. mode: 0 no header; 1 the
 * header, TCP super-packets; 2 TCP and UDP (the kernel took USO). -1 for
 * no such device or mode. */
int lispd_dp_set_vnet(struct lispd_dp *dp, int layer, uint32_t index, int mode);

/* UDP sockets (unconnected, bound to a source port each, UDP_SEGMENT
 * accepted) that carry trains of the outer family: a flow uses
 * fds[hash % n], and every outer packet of the family, trains or not, then
 * has the source port ports[hash % n] (raw sends included), so a flow keeps
 * one 5-tuple on the underlay. n 0: no trains, ports from the flow hash.
 * -1 for a bad family or n over LISPD_GSO_SENDERS. */
int lispd_dp_set_gso_senders(struct lispd_dp *dp, uint8_t family, const int *fds,
                             const uint16_t *ports, uint32_t n);

/* What the kernel's GSO would make of one read: the packet (after its
 * virtio-net header at vnet; its IP header at l3: 0 for a TUN, 14 for a TAP
 * frame) cut into segments, each written whole at out one after the other,
 * their lengths in lengths; a packet without GSO comes back as it is, its
 * NEEDS_CSUM checksum completed. Returns how many, -1 when header and
 * packet disagree, -2 when out or max_segments is too small. */
int lispd_gso_segment(const uint8_t *vnet, const uint8_t *packet, size_t len, uint32_t l3,
                      uint8_t *out, size_t out_cap, uint32_t *lengths, uint32_t max_segments);

/* The ETR's coalescing: n packets (lengths[i] octets each, one after the
 * other in packets, IP header at l3) as written to a device with
 * IFF_VNET_HDR: each output at out is a virtio-net header and a packet,
 * out_lengths[k] octets together; runs of one TCP flow (with udp, of one
 * UDP flow too: a device that took USO) become one super-packet (at most
 * 128 TCP or 64 UDP segments, 65535 octets of IP). packets is rewritten in
 * places. Returns how many outputs, -2 when out is too small. */
int lispd_gro_coalesce(uint8_t *packets, const uint32_t *lengths, uint32_t n, uint32_t l3,
                       int udp, uint8_t *out, size_t out_cap, uint32_t *out_lengths);

/* Send one packet of TUN tun that waited for its mapping: copied into a
 * buffer of the data plane's own (not the batch buffers: misses of the last
 * batch stay good), the ITR step run with a fresh nonce, and then at once:
 * SEND through the raw socket of its family (itr_packets/itr_bytes; a
 * refused send becomes DROP send_error), WRITE (ICMP too-big) to the TUN
 * (icmp_too_big; a failed write becomes DROP write_error), MISS counted as
 * drops[MISS] (still no mapping: the caller gave up on it), DROP by reason.
 * A packet longer than LISPD_BUFFER - LISPD_HEADROOM is DROP too_big.
 * Returns v->verdict, the final outcome. */
int lispd_itr_inject(struct lispd_dp *dp, uint32_t tun, const uint8_t *packet, size_t length,
                     struct lispd_verdict *v);

#endif
