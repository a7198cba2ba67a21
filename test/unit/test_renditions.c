/*
 * test_renditions.c - the rendition spec: the old forms keep their meaning,
 * the options (fit, effort, animated, icc) parse, and mistakes are named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static void parses(void **state)
{
    is_rendition_t r[IS_MAX_RENDITIONS];
    int n = 0;
    char err[256];
    (void)state;
    assert_int_equal(is_config_parse_renditions("a=10x20/jpeg/80, b=30x40/webp/70/cover,"
                                                "c=50x60/webp/60/effort=4/animated,"
                                                "d=70x80/avif/50/attention/effort=9/icc",
                                                r, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 4);
    assert_int_equal(r[0].fit, IS_FIT_INSIDE);
    assert_int_equal(r[0].effort, -1);
    assert_int_equal(r[0].animated, 0);
    assert_int_equal(r[0].keep_icc, 0);
    assert_int_equal(r[1].fit, IS_FIT_COVER);
    assert_int_equal(r[2].effort, 4);
    assert_int_equal(r[2].animated, 1);
    assert_int_equal(r[3].fit, IS_FIT_ATTENTION);
    assert_int_equal(r[3].effort, 9);
    assert_int_equal(r[3].keep_icc, 1);
}

static void rejects(const char *spec, const char *why)
{
    is_rendition_t r[IS_MAX_RENDITIONS];
    int n = 0;
    char err[256] = "";
    assert_int_equal(is_config_parse_renditions(spec, r, &n, err, sizeof(err)), -1);
    if (!strstr(err, why))
        fail_msg("'%s': error '%s' does not say '%s'", spec, err, why);
}

static void mistakes(void **state)
{
    (void)state;
    rejects("a=10x10/webp/80/effort=7", "0..6 for webp");
    rejects("a=10x10/jpeg/80/effort=3", "jpeg and png have none");
    rejects("a=10x10/avif/80/effort=x", "effort must be a number");
    rejects("a=10x10/jpeg/80/animated", "only webp renditions can be animated");
    rejects("a=10x10/webp/80/stretch", "fit 'stretch' is not one of");
    rejects("a=10x10/webp/80/cover/", "unexpected trailing text");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(parses), cmocka_unit_test(mistakes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
