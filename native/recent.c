/*
 * The recent-ITR table: the outer sources of the LISP data packets the ETR
 * step decapsulated, so that Python knows whom to send a Solicit-Map-Request
 * when a local mapping changes (RFC 9301 section 6.6.2).
 *
 * Every decapsulated packet touches it, so it sits behind the same kind of
 * index as the FDB (native/hashindex.h: seeded hash, linear probing): a
 * touch is one probe, not a scan. It is bounded: at LISPD_RECENT_ITRS
 * entries a new address replaces the one seen least recently, which costs a
 * scan of the array; that happens only when a new ITR shows up while the
 * table is full, and only after its packet passed every check of the ETR.
 * Ties on last_seen_ms go to the entry touched earliest (seq), so the
 * Python twin (lispd.dataplane.reference.RecentItrs) evicts the same one.
 */
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"

static void load(uint8_t family, const uint8_t *address, uint64_t *hi, uint64_t *lo)
{
    if (family == LISPD_FAMILY_IPV4) {
        *hi = (uint64_t)get_be32(address) << 32;
        *lo = 0;
    } else {
        *hi = get_be64(address);
        *lo = get_be64(address + 8);
    }
}

static uint64_t key_hash(const struct dp_recent *r, uint8_t family, uint64_t hi, uint64_t lo)
{
    return lispd_hi_hash2(r->index.seed, hi, lo ^ family);
}

static uint64_t node_hash(const void *table, uint32_t idx)
{
    const struct dp_recent *r = table;
    const struct dp_recent_itr *e = &r->entries[idx];
    return key_hash(r, e->family, e->hi, e->lo);
}

static int same_key(const void *table, uint32_t idx, const void *key)
{
    const struct dp_recent_itr *e = &((const struct dp_recent *)table)->entries[idx];
    const struct dp_recent_itr *k = key;
    return e->family == k->family && e->hi == k->hi && e->lo == k->lo;
}

int dp_recent_init(struct dp_recent *r)
{
    r->size = 0;
    r->seq = 0;
    return lispd_hi_init(&r->index, r);
}

void dp_recent_free(struct dp_recent *r)
{
    lispd_hi_free(&r->index);
}

/* Whether a was seen before b: earlier ms, or the same ms and touched first. */
static int older(const struct dp_recent_itr *a, const struct dp_recent_itr *b)
{
    return a->last_seen_ms < b->last_seen_ms ||
           (a->last_seen_ms == b->last_seen_ms && a->seq < b->seq);
}

/* Forget the entry seen least recently (the table is full). */
static void evict_oldest(struct dp_recent *r)
{
    uint32_t victim = 0;
    for (uint32_t k = 1; k < r->size; k++)
        if (older(&r->entries[k], &r->entries[victim]))
            victim = k;
    lispd_hi_remove(&r->index, lispd_hi_slot_of(&r->index, victim, node_hash(r, victim)));
    uint32_t last = --r->size;
    if (victim != last) {
        r->entries[victim] = r->entries[last];
        lispd_hi_renumber(&r->index, last, victim, node_hash(r, victim));
    }
}

void dp_recent_seen(struct dp_recent *r, uint8_t family, const uint8_t *address,
                    uint64_t now_ms)
{
    struct dp_recent_itr key = {.family = family, .last_seen_ms = now_ms};
    load(family, address, &key.hi, &key.lo);
    /* A train or batch from one ITR: the same as the last touch in the same
     * ms changes nothing (it is the most recent already). */
    const struct dp_recent_itr *last = &r->last;
    if (r->seq > 0 && last->family == family && last->hi == key.hi && last->lo == key.lo &&
        last->last_seen_ms == now_ms)
        return;
    key.seq = r->seq++;
    r->last = key;
    uint64_t h = key_hash(r, family, key.hi, key.lo);
    size_t i = lispd_hi_probe(&r->index, h, same_key, r, &key);
    uint32_t idx = lispd_hi_entry(&r->index, i);
    if (idx != LISPD_HI_NONE) {
        r->entries[idx].last_seen_ms = now_ms;
        r->entries[idx].seq = key.seq;
        return;
    }
    if (r->size == LISPD_RECENT_ITRS) {
        evict_oldest(r);
        /* The removal shifted slots back: find where the key goes now. */
        i = lispd_hi_probe(&r->index, h, same_key, r, &key);
    }
    /* The index only grows while the table fills (to 512 slots); out of
     * memory there, the address is simply not remembered. */
    if (lispd_hi_insert(&r->index, i, r->size, h, node_hash, r) < 0)
        return;
    r->entries[r->size++] = key;
}

static int most_recent_first(const void *a, const void *b)
{
    const struct dp_recent_itr *x = *(const struct dp_recent_itr *const *)a;
    const struct dp_recent_itr *y = *(const struct dp_recent_itr *const *)b;
    return older(y, x) ? -1 : older(x, y) ? 1 : 0;
}

uint32_t lispd_dp_recent_itrs(const struct lispd_dp *dp, uint64_t since_ms,
                              struct lispd_locator *out, uint32_t cap)
{
    const struct dp_recent *r = &dp->recent;
    const struct dp_recent_itr *found[LISPD_RECENT_ITRS];
    uint32_t n = 0;
    for (uint32_t k = 0; k < r->size; k++)
        if (r->entries[k].last_seen_ms >= since_ms)
            found[n++] = &r->entries[k];
    qsort(found, n, sizeof found[0], most_recent_first);
    if (n > cap)
        n = cap;
    for (uint32_t k = 0; k < n; k++) {
        struct lispd_locator *l = &out[k];
        memset(l, 0, sizeof *l);
        l->family = found[k]->family;
        if (l->family == LISPD_FAMILY_IPV4) {
            uint8_t word[8];
            put_be64(word, found[k]->hi);
            memcpy(l->address, word, 4);
        } else {
            put_be64(l->address, found[k]->hi);
            put_be64(l->address + 8, found[k]->lo);
        }
    }
    return n;
}
