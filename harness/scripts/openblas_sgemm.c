/* openblas_sgemm.c: OpenBLAS's SGEMM throughput on an N x N x N fp32 product (C = A . B^T, the
 * layout of a linear layer), for harness/scripts/ratio_openblas.sh. Built by that script against
 * the system libopenblas; not part of the evabench build.
 *
 * usage: openblas_sgemm N THREADS REPEATS
 * prints one line: "openblas core=<name> threads=<t> n=<N> best_ms=<ms> median_ms=<ms> gflops_best=<g>
 * gflops_median=<g>" (2 N^3 flops per product; one untimed warm-up product first). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: openblas_sgemm N THREADS REPEATS\n");
        return 2;
    }
    const int n = atoi(argv[1]), threads = atoi(argv[2]), reps = atoi(argv[3]);
    if (n < 1 || threads < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "openblas_sgemm: N, THREADS and REPEATS (<= 1000) must be positive\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    const size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !c || !t) {
        fprintf(stderr, "openblas_sgemm: out of memory for N=%d\n", n);
        return 3;
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < nn; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        s = s * 1664525u + 1013904223u;
        b[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    const double flop = 2.0 * n * (double)n * n, med = t[reps / 2];
    printf("openblas core=%s threads=%d n=%d best_ms=%.2f median_ms=%.2f gflops_best=%.1f gflops_median=%.1f\n",
           openblas_get_corename(), threads, n, 1e3 * t[0], 1e3 * med, flop / t[0] * 1e-9, flop / med * 1e-9);
    free(a), free(b), free(c), free(t);
    return 0;
}
