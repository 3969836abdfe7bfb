/* ref_gemm.h: the reference's matrix multiply (plain C + OpenMP, no BLAS underneath).
 *
 * One routine, in the layout of a linear layer: out[M,C] = x[M,K] . w[C,K]^T (+ bias[C]), both
 * operands contiguous along K. It is cache-blocked and packed: a block of x rows (tokens) is
 * repacked into K x 32 panels (32 tokens side by side per k), which the micro-kernel reads as
 * vectors, while the weight rows are taken 12 at a time in K blocks of 256 (one scalar broadcast
 * per row and k): F32 rows are read in place, F16/BF16 rows are widened into a 12 KiB tile that
 * stays in L1. Weights are never transposed; activations are repacked once per call, and each
 * tile's sums are transposed into the output rows (8 x 8 register transposes on x86-64).
 *
 * Numerics (docs/numerics.md): every output is a float sum over blocks of at most EVA_GEMM_KC
 * products, each product added by a fused multiply-add (one rounding), folded into a double
 * accumulator after each block; the bias is added in double and the result rounded to float once.
 * Results do not depend on the thread count, on which micro-kernel ran, nor on the host: every
 * kernel performs the same float operations in the same order.
 *
 * Micro-kernels: a portable one in plain C (the readable twin; its fmaf is an instruction where
 * the CPU has FMA), AVX2+FMA and AVX-512F ones on x86-64 and a NEON one on AArch64, compiled into
 * one binary with per-function target attributes (no -march flag needed) and chosen at run time
 * from what the CPU reports: the widest it can run, unless EVA_GEMM_KERNEL names one.
 */
#ifndef EVA_REF_GEMM_H
#define EVA_REF_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_half.h"
#include "eva_status.h"

#define EVA_GEMM_KC 128/* products per float partial sum before it is folded into double */

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

/* Micro-kernel selection. Names: "portable", "avx2" (AVX2 + FMA), "avx512" (AVX-512F), "neon";
 * "auto" (or NULL) = the widest this CPU runs. EVA_ERR_INVALID_ARG for an unknown name,
 * EVA_ERR_UNSUPPORTED for one this CPU or build cannot run (the selection is then unchanged).
 * The choice holds for every later call in the process (all threads). */
eva_status eva_gemm_set_kernel(const char *name);
/* Selects from the environment: EVA_GEMM_KERNEL=portable|avx2|avx512|neon|auto (unset: auto;
 * the older EVA_GEMM_PORTABLE=1 means portable). Without an explicit selection the first GEMM
 * does this itself and, if the variable is invalid, runs "auto": callers that must refuse a bad
 * value (the CLI) call this first and report its error. */
eva_status eva_gemm_kernel_from_env(void);
/* True when `name` is a kernel of this build that this CPU can run. */
bool eva_gemm_kernel_available(const char *name);
/* Selects the portable kernel (on) or returns to the environment's / the best one (off); returns
 * whether the portable kernel was selected before (tests). */
bool eva_gemm_force_portable(bool on);
/* True: every kernel fuses each multiply-add (one rounding). Kept for callers of the model. */
bool eva_gemm_fused(void);
/* The micro-kernel the next call will use: "portable", "avx2", "avx512" or "neon". */
const char *eva_gemm_kernel_name(void);

#endif
