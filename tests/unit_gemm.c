/* unit_gemm.c: the reference SGEMM (ref_gemm.h) against a naive double-precision loop written here,
 * at awkward shapes (1x1x1, M = 1, odd K, N not a multiple of 16 or of the 12-row tile, K of a
 * patch embedding 3*16*16, a B/16 qkv projection 197x768 -> 2304), with strides larger than the
 * rows, with and without bias, on every micro-kernel this CPU can run (portable always; AVX2,
 * AVX-512 or NEON where the CPU has them), serial and parallel; that every kernel and every thread
 * count give the portable kernel's bits; and the kernel selection (names, EVA_GEMM_KERNEL). */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eva_half.h"
#include "ref_gemm.h"

static const char *const kernels[] = {"portable", "avx2", "avx512", "neon"};
enum { NKERNELS = sizeof kernels / sizeof kernels[0] };

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

/* Every kernel this CPU runs, on every shape, parallel and serial. */
START_TEST(test_shapes_each_kernel) {
    int ran = 0;
    for (int i = 0; i < NKERNELS; i++) {
        if (!eva_gemm_kernel_available(kernels[i])) continue;
        ck_assert_int_eq(eva_gemm_set_kernel(kernels[i]), EVA_OK);
        ck_assert_str_eq(eva_gemm_kernel_name(), kernels[i]);
        all_shapes(RUN_PARALLEL);
        all_shapes(RUN_SERIAL);
        ran++;
    }
    ck_assert_int_ge(ran, 1);
    ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
}
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

/* Every kernel, the serial entry and every thread count perform the same float operations: the
 * portable kernel's bits, at shapes with a full last panel, a last panel of <= 16 tokens (the
 * half-width paths), a K that is not a multiple of the chain length, and a short chain (kc 16). */
static void check_identical(int M, int C, int K, int kc) {
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = randv(C);
    const size_t n = (size_t)M * C;
    float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    ck_assert_int_eq(eva_gemm_set_kernel("portable"), EVA_OK);
    eva_gemm_nt_serial(want, scratch, x, w, b, M, C, K, K, K, C, kc);
    for (int i = 0; i < NKERNELS; i++) {
        if (!eva_gemm_kernel_available(kernels[i])) continue;
        ck_assert_int_eq(eva_gemm_set_kernel(kernels[i]), EVA_OK);
        eva_gemm_nt_serial(got, scratch, x, w, b, M, C, K, K, K, C, kc);
        ck_assert_msg(memcmp(want, got, sizeof(float) * n) == 0, "%s serial differs from portable (M%d C%d K%d kc%d)",
                      kernels[i], M, C, K, kc);
        if (kc > 0) continue; /* the parallel entry always uses EVA_GEMM_KC */
        for (int threads = 0; threads <= 3; threads++) {
            memset(got, 0, sizeof(float) * n);
            eva_gemm_nt(got, x, w, b, M, C, K, K, K, C, threads);
            ck_assert_msg(memcmp(want, got, sizeof(float) * n) == 0,
                          "%s on %d threads differs from portable (M%d C%d K%d)", kernels[i], threads, M, C, K);
        }
    }
    eva_gemm_nt_serial(got, NULL, x, w, b, M, C, K, K, K, C, kc); /* no scratch: plain loops */
    ck_assert(memcmp(want, got, sizeof(float) * n) == 0);
    ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
    free(x), free(w), free(b), free(want), free(got), free(scratch);
}

START_TEST(test_bit_identical) {
    check_identical(101, 45, 300, 0);
    check_identical(64, 24, 512, 0);
    check_identical(48, 13, 77, 0);
    check_identical(197, 30, 64, 16);
    check_identical(17, 12, 197, 0);
}
END_TEST

/* Selection by name and by EVA_GEMM_KERNEL: every available kernel can be forced, "auto" picks
 * the widest, an unknown name is bad input and a kernel the CPU lacks is refused (and the
 * previous choice kept). */
START_TEST(test_kernel_selection) {
    ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
    const char *best = eva_gemm_kernel_name();
    ck_assert(eva_gemm_kernel_available(best));
    bool wider = false; /* no available kernel after the best in {avx512, avx2, neon} order */
    if (strcmp(best, "portable") == 0)
        for (int i = 1; i < NKERNELS; i++) wider = wider || eva_gemm_kernel_available(kernels[i]);
    ck_assert_msg(!wider, "auto chose portable although a vector kernel runs here");
    if (eva_gemm_kernel_available("avx512")) ck_assert_str_eq(best, "avx512");
    ck_assert(eva_gemm_kernel_available("portable"));
    ck_assert(!eva_gemm_kernel_available("sse9"));
    ck_assert_int_eq(eva_gemm_set_kernel("sse9"), EVA_ERR_INVALID_ARG);
    ck_assert_str_eq(eva_gemm_kernel_name(), best);
    for (int i = 0; i < NKERNELS; i++) {
        ck_assert_int_eq(setenv("EVA_GEMM_KERNEL", kernels[i], 1), 0);
        eva_status st = eva_gemm_kernel_from_env();
        if (eva_gemm_kernel_available(kernels[i])) {
            ck_assert_int_eq(st, EVA_OK);
            ck_assert_str_eq(eva_gemm_kernel_name(), kernels[i]);
        } else {
            ck_assert_int_eq(st, EVA_ERR_UNSUPPORTED);
            ck_assert_msg(strstr(eva_last_error(), kernels[i]) != NULL, "%s", eva_last_error());
        }
    }
    ck_assert_int_eq(setenv("EVA_GEMM_KERNEL", "fast", 1), 0);
    ck_assert_int_eq(eva_gemm_kernel_from_env(), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), "EVA_GEMM_KERNEL") != NULL, "%s", eva_last_error());
    ck_assert_int_eq(unsetenv("EVA_GEMM_KERNEL"), 0);
    ck_assert_int_eq(setenv("EVA_GEMM_PORTABLE", "1", 1), 0);
    ck_assert_int_eq(eva_gemm_kernel_from_env(), EVA_OK);
    ck_assert_str_eq(eva_gemm_kernel_name(), "portable");
    ck_assert_int_eq(unsetenv("EVA_GEMM_PORTABLE"), 0);
    ck_assert_int_eq(eva_gemm_kernel_from_env(), EVA_OK);
    ck_assert_str_eq(eva_gemm_kernel_name(), best);
}
END_TEST

/* The documented numerics, bit for bit: each output is a sum, in order, of float chains of at most
 * kc (fused, where the target has a fast fma) multiply-adds over consecutive k (restarting at
 * multiples of kc), each chain added to
 * a double, then the bias added in double and the sum rounded to float once. */
static void check_bit_exact(int M, int C, int K, int kc, const char *kernel) {
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = randv(C);
    float *out = malloc(sizeof(float) * (size_t)M * C);
    float *scratch = malloc(sizeof(float) * (size_t)eva_gemm_scratch_floats(M, K));
    ck_assert_int_eq(eva_gemm_set_kernel(kernel), EVA_OK);
    eva_gemm_nt_serial(out, scratch, x, w, b, M, C, K, K, K, C, kc);
    ck_assert(eva_gemm_fused());
    ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
    const int chain = kc > 0 ? kc : EVA_GEMM_KC;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < C; j++) {
            double s = 0.0;
            for (int k0 = 0; k0 < K; k0 += chain) {
                float f = 0.0f;
                for (int k = k0; k < k0 + chain && k < K; k++) {
                    float a = w[(size_t)j * K + k], xv = x[(size_t)i * K + k];
                    f = fmaf(a, xv, f);
                }
                s += f;
            }
            float want = (float)(s + b[j]);
            ck_assert_msg(out[(size_t)i * C + j] == want, "kc %d %s M%d C%d K%d [%d,%d]: %.9g, model %.9g", kc,
                          kernel, M, C, K, i, j, out[(size_t)i * C + j], want);
        }
    free(x), free(w), free(b), free(out), free(scratch);
}

START_TEST(test_numerics_model) {
    for (int i = 0; i < NKERNELS; i++) {
        if (!eva_gemm_kernel_available(kernels[i])) continue;
        check_bit_exact(37, 29, 300, 0, kernels[i]);
        check_bit_exact(37, 29, 300, 8, kernels[i]);
        check_bit_exact(20, 13, 77, 8, kernels[i]);
        check_bit_exact(5, 14, 520, 0, kernels[i]);
    }
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
    tcase_add_test(tc, test_shapes_each_kernel);
    tcase_add_test(tc, test_kernel_selection);
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
