/*
 * test_events.c - ImageEvent encoding and the analytics file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <cmocka.h>
#include <jansson.h>

#include "analytics.h"
#include "analytics_agg.h"
#include "events.h"

/* The embedded schema is the one in schemas/, JSON document and all (avro-c
 * ignores doc, default and logicalType when comparing schemas). */
static void schema_matches_file(void **state)
{
    const char *dir = getenv("IMGSINK_SOURCE_DIR");
    char path[1024];
    json_error_t jerr;
    (void)state;
    snprintf(path, sizeof(path), "%s/schemas/image_event.avsc", dir ? dir : ".");
    json_t *a = json_load_file(path, 0, &jerr);
    if (!a)
        fail_msg("cannot read %s (run from the repository root or set IMGSINK_SOURCE_DIR)", path);
    json_t *b = json_loads(is_events_schema_json(), 0, &jerr);
    assert_non_null(b);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
}

static int decode(const void *buf, size_t len, avro_value_t *v)
{
    avro_schema_t s;
    avro_schema_from_json_length(is_events_schema_json(), strlen(is_events_schema_json()), &s);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_generic_value_new(iface, v);
    avro_reader_t rd = avro_reader_memory(buf, (int64_t)len);
    int rc = avro_value_read(rd, v);
    avro_reader_free(rd);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return rc;
}

static const char *str_field(avro_value_t *v, const char *name)
{
    avro_value_t f, b;
    const char *s = NULL;
    size_t n;
    if (avro_value_get_by_name(v, name, &f, NULL) || avro_value_get_current_branch(&f, &b))
        return NULL;
    if (avro_value_get_type(&b) == AVRO_NULL)
        return NULL;
    avro_value_get_string(&b, &s, &n);
    return s;
}

static void written_event(void **state)
{
    is_event_t ev = {0};
    is_record_t rec = {0};
    is_result_t res = {0};
    void *buf;
    size_t len;
    char err[256];
    avro_value_t v, f;
    int64_t l;
    (void)state;

    rec.id = "img-1";
    rec.tenant = "acme";
    rec.source = "stream";
    rec.uploaded_at_ms = 1700000000000;
    strcpy(res.format, "jpeg");
    res.width = 640;
    res.height = 480;
    res.pages = 1;
    /* EXIF strings are hostile: only printable ASCII reaches the event. */
    strcpy(res.camera_make, "Can\xffon\n");
    strcpy(res.camera_model, "  EOS 70D   ");
    res.phash = UINT64_C(0xfedcba9876543210);
    res.nout = 1;
    strcpy(res.out[0].name, "thumb");
    res.out[0].ext = "jpg";
    res.out[0].len = 1234;
    is_event_note_record(&ev, &rec);
    is_event_note_result(&ev, &res);
    is_event_end_t end = {"images", 3, 42, NULL, NULL, 1700000001000, 12.5};
    assert_int_equal(is_events_encode(&ev, &end, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(decode(buf, len, &v), 0);
    assert_string_equal(str_field(&v, "id"), "img-1");
    assert_string_equal(str_field(&v, "tenant"), "acme");
    assert_string_equal(str_field(&v, "camera_make"), "Can?on?");
    assert_string_equal(str_field(&v, "camera_model"), "EOS 70D");
    assert_null(str_field(&v, "error_class"));
    avro_value_get_by_name(&v, "kafka_offset", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 42);
    avro_value_get_by_name(&v, "renditions", &f, NULL);
    size_t nr;
    avro_value_get_size(&f, &nr);
    assert_int_equal(nr, 1);
    avro_value_decref(&v);
    free(buf);
}

/* An envelope that never decoded: no id, no tenant, but the error. */
static void dead_letter_without_record(void **state)
{
    is_event_t ev = {0};
    void *buf;
    size_t len;
    char err[256];
    avro_value_t v;
    (void)state;
    is_event_end_t end = {"images", 0, 7, "envelope", "bad \x01 magic", 1700000001000, 1.0};
    assert_int_equal(is_events_encode(&ev, &end, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(decode(buf, len, &v), 0);
    assert_null(str_field(&v, "id"));
    assert_string_equal(str_field(&v, "error_class"), "envelope");
    assert_string_equal(str_field(&v, "error_message"), "bad ? magic");
    avro_value_decref(&v);
    free(buf);
}

static void file_keys(void **state)
{
    char key[256];
    (void)state;
    /* 2024-02-29T23:59:59.999Z */
    assert_int_equal(is_analytics_key("analytics/", "img.events", 2, 1234, INT64_C(1709251199999),
                                      key, sizeof(key)),
                     0);
    assert_string_equal(key, "analytics/events/dt=2024-02-29/hour=23/img.events+2+1234.avro");
    assert_int_equal(is_analytics_key("a/", "t", 0, 0, 0, key, 10), -1);
}

/* The registry wire format: byte 0, the id big-endian, the Avro binary. */
static void framed_event(void **state)
{
    char err[256];
    void *buf = malloc(3);
    size_t len = 3;
    (void)state;
    memcpy(buf, "abc", 3);
    assert_int_equal(is_events_frame(0x01020304, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(buf,
                        "\0\x01\x02\x03\x04"
                        "abc",
                        8);
    free(buf);
}

/* Aggregates of three events (two written by acme, one dead letter): the
 * counts, bytes and quantiles, one row per group, no image id; and a
 * header metadata entry read back. */
static void aggregate_file(void **state)
{
    avro_schema_t schema;
    avro_value_iface_t *iface;
    char err[256], *data = NULL, *out = NULL, *meta = NULL;
    size_t sizes[3], dlen = 0, olen = 0;
    (void)state;

    assert_int_equal(avro_schema_from_json_length(is_events_schema_json(),
                                                  strlen(is_events_schema_json()), &schema),
                     0);
    iface = avro_generic_class_from_schema(schema);
    for (int i = 0; i < 3; i++) {
        is_event_t ev = {0};
        is_record_t rec = {.id = "x", .tenant = "acme", .source = "stream"};
        is_result_t res = {0};
        void *buf;
        strcpy(res.format, "jpeg");
        res.bytes = 1000;
        res.nout = 1;
        strcpy(res.out[0].name, "thumb");
        res.out[0].ext = "jpg";
        res.out[0].len = 100;
        is_event_note_record(&ev, &rec);
        is_event_note_result(&ev, &res);
        is_event_end_t end = {
            "images",      0, i, i == 2 ? "image" : NULL, i == 2 ? "bad" : NULL, 1700000000000,
            10.0 * (i + 1)};
        assert_int_equal(is_events_encode(&ev, &end, &buf, &sizes[i], err, sizeof(err)), 0);
        data = realloc(data, dlen + sizes[i]);
        memcpy(data + dlen, buf, sizes[i]);
        dlen += sizes[i];
        free(buf);
    }
    assert_int_equal(is_analytics_agg_encode(iface, data, sizes, 3, 1699999200000, "ev", 1, 5, &out,
                                             &olen, err, sizeof(err)),
                     0);
    FILE *fp = fmemopen(out, olen, "rb");
    avro_file_reader_t r;
    assert_int_equal(avro_file_reader_fp(fp, "agg", 1, &r), 0);
    avro_schema_t ws = avro_file_reader_get_writer_schema(r);
    avro_value_iface_t *wi = avro_generic_class_from_schema(ws);
    avro_value_t v, f;
    const char *str;
    size_t n;
    int64_t l;
    double d;
    assert_int_equal(avro_generic_value_new(wi, &v), 0);
    assert_int_equal(avro_value_get_by_name(&v, "id", &f, NULL) != 0, 1);
    /* sorted: dead_lettered before written */
    assert_int_equal(avro_file_reader_read_value(r, &v), 0);
    avro_value_get_by_name(&v, "outcome", &f, NULL);
    avro_value_get_string(&f, &str, &n);
    assert_string_equal(str, "dead_lettered");
    avro_value_get_by_name(&v, "output_bytes", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 0); /* a dead letter has no renditions */
    assert_int_equal(avro_file_reader_read_value(r, &v), 0);
    avro_value_get_by_name(&v, "outcome", &f, NULL);
    avro_value_get_string(&f, &str, &n);
    assert_string_equal(str, "written");
    avro_value_get_by_name(&v, "events", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 2);
    avro_value_get_by_name(&v, "source_bytes", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 2000);
    avro_value_get_by_name(&v, "output_bytes", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 200);
    avro_value_get_by_name(&v, "processing_ms_p50", &f, NULL);
    avro_value_get_double(&f, &d);
    assert_true(d == 10.0);
    avro_value_get_by_name(&v, "processing_ms_p99", &f, NULL);
    avro_value_get_double(&f, &d);
    assert_true(d == 20.0);
    avro_value_get_by_name(&v, "events_first_offset", &f, NULL);
    avro_value_get_long(&f, &l);
    assert_int_equal(l, 5);
    assert_int_not_equal(avro_file_reader_read_value(r, &v), 0); /* two rows */
    avro_value_decref(&v);
    avro_value_iface_decref(wi);
    avro_schema_decref(ws); /* avro_file_reader_get_writer_schema gives a reference */
    avro_file_reader_close(r);

    assert_int_equal(is_analytics_ocf_header(&out, &olen, is_analytics_agg_schema_json(),
                                             "imgsink.sources", "a\nb"),
                     0);
    assert_int_equal(is_analytics_ocf_meta(out, olen, "imgsink.sources", &meta), 0);
    assert_string_equal(meta, "a\nb");
    free(meta);
    assert_int_equal(is_analytics_ocf_meta(out, olen, "nothing", &meta), 0);
    assert_null(meta);
    assert_int_equal(is_analytics_ocf_meta("Obj\x01\x7f", 5, "x", &meta), -1); /* truncated */
    free(out);
    free(data);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
}

static void topic_checks(void **state)
{
    is_config_t *cfg = is_config_new();
    char err[512];
    (void)state;
    free(cfg->events_topic); /* the default, "" */
    cfg->events_topic = strdup("images");
    assert_int_equal(is_events_check_topic(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "input.topics"));
    free(cfg->events_topic);
    cfg->events_topic = strdup("bad/topic");
    assert_int_equal(is_events_check_topic(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "events.topic=bad/topic: expected"));
    free(cfg->events_topic);
    cfg->events_topic = strdup("images.events");
    assert_int_equal(is_events_check_topic(cfg, err, sizeof(err)), 0);
    is_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_matches_file),
        cmocka_unit_test(written_event),
        cmocka_unit_test(dead_letter_without_record),
        cmocka_unit_test(file_keys),
        cmocka_unit_test(topic_checks),
        cmocka_unit_test(framed_event),
        cmocka_unit_test(aggregate_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
