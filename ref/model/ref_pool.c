/* ref_pool.c: the worker threads of ref_pool.h.
 *
 * State: a job (fn, ctx, n) published by bumping a generation counter; pool threads wait for a new
 * generation (spin, then the condition variable work_cv), then join the job through `ticket`
 * (the job's generation, a closed bit and the number of threads that joined) while it is still
 * open, run fn if their index is below n, and count themselves into `finished`. The caller runs
 * worker 0, then closes the job and waits only for the threads that joined (spin, then done_cv):
 * a pool thread that has not been scheduled yet (its core busy with another process) is not
 * waited for; it finds the job closed and skips it. One mutex guards the sleeps, so no wake-up is
 * lost: a sleeper re-checks its condition under the mutex that the waker takes before
 * signalling. run_mu serialises jobs.
 */
#include "ref_pool.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;     /* guards the sleeps */
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER, done_cv = PTHREAD_COND_INITIALIZER;
static int started;                /* pool threads created (worker indices 1..started) */
static atomic_uint generation;     /* bumped once per job */
static eva_pool_fn job_fn;         /* the job: written before the bump, read after it */
static void *job_ctx;
static int job_n;
static atomic_uint_fast64_t ticket; /* generation << 32 | CLOSED | threads that joined the job */
static atomic_int finished;        /* joined threads done with the current job */
#define CLOSED ((uint_fast64_t)1 << 31)
#define JOINED(t) ((int)((t) & (CLOSED - 1)))
static _Thread_local bool in_job;
static unsigned first_seen[EVA_POOL_MAX]; /* the generation before a new thread's first job */

bool eva_pool_in_job(void) { return in_job; }

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until cond(arg) holds or EVA_POOL_SPIN_US have passed; returns whether it holds. */
static bool spin_until(bool (*cond)(const void *), const void *arg) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if (cond(arg)) return true;
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > (int64_t)EVA_POOL_SPIN_US * 1000)
                return false;
        }
        relax();
    }
}

static bool new_generation(const void *seen) {
    return atomic_load_explicit(&generation, memory_order_acquire) != *(const unsigned *)seen;
}

static bool job_done(const void *joined) {
    return atomic_load_explicit(&finished, memory_order_acquire) == *(const int *)joined;
}

/* Joins the job of generation gen if it is still open; false when it was closed (or replaced). */
static bool join_job(unsigned gen) {
    uint_fast64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
    while ((unsigned)(t >> 32) == gen && !(t & CLOSED))
        if (atomic_compare_exchange_weak_explicit(&ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire))
            return true;
    return false;
}

static void *worker_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    unsigned seen = first_seen[id]; /* written before pthread_create, which orders it */
    for (;;) {
        if (!spin_until(new_generation, &seen)) {
            pthread_mutex_lock(&mu);
            while (!new_generation(&seen)) pthread_cond_wait(&work_cv, &mu);
            pthread_mutex_unlock(&mu);
        }
        seen = atomic_load_explicit(&generation, memory_order_acquire);
        if (!join_job(seen)) continue; /* closed before this thread got here */
        if (id < job_n) {
            in_job = true;
            job_fn(job_ctx, id, job_n);
            in_job = false;
        }
        const int done = atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel) + 1;
        const uint_fast64_t t = atomic_load_explicit(&ticket, memory_order_acquire);
        if ((t & CLOSED) && done == JOINED(t)) { /* the caller may be asleep waiting for this one */
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&done_cv);
            pthread_mutex_unlock(&mu);
        }
    }
    return NULL;
}

void eva_pool_run(int n, eva_pool_fn fn, void *ctx) {
    if (n > EVA_POOL_MAX) n = EVA_POOL_MAX;
    if (n <= 1 || in_job) {
        bool was = in_job;
        in_job = true;
        fn(ctx, 0, 1);
        in_job = was;
        return;
    }
    pthread_mutex_lock(&run_mu);
    while (started < n - 1) { /* threads start between jobs, so they never see a half-published one */
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        first_seen[started + 1] = atomic_load_explicit(&generation, memory_order_relaxed);
        int rc = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        started++;
    }
    if (n > started + 1) n = started + 1;
    job_fn = fn, job_ctx = ctx, job_n = n;
    const unsigned gen = atomic_load_explicit(&generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&finished, 0, memory_order_relaxed);
    atomic_store_explicit(&ticket, (uint_fast64_t)gen << 32, memory_order_release); /* open, none joined */
    pthread_mutex_lock(&mu);
    atomic_store_explicit(&generation, gen, memory_order_release);
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&mu);
    in_job = true;
    fn(ctx, 0, n);
    in_job = false;
    /* close the job: threads that have not joined yet skip it; wait for those that have */
    const int joined = JOINED(atomic_fetch_or_explicit(&ticket, CLOSED, memory_order_acq_rel));
    if (!spin_until(job_done, &joined)) {
        pthread_mutex_lock(&mu);
        while (!job_done(&joined)) pthread_cond_wait(&done_cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_unlock(&run_mu);
}
