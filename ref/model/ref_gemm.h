/* ref_gemm.h: the reference's matrix multiply (plain C + OpenMP, no BLAS underneath).
 *
 * One routine, in the layout of a linear layer: out[M,C] = x[M,K] . w[C,K]^T (+ bias[C]), both
 * operands contiguous along K. It is cache-blocked and packed: a block of x rows (tokens) is
 * repacked into K x 32 panels (32 tokens side by side per k), which the micro-kernel reads as
 * vectors, while the weight rows are taken 12 at a time in K blocks of 256, copied row by row into
 * a 12 KiB tile that stays in L1 (one scalar broadcast per row and k). Weights are never
 * transposed; activations are repacked once per call.
 *
 * Numerics (docs/numerics.md): every output is a float sum over blocks of at most
 * EVA_GEMM_KC products, folded into a double accumulator after each block; the bias is added in
 * double and the result rounded to float once. Results do not depend on the thread count or on
 * which micro-kernel ran (the AVX-512 one and the portable one perform the same float
 * operations in the same order, FMA contracted in both).
 *
 * Micro-kernels: a portable one in plain C whose lane loops the compiler vectorises, and, when
 * the compiler targets AVX-512F, a small intrinsics version of the same 12x32 tile. Both stay
 * in the build; eva_gemm_force_portable() selects the portable one (tests run both).
 */
#ifndef EVA_REF_GEMM_H
#define EVA_REF_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_half.h"

#define EVA_GEMM_KC 64 /* products per float partial sum before it is folded into double */

/* out[M,C] = x[M,K] . w[C,K]^T + bias[C]; bias may be NULL. ldx, ldw, ldo are row strides in
 * floats (>= K, K, C). out must not alias x or w. Parallel over output tiles with OpenMP on up
 * to `threads` threads (<= 0: all of them); its packing buffer (a few MiB,
 * eva_gemm_nt_alloc_bytes) is kept between calls, and without one it computes the same sums by
 * plain loops. */
void eva_gemm_nt(float *out, const float *x, const float *w, const float *bias, int M, int C, int K, int ldx,
                 int ldw, int ldo, int threads);

/* The same with the weights held as F32, F16 or BF16 (w.data: C rows of ldw values): rows are
 * widened exactly to fp32 while they are packed, so the result equals eva_gemm_nt's on the
 * widened matrix, bit for bit. */
void eva_gemm_nt_w(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K, int ldx, int ldw,
                   int ldo, int threads);

/* Bytes eva_gemm_nt allocates for this product on `threads` threads (memory planning). */
int64_t eva_gemm_nt_alloc_bytes(int M, int C, int K, int threads);
/* eva_gemm_nt keeps its packing buffer for the next call (grown to the largest size seen); this
 * frees it (a no-op while a call is using it). */
void eva_gemm_release_cache(void);

/* The same product on one thread with caller-provided packing scratch of
 * eva_gemm_scratch_floats(M, K) floats (for callers already inside a parallel region, such as
 * attention over heads). kc (1..EVA_GEMM_KC; <= 0 or larger: EVA_GEMM_KC) sets the products per
 * float partial sum, for callers that need shorter float chains (attention scores: 16, close to
 * the precision of 8-lane dot products). Results equal eva_gemm_nt's when kc = EVA_GEMM_KC.
 * scratch NULL: the same sums by plain loops (slow; for callers whose allocation failed). */
void eva_gemm_nt_serial(float *out, float *scratch, const float *x, const float *w, const float *bias, int M, int C,
                        int K, int ldx, int ldw, int ldo, int kc);
int64_t eva_gemm_scratch_floats(int M, int K);

/* Selects the portable micro-kernel even where the AVX-512 one is compiled (tests; also the
 * environment variable EVA_GEMM_PORTABLE=1). Returns the previous setting. */
bool eva_gemm_force_portable(bool on);
/* True when the kernels fuse each multiply-add (one rounding: the target has a fast fma; always
 * with the AVX-512 kernel), false when they multiply then add. */
bool eva_gemm_fused(void);
/* "avx512" or "portable": the micro-kernel the next call will use. */
const char *eva_gemm_kernel_name(void);

#endif
