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
    /* No keys: the credentials chain finds them at run time (creds.h);
     * half a pair is a configuration error. */
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), 0);
    setenv("IMGSINK_S3_ACCESS_KEY", "AK", 1);
    assert_int_equal(is_config_load_env(cfg, err, sizeof(err)), 0);
    assert_int_equal(is_config_validate(cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "s3.secret.key"));
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
    is_config_destroy(cfg);
}

/* Runs is_config_load_env with stderr (the log) captured into *logp. */
static int load_env_logged(is_config_t *cfg, char *err, size_t err_size, char **logp)
{
    char path[] = "/tmp/test_config_log.XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    int rc = is_config_load_env(cfg, err, err_size);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *log = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, log, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    *logp = log;
    return rc;
}

/* A Kubernetes Service named imgsink (or imgsink-kafka) makes the kubelet
 * inject these into every pod of the namespace: they must not stop
 * start-up. One warning names them, without their values. */
static void env_kubelet_service_variables(void **state)
{
    static const char *const vars[][2] = {
        {"IMGSINK_SERVICE_HOST", "10.96.12.34"},
        {"IMGSINK_SERVICE_PORT", "9464"},
        {"IMGSINK_SERVICE_PORT_METRICS", "9464"},
        {"IMGSINK_PORT", "tcp://10.96.12.34:9464"},
        {"IMGSINK_PORT_9464_TCP", "tcp://10.96.12.34:9464"},
        {"IMGSINK_PORT_9464_TCP_ADDR", "10.96.12.34"},
        {"IMGSINK_PORT_9464_TCP_PORT", "9464"},
        {"IMGSINK_PORT_9464_TCP_PROTO", "tcp"},
        {"IMGSINK_KAFKA_SERVICE_HOST", "10.96.7.7"},
        {"IMGSINK_KAFKA_PORT_9092_TCP_ADDR", "10.96.7.7"},
    };
    const size_t nvars = sizeof(vars) / sizeof(vars[0]);
    char err[1024] = "", *log = NULL;
    is_config_t *cfg = is_config_new();
    (void)state;

    for (size_t i = 0; i < nvars; i++)
        setenv(vars[i][0], vars[i][1], 1);
    setenv("IMGSINK_S3_BUCKET", "from-env", 1);
    int rc = load_env_logged(cfg, err, sizeof(err), &log);
    if (rc)
        fail_msg("kubelet variables stopped start-up: %s", err);
    assert_string_equal(cfg->s3_bucket, "from-env"); /* real keys still apply */
    assert_null(is_config_kafka_get(cfg, "service.host"));
    assert_null(is_config_kafka_get(cfg, "port.9092.tcp.addr"));
    /* One warning line, naming every variable, no value. */
    char *nl = strchr(log, '\n');
    assert_non_null(nl);
    assert_null(strchr(nl + 1, '\n'));
    assert_non_null(strstr(log, "\"level\":\"warn\""));
    for (size_t i = 0; i < nvars; i++)
        if (!strstr(log, vars[i][0]))
            fail_msg("warning lacks %s: %s", vars[i][0], log);
    if (strstr(log, "10.96.") || strstr(log, "tcp://"))
        fail_msg("warning shows a value: %s", log);
    free(log);

    /* An unknown name that looks like a typo is skipped too (named in the
     * warning); a known key with a bad value still stops start-up. */
    setenv("IMGSINK_NO_SUCH", "1", 1);
    setenv("IMGSINK_S3_TIMEOUT_MS", "soon", 1);
    assert_int_equal(load_env_logged(cfg, err, sizeof(err), &log), -1);
    assert_non_null(strstr(err, "IMGSINK_S3_TIMEOUT_MS"));
    assert_non_null(strstr(err, "s3.timeout.ms=soon: expected an integer"));
    free(log);
    unsetenv("IMGSINK_S3_TIMEOUT_MS");
    assert_int_equal(load_env_logged(cfg, err, sizeof(err), &log), 0);
    assert_non_null(strstr(log, "IMGSINK_NO_SUCH"));
    free(log);

    /* The file stays strict: an unknown key there is an error. */
    char path[] = "/tmp/test_config_conf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "service.host=10.96.12.34\n", 25), 25);
    close(fd);
    assert_int_equal(is_config_load_file(cfg, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "service.host: unknown configuration key"));
    unlink(path);

    for (size_t i = 0; i < nvars; i++)
        unsetenv(vars[i][0]);
    unsetenv("IMGSINK_NO_SUCH");
    unsetenv("IMGSINK_S3_BUCKET");
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
        cmocka_unit_test(env_kubelet_service_variables),
        cmocka_unit_test(help_lists_every_key),
        cmocka_unit_test(sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
