/*
 * dlq.h - the dead-letter topic.
 *
 * A record that can never succeed is produced to dlq.topic with its original
 * key, value and headers, plus headers saying why:
 *   imgsink.error.class      envelope | record | image | claim-check | store
 *   imgsink.error.message    the reason, as logged
 *   imgsink.source.topic / .partition / .offset
 *   imgsink.worker.version, imgsink.time (RFC 3339, UTC)
 * is_dlq_send returns only once the broker acknowledged the record (acks=all,
 * idempotent producer), so the caller may then store the source offset.
 */
#ifndef IS_DLQ_H
#define IS_DLQ_H

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef struct is_dlq is_dlq_t;

is_dlq_t *is_dlq_new(const is_config_t *cfg, char *errstr, size_t errstr_size);
void is_dlq_destroy(is_dlq_t *dlq);

/* Produces the dead letter for rkm and waits for its delivery report.
 * Returns 0 when acknowledged, -1 with errstr when not (the caller retries).
 * Thread-safe: job threads call it concurrently. */
int is_dlq_send(is_dlq_t *dlq, const rd_kafka_message_t *rkm, const char *klass, const char *reason,
                char *errstr, size_t errstr_size);

#endif
