-- imgsink analytics on AWS: the Glue/Athena table over the events files
-- written by `imgsink analytics`, with partition projection (no crawler, no
-- MSCK REPAIR), and the views the business asks for. Replace BUCKET and the
-- prefix (analytics.prefix, default analytics/) before running; Athena runs
-- one statement at a time.
--
-- Types: the files declare schemas/image_event.avsc; avro.schema.literal
-- below is that file. A later schema version that adds an optional field
-- (with a default) is read by updating the literal and the column list:
-- the Avro SerDe resolves older files against it, the new column NULL there.
-- Timestamps are timestamp-millis longs: the views convert them.

CREATE DATABASE IF NOT EXISTS imgsink_analytics;

CREATE EXTERNAL TABLE IF NOT EXISTS imgsink_analytics.events (
  id string,
  tenant string,
  source string,
  outcome string,
  error_class string,
  error_message string,
  uploaded_at bigint,
  processed_at bigint,
  processing_ms double,
  source_format string,
  source_bytes bigint,
  width int,
  height int,
  orientation int,
  frames int,
  camera_make string,
  camera_model string,
  phash bigint,
  mean_color string,
  renditions array<struct<name:string,format:string,width:int,height:int,bytes:bigint>>,
  kafka_topic string,
  kafka_partition int,
  kafka_offset bigint,
  worker_version string
)
PARTITIONED BY (dt string, hour string)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.avro.AvroSerDe'
STORED AS
  INPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat'
  OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat'
LOCATION 's3://BUCKET/analytics/events/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://BUCKET/analytics/events/dt=${dt}/hour=${hour}/',
  'avro.schema.literal' = '{"type":"record","name":"ImageEvent","namespace":"io.imgsink","doc":"One record finished by the worker: written to the store or dead-lettered. Never carries a location.","fields":[{"name":"id","type":["null","string"],"default":null,"doc":"Image id (also the Kafka key); null when the envelope could not be decoded."},{"name":"tenant","type":["null","string"],"default":null},{"name":"source","type":["null","string"],"default":null,"doc":"stream or api."},{"name":"outcome","type":{"type":"enum","name":"Outcome","symbols":["written","dead_lettered"]}},{"name":"error_class","type":["null","string"],"default":null,"doc":"envelope, record, image, claim-check or store; null when written."},{"name":"error_message","type":["null","string"],"default":null},{"name":"uploaded_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},{"name":"processed_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the worker finished the record: the event time of the analytics files."},{"name":"processing_ms","type":"double","doc":"From dispatch to the record''s last write (or dead letter)."},{"name":"source_format","type":["null","string"],"default":null},{"name":"source_bytes","type":["null","long"],"default":null},{"name":"width","type":["null","int"],"default":null},{"name":"height","type":["null","int"],"default":null},{"name":"orientation","type":["null","int"],"default":null},{"name":"frames","type":["null","int"],"default":null},{"name":"camera_make","type":["null","string"],"default":null},{"name":"camera_model","type":["null","string"],"default":null},{"name":"phash","type":["null","long"],"default":null,"doc":"64-bit perceptual hash (dHash) as a signed long: compare with bit_count(a XOR b)."},{"name":"mean_color","type":["null","string"],"default":null,"doc":"#rrggbb"},{"name":"renditions","type":{"type":"array","items":{"type":"record","name":"RenditionEvent","fields":[{"name":"name","type":"string"},{"name":"format","type":"string"},{"name":"width","type":"int"},{"name":"height","type":"int"},{"name":"bytes","type":"long"}]}},"default":[]},{"name":"kafka_topic","type":"string"},{"name":"kafka_partition","type":"int"},{"name":"kafka_offset","type":"long"},{"name":"worker_version","type":"string"}]}'
);

-- One row per source record: a record processed again (a worker killed
-- before its offset was committed, a replay) has more than one event; the
-- last one counts. Query with a dt filter: partition projection then reads
-- only those days.
CREATE OR REPLACE VIEW imgsink_analytics.events_dedup AS
SELECT * FROM (
  SELECT e.*,
         from_unixtime(processed_at / 1000e0) AS processed_ts,
         row_number() OVER (PARTITION BY kafka_topic, kafka_partition, kafka_offset
                            ORDER BY processed_at DESC) AS rn
  FROM imgsink_analytics.events e)
WHERE rn = 1;

CREATE OR REPLACE VIEW imgsink_analytics.images_per_tenant_hour AS
SELECT dt, date_trunc('hour', processed_ts) AS hour, coalesce(tenant, '(unknown)') AS tenant,
       count(*) AS records,
       count_if(outcome = 'written') AS written,
       count_if(outcome = 'dead_lettered') AS dead_lettered
FROM imgsink_analytics.events_dedup GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW imgsink_analytics.images_per_tenant_day AS
SELECT dt, coalesce(tenant, '(unknown)') AS tenant, count(*) AS records,
       count_if(outcome = 'written') AS written,
       count_if(outcome = 'dead_lettered') AS dead_lettered
FROM imgsink_analytics.events_dedup GROUP BY 1, 2;

CREATE OR REPLACE VIEW imgsink_analytics.failure_rate_by_class AS
SELECT dt, coalesce(error_class, '(written)') AS error_class, count(*) AS records,
       round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY dt), 2) AS percent
FROM imgsink_analytics.events_dedup GROUP BY 1, 2;

CREATE OR REPLACE VIEW imgsink_analytics.latency_percentiles AS
SELECT dt, date_trunc('hour', processed_ts) AS hour, count(*) AS records,
       approx_percentile(processing_ms, 0.50) AS p50_ms,
       approx_percentile(processing_ms, 0.90) AS p90_ms,
       approx_percentile(processing_ms, 0.99) AS p99_ms,
       max(processing_ms) AS max_ms
FROM imgsink_analytics.events_dedup WHERE outcome = 'written' GROUP BY 1, 2;

CREATE OR REPLACE VIEW imgsink_analytics.bytes_per_rendition AS
SELECT e.dt, r.name AS rendition, r.format AS format, count(*) AS images,
       sum(e.source_bytes) AS bytes_in, sum(r.bytes) AS bytes_out,
       round(CAST(sum(r.bytes) AS double) / sum(e.source_bytes), 4) AS ratio
FROM imgsink_analytics.events_dedup e CROSS JOIN UNNEST(e.renditions) AS t(r)
WHERE e.outcome = 'written' GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW imgsink_analytics.top_cameras AS
SELECT dt, coalesce(camera_make, '(none)') AS camera_make,
       coalesce(camera_model, '(none)') AS camera_model, count(*) AS images
FROM imgsink_analytics.events_dedup WHERE outcome = 'written' GROUP BY 1, 2, 3;

-- Pairs of written images of one tenant and day whose perceptual hashes
-- differ in at most 6 of 64 bits.
CREATE OR REPLACE VIEW imgsink_analytics.near_duplicates AS
SELECT a.dt, a.tenant, a.id AS id_a, b.id AS id_b,
       bit_count(bitwise_xor(a.phash, b.phash), 64) AS distance
FROM imgsink_analytics.events_dedup a
JOIN imgsink_analytics.events_dedup b
  ON a.dt = b.dt AND a.tenant = b.tenant AND a.id < b.id
WHERE a.outcome = 'written' AND b.outcome = 'written'
  AND bit_count(bitwise_xor(a.phash, b.phash), 64) <= 6;

-- Days compacted by `imgsink analytics rollup`: one file per day under
-- events_daily/dt=YYYY-MM-DD/. A day is in events_daily once rolled up
-- and in events before: query a day from one table or the other, never
-- both (the rollup deletes the hourly files after the daily file is
-- written; between the two a day is in both).
-- The columns and avro.schema.literal repeat those of events on purpose:
-- Athena's DDL has no shared form for them. It does not run Hive's CREATE
-- TABLE ... LIKE (on Athena's list of unsupported DDL), has no variables
-- or includes, and runs one statement at a time; a view cannot stand in
-- for a table with a LOCATION and partition projection of its own, and
-- one table cannot project both layouts (dt=/hour=/ and dt=/). Change
-- both tables together, with schemas/image_event.avsc.
CREATE EXTERNAL TABLE IF NOT EXISTS imgsink_analytics.events_daily (
  id string,
  tenant string,
  source string,
  outcome string,
  error_class string,
  error_message string,
  uploaded_at bigint,
  processed_at bigint,
  processing_ms double,
  source_format string,
  source_bytes bigint,
  width int,
  height int,
  orientation int,
  frames int,
  camera_make string,
  camera_model string,
  phash bigint,
  mean_color string,
  renditions array<struct<name:string,format:string,width:int,height:int,bytes:bigint>>,
  kafka_topic string,
  kafka_partition int,
  kafka_offset bigint,
  worker_version string
)
PARTITIONED BY (dt string)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.avro.AvroSerDe'
STORED AS
  INPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat'
  OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat'
LOCATION 's3://BUCKET/analytics/events_daily/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://BUCKET/analytics/events_daily/dt=${dt}/',
  'avro.schema.literal' = '{"type":"record","name":"ImageEvent","namespace":"io.imgsink","doc":"One record finished by the worker: written to the store or dead-lettered. Never carries a location.","fields":[{"name":"id","type":["null","string"],"default":null,"doc":"Image id (also the Kafka key); null when the envelope could not be decoded."},{"name":"tenant","type":["null","string"],"default":null},{"name":"source","type":["null","string"],"default":null,"doc":"stream or api."},{"name":"outcome","type":{"type":"enum","name":"Outcome","symbols":["written","dead_lettered"]}},{"name":"error_class","type":["null","string"],"default":null,"doc":"envelope, record, image, claim-check or store; null when written."},{"name":"error_message","type":["null","string"],"default":null},{"name":"uploaded_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},{"name":"processed_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the worker finished the record: the event time of the analytics files."},{"name":"processing_ms","type":"double","doc":"From dispatch to the record''s last write (or dead letter)."},{"name":"source_format","type":["null","string"],"default":null},{"name":"source_bytes","type":["null","long"],"default":null},{"name":"width","type":["null","int"],"default":null},{"name":"height","type":["null","int"],"default":null},{"name":"orientation","type":["null","int"],"default":null},{"name":"frames","type":["null","int"],"default":null},{"name":"camera_make","type":["null","string"],"default":null},{"name":"camera_model","type":["null","string"],"default":null},{"name":"phash","type":["null","long"],"default":null,"doc":"64-bit perceptual hash (dHash) as a signed long: compare with bit_count(a XOR b)."},{"name":"mean_color","type":["null","string"],"default":null,"doc":"#rrggbb"},{"name":"renditions","type":{"type":"array","items":{"type":"record","name":"RenditionEvent","fields":[{"name":"name","type":"string"},{"name":"format","type":"string"},{"name":"width","type":"int"},{"name":"height","type":"int"},{"name":"bytes","type":"long"}]}},"default":[]},{"name":"kafka_topic","type":"string"},{"name":"kafka_partition","type":"int"},{"name":"kafka_offset","type":"long"},{"name":"worker_version","type":"string"}]}'
);

-- The kept aggregates (analytics.aggregate=hourly): no image id, phash or
-- camera; tagged retention=keep, so no lifecycle rule expires them.
CREATE EXTERNAL TABLE IF NOT EXISTS imgsink_analytics.events_hourly (
  hour bigint,
  tenant string,
  outcome string,
  error_class string,
  source_format string,
  events bigint,
  source_bytes bigint,
  output_bytes bigint,
  processing_ms_sum double,
  processing_ms_p50 double,
  processing_ms_p95 double,
  processing_ms_p99 double,
  processing_ms_max double,
  events_topic string,
  events_partition int,
  events_first_offset bigint
)
PARTITIONED BY (dt string, hr string)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.avro.AvroSerDe'
STORED AS
  INPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat'
  OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat'
LOCATION 's3://BUCKET/analytics/events_hourly/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-01-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hr.type' = 'integer',
  'projection.hr.range' = '0,23',
  'projection.hr.digits' = '2',
  'storage.location.template' = 's3://BUCKET/analytics/events_hourly/dt=${dt}/hour=${hr}/'
);

-- Volume, failures and latency per tenant and day from the aggregates,
-- for as long as they are kept.
CREATE OR REPLACE VIEW imgsink_analytics.kept_per_tenant_day AS
SELECT dt, coalesce(tenant, '(unknown)') AS tenant, outcome,
       sum(events) AS events, sum(source_bytes) AS bytes_in, sum(output_bytes) AS bytes_out,
       sum(processing_ms_sum) / sum(events) AS mean_ms, max(processing_ms_max) AS max_ms
FROM imgsink_analytics.events_hourly GROUP BY 1, 2, 3;

-- Athena workgroup (console or CLI), e.g.:
--   aws athena create-work-group --name imgsink-analytics \
--     --configuration 'ResultConfiguration={OutputLocation=s3://BUCKET/athena-results/},EnforceWorkGroupConfiguration=true'
