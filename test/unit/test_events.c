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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
