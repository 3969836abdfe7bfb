/* ref_ops.c: the reference ops of ref_ops.h (and the l2-normalise / logits ops of ref_model.h).
 *
 * Owns the arithmetic only: no op ordering, no workspace of its own (the SGEMM behind linear and
 * attention allocates its packing buffers, a few MiB at most). The performance-sensitive ops
 * are eva_ref_linear, which is the reference SGEMM of ref_gemm.c (packed token panels, cache-
 * blocked weights, OpenMP over output tiles, float chains of at most 64 products folded into
 * double), and eva_ref_attention, which runs both products of each (batch, head) pair through
 * the same SGEMM on one thread each (score chains of 16 products) with a one-exp softmax.
 */
#include "ref_ops.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_gemm.h"
#include "ref_model.h"

#ifdef EVA_HAVE_OPENMP
#include <omp.h>
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

void eva_ref_linear(float *out, const float *x, const float *w, const float *bias, int M, int C, int K) {
    /* the reference SGEMM (ref_gemm.h): packed, cache-blocked, OpenMP over output tiles; float
     * chains of at most EVA_GEMM_KC (64) products, folded into double, bias added in double */
    eva_gemm_nt(out, x, w, bias, M, C, K, K, K, C, 0);
}

void eva_ref_linear_w(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K) {
    eva_gemm_nt_w(out, x, w, bias, M, C, K, K, K, C, 0);
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
    /* Per (batch, head) pair on one thread: S = (q * scale) . k^T and O = P . V with the reference
     * SGEMM (serial entry; one packing allocation per call; if that fails the SGEMM computes the
     * same sums by plain loops), scores in float chains of 16 products folded into double, the
     * softmax in between with one expf per score and the row sum in double. k is read in place;
     * q is scaled into qs; v is transposed into vt (the SGEMM's weight side is row-major over the
     * inner dim); O is written straight into its columns of out. */
    const float scale = (float)(1.0 / sqrt((double)d));
    const int D = H * d;
    const int pairs = B * H;
    if (threads < 1) threads = 1;
    int64_t gs = eva_gemm_scratch_floats(N, d), gs2 = eva_gemm_scratch_floats(N, N);
    if (gs2 > gs) gs = gs2;
    float *gemm_scratch = malloc(sizeof(float) * (size_t)gs * (size_t)threads);
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && pairs > 1)
#endif
    for (int p = 0; p < pairs; p++) {
        int b = p / H, h = p % H;
        int tid = thread_id();
        if (tid >= threads) tid = threads - 1; /* cannot happen with num_threads(threads) */
        float *qs = scratch + attn_thread_floats(N, d) * tid;
        float *vt = qs + (size_t)N * d, *s = vt + 3 * (size_t)N * d;
        float *gsc = gemm_scratch ? gemm_scratch + (size_t)gs * tid : NULL;
        const float *kh = k + (size_t)b * N * ldk + (size_t)h * d;
        float *oh = out + (size_t)b * N * D + (size_t)h * d;
        for (int n = 0; n < N; n++) {
            const float *qr = q + ((size_t)b * N + n) * ldq + (size_t)h * d;
            for (int c = 0; c < d; c++) qs[(size_t)n * d + c] = qr[c] * scale;
        }
        for (int n0 = 0; n0 < N; n0 += 16) /* vt = v^T in 16-token strips (cache-friendly) */
            for (int c = 0; c < d; c++)
                for (int n = n0; n < n0 + 16 && n < N; n++)
                    vt[(size_t)c * N + n] = v[((size_t)b * N + n) * ldv + (size_t)h * d + c];
        eva_gemm_nt_serial(s, gsc, qs, kh, NULL, N, N, d, d, ldk, N, 16); /* S = qs . k^T */
        for (int n = 0; n < N; n++) {
            float *sr = s + (size_t)n * N;
            int len = causal ? n + 1 : N; /* masked scores are exactly 0 after the softmax */
            float mx = sr[0];
#ifdef EVA_HAVE_OPENMP
#pragma omp simd reduction(max : mx)
#endif
            for (int m = 1; m < len; m++) mx = sr[m] > mx ? sr[m] : mx;
            for (int m = 0; m < len; m++) sr[m] = expf(sr[m] - mx);
            double sum = 0.0;
#ifdef EVA_HAVE_OPENMP
#pragma omp simd reduction(+ : sum)
#endif
            for (int m = 0; m < len; m++) sum += sr[m];
            const double inv = 1.0 / sum;
            for (int m = 0; m < len; m++) sr[m] = (float)(sr[m] * inv);
            for (int m = len; m < N; m++) sr[m] = 0.0f;
        }
        eva_gemm_nt_serial(oh, gsc, s, vt, NULL, N, d, N, N, N, D, 0); /* O = P . vt^T, into out */
    }
    free(gemm_scratch);
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
    const eva_wmat t = {table, EVA_DT_F32};
    eva_ref_embedding_w(out, ids, t, T, L, W);
}

void eva_ref_embedding_w(float *out, const int32_t *ids, eva_wmat table, int T, int L, int W) {
    for (int64_t i = 0; i < (int64_t)T * L; i++)
        eva_widen(out + i * W, table.data, table.dtype, (size_t)ids[i] * W, (size_t)W);
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
