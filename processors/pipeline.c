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

#include "analyze.h"
#include "chain.h"
#include "clock.h"
#include "deadline.h"
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
/* Built by is_pipeline_global_init, read-only until is_pipeline_global_term. */
static is_chain_t *global_chain;

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
    conf->max_frames = cfg->limits_max_frames;
    conf->timeout_ms = cfg->limits_timeout_ms;
}

void is_pipeline_vipshome(void)
{
#ifdef IS_VIPSHOME
    /* A build against the Debian 13 sysroot (Makefile, PLATFORM=trixie)
     * runs on a host whose /usr/lib holds other libraries: libvips must
     * load its modules (HEIF/AVIF, JPEG XL, ...) from the sysroot. libvips
     * derives its module dir from VIPSHOME (VIPSHOME/x86_64-linux-gnu/
     * vips-modules-8.16); a VIPSHOME set by the user wins. */
    setenv("VIPSHOME", IS_VIPSHOME, 0);
    /* Debian 13's libheif loads its encoders and decoders (AV1, HEVC)
     * as plugins, from a dir fixed at its build unless this is set. */
    setenv("LIBHEIF_PLUGIN_PATH", IS_VIPSHOME "/x86_64-linux-gnu/libheif/plugins", 0);
#endif
}

int is_pipeline_global_init(const is_config_t *cfg, const char *argv0, char *errstr,
                            size_t errstr_size)
{
    const char *formats = cfg->limits_formats;
    int concurrency = (int)cfg->vips_concurrency;

    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, glog_cb, NULL);
    g_log_set_handler("GLib", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL, glog_cb, NULL);
    is_pipeline_vipshome();
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
    if (!(global_chain = is_chain_new(cfg, errstr, errstr_size)))
        return -1;
    return 0;
}

void is_pipeline_global_term(void)
{
    is_chain_destroy(global_chain);
    global_chain = NULL;
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

/* Metadata that may stay on a rendition: what an animation needs, and the
 * ICC profile when the rendition keeps it. Everything else (EXIF with GPS,
 * XMP, IPTC, comments) is removed from the image before it is encoded.
 *
 * The encoders' own "strip" is not enough: libvips 8.14.1's webpsave
 * ignores it (its class has a second, never-set `strip` field shadowing
 * VipsForeignSave's), so a stripped WebP still carried the source's EXIF
 * and XMP, GPS included. With nothing left to write, every encoder writes
 * none. */
static const char *const keep_fields[] = {"page-height", "delay",    "loop",
                                          "gif-delay",   "gif-loop", "icc-profile-data"};
#define NKEEP (sizeof(keep_fields) / sizeof(keep_fields[0]))

static int drop_metadata(VipsImage *in, int keep_icc, VipsImage **out)
{
    char **fields;
    if (vips_copy(in, out, NULL))
        return -1;
    fields = vips_image_get_fields(*out);
    for (int i = 0; fields[i]; i++) {
        int keep = 0;
        for (size_t k = 0; k < NKEEP - !keep_icc; k++)
            keep |= !strcmp(fields[i], keep_fields[k]);
        if (!keep)
            vips_image_remove(*out, fields[i]); /* FALSE for width etc.: not metadata */
    }
    g_strfreev(fields);
    return 0;
}

/* Removes EXIF and XMP chunks from a WebP file in place. libvips 8.14.1's
 * webpsave (strip ignored, see above) rebuilds an EXIF block from the image
 * even when none is left: orientation, resolution, dimensions. No location,
 * but "stripped" should mean nothing at all. RIFF: "RIFF" size "WEBP", then
 * chunks of fourcc, little-endian size and data padded to even; VP8X's
 * flags byte has 0x08 for EXIF and 0x04 for XMP. */
static void webp_drop_metadata(unsigned char *buf, size_t *len)
{
    size_t r = 12, w = 12;
    if (*len < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WEBP", 4))
        return;
    while (r + 8 <= *len) {
        size_t n = (size_t)buf[r + 4] | (size_t)buf[r + 5] << 8 | (size_t)buf[r + 6] << 16 |
                   (size_t)buf[r + 7] << 24;
        size_t total = 8 + n + (n & 1);
        if (total > *len - r)
            return; /* not what libvips writes: leave it alone */
        if (!memcmp(buf + r, "VP8X", 4) && n >= 1)
            buf[r + 8] &= (unsigned char)~0x0C;
        if (memcmp(buf + r, "EXIF", 4) && memcmp(buf + r, "XMP ", 4)) {
            memmove(buf + w, buf + r, total);
            w += total;
        }
        r += total;
    }
    *len = w;
    buf[4] = (unsigned char)(w - 8);
    buf[5] = (unsigned char)((w - 8) >> 8);
    buf[6] = (unsigned char)((w - 8) >> 16);
    buf[7] = (unsigned char)((w - 8) >> 24);
}

/* The same for JPEG, whose saver also rebuilds EXIF when not stripping
 * (renditions that keep their ICC profile): drops the APP1 segments (EXIF,
 * XMP) before the first scan, keeps APP2 (the ICC profile). */
static void jpeg_drop_metadata(unsigned char *buf, size_t *len)
{
    size_t r = 2, w = 2;
    if (*len < 4 || buf[0] != 0xFF || buf[1] != 0xD8)
        return;
    while (r + 4 <= *len && buf[r] == 0xFF && buf[r + 1] != 0xDA) {
        size_t n = 2 + ((size_t)buf[r + 2] << 8 | buf[r + 3]);
        if (n > *len - r)
            return;
        if (buf[r + 1] != 0xE1) {
            memmove(buf + w, buf + r, n);
            w += n;
        }
        r += n;
    }
    memmove(buf + w, buf + r, *len - r);
    *len = w + (*len - r);
}

static int encode(VipsImage *im, const is_rendition_t *r, is_output_t *o)
{
    int strip = !r->keep_icc, rc;
    if (!strcmp(r->format, "jpeg")) {
        o->ext = "jpg";
        o->content_type = "image/jpeg";
        rc = vips_jpegsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "strip", strip,
                                  "optimize_coding", TRUE, NULL);
        if (!rc)
            jpeg_drop_metadata(o->buf, &o->len);
    } else if (!strcmp(r->format, "webp")) {
        o->ext = "webp";
        o->content_type = "image/webp";
        rc = r->effort >= 0 ? vips_webpsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "strip",
                                                   strip, "effort", r->effort, NULL)
                            : vips_webpsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "strip",
                                                   strip, NULL);
        if (!rc)
            webp_drop_metadata(o->buf, &o->len);
    } else if (!strcmp(r->format, "avif")) {
        o->ext = "avif";
        o->content_type = "image/avif";
        rc = r->effort >= 0
                 ? vips_heifsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "compression",
                                        VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "strip", strip, "effort",
                                        r->effort, NULL)
                 : vips_heifsave_buffer(im, &o->buf, &o->len, "Q", r->quality, "compression",
                                        VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "strip", strip, NULL);
    } else {
        o->ext = "png";
        o->content_type = "image/png";
        rc = vips_pngsave_buffer(im, &o->buf, &o->len, "strip", strip, NULL);
    }
    o->width = vips_image_get_width(im);
    o->height = vips_image_get_page_height(im);
    o->pages = o->height > 0 ? vips_image_get_height(im) / o->height : 1;
    return rc;
}

/* To 8-bit sRGB or 8-bit grey, alpha kept. vips_thumbnail already imported
 * an embedded ICC profile (and CMYK, with a fallback profile) to sRGB; this
 * handles 16-bit sources, which would otherwise be clipped by 8-bit
 * encoders, and colour spaces without a profile (LAB, scRGB, ...). */
static int normalize(VipsImage *in, VipsImage **out)
{
    VipsInterpretation i = vips_image_get_interpretation(in);
    VipsImage *t = NULL;
    int rc;

    if (i == VIPS_INTERPRETATION_GREY16 || i == VIPS_INTERPRETATION_B_W)
        rc = vips_colourspace(in, &t, VIPS_INTERPRETATION_B_W, NULL);
    else if (i == VIPS_INTERPRETATION_sRGB && vips_image_get_bands(in) < 3)
        rc = vips_copy(in, &t, "interpretation", VIPS_INTERPRETATION_B_W, NULL);
    else
        rc = vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL);
    if (rc)
        return -1;
    if (vips_image_get_format(t) == VIPS_FORMAT_UCHAR) {
        *out = t;
        return 0;
    }
    rc = vips_cast(t, out, VIPS_FORMAT_UCHAR, NULL);
    g_object_unref(t);
    return rc;
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

/* State of one run, shared by its steps. */
typedef struct run {
    const is_pipeline_conf_t *conf;
    const is_chain_t *chain;
    is_chain_ctx_t ctx;
    const void *src; /* payload after the source stage */
    size_t src_len;
    char load_opt[64]; /* loader options for thumbnail_buffer */
} run_t;

/* A rendition-sized image straight from the source: thumbnail with
 * shrink-on-load, normalised, then the base-stage processors (so it looks
 * like one cut from the processed base). frames > 1 loads that many. */
static is_proc_result_t from_source(run_t *rn, const is_rendition_t *r, int frames, VipsImage **out,
                                    char *errstr, size_t errstr_size)
{
    VipsImage *t = NULL, *n = NULL;
    char opt[96];
    is_proc_result_t pr = IS_PROC_FAIL;

    /* thumbnail_buffer's own fail_on argument does not reach the loader in
     * libvips 8.14 (a truncated JPEG decodes with grey fill); the loader
     * option string does. */
    if (frames > 1)
        snprintf(opt, sizeof(opt), "%s,n=%d", rn->load_opt, frames);
    else
        snprintf(opt, sizeof(opt), "%s", rn->load_opt);
    if (vips_thumbnail_buffer((void *)rn->src, rn->src_len, &t, r->width, "height", r->height,
                              "size", VIPS_SIZE_DOWN, "crop", crop_of(r->fit), "option_string", opt,
                              NULL) ||
        normalize(t, &n)) {
        copy_vips_error("cannot decode image", errstr, errstr_size);
        goto done;
    }
    pr = is_chain_run_image(rn->chain, IS_STAGE_BASE, &rn->ctx, n, out, errstr, errstr_size);
done:
    VIPS_UNREF(t);
    VIPS_UNREF(n);
    return pr;
}

/* One rendition, from the in-memory base when it has the resolution, else
 * from the source; then rendition-stage processors, metadata, encoding. */
static is_proc_result_t rendition(run_t *rn, const is_result_t *res, VipsImage *mem,
                                  const is_rendition_t *r, is_output_t *o, char *errstr,
                                  size_t errstr_size)
{
    VipsImage *im = NULL, *proc = NULL, *fin = NULL;
    is_proc_result_t pr = IS_PROC_FAIL;
    int sw = vips_image_get_width(mem), sh = vips_image_get_height(mem);
    double base_scale =
        res->width ? (double)sw / (res->orientation >= 5 ? res->height : res->width) : 1.0;
    char what[96];

    snprintf(o->name, sizeof(o->name), "%s", r->name);
    snprintf(what, sizeof(what), "rendition %s (%s)", r->name, r->format);
    if (r->animated && res->pages > 1)
        pr = from_source(rn, r, res->pages, &im, errstr, errstr_size);
    else if (needed_scale(r, sw / base_scale, sh / base_scale) <= base_scale * 1.0001) {
        if (vips_thumbnail_image(mem, &im, r->width, "height", r->height, "size", VIPS_SIZE_DOWN,
                                 "crop", crop_of(r->fit), NULL))
            copy_vips_error(what, errstr, errstr_size);
        else
            pr = IS_PROC_OK;
    } else
        pr = from_source(rn, r, 1, &im, errstr, errstr_size);
    if (pr != IS_PROC_OK)
        goto done;
    pr =
        is_chain_run_image(rn->chain, IS_STAGE_RENDITION, &rn->ctx, im, &proc, errstr, errstr_size);
    if (pr != IS_PROC_OK)
        goto done;
    pr = IS_PROC_FAIL;
    VIPS_UNREF(im);
    if (normalize(proc, &im) || drop_metadata(im, r->keep_icc, &fin)) {
        copy_vips_error(what, errstr, errstr_size);
        goto done;
    }
    is_deadline_watch(fin, rn->ctx.deadline);
    if (encode(fin, r, o)) {
        copy_vips_error(what, errstr, errstr_size);
        goto done;
    }
    pr = IS_PROC_OK;
done:
    VIPS_UNREF(im);
    VIPS_UNREF(proc);
    VIPS_UNREF(fin);
    return pr;
}

int64_t is_pipeline_pixels(int width, int height, int frames)
{
    /* Sides up to VIPS_MAX_COORD times limits.max.frames (up to 100000)
     * can pass INT64_MAX: a wrapped product would be small or negative and
     * pass limits.max.pixels. */
    int64_t area, px;
    if (__builtin_mul_overflow((int64_t)width, (int64_t)height, &area) ||
        __builtin_mul_overflow(area, (int64_t)frames, &px))
        return -1;
    return px;
}

/* Header checks: format allowed, frames, pixels. Fills res; returns the
 * pixel count that decoding will touch, or -1 with errstr. */
static int64_t check_header(run_t *rn, is_result_t *res, char *errstr, size_t errstr_size)
{
    const is_pipeline_conf_t *conf = rn->conf;
    VipsImage *hdr = NULL;
    const char *loader;
    int fmt = -1, anim = 0;
    int64_t px = -1;

    /* libvips 8.14 answers with the loader's class name (e.g.
     * "VipsForeignLoadJpegBuffer") and still finds blocked loaders, so the
     * allow-list is checked here too: an SVG or PDF stops at this point. */
    if (!(loader = vips_foreign_find_load_buffer(rn->src, rn->src_len))) {
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
    if (!(hdr = vips_image_new_from_buffer(rn->src, rn->src_len, "", "fail_on",
                                           fail_on_value(conf->fail_on), NULL))) {
        copy_vips_error("cannot read image header", errstr, errstr_size);
        goto done;
    }
    res->width = vips_image_get_width(hdr);
    res->height = vips_image_get_height(hdr);
    res->pages = vips_image_get_n_pages(hdr);
    res->orientation = vips_image_get_orientation(hdr);
    exif_string(hdr, "exif-ifd0-Make", res->camera_make, sizeof(res->camera_make));
    exif_string(hdr, "exif-ifd0-Model", res->camera_model, sizeof(res->camera_model));
    if (conf->max_frames > 0 && res->pages > conf->max_frames) {
        snprintf(errstr, errstr_size, "image has %d frames, limits.max.frames is %lld", res->pages,
                 (long long)conf->max_frames);
        goto done;
    }
    for (int i = 0; i < conf->nrenditions; i++)
        anim |= conf->renditions[i].animated && res->pages > 1;
    /* Only the first frame is decoded unless a rendition is animated; the
     * header's height is that of one frame for a single-page load. */
    px = is_pipeline_pixels(res->width, res->height, anim ? res->pages : 1);
    if (px < 0) {
        snprintf(errstr, errstr_size,
                 "image is %dx%d x frames %d: more pixels to decode than can be counted, "
                 "limits.max.pixels is %lld",
                 res->width, res->height, res->pages, (long long)conf->max_pixels);
    } else if (px > conf->max_pixels) {
        snprintf(errstr, errstr_size,
                 "image is %dx%d%s%.0d = %lld pixels to decode, limits.max.pixels is %lld",
                 res->width, res->height, anim ? " x frames " : "", anim ? res->pages : 0,
                 (long long)px, (long long)conf->max_pixels);
        px = -1;
    }
done:
    VIPS_UNREF(hdr);
    return px;
}

is_proc_result_t is_pipeline_run(const is_pipeline_conf_t *conf, const void *buf, size_t len,
                                 is_result_t *res, char *errstr, size_t errstr_size)
{
    return is_pipeline_run_attempt(conf, buf, len, -1, res, errstr, errstr_size);
}

is_proc_result_t is_pipeline_run_attempt(const is_pipeline_conf_t *conf, const void *buf,
                                         size_t len, int attempt, is_result_t *res, char *errstr,
                                         size_t errstr_size)
{
    double t0 = is_now_s();
    VipsImage *base = NULL, *norm = NULL, *mem = NULL, *proc = NULL;
    is_proc_result_t rc = IS_PROC_FAIL;
    is_deadline_t dl;
    void *processed = NULL;
    size_t processed_len = 0;
    int big = 0;
    int64_t reserved = 0, px;
    run_t rn = {.conf = conf, .chain = conf->chain ? conf->chain : global_chain};

    memset(res, 0, sizeof(*res));
    res->bytes = len;
    is_deadline_start(&dl, conf->timeout_ms > 0 ? conf->timeout_ms : INT64_C(1) << 40);
    rn.ctx = (is_chain_ctx_t){attempt, &dl, conf->max_input_bytes, conf->max_pixels, conf->fail_on};
    snprintf(rn.load_opt, sizeof(rn.load_opt), "fail_on=%s", conf->fail_on);

    if (len == 0) {
        snprintf(errstr, errstr_size, "empty image payload");
        goto done;
    }
    if ((int64_t)len > conf->max_input_bytes) {
        snprintf(errstr, errstr_size, "image payload is %zu bytes, limits.max.input.bytes is %lld",
                 len, (long long)conf->max_input_bytes);
        goto done;
    }
    rc = is_chain_run_bytes(rn.chain, &rn.ctx, buf, len, &processed, &processed_len, errstr,
                            errstr_size);
    if (rc != IS_PROC_OK)
        goto done;
    rc = IS_PROC_FAIL;
    rn.src = processed ? processed : buf;
    rn.src_len = processed ? processed_len : len;
    if ((int64_t)rn.src_len > conf->max_input_bytes) {
        snprintf(errstr, errstr_size,
                 "source processors made a %zu-byte payload, limits.max.input.bytes is %lld",
                 rn.src_len, (long long)conf->max_input_bytes);
        goto done;
    }
    if ((px = check_header(&rn, res, errstr, errstr_size)) < 0)
        goto done;
    if (conf->reserve) {
        if (conf->reserve(conf->budget_ctx, px)) {
            snprintf(errstr, errstr_size, "gave up waiting for %lld pixels of memory budget",
                     (long long)px);
            rc = IS_PROC_RETRY;
            goto done;
        }
        reserved = px;
    }

    /* The base is the largest box over all renditions, fit inside, first
     * frame, made from the source with shrink-on-load and kept in memory. */
    for (int i = 1; i < conf->nrenditions; i++)
        if ((int64_t)conf->renditions[i].width * conf->renditions[i].height >
            (int64_t)conf->renditions[big].width * conf->renditions[big].height)
            big = i;
    const is_rendition_t *rb = &conf->renditions[big];
    if (vips_thumbnail_buffer((void *)rn.src, rn.src_len, &base, rb->width, "height", rb->height,
                              "size", VIPS_SIZE_DOWN, "option_string", rn.load_opt, NULL) ||
        normalize(base, &norm) || (is_deadline_watch(norm, &dl), 0) ||
        !(mem = vips_image_copy_memory(norm))) {
        copy_vips_error("cannot decode image", errstr, errstr_size);
        goto done;
    }
    if (is_analyze(mem, &res->phash, res->mean_rgb, errstr, errstr_size))
        goto done;
    if (is_chain_count(rn.chain, IS_STAGE_BASE)) {
        VIPS_UNREF(norm);
        rc = is_chain_run_image(rn.chain, IS_STAGE_BASE, &rn.ctx, mem, &proc, errstr, errstr_size);
        if (rc != IS_PROC_OK)
            goto done;
        rc = IS_PROC_FAIL;
        VIPS_UNREF(mem);
        if (normalize(proc, &norm) || (is_deadline_watch(norm, &dl), 0) ||
            !(mem = vips_image_copy_memory(norm))) {
            copy_vips_error("base processors", errstr, errstr_size);
            goto done;
        }
    }
    double t_base = is_now_s();
    res->decode_ms = (t_base - t0) * 1e3;
    for (int i = 0; i < conf->nrenditions; i++) {
        res->nout = i + 1;
        rc = rendition(&rn, res, mem, &conf->renditions[i], &res->out[i], errstr, errstr_size);
        if (rc != IS_PROC_OK)
            goto done;
        if (is_deadline_passed(&dl)) {
            rc = IS_PROC_FAIL;
            goto done;
        }
    }
    res->encode_ms = (is_now_s() - t_base) * 1e3;
    rc = IS_PROC_OK;
done:
    if (rc != IS_PROC_OK && is_deadline_passed(&dl)) {
        rc = IS_PROC_FAIL;
        snprintf(errstr, errstr_size,
                 "image took longer than limits.timeout.ms (%lld ms) to process and was stopped",
                 (long long)dl.ms);
    }
    if (reserved && conf->release)
        conf->release(conf->budget_ctx, reserved);
    VIPS_UNREF(base);
    VIPS_UNREF(norm);
    VIPS_UNREF(mem);
    VIPS_UNREF(proc);
    free(processed);
    res->processing_ms = (is_now_s() - t0) * 1e3;
    if (rc != IS_PROC_OK) {
        double ms = res->processing_ms;
        is_result_clear(res);
        res->processing_ms = ms;
    }
    return rc;
}
