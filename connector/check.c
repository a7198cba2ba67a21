/*
 * check.c - `imgsink check`. See check.h.
 *
 * The bucket is probed with GET ?lifecycle, which answers both questions at
 * once: NoSuchBucket means the bucket is missing, NoSuchLifecycleConfiguration
 * means it exists without rules, and a document means both exist. The
 * worker itself needs only PUT and GET on objects, so credentials that may
 * not read the lifecycle configuration (AccessDenied) are reported as such.
 *
 * Runs on the main thread only.
 */
#include "check.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "admin.h"
#include "cli.h"
#include "log.h"
#include "s3.h"

#define RETENTION_KEY   "retention"
#define RETENTION_VALUE "7d" /* keys.h: the tag of a record with the default 7 days */
#define RETENTION_DAYS  7

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

/* Why one rule does not expire our objects after days, or "" if it does. */
static void judge_rule(const xmlNode *rule, const char *key, const char *value, const char *prefix,
                       int days, char *why, size_t size, int *rdays, int *ours)
{
    char status[32], d[32];
    rule_filter_t f = {0};
    const xmlNode *exp = child(rule, "Expiration"), *filter = child(rule, "Filter");

    why[0] = '\0';
    *rdays = -1;
    if (filter)
        read_filter_part(filter, &f, key, value);
    else /* the older form: <Prefix> directly in the rule */
        text(child(rule, "Prefix"), f.prefix, sizeof(f.prefix));
    text(child(exp, "Days"), d, sizeof(d));
    if (d[0])
        *rdays = atoi(d);
    if (strcmp(text(child(rule, "Status"), status, sizeof(status)), "Enabled"))
        snprintf(why, size, "status %s", status[0] ? status : "missing");
    else if (f.other[0])
        snprintf(why, size, "filter tag %s, not %s=%s", f.other, key, value);
    else if (f.sized)
        snprintf(why, size, "filter on object size covers only some objects");
    else if (strncmp(prefix, f.prefix, strlen(f.prefix)))
        snprintf(why, size, "filter prefix '%s' does not cover s3.prefix '%s'", f.prefix, prefix);
    else if (!exp)
        snprintf(why, size, "no Expiration");
    else if (!d[0])
        snprintf(why, size, "Expiration without Days (a fixed Date or delete markers only)");
    else if (*rdays != days)
        snprintf(why, size, "expires after %d days, the tag says %d", *rdays, days);
    /* Passing without our tag means no tag filter at all: the rule expires
     * everything under its prefix, ours included. */
    *ours = f.ours;
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
            report(run, 0, what, "%s does not exist (%s)", topics[i],
                   i < ninput ? "input.topics" : "dlq.topic");
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

static void check_store(check_run_t *run, const is_config_t *cfg)
{
    char errstr[1024], detail[2048], *xml = NULL;
    const char *ep = cfg->s3_endpoint && *cfg->s3_endpoint ? cfg->s3_endpoint : "AWS S3";
    is_s3_conf_t s3c = {.endpoint = cfg->s3_endpoint,
                        .region = cfg->s3_region,
                        .bucket = cfg->s3_bucket,
                        .access_key = cfg->s3_access_key,
                        .secret_key = cfg->s3_secret_key,
                        .session_token = cfg->s3_session_token,
                        .path_style = cfg->s3_path_style,
                        .connect_timeout_ms = (long)cfg->s3_connect_timeout_ms,
                        .timeout_ms = (long)cfg->s3_timeout_ms};
    is_s3_t *s3 = NULL;

    if (!cfg->s3_bucket || !*cfg->s3_bucket) {
        report(run, 0, "bucket", "s3.bucket is not set");
        return;
    }
    if (!(s3 = is_s3_new(&s3c, errstr, sizeof(errstr)))) {
        report(run, 0, "bucket", "%s at %s: %s", cfg->s3_bucket, ep, errstr);
        return;
    }
    is_s3_result_t r = is_s3_get_lifecycle(s3, &xml, errstr, sizeof(errstr));
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
               r == IS_S3_TRANSIENT ? "unreachable" : "error", errstr);

    if (r == IS_S3_OK) {
        int found = is_check_lifecycle_xml(xml, strlen(xml), RETENTION_KEY, RETENTION_VALUE,
                                           cfg->s3_prefix ? cfg->s3_prefix : "", RETENTION_DAYS,
                                           detail, sizeof(detail));
        report(run, found == 1, "lifecycle", "%s", detail);
    } else if (strstr(errstr, "NoSuchLifecycleConfiguration")) {
        report(run, 0, "lifecycle",
               "bucket %s has no lifecycle configuration: objects tagged %s=%s would never "
               "expire (import deploy/minio/lifecycle.json with mc ilm rule import, or "
               "deploy/aws/lifecycle.json)",
               cfg->s3_bucket, RETENTION_KEY, RETENTION_VALUE);
    }
    free(xml);
    is_s3_destroy(s3);
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: imgsink check [-c FILE] [-X key=value] [-b BROKERS]\n"
                "\n"
                "Checks that the configuration can run: it is valid; Kafka answers; the input\n"
                "topics and the DLQ topic exist with a leader for every partition; the bucket\n"
                "answers; a lifecycle rule expires the objects imgsink writes (tag "
                "retention=7d,\n"
                "under s3.prefix) after 7 days. One line per check: ok or FAIL and why.\n"
                "Changes nothing.\n"
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
