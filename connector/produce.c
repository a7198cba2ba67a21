/*
 * produce.c - `imgsink produce`: publish image files as ImageRecords.
 *
 * For demos, tests and benchmarks. Each file becomes one record with key =
 * id, the id derived from the file name (so producing the same files twice
 * gives the same ids and therefore the same object keys).
 */
#include "produce.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "envelope.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "progress.h"
#include "registry.h"

typedef struct prod_opts {
    const char *topic, *tenant, *source, *id_prefix;
    int schema_id; /* -1: plain Avro */
    int64_t uploaded_at_ms;
    int repeat;
    int retention_days;
    int partitions; /* > 0: round-robin over this many partitions; 0: key hash */
    long long next; /* round-robin: records sent so far */
} prod_opts_t;

typedef struct prod_stats {
    long long queued, delivered, failed, bytes;
} prod_stats_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    prod_stats_t *st = opaque;
    (void)rk;
    if (rkm->err) {
        st->failed++;
        IS_ERR("produce", NULL, "delivery failed: %s", rd_kafka_err2str(rkm->err));
    } else {
        st->delivered++;
    }
}

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"))
        return "image/jpeg";
    if (!strcasecmp(dot, ".png"))
        return "image/png";
    if (!strcasecmp(dot, ".webp"))
        return "image/webp";
    if (!strcasecmp(dot, ".gif"))
        return "image/gif";
    if (!strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff"))
        return "image/tiff";
    if (!strcasecmp(dot, ".heic") || !strcasecmp(dot, ".heif") || !strcasecmp(dot, ".avif"))
        return "image/heif";
    return "application/octet-stream";
}

/* id = prefix + file name without extension, with bytes outside the key
 * charset replaced by '-' (see keys.h). */
static void make_id(const char *prefix, const char *path, int rep, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    int w = snprintf(out, size, "%s%.*s", prefix, (int)n, base);
    if (rep > 0 && w > 0 && (size_t)w < size)
        snprintf(out + w, size - (size_t)w, "-r%d", rep);
    for (char *p = out; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            *p = '-';
    }
    if (out[0] == '.')
        out[0] = '_';
    out[IS_KEYS_MAX_ID < size ? IS_KEYS_MAX_ID : size - 1] = '\0';
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp)
        return -1;
    if (fstat(fileno(fp), &st) || !(*buf = malloc(st.st_size ? (size_t)st.st_size : 1))) {
        fclose(fp);
        return -1;
    }
    *len = fread(*buf, 1, (size_t)st.st_size, fp);
    fclose(fp);
    return *len == (size_t)st.st_size ? 0 : -1;
}

static int produce_file(rd_kafka_t *rk, prod_opts_t *o, const char *path, int rep, prod_stats_t *st)
{
    char id[IS_KEYS_MAX_ID + 1], errstr[512];
    is_record_t rec = {0};
    unsigned char *data = NULL;
    void *val = NULL;
    size_t len = 0, vlen = 0;
    int rc = -1;

    if (read_file(path, &data, &len)) {
        IS_ERR("produce", json_pack("{s:s}", "file", path), "cannot read: %s", strerror(errno));
        return -1;
    }
    make_id(o->id_prefix, path, rep, id, sizeof(id));
    const char *base = strrchr(path, '/');
    rec.id = id;
    rec.tenant = (char *)o->tenant;
    rec.source = (char *)o->source;
    rec.uploaded_at_ms = o->uploaded_at_ms;
    rec.content_type = (char *)content_type_of(path);
    rec.filename = (char *)(base ? base + 1 : path);
    rec.retention_days = o->retention_days;
    rec.payload = data;
    rec.payload_len = len;
    rec.schema_id = o->schema_id;
    if (is_envelope_encode(&rec, o->schema_id, &val, &vlen, errstr, sizeof(errstr))) {
        IS_ERR("produce", json_pack("{s:s}", "file", path), "encode: %s", errstr);
        goto done;
    }
    /* Key hash (librdkafka's default partitioner): one id always lands on
     * the same partition, so records of one key keep their order. */
    int32_t partition =
        o->partitions > 0 ? (int32_t)(o->next % o->partitions) : RD_KAFKA_PARTITION_UA;
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(val, vlen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 100); /* local queue full: wait for deliveries */
            continue;
        }
        if (err) {
            IS_ERR("produce", json_pack("{s:s}", "file", path), "produce: %s",
                   rd_kafka_err2str(err));
            goto done;
        }
        val = NULL; /* owned by librdkafka now (F_FREE) */
        break;
    }
    o->next++;
    st->queued++;
    st->bytes += (long long)vlen;
    rd_kafka_poll(rk, 0);
    rc = 0;
done:
    free(val);
    free(data);
    return rc;
}

/* The topic's partition count from the brokers' metadata, or -1. */
static int partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (!rkt)
        return -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expands directories to their regular files, sorted, so runs are
 * reproducible. */
static int collect(const char *path, char ***list, size_t *n)
{
    struct stat sb;
    if (stat(path, &sb)) {
        IS_ERR("produce", json_pack("{s:s}", "path", path), "%s", strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        *list = realloc(*list, (*n + 1) * sizeof(char *));
        (*list)[(*n)++] = strdup(path);
        return 0;
    }
    DIR *d = opendir(path);
    struct dirent *de;
    size_t first = *n;
    if (!d) {
        IS_ERR("produce", json_pack("{s:s}", "path", path), "%s", strerror(errno));
        return -1;
    }
    while ((de = readdir(d))) {
        char full[4096];
        if (de->d_name[0] == '.')
            continue;
        snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
        if (stat(full, &sb) || !S_ISREG(sb.st_mode))
            continue;
        *list = realloc(*list, (*n + 1) * sizeof(char *));
        (*list)[(*n)++] = strdup(full);
    }
    closedir(d);
    if (*n == first) {
        /* An empty directory would publish nothing and exit 0: a mistyped
         * path must not look like success. (And qsort must not see the
         * NULL list an empty first directory leaves.) */
        fprintf(stderr, "imgsink produce: no image files in %s\n", path);
        return -1;
    }
    qsort(*list + first, *n - first, sizeof(char *), cmp_str);
    return 0;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: imgsink produce [-c FILE] [-X kafka.key=value] --topic TOPIC [options] "
                "FILE|DIR...\n"
                "\n"
                "Publishes each image file as one ImageRecord (key = id = file name without\n"
                "extension, sanitised). Directories are expanded to their files, sorted; a\n"
                "directory without any file is an error.\n"
                "\n"
                "  -t, --topic TOPIC        topic to produce to (required)\n"
                "  -b, --brokers LIST       bootstrap servers (else kafka.bootstrap.servers)\n"
                "      --format F           avro (plain Avro binary, default) or confluent\n"
                "      --schema-id N        schema id for --format confluent (default 1)\n"
                "      --schema-registry URL  register the ImageRecord schema under TOPIC-value\n"
                "                           in this Confluent-compatible Schema Registry and\n"
                "                           produce --format confluent with the id it returns\n"
                "                           (schema.registry.* keys give basic auth and a CA)\n"
                "      --tenant T           tenant (default \"demo\")\n"
                "      --source S           stream or api (default stream)\n"
                "      --id-prefix P        prepended to every id\n"
                "      --uploaded-at MS     uploaded_at in epoch milliseconds (default: now);\n"
                "                           fixes the date part of the object keys\n"
                "      --retention-days N   retention_days (default 7)\n"
                "      --repeat N           publish every file N times with ids ID-r1..ID-rN\n"
                "      --partitioner P      key (default): partition by the hash of the key, so\n"
                "                           all records of one id stay on one partition, in\n"
                "                           order; round-robin: record i goes to partition\n"
                "                           i mod (the topic's partition count), an even spread\n"
                "                           for benchmarks and tests (one id's records may then\n"
                "                           be processed out of order)\n");
}

int is_produce_main(is_config_t *cfg, int argc, char **argv)
{
    static const struct option lopts[] = {{"topic", required_argument, 0, 't'},
                                          {"brokers", required_argument, 0, 'b'},
                                          {"format", required_argument, 0, 'f'},
                                          {"schema-id", required_argument, 0, 's'},
                                          {"schema-registry", required_argument, 0, 'G'},
                                          {"tenant", required_argument, 0, 'T'},
                                          {"source", required_argument, 0, 'S'},
                                          {"id-prefix", required_argument, 0, 'p'},
                                          {"uploaded-at", required_argument, 0, 'u'},
                                          {"repeat", required_argument, 0, 'r'},
                                          {"retention-days", required_argument, 0, 'R'},
                                          {"partitioner", required_argument, 0, 'P'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    prod_opts_t o = {NULL, "demo", "stream", "", -1, 0, 1, 7, 0, 0};
    prod_stats_t st = {0};
    const char *format = "avro", *registry_url = NULL, *partitioner = "key";
    int schema_id = 1, c, rc = 1;
    char errstr[512];
    char **files = NULL;
    size_t nfiles = 0;
    rd_kafka_t *rk = NULL;
    is_progress_t *pg = NULL; /* drawn only when stderr is a terminal */
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    o.uploaded_at_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:b:h", lopts, NULL)) != -1) {
        switch (c) {
        case 't':
            o.topic = optarg;
            break;
        case 'b':
            is_config_set(cfg, "kafka.bootstrap.servers", optarg, errstr, sizeof(errstr));
            break;
        case 'f':
            format = optarg;
            break;
        case 's':
            schema_id = atoi(optarg);
            break;
        case 'G':
            registry_url = optarg;
            format = "confluent";
            break;
        case 'T':
            o.tenant = optarg;
            break;
        case 'S':
            o.source = optarg;
            break;
        case 'p':
            o.id_prefix = optarg;
            break;
        case 'u':
            o.uploaded_at_ms = strtoll(optarg, NULL, 10);
            break;
        case 'r':
            o.repeat = atoi(optarg);
            break;
        case 'R':
            o.retention_days = atoi(optarg);
            break;
        case 'P':
            partitioner = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o.topic || optind >= argc) {
        fprintf(stderr, "imgsink produce: --topic and at least one FILE or DIR are required\n\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(format, "avro") && strcmp(format, "confluent")) {
        fprintf(stderr, "imgsink produce: --format %s: expected avro or confluent\n", format);
        return 2;
    }
    if (strcmp(partitioner, "key") && strcmp(partitioner, "round-robin")) {
        fprintf(stderr, "imgsink produce: --partitioner %s: expected key or round-robin\n",
                partitioner);
        return 2;
    }
    if (strcmp(o.source, "stream") && strcmp(o.source, "api")) {
        fprintf(stderr, "imgsink produce: --source %s: expected stream or api\n", o.source);
        return 2;
    }
    if (o.repeat < 1 || o.retention_days < 1 || schema_id < 0) {
        fprintf(stderr, "imgsink produce: --repeat, --retention-days and --schema-id must be "
                        "positive\n");
        return 2;
    }
    if (!strcmp(format, "confluent"))
        o.schema_id = schema_id;
    if (is_keys_check_segment("--tenant", o.tenant, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink produce: %s\n", errstr);
        return 2;
    }
    if (!is_config_kafka_get(cfg, "bootstrap.servers")) {
        fprintf(stderr, "imgsink produce: no brokers: use -b or kafka.bootstrap.servers\n");
        return 2;
    }
    for (int i = optind; i < argc; i++)
        if (collect(argv[i], &files, &nfiles))
            goto done;
    if (registry_url) {
        char subject[300];
        is_registry_t *reg =
            is_registry_new(registry_url, cfg->schema_registry_userinfo, cfg->schema_registry_ca,
                            (long)cfg->schema_registry_timeout_ms, errstr, sizeof(errstr));
        snprintf(subject, sizeof(subject), "%s-value", o.topic);
        if (!reg || is_registry_register(reg, subject, is_envelope_schema_json(), &o.schema_id,
                                         errstr, sizeof(errstr))) {
            is_log_printf(stderr, "imgsink produce: --schema-registry %s: %s\n", registry_url,
                          errstr);
            is_registry_destroy(reg);
            goto done;
        }
        is_registry_destroy(reg);
        printf("registered the ImageRecord schema under %s: id %d\n", subject, o.schema_id);
    }

    rd_kafka_conf_t *conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, errstr, sizeof(errstr));
    if (!conf || is_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
        is_kafka_conf_set(conf, "message.max.bytes", "67108864", errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink produce: %s\n", errstr);
        if (conf)
            rd_kafka_conf_destroy(conf);
        goto done;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, &st);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        is_log_printf(stderr, "imgsink produce: %s\n", errstr);
        goto done;
    }
    if (!strcmp(partitioner, "round-robin") && (o.partitions = partition_count(rk, o.topic)) < 1) {
        is_log_printf(stderr,
                      "imgsink produce: --partitioner round-robin: no partition count "
                      "for topic %s (does it exist?)\n",
                      o.topic);
        goto done;
    }
    pg = is_progress_new(stderr, "produce", "records delivered", (int64_t)nfiles * o.repeat,
                         IS_PROGRESS_TTY);
    for (int r = 1; r <= o.repeat; r++)
        for (size_t i = 0; i < nfiles; i++) {
            if (produce_file(rk, &o, files[i], o.repeat > 1 ? r : 0, &st))
                st.failed++;
            is_progress_update(pg, st.delivered, -1, NULL);
        }
    while (rd_kafka_outq_len(rk) > 0 && rd_kafka_flush(rk, 200) == RD_KAFKA_RESP_ERR__TIMED_OUT)
        is_progress_update(pg, st.delivered, -1, NULL);
    is_progress_update(pg, st.delivered, -1, NULL);
    is_progress_destroy(pg); /* ends the line before the summary */
    pg = NULL;
    printf("produced %lld records (%lld bytes) to %s: %lld delivered, %lld failed\n", st.queued,
           st.bytes, o.topic, st.delivered, st.failed);
    rc = st.failed || st.delivered != st.queued ? 1 : 0;
done:
    is_progress_destroy(pg);
    if (rk)
        rd_kafka_destroy(rk);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    return rc;
}
