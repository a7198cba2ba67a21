/*
 * s3.h - S3 client over libcurl with imgsink's own SigV4 signer (sigv4.h).
 *
 * Speaks to AWS S3 and to S3-compatible stores (MinIO), path-style or
 * virtual-host addressing. Every PUT carries its tags (x-amz-tagging), its
 * body checksum (x-amz-content-sha256 and x-amz-checksum-sha256), its
 * server-side encryption headers, and optionally If-None-Match: * .
 *
 * Results fall in three classes, the three outcomes a sink needs: OK,
 * TRANSIENT (retry later: network, throttling, server trouble) and PERMANENT
 * (retrying the same request cannot succeed). is_s3_classify is the rule.
 *
 * Threads: call is_s3_global_init once from main before any thread starts.
 * Then each thread owns its own is_s3_t; an is_s3_t is not thread-safe.
 * Secrets are never written to errstr or logs.
 */
#ifndef IS_S3_H
#define IS_S3_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "creds.h"

typedef struct is_s3 is_s3_t; /* one per thread: wraps one CURL easy handle (keeps
                                 connections alive); not thread-safe */

typedef struct is_s3_conf {
    /* "http://127.0.0.1:9000"; NULL or "" => https://s3.<region>.amazonaws.com */
    const char *endpoint;
    const char *region; /* "us-east-1" */
    const char *bucket;
    const char *access_key, *secret_key, *session_token; /* session_token may be NULL/"" */
    int path_style; /* 1: endpoint/bucket/key (MinIO), 0: bucket.host/key (virtual-host) */
    long connect_timeout_ms, timeout_ms;
    const char *sse;            /* NULL/"" none, "AES256", "aws:kms", "aws:kms:dsse" */
    const char *sse_kms_key_id; /* with aws:kms, may be NULL */
    const char *tls_ca_file;    /* PEM CAs for https; NULL/"": the system's CAs */
    int tls_insecure;           /* 1: accept any certificate and host name (tests only) */
    /* Where the credentials come from (creds.h); when set, access_key,
     * secret_key and session_token are ignored and every request signs with
     * the provider's current snapshot. Not owned; must outlive the client.
     * The store refusing a token (ExpiredToken, InvalidToken) then triggers
     * a refresh and is TRANSIENT: the record is not at fault. */
    is_creds_provider_t *creds;
} is_s3_conf_t; /* strings are copied by is_s3_new */

/* The store settings of a configuration (s3.*), signing with creds when
 * not NULL (else with the explicit keys). Every client of the store starts
 * from this; a caller may shorten timeout_ms. */
is_s3_conf_t is_s3_conf_of(const is_config_t *cfg, is_creds_provider_t *creds);

/* The credentials chain of a configuration (creds.h: s3.access.key and
 * s3.secret.key, the environment, shared files, web identity, the container
 * endpoint, IMDS), refreshed s3.credentials.refresh.margin.ms before expiry.
 * NULL with errstr when a source that is configured gives nothing usable:
 * every client of the store starts from this, so they sign alike. */
is_creds_provider_t *is_s3_creds_of(const is_config_t *cfg, char *errstr, size_t errstr_size);

typedef enum { IS_S3_OK = 0, IS_S3_TRANSIENT = 1, IS_S3_PERMANENT = 2 } is_s3_result_t;

/* Initializes libcurl and libxml2 process-wide. Call once from main before
 * any thread starts (curl_global_init is not thread-safe). Returns 0 or -1. */
int is_s3_global_init(char *errstr, size_t errstr_size);
/* Counterpart of is_s3_global_init, from main after every thread ended. */
void is_s3_global_cleanup(void);

/* Returns NULL with errstr filled on a bad configuration or out of memory. */
is_s3_t *is_s3_new(const is_s3_conf_t *conf, char *errstr, size_t errstr_size);
void is_s3_destroy(is_s3_t *s3);

/* PUT one object. tagging is an already-encoded query string such as
 * "retention=7d&source=stream", sent as x-amz-tagging in the same PUT.
 * content_type NULL means application/octet-stream. With if_none_match the
 * PUT only creates: an existing object gives PERMANENT with errstr starting
 * "HTTP 412 PreconditionFailed", and the caller decides what that means.
 * errstr gets "HTTP 403 AccessDenied: <Message> (PUT bucket/key)" style text. */
is_s3_result_t is_s3_put(is_s3_t *s3, const char *key, const void *body, size_t len,
                         const char *content_type, const char *tagging, int if_none_match,
                         char *errstr, size_t errstr_size);

/* The SHA-256 of a PUT body in the two forms a PUT sends: hex (signed as
 * x-amz-content-sha256; also what metadata.json records per rendition) and
 * base64 (x-amz-checksum-sha256). */
typedef struct is_s3_digest {
    char hex[65];
    char b64[45];
} is_s3_digest_t;

/* One pass over body into d. Returns 0 or -1. */
int is_s3_digest(const void *body, size_t len, is_s3_digest_t *d);

/* is_s3_put with the body's digest from the caller (is_s3_digest of the
 * same bytes; a wrong one makes the store refuse the PUT), so a body is
 * hashed once however often it is PUT and its digest reused elsewhere.
 * digest NULL: computed here, as is_s3_put does. */
is_s3_result_t is_s3_put_digest(is_s3_t *s3, const char *key, const void *body, size_t len,
                                const is_s3_digest_t *digest, const char *content_type,
                                const char *tagging, int if_none_match, char *errstr,
                                size_t errstr_size);

/* GET an object into a malloc'ed buffer (caller frees *bodyp; it is
 * NUL-terminated for convenience, *lenp excludes the NUL), at most max_len
 * bytes: a larger object is PERMANENT. bucket NULL or "" means the configured
 * bucket. version_id NULL reads the current version, else that version
 * (?versionId=, signed). expect_size >= 0: a Content-Length that differs is
 * PERMANENT, "size mismatch: record says N, object has M (GET ...)", before
 * the body is read (a response without Content-Length is the caller's to
 * check on *lenp). 404 => PERMANENT, errstr "HTTP 404 NoSuchKey: ... (GET
 * bucket/key)"; a version the store does not have is a 4xx as well. */
is_s3_result_t is_s3_get(is_s3_t *s3, const char *bucket, const char *key, const char *version_id,
                         int64_t expect_size, size_t max_len, void **bodyp, size_t *lenp,
                         char *errstr, size_t errstr_size);

/* GET ?lifecycle of bucket (NULL or "": the configured one); returns the raw
 * XML (caller frees). A bucket without rules is PERMANENT with
 * "NoSuchLifecycleConfiguration" in errstr. */
is_s3_result_t is_s3_get_lifecycle(is_s3_t *s3, const char *bucket, char **xmlp, char *errstr,
                                   size_t errstr_size);

/* Whether the store accepts this client's credentials (access key, secret
 * key, session token): GETs key, which need not exist. OK when the request
 * was authenticated, whatever the answer (the object, 404, or 403
 * AccessDenied: permissions are not what this checks); PERMANENT when the
 * store refused the credentials (InvalidAccessKeyId, SignatureDoesNotMatch,
 * InvalidToken, MinIO's InvalidTokenId, ExpiredToken, ...), with errstr
 * naming the key to fix and the store's answer; TRANSIENT when the store
 * could not say (down, 5xx, throttling). Never writes. */
is_s3_result_t is_s3_check_credentials(is_s3_t *s3, const char *key, char *errstr,
                                       size_t errstr_size);

/* Whether the last request failed for a reason that only a change of
 * configuration or permissions fixes, the same for every object: the KMS
 * key of s3.sse.kms.key.id does not exist (MinIO 404 kms:KeyNotFound, AWS
 * KMS.NotFoundException) or is disabled, the store has no KMS for the SSE
 * asked (501 NotImplemented), or a PUT was refused (403 AccessDenied: a
 * missing s3:PutObject / s3:PutObjectTagging, or a bucket policy that
 * refuses it). 1 with hint naming the key or permission to fix, else 0.
 * A worker stops on such an error instead of sending every record to the
 * DLQ or retrying forever. */
int is_s3_config_error(const is_s3_t *s3, char *hint, size_t hint_size);

/* A PUT that cannot store anything: key, content type, tags and the SSE
 * headers of a real PUT, but an x-amz-checksum-sha256 that does not match
 * the body, which S3 and MinIO verify before they store. The store checks
 * the signature, the permissions (s3:PutObject, s3:PutObjectTagging for the
 * tags, bucket policies) and the KMS key first, so the checksum error
 * (400 XAmzContentChecksumMismatch / BadDigest) says all of them passed:
 * OK. PERMANENT with errstr when is_s3_config_error says why; TRANSIENT
 * when the store could not say. If the store stores the object anyway (it
 * does not check checksums), OK and *stored = 1: the caller names the key. */
is_s3_result_t is_s3_probe_put(is_s3_t *s3, const char *key, const char *tagging, int *stored,
                               char *errstr, size_t errstr_size);

/* Every key under prefix in the configured bucket (ListObjectsV2, all
 * pages), in the store's order (UTF-8 binary). *keysp: malloc'd array of
 * malloc'd keys, free with is_s3_keys_free. */
is_s3_result_t is_s3_list(is_s3_t *s3, const char *prefix, char ***keysp, size_t *np, char *errstr,
                          size_t errstr_size);
void is_s3_keys_free(char **keys, size_t n);

/* DELETE one object of the configured bucket (a missing key is OK, as S3
 * answers 204 for it). */
is_s3_result_t is_s3_delete(is_s3_t *s3, const char *key, char *errstr, size_t errstr_size);

/* HTTP status of this client's last request (0: none, or no response). */
long is_s3_last_status(const is_s3_t *s3);

/* Requests of this client are aborted (IS_S3_TRANSIENT, "request
 * interrupted") while *flag is non-zero; another thread sets it (the job
 * watchdog). NULL turns it off. The flag must outlive the client. */
void is_s3_set_interrupt(is_s3_t *s3, atomic_int *flag);

/* The classification rule, pure so it is unit-tested. http_status is 0 when
 * no response arrived; s3_code is the <Code> of the error document, or NULL;
 * curl_error is a CURLcode (0 = the transfer completed). */
is_s3_result_t is_s3_classify(long http_status, const char *s3_code, int curl_error);

/* "ok", "transient", "permanent". */
const char *is_s3_result_name(is_s3_result_t r);

#endif
