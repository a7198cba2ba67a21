/*
 * analytics_agg.c - the aggregated dataset. See analytics_agg.h.
 */
#include "analytics_agg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "avro_rec.h"

static const char agg_schema[] =
    "{\"type\":\"record\",\"name\":\"ImageEventAggregate\",\"namespace\":\"io.imgsink\","
    "\"doc\":\"ImageEvents of one events file counted per tenant, outcome, error class and "
    "source format. No image id, hash or camera: kept past the images' retention.\","
    "\"fields\":["
    "{\"name\":\"hour\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"},"
    "\"doc\":\"Start of the event hour (processed_at), UTC.\"},"
    "{\"name\":\"tenant\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"outcome\",\"type\":\"string\",\"doc\":\"written or dead_lettered.\"},"
    "{\"name\":\"error_class\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"source_format\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"events\",\"type\":\"long\"},"
    "{\"name\":\"source_bytes\",\"type\":\"long\"},"
    "{\"name\":\"output_bytes\",\"type\":\"long\",\"doc\":\"Sum of the renditions' bytes.\"},"
    "{\"name\":\"processing_ms_sum\",\"type\":\"double\"},"
    "{\"name\":\"processing_ms_p50\",\"type\":\"double\",\"doc\":\"Nearest rank, this file's "
    "events.\"},"
    "{\"name\":\"processing_ms_p95\",\"type\":\"double\"},"
    "{\"name\":\"processing_ms_p99\",\"type\":\"double\"},"
    "{\"name\":\"processing_ms_max\",\"type\":\"double\"},"
    "{\"name\":\"events_topic\",\"type\":\"string\"},"
    "{\"name\":\"events_partition\",\"type\":\"int\"},"
    "{\"name\":\"events_first_offset\",\"type\":\"long\",\"doc\":\"With events_topic and "
    "events_partition, the name of the events file aggregated.\"}]}";

const char *is_analytics_agg_schema_json(void)
{
    return agg_schema;
}

/* One row being summed; strings NULL for null. */
typedef struct group {
    char *tenant, *outcome, *klass, *format;
    int64_t events, sbytes, obytes;
    double sum, max;
    double *lat;
    size_t nlat, caplat;
} group_t;

static int scmp(const char *a, const char *b)
{
    if (!a || !b)
        return a ? 1 : b ? -1 : 0;
    return strcmp(a, b);
}

static int group_cmp(const void *x, const void *y)
{
    const group_t *a = x, *b = y;
    int c;
    if ((c = scmp(a->tenant, b->tenant)) || (c = scmp(a->outcome, b->outcome)) ||
        (c = scmp(a->klass, b->klass)))
        return c;
    return scmp(a->format, b->format);
}

static int dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The string of a nullable string field, or NULL. */
static const char *opt_str(avro_value_t *rec, const char *name)
{
    avro_value_t f, b;
    int d;
    const char *s = NULL;
    size_t size;
    if (avro_value_get_by_name(rec, name, &f, NULL) || avro_value_get_discriminant(&f, &d) ||
        d != 1 || avro_value_get_current_branch(&f, &b) || avro_value_get_string(&b, &s, &size))
        return NULL;
    return s;
}

static int64_t opt_long(avro_value_t *rec, const char *name)
{
    avro_value_t f, b;
    int d;
    int64_t v = 0;
    if (avro_value_get_by_name(rec, name, &f, NULL) || avro_value_get_discriminant(&f, &d) ||
        d != 1 || avro_value_get_current_branch(&f, &b) || avro_value_get_long(&b, &v))
        return 0;
    return v;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void groups_free(group_t *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].tenant);
        free(g[i].outcome);
        free(g[i].klass);
        free(g[i].format);
        free(g[i].lat);
    }
    free(g);
}

/* Adds one decoded event to its group. 0, or -1 out of memory. */
static int add_event(group_t **gs, size_t *ng, size_t *capg, avro_value_t *ev)
{
    avro_value_t f, arr, item, x;
    group_t key = {0}, *g = NULL;
    int outcome = 0;
    double ms = 0;
    int64_t obytes = 0;
    size_t nr = 0;

    if (!avro_value_get_by_name(ev, "outcome", &f, NULL))
        avro_value_get_enum(&f, &outcome);
    if (!avro_value_get_by_name(ev, "processing_ms", &f, NULL))
        avro_value_get_double(&f, &ms);
    if (!avro_value_get_by_name(ev, "renditions", &arr, NULL) && !avro_value_get_size(&arr, &nr))
        for (size_t i = 0; i < nr; i++) {
            int64_t b = 0;
            if (!avro_value_get_by_index(&arr, i, &item, NULL) &&
                !avro_value_get_by_name(&item, "bytes", &x, NULL) && !avro_value_get_long(&x, &b))
                obytes += b;
        }
    key.tenant = (char *)opt_str(ev, "tenant");
    key.outcome = outcome ? "dead_lettered" : "written";
    key.klass = (char *)opt_str(ev, "error_class");
    key.format = (char *)opt_str(ev, "source_format");
    for (size_t i = 0; i < *ng && !g; i++)
        if (!group_cmp(&(*gs)[i], &key))
            g = &(*gs)[i];
    if (!g) {
        if (*ng == *capg) {
            size_t cap = *capg ? *capg * 2 : 16;
            group_t *n = realloc(*gs, cap * sizeof(*n));
            if (!n)
                return -1;
            *gs = n;
            *capg = cap;
        }
        g = &(*gs)[(*ng)++];
        memset(g, 0, sizeof(*g));
        if ((key.tenant && !(g->tenant = strdup(key.tenant))) ||
            !(g->outcome = strdup(key.outcome)) ||
            (key.klass && !(g->klass = dup_or_null(key.klass))) ||
            (key.format && !(g->format = dup_or_null(key.format))))
            return -1;
    }
    if (g->nlat == g->caplat) {
        size_t cap = g->caplat ? g->caplat * 2 : 64;
        double *l = realloc(g->lat, cap * sizeof(*l));
        if (!l)
            return -1;
        g->lat = l;
        g->caplat = cap;
    }
    g->lat[g->nlat++] = ms;
    g->events++;
    g->sbytes += opt_long(ev, "source_bytes");
    g->obytes += obytes;
    g->sum += ms;
    if (ms > g->max)
        g->max = ms;
    return 0;
}

/* Nearest rank: the smallest value with at least q of the values at or
 * below it. v sorted, n > 0. */
static double quantile(const double *v, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999999);
    if (rank < 1)
        rank = 1;
    return v[(rank > n ? n : rank) - 1];
}

static int fill_row(avro_value_t *rec, group_t *g, int64_t hour_ms, const char *topic,
                    int32_t partition, int64_t first)
{
    int rc = 0;

    qsort(g->lat, g->nlat, sizeof(*g->lat), dbl_cmp);
    rc |= is_avro_rec_set_long(rec, "hour", hour_ms);
    rc |= is_avro_rec_set_opt_string(rec, "tenant", g->tenant);
    rc |= is_avro_rec_set_string(rec, "outcome", g->outcome);
    rc |= is_avro_rec_set_opt_string(rec, "error_class", g->klass);
    rc |= is_avro_rec_set_opt_string(rec, "source_format", g->format);
    rc |= is_avro_rec_set_long(rec, "events", g->events);
    rc |= is_avro_rec_set_long(rec, "source_bytes", g->sbytes);
    rc |= is_avro_rec_set_long(rec, "output_bytes", g->obytes);
    rc |= is_avro_rec_set_double(rec, "processing_ms_sum", g->sum);
    rc |= is_avro_rec_set_double(rec, "processing_ms_p50", quantile(g->lat, g->nlat, 0.50));
    rc |= is_avro_rec_set_double(rec, "processing_ms_p95", quantile(g->lat, g->nlat, 0.95));
    rc |= is_avro_rec_set_double(rec, "processing_ms_p99", quantile(g->lat, g->nlat, 0.99));
    rc |= is_avro_rec_set_double(rec, "processing_ms_max", g->max);
    rc |= is_avro_rec_set_string(rec, "events_topic", topic);
    rc |= is_avro_rec_set_int(rec, "events_partition", partition);
    rc |= is_avro_rec_set_long(rec, "events_first_offset", first);
    return rc;
}

int is_analytics_agg_encode(avro_value_iface_t *event_iface, const char *events,
                            const size_t *sizes, size_t n, int64_t hour_ms, const char *topic,
                            int32_t partition, int64_t first, char **out, size_t *out_len,
                            char *errstr, size_t errstr_size)
{
    group_t *gs = NULL;
    size_t ng = 0, capg = 0, off = 0;
    avro_schema_t schema = NULL;
    avro_value_iface_t *iface = NULL;
    avro_file_writer_t fw = NULL;
    int rc = -1;

    *out = NULL;
    /* The events were decoded once already (analytics.c): they are ours. */
    for (size_t i = 0; i < n; i++) {
        avro_value_t ev;
        avro_reader_t rd = avro_reader_memory(events + off, (int64_t)sizes[i]);
        int bad = !rd || avro_generic_value_new(event_iface, &ev);
        if (!bad) {
            bad = avro_value_read(rd, &ev) || add_event(&gs, &ng, &capg, &ev);
            avro_value_decref(&ev);
        }
        if (rd)
            avro_reader_free(rd);
        if (bad) {
            snprintf(errstr, errstr_size, "aggregate: event %zu: %s", i, avro_strerror());
            goto done;
        }
        off += sizes[i];
    }
    qsort(gs, ng, sizeof(*gs), group_cmp);
    if (is_avro_rec_class(agg_schema, sizeof(agg_schema) - 1, &schema, &iface)) {
        snprintf(errstr, errstr_size, "aggregate schema: %s", avro_strerror());
        goto done;
    }
    if (is_avro_rec_ocf_new("aggregate", schema, 64 * 1024, out, out_len, &fw,
                            "aggregate file writer", errstr, errstr_size))
        goto done;
    for (size_t i = 0; i < ng; i++) {
        avro_value_t rec;
        if (avro_generic_value_new(iface, &rec)) {
            snprintf(errstr, errstr_size, "out of memory");
            goto done;
        }
        int bad = fill_row(&rec, &gs[i], hour_ms, topic, partition, first) ||
                  avro_file_writer_append_value(fw, &rec);
        avro_value_decref(&rec);
        if (bad) {
            snprintf(errstr, errstr_size, "aggregate row: %s", avro_strerror());
            goto done;
        }
    }
    int closed = avro_file_writer_close(fw); /* finishes *out */
    fw = NULL;
    if (closed || is_analytics_ocf_schema(out, out_len, agg_schema)) {
        snprintf(errstr, errstr_size, "aggregate file writer: cannot finish the file");
        goto done;
    }
    rc = 0;
done:
    if (fw)
        avro_file_writer_close(fw);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    if (iface)
        avro_value_iface_decref(iface);
    if (schema)
        avro_schema_decref(schema);
    groups_free(gs, ng);
    return rc;
}
