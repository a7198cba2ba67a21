/*
 * s3.c - S3 client over one libcurl easy handle per thread (see s3.h).
 *
 * Every request is built the same way (s3_request): address the bucket
 * (path-style or virtual-host), encode the key per segment, stamp x-amz-date,
 * sign every header we send with SigV4, perform, classify. The easy handle
 * is reset between requests but not recreated, so its connection cache keeps
 * connections to the store alive across objects.
 *
 * Store behaviours this code relies on:
 * - S3 reports some retryable conditions as 4xx (RequestTimeout is a 400,
 *   RequestTimeTooSkewed a 403), so the class comes from the <Code> of the
 *   error document as well as from the status; libxml2 parses it.
 * - A 501 (NotImplemented) means the store does not support a header we
 *   send, e.g. MinIO given x-amz-server-side-encryption without a KMS
 *   configured. Retrying cannot help, so it is PERMANENT, unlike other 5xx.
 * - Error documents of a failed signature (SignatureDoesNotMatch) echo the
 *   string to sign and canonical request; only <Code> and <Message> are read,
 *   and the canonical request is never logged: it holds the session token.
 * - Virtual-host addressing over https needs bucket names without dots (the
 *   wildcard certificate covers one label); use path_style for those.
 *   MinIO serves virtual-host requests only when started with MINIO_DOMAIN.
 * - Keys travel byte for byte, but stores differ on odd ones: MinIO rejects
 *   "." and ".." segments and "//" (400 XMinioInvalidResourceName /
 *   XMinioInvalidObjectName, PERMANENT) and drops a leading '/', which AWS
 *   keeps as part of the key.
 * - MinIO and S3 verify x-amz-checksum-sha256 and refuse a mismatch before
 *   storing anything (MinIO: 400 XAmzContentChecksumMismatch).
 */
#include "s3.h"
#include "sigv4.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>

#define S3_ERR_BODY_MAX  (64 * 1024) /* error documents are small */
#define S3_LIFECYCLE_MAX (1 << 20)   /* a lifecycle document with many rules */
#define S3_MAX_HEADERS   16

struct is_s3 {
    CURL *curl;
    char *scheme;   /* "http" or "https" */
    char *hostport; /* "127.0.0.1:9000", "s3.eu-west-1.amazonaws.com" */
    char *region, *bucket;
    char *access_key, *secret_key, *session_token; /* session_token NULL if none */
    char *sse, *sse_kms_key_id;                    /* NULL if none */
    char *tls_ca_file;                             /* NULL: the system's CAs */
    int tls_insecure;                              /* no certificate verification */
    int last_curl_rc;                              /* CURLcode of the last request */
    int last_method_put;                           /* the last request was a PUT */
    int probe_wrong_checksum;                      /* is_s3_probe_put: send a wrong one */
    int path_style;
    is_creds_provider_t *creds; /* not owned; NULL: the static keys above */
    long connect_timeout_ms, timeout_ms;
    long last_status;      /* HTTP status of the last request, 0 if none came */
    char last_code[64];    /* <Code> of the last error document, "" if none */
    atomic_int *interrupt; /* set by another thread: abort the request, or NULL */
    char curl_err[CURL_ERROR_SIZE];
};

is_s3_conf_t is_s3_conf_of(const is_config_t *cfg, is_creds_provider_t *creds)
{
    return (is_s3_conf_t){.endpoint = cfg->s3_endpoint,
                          .region = cfg->s3_region,
                          .bucket = cfg->s3_bucket,
                          .access_key = cfg->s3_access_key,
                          .secret_key = cfg->s3_secret_key,
                          .session_token = cfg->s3_session_token,
                          .path_style = cfg->s3_path_style,
                          .connect_timeout_ms = (long)cfg->s3_connect_timeout_ms,
                          .timeout_ms = (long)cfg->s3_timeout_ms,
                          .sse = cfg->s3_sse && strcmp(cfg->s3_sse, "none") ? cfg->s3_sse : NULL,
                          .sse_kms_key_id = cfg->s3_sse_kms_key_id,
                          .tls_ca_file = cfg->s3_tls_ca_file,
                          .tls_insecure = !cfg->s3_tls_verify,
                          .creds = creds};
}

is_creds_provider_t *is_s3_creds_of(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    is_creds_conf_t cc = {cfg->s3_access_key,
                          cfg->s3_secret_key,
                          cfg->s3_session_token,
                          cfg->s3_region,
                          cfg->s3_credentials_refresh_margin_ms,
                          cfg->s3_credentials_timeout_ms};
    return is_creds_provider_new(&cc, errstr, errstr_size);
}

int is_s3_global_init(char *errstr, size_t errstr_size)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "curl_global_init: %s", curl_easy_strerror(rc));
        return -1;
    }
    /* libxml2 must initialize its globals before threads parse concurrently. */
    xmlInitParser();
    return 0;
}

void is_s3_global_cleanup(void)
{
    xmlCleanupParser();
    curl_global_cleanup();
}

const char *is_s3_result_name(is_s3_result_t r)
{
    switch (r) {
    case IS_S3_OK:
        return "ok";
    case IS_S3_TRANSIENT:
        return "transient";
    default:
        return "permanent";
    }
}

/* Error codes that mean "try again later" whatever the HTTP status.
 * - The digest codes: imgsink hashes the very buffer it sends, so a mismatch
 *   means the bytes were damaged on the way (MinIO names a bad
 *   x-amz-checksum-sha256 XAmzContentChecksumMismatch, S3 BadDigest), and
 *   IncompleteBody means the connection lost part of the body.
 * - The token codes: credentials are refreshed outside this module, so a
 *   retry after the refresh succeeds where PERMANENT would discard work. */
static const char *const transient_codes[] = {
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "BadDigest",
    "XAmzContentSHA256Mismatch",
    "XAmzContentChecksumMismatch",
    "IncompleteBody",
    "ExpiredToken",
    "TokenRefreshRequired",
    NULL,
};

is_s3_result_t is_s3_classify(long http_status, const char *s3_code, int curl_error)
{
    if (curl_error != 0)
        return IS_S3_TRANSIENT; /* connect, DNS, TLS, timeout, reset */
    if (s3_code && *s3_code)
        for (const char *const *c = transient_codes; *c; c++)
            if (strcmp(s3_code, *c) == 0)
                return IS_S3_TRANSIENT;
    if (http_status >= 200 && http_status < 300)
        return IS_S3_OK;
    if (http_status == 0)
        return IS_S3_TRANSIENT; /* no response at all */
    if (http_status == 501)
        return IS_S3_PERMANENT; /* feature not supported by this store */
    if (http_status >= 500 || http_status == 429 || http_status == 409 || http_status == 408)
        return IS_S3_TRANSIENT;
    /* Other 4xx (403, 404, 400 InvalidArgument, 412 with If-None-Match) and
     * unexpected 1xx/3xx: the same request will fail the same way. */
    return IS_S3_PERMANENT;
}

static int valid_text(const char *s, int allow_space)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (!allow_space && c == ' '))
            return 0;
    }
    return 1;
}

static int valid_bucket(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n == 0 || n > 255)
        return 0;
    for (; *b; b++)
        if (!((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z') || (*b >= '0' && *b <= '9') ||
              *b == '.' || *b == '-' || *b == '_'))
            return 0;
    return 1;
}

/* vasprintf that returns NULL on failure (asprintf leaves its pointer
 * undefined then). */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void is_s3_destroy(is_s3_t *s3)
{
    if (!s3)
        return;
    if (s3->curl)
        curl_easy_cleanup(s3->curl);
    free(s3->scheme);
    free(s3->hostport);
    free(s3->region);
    free(s3->bucket);
    free(s3->access_key);
    free_secret(s3->secret_key);
    free_secret(s3->session_token);
    free(s3->sse);
    free(s3->sse_kms_key_id);
    free(s3->tls_ca_file);
    free(s3);
}

/* Splits "scheme://host[:port][/]" into s3->scheme and s3->hostport. */
static int parse_endpoint(is_s3_t *s3, const char *ep, char *errstr, size_t errstr_size)
{
    const char *rest;
    if (strncasecmp(ep, "https://", 8) == 0) {
        s3->scheme = strdup("https");
        rest = ep + 8;
    } else if (strncasecmp(ep, "http://", 7) == 0) {
        s3->scheme = strdup("http");
        rest = ep + 7;
    } else {
        snprintf(errstr, errstr_size, "s3: endpoint must start with http:// or https://");
        return -1;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || memchr(rest, '@', n) || !valid_text(rest, 0)) {
        snprintf(errstr, errstr_size, "s3: endpoint needs a host (and no user info)");
        return -1;
    }
    if (strcmp(rest + n, "") != 0 && strcmp(rest + n, "/") != 0) {
        snprintf(errstr, errstr_size, "s3: endpoint must not have a path or query");
        return -1;
    }
    s3->hostport = strndup(rest, n);
    return s3->scheme && s3->hostport ? 0 : -1;
}

is_s3_t *is_s3_new(const is_s3_conf_t *conf, char *errstr, size_t errstr_size)
{
    is_s3_t *s3 = calloc(1, sizeof(*s3));
    char *ep = NULL;

    snprintf(errstr, errstr_size, "s3: out of memory");
    if (!s3)
        goto fail;
    if (!conf->region || !*conf->region || !valid_text(conf->region, 0)) {
        snprintf(errstr, errstr_size, "s3: region is required");
        goto fail;
    }
    if (!valid_bucket(conf->bucket)) {
        snprintf(errstr, errstr_size, "s3: bucket name is empty or has invalid characters");
        goto fail;
    }
    if (!conf->creds && (!conf->access_key || !*conf->access_key || !conf->secret_key ||
                         !*conf->secret_key || !valid_text(conf->access_key, 0))) {
        snprintf(errstr, errstr_size, "s3: access key and secret key are required");
        goto fail;
    }
    if (!conf->creds && conf->session_token && !valid_text(conf->session_token, 0)) {
        snprintf(errstr, errstr_size, "s3: session token has invalid characters");
        goto fail;
    }
    const char *sse = conf->sse ? conf->sse : "";
    if (*sse && strcmp(sse, "AES256") != 0 && strcmp(sse, "aws:kms") != 0 &&
        strcmp(sse, "aws:kms:dsse") != 0) {
        snprintf(errstr, errstr_size, "s3: sse must be empty, AES256, aws:kms or aws:kms:dsse");
        goto fail;
    }
    if (conf->sse_kms_key_id && *conf->sse_kms_key_id &&
        (strncmp(sse, "aws:kms", 7) != 0 || !valid_text(conf->sse_kms_key_id, 0))) {
        snprintf(errstr, errstr_size, "s3: sse kms key id needs sse=aws:kms and printable text");
        goto fail;
    }

    if (conf->endpoint && *conf->endpoint) {
        if (parse_endpoint(s3, conf->endpoint, errstr, errstr_size) == -1)
            goto fail;
    } else {
        if (!(ep = fmt("https://s3.%s.amazonaws.com", conf->region)))
            goto fail;
        if (parse_endpoint(s3, ep, errstr, errstr_size) == -1)
            goto fail;
    }
    snprintf(errstr, errstr_size, "s3: out of memory");
    s3->region = strdup(conf->region);
    s3->bucket = strdup(conf->bucket);
    s3->creds = conf->creds;
    if (!s3->creds) {
        s3->access_key = strdup(conf->access_key);
        s3->secret_key = strdup(conf->secret_key);
        s3->session_token = dup_or_null(conf->session_token);
    }
    s3->sse = dup_or_null(sse);
    s3->sse_kms_key_id = dup_or_null(conf->sse_kms_key_id);
    if (!s3->region || !s3->bucket || (!s3->creds && (!s3->access_key || !s3->secret_key)) ||
        (!s3->creds && conf->session_token && *conf->session_token && !s3->session_token) ||
        (*sse && !s3->sse) ||
        (conf->sse_kms_key_id && *conf->sse_kms_key_id && !s3->sse_kms_key_id))
        goto fail;
    s3->path_style = conf->path_style;
    s3->tls_insecure = conf->tls_insecure;
    if (conf->tls_ca_file && *conf->tls_ca_file && !(s3->tls_ca_file = strdup(conf->tls_ca_file)))
        goto fail;
    s3->connect_timeout_ms = conf->connect_timeout_ms;
    s3->timeout_ms = conf->timeout_ms;
    if (!(s3->curl = curl_easy_init())) {
        snprintf(errstr, errstr_size, "s3: curl_easy_init failed");
        goto fail;
    }
    free(ep);
    if (errstr_size)
        errstr[0] = '\0';
    return s3;

fail:
    free(ep);
    is_s3_destroy(s3);
    return NULL;
}

/* Response body, bounded: limit_ok for 2xx, S3_ERR_BODY_MAX otherwise.
 * With check_len, a 2xx whose Content-Length is not expect_len is refused at
 * its first byte, before the body is read: len_mismatch is set and
 * other_len holds the announced size. Zeroed: no length check. */
typedef struct s3_resp {
    CURL *curl;
    char *p;
    size_t len, cap, limit_ok;
    int too_big;
    int check_len, len_mismatch;
    int64_t expect_len, other_len;
    int started; /* write_cb ran at least once */
} s3_resp_t;

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    s3_resp_t *r = arg;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (!r->started++ && r->check_len && status >= 200 && status < 300) {
        curl_off_t cl = -1; /* -1: no Content-Length (chunked); checked after */
        curl_easy_getinfo(r->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl >= 0 && (int64_t)cl != r->expect_len) {
            r->other_len = (int64_t)cl;
            r->len_mismatch = 1;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
    }
    size_t limit = status >= 200 && status < 300 ? r->limit_ok : S3_ERR_BODY_MAX;
    if (n > limit || r->len > limit - n) {
        r->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *p = realloc(r->p, cap);
        if (!p)
            return 0;
        r->p = p;
        r->cap = cap;
    }
    memcpy(r->p + r->len, data, n);
    r->len += n;
    r->p[r->len] = '\0';
    return n;
}

typedef struct s3_upload {
    const char *p;
    size_t len, off;
} s3_upload_t;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    s3_upload_t *u = arg;
    size_t n = size * nitems;
    if (n > u->len - u->off)
        n = u->len - u->off;
    if (n)
        memcpy(buf, u->p + u->off, n);
    u->off += n;
    return n;
}

/* curl rewinds the body when it must resend it (e.g. a reused connection the
 * server had closed). */
static int seek_cb(void *arg, curl_off_t offset, int origin)
{
    s3_upload_t *u = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len)
        return CURL_SEEKFUNC_FAIL;
    u->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Copies the text of an element, control characters replaced by spaces. */
static void copy_text(xmlNodePtr node, char *out, size_t out_size)
{
    xmlChar *t = xmlNodeGetContent(node);
    if (!t || !out_size)
        goto done;
    size_t i = 0;
    for (const xmlChar *c = t; *c && i + 1 < out_size; c++)
        out[i++] = *c < 0x20 || *c == 0x7f ? ' ' : (char)*c;
    out[i] = '\0';
done:
    xmlFree(t);
}

/* Reads <Error><Code/><Message/></Error>; leaves code/msg empty otherwise. */
static void parse_error_doc(const char *p, size_t len, char *code, size_t code_size, char *msg,
                            size_t msg_size)
{
    code[0] = msg[0] = '\0';
    if (!p || len == 0 || len > S3_ERR_BODY_MAX)
        return;
    /* NONET: never fetch anything the document references. */
    xmlDocPtr doc = xmlReadMemory(p, (int)len, "s3-error.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (root && xmlStrcmp(root->name, BAD_CAST "Error") == 0) {
        for (xmlNodePtr n = root->children; n; n = n->next) {
            if (n->type != XML_ELEMENT_NODE)
                continue;
            if (xmlStrcmp(n->name, BAD_CAST "Code") == 0)
                copy_text(n, code, code_size);
            else if (xmlStrcmp(n->name, BAD_CAST "Message") == 0)
                copy_text(n, msg, msg_size);
        }
    }
    xmlFreeDoc(doc);
}

/* Codes for error responses that carry no document (HEAD, some proxies). */
static const char *default_code(long status)
{
    switch (status) {
    case 403:
        return "AccessDenied";
    case 404:
        return "NoSuchKey";
    case 412:
        return "PreconditionFailed";
    case 503:
        return "ServiceUnavailable";
    default:
        return "";
    }
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char *line = fmt("%s: %s", name, value);
    if (!line)
        return -1;
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* Codes with which a store refuses temporary credentials themselves (an
 * expired or unknown session token): new credentials may cure them. */
static int token_refused(const char *code)
{
    return !strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired") ||
           !strcmp(code, "InvalidToken") || !strcmp(code, "InvalidTokenId");
}

/*
 * One signed request. key may be NULL (bucket subresource such as
 * ?lifecycle); query is the wire query string or NULL; body NULL means no
 * body (GET). extra headers are signed and sent after the standard ones.
 * On OK resp holds the 2xx body. "what" names the target in errstr.
 */
static int interrupt_cb(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
    is_s3_t *s3 = p;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load(s3->interrupt) ? 1 : 0; /* non-zero aborts the transfer */
}

void is_s3_set_interrupt(is_s3_t *s3, atomic_int *flag)
{
    s3->interrupt = flag;
}

/* A TLS failure says which settings to look at: the certificate chain
 * (s3.tls.ca.file) or the host name (s3.endpoint). */
static int tls_failure(int rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM;
}

static const char *tls_hint(const is_s3_t *s3, CURLcode rc)
{
    if (!tls_failure((int)rc))
        return "";
    if (rc == CURLE_SSL_CACERT_BADFILE)
        return ": TLS: cannot use s3.tls.ca.file";
    if (strstr(s3->curl_err, "host name") || strstr(s3->curl_err, "hostname") ||
        strstr(s3->curl_err, "subject name"))
        return ": TLS: the store's certificate is not for the host name of s3.endpoint";
    if (rc == CURLE_PEER_FAILED_VERIFICATION)
        return s3->tls_ca_file ? ": TLS: the store's certificate is not signed by a CA of "
                                 "s3.tls.ca.file"
                               : ": TLS: the store's certificate is not signed by a system CA "
                                 "(set s3.tls.ca.file)";
    return ": TLS handshake failed";
}

static is_s3_result_t s3_request(is_s3_t *s3, const char *method, const char *bucket,
                                 const char *key, const char *query, const char *payload_hash,
                                 const is_sigv4_header_t *extra, size_t extra_cnt, const void *body,
                                 size_t len, size_t limit_ok, s3_resp_t *resp, char *errstr,
                                 size_t errstr_size)
{
    is_s3_result_t ret = IS_S3_PERMANENT;
    char *enc_key = NULL, *host = NULL, *path = NULL, *url = NULL, *what = NULL;
    struct curl_slist *hl = NULL;
    is_sigv4_result_t sig = {0};
    is_sigv4_header_t hdrs[S3_MAX_HEADERS];
    size_t hcnt = 0;
    char amz_date[17], code[128], msg[512];
    struct tm tm;
    time_t now = time(NULL);
    long status = 0;
    /* The credentials of this one request: a reference to the provider's
     * current snapshot, which a refresh may replace meanwhile. */
    is_creds_t *cr = s3->creds ? is_creds_get(s3->creds) : NULL;
    const char *ak = cr ? cr->access_key : s3->access_key;
    const char *sk = cr ? cr->secret_key : s3->secret_key;
    const char *token = cr ? cr->session_token : s3->session_token;

    what = fmt("%s %s%s%s%s%s", method, bucket, key ? "/" : "", key ? key : "", query ? "?" : "",
               query ? query : "");
    if (!what) {
        snprintf(errstr, errstr_size, "s3: out of memory");
        ret = IS_S3_TRANSIENT;
        goto done;
    }
    if (3 + (token ? 1 : 0) + extra_cnt > S3_MAX_HEADERS) {
        snprintf(errstr, errstr_size, "s3: too many headers (%s)", what);
        goto done;
    }
    if (key && !(enc_key = is_sigv4_uri_encode(key, strlen(key), 0)))
        goto oom;
    /* Path-style: host/bucket/key. Virtual-host: bucket.host/key. */
    if (s3->path_style) {
        host = fmt("%s", s3->hostport);
        path = fmt("/%s%s%s", bucket, enc_key ? "/" : "", enc_key ? enc_key : "");
    } else {
        host = fmt("%s.%s", bucket, s3->hostport);
        path = fmt("/%s", enc_key ? enc_key : "");
    }
    if (!host || !path)
        goto oom;
    url = fmt("%s://%s%s%s%s", s3->scheme, host, path, query ? "?" : "", query ? query : "");
    if (!url)
        goto oom;

    if (!gmtime_r(&now, &tm) || strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16) {
        snprintf(errstr, errstr_size, "s3: cannot format the time (%s)", what);
        goto done;
    }
    hdrs[hcnt++] = (is_sigv4_header_t){"Host", host};
    hdrs[hcnt++] = (is_sigv4_header_t){"x-amz-date", amz_date};
    hdrs[hcnt++] = (is_sigv4_header_t){"x-amz-content-sha256", payload_hash};
    if (token)
        hdrs[hcnt++] = (is_sigv4_header_t){"x-amz-security-token", token};
    for (size_t i = 0; i < extra_cnt; i++)
        hdrs[hcnt++] = extra[i];

    is_sigv4_request_t req = {
        .method = method,
        .path = path,
        .query = query,
        .headers = hdrs,
        .header_cnt = hcnt,
        .payload_hash = payload_hash,
        .double_encode = 0, /* S3 signs the path exactly as sent */
    };
    is_sigv4_scope_t scope = {ak, sk, s3->region, "s3"};
    if (is_sigv4_sign(&req, &scope, amz_date, &sig, errstr, errstr_size) == -1)
        goto done;

    for (size_t i = 0; i < hcnt; i++)
        if (add_header(&hl, hdrs[i].name, hdrs[i].value) == -1)
            goto oom;
    if (add_header(&hl, "Authorization", sig.authorization) == -1)
        goto oom;
    /* An empty Expect: stops curl from waiting for 100-continue on bodies. */
    struct curl_slist *l = curl_slist_append(hl, "Expect:");
    if (!l)
        goto oom;
    hl = l;

    CURL *c = s3->curl;
    curl_easy_reset(c); /* options only: the connection cache survives */
    s3->curl_err[0] = '\0';
    resp->curl = c;
    resp->limit_ok = limit_ok;
    s3_upload_t up = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s3->curl_err);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    /* Keys may hold "." and ".." segments; curl must not squash them, or the
     * path sent differs from the path signed (and names another object). */
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Verification is curl's default; said again so a reset cannot lose it. */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, s3->tls_insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, s3->tls_insecure ? 0L : 2L);
    if (s3->tls_ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s3->tls_ca_file);
    if (s3->connect_timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s3->connect_timeout_ms);
    if (s3->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    if (body) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L); /* PUT with Content-Length */
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    /* DELETE (is_s3_delete): a request without a body under another verb;
     * reset for the next request of this handle. */
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "DELETE") ? NULL : "DELETE");

    if (s3->interrupt) {
        /* Called at least once a second, also while nothing moves. */
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, interrupt_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, s3);
    }

    s3->last_code[0] = '\0';
    CURLcode rc = curl_easy_perform(c);
    s3->last_curl_rc = (int)rc;
    s3->last_method_put = !strcmp(method, "PUT");
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    s3->last_status = rc == CURLE_OK ? status : 0;
    /* The handle still points at hl, up and resp, which end with this call;
     * the next request resets it before use, and hl goes now. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

    if (resp->len_mismatch && status >= 200 && status < 300) {
        snprintf(errstr, errstr_size,
                 "size mismatch: record says %" PRId64 ", object has %" PRId64 " (%s)",
                 resp->expect_len, resp->other_len, what);
        ret = IS_S3_PERMANENT;
        goto done;
    }
    if (resp->too_big && status >= 200 && status < 300) {
        snprintf(errstr, errstr_size, "object larger than %zu bytes (%s)", limit_ok, what);
        ret = IS_S3_PERMANENT;
        goto done;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(errstr, errstr_size,
                 "request interrupted: no progress for "
                 "worker.stuck.timeout.ms (%s)",
                 what);
        ret = IS_S3_TRANSIENT;
        goto done;
    }
    if (rc != CURLE_OK && !resp->too_big) {
        snprintf(errstr, errstr_size, "curl error %d: %s%s (%s)", (int)rc,
                 s3->curl_err[0] ? s3->curl_err : curl_easy_strerror(rc), tls_hint(s3, rc), what);
        ret = is_s3_classify(0, NULL, (int)rc);
        goto done;
    }
    if (status >= 200 && status < 300) {
        if (cr)
            is_creds_accepted(s3->creds, cr);
        ret = IS_S3_OK;
        goto done;
    }
    parse_error_doc(resp->p, resp->len, code, sizeof(code), msg, sizeof(msg));
    if (!code[0])
        snprintf(code, sizeof(code), "%s", default_code(status));
    ret = is_s3_classify(status, code, 0);
    if (cr && token_refused(code)) {
        /* Not the record's fault: new credentials are fetched now (or the
         * worker turns unready, see creds.h) and the request retried. */
        is_creds_refused(s3->creds, cr, code);
        ret = IS_S3_TRANSIENT;
    }
    snprintf(s3->last_code, sizeof(s3->last_code), "%s", code);
    snprintf(errstr, errstr_size, "HTTP %ld %s: %s (%s)", status, code[0] ? code : "(no code)",
             msg[0] ? msg : "(no message)", what);
    goto done;

oom:
    snprintf(errstr, errstr_size, "s3: out of memory (%s)", what);
    ret = IS_S3_TRANSIENT;
done:
    is_creds_release(cr);
    curl_slist_free_all(hl);
    is_sigv4_result_clear(&sig);
    free(enc_key);
    free(host);
    free(path);
    free(url);
    free(what);
    return ret;
}

int is_s3_digest(const void *body, size_t len, is_s3_digest_t *d)
{
    return is_sha256_hex_base64(body ? body : "", len, d->hex, d->b64);
}

is_s3_result_t is_s3_put(is_s3_t *s3, const char *key, const void *body, size_t len,
                         const char *content_type, const char *tagging, int if_none_match,
                         char *errstr, size_t errstr_size)
{
    return is_s3_put_digest(s3, key, body, len, NULL, content_type, tagging, if_none_match, errstr,
                            errstr_size);
}

is_s3_result_t is_s3_put_digest(is_s3_t *s3, const char *key, const void *body, size_t len,
                                const is_s3_digest_t *digest, const char *content_type,
                                const char *tagging, int if_none_match, char *errstr,
                                size_t errstr_size)
{
    is_s3_digest_t own;
    const char *hex, *b64;
    char wrong[45];
    is_sigv4_header_t extra[8];
    size_t n = 0;
    s3_resp_t resp = {0};
    is_s3_result_t ret = IS_S3_PERMANENT;

    if (errstr_size)
        errstr[0] = '\0';
    if (!key || !*key || strlen(key) > 1024) {
        snprintf(errstr, errstr_size, "s3: key must be 1..1024 bytes (PUT %s)", s3->bucket);
        goto done;
    }
    if (!body && len) {
        snprintf(errstr, errstr_size, "s3: no body for %zu bytes (PUT %s/%s)", len, s3->bucket,
                 key);
        goto done;
    }
    if (!body)
        body = "";
    if (!content_type || !*content_type)
        content_type = "application/octet-stream";
    if (!valid_text(content_type, 1) || (tagging && !valid_text(tagging, 0))) {
        snprintf(errstr, errstr_size,
                 "s3: control characters in content type or tagging (PUT %s/%s)", s3->bucket, key);
        goto done;
    }
    /* One SHA-256 of the body for both headers, the caller's when given;
     * the probe's checksum is that of no bytes: wrong for its body. */
    if ((!digest && is_s3_digest(body, len, &own) == -1) ||
        (s3->probe_wrong_checksum && is_sha256_base64(body, 0, wrong) == -1)) {
        snprintf(errstr, errstr_size, "s3: SHA-256 failed (PUT %s/%s)", s3->bucket, key);
        ret = IS_S3_TRANSIENT;
        goto done;
    }
    hex = digest ? digest->hex : own.hex;
    b64 = s3->probe_wrong_checksum ? wrong : digest ? digest->b64 : own.b64;
    extra[n++] = (is_sigv4_header_t){"Content-Type", content_type};
    extra[n++] = (is_sigv4_header_t){"x-amz-checksum-sha256", b64};
    if (tagging && *tagging)
        extra[n++] = (is_sigv4_header_t){"x-amz-tagging", tagging};
    if (s3->sse)
        extra[n++] = (is_sigv4_header_t){"x-amz-server-side-encryption", s3->sse};
    if (s3->sse_kms_key_id)
        extra[n++] =
            (is_sigv4_header_t){"x-amz-server-side-encryption-aws-kms-key-id", s3->sse_kms_key_id};
    if (if_none_match)
        extra[n++] = (is_sigv4_header_t){"If-None-Match", "*"};

    /* A zero-length body still goes as a PUT with Content-Length: 0. */
    ret = s3_request(s3, "PUT", s3->bucket, key, NULL, hex, extra, n, body, len, S3_ERR_BODY_MAX,
                     &resp, errstr, errstr_size);
done:
    free(resp.p);
    return ret;
}

is_s3_result_t is_s3_get(is_s3_t *s3, const char *bucket, const char *key, const char *version_id,
                         int64_t expect_size, size_t max_len, void **bodyp, size_t *lenp,
                         char *errstr, size_t errstr_size)
{
    s3_resp_t resp = {.check_len = expect_size >= 0, .expect_len = expect_size};
    is_s3_result_t ret = IS_S3_PERMANENT;
    char *enc = NULL, *query = NULL;

    if (errstr_size)
        errstr[0] = '\0';
    *bodyp = NULL;
    *lenp = 0;
    if (!bucket || !*bucket)
        bucket = s3->bucket;
    if (!valid_bucket(bucket) || !key || !*key || strlen(key) > 1024 ||
        (version_id && (!*version_id || strlen(version_id) > 1024))) {
        snprintf(errstr, errstr_size, "s3: invalid bucket, key or version id (GET)");
        goto done;
    }
    if (version_id) {
        /* Encoded as the wire needs it; the signer decodes and re-encodes
         * every query value, so the signature covers the same string. */
        if (!(enc = is_sigv4_uri_encode(version_id, strlen(version_id), 1)) ||
            !(query = fmt("versionId=%s", enc))) {
            snprintf(errstr, errstr_size, "s3: out of memory (GET %s/%s)", bucket, key);
            ret = IS_S3_TRANSIENT;
            goto done;
        }
    }
    ret = s3_request(s3, "GET", bucket, key, query, IS_SIGV4_EMPTY_SHA256, NULL, 0, NULL, 0,
                     max_len, &resp, errstr, errstr_size);
    if (ret != IS_S3_OK)
        goto done;
    if (!resp.p && !(resp.p = calloc(1, 1))) { /* empty object: still a buffer */
        snprintf(errstr, errstr_size, "s3: out of memory (GET %s/%s)", bucket, key);
        ret = IS_S3_TRANSIENT;
        goto done;
    }
    *bodyp = resp.p;
    *lenp = resp.len;
    resp.p = NULL;
done:
    free(resp.p);
    free(enc);
    free(query);
    return ret;
}

is_s3_result_t is_s3_get_lifecycle(is_s3_t *s3, const char *bucket, char **xmlp, char *errstr,
                                   size_t errstr_size)
{
    s3_resp_t resp = {0};
    is_s3_result_t ret;

    if (!bucket || !*bucket)
        bucket = s3->bucket;
    if (errstr_size)
        errstr[0] = '\0';
    *xmlp = NULL;
    /* The subresource has no value on the wire; it signs as "lifecycle=". */
    ret = s3_request(s3, "GET", bucket, NULL, "lifecycle", IS_SIGV4_EMPTY_SHA256, NULL, 0, NULL, 0,
                     S3_LIFECYCLE_MAX, &resp, errstr, errstr_size);
    if (ret == IS_S3_OK && !resp.p) {
        snprintf(errstr, errstr_size, "empty lifecycle document (GET %s?lifecycle)", bucket);
        ret = IS_S3_PERMANENT;
    }
    if (ret == IS_S3_OK) {
        *xmlp = resp.p;
        resp.p = NULL;
    }
    free(resp.p);
    return ret;
}

/* Codes with which AWS S3 and MinIO refuse the credentials themselves,
 * before any permission is looked at, and the key to look at. */
static const struct {
    const char *code, *hint;
} credential_codes[] = {
    {"InvalidAccessKeyId", "s3.access.key is not known to the store"},
    {"SignatureDoesNotMatch", "s3.secret.key does not match s3.access.key"},
    {"InvalidToken", "s3.session.token is invalid"},
    {"InvalidTokenId", "s3.session.token is invalid"},
    {"ExpiredToken", "s3.session.token has expired"},
    {"TokenRefreshRequired", "s3.session.token has expired"},
    {"InvalidSecurity", "the credentials are not accepted"},
    {"AuthorizationHeaderMalformed", "the request is signed for the wrong region (s3.region)"},
};

is_s3_result_t is_s3_check_credentials(is_s3_t *s3, const char *key, char *errstr,
                                       size_t errstr_size)
{
    char why[1024];
    void *body = NULL;
    size_t len = 0;

    /* A GET, never a PUT: the check must not leave an object behind (and an
     * untagged one must never exist). 64 KiB: the key is not expected to
     * exist, and a larger object answers OK with "object larger than". */
    is_s3_get(s3, NULL, key, NULL, -1, 64 * 1024, &body, &len, why, sizeof(why));
    free(body);
    /* A certificate that does not verify will not verify on the next try
     * either: the configuration (or the store's certificate) must change. */
    if (tls_failure(s3->last_curl_rc) && s3->last_curl_rc != CURLE_SSL_CONNECT_ERROR) {
        snprintf(errstr, errstr_size, "the store's TLS certificate is refused: %s", why);
        return IS_S3_PERMANENT;
    }
    for (size_t i = 0; i < sizeof(credential_codes) / sizeof(credential_codes[0]); i++)
        if (!strcmp(s3->last_code, credential_codes[i].code)) {
            if (s3->creds && strcmp(is_creds_source(s3->creds), "config"))
                /* The keys did not come from s3.*: name where they did. */
                snprintf(errstr, errstr_size,
                         "the store rejects the credentials from %s (credentials chain): %s",
                         is_creds_source(s3->creds), why);
            else
                snprintf(errstr, errstr_size, "the store rejects the credentials: %s: %s",
                         credential_codes[i].hint, why);
            return IS_S3_PERMANENT;
        }
    if (s3->last_status >= 200 && s3->last_status < 500 && s3->last_status != 408 &&
        s3->last_status != 429) {
        /* Authenticated: the object, NoSuchKey, AccessDenied (the worker may
         * lack s3:GetObject on its output prefix), NoSuchBucket. */
        if (errstr_size)
            errstr[0] = '\0';
        return IS_S3_OK;
    }
    /* No answer, 5xx, 408 or 429: the store could not say. */
    snprintf(errstr, errstr_size, "%s", why);
    return IS_S3_TRANSIENT;
}

long is_s3_last_status(const is_s3_t *s3)
{
    return s3 ? s3->last_status : 0;
}

/* <Code>s that only a change of configuration or permissions fixes, with
 * the thing to change. AccessDenied counts for PUTs only: a GET of a claim
 * check may be refused for one record's object. */
static const struct {
    const char *code, *hint;
    int put_only;
} config_codes[] = {
    {"kms:KeyNotFound", "s3.sse.kms.key.id names a key the store's KMS does not have", 0},
    {"KMS.NotFoundException", "s3.sse.kms.key.id names a key KMS does not have", 0},
    {"KMS.DisabledException", "the KMS key of s3.sse.kms.key.id is disabled", 0},
    {"KMS.KMSInvalidStateException", "the KMS key of s3.sse.kms.key.id is not usable", 0},
    {"KMS.AccessDeniedException",
     "the credentials may not use the KMS key (kms:GenerateDataKey on s3.sse.kms.key.id)", 0},
    {"NotImplemented", "the store does not support s3.sse (no KMS configured?)", 0},
    {"AccessDenied",
     "the store refuses the PUT: the credentials need s3:PutObject (and s3:PutObjectTagging, for "
     "the tags sent with it) under s3.prefix, or a bucket policy refuses it (unencrypted PUTs: "
     "set s3.sse)",
     1},
};

int is_s3_config_error(const is_s3_t *s3, char *hint, size_t hint_size)
{
    int put = s3->last_method_put;
    for (size_t i = 0; i < sizeof(config_codes) / sizeof(config_codes[0]); i++)
        if (!strcmp(s3->last_code, config_codes[i].code) && (put || !config_codes[i].put_only)) {
            snprintf(hint, hint_size, "%s", config_codes[i].hint);
            return 1;
        }
    return 0;
}

is_s3_result_t is_s3_probe_put(is_s3_t *s3, const char *key, const char *tagging, int *stored,
                               char *errstr, size_t errstr_size)
{
    static const char body[] = "imgsink probe: never stored";
    char why[1024], hint[512];

    *stored = 0;
    s3->probe_wrong_checksum = 1;
    is_s3_result_t r = is_s3_put(s3, key, body, sizeof(body) - 1, "application/octet-stream",
                                 tagging, 0, why, sizeof(why));
    s3->probe_wrong_checksum = 0;
    if (r == IS_S3_OK) {
        *stored = 1; /* the store does not verify x-amz-checksum-sha256 */
        if (errstr_size)
            errstr[0] = '\0';
        return IS_S3_OK;
    }
    if (!strcmp(s3->last_code, "XAmzContentChecksumMismatch") ||
        !strcmp(s3->last_code, "BadDigest") || !strcmp(s3->last_code, "InvalidDigest")) {
        if (errstr_size)
            errstr[0] = '\0';
        return IS_S3_OK;
    }
    if (is_s3_config_error(s3, hint, sizeof(hint))) {
        snprintf(errstr, errstr_size, "%s: %s", hint, why);
        return IS_S3_PERMANENT;
    }
    snprintf(errstr, errstr_size, "%s", why);
    return r == IS_S3_PERMANENT ? IS_S3_PERMANENT : IS_S3_TRANSIENT;
}

/* Collects the <Key> of every <Contents> and the continuation token of a
 * ListObjectsV2 answer. 0, or -1 on a document that is not one. */
static int parse_list(const char *p, size_t len, char ***keys, size_t *n, size_t *cap, char *token,
                      size_t token_size, int *truncated)
{
    xmlDocPtr doc =
        xmlReadMemory(p, (int)len, "list.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = root && !xmlStrcmp(root->name, (const xmlChar *)"ListBucketResult") ? 0 : -1;
    char text[1100];

    *truncated = 0;
    token[0] = '\0';
    for (xmlNodePtr c = root ? root->children : NULL; c && !rc; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!xmlStrcmp(c->name, (const xmlChar *)"IsTruncated")) {
            copy_text(c, text, sizeof(text));
            *truncated = !strcmp(text, "true");
        } else if (!xmlStrcmp(c->name, (const xmlChar *)"NextContinuationToken")) {
            copy_text(c, token, token_size);
        } else if (!xmlStrcmp(c->name, (const xmlChar *)"Contents")) {
            for (xmlNodePtr k = c->children; k; k = k->next) {
                if (k->type != XML_ELEMENT_NODE || xmlStrcmp(k->name, (const xmlChar *)"Key"))
                    continue;
                copy_text(k, text, sizeof(text));
                if (*n == *cap) {
                    size_t nc = *cap ? *cap * 2 : 64;
                    char **nk = realloc(*keys, nc * sizeof(*nk));
                    if (!nk) {
                        rc = -1;
                        break;
                    }
                    *keys = nk;
                    *cap = nc;
                }
                if (!((*keys)[*n] = strdup(text)))
                    rc = -1;
                else
                    (*n)++;
            }
        }
    }
    if (doc)
        xmlFreeDoc(doc);
    return rc;
}

is_s3_result_t is_s3_list(is_s3_t *s3, const char *prefix, char ***keysp, size_t *np, char *errstr,
                          size_t errstr_size)
{
    char **keys = NULL, token[1100] = "";
    size_t n = 0, cap = 0;
    is_s3_result_t ret = IS_S3_OK;
    int truncated;

    if (errstr_size)
        errstr[0] = '\0';
    *keysp = NULL;
    *np = 0;
    do {
        s3_resp_t resp = {0};
        char *ep = is_sigv4_uri_encode(prefix, strlen(prefix), 1);
        char *et = *token ? is_sigv4_uri_encode(token, strlen(token), 1) : NULL;
        char *query = ep && (et || !*token)
                          ? (et ? fmt("continuation-token=%s&list-type=2&prefix=%s", et, ep)
                                : fmt("list-type=2&prefix=%s", ep))
                          : NULL;
        free(ep);
        free(et);
        if (!query) {
            snprintf(errstr, errstr_size, "s3: out of memory (LIST %s/%s)", s3->bucket, prefix);
            ret = IS_S3_TRANSIENT;
            break;
        }
        ret = s3_request(s3, "GET", s3->bucket, NULL, query, IS_SIGV4_EMPTY_SHA256, NULL, 0, NULL,
                         0, S3_LIFECYCLE_MAX, &resp, errstr, errstr_size);
        free(query);
        if (ret == IS_S3_OK && (!resp.p || parse_list(resp.p, resp.len, &keys, &n, &cap, token,
                                                      sizeof(token), &truncated))) {
            snprintf(errstr, errstr_size, "s3: not a ListObjectsV2 answer (LIST %s/%s)", s3->bucket,
                     prefix);
            ret = IS_S3_PERMANENT;
        }
        free(resp.p);
        if (ret == IS_S3_OK && truncated && !*token) {
            snprintf(errstr, errstr_size, "s3: truncated list without a token (LIST %s/%s)",
                     s3->bucket, prefix);
            ret = IS_S3_PERMANENT;
        }
    } while (ret == IS_S3_OK && truncated);
    if (ret != IS_S3_OK) {
        is_s3_keys_free(keys, n);
        return ret;
    }
    *keysp = keys;
    *np = n;
    return IS_S3_OK;
}

void is_s3_keys_free(char **keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
}

is_s3_result_t is_s3_delete(is_s3_t *s3, const char *key, char *errstr, size_t errstr_size)
{
    s3_resp_t resp = {0};
    is_s3_result_t ret;

    if (errstr_size)
        errstr[0] = '\0';
    if (!key || !*key || strlen(key) > 1024) {
        snprintf(errstr, errstr_size, "s3: key must be 1..1024 bytes (DELETE %s)", s3->bucket);
        return IS_S3_PERMANENT;
    }
    ret = s3_request(s3, "DELETE", s3->bucket, key, NULL, IS_SIGV4_EMPTY_SHA256, NULL, 0, NULL, 0,
                     S3_ERR_BODY_MAX, &resp, errstr, errstr_size);
    free(resp.p);
    return ret;
}
