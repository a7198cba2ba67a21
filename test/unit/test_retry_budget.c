/*
 * test_retry_budget.c - the worker-wide retry budget: a floor rate, a share
 * of first attempts, a cap, and waiting (never giving up) when spent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "retry_budget.h"

/* Takes every token available at time now; returns how many. */
static int drain(is_retry_budget_t *b, double now)
{
    int n = 0;
    while (is_retry_budget_take(b, now))
        n++;
    return n;
}

static void starts_full_then_floor_rate(void **state)
{
    (void)state;
    is_retry_budget_t b;
    is_retry_budget_init(&b, 20, 5, 100.0);
    /* Full bucket: ten seconds of the floor rate. */
    assert_int_equal(drain(&b, 100.0), 50);
    assert_false(is_retry_budget_take(&b, 100.0));
    /* Half a second later: 2.5 tokens, so two retries, then wait. */
    assert_int_equal(drain(&b, 100.5), 2);
    /* The half token left over is kept: 0.5 + 0.5 s x 5/s = 3. */
    assert_int_equal(drain(&b, 101.0), 3);
    /* Over 60 s with nothing succeeding, retries go on at the floor rate:
     * never more than 5 per second, never stuck at zero. */
    int total = 0;
    for (int i = 1; i <= 600; i++)
        total += drain(&b, 101.0 + i * 0.1);
    assert_int_equal(total, 300);
    is_retry_budget_destroy(&b);
}

static void first_attempts_earn_a_share(void **state)
{
    (void)state;
    is_retry_budget_t b;
    is_retry_budget_init(&b, 20, 1, 0.0);
    assert_int_equal(drain(&b, 0.0), 10);
    /* 50 first attempts at 20 % earn 10 retries, at the same instant. */
    for (int i = 0; i < 50; i++)
        is_retry_budget_deposit(&b, 0.0);
    assert_int_equal(drain(&b, 0.0), 10);
    /* 0 %: only the floor rate remains. */
    is_retry_budget_t z;
    is_retry_budget_init(&z, 0, 2, 0.0);
    assert_int_equal(drain(&z, 0.0), 20);
    for (int i = 0; i < 1000; i++)
        is_retry_budget_deposit(&z, 0.0);
    assert_int_equal(drain(&z, 0.0), 0);
    assert_int_equal(drain(&z, 1.0), 2);
    is_retry_budget_destroy(&b);
    is_retry_budget_destroy(&z);
}

static void capped(void **state)
{
    (void)state;
    is_retry_budget_t b;
    is_retry_budget_init(&b, 100, 3, 0.0);
    assert_int_equal(drain(&b, 0.0), 30);
    /* An hour of success, and of idle time, stores no more than the cap. */
    for (int i = 0; i < 100000; i++)
        is_retry_budget_deposit(&b, i * 0.036);
    assert_true(is_retry_budget_tokens(&b, 3600.0) <= 30.0);
    assert_int_equal(drain(&b, 3600.0), 30);
    /* A clock that goes backwards adds nothing. */
    assert_int_equal(drain(&b, 3000.0), 0);
    is_retry_budget_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_full_then_floor_rate),
        cmocka_unit_test(first_attempts_earn_a_share),
        cmocka_unit_test(capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
