/* unit_config.c: the variant registry, parameter counts against docs/model.md §3, FLOPs against open_clip's
 * model_profile.csv (anchors.md), config JSON round trip and refusals, tensor table names and
 * shapes (docs/model.md §9), tap names. Expected numbers are copied from the spec, not from our output. */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eva_config.h"
#include "eva_tap.h"
#include "eva_tensors.h"

/* docs/model.md §3: vision total, text total, total (logit_scale included) */
static const struct {
    const char *name;
    long long image, text, total;
} spec_counts[] = {
    {"EVA02-CLIP-B-16", 86263040LL, 63428096LL, 149691137LL},
    {"EVA02-CLIP-L-14", 304105152LL, 123650304LL, 427755457LL},
    {"EVA02-CLIP-L-14-336", 304432832LL, 123650304LL, 428083137LL},
    {"EVA01-CLIP-g-14", 1012588928LL, 123846912LL, 1136435841LL},
    {"EVA01-CLIP-g-14-plus", 1012588928LL, 354032640LL, 1366621569LL},
    {"EVA02-CLIP-bigE-14", 4350556928LL, 354032640LL, 4704589569LL},
    {"EVA02-CLIP-bigE-14-plus", 4350556928LL, 694332160LL, 5044889089LL},
    {"EVA-CLIP-8B", 7526088704LL, 694659840LL, 8220748545LL},
    {"EVA-CLIP-8B-448", 7529234432LL, 694659840LL, 8223894273LL},
    {"EVA-CLIP-18B", 17630494720LL, 694987520LL, 18325482241LL},
};

START_TEST(test_param_counts) {
    for (size_t i = 0; i < sizeof spec_counts / sizeof spec_counts[0]; i++) {
        eva_config c;
        ck_assert_int_eq(eva_config_find(&c, spec_counts[i].name), EVA_OK);
        eva_param_count pc = eva_config_params(&c);
        ck_assert_msg(pc.image == spec_counts[i].image, "%s image %lld", spec_counts[i].name, (long long)pc.image);
        ck_assert_msg(pc.text == spec_counts[i].text, "%s text %lld", spec_counts[i].name, (long long)pc.text);
        ck_assert_msg(pc.total == spec_counts[i].total, "%s total %lld", spec_counts[i].name, (long long)pc.total);
    }
    ck_assert_int_eq(eva_config_builtin_count(), 10);
}
END_TEST

START_TEST(test_gflops) {
    /* anchors.md / open_clip model_profile.csv: image B/16 35.13, L/14 162.0, L/14-336 381.86, g/14 534.06,
     * bigE 2264.33; text B 5.96, L/g 13.3, g+/E 47.09, E+ 97.86 */
    static const struct { const char *n; double img, txt; } f[] = {
        {"EVA02-B-16", 35.13, 5.96}, {"EVA02-L-14", 162.0, 13.3}, {"EVA02-L-14-336", 381.86, 13.3},
        {"EVA01-g-14", 534.06, 13.3}, {"EVA01-g-14-plus", 534.06, 47.09}, {"EVA02-E-14", 2264.33, 47.09},
        {"EVA02-E-14-plus", 2264.33, 97.86}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        eva_config c;
        ck_assert_int_eq(eva_config_find(&c, f[i].n), EVA_OK);
        ck_assert_msg(fabs(eva_config_gflops_image(&c) - f[i].img) < 0.01, "%s image %f", f[i].n,
                      eva_config_gflops_image(&c));
        ck_assert_msg(fabs(eva_config_gflops_text(&c) - f[i].txt) < 0.01, "%s text %f", f[i].n,
                      eva_config_gflops_text(&c));
    }
}
END_TEST

START_TEST(test_find_aliases) {
    eva_config c;
    ck_assert_int_eq(eva_config_find(&c, "eva02-b-16"), EVA_OK);
    ck_assert_str_eq(c.name, "EVA02-CLIP-B-16");
    ck_assert_int_eq(c.vision.tokens, 197);
    ck_assert_int_eq(c.vision.grid, 14);
    ck_assert_int_eq(eva_config_find(&c, "EVA02-CLIP-bigE-14-plus"), EVA_OK);
    ck_assert_int_eq(c.text.width, 1280);
    ck_assert(c.vision.postnorm);
    ck_assert_int_eq(eva_config_find(&c, "EVA-CLIP-8B-448"), EVA_OK);
    ck_assert_int_eq(c.vision.tokens, 1025);
    ck_assert_int_eq(eva_config_find(&c, "EVA02-CLIP-L-14-336"), EVA_OK);
    ck_assert_int_eq(c.vision.mlp_hidden, 2730);
    ck_assert_int_eq(eva_config_find(&c, "EVA03-X"), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "EVA03-X"));
}
END_TEST

START_TEST(test_json_roundtrip) {
    for (int i = 0; i < eva_config_builtin_count(); i++) {
        const eva_config *c = eva_config_builtin(i);
        for (int pretty = 0; pretty < 2; pretty++) {
            char *js = eva_config_to_json(c, pretty);
            ck_assert_ptr_nonnull(js);
            eva_config back;
            ck_assert_msg(eva_config_from_json(&back, js, "rt") == EVA_OK, "%s: %s", c->name, eva_last_error());
            char *js2 = eva_config_to_json(&back, pretty);
            ck_assert_str_eq(js, js2);
            ck_assert_int_eq(back.vision.tokens, c->vision.tokens);
            ck_assert(back.vision.norm_eps == c->vision.norm_eps && back.text.norm_eps == c->text.norm_eps);
            free(js2);
            free(js);
        }
    }
}
END_TEST

static const char *good_json =
    "{\"name\":\"t\",\"embed_dim\":32,\"vision\":{\"image_size\":40,\"patch_size\":8,\"width\":96,\"depth\":2,"
    "\"heads\":4,\"head_dim\":24,\"mlp_hidden\":130,\"mlp\":\"swiglu\",\"subln\":true,\"rope\":true,"
    "\"rope_ref_grid\":16,\"postnorm\":false,\"qkv\":\"split\",\"qv_bias\":true,\"norm\":\"layernorm\","
    "\"norm_eps\":1e-6,\"head_bias\":true},\"text\":{\"context_length\":77,\"vocab_size\":1000,\"width\":32,"
    "\"heads\":2,\"layers\":2,\"mlp_hidden\":128,\"norm_eps\":1e-5}}";

/* Replaces the first occurrence of `from` in good_json by `to` and expects a refusal mentioning `needle`. */
static void expect_bad(const char *from, const char *to, const char *needle) {
    char buf[2048];
    const char *p = strstr(good_json, from);
    ck_assert_ptr_nonnull(p);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - good_json), good_json, to, p + strlen(from));
    eva_config c;
    eva_status st = eva_config_from_json(&c, buf, "bad.json");
    ck_assert_msg(st == EVA_ERR_INVALID_ARG, "accepted: %s", buf);
    ck_assert_msg(strstr(eva_last_error(), "bad.json") != NULL, "message lacks file: %s", eva_last_error());
    ck_assert_msg(strstr(eva_last_error(), needle) != NULL, "message '%s' lacks '%s'", eva_last_error(), needle);
}

START_TEST(test_json_refusals) {
    eva_config c;
    ck_assert_int_eq(eva_config_from_json(&c, good_json, "good.json"), EVA_OK);
    ck_assert_int_eq(c.vision.grid, 5);
    ck_assert_int_eq(c.vision.tokens, 26);
    expect_bad("\"heads\":4", "\"heads\":5", "heads");
    expect_bad("\"patch_size\":8", "\"patch_size\":0", "patch_size");
    expect_bad("\"depth\":2", "\"depth\":100000", "depth");
    expect_bad("\"depth\":2", "\"depth\":-1", "depth");
    expect_bad("\"depth\":2,", "", "depth");
    expect_bad("\"mlp\":\"swiglu\"", "\"mlp\":\"relu\"", "mlp");
    expect_bad("\"norm_eps\":1e-6", "\"norm_eps\":-1", "norm_eps");
    expect_bad("\"width\":96", "\"width\":96.5", "width");
    expect_bad("\"width\":96", "\"width\":\"96\"", "width");
    expect_bad("\"subln\":true", "\"subln\":1", "subln");
    expect_bad("\"name\":\"t\",", "\"name\":\"t\",\"extra\":1,", "extra");
    expect_bad("\"heads\":2,", "\"heads\":3,", "heads");
    expect_bad("\"vocab_size\":1000", "\"vocab_size\":0", "vocab_size");
    expect_bad("\"image_size\":40", "\"image_size\":41", "image_size");
    expect_bad("{\"name\"", "[{\"name\"", "JSON");
    ck_assert_int_eq(eva_config_from_json(&c, "not json", "x.json"), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_config_from_json(&c, "[]", "x.json"), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_config_load(&c, "/nonexistent/config.json"), EVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/nonexistent/config.json"));
}
END_TEST

START_TEST(test_tensor_table) {
    eva_config c;
    eva_tensor_table tt;
    ck_assert_int_eq(eva_config_find(&c, "EVA02-B-16"), EVA_OK);
    ck_assert_int_eq(eva_tensors_build(&tt, &c), EVA_OK);
    /* docs/model.md §9 / §12 shapes */
    int i = eva_tensors_find(&tt, "visual.trunk.blocks.0.mlp.fc1_g.weight");
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(tt.items[i].shape[0], 2048);
    ck_assert_int_eq(tt.items[i].shape[1], 768);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.blocks.0.mlp.w1.weight"), i);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.blocks.3.attn.q_bias"),
                     eva_tensors_find(&tt, "visual.trunk.blocks.3.attn.q_proj.bias"));
    ck_assert_int_ge(eva_tensors_find(&tt, "visual.blocks.11.attn.inner_attn_ln.bias"), 0);
    ck_assert_int_ge(eva_tensors_find(&tt, "visual.blocks.11.mlp.ffn_ln.weight"), 0);
    ck_assert_int_ge(eva_tensors_find(&tt, "visual.blocks.11.mlp.w3.weight"), 0);
    i = eva_tensors_find(&tt, "visual.head.weight");
    ck_assert_int_eq(tt.items[i].shape[0], 512);
    ck_assert_int_eq(tt.items[i].shape[1], 768);
    i = eva_tensors_find(&tt, "text.text_projection");
    ck_assert_int_eq(tt.items[i].shape[0], 512);
    ck_assert_int_eq(tt.items[i].shape[1], 512);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.trunk.blocks.0.attn.qkv.weight"), -1);
    ck_assert(eva_tensors_is_ignored_key("visual.rope.freqs_cos"));
    ck_assert(eva_tensors_is_ignored_key("visual.blocks.3.attn.rope.freqs_sin"));
    ck_assert(!tt.official_only);
    for (int k = 0; k < tt.count; k++) ck_assert_int_eq(tt.items[k].offset % EVA_ARENA_ALIGN_FLOATS, 0);
    /* every view pointer distinct and bound */
    eva_weight_views w;
    eva_vblock_weights vb[12];
    eva_tblock_weights tb[12];
    static float fake[1];
    eva_tensors_bind(&w, vb, tb, &tt, fake);
    ck_assert_ptr_nonnull(w.vision.blocks[11].fc1_g_w.data);
    ck_assert_ptr_null(w.vision.blocks[11].fc1_w.data);
    ck_assert_ptr_null(w.vision.blocks[0].qkv_w.data);
    ck_assert_ptr_nonnull(w.text.blocks[11].c_proj_b);
    ck_assert_ptr_nonnull(w.logit_scale);
    ck_assert_int_eq(w.vision.depth, 12);
    eva_tensors_free(&tt);

    ck_assert_int_eq(eva_config_find(&c, "EVA-CLIP-18B"), EVA_OK);
    ck_assert_int_eq(eva_tensors_build(&tt, &c), EVA_OK);
    ck_assert(tt.official_only);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.blocks.0.norm1.bias"), -1);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.head.bias"), -1);
    ck_assert_int_eq(eva_tensors_find(&tt, "visual.blocks.0.attn.q_bias"), -1);
    i = eva_tensors_find(&tt, "visual.blocks.47.attn.qkv.weight");
    ck_assert_int_eq(tt.items[i].shape[0], 15360);
    eva_tensors_free(&tt);
}
END_TEST

START_TEST(test_tap_names) {
    eva_config c;
    ck_assert_int_eq(eva_config_find(&c, "EVA02-B-16"), EVA_OK);
    int n = eva_tap_names(&c, EVA_TAPS_ALL, NULL, 0);
    ck_assert_int_eq(n, 2 + 12 * 5 + 2 + 1 + 12 * 5 + 1 + 3);
    char(*names)[EVA_TAP_NAME_MAX] = malloc((size_t)n * sizeof *names);
    eva_tap_names(&c, EVA_TAPS_ALL, names, n);
    ck_assert_str_eq(names[0], "visual.trunk.patch_embed");
    ck_assert_str_eq(names[2], "visual.trunk.blocks.0.norm1");
    ck_assert_str_eq(names[6], "visual.trunk.blocks.0");
    int64_t s[4];
    for (int i = 0; i < n; i++) ck_assert_int_gt(eva_tap_shape(&c, names[i], 2, 3, s), 0);
    free(names);
    ck_assert_int_eq(eva_tap_shape(&c, "visual.trunk.blocks.12", 1, 1, s), -1);
    ck_assert_int_eq(eva_tap_shape(&c, "visual.trunk.blocks.01", 1, 1, s), -1);
    ck_assert_int_eq(eva_tap_shape(&c, "visual.trunk.blocks.1.foo", 1, 1, s), -1);
    ck_assert_int_eq(eva_tap_shape(&c, "text.transformer.resblocks.3.ln_2", 2, 3, s), 3);
    ck_assert_int_eq(s[0], 3);
    ck_assert_int_eq(s[1], 77);
    ck_assert_int_eq(s[2], 512);
    ck_assert_int_eq(eva_tap_shape(&c, "visual.trunk.patch_embed", 2, 3, s), 3);
    ck_assert_int_eq(s[1], 196);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_param_counts);
    tcase_add_test(tc, test_gflops);
    tcase_add_test(tc, test_find_aliases);
    tcase_add_test(tc, test_json_roundtrip);
    tcase_add_test(tc, test_json_refusals);
    tcase_add_test(tc, test_tensor_table);
    tcase_add_test(tc, test_tap_names);
    suite_add_tcase(s, tc);
        return s;
}
