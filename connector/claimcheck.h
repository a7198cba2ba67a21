/*
 * claimcheck.h - which claim checks (ObjectRef payloads) a record may make,
 * and whether the fetched object is the one the record described.
 *
 * An ObjectRef asks the worker to GET an object with its own credentials, so
 * bucket and key are untrusted input that chooses what the worker reads. Only
 * objects under an allow-list of bucket/prefix entries (claimcheck.allowed)
 * are fetched, each prefix scoped by tenant: "raw/uploads/{tenant}/" lets a
 * record of tenant acme read raw/uploads/acme/... and nothing else.
 *
 * Keys are not normalised into shape, they are refused: a key with an empty,
 * "." or ".." segment, a leading '/', a '%' or a backslash names different
 * objects on different stores and proxies (MinIO drops a leading '/', AWS
 * keeps it; some layers decode %2F or fold '\' into '/'), so no prefix test
 * on it can be trusted. What is left is compared on the bytes the request
 * path carries (each key byte URI-encoded, as s3.c sends it).
 *
 * Thread-safe once built: is_claimcheck_new runs at start-up, the job threads
 * only read the list.
 */
#ifndef IS_CLAIMCHECK_H
#define IS_CLAIMCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

typedef struct is_claimcheck is_claimcheck_t;

/* Parses claimcheck.allowed: comma-separated BUCKET/PREFIX entries. BUCKET is
 * an S3 bucket name; PREFIX may be empty (the whole bucket) and may hold
 * {tenant} as a whole path segment (followed by '/'), replaced by the
 * record's tenant. "" (or only blanks) is the empty list: every claim check
 * is refused. Returns NULL with errstr saying what is wrong with which
 * entry, or on out of memory. */
is_claimcheck_t *is_claimcheck_new(const char *spec, char *errstr, size_t errstr_size);
void is_claimcheck_destroy(is_claimcheck_t *cc); /* NULL is fine */

/* Number of entries (0: claim checks are off). */
size_t is_claimcheck_count(const is_claimcheck_t *cc);

/* May a record of tenant read bucket/key? 0 yes; -1 no, with errstr saying
 * why (names the bucket, key and tenant, never a credential). The tenant must
 * pass is_keys_check_segment (an empty tenant or one with '/' never
 * matches). */
int is_claimcheck_allowed(const is_claimcheck_t *cc, const char *tenant, const char *bucket,
                          const char *key, char *errstr, size_t errstr_size);

/* The ref's own fields, before anything is fetched: sha256 (if given) is 64
 * hex digits, version_id (if given) is 1..1024 printable bytes, size is at
 * most max_bytes (limits.max.input.bytes). 0 or -1 with errstr. */
int is_claimcheck_check_ref(const is_objref_t *ref, int64_t max_bytes, char *errstr,
                            size_t errstr_size);

/* The fetched bytes against the ref: size, then sha256 if given. 0 or -1
 * with errstr ("size mismatch: record says N, object has M", "sha256
 * mismatch: record says X, object has Y"). */
int is_claimcheck_verify(const is_objref_t *ref, const void *body, size_t len, char *errstr,
                         size_t errstr_size);

#endif
