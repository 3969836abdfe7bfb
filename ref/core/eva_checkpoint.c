/* eva_checkpoint.c: the published checkpoint layouts onto the tensor table (see eva_checkpoint.h).
 *
 * Owns: resolving a --weights path (file, hub folder, transformers index or shard), the mapping of
 * the transformers layout of the BAAI repos back to the official names, and the config found from
 * a checkpoint (metadata, open_clip_config.json, tensor shapes). It does not own the safetensors
 * format (eva_safetensors.c) or the tensor table (eva_tensors.c).
 *
 * The transformers rules come from the BAAI EVA-CLIP-8B/18B remote code (modeling_evaclip.py):
 *   vision_model.embeddings.class_embedding [D]            -> visual.cls_token [1,1,D]
 *   vision_model.embeddings.patch_embedding.{weight,bias}  -> visual.patch_embed.proj.*
 *   vision_model.embeddings.position_embedding.weight [N,D]-> visual.pos_embed [1,N,D]
 *   vision_model.encoder.layers.i.layer_norm1/2            -> visual.blocks.i.norm1/2
 *   ...self_attn.q_proj/k_proj/v_proj.weight [D,D] each    -> attn.qkv.weight [3D,D], rows q;k;v
 *      (layers with a SwiGLU MLP, the EVA-02 layout, keep attn.q_proj/k_proj/v_proj.weight)
 *   ...self_attn.q_proj.bias / v_proj.bias                 -> attn.q_bias / attn.v_bias (no k bias)
 *   ...self_attn.out_proj / inner_attn_ln                  -> attn.proj / attn.inner_attn_ln
 *   ...mlp.fc1/fc2 (GELU); mlp.fc1/fc2/fc3/ffn_ln (SwiGLU) -> mlp.fc1/fc2; mlp.w1/w2/w3/ffn_ln
 *   vision_model.post_layernorm; visual_projection        -> visual.norm; visual.head (an all-zero
 *                                                             visual_projection.bias is dropped: no bias)
 *   text_model.embeddings.token_embedding / position_embedding.weight
 *                                                          -> text.token_embedding.weight / text.positional_embedding
 *   text_model.encoder.layers.i.self_attn.{q,k,v}_proj.{weight,bias}
 *                                                          -> text.transformer.resblocks.i.attn.in_proj_weight/_bias
 *   ...out_proj, layer_norm1/2, mlp.fc1/fc2                -> attn.out_proj, ln_1/ln_2, mlp.c_fc/c_proj
 *   text_model.final_layer_norm                            -> text.ln_final
 *   text_projection.weight [E,W] (Linear, y = x W^T)       -> text.text_projection [W,E] (open_clip: x @ P)
 *   logit_scale -> logit_scale; *.position_ids and rope.freqs_* buffers are dropped.
 * golden/ckpt_formats.py holds the same rules for the pickled shards.
 */
#include "eva_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "eva_tensors.h"

#define CK_PATH_MAX 4096
#define CK_NAME_MAX 160
#define CK_JSON_MAX ((long)64 << 20)
#define CK_LIST_MAX 6
#define CK_MAX_LAYERS 4096 /* a larger layer index is an unknown key, not an allocation */

static int ck_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int ck_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ck_is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir of a path ("." when none) into out. */
static void ck_dirname(char *out, size_t cap, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* Whole small file into a NUL-terminated buffer (caller frees). */
static eva_status ck_read_text(char **out, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || n > CK_JSON_MAX || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return eva_fail(EVA_ERR_FORMAT, "%s: unreadable or larger than %ld bytes", path, CK_JSON_MAX);
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return eva_fail(EVA_ERR_IO, "%s: cannot read", path);
    }
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    return EVA_OK;
}

/* ---- the transformers layout ------------------------------------------------------------------ */

typedef struct {
    const char *from, *to;
} ck_rule;

static const ck_rule hf_top[] = {
    {"vision_model.embeddings.patch_embedding.weight", "visual.patch_embed.proj.weight"},
    {"vision_model.embeddings.patch_embedding.bias", "visual.patch_embed.proj.bias"},
    {"vision_model.post_layernorm.weight", "visual.norm.weight"},
    {"vision_model.post_layernorm.bias", "visual.norm.bias"},
    {"visual_projection.weight", "visual.head.weight"},
    {"visual_projection.bias", "visual.head.bias"},
    {"text_model.embeddings.token_embedding.weight", "text.token_embedding.weight"},
    {"text_model.embeddings.position_embedding.weight", "text.positional_embedding"},
    {"text_model.final_layer_norm.weight", "text.ln_final.weight"},
    {"text_model.final_layer_norm.bias", "text.ln_final.bias"},
    {"logit_scale", "logit_scale"},
};
static const ck_rule hf_vis_layer[] = {
    {"layer_norm1.weight", "norm1.weight"}, {"layer_norm1.bias", "norm1.bias"},
    {"layer_norm2.weight", "norm2.weight"}, {"layer_norm2.bias", "norm2.bias"},
    {"self_attn.out_proj.weight", "attn.proj.weight"}, {"self_attn.out_proj.bias", "attn.proj.bias"},
    {"self_attn.inner_attn_ln.weight", "attn.inner_attn_ln.weight"},
    {"self_attn.inner_attn_ln.bias", "attn.inner_attn_ln.bias"},
    {"self_attn.q_proj.bias", "attn.q_bias"}, {"self_attn.v_proj.bias", "attn.v_bias"},
};
static const ck_rule hf_vis_gelu[] = {
    {"mlp.fc1.weight", "mlp.fc1.weight"}, {"mlp.fc1.bias", "mlp.fc1.bias"},
    {"mlp.fc2.weight", "mlp.fc2.weight"}, {"mlp.fc2.bias", "mlp.fc2.bias"},
};
static const ck_rule hf_vis_swiglu[] = {
    {"mlp.fc1.weight", "mlp.w1.weight"}, {"mlp.fc1.bias", "mlp.w1.bias"},
    {"mlp.fc2.weight", "mlp.w2.weight"}, {"mlp.fc2.bias", "mlp.w2.bias"},
    {"mlp.fc3.weight", "mlp.w3.weight"}, {"mlp.fc3.bias", "mlp.w3.bias"},
    {"mlp.ffn_ln.weight", "mlp.ffn_ln.weight"}, {"mlp.ffn_ln.bias", "mlp.ffn_ln.bias"},
};
static const ck_rule hf_txt_layer[] = {
    {"layer_norm1.weight", "ln_1.weight"}, {"layer_norm1.bias", "ln_1.bias"},
    {"layer_norm2.weight", "ln_2.weight"}, {"layer_norm2.bias", "ln_2.bias"},
    {"self_attn.out_proj.weight", "attn.out_proj.weight"}, {"self_attn.out_proj.bias", "attn.out_proj.bias"},
    {"mlp.fc1.weight", "mlp.c_fc.weight"}, {"mlp.fc1.bias", "mlp.c_fc.bias"},
    {"mlp.fc2.weight", "mlp.c_proj.weight"}, {"mlp.fc2.bias", "mlp.c_proj.bias"},
};
#define CK_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *ck_rule_find(const ck_rule *r, int n, const char *from) {
    for (int k = 0; k < n; k++)
        if (!strcmp(r[k].from, from)) return r[k].to;
    return NULL;
}

/* "prefix<i>.rest" -> i and rest; -1 when the key has another form. */
static int ck_layer(const char *key, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0) return -1;
    const char *p = key + n;
    if (*p < '0' || *p > '9') return -1;
    long i = 0;
    while (*p >= '0' && *p <= '9' && i < CK_MAX_LAYERS) i = i * 10 + (*p++ - '0');
    if (*p != '.' || i >= CK_MAX_LAYERS) return -1;
    *rest = p + 1;
    return (int)i;
}

/* q/k/v of one layer: [q,k,v] x [weight, bias] -> (sub, idx), sub -1 when absent. */
typedef struct {
    int sub[3][2], idx[3][2];
} ck_qkv;

typedef struct {
    eva_st_composite_item *items;
    char (*names)[CK_NAME_MAX];
    int n, cap;
    ck_qkv *vq, *tq;   /* [nv], [nt] */
    unsigned char *swiglu; /* [nv] */
    int nv, nt;
    char unknown[700];
    int nunknown;
    const char *where;
    eva_safetensors **subs; /* the shards (borrowed) */
} ck_map;

/* *zero = 1 when tensor idx of st is all zeros (a small tensor: a bias). */
static eva_status ck_all_zero(const eva_safetensors *st, int idx, int *zero) {
    const eva_st_tensor *t = eva_safetensors_get(st, idx);
    *zero = 0;
    if (!t || t->dtype == EVA_ST_OTHER || t->numel > (1 << 20)) return EVA_OK;
    float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    if (!v) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", eva_safetensors_path(st));
    eva_status s = eva_safetensors_read_f32(st, idx, v, t->numel);
    if (s == EVA_OK) {
        *zero = 1;
        for (int64_t k = 0; k < t->numel && *zero; k++) *zero = v[k] == 0.0f;
    }
    free(v);
    return s;
}

static eva_status ck_item(ck_map *m, const char *name, int sub, int idx, const eva_st_tensor *t) {
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 256;
        eva_st_composite_item *it = realloc(m->items, (size_t)nc * sizeof *it);
        if (!it) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", m->where);
        m->items = it;
        char (*nm)[CK_NAME_MAX] = realloc(m->names, (size_t)nc * sizeof *nm);
        if (!nm) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", m->where);
        m->names = nm;
        m->cap = nc;
    }
    eva_st_composite_item *it = &m->items[m->n];
    memset(it, 0, sizeof *it);
    snprintf(m->names[m->n], CK_NAME_MAX, "%s", name);
    it->npieces = 1;
    it->sub[0] = sub;
    it->idx[0] = idx;
    it->ndim = t ? t->ndim : 0;
    for (int d = 0; t && d < t->ndim; d++) it->shape[d] = t->shape[d];
    m->n++;
    return EVA_OK;
}

static void ck_unknown(ck_map *m, const char *key, const char *why) {
    if (m->nunknown < CK_LIST_MAX) {
        size_t l = strlen(m->unknown);
        snprintf(m->unknown + l, sizeof m->unknown - l, "%s%s%s", m->nunknown ? ", " : "", key, why);
    }
    m->nunknown++;
}

/* One key of the transformers layout. */
static eva_status ck_map_key(ck_map *m, const char *key, int sub, int idx, const eva_st_tensor *t) {
    char name[CK_NAME_MAX];
    const char *rest, *to;
    int i;
    if (ck_ends_with(key, "position_ids") || strstr(key, "rope.freqs_")) return EVA_OK;
    if (!strcmp(key, "visual_projection.bias")) {
        /* transformers' Linear(D, E) may carry a bias the official head (8B/18B: bias-free) lacks;
         * an all-zero bias is no bias, so it is dropped; any other value is kept (and refused by a
         * bias-free config) */
        int zero = 0;
        eva_status s = ck_all_zero(m->subs[sub], idx, &zero);
        if (s != EVA_OK) return s;
        if (zero) return EVA_OK;
    }
    if ((to = ck_rule_find(hf_top, CK_N(hf_top), key))) return ck_item(m, to, sub, idx, t);
    if (!strcmp(key, "vision_model.embeddings.class_embedding")) {
        eva_status s = ck_item(m, "visual.cls_token", sub, idx, t);
        if (s == EVA_OK) {
            eva_st_composite_item *it = &m->items[m->n - 1];
            it->ndim = 3;
            it->shape[0] = it->shape[1] = 1;
            it->shape[2] = t->numel;
        }
        return s;
    }
    if (!strcmp(key, "vision_model.embeddings.position_embedding.weight") && t->ndim == 2) {
        eva_status s = ck_item(m, "visual.pos_embed", sub, idx, t);
        if (s == EVA_OK) {
            eva_st_composite_item *it = &m->items[m->n - 1];
            it->ndim = 3;
            it->shape[0] = 1;
            it->shape[1] = t->shape[0];
            it->shape[2] = t->shape[1];
        }
        return s;
    }
    if (!strcmp(key, "text_projection.weight") && t->ndim == 2) {
        eva_status s = ck_item(m, "text.text_projection", sub, idx, t);
        if (s == EVA_OK) {
            eva_st_composite_item *it = &m->items[m->n - 1];
            it->shape[0] = t->shape[1];
            it->shape[1] = t->shape[0];
            it->transpose = 1;
        }
        return s;
    }
    int vis = (i = ck_layer(key, "vision_model.encoder.layers.", &rest)) >= 0;
    if (!vis) i = ck_layer(key, "text_model.encoder.layers.", &rest);
    if (i < 0 || i >= (vis ? m->nv : m->nt)) {
        ck_unknown(m, key, "");
        return EVA_OK;
    }
    int c = -1, b = -1; /* q/k/v projections: c in 0..2, b 0 weight 1 bias */
    if (!strncmp(rest, "self_attn.", 10) && rest[10] && strchr("qkv", rest[10]) && !strncmp(rest + 11, "_proj.", 6)) {
        c = (int)(strchr("qkv", rest[10]) - "qkv");
        b = !strcmp(rest + 17, "weight") ? 0 : !strcmp(rest + 17, "bias") ? 1 : -1;
    }
    if (vis) {
        if (c >= 0 && b == 0 && m->swiglu[i]) {
            snprintf(name, sizeof name, "visual.blocks.%d.attn.%c_proj.weight", i, "qkv"[c]);
            return ck_item(m, name, sub, idx, t);
        }
        if (c >= 0 && b == 0) {
            m->vq[i].sub[c][0] = sub;
            m->vq[i].idx[c][0] = idx;
            return EVA_OK;
        }
        if (c == 1 && b == 1) {
            ck_unknown(m, key, " (EVA-CLIP has no k bias)");
            return EVA_OK;
        }
        to = ck_rule_find(hf_vis_layer, CK_N(hf_vis_layer), rest);
        if (!to)
            to = m->swiglu[i] ? ck_rule_find(hf_vis_swiglu, CK_N(hf_vis_swiglu), rest)
                              : ck_rule_find(hf_vis_gelu, CK_N(hf_vis_gelu), rest);
        if (!to) {
            ck_unknown(m, key, "");
            return EVA_OK;
        }
        snprintf(name, sizeof name, "visual.blocks.%d.%s", i, to);
        return ck_item(m, name, sub, idx, t);
    }
    if (c >= 0 && b >= 0) {
        m->tq[i].sub[c][b] = sub;
        m->tq[i].idx[c][b] = idx;
        return EVA_OK;
    }
    if (!(to = ck_rule_find(hf_txt_layer, CK_N(hf_txt_layer), rest))) {
        ck_unknown(m, key, "");
        return EVA_OK;
    }
    snprintf(name, sizeof name, "text.transformer.resblocks.%d.%s", i, to);
    return ck_item(m, name, sub, idx, t);
}

/* The concatenated q;k;v of one layer (b: 0 weight, 1 bias). */
static eva_status ck_emit_qkv(ck_map *m, eva_safetensors **subs, const ck_qkv *q, int b, const char *name,
                              const char *what) {
    int have = 0;
    for (int c = 0; c < 3; c++) have += q->sub[c][b] >= 0;
    if (have == 0) return EVA_OK;
    if (have < 3) return eva_fail(EVA_ERR_SHAPE, "%s: %s: q_proj, k_proj and v_proj are not all present", m->where, what);
    const eva_st_tensor *t0 = eva_safetensors_get(subs[q->sub[0][b]], q->idx[0][b]);
    eva_status s = ck_item(m, name, q->sub[0][b], q->idx[0][b], t0);
    if (s != EVA_OK) return s;
    eva_st_composite_item *it = &m->items[m->n - 1];
    it->npieces = 3;
    int64_t rows = 0;
    for (int c = 0; c < 3; c++) {
        it->sub[c] = q->sub[c][b];
        it->idx[c] = q->idx[c][b];
        rows += eva_safetensors_get(subs[it->sub[c]], it->idx[c])->shape[0];
    }
    if (t0->ndim < 1) return eva_fail(EVA_ERR_SHAPE, "%s: %s: q_proj is a scalar", m->where, what);
    it->shape[0] = rows;
    return EVA_OK;
}

/* Layer counts and SwiGLU layers (those with an mlp.fc3). */
static eva_status ck_map_init(ck_map *m, eva_safetensors **subs, const int *key_sub, const int *key_idx, int nkeys) {
    int nv = 0, nt = 0;
    for (int k = 0; k < nkeys; k++) {
        const char *key = eva_safetensors_get(subs[key_sub[k]], key_idx[k])->name, *rest;
        int i = ck_layer(key, "vision_model.encoder.layers.", &rest);
        if (i >= nv) nv = i + 1;
        i = ck_layer(key, "text_model.encoder.layers.", &rest);
        if (i >= nt) nt = i + 1;
    }
    m->nv = nv;
    m->nt = nt;
    m->vq = malloc((size_t)(nv ? nv : 1) * sizeof *m->vq);
    m->tq = malloc((size_t)(nt ? nt : 1) * sizeof *m->tq);
    m->swiglu = calloc((size_t)(nv ? nv : 1), 1);
    if (!m->vq || !m->tq || !m->swiglu) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", m->where);
    memset(m->vq, 0xff, (size_t)(nv ? nv : 1) * sizeof *m->vq);
    memset(m->tq, 0xff, (size_t)(nt ? nt : 1) * sizeof *m->tq);
    for (int k = 0; k < nkeys; k++) {
        const char *key = eva_safetensors_get(subs[key_sub[k]], key_idx[k])->name, *rest;
        int i = ck_layer(key, "vision_model.encoder.layers.", &rest);
        if (i >= 0 && !strncmp(rest, "mlp.fc3.", 8)) m->swiglu[i] = 1;
    }
    return EVA_OK;
}

static void ck_map_free(ck_map *m) {
    free(m->items);
    free(m->names);
    free(m->vq);
    free(m->tq);
    free(m->swiglu);
}

/* Builds the composite handle over the shards (takes ownership of subs). */
static eva_status ck_open_mapped(eva_safetensors **out, const char *where, eva_safetensors **subs, int nsub,
                                 const int *key_sub, const int *key_idx, int nkeys) {
    ck_map m;
    memset(&m, 0, sizeof m);
    m.where = where;
    m.subs = subs;
    eva_status s = ck_map_init(&m, subs, key_sub, key_idx, nkeys);
    for (int k = 0; s == EVA_OK && k < nkeys; k++) {
        const eva_st_tensor *t = eva_safetensors_get(subs[key_sub[k]], key_idx[k]);
        s = ck_map_key(&m, t->name, key_sub[k], key_idx[k], t);
    }
    char name[CK_NAME_MAX], what[64];
    for (int i = 0; s == EVA_OK && i < m.nv; i++) {
        snprintf(name, sizeof name, "visual.blocks.%d.attn.qkv.weight", i);
        snprintf(what, sizeof what, "vision layer %d", i);
        s = ck_emit_qkv(&m, subs, &m.vq[i], 0, name, what);
    }
    for (int i = 0; s == EVA_OK && i < m.nt; i++) {
        snprintf(what, sizeof what, "text layer %d", i);
        snprintf(name, sizeof name, "text.transformer.resblocks.%d.attn.in_proj_weight", i);
        if ((s = ck_emit_qkv(&m, subs, &m.tq[i], 0, name, what)) != EVA_OK) break;
        snprintf(name, sizeof name, "text.transformer.resblocks.%d.attn.in_proj_bias", i);
        s = ck_emit_qkv(&m, subs, &m.tq[i], 1, name, what);
    }
    if (s == EVA_OK && m.nunknown)
        s = eva_fail(EVA_ERR_SHAPE, "%s: %d tensors of the transformers layout have no EVA-CLIP counterpart (%s%s)",
                     where, m.nunknown, m.unknown, m.nunknown > CK_LIST_MAX ? ", ..." : "");
    if (s != EVA_OK) {
        for (int k = 0; k < nsub; k++) eva_safetensors_close(subs[k]);
        ck_map_free(&m);
        return s;
    }
    for (int j = 0; j < m.n; j++) m.items[j].name = m.names[j];
    s = eva_safetensors_open_composite(out, where, subs, nsub, m.items, m.n);
    ck_map_free(&m);
    return s;
}

/* A transformers index JSON: every shard opened, every key found, then mapped. */
static eva_status ck_open_index(eva_safetensors **out, const char *index) {
    char *txt = NULL, dir[CK_PATH_MAX], sp[CK_PATH_MAX];
    eva_safetensors **subs = NULL;
    int nsub = 0, nkeys = 0, *key_sub = NULL, *key_idx = NULL;
    eva_status s = ck_read_text(&txt, index);
    if (s != EVA_OK) return s;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return eva_fail(EVA_ERR_FORMAT, "%s: not a transformers index JSON (no \"weight_map\" object)", index);
    }
    ck_dirname(dir, sizeof dir, index);
    int cap = cJSON_GetArraySize(wm);
    const char **shard_names = calloc((size_t)(cap ? cap : 1), sizeof *shard_names);
    subs = calloc((size_t)(cap ? cap : 1), sizeof *subs);
    key_sub = malloc((size_t)(cap ? cap : 1) * sizeof *key_sub);
    key_idx = malloc((size_t)(cap ? cap : 1) * sizeof *key_idx);
    if (!shard_names || !subs || !key_sub || !key_idx) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", index);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->string) {
            s = eva_fail(EVA_ERR_FORMAT, "%s: weight_map entry is not a string", index);
            goto done;
        }
        const char *sh = e->valuestring;
        if (strchr(sh, '/') || !ck_ends_with(sh, ".safetensors")) {
            s = eva_fail(EVA_ERR_INVALID_ARG, "%s: shard '%s' is %s", index, sh,
                         strchr(sh, '/') ? "not a plain file name"
                                         : "not safetensors: convert the pickled shards first with "
                                           "golden/convert_checkpoint.py INDEX.json OUT.safetensors");
            goto done;
        }
        int k = 0;
        while (k < nsub && strcmp(shard_names[k], sh)) k++;
        if (k == nsub) {
            if (snprintf(sp, sizeof sp, "%s/%s", dir, sh) >= (int)sizeof sp) {
                s = eva_fail(EVA_ERR_INVALID_ARG, "%s: shard path too long", index);
                goto done;
            }
            if ((s = eva_safetensors_open(&subs[nsub], sp)) != EVA_OK) {
                eva_fail_context("%s names shard %s", index, sh);
                goto done;
            }
            shard_names[nsub++] = sh;
        }
        int j = eva_safetensors_find(subs[k], e->string);
        if (j < 0) {
            s = eva_fail(EVA_ERR_SHAPE, "%s: tensor %s, named by %s, is not in the shard", eva_safetensors_path(subs[k]),
                         e->string, index);
            goto done;
        }
        key_sub[nkeys] = k;
        key_idx[nkeys++] = j;
    }
    s = ck_open_mapped(out, index, subs, nsub, key_sub, key_idx, nkeys);
    nsub = 0; /* owned by the composite (or closed) now */
done:
    for (int k = 0; k < nsub; k++) eva_safetensors_close(subs[k]);
    free(subs);
    free(shard_names);
    free(key_sub);
    free(key_idx);
    cJSON_Delete(root);
    return s;
}

/* ---- resolving a path ------------------------------------------------------------------------- */

static int ck_is_pickle_name(const char *p) {
    return ck_ends_with(p, ".pt") || ck_ends_with(p, ".bin") || ck_ends_with(p, ".pth") || ck_ends_with(p, ".ckpt");
}

/* A folder: an index JSON of safetensors shards, open_clip_model.safetensors, or one .safetensors. */
static eva_status ck_pick_in_dir(char *out, size_t cap, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return eva_fail(EVA_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char index[512] = "", single[512] = "", pickle[512] = "";
    int nindex = 0, nsingle = 0, hub = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (ck_ends_with(n, ".safetensors.index.json")) {
            nindex++;
            snprintf(index, sizeof index, "%s", n);
        } else if (!strcmp(n, "open_clip_model.safetensors")) {
            hub = 1;
        } else if (ck_ends_with(n, ".safetensors")) {
            nsingle++;
            snprintf(single, sizeof single, "%s", n);
        } else if (ck_is_pickle_name(n) || ck_ends_with(n, ".bin.index.json")) {
            snprintf(pickle, sizeof pickle, "%s", n);
        }
    }
    closedir(d);
    if (nindex > 1) return eva_fail(EVA_ERR_INVALID_ARG, "%s: several *.safetensors.index.json; pass one", dir);
    if (nindex == 1) return snprintf(out, cap, "%s/%s", dir, index) < (int)cap ? EVA_OK : EVA_ERR_INVALID_ARG;
    if (hub) return snprintf(out, cap, "%s/open_clip_model.safetensors", dir) < (int)cap ? EVA_OK : EVA_ERR_INVALID_ARG;
    if (nsingle == 1) return snprintf(out, cap, "%s/%s", dir, single) < (int)cap ? EVA_OK : EVA_ERR_INVALID_ARG;
    if (nsingle > 1)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: several .safetensors files and no index JSON; pass the file", dir);
    if (pickle[0])
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: only pickled weights (%s): convert them first with "
                        "python3 golden/convert_checkpoint.py %s OUT.safetensors", dir, pickle, dir);
    return eva_fail(EVA_ERR_INVALID_ARG, "%s: no .safetensors file or index JSON in this folder", dir);
}

/* Resolves path to a single file or an index JSON. */
static eva_status ck_resolve(char *out, size_t cap, const char *path) {
    if (ck_is_dir(path)) return ck_pick_in_dir(out, cap, path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* a shard "<stem>-0000N-of-0000M.safetensors": its index beside it */
    const char *of = strstr(base, "-of-");
    if (of && ck_ends_with(base, ".safetensors") && of - base >= 6 && of[-6] == '-') {
        char dir[CK_PATH_MAX];
        ck_dirname(dir, sizeof dir, path);
        int stem = (int)(of - base - 6);
        if (snprintf(out, cap, "%s/%.*s.safetensors.index.json", dir, stem, base) < (int)cap && ck_is_file(out))
            return EVA_OK;
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: one shard of a split checkpoint; its index %.*s.safetensors.index.json "
                        "is not beside it", path, stem, base);
    }
    if (ck_ends_with(base, ".bin.index.json") || (ck_is_pickle_name(base) && ck_is_file(path)))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: pickled PyTorch weights; convert them first (streamed, names and "
                        "dtypes kept): python3 golden/convert_checkpoint.py %s OUT.safetensors", path, path);
    if (snprintf(out, cap, "%s", path) >= (int)cap) return eva_fail(EVA_ERR_INVALID_ARG, "path too long: %.80s...", path);
    return EVA_OK;
}

eva_status eva_checkpoint_open(eva_safetensors **st, const char *path) {
    char p[CK_PATH_MAX];
    *st = NULL;
    if (!path) return eva_fail(EVA_ERR_INVALID_ARG, "no weights path given");
    eva_status s = ck_resolve(p, sizeof p, path);
    if (s != EVA_OK) return s;
    if (ck_ends_with(p, ".index.json")) return ck_open_index(st, p);
    s = eva_safetensors_open(st, p);
    if (s != EVA_OK) return s;
    /* a single safetensors file in the transformers layout (an unsplit transformers save) */
    if (eva_safetensors_count(*st) > 0 && eva_safetensors_find(*st, "logit_scale") >= 0 &&
        (eva_safetensors_find(*st, "text_projection.weight") >= 0 ||
         eva_safetensors_find(*st, "visual_projection.weight") >= 0)) {
        int n = eva_safetensors_count(*st);
        int *ks = calloc((size_t)n, sizeof *ks), *ki = malloc((size_t)n * sizeof *ki);
        eva_safetensors *one = *st;
        *st = NULL;
        if (!ks || !ki) {
            free(ks);
            free(ki);
            eva_safetensors_close(one);
            return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", p);
        }
        for (int k = 0; k < n; k++) ki[k] = k;
        s = ck_open_mapped(st, p, &one, 1, ks, ki, n);
        free(ks);
        free(ki);
    }
    return s;
}

/* ---- config ----------------------------------------------------------------------------------- */

/* The EVA-CLIP trunks timm registers for open_clip (open_clip model_configs/EVA*.json), and the
 * built-in variant whose image tower each one is. */
static const struct {
    const char *timm, *variant;
} ck_timm[] = {
    {"eva_giant_patch14_224", "EVA01-CLIP-g-14"},
    {"eva_giant_patch14_clip_224", "EVA01-CLIP-g-14"},
    {"eva02_base_patch16_clip_224", "EVA02-CLIP-B-16"},
    {"eva02_large_patch14_clip_224", "EVA02-CLIP-L-14"},
    {"eva02_large_patch14_clip_336", "EVA02-CLIP-L-14-336"},
    {"eva02_enormous_patch14_clip_224", "EVA02-CLIP-bigE-14"},
};

static int ck_json_int(const cJSON *o, const char *k, int dflt, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 1;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble) return 0;
    *out = (int)v->valuedouble;
    return 1;
}

/* Same architecture (everything but the name). */
static int ck_same_config(const eva_config *a, const eva_config *b) {
    eva_config x = *a, y = *b;
    memset(x.name, 0, sizeof x.name);
    memset(y.name, 0, sizeof y.name);
    char *ja = eva_config_to_json(&x, false), *jb = eva_config_to_json(&y, false);
    int same = ja && jb && !strcmp(ja, jb);
    free(ja);
    free(jb);
    return same;
}

eva_status eva_config_from_open_clip_json(eva_config *cfg, const char *json, const char *source) {
    eva_status s = EVA_OK;
    cJSON *root = cJSON_Parse(json);
    const cJSON *mc = root ? cJSON_GetObjectItemCaseSensitive(root, "model_cfg") : NULL;
    if (root && !mc) mc = root;
    const cJSON *vc = mc ? cJSON_GetObjectItemCaseSensitive(mc, "vision_cfg") : NULL;
    const cJSON *tc = mc ? cJSON_GetObjectItemCaseSensitive(mc, "text_cfg") : NULL;
    const cJSON *tn = vc ? cJSON_GetObjectItemCaseSensitive(vc, "timm_model_name") : NULL;
    if (!cJSON_IsObject(vc) || !cJSON_IsObject(tc) || !cJSON_IsString(tn)) {
        cJSON_Delete(root);
        return eva_fail(EVA_ERR_FORMAT, "%s: not an open_clip config (model_cfg with vision_cfg.timm_model_name and "
                        "text_cfg expected)", source);
    }
    int k = 0;
    while (k < CK_N(ck_timm) && strcmp(ck_timm[k].timm, tn->valuestring)) k++;
    if (k == CK_N(ck_timm)) {
        s = eva_fail(EVA_ERR_INVALID_ARG, "%s: timm_model_name '%s' is not an EVA-CLIP trunk evabench knows "
                     "(eva_giant_patch14_224, eva02_base_patch16_clip_224, eva02_large_patch14_clip_224, "
                     "eva02_large_patch14_clip_336, eva02_enormous_patch14_clip_224)", source, tn->valuestring);
        goto done;
    }
    if ((s = eva_config_find(cfg, ck_timm[k].variant)) != EVA_OK) goto done;
    int image_size, E, L, V, W, H, layers;
    const cJSON *ratio = cJSON_GetObjectItemCaseSensitive(tc, "mlp_ratio");
    if (cJSON_GetObjectItemCaseSensitive(tc, "hf_model_name")) {
        s = eva_fail(EVA_ERR_UNSUPPORTED, "%s: a Hugging Face text tower (text_cfg.hf_model_name) is not an EVA-CLIP "
                     "text tower", source);
        goto done;
    }
    if (!ck_json_int(vc, "image_size", cfg->vision.image_size, &image_size) ||
        !ck_json_int(mc, "embed_dim", -1, &E) || !ck_json_int(tc, "context_length", 77, &L) ||
        !ck_json_int(tc, "vocab_size", 49408, &V) || !ck_json_int(tc, "width", 512, &W) ||
        !ck_json_int(tc, "heads", 8, &H) || !ck_json_int(tc, "layers", 12, &layers) ||
        (ratio && !cJSON_IsNumber(ratio)) || E <= 0) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: embed_dim, vision_cfg.image_size or a text_cfg size is missing or not an "
                     "integer", source);
        goto done;
    }
    if (image_size != cfg->vision.image_size) {
        s = eva_fail(EVA_ERR_INVALID_ARG, "%s: image_size %d differs from %s's %d", source, image_size,
                     tn->valuestring, cfg->vision.image_size);
        goto done;
    }
    cfg->embed_dim = E;
    cfg->text.context_length = L;
    cfg->text.vocab_size = V;
    cfg->text.width = W;
    cfg->text.heads = H;
    cfg->text.layers = layers;
    cfg->text.mlp_hidden = (int)((double)W * (ratio ? ratio->valuedouble : 4.0)); /* open_clip: int(width * mlp_ratio) */
    cfg->text.norm_eps = 1e-5;                                                      /* open_clip LayerNorm default */
    snprintf(cfg->name, sizeof cfg->name, "open_clip %.50s", tn->valuestring);
    if ((s = eva_config_validate(cfg, source)) != EVA_OK) goto done;
    for (int i = 0; i < eva_config_builtin_count(); i++)
        if (ck_same_config(cfg, eva_config_builtin(i))) {
            snprintf(cfg->name, sizeof cfg->name, "%s", eva_config_builtin(i)->name);
            break;
        }
done:
    cJSON_Delete(root);
    return s;
}

/* 1 when the handle's tensors are exactly the table of cfg (names in either naming, shapes). */
static int ck_tensors_match(const eva_safetensors *st, const eva_config *cfg) {
    eva_tensor_table tt;
    if (eva_tensors_build(&tt, cfg) != EVA_OK) return 0;
    int n = 0, ok = 1;
    for (int i = 0; i < eva_safetensors_count(st); i++)
        if (!eva_tensors_is_ignored_key(eva_safetensors_get(st, i)->name)) n++;
    ok = n == tt.count;
    for (int j = 0; ok && j < tt.count; j++) {
        const eva_tensor_desc *d = &tt.items[j];
        int i = eva_safetensors_find(st, d->official);
        if (i < 0 && !tt.official_only) i = eva_safetensors_find(st, d->name);
        const eva_st_tensor *t = eva_safetensors_get(st, i);
        ok = t && t->ndim == d->ndim;
        for (int k = 0; ok && k < d->ndim; k++) ok = t->shape[k] == d->shape[k];
    }
    eva_tensors_free(&tt);
    return ok;
}

/* Image-encoder tensors and no text tower (EVA pre-training weights, timm image models). */
static int ck_vision_only(const eva_safetensors *st) {
    int vis = 0;
    for (int i = 0; i < eva_safetensors_count(st); i++) {
        const char *k = eva_safetensors_get(st, i)->name;
        if (!strncmp(k, "text.", 5) || !strncmp(k, "text_model.", 11) || strstr(k, "token_embedding") ||
            strstr(k, "text_projection"))
            return 0;
        vis += strstr(k, "blocks.") != NULL || strstr(k, "patch_embed") != NULL;
    }
    return vis > 0;
}

eva_status eva_config_from_tensors(eva_config *cfg, const eva_safetensors *st, const char *source) {
    int found = -1, n = 0;
    for (int i = 0; i < eva_config_builtin_count(); i++)
        if (ck_tensors_match(st, eva_config_builtin(i))) {
            if (found < 0) found = i;
            n++;
        }
    if (n != 1 && ck_vision_only(st))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision-only weights (image-encoder tensors, no text tower), not an "
                        "EVA-CLIP checkpoint; use the EVA-CLIP file of the same model (for BAAI/EVA-CLIP-8B/18B: "
                        "EVA_CLIP_8B_psz14_s9B.pt, EVA_CLIP_8B_psz14_plus_s0.6B.pt, EVA_CLIP_18B_psz14_s6B.fp16.pt "
                        "or the transformers shards)", source);
    if (n != 1)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: %s; pass --variant or --config", source,
                        n ? "its tensors match several built-in variants"
                          : "its tensor names and shapes match no built-in variant");
    *cfg = *eva_config_builtin(found);
    return EVA_OK;
}

#define CK_METADATA_KEY "evabench.config"

eva_status eva_checkpoint_config(eva_config *cfg, const char *path, const char **how) {
    eva_safetensors *st = NULL;
    char src[CK_PATH_MAX], dir[CK_PATH_MAX], jp[CK_PATH_MAX + 32], why[600] = "";
    *how = NULL;
    eva_status s = eva_checkpoint_open(&st, path);
    if (s != EVA_OK) return s;
    const char *json = eva_safetensors_metadata(st, CK_METADATA_KEY);
    if (json) {
        snprintf(src, sizeof src, "%s (metadata %s)", eva_safetensors_path(st), CK_METADATA_KEY);
        s = eva_config_from_json(cfg, json, src);
        *how = "weights metadata";
        eva_safetensors_close(st);
        return s;
    }
    if (ck_is_dir(path)) snprintf(dir, sizeof dir, "%s", path);
    else ck_dirname(dir, sizeof dir, eva_safetensors_path(st));
    snprintf(jp, sizeof jp, "%s/open_clip_config.json", dir);
    if (ck_is_file(jp)) {
        char *txt = NULL;
        if ((s = ck_read_text(&txt, jp)) == EVA_OK) s = eva_config_from_open_clip_json(cfg, txt, jp);
        free(txt);
        if (s == EVA_OK) {
            *how = "open_clip_config.json";
            eva_safetensors_close(st);
            return s;
        }
        snprintf(why, sizeof why, "%s; ", eva_last_error());
    }
    s = eva_config_from_tensors(cfg, st, eva_safetensors_path(st));
    eva_safetensors_close(st);
    if (s == EVA_OK) {
        *how = "tensor shapes";
        return s;
    }
    if (why[0]) {
        char rest[600];
        snprintf(rest, sizeof rest, "%s", eva_last_error());
        return eva_fail(s, "%s%s", why, rest);
    }
    return s;
}
