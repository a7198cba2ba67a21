/*
 * events.h - the events topic: one ImageEvent per finished record.
 *
 * When events.topic is set, the worker produces one ImageEvent
 * (schemas/image_event.avsc, plain Avro binary) for every record it
 * finishes, written or dead-lettered, keyed by the image id (no key when the
 * envelope could not be decoded). The event is part of the record's
 * delivery: is_events_send returns only once the broker acknowledged it
 * (acks=all, idempotent producer), and only then is the record's offset
 * stored. A record processed again (a crash before its offset was
 * committed, a replay) produces its event again: consumers dedupe on
 * (kafka_topic, kafka_partition, kafka_offset).
 *
 * With schema.registry.url set, the schema is registered under the subject
 * {events.topic}-value (Confluent-compatible API) on the first event, and
 * every event is framed in the registry wire format: byte 0, the schema id
 * (4 bytes, big-endian), the Avro binary. Without it, plain Avro binary.
 * `imgsink analytics` reads both.
 *
 * The event never carries a location: only what metadata.json already
 * holds, plus the outcome, the error and the timings. Strings from the
 * record are reduced to printable ASCII, so every SQL engine reads them.
 */
#ifndef IS_EVENTS_H
#define IS_EVENTS_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "envelope.h"
#include "pipeline.h"

typedef struct is_events is_events_t;

/* What a job learned about its record, copied as it goes (the record and
 * the pipeline's result are freed before the event is sent). Zero it before
 * use. */
typedef struct is_event {
    int has_record; /* the envelope decoded */
    char id[129], tenant[129], source[16];
    int64_t uploaded_at_ms;
    int has_result; /* the pipeline ran to its end */
    char format[16], camera_make[64], camera_model[64], mean_color[8];
    int64_t bytes;
    int width, height, orientation, frames;
    uint64_t phash;
    int nout;
    struct {
        char name[32], format[8];
        int width, height;
        int64_t bytes;
    } out[IS_MAX_RENDITIONS];
} is_event_t;

void is_event_note_record(is_event_t *ev, const is_record_t *rec);
void is_event_note_result(is_event_t *ev, const is_result_t *res);

/* How the record ended, for the event. klass/reason: NULL when written. */
typedef struct is_event_end {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *klass, *reason;
    int64_t processed_at_ms;
    double processing_ms;
} is_event_end_t;

/* The ImageEvent schema (the text of schemas/image_event.avsc). */
const char *is_events_schema_json(void);

/* Encodes the event as plain Avro binary into *out (malloc'd, the caller
 * frees). Returns 0, or -1 with errstr. Thread-safe. */
int is_events_encode(const is_event_t *ev, const is_event_end_t *end, void **out, size_t *len,
                     char *errstr, size_t errstr_size);

/* Frames the Avro binary in *buf (malloc'd) in the registry wire format
 * with schema_id, replacing *buf and *len. Returns 0, or -1 with errstr
 * (*buf freed and NULL). */
int is_events_frame(int schema_id, void **buf, size_t *len, char *errstr, size_t errstr_size);

/* Checks events.topic: a topic name, not dlq.topic nor an input topic.
 * Returns 0, or -1 with "events.topic=VALUE: expected ..." in errstr. */
int is_events_check_topic(const is_config_t *cfg, char *errstr, size_t errstr_size);

/* The producer of events.topic. NULL with errstr on a bad kafka.* property
 * or schema. */
is_events_t *is_events_new(const is_config_t *cfg, char *errstr, size_t errstr_size);
void is_events_destroy(is_events_t *ev);

/* Produces the event and waits for its delivery report. Returns 0 when
 * acknowledged, -1 with errstr otherwise (the caller retries, never skips).
 * Thread-safe: job threads call it concurrently. */
int is_events_send(is_events_t *evs, const is_event_t *ev, const is_event_end_t *end, char *errstr,
                   size_t errstr_size);

#endif
