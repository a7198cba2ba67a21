/*
 * libFuzzer target for is_s3event_parse() and is_s3event_layout(): the
 * decoder of S3 event records, untrusted Kafka message values (anyone who
 * can produce to the input topic writes them).
 *
 * Beyond "no crash, no leak, no sanitizer report" it checks that every
 * created event has a bucket and a decoded key, and that a key accepted by
 * the layout gives a tenant and an id that are safe path segments.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "s3event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    is_s3event_t *evs = NULL;
    char err[512];
    int n = is_s3event_parse(data, size, &evs, err, sizeof(err));
    if (n < 0) {
        if (evs)
            abort();
        return 0;
    }
    if (n < 1 || n > IS_S3EVENT_MAX_RECORDS)
        abort();
    for (int i = 0; i < n; i++) {
        char tenant[IS_KEYS_MAX_ID + 1], id[IS_KEYS_MAX_ID + 1], why[256];
        int64_t day;
        if (!evs[i].created)
            continue;
        if (!evs[i].bucket || !evs[i].key || !*evs[i].key || evs[i].size < 0)
            abort();
        if (is_s3event_layout("raw/", evs[i].key, tenant, sizeof(tenant), id, sizeof(id), &day, err,
                              sizeof(err)) == 0 &&
            (is_keys_check_segment("tenant", tenant, why, sizeof(why)) ||
             is_keys_check_segment("id", id, why, sizeof(why)) || day < 0))
            abort();
    }
    is_s3event_free(evs, n);
    return 0;
}
