/*
 * s3event.h - S3 bucket notifications (the AWS S3 event JSON, which MinIO's
 * Kafka notification target publishes too) as input records of the worker.
 *
 *   {"EventName": "s3:ObjectCreated:Put", "Key": "bucket/raw/...",
 *    "Records": [{"eventName": "s3:ObjectCreated:Put" (MinIO) or
 *                 "ObjectCreated:Put" (AWS),
 *                 "s3": {"bucket": {"name": ...},
 *                        "object": {"key": URL-encoded, "size": N,
 *                                   "eTag": ..., "versionId": ...,
 *                                   "contentType": ... (MinIO)}}}]}
 *
 * Only Records[] is read (the top-level fields are MinIO's). The object key
 * is URL-encoded in the event ('+' for a space), and decoded here.
 *
 * Keys of the API path follow {api.raw.prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}
 * (api.c); is_s3event_layout reads tenant, date and id back and refuses
 * anything else.
 *
 * Thread-safe: no state.
 */
#ifndef IS_S3EVENT_H
#define IS_S3EVENT_H

#include <stddef.h>
#include <stdint.h>

#define IS_S3EVENT_MAX_RECORDS 100

typedef struct is_s3event {
    char *event_name;   /* "s3:ObjectCreated:Put", "ObjectRemoved:Delete", ... */
    char *bucket, *key; /* key decoded */
    char *etag, *version_id, *content_type; /* NULL when absent */
    int64_t size;                           /* -1 when absent */
    int created;                            /* an ObjectCreated:* event */
} is_s3event_t;

/* Parses one Kafka record value. Returns the number of records (1..max) in
 * *evs (free with is_s3event_free), or -1 with errstr saying what is wrong
 * ("not JSON: ...", "Records[2].s3.object.key: missing", ...). Created
 * events need bucket, key and size; others only their name. */
int is_s3event_parse(const void *buf, size_t len, is_s3event_t **evs, char *errstr,
                     size_t errstr_size);

void is_s3event_free(is_s3event_t *evs, int n);

/* Splits key = raw_prefix + "TENANT/YYYY/MM/DD/ID". tenant and id must pass
 * is_keys_check_segment, the date must be a real date. Returns 0 with
 * tenant, id and *day_ms (that date's midnight UTC), or -1 with errstr. */
int is_s3event_layout(const char *raw_prefix, const char *key, char *tenant, size_t tenant_size,
                      char *id, size_t id_size, int64_t *day_ms, char *errstr, size_t errstr_size);

#endif
