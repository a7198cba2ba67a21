/*
 * clock.h - the one monotonic clock of imgsink.
 *
 * Every interval, deadline and timed wait is measured on CLOCK_MONOTONIC: a
 * wall clock stepped by NTP or an operator would stretch or cut a wait (a
 * condition variable timed on CLOCK_REALTIME that is stepped back an hour
 * sleeps an hour). Wall time (CLOCK_REALTIME) is for timestamps people read
 * (log lines, DLQ headers), never for durations.
 *
 * Condition variables waited on with pthread_cond_timedwait must be made
 * with is_clock_cond_init, so their deadlines (is_clock_deadline) are on the
 * same clock. Header only: processors, the connector, the mock worker and
 * the fuzz targets all use it without linking anything more.
 *
 * Threads: any.
 */
#ifndef IS_CLOCK_H
#define IS_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in seconds and milliseconds. */
static inline double is_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int64_t is_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The CLOCK_MONOTONIC time ms from now, as an absolute deadline for
 * pthread_cond_timedwait on a condition variable made by
 * is_clock_cond_init (or pthread_clockjoin_np with CLOCK_MONOTONIC). */
static inline struct timespec is_clock_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* pthread_cond_init for a condition variable whose timed waits use
 * is_clock_deadline. Returns 0 or an errno value. */
static inline int is_clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    if (!(rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)))
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

#endif
