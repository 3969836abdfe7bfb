/* norm.cu: the fused residual-add + LayerNorm/RMSNorm kernel (eva_cu_norm), all three modes of
 * eva_cuda_ops.h. One thread block per row; two-pass statistics (mean, then centred variance)
 * accumulated in double with a fixed-order block reduction, so results are deterministic and the
 * post-norm families' large residual streams keep their precision. Each thread touches the same
 * columns in every pass, so in-place use needs no extra barrier. Rows up to 8 x threads wide (every
 * EVA width) are read once into registers; wider rows are re-read for each pass (same results).
 * CPU twins: eva_ref_layernorm, eva_ref_rmsnorm, eva_ref_add (ref/ref_ops.h).
 */
#include "cuda_common.cuh"

#define NORM_PT 8 /* values per thread kept in registers: rows up to 8 x blockDim.x wide */

/* The same arithmetic in the same order as the loops of norm_kernel, with the row read once into
 * registers (one read of the input, one write of each output). */
template <typename T>
__device__ __forceinline__ void norm_row_cached(float *xr, const T *ar, T *ur, T *xcr, const float *w, const float *b,
                                                int C, double eps, int rms, int mode, double *sh) {
    float v[NORM_PT];
    double s = 0.0;
#pragma unroll
    for (int i = 0; i < NORM_PT; i++) {
        const int c = threadIdx.x + i * blockDim.x;
        v[i] = 0.0f;
        if (c >= C) continue;
        if (mode == EVA_CU_NORM_PRE) {
            v[i] = xr[c];
            if (ar) {
                v[i] += eva::ld(ar, c);
                xr[c] = v[i];
            }
        } else {
            v[i] = eva::ld(ar, c);
        }
        s += rms ? (double)v[i] * v[i] : (double)v[i];
    }
    s = eva::block_sum(s, sh);
    double mean = 0.0, var;
    if (rms) {
        var = s / C;
    } else {
        mean = s / C;
        double q = 0.0;
#pragma unroll
        for (int i = 0; i < NORM_PT; i++)
            if (threadIdx.x + i * blockDim.x < C) q += ((double)v[i] - mean) * ((double)v[i] - mean);
        var = eva::block_sum(q, sh) / C;
    }
    const double rstd = 1.0 / sqrt(var + eps);
#pragma unroll
    for (int i = 0; i < NORM_PT; i++) {
        const int c = threadIdx.x + i * blockDim.x;
        if (c >= C) continue;
        float y = (float)(((double)v[i] - mean) * rstd * (double)w[c] + (b ? (double)b[c] : 0.0));
        if (mode == EVA_CU_NORM_POST) {
            float xn = xr[c] + y;
            xr[c] = xn;
            if (xcr) eva::st(xcr, c, xn);
        }
        if (ur) eva::st(ur, c, y);
    }
}

template <typename T>
__global__ void norm_kernel(float *x, const T *a, T *u, T *xc, const float *w, const float *b, int C, long long ld,
                            double eps, int rms, int mode) {
    __shared__ double sh[32];
    const long long row = blockIdx.x;
    float *xr = x ? x + row * ld : nullptr;
    const T *ar = a ? a + row * ld : nullptr;
    T *ur = u ? u + row * ld : nullptr;
    T *xcr = xc ? xc + row * ld : nullptr;
    if (C <= NORM_PT * (int)blockDim.x) { /* block-uniform: the row stays in registers */
        norm_row_cached<T>(xr, ar, ur, xcr, w, b, C, eps, rms, mode, sh);
        return;
    }
    /* pass 1: the input v (and the residual add of the pre-norm mode), sum of v */
    double s = 0.0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v;
        if (mode == EVA_CU_NORM_PRE) {
            v = xr[c];
            if (ar) {
                v += eva::ld(ar, c);
                xr[c] = v;
            }
        } else {
            v = eva::ld(ar, c);
        }
        s += rms ? (double)v * v : (double)v;
    }
    s = eva::block_sum(s, sh);
    double mean = 0.0, var;
    if (rms) {
        var = s / C;
    } else {
        mean = s / C;
        double q = 0.0;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            double v = mode == EVA_CU_NORM_PRE ? (double)xr[c] : (double)eva::ld(ar, c);
            q += (v - mean) * (v - mean);
        }
        var = eva::block_sum(q, sh) / C;
    }
    const double rstd = 1.0 / sqrt(var + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double v = mode == EVA_CU_NORM_PRE ? (double)xr[c] : (double)eva::ld(ar, c);
        float y = (float)((v - mean) * rstd * (double)w[c] + (b ? (double)b[c] : 0.0));
        if (mode == EVA_CU_NORM_POST) {
            float xn = xr[c] + y;
            xr[c] = xn;
            if (xcr) eva::st(xcr, c, xn);
        }
        if (ur) eva::st(ur, c, y);
    }
}

template <typename T>
static void launch_norm(float *x, const void *a, void *u, void *xc, const float *w, const float *b, int M, int C,
                        int ld, double eps, int rms, int mode, cudaStream_t s) {
    int threads = C >= 1024 ? 512 : C >= 256 ? 256 : 128;
    norm_kernel<T><<<(unsigned)M, threads, 0, s>>>(x, (const T *)a, (T *)u, (T *)xc, w, b, C, ld, eps, rms, mode);
}

extern "C" eva_status eva_cu_norm(float *x, const void *a, void *u, void *xc, const float *w, const float *b, int M,
                                  int C, int ld, double eps, int rms, eva_cu_norm_mode mode, eva_cu_dtype t,
                                  void *stream) {
    if (M <= 0) return EVA_OK;
    if (C <= 0 || ld < C || !w) return eva_fail(EVA_ERR_INVALID_ARG, "norm: bad arguments (C %d, ld %d)", C, ld);
    if ((mode == EVA_CU_NORM_PRE && !x) || (mode != EVA_CU_NORM_PRE && !a) || (mode == EVA_CU_NORM_POST && !x) ||
        (mode != EVA_CU_NORM_POST && !u))
        return eva_fail(EVA_ERR_INVALID_ARG, "norm: a buffer the mode needs is NULL");
    EVA_CU_DISPATCH(t, launch_norm, x, a, u, xc, w, b, M, C, ld, eps, rms, (int)mode, (cudaStream_t)stream);
    EVA_CU_LAUNCHED_ON(rms ? "rmsnorm" : "layernorm", stream);
    return EVA_OK;
}
