/* eva_tensors.h: the tensor table expanded from a config, and the typed weight views.
 *
 * eva_tensors_build() lists every parameter tensor of a model (name in open_clip naming, name in
 * the official EVA-CLIP naming, shape, element count, offset in a float arena). The table is the
 * single source of truth for what a weights file must contain (the loader in eva_weights.c
 * demands a one-to-one match) and for where each tensor lives in an all-fp32 arena.
 * eva_tensors_bind() points the views at such an arena; eva_tensors_bind_at() at one place per
 * tensor. Views never own memory.
 *
 * Dtypes: the weight matrices a GEMM multiplies by (and the token embedding, which is gathered by
 * rows) are eva_wmat views, held in the dtype they were stored in (F32, F16 or BF16: a loaded
 * F16/BF16 file stays 2 bytes per value in memory and is widened to fp32 while the GEMM packs
 * weight panels); every other tensor (norms, biases, layer scales, patch/cls/position
 * embeddings, text projection, logit scale; under 1% of any variant's parameters) is a
 * `const float *` view, widened at load. eva_tensor_desc.typed says which.
 *
 * Glossary of dimensions: B images, N tokens (G*G+1), D vision width, H heads, d head_dim,
 * F MLP hidden, G grid, P patch, S image size, E embed dim, W text width, L context length,
 * V vocab, T texts.
 */
#ifndef EVA_TENSORS_H
#define EVA_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "eva_config.h"
#include "eva_half.h"

#define EVA_MAX_NDIM 4
#define EVA_NAME_MAX 96
/* Alignment of every tensor in the arena, in floats (64 bytes). */
#define EVA_ARENA_ALIGN_FLOATS 16

/* One vision block. Absent tensors are NULL (which ones depends on the family). */
typedef struct {
    const float *norm1_w, *norm1_b;           /* [D]; _b NULL for RMSNorm */
    eva_wmat qkv_w;                           /* [3D,D] fused (EVA-01, bigE, 8B, 18B) */
    eva_wmat q_w, k_w, v_w;                   /* [D,D] split (EVA-02) */
    const float *q_b, *v_b;                   /* [D] q/v biases (k has none); NULL without */
    const float *attn_norm_w, *attn_norm_b;   /* [D] inner attention LayerNorm (EVA-02 subln) */
    eva_wmat proj_w;                          /* [D,D] */
    const float *proj_b;                      /* [D] */
    const float *norm2_w, *norm2_b;           /* [D] */
    eva_wmat fc1_w;                           /* GELU MLP: [F,D] */
    const float *fc1_b;                       /* [F] */
    eva_wmat fc1_g_w;                         /* SwiGLU gate branch (official w1): [F,D] */
    const float *fc1_g_b;                     /* [F] */
    eva_wmat fc1_x_w;                         /* SwiGLU linear branch (official w2): [F,D] */
    const float *fc1_x_b;                     /* [F] */
    const float *mlp_norm_w, *mlp_norm_b;     /* SwiGLU sub-LayerNorm (official ffn_ln): [F] */
    eva_wmat fc2_w;                           /* [D,F] (official w3 for SwiGLU) */
    const float *fc2_b;                       /* [D] */
} eva_vblock_weights;

typedef struct {
    const float *patch_w, *patch_b;           /* [D,3,P,P], [D] */
    const float *cls_token;                   /* [1,1,D] */
    const float *pos_embed;                   /* [1,N,D] */
    const float *norm_w, *norm_b;             /* [D]; _b NULL for RMSNorm */
    eva_wmat head_w;                          /* [E,D] */
    const float *head_b;                      /* [E]; NULL for 8B/18B */
    eva_vblock_weights *blocks;               /* [depth] */
    int depth;
} eva_vision_weights;

typedef struct {
    const float *ln_1_w, *ln_1_b;             /* [W] */
    eva_wmat in_proj_w;                       /* [3W,W] rows q;k;v */
    const float *in_proj_b;                   /* [3W] */
    eva_wmat out_proj_w;                      /* [W,W] */
    const float *out_proj_b;                  /* [W] */
    const float *ln_2_w, *ln_2_b;             /* [W] */
    eva_wmat c_fc_w;                          /* [Ft,W] */
    const float *c_fc_b;                      /* [Ft] */
    eva_wmat c_proj_w;                        /* [W,Ft] */
    const float *c_proj_b;                    /* [W] */
} eva_tblock_weights;

typedef struct {
    eva_wmat token_embedding;                 /* [V,W] */
    const float *positional_embedding;        /* [L,W] */
    const float *ln_final_w, *ln_final_b;     /* [W] */
    const float *text_projection;             /* [W,E], used as x . P */
    eva_tblock_weights *blocks;               /* [layers] */
    int layers;
} eva_text_weights;

typedef struct {
    eva_vision_weights vision;
    eva_text_weights text;
    const float *logit_scale;                 /* [] scalar */
} eva_weight_views;

typedef enum { EVA_TOWER_IMAGE = 0, EVA_TOWER_TEXT = 1, EVA_TOWER_TOP = 2 } eva_tower;

/* Where a tensor's view lives: which struct (top-level vision/text/root, or a block) and the
 * byte offset of the field (`const float *`, or eva_wmat when the tensor is typed) within it. */
typedef enum { EVA_VIEW_VISION = 0, EVA_VIEW_VBLOCK, EVA_VIEW_TEXT, EVA_VIEW_TBLOCK, EVA_VIEW_ROOT } eva_view_kind;

typedef struct {
    char name[EVA_NAME_MAX];      /* open_clip state-dict key, e.g. visual.trunk.blocks.0.attn.q_proj.bias */
    char official[EVA_NAME_MAX];  /* official EVA-CLIP key, e.g. visual.blocks.0.attn.q_bias */
    int ndim;                     /* 0 for the logit_scale scalar */
    int64_t shape[EVA_MAX_NDIM];
    int64_t numel;
    int64_t offset;               /* in floats from the arena base; multiple of EVA_ARENA_ALIGN_FLOATS */
    eva_tower tower;
    eva_view_kind view;
    int block;                    /* block index for EVA_VIEW_VBLOCK / EVA_VIEW_TBLOCK, else -1 */
    size_t field;                 /* offsetof the view in its struct */
    int typed;                    /* 1: an eva_wmat view, kept in the stored dtype; 0: fp32 */
} eva_tensor_desc;

typedef struct {
    eva_tensor_desc *items;
    int count;
    int64_t arena_floats;         /* total arena size in floats, alignment included */
    int official_only;            /* 1 for the 8B/18B families: only the official naming is valid */
} eva_tensor_table;

eva_status eva_tensors_build(eva_tensor_table *tt, const eva_config *cfg);
void eva_tensors_free(eva_tensor_table *tt);
/* Index of the tensor whose open_clip or official name equals `name`, or -1. */
int eva_tensors_find(const eva_tensor_table *tt, const char *name);
/* Official keys that are buffers, not weights (rope tables): ignored by the loader. */
int eva_tensors_is_ignored_key(const char *name);

/* Points every view at base + offset (an all-fp32 arena). `blocks_v` must hold cfg->vision.depth
 * entries and `blocks_t` cfg->text.layers entries (caller-owned). */
void eva_tensors_bind(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                      const eva_tensor_table *tt, const float *base);
/* The same with tensor i at at[i] (at[i].dtype must be EVA_DT_F32 unless items[i].typed). */
void eva_tensors_bind_at(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                         const eva_tensor_table *tt, const eva_wmat *at);

#endif
