/* cuda_common.cuh: device helpers shared by the kernels (C++; included by .cu files only).
 *
 * Owns: loading/storing the three activation types as fp32 (ld/st), dispatch of a launcher over
 * the run's dtype (EVA_CU_DISPATCH), a deterministic block-wide sum (fixed tree order, no atomics)
 * and grid sizing. Does not own any op.
 */
#ifndef EVA_CUDA_COMMON_CUH
#define EVA_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* the ref/ headers are C without extern "C" guards: include them all here, with C linkage, before
 * anything else can include them with C++ linkage */
extern "C" {
#include "eva_config.h"
#include "eva_status.h"
#include "eva_tap.h"
#include "eva_tensors.h"
#include "eva_weights.h"
#include "ref_ops.h"
}

#include "cuda_check.h"
#include "eva_cuda_ops.h"

namespace eva {

__device__ __forceinline__ float ld(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float ld(const __half *p, long long i) { return __half2float(p[i]); }
__device__ __forceinline__ void st(float *p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st(__half *p, long long i, float v) { p[i] = __float2half_rn(v); }

/* Sum over the block (blockDim.x a multiple of 32, <= 1024) in a fixed order; every thread gets
 * the result. `sh` holds 32 doubles. */
__device__ __forceinline__ double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0.0;
    if (warp == 0) {
        t = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0) sh[0] = t;
    }
    __syncthreads();
    return sh[0];
}

static inline unsigned grid_for(long long n, int threads) {
    long long g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > 1048576LL) g = 1048576LL; /* kernels use grid-stride loops */
    return (unsigned)g;
}

} // namespace eva

/* Calls FN<T>(args...) with T the C++ type of an eva_cu_dtype value. */
#define EVA_CU_DISPATCH(dt, FN, ...)                                                                      \
    ((dt) == EVA_CU_BF16  ? FN<__nv_bfloat16>(__VA_ARGS__)                                                \
     : (dt) == EVA_CU_F16 ? FN<__half>(__VA_ARGS__)                                                       \
                          : FN<float>(__VA_ARGS__))

#endif
