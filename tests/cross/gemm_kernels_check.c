/* gemm_kernels_check.c: a dependency-free check of the SGEMM micro-kernels (ref_gemm.h) for
 * builds where the Check suites do not run, such as an AArch64 cross build run under an emulator
 * (tests/cross/aarch64.sh). For every kernel this CPU runs: the portable kernel's bits at shapes
 * with full and half-width last panels, K not a multiple of the chain, a short chain (kc 16), serial
 * and on 3 pool threads; and
 * every output against the documented model (float chains of fused multiply-adds, restarting
 * every kc products, added in double, bias in double, one rounding). Prints one line per kernel
 * and "N passed, N failed"; exit status 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_gemm.h"

static unsigned long long rng = 0x2545F4914F6CDD1DULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* 0 when `kernel` gives the portable kernel's bits and the model's, else 1 (message printed). */
static int check_shape(const char *kernel, int M, int C, int K, int kc) {
    float *x = malloc(sizeof(float) * (size_t)M * K), *w = malloc(sizeof(float) * (size_t)C * K);
    float *b = malloc(sizeof(float) * (size_t)C), *want = malloc(sizeof(float) * (size_t)M * C);
    float *got = malloc(sizeof(float) * (size_t)M * C);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    if (!x || !w || !b || !want || !got || !scratch) {
        printf("out of memory\n");
        exit(3);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    for (size_t i = 0; i < (size_t)C * K; i++) w[i] = frand();
    for (int i = 0; i < C; i++) b[i] = frand();
    int bad = 0;
    eva_gemm_set_kernel("portable");
    eva_gemm_nt_serial(want, scratch, x, w, b, M, C, K, K, K, C, kc);
    eva_gemm_set_kernel(kernel);
    eva_gemm_nt_serial(got, scratch, x, w, b, M, C, K, K, K, C, kc);
    if (memcmp(want, got, sizeof(float) * (size_t)M * C) != 0) {
        printf("%s: M%d C%d K%d kc%d differs from the portable kernel\n", kernel, M, C, K, kc);
        bad = 1;
    }
    if (!bad && kc <= 0) { /* the parallel entry on 3 workers of the pool */
        memset(got, 0, sizeof(float) * (size_t)M * C);
        eva_gemm_nt(got, x, w, b, M, C, K, K, K, C, 3);
        if (memcmp(want, got, sizeof(float) * (size_t)M * C) != 0) {
            printf("%s: M%d C%d K%d on 3 threads differs from the portable kernel\n", kernel, M, C, K);
            bad = 1;
        }
    }
    const int chain = kc > 0 ? kc : EVA_GEMM_KC;
    for (int i = 0; i < M && !bad; i++)
        for (int j = 0; j < C && !bad; j++) {
            double s = 0.0;
            for (int k0 = 0; k0 < K; k0 += chain) {
                float f = 0.0f;
                for (int k = k0; k < k0 + chain && k < K; k++) f = fmaf(w[(size_t)j * K + k], x[(size_t)i * K + k], f);
                s += f;
            }
            if (got[(size_t)i * C + j] != (float)(s + b[j])) {
                printf("%s: M%d C%d K%d kc%d [%d,%d] %.9g, model %.9g\n", kernel, M, C, K, kc, i, j,
                       got[(size_t)i * C + j], (float)(s + b[j]));
                bad = 1;
            }
        }
    free(x), free(w), free(b), free(want), free(got), free(scratch);
    return bad;
}

int main(void) {
    static const char *const kernels[] = {"portable", "avx2", "avx512", "neon"};
    static const int shapes[][4] = {{1, 1, 1, 0},    {33, 25, 129, 0}, {101, 45, 300, 0}, {48, 13, 77, 0},
                                    {197, 30, 64, 16}, {17, 12, 197, 0}, {50, 37, 768, 0}, {300, 50, 3000, 0}};
    int passed = 0, failed = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!eva_gemm_kernel_available(kernels[k])) continue;
        int f = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            f += check_shape(kernels[k], shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
        printf("kernel %-8s %s\n", kernels[k], f ? "FAIL" : "bit-identical to portable and to the model");
        if (f)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
