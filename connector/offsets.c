/*
 * offsets.c - per-partition FIFO of dispatched offsets. See offsets.h.
 *
 * The FIFO is a ring buffer of (offset, done) that grows by doubling; a
 * partition rarely holds more than the worker's in-flight bound.
 */
#include "offsets.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t offset;
    int done;
} entry_t;

typedef struct part {
    char topic[256];
    int32_t partition;
    uint64_t gen;
    entry_t *ring;
    size_t cap, head, len; /* ring[head .. head+len) in offset order */
    int64_t storable;      /* offset to store, -1 if nothing done yet */
    int64_t reported;      /* last storable handed out by collect */
    int nomem;             /* an add failed: take no more offsets (offsets.h) */
    struct part *next;
} part_t;

struct is_offsets {
    pthread_mutex_t lock;
    part_t *parts;
    uint64_t next_gen;
    is_offsets_calloc_t alloc;
};

is_offsets_t *is_offsets_new_with(is_offsets_calloc_t alloc)
{
    if (!alloc)
        alloc = calloc;
    is_offsets_t *ot = alloc(1, sizeof(*ot));
    if (!ot)
        return NULL;
    if (pthread_mutex_init(&ot->lock, NULL)) {
        free(ot);
        return NULL;
    }
    ot->next_gen = 1;
    ot->alloc = alloc;
    return ot;
}

is_offsets_t *is_offsets_new(void)
{
    return is_offsets_new_with(NULL);
}

static void part_free(part_t *p)
{
    free(p->ring);
    free(p);
}

void is_offsets_destroy(is_offsets_t *ot)
{
    if (!ot)
        return;
    for (part_t *p = ot->parts, *n; p; p = n) {
        n = p->next;
        part_free(p);
    }
    pthread_mutex_destroy(&ot->lock);
    free(ot);
}

static part_t **find(is_offsets_t *ot, const char *topic, int32_t partition)
{
    part_t **pp = &ot->parts;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->partition == partition && !strcmp((*pp)->topic, topic))
            return pp;
    return pp;
}

uint64_t is_offsets_add_partition(is_offsets_t *ot, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&ot->lock);
    part_t **pp = find(ot, topic, partition);
    if (*pp) { /* re-assigned without a revoke in between: start afresh */
        part_t *old = *pp;
        *pp = old->next;
        part_free(old);
    }
    part_t *p = ot->alloc(1, sizeof(*p));
    if (!p) { /* untracked: its records are dropped, none stored */
        pthread_mutex_unlock(&ot->lock);
        return 0;
    }
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->gen = ot->next_gen++;
    p->storable = p->reported = -1;
    p->next = ot->parts;
    ot->parts = p;
    uint64_t gen = p->gen;
    pthread_mutex_unlock(&ot->lock);
    return gen;
}

size_t is_offsets_remove_partition(is_offsets_t *ot, const char *topic, int32_t partition)
{
    size_t pending = 0;
    pthread_mutex_lock(&ot->lock);
    part_t **pp = find(ot, topic, partition);
    if (*pp) {
        part_t *p = *pp;
        for (size_t i = 0; i < p->len; i++)
            pending += !p->ring[(p->head + i) % p->cap].done;
        *pp = p->next;
        part_free(p);
    }
    pthread_mutex_unlock(&ot->lock);
    return pending;
}

is_offsets_add_t is_offsets_add(is_offsets_t *ot, const char *topic, int32_t partition,
                                int64_t offset, uint64_t *gen)
{
    is_offsets_add_t rc = IS_OFFSETS_UNTRACKED;
    pthread_mutex_lock(&ot->lock);
    part_t *p = *find(ot, topic, partition);
    if (!p)
        goto done;
    /* Once an offset could not be tracked, none after it may be: were a
     * later one tracked and done, the stored offset would pass the lost
     * one. */
    rc = IS_OFFSETS_NOMEM;
    if (p->nomem)
        goto done;
    if (p->len == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        entry_t *n = ot->alloc(ncap, sizeof(*n));
        if (!n) {
            p->nomem = 1;
            goto done;
        }
        for (size_t i = 0; i < p->len; i++)
            n[i] = p->ring[(p->head + i) % p->cap];
        free(p->ring);
        p->ring = n;
        p->cap = ncap;
        p->head = 0;
    }
    p->ring[(p->head + p->len) % p->cap] = (entry_t){offset, 0};
    p->len++;
    *gen = p->gen;
    rc = IS_OFFSETS_ADDED;
done:
    pthread_mutex_unlock(&ot->lock);
    return rc;
}

int is_offsets_done(is_offsets_t *ot, const char *topic, int32_t partition, uint64_t gen,
                    int64_t offset)
{
    int rc = -1;
    pthread_mutex_lock(&ot->lock);
    part_t *p = *find(ot, topic, partition);
    if (!p || p->gen != gen || !p->len)
        goto done;
    /* Offsets are increasing (not necessarily contiguous: compaction and
     * transactions leave gaps), so binary search the ring. */
    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->ring[(p->head + mid) % p->cap].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->len || p->ring[(p->head + lo) % p->cap].offset != offset)
        goto done;
    p->ring[(p->head + lo) % p->cap].done = 1;
    while (p->len && p->ring[p->head].done) {
        p->storable = p->ring[p->head].offset + 1;
        p->head = (p->head + 1) % p->cap;
        p->len--;
    }
    rc = 0;
done:
    pthread_mutex_unlock(&ot->lock);
    return rc;
}

size_t is_offsets_collect(is_offsets_t *ot, is_offsets_pos_t *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&ot->lock);
    for (part_t *p = ot->parts; p && n < max; p = p->next) {
        if (p->storable < 0 || p->storable == p->reported)
            continue;
        snprintf(out[n].topic, sizeof(out[n].topic), "%s", p->topic);
        out[n].partition = p->partition;
        out[n].offset = p->storable;
        p->reported = p->storable;
        n++;
    }
    pthread_mutex_unlock(&ot->lock);
    return n;
}

size_t is_offsets_pending(is_offsets_t *ot, const char *topic, int32_t partition)
{
    size_t n = 0;
    pthread_mutex_lock(&ot->lock);
    for (part_t *p = ot->parts; p; p = p->next) {
        if (topic && (p->partition != partition || strcmp(p->topic, topic)))
            continue;
        for (size_t i = 0; i < p->len; i++)
            n += !p->ring[(p->head + i) % p->cap].done;
    }
    pthread_mutex_unlock(&ot->lock);
    return n;
}
