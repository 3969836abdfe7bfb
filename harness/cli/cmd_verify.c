/* cmd_verify.c: `evabench verify`: runs a golden's inputs through both towers with a
 * tap capturing every activation the golden holds, compares each with the tolerance of the
 * precision (compare.h), prints one row per tap in forward order, names the first failing tap and
 * writes the table as Markdown (--report) and JSON (--json).
 *
 * Decisions:
 * - Every /acts/<name> must be a tap the config knows (eva_tap_shape) with exactly the expected
 *   shape, else exit 2 before any compute; image_embeds and text_embeds are accepted too.
 * - image_embeds / text_embeds rows are always added when the golden has the features: the
 *   reference side is the golden's features L2-normalised in double (or the stored /acts image_embeds, text_embeds).
 * - A golden tap the implementation never hands over is an N/A row. N/A fails the run unless the
 *   tolerance row of that tap says "optional": true (none does today), so nothing passes unseen.
 * - Exit 0 iff every row passes; 1 if any fails (or is a non-optional N/A); 2 bad input; 3 internal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_select.h"
#include "cli.h"
#include "cmds.h"
#include "compare.h"
#include "golden.h"
#include "ref_model.h"
#include "report.h"

typedef struct {
    const eva_golden *g;
    float **data;           /* [g->n_acts], captured copies */
    int *ndim;
    int64_t (*shape)[4];
    eva_status err;
} capture;

static int act_index(const eva_golden *g, const char *name) {
    for (int lo = 0, hi = g->n_acts - 1; lo <= hi;) {
        int mid = (lo + hi) / 2, c = strcmp(name, g->acts[mid]);
        if (!c) return mid;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

static bool cap_wants(void *ctx, const char *name) {
    capture *c = ctx;
    return act_index(c->g, name) >= 0;
}

static void cap_store(capture *c, const char *name, const float *data, int ndim, const int64_t *shape) {
    int k = act_index(c->g, name);
    if (k < 0 || ndim < 1 || ndim > 4) return;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!copy) {
        c->err = eva_fail(EVA_ERR_NOMEM, "tap %s: cannot keep %lld floats", name, (long long)n);
        return;
    }
    memcpy(copy, data, (size_t)n * sizeof(float));
    free(c->data[k]);
    c->data[k] = copy;
    c->ndim[k] = ndim;
    for (int i = 0; i < ndim; i++) c->shape[k][i] = shape[i];
}

static void cap_take(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    cap_store(ctx, name, data, ndim, shape);
}

/* emb[n,E] = x / ||x|| with the norm in double (rows of zero norm stay zero). */
static void l2norm_rows(float *emb, const float *x, int64_t n, int64_t E) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < E; j++) s += (double)x[i * E + j] * x[i * E + j];
        double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (int64_t j = 0; j < E; j++) emb[i * E + j] = (float)(x[i * E + j] * inv);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool shapes_equal(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

typedef struct {
    const char *golden, *weights, *variant, *config, *impl, *precision, *json, *report;
} verify_args;

static int parse(verify_args *a, int argc, char **argv) {
    *a = (verify_args){.impl = "ref", .precision = "fp32"};
    const eva_opt opts[] = {
        EVA_ARG_STR("--golden", &a->golden, "G.h5", "golden HDF5 (schema evabench-golden/1)"),
        EVA_ARG_STR("--weights", &a->weights, "W",
                    "weights (as encode --weights; default: the golden's 'weights' attribute)"),
        EVA_ARG_STR("--variant", &a->variant, "NAME", "built-in config instead of the golden's 'config' attribute"),
        EVA_ARG_STR("--config", &a->config, "C.json", "config JSON instead of the golden's 'config' attribute"),
        EVA_ARG_STR("--impl", &a->impl, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->precision, "P", "fp32 (default), tf32, bf16 or fp16 (cuda only)"),
        EVA_ARG_STR("--json", &a->json, "OUT.json", "write the table as JSON (reports/README.md)"),
        EVA_ARG_STR("--report", &a->report, "OUT.md", "write the table as Markdown"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "verify",
        "usage: evabench verify --golden G.h5 [--weights W.safetensors] [--variant NAME | --config C.json]\n"
        "                       [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--json OUT.json] [--report OUT.md]\n\n"
        "Runs the golden's /inputs through both towers and compares every /acts/<tap> (and the L2-normalised\n"
        "embeddings) with the tolerance table for the precision (golden/README-tolerances.md). Prints one row per\n"
        "tap in forward order (shape, max abs error, max rel error, cosine, budget used, verdict) and names the\n"
        "first failing tap.\n",
        opts, NULL,
        "Exit status: 0 every tap passes, 1 a tap fails (or one the implementation cannot produce, N/A),\n"
        "2 bad usage or input (unknown tap, wrong shape, corrupt file, ...), 3 internal failure.\n"};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r < 0 && !a->golden) r = eva_cli_usage_error("verify", "--golden G.h5 is required (see --help)");
    return r;
}

/* Everything one verify run holds; verify_free() releases it all. */
typedef struct {
    eva_golden g;
    bool golden_open;
    eva_config cfg;
    const char *config_source;
    eva_impl impl;
    eva_precision precision;
    eva_model model;
    eva_backend be;
    eva_tol_table tol;
    capture cap;
    int64_t B, T, E;
    float *features[2]; /* [0] images [B,E], [1] texts [T,E] */
    float *embeds[2];   /* L2-normalised features */
    float *emb_ref;     /* scratch [max(B,T),E] */
    eva_cmp_row *rows;
    int n_rows;
    double seconds;
    char weights_path[1100], config_attr[1200];
} verify_run;

static void verify_free(verify_run *r) {
    if (r->cap.data)
        for (int k = 0; k < r->g.n_acts; k++) free(r->cap.data[k]);
    free(r->cap.data), free(r->cap.ndim), free(r->cap.shape);
    for (int k = 0; k < 2; k++) free(r->features[k]), free(r->embeds[k]);
    free(r->emb_ref);
    free(r->rows);
    eva_backend_close(&r->be);
    eva_model_free(&r->model);
    eva_tol_free(&r->tol);
    if (r->golden_open) eva_golden_close(&r->g);
}

/* Every golden tap must be one the config knows, with exactly the expected shape. */
static eva_status check_golden_taps(const verify_run *r, const char *golden_path) {
    for (int k = 0; k < r->g.n_acts; k++) {
        const char *name = r->g.acts[k];
        int64_t want[4], have[4];
        int nw, nh;
        if (!strcmp(name, "image_embeds") || !strcmp(name, "text_embeds")) {
            nw = 2;
            want[0] = name[0] == 'i' ? r->B : r->T;
            want[1] = r->E;
        } else {
            nw = eva_tap_shape(&r->cfg, name, r->B, r->T, want);
        }
        if (nw < 0)
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s: unknown tap for config '%s' (see docs/formats.md)",
                            golden_path, name, r->cfg.name);
        eva_status st = eva_golden_act_shape(&r->g, name, &nh, have);
        if (st != EVA_OK) return st;
        if (!shapes_equal(nw, want, nh, have)) {
            char sa[64], sb[64];
            return eva_fail(EVA_ERR_SHAPE, "%s: /acts/%s has shape %s, config '%s' with %lld images and %lld texts "
                                           "expects %s", golden_path, name, eva_shape_str(sa, sizeof sa, nh, have),
                            r->cfg.name, (long long)r->B, (long long)r->T, eva_shape_str(sb, sizeof sb, nw, want));
        }
    }
    if (r->g.n_acts == 0) return eva_fail(EVA_ERR_FORMAT, "%s: has no /acts datasets: nothing to verify", golden_path);
    return EVA_OK;
}

/* Golden, config, tolerance, inputs and taps checked; weights loaded; implementation open. */
static eva_status verify_prepare(verify_run *r, const verify_args *a) {
    eva_status st = eva_backend_select(&r->impl, &r->precision, a->impl, a->precision);
    if (st != EVA_OK) return st;
    /* An explicit --config/--variant sizes what is read from the golden (else its own attribute). */
    eva_config explicit_cfg;
    if ((a->config || a->variant) &&
        (st = eva_resolve_config(&explicit_cfg, &r->config_source, a->config, a->variant, NULL, NULL, NULL)) != EVA_OK)
        return st;
    if ((st = eva_golden_open_for(&r->g, a->golden, a->config || a->variant ? &explicit_cfg : NULL)) != EVA_OK)
        return st;
    r->golden_open = true;
    snprintf(r->config_attr, sizeof r->config_attr, "%s (config attribute)", a->golden);
    st = eva_resolve_config(&r->cfg, &r->config_source, a->config, a->variant, r->g.config_json, r->config_attr, NULL);
    /* a golden computed in float32 (compute_dtype attribute) is judged with its own fp32 rows */
    if (st == EVA_OK) st = eva_tol_for_golden(&r->tol, eva_precision_name(r->precision), r->g.compute_dtype);
    const eva_inputs *in = &r->g.inputs;
    if (st == EVA_OK) st = eva_inputs_check_pixels(in, r->cfg.vision.image_size, a->golden);
    if (st == EVA_OK) st = eva_inputs_check_ids(in, r->cfg.text.context_length, r->cfg.text.vocab_size, a->golden);
    if (st != EVA_OK) return st;
    r->B = eva_inputs_images(in), r->T = eva_inputs_texts(in), r->E = r->cfg.embed_dim;
    if ((st = check_golden_taps(r, a->golden)) != EVA_OK) return st;
    if (a->weights)
        snprintf(r->weights_path, sizeof r->weights_path, "%s", a->weights);
    else if ((st = eva_golden_weights_path(&r->g, r->weights_path, sizeof r->weights_path)) != EVA_OK)
        return st;
    if ((st = eva_model_load(&r->model, r->weights_path, &r->cfg)) != EVA_OK) {
        if (!a->weights) eva_fail_context("%s: weights attribute", a->golden);
        return st;
    }
    if ((st = eva_backend_open_impl(&r->be, r->impl, r->precision, &r->model, 0)) != EVA_OK) return st;
    r->cap.g = &r->g;
    r->cap.data = calloc((size_t)r->g.n_acts, sizeof *r->cap.data);
    r->cap.ndim = calloc((size_t)r->g.n_acts, sizeof *r->cap.ndim);
    r->cap.shape = calloc((size_t)r->g.n_acts, sizeof *r->cap.shape);
    if (!r->cap.data || !r->cap.ndim || !r->cap.shape) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    return EVA_OK;
}

/* Both towers with the capturing tap; features, embeddings and logits kept as taps too. */
static eva_status verify_forward(verify_run *r) {
    eva_tap tap = {cap_wants, cap_take, &r->cap};
    const int64_t n[2] = {r->B, r->T}, E = r->E;
    bool tty = isatty(2);
    double t0 = now_s();
    for (int k = 0; k < 2; k++) {
        if (n[k] == 0) continue;
        if (tty) fprintf(stderr, "verify: %s tower, %lld %s...\n", k ? "text" : "image", (long long)n[k], k ? "texts" : "images");
        r->features[k] = malloc((size_t)(n[k] * E) * sizeof(float));
        r->embeds[k] = malloc((size_t)(n[k] * E) * sizeof(float));
        if (!r->features[k] || !r->embeds[k]) return eva_fail(EVA_ERR_NOMEM, "out of memory for features");
        eva_status st = k ? eva_backend_encode_text(&r->be, r->features[1], r->g.inputs.ids, (int)n[1], &tap)
                          : eva_backend_encode_image(&r->be, r->features[0], r->g.inputs.pixels, (int)n[0], &tap);
        if (st != EVA_OK) return st;
    }
    r->seconds = now_s() - t0;
    if (r->cap.err != EVA_OK) return r->cap.err;
    for (int k = 0; k < 2; k++) {
        if (n[k] == 0) continue;
        int64_t shp[2] = {n[k], E};
        cap_store(&r->cap, k ? "text_features" : "image_features", r->features[k], 2, shp);
        l2norm_rows(r->embeds[k], r->features[k], n[k], E);
    }
    if (!(r->emb_ref = malloc((size_t)((r->B > r->T ? r->B : r->T) * E + 1) * sizeof(float))))
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    if (r->B > 0 && r->T > 0 && act_index(&r->g, "logits_per_image") >= 0) {
        float *logits = malloc((size_t)(r->B * r->T) * sizeof(float));
        if (!logits) return eva_fail(EVA_ERR_NOMEM, "out of memory");
        eva_ref_logits(logits, r->embeds[0], r->embeds[1], (int)r->B, (int)r->T, (int)E, expf(r->model.w.logit_scale[0]));
        int64_t shp[2] = {r->B, r->T};
        cap_store(&r->cap, "logits_per_image", logits, 2, shp);
        free(logits);
    }
    return r->cap.err;
}

/* The row of image_embeds (img) or text_embeds: against the golden's stored embeddings, else its
 * features L2-normalised in double. *added 0 when the golden has neither. */
static eva_status add_embed_row(verify_run *r, bool img, int *added) {
    const char *name = img ? "image_embeds" : "text_embeds";
    const int64_t n_items = img ? r->B : r->T;
    bool stored = act_index(&r->g, name) >= 0;
    *added = 0;
    if (n_items == 0 || (!stored && !eva_golden_has_act(&r->g, img ? "image_features" : "text_features")))
        return EVA_OK;
    float *ref_buf = NULL;
    int nd;
    int64_t sh[4];
    eva_status st = eva_golden_read_act(&r->g, stored ? name : img ? "image_features" : "text_features", &ref_buf, &nd, sh);
    if (st != EVA_OK) return st;
    if (stored)
        memcpy(r->emb_ref, ref_buf, (size_t)(n_items * r->E) * sizeof(float));
    else
        l2norm_rows(r->emb_ref, ref_buf, n_items, r->E);
    free(ref_buf);
    sh[0] = n_items, sh[1] = r->E;
    eva_compare(&r->rows[r->n_rows++], name, r->embeds[img ? 0 : 1], r->emb_ref, 2, sh, eva_tol_match(&r->tol, name),
                eva_tap_depth(&r->cfg, name));
    *added = 1;
    return EVA_OK;
}

/* The row of one golden tap: compared, N/A (never produced) or failed (wrong shape). */
static eva_status add_tap_row(verify_run *r, const char *name) {
    int a = act_index(&r->g, name), nd;
    int64_t sh[4];
    const eva_tol_rule *rule = eva_tol_match(&r->tol, name);
    eva_cmp_row *row = &r->rows[r->n_rows++];
    eva_status st = eva_golden_act_shape(&r->g, name, &nd, sh);
    if (st != EVA_OK) return st;
    if (!r->cap.data[a]) {
        eva_compare_na(row, name, nd, sh, rule, "the implementation did not produce this tap");
    } else if (!shapes_equal(r->cap.ndim[a], r->cap.shape[a], nd, sh)) {
        char s1[64], s2[64];
        eva_compare_na(row, name, nd, sh, rule, NULL);
        row->verdict = EVA_VERDICT_FAIL;
        snprintf(row->note, sizeof row->note, "the implementation produced shape %s, the golden has %s",
                 eva_shape_str(s1, sizeof s1, r->cap.ndim[a], r->cap.shape[a]), eva_shape_str(s2, sizeof s2, nd, sh));
    } else {
        float *ref_buf = NULL;
        if ((st = eva_golden_read_act(&r->g, name, &ref_buf, &nd, sh)) != EVA_OK) return st;
        eva_compare(row, name, r->cap.data[a], ref_buf, nd, sh, rule, eva_tap_depth(&r->cfg, name));
        free(ref_buf);
    }
    return EVA_OK;
}

/* Moves image_embeds right after image_features and text_embeds after text_features. */
static void place_embed_rows(eva_cmp_row *rows, int n_rows) {
    for (int e = 0; e < 2; e++) {
        const char *emb = e ? "text_embeds" : "image_embeds", *feat = e ? "text_features" : "image_features";
        int ie = -1, jf = -1;
        for (int k = 0; k < n_rows; k++) {
            if (!strcmp(rows[k].name, emb)) ie = k;
            if (!strcmp(rows[k].name, feat)) jf = k;
        }
        if (ie < 0 || jf < 0 || ie == jf + 1 || ie < jf) continue;
        eva_cmp_row tmp = rows[ie];
        memmove(&rows[jf + 2], &rows[jf + 1], (size_t)(ie - jf - 1) * sizeof *rows);
        rows[jf + 1] = tmp;
    }
}

/* One row per golden tap in forward order, then the embeddings placed after the features. */
static eva_status verify_rows(verify_run *r) {
    int n_names = eva_tap_names(&r->cfg, EVA_TAPS_ALL, NULL, 0);
    char(*names)[EVA_TAP_NAME_MAX] = calloc((size_t)n_names + 1, sizeof *names);
    r->rows = calloc((size_t)n_names + 2, sizeof *r->rows);
    if (!names || !r->rows) {
        free(names);
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    }
    eva_tap_names(&r->cfg, EVA_TAPS_ALL, names, n_names);
    eva_status st = EVA_OK;
    for (int k = 0; k < n_names && st == EVA_OK; k++)
        if (act_index(&r->g, names[k]) >= 0) st = add_tap_row(r, names[k]);
    free(names);
    int added;
    if (st == EVA_OK) st = add_embed_row(r, true, &added);
    if (st == EVA_OK) st = add_embed_row(r, false, &added);
    if (st == EVA_OK) place_embed_rows(r->rows, r->n_rows);
    return st;
}

/* Prints the table and verdict, writes --report/--json; returns the exit code. */
static int verify_report(const verify_run *r, const verify_args *a) {
    eva_verify_report rep = {a->golden, r->weights_path, r->cfg.name, r->config_source, eva_impl_name(r->impl),
                             eva_precision_name(r->precision), eva_backend_describe(&r->be), r->g.generator,
                             r->rows, r->n_rows, r->seconds};
    printf("evabench verify: %s (config %s, %s %s%s)\n", a->golden, r->cfg.name, eva_impl_name(r->impl),
           eva_precision_name(r->precision),
           strcmp(r->tol.precision, eva_precision_name(r->precision)) ? ", float32 golden: tolerance rows fp32+golden32"
                                                                       : "");
    eva_report_print_table(stdout, &rep);
    int n_bad = 0, n_na = 0;
    for (int k = 0; k < r->n_rows; k++) {
        n_bad += eva_cmp_row_fails(&r->rows[k]);
        n_na += r->rows[k].verdict == EVA_VERDICT_NA;
    }
    int first = eva_report_first_failure(&rep);
    if (first < 0)
        printf("PASS: all %d taps within tolerance%s\n", r->n_rows, n_na ? " (optional taps N/A)" : "");
    else
        printf("FAIL: %d of %d taps fail (%d of them N/A); first failing tap: %s\n", n_bad, r->n_rows, n_na,
               r->rows[first].name);
    fflush(stdout);
    eva_status st = EVA_OK;
    if (a->report) st = eva_report_write_markdown(&rep, a->report);
    if (st == EVA_OK && a->json) st = eva_report_write_json(&rep, a->json);
    if (st != EVA_OK) return eva_cli_fail("verify", st);
    if (first < 0) return 0;
    fprintf(stderr, "evabench verify: %s: tap %s fails: %s\n", a->golden, r->rows[first].name, r->rows[first].note);
    return 1;
}

int eva_cmd_verify(int argc, char **argv) {
    verify_args a;
    int code = parse(&a, argc, argv);
    if (code >= 0) return code;
    verify_run r;
    memset(&r, 0, sizeof r);
    eva_status st = verify_prepare(&r, &a);
    if (st == EVA_OK) st = verify_forward(&r);
    if (st == EVA_OK) st = verify_rows(&r);
    code = st == EVA_OK ? verify_report(&r, &a) : eva_cli_fail("verify", st);
    verify_free(&r);
    return code;
}
