/*
 * Internal to the tables (native/fib.c, native/fdb.c): the open-addressing
 * index from a key to an entry number that both keep over their dense
 * array of entries. Not part of the cffi surface.
 *
 * Linear probing, power-of-two capacity, load at most 1/2, backward-shift
 * deletion, no tombstones. A slot holds the entry number plus one (0:
 * empty) and the low 32 bits of the key's hash, which filter most probes
 * without touching the entry. Hashes are the caller's, seeded with the
 * index's seed (from getrandom(), so that nobody outside can aim keys at
 * one chain); the index never sees a key, only asks the caller to compare
 * one with an entry (lispd_hi_probe) or for an entry's hash (growing,
 * finding an entry's slot).
 */
#ifndef LISPD_HASHINDEX_H
#define LISPD_HASHINDEX_H
#include <stddef.h>
#include <stdint.h>

/* No entry: what lispd_hi_entry says of an empty slot. */
#define LISPD_HI_NONE UINT32_MAX

struct lispd_hi_slot {
    uint32_t node; /* entry number + 1; 0 when empty */
    uint32_t hash; /* low 32 bits of the key's hash */
};

struct lispd_hi {
    size_t mask; /* slot count - 1 */
    uint64_t seed;
    struct lispd_hi_slot *slots;
};

/* Whether entry number node of table has key. */
typedef int lispd_hi_same_fn(const void *table, uint32_t node, const void *key);

/* The hash of the key of entry number node of table. */
typedef uint64_t lispd_hi_hash_fn(const void *table, uint32_t node);

/* murmur3's fmix64 finalizer. */
static inline uint64_t lispd_hi_fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The seeded hash of a key of two words. */
static inline uint64_t lispd_hi_hash2(uint64_t seed, uint64_t a, uint64_t b)
{
    return lispd_hi_fmix64(((a ^ seed) * 0x9e3779b97f4a7c15ull) ^ b);
}

/* The slot holding key (hash h), or the empty slot where it would go. Inline,
 * so that same is a direct call the compiler inlines: no cost on lookups. */
static inline size_t lispd_hi_probe(const struct lispd_hi *ix, uint64_t h, lispd_hi_same_fn *same,
                                    const void *table, const void *key)
{
    size_t i = (size_t)h & ix->mask;
    for (;; i = (i + 1) & ix->mask) {
        const struct lispd_hi_slot *s = &ix->slots[i];
        if (s->node == 0)
            return i;
        if (s->hash == (uint32_t)h && same(table, s->node - 1, key))
            return i;
    }
}

/* The capacity that the table's dense array of entries, full at cap, grows
 * to: twice as many (16 at first), never past limit. */
static inline uint32_t lispd_hi_next_cap(uint32_t cap, uint32_t limit)
{
    uint64_t want = cap ? (uint64_t)cap * 2 : 16u;
    return want < limit ? (uint32_t)want : limit;
}

/* The entry number in slot i, or LISPD_HI_NONE when it is empty. */
static inline uint32_t lispd_hi_entry(const struct lispd_hi *ix, size_t i)
{
    return ix->slots[i].node - 1;
}

/* An empty index with a fresh seed; owner (the table) stands in for
 * randomness when getrandom() has none. Returns 0, or -1 out of memory. */
int lispd_hi_init(struct lispd_hi *ix, const void *owner);

void lispd_hi_free(struct lispd_hi *ix);

/* Empty every slot (the seed and the capacity stay). */
void lispd_hi_clear(struct lispd_hi *ix);

/* Index entry number node (the table's size: entries [0, node) are indexed),
 * whose key hashes to h and is not in the index, at the empty slot i that
 * lispd_hi_probe returned for it. The index first grows if it would be more
 * than half full, rehashing those entries with hash. Returns 0, or -1 out of
 * memory (the index unchanged). */
int lispd_hi_insert(struct lispd_hi *ix, size_t i, uint32_t node, uint64_t h,
                    lispd_hi_hash_fn *hash, const void *table);

/* Empty slot i, shifting back the entries of its cluster that may move. */
void lispd_hi_remove(struct lispd_hi *ix, size_t i);

/* The slot of entry number node, whose key hashes to h (it must be in the
 * index). */
size_t lispd_hi_slot_of(const struct lispd_hi *ix, uint32_t node, uint64_t h);

/* Entry number from, whose key hashes to h, is now entry number to. */
void lispd_hi_renumber(struct lispd_hi *ix, uint32_t from, uint32_t to, uint64_t h);

#endif
