/* The VXLAN forwarding database: (VNI, MAC) -> remote VTEP, learned from
 * received frames or configured (static), aged by the caller's clock.
 *
 * Same layout as the FIB (native/fib.c): entries in a dense array grown by
 * doubling up to limit (a delete moves the last entry into the hole), and
 * an open-addressing index (linear probing, power-of-two capacity, load at
 * most 1/2, backward-shift deletion) of node number + 1 and the low 32 bits
 * of a seeded fmix64 hash of (VNI, MAC). The stored entries are the public
 * struct itself, canonical: an IPv4 VTEP's unused octets and is_static are
 * 0/1. Pointers from lispd_fdb_lookup stay valid until the next change.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lispd_native.h"

#define MIN_NODES 16u
#define MIN_SLOTS 32u
#define MAX_SLOTS ((uint64_t)1 << 32)

struct fdb_slot {
    uint32_t node;              /* node number + 1; 0 when empty */
    uint32_t hash;              /* low 32 bits of the key's hash */
};

struct lispd_fdb {
    uint32_t limit, size, node_cap;
    size_t slot_mask;
    uint64_t seed;
    struct lispd_fdb_entry *nodes;
    struct fdb_slot *slots;
};

static uint64_t fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t mac48(const uint8_t *mac)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | mac[i];
    return v;
}

static uint64_t key_hash(uint64_t seed, uint32_t vni, const uint8_t *mac)
{
    return fmix64((((uint64_t)vni ^ seed) * 0x9e3779b97f4a7c15ull) ^ mac48(mac));
}

static int same_key(const struct lispd_fdb_entry *e, uint32_t vni, const uint8_t *mac)
{
    return e->vni == vni && memcmp(e->mac, mac, 6) == 0;
}

static size_t probe(const struct lispd_fdb *fdb, uint64_t h, uint32_t vni, const uint8_t *mac)
{
    size_t i = (size_t)h & fdb->slot_mask;
    for (;; i = (i + 1) & fdb->slot_mask) {
        const struct fdb_slot *s = &fdb->slots[i];
        if (s->node == 0)
            return i;
        if (s->hash == (uint32_t)h && same_key(&fdb->nodes[s->node - 1], vni, mac))
            return i;
    }
}

static size_t slot_of(const struct lispd_fdb *fdb, uint32_t idx)
{
    const struct lispd_fdb_entry *e = &fdb->nodes[idx];
    size_t i = (size_t)key_hash(fdb->seed, e->vni, e->mac) & fdb->slot_mask;
    while (fdb->slots[i].node != idx + 1)
        i = (i + 1) & fdb->slot_mask;
    return i;
}

static void slot_remove(struct lispd_fdb *fdb, size_t i)
{
    size_t mask = fdb->slot_mask;
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        struct fdb_slot s = fdb->slots[j];
        if (s.node == 0)
            break;
        size_t home = (size_t)s.hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            fdb->slots[i] = s;
            i = j;
        }
    }
    fdb->slots[i].node = 0;
    fdb->slots[i].hash = 0;
}

/* Remove node idx, whose index slot is i. */
static void remove_at(struct lispd_fdb *fdb, uint32_t idx, size_t i)
{
    slot_remove(fdb, i);
    uint32_t last = --fdb->size;
    if (idx != last) {
        fdb->nodes[idx] = fdb->nodes[last];
        fdb->slots[slot_of(fdb, last)].node = idx + 1;
    }
}

static int index_resize(struct lispd_fdb *fdb, size_t n_slots)
{
    struct fdb_slot *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    free(fdb->slots);
    fdb->slots = slots;
    fdb->slot_mask = n_slots - 1;
    for (uint32_t k = 0; k < fdb->size; k++) {
        const struct lispd_fdb_entry *e = &fdb->nodes[k];
        uint64_t h = key_hash(fdb->seed, e->vni, e->mac);
        size_t i = (size_t)h & fdb->slot_mask;
        while (slots[i].node)
            i = (i + 1) & fdb->slot_mask;
        slots[i].node = k + 1;
        slots[i].hash = (uint32_t)h;
    }
    return 0;
}

static int reserve_one(struct lispd_fdb *fdb)
{
    if (fdb->size == fdb->node_cap) {
        uint64_t want = fdb->node_cap ? (uint64_t)fdb->node_cap * 2 : MIN_NODES;
        uint32_t cap = want < fdb->limit ? (uint32_t)want : fdb->limit;
        struct lispd_fdb_entry *nodes = realloc(fdb->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return -1;
        fdb->nodes = nodes;
        fdb->node_cap = cap;
    }
    uint64_t n_slots = (uint64_t)fdb->slot_mask + 1;
    if (((uint64_t)fdb->size + 1) * 2 > n_slots && n_slots < MAX_SLOTS)
        return index_resize(fdb, (size_t)(n_slots * 2));
    return 0;
}

struct lispd_fdb *lispd_fdb_new(uint32_t limit)
{
    struct lispd_fdb *fdb = calloc(1, sizeof *fdb);
    if (!fdb)
        return NULL;
    fdb->limit = limit;
    fdb->slots = calloc(MIN_SLOTS, sizeof *fdb->slots);
    if (!fdb->slots) {
        free(fdb);
        return NULL;
    }
    fdb->slot_mask = MIN_SLOTS - 1;
    if (getrandom(&fdb->seed, sizeof fdb->seed, GRND_NONBLOCK) != (ssize_t)sizeof fdb->seed)
        fdb->seed = (uint64_t)(uintptr_t)fdb * 0x9e3779b97f4a7c15ull;
    return fdb;
}

void lispd_fdb_free(struct lispd_fdb *fdb)
{
    if (!fdb)
        return;
    free(fdb->nodes);
    free(fdb->slots);
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
 * Returns the node, or NULL when the table is full. */
static struct lispd_fdb_entry *insert(struct lispd_fdb *fdb, uint64_t h, size_t i, uint32_t vni,
                                      const uint8_t *mac)
{
    if (fdb->size >= fdb->limit)
        return NULL;
    size_t n_slots = fdb->slot_mask + 1;
    if (reserve_one(fdb) < 0)
        return NULL; /* out of memory: full as far as the caller can tell */
    if (fdb->slot_mask + 1 != n_slots)
        i = probe(fdb, h, vni, mac);
    uint32_t idx = fdb->size++;
    struct lispd_fdb_entry *e = &fdb->nodes[idx];
    memset(e, 0, sizeof *e);
    e->vni = vni;
    memcpy(e->mac, mac, 6);
    fdb->slots[i].node = idx + 1;
    fdb->slots[i].hash = (uint32_t)h;
    return e;
}

int lispd_fdb_set(struct lispd_fdb *fdb, const struct lispd_fdb_entry *entry)
{
    if (entry->vni > 0xffffffu || !valid_family(entry->family) || is_multicast(entry->mac))
        return -1;
    uint64_t h = key_hash(fdb->seed, entry->vni, entry->mac);
    size_t i = probe(fdb, h, entry->vni, entry->mac);
    struct lispd_fdb_entry *e;
    if (fdb->slots[i].node)
        e = &fdb->nodes[fdb->slots[i].node - 1];
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
    uint64_t h = key_hash(fdb->seed, vni, mac);
    size_t i = probe(fdb, h, vni, mac);
    if (fdb->slots[i].node) {
        struct lispd_fdb_entry *e = &fdb->nodes[fdb->slots[i].node - 1];
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
    size_t i = probe(fdb, key_hash(fdb->seed, vni, mac), vni, mac);
    if (!fdb->slots[i].node)
        return -1;
    remove_at(fdb, fdb->slots[i].node - 1, i);
    return 0;
}

const struct lispd_fdb_entry *lispd_fdb_lookup(const struct lispd_fdb *fdb, uint32_t vni,
                                               const uint8_t *mac)
{
    size_t i = probe(fdb, key_hash(fdb->seed, vni, mac), vni, mac);
    return fdb->slots[i].node ? &fdb->nodes[fdb->slots[i].node - 1] : NULL;
}

uint32_t lispd_fdb_age(struct lispd_fdb *fdb, uint64_t now_ms, uint64_t max_age_ms)
{
    uint32_t removed = 0;
    for (uint32_t k = 0; k < fdb->size;) {
        const struct lispd_fdb_entry *e = &fdb->nodes[k];
        /* A last_seen in the future (a clock step) counts as just seen. */
        if (!e->is_static && now_ms > e->last_seen_ms && now_ms - e->last_seen_ms > max_age_ms) {
            remove_at(fdb, k, slot_of(fdb, k)); /* moves the last node to k */
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
