/*
 * worker.c - the consumer loop, per-record processing, the DLQ and offset
 * storage. See worker.h for the delivery protocol.
 */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "dlq.h"
#include "envelope.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "metadata.h"
#include "pipeline.h"
#include "s3.h"
#include "sigv4.h"

/* What became of one record. */
typedef enum {
    REC_WRITTEN,  /* every object is durable: store the offset */
    REC_DLQ,      /* permanent failure: send to the DLQ, then store */
    REC_ABANDONED /* shutdown deadline hit while retrying: store nothing */
} rec_outcome_t;

typedef struct is_worker {
    const is_config_t *cfg;
    rd_kafka_t *rk; /* consumer */
    is_dlq_t *dlq;
    is_s3_t *s3;
    is_pipeline_conf_t pconf;
    is_envelope_format_t envfmt;
    volatile sig_atomic_t *stop;
    struct timespec stop_deadline;
    int stopping;
    int fatal;
    /* counters, logged at exit */
    long long n_in, n_written, n_dlq, n_retries, n_puts, n_abandoned;
} is_worker_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* True once a stop was requested and its deadline passed: retry loops give
 * up then, leaving the record uncommitted for the next owner. */
static int past_deadline(is_worker_t *w)
{
    if (!*w->stop)
        return 0;
    if (!w->stopping) {
        w->stopping = 1;
        double d = now_s() + w->cfg->shutdown_timeout_ms / 1e3;
        w->stop_deadline.tv_sec = (time_t)d;
        w->stop_deadline.tv_nsec = (long)((d - (time_t)d) * 1e9);
    }
    return now_s() >= w->stop_deadline.tv_sec + w->stop_deadline.tv_nsec / 1e9;
}

/* Capped exponential backoff with full jitter; sleeps in slices so a
 * shutdown is noticed. Returns -1 if the shutdown deadline passed. */
static int backoff(is_worker_t *w, int attempt)
{
    double cap = (double)w->cfg->retry_backoff_max_ms;
    double exp =
        (double)w->cfg->retry_backoff_initial_ms * (double)(1u << (attempt < 20 ? attempt : 20));
    double ms = (exp < cap ? exp : cap) * ((double)rand() / RAND_MAX);
    double until = now_s() + ms / 1e3;

    w->n_retries++;
    while (now_s() < until) {
        if (past_deadline(w))
            return -1;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return past_deadline(w) ? -1 : 0;
}

/* PUTs one object, retrying transient failures for as long as it takes.
 * Returns 0 written, 1 permanent failure (errstr), -1 abandoned. */
static int put_retry(is_worker_t *w, const char *key, const void *body, size_t len,
                     const char *ctype, const char *tagging, char *errstr, size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        is_s3_result_t r = is_s3_put(w->s3, key, body, len, ctype, tagging,
                                     w->cfg->s3_if_none_match, errstr, errstr_size);
        w->n_puts++;
        if (r == IS_S3_OK)
            return 0;
        if (r == IS_S3_PERMANENT)
            return 1;
        IS_WARN("s3", json_pack("{s:s, s:i}", "key", key, "attempt", attempt + 1),
                "transient PUT failure, retrying: %s", errstr);
        if (backoff(w, attempt))
            return -1;
    }
}

/* Fetches a claim-check payload. Same return convention as put_retry. */
static int get_retry(is_worker_t *w, const is_objref_t *ref, void **body, size_t *len, char *errstr,
                     size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        is_s3_result_t r =
            is_s3_get(w->s3, ref->bucket, ref->key, (size_t)w->cfg->limits_max_input_bytes, body,
                      len, errstr, errstr_size);
        if (r == IS_S3_OK)
            return 0;
        if (r == IS_S3_PERMANENT)
            return 1;
        IS_WARN("s3", json_pack("{s:s, s:s}", "bucket", ref->bucket, "key", ref->key),
                "transient GET failure, retrying: %s", errstr);
        if (backoff(w, attempt))
            return -1;
    }
}

/* Processes one record to its outcome. For REC_DLQ, *klass and reason say
 * why. Runs on the poll thread. */
static rec_outcome_t process(is_worker_t *w, const rd_kafka_message_t *rkm, const char **klass,
                             char *reason, size_t reason_size)
{
    const is_config_t *cfg = w->cfg;
    is_record_t *rec = NULL;
    is_result_t res = {0};
    void *fetched = NULL;
    const void *img;
    size_t img_len;
    char *keys[IS_MAX_RENDITIONS] = {0};
    char *meta = NULL, mkey[1024], tagging[256], sha[65];
    rec_outcome_t out = REC_DLQ;
    int rc;

    if (is_envelope_decode(rkm->payload, rkm->len, w->envfmt, (size_t)cfg->input_max_record_bytes,
                           &rec, reason, reason_size)) {
        *klass = "envelope";
        goto done;
    }
    /* Validates id and tenant before any work: they become key segments. */
    if (is_keys_object(cfg->s3_prefix, rec->tenant, rec->uploaded_at_ms, rec->id, "metadata",
                       "json", mkey, sizeof(mkey), reason, reason_size)) {
        *klass = "record";
        goto done;
    }
    if (is_keys_tagging(rec->retention_days, rec->source, tagging, sizeof(tagging))) {
        snprintf(reason, reason_size, "cannot encode retention tag");
        *klass = "record";
        goto done;
    }
    if (rec->payload_is_ref) {
        rc = get_retry(w, &rec->ref, &fetched, &img_len, reason, reason_size);
        if (rc) {
            *klass = "claim-check";
            out = rc < 0 ? REC_ABANDONED : REC_DLQ;
            goto done;
        }
        img = fetched;
    } else {
        img = rec->payload;
        img_len = rec->payload_len;
    }

    is_proc_result_t pr;
    for (int attempt = 0;; attempt++) {
        pr = is_pipeline_run(&w->pconf, img, img_len, &res, reason, reason_size);
        if (pr != IS_PROC_RETRY)
            break;
        if (backoff(w, attempt)) {
            out = REC_ABANDONED;
            goto done;
        }
    }
    if (pr == IS_PROC_FAIL) {
        *klass = "image";
        goto done;
    }

    /* Renditions first, metadata.json last: its presence means the record
     * is complete. */
    for (int i = 0; i < res.nout; i++) {
        keys[i] = malloc(1024);
        if (!keys[i] ||
            is_keys_object(cfg->s3_prefix, rec->tenant, rec->uploaded_at_ms, rec->id,
                           res.out[i].name, res.out[i].ext, keys[i], 1024, reason, reason_size)) {
            *klass = "record";
            goto done;
        }
        rc = put_retry(w, keys[i], res.out[i].buf, res.out[i].len, res.out[i].content_type, tagging,
                       reason, reason_size);
        if (rc) {
            *klass = "store";
            out = rc < 0 ? REC_ABANDONED : REC_DLQ;
            goto done;
        }
    }
    is_sha256_hex(img, img_len, sha);
    is_metadata_src_t src = {rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset, sha};
    if (!(meta = is_metadata_json(rec, &res, keys, &src))) {
        snprintf(reason, reason_size, "cannot build metadata.json (invalid text in record?)");
        *klass = "record";
        goto done;
    }
    rc = put_retry(w, mkey, meta, strlen(meta), "application/json", tagging, reason, reason_size);
    if (rc) {
        *klass = "store";
        out = rc < 0 ? REC_ABANDONED : REC_DLQ;
        goto done;
    }
    IS_DEBUG("worker",
             json_pack("{s:s, s:s, s:i, s:I, s:i, s:f}", "id", rec->id, "topic",
                       rd_kafka_topic_name(rkm->rkt), "partition", (int)rkm->partition, "offset",
                       (json_int_t)rkm->offset, "objects", res.nout + 1, "processing_ms",
                       res.processing_ms),
             "record written");
    out = REC_WRITTEN;
done:
    for (int i = 0; i < IS_MAX_RENDITIONS; i++)
        free(keys[i]);
    free(meta);
    free(fetched);
    is_result_clear(&res);
    is_record_destroy(rec);
    return out;
}

/* Stores offset + 1 for the record's partition. A partition that is no
 * longer assigned (__STATE) moved to another member: the record will be
 * processed again there, so this is logged and dropped, never retried. */
static void store_offset(is_worker_t *w, const rd_kafka_message_t *rkm)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    p->offset = rkm->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(w->rk, parts);
    if (!err)
        err = p->err;
    if (err)
        IS_WARN("worker",
                json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(rkm->rkt), "partition",
                          (int)rkm->partition, "offset", (json_int_t)rkm->offset),
                "offset not stored (%s): the partition moved to another member, which will "
                "process this record again",
                rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(parts);
}

static void handle(is_worker_t *w, rd_kafka_message_t *rkm)
{
    const char *klass = "unknown";
    char reason[1024] = "";

    w->n_in++;
    rec_outcome_t out = process(w, rkm, &klass, reason, sizeof(reason));
    if (out == REC_DLQ) {
        IS_WARN("worker",
                json_pack("{s:s, s:i, s:I, s:s}", "topic", rd_kafka_topic_name(rkm->rkt),
                          "partition", (int)rkm->partition, "offset", (json_int_t)rkm->offset,
                          "class", klass),
                "record sent to DLQ: %s", reason);
        /* A DLQ produce that fails is retried, never skipped: the offset
         * only moves once the record is durably in the DLQ. */
        for (int attempt = 0;; attempt++) {
            char why[512];
            if (!is_dlq_send(w->dlq, rkm, klass, reason, why, sizeof(why))) {
                w->n_dlq++;
                break;
            }
            IS_WARN("dlq", json_pack("{s:i}", "attempt", attempt + 1),
                    "DLQ produce failed, retrying: %s", why);
            if (backoff(w, attempt)) {
                out = REC_ABANDONED;
                break;
            }
        }
    } else if (out == REC_WRITTEN) {
        w->n_written++;
    }
    if (out == REC_ABANDONED) {
        w->n_abandoned++;
        IS_WARN("worker",
                json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(rkm->rkt), "partition",
                          (int)rkm->partition, "offset", (json_int_t)rkm->offset),
                "shutdown deadline reached; record left uncommitted and will be reprocessed");
        return;
    }
    store_offset(w, rkm);
}

static void log_parts(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    json_t *arr = json_array();
    for (int i = 0; i < parts->cnt; i++)
        json_array_append_new(
            arr, json_sprintf("%s[%d]", parts->elems[i].topic, (int)parts->elems[i].partition));
    IS_INFO("rebalance", json_pack("{s:o}", "partitions", arr), "%s", what);
}

/* Served on the poll thread from inside rd_kafka_consumer_poll, never while
 * a record is being processed, so a revoked partition has no work in flight:
 * commit what was stored for it synchronously, then let it go. A lost
 * assignment (session timed out) is given up without committing: another
 * member already owns it. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    (void)opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_parts("partitions assigned", parts);
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        return;
    }
    if (rd_kafka_assignment_lost(rk)) {
        log_parts("partitions lost: dropping them without commit", parts);
    } else {
        log_parts("partitions revoked: committing stored offsets", parts);
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            IS_WARN("rebalance", NULL, "commit on revoke failed: %s", rd_kafka_err2str(cerr));
    }
    if (cooperative)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
}

/* Called from rd_kafka_consumer_poll on the poll thread. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    is_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        IS_ERR("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(orig)),
               "fatal consumer error (a fenced static member: another instance uses the same "
               "kafka.group.instance.id): %s",
               why);
        w->fatal = 1;
        return;
    }
    IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "%s", reason);
}

static rd_kafka_t *consumer_new(is_worker_t *w, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = is_kafka_conf_new(w->cfg, IS_KAFKA_CONSUMER, errstr, errstr_size);
    rd_kafka_t *rk = NULL;
    char *topics = NULL, *save = NULL;

    if (!conf)
        return NULL;
    /* The delivery protocol: these are not the operator's to change. */
    if (is_kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size))
        goto fail;
    if (!is_config_kafka_get(w->cfg, "partition.assignment.strategy") &&
        is_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                          errstr_size))
        goto fail;
    if (!is_config_kafka_get(w->cfg, "auto.offset.reset") &&
        is_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size))
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, w);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
        goto fail;
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(rk);

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(4);
    topics = strdup(w->cfg->input_topics);
    for (char *t = strtok_r(topics, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    free(topics);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe to %s: %s", w->cfg->input_topics,
                 rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return NULL;
}

int is_worker_run(const is_config_t *cfg, const char *argv0, volatile sig_atomic_t *stop,
                  char *errstr, size_t errstr_size)
{
    is_worker_t w = {.cfg = cfg, .stop = stop};
    int rc = -1;

    w.pconf = (is_pipeline_conf_t){.max_input_bytes = cfg->limits_max_input_bytes,
                                   .max_pixels = cfg->limits_max_pixels,
                                   .fail_on = cfg->limits_fail_on,
                                   .renditions = cfg->renditions,
                                   .nrenditions = cfg->nrenditions};
    w.envfmt = !strcmp(cfg->input_format, "avro")        ? IS_ENVELOPE_AVRO
               : !strcmp(cfg->input_format, "confluent") ? IS_ENVELOPE_CONFLUENT
                                                         : IS_ENVELOPE_AUTO;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    if (is_pipeline_global_init(argv0, cfg->limits_formats, (int)cfg->vips_concurrency, errstr,
                                errstr_size))
        return -1;
    is_s3_conf_t s3c = {cfg->s3_endpoint,      cfg->s3_region,
                        cfg->s3_bucket,        cfg->s3_access_key,
                        cfg->s3_secret_key,    cfg->s3_session_token,
                        cfg->s3_path_style,    cfg->s3_connect_timeout_ms,
                        cfg->s3_timeout_ms,    strcmp(cfg->s3_sse, "none") ? cfg->s3_sse : NULL,
                        cfg->s3_sse_kms_key_id};
    if (!(w.s3 = is_s3_new(&s3c, errstr, errstr_size)))
        goto done;
    if (!(w.dlq = is_dlq_new(cfg, errstr, errstr_size)))
        goto done;
    if (!(w.rk = consumer_new(&w, errstr, errstr_size)))
        goto done;

    IS_INFO("worker",
            json_pack("{s:s, s:s, s:s, s:s, s:i}", "topics", cfg->input_topics, "group",
                      is_config_kafka_get(cfg, "group.id"), "bucket", cfg->s3_bucket, "dlq",
                      cfg->dlq_topic, "renditions", cfg->nrenditions),
            "imgsink %s started", IS_VERSION);

    while (!*stop && !w.fatal) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w.rk, 200);
        if (!rkm)
            continue;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(rkm->err)),
                        "consumer: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        handle(&w, rkm);
        rd_kafka_message_destroy(rkm);
    }

    IS_INFO("worker", NULL, "stopping: committing stored offsets and leaving the group");
    rd_kafka_resp_err_t err = rd_kafka_commit(w.rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        IS_WARN("worker", NULL, "final commit: %s", rd_kafka_err2str(err));
    /* Leaves the group; the revoke callback commits once more on the way. */
    rd_kafka_consumer_close(w.rk);
    if (w.fatal) {
        snprintf(errstr, errstr_size,
                 "fatal Kafka error (see the log above); exiting so the orchestrator restarts "
                 "this member");
        goto done;
    }
    rc = 0;
done:
    IS_INFO("worker",
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "records_in", (json_int_t)w.n_in,
                      "records_written", (json_int_t)w.n_written, "records_dlq",
                      (json_int_t)w.n_dlq, "records_abandoned", (json_int_t)w.n_abandoned, "puts",
                      (json_int_t)w.n_puts, "retries", (json_int_t)w.n_retries),
            "worker totals");
    if (w.rk)
        rd_kafka_destroy(w.rk);
    is_dlq_destroy(w.dlq);
    is_s3_destroy(w.s3);
    is_pipeline_global_term();
    return rc;
}
