/* ref_model.c: eva_ref_encode_image / eva_ref_encode_text, the reference forward of every family.
 *
 * Each tower is a flat list of ref_ops calls in the order of the upstream modules (docs/model.md §4, §5),
 * switched by the config (mlp gelu|swiglu, subln, rope, postnorm, qkv fused|split, qv_bias,
 * norm layernorm|rmsnorm, head_bias), with a tap after each module named in docs/cli.md
 * ("Golden activations"). All activation memory of a call is one workspace whose size
 * eva_ref_*_workspace_floats() gives exactly; it is taken from the caller's eva_ref_workspace
 * (grown before the first op when too small, kept for the next forward), or allocated and freed
 * by the call for the entry points without one. This file owns op order, shapes, workspace layout, input validation and taps; the
 * arithmetic is ref_ops.c's, the weights and config are the caller's (eva_model).
 */
#include "ref_model.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_ops.h"

/* ---- taps -------------------------------------------------------------------------------------- */

static void emit(const eva_tap *tap, const char *name, const float *data, int ndim, int64_t d0, int64_t d1,
                 int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    if (eva_tap_wants(tap, name) && tap->take) tap->take(tap->ctx, name, data, ndim, shape);
}

/* Formats "<prefix>.<i><suffix>" into buf and asks the tap; false without a tap. */
static bool want_block(const eva_tap *tap, char *buf, size_t n, const char *prefix, int i, const char *suffix) {
    if (!tap || !tap->wants) return false;
    snprintf(buf, n, "%s.%d%s", prefix, i, suffix);
    return tap->wants(tap->ctx, buf);
}

static void emit_block(const eva_tap *tap, const char *prefix, int i, const char *suffix, const float *data,
                       int64_t d0, int64_t d1, int64_t d2) {
    char name[EVA_TAP_NAME_MAX];
    if (want_block(tap, name, sizeof name, prefix, i, suffix) && tap->take) {
        int64_t shape[3] = {d0, d1, d2};
        tap->take(tap->ctx, name, data, 3, shape);
    }
}

/* ---- workspace ------------------------------------------------------------------------------- */

typedef struct {
    int64_t x, u, qkv, o, a, h1, h2, qkvb, patches, cols, rope, cls, attn, total;
} image_layout;

static int64_t align16(int64_t n) { return (n + 15) & ~(int64_t)15; }

static void image_plan(image_layout *lo, const eva_config *cfg, int B, int threads) {
    const eva_vision_config *v = &cfg->vision;
    int64_t G = v->patch_size > 0 ? v->image_size / v->patch_size : 0;
    int64_t N = G * G + 1, D = v->width, F = v->mlp_hidden, BN = (int64_t)B * N;
    int64_t off = 0;
#define TAKE(field, n) (lo->field = off, off += align16(n))
    TAKE(x, BN * D);
    TAKE(u, BN * D);
    TAKE(qkv, BN * 3 * D);
    TAKE(o, BN * D);
    TAKE(a, BN * D);
    TAKE(h1, BN * F);
    TAKE(h2, v->mlp == EVA_MLP_SWIGLU ? BN * F : 0);
    TAKE(qkvb, (v->qkv == EVA_QKV_FUSED && v->qv_bias) ? 3 * D : 0);
    TAKE(patches, (int64_t)B * G * G * D);
    TAKE(cols, eva_ref_patch_embed_scratch_floats(B, v->image_size, v->patch_size));
    TAKE(rope, v->rope ? 2 * G * G * v->head_dim : 0);
    TAKE(cls, (int64_t)B * D);
    TAKE(attn, eva_ref_attention_scratch_floats((int)N, v->head_dim, threads));
#undef TAKE
    lo->total = off;
}

typedef struct {
    int64_t x, u, qkv, o, a, h, pooled, attn, total;
} text_layout;

static void text_plan(text_layout *lo, const eva_config *cfg, int T, int threads) {
    const eva_text_config *t = &cfg->text;
    int64_t L = t->context_length, W = t->width, TL = (int64_t)T * L;
    int64_t hd = t->heads > 0 ? W / t->heads : 0;
    int64_t off = 0;
#define TAKE(field, n) (lo->field = off, off += align16(n))
    TAKE(x, TL * W);
    TAKE(u, TL * W);
    TAKE(qkv, TL * 3 * W);
    TAKE(o, TL * W);
    TAKE(a, TL * W);
    TAKE(h, TL * t->mlp_hidden);
    TAKE(pooled, (int64_t)T * W);
    TAKE(attn, eva_ref_attention_scratch_floats((int)L, (int)hd, threads));
#undef TAKE
    lo->total = off;
}

int64_t eva_ref_image_workspace_floats(const eva_config *cfg, int B) {
    image_layout lo;
    image_plan(&lo, cfg, B, eva_ref_threads());
    return lo.total;
}

int64_t eva_ref_text_workspace_floats(const eva_config *cfg, int T) {
    text_layout lo;
    text_plan(&lo, cfg, T, eva_ref_threads());
    return lo.total;
}

void eva_ref_workspace_free(eva_ref_workspace *w) {
    if (!w) return;
    free(w->buf);
    w->buf = NULL;
    w->floats = 0;
}

/* *ws = w's buffer, grown (never shrunk) to `floats`. */
static eva_status alloc_workspace(float **ws, eva_ref_workspace *w, int64_t floats, const char *tower) {
    *ws = NULL;
    if (floats <= 0 || (uint64_t)floats > SIZE_MAX / sizeof(float))
        return eva_fail(EVA_ERR_NOMEM, "%s tower: workspace of %lld floats cannot be allocated", tower,
                        (long long)floats);
    if (w->floats < floats) {
        eva_ref_workspace_free(w);
        w->buf = malloc((size_t)floats * sizeof(float));
        if (!w->buf)
            return eva_fail(EVA_ERR_NOMEM, "%s tower: cannot allocate the %lld-byte activation workspace", tower,
                            (long long)floats * (long long)sizeof(float));
        w->floats = floats;
    }
    *ws = w->buf;
    return EVA_OK;
}

/* ---- image tower ------------------------------------------------------------------------------ */

static void vnorm(float *y, const float *x, const float *w, const float *b, int M, const eva_vision_config *v) {
    if (v->norm == EVA_NORM_RMSNORM)
        eva_ref_rmsnorm(y, x, w, M, v->width, v->norm_eps);
    else
        eva_ref_layernorm(y, x, w, b, M, v->width, v->norm_eps);
}

/* Checks that every view the config needs is bound (a loader bug otherwise). */
static eva_status check_vblock(const eva_vblock_weights *bw, const eva_vision_config *v, int i) {
    /* Upstream (timm Mlp norm_layer, official Mlp ffn_ln) has a hidden-layer norm for GELU + subln
     * too; the tensor table lists mlp.norm only for SwiGLU, so that combination cannot be run. */
    if (v->subln && v->mlp == EVA_MLP_GELU && !bw->mlp_norm_w)
        return eva_fail(EVA_ERR_UNSUPPORTED, "image block %d: subln with a GELU MLP needs mlp.norm weights", i);
    bool ok = bw->norm1_w && bw->norm2_w && bw->proj_w.data && bw->proj_b && bw->fc2_w.data && bw->fc2_b;
    if (v->norm == EVA_NORM_LAYERNORM) ok = ok && bw->norm1_b && bw->norm2_b;
    if (v->qkv == EVA_QKV_FUSED)
        ok = ok && bw->qkv_w.data;
    else
        ok = ok && bw->q_w.data && bw->k_w.data && bw->v_w.data;
    if (v->qv_bias) ok = ok && bw->q_b && bw->v_b;
    if (v->subln) ok = ok && bw->attn_norm_w && bw->attn_norm_b && bw->mlp_norm_w && bw->mlp_norm_b;
    if (v->mlp == EVA_MLP_SWIGLU)
        ok = ok && bw->fc1_g_w.data && bw->fc1_g_b && bw->fc1_x_w.data && bw->fc1_x_b;
    else
        ok = ok && bw->fc1_w.data && bw->fc1_b;
    return ok ? EVA_OK : eva_fail(EVA_ERR_INTERNAL, "image block %d: a weight the config needs is not bound", i);
}

typedef struct {
    const eva_vision_config *v;
    const image_layout *lo;
    float *ws;
    int B, N, threads;
} vctx;

/* a[BN,D] = Attn(u[BN,D]) (projections, RoPE, core, inner LN, output projection). */
static void v_attention(const vctx *c, const eva_vblock_weights *bw, float *a, const float *u) {
    const eva_vision_config *v = c->v;
    const int BN = c->B * c->N, D = v->width, H = v->heads, d = v->head_dim;
    float *qkv = c->ws + c->lo->qkv, *o = c->ws + c->lo->o;
    float *q, *k, *vv;
    int ld;
    if (v->qkv == EVA_QKV_FUSED) {
        const float *bias = NULL;
        if (v->qv_bias) {
            float *qb = c->ws + c->lo->qkvb; /* concat(q_bias, zeros, v_bias) */
            memcpy(qb, bw->q_b, sizeof(float) * D);
            memset(qb + D, 0, sizeof(float) * D);
            memcpy(qb + 2 * D, bw->v_b, sizeof(float) * D);
            bias = qb;
        }
        eva_ref_linear_w(qkv, u, bw->qkv_w, bias, BN, 3 * D, D);
        q = qkv, k = qkv + D, vv = qkv + 2 * D, ld = 3 * D;
    } else {
        q = qkv, k = qkv + (size_t)BN * D, vv = qkv + 2 * (size_t)BN * D, ld = D;
        eva_ref_linear_w(q, u, bw->q_w, v->qv_bias ? bw->q_b : NULL, BN, D, D);
        eva_ref_linear_w(k, u, bw->k_w, NULL, BN, D, D);
        eva_ref_linear_w(vv, u, bw->v_w, v->qv_bias ? bw->v_b : NULL, BN, D, D);
    }
    if (v->rope) {
        const float *ct = c->ws + c->lo->rope, *st = ct + (size_t)(c->N - 1) * d;
        eva_ref_rope_apply(q, ct, st, c->B, c->N, H, d, ld);
        eva_ref_rope_apply(k, ct, st, c->B, c->N, H, d, ld);
    }
    eva_ref_attention(o, c->ws + c->lo->attn, q, k, vv, c->B, c->N, H, d, ld, ld, ld, false, c->threads);
    if (v->subln) eva_ref_layernorm(o, o, bw->attn_norm_w, bw->attn_norm_b, BN, D, v->norm_eps);
    eva_ref_linear_w(a, o, bw->proj_w, bw->proj_b, BN, D, D);
}

/* a[BN,D] = MLP(u[BN,D]) (GELU or SwiGLU, with the sub-LN when subln). */
static void v_mlp(const vctx *c, const eva_vblock_weights *bw, float *a, const float *u) {
    const eva_vision_config *v = c->v;
    const int BN = c->B * c->N, D = v->width, F = v->mlp_hidden;
    float *h1 = c->ws + c->lo->h1;
    if (v->mlp == EVA_MLP_SWIGLU) {
        float *h2 = c->ws + c->lo->h2;
        eva_ref_linear_w(h1, u, bw->fc1_g_w, bw->fc1_g_b, BN, F, D);
        eva_ref_linear_w(h2, u, bw->fc1_x_w, bw->fc1_x_b, BN, F, D);
        eva_ref_swiglu(h1, h1, h2, (int64_t)BN * F);
    } else {
        eva_ref_linear_w(h1, u, bw->fc1_w, bw->fc1_b, BN, F, D);
        eva_ref_gelu(h1, h1, (int64_t)BN * F);
    }
    if (v->subln) eva_ref_layernorm(h1, h1, bw->mlp_norm_w, bw->mlp_norm_b, BN, F, v->norm_eps);
    eva_ref_linear_w(a, h1, bw->fc2_w, bw->fc2_b, BN, D, F);
}

eva_status eva_ref_encode_image(float *features, const float *pixels, int B, const eva_model *m, const eva_tap *tap) {
    eva_ref_workspace w = {NULL, 0};
    eva_status st = eva_ref_encode_image_ws(&w, features, pixels, B, m, tap);
    eva_ref_workspace_free(&w);
    return st;
}

eva_status eva_ref_encode_image_ws(eva_ref_workspace *wsp, float *features, const float *pixels, int B,
                                   const eva_model *m, const eva_tap *tap) {
    if (!wsp || !features || !pixels || !m) return eva_fail(EVA_ERR_INVALID_ARG, "encode_image: NULL argument");
    const eva_config *cfg = &m->cfg;
    const eva_vision_config *v = &cfg->vision;
    const eva_vision_weights *vw = &m->w.vision;
    if (B < 1) return eva_fail(EVA_ERR_INVALID_ARG, "encode_image: batch size %d must be >= 1", B);
    if (v->patch_size < 1 || v->image_size < v->patch_size || v->image_size % v->patch_size || v->width < 1 ||
        v->heads < 1 || v->head_dim * v->heads != v->width || v->depth < 0 || v->mlp_hidden < 1 || cfg->embed_dim < 1)
        return eva_fail(EVA_ERR_INVALID_ARG, "encode_image: config '%s' is not valid (run eva_config_validate)",
                        cfg->name);
    const int G = v->image_size / v->patch_size, N = G * G + 1, D = v->width, E = cfg->embed_dim;
    if ((int64_t)B * N * 3 * (int64_t)(D > v->mlp_hidden ? D : v->mlp_hidden) > INT_MAX ||
        (int64_t)B * G * G * 3 * v->patch_size * v->patch_size > INT_MAX)
        return eva_fail(EVA_ERR_INVALID_ARG, "encode_image: batch %d is too large for this model (reduce --batch)", B);
    if (!vw->blocks || vw->depth != v->depth || !vw->patch_w || !vw->patch_b || !vw->cls_token || !vw->pos_embed ||
        !vw->norm_w || (v->norm == EVA_NORM_LAYERNORM && !vw->norm_b) || !vw->head_w.data || (v->head_bias && !vw->head_b))
        return eva_fail(EVA_ERR_INTERNAL, "encode_image: model weights are not bound to config '%s'", cfg->name);
    for (int i = 0; i < v->depth; i++) {
        eva_status st = check_vblock(&vw->blocks[i], v, i);
        if (st != EVA_OK) return st;
    }

    const int threads = eva_ref_threads();
    image_layout lo;
    image_plan(&lo, cfg, B, threads);
    float *ws;
    eva_status st = alloc_workspace(&ws, wsp, lo.total, "image");
    if (st != EVA_OK) return st;
    if (v->rope) {
        float *ct = ws + lo.rope;
        st = eva_ref_rope_table(ct, ct + (size_t)G * G * v->head_dim, G, v->rope_ref_grid, v->head_dim);
        if (st != EVA_OK) goto fail;
    }
    const int BN = B * N;
    float *x = ws + lo.x, *u = ws + lo.u, *a = ws + lo.a, *patches = ws + lo.patches;
    vctx c = {v, &lo, ws, B, N, threads};

    eva_ref_patch_embed(patches, ws + lo.cols, pixels, vw->patch_w, vw->patch_b, B, v->image_size, v->patch_size, D);
    emit(tap, "visual.trunk.patch_embed", patches, 3, B, (int64_t)G * G, D);
    eva_ref_cls_pos(x, patches, vw->cls_token, vw->pos_embed, B, N, D);
    emit(tap, "visual.trunk.pos_drop", x, 3, B, N, D);

    static const char *const pfx = "visual.trunk.blocks";
    for (int i = 0; i < v->depth; i++) {
        const eva_vblock_weights *bw = &vw->blocks[i];
        if (!v->postnorm) { /* x += Attn(N1(x)); x += MLP(N2(x)) */
            vnorm(u, x, bw->norm1_w, bw->norm1_b, BN, v);
            emit_block(tap, pfx, i, ".norm1", u, B, N, D);
            v_attention(&c, bw, a, u);
            emit_block(tap, pfx, i, ".attn", a, B, N, D);
            eva_ref_add(x, x, a, (int64_t)BN * D);
            vnorm(u, x, bw->norm2_w, bw->norm2_b, BN, v);
            emit_block(tap, pfx, i, ".norm2", u, B, N, D);
            v_mlp(&c, bw, a, u);
            emit_block(tap, pfx, i, ".mlp", a, B, N, D);
            eva_ref_add(x, x, a, (int64_t)BN * D);
        } else { /* x += N1(Attn(x)); x += N2(MLP(x)) */
            v_attention(&c, bw, a, x);
            emit_block(tap, pfx, i, ".attn", a, B, N, D);
            vnorm(u, a, bw->norm1_w, bw->norm1_b, BN, v);
            emit_block(tap, pfx, i, ".norm1", u, B, N, D);
            eva_ref_add(x, x, u, (int64_t)BN * D);
            v_mlp(&c, bw, a, x);
            emit_block(tap, pfx, i, ".mlp", a, B, N, D);
            vnorm(u, a, bw->norm2_w, bw->norm2_b, BN, v);
            emit_block(tap, pfx, i, ".norm2", u, B, N, D);
            eva_ref_add(x, x, u, (int64_t)BN * D);
        }
        emit_block(tap, pfx, i, "", x, B, N, D);
    }

    /* final norm: over every token when the tap wants it, else only the CLS rows */
    float *cls = ws + lo.cls;
    if (eva_tap_wants(tap, "visual.trunk.norm")) {
        vnorm(u, x, vw->norm_w, vw->norm_b, BN, v);
        emit(tap, "visual.trunk.norm", u, 3, B, N, D);
        for (int b = 0; b < B; b++) memcpy(cls + (size_t)b * D, u + (size_t)b * N * D, sizeof(float) * D);
    } else {
        for (int b = 0; b < B; b++) memcpy(cls + (size_t)b * D, x + (size_t)b * N * D, sizeof(float) * D);
        vnorm(cls, cls, vw->norm_w, vw->norm_b, B, v);
    }
    eva_ref_linear_w(features, cls, vw->head_w, v->head_bias ? vw->head_b : NULL, B, E, D);
    emit(tap, "visual.trunk.head", features, 2, B, E, 0);
    st = EVA_OK;
fail:
    return st;
}

/* ---- text tower ------------------------------------------------------------------------------- */

eva_status eva_ref_encode_text(float *features, const int32_t *ids, int T, const eva_model *m, const eva_tap *tap) {
    eva_ref_workspace w = {NULL, 0};
    eva_status st = eva_ref_encode_text_ws(&w, features, ids, T, m, tap);
    eva_ref_workspace_free(&w);
    return st;
}

eva_status eva_ref_encode_text_ws(eva_ref_workspace *wsp, float *features, const int32_t *ids, int T,
                                  const eva_model *m, const eva_tap *tap) {
    if (!wsp || !features || !ids || !m) return eva_fail(EVA_ERR_INVALID_ARG, "encode_text: NULL argument");
    const eva_config *cfg = &m->cfg;
    const eva_text_config *tc = &cfg->text;
    const eva_text_weights *tw = &m->w.text;
    if (T < 1) return eva_fail(EVA_ERR_INVALID_ARG, "encode_text: number of texts %d must be >= 1", T);
    const int L = tc->context_length, V = tc->vocab_size, W = tc->width, E = cfg->embed_dim;
    if (L < 1 || V < 1 || W < 1 || tc->heads < 1 || W % tc->heads || tc->layers < 0 || tc->mlp_hidden < 1 || E < 1)
        return eva_fail(EVA_ERR_INVALID_ARG, "encode_text: config '%s' is not valid (run eva_config_validate)",
                        cfg->name);
    if ((int64_t)T * L * (int64_t)(3 * W > tc->mlp_hidden ? 3 * W : tc->mlp_hidden) > INT_MAX)
        return eva_fail(EVA_ERR_INVALID_ARG, "encode_text: %d texts are too many for one batch", T);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < L; j++) {
            int32_t id = ids[(size_t)t * L + j];
            if (id < 0 || id >= V)
                return eva_fail(EVA_ERR_INVALID_ARG, "text %d position %d: token id %ld out of range [0, %d)", t, j,
                                (long)id, V);
        }
    if (!tw->blocks || tw->layers != tc->layers || !tw->token_embedding.data || !tw->positional_embedding ||
        !tw->ln_final_w || !tw->ln_final_b || !tw->text_projection)
        return eva_fail(EVA_ERR_INTERNAL, "encode_text: model weights are not bound to config '%s'", cfg->name);
    for (int i = 0; i < tc->layers; i++) {
        const eva_tblock_weights *bw = &tw->blocks[i];
        if (!bw->ln_1_w || !bw->ln_1_b || !bw->in_proj_w.data || !bw->in_proj_b || !bw->out_proj_w.data || !bw->out_proj_b ||
            !bw->ln_2_w || !bw->ln_2_b || !bw->c_fc_w.data || !bw->c_fc_b || !bw->c_proj_w.data || !bw->c_proj_b)
            return eva_fail(EVA_ERR_INTERNAL, "text block %d: a weight the config needs is not bound", i);
    }

    const int threads = eva_ref_threads();
    text_layout lo;
    text_plan(&lo, cfg, T, threads);
    float *ws;
    eva_status st = alloc_workspace(&ws, wsp, lo.total, "text");
    if (st != EVA_OK) return st;
    const int TL = T * L, Ft = tc->mlp_hidden, hd = W / tc->heads;
    const double eps = tc->norm_eps;
    float *x = ws + lo.x, *u = ws + lo.u, *qkv = ws + lo.qkv, *o = ws + lo.o, *a = ws + lo.a, *h = ws + lo.h;

    eva_ref_embedding_w(x, ids, tw->token_embedding, T, L, W);
    emit(tap, "text.token_embedding", x, 3, T, L, W);
    for (int t = 0; t < T; t++)
        eva_ref_add(x + (size_t)t * L * W, x + (size_t)t * L * W, tw->positional_embedding, (int64_t)L * W);

    static const char *const pfx = "text.transformer.resblocks";
    for (int i = 0; i < tc->layers; i++) {
        const eva_tblock_weights *bw = &tw->blocks[i];
        eva_ref_layernorm(u, x, bw->ln_1_w, bw->ln_1_b, TL, W, eps);
        emit_block(tap, pfx, i, ".ln_1", u, T, L, W);
        eva_ref_linear_w(qkv, u, bw->in_proj_w, bw->in_proj_b, TL, 3 * W, W);
        eva_ref_attention(o, ws + lo.attn, qkv, qkv + W, qkv + 2 * W, T, L, tc->heads, hd, 3 * W, 3 * W, 3 * W, true,
                          threads);
        eva_ref_linear_w(a, o, bw->out_proj_w, bw->out_proj_b, TL, W, W);
        emit_block(tap, pfx, i, ".attn", a, T, L, W);
        eva_ref_add(x, x, a, (int64_t)TL * W);
        eva_ref_layernorm(u, x, bw->ln_2_w, bw->ln_2_b, TL, W, eps);
        emit_block(tap, pfx, i, ".ln_2", u, T, L, W);
        eva_ref_linear_w(h, u, bw->c_fc_w, bw->c_fc_b, TL, Ft, W);
        eva_ref_gelu(h, h, (int64_t)TL * Ft);
        eva_ref_linear_w(a, h, bw->c_proj_w, bw->c_proj_b, TL, W, Ft);
        emit_block(tap, pfx, i, ".mlp", a, T, L, W);
        eva_ref_add(x, x, a, (int64_t)TL * W);
        emit_block(tap, pfx, i, "", x, T, L, W);
    }

    /* ln_final over every position when tapped, else only the pooled (argmax id) rows */
    float *pooled = ws + lo.pooled;
    bool all = eva_tap_wants(tap, "text.ln_final");
    if (all) {
        eva_ref_layernorm(u, x, tw->ln_final_w, tw->ln_final_b, TL, W, eps);
        emit(tap, "text.ln_final", u, 3, T, L, W);
    }
    for (int t = 0; t < T; t++) {
        int e;
        eva_ref_argmax_ids(&e, ids + (size_t)t * L, 1, L);
        memcpy(pooled + (size_t)t * W, (all ? u : x) + ((size_t)t * L + e) * W, sizeof(float) * W);
    }
    if (!all) eva_ref_layernorm(pooled, pooled, tw->ln_final_w, tw->ln_final_b, T, W, eps);
    eva_ref_matmul_proj(features, pooled, tw->text_projection, T, W, E);
    return EVA_OK;
}
