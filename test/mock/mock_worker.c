/*
 * mock_worker.c - the worker in-process against librdkafka's mock cluster,
 * with faults injected on the Kafka side: brokers down and up, the group
 * coordinator moving, OffsetCommit errors, and a rebalance while jobs are in
 * flight. The object store is the real MinIO of the local stack, and the
 * outputs are counted with mc, not with imgsink's own S3 client.
 *
 *   mock_worker SCENARIO      (basic | broker-down | coordinator |
 *                              commit-errors | rebalance | join-leave |
 *                              final-commit)
 *
 * Environment: the stack's env file (S3_ENDPOINT, S3_BUCKET, S3_OUT_PREFIX,
 * S3_WORKER_ACCESS_KEY, S3_WORKER_SECRET_KEY, MC, MC_ALIAS). The worker
 * writes with the stack's least-privilege worker identity under the output
 * prefix its policy allows; mc counts with the admin alias. Prints TAP
 * lines; exits 0 unless it could not run at all.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <vips/vips.h>

#include "clock.h"
#include "config.h"
#include "envelope.h"
#include "s3.h"
#include "log.h"
#include "pipeline.h"
#include "worker.h"

#define TOPIC      "mock-images"
#define PARTITIONS 4

static int failures;
static int64_t max_low; /* highest low watermark seen: must stay 0 */
static char prefix[320], group[160];

static void check(int cond, const char *what)
{
    printf("%s - %s\n", cond ? "ok" : "not ok", what);
    fflush(stdout);
    failures += !cond;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A JPEG of random noise: distinct bytes per seed, a few hundred KB. */
static void *make_jpeg(int seed, int w, int h, size_t *len)
{
    VipsImage *im = NULL;
    void *buf = NULL;
    if (vips_gaussnoise(&im, w, h, "sigma", 20.0 + seed % 50, NULL) ||
        vips_jpegsave_buffer(im, &buf, len, "Q", 85, NULL)) {
        fprintf(stderr, "vips: %s\n", vips_error_buffer());
        exit(1);
    }
    g_object_unref(im);
    return buf;
}

static int produce(const char *bootstraps, int n, int size)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, NULL, 0);
    rd_kafka_conf_set(conf, "message.max.bytes", "16777216", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    for (int i = 0; i < n; i++) {
        char id[64];
        size_t len;
        void *img = make_jpeg(i, size, size, &len), *val;
        size_t vlen;
        snprintf(id, sizeof(id), "m%04d", i);
        is_record_t rec = {.id = id,
                           .tenant = "mock",
                           .source = "stream",
                           .uploaded_at_ms = 1767225600000,
                           .content_type = "image/jpeg",
                           .filename = "m.jpg",
                           .retention_days = 7,
                           .payload = img,
                           .payload_len = len,
                           .schema_id = -1};
        if (is_envelope_encode(&rec, -1, &val, &vlen, errstr, sizeof(errstr)))
            return -1;
        /* Spread records over the partitions explicitly. */
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(i % PARTITIONS),
                          RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(val, vlen),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
        g_free(img);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 30000);
    int left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    return left ? -1 : 0;
}

/* Sum of committed offsets of the group and of end offsets, read with a
 * separate consumer that does not join the group. */
static void offsets(const char *bootstraps, int64_t *committed, int64_t *end)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p);
    *committed = *end = 0;
    if (!rd_kafka_committed(rk, parts, 5000))
        for (int p = 0; p < PARTITIONS; p++)
            *committed += parts->elems[p].offset > 0 ? parts->elems[p].offset : 0;
    if (getenv("MOCK_DEBUG"))
        fprintf(stderr, "# committed per partition: %lld %lld %lld %lld\n",
                (long long)parts->elems[0].offset, (long long)parts->elems[1].offset,
                (long long)parts->elems[2].offset, (long long)parts->elems[3].offset);
    for (int p = 0; p < PARTITIONS; p++) {
        int64_t lo, hi;
        if (!rd_kafka_query_watermark_offsets(rk, TOPIC, p, &lo, &hi, 5000)) {
            *end += hi;
            max_low = lo > max_low ? lo : max_low;
            if (getenv("MOCK_DEBUG"))
                fprintf(stderr, "# partition %d: low %lld high %lld\n", p, (long long)lo,
                        (long long)hi);
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

/* Objects under this run's prefix whose name contains name, counted with
 * mc. */
/* Objects under the run's prefix whose listing line contains name, or -1
 * when mc could not list (MinIO busy or restarting): a failed listing is
 * never read as "0 objects", which would look like lost outputs. */
static int count_objects_once(const char *name)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "l=$(%s ls --recursive '%s/%s/%s/' 2>/dev/null) || { echo -1; exit 0; }; "
             "printf '%%s\\n' \"$l\" | grep -c '%s'",
             getenv("MC"), getenv("MC_ALIAS"), getenv("S3_BUCKET"), prefix, name);
    FILE *fp = popen(cmd, "r");
    int n = -1;
    if (fp) {
        if (fscanf(fp, "%d", &n) != 1)
            n = -1;
        pclose(fp);
    }
    return n;
}

static int count_objects(const char *name)
{
    int n = -1;
    for (int attempt = 0; attempt < 5 && (n = count_objects_once(name)) < 0; attempt++) {
        printf("# mc could not list the outputs (attempt %d), trying again\n", attempt + 1);
        sleep_ms(1000);
    }
    return n;
}

static int count_metadata(void)
{
    return count_objects("metadata.json");
}

typedef struct run {
    is_config_t *cfg;
    volatile sig_atomic_t stop;
    int rc;
    char errstr[512];
    pthread_t thr;
} run_t;

static void *worker_main(void *arg)
{
    run_t *r = arg;
    r->rc = is_worker_run(r->cfg, "mock_worker", &r->stop, r->errstr, sizeof(r->errstr));
    return NULL;
}

static is_config_t *worker_config(const char *bootstraps)
{
    char errstr[512], slashed[336];
    is_config_t *cfg = is_config_new();
    snprintf(slashed, sizeof(slashed), "%s/", prefix);
    const char *kv[][2] = {
        {"kafka.bootstrap.servers", bootstraps},
        {"kafka.group.id", group},
        {"kafka.session.timeout.ms", "6000"},
        {"kafka.heartbeat.interval.ms", "500"},
        {"kafka.topic.metadata.refresh.interval.ms", "1000"},
        {"input.topics", TOPIC},
        {"dlq.topic", TOPIC ".dlq"},
        {"s3.endpoint", getenv("S3_ENDPOINT")},
        {"s3.bucket", getenv("S3_BUCKET")},
        {"s3.access.key", getenv("S3_WORKER_ACCESS_KEY")},
        {"s3.secret.key", getenv("S3_WORKER_SECRET_KEY")},
        {"s3.path.style", "true"},
        {"s3.prefix", slashed},
        {"renditions", "small=256x256/jpeg/80,tiny=64x64/webp/70"},
        {"worker.threads", "2"},
        {"retry.backoff.max.ms", "1000"},
        {"http.listen", "127.0.0.1:0"}, /* workers in one process, tests in parallel */
        {"log.level", "info"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (is_config_set(cfg, kv[i][0], kv[i][1], errstr, sizeof(errstr))) {
            fprintf(stderr, "config: %s\n", errstr);
            exit(1);
        }
    /* MOCK_SET="key=value" adds one setting, for investigations. */
    const char *extra = getenv("MOCK_SET");
    if (extra && strchr(extra, '=')) {
        char k[128];
        snprintf(k, sizeof(k), "%.*s", (int)(strchr(extra, '=') - extra), extra);
        is_config_set(cfg, k, strchr(extra, '=') + 1, errstr, sizeof(errstr));
    }
    return cfg;
}

static int violations, samples;

/* Waits until the group committed every end offset (or times out). Every
 * sample also checks the delivery invariant: records are spread over the
 * partitions from offset 0, so the sum of committed offsets counts records
 * whose outputs must all exist; the objects are counted after the offsets
 * are read, and only ever grow. */
static int wait_done(const char *bootstraps, int timeout_s)
{
    double until = is_now_s() + timeout_s;
    int64_t c = 0, e = 0;
    while (is_now_s() < until) {
        offsets(bootstraps, &c, &e);
        int written = count_metadata();
        if (written < 0) {
            printf("# no listing of the outputs: sample skipped\n");
        } else if (samples++, c > written) {
            violations++;
            printf("# committed %lld records but only %d have metadata.json\n", (long long)c,
                   written);
        }
        if (e > 0 && c == e)
            return 1;
        sleep_ms(500);
    }
    fprintf(stderr, "# committed %lld of %lld\n", (long long)c, (long long)e);
    return 0;
}

/* A group member that takes partitions away from the worker for a while
 * and commits nothing, forcing revokes while jobs are in flight. */
static void intruder(const char *bootstraps, int seconds, int leave_early)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    /* Cooperative rebalancing takes two rounds: the worker revokes first,
     * the intruder is assigned in the next one. Hold the partitions for
     * `seconds` once assigned. */
    /* Under a loaded machine (the whole suite runs side by side) the two
     * rounds can take long: wait up to 90 s for the assignment. */
    double until = is_now_s() + (leave_early ? seconds : 90), held_until = 0;
    int got = 0, held = 0;
    rd_kafka_topic_partition_list_t *asg = NULL;
    while (is_now_s() < (held_until ? held_until : until)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) {
            got += !m->err;
            rd_kafka_message_destroy(m);
        }
        if (!held_until && !rd_kafka_assignment(rk, &asg) && asg) {
            if (asg->cnt > 0) {
                held = asg->cnt;
                held_until = is_now_s() + seconds;
            }
            rd_kafka_topic_partition_list_destroy(asg);
            asg = NULL;
        }
    }
    rd_kafka_assignment(rk, &asg);
    if (asg && asg->cnt < held)
        held = asg->cnt;
    printf("# intruder held %d partitions and read %d records without committing\n", held, got);
    if (!leave_early)
        check(held > 0, "a second member took partitions from the worker");
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int main(int argc, char **argv)
{
    const char *scenario = argc > 1 ? argv[1] : "basic";
    char errstr[512];
    int n = 40, size = 700;

    if (!getenv("S3_ENDPOINT") || !getenv("MC")) {
        fprintf(stderr, "mock_worker: source the stack's env file first\n");
        return 2;
    }
    is_log_level = getenv("MOCK_DEBUG") ? IS_LOG_DEBUG : IS_LOG_INFO;
    is_pipeline_vipshome();
    if (VIPS_INIT(argv[0]) || is_envelope_global_init(errstr, sizeof(errstr)) ||
        is_s3_global_init(errstr, sizeof(errstr)))
        return 2;
    snprintf(group, sizeof(group), "g-mock-%s-%ld-%d", scenario, (long)time(NULL), getpid());
    snprintf(prefix, sizeof(prefix), "%.100s/%s",
             getenv("S3_OUT_PREFIX") ? getenv("S3_OUT_PREFIX") : "processed", group + 2);
    /* librdkafka's mock cluster keeps only about 5 MB per partition and
     * drops older records (the low watermark moves up, as with retention):
     * keep every scenario well under that, and check it at the end. */
    if (!strcmp(scenario, "rebalance") || !strcmp(scenario, "join-leave"))
        n = 60; /* more work, so revokes find jobs in flight */

    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, errstr, sizeof(errstr));
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 3);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, TOPIC, PARTITIONS, 3);
    rd_kafka_mock_topic_create(mc, TOPIC ".dlq", 1, 3);
    check(produce(bs, n, size) == 0, "produced the records to the mock cluster");

    run_t r = {.cfg = worker_config(bs)};
    if (!strcmp(scenario, "final-commit") &&
        is_config_set(r.cfg, "kafka.auto.commit.interval.ms", "600000", errstr, sizeof(errstr))) {
        fprintf(stderr, "config: %s\n", errstr);
        return 2;
    }
    pthread_create(&r.thr, NULL, worker_main, &r);

    if (!strcmp(scenario, "broker-down")) {
        /* Take each broker down in turn while records are processed. */
        for (int b = 1; b <= 3; b++) {
            sleep_ms(1500);
            rd_kafka_mock_broker_set_down(mc, b);
            printf("# broker %d down\n", b);
            sleep_ms(2500);
            rd_kafka_mock_broker_set_up(mc, b);
            printf("# broker %d up\n", b);
        }
    } else if (!strcmp(scenario, "coordinator")) {
        for (int b = 1; b <= 3; b++) {
            sleep_ms(1500);
            rd_kafka_mock_coordinator_set(mc, "group", group, (b % 3) + 1);
            printf("# group coordinator moved to broker %d\n", (b % 3) + 1);
        }
    } else if (!strcmp(scenario, "commit-errors")) {
        sleep_ms(1000);
        rd_kafka_mock_push_request_errors(
            mc, 8 /* ApiKey OffsetCommit: the RD_KAFKAP_* names are not public */, 6,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
        printf("# 6 OffsetCommit errors queued\n");
    } else if (!strcmp(scenario, "rebalance")) {
        /* The intruder must join once the worker owns every partition, so
         * that the partitions it gets are revoked from the worker. A fixed
         * wait was not enough on a loaded machine: the intruder joined
         * first, took its share in the first assignment, and the worker
         * had nothing to revoke. Its first record written says the worker
         * holds the partitions (it is the only member). */
        double t0 = is_now_s(), until = t0 + 120;
        int w;
        while ((w = count_metadata()) < 1 && is_now_s() < until)
            sleep_ms(250);
        printf("# the worker wrote its first record %.1f s after the start (%d so far)\n",
               is_now_s() - t0, w);
        if (!getenv("MOCK_NO_INTRUDER"))
            intruder(bs, 4, 0);
    } else if (!strcmp(scenario, "join-leave")) {
        /* A member that joins and leaves again mid-rebalance, twice. */
        sleep_ms(4000);
        intruder(bs, 2, 1);
        sleep_ms(1000);
        intruder(bs, 1, 1);
    }

    if (!strcmp(scenario, "final-commit")) {
        /* Workers stopped at the same moment make the group rebalance under
         * the last commit, which the coordinator refuses for the old
         * generation. Auto-commit is held off, so everything rides on the
         * final commit; the refusal is injected once every record is
         * written. The finished work must still end committed. */
        double until = is_now_s() + 180;
        while (count_metadata() < n && is_now_s() < until)
            sleep_ms(500);
        sleep_ms(1000); /* the worker stores the last offsets */
        rd_kafka_mock_push_request_errors(mc, 8 /* OffsetCommit */, 1,
                                          RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION);
        printf("# every record written; the next OffsetCommit fails with ILLEGAL_GENERATION\n");
        r.stop = 1;
        pthread_join(r.thr, NULL);
        check(r.rc == 0, "the worker stopped cleanly on request");
        int64_t c = 0, e = 0;
        offsets(bs, &c, &e);
        printf("# committed %lld of %lld after the worker left\n", (long long)c, (long long)e);
        check(e > 0 && c == e, "the final commit survived ILLEGAL_GENERATION: committed = end");
        check(count_metadata() == n, "every record's metadata.json exists in MinIO");
        int all = count_objects("/");
        check(all == 3 * n, "every record's two renditions exist in MinIO");
        is_config_destroy(r.cfg);
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mrk);
        return 0;
    }

    int done = wait_done(bs, 180);
    check(max_low == 0, "the mock cluster kept every record (low watermarks stayed 0)");
    check(done, "the group committed every end offset");
    printf("# %d samples of committed offsets during the run\n", samples);
    check(violations == 0, "committed offsets never passed a record without its outputs");
    r.stop = 1;
    pthread_join(r.thr, NULL);
    check(r.rc == 0, "the worker stopped cleanly on request");
    if (r.rc)
        printf("# worker: %s\n", r.errstr);
    int objects = count_metadata();
    printf("# %d of %d records have metadata.json (mc)\n", objects, n);
    check(objects == n, "every record's metadata.json exists in MinIO");
    int all = count_objects("/");
    printf("# %d objects in all, %d expected\n", all, 3 * n);
    check(all == 3 * n, "every record's two renditions exist in MinIO");

    is_config_destroy(r.cfg);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    return 0;
}
