/*
 * replay.c - `imgsink replay`. See replay.h.
 *
 * Out-of-range offsets: an offset below the log start is clamped to the
 * log start (those records were deleted by retention; the nearest replay
 * is from the oldest record kept), and the plan says so. An offset past
 * the end is refused: a committed offset beyond the end makes the next
 * fetch fail with OFFSET_OUT_OF_RANGE, and the worker would then fall back
 * to auto.offset.reset (earliest: reprocess the whole partition), which is
 * never what the operator asked for.
 *
 * Runs on the main thread only.
 */
#include "replay.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "cli.h"
#include "log.h"
#include "table.h"

typedef enum { TO_NONE, TO_OFFSET, TO_TIME, TO_EARLIEST, TO_LATEST } target_kind_t;

typedef struct topic_spec {
    char *topic;
    int32_t *parts; /* NULL: every partition */
    size_t nparts;
} topic_spec_t;

typedef struct plan_row {
    const is_admin_part_t *p;
    int64_t target;
    char note[200];
} plan_row_t;

typedef struct replay {
    const char *group;
    topic_spec_t *specs;
    size_t nspecs;
    target_kind_t kind;
    int64_t value; /* the offset, or the time in ms */
    const char *value_text;
    int dry_run, allow_new;
} replay_t;

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: imgsink replay [-c FILE] [-X key=value] [-b BROKERS] --group G --topic T[:P]\n"
            "                      (--to-offset N | --to-time ISO8601 | --to-earliest | "
            "--to-latest)\n"
            "                      [--dry-run] [--allow-new-group]\n"
            "\n"
            "Moves the committed offsets of consumer group G so its workers process the\n"
            "records from there again. Prints the plan first; refuses while the group has\n"
            "live members (stop the workers first: their next commit would undo the move).\n"
            "Object keys are deterministic, so reprocessed records overwrite their objects.\n"
            "\n"
            "  -g, --group G         consumer group (the workers' kafka.group.id)\n"
            "  -t, --topic T[:P]     topic, or one partition T:P (or T:P,Q,...); repeatable\n"
            "      --to-offset N     from offset N (below the log start: clamped to it;\n"
            "                        past the end: refused)\n"
            "      --to-time TIME    from the first record with a timestamp >= TIME, e.g.\n"
            "                        2026-01-05T10:00:00Z or 2026-01-05T12:00+02:00\n"
            "                        (a partition with none moves to its end)\n"
            "      --to-earliest     from the oldest record kept\n"
            "      --to-latest       skip to the end: nothing is reprocessed, the lag is dropped\n"
            "  -n, --dry-run         print the plan, change nothing\n"
            "      --allow-new-group give offsets to a group Kafka does not know yet\n"
            "  -b, --brokers LIST    bootstrap servers (else kafka.bootstrap.servers)\n"
            "\n"
            "Plan columns: COMMITTED (the group's offset now, '-' if none), NEW, END (log\n"
            "end), REPROCESS (records already committed that will be processed again),\n"
            "SKIP (records never processed that the move skips), TO READ (NEW..END).\n"
            "\n"
            "Exit status: 0 done or dry run, 1 refused or failed, 2 bad usage.\n");
}

static void specs_free(replay_t *r)
{
    for (size_t i = 0; i < r->nspecs; i++) {
        free(r->specs[i].topic);
        free(r->specs[i].parts);
    }
    free(r->specs);
}

/* "T", "T:3" or "T:0,2". Topic names cannot hold ':', so the first ':'
 * splits. */
static int add_spec(replay_t *r, const char *arg)
{
    topic_spec_t *n = realloc(r->specs, (r->nspecs + 1) * sizeof(*n));
    if (!n)
        return -1;
    r->specs = n;
    topic_spec_t *s = &r->specs[r->nspecs];
    memset(s, 0, sizeof(*s));
    const char *colon = strchr(arg, ':');
    s->topic = colon ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
    r->nspecs++;
    if (!s->topic || !*s->topic)
        return -1;
    if (!colon)
        return 0;
    for (const char *p = colon + 1;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return -1;
        int32_t *np = realloc(s->parts, (s->nparts + 1) * sizeof(*np));
        if (!np)
            return -1;
        s->parts = np;
        s->parts[s->nparts++] = (int32_t)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

static int parse_args(replay_t *r, is_config_t *cfg, int argc, char **argv)
{
    enum { O_OFFSET = 256, O_TIME, O_EARLIEST, O_LATEST, O_ALLOW_NEW };
    static const struct option lopts[] = {{"group", required_argument, 0, 'g'},
                                          {"topic", required_argument, 0, 't'},
                                          {"to-offset", required_argument, 0, O_OFFSET},
                                          {"to-time", required_argument, 0, O_TIME},
                                          {"to-earliest", no_argument, 0, O_EARLIEST},
                                          {"to-latest", no_argument, 0, O_LATEST},
                                          {"dry-run", no_argument, 0, 'n'},
                                          {"allow-new-group", no_argument, 0, O_ALLOW_NEW},
                                          {"brokers", required_argument, 0, 'b'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    char errstr[512];
    int c, rc, ntargets = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "g:t:nb:h", lopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            r->group = optarg;
            break;
        case 't':
            if (add_spec(r, optarg)) {
                fprintf(stderr, "imgsink replay: --topic %s: expected TOPIC or TOPIC:PARTITION\n",
                        optarg);
                return 2;
            }
            break;
        case O_OFFSET: {
            char *end;
            ntargets++;
            r->kind = TO_OFFSET;
            r->value_text = optarg;
            r->value = strtoll(optarg, &end, 10);
            if (end == optarg || *end || r->value < 0) {
                fprintf(stderr, "imgsink replay: --to-offset %s: expected an offset >= 0\n",
                        optarg);
                return 2;
            }
            break;
        }
        case O_TIME:
            ntargets++;
            r->kind = TO_TIME;
            r->value_text = optarg;
            if (is_admin_parse_time(optarg, &r->value, errstr, sizeof(errstr))) {
                is_log_printf(stderr, "imgsink replay: --to-time %s\n", errstr);
                return 2;
            }
            break;
        case O_EARLIEST:
        case O_LATEST:
            ntargets++;
            r->kind = c == O_EARLIEST ? TO_EARLIEST : TO_LATEST;
            break;
        case 'n':
            r->dry_run = 1;
            break;
        case O_ALLOW_NEW:
            r->allow_new = 1;
            break;
        default:
            if ((rc = is_cli_common_opt(cfg, "replay", c, optarg, usage)) >= 0)
                return rc;
        }
    }
    if (is_cli_no_operands("replay", argc, argv, optind))
        return 2;
    if (!r->group || !*r->group || !r->nspecs || ntargets != 1) {
        fprintf(stderr, "imgsink replay: --group, --topic and exactly one of --to-offset, "
                        "--to-time, --to-earliest, --to-latest are required\n\n");
        usage(stderr);
        return 2;
    }
    return -1; /* go on */
}

static const char *target_text(const replay_t *r, char *buf, size_t size)
{
    char iso[40];
    time_t t;
    struct tm tm;
    switch (r->kind) {
    case TO_OFFSET:
        snprintf(buf, size, "--to-offset %" PRId64, r->value);
        break;
    case TO_TIME:
        t = (time_t)(r->value / 1000);
        gmtime_r(&t, &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "--to-time %s (%s.%03dZ, %" PRId64 " ms)", r->value_text, iso,
                 (int)(r->value % 1000), r->value);
        break;
    case TO_EARLIEST:
        snprintf(buf, size, "--to-earliest");
        break;
    default:
        snprintf(buf, size, "--to-latest");
        break;
    }
    return buf;
}

/* Picks the rows the specs name; an unknown partition is an error. */
static int select_rows(const replay_t *r, const is_admin_part_t *rows, size_t nrows,
                       plan_row_t **planp, size_t *nplanp, char *errstr, size_t errstr_size)
{
    plan_row_t *plan = calloc(nrows ? nrows : 1, sizeof(*plan));
    size_t n = 0;
    if (!plan) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t s = 0; s < r->nspecs; s++) {
        const topic_spec_t *sp = &r->specs[s];
        int count = 0;
        for (size_t i = 0; i < nrows; i++)
            count += !strcmp(rows[i].topic, sp->topic);
        for (size_t k = 0; k < sp->nparts; k++)
            if (sp->parts[k] >= count) {
                snprintf(errstr, errstr_size,
                         "unknown partition %s:%d: topic %s has %d partition%s (0..%d)", sp->topic,
                         (int)sp->parts[k], sp->topic, count, count == 1 ? "" : "s", count - 1);
                free(plan);
                return -1;
            }
        for (size_t i = 0; i < nrows; i++) {
            int want = !strcmp(rows[i].topic, sp->topic) && !sp->nparts;
            for (size_t k = 0; k < sp->nparts && !want; k++)
                want = !strcmp(rows[i].topic, sp->topic) && rows[i].partition == sp->parts[k];
            for (size_t j = 0; j < n && want; j++) /* named twice: once in the plan */
                want = plan[j].p != &rows[i];
            if (want)
                plan[n++].p = &rows[i];
        }
    }
    *planp = plan;
    *nplanp = n;
    return 0;
}

/* Sets every row's target. Fails when an offset is past a partition's end. */
static int resolve_targets(is_admin_t *ad, const replay_t *r, plan_row_t *plan, size_t n,
                           char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *times = NULL;
    int rc = -1;

    if (r->kind == TO_TIME) {
        times = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(times, plan[i].p->topic, plan[i].p->partition)
                ->offset = r->value;
        if (is_admin_list_offsets(ad, times, errstr, errstr_size))
            goto done;
    }
    for (size_t i = 0; i < n; i++) {
        plan_row_t *pr = &plan[i];
        const is_admin_part_t *p = pr->p;
        switch (r->kind) {
        case TO_OFFSET:
            if (r->value > p->end) {
                snprintf(errstr, errstr_size,
                         "offset %" PRId64 " is out of range for %s:%d, which holds offsets "
                         "%" PRId64 "..%" PRId64 " (end %" PRId64 "); refusing: a committed "
                         "offset past the end would make the workers fall back to "
                         "auto.offset.reset. Use --to-latest to skip to the end.",
                         r->value, p->topic, (int)p->partition, p->log_start,
                         p->end > 0 ? p->end - 1 : 0, p->end);
                goto done;
            }
            pr->target = r->value;
            if (r->value < p->log_start) {
                pr->target = p->log_start;
                snprintf(pr->note, sizeof(pr->note),
                         "clamped to log start %" PRId64 " (older records deleted by retention)",
                         p->log_start);
            }
            break;
        case TO_TIME: {
            const rd_kafka_topic_partition_t *t =
                rd_kafka_topic_partition_list_find(times, p->topic, p->partition);
            pr->target = t && t->offset >= 0 ? t->offset : p->end;
            if (!t || t->offset < 0)
                snprintf(pr->note, sizeof(pr->note), "no record at or after that time: end");
            break;
        }
        case TO_EARLIEST:
            pr->target = p->log_start;
            break;
        default:
            pr->target = p->end;
            break;
        }
        if (!pr->note[0] && pr->target == p->committed)
            snprintf(pr->note, sizeof(pr->note), "unchanged");
    }
    rc = 0;
done:
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    return rc;
}

static void fmt_off(char *buf, size_t size, int64_t v)
{
    if (v < 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%" PRId64, v);
}

/* Prints the plan; returns the total records to read after the move. */
static int64_t print_plan(const replay_t *r, const is_admin_group_t *g, const plan_row_t *plan,
                          size_t n)
{
    static const char *const hdr[] = {"TOPIC",      ">PARTITION", ">COMMITTED", ">NEW", ">END",
                                      ">REPROCESS", ">SKIP",      ">TO READ",   "NOTE"};
    char t[96];
    int64_t reprocess = 0, skip = 0, to_read = 0;
    is_table_t *tb = is_table_new(9, hdr);

    printf("replay plan for group %s (state %s, %zu member%s), %s:\n", r->group,
           is_admin_state_name(g->state), g->nmembers, g->nmembers == 1 ? "" : "s",
           target_text(r, t, sizeof(t)));
    for (size_t i = 0; i < n; i++) {
        const is_admin_part_t *p = plan[i].p;
        int64_t c = p->committed, rp = c >= 0 && c > plan[i].target ? c - plan[i].target : 0,
                sk = c >= 0 && plan[i].target > c ? plan[i].target - c : 0,
                tr = p->end > plan[i].target ? p->end - plan[i].target : 0;
        char part[16], com[24], nw[24], end[24], rps[24], sks[24], trs[24];
        reprocess += rp;
        skip += sk;
        to_read += tr;
        snprintf(part, sizeof(part), "%d", (int)p->partition);
        fmt_off(com, sizeof(com), c);
        fmt_off(nw, sizeof(nw), plan[i].target);
        fmt_off(end, sizeof(end), p->end);
        snprintf(rps, sizeof(rps), "%" PRId64, rp);
        snprintf(sks, sizeof(sks), "%" PRId64, sk);
        snprintf(trs, sizeof(trs), "%" PRId64, tr);
        const char *row[] = {p->topic, part, com, nw, end, rps, sks, trs, plan[i].note};
        if (tb)
            is_table_add(tb, row);
    }
    if (tb)
        is_table_print(tb, stdout, 2);
    is_table_destroy(tb);
    printf("total: %" PRId64 " record%s to reprocess, %" PRId64 " skipped, %" PRId64
           " to read on %zu partition%s\n",
           reprocess, reprocess == 1 ? "" : "s", skip, to_read, n, n == 1 ? "" : "s");
    fflush(stdout);
    return to_read;
}

static void print_members(FILE *fp, const is_admin_group_t *g)
{
    for (size_t i = 0; i < g->nmembers; i++) {
        const is_admin_member_t *m = &g->members[i];
        fprintf(fp, "  member %s (client id %s, host %s%s%s)\n", m->member_id, m->client_id,
                m->host, m->instance_id ? ", group.instance.id " : "",
                m->instance_id ? m->instance_id : "");
    }
}

/* Nothing but the group's own members can be live, so any member refuses
 * the replay. The broker enforces the same rule on the commit itself (see
 * is_admin_alter), which closes the window between this check and it. */
static int refuse_live(const replay_t *r, const is_admin_group_t *g, FILE *fp)
{
    if (!g->nmembers && (g->state == RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY ||
                         g->state == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD))
        return 0;
    int statics = 0;
    for (size_t i = 0; i < g->nmembers; i++)
        statics += g->members[i].instance_id != NULL;
    if (r->dry_run)
        fprintf(fp, "note: a replay without --dry-run would refuse now: ");
    else
        fprintf(fp, "imgsink replay: refusing: ");
    fprintf(fp,
            "group %s has %zu live member%s (state %s); stop the workers first, or a live "
            "member's next commit undoes the replay:\n",
            r->group, g->nmembers, g->nmembers == 1 ? "" : "s", is_admin_state_name(g->state));
    print_members(fp, g);
    if (statics)
        fprintf(fp, "  (members with a group.instance.id stay in the group until "
                    "session.timeout.ms after they stop)\n");
    return 1;
}

static int apply(is_admin_t *ad, const replay_t *r, const plan_row_t *plan, size_t n,
                 int64_t to_read)
{
    char errstr[1024];
    rd_kafka_topic_partition_list_t *moves = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_topic_partition_list_t *after = NULL;
    int rc = 1;

    for (size_t i = 0; i < n; i++)
        if (plan[i].target != plan[i].p->committed)
            rd_kafka_topic_partition_list_add(moves, plan[i].p->topic, plan[i].p->partition)
                ->offset = plan[i].target;
    if (!moves->cnt) {
        printf("nothing to change: every committed offset is already at its target\n");
        rc = 0;
        goto done;
    }
    if (is_admin_alter(ad, r->group, moves, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink replay: %s\n", errstr);
        goto done;
    }
    /* Read back what Kafka now holds rather than trusting the answer. */
    if (is_admin_committed(ad, r->group, moves, &after, errstr, sizeof(errstr))) {
        is_log_printf(stderr,
                      "imgsink replay: offsets committed, but reading them back failed: %s\n",
                      errstr);
        goto done;
    }
    for (int i = 0; i < moves->cnt; i++) {
        const rd_kafka_topic_partition_t *a = rd_kafka_topic_partition_list_find(
            after, moves->elems[i].topic, moves->elems[i].partition);
        if (!a || a->offset != moves->elems[i].offset) {
            fprintf(stderr,
                    "imgsink replay: %s:%d: committed %" PRId64 " after the move, "
                    "expected %" PRId64 "\n",
                    moves->elems[i].topic, (int)moves->elems[i].partition, a ? a->offset : -1,
                    moves->elems[i].offset);
            goto done;
        }
    }
    printf("done: group %s now starts %d partition%s at the new offsets; start the workers to "
           "read %" PRId64 " record%s\n",
           r->group, moves->cnt, moves->cnt == 1 ? "" : "s", to_read, to_read == 1 ? "" : "s");
    rc = 0;
done:
    rd_kafka_topic_partition_list_destroy(moves);
    if (after)
        rd_kafka_topic_partition_list_destroy(after);
    return rc;
}

int is_replay_main(is_config_t *cfg, int argc, char **argv)
{
    replay_t r = {0};
    is_admin_t *ad = NULL;
    is_admin_group_t g = {0};
    is_admin_part_t *rows = NULL;
    size_t nrows = 0, nplan = 0, ntopics = 0;
    plan_row_t *plan = NULL;
    rd_kafka_topic_partition_list_t *any = NULL;
    const char **topics = NULL;
    char errstr[1024];
    int rc = parse_args(&r, cfg, argc, argv);

    if (rc >= 0)
        goto done;
    rc = 1;
    if (!(ad = is_admin_new(cfg, "imgsink-replay", errstr, sizeof(errstr)))) {
        is_log_printf(stderr, "imgsink replay: %s\n", errstr);
        rc = 2;
        goto done;
    }
    if (!(topics = calloc(r.nspecs, sizeof(char *))))
        goto done;
    for (size_t i = 0; i < r.nspecs; i++) {
        size_t j = 0;
        while (j < ntopics && strcmp(topics[j], r.specs[i].topic))
            j++;
        if (j == ntopics)
            topics[ntopics++] = r.specs[i].topic;
    }
    if (is_admin_describe_group(ad, r.group, &g, errstr, sizeof(errstr)) ||
        is_admin_committed(ad, r.group, NULL, &any, errstr, sizeof(errstr)) ||
        is_admin_collect(ad, r.group, &g, topics, ntopics, &rows, &nrows, errstr, sizeof(errstr)) ||
        select_rows(&r, rows, nrows, &plan, &nplan, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink replay: %s\n", errstr);
        goto done;
    }
    if (!g.nmembers && !any->cnt && !r.allow_new) {
        fprintf(stderr,
                "imgsink replay: group '%s' not found: Kafka knows no members and no committed "
                "offsets for it. Check the name (imgsink status --group %s), or add "
                "--allow-new-group to give a new group its starting offsets.\n",
                r.group, r.group);
        goto done;
    }
    if (resolve_targets(ad, &r, plan, nplan, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink replay: %s\n", errstr);
        goto done;
    }
    int64_t to_read = print_plan(&r, &g, plan, nplan);
    int live = refuse_live(&r, &g, r.dry_run ? stdout : stderr);
    if (r.dry_run) {
        printf("dry run: no offsets changed\n");
        rc = 0;
    } else if (!live) {
        rc = apply(ad, &r, plan, nplan, to_read);
    }
done:
    free(plan);
    free(topics);
    if (any)
        rd_kafka_topic_partition_list_destroy(any);
    is_admin_parts_free(rows, nrows);
    is_admin_group_clear(&g);
    is_admin_destroy(ad);
    specs_free(&r);
    return rc;
}
