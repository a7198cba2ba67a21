/*
 * kafka.c - librdkafka configuration and log routing. See kafka.h.
 */
#include "kafka.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* The last certificate a client refused, with OpenSSL's reason: librdkafka
 * reports every refusal as "certificate verify failed ... verify that
 * ssl.ca.location is correctly configured", whether the CA is unknown or
 * the certificate names another host. One per process: written on
 * librdkafka's broker threads, read where an error is reported. */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static char tls_refusal[512];

/* OpenSSL's verify step, once per certificate of the broker's chain, on a
 * broker thread. Keeps OpenSSL's verdict (an error stays an error, with
 * verification off it is ignored as before) and only records why. */
static int cert_verify_cb(rd_kafka_t *rk, const char *broker_name, int32_t broker_id,
                          int *x509_error, int depth, const char *buf, size_t size, char *errstr,
                          size_t errstr_size, void *opaque)
{
    (void)rk, (void)broker_id, (void)buf, (void)size, (void)opaque;
    if (!*x509_error)
        return 1;
    const char *why = X509_verify_cert_error_string(*x509_error);
    const char *hint =
        *x509_error == X509_V_ERR_HOSTNAME_MISMATCH || *x509_error == X509_V_ERR_IP_ADDRESS_MISMATCH
            ? "the broker's certificate does not name the host connected to"
        : depth > 0 || *x509_error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                *x509_error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
                *x509_error == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
            ? "the broker's certificate is not signed by a CA in kafka.ssl.ca.location"
            : "the broker's certificate was refused";
    snprintf(errstr, errstr_size, "certificate verify failed: %s (%s)", why, hint);
    pthread_mutex_lock(&tls_lock);
    snprintf(tls_refusal, sizeof(tls_refusal), "%s: %s: %s (OpenSSL error %d at depth %d)",
             broker_name, hint, why, *x509_error, depth);
    pthread_mutex_unlock(&tls_lock);
    return 0;
}

/* Whether this process's clients present a certificate of their own
 * (kafka.ssl.certificate.location, .pem or a keystore). A broker that
 * refuses client authentication answers with a TLS alert that does not
 * say whether no certificate came or one it does not trust; this does.
 * Set by is_kafka_conf_new, read by is_kafka_explain on any thread. */
static atomic_int client_cert_set;

int is_kafka_explain_client_auth(const char *reason, int have_cert, char *out, size_t out_size)
{
    /* OpenSSL's names of the alerts a broker sends when it refuses the
     * client's certificate (or the lack of one): "...: sslv3 alert
     * certificate unknown: SSL alert number 46". */
    static const char *const alerts[] = {
        "alert certificate required", /* TLS 1.3: none was sent */
        "alert bad certificate",         "alert certificate unknown", "alert unknown ca",
        "alert unsupported certificate", "alert certificate expired", "alert certificate revoked",
        "alert access denied",
    };
    size_t i, n = sizeof(alerts) / sizeof(alerts[0]);
    /* Before the alert, librdkafka's client-certificate callback may say
     * that the certificate's issuer is not among the CAs the broker listed
     * in its CertificateRequest, and send none: the same refusal, seen
     * from this side (`imgsink check` reports this one: it is the last
     * error when its metadata request times out). */
    if (have_cert && strstr(reason, "No matching issuer found in server trusted certificate")) {
        snprintf(out, out_size,
                 "client certificate refused: the broker does not accept the certificate of "
                 "kafka.ssl.certificate.location (its issuer is not among the CAs the broker "
                 "trusts for clients, so none was sent); librdkafka: %s",
                 reason);
        return 1;
    }
    for (i = 0; i < n && !strstr(reason, alerts[i]); i++)
        ;
    if (i == n)
        return 0;
    if (have_cert)
        snprintf(out, out_size,
                 "client certificate refused: the broker does not accept the certificate of "
                 "kafka.ssl.certificate.location (not signed by a CA it trusts, expired, or not "
                 "for client authentication); librdkafka: %s",
                 reason);
    else
        snprintf(out, out_size,
                 "client certificate required: the broker asks for one and none is configured "
                 "(kafka.ssl.certificate.location, kafka.ssl.key.location); librdkafka: %s",
                 reason);
    return 1;
}

void is_kafka_explain(const char *reason, char *out, size_t out_size)
{
    char refusal[sizeof(tls_refusal)];
    pthread_mutex_lock(&tls_lock);
    snprintf(refusal, sizeof(refusal), "%s", tls_refusal);
    pthread_mutex_unlock(&tls_lock);
    if (refusal[0] && strstr(reason, "certificate verify failed"))
        snprintf(out, out_size, "certificate verify failed: %s", refusal);
    else if (!is_kafka_explain_client_auth(reason, atomic_load(&client_cert_set), out, out_size))
        snprintf(out, out_size, "%s", reason);
}

int is_kafka_needs_operator(int err, const char *explained)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL ||
           strstr(explained, "certificate verify failed") ||
           !strncmp(explained, "client certificate ", 19);
}

/* librdkafka's syslog-style levels map onto ours directly (3 err, 4
 * warning, 6 info, 7 debug); 0..2 are worse than error. Runs on librdkafka's
 * internal threads. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    int lvl = level <= IS_LOG_ERROR ? IS_LOG_ERROR : level == 5 ? IS_LOG_INFO : level;
    IS_LOG(lvl, "rdkafka", json_pack("{s:s, s:s}", "facility", fac, "client", rd_kafka_name(rk)),
           "%s", buf);
}

int is_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                      size_t errstr_size)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka.%s=%s: %s", key, value, why);
        return -1;
    }
    return 0;
}

static int consumer_only(const char *key)
{
    static const char *const prefixes[] = {
        "group.",
        "auto.offset.reset",
        "enable.auto.",
        "auto.commit.",
        "session.timeout",
        "heartbeat.",
        "max.poll.",
        "partition.assignment.",
        "fetch.",
        "isolation.level",
        "check.crcs",
        "queued.",
        "enable.partition.eof",
        "consume.",
        "offset.store.",
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (!strncmp(key, prefixes[i], strlen(prefixes[i])))
            return 1;
    return 0;
}

typedef struct key_pass {
    const char *pass; /* kafka.ssl.key.password, NULL if not set */
    int asked;        /* the key is encrypted: OpenSSL asked for it */
} key_pass_t;

/* OpenSSL's passphrase callback (never a terminal prompt). */
static int key_pass_cb(char *buf, int size, int rwflag, void *u)
{
    key_pass_t *kp = u;
    (void)rwflag;
    kp->asked = 1;
    if (!kp->pass)
        return -1;
    int n = (int)strlen(kp->pass);
    if (n > size)
        return -1;
    memcpy(buf, kp->pass, (size_t)n);
    return n;
}

/* librdkafka reports any client key it cannot load as "ssl.key.location
 * failed: ... PEM lib". The key is read here first, as librdkafka reads it
 * (PEM, the same passphrase), so that the error says whether the
 * passphrase is wrong or missing or the file is no key. The passphrase
 * never goes into errstr. */
static int key_check(const char *path, const char *pass, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "kafka.ssl.key.location=%s: %s", path, strerror(errno));
        return -1;
    }
    key_pass_t kp = {pass, 0};
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, key_pass_cb, &kp);
    fclose(f);
    ERR_clear_error();
    if (pkey) {
        EVP_PKEY_free(pkey);
        return 0;
    }
    snprintf(errstr, errstr_size, "kafka.ssl.key.location=%s: %s", path,
             !kp.asked ? "not a PEM private key"
             : pass    ? "kafka.ssl.key.password does not decrypt this key"
                       : "the key is encrypted and kafka.ssl.key.password is not set");
    return -1;
}

rd_kafka_conf_t *is_kafka_conf_new(const is_config_t *cfg, is_kafka_role_t role, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_ssl_cert_verify_cb(conf, cert_verify_cb);
    if (is_kafka_conf_set(conf, "client.id", "imgsink", errstr, errstr_size))
        goto fail;
    int cert = 0;
    for (size_t i = 0; i < cfg->nkafka; i++) {
        const char *key = cfg->kafka[i].key;
        if (!strcmp(key, "ssl.certificate.location") || !strcmp(key, "ssl.certificate.pem") ||
            !strcmp(key, "ssl.keystore.location"))
            cert |= cfg->kafka[i].value[0] != '\0';
        if (role == IS_KAFKA_PRODUCER && consumer_only(key))
            continue;
        if (is_kafka_conf_set(conf, key, cfg->kafka[i].value, errstr, errstr_size))
            goto fail;
    }
    atomic_store(&client_cert_set, cert);
    const char *proto = is_config_kafka_get(cfg, "security.protocol");
    const char *key = is_config_kafka_get(cfg, "ssl.key.location");
    if (proto && (!strcasecmp(proto, "ssl") || !strcasecmp(proto, "sasl_ssl")) && key && *key &&
        key_check(key, is_config_kafka_get(cfg, "ssl.key.password"), errstr, errstr_size))
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
