/* elementwise.cu: the memory-bound ops between GEMMs: exact GELU, SwiGLU gate + sub-LayerNorm,
 * RoPE on q and k in one pass, im2col for the patch-embedding GEMM, CLS + position embedding,
 * text embedding lookup, row gather for argmax-EOT pooling.
 * fp32 runs compute transcendental functions in double (like the CPU twins); 16-bit runs in
 * float, whose error is far below one 16-bit rounding. CPU twins: eva_ref_gelu, eva_ref_swiglu
 * (+ eva_ref_layernorm), eva_ref_rope_apply, eva_ref_patch_embed (im2col part), eva_ref_cls_pos,
 * eva_ref_embedding (+ eva_ref_add), eva_ref_argmax_ids (pooling) in ref/ref_ops.h.
 */
#include "cuda_common.cuh"

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

template <typename T>
__device__ __forceinline__ float gelu_f(float x) {
    if (sizeof(T) == 4) {
        double t = x;
        return (float)(0.5 * t * (1.0 + erf(t * 0.70710678118654752440)));
    }
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

template <typename T>
__device__ __forceinline__ float silu_mul(float g, float a) {
    if (sizeof(T) == 4) {
        double t = g;
        return (float)(t / (1.0 + exp(-t)) * (double)a);
    }
    return g / (1.0f + expf(-g)) * a;
}

/* ---- GELU ---------------------------------------------------------------------------------- */
template <typename T>
__global__ void gelu_kernel(T *y, long long n) {
    GRID_STRIDE(i, n) eva::st(y, i, gelu_f<T>(eva::ld(y, i)));
}
template <typename T>
static void launch_gelu(void *y, long long n, cudaStream_t s) {
    gelu_kernel<T><<<eva::grid_for(n, 256), 256, 0, s>>>((T *)y, n);
}
extern "C" eva_status eva_cu_gelu(void *y, int64_t n, eva_cu_dtype t, void *stream) {
    if (n <= 0) return EVA_OK;
    EVA_CU_DISPATCH(t, launch_gelu, y, (long long)n, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("gelu", stream);
    return EVA_OK;
}

/* ---- SwiGLU + sub-LayerNorm: one block per row ----------------------------------------------
 * Rows up to SWIGLU_PT * blockDim.x wide keep their values in registers, so z is written once
 * (the statistics are of the 16-bit-rounded values, as the unfused ops would see them); wider
 * rows store z and re-read it for the statistics. Padding columns [F, Fp) of z are set to 0. */
#define SWIGLU_PT 8

template <typename T> __device__ __forceinline__ float round_as(float v) {
    T tmp;
    eva::st(&tmp, 0, v);
    return eva::ld(&tmp, 0);
}

template <typename T>
__global__ void swiglu_ln_kernel(T *z, const T *h, const float *w, const float *b, int F, int Fp, double eps) {
    __shared__ double sh[32];
    const long long row = blockIdx.x;
    const T *hr = h + row * 2LL * Fp;
    T *zr = z + row * (long long)Fp;
    for (int c = F + threadIdx.x; c < Fp; c += blockDim.x) eva::st(zr, c, 0.0f);
    double s = 0.0;
    if (F <= SWIGLU_PT * (int)blockDim.x) { /* block-uniform */
        float v[SWIGLU_PT];
#pragma unroll
        for (int i = 0; i < SWIGLU_PT; i++) {
            const int c = threadIdx.x + i * blockDim.x;
            v[i] = c < F ? round_as<T>(silu_mul<T>(eva::ld(hr, c), eva::ld(hr, Fp + c))) : 0.0f;
            s += (double)v[i];
        }
        if (!w) {
#pragma unroll
            for (int i = 0; i < SWIGLU_PT; i++) {
                const int c = threadIdx.x + i * blockDim.x;
                if (c < F) eva::st(zr, c, v[i]);
            }
            return;
        }
        const double mean = eva::block_sum(s, sh) / F;
        double q = 0.0;
#pragma unroll
        for (int i = 0; i < SWIGLU_PT; i++)
            if (threadIdx.x + i * blockDim.x < F) q += ((double)v[i] - mean) * ((double)v[i] - mean);
        const double rstd = 1.0 / sqrt(eva::block_sum(q, sh) / F + eps);
#pragma unroll
        for (int i = 0; i < SWIGLU_PT; i++) {
            const int c = threadIdx.x + i * blockDim.x;
            if (c < F) eva::st(zr, c, (float)(((double)v[i] - mean) * rstd * (double)w[c] + (b ? (double)b[c] : 0.0)));
        }
        return;
    }
    for (int c = threadIdx.x; c < F; c += blockDim.x) {
        eva::st(zr, c, silu_mul<T>(eva::ld(hr, c), eva::ld(hr, Fp + c)));
        s += (double)eva::ld(zr, c); /* statistics of the stored (rounded) value */
    }
    if (!w) return;
    const double mean = eva::block_sum(s, sh) / F;
    double q = 0.0;
    for (int c = threadIdx.x; c < F; c += blockDim.x) {
        double v = (double)eva::ld(zr, c) - mean;
        q += v * v;
    }
    const double rstd = 1.0 / sqrt(eva::block_sum(q, sh) / F + eps);
    for (int c = threadIdx.x; c < F; c += blockDim.x) {
        double v = (double)eva::ld(zr, c);
        eva::st(zr, c, (float)((v - mean) * rstd * (double)w[c] + (b ? (double)b[c] : 0.0)));
    }
}
template <typename T>
static void launch_swiglu(void *z, const void *h, const float *w, const float *b, int M, int F, int Fp, double eps,
                          cudaStream_t s) {
    int threads = F >= 1024 ? 512 : F >= 256 ? 256 : 128;
    swiglu_ln_kernel<T><<<(unsigned)M, threads, 0, s>>>((T *)z, (const T *)h, w, b, F, Fp, eps);
}
extern "C" eva_status eva_cu_swiglu_ln_padded(void *z, const void *h, const float *ln_w, const float *ln_b, int M,
                                              int F, int Fp, double eps, eva_cu_dtype t, void *stream) {
    if (M <= 0) return EVA_OK;
    if (F <= 0 || Fp < F) return eva_fail(EVA_ERR_INVALID_ARG, "swiglu: F %d, padded width %d", F, Fp);
    EVA_CU_DISPATCH(t, launch_swiglu, z, h, ln_w, ln_b, M, F, Fp, eps, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("swiglu_ln", stream);
    return EVA_OK;
}
extern "C" eva_status eva_cu_swiglu_ln(void *z, const void *h, const float *ln_w, const float *ln_b, int M, int F,
                                       double eps, eva_cu_dtype t, void *stream) {
    return eva_cu_swiglu_ln_padded(z, h, ln_w, ln_b, M, F, F, eps, t, stream);
}

/* ---- RoPE on q and k: one thread per (token, pair) rotates the pair in q and in k ----------- */
template <typename T>
__global__ void rope_qk_kernel(T *qk, const float *ct, const float *stab, int B, int N, int H, int d, long long ld,
                               int koff) {
    const int half = H * d / 2; /* pairs per row of q */
    const long long n = (long long)B * (N - 1) * half;
    GRID_STRIDE(i, n) {
        const int m = (int)(i % half);
        const long long r = i / half; /* patch row over the batch */
        const int t = (int)(r % (N - 1));
        const long long b = r / (N - 1);
        const int e = (2 * m) % d; /* feature within the head */
        const float c0 = ct[(long long)t * d + e], c1 = ct[(long long)t * d + e + 1];
        const float s0 = stab[(long long)t * d + e], s1 = stab[(long long)t * d + e + 1];
        T *row = qk + (b * N + t + 1) * ld;
#pragma unroll
        for (int w = 0; w < 2; w++) {
            T *p = row + (w ? koff : 0) + 2 * m;
            float x0 = eva::ld(p, 0), x1 = eva::ld(p, 1);
            eva::st(p, 0, x0 * c0 - x1 * s0);
            eva::st(p, 1, x1 * c1 + x0 * s1);
        }
    }
}
template <typename T>
static void launch_rope(void *qk, const float *ct, const float *s_, int B, int N, int H, int d, int ld, int koff,
                        cudaStream_t s) {
    long long n = (long long)B * (N - 1) * (H * d / 2);
    rope_qk_kernel<T><<<eva::grid_for(n, 256), 256, 0, s>>>((T *)qk, ct, s_, B, N, H, d, ld, koff);
}
extern "C" eva_status eva_cu_rope_qk(void *qk, const float *cos_t, const float *sin_t, int B, int N, int H, int d,
                                     int ld, int koff, eva_cu_dtype t, void *stream) {
    if (B <= 0 || N <= 1) return EVA_OK;
    if (d <= 0 || d % 2) return eva_fail(EVA_ERR_INVALID_ARG, "rope: head_dim %d must be even", d);
    EVA_CU_DISPATCH(t, launch_rope, qk, cos_t, sin_t, B, N, H, d, ld, koff, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("rope_qk", stream);
    return EVA_OK;
}

/* ---- im2col ------------------------------------------------------------------------------- */
template <typename T>
__global__ void im2col_kernel(T *cols, const float *px, int B, int S, int P) {
    const int G = S / P, K = 3 * P * P;
    const long long n = (long long)B * G * G * K;
    GRID_STRIDE(i, n) {
        const int k = (int)(i % K);
        const long long tok = i / K;
        const int c = (int)(tok % G), r = (int)((tok / G) % G);
        const long long b = tok / ((long long)G * G);
        const int ch = k / (P * P), ii = (k / P) % P, jj = k % P;
        eva::st(cols, i, px[((b * 3 + ch) * S + (long long)r * P + ii) * S + (long long)c * P + jj]);
    }
}
template <typename T>
static void launch_im2col(void *cols, const float *px, int B, int S, int P, cudaStream_t s) {
    long long n = (long long)B * (S / P) * (S / P) * 3 * P * P;
    im2col_kernel<T><<<eva::grid_for(n, 256), 256, 0, s>>>((T *)cols, px, B, S, P);
}
extern "C" eva_status eva_cu_im2col(void *cols, const float *pixels, int B, int S, int P, eva_cu_dtype t,
                                    void *stream) {
    if (B <= 0) return EVA_OK;
    if (P <= 0 || S < P || S % P) return eva_fail(EVA_ERR_INVALID_ARG, "im2col: S %d, P %d", S, P);
    EVA_CU_DISPATCH(t, launch_im2col, cols, pixels, B, S, P, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("im2col", stream);
    return EVA_OK;
}

/* ---- CLS + position embedding -------------------------------------------------------------- */
template <typename T>
__global__ void cls_pos_kernel(float *x, T *xc, const T *patches, const float *cls, const float *pos, int B, int N,
                               int D) {
    const long long n = (long long)B * N * D;
    GRID_STRIDE(i, n) {
        const int c = (int)(i % D);
        const int t = (int)((i / D) % N);
        const long long b = i / ((long long)N * D);
        float v = t == 0 ? cls[c] : eva::ld(patches, (b * (N - 1) + t - 1) * D + c);
        v += pos[(long long)t * D + c];
        x[i] = v;
        if (xc) eva::st(xc, i, v);
    }
}
template <typename T>
static void launch_cls_pos(float *x, void *xc, const void *patches, const float *cls, const float *pos, int B, int N,
                           int D, cudaStream_t s) {
    cls_pos_kernel<T><<<eva::grid_for((long long)B * N * D, 256), 256, 0, s>>>(x, (T *)xc, (const T *)patches, cls,
                                                                                pos, B, N, D);
}
extern "C" eva_status eva_cu_cls_pos(float *x, void *xc, const void *patches, const float *cls, const float *pos,
                                     int B, int N, int D, eva_cu_dtype t, void *stream) {
    if (B <= 0) return EVA_OK;
    EVA_CU_DISPATCH(t, launch_cls_pos, x, xc, patches, cls, pos, B, N, D, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("cls_pos", stream);
    return EVA_OK;
}

/* ---- text embedding ------------------------------------------------------------------------- */
__global__ void embedding_kernel(float *x, const int32_t *ids, const float *table, const float *pos, int T, int L,
                                 int W) {
    const long long n = (long long)T * L * W;
    GRID_STRIDE(i, n) {
        const int c = (int)(i % W);
        const long long tl = i / W;
        float v = table[(long long)ids[tl] * W + c];
        if (pos) v += pos[(tl % L) * W + c];
        x[i] = v;
    }
}
extern "C" eva_status eva_cu_embedding(float *x, const int32_t *ids, const float *table, const float *pos, int T,
                                       int L, int W, void *stream) {
    if (T <= 0) return EVA_OK;
    long long n = (long long)T * L * W;
    embedding_kernel<<<eva::grid_for(n, 256), 256, 0, (cudaStream_t)stream>>>(x, ids, table, pos, T, L, W);
    EVA_CU_LAUNCHED_ON("embedding", stream);
    return EVA_OK;
}

/* ---- row gather (argmax-EOT pooling) ------------------------------------------------------- */
template <typename T>
__global__ void gather_kernel(T *out, const T *u, const int32_t *rows, int T_, int L, int W) {
    const long long n = (long long)T_ * W;
    GRID_STRIDE(i, n) {
        const int c = (int)(i % W);
        const long long t = i / W;
        out[i] = u[(t * L + rows[t]) * W + c];
    }
}
template <typename T>
static void launch_gather(void *out, const void *u, const int32_t *rows, int T_, int L, int W, cudaStream_t s) {
    gather_kernel<T><<<eva::grid_for((long long)T_ * W, 256), 256, 0, s>>>((T *)out, (const T *)u, rows, T_, L, W);
}
extern "C" eva_status eva_cu_gather_rows(void *out, const void *u, const int32_t *rows, int T, int L, int W,
                                         eva_cu_dtype t, void *stream) {
    if (T <= 0) return EVA_OK;
    EVA_CU_DISPATCH(t, launch_gather, out, u, rows, T, L, W, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON("gather_rows", stream);
    return EVA_OK;
}
