/*
 * progress.h - one updating progress line for long work: count, rate, ETA.
 *
 * Used by `imgsink produce` (records delivered) and `imgsink status --watch`
 * (records committed while the lag drains). On a terminal the line is
 * redrawn in place ("\r" + erase to end of line) at most every 200 ms; when
 * the stream is not a terminal nothing is drawn, unless the caller asked for
 * plain mode, in which case every update is one complete line (for logs).
 *
 * The rate is measured over a sliding window of the last ~10 s, so it
 * follows a change of pace. The ETA is the remaining amount divided by the
 * rate at which that remaining amount shrinks: for a fixed total that is the
 * work rate; for a lag that new records keep growing it is the net drain
 * rate, and a lag that does not shrink has no ETA ("--").
 *
 * Threads: an is_progress_t belongs to the thread that created it.
 */
#ifndef IS_PROGRESS_H
#define IS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct is_progress is_progress_t;

typedef enum {
    IS_PROGRESS_TTY = 0,   /* draw only when fp is a terminal */
    IS_PROGRESS_PLAIN = 1, /* and, when it is not, one line per update */
} is_progress_mode_t;

/* label: what runs ("produce"); unit: what is counted ("records"); total:
 * the expected count, or -1 when unknown (then remaining comes from the
 * caller). Returns NULL on out of memory (callers treat that as "no
 * progress line"). */
is_progress_t *is_progress_new(FILE *fp, const char *label, const char *unit, int64_t total,
                               is_progress_mode_t mode);

/* done: the count so far. remaining: what is left (e.g. a lag), or -1 for
 * total - done (or unknown without a total). extra: a short text appended
 * to the line, or NULL. */
void is_progress_update(is_progress_t *pg, int64_t done, int64_t remaining, const char *extra);

/* Draws the final state and ends the line; later updates draw nothing. */
void is_progress_finish(is_progress_t *pg);

/* Accepts NULL. Finishes the line first if still drawn. */
void is_progress_destroy(is_progress_t *pg);

/* Formats seconds as "42s", "3m07s", "2h05m"; negative means unknown ("--"). */
void is_progress_format_eta(double seconds, char *buf, size_t size);

#endif
