/*
 * dlq.c - dead-letter producer. See dlq.h.
 */
#include "dlq.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"

struct is_dlq {
    rd_kafka_t *rk;
    char *topic;
};

/* Delivery status of one message; set by dr_cb, which runs inside
 * rd_kafka_poll on whichever job thread polls first, hence atomic. */
typedef struct dr_status {
    atomic_int done;
    rd_kafka_resp_err_t err; /* written before done is set */
} dr_status_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    dr_status_t *st = rkm->_private;
    (void)rk;
    (void)opaque;
    st->err = rkm->err;
    atomic_store(&st->done, 1);
}

is_dlq_t *is_dlq_new(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, errstr, errstr_size);
    is_dlq_t *dlq;

    if (!conf)
        return NULL;
    /* A dead letter carries the whole original record plus reason headers:
     * librdkafka's 1 MB default would refuse large ones, and a refused DLQ
     * produce is retried forever, holding the partition. The broker's (or
     * topic's) message.max.bytes must allow as much. */
    char max_bytes[32];
    int64_t mb = cfg->input_max_record_bytes + 1024 * 1024;
    snprintf(max_bytes, sizeof(max_bytes), "%lld", (long long)(mb > 1000000000 ? 1000000000 : mb));
    if (is_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "linger.ms", "0", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "message.max.bytes", max_bytes, errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    if (!(dlq = calloc(1, sizeof(*dlq))) || !(dlq->topic = strdup(cfg->dlq_topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        rd_kafka_conf_destroy(conf);
        free(dlq);
        return NULL;
    }
    if (!(dlq->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        free(dlq->topic);
        free(dlq);
        return NULL;
    }
    return dlq;
}

void is_dlq_destroy(is_dlq_t *dlq)
{
    if (!dlq)
        return;
    rd_kafka_flush(dlq->rk, 10000);
    rd_kafka_destroy(dlq->rk);
    free(dlq->topic);
    free(dlq);
}

int is_dlq_send(is_dlq_t *dlq, const rd_kafka_message_t *rkm, const char *klass, const char *reason,
                char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *src = NULL, *hdrs;
    char part[16], off[32], when[40];
    dr_status_t st = {0, RD_KAFKA_RESP_ERR_NO_ERROR};

    time_t now = time(NULL);
    struct tm tm;

    if (!rd_kafka_message_headers(rkm, &src) && src)
        hdrs = rd_kafka_headers_copy(src);
    else
        hdrs = rd_kafka_headers_new(8);
    snprintf(part, sizeof(part), "%d", (int)rkm->partition);
    snprintf(off, sizeof(off), "%lld", (long long)rkm->offset);
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    rd_kafka_header_add(hdrs, "imgsink.error.class", -1, klass, -1);
    rd_kafka_header_add(hdrs, "imgsink.error.message", -1, reason, -1);
    rd_kafka_header_add(hdrs, "imgsink.source.topic", -1, rd_kafka_topic_name(rkm->rkt), -1);
    rd_kafka_header_add(hdrs, "imgsink.source.partition", -1, part, -1);
    rd_kafka_header_add(hdrs, "imgsink.source.offset", -1, off, -1);
    rd_kafka_header_add(hdrs, "imgsink.worker.version", -1, IS_VERSION, -1);
    rd_kafka_header_add(hdrs, "imgsink.time", -1, when, -1);

    rd_kafka_resp_err_t err = rd_kafka_producev(
        dlq->rk, RD_KAFKA_V_TOPIC(dlq->topic), RD_KAFKA_V_KEY(rkm->key, rkm->key_len),
        RD_KAFKA_V_VALUE(rkm->payload, rkm->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&st), RD_KAFKA_V_END);
    if (err) {
        /* On failure the headers were not taken over. */
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "produce to %s: %s", dlq->topic, rd_kafka_err2str(err));
        return -1;
    }
    /* message.timeout.ms bounds this wait: librdkafka always reports. */
    while (!atomic_load(&st.done))
        rd_kafka_poll(dlq->rk, 100);
    if (st.err) {
        snprintf(errstr, errstr_size, "deliver to %s: %s", dlq->topic, rd_kafka_err2str(st.err));
        return -1;
    }
    return 0;
}
