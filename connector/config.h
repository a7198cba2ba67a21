/*
 * config.h - imgsink configuration: one table of keys.
 *
 * Sources, later wins: built-in defaults < the key=value file (-c FILE) <
 * IMGSINK_* environment variables (IMGSINK_S3_SECRET_KEY sets s3.secret.key:
 * upper case, dots become underscores; IMGSINK_CONFIG, IMGSINK_STACK_DIR and
 * IMGSINK_CACHE are not keys and are skipped) < command-line -X key=value.
 * An IMGSINK_* variable that names no key (the kubelet's IMGSINK_SERVICE_HOST,
 * IMGSINK_PORT_9464_TCP... of a Service named imgsink) is skipped with one
 * warning naming the variables, never their values; the file stays strict.
 *
 * Every key is declared once in the table in config.c (name, type, default,
 * bounds, description); that table drives parsing, validation, `imgsink help
 * config` and the README's configuration reference. Keys starting with
 * "kafka." are passed to librdkafka without the prefix and validated by it.
 * Unknown keys (in the file and -X) and bad values stop start-up with the key, the value and what
 * was expected.
 */
#ifndef IS_CONFIG_H
#define IS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IS_MAX_RENDITIONS 8

typedef enum { IS_FIT_INSIDE = 0, IS_FIT_COVER, IS_FIT_ATTENTION } is_fit_t;

typedef struct is_rendition {
    char name[32];
    int width, height;
    char format[8]; /* jpeg | webp | avif | png */
    int quality;
    is_fit_t fit;
    /* Options after FIT in the spec (processors/pipeline.c reads them). */
    int effort;   /* webp 0..6, avif 0..9; -1 = the encoder's default */
    int animated; /* 1: all frames of an animated source (webp output only) */
    int keep_icc; /* 1: keep the ICC profile; every other metadata field is dropped */
} is_rendition_t;

/* kafka.* pass-through properties, in the order they were set. */
typedef struct is_kv {
    char *key, *value;
} is_kv_t;

typedef struct is_config {
    /* input */
    char *input_topics; /* comma-separated */
    char *input_format; /* auto | avro | confluent */
    int64_t input_max_record_bytes;
    /* dead-letter topic */
    char *dlq_topic;
    /* object store */
    char *s3_endpoint, *s3_region, *s3_bucket, *s3_prefix;
    char *s3_access_key, *s3_secret_key, *s3_session_token;
    int s3_path_style;
    int64_t s3_connect_timeout_ms, s3_timeout_ms;
    char *s3_sse, *s3_sse_kms_key_id;
    int s3_if_none_match;
    char *s3_tls_ca_file; /* "": the system's CAs */
    int s3_tls_verify;
    /* limits and pipeline */
    int64_t limits_max_input_bytes, limits_max_pixels;
    char *limits_formats;
    char *limits_fail_on;
    char *renditions_spec;
    is_rendition_t renditions[IS_MAX_RENDITIONS];
    int nrenditions;
    int64_t vips_concurrency;
    int64_t limits_max_frames, limits_timeout_ms;
    char *processors_spec; /* "name[@stage],..." (processors/chain.c) */
    is_kv_t *processor_kv; /* processor.* keys without the prefix, in the order set */
    size_t nprocessor_kv;
    /* delivery */
    int64_t worker_threads, worker_max_inflight, worker_max_inflight_pixels;
    int64_t worker_max_inflight_bytes;
    int64_t retry_backoff_initial_ms, retry_backoff_max_ms;
    int64_t retry_budget_percent, retry_budget_min_per_second;
    int64_t worker_stuck_timeout_ms, worker_stuck_max_threads;
    int64_t shutdown_timeout_ms, rebalance_drain_timeout_ms;
    /* logging */
    char *log_level;
    /* HTTP endpoints: /metrics, /healthz, /readyz (connector/http.c) */
    char *http_listen; /* "" disables */
    int64_t http_health_stall_ms;
    /* trust boundaries of the record: claim-check reads, retention classes */
    char *claimcheck_allowed; /* BUCKET/PREFIX,... with {tenant} (connector/claimcheck.h) */
    char *retention_classes;  /* days, comma-separated (keys.h) */
    /* `imgsink api`: the upload service (connector/api.c) */
    char *api_listen, *api_keys_file, *api_raw_prefix, *api_raw_bucket, *api_public_endpoint,
        *api_id_key;
    int64_t api_upload_expires_s, api_download_expires_s, api_max_body_bytes;
    int64_t api_max_direct_bytes, api_rate_per_second, api_rate_burst;
    /* events topic and the analytics sink (events.h, analytics.h) */
    char *events_topic; /* "" disables */
    char *analytics_group_id, *analytics_prefix;
    int64_t analytics_max_delay_ms, analytics_max_file_bytes, analytics_retention_days;
    char *analytics_aggregate; /* none | hourly */
    /* Schema Registry (connector/registry.h); "" url: none */
    char *schema_registry_url;
    char *schema_registry_userinfo; /* USER:PASSWORD, secret */
    char *schema_registry_ca;
    int64_t schema_registry_timeout_ms;
    /* kafka.* */
    is_kv_t *kafka;
    size_t nkafka;
    /* credentials chain (creds.h) */
    int64_t s3_credentials_refresh_margin_ms, s3_credentials_timeout_ms;
    int64_t s3_credentials_unhealthy_restart_ms;
} is_config_t;

is_config_t *is_config_new(void); /* all defaults */
void is_config_destroy(is_config_t *cfg);

/* Sets one key. Returns 0, or -1 with "key: value: expected ..." in errstr. */
int is_config_set(is_config_t *cfg, const char *key, const char *value, char *errstr,
                  size_t errstr_size);

/* Reads a key=value file ('#' comments, blank lines, whitespace around '='
 * trimmed). Errors name the file and line. */
int is_config_load_file(is_config_t *cfg, const char *path, char *errstr, size_t errstr_size);

/* Applies IMGSINK_* variables from environ. Variables that name no key are
 * skipped and logged in one warning (names only); a key with a bad value
 * returns -1 with errstr naming the variable. */
int is_config_load_env(is_config_t *cfg, char *errstr, size_t errstr_size);

/* Cross-key checks after all sources are applied (required keys set, etc). */
int is_config_validate(const is_config_t *cfg, char *errstr, size_t errstr_size);

/* Looks up a kafka.* pass-through value (without the prefix), or NULL. */
const char *is_config_kafka_get(const is_config_t *cfg, const char *key);

/* Writes the key reference: plain text for --help, markdown for the README. */
void is_config_print_help(FILE *fp, int markdown);

/* The values of the secrets that are set (s3.secret.key, s3.session.token,
 * kafka.* and processor.* properties named like a password, secret, token
 * or private key), for the log's redaction list (log.h). Writes at most max
 * pointers into cfg to out; returns how many. */
size_t is_config_secrets(const is_config_t *cfg, const char **out, size_t max);

/* Writes the effective configuration as key=value, secrets masked. */
void is_config_dump(const is_config_t *cfg, FILE *fp);

/* Parses a rendition list "name=WxH/format/quality[/fit],...". */
int is_config_parse_renditions(const char *spec, is_rendition_t *out, int *nout, char *errstr,
                               size_t errstr_size);

/* Parses a size such as "16MiB", "512k", "1048576". Returns -1 if invalid. */
int is_config_parse_size(const char *s, int64_t *out);

#endif
