/* eva_config.c: the registry of the ten built-in variants (docs/model.md §2.2), config validation, the
 * config JSON of docs/cli.md (read with cJSON, written by hand in a fixed field order), and the
 * parameter and FLOP counts. Parameter counts are summed over the tensor table, so the counts and
 * the loader can never disagree; tests check them against docs/model.md §3. */
#include "eva_config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eva_tensors.h"

/* ---- registry ------------------------------------------------------------------------------ */

#define EVA_TEXT(w, h, l) {77, 49408, (w), (h), (l), 4 * (w), 1e-5, 0}

/* vision: S P D depth H d F mlp subln rope ref postnorm qkv qv_bias norm eps head_bias */
#define EVA02_VISION(S, P, D, depth, H, F) \
    {(S), (P), (D), (depth), (H), (D) / (H), (F), EVA_MLP_SWIGLU, true, true, 16, false, EVA_QKV_SPLIT, true, \
     EVA_NORM_LAYERNORM, 1e-6, true, 0, 0}
#define EVA01_VISION(S, P, D, depth, H, F, post) \
    {(S), (P), (D), (depth), (H), (D) / (H), (F), EVA_MLP_GELU, false, false, 16, (post), EVA_QKV_FUSED, true, \
     EVA_NORM_LAYERNORM, 1e-6, true, 0, 0}
#define EVA_RMS_VISION(S, P, D, depth, H, F, post) \
    {(S), (P), (D), (depth), (H), (D) / (H), (F), EVA_MLP_GELU, false, false, 16, (post), EVA_QKV_FUSED, false, \
     EVA_NORM_RMSNORM, 1e-6, false, 0, 0}

static const eva_config eva_builtin[] = {
    {"EVA01-CLIP-g-14", 1024, EVA01_VISION(224, 14, 1408, 40, 16, 6144, false), EVA_TEXT(768, 12, 12)},
    {"EVA01-CLIP-g-14-plus", 1024, EVA01_VISION(224, 14, 1408, 40, 16, 6144, false), EVA_TEXT(1024, 16, 24)},
    {"EVA02-CLIP-B-16", 512, EVA02_VISION(224, 16, 768, 12, 12, 2048), EVA_TEXT(512, 8, 12)},
    {"EVA02-CLIP-L-14", 768, EVA02_VISION(224, 14, 1024, 24, 16, 2730), EVA_TEXT(768, 12, 12)},
    {"EVA02-CLIP-L-14-336", 768, EVA02_VISION(336, 14, 1024, 24, 16, 2730), EVA_TEXT(768, 12, 12)},
    {"EVA02-CLIP-bigE-14", 1024, EVA01_VISION(224, 14, 1792, 64, 16, 15360, true), EVA_TEXT(1024, 16, 24)},
    {"EVA02-CLIP-bigE-14-plus", 1024, EVA01_VISION(224, 14, 1792, 64, 16, 15360, true), EVA_TEXT(1280, 20, 32)},
    {"EVA-CLIP-8B", 1280, EVA_RMS_VISION(224, 14, 4096, 32, 32, 20480, false), EVA_TEXT(1280, 20, 32)},
    {"EVA-CLIP-8B-plus", 1280, EVA_RMS_VISION(448, 14, 4096, 32, 32, 20480, false), EVA_TEXT(1280, 20, 32)},
    {"EVA-CLIP-18B", 1536, EVA_RMS_VISION(224, 14, 5120, 48, 40, 25600, true), EVA_TEXT(1280, 20, 32)},
};

/* Official name first, then open_clip's (docs/cli.md "Variants"). */
static const char *const eva_builtin_aliases[][3] = {
    {"EVA01-CLIP-g-14", "EVA01-g-14", NULL},
    {"EVA01-CLIP-g-14-plus", "EVA01-g-14-plus", NULL},
    {"EVA02-CLIP-B-16", "EVA02-B-16", NULL},
    {"EVA02-CLIP-L-14", "EVA02-L-14", NULL},
    {"EVA02-CLIP-L-14-336", "EVA02-L-14-336", NULL},
    {"EVA02-CLIP-bigE-14", "EVA02-E-14", NULL},
    {"EVA02-CLIP-bigE-14-plus", "EVA02-E-14-plus", NULL},
    {"EVA-CLIP-8B", NULL, NULL},
    {"EVA-CLIP-8B-plus", "EVA-CLIP-8B-448", NULL},
    {"EVA-CLIP-18B", NULL, NULL},
};

#define EVA_N_BUILTIN ((int)(sizeof eva_builtin / sizeof eva_builtin[0]))

int eva_config_builtin_count(void) { return EVA_N_BUILTIN; }

const eva_config *eva_config_builtin(int i) {
    static eva_config resolved[EVA_N_BUILTIN];
    static int ready;
    if (!ready) { /* derived fields; the built-ins are valid by construction (tested) */
        for (int k = 0; k < EVA_N_BUILTIN; k++) {
            resolved[k] = eva_builtin[k];
            eva_config_validate(&resolved[k], resolved[k].name);
        }
        ready = 1;
    }
    return (i >= 0 && i < EVA_N_BUILTIN) ? &resolved[i] : NULL;
}

const char *const *eva_config_builtin_aliases(int i) {
    return (i >= 0 && i < EVA_N_BUILTIN) ? eva_builtin_aliases[i] : NULL;
}

static int eva_strcaseeq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

eva_status eva_config_find(eva_config *out, const char *name) {
    for (int i = 0; i < EVA_N_BUILTIN; i++)
        for (int k = 0; eva_builtin_aliases[i][k]; k++)
            if (eva_strcaseeq(name, eva_builtin_aliases[i][k])) {
                *out = *eva_config_builtin(i);
                return EVA_OK;
            }
    char known[1024] = "";
    for (int i = 0; i < EVA_N_BUILTIN; i++) {
        strncat(known, eva_builtin_aliases[i][0], sizeof known - strlen(known) - 1);
        if (i + 1 < EVA_N_BUILTIN) strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    return eva_fail(EVA_ERR_INVALID_ARG, "unknown variant '%s' (known: %s; open_clip names accepted too)", name, known);
}

/* ---- validation ---------------------------------------------------------------------------- */

/* Upper bounds: far above the largest variant (18B), low enough that no size computed from a
 * config can overflow or make a silly allocation. */
#define EVA_MAX_IMAGE 4096
#define EVA_MAX_WIDTH 16384
#define EVA_MAX_DEPTH 256
#define EVA_MAX_HIDDEN 131072
#define EVA_MAX_TOKENS 65537
#define EVA_MAX_CONTEXT 4096
#define EVA_MAX_VOCAB 1000000

#define CHECK_RANGE(v, lo, hi, what)                                                                       \
    do {                                                                                                   \
        if ((v) < (lo) || (v) > (hi))                                                                      \
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: %s = %d is out of range [%d, %d]", source, what, (int)(v), \
                            (int)(lo), (int)(hi));                                                         \
    } while (0)

eva_status eva_config_validate(eva_config *cfg, const char *source) {
    eva_vision_config *v = &cfg->vision;
    eva_text_config *t = &cfg->text;
    if (!source) source = cfg->name[0] ? cfg->name : "config";
    CHECK_RANGE(cfg->embed_dim, 1, EVA_MAX_WIDTH, "embed_dim");
    CHECK_RANGE(v->image_size, 1, EVA_MAX_IMAGE, "vision.image_size");
    CHECK_RANGE(v->patch_size, 1, v->image_size, "vision.patch_size");
    if (v->image_size % v->patch_size)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.image_size %d is not a multiple of vision.patch_size %d",
                        source, v->image_size, v->patch_size);
    CHECK_RANGE(v->width, 1, EVA_MAX_WIDTH, "vision.width");
    CHECK_RANGE(v->depth, 1, EVA_MAX_DEPTH, "vision.depth");
    CHECK_RANGE(v->heads, 1, v->width, "vision.heads");
    if (v->width % v->heads)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.heads %d does not divide vision.width %d", source, v->heads,
                        v->width);
    if (v->head_dim != v->width / v->heads)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.head_dim %d != width/heads = %d", source, v->head_dim,
                        v->width / v->heads);
    CHECK_RANGE(v->mlp_hidden, 1, EVA_MAX_HIDDEN, "vision.mlp_hidden");
    if (v->mlp != EVA_MLP_GELU && v->mlp != EVA_MLP_SWIGLU)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.mlp must be gelu or swiglu", source);
    if (v->subln && v->mlp != EVA_MLP_SWIGLU)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.subln needs the swiglu MLP", source);
    if (v->subln && v->norm != EVA_NORM_LAYERNORM)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.subln is defined for layernorm only", source);
    if (v->rope) {
        if (v->head_dim % 4)
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.rope needs head_dim divisible by 4 (got %d)", source,
                            v->head_dim);
        CHECK_RANGE(v->rope_ref_grid, 1, EVA_MAX_IMAGE, "vision.rope_ref_grid");
    }
    if (v->qkv != EVA_QKV_FUSED && v->qkv != EVA_QKV_SPLIT)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.qkv must be fused or split", source);
    if (v->norm != EVA_NORM_LAYERNORM && v->norm != EVA_NORM_RMSNORM)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.norm must be layernorm or rmsnorm", source);
    if (!(v->norm_eps > 0 && v->norm_eps < 1))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: vision.norm_eps = %g must be in (0, 1)", source, v->norm_eps);
    v->grid = v->image_size / v->patch_size;
    if ((long)v->grid * v->grid + 1 > EVA_MAX_TOKENS)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: %d x %d patches is more than the %d tokens supported", source,
                        v->grid, v->grid, EVA_MAX_TOKENS - 1);
    v->tokens = v->grid * v->grid + 1;

    CHECK_RANGE(t->context_length, 1, EVA_MAX_CONTEXT, "text.context_length");
    CHECK_RANGE(t->vocab_size, 3, EVA_MAX_VOCAB, "text.vocab_size");
    CHECK_RANGE(t->width, 1, EVA_MAX_WIDTH, "text.width");
    CHECK_RANGE(t->heads, 1, t->width, "text.heads");
    if (t->width % t->heads)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: text.heads %d does not divide text.width %d", source, t->heads,
                        t->width);
    CHECK_RANGE(t->layers, 1, EVA_MAX_DEPTH, "text.layers");
    CHECK_RANGE(t->mlp_hidden, 1, EVA_MAX_HIDDEN, "text.mlp_hidden");
    if (!(t->norm_eps > 0 && t->norm_eps < 1))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: text.norm_eps = %g must be in (0, 1)", source, t->norm_eps);
    t->head_dim = t->width / t->heads;
    return EVA_OK;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

typedef struct {
    const char *source;
    const char *section;
} eva_json_ctx;

static eva_status json_check_keys(const cJSON *obj, const char *const *allowed, const eva_json_ctx *cx) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int k = 0; allowed[k]; k++)
            if (it->string && !strcmp(it->string, allowed[k])) ok = 1;
        if (!ok)
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: unknown field '%s%s%s' in config", cx->source, cx->section,
                            *cx->section ? "." : "", it->string ? it->string : "?");
    }
    return EVA_OK;
}

static eva_status json_int(int *out, const cJSON *obj, const char *key, const eva_json_ctx *cx) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *dot = *cx->section ? "." : "";
    if (!it) return eva_fail(EVA_ERR_INVALID_ARG, "%s: config lacks field '%s%s%s'", cx->source, cx->section, dot, key);
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 2147483647.0)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: config field '%s%s%s' must be an integer", cx->source, cx->section,
                        dot, key);
    *out = (int)it->valuedouble;
    return EVA_OK;
}

static eva_status json_double(double *out, const cJSON *obj, const char *key, const eva_json_ctx *cx) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *dot = *cx->section ? "." : "";
    if (!it) return eva_fail(EVA_ERR_INVALID_ARG, "%s: config lacks field '%s%s%s'", cx->source, cx->section, dot, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: config field '%s%s%s' must be a number", cx->source, cx->section,
                        dot, key);
    *out = it->valuedouble;
    return EVA_OK;
}

static eva_status json_bool(bool *out, const cJSON *obj, const char *key, const eva_json_ctx *cx) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *dot = *cx->section ? "." : "";
    if (!it) return eva_fail(EVA_ERR_INVALID_ARG, "%s: config lacks field '%s%s%s'", cx->source, cx->section, dot, key);
    if (!cJSON_IsBool(it))
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: config field '%s%s%s' must be true or false", cx->source,
                        cx->section, dot, key);
    *out = cJSON_IsTrue(it);
    return EVA_OK;
}

/* Reads a string field that must be one of `choices`; *out = its index. */
static eva_status json_enum(int *out, const cJSON *obj, const char *key, const char *const *choices,
                            const eva_json_ctx *cx) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    const char *dot = *cx->section ? "." : "";
    if (!it) return eva_fail(EVA_ERR_INVALID_ARG, "%s: config lacks field '%s%s%s'", cx->source, cx->section, dot, key);
    if (cJSON_IsString(it))
        for (int k = 0; choices[k]; k++)
            if (!strcmp(it->valuestring, choices[k])) {
                *out = k;
                return EVA_OK;
            }
    return eva_fail(EVA_ERR_INVALID_ARG, "%s: config field '%s%s%s' must be \"%s\" or \"%s\"", cx->source,
                    cx->section, dot, key, choices[0], choices[1]);
}

static const char *const eva_mlp_names[] = {"gelu", "swiglu", NULL};
static const char *const eva_qkv_names[] = {"fused", "split", NULL};
static const char *const eva_norm_names[] = {"layernorm", "rmsnorm", NULL};

#define TRY(x)                                  \
    do {                                        \
        eva_status st_ = (x);                   \
        if (st_ != EVA_OK) { st = st_; goto done; } \
    } while (0)

eva_status eva_config_from_json(eva_config *out, const char *json, const char *source) {
    static const char *const top_keys[] = {"name", "embed_dim", "vision", "text", NULL};
    static const char *const vision_keys[] = {"image_size", "patch_size", "width", "depth", "heads", "head_dim",
                                              "mlp_hidden", "mlp", "subln", "rope", "rope_ref_grid", "postnorm",
                                              "qkv", "qv_bias", "norm", "norm_eps", "head_bias", NULL};
    static const char *const text_keys[] = {"context_length", "vocab_size", "width", "heads", "layers",
                                            "mlp_hidden", "norm_eps", NULL};
    eva_status st = EVA_OK;
    eva_config c;
    memset(&c, 0, sizeof c);
    if (!source) source = "config";
    cJSON *root = cJSON_Parse(json);
    if (!root) return eva_fail(EVA_ERR_INVALID_ARG, "%s: config is not valid JSON", source);
    eva_json_ctx cx = {source, ""};
    if (!cJSON_IsObject(root)) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: config is not a JSON object", source);
        goto done;
    }
    TRY(json_check_keys(root, top_keys, &cx));
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof c.name) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: config field 'name' must be a string of at most %zu characters",
                      source, sizeof c.name - 1);
        goto done;
    }
    strcpy(c.name, name->valuestring);
    TRY(json_int(&c.embed_dim, root, "embed_dim", &cx));
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(root, "vision");
    const cJSON *txt = cJSON_GetObjectItemCaseSensitive(root, "text");
    if (!cJSON_IsObject(vis) || !cJSON_IsObject(txt)) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: config needs objects 'vision' and 'text'", source);
        goto done;
    }
    eva_vision_config *v = &c.vision;
    eva_text_config *t = &c.text;
    int e;
    cx.section = "vision";
    TRY(json_check_keys(vis, vision_keys, &cx));
    TRY(json_int(&v->image_size, vis, "image_size", &cx));
    TRY(json_int(&v->patch_size, vis, "patch_size", &cx));
    TRY(json_int(&v->width, vis, "width", &cx));
    TRY(json_int(&v->depth, vis, "depth", &cx));
    TRY(json_int(&v->heads, vis, "heads", &cx));
    TRY(json_int(&v->head_dim, vis, "head_dim", &cx));
    TRY(json_int(&v->mlp_hidden, vis, "mlp_hidden", &cx));
    TRY(json_enum(&e, vis, "mlp", eva_mlp_names, &cx));
    v->mlp = (eva_mlp_kind)e;
    TRY(json_bool(&v->subln, vis, "subln", &cx));
    TRY(json_bool(&v->rope, vis, "rope", &cx));
    TRY(json_int(&v->rope_ref_grid, vis, "rope_ref_grid", &cx));
    TRY(json_bool(&v->postnorm, vis, "postnorm", &cx));
    TRY(json_enum(&e, vis, "qkv", eva_qkv_names, &cx));
    v->qkv = (eva_qkv_kind)e;
    TRY(json_bool(&v->qv_bias, vis, "qv_bias", &cx));
    TRY(json_enum(&e, vis, "norm", eva_norm_names, &cx));
    v->norm = (eva_norm_kind)e;
    TRY(json_double(&v->norm_eps, vis, "norm_eps", &cx));
    TRY(json_bool(&v->head_bias, vis, "head_bias", &cx));
    cx.section = "text";
    TRY(json_check_keys(txt, text_keys, &cx));
    TRY(json_int(&t->context_length, txt, "context_length", &cx));
    TRY(json_int(&t->vocab_size, txt, "vocab_size", &cx));
    TRY(json_int(&t->width, txt, "width", &cx));
    TRY(json_int(&t->heads, txt, "heads", &cx));
    TRY(json_int(&t->layers, txt, "layers", &cx));
    TRY(json_int(&t->mlp_hidden, txt, "mlp_hidden", &cx));
    TRY(json_double(&t->norm_eps, txt, "norm_eps", &cx));
    TRY(eva_config_validate(&c, source));
    *out = c;
done:
    cJSON_Delete(root);
    return st;
}

eva_status eva_config_load(eva_config *out, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open config file", path);
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: config file is unreadable or larger than 1 MiB", path);
    }
    buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading config", path);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    eva_status st = eva_config_from_json(out, buf, path);
    free(buf);
    return st;
}

/* Writes a double the way Python's repr would for the values configs use (1e-06, 1e-05). */
static void fmt_double(char *buf, size_t n, double x) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

char *eva_config_to_json(const eva_config *c, bool pretty) {
    const eva_vision_config *v = &c->vision;
    const eva_text_config *t = &c->text;
    char ve[32], te[32];
    fmt_double(ve, sizeof ve, v->norm_eps);
    fmt_double(te, sizeof te, t->norm_eps);
    const char *nl = pretty ? "\n" : "", *i1 = pretty ? "  " : "", *i2 = pretty ? "    " : "", *sp = pretty ? " " : "";
    size_t cap = 2048;
    char *s = malloc(cap);
    if (!s) return NULL;
    /* The name is a plain identifier in practice; escape quotes and backslashes anyway. */
    char name[2 * sizeof c->name];
    size_t k = 0;
    for (const char *p = c->name; *p && k + 2 < sizeof name; p++) {
        if (*p == '"' || *p == '\\') name[k++] = '\\';
        name[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    }
    name[k] = '\0';
    snprintf(s, cap,
             "{%s%s\"name\":%s\"%s\",%s%s\"embed_dim\":%s%d,%s"
             "%s\"vision\":%s{%s"
             "%s\"image_size\":%s%d,%s%s\"patch_size\":%s%d,%s%s\"width\":%s%d,%s%s\"depth\":%s%d,%s"
             "%s\"heads\":%s%d,%s%s\"head_dim\":%s%d,%s%s\"mlp_hidden\":%s%d,%s%s\"mlp\":%s\"%s\",%s"
             "%s\"subln\":%s%s,%s%s\"rope\":%s%s,%s%s\"rope_ref_grid\":%s%d,%s%s\"postnorm\":%s%s,%s"
             "%s\"qkv\":%s\"%s\",%s%s\"qv_bias\":%s%s,%s%s\"norm\":%s\"%s\",%s%s\"norm_eps\":%s%s,%s"
             "%s\"head_bias\":%s%s%s%s},%s"
             "%s\"text\":%s{%s"
             "%s\"context_length\":%s%d,%s%s\"vocab_size\":%s%d,%s%s\"width\":%s%d,%s%s\"heads\":%s%d,%s"
             "%s\"layers\":%s%d,%s%s\"mlp_hidden\":%s%d,%s%s\"norm_eps\":%s%s%s%s}%s}",
             nl, i1, sp, name, nl, i1, sp, c->embed_dim, nl,
             i1, sp, nl,
             i2, sp, v->image_size, nl, i2, sp, v->patch_size, nl, i2, sp, v->width, nl, i2, sp, v->depth, nl,
             i2, sp, v->heads, nl, i2, sp, v->head_dim, nl, i2, sp, v->mlp_hidden, nl, i2, sp,
             eva_mlp_names[v->mlp], nl,
             i2, sp, v->subln ? "true" : "false", nl, i2, sp, v->rope ? "true" : "false", nl, i2, sp,
             v->rope_ref_grid, nl, i2, sp, v->postnorm ? "true" : "false", nl,
             i2, sp, eva_qkv_names[v->qkv], nl, i2, sp, v->qv_bias ? "true" : "false", nl, i2, sp,
             eva_norm_names[v->norm], nl, i2, sp, ve, nl,
             i2, sp, v->head_bias ? "true" : "false", nl, i1, nl,
             i1, sp, nl,
             i2, sp, t->context_length, nl, i2, sp, t->vocab_size, nl, i2, sp, t->width, nl, i2, sp, t->heads, nl,
             i2, sp, t->layers, nl, i2, sp, t->mlp_hidden, nl, i2, sp, te, nl, i1, nl);
    return s;
}

/* ---- families, counts ---------------------------------------------------------------------- */

eva_family eva_config_family(const eva_config *cfg) {
    const eva_vision_config *v = &cfg->vision;
    if (v->norm == EVA_NORM_RMSNORM && v->mlp == EVA_MLP_GELU && v->qkv == EVA_QKV_FUSED && !v->rope)
        return v->postnorm ? EVA_FAMILY_RMS_POST : EVA_FAMILY_RMS_PRE;
    if (v->norm == EVA_NORM_LAYERNORM && v->mlp == EVA_MLP_SWIGLU && v->subln && v->rope && v->qkv == EVA_QKV_SPLIT &&
        !v->postnorm)
        return EVA_FAMILY_EVA02;
    if (v->norm == EVA_NORM_LAYERNORM && v->mlp == EVA_MLP_GELU && v->qkv == EVA_QKV_FUSED && !v->rope && !v->subln)
        return v->postnorm ? EVA_FAMILY_POSTNORM : EVA_FAMILY_EVA01;
    return EVA_FAMILY_OTHER;
}

const char *eva_family_name(eva_family f) {
    switch (f) {
    case EVA_FAMILY_EVA01: return "EVA-01";
    case EVA_FAMILY_EVA02: return "EVA-02";
    case EVA_FAMILY_POSTNORM: return "post-norm";
    case EVA_FAMILY_RMS_PRE: return "RMSNorm, pre-norm";
    case EVA_FAMILY_RMS_POST: return "RMSNorm, post-norm";
    case EVA_FAMILY_OTHER: break;
    }
    return "custom";
}

eva_param_count eva_config_params(const eva_config *cfg) {
    eva_param_count pc = {0, 0, 0};
    eva_tensor_table tt;
    if (eva_tensors_build(&tt, cfg) != EVA_OK) return pc;
    for (int i = 0; i < tt.count; i++) {
        if (tt.items[i].tower == EVA_TOWER_IMAGE) pc.image += tt.items[i].numel;
        else if (tt.items[i].tower == EVA_TOWER_TEXT) pc.text += tt.items[i].numel;
        pc.total += tt.items[i].numel;
    }
    eva_tensors_free(&tt);
    return pc;
}

/* 2 FLOPs per multiply-add over every matmul (attention's two products included). */
double eva_config_gflops_image(const eva_config *cfg) {
    const eva_vision_config *v = &cfg->vision;
    double N = v->tokens, D = v->width, F = v->mlp_hidden, P = v->patch_size, G2 = (double)v->grid * v->grid;
    double patch = 2.0 * G2 * 3.0 * P * P * D;
    double mlp_mats = v->mlp == EVA_MLP_SWIGLU ? 3.0 : 2.0;
    double block = 2.0 * N * D * 3.0 * D    /* q, k, v */
                   + 2.0 * 2.0 * N * N * D  /* q.k^T and softmax.v */
                   + 2.0 * N * D * D        /* proj */
                   + mlp_mats * 2.0 * N * D * F;
    double head = 2.0 * D * cfg->embed_dim;
    return (patch + v->depth * block + head) * 1e-9;
}

double eva_config_gflops_text(const eva_config *cfg) {
    const eva_text_config *t = &cfg->text;
    double L = t->context_length, W = t->width, F = t->mlp_hidden;
    double block = 2.0 * L * W * 3.0 * W + 2.0 * 2.0 * L * L * W + 2.0 * L * W * W + 2.0 * 2.0 * L * W * F;
    return (t->layers * block + 2.0 * W * cfg->embed_dim) * 1e-9;
}

/* ---- precision names ----------------------------------------------------------------------- */

static const char *const eva_precision_names[] = {"fp32", "tf32", "bf16", "fp16"};

eva_status eva_precision_parse(eva_precision *out, const char *s) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, eva_precision_names[i])) {
            *out = (eva_precision)i;
            return EVA_OK;
        }
    return eva_fail(EVA_ERR_INVALID_ARG, "unknown precision '%s' (expected fp32, tf32, bf16 or fp16)", s);
}

const char *eva_precision_name(eva_precision p) {
    return (p >= EVA_PREC_FP32 && p <= EVA_PREC_FP16) ? eva_precision_names[p] : "?";
}
