/* eva_cuda_ops.h: the CUDA launchers (eva_cu_<op>), callable from C (the GPU tests use them
 * against the CPU twins in ref/ref_ops.h) and from cuda_model.cu, which strings them together.
 *
 * Plain C, no C++. Pointers are device pointers; `act` buffers hold the run's activation type
 * (eva_cu_dtype: fp32 for the fp32/tf32 precisions, bf16, fp16); the residual stream, norm
 * weights/biases and RoPE tables are always fp32; statistics (LayerNorm/RMSNorm mean/variance,
 * softmax max/sum) are accumulated in fp32 or double, never in 16 bits. Every launcher checks its
 * launch (cuda_check.h) and returns an eva_status; `stream` is a cudaStream_t (NULL = default).
 * Argument order: outputs, inputs, weights, dimensions, stream. Shapes use the glossary of
 * eva_tensors.h (B, N, D, H, d, F, G, P, S, E, W, L, T) or M rows / C columns / K inner.
 * Reductions use a fixed order (no atomics), so two runs give bitwise-equal results.
 * This header does not own the GEMM (gemm.cu: eva_cu_gemm_*), declared here too for the tests.
 */
#ifndef EVA_CUDA_OPS_H
#define EVA_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "eva_config.h"
#include "eva_status.h"

typedef enum { EVA_CU_F32 = 0, EVA_CU_BF16 = 1, EVA_CU_F16 = 2 } eva_cu_dtype;
/* Bytes per element. */
size_t eva_cu_dtype_size(eva_cu_dtype t);
/* Activation dtype of a precision (fp32/tf32 -> F32, bf16 -> BF16, fp16 -> F16). */
eva_cu_dtype eva_cu_act_dtype(eva_precision p);

/* ---- small device-memory helpers (the tests are C and use these instead of the runtime) ---- */
eva_status eva_cu_malloc(void **p, size_t bytes);
void eva_cu_free(void *p);
/* dst[n] (device, dtype t) = src[n] (host fp32), rounded to nearest even. */
eva_status eva_cu_upload(void *dst, const float *src, size_t n, eva_cu_dtype t);
/* dst[n] (host fp32) = src[n] (device, dtype t), exact widening. */
eva_status eva_cu_download(float *dst, const void *src, size_t n, eva_cu_dtype t);
eva_status eva_cu_upload_bytes(void *dst, const void *src, size_t bytes);
eva_status eva_cu_synchronize(void);

/* ---- GEMM (gemm.cu, the only cuBLAS/cuBLASLt caller) ------------------------------------- */
typedef struct eva_cu_gemm_ctx eva_cu_gemm_ctx;
typedef enum { EVA_CU_EPI_NONE = 0, EVA_CU_EPI_BIAS = 1 } eva_cu_epilogue;
/* precision decides the compute type: fp32 -> CUBLAS_COMPUTE_32F (TF32 off), tf32 ->
 * CUBLAS_COMPUTE_32F_FAST_TF32, bf16/fp16 -> 16-bit inputs, CUBLAS_COMPUTE_32F accumulation.
 * workspace_bytes of cuBLASLt workspace are allocated here. */
eva_status eva_cu_gemm_create(eva_cu_gemm_ctx **out, eva_precision p, size_t workspace_bytes);
void eva_cu_gemm_free(eva_cu_gemm_ctx *g);
/* out[M,C] (row stride ldo) = x[M,K] (row stride ldx) . w[C,K]^T + bias[C] (bias NULL: none).
 * x, w, bias, out in the context's activation dtype. The plan (path and algorithm) is chosen
 * once per shape and cached: the fastest of the heuristic's top algorithms, timed on first use. */
eva_status eva_cu_linear(eva_cu_gemm_ctx *g, void *out, const void *x, const void *w, const void *bias, int M, int C,
                         int K, int ldx, int ldo, void *stream);
/* out[M,E] = x[M,W] (row stride ldx) . Pm[W,E] (a projection stored [in, out], as text_projection). */
eva_status eva_cu_matmul_proj(eva_cu_gemm_ctx *g, void *out, const void *x, const void *Pm, int M, int W, int E,
                              int ldx, void *stream);
/* Number of cached GEMM plans (for tests). */
int eva_cu_gemm_cached_plans(const eva_cu_gemm_ctx *g);
/* How a product ran (gemm.cu explains each): cuBLASLt with the bias epilogue, cuBLASLt after a
 * bias broadcast (beta = 1; when the heuristic has no epilogue plan, e.g. a dimension of 1),
 * cublasGemmEx the same way (when cuBLASLt has no plan at all), or fp32 split-K folded in double
 * (fp32 only, K >= EVA_CU_SPLITK_MIN_K). */
typedef enum {
    EVA_CU_GEMM_AUTO = 0,
    EVA_CU_GEMM_LT = 1,
    EVA_CU_GEMM_LT_BETA = 2,
    EVA_CU_GEMM_GEMMEX = 3,
    EVA_CU_GEMM_SPLITK = 4
} eva_cu_gemm_path;
#define EVA_CU_SPLITK_MIN_K 4096 /* fp32 products with K at least this are split ... */
#define EVA_CU_SPLITK_KC 512     /* ... into float sums of this many products, folded in double */
/* Tests: take `path` for every product from now on (before the first product of the context; AUTO:
 * the automatic choice; LT, LT_BETA or GEMMEX also turn split-K off). */
void eva_cu_gemm_force(eva_cu_gemm_ctx *g, eva_cu_gemm_path path);
/* The path the last product took, and its name ("cublasLt (bias epilogue)", ...). */
eva_cu_gemm_path eva_cu_gemm_last_path(const eva_cu_gemm_ctx *g);
const char *eva_cu_gemm_path_name(eva_cu_gemm_path p);
/* EVA_CU_SPLITK_KC when a product with this K is split (fp32 context, EVA_CUDA_SPLITK not 0), else 0. */
int eva_cu_gemm_splitk_chunk(const eva_cu_gemm_ctx *g, int K);
/* Device bytes a context of precision p may allocate beyond its workspace (the split-K scratch). */
size_t eva_cu_gemm_extra_bytes(eva_precision p);

/* ---- normalisation (norm.cu) ----------------------------------------------------------------
 * One fused kernel, one thread block per row, two-pass statistics in double:
 *  EVA_CU_NORM_PRE   (pre-norm residual + norm):  if a: x += a (x written back);  u = N(x)
 *  EVA_CU_NORM_POST  (post-norm):                 y = N(a); x += y; xc = (act)x; u = y (if u)
 *  EVA_CU_NORM_PLAIN (norm of an act tensor):     u = N(a)  (u may equal a: in place)
 * N = LayerNorm(w, b, eps) (b may be NULL) or RMSNorm(w, eps) when rms.
 *   x: fp32 [M, ldx]; a, u, xc: act [M, ld]; w, b: fp32 [C]. Row r of x/a/u/xc starts at r*ld. */
typedef enum { EVA_CU_NORM_PRE = 0, EVA_CU_NORM_POST = 1, EVA_CU_NORM_PLAIN = 2 } eva_cu_norm_mode;
eva_status eva_cu_norm(float *x, const void *a, void *u, void *xc, const float *w, const float *b, int M, int C,
                       int ld, double eps, int rms, eva_cu_norm_mode mode, eva_cu_dtype t, void *stream);

/* ---- elementwise and layout ops (elementwise.cu) ---------------------------------------- */
/* y[n] = GELU(y[n]) exact erf form, in place (act). */
eva_status eva_cu_gelu(void *y, int64_t n, eva_cu_dtype t, void *stream);
/* z[M,F] = silu(h[:, 0:F]) * h[:, F:2F] (h [M,2F] act: gate branch first, then the linear one),
 * then, when ln_w != NULL, z = LayerNorm(z; ln_w, ln_b, eps) over F (the EVA-02 sub-LN), fused. */
eva_status eva_cu_swiglu_ln(void *z, const void *h, const float *ln_w, const float *ln_b, int M, int F, double eps,
                            eva_cu_dtype t, void *stream);
/* The same with the MLP width padded to Fp >= F (zero weights beyond F): h [M, 2Fp] with the gate
 * at [0, F) and the linear branch at [Fp, Fp+F); z [M, Fp] with columns [F, Fp) set to 0; the
 * norm's statistics are over the real F columns. */
eva_status eva_cu_swiglu_ln_padded(void *z, const void *h, const float *ln_w, const float *ln_b, int M, int F, int Fp,
                                   double eps, eva_cu_dtype t, void *stream);
/* RoPE on q and k in one pass (interleaved pairs; token 0 = CLS untouched; docs/model.md §4.5):
 * q at qk[b,n, 0:H*d], k at qk[b,n, koff:koff+H*d] (row stride ld), in place, act;
 * cos_t, sin_t: fp32 [N-1, d] (eva_ref_rope_table). */
eva_status eva_cu_rope_qk(void *qk, const float *cos_t, const float *sin_t, int B, int N, int H, int d, int ld,
                          int koff, eva_cu_dtype t, void *stream);
/* cols[B*G*G, 3*P*P] (act) = im2col of pixels [B,3,S,S] (fp32), (ch, i, j) order, G = S/P. */
eva_status eva_cu_im2col(void *cols, const float *pixels, int B, int S, int P, eva_cu_dtype t, void *stream);
/* x[B,N,D] (fp32) = concat(cls, patches[b]) + pos; xc (act, may be NULL) = (act)x.
 * patches [B,N-1,D] act; cls [D], pos [N,D] fp32. */
eva_status eva_cu_cls_pos(float *x, void *xc, const void *patches, const float *cls, const float *pos, int B, int N,
                          int D, eva_cu_dtype t, void *stream);
/* x[T,L,W] (fp32) = table[ids[t,l]] (+ pos[l] when pos != NULL). ids int32 (device, validated). */
eva_status eva_cu_embedding(float *x, const int32_t *ids, const float *table, const float *pos, int T, int L, int W,
                            void *stream);
/* out[T,W] (act) = u[t*L + rows[t]] (act [T*L, W]); rows int32 device [T]. */
eva_status eva_cu_gather_rows(void *out, const void *u, const int32_t *rows, int T, int L, int W, eva_cu_dtype t,
                              void *stream);
/* dst[n] = (dst type)src[n] between fp32 and act (either direction, or a copy). */
eva_status eva_cu_convert(void *dst, eva_cu_dtype dt, const void *src, eva_cu_dtype st, int64_t n, void *stream);

/* ---- attention (attention.cu, attention_mma.cu) -----------------------------------------------
 * out[B,N,H*d] (act, contiguous) = per (b, head j): softmax((q_j * scale) . k_j^T + mask) . v_j,
 * scale = (float)(1/sqrt(d)); q, k, v act with head j at columns [j*d, (j+1)*d) and row stride ld;
 * causal: -inf above the diagonal. Any N >= 1. fp32 scores, max, sum and accumulators.
 * Two kernels: EVA_CU_ATTENTION_MMA, tensor cores (mma.sync m16n8k16, bf16/fp16 only, d <= 128,
 * d padded with zeros to 16/32/64/96/112/128; P rounded to the 16-bit type before P.V), and
 * EVA_CU_ATTENTION_SIMT, CUDA cores (every dtype, d <= 256; the fp32 path and the oracle).
 * eva_cu_attention takes the path eva_cu_attention_path names; EVA_CUDA_ATTENTION=simt in the
 * environment forces the CUDA-core kernel everywhere (for comparisons). */
typedef enum { EVA_CU_ATTENTION_SIMT = 0, EVA_CU_ATTENTION_MMA = 1 } eva_cu_attention_kind;
eva_status eva_cu_attention(void *out, const void *q, const void *k, const void *v, int B, int N, int H, int d, int ld,
                            int causal, eva_cu_dtype t, void *stream);
/* The kernel eva_cu_attention uses for head_dim d in dtype t. */
eva_cu_attention_kind eva_cu_attention_path(int d, eva_cu_dtype t);
/* The head dim the tensor-core kernel computes with (d padded), 0 when it has none (d > 128). */
int eva_cu_attention_padded_dim(int d);
/* The CUDA-core kernel alone (any dtype, d <= 256). */
eva_status eva_cu_attention_simt(void *out, const void *q, const void *k, const void *v, int B, int N, int H, int d,
                                 int ld, int causal, eva_cu_dtype t, void *stream);
/* The tensor-core kernel alone (bf16/fp16, d <= 128; else EVA_ERR_UNSUPPORTED). rope_cos/rope_sin
 * (fp32 [N-1, d], eva_ref_rope_table; both NULL: none): q and k are rotated as they are read, as
 * eva_cu_rope_qk would rotate them (token 0 untouched); q/k in memory stay unrotated. */
eva_status eva_cu_attention_mma(void *out, const void *q, const void *k, const void *v, const float *rope_cos,
                                const float *rope_sin, int B, int N, int H, int d, int ld, int causal, eva_cu_dtype t,
                                void *stream);
/* Attention with RoPE on q and k (k after q in the same rows): the tensor-core kernel rotates while
 * reading; on the CUDA-core path q and k are rotated in place (eva_cu_rope_qk) first. */
eva_status eva_cu_attention_rope(void *out, void *q, void *k, const void *v, const float *rope_cos,
                                 const float *rope_sin, int B, int N, int H, int d, int ld, int causal, eva_cu_dtype t,
                                 void *stream);

#ifdef __cplusplus
}
#endif

#endif
