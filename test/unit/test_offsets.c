/*
 * test_offsets.c - the stored offset never passes a record that is not done.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "offsets.h"

static int64_t collect_one(is_offsets_t *ot, const char *topic, int32_t part)
{
    is_offsets_pos_t pos[16];
    size_t n = is_offsets_collect(ot, pos, 16);
    for (size_t i = 0; i < n; i++)
        if (pos[i].partition == part && !strcmp(pos[i].topic, topic))
            return pos[i].offset;
    return -1; /* nothing new */
}

/* is_offsets_add as the worker reads it: the generation, or 0 when the
 * record is not to be processed (untracked or out of memory). */
static uint64_t add(is_offsets_t *ot, const char *topic, int32_t part, int64_t offset)
{
    uint64_t gen = 0;
    return is_offsets_add(ot, topic, part, offset, &gen) == IS_OFFSETS_ADDED ? gen : 0;
}

/* Allocations the tracker makes from now on that fail (then succeed). */
static int fail_allocs;

static void *failing_calloc(size_t nmemb, size_t size)
{
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return calloc(nmemb, size);
}

/* The ring of a partition cannot grow for offset 64. However the worker
 * goes on (here: memory is back at once and the next records are offered
 * and finished), the stored offset never passes 64: what is done below it
 * is stored, up to exactly 64, the record to process again. */
static void out_of_memory_never_passes_the_record(void **state)
{
    (void)state;
    is_offsets_t *ot = is_offsets_new_with(failing_calloc);
    uint64_t gen = 0, g = is_offsets_add_partition(ot, "t", 0);
    assert_true(g > 0);
    for (int64_t o = 0; o < 64; o++) /* the first ring holds 64 */
        assert_int_equal(is_offsets_add(ot, "t", 0, o, &gen), IS_OFFSETS_ADDED);
    fail_allocs = 1;
    is_offsets_add_t rc64 = is_offsets_add(ot, "t", 0, 64, &gen);
    for (int64_t o = 65; o < 70; o++)
        if (is_offsets_add(ot, "t", 0, o, &gen) == IS_OFFSETS_ADDED)
            is_offsets_done(ot, "t", 0, gen, o);
    for (int64_t o = 0; o < 64; o++)
        assert_int_equal(is_offsets_done(ot, "t", 0, g, o), 0);
    assert_int_equal(collect_one(ot, "t", 0), 64);
    assert_int_equal(collect_one(ot, "t", 0), -1);
    /* Told apart from "not assigned", so the worker stops. */
    assert_int_equal(rc64, IS_OFFSETS_NOMEM);
    /* Another partition is not held back. */
    uint64_t g1 = is_offsets_add_partition(ot, "t", 1);
    assert_int_equal(is_offsets_add(ot, "t", 1, 7, &gen), IS_OFFSETS_ADDED);
    assert_int_equal(is_offsets_done(ot, "t", 1, g1, 7), 0);
    assert_int_equal(collect_one(ot, "t", 1), 8);
    /* Assigned again (after the restart, from the committed 64), it
     * tracks offsets again. */
    uint64_t g2 = is_offsets_add_partition(ot, "t", 0);
    assert_int_equal(is_offsets_add(ot, "t", 0, 64, &gen), IS_OFFSETS_ADDED);
    assert_int_equal(is_offsets_done(ot, "t", 0, g2, 64), 0);
    assert_int_equal(collect_one(ot, "t", 0), 65);
    is_offsets_destroy(ot);
}

/* A partition that cannot be tracked at all on assign: none of its records
 * is to be processed, nothing of it is stored. */
static void out_of_memory_on_assign(void **state)
{
    (void)state;
    is_offsets_t *ot = is_offsets_new_with(failing_calloc);
    uint64_t gen = 0;
    fail_allocs = 1;
    assert_int_equal(is_offsets_add_partition(ot, "t", 0), 0);
    assert_int_equal(is_offsets_add(ot, "t", 0, 5, &gen), IS_OFFSETS_UNTRACKED);
    assert_int_equal(collect_one(ot, "t", 0), -1);
    is_offsets_destroy(ot);
}

static void out_of_order(void **state)
{
    (void)state;
    is_offsets_t *ot = is_offsets_new();
    uint64_t g = is_offsets_add_partition(ot, "t", 0);
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(add(ot, "t", 0, o), g);
    assert_int_equal(is_offsets_done(ot, "t", 0, g, 12), 0);
    assert_int_equal(is_offsets_done(ot, "t", 0, g, 11), 0);
    assert_int_equal(collect_one(ot, "t", 0), -1); /* 10 still running */
    assert_int_equal(is_offsets_pending(ot, "t", 0), 3);
    assert_int_equal(is_offsets_done(ot, "t", 0, g, 10), 0);
    assert_int_equal(collect_one(ot, "t", 0), 13);
    assert_int_equal(collect_one(ot, "t", 0), -1); /* reported once */
    assert_int_equal(is_offsets_done(ot, "t", 0, g, 14), 0);
    assert_int_equal(collect_one(ot, "t", 0), -1);
    assert_int_equal(is_offsets_done(ot, "t", 0, g, 13), 0);
    assert_int_equal(collect_one(ot, "t", 0), 15);
    assert_int_equal(is_offsets_pending(ot, NULL, 0), 0);
    is_offsets_destroy(ot);
}

static void gaps_and_unknown(void **state)
{
    (void)state;
    is_offsets_t *ot = is_offsets_new();
    uint64_t g = is_offsets_add_partition(ot, "t", 3);
    add(ot, "t", 3, 100);
    add(ot, "t", 3, 105); /* compacted gap */
    assert_int_equal(is_offsets_done(ot, "t", 3, g, 101), -1);
    assert_int_equal(is_offsets_done(ot, "t", 3, g, 105), 0);
    assert_int_equal(is_offsets_done(ot, "t", 3, g, 100), 0);
    assert_int_equal(collect_one(ot, "t", 3), 106);
    assert_int_equal(add(ot, "nope", 0, 1), 0); /* untracked */
    is_offsets_destroy(ot);
}

static void revoked_generation_is_ignored(void **state)
{
    (void)state;
    is_offsets_t *ot = is_offsets_new();
    uint64_t g1 = is_offsets_add_partition(ot, "t", 0);
    add(ot, "t", 0, 1);
    add(ot, "t", 0, 2);
    assert_int_equal(is_offsets_remove_partition(ot, "t", 0), 2);
    uint64_t g2 = is_offsets_add_partition(ot, "t", 0);
    assert_true(g2 != g1);
    add(ot, "t", 0, 2);
    /* A job of the old assignment finishing late counts for nothing. */
    assert_int_equal(is_offsets_done(ot, "t", 0, g1, 2), -1);
    assert_int_equal(collect_one(ot, "t", 0), -1);
    assert_int_equal(is_offsets_done(ot, "t", 0, g2, 2), 0);
    assert_int_equal(collect_one(ot, "t", 0), 3);
    is_offsets_destroy(ot);
}

/* Random completion order over a ring that grows and wraps: after every
 * completion the storable offset is exactly the lowest offset not done. */
static void random_order_invariant(void **state)
{
    (void)state;
    enum { N = 5000 };
    static int64_t order[N];
    static char done[N];
    srand(12345);
    is_offsets_t *ot = is_offsets_new();
    uint64_t g = is_offsets_add_partition(ot, "t", 1);
    int64_t added = 0, last = -1;
    memset(done, 0, sizeof(done));
    size_t nwait = 0;
    while (added < N || nwait) {
        /* Dispatch in bursts, complete in random order from a window. */
        while (added < N && nwait < 300 && rand() % 3) {
            add(ot, "t", 1, added);
            order[nwait++] = added++;
        }
        if (!nwait)
            continue;
        size_t k = (size_t)rand() % nwait;
        int64_t o = order[k];
        order[k] = order[--nwait];
        assert_int_equal(is_offsets_done(ot, "t", 1, g, o), 0);
        done[o] = 1;
        int64_t lowest = 0;
        while (lowest < N && done[lowest])
            lowest++;
        int64_t got = collect_one(ot, "t", 1);
        if (got >= 0)
            last = got;
        assert_int_equal(last < 0 ? 0 : last, lowest);
    }
    assert_int_equal(last, N);
    is_offsets_destroy(ot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(out_of_order),
        cmocka_unit_test(gaps_and_unknown),
        cmocka_unit_test(revoked_generation_is_ignored),
        cmocka_unit_test(random_order_invariant),
        cmocka_unit_test(out_of_memory_never_passes_the_record),
        cmocka_unit_test(out_of_memory_on_assign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
