/*
 * avro_walk.h - validation pass over an Avro binary encoding.
 *
 * Walks [p, end) as the binary encoding of one value of schema s, exactly as
 * avro-c's reader would advance, and checks every length, block count, enum
 * index, union branch and string (UTF-8, no NUL) against the bytes present
 * before anything is allocated; at most IS_ENVELOPE_MAX_ITEMS map entries and
 * array elements. Trailing bytes after the value are an error.
 *
 * On success returns 0 and *itemsp is the number of map entries and array
 * elements (for sizing avro-c's memory budget). On failure returns -1 with
 * "<field path>: <problem> (at byte N)" in errstr, N counted from msg.
 *
 * Thread-safe: no state.
 */
#ifndef IS_AVRO_WALK_H
#define IS_AVRO_WALK_H

#include <stddef.h>

#include <avro.h>

int is_avro_walk(const unsigned char *msg, const unsigned char *p, const unsigned char *end,
                 avro_schema_t s, size_t *itemsp, char *errstr, size_t errstr_size);

#endif
