/*
 * presign.h - presigned S3 URLs (SigV4 query-string signing) for `imgsink
 * api`: a client PUTs its upload, or GETs a rendition, with a URL that holds
 * the signature, without credentials of its own.
 *
 * The URL signs the method, the key, the expiry and the headers given
 * (always host; for uploads content-type and content-length too), so the
 * store refuses a request that sends another body size or content type
 * (SignatureDoesNotMatch). The payload is UNSIGNED-PAYLOAD, as every
 * presigned URL. The signature itself comes from sigv4.c.
 *
 * Thread-safe: no state.
 */
#ifndef IS_PRESIGN_H
#define IS_PRESIGN_H

#include <stddef.h>
#include <time.h>

#include "sigv4.h"

typedef struct is_presign {
    const char
        *endpoint; /* "http://127.0.0.1:9000"; NULL/"" => https://s3.<region>.amazonaws.com */
    const char *region, *bucket;
    const char *access_key, *secret_key, *session_token; /* session_token may be NULL/"" */
    int path_style;
} is_presign_t;

/* Builds the URL of method on bucket/key valid for expires_s seconds
 * (1..604800) from now (a unix time, so tests pin it). headers are signed
 * besides host (their names must be lowercase and sorted by name, all
 * before or after "host" as they sort). Returns a malloc'ed URL the caller
 * frees, or NULL with errstr filled. The secret is never in the URL or
 * errstr. */
char *is_presign_url(const is_presign_t *p, const char *method, const char *key, long expires_s,
                     time_t now, const is_sigv4_header_t *headers, size_t header_cnt, char *errstr,
                     size_t errstr_size);

/* Copy of url with the value of X-Amz-Signature (and X-Amz-Credential)
 * replaced by "REDACTED", for logs. Malloc'ed; NULL when out of memory. */
char *is_presign_redact(const char *url);

#endif
