/*
 * registry: a client of a Confluent-compatible Schema Registry (Confluent,
 * Apicurio's /apis/ccompat/v7, Karapace...).
 *
 * The worker asks it for the writer schema of a Confluent wire-format
 * record (GET {url}/schemas/ids/{id}); `imgsink produce --schema-registry`
 * registers the bundled schema (POST {url}/subjects/{subject}/versions).
 * Parsed writer schemas are cached by id for the life of the client: an id
 * names one schema for good in a Schema Registry.
 *
 * The registry is trusted to say which schema an id has, not to be well
 * behaved: responses are capped at IS_REGISTRY_MAX_RESPONSE bytes, must be
 * JSON, and a schema must parse as Avro. Outcomes of a lookup:
 *   0   the schema (cached);
 *   1   permanent for this id: the registry says it does not exist (404
 *       with error_code 40403), or answered 2xx with something that is not
 *       a usable Avro schema (too large, not JSON, no "schema" string, a
 *       schemaType other than AVRO, invalid Avro). The record goes to the
 *       DLQ with the reason.
 *   -1  transient: cannot connect, timeout, TLS failure, 5xx, 429, 401/403
 *       (credentials being rotated) or any other answer. The record is
 *       retried, never dead-lettered, so a registry outage or a wrong
 *       schema.registry.url cannot empty a topic into the DLQ.
 *
 * Threads: any number of threads may call is_registry_schema() at once
 * (the cache has a mutex, held only for lookups and inserts, never during
 * a request). new/destroy on one thread while no other uses the client.
 * libcurl must be initialised (is_s3_global_init()).
 */
#ifndef IS_REGISTRY_H
#define IS_REGISTRY_H

#include <stddef.h>

#include <avro.h>

/* Largest registry response read, in bytes; more is refused. */
#define IS_REGISTRY_MAX_RESPONSE ((size_t)1 << 20)
/* Writer schemas cached; ids beyond this are fetched on every record. */
#define IS_REGISTRY_CACHE_MAX 1024

typedef struct is_registry is_registry_t;

/* url: the API root, e.g. http://host:8080/apis/ccompat/v7 (http or
 * https). userinfo: "USER:PASSWORD" for basic auth, or NULL/"" for none.
 * ca_file: PEM CA bundle for https, or NULL/"" for the system's.
 * timeout_ms bounds each request. NULL with errstr on a bad argument. */
is_registry_t *is_registry_new(const char *url, const char *userinfo, const char *ca_file,
                               long timeout_ms, char *errstr, size_t errstr_size);

/* Accepts NULL. */
void is_registry_destroy(is_registry_t *reg);

/* The writer schema of id: 0 with *schemap holding a new reference (the
 * caller decrefs it), 1 permanent or -1 transient with errstr (see above). */
int is_registry_schema(is_registry_t *reg, int id, avro_schema_t *schemap, char *errstr,
                       size_t errstr_size);

/* Registers schema_json (Avro) under subject and returns its id in *idp
 * (an existing identical version returns its id). 0, or -1 with errstr
 * (e.g. "registry answered 409: ..." for an incompatible schema). */
int is_registry_register(is_registry_t *reg, const char *subject, const char *schema_json, int *idp,
                         char *errstr, size_t errstr_size);

#endif
