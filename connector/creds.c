/*
 * creds.c - the credentials provider chain and its refresh thread. See
 * creds.h for the order, the names and the threading.
 *
 * Every endpoint here is untrusted input: bodies are bounded (64 KiB), read
 * with libcurl without redirects, parsed by jansson or libxml2 (NONET), and
 * every field is checked for presence, type and printable ASCII before it is
 * used in a header. Errors name the field, never its value.
 *
 * Threads: is_creds_provider_new and is_creds_start from main; the refresh
 * thread owns the network fetches after that; is_creds_get / release /
 * refused / accepted / healthy from any thread. cp->lock guards cur,
 * refresh_now, quit and the health state; a fetch runs without it.
 */
#include "creds.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"

#define CREDS_BODY_MAX (64 * 1024)
#define CREDS_FILE_MAX (1 << 20)

typedef enum { SRC_CONFIG, SRC_ENV, SRC_PROFILE, SRC_WEB, SRC_CONTAINER, SRC_IMDS } src_t;

static const char *const src_names[] = {"config",       "environment", "profile",
                                        "web-identity", "container",   "imds"};

struct is_creds_provider {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* is_clock_cond_init: deadlines on CLOCK_MONOTONIC */
    is_creds_t *cur;
    src_t src;
    int64_t margin_ms, timeout_ms;
    /* web identity */
    char *role_arn, *token_file, *session_name, *sts_url;
    /* container */
    char *container_url, *auth_token, *auth_token_file;
    /* IMDS */
    char *imds_url;
    /* state, under lock */
    int refresh_now, quit, started;
    int failing;           /* last refresh failed, or the store refused a static set */
    int64_t failing_since; /* is_now_ms */
    char why[1400];
    char last_error[1400]; /* the last failed refresh, kept after a success */
    int64_t last_error_at; /* Unix time (s) of it; 0: none yet */
    atomic_long refreshes, refresh_errors;
    pthread_t thread;
};

/* ---- snapshots ---------------------------------------------------------- */

static void free_secret(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void is_creds_release(is_creds_t *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    free(c->access_key);
    free_secret(c->secret_key);
    free_secret(c->session_token);
    free(c);
}

/* Printable ASCII without spaces: what may go into a signed header. */
static int printable(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* Takes ownership of the strings (freed on failure). */
static is_creds_t *creds_new(char *ak, char *sk, char *st, int64_t expires, const char *what,
                             char *errstr, size_t errstr_size)
{
    is_creds_t *c = NULL;
    if (!printable(ak) || !printable(sk) || (st && !printable(st))) {
        snprintf(errstr, errstr_size,
                 "%s: %s is empty or has characters that cannot go in a header", what,
                 !printable(ak)   ? "the access key id"
                 : !printable(sk) ? "the secret access key"
                                  : "the session token");
        goto fail;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        snprintf(errstr, errstr_size, "%s: out of memory", what);
        goto fail;
    }
    atomic_init(&c->refs, 1);
    c->access_key = ak;
    c->secret_key = sk;
    c->session_token = st;
    c->expires = expires;
    return c;
fail:
    free(ak);
    free_secret(sk);
    free_secret(st);
    return NULL;
}

static char *dup_nonempty(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* ---- parsers (pure) ----------------------------------------------------- */

int is_creds_parse_time(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    const char *p = s + n;
    if (*p == '.') /* fraction of a second */
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (strcmp(p, "Z") && strcmp(p, "+00:00") && strcmp(p, "UTC"))
        return -1;
    if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

int is_creds_parse_ini(const char *text, const char *section, char **ak, char **sk, char **st,
                       char *errstr, size_t errstr_size)
{
    char *copy = strdup(text), *save = NULL, *a = NULL, *k = NULL, *t = NULL;
    int in = 0, seen = 0, ret = -1;

    *ak = *sk = *st = NULL;
    if (!copy) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line = trim(line);
        if (!*line || *line == '#' || *line == ';')
            continue;
        if (*line == '[') {
            char *end = strchr(line, ']');
            if (end)
                *end = '\0';
            in = !strcmp(trim(line + 1), section);
            seen |= in;
            continue;
        }
        if (!in)
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *key = trim(line), *val = trim(eq + 1);
        char **dst = !strcasecmp(key, "aws_access_key_id")       ? &a
                     : !strcasecmp(key, "aws_secret_access_key") ? &k
                     : !strcasecmp(key, "aws_session_token")     ? &t
                                                                 : NULL;
        if (!dst)
            continue;
        free_secret(*dst);
        if (!(*dst = strdup(val))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto done;
        }
    }
    if (!seen || (!a && !k)) {
        ret = 0;
        goto done;
    }
    if (!a || !*a || !k || !*k) {
        snprintf(errstr, errstr_size,
                 "section [%s] needs both aws_access_key_id and aws_secret_access_key", section);
        goto done;
    }
    *ak = a;
    *sk = k;
    *st = t && *t ? t : NULL;
    if (!*st)
        free(t);
    a = k = t = NULL;
    ret = 1;
done:
    free(a);
    free_secret(k);
    free_secret(t);
    free_secret(copy);
    return ret;
}

/* A string member of o, or NULL. */
static const char *jstr(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

is_creds_t *is_creds_from_json(const char *body, size_t len, const char *what, char *errstr,
                               size_t errstr_size)
{
    json_error_t jerr;
    int64_t exp = 0;
    is_creds_t *c = NULL;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

    if (!o || !json_is_object(o)) {
        /* The position only: jerr.text may quote the document. */
        snprintf(errstr, errstr_size, "%s: the response is not a JSON object (line %d column %d)",
                 what, o ? 1 : jerr.line, o ? 1 : jerr.column);
        goto done;
    }
    const char *code = jstr(o, "Code");
    if (json_object_get(o, "Code") && (!code || strcmp(code, "Success"))) {
        snprintf(errstr, errstr_size, "%s: Code is not \"Success\"", what);
        goto done;
    }
    static const char *const fields[] = {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"};
    for (size_t i = 0; i < 4; i++)
        if (!jstr(o, fields[i])) {
            snprintf(errstr, errstr_size, "%s: field %s is missing or not a string", what,
                     fields[i]);
            goto done;
        }
    if (is_creds_parse_time(jstr(o, "Expiration"), &exp)) {
        snprintf(errstr, errstr_size, "%s: Expiration is not an ISO 8601 UTC time", what);
        goto done;
    }
    c = creds_new(strdup(jstr(o, "AccessKeyId")), strdup(jstr(o, "SecretAccessKey")),
                  strdup(jstr(o, "Token")), exp, what, errstr, errstr_size);
done:
    json_decref(o);
    return c;
}

/* The text of the first element named name under n, or NULL (xmlFree). */
static xmlChar *xml_find(xmlNodePtr n, const char *name)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (!xmlStrcmp(n->name, BAD_CAST name))
            return xmlNodeGetContent(n);
        xmlChar *t = xml_find(n->children, name);
        if (t)
            return t;
    }
    return NULL;
}

/* Copies t into out with control characters replaced (for messages). */
static void copy_clean(const xmlChar *t, char *out, size_t size)
{
    size_t i = 0;
    for (; t && *t && i + 1 < size; t++)
        out[i++] = *t < 0x20 || *t == 0x7f ? ' ' : (char)*t;
    if (size)
        out[i] = '\0';
}

is_creds_t *is_creds_from_sts_xml(const char *body, size_t len, long status, char *errstr,
                                  size_t errstr_size)
{
    is_creds_t *c = NULL;
    xmlChar *ak = NULL, *sk = NULL, *st = NULL, *ex = NULL, *code = NULL, *msg = NULL;
    xmlDocPtr doc = NULL;
    int64_t exp = 0;

    if (body && len && len <= CREDS_BODY_MAX)
        doc = xmlReadMemory(body, (int)len, "sts.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (status < 200 || status >= 300) {
        char cbuf[128] = "", mbuf[300] = "";
        if (root) {
            code = xml_find(root, "Code");
            msg = xml_find(root, "Message");
        }
        copy_clean(code, cbuf, sizeof(cbuf));
        copy_clean(msg, mbuf, sizeof(mbuf));
        snprintf(errstr, errstr_size, "STS: HTTP %ld %s: %s", status, *cbuf ? cbuf : "(no code)",
                 *mbuf ? mbuf : "(no message)");
        goto done;
    }
    if (!root) {
        snprintf(errstr, errstr_size, "STS: the response is not an XML document");
        goto done;
    }
    xmlNodePtr n = root;
    ak = xml_find(n, "AccessKeyId");
    sk = xml_find(n, "SecretAccessKey");
    st = xml_find(n, "SessionToken");
    ex = xml_find(n, "Expiration");
    if (!ak || !sk || !st || !ex) {
        snprintf(errstr, errstr_size, "STS: element %s is missing from the response",
                 !ak   ? "AccessKeyId"
                 : !sk ? "SecretAccessKey"
                 : !st ? "SessionToken"
                       : "Expiration");
        goto done;
    }
    if (is_creds_parse_time((const char *)ex, &exp)) {
        snprintf(errstr, errstr_size, "STS: Expiration is not an ISO 8601 UTC time");
        goto done;
    }
    c = creds_new(strdup((char *)ak), strdup((char *)sk), strdup((char *)st), exp, "STS", errstr,
                  errstr_size);
done:
    if (sk)
        OPENSSL_cleanse(sk, strlen((char *)sk));
    if (st)
        OPENSSL_cleanse(st, strlen((char *)st));
    xmlFree(ak);
    xmlFree(sk);
    xmlFree(st);
    xmlFree(ex);
    xmlFree(code);
    xmlFree(msg);
    xmlFreeDoc(doc);
    return c;
}

/* ---- HTTP --------------------------------------------------------------- */

typedef struct body {
    char *p;
    size_t len;
    int too_big;
} body_t;

static size_t body_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    body_t *b = arg;
    size_t n = size * nmemb;
    if (n > CREDS_BODY_MAX || b->len > CREDS_BODY_MAX - n) {
        b->too_big = 1;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static void body_free(body_t *b)
{
    if (b->p)
        OPENSSL_cleanse(b->p, b->len);
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* One request. post: a form body (POST), or "" for an empty PUT, or NULL
 * (GET). Returns 0 with *status and the body, -1 with errstr (no answer,
 * body too large). The URL is quoted in errors: it holds no secret. */
static int http_do(const is_creds_provider_t *cp, const char *what, const char *url,
                   const char *method, struct curl_slist *hdrs, const char *post, long *status,
                   body_t *b, char *errstr, size_t errstr_size)
{
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    int ret = -1;

    *status = 0;
    if (!c) {
        snprintf(errstr, errstr_size, "%s %s: curl_easy_init failed", what, url);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cp->timeout_ms < 2000 ? cp->timeout_ms : 2000);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cp->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
    }
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (b->too_big)
        snprintf(errstr, errstr_size, "%s %s: response larger than %d bytes", what, url,
                 CREDS_BODY_MAX);
    else if (rc != CURLE_OK)
        snprintf(errstr, errstr_size, "%s %s: %s", what, url,
                 *cerr ? cerr : curl_easy_strerror(rc));
    else
        ret = 0;
    curl_easy_cleanup(c);
    return ret;
}

/* Reads a small file (a token) into a malloc'ed string without a trailing
 * newline. NULL with errstr naming the file (not its contents). */
static char *read_small(const char *path, const char *what, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot read %s: %s", what, path, strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(CREDS_FILE_MAX + 1))) {
        snprintf(errstr, errstr_size, "%s: out of memory", what);
        goto done;
    }
    n = fread(buf, 1, CREDS_FILE_MAX + 1, f);
    if (n > CREDS_FILE_MAX || ferror(f)) {
        snprintf(errstr, errstr_size, "%s: %s is larger than %d bytes or unreadable", what, path,
                 CREDS_FILE_MAX);
        free_secret(buf);
        buf = NULL;
        goto done;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
done:
    fclose(f);
    return buf;
}

/* ---- sources ------------------------------------------------------------ */

static is_creds_t *fetch_web(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    char what[] = "web identity (STS AssumeRoleWithWebIdentity)";
    char *tok = NULL, *etok = NULL, *erole = NULL, *esess = NULL, *form = NULL;
    is_creds_t *c = NULL;
    body_t b = {0};
    long status = 0;

    if (!(tok = read_small(cp->token_file, "AWS_WEB_IDENTITY_TOKEN_FILE", errstr, errstr_size)))
        goto done;
    if (!*tok) {
        snprintf(errstr, errstr_size, "AWS_WEB_IDENTITY_TOKEN_FILE %s is empty", cp->token_file);
        goto done;
    }
    CURL *e = curl_easy_init();
    if (e) {
        etok = curl_easy_escape(e, tok, 0);
        erole = curl_easy_escape(e, cp->role_arn, 0);
        esess = curl_easy_escape(e, cp->session_name, 0);
        curl_easy_cleanup(e);
    }
    if (!etok || !erole || !esess ||
        asprintf(&form,
                 "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s&"
                 "RoleSessionName=%s&WebIdentityToken=%s",
                 erole, esess, etok) < 0) {
        form = NULL;
        snprintf(errstr, errstr_size, "%s: out of memory", what);
        goto done;
    }
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    int r = http_do(cp, what, cp->sts_url, NULL, h, form, &status, &b, errstr, errstr_size);
    curl_slist_free_all(h);
    if (r)
        goto done;
    c = is_creds_from_sts_xml(b.p, b.len, status, errstr, errstr_size);
    if (!c && strstr(errstr, tok)) /* an STS that echoes the token */
        snprintf(errstr, errstr_size, "STS: HTTP %ld (message withheld: it quotes the token)",
                 status);
done:
    if (etok)
        OPENSSL_cleanse(etok, strlen(etok));
    if (form)
        OPENSSL_cleanse(form, strlen(form));
    curl_free(etok);
    curl_free(erole);
    curl_free(esess);
    free(form);
    free_secret(tok);
    body_free(&b);
    return c;
}

static is_creds_t *fetch_container(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    char what[600], *tok = NULL, *hdr = NULL;
    struct curl_slist *h = NULL;
    is_creds_t *c = NULL;
    body_t b = {0};
    long status = 0;

    snprintf(what, sizeof(what), "container endpoint %.500s", cp->container_url);
    if (cp->auth_token_file) {
        if (!(tok = read_small(cp->auth_token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                               errstr, errstr_size)))
            goto done;
    } else if (cp->auth_token && !(tok = strdup(cp->auth_token))) {
        snprintf(errstr, errstr_size, "%s: out of memory", what);
        goto done;
    }
    if (tok) {
        if (!printable(tok) && strchr(tok, '\n')) {
            snprintf(errstr, errstr_size, "%s: the authorization token has a line break", what);
            goto done;
        }
        if (asprintf(&hdr, "Authorization: %s", tok) < 0 || !(h = curl_slist_append(NULL, hdr))) {
            snprintf(errstr, errstr_size, "%s: out of memory", what);
            goto done;
        }
    }
    if (http_do(cp, "container endpoint", cp->container_url, NULL, h, NULL, &status, &b, errstr,
                errstr_size))
        goto done;
    if (status != 200) {
        snprintf(errstr, errstr_size, "%.600s: HTTP %ld", what, status);
        goto done;
    }
    c = is_creds_from_json(b.p ? b.p : "", b.len, what, errstr, errstr_size);
done:
    curl_slist_free_all(h);
    free_secret(hdr);
    free_secret(tok);
    body_free(&b);
    return c;
}

static is_creds_t *fetch_imds(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    char url[1200], what[1300], hdr[1200], role[256];
    struct curl_slist *h = NULL;
    is_creds_t *c = NULL;
    body_t b = {0};
    long status = 0;

    /* 1. The session token (IMDSv2): a PUT with its lifetime. */
    snprintf(url, sizeof(url), "%s/latest/api/token", cp->imds_url);
    h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    if (http_do(cp, "IMDS", url, "PUT", h, "", &status, &b, errstr, errstr_size))
        goto done;
    curl_slist_free_all(h);
    h = NULL;
    if (status != 200 || !b.p || !printable(b.p) || b.len > 1000) {
        snprintf(errstr, errstr_size, "IMDS %.400s: HTTP %ld, %s", url, status,
                 status == 200 ? "not a token" : "no token");
        goto done;
    }
    snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", b.p);
    body_free(&b);
    if (!(h = curl_slist_append(NULL, hdr)))
        goto oom;
    /* 2. The role of the instance profile. */
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", cp->imds_url);
    if (http_do(cp, "IMDS", url, NULL, h, NULL, &status, &b, errstr, errstr_size))
        goto done;
    size_t rl = b.p ? strcspn(b.p, "\r\n") : 0;
    if (status != 200 || rl == 0 || rl >= sizeof(role)) {
        snprintf(errstr, errstr_size, "IMDS %.400s: HTTP %ld, %s", url, status,
                 status == 200 ? "no role name" : "no role (is an instance profile attached?)");
        goto done;
    }
    memcpy(role, b.p, rl);
    role[rl] = '\0';
    body_free(&b);
    for (char *p = role; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("+=,.@_-", *p))) {
            snprintf(errstr, errstr_size, "IMDS %.400s: the role name has invalid characters", url);
            goto done;
        }
    /* 3. Its credentials. */
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", cp->imds_url,
             role);
    if (http_do(cp, "IMDS", url, NULL, h, NULL, &status, &b, errstr, errstr_size))
        goto done;
    if (status != 200) {
        snprintf(errstr, errstr_size, "IMDS %.400s: HTTP %ld", url, status);
        goto done;
    }
    snprintf(what, sizeof(what), "IMDS %s", url);
    c = is_creds_from_json(b.p ? b.p : "", b.len, what, errstr, errstr_size);
    goto done;
oom:
    snprintf(errstr, errstr_size, "IMDS: out of memory");
done:
    OPENSSL_cleanse(hdr, sizeof(hdr));
    curl_slist_free_all(h);
    body_free(&b);
    return c;
}

static is_creds_t *fetch(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    switch (cp->src) {
    case SRC_WEB:
        return fetch_web(cp, errstr, errstr_size);
    case SRC_CONTAINER:
        return fetch_container(cp, errstr, errstr_size);
    case SRC_IMDS:
        return fetch_imds(cp, errstr, errstr_size);
    default:
        snprintf(errstr, errstr_size, "static credentials cannot be refreshed");
        return NULL;
    }
}

/* ---- the chain ---------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Sources 3: the shared credentials file, then the config file. 1 found, 0
 * not, -1 error. */
static int from_profile(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    const char *home = env("HOME"), *profile = env("AWS_PROFILE");
    char path[2][1024], section[2][300];
    const char *files[2] = {env("AWS_SHARED_CREDENTIALS_FILE"), env("AWS_CONFIG_FILE")};
    char *ak, *sk, *st;

    if (!profile)
        profile = env("AWS_DEFAULT_PROFILE");
    if (!profile)
        profile = "default";
    snprintf(section[0], sizeof(section[0]), "%s", profile);
    if (!strcmp(profile, "default"))
        snprintf(section[1], sizeof(section[1]), "default");
    else
        snprintf(section[1], sizeof(section[1]), "profile %s", profile);
    for (int i = 0; i < 2; i++) {
        if (!files[i]) {
            if (!home)
                continue;
            snprintf(path[i], sizeof(path[i]), "%s/.aws/%s", home, i ? "config" : "credentials");
            files[i] = path[i];
        }
        char why[512], *text = read_small(files[i], "profile", why, sizeof(why));
        if (!text)
            continue; /* no file: the next source */
        int r = is_creds_parse_ini(text, section[i], &ak, &sk, &st, why, sizeof(why));
        free_secret(text);
        if (r < 0) {
            snprintf(errstr, errstr_size, "credentials: profile %s in %s: %s", profile, files[i],
                     why);
            return -1;
        }
        if (r == 1) {
            char what[1200];
            snprintf(what, sizeof(what), "credentials: profile %s in %s", profile, files[i]);
            if (!(cp->cur = creds_new(ak, sk, st, 0, what, errstr, errstr_size)))
                return -1;
            return 1;
        }
    }
    if (env("AWS_PROFILE")) {
        snprintf(errstr, errstr_size,
                 "credentials: AWS_PROFILE=%s: no such profile with keys in the shared "
                 "credentials or config file",
                 profile);
        return -1;
    }
    return 0;
}

/* Loopback, or the ECS and EKS Pod Identity link-local hosts: the only
 * http:// hosts the SDKs accept for AWS_CONTAINER_CREDENTIALS_FULL_URI. */
static int container_url_ok(const char *u)
{
    if (!strncasecmp(u, "https://", 8))
        return 1;
    static const char *const ok[] = {
        "http://127.",          "http://localhost:",     "http://localhost/",    "http://[::1]",
        "http://169.254.170.2", "http://169.254.170.23", "http://[fd00:ec2::23]"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!strncasecmp(u, ok[i], strlen(ok[i])))
            return 1;
    return 0;
}

static int setup_dynamic(is_creds_provider_t *cp, const is_creds_conf_t *conf, char *errstr,
                         size_t errstr_size)
{
    if (env("AWS_ROLE_ARN") || env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        if (!env("AWS_ROLE_ARN") || !env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
            snprintf(errstr, errstr_size,
                     "credentials: web identity needs both AWS_ROLE_ARN and "
                     "AWS_WEB_IDENTITY_TOKEN_FILE (only %s is set)",
                     env("AWS_ROLE_ARN") ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
            return -1;
        }
        const char *region = env("AWS_REGION")           ? env("AWS_REGION")
                             : env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION")
                                                         : conf->region;
        char def[256];
        snprintf(def, sizeof(def), "https://sts.%s.amazonaws.com/",
                 region && *region ? region : "us-east-1");
        const char *url = env("AWS_ENDPOINT_URL_STS") ? env("AWS_ENDPOINT_URL_STS")
                          : env("AWS_ENDPOINT_URL")   ? env("AWS_ENDPOINT_URL")
                                                      : def;
        char sess[64];
        snprintf(sess, sizeof(sess), "imgsink-%ld", (long)time(NULL));
        cp->src = SRC_WEB;
        cp->role_arn = strdup(env("AWS_ROLE_ARN"));
        cp->token_file = strdup(env("AWS_WEB_IDENTITY_TOKEN_FILE"));
        cp->session_name =
            strdup(env("AWS_ROLE_SESSION_NAME") ? env("AWS_ROLE_SESSION_NAME") : sess);
        cp->sts_url = strdup(url);
        return cp->role_arn && cp->token_file && cp->session_name && cp->sts_url ? 1 : -1;
    }
    if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        cp->src = SRC_CONTAINER;
        if (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
            const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
            if (*rel != '/' || !printable(rel)) {
                snprintf(errstr, errstr_size,
                         "credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=%s: expected a path "
                         "starting with /",
                         rel);
                return -1;
            }
            if (asprintf(&cp->container_url, "http://169.254.170.2%s", rel) < 0)
                cp->container_url = NULL;
        } else {
            const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
            if (!printable(full) || !container_url_ok(full)) {
                snprintf(errstr, errstr_size,
                         "credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI=%s: expected an https:// "
                         "URL, or http:// to a loopback address, 169.254.170.2 or 169.254.170.23",
                         printable(full) ? full : "(unprintable)");
                return -1;
            }
            cp->container_url = strdup(full);
        }
        cp->auth_token_file = dup_nonempty(env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
        cp->auth_token = dup_nonempty(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        return cp->container_url ? 1 : -1;
    }
    const char *dis = env("AWS_EC2_METADATA_DISABLED");
    if (dis && !strcasecmp(dis, "true"))
        return 0;
    const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (ep && strncasecmp(ep, "http://", 7) && strncasecmp(ep, "https://", 8)) {
        snprintf(errstr, errstr_size,
                 "credentials: AWS_EC2_METADATA_SERVICE_ENDPOINT=%s: expected an http:// or "
                 "https:// URL",
                 ep);
        return -1;
    }
    cp->src = SRC_IMDS;
    cp->imds_url = strdup(ep ? ep : "http://169.254.169.254");
    if (cp->imds_url) {
        size_t n = strlen(cp->imds_url);
        while (n && cp->imds_url[n - 1] == '/')
            cp->imds_url[--n] = '\0';
    }
    return cp->imds_url ? 1 : -1;
}

is_creds_provider_t *is_creds_provider_new(const is_creds_conf_t *conf, char *errstr,
                                           size_t errstr_size)
{
    is_creds_provider_t *cp = calloc(1, sizeof(*cp));
    char why[1024];

    if (!cp || pthread_mutex_init(&cp->lock, NULL) || is_clock_cond_init(&cp->cond)) {
        snprintf(errstr, errstr_size, "credentials: out of memory");
        free(cp);
        return NULL;
    }
    cp->margin_ms = conf->refresh_margin_ms;
    cp->timeout_ms = conf->http_timeout_ms > 0 ? conf->http_timeout_ms : 5000;
    atomic_init(&cp->refreshes, 0);
    atomic_init(&cp->refresh_errors, 0);
    if (conf->access_key && *conf->access_key) {
        cp->src = SRC_CONFIG;
        cp->cur =
            creds_new(strdup(conf->access_key), conf->secret_key ? strdup(conf->secret_key) : NULL,
                      dup_nonempty(conf->session_token), 0, "credentials: s3.access.key", errstr,
                      errstr_size);
        goto out;
    }
    if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
        cp->src = SRC_ENV;
        cp->cur = creds_new(
            dup_nonempty(env("AWS_ACCESS_KEY_ID")), dup_nonempty(env("AWS_SECRET_ACCESS_KEY")),
            dup_nonempty(env("AWS_SESSION_TOKEN")), 0,
            "credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", errstr, errstr_size);
        goto out;
    }
    cp->src = SRC_PROFILE;
    int r = from_profile(cp, errstr, errstr_size);
    if (r)
        goto out;
    if ((r = setup_dynamic(cp, conf, errstr, errstr_size)) <= 0) {
        if (r == 0)
            snprintf(errstr, errstr_size,
                     "credentials: none found: set s3.access.key and s3.secret.key, "
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, web identity, a "
                     "container endpoint, or enable IMDS");
        goto out;
    }
    if (!(cp->cur = fetch(cp, why, sizeof(why))))
        snprintf(errstr, errstr_size, "credentials: %s: %s", src_names[cp->src], why);
out:
    if (!cp->cur) {
        is_creds_provider_destroy(cp);
        return NULL;
    }
    return cp;
}

/* ---- refresh ------------------------------------------------------------ */

/* When to refresh c, in ms from now: margin before expiry, or half the
 * remaining lifetime when that is shorter; at least 1 s. */
static int64_t refresh_in_ms(const is_creds_provider_t *cp, const is_creds_t *c)
{
    int64_t left = (c->expires - (int64_t)time(NULL)) * 1000;
    int64_t in = left - cp->margin_ms;
    if (in < left / 2)
        in = left / 2;
    return in < 1000 ? 1000 : in;
}

static void set_failing(is_creds_provider_t *cp, const char *why)
{
    if (!cp->failing)
        cp->failing_since = is_now_ms();
    cp->failing = 1;
    snprintf(cp->why, sizeof(cp->why), "%s", why);
}

/* The refresh thread: sleeps until the refresh time or a refusal, fetches
 * without the lock, swaps under it. A failure is retried after 1 s, doubling
 * to 30 s; the old credentials stay in use meanwhile (they may still work). */
static void *refresh_thread(void *arg)
{
    is_creds_provider_t *cp = arg;
    int64_t wait_ms, retry_ms = 1000;
    char why[1024];

    pthread_mutex_lock(&cp->lock);
    wait_ms = refresh_in_ms(cp, cp->cur);
    for (;;) {
        struct timespec dl = is_clock_deadline(wait_ms);
        while (!cp->quit && !cp->refresh_now &&
               pthread_cond_timedwait(&cp->cond, &cp->lock, &dl) != ETIMEDOUT)
            ;
        if (cp->quit)
            break;
        int forced = cp->refresh_now;
        cp->refresh_now = 0;
        pthread_mutex_unlock(&cp->lock);

        is_creds_t *c = fetch(cp, why, sizeof(why));

        pthread_mutex_lock(&cp->lock);
        if (!c) {
            char reason[1200];
            snprintf(reason, sizeof(reason), "credentials cannot be refreshed (%s): %s",
                     src_names[cp->src], why);
            set_failing(cp, reason);
            snprintf(cp->last_error, sizeof(cp->last_error), "%s", reason);
            cp->last_error_at = (int64_t)time(NULL);
            atomic_fetch_add(&cp->refresh_errors, 1);
            pthread_mutex_unlock(&cp->lock);
            IS_WARN("creds",
                    json_pack("{s:s, s:I}", "source", src_names[cp->src], "retry_ms",
                              (json_int_t)retry_ms),
                    "%s", reason);
            pthread_mutex_lock(&cp->lock);
            wait_ms = retry_ms;
            retry_ms = retry_ms * 2 > 30000 ? 30000 : retry_ms * 2;
            continue;
        }
        is_creds_t *old = cp->cur;
        cp->cur = c;
        cp->failing = 0;
        cp->failing_since = 0;
        cp->why[0] = '\0';
        retry_ms = 1000;
        wait_ms = refresh_in_ms(cp, c);
        long n = atomic_fetch_add(&cp->refreshes, 1) + 1;
        int64_t expires = c->expires;
        pthread_mutex_unlock(&cp->lock);
        is_creds_release(old);
        IS_INFO("creds",
                json_pack("{s:s, s:I, s:I, s:b, s:I}", "source", src_names[cp->src], "expires",
                          (json_int_t)expires, "next_refresh_ms", (json_int_t)wait_ms, "forced",
                          forced, "refreshes", (json_int_t)n),
                "credentials refreshed");
        pthread_mutex_lock(&cp->lock);
    }
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

int is_creds_start(is_creds_provider_t *cp, char *errstr, size_t errstr_size)
{
    if (cp->src <= SRC_PROFILE)
        return 0;
    if (pthread_create(&cp->thread, NULL, refresh_thread, cp)) {
        snprintf(errstr, errstr_size, "credentials: cannot start the refresh thread");
        return -1;
    }
    cp->started = 1;
    return 0;
}

void is_creds_provider_destroy(is_creds_provider_t *cp)
{
    if (!cp)
        return;
    if (cp->started) {
        pthread_mutex_lock(&cp->lock);
        cp->quit = 1;
        pthread_cond_broadcast(&cp->cond);
        pthread_mutex_unlock(&cp->lock);
        pthread_join(cp->thread, NULL);
    }
    is_creds_release(cp->cur);
    free(cp->role_arn);
    free(cp->token_file);
    free(cp->session_name);
    free(cp->sts_url);
    free(cp->container_url);
    free_secret(cp->auth_token);
    free(cp->auth_token_file);
    free(cp->imds_url);
    pthread_cond_destroy(&cp->cond);
    pthread_mutex_destroy(&cp->lock);
    free(cp);
}

is_creds_t *is_creds_get(is_creds_provider_t *cp)
{
    pthread_mutex_lock(&cp->lock);
    is_creds_t *c = cp->cur;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&cp->lock);
    return c;
}

void is_creds_refused(is_creds_provider_t *cp, const is_creds_t *used, const char *code)
{
    int log = 0;
    char reason[600];

    pthread_mutex_lock(&cp->lock);
    if (used == cp->cur) {
        if (cp->started) {
            log = !cp->refresh_now;
            cp->refresh_now = 1;
            pthread_cond_broadcast(&cp->cond);
        } else {
            snprintf(reason, sizeof(reason),
                     "the store refuses the credentials (%s) and their source (%s) cannot "
                     "refresh them: fix them and restart",
                     code, src_names[cp->src]);
            log = !cp->failing;
            set_failing(cp, reason);
        }
    }
    pthread_mutex_unlock(&cp->lock);
    if (log)
        IS_WARN("creds", json_pack("{s:s, s:s}", "source", src_names[cp->src], "code", code),
                "the store refused the credentials: %s",
                cp->started ? "refreshing them now" : "they cannot be refreshed");
}

void is_creds_accepted(is_creds_provider_t *cp, const is_creds_t *used)
{
    pthread_mutex_lock(&cp->lock);
    if (!cp->started && used == cp->cur && cp->failing) {
        cp->failing = 0;
        cp->failing_since = 0;
        cp->why[0] = '\0';
    }
    pthread_mutex_unlock(&cp->lock);
}

int is_creds_healthy(is_creds_provider_t *cp, char *why, size_t why_size, int64_t *failing_ms)
{
    pthread_mutex_lock(&cp->lock);
    int ok = !cp->failing;
    if (ok) {
        if (cp->cur->expires)
            snprintf(why, why_size, "credentials from %s, expire in %lld s", src_names[cp->src],
                     (long long)(cp->cur->expires - (int64_t)time(NULL)));
        else
            snprintf(why, why_size, "credentials from %s", src_names[cp->src]);
        *failing_ms = 0;
    } else {
        snprintf(why, why_size, "%s", cp->why);
        *failing_ms = is_now_ms() - cp->failing_since;
    }
    pthread_mutex_unlock(&cp->lock);
    return ok;
}

const char *is_creds_source(const is_creds_provider_t *cp)
{
    return src_names[cp->src];
}

long is_creds_refreshes(const is_creds_provider_t *cp)
{
    return atomic_load(&cp->refreshes);
}

/* A label value: backslash, double quote and newline escaped; control
 * characters dropped. */
static void label_value(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', fp);
        if (*s == '\n')
            fputs("\\n", fp);
        else if ((unsigned char)*s >= 0x20)
            fputc(*s, fp);
    }
}

void is_creds_metrics_write(is_creds_provider_t *cp, FILE *fp)
{
    const char *src = src_names[cp->src];
    char err[sizeof(cp->last_error)];

    pthread_mutex_lock(&cp->lock);
    int64_t expires = cp->cur->expires, err_at = cp->last_error_at;
    int failing = cp->failing;
    snprintf(err, sizeof(err), "%s", cp->last_error);
    pthread_mutex_unlock(&cp->lock);

    fprintf(fp,
            "# HELP imgsink_credentials_refreshes_total Refreshes of the store credentials by "
            "source and result.\n"
            "# TYPE imgsink_credentials_refreshes_total counter\n"
            "imgsink_credentials_refreshes_total{source=\"%s\",result=\"ok\"} %ld\n"
            "imgsink_credentials_refreshes_total{source=\"%s\",result=\"error\"} %ld\n",
            src, atomic_load(&cp->refreshes), src, atomic_load(&cp->refresh_errors));
    fprintf(fp,
            "# HELP imgsink_credentials_healthy 1 while the store credentials are usable (the "
            "last refresh worked and the store did not refuse them), 0 otherwise.\n"
            "# TYPE imgsink_credentials_healthy gauge\n"
            "imgsink_credentials_healthy{source=\"%s\"} %d\n",
            src, !failing);
    if (expires)
        fprintf(fp,
                "# HELP imgsink_credentials_expiry_seconds Seconds until the current store "
                "credentials expire (temporary credentials only; negative: expired).\n"
                "# TYPE imgsink_credentials_expiry_seconds gauge\n"
                "imgsink_credentials_expiry_seconds{source=\"%s\"} %lld\n",
                src, (long long)(expires - (int64_t)time(NULL)));
    if (err_at) {
        fprintf(fp,
                "# HELP imgsink_credentials_last_refresh_error_timestamp_seconds Time of the "
                "last failed refresh of the store credentials.\n"
                "# TYPE imgsink_credentials_last_refresh_error_timestamp_seconds gauge\n"
                "imgsink_credentials_last_refresh_error_timestamp_seconds{source=\"%s\"} %lld\n"
                "# HELP imgsink_credentials_last_refresh_error The last failed refresh of the "
                "store credentials (its reason in the error label; never a secret).\n"
                "# TYPE imgsink_credentials_last_refresh_error gauge\n"
                "imgsink_credentials_last_refresh_error{source=\"%s\",error=\"",
                src, (long long)err_at, src);
        label_value(fp, err);
        fputs("\"} 1\n", fp);
    }
}
