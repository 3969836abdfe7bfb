/* op_ref.c: each reference op (ref_ops.h) against closed forms, hand-checkable cases or a naive
 * double-precision loop written here. Expected constants come from mathematics (erf, softmax of
 * logs), from docs/model.md §4.5 (L-14-336 RoPE test values, read from the official module) and from
 * upstream timm 1.0.3 (RotaryEmbeddingCat for head_dim 24, grid 5; printed by the golden venv,
 * see test_rope_timm) - never from our own output. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ref_gemm.h"
#include "ref_model.h"
#include "ref_ops.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *randv(size_t n) {
    float *p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

#define CLOSE(got, want, tol) \
    ck_assert_msg(fabs((double)(got) - (double)(want)) <= (tol), "%s = %.9g, want %.9g", #got, (double)(got), \
                  (double)(want))

/* ---- linear ---------------------------------------------------------------------------------- */

static void check_linear(int M, int C, int K, int with_bias) {
    float *x = randv((size_t)M * K), *w = randv((size_t)C * K), *b = with_bias ? randv(C) : NULL;
    float *out = malloc(sizeof(float) * M * C);
    eva_ref_linear(out, x, w, b, M, C, K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < C; j++) {
            double s = b ? b[j] : 0.0, mag = b ? fabs(b[j]) : 0.0;
            for (int k = 0; k < K; k++) {
                s += (double)x[(size_t)i * K + k] * w[(size_t)j * K + k];
                mag += fabs((double)x[(size_t)i * K + k] * w[(size_t)j * K + k]);
            }
            /* float block sums (<= EVA_GEMM_KC products per lane) + one final rounding */
            ck_assert_msg(fabs(out[(size_t)i * C + j] - s) <= 1e-6 * mag + 1e-7 * fabs(s) + 1e-30,
                          "linear M%d C%d K%d [%d,%d]: %.9g vs %.9g", M, C, K, i, j, out[(size_t)i * C + j], s);
        }
    free(x), free(w), free(b), free(out);
}

START_TEST(test_linear_shapes) {
    static const int shapes[][3] = {{1, 1, 1},   {1, 1, 7},    {2, 3, 8},     {3, 4, 9},    {5, 7, 13},
                                    {4, 5, 16},  {7, 9, 63},   {13, 67, 1031}, {50, 130, 520}, {97, 65, 512},
                                    {49, 1, 777}, {1, 133, 24}, {197, 20, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_linear(shapes[i][0], shapes[i][1], shapes[i][2], 0);
        check_linear(shapes[i][0], shapes[i][1], shapes[i][2], 1);
    }
}
END_TEST

START_TEST(test_linear_exact) {
    /* integers: every partial sum is exact, so the result is exact */
    float x[2 * 3] = {1, 2, 3, -4, 5, -6};
    float w[2 * 3] = {7, 8, 9, 1, 0, -1};
    float b[2] = {0.5f, -0.25f};
    float out[4];
    eva_ref_linear(out, x, w, b, 2, 2, 3);
    ck_assert_float_eq(out[0], 50.5f); /* 7+16+27 + 0.5 */
    ck_assert_float_eq(out[1], -2.25f); /* 1-3 - 0.25 */
    ck_assert_float_eq(out[2], -41.5f); /* -28+40-54 + 0.5 */
    ck_assert_float_eq(out[3], 1.75f);  /* -4+6 - 0.25 */
}
END_TEST

/* ---- norms and pointwise --------------------------------------------------------------------- */

START_TEST(test_layernorm) {
    float x[4] = {1, 2, 3, 4}, y[4];
    float w[4] = {1, 2, 3, 4}, b[4] = {0.5f, 0, -0.5f, 1};
    /* mean 2.5, biased var 1.25: (x - 2.5) / sqrt(1.25 + 1e-6) */
    eva_ref_layernorm(y, x, w, b, 1, 4, 1e-6);
    double s = 1.0 / sqrt(1.25 + 1e-6);
    CLOSE(y[0], -1.5 * s * 1 + 0.5, 1e-6);
    CLOSE(y[1], -0.5 * s * 2, 1e-6);
    CLOSE(y[2], 0.5 * s * 3 - 0.5, 1e-6);
    CLOSE(y[3], 1.5 * s * 4 + 1, 1e-6);
    /* no bias, in place, large offset (two-pass keeps it exact) */
    float z[3] = {1e6f + 1, 1e6f + 2, 1e6f + 3}, ones[3] = {1, 1, 1};
    eva_ref_layernorm(z, z, ones, NULL, 1, 3, 0.0);
    CLOSE(z[0], -1.224744871391589, 1e-6); /* -1 / sqrt(2/3) */
    CLOSE(z[1], 0.0, 1e-7);
    CLOSE(z[2], 1.224744871391589, 1e-6);
}
END_TEST

START_TEST(test_rmsnorm) {
    float x[4] = {3, 4, 3, 4}, w[2] = {1, 2}, y[4];
    eva_ref_rmsnorm(y, x, w, 2, 2, 0.0); /* mean(x^2) = 12.5 */
    CLOSE(y[0], 3 / sqrt(12.5), 1e-6);
    CLOSE(y[1], 8 / sqrt(12.5), 1e-6);
    CLOSE(y[2], 3 / sqrt(12.5), 1e-6);
    CLOSE(y[3], 8 / sqrt(12.5), 1e-6); /* w is per column: [1, 2] */
    float z[2] = {0, 0};
    eva_ref_rmsnorm(z, z, w, 1, 2, 1e-6);
    ck_assert_float_eq(z[0], 0.0f);
}
END_TEST

START_TEST(test_gelu_swiglu) {
    float x[5] = {1, 0, -1, 2, -3}, y[5];
    eva_ref_gelu(y, x, 5);
    CLOSE(y[0], 0.8413447460685429, 1e-7);
    CLOSE(y[1], 0.0, 0);
    CLOSE(y[2], -0.15865525393145707, 1e-7);
    CLOSE(y[3], 1.9544997361036416, 1e-7);
    CLOSE(y[4], -3 * 0.0013498980316301, 1e-9); /* -3 * Phi(-3) */
    float g[3] = {1, 0, -2}, a[3] = {2, 5, 3}, z[3];
    eva_ref_swiglu(z, g, a, 3);
    CLOSE(z[0], 2 * 0.7310585786300049, 1e-7);      /* silu(1) = sigmoid(1) */
    CLOSE(z[1], 0.0, 0);
    CLOSE(z[2], 3 * -2 * 0.11920292202211755, 1e-7); /* -2 * sigmoid(-2) */
}
END_TEST

START_TEST(test_softmax_add) {
    float x[2 * 3] = {0, (float)log(2.0), (float)log(3.0), 1000, 1000, -INFINITY}, y[6];
    eva_ref_softmax(y, x, 2, 3);
    CLOSE(y[0], 1.0 / 6, 1e-7);
    CLOSE(y[1], 2.0 / 6, 1e-7);
    CLOSE(y[2], 3.0 / 6, 1e-7);
    CLOSE(y[3], 0.5, 0);
    CLOSE(y[4], 0.5, 0);
    ck_assert_float_eq(y[5], 0.0f);
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 4};
    eva_ref_add(a, a, b, 3);
    ck_assert_float_eq(a[0], 1.5f);
    ck_assert_float_eq(a[1], 0.0f);
    ck_assert_float_eq(a[2], 7.0f);
}
END_TEST

/* ---- attention ------------------------------------------------------------------------------- */

/* naive double attention over a [B,N,3D] fused buffer */
static void naive_attention(double *out, const float *qkv, int B, int N, int H, int d, int causal) {
    const int D = H * d;
    const double scale = (float)(1.0 / sqrt((double)d));
    double *s = malloc(sizeof(double) * N);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < N; i++) {
                const float *q = qkv + ((size_t)b * N + i) * 3 * D + h * d;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; j++) {
                    const float *k = qkv + ((size_t)b * N + j) * 3 * D + D + h * d;
                    double t = 0;
                    for (int c = 0; c < d; c++) t += (double)(float)(q[c] * (float)scale) * k[c];
                    s[j] = (causal && j > i) ? -INFINITY : t;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - mx));
                for (int c = 0; c < d; c++) {
                    double o = 0;
                    for (int j = 0; j < N; j++) o += s[j] / sum * qkv[((size_t)b * N + j) * 3 * D + 2 * D + h * d + c];
                    out[((size_t)b * N + i) * D + h * d + c] = o;
                }
            }
    free(s);
}

static void check_attention(int B, int N, int H, int d, int causal, int threads) {
    const int D = H * d;
    float *qkv = randv((size_t)B * N * 3 * D);
    for (size_t i = 0; i < (size_t)B * N * 3 * D; i++) qkv[i] *= 3.0f; /* peaky softmax */
    float *out = malloc(sizeof(float) * B * N * D);
    double *ref = malloc(sizeof(double) * B * N * D);
    float *scr = malloc(sizeof(float) * eva_ref_attention_scratch_floats(N, d, threads));
    eva_ref_attention(out, scr, qkv, qkv + D, qkv + 2 * D, B, N, H, d, 3 * D, 3 * D, 3 * D, causal, threads);
    naive_attention(ref, qkv, B, N, H, d, causal);
    for (size_t i = 0; i < (size_t)B * N * D; i++)
        ck_assert_msg(fabs(out[i] - ref[i]) <= 2e-6 * (1 + fabs(ref[i])), "attention B%d N%d H%d d%d causal%d [%zu]: %g vs %g",
                      B, N, H, d, causal, i, out[i], ref[i]);
    free(qkv), free(out), free(ref), free(scr);
}

START_TEST(test_attention_naive) {
    static const int dims[] = {12, 16, 24, 64, 88, 112, 128};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        check_attention(2, 7, 3, dims[i], 0, 2);
        check_attention(2, 7, 3, dims[i], 1, 1);
    }
    check_attention(1, 197, 2, 64, 0, 3);
    check_attention(3, 77, 2, 64, 1, 2);
}
END_TEST

/* Fewer (batch, head) pairs than threads: the query rows are split into blocks handed out apart
 * (2 pairs on 8 threads: 3 blocks of N = 100), with the same bits as one thread doing whole pairs. */
START_TEST(test_attention_query_blocks) {
    enum { B = 1, N = 100, H = 2, d = 16, D = H * d };
    float *qkv = randv((size_t)B * N * 3 * D), *one = malloc(sizeof(float) * B * N * D);
    float *many = malloc(sizeof(float) * B * N * D);
    for (int causal = 0; causal < 2; causal++) {
        float *scr = malloc(sizeof(float) * eva_ref_attention_scratch_floats(N, d, 8));
        eva_ref_attention(one, scr, qkv, qkv + D, qkv + 2 * D, B, N, H, d, 3 * D, 3 * D, 3 * D, causal, 1);
        eva_ref_attention(many, scr, qkv, qkv + D, qkv + 2 * D, B, N, H, d, 3 * D, 3 * D, 3 * D, causal, 8);
        ck_assert_msg(memcmp(one, many, sizeof(float) * B * N * D) == 0, "query blocks change the result (causal %d)",
                      causal);
        free(scr);
    }
    check_attention(1, 100, 2, 16, 1, 8);
    free(qkv), free(one), free(many);
}
END_TEST

START_TEST(test_attention_closed_forms) {
    /* one key: softmax = 1, output = v exactly */
    float q[4] = {5, -1, 2, 7}, k[4] = {1, 2, 3, 4}, v[4] = {0.25f, -3, 9, 1.5f}, out[4];
    float *scr = malloc(sizeof(float) * eva_ref_attention_scratch_floats(1, 2, 1));
    eva_ref_attention(out, scr, q, k, v, 1, 1, 2, 2, 4, 4, 4, false, 1);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], v[i]);
    free(scr);
    /* equal keys: uniform weights, output = mean of v; causal: row i = mean of v[0..i] */
    enum { N = 4, d = 3 };
    float qq[N * d], kk[N * d], vv[N * d], o[N * d];
    for (int i = 0; i < N * d; i++) qq[i] = frand(), kk[i] = (float)(i % d), vv[i] = (float)(i * i % 7);
    scr = malloc(sizeof(float) * eva_ref_attention_scratch_floats(N, d, 1));
    for (int causal = 0; causal < 2; causal++) {
        eva_ref_attention(o, scr, qq, kk, vv, 1, N, 1, d, d, d, d, causal, 1);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < d; c++) {
                int last = causal ? i : N - 1;
                double m = 0;
                for (int j = 0; j <= last; j++) m += vv[j * d + c];
                CLOSE(o[i * d + c], m / (last + 1), 2e-6);
            }
    }
    free(scr);
}
END_TEST

/* ---- RoPE ------------------------------------------------------------------------------------ */

START_TEST(test_rope_spec_values) {
    /* docs/model.md §4.5 test values: L-14-336, G = 24, ref grid 16, head_dim 64 (from the official module) */
    enum { G = 24, d = 64 };
    float *c = malloc(sizeof(float) * G * G * d), *s = malloc(sizeof(float) * G * G * d);
    ck_assert_int_eq(eva_ref_rope_table(c, s, G, 16, d), EVA_OK);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(c[1 * d + i], 1.0f);
    const double c1[4] = {0.78588724, 0.78588724, 0.93054634, 0.93054634};
    const double s1[4] = {0.61836982, 0.61836982, 0.36617410, 0.36617410};
    for (int i = 0; i < 4; i++) {
        CLOSE(c[1 * d + 32 + i], c1[i], 2e-8);
        CLOSE(s[1 * d + 32 + i], s1[i], 2e-8);
        /* row 24 (r = 1, c = 0): the same values in features 0..3, identity in 32..35 */
        CLOSE(c[24 * d + i], c1[i], 2e-8);
        CLOSE(s[24 * d + i], s1[i], 2e-8);
        ck_assert_float_eq(c[24 * d + 32 + i], 1.0f);
        ck_assert_float_eq(s[24 * d + 32 + i], 0.0f);
    }
    CLOSE(c[575 * d + 62], 0.99999630, 1e-8);
    CLOSE(c[575 * d + 63], 0.99999630, 1e-8);
    CLOSE(s[575 * d + 62], 0.0027266915, 1e-9);
    CLOSE(s[575 * d + 63], 0.0027266915, 1e-9);
    free(c), free(s);
    float t1[16], t2[16];
    ck_assert_int_eq(eva_ref_rope_table(t1, t2, 2, 16, 6), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_ref_rope_table(t1, t2, 0, 16, 8), EVA_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_rope_timm) {
    /* Upstream timm 1.0.3 (not our code), golden/.venv:
     *   RotaryEmbeddingCat(dim=24, in_pixels=False, feat_shape=(5,5), ref_feat_shape=(16,16))
     *   .get_embed() -> [25, 48] = [sin | cos]; rows 1, 7 and 24 printed as float32. */
    enum { G = 5, d = 24 };
    static const double sin1[12] = {-0.05837419256567955, -0.05837419256567955, 0.636089026927948, 0.636089026927948,
                                    0.1479852944612503,   0.1479852944612503,   0.0319945402443409, 0.0319945402443409,
                                    0.006894135382026434, 0.006894135382026434, 0.0014853080501779914,
                                    0.0014853080501779914};
    static const double cos1[12] = {-0.9982947707176208, -0.9982947707176208, 0.7716156840324402, 0.7716156840324402,
                                    0.988989531993866,   0.988989531993866,   0.9994880557060242, 0.9994880557060242,
                                    0.9999762177467346,  0.9999762177467346,  0.999998927116394,  0.999998927116394};
    static const double sin7c[12] = {0.1165492981672287,   0.1165492981672287,   0.9816325306892395,
                                     0.9816325306892395,   0.2927118241786957,   0.2927118241786957,
                                     0.06395632028579712,  0.06395632028579712,  0.013787942938506603,
                                     0.013787942938506603, 0.0029706128407269716, 0.0029706128407269716};
    static const double cos7c[12] = {0.9931849241256714, 0.9931849241256714, 0.19078156352043152, 0.19078156352043152,
                                     0.9562007188796997, 0.9562007188796997, 0.9979526996612549,  0.9979526996612549,
                                     0.9999049305915833, 0.9999049305915833, 0.9999955892562866,  0.9999955892562866};
    static const double cos24[6] = {0.9728325009346008, -0.9272047877311707, 0.828639566898346,
                                    0.9918192028999329, 0.9996197819709778,  0.9999823570251465};
    static const double sin24[6] = {0.2315100133419037,  0.37455475330352783, 0.5597825050354004,
                                    0.12765076756477356, 0.02757326513528824, 0.005941199604421854};
    float c[G * G * d], s[G * G * d];
    ck_assert_int_eq(eva_ref_rope_table(c, s, G, 16, d), EVA_OK);
    const double tol = 1.2e-7; /* <= 1 float32 ulp near 1 (sinf/cosf implementations may differ) */
    for (int i = 0; i < 12; i++) {
        /* row 1 = (r 0, c 1): row features identity, column features = sin1/cos1 */
        ck_assert_float_eq(c[1 * d + i], 1.0f);
        ck_assert_float_eq(s[1 * d + i], 0.0f);
        CLOSE(s[1 * d + 12 + i], sin1[i], tol);
        CLOSE(c[1 * d + 12 + i], cos1[i], tol);
        /* row 7 = (r 1, c 2): row features = sin1/cos1, column features = sin7c/cos7c */
        CLOSE(s[7 * d + i], sin1[i], tol);
        CLOSE(c[7 * d + i], cos1[i], tol);
        CLOSE(s[7 * d + 12 + i], sin7c[i], tol);
        CLOSE(c[7 * d + 12 + i], cos7c[i], tol);
        /* row 24 = (r 4, c 4) */
        CLOSE(c[24 * d + i], cos24[i / 2], tol);
        CLOSE(s[24 * d + 12 + i], sin24[i / 2], tol);
    }
}
END_TEST

START_TEST(test_rope_apply) {
    /* B 2, N 3 (CLS + 2 patches), H 2, d 4, fused stride 10 (extra columns untouched) */
    enum { B = 2, N = 3, H = 2, d = 4, ld = 10 };
    float x[B * N * ld], x0[B * N * ld];
    for (int i = 0; i < B * N * ld; i++) x[i] = x0[i] = frand();
    float C[(N - 1) * d], S[(N - 1) * d];
    for (int t = 0; t < N - 1; t++)
        for (int m = 0; m < d / 2; m++) {
            double th = 0.3 * (t + 1) + 0.7 * m;
            C[t * d + 2 * m] = C[t * d + 2 * m + 1] = (float)cos(th);
            S[t * d + 2 * m] = S[t * d + 2 * m + 1] = (float)sin(th);
        }
    eva_ref_rope_apply(x, C, S, B, N, H, d, ld);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++)
            for (int col = 0; col < ld; col++) {
                int i = (b * N + n) * ld + col;
                if (n == 0 || col >= H * d) {
                    ck_assert_float_eq(x[i], x0[i]); /* CLS and columns past H*d unrotated */
                    continue;
                }
                int h = col / d, m = (col % d) / 2, t = n - 1;
                double th = 0.3 * (t + 1) + 0.7 * m;
                double a = x0[(b * N + n) * ld + h * d + 2 * m], bb = x0[(b * N + n) * ld + h * d + 2 * m + 1];
                double want = (col % 2 == 0) ? a * cos(th) - bb * sin(th) : bb * cos(th) + a * sin(th);
                CLOSE(x[i], want, 1e-6);
            }
}
END_TEST

/* ---- embeddings and outputs ------------------------------------------------------------------- */

START_TEST(test_patch_embed) {
    enum { B = 2, S = 6, P = 3, D = 5, G = S / P, K = 3 * P * P };
    float *px = randv(B * 3 * S * S), *w = randv(D * K), *bias = randv(D);
    float out[B * G * G * D];
    float *scr = malloc(sizeof(float) * eva_ref_patch_embed_scratch_floats(B, S, P));
    ck_assert_int_eq(eva_ref_patch_embed_scratch_floats(B, S, P), B * G * G * K);
    eva_ref_patch_embed(out, scr, px, w, bias, B, S, P, D);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < G; r++)
            for (int c = 0; c < G; c++)
                for (int o = 0; o < D; o++) { /* Conv2d(3, D, P, stride P) */
                    double s = bias[o];
                    for (int ch = 0; ch < 3; ch++)
                        for (int i = 0; i < P; i++)
                            for (int j = 0; j < P; j++)
                                s += (double)w[((o * 3 + ch) * P + i) * P + j] *
                                     px[((b * 3 + ch) * S + r * P + i) * S + c * P + j];
                    CLOSE(out[((b * G + r) * G + c) * D + o], s, 1e-6);
                }
    free(px), free(w), free(bias), free(scr);
}
END_TEST

START_TEST(test_embeddings_outputs) {
    float patches[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, cls[3] = {-1, -2, -3};
    float pos[3 * 3] = {0.5f, 0.5f, 0.5f, 1, 1, 1, 2, 2, 2}, x[2 * 3 * 3];
    eva_ref_cls_pos(x, patches, cls, pos, 2, 3, 3);
    ck_assert_float_eq(x[0], -0.5f);
    ck_assert_float_eq(x[3], 2.0f);
    ck_assert_float_eq(x[8], 8.0f);
    ck_assert_float_eq(x[9], -0.5f);
    ck_assert_float_eq(x[17], 14.0f);

    float table[4 * 2] = {0, 1, 10, 11, 20, 21, 30, 31}, e[2 * 3 * 2];
    int32_t ids[2 * 3] = {3, 0, 3, 1, 2, 2};
    eva_ref_embedding(e, ids, table, 2, 3, 2);
    ck_assert_float_eq(e[0], 30.0f);
    ck_assert_float_eq(e[3], 1.0f);
    ck_assert_float_eq(e[11], 21.0f);
    int pos_max[2];
    eva_ref_argmax_ids(pos_max, ids, 2, 3);
    ck_assert_int_eq(pos_max[0], 0); /* first maximum */
    ck_assert_int_eq(pos_max[1], 1);

    float P[2 * 3] = {1, 0, 2, 0, 1, -1}, xp[2 * 2] = {3, 4, -1, 0.5f}, pr[2 * 3];
    eva_ref_matmul_proj(pr, xp, P, 2, 2, 3); /* x . P, P stored [W,E] */
    ck_assert_float_eq(pr[0], 3.0f);
    ck_assert_float_eq(pr[1], 4.0f);
    ck_assert_float_eq(pr[2], 2.0f);
    ck_assert_float_eq(pr[5], -2.5f);

    float v[2 * 2] = {3, 4, 0, 0}, n[4];
    eva_ref_l2_normalize(n, v, 2, 2);
    CLOSE(n[0], 0.6, 1e-7);
    CLOSE(n[1], 0.8, 1e-7);
    ck_assert_float_eq(n[2], 0.0f);
    float img[2] = {0.6f, 0.8f}, txt[2 * 2] = {1, 0, 0.6f, 0.8f}, lg[2];
    eva_ref_logits(lg, img, txt, 1, 2, 2, 100.0f);
    CLOSE(lg[0], 60.0, 1e-4);
    CLOSE(lg[1], 100.0, 1e-4);
}
END_TEST

/* ---- the vectorised ops on every instruction set ------------------------------------------- */

/* The row and pointwise ops against double loops written here with libm (exp, sqrt): within one
 * float rounding of the double result (2^-24 relative, plus a little for the statistics), on
 * rows whose length leaves a tail after the 8-lane blocks, and values from tiny to large. */
static void check_ops_vs_libm(void) {
    static const int widths[] = {1, 7, 13, 64, 77, 771};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const int M = 3, C = widths[wi];
        float *x = randv((size_t)M * C), *w = randv(C), *b = randv(C), *y = malloc(sizeof(float) * M * C);
        for (int i = 0; i < M * C; i++) x[i] = x[i] * 30.0f + 5.0f; /* offset mean, wide range */
        eva_ref_layernorm(y, x, w, b, M, C, 1e-6);
        for (int r = 0; r < M; r++) {
            double mean = 0, var = 0;
            for (int c = 0; c < C; c++) mean += x[r * C + c];
            mean /= C;
            for (int c = 0; c < C; c++) var += (x[r * C + c] - mean) * (x[r * C + c] - mean);
            var /= C;
            for (int c = 0; c < C; c++) {
                double want = (x[r * C + c] - mean) / sqrt(var + 1e-6) * w[c] + b[c];
                CLOSE(y[r * C + c], want, 1.2e-7 * fabs(want) + 1e-12 * (fabs(w[c]) + 1));
            }
        }
        eva_ref_rmsnorm(y, x, w, M, C, 1e-6);
        for (int r = 0; r < M; r++) {
            double ss = 0;
            for (int c = 0; c < C; c++) ss += (double)x[r * C + c] * x[r * C + c];
            for (int c = 0; c < C; c++) {
                double want = x[r * C + c] / sqrt(ss / C + 1e-6) * w[c];
                CLOSE(y[r * C + c], want, 1.2e-7 * fabs(want) + 1e-30);
            }
        }
        eva_ref_softmax(y, x, M, C);
        for (int r = 0; r < M; r++) {
            double mx = -INFINITY, sum = 0;
            for (int c = 0; c < C; c++) mx = x[r * C + c] > mx ? x[r * C + c] : mx;
            for (int c = 0; c < C; c++) sum += exp(x[r * C + c] - mx);
            for (int c = 0; c < C; c++) {
                double want = exp(x[r * C + c] - mx) / sum;
                CLOSE(y[r * C + c], want, 1.2e-7 * want + 1e-45);
            }
        }
        eva_ref_gelu(y, x, (int64_t)M * C);
        for (int i = 0; i < M * C; i++) {
            /* erfc(-t / sqrt 2) = 1 + erf(t / sqrt 2) without its cancellation for negative t */
            double t = x[i], want = 0.5 * t * erfc(-t * 0.70710678118654752440);
            CLOSE(y[i], want, 6e-8 * fabs(want) + 0x1p-126); /* below 2^-126: flushed to zero */
        }
        float *a = randv((size_t)M * C);
        eva_ref_swiglu(y, x, a, (int64_t)M * C);
        for (int i = 0; i < M * C; i++) {
            double t = x[i], want = t / (1.0 + exp(-t)) * a[i];
            CLOSE(y[i], want, 6e-8 * fabs(want) + 1e-45);
        }
        free(x), free(w), free(b), free(y), free(a);
    }
    /* SwiGLU over the whole range of exp, including where it overflows or underflows */
    float g[8] = {-1000.0f, -745.0f, -100.0f, -20.0f, -1e-30f, 0.0f, 88.0f, 1000.0f}, a[8], z[8];
    for (int i = 0; i < 8; i++) a[i] = 1.0f;
    eva_ref_swiglu(z, g, a, 8);
    for (int i = 0; i < 8; i++) {
        double want = (double)g[i] / (1.0 + exp(-(double)g[i]));
        CLOSE(z[i], want, 6e-8 * fabs(want) + 1e-45);
    }
}

/* Runs every row/pointwise op and attention on the same data; results appended to `out`. */
static size_t run_vector_ops(float *out, const float *x, const float *w, const float *b, const float *qkv) {
    enum { M = 5, C = 771 };
    size_t o = 0;
    eva_ref_layernorm(out + o, x, w, b, M, C, 1e-5), o += M * C;
    eva_ref_layernorm(out + o, x, w, NULL, M, C, 1e-5), o += M * C;
    eva_ref_rmsnorm(out + o, x, w, M, C, 1e-6), o += M * C;
    eva_ref_softmax(out + o, x, M, C), o += M * C;
    eva_ref_swiglu(out + o, x, x + C, (int64_t)(M - 1) * C), o += (size_t)(M - 1) * C;
    eva_ref_gelu(out + o, x, (int64_t)M * C), o += (size_t)M * C;
    eva_ref_add(out + o, x, x + 1, (int64_t)(M - 1) * C), o += (size_t)(M - 1) * C;
    eva_ref_expf(out + o, x, (int64_t)M * C), o += (size_t)M * C;
    const int B = 2, N = 37, H = 3, d = 24, D = H * d;
    float *scr = malloc(sizeof(float) * eva_ref_attention_scratch_floats(N, d, 2));
    eva_ref_attention(out + o, scr, qkv, qkv + D, qkv + 2 * D, B, N, H, d, 3 * D, 3 * D, 3 * D, false, 2);
    o += (size_t)B * N * D;
    eva_ref_attention(out + o, scr, qkv, qkv + D, qkv + 2 * D, B, N, H, d, 3 * D, 3 * D, 3 * D, true, 1);
    o += (size_t)B * N * D;
    free(scr);
    return o;
}

/* GELU on a sweep of x over [-14, 14] (steps of 1e-4, every float region of both pieces and the
 * cut-offs): within one rounding of x * erfc(-x / sqrt 2) / 2 (libm, double), zero of x's sign
 * where that is below 2^-126, and the count of results that are not the correctly rounded float
 * printed (last-bit ties only). */
START_TEST(test_gelu_sweep) {
    enum { N = 280001 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = (float)(-14.0 + 1e-4 * i);
    eva_ref_gelu(y, x, N);
    int off = 0;
    for (int i = 0; i < N; i++) {
        const double t = x[i], want = 0.5 * t * erfc(-t * 0.70710678118654752440);
        if (fabs(want) < 0x1p-126) { /* flushed to a zero of x's sign */
            ck_assert_msg(y[i] == 0.0f && signbit(y[i]) == signbit(x[i]), "gelu(%.9g) = %.9g, not flushed", x[i],
                          y[i]);
            continue;
        }
        CLOSE(y[i], want, 6e-8 * fabs(want) + 1e-45);
        off += y[i] != (float)want;
    }
    printf("op_ref: gelu: %d of %d sweep values differ from the correctly rounded float by one ulp\n", off, N);
    ck_assert_int_le(off, N / 10000);
    free(x), free(y);
}
END_TEST

/* The attention softmax's float exp: within 1 ulp of e^x (libm's double exp) on a sweep of float
 * bit patterns over [-104, 88.5] (every 61st), e^0 = 1 exactly, 0 below the smallest normal
 * float, NaN kept; the same on every instruction set (test_ops_every_isa). */
START_TEST(test_expf) {
    enum { CHUNK = 4096 };
    float x[CHUNK], y[CHUNK];
    double worst = 0.0;
    float worst_x = 0.0f;
    int64_t checked = 0;
    for (int sign = 0; sign < 2; sign++) {
        const uint32_t top = sign ? 0xC2D00000u : 0x42B10000u; /* -104 : 88.5 */
        const uint32_t base = sign ? 0x80000000u : 0u;
        for (uint32_t b = base; b <= top;) {
            int n = 0;
            for (; n < CHUNK && b <= top; n++, b += 61) memcpy(&x[n], &b, sizeof b);
            eva_ref_expf(y, x, n);
            for (int i = 0; i < n; i++) {
                const double want = exp((double)x[i]);
                if (want < 0x1p-126 * (1 + 0x1p-22)) { /* below the normal range: flushed to 0 */
                    ck_assert_msg(y[i] == 0.0f || fabs(y[i] - want) <= 0x1p-149 + want * 0x1p-23,
                                  "expf(%.9g) = %.9g, want %.9g", x[i], y[i], want);
                    ck_assert_msg(want >= 0x1p-126 || y[i] == 0.0f, "expf(%.9g) = %.9g is not flushed", x[i], y[i]);
                    continue;
                }
                const double ulp = ldexp(1.0, ilogb(want) - 23), err = fabs(y[i] - want) / ulp;
                if (err > worst) worst = err, worst_x = x[i];
                checked++;
            }
        }
    }
    printf("op_ref: expf within %.3f ulp over %lld values (worst at x = %.9g)\n", worst, (long long)checked,
           worst_x);
    ck_assert_msg(worst <= 1.0, "expf error %.3f ulp at x = %.9g", worst, worst_x);
    float edge_x[5] = {0.0f, -200.0f, -INFINITY, NAN, 1.0f}, edge_y[5];
    eva_ref_expf(edge_y, edge_x, 5);
    ck_assert(edge_y[0] == 1.0f && edge_y[1] == 0.0f && edge_y[2] == 0.0f && isnan(edge_y[3]));
    ck_assert(fabs(edge_y[4] - 2.718281828) < 3e-7);
}
END_TEST

/* The ops follow the SGEMM kernel's instruction set; every variant gives the portable bits, and
 * each is within one rounding of the libm loops. */
START_TEST(test_ops_every_isa) {
    static const char *const kernels[] = {"portable", "avx2", "avx512", "neon"};
    enum { M = 5, C = 771 };
    float *x = randv((size_t)M * C), *w = randv(C), *b = randv(C), *qkv = randv((size_t)2 * 37 * 3 * 72);
    for (int i = 0; i < M * C; i++) x[i] *= 8.0f;
    const size_t cap = (size_t)10 * M * C + 4 * 37 * 72;
    float *want = malloc(sizeof(float) * cap), *got = malloc(sizeof(float) * cap);
    ck_assert_int_eq(eva_gemm_set_kernel("portable"), EVA_OK);
    size_t n = run_vector_ops(want, x, w, b, qkv);
    ck_assert(n <= cap);
    check_ops_vs_libm();
    int ran = 0;
    for (size_t k = 1; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!eva_gemm_kernel_available(kernels[k])) continue;
        ck_assert_int_eq(eva_gemm_set_kernel(kernels[k]), EVA_OK);
        memset(got, 0, sizeof(float) * cap);
        run_vector_ops(got, x, w, b, qkv);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(memcmp(&want[i], &got[i], sizeof(float)) == 0, "ops with %s differ from portable at %zu: %.9g vs %.9g",
                          kernels[k], i, got[i], want[i]);
        check_ops_vs_libm();
        ran++;
    }
    printf("op_ref: vector ops checked on portable and %d other instruction set(s)\n", ran);
    ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
    free(x), free(w), free(b), free(qkv), free(want), free(got);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("ref_ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_linear_shapes);
    tcase_add_test(tc, test_linear_exact);
    tcase_add_test(tc, test_layernorm);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_gelu_swiglu);
    tcase_add_test(tc, test_softmax_add);
    tcase_add_test(tc, test_attention_naive);
    tcase_add_test(tc, test_attention_query_blocks);
    tcase_add_test(tc, test_attention_closed_forms);
    tcase_add_test(tc, test_rope_spec_values);
    tcase_add_test(tc, test_rope_timm);
    tcase_add_test(tc, test_rope_apply);
    tcase_add_test(tc, test_patch_embed);
    tcase_add_test(tc, test_embeddings_outputs);
    tcase_add_test(tc, test_gelu_sweep);
    tcase_add_test(tc, test_expf);
    tcase_add_test(tc, test_ops_every_isa);
    suite_add_tcase(s, tc);
        return s;
}
