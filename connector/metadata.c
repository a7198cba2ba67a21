/*
 * metadata.c - builds metadata.json. See metadata.h.
 */
#include "metadata.h"

#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "sigv4.h"

/* Strings from hostile input may be invalid UTF-8; jansson refuses those,
 * and a null is better than a lost document. */
static json_t *str_or_null(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

static void iso8601(int64_t ms, char *out, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

char *is_metadata_json(const is_record_t *rec, const is_result_t *res, char *const *keys,
                       const is_metadata_src_t *src)
{
    char when[48], phash[17], mean[8];
    json_t *doc = json_object(), *attrs = json_object(), *input, *outs = json_array();

    iso8601(rec->uploaded_at_ms, when, sizeof(when));
    snprintf(phash, sizeof(phash), "%016llx", (unsigned long long)res->phash);
    snprintf(mean, sizeof(mean), "#%02x%02x%02x", res->mean_rgb[0] & 0xff, res->mean_rgb[1] & 0xff,
             res->mean_rgb[2] & 0xff);
    for (size_t i = 0; i < rec->nattrs; i++)
        json_object_set_new(attrs, rec->attr_keys[i], str_or_null(rec->attr_values[i]));

    input = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:I, s:s, s:o, s:o}", "format", res->format, "width", res->width,
        "height", res->height, "pages", res->pages, "orientation", res->orientation, "bytes",
        (json_int_t)res->bytes, "sha256", src->source_sha256, "camera_make",
        res->camera_make[0] ? str_or_null(res->camera_make) : json_null(), "camera_model",
        res->camera_model[0] ? str_or_null(res->camera_model) : json_null());
    json_object_set_new(input, "phash", json_string(phash));
    json_object_set_new(input, "mean_color", json_string(mean));

    for (int i = 0; i < res->nout; i++) {
        const is_output_t *o = &res->out[i];
        char own[65];
        const char *sha = src->rendition_sha256 ? src->rendition_sha256[i] : own;
        if (!src->rendition_sha256 && is_sha256_hex(o->buf, o->len, own)) {
            json_decref(doc); /* out of memory: no document rather than a wrong one */
            json_decref(attrs);
            json_decref(input);
            json_decref(outs);
            return NULL;
        }
        json_array_append_new(
            outs, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:s}", "name", o->name, "key",
                            keys[i], "format", o->ext, "content_type", o->content_type, "width",
                            o->width, "height", o->height, "frames", o->pages > 0 ? o->pages : 1,
                            "bytes", (json_int_t)o->len, "sha256", sha));
    }

    json_object_set_new(doc, "schema_version", json_integer(2));
    json_object_set_new(doc, "id", str_or_null(rec->id));
    json_object_set_new(doc, "tenant", str_or_null(rec->tenant));
    json_object_set_new(doc, "source", str_or_null(rec->source));
    json_object_set_new(doc, "uploaded_at", json_string(when));
    json_object_set_new(doc, "filename", str_or_null(rec->filename));
    json_object_set_new(doc, "content_type", str_or_null(rec->content_type));
    json_object_set_new(doc, "retention_days", json_integer(rec->retention_days));
    json_object_set_new(doc, "attributes", attrs);
    json_object_set_new(doc, "input", input);
    json_object_set_new(doc, "renditions", outs);
    json_object_set_new(doc, "kafka",
                        json_pack("{s:s, s:i, s:I}", "topic", src->topic, "partition",
                                  (int)src->partition, "offset", (json_int_t)src->offset));
    json_object_set_new(doc, "worker_version", json_string(IS_VERSION));

    /* Byte-identical on every run for the same record: keys in insertion
     * order (fixed above; attributes in wire order), no reals, nothing
     * read from a clock. */
    char *text = json_dumps(doc, JSON_PRESERVE_ORDER | JSON_INDENT(1));
    json_decref(doc);
    return text;
}
