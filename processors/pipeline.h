/*
 * pipeline.h - decode an image once, check it against limits, make the
 * configured renditions with libvips.
 *
 * Order of work, cheapest first: payload size, format sniffing (only the
 * allowed loaders are unblocked), header (width x height x pages against
 * limits.max.pixels) and only then any pixel decoding. The largest rendition
 * comes from the source with shrink-on-load; smaller ones are cut from it in
 * memory when its resolution is enough for them (cascade).
 *
 * Every image is made upright (EXIF orientation), converted to 8-bit sRGB
 * (or 8-bit grey), and written without metadata: no EXIF, XMP or IPTC ever
 * leaves the worker, so neither does GPS; a rendition with the icc option
 * keeps only the ICC profile. Animated sources give their first frame,
 * except to renditions with the animated option, which get every frame
 * (limits.max.frames, and width x height x frames within limits.max.pixels).
 * The company's processors (chain.h) run at the stages they are configured
 * for. limits.timeout.ms bounds the whole run (deadline.h).
 *
 * Threads: is_pipeline_global_init once from main before any thread;
 * is_pipeline_run from any thread.
 */
#ifndef IS_PIPELINE_H
#define IS_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "processor.h"

typedef struct is_output {
    char name[32];            /* rendition name */
    const char *ext;          /* "jpg", "webp", "avif", "png" */
    const char *content_type; /* "image/jpeg", ... */
    void *buf;                /* owned, g_free'd by is_result_clear */
    size_t len;
    int width, height;
    int pages; /* frames: 1, or more for an animated rendition */
} is_output_t;

typedef struct is_result {
    char format[16]; /* source format: jpeg, png, ... */
    int width, height, pages, orientation;
    size_t bytes;
    char camera_make[64], camera_model[64];
    is_output_t out[IS_MAX_RENDITIONS];
    int nout;
    double processing_ms;
    double decode_ms; /* of processing_ms: up to the base in memory, analysed */
    double encode_ms; /* of processing_ms: every rendition resized and encoded */
    uint64_t phash;   /* dHash of the upright source, see analyze.h */
    int mean_rgb[3];  /* mean sRGB colour, 0..255 */
} is_result_t;

typedef struct is_pipeline_conf {
    int64_t max_input_bytes;
    int64_t max_pixels;
    const char *fail_on; /* none | truncated | error | warning */
    const is_rendition_t *renditions;
    int nrenditions;
    /* Memory budget hook, optional. reserve is called with the pixel count
     * from the header after the limits passed and before any pixel is
     * decoded; it may block until the budget allows, and returns non-zero to
     * give up (the run then returns RETRY). release is called once per
     * successful reserve when the run ends. */
    int (*reserve)(void *ctx, int64_t pixels);
    void (*release)(void *ctx, int64_t pixels);
    void *budget_ctx;
    int64_t max_frames; /* limits.max.frames */
    int64_t timeout_ms; /* limits.timeout.ms; 0 = none */
    /* Processors; NULL means the chain is_pipeline_global_init built from
     * the configuration (conf_init may run before global_init). */
    const struct is_chain *chain;
} is_pipeline_conf_t;

/* Starts libvips from the configuration: blocks every loader except those
 * for limits.formats, disables the operation cache and sets libvips' thread
 * count (vips.concurrency, 0 = its default). Then loads the processors
 * (processors, processor.*): a bad plugin or setting fails start-up here. */
int is_pipeline_global_init(const is_config_t *cfg, const char *argv0, char *errstr,
                            size_t errstr_size);

/* Fills conf from the configuration (limits, renditions). The budget hooks
 * are left NULL for the caller to set. cfg must outlive conf. */
void is_pipeline_conf_init(is_pipeline_conf_t *conf, const is_config_t *cfg);
void is_pipeline_global_term(void);

/* The pixels decoding an image touches: width x height x frames, or -1
 * when that does not fit in 64 bits (over any limit). */
int64_t is_pipeline_pixels(int width, int height, int frames);

/* Processes one image. On OK, res holds the renditions in configuration
 * order (free with is_result_clear). On FAIL, errstr says why, in words an
 * operator can act on. */
is_proc_result_t is_pipeline_run(const is_pipeline_conf_t *conf, const void *buf, size_t len,
                                 is_result_t *res, char *errstr, size_t errstr_size);

/* The same, told how many times this record was already tried after RETRY
 * (0 the first time). Processors with a retry limit (exec timeouts) turn
 * RETRY into FAIL once attempt reaches it. is_pipeline_run passes -1: not
 * counted, such processors retry in place instead. */
is_proc_result_t is_pipeline_run_attempt(const is_pipeline_conf_t *conf, const void *buf,
                                         size_t len, int attempt, is_result_t *res, char *errstr,
                                         size_t errstr_size);

void is_result_clear(is_result_t *res);

/* Point libvips at its modules when built against a sysroot (IS_VIPSHOME);
 * called by is_pipeline_global_init, and by anything else that calls
 * VIPS_INIT itself, before it. No-op in a host build. */
void is_pipeline_vipshome(void);

#endif
