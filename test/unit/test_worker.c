/*
 * test_worker.c - the worker core shared by the poll thread and the job
 * threads (worker_int.h), without a consumer: the pixel budget across a
 * watchdog hand-over.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker_int.h"

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

/* Stands in for a stuck job thread: the watchdog detaches it. */
static void *parked(void *arg)
{
    while (!atomic_load((atomic_int *)arg))
        sleep_ms(5);
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
    atomic_int wake = 0;
    cfg->worker_max_inflight_pixels = 1000;
    cfg->worker_stuck_timeout_ms = 1000;
    worker_init(&w, cfg, 1); /* no replacement: the watchdog stops the worker */
    is_slot_t *stuck = &w.slots[0];

    /* Before it hung, it held 300 pixels of an earlier run. */
    assert_int_equal(is_job_budget_reserve(&w, stuck, 300), 0);
    slot_running(&w, 0, 10000);
    assert_int_equal(pthread_create(&w.threads[0], NULL, parked, &wake), 0);
    is_watchdog_check(&w); /* interrupts */
    is_watchdog_check(&w); /* still no beat: left behind */
    assert_true(atomic_load(&stuck->orphaned));
    assert_int_equal(w.pixels, 0); /* what it held was returned */
    atomic_store(&wake, 1);

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
    worker_fini(&w);
    is_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(left_behind_thread_holds_no_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
