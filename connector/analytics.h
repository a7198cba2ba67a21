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
 * With analytics.aggregate=hourly, an aggregate of each file's events is
 * written next to it before the commit (analytics_agg.h), tagged to be
 * kept.
 *
 * Events are plain Avro binary or registry-framed (byte 0, 4-byte schema
 * id, Avro binary: events.h); a framed event's writer schema comes from
 * schema.registry.url by id (cached) and is resolved against the bundled
 * one, so every file holds one schema. An id the registry does not know,
 * or a schema that does not resolve, is skipped with the reason like any
 * event that does not decode; a registry that does not answer is retried
 * (the partition waits).
 *
 * The sink signs with the credentials chain (creds.h) and serves
 * /metrics, /healthz and /readyz on http.listen as the worker does.
 */
#ifndef IS_ANALYTICS_H
#define IS_ANALYTICS_H

#include <stdint.h>

#include "config.h"

/* The object key of the file starting at offset of topic/partition with its
 * first event at event_ms. Returns 0, or -1 if it does not fit. */
int is_analytics_key(const char *prefix, const char *topic, int32_t partition, int64_t offset,
                     int64_t event_ms, char *out, size_t out_size);

/* The same under {prefix}{table}/ instead of {prefix}events/ (the
 * aggregates: table events_hourly). */
int is_analytics_table_key(const char *prefix, const char *table, const char *topic,
                           int32_t partition, int64_t offset, int64_t event_ms, char *out,
                           size_t out_size);

/* Replaces the avro.schema of the Avro object container file in *file
 * (malloc'd, replaced) with schema_json: avro-c drops logicalType and doc
 * when it parses a schema, and SQL engines should see them. 0, or -1 on a
 * header this code does not understand. */
int is_analytics_ocf_schema(char **file, size_t *len, const char *schema_json);

/* The same, and one metadata entry more (meta_key NULL: none). */
int is_analytics_ocf_header(char **file, size_t *len, const char *schema_json, const char *meta_key,
                            const char *meta_value);

/* The value of metadata entry name of an Avro object container file, in
 * *value (malloc'd, NUL-terminated; NULL when absent). 0, or -1 on a
 * header this code does not understand. */
int is_analytics_ocf_meta(const char *file, size_t len, const char *name, char **value);

/* `imgsink analytics [run]`. Returns the process exit code. */
int is_analytics_main(is_config_t *cfg, int argc, char **argv);

#endif
