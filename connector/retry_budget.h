/*
 * retry_budget.h - the worker's retry budget: one token bucket that bounds
 * how fast all of a worker's job threads retry transient failures together.
 *
 * Backoff spaces the retries of one record; the budget bounds the sum. A
 * worker with 16 job threads facing a store that is down, throttling, or
 * just coming back does not send it 16 streams of retries, and many pods
 * recovering together do not stampede it.
 *
 * Tokens: each first attempt of an operation (a PUT, a claim-check GET, a
 * pipeline run, a DLQ produce) earns percent/100 of a token, and the bucket
 * also fills at min_per_s tokens a second, so retries go on when nothing
 * succeeds. A retry spends one token. The bucket holds at most ten seconds
 * of its floor rate (10 x min_per_s), so a long healthy spell does not store
 * up a burst.
 *
 * A retry never gives up for lack of budget: it waits for a token (DESIGN
 * §6, transient errors retry for as long as it takes). Its record stays in
 * flight and its offset unstored, and backpressure pauses the partitions
 * once enough records wait.
 *
 * Threads: any; one mutex held for a few instructions. Times are
 * CLOCK_MONOTONIC seconds passed in by the caller, so tests control them.
 */
#ifndef IS_RETRY_BUDGET_H
#define IS_RETRY_BUDGET_H

#include <pthread.h>
#include <stdint.h>

typedef struct is_retry_budget {
    pthread_mutex_t lock;
    double tokens;    /* available now */
    double cap;       /* most the bucket holds */
    double ratio;     /* tokens earned per first attempt */
    double min_per_s; /* floor refill rate */
    double last;      /* time of the last refill */
} is_retry_budget_t;

/* percent: retries allowed per 100 first attempts; min_per_s >= 1. The
 * bucket starts full. */
void is_retry_budget_init(is_retry_budget_t *b, int64_t percent, int64_t min_per_s, double now);
void is_retry_budget_destroy(is_retry_budget_t *b);

/* A first attempt was made: earn percent/100 of a token. */
void is_retry_budget_deposit(is_retry_budget_t *b, double now);

/* Spends a token for one retry: 1 when there was one, 0 when the retry must
 * wait (try again later). */
int is_retry_budget_take(is_retry_budget_t *b, double now);

/* Tokens available now (refilled to now), for metrics and tests. */
double is_retry_budget_tokens(is_retry_budget_t *b, double now);

#endif
