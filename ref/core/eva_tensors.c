/* eva_tensors.c: expands a config into the tensor table (docs/model.md §9 names, both namings) and binds
 * the typed views. The three spec tables below (vision non-block, vision block, text) are the only
 * place tensor names are written: the loader, the parameter counts and the views all come from
 * them. */
#include "eva_tensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shape of a tensor in terms of the config. */
typedef enum {
    SH_D,        /* [D] */
    SH_3D_D,     /* [3D,D] */
    SH_D_D,      /* [D,D] */
    SH_F,        /* [F] */
    SH_F_D,      /* [F,D] */
    SH_D_F,      /* [D,F] */
    SH_PATCH,    /* [D,3,P,P] */
    SH_CLS,      /* [1,1,D] */
    SH_POS,      /* [1,N,D] */
    SH_E,        /* [E] */
    SH_E_D,      /* [E,D] */
    SH_W,        /* [W] */
    SH_3W,       /* [3W] */
    SH_3W_W,     /* [3W,W] */
    SH_W_W,      /* [W,W] */
    SH_FT,       /* [Ft] text MLP hidden */
    SH_FT_W,     /* [Ft,W] */
    SH_W_FT,     /* [W,Ft] */
    SH_V_W,      /* [V,W] */
    SH_L_W,      /* [L,W] */
    SH_W_E,      /* [W,E] */
    SH_SCALAR    /* [] */
} eva_shape_kind;

/* When a tensor is present. */
typedef enum {
    P_ALL,
    P_LAYERNORM,       /* norm has a bias (LayerNorm, not RMSNorm) */
    P_FUSED,
    P_FUSED_QVBIAS,
    P_SPLIT,
    P_SPLIT_QVBIAS,
    P_SUBLN,
    P_GELU,
    P_SWIGLU,
    P_SWIGLU_SUBLN,
    P_HEAD_BIAS
} eva_presence;

typedef struct {
    const char *name;      /* open_clip suffix (after the prefix) */
    const char *official;  /* official suffix, or NULL when the same */
    eva_shape_kind shape;
    eva_presence when;
    eva_view_kind view;
    size_t field;
    int typed; /* an eva_wmat view (GEMM weight, embedding table) */
} eva_tensor_spec;

#define VF(f) EVA_VIEW_VISION, offsetof(eva_vision_weights, f), 0
#define VB(f) EVA_VIEW_VBLOCK, offsetof(eva_vblock_weights, f), 0
#define TF(f) EVA_VIEW_TEXT, offsetof(eva_text_weights, f), 0
#define TB(f) EVA_VIEW_TBLOCK, offsetof(eva_tblock_weights, f), 0
/* typed (eva_wmat) views */
#define VFM(f) EVA_VIEW_VISION, offsetof(eva_vision_weights, f), 1
#define VBM(f) EVA_VIEW_VBLOCK, offsetof(eva_vblock_weights, f), 1
#define TFM(f) EVA_VIEW_TEXT, offsetof(eva_text_weights, f), 1
#define TBM(f) EVA_VIEW_TBLOCK, offsetof(eva_tblock_weights, f), 1

/* prefix: visual.trunk. (open_clip) / visual. (official) */
static const eva_tensor_spec vision_specs[] = {
    {"patch_embed.proj.weight", NULL, SH_PATCH, P_ALL, VF(patch_w)},
    {"patch_embed.proj.bias", NULL, SH_D, P_ALL, VF(patch_b)},
    {"cls_token", NULL, SH_CLS, P_ALL, VF(cls_token)},
    {"pos_embed", NULL, SH_POS, P_ALL, VF(pos_embed)},
};
/* prefix: visual.trunk.blocks.<i>. / visual.blocks.<i>. */
static const eva_tensor_spec vblock_specs[] = {
    {"norm1.weight", NULL, SH_D, P_ALL, VB(norm1_w)},
    {"norm1.bias", NULL, SH_D, P_LAYERNORM, VB(norm1_b)},
    {"attn.q_bias", NULL, SH_D, P_FUSED_QVBIAS, VB(q_b)},
    {"attn.v_bias", NULL, SH_D, P_FUSED_QVBIAS, VB(v_b)},
    {"attn.qkv.weight", NULL, SH_3D_D, P_FUSED, VBM(qkv_w)},
    {"attn.q_proj.weight", NULL, SH_D_D, P_SPLIT, VBM(q_w)},
    {"attn.q_proj.bias", "attn.q_bias", SH_D, P_SPLIT_QVBIAS, VB(q_b)},
    {"attn.k_proj.weight", NULL, SH_D_D, P_SPLIT, VBM(k_w)},
    {"attn.v_proj.weight", NULL, SH_D_D, P_SPLIT, VBM(v_w)},
    {"attn.v_proj.bias", "attn.v_bias", SH_D, P_SPLIT_QVBIAS, VB(v_b)},
    {"attn.norm.weight", "attn.inner_attn_ln.weight", SH_D, P_SUBLN, VB(attn_norm_w)},
    {"attn.norm.bias", "attn.inner_attn_ln.bias", SH_D, P_SUBLN, VB(attn_norm_b)},
    {"attn.proj.weight", NULL, SH_D_D, P_ALL, VBM(proj_w)},
    {"attn.proj.bias", NULL, SH_D, P_ALL, VB(proj_b)},
    {"norm2.weight", NULL, SH_D, P_ALL, VB(norm2_w)},
    {"norm2.bias", NULL, SH_D, P_LAYERNORM, VB(norm2_b)},
    {"mlp.fc1.weight", NULL, SH_F_D, P_GELU, VBM(fc1_w)},
    {"mlp.fc1.bias", NULL, SH_F, P_GELU, VB(fc1_b)},
    {"mlp.fc1_g.weight", "mlp.w1.weight", SH_F_D, P_SWIGLU, VBM(fc1_g_w)},
    {"mlp.fc1_g.bias", "mlp.w1.bias", SH_F, P_SWIGLU, VB(fc1_g_b)},
    {"mlp.fc1_x.weight", "mlp.w2.weight", SH_F_D, P_SWIGLU, VBM(fc1_x_w)},
    {"mlp.fc1_x.bias", "mlp.w2.bias", SH_F, P_SWIGLU, VB(fc1_x_b)},
    {"mlp.norm.weight", "mlp.ffn_ln.weight", SH_F, P_SWIGLU_SUBLN, VB(mlp_norm_w)},
    {"mlp.norm.bias", "mlp.ffn_ln.bias", SH_F, P_SWIGLU_SUBLN, VB(mlp_norm_b)},
    {"mlp.fc2.weight", NULL, SH_D_F, P_GELU, VBM(fc2_w)},
    {"mlp.fc2.bias", NULL, SH_D, P_GELU, VB(fc2_b)},
    {"mlp.fc2.weight", "mlp.w3.weight", SH_D_F, P_SWIGLU, VBM(fc2_w)},
    {"mlp.fc2.bias", "mlp.w3.bias", SH_D, P_SWIGLU, VB(fc2_b)},
};
/* prefix: visual.trunk. / visual. (after the blocks) */
static const eva_tensor_spec vision_tail_specs[] = {
    {"norm.weight", NULL, SH_D, P_ALL, VF(norm_w)},
    {"norm.bias", NULL, SH_D, P_LAYERNORM, VF(norm_b)},
    {"head.weight", NULL, SH_E_D, P_ALL, VFM(head_w)},
    {"head.bias", NULL, SH_E, P_HEAD_BIAS, VF(head_b)},
};
/* prefix: text. (same in both namings) */
static const eva_tensor_spec text_specs[] = {
    {"token_embedding.weight", NULL, SH_V_W, P_ALL, TFM(token_embedding)},
    {"positional_embedding", NULL, SH_L_W, P_ALL, TF(positional_embedding)},
};
/* prefix: text.transformer.resblocks.<i>. */
static const eva_tensor_spec tblock_specs[] = {
    {"ln_1.weight", NULL, SH_W, P_ALL, TB(ln_1_w)},
    {"ln_1.bias", NULL, SH_W, P_ALL, TB(ln_1_b)},
    {"attn.in_proj_weight", NULL, SH_3W_W, P_ALL, TBM(in_proj_w)},
    {"attn.in_proj_bias", NULL, SH_3W, P_ALL, TB(in_proj_b)},
    {"attn.out_proj.weight", NULL, SH_W_W, P_ALL, TBM(out_proj_w)},
    {"attn.out_proj.bias", NULL, SH_W, P_ALL, TB(out_proj_b)},
    {"ln_2.weight", NULL, SH_W, P_ALL, TB(ln_2_w)},
    {"ln_2.bias", NULL, SH_W, P_ALL, TB(ln_2_b)},
    {"mlp.c_fc.weight", NULL, SH_FT_W, P_ALL, TBM(c_fc_w)},
    {"mlp.c_fc.bias", NULL, SH_FT, P_ALL, TB(c_fc_b)},
    {"mlp.c_proj.weight", NULL, SH_W_FT, P_ALL, TBM(c_proj_w)},
    {"mlp.c_proj.bias", NULL, SH_W, P_ALL, TB(c_proj_b)},
};
static const eva_tensor_spec text_tail_specs[] = {
    {"ln_final.weight", NULL, SH_W, P_ALL, TF(ln_final_w)},
    {"ln_final.bias", NULL, SH_W, P_ALL, TF(ln_final_b)},
    {"text_projection", NULL, SH_W_E, P_ALL, TF(text_projection)},
};

#define NSPEC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int present(eva_presence p, const eva_vision_config *v) {
    switch (p) {
    case P_ALL: return 1;
    case P_LAYERNORM: return v->norm == EVA_NORM_LAYERNORM;
    case P_FUSED: return v->qkv == EVA_QKV_FUSED;
    case P_FUSED_QVBIAS: return v->qkv == EVA_QKV_FUSED && v->qv_bias;
    case P_SPLIT: return v->qkv == EVA_QKV_SPLIT;
    case P_SPLIT_QVBIAS: return v->qkv == EVA_QKV_SPLIT && v->qv_bias;
    case P_SUBLN: return v->subln;
    case P_GELU: return v->mlp == EVA_MLP_GELU;
    case P_SWIGLU: return v->mlp == EVA_MLP_SWIGLU;
    case P_SWIGLU_SUBLN: return v->mlp == EVA_MLP_SWIGLU && v->subln;
    case P_HEAD_BIAS: return v->head_bias;
    }
    return 0;
}

static int shape_of(eva_shape_kind k, const eva_config *c, int64_t *s) {
    const int64_t D = c->vision.width, F = c->vision.mlp_hidden, P = c->vision.patch_size, N = c->vision.tokens,
                  E = c->embed_dim, W = c->text.width, Ft = c->text.mlp_hidden, V = c->text.vocab_size,
                  L = c->text.context_length;
    switch (k) {
    case SH_D: s[0] = D; return 1;
    case SH_3D_D: s[0] = 3 * D; s[1] = D; return 2;
    case SH_D_D: s[0] = D; s[1] = D; return 2;
    case SH_F: s[0] = F; return 1;
    case SH_F_D: s[0] = F; s[1] = D; return 2;
    case SH_D_F: s[0] = D; s[1] = F; return 2;
    case SH_PATCH: s[0] = D; s[1] = 3; s[2] = P; s[3] = P; return 4;
    case SH_CLS: s[0] = 1; s[1] = 1; s[2] = D; return 3;
    case SH_POS: s[0] = 1; s[1] = N; s[2] = D; return 3;
    case SH_E: s[0] = E; return 1;
    case SH_E_D: s[0] = E; s[1] = D; return 2;
    case SH_W: s[0] = W; return 1;
    case SH_3W: s[0] = 3 * W; return 1;
    case SH_3W_W: s[0] = 3 * W; s[1] = W; return 2;
    case SH_W_W: s[0] = W; s[1] = W; return 2;
    case SH_FT: s[0] = Ft; return 1;
    case SH_FT_W: s[0] = Ft; s[1] = W; return 2;
    case SH_W_FT: s[0] = W; s[1] = Ft; return 2;
    case SH_V_W: s[0] = V; s[1] = W; return 2;
    case SH_L_W: s[0] = L; s[1] = W; return 2;
    case SH_W_E: s[0] = W; s[1] = E; return 2;
    case SH_SCALAR: return 0;
    }
    return 0;
}

typedef struct {
    eva_tensor_table *tt;
    int cap;
    const eva_config *cfg;
} eva_table_builder;

static eva_status add_specs(eva_table_builder *b, const eva_tensor_spec *specs, int n, const char *prefix,
                            const char *official_prefix, eva_tower tower, int block) {
    for (int k = 0; k < n; k++) {
        const eva_tensor_spec *sp = &specs[k];
        if (tower == EVA_TOWER_IMAGE && !present(sp->when, &b->cfg->vision)) continue;
        if (b->tt->count == b->cap) {
            int ncap = b->cap ? 2 * b->cap : 256;
            eva_tensor_desc *items = realloc(b->tt->items, (size_t)ncap * sizeof *items);
            if (!items) return eva_fail(EVA_ERR_NOMEM, "out of memory building the tensor table");
            b->tt->items = items;
            b->cap = ncap;
        }
        eva_tensor_desc *d = &b->tt->items[b->tt->count++];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s%s", prefix, sp->name);
        snprintf(d->official, sizeof d->official, "%s%s", official_prefix, sp->official ? sp->official : sp->name);
        d->ndim = shape_of(sp->shape, b->cfg, d->shape);
        d->numel = 1;
        for (int i = 0; i < d->ndim; i++) d->numel *= d->shape[i];
        d->offset = b->tt->arena_floats;
        b->tt->arena_floats += (d->numel + EVA_ARENA_ALIGN_FLOATS - 1) / EVA_ARENA_ALIGN_FLOATS * EVA_ARENA_ALIGN_FLOATS;
        d->tower = tower;
        d->view = sp->view;
        d->block = block;
        d->field = sp->field;
        d->typed = sp->typed;
    }
    return EVA_OK;
}

eva_status eva_tensors_build(eva_tensor_table *tt, const eva_config *cfg) {
    eva_table_builder b = {tt, 0, cfg};
    eva_status st = EVA_OK;
    char p[64], po[64];
    memset(tt, 0, sizeof *tt);
    eva_family fam = eva_config_family(cfg);
    tt->official_only = fam == EVA_FAMILY_RMS_PRE || fam == EVA_FAMILY_RMS_POST;
    if ((st = add_specs(&b, vision_specs, NSPEC(vision_specs), "visual.trunk.", "visual.", EVA_TOWER_IMAGE, -1)))
        goto fail;
    for (int i = 0; i < cfg->vision.depth; i++) {
        snprintf(p, sizeof p, "visual.trunk.blocks.%d.", i);
        snprintf(po, sizeof po, "visual.blocks.%d.", i);
        if ((st = add_specs(&b, vblock_specs, NSPEC(vblock_specs), p, po, EVA_TOWER_IMAGE, i))) goto fail;
    }
    if ((st = add_specs(&b, vision_tail_specs, NSPEC(vision_tail_specs), "visual.trunk.", "visual.", EVA_TOWER_IMAGE,
                        -1)))
        goto fail;
    if ((st = add_specs(&b, text_specs, NSPEC(text_specs), "text.", "text.", EVA_TOWER_TEXT, -1))) goto fail;
    for (int i = 0; i < cfg->text.layers; i++) {
        snprintf(p, sizeof p, "text.transformer.resblocks.%d.", i);
        if ((st = add_specs(&b, tblock_specs, NSPEC(tblock_specs), p, p, EVA_TOWER_TEXT, i))) goto fail;
    }
    if ((st = add_specs(&b, text_tail_specs, NSPEC(text_tail_specs), "text.", "text.", EVA_TOWER_TEXT, -1))) goto fail;
    static const eva_tensor_spec root_spec[] = {
        {"logit_scale", NULL, SH_SCALAR, P_ALL, EVA_VIEW_ROOT, offsetof(eva_weight_views, logit_scale), 0}};
    if ((st = add_specs(&b, root_spec, 1, "", "", EVA_TOWER_TOP, -1))) goto fail;
    return EVA_OK;
fail:
    eva_tensors_free(tt);
    return st;
}

void eva_tensors_free(eva_tensor_table *tt) {
    if (!tt) return;
    free(tt->items);
    memset(tt, 0, sizeof *tt);
}

int eva_tensors_find(const eva_tensor_table *tt, const char *name) {
    for (int i = 0; i < tt->count; i++)
        if (!strcmp(tt->items[i].name, name) || !strcmp(tt->items[i].official, name)) return i;
    return -1;
}

int eva_tensors_is_ignored_key(const char *name) {
    size_t n = strlen(name);
    static const char *const suffixes[] = {"rope.freqs_cos", "rope.freqs_sin"};
    for (int k = 0; k < 2; k++) {
        size_t m = strlen(suffixes[k]);
        if (n >= m && !strcmp(name + n - m, suffixes[k])) return 1;
    }
    return 0;
}

/* Binds tensor i to base + offset (base non-NULL) or to at[i]. */
static void bind_views(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                       const eva_tensor_table *tt, const float *base, const eva_wmat *at) {
    memset(views, 0, sizeof *views);
    /* depth/layers: one past the largest block index seen */
    int depth = 0, layers = 0;
    for (int i = 0; i < tt->count; i++) {
        const eva_tensor_desc *d = &tt->items[i];
        if (d->view == EVA_VIEW_VBLOCK && d->block + 1 > depth) depth = d->block + 1;
        if (d->view == EVA_VIEW_TBLOCK && d->block + 1 > layers) layers = d->block + 1;
    }
    if (blocks_v) memset(blocks_v, 0, (size_t)depth * sizeof *blocks_v);
    if (blocks_t) memset(blocks_t, 0, (size_t)layers * sizeof *blocks_t);
    views->vision.blocks = blocks_v;
    views->vision.depth = depth;
    views->text.blocks = blocks_t;
    views->text.layers = layers;
    for (int i = 0; i < tt->count; i++) {
        const eva_tensor_desc *d = &tt->items[i];
        char *owner = NULL;
        switch (d->view) {
        case EVA_VIEW_VISION: owner = (char *)&views->vision; break;
        case EVA_VIEW_VBLOCK: owner = blocks_v ? (char *)&blocks_v[d->block] : NULL; break;
        case EVA_VIEW_TEXT: owner = (char *)&views->text; break;
        case EVA_VIEW_TBLOCK: owner = blocks_t ? (char *)&blocks_t[d->block] : NULL; break;
        case EVA_VIEW_ROOT: owner = (char *)views; break;
        }
        if (!owner) continue;
        eva_wmat where = {NULL, EVA_DT_F32};
        if (base)
            where.data = base + d->offset;
        else if (at)
            where = at[i];
        if (d->typed) {
            memcpy(owner + d->field, &where, sizeof where);
        } else {
            const float *ptr = (const float *)where.data;
            memcpy(owner + d->field, &ptr, sizeof ptr);
        }
    }
}

void eva_tensors_bind(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                      const eva_tensor_table *tt, const float *base) {
    bind_views(views, blocks_v, blocks_t, tt, base, NULL);
}

void eva_tensors_bind_at(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                         const eva_tensor_table *tt, const eva_wmat *at) {
    bind_views(views, blocks_v, blocks_t, tt, NULL, at);
}
