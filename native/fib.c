/* The forwarding table: longest-prefix match over (instance-id, family,
 * prefix/len), the C copy of the map-cache and of the database that the
 * fast path reads.
 *
 * Layout. Entries live in a dense array of nodes (grown by doubling, never
 * past limit); a delete moves the last node into the hole, so live nodes
 * are always nodes[0, size). An open-addressing index (native/hashindex.h:
 * linear probing, power-of-two capacity, load at most 1/2, backward-shift
 * deletion, no tombstones) maps a key's hash to its node.
 *
 * Lookup. Per family, a count of entries per prefix length and the list of
 * lengths present, longest first; a lookup masks the address to each
 * length in turn and probes for (instance-id, family, length, masked
 * address): at most 33 or 129 probes, usually as many as there are
 * distinct lengths. Lengths are shared by all instance-ids of a family.
 *
 * Keys are held as host integers: w0 = instance-id << 16 | family << 8 |
 * length, and the prefix as two 64-bit words (hi, lo) of its big-endian
 * value (IPv4: the address in the top 32 bits of hi). The hash is a
 * murmur3 fmix64 finalizer over those words, seeded per table from
 * getrandom() so that nobody outside can aim keys at one chain.
 *
 * Used queue. Each node holds its position in the queue or NOT_QUEUED. The
 * first hit since the last drain appends the node number; a delete takes
 * its node out of the queue (swap with the queue's last), a node moved by a
 * delete has its queue cell rewritten. So the queue holds exactly the live
 * entries hit since they were last drained, each once: never more than
 * size <= limit, never a deleted key. Replacing an entry (set on an
 * existing key) keeps its queued state: it is the same map-cache entry.
 *
 * Pointers returned by lispd_fib_lookup stay valid until the next set,
 * delete or clear on the table.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "hashindex.h"
#include "lispd_native.h"

#define NOT_QUEUED UINT32_MAX

struct fib_node {
    uint64_t w0;                /* instance-id << 16 | family << 8 | length */
    uint64_t hi, lo;            /* the masked prefix, big-endian value */
    uint32_t qpos;              /* position in the used queue, or NOT_QUEUED */
    struct lispd_fib_entry entry;
};

struct fib_lengths {
    uint32_t count[129];        /* entries per prefix length */
    uint8_t present[129];       /* lengths with count > 0, longest first */
    uint32_t n_present;
};

struct lispd_fib {
    uint32_t limit, size;
    uint32_t node_cap;          /* nodes and queue allocated */
    uint32_t queued;
    struct fib_node *nodes;
    uint32_t *queue;            /* node numbers hit since the last drain */
    struct lispd_hi index;
    struct fib_lengths v4, v6;
};

/* A key to look up. */
struct fib_key {
    uint64_t w0, hi, lo;
};

static uint64_t key_hash(const struct lispd_fib *fib, uint64_t w0, uint64_t hi, uint64_t lo)
{
    uint64_t h = lispd_hi_hash2(fib->index.seed, w0, hi);
    /* IPv4 prefixes have lo == 0: one round is enough for them. */
    return lo ? lispd_hi_fmix64(h ^ lo) : h;
}

/* The address (4 or 16 octets) as (hi, lo). */
static void load_address(uint8_t family, const uint8_t *address, uint64_t *hi, uint64_t *lo)
{
    if (family == LISPD_FAMILY_IPV4) {
        *hi = (uint64_t)get_be32(address) << 32;
        *lo = 0;
    } else {
        *hi = get_be64(address);
        *lo = get_be64(address + 8);
    }
}

/* (hi, lo) with the bits past len cleared. */
static void mask_prefix(uint32_t len, uint64_t *hi, uint64_t *lo)
{
    if (len == 0) {
        *hi = 0;
        *lo = 0;
    } else if (len <= 64) {
        *hi &= ~(uint64_t)0 << (64 - len);
        *lo = 0;
    } else if (len < 128) {
        *lo &= ~(uint64_t)0 << (128 - len);
    }
}

static uint64_t make_w0(uint32_t instance_id, uint8_t family, uint32_t len)
{
    return (uint64_t)instance_id << 16 | (uint64_t)family << 8 | len;
}

static struct fib_lengths *lengths_of(struct lispd_fib *fib, uint8_t family)
{
    return family == LISPD_FAMILY_IPV4 ? &fib->v4 : &fib->v6;
}

static void lengths_rebuild(struct fib_lengths *l)
{
    l->n_present = 0;
    for (int len = 128; len >= 0; len--)
        if (l->count[len])
            l->present[l->n_present++] = (uint8_t)len;
}

static void lengths_add(struct fib_lengths *l, uint32_t len, int delta)
{
    uint32_t before = l->count[len];
    l->count[len] = delta > 0 ? before + 1 : before - 1;
    if (before == 0 || l->count[len] == 0)
        lengths_rebuild(l);
}

static void key_out(const struct fib_node *n, struct lispd_fib_key *key)
{
    memset(key, 0, sizeof *key);
    key->instance_id = (uint32_t)(n->w0 >> 16);
    key->family = (uint8_t)(n->w0 >> 8);
    key->prefix_len = (uint8_t)n->w0;
    if (key->family == LISPD_FAMILY_IPV4) {
        uint8_t word[8];
        put_be64(word, n->hi);
        memcpy(key->prefix, word, 4);
    } else {
        put_be64(key->prefix, n->hi);
        put_be64(key->prefix + 8, n->lo);
    }
}

static int same_key(const void *table, uint32_t idx, const void *key)
{
    const struct fib_node *n = &((const struct lispd_fib *)table)->nodes[idx];
    const struct fib_key *k = key;
    return n->w0 == k->w0 && n->hi == k->hi && n->lo == k->lo;
}

/* The slot holding the key, or the empty slot where it would go. */
static size_t probe(const struct lispd_fib *fib, uint64_t h, uint64_t w0, uint64_t hi,
                    uint64_t lo)
{
    struct fib_key key = {.w0 = w0, .hi = hi, .lo = lo};
    return lispd_hi_probe(&fib->index, h, same_key, fib, &key);
}

static uint64_t node_hash(const void *table, uint32_t idx)
{
    const struct lispd_fib *fib = table;
    const struct fib_node *n = &fib->nodes[idx];
    return key_hash(fib, n->w0, n->hi, n->lo);
}

/* Room for one more node (size < limit) in the node array and the queue. */
static int reserve_one(struct lispd_fib *fib)
{
    if (fib->size == fib->node_cap) {
        uint32_t cap = lispd_hi_next_cap(fib->node_cap, fib->limit);
        struct fib_node *nodes = realloc(fib->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return -1;
        fib->nodes = nodes;
        uint32_t *queue = realloc(fib->queue, (size_t)cap * sizeof *queue);
        if (!queue)
            return -1;
        fib->queue = queue;
        fib->node_cap = cap;
    }
    return 0;
}

struct lispd_fib *lispd_fib_new(uint32_t limit)
{
    struct lispd_fib *fib = calloc(1, sizeof *fib);
    if (!fib)
        return NULL;
    fib->limit = limit;
    if (lispd_hi_init(&fib->index, fib) < 0) {
        free(fib);
        return NULL;
    }
    return fib;
}

void lispd_fib_free(struct lispd_fib *fib)
{
    if (!fib)
        return;
    free(fib->nodes);
    free(fib->queue);
    lispd_hi_free(&fib->index);
    free(fib);
}

static int valid_key(const struct lispd_fib_key *key)
{
    if (key->instance_id > 0xffffffu)
        return 0;
    if (key->family == LISPD_FAMILY_IPV4) {
        if (key->prefix_len > 32)
            return 0;
        for (int i = 4; i < 16; i++)
            if (key->prefix[i])
                return 0;
    } else if (key->family == LISPD_FAMILY_IPV6) {
        if (key->prefix_len > 128)
            return 0;
    } else {
        return 0;
    }
    return 1;
}

static int valid_entry(const struct lispd_fib_entry *entry)
{
    if (entry->action > LISPD_ACT_LOCAL || entry->reencap > 1 ||
        entry->n_locators > LISPD_MAX_LOCATORS)
        return 0;
    if (entry->action == LISPD_ACT_ENCAP && entry->n_locators == 0)
        return 0;
    for (uint32_t i = 0; i < entry->n_locators; i++) {
        uint8_t family = entry->locators[i].family;
        if (family != LISPD_FAMILY_IPV4 && family != LISPD_FAMILY_IPV6)
            return 0;
    }
    return 1;
}

/* The stored copy: unused locators and address octets zero. */
static void entry_copy(struct lispd_fib_entry *dst, const struct lispd_fib_entry *src)
{
    memset(dst, 0, sizeof *dst);
    dst->action = src->action;
    dst->reencap = src->reencap;
    dst->lsbs = src->lsbs;
    dst->n_locators = src->n_locators;
    for (uint32_t i = 0; i < src->n_locators; i++) {
        const struct lispd_locator *l = &src->locators[i];
        dst->locators[i].family = l->family;
        memcpy(dst->locators[i].address, l->address, l->family == LISPD_FAMILY_IPV4 ? 4 : 16);
        dst->locators[i].weight = l->weight;
    }
}

/* The key as (w0, hi, lo), or -1 when it is invalid. */
static int key_in(const struct lispd_fib_key *key, uint64_t *w0, uint64_t *hi, uint64_t *lo)
{
    if (!valid_key(key))
        return -1;
    load_address(key->family, key->prefix, hi, lo);
    uint64_t mhi = *hi, mlo = *lo;
    mask_prefix(key->prefix_len, &mhi, &mlo);
    if (mhi != *hi || mlo != *lo)
        return -1;
    *w0 = make_w0(key->instance_id, key->family, key->prefix_len);
    return 0;
}

int lispd_fib_set(struct lispd_fib *fib, const struct lispd_fib_key *key,
                  const struct lispd_fib_entry *entry)
{
    uint64_t w0, hi, lo;
    if (key_in(key, &w0, &hi, &lo) < 0 || !valid_entry(entry))
        return -1;
    uint64_t h = key_hash(fib, w0, hi, lo);
    size_t i = probe(fib, h, w0, hi, lo);
    uint32_t idx = lispd_hi_entry(&fib->index, i);
    if (idx != LISPD_HI_NONE) {
        entry_copy(&fib->nodes[idx].entry, entry);
        return 0;
    }
    if (fib->size >= fib->limit)
        return -2;
    if (reserve_one(fib) < 0 ||
        lispd_hi_insert(&fib->index, i, fib->size, h, node_hash, fib) < 0)
        return -2; /* out of memory: full as far as the caller can tell */
    idx = fib->size++;
    struct fib_node *n = &fib->nodes[idx];
    n->w0 = w0;
    n->hi = hi;
    n->lo = lo;
    n->qpos = NOT_QUEUED;
    entry_copy(&n->entry, entry);
    lengths_add(lengths_of(fib, key->family), key->prefix_len, 1);
    return 0;
}

static void queue_remove(struct lispd_fib *fib, uint32_t idx)
{
    uint32_t pos = fib->nodes[idx].qpos;
    if (pos == NOT_QUEUED)
        return;
    fib->nodes[idx].qpos = NOT_QUEUED;
    uint32_t last = --fib->queued;
    if (pos != last) {
        fib->queue[pos] = fib->queue[last];
        fib->nodes[fib->queue[pos]].qpos = pos;
    }
}

int lispd_fib_delete(struct lispd_fib *fib, const struct lispd_fib_key *key)
{
    uint64_t w0, hi, lo;
    if (key_in(key, &w0, &hi, &lo) < 0)
        return -1;
    size_t i = probe(fib, key_hash(fib, w0, hi, lo), w0, hi, lo);
    uint32_t idx = lispd_hi_entry(&fib->index, i);
    if (idx == LISPD_HI_NONE)
        return -1;
    queue_remove(fib, idx);
    lispd_hi_remove(&fib->index, i);
    uint32_t last = --fib->size;
    if (idx != last) {
        fib->nodes[idx] = fib->nodes[last];
        lispd_hi_renumber(&fib->index, last, idx, node_hash(fib, idx));
        if (fib->nodes[idx].qpos != NOT_QUEUED)
            fib->queue[fib->nodes[idx].qpos] = idx;
    }
    lengths_add(lengths_of(fib, key->family), key->prefix_len, -1);
    return 0;
}

void lispd_fib_clear(struct lispd_fib *fib)
{
    fib->size = 0;
    fib->queued = 0;
    lispd_hi_clear(&fib->index);
    memset(&fib->v4, 0, sizeof fib->v4);
    memset(&fib->v6, 0, sizeof fib->v6);
}

uint32_t lispd_fib_size(const struct lispd_fib *fib)
{
    return fib->size;
}

/* The node of the longest prefix covering address, or NULL. */
static struct fib_node *longest_match(const struct lispd_fib *fib, uint32_t instance_id,
                                      uint8_t family, const uint8_t *address)
{
    if ((family != LISPD_FAMILY_IPV4 && family != LISPD_FAMILY_IPV6) || instance_id > 0xffffffu)
        return NULL;
    const struct fib_lengths *l = family == LISPD_FAMILY_IPV4 ? &fib->v4 : &fib->v6;
    uint64_t hi, lo;
    load_address(family, address, &hi, &lo);
    uint64_t base = make_w0(instance_id, family, 0);
    for (uint32_t k = 0; k < l->n_present; k++) {
        uint32_t len = l->present[k];
        mask_prefix(len, &hi, &lo); /* lengths only shrink: mask in place */
        uint64_t w0 = base | len;
        size_t i = probe(fib, key_hash(fib, w0, hi, lo), w0, hi, lo);
        uint32_t idx = lispd_hi_entry(&fib->index, i);
        if (idx != LISPD_HI_NONE)
            return &fib->nodes[idx];
    }
    return NULL;
}

const struct lispd_fib_entry *lispd_fib_lookup(struct lispd_fib *fib, uint32_t instance_id,
                                               uint8_t family, const uint8_t *address,
                                               struct lispd_fib_key *matched)
{
    struct fib_node *n = longest_match(fib, instance_id, family, address);
    if (n == NULL)
        return NULL;
    if (n->qpos == NOT_QUEUED) {
        n->qpos = fib->queued;
        fib->queue[fib->queued++] = (uint32_t)(n - fib->nodes);
    }
    if (matched)
        key_out(n, matched);
    return &n->entry;
}

const struct lispd_fib_entry *lispd_fib_find(const struct lispd_fib *fib, uint32_t instance_id,
                                             uint8_t family, const uint8_t *address,
                                             struct lispd_fib_key *matched)
{
    const struct fib_node *n = longest_match(fib, instance_id, family, address);
    if (n == NULL)
        return NULL;
    if (matched)
        key_out(n, matched);
    return &n->entry;
}

uint32_t lispd_fib_drain_used(struct lispd_fib *fib, struct lispd_fib_key *out, uint32_t cap)
{
    uint32_t n = 0;
    while (n < cap && fib->queued) {
        uint32_t idx = fib->queue[--fib->queued];
        fib->nodes[idx].qpos = NOT_QUEUED;
        key_out(&fib->nodes[idx], &out[n++]);
    }
    return n;
}
