/*
 * test_kafka.c - explaining a broker's refusal of the client's certificate
 * (mutual TLS) from the TLS alert librdkafka reports, which Kafka errors
 * need an operator, and the client key checked with its passphrase before
 * librdkafka loads it.
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
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config.h"
#include "kafka.h"

/* The shape of librdkafka's reason when the broker's alert arrives on the
 * first read after a TLS 1.3 handshake. */
#define UNKNOWN                                                                                    \
    "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A000416:SSL routines::sslv3 alert "    \
    "certificate unknown: SSL alert number 46 (after 4ms in state APIVERSION_QUERY)"
#define REQUIRED                                                                                   \
    "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 alert "   \
    "certificate required: SSL alert number 116 (after 3ms in state APIVERSION_QUERY)"

static void refused_certificate(void **state)
{
    (void)state;
    char out[1024] = "untouched";
    assert_int_equal(is_kafka_explain_client_auth(UNKNOWN, 1, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "client certificate refused: the broker does not accept"));
    assert_non_null(strstr(out, "kafka.ssl.certificate.location"));
    /* librdkafka's own words stay, after the explanation. */
    assert_non_null(strstr(out, "; librdkafka: " UNKNOWN));
    assert_int_equal(is_kafka_needs_operator(RD_KAFKA_RESP_ERR__TRANSPORT, out), 1);

    const char *others[] = {"sslv3 alert bad certificate: SSL alert number 42",
                            "tlsv1 alert unknown ca: SSL alert number 48",
                            "sslv3 alert certificate expired: SSL alert number 45",
                            "tlsv1 alert access denied: SSL alert number 49"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        out[0] = '\0';
        assert_int_equal(is_kafka_explain_client_auth(others[i], 1, out, sizeof(out)), 1);
        assert_non_null(strstr(out, "client certificate refused"));
    }
    /* librdkafka's own words when the broker's CA list leaves the
     * certificate out (it then sends none). */
    const char *issuer = "No matching issuer found in server trusted certificate authorities, "
                         "not sending any client certificates";
    assert_int_equal(is_kafka_explain_client_auth(issuer, 1, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "client certificate refused: the broker does not accept"));
    assert_non_null(strstr(out, "its issuer is not among the CAs"));
    assert_int_equal(is_kafka_needs_operator(RD_KAFKA_RESP_ERR__TRANSPORT, out), 1);
    /* Without a certificate configured, that line cannot come: untouched. */
    strcpy(out, "untouched");
    assert_int_equal(is_kafka_explain_client_auth(issuer, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "untouched");
}

static void no_certificate_configured(void **state)
{
    (void)state;
    char out[1024];
    /* Without a certificate in the configuration, whatever the alert. */
    assert_int_equal(is_kafka_explain_client_auth(REQUIRED, 0, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "client certificate required: the broker asks for one and none "
                                "is configured (kafka.ssl.certificate.location"));
    assert_int_equal(is_kafka_explain_client_auth(UNKNOWN, 0, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "client certificate required"));
}

static void other_errors_untouched(void **state)
{
    (void)state;
    char out[64] = "untouched";
    const char *reasons[] = {
        "", "1/1 brokers are down",
        "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed",
        "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed",
        /* A handshake failure is also a cipher or protocol mismatch. */
        "sslv3 alert handshake failure: SSL alert number 40",
        /* "alert" alone, or a name that only starts like one. */
        "alert", "an alert certificat"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        assert_int_equal(is_kafka_explain_client_auth(reasons[i], 1, out, sizeof(out)), 0);
        assert_int_equal(is_kafka_explain_client_auth(reasons[i], 0, out, sizeof(out)), 0);
        assert_string_equal(out, "untouched");
    }
    /* A long reason is cut to the buffer, never past it. */
    char small[40];
    memset(small, 'x', sizeof(small));
    assert_int_equal(is_kafka_explain_client_auth(UNKNOWN, 1, small, 16), 1);
    assert_int_equal(strlen(small), 15);
    assert_int_equal(small[16], 'x');
}

static void needs_operator(void **state)
{
    (void)state;
    assert_int_equal(is_kafka_needs_operator(RD_KAFKA_RESP_ERR__AUTHENTICATION, "x"), 1);
    assert_int_equal(is_kafka_needs_operator(RD_KAFKA_RESP_ERR__SSL, "x"), 1);
    assert_int_equal(
        is_kafka_needs_operator(RD_KAFKA_RESP_ERR__TRANSPORT, "certificate verify failed: b: why"),
        1);
    assert_int_equal(is_kafka_needs_operator(RD_KAFKA_RESP_ERR__TRANSPORT, "Connection refused"),
                     0);
    assert_int_equal(
        is_kafka_needs_operator(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, "1/1 brokers are down"), 0);
}

#define PASSPHRASE "pass-phrase-7f3a9c"

/* A fresh EC key in a temporary PEM file, encrypted with PASSPHRASE when
 * encrypt is set; the path into path (PATH_MAX-sized by the caller). */
static void write_key(char *path, int encrypt)
{
    strcpy(path, "/tmp/test_kafka_key.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, encrypt ? EVP_aes_256_cbc() : NULL,
                                          encrypt ? (unsigned char *)PASSPHRASE : NULL,
                                          encrypt ? (int)strlen(PASSPHRASE) : 0, NULL, NULL),
                     1);
    EVP_PKEY_free(pkey);
    fclose(f);
}

/* is_kafka_conf_new with security.protocol PROTO and the kafka.* pairs
 * given (NULL-terminated); 0 if it made a configuration, else -1 with the
 * reason in err. */
static int conf_with(const char *proto, char *err, size_t err_size, ...)
{
    is_config_t *cfg = is_config_new();
    char e[256];
    assert_int_equal(is_config_set(cfg, "kafka.security.protocol", proto, e, sizeof(e)), 0);
    va_list ap;
    va_start(ap, err_size);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(is_config_set(cfg, k, v, e, sizeof(e)), 0);
    }
    va_end(ap);
    err[0] = '\0';
    rd_kafka_conf_t *conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, err, err_size);
    is_config_destroy(cfg);
    if (!conf)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

static void client_key_checked(void **state)
{
    (void)state;
    char enc[64], plain[64], junk[64], err[512];
    write_key(enc, 1);
    write_key(plain, 0);
    strcpy(junk, "/tmp/test_kafka_junk.XXXXXX");
    int fd = mkstemp(junk);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a key\n", 10), 10);
    close(fd);

    assert_int_equal(conf_with("SSL", err, sizeof(err), "kafka.ssl.key.location", enc,
                               "kafka.ssl.key.password", PASSPHRASE, NULL),
                     0);
    assert_int_equal(conf_with("sasl_ssl", err, sizeof(err), "kafka.ssl.key.location", plain, NULL),
                     0);

    assert_int_equal(conf_with("ssl", err, sizeof(err), "kafka.ssl.key.location", enc,
                               "kafka.ssl.key.password", "not-" PASSPHRASE, NULL),
                     -1);
    assert_non_null(strstr(err, "kafka.ssl.key.password does not decrypt this key"));
    assert_non_null(strstr(err, enc));
    assert_null(strstr(err, PASSPHRASE));

    assert_int_equal(conf_with("SSL", err, sizeof(err), "kafka.ssl.key.location", enc, NULL), -1);
    assert_non_null(strstr(err, "the key is encrypted and kafka.ssl.key.password is not set"));

    assert_int_equal(conf_with("SSL", err, sizeof(err), "kafka.ssl.key.location", junk, NULL), -1);
    assert_non_null(strstr(err, "not a PEM private key"));

    assert_int_equal(
        conf_with("SSL", err, sizeof(err), "kafka.ssl.key.location", "/nonexistent/key.pem", NULL),
        -1);
    assert_non_null(strstr(err, "kafka.ssl.key.location=/nonexistent/key.pem: No such file"));

    /* Without TLS librdkafka never loads the key: neither does the check. */
    assert_int_equal(conf_with("plaintext", err, sizeof(err), "kafka.ssl.key.location", junk,
                               "kafka.ssl.key.password", "x", NULL),
                     0);
    unlink(enc);
    unlink(plain);
    unlink(junk);
}

/* is_kafka_explain tells the two refusals apart by the configuration the
 * process's last client was made with. */
static void explain_follows_configuration(void **state)
{
    (void)state;
    char err[512], out[1024];
    assert_int_equal(conf_with("SSL", err, sizeof(err), NULL), 0);
    is_kafka_explain(UNKNOWN, out, sizeof(out));
    assert_non_null(strstr(out, "client certificate required: "));
    assert_int_equal(conf_with("SSL", err, sizeof(err), "kafka.ssl.certificate.location",
                               "/etc/imgsink/client.pem", NULL),
                     0);
    is_kafka_explain(UNKNOWN, out, sizeof(out));
    assert_non_null(strstr(out, "client certificate refused: "));
    is_kafka_explain("1/1 brokers are down", out, sizeof(out));
    assert_string_equal(out, "1/1 brokers are down");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_certificate),    cmocka_unit_test(no_certificate_configured),
        cmocka_unit_test(other_errors_untouched), cmocka_unit_test(needs_operator),
        cmocka_unit_test(client_key_checked),     cmocka_unit_test(explain_follows_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
