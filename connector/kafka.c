/*
 * kafka.c - librdkafka configuration and log routing. See kafka.h.
 */
#include "kafka.h"

#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

void is_kafka_explain(const char *reason, char *out, size_t out_size)
{
    char refusal[sizeof(tls_refusal)];
    pthread_mutex_lock(&tls_lock);
    snprintf(refusal, sizeof(refusal), "%s", tls_refusal);
    pthread_mutex_unlock(&tls_lock);
    if (refusal[0] && strstr(reason, "certificate verify failed"))
        snprintf(out, out_size, "certificate verify failed: %s", refusal);
    else
        snprintf(out, out_size, "%s", reason);
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

rd_kafka_conf_t *is_kafka_conf_new(const is_config_t *cfg, is_kafka_role_t role, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_ssl_cert_verify_cb(conf, cert_verify_cb);
    if (is_kafka_conf_set(conf, "client.id", "imgsink", errstr, errstr_size))
        goto fail;
    for (size_t i = 0; i < cfg->nkafka; i++) {
        if (role == IS_KAFKA_PRODUCER && consumer_only(cfg->kafka[i].key))
            continue;
        if (is_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, errstr, errstr_size))
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
