/*
 * test_ops.c - the pure parts of the operator commands: the lifecycle rule
 * matcher of `imgsink check`, the --to-time parser of `imgsink replay`, the
 * progress line's ETA format, and `imgsink produce` refusing an empty
 * directory before it connects anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin.h"
#include "check.h"
#include "config.h"
#include "produce.h"
#include "progress.h"

#define NS  "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
#define END "</LifecycleConfiguration>"

/* Runs the matcher for tag retention=7d, prefix processed/, 7 days. */
static int match(const char *xml, char *detail, size_t size)
{
    return is_check_lifecycle_xml(xml, strlen(xml), "retention", "7d", "processed/", 7, detail,
                                  size);
}

static void expect(const char *xml, int want, const char *words)
{
    char detail[1024] = "";
    int got = match(xml, detail, sizeof(detail));
    if (got != want || !strstr(detail, words))
        fail_msg("got %d '%s', want %d mentioning '%s'", got, detail, want, words);
}

static void lifecycle_rules(void **state)
{
    (void)state;
    /* What deploy/minio/lifecycle.json gives, as MinIO and S3 return it. */
    expect(NS "<Rule><ID>expire-retention-7d</ID><Status>Enabled</Status>"
              "<Filter><Tag><Key>retention</Key><Value>7d</Value></Tag></Filter>"
              "<Expiration><Days>7</Days></Expiration></Rule>" END,
           1, "rule \"expire-retention-7d\": tag retention=7d, objects expire after 7 days");
    /* And-filter with a covering prefix; a second, unrelated rule first. */
    expect(NS "<Rule><ID>logs</ID><Status>Enabled</Status><Filter><Prefix>logs/</Prefix>"
              "</Filter><Expiration><Days>1</Days></Expiration></Rule>"
              "<Rule><ID>r</ID><Status>Enabled</Status><Filter><And><Prefix>proc</Prefix>"
              "<Tag><Key>retention</Key><Value>7d</Value></Tag></And></Filter>"
              "<Expiration><Days>7</Days></Expiration></Rule>" END,
           1, "rule \"r\"");
    /* No filter at all expires everything, ours included. */
    expect(NS "<Rule><ID>all</ID><Status>Enabled</Status><Filter></Filter>"
              "<Expiration><Days>7</Days></Expiration></Rule>" END,
           1, "no tag filter");
    expect(NS "<Rule><ID>x</ID><Status>Disabled</Status><Filter><Tag><Key>retention</Key>"
              "<Value>7d</Value></Tag></Filter><Expiration><Days>7</Days></Expiration></Rule>" END,
           0, "rule \"x\": status Disabled");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
              "<Value>7d</Value></Tag></Filter><Expiration><Days>30</Days></Expiration></Rule>" END,
           0, "expires after 30 days, the tag says 7");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
              "<Value>30d</Value></Tag></Filter><Expiration><Days>7</Days></Expiration></Rule>" END,
           0, "filter tag retention=30d");
    /* A second tag narrows the rule to some of our objects only. */
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><And><Tag><Key>retention</Key>"
              "<Value>7d</Value></Tag><Tag><Key>source</Key><Value>api</Value></Tag></And>"
              "</Filter><Expiration><Days>7</Days></Expiration></Rule>" END,
           0, "filter tag source=api");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Prefix>other/</Prefix></Filter>"
              "<Expiration><Days>7</Days></Expiration></Rule>" END,
           0, "prefix 'other/' does not cover s3.prefix 'processed/'");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><And><ObjectSizeGreaterThan>10"
              "</ObjectSizeGreaterThan><Tag><Key>retention</Key><Value>7d</Value></Tag></And>"
              "</Filter><Expiration><Days>7</Days></Expiration></Rule>" END,
           0, "object size");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
              "<Value>7d</Value></Tag></Filter><Expiration><ExpiredObjectDeleteMarker>true"
              "</ExpiredObjectDeleteMarker></Expiration></Rule>" END,
           0, "Expiration without Days");
    expect(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
              "<Value>7d</Value></Tag></Filter><Transition><Days>7</Days></Transition></Rule>" END,
           0, "no Expiration");
    expect(NS END, 0, "no rules");
    expect("<Error><Code>x</Code></Error>", -1, "not a <LifecycleConfiguration>");
    expect("not xml", -1, "not a <LifecycleConfiguration>");
}

/* What is_check_lifecycle_classes emitted, one "ok|FAIL detail" per line. */
typedef struct lines {
    char buf[8192];
    int n;
} lines_t;

static void collect(void *ctx, int ok, const char *detail)
{
    lines_t *l = ctx;
    size_t used = strlen(l->buf);
    snprintf(l->buf + used, sizeof(l->buf) - used, "%s %s\n", ok ? "ok" : "FAIL", detail);
    l->n++;
}

static int classes(const char *xml, const int *days, int ndays, lines_t *l)
{
    memset(l, 0, sizeof(*l));
    return is_check_lifecycle_classes(xml, strlen(xml), "processed/", days, ndays, collect, l);
}

static void has_line(const lines_t *l, const char *words)
{
    if (!strstr(l->buf, words))
        fail_msg("no line has '%s':\n%s", words, l->buf);
}

/* deploy/minio/lifecycle.json and deploy/aws/lifecycle.json, as the stores
 * return them. */
#define RULE7                                                                                      \
    "<Rule><ID>expire-retention-7d</ID><Status>Enabled</Status>"                                   \
    "<Filter><Tag><Key>retention</Key><Value>7d</Value></Tag></Filter>"                            \
    "<Expiration><Days>7</Days></Expiration>"                                                      \
    "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"                              \
    "</NoncurrentVersionExpiration></Rule>"
#define MARKERS                                                                                    \
    "<Rule><ID>expire-delete-markers</ID><Status>Enabled</Status><Filter><Prefix></Prefix>"        \
    "</Filter><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"             \
    "</Expiration></Rule>"

static void lifecycle_classes(void **state)
{
    (void)state;
    lines_t l;
    const int seven[] = {7}, two[] = {7, 30};

    assert_int_equal(classes(NS RULE7 MARKERS END, seven, 1, &l), 0);
    assert_int_equal(l.n, 2);
    has_line(&l, "ok retention=7d: rule \"expire-retention-7d\": tag retention=7d, objects "
                 "expire after 7 days; rule \"expire-retention-7d\" expires noncurrent versions "
                 "1 day after they become noncurrent\n");
    has_line(&l, "ok delete markers: rule \"expire-delete-markers\" removes expired object "
                 "delete markers\n");

    /* A second class without its rule: named, the 7d line still ok. */
    assert_int_equal(classes(NS RULE7 MARKERS END, two, 2, &l), 1);
    assert_int_equal(l.n, 3);
    has_line(&l, "ok retention=7d:");
    has_line(&l, "FAIL retention=30d: no enabled rule expires objects tagged retention=30d after "
                 "30 days (rule \"expire-retention-7d\": filter tag retention=7d, not "
                 "retention=30d; rule \"expire-delete-markers\": Expiration without Days");
    has_line(&l, "and no enabled rule expires noncurrent versions of objects tagged "
                 "retention=30d within 30 days");
    /* ... and once it has one. */
    assert_int_equal(
        classes(NS RULE7
                "<Rule><ID>r30</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
                "<Value>30d</Value></Tag></Filter><Expiration><Days>30</Days></Expiration>"
                "<NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays>"
                "</NoncurrentVersionExpiration></Rule>" MARKERS END,
                two, 2, &l),
        0);
    has_line(&l, "ok retention=30d: rule \"r30\"");

    /* The rule the stack had before: current versions only. */
    assert_int_equal(classes(NS "<Rule><ID>expire-retention-7d</ID><Status>Enabled</Status>"
                                "<Filter><Tag><Key>retention</Key><Value>7d</Value></Tag></Filter>"
                                "<Expiration><Days>7</Days></Expiration></Rule>" END,
                             seven, 1, &l),
                     2);
    has_line(&l, "FAIL retention=7d: no enabled rule expires noncurrent versions of objects "
                 "tagged retention=7d within 7 days (rule \"expire-retention-7d\": no "
                 "NoncurrentVersionExpiration)");
    has_line(&l, "FAIL delete markers: no enabled rule without a tag filter removes expired "
                 "object delete markers under s3.prefix 'processed/' (rule "
                 "\"expire-retention-7d\": filter on tag retention=7d, and a delete marker has "
                 "no tags)");

    /* Noncurrent versions in a separate rule, without a tag filter: ok. */
    assert_int_equal(
        classes(NS "<Rule><ID>cur</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
                   "<Value>7d</Value></Tag></Filter><Expiration><Days>7</Days></Expiration>"
                   "</Rule><Rule><ID>nc</ID><Status>Enabled</Status><Filter><Prefix>processed/"
                   "</Prefix></Filter><NoncurrentVersionExpiration><NoncurrentDays>2"
                   "</NoncurrentDays></NoncurrentVersionExpiration><Expiration>"
                   "<ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
                   "</Rule>" END,
                seven, 1, &l),
        0);
    has_line(&l, "rule \"nc\" expires noncurrent versions 2 days after");
    has_line(&l, "ok delete markers: rule \"nc\"");

    /* Noncurrent versions kept too long, or some kept forever. */
    assert_int_equal(
        classes(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
                   "<Value>7d</Value></Tag></Filter><Expiration><Days>7</Days></Expiration>"
                   "<NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays>"
                   "</NoncurrentVersionExpiration></Rule>" MARKERS END,
                seven, 1, &l),
        1);
    has_line(&l, "noncurrent versions expire after 30 days, more than the 7 of the tag");
    assert_int_equal(
        classes(NS "<Rule><ID>x</ID><Status>Enabled</Status><Filter><Tag><Key>retention</Key>"
                   "<Value>7d</Value></Tag></Filter><Expiration><Days>7</Days></Expiration>"
                   "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                   "<NewerNoncurrentVersions>3</NewerNoncurrentVersions>"
                   "</NoncurrentVersionExpiration></Rule>" MARKERS END,
                seven, 1, &l),
        1);
    has_line(&l, "keeps 3 newer noncurrent versions forever");

    /* Delete markers: a disabled rule, a prefix elsewhere, a size filter. */
    assert_int_equal(
        classes(NS RULE7
                "<Rule><ID>m</ID><Status>Disabled</Status><Filter></Filter><Expiration>"
                "<ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>"
                "<Rule><ID>m2</ID><Status>Enabled</Status><Filter><Prefix>raw/</Prefix></Filter>"
                "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                "</Expiration></Rule>"
                "<Rule><ID>m3</ID><Status>Enabled</Status><Filter><ObjectSizeGreaterThan>1"
                "</ObjectSizeGreaterThan></Filter><Expiration><ExpiredObjectDeleteMarker>true"
                "</ExpiredObjectDeleteMarker></Expiration></Rule>" END,
                seven, 1, &l),
        1);
    has_line(&l, "rule \"m\": status Disabled");
    has_line(&l, "rule \"m2\": filter prefix 'raw/' does not cover s3.prefix 'processed/'");
    has_line(&l, "rule \"m3\": filter on object size");
    has_line(&l, "rule \"expire-retention-7d\": filter on tag retention=7d");

    assert_int_equal(classes("not xml", seven, 1, &l), -1);
    assert_int_equal(l.n, 0);
}

static void time_ok(const char *s, int64_t want)
{
    char err[256] = "";
    int64_t ms = -1;
    if (is_admin_parse_time(s, &ms, err, sizeof(err)) || ms != want)
        fail_msg("'%s': got %lld (%s), want %lld", s, (long long)ms, err, (long long)want);
}

static void time_bad(const char *s, const char *words)
{
    char err[256] = "";
    int64_t ms;
    if (!is_admin_parse_time(s, &ms, err, sizeof(err)) || !strstr(err, words))
        fail_msg("'%s': accepted or error '%s' lacks '%s'", s, err, words);
}

static void parse_time(void **state)
{
    (void)state;
    time_ok("2026-01-01", INT64_C(1767225600000));
    time_ok("2026-01-01T00:00:00Z", INT64_C(1767225600000));
    time_ok("2026-01-01T00:00Z", INT64_C(1767225600000));
    time_ok("2026-01-01T01:30:00+01:30", INT64_C(1767225600000));
    time_ok("2026-01-01T01:30:00+0130", INT64_C(1767225600000));
    time_ok("2025-12-31T22:00:00-02:00", INT64_C(1767225600000));
    time_ok("2026-01-01T00:00:00.250Z", INT64_C(1767225600250));
    time_ok("2026-01-01T00:00:00.25Z", INT64_C(1767225600250));
    time_ok("2026-01-01T00:00:00.123456Z", INT64_C(1767225600123));
    time_ok("2024-02-29T23:59:59.999Z", INT64_C(1709251199999));
    time_bad("2026-01-01T10:00", "needs a zone");
    time_bad("2026-02-30", "no such date");
    time_bad("2026-13-01", "expected an ISO 8601");
    time_bad("yesterday", "expected an ISO 8601");
    time_bad("2026-01-01T10:00Zjunk", "expected an ISO 8601");
    time_bad("1767225600000", "expected an ISO 8601");
}

static void eta_format(void **state)
{
    char b[32];
    (void)state;
    is_progress_format_eta(42.4, b, sizeof(b));
    assert_string_equal(b, "42s");
    is_progress_format_eta(187, b, sizeof(b));
    assert_string_equal(b, "3m07s");
    is_progress_format_eta(7500, b, sizeof(b));
    assert_string_equal(b, "2h05m");
    is_progress_format_eta(-1, b, sizeof(b));
    assert_string_equal(b, "--");
}

/* An empty directory: "no image files in DIR" and a failure status, not
 * "produced 0 records" and 0 (and, under UBSan, no qsort of a NULL list). */
static void produce_empty_directory(void **state)
{
    char dir[] = "/tmp/test_ops_empty.XXXXXX", logpath[] = "/tmp/test_ops_log.XXXXXX";
    char *argv[] = {"produce", "--topic", "images", dir, NULL}, log[1024] = "";
    is_config_t *cfg = is_config_new();
    char err[256];
    (void)state;

    assert_non_null(mkdtemp(dir));
    /* Only what produce skips: a dot file and a subdirectory. */
    char sub[sizeof(dir) + 16];
    snprintf(sub, sizeof(sub), "%s/.hidden", dir);
    FILE *fp = fopen(sub, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(sub, sizeof(sub), "%s/subdir", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* Nothing listens there: the command must stop before connecting. */
    assert_int_equal(is_config_set(cfg, "kafka.bootstrap.servers", "127.0.0.1:1", err, sizeof(err)),
                     0);

    int fd = mkstemp(logpath), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    int rc = is_produce_main(cfg, 4, argv);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_true(pread(fd, log, sizeof(log) - 1, 0) >= 0);
    close(fd);
    unlink(logpath);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/.hidden", dir);
    unlink(sub);
    rmdir(dir);
    is_config_destroy(cfg);

    if (rc != 1 || !strstr(log, "no image files in ") || !strstr(log, dir))
        fail_msg("produce on an empty directory: exit %d, stderr '%s'", rc, log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lifecycle_rules),
        cmocka_unit_test(lifecycle_classes),
        cmocka_unit_test(parse_time),
        cmocka_unit_test(eta_format),
        cmocka_unit_test(produce_empty_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
