/* tapcmp.c: the name map and the tap-by-tap comparison of a dump against a golden. See tapcmp.h
 * for the map and the decisions. */
#include "tapcmp.h"

#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- name map ------------------------------------------------------------------------------- */

static const char *const scheme_names[] = {"auto", "open_clip", "official", "transformers"};

eva_status eva_names_parse(eva_names *out, const char *s) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, scheme_names[i])) {
            *out = (eva_names)i;
            return EVA_OK;
        }
    return eva_fail(EVA_ERR_INVALID_ARG, "--names '%s': expected open_clip, official, transformers or auto",
                    s ? s : "");
}

const char *eva_names_name(eva_names n) { return (unsigned)n < 4 ? scheme_names[n] : "?"; }

static bool is_output(const char *m) {
    static const char *const outs[] = {"image_features", "text_features", "image_embeds", "text_embeds",
                                       "logits_per_image"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(m, outs[i])) return true;
    return false;
}

static bool put(char out[EVA_TAP_NAME_MAX], const char *a, const char *b) {
    int n = snprintf(out, EVA_TAP_NAME_MAX, "%s%s", a, b);
    return n > 0 && n < EVA_TAP_NAME_MAX;
}

/* "<prefix><digits><sub>" with sub mapped through the (from, to) pairs; false if no match. */
static bool map_layer(char out[EVA_TAP_NAME_MAX], const char *m, const char *prefix, const char *to_prefix,
                      const char *const (*subs)[2], int n_subs) {
    size_t pl = strlen(prefix);
    if (strncmp(m, prefix, pl) != 0) return false;
    const char *p = m + pl, *q = p;
    while (*q >= '0' && *q <= '9') q++;
    if (q == p || q - p > 6) return false;
    char idx[8];
    memcpy(idx, p, (size_t)(q - p));
    idx[q - p] = '\0';
    for (int i = 0; i < n_subs; i++)
        if (!strcmp(q, subs[i][0])) {
            char head[EVA_TAP_NAME_MAX];
            return put(head, to_prefix, idx) && put(out, head, subs[i][1]);
        }
    return false;
}

static bool map_transformers(const char *m, char out[EVA_TAP_NAME_MAX]) {
    static const char *const vsubs[][2] = {{"", ""}, {".layer_norm1", ".norm1"}, {".self_attn", ".attn"},
                                           {".layer_norm2", ".norm2"}, {".mlp", ".mlp"}};
    static const char *const tsubs[][2] = {{"", ""}, {".layer_norm1", ".ln_1"}, {".self_attn", ".attn"},
                                           {".layer_norm2", ".ln_2"}, {".mlp", ".mlp"}};
    static const char *const plain[][2] = {{"vision_model.embeddings", "visual.trunk.pos_drop"},
                                           {"visual_projection", "visual.trunk.head"},
                                           {"text_model.embeddings.token_embedding", "text.token_embedding"},
                                           {"text_model.final_layer_norm", "text.ln_final"},
                                           {"text_projection", "text_features"}};
    for (int i = 0; i < 5; i++)
        if (!strcmp(m, plain[i][0])) return put(out, plain[i][1], "");
    return map_layer(out, m, "vision_model.encoder.layers.", "visual.trunk.blocks.", vsubs, 5) ||
           map_layer(out, m, "text_model.encoder.layers.", "text.transformer.resblocks.", tsubs, 5);
}

bool eva_names_map(eva_names n, const char *m, char out[EVA_TAP_NAME_MAX]) {
    if (is_output(m)) return put(out, m, "");
    switch (n) {
    case EVA_NAMES_OPEN_CLIP:
    case EVA_NAMES_OFFICIAL:
        if (!strcmp(m, "visual")) return put(out, "image_features", "");
        if (!strcmp(m, "text")) return put(out, "text_features", "");
        if (n == EVA_NAMES_OFFICIAL && !strncmp(m, "visual.", 7))
            return strncmp(m, "visual.trunk.", 13) != 0 && put(out, "visual.trunk.", m + 7);
        return put(out, m, "");
    case EVA_NAMES_TRANSFORMERS: return map_transformers(m, out);
    case EVA_NAMES_AUTO: break;
    }
    return false;
}

eva_names eva_names_detect(const char (*names)[EVA_TAP_NAME_MAX], int n) {
    bool official = false;
    for (int i = 0; i < n; i++) {
        const char *m = names[i];
        if (!strncmp(m, "vision_model.", 13) || !strncmp(m, "text_model.", 11) || !strcmp(m, "visual_projection") ||
            !strcmp(m, "text_projection"))
            return EVA_NAMES_TRANSFORMERS;
        if (!strncmp(m, "visual.", 7) && strncmp(m, "visual.trunk.", 13) != 0) official = true;
    }
    return official ? EVA_NAMES_OFFICIAL : EVA_NAMES_OPEN_CLIP;
}

/* ---- checks --------------------------------------------------------------------------------- */

/* Shape of a tap (or image_embeds / text_embeds) for B images and T texts; -1 if unknown. */
static int expected_shape(const eva_config *cfg, const char *tap, int64_t B, int64_t T, int64_t sh[4]) {
    if (!strcmp(tap, "image_embeds") || !strcmp(tap, "text_embeds")) {
        sh[0] = tap[0] == 'i' ? B : T;
        sh[1] = cfg->embed_dim;
        return 2;
    }
    return eva_tap_shape(cfg, tap, B, T, sh);
}

static bool same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* /acts/<dname> of f (shown as `tap` when the name was mapped) is a known tap with its shape. */
static eva_status check_tap(const eva_golden *f, const char *dname, const char *tap, const eva_config *cfg,
                            int64_t B, int64_t T, const char *scheme) {
    int64_t want[4], have[4];
    int nw = expected_shape(cfg, tap, B, T, want), nh;
    char via[EVA_TAP_NAME_MAX + 24] = "";
    if (strcmp(dname, tap) != 0) snprintf(via, sizeof via, " (tap %s)", tap);
    if (nw < 0)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s%s: unknown tap for config '%s'%s%s", f->path, dname, via,
                        cfg->name, scheme ? " under --names " : "", scheme ? scheme : "");
    eva_status st = eva_golden_act_shape(f, dname, &nh, have);
    if (st != EVA_OK) return st;
    if (!same_shape(nw, want, nh, have)) {
        char a[64], b[64];
        char sa[64], sb[64];
        snprintf(sa, sizeof sa, "%s", eva_shape_str(a, sizeof a, nh, have));
        snprintf(sb, sizeof sb, "%s", eva_shape_str(b, sizeof b, nw, want));
        return eva_fail(EVA_ERR_SHAPE, "%s: /acts/%s%s has shape %s, expected %s (config '%s', %lld images, %lld "
                                       "texts)", f->path, dname, via, sa, sb, cfg->name, (long long)B, (long long)T);
    }
    return EVA_OK;
}

/* The candidate's /inputs, when present, are the golden's. */
static eva_status check_inputs(const eva_golden *gold, const eva_golden *cand) {
    const eva_inputs *g = &gold->inputs, *c = &cand->inputs;
    if (c->ids && g->ids) {
        if (!same_shape(2, c->ids_shape, 2, g->ids_shape) ||
            memcmp(c->ids, g->ids, (size_t)(g->ids_shape[0] * g->ids_shape[1]) * sizeof *g->ids) != 0)
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: /inputs/input_ids differ from those of %s: the dump was made "
                                                 "from other texts", cand->path, gold->path);
    }
    if (c->pixels && g->pixels) {
        if (!same_shape(4, c->pix_shape, 4, g->pix_shape))
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: /inputs/pixel_values has another shape than in %s: the dump "
                                                 "was made from other images", cand->path, gold->path);
        int64_t n = g->pix_shape[0] * g->pix_shape[1] * g->pix_shape[2] * g->pix_shape[3];
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)c->pixels[i] - g->pixels[i]);
            if (!(d <= 1e-6 + fabs((double)g->pixels[i]) * 1.0 / 1024))
                return eva_fail(EVA_ERR_INVALID_ARG, "%s: /inputs/pixel_values differ from those of %s (flat index "
                                                     "%lld: %g vs %g): the dump was made from other images",
                                cand->path, gold->path, (long long)i, c->pixels[i], g->pixels[i]);
        }
    }
    return EVA_OK;
}

/* ---- the comparison ------------------------------------------------------------------------- */

typedef struct {
    char tap[EVA_TAP_NAME_MAX];
    char module[EVA_TAP_NAME_MAX];
} map_entry;

static int cmp_entry(const void *a, const void *b) { return strcmp(((const map_entry *)a)->tap, ((const map_entry *)b)->tap); }

/* Maps and checks every candidate dataset; *map sorted by tap name, [cand->n_acts]. */
static eva_status map_candidate(map_entry **map, const eva_golden *cand, const eva_config *cfg, eva_names names,
                                int64_t B, int64_t T) {
    const char *scheme = eva_names_name(names);
    map_entry *m = calloc((size_t)cand->n_acts, sizeof *m);
    if (!m) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", cand->path);
    eva_status st = EVA_OK;
    for (int k = 0; k < cand->n_acts && st == EVA_OK; k++) {
        snprintf(m[k].module, sizeof m[k].module, "%s", cand->acts[k]);
        if (!eva_names_map(names, cand->acts[k], m[k].tap))
            st = eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s: unknown tap: no tap of evabench is this module's output "
                                               "under --names %s (the name map: docs/formats.md)",
                          cand->path, cand->acts[k], scheme);
        else
            st = check_tap(cand, cand->acts[k], m[k].tap, cfg, B, T, scheme);
    }
    if (st == EVA_OK) {
        qsort(m, (size_t)cand->n_acts, sizeof *m, cmp_entry);
        for (int k = 1; k < cand->n_acts && st == EVA_OK; k++)
            if (!strcmp(m[k].tap, m[k - 1].tap))
                st = eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s and /acts/%s are the same tap %s", cand->path,
                              m[k - 1].module, m[k].module, m[k].tap);
    }
    if (st != EVA_OK) {
        free(m);
        return st;
    }
    *map = m;
    return EVA_OK;
}

/* Every tap of cfg in forward order, with image_embeds / text_embeds right after the features. */
static eva_status forward_order(char (**out)[EVA_TAP_NAME_MAX], int *n_out, const eva_config *cfg) {
    int n = eva_tap_names(cfg, EVA_TAPS_ALL, NULL, 0);
    char(*names)[EVA_TAP_NAME_MAX] = calloc((size_t)n + 2, sizeof *names);
    if (!names) return eva_fail(EVA_ERR_NOMEM, "out of memory listing taps");
    eva_tap_names(cfg, EVA_TAPS_ALL, names, n);
    for (int e = 0; e < 2; e++) {
        const char *feat = e ? "text_features" : "image_features", *emb = e ? "text_embeds" : "image_embeds";
        int at = n;
        for (int k = 0; k < n; k++)
            if (!strcmp(names[k], feat)) at = k + 1;
        memmove(&names[at + 1], &names[at], (size_t)(n - at) * sizeof *names);
        snprintf(names[at], EVA_TAP_NAME_MAX, "%s", emb);
        n++;
    }
    *out = names;
    *n_out = n;
    return EVA_OK;
}

/* One row: both tensors read (as float32) and compared. */
static eva_status compare_one(eva_cmp_row *row, const eva_golden *gold, const eva_golden *cand, const char *tap,
                              const char *module, const eva_config *cfg, const eva_tol_table *tol) {
    float *ref = NULL, *got = NULL;
    int nr, nc;
    int64_t sr[4], sc[4];
    eva_status st = eva_golden_read_act(gold, tap, &ref, &nr, sr);
    if (st == EVA_OK) st = eva_golden_read_act(cand, module, &got, &nc, sc);
    if (st == EVA_OK && !same_shape(nr, sr, nc, sc))
        st = eva_fail(EVA_ERR_SHAPE, "%s: /acts/%s changed shape while read", cand->path, module);
    if (st == EVA_OK) eva_compare(row, tap, got, ref, nr, sr, eva_tol_match(tol, tap), eva_tap_depth(cfg, tap));
    free(ref);
    free(got);
    return st;
}

static eva_status fill_rows(eva_dumpcmp *r, const eva_golden *gold, const eva_golden *cand, const map_entry *map,
                            const eva_config *cfg, const eva_tol_table *tol) {
    char(*order)[EVA_TAP_NAME_MAX] = NULL;
    int n_order = 0;
    eva_status st = forward_order(&order, &n_order, cfg);
    if (st != EVA_OK) return st;
    r->rows = calloc((size_t)n_order, sizeof *r->rows);
    r->module = calloc((size_t)n_order, sizeof *r->module);
    if (!r->rows || !r->module) st = eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_order && st == EVA_OK; k++) {
        const char *tap = order[k];
        if (!eva_golden_has_act(gold, tap)) continue;
        map_entry key;
        snprintf(key.tap, sizeof key.tap, "%s", tap);
        const map_entry *hit = bsearch(&key, map, (size_t)cand->n_acts, sizeof *map, cmp_entry);
        eva_cmp_row *row = &r->rows[r->n_rows];
        if (hit) {
            snprintf(r->module[r->n_rows], EVA_TAP_NAME_MAX, "%s", hit->module);
            st = compare_one(row, gold, cand, tap, hit->module, cfg, tol);
            if (row->verdict == EVA_VERDICT_PASS) r->n_pass++;
            else r->n_fail++;
            if (row->verdict != EVA_VERDICT_PASS && r->first_fail < 0) r->first_fail = r->n_rows;
        } else {
            int nd;
            int64_t sh[4];
            if ((st = eva_golden_act_shape(gold, tap, &nd, sh)) != EVA_OK) break;
            eva_compare_na(row, tap, nd, sh, eva_tol_match(tol, tap), "absent from the candidate");
            row->verdict = EVA_VERDICT_ABSENT;
            r->n_absent++;
        }
        r->n_rows++;
    }
    free(order);
    return st;
}

static eva_status list_extra(eva_dumpcmp *r, const eva_golden *gold, const map_entry *map, int n_map) {
    r->extra = calloc((size_t)n_map + 1, sizeof *r->extra);
    if (!r->extra) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n_map; k++)
        if (!eva_golden_has_act(gold, map[k].tap)) snprintf(r->extra[r->n_extra++], EVA_TAP_NAME_MAX, "%s", map[k].tap);
    return EVA_OK;
}

eva_status eva_dumpcmp_run(eva_dumpcmp *r, const eva_golden *gold, const eva_golden *cand, const eva_config *cfg,
                           const eva_tol_table *tol, eva_names names) {
    memset(r, 0, sizeof *r);
    r->first_fail = -1;
    r->names = names == EVA_NAMES_AUTO ? eva_names_detect((const char(*)[EVA_TAP_NAME_MAX])cand->acts, cand->n_acts)
                                       : names;
    const int64_t B = eva_inputs_images(&gold->inputs), T = eva_inputs_texts(&gold->inputs);
    r->images = B;
    r->texts = T;
    map_entry *map = NULL;
    eva_status st = check_inputs(gold, cand);
    for (int k = 0; k < gold->n_acts && st == EVA_OK; k++)
        st = check_tap(gold, gold->acts[k], gold->acts[k], cfg, B, T, NULL);
    if (st == EVA_OK && gold->n_acts == 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: has no /acts datasets: nothing to compare against", gold->path);
    if (st == EVA_OK) st = map_candidate(&map, cand, cfg, r->names, B, T);
    if (st == EVA_OK) st = fill_rows(r, gold, cand, map, cfg, tol);
    if (st == EVA_OK) st = list_extra(r, gold, map, cand->n_acts);
    if (st == EVA_OK && r->n_pass + r->n_fail == 0)
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: no tap in common with %s (the candidate's %d datasets, read with "
                                           "--names %s, are taps the golden lacks)", cand->path, gold->path,
                      cand->n_acts, eva_names_name(r->names));
    free(map);
    if (st != EVA_OK) eva_dumpcmp_free(r);
    return st;
}

void eva_dumpcmp_free(eva_dumpcmp *r) {
    if (!r) return;
    free(r->rows);
    free(r->module);
    free(r->extra);
    eva_names keep = r->names;
    memset(r, 0, sizeof *r);
    r->names = keep;
    r->first_fail = -1;
}

const char *eva_dump_precision(const eva_golden *cand, char *buf, size_t cap) {
    static const char *const known[] = {"fp32", "tf32", "bf16", "fp16"};
    char *p = NULL;
    snprintf(buf, cap, "fp32");
    if (eva_golden_attr(cand, "precision", &p) == EVA_OK && p)
        for (int i = 0; i < 4; i++)
            if (!strcmp(p, known[i])) snprintf(buf, cap, "%s", known[i]);
    free(p);
    eva_clear_error();
    return buf;
}

const char *eva_dump_made_by(const eva_golden *cand, char *buf, size_t cap) {
    char *impl = NULL;
    if (eva_golden_attr(cand, "impl", &impl) != EVA_OK) impl = NULL;
    eva_clear_error();
    const char *gen = cand->generator;
    if (!impl && !gen) return NULL;
    snprintf(buf, cap, "%s%s%s", impl ? impl : "", impl && gen ? "; " : "", gen ? gen : "");
    free(impl);
    return buf;
}
