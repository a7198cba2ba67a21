/*
 * analytics_rollup.h - `imgsink analytics rollup --date YYYY-MM-DD`: a
 * day's hourly events files compacted into one file.
 *
 * Reads every file under {analytics.prefix}events/dt=DATE/ and writes
 * their rows, in key order, to
 *   {analytics.prefix}events_daily/dt=DATE/DATE.avro
 * (deflate, the bundled ImageEvent schema, tagged like the events files).
 * Only after that PUT succeeded are the hourly files deleted.
 *
 * Idempotent and safe to rerun after a crash at any point: the daily file
 * names the hourly files it holds in its header (metadata entry
 * imgsink.sources, one key per line). A rerun keeps the rows of the daily
 * file, adds those of hourly files it does not name (late events of that
 * day), writes the daily file again under the same name, and deletes every
 * hourly file it names. No row is ever written twice.
 *
 * Readers: a query over events/ and events_daily/ together would count a
 * day twice between the PUT and the deletes; the views in
 * deploy/analytics/ read a day from events_daily/ when it has a daily file
 * and from events/ otherwise. Hourly files that arrive for a day already
 * rolled up are not in the views until the rollup runs again: run it once
 * the day is closed (after midnight UTC plus analytics.max.delay.ms).
 *
 * A file written in another schema version (a field added) is refused:
 * nothing is written or deleted, and the error names the file.
 *
 * Memory: the day's rows, compressed, are held twice (daily file read and
 * written); one hourly file at a time besides.
 */
#ifndef IS_ANALYTICS_ROLLUP_H
#define IS_ANALYTICS_ROLLUP_H

#include <avro.h>

#include "config.h"
#include "s3.h"

/* Rolls up date with s3 (the configured bucket). schema/iface: the
 * bundled ImageEvent schema and its value class; tagging: the events
 * files' tagging. Prints one summary line on stdout. Returns the exit
 * code: 0 done (or nothing to do), 1 failed (the reason logged; a rerun
 * goes on from where it stopped), 2 a bad date. */
int is_analytics_rollup(const is_config_t *cfg, is_s3_t *s3, avro_schema_t schema,
                        avro_value_iface_t *iface, const char *tagging, const char *date);

#endif
