/*
 * offsets.h - per-partition offset tracker.
 *
 * Records of one partition are processed concurrently and finish in any
 * order, but the offset a consumer commits means "everything below is
 * done". Each partition therefore keeps a FIFO of the offsets it dispatched,
 * each with a done flag; when the head is done it is popped, and the offset
 * to store becomes head + 1. The committed offset can never pass a record
 * whose writes are not durable.
 *
 * A partition is tracked per assignment: is_offsets_add_partition returns a
 * generation number, and a job that finishes after its partition was revoked
 * or lost (generation moved on) is ignored rather than counted.
 *
 * Threads: every function takes the tracker's mutex; any thread may call
 * them. Job threads call is_offsets_done; the poll thread does the rest.
 */
#ifndef IS_OFFSETS_H
#define IS_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct is_offsets is_offsets_t;

/* One storable position: topic/partition and the offset to store (the
 * next offset to consume). */
typedef struct is_offsets_pos {
    char topic[256];
    int32_t partition;
    int64_t offset;
} is_offsets_pos_t;

/* The allocator for partitions and their rings, with calloc's contract
 * (freed with free). Injected by tests to make allocations fail. */
typedef void *(*is_offsets_calloc_t)(size_t nmemb, size_t size);

/* NULL when out of memory. is_offsets_new_with(NULL) is is_offsets_new. */
is_offsets_t *is_offsets_new(void);
is_offsets_t *is_offsets_new_with(is_offsets_calloc_t alloc);
void is_offsets_destroy(is_offsets_t *ot);

/* Starts tracking a partition (on assign). Returns its generation, or 0
 * when out of memory: the partition is then not tracked, and its records
 * come back IS_OFFSETS_UNTRACKED (never processed, never stored). */
uint64_t is_offsets_add_partition(is_offsets_t *ot, const char *topic, int32_t partition);

/* Stops tracking a partition (on revoke or loss): pending entries are
 * dropped. Returns how many records were still in flight. */
size_t is_offsets_remove_partition(is_offsets_t *ot, const char *topic, int32_t partition);

/* What is_offsets_add did with an offset. */
typedef enum {
    /* Out of memory: the offset is not tracked, and the partition takes no
     * further offset until it is assigned again (is_offsets_add_partition),
     * so no stored offset of it can pass this one: what is done below it
     * is still stored, up to exactly this offset. The record must not be
     * processed; the caller stops (worker.c exits non-zero). */
    IS_OFFSETS_NOMEM = -1,
    IS_OFFSETS_ADDED = 0,     /* tracked: process it, then is_offsets_done */
    IS_OFFSETS_UNTRACKED = 1, /* partition not (or no longer) assigned: drop it */
} is_offsets_add_t;

/* Records a dispatched offset. Offsets of a partition must be added in
 * increasing order. On IS_OFFSETS_ADDED, *gen is the partition's
 * generation, for is_offsets_done. */
is_offsets_add_t is_offsets_add(is_offsets_t *ot, const char *topic, int32_t partition,
                                int64_t offset, uint64_t *gen);

/* Marks an offset done. Ignored (returns -1) if the partition's generation
 * is no longer gen or the offset is unknown. */
int is_offsets_done(is_offsets_t *ot, const char *topic, int32_t partition, uint64_t gen,
                    int64_t offset);

/* Pops every partition's contiguous done head. Writes up to max positions
 * whose storable offset advanced since the last call; returns how many. */
size_t is_offsets_collect(is_offsets_t *ot, is_offsets_pos_t *out, size_t max);

/* Records in flight (dispatched, not done) for one partition, or for all
 * partitions when topic is NULL. */
size_t is_offsets_pending(is_offsets_t *ot, const char *topic, int32_t partition);

#endif
