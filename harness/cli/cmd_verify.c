/* cmd_verify.c: `evabench verify` (contract.md): runs a golden's inputs through both towers with a
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

static const char *verify_usage =
    "usage: evabench verify --golden G.h5 [--weights W.safetensors] [--variant NAME | --config C.json]\n"
    "                       [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--json OUT.json] [--report OUT.md]\n"
    "\n"
    "Runs the golden's /inputs through both towers and compares every /acts/<tap> (and the L2-normalised\n"
    "embeddings) with the tolerance table for the precision (golden/README-tolerances.md). Prints one row per\n"
    "tap in forward order (shape, max abs error, max rel error, cosine, budget used, verdict) and names the\n"
    "first failing tap.\n"
    "\n"
    "  --golden G.h5      golden HDF5 (schema evabench-golden/1)\n"
    "  --weights W        safetensors weights (default: the golden's 'weights' attribute, relative to G.h5)\n"
    "  --variant NAME     built-in config instead of the golden's 'config' attribute\n"
    "  --config C.json    config JSON instead of the golden's 'config' attribute\n"
    "  --impl ref|cuda    implementation (default ref)\n"
    "  --precision P      fp32 (default), tf32, bf16 or fp16 (cuda only)\n"
    "  --json OUT.json    write the table as JSON (reports/README.md)\n"
    "  --report OUT.md    write the table as Markdown\n"
    "\n"
    "Exit status: 0 every tap passes, 1 a tap fails (or one the implementation cannot produce, N/A),\n"
    "2 bad usage or input (unknown tap, wrong shape, corrupt file, ...), 3 internal failure.\n";

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

int eva_cmd_verify(int argc, char **argv) {
    const char *golden_path = NULL, *weights_arg = NULL, *variant = NULL, *config_path = NULL;
    const char *impl_s = "ref", *prec_s = "fp32", *json_out = NULL, *md_out = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(verify_usage, stdout);
            return 0;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--golden", &golden_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--weights", &weights_arg)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--variant", &variant)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--config", &config_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--impl", &impl_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--precision", &prec_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--json", &json_out)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--report", &md_out))) {
            if (r < 0) {
                fprintf(stderr, "evabench verify: option %s needs a value (see --help)\n", argv[i]);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "evabench verify: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    if (!golden_path) {
        fprintf(stderr, "evabench verify: --golden G.h5 is required (see --help)\n");
        return 2;
    }

    eva_status st;
    eva_impl impl;
    eva_precision prec;
    if ((st = eva_backend_select(&impl, &prec, impl_s, prec_s)) != EVA_OK)
        return eva_cli_fail("verify", st);

    int code = 3;
    eva_golden g;
    eva_config cfg;
    eva_model model;
    eva_backend be;
    eva_tol_table tol;
    capture cap;
    memset(&model, 0, sizeof model);
    memset(&be, 0, sizeof be);
    memset(&tol, 0, sizeof tol);
    memset(&cap, 0, sizeof cap);
    float *feat_img = NULL, *feat_txt = NULL, *ref_buf = NULL, *emb_got = NULL, *emb_ref = NULL;
    eva_cmp_row *rows = NULL;
    int n_rows = 0;
    char weights_path[1100];
    char cfg_src[1200];

    if ((st = eva_golden_open(&g, golden_path)) != EVA_OK) return eva_cli_fail("verify", st);
    const char *source = NULL;
    snprintf(cfg_src, sizeof cfg_src, "%s (config attribute)", golden_path);
    if ((st = eva_resolve_config(&cfg, &source, config_path, variant, g.config_json, cfg_src, NULL)) != EVA_OK)
        goto fail;
    if ((st = eva_tol_default(&tol, eva_precision_name(prec))) != EVA_OK) goto fail;

    /* Inputs against the config. */
    const eva_inputs *in = &g.inputs;
    if ((st = eva_inputs_check_pixels(in, cfg.vision.image_size, golden_path)) != EVA_OK) goto fail;
    if ((st = eva_inputs_check_ids(in, cfg.text.context_length, cfg.text.vocab_size, golden_path)) != EVA_OK)
        goto fail;
    const int64_t B = eva_inputs_images(in), T = eva_inputs_texts(in), E = cfg.embed_dim;

    /* Every golden tap must be known, with the expected shape. */
    for (int k = 0; k < g.n_acts; k++) {
        const char *name = g.acts[k];
        int64_t want[4], have[4];
        int nw, nh;
        if (!strcmp(name, "image_embeds") || !strcmp(name, "text_embeds")) {
            nw = 2;
            want[0] = name[0] == 'i' ? B : T;
            want[1] = E;
        } else {
            nw = eva_tap_shape(&cfg, name, B, T, want);
        }
        if (nw < 0) {
            st = eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s: unknown tap for config '%s' (see contract.md tap names)",
                          golden_path, name, cfg.name);
            goto fail;
        }
        if ((st = eva_golden_act_shape(&g, name, &nh, have)) != EVA_OK) goto fail;
        if (!shapes_equal(nw, want, nh, have)) {
            char a[64], b[64];
            st = eva_fail(EVA_ERR_SHAPE, "%s: /acts/%s has shape %s, config '%s' with %lld images and %lld texts "
                                         "expects %s", golden_path, name, eva_shape_str(a, sizeof a, nh, have),
                          cfg.name, (long long)B, (long long)T, eva_shape_str(b, sizeof b, nw, want));
            goto fail;
        }
    }
    bool have_feat_img = eva_golden_has_act(&g, "image_features"), have_feat_txt = eva_golden_has_act(&g, "text_features");
    if (g.n_acts == 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: has no /acts datasets: nothing to verify", golden_path);
        goto fail;
    }

    /* Weights and implementation. */
    if (weights_arg) snprintf(weights_path, sizeof weights_path, "%s", weights_arg);
    else if ((st = eva_golden_weights_path(&g, weights_path, sizeof weights_path)) != EVA_OK) goto fail;
    if ((st = eva_model_load(&model, weights_path, &cfg)) != EVA_OK) {
        if (!weights_arg) eva_fail_context("%s: weights attribute", golden_path);
        goto fail;
    }
    if ((st = eva_backend_open_impl(&be, impl, prec, &model, 0)) != EVA_OK) goto fail;

    cap.g = &g;
    cap.data = calloc((size_t)g.n_acts, sizeof *cap.data);
    cap.ndim = calloc((size_t)g.n_acts, sizeof *cap.ndim);
    cap.shape = calloc((size_t)g.n_acts, sizeof *cap.shape);
    if (!cap.data || !cap.ndim || !cap.shape) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    eva_tap tap = {cap_wants, cap_take, &cap};

    bool tty = isatty(2);
    double t0 = now_s();
    if (B > 0) {
        if (tty) fprintf(stderr, "verify: image tower, %lld images...\n", (long long)B);
        feat_img = malloc((size_t)(B * E) * sizeof(float));
        if (!feat_img) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory for image features");
            goto fail;
        }
        if ((st = eva_backend_encode_image(&be, feat_img, in->pixels, (int)B, &tap)) != EVA_OK) goto fail;
    }
    if (T > 0) {
        if (tty) fprintf(stderr, "verify: text tower, %lld texts...\n", (long long)T);
        feat_txt = malloc((size_t)(T * E) * sizeof(float));
        if (!feat_txt) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory for text features");
            goto fail;
        }
        if ((st = eva_backend_encode_text(&be, feat_txt, in->ids, (int)T, &tap)) != EVA_OK) goto fail;
    }
    double seconds = now_s() - t0;
    if (cap.err != EVA_OK) {
        st = cap.err;
        goto fail;
    }
    /* The outputs: features are what the implementation returned; logits from them. */
    int64_t shp[2];
    if (B > 0) {
        shp[0] = B; shp[1] = E;
        cap_store(&cap, "image_features", feat_img, 2, shp);
    }
    if (T > 0) {
        shp[0] = T; shp[1] = E;
        cap_store(&cap, "text_features", feat_txt, 2, shp);
    }
    emb_got = malloc((size_t)((B + T) * E + 1) * sizeof(float));
    emb_ref = malloc((size_t)((B > T ? B : T) * E + 1) * sizeof(float));
    if (!emb_got || !emb_ref) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    float *emb_img = emb_got, *emb_txt = emb_got + B * E;
    if (B > 0) l2norm_rows(emb_img, feat_img, B, E);
    if (T > 0) l2norm_rows(emb_txt, feat_txt, T, E);
    if (B > 0 && T > 0 && act_index(&g, "logits_per_image") >= 0) {
        float *logits = malloc((size_t)(B * T) * sizeof(float));
        if (!logits) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory");
            goto fail;
        }
        eva_ref_logits(logits, emb_img, emb_txt, (int)B, (int)T, (int)E, expf(model.w.logit_scale[0]));
        shp[0] = B; shp[1] = T;
        cap_store(&cap, "logits_per_image", logits, 2, shp);
        free(logits);
    }
    if (cap.err != EVA_OK) {
        st = cap.err;
        goto fail;
    }

    /* Rows in forward order; *_embeds right after the features. */
    int n_names = eva_tap_names(&cfg, EVA_TAPS_ALL, NULL, 0);
    char(*names)[EVA_TAP_NAME_MAX] = calloc((size_t)n_names + 2, sizeof *names);
    rows = calloc((size_t)n_names + 2, sizeof *rows);
    if (!names || !rows) {
        free(names);
        st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    eva_tap_names(&cfg, EVA_TAPS_ALL, names, n_names);
    for (int k = 0; k < n_names + 2; k++) {
        const char *name;
        if (k < n_names) name = names[k];
        else name = k == n_names ? "image_embeds" : "text_embeds";
        bool is_embed = k >= n_names;
        if (!is_embed && act_index(&g, name) < 0) continue;
        const eva_tol_rule *rule = eva_tol_match(&tol, name);
        eva_cmp_row *row = &rows[n_rows];
        if (is_embed) {
            bool img = k == n_names;
            int64_t n_items = img ? B : T;
            bool stored = act_index(&g, name) >= 0;
            if (n_items == 0 || (!stored && !(img ? have_feat_img : have_feat_txt))) continue;
            int nd;
            int64_t sh[4];
            if (stored) {
                if ((st = eva_golden_read_act(&g, name, &ref_buf, &nd, sh)) != EVA_OK) goto fail_names;
                memcpy(emb_ref, ref_buf, (size_t)(n_items * E) * sizeof(float));
            } else {
                if ((st = eva_golden_read_act(&g, img ? "image_features" : "text_features", &ref_buf, &nd, sh)) !=
                    EVA_OK)
                    goto fail_names;
                l2norm_rows(emb_ref, ref_buf, n_items, E);
            }
            free(ref_buf);
            ref_buf = NULL;
            sh[0] = n_items;
            sh[1] = E;
            eva_compare(row, name, img ? emb_img : emb_txt, emb_ref, 2, sh, rule, eva_tap_depth(&cfg, name));
            n_rows++;
            continue;
        }
        int a = act_index(&g, name);
        int nd;
        int64_t sh[4];
        if ((st = eva_golden_act_shape(&g, name, &nd, sh)) != EVA_OK) goto fail_names;
        if (!cap.data[a]) {
            eva_compare_na(row, name, nd, sh, rule, "the implementation did not produce this tap");
        } else if (!shapes_equal(cap.ndim[a], cap.shape[a], nd, sh)) {
            char s1[64], s2[64];
            eva_compare_na(row, name, nd, sh, rule, NULL);
            row->verdict = EVA_VERDICT_FAIL;
            snprintf(row->note, sizeof row->note, "the implementation produced shape %s, the golden has %s",
                     eva_shape_str(s1, sizeof s1, cap.ndim[a], cap.shape[a]), eva_shape_str(s2, sizeof s2, nd, sh));
        } else {
            if ((st = eva_golden_read_act(&g, name, &ref_buf, &nd, sh)) != EVA_OK) goto fail_names;
            eva_compare(row, name, cap.data[a], ref_buf, nd, sh, rule, eva_tap_depth(&cfg, name));
            free(ref_buf);
            ref_buf = NULL;
        }
        n_rows++;
    }
    free(names);
    names = NULL;

    /* Move image_embeds after image_features and text_embeds after text_features. */
    for (int e = 0; e < 2; e++) {
        const char *emb = e ? "text_embeds" : "image_embeds", *feat = e ? "text_features" : "image_features";
        int ie = -1, jf = -1;
        for (int k = 0; k < n_rows; k++) {
            if (!strcmp(rows[k].name, emb)) ie = k;
            if (!strcmp(rows[k].name, feat)) jf = k;
        }
        if (ie < 0 || jf < 0 || ie == jf + 1) continue;
        eva_cmp_row tmp = rows[ie];
        if (ie > jf) {
            memmove(&rows[jf + 2], &rows[jf + 1], (size_t)(ie - jf - 1) * sizeof *rows);
            rows[jf + 1] = tmp;
        }
    }

    char model_desc[64];
    snprintf(model_desc, sizeof model_desc, "%s", cfg.name);
    eva_verify_report rep = {golden_path, weights_path, model_desc, source, eva_impl_name(impl),
                             eva_precision_name(prec), eva_backend_describe(&be), g.generator, rows, n_rows, seconds};
    printf("evabench verify: %s (config %s, %s %s)\n", golden_path, cfg.name, eva_impl_name(impl),
           eva_precision_name(prec));
    eva_report_print_table(stdout, &rep);
    int n_bad = 0, n_na = 0;
    for (int k = 0; k < n_rows; k++) {
        n_bad += eva_cmp_row_fails(&rows[k]);
        n_na += rows[k].verdict == EVA_VERDICT_NA;
    }
    int first = eva_report_first_failure(&rep);
    if (first < 0) printf("PASS: all %d taps within tolerance%s\n", n_rows, n_na ? " (optional taps N/A)" : "");
    else printf("FAIL: %d of %d taps fail (%d of them N/A); first failing tap: %s\n", n_bad, n_rows, n_na,
                rows[first].name);
    fflush(stdout);
    if (md_out && (st = eva_report_write_markdown(&rep, md_out)) != EVA_OK) goto fail;
    if (json_out && (st = eva_report_write_json(&rep, json_out)) != EVA_OK) goto fail;
    if (first >= 0) {
        fprintf(stderr, "evabench verify: %s: tap %s fails: %s\n", golden_path, rows[first].name, rows[first].note);
        code = 1;
    } else {
        code = 0;
    }
    goto done;

fail_names:
    free(names);
fail:
    code = eva_cli_fail("verify", st);
done:
    if (cap.data)
        for (int k = 0; k < g.n_acts; k++) free(cap.data[k]);
    free(cap.data);
    free(cap.ndim);
    free(cap.shape);
    free(rows);
    free(ref_buf);
    free(feat_img);
    free(feat_txt);
    free(emb_got);
    free(emb_ref);
    eva_backend_close(&be);
    eva_model_free(&model);
    eva_tol_free(&tol);
    eva_golden_close(&g);
    return code;
}
