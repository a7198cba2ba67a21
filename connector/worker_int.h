/*
 * worker_int.h - state shared by the poll thread (worker.c) and the job
 * threads (job.c). Not a public interface.
 *
 * Threads and locks:
 *   - The poll thread owns the consumer: it polls, serves rebalances,
 *     dispatches jobs and stores offsets. It is the only thread that calls
 *     rd_kafka_consumer_poll, rd_kafka_consume_queue, rd_kafka_offsets_store
 *     and rd_kafka_commit, and the only one that touches w->parts.
 *   - Dispatch: every assigned partition has its own librdkafka queue
 *     (is_part_t.q, not forwarded to the consumer queue), so
 *     rd_kafka_consumer_poll returns only rebalances and errors, and the
 *     poll thread takes records from the partitions in turn, each up to its
 *     share of worker.max.inflight (what the others leave unused goes to
 *     partitions with records). librdkafka stops fetching a partition whose
 *     queue is full: no pause, no refetch.
 *   - Job threads take jobs from the queue, process them (pipeline, PUTs,
 *     DLQ) and mark their offsets done in the tracker.
 *   - w->lock protects the queue, the running slots, the in-flight counters
 *     (records and bytes) and the pixel budget; the tracker has its own
 *     lock. Never hold w->lock while calling into librdkafka, libvips or
 *     libcurl, nor while logging: a blocked stderr would stop every job
 *     thread.
 *   - Timed waits on cond_job and cond_idle count on CLOCK_MONOTONIC
 *     (clock.h, is_worker_sync_init).
 */
#ifndef IS_WORKER_INT_H
#define IS_WORKER_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "claimcheck.h"
#include "registry.h"
#include "clock.h"
#include "config.h"
#include "dlq.h"
#include "envelope.h"
#include "keys.h"
#include "offsets.h"
#include "pipeline.h"
#include "retry_budget.h"
#include "s3.h"

/* One assigned partition (poll thread only). */
typedef struct is_part {
    char topic[256];
    int32_t partition;
    rd_kafka_queue_t *q; /* its fetch queue, not forwarded; owned here */
    int64_t stored;      /* last offset stored for it, -1 if none: logged when a commit fails */
    int fetched;         /* a record (or error) was taken from its queue since it was assigned */
    int64_t taken;       /* records dispatched since it was assigned */
} is_part_t;

typedef struct is_job {
    rd_kafka_message_t *rkm; /* owned by the job */
    uint64_t gen;            /* the partition's generation at dispatch */
    double dispatched_s;     /* is_now_s() at dispatch: the queue stage starts */
    int refs; /* under w->lock: 2 while a stuck thread and its replacement share it */
    struct is_job *next;
} is_job_t;

/* What a job is doing, for the watchdog's log line. */
typedef enum {
    IS_PHASE_IDLE,
    IS_PHASE_PIPELINE,
    IS_PHASE_GET,
    IS_PHASE_PUT,
    IS_PHASE_DLQ,
    IS_PHASE_BACKOFF,
} is_phase_t;

/* What one job thread is doing, for revoke waits, cancellation and the
 * watchdog (watchdog.c). */
typedef struct is_slot {
    char topic[256];
    int32_t partition; /* -1 when idle or left behind */
    int64_t offset;    /* of the running record */
    is_job_t *job;     /* the running job, under w->lock */
    int64_t pixels;    /* pixel budget held by this thread's pipeline, under w->lock */
    atomic_int cancel; /* set by the poll thread: give up retrying */
    /* Watchdog. beat_ms: CLOCK_MONOTONIC ms of the job's last sign of
     * progress (an attempt started, a backoff or budget wait went on).
     * interrupt: abort the current S3 request, which then counts as a
     * transient failure. orphaned: the thread was left behind, its job
     * handed to another thread; it must not finish the record. */
    atomic_llong beat_ms;
    atomic_int phase; /* is_phase_t */
    atomic_int interrupt;
    atomic_int orphaned;
    int64_t stuck_beat_ms; /* poll thread: the beat the watchdog found stuck, 0 if none */
} is_slot_t;

typedef struct is_worker {
    const is_config_t *cfg;
    rd_kafka_t *rk; /* consumer, poll thread only */
    is_dlq_t *dlq;  /* thread-safe */
    /* events.topic producer (events.h), NULL when unset; thread-safe */
    struct is_events *events;
    is_offsets_t *offsets;
    is_pipeline_conf_t pconf;
    is_envelope_format_t envfmt;
    int s3events; /* input.format: 0 never S3 events, 1 detect ('{'), 2 only S3 events */
    volatile sig_atomic_t *stop;

    pthread_mutex_t lock;
    pthread_cond_t cond_job;  /* queue became non-empty, or quit */
    pthread_cond_t cond_idle; /* a job finished, or pixels were released */
    is_job_t *qhead, *qtail;
    size_t inflight;   /* queued + running */
    int64_t pixels;    /* reserved by running pipelines */
    int pixel_waiters; /* jobs blocked on the pixel budget */
    int quit;          /* job threads exit when the queue is empty */
    int nthreads;      /* threads started: slots[0..nthreads) are in use */
    int maxthreads;    /* capacity: the pool plus worker.stuck.max.threads */
    int nstuck;        /* threads left behind, still stuck */
    pthread_t *threads;
    is_slot_t *slots;
    struct is_job_arg *args;

    is_retry_budget_t budget;

    /* Assigned partitions, each with its own fetch queue (poll thread
     * only). next: where the next dispatch round starts. */
    struct is_part *parts;
    int nparts, capparts, next;
    /* Until then (is_now_s), or until every assigned partition has had a
     * record fetched, the share a partition leaves unused is not handed
     * out: see dispatch_round. */
    double warm_until;
    int64_t inflight_bytes; /* under w->lock: rkm->len of jobs not yet freed */

    /* Built at start-up from the configuration, read-only after: what a
     * record may reference (claimcheck.allowed) and ask to be kept
     * (retention.classes). */
    is_claimcheck_t *claimcheck;
    is_creds_provider_t *creds; /* the store's credentials; any thread (creds.h) */
    /* Schema Registry client (thread-safe), NULL without schema.registry.url. */
    is_registry_t *registry;
    int retention_days[IS_KEYS_MAX_RETENTION_CLASSES];
    int nretention;

    atomic_int abandon; /* shutdown deadline passed: every retry loop gives up */
    atomic_int fatal;
    atomic_int stuck_exit; /* too many stuck threads: stop, exit non-zero */
    atomic_int oom;        /* a record could not be tracked: stop, exit non-zero */
    /* A store answer that only a configuration change fixes (a missing KMS
     * key or permission): stop, exit non-zero. store_fatal_why is written
     * once, by the job thread that wins store_fatal_claim, before
     * store_fatal is set; the poll thread reads it after. */
    atomic_int store_fatal, store_fatal_claim;
    char store_fatal_why[1024];

    /* counters, logged at exit */
    atomic_llong n_in, n_written, n_dlq, n_retries, n_puts, n_abandoned, n_rebalances, n_stuck;
} is_worker_t;

/* Job thread entry point (job.c). arg is the is_slot_t index as intptr_t
 * packed with the worker; see worker.c. */
typedef struct is_job_arg {
    is_worker_t *w;
    int index;
} is_job_arg_t;

void *is_job_thread(void *arg);

/* Starts the job thread of slot w->nthreads and counts it. Caller holds
 * w->lock, or is the only thread (start-up). */
int is_job_thread_start(is_worker_t *w);

/* Drops a reference to job; the last one frees it and takes its bytes out
 * of w->inflight_bytes. Caller holds w->lock. */
void is_job_unref(is_worker_t *w, is_job_t *job);

/* The watchdog (watchdog.c), run by the poll thread about once a second:
 * interrupts jobs without progress for worker.stuck.timeout.ms and hands
 * over the jobs of threads that stay stuck. */
void is_watchdog_check(is_worker_t *w);

/* The pixel budget (worker.max.inflight.pixels, job.c). reserve blocks
 * until pixels more fit (one image is always admitted when nothing else
 * holds budget) and returns 0, or -1 to give up (shutdown past its
 * deadline, or the calling thread was left behind by the watchdog: it may
 * hold no budget, see job.c); release returns what a successful reserve took. slot is the
 * calling job thread's slot, which counts what its pipeline holds (NULL
 * outside a job thread). Any thread; they take w->lock. */
int is_job_budget_reserve(is_worker_t *w, is_slot_t *slot, int64_t pixels);
void is_job_budget_release(is_worker_t *w, is_slot_t *slot, int64_t pixels);

/* The same as pipeline hooks (is_pipeline_conf_t.reserve/release): ctx is
 * the worker, the slot that of the job thread calling. */
int is_job_reserve_pixels(void *ctx, int64_t pixels);
void is_job_release_pixels(void *ctx, int64_t pixels);

/* w->lock and the condition variables, before any thread starts; destroy
 * after the last one was joined (worker.c). Returns 0 or -1. */
/* Records the first store configuration error (hint: what to fix, why: the
 * store's answer), logs it and makes the poll loop stop (job.c; any job
 * thread). */
void is_worker_store_fatal(is_worker_t *w, const char *hint, const char *why);

int is_worker_sync_init(is_worker_t *w);
void is_worker_sync_destroy(is_worker_t *w);

#endif
