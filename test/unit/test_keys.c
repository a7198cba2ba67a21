/*
 * test_keys.c - object keys never escape their prefix; tags are encoded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"

/* 2024-02-29T23:59:59.999Z */
#define LEAP_MS INT64_C(1709251199999)

static void key_layout(void **state)
{
    char key[512], err[256];
    (void)state;
    assert_int_equal(is_keys_object("processed/", "acme", LEAP_MS, "img-001", "thumb", "jpg", key,
                                    sizeof(key), err, sizeof(err)),
                     0);
    assert_string_equal(key, "processed/acme/2024/02/29/img-001/thumb.jpg");
    assert_int_equal(is_keys_object("", "t", 0, "a.b_c-D9", "metadata", "json", key, sizeof(key),
                                    err, sizeof(err)),
                     0);
    assert_string_equal(key, "t/1970/01/01/a.b_c-D9/metadata.json");
}

static void rejects(const char *id, const char *why)
{
    char key[512], err[256] = "";
    assert_int_equal(is_keys_object("p/", "acme", LEAP_MS, id, "thumb", "jpg", key, sizeof(key),
                                    err, sizeof(err)),
                     -1);
    if (!strstr(err, why))
        fail_msg("id '%s': error '%s' does not mention '%s'", id, err, why);
}

static void unsafe_ids(void **state)
{
    char long_id[200];
    (void)state;
    rejects("../etc", "byte 0x2f");
    rejects("..", "starts with '.'");
    rejects(".hidden", "starts with '.'");
    rejects("a/b", "byte 0x2f");
    rejects("a\\b", "byte 0x5c");
    rejects("tab\there", "byte 0x09");
    rejects("nl\n", "byte 0x0a");
    rejects("del\x7f", "byte 0x7f");
    rejects("caf\xc3\xa9", "byte 0xc3");
    rejects("sp ace", "byte 0x20");
    rejects("q?x", "byte 0x3f");
    rejects("", "empty");
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    rejects(long_id, "at most 128");
    long_id[128] = '\0';
    char key[512], err[256];
    assert_int_equal(is_keys_object("p/", "acme", LEAP_MS, long_id, "thumb", "jpg", key,
                                    sizeof(key), err, sizeof(err)),
                     0);
}

static void unsafe_tenant(void **state)
{
    char key[512], err[256];
    (void)state;
    assert_int_equal(is_keys_object("p/", "../x", LEAP_MS, "id", "thumb", "jpg", key, sizeof(key),
                                    err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "tenant"));
}

static void key_too_long_for_buffer(void **state)
{
    char key[20], err[256];
    (void)state;
    assert_int_equal(is_keys_object("processed/", "acme", LEAP_MS, "id", "thumb", "jpg", key,
                                    sizeof(key), err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "longer than"));
}

static void tagging(void **state)
{
    char tag[128];
    (void)state;
    assert_int_equal(is_keys_tagging(7, "stream", tag, sizeof(tag)), 0);
    assert_string_equal(tag, "retention=7d&source=stream");
    assert_int_equal(is_keys_tagging(30, "api", tag, sizeof(tag)), 0);
    assert_string_equal(tag, "retention=30d&source=api");
    /* Values are percent-encoded so they cannot inject another tag. */
    assert_int_equal(is_keys_tagging(7, "a&retention=1d", tag, sizeof(tag)), 0);
    assert_string_equal(tag, "retention=7d&source=a%26retention%3D1d");
    assert_int_equal(is_keys_tagging(0, "api", tag, sizeof(tag)), -1);
    assert_int_equal(is_keys_tagging(7, "stream", tag, 10), -1);
}

static void urlencode(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(is_keys_urlencode("a b/c~d.e_f-g", out, sizeof(out)), 0);
    assert_string_equal(out, "a%20b%2Fc~d.e_f-g");
    assert_int_equal(is_keys_urlencode("\xc3\xa9", out, sizeof(out)), 0);
    assert_string_equal(out, "%C3%A9");
    assert_int_equal(is_keys_urlencode("abc", out, 3), -1);
}

static void retention_classes(void **state)
{
    int days[IS_KEYS_MAX_RETENTION_CLASSES], n = -1;
    char err[256];
    (void)state;
    assert_int_equal(is_keys_retention_classes("7", days, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(days[0], 7);
    assert_int_equal(is_keys_retention_classes(" 7, 30 ,3650", days, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(days[1], 30);
    assert_int_equal(days[2], 3650);
    const char *bad[] = {"",   "0",     "3651", "-7",   "+7", "7,",
                         ",7", "7,,30", "7d",   "7 30", "x",  "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!is_keys_retention_classes(bad[i], days, &n, err, sizeof(err)))
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "1..3650"));
    }
    assert_int_equal(is_keys_retention_classes("7,30,7", days, &n, err, sizeof(err)), -1);
    assert_string_equal(err, "7 is listed twice");
    assert_int_equal(is_keys_retention_classes("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", days,
                                               &n, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "more than 16"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_layout),        cmocka_unit_test(unsafe_ids),
        cmocka_unit_test(unsafe_tenant),     cmocka_unit_test(key_too_long_for_buffer),
        cmocka_unit_test(tagging),           cmocka_unit_test(urlencode),
        cmocka_unit_test(retention_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
