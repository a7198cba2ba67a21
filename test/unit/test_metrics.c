/*
 * test_metrics.c - the Prometheus text rendering follows the exposition
 * format's rules, and librdkafka's statistics are read into lag and broker
 * state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "stats.h"

/* The value of the sample line that starts with prefix (name and labels,
 * followed by a space), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, prefix, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

static int count_lines(const char *text, const char *prefix)
{
    int c = 0;
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        c += !strncmp(l, prefix, n);
    return c;
}

static void counters_and_gauges(void **state)
{
    (void)state;
    is_metrics_reset();
    is_metrics_inc(IS_M_WRITTEN);
    is_metrics_inc(IS_M_WRITTEN);
    is_metrics_inc(is_metrics_dlq_class("image"));
    is_metrics_inc(is_metrics_dlq_class("no-such-class"));
    is_metrics_add(IS_M_PUT_BYTES, 12345);
    is_metrics_inc(IS_M_RETRY_CLAIM_CHECK);
    is_metrics_set(IS_M_INFLIGHT_PIXELS, 4000000);
    is_metrics_set(IS_M_PAUSED_PARTITIONS, 3);

    char *t = is_metrics_render(NULL);
    assert_non_null(t);
    assert_true(sample(t, "imgsink_records_total{outcome=\"written\"}") == 2);
    assert_true(sample(t, "imgsink_records_total{outcome=\"abandoned\"}") == 0);
    assert_true(sample(t, "imgsink_dlq_records_total{class=\"image\"}") == 1);
    assert_true(sample(t, "imgsink_dlq_records_total{class=\"other\"}") == 1);
    assert_true(sample(t, "imgsink_put_bytes_total") == 12345);
    assert_true(sample(t, "imgsink_retries_total{class=\"claim-check\"}") == 1);
    assert_true(sample(t, "imgsink_inflight_pixels") == 4000000);
    assert_true(sample(t, "imgsink_paused_partitions") == 3);
    assert_int_equal(is_metrics_counter(IS_M_WRITTEN), 2);
    free(t);
}

/* Every family: one HELP and one TYPE line, before its samples; names
 * start with imgsink_, counters end in _total. */
static void format_rules(void **state)
{
    (void)state;
    is_metrics_reset();
    char *t = is_metrics_render(NULL), *save = NULL;
    char *copy = strdup(t);
    char families[64][96];
    int nfam = 0, types = 0;
    char cur[96] = "", curtype[16] = "";

    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char name[96], type[16];
        if (sscanf(l, "# TYPE %95s %15s", name, type) == 2) {
            for (int i = 0; i < nfam; i++)
                assert_string_not_equal(families[i], name); /* a family appears once */
            snprintf(families[nfam++], sizeof(families[0]), "%s", name);
            assert_int_equal(strncmp(name, "imgsink_", 8), 0);
            if (!strcmp(type, "counter"))
                assert_string_equal(name + strlen(name) - 6, "_total");
            assert_int_equal(count_lines(t, "# HELP ") > 0, 1);
            snprintf(cur, sizeof(cur), "%s", name);
            snprintf(curtype, sizeof(curtype), "%s", type);
            types++;
            continue;
        }
        if (l[0] == '#')
            continue;
        /* A sample belongs to the family declared last. */
        assert_int_equal(strncmp(l, cur, strlen(cur)), 0);
        if (!strcmp(curtype, "histogram")) {
            const char *suffix = l + strlen(cur);
            /* Labelled histograms (stage="...") put le last in the bucket labels. */
            assert_true(!strncmp(suffix, "_bucket{", 8) || !strncmp(suffix, "_sum ", 5) ||
                        !strncmp(suffix, "_sum{", 5) || !strncmp(suffix, "_count ", 7) ||
                        !strncmp(suffix, "_count{", 7));
            if (!strncmp(suffix, "_bucket{", 8))
                assert_non_null(strstr(suffix, "le=\""));
        }
    }
    assert_true(types >= 12);
    char help[160];
    for (int i = 0; i < nfam; i++) {
        snprintf(help, sizeof(help), "# HELP %.96s ", families[i]);
        assert_int_equal(count_lines(t, help), 1);
    }
    free(copy);
    free(t);
}

/* The stage histograms: one family, one series set per stage label. */
static void stage_histograms(void **state)
{
    (void)state;
    is_metrics_reset();
    is_metrics_observe(IS_M_STAGE_QUEUE, 0.0005);
    is_metrics_observe(IS_M_STAGE_DECODE, 0.3);
    is_metrics_observe(IS_M_STAGE_DECODE, 0.4);
    is_metrics_observe(IS_M_STAGE_RESIZE_ENCODE, 0.2);
    char *t = is_metrics_render(NULL);
    assert_int_equal(count_lines(t, "# TYPE imgsink_stage_duration_seconds histogram"), 1);
    assert_true(sample(t, "imgsink_stage_duration_seconds_bucket{stage=\"queue\",le=\"0.001\"}") ==
                1);
    assert_true(sample(t, "imgsink_stage_duration_seconds_count{stage=\"decode\"}") == 2);
    assert_true(sample(t, "imgsink_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.25\"}") ==
                0);
    assert_true(sample(t, "imgsink_stage_duration_seconds_bucket{stage=\"decode\",le=\"0.5\"}") ==
                2);
    double sum = sample(t, "imgsink_stage_duration_seconds_sum{stage=\"decode\"}");
    assert_true(sum > 0.6999 && sum < 0.7001);
    assert_true(sample(t, "imgsink_stage_duration_seconds_count{stage=\"resize_encode\"}") == 1);
    assert_true(sample(t, "imgsink_stage_duration_seconds_count{stage=\"put\"}") == 0);
    free(t);
}

static void histogram_buckets(void **state)
{
    (void)state;
    is_metrics_reset();
    is_metrics_observe(IS_M_PUT_SECONDS, 0.003);  /* le 0.005 */
    is_metrics_observe(IS_M_PUT_SECONDS, 0.005);  /* le 0.005: bounds are inclusive */
    is_metrics_observe(IS_M_PUT_SECONDS, 0.2);    /* le 0.25 */
    is_metrics_observe(IS_M_PUT_SECONDS, 1000.0); /* +Inf only */
    char *t = is_metrics_render(NULL);
    assert_true(sample(t, "imgsink_put_duration_seconds_bucket{le=\"0.005\"}") == 2);
    assert_true(sample(t, "imgsink_put_duration_seconds_bucket{le=\"0.1\"}") == 2);
    assert_true(sample(t, "imgsink_put_duration_seconds_bucket{le=\"0.25\"}") == 3);
    assert_true(sample(t, "imgsink_put_duration_seconds_bucket{le=\"60\"}") == 3);
    assert_true(sample(t, "imgsink_put_duration_seconds_bucket{le=\"+Inf\"}") == 4);
    assert_true(sample(t, "imgsink_put_duration_seconds_count") == 4);
    double sum = sample(t, "imgsink_put_duration_seconds_sum");
    assert_true(sum > 1000.2079 && sum < 1000.2081);
    assert_true(sample(t, "imgsink_processing_duration_seconds_count") == 0);

    /* Cumulative: every bucket at least the one before. */
    double prev = 0;
    for (const char *l = strstr(t, "imgsink_put_duration_seconds_bucket"); l;
         l = strstr(l + 1, "imgsink_put_duration_seconds_bucket")) {
        double v = strtod(strchr(l, ' ') + 1, NULL);
        assert_true(v >= prev);
        prev = v;
    }
    free(t);
}

static void lag_table(void **state)
{
    (void)state;
    is_metrics_reset();
    is_metrics_lag_t lags[2] = {{"images", 0, 5}, {"we\"ird\\", 3, 0}};
    is_metrics_set_lag(lags, 2);
    char *t = is_metrics_render(NULL);
    assert_true(sample(t, "imgsink_consumer_lag{topic=\"images\",partition=\"0\"}") == 5);
    assert_true(sample(t, "imgsink_consumer_lag{topic=\"we\\\"ird\\\\\",partition=\"3\"}") == 0);
    free(t);
    is_metrics_set_lag(lags, 1); /* partition 3 revoked: its series goes */
    t = is_metrics_render(NULL);
    assert_int_equal(count_lines(t, "imgsink_consumer_lag{"), 1);
    assert_int_equal(count_lines(t, "# TYPE imgsink_consumer_lag gauge"), 1);
    free(t);
    is_metrics_set_lag(NULL, 0); /* no partitions: the family stays, without samples */
    t = is_metrics_render(NULL);
    assert_int_equal(count_lines(t, "imgsink_consumer_lag{"), 0);
    assert_int_equal(count_lines(t, "# TYPE imgsink_consumer_lag gauge"), 1);
    free(t);
}

/* Shaped like librdkafka 2.0.2's statistics of a consumer (trimmed). */
static const char *STATS =
    "{\"name\":\"imgsink#consumer-2\",\"type\":\"consumer\","
    "\"brokers\":{"
    " \"127.0.0.1:9092/1\":{\"nodeid\":1,\"source\":\"configured\",\"state\":\"UP\"},"
    " \"127.0.0.1:9093/2\":{\"nodeid\":2,\"source\":\"learned\",\"state\":\"CONNECT\"},"
    " \"GroupCoordinator\":{\"nodeid\":1,\"source\":\"logical\",\"state\":\"UP\"},"
    " \":0/internal\":{\"nodeid\":-1,\"source\":\"internal\",\"state\":\"UP\"}},"
    "\"topics\":{\"images\":{\"topic\":\"images\",\"partitions\":{"
    " \"0\":{\"partition\":0,\"desired\":true,\"committed_offset\":40,\"lo_offset\":0,"
    "      \"hi_offset\":47,\"ls_offset\":47,\"consumer_lag\":7},"
    " \"1\":{\"partition\":1,\"desired\":true,\"committed_offset\":-1001,\"lo_offset\":10,"
    "      \"hi_offset\":25,\"consumer_lag\":-1},"
    " \"2\":{\"partition\":2,\"desired\":false,\"committed_offset\":3,\"consumer_lag\":9},"
    " \"3\":{\"partition\":3,\"desired\":true,\"committed_offset\":-1001,\"lo_offset\":-1001,"
    "      \"hi_offset\":-1001,\"consumer_lag\":-1},"
    " \"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}}}},"
    "\"cgrp\":{\"state\":\"up\",\"join_state\":\"steady\",\"assignment_size\":3}}";

static void stats_parse(void **state)
{
    (void)state;
    is_stats_t st;
    char err[256];
    assert_int_equal(is_stats_parse(STATS, strlen(STATS), &st, err, sizeof(err)), 0);
    assert_int_equal(st.brokers, 2); /* logical and internal are not brokers */
    assert_int_equal(st.brokers_up, 1);
    assert_string_equal(st.cgrp_state, "up");
    assert_string_equal(st.join_state, "steady");
    /* 0: librdkafka's lag; 1: never committed, the retained log (25-10);
     * 2: not ours; 3: unknown end; -1: internal. */
    assert_int_equal(st.nlag, 2);
    for (size_t i = 0; i < st.nlag; i++) {
        assert_string_equal(st.lag[i].topic, "images");
        if (st.lag[i].partition == 0)
            assert_int_equal(st.lag[i].lag, 7);
        else
            assert_true(st.lag[i].partition == 1 && st.lag[i].lag == 15);
    }
    is_stats_clear(&st);

    assert_int_equal(is_stats_parse("{\"brokers\":", 11, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "statistics"));
    assert_int_equal(is_stats_parse("[1]", 3, &st, err, sizeof(err)), -1);
    /* A producer's document: no group, no partitions wanted. */
    assert_int_equal(is_stats_parse("{\"type\":\"producer\"}", 19, &st, err, sizeof(err)), 0);
    assert_int_equal(st.nlag, 0);
    assert_string_equal(st.cgrp_state, "");
    is_stats_clear(&st);
}

static void stats_callback_publishes(void **state)
{
    (void)state;
    is_metrics_reset();
    char *json = strdup(STATS);
    assert_int_equal(is_stats_cb(NULL, json, strlen(json), NULL), 0);
    free(json);
    assert_int_equal(is_metrics_gauge(IS_M_BROKERS_UP), 1);
    char *t = is_metrics_render(NULL);
    assert_true(sample(t, "imgsink_consumer_lag{topic=\"images\",partition=\"1\"}") == 15);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_and_gauges),
        cmocka_unit_test(format_rules),
        cmocka_unit_test(histogram_buckets),
        cmocka_unit_test(stage_histograms),
        cmocka_unit_test(lag_table),
        cmocka_unit_test(stats_parse),
        cmocka_unit_test(stats_callback_publishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
