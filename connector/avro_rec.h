/*
 * avro_rec.h - building Avro records with avro-c: a schema's value class,
 * field setters, and object container files written to memory. Shared by
 * the ImageEvent encoder (events.c) and the analytics files
 * (analytics.c, analytics_agg.c, analytics_rollup.c).
 *
 * The setters name a field of a record value and return 0, or non-zero
 * when the field is missing or of another type; callers OR them together
 * and check once. A nullable field is a union whose branch 0 is null and
 * branch 1 the value, as in schemas/image_event.avsc.
 *
 * Thread: no state; a value and its class belong to their caller (avro-c's
 * reference counts are not meant for concurrent use).
 */
#ifndef IS_AVRO_REC_H
#define IS_AVRO_REC_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>

/* Parses json (len bytes) and makes its generic value class: *schema and
 * *iface, both the caller's to decref. 0, or -1 with avro_strerror()
 * saying why; nothing is held then (both NULL). */
int is_avro_rec_class(const char *json, size_t len, avro_schema_t *schema,
                      avro_value_iface_t **iface);

int is_avro_rec_set_null(avro_value_t *rec, const char *name);
/* s NULL: "". */
int is_avro_rec_set_string(avro_value_t *rec, const char *name, const char *s);
/* s NULL: null. */
int is_avro_rec_set_opt_string(avro_value_t *rec, const char *name, const char *s);
int is_avro_rec_set_int(avro_value_t *rec, const char *name, int32_t v);
int is_avro_rec_set_opt_int(avro_value_t *rec, const char *name, int32_t v);
int is_avro_rec_set_long(avro_value_t *rec, const char *name, int64_t v);
int is_avro_rec_set_opt_long(avro_value_t *rec, const char *name, int64_t v);
int is_avro_rec_set_double(avro_value_t *rec, const char *name, double v);
int is_avro_rec_set_enum(avro_value_t *rec, const char *name, int symbol);

/* Starts an Avro object container file of schema in memory, deflate, in
 * blocks of block_size bytes: rows go to *fw, and avro_file_writer_close
 * finishes the file into *out and *out_len (open_memstream: malloc'd, the
 * caller frees it, also when a later step fails). name: the file's name
 * for avro-c. 0, or -1 with "what: reason" in errstr; then nothing is
 * open and *out is NULL. */
int is_avro_rec_ocf_new(const char *name, avro_schema_t schema, size_t block_size, char **out,
                        size_t *out_len, avro_file_writer_t *fw, const char *what, char *errstr,
                        size_t errstr_size);

#endif
