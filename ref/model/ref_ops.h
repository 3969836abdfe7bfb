/* ref_ops.h: the reference ops, one function per op, plain C (fp32 storage, double reductions).
 *
 * This file owns the numerics of every building block of the EVA-CLIP forward: linear layers,
 * LayerNorm/RMSNorm, GELU, SwiGLU, softmax, multi-head attention, the 2-D rotary embedding of
 * EVA-02, the patch embedding, the residual add, the text embedding lookup, L2 normalisation and
 * logits. It does not own the order of ops (ref_model.c) nor any allocation: ops that need
 * scratch take it as an argument, sized by the matching *_scratch_floats() function, so the
 * caller's workspace plan is exact.
 *
 * Conventions: row-major, batch first. Argument order: outputs, (scratch), inputs, weights,
 * dimensions. Shapes use the glossary letters (B images, N tokens, D width, H heads, d head_dim,
 * F MLP hidden, G grid, P patch, S image size, E embed dim, W text width, L context, V vocab,
 * T texts) or, for generic ops, M rows / K inner / C columns. `ld` arguments are row strides in
 * floats (the distance between token n and token n+1 of the same tensor), so q, k and v may be
 * column slices of one fused [.., 3D] buffer. Ops parallelise with OpenMP over rows, heads or
 * output tiles when built with it; results do not depend on the thread count.
 */
#ifndef EVA_REF_OPS_H
#define EVA_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eva_half.h"
#include "eva_status.h"

/* Number of OpenMP threads the ops will use (1 without OpenMP). */
int eva_ref_threads(void);

/* out[M,C] = x[M,K] . w[C,K]^T + bias[C] (bias may be NULL). Each dot product is accumulated
 * in float over blocks of at most 512 products (8-lane partial sums) and the block sums in
 * double; the bias is added in double. out must not alias x or w. */
void eva_ref_linear(float *out, const float *x, const float *w, const float *bias, int M, int C, int K);
/* The same with w held as F32, F16 or BF16 (widened exactly while the SGEMM packs it). */
void eva_ref_linear_w(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K);

/* y[M,C] = LayerNorm over the last dim: (x - mean) / sqrt(var + eps) * w + b, biased variance,
 * two-pass statistics in double. b may be NULL (no bias). y may equal x (in place). */
void eva_ref_layernorm(float *y, const float *x, const float *w, const float *b, int M, int C, double eps);

/* y[M,C] = x * (mean(x^2) + eps)^-1/2 * w (RMSNorm, statistic in double). y may equal x. */
void eva_ref_rmsnorm(float *y, const float *x, const float *w, int M, int C, double eps);

/* y[n] = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU; results below 2^-126 in magnitude
 * are flushed to a zero of their sign). y may equal x. */
void eva_ref_gelu(float *y, const float *x, int64_t n);

/* z[n] = silu(g) * a = g / (1 + exp(-g)) * a. z may equal g or a. */
void eva_ref_swiglu(float *z, const float *g, const float *a, int64_t n);

/* y[M,C] = row softmax of x (row maximum subtracted, sums in double). -INFINITY entries give 0;
 * every row must hold at least one finite entry. y may equal x. */
void eva_ref_softmax(float *y, const float *x, int M, int C);

/* y[n] = e^x[n] in float, by the exp of the attention softmax (16 lanes, within 1 ulp of the
 * exact value; NaN gives NaN, results below the smallest normal float, 2^-126, are 0). y may
 * equal x. */
void eva_ref_expf(float *y, const float *x, int64_t n);

/* y[n] = a + b (residual add). y may equal a or b. */
void eva_ref_add(float *y, const float *a, const float *b, int64_t n);

/* Scratch floats eva_ref_attention needs for N tokens of head_dim d on `threads` threads. */
int64_t eva_ref_attention_scratch_floats(int N, int d, int threads);

/* Multi-head self-attention core (no projections): for every batch item b and head j,
 *   o_j = softmax((q_j * scale) . k_j^T + mask) . v_j,  scale = (float)(1 / sqrt(d)) (double
 * computed, rounded to float, multiplied into q first as the official code does),
 * mask = -inf above the diagonal when `causal`, and the heads concatenated in head order.
 *   out [B,N,H*d] (contiguous, row stride H*d)
 *   q, k, v: [B,N,..] with head j at columns [j*d, (j+1)*d) and row stride ldq/ldk/ldv (>= H*d)
 *   scratch: eva_ref_attention_scratch_floats(N, d, threads) floats
 * Parallel over (batch, head) pairs on `threads` threads (1..; more than OpenMP has is fine). */
void eva_ref_attention(float *out, float *scratch, const float *q, const float *k, const float *v, int B, int N,
                       int H, int d, int ldq, int ldk, int ldv, bool causal, int threads);

/* 2-D rotary tables of EVA-02 (docs/model.md §4.5; timm RotaryEmbeddingCat(dim=d, in_pixels=False,
 * feat_shape=(G,G), ref_feat_shape=(ref,ref))), computed in float32 like upstream:
 *   F = d/4 bands f_k = 1 / 10000^(k/F) (k/F and the power in float32), k = 0..F-1;
 *   positions p_i = (i / G) * ref in float32, i = 0..G-1;
 *   for the patch (r, c) = table row n = r*G + c:
 *     theta[n][2k] = theta[n][2k+1] = p_r * f_k            (features [0, d/2): the row)
 *     theta[n][d/2+2k] = theta[n][d/2+2k+1] = p_c * f_k    (features [d/2, d): the column)
 *   cos_t[n][i] = cos(theta), sin_t[n][i] = sin(theta) (float32 product, sin/cos rounded to float).
 * cos_t, sin_t: [G*G, d]. EVA_ERR_INVALID_ARG unless d is a positive multiple of 4 and G, ref >= 1. */
eva_status eva_ref_rope_table(float *cos_t, float *sin_t, int G, int ref, int d);

/* Rotates q or k in place with the tables above (interleaved pairs, all H heads, same table for
 * every head): for tokens n = 1..N-1 (token 0 = CLS is left as is), row t = n - 1, pair m:
 *   y[2m]   = x[2m]   * C[t][2m]   - x[2m+1] * S[t][2m]
 *   y[2m+1] = x[2m+1] * C[t][2m+1] + x[2m]   * S[t][2m+1]
 * x: [B,N,..] with head j at columns [j*d, (j+1)*d), row stride ld; cos_t, sin_t: [N-1, d]. */
void eva_ref_rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int N, int H, int d, int ld);

/* Floats of im2col scratch eva_ref_patch_embed needs: B*G*G*3*P*P. */
int64_t eva_ref_patch_embed_scratch_floats(int B, int S, int P);

/* Patch embedding (Conv2d(3, D, kernel P, stride P) with bias) as one matmul:
 *   out[B,G*G,D]: token r*G + c = flatten(pixels[b, :, rP:(r+1)P, cP:(c+1)P]) in (ch, i, j) order
 *                 . w^T + bias, G = S / P
 *   scratch: eva_ref_patch_embed_scratch_floats(B, S, P) floats
 *   pixels [B,3,S,S]; w [D,3,P,P]; bias [D]. */
void eva_ref_patch_embed(float *out, float *scratch, const float *pixels, const float *w, const float *bias, int B,
                         int S, int P, int D);

/* x[B,N,D] = concat(cls, patches[b]) + pos: x[b,0] = cls + pos[0], x[b,n] = patches[b,n-1] + pos[n].
 *   patches [B,N-1,D]; cls [D]; pos [N,D]. */
void eva_ref_cls_pos(float *x, const float *patches, const float *cls, const float *pos, int B, int N, int D);

/* Text embedding lookup: out[T,L,W] = table[ids[t,l]] (ids already validated in [0, V)).
 *   ids [T,L]; table [V,W]. */
void eva_ref_embedding(float *out, const int32_t *ids, const float *table, int T, int L, int W);
/* The same with the table held as F32, F16 or BF16 (rows widened exactly). */
void eva_ref_embedding_w(float *out, const int32_t *ids, eva_wmat table, int T, int L, int W);

/* First index of the largest id of each text: pos[T] = argmax_l ids[t,l]. ids [T,L]. */
void eva_ref_argmax_ids(int *pos, const int32_t *ids, int T, int L);

/* out[M,E] = x[M,W] . P[W,E] (text projection, stored [in, out]; dot products in double). */
void eva_ref_matmul_proj(float *out, const float *x, const float *P, int M, int W, int E);

#endif
