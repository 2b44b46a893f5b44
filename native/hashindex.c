/* The open-addressing index of the tables: see native/hashindex.h. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hashindex.h"

#define MIN_SLOTS 32u
#define MAX_SLOTS ((uint64_t)1 << 32) /* node number + 1 and hash bits fit 32 bits */

int lispd_hi_init(struct lispd_hi *ix, const void *owner)
{
    ix->slots = calloc(MIN_SLOTS, sizeof *ix->slots);
    if (!ix->slots)
        return -1;
    ix->mask = MIN_SLOTS - 1;
    if (getrandom(&ix->seed, sizeof ix->seed, GRND_NONBLOCK) != (ssize_t)sizeof ix->seed)
        ix->seed = (uint64_t)(uintptr_t)owner * 0x9e3779b97f4a7c15ull;
    return 0;
}

void lispd_hi_free(struct lispd_hi *ix)
{
    free(ix->slots);
    ix->slots = NULL;
}

void lispd_hi_clear(struct lispd_hi *ix)
{
    memset(ix->slots, 0, (ix->mask + 1) * sizeof *ix->slots);
}

/* The first empty slot from h's home. */
static size_t empty_slot(const struct lispd_hi *ix, uint64_t h)
{
    size_t i = (size_t)h & ix->mask;
    while (ix->slots[i].node)
        i = (i + 1) & ix->mask;
    return i;
}

/* Rebuild with n_slots slots over entries [0, size). */
static int resize(struct lispd_hi *ix, size_t n_slots, uint32_t size, lispd_hi_hash_fn *hash,
                  const void *table)
{
    struct lispd_hi_slot *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return -1;
    free(ix->slots);
    ix->slots = slots;
    ix->mask = n_slots - 1;
    for (uint32_t k = 0; k < size; k++) {
        uint64_t h = hash(table, k);
        size_t i = empty_slot(ix, h);
        slots[i].node = k + 1;
        slots[i].hash = (uint32_t)h;
    }
    return 0;
}

int lispd_hi_insert(struct lispd_hi *ix, size_t i, uint32_t node, uint64_t h,
                    lispd_hi_hash_fn *hash, const void *table)
{
    uint64_t n_slots = (uint64_t)ix->mask + 1;
    if (((uint64_t)node + 1) * 2 > n_slots && n_slots < MAX_SLOTS) {
        if (resize(ix, (size_t)(n_slots * 2), node, hash, table) < 0)
            return -1;
        i = empty_slot(ix, h); /* the key is absent: where a probe ends */
    }
    ix->slots[i].node = node + 1;
    ix->slots[i].hash = (uint32_t)h;
    return 0;
}

void lispd_hi_remove(struct lispd_hi *ix, size_t i)
{
    size_t mask = ix->mask;
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        struct lispd_hi_slot s = ix->slots[j];
        if (s.node == 0)
            break;
        size_t home = (size_t)s.hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->slots[i] = s;
            i = j;
        }
    }
    ix->slots[i].node = 0;
    ix->slots[i].hash = 0;
}

size_t lispd_hi_slot_of(const struct lispd_hi *ix, uint32_t node, uint64_t h)
{
    size_t i = (size_t)h & ix->mask;
    while (ix->slots[i].node != node + 1)
        i = (i + 1) & ix->mask;
    return i;
}

void lispd_hi_renumber(struct lispd_hi *ix, uint32_t from, uint32_t to, uint64_t h)
{
    ix->slots[lispd_hi_slot_of(ix, from, h)].node = to + 1;
}
