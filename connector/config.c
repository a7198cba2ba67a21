/*
 * config.c - the configuration table and its parsers. See config.h.
 */
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "claimcheck.h"
#include "keys.h"
#include "registry.h"

#include <unistd.h>

extern char **environ;

typedef enum { T_STR, T_INT, T_SIZE, T_BOOL, T_ENUM, T_LIST, T_RENDITIONS } is_ctype_t;

#define F_SECRET   0x1 /* masked in dumps and logs */
#define F_REQUIRED 0x2

typedef struct is_ckey {
    const char *name;
    is_ctype_t type;
    size_t off;
    const char *def;
    int64_t min, max;
    const char *choices; /* T_ENUM: allowed values; T_LIST: allowed items */
    int flags;
    const char *desc;
} is_ckey_t;

#define O(f) offsetof(is_config_t, f)

/* Standard rendition set: also the benchmark's (bench/). */
#define DEFAULT_RENDITIONS "large=2048x2048/webp/80,medium=512x512/jpeg/82,thumb=128x128/jpeg/80"

static const is_ckey_t keys[] = {
    {"input.topics", T_STR, O(input_topics), "images", 0, 0, NULL, F_REQUIRED,
     "Comma-separated Kafka topics to consume image records from."},
    {"input.format", T_ENUM, O(input_format), "auto", 0, 0, "auto,avro,confluent,s3-event", 0,
     "Record envelope: 'confluent' (magic byte 0 + 4-byte schema id + Avro), 'avro' (plain Avro "
     "binary, bundled schema) or 'auto' (a 0x00 first byte is tried as confluent, then as plain "
     "Avro with an empty id, and the reason names the real problem; else plain Avro). "
     "'s3-event': S3 bucket notifications (AWS S3 event JSON, as MinIO publishes it) of "
     "uploads under api.raw.prefix; 'auto' also takes a record starting with '{' as one."},
    {"input.max.record.bytes", T_SIZE, O(input_max_record_bytes), "64MiB", 64, INT64_C(1) << 31,
     NULL, 0, "Records larger than this go to the DLQ without being decoded."},
    {"dlq.topic", T_STR, O(dlq_topic), "images.dlq", 0, 0, NULL, F_REQUIRED,
     "Dead-letter topic: records that can never succeed, with reason headers."},
    {"s3.endpoint", T_STR, O(s3_endpoint), "", 0, 0, NULL, 0,
     "Object store URL, e.g. http://127.0.0.1:9000. Empty means AWS S3 in s3.region."},
    {"s3.region", T_STR, O(s3_region), "us-east-1", 0, 0, NULL, 0, "Region used for signing."},
    {"s3.bucket", T_STR, O(s3_bucket), "", 0, 0, NULL, F_REQUIRED, "Bucket the outputs go to."},
    {"s3.prefix", T_STR, O(s3_prefix), "processed/", 0, 0, NULL, 0,
     "Key prefix: keys are {prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}/{rendition}.{ext}."},
    {"s3.access.key", T_STR, O(s3_access_key), "", 0, 0, NULL, 0, "Access key id."},
    {"s3.secret.key", T_STR, O(s3_secret_key), "", 0, 0, NULL, F_SECRET, "Secret access key."},
    {"s3.session.token", T_STR, O(s3_session_token), "", 0, 0, NULL, F_SECRET,
     "Session token for temporary credentials (optional)."},
    {"s3.path.style", T_BOOL, O(s3_path_style), "false", 0, 0, NULL, 0,
     "Path-style addressing (endpoint/bucket/key), needed for MinIO; false means "
     "virtual-host style (bucket.endpoint/key)."},
    {"s3.connect.timeout.ms", T_INT, O(s3_connect_timeout_ms), "5000", 100, 600000, NULL, 0,
     "TCP/TLS connect timeout per request."},
    {"s3.timeout.ms", T_INT, O(s3_timeout_ms), "60000", 1000, 3600000, NULL, 0,
     "Whole-request timeout; a timeout is a transient error and is retried."},
    {"s3.sse", T_ENUM, O(s3_sse), "none", 0, 0, "none,AES256,aws:kms", 0,
     "Server-side encryption of every object the worker writes (renditions, metadata, dead-letter "
     "values): AES256 (SSE-S3) or aws:kms (SSE-KMS). A key the store's KMS does not have stops "
     "the worker (a configuration error, never retried); imgsink check finds it."},
    {"s3.sse.kms.key.id", T_STR, O(s3_sse_kms_key_id), "", 0, 0, NULL, 0,
     "KMS key id when s3.sse=aws:kms (empty: the bucket's default key)."},
    {"s3.if.none.match", T_BOOL, O(s3_if_none_match), "false", 0, 0, NULL, 0,
     "Create-only writes (If-None-Match: *): an existing key answers 412, which counts as "
     "already written. Off by default so a replay overwrites with identical bytes."},
    {"s3.tls.ca.file", T_STR, O(s3_tls_ca_file), "", 0, 0, NULL, 0,
     "PEM file of the CAs that may sign the store's certificate (https endpoints); empty "
     "means the system's CAs. The host name of s3.endpoint must be in the certificate."},
    {"s3.tls.verify", T_BOOL, O(s3_tls_verify), "true", 0, 0, NULL, 0,
     "Verify the store's certificate and host name. false accepts any certificate (anyone on "
     "the path can read and change the objects and credentials): for a test store only, and "
     "the worker and check say so loudly at start-up."},
    {"limits.max.input.bytes", T_SIZE, O(limits_max_input_bytes), "50MiB", 1, INT64_C(1) << 31,
     NULL, 0, "Largest image payload accepted; larger ones go to the DLQ."},
    {"limits.max.pixels", T_INT, O(limits_max_pixels), "100000000", 1, INT64_C(1) << 40, NULL, 0,
     "Largest width x height x pages accepted, checked on the header before decoding."},
    {"limits.formats", T_LIST, O(limits_formats), "jpeg,png,webp,gif,tiff,heif", 0, 0,
     "jpeg,png,webp,gif,tiff,heif", 0,
     "Input formats accepted. Every other libvips loader is blocked at start."},
    {"limits.fail.on", T_ENUM, O(limits_fail_on), "error", 0, 0, "none,truncated,error,warning", 0,
     "How picky decoding is: images that trip this level go to the DLQ."},
    {"renditions", T_RENDITIONS, O(renditions_spec), DEFAULT_RENDITIONS, 0, 0, NULL, 0,
     "Outputs per image: name=WIDTHxHEIGHT/FORMAT/QUALITY[/OPTION...], comma-separated. FORMAT "
     "is jpeg, webp, avif or png. OPTIONs: a fit, inside (default), cover or attention; "
     "effort=N (webp 0..6, avif 0..9); animated (webp: every frame of an animated source, "
     "else the first); icc (keep the ICC profile; all other metadata is always stripped)."},
    {"vips.concurrency", T_INT, O(vips_concurrency), "1", 0, 64, NULL, 0,
     "libvips threads per image; 0 means libvips' default (number of cores). The worker "
     "already runs worker.threads images at once, so 1 is best."},
    {"worker.threads", T_INT, O(worker_threads), "0", 0, 256, NULL, 0,
     "Job threads processing records concurrently, across and within partitions; 0 means the "
     "number of cores."},
    {"worker.max.inflight", T_INT, O(worker_max_inflight), "0", 0, 100000, NULL, 0,
     "Records dispatched but not finished. Each assigned partition gets an equal share "
     "(at least one), a share left unused goes to partitions with records waiting, and "
     "partitions are served in turn; records beyond it wait in librdkafka's per-partition "
     "queue, which stops fetching when full (no pause). 0 means 16 x worker.threads. Deeper "
     "only adds to what a killed worker repeats: records finished behind a slower one of "
     "their partition, which this bounds."},
    {"worker.max.inflight.pixels", T_INT, O(worker_max_inflight_pixels), "400000000", 1,
     INT64_C(1) << 40, NULL, 0,
     "Memory budget in decoded pixels (width x height from the header) across running jobs; "
     "a job waits before decoding when over it, and no record is dispatched meanwhile."},
    {"worker.max.inflight.bytes", T_SIZE, O(worker_max_inflight_bytes), "0", 0, INT64_C(1) << 40,
     NULL, 0,
     "Kafka record bytes dispatched but not finished; a record is dispatched while less is "
     "in flight (one always, when nothing is). 0 means 64MiB or 2 x limits.max.input.bytes, "
     "whichever is larger. Unless set as kafka.*, librdkafka's prefetch is derived from it: "
     "max.partition.fetch.bytes = 1/16 of it (64KiB..1MiB), queued.max.messages.kbytes = "
     "twice that per partition, fetch.max.bytes = 1/4 of it (at least 1MiB and "
     "kafka.message.max.bytes, at most kafka.receive.message.max.bytes - 512)."},
    {"worker.stuck.timeout.ms", T_INT, O(worker_stuck_timeout_ms), "120000", 0, 3600000, NULL, 0,
     "Watchdog: a job making no progress for this long (one PUT, claim-check GET or pipeline "
     "run; a DLQ produce gets 30 s more) is stuck. It is logged and counted, and an S3 request "
     "is interrupted and retried. A thread still stuck after as long again is left behind: its "
     "record goes to a new job thread, to be processed again (a transient failure, never the "
     "DLQ). Must exceed limits.timeout.ms; 0 turns the watchdog off."},
    {"worker.stuck.max.threads", T_INT, O(worker_stuck_max_threads), "0", 0, 256, NULL, 0,
     "Stuck job threads left behind before the worker gives up: it then stops, commits what is "
     "done and exits non-zero so the orchestrator restarts it; the stuck records stay "
     "uncommitted. 0 means worker.threads."},
    {"retry.backoff.initial.ms", T_INT, O(retry_backoff_initial_ms), "200", 1, 600000, NULL, 0,
     "First retry delay for transient errors (store down, throttling)."},
    {"retry.backoff.max.ms", T_INT, O(retry_backoff_max_ms), "30000", 1, 3600000, NULL, 0,
     "Cap of the exponential backoff (full jitter). Transient errors retry forever without "
     "advancing the offset."},
    {"retry.budget.percent", T_INT, O(retry_budget_percent), "20", 0, 10000, NULL, 0,
     "Retry budget, shared by the worker's job threads: retries allowed per 100 first attempts "
     "(PUTs, GETs, pipeline runs, DLQ produces), on top of retry.budget.min.per.second. A "
     "retry over budget waits for it; it is never given up."},
    {"retry.budget.min.per.second", T_INT, O(retry_budget_min_per_second), "10", 1, 100000, NULL, 0,
     "Retries per second the budget always allows, so retries go on while nothing succeeds; "
     "up to ten seconds of it may be saved for a burst."},
    {"shutdown.timeout.ms", T_INT, O(shutdown_timeout_ms), "30000", 0, 3600000, NULL, 0,
     "On SIGTERM/SIGINT: time allowed to finish the records being processed and commit; records "
     "not started yet are left, uncommitted, for the partitions' next owner, and what is not "
     "finished by then stays uncommitted and is processed again later. Also bounds leaving the "
     "group after the final commit (at least 10 s): a consumer close that hangs longer is cut "
     "short by exiting."},
    {"rebalance.drain.timeout.ms", T_INT, O(rebalance_drain_timeout_ms), "20000", 0, 3600000, NULL,
     0,
     "On a partition revoke: time allowed for its records in flight to finish before their "
     "offsets are committed and the partition is released."},
    {"log.level", T_ENUM, O(log_level), "info", 0, 0, "error,warn,info,debug", 0,
     "Lowest level logged (JSON lines on stderr)."},
    {"limits.max.frames", T_INT, O(limits_max_frames), "1000", 1, 100000, NULL, 0,
     "Most frames (pages) an input may declare, checked on the header. Only animated "
     "renditions decode more than the first frame; their pixels count against "
     "limits.max.pixels."},
    {"limits.timeout.ms", T_INT, O(limits_timeout_ms), "30000", 100, 3600000, NULL, 0,
     "Time allowed for one image (decode, processors, renditions). A runaway image is "
     "stopped and goes to the DLQ."},
    {"processors", T_STR, O(processors_spec), "", 0, 0, NULL, 0,
     "The company's own processors, run in order: NAME[@STAGE],... STAGE is source (the "
     "payload bytes, before decoding; exec only), base (default: the decoded upright sRGB "
     "image, before renditions are cut) or rendition (each resized rendition, before "
     "encoding). NAME is configured by processor.NAME.* keys."},
    {"http.listen", T_STR, O(http_listen), "127.0.0.1:9464", 0, 0, NULL, 0,
     "Address of the HTTP endpoints of `imgsink run`: /metrics (Prometheus), /healthz, /readyz. "
     "HOST:PORT, [IPV6]:PORT or :PORT (every interface; in a pod, so the kubelet and "
     "Prometheus reach it); PORT 0 picks a free port (logged). Empty disables them. An address "
     "that cannot be bound stops start-up."},
    {"http.health.stall.ms", T_INT, O(http_health_stall_ms), "30000", 100, 3600000, NULL, 0,
     "/healthz answers 503 once the poll loop has not run for this long (stuck in a call that "
     "does not return): a liveness probe then restarts the worker."},
    {"claimcheck.allowed", T_STR, O(claimcheck_allowed), "", 0, 0, NULL, 0,
     "Objects a record's ObjectRef (claim check) may make the worker read, with its own "
     "credentials: comma-separated BUCKET/PREFIX entries, {tenant} standing for the record's "
     "tenant as a whole segment, e.g. raw/uploads/{tenant}/. End a prefix with '/': raw/up "
     "would match raw/upload/ too. A ref outside every entry, with a key that has an empty, "
     "'.' or '..' segment, a leading '/', a '%' or a backslash, or whose size, sha256 or "
     "version_id does not match the object, goes to the DLQ (class claim-check). Empty: every "
     "claim check is refused."},
    {"retention.classes", T_STR, O(retention_classes), "7", 0, 0, NULL, 0,
     "Retention classes in days a record may ask for (retention_days), comma-separated, each in "
     "1..3650. Objects are tagged retention=Nd; the bucket needs a lifecycle rule per class "
     "(checked by imgsink check and at start-up). A record asking for another value goes to the "
     "DLQ (class record)."},
    {"api.listen", T_STR, O(api_listen), "127.0.0.1:8080", 0, 0, NULL, 0,
     "Address of `imgsink api` (HOST:PORT, [IPV6]:PORT or :PORT; PORT 0 picks a free port, "
     "logged): /v1/uploads, /v1/images, /healthz, /readyz, /metrics."},
    {"api.keys.file", T_STR, O(api_keys_file), "", 0, 0, NULL, 0,
     "Tenant API keys of `imgsink api`: one 'TENANT SHA256HEX' line per key (the hex SHA-256 "
     "of the key a client sends as 'Authorization: Bearer KEY'; '#' comments). Reloaded when "
     "the file changes and on SIGHUP; a file that does not parse keeps the previous keys. "
     "Required by `imgsink api`."},
    {"api.raw.bucket", T_STR, O(api_raw_bucket), "", 0, 0, NULL, 0,
     "Bucket of API uploads; empty: s3.bucket. A bucket of their own (deploy/aws: "
     "PREFIX-raw-ACCOUNT-REGION, with api.raw.prefix=uploads/) keeps raw uploads under their own "
     "lifecycle rule and policy (deploy/*/policies/api.json grants PUT there only); the worker "
     "reads them as claim checks, so claimcheck.allowed must name it."},
    {"api.raw.prefix", T_STR, O(api_raw_prefix), "raw/", 0, 0, NULL, 0,
     "Key prefix of API uploads in api.raw.bucket: {prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}. Give "
     "it a lifecycle rule (uploads never processed must expire) and the bucket notification."},
    {"api.public.endpoint", T_STR, O(api_public_endpoint), "", 0, 0, NULL, 0,
     "Store URL that clients of `imgsink api` reach, signed into presigned URLs (the host is "
     "part of the signature). Empty means s3.endpoint."},
    {"api.id.key", T_STR, O(api_id_key), "", 0, 0, NULL, F_SECRET,
     "Secret of `imgsink api` that tags the image ids it issues (an HMAC of tenant and id), the "
     "same on every replica; empty: s3.secret.key. Required when the store credentials come "
     "from the credentials chain (s3.access.key empty): temporary keys change."},
    {"api.upload.expires.s", T_INT, O(api_upload_expires_s), "1800", 1, 3600, NULL, 0,
     "Validity of a presigned upload URL, in seconds (at most one hour)."},
    {"api.download.expires.s", T_INT, O(api_download_expires_s), "600", 1, 3600, NULL, 0,
     "Validity of the presigned rendition URLs of GET /v1/images/{id}, in seconds."},
    {"api.max.body.bytes", T_SIZE, O(api_max_body_bytes), "16KiB", 256, 1048576, NULL, 0,
     "Largest JSON request body of `imgsink api`; larger requests are refused with 413."},
    {"api.max.direct.bytes", T_SIZE, O(api_max_direct_bytes), "8MiB", 1, INT64_C(1) << 30, NULL, 0,
     "Largest image POST /v1/images accepts in its body (also capped by "
     "limits.max.input.bytes); larger ones get 413 and should use POST /v1/uploads."},
    {"api.rate.per.second", T_INT, O(api_rate_per_second), "20", 1, 1000000, NULL, 0,
     "Requests per second one tenant may make to `imgsink api` (token bucket per replica); "
     "over it, 429 with Retry-After."},
    {"api.rate.burst", T_INT, O(api_rate_burst), "40", 1, 1000000, NULL, 0,
     "Requests a tenant may make at once before api.rate.per.second applies."},
    {"events.topic", T_STR, O(events_topic), "", 0, 0, NULL, 0,
     "Topic of ImageEvents (schemas/image_event.avsc; plain Avro, or the registry wire format "
     "with schema.registry.url, the schema registered under {events.topic}-value): one per "
     "finished record, "
     "written or dead-lettered, keyed by image id; the record's offset is stored only once its "
     "event is acknowledged. Also the topic `imgsink analytics` reads. Empty: no events."},
    {"analytics.group.id", T_STR, O(analytics_group_id), "imgsink-analytics", 0, 0, NULL, 0,
     "Consumer group of `imgsink analytics` (offsets committed only after a file's PUT)."},
    {"analytics.prefix", T_STR, O(analytics_prefix), "analytics/", 0, 0, NULL, 0,
     "Key prefix of the analytics files: {prefix}events/dt=YYYY-MM-DD/hour=HH/"
     "{topic}+{partition}+{first offset}.avro, in s3.bucket."},
    {"analytics.max.delay.ms", T_INT, O(analytics_max_delay_ms), "300000", 1000, 86400000, NULL, 0,
     "A partition's open file is written at the latest this long after its first event "
     "arrived, so a quiet partition still flushes."},
    {"analytics.max.file.bytes", T_SIZE, O(analytics_max_file_bytes), "64MiB", 65536,
     INT64_C(1) << 30, NULL, 0,
     "Encoded events per file before it is written; memory stays under this times the "
     "assigned partitions."},
    {"analytics.retention.days", T_INT, O(analytics_retention_days), "7", 1, 3650, NULL, 0,
     "Retention tag of the analytics files (retention=Nd&source=analytics); must be one of "
     "retention.classes. The rows describe images purged after that many days."},
    {"analytics.aggregate", T_ENUM, O(analytics_aggregate), "none", 0, 0, "none,hourly", 0,
     "'hourly': with each events file, `imgsink analytics` writes "
     "{prefix}events_hourly/dt=YYYY-MM-DD/hour=HH/ (same name): per tenant, outcome, error class "
     "and source format, the events, bytes in and out and latency quantiles, without image ids, "
     "phash or camera; tagged retention=keep&source=analytics-aggregate, which no lifecycle rule "
     "expires. 'none': only the events files."},
    {"s3.credentials.refresh.margin.ms", T_INT, O(s3_credentials_refresh_margin_ms), "300000", 1000,
     3600000, NULL, 0,
     "Temporary credentials (web identity, container endpoint, IMDS) are refreshed this long "
     "before they expire, or at half their remaining lifetime when that is shorter. With "
     "s3.access.key empty, credentials come from the AWS SDKs' chain: AWS_ACCESS_KEY_ID, shared "
     "files and AWS_PROFILE, AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, "
     "AWS_CONTAINER_CREDENTIALS_FULL_URI/_RELATIVE_URI, EC2 IMDSv2 (see Credentials)."},
    {"s3.credentials.timeout.ms", T_INT, O(s3_credentials_timeout_ms), "5000", 100, 600000, NULL, 0,
     "Timeout of each request to STS, the container endpoint or IMDS."},
    {"s3.credentials.unhealthy.restart.ms", T_INT, O(s3_credentials_unhealthy_restart_ms), "600000",
     0, INT64_C(86400000), NULL, 0,
     "Credentials that cannot be refreshed (or that the store refuses) make /readyz answer 503 "
     "at once, with the reason; after this long /healthz fails too, so the orchestrator "
     "restarts the worker. 0: never."},
    {"schema.registry.url", T_STR, O(schema_registry_url), "", 0, 0, NULL, 0,
     "Confluent-compatible Schema Registry API root, e.g. "
     "http://registry:8080/apis/ccompat/v7 (Apicurio) or http://registry:8081 (Confluent). Set: "
     "the writer schema of each Confluent wire-format record is fetched by its id, cached, and "
     "resolved against the bundled ImageRecord schema (a producer may add fields). An id the "
     "registry does not know (404, error_code 40403) goes to the DLQ (class envelope); an "
     "unreachable registry is retried. Empty: Confluent records must use the bundled schema."},
    {"schema.registry.basic.auth.user.info", T_STR, O(schema_registry_userinfo), "", 0, 0, NULL,
     F_SECRET, "USER:PASSWORD for HTTP basic authentication to the Schema Registry (optional)."},
    {"schema.registry.ssl.ca.location", T_STR, O(schema_registry_ca), "", 0, 0, NULL, 0,
     "PEM file of CA certificates that verify an https Schema Registry (default: the system's)."},
    {"schema.registry.timeout.ms", T_INT, O(schema_registry_timeout_ms), "10000", 100, 600000, NULL,
     0, "Timeout of one Schema Registry request; a timed-out lookup is retried."},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const is_ckey_t *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

int is_config_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    int64_t mult = 1;
    if (!strcasecmp(end, "") || !strcasecmp(end, "b"))
        mult = 1;
    else if (!strcasecmp(end, "k") || !strcasecmp(end, "kib") || !strcasecmp(end, "kb"))
        mult = 1024;
    else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib") || !strcasecmp(end, "mb"))
        mult = 1024 * 1024;
    else if (!strcasecmp(end, "g") || !strcasecmp(end, "gib") || !strcasecmp(end, "gb"))
        mult = INT64_C(1024) * 1024 * 1024;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out = (int64_t)v * mult;
    return 0;
}

static int in_list(const char *item, size_t len, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == len && !strncmp(p, item, len))
            return 1;
        p += n + (c ? 1 : 0);
    }
    return 0;
}

int is_config_parse_renditions(const char *spec, is_rendition_t *out, int *nout, char *errstr,
                               size_t errstr_size)
{
    char *copy = strdup(spec), *save = NULL, *tok;
    int n = 0, rc = -1;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        is_rendition_t r = {.fit = IS_FIT_INSIDE};
        char name[32], fmt[8], fit[16] = "inside";
        int consumed = 0;
        while (isspace((unsigned char)*tok))
            tok++;
        if (n == IS_MAX_RENDITIONS) {
            snprintf(errstr, errstr_size, "more than %d renditions", IS_MAX_RENDITIONS);
            goto done;
        }
        int f = sscanf(tok, "%31[a-z0-9_-]=%dx%d/%7[a-z]/%d%n", name, &r.width, &r.height, fmt,
                       &r.quality, &consumed);
        if (f != 5) {
            snprintf(errstr, errstr_size,
                     "'%s': expected name=WIDTHxHEIGHT/FORMAT/QUALITY[/FIT] with a name of "
                     "[a-z0-9_-]",
                     tok);
            goto done;
        }
        const char *rest = tok + consumed;
        /* Options after QUALITY, in any order: a FIT, effort=N, animated,
         * icc. The 4-field and 5-field forms keep their meaning. */
        r.effort = -1;
        while (*rest == '/') {
            char opt[16], *end;
            int m = 0;
            if (sscanf(rest + 1, "%15[a-z0-9=]%n", opt, &m) != 1)
                break;
            rest += 1 + m;
            if (!strncmp(opt, "effort=", 7)) {
                r.effort = (int)strtol(opt + 7, &end, 10);
                if (!opt[7] || *end || r.effort < 0 || r.effort > 9) {
                    snprintf(errstr, errstr_size, "'%s': effort must be a number in 0..9", tok);
                    goto done;
                }
            } else if (!strcmp(opt, "animated")) {
                r.animated = 1;
            } else if (!strcmp(opt, "icc")) {
                r.keep_icc = 1;
            } else {
                memcpy(fit, opt, sizeof(fit));
            }
        }
        while (isspace((unsigned char)*rest))
            rest++;
        if (*rest) {
            snprintf(errstr, errstr_size, "'%s': unexpected trailing text '%s'", tok, rest);
            goto done;
        }
        if (r.width < 1 || r.width > 16384 || r.height < 1 || r.height > 16384) {
            snprintf(errstr, errstr_size, "'%s': width and height must be in 1..16384", tok);
            goto done;
        }
        if (!in_list(fmt, strlen(fmt), "jpeg,webp,avif,png")) {
            snprintf(errstr, errstr_size, "'%s': format '%s' is not one of jpeg, webp, avif, png",
                     tok, fmt);
            goto done;
        }
        if (r.quality < 1 || r.quality > 100) {
            snprintf(errstr, errstr_size, "'%s': quality must be in 1..100", tok);
            goto done;
        }
        if (!strcmp(fit, "inside"))
            r.fit = IS_FIT_INSIDE;
        else if (!strcmp(fit, "cover"))
            r.fit = IS_FIT_COVER;
        else if (!strcmp(fit, "attention"))
            r.fit = IS_FIT_ATTENTION;
        else {
            snprintf(errstr, errstr_size,
                     "'%s': fit '%s' is not one of inside, cover, attention (other options: "
                     "effort=N, animated, icc)",
                     tok, fit);
            goto done;
        }
        if (r.effort > (!strcmp(fmt, "webp") ? 6 : !strcmp(fmt, "avif") ? 9 : -1)) {
            snprintf(errstr, errstr_size,
                     "'%s': effort is 0..6 for webp and 0..9 for avif; jpeg and png have none",
                     tok);
            goto done;
        }
        if (r.animated && strcmp(fmt, "webp")) {
            snprintf(errstr, errstr_size, "'%s': only webp renditions can be animated", tok);
            goto done;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(out[i].name, name)) {
                snprintf(errstr, errstr_size, "rendition name '%s' used twice", name);
                goto done;
            }
        snprintf(r.name, sizeof(r.name), "%s", name);
        snprintf(r.format, sizeof(r.format), "%s", fmt);
        out[n++] = r;
    }
    if (n == 0) {
        snprintf(errstr, errstr_size, "at least one rendition is required");
        goto done;
    }
    *nout = n;
    rc = 0;
done:
    free(copy);
    return rc;
}

static int set_kafka(is_config_t *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (!strcmp(cfg->kafka[i].key, key)) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = strdup(value);
            return 0;
        }
    is_kv_t *kv = realloc(cfg->kafka, (cfg->nkafka + 1) * sizeof(*kv));
    if (!kv)
        return -1;
    cfg->kafka = kv;
    kv[cfg->nkafka].key = strdup(key);
    kv[cfg->nkafka].value = strdup(value);
    cfg->nkafka++;
    return 0;
}

static int set_pair(is_kv_t **kvp, size_t *n, const char *key, const char *value)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*kvp)[i].key, key)) {
            free((*kvp)[i].value);
            (*kvp)[i].value = strdup(value);
            return 0;
        }
    is_kv_t *kv = realloc(*kvp, (*n + 1) * sizeof(*kv));
    if (!kv)
        return -1;
    *kvp = kv;
    kv[*n].key = strdup(key);
    kv[*n].value = strdup(value);
    (*n)++;
    return 0;
}

const char *is_config_kafka_get(const is_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (!strcmp(cfg->kafka[i].key, key))
            return cfg->kafka[i].value;
    return NULL;
}

int is_config_set(is_config_t *cfg, const char *key, const char *value, char *errstr,
                  size_t errstr_size)
{
    const is_ckey_t *k;
    char *field;

    if (!strncmp(key, "kafka.", 6) && key[6]) {
        /* Validated by librdkafka when the client is created, which names
         * the property and what it expects. */
        return set_kafka(cfg, key + 6, value);
    }
    if (!strncmp(key, "processor.", 10) && key[10]) {
        /* Checked when the processors are loaded at start (processors/chain.c),
         * which knows each type's keys. */
        return set_pair(&cfg->processor_kv, &cfg->nprocessor_kv, key + 10, value);
    }
    if (!(k = find_key(key))) {
        snprintf(errstr, errstr_size,
                 "%s: unknown configuration key (see `imgsink help config`; librdkafka "
                 "properties take the prefix kafka.)",
                 key);
        return -1;
    }
    field = (char *)cfg + k->off;

    switch (k->type) {
    case T_STR:
    case T_ENUM:
    case T_LIST:
    case T_RENDITIONS:
        if (k->type == T_ENUM && !in_list(value, strlen(value), k->choices)) {
            snprintf(errstr, errstr_size, "%s=%s: expected one of %s", key, value, k->choices);
            return -1;
        }
        if (k->type == T_LIST) {
            const char *p = value;
            while (*p) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                if (!n || !in_list(p, n, k->choices)) {
                    snprintf(errstr, errstr_size, "%s=%s: '%.*s' is not one of %s", key, value,
                             (int)n, p, k->choices);
                    return -1;
                }
                p += n + (c ? 1 : 0);
            }
        }
        if (k->type == T_RENDITIONS) {
            char why[256];
            is_rendition_t r[IS_MAX_RENDITIONS];
            int nr = 0;
            if (is_config_parse_renditions(value, r, &nr, why, sizeof(why))) {
                snprintf(errstr, errstr_size, "%s=%s: %s", key, value, why);
                return -1;
            }
            memcpy(cfg->renditions, r, sizeof(r));
            cfg->nrenditions = nr;
        }
        free(*(char **)field);
        *(char **)field = strdup(value);
        return 0;
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            *(int *)field = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            *(int *)field = 0;
        else {
            snprintf(errstr, errstr_size, "%s=%s: expected true or false", key, value);
            return -1;
        }
        return 0;
    case T_INT:
    case T_SIZE: {
        int64_t v;
        char *end;
        if (k->type == T_SIZE) {
            if (is_config_parse_size(value, &v)) {
                snprintf(errstr, errstr_size,
                         "%s=%s: expected a size such as 1048576, 512KiB or 16MiB", key, value);
                return -1;
            }
        } else {
            errno = 0;
            v = strtoll(value, &end, 10);
            if (errno || end == value || *end) {
                snprintf(errstr, errstr_size, "%s=%s: expected an integer", key, value);
                return -1;
            }
        }
        if (v < k->min || v > k->max) {
            snprintf(errstr, errstr_size, "%s=%s: expected a value in %lld..%lld", key, value,
                     (long long)k->min, (long long)k->max);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    }
    }
    return -1;
}

is_config_t *is_config_new(void)
{
    char errstr[512];
    is_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    for (size_t i = 0; i < NKEYS; i++)
        if (is_config_set(cfg, keys[i].name, keys[i].def, errstr, sizeof(errstr))) {
            /* A bad built-in default is a programming error. */
            fprintf(stderr, "imgsink: bad default: %s\n", errstr);
            abort();
        }
    set_kafka(cfg, "group.id", "imgsink");
    return cfg;
}

void is_config_destroy(is_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type != T_BOOL && keys[i].type != T_INT && keys[i].type != T_SIZE)
            free(*(char **)((char *)cfg + keys[i].off));
    for (size_t i = 0; i < cfg->nkafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        free(cfg->processor_kv[i].key);
        free(cfg->processor_kv[i].value);
    }
    free(cfg->processor_kv);
    free(cfg);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int is_config_load_file(is_config_t *cfg, const char *path, char *errstr, size_t errstr_size)
{
    FILE *fp = fopen(path, "r");
    char line[8192], why[1024];
    int lineno = 0, rc = -1;

    if (!fp) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), fp)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(fp)) {
            snprintf(errstr, errstr_size, "%s:%d: line longer than %zu bytes", path, lineno,
                     sizeof(line) - 1);
            goto done;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "%s:%d: '%s': expected key=value", path, lineno, s);
            goto done;
        }
        *eq = '\0';
        if (is_config_set(cfg, trim(s), trim(eq + 1), why, sizeof(why))) {
            snprintf(errstr, errstr_size, "%s:%d: %s", path, lineno, why);
            goto done;
        }
    }
    rc = 0;
done:
    fclose(fp);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

/* The variables the kubelet injects for each Service of the namespace, here
 * one whose name starts with "imgsink": NAME_SERVICE_HOST,
 * NAME_SERVICE_PORT[_PORTNAME], NAME_PORT and NAME_PORT_<N>_<PROTO>[_ADDR|
 * _PORT|_PROTO]. They are never keys, not even under the kafka. and
 * processor. prefixes (IMGSINK_KAFKA_SERVICE_HOST of a Service named
 * imgsink-kafka). */
static int kubelet_service_var(const char *var, size_t n)
{
    char name[320];
    unsigned port;
    char proto[8];
    int m;

    if (n >= sizeof(name))
        return 0;
    snprintf(name, sizeof(name), "%.*s", (int)n, var);
    if (ends_with(name, "_SERVICE_HOST") || ends_with(name, "_SERVICE_PORT") ||
        strstr(name, "_SERVICE_PORT_") || ends_with(name, "_PORT"))
        return 1;
    for (const char *p = name; (p = strstr(p, "_PORT_")); p++) {
        m = 0;
        if (sscanf(p, "_PORT_%u_%7[A-Z]%n", &port, proto, &m) == 2 && m &&
            (!strcmp(proto, "TCP") || !strcmp(proto, "UDP") || !strcmp(proto, "SCTP")) &&
            (!p[m] || !strcmp(p + m, "_ADDR") || !strcmp(p + m, "_PORT") ||
             !strcmp(p + m, "_PROTO")))
            return 1;
    }
    return 0;
}

/* A key of the table, or under a prefix passed on (kafka.*, processor.*). */
static int known_key(const char *key)
{
    return (!strncmp(key, "kafka.", 6) && key[6]) || (!strncmp(key, "processor.", 10) && key[10]) ||
           find_key(key);
}

int is_config_load_env(is_config_t *cfg, char *errstr, size_t errstr_size)
{
    char key[256], why[1024], ignored[1024] = "";
    size_t nignored = 0, more = 0;

    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "IMGSINK_", 8))
            continue;
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) - 8 : 0;
        if (!eq || n == 0 || n >= sizeof(key))
            continue;
        for (size_t i = 0; i < n; i++) {
            char c = (*e)[8 + i];
            key[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
        }
        key[n] = '\0';
        /* Variables that are not keys: the config file's name and the
         * local test stack's settings (test/stack/). */
        if (!strcmp(key, "config") || !strcmp(key, "stack.dir") || !strcmp(key, "cache"))
            continue;
        /* Not a key: the environment of a pod holds variables the operator
         * did not write (the kubelet's Service variables), so they are
         * named in one warning and skipped, unlike a configuration file's
         * lines. A known key with a bad value still stops start-up. */
        if (kubelet_service_var(*e, n + 8) || !known_key(key)) {
            size_t used = strlen(ignored);
            if (used + n + 8 + 3 < sizeof(ignored))
                snprintf(ignored + used, sizeof(ignored) - used, "%s%.*s", used ? ", " : "",
                         (int)(n + 8), *e); /* the name only: a value may be a secret */
            else
                more++;
            nignored++;
            continue;
        }
        if (is_config_set(cfg, key, eq + 1, why, sizeof(why))) {
            snprintf(errstr, errstr_size, "environment %.*s: %s", (int)(n + 8), *e, why);
            return -1;
        }
    }
    if (nignored)
        IS_WARN("config", json_pack("{s:s, s:i}", "variables", ignored, "count", (int)nignored),
                "ignoring %zu IMGSINK_* environment variable%s naming no configuration key "
                "(e.g. the kubelet's variables for a Service named imgsink*): %s%s",
                nignored, nignored == 1 ? "" : "s", ignored, more ? ", ..." : "");
    return 0;
}

int is_config_validate(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    char why[512];
    int days[IS_KEYS_MAX_RETENTION_CLASSES], ndays;
    for (size_t i = 0; i < NKEYS; i++) {
        if (!(keys[i].flags & F_REQUIRED))
            continue;
        const char *v = *(char **)((const char *)cfg + keys[i].off);
        if (!v || !*v) {
            snprintf(errstr, errstr_size, "%s: required, but not set", keys[i].name);
            return -1;
        }
    }
    if (!is_config_kafka_get(cfg, "bootstrap.servers")) {
        snprintf(errstr, errstr_size, "kafka.bootstrap.servers: required, but not set");
        return -1;
    }
    if (!*cfg->s3_access_key != !*cfg->s3_secret_key) {
        snprintf(errstr, errstr_size,
                 "s3.access.key and s3.secret.key: set both or neither (one is empty)");
        return -1;
    }
    /* No s3.access.key: the credentials chain (creds.h) finds them. */
    if (*cfg->s3_sse_kms_key_id && strcmp(cfg->s3_sse, "aws:kms") != 0) {
        snprintf(errstr, errstr_size,
                 "s3.sse.kms.key.id=%s: expected only with s3.sse=aws:kms (s3.sse is %s)",
                 cfg->s3_sse_kms_key_id, cfg->s3_sse);
        return -1;
    }
    if (*cfg->s3_tls_ca_file && access(cfg->s3_tls_ca_file, R_OK) != 0) {
        snprintf(errstr, errstr_size, "s3.tls.ca.file=%s: expected a readable PEM file of CAs: %s",
                 cfg->s3_tls_ca_file, strerror(errno));
        return -1;
    }
    if (cfg->worker_stuck_timeout_ms && cfg->worker_stuck_timeout_ms <= cfg->limits_timeout_ms) {
        snprintf(errstr, errstr_size,
                 "worker.stuck.timeout.ms=%lld: expected 0 (off) or more than limits.timeout.ms "
                 "(%lld), or a slow image would count as stuck and be retried instead of "
                 "stopped",
                 (long long)cfg->worker_stuck_timeout_ms, (long long)cfg->limits_timeout_ms);
        return -1;
    }
    /* Parsed here to be validated; the worker parses it again for itself. */
    is_claimcheck_t *cc = is_claimcheck_new(cfg->claimcheck_allowed, why, sizeof(why));
    if (!cc) {
        snprintf(errstr, errstr_size, "claimcheck.allowed=%s: %s", cfg->claimcheck_allowed, why);
        return -1;
    }
    is_claimcheck_destroy(cc);
    if (is_keys_retention_classes(cfg->retention_classes, days, &ndays, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "retention.classes=%s: %s", cfg->retention_classes, why);
        return -1;
    }
    if (cfg->retry_backoff_initial_ms > cfg->retry_backoff_max_ms) {
        snprintf(errstr, errstr_size,
                 "retry.backoff.initial.ms=%lld: expected at most retry.backoff.max.ms (%lld)",
                 (long long)cfg->retry_backoff_initial_ms, (long long)cfg->retry_backoff_max_ms);
        return -1;
    }
    if (*cfg->schema_registry_url) {
        is_registry_t *reg = is_registry_new(
            cfg->schema_registry_url, cfg->schema_registry_userinfo, cfg->schema_registry_ca,
            (long)cfg->schema_registry_timeout_ms, errstr, errstr_size);
        if (!reg)
            return -1;
        is_registry_destroy(reg);
        if (*cfg->schema_registry_ca && access(cfg->schema_registry_ca, R_OK)) {
            snprintf(errstr, errstr_size,
                     "schema.registry.ssl.ca.location=%s: expected a readable PEM file (%s)",
                     cfg->schema_registry_ca, strerror(errno));
            return -1;
        }
    } else if (*cfg->schema_registry_userinfo || *cfg->schema_registry_ca) {
        snprintf(errstr, errstr_size,
                 "schema.registry.url: required when schema.registry.basic.auth.user.info or "
                 "schema.registry.ssl.ca.location is set, but not set");
        return -1;
    }
    return 0;
}

static const char *type_name(is_ctype_t t)
{
    switch (t) {
    case T_STR:
        return "string";
    case T_INT:
        return "integer";
    case T_SIZE:
        return "size";
    case T_BOOL:
        return "bool";
    case T_ENUM:
        return "enum";
    case T_LIST:
        return "list";
    case T_RENDITIONS:
        return "renditions";
    }
    return "?";
}

void is_config_print_help(FILE *fp, int markdown)
{
    if (markdown) {
        fprintf(fp, "| key | type | default | allowed | description |\n");
        fprintf(fp, "|---|---|---|---|---|\n");
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const is_ckey_t *k = &keys[i];
        char allowed[128] = "";
        if (k->type == T_INT || k->type == T_SIZE)
            snprintf(allowed, sizeof(allowed), "%lld..%lld", (long long)k->min, (long long)k->max);
        else if (k->choices)
            snprintf(allowed, sizeof(allowed), "%s", k->choices);
        if (markdown)
            fprintf(fp, "| `%s` | %s | `%s` | %s | %s%s |\n", k->name, type_name(k->type), k->def,
                    allowed, k->flags & F_REQUIRED ? "**Required.** " : "", k->desc);
        else
            fprintf(fp, "%s (%s, default \"%s\"%s%s%s)\n    %s\n", k->name, type_name(k->type),
                    k->def, *allowed ? ", allowed: " : "", allowed,
                    k->flags & F_REQUIRED ? ", required" : "", k->desc);
    }
    if (markdown)
        fprintf(fp, "| `kafka.*` | string | | | Passed to librdkafka without the prefix, e.g. "
                    "`kafka.bootstrap.servers` (**required**), `kafka.group.id` (default "
                    "`imgsink`), `kafka.group.instance.id`, `kafka.statistics.interval.ms` "
                    "(default 5000 for `imgsink run`: consumer lag and readiness; 0 turns "
                    "them off), `kafka.auto.commit.interval.ms` (default 1000 for `imgsink "
                    "run`: how often stored offsets are committed, about what a killed "
                    "worker repeats). |\n"
                    "| `processor.*` | string | | | Settings of the processors named in "
                    "`processors`: `processor.NAME.type` (plugin or exec), for a plugin "
                    "`processor.NAME.path` (the .so) and its own keys, for exec "
                    "`processor.NAME.command`, `processor.NAME.timeout.ms` (default 10000; "
                    "less than `worker.stuck.timeout.ms`; cut to what is left of "
                    "`limits.timeout.ms`), `processor.NAME.retries` (default 2) and "
                    "`processor.NAME.env.VAR` (the program's environment: these plus "
                    "`PATH=/usr/bin:/bin` and `LANG=C` unless set, nothing of the worker's). |\n");
    else
        fprintf(fp, "kafka.* (string)\n    Passed to librdkafka without the prefix, e.g. "
                    "kafka.bootstrap.servers (required), kafka.group.id (default imgsink), "
                    "kafka.group.instance.id, kafka.statistics.interval.ms (default 5000 for "
                    "imgsink run: consumer lag and readiness; 0 turns them off), "
                    "kafka.auto.commit.interval.ms (default 1000 for imgsink run: how often "
                    "stored offsets are committed, about what a killed worker repeats).\n"
                    "processor.* (string)\n    Settings of the processors named in processors: "
                    "processor.NAME.type (plugin or exec); plugin: processor.NAME.path and its own "
                    "keys; exec: processor.NAME.command, processor.NAME.timeout.ms (default "
                    "10000; less than worker.stuck.timeout.ms; cut to what is left of "
                    "limits.timeout.ms), processor.NAME.retries (default 2) and "
                    "processor.NAME.env.VAR (the program's environment: these plus "
                    "PATH=/usr/bin:/bin and LANG=C unless set, nothing of the worker's).\n");
}

/* kafka.* and processor.* properties whose values are secrets: librdkafka's
 * sensitive properties (sasl.password, ssl.key.password, ssl.key.pem,
 * ssl.keystore.password, sasl.oauthbearer.client.secret and .config) and
 * anything named like a password, secret or token (not a token endpoint's
 * URL). */
static int secret_name(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") ||
           (strstr(key, "token") && !strstr(key, "endpoint")) || strstr(key, ".key.pem") ||
           strstr(key, "oauthbearer.config");
}

size_t is_config_secrets(const is_config_t *cfg, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NKEYS && n < max; i++) {
        const char *v = *(char *const *)((const char *)cfg + keys[i].off);
        if ((keys[i].flags & F_SECRET) && v && *v)
            out[n++] = v;
    }
    for (size_t i = 0; i < cfg->nkafka && n < max; i++)
        if (secret_name(cfg->kafka[i].key) && *cfg->kafka[i].value)
            out[n++] = cfg->kafka[i].value;
    for (size_t i = 0; i < cfg->nprocessor_kv && n < max; i++)
        if (secret_name(cfg->processor_kv[i].key) && *cfg->processor_kv[i].value)
            out[n++] = cfg->processor_kv[i].value;
    return n;
}

void is_config_dump(const is_config_t *cfg, FILE *fp)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const is_ckey_t *k = &keys[i];
        const char *field = (const char *)cfg + k->off;
        switch (k->type) {
        case T_BOOL:
            fprintf(fp, "%s=%s\n", k->name, *(const int *)field ? "true" : "false");
            break;
        case T_INT:
        case T_SIZE:
            fprintf(fp, "%s=%lld\n", k->name, (long long)*(const int64_t *)field);
            break;
        default: {
            const char *v = *(char *const *)field;
            fprintf(fp, "%s=%s\n", k->name, (k->flags & F_SECRET) && *v ? "[hidden]" : v);
        }
        }
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        const char *key = cfg->kafka[i].key;
        fprintf(fp, "kafka.%s=%s\n", key, secret_name(key) ? "[hidden]" : cfg->kafka[i].value);
    }
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        const char *key = cfg->processor_kv[i].key;
        fprintf(fp, "processor.%s=%s\n", key,
                secret_name(key) ? "[hidden]" : cfg->processor_kv[i].value);
    }
}
