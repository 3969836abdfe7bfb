/* attention.cu: fused multi-head attention core, a tiled online-softmax (flash-style) kernel for
 * every precision and head dim (d <= 256; the EVA head dims 64, 88, 112, 128 and the tiny
 * goldens' 12, 16, 24 included), reading q, k, v straight out of the projection buffer (any row
 * stride, so fused qkv needs no split) and writing the heads concatenated.
 *
 * Design: one block = 4 warps x 4 query rows of one (batch, head); key/value tiles of 32 keys are
 * staged in shared memory as fp32; a lane owns one key for the scores (q is pre-scaled by
 * (float)(1/sqrt(d)) like the reference) and d/32 output features for P.V; the running maximum,
 * sum and accumulators are fp32 and the reductions are warp shuffles in a fixed order
 * (deterministic). Causal rows skip fully masked tiles. Scores never touch device memory.
 * This is CUDA-core arithmetic, not tensor cores: the path of fp32/tf32 and of head dims above 128,
 * and the oracle of the tensor-core kernel (attention_mma.cu), which bf16/fp16 take otherwise.
 * CPU twin: eva_ref_attention (ref/ref_ops.h).
 */
#include <math.h>

#include "cuda_common.cuh"

#define ATT_WARPS 4
#define ATT_RPW 4 /* query rows per warp */
#define ATT_KT 32 /* keys per tile */

template <typename T, int DP>
__global__ void __launch_bounds__(ATT_WARPS * 32) attention_kernel(T *out, const T *q, const T *k, const T *v, int N,
                                                                   int H, int d, long long ld, int causal,
                                                                   float scale) {
    extern __shared__ float smem[];
    float *Ks = smem;                      /* [ATT_KT][DP+1] */
    float *Vs = Ks + ATT_KT * (DP + 1);    /* [ATT_KT][DP] */
    float *Qs = Vs + ATT_KT * DP;          /* [ATT_WARPS*ATT_RPW][DP] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y;
    const long long b = blockIdx.z;
    const int row0 = blockIdx.x * (ATT_WARPS * ATT_RPW);
    const long long base = b * N * ld + (long long)h * d;
    const int D = H * d;

    /* stage this block's q rows (scaled) */
    for (int i = threadIdx.x; i < ATT_WARPS * ATT_RPW * DP; i += blockDim.x) {
        int r = i / DP, j = i % DP, row = row0 + r;
        Qs[i] = (row < N && j < d) ? eva::ld(q, base + row * ld + j) * scale : 0.0f;
    }

    float m[ATT_RPW], l[ATT_RPW], acc[ATT_RPW][DP / 32];
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int t = 0; t < DP / 32; t++) acc[r][t] = 0.0f;
    }
    const int my_row0 = row0 + warp * ATT_RPW;
    int kend = N;
    if (causal) kend = min(N, row0 + ATT_WARPS * ATT_RPW);

    for (int k0 = 0; k0 < kend; k0 += ATT_KT) {
        __syncthreads(); /* previous tile fully consumed (and Qs staged on the first pass) */
        for (int i = threadIdx.x; i < ATT_KT * DP; i += blockDim.x) {
            int kk = i / DP, j = i % DP, key = k0 + kk;
            bool ok = key < N && j < d;
            Ks[kk * (DP + 1) + j] = ok ? eva::ld(k, base + key * ld + j) : 0.0f;
            Vs[kk * DP + j] = ok ? eva::ld(v, base + key * ld + j) : 0.0f;
        }
        __syncthreads();
        const int key = k0 + lane;
        float s[ATT_RPW];
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) s[r] = 0.0f;
        const float *kr = Ks + lane * (DP + 1);
        /* unrolled by 4: with the compiler's default the d = 88 (DP 96) instantiation spilled
         * three accumulators (ptxas -v); 56 registers and no spill this way */
#pragma unroll 4
        for (int j = 0; j < d; j++) {
            float kv = kr[j];
#pragma unroll
            for (int r = 0; r < ATT_RPW; r++) s[r] = fmaf(Qs[(warp * ATT_RPW + r) * DP + j], kv, s[r]);
        }
#pragma unroll
        for (int r = 0; r < ATT_RPW; r++) {
            const int row = my_row0 + r;
            bool valid = key < N && row < N && !(causal && key > row);
            float sv = valid ? s[r] : -INFINITY;
            float mt = sv;
            for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            const float mn = fmaxf(m[r], mt);
            if (mn == -INFINITY) continue; /* nothing visible yet for this row (warp-uniform) */
            const float p = valid ? expf(sv - mn) : 0.0f;
            const float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - mn);
            float ps = p;
            for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
            l[r] = l[r] * corr + ps;
            m[r] = mn;
#pragma unroll
            for (int t = 0; t < DP / 32; t++) acc[r][t] *= corr;
            for (int kk = 0; kk < ATT_KT; kk++) {
                const float pk = __shfl_sync(0xffffffffu, p, kk);
                const float *vr = Vs + kk * DP + lane;
#pragma unroll
                for (int t = 0; t < DP / 32; t++) acc[r][t] = fmaf(pk, vr[32 * t], acc[r][t]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_RPW; r++) {
        const int row = my_row0 + r;
        if (row >= N) continue;
        const float inv = 1.0f / l[r];
        T *o = out + (b * N + row) * (long long)D + (long long)h * d;
#pragma unroll
        for (int t = 0; t < DP / 32; t++) {
            int j = lane + 32 * t;
            if (j < d) eva::st(o, j, acc[r][t] * inv);
        }
    }
}

template <typename T, int DP>
static eva_status launch_dp(void *out, const void *q, const void *k, const void *v, int B, int N, int H, int d,
                            int ld, int causal, cudaStream_t s) {
    const size_t smem = sizeof(float) * (size_t)(ATT_KT * (DP + 1) + ATT_KT * DP + ATT_WARPS * ATT_RPW * DP);
    if (smem > 48 * 1024)
        EVA_CU_TRY("attention", cudaFuncSetAttribute(attention_kernel<T, DP>,
                                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const float scale = (float)(1.0 / sqrt((double)d));
    dim3 grid((unsigned)((N + ATT_WARPS * ATT_RPW - 1) / (ATT_WARPS * ATT_RPW)), (unsigned)H, (unsigned)B);
    attention_kernel<T, DP><<<grid, ATT_WARPS * 32, smem, s>>>((T *)out, (const T *)q, (const T *)k, (const T *)v, N,
                                                               H, d, ld, causal, scale);
    return EVA_OK;
}

template <typename T>
static eva_status launch_attention(void *out, const void *q, const void *k, const void *v, int B, int N, int H, int d,
                                   int ld, int causal, cudaStream_t s) {
    if (d <= 32) return launch_dp<T, 32>(out, q, k, v, B, N, H, d, ld, causal, s);
    if (d <= 64) return launch_dp<T, 64>(out, q, k, v, B, N, H, d, ld, causal, s);
    if (d <= 96) return launch_dp<T, 96>(out, q, k, v, B, N, H, d, ld, causal, s);
    if (d <= 128) return launch_dp<T, 128>(out, q, k, v, B, N, H, d, ld, causal, s);
    return launch_dp<T, 256>(out, q, k, v, B, N, H, d, ld, causal, s);
}

extern "C" eva_status eva_cu_attention_simt(void *out, const void *q, const void *k, const void *v, int B, int N, int H,
                                       int d, int ld, int causal, eva_cu_dtype t, void *stream) {
    if (B <= 0 || N <= 0) return EVA_OK;
    if (d < 1 || d > 256)
        return eva_fail(EVA_ERR_UNSUPPORTED, "attention: head_dim %d is not supported (1..256)", d);
    if (H < 1 || ld < H * d || H > 65535 || B > 65535)
        return eva_fail(EVA_ERR_INVALID_ARG, "attention: bad shape (B %d, H %d, d %d, ld %d)", B, H, d, ld);
    EVA_TRY(EVA_CU_DISPATCH(t, launch_attention, out, q, k, v, B, N, H, d, ld, causal, (cudaStream_t)stream));
    EVA_CU_LAUNCHED_ON("attention", stream);
    return EVA_OK;
}
