/*
 * metadata.h - the metadata.json document written beside the renditions.
 *
 * Schema: schemas/metadata.schema.json. Everything in it comes from the
 * record, its Kafka position and the image, never from a clock: a replay
 * rewrites metadata.json, like the renditions, with identical bytes. The
 * pipeline time is in the "record written" log line (processing_ms) and
 * the imgsink_processing_duration_seconds histogram instead.
 * GPS and other location never appear: only camera make and model are read
 * from EXIF. input.phash is the 64-bit dHash of processors/analyze.h as 16
 * hex digits; input.mean_color the mean sRGB colour as "#rrggbb".
 */
#ifndef IS_METADATA_H
#define IS_METADATA_H

#include <stdint.h>

#include "envelope.h"
#include "pipeline.h"

typedef struct is_metadata_src {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *source_sha256; /* hex SHA-256 of the image payload */
    /* Hex SHA-256 of each res->out[i], the digest its PUT sent (the worker
     * hashes a body once), or NULL: hashed here. */
    const char *const *rendition_sha256;
} is_metadata_src_t;

/* Returns a malloc'ed JSON document (caller frees) or NULL when out of
 * memory. keys[i] is the object key of res->out[i]. */
char *is_metadata_json(const is_record_t *rec, const is_result_t *res, char *const *keys,
                       const is_metadata_src_t *src);

#endif
