/*
 * deadline.h - the per-image time limit (limits.timeout.ms).
 *
 * libvips evaluates lazily: the work happens when an image is written to
 * memory or encoded. is_deadline_watch() turns on progress reporting for an
 * image and connects its "eval" signal, which libvips emits as tiles are
 * computed; once the deadline has passed the handler sets the image's kill
 * flag, the next region of it fails to compute, and the write returns an
 * error. is_deadline_passed() then tells the caller that the time limit,
 * not the image, was the cause.
 *
 * Threads: one is_deadline_t per pipeline run; its handler runs on libvips'
 * worker threads, hence the atomic flag. The deadline must outlive every
 * image it watches (the pipeline unrefs them before returning).
 */
#ifndef IS_DEADLINE_H
#define IS_DEADLINE_H

#include <stdatomic.h>
#include <stdint.h>

#include <vips/vips.h>

typedef struct is_deadline {
    double end; /* CLOCK_MONOTONIC seconds */
    int64_t ms; /* the limit, for messages */
    atomic_int hit;
} is_deadline_t;

void is_deadline_start(is_deadline_t *d, int64_t ms);
/* Non-zero once the time is up (also sets the flag). */
int is_deadline_passed(is_deadline_t *d);
/* Milliseconds left until the deadline, rounded up (0 once it has passed):
 * a step that blocks outside libvips (an exec program) waits at most this
 * long, so one image's steps together stay within limits.timeout.ms. */
int64_t is_deadline_left_ms(is_deadline_t *d);
/* Watches im until it is finalized. d may be NULL (no limit). */
void is_deadline_watch(VipsImage *im, is_deadline_t *d);

#endif
