/*
 * claimcheck.c - the claim-check allow-list and the checks of a fetched
 * object. See claimcheck.h.
 */
#include "claimcheck.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keys.h"
#include "sigv4.h"

#define TENANT_VAR     "{tenant}"
#define TENANT_VAR_LEN (sizeof(TENANT_VAR) - 1)
#define MAX_KEY        1024 /* S3's limit on a key, in bytes */

typedef struct cc_entry {
    char *bucket;
    char *prefix; /* may hold {tenant} segments; "" is the whole bucket */
} cc_entry_t;

struct is_claimcheck {
    cc_entry_t *e;
    size_t n;
};

void is_claimcheck_destroy(is_claimcheck_t *cc)
{
    if (!cc)
        return;
    for (size_t i = 0; i < cc->n; i++) {
        free(cc->e[i].bucket);
        free(cc->e[i].prefix);
    }
    free(cc->e);
    free(cc);
}

size_t is_claimcheck_count(const is_claimcheck_t *cc)
{
    return cc ? cc->n : 0;
}

/* S3's bucket naming rules (3..63 of [a-z0-9.-], starting and ending with a
 * letter or digit, no ".."): a configured bucket is compared byte for byte
 * with the record's, so it must be the one spelling the store accepts. */
static int bucket_name_ok(const char *b, size_t n)
{
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return 0;
        if (c == '.' && i + 1 < n && b[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* Why the bytes s[0..n) cannot be (part of) a key that every store and proxy
 * reads the same way, or NULL. Shared by the configured prefixes and the
 * records' keys so both obey one rule. */
static const char *key_problem(const char *s, size_t n)
{
    if (n && s[0] == '/')
        return "starts with '/'";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "has a control character";
        if (c == '%')
            return "has a '%' (percent-encoding is not decoded, and not allowed)";
        if (c == '\\')
            return "has a backslash";
        if (c == '/' && i + 1 < n && s[i + 1] == '/')
            return "has an empty segment ('//')";
    }
    /* "." and ".." segments, also as the last (partial) segment. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != '/')
            j++;
        size_t len = j - i;
        if ((len == 1 && s[i] == '.') || (len == 2 && s[i] == '.' && s[i + 1] == '.'))
            return "has a '.' or '..' segment";
        i = j + 1;
    }
    return NULL;
}

/* Checks one configured prefix: the key rule, and {tenant} only as a whole
 * segment followed by '/', so tenant "acme" cannot reach "acme-corp/". */
static const char *prefix_problem(const char *p)
{
    const char *why = key_problem(p, strlen(p));
    if (why)
        return why;
    for (const char *s = p; *s; s++) {
        if (*s == '{' && !strncmp(s, TENANT_VAR, TENANT_VAR_LEN)) {
            if ((s != p && s[-1] != '/') || s[TENANT_VAR_LEN] != '/')
                return "has {tenant} that is not a whole segment followed by '/'";
            s += TENANT_VAR_LEN - 1;
        } else if (*s == '{' || *s == '}') {
            return "has a '{' or '}' that is not {tenant}";
        }
    }
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

is_claimcheck_t *is_claimcheck_new(const char *spec, char *errstr, size_t errstr_size)
{
    is_claimcheck_t *cc = calloc(1, sizeof(*cc));
    char *copy = strdup(spec ? spec : ""), *save = NULL;
    size_t cap = 1;

    if (!cc || !copy)
        goto oom;
    for (const char *s = copy; *s; s++)
        cap += *s == ',';
    if (!(cc->e = calloc(cap, sizeof(*cc->e))))
        goto oom;
    if (!*trim(copy)) {
        free(copy);
        return cc; /* empty: every claim check is refused */
    }
    /* strtok_r would skip empty items; an empty item is a typo to report. */
    for (char *item = copy; item; item = save) {
        char *comma = strchr(item, ',');
        save = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        char *t = trim(item), *slash = strchr(t, '/');
        const char *why;
        if (!*t) {
            snprintf(errstr, errstr_size, "an empty entry: expected BUCKET/PREFIX,...");
            goto fail;
        }
        if (!slash) {
            snprintf(errstr, errstr_size,
                     "'%s': expected BUCKET/PREFIX (e.g. raw/uploads/{tenant}/; BUCKET/ for the "
                     "whole bucket)",
                     t);
            goto fail;
        }
        if (!bucket_name_ok(t, (size_t)(slash - t))) {
            snprintf(errstr, errstr_size,
                     "'%s': bucket '%.*s' is not an S3 bucket name (3..63 of a-z 0-9 . -)", t,
                     (int)(slash - t), t);
            goto fail;
        }
        if ((why = prefix_problem(slash + 1))) {
            snprintf(errstr, errstr_size, "'%s': the prefix %s", t, why);
            goto fail;
        }
        cc_entry_t *e = &cc->e[cc->n++]; /* counted first: destroy frees what was made */
        if (!(e->bucket = strndup(t, (size_t)(slash - t))) || !(e->prefix = strdup(slash + 1)))
            goto oom;
    }
    free(copy);
    return cc;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    free(copy);
    is_claimcheck_destroy(cc);
    return NULL;
}

/* The prefix of e for tenant, URI-encoded as a request path carries it;
 * malloc'ed, NULL on out of memory. */
static char *expand_encoded(const cc_entry_t *e, const char *tenant)
{
    size_t tl = strlen(tenant), n = 0, cap = strlen(e->prefix) + 1;
    for (const char *s = strstr(e->prefix, TENANT_VAR); s; s = strstr(s + 1, TENANT_VAR))
        cap += tl;
    char *raw = malloc(cap), *enc;
    if (!raw)
        return NULL;
    for (const char *s = e->prefix; *s;) {
        if (!strncmp(s, TENANT_VAR, TENANT_VAR_LEN)) {
            memcpy(raw + n, tenant, tl);
            n += tl;
            s += TENANT_VAR_LEN;
        } else {
            raw[n++] = *s++;
        }
    }
    enc = is_sigv4_uri_encode(raw, n, 0);
    free(raw);
    return enc;
}

int is_claimcheck_allowed(const is_claimcheck_t *cc, const char *tenant, const char *bucket,
                          const char *key, char *errstr, size_t errstr_size)
{
    char why[256];
    const char *kp;
    size_t klen = key ? strlen(key) : 0;
    int rc = -1;
    char *ekey = NULL;

    if (!cc || !cc->n) {
        snprintf(errstr, errstr_size,
                 "claim checks are refused: claimcheck.allowed is empty (no bucket/prefix may be "
                 "read)");
        return -1;
    }
    /* The record decoder checks the tenant already; the allow-list does not
     * rely on that: a tenant becomes a path segment of the prefix here. */
    if (is_keys_check_segment("tenant", tenant, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "%s: no prefix can be scoped to it", why);
        return -1;
    }
    if (!bucket || !*bucket || !key || !klen) {
        snprintf(errstr, errstr_size, "the reference has an empty bucket or key");
        return -1;
    }
    if (klen > MAX_KEY) {
        snprintf(errstr, errstr_size, "key of %s is %zu bytes long, at most %d allowed", bucket,
                 klen, MAX_KEY);
        return -1;
    }
    if ((kp = key_problem(key, klen))) {
        snprintf(errstr, errstr_size, "key %s/%s %s", bucket, key, kp);
        return -1;
    }
    /* Compared as the request carries it (s3.c encodes every key byte the
     * same way), so what was matched is what is fetched. */
    if (!(ekey = is_sigv4_uri_encode(key, klen, 0)))
        goto oom;
    for (size_t i = 0; i < cc->n && rc; i++) {
        const cc_entry_t *e = &cc->e[i];
        if (strcmp(e->bucket, bucket))
            continue;
        char *ep = expand_encoded(e, tenant);
        if (!ep)
            goto oom;
        if (!strncmp(ekey, ep, strlen(ep)))
            rc = 0;
        free(ep);
    }
    if (rc)
        snprintf(errstr, errstr_size, "%s/%s is not under an allowed prefix for tenant %s", bucket,
                 key, tenant);
    free(ekey);
    return rc;
oom:
    free(ekey);
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

static int is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return 0;
    return n == 64;
}

int is_claimcheck_check_ref(const is_objref_t *ref, int64_t max_bytes, char *errstr,
                            size_t errstr_size)
{
    if (ref->sha256 && !is_hex64(ref->sha256)) {
        snprintf(errstr, errstr_size, "sha256 '%.80s' is not 64 hex digits", ref->sha256);
        return -1;
    }
    if (ref->version_id) {
        size_t n = strlen(ref->version_id);
        int printable = n > 0 && n <= 1024;
        for (size_t i = 0; i < n && printable; i++)
            printable = (unsigned char)ref->version_id[i] > 0x20 &&
                        (unsigned char)ref->version_id[i] != 0x7f;
        if (!printable) {
            snprintf(errstr, errstr_size,
                     "version_id must be 1..1024 bytes without spaces or control characters");
            return -1;
        }
    }
    if (ref->size > max_bytes) {
        snprintf(errstr, errstr_size,
                 "size %" PRId64 " exceeds limits.max.input.bytes (%" PRId64 "); not fetched",
                 ref->size, max_bytes);
        return -1;
    }
    return 0;
}

int is_claimcheck_verify(const is_objref_t *ref, const void *body, size_t len, char *errstr,
                         size_t errstr_size)
{
    char hex[65];

    if (ref->size < 0 || (uint64_t)ref->size != (uint64_t)len) {
        snprintf(errstr, errstr_size, "size mismatch: record says %" PRId64 ", object has %zu",
                 ref->size, len);
        return -1;
    }
    if (!ref->sha256)
        return 0;
    if (is_sha256_hex(body, len, hex)) {
        snprintf(errstr, errstr_size, "cannot compute the sha256 of the object");
        return -1;
    }
    if (strcasecmp(hex, ref->sha256)) {
        snprintf(errstr, errstr_size, "sha256 mismatch: record says %.64s, object has %s",
                 ref->sha256, hex);
        return -1;
    }
    return 0;
}
