/*
 * check.c - `imgsink check`. See check.h.
 *
 * Permissions are probed without writing (is_check_store_write): a PUT
 * whose x-amz-checksum-sha256 is wrong is refused by the store only after
 * the signature, the IAM and bucket policies and the KMS key were checked
 * (tried with the pinned MinIO: an unknown key id answers 404
 * kms:KeyNotFound, a denied PUT 403 AccessDenied, else 400
 * XAmzContentChecksumMismatch). MinIO does not ask for s3:PutObjectTagging
 * when the tags come in the PUT; AWS does, so the tag-less retry tells the
 * two permissions apart there.
 *
 * The bucket is probed with GET ?lifecycle, which answers both questions at
 * once: NoSuchBucket means the bucket is missing, NoSuchLifecycleConfiguration
 * means it exists without rules, and a document means both exist. The
 * worker itself needs only PUT and GET on objects, so credentials that may
 * not read the lifecycle configuration (AccessDenied) are reported as such.
 * The worker runs the lifecycle part at start-up too
 * (is_check_lifecycle_startup).
 *
 * Runs on the main thread only (the start-up check: on the worker's, before
 * any job thread starts).
 */
#include "check.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "admin.h"
#include "api.h"
#include "cli.h"
#include "keys.h"
#include "log.h"
#include "s3.h"

#define RETENTION_KEY "retention" /* keys.h: objects are tagged retention=<days>d */

typedef struct check_run {
    int total, failed;
} check_run_t;

static void report(check_run_t *run, int ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(check_run_t *run, int ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    run->total++;
    run->failed += !ok;
    printf("%-4s  %-9s  ", ok ? "ok" : "FAIL", what);
    va_start(ap, fmt);
    is_log_vprintf(stdout, fmt, ap); /* a detail may quote a secret's value */
    va_end(ap);
    printf("\n");
    fflush(stdout); /* each line as it is known: a Kafka check may take seconds */
}

/* ---- lifecycle XML ------------------------------------------------------ */

static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !xmlStrcmp(c->name, (const xmlChar *)name))
            return c;
    return NULL;
}

/* The element's text, trimmed, into buf ("" when absent). */
static const char *text(const xmlNode *n, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!n)
        return buf;
    xmlChar *t = xmlNodeGetContent(n);
    const char *s = t ? (const char *)t : "";
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    snprintf(buf, size, "%s", s);
    for (size_t len = strlen(buf); len && strchr(" \n\t\r", buf[len - 1]); len--)
        buf[len - 1] = '\0';
    xmlFree(t);
    return buf;
}

typedef struct rule_filter {
    char prefix[256];
    int sized;       /* ObjectSizeGreaterThan/LessThan: covers only some objects */
    char other[260]; /* the first tag that is not ours, "k=v" */
    int ours;        /* has our tag */
} rule_filter_t;

static void read_filter_part(const xmlNode *n, rule_filter_t *f, const char *key, const char *value)
{
    char k[128], v[128];
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!xmlStrcmp(c->name, (const xmlChar *)"Prefix")) {
            text(c, f->prefix, sizeof(f->prefix));
        } else if (!xmlStrncmp(c->name, (const xmlChar *)"ObjectSize", 10)) {
            f->sized = 1;
        } else if (!xmlStrcmp(c->name, (const xmlChar *)"Tag")) {
            text(child(c, "Key"), k, sizeof(k));
            text(child(c, "Value"), v, sizeof(v));
            if (!strcmp(k, key) && !strcmp(v, value))
                f->ours = 1;
            else if (!f->other[0])
                snprintf(f->other, sizeof(f->other), "%s=%s", k, v);
        } else if (!xmlStrcmp(c->name, (const xmlChar *)"And")) {
            read_filter_part(c, f, key, value);
        }
    }
}

/* Why the filter of an enabled rule does not reach every object tagged
 * key=value under prefix, or "" if it does. With key NULL the rule must reach
 * untagged entries too (delete markers have no tags): no tag filter at all. */
static void judge_filter(const xmlNode *rule, const char *key, const char *value,
                         const char *prefix, char *why, size_t size, int *ours)
{
    char status[32];
    rule_filter_t f = {0};
    const xmlNode *filter = child(rule, "Filter");

    why[0] = '\0';
    if (filter)
        read_filter_part(filter, &f, key ? key : "", value ? value : "");
    else /* the older form: <Prefix> directly in the rule */
        text(child(rule, "Prefix"), f.prefix, sizeof(f.prefix));
    if (strcmp(text(child(rule, "Status"), status, sizeof(status)), "Enabled"))
        snprintf(why, size, "status %s", status[0] ? status : "missing");
    else if (!key && (f.other[0] || f.ours))
        snprintf(why, size, "filter on tag %s, and a delete marker has no tags", f.other);
    else if (f.other[0])
        snprintf(why, size, "filter tag %s, not %s=%s", f.other, key, value);
    else if (f.sized)
        snprintf(why, size, "filter on object size covers only some objects");
    else if (strncmp(prefix, f.prefix, strlen(f.prefix)))
        snprintf(why, size, "filter prefix '%s' does not cover s3.prefix '%s'", f.prefix, prefix);
    *ours = f.ours;
}

/* Why one rule does not expire our objects after days, or "" if it does. */
static void judge_rule(const xmlNode *rule, const char *key, const char *value, const char *prefix,
                       int days, char *why, size_t size, int *rdays, int *ours)
{
    char d[32];
    const xmlNode *exp = child(rule, "Expiration");

    *rdays = -1;
    text(child(exp, "Days"), d, sizeof(d));
    if (d[0])
        *rdays = atoi(d);
    judge_filter(rule, key, value, prefix, why, size, ours);
    if (why[0])
        return;
    if (!exp)
        snprintf(why, size, "no Expiration");
    else if (!d[0])
        snprintf(why, size, "Expiration without Days (a fixed Date or delete markers only)");
    else if (*rdays != days)
        snprintf(why, size, "expires after %d days, the tag says %d", *rdays, days);
    /* Passing without our tag means no tag filter at all: the rule expires
     * everything under its prefix, ours included. */
}

int is_check_lifecycle_xml(const char *xml, size_t len, const char *tag_key, const char *tag_value,
                           const char *prefix, int days, char *detail, size_t detail_size)
{
    /* NONET: never fetch a DTD; the document comes from the network. */
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "lifecycle.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    size_t n = 0;
    int found = 0, rules = 0;

    if (!root || xmlStrcmp(root->name, (const xmlChar *)"LifecycleConfiguration")) {
        snprintf(detail, detail_size,
                 "the lifecycle configuration is not a "
                 "<LifecycleConfiguration> document");
        xmlFreeDoc(doc);
        return -1;
    }
    n = (size_t)snprintf(detail, detail_size,
                         "no enabled rule expires objects tagged %s=%s after "
                         "%d days (",
                         tag_key, tag_value, days);
    for (xmlNode *r = root->children; r && !found; r = r->next) {
        char id[128], why[320];
        int rdays, ours = 0;
        if (r->type != XML_ELEMENT_NODE || xmlStrcmp(r->name, (const xmlChar *)"Rule"))
            continue;
        rules++;
        text(child(r, "ID"), id, sizeof(id));
        judge_rule(r, tag_key, tag_value, prefix, days, why, sizeof(why), &rdays, &ours);
        if (!why[0] && ours) {
            snprintf(detail, detail_size, "rule \"%s\": tag %s=%s, objects expire after %d days",
                     id, tag_key, tag_value, rdays);
            found = 1;
        } else if (!why[0]) {
            snprintf(detail, detail_size,
                     "rule \"%s\": no tag filter, every object expires after %d days", id, rdays);
            found = 1;
        } else if (n < detail_size) {
            n += (size_t)snprintf(detail + n, detail_size - n, "%srule \"%s\": %s",
                                  rules > 1 ? "; " : "", id, why);
        }
    }
    if (!found && !rules)
        snprintf(detail, detail_size, "the lifecycle configuration has no rules");
    else if (!found && n + 1 < detail_size)
        snprintf(detail + n, detail_size - n, ")");
    xmlFreeDoc(doc);
    return found;
}

int is_check_lifecycle_raw(const char *xml, size_t len, const char *raw_prefix, char *detail,
                           size_t detail_size)
{
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "lifecycle.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int found = 0;

    if (!root || xmlStrcmp(root->name, (const xmlChar *)"LifecycleConfiguration")) {
        snprintf(detail, detail_size,
                 "the lifecycle configuration is not a <LifecycleConfiguration> document");
        xmlFreeDoc(doc);
        return -1;
    }
    snprintf(detail, detail_size,
             "no enabled rule without a tag filter expires the uploads under api.raw.prefix %s "
             "(uploads never processed would stay forever; see deploy/minio/lifecycle-api.json)",
             raw_prefix);
    for (xmlNode *r = root->children; r && !found; r = r->next) {
        char id[128], why[320], d[32];
        int ours = 0;
        if (r->type != XML_ELEMENT_NODE || xmlStrcmp(r->name, (const xmlChar *)"Rule"))
            continue;
        /* Raw uploads carry no tags: only a rule without a tag filter reaches them. */
        judge_filter(r, NULL, NULL, raw_prefix, why, sizeof(why), &ours);
        text(child(child(r, "Expiration"), "Days"), d, sizeof(d));
        if (why[0] || !d[0] || atoi(d) < 1)
            continue;
        text(child(r, "ID"), id, sizeof(id));
        snprintf(detail, detail_size, "rule \"%s\": uploads under %s expire after %d days", id,
                 raw_prefix, atoi(d));
        found = 1;
    }
    xmlFreeDoc(doc);
    return found;
}

/* Why one rule does not expire noncurrent versions of our objects within
 * days of becoming noncurrent, or "" if it does (*ndays: its NoncurrentDays). */
static void judge_noncurrent(const xmlNode *rule, const char *key, const char *value,
                             const char *prefix, int days, char *why, size_t size, int *ndays,
                             int *ours)
{
    char d[32], newer[32];
    const xmlNode *nve = child(rule, "NoncurrentVersionExpiration");

    *ndays = -1;
    judge_filter(rule, key, value, prefix, why, size, ours);
    if (why[0])
        return;
    text(child(nve, "NoncurrentDays"), d, sizeof(d));
    text(child(nve, "NewerNoncurrentVersions"), newer, sizeof(newer));
    if (d[0])
        *ndays = atoi(d);
    if (!nve)
        snprintf(why, size, "no NoncurrentVersionExpiration");
    else if (!d[0])
        snprintf(why, size, "NoncurrentVersionExpiration without NoncurrentDays");
    else if (newer[0] && atoi(newer) > 0)
        snprintf(why, size, "keeps %s newer noncurrent versions forever (NewerNoncurrentVersions)",
                 newer);
    else if (*ndays < 1 || *ndays > days)
        snprintf(why, size, "noncurrent versions expire after %d days, more than the %d of the tag",
                 *ndays, days);
}

/* Why one rule does not remove expired object delete markers under prefix,
 * or "" if it does. */
static void judge_markers(const xmlNode *rule, const char *prefix, char *why, size_t size)
{
    char m[16];
    int ours;

    judge_filter(rule, NULL, NULL, prefix, why, size, &ours);
    if (why[0])
        return;
    if (strcasecmp(
            text(child(child(rule, "Expiration"), "ExpiredObjectDeleteMarker"), m, sizeof(m)),
            "true"))
        snprintf(why, size, "no Expiration with ExpiredObjectDeleteMarker true");
}

/* What scan_rules looks for: the tag key=value and days of a class (for
 * noncurrent versions), and the prefix the rule must cover. */
typedef struct judge_arg {
    const char *key, *value, *prefix;
    int days;
} judge_arg_t;

/* Runs judge_markers (markers) or judge_noncurrent over the rules under
 * root, as is_check_lifecycle_xml does for current versions: 1 with detail
 * naming the first rule that passes, 0 with detail saying after head why
 * each rule fails. */
static int scan_rules(const xmlNode *root, const judge_arg_t *a, int markers, const char *head,
                      char *detail, size_t detail_size)
{
    size_t n = (size_t)snprintf(detail, detail_size, "%s (", head);
    int rules = 0;

    for (xmlNode *r = root->children; r; r = r->next) {
        char id[128], why[320];
        int ndays = -1, ours = 0;
        if (r->type != XML_ELEMENT_NODE || xmlStrcmp(r->name, (const xmlChar *)"Rule"))
            continue;
        rules++;
        text(child(r, "ID"), id, sizeof(id));
        if (markers)
            judge_markers(r, a->prefix, why, sizeof(why));
        else
            judge_noncurrent(r, a->key, a->value, a->prefix, a->days, why, sizeof(why), &ndays,
                             &ours);
        if (!why[0]) {
            if (markers)
                snprintf(detail, detail_size, "rule \"%s\" removes expired object delete markers",
                         id);
            else
                snprintf(detail, detail_size,
                         "rule \"%s\" expires noncurrent versions %d day%s after they become "
                         "noncurrent",
                         id, ndays, ndays == 1 ? "" : "s");
            return 1;
        }
        if (n < detail_size)
            n += (size_t)snprintf(detail + n, detail_size - n, "%srule \"%s\": %s",
                                  rules > 1 ? "; " : "", id, why);
    }
    if (!rules)
        snprintf(detail, detail_size, "%s (the lifecycle configuration has no rules)", head);
    else if (n + 1 < detail_size)
        snprintf(detail + n, detail_size - n, ")");
    return 0;
}

int is_check_lifecycle_classes(const char *xml, size_t len, const char *prefix, const int *days,
                               int ndays, is_check_emit_t emit, void *ctx)
{
    char detail[2200], cur[1024], nc[1024], head[256], value[32];
    int failed = 0;
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "lifecycle.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;

    if (!root || xmlStrcmp(root->name, (const xmlChar *)"LifecycleConfiguration")) {
        xmlFreeDoc(doc);
        return -1;
    }
    for (int i = 0; i < ndays; i++) {
        snprintf(value, sizeof(value), "%dd", days[i]);
        int okc = is_check_lifecycle_xml(xml, len, RETENTION_KEY, value, prefix, days[i], cur,
                                         sizeof(cur)) == 1;
        judge_arg_t a = {RETENTION_KEY, value, prefix, days[i]};
        snprintf(head, sizeof(head),
                 "no enabled rule expires noncurrent versions of objects tagged %s=%s within %d "
                 "days",
                 RETENTION_KEY, value, days[i]);
        int okn = scan_rules(root, &a, 0, head, nc, sizeof(nc));
        if (okc && okn)
            snprintf(detail, sizeof(detail), "%s=%s: %s; %s", RETENTION_KEY, value, cur, nc);
        else if (!okc && !okn)
            snprintf(detail, sizeof(detail), "%s=%s: %s; and %s", RETENTION_KEY, value, cur, nc);
        else
            snprintf(detail, sizeof(detail), "%s=%s: %s", RETENTION_KEY, value, okc ? nc : cur);
        failed += !(okc && okn);
        emit(ctx, okc && okn, detail);
    }
    judge_arg_t a = {NULL, NULL, prefix, 0};
    snprintf(head, sizeof(head),
             "delete markers: no enabled rule without a tag filter removes expired object "
             "delete markers under s3.prefix '%s'",
             prefix);
    int okm = scan_rules(root, &a, 1, head, cur, sizeof(cur));
    snprintf(detail, sizeof(detail), "%s%s", okm ? "delete markers: " : "", cur);
    failed += !okm;
    emit(ctx, okm, detail);
    xmlFreeDoc(doc);
    return failed;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_kafka(check_run_t *run, const is_config_t *cfg)
{
    char errstr[1024];
    const char **topics = NULL;
    int *counts = NULL, *leaderless = NULL, nbrokers = 0;
    size_t ntopics = 0;
    char *list = strdup(cfg->input_topics ? cfg->input_topics : "");
    is_admin_t *ad = NULL;

    if (!is_config_kafka_get(cfg, "bootstrap.servers")) {
        report(run, 0, "kafka", "kafka.bootstrap.servers is not set");
        goto done;
    }
    if (!(ad = is_admin_new(cfg, "imgsink-check", errstr, sizeof(errstr)))) {
        report(run, 0, "kafka", "%s", errstr);
        goto done;
    }
    /* input.topics, then the DLQ topic last. */
    size_t cap = 2;
    for (const char *p = list; p && *p; p++)
        cap += *p == ',';
    topics = calloc(cap, sizeof(char *));
    counts = calloc(cap, sizeof(int));
    leaderless = calloc(cap, sizeof(int));
    if (!list || !topics || !counts || !leaderless) {
        report(run, 0, "kafka", "out of memory");
        goto done;
    }
    for (char *save = NULL, *t = strtok_r(list, ", \t", &save); t;
         t = strtok_r(NULL, ", \t", &save))
        topics[ntopics++] = t;
    size_t ninput = ntopics;
    if (cfg->dlq_topic && *cfg->dlq_topic)
        topics[ntopics++] = cfg->dlq_topic;
    if (is_admin_topics(ad, topics, ntopics, counts, leaderless, &nbrokers, errstr,
                        sizeof(errstr))) {
        report(run, 0, "kafka", "%s", errstr);
        goto done;
    }
    report(run, 1, "kafka", "%s: %d broker%s", is_config_kafka_get(cfg, "bootstrap.servers"),
           nbrokers, nbrokers == 1 ? "" : "s");
    for (size_t i = 0; i < ntopics; i++) {
        const char *what = i < ninput ? "topic" : "dlq";
        if (counts[i] < 0)
            report(run, 0, what,
                   "%s does not exist (%s), or an ACL hides it: this principal needs "
                   "Describe on it",
                   topics[i], i < ninput ? "input.topics" : "dlq.topic");
        else if (leaderless[i])
            report(run, 0, what, "%s: %d of %d partitions have no leader", topics[i], leaderless[i],
                   counts[i]);
        else
            report(run, 1, what, "%s: %d partition%s, all led", topics[i], counts[i],
                   counts[i] == 1 ? "" : "s");
    }
done:
    free(list);
    free(topics);
    free(counts);
    free(leaderless);
    is_admin_destroy(ad);
}

/* "retention=7d, retention=30d" for the classes. */
static void tag_list(const int *days, int n, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%s=%dd", i ? ", " : "", RETENTION_KEY, days[i]);
}

static void emit_report(void *ctx, int ok, const char *detail)
{
    report(ctx, ok, "lifecycle", "%s", detail);
}

/* The rule that expires API uploads: in xml when they share s3.bucket, else
 * in api.raw.bucket's own lifecycle configuration. */
static void check_raw_rules(check_run_t *run, const is_config_t *cfg, is_s3_t *s3, const char *xml)
{
    const char *bucket = is_api_raw_bucket(cfg);
    char why[1024], *own = NULL;

    if (strcmp(bucket, cfg->s3_bucket)) {
        is_s3_result_t r = is_s3_get_lifecycle(s3, bucket, &own, why, sizeof(why));
        if (r != IS_S3_OK) {
            report(run, 0, "lifecycle",
                   strstr(why, "NoSuchLifecycleConfiguration")
                       ? "api.raw.bucket %s has no lifecycle configuration: uploads under %s that "
                         "are never processed would be kept forever (import "
                         "deploy/minio/lifecycle-raw.json with mc ilm rule import; %s)"
                       : "cannot read the lifecycle configuration of api.raw.bucket %s (uploads "
                         "under %s): %s",
                   bucket, cfg->api_raw_prefix, why);
            return;
        }
        xml = own;
    }
    int rc = is_check_lifecycle_raw(xml, strlen(xml), cfg->api_raw_prefix, why, sizeof(why));
    if (rc >= 0)
        report(run, rc == 1, "lifecycle", "%s%s%s", why,
               own ? (rc == 1 ? " in api.raw.bucket "
                              : " (a raw bucket of its own: "
                                "deploy/minio/lifecycle-raw.json) in "
                                "api.raw.bucket ")
                   : "",
               own ? bucket : "");
    free(own);
}

/* The lifecycle lines of `imgsink check`; xml NULL: the bucket has no
 * lifecycle configuration. */
static void check_rules(check_run_t *run, const is_config_t *cfg, is_s3_t *s3, const char *xml)
{
    char why[512], tags[512];
    int days[IS_KEYS_MAX_RETENTION_CLASSES], ndays;

    if (is_keys_retention_classes(cfg->retention_classes, days, &ndays, why, sizeof(why))) {
        report(run, 0, "lifecycle", "not checked: retention.classes=%s: %s", cfg->retention_classes,
               why);
        return;
    }
    tag_list(days, ndays, tags, sizeof(tags));
    if (!xml) {
        report(run, 0, "lifecycle",
               "bucket %s has no lifecycle configuration: objects tagged %s would never "
               "expire (import deploy/minio/lifecycle.json with mc ilm rule import, or "
               "deploy/aws/lifecycle.json)",
               cfg->s3_bucket, tags);
        return;
    }
    if (is_check_lifecycle_classes(xml, strlen(xml), cfg->s3_prefix ? cfg->s3_prefix : "", days,
                                   ndays, emit_report, run) < 0)
        report(run, 0, "lifecycle",
               "the lifecycle configuration of bucket %s is not a <LifecycleConfiguration> "
               "document",
               cfg->s3_bucket);
    /* The API path's raw uploads, when this configuration serves it. */
    if (*cfg->api_keys_file || !strcmp(cfg->input_format, "s3-event"))
        check_raw_rules(run, cfg, s3, xml);
}

int is_check_store_write(const is_config_t *cfg, is_s3_t *s3, char *detail, size_t detail_size)
{
    char key[1200], tags[128], why[1024], why2[1024];
    int days[IS_KEYS_MAX_RETENTION_CLASSES], ndays, stored = 0;
    const char *prefix = cfg->s3_prefix ? cfg->s3_prefix : "";

    if (is_keys_retention_classes(cfg->retention_classes, days, &ndays, why, sizeof(why)) ||
        is_keys_tagging(days[0], "stream", tags, sizeof(tags))) {
        snprintf(detail, detail_size, "retention.classes=%s: %s", cfg->retention_classes, why);
        return -1;
    }
    snprintf(key, sizeof(key), "%simgsink-write-probe", prefix);
    is_s3_result_t r = is_s3_probe_put(s3, key, tags, &stored, why, sizeof(why));
    if (r == IS_S3_OK) {
        if (stored)
            snprintf(detail, detail_size,
                     "PUT allowed under %s/%s, but the store does not verify "
                     "x-amz-checksum-sha256: the probe object %s/%s was stored (tagged %s)",
                     cfg->s3_bucket, prefix, cfg->s3_bucket, key, tags);
        else
            snprintf(detail, detail_size,
                     "PUT with tags (%s) and s3.sse=%s allowed under %s/%s (probe refused by "
                     "its wrong checksum: nothing written)",
                     tags, cfg->s3_sse, cfg->s3_bucket, prefix);
        return 0;
    }
    if (r == IS_S3_TRANSIENT) {
        snprintf(detail, detail_size, "cannot tell whether PUTs are allowed: %s", why);
        return 1;
    }
    if (strstr(why, "AccessDenied")) {
        /* The store's answer only: the permission is named here. */
        const char *answer = strstr(why, "HTTP 403") ? strstr(why, "HTTP 403") : why;
        /* Without the tags: is it s3:PutObjectTagging that is missing? */
        if (is_s3_probe_put(s3, key, NULL, &stored, why2, sizeof(why2)) == IS_S3_OK) {
            snprintf(detail, detail_size,
                     "missing permission s3:PutObjectTagging on %s/%s*: every object is written "
                     "with its tags (x-amz-tagging) in the PUT: %s",
                     cfg->s3_bucket, prefix, answer);
            return -1;
        }
        int plain = cfg->s3_endpoint && !strncasecmp(cfg->s3_endpoint, "http://", 7);
        snprintf(detail, detail_size,
                 "missing permission s3:PutObject on %s/%s* (or a bucket policy refuses these "
                 "PUTs, e.g. without TLS or without s3.sse)%s: %s",
                 cfg->s3_bucket, prefix,
                 plain ? "; s3.endpoint is plain http://, which the policies of deploy/ refuse"
                       : "",
                 answer);
        return -1;
    }
    snprintf(detail, detail_size, "%s", why);
    return -1;
}

/* GETs a key that does not exist under each claimcheck.allowed prefix
 * ({tenant} as "imgsink-check"): NoSuchKey means s3:GetObject is allowed
 * there. AWS answers AccessDenied for a missing key to an identity without
 * s3:ListBucket, so AccessDenied names both permissions. */
static void check_claimcheck_read(check_run_t *run, const is_config_t *cfg, is_s3_t *s3)
{
    char *spec = strdup(cfg->claimcheck_allowed ? cfg->claimcheck_allowed : ""), *save = NULL;
    char why[1024], key[1200];

    for (char *e = spec ? strtok_r(spec, ", ", &save) : NULL; e; e = strtok_r(NULL, ", ", &save)) {
        char *slash = strchr(e, '/'), prefix[1024] = "";
        if (!slash)
            continue;
        *slash = '\0';
        /* {tenant} -> imgsink-check */
        for (const char *p = slash + 1; *p;) {
            size_t used = strlen(prefix);
            if (!strncmp(p, "{tenant}", 8)) {
                snprintf(prefix + used, sizeof(prefix) - used, "imgsink-check");
                p += 8;
            } else {
                snprintf(prefix + used, sizeof(prefix) - used, "%c", *p++);
            }
        }
        snprintf(key, sizeof(key), "%simgsink-read-probe", prefix);
        void *body = NULL;
        size_t len = 0;
        is_s3_result_t r = is_s3_get(s3, e, key, NULL, -1, 1024, &body, &len, why, sizeof(why));
        free(body);
        long st = is_s3_last_status(s3);
        if (r == IS_S3_OK || st == 404)
            report(run, 1, "read", "s3:GetObject allowed on %s/%s* (claim checks)", e, slash + 1);
        else if (strstr(why, "AccessDenied"))
            report(run, 0, "read",
                   "missing permission s3:GetObject on %s/%s* (claimcheck.allowed; AWS also "
                   "answers AccessDenied for a missing key without s3:ListBucket): %s",
                   e, slash + 1, why);
        else
            report(run, 0, "read", "%s/%s*: %s", e, slash + 1, why);
    }
    free(spec);
}

static void check_store(check_run_t *run, const is_config_t *cfg)
{
    char errstr[1024], *xml = NULL;
    const char *ep = cfg->s3_endpoint && *cfg->s3_endpoint ? cfg->s3_endpoint : "AWS S3";
    is_s3_conf_t s3c = is_s3_conf_of(cfg, NULL);
    is_s3_t *s3 = NULL;
    is_creds_provider_t *creds = NULL;

    if (!cfg->s3_bucket || !*cfg->s3_bucket) {
        report(run, 0, "bucket", "s3.bucket is not set");
        return;
    }
    /* The worker's credentials chain (creds.h), once: check runs briefly. */
    if (!(creds = is_s3_creds_of(cfg, errstr, sizeof(errstr)))) {
        report(run, 0, "credentials", "%s", errstr);
        return;
    }
    s3c.creds = creds;
    if (!(s3 = is_s3_new(&s3c, errstr, sizeof(errstr)))) {
        is_creds_provider_destroy(creds);
        report(run, 0, "bucket", "%s at %s: %s", cfg->s3_bucket, ep, errstr);
        return;
    }
    is_s3_result_t r = is_s3_get_lifecycle(s3, NULL, &xml, errstr, sizeof(errstr));
    if (r == IS_S3_OK || strstr(errstr, "NoSuchLifecycleConfiguration"))
        report(run, 1, "bucket", "%s at %s: reachable", cfg->s3_bucket, ep);
    else if (strstr(errstr, "NoSuchBucket"))
        report(run, 0, "bucket", "%s does not exist at %s", cfg->s3_bucket, ep);
    else if (strstr(errstr, "AccessDenied"))
        report(run, 0, "bucket",
               "%s at %s: access denied reading its lifecycle configuration (the credentials "
               "need s3:GetLifecycleConfiguration for this check): %s",
               cfg->s3_bucket, ep, errstr);
    else
        report(run, 0, "bucket", "%s at %s: %s: %s", cfg->s3_bucket, ep,
               strstr(errstr, ": TLS") ? "TLS refused"
               : r == IS_S3_TRANSIENT  ? "unreachable"
                                       : "error",
               errstr);

    if (r == IS_S3_OK || strstr(errstr, "NoSuchLifecycleConfiguration"))
        check_rules(run, cfg, s3, r == IS_S3_OK ? xml : NULL);
    free(xml);
    if (!cfg->s3_tls_verify)
        report(run, 1, "tls",
               "INSECURE: s3.tls.verify=false: the store's certificate and host name are not "
               "verified");
    if (r != IS_S3_TRANSIENT || !strstr(errstr, "TLS")) {
        int w = is_check_store_write(cfg, s3, errstr, sizeof(errstr));
        report(run, w == 0, "write", "%s", errstr);
        check_claimcheck_read(run, cfg, s3);
    }
    is_s3_destroy(s3);
    is_creds_provider_destroy(creds);
}

/* ---- the start-up check of `imgsink run` --------------------------------- */

typedef struct startup_emit {
    const char *bucket;
    char first_fail[1024]; /* the first failing line, for the start-up error */
} startup_emit_t;

static void emit_log(void *ctx, int ok, const char *detail)
{
    startup_emit_t *se = ctx;
    if (ok) {
        IS_INFO("lifecycle", json_pack("{s:s}", "bucket", se->bucket), "%s", detail);
    } else {
        IS_ERR("lifecycle", json_pack("{s:s}", "bucket", se->bucket), "%s", detail);
        if (!se->first_fail[0])
            snprintf(se->first_fail, sizeof(se->first_fail), "%s", detail);
    }
}

int is_check_lifecycle_startup(const is_config_t *cfg, is_s3_t *s3, char *errstr,
                               size_t errstr_size)
{
    char why[1024], tags[512], *xml = NULL;
    int days[IS_KEYS_MAX_RETENTION_CLASSES], ndays, rc = 0, failed;
    startup_emit_t se = {cfg->s3_bucket, ""};

    if (is_keys_retention_classes(cfg->retention_classes, days, &ndays, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "retention.classes=%s: %s", cfg->retention_classes, why);
        return -1;
    }
    tag_list(days, ndays, tags, sizeof(tags));
    is_s3_result_t r = is_s3_get_lifecycle(s3, NULL, &xml, why, sizeof(why));
    if (r == IS_S3_OK) {
        failed = is_check_lifecycle_classes(xml, strlen(xml), cfg->s3_prefix, days, ndays, emit_log,
                                            &se);
        if (failed < 0) {
            snprintf(errstr, errstr_size,
                     "the lifecycle configuration of bucket %s is not a <LifecycleConfiguration> "
                     "document",
                     cfg->s3_bucket);
            rc = -1;
        } else if (failed) {
            snprintf(errstr, errstr_size,
                     "bucket %s: the lifecycle rules do not cover retention.classes=%s, so "
                     "objects would outlive their retention: %s%s (imgsink check lists every "
                     "missing rule; deploy/minio/lifecycle.json and deploy/aws/lifecycle.json "
                     "have them)",
                     cfg->s3_bucket, cfg->retention_classes, se.first_fail,
                     failed > 1 ? ", and more" : "");
            rc = -1;
        }
    } else if (strstr(why, "NoSuchLifecycleConfiguration")) {
        snprintf(errstr, errstr_size,
                 "bucket %s has no lifecycle configuration: objects tagged %s would never expire "
                 "(import deploy/minio/lifecycle.json with mc ilm rule import, or "
                 "deploy/aws/lifecycle.json)",
                 cfg->s3_bucket, tags);
        rc = -1;
    } else if (strstr(why, "NoSuchBucket")) {
        snprintf(errstr, errstr_size, "bucket %s does not exist: %s", cfg->s3_bucket, why);
        rc = -1;
    } else {
        /* A least-privilege identity may not read the configuration, and a
         * store that is down now may be up when the first record comes:
         * neither says the rules are missing. imgsink check tells. */
        IS_WARN("lifecycle", json_pack("{s:s}", "bucket", cfg->s3_bucket),
                "cannot verify the lifecycle rules for %s at start-up (%s); run imgsink check "
                "with credentials that may read them: %s",
                tags, r == IS_S3_TRANSIENT ? "store unreachable" : "refused", why);
    }
    free(xml);
    return rc;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: imgsink check [-c FILE] [-X key=value] [-b BROKERS]\n"
                "\n"
                "Checks that the configuration can run: it is valid; Kafka answers; the input\n"
                "topics and the DLQ topic exist with a leader for every partition; the bucket\n"
                "answers; for every class N of retention.classes a lifecycle rule expires the\n"
                "objects imgsink writes (tag retention=Nd, under s3.prefix) after N days and\n"
                "their noncurrent versions within N days; a rule without a tag filter removes\n"
                "expired object delete markers; the worker may PUT under s3.prefix with its\n"
                "tags and s3.sse (a PUT with a wrong checksum, which the store refuses after\n"
                "checking permissions and the KMS key: nothing is written) and GET under each\n"
                "claimcheck.allowed prefix. One line per check: ok or FAIL and why, naming a\n"
                "missing permission, KMS key or TLS problem. Changes nothing.\n"
                "\n"
                "  -b, --brokers LIST   bootstrap servers (else kafka.bootstrap.servers)\n"
                "\n"
                "Exit status: 0 all passed, 1 a check failed, 2 invalid configuration.\n");
}

int is_check_main(is_config_t *cfg, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"brokers", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    check_run_t run = {0};
    char errstr[1024];
    int c, rc, bad_config;

    optind = 1;
    while ((c = getopt_long(argc, argv, "b:h", lopts, NULL)) != -1) {
        switch (c) {
        default:
            if ((rc = is_cli_common_opt(cfg, "check", c, optarg, usage)) >= 0)
                return rc;
        }
    }
    if (is_cli_no_operands("check", argc, argv, optind))
        return 2;
    bad_config = is_config_validate(cfg, errstr, sizeof(errstr)) != 0;
    if (bad_config)
        report(&run, 0, "config", "%s", errstr);
    else
        report(&run, 1, "config", "valid");
    /* The rest runs even with a bad configuration: every problem at once. */
    check_kafka(&run, cfg);
    check_store(&run, cfg);
    if (run.failed)
        printf("check: %d of %d checks failed\n", run.failed, run.total);
    else
        printf("check: all %d checks passed\n", run.total);
    return bad_config ? 2 : run.failed ? 1 : 0;
}
