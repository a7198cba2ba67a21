/*
 * worker.h - `imgsink run`: one consumer-group member.
 *
 * Delivery protocol: enable.auto.commit=true with enable.auto.offset.store
 * =false, so librdkafka commits in the background only offsets the worker
 * stored, and the worker stores a record's offset + 1 only after every PUT
 * of that record succeeded, or after the record is durably in the DLQ. A
 * crash at any point therefore leaves the record uncommitted, and it is
 * processed again (identical keys, identical rendition bytes).
 *
 * Threads: is_worker_run runs the poll loop on the calling thread and does
 * all processing there; librdkafka's callbacks (rebalance, logs) are served
 * from within rd_kafka_consumer_poll on that same thread, so a rebalance
 * never happens while a record is half written.
 */
#ifndef IS_WORKER_H
#define IS_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "config.h"

/* Runs until *stop becomes non-zero (SIGTERM/SIGINT), then finishes the
 * record in hand within shutdown.timeout.ms, commits synchronously and
 * leaves the group. Returns 0 on a clean stop, -1 on a fatal error (errstr:
 * e.g. a fenced static member). */
int is_worker_run(const is_config_t *cfg, const char *argv0, volatile sig_atomic_t *stop,
                  char *errstr, size_t errstr_size);

#endif
