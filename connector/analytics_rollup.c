/*
 * analytics_rollup.c - the daily rollup. See analytics_rollup.h.
 */
#include "analytics_rollup.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "avro_rec.h"
#include "events.h"
#include "log.h"

/* Largest file read (hourly or daily). */
#define ROLLUP_MAX_FILE ((size_t)1 << 31)
#define SOURCES_KEY     "imgsink.sources"

static int valid_date(const char *d)
{
    if (!d || strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)d[i]))
            return 0;
    int m = atoi(d + 5), day = atoi(d + 8);
    return m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

/* Whether key is one of the n lines of list (sorted or not). */
static int listed(char **list, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], key))
            return 1;
    return 0;
}

/* Appends every row of the Avro file buf to fw. Rows are read with the
 * bundled schema; a file of another schema is refused. Returns the rows,
 * or -1 with errstr. */
static int64_t copy_rows(const char *what, char *buf, size_t len, avro_schema_t schema,
                         avro_value_iface_t *iface, avro_file_writer_t fw, char *errstr,
                         size_t errstr_size)
{
    FILE *fp = fmemopen(buf, len, "rb");
    avro_file_reader_t r;
    avro_value_t v;
    int64_t rows = 0;

    if (!fp || avro_file_reader_fp(fp, what, 1, &r)) {
        snprintf(errstr, errstr_size, "%s: not an Avro file: %s", what, avro_strerror());
        if (fp)
            fclose(fp);
        return -1;
    }
    /* A new reference (avro-c increfs it). */
    avro_schema_t ws = avro_file_reader_get_writer_schema(r);
    int same = ws && avro_schema_equal(ws, schema);
    if (ws)
        avro_schema_decref(ws);
    if (!same) {
        snprintf(errstr, errstr_size,
                 "%s: written in another schema than this imgsink's ImageEvent; roll this day "
                 "up with an imgsink of that version",
                 what);
        avro_file_reader_close(r);
        return -1;
    }
    if (avro_generic_value_new(iface, &v)) {
        snprintf(errstr, errstr_size, "out of memory");
        avro_file_reader_close(r);
        return -1;
    }
    int rc;
    while (!(rc = avro_file_reader_read_value(r, &v))) {
        if (avro_file_writer_append_value(fw, &v)) {
            snprintf(errstr, errstr_size, "%s: %s", what, avro_strerror());
            rows = -1;
            break;
        }
        rows++;
        avro_value_reset(&v);
    }
    if (rows >= 0 && rc != EOF) {
        snprintf(errstr, errstr_size, "%s: unreadable after %lld rows: %s", what, (long long)rows,
                 avro_strerror());
        rows = -1;
    }
    avro_value_decref(&v);
    avro_file_reader_close(r); /* closes fp */
    return rows;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int is_analytics_rollup(const is_config_t *cfg, is_s3_t *s3, avro_schema_t schema,
                        avro_value_iface_t *iface, const char *tagging, const char *date)
{
    char hprefix[1100], dkey[1100], errstr[1024];
    char **keys = NULL, **merged = NULL, *daily = NULL, *meta = NULL, *out = NULL;
    size_t nkeys = 0, nmerged = 0, dlen = 0, olen = 0, nsrc = 0, nnew = 0;
    char **src = NULL;
    int64_t rows = 0, bytes_in = 0;
    avro_file_writer_t fw = NULL;
    int rc = 1, deleted = 0;

    if (!valid_date(date)) {
        fprintf(stderr, "imgsink analytics rollup: --date %s: expected YYYY-MM-DD\n",
                date ? date : "(none)");
        return 2;
    }
    snprintf(hprefix, sizeof(hprefix), "%sevents/dt=%s/", cfg->analytics_prefix, date);
    snprintf(dkey, sizeof(dkey), "%sevents_daily/dt=%s/%s.avro", cfg->analytics_prefix, date, date);
    if (is_s3_list(s3, hprefix, &keys, &nkeys, errstr, sizeof(errstr)) != IS_S3_OK)
        goto fail;
    void *body = NULL;
    is_s3_result_t r =
        is_s3_get(s3, NULL, dkey, NULL, -1, ROLLUP_MAX_FILE, &body, &dlen, errstr, sizeof(errstr));
    daily = body;
    if (r != IS_S3_OK && !strstr(errstr, "HTTP 404"))
        goto fail;
    if (r == IS_S3_OK) {
        /* The hourly files it already holds, one per line. */
        if (is_analytics_ocf_meta(daily, dlen, SOURCES_KEY, &meta) || !meta) {
            snprintf(errstr, sizeof(errstr), "%.900s: not a daily file of imgsink (no %s)", dkey,
                     SOURCES_KEY);
            goto fail;
        }
        for (char *save = NULL, *l = strtok_r(meta, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            char **m = realloc(merged, (nmerged + 1) * sizeof(*m));
            if (!m)
                goto oom;
            merged = m;
            merged[nmerged++] = l;
        }
    } else {
        free(daily);
        daily = NULL;
        dlen = 0;
    }
    /* Sources of the new daily file: what it held, and every hourly file. */
    if (!(src = calloc(nmerged + nkeys + 1, sizeof(*src))))
        goto oom;
    for (size_t i = 0; i < nmerged; i++)
        src[nsrc++] = merged[i];
    for (size_t i = 0; i < nkeys; i++) {
        size_t kl = strlen(keys[i]);
        if (kl < 5 || strcmp(keys[i] + kl - 5, ".avro") || !strstr(keys[i], "/hour="))
            continue;
        if (!listed(merged, nmerged, keys[i])) {
            src[nsrc++] = keys[i];
            nnew++;
        }
    }
    if (!nnew && !daily) {
        printf("rollup %s: nothing to roll up under %s\n", date, hprefix);
        rc = 0;
        goto done;
    }
    if (nnew) {
        if (is_avro_rec_ocf_new("rollup", schema, 1024 * 1024, &out, &olen, &fw, "avro file writer",
                                errstr, sizeof(errstr)))
            goto fail;
        if (daily) {
            int64_t n = copy_rows(dkey, daily, dlen, schema, iface, fw, errstr, sizeof(errstr));
            if (n < 0)
                goto fail;
            rows += n;
        }
        for (size_t i = nmerged; i < nsrc; i++) {
            void *hb = NULL;
            size_t hl = 0;
            if (is_s3_get(s3, NULL, src[i], NULL, -1, ROLLUP_MAX_FILE, &hb, &hl, errstr,
                          sizeof(errstr)) != IS_S3_OK)
                goto fail;
            int64_t n = copy_rows(src[i], hb, hl, schema, iface, fw, errstr, sizeof(errstr));
            free(hb);
            if (n < 0)
                goto fail;
            rows += n;
            bytes_in += (int64_t)hl;
        }
        int closed = avro_file_writer_close(fw); /* finishes out */
        fw = NULL;
        qsort(src, nsrc, sizeof(*src), cmp_str);
        size_t ml = 1;
        for (size_t i = 0; i < nsrc; i++)
            ml += strlen(src[i]) + 1;
        char *list = malloc(ml);
        if (!list)
            goto oom;
        list[0] = '\0';
        for (size_t i = 0, at = 0; i < nsrc; i++)
            at += (size_t)sprintf(list + at, "%s%s", i ? "\n" : "", src[i]);
        int bad = closed ||
                  is_analytics_ocf_header(&out, &olen, is_events_schema_json(), SOURCES_KEY, list);
        free(list);
        if (bad) {
            snprintf(errstr, sizeof(errstr), "cannot finish the daily file");
            goto fail;
        }
        /* The daily file first: until it is durable, the hourly files are
         * the only copy. */
        if (is_s3_put(s3, dkey, out, olen, "application/avro", tagging, 0, errstr,
                      sizeof(errstr)) != IS_S3_OK)
            goto fail;
    }
    /* Then every hourly file it holds. A failure leaves some: the daily
     * file names them, so a rerun only deletes them. */
    for (size_t i = 0; i < nkeys; i++) {
        if (!listed(src, nsrc, keys[i]))
            continue;
        if (is_s3_delete(s3, keys[i], errstr, sizeof(errstr)) != IS_S3_OK)
            goto fail;
        deleted++;
    }
    IS_INFO("rollup",
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i}", "date", date, "key", dkey, "new_files",
                      (json_int_t)nnew, "rows", (json_int_t)rows, "hourly_bytes",
                      (json_int_t)bytes_in, "daily_bytes", (json_int_t)(nnew ? olen : dlen),
                      "deleted", deleted),
            "rollup done");
    printf("rollup %s: %zu hourly files merged (%lld bytes) into %s: %lld rows, %zu bytes; %d "
           "hourly files deleted\n",
           date, nnew, (long long)bytes_in, dkey, (long long)rows, nnew ? olen : dlen, deleted);
    rc = 0;
    goto done;
oom:
    snprintf(errstr, sizeof(errstr), "out of memory");
fail:
    IS_ERR("rollup", json_pack("{s:s}", "date", date), "rollup failed: %s", errstr);
    fprintf(stderr, "imgsink analytics rollup: %s\n", errstr);
done:
    if (fw)
        avro_file_writer_close(fw);
    free(out);
    free(src);
    free(merged);
    free(meta);
    free(daily);
    is_s3_keys_free(keys, nkeys);
    return rc;
}
