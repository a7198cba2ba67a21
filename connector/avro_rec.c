/*
 * avro_rec.c - building Avro records. See avro_rec.h.
 */
#include "avro_rec.h"

#include <stdio.h>
#include <stdlib.h>

int is_avro_rec_class(const char *json, size_t len, avro_schema_t *schema,
                      avro_value_iface_t **iface)
{
    *schema = NULL;
    *iface = NULL;
    if (avro_schema_from_json_length(json, len, schema)) {
        *schema = NULL;
        return -1;
    }
    if (!(*iface = avro_generic_class_from_schema(*schema))) {
        avro_schema_decref(*schema);
        *schema = NULL;
        return -1;
    }
    return 0;
}

/* The value of branch 1 (the value, not null) of nullable field name. */
static int opt_branch(avro_value_t *rec, const char *name, avro_value_t *b)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 1, b) ? -1 : 0;
}

int is_avro_rec_set_null(avro_value_t *rec, const char *name)
{
    avro_value_t f, b;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_branch(&f, 0, &b) ? -1 : avro_value_set_null(&b);
}

int is_avro_rec_set_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_string(&f, s ? s : "");
}

int is_avro_rec_set_opt_string(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t b;
    if (!s)
        return is_avro_rec_set_null(rec, name);
    int rc = opt_branch(rec, name, &b);
    return rc ? rc : avro_value_set_string(&b, s);
}

int is_avro_rec_set_int(avro_value_t *rec, const char *name, int32_t v)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_int(&f, v);
}

int is_avro_rec_set_opt_int(avro_value_t *rec, const char *name, int32_t v)
{
    avro_value_t b;
    int rc = opt_branch(rec, name, &b);
    return rc ? rc : avro_value_set_int(&b, v);
}

int is_avro_rec_set_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_long(&f, v);
}

int is_avro_rec_set_opt_long(avro_value_t *rec, const char *name, int64_t v)
{
    avro_value_t b;
    int rc = opt_branch(rec, name, &b);
    return rc ? rc : avro_value_set_long(&b, v);
}

int is_avro_rec_set_double(avro_value_t *rec, const char *name, double v)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_double(&f, v);
}

int is_avro_rec_set_enum(avro_value_t *rec, const char *name, int symbol)
{
    avro_value_t f;
    int rc = avro_value_get_by_name(rec, name, &f, NULL);
    return rc ? rc : avro_value_set_enum(&f, symbol);
}

int is_avro_rec_ocf_new(const char *name, avro_schema_t schema, size_t block_size, char **out,
                        size_t *out_len, avro_file_writer_t *fw, const char *what, char *errstr,
                        size_t errstr_size)
{
    FILE *fp;

    *out = NULL;
    *out_len = 0;
    *fw = NULL;
    if (!(fp = open_memstream(out, out_len))) {
        snprintf(errstr, errstr_size, "%s: out of memory", what);
        return -1;
    }
    /* should_close: avro_file_writer_close closes fp, which finishes *out. */
    if (avro_file_writer_create_with_codec_fp(fp, name, 1, schema, fw, "deflate", block_size)) {
        snprintf(errstr, errstr_size, "%s: %s", what, avro_strerror());
        *fw = NULL;
        fclose(fp);
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}
