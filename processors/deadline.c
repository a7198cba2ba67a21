/*
 * deadline.c - see deadline.h.
 */
#include "deadline.h"

#include <math.h>

#include "clock.h"

void is_deadline_start(is_deadline_t *d, int64_t ms)
{
    d->ms = ms;
    d->end = is_now_s() + ms / 1e3;
    atomic_store(&d->hit, 0);
}

int is_deadline_passed(is_deadline_t *d)
{
    if (!atomic_load(&d->hit) && is_now_s() > d->end)
        atomic_store(&d->hit, 1);
    return atomic_load(&d->hit);
}

int64_t is_deadline_left_ms(is_deadline_t *d)
{
    double left = d->end - is_now_s();
    if (is_deadline_passed(d) || left <= 0)
        return 0;
    return (int64_t)ceil(left * 1e3);
}

/* libvips' "eval" signal: runs while the image is being computed. The kill
 * flag is set on the image that emits the signal; libvips checks it before
 * every region of that image is computed (vips_region_prepare). */
static void on_eval(VipsImage *im, VipsProgress *progress, void *user)
{
    (void)progress;
    if (is_deadline_passed(user))
        vips_image_set_kill(im, TRUE);
}

void is_deadline_watch(VipsImage *im, is_deadline_t *d)
{
    if (!d || !im)
        return;
    vips_image_set_progress(im, TRUE);
    g_signal_connect(im, "eval", G_CALLBACK(on_eval), d);
}
