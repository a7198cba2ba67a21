/*
 * health.c - liveness and readiness state. See health.h.
 */
#include "health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "creds.h"
#include "metrics.h"

static atomic_llong last_beat_ms; /* monotonic; 0 before is_health_start */
static atomic_int beaten;         /* the poll loop ran at least once */
static atomic_int stopping;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int joined, assigned;
static int have_stats, brokers_up;
static char cgrp_state[32];
static is_creds_provider_t *creds; /* set before the HTTP threads start */
static int64_t creds_restart_ms;

void is_health_creds(is_creds_provider_t *cp, int64_t restart_ms)
{
    creds = cp;
    creds_restart_ms = restart_ms;
}
static char kafka_error[640]; /* last client-level Kafka error, "" if none */
static int64_t kafka_error_ms;

void is_health_start(void)
{
    atomic_store(&last_beat_ms, is_now_ms());
    atomic_store(&beaten, 0);
    atomic_store(&stopping, 0);
    pthread_mutex_lock(&lock);
    joined = assigned = have_stats = brokers_up = 0;
    cgrp_state[0] = '\0';
    kafka_error[0] = '\0';
    pthread_mutex_unlock(&lock);
}

void is_health_kafka_error(const char *error)
{
    pthread_mutex_lock(&lock);
    snprintf(kafka_error, sizeof(kafka_error), "%s", error ? error : "");
    kafka_error_ms = is_now_ms();
    pthread_mutex_unlock(&lock);
}

void is_health_beat(void)
{
    atomic_store(&last_beat_ms, is_now_ms());
    atomic_store(&beaten, 1);
}

void is_health_group(int j, int a)
{
    pthread_mutex_lock(&lock);
    joined = j;
    assigned = a;
    pthread_mutex_unlock(&lock);
}

void is_health_publish_assignment(rd_kafka_t *rk, int j)
{
    rd_kafka_topic_partition_list_t *asg = NULL;
    int n = 0;
    if (!rd_kafka_assignment(rk, &asg) && asg)
        n = asg->cnt;
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    is_metrics_set(IS_M_ASSIGNED_PARTITIONS, n);
    is_health_group(j, n);
}

void is_health_kafka(int up, const char *state)
{
    pthread_mutex_lock(&lock);
    have_stats = 1;
    brokers_up = up;
    snprintf(cgrp_state, sizeof(cgrp_state), "%s", state ? state : "");
    pthread_mutex_unlock(&lock);
}

void is_health_stopping(void)
{
    atomic_store(&stopping, 1);
}

int is_health_live(int64_t stall_ms, char *why, size_t why_size)
{
    int64_t age = is_now_ms() - atomic_load(&last_beat_ms);
    if (age >= stall_ms) {
        snprintf(why, why_size,
                 "stalled: the poll loop has not run for %lld ms (http.health.stall.ms=%lld)",
                 (long long)age, (long long)stall_ms);
        return 0;
    }
    int64_t failing_ms = 0;
    if (creds && creds_restart_ms > 0 && !is_creds_healthy(creds, why, why_size, &failing_ms) &&
        failing_ms >= creds_restart_ms) {
        char reason[1024];
        snprintf(reason, sizeof(reason), "%s", why);
        snprintf(why, why_size,
                 "credentials unusable for %lld ms (s3.credentials.unhealthy.restart.ms=%lld): %s",
                 (long long)failing_ms, (long long)creds_restart_ms, reason);
        return 0;
    }
    snprintf(why, why_size, "ok: the poll loop ran %lld ms ago", (long long)age);
    return 1;
}

int is_health_ready(int64_t stall_ms, char *why, size_t why_size)
{
    int ok = 0;

    if (atomic_load(&stopping)) {
        snprintf(why, why_size, "stopping");
        return 0;
    }
    if (!atomic_load(&beaten)) {
        snprintf(why, why_size, "starting: the poll loop has not run yet");
        return 0;
    }
    if (!is_health_live(stall_ms, why, why_size))
        return 0;
    int64_t failing_ms;
    if (creds && !is_creds_healthy(creds, why, why_size, &failing_ms))
        return 0;
    pthread_mutex_lock(&lock);
    if (!joined)
        snprintf(why, why_size, "not in the consumer group: no assignment received yet");
    else if (have_stats && brokers_up == 0)
        snprintf(why, why_size, "no Kafka broker connected");
    else if (have_stats && strcmp(cgrp_state, "up"))
        snprintf(why, why_size, "group coordinator not connected (consumer group state %s)",
                 cgrp_state);
    else {
        snprintf(why, why_size, "ready: %d partitions assigned", assigned);
        ok = 1;
    }
    if (!ok && kafka_error[0]) {
        /* Not ready: the client's own last complaint is usually why (a
         * refused password or certificate never lets the member join). */
        size_t n = strlen(why);
        snprintf(why + n, why_size - n, "; last Kafka error (%lld s ago): %s",
                 (long long)((is_now_ms() - kafka_error_ms) / 1000), kafka_error);
    }
    pthread_mutex_unlock(&lock);
    return ok;
}
