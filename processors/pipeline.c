/*
 * pipeline.c - limits, decode-once cascade and encoding with libvips.
 * See pipeline.h.
 *
 * libvips' error buffer is process-global: every failure copies it into
 * errstr at once and clears it; decisions are taken on return codes only.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <vips/vips.h>

#include "log.h"

/* Allowed formats and the loader class that reads each. Everything under
 * VipsForeignLoad is blocked first, then these are unblocked one by one. */
static const struct {
    const char *format;
    const char *loader_class;
} loaders[] = {
    {"jpeg", "VipsForeignLoadJpeg"}, {"png", "VipsForeignLoadPng"},
    {"webp", "VipsForeignLoadWebp"}, {"gif", "VipsForeignLoadNsgif"},
    {"tiff", "VipsForeignLoadTiff"}, {"heif", "VipsForeignLoadHeif"},
};
#define NLOADERS (sizeof(loaders) / sizeof(loaders[0]))

static char allowed[NLOADERS];

static void copy_vips_error(const char *what, char *errstr, size_t errstr_size)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", vips_error_buffer());
    vips_error_clear();
    /* libvips messages end in newlines and may hold several lines. */
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = p[1] ? ' ' : '\0';
    snprintf(errstr, errstr_size, "%s: %s", what, *buf ? buf : "libvips failed");
}

/* libvips and GLib warn through g_log ("VIPS-WARNING **: read gave 2
 * warnings"); route them into the JSON log instead of raw stderr. libvips'
 * warnings are per image and mostly harmless (five of the sample photographs
 * have an "unknown EXIF resolution unit"): debug level. What matters to an
 * operator is the record's outcome, which is logged on its own. */
static void glog_cb(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
    (void)data;
    int lvl = level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)                ? IS_LOG_ERROR
              : level & G_LOG_LEVEL_WARNING && domain && strcmp(domain, "VIPS") ? IS_LOG_WARN
                                                                                : IS_LOG_DEBUG;
    IS_LOG(lvl, "vips", json_pack("{s:s}", "domain", domain ? domain : ""), "%s", message);
}

void is_pipeline_conf_init(is_pipeline_conf_t *conf, const is_config_t *cfg)
{
    memset(conf, 0, sizeof(*conf));
    conf->max_input_bytes = cfg->limits_max_input_bytes;
    conf->max_pixels = cfg->limits_max_pixels;
    conf->fail_on = cfg->limits_fail_on;
    conf->renditions = cfg->renditions;
    conf->nrenditions = cfg->nrenditions;
}

int is_pipeline_global_init(const is_config_t *cfg, const char *argv0, char *errstr,
                            size_t errstr_size)
{
    const char *formats = cfg->limits_formats;
    int concurrency = (int)cfg->vips_concurrency;

    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, glog_cb, NULL);
    g_log_set_handler("GLib", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL, glog_cb, NULL);
    if (VIPS_INIT(argv0 ? argv0 : "imgsink")) {
        copy_vips_error("libvips start-up", errstr, errstr_size);
        return -1;
    }
    /* The operation cache holds decoded images keyed by arguments: useless
     * for a stream of distinct images and a memory hazard. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    if (concurrency > 0)
        vips_concurrency_set(concurrency);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < NLOADERS; i++) {
        size_t n = strlen(loaders[i].format);
        const char *p = strstr(formats, loaders[i].format);
        allowed[i] = p && (p == formats || p[-1] == ',') && (p[n] == ',' || p[n] == '\0');
        if (allowed[i])
            vips_operation_block_set(loaders[i].loader_class, FALSE);
    }
    return 0;
}

void is_pipeline_global_term(void)
{
    vips_shutdown();
}

void is_result_clear(is_result_t *res)
{
    if (!res)
        return;
    for (int i = 0; i < res->nout; i++)
        g_free(res->out[i].buf);
    memset(res, 0, sizeof(*res));
}

static int fail_on_value(const char *s)
{
    if (!strcmp(s, "none"))
        return VIPS_FAIL_ON_NONE;
    if (!strcmp(s, "truncated"))
        return VIPS_FAIL_ON_TRUNCATED;
    if (!strcmp(s, "warning"))
        return VIPS_FAIL_ON_WARNING;
    return VIPS_FAIL_ON_ERROR;
}

/* Copies an EXIF string field ("Canon (Canon, ASCII, 6 components, ...)")
 * without libvips' description suffix. */
static void exif_string(VipsImage *im, const char *field, char *out, size_t out_size)
{
    const char *v = NULL;
    out[0] = '\0';
    if (vips_image_get_typeof(im, field) && !vips_image_get_string(im, field, &v) && v) {
        const char *paren = strstr(v, " (");
        size_t n = paren ? (size_t)(paren - v) : strlen(v);
        if (n >= out_size)
            n = out_size - 1;
        memcpy(out, v, n);
        out[n] = '\0';
    }
}

static int encode(VipsImage *im, const is_rendition_t *r, is_output_t *o)
{
    int rc;
    if (!strcmp(r->format, "jpeg")) {
        o->ext = "jpg";
        o->content_type = "image/jpeg";
        rc = vips_jpegsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "strip", TRUE,
                                  "optimize_coding", TRUE, NULL);
    } else if (!strcmp(r->format, "webp")) {
        o->ext = "webp";
        o->content_type = "image/webp";
        rc = vips_webpsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "strip", TRUE, NULL);
    } else if (!strcmp(r->format, "avif")) {
        o->ext = "avif";
        o->content_type = "image/avif";
        rc = vips_heifsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "compression",
                                  VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "strip", TRUE, NULL);
    } else {
        o->ext = "png";
        o->content_type = "image/png";
        rc = vips_pngsave_buffer(im, &o->buf, &o->len, "strip", TRUE, NULL);
    }
    o->width = vips_image_get_width(im);
    o->height = vips_image_get_height(im);
    return rc;
}

/* 16-bit sources reach the encoders as 16-bit sRGB/grey; convert them so
 * 8-bit formats get scaled values, not clipped ones. */
static int to_8bit(VipsImage *in, VipsImage **out)
{
    VipsInterpretation i = vips_image_get_interpretation(in);
    if (i == VIPS_INTERPRETATION_RGB16)
        return vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, NULL);
    if (i == VIPS_INTERPRETATION_GREY16)
        return vips_colourspace(in, out, VIPS_INTERPRETATION_B_W, NULL);
    *out = in;
    g_object_ref(in);
    return 0;
}

static VipsInteresting crop_of(is_fit_t fit)
{
    return fit == IS_FIT_COVER       ? VIPS_INTERESTING_CENTRE
           : fit == IS_FIT_ATTENTION ? VIPS_INTERESTING_ATTENTION
                                     : VIPS_INTERESTING_NONE;
}

/* Scale from the upright source that rendition r needs (never above 1:
 * renditions never upscale). */
static double needed_scale(const is_rendition_t *r, int sw, int sh)
{
    double sx = (double)r->width / sw, sy = (double)r->height / sh;
    double s = r->fit == IS_FIT_INSIDE ? (sx < sy ? sx : sy) : (sx > sy ? sx : sy);
    return s > 1.0 ? 1.0 : s;
}

is_proc_result_t is_pipeline_run(const is_pipeline_conf_t *conf, const void *buf, size_t len,
                                 is_result_t *res, char *errstr, size_t errstr_size)
{
    struct timespec t0, t1;
    VipsImage *hdr = NULL, *base = NULL, *mem = NULL;
    is_proc_result_t rc = IS_PROC_FAIL;
    int fail_on = fail_on_value(conf->fail_on);
    const char *loader;
    int big = 0, fmt = -1;
    int64_t reserved = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(res, 0, sizeof(*res));
    res->bytes = len;

    if (len == 0) {
        snprintf(errstr, errstr_size, "empty image payload");
        goto done;
    }
    if ((int64_t)len > conf->max_input_bytes) {
        snprintf(errstr, errstr_size, "image payload is %zu bytes, limits.max.input.bytes is %lld",
                 len, (long long)conf->max_input_bytes);
        goto done;
    }
    /* libvips 8.14 answers with the loader's class name (e.g.
     * "VipsForeignLoadJpegBuffer") and still finds blocked loaders, so the
     * allow-list is checked here too: an SVG or PDF stops at this point. */
    if (!(loader = vips_foreign_find_load_buffer(buf, len))) {
        vips_error_clear();
        snprintf(errstr, errstr_size,
                 "payload is not an image in an allowed format (limits.formats)");
        goto done;
    }
    for (size_t i = 0; i < NLOADERS; i++)
        if (!strncmp(loader, loaders[i].loader_class, strlen(loaders[i].loader_class)))
            fmt = (int)i;
    if (fmt < 0 || !allowed[fmt]) {
        snprintf(errstr, errstr_size,
                 "payload is not an image in an allowed format (read by %s; allowed: "
                 "limits.formats)",
                 loader);
        goto done;
    }
    snprintf(res->format, sizeof(res->format), "%s", loaders[fmt].format);

    /* Header only: no pixels are decoded until the limits pass. */
    if (!(hdr = vips_image_new_from_buffer(buf, len, "", "fail_on", fail_on, NULL))) {
        copy_vips_error("cannot read image header", errstr, errstr_size);
        goto done;
    }
    res->width = vips_image_get_width(hdr);
    res->height = vips_image_get_height(hdr);
    res->pages = vips_image_get_n_pages(hdr);
    res->orientation = vips_image_get_orientation(hdr);
    exif_string(hdr, "exif-ifd0-Make", res->camera_make, sizeof(res->camera_make));
    exif_string(hdr, "exif-ifd0-Model", res->camera_model, sizeof(res->camera_model));
    /* Only the first page is decoded, and its height is what the header
     * reports for a single-page load. */
    if ((int64_t)res->width * res->height > conf->max_pixels) {
        snprintf(errstr, errstr_size, "image is %dx%d = %lld pixels, limits.max.pixels is %lld",
                 res->width, res->height, (long long)res->width * res->height,
                 (long long)conf->max_pixels);
        goto done;
    }

    if (conf->reserve) {
        int64_t px = (int64_t)res->width * res->height;
        if (conf->reserve(conf->budget_ctx, px)) {
            snprintf(errstr, errstr_size, "gave up waiting for %lld pixels of memory budget",
                     (long long)px);
            rc = IS_PROC_RETRY;
            goto done;
        }
        reserved = px;
    }

    /* Upright source size: orientations 5..8 swap width and height. */
    int sw = vips_image_get_orientation_swap(hdr) ? res->height : res->width;
    int sh = vips_image_get_orientation_swap(hdr) ? res->width : res->height;

    /* The base is the largest box over all renditions, fit inside, made
     * from the source with shrink-on-load. */
    for (int i = 1; i < conf->nrenditions; i++)
        if ((int64_t)conf->renditions[i].width * conf->renditions[i].height >
            (int64_t)conf->renditions[big].width * conf->renditions[big].height)
            big = i;
    const is_rendition_t *rb = &conf->renditions[big];
    /* thumbnail_buffer's own fail_on argument does not reach the loader in
     * libvips 8.14 (a truncated JPEG decodes with grey fill); the loader
     * option string does. */
    char fail_opt[32];
    snprintf(fail_opt, sizeof(fail_opt), "fail_on=%s", conf->fail_on);
    if (vips_thumbnail_buffer((void *)buf, len, &base, rb->width, "height", rb->height, "size",
                              VIPS_SIZE_DOWN, "option_string", fail_opt, NULL) ||
        !(mem = vips_image_copy_memory(base))) {
        copy_vips_error("cannot decode image", errstr, errstr_size);
        goto done;
    }
    double base_scale = (double)vips_image_get_width(mem) / sw;

    for (int i = 0; i < conf->nrenditions; i++) {
        const is_rendition_t *r = &conf->renditions[i];
        is_output_t *o = &res->out[i];
        VipsImage *im = NULL, *im8 = NULL;
        int err;

        snprintf(o->name, sizeof(o->name), "%s", r->name);
        /* Cascade from the in-memory base when it has enough resolution,
         * else go back to the source (e.g. a cover crop of a panorama). */
        if (needed_scale(r, sw, sh) <= base_scale * 1.0001)
            err = vips_thumbnail_image(mem, &im, r->width, "height", r->height, "size",
                                       VIPS_SIZE_DOWN, "crop", crop_of(r->fit), NULL);
        else
            err = vips_thumbnail_buffer((void *)buf, len, &im, r->width, "height", r->height,
                                        "size", VIPS_SIZE_DOWN, "crop", crop_of(r->fit),
                                        "option_string", fail_opt, NULL);
        if (!err)
            err = to_8bit(im, &im8);
        if (!err)
            err = encode(im8, r, o);
        VIPS_UNREF(im);
        VIPS_UNREF(im8);
        res->nout = i + 1;
        if (err) {
            char what[96];
            snprintf(what, sizeof(what), "rendition %s (%s)", r->name, r->format);
            copy_vips_error(what, errstr, errstr_size);
            goto done;
        }
    }
    rc = IS_PROC_OK;
done:
    if (reserved && conf->release)
        conf->release(conf->budget_ctx, reserved);
    VIPS_UNREF(hdr);
    VIPS_UNREF(base);
    VIPS_UNREF(mem);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->processing_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (rc != IS_PROC_OK) {
        double ms = res->processing_ms;
        is_result_clear(res);
        res->processing_ms = ms;
    }
    return rc;
}
