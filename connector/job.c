/*
 * job.c - job threads: one record from envelope to durable objects (or the
 * DLQ), then its offset marked done. See worker_int.h for threads and locks.
 *
 * Each job thread owns one S3 client (a curl handle with its connection
 * pool). Transient failures are retried with capped exponential backoff and
 * full jitter for as long as it takes; a retry loop gives up only when the
 * worker is shutting down past its deadline or the record's partition was
 * revoked past the drain deadline (slot->cancel). A record given up is never
 * marked done, so its offset is never stored: it will be processed again.
 *
 * All retries of a worker also share one budget (retry_budget.h): after its
 * backoff a retry takes a token, or waits for one.
 *
 * The watchdog (watchdog.c) reads the slot's beat, which every attempt and
 * every wait refreshes, and may set slot->interrupt (aborts an S3 request:
 * a transient failure, retried) or slot->orphaned (the thread was left
 * behind and its job handed to another thread: this thread must not finish
 * the record, and exits when it comes back).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <vips/vips.h>

#include "events.h"
#include "keys.h"
#include "log.h"
#include "metadata.h"
#include "metrics.h"
#include "s3event.h"
#include "sigv4.h"
#include "worker_int.h"

typedef enum {
    REC_WRITTEN,  /* every object is durable: mark done */
    REC_DLQ,      /* permanent failure: to the DLQ, then mark done */
    REC_ABANDONED /* gave up retrying (shutdown/revoke): leave undone */
} rec_outcome_t;

/* Per-thread context passed down the call chain. */
typedef struct jctx {
    is_worker_t *w;
    is_slot_t *slot;
    is_s3_t *s3;
    unsigned int seed; /* rand_r state for jitter */
    is_event_t *ev;    /* what the record's ImageEvent will say (events.h) */
    /* The running record's stages (imgsink_stage_duration_seconds): PUT
     * attempts summed; decode and encode from the pipeline, < 0 if it did
     * not run. */
    double queue_s, put_s, decode_s, encode_s;
} jctx_t;

/* The slot of the job thread running this code (NULL elsewhere), for the
 * pixel budget hooks the pipeline calls. */
static _Thread_local is_slot_t *cur_slot;

static int giving_up(jctx_t *j)
{
    return atomic_load(&j->w->abandon) || atomic_load(&j->slot->cancel) ||
           atomic_load(&j->slot->orphaned);
}

static void beat(is_slot_t *slot, is_phase_t phase)
{
    atomic_store(&slot->phase, (int)phase);
    atomic_store(&slot->beat_ms, is_now_ms());
}

/* Every attempt of an operation starts here: a fresh beat for the watchdog,
 * no interrupt pending, and a first attempt earns the retry budget its
 * share. Non-zero: give up instead (shutdown, revoke, left behind). */
static int attempt_begin(jctx_t *j, is_phase_t phase, int attempt)
{
    if (giving_up(j))
        return -1;
    atomic_store(&j->slot->interrupt, 0);
    beat(j->slot, phase);
    if (attempt == 0)
        is_retry_budget_deposit(&j->w->budget, is_now_s());
    return 0;
}

/* Sleeps one 20 ms slice of a wait that is not a stall. */
static void wait_slice(jctx_t *j)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    beat(j->slot, IS_PHASE_BACKOFF);
}

/* Waits for a token of the retry budget. 0 got one, -1 give up. */
static int budget_wait(jctx_t *j)
{
    static atomic_llong last_log_ms;
    int waited = 0;

    while (!is_retry_budget_take(&j->w->budget, is_now_s())) {
        if (giving_up(j))
            return -1;
        if (!waited++) {
            is_metrics_inc(IS_M_RETRY_BUDGET_WAITS);
            int64_t now = is_now_ms(), last = atomic_load(&last_log_ms);
            if (now - last >= 10000 && atomic_compare_exchange_strong(&last_log_ms, &last, now))
                IS_WARN("job",
                        json_pack("{s:I, s:I}", "retry.budget.percent",
                                  (json_int_t)j->w->cfg->retry_budget_percent,
                                  "retry.budget.min.per.second",
                                  (json_int_t)j->w->cfg->retry_budget_min_per_second),
                        "retry budget spent: retries wait for it (logged at most every 10 s)");
        }
        wait_slice(j);
    }
    return 0;
}

/* Capped exponential backoff with full jitter, in 20 ms slices so a
 * shutdown or revoke is noticed, then a token of the retry budget. what is
 * the retries counter of the class retried (store, claim-check, pipeline,
 * dlq). Returns -1 to give up. */
static int backoff(jctx_t *j, int attempt, is_metrics_counter_t what)
{
    const is_config_t *cfg = j->w->cfg;
    double cap = (double)cfg->retry_backoff_max_ms;
    double exp =
        (double)cfg->retry_backoff_initial_ms * (double)(1u << (attempt < 20 ? attempt : 20));
    double ms = (exp < cap ? exp : cap) * ((double)rand_r(&j->seed) / RAND_MAX);
    double until = is_now_s() + ms / 1e3;

    beat(j->slot, IS_PHASE_BACKOFF);
    while (is_now_s() < until) {
        if (giving_up(j))
            return -1;
        wait_slice(j);
    }
    if (budget_wait(j))
        return -1;
    /* Counted when it happens, so the counter shows what the budget let
     * through. */
    atomic_fetch_add(&j->w->n_retries, 1);
    is_metrics_inc(what);
    return 0;
}

void is_worker_store_fatal(is_worker_t *w, const char *hint, const char *why)
{
    int expected = 0;
    IS_ERR("s3", NULL, "store configuration error, stopping the worker: %s: %s", hint, why);
    if (atomic_compare_exchange_strong(&w->store_fatal_claim, &expected, 1)) {
        snprintf(w->store_fatal_why, sizeof(w->store_fatal_why), "%s: %s", hint, why);
        atomic_store(&w->store_fatal, 1);
    }
    atomic_store(&w->abandon, 1); /* every retry loop gives up: nothing is committed for them */
}

/* PUTs one object, retrying transient failures. digest: the body's
 * (is_s3_digest), or NULL to hash it on each attempt. 0 written, 1
 * permanent failure (errstr), -1 gave up. */
static int put_retry(jctx_t *j, const char *key, const void *body, size_t len,
                     const is_s3_digest_t *digest, const char *ctype, const char *tagging,
                     char *errstr, size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        if (attempt_begin(j, IS_PHASE_PUT, attempt))
            return -1;
        double t0 = is_now_s();
        is_s3_result_t r = is_s3_put_digest(j->s3, key, body, len, digest, ctype, tagging,
                                            j->w->cfg->s3_if_none_match, errstr, errstr_size);
        double took = is_now_s() - t0;
        is_metrics_observe(IS_M_PUT_SECONDS, took);
        j->put_s += took;
        atomic_fetch_add(&j->w->n_puts, 1);
        if (r == IS_S3_OK) {
            is_metrics_inc(IS_M_PUT_OK);
            is_metrics_add(IS_M_PUT_BYTES, (int64_t)len);
            return 0;
        }
        /* Create-only writes (s3.if.none.match): 412 means the key already
         * exists. Keys are deterministic and rendition bytes identical, so
         * this is a redelivered or replayed record that was written before:
         * done, not a dead letter. */
        if (r == IS_S3_PERMANENT && j->w->cfg->s3_if_none_match &&
            is_s3_last_status(j->s3) == 412) {
            IS_DEBUG("s3", json_pack("{s:s}", "key", key), "exists already (If-None-Match)");
            is_metrics_inc(IS_M_PUT_EXISTS);
            return 0;
        }
        is_metrics_inc(r == IS_S3_PERMANENT ? IS_M_PUT_PERMANENT : IS_M_PUT_TRANSIENT);
        /* The same answer would come for every object: the worker stops
         * (the record stays uncommitted) rather than sending every record
         * to the DLQ or retrying forever. */
        char hint[512];
        if (r == IS_S3_PERMANENT && is_s3_config_error(j->s3, hint, sizeof(hint))) {
            is_worker_store_fatal(j->w, hint, errstr);
            return -1;
        }
        if (r == IS_S3_PERMANENT)
            return 1;
        IS_WARN("s3", json_pack("{s:s, s:i}", "key", key, "attempt", attempt + 1),
                "transient PUT failure, retrying: %s", errstr);
        if (backoff(j, attempt, IS_M_RETRY_STORE))
            return -1;
    }
}

/* Fetches a claim-check payload; same convention as put_retry. The size is
 * checked on the Content-Length before the body is read. */
static int get_retry(jctx_t *j, const is_objref_t *ref, void **body, size_t *len, char *errstr,
                     size_t errstr_size)
{
    for (int attempt = 0;; attempt++) {
        if (attempt_begin(j, IS_PHASE_GET, attempt))
            return -1;
        is_s3_result_t r =
            is_s3_get(j->s3, ref->bucket, ref->key, ref->version_id, ref->size,
                      (size_t)j->w->cfg->limits_max_input_bytes, body, len, errstr, errstr_size);
        if (r == IS_S3_OK)
            return 0;
        if (r == IS_S3_PERMANENT)
            return 1;
        IS_WARN("s3", json_pack("{s:s, s:s}", "bucket", ref->bucket, "key", ref->key),
                "transient GET failure, retrying: %s", errstr);
        if (backoff(j, attempt, IS_M_RETRY_CLAIM_CHECK))
            return -1;
    }
}

/* A claim check, from the allow-list to the verified bytes. 0: *body holds
 * the object (the caller frees it); 1: permanent, reason says why ("claim
 * check: ..."); -1: gave up retrying. */
static int claim_check(jctx_t *j, const is_record_t *rec, void **body, size_t *len, char *reason,
                       size_t reason_size)
{
    const is_objref_t *ref = &rec->ref;
    char why[900];
    int rc;

    if (is_claimcheck_allowed(j->w->claimcheck, rec->tenant, ref->bucket, ref->key, why,
                              sizeof(why)) ||
        is_claimcheck_check_ref(ref, j->w->cfg->limits_max_input_bytes, why, sizeof(why))) {
        snprintf(reason, reason_size, "claim check: %s", why);
        return 1;
    }
    if ((rc = get_retry(j, ref, body, len, why, sizeof(why))) < 0)
        return -1;
    /* A version the store does not have: S3 answers 404 NoSuchVersion for a
     * well-formed id and 400 InvalidArgument for a malformed one, MinIO the
     * same (see the claim-check e2e test). */
    if (rc && ref->version_id &&
        (strstr(why, "NoSuchVersion") ||
         (is_s3_last_status(j->s3) == 400 && strstr(why, "InvalidArgument")))) {
        snprintf(reason, reason_size, "claim check: version not found: version_id %.200s: %.700s",
                 ref->version_id, why);
        return 1;
    }
    if (rc) {
        snprintf(reason, reason_size, "claim check: %s", why);
        return 1;
    }
    if (is_claimcheck_verify(ref, *body, *len, why, sizeof(why))) {
        snprintf(reason, reason_size, "claim check: %s (GET %s/%s)", why, ref->bucket, ref->key);
        free(*body);
        *body = NULL;
        return 1;
    }
    return 0;
}

/* Is days one of retention.classes? */
static int retention_allowed(const is_worker_t *w, int days)
{
    for (int i = 0; i < w->nretention; i++)
        if (w->retention_days[i] == days)
            return 1;
    return 0;
}

/* PUTs the renditions, then metadata.json: its presence means the record is
 * complete. Returns REC_WRITTEN, or the outcome with *klass and reason. */
static rec_outcome_t write_outputs(jctx_t *j, const rd_kafka_message_t *rkm, const is_record_t *rec,
                                   const is_result_t *res, const void *img, size_t img_len,
                                   const char *tagging, const char **klass, char *reason,
                                   size_t reason_size)
{
    const is_config_t *cfg = j->w->cfg;
    char *keys[IS_MAX_RENDITIONS] = {0};
    char *meta = NULL, mkey[1024], sha[65];
    /* Each rendition is hashed once: its PUT's checksum headers (on every
     * attempt) and its entry in metadata.json share the digest. */
    is_s3_digest_t digests[IS_MAX_RENDITIONS];
    const char *shas[IS_MAX_RENDITIONS];
    rec_outcome_t out = REC_DLQ;
    int rc;

    *klass = "record";
    if (is_keys_object(cfg->s3_prefix, rec->tenant, rec->uploaded_at_ms, rec->id, "metadata",
                       "json", mkey, sizeof(mkey), reason, reason_size))
        goto done;
    for (int i = 0; i < res->nout; i++) {
        if (!(keys[i] = malloc(1024)) ||
            is_keys_object(cfg->s3_prefix, rec->tenant, rec->uploaded_at_ms, rec->id,
                           res->out[i].name, res->out[i].ext, keys[i], 1024, reason, reason_size))
            goto done;
    }
    *klass = "store";
    for (int i = 0; i < res->nout; i++) {
        const is_s3_digest_t *d = &digests[i];
        if (is_s3_digest(res->out[i].buf, res->out[i].len, &digests[i]))
            d = NULL; /* out of memory: is_s3_put_digest tries again */
        rc = put_retry(j, keys[i], res->out[i].buf, res->out[i].len, d, res->out[i].content_type,
                       tagging, reason, reason_size);
        if (rc) {
            out = rc < 0 ? REC_ABANDONED : REC_DLQ;
            goto done;
        }
        shas[i] = d ? d->hex : NULL;
    }
    if (rec->payload_is_ref && rec->ref.sha256) {
        /* The claim check already verified the fetched bytes against this
         * hash (64 hex digits, checked before the GET): no second pass. */
        for (int i = 0; i < 64; i++)
            sha[i] = (char)tolower((unsigned char)rec->ref.sha256[i]);
        sha[64] = 0;
    } else {
        is_sha256_hex(img, img_len, sha);
    }
    is_metadata_src_t src = {rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset, sha, shas};
    for (int i = 0; i < res->nout; i++)
        if (!shas[i])
            src.rendition_sha256 = NULL; /* metadata.c hashes them all */
    if (!(meta = is_metadata_json(rec, res, keys, &src))) {
        snprintf(reason, reason_size, "cannot build metadata.json");
        *klass = "record";
        goto done;
    }
    rc = put_retry(j, mkey, meta, strlen(meta), NULL, "application/json", tagging, reason,
                   reason_size);
    out = rc == 0 ? REC_WRITTEN : rc < 0 ? REC_ABANDONED : REC_DLQ;
done:
    for (int i = 0; i < IS_MAX_RENDITIONS; i++)
        free(keys[i]);
    free(meta);
    return out;
}

/* For a record of the API path going to the DLQ: its error document,
 * {s3.prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}/error.json {"id", "status":
 * "failed", "class", "reason"}, beside where the outputs would be and tagged
 * like them, so `imgsink api` can answer GET /v1/images/{id} with the
 * reason. Written before the dead letter is sent and the offset marked
 * done; a replay writes the same bytes. A permanent PUT failure is logged
 * and the record goes on to the DLQ. 0, or -1 gave up (shutdown/revoke).
 * Job thread. */
static int write_error_doc(jctx_t *j, const is_record_t *rec, const char *tagging,
                           const char *klass, const char *reason)
{
    char key[1024], why[512];
    if (is_keys_object(j->w->cfg->s3_prefix, rec->tenant, rec->uploaded_at_ms, rec->id, "error",
                       "json", key, sizeof(key), why, sizeof(why)))
        return 0; /* an unsafe id or tenant: there is no place for it */
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "id", rec->id, "status", "failed", "class",
                            klass, "reason", reason);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (!text)
        return 0;
    for (int attempt = 0;; attempt++) {
        int rc = put_retry(j, key, text, strlen(text), NULL, "application/json", tagging, why,
                           sizeof(why));
        if (rc <= 0 || attempt >= 4) {
            if (rc > 0)
                IS_ERR("job", json_pack("{s:s}", "key", key), "cannot write the error document: %s",
                       why);
            free(text);
            return rc < 0 ? -1 : 0;
        }
        if (backoff(j, attempt, IS_M_RETRY_STORE)) {
            free(text);
            return -1;
        }
    }
}

/* Non-zero (reason filled) when a plain MD5 ETag does not match body. */
static int etag_mismatch(const char *etag, const void *body, size_t len, char *reason,
                         size_t reason_size)
{
    char want[33], got[33];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = 0;
    for (const char *p = etag; *p && n < sizeof(want); p++)
        if (*p != '"')
            want[n++] = *p;
    if (n != 32 || strspn(etag + (etag[0] == '"'), "0123456789abcdefABCDEF") < 32)
        return 0; /* multipart or unknown form: size is what is checked */
    want[32] = '\0';
    if (!EVP_Digest(body, len, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
        return 0;
    for (int i = 0; i < 16; i++)
        snprintf(got + 2 * i, 3, "%02x", md[i]);
    if (!strcasecmp(want, got))
        return 0;
    snprintf(reason, reason_size, "claim check: ETag mismatch: event says %s, object has %s", want,
             got);
    return 1;
}

static rec_outcome_t process_decoded(jctx_t *j, const rd_kafka_message_t *rkm,
                                     const is_record_t *rec, const char *etag, const char **klass,
                                     char *reason, size_t reason_size);

/* An S3 event record (s3event.h): each upload it announces is processed in
 * turn, as a claim check of source=api under the allow-list, and the Kafka
 * record is done only when all of them are. Other events are counted and
 * skipped. One upload that fails permanently (a key outside the layout, a
 * refused claim check, not an image) does not stop the others; the record
 * then goes to the DLQ with the first failure's reason (and the count). A
 * replay redoes them all with identical bytes. Job thread. */
static rec_outcome_t process_s3_event(jctx_t *j, const rd_kafka_message_t *rkm, const char **klass,
                                      char *reason, size_t reason_size)
{
    is_worker_t *w = j->w;
    is_s3event_t *evs = NULL;
    char why[1024], tenant[IS_KEYS_MAX_ID + 1], id[IS_KEYS_MAX_ID + 1];
    int n, nfail = 0;
    const char *first_klass = NULL;
    rec_outcome_t out = REC_WRITTEN;

    if (rkm->len > (size_t)w->cfg->input_max_record_bytes) {
        snprintf(reason, reason_size,
                 "S3 event: %zu bytes, more than input.max.record.bytes (%lld)", rkm->len,
                 (long long)w->cfg->input_max_record_bytes);
        *klass = "s3-event";
        return REC_DLQ;
    }
    if ((n = is_s3event_parse(rkm->payload, rkm->len, &evs, reason, reason_size)) < 0) {
        *klass = "s3-event";
        return REC_DLQ;
    }
    for (int i = 0; i < n && out != REC_ABANDONED; i++) {
        const is_s3event_t *e = &evs[i];
        int64_t day_ms;
        const char *k = NULL;
        if (!e->created) {
            is_metrics_inc(IS_M_S3_EVENTS_SKIPPED);
            IS_DEBUG("job", json_pack("{s:s}", "event", e->event_name), "S3 event skipped");
            continue;
        }
        is_metrics_inc(IS_M_S3_EVENTS_CREATED);
        rec_outcome_t o;
        if (is_s3event_layout(w->cfg->api_raw_prefix, e->key, tenant, sizeof(tenant), id,
                              sizeof(id), &day_ms, why, sizeof(why))) {
            k = "s3-event";
            o = REC_DLQ;
        } else {
            is_record_t rec = {0};
            rec.id = id;
            rec.tenant = tenant;
            rec.source = "api";
            rec.uploaded_at_ms = day_ms;
            rec.content_type = e->content_type ? e->content_type : "application/octet-stream";
            rec.filename = id;
            rec.retention_days = atoi(w->cfg->retention_classes);
            rec.payload_is_ref = 1;
            rec.ref = (is_objref_t){e->bucket, e->key, e->version_id, NULL, e->size};
            rec.schema_id = -1;
            o = process_decoded(j, rkm, &rec, e->etag, &k, why, sizeof(why));
        }
        if (o == REC_ABANDONED) {
            out = REC_ABANDONED;
        } else if (o == REC_DLQ) {
            if (!nfail++) {
                first_klass = k;
                snprintf(reason, reason_size, "S3 event: Records[%d] (%.300s): %.600s", i, e->key,
                         why);
            }
            out = REC_DLQ;
        }
    }
    if (out == REC_DLQ) {
        *klass = first_klass ? first_klass : "s3-event";
        if (nfail > 1) {
            size_t l = strlen(reason);
            snprintf(reason + l, reason_size - l, " (and %d more of %d records)", nfail - 1, n);
        }
    }
    is_s3event_free(evs, n);
    return out;
}

/* A decoded record (an ImageRecord, or one upload of an S3 event) to its
 * outcome. etag, when not NULL, is the ETag the fetched claim-check object
 * must have (a plain MD5 one; a multipart "...-N" ETag is not checked). For
 * REC_DLQ, *klass and reason say why. Job thread. */
static rec_outcome_t process_decoded(jctx_t *j, const rd_kafka_message_t *rkm,
                                     const is_record_t *rec, const char *etag, const char **klass,
                                     char *reason, size_t reason_size)
{
    is_worker_t *w = j->w;
    is_result_t res = {0};
    void *fetched = NULL;
    const void *img;
    size_t img_len;
    char tagging[256] = "";
    rec_outcome_t out = REC_DLQ;
    is_proc_result_t pr;

    is_event_note_record(j->ev, rec);
    /* Only classes with a lifecycle rule: any other value would be kept
     * forever. */
    if (!retention_allowed(w, rec->retention_days)) {
        snprintf(reason, reason_size,
                 "retention_days %d is not an allowed retention class (retention.classes=%s): no "
                 "lifecycle rule would expire its objects",
                 (int)rec->retention_days, w->cfg->retention_classes);
        *klass = "record";
        goto done;
    }
    if (is_keys_tagging(rec->retention_days, rec->source, tagging, sizeof(tagging))) {
        snprintf(reason, reason_size, "cannot encode the retention tag");
        *klass = "record";
        goto done;
    }
    if (rec->payload_is_ref) {
        int rc = claim_check(j, rec, &fetched, &img_len, reason, reason_size);
        if (rc) {
            *klass = "claim-check";
            out = rc < 0 ? REC_ABANDONED : REC_DLQ;
            goto done;
        }
        if (etag && etag_mismatch(etag, fetched, img_len, reason, reason_size)) {
            *klass = "claim-check";
            goto done;
        }
        img = fetched;
    } else {
        img = rec->payload;
        img_len = rec->payload_len;
    }
    for (int attempt = 0;; attempt++) {
        if (attempt_begin(j, IS_PHASE_PIPELINE, attempt)) {
            out = REC_ABANDONED;
            goto done;
        }
        pr = is_pipeline_run_attempt(&w->pconf, img, img_len, attempt, &res, reason, reason_size);
        if (pr != IS_PROC_RETRY)
            break;
        if (backoff(j, attempt, IS_M_RETRY_PIPELINE)) {
            out = REC_ABANDONED;
            goto done;
        }
    }
    if (pr == IS_PROC_FAIL) {
        *klass = "image";
        goto done;
    }
    is_event_note_result(j->ev, &res);
    j->decode_s = res.decode_ms / 1e3;
    j->encode_s = res.encode_ms / 1e3;
    out = write_outputs(j, rkm, rec, &res, img, img_len, tagging, klass, reason, reason_size);
    if (out == REC_WRITTEN)
        IS_DEBUG("job",
                 json_pack("{s:s, s:i, s:I, s:s, s:f, s:f, s:f, s:f, s:f}", "topic",
                           rd_kafka_topic_name(rkm->rkt), "partition", (int)rkm->partition,
                           "offset", (json_int_t)rkm->offset, "id", rec->id, "processing_ms",
                           res.processing_ms, "queue_ms", j->queue_s * 1e3, "decode_ms",
                           res.decode_ms, "encode_ms", res.encode_ms, "put_ms", j->put_s * 1e3),
                 "record written");
done:
    if (out == REC_DLQ && rec && !strcmp(rec->source, "api") && *tagging &&
        write_error_doc(j, rec, tagging, *klass, reason))
        out = REC_ABANDONED;
    free(fetched);
    is_result_clear(&res);
    return out;
}

/* With a Schema Registry, a record in the Confluent wire format: magic
 * byte 0 and a schema id (input.format auto or confluent). In auto, a plain
 * Avro record starting with 0x00 has an empty id, which is invalid anyway:
 * it goes to the DLQ through the registry path (its "schema id" is unknown)
 * instead of being tried both ways. */
static int registry_record(const is_worker_t *w, const rd_kafka_message_t *rkm)
{
    return w->envfmt != IS_ENVELOPE_AVRO && rkm->len >= 5 &&
           ((const unsigned char *)rkm->payload)[0] == 0;
}

/* Decodes a Confluent record with its writer schema from the registry.
 * The lookup is retried while the registry cannot answer (registry.h).
 * 0 decoded, 1 permanent failure (reason), -1 gave up. */
static int registry_decode(jctx_t *j, const rd_kafka_message_t *rkm, is_record_t **recp,
                           char *reason, size_t reason_size)
{
    const unsigned char *p = rkm->payload;
    uint32_t uid = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    avro_schema_t writer = NULL;
    int rc;

    if (uid > INT32_MAX) {
        snprintf(reason, reason_size, "Confluent: schema id %u out of range", (unsigned)uid);
        return 1;
    }
    for (int attempt = 0;; attempt++) {
        if (attempt_begin(j, IS_PHASE_GET, attempt))
            return -1;
        rc = is_registry_schema(j->w->registry, (int)uid, &writer, reason, reason_size);
        if (rc >= 0)
            break;
        IS_WARN("registry",
                json_pack("{s:s, s:i, s:I, s:i}", "topic", rd_kafka_topic_name(rkm->rkt),
                          "partition", (int)rkm->partition, "offset", (json_int_t)rkm->offset,
                          "attempt", attempt + 1),
                "schema lookup failed, retrying: %s", reason);
        if (backoff(j, attempt, IS_M_RETRY_REGISTRY))
            return -1;
    }
    if (rc > 0)
        return 1;
    rc =
        is_envelope_decode_writer(rkm->payload, rkm->len, (size_t)j->w->cfg->input_max_record_bytes,
                                  writer, recp, reason, reason_size);
    avro_schema_decref(writer);
    return rc ? 1 : 0;
}

/* One record to its outcome. For REC_DLQ, *klass and reason say why. */
static rec_outcome_t process(jctx_t *j, const rd_kafka_message_t *rkm, const char **klass,
                             char *reason, size_t reason_size)
{
    is_worker_t *w = j->w;
    is_record_t *rec = NULL;

    if (w->s3events == 2 ||
        (w->s3events == 1 && rkm->len && ((const char *)rkm->payload)[0] == '{'))
        return process_s3_event(j, rkm, klass, reason, reason_size);
    if (w->registry && registry_record(w, rkm)) {
        int rc = registry_decode(j, rkm, &rec, reason, reason_size);
        if (rc) {
            *klass = "envelope";
            return rc < 0 ? REC_ABANDONED : REC_DLQ;
        }
    } else if (is_envelope_decode(rkm->payload, rkm->len, w->envfmt,
                                  (size_t)w->cfg->input_max_record_bytes, &rec, reason,
                                  reason_size)) {
        *klass = "envelope";
        return REC_DLQ;
    }
    rec_outcome_t out = process_decoded(j, rkm, rec, NULL, klass, reason, reason_size);
    is_record_destroy(rec);
    return out;
}

static json_t *where(const rd_kafka_message_t *rkm)
{
    return json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(rkm->rkt), "partition",
                     (int)rkm->partition, "offset", (json_int_t)rkm->offset);
}

/* Retention class of a dead letter's value: the default class, the one
 * every deployment has a lifecycle rule for (retention=7d). */
#define DLQ_RETENTION_DAYS 7

/* Stores a dead letter's value in the object store, for a dead letter too
 * large to carry it: {s3.prefix}dlq/..., tagged for expiry like every object
 * (default retention class, source=dlq). Like the DLQ produce itself, a
 * failed PUT is retried, never skipped, even a permanent one (an operator
 * fixes the store's permissions; the partition waits). Fills ref (pointing
 * into key and sha). 0 stored, -1 gave up (shutdown or revoke). */
static int store_dead_value(jctx_t *j, const rd_kafka_message_t *rkm, char *key, size_t key_size,
                            char *sha, is_dlq_ref_t *ref)
{
    char tagging[64], why[1024];

    if (is_dlq_value_key(j->w->cfg->s3_prefix, rkm, key, key_size) ||
        is_keys_tagging(DLQ_RETENTION_DAYS, "dlq", tagging, sizeof(tagging))) {
        /* s3.prefix is bounded by the config check: cannot happen. */
        IS_ERR("dlq", where(rkm), "cannot build the object key for the dead letter's value");
        return -1;
    }
    is_sha256_hex(rkm->payload, rkm->len, sha);
    for (int attempt = 0;; attempt++) {
        int rc = put_retry(j, key, rkm->payload, rkm->len, NULL, "application/octet-stream",
                           tagging, why, sizeof(why));
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        IS_ERR("dlq", json_pack("{s:s, s:i}", "key", key, "attempt", attempt + 1),
               "cannot store the dead letter's value, retrying: %s", why);
        if (backoff(j, attempt, IS_M_RETRY_DLQ))
            return -1;
    }
    *ref = (is_dlq_ref_t){j->w->cfg->s3_bucket, key, rkm->len, sha};
    return 0;
}

/* Sends rkm to the DLQ, retrying until it is acknowledged: a DLQ produce
 * that fails is retried, never skipped. A dead letter too large for the
 * DLQ producer or refused by the broker as too large carries its value by
 * reference (store_dead_value). REC_DLQ when sent, REC_ABANDONED when given
 * up (shutdown or revoke). Job thread. */
static rec_outcome_t send_dead_letter(jctx_t *j, const rd_kafka_message_t *rkm, const char *klass,
                                      const char *reason)
{
    is_worker_t *w = j->w;
    is_dlq_ref_t refbuf, *ref = NULL;
    char key[1024], sha[65];

    for (int attempt = 0;; attempt++) {
        char why[512];
        if (attempt_begin(j, IS_PHASE_DLQ, attempt))
            return REC_ABANDONED;
        int rc = is_dlq_send(w->dlq, rkm, klass, reason, ref, why, sizeof(why));
        if (rc == 0) {
            atomic_fetch_add(&w->n_dlq, 1);
            is_metrics_inc(IS_M_DLQ);
            is_metrics_inc(is_metrics_dlq_class(klass));
            return REC_DLQ;
        }
        if (rc == IS_DLQ_TOO_LARGE) {
            if (store_dead_value(j, rkm, key, sizeof(key), sha, &refbuf))
                return REC_ABANDONED;
            ref = &refbuf;
            IS_WARN("dlq",
                    json_pack("{s:s, s:i, s:I, s:I, s:s}", "topic", rd_kafka_topic_name(rkm->rkt),
                              "partition", (int)rkm->partition, "offset", (json_int_t)rkm->offset,
                              "bytes", (json_int_t)rkm->len, "key", key),
                    "dead letter too large for the DLQ topic: its value is in the store");
            attempt = -1; /* a new first attempt, not a retry */
            continue;
        }
        IS_WARN("dlq", json_pack("{s:i}", "attempt", attempt + 1),
                "DLQ produce failed, retrying: %s", why);
        if (backoff(j, attempt, IS_M_RETRY_DLQ))
            return REC_ABANDONED;
    }
}

/* Produces the record's ImageEvent (events.topic), retrying until it is
 * acknowledged, like a dead letter: the offset is stored only after it.
 * 0 sent (or no events topic), -1 gave up (shutdown or revoke). */
static int send_event(jctx_t *j, const rd_kafka_message_t *rkm, int written, const char *klass,
                      const char *reason, double t0)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    is_event_end_t end = {rd_kafka_topic_name(rkm->rkt),
                          rkm->partition,
                          rkm->offset,
                          written ? NULL : klass,
                          written ? NULL : reason,
                          (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                          (is_now_s() - t0) * 1e3};

    for (int attempt = 0; j->w->events; attempt++) {
        char why[512];
        if (attempt_begin(j, IS_PHASE_DLQ, attempt))
            return -1;
        if (!is_events_send(j->w->events, j->ev, &end, why, sizeof(why)))
            return 0;
        IS_WARN("events", json_pack("{s:i}", "attempt", attempt + 1),
                "event produce failed, retrying: %s", why);
        if (backoff(j, attempt, IS_M_RETRY_DLQ))
            return -1;
    }
    return 0;
}

/* Runs one job to the point where its offset may be marked done. */
static void run_job(jctx_t *j, is_job_t *job)
{
    is_worker_t *w = j->w;
    rd_kafka_message_t *rkm = job->rkm;
    const char *klass = "unknown";
    char reason[1024] = "";
    double t0 = is_now_s();
    is_event_t ev = {0};

    j->ev = &ev;
    j->queue_s = t0 - job->dispatched_s;
    j->put_s = 0;
    j->decode_s = j->encode_s = -1;
    rec_outcome_t out = process(j, rkm, &klass, reason, sizeof(reason));
    if (atomic_load(&j->slot->orphaned))
        return; /* handed to another thread, which finishes the record */
    if (out == REC_DLQ) {
        json_t *f = where(rkm);
        json_object_set_new(f, "class", json_string(klass));
        IS_WARN("job", f, "record sent to DLQ: %s", reason);
        out = send_dead_letter(j, rkm, klass, reason);
    } else if (out == REC_WRITTEN) {
        atomic_fetch_add(&w->n_written, 1);
        is_metrics_inc(IS_M_WRITTEN);
        is_metrics_observe(IS_M_STAGE_QUEUE, j->queue_s);
        if (j->decode_s >= 0) {
            is_metrics_observe(IS_M_STAGE_DECODE, j->decode_s);
            is_metrics_observe(IS_M_STAGE_RESIZE_ENCODE, j->encode_s);
        }
        is_metrics_observe(IS_M_STAGE_PUT, j->put_s);
    }
    if (atomic_load(&j->slot->orphaned))
        return;
    if (out != REC_ABANDONED && send_event(j, rkm, out == REC_WRITTEN, klass, reason, t0))
        out = REC_ABANDONED;
    if (atomic_load(&j->slot->orphaned))
        return;
    if (out == REC_ABANDONED) {
        atomic_fetch_add(&w->n_abandoned, 1);
        is_metrics_inc(IS_M_ABANDONED);
        IS_WARN("job", where(rkm),
                "gave up on the record (shutdown or revoke deadline); it stays uncommitted and "
                "will be processed again");
        return;
    }
    is_metrics_observe(IS_M_PROCESSING_SECONDS, is_now_s() - t0);
    is_offsets_done(w->offsets, rd_kafka_topic_name(rkm->rkt), rkm->partition, job->gen,
                    rkm->offset);
}

void *is_job_thread(void *arg)
{
    is_job_arg_t *a = arg;
    is_worker_t *w = a->w;
    const is_config_t *cfg = w->cfg;
    char errstr[512];
    jctx_t j = {.w = w,
                .slot = &w->slots[a->index],
                .seed = (unsigned)time(NULL) ^ (unsigned)(a->index * 7919)};

    is_s3_conf_t s3c = is_s3_conf_of(cfg, w->creds);
    if (!(j.s3 = is_s3_new(&s3c, errstr, sizeof(errstr)))) {
        /* Validated at start-up by the poll thread: cannot happen later. */
        IS_ERR("job", NULL, "S3 client: %s", errstr);
        atomic_store(&w->fatal, 1);
        return NULL;
    }
    is_s3_set_interrupt(j.s3, &j.slot->interrupt);
    cur_slot = j.slot;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->qhead && !w->quit)
            pthread_cond_wait(&w->cond_job, &w->lock);
        if (!w->qhead)
            break; /* quit and nothing left */
        is_job_t *job = w->qhead;
        w->qhead = job->next;
        if (!w->qhead)
            w->qtail = NULL;
        snprintf(j.slot->topic, sizeof(j.slot->topic), "%s", rd_kafka_topic_name(job->rkm->rkt));
        j.slot->partition = job->rkm->partition;
        j.slot->offset = job->rkm->offset;
        j.slot->job = job;
        atomic_store(&j.slot->cancel, 0);
        beat(j.slot, IS_PHASE_PIPELINE);
        pthread_mutex_unlock(&w->lock);

        run_job(&j, job);

        pthread_mutex_lock(&w->lock);
        is_job_unref(w, job);
        if (atomic_load(&j.slot->orphaned))
            break; /* left behind: the job and its in-flight count moved on */
        j.slot->partition = -1;
        j.slot->job = NULL;
        atomic_store(&j.slot->phase, IS_PHASE_IDLE);
        w->inflight--;
        pthread_cond_broadcast(&w->cond_idle);
    }
    int orphaned = atomic_load(&j.slot->orphaned);
    pthread_mutex_unlock(&w->lock);
    is_s3_destroy(j.s3);
    /* libvips keeps per-thread buffers until told the thread is done. */
    vips_thread_shutdown();
    if (orphaned) {
        IS_WARN("watchdog", json_pack("{s:i}", "thread", a->index),
                "a job thread left behind came back and exits; its record had been handed over");
        /* Last, so the worker may end once no thread left behind runs. */
        pthread_mutex_lock(&w->lock);
        w->nstuck--;
        is_metrics_set(IS_M_STUCK_THREADS, w->nstuck);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

void is_job_unref(is_worker_t *w, is_job_t *job)
{
    if (--job->refs > 0)
        return;
    w->inflight_bytes -= (int64_t)job->rkm->len;
    rd_kafka_message_destroy(job->rkm);
    free(job);
}

int is_job_thread_start(is_worker_t *w)
{
    int i = w->nthreads;
    if (i >= w->maxthreads)
        return -1;
    is_slot_t *s = &w->slots[i];
    s->partition = -1;
    atomic_store(&s->beat_ms, is_now_ms());
    w->args[i] = (is_job_arg_t){w, i};
    if (pthread_create(&w->threads[i], NULL, is_job_thread, &w->args[i]))
        return -1;
    w->nthreads++;
    return 0;
}

/* Blocks until slot's pipeline may hold pixels more of the budget. */
int is_job_budget_reserve(is_worker_t *w, is_slot_t *slot, int64_t pixels)
{
    int rc = 0;
    pthread_mutex_lock(&w->lock);
    /* A thread left behind (orphaned, set by the watchdog under this lock)
     * takes nothing: its budget was returned at the hand-over and its
     * releases no longer count (is_job_budget_release), so whatever it
     * took now would be held forever. Checked under the lock, so a reserve
     * either happened before the hand-over (and was returned by it) or is
     * refused. The pipeline then gives up, and so does the thread. */
    if (slot && atomic_load(&slot->orphaned))
        rc = -1;
    /* One image is always admitted when nothing else holds budget, so a
     * single image larger than the budget cannot wait forever. */
    while (!rc && w->pixels > 0 && w->pixels + pixels > w->cfg->worker_max_inflight_pixels) {
        if (atomic_load(&w->abandon) || (slot && atomic_load(&slot->orphaned))) {
            rc = -1;
            break;
        }
        w->pixel_waiters++;
        if (slot) /* waiting for budget is not a stall */
            atomic_store(&slot->beat_ms, is_now_ms());
        /* A slice, so w->abandon (set without a wake-up) is noticed. */
        struct timespec ts = is_clock_deadline(100);
        pthread_cond_timedwait(&w->cond_idle, &w->lock, &ts);
        w->pixel_waiters--;
    }
    if (!rc) {
        w->pixels += pixels;
        if (slot)
            slot->pixels += pixels;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void is_job_budget_release(is_worker_t *w, is_slot_t *slot, int64_t pixels)
{
    pthread_mutex_lock(&w->lock);
    /* A thread left behind had its budget returned when it was handed over. */
    if (!slot || !atomic_load(&slot->orphaned))
        w->pixels -= pixels;
    if (slot)
        slot->pixels -= pixels;
    pthread_cond_broadcast(&w->cond_idle);
    pthread_mutex_unlock(&w->lock);
}

int is_job_reserve_pixels(void *ctx, int64_t pixels)
{
    return is_job_budget_reserve(ctx, cur_slot, pixels);
}

void is_job_release_pixels(void *ctx, int64_t pixels)
{
    is_job_budget_release(ctx, cur_slot, pixels);
}
