/*
 * creds.h - where the store's credentials come from, and keeping them fresh.
 *
 * A provider chain in the order and with the names of the AWS SDKs. The
 * first source that is configured is the one used, for the life of the
 * process (as the SDKs' default chain caches its provider):
 *
 *   1. explicit configuration: s3.access.key, s3.secret.key, s3.session.token
 *   2. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   3. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials), then
 *      AWS_CONFIG_FILE (~/.aws/config), profile AWS_PROFILE ("default")
 *   4. web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (EKS service
 *      accounts), STS AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS,
 *      AWS_ENDPOINT_URL or https://sts.<region>.amazonaws.com; the token
 *      file is read again at every refresh (the kubelet rotates it)
 *   5. container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI or
 *      http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every refresh) or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN (ECS tasks, EKS Pod Identity)
 *   6. EC2 IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT (http://169.254.169.254)
 *      unless AWS_EC2_METADATA_DISABLED=true: PUT a session token, then GET
 *      the role and its credentials with it
 *
 * Sources 1-3 are static. Sources 4-6 give temporary credentials with an
 * expiry; a background thread fetches new ones before they expire (margin
 * s3.credentials.refresh.margin.ms, or half the remaining lifetime when that
 * is shorter), and at once when the store refuses them (ExpiredToken,
 * InvalidToken: is_creds_refused).
 *
 * Credentials are an immutable, reference-counted snapshot: a job thread
 * takes the current one for one request (is_creds_get) and releases it
 * after; a refresh swaps in a new snapshot under the provider's lock, and
 * the old one is freed (and cleansed) when its last request ends. So every
 * thread signs with fresh credentials without a restart, and no thread ever
 * sees half of an update.
 *
 * Secrets (secret keys, session tokens, web identity and authorization
 * tokens) never reach errstr, the log or the reason of is_creds_healthy:
 * errors quote the source, the URL, the HTTP status and the field that is
 * wrong, never a response body.
 */
#ifndef IS_CREDS_H
#define IS_CREDS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One set of credentials. Immutable once published; owned by references. */
typedef struct is_creds {
    atomic_int refs;
    char *access_key, *secret_key;
    char *session_token; /* NULL without one */
    int64_t expires;     /* Unix time (s) the source declared; 0: does not expire */
} is_creds_t;

typedef struct is_creds_provider is_creds_provider_t;

typedef struct is_creds_conf {
    /* Explicit configuration; empty or NULL: the rest of the chain. */
    const char *access_key, *secret_key, *session_token;
    const char *region;        /* for the STS endpoint's default host */
    int64_t refresh_margin_ms; /* refresh this long before expiry */
    int64_t http_timeout_ms;   /* each request to STS, container, IMDS */
} is_creds_conf_t;             /* strings are copied */

/* Walks the chain and fetches the first credentials, so a source that is
 * configured but does not answer, or answers nonsense, stops start-up.
 * Reads the environment: call from main before threads start. Returns NULL
 * with errstr filled ("credentials: container endpoint http://...: HTTP 500")
 * when no source gives credentials. Call is_creds_start to refresh. */
is_creds_provider_t *is_creds_provider_new(const is_creds_conf_t *conf, char *errstr,
                                           size_t errstr_size);

/* Starts the refresh thread (nothing to do for static sources). 0 or -1. */
int is_creds_start(is_creds_provider_t *cp, char *errstr, size_t errstr_size);

/* Stops the refresh thread and frees; accepts NULL. After every user. */
void is_creds_provider_destroy(is_creds_provider_t *cp);

/* The current snapshot with a reference taken; never NULL. Any thread. */
is_creds_t *is_creds_get(is_creds_provider_t *cp);

/* Drops a reference; the last one cleanses and frees. Accepts NULL. */
void is_creds_release(is_creds_t *c);

/* The store refused used (code: ExpiredToken, InvalidToken, ...). If used is
 * still current, a refreshable source refreshes now; a static one turns the
 * provider unhealthy (nothing will make these credentials work again). Any
 * thread. */
void is_creds_refused(is_creds_provider_t *cp, const is_creds_t *used, const char *code);

/* The store accepted a request signed with used: clears a refusal. */
void is_creds_accepted(is_creds_provider_t *cp, const is_creds_t *used);

/* 1 healthy, 0 not (the last refresh failed, or the store refuses the
 * credentials); why gets a one-line reason. *failing_ms gets for how long
 * it has been unhealthy (0 when healthy). Any thread. */
int is_creds_healthy(is_creds_provider_t *cp, char *why, size_t why_size, int64_t *failing_ms);

/* "config", "environment", "profile", "web-identity", "container", "imds". */
const char *is_creds_source(const is_creds_provider_t *cp);

/* Successful refreshes since start (for tests and the log). */
long is_creds_refreshes(const is_creds_provider_t *cp);

/* Writes the provider's metrics in the Prometheus text format to fp:
 * imgsink_credentials_refreshes_total{source,result="ok"|"error"},
 * imgsink_credentials_healthy{source}, imgsink_credentials_expiry_seconds
 * {source} (temporary credentials only) and, once a refresh has failed,
 * imgsink_credentials_last_refresh_error{source,error} with its
 * _timestamp_seconds. No secret: the error is the one of is_creds_healthy.
 * Any thread (the HTTP threads of the worker and of the API). */
void is_creds_metrics_write(is_creds_provider_t *cp, FILE *fp);

/* Parses an ISO 8601 UTC time ("2026-11-30T19:20:00Z", fractions and
 * "+00:00" allowed) into Unix time. 0 or -1. Pure; unit-tested. */
int is_creds_parse_time(const char *s, int64_t *out);

/* Reads aws_access_key_id, aws_secret_access_key and aws_session_token of
 * section [section] from an INI text (the shared credentials file uses
 * "[name]", the config file "[profile name]" and "[default]"). Returns 1
 * found (strings malloc'ed into *ak, *sk, *st; *st may be NULL), 0 no such
 * section or keys, -1 out of memory or a section without both keys
 * (errstr). Pure; unit-tested. */
int is_creds_parse_ini(const char *text, const char *section, char **ak, char **sk, char **st,
                       char *errstr, size_t errstr_size);

/* Parses the JSON of the container endpoint and of IMDS into a snapshot
 * (refs 1). what names the source in errstr. Returns NULL with errstr on bad
 * JSON, a missing or non-string field, a Code other than "Success", or an
 * unparseable Expiration. Pure; unit-tested (and fuzzed by the e2e tests'
 * hostile servers). */
is_creds_t *is_creds_from_json(const char *body, size_t len, const char *what, char *errstr,
                               size_t errstr_size);

/* Parses an STS AssumeRoleWithWebIdentity (or AssumeRole) response, or its
 * ErrorResponse into errstr ("STS: HTTP 403 AccessDenied: message"). */
is_creds_t *is_creds_from_sts_xml(const char *body, size_t len, long status, char *errstr,
                                  size_t errstr_size);

#endif
