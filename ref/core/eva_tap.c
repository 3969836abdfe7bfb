/* eva_tap.c: the tap names of docs/cli.md in forward order, their shapes, and eva_tap_emit. */
#include "eva_tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eva_tap_emit(const eva_tap *tap, const char *name, const float *data, int ndim, const int64_t *shape) {
    if (eva_tap_wants(tap, name) && tap->take) tap->take(tap->ctx, name, data, ndim, shape);
}

static const char *const vblock_subs[] = {".norm1", ".attn", ".norm2", ".mlp", ""};
/* Post-norm blocks run attn, then norm1 on its output, then mlp, then norm2. */
static const char *const vblock_subs_post[] = {".attn", ".norm1", ".mlp", ".norm2", ""};
static const char *const tblock_subs[] = {".ln_1", ".attn", ".ln_2", ".mlp", ""};

int eva_tap_names(const eva_config *cfg, eva_tap_set set, char (*names)[EVA_TAP_NAME_MAX], int max_names) {
    int n = 0;
#define PUT(...)                                                                     \
    do {                                                                             \
        if (names && n < max_names) snprintf(names[n], EVA_TAP_NAME_MAX, __VA_ARGS__); \
        n++;                                                                         \
    } while (0)
    if (set & EVA_TAPS_IMAGE) {
        PUT("visual.trunk.patch_embed");
        PUT("visual.trunk.pos_drop");
        for (int i = 0; i < cfg->vision.depth; i++)
            for (int k = 0; k < 5; k++)
                PUT("visual.trunk.blocks.%d%s", i, (cfg->vision.postnorm ? vblock_subs_post : vblock_subs)[k]);
        PUT("visual.trunk.norm");
        PUT("visual.trunk.head");
    }
    if (set & EVA_TAPS_TEXT) {
        PUT("text.token_embedding");
        for (int i = 0; i < cfg->text.layers; i++)
            for (int k = 0; k < 5; k++) PUT("text.transformer.resblocks.%d%s", i, tblock_subs[k]);
        PUT("text.ln_final");
    }
    if (set & EVA_TAPS_OUTPUTS) {
        PUT("image_features");
        PUT("text_features");
        PUT("logits_per_image");
    }
#undef PUT
    return n;
}

/* Parses "<prefix><int><rest>"; returns the int (>= 0) and sets *rest, or -1. */
static int parse_index(const char *name, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return -1;
    const char *p = name + n;
    if (*p < '0' || *p > '9') return -1;
    if (*p == '0' && p[1] >= '0' && p[1] <= '9') return -1; /* no leading zeros */
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 100000) return -1;
        p++;
    }
    *rest = p;
    return (int)v;
}

int eva_tap_shape(const eva_config *cfg, const char *name, int64_t B, int64_t T, int64_t shape[4]) {
    const int64_t N = cfg->vision.tokens, D = cfg->vision.width, G2 = (int64_t)cfg->vision.grid * cfg->vision.grid,
                  E = cfg->embed_dim, L = cfg->text.context_length, W = cfg->text.width;
    const char *rest;
    int i;
    if (!strcmp(name, "visual.trunk.patch_embed")) {
        shape[0] = B; shape[1] = G2; shape[2] = D;
        return 3;
    }
    if (!strcmp(name, "visual.trunk.pos_drop") || !strcmp(name, "visual.trunk.norm")) {
        shape[0] = B; shape[1] = N; shape[2] = D;
        return 3;
    }
    if ((i = parse_index(name, "visual.trunk.blocks.", &rest)) >= 0) {
        if (i >= cfg->vision.depth) return -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(rest, vblock_subs[k])) {
                shape[0] = B; shape[1] = N; shape[2] = D;
                return 3;
            }
        return -1;
    }
    if (!strcmp(name, "visual.trunk.head") || !strcmp(name, "image_features")) {
        shape[0] = B; shape[1] = E;
        return 2;
    }
    if (!strcmp(name, "text.token_embedding") || !strcmp(name, "text.ln_final")) {
        shape[0] = T; shape[1] = L; shape[2] = W;
        return 3;
    }
    if ((i = parse_index(name, "text.transformer.resblocks.", &rest)) >= 0) {
        if (i >= cfg->text.layers) return -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(rest, tblock_subs[k])) {
                shape[0] = T; shape[1] = L; shape[2] = W;
                return 3;
            }
        return -1;
    }
    if (!strcmp(name, "text_features")) {
        shape[0] = T; shape[1] = E;
        return 2;
    }
    if (!strcmp(name, "logits_per_image")) {
        shape[0] = B; shape[1] = T;
        return 2;
    }
    return -1;
}
