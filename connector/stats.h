/*
 * stats.h - librdkafka's statistics (statistics.interval.ms) read into the
 * metrics (consumer lag, brokers up) and the readiness state (health.h).
 *
 * `imgsink run` sets kafka.statistics.interval.ms to 5000 unless the
 * operator set it; 0 turns the statistics off, and with them the lag
 * metric and the broker part of readiness.
 */
#ifndef IS_STATS_H
#define IS_STATS_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "metrics.h"

typedef struct is_stats {
    int brokers, brokers_up; /* real brokers (configured or learned), and those in state UP */
    char cgrp_state[32];     /* "up", "wait-coord", ...; "" for a client without a group */
    char join_state[32];     /* "steady", "wait-join", ... */
    is_metrics_lag_t *lag;   /* assigned partitions with a known lag; malloc'ed */
    size_t nlag;
} is_stats_t;

/* Parses one statistics document. A partition's lag is librdkafka's
 * consumer_lag; for a partition the group never committed it is the whole
 * retained log (end - log start), as `imgsink status` counts it. Only
 * partitions this member wants (assigned) are listed. Returns 0, or -1 with
 * errstr on a document that is not the expected JSON. Free with
 * is_stats_clear. */
int is_stats_parse(const char *json, size_t len, is_stats_t *st, char *errstr, size_t errstr_size);
void is_stats_clear(is_stats_t *st);

/* The consumer's stats_cb: parses and publishes to the metrics and the
 * readiness state. Runs on the poll thread (inside rd_kafka_consumer_poll).
 * Returns 0: librdkafka frees json. */
int is_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque);

#endif
