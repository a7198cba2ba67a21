/*
 * analyze.c - dHash and mean colour. See analyze.h.
 */
#include "analyze.h"

#include <math.h>
#include <stdio.h>

/* The most pixels a side of the copy both facts are computed from has. */
#define ANALYZE_SIDE 256

/* The image both facts are computed from: flat box-shrunk along each axis
 * by the smallest integer factor that brings that side to at most
 * ANALYZE_SIDE (a side already that short is kept, so a 1 px high strip
 * stays 1 px high), or flat itself (a new reference) when both are. A box
 * shrink averages every pixel once, so the mean is kept up to rounding
 * and the last factor - 1 columns and rows, which it drops; the dHash's
 * 9x8 resize then averages boxes of the same pixels. */
static int analysis_copy(VipsImage *flat, VipsImage **out)
{
    int w = vips_image_get_width(flat), h = vips_image_get_height(flat);
    int hf = (w + ANALYZE_SIDE - 1) / ANALYZE_SIDE, vf = (h + ANALYZE_SIDE - 1) / ANALYZE_SIDE;
    if (hf <= 1 && vf <= 1) {
        *out = flat;
        g_object_ref(flat);
        return 0;
    }
    return vips_shrink(flat, out, (double)hf, (double)vf, NULL);
}

int is_analyze(VipsImage *im, uint64_t *phash, int mean_rgb[3], char *errstr, size_t errstr_size)
{
    VipsImage *flat = NULL, *copy = NULL, *small = NULL, *grey = NULL, *stats = NULL;
    unsigned char *px = NULL;
    size_t n = 0;
    int rc = -1, bands;

    if (vips_image_hasalpha(im)) {
        double white[] = {255, 255, 255};
        /* The argument holds its own reference to the array; ours is
         * dropped at once (found by fuzz_pipeline's leak check). */
        VipsArrayDouble *bg = vips_array_double_new(white, 3);
        int err = vips_flatten(im, &flat, "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (err)
            goto done;
    } else {
        flat = im;
        g_object_ref(flat);
    }
    /* In memory: read twice below (resize, statistics). */
    if (analysis_copy(flat, &small) || !(copy = vips_image_copy_memory(small)))
        goto done;
    VIPS_UNREF(small);
    /* vips_resize rather than thumbnail: exact 9x8, no shrink-on-load
     * needed from an image already in memory. */
    if (vips_resize(copy, &small, 9.0 / vips_image_get_width(copy), "vscale",
                    8.0 / vips_image_get_height(copy), NULL) ||
        vips_colourspace(small, &grey, VIPS_INTERPRETATION_B_W, NULL))
        goto done;
    if (!(px = vips_image_write_to_memory(grey, &n)) || n < 72 || vips_image_get_width(grey) != 9 ||
        vips_image_get_height(grey) != 8)
        goto done;
    bands = vips_image_get_bands(grey);
    *phash = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            int a = px[(y * 9 + x) * bands], b = px[(y * 9 + x + 1) * bands];
            *phash = *phash << 1 | (uint64_t)(a > b);
        }
    if (vips_stats(copy, &stats, NULL))
        goto done;
    /* stats: row 0 is all bands, row 1 + b is band b; column 4 the mean. */
    for (int c = 0; c < 3; c++) {
        double *v = NULL;
        int nv = 0;
        int band = vips_image_get_bands(copy) >= 3 ? c : 0;
        if (vips_getpoint(stats, &v, &nv, 4, 1 + band, NULL))
            goto done;
        mean_rgb[c] = (int)lround(v[0]);
        g_free(v);
    }
    rc = 0;
done:
    if (rc) {
        snprintf(errstr, errstr_size, "image analysis: %s", vips_error_buffer());
        vips_error_clear();
    }
    g_free(px);
    VIPS_UNREF(flat);
    VIPS_UNREF(copy);
    VIPS_UNREF(small);
    VIPS_UNREF(grey);
    VIPS_UNREF(stats);
    return rc;
}
