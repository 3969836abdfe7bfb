/* compare.c: tolerance table and per-tap comparison. See compare.h for the rule. */
#include "compare.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eva_embedded.h"

#define EVA_TOL_MAX_ROWS 256

static eva_status num_field(double *out, const cJSON *row, const char *key, bool required, double dflt,
                            const char *source, const char *prec, int i) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    if (!v) {
        if (required)
            return eva_fail(EVA_ERR_FORMAT, "%s: %s row %d lacks \"%s\"", source, prec, i, key);
        *out = dflt;
        return EVA_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return eva_fail(EVA_ERR_FORMAT, "%s: %s row %d: \"%s\" must be a finite number >= 0", source, prec, i, key);
    *out = v->valuedouble;
    return EVA_OK;
}

eva_status eva_tol_parse(eva_tol_table *t, const char *json, const char *source, const char *precision) {
    memset(t, 0, sizeof *t);
    eva_status st = EVA_OK;
    cJSON *root = cJSON_Parse(json);
    if (!root) return eva_fail(EVA_ERR_FORMAT, "%s: not valid JSON", source);
    const cJSON *precs = cJSON_GetObjectItemCaseSensitive(root, "precisions");
    const cJSON *p = cJSON_IsObject(precs) ? cJSON_GetObjectItemCaseSensitive(precs, precision) : NULL;
    if (!p) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: no tolerances for precision '%s'", source, precision);
        goto fail;
    }
    const cJSON *rows = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "rows") : p;
    int n = cJSON_IsArray(rows) ? cJSON_GetArraySize(rows) : 0;
    if (n < 1 || n > EVA_TOL_MAX_ROWS) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: precision '%s' needs 1..%d rows", source, precision, EVA_TOL_MAX_ROWS);
        goto fail;
    }
    t->rules = calloc((size_t)n, sizeof *t->rules);
    if (!t->rules) {
        st = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", source);
        goto fail;
    }
    snprintf(t->precision, sizeof t->precision, "%s", precision);
    for (int i = 0; i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(rows, i);
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(row, "pattern");
        if (!cJSON_IsString(pat) || !pat->valuestring[0] || strlen(pat->valuestring) >= EVA_TAP_NAME_MAX) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: %s row %d lacks a \"pattern\" string", source, precision, i);
            goto fail;
        }
        eva_tol_rule *r = &t->rules[i];
        snprintf(r->pattern, sizeof r->pattern, "%s", pat->valuestring);
        if ((st = num_field(&r->atol, row, "atol", true, 0, source, precision, i)) != EVA_OK) goto fail;
        if ((st = num_field(&r->rtol, row, "rtol", true, 0, source, precision, i)) != EVA_OK) goto fail;
        if ((st = num_field(&r->cos_min, row, "cos_min", true, 0, source, precision, i)) != EVA_OK) goto fail;
        if ((st = num_field(&r->atol_rms, row, "atol_rms", false, 0, source, precision, i)) != EVA_OK) goto fail;
        if ((st = num_field(&r->depth_growth, row, "depth_growth", false, 0, source, precision, i)) != EVA_OK)
            goto fail;
        if (r->cos_min > 1) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: %s row %d: cos_min above 1", source, precision, i);
            goto fail;
        }
        const cJSON *opt = cJSON_GetObjectItemCaseSensitive(row, "optional");
        r->optional = cJSON_IsTrue(opt);
        t->n++;
    }
    if (strcmp(t->rules[t->n - 1].pattern, "*") != 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: the last %s row must have pattern \"*\"", source, precision);
        goto fail;
    }
    cJSON_Delete(root);
    return EVA_OK;
fail:
    cJSON_Delete(root);
    eva_tol_free(t);
    return st;
}

eva_status eva_tol_default(eva_tol_table *t, const char *precision) {
    size_t len = 0;
    const unsigned char *js = eva_embedded_file("tolerances.json", &len);
    if (!js) {
        memset(t, 0, sizeof *t);
        return eva_fail(EVA_ERR_INTERNAL, "tolerances.json is not compiled into this build");
    }
    return eva_tol_parse(t, (const char *)js, "tolerances.json (built in)", precision);
}

eva_status eva_tol_for_golden(eva_tol_table *t, const char *precision, const char *golden_dtype) {
    if (golden_dtype && !strcmp(golden_dtype, "float32")) {
        char key[sizeof t->precision];
        if (snprintf(key, sizeof key, "%s+golden32", precision) < (int)sizeof key &&
            eva_tol_default(t, key) == EVA_OK)
            return EVA_OK;
        eva_clear_error();
    }
    return eva_tol_default(t, precision);
}

const eva_tol_rule *eva_tol_match(const eva_tol_table *t, const char *tap) {
    for (int i = 0; i < t->n; i++)
        if (fnmatch(t->rules[i].pattern, tap, 0) == 0) return &t->rules[i];
    return NULL;
}

void eva_tol_free(eva_tol_table *t) {
    if (!t) return;
    free(t->rules);
    memset(t, 0, sizeof *t);
}

static int block_index(const char *tap, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(tap, prefix, n) != 0) return -1;
    const char *p = tap + n;
    if (*p < '0' || *p > '9') return -1;
    long v = strtol(p, NULL, 10);
    return v > 1000000 ? 1000000 : (int)v;
}

int eva_tap_depth(const eva_config *cfg, const char *tap) {
    int vd = cfg ? cfg->vision.depth : 0, td = cfg ? cfg->text.layers : 0;
    int i;
    if ((i = block_index(tap, "visual.trunk.blocks.")) >= 0) return i + 1;
    if ((i = block_index(tap, "text.transformer.resblocks.")) >= 0) return i + 1;
    if (!strcmp(tap, "visual.trunk.norm") || !strncmp(tap, "visual.trunk.fc_norm", 20) ||
        !strncmp(tap, "visual.trunk.head", 17) || !strcmp(tap, "image_features") || !strcmp(tap, "image_embeds"))
        return vd;
    if (!strcmp(tap, "text.ln_final") || !strcmp(tap, "text_features") || !strcmp(tap, "text_embeds")) return td;
    if (!strcmp(tap, "logits_per_image") || !strcmp(tap, "logits_per_text")) return vd > td ? vd : td;
    return 0;
}

const char *eva_verdict_name(eva_verdict v) {
    switch (v) {
    case EVA_VERDICT_PASS: return "pass";
    case EVA_VERDICT_FAIL: return "FAIL";
    case EVA_VERDICT_NA: return "N/A";
    case EVA_VERDICT_ABSENT: return "absent";
    }
    return "?";
}

static void row_init(eva_cmp_row *row, const char *name, int ndim, const int64_t *shape, const eva_tol_rule *rule) {
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", name);
    row->ndim = ndim < 0 ? 0 : (ndim > 4 ? 4 : ndim);
    for (int i = 0; i < row->ndim; i++) row->shape[i] = shape[i];
    row->optional = rule && rule->optional;
    row->worst = -1;
    row->cosine = NAN;
    row->max_abs = row->max_rel = row->budget = NAN;
}

void eva_compare_na(eva_cmp_row *row, const char *name, int ndim, const int64_t *shape, const eva_tol_rule *rule,
                    const char *why) {
    row_init(row, name, ndim, shape, rule);
    row->verdict = EVA_VERDICT_NA;
    if (rule) {
        row->atol = rule->atol;
        row->rtol = rule->rtol;
        row->cos_min = rule->cos_min;
    }
    snprintf(row->note, sizeof row->note, "%s", why ? why : "not produced by this implementation");
}

void eva_compare(eva_cmp_row *row, const char *name, const float *got, const float *ref, int ndim,
                 const int64_t *shape, const eva_tol_rule *rule, int depth) {
    row_init(row, name, ndim, shape, rule);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    int64_t items = ndim > 0 ? shape[0] : 1;
    if (items < 1) items = 1;
    int64_t per = n / items;

    /* Pass 1: non-finite counts and rms of the reference (over finite values). */
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) row->nonfinite_got++;
        if (!isfinite(ref[i])) row->nonfinite_ref++;
        else ss += (double)ref[i] * ref[i];
    }
    double rms = n > 0 ? sqrt(ss / (double)n) : 0;
    double g = 1.0 + rule->depth_growth * (depth > 0 ? depth : 0);
    row->atol = (rule->atol + rule->atol_rms * rms) * g;
    row->rtol = rule->rtol * g;
    row->cos_min = rule->cos_min;
    double rel_floor = 1e-3 * rms > 1e-30 ? 1e-3 * rms : 1e-30;

    /* Pass 2: errors and budget over finite pairs; cosine per batch item. */
    double max_abs = 0, max_rel = 0, budget = 0, cos_min_seen = 1.0;
    for (int64_t b = 0; b < items; b++) {
        double dot = 0, ng = 0, nr = 0;
        for (int64_t j = 0; j < per; j++) {
            int64_t i = b * per + j;
            double x = got[i], y = ref[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            double d = fabs(x - y);
            double ay = fabs(y);
            if (d > max_abs) max_abs = d;
            double rel = d / (ay > rel_floor ? ay : rel_floor);
            if (rel > max_rel) max_rel = rel;
            double lim = row->atol + row->rtol * ay;
            double share = lim > 0 ? d / lim : (d > 0 ? INFINITY : 0);
            if (share > 1) row->over++;
            if (share > budget || row->worst < 0) {
                row->worst = i;
                if (share > budget) budget = share;
            }
            dot += x * y;
            ng += x * x;
            nr += y * y;
        }
        double c;
        if (ng == 0 && nr == 0) c = 1.0;
        else if (ng == 0 || nr == 0) c = 0.0;
        else c = dot / (sqrt(ng) * sqrt(nr));
        if (c < cos_min_seen) cos_min_seen = c;
    }
    row->max_abs = max_abs;
    row->max_rel = max_rel;
    row->budget = budget;
    row->cosine = cos_min_seen;

    row->verdict = EVA_VERDICT_PASS;
    if (row->nonfinite_got || row->nonfinite_ref) {
        row->verdict = EVA_VERDICT_FAIL;
        snprintf(row->note, sizeof row->note, "%lld NaN/Inf in the output, %lld in the golden",
                 (long long)row->nonfinite_got, (long long)row->nonfinite_ref);
    } else if (row->over > 0) {
        row->verdict = EVA_VERDICT_FAIL;
        snprintf(row->note, sizeof row->note,
                 "%lld of %lld elements over |d| <= %.3g + %.3g*|ref| (worst at flat index %lld: %.3gx the budget)",
                 (long long)row->over, (long long)n, row->atol, row->rtol, (long long)row->worst, budget);
    } else if (!(row->cosine >= row->cos_min)) {
        row->verdict = EVA_VERDICT_FAIL;
        snprintf(row->note, sizeof row->note, "cosine %.9f below the floor %.9f", row->cosine, row->cos_min);
    }
}
