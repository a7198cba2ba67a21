/*
 * test_api.c - the pure parts of `imgsink api`: the keys file and the
 * content types it accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "check.h"

#define H64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_keys(void **state)
{
    (void)state;
    char **t = NULL, err[256];
    unsigned char(*h)[32] = NULL;
    int n = is_api_parse_keys("# comment\n\nacme " H64 "\n  globex\t" H64 "  # two keys\n", &t, &h,
                              err, sizeof(err));
    assert_int_equal(n, 2);
    assert_string_equal(t[0], "acme");
    assert_string_equal(t[1], "globex");
    assert_int_equal(h[0][0], 0xe3);
    assert_int_equal(h[1][31], 0x55);
    for (int i = 0; i < n; i++)
        free(t[i]);
    free(t);
    free(h);
    assert_int_equal(is_api_parse_keys("", &t, &h, err, sizeof(err)), 0);
    free(t);
    free(h);
}

static void test_keys_hostile(void **state)
{
    (void)state;
    const char *bad[] = {
        "acme\n",
        "acme e3b0\n",
        "acme " H64 " extra\n",
        "../x " H64 "\n",
        ".hidden " H64 "\n",
        "acme zzb0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
        "ok " H64 "\nacme/x " H64 "\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char **t = NULL, err[256] = "";
        unsigned char(*h)[32] = NULL;
        assert_int_equal(is_api_parse_keys(bad[i], &t, &h, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "line "));
    }
    char *longline = malloc(5000);
    memset(longline, 'a', 4999);
    longline[4999] = '\0';
    char **t = NULL, err[256] = "";
    unsigned char(*h)[32] = NULL;
    assert_int_equal(is_api_parse_keys(longline, &t, &h, err, sizeof(err)), -1);
    free(longline);
}

static void test_formats(void **state)
{
    (void)state;
    assert_string_equal(is_api_format_of("image/jpeg"), "jpeg");
    assert_string_equal(is_api_format_of("IMAGE/PNG"), "png");
    assert_string_equal(is_api_format_of("image/avif"), "heif");
    assert_null(is_api_format_of("image/svg+xml"));
    assert_null(is_api_format_of("text/plain"));
    assert_null(is_api_format_of(""));
    assert_null(is_api_format_of(NULL));
}

#define NS  "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
#define END "</LifecycleConfiguration>"
#define TAGGED                                                                                     \
    "<Rule><ID>t</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key><Value>7d</Value>"   \
    "</Tag></Filter><Expiration><Days>7</Days></Expiration></Rule>"
#define RAW(prefix, status)                                                                        \
    "<Rule><ID>raw</ID><Status>" status "</Status><Filter><Prefix>" prefix "</Prefix></Filter>"    \
    "<Expiration><Days>2</Days></Expiration></Rule>"

/* deploy/minio/lifecycle-api.json as MinIO returns it, and what is not enough. */
static void test_raw_lifecycle(void **state)
{
    (void)state;
    char d[512];
    const char *good = NS TAGGED RAW("raw/", "Enabled") END;
    assert_int_equal(is_check_lifecycle_raw(good, strlen(good), "raw/", d, sizeof(d)), 1);
    assert_non_null(strstr(d, "after 2 days"));
    const char *all = NS RAW("", "Enabled") END;
    assert_int_equal(is_check_lifecycle_raw(all, strlen(all), "raw/", d, sizeof(d)), 1);
    const char *bad[] = {
        NS TAGGED END,                   /* tagged only: raw uploads have no tag */
        NS RAW("other/", "Enabled") END, /* another prefix */
        NS RAW("raw/", "Disabled") END,  /* disabled */
        NS END,                          /* no rules */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(is_check_lifecycle_raw(bad[i], strlen(bad[i]), "raw/", d, sizeof(d)), 0);
    assert_int_equal(is_check_lifecycle_raw("<x/>", 4, "raw/", d, sizeof(d)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keys_hostile),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_raw_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
