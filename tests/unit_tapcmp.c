/* unit_tapcmp.c: `evabench compare`'s library side (tapcmp.h): the name map of each scheme and
 * its detection, and the comparison of a dump against the committed tiny EVA-02 golden: the
 * golden against itself, a dump written with encode's writers (tapdump.h: a subset of taps, one
 * nudged, official names), the refusals (unknown tap, wrong shape, two names for one tap, other
 * inputs, no tap in common). */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden.h"
#include "tapcmp.h"
#include "tapdump.h"

static const char *src_dir(void) {
    const char *s = getenv("EVA_SOURCE_DIR");
    return s && *s ? s : EVA_SOURCE_DIR;
}

static const char *golden_path(void) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/golden/tiny/eva02.h5", src_dir());
    return buf;
}

static void expect_map(eva_names n, const char *module, const char *tap) {
    char out[EVA_TAP_NAME_MAX];
    if (!tap) {
        ck_assert_msg(!eva_names_map(n, module, out), "%s mapped to %s", module, out);
        return;
    }
    ck_assert_msg(eva_names_map(n, module, out), "%s not mapped", module);
    ck_assert_str_eq(out, tap);
}

START_TEST(name_map) {
    eva_names n;
    ck_assert_int_eq(eva_names_parse(&n, "transformers"), EVA_OK);
    ck_assert_int_eq(n, EVA_NAMES_TRANSFORMERS);
    ck_assert_int_eq(eva_names_parse(&n, "hf"), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "--names"));
    ck_assert_str_eq(eva_names_name(EVA_NAMES_OFFICIAL), "official");

    expect_map(EVA_NAMES_OPEN_CLIP, "visual.trunk.blocks.3.attn", "visual.trunk.blocks.3.attn");
    expect_map(EVA_NAMES_OPEN_CLIP, "visual", "image_features");
    expect_map(EVA_NAMES_OPEN_CLIP, "text", "text_features");
    expect_map(EVA_NAMES_OFFICIAL, "visual.blocks.3.attn", "visual.trunk.blocks.3.attn");
    expect_map(EVA_NAMES_OFFICIAL, "visual.patch_embed", "visual.trunk.patch_embed");
    expect_map(EVA_NAMES_OFFICIAL, "visual.head", "visual.trunk.head");
    expect_map(EVA_NAMES_OFFICIAL, "visual.trunk.norm", NULL);
    expect_map(EVA_NAMES_OFFICIAL, "text.transformer.resblocks.0.ln_1", "text.transformer.resblocks.0.ln_1");
    expect_map(EVA_NAMES_OFFICIAL, "logits_per_image", "logits_per_image");
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.encoder.layers.3.self_attn", "visual.trunk.blocks.3.attn");
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.encoder.layers.11", "visual.trunk.blocks.11");
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.encoder.layers.0.layer_norm2", "visual.trunk.blocks.0.norm2");
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.embeddings", "visual.trunk.pos_drop");
    expect_map(EVA_NAMES_TRANSFORMERS, "visual_projection", "visual.trunk.head");
    expect_map(EVA_NAMES_TRANSFORMERS, "text_model.encoder.layers.1.layer_norm1", "text.transformer.resblocks.1.ln_1");
    expect_map(EVA_NAMES_TRANSFORMERS, "text_model.encoder.layers.1.mlp", "text.transformer.resblocks.1.mlp");
    expect_map(EVA_NAMES_TRANSFORMERS, "text_model.embeddings.token_embedding", "text.token_embedding");
    expect_map(EVA_NAMES_TRANSFORMERS, "text_model.final_layer_norm", "text.ln_final");
    expect_map(EVA_NAMES_TRANSFORMERS, "text_projection", "text_features");
    expect_map(EVA_NAMES_TRANSFORMERS, "image_embeds", "image_embeds");
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.post_layernorm", NULL);
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.encoder.layers.x.mlp", NULL);
    expect_map(EVA_NAMES_TRANSFORMERS, "vision_model.encoder.layers.1.mlp.fc1", NULL);
    expect_map(EVA_NAMES_TRANSFORMERS, "visual.trunk.norm", NULL);

    char hf[2][EVA_TAP_NAME_MAX] = {"image_features", "vision_model.encoder.layers.0"};
    char off[2][EVA_TAP_NAME_MAX] = {"text.ln_final", "visual.blocks.0"};
    char oc[2][EVA_TAP_NAME_MAX] = {"text.ln_final", "visual.trunk.blocks.0"};
    ck_assert_int_eq(eva_names_detect((const char(*)[EVA_TAP_NAME_MAX])hf, 2), EVA_NAMES_TRANSFORMERS);
    ck_assert_int_eq(eva_names_detect((const char(*)[EVA_TAP_NAME_MAX])off, 2), EVA_NAMES_OFFICIAL);
    ck_assert_int_eq(eva_names_detect((const char(*)[EVA_TAP_NAME_MAX])oc, 2), EVA_NAMES_OPEN_CLIP);
}
END_TEST

typedef struct {
    eva_golden g;
    eva_config cfg;
    eva_tol_table tol;
} fixture;

static void fx_open(fixture *f) {
    ck_assert_int_eq(eva_golden_open(&f->g, golden_path()), EVA_OK);
    ck_assert_int_eq(eva_config_from_json(&f->cfg, f->g.config_json, "golden"), EVA_OK);
    ck_assert_int_eq(eva_tol_default(&f->tol, "fp32"), EVA_OK);
}

static void fx_close(fixture *f) {
    eva_golden_close(&f->g);
    eva_tol_free(&f->tol);
}

START_TEST(golden_against_itself) {
    fixture f;
    fx_open(&f);
    eva_golden c;
    ck_assert_int_eq(eva_dump_open(&c, golden_path()), EVA_OK);
    eva_dumpcmp r;
    ck_assert_int_eq(eva_dumpcmp_run(&r, &f.g, &c, &f.cfg, &f.tol, EVA_NAMES_AUTO), EVA_OK);
    ck_assert_int_eq(r.names, EVA_NAMES_OPEN_CLIP);
    ck_assert_int_eq(r.first_fail, -1);
    ck_assert_int_eq(r.n_absent, 0);
    ck_assert_int_eq(r.n_fail, 0);
    ck_assert_int_eq(r.n_pass, f.g.n_acts);
    ck_assert_str_eq(r.rows[0].name, "visual.trunk.patch_embed"); /* forward order */
    ck_assert_str_eq(r.rows[r.n_rows - 1].name, "logits_per_image");
    eva_dumpcmp_free(&r);
    eva_golden_close(&c);
    fx_close(&f);
}
END_TEST

/* Writes `n` taps of the golden (official names when `official`) to path, through tapdump's
 * writers, rows in two batches; tap `nudge` (or none) gets +delta at flat index 5. */
static void write_dump(fixture *f, const char *path, const char *const *taps, int n, bool official,
                       const char *nudge, float delta) {
    eva_h5out o;
    ck_assert_int_eq(eva_h5out_create(&o, path), EVA_OK);
    ck_assert_int_eq(eva_tapdump_header(&o, &f->cfg, &f->g.inputs, "w.safetensors", "unit", "test", "fp32"), EVA_OK);
    eva_tapdump d = {&o, 0, 0, EVA_OK};
    eva_tap tap = eva_tapdump_tap(&d);
    for (int k = 0; k < n; k++) {
        float *x;
        int nd;
        int64_t sh[4];
        ck_assert_int_eq(eva_golden_read_act(&f->g, taps[k], &x, &nd, sh), EVA_OK);
        if (nudge && !strcmp(taps[k], nudge)) x[5] += delta;
        char name[EVA_TAP_NAME_MAX];
        snprintf(name, sizeof name, "%s", taps[k]);
        if (official && !strncmp(name, "visual.trunk.", 13)) snprintf(name, sizeof name, "visual.%s", taps[k] + 13);
        int64_t per = 1, total = sh[0], first = total / 2;
        for (int i = 1; i < nd; i++) per *= sh[i];
        d.total = total;
        int64_t s1[4] = {first, sh[1], sh[2], sh[3]}, s2[4] = {total - first, sh[1], sh[2], sh[3]};
        d.offset = 0;
        if (first > 0) eva_tap_emit(&tap, name, x, nd, s1);
        d.offset = first;
        eva_tap_emit(&tap, name, x + first * per, nd, s2);
        free(x);
    }
    ck_assert_int_eq(d.err, EVA_OK);
    ck_assert_int_eq(eva_h5out_close(&o), EVA_OK);
}

static const char *const subset[] = {"visual.trunk.patch_embed", "visual.trunk.blocks.0.attn",
                                     "visual.trunk.blocks.1.mlp", "visual.trunk.norm", "image_features"};

START_TEST(subset_nudged_official) {
    fixture f;
    fx_open(&f);
    char path[] = "/tmp/evabench-tapcmp-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    write_dump(&f, path, subset, 5, true, "visual.trunk.blocks.1.mlp", 0.5f);
    eva_golden c;
    ck_assert_int_eq(eva_dump_open(&c, path), EVA_OK);
    eva_dumpcmp r;
    ck_assert_int_eq(eva_dumpcmp_run(&r, &f.g, &c, &f.cfg, &f.tol, EVA_NAMES_AUTO), EVA_OK);
    ck_assert_int_eq(r.names, EVA_NAMES_OFFICIAL);
    ck_assert_int_eq(r.n_pass + r.n_fail, 5);
    ck_assert_int_eq(r.n_absent, f.g.n_acts - 5);
    ck_assert_int_ge(r.first_fail, 0);
    ck_assert_str_eq(r.rows[r.first_fail].name, "visual.trunk.blocks.1.mlp");
    ck_assert_str_eq(r.module[r.first_fail], "visual.blocks.1.mlp");
    ck_assert(r.rows[r.first_fail].max_abs > 0.49 && r.rows[r.first_fail].max_abs < 0.51);
    eva_dumpcmp_free(&r);
    /* The same file read as open_clip names: visual.blocks.* is no tap. */
    ck_assert_int_eq(eva_dumpcmp_run(&r, &f.g, &c, &f.cfg, &f.tol, EVA_NAMES_OPEN_CLIP), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "unknown tap"));
    eva_golden_close(&c);
    unlink(path);
    fx_close(&f);
}
END_TEST

/* A dump of the datasets (name, shape); values from the golden's tap `from` when shapes agree. */
static eva_status refusal(fixture *f, const char *path, const char *const *names, const char *from, int n,
                          const int64_t *shape, bool other_ids) {
    eva_h5out o;
    ck_assert_int_eq(eva_h5out_create(&o, path), EVA_OK);
    eva_inputs in = f->g.inputs;
    int32_t *ids = NULL;
    if (other_ids) {
        int64_t m = in.ids_shape[0] * in.ids_shape[1];
        ids = malloc((size_t)m * sizeof *ids);
        memcpy(ids, in.ids, (size_t)m * sizeof *ids);
        ids[1] += 1;
        in.ids = ids;
    }
    ck_assert_int_eq(eva_tapdump_header(&o, &f->cfg, &in, "w", "unit", "test", "fp32"), EVA_OK);
    free(ids);
    float *x;
    int nd;
    int64_t sh[4];
    ck_assert_int_eq(eva_golden_read_act(&f->g, from, &x, &nd, sh), EVA_OK);
    for (int k = 0; k < n; k++) {
        char dname[EVA_TAP_NAME_MAX + 8];
        snprintf(dname, sizeof dname, "acts/%s", names[k]);
        ck_assert_int_eq(eva_h5out_write(&o, dname, x, shape ? 2 : nd, shape ? shape : sh), EVA_OK);
    }
    free(x);
    ck_assert_int_eq(eva_h5out_close(&o), EVA_OK);
    eva_golden c;
    ck_assert_int_eq(eva_dump_open(&c, path), EVA_OK);
    eva_dumpcmp r;
    eva_status st = eva_dumpcmp_run(&r, &f->g, &c, &f->cfg, &f->tol, EVA_NAMES_AUTO);
    eva_dumpcmp_free(&r);
    eva_golden_close(&c);
    return st;
}

START_TEST(refusals) {
    fixture f;
    fx_open(&f);
    char path[] = "/tmp/evabench-tapcmp-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    const char *norm[] = {"visual.trunk.norm"};
    int64_t bad[2] = {3, 7};
    ck_assert_int_eq(refusal(&f, path, norm, "visual.trunk.norm", 1, bad, false), EVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/acts/visual.trunk.norm has shape [3,7]"));
    const char *unknown[] = {"visual.trunk.blocks.9.attn"};
    ck_assert_int_eq(refusal(&f, path, unknown, "visual.trunk.norm", 1, NULL, false), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "visual.trunk.blocks.9.attn"));
    const char *twice[] = {"text_projection", "text_features"};
    ck_assert_int_eq(refusal(&f, path, twice, "text_features", 2, NULL, false), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "same tap text_features"));
    const char *feat[] = {"text_features"};
    ck_assert_int_eq(refusal(&f, path, feat, "text_features", 1, NULL, true), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "input_ids differ"));
    ck_assert_int_eq(refusal(&f, path, feat, "text_features", 1, NULL, false), EVA_OK);
    const char *emb[] = {"text_embeds"};
    ck_assert_int_eq(refusal(&f, path, emb, "text_features", 1, NULL, false), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "no tap in common"));
    unlink(path);
    fx_close(&f);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    (void)opt;
    Suite *s = suite_create("tapcmp");
    TCase *tc = tcase_create("tapcmp");
    tcase_add_test(tc, name_map);
    tcase_add_test(tc, golden_against_itself);
    tcase_add_test(tc, subset_nudged_official);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return s;
}
