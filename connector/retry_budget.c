/*
 * retry_budget.c - see retry_budget.h.
 */
#include "retry_budget.h"

void is_retry_budget_init(is_retry_budget_t *b, int64_t percent, int64_t min_per_s, double now)
{
    pthread_mutex_init(&b->lock, NULL);
    b->min_per_s = min_per_s < 1 ? 1.0 : (double)min_per_s;
    b->ratio = percent < 0 ? 0.0 : (double)percent / 100.0;
    b->cap = 10.0 * b->min_per_s;
    b->tokens = b->cap;
    b->last = now;
}

void is_retry_budget_destroy(is_retry_budget_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

/* Caller holds b->lock. Time going backwards (it cannot, with a monotonic
 * clock, but callers pass it in) adds nothing. */
static void refill(is_retry_budget_t *b, double now, double extra)
{
    double dt = now > b->last ? now - b->last : 0.0;
    b->tokens += dt * b->min_per_s + extra;
    if (b->tokens > b->cap)
        b->tokens = b->cap;
    if (now > b->last)
        b->last = now;
}

void is_retry_budget_deposit(is_retry_budget_t *b, double now)
{
    pthread_mutex_lock(&b->lock);
    refill(b, now, b->ratio);
    pthread_mutex_unlock(&b->lock);
}

int is_retry_budget_take(is_retry_budget_t *b, double now)
{
    int ok = 0;
    pthread_mutex_lock(&b->lock);
    refill(b, now, 0.0);
    /* 1e-9: five deposits of 0.2 make one token despite rounding. */
    if (b->tokens >= 1.0 - 1e-9) {
        b->tokens -= 1.0;
        ok = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

double is_retry_budget_tokens(is_retry_budget_t *b, double now)
{
    pthread_mutex_lock(&b->lock);
    refill(b, now, 0.0);
    double t = b->tokens;
    pthread_mutex_unlock(&b->lock);
    return t;
}
