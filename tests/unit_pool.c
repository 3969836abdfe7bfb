/* unit_pool.c: the reference's worker pool (ref_pool.h).
 *
 * Every piece of every job is done exactly once, whatever the number of workers asked for (up to
 * more than the machine has); workers other than the caller may be skipped when they arrive after
 * the caller has taken the last piece, but a worker that runs sees its own index below n; nested
 * calls run on the calling thread; many short jobs in a row (the shape of a forward) neither lose
 * a wake-up nor hang, also with a process-wide busy loop on another thread competing for a core.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>

#include "check_main.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ref_pool.h"

enum { PIECES = 997 };

typedef struct {
    atomic_int next;
    atomic_int done[PIECES];
    atomic_int calls, bad_index;
    int n;
} count_job;

/* takes pieces from the counter and marks each one done */
static void count_pieces(void *ctx, int worker, int nworkers) {
    count_job *j = ctx;
    atomic_fetch_add(&j->calls, 1);
    if (worker < 0 || worker >= nworkers || nworkers != j->n) atomic_fetch_add(&j->bad_index, 1);
    for (int p; (p = eva_pool_next(&j->next, PIECES)) >= 0;) atomic_fetch_add(&j->done[p], 1);
}

static void run_count(int n) {
    count_job *j = calloc(1, sizeof *j);
    j->n = n;
    eva_pool_run(n, count_pieces, j);
    for (int p = 0; p < PIECES; p++) ck_assert_msg(atomic_load(&j->done[p]) == 1, "n=%d: piece %d done %d times", n, p,
                                                   atomic_load(&j->done[p]));
    ck_assert_int_eq(atomic_load(&j->bad_index), 0);
    ck_assert_int_ge(atomic_load(&j->calls), 1); /* the caller itself, at least */
    ck_assert_int_le(atomic_load(&j->calls), n);
    free(j);
}

START_TEST(test_every_piece_once) {
    static const int ns[] = {1, 2, 3, 8, 2, 17, 1, 64};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) run_count(ns[i]);
}
END_TEST

/* the shape of a forward: thousands of short jobs back to back */
START_TEST(test_many_short_jobs) {
    for (int r = 0; r < 3000; r++) run_count(r % 7 == 0 ? 5 : 2);
}
END_TEST

static void nested_outer(void *ctx, int worker, int nworkers) {
    (void)nworkers;
    count_job *inner = (count_job *)ctx + 1 + worker;
    inner->n = 1; /* a nested call runs fn(ctx, 0, 1) on the calling thread */
    ck_assert(eva_pool_in_job());
    eva_pool_run(4, count_pieces, inner);
}

START_TEST(test_nested_runs_inline) {
    count_job *jobs = calloc(4, sizeof *jobs);
    eva_pool_run(3, nested_outer, jobs);
    int ran = 0;
    for (int w = 0; w < 3; w++) {
        count_job *inner = &jobs[1 + w];
        if (!atomic_load(&inner->calls)) continue; /* that worker was skipped */
        ran++;
        ck_assert_int_eq(atomic_load(&inner->calls), 1);
        ck_assert_int_eq(atomic_load(&inner->bad_index), 0);
        for (int p = 0; p < PIECES; p++) ck_assert_int_eq(atomic_load(&inner->done[p]), 1);
    }
    ck_assert_int_ge(ran, 1);
    ck_assert(!eva_pool_in_job());
    free(jobs);
}
END_TEST

static atomic_bool stop_spinning;
static void *spin(void *unused) {
    (void)unused;
    while (!atomic_load_explicit(&stop_spinning, memory_order_relaxed)) {
    }
    return NULL;
}

/* a thread of this process spinning all along (a busy core): jobs still complete, each piece once */
START_TEST(test_busy_core) {
    pthread_t t;
    atomic_store(&stop_spinning, false);
    ck_assert_int_eq(pthread_create(&t, NULL, spin, NULL), 0);
    for (int r = 0; r < 2000; r++) run_count(2 + r % 3);
    atomic_store(&stop_spinning, true);
    pthread_join(t, NULL);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    (void)opt;
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_every_piece_once);
    tcase_add_test(tc, test_many_short_jobs);
    tcase_add_test(tc, test_nested_runs_inline);
    tcase_add_test(tc, test_busy_core);
    suite_add_tcase(s, tc);
    return s;
}
