/*
 * envelope: ImageRecord messages from Kafka, in and out.
 *
 * A Kafka message value is either plain Avro binary written with the
 * bundled ImageRecord schema (schemas/image_record.avsc, compiled in), or
 * the Confluent Schema Registry wire format: magic byte 0, a 4-byte
 * big-endian schema id, then Avro binary.
 *
 * Schema Registry: is_envelope_decode() assumes the writer schema of a
 * Confluent record is the bundled (reader) schema and only reports the id
 * in is_record_t.schema_id. With a registry (registry.h), the worker
 * fetches the writer schema by id and calls is_envelope_decode_writer(),
 * which resolves it against the reader schema under the same bounds.
 *
 * Input is untrusted. Decoding is bounded three ways: the message size
 * (max_record_bytes), a validation pass over the Avro binary that checks
 * every declared length and count against the bytes that remain before
 * anything is allocated, and a per-call memory budget on avro-c's
 * allocator (64 KiB + 2 * message length + 256 bytes per map entry).
 * Every error message says what is wrong and where (field path and byte
 * offset in the message); they go into the dead-letter topic's reason
 * header.
 *
 * Threads: is_envelope_global_init()/_term() run on the main thread while
 * no other thread uses this module. Everything else may be called from any
 * number of threads at once.
 */
#ifndef IS_ENVELOPE_H
#define IS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

/* Limits enforced by is_envelope_decode(). id and tenant become path
 * segments of object keys and must pass is_keys_check_segment() (keys.h):
 * 1..128 characters from [A-Za-z0-9._-], not starting with '.'. */
#define IS_ENVELOPE_RETENTION_MIN 1
#define IS_ENVELOPE_RETENTION_MAX 3650
/* uploaded_at must lie in 1970-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z
 * so the key's date always has a four-digit year. */
#define IS_ENVELOPE_UPLOADED_AT_MAX_MS INT64_C(253402300799999)
/* Map entries (and array elements, for future writer schemas) per record.
 * Each costs ~130 bytes of avro-c memory for as little as 2 input bytes,
 * so their number is capped rather than left to the size limit. */
#define IS_ENVELOPE_MAX_ITEMS 4096

typedef struct is_objref {
    char *bucket, *key, *version_id, *sha256; /* version_id/sha256 may be NULL */
    int64_t size;
} is_objref_t;

/* One ImageRecord. A decoded record owns everything it points to (malloc'ed
 * copies, independent of the message buffer); free it with
 * is_record_destroy(). For is_envelope_encode() the caller owns it. */
typedef struct is_record {
    char *id, *tenant, *source, *content_type, *filename; /* source is "stream" or "api" */
    int64_t uploaded_at_ms;
    int32_t retention_days;
    /* Attributes in wire order. Avro maps cannot hold a key twice: when a
     * message repeats a key the last value wins and nattrs counts it once. */
    size_t nattrs;
    char **attr_keys;
    char **attr_values;
    int payload_is_ref;     /* 0: inline bytes, 1: ref */
    unsigned char *payload; /* inline case: owned copy, payload_len > 0 */
    size_t payload_len;
    is_objref_t ref; /* ref case */
    int schema_id;   /* -1 plain Avro, else the Schema Registry id read from the wire */
} is_record_t;

typedef enum {
    /* First byte not 0x00: plain Avro. 0x00: the Confluent magic byte, or
     * plain Avro with an empty id; both are tried, and an error names the
     * real problem (a well-formed plain record with a bad field is
     * reported as such, e.g. "plain Avro: id is empty (and not a Confluent
     * record: ...)"; otherwise both reasons). */
    IS_ENVELOPE_AUTO = 0,
    IS_ENVELOPE_AVRO,     /* plain Avro only */
    IS_ENVELOPE_CONFLUENT /* Confluent wire format only */
} is_envelope_format_t;

/* Parses the bundled schema and installs imgsink's allocator into avro-c.
 * Call once from main before any thread starts and before any other avro-c
 * use. avro-c's allocator is process-wide: imgsink's behaves exactly like
 * realloc/free except inside is_envelope_decode() on the calling thread.
 * Returns 0, or -1 with errstr filled. */
int is_envelope_global_init(char *errstr, size_t errstr_size);

/* Frees the parsed schema. Main thread, after all other threads have
 * stopped using this module. The allocator stays installed (it is a plain
 * realloc/free outside decoding), so avro-c objects made earlier can still
 * be freed. Safe to call without a successful init. */
void is_envelope_global_term(void);

/* The bundled ImageRecord schema as JSON (the text of
 * schemas/image_record.avsc), e.g. for registering it with a Schema
 * Registry. Static storage. */
const char *is_envelope_schema_json(void);

/* Decodes one Kafka message value.
 * Any thread. On success returns 0 and *recp owns a new record. On error
 * returns -1, sets *recp = NULL and fills errstr with the reason, e.g.
 * "plain Avro: payload: declared length 1099511627776 exceeds remaining 3
 * (at byte 41)".
 * Errors: empty message; len > max_record_bytes; unknown magic byte 0x%02x
 * (CONFLUENT); truncated Confluent header; negative or too large declared
 * lengths; truncated or over-long varints; int out of range; invalid enum
 * index or union branch; more than IS_ENVELOPE_MAX_ITEMS map entries; string
 * not UTF-8 or containing NUL; trailing bytes after the record; memory
 * budget exceeded; and the field checks: id and tenant (see above),
 * uploaded_at range, retention_days in 1..3650, inline payload non-empty,
 * ObjectRef bucket and key non-empty and size > 0. */
int is_envelope_decode(const void *buf, size_t len, is_envelope_format_t fmt,
                       size_t max_record_bytes, is_record_t **recp, char *errstr,
                       size_t errstr_size);

/* Decodes a Confluent wire-format message whose writer schema a Schema
 * Registry gave for its id (registry.h): the Avro binary is checked and
 * decoded with writer and resolved against the bundled reader schema
 * (avro-c's resolved writer), under the same bounds as is_envelope_decode().
 * Writer fields the reader lacks are skipped, so a producer may add
 * optional fields; avro-c 1.11.1 ignores defaults, so a writer without one
 * of the reader's fields cannot be resolved (an error naming it). Any
 * thread; same results as is_envelope_decode(). */
int is_envelope_decode_writer(const void *buf, size_t len, size_t max_record_bytes,
                              avro_schema_t writer, is_record_t **recp, char *errstr,
                              size_t errstr_size);

/* Encodes a record: schema_id < 0 gives plain Avro, otherwise the Confluent
 * wire format with that id. Any thread. On success *bufp is malloc'ed (the
 * caller frees it) and *lenp is its length. Only what Avro needs is checked
 * (non-NULL strings, source a known symbol, consistent attribute and
 * payload pointers), not the field rules of is_envelope_decode(), so that
 * `imgsink produce` and tests can also make records the worker rejects.
 * Attribute keys are C strings; a repeated key keeps its last value. */
int is_envelope_encode(const is_record_t *rec, int schema_id, void **bufp, size_t *lenp,
                       char *errstr, size_t errstr_size);

/* Peak bytes that avro-c held for the calling thread's most recent
 * is_envelope_decode(); 0 when that call failed before avro-c ran (the
 * validation pass rejects bad lengths without allocating). For metrics and
 * tests. */
size_t is_envelope_last_decode_peak(void);

/* Frees a record and everything it owns. NULL is fine. */
void is_record_destroy(is_record_t *rec);

#endif /* IS_ENVELOPE_H */
