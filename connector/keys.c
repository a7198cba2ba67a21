/*
 * keys.c - object keys and tags. See keys.h.
 */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int is_keys_check_segment(const char *what, const char *s, char *errstr, size_t errstr_size)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0) {
        snprintf(errstr, errstr_size, "%s is empty", what);
        return -1;
    }
    if (n > IS_KEYS_MAX_ID) {
        snprintf(errstr, errstr_size, "%s is %zu characters long, at most %d allowed", what, n,
                 IS_KEYS_MAX_ID);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            snprintf(errstr, errstr_size,
                     "%s contains byte 0x%02x at position %zu; allowed: A-Z a-z 0-9 . _ -", what, c,
                     i);
            return -1;
        }
    }
    /* Leading dots would allow "." and ".." segments and hidden names. */
    if (s[0] == '.') {
        snprintf(errstr, errstr_size, "%s starts with '.'", what);
        return -1;
    }
    return 0;
}

int is_keys_object(const char *prefix, const char *tenant, int64_t uploaded_at_ms, const char *id,
                   const char *name, const char *ext, char *out, size_t out_size, char *errstr,
                   size_t errstr_size)
{
    struct tm tm;
    time_t secs;

    if (is_keys_check_segment("id", id, errstr, errstr_size) ||
        is_keys_check_segment("tenant", tenant, errstr, errstr_size))
        return -1;
    /* Floor division so times before 1970 land on the right day. */
    secs = (time_t)(uploaded_at_ms >= 0 ? uploaded_at_ms / 1000 : -((999 - uploaded_at_ms) / 1000));
    if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999) {
        snprintf(errstr, errstr_size, "uploaded_at %lld is outside 1970..9999",
                 (long long)uploaded_at_ms);
        return -1;
    }
    int n = snprintf(out, out_size, "%s%s/%04d/%02d/%02d/%s/%s.%s", prefix, tenant,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, id, name, ext);
    if (n < 0 || (size_t)n >= out_size) {
        snprintf(errstr, errstr_size, "object key longer than %zu bytes", out_size - 1);
        return -1;
    }
    return 0;
}

int is_keys_urlencode(const char *in, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + (keep ? 1 : 3) >= out_size)
            return -1;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

int is_keys_tagging(int retention_days, const char *source, char *out, size_t out_size)
{
    char src[128];

    if (retention_days < 1 || is_keys_urlencode(source, src, sizeof(src)))
        return -1;
    int n = snprintf(out, out_size, "retention=%dd&source=%s", retention_days, src);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

int is_keys_retention_classes(const char *spec, int *days, int *n, char *errstr, size_t errstr_size)
{
    const char *p = spec ? spec : "";

    *n = 0;
    for (;;) {
        char *end;
        while (*p == ' ' || *p == '\t')
            p++;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 3650 || (*p < '0' || *p > '9')) {
            snprintf(errstr, errstr_size,
                     "expected a comma-separated list of days, each in 1..3650 (e.g. 7,30)");
            return -1;
        }
        for (int i = 0; i < *n; i++)
            if (days[i] == (int)v) {
                snprintf(errstr, errstr_size, "%ld is listed twice", v);
                return -1;
            }
        if (*n == IS_KEYS_MAX_RETENTION_CLASSES) {
            snprintf(errstr, errstr_size, "more than %d classes", IS_KEYS_MAX_RETENTION_CLASSES);
            return -1;
        }
        days[(*n)++] = (int)v;
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return 0;
        if (*p++ != ',') {
            snprintf(errstr, errstr_size,
                     "expected a comma-separated list of days, each in 1..3650 (e.g. 7,30)");
            return -1;
        }
    }
}
