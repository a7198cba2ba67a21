/*
 * watchdog.c - jobs stuck past worker.stuck.timeout.ms. DESIGN §6: a job
 * stuck past a deadline is a transient failure of its record, and logged.
 *
 * Every attempt of a job (a PUT, a claim-check GET, a pipeline run, a DLQ
 * produce) and every wait (backoff, retry budget, pixel budget) refreshes
 * its slot's beat (job.c). The poll thread calls is_watchdog_check about
 * once a second:
 *
 *   1. No beat for worker.stuck.timeout.ms (30 s more during a DLQ produce,
 *      which librdkafka bounds by its message.timeout.ms): the job is stuck.
 *      It is logged with its record and phase, counted, and interrupted. An
 *      S3 request aborts at once (curl's progress callback, see s3.h) and is
 *      retried like any transient failure. A pipeline cannot be stopped from
 *      outside; limits.timeout.ms, which must be shorter, bounds it, except
 *      in code that never checks libvips' kill flag (a plugin, a loader
 *      parsing a header).
 *   2. Still no beat after as long again: the thread did not respond. It is
 *      left behind: detached, its pixel budget returned, and its job handed
 *      to a new job thread at the head of the queue, so the record is
 *      processed again, as after any transient failure. Its offset was never
 *      stored, so nothing is lost whichever thread ends first; outputs are
 *      deterministic, so a late write by the old thread is an identical
 *      overwrite. If it ever comes back it exits without finishing the
 *      record (job.c).
 *   3. With worker.stuck.max.threads threads already left behind, the worker
 *      stops instead: it finishes and commits the other records, leaves the
 *      stuck one uncommitted (and what follows it in its partition) and
 *      exits non-zero, so the orchestrator restarts it with fresh threads.
 *
 * Poll thread only; takes w->lock, and logs only after releasing it.
 */
#include <stdio.h>

#include "log.h"
#include "metrics.h"
#include "worker_int.h"

static const char *phase_name(int phase)
{
    switch (phase) {
    case IS_PHASE_PIPELINE:
        return "pipeline";
    case IS_PHASE_GET:
        return "claim-check GET";
    case IS_PHASE_PUT:
        return "PUT";
    case IS_PHASE_DLQ:
        return "DLQ produce";
    case IS_PHASE_BACKOFF:
        return "backoff";
    default:
        return "idle";
    }
}

static json_t *where(const is_slot_t *s, int index, int64_t idle_ms)
{
    return json_pack("{s:s, s:i, s:I, s:i, s:s, s:I}", "topic", s->topic, "partition",
                     (int)s->partition, "offset", (json_int_t)s->offset, "thread", index, "phase",
                     phase_name(atomic_load(&s->phase)), "no_progress_ms", (json_int_t)idle_ms);
}

/* What one check found in a slot, logged once w->lock is released: a
 * blocked stderr (a stalled log collector) must stall the poll thread only,
 * never every job thread waiting for the lock. fields are built under the
 * lock (memory only), msg formatted there. */
typedef struct finding {
    int level; /* IS_LOG_WARN, IS_LOG_ERROR */
    json_t *fields;
    char msg[320];
} finding_t;

/* Slots whose findings one check logs; the slots after it are checked a
 * second later, by the next call. */
#define MAX_FINDINGS 32

/* Leaves slot i's thread behind. Its job goes to a new thread when the
 * worker may still start one; otherwise the worker stops. Fills f with
 * what to log. Caller holds w->lock. */
static void leave_behind(is_worker_t *w, int i, int64_t idle_ms, finding_t *f)
{
    is_slot_t *s = &w->slots[i];
    is_job_t *job = s->job;
    int64_t max = w->maxthreads - w->nthreads; /* replacements left */

    f->level = IS_LOG_ERROR;
    f->fields = where(s, i, idle_ms);
    snprintf(f->msg, sizeof(f->msg), "%s",
             max > 0 ? "job thread still stuck after the interrupt: leaving it behind and handing "
                       "its record to a new job thread (processed again, a transient failure)"
                     : "job thread still stuck after the interrupt, and worker.stuck.max.threads "
                       "are left behind already: stopping the worker; the record stays "
                       "uncommitted and is processed again after the restart");
    atomic_store(&s->orphaned, 1);
    pthread_detach(w->threads[i]);
    s->partition = -1;
    s->job = NULL;
    s->stuck_beat_ms = 0;
    w->pixels -= s->pixels; /* the thread's own release is skipped (job.c) */
    w->nstuck++;
    atomic_fetch_add(&w->n_stuck, 1);
    is_metrics_set(IS_M_STUCK_THREADS, w->nstuck);
    pthread_cond_broadcast(&w->cond_idle);

    if (max > 0 && !is_job_thread_start(w)) {
        job->refs++;
        job->next = w->qhead;
        w->qhead = job;
        if (!w->qtail)
            w->qtail = job;
        pthread_cond_signal(&w->cond_job);
        is_metrics_inc(IS_M_STUCK_HANDED_OVER);
        return;
    }
    /* No thread will finish the record here: it leaves the in-flight count,
     * stays undone in the tracker (nothing at or after it is committed), and
     * the worker stops. */
    w->inflight--;
    atomic_store(&w->stuck_exit, 1);
}

void is_watchdog_check(is_worker_t *w)
{
    int64_t timeout = w->cfg->worker_stuck_timeout_ms;
    if (!timeout)
        return;
    int64_t now = is_now_ms();
    finding_t found[MAX_FINDINGS];
    int n = 0;

    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->nthreads && n < MAX_FINDINGS; i++) {
        is_slot_t *s = &w->slots[i];
        if (s->partition < 0 || atomic_load(&s->orphaned)) {
            s->stuck_beat_ms = 0;
            continue;
        }
        int64_t beat = atomic_load(&s->beat_ms);
        int64_t limit = timeout + (atomic_load(&s->phase) == IS_PHASE_DLQ ? 30000 : 0);
        if (s->stuck_beat_ms && s->stuck_beat_ms != beat)
            s->stuck_beat_ms = 0; /* it moved on after the interrupt */
        if (now - beat <= limit)
            continue;
        if (!s->stuck_beat_ms) {
            s->stuck_beat_ms = beat;
            atomic_store(&s->interrupt, 1);
            is_metrics_inc(IS_M_STUCK_INTERRUPTED);
            finding_t *f = &found[n++];
            f->level = IS_LOG_WARN;
            f->fields = where(s, i, now - beat);
            snprintf(f->msg, sizeof(f->msg),
                     "job stuck: no progress for worker.stuck.timeout.ms (%lld ms); interrupting "
                     "it, and the record is retried",
                     (long long)timeout);
        } else if (now - beat > 2 * limit) {
            leave_behind(w, i, now - beat, &found[n++]);
        }
    }
    pthread_mutex_unlock(&w->lock);

    for (int k = 0; k < n; k++) {
        if (found[k].level <= is_log_level)
            is_log_emit(found[k].level, "watchdog", found[k].fields, "%s", found[k].msg);
        else
            json_decref(found[k].fields);
    }
}
