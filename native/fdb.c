/* The VXLAN forwarding database: (VNI, MAC) -> remote VTEP, learned from
 * received frames or configured (static), aged by the caller's clock.
 *
 * Same layout as the FIB (native/fib.c): entries in a dense array grown by
 * doubling up to limit (a delete moves the last entry into the hole), and
 * the open-addressing index of native/hashindex.h over a seeded fmix64 hash
 * of (VNI, MAC). The stored entries are the public struct itself,
 * canonical: an IPv4 VTEP's unused octets and is_static are 0/1. Pointers
 * from lispd_fdb_lookup stay valid until the next change.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "hashindex.h"
#include "lispd_native.h"

struct lispd_fdb {
    uint32_t limit, size, node_cap;
    struct lispd_fdb_entry *nodes;
    struct lispd_hi index;
};

/* A key to look up. */
struct fdb_key {
    uint32_t vni;
    const uint8_t *mac;
};

static uint64_t key_hash(const struct lispd_fdb *fdb, uint32_t vni, const uint8_t *mac)
{
    return lispd_hi_hash2(fdb->index.seed, vni, get_be48(mac));
}

static uint64_t node_hash(const void *table, uint32_t idx)
{
    const struct lispd_fdb *fdb = table;
    const struct lispd_fdb_entry *e = &fdb->nodes[idx];
    return key_hash(fdb, e->vni, e->mac);
}

static int same_key(const void *table, uint32_t idx, const void *key)
{
    const struct lispd_fdb_entry *e = &((const struct lispd_fdb *)table)->nodes[idx];
    const struct fdb_key *k = key;
    return e->vni == k->vni && memcmp(e->mac, k->mac, 6) == 0;
}

static size_t probe(const struct lispd_fdb *fdb, uint64_t h, uint32_t vni, const uint8_t *mac)
{
    struct fdb_key key = {.vni = vni, .mac = mac};
    return lispd_hi_probe(&fdb->index, h, same_key, fdb, &key);
}

/* Remove node idx, whose index slot is i. */
static void remove_at(struct lispd_fdb *fdb, uint32_t idx, size_t i)
{
    lispd_hi_remove(&fdb->index, i);
    uint32_t last = --fdb->size;
    if (idx != last) {
        fdb->nodes[idx] = fdb->nodes[last];
        lispd_hi_renumber(&fdb->index, last, idx, node_hash(fdb, idx));
    }
}

struct lispd_fdb *lispd_fdb_new(uint32_t limit)
{
    struct lispd_fdb *fdb = calloc(1, sizeof *fdb);
    if (!fdb)
        return NULL;
    fdb->limit = limit;
    if (lispd_hi_init(&fdb->index, fdb) < 0) {
        free(fdb);
        return NULL;
    }
    return fdb;
}

void lispd_fdb_free(struct lispd_fdb *fdb)
{
    if (!fdb)
        return;
    free(fdb->nodes);
    lispd_hi_free(&fdb->index);
    free(fdb);
}

static int valid_family(uint8_t family)
{
    return family == LISPD_FAMILY_IPV4 || family == LISPD_FAMILY_IPV6;
}

static int is_multicast(const uint8_t *mac)
{
    return mac[0] & 1; /* the I/G bit; broadcast included */
}

static void set_vtep(struct lispd_fdb_entry *e, uint8_t family, const uint8_t *vtep)
{
    e->family = family;
    memset(e->vtep, 0, sizeof e->vtep);
    memcpy(e->vtep, vtep, family == LISPD_FAMILY_IPV4 ? 4 : 16);
}

/* Insert a new entry for (vni, mac), known absent, whose empty slot is i.
 * Returns the node, or NULL when the table is full (out of memory counts
 * as full: the caller cannot tell them apart). */
static struct lispd_fdb_entry *insert(struct lispd_fdb *fdb, uint64_t h, size_t i, uint32_t vni,
                                      const uint8_t *mac)
{
    if (fdb->size >= fdb->limit)
        return NULL;
    if (fdb->size == fdb->node_cap) {
        uint32_t cap = lispd_hi_next_cap(fdb->node_cap, fdb->limit);
        struct lispd_fdb_entry *nodes = realloc(fdb->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return NULL;
        fdb->nodes = nodes;
        fdb->node_cap = cap;
    }
    if (lispd_hi_insert(&fdb->index, i, fdb->size, h, node_hash, fdb) < 0)
        return NULL;
    uint32_t idx = fdb->size++;
    struct lispd_fdb_entry *e = &fdb->nodes[idx];
    memset(e, 0, sizeof *e);
    e->vni = vni;
    memcpy(e->mac, mac, 6);
    return e;
}

int lispd_fdb_set(struct lispd_fdb *fdb, const struct lispd_fdb_entry *entry)
{
    if (entry->vni > 0xffffffu || !valid_family(entry->family) || is_multicast(entry->mac))
        return -1;
    uint64_t h = key_hash(fdb, entry->vni, entry->mac);
    size_t i = probe(fdb, h, entry->vni, entry->mac);
    uint32_t idx = lispd_hi_entry(&fdb->index, i);
    struct lispd_fdb_entry *e;
    if (idx != LISPD_HI_NONE)
        e = &fdb->nodes[idx];
    else if (!(e = insert(fdb, h, i, entry->vni, entry->mac)))
        return -2;
    set_vtep(e, entry->family, entry->vtep);
    e->is_static = entry->is_static ? 1 : 0;
    e->last_seen_ms = entry->last_seen_ms;
    return 0;
}

int lispd_fdb_learn(struct lispd_fdb *fdb, uint32_t vni, const uint8_t *mac, uint8_t family,
                    const uint8_t *vtep, uint64_t now_ms)
{
    if (is_multicast(mac) || vni > 0xffffffu || !valid_family(family))
        return -1;
    uint64_t h = key_hash(fdb, vni, mac);
    size_t i = probe(fdb, h, vni, mac);
    uint32_t idx = lispd_hi_entry(&fdb->index, i);
    if (idx != LISPD_HI_NONE) {
        struct lispd_fdb_entry *e = &fdb->nodes[idx];
        if (e->is_static)
            return 2;
        e->last_seen_ms = now_ms;
        if (e->family == family && memcmp(e->vtep, vtep, family == LISPD_FAMILY_IPV4 ? 4 : 16) == 0)
            return 0;
        set_vtep(e, family, vtep);
        return 1;
    }
    struct lispd_fdb_entry *e = insert(fdb, h, i, vni, mac);
    if (!e)
        return -2;
    set_vtep(e, family, vtep);
    e->last_seen_ms = now_ms;
    return 1;
}

int lispd_fdb_delete(struct lispd_fdb *fdb, uint32_t vni, const uint8_t *mac)
{
    size_t i = probe(fdb, key_hash(fdb, vni, mac), vni, mac);
    uint32_t idx = lispd_hi_entry(&fdb->index, i);
    if (idx == LISPD_HI_NONE)
        return -1;
    remove_at(fdb, idx, i);
    return 0;
}

const struct lispd_fdb_entry *lispd_fdb_lookup(const struct lispd_fdb *fdb, uint32_t vni,
                                               const uint8_t *mac)
{
    size_t i = probe(fdb, key_hash(fdb, vni, mac), vni, mac);
    uint32_t idx = lispd_hi_entry(&fdb->index, i);
    return idx != LISPD_HI_NONE ? &fdb->nodes[idx] : NULL;
}

uint32_t lispd_fdb_age(struct lispd_fdb *fdb, uint32_t vni, uint64_t now_ms,
                       uint64_t max_age_ms)
{
    uint32_t removed = 0;
    for (uint32_t k = 0; k < fdb->size;) {
        const struct lispd_fdb_entry *e = &fdb->nodes[k];
        /* A last_seen in the future (a clock step) counts as just seen. */
        if (!e->is_static && (vni == LISPD_ANY_VNI || e->vni == vni) &&
            now_ms > e->last_seen_ms && now_ms - e->last_seen_ms > max_age_ms) {
            /* moves the last node to k */
            remove_at(fdb, k, lispd_hi_slot_of(&fdb->index, k, node_hash(fdb, k)));
            removed++;
        } else {
            k++;
        }
    }
    return removed;
}

uint32_t lispd_fdb_size(const struct lispd_fdb *fdb)
{
    return fdb->size;
}

uint32_t lispd_fdb_dump(const struct lispd_fdb *fdb, struct lispd_fdb_entry *out, uint32_t cap)
{
    uint32_t n = cap < fdb->size ? cap : fdb->size;
    if (n)
        memcpy(out, fdb->nodes, (size_t)n * sizeof *out);
    return n;
}
