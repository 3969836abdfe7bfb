/* gpu_model.c: the whole CUDA twin (cuda/eva_cuda.h) against the plain-C reference on every tiny
 * model of golden/tiny (all five families), in every precision: features and every tap in fp32
 * (TF32 off) to rounding, tf32/bf16/fp16 by cosine; fp16 refused for the post-norm families;
 * determinism (two fp32 runs bitwise equal, and a replayed CUDA graph equal to the eager run;
 * a tail batch keeps its own graph);
 * batch splitting; the memory plan. The float64 goldens themselves are checked by
 * `evabench verify --impl cuda` in harness/gpu-check.sh.
 * Exits 77 (ctest: skipped) when no CUDA device is usable. Runs without fork.
 */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eva_cuda.h"
#include "eva_weights.h"
#include "ref_model.h"

static const char *const families[] = {"eva01", "eva02", "bige", "8b", "18b"};
#define NFAM 5

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void load_family(eva_model *m, const char *fam) {
    char path[1024];
    const char *src = getenv("EVA_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/golden/tiny/%s.safetensors", src ? src : ".", fam);
    eva_config cfg;
    ck_assert_msg(eva_model_config_from_weights(&cfg, path) == EVA_OK, "%s", eva_last_error());
    memset(m, 0, sizeof *m);
    ck_assert_msg(eva_model_load(m, path, &cfg) == EVA_OK, "%s", eva_last_error());
}

static float *make_pixels(const eva_config *c, int B) {
    size_t n = (size_t)B * 3 * c->vision.image_size * c->vision.image_size;
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * frand();
    return p;
}
static int32_t *make_ids(const eva_config *c, int T) {
    const int L = c->text.context_length, V = c->text.vocab_size;
    int32_t *ids = calloc((size_t)T * L, sizeof *ids);
    for (int t = 0; t < T; t++) {
        int len = 2 + (t * 29) % (L - 1); /* EOT position, the last text may fill the context */
        if (t == T - 1) len = L - 1;
        ids[(size_t)t * L] = V - 2;
        for (int j = 1; j < len; j++) ids[(size_t)t * L + j] = 1 + (int32_t)((frand() * 0.5f + 0.5f) * (V - 4));
        ids[(size_t)t * L + len] = V - 1;
    }
    return ids;
}

/* ---- tap capture --------------------------------------------------------------------------------- */
#define MAXTAPS 256
typedef struct {
    char names[MAXTAPS][EVA_TAP_NAME_MAX];
    float *data[MAXTAPS];
    size_t n[MAXTAPS];
    int count;
} capture;
static bool cap_wants(void *ctx, const char *name) {
    (void)ctx, (void)name;
    return true;
}
static void cap_take(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    capture *c = ctx;
    if (c->count == MAXTAPS) return;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    int k = c->count++;
    snprintf(c->names[k], EVA_TAP_NAME_MAX, "%s", name);
    c->data[k] = malloc(n * sizeof(float));
    memcpy(c->data[k], data, n * sizeof(float));
    c->n[k] = n;
}
static void cap_free(capture *c) {
    for (int i = 0; i < c->count; i++) free(c->data[i]);
    c->count = 0;
}
static int cap_find(const capture *c, const char *name) {
    for (int i = 0; i < c->count; i++)
        if (!strcmp(c->names[i], name)) return i;
    return -1;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return (aa == 0 && bb == 0) ? 1.0 : ab / sqrt(aa * bb);
}
/* max |a-b| / rms(b) */
static double rel_err(const float *a, const float *b, size_t n) {
    double ss = 0, worst = 0;
    for (size_t i = 0; i < n; i++) ss += (double)b[i] * b[i];
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= worst)) worst = e; /* NaN propagates */
    }
    return worst / (sqrt(ss / (n ? n : 1)) + 1e-30);
}

/* ---- tests ----------------------------------------------------------------------------------------- */

/* fp32: features and every tap agree with the reference to fp32 rounding; both towers. */
START_TEST(test_fp32_taps) {
    const char *fam = families[_i];
    eva_model m;
    load_family(&m, fam);
    const int B = 3, T = 4, E = m.cfg.embed_dim;
    float *px = make_pixels(&m.cfg, B);
    int32_t *ids = make_ids(&m.cfg, T);
    capture *rc = calloc(1, sizeof *rc), *gc = calloc(1, sizeof *gc);
    eva_tap rt = {cap_wants, cap_take, rc}, gt = {cap_wants, cap_take, gc};
    float *rf = malloc(sizeof(float) * B * E), *gf = malloc(sizeof(float) * B * E);
    float *rtf = malloc(sizeof(float) * T * E), *gtf = malloc(sizeof(float) * T * E);
    ck_assert_int_eq(eva_ref_encode_image(rf, px, B, &m, &rt), EVA_OK);
    ck_assert_int_eq(eva_ref_encode_text(rtf, ids, T, &m, &rt), EVA_OK);
    eva_cuda_model *cm;
    ck_assert_msg(eva_cuda_model_create(&cm, &m, EVA_PREC_FP32, 8) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_cuda_encode_image(cm, gf, px, B, &gt) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_cuda_encode_text(cm, gtf, ids, T, &gt) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(rel_err(gf, rf, (size_t)B * E) < 1e-4, "%s image features: rel err %.3g", fam, rel_err(gf, rf, (size_t)B * E));
    ck_assert_msg(rel_err(gtf, rtf, (size_t)T * E) < 1e-4, "%s text features: rel err %.3g", fam, rel_err(gtf, rtf, (size_t)T * E));
    ck_assert_msg(gc->count == rc->count, "%s: cuda gave %d taps, the reference %d", fam, gc->count, rc->count);
    for (int i = 0; i < rc->count; i++) {
        int k = cap_find(gc, rc->names[i]);
        ck_assert_msg(k >= 0, "%s: tap %s missing from the CUDA run", fam, rc->names[i]);
        ck_assert_msg(gc->n[k] == rc->n[i], "%s: tap %s has %zu values, want %zu", fam, rc->names[i], gc->n[k], rc->n[i]);
        double e = rel_err(gc->data[k], rc->data[i], rc->n[i]);
        ck_assert_msg(e < 1e-4, "%s: tap %s: max error %.3g of its rms", fam, rc->names[i], e);
    }
    printf("gpu_model fp32 %-6s: %d taps match, image rel err %.2g, text %.2g\n", fam, rc->count,
           rel_err(gf, rf, (size_t)B * E), rel_err(gtf, rtf, (size_t)T * E));
    eva_cuda_model_free(cm);
    cap_free(rc), cap_free(gc), free(rc), free(gc);
    free(px), free(ids), free(rf), free(gf), free(rtf), free(gtf);
    eva_model_free(&m);
}
END_TEST

/* tf32/bf16/fp16 features by cosine against the fp32 reference; fp16 refused for post-norm. */
START_TEST(test_low_precision) {
    const char *fam = families[_i];
    eva_model m;
    load_family(&m, fam);
    const int B = 2, T = 3, E = m.cfg.embed_dim;
    float *px = make_pixels(&m.cfg, B);
    int32_t *ids = make_ids(&m.cfg, T);
    float *rf = malloc(sizeof(float) * B * E), *gf = malloc(sizeof(float) * B * E);
    float *rtf = malloc(sizeof(float) * T * E), *gtf = malloc(sizeof(float) * T * E);
    ck_assert_int_eq(eva_ref_encode_image(rf, px, B, &m, NULL), EVA_OK);
    ck_assert_int_eq(eva_ref_encode_text(rtf, ids, T, &m, NULL), EVA_OK);
    static const double cos_min[4] = {0, 0.9995, 0.995, 0.999};
    for (int p = EVA_PREC_TF32; p <= EVA_PREC_FP16; p++) {
        eva_cuda_model *cm = NULL;
        eva_status st = eva_cuda_model_create(&cm, &m, (eva_precision)p, 4);
        if (p == EVA_PREC_FP16 && m.cfg.vision.postnorm) {
            ck_assert_msg(st == EVA_ERR_UNSUPPORTED, "%s: fp16 must be refused for a post-norm tower", fam);
            ck_assert(strstr(eva_last_error(), "fp16") != NULL);
            continue;
        }
        ck_assert_msg(st == EVA_OK, "%s %s: %s", fam, eva_precision_name((eva_precision)p), eva_last_error());
        ck_assert_msg(eva_cuda_encode_image(cm, gf, px, B, NULL) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(eva_cuda_encode_text(cm, gtf, ids, T, NULL) == EVA_OK, "%s", eva_last_error());
        for (int b = 0; b < B; b++) {
            double c = cosine(gf + (size_t)b * E, rf + (size_t)b * E, E);
            ck_assert_msg(c >= cos_min[p], "%s %s image %d: cosine %.6f", fam, eva_precision_name((eva_precision)p), b, c);
        }
        for (int t = 0; t < T; t++) {
            double c = cosine(gtf + (size_t)t * E, rtf + (size_t)t * E, E);
            ck_assert_msg(c >= cos_min[p], "%s %s text %d: cosine %.6f", fam, eva_precision_name((eva_precision)p), t, c);
        }
        eva_cuda_model_free(cm);
    }
    free(px), free(ids), free(rf), free(gf), free(rtf), free(gtf);
    eva_model_free(&m);
}
END_TEST

/* Two fp32 runs bitwise equal; the graph-replayed run (no tap) equals the eager (tapped) run. */
START_TEST(test_determinism_graphs) {
    const char *fam = families[_i];
    eva_model m;
    load_family(&m, fam);
    const int B = 3, T = 3, E = m.cfg.embed_dim;
    float *px = make_pixels(&m.cfg, B);
    int32_t *ids = make_ids(&m.cfg, T);
    float *f[4], *tf[4];
    for (int i = 0; i < 4; i++) f[i] = malloc(sizeof(float) * B * E), tf[i] = malloc(sizeof(float) * T * E);
    capture *c = calloc(1, sizeof *c);
    eva_tap tap = {cap_wants, cap_take, c};
    eva_cuda_model *cm;
    ck_assert_msg(eva_cuda_model_create(&cm, &m, EVA_PREC_FP32, 4) == EVA_OK, "%s", eva_last_error());
    for (int i = 0; i < 3; i++) { /* 0: eager pass, then capture; 1, 2: replay */
        ck_assert_msg(eva_cuda_encode_image(cm, f[i], px, B, NULL) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(eva_cuda_encode_text(cm, tf[i], ids, T, NULL) == EVA_OK, "%s", eva_last_error());
    }
    ck_assert_int_eq(eva_cuda_encode_image(cm, f[3], px, B, &tap), EVA_OK); /* eager */
    ck_assert_int_eq(eva_cuda_encode_text(cm, tf[3], ids, T, &tap), EVA_OK);
    for (int i = 1; i < 4; i++) {
        ck_assert_msg(memcmp(f[i], f[0], sizeof(float) * B * E) == 0, "%s: image run %d differs bitwise", fam, i);
        ck_assert_msg(memcmp(tf[i], tf[0], sizeof(float) * T * E) == 0, "%s: text run %d differs bitwise", fam, i);
    }
    /* batch splitting: max_batch 1 gives the same features up to GEMM algorithm choice */
    eva_cuda_model *small;
    ck_assert_int_eq(eva_cuda_model_create(&small, &m, EVA_PREC_FP32, 1), EVA_OK);
    float *sf = malloc(sizeof(float) * B * E), *stf = malloc(sizeof(float) * T * E);
    ck_assert_int_eq(eva_cuda_encode_image(small, sf, px, B, NULL), EVA_OK);
    ck_assert_int_eq(eva_cuda_encode_text(small, stf, ids, T, NULL), EVA_OK);
    ck_assert_msg(rel_err(sf, f[0], (size_t)B * E) < 1e-5, "%s: split image batch differs", fam);
    ck_assert_msg(rel_err(stf, tf[0], (size_t)T * E) < 1e-5, "%s: split text batch differs", fam);
    /* taps need the whole batch in one pass */
    ck_assert_int_eq(eva_cuda_encode_image(small, sf, px, B, &tap), EVA_ERR_UNSUPPORTED);
    /* memory plan */
    size_t need1 = eva_cuda_model_bytes_needed(&m.cfg, EVA_PREC_FP32, 1),
           need4 = eva_cuda_model_bytes_needed(&m.cfg, EVA_PREC_FP32, 4);
    ck_assert(need1 > 0 && need4 > need1);
    ck_assert(eva_cuda_model_peak_bytes(cm) >= need4);
    ck_assert(eva_cuda_model_bytes_needed(&m.cfg, EVA_PREC_BF16, 4) < need4);
    eva_cuda_model_free(small);
    eva_cuda_model_free(cm);
    cap_free(c), free(c), free(sf), free(stf);
    for (int i = 0; i < 4; i++) free(f[i]), free(tf[i]);
    free(px), free(ids);
    eva_model_free(&m);
}
END_TEST

/* A batch that is not a multiple of the device batch: 6 images = chunks of 4 and 2, one graph per
 * chunk size, kept: three calls bitwise equal, and each chunk equal to an eager (tapped) run. */
START_TEST(test_graph_tail) {
    const char *fam = families[_i];
    eva_model m;
    load_family(&m, fam);
    const int B = 6, E = m.cfg.embed_dim;
    const size_t px1 = (size_t)3 * m.cfg.vision.image_size * m.cfg.vision.image_size;
    float *px = make_pixels(&m.cfg, B);
    int32_t *ids = make_ids(&m.cfg, B);
    float *f[3], *tf[3], *e = malloc(sizeof(float) * B * E), *te = malloc(sizeof(float) * B * E);
    for (int i = 0; i < 3; i++) f[i] = malloc(sizeof(float) * B * E), tf[i] = malloc(sizeof(float) * B * E);
    capture *c = calloc(1, sizeof *c);
    eva_tap tap = {cap_wants, cap_take, c};
    eva_cuda_model *cm;
    ck_assert_msg(eva_cuda_model_create(&cm, &m, EVA_PREC_BF16, 4) == EVA_OK, "%s", eva_last_error());
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(eva_cuda_encode_image(cm, f[i], px, B, NULL) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(eva_cuda_last_call_ms(cm) > 0.0, "%s: no device span for the image call", fam);
        ck_assert_msg(eva_cuda_encode_text(cm, tf[i], ids, B, NULL) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(eva_cuda_last_call_ms(cm) > 0.0, "%s: no device span for the text call", fam);
    }
    /* page-locked inputs give the same features */
    float *pin = eva_cuda_host_alloc(sizeof(float) * B * px1), *pf = eva_cuda_host_alloc(sizeof(float) * B * E);
    ck_assert(pin && pf);
    memcpy(pin, px, sizeof(float) * B * px1);
    ck_assert_int_eq(eva_cuda_encode_image(cm, pf, pin, B, NULL), EVA_OK);
    ck_assert_msg(memcmp(pf, f[0], sizeof(float) * B * E) == 0, "%s: pinned input differs", fam);
    eva_cuda_host_free(pin), eva_cuda_host_free(pf);
    ck_assert_int_eq(eva_cuda_encode_image(cm, e, px, 4, &tap), EVA_OK); /* eager chunks */
    ck_assert_int_eq(eva_cuda_encode_image(cm, e + 4 * E, px + 4 * px1, 2, &tap), EVA_OK);
    ck_assert_int_eq(eva_cuda_encode_text(cm, te, ids, 4, &tap), EVA_OK);
    ck_assert_int_eq(eva_cuda_encode_text(cm, te + 4 * E, ids + 4 * m.cfg.text.context_length, 2, &tap), EVA_OK);
    for (int i = 1; i < 3; i++) {
        ck_assert_msg(memcmp(f[i], f[0], sizeof(float) * B * E) == 0, "%s: image call %d differs", fam, i);
        ck_assert_msg(memcmp(tf[i], tf[0], sizeof(float) * B * E) == 0, "%s: text call %d differs", fam, i);
    }
    ck_assert_msg(memcmp(e, f[0], sizeof(float) * B * E) == 0, "%s: graph replay differs from eager (image)", fam);
    ck_assert_msg(memcmp(te, tf[0], sizeof(float) * B * E) == 0, "%s: graph replay differs from eager (text)", fam);
    eva_cuda_model_free(cm);
    cap_free(c), free(c), free(e), free(te);
    for (int i = 0; i < 3; i++) free(f[i]), free(tf[i]);
    free(px), free(ids);
    eva_model_free(&m);
}
END_TEST

/* bad input is refused with a message, not a crash */
START_TEST(test_refusals) {
    eva_model m;
    load_family(&m, "eva01");
    eva_cuda_model *cm;
    ck_assert_int_eq(eva_cuda_model_create(&cm, &m, EVA_PREC_FP32, 0), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_cuda_model_create(&cm, &m, EVA_PREC_FP32, 2), EVA_OK);
    int32_t *ids = make_ids(&m.cfg, 1);
    ids[3] = m.cfg.text.vocab_size;
    float f[64];
    ck_assert_int_eq(eva_cuda_encode_text(cm, f, ids, 1, NULL), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_cuda_encode_image(cm, f, f, 0, NULL), EVA_ERR_INVALID_ARG);
    eva_cuda_model_free(cm);
    eva_cuda_model_free(NULL);
    free(ids);
    eva_model_free(&m);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    eva_cuda_device_info di;
    if (eva_cuda_device(&di) != EVA_OK) {
        opt->skip_reason = eva_last_error();
        return NULL;
    }
    printf("gpu_model on %s (sm_%d%d, %.1f GiB free)\n", di.name, di.sm_major, di.sm_minor,
           di.free_bytes / 1073741824.0);
    Suite *s = suite_create("gpu_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_fp32_taps, 0, NFAM);
    tcase_add_loop_test(tc, test_low_precision, 0, NFAM);
    tcase_add_loop_test(tc, test_determinism_graphs, 0, NFAM);
    tcase_add_loop_test(tc, test_graph_tail, 0, NFAM);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    opt->nofork = true;
    return s;
}
