/* ref_gemm.c: out[M,C] = x[M,K] . w[C,K]^T + bias, cache-blocked, packed, OpenMP-parallel.
 *
 * Loop nest (see ref_gemm.h for the contract):
 *   for each block of TB tokens (rows of x), sized so its packed copy stays in L2:
 *     pack the block into panels of NR tokens: panel[k][j] = x[t0 + j][k] (zeros past M)
 *     for each tile of MR output channels (rows of w), handed out to the threads one at a time:
 *       for each panel: micro-kernel over all of K into the panel's MR x NR tile of double sums,
 *         then write that tile to out (+ bias) while it is still in L1
 * When K is so long that a token block holding all of it would be a sliver of the tokens (the
 * second MLP layer of g/14 or bigE), the parallel entry splits K into ranges of a multiple of KB
 * columns instead, packs one range at a time and keeps every tile's double sums across them.
 * The micro-kernel keeps an MR x NR tile of float sums in registers, runs k over a block of at
 * most KC (or a smaller kc), then folds the tile into double and starts the next block. Its inner step is a
 * rank-1 update: NR tokens of one k (two 16-float vectors) times one broadcast weight per row.
 */
#include "ref_gemm.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eva_status.h"

#include "ref_ops.h"
#include "ref_pool.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define EVA_GEMM_X86 1 /* the AVX2+FMA and AVX-512 kernels are compiled (per-function targets) */
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EVA_GEMM_NEON 1
#endif

#define MR 12                    /* output channels (weight rows) per tile */
#define NR 32                    /* tokens per packed panel (two 16-float vectors) */
#define KC EVA_GEMM_KC           /* products per float partial sum */
#define KB 256                   /* granularity of the K ranges when K is split */
#define PACK_BUDGET (320 * 1024) /* floats of packed x per token block (1.25 MiB, within an L2) */
#define TB_MAX 512               /* tokens per block at most (bounds the double tile buffer) */

/* Tokens per packed block: as many panels as fit the budget (at least one, at most TB_MAX),
 * then evened out over the blocks M needs so that no block is a sliver. */
static int token_block(int M, int K) {
    int64_t tb = PACK_BUDGET / (K > 0 ? K : 1);
    if (tb > TB_MAX) tb = TB_MAX;
    tb -= tb % NR;
    if (tb < NR) tb = NR;
    int64_t blocks = ((int64_t)M + tb - 1) / tb;
    int64_t even = ((int64_t)M + blocks - 1) / blocks;
    return (int)((even + NR - 1) / NR * NR);
}

/* Per-thread work floats for K ranges of kspan columns: the tile's weight rows widened to fp32
 * (MR x kspan) and the double sums of one tile row (MR channels x TB_MAX tokens). */
static int64_t work_floats(int kspan) {
    return (int64_t)MR * (kspan > 0 ? kspan : 1) + 2 * (int64_t)(TB_MAX / NR) * MR * NR;
}

/* + 16 floats: the buffers are used from the first 64-byte boundary (aligned panel loads). */
int64_t eva_gemm_scratch_floats(int M, int K) {
    return (int64_t)token_block(M, K) * (K > 0 ? K : 1) + work_floats(K) + 16;
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* ---- packing ----------------------------------------------------------------------------------- */

/* dst[k][j] = x[t0 + j][k] for j < nt, 0 for nt <= j < NR. */
static void pack_panel(float *dst, const float *x, int ldx, int t0, int nt, int K) {
    enum { KS = 16 }; /* k strip: one cache line of each of the NR rows */
    for (int k0 = 0; k0 < K; k0 += KS) {
        int k1 = k0 + KS < K ? k0 + KS : K;
        for (int j = 0; j < nt; j++) {
            const float *src = x + (size_t)(t0 + j) * ldx;
            for (int k = k0; k < k1; k++) dst[(size_t)k * NR + j] = src[k];
        }
        for (int j = nt; j < NR; j++)
            for (int k = k0; k < k1; k++) dst[(size_t)k * NR + j] = 0.0f;
    }
}

/* Weight rows held as F16 are widened with the CPU's F16C conversion where it has one (x86-64
 * since 2012; exact, like the portable conversion, about 30x faster), BF16 ones with AVX2 shifts,
 * chosen at run time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static void widen_f16c(float *dst, const uint16_t *s, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + k))));
    for (; k < n; k++) dst[k] = eva_f16_to_f32_flat(s[k]);
}
static bool have_f16c(void) {
    static int v = -1; /* benign race: every thread computes the same answer */
    /* "avx" (with the OS check) through the builtin; the F16C bit from CPUID leaf 1 (clang 14's
     * __builtin_cpu_supports does not know "f16c"). */
    unsigned a, b, c, d;
    if (v < 0) v = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) ? 1 : 0;
    return v == 1;
}
#define EVA_GEMM_F16C 1
/* BF16 is the top half of an fp32: zero-extended and shifted 8 at a time with AVX2. */
__attribute__((target("avx2"))) static void widen_bf16_avx2(float *dst, const uint16_t *s, size_t n) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + k)));
        _mm256_storeu_ps(dst + k, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; k < n; k++) dst[k] = eva_bits_to_f32((uint32_t)s[k] << 16);
}
static bool have_avx2(void) {
    static int v = -1; /* benign race: every thread computes the same answer */
    if (v < 0) v = __builtin_cpu_supports("avx2") ? 1 : 0;
    return v == 1;
}
#endif

/* wt[0..n) = weights w[first .. first + n) in fp32. */
static void widen_w(float *wt, eva_wmat w, size_t first, size_t n) {
#ifdef EVA_GEMM_F16C
    if (w.dtype == EVA_DT_F16 && have_f16c()) {
        widen_f16c(wt, (const uint16_t *)w.data + first, n);
        return;
    }
    if (w.dtype == EVA_DT_BF16 && have_avx2()) {
        widen_bf16_avx2(wt, (const uint16_t *)w.data + first, n);
        return;
    }
#endif
    eva_widen(wt, w.data, w.dtype, first, n);
}

/* ---- micro-kernels: dacc[MR][NR] += sum over k < klen of wt[i * ldwt + k] * panel[k][j] --------
 * wt: MR weight rows ldwt floats apart (in place, or widened to fp32 in a work buffer); panel: a
 * packed token panel whose first ntok tokens are real (the others are padding, whose sums are
 * never read). Every kernel computes, for every output, float chains of fused
 * multiply-adds over consecutive k that restart every kc products, each chain added to its
 * double sum in k order: the same operations in the same order, hence the same bits. They differ
 * only in how many outputs they keep in registers at once. */
typedef void (*tile_fn)(double dacc[MR][NR], const float *wt, int ldwt, const float *panel, int klen, int kc,
                        int ntok);

/* Portable: plain loops over a 6 x 16 sub-tile at a time (small enough for the compiler to keep
 * in vector registers), the j loop unit-stride over 16 tokens. fmaf is one rounding by
 * definition: inlined as an instruction where the target has fma, a libm call elsewhere (slow,
 * but the same bits as every other kernel on every host). */
static inline __attribute__((always_inline)) void tile_portable_body(double dacc[MR][NR], const float *wt,
                                                                     int ldwt, const float *panel, int klen,
                                                                     int kc, int ntok) {
    enum { SR = 6, SN = 16 };
    const int nn = ntok > SN ? NR : SN;
    for (int i0 = 0; i0 < MR; i0 += SR)
        for (int j0 = 0; j0 < nn; j0 += SN)
            for (int k0 = 0; k0 < klen; k0 += kc) {
                int k1 = k0 + kc < klen ? k0 + kc : klen;
                float acc[SR][SN] = {{0}};
                for (int k = k0; k < k1; k++) {
                    const float *xk = panel + (size_t)k * NR + j0;
                    for (int i = 0; i < SR; i++) {
                        const float a = wt[(size_t)(i0 + i) * ldwt + k];
                        for (int j = 0; j < SN; j++) acc[i][j] = __builtin_fmaf(a, xk[j], acc[i][j]);
                    }
                }
                for (int i = 0; i < SR; i++)
                    for (int j = 0; j < SN; j++) dacc[i0 + i][j0 + j] += (double)acc[i][j];
            }
}

static void tile_portable(double dacc[MR][NR], const float *wt, int ldwt, const float *panel, int klen, int kc,
                          int ntok) {
    tile_portable_body(dacc, wt, ldwt, panel, klen, kc, ntok);
}

#ifdef EVA_GEMM_X86
/* The portable source compiled for a CPU with fma (its fmaf calls become instructions). */
__attribute__((target("fma"))) static void tile_portable_fma(double dacc[MR][NR], const float *wt, int ldwt,
                                                              const float *panel, int klen, int kc, int ntok) {
    tile_portable_body(dacc, wt, ldwt, panel, klen, kc, ntok);
}

/* AVX2 + FMA: 6 rows x 16 tokens (two 8-float vectors) = 12 accumulators per pass, four passes
 * per tile and chain; per k two panel loads and six broadcasts. A half panel with at most 8 real
 * tokens (the narrow end of a block) takes 12 rows x 8 tokens instead. */
#define ROWS6(ROW) ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
/* wt: the tile's weight rows, ldwt floats apart: every broadcast addresses a base register + a
 * scaled row-stride register + k. */
#define ROWS_X(ROW) ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7) ROW(8) ROW(9) ROW(10) ROW(11)

__attribute__((target("avx2,fma"))) static inline void fold8(double *d, __m256 s) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(s)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1));
    _mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d), lo));
    _mm256_storeu_pd(d + 4, _mm256_add_pd(_mm256_loadu_pd(d + 4), hi));
}

/* 12 rows x 8 tokens (one vector per row), for a half panel with at most 8 real tokens */
__attribute__((target("avx2,fma"))) static void tile_avx2_8(double dacc[MR][NR], const float *wt, int ldwt,
                                                             const float *xk, int j0, int k0, int k1) {
    __m256 c0a = _mm256_setzero_ps(), c1a = c0a, c2a = c0a, c3a = c0a, c4a = c0a, c5a = c0a;
    __m256 c6a = c0a, c7a = c0a, c8a = c0a, c9a = c0a, c10a = c0a, c11a = c0a;
#pragma GCC unroll 2
    for (int k = k0; k < k1; k++, xk += NR) {
        const __m256 xa = _mm256_load_ps(xk);
#define ROW(i) c##i##a = _mm256_fmadd_ps(_mm256_broadcast_ss(wt + (size_t)i * ldwt + k), xa, c##i##a);
        ROWS_X(ROW)
#undef ROW
    }
#define FOLD(i) fold8(&dacc[i][j0], c##i##a);
    ROWS_X(FOLD)
#undef FOLD
}

__attribute__((target("avx2,fma"))) static void tile_avx2(double dacc[MR][NR], const float *wt, int ldwt,
                                                           const float *panel, int klen, int kc, int ntok) {
    const int nn = ntok > 16 ? NR : 16;
    for (int k0 = 0; k0 < klen; k0 += kc) {
        int k1 = k0 + kc < klen ? k0 + kc : klen;
        for (int j0 = 0; j0 < nn; j0 += 16) {
            if (ntok - j0 <= 8) { /* this half holds at most 8 real tokens */
                tile_avx2_8(dacc, wt, ldwt, panel + (size_t)k0 * NR + j0, j0, k0, k1);
                continue;
            }
            for (int i0 = 0; i0 < MR; i0 += 6) {
                __m256 c0a = _mm256_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a;
                __m256 c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
                const float *xk = panel + (size_t)k0 * NR + j0, *w0 = wt + (size_t)i0 * ldwt;
#pragma GCC unroll 2
                for (int k = k0; k < k1; k++, xk += NR) {
                    const __m256 xa = _mm256_load_ps(xk), xb = _mm256_load_ps(xk + 8);
                    __m256 a;
#define ROW(i)                                          \
    a = _mm256_broadcast_ss(w0 + (size_t)i * ldwt + k); \
    c##i##a = _mm256_fmadd_ps(a, xa, c##i##a);          \
    c##i##b = _mm256_fmadd_ps(a, xb, c##i##b);
                    ROWS6(ROW)
#undef ROW
                }
#define FOLD(i)                             \
    fold8(&dacc[i0 + i][j0], c##i##a);      \
    fold8(&dacc[i0 + i][j0 + 8], c##i##b);
                ROWS6(FOLD)
#undef FOLD
            }
        }
    }
}

/* AVX-512: 24 accumulators (12 rows x 2 vectors of 16 tokens), two panel loads and twelve
 * broadcasts per k; one vector per row when the second 16 tokens are all padding. (A narrower
 * path for <= 8 tokens would issue as many instructions: 8-float FMAs go at the same rate.) */
__attribute__((target("avx512f"))) static inline void fold16(double *d, __m512 s) {
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(s));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
    _mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d), lo));
    _mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), hi));
}


__attribute__((target("avx512f"))) static void tile_avx512_full(double dacc[MR][NR], const float *wt, int ldwt,
                                                                 const float *panel, int klen, int kc) {
    for (int k0 = 0; k0 < klen; k0 += kc) {
        int k1 = k0 + kc < klen ? k0 + kc : klen;
        __m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a;
        __m512 c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a;
        __m512 c6a = c0a, c6b = c0a, c7a = c0a, c7b = c0a, c8a = c0a, c8b = c0a;
        __m512 c9a = c0a, c9b = c0a, c10a = c0a, c10b = c0a, c11a = c0a, c11b = c0a;
        const float *xk = panel + (size_t)k0 * NR;
#pragma GCC unroll 2 /* halves the loop overhead, which competes with the FMAs for ports */
        for (int k = k0; k < k1; k++, xk += NR) {
            const __m512 xa = _mm512_load_ps(xk), xb = _mm512_load_ps(xk + 16);
            __m512 a;
#define ROW(i)                                    \
    a = _mm512_set1_ps(wt[(size_t)i * ldwt + k]); \
    c##i##a = _mm512_fmadd_ps(a, xa, c##i##a);    \
    c##i##b = _mm512_fmadd_ps(a, xb, c##i##b);
            ROWS_X(ROW)
#undef ROW
        }
#define FOLD(i)                   \
    fold16(&dacc[i][0], c##i##a); \
    fold16(&dacc[i][16], c##i##b);
        ROWS_X(FOLD)
#undef FOLD
    }
}

__attribute__((target("avx512f"))) static void tile_avx512_half(double dacc[MR][NR], const float *wt, int ldwt,
                                                                 const float *panel, int klen, int kc) {
    for (int k0 = 0; k0 < klen; k0 += kc) {
        int k1 = k0 + kc < klen ? k0 + kc : klen;
        __m512 c0a = _mm512_setzero_ps(), c1a = c0a, c2a = c0a, c3a = c0a, c4a = c0a, c5a = c0a;
        __m512 c6a = c0a, c7a = c0a, c8a = c0a, c9a = c0a, c10a = c0a, c11a = c0a;
        const float *xk = panel + (size_t)k0 * NR;
#pragma GCC unroll 2 /* halves the loop overhead, which competes with the FMAs for ports */
        for (int k = k0; k < k1; k++, xk += NR) {
            const __m512 xa = _mm512_load_ps(xk);
#define ROW(i) c##i##a = _mm512_fmadd_ps(_mm512_set1_ps(wt[(size_t)i * ldwt + k]), xa, c##i##a);
            ROWS_X(ROW)
#undef ROW
        }
#define FOLD(i) fold16(&dacc[i][0], c##i##a);
        ROWS_X(FOLD)
#undef FOLD
    }
}

__attribute__((target("avx512f"))) static void tile_avx512(double dacc[MR][NR], const float *wt, int ldwt,
                                                            const float *panel, int klen, int kc, int ntok) {
    if (ntok <= 16)
        tile_avx512_half(dacc, wt, ldwt, panel, klen, kc);
    else
        tile_avx512_full(dacc, wt, ldwt, panel, klen, kc);
}
#endif /* EVA_GEMM_X86 */

#ifdef EVA_GEMM_NEON
/* NEON (AArch64): 6 rows x 16 tokens (four 4-float vectors) = 24 accumulators per pass, four
 * passes per tile and chain; vfmaq_n_f32 is a fused multiply-add by a scalar. */
#define NROW(i, q) c##i##q = vfmaq_n_f32(c##i##q, x##q, a##i);
#define NROW4(i)                                 \
    const float a##i = w0[(size_t)i * ldwt + k]; \
    NROW(i, 0) NROW(i, 1) NROW(i, 2) NROW(i, 3)

static inline void fold4(double *d, float32x4_t s) {
    vst1q_f64(d, vaddq_f64(vld1q_f64(d), vcvt_f64_f32(vget_low_f32(s))));
    vst1q_f64(d + 2, vaddq_f64(vld1q_f64(d + 2), vcvt_high_f64_f32(s)));
}

static void tile_neon(double dacc[MR][NR], const float *wt, int ldwt, const float *panel, int klen, int kc, int ntok) {
    const int nn = ntok > 16 ? NR : 16;
    for (int k0 = 0; k0 < klen; k0 += kc) {
        int k1 = k0 + kc < klen ? k0 + kc : klen;
        for (int j0 = 0; j0 < nn; j0 += 16)
            for (int i0 = 0; i0 < MR; i0 += 6) {
                float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00;
                float32x4_t c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
                float32x4_t c30 = c00, c31 = c00, c32 = c00, c33 = c00, c40 = c00, c41 = c00;
                float32x4_t c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
                const float *xk = panel + (size_t)k0 * NR + j0, *w0 = wt + (size_t)i0 * ldwt;
#pragma GCC unroll 2
                for (int k = k0; k < k1; k++, xk += NR) {
                    const float32x4_t x0 = vld1q_f32(xk), x1 = vld1q_f32(xk + 4);
                    const float32x4_t x2 = vld1q_f32(xk + 8), x3 = vld1q_f32(xk + 12);
                    NROW4(0) NROW4(1) NROW4(2) NROW4(3) NROW4(4) NROW4(5)
                }
#define NFOLD(i)                               \
    fold4(&dacc[i0 + i][j0], c##i##0);         \
    fold4(&dacc[i0 + i][j0 + 4], c##i##1);     \
    fold4(&dacc[i0 + i][j0 + 8], c##i##2);     \
    fold4(&dacc[i0 + i][j0 + 12], c##i##3);
                NFOLD(0) NFOLD(1) NFOLD(2) NFOLD(3) NFOLD(4) NFOLD(5)
#undef NFOLD
            }
    }
}
#undef NROW
#undef NROW4
#endif /* EVA_GEMM_NEON */

/* ---- writing a tile, packing a panel ------------------------------------------------------------
 * Both transpose: a tile's sums are channel-major (dacc[i][j]: channel i, token j) while the output
 * rows are token-major, and a panel is k-major (panel[k][j]) while x rows run along k. The
 * portable versions move one float at a time; the AVX2 ones (also used with the AVX-512 kernel)
 * move 8 x 8 blocks through registers (unpack / shuffle / permute, no gathers). Same values, same
 * roundings: out = (float)(sum + (double)bias) either way. */
typedef void (*store_fn)(float *out, int ldo, double dacc[MR][NR], const double bias_d[MR], int nt, int mr);
typedef void (*pack_fn)(float *dst, const float *x, int ldx, int t0, int nt, int K);

/* out[j * ldo + i] = (float)(dacc[i][j] + bias_d[i]) for j < nt, i < mr. */
static void store_portable(float *out, int ldo, double dacc[MR][NR], const double bias_d[MR], int nt, int mr) {
    for (int j = 0; j < nt; j++) {
        float *o = out + (size_t)j * ldo;
        for (int i = 0; i < mr; i++) o[i] = (float)(dacc[i][j] + bias_d[i]);
    }
}

#ifdef EVA_GEMM_X86
/* 8 x 8 transpose: on return r[q] holds element q of every input row (AVX unpack/shuffle/permute). */
__attribute__((target("avx2,fma"))) static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* (float)(dacc[i][j0 .. j0 + 8) + b), 8 floats */
__attribute__((target("avx2,fma"))) static inline __m256 round_row8(const double *d, double b) {
    const __m256d bb = _mm256_set1_pd(b);
    __m128 lo = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_loadu_pd(d), bb));
    __m128 hi = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_loadu_pd(d + 4), bb));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

/* store_portable for a full tile (mr == 12), 8 tokens at a time: channels 0-7 by one 8 x 8
 * transpose, channels 8-11 by a 4 x 8 one. */
_Static_assert(MR == 12, "store_avx2 writes 8 + 4 channels");
__attribute__((target("avx2,fma"))) static void store_avx2(float *out, int ldo, double dacc[MR][NR],
                                                            const double bias_d[MR], int nt, int mr) {
    if (mr != MR) {
        store_portable(out, ldo, dacc, bias_d, nt, mr);
        return;
    }
    for (int j0 = 0; j0 < nt; j0 += 8) {
        __m256 r[8], u[4];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) r[i] = round_row8(&dacc[i][j0], bias_d[i]);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) u[i] = round_row8(&dacc[8 + i][j0], bias_d[8 + i]);
        transpose8(r);
        __m256 t0 = _mm256_unpacklo_ps(u[0], u[1]), t1 = _mm256_unpackhi_ps(u[0], u[1]);
        __m256 t2 = _mm256_unpacklo_ps(u[2], u[3]), t3 = _mm256_unpackhi_ps(u[2], u[3]);
        __m256 v[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)}; /* v[q]: tokens q | q + 4 */
        float *o = out + (size_t)j0 * ldo;
        if (nt - j0 >= 8) { /* constant indices throughout: r and v stay in registers */
#define STORE_TOKEN(q, hi8)                                 \
    _mm256_storeu_ps(o + (size_t)(q) * ldo, r[q]);          \
    _mm_storeu_ps(o + (size_t)(q) * ldo + 8, hi8);
            STORE_TOKEN(0, _mm256_castps256_ps128(v[0])) STORE_TOKEN(1, _mm256_castps256_ps128(v[1]))
            STORE_TOKEN(2, _mm256_castps256_ps128(v[2])) STORE_TOKEN(3, _mm256_castps256_ps128(v[3]))
            STORE_TOKEN(4, _mm256_extractf128_ps(v[0], 1)) STORE_TOKEN(5, _mm256_extractf128_ps(v[1], 1))
            STORE_TOKEN(6, _mm256_extractf128_ps(v[2], 1)) STORE_TOKEN(7, _mm256_extractf128_ps(v[3], 1))
#undef STORE_TOKEN
        } else { /* the last tokens of a block: through a staging tile */
            float stage[8][MR];
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(stage[q], r[q]);
            for (int q = 0; q < 4; q++) {
                _mm_storeu_ps(stage[q] + 8, _mm256_castps256_ps128(v[q]));
                _mm_storeu_ps(stage[q + 4] + 8, _mm256_extractf128_ps(v[q], 1));
            }
            for (int q = 0; q < nt - j0; q++) memcpy(o + (size_t)q * ldo, stage[q], sizeof stage[q]);
        }
    }
}
#endif /* EVA_GEMM_X86 */

#ifdef EVA_GEMM_X86
/* The same in 8-token x 8-k blocks through registers; rows past nt are zeros, the last k % 8
 * columns go one float at a time. */
__attribute__((target("avx2,fma"))) static void pack_avx2(float *dst, const float *x, int ldx, int t0, int nt, int K) {
    const int K8 = K - K % 8;
    for (int k0 = 0; k0 < K8; k0 += 8) /* k outer: each 128-byte panel row is written whole */
        for (int j0 = 0; j0 < NR; j0 += 8) {
            const int n = nt - j0 < 0 ? 0 : (nt - j0 < 8 ? nt - j0 : 8);
            __m256 r[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                r[q] = q < n ? _mm256_loadu_ps(x + (size_t)(t0 + j0 + q) * ldx + k0) : _mm256_setzero_ps();
            transpose8(r);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (size_t)(k0 + q) * NR + j0, r[q]);
        }
    for (int k = K8; k < K; k++)
        for (int j = 0; j < NR; j++) dst[(size_t)k * NR + j] = j < nt ? x[(size_t)(t0 + j) * ldx + k] : 0.0f;
}
#endif

/* What one kernel choice runs: the micro-kernel, the tile write and the panel pack. */
typedef struct {
    tile_fn tile;
    store_fn store;
    pack_fn pack;
} kernel_set;

/* ---- kernel selection -------------------------------------------------------------------------- */

typedef enum { KERN_PORTABLE, KERN_AVX2, KERN_AVX512, KERN_NEON, KERN_COUNT } kernel_id;
static const char *const kernel_names[KERN_COUNT] = {"portable", "avx2", "avx512", "neon"};

static bool cpu_runs(kernel_id id) {
    switch (id) {
    case KERN_PORTABLE:
        return true;
#ifdef EVA_GEMM_X86
    case KERN_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KERN_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
#ifdef EVA_GEMM_NEON
    case KERN_NEON:
        return true;
#endif
    default:
        return false;
    }
}

static kernel_set kernel_fn(kernel_id id) {
    switch (id) {
#ifdef EVA_GEMM_X86
    case KERN_AVX2:
        return (kernel_set){tile_avx2, store_avx2, pack_avx2};
    case KERN_AVX512:
        return (kernel_set){tile_avx512, store_avx2, pack_avx2};
    case KERN_PORTABLE:
        return (kernel_set){cpu_runs(KERN_AVX2) || cpu_runs(KERN_AVX512) ? tile_portable_fma : tile_portable,
                            store_portable, pack_panel};
#endif
#ifdef EVA_GEMM_NEON
    case KERN_NEON:
        return (kernel_set){tile_neon, store_portable, pack_panel};
#endif
    default:
        return (kernel_set){tile_portable, store_portable, pack_panel};
    }
}

static kernel_id best_kernel(void) {
    static const kernel_id order[] = {KERN_AVX512, KERN_AVX2, KERN_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (cpu_runs(order[i])) return order[i];
    return KERN_PORTABLE;
}

static _Atomic int kernel_sel = -1; /* kernel_id, or -1: not chosen yet (first use reads the env) */

bool eva_gemm_kernel_available(const char *name) {
    for (int i = 0; i < KERN_COUNT; i++)
        if (name && strcmp(name, kernel_names[i]) == 0) return cpu_runs((kernel_id)i);
    return false;
}

eva_status eva_gemm_set_kernel(const char *name) {
    if (!name || !name[0] || strcmp(name, "auto") == 0) {
        atomic_store(&kernel_sel, (int)best_kernel());
        return EVA_OK;
    }
    for (int i = 0; i < KERN_COUNT; i++) {
        if (strcmp(name, kernel_names[i]) != 0) continue;
        if (!cpu_runs((kernel_id)i))
            return eva_fail(EVA_ERR_UNSUPPORTED, "gemm kernel '%s' cannot run on this CPU or build (best here: %s)",
                            name, kernel_names[best_kernel()]);
        atomic_store(&kernel_sel, i);
        return EVA_OK;
    }
    return eva_fail(EVA_ERR_INVALID_ARG, "gemm kernel '%s' is not one of auto, portable, avx2, avx512, neon", name);
}

eva_status eva_gemm_kernel_from_env(void) {
    const char *e = getenv("EVA_GEMM_KERNEL");
    if (e && e[0]) {
        eva_status st = eva_gemm_set_kernel(e);
        if (st != EVA_OK) eva_fail_context("EVA_GEMM_KERNEL");
        return st;
    }
    const char *p = getenv("EVA_GEMM_PORTABLE"); /* older spelling: EVA_GEMM_PORTABLE=1 */
    return eva_gemm_set_kernel(p && p[0] == '1' ? "portable" : "auto");
}

static kernel_id current_kernel(void) {
    int k = atomic_load(&kernel_sel);
    if (k < 0) {
        if (eva_gemm_kernel_from_env() != EVA_OK) eva_gemm_set_kernel("auto"); /* the CLI checks first */
        k = atomic_load(&kernel_sel);
    }
    return (kernel_id)k;
}

bool eva_gemm_force_portable(bool on) {
    bool prev = current_kernel() == KERN_PORTABLE;
    if (on)
        eva_gemm_set_kernel("portable");
    else if (eva_gemm_kernel_from_env() != EVA_OK || current_kernel() == KERN_PORTABLE)
        eva_gemm_set_kernel("auto");
    return prev;
}

bool eva_gemm_fused(void) { return true; }

const char *eva_gemm_kernel_name(void) { return kernel_names[current_kernel()]; }

/* ---- driver -------------------------------------------------------------------------------------- */

/* Asks for weight rows [c, c + n) x columns [kb, kb + klen) to be brought towards the cache ahead
 * of use: the weights stream from memory once per call and would otherwise stall the row copies. */
static void prefetch_wblock(eva_wmat w, int ldw, int c, int n, int kb, int klen) {
    const size_t es = eva_dtype_size(w.dtype);
    for (int i = 0; i < n; i++) {
        const char *row = (const char *)w.data + ((size_t)(c + i) * ldw + kb) * es;
        for (size_t b = 0; b < (size_t)klen * es; b += 64) __builtin_prefetch(row + b, 0, 2);
    }
}

/* Asks for the output lines this tile will write for tokens [t, t + n) (channels [c0, c0 + mr)) to
 * be brought into the cache for writing, well before the write: without it the scattered 48-byte
 * row pieces miss, and the stores back up behind them. */
static void prefetch_out(float *out, int ldo, int t, int n, int c0, int mr) {
    for (int j = 0; j < n; j++) {
        float *o = out + (size_t)(t + j) * ldo + c0;
        __builtin_prefetch(o, 1, 3);
        __builtin_prefetch(o + mr - 1, 1, 3);
    }
}

/* One MR-channel tile against every panel of a packed block, over weight columns [kbeg, kend):
 * out rows [t0, t0 + tn), channels [c0, c0 + mr). The packed panels hold exactly columns
 * [kbeg, kend). Panel by panel: the micro-kernel runs over the whole range, then (when `last`)
 * the panel's sums are written out while they are still in L1. dacc: the tile's double sums,
 * cleared when `first`, written to out (+ bias) when `last` (a K range split over several calls
 * keeps adding into them). F32 weights of a full tile are read in place (row stride ldw); other
 * rows are first copied to wt (MR x (kend - kbeg); rows past mr repeat row c0, their sums are
 * dropped), F16/BF16 widened to fp32 on the way. next_c0 (or -1): the tile this thread does
 * next, whose weights are prefetched a slice per panel. */
static void tile_row(float *out, int ldo, const float *packed, int t0, int tn, eva_wmat w, int ldw, int C,
                     const float *bias, int c0, int mr, int next_c0, int kbeg, int kend, int kc, const kernel_set *ks,
                     float *wt, double (*dacc)[MR][NR], bool first, bool last) {
    const int panels = (tn + NR - 1) / NR, Kp = kend - kbeg;
    const float *wrows = wt;
    int ldwt = Kp;
    if (w.dtype == EVA_DT_F32 && mr == MR) {
        wrows = (const float *)w.data + (size_t)c0 * ldw + kbeg;
        ldwt = ldw;
    } else {
        for (int i = 0; i < MR; i++)
            widen_w(wt + (size_t)i * Kp, w, (size_t)(c0 + (i < mr ? i : 0)) * ldw + kbeg, (size_t)Kp);
    }
    double bias_d[MR];
    for (int i = 0; i < MR; i++) bias_d[i] = bias && i < mr ? (double)bias[c0 + i] : 0.0;
    const int pn = next_c0 < 0 ? 0 : (C - next_c0 < MR ? C - next_c0 : MR);
    for (int p = 0; p < panels; p++) {
        const int nt = tn - p * NR < NR ? tn - p * NR : NR, r0 = pn * p / panels, r1 = pn * (p + 1) / panels;
        if (r1 > r0) prefetch_wblock(w, ldw, next_c0 + r0, r1 - r0, kbeg, Kp);
        if (last) prefetch_out(out, ldo, t0 + p * NR, nt, c0, mr);
        if (first) memset(dacc[p], 0, sizeof dacc[p]);
        ks->tile(dacc[p], wrows, ldwt, packed + (size_t)p * NR * Kp, Kp, kc, tn - p * NR);
        if (last) ks->store(out + (size_t)(t0 + p * NR) * ldo + c0, ldo, dacc[p], bias_d, nt, mr);
    }
}

/* One product's operands and the block being computed: token block [t0, t0 + tn) over weight
 * columns [kbeg, kend). dbig: NULL when the range is all of K (each tile's sums live in the
 * worker's work buffer), else the sums of every tile, kept across the ranges that split K. */
typedef struct {
    float *out, *packed, *work;
    double *dbig;
    const float *x;
    eva_wmat w;
    const float *bias;
    int C, K, ldx, ldw, ldo, kc, kspan; /* kspan: the longest K range (sizes the work buffers) */
    kernel_set ks;
    int t0, tn, kbeg, kend;
    atomic_int next; /* the next panel (packing) or tile to hand out */
} gemm_job;

static void pack_one(gemm_job *j, int p) {
    const int Kp = j->kend - j->kbeg, nt = j->tn - p * NR < NR ? j->tn - p * NR : NR;
    j->ks.pack(j->packed + (size_t)p * NR * Kp, j->x + j->kbeg, j->ldx, j->t0 + p * NR, nt, Kp);
}

/* Tile t (channels [t * MR, t * MR + MR)) of the block on the worker whose work buffer is
 * `mywork`; next_t (or -1): the tile this worker does next, whose weights it prefetches. */
static void tile_one(gemm_job *j, int t, int next_t, float *mywork) {
    const int panels = (j->tn + NR - 1) / NR;
    int c0 = t * MR, mr = j->C - c0 < MR ? j->C - c0 : MR;
    double(*dacc)[MR][NR] = j->dbig ? (double(*)[MR][NR])(j->dbig + (size_t)t * panels * MR * NR)
                                    : (double(*)[MR][NR])(mywork + (size_t)MR * j->kspan);
    tile_row(j->out, j->ldo, j->packed, j->t0, j->tn, j->w, j->ldw, j->C, j->bias, c0, mr,
             next_t >= 0 ? next_t * MR : -1, j->kbeg, j->kend, j->kc, &j->ks, mywork, dacc, j->kbeg == 0,
             j->kend == j->K);
}

/* Pool jobs: panels, then tiles, handed out one at a time (a worker slowed down by the machine
 * takes fewer). A worker takes its next tile before computing the current one, to prefetch it. */
static void pack_job(void *ctx, int worker, int nworkers) {
    gemm_job *j = ctx;
    (void)worker, (void)nworkers;
    const int panels = (j->tn + NR - 1) / NR;
    for (int p; (p = eva_pool_next(&j->next, panels)) >= 0;) pack_one(j, p);
}

static void tiles_job(void *ctx, int worker, int nworkers) {
    gemm_job *j = ctx;
    const int tiles = (j->C + MR - 1) / MR;
    /* Tiles are handed out in runs of four (48 channels: whole cache lines of an output row whose
     * start is line-aligned) when there are enough to go round, so that two workers do not write
     * the two halves of one line (false sharing); else one at a time. */
    const int run = tiles >= 16 * nworkers ? 4 : 1, runs = (tiles + run - 1) / run;
    float *mywork = j->work + (size_t)worker * work_floats(j->kspan);
    for (int r = eva_pool_next(&j->next, runs); r >= 0;) {
        const int next = eva_pool_next(&j->next, runs), t1 = (r + 1) * run < tiles ? (r + 1) * run : tiles;
        for (int t = r * run; t < t1; t++)
            tile_one(j, t, t + 1 < t1 ? t + 1 : (next >= 0 ? next * run : -1), mywork);
        r = next;
    }
}

/* The block on `threads` workers of the pool (1: the calling thread alone). */
static void gemm_block(gemm_job *j, int threads) {
    atomic_store_explicit(&j->next, 0, memory_order_relaxed);
    eva_pool_run(threads, pack_job, j);
    atomic_store_explicit(&j->next, 0, memory_order_relaxed);
    eva_pool_run(threads, tiles_job, j);
}

/* Unpacked fallback when no packing buffer can be had: the same float chains and double sums (so
 * the same bits), slowly. */
static void gemm_naive(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K, int ldx,
                       int ldw, int ldo, int kc) {
    for (int t = 0; t < M; t++)
        for (int c = 0; c < C; c++) {
            const float *xr = x + (size_t)t * ldx;
            const size_t wr = (size_t)c * ldw;
            double s = 0.0;
            for (int k0 = 0; k0 < K; k0 += kc) {
                float f = 0.0f;
                for (int k = k0; k < k0 + kc && k < K; k++) {
                    float wk;
                    eva_widen(&wk, w.data, w.dtype, wr + (size_t)k, 1);
                    f = fmaf(wk, xr[k], f);
                }
                s += f;
            }
            out[(size_t)t * ldo + c] = (float)(s + (bias ? (double)bias[c] : 0.0));
        }
}

void eva_gemm_nt_serial(float *out, float *scratch, const float *x, const float *w_f32, const float *bias, int M,
                        int C, int K, int ldx, int ldw, int ldo, int kc) {
    const eva_wmat w = {w_f32, EVA_DT_F32};
    if (M <= 0 || C <= 0) return;
    if (kc <= 0 || kc > KC) kc = KC;
    if (!scratch) { /* no packing buffer: the same sums by plain loops */
        gemm_naive(out, x, w, bias, M, C, K, ldx, ldw, ldo, kc);
        return;
    }
    if (K <= 0) { /* empty sum: bias only */
        for (int t = 0; t < M; t++)
            for (int c = 0; c < C; c++) out[(size_t)t * ldo + c] = bias ? bias[c] : 0.0f;
        return;
    }
    const int tb = token_block(M, K);
    scratch = align64(scratch);
    gemm_job j = {out, scratch, scratch + (size_t)tb * K, NULL, x, w, bias, C, K, ldx, ldw, ldo, kc, K,
                  kernel_fn(current_kernel()), 0, 0, 0, K, 0};
    for (int t0 = 0; t0 < M; t0 += tb) {
        j.t0 = t0, j.tn = M - t0 < tb ? M - t0 : tb;
        gemm_block(&j, 1);
    }
}

/* The blocking of the parallel entry and the bytes it allocates. Long K (an MLP's second layer of
 * a wide model): a token block sized to hold all of K in L2 would be a sliver of the tokens and
 * the weights would stream once per sliver; instead K is split into ranges (kspan columns) and
 * the tiles' double sums persist across them (dbig_n doubles). */
typedef struct {
    int tb, kspan;
    size_t dbig_n, bytes;
} gemm_plan;

static gemm_plan plan_parallel(int M, int C, int K, int threads) {
    gemm_plan pl = {token_block(M, K), K, 0, 0};
    const int tb_all = (int)((((int64_t)M < TB_MAX ? M : TB_MAX) + NR - 1) / NR * NR);
    if (pl.tb < tb_all && K > 2 * KB) {
        pl.tb = tb_all;
        pl.kspan = (int)(PACK_BUDGET / pl.tb) / KB * KB;
        if (pl.kspan < KB) pl.kspan = KB;
        pl.dbig_n = (size_t)((C + MR - 1) / MR) * (size_t)(pl.tb / NR) * MR * NR;
    }
    pl.bytes = ((size_t)pl.tb * pl.kspan + (size_t)(threads > 0 ? threads : 1) * work_floats(pl.kspan)) *
                   sizeof(float) +
               pl.dbig_n * sizeof(double);
    pl.bytes = (pl.bytes + 63) & ~(size_t)63;
    return pl;
}

int64_t eva_gemm_nt_alloc_bytes(int M, int C, int K, int threads) {
    if (M <= 0 || C <= 0 || K <= 0) return 0;
    return (int64_t)plan_parallel(M, C, K, threads).bytes;
}

/* The parallel entry's packing buffer is kept between calls (one caller at a time; a concurrent
 * caller allocates its own): a forward makes hundreds of calls with a handful of sizes, and
 * allocating each anew lets the heap grow in fragments (and pays page faults). It is grown to
 * the largest size seen and held until the process ends (eva_gemm_release_cache frees it). */
static atomic_flag cache_busy = ATOMIC_FLAG_INIT;
static void *cache_buf;
static size_t cache_bytes;

static void *buffer_get(size_t bytes, bool *cached) {
    *cached = false;
    if (!atomic_flag_test_and_set_explicit(&cache_busy, memory_order_acquire)) {
        if (cache_bytes < bytes) {
            free(cache_buf);
            cache_buf = aligned_alloc(64, bytes);
            cache_bytes = cache_buf ? bytes : 0;
        }
        if (cache_buf) {
            *cached = true;
            return cache_buf;
        }
        atomic_flag_clear_explicit(&cache_busy, memory_order_release);
    }
    return aligned_alloc(64, bytes);
}

static void buffer_put(void *p, bool cached) {
    if (cached)
        atomic_flag_clear_explicit(&cache_busy, memory_order_release);
    else
        free(p);
}

void eva_gemm_release_cache(void) {
    if (atomic_flag_test_and_set_explicit(&cache_busy, memory_order_acquire)) return; /* in use */
    free(cache_buf);
    cache_buf = NULL;
    cache_bytes = 0;
    atomic_flag_clear_explicit(&cache_busy, memory_order_release);
}

void eva_gemm_nt(float *out, const float *x, const float *w, const float *bias, int M, int C, int K, int ldx,
                 int ldw, int ldo, int threads) {
    const eva_wmat wm = {w, EVA_DT_F32};
    eva_gemm_nt_w(out, x, wm, bias, M, C, K, ldx, ldw, ldo, threads);
}

void eva_gemm_nt_w(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K, int ldx, int ldw,
                   int ldo, int threads) {
    if (M <= 0 || C <= 0) return;
    if (K <= 0) { /* empty sum: bias only */
        for (int t = 0; t < M; t++)
            for (int c = 0; c < C; c++) out[(size_t)t * ldo + c] = bias ? bias[c] : 0.0f;
        return;
    }
    if (threads <= 0) threads = eva_ref_threads();
    const bool par = threads > 1 && (double)M * C * K > 2e5 && !eva_pool_in_job();
    if (!par) threads = 1;
    gemm_plan pl = plan_parallel(M, C, K, threads);
    bool cached;
    float *packed = buffer_get(pl.bytes, &cached);
    if (!packed) {
        gemm_naive(out, x, w, bias, M, C, K, ldx, ldw, ldo, KC);
        return;
    }
    float *work = packed + (size_t)pl.tb * pl.kspan;
    double *dbig = pl.dbig_n ? (double *)(work + (size_t)threads * work_floats(pl.kspan)) : NULL;
    gemm_job j = {out, packed, work, dbig, x, w, bias, C, K, ldx, ldw, ldo, KC, pl.kspan,
                  kernel_fn(current_kernel()), 0, 0, 0, 0, 0};
    for (int t0 = 0; t0 < M; t0 += pl.tb) {
        j.t0 = t0, j.tn = M - t0 < pl.tb ? M - t0 : pl.tb;
        for (int k0 = 0; k0 < K; k0 += pl.kspan) {
            j.kbeg = k0, j.kend = K - k0 < pl.kspan ? K : k0 + pl.kspan;
            gemm_block(&j, threads);
        }
    }
    buffer_put(packed, cached);
}
