/*
 * admin.c - Kafka group and offset queries for the operator commands. See
 * admin.h.
 *
 * librdkafka 2.0.2 behaviours this code relies on or works around:
 * - The Admin API runs on any client type; a producer handle is used so no
 *   consumer-group machinery starts. Its allow.auto.create.topics defaults
 *   to true for producers, so it is forced to false: a status or replay
 *   naming a mistyped topic must not create it.
 * - DescribeConsumerGroups of a group the broker never heard of is not an
 *   error: Kafka's classic coordinator answers state "Dead", no members,
 *   no protocol type. Newer coordinators may answer GROUP_ID_NOT_FOUND
 *   instead; both read as "Dead" here.
 * - ListConsumerGroupOffsets with a partition list returns offset -1 (no
 *   error) for partitions the group never committed.
 * - AlterConsumerGroupOffsets is an OffsetCommit with generation -1 and no
 *   member id. The header says "only the topic and partition fields are
 *   used"; in fact the offsets are what is committed. It rejects offsets
 *   < 0 locally, and per-partition errors come back in the result list.
 * - rd_kafka_offsets_for_times is ListOffsets: timestamps -2 and -1 mean
 *   log start and end. A producer handle defaults to read_committed, so
 *   "end" is the last stable offset; without transactions it equals the
 *   high watermark that kafka-consumer-groups shows.
 */
#include "admin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"

struct is_admin {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* admin results arrive here */
    char bootstrap[256];
    pthread_mutex_t lock; /* guards last_err: written by librdkafka threads */
    char last_err[512];
};

/* Runs on librdkafka's internal threads. Keeps the last warning or error
 * (the reason a request timed out) and forwards everything to the JSON log
 * at debug level only: an operator command's output is its tables. */
static void admin_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    is_admin_t *ad = rd_kafka_opaque(rk);
    if (ad && level <= IS_LOG_WARN) {
        /* "[thrd:host:port/bootstrap]: host:port/bootstrap: Connect to ...":
         * the thread name adds nothing for an operator. */
        const char *msg = buf;
        if (!strncmp(msg, "[thrd:", 6) && strstr(msg, "]: "))
            msg = strstr(msg, "]: ") + 3;
        pthread_mutex_lock(&ad->lock);
        snprintf(ad->last_err, sizeof(ad->last_err), "%s", msg);
        pthread_mutex_unlock(&ad->lock);
    }
    IS_DEBUG("rdkafka", json_pack("{s:s, s:i}", "facility", fac, "level", level), "%s", buf);
}

is_admin_t *is_admin_new(const is_config_t *cfg, const char *client_id, char *errstr,
                         size_t errstr_size)
{
    is_admin_t *ad = NULL;
    rd_kafka_conf_t *conf = NULL;
    const char *bs = is_config_kafka_get(cfg, "bootstrap.servers");

    if (!bs || !*bs) {
        snprintf(errstr, errstr_size, "no brokers: set kafka.bootstrap.servers (or use -b)");
        return NULL;
    }
    if (!(ad = calloc(1, sizeof(*ad)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ad->lock, NULL);
    snprintf(ad->bootstrap, sizeof(ad->bootstrap), "%s", bs);
    if (!(conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, errstr, errstr_size)))
        goto fail;
    if (is_kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) ||
        is_kafka_conf_set(conf, "allow.auto.create.topics", "false", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "log.connection.close", "false", errstr, errstr_size))
        goto fail;
    rd_kafka_conf_set_log_cb(conf, admin_log_cb);
    rd_kafka_conf_set_opaque(conf, ad);
    if (!(ad->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size)))
        goto fail;
    conf = NULL; /* owned by rk now */
    ad->q = rd_kafka_queue_new(ad->rk);
    return ad;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    is_admin_destroy(ad);
    return NULL;
}

void is_admin_destroy(is_admin_t *ad)
{
    if (!ad)
        return;
    if (ad->q)
        rd_kafka_queue_destroy(ad->q);
    if (ad->rk)
        rd_kafka_destroy(ad->rk);
    pthread_mutex_destroy(&ad->lock);
    free(ad);
}

void is_admin_last_error(is_admin_t *ad, char *buf, size_t size)
{
    pthread_mutex_lock(&ad->lock);
    snprintf(buf, size, "%s", ad->last_err);
    pthread_mutex_unlock(&ad->lock);
}

/* "cannot reach Kafka at B: <why>" with librdkafka's last complaint. */
static void unreachable(is_admin_t *ad, const char *what, rd_kafka_resp_err_t err, char *errstr,
                        size_t errstr_size)
{
    char raw[512], last[768];
    is_admin_last_error(ad, raw, sizeof(raw));
    is_kafka_explain(raw, last, sizeof(last)); /* why a certificate was refused */
    snprintf(errstr, errstr_size, "%s: no answer from Kafka at %s within %d s (%s%s%s)", what,
             ad->bootstrap, IS_ADMIN_TIMEOUT_MS / 1000, rd_kafka_err2str(err),
             last[0] ? "; last error: " : "", last);
}

static rd_kafka_AdminOptions_t *admin_options(is_admin_t *ad)
{
    char why[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(ad->rk, RD_KAFKA_ADMIN_OP_ANY);
    rd_kafka_AdminOptions_set_request_timeout(o, IS_ADMIN_TIMEOUT_MS, why, sizeof(why));
    return o;
}

/* Waits for the result event of the request just sent. The request itself
 * times out after IS_ADMIN_TIMEOUT_MS; the margin covers the hand-over. */
static rd_kafka_event_t *admin_wait(is_admin_t *ad, rd_kafka_event_type_t type, const char *what,
                                    char *errstr, size_t errstr_size)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(ad->q, IS_ADMIN_TIMEOUT_MS + 5000);
    if (!ev) {
        unreachable(ad, what, RD_KAFKA_RESP_ERR__TIMED_OUT, errstr, errstr_size);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != type) {
        snprintf(errstr, errstr_size, "%s: unexpected answer %s", what, rd_kafka_event_name(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
        unreachable(ad, what, err, errstr, errstr_size);
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    if (err) {
        snprintf(errstr, errstr_size, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

int is_admin_topics(is_admin_t *ad, const char *const *topics, size_t ntopics, int *counts,
                    int *leaderless, int *nbrokers, char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    /* All topics, not just ours: a request naming a topic is where brokers
     * auto-create, and the answer for all of them costs one request. */
    rd_kafka_resp_err_t err = rd_kafka_metadata(ad->rk, 1, NULL, &md, IS_ADMIN_TIMEOUT_MS);
    if (err) {
        unreachable(ad, "metadata", err, errstr, errstr_size);
        return -1;
    }
    for (size_t i = 0; i < ntopics; i++) {
        counts[i] = -1;
        if (leaderless)
            leaderless[i] = 0;
        for (int t = 0; t < md->topic_cnt; t++) {
            const rd_kafka_metadata_topic_t *mt = &md->topics[t];
            if (strcmp(mt->topic, topics[i]) || mt->err)
                continue;
            counts[i] = mt->partition_cnt;
            for (int p = 0; leaderless && p < mt->partition_cnt; p++)
                leaderless[i] += mt->partitions[p].err || mt->partitions[p].leader < 0;
        }
    }
    if (nbrokers)
        *nbrokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    return 0;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

void is_admin_group_clear(is_admin_group_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nmembers; i++) {
        is_admin_member_t *m = &g->members[i];
        free(m->member_id);
        free(m->client_id);
        free(m->host);
        free(m->instance_id);
        if (m->assignment)
            rd_kafka_topic_partition_list_destroy(m->assignment);
    }
    free(g->members);
    free(g->group_id);
    free(g->assignor);
    free(g->coordinator_host);
    memset(g, 0, sizeof(*g));
}

/* Group coordinator errors that pass: the coordinator moved, or is still
 * loading its __consumer_offsets partition (the first group request on a
 * fresh cluster gets NOT_COORDINATOR). librdkafka 2.0.2's Admin API hands
 * these to the caller instead of retrying, so the calls below retry them
 * for up to IS_ADMIN_TIMEOUT_MS, as Kafka's own admin client does. */
static int coordinator_busy(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
           e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

static int partitions_busy(const rd_kafka_topic_partition_list_t *pl)
{
    for (int i = 0; pl && i < pl->cnt; i++)
        if (coordinator_busy(pl->elems[i].err))
            return 1;
    return 0;
}

#define ADMIN_RETRY_MS 250

/* Sleeps before another try; 0 when the time for tries is up. */
static int retry_wait(int *waited_ms)
{
    if (*waited_ms >= IS_ADMIN_TIMEOUT_MS)
        return 0;
    nanosleep(&(struct timespec){0, ADMIN_RETRY_MS * 1000000L}, NULL);
    *waited_ms += ADMIN_RETRY_MS;
    return 1;
}

/* Returns 0, -1, or 1 when the coordinator was busy (retry). */
static int describe_once(is_admin_t *ad, const char *group, is_admin_group_t *out, char *errstr,
                         size_t errstr_size)
{
    rd_kafka_AdminOptions_t *opts = admin_options(ad);
    rd_kafka_event_t *ev = NULL;
    const char *groups[1] = {group};
    size_t cnt = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    rd_kafka_DescribeConsumerGroups(ad->rk, groups, 1, opts, ad->q);
    if (!(ev = admin_wait(ad, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, "describe group",
                          errstr, errstr_size)))
        goto done;
    const rd_kafka_ConsumerGroupDescription_t **descs =
        rd_kafka_DescribeConsumerGroups_result_groups(
            rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
    if (cnt != 1) {
        snprintf(errstr, errstr_size, "describe group %s: %zu answers", group, cnt);
        goto done;
    }
    const rd_kafka_ConsumerGroupDescription_t *d = descs[0];
    const rd_kafka_error_t *gerr = rd_kafka_ConsumerGroupDescription_error(d);
    out->group_id = strdup(group);
    out->assignor = strdup("");
    out->coordinator_host = strdup("");
    if (gerr && rd_kafka_error_code(gerr) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        out->state = RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
        rc = 0;
        goto done;
    }
    if (gerr) {
        snprintf(errstr, errstr_size, "describe group %s: %s", group, rd_kafka_error_string(gerr));
        rc = coordinator_busy(rd_kafka_error_code(gerr)) ? 1 : -1;
        goto done;
    }
    out->state = rd_kafka_ConsumerGroupDescription_state(d);
    out->simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d);
    free(out->assignor);
    out->assignor = dup_or_empty(rd_kafka_ConsumerGroupDescription_partition_assignor(d));
    const rd_kafka_Node_t *node = rd_kafka_ConsumerGroupDescription_coordinator(d);
    if (node) {
        free(out->coordinator_host);
        out->coordinator_id = rd_kafka_Node_id(node);
        out->coordinator_host = dup_or_empty(rd_kafka_Node_host(node));
        out->coordinator_port = rd_kafka_Node_port(node);
    }
    size_t n = rd_kafka_ConsumerGroupDescription_member_count(d);
    out->members = calloc(n ? n : 1, sizeof(*out->members));
    for (size_t i = 0; out->members && i < n; i++) {
        const rd_kafka_MemberDescription_t *md = rd_kafka_ConsumerGroupDescription_member(d, i);
        is_admin_member_t *m = &out->members[out->nmembers++];
        const rd_kafka_MemberAssignment_t *as = rd_kafka_MemberDescription_assignment(md);
        const rd_kafka_topic_partition_list_t *pl =
            as ? rd_kafka_MemberAssignment_partitions(as) : NULL;
        const char *inst = rd_kafka_MemberDescription_group_instance_id(md);
        m->member_id = dup_or_empty(rd_kafka_MemberDescription_consumer_id(md));
        m->client_id = dup_or_empty(rd_kafka_MemberDescription_client_id(md));
        m->host = dup_or_empty(rd_kafka_MemberDescription_host(md));
        m->instance_id = inst && *inst ? strdup(inst) : NULL;
        m->assignment =
            pl ? rd_kafka_topic_partition_list_copy(pl) : rd_kafka_topic_partition_list_new(0);
        rd_kafka_topic_partition_list_sort(m->assignment, NULL, NULL); /* for display */
    }
    rc = 0;
done:
    if (rc)
        is_admin_group_clear(out);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    return rc;
}

int is_admin_describe_group(is_admin_t *ad, const char *group, is_admin_group_t *out, char *errstr,
                            size_t errstr_size)
{
    int rc, waited = 0;
    while ((rc = describe_once(ad, group, out, errstr, errstr_size)) == 1 && retry_wait(&waited))
        ;
    return rc ? -1 : 0;
}

const is_admin_member_t *is_admin_group_owner(const is_admin_group_t *g, const char *topic,
                                              int32_t partition)
{
    for (size_t i = 0; i < g->nmembers; i++)
        if (rd_kafka_topic_partition_list_find(g->members[i].assignment, topic, partition))
            return &g->members[i];
    return NULL;
}

/* The first per-partition error of a list as "topic[p]: reason", or 0. */
static int partition_error(const rd_kafka_topic_partition_list_t *pl, const char *what,
                           char *errstr, size_t errstr_size)
{
    for (int i = 0; pl && i < pl->cnt; i++)
        if (pl->elems[i].err) {
            snprintf(errstr, errstr_size, "%s: %s[%d]: %s", what, pl->elems[i].topic,
                     (int)pl->elems[i].partition, rd_kafka_err2str(pl->elems[i].err));
            return -1;
        }
    return 0;
}

/* The answer of a ListConsumerGroupOffsets or AlterConsumerGroupOffsets
 * request for one group: its partition list (owned by the event) in *plp.
 * ask names the request and about its subject in errstr, e.g. "list
 * committed offsets of" and "committed offsets of". Returns 0, 1 the
 * coordinator is busy (worth another try), or -1. */
static int group_result(const rd_kafka_group_result_t **res, size_t cnt, const char *group,
                        const char *ask, const char *about,
                        const rd_kafka_topic_partition_list_t **plp, char *errstr,
                        size_t errstr_size)
{
    *plp = NULL;
    if (cnt != 1) {
        snprintf(errstr, errstr_size, "%s %s: %zu answers", ask, group, cnt);
        return -1;
    }
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(res[0]);
    if (gerr) {
        snprintf(errstr, errstr_size, "%s group %s: %s", about, group, rd_kafka_error_string(gerr));
        return coordinator_busy(rd_kafka_error_code(gerr)) ? 1 : -1;
    }
    *plp = rd_kafka_group_result_partitions(res[0]);
    return 0;
}

static int committed_once(is_admin_t *ad, const char *group,
                          const rd_kafka_topic_partition_list_t *parts,
                          rd_kafka_topic_partition_list_t **outp, char *errstr, size_t errstr_size)
{
    rd_kafka_AdminOptions_t *opts = admin_options(ad);
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, parts);
    rd_kafka_event_t *ev = NULL;
    size_t cnt = 0;
    int rc = -1;

    *outp = NULL;
    rd_kafka_ListConsumerGroupOffsets(ad->rk, &req, 1, opts, ad->q);
    if (!(ev = admin_wait(ad, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
                          "list committed offsets", errstr, errstr_size)))
        goto done;
    const rd_kafka_group_result_t **res = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &cnt);
    const rd_kafka_topic_partition_list_t *pl;
    int gr = group_result(res, cnt, group, "list committed offsets of", "committed offsets of", &pl,
                          errstr, errstr_size);
    if (gr) {
        rc = gr;
        goto done;
    }
    if (partition_error(pl, "committed offsets", errstr, errstr_size)) {
        rc = partitions_busy(pl) ? 1 : -1;
        goto done;
    }
    *outp = pl ? rd_kafka_topic_partition_list_copy(pl) : rd_kafka_topic_partition_list_new(0);
    rc = 0;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opts);
    return rc;
}

int is_admin_committed(is_admin_t *ad, const char *group,
                       const rd_kafka_topic_partition_list_t *parts,
                       rd_kafka_topic_partition_list_t **outp, char *errstr, size_t errstr_size)
{
    int rc, waited = 0;
    while ((rc = committed_once(ad, group, parts, outp, errstr, errstr_size)) == 1 &&
           retry_wait(&waited))
        ;
    return rc ? -1 : 0;
}

int is_admin_list_offsets(is_admin_t *ad, rd_kafka_topic_partition_list_t *parts, char *errstr,
                          size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(ad->rk, parts, IS_ADMIN_TIMEOUT_MS);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
        unreachable(ad, "list offsets", err, errstr, errstr_size);
        return -1;
    }
    if (err) {
        snprintf(errstr, errstr_size, "list offsets: %s", rd_kafka_err2str(err));
        return -1;
    }
    return partition_error(parts, "list offsets", errstr, errstr_size);
}

static int alter_once(is_admin_t *ad, const char *group,
                      const rd_kafka_topic_partition_list_t *parts, char *errstr,
                      size_t errstr_size)
{
    rd_kafka_AdminOptions_t *opts = admin_options(ad);
    rd_kafka_AlterConsumerGroupOffsets_t *req =
        rd_kafka_AlterConsumerGroupOffsets_new(group, parts);
    rd_kafka_event_t *ev = NULL;
    size_t cnt = 0;
    int rc = -1;

    rd_kafka_AlterConsumerGroupOffsets(ad->rk, &req, 1, opts, ad->q);
    if (!(ev = admin_wait(ad, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, "commit new offsets",
                          errstr, errstr_size)))
        goto done;
    const rd_kafka_group_result_t **res = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &cnt);
    const rd_kafka_topic_partition_list_t *pl;
    int gr = group_result(res, cnt, group, "commit new offsets for", "commit new offsets for", &pl,
                          errstr, errstr_size);
    if (gr) {
        rc = gr;
        goto done;
    }
    for (int i = 0; pl && i < pl->cnt; i++) {
        rd_kafka_resp_err_t e = pl->elems[i].err;
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
            e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS) {
            snprintf(errstr, errstr_size,
                     "Kafka refused the new offsets for %s[%d] (%s): a member joined group %s "
                     "since the check; stop the workers and run the replay again",
                     pl->elems[i].topic, (int)pl->elems[i].partition, rd_kafka_err2name(e), group);
            goto done;
        }
    }
    if (partition_error(pl, "commit new offsets", errstr, errstr_size)) {
        rc = partitions_busy(pl) ? 1 : -1;
        goto done;
    }
    rc = 0;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opts);
    return rc;
}

int is_admin_alter(is_admin_t *ad, const char *group, const rd_kafka_topic_partition_list_t *parts,
                   char *errstr, size_t errstr_size)
{
    int rc, waited = 0;
    while ((rc = alter_once(ad, group, parts, errstr, errstr_size)) == 1 && retry_wait(&waited))
        ;
    return rc ? -1 : 0;
}

void is_admin_parts_free(is_admin_part_t *rows, size_t nrows)
{
    for (size_t i = 0; rows && i < nrows; i++)
        free(rows[i].topic);
    free(rows);
}

/* A copy of parts with every offset set to spec (-2 start, -1 end). */
static rd_kafka_topic_partition_list_t *with_offsets(const rd_kafka_topic_partition_list_t *parts,
                                                     int64_t spec)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = spec;
    return l;
}

int is_admin_collect(is_admin_t *ad, const char *group, const is_admin_group_t *g,
                     const char *const *topics, size_t ntopics, is_admin_part_t **rowsp,
                     size_t *nrowsp, char *errstr, size_t errstr_size)
{
    int *counts = calloc(ntopics ? ntopics : 1, sizeof(int));
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(16);
    rd_kafka_topic_partition_list_t *committed = NULL, *start = NULL, *end = NULL;
    is_admin_part_t *rows = NULL;
    int rc = -1;

    *rowsp = NULL;
    *nrowsp = 0;
    if (!counts || is_admin_topics(ad, topics, ntopics, counts, NULL, NULL, errstr, errstr_size))
        goto done;
    for (size_t i = 0; i < ntopics; i++) {
        if (counts[i] < 0) {
            snprintf(errstr, errstr_size, "unknown topic '%s'", topics[i]);
            goto done;
        }
        for (int p = 0; p < counts[i]; p++)
            rd_kafka_topic_partition_list_add(all, topics[i], p);
    }
    if (all->cnt == 0) {
        snprintf(errstr, errstr_size, "no partitions to report");
        goto done;
    }
    start = with_offsets(all, RD_KAFKA_OFFSET_BEGINNING);
    end = with_offsets(all, RD_KAFKA_OFFSET_END);
    if (is_admin_committed(ad, group, all, &committed, errstr, errstr_size) ||
        is_admin_list_offsets(ad, start, errstr, errstr_size) ||
        is_admin_list_offsets(ad, end, errstr, errstr_size))
        goto done;
    if (!(rows = calloc((size_t)all->cnt, sizeof(*rows)))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    for (int i = 0; i < all->cnt; i++) {
        const char *t = all->elems[i].topic;
        int32_t p = all->elems[i].partition;
        const rd_kafka_topic_partition_t *c = rd_kafka_topic_partition_list_find(committed, t, p);
        const rd_kafka_topic_partition_t *s = rd_kafka_topic_partition_list_find(start, t, p);
        const rd_kafka_topic_partition_t *e = rd_kafka_topic_partition_list_find(end, t, p);
        rows[i].topic = strdup(t);
        rows[i].partition = p;
        rows[i].committed = c && c->offset >= 0 ? c->offset : -1;
        rows[i].log_start = s ? s->offset : -1;
        rows[i].end = e ? e->offset : -1;
        rows[i].owner = g ? is_admin_group_owner(g, t, p) : NULL;
    }
    *rowsp = rows;
    *nrowsp = (size_t)all->cnt;
    rows = NULL;
    rc = 0;
done:
    free(counts);
    rd_kafka_topic_partition_list_destroy(all);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    if (start)
        rd_kafka_topic_partition_list_destroy(start);
    if (end)
        rd_kafka_topic_partition_list_destroy(end);
    free(rows);
    return rc;
}

const char *is_admin_state_name(rd_kafka_consumer_group_state_t state)
{
    return rd_kafka_consumer_group_state_name(state);
}

/* Reads exactly n digits into *v. */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        *v = *v * 10 + (**p - '0');
    }
    return 0;
}

int is_admin_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size)
{
    const char *p = s;
    int Y, M, D, h = 0, m = 0, sec = 0, frac = 0, off = 0;
    struct tm tm = {0};

    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D))
        goto bad;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m))
            goto bad;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                goto bad;
            if (*p == '.' || *p == ',') { /* milliseconds; finer digits are dropped */
                int n = 0;
                p++;
                for (; *p >= '0' && *p <= '9'; p++, n++)
                    if (n < 3)
                        frac = frac * 10 + (*p - '0');
                if (n == 0)
                    goto bad;
                for (; n < 3; n++)
                    frac *= 10;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (digits(&p, 2, &oh))
                goto bad;
            if (*p == ':')
                p++;
            if (digits(&p, 2, &om) || oh > 23 || om > 59)
                goto bad;
            off = sign * (oh * 60 + om);
        } else {
            snprintf(errstr, errstr_size,
                     "'%s': a time of day needs a zone: 'Z' for UTC or an offset such as +02:00",
                     s);
            return -1;
        }
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        goto bad;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != D) { /* timegm normalises Feb 30 to Mar 2 */
        snprintf(errstr, errstr_size, "'%s': no such date", s);
        return -1;
    }
    *ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
    return 0;
bad:
    snprintf(errstr, errstr_size,
             "'%s': expected an ISO 8601 time such as 2026-01-05T10:00:00Z, "
             "2026-01-05T12:00+02:00 or 2026-01-05 (UTC midnight)",
             s);
    return -1;
}
