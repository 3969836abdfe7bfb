/* ref_ops.c: the reference ops of ref_ops.h (and the l2-normalise / logits ops of ref_model.h).
 *
 * Owns the arithmetic only: no allocation, no op ordering. The one performance-sensitive op is
 * eva_ref_linear: a 3x4 register tile of dot products (x rows against w rows, both contiguous
 * along K), 8-lane float partial sums over K blocks of 512, each block sum folded into a double
 * accumulator, OpenMP over (row chunk, column panel) jobs. An AVX2/FMA path is used when the
 * compiler targets it, a portable lane-array path otherwise; both give the same block structure.
 * A tuned SGEMM may later replace the internals; the signature stays.
 */
#include "ref_ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "ref_model.h"

#ifdef EVA_HAVE_OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EVA_LINEAR_AVX2 1
#endif

int eva_ref_threads(void) {
#ifdef EVA_HAVE_OPENMP
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

static int thread_id(void) {
#ifdef EVA_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- linear ---------------------------------------------------------------------------------- */

#define LIN_KB 512 /* K block: float partial sums over at most 512 products (64 per lane) */
#define LIN_MR 3   /* rows of x per tile */
#define LIN_NR 4   /* rows of w (output columns) per tile */
#define LIN_MB 48  /* rows of x per job (multiple of LIN_MR) */
#define LIN_NB 64  /* rows of w per job (multiple of LIN_NR) */

#ifdef EVA_LINEAR_AVX2
static inline double hsum_pd(__m256 a) {
    __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}
#endif

/* acc[i][j] = sum_k x_i[k] * w_j[k] for a 3x4 tile (rows may repeat: the caller pads edges). */
static void linear_tile(double acc[LIN_MR][LIN_NR], const float *const xr[LIN_MR], const float *const wr[LIN_NR],
                        int K) {
    for (int i = 0; i < LIN_MR; i++)
        for (int j = 0; j < LIN_NR; j++) acc[i][j] = 0.0;
    int kv = K & ~7; /* the 8-lane part; K % 8 products follow in double */
    for (int k0 = 0; k0 < kv; k0 += LIN_KB) {
        int kend = k0 + LIN_KB < kv ? k0 + LIN_KB : kv;
#ifdef EVA_LINEAR_AVX2
        const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2];
        const float *w0 = wr[0], *w1 = wr[1], *w2 = wr[2], *w3 = wr[3];
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
        __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        __m256 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        for (int k = k0; k < kend; k += 8) {
            __m256 X0 = _mm256_loadu_ps(x0 + k), X1 = _mm256_loadu_ps(x1 + k), X2 = _mm256_loadu_ps(x2 + k);
            __m256 W = _mm256_loadu_ps(w0 + k);
            a00 = _mm256_fmadd_ps(X0, W, a00);
            a10 = _mm256_fmadd_ps(X1, W, a10);
            a20 = _mm256_fmadd_ps(X2, W, a20);
            W = _mm256_loadu_ps(w1 + k);
            a01 = _mm256_fmadd_ps(X0, W, a01);
            a11 = _mm256_fmadd_ps(X1, W, a11);
            a21 = _mm256_fmadd_ps(X2, W, a21);
            W = _mm256_loadu_ps(w2 + k);
            a02 = _mm256_fmadd_ps(X0, W, a02);
            a12 = _mm256_fmadd_ps(X1, W, a12);
            a22 = _mm256_fmadd_ps(X2, W, a22);
            W = _mm256_loadu_ps(w3 + k);
            a03 = _mm256_fmadd_ps(X0, W, a03);
            a13 = _mm256_fmadd_ps(X1, W, a13);
            a23 = _mm256_fmadd_ps(X2, W, a23);
        }
        acc[0][0] += hsum_pd(a00); acc[0][1] += hsum_pd(a01); acc[0][2] += hsum_pd(a02); acc[0][3] += hsum_pd(a03);
        acc[1][0] += hsum_pd(a10); acc[1][1] += hsum_pd(a11); acc[1][2] += hsum_pd(a12); acc[1][3] += hsum_pd(a13);
        acc[2][0] += hsum_pd(a20); acc[2][1] += hsum_pd(a21); acc[2][2] += hsum_pd(a22); acc[2][3] += hsum_pd(a23);
#else
        float lane[LIN_MR][LIN_NR][8];
        memset(lane, 0, sizeof lane);
        for (int k = k0; k < kend; k += 8)
            for (int i = 0; i < LIN_MR; i++)
                for (int j = 0; j < LIN_NR; j++)
                    for (int l = 0; l < 8; l++) lane[i][j][l] += xr[i][k + l] * wr[j][k + l];
        for (int i = 0; i < LIN_MR; i++)
            for (int j = 0; j < LIN_NR; j++) {
                double s = 0.0;
                for (int l = 0; l < 8; l++) s += (double)lane[i][j][l];
                acc[i][j] += s;
            }
#endif
    }
    /* tail (K mod 8 products, or all of K < 8) in double */
    for (int i = 0; i < LIN_MR; i++)
        for (int j = 0; j < LIN_NR; j++) {
            double s = 0.0;
            for (int k = kv; k < K; k++) s += (double)xr[i][k] * (double)wr[j][k];
            acc[i][j] += s;
        }
}

void eva_ref_linear(float *out, const float *x, const float *w, const float *bias, int M, int C, int K) {
    if (M <= 0 || C <= 0) return;
    int mjobs = (M + LIN_MB - 1) / LIN_MB, njobs = (C + LIN_NB - 1) / LIN_NB;
    long jobs = (long)mjobs * njobs;
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (jobs > 1 && (double)M * C * K > 1e5)
#endif
    for (long job = 0; job < jobs; job++) {
        int jn = (int)(job % njobs), jm = (int)(job / njobs);
        int m0 = jm * LIN_MB, m1 = m0 + LIN_MB < M ? m0 + LIN_MB : M;
        int n0 = jn * LIN_NB, n1 = n0 + LIN_NB < C ? n0 + LIN_NB : C;
        for (int i0 = m0; i0 < m1; i0 += LIN_MR) {
            const float *xr[LIN_MR];
            int mr = m1 - i0 < LIN_MR ? m1 - i0 : LIN_MR;
            for (int i = 0; i < LIN_MR; i++) xr[i] = x + (size_t)(i0 + (i < mr ? i : 0)) * K;
            for (int j0 = n0; j0 < n1; j0 += LIN_NR) {
                const float *wr[LIN_NR];
                int nr = n1 - j0 < LIN_NR ? n1 - j0 : LIN_NR;
                for (int j = 0; j < LIN_NR; j++) wr[j] = w + (size_t)(j0 + (j < nr ? j : 0)) * K;
                double acc[LIN_MR][LIN_NR];
                linear_tile(acc, xr, wr, K);
                for (int i = 0; i < mr; i++)
                    for (int j = 0; j < nr; j++)
                        out[(size_t)(i0 + i) * C + j0 + j] = (float)(acc[i][j] + (bias ? (double)bias[j0 + j] : 0.0));
            }
        }
    }
}

/* ---- norms and pointwise ops ----------------------------------------------------------------- */

#define ROWS_PAR(M, C) ((double)(M) * (double)(C) > 32768.0)

void eva_ref_layernorm(float *y, const float *x, const float *w, const float *b, int M, int C, double eps) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (ROWS_PAR(M, C))
#endif
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += xr[c];
        mean /= C;
        for (int c = 0; c < C; c++) {
            double t = xr[c] - mean;
            var += t * t;
        }
        var /= C;
        double inv = 1.0 / sqrt(var + eps);
        for (int c = 0; c < C; c++) {
            double t = (xr[c] - mean) * inv * w[c];
            yr[c] = (float)(b ? t + b[c] : t);
        }
    }
}

void eva_ref_rmsnorm(float *y, const float *x, const float *w, int M, int C, double eps) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (ROWS_PAR(M, C))
#endif
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * C;
        float *yr = y + (size_t)r * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        double inv = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) yr[c] = (float)(xr[c] * inv * w[c]);
    }
}

void eva_ref_gelu(float *y, const float *x, int64_t n) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (n > 32768)
#endif
    for (int64_t i = 0; i < n; i++) {
        double t = x[i];
        y[i] = (float)(0.5 * t * (1.0 + erf(t * 0.70710678118654752440)));
    }
}

void eva_ref_swiglu(float *z, const float *g, const float *a, int64_t n) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (n > 32768)
#endif
    for (int64_t i = 0; i < n; i++) {
        double t = g[i];
        z[i] = (float)(t / (1.0 + exp(-t)) * a[i]);
    }
}

static void softmax_row(float *y, const float *x, int C) {
    double mx = -INFINITY;
    for (int c = 0; c < C; c++)
        if (x[c] > mx) mx = x[c];
    double sum = 0.0;
    for (int c = 0; c < C; c++) sum += exp((double)x[c] - mx);
    double inv = 1.0 / sum;
    for (int c = 0; c < C; c++) y[c] = (float)(exp((double)x[c] - mx) * inv);
}

void eva_ref_softmax(float *y, const float *x, int M, int C) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (ROWS_PAR(M, C))
#endif
    for (int r = 0; r < M; r++) softmax_row(y + (size_t)r * C, x + (size_t)r * C, C);
}

void eva_ref_add(float *y, const float *a, const float *b, int64_t n) {
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (n > 65536)
#endif
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* ---- attention ------------------------------------------------------------------------------- */

/* Per thread: qs [N,d], ks [N,d], vt [d,N], s [N,N], os [N,d]. */
static int64_t attn_thread_floats(int N, int d) { return 4 * (int64_t)N * d + (int64_t)N * N; }

int64_t eva_ref_attention_scratch_floats(int N, int d, int threads) {
    if (threads < 1) threads = 1;
    return attn_thread_floats(N, d) * threads;
}

void eva_ref_attention(float *out, float *scratch, const float *q, const float *k, const float *v, int B, int N,
                       int H, int d, int ldq, int ldk, int ldv, bool causal, int threads) {
    const float scale = (float)(1.0 / sqrt((double)d));
    const int D = H * d;
    const int pairs = B * H;
    if (threads < 1) threads = 1;
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && pairs > 1)
#endif
    for (int p = 0; p < pairs; p++) {
        int b = p / H, h = p % H;
        int tid = thread_id();
        if (tid >= threads) tid = threads - 1; /* cannot happen with num_threads(threads) */
        float *qs = scratch + attn_thread_floats(N, d) * tid;
        float *ks = qs + (size_t)N * d, *vt = ks + (size_t)N * d, *os = vt + (size_t)N * d, *s = os + (size_t)N * d;
        for (int n = 0; n < N; n++) {
            const float *qr = q + ((size_t)b * N + n) * ldq + (size_t)h * d;
            const float *kr = k + ((size_t)b * N + n) * ldk + (size_t)h * d;
            const float *vr = v + ((size_t)b * N + n) * ldv + (size_t)h * d;
            for (int c = 0; c < d; c++) {
                qs[(size_t)n * d + c] = qr[c] * scale;
                ks[(size_t)n * d + c] = kr[c];
                vt[(size_t)c * N + n] = vr[c];
            }
        }
        eva_ref_linear(s, qs, ks, NULL, N, N, d);
        for (int n = 0; n < N; n++) {
            float *sr = s + (size_t)n * N;
            if (causal)
                for (int m = n + 1; m < N; m++) sr[m] = -INFINITY;
            softmax_row(sr, sr, N);
        }
        eva_ref_linear(os, s, vt, NULL, N, d, N);
        for (int n = 0; n < N; n++) memcpy(out + ((size_t)b * N + n) * D + (size_t)h * d, os + (size_t)n * d, sizeof(float) * d);
    }
}

/* ---- rotary embedding ------------------------------------------------------------------------ */

eva_status eva_ref_rope_table(float *cos_t, float *sin_t, int G, int ref, int d) {
    if (d <= 0 || d % 4 != 0)
        return eva_fail(EVA_ERR_INVALID_ARG, "rope: head_dim %d is not a positive multiple of 4", d);
    if (G < 1 || ref < 1) return eva_fail(EVA_ERR_INVALID_ARG, "rope: grid %d / reference grid %d must be >= 1", G, ref);
    const int F = d / 4;
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) {
            size_t row = ((size_t)r * G + c) * d;
            float pr = ((float)r / (float)G) * (float)ref; /* t / feat * ref in float32 */
            float pc = ((float)c / (float)G) * (float)ref;
            for (int k = 0; k < F; k++) {
                float e = (float)k / (float)F;            /* timm freq_bands: arange(F) / F in float32 */
                float band = 1.0f / powf(10000.0f, e);    /* 1 / temperature ** exp, float32 */
                float tr = pr * band, tc = pc * band;     /* grid * bands, float32 */
                float cr = (float)cos((double)tr), sr = (float)sin((double)tr);
                float cc = (float)cos((double)tc), sc = (float)sin((double)tc);
                cos_t[row + 2 * k] = cos_t[row + 2 * k + 1] = cr;
                sin_t[row + 2 * k] = sin_t[row + 2 * k + 1] = sr;
                cos_t[row + d / 2 + 2 * k] = cos_t[row + d / 2 + 2 * k + 1] = cc;
                sin_t[row + d / 2 + 2 * k] = sin_t[row + d / 2 + 2 * k + 1] = sc;
            }
        }
    return EVA_OK;
}

void eva_ref_rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int N, int H, int d, int ld) {
    const int rows = B * (N - 1);
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if ((double)rows * H * d > 32768.0)
#endif
    for (int i = 0; i < rows; i++) {
        int b = i / (N - 1), t = i % (N - 1);
        float *xr = x + ((size_t)b * N + t + 1) * ld;
        const float *C = cos_t + (size_t)t * d, *S = sin_t + (size_t)t * d;
        for (int h = 0; h < H; h++) {
            float *xh = xr + (size_t)h * d;
            for (int m = 0; m < d / 2; m++) {
                double x0 = xh[2 * m], x1 = xh[2 * m + 1];
                xh[2 * m] = (float)(x0 * C[2 * m] - x1 * S[2 * m]);
                xh[2 * m + 1] = (float)(x1 * C[2 * m + 1] + x0 * S[2 * m + 1]);
            }
        }
    }
}

/* ---- embeddings ------------------------------------------------------------------------------ */

int64_t eva_ref_patch_embed_scratch_floats(int B, int S, int P) {
    int64_t G = P > 0 ? S / P : 0;
    return (int64_t)B * G * G * 3 * P * P;
}

void eva_ref_patch_embed(float *out, float *scratch, const float *pixels, const float *w, const float *bias, int B,
                         int S, int P, int D) {
    const int G = S / P, K = 3 * P * P;
    const int rows = B * G * G;
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(static) if ((double)rows * K > 65536.0)
#endif
    for (int t = 0; t < rows; t++) {
        int b = t / (G * G), r = (t / G) % G, c = t % G;
        float *col = scratch + (size_t)t * K;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < P; i++)
                memcpy(col + ((size_t)ch * P + i) * P,
                       pixels + (((size_t)b * 3 + ch) * S + (size_t)r * P + i) * S + (size_t)c * P, sizeof(float) * P);
    }
    eva_ref_linear(out, scratch, w, bias, rows, D, K);
}

void eva_ref_cls_pos(float *x, const float *patches, const float *cls, const float *pos, int B, int N, int D) {
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            float *xr = x + ((size_t)b * N + n) * D;
            const float *src = n == 0 ? cls : patches + ((size_t)b * (N - 1) + n - 1) * D;
            const float *pr = pos + (size_t)n * D;
            for (int c = 0; c < D; c++) xr[c] = src[c] + pr[c];
        }
}

void eva_ref_embedding(float *out, const int32_t *ids, const float *table, int T, int L, int W) {
    for (int64_t i = 0; i < (int64_t)T * L; i++) memcpy(out + i * W, table + (size_t)ids[i] * W, sizeof(float) * W);
}

void eva_ref_argmax_ids(int *pos, const int32_t *ids, int T, int L) {
    for (int t = 0; t < T; t++) {
        int best = 0;
        for (int l = 1; l < L; l++)
            if (ids[(size_t)t * L + l] > ids[(size_t)t * L + best]) best = l;
        pos[t] = best;
    }
}

void eva_ref_matmul_proj(float *out, const float *x, const float *P, int M, int W, int E) {
    for (int m = 0; m < M; m++)
        for (int e = 0; e < E; e++) {
            double s = 0.0;
            for (int c = 0; c < W; c++) s += (double)x[(size_t)m * W + c] * P[(size_t)c * E + e];
            out[(size_t)m * E + e] = (float)s;
        }
}

/* ---- outputs (declared in ref_model.h) ------------------------------------------------------- */

void eva_ref_l2_normalize(float *emb, const float *x, int n, int E) {
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int c = 0; c < E; c++) ss += (double)x[(size_t)r * E + c] * x[(size_t)r * E + c];
        double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
        for (int c = 0; c < E; c++) emb[(size_t)r * E + c] = (float)(x[(size_t)r * E + c] * inv);
    }
}

void eva_ref_logits(float *logits, const float *img_emb, const float *txt_emb, int B, int T, int E, float scale) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            double s = 0.0;
            for (int c = 0; c < E; c++) s += (double)img_emb[(size_t)b * E + c] * txt_emb[(size_t)t * E + c];
            logits[(size_t)b * T + t] = (float)(scale * s);
        }
}
