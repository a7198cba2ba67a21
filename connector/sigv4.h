/*
 * sigv4.h - AWS Signature Version 4, header-based (Authorization header).
 *
 * A pure function of its inputs: the caller passes the time as an amz date
 * ("YYYYMMDDTHHMMSSZ"), so the signer is tested against AWS's published
 * examples byte for byte (test/unit/test_sigv4.c). HMAC-SHA256 and SHA-256
 * come from OpenSSL libcrypto.
 *
 * The signer signs exactly the headers it is given (the caller adds host,
 * x-amz-date, x-amz-content-sha256, ...) and adds none of its own, so what
 * is signed is what the caller sends.
 *
 * Thread-safe: no state; any thread may call any function here.
 */
#ifndef IS_SIGV4_H
#define IS_SIGV4_H

#include <stddef.h>

/* Hex SHA-256 of the empty string: the payload hash of a request without body. */
#define IS_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct is_sigv4_header {
    const char *name;  /* any case; lowercased in the canonical form */
    const char *value; /* trimmed and space-collapsed in the canonical form */
} is_sigv4_header_t;

typedef struct is_sigv4_request {
    const char *method; /* "GET", "PUT", ... */
    /* The path exactly as it goes on the wire, already URI-encoded by the
     * caller (is_sigv4_uri_encode with keep-slash per segment). NULL or ""
     * means "/". */
    const char *path;
    /* The query string without '?', as on the wire, or NULL. Percent escapes
     * are decoded and every key and value re-encoded per RFC 3986, so both
     * "a=%E1%88%B4" and raw UTF-8 give the same canonical form. A key
     * without '=' ("lifecycle") gets an empty value ("lifecycle="). '+' is a
     * literal plus, not a space: send spaces as %20. */
    const char *query;
    const is_sigv4_header_t *headers; /* all headers to sign; names may repeat */
    size_t header_cnt;
    /* Hex SHA-256 of the body (is_sha256_hex), IS_SIGV4_EMPTY_SHA256, or
     * "UNSIGNED-PAYLOAD". Ends the canonical request. */
    const char *payload_hash;
    /* 0 for S3: the canonical URI is the wire path as is. 1 for every other
     * service: the wire path is URI-encoded once more ("double encoding").
     * No dot-segment normalization is done either way. */
    int double_encode;
} is_sigv4_request_t;

typedef struct is_sigv4_scope {
    const char *access_key;
    const char *secret_key; /* never copied into any output */
    const char *region;     /* "us-east-1" */
    const char *service;    /* "s3" */
} is_sigv4_scope_t;

/* Everything the signer computed; the strings are malloc'ed and owned by the
 * result: release them with is_sigv4_result_clear. None holds the secret. */
typedef struct is_sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char *signed_headers; /* "host;x-amz-date" */
    char signature[65];   /* lowercase hex */
    char *authorization;  /* value of the Authorization header */
} is_sigv4_result_t;

/* Signs req. amz_date is "YYYYMMDDTHHMMSSZ" and must equal the x-amz-date
 * header the caller sends. Returns 0, or -1 with errstr filled (bad input or
 * out of memory); on -1 res holds nothing to free. */
int is_sigv4_sign(const is_sigv4_request_t *req, const is_sigv4_scope_t *scope,
                  const char *amz_date, is_sigv4_result_t *res, char *errstr, size_t errstr_size);

/* Frees the strings of res and zeroes it; safe on a zeroed or cleared res. */
void is_sigv4_result_clear(is_sigv4_result_t *res);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date8), region), service),
 * "aws4_request"). date8 is "YYYYMMDD". Returns 0 or -1. */
int is_sigv4_signing_key(const char *secret_key, const char *date8, const char *region,
                         const char *service, unsigned char out[32]);

/* Lowercase hex SHA-256 of buf into out65 (64 digits and NUL). Returns 0 or -1. */
int is_sha256_hex(const void *buf, size_t len, char *out65);

/* Base64 SHA-256 of buf (the x-amz-checksum-sha256 form) into out45 (44
 * characters and NUL). Returns 0 or -1. */
int is_sha256_base64(const void *buf, size_t len, char *out45);

/* Both of the above from one pass over buf: a PUT signs the hex form
 * (x-amz-content-sha256) and sends the base64 one (x-amz-checksum-sha256).
 * Returns 0 or -1. */
int is_sha256_hex_base64(const void *buf, size_t len, char *out65, char *out45);

/* RFC 3986 percent-encoding as SigV4 defines it: A-Z a-z 0-9 - _ . ~ stay,
 * every other byte becomes %XX (uppercase hex); '/' stays when encode_slash
 * is 0 (object keys: segments encoded, separators kept). Returns a malloc'ed
 * string the caller frees, or NULL when out of memory. */
char *is_sigv4_uri_encode(const char *s, size_t len, int encode_slash);

#endif
