/*
 * status.c - `imgsink status`. See status.h.
 *
 * Lag is end - committed. A partition the group never committed has no lag
 * in the table ("-", as kafka-consumer-groups shows it), but the total and
 * the --watch ETA count it from its log start: that is where imgsink's
 * auto.offset.reset=earliest will begin, so those records are still to do.
 *
 * Runs on the main thread only; --watch stops on SIGINT/SIGTERM.
 */
#include "status.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin.h"
#include "cli.h"
#include "log.h"
#include "progress.h"
#include "table.h"

typedef struct status_opts {
    const char *group;
    char **topics; /* from --topic, or found (see pick_topics) */
    size_t ntopics;
    int json, watch; /* watch: seconds between reads, 0 = once */
} status_opts_t;

/* One reading of the group. */
typedef struct snapshot {
    is_admin_group_t g;
    is_admin_part_t *rows;
    size_t nrows;
    int64_t total_lag;
    size_t uncommitted; /* partitions without a committed offset */
} snapshot_t;

static volatile sig_atomic_t stop_watch;

static void on_signal(int sig)
{
    (void)sig;
    stop_watch = 1;
}

static void usage(FILE *fp)
{
    fprintf(
        fp,
        "usage: imgsink status [-c FILE] [-X key=value] [-b BROKERS] [--group G] [--topic T]...\n"
        "                      [--json] [--watch SECONDS]\n"
        "\n"
        "Shows where consumer group G stands: per partition the committed offset, the\n"
        "log end offset, the lag (end - committed) and the member it is assigned to;\n"
        "then the group's members and their assignments.\n"
        "\n"
        "  -g, --group G        consumer group (default: kafka.group.id of the config)\n"
        "  -t, --topic T        topic to report (repeatable); default: the topics the\n"
        "                       group committed or is assigned, else input.topics\n"
        "      --json           one JSON document (with --watch: one per line)\n"
        "  -w, --watch SECONDS  read again every SECONDS until interrupted; on a terminal\n"
        "                       stderr shows records committed, rate and ETA to lag 0\n"
        "  -b, --brokers LIST   bootstrap servers (else kafka.bootstrap.servers)\n"
        "\n"
        "Exit status: 0 shown, 1 Kafka or the group could not be read, 2 bad usage.\n");
}

static void opts_free(status_opts_t *o)
{
    for (size_t i = 0; i < o->ntopics; i++)
        free(o->topics[i]);
    free(o->topics);
}

static int add_topic(status_opts_t *o, const char *t, size_t len)
{
    for (size_t i = 0; i < o->ntopics; i++)
        if (strlen(o->topics[i]) == len && !strncmp(o->topics[i], t, len))
            return 0;
    char **n = realloc(o->topics, (o->ntopics + 1) * sizeof(char *));
    if (!n || !(n[o->ntopics] = strndup(t, len))) {
        o->topics = n ? n : o->topics;
        return -1;
    }
    o->topics = n;
    o->ntopics++;
    return 0;
}

static int parse_args(status_opts_t *o, is_config_t *cfg, int argc, char **argv)
{
    static const struct option lopts[] = {{"group", required_argument, 0, 'g'},
                                          {"topic", required_argument, 0, 't'},
                                          {"json", no_argument, 0, 'j'},
                                          {"watch", required_argument, 0, 'w'},
                                          {"brokers", required_argument, 0, 'b'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    char *end;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "g:t:w:b:h", lopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            o->group = optarg;
            break;
        case 't':
            if (!*optarg || strchr(optarg, ':') || add_topic(o, optarg, strlen(optarg))) {
                fprintf(stderr, "imgsink status: --topic %s: expected a topic name\n", optarg);
                return 2;
            }
            break;
        case 'j':
            o->json = 1;
            break;
        case 'w':
            o->watch = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end || o->watch < 1 || o->watch > 3600) {
                fprintf(stderr, "imgsink status: --watch %s: expected seconds, 1..3600\n", optarg);
                return 2;
            }
            break;
        default:
            if ((rc = is_cli_common_opt(cfg, "status", c, optarg, usage)) >= 0)
                return rc;
        }
    }
    if (is_cli_no_operands("status", argc, argv, optind))
        return 2;
    if (!o->group)
        o->group = is_config_kafka_get(cfg, "group.id");
    if (!o->group || !*o->group) {
        fprintf(stderr, "imgsink status: no group: use --group or kafka.group.id\n");
        return 2;
    }
    return -1; /* go on */
}

/* Without --topic: what the group committed or is assigned, else the
 * configured input topics. */
static int pick_topics(status_opts_t *o, const is_config_t *cfg, const is_admin_group_t *g,
                       const rd_kafka_topic_partition_list_t *committed)
{
    for (int i = 0; i < committed->cnt; i++)
        if (add_topic(o, committed->elems[i].topic, strlen(committed->elems[i].topic)))
            return -1;
    for (size_t m = 0; m < g->nmembers; m++)
        for (int i = 0; i < g->members[m].assignment->cnt; i++) {
            const char *t = g->members[m].assignment->elems[i].topic;
            if (add_topic(o, t, strlen(t)))
                return -1;
        }
    for (const char *p = cfg->input_topics; !o->ntopics && p && *p;) {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t len = n;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len && add_topic(o, s, len))
            return -1;
        p += n + (p[n] == ',');
    }
    return 0;
}

static void snapshot_clear(snapshot_t *s)
{
    is_admin_parts_free(s->rows, s->nrows);
    is_admin_group_clear(&s->g);
    memset(s, 0, sizeof(*s));
}

static int snapshot_read(is_admin_t *ad, const status_opts_t *o, snapshot_t *s, char *errstr,
                         size_t errstr_size)
{
    memset(s, 0, sizeof(*s));
    if (is_admin_describe_group(ad, o->group, &s->g, errstr, errstr_size) ||
        is_admin_collect(ad, o->group, &s->g, (const char *const *)o->topics, o->ntopics, &s->rows,
                         &s->nrows, errstr, errstr_size)) {
        snapshot_clear(s);
        return -1;
    }
    for (size_t i = 0; i < s->nrows; i++) {
        const is_admin_part_t *p = &s->rows[i];
        int64_t from = p->committed >= 0 ? p->committed : p->log_start;
        s->uncommitted += p->committed < 0;
        s->total_lag += p->end > from ? p->end - from : 0;
    }
    return 0;
}

/* The records the group has committed since base: per partition the
 * committed offset's progress (from the log start where none). */
static int64_t committed_since(const snapshot_t *base, const snapshot_t *now)
{
    int64_t n = 0;
    for (size_t i = 0; i < now->nrows; i++)
        for (size_t j = 0; j < base->nrows; j++) {
            const is_admin_part_t *a = &base->rows[j], *b = &now->rows[i];
            if (a->partition != b->partition || strcmp(a->topic, b->topic))
                continue;
            int64_t from = a->committed >= 0 ? a->committed : a->log_start;
            int64_t to = b->committed >= 0 ? b->committed : b->log_start;
            n += to - from;
        }
    return n;
}

static json_t *json_offset(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *to_json(const status_opts_t *o, const snapshot_t *s)
{
    const is_admin_group_t *g = &s->g;
    json_t *members = json_array(), *parts = json_array();
    char now[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (size_t i = 0; i < g->nmembers; i++) {
        const is_admin_member_t *m = &g->members[i];
        json_t *as = json_array();
        for (int k = 0; k < m->assignment->cnt; k++)
            json_array_append_new(as,
                                  json_pack("{s:s, s:i}", "topic", m->assignment->elems[k].topic,
                                            "partition", (int)m->assignment->elems[k].partition));
        json_array_append_new(
            members, json_pack("{s:s, s:s, s:s, s:o, s:o}", "member_id", m->member_id, "client_id",
                               m->client_id, "host", m->host, "group_instance_id",
                               m->instance_id ? json_string(m->instance_id) : json_null(),
                               "assignment", as));
    }
    for (size_t i = 0; i < s->nrows; i++) {
        const is_admin_part_t *p = &s->rows[i];
        json_array_append_new(
            parts,
            json_pack("{s:s, s:i, s:o, s:o, s:o, s:o, s:o}", "topic", p->topic, "partition",
                      (int)p->partition, "committed", json_offset(p->committed), "log_start",
                      json_offset(p->log_start), "end", json_offset(p->end), "lag",
                      p->committed >= 0 ? json_integer(p->end - p->committed) : json_null(),
                      "member_id", p->owner ? json_string(p->owner->member_id) : json_null()));
    }
    return json_pack("{s:s, s:s, s:s, s:b, s:s, s:{s:i, s:s, s:i}, s:o, s:o, s:I, s:I}", "time",
                     now, "group", o->group, "state", is_admin_state_name(g->state), "simple",
                     g->simple, "assignor", g->assignor, "coordinator", "id", g->coordinator_id,
                     "host", g->coordinator_host, "port", g->coordinator_port, "members", members,
                     "partitions", parts, "total_lag", (json_int_t)s->total_lag,
                     "partitions_without_commit", (json_int_t)s->uncommitted);
}

static void print_json(const status_opts_t *o, const snapshot_t *s, int compact)
{
    json_t *j = to_json(o, s);
    char *txt = j ? json_dumps(j, compact ? JSON_COMPACT : JSON_INDENT(2)) : NULL;
    if (txt)
        printf("%s\n", txt);
    fflush(stdout);
    free(txt);
    json_decref(j);
}

/* "images:0,1,2 other:0": the assignment sorted (admin.c sorts it). */
static void assignment_text(const rd_kafka_topic_partition_list_t *as, char *buf, size_t size)
{
    size_t n = 0;
    snprintf(buf, size, "%s", as->cnt ? "" : "(none)");
    for (int i = 0; i < as->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &as->elems[i];
        int same = i > 0 && !strcmp(e->topic, as->elems[i - 1].topic);
        int w = same ? snprintf(buf + n, size - n, ",%d", (int)e->partition)
                     : snprintf(buf + n, size - n, "%s%s:%d", i ? " " : "", e->topic,
                                (int)e->partition);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
}

static void print_table(const status_opts_t *o, const snapshot_t *s)
{
    static const char *const phdr[] = {"TOPIC", ">PARTITION", ">COMMITTED", ">END",
                                       ">LAG",  "MEMBER",     "HOST",       "CLIENT ID"};
    static const char *const mhdr[] = {"MEMBER ID", "CLIENT ID", "HOST", "INSTANCE ID",
                                       "ASSIGNMENT"};
    const is_admin_group_t *g = &s->g;
    is_table_t *pt = is_table_new(8, phdr), *mt = is_table_new(5, mhdr);

    printf("group %s: state %s, %zu member%s", o->group, is_admin_state_name(g->state), g->nmembers,
           g->nmembers == 1 ? "" : "s");
    if (g->assignor[0])
        printf(", assignor %s", g->assignor);
    if (g->coordinator_host[0])
        printf(", coordinator %d at %s:%d", g->coordinator_id, g->coordinator_host,
               g->coordinator_port);
    printf("\n");
    for (size_t i = 0; pt && i < s->nrows; i++) {
        const is_admin_part_t *p = &s->rows[i];
        char part[16], com[24], end[24], lag[24];
        snprintf(part, sizeof(part), "%d", (int)p->partition);
        snprintf(com, sizeof(com), "%" PRId64, p->committed);
        snprintf(end, sizeof(end), "%" PRId64, p->end);
        snprintf(lag, sizeof(lag), "%" PRId64, p->end - p->committed);
        const char *row[] = {p->topic,
                             part,
                             p->committed >= 0 ? com : "-",
                             p->end >= 0 ? end : "-",
                             p->committed >= 0 && p->end >= 0 ? lag : "-",
                             p->owner ? p->owner->member_id : "-",
                             p->owner ? p->owner->host : "-",
                             p->owner ? p->owner->client_id : "-"};
        is_table_add(pt, row);
    }
    if (pt)
        is_table_print(pt, stdout, 2);
    printf("total lag: %" PRId64 " record%s on %zu partition%s", s->total_lag,
           s->total_lag == 1 ? "" : "s", s->nrows, s->nrows == 1 ? "" : "s");
    if (s->uncommitted)
        printf(" (%zu without a committed offset, counted from their log start)", s->uncommitted);
    printf("\n");
    if (g->nmembers) {
        printf("members:\n");
        for (size_t i = 0; mt && i < g->nmembers; i++) {
            const is_admin_member_t *m = &g->members[i];
            char as[512];
            assignment_text(m->assignment, as, sizeof(as));
            const char *row[] = {m->member_id, m->client_id, m->host, m->instance_id, as};
            is_table_add(mt, row);
        }
        if (mt)
            is_table_print(mt, stdout, 2);
    }
    fflush(stdout);
    is_table_destroy(pt);
    is_table_destroy(mt);
}

/* Sleeps up to seconds, returning early when a signal asked to stop. */
static void nap(int seconds)
{
    for (int i = 0; i < seconds * 10 && !stop_watch; i++)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
}

static int watch(is_admin_t *ad, const status_opts_t *o, snapshot_t *base)
{
    char errstr[1024], label[300], extra[96];
    snapshot_t last = {0}, now;
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    snprintf(label, sizeof(label), "group %s", o->group);
    is_progress_t *pg = is_progress_new(stderr, label, "records committed", -1, IS_PROGRESS_PLAIN);
    is_progress_update(pg, 0, base->total_lag, NULL);
    while (!stop_watch) {
        nap(o->watch);
        if (stop_watch)
            break;
        if (snapshot_read(ad, o, &now, errstr, sizeof(errstr))) {
            /* On a terminal the progress line is open: end it first. */
            is_log_printf(stderr, "%simgsink status: %s (trying again in %d s)\n",
                          isatty(STDERR_FILENO) ? "\n" : "", errstr, o->watch);
            continue;
        }
        if (o->json)
            print_json(o, &now, 1);
        snprintf(extra, sizeof(extra), "%s, %zu member%s", is_admin_state_name(now.g.state),
                 now.g.nmembers, now.g.nmembers == 1 ? "" : "s");
        is_progress_update(pg, committed_since(base, &now), now.total_lag, extra);
        snapshot_clear(&last);
        last = now;
    }
    is_progress_destroy(pg);
    if (!o->json && last.nrows)
        print_table(o, &last);
    snapshot_clear(&last);
    return 0;
}

int is_status_main(is_config_t *cfg, int argc, char **argv)
{
    status_opts_t o = {0};
    is_admin_t *ad = NULL;
    snapshot_t s = {0};
    is_admin_group_t g = {0};
    rd_kafka_topic_partition_list_t *committed = NULL;
    char errstr[1024];
    int rc = parse_args(&o, cfg, argc, argv);

    if (rc >= 0)
        goto done;
    rc = 1;
    if (!(ad = is_admin_new(cfg, "imgsink-status", errstr, sizeof(errstr)))) {
        is_log_printf(stderr, "imgsink status: %s\n", errstr);
        rc = 2;
        goto done;
    }
    if (is_admin_describe_group(ad, o.group, &g, errstr, sizeof(errstr)) ||
        is_admin_committed(ad, o.group, NULL, &committed, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink status: %s\n", errstr);
        goto done;
    }
    if (!g.nmembers && !committed->cnt) {
        fprintf(stderr,
                "imgsink status: group '%s' not found: Kafka knows no members and no committed "
                "offsets for it (state %s)\n",
                o.group, is_admin_state_name(g.state));
        goto done;
    }
    if (!o.ntopics && pick_topics(&o, cfg, &g, committed)) {
        fprintf(stderr, "imgsink status: out of memory\n");
        goto done;
    }
    if (snapshot_read(ad, &o, &s, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink status: %s\n", errstr);
        goto done;
    }
    if (o.json)
        print_json(&o, &s, o.watch > 0);
    else
        print_table(&o, &s);
    rc = o.watch ? watch(ad, &o, &s) : 0;
done:
    snapshot_clear(&s);
    is_admin_group_clear(&g);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    is_admin_destroy(ad);
    opts_free(&o);
    return rc;
}
