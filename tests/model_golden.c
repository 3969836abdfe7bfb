/* model_golden.c: the reference forward (ref_model.h) against every committed golden (the .h5
 * files of golden/tiny), at every tap and at the outputs, with every weights file beside the golden
 * (STEM.safetensors and STEM.<variant>.safetensors: the other key naming and the F16/BF16 copies,
 * which hold the same values because make_golden.py rounds weights to bf16/fp16-exact numbers).
 *
 * Each golden is float64 upstream (open_clip + timm) output stored as float32. A tap passes under
 * the fp32 rows of the one tolerance table (golden/embed/tolerances.json via compare.h), and also
 * under the plain bound |got - ref| <= 1e-5 + 1e-4 |ref| elementwise. The test also demands that
 * the golden holds every tap eva_tap_names() lists (so "every tap" is checked, not assumed), that
 * our forward emits every tap the golden holds, and that no tap is emitted twice. It prints the max
 * abs error per golden and weights file; the golden's own weights run on every SGEMM kernel this CPU
 * runs (portable, AVX2, AVX-512, NEON), the other weights files on the default kernel. */
#include <check.h>

#include "check_main.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "eva_config.h"
#include "eva_tap.h"
#include "eva_weights.h"
#include "golden.h"
#include "ref_gemm.h"
#include "ref_model.h"

typedef struct {
    char name[EVA_TAP_NAME_MAX];
    float *data;
    int ndim;
    int64_t shape[4];
    int times; /* how often it was taken */
} captured;

typedef struct {
    captured *items;
    int n, cap;
} capture_set;

static bool cap_wants(void *ctx, const char *name) {
    (void)ctx;
    (void)name;
    return true; /* every tap: unknown ones are caught against the golden below */
}

static captured *cap_find(capture_set *cs, const char *name) {
    for (int i = 0; i < cs->n; i++)
        if (!strcmp(cs->items[i].name, name)) return &cs->items[i];
    return NULL;
}

static void cap_store(capture_set *cs, const char *name, const float *data, int ndim, const int64_t *shape) {
    captured *c = cap_find(cs, name);
    if (c) {
        c->times++;
        return;
    }
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 64;
        cs->items = realloc(cs->items, sizeof(captured) * cs->cap);
        ck_assert_ptr_nonnull(cs->items);
    }
    c = &cs->items[cs->n++];
    memset(c, 0, sizeof *c);
    ck_assert_msg(strlen(name) < sizeof c->name, "tap name too long: %s", name);
    strcpy(c->name, name);
    c->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (c->shape[i] = shape[i]);
    c->data = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ck_assert_ptr_nonnull(c->data);
    memcpy(c->data, data, sizeof(float) * (size_t)n);
    c->times = 1;
}

static void cap_take(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    cap_store(ctx, name, data, ndim, shape);
}

static void cap_free(capture_set *cs) {
    for (int i = 0; i < cs->n; i++) free(cs->items[i].data);
    free(cs->items);
    memset(cs, 0, sizeof *cs);
}

static const char *src_dir(void) {
    const char *s = getenv("EVA_SOURCE_DIR");
    return s && *s ? s : EVA_SOURCE_DIR;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted list of files in dir whose name starts with prefix and ends with suffix. */
static int list_files(char ***out, const char *dir, const char *prefix, const char *suffix) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t ln = strlen(e->d_name), lp = strlen(prefix), ls = strlen(suffix);
        if (ln < lp + ls || strncmp(e->d_name, prefix, lp) || strcmp(e->d_name + ln - ls, suffix)) continue;
        names = realloc(names, sizeof(char *) * (n + 1));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof(char *), cmp_str);
    *out = names;
    return n;
}

/* Runs both towers of `weights` on the golden's inputs and compares every act. Returns the
 * max abs error over all taps; *worst gets the tap that had it. */
static double run_one(const eva_golden *g, const eva_config *cfg, const char *weights, char *worst, size_t worst_cap,
                      int *n_compared, double *max_budget) {
    eva_model m;
    memset(&m, 0, sizeof m);
    eva_status st = eva_model_load(&m, weights, cfg);
    ck_assert_msg(st == EVA_OK, "%s: %s", weights, eva_last_error());

    capture_set cs = {0};
    eva_tap tap = {cap_wants, cap_take, &cs};
    const int E = cfg->embed_dim;
    int B = (int)eva_inputs_images(&g->inputs), T = (int)eva_inputs_texts(&g->inputs);
    ck_assert_msg(B >= 1 && T >= 1, "%s: golden lacks images or texts", g->path);
    ck_assert_int_eq(eva_inputs_check_pixels(&g->inputs, cfg->vision.image_size, g->path), EVA_OK);
    ck_assert_int_eq(eva_inputs_check_ids(&g->inputs, cfg->text.context_length, cfg->text.vocab_size, g->path), EVA_OK);

    float *img = malloc(sizeof(float) * B * E), *txt = malloc(sizeof(float) * T * E);
    float *img_n = malloc(sizeof(float) * B * E), *txt_n = malloc(sizeof(float) * T * E);
    float *logits = malloc(sizeof(float) * B * T);
    st = eva_ref_encode_image(img, g->inputs.pixels, B, &m, &tap);
    ck_assert_msg(st == EVA_OK, "%s: encode_image: %s", weights, eva_last_error());
    st = eva_ref_encode_text(txt, g->inputs.ids, T, &m, &tap);
    ck_assert_msg(st == EVA_OK, "%s: encode_text: %s", weights, eva_last_error());
    eva_ref_l2_normalize(img_n, img, B, E);
    eva_ref_l2_normalize(txt_n, txt, T, E);
    eva_ref_logits(logits, img_n, txt_n, B, T, E, (float)exp((double)m.w.logit_scale[0]));
    int64_t s_img[2] = {B, E}, s_txt[2] = {T, E}, s_log[2] = {B, T};
    cap_store(&cs, "image_features", img, 2, s_img);
    cap_store(&cs, "text_features", txt, 2, s_txt);
    cap_store(&cs, "logits_per_image", logits, 2, s_log);

    /* every tap of the config must be in the golden, and every golden act must be produced once */
    int nt = eva_tap_names(cfg, EVA_TAPS_ALL, NULL, 0);
    char (*names)[EVA_TAP_NAME_MAX] = malloc(sizeof *names * (nt > 0 ? nt : 1));
    ck_assert_int_eq(eva_tap_names(cfg, EVA_TAPS_ALL, names, nt), nt);
    for (int i = 0; i < nt; i++) ck_assert_msg(eva_golden_has_act(g, names[i]), "%s lacks tap %s", g->path, names[i]);
    ck_assert_msg(g->n_acts == nt, "%s holds %d acts, the config has %d taps (an unknown tap?)", g->path, g->n_acts, nt);
    for (int i = 0; i < cs.n; i++) {
        ck_assert_msg(cs.items[i].times == 1, "tap %s emitted %d times", cs.items[i].name, cs.items[i].times);
        ck_assert_msg(eva_golden_has_act(g, cs.items[i].name), "%s: we emit tap %s the golden lacks", g->path,
                      cs.items[i].name);
    }

    eva_tol_table tol;
    ck_assert_msg(eva_tol_for_golden(&tol, "fp32", g->compute_dtype) == EVA_OK, "tolerance table: %s",
                  eva_last_error());
    double max_abs = 0.0;
    *n_compared = 0;
    *max_budget = 0.0;
    for (int i = 0; i < nt; i++) { /* forward order: the first failure named is the first in the forward */
        const char *name = names[i];
        captured *c = cap_find(&cs, name);
        ck_assert_msg(c != NULL, "%s: golden tap %s was not produced", weights, name);
        float *ref;
        int ndim;
        int64_t shape[4];
        ck_assert_msg(eva_golden_read_act(g, name, &ref, &ndim, shape) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(ndim == c->ndim, "%s: rank %d vs golden %d", name, c->ndim, ndim);
        int64_t n = 1;
        for (int k = 0; k < ndim; k++) {
            ck_assert_msg(shape[k] == c->shape[k], "%s: dim %d is %lld, golden %lld", name, k, (long long)c->shape[k],
                          (long long)shape[k]);
            n *= shape[k];
        }
        double tap_abs = 0.0;
        for (int64_t k = 0; k < n; k++) {
            double err = fabs((double)c->data[k] - ref[k]);
            ck_assert_msg(isfinite(c->data[k]), "%s: non-finite value at %lld", name, (long long)k);
            ck_assert_msg(err <= 1e-5 + 1e-4 * fabs(ref[k]), "%s (%s): element %lld: got %.9g, golden %.9g", name,
                          weights, (long long)k, c->data[k], ref[k]);
            if (err > tap_abs) tap_abs = err;
        }
        eva_cmp_row row;
        eva_compare(&row, name, c->data, ref, ndim, shape, eva_tol_match(&tol, name), eva_tap_depth(cfg, name));
        ck_assert_msg(!eva_cmp_row_fails(&row), "%s (%s): %s (max abs %.3g, budget %.3g)", name, weights, row.note,
                      row.max_abs, row.budget);
        if (row.budget > *max_budget) *max_budget = row.budget;
        if (tap_abs >= max_abs) {
            max_abs = tap_abs;
            snprintf(worst, worst_cap, "%s", name);
        }
        (*n_compared)++;
        free(ref);
    }
    eva_tol_free(&tol);
    free(names);
    cap_free(&cs);
    free(img), free(txt), free(img_n), free(txt_n), free(logits);
    eva_model_free(&m);
    return max_abs;
}

START_TEST(test_every_golden) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/golden/tiny", src_dir());
    eva_h5_quiet();
    char **goldens;
    int ng = list_files(&goldens, dir, "", ".h5");
    ck_assert_msg(ng >= 5, "expected at least 5 goldens in %s, found %d", dir, ng);
    for (int i = 0; i < ng; i++) {
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", dir, goldens[i]);
        eva_golden g;
        memset(&g, 0, sizeof g);
        ck_assert_msg(eva_golden_open(&g, path) == EVA_OK, "%s", eva_last_error());
        eva_config cfg;
        ck_assert_msg(g.config_json && eva_config_from_json(&cfg, g.config_json, path) == EVA_OK, "%s: config: %s",
                      path, eva_last_error());
        /* the golden's own weights, then every STEM.*.safetensors beside it */
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(goldens[i]) - 3), goldens[i]);
        char main_w[1500];
        ck_assert_int_eq(eva_golden_weights_path(&g, main_w, sizeof main_w), EVA_OK);
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s.", stem);
        char **alts;
        int na = list_files(&alts, dir, prefix, ".safetensors");
        for (int w = -1; w < na; w++) {
            char wpath[1500];
            if (w < 0)
                snprintf(wpath, sizeof wpath, "%s", main_w);
            else
                snprintf(wpath, sizeof wpath, "%s/%s", dir, alts[w]);
            /* the golden's own weights on every SGEMM kernel this CPU runs, the others on the default */
            static const char *const kernels[] = {"auto", "portable", "avx2", "avx512", "neon"};
            for (int kk = 0; kk < (w < 0 ? 5 : 1); kk++) {
                if (kk > 0 && !eva_gemm_kernel_available(kernels[kk])) continue;
                ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
                if (kk > 0 && strcmp(kernels[kk], eva_gemm_kernel_name()) == 0) continue; /* ran as "auto" */
                ck_assert_int_eq(eva_gemm_set_kernel(kernels[kk]), EVA_OK);
                char worst[EVA_TAP_NAME_MAX] = "";
                int nc = 0;
                double budget = 0.0;
                double e = run_one(&g, &cfg, wpath, worst, sizeof worst, &nc, &budget);
                const char *base = strrchr(wpath, '/');
                printf("golden %-6s family %-18s weights %-28s kernel %-8s taps %3d  max abs err %.3e (%s), max budget "
                       "used %.3f\n",
                       stem, eva_family_name(eva_config_family(&cfg)), base ? base + 1 : wpath, eva_gemm_kernel_name(),
                       nc, e, worst, budget);
                fflush(stdout);
            }
            ck_assert_int_eq(eva_gemm_set_kernel("auto"), EVA_OK);
        }
        for (int w = 0; w < na; w++) free(alts[w]);
        free(alts);
        eva_golden_close(&g);
        free(goldens[i]);
    }
    free(goldens);
}
END_TEST

START_TEST(test_refusals) {
    /* invalid ids and batch sizes are refused before any work */
    eva_config cfg;
    ck_assert_int_eq(eva_config_find(&cfg, "EVA02-CLIP-B-16"), EVA_OK);
    /* shrink to a tiny random model so the test is cheap */
    cfg.vision.depth = 1;
    cfg.text.layers = 1;
    ck_assert_int_eq(eva_config_validate(&cfg, "test"), EVA_OK);
    eva_model m;
    memset(&m, 0, sizeof m);
    ck_assert_int_eq(eva_model_init_random(&m, &cfg, 7), EVA_OK);
    const int L = cfg.text.context_length;
    int32_t *ids = calloc((size_t)2 * L, sizeof *ids);
    float f[2 * 512];
    ids[L + 5] = cfg.text.vocab_size;
    ck_assert_int_eq(eva_ref_encode_text(f, ids, 2, &m, NULL), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), "text 1 position 5: token id 49408 out of range [0, 49408)"), "%s",
                  eva_last_error());
    ids[L + 5] = -1;
    ck_assert_int_eq(eva_ref_encode_text(f, ids, 2, &m, NULL), EVA_ERR_INVALID_ARG);
    ids[L + 5] = 49407;
    ck_assert_int_eq(eva_ref_encode_text(f, ids, 2, &m, NULL), EVA_OK);
    ck_assert_int_eq(eva_ref_encode_text(f, ids, 0, &m, NULL), EVA_ERR_INVALID_ARG);
    float px[3];
    ck_assert_int_eq(eva_ref_encode_image(f, px, 0, &m, NULL), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_ref_encode_image(f, NULL, 1, &m, NULL), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_ref_encode_image(f, px, 1 << 30, &m, NULL), EVA_ERR_INVALID_ARG);
    ck_assert(eva_ref_image_workspace_floats(&cfg, 2) > eva_ref_image_workspace_floats(&cfg, 1));
    ck_assert(eva_ref_text_workspace_floats(&cfg, 2) > eva_ref_text_workspace_floats(&cfg, 1));
    free(ids);
    eva_model_free(&m);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("model_golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_every_golden);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
        return s;
}
