/* attention_mma.cu: tensor-core attention for the 16-bit precisions (bf16, fp16), a flash-style
 * kernel on mma.sync.m16n8k16 (fp32 accumulation), and the choice between it and the CUDA-core
 * kernel of attention.cu (fp32, head dims above 128, and the oracle the tests compare against).
 *
 * Design: one block = 4 warps = 64 query rows of one (batch, head); key/value tiles of 64 keys.
 * The head dim is padded with zeros to DP, a multiple of 16 (12 -> 16, 24 -> 32, 88 -> 96; 64,
 * 112, 128 as they are). The q tile is staged in shared memory once and kept in registers as
 * mma A fragments; each k tile is staged row-major (the B operand of S = Q.K^T needs pairs of
 * consecutive features of one key), each v tile transposed (the B operand of O = P.V needs pairs of
 * consecutive keys of one feature), both with 8 elements of padding per row so the fragment loads
 * hit 32 distinct banks. A warp keeps S (16 x 64, fp32) in registers, applies the scale in the
 * log2 domain, the key/causal mask, the running max and sum (fp32, quad shuffles in a fixed
 * order: deterministic), and reuses the S accumulators as the A fragments of P.V (P rounded to
 * the 16-bit type, as FlashAttention does). Scores never touch memory.
 * RoPE (optional): the rotation of q and k (interleaved pairs, token 0 = CLS untouched, the same
 * float arithmetic as eva_cu_rope_qk) is applied while q and k are staged, so the separate
 * in-place pass over the qkv buffer is not needed; qkv is left unrotated.
 * Oracle: eva_cu_attention_simt (attention.cu); tests/gpu_attention.c compares the two.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

#define MMA_WARPS 4
#define MMA_QR (16 * MMA_WARPS) /* query rows per block */
#define MMA_KT 64               /* keys per tile (== MMA_QR: the q tile reuses the k buffer) */
#define MMA_PAD 8               /* elements of padding per shared-memory row */
#define MMA_MAX_D 128

namespace {

template <typename T> struct mma16;
template <> struct mma16<__nv_bfloat16> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                     "{%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (low half) = lo */
        uint32_t u;
        memcpy(&u, &v, 4);
        return u;
    }
};
template <> struct mma16<__half> {
    static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                     "{%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        uint32_t u;
        memcpy(&u, &v, 4);
        return u;
    }
};

/* two consecutive 16-bit elements (p even-aligned) as one register */
template <typename T> __device__ __forceinline__ uint32_t ld2(const T *p) {
    return *reinterpret_cast<const uint32_t *>(p);
}

/* RoPE of one interleaved pair at feature e of token n >= 1 (table row n - 1), as eva_cu_rope_qk */
__device__ __forceinline__ void rope_pair(float &x0, float &x1, const float *ct, const float *stb, long long o) {
    const float c0 = ct[o], c1 = ct[o + 1], s0 = stb[o], s1 = stb[o + 1];
    const float y0 = x0 * c0 - x1 * s0, y1 = x1 * c1 + x0 * s1;
    x0 = y0, x1 = y1;
}

/* dst[r][0:DP] (row stride DP+PAD) = src rows r0 .. r0+63 of this head (zeros past N and past d),
 * rotated when ct != NULL. vec: rows 16-byte aligned and d % 8 == 0 (8 elements per load). */
template <typename T, int DP>
__device__ __forceinline__ void stage_rows(T *dst, const T *src, long long base, int r0, int N, int d, long long ld,
                                           const float *ct, const float *stb, int vec) {
    constexpr int QS = DP + MMA_PAD;
    if (vec) {
        constexpr int C8 = DP / 8;
        for (int i = threadIdx.x; i < MMA_KT * C8; i += blockDim.x) {
            const int r = i / C8, c = (i % C8) * 8, row = r0 + r;
            uint4 val = make_uint4(0u, 0u, 0u, 0u);
            if (row < N && c < d) {
                val = *reinterpret_cast<const uint4 *>(src + base + (long long)row * ld + c);
                if (ct && row > 0) {
                    T *e = reinterpret_cast<T *>(&val);
#pragma unroll
                    for (int u = 0; u < 8; u += 2) {
                        float x0 = eva::ld(e, u), x1 = eva::ld(e, u + 1);
                        rope_pair(x0, x1, ct, stb, (long long)(row - 1) * d + c + u);
                        eva::st(e, u, x0);
                        eva::st(e, u + 1, x1);
                    }
                }
            }
            *reinterpret_cast<uint4 *>(dst + r * QS + c) = val;
        }
        return;
    }
    constexpr int C2 = DP / 2;
    for (int i = threadIdx.x; i < MMA_KT * C2; i += blockDim.x) {
        const int r = i / C2, c = (i % C2) * 2, row = r0 + r;
        float x0 = 0.0f, x1 = 0.0f;
        if (row < N && c < d) {
            const T *p = src + base + (long long)row * ld + c;
            x0 = eva::ld(p, 0);
            x1 = c + 1 < d ? eva::ld(p, 1) : 0.0f;
            if (ct && row > 0 && c + 1 < d) rope_pair(x0, x1, ct, stb, (long long)(row - 1) * d + c);
        }
        eva::st(dst, r * QS + c, x0); /* exact: x0/x1 are 16-bit values unless rotated (then rounded once) */
        eva::st(dst, r * QS + c + 1, x1);
    }
}

/* vt[j][kk] (row stride KT+PAD) = v[k0 + kk][j] of this head (zeros past N and past d). */
template <typename T, int DP>
__device__ __forceinline__ void stage_vt(T *vt, const T *src, long long base, int k0, int N, int d, long long ld,
                                         int vec) {
    constexpr int VS = MMA_KT + MMA_PAD;
    if (vec) { /* lanes run over keys, so the transposed stores of a warp fill consecutive elements */
        for (int i = threadIdx.x; i < MMA_KT * (DP / 8); i += blockDim.x) {
            const int kk = i % MMA_KT, c = (i / MMA_KT) * 8, key = k0 + kk;
            uint4 val = make_uint4(0u, 0u, 0u, 0u);
            if (key < N && c < d) val = *reinterpret_cast<const uint4 *>(src + base + (long long)key * ld + c);
            const T *e = reinterpret_cast<const T *>(&val);
#pragma unroll
            for (int u = 0; u < 8; u++) vt[(c + u) * VS + kk] = e[u];
        }
        return;
    }
    for (int i = threadIdx.x; i < MMA_KT * DP; i += blockDim.x) {
        const int kk = i % MMA_KT, j = i / MMA_KT, key = k0 + kk;
        const float x = (key < N && j < d) ? eva::ld(src, base + (long long)key * ld + j) : 0.0f;
        eva::st(vt, j * VS + kk, x);
    }
}

/* out[b, n, h*d : (h+1)*d] for the 64 query rows of block (x, h, b). scale_log2 = scale * log2(e). */
template <typename T, int DP>
__global__ void __launch_bounds__(MMA_WARPS * 32)
    attention_mma_kernel(T *out, const T *q, const T *k, const T *v, const float *ct, const float *stb, int N, int H,
                         int d, long long ld, int causal, float scale_log2, int vec) {
    constexpr int QS = DP + MMA_PAD, VS = MMA_KT + MMA_PAD, NT = MMA_KT / 8;
    extern __shared__ uint4 smem_u4[];
    T *Ks = reinterpret_cast<T *>(smem_u4); /* [KT][QS]: first the q tile, then each k tile */
    T *Vt = Ks + MMA_KT * QS;               /* [DP][VS] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const int h = blockIdx.y;
    const long long b = blockIdx.z;
    const int row0 = blockIdx.x * MMA_QR;
    const long long base = b * N * ld + (long long)h * d;

    stage_rows<T, DP>(Ks, q, base, row0, N, d, ld, ct, stb, vec);
    __syncthreads();
    uint32_t qf[DP / 16][4]; /* A fragments of this warp's 16 rows */
    {
        const T *qw = Ks + warp * 16 * QS;
#pragma unroll
        for (int kk = 0; kk < DP / 16; kk++) {
            const int c = kk * 16 + tg * 2;
            qf[kk][0] = ld2(qw + g * QS + c);
            qf[kk][1] = ld2(qw + (g + 8) * QS + c);
            qf[kk][2] = ld2(qw + g * QS + c + 8);
            qf[kk][3] = ld2(qw + (g + 8) * QS + c + 8);
        }
    }
    float o[DP / 8][4];
#pragma unroll
    for (int j = 0; j < DP / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
    const int r_lo = row0 + warp * 16 + g; /* this thread's rows: r_lo and r_lo + 8 */
    const int kend = causal ? min(N, row0 + MMA_QR) : N;

    for (int k0 = 0; k0 < kend; k0 += MMA_KT) {
        __syncthreads(); /* q fragments taken / previous tile consumed */
        stage_rows<T, DP>(Ks, k, base, k0, N, d, ld, ct, stb, vec);
        stage_vt<T, DP>(Vt, v, base, k0, N, d, ld, vec);
        __syncthreads();
        if (causal && k0 > row0 + warp * 16 + 15) continue; /* every key of the tile is above this warp's rows */
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            const T *kr = Ks + (nt * 8 + g) * QS + tg * 2;
#pragma unroll
            for (int kk = 0; kk < DP / 16; kk++) mma16<T>::run(s[nt], qf[kk], ld2(kr + kk * 16), ld2(kr + kk * 16 + 8));
        }
        float mx[2] = {mrow[0], mrow[1]};
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = k0 + nt * 8 + tg * 2 + (e & 1), row = r_lo + (e >> 1) * 8;
                const bool ok = key < N && !(causal && key > row);
                s[nt][e] = ok ? s[nt][e] * scale_log2 : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
            }
        float corr[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            /* every row sees key 0 in the first tile, so mx is finite from then on; the guard keeps
             * -inf - -inf (NaN) out regardless */
            const float ms = mx[i] == -INFINITY ? 0.0f : mx[i];
            corr[i] = exp2f(mrow[i] - ms); /* exp2f(-inf) = 0 on the first tile */
            mrow[i] = mx[i];
            mx[i] = ms;
            lrow[i] *= corr[i];
        }
#pragma unroll
        for (int j = 0; j < DP / 8; j++) {
            o[j][0] *= corr[0], o[j][1] *= corr[0];
            o[j][2] *= corr[1], o[j][3] *= corr[1];
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float p = exp2f(s[nt][e] - mx[e >> 1]); /* exp2f(-inf) = 0 */
                s[nt][e] = p;
                lrow[e >> 1] += p;
            }
#pragma unroll
        for (int kk = 0; kk < MMA_KT / 16; kk++) {
            uint32_t a[4];
            a[0] = mma16<T>::pack(s[2 * kk][0], s[2 * kk][1]);
            a[1] = mma16<T>::pack(s[2 * kk][2], s[2 * kk][3]);
            a[2] = mma16<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = mma16<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
            const T *vr = Vt + g * VS + kk * 16 + tg * 2;
#pragma unroll
            for (int j = 0; j < DP / 8; j++) mma16<T>::run(o[j], a, ld2(vr + j * 8 * VS), ld2(vr + j * 8 * VS + 8));
        }
    }
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        lrow[i] += __shfl_xor_sync(0xffffffffu, lrow[i], 1);
        lrow[i] += __shfl_xor_sync(0xffffffffu, lrow[i], 2);
        inv[i] = 1.0f / lrow[i];
    }
    const int D = H * d;
#pragma unroll
    for (int j = 0; j < DP / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int row = r_lo + (e >> 1) * 8, c = j * 8 + tg * 2 + (e & 1);
            if (row < N && c < d) eva::st(out, (b * N + row) * (long long)D + (long long)h * d + c, o[j][e] * inv[e >> 1]);
        }
}

template <typename T, int DP>
eva_status launch_dp(void *out, const void *q, const void *k, const void *v, const float *ct, const float *stb, int B,
                     int N, int H, int d, int ld, int causal, cudaStream_t s) {
    const size_t smem = sizeof(T) * (size_t)(MMA_KT * (DP + MMA_PAD) + DP * (MMA_KT + MMA_PAD));
    if (smem > 48 * 1024)
        EVA_CU_TRY("attention (mma)", cudaFuncSetAttribute(attention_mma_kernel<T, DP>,
                                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const float scale_log2 = (float)(1.0 / sqrt((double)d)) * 1.4426950408889634f;
    const int vec = d % 8 == 0 && ld % 8 == 0 && (uintptr_t)q % 16 == 0 && (uintptr_t)k % 16 == 0 &&
                    (uintptr_t)v % 16 == 0;
    dim3 grid((unsigned)((N + MMA_QR - 1) / MMA_QR), (unsigned)H, (unsigned)B);
    attention_mma_kernel<T, DP><<<grid, MMA_WARPS * 32, smem, s>>>((T *)out, (const T *)q, (const T *)k,
                                                                   (const T *)v, ct, stb, N, H, d, ld, causal,
                                                                   scale_log2, vec);
    return EVA_OK;
}

template <typename T>
eva_status launch_mma(void *out, const void *q, const void *k, const void *v, const float *ct, const float *stb, int B,
                      int N, int H, int d, int ld, int causal, cudaStream_t s) {
    switch (eva_cu_attention_padded_dim(d)) {
    case 16: return launch_dp<T, 16>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    case 32: return launch_dp<T, 32>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    case 64: return launch_dp<T, 64>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    case 96: return launch_dp<T, 96>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    case 112: return launch_dp<T, 112>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    case 128: return launch_dp<T, 128>(out, q, k, v, ct, stb, B, N, H, d, ld, causal, s);
    default: return eva_fail(EVA_ERR_INTERNAL, "attention (mma): no kernel for head_dim %d", d);
    }
}

/* the bf16 and fp16 instantiations only: fp32 has no m16n8k16 form */
#define EVA_CU_DISPATCH16(dt, FN, ...) ((dt) == EVA_CU_BF16 ? FN<__nv_bfloat16>(__VA_ARGS__) : FN<__half>(__VA_ARGS__))

} // namespace

extern "C" int eva_cu_attention_padded_dim(int d) {
    if (d < 1 || d > MMA_MAX_D) return 0;
    if (d <= 16) return 16;
    if (d <= 32) return 32;
    if (d <= 64) return 64;
    if (d <= 96) return 96;
    if (d <= 112) return 112;
    return 128;
}

extern "C" eva_cu_attention_kind eva_cu_attention_path(int d, eva_cu_dtype t) {
    static int forced = -1; /* EVA_CUDA_ATTENTION=simt: the CUDA-core kernel everywhere */
    if (forced < 0) {
        const char *e = getenv("EVA_CUDA_ATTENTION");
        forced = e && strcmp(e, "simt") == 0 ? 1 : 0;
    }
    if (forced || t == EVA_CU_F32 || eva_cu_attention_padded_dim(d) == 0) return EVA_CU_ATTENTION_SIMT;
    return EVA_CU_ATTENTION_MMA;
}

extern "C" eva_status eva_cu_attention_mma(void *out, const void *q, const void *k, const void *v, const float *rope_cos,
                                           const float *rope_sin, int B, int N, int H, int d, int ld, int causal,
                                           eva_cu_dtype t, void *stream) {
    if (B <= 0 || N <= 0) return EVA_OK;
    if (t == EVA_CU_F32) return eva_fail(EVA_ERR_UNSUPPORTED, "attention (mma): fp32 has no tensor-core path");
    if (eva_cu_attention_padded_dim(d) == 0)
        return eva_fail(EVA_ERR_UNSUPPORTED, "attention (mma): head_dim %d is not supported (1..%d)", d, MMA_MAX_D);
    if (H < 1 || ld < H * d || H > 65535 || B > 65535)
        return eva_fail(EVA_ERR_INVALID_ARG, "attention (mma): bad shape (B %d, H %d, d %d, ld %d)", B, H, d, ld);
    if ((rope_cos == NULL) != (rope_sin == NULL) || (rope_cos && d % 2))
        return eva_fail(EVA_ERR_INVALID_ARG, "attention (mma): RoPE needs both tables and an even head_dim (%d)", d);
    EVA_TRY(EVA_CU_DISPATCH16(t, launch_mma, out, q, k, v, rope_cos, rope_sin, B, N, H, d, ld, causal,
                              (cudaStream_t)stream));
    EVA_CU_LAUNCHED_ON("attention (mma)", stream);
    return EVA_OK;
}

extern "C" eva_status eva_cu_attention(void *out, const void *q, const void *k, const void *v, int B, int N, int H,
                                       int d, int ld, int causal, eva_cu_dtype t, void *stream) {
    if (eva_cu_attention_path(d, t) == EVA_CU_ATTENTION_MMA)
        return eva_cu_attention_mma(out, q, k, v, NULL, NULL, B, N, H, d, ld, causal, t, stream);
    return eva_cu_attention_simt(out, q, k, v, B, N, H, d, ld, causal, t, stream);
}

extern "C" eva_status eva_cu_attention_rope(void *out, void *q, void *k, const void *v, const float *rope_cos,
                                            const float *rope_sin, int B, int N, int H, int d, int ld, int causal,
                                            eva_cu_dtype t, void *stream) {
    if (eva_cu_attention_path(d, t) == EVA_CU_ATTENTION_MMA)
        return eva_cu_attention_mma(out, q, k, v, rope_cos, rope_sin, B, N, H, d, ld, causal, t, stream);
    if (rope_cos) { /* the CUDA-core kernel reads rotated q and k: rotate them in place first */
        const long long koff = ((const char *)k - (const char *)q) / (long long)eva_cu_dtype_size(t);
        if (koff <= 0 || koff > ld)
            return eva_fail(EVA_ERR_INVALID_ARG, "attention: RoPE needs k after q in the same rows");
        EVA_TRY(eva_cu_rope_qk(q, rope_cos, rope_sin, B, N, H, d, ld, (int)koff, t, stream));
    }
    return eva_cu_attention_simt(out, q, k, v, B, N, H, d, ld, causal, t, stream);
}
