/*
 * health.h - liveness and readiness of the worker, answered on /healthz and
 * /readyz (http.c).
 *
 * Live: the poll loop keeps iterating. The poll thread calls is_health_beat
 * on every iteration (at least every 100 ms, also while it waits for a
 * revoke or shutdown drain); a loop that has not beaten for stall_ms is
 * stalled (blocked in a call that does not return, or deadlocked), and a
 * restart is the cure.
 *
 * Ready: the member is serving its share of the topic. It has received its
 * assignment from the group (possibly empty: more members than partitions
 * is a normal state) and, according to librdkafka's latest statistics, the
 * group coordinator and at least one broker are connected. Not ready while
 * starting, after the assignment was lost, and while stopping.
 *
 * One state per process, like metrics.h. Writers: the poll thread (beat,
 * group; the statistics callback runs on it too) and the worker on shutdown.
 * Readers: the HTTP threads. A mutex protects the strings; the heartbeat is
 * an atomic.
 */
#ifndef IS_HEALTH_H
#define IS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

/* A worker starts: the heartbeat clock starts now, nothing joined yet. */
void is_health_start(void);

/* One iteration of the poll loop. Poll thread. */
void is_health_beat(void);

/* The group: joined (an assignment was received and not lost) and the
 * number of partitions assigned. Poll thread, from the rebalance callback. */
void is_health_group(int joined, int assigned);

/* The same from the consumer itself: the partitions of rk's current
 * assignment go to is_health_group and to the assigned-partitions gauge
 * (metrics.h). joined: an assignment is held (possibly empty); 0 after it
 * was lost. The worker's and the analytics sink's rebalance callbacks call
 * it, on the poll thread. */
struct rd_kafka_s;
void is_health_publish_assignment(struct rd_kafka_s *rk, int joined);

/* From librdkafka's statistics: brokers with an open connection and the
 * consumer group's state ("up" when the coordinator is known and
 * connected). */
void is_health_kafka(int brokers_up, const char *cgrp_state);

/* The consumer's last error event (authentication, TLS, transport), one
 * line, secrets never in it (librdkafka's reasons hold none). A not-ready
 * answer appends it with its age. Poll thread (error callback). */
void is_health_kafka_error(const char *error);

/* The worker is shutting down: not ready any more. */
void is_health_stopping(void);

/* The store's credentials count too (creds.h): credentials that cannot be
 * refreshed, or that the store refuses, make the worker unready at once
 * with the reason, and not live after restart_ms of that (0: never), so an
 * orchestrator restarts it instead of it retrying forever. NULL: none.
 * From the worker before and after the threads that ask. */
struct is_creds_provider;
void is_health_creds(struct is_creds_provider *cp, int64_t restart_ms);

/* 1 when live, 0 when stalled; why gets a one-line explanation either way. */
int is_health_live(int64_t stall_ms, char *why, size_t why_size);

/* 1 when ready, 0 otherwise; why gets a one-line explanation either way. A
 * stalled loop is not ready either. */
int is_health_ready(int64_t stall_ms, char *why, size_t why_size);

#endif
