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
     * librdkafka's 1 MB default would refuse large ones. Larger ones, or
     * ones the broker or topic refuses, carry their value by reference
     * (is_dlq_send), so a dead letter is always deliverable. */
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

/* Framing of one record in a record batch (batch header 61 bytes, record
 * attributes, varints) with room to spare: what message.max.bytes must hold
 * beyond key, value and headers. */
#define DLQ_FRAMING_BYTES 1024

/* Serialized size of one header in a v2 record: two varint lengths (at
 * most 5 bytes each for the sizes here), the name and the value. */
static size_t header_size(const char *name, size_t value_size)
{
    return 10 + strlen(name) + value_size;
}

/* The DLQ producer's message.max.bytes, as librdkafka has it. */
static size_t max_message_bytes(is_dlq_t *dlq)
{
    char buf[32];
    size_t size = sizeof(buf);

    if (rd_kafka_conf_get(rd_kafka_conf(dlq->rk), "message.max.bytes", buf, &size) !=
        RD_KAFKA_CONF_OK)
        return 1000000; /* librdkafka's default */
    return (size_t)strtoull(buf, NULL, 10);
}

/* Copies the record's own headers into hdrs. imgsink.* headers of an
 * earlier dead letter become imgsink.previous.*, and older
 * imgsink.previous.* ones are dropped, so a record dead-lettered again
 * carries one set of each. Returns the bytes added. */
static size_t copy_headers(rd_kafka_headers_t *hdrs, const rd_kafka_message_t *rkm)
{
    static const char ours[] = "imgsink.", previous[] = "imgsink.previous.";
    rd_kafka_headers_t *src = NULL;
    const char *name;
    const void *value;
    size_t vsize, bytes = 0;

    if (rd_kafka_message_headers(rkm, &src) || !src)
        return 0;
    for (size_t i = 0; !rd_kafka_header_get_all(src, i, &name, &value, &vsize); i++) {
        char renamed[256];
        if (!strncmp(name, previous, sizeof(previous) - 1))
            continue;
        if (!strncmp(name, ours, sizeof(ours) - 1)) {
            int n = snprintf(renamed, sizeof(renamed), "%s%s", previous, name + sizeof(ours) - 1);
            if (n < 0 || (size_t)n >= sizeof(renamed))
                continue; /* not one imgsink wrote */
            name = renamed;
        }
        rd_kafka_header_add(hdrs, name, -1, value, (ssize_t)vsize);
        bytes += header_size(name, vsize);
    }
    return bytes;
}

static size_t add_header(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    rd_kafka_header_add(hdrs, name, -1, value, -1);
    return header_size(name, strlen(value));
}

/* A refusal only an operator can lift: retried like any failed DLQ
 * produce (a dead letter is never skipped), but named. */
static const char *acl_hint(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
               ? " (a Kafka ACL is missing: the worker's principal needs Write on the DLQ topic; "
                 "see deploy/kafka/acls.sh)"
               : "";
}

int is_dlq_send(is_dlq_t *dlq, const rd_kafka_message_t *rkm, const char *klass, const char *reason,
                const is_dlq_ref_t *ref, char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *hdrs;
    char part[16], off[32], when[40], num[32], where[1200];
    dr_status_t st = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    size_t limit = max_message_bytes(dlq), bytes = 0, key_len = rkm->key_len;
    const void *key = rkm->key, *value = ref ? "" : rkm->payload;
    size_t value_len = ref ? 0 : rkm->len;
    int drop_headers = 0;

    time_t now = time(NULL);
    struct tm tm;

    limit = limit > DLQ_FRAMING_BYTES ? limit - DLQ_FRAMING_BYTES : 0;
    snprintf(part, sizeof(part), "%d", (int)rkm->partition);
    snprintf(off, sizeof(off), "%lld", (long long)rkm->offset);
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (;;) {
        hdrs = rd_kafka_headers_new(16);
        bytes = drop_headers ? 0 : copy_headers(hdrs, rkm);
        bytes += add_header(hdrs, "imgsink.error.class", klass);
        bytes += add_header(hdrs, "imgsink.error.message", reason);
        bytes += add_header(hdrs, "imgsink.source.topic", rd_kafka_topic_name(rkm->rkt));
        bytes += add_header(hdrs, "imgsink.source.partition", part);
        bytes += add_header(hdrs, "imgsink.source.offset", off);
        bytes += add_header(hdrs, "imgsink.worker.version", IS_VERSION);
        bytes += add_header(hdrs, "imgsink.time", when);
        if (ref) {
            snprintf(where, sizeof(where), "s3://%s/%s", ref->bucket, ref->key);
            snprintf(num, sizeof(num), "%zu", ref->size);
            bytes += add_header(hdrs, "imgsink.dlq.value.ref", where);
            bytes += add_header(hdrs, "imgsink.dlq.value.size", num);
            bytes += add_header(hdrs, "imgsink.dlq.value.sha256", ref->sha256);
        }
        if (drop_headers)
            bytes += add_header(hdrs, "imgsink.dlq.dropped", key ? "headers" : "headers,key");
        if (bytes + key_len + value_len <= limit)
            break;
        rd_kafka_headers_destroy(hdrs);
        /* Too large for the producer: librdkafka would refuse it at once. */
        if (!ref)
            return IS_DLQ_TOO_LARGE;
        /* Even with the value stored elsewhere: the record's own headers
         * go, then its key. The reason headers are small and stay. */
        if (!drop_headers) {
            drop_headers = 1;
        } else if (key) {
            key = NULL;
            key_len = 0;
        } else {
            snprintf(errstr, errstr_size,
                     "dead letter of %zu bytes exceeds the DLQ producer's message.max.bytes",
                     bytes);
            return -1;
        }
    }

    rd_kafka_resp_err_t err = rd_kafka_producev(
        dlq->rk, RD_KAFKA_V_TOPIC(dlq->topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&st), RD_KAFKA_V_END);
    if (err) {
        /* On failure the headers were not taken over. */
        rd_kafka_headers_destroy(hdrs);
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !ref)
            return IS_DLQ_TOO_LARGE;
        snprintf(errstr, errstr_size, "produce to %s: %s%s", dlq->topic, rd_kafka_err2str(err),
                 acl_hint(err));
        return -1;
    }
    /* message.timeout.ms bounds this wait: librdkafka always reports. */
    while (!atomic_load(&st.done))
        rd_kafka_poll(dlq->rk, 100);
    if (st.err) {
        /* The broker or the topic (max.message.bytes) may allow less than
         * the producer: such a refusal is final for this size. */
        if ((st.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
             st.err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE) &&
            !ref)
            return IS_DLQ_TOO_LARGE;
        snprintf(errstr, errstr_size, "deliver to %s: %s%s", dlq->topic, rd_kafka_err2str(st.err),
                 acl_hint(st.err));
        return -1;
    }
    return 0;
}

int is_dlq_value_key(const char *prefix, const rd_kafka_message_t *rkm, char *out, size_t out_size)
{
    /* Kafka topic names are [A-Za-z0-9._-] and never "." or "..": safe
     * as a key segment as they are. */
    int n = snprintf(out, out_size, "%sdlq/%s/%d/%lld.value", prefix ? prefix : "",
                     rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, (long long)rkm->offset);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}
