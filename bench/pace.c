/*
 * pace.c - copies the records of one topic to another, spread round-robin
 * over the destination's partitions and optionally at a fixed rate, for the
 * benchmark's small-image workload.
 *
 *   pace -b BROKERS -s SOURCE -S SOURCE_PARTITIONS -t DEST -p DEST_PARTITIONS
 *        [-n COUNT] [-r RATE_PER_S]
 *
 * `imgsink produce` keys every record by its id, so librdkafka's partitioner
 * spreads a few hundred records unevenly (one partition can hold twice
 * another's share); the per-partition fairness the workload measures needs an
 * even backlog. So the records are produced once to SOURCE, read back whole
 * into memory (key and value: imgsink produce sets no headers), and the
 * COUNT first (default: all) are produced to DEST with record i on
 * partition i % DEST_PARTITIONS. Without -r as fast as librdkafka takes them;
 * with -r record i is produced at start + i / RATE (a fixed schedule, so a
 * late record does not shift the ones after it), linger.ms 0, and its
 * timestamp is the time of that produce call: the start of its end-to-end
 * latency. Prints one JSON line: records, seconds, rate_per_s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

typedef struct {
    void *key, *val;
    size_t klen, vlen;
} rec_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -b BROKERS -s SOURCE -S SOURCE_PARTITIONS -t DEST -p DEST_PARTITIONS "
            "[-n COUNT] [-r RATE_PER_S]\n",
            argv0);
    exit(2);
}

static void *dup_bytes(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Reads every record of SOURCE (all partitions, start to end) into *out. */
static int read_source(const char *brokers, const char *src, int nsrc, rec_t **out, int *nout)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int cap = 0, n = 0, eof = 0, rc = -1;
    rec_t *recs = NULL;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "bench-pace", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr))) {
        fprintf(stderr, "pace: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "pace: %s\n", errstr);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nsrc);
    for (int p = 0; p < nsrc; p++)
        rd_kafka_topic_partition_list_add(parts, src, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    /* assign, not subscribe: no group membership, no commits. */
    if (rd_kafka_assign(rk, parts)) {
        fprintf(stderr, "pace: cannot assign %s\n", src);
        goto done;
    }
    double deadline = mono_s() + 60;
    while (eof < nsrc && mono_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (m->err) {
            fprintf(stderr, "pace: %s: %s\n", src, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto done;
        } else {
            if (n == cap) {
                rec_t *r = realloc(recs, sizeof(*recs) * (size_t)(cap = cap ? 2 * cap : 256));
                if (!r) {
                    rd_kafka_message_destroy(m);
                    goto done;
                }
                recs = r;
            }
            recs[n].klen = m->key_len;
            recs[n].vlen = m->len;
            recs[n].key = dup_bytes(m->key, m->key_len);
            recs[n].val = dup_bytes(m->payload, m->len);
            if (!recs[n].key || !recs[n].val) {
                rd_kafka_message_destroy(m);
                goto done;
            }
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    if (eof < nsrc) {
        fprintf(stderr, "pace: %s: end of %d of %d partitions reached in 60 s\n", src, eof, nsrc);
        goto done;
    }
    rc = 0;
done:
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = recs;
    *nout = n;
    return rc;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (m->err) {
        ++*(int *)opaque;
        fprintf(stderr, "pace: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *src = NULL, *dst = NULL;
    int nsrc = 0, ndst = 0, count = -1, opt, failed = 0, nrec = 0;
    double rate = 0;
    char errstr[512];
    rec_t *recs = NULL;

    while ((opt = getopt(argc, argv, "b:s:S:t:p:n:r:")) != -1) {
        switch (opt) {
        case 'b':
            brokers = optarg;
            break;
        case 's':
            src = optarg;
            break;
        case 'S':
            nsrc = atoi(optarg);
            break;
        case 't':
            dst = optarg;
            break;
        case 'p':
            ndst = atoi(optarg);
            break;
        case 'n':
            count = atoi(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        default:
            usage(argv[0]);
        }
    }
    if (!brokers || !src || !dst || nsrc < 1 || ndst < 1 || rate < 0)
        usage(argv[0]);
    if (read_source(brokers, src, nsrc, &recs, &nrec))
        return 1;
    if (count < 0 || count > nrec)
        count = nrec;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "linger.ms", rate > 0 ? "0" : "5", errstr, sizeof(errstr)) ||
        /* Whole photographs (several MB) as imgsink produce sends them; the
         * local stack's broker takes up to 64 MiB. */
        rd_kafka_conf_set(conf, "message.max.bytes", "67108864", errstr, sizeof(errstr))) {
        fprintf(stderr, "pace: %s\n", errstr);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &failed);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "pace: %s\n", errstr);
        return 2;
    }
    double t0 = mono_s();
    for (int i = 0; i < count; i++) {
        if (rate > 0) {
            double wait = t0 + i / rate - mono_s();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        for (;;) {
            rd_kafka_resp_err_t err =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(dst), RD_KAFKA_V_PARTITION(i % ndst),
                                  RD_KAFKA_V_KEY(recs[i].key, recs[i].klen),
                                  RD_KAFKA_V_VALUE(recs[i].val, recs[i].vlen), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 100);
                continue;
            }
            if (err) {
                fprintf(stderr, "pace: produce: %s\n", rd_kafka_err2str(err));
                return 1;
            }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    double t1 = mono_s();
    if (rd_kafka_flush(rk, 60000)) {
        fprintf(stderr, "pace: records still undelivered after 60 s\n");
        failed++;
    }
    rd_kafka_destroy(rk);
    printf("{\"records\": %d, \"seconds\": %.3f, \"rate_per_s\": %.3f}\n", count, t1 - t0,
           t1 > t0 ? count / (t1 - t0) : 0.0);
    for (int i = 0; i < nrec; i++) {
        free(recs[i].key);
        free(recs[i].val);
    }
    free(recs);
    return failed ? 1 : 0;
}
