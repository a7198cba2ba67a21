/*
 * libFuzzer target for is_envelope_decode() (AUTO mode): the decoder of
 * untrusted Kafka message values.
 *
 * Beyond "no crash, no leak, no sanitizer report" it checks one property:
 * a message that decodes re-encodes (in the same envelope) to a message
 * that decodes to the same record. Inputs may use non-canonical varints or
 * negative block counts, so the bytes themselves are not compared.
 *
 * Build and run from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iconnector connector/envelope.c connector/keys.c test/fuzz/fuzz_envelope.c \
 *     $(pkg-config --cflags --libs avro-c) -o fuzz_envelope
 *   ./fuzz_envelope -max_total_time=60 corpus/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define FUZZ_MAX_RECORD ((size_t)1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void)argc;
    (void)argv;
    if (is_envelope_global_init(err, sizeof(err))) {
        fprintf(stderr, "is_envelope_global_init: %s\n", err);
        abort();
    }
    return 0;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static int same_record(const is_record_t *a, const is_record_t *b)
{
    size_t i;

    if (!same_str(a->id, b->id) || !same_str(a->tenant, b->tenant) ||
        !same_str(a->source, b->source) || !same_str(a->content_type, b->content_type) ||
        !same_str(a->filename, b->filename) || a->uploaded_at_ms != b->uploaded_at_ms ||
        a->retention_days != b->retention_days || a->nattrs != b->nattrs ||
        a->payload_is_ref != b->payload_is_ref || a->schema_id != b->schema_id)
        return 0;
    for (i = 0; i < a->nattrs; i++)
        if (!same_str(a->attr_keys[i], b->attr_keys[i]) ||
            !same_str(a->attr_values[i], b->attr_values[i]))
            return 0;
    if (!a->payload_is_ref)
        return a->payload_len == b->payload_len && !memcmp(a->payload, b->payload, a->payload_len);
    return same_str(a->ref.bucket, b->ref.bucket) && same_str(a->ref.key, b->ref.key) &&
           same_str(a->ref.version_id, b->ref.version_id) &&
           same_str(a->ref.sha256, b->ref.sha256) && a->ref.size == b->ref.size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    is_record_t *rec = NULL, *again = NULL;
    void *buf = NULL;
    size_t len = 0;

    if (is_envelope_decode(data, size, IS_ENVELOPE_AUTO, FUZZ_MAX_RECORD, &rec, err, sizeof(err))) {
        if (rec || !err[0])
            abort(); /* failure must leave no record and say why */
        return 0;
    }
    if (is_envelope_encode(rec, rec->schema_id, &buf, &len, err, sizeof(err)) ||
        is_envelope_decode(buf, len, IS_ENVELOPE_AUTO, FUZZ_MAX_RECORD, &again, err, sizeof(err)) ||
        !same_record(rec, again)) {
        fprintf(stderr, "round trip failed: %s\n", err);
        abort();
    }
    is_record_destroy(again);
    is_record_destroy(rec);
    free(buf);
    return 0;
}
