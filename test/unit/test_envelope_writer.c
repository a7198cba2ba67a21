/*
 * Unit tests for is_envelope_decode_writer() (connector/envelope.c):
 * Confluent records decoded with a Schema Registry's writer schema and
 * resolved against the bundled ImageRecord schema.
 *
 * Writer schemas are the bundled one with fields appended, as a producer
 * evolving under BACKWARD compatibility does; their records are the bundled
 * encoding (is_envelope_encode) with the new fields' bytes appended, which
 * is exactly Avro's encoding of the longer record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define MAXREC ((size_t)8 << 20)

/* The bundled schema with EXTRA (JSON field objects, comma-separated)
 * appended to its fields. */
static avro_schema_t schema_with(const char *extra)
{
    const char *base = is_envelope_schema_json();
    const char *end = strrchr(base, ']'); /* closes "fields" */
    char *json;
    avro_schema_t s = NULL;

    assert_non_null(end);
    assert_non_null(json = malloc(strlen(base) + strlen(extra) + 8));
    sprintf(json, "%.*s, %s%s", (int)(end - base), base, extra, end);
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &s), 0);
    free(json);
    return s;
}

/* A Confluent record with schema id 7: the bundled encoding of one inline
 * record plus TAIL (TAIL_LEN bytes). */
static unsigned char *message(const char *id, const void *tail, size_t tail_len, size_t *lenp)
{
    is_record_t rec = {0};
    unsigned char payload[] = {0xff, 0xd8, 0xff, 0xe0};
    void *buf = NULL;
    size_t len = 0;
    unsigned char *out;
    char err[256];

    rec.id = (char *)id;
    rec.tenant = "acme";
    rec.source = "stream";
    rec.content_type = "image/jpeg";
    rec.filename = "a.jpg";
    rec.uploaded_at_ms = 1767225600000;
    rec.retention_days = 7;
    rec.payload = payload;
    rec.payload_len = sizeof(payload);
    assert_int_equal(is_envelope_encode(&rec, 7, &buf, &len, err, sizeof(err)), 0);
    assert_non_null(out = malloc(len + tail_len));
    memcpy(out, buf, len);
    memcpy(out + len, tail, tail_len);
    free(buf);
    *lenp = len + tail_len;
    return out;
}

static void test_added_optional_field(void **state)
{
    avro_schema_t w = schema_with("{\"name\": \"camera\", \"type\": [\"null\", \"string\"], "
                                  "\"default\": null}");
    /* union branch 1 (zigzag 2), string "nikon" (length 5 -> 10) */
    const unsigned char tail[] = {2, 10, 'n', 'i', 'k', 'o', 'n'};
    size_t len;
    unsigned char *msg = message("v2-a", tail, sizeof(tail), &len);
    is_record_t *rec = NULL;
    char err[512] = "";

    (void)state;
    assert_int_equal(is_envelope_decode_writer(msg, len, MAXREC, w, &rec, err, sizeof(err)), 0);
    assert_non_null(rec);
    assert_string_equal(rec->id, "v2-a");
    assert_string_equal(rec->tenant, "acme");
    assert_int_equal(rec->schema_id, 7);
    assert_int_equal(rec->payload_len, 4);
    is_record_destroy(rec);
    free(msg);

    /* The new field null (branch 0). */
    const unsigned char tail0[] = {0};
    msg = message("v2-b", tail0, sizeof(tail0), &len);
    assert_int_equal(is_envelope_decode_writer(msg, len, MAXREC, w, &rec, err, sizeof(err)), 0);
    assert_string_equal(rec->id, "v2-b");
    is_record_destroy(rec);
    free(msg);
    avro_schema_decref(w);
}

static void test_hostile_bytes_for_writer(void **state)
{
    avro_schema_t w = schema_with("{\"name\": \"camera\", \"type\": [\"null\", \"string\"], "
                                  "\"default\": null}");
    is_record_t *rec = NULL;
    char err[512] = "";
    size_t len;
    unsigned char *msg;

    (void)state;
    /* The new string declares 2^40 bytes. */
    const unsigned char huge[] = {2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    msg = message("h", huge, sizeof(huge), &len);
    assert_int_equal(is_envelope_decode_writer(msg, len, MAXREC, w, &rec, err, sizeof(err)), -1);
    assert_null(rec);
    assert_non_null(strstr(err, "camera"));
    free(msg);
    /* A union branch the writer does not have. */
    const unsigned char branch[] = {4};
    msg = message("h", branch, sizeof(branch), &len);
    assert_int_equal(is_envelope_decode_writer(msg, len, MAXREC, w, &rec, err, sizeof(err)), -1);
    free(msg);
    /* The v1 bytes alone: the writer's field is missing (truncated). */
    msg = message("h", "", 0, &len);
    assert_int_equal(is_envelope_decode_writer(msg, len, MAXREC, w, &rec, err, sizeof(err)), -1);
    free(msg);
    avro_schema_decref(w);
}

static void test_unresolvable_writer(void **state)
{
    avro_schema_t w = NULL;
    const char *other = "{\"type\": \"record\", \"name\": \"Other\", \"fields\": "
                        "[{\"name\": \"x\", \"type\": \"int\"}]}";
    unsigned char msg[] = {0, 0, 0, 0, 9, 2};
    is_record_t *rec = NULL;
    char err[512] = "";

    (void)state;
    assert_int_equal(avro_schema_from_json_length(other, strlen(other), &w), 0);
    assert_int_equal(is_envelope_decode_writer(msg, sizeof(msg), MAXREC, w, &rec, err, sizeof(err)),
                     -1);
    assert_null(rec);
    assert_non_null(strstr(err, "cannot be resolved against ImageRecord"));
    assert_non_null(strstr(err, "schema id 9"));
    avro_schema_decref(w);
}

static void test_not_confluent_or_too_large(void **state)
{
    avro_schema_t w = schema_with("{\"name\": \"c\", \"type\": \"int\", \"default\": 0}");
    unsigned char plain[] = {2, 'a', 0, 0, 0, 0};
    is_record_t *rec = NULL;
    char err[512] = "";
    size_t len;
    unsigned char *msg;

    (void)state;
    assert_int_equal(
        is_envelope_decode_writer(plain, sizeof(plain), MAXREC, w, &rec, err, sizeof(err)), -1);
    assert_string_equal(err, "not a Confluent record");
    msg = message("big", "\x02", 1, &len);
    assert_int_equal(is_envelope_decode_writer(msg, len, 16, w, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds the limit of 16"));
    free(msg);
    avro_schema_decref(w);
}

static int setup(void **state)
{
    char err[256];
    (void)state;
    if (is_envelope_global_init(err, sizeof(err))) {
        fprintf(stderr, "is_envelope_global_init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    is_envelope_global_term();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_optional_field),
        cmocka_unit_test(test_hostile_bytes_for_writer),
        cmocka_unit_test(test_unresolvable_writer),
        cmocka_unit_test(test_not_confluent_or_too_large),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
