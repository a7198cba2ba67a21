/*
 * metrics.h - the worker's Prometheus metrics, rendered on /metrics (http.c).
 *
 * One registry per process. A process runs one worker, so the registry is
 * global, like the default registry of the Prometheus client libraries: the
 * poll thread, the job threads and librdkafka's statistics callback update it
 * without a pointer being handed around, and an HTTP thread renders it.
 *
 * Every series is declared once in the table in metrics.c (family, help,
 * labels). Names start with imgsink_, counters end in _total, durations are
 * in seconds and sizes in bytes.
 *
 * Threads: any thread may update or render. Counters and gauges are atomics;
 * each histogram and the lag table have their own mutex, held for a few
 * instructions and never across I/O.
 */
#ifndef IS_METRICS_H
#define IS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "creds.h"

/* Counters. Consecutive entries of one family differ only in a label. */
typedef enum {
    IS_M_RECORDS_CONSUMED, /* imgsink_records_consumed_total */
    IS_M_CONSUMED_BYTES,   /* imgsink_consumed_bytes_total: record values */
    IS_M_WRITTEN,          /* imgsink_records_total{outcome} */
    IS_M_DLQ,
    IS_M_ABANDONED,
    IS_M_DLQ_ENVELOPE, /* imgsink_dlq_records_total{class} */
    IS_M_DLQ_RECORD,
    IS_M_DLQ_IMAGE,
    IS_M_DLQ_CLAIM_CHECK,
    IS_M_DLQ_STORE,
    IS_M_DLQ_OTHER,
    IS_M_RETRY_STORE, /* imgsink_retries_total{class} */
    IS_M_RETRY_CLAIM_CHECK,
    IS_M_RETRY_PIPELINE,
    IS_M_RETRY_DLQ,
    IS_M_RETRY_REGISTRY,     /* Schema Registry lookups (registry.h) */
    IS_M_RETRY_BUDGET_WAITS, /* imgsink_retry_budget_waits_total */
    IS_M_STUCK_INTERRUPTED,  /* imgsink_stuck_jobs_total{action} */
    IS_M_STUCK_HANDED_OVER,
    IS_M_PUT_OK, /* imgsink_puts_total{result}: every PUT attempt */
    IS_M_PUT_EXISTS,
    IS_M_PUT_TRANSIENT,
    IS_M_PUT_PERMANENT,
    IS_M_PUT_BYTES,        /* imgsink_put_bytes_total: bodies of successful PUTs */
    IS_M_REBALANCE_ASSIGN, /* imgsink_rebalances_total{event} */
    IS_M_REBALANCE_REVOKE,
    IS_M_REBALANCE_LOST,
    IS_M_S3_EVENTS_CREATED, /* imgsink_s3_events_total{kind} */
    IS_M_S3_EVENTS_SKIPPED,
    IS_M_ANALYTICS_FILES,   /* imgsink_analytics_files_total: `imgsink analytics` (analytics.h) */
    IS_M_ANALYTICS_ROWS,    /* imgsink_analytics_rows_total */
    IS_M_ANALYTICS_BYTES,   /* imgsink_analytics_bytes_total: bytes of the files written */
    IS_M_ANALYTICS_SKIPPED, /* imgsink_analytics_skipped_events_total */
    IS_M_NCOUNTERS
} is_metrics_counter_t;

typedef enum {
    IS_M_INFLIGHT_RECORDS,  /* dispatched, not finished (queued + running) */
    IS_M_INFLIGHT_PIXELS,   /* reserved by running pipelines */
    IS_M_PAUSED_PARTITIONS, /* paused for backpressure */
    IS_M_ASSIGNED_PARTITIONS,
    IS_M_BROKERS_UP,          /* from librdkafka's statistics */
    IS_M_STUCK_THREADS,       /* job threads left behind by the watchdog */
    IS_M_RETRY_BUDGET_TOKENS, /* retries the budget allows right now */
    IS_M_NGAUGES
} is_metrics_gauge_t;

typedef enum {
    IS_M_PUT_SECONDS,             /* one PUT attempt */
    IS_M_PROCESSING_SECONDS,      /* one record, from a job thread taking it to its outcome */
    IS_M_ANALYTICS_FLUSH_SECONDS, /* one analytics file: encode, PUT (retries included) */
    /* imgsink_stage_duration_seconds{stage}: where a written record's time
     * went, observed once per record written. */
    IS_M_STAGE_QUEUE,         /* dispatched by the poll thread to taken by a job thread */
    IS_M_STAGE_DECODE,        /* header checks, shrink-on-load decode of the base, analysis */
    IS_M_STAGE_RESIZE_ENCODE, /* every rendition cut from the base and encoded */
    IS_M_STAGE_PUT,           /* every PUT of the record, retries and backoff included */
    IS_M_NHISTOGRAMS
} is_metrics_histogram_t;

/* One partition's consumer lag (librdkafka's consumer_lag: the log end,
 * or last stable offset, minus the committed offset). */
typedef struct is_metrics_lag {
    char topic[256];
    int32_t partition;
    int64_t lag;
} is_metrics_lag_t;

void is_metrics_add(is_metrics_counter_t c, int64_t n);
#define is_metrics_inc(c) is_metrics_add((c), 1)
void is_metrics_set(is_metrics_gauge_t g, int64_t v);
void is_metrics_observe(is_metrics_histogram_t h, double seconds);

/* Replaces the whole lag table: partitions not in lags disappear (revoked).
 * lags is copied. */
void is_metrics_set_lag(const is_metrics_lag_t *lags, size_t n);

/* The DLQ counter of an error class as written in the DLQ headers
 * (envelope, record, image, claim-check, store); IS_M_DLQ_OTHER otherwise. */
is_metrics_counter_t is_metrics_dlq_class(const char *klass);

/* Current values, for logs and tests. */
int64_t is_metrics_counter(is_metrics_counter_t c);
int64_t is_metrics_gauge(is_metrics_gauge_t g);

/* The Prometheus text exposition (format 0.0.4) of every series, in a
 * malloc'ed NUL-terminated buffer the caller frees; NULL when out of
 * memory. */
char *is_metrics_render(size_t *len);

/* The credentials provider whose series (is_creds_metrics_write) the
 * rendering appends; NULL: none. Set before the HTTP threads start and
 * cleared after they stopped, like is_health_creds. */
void is_metrics_creds(is_creds_provider_t *cp);

/* Zeroes every series. For a process that runs workers one after another
 * and for the unit tests; never called while a worker runs. */
void is_metrics_reset(void);

#endif
