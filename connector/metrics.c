/*
 * metrics.c - the metrics registry and its text rendering. See metrics.h.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One series of a counter or gauge. A family's HELP and TYPE lines are
 * written before its first series, so a family's series are consecutive. */
typedef struct series {
    const char *family;
    const char *labels; /* rendered inside {}, or NULL */
    const char *help;
} series_t;

#define RECORDS_HELP "Records finished by outcome: written (every object durable), dlq, abandoned."
#define DLQ_HELP     "Records produced to the DLQ, by error class."
#define RETRY_HELP                                                                                 \
    "Retries of transient failures, counted when made (after the backoff and the retry budget), "  \
    "by what was retried."
#define STUCK_HELP                                                                                 \
    "Jobs the watchdog found without progress for worker.stuck.timeout.ms: interrupted (and "      \
    "retried), or handed over to a new job thread when their thread stayed stuck."
#define PUT_HELP   "PUT attempts by result (exists: 412 with s3.if.none.match)."
#define REBAL_HELP "Rebalance callbacks: partitions assigned, revoked, or lost."

static const series_t counters[IS_M_NCOUNTERS] = {
    [IS_M_RECORDS_CONSUMED] = {"imgsink_records_consumed_total", NULL,
                               "Records fetched and dispatched to the job threads."},
    [IS_M_CONSUMED_BYTES] = {"imgsink_consumed_bytes_total", NULL,
                             "Bytes of record values dispatched to the job threads."},
    [IS_M_WRITTEN] = {"imgsink_records_total", "outcome=\"written\"", RECORDS_HELP},
    [IS_M_DLQ] = {"imgsink_records_total", "outcome=\"dlq\"", RECORDS_HELP},
    [IS_M_ABANDONED] = {"imgsink_records_total", "outcome=\"abandoned\"", RECORDS_HELP},
    [IS_M_DLQ_ENVELOPE] = {"imgsink_dlq_records_total", "class=\"envelope\"", DLQ_HELP},
    [IS_M_DLQ_RECORD] = {"imgsink_dlq_records_total", "class=\"record\"", DLQ_HELP},
    [IS_M_DLQ_IMAGE] = {"imgsink_dlq_records_total", "class=\"image\"", DLQ_HELP},
    [IS_M_DLQ_CLAIM_CHECK] = {"imgsink_dlq_records_total", "class=\"claim-check\"", DLQ_HELP},
    [IS_M_DLQ_STORE] = {"imgsink_dlq_records_total", "class=\"store\"", DLQ_HELP},
    [IS_M_DLQ_OTHER] = {"imgsink_dlq_records_total", "class=\"other\"", DLQ_HELP},
    [IS_M_RETRY_STORE] = {"imgsink_retries_total", "class=\"store\"", RETRY_HELP},
    [IS_M_RETRY_CLAIM_CHECK] = {"imgsink_retries_total", "class=\"claim-check\"", RETRY_HELP},
    [IS_M_RETRY_PIPELINE] = {"imgsink_retries_total", "class=\"pipeline\"", RETRY_HELP},
    [IS_M_RETRY_DLQ] = {"imgsink_retries_total", "class=\"dlq\"", RETRY_HELP},
    [IS_M_RETRY_REGISTRY] = {"imgsink_retries_total", "class=\"registry\"", RETRY_HELP},
    [IS_M_RETRY_BUDGET_WAITS] = {"imgsink_retry_budget_waits_total", NULL,
                                 "Retries that had to wait for the retry budget "
                                 "(retry.budget.*) after their backoff."},
    [IS_M_STUCK_INTERRUPTED] = {"imgsink_stuck_jobs_total", "action=\"interrupted\"", STUCK_HELP},
    [IS_M_STUCK_HANDED_OVER] = {"imgsink_stuck_jobs_total", "action=\"handed_over\"", STUCK_HELP},
    [IS_M_PUT_OK] = {"imgsink_puts_total", "result=\"ok\"", PUT_HELP},
    [IS_M_PUT_EXISTS] = {"imgsink_puts_total", "result=\"exists\"", PUT_HELP},
    [IS_M_PUT_TRANSIENT] = {"imgsink_puts_total", "result=\"transient\"", PUT_HELP},
    [IS_M_PUT_PERMANENT] = {"imgsink_puts_total", "result=\"permanent\"", PUT_HELP},
    [IS_M_PUT_BYTES] = {"imgsink_put_bytes_total", NULL, "Bytes of objects written (PUT bodies)."},
    [IS_M_REBALANCE_ASSIGN] = {"imgsink_rebalances_total", "event=\"assigned\"", REBAL_HELP},
    [IS_M_REBALANCE_REVOKE] = {"imgsink_rebalances_total", "event=\"revoked\"", REBAL_HELP},
    [IS_M_REBALANCE_LOST] = {"imgsink_rebalances_total", "event=\"lost\"", REBAL_HELP},
    [IS_M_S3_EVENTS_CREATED] = {"imgsink_s3_events_total", "kind=\"created\"",
                                "S3 event records read: uploads processed (created) or other "
                                "events counted and skipped (skipped)."},
    [IS_M_S3_EVENTS_SKIPPED] = {"imgsink_s3_events_total", "kind=\"skipped\"",
                                "S3 event records read: uploads processed (created) or other "
                                "events counted and skipped (skipped)."},
    [IS_M_ANALYTICS_FILES] = {"imgsink_analytics_files_total", NULL,
                              "Analytics files written (PUT succeeded) by `imgsink analytics`."},
    [IS_M_ANALYTICS_ROWS] = {"imgsink_analytics_rows_total", NULL,
                             "Events written as rows of analytics files."},
    [IS_M_ANALYTICS_BYTES] = {"imgsink_analytics_bytes_total", NULL,
                              "Bytes of the analytics files written."},
    [IS_M_ANALYTICS_SKIPPED] = {"imgsink_analytics_skipped_events_total", NULL,
                                "Events of the events topic that are not ImageEvents (or name a "
                                "schema id the registry does not resolve): logged and skipped."},
};

static const series_t gauges[IS_M_NGAUGES] = {
    [IS_M_INFLIGHT_RECORDS] = {"imgsink_inflight_records", NULL,
                               "Records dispatched and not finished (queued and running)."},
    [IS_M_INFLIGHT_PIXELS] = {"imgsink_inflight_pixels", NULL,
                              "Decoded pixels reserved by running pipelines "
                              "(budget: worker.max.inflight.pixels)."},
    [IS_M_PAUSED_PARTITIONS] = {"imgsink_paused_partitions", NULL,
                                "Partitions paused for backpressure."},
    [IS_M_ASSIGNED_PARTITIONS] = {"imgsink_assigned_partitions", NULL,
                                  "Partitions assigned to this member."},
    [IS_M_BROKERS_UP] = {"imgsink_kafka_brokers_up", NULL,
                         "Kafka brokers with an open connection (librdkafka statistics)."},
    [IS_M_STUCK_THREADS] = {"imgsink_stuck_job_threads", NULL,
                            "Job threads left behind by the watchdog and still stuck "
                            "(limit: worker.stuck.max.threads)."},
    [IS_M_RETRY_BUDGET_TOKENS] = {"imgsink_retry_budget_tokens", NULL,
                                  "Retries the retry budget allows right now."},
};

/* Upper bounds in seconds; the +Inf bucket is implicit. */
#define MAX_BOUNDS 16
static const double put_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1,     2.5,  5,     10,   30,  60};
static const double proc_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
static const double stage_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,      2.5,   5,    10,    30,   60};
_Static_assert(sizeof(put_bounds) / sizeof(put_bounds[0]) <= MAX_BOUNDS, "MAX_BOUNDS");
_Static_assert(sizeof(proc_bounds) / sizeof(proc_bounds[0]) <= MAX_BOUNDS, "MAX_BOUNDS");
_Static_assert(sizeof(stage_bounds) / sizeof(stage_bounds[0]) <= MAX_BOUNDS, "MAX_BOUNDS");

/* Histograms of one family with different labels are consecutive entries. */
typedef struct histogram {
    const char *family, *help;
    const char *labels; /* e.g. stage="decode", or NULL */
    const double *bounds;
    size_t nbounds;
    pthread_mutex_t lock;
    uint64_t buckets[MAX_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    double sum;
} histogram_t;

static histogram_t histograms[IS_M_NHISTOGRAMS] = {
    [IS_M_PUT_SECONDS] = {"imgsink_put_duration_seconds",
                          "Duration of one PUT attempt, successful or not.",
                          NULL,
                          put_bounds,
                          sizeof(put_bounds) / sizeof(put_bounds[0]),
                          PTHREAD_MUTEX_INITIALIZER,
                          {0},
                          0},
    [IS_M_PROCESSING_SECONDS] = {"imgsink_processing_duration_seconds",
                                 "Time a job thread spent on one record written or sent to the "
                                 "DLQ: decode, renditions, PUTs, DLQ produce, retries included.",
                                 NULL,
                                 proc_bounds,
                                 sizeof(proc_bounds) / sizeof(proc_bounds[0]),
                                 PTHREAD_MUTEX_INITIALIZER,
                                 {0},
                                 0},
    [IS_M_ANALYTICS_FLUSH_SECONDS] = {.family = "imgsink_analytics_flush_duration_seconds",
                                      .help = "Time `imgsink analytics` took to write one file: "
                                              "encode and PUT, retries included.",
                                      .bounds = put_bounds,
                                      .nbounds = sizeof(put_bounds) / sizeof(put_bounds[0]),
                                      .lock = PTHREAD_MUTEX_INITIALIZER},
#define STAGE(name)                                                                                \
    {                                                                                              \
        .family = "imgsink_stage_duration_seconds",                                                \
        .help =                                                                                    \
            "Where the time of each record written went, by stage: queue (dispatched to taken "    \
            "by a job thread), decode (header checks, shrink-on-load decode of the base, "         \
            "analysis), resize_encode (every rendition), put (every PUT attempt of the record).",  \
        .labels = "stage=\"" name "\"", .bounds = stage_bounds,                                    \
        .nbounds = sizeof(stage_bounds) / sizeof(stage_bounds[0]),                                 \
        .lock = PTHREAD_MUTEX_INITIALIZER                                                          \
    }
    [IS_M_STAGE_QUEUE] = STAGE("queue"),
    [IS_M_STAGE_DECODE] = STAGE("decode"),
    [IS_M_STAGE_RESIZE_ENCODE] = STAGE("resize_encode"),
    [IS_M_STAGE_PUT] = STAGE("put"),
#undef STAGE
};

static atomic_llong counter_v[IS_M_NCOUNTERS];
static atomic_llong gauge_v[IS_M_NGAUGES];

static pthread_mutex_t lag_lock = PTHREAD_MUTEX_INITIALIZER;
static is_metrics_lag_t *lag_v;
static size_t lag_n;

void is_metrics_add(is_metrics_counter_t c, int64_t n)
{
    if ((unsigned)c < IS_M_NCOUNTERS)
        atomic_fetch_add(&counter_v[c], n);
}

void is_metrics_set(is_metrics_gauge_t g, int64_t v)
{
    if ((unsigned)g < IS_M_NGAUGES)
        atomic_store(&gauge_v[g], v);
}

int64_t is_metrics_counter(is_metrics_counter_t c)
{
    return (unsigned)c < IS_M_NCOUNTERS ? atomic_load(&counter_v[c]) : 0;
}

int64_t is_metrics_gauge(is_metrics_gauge_t g)
{
    return (unsigned)g < IS_M_NGAUGES ? atomic_load(&gauge_v[g]) : 0;
}

void is_metrics_observe(is_metrics_histogram_t h, double seconds)
{
    if ((unsigned)h >= IS_M_NHISTOGRAMS)
        return;
    histogram_t *hg = &histograms[h];
    size_t i = 0;
    while (i < hg->nbounds && seconds > hg->bounds[i])
        i++;
    pthread_mutex_lock(&hg->lock);
    hg->buckets[i]++;
    hg->sum += seconds;
    pthread_mutex_unlock(&hg->lock);
}

void is_metrics_set_lag(const is_metrics_lag_t *lags, size_t n)
{
    is_metrics_lag_t *copy = n ? malloc(n * sizeof(*copy)) : NULL;
    if (n && !copy)
        return; /* keep the previous table */
    if (n)
        memcpy(copy, lags, n * sizeof(*copy));
    pthread_mutex_lock(&lag_lock);
    is_metrics_lag_t *old = lag_v;
    lag_v = copy;
    lag_n = n;
    pthread_mutex_unlock(&lag_lock);
    free(old);
}

is_metrics_counter_t is_metrics_dlq_class(const char *klass)
{
    static const struct {
        const char *name;
        is_metrics_counter_t c;
    } map[] = {{"envelope", IS_M_DLQ_ENVELOPE},
               {"record", IS_M_DLQ_RECORD},
               {"image", IS_M_DLQ_IMAGE},
               {"claim-check", IS_M_DLQ_CLAIM_CHECK},
               {"store", IS_M_DLQ_STORE}};
    for (size_t i = 0; klass && i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(klass, map[i].name))
            return map[i].c;
    return IS_M_DLQ_OTHER;
}

static void family_header(FILE *fp, const char **prev, const char *family, const char *help,
                          const char *type)
{
    if (*prev && !strcmp(*prev, family))
        return;
    fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, type);
    *prev = family;
}

static void render_series(FILE *fp, const series_t *s, size_t n, atomic_llong *v, const char *type)
{
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        family_header(fp, &prev, s[i].family, s[i].help, type);
        fprintf(fp, "%s%s%s%s %lld\n", s[i].family, s[i].labels ? "{" : "",
                s[i].labels ? s[i].labels : "", s[i].labels ? "}" : "",
                (long long)atomic_load(&v[i]));
    }
}

static void render_histogram(FILE *fp, histogram_t *hg, const char **prev)
{
    const char *l = hg->labels ? hg->labels : "", *sep = hg->labels ? "," : "";
    uint64_t b[MAX_BOUNDS + 1], cum = 0;
    double sum;

    /* A consistent snapshot: _count equals the +Inf bucket. */
    pthread_mutex_lock(&hg->lock);
    memcpy(b, hg->buckets, sizeof(b));
    sum = hg->sum;
    pthread_mutex_unlock(&hg->lock);

    family_header(fp, prev, hg->family, hg->help, "histogram");
    for (size_t i = 0; i < hg->nbounds; i++) {
        cum += b[i];
        fprintf(fp, "%s_bucket{%s%sle=\"%g\"} %llu\n", hg->family, l, sep, hg->bounds[i],
                (unsigned long long)cum);
    }
    cum += b[hg->nbounds];
    fprintf(fp, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", hg->family, l, sep, (unsigned long long)cum);
    if (hg->labels)
        fprintf(fp, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", hg->family, l, sum, hg->family, l,
                (unsigned long long)cum);
    else
        fprintf(fp, "%s_sum %.9g\n%s_count %llu\n", hg->family, sum, hg->family,
                (unsigned long long)cum);
}

/* Label values may hold any byte but backslash, quote and newline must be
 * escaped. Kafka topic names cannot contain them; escaped anyway. */
static void label_value(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(fp, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", fp);
        else
            fputc(*s, fp);
    }
}

static void render_lag(FILE *fp)
{
    fputs("# HELP imgsink_consumer_lag Records between the committed offset and the end of each "
          "assigned partition (librdkafka statistics, every kafka.statistics.interval.ms).\n"
          "# TYPE imgsink_consumer_lag gauge\n",
          fp);
    pthread_mutex_lock(&lag_lock);
    for (size_t i = 0; i < lag_n; i++) {
        fputs("imgsink_consumer_lag{topic=\"", fp);
        label_value(fp, lag_v[i].topic);
        fprintf(fp, "\",partition=\"%d\"} %lld\n", (int)lag_v[i].partition,
                (long long)lag_v[i].lag);
    }
    pthread_mutex_unlock(&lag_lock);
}

static is_creds_provider_t *_Atomic creds;

void is_metrics_creds(is_creds_provider_t *cp)
{
    atomic_store(&creds, cp);
}

char *is_metrics_render(size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp)
        return NULL;
    fputs("# HELP imgsink_build_info The running imgsink version.\n"
          "# TYPE imgsink_build_info gauge\n",
          fp);
    fprintf(fp, "imgsink_build_info{version=\"%s\"} 1\n", IS_VERSION);
    render_series(fp, counters, IS_M_NCOUNTERS, counter_v, "counter");
    render_series(fp, gauges, IS_M_NGAUGES, gauge_v, "gauge");
    const char *prev = NULL;
    for (int h = 0; h < IS_M_NHISTOGRAMS; h++)
        render_histogram(fp, &histograms[h], &prev);
    render_lag(fp);
    is_creds_provider_t *cp = atomic_load(&creds);
    if (cp)
        is_creds_metrics_write(cp, fp);
    if (fclose(fp)) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = n;
    return buf;
}

void is_metrics_reset(void)
{
    for (int i = 0; i < IS_M_NCOUNTERS; i++)
        atomic_store(&counter_v[i], 0);
    for (int i = 0; i < IS_M_NGAUGES; i++)
        atomic_store(&gauge_v[i], 0);
    for (int h = 0; h < IS_M_NHISTOGRAMS; h++) {
        pthread_mutex_lock(&histograms[h].lock);
        memset(histograms[h].buckets, 0, sizeof(histograms[h].buckets));
        histograms[h].sum = 0;
        pthread_mutex_unlock(&histograms[h].lock);
    }
    is_metrics_set_lag(NULL, 0);
}
