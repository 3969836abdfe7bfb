/* ref_pool.h: the reference's worker threads: fork-join jobs whose work is handed out dynamically.
 *
 * eva_pool_run(n, fn, ctx) calls fn(ctx, w, n) on up to n workers at once (w = 0 is the calling
 * thread, 1..n-1 are pool threads, created on first use and kept) and returns when every call has
 * returned. The caller always runs; a pool thread that has not started the job by the time the
 * caller has finished its own call is not waited for and skips it (its core may be held by
 * another process). So inside fn, work must be taken piece by piece from a shared counter
 * (eva_pool_next), never as a fixed share per worker: a worker slowed down by the machine then
 * takes fewer pieces, and no one waits for a straggler's share.
 *
 * Waiting never holds a CPU for long: between jobs, and at the end of a job, a thread spins for
 * at most EVA_POOL_SPIN_US microseconds (the next job of a forward usually comes within a few)
 * and then sleeps on a condition variable, so that when the cores are oversubscribed the threads
 * that still have work get the CPUs. (OpenMP runtimes spin for milliseconds by default, which
 * multiplies the time of a forward when another process holds a core.)
 *
 * One job at a time: a second caller waits for the first job to finish. A call from inside a job
 * (nested) runs fn(ctx, 0, 1) on the calling thread.
 */
#ifndef EVA_REF_POOL_H
#define EVA_REF_POOL_H

#include <stdatomic.h>
#include <stdbool.h>

#define EVA_POOL_MAX 256   /* workers per job at most (larger requests are clamped) */
#define EVA_POOL_SPIN_US 100 /* spin before sleeping, microseconds */

typedef void (*eva_pool_fn)(void *ctx, int worker, int nworkers);

/* Runs fn on min(n, EVA_POOL_MAX) workers (n <= 1, a nested call, or a pool thread that cannot be
 * created: fewer, down to the caller alone) and returns when all have returned. */
void eva_pool_run(int n, eva_pool_fn fn, void *ctx);

/* True on a thread that is running a job's fn. */
bool eva_pool_in_job(void);

/* Takes the next piece from a counter shared by the workers of a job: returns its index, or -1
 * once `count` pieces have been taken. The counter starts at 0 (atomic_init before the job). */
static inline int eva_pool_next(atomic_int *counter, int count) {
    int i = atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    return i < count ? i : -1;
}

#endif
