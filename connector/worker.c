/*
 * worker.c - the poll thread: consumer, rebalances, dispatch, backpressure,
 * offset storage and shutdown. Records are processed by the job threads in
 * job.c. See worker.h for the delivery protocol and worker_int.h for
 * threads and locks.
 *
 * Dispatch: each assigned partition's records stay in its own librdkafka
 * queue (rd_kafka_queue_get_partition, forwarded nowhere), taken one at a
 * time with rd_kafka_consume_queue, the partitions in turn; the consumer
 * queue (rd_kafka_consumer_poll) then carries only rebalances and errors.
 * A partition whose queue is full is no longer fetched by librdkafka
 * (queued.max.messages.kbytes counts per partition queue), so the worker
 * never pauses: a pause drops what was prefetched and costs a refetch. The
 * batch consume APIs are not used: in 2.0.x they lose offsets around pause
 * and seek.
 */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "events.h"
#include "health.h"
#include "http.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"
#include "worker_int.h"

/* How long after an assignment dispatch waits at most for every
 * partition's first fetch (a record, or the end-of-partition event) before
 * a busy partition may run past its share. They come within a few hundred
 * milliseconds; this bounds the wait when one does not (a broker away, or
 * enable.partition.eof turned off by the operator). */
#define WARM_UP_S 5.0

static size_t max_inflight(const is_worker_t *w)
{
    /* Divided by the assigned partitions, it is each one's share (see
     * dispatch_round). The jobs queued cover the time the poll thread
     * needs to notice a finished job (its poll timeout, 10 ms) many times
     * over. Deeper buys
     * nothing but what a SIGKILL repeats: not the queue (never started)
     * but what finished behind a slower record of its partition, capped by
     * this bound, and what finished since the last commit
     * (auto.commit.interval.ms, one second). Memory stays bounded by the
     * byte bound, the pixel budget and librdkafka's prefetch limits. */
    return w->cfg->worker_max_inflight ? (size_t)w->cfg->worker_max_inflight
                                       : (size_t)(16 * w->nthreads);
}

/* worker.max.inflight.bytes, or 64 MiB or two of the largest images,
 * whichever is larger: small images run as deep as the record bound
 * allows, 50 MB ones two at a time (a record is dispatched while less than
 * the bound is in flight). */
static int64_t max_inflight_bytes(const is_config_t *cfg)
{
    int64_t two = 2 * cfg->limits_max_input_bytes;
    if (cfg->worker_max_inflight_bytes)
        return cfg->worker_max_inflight_bytes;
    return two > (INT64_C(64) << 20) ? two : INT64_C(64) << 20;
}

static is_part_t *part_find(is_worker_t *w, const char *topic, int32_t partition)
{
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && !strcmp(w->parts[i].topic, topic))
            return &w->parts[i];
    return NULL;
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
        for (int i = 0; i < parts->cnt; i++) {
            is_part_t *p = part_find(w, parts->elems[i].topic, parts->elems[i].partition);
            if (p && !parts->elems[i].err)
                p->stored = parts->elems[i].offset;
            if (parts->elems[i].err)
                IS_WARN("worker",
                        json_pack("{s:s, s:i, s:I}", "topic", parts->elems[i].topic, "partition",
                                  (int)parts->elems[i].partition, "offset",
                                  (json_int_t)parts->elems[i].offset),
                        "offset not stored (%s): the partition moved to another member",
                        rd_kafka_err2str(parts->elems[i].err));
        }
        rd_kafka_topic_partition_list_destroy(parts);
        if (n < 64)
            break;
    }
}

static int in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic, int32_t p)
{
    return parts && rd_kafka_topic_partition_list_find(parts, topic, p) != NULL;
}

/* Removes queued (not yet running) jobs of the given partitions, or of
 * every partition when parts is NULL. They stay undone in the tracker, so
 * no offset passes them. Caller holds w->lock. */
static size_t drop_queued(is_worker_t *w, const rd_kafka_topic_partition_list_t *parts)
{
    size_t dropped = 0;
    is_job_t **pp = &w->qhead, *prev = NULL;
    while (*pp) {
        is_job_t *job = *pp;
        if (!parts || in_list(parts, rd_kafka_topic_name(job->rkm->rkt), job->rkm->partition)) {
            *pp = job->next;
            is_job_unref(w, job);
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

/* The group moved on while a commit was under way (members joined or
 * left): the commit carried a generation the coordinator no longer takes. */
static int generation_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
}

/* After a failed commit: logs, per partition (of only, or all assigned
 * when NULL), the offset the group has committed and the one this worker
 * had stored. The records between them are done here and will be processed
 * again by the next owner. Asks the coordinator (blocking, 2 s at most).
 * Poll thread. */
static void log_uncommitted(is_worker_t *w, const rd_kafka_topic_partition_list_t *only,
                            const char *what, rd_kafka_resp_err_t err)
{
    rd_kafka_topic_partition_list_t *asked = rd_kafka_topic_partition_list_new(w->nparts + 1);
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].stored >= 0 &&
            (!only || in_list(only, w->parts[i].topic, w->parts[i].partition)))
            rd_kafka_topic_partition_list_add(asked, w->parts[i].topic, w->parts[i].partition);
    int known = asked->cnt > 0 && !rd_kafka_committed(w->rk, asked, 2000);
    json_t *arr = json_array();
    for (int i = 0; i < asked->cnt; i++) {
        const is_part_t *p = part_find(w, asked->elems[i].topic, asked->elems[i].partition);
        int64_t committed = known && !asked->elems[i].err ? asked->elems[i].offset : -1;
        if (!p || (committed >= 0 && committed >= p->stored))
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:i, s:I, s:I}", "topic", p->topic, "partition",
                                             (int)p->partition, "committed", (json_int_t)committed,
                                             "stored", (json_int_t)p->stored));
    }
    rd_kafka_topic_partition_list_destroy(asked);
    IS_WARN("worker", json_pack("{s:s, s:o}", "error", rd_kafka_err2name(err), "partitions", arr),
            "%s failed (%s): the records from each partition's committed offset (-1: unknown) "
            "up to its stored offset are done but will be processed again",
            what, rd_kafka_err2str(err));
}

/* Gives a partition being assigned its own fetch queue, before the assign
 * starts fetching it: librdkafka keeps an application's forwarding (see
 * rd_kafka_queue_forward), so none of its records reaches the consumer
 * queue. Returns 0, or -1 (no memory, unknown partition): its records then
 * come through rd_kafka_consumer_poll and are dispatched from there, in
 * order, outside the round. Poll thread (rebalance callback). */
static int part_add(is_worker_t *w, rd_kafka_t *rk, const char *topic, int32_t partition)
{
    if (part_find(w, topic, partition))
        return 0;
    if (w->nparts == w->capparts) {
        int cap = w->capparts ? 2 * w->capparts : 16;
        is_part_t *np = realloc(w->parts, (size_t)cap * sizeof(*np));
        if (!np)
            return -1;
        w->parts = np;
        w->capparts = cap;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_partition(rk, topic, partition);
    if (!q)
        return -1;
    rd_kafka_queue_forward(q, NULL);
    is_part_t *p = &w->parts[w->nparts++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->q = q;
    p->stored = -1;
    p->fetched = 0;
    /* The warm-up counts from the latest assignment, for every partition. */
    for (int k = 0; k < w->nparts; k++)
        w->parts[k].taken = 0;
    /* The first fetch responses may hold some partitions' records only
     * (a broker fills a response partition by partition up to
     * fetch.max.bytes, and each partition's start offset is looked up
     * first); without a warm-up, those would take the whole record bound
     * before the others' records arrive. */
    w->warm_until = is_now_s() + WARM_UP_S;
    return 0;
}

/* Forgets a revoked or lost partition before it is unassigned: what its
 * queue still holds is destroyed, never dispatched (the next owner fetches
 * it again from the committed offset), and the queue handle is released.
 * Returns how many records were dropped. Poll thread (rebalance callback,
 * shutdown). */
static size_t part_remove(is_worker_t *w, const char *topic, int32_t partition)
{
    is_part_t *p = part_find(w, topic, partition);
    rd_kafka_message_t *rkm;
    size_t n = 0;

    if (!p)
        return 0;
    /* Bounded: the fetcher may still add to it until the unassign. */
    while (n < 100000 && (rkm = rd_kafka_consume_queue(p->q, 0))) {
        rd_kafka_message_destroy(rkm);
        n++;
    }
    rd_kafka_queue_destroy(p->q);
    *p = w->parts[--w->nparts];
    if (w->next >= w->nparts)
        w->next = 0;
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
    /* Inside the callback the rebalance cannot be served, so a commit the
     * group refused cannot wait for the next generation: the partitions
     * leave now. What it would have committed is logged. */
    rd_kafka_resp_err_t err = rd_kafka_commit(w->rk, NULL, 0);
    if (generation_error(err))
        log_uncommitted(w, parts, "commit on revoke", err);
    else if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
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
        for (int i = 0; i < parts->cnt; i++)
            if (part_add(w, rk, parts->elems[i].topic, parts->elems[i].partition))
                IS_WARN("worker",
                        json_pack("{s:s, s:i}", "topic", parts->elems[i].topic, "partition",
                                  (int)parts->elems[i].partition),
                        "no queue of its own for the partition (out of memory): its records are "
                        "dispatched as they arrive, outside the round");
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        /* The worker never pauses, so no partition carries a pause flag
         * (librdkafka keeps it across unassign and assign). */
        is_metrics_inc(IS_M_REBALANCE_ASSIGN);
        is_health_publish_assignment(rk, 1);
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
    /* Queues go before the unassign: what they hold is dropped, never
     * dispatched after the revoke (the callback runs on the poll thread,
     * which is also the only one that dispatches). */
    size_t unread = 0;
    for (int i = 0; i < parts->cnt; i++) {
        unread += part_remove(w, parts->elems[i].topic, parts->elems[i].partition);
        is_offsets_remove_partition(w->offsets, parts->elems[i].topic, parts->elems[i].partition);
    }
    if (unread)
        IS_DEBUG("rebalance", json_pack("{s:I}", "records", (json_int_t)unread),
                 "prefetched records of the leaving partitions dropped");
    if (cooperative)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
    is_health_publish_assignment(rk, !lost);
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
    char line[640];
    is_kafka_explain(reason, line, sizeof(line));
    if (is_kafka_needs_operator(err, line)) {
        /* Not transient: retried by librdkafka, but it takes an operator. */
        IS_ERR("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "%s", line);
    } else {
        IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "%s", line);
    }
    char named[700];
    snprintf(named, sizeof(named), "%s: %s", rd_kafka_err2name(err), line);
    is_health_kafka_error(named);
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
    job->dispatched_s = is_now_s();
    job->refs = 1;
    atomic_fetch_add(&w->n_in, 1);
    is_metrics_inc(IS_M_RECORDS_CONSUMED);
    is_metrics_add(IS_M_CONSUMED_BYTES, (int64_t)rkm->len);
    pthread_mutex_lock(&w->lock);
    w->inflight_bytes += (int64_t)rkm->len;
    if (w->qtail)
        w->qtail->next = job;
    else
        w->qhead = job;
    w->qtail = job;
    w->inflight++;
    pthread_cond_signal(&w->cond_job);
    pthread_mutex_unlock(&w->lock);
}

/* A message from a partition queue or the consumer queue: an error or
 * end-of-partition event is logged and freed, a record dispatched. */
static void take(is_worker_t *w, rd_kafka_message_t *rkm)
{
    if (rkm->err) {
        if (rkm->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
            rkm->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            /* Retried by librdkafka, but only an operator adding the ACL
             * helps: an error, in the log and in /readyz. */
            char line[600];
            snprintf(line, sizeof(line),
                     "consumer: %s%s%s (a Kafka ACL is missing: the worker's principal needs Read "
                     "on %s; see deploy/kafka/acls.sh)",
                     rd_kafka_message_errstr(rkm), rkm->rkt ? ": topic " : "",
                     rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
                     rkm->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED
                         ? "its group (kafka.group.id)"
                         : "every input topic");
            IS_ERR("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(rkm->err)), "%s", line);
            is_health_kafka_error(line);
        } else if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(rkm->err)),
                    "consumer: %s", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        return;
    }
    dispatch(w, rkm);
}

/* 1 while some assigned partition has yet to deliver its first record and
 * the warm-up has not run out. Poll thread. */
static int warming_up(is_worker_t *w)
{
    int all = 1;
    for (int k = 0; k < w->nparts; k++)
        all &= w->parts[k].fetched;
    return !all && is_now_s() < w->warm_until;
}

/* Fair dispatch: takes records from the partition queues in turn while
 * the bounds allow (records and bytes in flight, nobody waiting for pixel
 * budget). A partition is served first while it holds less than its share
 * of the record bound, max(1, bound / partitions); the share others leave
 * unused goes, in the same turn order, to partitions with records waiting,
 * so a lone busy partition still runs as deep as the bound. Not while
 * warming_up: right after an assignment the others' records may be a fetch
 * away, and a partition then takes no more than its share in all (small
 * records finish fast: a cap on records in flight alone would let the
 * first partition fetched run through dozens before the others start). The turn
 * starts after the partition served last, so no partition waits behind
 * another's backlog. Records past the bounds stay in librdkafka, which
 * stops fetching a partition whose queue is full. Poll thread. */
static void dispatch_round(is_worker_t *w)
{
    size_t bound = max_inflight(w);
    int64_t bytes_bound = max_inflight_bytes(w->cfg);
    int guard = (int)bound + 2 * w->nparts + 2; /* queue lengths count ops, not only records */

    while (w->nparts > 0 && guard-- > 0 && !atomic_load(&w->oom)) {
        pthread_mutex_lock(&w->lock);
        size_t inflight = w->inflight;
        int64_t bytes = w->inflight_bytes;
        int waiters = w->pixel_waiters;
        pthread_mutex_unlock(&w->lock);
        if (inflight >= bound || (inflight > 0 && bytes >= bytes_bound) || waiters > 0)
            return;
        size_t share = bound / (size_t)w->nparts;
        share = share < 1 ? 1 : share;
        int pick = -1, warm = warming_up(w);
        for (int pass = 0; pass < (warm ? 1 : 2) && pick < 0; pass++)
            for (int k = 0; k < w->nparts && pick < 0; k++) {
                is_part_t *p = &w->parts[(w->next + k) % w->nparts];
                if (!rd_kafka_queue_length(p->q) || (warm && p->taken >= (int64_t)share))
                    continue;
                if (pass == 0 && is_offsets_pending(w->offsets, p->topic, p->partition) >= share)
                    continue;
                pick = (w->next + k) % w->nparts;
            }
        if (pick < 0)
            return;
        w->next = (pick + 1) % w->nparts;
        /* A queue's length counts ops, not only records: the first ones
         * after an assignment are librdkafka's own, and return nothing. */
        rd_kafka_message_t *rkm = rd_kafka_consume_queue(w->parts[pick].q, 0);
        if (rkm) {
            w->parts[pick].fetched = 1;
            w->parts[pick].taken += !rkm->err;
            take(w, rkm);
        }
    }
}

/* Metrics of the in-flight work, once per poll loop. Poll thread. */
static void publish_inflight(is_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    size_t inflight = w->inflight;
    int64_t pixels = w->pixels;
    pthread_mutex_unlock(&w->lock);
    is_metrics_set(IS_M_INFLIGHT_RECORDS, (int64_t)inflight);
    is_metrics_set(IS_M_INFLIGHT_PIXELS, pixels);
    is_metrics_set(IS_M_PAUSED_PARTITIONS, 0); /* never paused since fair dispatch */
    is_metrics_set(IS_M_RETRY_BUDGET_TOKENS,
                   (int64_t)is_retry_budget_tokens(&w->budget, is_now_s()));
}

/* Sets a librdkafka property unless the operator set it as kafka.*. */
static int conf_default(const is_worker_t *w, rd_kafka_conf_t *conf, const char *key, int64_t v,
                        char *errstr, size_t errstr_size)
{
    char val[32];
    if (is_config_kafka_get(w->cfg, key))
        return 0;
    snprintf(val, sizeof(val), "%lld", (long long)v);
    return is_kafka_conf_set(conf, key, val, errstr, errstr_size);
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
    /* A partition with nothing to fetch tells so (an event taken from its
     * queue and dropped), which ends its part of the warm-up (warming_up). */
    if (conf_default(w, conf, "enable.partition.eof", 1, errstr, errstr_size))
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
    /* Prefetch bounded by the byte bound (worker.max.inflight.bytes):
     * each partition queue holds at most about two partition fetches
     * (queued.max.messages.kbytes counts per queue, as none is forwarded),
     * one fetch response at most a quarter of the bound. librdkafka
     * refuses to start with a fetch.max.bytes below message.max.bytes, or
     * above an operator's receive.message.max.bytes - 512: kept between
     * the two (left to librdkafka when they leave no room). */
    {
        const char *mmb = is_config_kafka_get(w->cfg, "message.max.bytes");
        const char *rmb = is_config_kafka_get(w->cfg, "receive.message.max.bytes");
        int64_t b = max_inflight_bytes(w->cfg), part = b / 16, fetch = b / 4;
        int64_t msg_max = mmb ? strtoll(mmb, NULL, 10) : 1000000;
        part = part < (64 << 10) ? (64 << 10) : part > (1 << 20) ? (1 << 20) : part;
        fetch = fetch < part ? part : fetch;
        fetch = fetch < (1 << 20) ? (1 << 20) : fetch;
        fetch = fetch < msg_max ? msg_max : fetch;
        if (rmb && fetch > strtoll(rmb, NULL, 10) - 512)
            fetch = strtoll(rmb, NULL, 10) - 512;
        if (conf_default(w, conf, "max.partition.fetch.bytes", part, errstr, errstr_size) ||
            conf_default(w, conf, "queued.max.messages.kbytes", 2 * part / 1024, errstr,
                         errstr_size) ||
            (fetch >= msg_max &&
             conf_default(w, conf, "fetch.max.bytes", fetch, errstr, errstr_size)))
            goto fail;
    }
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

/* Shutdown: no more fetching; jobs not yet started are dropped, as at a
 * revoke (the next owner fetches them again from the committed offset:
 * finishing them here would only make a scale-in wait, up to the record
 * bound's worth of work, while the partitions stay unowned); wait for the
 * running ones within shutdown.timeout.ms, then make retry loops give up,
 * store, commit and leave. Poll thread. */
static void drain_all(is_worker_t *w)
{
    double deadline = is_now_s() + w->cfg->shutdown_timeout_ms / 1e3;

    pthread_mutex_lock(&w->lock);
    size_t dropped = drop_queued(w, NULL);
    size_t inflight = w->inflight;
    pthread_mutex_unlock(&w->lock);
    IS_INFO(
        "worker",
        json_pack("{s:I, s:I}", "inflight", (json_int_t)inflight, "dropped", (json_int_t)dropped),
        "stopping: finishing the records being processed; records not started are left "
        "for the partitions' next owner");
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

/* The last commit before leaving. Several members stopping at once make
 * the group rebalance under it, and the coordinator refuses the old
 * generation (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS);
 * librdkafka then rejoins, with the assignment lost for the first two. So
 * the poll serves the rebalance (no record is dispatched any more: the
 * rebalance callback may drop and add partitions), and the stored
 * positions of partitions still assigned are committed again, explicitly:
 * a lost assignment forgets librdkafka's stored offsets. Until the
 * rebalance.drain.timeout.ms deadline; what stays uncommitted is logged.
 * Poll thread, after the job threads were joined. */
/* A bound on rd_kafka_consumer_close. It was seen to hang for minutes
 * (t84: a static member SIGTERMed while another static member drained,
 * librdkafka 2.8.0): the log ended at the revoke it triggers, after the
 * final commit had returned. The stored offsets are committed before the
 * close, and a static member sends no LeaveGroup anyway, so when the close
 * has not returned after shutdown.timeout.ms (at least 10 s) the process
 * exits (0 unless a fatal condition was already set) rather than sit in
 * Terminating until the kubelet's SIGKILL. */
typedef struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done;
    int64_t ms;
    const is_worker_t *w;
} close_guard_t;

static void *close_guard(void *arg)
{
    close_guard_t *g = arg;
    struct timespec ts = is_clock_deadline(g->ms);
    pthread_mutex_lock(&g->m);
    while (!g->done && pthread_cond_timedwait(&g->c, &g->m, &ts) == 0)
        ;
    int done = g->done;
    pthread_mutex_unlock(&g->m);
    if (done)
        return NULL;
    const is_worker_t *w = g->w;
    int failed = atomic_load(&w->fatal) || atomic_load(&w->store_fatal) ||
                 atomic_load(&w->stuck_exit) || atomic_load(&w->oom);
    IS_ERR("worker", json_pack("{s:I}", "timeout_ms", (json_int_t)g->ms),
           "leaving the group did not finish within shutdown.timeout.ms (librdkafka's consumer "
           "close hung); the stored offsets were committed before it: exiting with %d",
           failed);
    _exit(failed);
}

static void final_commit(is_worker_t *w)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(w->rk, NULL, 0);
    if (!generation_error(err)) {
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            IS_WARN("worker", NULL, "final commit: %s", rd_kafka_err2str(err));
        return;
    }
    /* What this worker stored, kept across the rebalance: the callback
     * forgets partitions that are lost, and adds them back when assigned
     * again. */
    rd_kafka_topic_partition_list_t *want = rd_kafka_topic_partition_list_new(w->nparts + 1);
    for (int i = 0; i < w->nparts; i++)
        if (w->parts[i].stored >= 0)
            rd_kafka_topic_partition_list_add(want, w->parts[i].topic, w->parts[i].partition)
                ->offset = w->parts[i].stored;
    IS_WARN("worker",
            json_pack("{s:s, s:i}", "error", rd_kafka_err2name(err), "partitions", want->cnt),
            "final commit refused while the group rebalances: serving the rebalance, then "
            "committing again");
    double deadline = is_now_s() + w->cfg->rebalance_drain_timeout_ms / 1e3;
    while (want->cnt > 0 && generation_error(err) && is_now_s() < deadline) {
        double until = is_now_s() + 0.5;
        while (is_now_s() < until) {
            is_health_beat();
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w->rk, 50);
            if (rkm) /* a partition without its own queue: not dispatched any more */
                rd_kafka_message_destroy(rkm);
        }
        /* Only partitions this member holds again: a moved one belongs to
         * its new owner, whose commits must not be overwritten. */
        rd_kafka_topic_partition_list_t *asg = NULL, *mine;
        if (rd_kafka_assignment(w->rk, &asg) || !asg)
            continue;
        mine = rd_kafka_topic_partition_list_new(want->cnt);
        for (int i = 0; i < want->cnt; i++)
            if (in_list(asg, want->elems[i].topic, want->elems[i].partition))
                rd_kafka_topic_partition_list_add(mine, want->elems[i].topic,
                                                  want->elems[i].partition)
                    ->offset = want->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(asg);
        if (mine->cnt == 0 || rd_kafka_assignment_lost(w->rk)) {
            rd_kafka_topic_partition_list_destroy(mine);
            continue;
        }
        err = rd_kafka_commit(w->rk, mine, 0);
        if (!err) {
            /* The rest moved to other members with the rebalance. */
            for (int i = 0; i < mine->cnt; i++)
                rd_kafka_topic_partition_list_del(want, mine->elems[i].topic,
                                                  mine->elems[i].partition);
            IS_INFO("worker", json_pack("{s:i}", "partitions", mine->cnt),
                    "final commit done after the rebalance");
            err = RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION; /* for the log of what moved */
            rd_kafka_topic_partition_list_destroy(mine);
            break;
        }
        rd_kafka_topic_partition_list_destroy(mine);
    }
    if (want->cnt > 0) {
        json_t *arr = json_array();
        for (int i = 0; i < want->cnt; i++)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:I}", "topic", want->elems[i].topic,
                                                 "partition", (int)want->elems[i].partition,
                                                 "stored", (json_int_t)want->elems[i].offset));
        IS_WARN("worker",
                json_pack("{s:s, s:o}", "error", rd_kafka_err2name(err), "partitions", arr),
                "final commit failed (%s): records below these stored offsets are done but, "
                "from each partition's last committed offset on, will be processed again",
                rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(want);
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
    w.s3events = !strcmp(cfg->input_format, "s3-event") ? 2 : !strcmp(cfg->input_format, "auto");

    if (is_pipeline_global_init(cfg, argv0, errstr, errstr_size))
        return -1;
    /* Checked once here, with every setting the job threads use (job.c),
     * so a bad endpoint or session token fails start-up, not a thread. The
     * probe also reads the lifecycle rules: a short timeout, so a store
     * that hangs delays start-up by seconds, not a whole s3.timeout.ms. */
    /* The credentials chain (creds.h): a source that is configured but
     * gives nothing usable stops start-up here, naming it. */
    {
        if (!(w.creds = is_s3_creds_of(cfg, errstr, errstr_size)))
            goto done;
        IS_INFO("creds", json_pack("{s:s}", "source", is_creds_source(w.creds)),
                "store credentials from %s", is_creds_source(w.creds));
        is_health_creds(w.creds, cfg->s3_credentials_unhealthy_restart_ms);
        is_metrics_creds(w.creds);
    }
    is_s3_conf_t s3c = is_s3_conf_of(cfg, w.creds);
    /* a silent store must not hold start-up for long */
    if (s3c.timeout_ms > 10000)
        s3c.timeout_ms = 10000;
    if (!cfg->s3_tls_verify)
        IS_WARN("s3", json_pack("{s:s}", "s3.endpoint", cfg->s3_endpoint),
                "INSECURE: s3.tls.verify=false: the store's TLS certificate and host name are NOT "
                "verified; anyone on the path can read and change the objects and take the "
                "credentials. Never use this outside a test store.");
    if (!(probe = is_s3_new(&s3c, errstr, errstr_size)))
        goto done;
    /* Then the store is asked whether it accepts the credentials: keys it
     * does not know, a wrong secret, an invalid or expired session token
     * would fail every PUT. Not whether it answers: a store that is down
     * now is retried by the jobs, as any outage. */
    is_s3_result_t store_answered = IS_S3_OK;
    {
        char key[1200], why[1024];
        snprintf(key, sizeof(key), "%simgsink-credential-check", cfg->s3_prefix);
        is_s3_result_t r = is_s3_check_credentials(probe, key, why, sizeof(why));
        store_answered = r;
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
    /* Then whether it takes this worker's PUTs (permissions, tags, the KMS
     * key of s3.sse) with a PUT that cannot store (check.h): a missing key
     * or permission would fail every record, so it stops start-up. Not
     * when the store did not answer the first question: a second wait of
     * up to 10 s would only delay start-up (and /healthz) further. */
    if (store_answered == IS_S3_TRANSIENT) {
        IS_WARN("s3", NULL,
                "start-up check: write probe skipped (the store did not answer); a missing "
                "permission or KMS key shows on the first record");
    } else {
        char why[1024];
        int rc = is_check_store_write(cfg, probe, why, sizeof(why));
        if (rc < 0) {
            snprintf(errstr, errstr_size, "s3 start-up check: %s", why);
            goto done;
        }
        if (rc > 0)
            IS_WARN("s3", NULL, "start-up check: %s; records wait and are retried", why);
        else
            IS_INFO("s3", NULL, "start-up check: %s", why);
    }
    if (is_keys_retention_classes(cfg->retention_classes, w.retention_days, &w.nretention, errstr,
                                  errstr_size) ||
        !(w.claimcheck = is_claimcheck_new(cfg->claimcheck_allowed, errstr, errstr_size)))
        goto done; /* validated with the configuration: out of memory */
    if (*cfg->schema_registry_url &&
        !(w.registry = is_registry_new(cfg->schema_registry_url, cfg->schema_registry_userinfo,
                                       cfg->schema_registry_ca,
                                       (long)cfg->schema_registry_timeout_ms, errstr, errstr_size)))
        goto done;
    if (!(w.offsets = is_offsets_new()) || !(w.dlq = is_dlq_new(cfg, errstr, errstr_size)))
        goto done;
    if (*cfg->events_topic && !(w.events = is_events_new(cfg, errstr, errstr_size)))
        goto done;
    /* After everything checked locally (the DLQ producer validates the
     * kafka.* properties), before the group sees us. */
    if (is_check_lifecycle_startup(cfg, probe, errstr, errstr_size))
        goto done;
    if (is_creds_start(w.creds, errstr, errstr_size))
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
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I}", "topics", cfg->input_topics,
                      "group", is_config_kafka_get(cfg, "group.id"), "bucket", cfg->s3_bucket,
                      "dlq", cfg->dlq_topic, "renditions", cfg->nrenditions, "threads", nthreads,
                      "max_inflight", (json_int_t)max_inflight(&w), "max_inflight_bytes",
                      (json_int_t)max_inflight_bytes(cfg)),
            "imgsink %s started", IS_VERSION);

    while (!*stop && !atomic_load(&w.fatal) && !atomic_load(&w.store_fatal) &&
           !atomic_load(&w.stuck_exit) && !atomic_load(&w.oom)) {
        is_health_beat();
        if (is_now_s() - last_watch >= 1.0) {
            is_watchdog_check(&w);
            last_watch = is_now_s();
        }
        /* Records come from the partition queues: this poll serves
         * rebalances, errors and statistics, and returns a record only of
         * a partition without a queue of its own (see part_add). Its short
         * timeout is how soon a finished job is replaced. */
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(w.rk, 10);
        if (rkm)
            take(&w, rkm);
        store_offsets(&w);
        dispatch_round(&w);
        publish_inflight(&w);
    }

    is_health_stopping();
    drain_all(&w);
    stuck = join_threads(&w, 5.0);
    store_offsets(&w);
    IS_INFO("worker", NULL, "committing stored offsets and leaving the group");
    final_commit(&w);
    close_guard_t guard = {.done = 0, .ms = w.cfg->shutdown_timeout_ms, .w = &w};
    if (guard.ms < 10000) /* a close that merely takes its time is not cut short */
        guard.ms = 10000;
    pthread_t guard_thr;
    int guarded = !pthread_mutex_init(&guard.m, NULL) && !is_clock_cond_init(&guard.c) &&
                  !pthread_create(&guard_thr, NULL, close_guard, &guard);
    rd_kafka_consumer_close(w.rk); /* the revoke callback runs once more */
    if (guarded) {
        pthread_mutex_lock(&guard.m);
        guard.done = 1;
        pthread_cond_signal(&guard.c);
        pthread_mutex_unlock(&guard.m);
        pthread_join(guard_thr, NULL);
    }
    for (int i = w.nparts - 1; i >= 0; i--) /* left only if close failed */
        part_remove(&w, w.parts[i].topic, w.parts[i].partition);
    if (atomic_load(&w.store_fatal)) {
        snprintf(errstr, errstr_size,
                 "store configuration error: %s; exiting so an operator fixes it (the record "
                 "stays uncommitted; imgsink check names the problem)",
                 w.store_fatal_why);
        goto done;
    }
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
    free(w.parts);
    is_dlq_destroy(w.dlq);
    is_events_destroy(w.events);
    is_offsets_destroy(w.offsets);
    is_s3_destroy(probe);
    is_health_creds(NULL, 0);
    is_metrics_creds(NULL);
    is_creds_provider_destroy(w.creds); /* after every S3 client */
    is_claimcheck_destroy(w.claimcheck);
    is_registry_destroy(w.registry);
    free(w.threads);
    free(w.slots);
    free(w.args);
    is_retry_budget_destroy(&w.budget);
    is_pipeline_global_term();
    is_worker_sync_destroy(&w);
    return rc;
}
