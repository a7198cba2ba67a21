/*
 * keys.h - deterministic object keys and retention tags.
 *
 * A record's outputs live under
 *   {prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}/{rendition}.{ext}
 *   {prefix}{tenant}/{yyyy}/{mm}/{dd}/{id}/metadata.json
 * with the date from uploaded_at in UTC, so a replay of the same record
 * writes the same keys (an overwrite with identical bytes, never a second
 * copy). id and tenant come from untrusted input and become path segments:
 * they are validated against a strict charset, never escaped into shape.
 */
#ifndef IS_KEYS_H
#define IS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define IS_KEYS_MAX_ID 128

/* 0 if s is 1..128 chars of [A-Za-z0-9._-], does not start with '.' and is
 * not "." or ".."; else -1 with the reason. what names the field. */
int is_keys_check_segment(const char *what, const char *s, char *errstr, size_t errstr_size);

/* Builds the key of one output. name is a rendition name or "metadata";
 * ext is "jpg", "webp", "json", ... Returns 0, or -1 if the id or tenant is
 * unsafe or the key does not fit. */
int is_keys_object(const char *prefix, const char *tenant, int64_t uploaded_at_ms, const char *id,
                   const char *name, const char *ext, char *out, size_t out_size, char *errstr,
                   size_t errstr_size);

/* Builds the x-amz-tagging value: "retention=<days>d&source=<source>",
 * URL-encoded. The lifecycle rule matches retention=7d for the default. */
int is_keys_tagging(int retention_days, const char *source, char *out, size_t out_size);

/* Retention classes (retention.classes): the retention_days values a record
 * may ask for, each covered by a lifecycle rule on tag retention=<N>d. */
#define IS_KEYS_MAX_RETENTION_CLASSES 16

/* Parses "7,30,365": 1..IS_KEYS_MAX_RETENTION_CLASSES distinct integers in
 * 1..3650, in the order given. Returns 0, or -1 with errstr saying what was
 * expected. */
int is_keys_retention_classes(const char *spec, int *days, int *n, char *errstr,
                              size_t errstr_size);

/* application/x-www-form-urlencoded-style percent encoding of one value
 * (RFC 3986 unreserved characters kept). Returns 0, -1 if out is too small. */
int is_keys_urlencode(const char *in, char *out, size_t out_size);

#endif
