/*
 * test_s3event.c - S3 event records: MinIO's and AWS's shapes, several
 * records, non-create events, hostile JSON and keys outside the layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3event.h"

/* As MinIO 2025 publishes it (trimmed): key URL-encoded, top-level Key not. */
static const char minio[] =
    "{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"imgsink/raw/acme/2026/11/30/a b\","
    "\"Records\":[{\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\",\"eventName\":"
    "\"s3:ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"imgsink\"},\"object\":{\"key\":"
    "\"raw%2Facme%2F2026%2F11%2F30%2Fa+b\",\"size\":36613,\"eTag\":"
    "\"0f343b0931126a20f133d67c2b018a3b\",\"contentType\":\"image/jpeg\",\"sequencer\":"
    "\"187\"}}}]}";

static void test_minio(void **state)
{
    (void)state;
    is_s3event_t *e = NULL;
    char err[256];
    int n = is_s3event_parse(minio, strlen(minio), &e, err, sizeof(err));
    assert_int_equal(n, 1);
    assert_true(e[0].created);
    assert_string_equal(e[0].bucket, "imgsink");
    assert_string_equal(e[0].key, "raw/acme/2026/11/30/a b");
    assert_int_equal(e[0].size, 36613);
    assert_string_equal(e[0].etag, "0f343b0931126a20f133d67c2b018a3b");
    assert_string_equal(e[0].content_type, "image/jpeg");
    assert_null(e[0].version_id);
    is_s3event_free(e, n);
}

static void test_aws_several(void **state)
{
    (void)state;
    const char *j = "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
                    "{\"name\":\"b\"},\"object\":{\"key\":\"raw/t/2026/01/02/x\",\"size\":5,"
                    "\"versionId\":\"v1\"}}},{\"eventName\":\"ObjectRemoved:Delete\",\"s3\":{}},"
                    "{\"eventName\":\"ObjectCreated:CompleteMultipartUpload\",\"s3\":{\"bucket\":"
                    "{\"name\":\"b\"},\"object\":{\"key\":\"k\",\"size\":0}}}]}";
    is_s3event_t *e = NULL;
    char err[256];
    int n = is_s3event_parse(j, strlen(j), &e, err, sizeof(err));
    assert_int_equal(n, 3);
    assert_true(e[0].created);
    assert_string_equal(e[0].version_id, "v1");
    assert_false(e[1].created);
    assert_true(e[2].created);
    is_s3event_free(e, n);
}

static void test_hostile(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"Records\":[]}",
        "{\"Records\":{}}",
        "{\"Records\":[1]}",
        "{\"Records\":[{\"eventName\":7}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\"}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k\"}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k\",\"size\":-1}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k%00x\",\"size\":1}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k%4\",\"size\":1}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"\"},"
        "\"object\":{\"key\":\"k\",\"size\":1}}}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_s3event_t *e = (is_s3event_t *)1;
        char err[256] = "";
        assert_int_equal(is_s3event_parse(bad[i], strlen(bad[i]), &e, err, sizeof(err)), -1);
        assert_null(e);
        assert_non_null(strstr(err, "S3 event"));
    }
    /* More records than allowed. */
    char *big = malloc(200 * 32 + 64);
    strcpy(big, "{\"Records\":[");
    for (int i = 0; i < 101; i++)
        strcat(big, i ? ",{\"eventName\":\"x\"}" : "{\"eventName\":\"x\"}");
    strcat(big, "]}");
    is_s3event_t *e = NULL;
    char err[256];
    assert_int_equal(is_s3event_parse(big, strlen(big), &e, err, sizeof(err)), -1);
    free(big);
}

static void test_layout(void **state)
{
    (void)state;
    char t[129], id[129], err[512];
    int64_t day = 0;
    assert_int_equal(is_s3event_layout("raw/", "raw/acme/2026/11/30/20261130-ab", t, sizeof(t), id,
                                       sizeof(id), &day, err, sizeof(err)),
                     0);
    assert_string_equal(t, "acme");
    assert_string_equal(id, "20261130-ab");
    assert_int_equal(day, INT64_C(1795996800000));
    const char *bad[] = {
        "other/acme/2026/11/30/x", "raw/acme/2026/11/30",   "raw/acme/2026/11/30/x/y",
        "raw/acme/2026/13/30/x",   "raw/acme/2026/02/30/x", "raw/../2026/11/30/x",
        "raw/acme/26/11/30/x",     "raw//2026/11/30/x",     "raw/acme/2026/11/30/.x",
        "raw/acme/2026/11/30/a b", "raw/acme/2026/1a/30/x", "rawx/acme/2026/11/30/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            is_s3event_layout("raw/", bad[i], t, sizeof(t), id, sizeof(id), &day, err, sizeof(err)),
            -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minio),
        cmocka_unit_test(test_aws_several),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
