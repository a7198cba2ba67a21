/*
 * dlq.h - the dead-letter topic.
 *
 * A record that can never succeed is produced to dlq.topic with its original
 * key, value and headers, plus headers saying why:
 *   imgsink.error.class      envelope | record | image | claim-check | store
 *   imgsink.error.message    the reason, as logged
 *   imgsink.source.topic / .partition / .offset
 *   imgsink.worker.version, imgsink.time (RFC 3339, UTC)
 * A record that already carries imgsink.* headers (a dead letter replayed
 * into an input topic by an operator) gets exactly one set of new ones: its
 * imgsink.* headers are kept renamed to imgsink.previous.* (those of the
 * dead letter before it), and imgsink.previous.* headers older than that
 * are dropped.
 *
 * A dead letter must always be deliverable, or its partition would stall
 * forever. One too large for the DLQ producer's message.max.bytes (less
 * headroom for the batch framing), or refused by the broker or topic as too
 * large, carries its value by reference instead: the caller stores the
 * original value in the object store (is_dlq_value_key) and sends the dead
 * letter again with an empty value and
 *   imgsink.dlq.value.ref     s3://bucket/key
 *   imgsink.dlq.value.size    original value size in bytes
 *   imgsink.dlq.value.sha256  hex SHA-256 of the original value
 * If even that is too large, the original headers are left out, then the
 * key (imgsink.dlq.dropped says which).
 *
 * is_dlq_send returns only once the broker acknowledged the record (acks=all,
 * idempotent producer), so the caller may then store the source offset.
 */
#ifndef IS_DLQ_H
#define IS_DLQ_H

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef struct is_dlq is_dlq_t;

/* Where the value of a dead letter was stored, when not carried inline. */
typedef struct is_dlq_ref {
    const char *bucket, *key;
    size_t size;
    const char *sha256; /* hex */
} is_dlq_ref_t;

/* is_dlq_send's answer when the dead letter is too large with its value
 * inline: store the value and send again with a reference. */
#define IS_DLQ_TOO_LARGE 1

is_dlq_t *is_dlq_new(const is_config_t *cfg, char *errstr, size_t errstr_size);
void is_dlq_destroy(is_dlq_t *dlq);

/* Produces the dead letter for rkm and waits for its delivery report. ref
 * NULL carries the value inline, else the reference replaces it.
 * Returns 0 when acknowledged; IS_DLQ_TOO_LARGE (ref NULL only) when the
 * producer or the broker refused its size, nothing produced; -1 with errstr
 * on any other failure (the caller retries).
 * Thread-safe: job threads call it concurrently. */
int is_dlq_send(is_dlq_t *dlq, const rd_kafka_message_t *rkm, const char *klass, const char *reason,
                const is_dlq_ref_t *ref, char *errstr, size_t errstr_size);

/* The object key for rkm's value: {prefix}dlq/{topic}/{partition}/{offset}.value,
 * deterministic, so a replayed dead letter overwrites its object. Under the
 * worker's output prefix (where it may PUT); never equal to an output key,
 * which has six segments after the prefix. Returns 0, or -1 if it does not
 * fit. */
int is_dlq_value_key(const char *prefix, const rd_kafka_message_t *rkm, char *out, size_t out_size);

#endif
