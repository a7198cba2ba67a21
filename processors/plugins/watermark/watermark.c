/*
 * watermark.c - example imgsink processor plugin (processors/plugin.h): draws
 * a semi-transparent white text in the bottom-right corner of every frame.
 *
 *   processors                 = wm@base
 *   processor.wm.type          = plugin
 *   processor.wm.path          = build/plugins/watermark.so
 *   processor.wm.text          = (c) ACME       default "imgsink"
 *   processor.wm.opacity       = 0.5            0..1, default 0.6
 *   processor.wm.scale         = 0.3            text box width / image width, 0.05..1, default 0.3
 *
 * At stage base the mark is drawn once and scaled down with every
 * rendition; at stage rendition it is drawn on each, at a size relative
 * to that rendition.
 *
 * Threads: the instance is read-only after init, so process() runs on
 * many job threads at once; vips_text serialises its use of pango itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

typedef struct wm {
    char *text;
    double opacity, scale;
} wm_t;

static void wm_destroy(void *instance)
{
    wm_t *wm = instance;
    if (!wm)
        return;
    free(wm->text);
    free(wm);
}

static int number(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void *wm_init(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size)
{
    wm_t *wm = calloc(1, sizeof(*wm));
    if (!wm) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    wm->opacity = 0.6;
    wm->scale = 0.3;
    for (size_t i = 0; i < nconf; i++) {
        const char *k = conf[i].key, *v = conf[i].value;
        if (!strcmp(k, "text")) {
            free(wm->text);
            wm->text = strdup(v);
        } else if (!strcmp(k, "opacity")) {
            if (number(v, 0, 1, &wm->opacity)) {
                snprintf(errstr, errstr_size, "opacity=%s: expected a number in 0..1", v);
                goto fail;
            }
        } else if (!strcmp(k, "scale")) {
            if (number(v, 0.05, 1, &wm->scale)) {
                snprintf(errstr, errstr_size, "scale=%s: expected a number in 0.05..1", v);
                goto fail;
            }
        } else {
            snprintf(errstr, errstr_size, "unknown key '%s' (text, opacity, scale)", k);
            goto fail;
        }
    }
    if (!wm->text)
        wm->text = strdup("imgsink");
    if (!wm->text || !*wm->text) {
        snprintf(errstr, errstr_size, "text: must not be empty");
        goto fail;
    }
    return wm;
fail:
    wm_destroy(wm);
    return NULL;
}

static is_proc_result_t wm_process(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                   size_t errstr_size)
{
    const wm_t *wm = instance;
    VipsImage *t[10] = {NULL};
    int w = vips_image_get_width(in), ph = vips_image_get_page_height(in);
    int pages = vips_image_get_height(in) / ph, grey = vips_image_get_bands(in) < 3;
    int tw = (int)(w * wm->scale), th = ph / 5, rc = -1;

    *out = NULL;
    if (tw < 8 || th < 4) {
        /* Too small to carry a legible mark (thumbnails at stage rendition). */
        *out = in;
        g_object_ref(in);
        return IS_PROC_OK;
    }
    /* t0: the text as a 0..255 mask fitted into tw x th; t1: its alpha at
     * the configured opacity; t2: white; t3: white + alpha. */
    if (vips_text(&t[0], wm->text, "width", tw, "height", th, "font", "sans bold", NULL) ||
        vips_linear1(t[0], &t[1], wm->opacity, 0.0, "uchar", TRUE, NULL) ||
        vips_linear1(t[0], &t[2], 0.0, 255.0, "uchar", TRUE, NULL))
        goto done;
    if (grey ? vips_bandjoin2(t[2], t[1], &t[3], NULL)
             : vips_bandjoin_const1(t[2], &t[4], 255.0, NULL) ||
                   vips_bandjoin_const1(t[4], &t[5], 255.0, NULL) ||
                   vips_bandjoin2(t[5], t[1], &t[3], NULL))
        goto done;
    /* t6: the mark placed bottom-right on a transparent frame; t7: one per
     * frame of an animation; t8: composited; t9: copy with the
     * interpretation the overlay needs. */
    int mw = vips_image_get_width(t[3]), mh = vips_image_get_height(t[3]);
    int margin = ph / 40;
    if (vips_copy(t[3], &t[9], "interpretation",
                  grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB, NULL) ||
        vips_embed(t[9], &t[6], w - mw - margin > 0 ? w - mw - margin : 0,
                   ph - mh - margin > 0 ? ph - mh - margin : 0, w, ph, NULL) ||
        vips_replicate(t[6], &t[7], 1, pages, NULL) ||
        vips_composite2(in, t[7], &t[8], VIPS_BLEND_MODE_OVER, NULL))
        goto done;
    /* composite adds an alpha band; an opaque input stays opaque. */
    if (vips_image_hasalpha(in))
        *out = t[8], t[8] = NULL;
    else if (vips_extract_band(t[8], out, 0, "n", vips_image_get_bands(in), NULL))
        goto done;
    rc = 0;
done:
    if (rc) {
        snprintf(errstr, errstr_size, "watermark: %s", vips_error_buffer());
        vips_error_clear();
    }
    for (int i = 0; i < 10; i++)
        VIPS_UNREF(t[i]);
    return rc ? IS_PROC_FAIL : IS_PROC_OK;
}

IS_PLUGIN_DEFINE("watermark", wm_init, wm_process, wm_destroy);
