/* eva_config.h: the model described once, as data.
 *
 * An eva_config is fully resolved: every size is an integer (no MLP ratios), every switch a
 * bool or enum, and the derived sizes (grid, tokens, head dims) are filled in by
 * eva_config_validate(). This file owns the registry of the ten built-in variants (docs/model.md §2.2),
 * reading and writing the config JSON of docs/cli.md, and validation of hostile configs.
 * It does not own the tensor table (eva_tensors.h) or parameter counting formulas beyond
 * eva_config_params()/eva_config_gflops().
 */
#ifndef EVA_CONFIG_H
#define EVA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_status.h"

typedef enum { EVA_MLP_GELU = 0, EVA_MLP_SWIGLU = 1 } eva_mlp_kind;
typedef enum { EVA_NORM_LAYERNORM = 0, EVA_NORM_RMSNORM = 1 } eva_norm_kind;
typedef enum { EVA_QKV_FUSED = 0, EVA_QKV_SPLIT = 1 } eva_qkv_kind;

typedef enum {
    EVA_FAMILY_EVA01 = 0,    /* pre-norm, fused qkv, GELU, LayerNorm */
    EVA_FAMILY_EVA02 = 1,    /* split qkv, RoPE, inner LN, SwiGLU + sub-LN */
    EVA_FAMILY_POSTNORM = 2, /* bigE: post-norm, LayerNorm */
    EVA_FAMILY_RMS_PRE = 3,  /* 8B: RMSNorm, pre-norm */
    EVA_FAMILY_RMS_POST = 4, /* 18B: RMSNorm, post-norm */
    EVA_FAMILY_OTHER = 5     /* a custom combination */
} eva_family;

typedef struct {
    int image_size;    /* S, pixels per side */
    int patch_size;    /* P */
    int width;         /* D */
    int depth;         /* number of blocks */
    int heads;         /* H */
    int head_dim;      /* d = D / H */
    int mlp_hidden;    /* F */
    eva_mlp_kind mlp;  /* gelu | swiglu */
    bool subln;        /* EVA-02 inner LayerNorms (attention output, SwiGLU hidden) */
    bool rope;         /* 2-D RoPE on q and k of patch tokens */
    int rope_ref_grid; /* grid the rope positions are scaled to (pt_hw_seq_len, 16) */
    bool postnorm;     /* x + N(f(x)) instead of x + f(N(x)) */
    eva_qkv_kind qkv;  /* fused qkv [3D,D] or split q/k/v [D,D] each */
    bool qv_bias;      /* q and v biases present (k has none) */
    eva_norm_kind norm;
    double norm_eps;
    bool head_bias;
    /* derived by eva_config_validate */
    int grid;          /* G = S / P */
    int tokens;        /* N = G*G + 1 */
} eva_vision_config;

typedef struct {
    int context_length; /* L */
    int vocab_size;     /* V */
    int width;          /* W */
    int heads;
    int layers;
    int mlp_hidden;
    double norm_eps;
    /* derived */
    int head_dim;       /* W / heads */
} eva_text_config;

typedef struct {
    char name[64];
    int embed_dim;      /* E */
    eva_vision_config vision;
    eva_text_config text;
} eva_config;

/* Numeric precision of a run. The reference runs fp32 only; the CUDA twin runs all four
 * (fp32 with TF32 off; tf32; bf16/fp16 weights and activations with fp32 accumulation,
 * normalisation statistics and softmax). */
typedef enum { EVA_PREC_FP32 = 0, EVA_PREC_TF32 = 1, EVA_PREC_BF16 = 2, EVA_PREC_FP16 = 3 } eva_precision;
/* "fp32" | "tf32" | "bf16" | "fp16" -> precision; EVA_ERR_INVALID_ARG otherwise. */
eva_status eva_precision_parse(eva_precision *out, const char *s);
const char *eva_precision_name(eva_precision p);

/* Built-in registry (ten variants of docs/cli.md, in that order). */
int eva_config_builtin_count(void);
const eva_config *eva_config_builtin(int i);
/* Aliases of builtin i (official name first, then the open_clip name); NULL-terminated. */
const char *const *eva_config_builtin_aliases(int i);
/* Case-insensitive lookup by official or open_clip name. EVA_ERR_INVALID_ARG if unknown
 * (the message lists the known names). */
eva_status eva_config_find(eva_config *out, const char *name);

/* Checks every field and fills the derived ones. `source` names the file or variant in
 * messages. Rejects heads not dividing width, zero/negative/absurd sizes, odd head_dim with rope,
 * image_size not divisible by patch_size, and so on. */
eva_status eva_config_validate(eva_config *cfg, const char *source);

/* JSON (docs/formats.md "Config JSON"). Parsing validates. to_json returns a malloc'd string. */
eva_status eva_config_from_json(eva_config *out, const char *json, const char *source);
eva_status eva_config_load(eva_config *out, const char *path);
char *eva_config_to_json(const eva_config *cfg, bool pretty);

eva_family eva_config_family(const eva_config *cfg);
const char *eva_family_name(eva_family f);

/* Exact parameter counts (docs/model.md §3); total includes logit_scale. */
typedef struct {
    int64_t image, text, total;
} eva_param_count;
eva_param_count eva_config_params(const eva_config *cfg);

/* GFLOPs of one forward (2 per multiply-add, all matmuls including attention; reproduces
 * open_clip's model_profile.csv). Text assumes the full context length. */
double eva_config_gflops_image(const eva_config *cfg);
double eva_config_gflops_text(const eva_config *cfg);

#endif
