/* unit_gemm.c: the reference SGEMM (ref_gemm.h) against a naive double-precision loop written here,
 * at awkward shapes (1x1x1, M = 1, odd K, N not a multiple of 16 or of the 12-row tile, K of a
 * patch embedding 3*16*16, a B/16 qkv projection 197x768 -> 2304), with strides larger than the
 * rows, with and without bias, on both micro-kernels (AVX-512 where compiled, portable always),
 * serial and parallel; and that both kernels and every thread count give bit-identical results. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eva_half.h"
#include "ref_gemm.h"

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *randv(size_t n) {
    float *p = malloc(n * sizeof *p + 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

typedef enum { RUN_PARALLEL, RUN_SERIAL, RUN_ONE_THREAD } run_mode;

/* out = x . w^T + b by eva_gemm_nt* with row strides ld* >= the row lengths; every element checked
 * against a double loop within |err| <= 1e-6 * sum|products| + 1e-7 * |value| (float blocks of at
 * most EVA_GEMM_KC products, one final rounding), and the padding between rows left untouched. */
static void check_gemm(int M, int C, int K, int pad, bool with_bias, run_mode mode) {
    const int ldx = K + pad, ldw = K + 2 * pad, ldo = C + pad;
    float *x = randv((size_t)M * ldx), *w = randv((size_t)C * ldw), *b = with_bias ? randv(C) : NULL;
    float *out = malloc(sizeof(float) * (size_t)M * ldo);
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < (size_t)M * ldo; i++) out[i] = 12345.0f;
    if (mode == RUN_SERIAL) {
        float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
        ck_assert_ptr_nonnull(scratch);
        eva_gemm_nt_serial(out, scratch, x, w, b, M, C, K, ldx, ldw, ldo, 0);
        free(scratch);
    } else {
        eva_gemm_nt(out, x, w, b, M, C, K, ldx, ldw, ldo, mode == RUN_ONE_THREAD ? 1 : 0);
    }
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < C; j++) {
            double s = b ? b[j] : 0.0, mag = b ? fabs(b[j]) : 0.0;
            for (int k = 0; k < K; k++) {
                double p = (double)x[(size_t)i * ldx + k] * w[(size_t)j * ldw + k];
                s += p, mag += fabs(p);
            }
            float got = out[(size_t)i * ldo + j];
            ck_assert_msg(fabs(got - s) <= 1e-6 * mag + 1e-7 * fabs(s) + 1e-30,
                          "gemm %s M%d C%d K%d pad%d [%d,%d]: %.9g vs %.9g", eva_gemm_kernel_name(), M, C, K, pad,
                          i, j, got, s);
        }
        for (int j = C; j < ldo; j++)
            ck_assert_msg(out[(size_t)i * ldo + j] == 12345.0f, "gemm wrote into the row padding at [%d,%d]", i, j);
    }
    free(x), free(w), free(b), free(out);
}

static const int shapes[][3] = {
    {1, 1, 1},    {1, 1, 7},     {2, 3, 8},     {1, 512, 768},  {3, 13, 65},   {5, 17, 63},  {31, 12, 64},
    {32, 24, 64}, {33, 25, 129}, {7, 100, 257}, {64, 30, 513},  {197, 20, 768}, {50, 37, 3 * 16 * 16},
    {197, 64, 197}};

static void all_shapes(run_mode mode) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_gemm(shapes[i][0], shapes[i][1], shapes[i][2], 0, i % 2 == 0, mode);
        check_gemm(shapes[i][0], shapes[i][1], shapes[i][2], 3, i % 2 == 1, mode);
    }
}

START_TEST(test_shapes_default_kernel) { all_shapes(RUN_PARALLEL); }
END_TEST

START_TEST(test_shapes_portable_kernel) {
    bool prev = eva_gemm_force_portable(true);
    ck_assert_str_eq(eva_gemm_kernel_name(), "portable");
    all_shapes(RUN_PARALLEL);
    eva_gemm_force_portable(prev);
}
END_TEST

START_TEST(test_shapes_serial) { all_shapes(RUN_SERIAL); }
END_TEST

/* The full B/16 qkv projection shape (one image), and a token block split (M > one block). */
START_TEST(test_large_shapes) {
    check_gemm(197, 2304, 768, 0, true, RUN_PARALLEL);
    check_gemm(600, 40, 1500, 1, true, RUN_PARALLEL);
}
END_TEST

/* Both kernels, the serial entry and every thread count perform the same float operations. */
START_TEST(test_bit_identical) {
    const int M = 101, C = 45, K = 300;
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = randv(C);
    float *o1 = malloc(sizeof(float) * M * C), *o2 = malloc(sizeof(float) * M * C), *o3 = malloc(sizeof(float) * M * C);
    float *o4 = malloc(sizeof(float) * M * C);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    eva_gemm_nt(o1, x, w, b, M, C, K, K, K, C, 0);
    eva_gemm_nt(o2, x, w, b, M, C, K, K, K, C, 1);
    eva_gemm_nt_serial(o3, scratch, x, w, b, M, C, K, K, K, C, 0);
    bool prev = eva_gemm_force_portable(true);
    eva_gemm_nt(o4, x, w, b, M, C, K, K, K, C, 0);
    eva_gemm_force_portable(prev);
    ck_assert(memcmp(o1, o2, sizeof(float) * M * C) == 0);
    ck_assert(memcmp(o1, o3, sizeof(float) * M * C) == 0);
    ck_assert_msg(memcmp(o1, o4, sizeof(float) * M * C) == 0, "portable and %s kernels differ",
                  eva_gemm_kernel_name());
    eva_gemm_nt_serial(o4, NULL, x, w, b, M, C, K, K, K, C, 0); /* no scratch: plain loops */
    ck_assert(memcmp(o1, o4, sizeof(float) * M * C) == 0);
    free(x), free(w), free(b), free(o1), free(o2), free(o3), free(o4), free(scratch);
}
END_TEST

/* The documented numerics, bit for bit: each output is a sum, in order, of float chains of at most
 * kc (fused, where the target has a fast fma) multiply-adds over consecutive k (restarting at
 * multiples of kc), each chain added to
 * a double, then the bias added in double and the sum rounded to float once. */
static void check_bit_exact(int M, int C, int K, int kc, bool portable) {
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = randv(C);
    float *out = malloc(sizeof(float) * (size_t)M * C);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    bool prev = eva_gemm_force_portable(portable);
    eva_gemm_nt_serial(out, scratch, x, w, b, M, C, K, K, K, C, kc);
    const bool fused = eva_gemm_fused(); /* as the kernel that ran */
    eva_gemm_force_portable(prev);
    const int chain = kc > 0 ? kc : EVA_GEMM_KC;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < C; j++) {
            double s = 0.0;
            for (int k0 = 0; k0 < K; k0 += chain) {
                float f = 0.0f;
                for (int k = k0; k < k0 + chain && k < K; k++) {
                    float a = w[(size_t)j * K + k], xv = x[(size_t)i * K + k];
                    f = fused ? fmaf(a, xv, f) : f + a * xv;
                }
                s += f;
            }
            float want = (float)(s + b[j]);
            ck_assert_msg(out[(size_t)i * C + j] == want, "kc %d %s M%d C%d K%d [%d,%d]: %.9g, model %.9g", kc,
                          portable ? "portable" : "default", M, C, K, i, j, out[(size_t)i * C + j], want);
        }
    free(x), free(w), free(b), free(out), free(scratch);
}

START_TEST(test_numerics_model) {
    check_bit_exact(37, 29, 300, 0, false);
    check_bit_exact(37, 29, 300, 8, false);
    check_bit_exact(20, 13, 77, 8, true);
    check_bit_exact(5, 14, 520, 0, true);
}
END_TEST

/* A long K (the parallel entry splits K into ranges and keeps double sums across them) gives the
 * same bits as the serial entry, which never splits K. */
START_TEST(test_long_k_split) {
    const int M = 300, C = 50, K = 3000;
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = randv(C);
    float *o1 = malloc(sizeof(float) * M * C), *o2 = malloc(sizeof(float) * M * C);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    eva_gemm_nt(o1, x, w, b, M, C, K, K, K, C, 0);
    eva_gemm_nt_serial(o2, scratch, x, w, b, M, C, K, K, K, C, 0);
    ck_assert(memcmp(o1, o2, sizeof(float) * M * C) == 0);
    free(x), free(w), free(b), free(o1), free(o2), free(scratch);
    check_gemm(M, 7, K, 2, true, RUN_PARALLEL);
}
END_TEST

/* K = 0 is an empty sum: out = bias (or 0). */
START_TEST(test_empty_k) {
    float b[3] = {1.5f, -2.0f, 0.25f}, out[6];
    eva_gemm_nt(out, NULL, NULL, b, 2, 3, 0, 0, 0, 3, 0);
    for (int i = 0; i < 6; i++) ck_assert(out[i] == b[i % 3]);
    eva_gemm_nt(out, NULL, NULL, NULL, 2, 3, 0, 0, 0, 3, 0);
    for (int i = 0; i < 6; i++) ck_assert(out[i] == 0.0f);
}
END_TEST

/* Weights held as F16 or BF16 (eva_gemm_nt_w) give exactly eva_gemm_nt's result on the widened
 * matrix, on both kernels, one thread and all, with a row stride past K, at a short-K shape, a
 * long-K shape (K split into ranges) and a partial tile. */
START_TEST(test_typed_weights) {
    static const int shapes[][3] = {{37, 29, 70}, {70, 50, 1100}, {5, 13, 300}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        const int M = shapes[sh][0], C = shapes[sh][1], K = shapes[sh][2], ldw = K + 3;
        float *x = randv((size_t)M * K), *w = randv((size_t)C * ldw), *b = randv(C), *wide = randv((size_t)C * ldw);
        uint16_t *h = malloc(sizeof *h * (size_t)C * ldw);
        float *want = malloc(sizeof(float) * (size_t)M * C), *got = malloc(sizeof(float) * (size_t)M * C);
        ck_assert(h && want && got);
        for (int dt = EVA_DT_F16; dt <= EVA_DT_BF16; dt++) {
            for (size_t i = 0; i < (size_t)C * ldw; i++) {
                h[i] = dt == EVA_DT_F16 ? eva_f32_to_f16(w[i] * 4.0f) : eva_f32_to_bf16(w[i] * 4.0f);
                wide[i] = dt == EVA_DT_F16 ? eva_f16_to_f32(h[i]) : eva_bf16_to_f32(h[i]);
            }
            const eva_wmat wm = {h, (eva_dtype)dt};
            for (int portable = 0; portable < 2; portable++) {
                bool prev = eva_gemm_force_portable(portable);
                for (int th = 0; th < 2; th++) {
                    eva_gemm_nt(want, x, wide, b, M, C, K, K, ldw, C, th);
                    memset(got, 0, sizeof(float) * (size_t)M * C);
                    eva_gemm_nt_w(got, x, wm, b, M, C, K, K, ldw, C, th);
                    ck_assert_msg(!memcmp(want, got, sizeof(float) * (size_t)M * C), "%s M%d C%d K%d %s threads %d",
                                  eva_dtype_name((eva_dtype)dt), M, C, K, eva_gemm_kernel_name(), th);
                }
                eva_gemm_force_portable(prev);
            }
        }
        free(x), free(w), free(b), free(wide), free(h), free(want), free(got);
    }
}
END_TEST


static Suite *gemm_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_shapes_default_kernel);
    tcase_add_test(tc, test_shapes_portable_kernel);
    tcase_add_test(tc, test_shapes_serial);
    tcase_add_test(tc, test_large_shapes);
    tcase_add_test(tc, test_bit_identical);
    tcase_add_test(tc, test_empty_k);
    tcase_add_test(tc, test_numerics_model);
    tcase_add_test(tc, test_long_k_split);
    tcase_add_test(tc, test_typed_weights);
    suite_add_tcase(s, tc);
    return s;
}

Suite *eva_test_suite(eva_test_options *opt) { return gemm_suite(); }
