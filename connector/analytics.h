/*
 * analytics.h - `imgsink analytics`: the events topic as Avro files in the
 * store, for SQL engines (Athena, Trino, Redshift Spectrum, DuckDB).
 *
 * A consumer-group member (analytics.group.id) reads events.topic and keeps
 * one open file per assigned partition: the encoded ImageEvents, in offset
 * order. A file is written (an Avro object container file, avro-c, deflate)
 * to
 *   {analytics.prefix}events/dt=YYYY-MM-DD/hour=HH/{topic}+{partition}+{first offset}.avro
 * when the next event belongs to another hour (event time: processed_at,
 * UTC), when it would pass analytics.max.file.bytes, when it has been open
 * for analytics.max.delay.ms, and at shutdown. Only after the PUT is the
 * partition's offset (last offset + 1) committed.
 *
 * Exactly-once files: a sink killed after a PUT and before its commit
 * starts again from the file's first offset, so its next file has the same
 * name and replaces the one written before with the same rows and perhaps
 * more, never fewer than its own (rows it lacks are in the next file, whose
 * first offset no earlier file used). No row is ever in two files.
 *
 * Events that do not decode as ImageEvents (written by something else) are
 * logged, counted and skipped. Memory: at most analytics.max.file.bytes of
 * encoded events per assigned partition, plus one file being written.
 * Every file is tagged retention=Nd&source=analytics
 * (analytics.retention.days, one of retention.classes) in the same PUT.
 */
#ifndef IS_ANALYTICS_H
#define IS_ANALYTICS_H

#include <stdint.h>

#include "config.h"

/* The object key of the file starting at offset of topic/partition with its
 * first event at event_ms. Returns 0, or -1 if it does not fit. */
int is_analytics_key(const char *prefix, const char *topic, int32_t partition, int64_t offset,
                     int64_t event_ms, char *out, size_t out_size);

/* `imgsink analytics [run]`. Returns the process exit code. */
int is_analytics_main(is_config_t *cfg, int argc, char **argv);

#endif
