/*
 * analytics.c - the analytics sink. See analytics.h.
 *
 * One thread: it polls the consumer, serves rebalances (rebalance_cb runs
 * inside rd_kafka_consumer_poll), encodes and PUTs files and commits. A PUT
 * is retried until it succeeds or the sink stops: the partition waits, as
 * a worker's does for the store. No callback is served meanwhile (a
 * rebalance would free the file being written), so past
 * max.poll.interval.ms the group moves the partitions on; the commit then
 * fails, and their next owner writes the same files again.
 */
#include "analytics.h"
#include "analytics_agg.h"
#include "analytics_rollup.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>
#include <librdkafka/rdkafka.h>

#include "avro_rec.h"
#include "avro_walk.h"
#include "clock.h"
#include "creds.h"
#include "events.h"
#include "health.h"
#include "http.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "s3.h"
#include "stats.h"

/* Largest event accepted; avro-c's file blocks are this large, so one
 * always fits. */
#define MAX_EVENT_BYTES (1024 * 1024)

/* Resolved readers of registry schema ids, kept for the life of the sink
 * (an id names one schema for good); ids past this are resolved per
 * event. */
#define MAX_RESOLVED 64

/* One assigned partition and its open file. */
typedef struct apart {
    char topic[256];
    int32_t partition;
    int64_t first, last; /* offsets in the open file; first -1 when none is open */
    int64_t hour;        /* event hour of the open file, ms / 3600000 */
    int64_t event_ms;    /* event time of its first event */
    int64_t opened_ms;   /* monotonic: when its first event arrived */
    int64_t skipped_to;  /* offset to commit for skipped events, -1 if none */
    char *data;          /* encoded events back to back */
    size_t len, cap;
    size_t *sizes; /* size of each */
    size_t n, capn;
} apart_t;

typedef struct sink {
    const is_config_t *cfg;
    rd_kafka_t *rk;
    is_s3_t *s3;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    is_registry_t *registry; /* NULL: registry-framed events cannot be read */
    struct {
        int id;
        avro_schema_t writer;
        avro_value_iface_t *rw;
    } resolved[MAX_RESOLVED];
    int nresolved;
    char tagging[128];
    apart_t *parts;
    int nparts, capparts;
    long long n_files, n_rows, n_skipped;
} sink_t;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int is_analytics_key(const char *prefix, const char *topic, int32_t partition, int64_t offset,
                     int64_t event_ms, char *out, size_t out_size)
{
    return is_analytics_table_key(prefix, "events", topic, partition, offset, event_ms, out,
                                  out_size);
}

int is_analytics_table_key(const char *prefix, const char *table, const char *topic,
                           int32_t partition, int64_t offset, int64_t event_ms, char *out,
                           size_t out_size)
{
    time_t secs = (time_t)(event_ms / 1000);
    struct tm tm;

    if (!gmtime_r(&secs, &tm))
        return -1;
    /* Kafka topic names are [A-Za-z0-9._-]: safe in a key as they are. */
    int n = snprintf(out, out_size, "%s%s/dt=%04d-%02d-%02d/hour=%02d/%s+%d+%lld.avro", prefix,
                     table, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, topic,
                     (int)partition, (long long)offset);
    return n < 0 || (size_t)n >= out_size ? -1 : 0;
}

static apart_t *part_get(sink_t *s, const char *topic, int32_t partition, int create)
{
    for (int i = 0; i < s->nparts; i++)
        if (s->parts[i].partition == partition && !strcmp(s->parts[i].topic, topic))
            return &s->parts[i];
    if (!create)
        return NULL;
    if (s->nparts == s->capparts) {
        int cap = s->capparts ? s->capparts * 2 : 16;
        apart_t *p = realloc(s->parts, (size_t)cap * sizeof(*p));
        if (!p)
            return NULL;
        s->parts = p;
        s->capparts = cap;
    }
    apart_t *p = &s->parts[s->nparts++];
    memset(p, 0, sizeof(*p));
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->first = p->skipped_to = -1;
    return p;
}

/* Forgets the open file (not written: whoever owns the partition next reads
 * its events again from the committed offset). */
static void part_reset(apart_t *p)
{
    p->first = -1;
    p->len = p->n = 0;
}

static void part_drop(sink_t *s, const char *topic, int32_t partition)
{
    apart_t *p = part_get(s, topic, partition, 0);
    if (!p)
        return;
    free(p->data);
    free(p->sizes);
    *p = s->parts[--s->nparts];
}

/* Commits offset for p's partition, synchronously. A failure is logged:
 * the file is in the store, and the next owner writes it again. */
static void commit(sink_t *s, apart_t *p, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_commit(s->rk, l, 0);
    if (!err && l->elems[0].err)
        err = l->elems[0].err;
    if (err)
        IS_WARN("analytics",
                json_pack("{s:s, s:i, s:I}", "topic", p->topic, "partition", (int)p->partition,
                          "offset", (json_int_t)offset),
                "commit failed (the file is written; the partition's next owner writes it "
                "again): %s",
                rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Reads one Avro long (zigzag varint) at *pos; -1 past the end. */
static int read_long(const unsigned char *buf, size_t len, size_t *pos, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *pos < len; shift += 7) {
        unsigned char b = buf[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

static void put_long(FILE *fp, int64_t n)
{
    uint64_t v = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    while (v > 0x7f) {
        fputc((int)(v & 0x7f) | 0x80, fp);
        v >>= 7;
    }
    fputc((int)v, fp);
}

/* avro-c 1.11 drops logicalType (and doc) when it parses a schema, so the
 * file it writes would declare processed_at a plain long, and SQL engines
 * would read it so, unlike the files of a writer that keeps them. The
 * header's avro.schema is replaced by the schema file's own text; the
 * rest (codec, sync marker, blocks) is copied as it is. Returns 0, or -1
 * on a header this code does not understand. */
int is_analytics_ocf_schema(char **file, size_t *len, const char *schema)
{
    return is_analytics_ocf_header(file, len, schema, NULL, NULL);
}

int is_analytics_ocf_meta(const char *file, size_t len, const char *name, char **value)
{
    const unsigned char *in = (const unsigned char *)file;
    size_t pos = 4, nl = strlen(name);
    int64_t count, n;

    *value = NULL;
    if (len < 4 || memcmp(in, "Obj\x01", 4))
        return -1;
    for (;;) {
        if (read_long(in, len, &pos, &count))
            return -1;
        if (!count)
            return 0;
        if (count < 0) {
            count = -count;
            if (read_long(in, len, &pos, &n))
                return -1;
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t klen, vlen;
            if (read_long(in, len, &pos, &klen) || klen < 0 || (size_t)klen > len - pos)
                return -1;
            const unsigned char *key = in + pos;
            pos += (size_t)klen;
            if (read_long(in, len, &pos, &vlen) || vlen < 0 || (size_t)vlen > len - pos)
                return -1;
            if ((size_t)klen == nl && !memcmp(key, name, nl)) {
                if (!(*value = malloc((size_t)vlen + 1)))
                    return -1;
                memcpy(*value, in + pos, (size_t)vlen);
                (*value)[vlen] = '\0';
                return 0;
            }
            pos += (size_t)vlen;
        }
    }
}

int is_analytics_ocf_header(char **file, size_t *len, const char *schema, const char *meta_key,
                            const char *meta_value)
{
    const unsigned char *in = (const unsigned char *)*file;
    size_t pos = 4, olen = 0;
    char *out = NULL;
    int64_t count, n;
    FILE *fp;

    if (*len < 4 || memcmp(in, "Obj\x01", 4) || !(fp = open_memstream(&out, &olen)))
        return -1;
    fwrite(in, 1, 4, fp);
    for (;;) {
        if (read_long(in, *len, &pos, &count))
            goto fail;
        if (!count)
            break;
        if (count < 0) { /* a block with its byte size */
            count = -count;
            if (read_long(in, *len, &pos, &n))
                goto fail;
        }
        put_long(fp, count);
        for (int64_t i = 0; i < count; i++) {
            int64_t klen, vlen;
            if (read_long(in, *len, &pos, &klen) || klen < 0 || (size_t)klen > *len - pos)
                goto fail;
            const unsigned char *key = in + pos;
            pos += (size_t)klen;
            if (read_long(in, *len, &pos, &vlen) || vlen < 0 || (size_t)vlen > *len - pos)
                goto fail;
            put_long(fp, klen);
            fwrite(key, 1, (size_t)klen, fp);
            if (klen == 11 && !memcmp(key, "avro.schema", 11)) {
                put_long(fp, (int64_t)strlen(schema));
                fwrite(schema, 1, strlen(schema), fp);
            } else {
                put_long(fp, vlen);
                fwrite(in + pos, 1, (size_t)vlen, fp);
            }
            pos += (size_t)vlen;
        }
    }
    if (meta_key) {
        put_long(fp, 1);
        put_long(fp, (int64_t)strlen(meta_key));
        fwrite(meta_key, 1, strlen(meta_key), fp);
        put_long(fp, (int64_t)strlen(meta_value));
        fwrite(meta_value, 1, strlen(meta_value), fp);
    }
    put_long(fp, 0);
    fwrite(in + pos, 1, *len - pos, fp); /* sync marker and blocks */
    if (fclose(fp)) {
        free(out);
        return -1;
    }
    free(*file);
    *file = out;
    *len = olen;
    return 0;
fail:
    fclose(fp);
    free(out);
    return -1;
}

/* The open file as an Avro object container file, deflate. */
static int encode_file(sink_t *s, apart_t *p, char **out, size_t *out_len, char *errstr,
                       size_t errstr_size)
{
    avro_file_writer_t fw;
    size_t off = 0;

    if (is_avro_rec_ocf_new("analytics", s->schema, MAX_EVENT_BYTES, out, out_len, &fw,
                            "avro file writer", errstr, errstr_size))
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        if (avro_file_writer_append_encoded(fw, p->data + off, (int64_t)p->sizes[i])) {
            snprintf(errstr, errstr_size, "avro file writer: %s", avro_strerror());
            avro_file_writer_close(fw);
            free(*out);
            return -1;
        }
        off += p->sizes[i];
    }
    if (avro_file_writer_close(fw)) { /* flushes the last block, finishes *out */
        snprintf(errstr, errstr_size, "avro file writer: %s", avro_strerror());
        free(*out);
        return -1;
    }
    if (is_analytics_ocf_schema(out, out_len, is_events_schema_json())) {
        snprintf(errstr, errstr_size, "avro file writer: unexpected file header");
        free(*out);
        return -1;
    }
    return 0;
}

/* Sleeps before retry attempt + 1: 200 ms doubling up to 30 s, cut short
 * by a stop (after the third attempt). Beats the liveness clock: waiting
 * on the store or the registry is not a stall. */
static void backoff(int attempt)
{
    int64_t ms = 200LL << (attempt < 8 ? attempt : 8);
    for (int64_t until = is_now_ms() + (ms > 30000 ? 30000 : ms); is_now_ms() < until;) {
        is_health_beat();
        if (stop && attempt >= 2)
            return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* PUTs one file, retrying until it succeeds. Permanent failures too
 * (permissions, a missing bucket): skipping would lose rows; an operator
 * fixes the store and the sink goes on. 0, or -1 when stopped first. */
static int put(sink_t *s, const char *key, const char *body, size_t len, const char *tagging)
{
    char errstr[1024];

    for (int attempt = 0;; attempt++) {
        is_s3_result_t r = is_s3_put(s->s3, key, body, len, "application/avro", tagging, 0, errstr,
                                     sizeof(errstr));
        if (r == IS_S3_OK)
            return 0;
        IS_WARN("analytics", json_pack("{s:s, s:i}", "key", key, "attempt", attempt + 1),
                "PUT failed, retrying: %s", errstr);
        backoff(attempt);
        if (stop && attempt >= 2)
            return -1;
    }
}

/* Writes p's open file and commits past it. 0 done (or nothing open), -1
 * stopped before the PUT succeeded (nothing committed). */
static int flush(sink_t *s, apart_t *p, const char *why)
{
    char key[1024], errstr[1024];
    char *body = NULL;
    size_t len = 0;
    int64_t t0 = is_now_ms();

    if (p->first < 0) {
        if (p->skipped_to >= 0) {
            commit(s, p, p->skipped_to);
            p->skipped_to = -1;
        }
        return 0;
    }
    if (is_analytics_key(s->cfg->analytics_prefix, p->topic, p->partition, p->first, p->event_ms,
                         key, sizeof(key)) ||
        encode_file(s, p, &body, &len, errstr, sizeof(errstr))) {
        /* Out of memory or an absurd prefix: stop rather than skip rows. */
        IS_ERR("analytics", json_pack("{s:s}", "key", key), "cannot build the file: %s", errstr);
        stop = 1;
        return -1;
    }
    if (put(s, key, body, len, s->tagging)) {
        free(body);
        return -1;
    }
    free(body);
    body = NULL;
    /* The aggregate of the same events, before the commit: a crash between
     * the two PUTs writes both again. */
    if (!strcmp(s->cfg->analytics_aggregate, "hourly")) {
        char akey[1024];
        size_t alen = 0;
        if (is_analytics_table_key(s->cfg->analytics_prefix, "events_hourly", p->topic,
                                   p->partition, p->first, p->event_ms, akey, sizeof(akey)) ||
            is_analytics_agg_encode(s->iface, p->data, p->sizes, p->n, p->hour * 3600000, p->topic,
                                    p->partition, p->first, &body, &alen, errstr, sizeof(errstr))) {
            IS_ERR("analytics", json_pack("{s:s}", "key", key), "cannot build the aggregate: %s",
                   errstr);
            stop = 1;
            return -1;
        }
        if (put(s, akey, body, alen, IS_ANALYTICS_AGG_TAGGING)) {
            free(body);
            return -1;
        }
        free(body);
        IS_INFO("analytics", json_pack("{s:s, s:I}", "key", akey, "bytes", (json_int_t)alen),
                "aggregate written");
    }
    s->n_files++;
    s->n_rows += (long long)p->n;
    is_metrics_inc(IS_M_ANALYTICS_FILES);
    is_metrics_add(IS_M_ANALYTICS_ROWS, (int64_t)p->n);
    is_metrics_add(IS_M_ANALYTICS_BYTES, (int64_t)len);
    is_metrics_observe(IS_M_ANALYTICS_FLUSH_SECONDS, (double)(is_now_ms() - t0) / 1000.0);
    IS_INFO("analytics",
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "key", key, "rows", (json_int_t)p->n,
                      "bytes", (json_int_t)len, "first_offset", (json_int_t)p->first, "last_offset",
                      (json_int_t)p->last, "reason", why),
            "file written");
    int64_t next = p->last + 1;
    if (p->skipped_to > next)
        next = p->skipped_to;
    p->skipped_to = -1;
    part_reset(p);
    commit(s, p, next);
    return 0;
}

/* Reads [p, p + n) as one ImageEvent written with writer (NULL: the
 * bundled schema, plain Avro) and returns its processed_at, or -1 with
 * errstr. The bytes are walked (avro_walk.h) before avro-c reads them, so
 * a hostile length cannot make it allocate. With a writer, the event is
 * resolved against the bundled schema and its plain encoding (the files'
 * schema) goes to *plain, malloc'd. */
static int64_t read_event(sink_t *s, avro_schema_t writer, avro_value_iface_t *rw_iface,
                          const unsigned char *p, size_t n, char **plain, size_t *plain_len,
                          char *errstr, size_t errstr_size)
{
    avro_value_t v, rw, f;
    avro_reader_t rd = NULL;
    avro_writer_t wr = NULL;
    size_t items = 0, size = 0;
    int64_t t = -1;
    int have_rw = 0;

    if (is_avro_walk(p, p, p + n, writer ? writer : s->schema, &items, errstr, errstr_size))
        return -1;
    if (avro_generic_value_new(s->iface, &v)) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (writer) {
        if (avro_resolved_writer_new_value(rw_iface, &rw)) {
            snprintf(errstr, errstr_size, "out of memory");
            goto done;
        }
        have_rw = 1;
        avro_resolved_writer_set_dest(&rw, &v);
    }
    if (!(rd = avro_reader_memory((const char *)p, (int64_t)n))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    if (avro_value_read(rd, have_rw ? &rw : &v)) {
        snprintf(errstr, errstr_size, "%s", avro_strerror());
        goto done;
    }
    if (!writer && (avro_value_sizeof(&v, &size) || size != n)) {
        snprintf(errstr, errstr_size, "not one ImageEvent: %zu bytes, the event takes %zu", n,
                 size);
        goto done;
    }
    if (avro_value_get_by_name(&v, "processed_at", &f, NULL) || avro_value_get_long(&f, &t) ||
        t < 0 || t > INT64_C(253402300799999)) {
        snprintf(errstr, errstr_size, "processed_at out of range");
        t = -1;
        goto done;
    }
    if (writer) {
        if (avro_value_sizeof(&v, &size) || !(*plain = malloc(size ? size : 1)) ||
            !(wr = avro_writer_memory(*plain, (int64_t)size)) || avro_value_write(wr, &v)) {
            snprintf(errstr, errstr_size, "cannot encode the event in the files' schema: %s",
                     avro_strerror());
            free(*plain);
            *plain = NULL;
            t = -1;
            goto done;
        }
        *plain_len = size;
    }
done:
    if (wr)
        avro_writer_free(wr);
    if (rd)
        avro_reader_free(rd);
    if (have_rw)
        avro_value_decref(&rw);
    avro_value_decref(&v);
    return t;
}

/* The writer schema of a registry id and its resolver against the bundled
 * schema: 0 (borrowed, or new in *tmp_* to free when the cache is full),
 * 1 permanent (unknown id, not an ImageEvent schema), -1 transient (the
 * registry did not answer). */
static int resolve_id(sink_t *s, int id, avro_schema_t *writer, avro_value_iface_t **rw, int *owned,
                      char *errstr, size_t errstr_size)
{
    avro_schema_t w;

    *owned = 0;
    for (int i = 0; i < s->nresolved; i++)
        if (s->resolved[i].id == id) {
            *writer = s->resolved[i].writer;
            *rw = s->resolved[i].rw;
            return 0;
        }
    int rc = is_registry_schema(s->registry, id, &w, errstr, errstr_size);
    if (rc)
        return rc;
    avro_value_iface_t *r = avro_resolved_writer_new(w, s->schema);
    if (!r) {
        snprintf(errstr, errstr_size, "its schema cannot be resolved against ImageEvent: %.200s",
                 avro_strerror());
        avro_schema_decref(w);
        return 1;
    }
    if (s->nresolved < MAX_RESOLVED) {
        s->resolved[s->nresolved].id = id;
        s->resolved[s->nresolved].writer = w;
        s->resolved[s->nresolved++].rw = r;
    } else {
        *owned = 1;
    }
    *writer = w;
    *rw = r;
    return 0;
}

/* Decodes one event of the events topic, hostile until proven otherwise,
 * in either framing: plain Avro binary of the bundled schema, or the
 * registry wire format (byte 0, 4-byte schema id, Avro binary), whose
 * writer schema the registry gives by id. A plain event whose id is null
 * also starts with byte 0, so a framed reading that fails falls back to
 * the plain one. Returns 0 with *t (processed_at) and the event's plain
 * encoding in *plain (NULL: the message itself), 1 when it cannot be
 * read (skipped, reason in errstr), -1 when the registry did not answer
 * (the caller retries). */
static int decode_event(sink_t *s, const rd_kafka_message_t *rkm, int64_t *t, char **plain,
                        size_t *plain_len, char *errstr, size_t errstr_size)
{
    const unsigned char *m = rkm->payload;
    char framed_why[512] = "", plain_why[512];
    int transient = 0;

    *plain = NULL;
    if (!rkm->len || rkm->len > MAX_EVENT_BYTES) {
        snprintf(errstr, errstr_size, "%zu bytes: expected 1..%d", rkm->len, MAX_EVENT_BYTES);
        return 1;
    }
    if (m[0] == 0 && rkm->len >= 5) {
        uint32_t id = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
        char why[400] = "";
        if (id > INT32_MAX) {
            snprintf(framed_why, sizeof(framed_why), "schema id %u out of range", id);
        } else if (!s->registry) {
            snprintf(framed_why, sizeof(framed_why),
                     "registry-framed (schema id %u), and no schema.registry.url to resolve it",
                     id);
        } else {
            avro_schema_t writer;
            avro_value_iface_t *rw;
            int owned, rc = resolve_id(s, (int)id, &writer, &rw, &owned, why, sizeof(why));
            if (!rc) {
                *t = read_event(s, writer, rw, m + 5, rkm->len - 5, plain, plain_len, why,
                                sizeof(why));
                if (owned) {
                    avro_value_iface_decref(rw);
                    avro_schema_decref(writer);
                }
                if (*t >= 0)
                    return 0;
            }
            transient = rc < 0;
            snprintf(framed_why, sizeof(framed_why), "schema id %u: %s", id, why);
        }
    }
    *t = read_event(s, NULL, NULL, m, rkm->len, NULL, NULL, plain_why, sizeof(plain_why));
    if (*t >= 0)
        return 0;
    if (transient) {
        snprintf(errstr, errstr_size, "%.450s", framed_why);
        return -1;
    }
    if (*framed_why)
        snprintf(errstr, errstr_size, "not an ImageEvent: %.300s (plain Avro: %.150s)", framed_why,
                 plain_why);
    else
        snprintf(errstr, errstr_size, "not an ImageEvent: %.400s", plain_why);
    return 1;
}

static void handle(sink_t *s, const rd_kafka_message_t *rkm)
{
    char why[512];
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    apart_t *p = part_get(s, topic, rkm->partition, 1);

    if (!p) {
        IS_ERR("analytics", NULL, "out of memory");
        stop = 1;
        return;
    }
    int64_t t;
    char *plain = NULL;
    size_t plain_len = 0;
    int rc;
    /* A registry that does not answer: the event waits (as for the store),
     * it is not skipped. */
    for (int attempt = 0;
         (rc = decode_event(s, rkm, &t, &plain, &plain_len, why, sizeof(why))) < 0 && !stop;
         attempt++) {
        IS_WARN("analytics",
                json_pack("{s:s, s:i, s:I, s:i}", "topic", topic, "partition", (int)rkm->partition,
                          "offset", (json_int_t)rkm->offset, "attempt", attempt + 1),
                "Schema Registry lookup failed, retrying: %s", why);
        backoff(attempt);
    }
    if (rc < 0) {
        /* stopping: not read, the next owner reads it again */
        return;
    }
    if (rc > 0) {
        s->n_skipped++;
        is_metrics_inc(IS_M_ANALYTICS_SKIPPED);
        IS_WARN("analytics",
                json_pack("{s:s, s:i, s:I}", "topic", topic, "partition", (int)rkm->partition,
                          "offset", (json_int_t)rkm->offset),
                "skipped an event: %s", why);
        p->skipped_to = rkm->offset + 1;
        if (p->first < 0)
            flush(s, p, "skipped"); /* nothing open: commit past it now */
        return;
    }
    const char *ev = plain ? plain : rkm->payload;
    size_t evlen = plain ? plain_len : rkm->len;
    if (p->first >= 0 &&
        (t / 3600000 != p->hour || p->len + evlen > (size_t)s->cfg->analytics_max_file_bytes))
        if (flush(s, p, t / 3600000 != p->hour ? "hour" : "size")) {
            free(plain);
            return;
        }
    if (p->len + evlen > p->cap) {
        size_t cap = p->cap ? p->cap : 65536;
        while (cap < p->len + evlen)
            cap *= 2;
        char *d = realloc(p->data, cap);
        if (!d) {
            IS_ERR("analytics", NULL, "out of memory");
            free(plain);
            stop = 1;
            return;
        }
        p->data = d;
        p->cap = cap;
    }
    if (p->n == p->capn) {
        size_t capn = p->capn ? p->capn * 2 : 1024;
        size_t *z = realloc(p->sizes, capn * sizeof(*z));
        if (!z) {
            IS_ERR("analytics", NULL, "out of memory");
            free(plain);
            stop = 1;
            return;
        }
        p->sizes = z;
        p->capn = capn;
    }
    if (p->first < 0) {
        p->first = rkm->offset;
        p->hour = t / 3600000;
        p->event_ms = t;
        p->opened_ms = is_now_ms();
        char key[1024];
        if (!is_analytics_key(s->cfg->analytics_prefix, p->topic, p->partition, p->first,
                              p->event_ms, key, sizeof(key)))
            IS_INFO("analytics",
                    json_pack("{s:s, s:I}", "key", key, "first_offset", (json_int_t)p->first),
                    "file opened");
    }
    memcpy(p->data + p->len, ev, evlen);
    p->len += evlen;
    p->sizes[p->n++] = evlen;
    p->last = rkm->offset;
    free(plain);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    sink_t *s = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        IS_INFO("analytics", json_pack("{s:i}", "partitions", parts->cnt), "partitions assigned");
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        is_health_publish_assignment(rk, 1);
        return;
    }
    /* Revoked or lost: open files are dropped, not written. Their events
     * are read again from the committed offset by the next owner, which
     * writes the same files. */
    for (int i = 0; i < parts->cnt; i++)
        part_drop(s, parts->elems[i].topic, parts->elems[i].partition);
    IS_INFO("analytics", json_pack("{s:i}", "partitions", parts->cnt),
            "partitions revoked; their open files are left to the next owner");
    if (coop)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
    /* Cooperative: the rest of the assignment is still held. Eager: a new
     * assignment follows. Lost: not in the group until it comes. */
    is_health_publish_assignment(rk, coop && !rd_kafka_assignment_lost(rk));
}

static rd_kafka_t *consumer_new(sink_t *s, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = is_kafka_conf_new(s->cfg, IS_KAFKA_CONSUMER, errstr, errstr_size);
    rd_kafka_t *rk;

    if (!conf)
        return NULL;
    if (is_kafka_conf_set(conf, "group.id", s->cfg->analytics_group_id, errstr, errstr_size) ||
        is_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        (!is_config_kafka_get(s->cfg, "auto.offset.reset") &&
         is_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* Statistics feed the lag metric and readiness, as for the worker. */
    if (!is_config_kafka_get(s->cfg, "statistics.interval.ms") &&
        is_kafka_conf_set(conf, "statistics.interval.ms", "5000", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_stats_cb(conf, is_stats_cb);
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s->cfg->events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe to %s: %s", s->cfg->events_topic,
                 rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static int check_config(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    int days[IS_KEYS_MAX_RETENTION_CLASSES], n, found = 0;
    char why[512];

    if (!*cfg->events_topic) {
        snprintf(errstr, errstr_size, "events.topic: required by imgsink analytics, but not set");
        return -1;
    }
    if (is_events_check_topic(cfg, errstr, errstr_size))
        return -1;
    if (is_keys_retention_classes(cfg->retention_classes, days, &n, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "retention.classes=%s: %s", cfg->retention_classes, why);
        return -1;
    }
    for (int i = 0; i < n; i++)
        found |= days[i] == cfg->analytics_retention_days;
    if (!found) {
        snprintf(errstr, errstr_size,
                 "analytics.retention.days=%lld: expected one of retention.classes (%s), the "
                 "classes with a lifecycle rule",
                 (long long)cfg->analytics_retention_days, cfg->retention_classes);
        return -1;
    }
    size_t pl = strlen(cfg->analytics_prefix);
    if (pl > 512 || (pl && cfg->analytics_prefix[pl - 1] != '/') ||
        strstr(cfg->analytics_prefix, "..") || cfg->analytics_prefix[0] == '/') {
        snprintf(errstr, errstr_size,
                 "analytics.prefix=%.600s: expected empty or a key prefix ending in '/', without "
                 "'..' or a leading '/', at most 512 characters",
                 cfg->analytics_prefix);
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: imgsink analytics [run] [-c FILE] [-X key=value]...\n"
                 "  Reads events.topic as group analytics.group.id and writes Avro files under\n"
                 "  {analytics.prefix}events/dt=YYYY-MM-DD/hour=HH/ in s3.bucket.\n"
                 "       imgsink analytics rollup --date YYYY-MM-DD [-c FILE] [-X key=value]...\n"
                 "  Compacts the day's hourly files into\n"
                 "  {analytics.prefix}events_daily/dt=YYYY-MM-DD/YYYY-MM-DD.avro, then deletes\n"
                 "  them; safe to rerun.\n");
}

int is_analytics_main(is_config_t *cfg, int argc, char **argv)
{
    char errstr[1024];
    sink_t s = {0};
    int rc = 1;
    struct sigaction sa;
    is_creds_provider_t *creds = NULL;
    is_http_t *http = NULL;

    const char *rollup = NULL;
    int is_rollup = argc > 1 && !strcmp(argv[1], "rollup");

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (i == 1 && (!strcmp(argv[i], "run") || is_rollup))
            continue;
        if (is_rollup && !strcmp(argv[i], "--date") && i + 1 < argc) {
            rollup = argv[++i];
            continue;
        }
        fprintf(stderr, "imgsink analytics: unexpected argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (is_rollup && !rollup) {
        fprintf(stderr, "imgsink analytics rollup: --date YYYY-MM-DD is required\n");
        usage(stderr);
        return 2;
    }
    if (is_config_validate(cfg, errstr, sizeof(errstr)) ||
        check_config(cfg, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink: configuration error: %s\n", errstr);
        return 2;
    }
    s.cfg = cfg;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The store's credentials come from the chain the worker uses
     * (creds.h): explicit keys, the environment, shared files, web
     * identity, the container endpoint or IMDS, refreshed before expiry. */
    if (!(creds = is_s3_creds_of(cfg, errstr, sizeof(errstr)))) {
        IS_ERR("analytics", NULL, "start-up failed: %s", errstr);
        goto done;
    }
    IS_INFO("creds", json_pack("{s:s}", "source", is_creds_source(creds)),
            "store credentials from %s", is_creds_source(creds));
    is_health_creds(creds, cfg->s3_credentials_unhealthy_restart_ms);
    is_s3_conf_t s3c = is_s3_conf_of(cfg, creds);
    if (*cfg->schema_registry_url &&
        !(s.registry = is_registry_new(
              cfg->schema_registry_url, cfg->schema_registry_userinfo, cfg->schema_registry_ca,
              (long)cfg->schema_registry_timeout_ms, errstr, sizeof(errstr)))) {
        IS_ERR("analytics", NULL, "start-up failed: %s", errstr);
        goto done;
    }
    if (is_keys_tagging((int)cfg->analytics_retention_days, "analytics", s.tagging,
                        sizeof(s.tagging)) ||
        is_avro_rec_class(is_events_schema_json(), strlen(is_events_schema_json()), &s.schema,
                          &s.iface)) {
        IS_ERR("analytics", NULL, "start-up failed: %s", avro_strerror());
        goto done;
    }
    if (!(s.s3 = is_s3_new(&s3c, errstr, sizeof(errstr))) ||
        is_creds_start(creds, errstr, sizeof(errstr))) {
        IS_ERR("analytics", NULL, "start-up failed: %s", errstr);
        goto done;
    }
    if (is_rollup) {
        rc = is_analytics_rollup(cfg, s.s3, s.schema, s.iface, s.tagging, rollup);
        goto done;
    }
    /* /metrics, /healthz and /readyz on http.listen, as the worker's;
     * before the consumer joins, so readiness answers 503 from the start. */
    is_health_start();
    if (*cfg->http_listen) {
        if (!(http = is_http_new(cfg->http_listen, cfg->http_health_stall_ms, errstr,
                                 sizeof(errstr)))) {
            IS_ERR("analytics", NULL, "start-up failed: %s", errstr);
            goto done;
        }
        IS_INFO("http", json_pack("{s:s}", "address", is_http_address(http)),
                "serving /metrics, /healthz and /readyz");
    }
    if (!(s.rk = consumer_new(&s, errstr, sizeof(errstr)))) {
        IS_ERR("analytics", NULL, "start-up failed: %s", errstr);
        goto done;
    }
    IS_INFO("analytics",
            json_pack("{s:s, s:s, s:s, s:s}", "topic", cfg->events_topic, "group",
                      cfg->analytics_group_id, "bucket", cfg->s3_bucket, "prefix",
                      cfg->analytics_prefix),
            "analytics sink started");
    while (!stop) {
        is_health_beat();
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(s.rk, 200);
        if (rkm) {
            if (!rkm->err)
                handle(&s, rkm);
            else if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                IS_WARN("analytics", NULL, "consumer: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
        }
        int64_t now = is_now_ms();
        for (int i = 0; i < s.nparts && !stop; i++)
            if (s.parts[i].first >= 0 &&
                now - s.parts[i].opened_ms >= s.cfg->analytics_max_delay_ms)
                flush(&s, &s.parts[i], "delay");
    }
    /* Stopping: write what is open, so a clean stop leaves nothing to read
     * again. */
    is_health_stopping();
    for (int i = 0; i < s.nparts; i++)
        flush(&s, &s.parts[i], "shutdown");
    rc = 0;
    IS_INFO("analytics",
            json_pack("{s:I, s:I, s:I}", "files", (json_int_t)s.n_files, "rows",
                      (json_int_t)s.n_rows, "skipped", (json_int_t)s.n_skipped),
            "analytics sink stopped");
done:
    if (s.rk) {
        rd_kafka_consumer_close(s.rk);
        rd_kafka_destroy(s.rk);
    }
    is_http_destroy(http);
    is_s3_destroy(s.s3);
    is_health_creds(NULL, 0);
    is_creds_provider_destroy(creds); /* after the S3 client */
    is_registry_destroy(s.registry);
    for (int i = 0; i < s.nresolved; i++) {
        avro_value_iface_decref(s.resolved[i].rw);
        avro_schema_decref(s.resolved[i].writer);
    }
    for (int i = 0; i < s.nparts; i++) {
        free(s.parts[i].data);
        free(s.parts[i].sizes);
    }
    free(s.parts);
    if (s.iface)
        avro_value_iface_decref(s.iface);
    if (s.schema)
        avro_schema_decref(s.schema);
    return rc;
}
