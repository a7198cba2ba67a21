/*
 * api.h - `imgsink api`: the upload service of the API path.
 *
 * A stateless HTTP service (libmicrohttpd), any number of replicas behind a
 * load balancer:
 *
 *   POST /v1/uploads     {content_type, size, filename} -> 201 {id, upload:
 *                        {method, url, headers}, expires_at}: a presigned PUT
 *                        into {api.raw.prefix}{tenant}/{yyyy}/{mm}/{dd}/{id},
 *                        bound to the content type and size
 *   POST /v1/images      the image as the body -> 202 {id}: an ImageRecord
 *                        (source=api) produced with acks=all before answering
 *   GET  /v1/images/{id} pending | processed (presigned GETs of renditions)
 *                        | failed (the reason the worker wrote)
 *   GET  /healthz, /readyz, /metrics
 *
 * Every /v1 request carries "Authorization: Bearer KEY"; api.keys.file maps
 * the SHA-256 of each key to its tenant (api.c says how ids keep tenants
 * apart without any state).
 *
 * Threads: libmicrohttpd runs a thread per connection (at most 256); one thread serves the
 * producer's delivery reports; the main thread reloads the keys.
 */
#ifndef IS_API_H
#define IS_API_H

#include "config.h"

/* argv[0] is "api". Returns the process exit code. */
int is_api_main(is_config_t *cfg, int argc, char **argv);

/* Pure helpers, unit-tested. */

/* api.raw.bucket, or s3.bucket when it is empty. */
const char *is_api_raw_bucket(const is_config_t *cfg);

/* Format name ("jpeg", ...) of an image content type, or NULL. */
const char *is_api_format_of(const char *content_type);

/* Parses a keys file's text into tenants and 32-byte hashes (malloc'ed
 * arrays the caller frees, tenants each malloc'ed). Returns the count, or -1
 * with errstr naming the line. */
int is_api_parse_keys(const char *text, char ***tenants, unsigned char (**hashes)[32], char *errstr,
                      size_t errstr_size);

#endif
