/*
 * analyze.h - image facts for analysts: a 64-bit perceptual hash and the
 * mean colour.
 *
 * The perceptual hash is a dHash ("difference hash"): the upright image,
 * alpha flattened onto white, is resized to 9x8 pixels (aspect ignored),
 * converted to 8-bit grey (libvips' B_W), and for each of the 8 rows, left
 * to right, bit = 1 when a pixel is brighter than its right neighbour. The
 * 64 bits are packed row by row, first bit most significant, and written as
 * 16 lower-case hex digits. Near-duplicates (re-encoded, resized, slightly
 * recoloured) differ in few bits: compare with a Hamming distance, e.g.
 * bit_count(from_base(a, 16) # from_base(b, 16)) in SQL engines with bit
 * operations.
 *
 * The mean colour is the average of each sRGB channel over the same
 * flattened image, 0..255, rounded; grey images report r = g = b.
 *
 * Threads: any.
 */
#ifndef IS_ANALYZE_H
#define IS_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include <vips/vips.h>

/* im: 8-bit sRGB or B_W, with or without alpha. Returns 0, or -1 with the
 * libvips error copied into errstr. */
int is_analyze(VipsImage *im, uint64_t *phash, int mean_rgb[3], char *errstr, size_t errstr_size);

#endif
