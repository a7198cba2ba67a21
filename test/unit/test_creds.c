/*
 * test_creds.c - the credentials chain's parsers (hostile input included),
 * the chain's order, and snapshots shared by threads while they are
 * replaced. The network sources are tested against real endpoints by
 * test/e2e/t76-t78.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "creds.h"

static void times(void **state)
{
    int64_t t;
    (void)state;
    assert_int_equal(is_creds_parse_time("2026-11-30T19:20:00Z", &t), 0);
    assert_int_equal(t, 1796066400);
    assert_int_equal(is_creds_parse_time("2026-11-30T19:20:00.123Z", &t), 0);
    assert_int_equal(t, 1796066400);
    assert_int_equal(is_creds_parse_time("2026-11-30T19:20:00+00:00", &t), 0);
    assert_int_equal(t, 1796066400);
    assert_int_equal(is_creds_parse_time("2026-11-30T19:20:00+02:00", &t), -1);
    assert_int_equal(is_creds_parse_time("2026-13-30T19:20:00Z", &t), -1);
    assert_int_equal(is_creds_parse_time("tomorrow", &t), -1);
    assert_int_equal(is_creds_parse_time("", &t), -1);
    assert_int_equal(is_creds_parse_time(NULL, &t), -1);
    assert_int_equal(is_creds_parse_time("2026-11-30T19:20:00Zjunk", &t), -1);
}

static void ini(void **state)
{
    char *ak, *sk, *st, err[256];
    const char *text = "# comment\n[default]\naws_access_key_id = AKDEF\n"
                       "aws_secret_access_key=SKDEF\n\n"
                       "[profile ci]\r\naws_access_key_id=AKCI\r\naws_secret_access_key = SKCI\r\n"
                       "aws_session_token = TOKCI\r\nregion=eu-west-1\n"
                       "[half]\naws_access_key_id=AKHALF\n";
    (void)state;
    assert_int_equal(is_creds_parse_ini(text, "default", &ak, &sk, &st, err, sizeof(err)), 1);
    assert_string_equal(ak, "AKDEF");
    assert_string_equal(sk, "SKDEF");
    assert_null(st);
    free(ak), free(sk);
    assert_int_equal(is_creds_parse_ini(text, "profile ci", &ak, &sk, &st, err, sizeof(err)), 1);
    assert_string_equal(ak, "AKCI");
    assert_string_equal(sk, "SKCI");
    assert_string_equal(st, "TOKCI");
    free(ak), free(sk), free(st);
    assert_int_equal(is_creds_parse_ini(text, "nope", &ak, &sk, &st, err, sizeof(err)), 0);
    assert_int_equal(is_creds_parse_ini(text, "half", &ak, &sk, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "aws_secret_access_key"));
    assert_null(strstr(err, "AKHALF"));
    assert_int_equal(is_creds_parse_ini("", "default", &ak, &sk, &st, err, sizeof(err)), 0);
    assert_int_equal(is_creds_parse_ini("[default", "default", &ak, &sk, &st, err, sizeof(err)), 0);
}

/* Each bad document is refused with the field named and no secret quoted. */
static void json_hostile(void **state)
{
    char err[512];
    (void)state;
    const char *good = "{\"AccessKeyId\":\"AKJSON\",\"SecretAccessKey\":\"SECRETJSON\","
                       "\"Token\":\"TOKENJSON\",\"Expiration\":\"2030-01-01T00:00:00Z\","
                       "\"Code\":\"Success\"}";
    is_creds_t *c = is_creds_from_json(good, strlen(good), "t", err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->access_key, "AKJSON");
    assert_string_equal(c->session_token, "TOKENJSON");
    assert_int_equal(c->expires, 1893456000);
    is_creds_release(c);

    static const struct {
        const char *doc, *want;
    } bad[] = {
        {"not json SECRETJSON", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SECRETJSON\",\"Expiration\":"
         "\"2030-01-01T00:00:00Z\"}",
         "field Token"},
        {"{\"AccessKeyId\":1,\"SecretAccessKey\":\"SECRETJSON\",\"Token\":\"TOKENJSON\","
         "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
         "field AccessKeyId"},
        {"{\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SECRETJSON\",\"Token\":\"TOKENJSON\","
         "\"Expiration\":\"soon\"}",
         "Expiration"},
        {"{\"Code\":\"Failure\",\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SECRETJSON\","
         "\"Token\":\"TOKENJSON\",\"Expiration\":\"2030-01-01T00:00:00Z\"}",
         "Code"},
        {"{\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SECRET\\nJSON\",\"Token\":\"TOKENJSON\","
         "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
         "secret access key"},
        {"{\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SECRETJSON\",\"Token\":\"TOKEN\\r\\nX: "
         "y\",\"Expiration\":\"2030-01-01T00:00:00Z\"}",
         "session token"},
        {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"SECRETJSON\",\"Token\":\"TOKENJSON\","
         "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
         "access key id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = is_creds_from_json(bad[i].doc, strlen(bad[i].doc), "t", err, sizeof(err));
        assert_null(c);
        assert_non_null(strstr(err, bad[i].want));
        assert_null(strstr(err, "SECRETJSON"));
        assert_null(strstr(err, "TOKENJSON"));
    }
}

static void sts_xml(void **state)
{
    char err[512];
    (void)state;
    const char *ok =
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>"
        "<SecretAccessKey>SECRETXML</SecretAccessKey><SessionToken>TOKENXML</SessionToken>"
        "<Expiration>2030-01-01T00:00:00.000Z</Expiration></Credentials>"
        "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
    is_creds_t *c = is_creds_from_sts_xml(ok, strlen(ok), 200, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(c->access_key, "ASIAX");
    assert_string_equal(c->secret_key, "SECRETXML");
    assert_int_equal(c->expires, 1893456000);
    is_creds_release(c);

    const char *e = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                    "<Message>Not authorized\nto assume</Message></Error></ErrorResponse>";
    assert_null(is_creds_from_sts_xml(e, strlen(e), 403, err, sizeof(err)));
    assert_string_equal(err, "STS: HTTP 403 AccessDenied: Not authorized to assume");
    assert_null(is_creds_from_sts_xml("<<<", 3, 200, err, sizeof(err)));
    assert_non_null(strstr(err, "not an XML document"));
    const char *missing = "<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>SECRETXML"
                          "</SecretAccessKey></Credentials></R>";
    assert_null(is_creds_from_sts_xml(missing, strlen(missing), 200, err, sizeof(err)));
    assert_non_null(strstr(err, "SessionToken"));
    assert_null(strstr(err, "SECRETXML"));
    /* An entity that would read a file is not expanded (NONET, no DTD load). */
    const char *xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><R><Credentials>"
                      "<AccessKeyId>&x;</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
                      "<SessionToken>T</SessionToken><Expiration>2030-01-01T00:00:00Z"
                      "</Expiration></Credentials></R>";
    c = is_creds_from_sts_xml(xxe, strlen(xxe), 200, err, sizeof(err));
    if (c) {
        assert_null(strstr(c->access_key, "root:"));
        is_creds_release(c);
    }
}

static void clear_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_DEFAULT_PROFILE",
                                       "AWS_ROLE_ARN",
                                       "AWS_WEB_IDENTITY_TOKEN_FILE",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_EC2_METADATA_SERVICE_ENDPOINT"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static is_creds_provider_t *chain(const char *ak, const char *sk, char *err, size_t size)
{
    is_creds_conf_t cc = {ak, sk, NULL, "us-east-1", 300000, 1000};
    return is_creds_provider_new(&cc, err, size);
}

static void order(void **state)
{
    char err[1024], dir[] = "/tmp/test_creds.XXXXXX", path[300], cpath[300];
    (void)state;
    clear_env();
    assert_null(chain(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "none found"));

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/credentials", dir);
    snprintf(cpath, sizeof(cpath), "%s/config", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=SKFILE\n");
    fclose(f);
    f = fopen(cpath, "w");
    fprintf(f, "[profile other]\naws_access_key_id=AKCONF\naws_secret_access_key=SKCONF\n");
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    setenv("AWS_CONFIG_FILE", cpath, 1);

    is_creds_provider_t *cp = chain(NULL, NULL, err, sizeof(err));
    assert_non_null(cp);
    assert_string_equal(is_creds_source(cp), "profile");
    is_creds_t *c = is_creds_get(cp);
    assert_string_equal(c->access_key, "AKFILE");
    is_creds_release(c);
    is_creds_provider_destroy(cp);

    setenv("AWS_PROFILE", "other", 1); /* from the config file's [profile other] */
    cp = chain(NULL, NULL, err, sizeof(err));
    assert_non_null(cp);
    c = is_creds_get(cp);
    assert_string_equal(c->access_key, "AKCONF");
    is_creds_release(c);
    is_creds_provider_destroy(cp);

    setenv("AWS_PROFILE", "missing", 1);
    assert_null(chain(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_PROFILE=missing"));

    /* The environment comes before the files... */
    setenv("AWS_ACCESS_KEY_ID", "AKENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
    setenv("AWS_SESSION_TOKEN", "TKENV", 1);
    cp = chain(NULL, NULL, err, sizeof(err));
    assert_non_null(cp);
    assert_string_equal(is_creds_source(cp), "environment");
    c = is_creds_get(cp);
    assert_string_equal(c->access_key, "AKENV");
    assert_string_equal(c->session_token, "TKENV");
    is_creds_release(c);
    is_creds_provider_destroy(cp);

    /* ... and the configuration before everything. */
    cp = chain("AKCFG", "SKCFG", err, sizeof(err));
    assert_non_null(cp);
    assert_string_equal(is_creds_source(cp), "config");
    c = is_creds_get(cp);
    assert_string_equal(c->access_key, "AKCFG");
    assert_null(c->session_token);

    /* Static credentials the store refuses cannot be cured: unhealthy,
     * with the reason; a later success heals. */
    int64_t ms;
    assert_int_equal(is_creds_healthy(cp, err, sizeof(err), &ms), 1);
    is_creds_refused(cp, c, "ExpiredToken");
    assert_int_equal(is_creds_healthy(cp, err, sizeof(err), &ms), 0);
    assert_non_null(strstr(err, "ExpiredToken"));
    assert_null(strstr(err, "SKCFG"));
    is_creds_accepted(cp, c);
    assert_int_equal(is_creds_healthy(cp, err, sizeof(err), &ms), 1);
    is_creds_release(c);
    is_creds_provider_destroy(cp);

    /* Half of web identity is a clear error. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_PROFILE");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r", 1);
    assert_null(chain(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_WEB_IDENTITY_TOKEN_FILE"));
    unsetenv("AWS_ROLE_ARN");
    /* A container URI to a host the SDKs refuse over plain http. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://203.0.113.7/creds", 1);
    assert_null(chain(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://203.0.113.7/creds"));
    /* A container endpoint nobody listens on: start-up names it. */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", 1);
    assert_null(chain(NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "container endpoint http://127.0.0.1:1/creds"));
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unlink(path);
    unlink(cpath);
    rmdir(dir);
    clear_env();
}

/* Threads sign with snapshots while the owner drops its reference: the
 * last user frees (ASan checks). */
static void *user(void *arg)
{
    is_creds_t *c = arg;
    for (int i = 0; i < 1000; i++) {
        assert_string_equal(c->access_key, "AKCFG");
        atomic_fetch_add(&c->refs, 1);
        is_creds_release(c);
    }
    is_creds_release(c);
    return NULL;
}

static void snapshots(void **state)
{
    char err[256];
    pthread_t t[4];
    (void)state;
    clear_env();
    is_creds_provider_t *cp = chain("AKCFG", "SKCFG", err, sizeof(err));
    assert_non_null(cp);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, user, is_creds_get(cp)), 0);
    is_creds_provider_destroy(cp); /* the provider's reference goes first */
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

/* The metrics of a static source: counters at 0, healthy, no expiry, no
 * error; and never the secret key. */
static void metrics(void **state)
{
    char err[1024], *buf = NULL;
    size_t n = 0;
    (void)state;
    clear_env();
    is_creds_provider_t *cp = chain("AKMETRICS", "SKMETRICS-SECRET", err, sizeof(err));
    assert_non_null(cp);
    FILE *fp = open_memstream(&buf, &n);
    assert_non_null(fp);
    is_creds_metrics_write(cp, fp);
    assert_int_equal(fclose(fp), 0);
    assert_non_null(strstr(buf, "imgsink_credentials_refreshes_total{source=\"config\","
                                "result=\"ok\"} 0\n"));
    assert_non_null(strstr(buf, "imgsink_credentials_refreshes_total{source=\"config\","
                                "result=\"error\"} 0\n"));
    assert_non_null(strstr(buf, "imgsink_credentials_healthy{source=\"config\"} 1\n"));
    assert_null(strstr(buf, "imgsink_credentials_expiry_seconds{"));
    assert_null(strstr(buf, "imgsink_credentials_last_refresh_error{"));
    assert_null(strstr(buf, "SKMETRICS"));
    assert_null(strstr(buf, "AKMETRICS"));
    free(buf);
    /* A refusal of static credentials: unhealthy, still no secret. */
    is_creds_t *c = is_creds_get(cp);
    is_creds_refused(cp, c, "InvalidAccessKeyId");
    is_creds_release(c);
    buf = NULL;
    fp = open_memstream(&buf, &n);
    assert_non_null(fp);
    is_creds_metrics_write(cp, fp);
    assert_int_equal(fclose(fp), 0);
    assert_non_null(strstr(buf, "imgsink_credentials_healthy{source=\"config\"} 0\n"));
    assert_null(strstr(buf, "SKMETRICS"));
    free(buf);
    is_creds_provider_destroy(cp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times),   cmocka_unit_test(ini),   cmocka_unit_test(json_hostile),
        cmocka_unit_test(sts_xml), cmocka_unit_test(order), cmocka_unit_test(snapshots),
        cmocka_unit_test(metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
