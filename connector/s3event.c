/*
 * s3event.c - S3 event notifications. See s3event.h.
 */
#include "s3event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "keys.h"

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

/* URL decoding of an event's key: %XX and '+' (a space). NULL on a bad
 * escape or a decoded NUL. */
static char *url_decode(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

void is_s3event_free(is_s3event_t *evs, int n)
{
    if (!evs)
        return;
    for (int i = 0; i < n; i++) {
        free(evs[i].event_name);
        free(evs[i].bucket);
        free(evs[i].key);
        free(evs[i].etag);
        free(evs[i].version_id);
        free(evs[i].content_type);
    }
    free(evs);
}

static char *dup_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int is_s3event_parse(const void *buf, size_t len, is_s3event_t **evsp, char *errstr,
                     size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    is_s3event_t *evs = NULL;
    int n = 0;

    *evsp = NULL;
    if (!root) {
        snprintf(errstr, errstr_size, "S3 event: not JSON: %s (at byte %d)", jerr.text,
                 jerr.position);
        return -1;
    }
    json_t *recs = json_object_get(root, "Records");
    if (!json_is_array(recs) || json_array_size(recs) == 0) {
        snprintf(errstr, errstr_size, "S3 event: Records: expected a non-empty array");
        goto fail;
    }
    if (json_array_size(recs) > IS_S3EVENT_MAX_RECORDS) {
        snprintf(errstr, errstr_size, "S3 event: Records: %zu records, at most %d",
                 json_array_size(recs), IS_S3EVENT_MAX_RECORDS);
        goto fail;
    }
    if (!(evs = calloc(json_array_size(recs), sizeof(*evs)))) {
        snprintf(errstr, errstr_size, "S3 event: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *r = json_array_get(recs, i);
        const char *name = NULL, *bucket = NULL, *key = NULL, *etag = NULL, *ver = NULL,
                   *ctype = NULL;
        json_t *size = NULL;
        is_s3event_t *e = &evs[n];
        e->size = -1;
        if (json_unpack_ex(r, &jerr, 0, "{s:s}", "eventName", &name)) {
            snprintf(errstr, errstr_size, "S3 event: Records[%zu]: %s", i, jerr.text);
            goto fail;
        }
        n++;
        if (!(e->event_name = strdup(name)))
            goto oom;
        const char *bare = !strncmp(name, "s3:", 3) ? name + 3 : name;
        e->created = !strncmp(bare, "ObjectCreated:", 14);
        if (!e->created)
            continue;
        if (json_unpack_ex(r, &jerr, 0, "{s:{s:{s:s}, s:{s:s, s?o, s?s, s?s, s?s}}}", "s3",
                           "bucket", "name", &bucket, "object", "key", &key, "size", &size, "eTag",
                           &etag, "versionId", &ver, "contentType", &ctype)) {
            snprintf(errstr, errstr_size, "S3 event: Records[%zu].s3: %s", i, jerr.text);
            goto fail;
        }
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            snprintf(errstr, errstr_size,
                     "S3 event: Records[%zu].s3.object.size: expected a non-negative integer", i);
            goto fail;
        }
        e->size = json_integer_value(size);
        if (!*bucket || !*key) {
            snprintf(errstr, errstr_size, "S3 event: Records[%zu]: empty bucket or key", i);
            goto fail;
        }
        if (!(e->key = url_decode(key))) {
            snprintf(errstr, errstr_size, "S3 event: Records[%zu].s3.object.key: bad %%-escape", i);
            goto fail;
        }
        if (!(e->bucket = strdup(bucket)))
            goto oom;
        e->etag = dup_opt(etag);
        e->version_id = dup_opt(ver);
        e->content_type = dup_opt(ctype);
    }
    json_decref(root);
    *evsp = evs;
    return n;
oom:
    snprintf(errstr, errstr_size, "S3 event: out of memory");
fail:
    is_s3event_free(evs, n);
    json_decref(root);
    return -1;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int is_s3event_layout(const char *raw_prefix, const char *key, char *tenant, size_t tenant_size,
                      char *id, size_t id_size, int64_t *day_ms, char *errstr, size_t errstr_size)
{
    size_t pl = strlen(raw_prefix);
    char why[256];
    const char *seg[5];
    size_t seglen[5];

    if (strncmp(key, raw_prefix, pl)) {
        snprintf(errstr, errstr_size, "key %.300s is not under the raw prefix %s", key, raw_prefix);
        return -1;
    }
    const char *p = key + pl;
    for (int i = 0; i < 5; i++) {
        seg[i] = p;
        seglen[i] = strcspn(p, "/");
        p += seglen[i];
        if (i < 4) {
            if (*p != '/')
                goto layout;
            p++;
        }
    }
    if (*p)
        goto layout;
    if (seglen[1] != 4 || seglen[2] != 2 || seglen[3] != 2 || seglen[0] >= tenant_size ||
        seglen[4] >= id_size)
        goto layout;
    snprintf(tenant, tenant_size, "%.*s", (int)seglen[0], seg[0]);
    snprintf(id, id_size, "%.*s", (int)seglen[4], seg[4]);
    if (is_keys_check_segment("tenant", tenant, why, sizeof(why)) ||
        is_keys_check_segment("id", id, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "key %.300s: %s", key, why);
        return -1;
    }
    int y = digits(seg[1], 4), m = digits(seg[2], 2), d = digits(seg[3], 2);
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    time_t t = timegm(&tm);
    struct tm back;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31 || t == (time_t)-1 || !gmtime_r(&t, &back) ||
        back.tm_mday != d || back.tm_mon != m - 1) {
        snprintf(errstr, errstr_size, "key %.300s: %.4s/%.2s/%.2s is not a date", key, seg[1],
                 seg[2], seg[3]);
        return -1;
    }
    *day_ms = (int64_t)t * 1000;
    return 0;
layout:
    snprintf(errstr, errstr_size, "key %.300s does not follow the layout %sTENANT/YYYY/MM/DD/ID",
             key, raw_prefix);
    return -1;
}
