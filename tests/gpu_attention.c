/* gpu_attention.c: the tensor-core attention kernel (eva_cu_attention_mma, bf16 and fp16) against
 * its oracle, the CUDA-core kernel (eva_cu_attention_simt), on the same device data: sequence
 * lengths 1, 77, 197, 257, 577 (tile edges of 64 on both sides), head dims 12, 16, 24, 32, 64, 88,
 * 112, 128 (each padded size, padded and not), causal and not, row strides that take the
 * vectorised and the element-wise staging; RoPE rotated while staging against eva_cu_rope_qk
 * followed by the oracle (and qkv left unrotated); determinism; which path each shape takes.
 * The bound per element is atol + rtol * rms(oracle), rtol twice the one-rounding bound of the
 * type (the mma kernel rounds P to the 16-bit type before P.V, the oracle keeps it in fp32).
 * Exits 77 (ctest: skipped) when no CUDA device is usable; runs without fork.
 */
#include <check.h>
#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eva_cuda.h"
#include "eva_cuda_ops.h"
#include "ref_ops.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static void *dev(const float *h, size_t n, eva_cu_dtype t) {
    void *d;
    ck_assert_int_eq(eva_cu_malloc(&d, (n ? n : 1) * eva_cu_dtype_size(t)), EVA_OK);
    ck_assert_int_eq(eva_cu_upload(d, h, n, t), EVA_OK);
    return d;
}
static float *host(const void *d, size_t n, eva_cu_dtype t) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(eva_cu_synchronize(), EVA_OK);
    ck_assert_int_eq(eva_cu_download(h, d, n, t), EVA_OK);
    return h;
}
static void expect_close(const char *what, const float *got, const float *want, size_t n, double rtol) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    const double bound = 1e-6 + rtol * (n ? sqrt(ss / n) : 0);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= bound)) ck_abort_msg("%s: element %zu: got %.9g, want %.9g (bound %.3g)", what, i, got[i], want[i], bound);
    }
}
static double rtol_of(eva_cu_dtype t) { return t == EVA_CU_BF16 ? 3.2e-2 : 4e-3; }

/* one comparison; ldpad: extra columns per row (0: ld = 3D, vectorised staging when d % 8 == 0) */
static void check_mma(eva_cu_dtype t, int B, int N, int H, int d, int causal, int ldpad) {
    const int D = H * d, ld = 3 * D + ldpad;
    const size_t n = (size_t)B * N * ld, no = (size_t)B * N * D, es = eva_cu_dtype_size(t);
    float *qkv = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) qkv[i] = 2.0f * frand();
    void *dq = dev(qkv, n, t), *d1, *d2;
    ck_assert_int_eq(eva_cu_malloc(&d1, no * es), EVA_OK);
    ck_assert_int_eq(eva_cu_malloc(&d2, no * es), EVA_OK);
    const char *k = (char *)dq + D * es, *v = (char *)dq + 2 * D * es;
    ck_assert_msg(eva_cu_attention_simt(d1, dq, k, v, B, N, H, d, ld, causal, t, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_cu_attention_mma(d2, dq, k, v, NULL, NULL, B, N, H, d, ld, causal, t, NULL) == EVA_OK, "%s",
                  eva_last_error());
    float *want = host(d1, no, t), *got = host(d2, no, t);
    char what[128];
    snprintf(what, sizeof what, "mma vs simt t%d B%d N%d H%d d%d causal%d ld%d", t, B, N, H, d, causal, ld);
    expect_close(what, got, want, no, rtol_of(t));
    /* determinism: bitwise equal on a second run */
    ck_assert_int_eq(eva_cu_attention_mma(d2, dq, k, v, NULL, NULL, B, N, H, d, ld, causal, t, NULL), EVA_OK);
    float *again = host(d2, no, t);
    ck_assert_msg(memcmp(again, got, no * sizeof(float)) == 0, "%s: second run differs", what);
    eva_cu_free(dq), eva_cu_free(d1), eva_cu_free(d2);
    free(qkv), free(want), free(got), free(again);
}

START_TEST(test_mma_vs_oracle) {
    static const int Ns[] = {1, 77, 197, 257, 577};
    static const int ds[] = {12, 16, 24, 32, 64, 88, 112, 128};
    const eva_cu_dtype ts[2] = {EVA_CU_BF16, EVA_CU_F16};
    for (int ti = 0; ti < 2; ti++)
        for (size_t i = 0; i < sizeof Ns / sizeof Ns[0]; i++)
            for (size_t j = 0; j < sizeof ds / sizeof ds[0]; j++) {
                const int causal = Ns[i] == 77 || Ns[i] == 257; /* text length; a tile edge + 1 */
                check_mma(ts[ti], 2, Ns[i], 2, ds[j], causal, 0);
                if (Ns[i] == 197) check_mma(ts[ti], 1, Ns[i], 3, ds[j], !causal, 5); /* odd stride: element-wise */
            }
}
END_TEST

START_TEST(test_mma_rope) {
    static const int cases[][3] = {{14, 64, 0}, {16, 88, 0}, {16, 88, 3}, {3, 12, 0}, {5, 24, 1}, {24, 64, 0}};
    const eva_cu_dtype ts[2] = {EVA_CU_BF16, EVA_CU_F16};
    for (int ti = 0; ti < 2; ti++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const eva_cu_dtype t = ts[ti];
            const int G = cases[ci][0], d = cases[ci][1], N = G * G + 1, B = 2, H = 2, D = H * d;
            const int ld = 3 * D + cases[ci][2];
            const size_t n = (size_t)B * N * ld, no = (size_t)B * N * D, es = eva_cu_dtype_size(t);
            float *ct = malloc(sizeof(float) * G * G * d), *st = malloc(sizeof(float) * G * G * d);
            ck_assert_int_eq(eva_ref_rope_table(ct, st, G, 16, d), EVA_OK);
            float *qkv = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) qkv[i] = 2.0f * frand();
            float *dct = dev(ct, (size_t)G * G * d, EVA_CU_F32), *dst = dev(st, (size_t)G * G * d, EVA_CU_F32);
            void *da = dev(qkv, n, t), *db = dev(qkv, n, t), *d1, *d2;
            ck_assert_int_eq(eva_cu_malloc(&d1, no * es), EVA_OK);
            ck_assert_int_eq(eva_cu_malloc(&d2, no * es), EVA_OK);
            /* oracle: rotate in place, then the CUDA-core kernel */
            ck_assert_int_eq(eva_cu_rope_qk(da, dct, dst, B, N, H, d, ld, D, t, NULL), EVA_OK);
            ck_assert_int_eq(eva_cu_attention_simt(d1, da, (char *)da + D * es, (char *)da + 2 * D * es, B, N, H, d, ld,
                                                   0, t, NULL), EVA_OK);
            ck_assert_msg(eva_cu_attention_mma(d2, db, (char *)db + D * es, (char *)db + 2 * D * es, dct, dst, B, N, H,
                                               d, ld, 0, t, NULL) == EVA_OK, "%s", eva_last_error());
            float *want = host(d1, no, t), *got = host(d2, no, t), *orig = host(db, n, t), *ref = malloc(n * 4);
            char what[96];
            snprintf(what, sizeof what, "mma+rope t%d G%d d%d ld%d", t, G, d, ld);
            expect_close(what, got, want, no, rtol_of(t));
            memcpy(ref, qkv, n * 4);
            void *dr = dev(ref, n, t); /* the same rounding as db's upload */
            float *r2 = host(dr, n, t);
            ck_assert_msg(memcmp(orig, r2, n * 4) == 0, "%s: qkv was modified", what);
            eva_cu_free(dr), eva_cu_free(dct), eva_cu_free(dst), eva_cu_free(da), eva_cu_free(db);
            eva_cu_free(d1), eva_cu_free(d2);
            free(ct), free(st), free(qkv), free(want), free(got), free(orig), free(ref), free(r2);
        }
}
END_TEST

START_TEST(test_paths) {
    ck_assert_int_eq(eva_cu_attention_path(64, EVA_CU_F32), EVA_CU_ATTENTION_SIMT);
    ck_assert_int_eq(eva_cu_attention_path(88, EVA_CU_BF16), EVA_CU_ATTENTION_MMA);
    ck_assert_int_eq(eva_cu_attention_path(128, EVA_CU_F16), EVA_CU_ATTENTION_MMA);
    ck_assert_int_eq(eva_cu_attention_path(200, EVA_CU_BF16), EVA_CU_ATTENTION_SIMT);
    static const int dd[][2] = {{1, 16}, {12, 16}, {24, 32}, {32, 32}, {40, 64}, {88, 96}, {112, 112}, {128, 128}, {129, 0}};
    for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) ck_assert_int_eq(eva_cu_attention_padded_dim(dd[i][0]), dd[i][1]);
    /* fp32 and head dims above 128 are refused by the tensor-core entry */
    ck_assert_int_eq(eva_cu_attention_mma(NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 64, 192, 0, EVA_CU_F32, NULL),
                     EVA_ERR_UNSUPPORTED);
    ck_assert_int_eq(eva_cu_attention_mma(NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 1, 160, 480, 0, EVA_CU_BF16, NULL),
                     EVA_ERR_UNSUPPORTED);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    eva_cuda_device_info di;
    if (eva_cuda_device(&di) != EVA_OK) {
        opt->skip_reason = eva_last_error();
        return NULL;
    }
    printf("gpu_attention on %s (sm_%d%d)\n", di.name, di.sm_major, di.sm_minor);
    Suite *s = suite_create("gpu_attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_mma_vs_oracle);
    tcase_add_test(tc, test_mma_rope);
    suite_add_tcase(s, tc);
    opt->nofork = true;
    return s;
}
