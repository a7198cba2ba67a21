/*
 * test_config.c - bad configuration stops start-up naming the key, the
 * value and what was expected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static void expect_error(const char *key, const char *value, const char *const *needles)
{
    char err[1024] = "";
    is_config_t *cfg = is_config_new();
    assert_int_equal(is_config_set(cfg, key, value, err, sizeof(err)), -1);
    for (; *needles; needles++)
        if (!strstr(err, *needles))
            fail_msg("%s=%s: error '%s' lacks '%s'", key, value, err, *needles);
    is_config_destroy(cfg);
}

static void bad_values(void **state)
{
    (void)state;
    expect_error("no.such.key", "1", (const char *[]){"no.such.key", "unknown", NULL});
    expect_error("s3.timeout.ms", "abc", (const char *[]){"s3.timeout.ms=abc", "integer", NULL});
    expect_error("s3.timeout.ms", "10", (const char *[]){"s3.timeout.ms=10", "1000..", NULL});
    expect_error("retry.budget.min.per.second", "0",
                 (const char *[]){"retry.budget.min.per.second=0", "1..", NULL});
    expect_error("s3.path.style", "maybe",
                 (const char *[]){"s3.path.style=maybe", "true or false", NULL});
    expect_error("input.format", "json",
                 (const char *[]){"input.format=json", "auto,avro,confluent", NULL});
    expect_error("limits.formats", "jpeg,svg", (const char *[]){"'svg'", "is not one of", NULL});
    expect_error("limits.max.input.bytes", "12parsecs",
                 (const char *[]){"limits.max.input.bytes=12parsecs", "size", NULL});
    expect_error("renditions", "big=100x100/bmp/80", (const char *[]){"format 'bmp'", NULL});
    expect_error("renditions", "big=0x100/jpeg/80", (const char *[]){"1..16384", NULL});
    expect_error("renditions", "big=10x10/jpeg/101", (const char *[]){"quality", NULL});
    expect_error("renditions", "big=10x10/jpeg/80/stretch",
                 (const char *[]){"fit 'stretch'", NULL});
    expect_error("renditions", "a=10x10/jpeg/80,a=20x20/webp/80",
                 (const char *[]){"used twice", NULL});
    expect_error("renditions", "Bad Name=10x10/jpeg/80", (const char *[]){"expected name=", NULL});
}

static void good_values(void **state)
{
    char err[512];
    is_config_t *cfg = is_config_new();
    (void)state;
    assert_int_equal(cfg->nrenditions, 3);
    assert_string_equal(cfg->renditions[0].name, "large");
    assert_string_equal(cfg->renditions[0].format, "webp");
    assert_int_equal(is_config_set(cfg, "limits.max.input.bytes", "16MiB", err, sizeof(err)), 0);
    assert_int_equal(cfg->limits_max_input_bytes, 16 * 1024 * 1024);
    assert_int_equal(is_config_set(cfg, "renditions", "x=100x50/png/90/attention, y=10x10/avif/50",
                                   err, sizeof(err)),
                     0);
    assert_int_equal(cfg->nrenditions, 2);
    assert_int_equal(cfg->renditions[0].fit, IS_FIT_ATTENTION);
    assert_int_equal(cfg->renditions[1].height, 10);
    /* A failed set leaves the previous value. */
    assert_int_equal(is_config_set(cfg, "renditions", "z=1x1/bmp/1", err, sizeof(err)), -1);
    assert_int_equal(cfg->nrenditions, 2);
    assert_int_equal(is_config_set(cfg, "kafka.bootstrap.servers", "h:1", err, sizeof(err)), 0);
    assert_string_equal(is_config_kafka_get(cfg, "bootstrap.servers"), "h:1");
    assert_string_equal(is_config_kafka_get(cfg, "group.id"), "imgsink");
    is_config_destroy(cfg);
}

static void file_errors_name_the_line(void **state)
{
    char path[] = "/tmp/imgsink-test-config-XXXXXX", err[1024];
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    const char *text = "# comment\n\ns3.bucket = b\n  kafka.bootstrap.servers=h:9\n"
                       "s3.timeout.ms = soon\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    is_config_t *cfg = is_config_new();
    assert_int_equal(is_config_load_file(cfg, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":5: s3.timeout.ms=soon: expected an integer"));
    assert_string_equal(cfg->s3_bucket, "b");
    is_config_destroy(cfg);

    cfg = is_config_new();
    assert_int_equal(is_config_load_file(cfg, "/nonexistent/imgsink.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
    is_config_destroy(cfg);
    unlink(path);
}

static void env_overrides_and_validation(void **state)
{
    char err[1024];
    is_config_t *cfg = is_config_new();
    (void)state;
    setenv("IMGSINK_S3_BUCKET", "from-env", 1);
    setenv("IMGSINK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->s3_bucket, "from-env");
    assert_string_equal(is_config_kafka_get(cfg, "bootstrap.servers"), "127.0.0.1:1");
    /* No credentials yet. */
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "s3.access.key"));
    setenv("IMGSINK_S3_ACCESS_KEY", "AK", 1);
    setenv("IMGSINK_S3_SECRET_KEY", "very-secret-value", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), 0);
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), 0);

    /* A watchdog shorter than the per-image limit would retry slow images
     * forever instead of stopping them: refused, naming both keys. */
    setenv("IMGSINK_WORKER_STUCK_TIMEOUT_MS", "20000", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), 0);
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "worker.stuck.timeout.ms=20000"));
    assert_non_null(strstr(err, "limits.timeout.ms (30000)"));
    setenv("IMGSINK_WORKER_STUCK_TIMEOUT_MS", "0", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), 0);
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), 0);
    unsetenv("IMGSINK_WORKER_STUCK_TIMEOUT_MS");

    /* Secrets never appear in the dump. */
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    is_config_dump(cfg, fp);
    fclose(fp);
    assert_null(strstr(buf, "very-secret-value"));
    assert_non_null(strstr(buf, "s3.secret.key=[hidden]"));
    free(buf);

    setenv("IMGSINK_S3_TIMEOUT_MS", "x", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "IMGSINK_S3_TIMEOUT_MS"));
    assert_non_null(strstr(err, "expected an integer"));
    unsetenv("IMGSINK_S3_TIMEOUT_MS");
    setenv("IMGSINK_NO_SUCH", "1", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no.such: unknown"));
    unsetenv("IMGSINK_NO_SUCH");
    is_config_destroy(cfg);
}

static void help_lists_every_key(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    (void)state;
    FILE *fp = open_memstream(&buf, &len);
    is_config_print_help(fp, 1);
    fclose(fp);
    assert_non_null(strstr(buf, "| `s3.bucket` | string |"));
    assert_non_null(strstr(buf, "| `renditions` | renditions |"));
    assert_non_null(strstr(buf, "`kafka.*`"));
    free(buf);
}

static void sizes(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(is_config_parse_size("10", &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(is_config_parse_size("2KiB", &v), 0);
    assert_int_equal(v, 2048);
    assert_int_equal(is_config_parse_size("3g", &v), 0);
    assert_int_equal(v, INT64_C(3) << 30);
    assert_int_equal(is_config_parse_size("-1", &v), -1);
    assert_int_equal(is_config_parse_size("1TB", &v), -1);
    assert_int_equal(is_config_parse_size("99999999999999999999", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_values),
        cmocka_unit_test(good_values),
        cmocka_unit_test(file_errors_name_the_line),
        cmocka_unit_test(env_overrides_and_validation),
        cmocka_unit_test(help_lists_every_key),
        cmocka_unit_test(sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
