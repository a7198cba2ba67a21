/*
 * lagwatch.c - follows a consumer group's committed offsets on one topic
 * until they reach the end offsets, for the benchmark's end-to-end timing.
 *
 *   lagwatch -b BROKERS -g GROUP -t TOPIC -p PARTITIONS [-i INTERVAL_MS] [-T TIMEOUT_S]
 *
 * Never joins the group: it asks the group coordinator for the committed
 * offsets (OffsetFetch) and the partition leaders for the end offsets every
 * INTERVAL_MS (default 20). Prints one JSON line per change of the committed
 * total, {"t": UNIX_SECONDS, "committed": N, "end": M}, and exits 0 on the
 * first read where every partition's committed offset equals its end offset
 * (end > 0), 1 on timeout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -b BROKERS -g GROUP -t TOPIC -p PARTITIONS [-i INTERVAL_MS] "
            "[-T TIMEOUT_S]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *group = NULL, *topic = NULL;
    int nparts = 0, interval_ms = 20, timeout_s = 900, opt;
    char errstr[512];
    long long last = -1;

    while ((opt = getopt(argc, argv, "b:g:t:p:i:T:")) != -1) {
        switch (opt) {
        case 'b':
            brokers = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'p':
            nparts = atoi(optarg);
            break;
        case 'i':
            interval_ms = atoi(optarg);
            break;
        case 'T':
            timeout_s = atoi(optarg);
            break;
        default:
            usage(argv[0]);
        }
    }
    if (!brokers || !group || !topic || nparts < 1 || interval_ms < 1)
        usage(argv[0]);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr))) {
        fprintf(stderr, "lagwatch: %s\n", errstr);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "lagwatch: %s\n", errstr);
        return 2;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p);

    double deadline = wall_s() + timeout_s;
    int rc = 1;
    while (wall_s() < deadline) {
        long long committed = 0, end = 0;
        int done = 1;
        rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, 5000);
        for (int p = 0; p < nparts && !err; p++) {
            int64_t lo = 0, hi = 0;
            /* A partition never committed (no records yet) counts as 0. */
            int64_t c = parts->elems[p].offset > 0 ? parts->elems[p].offset : 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000)) {
                done = 0;
                break;
            }
            end += hi;
            committed += c;
            done &= c == hi;
        }
        if (!err) {
            if (committed != last) {
                printf("{\"t\": %.3f, \"committed\": %lld, \"end\": %lld}\n", wall_s(), committed,
                       end);
                fflush(stdout);
                last = committed;
            }
            if (done && end > 0) {
                rc = 0;
                break;
            }
        }
        struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return rc;
}
