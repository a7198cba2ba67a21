/*
 * registry: Confluent-compatible Schema Registry client. See registry.h.
 */
#include "registry.h"

#include <curl/curl.h>
#include <jansson.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_CTYPE "application/vnd.schemaregistry.v1+json"

struct registry_entry {
    int id;
    avro_schema_t schema;
};

struct is_registry {
    char *url; /* without a trailing '/' */
    char *userinfo, *ca_file;
    long timeout_ms;
    pthread_mutex_t lock;
    struct registry_entry cache[IS_REGISTRY_CACHE_MAX];
    size_t ncache;
};

/* A response body, capped at IS_REGISTRY_MAX_RESPONSE. */
struct registry_buf {
    char *data;
    size_t len;
    int too_large;
};

static size_t registry_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct registry_buf *b = ud;
    size_t n = size * nmemb;
    char *np;

    if (n > IS_REGISTRY_MAX_RESPONSE - b->len) {
        b->too_large = 1;
        return 0; /* aborts the transfer */
    }
    if (!(np = realloc(b->data, b->len + n + 1)))
        return 0;
    b->data = np;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

is_registry_t *is_registry_new(const char *url, const char *userinfo, const char *ca_file,
                               long timeout_ms, char *errstr, size_t errstr_size)
{
    is_registry_t *reg;
    size_t n;

    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        snprintf(errstr, errstr_size, "schema.registry.url=%s: expected an http:// or https:// URL",
                 url ? url : "");
        return NULL;
    }
    if (userinfo && *userinfo && !strchr(userinfo, ':')) {
        snprintf(errstr, errstr_size,
                 "schema.registry.basic.auth.user.info: expected USER:PASSWORD (no ':' found)");
        return NULL;
    }
    if (!(reg = calloc(1, sizeof(*reg))) || !(reg->url = strdup(url)) ||
        !(reg->userinfo = strdup(userinfo ? userinfo : "")) ||
        !(reg->ca_file = strdup(ca_file ? ca_file : ""))) {
        snprintf(errstr, errstr_size, "out of memory");
        is_registry_destroy(reg);
        return NULL;
    }
    n = strlen(reg->url);
    while (n && reg->url[n - 1] == '/')
        reg->url[--n] = '\0';
    reg->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void is_registry_destroy(is_registry_t *reg)
{
    if (!reg)
        return;
    if (reg->url && reg->userinfo && reg->ca_file) /* fully built: the mutex exists */
        pthread_mutex_destroy(&reg->lock);
    for (size_t i = 0; i < reg->ncache; i++)
        avro_schema_decref(reg->cache[i].schema);
    free(reg->url);
    free(reg->userinfo);
    free(reg->ca_file);
    free(reg);
}

/* One request. Returns the HTTP status (>0) with the body in *b, or -1
 * with errstr (connection, TLS, timeout, response too large). */
static long registry_request(is_registry_t *reg, const char *url, const char *post,
                             struct registry_buf *b, char *errstr, size_t errstr_size)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char curlerr[CURL_ERROR_SIZE] = "";
    long status = -1;
    CURLcode rc;

    if (!c) {
        snprintf(errstr, errstr_size, "curl_easy_init failed");
        return -1;
    }
    hdrs = curl_slist_append(hdrs, "Accept: " REGISTRY_CTYPE ", application/json");
    if (post)
        hdrs = curl_slist_append(hdrs, "Content-Type: " REGISTRY_CTYPE);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, registry_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
    if (*reg->userinfo) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, reg->userinfo);
    }
    if (*reg->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, reg->ca_file);
    if (post)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    rc = curl_easy_perform(c);
    if (b->too_large)
        snprintf(errstr, errstr_size, "registry response exceeds %zu bytes",
                 IS_REGISTRY_MAX_RESPONSE);
    else if (rc != CURLE_OK)
        snprintf(errstr, errstr_size, "registry unreachable: %s",
                 *curlerr ? curlerr : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return status;
}

/* The registry's error message and code from an error body, for errstr. */
static void registry_error(const struct registry_buf *b, long status, int *codep, char *errstr,
                           size_t errstr_size)
{
    json_t *j = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    json_t *code = json_object_get(j, "error_code"), *msg = json_object_get(j, "message");

    *codep = json_is_integer(code) ? (int)json_integer_value(code) : 0;
    snprintf(errstr, errstr_size, "registry answered %ld (error_code %d): %.300s", status, *codep,
             json_is_string(msg) ? json_string_value(msg) : "no message");
    json_decref(j);
}

static avro_schema_t cache_get(is_registry_t *reg, int id)
{
    avro_schema_t s = NULL;

    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->ncache; i++)
        if (reg->cache[i].id == id) {
            s = avro_schema_incref(reg->cache[i].schema);
            break;
        }
    pthread_mutex_unlock(&reg->lock);
    return s;
}

static void cache_put(is_registry_t *reg, int id, avro_schema_t s)
{
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->ncache; i++)
        if (reg->cache[i].id == id)
            goto out; /* another thread fetched it meanwhile */
    if (reg->ncache < IS_REGISTRY_CACHE_MAX)
        reg->cache[reg->ncache++] = (struct registry_entry){id, avro_schema_incref(s)};
out:
    pthread_mutex_unlock(&reg->lock);
}

int is_registry_schema(is_registry_t *reg, int id, avro_schema_t *schemap, char *errstr,
                       size_t errstr_size)
{
    struct registry_buf b = {0};
    char url[2048], why[512];
    json_t *j = NULL, *js, *jt;
    json_error_t jerr;
    avro_schema_t s = NULL;
    long status;
    int r = -1, code;

    *schemap = NULL;
    if ((*schemap = cache_get(reg, id)))
        return 0;
    snprintf(url, sizeof(url), "%s/schemas/ids/%d", reg->url, id);
    status = registry_request(reg, url, NULL, &b, why, sizeof(why));
    if (status < 0) {
        r = b.too_large ? 1 : -1;
        snprintf(errstr, errstr_size, "schema id %d: %s", id, why);
        goto done;
    }
    if (status == 404) {
        registry_error(&b, status, &code, why, sizeof(why));
        /* 40403 is "schema not found"; any other 404 (a wrong URL path,
         * a proxy) says nothing about the id: retried. */
        r = code == 40403 ? 1 : -1;
        snprintf(errstr, errstr_size, "schema id %d %s: %s", id,
                 r > 0 ? "not found in the registry" : "lookup failed", why);
        goto done;
    }
    if (status < 200 || status > 299) {
        registry_error(&b, status, &code, why, sizeof(why));
        snprintf(errstr, errstr_size, "schema id %d: lookup failed: %s", id, why);
        goto done;
    }
    /* 2xx: the registry's answer for this id; if it is unusable, so is
     * every record written with it. */
    r = 1;
    if (!b.data || !(j = json_loadb(b.data, b.len, 0, &jerr))) {
        snprintf(errstr, errstr_size, "schema id %d: registry response is not JSON: %.200s", id,
                 b.data ? jerr.text : "empty body");
        goto done;
    }
    jt = json_object_get(j, "schemaType");
    if (jt && !(json_is_string(jt) && !strcmp(json_string_value(jt), "AVRO"))) {
        snprintf(errstr, errstr_size, "schema id %d: schemaType %.40s is not AVRO", id,
                 json_is_string(jt) ? json_string_value(jt) : "(not a string)");
        goto done;
    }
    if (!json_is_string(js = json_object_get(j, "schema"))) {
        snprintf(errstr, errstr_size, "schema id %d: registry response has no \"schema\" string",
                 id);
        goto done;
    }
    if (avro_schema_from_json_length(json_string_value(js), json_string_length(js), &s)) {
        snprintf(errstr, errstr_size, "schema id %d: not a valid Avro schema: %.200s", id,
                 avro_strerror());
        s = NULL;
        goto done;
    }
    cache_put(reg, id, s);
    *schemap = s;
    s = NULL;
    r = 0;
done:
    if (s)
        avro_schema_decref(s);
    json_decref(j);
    free(b.data);
    return r;
}

int is_registry_register(is_registry_t *reg, const char *subject, const char *schema_json, int *idp,
                         char *errstr, size_t errstr_size)
{
    struct registry_buf b = {0};
    char url[2048], why[512];
    json_t *req = NULL, *j = NULL, *jid;
    char *body = NULL;
    long status;
    int r = -1, code;

    /* Subjects here are topic names plus "-value": Kafka's topic
     * charset, which needs no percent-encoding. */
    for (const char *p = subject; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p)) {
            snprintf(errstr, errstr_size, "subject %.200s: only [A-Za-z0-9._-] allowed", subject);
            return -1;
        }
    if (!(req = json_pack("{s:s}", "schema", schema_json)) ||
        !(body = json_dumps(req, JSON_COMPACT))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    snprintf(url, sizeof(url), "%s/subjects/%s/versions", reg->url, subject);
    status = registry_request(reg, url, body, &b, why, sizeof(why));
    if (status < 0) {
        snprintf(errstr, errstr_size, "register under %s: %s", subject, why);
        goto done;
    }
    if (status < 200 || status > 299) {
        registry_error(&b, status, &code, why, sizeof(why));
        snprintf(errstr, errstr_size, "register under %s: %s", subject, why);
        goto done;
    }
    if (!b.data || !(j = json_loadb(b.data, b.len, 0, NULL)) ||
        !json_is_integer(jid = json_object_get(j, "id")) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT_MAX) {
        snprintf(errstr, errstr_size,
                 "register under %s: registry answered %ld without an id in 0..%d: %.200s", subject,
                 status, INT_MAX, b.data ? b.data : "(empty)");
        goto done;
    }
    *idp = (int)json_integer_value(jid);
    r = 0;
done:
    free(body);
    json_decref(req);
    json_decref(j);
    free(b.data);
    return r;
}
