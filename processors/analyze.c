/*
 * analyze.c - dHash and mean colour. See analyze.h.
 */
#include "analyze.h"

#include <math.h>
#include <stdio.h>

int is_analyze(VipsImage *im, uint64_t *phash, int mean_rgb[3], char *errstr, size_t errstr_size)
{
    VipsImage *flat = NULL, *small = NULL, *grey = NULL, *stats = NULL;
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
    /* vips_resize rather than thumbnail: exact 9x8, no shrink-on-load
     * needed from an image already in memory. */
    if (vips_resize(flat, &small, 9.0 / vips_image_get_width(flat), "vscale",
                    8.0 / vips_image_get_height(flat), NULL) ||
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
    if (vips_stats(flat, &stats, NULL))
        goto done;
    /* stats: row 0 is all bands, row 1 + b is band b; column 4 the mean. */
    for (int c = 0; c < 3; c++) {
        double *v = NULL;
        int nv = 0;
        int band = vips_image_get_bands(flat) >= 3 ? c : 0;
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
    VIPS_UNREF(small);
    VIPS_UNREF(grey);
    VIPS_UNREF(stats);
    return rc;
}
