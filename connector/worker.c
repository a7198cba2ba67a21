/*
 * worker.c - the poll thread: consumer, rebalances, dispatch, backpressure,
 * offset storage and shutdown. Records are processed by the job threads in
 * job.c. See worker.h for the delivery protocol and worker_int.h for
 * threads and locks.
 *
 * Only rd_kafka_consumer_poll is used to fetch: librdkafka 2.0.x's batch
 * consume APIs lose offsets around pause and seek.
 */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "health.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "worker_int.h"

static size_t max_inflight(const is_worker_t *w)
{
    /* Each pause costs about a second of idle time, because librdkafka
     * drops the records it prefetched for a paused partition and fetches
     * them again after resume (measured by the fault suite: 4 in flight
     * gave ~5 records/s, 64 gave ~47). Resuming at half the bound, the 8
     * records per thread still queued cover that second for images of
     * 125 ms or more; less would idle the threads on every pause. Deeper
     * buys nothing: the queue only has to bridge the refetch. What a
     * SIGKILL repeats is not the queue (never started) but what finished
     * behind a slower record of its partition, capped by this bound, and
     * what finished since the last commit (auto.commit.interval.ms, one
     * second). Memory stays bounded by the pixel budget and librdkafka's
     * prefetch limits. */
    return w->cfg->worker_max_inflight ? (size_t)w->cfg->worker_max_inflight
                                       : (size_t)(16 * w->nthreads);
}

/* Stores every partition's newly contiguous done offset. A partition that
 * is no longer ours (__STATE) moved to another member, which will process
 * those records again: logged and dropped, never retried. Poll thread. */
static void store_offsets(is_worker_t *w)
{
    is_offsets_pos_t pos[64];
    size_t n;

    while ((n = is_offsets_collect(w->offsets, pos, 64)) > 0) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(parts, pos[i].topic, pos[i].partition)->offset =
                pos[i].offset;
        rd_kafka_offsets_store(w->rk, parts);
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].err)
                IS_WARN("worker",
                        json_pack("{s:s, s:i, s:I}", "topic", parts->elems[i].topic, "partition",
                                  (int)parts->elems[i].partition, "offset",
                                  (json_int_t)parts->elems[i].offset),
                        "offset not stored (%s): the partition moved to another member",
                        rd_kafka_err2str(parts->elems[i].err));
        rd_kafka_topic_partition_list_destroy(parts);
        if (n < 64)
            break;
    }
}

static int in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic, int32_t p)
{
    return parts && rd_kafka_topic_partition_list_find(parts, topic, p) != NULL;
}

/* Removes queued (not yet running) jobs of the given partitions. They stay
 * undone in the tracker, so no offset passes them. Caller holds w->lock. */
static size_t drop_queued(is_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    size_t dropped = 0;
    is_job_t **pp = &w->qhead, *prev = NULL;
    while (*pp) {
        is_job_t *job = *pp;
        if (in_list(parts, rd_kafka_topic_name(job->rkm->rkt), job->rkm->partition)) {
            *pp = job->next;
            is_job_unref(job);
            w->inflight--;
            dropped++;
            continue;
        }
        prev = job;
        pp = &job->next;
    }
    w->qtail = prev;
    return dropped;
}

/* Running jobs of the given partitions. Caller holds w->lock. */
static int running_in(is_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    int n = 0;
    for (int i = 0; i < w->nthreads; i++)
        if (w->slots[i].partition >= 0 && in_list(parts, w->slots[i].topic, w->slots[i].partition))
            n++;
    return n;
}

/* Revoke: no new dispatch (the callback runs inside poll, and queued jobs
 * of these partitions are dropped), let running jobs finish within
 * rebalance.drain.timeout.ms, store what is done, commit synchronously.
 * Jobs still running at the deadline are cancelled: their records stay
 * uncommitted for the next owner. Poll thread. */
static void drain_revoked(is_worker_t *w, rd_kafka_topic_partition_list_t *parts)
{
    double deadline = is_now_s() + w->cfg->rebalance_drain_timeout_ms / 1e3;
    size_t dropped;
    int running;

    pthread_mutex_lock(&w->lock);
    dropped = drop_queued(w, parts);
    while ((running = running_in(w, parts)) > 0 && is_now_s() < deadline &&
           !atomic_load(&w->abandon)) {
        is_health_beat(); /* waiting on the jobs is not a stall */
        struct timespec ts = is_clock_deadline(50);
        pthread_cond_timedwait(&w->cond_idle, &w->lock, &ts);
    }
    for (int i = 0; i < w->nthreads; i++)
        if (w->slots[i].partition >= 0 && in_list(parts, w->slots[i].topic, w->slots[i].partition))
            atomic_store(&w->slots[i].cancel, 1);
    pthread_mutex_unlock(&w->lock);
    if (dropped || running)
        IS_INFO("rebalance",
                json_pack("{s:I, s:i}", "dropped_queued", (json_int_t)dropped, "still_running",
                          running),
                "revoke drained: queued records dropped, unfinished ones left uncommitted");

    store_offsets(w);
    rd_kafka_resp_err_t err = rd_kafka_commit(w->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        IS_WARN("rebalance", NULL, "commit on revoke failed: %s", rd_kafka_err2str(err));
}

static void log_parts(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    json_t *arr = json_array();
    for (int i = 0; i < parts->cnt; i++)
        json_array_append_new(
            arr, json_sprintf("%s[%d]", parts->elems[i].topic, (int)parts->elems[i].partition));
    IS_INFO("rebalance", json_pack("{s:o}", "partitions", arr), "%s", what);
}

/* Publishes the assignment to the metrics and the readiness state. joined:
 * still a member of the group (0 after the assignment was lost). Poll
 * thread. */
static void publish_assignment(rd_kafka_t *rk, int joined)
{
    rd_kafka_topic_partition_list_t *asg = NULL;
    int n = 0;
    if (!rd_kafka_assignment(rk, &asg) && asg)
        n = asg->cnt;
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    is_metrics_set(IS_M_ASSIGNED_PARTITIONS, n);
    is_health_group(joined, n);
}

/* Served on the poll thread from inside rd_kafka_consumer_poll. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    is_worker_t *w = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");

    atomic_fetch_add(&w->n_rebalances, 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_parts("partitions assigned", parts);
        for (int i = 0; i < parts->cnt; i++)
            if (!is_offsets_add_partition(w->offsets, parts->elems[i].topic,
                                          parts->elems[i].partition)) {
                /* Untracked: its records are dropped unprocessed, nothing
                 * of it is stored; stop as for any record (out_of_memory). */
                IS_ERR("worker",
                       json_pack("{s:s, s:i}", "topic", parts->elems[i].topic, "partition",
                                 (int)parts->elems[i].partition),
                       "out of memory (offset tracker): stopping; the partition stays "
                       "uncommitted");
                atomic_store(&w->oom, 1);
            }
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition's pause flag across unassign and
         * assign, so a partition is always put in the state the worker
         * wants: paused (and remembered for resume) while over bounds,
         * explicitly resumed otherwise. */
        if (w->paused) {
            rd_kafka_pause_partitions(rk, parts);
            for (int i = 0; i < parts->cnt; i++)
                rd_kafka_topic_partition_list_add(w->paused, parts->elems[i].topic,
                                                  parts->elems[i].partition);
        } else {
            rd_kafka_resume_partitions(rk, parts);
        }
        is_metrics_inc(IS_M_REBALANCE_ASSIGN);
        publish_assignment(rk, 1);
        return;
    }
    int lost = rd_kafka_assignment_lost(rk);
    is_metrics_inc(lost ? IS_M_REBALANCE_LOST : IS_M_REBALANCE_REVOKE);
    if (lost) {
        /* Another member owns these already: drop, commit nothing. */
        log_parts("partitions lost: dropping their work without commit", parts);
        pthread_mutex_lock(&w->lock);
        drop_queued(w, parts);
        for (int i = 0; i < w->nthreads; i++)
            if (w->slots[i].partition >= 0 &&
                in_list(parts, w->slots[i].topic, w->slots[i].partition))
                atomic_store(&w->slots[i].cancel, 1);
        pthread_mutex_unlock(&w->lock);
    } else {
        log_parts("partitions revoked: draining and committing", parts);
        drain_revoked(w, parts);
    }
    /* Resume what leaves while paused: librdkafka would keep the pause
     * flag, and a later re-assignment of the partition would never fetch
     * (seen as a partition stuck after a member joined and left). */
    if (w->paused)
        rd_kafka_resume_partitions(rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        is_offsets_remove_partition(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
        if (w->paused)
            rd_kafka_topic_partition_list_del(w->paused, parts->elems[i].topic,
                                              parts->elems[i].partition);
    }
    if (cooperative)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
    publish_assignment(rk, !lost);
}

/* Called from rd_kafka_consumer_poll on the poll thread. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    is_worker_t *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        IS_ERR("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(orig)),
               "fatal consumer error (for a fenced static member: another instance uses the same "
               "kafka.group.instance.id): %s",
               why);
        atomic_store(&w->fatal, 1);
        return;
    }
    IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "%s", reason);
}

/* Backpressure: over a bound (records in flight, or jobs waiting for pixel
 * budget), pause every assigned partition and keep polling so the member
 * stays in the group; below half the bound, resume exactly what was paused.
 * Poll thread. */
static void backpressure(is_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    size_t inflight = w->inflight;
    int waiters = w->pixel_waiters;
    int64_t pixels = w->pixels;
    pthread_mutex_unlock(&w->lock);

    is_metrics_set(IS_M_INFLIGHT_RECORDS, (int64_t)inflight);
    is_metrics_set(IS_M_INFLIGHT_PIXELS, pixels);
    is_metrics_set(IS_M_PAUSED_PARTITIONS, w->paused ? w->paused->cnt : 0);
    is_metrics_set(IS_M_RETRY_BUDGET_TOKENS,
                   (int64_t)is_retry_budget_tokens(&w->budget, is_now_s()));

    if (!w->paused && (inflight >= max_inflight(w) || waiters > 0)) {
        rd_kafka_topic_partition_list_t *asg = NULL;
        if (rd_kafka_assignment(w->rk, &asg) || !asg)
            return;
        rd_kafka_pause_partitions(w->rk, asg);
        w->paused = asg;
        IS_DEBUG("worker",
                 json_pack("{s:I, s:i, s:i}", "inflight", (json_int_t)inflight, "pixel_waiters",
                           waiters, "partitions", asg->cnt),
                 "over bounds: partitions paused");
    } else if (w->paused && inflight <= max_inflight(w) / 2 && waiters == 0) {
        rd_kafka_resume_partitions(w->rk, w->paused);
        rd_kafka_topic_partition_list_destroy(w->paused);
        w->paused = NULL;
        IS_DEBUG("worker", NULL, "under bounds: partitions resumed");
    }
}

/* Out of memory for a record's bookkeeping: the record is neither
 * processed nor skipped. The worker stops fetching, finishes and commits
 * what is in flight, never past this record (the tracker takes no later
 * offset of its partition, or holds this one undone), and exits non-zero
 * for the orchestrator to restart it with fresh memory; the record is
 * processed again then. Pausing and retrying in place would keep a member
 * that cannot allocate in the group, and a record fetched again after a
 * rebalance would break the tracker's increasing order. Poll thread. */
static void out_of_memory(is_worker_t *w, const rd_kafka_message_t *rkm, const char *what)
{
    IS_ERR("worker",
           json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(rkm->rkt), "partition",
                     (int)rkm->partition, "offset", (json_int_t)rkm->offset),
           "out of memory (%s): stopping; this record and what follows it in its partition "
           "stay uncommitted",
           what);
    atomic_store(&w->oom, 1);
}

static void dispatch(is_worker_t *w, rd_kafka_message_t *rkm)
{
    uint64_t gen = 0;
    switch (is_offsets_add(w->offsets, rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset,
                           &gen)) {
    case IS_OFFSETS_ADDED:
        break;
    case IS_OFFSETS_UNTRACKED: /* not (or no longer) assigned: the owner will process it */
        rd_kafka_message_destroy(rkm);
        return;
    case IS_OFFSETS_NOMEM:
        out_of_memory(w, rkm, "offset tracker");
        rd_kafka_message_destroy(rkm);
        return;
    }
    is_job_t *job = calloc(1, sizeof(*job));
    if (!job) { /* tracked and never done: no stored offset passes it */
        out_of_memory(w, rkm, "job");
        rd_kafka_message_destroy(rkm);
        return;
    }
    job->rkm = rkm;
    job->gen = gen;
    job->refs = 1;
    atomic_fetch_add(&w->n_in, 1);
    is_metrics_inc(IS_M_RECORDS_CONSUMED);
    is_metrics_add(IS_M_CONSUMED_BYTES, (int64_t)rkm->len);
    pthread_mutex_lock(&w->lock);
    if (w->qtail)
        w->qtail->next = job;
    else
        w->qhead = job;
    w->qtail = job;
    w->inflight++;
    pthread_cond_signal(&w->cond_job);
    pthread_mutex_unlock(&w->lock);
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
    /* librdkafka commits stored offsets every 5 s by default, and a SIGKILL
     * repeats what finished since the last commit (the fault suite counted
     * about 37 records per kill): commit every second unless the operator
     * chose otherwise. */
    if (!is_config_kafka_get(w->cfg, "auto.commit.interval.ms") &&
        is_kafka_conf_set(conf, "auto.commit.interval.ms", "1000", errstr, errstr_size))
        goto fail;
    /* Statistics feed the lag metric and readiness (stats.h). */
    if (!is_config_kafka_get(w->cfg, "statistics.interval.ms") &&
        is_kafka_conf_set(conf, "statistics.interval.ms", "5000", errstr, errstr_size))
        goto fail;
    rd_kafka_conf_set_stats_cb(conf, is_stats_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, w);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
        goto fail;
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(rk);

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(4);
    if (!(topics = strdup(w->cfg->input_topics))) {
        snprintf(errstr, errstr_size, "out of memory");
        rd_kafka_topic_partition_list_destroy(subs);
        rd_kafka_destroy(rk);
        return NULL;
    }
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

/* Shutdown: no more fetching; wait for everything in flight within
 * shutdown.timeout.ms, then make retry loops give up, store, commit and
 * leave. Poll thread. */
static void drain_all(is_worker_t *w)
{
    double deadline = is_now_s() + w->cfg->shutdown_timeout_ms / 1e3;

    pthread_mutex_lock(&w->lock);
    size_t inflight = w->inflight;
    pthread_mutex_unlock(&w->lock);
    IS_INFO("worker", json_pack("{s:I}", "inflight", (json_int_t)inflight),
            "stopping: finishing records in flight");
    pthread_mutex_lock(&w->lock);
    while (w->inflight > 0) {
        pthread_mutex_unlock(&w->lock);
        /* Offsets are stored while draining, so a slow straggler does not
         * hold back the commit of everything else. */
        store_offsets(w);
        if (is_now_s() >= deadline) {
            atomic_store(&w->abandon, 1);
            pthread_mutex_lock(&w->lock);
            break;
        }
        is_health_beat();
        is_watchdog_check(w);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w->lock);
    }
    w->quit = 1;
    pthread_cond_broadcast(&w->cond_job);
    pthread_mutex_unlock(&w->lock);
}

static int start_threads(is_worker_t *w, int n, char *errstr, size_t errstr_size)
{
    w->threads = calloc((size_t)w->maxthreads, sizeof(*w->threads));
    w->slots = calloc((size_t)w->maxthreads, sizeof(*w->slots));
    w->args = calloc((size_t)w->maxthreads, sizeof(*w->args));
    if (!w->threads || !w->slots || !w->args) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (is_job_thread_start(w)) {
            snprintf(errstr, errstr_size, "cannot start job thread %d", i);
            return -1;
        }
    return 0;
}

/* Joins the job threads, waiting at most until grace_s past now for each
 * straggler. Threads left behind by the watchdog were detached. Returns
 * how many threads are still running (stuck, never joined). */
static int join_threads(is_worker_t *w, double grace_s)
{
    double until = is_now_s() + grace_s;
    int running = 0;

    for (int i = 0; i < w->nthreads; i++) {
        if (atomic_load(&w->slots[i].orphaned))
            continue;
        double left = until - is_now_s();
        struct timespec ts = is_clock_deadline(left > 0 ? (int64_t)(left * 1e3) : 0);
        if (pthread_clockjoin_np(w->threads[i], NULL, CLOCK_MONOTONIC, &ts)) {
            char topic[sizeof(w->slots[i].topic)];
            int32_t partition;
            /* Copied under the lock, logged without it (a blocked stderr). */
            pthread_mutex_lock(&w->lock);
            memcpy(topic, w->slots[i].topic, sizeof(topic));
            partition = w->slots[i].partition;
            pthread_mutex_unlock(&w->lock);
            IS_ERR("worker",
                   json_pack("{s:i, s:s, s:i}", "thread", i, "topic", topic, "partition",
                             (int)partition),
                   "job thread did not stop; exiting without it (its record stays uncommitted)");
            running++;
        }
    }
    pthread_mutex_lock(&w->lock);
    running += w->nstuck;
    pthread_mutex_unlock(&w->lock);
    w->nthreads = 0;
    return running;
}

int is_worker_sync_init(is_worker_t *w)
{
    if (pthread_mutex_init(&w->lock, NULL))
        return -1;
    /* Timed waits (drain_revoked, the pixel budget) count on the
     * monotonic clock: a wall clock stepped back would stretch them. */
    if (is_clock_cond_init(&w->cond_job)) {
        pthread_mutex_destroy(&w->lock);
        return -1;
    }
    if (is_clock_cond_init(&w->cond_idle)) {
        pthread_cond_destroy(&w->cond_job);
        pthread_mutex_destroy(&w->lock);
        return -1;
    }
    return 0;
}

void is_worker_sync_destroy(is_worker_t *w)
{
    pthread_cond_destroy(&w->cond_job);
    pthread_cond_destroy(&w->cond_idle);
    pthread_mutex_destroy(&w->lock);
}

int is_worker_run(const is_config_t *cfg, const char *argv0, volatile sig_atomic_t *stop,
                  char *errstr, size_t errstr_size)
{
    is_worker_t w = {.cfg = cfg, .stop = stop};
    is_s3_t *probe = NULL;
    is_http_t *http = NULL;
    int rc = -1, nthreads, stuck = 0;
    double last_watch = 0;

    nthreads = cfg->worker_threads ? (int)cfg->worker_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = nthreads < 1 ? 1 : nthreads;
    w.maxthreads =
        nthreads + (cfg->worker_stuck_max_threads ? (int)cfg->worker_stuck_max_threads : nthreads);
    is_retry_budget_init(&w.budget, cfg->retry_budget_percent, cfg->retry_budget_min_per_second,
                         is_now_s());
    if (is_worker_sync_init(&w)) {
        snprintf(errstr, errstr_size,
                 "cannot initialise the worker's lock and condition variables");
        return -1;
    }
    is_pipeline_conf_init(&w.pconf, cfg);
    w.pconf.reserve = is_job_reserve_pixels;
    w.pconf.release = is_job_release_pixels;
    w.pconf.budget_ctx = &w;
    w.envfmt = !strcmp(cfg->input_format, "avro")        ? IS_ENVELOPE_AVRO
               : !strcmp(cfg->input_format, "confluent") ? IS_ENVELOPE_CONFLUENT
                                                         : IS_ENVELOPE_AUTO;

    if (is_pipeline_global_init(cfg, argv0, errstr, errstr_size))
        return -1;
    /* Checked once here, with every setting the job threads use (job.c),
     * so a bad endpoint or session token fails start-up, not a thread. The
     * probe also reads the lifecycle rules: a short timeout, so a store
     * that hangs delays start-up by seconds, not a whole s3.timeout.ms. */
    is_s3_conf_t s3c = {.endpoint = cfg->s3_endpoint,
                        .region = cfg->s3_region,
                        .bucket = cfg->s3_bucket,
                        .access_key = cfg->s3_access_key,
                        .secret_key = cfg->s3_secret_key,
                        .session_token = cfg->s3_session_token,
                        .path_style = cfg->s3_path_style,
                        .connect_timeout_ms = (long)cfg->s3_connect_timeout_ms,
                        /* a silent store must not hold start-up for long */
                        .timeout_ms =
                            (long)(cfg->s3_timeout_ms < 10000 ? cfg->s3_timeout_ms : 10000),
                        .sse = strcmp(cfg->s3_sse, "none") ? cfg->s3_sse : NULL,
                        .sse_kms_key_id = cfg->s3_sse_kms_key_id};
    if (!(probe = is_s3_new(&s3c, errstr, errstr_size)))
        goto done;
    /* Then the store is asked whether it accepts the credentials: keys it
     * does not know, a wrong secret, an invalid or expired session token
     * would fail every PUT. Not whether it answers: a store that is down
     * now is retried by the jobs, as any outage. */
    {
        char key[1200], why[1024];
        snprintf(key, sizeof(key), "%simgsink-credential-check", cfg->s3_prefix);
        is_s3_result_t r = is_s3_check_credentials(probe, key, why, sizeof(why));
        if (r == IS_S3_PERMANENT) {
            snprintf(errstr, errstr_size, "s3 start-up check: %s", why);
            goto done;
        }
        if (r == IS_S3_TRANSIENT)
            IS_WARN("s3", NULL,
                    "start-up check: the store did not answer whether it accepts the "
                    "credentials (%s); records wait and are retried until it does",
                    why);
    }
    if (is_keys_retention_classes(cfg->retention_classes, w.retention_days, &w.nretention, errstr,
                                  errstr_size) ||
        !(w.claimcheck = is_claimcheck_new(cfg->claimcheck_allowed, errstr, errstr_size)))
        goto done; /* validated with the configuration: out of memory */
    if (!(w.offsets = is_offsets_new()) || !(w.dlq = is_dlq_new(cfg, errstr, errstr_size)))
        goto done;
    /* After everything checked locally (the DLQ producer validates the
     * kafka.* properties), before the group sees us. */
    if (is_check_lifecycle_startup(cfg, probe, errstr, errstr_size))
        goto done;
    /* Before the consumer joins, so readiness is answered (503) from the
     * start, and a port in use stops start-up before the group sees us. */
    is_health_start();
    if (*cfg->http_listen) {
        if (!(http = is_http_new(cfg->http_listen, cfg->http_health_stall_ms, errstr, errstr_size)))
            goto done;
        IS_INFO("http", json_pack("{s:s}", "address", is_http_address(http)),
                "serving /metrics, /healthz and /readyz");
    }
    if (start_threads(&w, nthreads, errstr, errstr_size))
        goto done;
    if (!(w.rk = consumer_new(&w, errstr, errstr_size)))
        goto done;

    IS_INFO("worker",
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I}", "topics", cfg->input_topics, "group",
                      is_config_kafka_get(cfg, "group.id"), "bucket", cfg->s3_bucket, "dlq",
                      cfg->dlq_topic, "renditions", cfg->nrenditions, "threads", nthreads,
                      "max_inflight", (json_int_t)max_inflight(&w)),
            "imgsink %s started", IS_VERSION);

    while (!*stop && !atomic_load(&w.fatal) && !atomic_load(&w.stuck_exit) &&
           !atomic_load(&w.oom)) {
        is_health_beat();
        if (is_now_s() - last_watch >= 1.0) {
            is_watchdog_check(&w);
            last_watch = is_now_s();
        }
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w.rk, 100);
        if (rkm && rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(rkm->err)),
                        "consumer: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
        } else if (rkm) {
            dispatch(&w, rkm);
        }
        store_offsets(&w);
        backpressure(&w);
    }

    is_health_stopping();
    drain_all(&w);
    stuck = join_threads(&w, 5.0);
    store_offsets(&w);
    IS_INFO("worker", NULL, "committing stored offsets and leaving the group");
    rd_kafka_resp_err_t err = rd_kafka_commit(w.rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        IS_WARN("worker", NULL, "final commit: %s", rd_kafka_err2str(err));
    rd_kafka_consumer_close(w.rk); /* the revoke callback runs once more */
    if (atomic_load(&w.fatal)) {
        snprintf(errstr, errstr_size,
                 "fatal Kafka error (see the log above); exiting so the orchestrator restarts "
                 "this member");
        goto done;
    }
    if (atomic_load(&w.stuck_exit)) {
        snprintf(errstr, errstr_size,
                 "job threads stuck past worker.stuck.timeout.ms, and worker.stuck.max.threads "
                 "(%d) were left behind already (see the watchdog log above); exiting so the "
                 "orchestrator restarts this member; the stuck records stay uncommitted",
                 w.maxthreads - nthreads);
        goto done;
    }
    if (atomic_load(&w.oom)) {
        snprintf(errstr, errstr_size,
                 "out of memory tracking a record (see the log above); exiting so the "
                 "orchestrator restarts this member; the record stays uncommitted");
        goto done;
    }
    rc = 0;
done:
    if (w.nthreads) { /* start-up failed after threads started */
        pthread_mutex_lock(&w.lock);
        w.quit = 1;
        pthread_cond_broadcast(&w.cond_job);
        pthread_mutex_unlock(&w.lock);
        stuck = join_threads(&w, 5.0);
    }
    IS_INFO("worker",
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "records_in",
                      (json_int_t)atomic_load(&w.n_in), "records_written",
                      (json_int_t)atomic_load(&w.n_written), "records_dlq",
                      (json_int_t)atomic_load(&w.n_dlq), "records_abandoned",
                      (json_int_t)atomic_load(&w.n_abandoned), "puts",
                      (json_int_t)atomic_load(&w.n_puts), "retries",
                      (json_int_t)atomic_load(&w.n_retries), "rebalances",
                      (json_int_t)atomic_load(&w.n_rebalances), "stuck_threads_left_behind",
                      (json_int_t)atomic_load(&w.n_stuck)),
            "worker totals");
    if (stuck > 0) {
        /* Offsets are committed and the group left; every DLQ produce of
         * the other threads was acknowledged (is_dlq_send waits). The rest
         * cannot be freed under the stuck threads: rd_kafka_destroy would
         * wait forever for the message a stuck job holds, and libvips and
         * the worker's state are theirs. End the process here. */
        IS_ERR("worker", json_pack("{s:i}", "stuck_threads", stuck),
               "job threads still stuck; ending the process without them");
        if (rc)
            IS_ERR("main", NULL, "%s", errstr);
        fflush(NULL);
        _exit(rc ? 1 : 0);
    }
    if (w.rk)
        rd_kafka_destroy(w.rk);
    is_http_destroy(http); /* last: it answers "stopping" until the group was left */
    if (w.paused)
        rd_kafka_topic_partition_list_destroy(w.paused);
    is_dlq_destroy(w.dlq);
    is_offsets_destroy(w.offsets);
    is_s3_destroy(probe);
    is_claimcheck_destroy(w.claimcheck);
    free(w.threads);
    free(w.slots);
    free(w.args);
    is_retry_budget_destroy(&w.budget);
    is_pipeline_global_term();
    is_worker_sync_destroy(&w);
    return rc;
}
