/*
 * kafka.c - librdkafka configuration and log routing. See kafka.h.
 */
#include "kafka.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

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
