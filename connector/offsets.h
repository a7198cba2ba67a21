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

is_offsets_t *is_offsets_new(void);
void is_offsets_destroy(is_offsets_t *ot);

/* Starts tracking a partition (on assign). Returns its generation. */
uint64_t is_offsets_add_partition(is_offsets_t *ot, const char *topic, int32_t partition);

/* Stops tracking a partition (on revoke or loss): pending entries are
 * dropped. Returns how many records were still in flight. */
size_t is_offsets_remove_partition(is_offsets_t *ot, const char *topic, int32_t partition);

/* Records a dispatched offset. Offsets of a partition must be added in
 * increasing order. Returns the partition's generation, or 0 if the
 * partition is not tracked (the record must not be processed). */
uint64_t is_offsets_add(is_offsets_t *ot, const char *topic, int32_t partition, int64_t offset);

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
