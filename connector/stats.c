/*
 * stats.c - librdkafka statistics to metrics and readiness. See stats.h.
 *
 * The document (librdkafka's STATISTICS.md) has, among much else:
 *   brokers.NAME.{source, state}   source configured|learned|internal|logical
 *   cgrp.{state, join_state}
 *   topics.T.partitions.P.{desired, consumer_lag, committed_offset,
 *                          lo_offset, hi_offset, ls_offset}
 * P = -1 is librdkafka's internal unassigned partition.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "health.h"
#include "log.h"

static int64_t int_of(json_t *obj, const char *key, int64_t def)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static const char *str_of(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void read_brokers(json_t *brokers, is_stats_t *st)
{
    const char *name;
    json_t *b;
    json_object_foreach(brokers, name, b)
    {
        const char *src = str_of(b, "source");
        /* internal: the client's own placeholder; logical: the group
         * coordinator's handle, a second view of a real broker. */
        if (strcmp(src, "configured") && strcmp(src, "learned"))
            continue;
        st->brokers++;
        if (!strcmp(str_of(b, "state"), "UP"))
            st->brokers_up++;
    }
}

/* The lag of one wanted partition, or -1 when unknown. */
static int64_t partition_lag(json_t *p)
{
    int64_t lag = int_of(p, "consumer_lag", -1);
    if (lag >= 0)
        return lag;
    /* Never committed (an offset < 0): with auto.offset.reset=earliest, the
     * worker's default, everything retained is still to do. */
    int64_t committed = int_of(p, "committed_offset", -1);
    int64_t lo = int_of(p, "lo_offset", -1), hi = int_of(p, "hi_offset", -1);
    if (committed < 0 && lo >= 0 && hi >= lo)
        return hi - lo;
    return -1;
}

static int read_topics(json_t *topics, is_stats_t *st)
{
    const char *tname, *pname;
    json_t *t, *p;
    size_t cap = 0;

    json_object_foreach(topics, tname, t)
    {
        json_object_foreach(json_object_get(t, "partitions"), pname, p)
        {
            int64_t part = int_of(p, "partition", -1), lag;
            if (part < 0 || !json_is_true(json_object_get(p, "desired")) ||
                (lag = partition_lag(p)) < 0)
                continue;
            if (st->nlag == cap) {
                cap = cap ? 2 * cap : 16;
                is_metrics_lag_t *n = realloc(st->lag, cap * sizeof(*n));
                if (!n)
                    return -1;
                st->lag = n;
            }
            is_metrics_lag_t *l = &st->lag[st->nlag++];
            snprintf(l->topic, sizeof(l->topic), "%s", tname);
            l->partition = (int32_t)part;
            l->lag = lag;
        }
    }
    return 0;
}

int is_stats_parse(const char *json, size_t len, is_stats_t *st, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    int rc = -1;

    memset(st, 0, sizeof(*st));
    if (!root || !json_is_object(root)) {
        snprintf(errstr, errstr_size, "statistics: not a JSON object: %s",
                 root ? "wrong type" : jerr.text);
        goto done;
    }
    read_brokers(json_object_get(root, "brokers"), st);
    json_t *cgrp = json_object_get(root, "cgrp");
    snprintf(st->cgrp_state, sizeof(st->cgrp_state), "%s", str_of(cgrp, "state"));
    snprintf(st->join_state, sizeof(st->join_state), "%s", str_of(cgrp, "join_state"));
    if (read_topics(json_object_get(root, "topics"), st)) {
        snprintf(errstr, errstr_size, "statistics: out of memory");
        is_stats_clear(st);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

void is_stats_clear(is_stats_t *st)
{
    if (!st)
        return;
    free(st->lag);
    st->lag = NULL;
    st->nlag = 0;
}

int is_stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
    is_stats_t st;
    char errstr[256];
    (void)rk;
    (void)opaque;

    if (is_stats_parse(json, json_len, &st, errstr, sizeof(errstr))) {
        IS_WARN("stats", NULL, "%s", errstr);
        return 0;
    }
    is_metrics_set_lag(st.lag, st.nlag);
    is_metrics_set(IS_M_BROKERS_UP, st.brokers_up);
    is_health_kafka(st.brokers_up, st.cgrp_state);
    is_stats_clear(&st);
    return 0;
}
