/*
 * test_http.c - /metrics, /healthz and /readyz over a real socket, the
 * health transitions behind them, bind errors, and the log's redaction of
 * secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "health.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

/* One HTTP/1.0 request to h; returns the status, body copied to body. */
static int get(is_http_t *h, const char *method, const char *path, char *body, size_t body_size)
{
    const char *addr = is_http_address(h);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char req[256], resp[65536];
    size_t n = 0;
    ssize_t r;
    int status = -1;

    sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n < sizeof(resp) - 1 && (r = read(fd, resp + n, sizeof(resp) - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    resp[n] = '\0';
    sscanf(resp, "HTTP/1.%*d %d", &status);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, body_size, "%s", b ? b + 4 : "");
    return status;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void endpoints_and_transitions(void **state)
{
    (void)state;
    char err[512], body[65536];
    is_metrics_reset();
    is_health_start();
    is_http_t *h = is_http_new("127.0.0.1:0", 300, err, sizeof(err));
    assert_non_null(h);
    assert_int_not_equal(strcmp(is_http_address(h), "127.0.0.1:0"), 0); /* the real port */

    is_metrics_inc(IS_M_WRITTEN);
    assert_int_equal(get(h, "GET", "/metrics", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "imgsink_records_total{outcome=\"written\"} 1\n"));
    assert_non_null(strstr(body, "\nimgsink_live 1\n"));
    assert_non_null(strstr(body, "\nimgsink_ready 0\n"));

    /* Starting: live (within the stall time), not ready. */
    assert_int_equal(get(h, "GET", "/healthz", body, sizeof(body)), 200);
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "starting"));

    is_health_beat();
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "not in the consumer group"));

    is_health_group(1, 0); /* joined, nothing assigned: still serving the group */
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "0 partitions"));
    is_health_group(1, 4);
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "4 partitions"));

    is_health_kafka(0, "up");
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "no Kafka broker"));
    is_health_kafka(1, "query-coord");
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "query-coord"));
    is_health_kafka(1, "up");
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 200);

    /* No beat for longer than the stall time: neither live nor ready. */
    sleep_ms(400);
    assert_int_equal(get(h, "GET", "/healthz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "stalled"));
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_int_equal(get(h, "GET", "/metrics", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\nimgsink_live 0\n"));
    is_health_beat();
    assert_int_equal(get(h, "GET", "/healthz", body, sizeof(body)), 200);
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 200);

    is_health_group(0, 0); /* assignment lost */
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    is_health_group(1, 2);
    is_health_stopping();
    assert_int_equal(get(h, "GET", "/readyz", body, sizeof(body)), 503);
    assert_non_null(strstr(body, "stopping"));
    assert_int_equal(get(h, "GET", "/healthz", body, sizeof(body)), 200);

    assert_int_equal(get(h, "GET", "/nope", body, sizeof(body)), 404);
    assert_int_equal(get(h, "POST", "/metrics", body, sizeof(body)), 405);
    assert_int_equal(get(h, "HEAD", "/metrics", body, sizeof(body)), 200);
    assert_string_equal(body, "");
    is_http_destroy(h);
    is_http_destroy(NULL);
}

static void bind_errors(void **state)
{
    (void)state;
    char err[512], addr[64];
    is_http_t *h = is_http_new("127.0.0.1:0", 1000, err, sizeof(err));
    assert_non_null(h);
    snprintf(addr, sizeof(addr), "%s", is_http_address(h));

    /* The same port again: in use, and the message says what to do. */
    assert_null(is_http_new(addr, 1000, err, sizeof(err)));
    assert_non_null(strstr(err, "http.listen="));
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, "PORT 0"));
    is_http_destroy(h);

    const char *bad[] = {"9464",     "127.0.0.1", "127.0.0.1:",     "127.0.0.1:http",
                         "::1:9464", "[::1]9464", "127.0.0.1:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(is_http_new(bad[i], 1000, err, sizeof(err)));
        assert_non_null(strstr(err, "expected HOST:PORT"));
    }
    assert_null(is_http_new("no-such-host.invalid:9464", 1000, err, sizeof(err)));
    assert_non_null(strstr(err, "http.listen=no-such-host.invalid:9464"));

    /* IPv6 loopback, where the host has it. */
    if ((h = is_http_new("[::1]:0", 1000, err, sizeof(err))))
        assert_int_equal(strncmp(is_http_address(h), "[::1]:", 6), 0);
    is_http_destroy(h);
}

/* Secrets never reach stderr, whatever the line: fields or message. */
static void log_redaction(void **state)
{
    (void)state;
    char path[] = "/tmp/imgsink-test-log-XXXXXX", buf[4096];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0);
    dup2(fd, STDERR_FILENO);

    is_log_redact("s3cr3t-KEY/with\"quote");
    is_log_redact("TOKEN-0123456789");
    is_log_redact("abc"); /* too short: ignored */
    IS_ERR("test", json_pack("{s:s}", "auth", "Bearer TOKEN-0123456789"), "sig with %s and %s",
           "s3cr3t-KEY/with\"quote", "TOKEN-0123456789TOKEN-0123456789");
    IS_ERR("test", NULL, "abc stays");

    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "TOKEN-0123456789"));
    assert_null(strstr(buf, "s3cr3t-KEY"));
    assert_non_null(strstr(buf, "Bearer [hidden]"));
    assert_non_null(strstr(buf, "[hidden][hidden]"));
    assert_non_null(strstr(buf, "abc stays"));
    /* Still one JSON object per line. */
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *j = json_loads(l, 0, &je);
        assert_non_null(j);
        json_decref(j);
    }
}

/* The operator commands' plain text hides them too, as given (not
 * JSON-escaped). */
static void print_redaction(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);

    is_log_redact("s3cr3t-KEY/with\"quote");
    is_log_redact("pw-\xff\xfe-not-utf8");
    is_log_printf(fp, "imgsink status: kafka.x.password=%s: %s, %s\n", "s3cr3t-KEY/with\"quote",
                  "pw-\xff\xfe-not-utf8", "abc");
    fclose(fp);
    assert_string_equal(buf, "imgsink status: kafka.x.password=[hidden]: [hidden], abc\n");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoints_and_transitions),
        cmocka_unit_test(bind_errors),
        cmocka_unit_test(log_redaction),
        cmocka_unit_test(print_redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
