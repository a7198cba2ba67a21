/*
 * events.c - ImageEvent encoding and the events producer. See events.h.
 */
#include "events.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "kafka.h"

/* Kept identical to schemas/image_event.avsc (test_events compares them). */
static const char schema_json[] =
    "{\"type\":\"record\",\"name\":\"ImageEvent\",\"namespace\":\"io.imgsink\",\"doc\":\"One "
    "record finished b"
    "y the worker: written to the store or dead-lettered. Never carries a location.\",\"fields\":["
    "{\"name\":\"id\",\"type\":[\"null\",\"string\"],\"default\":null,\"doc\":\"Image id (also the "
    "Kafka key);"
    " null when the envelope could not be "
    "decoded.\"},{\"name\":\"tenant\",\"type\":[\"null\",\"string\"],"
    "\"default\":null},{\"name\":\"source\",\"type\":[\"null\",\"string\"],\"default\":null,"
    "\"doc\":\"stream or "
    "api.\"},{\"name\":\"outcome\",\"type\":{\"type\":\"enum\",\"name\":\"Outcome\",\"symbols\":["
    "\"written\",\"dead"
    "_lettered\"]}},{\"name\":\"error_class\",\"type\":[\"null\",\"string\"],\"default\":null,"
    "\"doc\":\"envelop"
    "e, record, image, claim-check or store; null when "
    "written.\"},{\"name\":\"error_message\",\"type"
    "\":[\"null\",\"string\"],\"default\":null},{\"name\":\"uploaded_at\",\"type\":[\"null\",{"
    "\"type\":\"long\",\"l"
    "ogicalType\":\"timestamp-millis\"}],\"default\":null},{\"name\":\"processed_at\",\"type\":{"
    "\"type\":\"lo"
    "ng\",\"logicalType\":\"timestamp-millis\"},\"doc\":\"When the worker finished the record: the "
    "even"
    "t time of the analytics "
    "files.\"},{\"name\":\"processing_ms\",\"type\":\"double\",\"doc\":\"From dispa"
    "tch to the record's last write (or dead "
    "letter).\"},{\"name\":\"source_format\",\"type\":[\"null\","
    "\"string\"],\"default\":null},{\"name\":\"source_bytes\",\"type\":[\"null\",\"long\"],"
    "\"default\":null},{\""
    "name\":\"width\",\"type\":[\"null\",\"int\"],\"default\":null},{\"name\":\"height\",\"type\":["
    "\"null\",\"int\"]"
    ",\"default\":null},{\"name\":\"orientation\",\"type\":[\"null\",\"int\"],\"default\":null},{"
    "\"name\":\"fram"
    "es\",\"type\":[\"null\",\"int\"],\"default\":null},{\"name\":\"camera_make\",\"type\":["
    "\"null\",\"string\"],\""
    "default\":null},{\"name\":\"camera_model\",\"type\":[\"null\",\"string\"],\"default\":null},{"
    "\"name\":\"ph"
    "ash\",\"type\":[\"null\",\"long\"],\"default\":null,\"doc\":\"64-bit perceptual hash (dHash) "
    "as a sign"
    "ed long: compare with bit_count(a XOR "
    "b).\"},{\"name\":\"mean_color\",\"type\":[\"null\",\"string\"],"
    "\"default\":null,\"doc\":\"#rrggbb\"},{\"name\":\"renditions\",\"type\":{\"type\":\"array\","
    "\"items\":{\"type"
    "\":\"record\",\"name\":\"RenditionEvent\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"form"
    "at\",\"type\":\"string\"},{\"name\":\"width\",\"type\":\"int\"},{\"name\":\"height\",\"type\":"
    "\"int\"},{\"name\":"
    "\"bytes\",\"type\":\"long\"}]}},\"default\":[]},{\"name\":\"kafka_topic\",\"type\":\"string\"}"
    ",{\"name\":\"ka"
    "fka_partition\",\"type\":\"int\"},{\"name\":\"kafka_offset\",\"type\":\"long\"},{\"name\":"
    "\"worker_version"
    "\",\"type\":\"string\"}]}";

const char *is_events_schema_json(void)
{
    return schema_json;
}

struct is_events {
    rd_kafka_t *rk;
    char *topic;
};

/* The parsed schema and its value class, made once; avro-c's reference
 * counts are not meant for concurrent use, so encoding takes this lock. */
static pthread_mutex_t enc_lock = PTHREAD_MUTEX_INITIALIZER;
static avro_schema_t enc_schema;
static avro_value_iface_t *enc_iface;

/* Printable ASCII only: the strings come from hostile records and images
 * (EXIF), and every SQL engine must read them. Without the spaces around
 * (EXIF pads make and model), so one camera groups as one. */
static void copy_ascii(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    while (src && *src == ' ')
        src++;
    for (; src && *src && n + 1 < size; src++)
        dst[n++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

void is_event_note_record(is_event_t *ev, const is_record_t *rec)
{
    ev->has_record = 1;
    copy_ascii(ev->id, sizeof(ev->id), rec->id);
    copy_ascii(ev->tenant, sizeof(ev->tenant), rec->tenant);
    copy_ascii(ev->source, sizeof(ev->source), rec->source);
    ev->uploaded_at_ms = rec->uploaded_at_ms;
}

void is_event_note_result(is_event_t *ev, const is_result_t *res)
{
    ev->has_result = 1;
    copy_ascii(ev->format, sizeof(ev->format), res->format);
    copy_ascii(ev->camera_make, sizeof(ev->camera_make), res->camera_make);
    copy_ascii(ev->camera_model, sizeof(ev->camera_model), res->camera_model);
    snprintf(ev->mean_color, sizeof(ev->mean_color), "#%02x%02x%02x", res->mean_rgb[0] & 0xff,
             res->mean_rgb[1] & 0xff, res->mean_rgb[2] & 0xff);
    ev->bytes = (int64_t)res->bytes;
    ev->width = res->width;
    ev->height = res->height;
    ev->orientation = res->orientation;
    ev->frames = res->pages > 0 ? res->pages : 1;
    ev->phash = res->phash;
    ev->nout = res->nout < IS_MAX_RENDITIONS ? res->nout : IS_MAX_RENDITIONS;
    for (int i = 0; i < ev->nout; i++) {
        copy_ascii(ev->out[i].name, sizeof(ev->out[i].name), res->out[i].name);
        copy_ascii(ev->out[i].format, sizeof(ev->out[i].format), res->out[i].ext);
        ev->out[i].width = res->out[i].width;
        ev->out[i].height = res->out[i].height;
        ev->out[i].bytes = (int64_t)res->out[i].len;
    }
}

static int schema_init(char *errstr, size_t errstr_size)
{
    if (enc_iface)
        return 0;
    if (avro_schema_from_json_length(schema_json, sizeof(schema_json) - 1, &enc_schema)) {
        snprintf(errstr, errstr_size, "ImageEvent schema: %s", avro_strerror());
        return -1;
    }
    if (!(enc_iface = avro_generic_class_from_schema(enc_schema))) {
        snprintf(errstr, errstr_size, "ImageEvent schema: %s", avro_strerror());
        avro_schema_decref(enc_schema);
        enc_schema = NULL;
        return -1;
    }
    return 0;
}

/* Field helpers: each returns avro-c's error code (0 ok). A nullable field
 * is a union whose branch 0 is null. */
static int set_null(avro_value_t *rec, const char *name)
{
    avro_value_t f, b;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 0, &b) ? -1 : avro_value_set_null(&b);
}

static int opt_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f, b;
    if (!s || !*s)
        return set_null(rec, name);
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 1, &b) ? -1 : avro_value_set_string(&b, s);
}

static int opt_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t f, b;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 1, &b) ? -1 : avro_value_set_long(&b, v);
}

static int opt_int(avro_value_t *rec, const char *name, int v)
{
    avro_value_t f, b;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 1, &b) ? -1 : avro_value_set_int(&b, v);
}

static int req_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_string(&f, s ? s : "");
}

static int fill(avro_value_t *rec, const is_event_t *ev, const is_event_end_t *end)
{
    avro_value_t f, arr, item, x;
    char reason[1024];
    int rc = 0;
    int written = !end->klass;

    copy_ascii(reason, sizeof(reason), end->reason);
    rc |= ev->has_record ? opt_str(rec, "id", ev->id) : set_null(rec, "id");
    rc |= ev->has_record ? opt_str(rec, "tenant", ev->tenant) : set_null(rec, "tenant");
    rc |= ev->has_record ? opt_str(rec, "source", ev->source) : set_null(rec, "source");
    if (!(rc |= avro_value_get_by_name(rec, "outcome", &f, NULL)))
        rc |= avro_value_set_enum(&f, written ? 0 : 1);
    rc |= written ? set_null(rec, "error_class") : opt_str(rec, "error_class", end->klass);
    rc |= written ? set_null(rec, "error_message") : opt_str(rec, "error_message", reason);
    rc |= ev->has_record ? opt_long(rec, "uploaded_at", ev->uploaded_at_ms)
                         : set_null(rec, "uploaded_at");
    if (!(rc |= avro_value_get_by_name(rec, "processed_at", &f, NULL)))
        rc |= avro_value_set_long(&f, end->processed_at_ms);
    if (!(rc |= avro_value_get_by_name(rec, "processing_ms", &f, NULL)))
        rc |= avro_value_set_double(&f, end->processing_ms);
    if (ev->has_result) {
        rc |= opt_str(rec, "source_format", ev->format);
        rc |= opt_long(rec, "source_bytes", ev->bytes);
        rc |= opt_int(rec, "width", ev->width);
        rc |= opt_int(rec, "height", ev->height);
        rc |= opt_int(rec, "orientation", ev->orientation);
        rc |= opt_int(rec, "frames", ev->frames);
        rc |= opt_str(rec, "camera_make", ev->camera_make);
        rc |= opt_str(rec, "camera_model", ev->camera_model);
        rc |= opt_long(rec, "phash", (int64_t)ev->phash);
        rc |= opt_str(rec, "mean_color", ev->mean_color);
    } else {
        static const char *const none[] = {
            "source_format", "source_bytes", "width",        "height", "orientation",
            "frames",        "camera_make",  "camera_model", "phash",  "mean_color"};
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
            rc |= set_null(rec, none[i]);
    }
    if (!(rc |= avro_value_get_by_name(rec, "renditions", &arr, NULL)))
        for (int i = 0; ev->has_result && written && i < ev->nout && !rc; i++) {
            rc |= avro_value_append(&arr, &item, NULL);
            rc |= req_str(&item, "name", ev->out[i].name);
            rc |= req_str(&item, "format", ev->out[i].format);
            if (!(rc |= avro_value_get_by_name(&item, "width", &x, NULL)))
                rc |= avro_value_set_int(&x, ev->out[i].width);
            if (!(rc |= avro_value_get_by_name(&item, "height", &x, NULL)))
                rc |= avro_value_set_int(&x, ev->out[i].height);
            if (!(rc |= avro_value_get_by_name(&item, "bytes", &x, NULL)))
                rc |= avro_value_set_long(&x, ev->out[i].bytes);
        }
    rc |= req_str(rec, "kafka_topic", end->topic);
    if (!(rc |= avro_value_get_by_name(rec, "kafka_partition", &f, NULL)))
        rc |= avro_value_set_int(&f, end->partition);
    if (!(rc |= avro_value_get_by_name(rec, "kafka_offset", &f, NULL)))
        rc |= avro_value_set_long(&f, end->offset);
    rc |= req_str(rec, "worker_version", IS_VERSION);
    return rc;
}

int is_events_encode(const is_event_t *ev, const is_event_end_t *end, void **out, size_t *len,
                     char *errstr, size_t errstr_size)
{
    avro_value_t rec;
    avro_writer_t wr = NULL;
    size_t size = 0;
    int rc = -1;

    *out = NULL;
    pthread_mutex_lock(&enc_lock);
    if (schema_init(errstr, errstr_size))
        goto unlock;
    if (avro_generic_value_new(enc_iface, &rec)) {
        snprintf(errstr, errstr_size, "ImageEvent: %s", avro_strerror());
        goto unlock;
    }
    if (fill(&rec, ev, end) || avro_value_sizeof(&rec, &size) ||
        !(*out = malloc(size ? size : 1)) || !(wr = avro_writer_memory(*out, (int64_t)size)) ||
        avro_value_write(wr, &rec)) {
        snprintf(errstr, errstr_size, "encode ImageEvent: %s", avro_strerror());
        free(*out);
        *out = NULL;
    } else {
        *len = size;
        rc = 0;
    }
    if (wr)
        avro_writer_free(wr);
    avro_value_decref(&rec);
unlock:
    pthread_mutex_unlock(&enc_lock);
    return rc;
}

/* Delivery status of one message; set by dr_cb inside rd_kafka_poll on
 * whichever job thread polls first, hence atomic. */
typedef struct dr_status {
    atomic_int done;
    rd_kafka_resp_err_t err; /* written before done is set */
} dr_status_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    dr_status_t *st = rkm->_private;
    (void)rk;
    (void)opaque;
    st->err = rkm->err;
    atomic_store(&st->done, 1);
}

int is_events_check_topic(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    const char *t = cfg->events_topic;
    size_t n = strlen(t);

    if (!n || n > 249 || !strcmp(t, ".") || !strcmp(t, "..") ||
        strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n) {
        snprintf(errstr, errstr_size,
                 "events.topic=%.300s: expected a Kafka topic name (1-249 characters from "
                 "A-Z a-z 0-9 . _ -)",
                 t);
        return -1;
    }
    if (!strcmp(t, cfg->dlq_topic)) {
        snprintf(errstr, errstr_size, "events.topic=%s: expected a topic other than dlq.topic", t);
        return -1;
    }
    /* An input topic would feed the worker its own events. */
    for (const char *p = cfg->input_topics; *p;) {
        size_t len = strcspn(p, ",");
        size_t a = 0, b = len;
        while (a < b && p[a] == ' ')
            a++;
        while (b > a && p[b - 1] == ' ')
            b--;
        if (b - a == n && !strncmp(p + a, t, n)) {
            snprintf(errstr, errstr_size,
                     "events.topic=%s: expected a topic other than the input.topics (%s): the "
                     "worker would read its own events",
                     t, cfg->input_topics);
            return -1;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

is_events_t *is_events_new(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf;
    is_events_t *evs;

    if (is_events_check_topic(cfg, errstr, errstr_size))
        return NULL;

    pthread_mutex_lock(&enc_lock);
    int bad = schema_init(errstr, errstr_size);
    pthread_mutex_unlock(&enc_lock);
    if (bad || !(conf = is_kafka_conf_new(cfg, IS_KAFKA_PRODUCER, errstr, errstr_size)))
        return NULL;
    if (is_kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "acks", "all", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, errstr_size) ||
        is_kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    if (!(evs = calloc(1, sizeof(*evs))) || !(evs->topic = strdup(cfg->events_topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        rd_kafka_conf_destroy(conf);
        free(evs);
        return NULL;
    }
    if (!(evs->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        free(evs->topic);
        free(evs);
        return NULL;
    }
    return evs;
}

void is_events_destroy(is_events_t *evs)
{
    if (!evs)
        return;
    rd_kafka_flush(evs->rk, 10000);
    rd_kafka_destroy(evs->rk);
    free(evs->topic);
    free(evs);
}

int is_events_send(is_events_t *evs, const is_event_t *ev, const is_event_end_t *end, char *errstr,
                   size_t errstr_size)
{
    dr_status_t st = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    void *buf;
    size_t len;

    if (is_events_encode(ev, end, &buf, &len, errstr, errstr_size))
        return -1;
    const char *key = ev->has_record && ev->id[0] ? ev->id : NULL;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        evs->rk, RD_KAFKA_V_TOPIC(evs->topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_OPAQUE(&st), RD_KAFKA_V_END);
    if (err) {
        free(buf); /* not taken over on failure */
        snprintf(errstr, errstr_size, "produce to %s: %s", evs->topic, rd_kafka_err2str(err));
        return -1;
    }
    /* message.timeout.ms bounds this wait: librdkafka always reports. */
    while (!atomic_load(&st.done))
        rd_kafka_poll(evs->rk, 100);
    if (st.err) {
        snprintf(errstr, errstr_size, "deliver to %s: %s", evs->topic, rd_kafka_err2str(st.err));
        return -1;
    }
    return 0;
}
