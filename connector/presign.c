/*
 * presign.c - SigV4 query-string signing of S3 URLs. See presign.h.
 *
 * The canonical request of a presigned URL is the one of sigv4.c with the
 * X-Amz-* authentication parameters in the query and UNSIGNED-PAYLOAD as
 * the payload hash; the signature then goes into X-Amz-Signature.
 */
#include "presign.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

#define MAX_HDRS 8

char *is_presign_url(const is_presign_t *p, const char *method, const char *key, long expires_s,
                     time_t now, const is_sigv4_header_t *headers, size_t header_cnt, char *errstr,
                     size_t errstr_size)
{
    char *host = NULL, *path = NULL, *enc_key = NULL, *cred = NULL;
    char *enc_cred = NULL, *enc_token = NULL, *signed_names = NULL, *query = NULL, *url = NULL;
    is_sigv4_result_t sig = {0};
    is_sigv4_header_t hdrs[MAX_HDRS + 1];
    char amz_date[17], date8[9];
    struct tm tm;
    const char *ep = p->endpoint && *p->endpoint ? p->endpoint : NULL;
    const char *scheme = "https", *hostport;
    char awshost[128];

    if (header_cnt > MAX_HDRS || expires_s < 1 || expires_s > 604800 || !key || !*key) {
        snprintf(errstr, errstr_size, "presign: bad arguments");
        return NULL;
    }
    if (ep) {
        if (!strncasecmp(ep, "http://", 7)) {
            scheme = "http";
            hostport = ep + 7;
        } else if (!strncasecmp(ep, "https://", 8)) {
            hostport = ep + 8;
        } else {
            snprintf(errstr, errstr_size, "presign: endpoint must start with http:// or https://");
            return NULL;
        }
    } else {
        snprintf(awshost, sizeof(awshost), "s3.%s.amazonaws.com", p->region);
        hostport = awshost;
    }
    size_t hl = strcspn(hostport, "/?#");
    if (!hl) {
        snprintf(errstr, errstr_size, "presign: endpoint needs a host");
        return NULL;
    }
    if (!gmtime_r(&now, &tm) || strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm) != 16) {
        snprintf(errstr, errstr_size, "presign: cannot format the time");
        return NULL;
    }
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';

    if (!(enc_key = is_sigv4_uri_encode(key, strlen(key), 0)))
        goto oom;
    if (p->path_style) {
        host = fmt("%.*s", (int)hl, hostport);
        path = fmt("/%s/%s", p->bucket, enc_key);
    } else {
        host = fmt("%s.%.*s", p->bucket, (int)hl, hostport);
        path = fmt("/%s", enc_key);
    }
    if (!host || !path)
        goto oom;

    /* Signed header names: the given ones and host, sorted. */
    size_t n = 0;
    int host_done = 0;
    for (size_t i = 0; i <= header_cnt; i++) {
        if (!host_done && (i == header_cnt || strcmp(headers[i].name, "host") > 0)) {
            hdrs[n++] = (is_sigv4_header_t){"host", host};
            host_done = 1;
        }
        if (i < header_cnt)
            hdrs[n++] = headers[i];
    }
    size_t namelen = 1;
    for (size_t i = 0; i < n; i++)
        namelen += strlen(hdrs[i].name) + 1;
    if (!(signed_names = calloc(1, namelen)))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(signed_names, ";");
        strcat(signed_names, hdrs[i].name);
    }

    cred = fmt("%s/%s/%s/s3/aws4_request", p->access_key, date8, p->region);
    if (!cred || !(enc_cred = is_sigv4_uri_encode(cred, strlen(cred), 1)))
        goto oom;
    char *enc_names = is_sigv4_uri_encode(signed_names, strlen(signed_names), 1);
    if (!enc_names)
        goto oom;
    if (p->session_token && *p->session_token) {
        enc_token = is_sigv4_uri_encode(p->session_token, strlen(p->session_token), 1);
        if (!enc_token) {
            free(enc_names);
            goto oom;
        }
    }
    /* Parameters in canonical (sorted) order. */
    query = fmt("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
                "&X-Amz-Expires=%ld%s%s&X-Amz-SignedHeaders=%s",
                enc_cred, amz_date, expires_s, enc_token ? "&X-Amz-Security-Token=" : "",
                enc_token ? enc_token : "", enc_names);
    free(enc_names);
    if (!query)
        goto oom;

    is_sigv4_request_t req = {
        .method = method,
        .path = path,
        .query = query,
        .headers = hdrs,
        .header_cnt = n,
        .payload_hash = "UNSIGNED-PAYLOAD",
        .double_encode = 0,
    };
    is_sigv4_scope_t scope = {p->access_key, p->secret_key, p->region, "s3"};
    if (is_sigv4_sign(&req, &scope, amz_date, &sig, errstr, errstr_size) == -1)
        goto done;
    url = fmt("%s://%s%s?%s&X-Amz-Signature=%s", scheme, host, path, query, sig.signature);
    if (!url)
        goto oom;
    goto done;
oom:
    snprintf(errstr, errstr_size, "presign: out of memory");
done:
    is_sigv4_result_clear(&sig);
    free(host);
    free(path);
    free(enc_key);
    free(cred);
    free(enc_cred);
    free(enc_token);
    free(signed_names);
    free(query);
    return url;
}

static char *redact_param(const char *url, const char *name)
{
    const char *s = strstr(url, name);
    if (!s)
        return strdup(url);
    s += strlen(name);
    size_t vlen = strcspn(s, "&");
    return fmt("%.*sREDACTED%s", (int)(s - url), url, s + vlen);
}

char *is_presign_redact(const char *url)
{
    char *a = redact_param(url, "X-Amz-Signature=");
    if (!a)
        return NULL;
    char *b = redact_param(a, "X-Amz-Credential=");
    free(a);
    if (!b)
        return NULL;
    char *c = redact_param(b, "X-Amz-Security-Token=");
    free(b);
    return c;
}
