/*
 * analytics_agg.h - the aggregated dataset of `imgsink analytics`
 * (analytics.aggregate=hourly).
 *
 * With every events file the sink writes an aggregate file of the same
 * name under {analytics.prefix}events_hourly/dt=YYYY-MM-DD/hour=HH/: one
 * row per (tenant, outcome, error class, source format) of the file's
 * events, with the number of events, source bytes, output bytes (the sum
 * of the renditions), and processing time sum, p50, p95, p99 (nearest
 * rank) and max. No image id, phash, camera or colour: the rows describe
 * no single image, so the files are tagged retention=keep and no lifecycle
 * rule expires them, while the events files go after their retention.
 *
 * Counts, bytes and sums add up across files and hours; the quantiles are
 * those of one file's events (a file is one partition's events of one
 * hour, or less when analytics.max.file.bytes or max.delay.ms closed it).
 *
 * Thread: the sink's one thread. No state.
 */
#ifndef IS_ANALYTICS_AGG_H
#define IS_ANALYTICS_AGG_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

/* Tagging of the aggregate files. */
#define IS_ANALYTICS_AGG_TAGGING "retention=keep&source=analytics-aggregate"

/* The ImageEventAggregate schema (Avro JSON). */
const char *is_analytics_agg_schema_json(void);

/* The aggregate file of one events file as an Avro object container file
 * (deflate) in *out (malloc'd, the caller frees). events: the file's
 * plain-encoded ImageEvents back to back, sizes[i] bytes each, read with
 * event_iface (the bundled ImageEvent schema). hour_ms: start of the event
 * hour; topic, partition, first: the events file's name. Rows are sorted
 * by their key, so the same events give the same rows. 0, or -1 with
 * errstr. */
int is_analytics_agg_encode(avro_value_iface_t *event_iface, const char *events,
                            const size_t *sizes, size_t n, int64_t hour_ms, const char *topic,
                            int32_t partition, int64_t first, char **out, size_t *out_len,
                            char *errstr, size_t errstr_size);

#endif
