-- imgsink analytics: views for DuckDB over the events files in MinIO or S3.
--
-- Before running this file (scripts/analytics.py does all of it):
--   LOAD the avro and httpfs extensions (the duckdb-extension-* packages
--   ship the .duckdb_extension files: LOAD '/path/to/avro.duckdb_extension');
--   CREATE SECRET (TYPE s3, KEY_ID '...', SECRET '...', ENDPOINT 'host:port',
--                  URL_STYLE 'path', USE_SSL false, REGION 'us-east-1');  -- MinIO
--   SET VARIABLE events_glob = 's3://BUCKET/analytics/events/*/*/*.avro';
--   (one day: 's3://BUCKET/analytics/events/dt=2026-01-01/*/*.avro')
--
-- Times: uploaded_at and processed_at are timestamp-millis, read as
-- TIMESTAMPs (UTC).
-- Schema versions: DuckDB's read_avro maps the columns of every file by
-- name onto the first file's schema (it has no union_by_name yet): files
-- of an older or newer version read together, and a column added later is
-- seen when a file that has it is listed first.

-- Every row of every file, with the Hive partition columns dt and hour.
CREATE OR REPLACE VIEW events_raw AS
SELECT *
FROM read_avro(getvariable('events_glob'), hive_partitioning = true, filename = true);

-- One row per source record: a record processed again (a worker killed
-- before its offset was committed, a replay) has more than one event; the
-- last one counts.
CREATE OR REPLACE VIEW events AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY kafka_topic, kafka_partition, kafka_offset
                                 ORDER BY processed_at DESC, filename DESC) AS rn
    FROM events_raw)
WHERE rn = 1;

CREATE OR REPLACE VIEW images_per_tenant_hour AS
SELECT date_trunc('hour', processed_at) AS hour, coalesce(tenant, '(unknown)') AS tenant,
       count(*) AS records,
       count(*) FILTER (WHERE outcome = 'written') AS written,
       count(*) FILTER (WHERE outcome = 'dead_lettered') AS dead_lettered
FROM events GROUP BY ALL ORDER BY hour, tenant;

CREATE OR REPLACE VIEW images_per_tenant_day AS
SELECT CAST(processed_at AS DATE) AS day, coalesce(tenant, '(unknown)') AS tenant,
       count(*) AS records,
       count(*) FILTER (WHERE outcome = 'written') AS written,
       count(*) FILTER (WHERE outcome = 'dead_lettered') AS dead_lettered
FROM events GROUP BY ALL ORDER BY day, tenant;

CREATE OR REPLACE VIEW failure_rate_by_class AS
SELECT coalesce(error_class, '(written)') AS error_class, count(*) AS records,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS percent
FROM events GROUP BY ALL ORDER BY records DESC;

CREATE OR REPLACE VIEW latency_percentiles AS
SELECT date_trunc('hour', processed_at) AS hour, count(*) AS records,
       round(quantile_cont(processing_ms, 0.50), 1) AS p50_ms,
       round(quantile_cont(processing_ms, 0.90), 1) AS p90_ms,
       round(quantile_cont(processing_ms, 0.99), 1) AS p99_ms,
       round(max(processing_ms), 1) AS max_ms
FROM events WHERE outcome = 'written' GROUP BY ALL ORDER BY hour;

CREATE OR REPLACE VIEW bytes_per_rendition AS
SELECT r.name AS rendition, r.format AS format, count(*) AS images,
       sum(e.source_bytes) AS bytes_in, sum(r.bytes) AS bytes_out,
       round(sum(r.bytes) / sum(e.source_bytes), 4) AS ratio
FROM events e, unnest(e.renditions) AS u(r)
WHERE e.outcome = 'written'
GROUP BY ALL ORDER BY rendition;

CREATE OR REPLACE VIEW top_cameras AS
SELECT coalesce(camera_make, '(none)') AS camera_make,
       coalesce(camera_model, '(none)') AS camera_model, count(*) AS images
FROM events WHERE outcome = 'written'
GROUP BY ALL ORDER BY images DESC, camera_make, camera_model LIMIT 20;

-- Pairs of written images whose perceptual hashes differ in at most 6 of
-- 64 bits: the same picture re-encoded, resized or lightly edited.
CREATE OR REPLACE VIEW near_duplicates AS
SELECT a.tenant, a.id AS id_a, b.id AS id_b,
       bit_count(xor(a.phash, b.phash)) AS distance
FROM events a JOIN events b
  ON a.tenant = b.tenant AND a.id < b.id
 AND bit_count(xor(a.phash, b.phash)) <= 6
WHERE a.outcome = 'written' AND b.outcome = 'written'
ORDER BY distance, a.tenant, id_a, id_b;

-- The kept aggregates (analytics.aggregate=hourly), when there are any:
--   CREATE VIEW kept AS SELECT * FROM read_avro(
--     's3://BUCKET/analytics/events_hourly/*/*/*.avro', hive_partitioning = true);
--   SELECT tenant, outcome, sum(events), sum(source_bytes), sum(output_bytes),
--          sum(processing_ms_sum) / sum(events) AS mean_ms
--   FROM kept GROUP BY ALL ORDER BY ALL;
-- Days compacted by `imgsink analytics rollup` are in
-- 's3://BUCKET/analytics/events_daily/dt=*/*.avro': scripts/analytics.py
-- reads a day from there when it has a daily file, and from the hourly
-- files otherwise, so no row counts twice.
