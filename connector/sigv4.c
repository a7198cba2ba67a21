/*
 * sigv4.c - AWS Signature Version 4 signer (see sigv4.h).
 *
 * The four steps, as AWS defines them:
 *   1. canonical request: method, canonical URI, canonical query string,
 *      canonical headers, signed headers, payload hash, one per line;
 *   2. string to sign: algorithm, amz date, scope, hex SHA-256 of step 1;
 *   3. signing key: HMAC chain over date, region, service, "aws4_request";
 *   4. signature: hex HMAC of step 2 under step 3's key.
 *
 * Secrets: the secret key only ever enters the HMAC chain; the buffer that
 * holds "AWS4" + secret and the derived key are wiped with OPENSSL_cleanse.
 */
#include "sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* Growable string. On allocation failure it sets oom and ignores further
 * appends, so callers check once at the end. */
typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb_t;

static void sb_append(sb_t *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p) {
            sb->oom = 1;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_puts(sb_t *sb, const char *s)
{
    sb_append(sb, s, strlen(s));
}

static void sb_putc(sb_t *sb, char c)
{
    sb_append(sb, &c, 1);
}

/* Returns the built string (caller frees) or NULL when out of memory. An
 * empty builder yields "". */
static char *sb_take(sb_t *sb)
{
    if (!sb->oom && !sb->p)
        sb_append(sb, "", 0);
    if (sb->oom) {
        free(sb->p);
        sb->p = NULL;
    }
    char *p = sb->p;
    memset(sb, 0, sizeof(*sb));
    return p;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int sha256(const void *buf, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != 32)
        return -1;
    return 0;
}

static int hmac_sha256(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &n) ||
        n != 32)
        return -1;
    return 0;
}

int is_sha256_hex(const void *buf, size_t len, char *out65)
{
    unsigned char md[32];
    if (sha256(buf, len, md) == -1)
        return -1;
    hex_encode(md, sizeof(md), out65);
    return 0;
}

int is_sha256_base64(const void *buf, size_t len, char *out45)
{
    unsigned char md[32];
    if (sha256(buf, len, md) == -1)
        return -1;
    /* 32 bytes encode to exactly 44 characters plus the NUL EVP writes. */
    if (EVP_EncodeBlock((unsigned char *)out45, md, sizeof(md)) != 44)
        return -1;
    return 0;
}

int is_sha256_hex_base64(const void *buf, size_t len, char *out65, char *out45)
{
    unsigned char md[32];
    if (sha256(buf, len, md) == -1)
        return -1;
    hex_encode(md, sizeof(md), out65);
    if (EVP_EncodeBlock((unsigned char *)out45, md, sizeof(md)) != 44)
        return -1;
    return 0;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static void uri_encode_to(sb_t *sb, const char *s, size_t len, int encode_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c == '/' && !encode_slash)) {
            sb_putc(sb, (char)c);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 0xf]};
            sb_append(sb, esc, 3);
        }
    }
}

char *is_sigv4_uri_encode(const char *s, size_t len, int encode_slash)
{
    sb_t sb = {0};
    uri_encode_to(&sb, s, len, encode_slash);
    return sb_take(&sb);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the %XX escapes of s[0..len) into out (len bytes suffice); a '%'
 * not followed by two hex digits stays literal. Returns the decoded length. */
static size_t pct_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

typedef struct qparam {
    char *key, *value; /* both RFC 3986 encoded */
} qparam_t;

static int qparam_cmp(const void *a, const void *b)
{
    const qparam_t *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r ? r : strcmp(x->value, y->value);
}

/* Encodes one decoded-then-re-encoded query component; NULL when out of memory. */
static char *query_component(const char *s, size_t len)
{
    char *dec = malloc(len + 1);
    if (!dec)
        return NULL;
    size_t n = pct_decode(s, len, dec);
    char *enc = is_sigv4_uri_encode(dec, n, 1);
    free(dec);
    return enc;
}

/* Canonical query string: parameters sorted by encoded key, then value. */
static char *canonical_query(const char *query)
{
    qparam_t *params = NULL;
    size_t cnt = 0, cap = 0;
    char *out = NULL;
    sb_t sb = {0};

    for (const char *p = query ? query : ""; *p;) {
        const char *end = strchr(p, '&');
        size_t seglen = end ? (size_t)(end - p) : strlen(p);
        if (seglen > 0) {
            const char *eq = memchr(p, '=', seglen);
            size_t klen = eq ? (size_t)(eq - p) : seglen;
            if (cnt == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                qparam_t *np = realloc(params, ncap * sizeof(*np));
                if (!np)
                    goto done;
                params = np;
                cap = ncap;
            }
            params[cnt].key = query_component(p, klen);
            params[cnt].value = eq ? query_component(eq + 1, seglen - klen - 1) : strdup("");
            cnt++;
            if (!params[cnt - 1].key || !params[cnt - 1].value)
                goto done;
        }
        p += seglen + (end ? 1 : 0);
    }

    if (cnt > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(params, cnt, sizeof(*params), qparam_cmp);
    for (size_t i = 0; i < cnt; i++) {
        if (i)
            sb_putc(&sb, '&');
        sb_puts(&sb, params[i].key);
        sb_putc(&sb, '=');
        sb_puts(&sb, params[i].value);
    }
    out = sb_take(&sb);

done:
    for (size_t i = 0; i < cnt; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
    free(sb.p);
    return out;
}

typedef struct chdr {
    char *name;  /* lowercased */
    char *value; /* trimmed, whitespace runs collapsed to one space */
    size_t idx;  /* position in the request: keeps repeated names in order */
} chdr_t;

static int chdr_cmp(const void *a, const void *b)
{
    const chdr_t *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r)
        return r;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *canonical_value(const char *v)
{
    sb_t sb = {0};
    int pending_space = 0;
    for (; *v; v++) {
        if (is_ws(*v)) {
            pending_space = sb.len > 0;
            continue;
        }
        if (pending_space)
            sb_putc(&sb, ' ');
        pending_space = 0;
        sb_putc(&sb, *v);
    }
    return sb_take(&sb);
}

static int valid_header_name(const char *n)
{
    if (!n || !*n)
        return 0;
    for (; *n; n++)
        if ((unsigned char)*n <= ' ' || *n == ':' || (unsigned char)*n >= 0x7f)
            return 0;
    return 1;
}

/* Builds "name:v1,v2\n..." into *canon and "a;b" into *signed_out. */
static int canonical_headers(const is_sigv4_header_t *hdrs, size_t cnt, char **canon,
                             char **signed_out, char *errstr, size_t errstr_size)
{
    chdr_t *h = NULL;
    sb_t cs = {0}, ss = {0};
    int ret = -1;

    if (cnt == 0) {
        snprintf(errstr, errstr_size, "sigv4: no headers to sign (host is required)");
        goto done;
    }
    h = calloc(cnt, sizeof(*h));
    if (!h)
        goto oom;
    for (size_t i = 0; i < cnt; i++) {
        if (!valid_header_name(hdrs[i].name) || !hdrs[i].value) {
            snprintf(errstr, errstr_size, "sigv4: invalid header #%zu", i);
            goto done;
        }
        h[i].idx = i;
        h[i].name = strdup(hdrs[i].name);
        h[i].value = canonical_value(hdrs[i].value);
        if (!h[i].name || !h[i].value)
            goto oom;
        for (char *c = h[i].name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    qsort(h, cnt, sizeof(*h), chdr_cmp);
    for (size_t i = 0; i < cnt; i++) {
        int first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
        if (first) {
            if (i) {
                sb_putc(&cs, '\n');
                sb_putc(&ss, ';');
            }
            sb_puts(&cs, h[i].name);
            sb_putc(&cs, ':');
            sb_puts(&ss, h[i].name);
        } else {
            sb_putc(&cs, ',');
        }
        sb_puts(&cs, h[i].value);
    }
    sb_putc(&cs, '\n');
    if (cs.oom || ss.oom)
        goto oom;
    *canon = sb_take(&cs);
    *signed_out = sb_take(&ss);
    ret = 0;
    goto done;

oom:
    snprintf(errstr, errstr_size, "sigv4: out of memory");
done:
    if (h) {
        for (size_t i = 0; i < cnt; i++) {
            free(h[i].name);
            free(h[i].value);
        }
        free(h);
    }
    free(cs.p);
    free(ss.p);
    return ret;
}

int is_sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                         const char *service, unsigned char out[32])
{
    unsigned char k1[32], k2[32], k3[32];
    size_t slen = strlen(secret_key);
    char *ksecret = malloc(slen + 5);
    int ret = -1;

    if (!ksecret)
        return -1;
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, secret_key, slen + 1);
    if (hmac_sha256(ksecret, slen + 4, date8, k1) == -1 ||
        hmac_sha256(k1, sizeof(k1), region, k2) == -1 ||
        hmac_sha256(k2, sizeof(k2), service, k3) == -1 ||
        hmac_sha256(k3, sizeof(k3), "aws4_request", out) == -1)
        goto done;
    ret = 0;
done:
    OPENSSL_cleanse(ksecret, slen + 4);
    free(ksecret);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    OPENSSL_cleanse(k3, sizeof(k3));
    return ret;
}

static int valid_amz_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return 0;
    return 1;
}

static int nonempty(const char *s)
{
    return s && *s;
}

void is_sigv4_result_clear(is_sigv4_result_t *res)
{
    if (!res)
        return;
    free(res->canonical_request);
    free(res->string_to_sign);
    free(res->signed_headers);
    free(res->authorization);
    memset(res, 0, sizeof(*res));
}

int is_sigv4_sign(const is_sigv4_request_t *req, const is_sigv4_scope_t *scope,
                  const char *amz_date, is_sigv4_result_t *res, char *errstr, size_t errstr_size)
{
    char *cquery = NULL, *cheaders = NULL, *curi = NULL;
    char date8[9], creq_hash[65];
    unsigned char key[32], sig[32];
    sb_t sb = {0};
    int ret = -1;

    memset(res, 0, sizeof(*res));
    if (!req || !scope || !nonempty(req->method) || !nonempty(req->payload_hash) ||
        !nonempty(scope->access_key) || !nonempty(scope->secret_key) || !nonempty(scope->region) ||
        !nonempty(scope->service)) {
        snprintf(errstr, errstr_size,
                 "sigv4: missing method, payload hash, key, region or service");
        goto done;
    }
    if (!valid_amz_date(amz_date)) {
        snprintf(errstr, errstr_size, "sigv4: amz date must be YYYYMMDDTHHMMSSZ");
        goto done;
    }
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';

    /* S3 signs the path as sent; other services encode the sent path again. */
    const char *path = nonempty(req->path) ? req->path : "/";
    curi = req->double_encode ? is_sigv4_uri_encode(path, strlen(path), 0) : strdup(path);
    cquery = canonical_query(req->query);
    if (!curi || !cquery)
        goto oom;
    if (canonical_headers(req->headers, req->header_cnt, &cheaders, &res->signed_headers, errstr,
                          errstr_size) == -1)
        goto done;

    /* cheaders ends in '\n', which with the separator gives the blank line
     * the format requires before the signed headers. */
    sb_puts(&sb, req->method);
    sb_putc(&sb, '\n');
    sb_puts(&sb, curi);
    sb_putc(&sb, '\n');
    sb_puts(&sb, cquery);
    sb_putc(&sb, '\n');
    sb_puts(&sb, cheaders);
    sb_putc(&sb, '\n');
    sb_puts(&sb, res->signed_headers);
    sb_putc(&sb, '\n');
    sb_puts(&sb, req->payload_hash);
    if (!(res->canonical_request = sb_take(&sb)))
        goto oom;

    if (is_sha256_hex(res->canonical_request, strlen(res->canonical_request), creq_hash) == -1)
        goto crypto;
    sb_puts(&sb, "AWS4-HMAC-SHA256\n");
    sb_puts(&sb, amz_date);
    sb_putc(&sb, '\n');
    sb_puts(&sb, date8);
    sb_putc(&sb, '/');
    sb_puts(&sb, scope->region);
    sb_putc(&sb, '/');
    sb_puts(&sb, scope->service);
    sb_puts(&sb, "/aws4_request\n");
    sb_puts(&sb, creq_hash);
    if (!(res->string_to_sign = sb_take(&sb)))
        goto oom;

    if (is_sigv4_signing_key(scope->secret_key, date8, scope->region, scope->service, key) == -1 ||
        hmac_sha256(key, sizeof(key), res->string_to_sign, sig) == -1)
        goto crypto;
    hex_encode(sig, sizeof(sig), res->signature);

    sb_puts(&sb, "AWS4-HMAC-SHA256 Credential=");
    sb_puts(&sb, scope->access_key);
    sb_putc(&sb, '/');
    sb_puts(&sb, date8);
    sb_putc(&sb, '/');
    sb_puts(&sb, scope->region);
    sb_putc(&sb, '/');
    sb_puts(&sb, scope->service);
    sb_puts(&sb, "/aws4_request, SignedHeaders=");
    sb_puts(&sb, res->signed_headers);
    sb_puts(&sb, ", Signature=");
    sb_puts(&sb, res->signature);
    if (!(res->authorization = sb_take(&sb)))
        goto oom;
    ret = 0;
    goto done;

crypto:
    snprintf(errstr, errstr_size, "sigv4: libcrypto SHA-256/HMAC failed");
    goto done;
oom:
    snprintf(errstr, errstr_size, "sigv4: out of memory");
done:
    OPENSSL_cleanse(key, sizeof(key));
    free(sb.p);
    free(curi);
    free(cquery);
    free(cheaders);
    if (ret == -1)
        is_sigv4_result_clear(res);
    return ret;
}
