/* eva_tensors.h: the tensor table expanded from a config, and the typed weight views.
 *
 * eva_tensors_build() lists every parameter tensor of a model (name in open_clip naming, name in
 * the official EVA-CLIP naming, shape, element count, offset in a float arena). The table is the
 * single source of truth for what a weights file must contain (the loader in eva_weights.c
 * demands a one-to-one match) and for where each tensor lives in memory. eva_tensors_bind()
 * points the typed views below at any base address (host arena or the device copy of it), so the
 * reference and the CUDA twin share one layout. Views never own memory.
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

#define EVA_MAX_NDIM 4
#define EVA_NAME_MAX 96
/* Alignment of every tensor in the arena, in floats (64 bytes). */
#define EVA_ARENA_ALIGN_FLOATS 16

/* One vision block. Absent tensors are NULL (which ones depends on the family). */
typedef struct {
    const float *norm1_w, *norm1_b;           /* [D]; _b NULL for RMSNorm */
    const float *qkv_w;                       /* [3D,D] fused (EVA-01, bigE, 8B, 18B) */
    const float *q_w, *k_w, *v_w;             /* [D,D] split (EVA-02) */
    const float *q_b, *v_b;                   /* [D] q/v biases (k has none); NULL without */
    const float *attn_norm_w, *attn_norm_b;   /* [D] inner attention LayerNorm (EVA-02 subln) */
    const float *proj_w, *proj_b;             /* [D,D], [D] */
    const float *norm2_w, *norm2_b;           /* [D] */
    const float *fc1_w, *fc1_b;               /* GELU MLP: [F,D], [F] */
    const float *fc1_g_w, *fc1_g_b;           /* SwiGLU gate branch (official w1): [F,D], [F] */
    const float *fc1_x_w, *fc1_x_b;           /* SwiGLU linear branch (official w2): [F,D], [F] */
    const float *mlp_norm_w, *mlp_norm_b;     /* SwiGLU sub-LayerNorm (official ffn_ln): [F] */
    const float *fc2_w, *fc2_b;               /* [D,F], [D] (official w3 for SwiGLU) */
} eva_vblock_weights;

typedef struct {
    const float *patch_w, *patch_b;           /* [D,3,P,P], [D] */
    const float *cls_token;                   /* [1,1,D] */
    const float *pos_embed;                   /* [1,N,D] */
    const float *norm_w, *norm_b;             /* [D]; _b NULL for RMSNorm */
    const float *head_w, *head_b;             /* [E,D], [E]; _b NULL for 8B/18B */
    eva_vblock_weights *blocks;               /* [depth] */
    int depth;
} eva_vision_weights;

typedef struct {
    const float *ln_1_w, *ln_1_b;             /* [W] */
    const float *in_proj_w, *in_proj_b;       /* [3W,W], [3W] rows q;k;v */
    const float *out_proj_w, *out_proj_b;     /* [W,W], [W] */
    const float *ln_2_w, *ln_2_b;             /* [W] */
    const float *c_fc_w, *c_fc_b;             /* [Ft,W], [Ft] */
    const float *c_proj_w, *c_proj_b;         /* [W,Ft], [W] */
} eva_tblock_weights;

typedef struct {
    const float *token_embedding;             /* [V,W] */
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

/* Where a tensor's view pointer lives: which struct (top-level vision/text/root, or a block)
 * and the byte offset of the `const float *` field within it. */
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
    size_t field;                 /* offsetof the view pointer in its struct */
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

/* Points every view at base + offset. `blocks_v` must hold cfg->vision.depth entries and
 * `blocks_t` cfg->text.layers entries (caller-owned). */
void eva_tensors_bind(eva_weight_views *views, eva_vblock_weights *blocks_v, eva_tblock_weights *blocks_t,
                      const eva_tensor_table *tt, const float *base);

#endif
