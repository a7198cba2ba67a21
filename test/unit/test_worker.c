/*
 * test_worker.c - the worker core shared by the poll thread and the job
 * threads (worker_int.h), without a consumer: the pixel budget across a
 * watchdog hand-over, timed waits against a stepped wall clock, and the
 * watchdog's logging while stderr is blocked.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker_int.h"

/* The wall clock as the code under test sees it: this file's definition
 * interposes libc's for everything linked into the test. wall_ahead_s
 * moves CLOCK_REALTIME forward, as if it had been stepped back by that
 * much right after a deadline was computed from it; the kernel's own
 * clocks (which pthread_cond_timedwait sleeps on) are untouched. */
static atomic_int wall_ahead_s;

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    int rc = (int)syscall(SYS_clock_gettime, clk, ts);
    if (!rc && clk == CLOCK_REALTIME)
        ts->tv_sec += atomic_load(&wall_ahead_s);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A worker with nslots job slots and no threads, budget and watchdog set. */
static void worker_init(is_worker_t *w, is_config_t *cfg, int nslots)
{
    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    assert_int_equal(is_worker_sync_init(w), 0);
    w->maxthreads = nslots;
    w->slots = calloc((size_t)nslots, sizeof(*w->slots));
    w->threads = calloc((size_t)nslots, sizeof(*w->threads));
    assert_non_null(w->slots);
    assert_non_null(w->threads);
    for (int i = 0; i < nslots; i++)
        w->slots[i].partition = -1;
}

static void worker_fini(is_worker_t *w)
{
    free(w->slots);
    free(w->threads);
    is_worker_sync_destroy(w);
}

/* Slot i runs a record of t[0] that made no progress for idle_ms. */
static void slot_running(is_worker_t *w, int i, int64_t idle_ms)
{
    is_slot_t *s = &w->slots[i];
    snprintf(s->topic, sizeof(s->topic), "t");
    s->partition = 0;
    s->offset = 42;
    atomic_store(&s->phase, IS_PHASE_PIPELINE);
    atomic_store(&s->beat_ms, is_now_ms() - idle_ms);
    w->inflight++;
    if (i >= w->nthreads)
        w->nthreads = i + 1;
}

/* Stands in for a stuck job thread: the watchdog detaches it, so it is
 * told to end and says it did through statics, not the test's stack. */
static atomic_int parked_wake, parked_done;

static void *parked(void *arg)
{
    (void)arg;
    while (!atomic_load(&parked_wake))
        sleep_ms(5);
    atomic_store(&parked_done, 1);
    return NULL;
}

/* A job thread stuck before its pipeline reserved budget (a source
 * processor that hangs) is left behind; when it comes back it must not
 * take budget it would never give back, or every large image after it
 * waits forever with the partitions paused. */
static void left_behind_thread_holds_no_budget(void **state)
{
    (void)state;
    is_config_t *cfg = is_config_new();
    is_worker_t w;
    cfg->worker_max_inflight_pixels = 1000;
    cfg->worker_stuck_timeout_ms = 1000;
    worker_init(&w, cfg, 1); /* no replacement: the watchdog stops the worker */
    is_slot_t *stuck = &w.slots[0];

    /* Before it hung, it held 300 pixels of an earlier run. */
    assert_int_equal(is_job_budget_reserve(&w, stuck, 300), 0);
    slot_running(&w, 0, 10000);
    assert_int_equal(pthread_create(&w.threads[0], NULL, parked, NULL), 0);
    is_watchdog_check(&w); /* interrupts */
    is_watchdog_check(&w); /* still no beat: left behind */
    assert_true(atomic_load(&stuck->orphaned));
    assert_int_equal(w.pixels, 0); /* what it held was returned */
    atomic_store(&parked_wake, 1);

    /* It comes back: the earlier run ends, then its pipeline reaches the
     * budget and, like every run, releases only what a reserve gave it. */
    is_job_budget_release(&w, stuck, 300);
    int rc = is_job_budget_reserve(&w, stuck, 600);
    if (!rc)
        is_job_budget_release(&w, stuck, 600);
    assert_int_equal(w.pixels, 0);
    assert_int_equal(rc, -1);

    /* An image that needs the whole budget is admitted at once. */
    is_slot_t other = {.partition = -1};
    assert_int_equal(is_job_budget_reserve(&w, &other, 1000), 0);
    assert_int_equal(w.pixels, 1000);
    is_job_budget_release(&w, &other, 1000);
    assert_int_equal(w.pixels, 0);
    while (!atomic_load(&parked_done))
        sleep_ms(5);
    worker_fini(&w);
    is_config_destroy(cfg);
}

typedef struct waiter {
    is_worker_t *w;
    is_slot_t *slot;
    int64_t pixels;
    int rc;
    atomic_int done;
} waiter_t;

static void *reserve_thread(void *arg)
{
    waiter_t *wt = arg;
    wt->rc = is_job_budget_reserve(wt->w, wt->slot, wt->pixels);
    atomic_store(&wt->done, 1);
    return NULL;
}

/* A job waiting for pixel budget notices a shutdown past its deadline
 * (w->abandon, set without a wake-up) within its 100 ms slice, whatever
 * the wall clock does meanwhile. */
static void budget_wait_ignores_wall_clock_steps(void **state)
{
    (void)state;
    is_config_t *cfg = is_config_new();
    is_worker_t w;
    is_slot_t holder = {.partition = -1}, slot = {.partition = -1};
    cfg->worker_max_inflight_pixels = 1000;
    worker_init(&w, cfg, 1);
    assert_int_equal(is_job_budget_reserve(&w, &holder, 1000), 0);

    atomic_store(&wall_ahead_s, 3600);
    waiter_t wt = {.w = &w, .slot = &slot, .pixels = 500};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reserve_thread, &wt), 0);
    int waiting = 0;
    for (int i = 0; i < 500 && !waiting; i++) {
        pthread_mutex_lock(&w.lock);
        waiting = w.pixel_waiters > 0;
        pthread_mutex_unlock(&w.lock);
        if (!waiting)
            sleep_ms(10);
    }
    atomic_store(&w.abandon, 1);
    int64_t t0 = is_now_ms();
    while (!atomic_load(&wt.done) && is_now_ms() - t0 < 5000)
        sleep_ms(10);
    int noticed = atomic_load(&wt.done);
    int64_t took = is_now_ms() - t0;
    /* Wake it in any case so the test ends. */
    pthread_mutex_lock(&w.lock);
    pthread_cond_broadcast(&w.cond_idle);
    pthread_mutex_unlock(&w.lock);
    pthread_join(th, NULL);
    atomic_store(&wall_ahead_s, 0);
    print_message("# budget wait gave up %lld ms after the shutdown deadline (bound 5000)\n",
                  (long long)took);
    assert_true(waiting);
    assert_true(noticed);
    assert_int_equal(wt.rc, -1);
    assert_int_equal(w.pixels, 1000);
    worker_fini(&w);
    is_config_destroy(cfg);
}

typedef struct watch {
    is_worker_t *w;
    atomic_int done;
} watch_t;

static void *watchdog_thread(void *arg)
{
    watch_t *wa = arg;
    is_watchdog_check(wa->w);
    atomic_store(&wa->done, 1);
    return NULL;
}

/* stderr that nobody reads (a full pipe: a stalled log collector) blocks
 * the watchdog's log line. It must block the poll thread only, never with
 * w->lock held: every job thread takes that lock to finish a record. */
static void watchdog_logs_without_the_worker_lock(void **state)
{
    (void)state;
    is_config_t *cfg = is_config_new();
    is_worker_t w;
    watch_t wa = {.w = &w};
    int fds[2], saved = dup(STDERR_FILENO);
    cfg->worker_stuck_timeout_ms = 1000;
    worker_init(&w, cfg, 1);
    slot_running(&w, 0, 10000);

    assert_true(saved >= 0);
    assert_int_equal(pipe(fds), 0);
    /* Fill the pipe, then make writes to it block again. */
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    char junk[4096];
    memset(junk, 'x', sizeof(junk));
    while (write(fds[1], junk, sizeof(junk)) > 0)
        ;
    fcntl(fds[1], F_SETFL, 0);
    dup2(fds[1], STDERR_FILENO);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, watchdog_thread, &wa), 0);
    /* The watchdog found the job stuck (it sets interrupt under the lock)
     * and is now logging it, into the full pipe. */
    int64_t t0 = is_now_ms();
    while (!atomic_load(&w.slots[0].interrupt) && is_now_ms() - t0 < 5000)
        sleep_ms(5);
    int found = atomic_load(&w.slots[0].interrupt);
    struct timespec until = is_clock_deadline(2000);
    int locked = pthread_mutex_clocklock(&w.lock, CLOCK_MONOTONIC, &until);
    if (!locked)
        pthread_mutex_unlock(&w.lock);

    /* Unblock the watchdog (read what it wrote), then put stderr back. */
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    while (!atomic_load(&wa.done)) {
        while (read(fds[0], junk, sizeof(junk)) > 0)
            ;
        sleep_ms(5);
    }
    pthread_join(th, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[0]);
    close(fds[1]);

    assert_true(found);
    assert_int_equal(locked, 0); /* not ETIMEDOUT: the lock was free */
    worker_fini(&w);
    is_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(left_behind_thread_holds_no_budget),
        cmocka_unit_test(budget_wait_ignores_wall_clock_steps),
        cmocka_unit_test(watchdog_logs_without_the_worker_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
