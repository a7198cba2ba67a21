/*
 * api.c - `imgsink api`. See api.h.
 *
 * Stateless by design: an id is "YYYYMMDD-RANDOM-TAG" where TAG is an HMAC
 * of the tenant and the rest of the id under the store's secret key (which
 * every replica has). The date places the objects (raw upload, outputs,
 * error document); the tag lets GET /v1/images/{id} answer 404 for an id
 * that was not issued to the caller's tenant, and "pending" for one that
 * was, without a database. Lookups only ever read under the caller's own
 * tenant prefix, so another tenant's objects cannot be reached either way.
 *
 * Requests are authenticated on their first callback, before any body is
 * read: a client without a valid key, or over its rate, cannot make the
 * service buffer anything. Bodies are bounded (api.max.body.bytes for JSON,
 * api.max.direct.bytes for images) by Content-Length up front and by
 * counting for chunked bodies.
 *
 * The access log has method, path (never the query), status, tenant, sizes
 * and time: no key, no Authorization header, no presigned URL.
 */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "clock.h"
#include "creds.h"
#include "envelope.h"
#include "http.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "presign.h"
#include "s3.h"

#define API_MAX_CONNECTIONS 256u
#define API_IDLE_TIMEOUT_S  30u
#define API_MAX_KEY_LEN     512
#define API_META_MAX        (1024 * 1024)

typedef struct api_rate {
    char tenant[IS_KEYS_MAX_ID + 1];
    double tokens;
    int64_t last_ms;
} api_rate_t;

typedef struct api {
    is_config_t *cfg;
    struct MHD_Daemon *mhd;
    char address[80];
    char topic[256];
    /* keys: swapped whole by the main thread under klock */
    pthread_rwlock_t klock;
    char **tenants;
    unsigned char (*hashes)[32];
    int nkeys;
    struct stat kst;
    /* per-tenant token buckets */
    pthread_mutex_t rlock;
    api_rate_t *rates;
    size_t nrates;
    /* the store's credentials: the worker's chain, refreshed (creds.h) */
    is_creds_provider_t *creds;
    /* producer of POST /v1/images */
    rd_kafka_t *rk;
    pthread_t poller;
    atomic_int stop;
    /* the producer's last error (error callback), cleared when a metadata
     * request through the producer succeeds again; kerr_at 0: none */
    pthread_mutex_t klock_err;
    char kerr[700];
    int64_t kerr_at;
    /* counters for /metrics */
    atomic_llong n_status[6]; /* by class 1xx..5xx, [0] other */
    atomic_llong n_limited, n_produced, n_produce_failed, n_uploads, n_reloads, n_reload_fail;
} api_t;

/* One request's state across libmicrohttpd's callbacks. */
typedef struct api_req {
    char tenant[IS_KEYS_MAX_ID + 1];
    char *body;
    size_t len, cap, limit;
    int too_big, replied;
    unsigned int status;
    char method[8], path[160]; /* for the access log; the query is never kept */
    int64_t start_ms;
} api_req_t;

static volatile sig_atomic_t api_stop_flag, api_hup_flag;

/* ---------------------------------------------------------------- helpers */

const char *is_api_format_of(const char *ct)
{
    static const struct {
        const char *ct, *fmt;
    } map[] = {
        {"image/jpeg", "jpeg"}, {"image/png", "png"},   {"image/webp", "webp"},
        {"image/gif", "gif"},   {"image/tiff", "tiff"}, {"image/heif", "heif"},
        {"image/heic", "heif"}, {"image/avif", "heif"},
    };
    if (!ct)
        return NULL;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcasecmp(ct, map[i].ct))
            return map[i].fmt;
    return NULL;
}

static int format_allowed(const char *list, const char *fmt)
{
    size_t n = strlen(fmt);
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && !strncmp(p, fmt, n))
            return 1;
        p += l;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int is_api_parse_keys(const char *text, char ***tenantsp, unsigned char (**hashesp)[32],
                      char *errstr, size_t errstr_size)
{
    char **tenants = NULL;
    unsigned char(*hashes)[32] = NULL;
    int n = 0, lineno = 0;
    const char *p = text;

    while (*p) {
        size_t l = strcspn(p, "\n");
        char line[1024], why[256];
        lineno++;
        if (l >= sizeof(line)) {
            snprintf(errstr, errstr_size, "line %d: longer than %zu bytes", lineno,
                     sizeof(line) - 1);
            goto fail;
        }
        memcpy(line, p, l);
        line[l] = '\0';
        p += l + (p[l] == '\n');
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL, *tenant = strtok_r(line, " \t\r", &save);
        if (!tenant)
            continue;
        char *hex = strtok_r(NULL, " \t\r", &save);
        if (is_keys_check_segment("tenant", tenant, why, sizeof(why))) {
            snprintf(errstr, errstr_size, "line %d: %s", lineno, why);
            goto fail;
        }
        if (!hex || strlen(hex) != 64 || strtok_r(NULL, " \t\r", &save)) {
            snprintf(errstr, errstr_size,
                     "line %d: expected 'TENANT SHA256HEX' (64 hex digits, the SHA-256 of the "
                     "key)",
                     lineno);
            goto fail;
        }
        char **nt = realloc(tenants, sizeof(*tenants) * (size_t)(n + 1));
        if (!nt)
            goto oom;
        tenants = nt;
        unsigned char(*nh)[32] = realloc(hashes, sizeof(*hashes) * (size_t)(n + 1));
        if (!nh)
            goto oom;
        hashes = nh;
        for (int i = 0; i < 32; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(errstr, errstr_size, "line %d: the hash is not hexadecimal", lineno);
                goto fail;
            }
            hashes[n][i] = (unsigned char)(hi << 4 | lo);
        }
        if (!(tenants[n] = strdup(tenant)))
            goto oom;
        n++;
    }
    *tenantsp = tenants;
    *hashesp = hashes;
    return n;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    for (int i = 0; i < n; i++)
        free(tenants[i]);
    free(tenants);
    free(hashes);
    return -1;
}

static void free_keys(char **tenants, int n, unsigned char (*hashes)[32])
{
    for (int i = 0; i < n; i++)
        free(tenants[i]);
    free(tenants);
    free(hashes);
}

/* Main thread (and once at start). A file that cannot be read or parsed
 * keeps the keys in use. force: SIGHUP, read even if unchanged. */
static int reload_keys(api_t *a, int force)
{
    struct stat st;
    char errstr[512], *text = NULL;
    const char *path = a->cfg->api_keys_file;
    FILE *fp = NULL;
    int n = -1;

    if (stat(path, &st)) {
        snprintf(errstr, sizeof(errstr), "%s", strerror(errno));
        goto fail;
    }
    if (!force && st.st_mtim.tv_sec == a->kst.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == a->kst.st_mtim.tv_nsec && st.st_size == a->kst.st_size &&
        st.st_ino == a->kst.st_ino)
        return 0;
    if (st.st_size > 16 * 1024 * 1024 || !(fp = fopen(path, "r")) ||
        !(text = calloc(1, (size_t)st.st_size + 1)) ||
        fread(text, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
        snprintf(errstr, sizeof(errstr), "cannot read it (%s)",
                 st.st_size > 16 * 1024 * 1024 ? "larger than 16MiB" : strerror(errno));
        goto fail;
    }
    char **tenants = NULL;
    unsigned char(*hashes)[32] = NULL;
    if ((n = is_api_parse_keys(text, &tenants, &hashes, errstr, sizeof(errstr))) < 0)
        goto fail;
    pthread_rwlock_wrlock(&a->klock);
    char **ot = a->tenants;
    unsigned char(*oh)[32] = a->hashes;
    int on = a->nkeys;
    a->tenants = tenants;
    a->hashes = hashes;
    a->nkeys = n;
    pthread_rwlock_unlock(&a->klock);
    free_keys(ot, on, oh);
    a->kst = st;
    atomic_fetch_add(&a->n_reloads, 1);
    IS_INFO("api", json_pack("{s:s, s:i}", "file", path, "keys", n), "API keys loaded");
    free(text);
    fclose(fp);
    return 0;
fail:
    a->kst = st; /* do not retry a broken file until it changes again */
    atomic_fetch_add(&a->n_reload_fail, 1);
    IS_ERR("api", json_pack("{s:s}", "file", path), "api.keys.file: %s; the keys in use are kept",
           errstr);
    free(text);
    if (fp)
        fclose(fp);
    return -1;
}

/* The tenant of the presented key, compared in constant time against every
 * stored hash (no early exit). Any MHD thread. */
static int authenticate(api_t *a, struct MHD_Connection *conn, char *tenant, size_t tenant_size)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    unsigned char digest[32];
    int found = -1;

    if (!h || strncasecmp(h, "Bearer ", 7))
        return -1;
    h += 7;
    while (*h == ' ')
        h++;
    size_t len = strlen(h);
    if (!len || len > API_MAX_KEY_LEN)
        return -1;
    SHA256((const unsigned char *)h, len, digest);
    pthread_rwlock_rdlock(&a->klock);
    for (int i = 0; i < a->nkeys; i++) {
        int eq = CRYPTO_memcmp(digest, a->hashes[i], 32) == 0;
        found = eq && found < 0 ? i : found;
    }
    if (found >= 0)
        snprintf(tenant, tenant_size, "%s", a->tenants[found]);
    pthread_rwlock_unlock(&a->klock);
    return found >= 0 ? 0 : -1;
}

/* Token bucket per tenant; returns 0 when allowed, else the seconds to
 * wait. Any MHD thread. */
static int rate_take(api_t *a, const char *tenant)
{
    int64_t now = is_now_ms();
    double rate = (double)a->cfg->api_rate_per_second, burst = (double)a->cfg->api_rate_burst;
    int wait = 0;
    api_rate_t *r = NULL;

    pthread_mutex_lock(&a->rlock);
    for (size_t i = 0; i < a->nrates && !r; i++)
        if (!strcmp(a->rates[i].tenant, tenant))
            r = &a->rates[i];
    if (!r) {
        api_rate_t *nr = realloc(a->rates, sizeof(*nr) * (a->nrates + 1));
        if (nr) {
            a->rates = nr;
            r = &a->rates[a->nrates++];
            snprintf(r->tenant, sizeof(r->tenant), "%s", tenant);
            r->tokens = burst;
            r->last_ms = now;
        }
    }
    if (r) {
        r->tokens += (double)(now - r->last_ms) * rate / 1000.0;
        if (r->tokens > burst)
            r->tokens = burst;
        r->last_ms = now;
        if (r->tokens >= 1.0) {
            r->tokens -= 1.0;
        } else {
            wait = (int)((1.0 - r->tokens) / rate) + 1;
        }
    }
    pthread_mutex_unlock(&a->rlock);
    return wait;
}

/* The HMAC key of ids: api.id.key, else the explicit s3.secret.key (never
 * temporary credentials, which change; api_validate makes sure one is set). */
static const char *id_key(const api_t *a)
{
    return *a->cfg->api_id_key ? a->cfg->api_id_key : a->cfg->s3_secret_key;
}

/* "YYYYMMDD-RANDOM16HEX-TAG8HEX" for tenant at time t. */
static int make_id(const api_t *a, const char *tenant, time_t t, char *out, size_t out_size)
{
    unsigned char rnd[8];
    struct tm tm;
    char base[64];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1 || !gmtime_r(&t, &tm))
        return -1;
    static const char hexd[] = "0123456789abcdef";
    size_t n = strftime(base, sizeof(base), "%Y%m%d-", &tm);
    if (n != 9)
        return -1;
    for (int i = 0; i < 8; i++) {
        base[n++] = hexd[rnd[i] >> 4];
        base[n++] = hexd[rnd[i] & 15];
    }
    base[n] = '\0';
    unsigned char mac[32];
    unsigned int maclen = 0;
    char msg[256];
    int ml = snprintf(msg, sizeof(msg), "imgsink api id\n%s\n%s", tenant, base);
    const char *secret = id_key(a);
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)ml, mac,
              &maclen))
        return -1;
    if (out_size < n + 10)
        return -1;
    memcpy(out, base, n);
    out[n++] = '-';
    for (int i = 0; i < 4; i++) {
        out[n++] = hexd[mac[i] >> 4];
        out[n++] = hexd[mac[i] & 15];
    }
    out[n] = '\0';
    return 0;
}

/* 0 when id was issued to tenant (right shape and tag); *day_ms gets the
 * midnight (UTC) of its date. */
static int check_id(const api_t *a, const char *tenant, const char *id, int64_t *day_ms)
{
    /* 8 digits, '-', 16 hex, '-', 8 hex */
    if (strlen(id) != 34 || id[8] != '-' || id[25] != '-')
        return -1;
    for (int i = 0; i < 34; i++) {
        if (i == 8 || i == 25)
            continue;
        if (i < 8 ? (id[i] < '0' || id[i] > '9')
                  : (hexval(id[i]) < 0 || (id[i] >= 'A' && id[i] <= 'F')))
            return -1;
    }
    unsigned char mac[32];
    unsigned int maclen = 0;
    char msg[256], tag[9];
    int ml = snprintf(msg, sizeof(msg), "imgsink api id\n%s\n%.25s", tenant, id);
    const char *secret = id_key(a);
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)ml, mac,
              &maclen))
        return -1;
    snprintf(tag, sizeof(tag), "%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3]);
    if (CRYPTO_memcmp(tag, id + 26, 8))
        return -1;
    struct tm tm = {0};
    tm.tm_year =
        (id[0] - '0') * 1000 + (id[1] - '0') * 100 + (id[2] - '0') * 10 + (id[3] - '0') - 1900;
    tm.tm_mon = (id[4] - '0') * 10 + (id[5] - '0') - 1;
    tm.tm_mday = (id[6] - '0') * 10 + (id[7] - '0');
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *day_ms = (int64_t)t * 1000;
    return 0;
}

/* ---------------------------------------------------------------- replies */

static enum MHD_Result reply_json(api_t *a, struct MHD_Connection *conn, api_req_t *rq,
                                  unsigned int status, json_t *body, int retry_after)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    text[len] = '\0';
    char *withnl = realloc(text, len + 2);
    if (!withnl) {
        free(text);
        return MHD_NO;
    }
    withnl[len] = '\n';
    withnl[len + 1] = '\0';
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len + 1, withnl, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(withnl);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    if (rq) {
        rq->status = status;
        rq->replied = 1;
    }
    atomic_fetch_add(&a->n_status[status / 100 < 6 ? status / 100 : 0], 1);
    return ret;
}

static enum MHD_Result reply_err(api_t *a, struct MHD_Connection *conn, api_req_t *rq,
                                 unsigned int status, const char *code, const char *message)
{
    return reply_json(a, conn, rq, status,
                      json_pack("{s:s, s:s}", "code", code, "message", message), 0);
}

static void rfc3339(time_t t, char *out, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Signs with cr, the current snapshot of the chain (is_creds_get): a
 * temporary set puts its session token in X-Amz-Security-Token. */
static is_presign_t presigner(const api_t *a, const char *endpoint, const char *bucket,
                              const is_creds_t *cr)
{
    const is_config_t *c = a->cfg;
    return (is_presign_t){endpoint,       c->s3_region,      bucket,          cr->access_key,
                          cr->secret_key, cr->session_token, c->s3_path_style};
}

const char *is_api_raw_bucket(const is_config_t *cfg)
{
    return cfg->api_raw_bucket && *cfg->api_raw_bucket ? cfg->api_raw_bucket : cfg->s3_bucket;
}

static const char *public_endpoint(const api_t *a)
{
    return *a->cfg->api_public_endpoint ? a->cfg->api_public_endpoint : a->cfg->s3_endpoint;
}

/* ------------------------------------------------------------------ routes */

/* POST /v1/uploads */
static enum MHD_Result route_uploads(api_t *a, struct MHD_Connection *conn, api_req_t *rq)
{
    json_error_t jerr;
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, JSON_REJECT_DUPLICATES, &jerr);
    const char *ct = NULL, *filename = NULL;
    json_int_t size = -1;
    char msg[512], id[64], key[1024], len_s[32], errstr[512], expires[32];
    enum MHD_Result ret;

    if (!in || json_unpack_ex(in, &jerr, 0, "{s:s, s:I, s?s}", "content_type", &ct, "size", &size,
                              "filename", &filename)) {
        snprintf(msg, sizeof(msg),
                 "expected a JSON object {\"content_type\": string, \"size\": integer, "
                 "\"filename\": string (optional)}: %s",
                 jerr.text);
        json_decref(in);
        return reply_err(a, conn, rq, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
    }
    const char *fmt = is_api_format_of(ct);
    if (!fmt || !format_allowed(a->cfg->limits_formats, fmt)) {
        snprintf(msg, sizeof(msg), "content_type %.100s is not accepted (formats: %s)", ct,
                 a->cfg->limits_formats);
        json_decref(in);
        return reply_err(a, conn, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                         msg);
    }
    if (size < 1) {
        json_decref(in);
        return reply_err(a, conn, rq, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "size must be a positive number of bytes");
    }
    if (size > a->cfg->limits_max_input_bytes) {
        snprintf(msg, sizeof(msg), "size %lld exceeds the limit of %lld bytes", (long long)size,
                 (long long)a->cfg->limits_max_input_bytes);
        json_decref(in);
        return reply_err(a, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (make_id(a, rq->tenant, now, id, sizeof(id)) ||
        snprintf(key, sizeof(key), "%s%s/%04d/%02d/%02d/%s", a->cfg->api_raw_prefix, rq->tenant,
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, id) >= (int)sizeof(key)) {
        json_decref(in);
        return reply_err(a, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "cannot make an id");
    }
    snprintf(len_s, sizeof(len_s), "%lld", (long long)size);
    char ctl[128];
    snprintf(ctl, sizeof(ctl), "%s", ct);
    for (char *p = ctl; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    is_sigv4_header_t hdrs[] = {{"content-length", len_s}, {"content-type", ctl}};
    is_creds_t *cr = is_creds_get(a->creds);
    is_presign_t ps = presigner(a, public_endpoint(a), is_api_raw_bucket(a->cfg), cr);
    long exp_s = (long)a->cfg->api_upload_expires_s;
    char *url = is_presign_url(&ps, "PUT", key, exp_s, now, hdrs, 2, errstr, sizeof(errstr));
    is_creds_release(cr);
    json_decref(in);
    if (!url) {
        IS_ERR("api", NULL, "%s", errstr);
        return reply_err(a, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "cannot sign the upload");
    }
    rfc3339(now + exp_s, expires, sizeof(expires));
    atomic_fetch_add(&a->n_uploads, 1);
    ret = reply_json(a, conn, rq, MHD_HTTP_CREATED,
                     json_pack("{s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:s}", "id", id, "upload",
                               "method", "PUT", "url", url, "headers", "Content-Type", ctl,
                               "Content-Length", len_s, "expires_at", expires),
                     0);
    free(url);
    return ret;
}

typedef struct api_dr {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    rd_kafka_resp_err_t err;
} api_dr_t;

/* The poller thread. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    api_dr_t *dr = rkm->_private;
    (void)rk;
    (void)opaque;
    pthread_mutex_lock(&dr->lock);
    dr->err = rkm->err;
    dr->done = 1;
    pthread_cond_signal(&dr->cond);
    pthread_mutex_unlock(&dr->lock);
}

static void *poller_main(void *arg)
{
    api_t *a = arg;
    while (!atomic_load(&a->stop))
        rd_kafka_poll(a->rk, 100);
    return NULL;
}

/* POST /v1/images: produce, wait for acks=all, answer 202. */
static enum MHD_Result route_direct(api_t *a, struct MHD_Connection *conn, api_req_t *rq)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    char ctl[128], id[64], msg[512], errstr[512];
    void *val = NULL;
    size_t vlen = 0;

    snprintf(ctl, sizeof(ctl), "%s", ct ? ct : "");
    ctl[strcspn(ctl, "; ")] = '\0';
    const char *fmt = is_api_format_of(ctl);
    if (!fmt || !format_allowed(a->cfg->limits_formats, fmt)) {
        snprintf(msg, sizeof(msg), "Content-Type %.100s is not accepted (formats: %s)", ctl,
                 a->cfg->limits_formats);
        return reply_err(a, conn, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                         msg);
    }
    for (char *p = ctl; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    if (!rq->len)
        return reply_err(a, conn, rq, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "the body must be the image");
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    if (make_id(a, rq->tenant, (time_t)(now_ms / 1000), id, sizeof(id)))
        return reply_err(a, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "cannot make an id");
    is_record_t rec = {0};
    rec.id = id;
    rec.tenant = rq->tenant;
    rec.source = "api";
    rec.uploaded_at_ms = now_ms;
    rec.content_type = ctl;
    rec.filename = "upload";
    rec.retention_days = atoi(a->cfg->retention_classes);
    rec.payload = (unsigned char *)rq->body;
    rec.payload_len = rq->len;
    rec.schema_id = -1;
    if (is_envelope_encode(&rec, -1, &val, &vlen, errstr, sizeof(errstr))) {
        IS_ERR("api", NULL, "encode: %s", errstr);
        return reply_err(a, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                         "cannot encode the record");
    }
    api_dr_t dr = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    rd_kafka_resp_err_t err =
        rd_kafka_producev(a->rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_KEY(id, strlen(id)),
                          RD_KAFKA_V_VALUE(val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_OPAQUE(&dr), RD_KAFKA_V_END);
    free(val);
    if (!err) {
        /* message.timeout.ms bounds this: a delivery report always comes. */
        pthread_mutex_lock(&dr.lock);
        while (!dr.done)
            pthread_cond_wait(&dr.cond, &dr.lock);
        err = dr.err;
        pthread_mutex_unlock(&dr.lock);
    }
    if (err) {
        atomic_fetch_add(&a->n_produce_failed, 1);
        IS_WARN("api", json_pack("{s:s, s:s}", "tenant", rq->tenant, "id", id),
                "the record was not written: %s", rd_kafka_err2str(err));
        return reply_err(a, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                         "the image could not be queued; retry later");
    }
    atomic_fetch_add(&a->n_produced, 1);
    char status_url[128];
    snprintf(status_url, sizeof(status_url), "/v1/images/%s", id);
    return reply_json(
        a, conn, rq, MHD_HTTP_ACCEPTED,
        json_pack("{s:s, s:s, s:s}", "id", id, "status", "pending", "status_url", status_url), 0);
}

static const char *ext_of(const char *format)
{
    return !strcmp(format, "jpeg") ? "jpg" : format;
}

/* GET /v1/images/{id} */
static enum MHD_Result route_status(api_t *a, struct MHD_Connection *conn, api_req_t *rq,
                                    const char *id)
{
    int64_t day_ms;
    char key[1024], errstr[512];
    void *body = NULL;
    size_t len = 0;
    enum MHD_Result ret;

    if (check_id(a, rq->tenant, id, &day_ms))
        return reply_err(a, conn, rq, MHD_HTTP_NOT_FOUND, "not_found", "no such image");
    const is_config_t *c = a->cfg;
    is_s3_conf_t sc = is_s3_conf_of(c, a->creds);
    is_s3_t *s3 = is_s3_new(&sc, errstr, sizeof(errstr));
    if (!s3)
        return reply_err(a, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "store client");
    if (is_keys_object(c->s3_prefix, rq->tenant, day_ms, id, "metadata", "json", key, sizeof(key),
                       errstr, sizeof(errstr))) {
        is_s3_destroy(s3);
        return reply_err(a, conn, rq, MHD_HTTP_NOT_FOUND, "not_found", "no such image");
    }
    is_s3_result_t r =
        is_s3_get(s3, NULL, key, NULL, -1, API_META_MAX, &body, &len, errstr, sizeof(errstr));
    if (r == IS_S3_OK) {
        json_t *meta = json_loadb(body, len, 0, NULL);
        json_t *rends = json_object();
        is_creds_t *cr = is_creds_get(a->creds);
        is_presign_t ps = presigner(a, public_endpoint(a), a->cfg->s3_bucket, cr);
        time_t now = time(NULL);
        for (int i = 0; i < c->nrenditions; i++) {
            char rk[1024];
            const is_rendition_t *rd = &c->renditions[i];
            if (is_keys_object(c->s3_prefix, rq->tenant, day_ms, id, rd->name, ext_of(rd->format),
                               rk, sizeof(rk), errstr, sizeof(errstr)))
                continue;
            char *url = is_presign_url(&ps, "GET", rk, (long)c->api_download_expires_s, now, NULL,
                                       0, errstr, sizeof(errstr));
            if (url)
                json_object_set_new(rends, rd->name, json_pack("{s:s}", "url", url));
            free(url);
        }
        is_creds_release(cr);
        char expires[32];
        rfc3339(now + (time_t)c->api_download_expires_s, expires, sizeof(expires));
        json_t *out = json_pack("{s:s, s:s, s:o, s:s}", "id", id, "status", "processed",
                                "renditions", rends, "expires_at", expires);
        if (out && meta)
            json_object_set_new(out, "metadata", meta);
        else
            json_decref(meta);
        free(body);
        is_s3_destroy(s3);
        return reply_json(a, conn, rq, MHD_HTTP_OK, out, 0);
    }
    if (r == IS_S3_TRANSIENT || is_s3_last_status(s3) != 404)
        goto unavailable;
    is_keys_object(c->s3_prefix, rq->tenant, day_ms, id, "error", "json", key, sizeof(key), errstr,
                   sizeof(errstr));
    r = is_s3_get(s3, NULL, key, NULL, -1, API_META_MAX, &body, &len, errstr, sizeof(errstr));
    if (r == IS_S3_OK) {
        json_t *doc = json_loadb(body, len, 0, NULL);
        const char *reason = NULL, *klass = NULL;
        json_unpack(doc, "{s?s, s?s}", "reason", &reason, "class", &klass);
        ret = reply_json(a, conn, rq, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:s, s:s}", "id", id, "status", "failed", "reason",
                                   reason ? reason : "unknown", "class", klass ? klass : ""),
                         0);
        json_decref(doc);
        free(body);
        is_s3_destroy(s3);
        return ret;
    }
    if (r == IS_S3_TRANSIENT || is_s3_last_status(s3) != 404)
        goto unavailable;
    is_s3_destroy(s3);
    return reply_json(a, conn, rq, MHD_HTTP_OK,
                      json_pack("{s:s, s:s}", "id", id, "status", "pending"), 0);
unavailable:
    IS_WARN("api", json_pack("{s:s}", "id", id), "status lookup: %s", errstr);
    is_s3_destroy(s3);
    return reply_err(a, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                     "the store did not answer; retry later");
}

static char *metrics_text(api_t *a, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp)
        return NULL;
    fprintf(fp, "# HELP imgsink_api_responses_total Responses of imgsink api by status class.\n"
                "# TYPE imgsink_api_responses_total counter\n");
    for (int i = 1; i < 6; i++)
        fprintf(fp, "imgsink_api_responses_total{class=\"%dxx\"} %lld\n", i,
                (long long)atomic_load(&a->n_status[i]));
    pthread_rwlock_rdlock(&a->klock);
    int nkeys = a->nkeys;
    pthread_rwlock_unlock(&a->klock);
    fprintf(fp,
            "# HELP imgsink_api_rate_limited_total Requests refused with 429.\n"
            "# TYPE imgsink_api_rate_limited_total counter\nimgsink_api_rate_limited_total %lld\n"
            "# HELP imgsink_api_uploads_total Presigned uploads issued.\n"
            "# TYPE imgsink_api_uploads_total counter\nimgsink_api_uploads_total %lld\n"
            "# HELP imgsink_api_records_total Records of POST /v1/images acknowledged by Kafka.\n"
            "# TYPE imgsink_api_records_total counter\nimgsink_api_records_total %lld\n"
            "# HELP imgsink_api_records_failed_total Records of POST /v1/images not written.\n"
            "# TYPE imgsink_api_records_failed_total counter\n"
            "imgsink_api_records_failed_total %lld\n"
            "# HELP imgsink_api_keys API keys loaded.\n"
            "# TYPE imgsink_api_keys gauge\nimgsink_api_keys %d\n"
            "# HELP imgsink_api_key_reloads_total Loads of api.keys.file.\n"
            "# TYPE imgsink_api_key_reloads_total counter\nimgsink_api_key_reloads_total %lld\n"
            "# HELP imgsink_api_key_reload_failures_total Loads of api.keys.file refused.\n"
            "# TYPE imgsink_api_key_reload_failures_total counter\n"
            "imgsink_api_key_reload_failures_total %lld\n",
            (long long)atomic_load(&a->n_limited), (long long)atomic_load(&a->n_uploads),
            (long long)atomic_load(&a->n_produced), (long long)atomic_load(&a->n_produce_failed),
            nkeys, (long long)atomic_load(&a->n_reloads),
            (long long)atomic_load(&a->n_reload_fail));
    if (a->creds)
        is_creds_metrics_write(a->creds, fp);
    if (fclose(fp)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static enum MHD_Result reply_text(api_t *a, struct MHD_Connection *conn, api_req_t *rq,
                                  unsigned int status, char *text, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    rq->status = status;
    rq->replied = 1;
    atomic_fetch_add(&a->n_status[status / 100], 1);
    return ret;
}

/* ------------------------------------------------------------------ server */

/* Ready: keys loaded, store credentials usable (they refresh), and the
 * producer has no Kafka error outstanding (wrong SASL password, unknown
 * CA, brokers down). why gets the first reason, one line ending in '\n'.
 * libmicrohttpd's threads. */
static int api_ready(api_t *a, char *why, size_t why_size)
{
    char cwhy[1400];
    int64_t failing_ms = 0;
    pthread_rwlock_rdlock(&a->klock);
    int n = a->nkeys;
    pthread_rwlock_unlock(&a->klock);
    if (n <= 0) {
        snprintf(why, why_size, "no API keys loaded\n");
        return 0;
    }
    if (!is_creds_healthy(a->creds, cwhy, sizeof(cwhy), &failing_ms)) {
        snprintf(why, why_size, "store credentials: %s\n", cwhy);
        return 0;
    }
    pthread_mutex_lock(&a->klock_err);
    int kbad = a->kerr_at != 0;
    if (kbad)
        snprintf(why, why_size, "kafka producer: %s (%lld s ago)\n", a->kerr,
                 (long long)((is_now_ms() - a->kerr_at) / 1000));
    pthread_mutex_unlock(&a->klock_err);
    return !kbad;
}

/* The producer's error callback (librdkafka's threads, via the poller):
 * logged, explained (is_kafka_explain) and kept for /readyz. librdkafka's
 * reasons hold no secret (a wrong password is "invalid credentials"). */
static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    api_t *a = opaque;
    char line[640];
    (void)rk;
    is_kafka_explain(reason, line, sizeof(line));
    if (err == RD_KAFKA_RESP_ERR__FATAL || is_kafka_needs_operator(err, line))
        IS_ERR("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "producer: %s", line);
    else
        IS_WARN("kafka", json_pack("{s:s}", "error", rd_kafka_err2name(err)), "producer: %s", line);
    pthread_mutex_lock(&a->klock_err);
    snprintf(a->kerr, sizeof(a->kerr), "%s: %s", rd_kafka_err2name(err), line);
    a->kerr_at = is_now_ms();
    pthread_mutex_unlock(&a->klock_err);
}

/* Clears the producer's error once a metadata request succeeds again (the
 * brokers answer and accept our credentials). Main thread; blocks up to
 * 3 s, so only while an error is outstanding. */
static void kafka_recheck(api_t *a)
{
    pthread_mutex_lock(&a->klock_err);
    int64_t at = a->kerr_at;
    pthread_mutex_unlock(&a->klock_err);
    const struct rd_kafka_metadata *md = NULL;
    if (!at || rd_kafka_metadata(a->rk, 0, NULL, &md, 3000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_metadata_destroy(md);
    pthread_mutex_lock(&a->klock_err);
    if (a->kerr_at == at) {
        a->kerr_at = 0;
        a->kerr[0] = '\0';
        IS_INFO("kafka", NULL, "producer: the brokers answer again");
    }
    pthread_mutex_unlock(&a->klock_err);
}

/* One callback of one request. libmicrohttpd's threads. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    api_t *a = cls;
    api_req_t *rq = *con_cls;
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    (void)version;

    if (!rq) {
        if (!(rq = calloc(1, sizeof(*rq))))
            return MHD_NO;
        *con_cls = rq;
        rq->start_ms = is_now_ms();
        snprintf(rq->method, sizeof(rq->method), "%s", method);
        snprintf(rq->path, sizeof(rq->path), "%s", url);
        if (is_get && !strcmp(url, "/healthz"))
            return reply_text(a, conn, rq, MHD_HTTP_OK, strdup("ok\n"), 3);
        if (is_get && !strcmp(url, "/readyz")) {
            char why[1600];
            if (api_ready(a, why, sizeof(why)))
                return reply_text(a, conn, rq, MHD_HTTP_OK, strdup("ready\n"), 6);
            return reply_text(a, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, strdup(why), strlen(why));
        }
        if (is_get && !strcmp(url, "/metrics")) {
            size_t len = 0;
            char *text = metrics_text(a, &len);
            if (!text)
                return MHD_NO;
            return reply_text(a, conn, rq, MHD_HTTP_OK, text, len);
        }
        int known = (is_post && (!strcmp(url, "/v1/uploads") || !strcmp(url, "/v1/images"))) ||
                    (is_get && !strncmp(url, "/v1/images/", 11));
        if (!known) {
            if (!strcmp(url, "/v1/uploads") || !strncmp(url, "/v1/images", 10))
                return reply_err(a, conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                 "method not allowed here");
            return reply_err(a, conn, rq, MHD_HTTP_NOT_FOUND, "not_found",
                             "no such endpoint: see /v1/uploads, /v1/images");
        }
        if (authenticate(a, conn, rq->tenant, sizeof(rq->tenant)))
            return reply_err(a, conn, rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                             "a valid API key is required: Authorization: Bearer KEY");
        int wait = rate_take(a, rq->tenant);
        if (wait > 0) {
            atomic_fetch_add(&a->n_limited, 1);
            return reply_json(a, conn, rq, MHD_HTTP_TOO_MANY_REQUESTS,
                              json_pack("{s:s, s:s}", "code", "rate_limited", "message",
                                        "too many requests for this tenant; see Retry-After"),
                              wait);
        }
        if (is_post) {
            int64_t lim = a->cfg->api_max_body_bytes;
            if (!strcmp(url, "/v1/images")) {
                lim = a->cfg->api_max_direct_bytes;
                if (lim > a->cfg->limits_max_input_bytes)
                    lim = a->cfg->limits_max_input_bytes;
            }
            rq->limit = (size_t)lim;
            const char *cl =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > (unsigned long long)lim) {
                char msg[160];
                snprintf(msg, sizeof(msg), "the body exceeds the limit of %lld bytes",
                         (long long)lim);
                return reply_err(a, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
            }
        }
        return MHD_YES;
    }
    if (rq->replied) {
        *upload_data_size = 0; /* refused early: discard what still comes */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_big || rq->len + n > rq->limit) {
            rq->too_big = 1;
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 16384;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *nb = realloc(rq->body, cap);
            if (!nb)
                return MHD_NO;
            rq->body = nb;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        rq->body[rq->len] = '\0';
        return MHD_YES;
    }
    if (rq->too_big) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the body exceeds the limit of %zu bytes", rq->limit);
        return reply_err(a, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
    }
    if (is_post && !strcmp(url, "/v1/uploads"))
        return route_uploads(a, conn, rq);
    if (is_post)
        return route_direct(a, conn, rq);
    return route_status(a, conn, rq, url + 11);
}

/* Access log and cleanup, once per request. libmicrohttpd's threads. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    api_req_t *rq = *con_cls;
    (void)cls;
    (void)conn;
    if (!rq)
        return;
    IS_INFO("access",
            json_pack("{s:s, s:s, s:i, s:s, s:I, s:I, s:b}", "method", rq->method, "path", rq->path,
                      "status", (int)rq->status, "tenant", rq->tenant, "bytes_in",
                      (json_int_t)rq->len, "ms", (json_int_t)(is_now_ms() - rq->start_ms),
                      "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK),
            "request");
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_stop(int sig)
{
    (void)sig;
    api_stop_flag = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    api_hup_flag = 1;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: imgsink api [-c FILE] [-X key=value]...\n"
                "\n"
                "Serves the upload API on api.listen until SIGTERM/SIGINT; SIGHUP reloads\n"
                "api.keys.file (it is also reloaded when it changes). Keys: api.* (imgsink help\n"
                "config), s3.* for the store, the first of input.topics for POST /v1/images.\n");
}

/* Start-up checks of what `imgsink api` needs; errstr names key and value. */
static int api_validate(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    if (is_config_validate(cfg, errstr, errstr_size))
        return -1;
    if (!*cfg->api_keys_file) {
        snprintf(errstr, errstr_size,
                 "api.keys.file: required by imgsink api, but not set (a file of 'TENANT "
                 "SHA256HEX' lines)");
        return -1;
    }
    if (!*cfg->api_raw_prefix || cfg->api_raw_prefix[strlen(cfg->api_raw_prefix) - 1] != '/' ||
        cfg->api_raw_prefix[0] == '/' || strstr(cfg->api_raw_prefix, "//")) {
        snprintf(errstr, errstr_size,
                 "api.raw.prefix=%s: expected a key prefix ending with '/' such as raw/ (no "
                 "leading '/', no empty segment)",
                 cfg->api_raw_prefix);
        return -1;
    }
    const char *rb = cfg->api_raw_bucket;
    size_t rbl = strlen(rb);
    if (*rb &&
        (rbl < 3 || rbl > 63 || strspn(rb, "abcdefghijklmnopqrstuvwxyz0123456789.-") != rbl ||
         !isalnum((unsigned char)rb[0]) || !isalnum((unsigned char)rb[rbl - 1]))) {
        snprintf(errstr, errstr_size,
                 "api.raw.bucket=%.80s: expected an S3 bucket name (3 to 63 of a-z 0-9 . -, "
                 "starting and ending with a letter or digit), or empty for s3.bucket",
                 rb);
        return -1;
    }
    if (!strcmp(is_api_raw_bucket(cfg), cfg->s3_bucket) &&
        (!strncmp(cfg->api_raw_prefix, cfg->s3_prefix, strlen(cfg->s3_prefix)) ||
         !strncmp(cfg->s3_prefix, cfg->api_raw_prefix, strlen(cfg->api_raw_prefix)))) {
        snprintf(errstr, errstr_size,
                 "api.raw.prefix=%s: expected a prefix apart from s3.prefix=%s (uploads must not "
                 "land among the outputs)",
                 cfg->api_raw_prefix, cfg->s3_prefix);
        return -1;
    }
    if (!*cfg->api_id_key && !*cfg->s3_secret_key) {
        snprintf(errstr, errstr_size,
                 "api.id.key: required by imgsink api when s3.secret.key is empty (the store "
                 "credentials come from the chain and change; ids need a secret that does not)");
        return -1;
    }
    const char *ep = cfg->api_public_endpoint;
    if (*ep && strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) {
        snprintf(errstr, errstr_size,
                 "api.public.endpoint=%s: expected an http:// or https:// URL (or empty for "
                 "s3.endpoint)",
                 ep);
        return -1;
    }
    return 0;
}

int is_api_main(is_config_t *cfg, int argc, char **argv)
{
    char errstr[1024];
    api_t a;
    int rc = 1, family = 0;
    struct sigaction sa;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "imgsink api: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    if (api_validate(cfg, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink: configuration error: %s\n", errstr);
        return 2;
    }
    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    pthread_rwlock_init(&a.klock, NULL);
    pthread_mutex_init(&a.rlock, NULL);
    pthread_mutex_init(&a.klock_err, NULL);
    snprintf(a.topic, sizeof(a.topic), "%.*s", (int)strcspn(cfg->input_topics, ","),
             cfg->input_topics);
    if (reload_keys(&a, 1)) {
        is_log_printf(stderr, "imgsink: api.keys.file=%s: cannot be loaded (see the log)\n",
                      cfg->api_keys_file);
        rc = 2;
        goto done;
    }

    /* The store's credentials, from the same chain as the worker's: a
     * source that is configured but gives nothing usable stops start-up. */
    if (!(a.creds = is_s3_creds_of(cfg, errstr, sizeof(errstr)))) {
        IS_ERR("creds", NULL, "%s", errstr);
        goto done;
    }
    IS_INFO("creds", json_pack("{s:s}", "source", is_creds_source(a.creds)),
            "store credentials from %s", is_creds_source(a.creds));
    if (is_creds_start(a.creds, errstr, sizeof(errstr))) {
        IS_ERR("creds", NULL, "%s", errstr);
        goto done;
    }

    rd_kafka_conf_t *conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, errstr, sizeof(errstr));
    if (!conf || is_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
        is_kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr)) ||
        (!is_config_kafka_get(cfg, "message.max.bytes") &&
         is_kafka_conf_set(conf, "message.max.bytes", "67108864", errstr, sizeof(errstr))) ||
        (!is_config_kafka_get(cfg, "message.timeout.ms") &&
         is_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, sizeof(errstr)))) {
        is_log_printf(stderr, "imgsink: configuration error: %s\n", errstr);
        if (conf)
            rd_kafka_conf_destroy(conf);
        rc = 2;
        goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_opaque(conf, &a);
    if (!(a.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        IS_ERR("api", NULL, "producer: %s", errstr);
        goto done;
    }
    if (pthread_create(&a.poller, NULL, poller_main, &a)) {
        IS_ERR("api", NULL, "cannot start the producer's thread");
        goto done;
    }

    int fd = is_http_listen("api.listen", cfg->api_listen, &family, a.address, sizeof(a.address),
                            errstr, sizeof(errstr));
    if (fd < 0) {
        IS_ERR("api", NULL, "%s", errstr);
        goto stop_poller;
    }
    /* A thread per connection: a direct post waits for Kafka's acks and a
     * status lookup for the store, and neither may hold up /healthz or
     * other clients. API_MAX_CONNECTIONS bounds the threads (and, with
     * api.max.direct.bytes, the memory held by bodies). */
    a.mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                 MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0),
                             0, NULL, NULL, handle, &a, MHD_OPTION_LISTEN_SOCKET, fd,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, &a,
                             MHD_OPTION_CONNECTION_TIMEOUT, API_IDLE_TIMEOUT_S,
                             MHD_OPTION_CONNECTION_LIMIT, API_MAX_CONNECTIONS, MHD_OPTION_END);
    if (!a.mhd) {
        IS_ERR("api", NULL, "api.listen=%s: libmicrohttpd could not start", cfg->api_listen);
        close(fd);
        goto stop_poller;
    }
    IS_INFO("api",
            json_pack("{s:s, s:s, s:s, s:s}", "address", a.address, "topic", a.topic, "raw_bucket",
                      is_api_raw_bucket(cfg), "raw_prefix", cfg->api_raw_prefix),
            "imgsink api listening on %s", a.address);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The main thread reloads the keys: on SIGHUP, and when the file
     * changes (checked every second; a mounted Secret is replaced by a
     * symlink swap, which stat sees). */
    int64_t last_check = is_now_ms();
    while (!api_stop_flag) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (api_hup_flag) {
            api_hup_flag = 0;
            reload_keys(&a, 1);
            last_check = is_now_ms();
        } else if (is_now_ms() - last_check >= 1000) {
            reload_keys(&a, 0);
            kafka_recheck(&a);
            last_check = is_now_ms();
        }
    }
    IS_INFO("api", NULL, "stopping");
    MHD_stop_daemon(a.mhd);
    rc = 0;
stop_poller:
    rd_kafka_flush(a.rk, 10000);
    atomic_store(&a.stop, 1);
    pthread_join(a.poller, NULL);
done:
    if (a.rk)
        rd_kafka_destroy(a.rk);
    is_creds_provider_destroy(a.creds); /* after the HTTP threads and the store clients */
    free_keys(a.tenants, a.nkeys, a.hashes);
    free(a.rates);
    pthread_rwlock_destroy(&a.klock);
    pthread_mutex_destroy(&a.rlock);
    pthread_mutex_destroy(&a.klock_err);
    return rc;
}
