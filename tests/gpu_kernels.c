/* gpu_kernels.c: every CUDA launcher (cuda/eva_cuda_ops.h) against its CPU twin (ref/ref_ops.h)
 * on random data at edge shapes: N = 1, 77, 197, 257, 577; head_dim 12, 16, 24, 64, 88, 112, 128;
 * widths that are not a multiple of 8. fp32 must agree to rounding (TF32 off); the 16-bit types
 * are checked with bounds that follow from one 16-bit rounding per stored value.
 * Exits 77 (ctest: skipped) when no CUDA device is usable. Runs without fork (CUDA does not
 * survive fork after initialisation).
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
#include "ref_gemm.h"
#include "ref_ops.h"

static uint64_t rng = 0x243F6A8885A308D3ULL;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *randv(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
/* Host values rounded to dtype t (so the CPU twin sees exactly what the device holds). */
static void round_to(float *p, size_t n, eva_cu_dtype t) {
    if (t == EVA_CU_F32) return;
    void *d;
    ck_assert_int_eq(eva_cu_malloc(&d, n * 2), EVA_OK);
    ck_assert_int_eq(eva_cu_upload(d, p, n, t), EVA_OK);
    ck_assert_int_eq(eva_cu_download(p, d, n, t), EVA_OK);
    eva_cu_free(d);
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
/* max |got - want| / (atol + rtol * rms(want)) over all elements must be <= 1; NaN fails. */
static void expect_close(const char *what, const float *got, const float *want, size_t n, double atol, double rtol) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    double rms = n ? sqrt(ss / n) : 0, bound = atol + rtol * rms, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= bound)) ck_abort_msg("%s: element %zu: got %.9g, want %.9g (bound %.3g)", what, i, got[i], want[i], bound);
        if (e > worst) worst = e, wi = i;
    }
    (void)wi;
}
static double tol_of(eva_cu_dtype t) { return t == EVA_CU_F32 ? 2e-6 : t == EVA_CU_BF16 ? 1.6e-2 : 2e-3; }
static const eva_cu_dtype all_types[3] = {EVA_CU_F32, EVA_CU_BF16, EVA_CU_F16};

/* ---- GEMM ------------------------------------------------------------------------------------ */
static void check_linear_path(eva_precision p, int M, int C, int K, int bias, eva_cu_gemm_path path) {
    eva_cu_dtype t = eva_cu_act_dtype(p);
    float *x = randv((size_t)M * K, 1), *w = randv((size_t)C * K, 1.0f / sqrtf((float)K)), *b = randv(C, 1);
    round_to(x, (size_t)M * K, t), round_to(w, (size_t)C * K, t), round_to(b, C, t);
    float *want = malloc(sizeof(float) * M * C);
    eva_ref_linear(want, x, w, bias ? b : NULL, M, C, K);
    eva_cu_gemm_ctx *g;
    ck_assert_int_eq(eva_cu_gemm_create(&g, p, 32u << 20), EVA_OK);
    eva_cu_gemm_force(g, path);
    void *dx = dev(x, (size_t)M * K, t), *dw = dev(w, (size_t)C * K, t), *db = dev(b, C, t), *dout;
    ck_assert_int_eq(eva_cu_malloc(&dout, (size_t)M * C * eva_cu_dtype_size(t)), EVA_OK);
    ck_assert_msg(eva_cu_linear(g, dout, dx, dw, bias ? db : NULL, M, C, K, K, C, NULL) == EVA_OK, "%s",
                  eva_last_error());
    float *got = host(dout, (size_t)M * C, t);
    char what[96];
    snprintf(what, sizeof what, "linear %s M%d C%d K%d bias %d via %s", eva_precision_name(p), M, C, K, bias,
             eva_cu_gemm_path_name(eva_cu_gemm_last_path(g)));
    if (path != EVA_CU_GEMM_AUTO) ck_assert_msg(eva_cu_gemm_last_path(g) == path, "%s: forced path not taken", what);
    double tol = p == EVA_PREC_FP32 ? 1e-5 : p == EVA_PREC_TF32 ? 3e-3 : tol_of(t) * 2;
    expect_close(what, got, want, (size_t)M * C, 1e-6, tol);
    eva_cu_free(dx), eva_cu_free(dw), eva_cu_free(db), eva_cu_free(dout);
    eva_cu_gemm_free(g);
    free(x), free(w), free(b), free(want), free(got);
}

static void check_linear(eva_precision p, int M, int C, int K, int bias) {
    check_linear_path(p, M, C, K, bias, EVA_CU_GEMM_AUTO);
}

START_TEST(test_linear) {
    static const int shapes[][3] = {{1, 1, 1}, {1, 7, 13}, {5, 100, 130}, {197, 264, 88}, {257, 130, 2730}, {77, 33, 29}};
    for (int p = 0; p < 4; p++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int bias = 0; bias < 2; bias++) check_linear((eva_precision)p, shapes[i][0], shapes[i][1], shapes[i][2], bias);
}
END_TEST

/* the fallbacks, forced: bias broadcast + cuBLASLt without epilogue, and cublasGemmEx */
START_TEST(test_linear_fallbacks) {
    static const int shapes[][3] = {{1, 1, 1}, {1, 7, 13}, {3, 1, 64}, {197, 264, 88}, {77, 33, 29}};
    for (int p = 0; p < 4; p++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_linear_path((eva_precision)p, shapes[i][0], shapes[i][1], shapes[i][2], 1, EVA_CU_GEMM_LT_BETA);
            check_linear_path((eva_precision)p, shapes[i][0], shapes[i][1], shapes[i][2], 1, EVA_CU_GEMM_GEMMEX);
            check_linear_path((eva_precision)p, shapes[i][0], shapes[i][1], shapes[i][2], 0, EVA_CU_GEMM_GEMMEX);
        }
}
END_TEST

/* fp32 at bigE's and 18B's long reductions (K = 15360, 25600; and one with a remainder chunk): the
 * default path is split-K folded in double; it must be within 2e-6 of the float64 product (relative
 * to its rms; the float sums of 512 products alone are expected near 2e-7 rms), the CPU SGEMM
 * (eva_gemm_nt) within 1e-6, and the two within 3e-6 of each other. */
START_TEST(test_linear_splitk) {
    static const int Ks[] = {15360, 25600, 4096 + 300};
    const int M = 33, C = 70;
    for (size_t i = 0; i < 3; i++) {
        const int K = Ks[i];
        float *x = randv((size_t)M * K, 1), *w = randv((size_t)C * K, 1.0f / sqrtf((float)K)), *b = randv(C, 1);
        float *cpu = malloc(sizeof(float) * M * C), *exact = malloc(sizeof(float) * M * C);
        for (int r = 0; r < M; r++)
            for (int c = 0; c < C; c++) {
                double acc = b[c];
                for (int k = 0; k < K; k++) acc += (double)x[(size_t)r * K + k] * w[(size_t)c * K + k];
                exact[r * C + c] = (float)acc;
            }
        eva_gemm_nt(cpu, x, w, b, M, C, K, K, K, C, 1);
        eva_cu_gemm_ctx *g;
        ck_assert_int_eq(eva_cu_gemm_create(&g, EVA_PREC_FP32, 32u << 20), EVA_OK);
        ck_assert_int_eq(eva_cu_gemm_splitk_chunk(g, K), EVA_CU_SPLITK_KC);
        void *dx = dev(x, (size_t)M * K, EVA_CU_F32), *dw = dev(w, (size_t)C * K, EVA_CU_F32), *db = dev(b, C, EVA_CU_F32);
        void *dout;
        ck_assert_int_eq(eva_cu_malloc(&dout, sizeof(float) * M * C), EVA_OK);
        ck_assert_msg(eva_cu_linear(g, dout, dx, dw, db, M, C, K, K, C, NULL) == EVA_OK, "%s", eva_last_error());
        ck_assert_int_eq(eva_cu_gemm_last_path(g), EVA_CU_GEMM_SPLITK);
        float *got = host(dout, (size_t)M * C, EVA_CU_F32);
        char what[64];
        snprintf(what, sizeof what, "split-K fp32 K%d vs float64", K);
        expect_close(what, got, exact, (size_t)M * C, 0, 2e-6);
        expect_close("CPU SGEMM vs float64", cpu, exact, (size_t)M * C, 0, 1e-6);
        snprintf(what, sizeof what, "split-K fp32 K%d vs CPU SGEMM", K);
        expect_close(what, got, cpu, (size_t)M * C, 0, 3e-6);
        eva_cu_free(dx), eva_cu_free(dw), eva_cu_free(db), eva_cu_free(dout), eva_cu_gemm_free(g);
        free(x), free(w), free(b), free(cpu), free(exact), free(got);
    }
}
END_TEST

START_TEST(test_matmul_proj) {
    const int M = 5, W = 40, E = 23;
    for (int p = 0; p < 4; p++) {
        eva_cu_dtype t = eva_cu_act_dtype((eva_precision)p);
        float *x = randv((size_t)M * W, 1), *P = randv((size_t)W * E, 0.2f);
        round_to(x, (size_t)M * W, t), round_to(P, (size_t)W * E, t);
        float *want = malloc(sizeof(float) * M * E);
        eva_ref_matmul_proj(want, x, P, M, W, E);
        eva_cu_gemm_ctx *g;
        ck_assert_int_eq(eva_cu_gemm_create(&g, (eva_precision)p, 1u << 20), EVA_OK);
        void *dx = dev(x, (size_t)M * W, t), *dp = dev(P, (size_t)W * E, t), *dout;
        ck_assert_int_eq(eva_cu_malloc(&dout, (size_t)M * E * 4), EVA_OK);
        ck_assert_msg(eva_cu_matmul_proj(g, dout, dx, dp, M, W, E, W, NULL) == EVA_OK, "%s", eva_last_error());
        float *got = host(dout, (size_t)M * E, t);
        expect_close("matmul_proj", got, want, (size_t)M * E, 1e-6, p == 0 ? 1e-5 : 2e-2);
        eva_cu_free(dx), eva_cu_free(dp), eva_cu_free(dout), eva_cu_gemm_free(g);
        free(x), free(P), free(want), free(got);
    }
}
END_TEST

/* ---- norms ----------------------------------------------------------------------------------- */
static void check_norm(eva_cu_dtype t, int M, int C, int rms, eva_cu_norm_mode mode) {
    size_t n = (size_t)M * C;
    float *x = randv(n, 3), *a = randv(n, 2), *w = randv(C, 1), *b = randv(C, 0.5f);
    for (int i = 0; i < C; i++) w[i] += 1.0f;
    for (size_t i = 0; i < n; i++) x[i] += 5.0f; /* a mean offset, as in post-norm streams */
    round_to(a, n, t);
    float *xw = malloc(n * sizeof *xw), *uw = malloc(n * sizeof *uw);
    memcpy(xw, x, n * sizeof *xw);
    if (mode == EVA_CU_NORM_PRE) {
        eva_ref_add(xw, xw, a, (int64_t)n);
        if (rms) eva_ref_rmsnorm(uw, xw, w, M, C, 1e-6); else eva_ref_layernorm(uw, xw, w, b, M, C, 1e-6);
    } else {
        if (rms) eva_ref_rmsnorm(uw, a, w, M, C, 1e-6); else eva_ref_layernorm(uw, a, w, b, M, C, 1e-6);
        if (mode == EVA_CU_NORM_POST) eva_ref_add(xw, xw, uw, (int64_t)n);
    }
    float *dx = dev(x, n, EVA_CU_F32);
    void *da = dev(a, n, t), *du, *dxc;
    ck_assert_int_eq(eva_cu_malloc(&du, n * 4), EVA_OK);
    ck_assert_int_eq(eva_cu_malloc(&dxc, n * 4), EVA_OK);
    float *dw = dev(w, C, EVA_CU_F32), *db = dev(b, C, EVA_CU_F32);
    eva_status st = eva_cu_norm(dx, da, mode == EVA_CU_NORM_PLAIN ? da : du, mode == EVA_CU_NORM_POST ? dxc : NULL, dw,
                                rms ? NULL : db, M, C, C, 1e-6, rms, mode, t, NULL);
    ck_assert_msg(st == EVA_OK, "%s", eva_last_error());
    float *gu = host(mode == EVA_CU_NORM_PLAIN ? da : du, n, t), *gx = host(dx, n, EVA_CU_F32);
    char what[96];
    snprintf(what, sizeof what, "norm t%d M%d C%d rms%d mode%d", t, M, C, rms, mode);
    expect_close(what, gu, uw, n, 1e-6, t == EVA_CU_F32 ? 2e-6 : tol_of(t));
    if (mode != EVA_CU_NORM_PLAIN) expect_close("norm residual", gx, xw, n, 1e-6, 2e-6);
    if (mode == EVA_CU_NORM_POST) {
        float *gxc = host(dxc, n, t);
        expect_close("norm xc", gxc, xw, n, 1e-6, tol_of(t));
        free(gxc);
    }
    eva_cu_free(dx), eva_cu_free(da), eva_cu_free(du), eva_cu_free(dxc), eva_cu_free(dw), eva_cu_free(db);
    free(x), free(a), free(w), free(b), free(xw), free(uw), free(gu), free(gx);
}

START_TEST(test_norms) {
    static const int shapes[][2] = {{1, 64}, {197, 768}, {257, 1001}, {3, 5120}, {7, 2730}};
    for (int ti = 0; ti < 3; ti++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int rms = 0; rms < 2; rms++)
                for (int mode = 0; mode < 3; mode++) check_norm(all_types[ti], shapes[s][0], shapes[s][1], rms, (eva_cu_norm_mode)mode);
}
END_TEST

/* ---- elementwise ------------------------------------------------------------------------------ */
START_TEST(test_gelu_swiglu) {
    for (int ti = 0; ti < 3; ti++) {
        eva_cu_dtype t = all_types[ti];
        const int M = 197, F = 130;
        size_t n = (size_t)M * F;
        float *y = randv(n, 6);
        round_to(y, n, t);
        float *want = malloc(n * sizeof *want);
        eva_ref_gelu(want, y, (int64_t)n);
        void *d = dev(y, n, t);
        ck_assert_int_eq(eva_cu_gelu(d, (int64_t)n, t, NULL), EVA_OK);
        float *got = host(d, n, t);
        expect_close("gelu", got, want, n, 1e-6, tol_of(t));
        eva_cu_free(d), free(got), free(want), free(y);

        float *h = randv(2 * n, 4), *lw = randv(F, 1), *lb = randv(F, 1);
        round_to(h, 2 * n, t);
        float *g = malloc(n * 4), *a = malloc(n * 4), *z = malloc(n * 4);
        for (int r = 0; r < M; r++)
            for (int c = 0; c < F; c++) g[(size_t)r * F + c] = h[(size_t)r * 2 * F + c], a[(size_t)r * F + c] = h[(size_t)r * 2 * F + F + c];
        eva_ref_swiglu(z, g, a, (int64_t)n);
        round_to(z, n, t); /* the device stores z before its statistics */
        eva_ref_layernorm(z, z, lw, lb, M, F, 1e-6);
        void *dh = dev(h, 2 * n, t), *dz;
        ck_assert_int_eq(eva_cu_malloc(&dz, n * 4), EVA_OK);
        float *dlw = dev(lw, F, EVA_CU_F32), *dlb = dev(lb, F, EVA_CU_F32);
        ck_assert_int_eq(eva_cu_swiglu_ln(dz, dh, dlw, dlb, M, F, 1e-6, t, NULL), EVA_OK);
        float *gz = host(dz, n, t);
        expect_close("swiglu_ln", gz, z, n, 1e-5, t == EVA_CU_F32 ? 1e-5 : 3 * tol_of(t));
        eva_cu_free(dh), eva_cu_free(dz), eva_cu_free(dlw), eva_cu_free(dlb);
        free(h), free(lw), free(lb), free(g), free(a), free(z), free(gz);
    }
}
END_TEST

/* SwiGLU + sub-LN with the width padded (h [M, 2Fp], z [M, Fp], zeros past F; statistics over F),
 * with and without the norm, in the register-cached kernel (F <= 8 * threads) and the wide one. */
static void check_swiglu_padded(eva_cu_dtype t, int M, int F, int Fp, int norm) {
    const size_t nh = (size_t)M * 2 * Fp, nz = (size_t)M * Fp;
    float *h = randv(nh, 4), *lw = randv(F, 1), *lb = randv(F, 1);
    round_to(h, nh, t);
    float *g = malloc(sizeof(float) * M * F), *a = malloc(sizeof(float) * M * F), *z = malloc(sizeof(float) * M * F);
    for (int r = 0; r < M; r++)
        for (int c = 0; c < F; c++) g[(size_t)r * F + c] = h[(size_t)r * 2 * Fp + c], a[(size_t)r * F + c] = h[(size_t)r * 2 * Fp + Fp + c];
    eva_ref_swiglu(z, g, a, (int64_t)M * F);
    round_to(z, (size_t)M * F, t);
    if (norm) eva_ref_layernorm(z, z, lw, lb, M, F, 1e-6);
    float *want = calloc(nz, sizeof(float));
    for (int r = 0; r < M; r++) memcpy(want + (size_t)r * Fp, z + (size_t)r * F, sizeof(float) * F);
    void *dh = dev(h, nh, t), *dz;
    ck_assert_int_eq(eva_cu_malloc(&dz, nz * 4), EVA_OK);
    float *junk = randv(nz, 100);
    ck_assert_int_eq(eva_cu_upload(dz, junk, nz, t), EVA_OK); /* the padding must be overwritten with 0 */
    float *dlw = dev(lw, F, EVA_CU_F32), *dlb = dev(lb, F, EVA_CU_F32);
    ck_assert_int_eq(eva_cu_swiglu_ln_padded(dz, dh, norm ? dlw : NULL, dlb, M, F, Fp, 1e-6, t, NULL), EVA_OK);
    float *gz = host(dz, nz, t);
    for (int r = 0; r < M; r++)
        for (int c = F; c < Fp; c++) ck_assert_msg(gz[(size_t)r * Fp + c] == 0.0f, "swiglu padding r%d c%d", r, c);
    char what[80];
    snprintf(what, sizeof what, "swiglu_ln_padded t%d M%d F%d Fp%d norm%d", t, M, F, Fp, norm);
    expect_close(what, gz, want, nz, 1e-5, t == EVA_CU_F32 ? 1e-5 : 3 * tol_of(t));
    eva_cu_free(dh), eva_cu_free(dz), eva_cu_free(dlw), eva_cu_free(dlb);
    free(h), free(lw), free(lb), free(g), free(a), free(z), free(want), free(junk), free(gz);
}

START_TEST(test_swiglu_padded) {
    for (int ti = 0; ti < 3; ti++)
        for (int norm = 0; norm < 2; norm++) {
            check_swiglu_padded(all_types[ti], 5, 2730, 2752, norm); /* L/14 */
            check_swiglu_padded(all_types[ti], 3, 130, 192, norm);
            check_swiglu_padded(all_types[ti], 2, 5000, 5056, norm); /* wider than 8 x 512: the re-reading kernel */
            check_swiglu_padded(all_types[ti], 2, 2048, 2048, norm);
        }
}
END_TEST

START_TEST(test_rope) {
    static const int cases[][3] = {{14, 64, 12}, {16, 64, 16}, {24, 64, 16}, {5, 24, 4}, {1, 16, 2}};
    for (int ti = 0; ti < 3; ti++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            eva_cu_dtype t = all_types[ti];
            const int G = cases[ci][0], d = cases[ci][1], H = cases[ci][2], N = G * G + 1, B = 2, D = H * d, ld = 3 * D;
            size_t n = (size_t)B * N * ld;
            float *ct = malloc(sizeof(float) * G * G * d), *stab = malloc(sizeof(float) * G * G * d);
            ck_assert_int_eq(eva_ref_rope_table(ct, stab, G, 16, d), EVA_OK);
            float *x = randv(n, 2);
            round_to(x, n, t);
            float *want = malloc(n * 4);
            memcpy(want, x, n * 4);
            eva_ref_rope_apply(want, ct, stab, B, N, H, d, ld);
            eva_ref_rope_apply(want + D, ct, stab, B, N, H, d, ld);
            void *dx = dev(x, n, t);
            float *dct = dev(ct, (size_t)G * G * d, EVA_CU_F32), *dst = dev(stab, (size_t)G * G * d, EVA_CU_F32);
            ck_assert_int_eq(eva_cu_rope_qk(dx, dct, dst, B, N, H, d, ld, D, t, NULL), EVA_OK);
            float *got = host(dx, n, t);
            expect_close("rope", got, want, n, 1e-6, tol_of(t));
            eva_cu_free(dx), eva_cu_free(dct), eva_cu_free(dst);
            free(ct), free(stab), free(x), free(want), free(got);
        }
}
END_TEST

START_TEST(test_patch_cls_embed) {
    for (int ti = 0; ti < 3; ti++) {
        eva_cu_dtype t = all_types[ti];
        eva_precision p = t == EVA_CU_F32 ? EVA_PREC_FP32 : t == EVA_CU_BF16 ? EVA_PREC_BF16 : EVA_PREC_FP16;
        const int B = 2, S = 28, P = 7, G = S / P, D = 37, K = 3 * P * P, N = G * G + 1;
        float *px = randv((size_t)B * 3 * S * S, 2), *w = randv((size_t)D * K, 0.1f), *b = randv(D, 1);
        round_to(px, (size_t)B * 3 * S * S, t), round_to(w, (size_t)D * K, t), round_to(b, D, t);
        float *scratch = malloc(sizeof(float) * eva_ref_patch_embed_scratch_floats(B, S, P));
        float *want = malloc(sizeof(float) * B * G * G * D);
        eva_ref_patch_embed(want, scratch, px, w, b, B, S, P, D);
        float *dpx = dev(px, (size_t)B * 3 * S * S, EVA_CU_F32);
        void *dw = dev(w, (size_t)D * K, t), *db = dev(b, D, t), *dcols, *dout;
        ck_assert_int_eq(eva_cu_malloc(&dcols, (size_t)B * G * G * K * 4), EVA_OK);
        ck_assert_int_eq(eva_cu_malloc(&dout, (size_t)B * G * G * D * 4), EVA_OK);
        eva_cu_gemm_ctx *g;
        ck_assert_int_eq(eva_cu_gemm_create(&g, p, 1u << 20), EVA_OK);
        ck_assert_int_eq(eva_cu_im2col(dcols, dpx, B, S, P, t, NULL), EVA_OK);
        ck_assert_int_eq(eva_cu_linear(g, dout, dcols, dw, db, B * G * G, D, K, K, D, NULL), EVA_OK);
        float *got = host(dout, (size_t)B * G * G * D, t);
        expect_close("patch_embed", got, want, (size_t)B * G * G * D, 1e-6, t == EVA_CU_F32 ? 1e-5 : 3 * tol_of(t));
        /* cls + pos on the device's own patches */
        float *cls = randv(D, 1), *pos = randv((size_t)N * D, 1), *xw = malloc(sizeof(float) * B * N * D);
        eva_ref_cls_pos(xw, got, cls, pos, B, N, D);
        float *dcls = dev(cls, D, EVA_CU_F32), *dpos = dev(pos, (size_t)N * D, EVA_CU_F32), *dx;
        ck_assert_int_eq(eva_cu_malloc((void **)&dx, (size_t)B * N * D * 4), EVA_OK);
        ck_assert_int_eq(eva_cu_cls_pos(dx, NULL, dout, dcls, dpos, B, N, D, t, NULL), EVA_OK);
        float *gx = host(dx, (size_t)B * N * D, EVA_CU_F32);
        expect_close("cls_pos", gx, xw, (size_t)B * N * D, 0, 1e-7);
        eva_cu_free(dpx), eva_cu_free(dw), eva_cu_free(db), eva_cu_free(dcols), eva_cu_free(dout), eva_cu_free(dcls);
        eva_cu_free(dpos), eva_cu_free(dx), eva_cu_gemm_free(g);
        free(px), free(w), free(b), free(scratch), free(want), free(got), free(cls), free(pos), free(xw), free(gx);
    }
}
END_TEST

START_TEST(test_embedding_gather) {
    const int T = 3, L = 77, W = 35, V = 100;
    int32_t ids[3 * 77];
    for (int i = 0; i < T * L; i++) ids[i] = (int32_t)((i * 37 + 11) % (V - 1));
    ids[5] = V - 1, ids[L + 76] = V - 1, ids[2 * L] = V - 1;
    float *table = randv((size_t)V * W, 1), *pos = randv((size_t)L * W, 1);
    float *want = malloc(sizeof(float) * T * L * W);
    eva_ref_embedding(want, ids, table, T, L, W);
    for (int t = 0; t < T; t++) eva_ref_add(want + (size_t)t * L * W, want + (size_t)t * L * W, pos, (int64_t)L * W);
    int32_t *dids;
    ck_assert_int_eq(eva_cu_malloc((void **)&dids, sizeof ids), EVA_OK);
    ck_assert_int_eq(eva_cu_upload_bytes(dids, ids, sizeof ids), EVA_OK);
    float *dt = dev(table, (size_t)V * W, EVA_CU_F32), *dp = dev(pos, (size_t)L * W, EVA_CU_F32), *dx;
    ck_assert_int_eq(eva_cu_malloc((void **)&dx, sizeof(float) * T * L * W), EVA_OK);
    ck_assert_int_eq(eva_cu_embedding(dx, dids, dt, dp, T, L, W, NULL), EVA_OK);
    float *got = host(dx, (size_t)T * L * W, EVA_CU_F32);
    expect_close("embedding", got, want, (size_t)T * L * W, 0, 1e-7);
    int pos_eot[3];
    eva_ref_argmax_ids(pos_eot, ids, T, L);
    ck_assert_int_eq(pos_eot[0], 5);
    ck_assert_int_eq(pos_eot[1], 76);
    ck_assert_int_eq(pos_eot[2], 0);
    int32_t rows[3] = {pos_eot[0], pos_eot[1], pos_eot[2]}, *drows;
    ck_assert_int_eq(eva_cu_malloc((void **)&drows, sizeof rows), EVA_OK);
    ck_assert_int_eq(eva_cu_upload_bytes(drows, rows, sizeof rows), EVA_OK);
    float *dpool;
    ck_assert_int_eq(eva_cu_malloc((void **)&dpool, sizeof(float) * T * W), EVA_OK);
    ck_assert_int_eq(eva_cu_gather_rows(dpool, dx, drows, T, L, W, EVA_CU_F32, NULL), EVA_OK);
    float *gp = host(dpool, (size_t)T * W, EVA_CU_F32);
    for (int t = 0; t < T; t++)
        ck_assert(memcmp(gp + (size_t)t * W, want + ((size_t)t * L + rows[t]) * W, sizeof(float) * W) == 0);
    eva_cu_free(dids), eva_cu_free(dt), eva_cu_free(dp), eva_cu_free(dx), eva_cu_free(drows), eva_cu_free(dpool);
    free(table), free(pos), free(want), free(got), free(gp);
}
END_TEST

/* ---- attention --------------------------------------------------------------------------------- */
static void check_attention(eva_cu_dtype t, int B, int N, int H, int d, int causal, int twice) {
    const int D = H * d, ld = 3 * D + 5; /* odd stride: q/k/v slices of a wider buffer */
    size_t n = (size_t)B * N * ld;
    float *qkv = randv(n, 2.0f);
    round_to(qkv, n, t);
    float *want = malloc(sizeof(float) * B * N * D);
    float *scratch = malloc(sizeof(float) * eva_ref_attention_scratch_floats(N, d, 1));
    eva_ref_attention(want, scratch, qkv, qkv + D, qkv + 2 * D, B, N, H, d, ld, ld, ld, causal != 0, 1);
    const size_t es = eva_cu_dtype_size(t);
    void *dqkv = dev(qkv, n, t), *dout;
    ck_assert_int_eq(eva_cu_malloc(&dout, sizeof(float) * B * N * D), EVA_OK);
    eva_status st = eva_cu_attention(dout, dqkv, (char *)dqkv + D * es, (char *)dqkv + 2 * D * es, B, N, H, d, ld,
                                     causal, t, NULL);
    ck_assert_msg(st == EVA_OK, "%s", eva_last_error());
    float *got = host(dout, (size_t)B * N * D, t);
    char what[96];
    snprintf(what, sizeof what, "attention t%d B%d N%d H%d d%d causal%d", t, B, N, H, d, causal);
    expect_close(what, got, want, (size_t)B * N * D, 1e-6, t == EVA_CU_F32 ? 1e-5 : 2 * tol_of(t));
    if (twice) { /* determinism: bitwise equal on a second run */
        ck_assert_int_eq(eva_cu_attention(dout, dqkv, (char *)dqkv + D * es, (char *)dqkv + 2 * D * es, B, N, H, d, ld,
                                          causal, t, NULL), EVA_OK);
        float *again = host(dout, (size_t)B * N * D, t);
        ck_assert_msg(memcmp(again, got, sizeof(float) * B * N * D) == 0, "%s: second run differs", what);
        free(again);
    }
    eva_cu_free(dqkv), eva_cu_free(dout);
    free(qkv), free(want), free(scratch), free(got);
}

START_TEST(test_attention_shapes) {
    static const int Ns[] = {1, 197, 257, 577};
    static const int ds[] = {12, 16, 24, 64, 88, 112, 128};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 7; j++) check_attention(EVA_CU_F32, 2, Ns[i], 2, ds[j], 0, i == 2);
    for (size_t j = 0; j < 7; j++) {
        check_attention(EVA_CU_BF16, 2, 257, 2, ds[j], 0, 0);
        check_attention(EVA_CU_F16, 2, 197, 2, ds[j], 0, 0);
    }
}
END_TEST

START_TEST(test_attention_causal) {
    for (int ti = 0; ti < 3; ti++) {
        check_attention(all_types[ti], 3, 77, 4, 64, 1, 1);
        check_attention(all_types[ti], 2, 77, 2, 16, 1, 0);
        check_attention(all_types[ti], 1, 1, 1, 64, 1, 0);
    }
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    eva_cuda_device_info di;
    if (eva_cuda_device(&di) != EVA_OK) {
        opt->skip_reason = eva_last_error();
        return NULL;
    }
    printf("gpu_kernels on %s (sm_%d%d)\n", di.name, di.sm_major, di.sm_minor);
    Suite *s = suite_create("gpu_kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_linear_fallbacks);
    tcase_add_test(tc, test_linear_splitk);
    tcase_add_test(tc, test_matmul_proj);
    tcase_add_test(tc, test_norms);
    tcase_add_test(tc, test_gelu_swiglu);
    tcase_add_test(tc, test_swiglu_padded);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_patch_cls_embed);
    tcase_add_test(tc, test_embedding_gather);
    tcase_add_test(tc, test_attention_shapes);
    tcase_add_test(tc, test_attention_causal);
    suite_add_tcase(s, tc);
    opt->nofork = true;
    return s;
}
