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

#include "avro_rec.h"
#include "kafka.h"
#include "registry.h"

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
    /* With schema.registry.url: the schema is registered under
     * {topic}-value on the first send (not at start-up, so a registry that
     * is down delays events like a broker that is down, and they are
     * retried), and every event is framed with the id. */
    is_registry_t *registry;
    char subject[300];
    pthread_mutex_t reg_lock;
    atomic_int schema_id; /* -1 until registered */
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
    if (is_avro_rec_class(schema_json, sizeof(schema_json) - 1, &enc_schema, &enc_iface)) {
        snprintf(errstr, errstr_size, "ImageEvent schema: %s", avro_strerror());
        return -1;
    }
    return 0;
}

/* A string of the event: empty is null. */
static int opt_str(avro_value_t *rec, const char *name, const char *s)
{
    return is_avro_rec_set_opt_string(rec, name, s && *s ? s : NULL);
}

static int fill(avro_value_t *rec, const is_event_t *ev, const is_event_end_t *end)
{
    avro_value_t arr, item;
    char reason[1024];
    int rc = 0;
    int written = !end->klass;

    copy_ascii(reason, sizeof(reason), end->reason);
    rc |= ev->has_record ? opt_str(rec, "id", ev->id) : is_avro_rec_set_null(rec, "id");
    rc |= ev->has_record ? opt_str(rec, "tenant", ev->tenant) : is_avro_rec_set_null(rec, "tenant");
    rc |= ev->has_record ? opt_str(rec, "source", ev->source) : is_avro_rec_set_null(rec, "source");
    rc |= is_avro_rec_set_enum(rec, "outcome", written ? 0 : 1);
    rc |= written ? is_avro_rec_set_null(rec, "error_class")
                  : opt_str(rec, "error_class", end->klass);
    rc |= written ? is_avro_rec_set_null(rec, "error_message")
                  : opt_str(rec, "error_message", reason);
    rc |= ev->has_record ? is_avro_rec_set_opt_long(rec, "uploaded_at", ev->uploaded_at_ms)
                         : is_avro_rec_set_null(rec, "uploaded_at");
    rc |= is_avro_rec_set_long(rec, "processed_at", end->processed_at_ms);
    rc |= is_avro_rec_set_double(rec, "processing_ms", end->processing_ms);
    if (ev->has_result) {
        rc |= opt_str(rec, "source_format", ev->format);
        rc |= is_avro_rec_set_opt_long(rec, "source_bytes", ev->bytes);
        rc |= is_avro_rec_set_opt_int(rec, "width", ev->width);
        rc |= is_avro_rec_set_opt_int(rec, "height", ev->height);
        rc |= is_avro_rec_set_opt_int(rec, "orientation", ev->orientation);
        rc |= is_avro_rec_set_opt_int(rec, "frames", ev->frames);
        rc |= opt_str(rec, "camera_make", ev->camera_make);
        rc |= opt_str(rec, "camera_model", ev->camera_model);
        rc |= is_avro_rec_set_opt_long(rec, "phash", (int64_t)ev->phash);
        rc |= opt_str(rec, "mean_color", ev->mean_color);
    } else {
        static const char *const none[] = {
            "source_format", "source_bytes", "width",        "height", "orientation",
            "frames",        "camera_make",  "camera_model", "phash",  "mean_color"};
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
            rc |= is_avro_rec_set_null(rec, none[i]);
    }
    if (!(rc |= avro_value_get_by_name(rec, "renditions", &arr, NULL)))
        for (int i = 0; ev->has_result && written && i < ev->nout && !rc; i++) {
            rc |= avro_value_append(&arr, &item, NULL);
            rc |= is_avro_rec_set_string(&item, "name", ev->out[i].name);
            rc |= is_avro_rec_set_string(&item, "format", ev->out[i].format);
            rc |= is_avro_rec_set_int(&item, "width", ev->out[i].width);
            rc |= is_avro_rec_set_int(&item, "height", ev->out[i].height);
            rc |= is_avro_rec_set_long(&item, "bytes", ev->out[i].bytes);
        }
    rc |= is_avro_rec_set_string(rec, "kafka_topic", end->topic);
    rc |= is_avro_rec_set_int(rec, "kafka_partition", end->partition);
    rc |= is_avro_rec_set_long(rec, "kafka_offset", end->offset);
    rc |= is_avro_rec_set_string(rec, "worker_version", IS_VERSION);
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
    atomic_init(&evs->schema_id, -1);
    pthread_mutex_init(&evs->reg_lock, NULL);
    snprintf(evs->subject, sizeof(evs->subject), "%s-value", cfg->events_topic);
    if (*cfg->schema_registry_url &&
        !(evs->registry = is_registry_new(
              cfg->schema_registry_url, cfg->schema_registry_userinfo, cfg->schema_registry_ca,
              (long)cfg->schema_registry_timeout_ms, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        is_events_destroy(evs);
        return NULL;
    }
    if (!(evs->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        is_events_destroy(evs);
        return NULL;
    }
    return evs;
}

void is_events_destroy(is_events_t *evs)
{
    if (!evs)
        return;
    if (evs->rk) {
        rd_kafka_flush(evs->rk, 10000);
        rd_kafka_destroy(evs->rk);
    }
    is_registry_destroy(evs->registry);
    pthread_mutex_destroy(&evs->reg_lock);
    free(evs->topic);
    free(evs);
}

int is_events_frame(int schema_id, void **buf, size_t *len, char *errstr, size_t errstr_size)
{
    unsigned char *out = malloc(*len + 5);

    if (!out) {
        snprintf(errstr, errstr_size, "out of memory");
        free(*buf);
        *buf = NULL;
        return -1;
    }
    out[0] = 0;
    out[1] = (unsigned char)((uint32_t)schema_id >> 24);
    out[2] = (unsigned char)((uint32_t)schema_id >> 16);
    out[3] = (unsigned char)((uint32_t)schema_id >> 8);
    out[4] = (unsigned char)schema_id;
    memcpy(out + 5, *buf, *len);
    free(*buf);
    *buf = out;
    *len += 5;
    return 0;
}

/* The registry's id of the ImageEvent schema, registering it the first
 * time; -1 with errstr while the registry cannot say (the caller retries
 * the event, as for a broker that does not acknowledge). Any job thread:
 * one registers, the others wait on the lock and find the id. */
static int schema_id(is_events_t *evs, char *errstr, size_t errstr_size)
{
    int id = atomic_load(&evs->schema_id);
    if (id >= 0)
        return id;
    pthread_mutex_lock(&evs->reg_lock);
    if ((id = atomic_load(&evs->schema_id)) < 0) {
        char why[512];
        if (is_registry_register(evs->registry, evs->subject, schema_json, &id, why, sizeof(why))) {
            snprintf(errstr, errstr_size, "register the ImageEvent schema under %s: %s",
                     evs->subject, why);
            id = -1;
        } else {
            atomic_store(&evs->schema_id, id);
        }
    }
    pthread_mutex_unlock(&evs->reg_lock);
    return id;
}

int is_events_send(is_events_t *evs, const is_event_t *ev, const is_event_end_t *end, char *errstr,
                   size_t errstr_size)
{
    dr_status_t st = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    void *buf;
    size_t len;

    int id = -1;
    if (evs->registry && (id = schema_id(evs, errstr, errstr_size)) < 0)
        return -1;
    if (is_events_encode(ev, end, &buf, &len, errstr, errstr_size))
        return -1;
    if (id >= 0 && is_events_frame(id, &buf, &len, errstr, errstr_size))
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
