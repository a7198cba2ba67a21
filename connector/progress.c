/*
 * progress.c - the updating progress line. See progress.h.
 */
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define PG_SAMPLES  32   /* ring of (time, done, remaining) samples */
#define PG_WINDOW_S 10.0 /* the rate is measured over this much history */
#define PG_SAMPLE_S 0.25 /* at most one sample per quarter second */
#define PG_REDRAW_S 0.2  /* terminal redraws at most this often */

typedef struct pg_sample {
    double t;
    int64_t done, remaining;
} pg_sample_t;

struct is_progress {
    FILE *fp;
    char *label, *unit;
    int64_t total;
    int tty, plain, finished, drawn;
    double t0, last_draw;
    pg_sample_t ring[PG_SAMPLES];
    int head, count; /* head: next slot to write */
    pg_sample_t cur;
    char extra[128];
};

is_progress_t *is_progress_new(FILE *fp, const char *label, const char *unit, int64_t total,
                               is_progress_mode_t mode)
{
    is_progress_t *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return NULL;
    pg->fp = fp;
    pg->label = strdup(label ? label : "");
    pg->unit = strdup(unit ? unit : "");
    if (!pg->label || !pg->unit) {
        is_progress_destroy(pg);
        return NULL;
    }
    pg->total = total;
    pg->tty = isatty(fileno(fp));
    pg->plain = !pg->tty && mode == IS_PROGRESS_PLAIN;
    pg->t0 = is_now_s();
    pg->last_draw = -1;
    return pg;
}

void is_progress_format_eta(double s, char *buf, size_t size)
{
    if (s < 0 || s > 99 * 3600.0) {
        snprintf(buf, size, "--");
        return;
    }
    long n = (long)(s + 0.5);
    if (n < 60)
        snprintf(buf, size, "%lds", n);
    else if (n < 3600)
        snprintf(buf, size, "%ldm%02lds", n / 60, n % 60);
    else
        snprintf(buf, size, "%ldh%02ldm", n / 3600, (n % 3600) / 60);
}

/* The oldest sample still inside the window, or NULL when there is no
 * history yet. */
static const pg_sample_t *window_start(const is_progress_t *pg)
{
    const pg_sample_t *best = NULL;
    for (int i = 0; i < pg->count; i++) {
        const pg_sample_t *s = &pg->ring[(pg->head - 1 - i + PG_SAMPLES) % PG_SAMPLES];
        if (pg->cur.t - s->t > PG_WINDOW_S && best)
            break;
        best = s;
    }
    return best && pg->cur.t - best->t > 0.05 ? best : NULL;
}

static void draw(is_progress_t *pg, int final)
{
    char line[384], eta[32], rate[32], rem[64];
    const pg_sample_t *w = window_start(pg);
    double dt = w ? pg->cur.t - w->t : 0;
    double r = w ? (double)(pg->cur.done - w->done) / dt : -1;
    double drain = w && pg->cur.remaining >= 0 && w->remaining >= 0
                       ? (double)(w->remaining - pg->cur.remaining) / dt
                       : -1;

    if (final) { /* the whole run's average is the honest final figure */
        dt = pg->cur.t - pg->t0;
        r = dt > 0.05 ? (double)pg->cur.done / dt : -1;
    }
    if (r >= 0)
        snprintf(rate, sizeof(rate), "%.1f/s", r);
    else
        snprintf(rate, sizeof(rate), "--/s");
    if (pg->cur.remaining == 0)
        snprintf(eta, sizeof(eta), "0s");
    else
        is_progress_format_eta(drain > 0 ? (double)pg->cur.remaining / drain : -1, eta,
                               sizeof(eta));
    rem[0] = '\0';
    if (pg->total < 0 && pg->cur.remaining >= 0)
        snprintf(rem, sizeof(rem), ", %lld left", (long long)pg->cur.remaining);

    int n;
    if (pg->total >= 0)
        n = snprintf(line, sizeof(line), "%s: %lld/%lld %s, %s, ETA %s", pg->label,
                     (long long)pg->cur.done, (long long)pg->total, pg->unit, rate, eta);
    else
        n = snprintf(line, sizeof(line), "%s: %lld %s%s, %s, ETA %s", pg->label,
                     (long long)pg->cur.done, pg->unit, rem, rate, eta);
    if (pg->extra[0] && n > 0 && (size_t)n < sizeof(line))
        snprintf(line + n, sizeof(line) - (size_t)n, ", %s", pg->extra);

    if (pg->tty) /* carriage return and erase-to-end-of-line: redraw in place */
        fprintf(pg->fp, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(pg->fp, "%s\n", line);
    fflush(pg->fp);
    pg->drawn = !final;
}

void is_progress_update(is_progress_t *pg, int64_t done, int64_t remaining, const char *extra)
{
    if (!pg || pg->finished || (!pg->tty && !pg->plain))
        return;
    double t = is_now_s();
    if (remaining < 0 && pg->total >= 0)
        remaining = pg->total - done > 0 ? pg->total - done : 0;
    pg->cur = (pg_sample_t){t, done, remaining};
    snprintf(pg->extra, sizeof(pg->extra), "%s", extra ? extra : "");
    const pg_sample_t *last =
        pg->count ? &pg->ring[(pg->head - 1 + PG_SAMPLES) % PG_SAMPLES] : NULL;
    if (!last || t - last->t >= PG_SAMPLE_S) {
        pg->ring[pg->head] = pg->cur;
        pg->head = (pg->head + 1) % PG_SAMPLES;
        if (pg->count < PG_SAMPLES)
            pg->count++;
    }
    /* Plain lines are as frequent as the caller's updates; terminal redraws
     * are throttled, the caller may update after every record. */
    if (pg->tty && pg->last_draw >= 0 && t - pg->last_draw < PG_REDRAW_S)
        return;
    pg->last_draw = t;
    draw(pg, 0);
}

void is_progress_finish(is_progress_t *pg)
{
    if (!pg || pg->finished)
        return;
    if (pg->tty && pg->last_draw >= 0) {
        pg->cur.t = is_now_s();
        draw(pg, 1);
    }
    pg->finished = 1;
}

void is_progress_destroy(is_progress_t *pg)
{
    if (!pg)
        return;
    is_progress_finish(pg);
    free(pg->label);
    free(pg->unit);
    free(pg);
}
