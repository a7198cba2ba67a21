/*
 * envelope: decode and encode ImageRecord messages (see envelope.h).
 *
 * Decoding one message:
 *   1. size limit and envelope header (magic byte, schema id);
 *   2. is_avro_walk() (avro_walk.c): a pass over the Avro binary driven by the writer
 *      schema that checks every length, count, enum index, union branch and
 *      string before anything is allocated;
 *   3. avro_value_read() into a generic value, under a per-call memory
 *      budget enforced by envelope_alloc();
 *   4. copy into an is_record_t (plain malloc, independent of avro-c and of
 *      the message buffer) and check the field rules.
 *
 * Why step 2 exists: avro-c trusts the input. Its binary reader
 * (encoding_binary.c read_bytes/read_string) allocates len + 1 bytes for a
 * declared length before checking that the input holds them, casts
 * negative lengths to huge sizes, and leaks the buffer when the following
 * read fails. Several of its allocation-failure paths dereference NULL
 * (map.c avro_raw_map_get_or_create, avro_strdup) or free an interior
 * pointer (generic.c avro_generic_value_new). So input must never reach
 * avro-c unless it is known to decode, and the budget is a safety net that
 * valid input cannot reach, not a way to reject input.
 */
#include "envelope.h"
#include "avro_walk.h"
#include "keys.h"

#include <avro.h>

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kept identical to schemas/image_record.avsc (a unit test compares the
 * two). avro-c 1.11.1 ignores "doc", "default" and "logicalType" when it
 * parses a schema; they are here for the Schema Registry and for readers
 * in other languages. */
/* clang-format off */
static const char envelope_schema_json[] =
    "{\n"
    "  \"type\": \"record\",\n"
    "  \"name\": \"ImageRecord\",\n"
    "  \"namespace\": \"io.imgsink\",\n"
    "  \"doc\": \"One image to process: metadata plus the image itself, inline or by reference (claim check).\",\n"
    "  \"fields\": [\n"
    "    {\n"
    "      \"name\": \"id\",\n"
    "      \"type\": \"string\",\n"
    "      \"doc\": \"Image id, also the Kafka key. Part of object keys: 1-128 characters from A-Z a-z 0-9 . _ -, not starting with '.'.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"tenant\",\n"
    "      \"type\": \"string\",\n"
    "      \"doc\": \"Tenant that owns the image; first path segment of object keys, same character rules as id.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"source\",\n"
    "      \"type\": {\n"
    "        \"type\": \"enum\",\n"
    "        \"name\": \"Source\",\n"
    "        \"doc\": \"How the image entered the system.\",\n"
    "        \"symbols\": [\"stream\", \"api\"]\n"
    "      },\n"
    "      \"doc\": \"stream: published to Kafka by a producer; api: uploaded through the HTTP API.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"uploaded_at\",\n"
    "      \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"},\n"
    "      \"doc\": \"Upload time in milliseconds since the Unix epoch (UTC); gives the date part of object keys.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"content_type\",\n"
    "      \"type\": \"string\",\n"
    "      \"doc\": \"MIME type declared by the producer, e.g. image/jpeg. Informational: the image format is detected from its bytes.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"filename\",\n"
    "      \"type\": \"string\",\n"
    "      \"doc\": \"Original file name as given by the uploader (UTF-8, may be empty). Never used in object keys.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"attributes\",\n"
    "      \"type\": {\"type\": \"map\", \"values\": \"string\"},\n"
    "      \"default\": {},\n"
    "      \"doc\": \"Free-form producer metadata, copied into the metadata document.\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"retention_days\",\n"
    "      \"type\": \"int\",\n"
    "      \"default\": 7,\n"
    "      \"doc\": \"Days to keep the outputs before the store expires them (1-3650).\"\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"payload\",\n"
    "      \"type\": [\n"
    "        \"bytes\",\n"
    "        {\n"
    "          \"type\": \"record\",\n"
    "          \"name\": \"ObjectRef\",\n"
    "          \"doc\": \"Claim check: the image lives in an object store.\",\n"
    "          \"fields\": [\n"
    "            {\"name\": \"bucket\", \"type\": \"string\", \"doc\": \"Bucket holding the image.\"},\n"
    "            {\"name\": \"key\", \"type\": \"string\", \"doc\": \"Object key of the image.\"},\n"
    "            {\"name\": \"version_id\", \"type\": [\"null\", \"string\"], \"default\": null, \"doc\": \"Object version to read; null for the current version.\"},\n"
    "            {\"name\": \"size\", \"type\": \"long\", \"doc\": \"Object size in bytes, checked against the fetched object.\"},\n"
    "            {\"name\": \"sha256\", \"type\": [\"null\", \"string\"], \"default\": null, \"doc\": \"Hex SHA-256 of the object, if the producer computed it.\"}\n"
    "          ]\n"
    "        }\n"
    "      ],\n"
    "      \"doc\": \"The image: inline bytes, or an ObjectRef for images too large for a Kafka message.\"\n"
    "    }\n"
    "  ]\n"
    "}\n";
/* clang-format on */

#define ENVELOPE_CONFLUENT_HDR   5
#define ENVELOPE_BUDGET_BASE     ((size_t)64 * 1024)
#define ENVELOPE_BUDGET_PER_ITEM ((size_t)256) /* measured ~130 per map entry */

/* Written by is_envelope_global_init() before any thread starts, read-only
 * afterwards: no locking needed. avro-c's schema and value-interface
 * reference counts are atomic and decoding only reads the schema, so one
 * interface serves all threads. */
static avro_schema_t envelope_schema;
static avro_value_iface_t *envelope_iface;

/*
 * Memory budget.
 *
 * avro_set_allocator() is process-wide, so envelope_alloc() serves every
 * avro-c allocation of every thread. Only while the calling thread is inside
 * avro_value_read() for is_envelope_decode() does tl_budget point at that
 * call's budget; otherwise envelope_alloc() is exactly realloc/free, like
 * avro-c's default allocator.
 *
 * Accounting uses avro-c's osize argument. In avro-c 1.11.1 it matches the
 * allocated size on every free and realloc the decoder makes (checked with
 * a size-tracking allocator over encode/decode of this schema); the one
 * known mismatch is on avro_generic_value_new()'s failure path, which
 * envelope avoids by creating values outside the budget. Memory allocated
 * before the budget started and freed during it is not credited.
 */
struct envelope_budget {
    size_t limit; /* bytes avro-c may hold at once */
    size_t live;  /* bytes held now, allocated during this call */
    size_t peak;
    int exceeded; /* a request was refused */
};

static _Thread_local struct envelope_budget *tl_budget;
static _Thread_local size_t tl_last_peak;

static void *envelope_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct envelope_budget *b = tl_budget;
    size_t old = ptr ? osize : 0, base;
    void *np;

    (void)ud;
    if (nsize == 0) {
        free(ptr);
        if (b)
            b->live -= old < b->live ? old : b->live;
        return NULL;
    }
    /* Invariant: live <= limit. base is what stays held if the
     * request succeeds, not counting ptr's old block. */
    base = b ? b->live - (old < b->live ? old : b->live) : 0;
    if (b && nsize > b->limit - base) {
        b->exceeded = 1;
        return NULL; /* like realloc: ptr stays valid */
    }
    np = realloc(ptr, nsize);
    if (np && b) {
        b->live = base + nsize;
        if (b->live > b->peak)
            b->peak = b->live;
    }
    return np;
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* The writer schema of a message without a registry's: plain Avro
 * (schema_id < 0) is written with the bundled schema, and so are Confluent
 * records assumed to be. With a registry, is_envelope_decode_writer()
 * passes the fetched schema to decode_as() instead. avro-c 1.11.1 ignores
 * field defaults, so a reader field missing from the writer schema cannot
 * be filled in. */
static avro_schema_t envelope_writer_schema(int schema_id)
{
    (void)schema_id;
    return envelope_schema;
}

/* Copies an Avro string out of a value; avro-c's size includes the NUL. */
static int copy_string(avro_value_t *v, char **out)
{
    const char *s = NULL;
    size_t size = 0;

    if (avro_value_get_string(v, &s, &size))
        return -1;
    if (!s || size == 0)
        return (*out = strdup("")) ? 0 : -1;
    if (!(*out = malloc(size)))
        return -1;
    memcpy(*out, s, size - 1);
    (*out)[size - 1] = '\0';
    return 0;
}

static int copy_field(avro_value_t *rec, const char *name, char **out)
{
    avro_value_t f;

    if (avro_value_get_by_name(rec, name, &f, NULL))
        return -1;
    return copy_string(&f, out);
}

/* Optional string: union ["null", "string"]; NULL for the null branch. */
static int copy_nullable(avro_value_t *rec, const char *name, char **out)
{
    avro_value_t f, branch;
    int disc;

    if (avro_value_get_by_name(rec, name, &f, NULL) || avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, &branch))
        return -1;
    if (disc == 0) {
        *out = NULL;
        return 0;
    }
    return copy_string(&branch, out);
}

/* Copies the generic value into a new record. -1 only on out of memory or
 * a value that does not match the bundled schema (a bug). */
static int record_from_value(avro_value_t *v, is_record_t *rec)
{
    avro_value_t f, branch, child;
    const char *sym;
    size_t i, n;
    int idx, disc;

    if (copy_field(v, "id", &rec->id) || copy_field(v, "tenant", &rec->tenant) ||
        copy_field(v, "content_type", &rec->content_type) ||
        copy_field(v, "filename", &rec->filename))
        return -1;

    /* avro-c stores any enum index it reads, and avro_schema_enum_get()
     * returns uninitialised stack memory for one out of range: the walk
     * has checked it, this is belt and braces. */
    if (avro_value_get_by_name(v, "source", &f, NULL) || avro_value_get_enum(&f, &idx) || idx < 0 ||
        idx >= avro_schema_enum_number_of_symbols(avro_value_get_schema(&f)) ||
        !(sym = avro_schema_enum_get(avro_value_get_schema(&f), idx)) ||
        !(rec->source = strdup(sym)))
        return -1;

    if (avro_value_get_by_name(v, "uploaded_at", &f, NULL) ||
        avro_value_get_long(&f, &rec->uploaded_at_ms))
        return -1;
    if (avro_value_get_by_name(v, "retention_days", &f, NULL) ||
        avro_value_get_int(&f, &rec->retention_days))
        return -1;

    if (avro_value_get_by_name(v, "attributes", &f, NULL) || avro_value_get_size(&f, &n))
        return -1;
    if (n) {
        if (!(rec->attr_keys = calloc(n, sizeof(*rec->attr_keys))) ||
            !(rec->attr_values = calloc(n, sizeof(*rec->attr_values))))
            return -1;
        for (i = 0; i < n; i++) {
            const char *key = NULL;
            if (avro_value_get_by_index(&f, i, &child, &key) || !(rec->attr_keys[i] = strdup(key)))
                return -1;
            rec->nattrs = i + 1; /* destroy frees keys and values up to here */
            if (copy_string(&child, &rec->attr_values[i]))
                return -1;
        }
    }

    if (avro_value_get_by_name(v, "payload", &f, NULL) || avro_value_get_discriminant(&f, &disc) ||
        avro_value_get_current_branch(&f, &branch))
        return -1;
    if (disc == 0) {
        const void *bytes = NULL;
        size_t size = 0;
        if (avro_value_get_bytes(&branch, &bytes, &size))
            return -1;
        rec->payload_is_ref = 0;
        rec->payload_len = size;
        if (size) {
            if (!(rec->payload = malloc(size)))
                return -1;
            memcpy(rec->payload, bytes, size);
        }
    } else {
        rec->payload_is_ref = 1;
        if (copy_field(&branch, "bucket", &rec->ref.bucket) ||
            copy_field(&branch, "key", &rec->ref.key) ||
            copy_nullable(&branch, "version_id", &rec->ref.version_id) ||
            copy_nullable(&branch, "sha256", &rec->ref.sha256) ||
            avro_value_get_by_name(&branch, "size", &child, NULL) ||
            avro_value_get_long(&child, &rec->ref.size))
            return -1;
    }
    return 0;
}

/* The field rules beyond the schema (see envelope.h). */
static int record_validate(const is_record_t *rec, char *errstr, size_t errstr_size)
{
    /* id and tenant become path segments of object keys: the same rule
     * as the key builder, checked here so a bad one is an envelope
     * error naming the field. */
    if (is_keys_check_segment("id", rec->id, errstr, errstr_size) ||
        is_keys_check_segment("tenant", rec->tenant, errstr, errstr_size))
        return -1;
    if (rec->uploaded_at_ms < 0 || rec->uploaded_at_ms > IS_ENVELOPE_UPLOADED_AT_MAX_MS) {
        snprintf(errstr, errstr_size, "uploaded_at %" PRId64 " out of range 0..%" PRId64,
                 rec->uploaded_at_ms, IS_ENVELOPE_UPLOADED_AT_MAX_MS);
        return -1;
    }
    if (rec->retention_days < IS_ENVELOPE_RETENTION_MIN ||
        rec->retention_days > IS_ENVELOPE_RETENTION_MAX) {
        snprintf(errstr, errstr_size, "retention_days %" PRId32 " out of range %d..%d",
                 rec->retention_days, IS_ENVELOPE_RETENTION_MIN, IS_ENVELOPE_RETENTION_MAX);
        return -1;
    }
    if (!rec->payload_is_ref && rec->payload_len == 0) {
        snprintf(errstr, errstr_size, "payload: inline bytes are empty");
        return -1;
    }
    if (rec->payload_is_ref) {
        if (!rec->ref.bucket[0] || !rec->ref.key[0]) {
            snprintf(errstr, errstr_size, "payload.%s is empty",
                     rec->ref.bucket[0] ? "key" : "bucket");
            return -1;
        }
        if (rec->ref.size <= 0) {
            snprintf(errstr, errstr_size, "payload.size %" PRId64 " must be positive",
                     rec->ref.size);
            return -1;
        }
    }
    return 0;
}

/* Decodes msg as one envelope kind (confluent or plain Avro) after the
 * common checks of is_envelope_decode(). On failure returns -1, fills why
 * (prefixed with the kind, e.g. "plain Avro: id is empty") and sets
 * *well_formed when the Avro binary itself decoded and only a field rule
 * failed: then the bytes are certainly of this kind. */
static int decode_as(const unsigned char *msg, size_t len, int confluent, avro_schema_t writer,
                     is_record_t **recp, char *errstr, size_t errstr_size, int *well_formed)
{
    avro_value_iface_t *rw_iface = NULL;
    avro_value_t rw;
    int have_rw = 0;
    const unsigned char *body;
    char kind[48], why[512];
    int schema_id = -1, have_value = 0, r = -1, rc;
    struct envelope_budget budget = {0};
    avro_reader_t reader = NULL;
    avro_value_t value;
    is_record_t *rec = NULL;
    size_t items = 0;

    why[0] = '\0';
    *well_formed = 0;
    if (confluent) {
        uint32_t id;
        if (len < ENVELOPE_CONFLUENT_HDR) {
            snprintf(errstr, errstr_size, "Confluent: truncated header: %zu bytes, need %d", len,
                     ENVELOPE_CONFLUENT_HDR);
            return -1;
        }
        id = (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 | msg[4];
        if (id > INT_MAX) {
            snprintf(errstr, errstr_size, "Confluent: schema id %" PRIu32 " out of range", id);
            return -1;
        }
        schema_id = (int)id;
        body = msg + ENVELOPE_CONFLUENT_HDR;
        snprintf(kind, sizeof(kind), "Confluent schema id %d", schema_id);
    } else {
        body = msg;
        snprintf(kind, sizeof(kind), "plain Avro");
    }

    /* A registry's writer schema: avro-c's resolved writer reads the
     * writer's binary into a value of the bundled (reader) schema,
     * skipping fields the reader does not have. Resolved first, so a
     * schema of another record is reported as such. */
    if (writer && !(rw_iface = avro_resolved_writer_new(writer, envelope_schema))) {
        snprintf(why, sizeof(why), "writer schema cannot be resolved against ImageRecord: %.200s",
                 avro_strerror());
        goto done;
    }
    if (is_avro_walk(msg, body, msg + len, writer ? writer : envelope_writer_schema(schema_id),
                     &items, why, sizeof(why)))
        goto done;

    /* The value and the reader are created outside the budget: their
     * size does not depend on the input, and avro-c's cleanup after a
     * failed avro_generic_value_new() frees a wrong pointer. */
    if (avro_generic_value_new(envelope_iface, &value)) {
        snprintf(why, sizeof(why), "out of memory");
        goto done;
    }
    have_value = 1;
    if (writer) {
        if (avro_resolved_writer_new_value(rw_iface, &rw)) {
            snprintf(why, sizeof(why), "out of memory");
            goto done;
        }
        have_rw = 1;
        avro_resolved_writer_set_dest(&rw, &value);
    }
    if (!(reader = avro_reader_memory((const char *)body, (int64_t)(msg + len - body)))) {
        snprintf(why, sizeof(why), "out of memory");
        goto done;
    }

    budget.limit = sat_add(sat_add(ENVELOPE_BUDGET_BASE, sat_mul(len, 2)),
                           sat_mul(items, ENVELOPE_BUDGET_PER_ITEM));
    tl_budget = &budget;
    rc = avro_value_read(reader, have_rw ? &rw : &value);
    tl_budget = NULL;
    tl_last_peak = budget.peak;
    if (rc) {
        /* avro_strerror() is one process-wide buffer in Debian's
         * avro-c (built without THREADSAFE): another thread may
         * overwrite it, so it is only a hint. */
        if (budget.exceeded)
            snprintf(why, sizeof(why),
                     "decoding needs more than %zu bytes of memory "
                     "(budget for %zu bytes in, %zu map entries)",
                     budget.limit, len, items);
        else
            snprintf(why, sizeof(why), "avro-c: %.200s", avro_strerror());
        goto done;
    }

    if (!(rec = calloc(1, sizeof(*rec)))) {
        snprintf(why, sizeof(why), "out of memory");
        goto done;
    }
    rec->schema_id = schema_id;
    if (record_from_value(&value, rec)) {
        snprintf(why, sizeof(why), "cannot copy the decoded record (out of memory?)");
        goto done;
    }
    if (record_validate(rec, why, sizeof(why))) {
        *well_formed = 1;
        goto done;
    }
    r = 0;

done:
    if (reader)
        avro_reader_free(reader);
    if (have_rw)
        avro_value_decref(&rw);
    if (rw_iface)
        avro_value_iface_decref(rw_iface);
    if (have_value)
        avro_value_decref(&value);
    if (r) {
        is_record_destroy(rec);
        snprintf(errstr, errstr_size, "%s: %s", kind, why);
        return -1;
    }
    *recp = rec;
    return 0;
}

int is_envelope_decode(const void *buf, size_t len, is_envelope_format_t fmt,
                       size_t max_record_bytes, is_record_t **recp, char *errstr,
                       size_t errstr_size)
{
    const unsigned char *msg = buf;
    char as_confluent[600], as_plain[600];
    int conf_ok, plain_ok;

    tl_last_peak = 0;
    if (recp)
        *recp = NULL;
    if (!recp || (!buf && len)) {
        snprintf(errstr, errstr_size, "invalid arguments");
        return -1;
    }
    if (!envelope_iface) {
        snprintf(errstr, errstr_size, "is_envelope_global_init() was not called");
        return -1;
    }
    if (len == 0) {
        snprintf(errstr, errstr_size, "empty message");
        return -1;
    }
    if (len > max_record_bytes) {
        snprintf(errstr, errstr_size, "message is %zu bytes, exceeds the limit of %zu", len,
                 max_record_bytes);
        return -1;
    }

    switch (fmt) {
    case IS_ENVELOPE_AVRO:
        return decode_as(msg, len, 0, NULL, recp, errstr, errstr_size, &plain_ok);
    case IS_ENVELOPE_CONFLUENT:
        if (msg[0] != 0) {
            snprintf(errstr, errstr_size, "unknown magic byte 0x%02x", msg[0]);
            return -1;
        }
        return decode_as(msg, len, 1, NULL, recp, errstr, errstr_size, &conf_ok);
    case IS_ENVELOPE_AUTO:
        if (msg[0] != 0)
            return decode_as(msg, len, 0, NULL, recp, errstr, errstr_size, &plain_ok);
        break;
    default:
        snprintf(errstr, errstr_size, "unknown envelope format %d", (int)fmt);
        return -1;
    }

    /* AUTO with a leading 0x00: the Confluent magic byte, or a plain-Avro
     * record whose first field (id) is empty, since Avro writes the length
     * 0 as byte 0x00. No schema registry tells the two apart (schema ids
     * are not looked up yet), so both are tried. A record that decodes as
     * either is taken; otherwise the reason must name the real problem: a
     * plain-Avro parse that got as far as the field rules (e.g. "id is
     * empty") is what the producer sent, else both attempts are reported. */
    if (!decode_as(msg, len, 1, NULL, recp, as_confluent, sizeof(as_confluent), &conf_ok))
        return 0;
    size_t conf_peak = tl_last_peak;
    if (!decode_as(msg, len, 0, NULL, recp, as_plain, sizeof(as_plain), &plain_ok))
        return 0;
    if (plain_ok && !conf_ok) {
        snprintf(errstr, errstr_size, "%s (and not a Confluent record: %s)", as_plain,
                 as_confluent);
    } else {
        tl_last_peak = conf_peak;
        snprintf(errstr, errstr_size, "%s; as plain Avro: %s", as_confluent,
                 as_plain + strlen("plain Avro: "));
    }
    return -1;
}

int is_envelope_decode_writer(const void *buf, size_t len, size_t max_record_bytes,
                              avro_schema_t writer, is_record_t **recp, char *errstr,
                              size_t errstr_size)
{
    int well_formed;

    tl_last_peak = 0;
    if (recp)
        *recp = NULL;
    if (!recp || !buf || !writer || !envelope_iface) {
        snprintf(errstr, errstr_size, "invalid arguments");
        return -1;
    }
    if (len > max_record_bytes) {
        snprintf(errstr, errstr_size, "message is %zu bytes, exceeds the limit of %zu", len,
                 max_record_bytes);
        return -1;
    }
    if (len < ENVELOPE_CONFLUENT_HDR || ((const unsigned char *)buf)[0] != 0) {
        snprintf(errstr, errstr_size, "not a Confluent record");
        return -1;
    }
    return decode_as(buf, len, 1, writer, recp, errstr, errstr_size, &well_formed);
}

static int set_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    return avro_value_get_by_name(rec, name, &f, NULL) || avro_value_set_string(&f, s) ? -1 : 0;
}

static int set_nullable(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f, branch;

    if (avro_value_get_by_name(rec, name, &f, NULL) ||
        avro_value_set_branch(&f, s ? 1 : 0, &branch))
        return -1;
    return s ? avro_value_set_string(&branch, s) : avro_value_set_null(&branch);
}

/* What Avro itself needs from a record; names the first problem. */
static const char *record_unencodable(const is_record_t *rec)
{
    size_t i;

    if (!rec->id || !rec->tenant || !rec->source || !rec->content_type || !rec->filename)
        return "id, tenant, source, content_type and filename must not be NULL";
    if (strcmp(rec->source, "stream") && strcmp(rec->source, "api"))
        return "source must be \"stream\" or \"api\"";
    if (rec->nattrs && (!rec->attr_keys || !rec->attr_values))
        return "nattrs > 0 but attr_keys or attr_values is NULL";
    for (i = 0; i < rec->nattrs; i++)
        if (!rec->attr_keys[i] || !rec->attr_values[i])
            return "NULL attribute key or value";
    if (!rec->payload_is_ref && rec->payload_len && !rec->payload)
        return "payload_len > 0 but payload is NULL";
    if (rec->payload_is_ref && (!rec->ref.bucket || !rec->ref.key))
        return "ref.bucket and ref.key must not be NULL";
    return NULL;
}

int is_envelope_encode(const is_record_t *rec, int schema_id, void **bufp, size_t *lenp,
                       char *errstr, size_t errstr_size)
{
    avro_value_t v, f, branch, child;
    avro_writer_t writer = NULL;
    unsigned char *out = NULL;
    size_t size = 0, hdr = schema_id < 0 ? 0 : ENVELOPE_CONFLUENT_HDR, i;
    int have_value = 0, r = -1;
    const char *bad;

    if (!rec || !bufp || !lenp) {
        snprintf(errstr, errstr_size, "invalid arguments");
        return -1;
    }
    *bufp = NULL;
    *lenp = 0;
    if (!envelope_iface) {
        snprintf(errstr, errstr_size, "is_envelope_global_init() was not called");
        return -1;
    }
    if ((bad = record_unencodable(rec))) {
        snprintf(errstr, errstr_size, "cannot encode record: %s", bad);
        return -1;
    }
    if (avro_generic_value_new(envelope_iface, &v))
        goto done;
    have_value = 1;

    if (set_string(&v, "id", rec->id) || set_string(&v, "tenant", rec->tenant) ||
        set_string(&v, "content_type", rec->content_type) ||
        set_string(&v, "filename", rec->filename))
        goto done;
    if (avro_value_get_by_name(&v, "source", &f, NULL) ||
        avro_value_set_enum(&f, strcmp(rec->source, "stream") ? 1 : 0))
        goto done;
    if (avro_value_get_by_name(&v, "uploaded_at", &f, NULL) ||
        avro_value_set_long(&f, rec->uploaded_at_ms))
        goto done;
    if (avro_value_get_by_name(&v, "retention_days", &f, NULL) ||
        avro_value_set_int(&f, rec->retention_days))
        goto done;
    if (avro_value_get_by_name(&v, "attributes", &f, NULL))
        goto done;
    for (i = 0; i < rec->nattrs; i++)
        if (avro_value_add(&f, rec->attr_keys[i], &child, NULL, NULL) ||
            avro_value_set_string(&child, rec->attr_values[i]))
            goto done;
    if (avro_value_get_by_name(&v, "payload", &f, NULL) ||
        avro_value_set_branch(&f, rec->payload_is_ref ? 1 : 0, &branch))
        goto done;
    if (!rec->payload_is_ref) {
        /* avro-c memcpy's from the pointer even for length 0. */
        if (avro_value_set_bytes(&branch, rec->payload ? (void *)rec->payload : (void *)"",
                                 rec->payload_len))
            goto done;
    } else if (set_string(&branch, "bucket", rec->ref.bucket) ||
               set_string(&branch, "key", rec->ref.key) ||
               set_nullable(&branch, "version_id", rec->ref.version_id) ||
               set_nullable(&branch, "sha256", rec->ref.sha256) ||
               avro_value_get_by_name(&branch, "size", &child, NULL) ||
               avro_value_set_long(&child, rec->ref.size)) {
        goto done;
    }

    if (avro_value_sizeof(&v, &size) || !(out = malloc(hdr + size)))
        goto done;
    if (!(writer = avro_writer_memory((const char *)out + hdr, (int64_t)size)) ||
        avro_value_write(writer, &v))
        goto done;
    if (hdr) {
        uint32_t id = (uint32_t)schema_id;
        out[0] = 0;
        out[1] = (unsigned char)(id >> 24);
        out[2] = (unsigned char)(id >> 16);
        out[3] = (unsigned char)(id >> 8);
        out[4] = (unsigned char)id;
    }
    r = 0;

done:
    if (writer)
        avro_writer_free(writer);
    if (have_value)
        avro_value_decref(&v);
    if (r) {
        /* Only out of memory gets here; avro_strerror() may be
         * another thread's message (one global buffer). */
        snprintf(errstr, errstr_size, "cannot encode record: %.200s", avro_strerror());
        free(out);
        return -1;
    }
    *bufp = out;
    *lenp = hdr + size;
    return 0;
}

int is_envelope_global_init(char *errstr, size_t errstr_size)
{
    avro_schema_t schema = NULL;

    if (envelope_iface)
        return 0;
    avro_set_allocator(envelope_alloc, NULL);
    if (avro_schema_from_json_length(envelope_schema_json, sizeof(envelope_schema_json) - 1,
                                     &schema)) {
        snprintf(errstr, errstr_size, "bundled ImageRecord schema: %s", avro_strerror());
        return -1;
    }
    if (!(envelope_iface = avro_generic_class_from_schema(schema))) {
        snprintf(errstr, errstr_size, "bundled ImageRecord schema: %s", avro_strerror());
        avro_schema_decref(schema);
        return -1;
    }
    envelope_schema = schema;
    return 0;
}

void is_envelope_global_term(void)
{
    if (envelope_iface)
        avro_value_iface_decref(envelope_iface);
    if (envelope_schema)
        avro_schema_decref(envelope_schema);
    envelope_iface = NULL;
    envelope_schema = NULL;
}

const char *is_envelope_schema_json(void)
{
    return envelope_schema_json;
}

size_t is_envelope_last_decode_peak(void)
{
    return tl_last_peak;
}

void is_record_destroy(is_record_t *rec)
{
    size_t i;

    if (!rec)
        return;
    free(rec->id);
    free(rec->tenant);
    free(rec->source);
    free(rec->content_type);
    free(rec->filename);
    for (i = 0; i < rec->nattrs; i++) {
        free(rec->attr_keys[i]);
        free(rec->attr_values[i]);
    }
    free(rec->attr_keys);
    free(rec->attr_values);
    free(rec->payload);
    free(rec->ref.bucket);
    free(rec->ref.key);
    free(rec->ref.version_id);
    free(rec->ref.sha256);
    free(rec);
}
