/*
 * libFuzzer target for the path of untrusted bytes from a Kafka message to
 * pixels: is_envelope_decode() (AUTO mode), then is_pipeline_run() on the
 * record's inline image; input that is not an envelope is run through the
 * pipeline as an image itself, so the fuzzer also explores the image
 * loaders directly (seeded with the hostile inputs of test/hostile/).
 *
 * Properties beyond "no crash, no leak, no sanitizer report": every
 * outcome is OK or FAIL (RETRY needs a budget hook, none is set); a FAIL
 * says why and leaves no rendition; an OK has every rendition non-empty and
 * within its box.
 *
 * Build and run: `make fuzz` (FUZZ_SECONDS=60 per target) or
 * `bash test/run.sh fuzz` (as `make test` runs it, briefly).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "envelope.h"
#include "pipeline.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static is_config_t *cfg;
static is_pipeline_conf_t conf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    (void)argc;
    cfg = is_config_new();
    /* Small and quick: the point is the decoders, not the resizing. */
    if (is_config_set(cfg, "renditions", "a=64x64/jpeg/50,b=32x32/webp/50/cover/animated", err,
                      sizeof(err)) ||
        is_config_set(cfg, "limits.max.pixels", "4000000", err, sizeof(err)) ||
        is_config_set(cfg, "limits.max.frames", "16", err, sizeof(err)) ||
        is_config_set(cfg, "limits.timeout.ms", "5000", err, sizeof(err)) ||
        is_envelope_global_init(err, sizeof(err)) ||
        is_pipeline_global_init(cfg, (*argv)[0], err, sizeof(err))) {
        fprintf(stderr, "fuzz_pipeline init: %s\n", err);
        abort();
    }
    vips_concurrency_set(1);
    is_pipeline_conf_init(&conf, cfg);
    return 0;
}

static void run(const void *img, size_t len)
{
    is_result_t res;
    char err[1024] = "";
    is_proc_result_t pr = is_pipeline_run(&conf, img, len, &res, err, sizeof(err));
    if (pr == IS_PROC_OK) {
        if (res.nout != conf.nrenditions)
            abort();
        for (int i = 0; i < res.nout; i++)
            if (!res.out[i].buf || !res.out[i].len || res.out[i].width > conf.renditions[i].width ||
                res.out[i].height > conf.renditions[i].height)
                abort();
    } else if (pr != IS_PROC_FAIL || !err[0] || res.nout) {
        fprintf(stderr, "outcome %d, reason '%s', %d renditions\n", pr, err, res.nout);
        abort();
    }
    is_result_clear(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    is_record_t *rec = NULL;

    if (!is_envelope_decode(data, size, IS_ENVELOPE_AUTO, (size_t)1 << 20, &rec, err,
                            sizeof(err)) &&
        !rec->payload_is_ref)
        run(rec->payload, rec->payload_len);
    else
        run(data, size);
    is_record_destroy(rec);
    return 0;
}
