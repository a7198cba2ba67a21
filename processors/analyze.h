/*
 * analyze.h - image facts for analysts: a 64-bit perceptual hash and the
 * mean colour.
 *
 * Both are computed from a small copy of the upright image: alpha flattened
 * onto white, then box-shrunk along each axis by the smallest integer
 * factor that brings that side to at most 256 px (the pipeline passes its
 * base, up to the largest rendition's box: one cheap pass over it).
 *
 * The perceptual hash is a dHash ("difference hash"): that copy is resized
 * to 9x8 pixels (aspect ignored), converted to 8-bit grey (libvips' B_W),
 * and for each of the 8 rows, left to right, bit = 1 when a pixel is
 * brighter than its right neighbour. The 64 bits are packed row by row,
 * first bit most significant, and written as 16 lower-case hex digits.
 * Near-duplicates (re-encoded, resized, slightly recoloured) differ in few
 * bits: compare with a Hamming distance, e.g. bit_count(from_base(a, 16) #
 * from_base(b, 16)) in SQL engines with bit operations.
 *
 * The mean colour is the average of each sRGB channel over the same copy,
 * 0..255, rounded (a box shrink keeps the mean, up to rounding and the
 * last factor - 1 columns and rows); grey images report r = g = b.
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
