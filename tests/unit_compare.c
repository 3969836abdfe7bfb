/* unit_compare.c: the tolerance table (golden/embed/tolerances.json, compiled in) and the per-tap
 * comparison of compare.h: rule matching, the table's own validation, depth of a tap, and each
 * part of the verdict (element budget, atol_rms, depth growth, cosine floor, NaN/Inf, N/A). */
#include <check.h>

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "eva_config.h"

static eva_tol_rule rule(double atol, double rtol, double cos_min) {
    eva_tol_rule r;
    memset(&r, 0, sizeof r);
    snprintf(r.pattern, sizeof r.pattern, "*");
    r.atol = atol;
    r.rtol = rtol;
    r.cos_min = cos_min;
    return r;
}

START_TEST(builtin_table_all_precisions) {
    const char *precs[] = {"fp32", "tf32", "bf16", "fp16"};
    for (int i = 0; i < 4; i++) {
        eva_tol_table t;
        ck_assert_int_eq(eva_tol_default(&t, precs[i]), EVA_OK);
        ck_assert_int_ge(t.n, 2);
        ck_assert_str_eq(t.rules[t.n - 1].pattern, "*");
        /* every tap name resolves to a rule */
        ck_assert_ptr_nonnull(eva_tol_match(&t, "visual.trunk.blocks.11.mlp"));
        ck_assert_ptr_nonnull(eva_tol_match(&t, "anything at all"));
        eva_tol_free(&t);
    }
    eva_tol_table t;
    ck_assert_int_eq(eva_tol_default(&t, "fp64"), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "fp64"));
}
END_TEST

START_TEST(float32_golden_rows_chosen_by_attribute) {
    eva_tol_table t, base;
    ck_assert_int_eq(eva_tol_default(&base, "fp32"), EVA_OK);
    ck_assert_int_eq(eva_tol_for_golden(&t, "fp32", NULL), EVA_OK);
    ck_assert_str_eq(t.precision, "fp32");
    eva_tol_free(&t);
    ck_assert_int_eq(eva_tol_for_golden(&t, "fp32", "float64"), EVA_OK);
    ck_assert_str_eq(t.precision, "fp32");
    eva_tol_free(&t);
    ck_assert_int_eq(eva_tol_for_golden(&t, "fp32", "float32"), EVA_OK);
    ck_assert_str_eq(t.precision, "fp32+golden32");
    /* wider than the float64-golden rows, never narrower */
    const char *taps[] = {"image_embeds", "text_embeds", "logits_per_image", "visual.trunk.blocks.3.mlp"};
    for (int i = 0; i < 4; i++) {
        const eva_tol_rule *a = eva_tol_match(&t, taps[i]), *b = eva_tol_match(&base, taps[i]);
        ck_assert(a->atol >= b->atol && a->rtol >= b->rtol && a->cos_min <= b->cos_min);
        ck_assert(a->atol > b->atol || a->rtol > b->rtol);
    }
    eva_tol_free(&t);
    /* bf16 has no float32-golden rows: its own */
    ck_assert_int_eq(eva_tol_for_golden(&t, "bf16", "float32"), EVA_OK);
    ck_assert_str_eq(t.precision, "bf16");
    eva_tol_free(&t);
    eva_tol_free(&base);
}
END_TEST

START_TEST(fp32_embeds_meet_acceptance) {
    eva_tol_table t;
    ck_assert_int_eq(eva_tol_default(&t, "fp32"), EVA_OK);
    const char *names[] = {"image_embeds", "text_embeds"};
    for (int i = 0; i < 2; i++) {
        const eva_tol_rule *r = eva_tol_match(&t, names[i]);
        ck_assert_str_eq(r->pattern, names[i]);
        /* the accuracy target: within 1e-5 max abs, so no relative or scaled slack */
        ck_assert(r->atol <= 1e-5);
        ck_assert(r->rtol == 0 && r->atol_rms == 0 && r->depth_growth == 0);
        ck_assert(!r->optional);
    }
    /* intermediate taps fall through to the depth-scaled row */
    const eva_tol_rule *r = eva_tol_match(&t, "text.transformer.resblocks.3.attn");
    ck_assert_str_eq(r->pattern, "*");
    ck_assert(r->depth_growth > 0);
    eva_tol_free(&t);
}
END_TEST

START_TEST(table_validation) {
    eva_tol_table t;
    ck_assert_int_eq(eva_tol_parse(&t, "{not json", "x.json", "fp32"), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "x.json"));
    const char *no_star = "{\"precisions\":{\"fp32\":{\"rows\":[{\"pattern\":\"a\",\"atol\":1,\"rtol\":0,\"cos_min\":0}]}}}";
    ck_assert_int_eq(eva_tol_parse(&t, no_star, "x.json", "fp32"), EVA_ERR_FORMAT);
    const char *neg = "{\"precisions\":{\"fp32\":[{\"pattern\":\"*\",\"atol\":-1,\"rtol\":0,\"cos_min\":0}]}}";
    ck_assert_int_eq(eva_tol_parse(&t, neg, "x.json", "fp32"), EVA_ERR_FORMAT);
    const char *lacks = "{\"precisions\":{\"fp32\":[{\"pattern\":\"*\",\"rtol\":0,\"cos_min\":0}]}}";
    ck_assert_int_eq(eva_tol_parse(&t, lacks, "x.json", "fp32"), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "atol"));
    const char *cos = "{\"precisions\":{\"fp32\":[{\"pattern\":\"*\",\"atol\":0,\"rtol\":0,\"cos_min\":2}]}}";
    ck_assert_int_eq(eva_tol_parse(&t, cos, "x.json", "fp32"), EVA_ERR_FORMAT);
    const char *ok = "{\"precisions\":{\"fp32\":[{\"pattern\":\"a.*\",\"atol\":1,\"rtol\":0,\"cos_min\":0,\"optional\":true},"
                     "{\"pattern\":\"*\",\"atol\":2,\"rtol\":0,\"cos_min\":0}]}}";
    ck_assert_int_eq(eva_tol_parse(&t, ok, "x.json", "fp32"), EVA_OK);
    ck_assert(eva_tol_match(&t, "a.b")->atol == 1);
    ck_assert(eva_tol_match(&t, "a.b")->optional);
    ck_assert(eva_tol_match(&t, "b.a")->atol == 2);
    eva_tol_free(&t);
    ck_assert_int_eq(eva_tol_parse(&t, ok, "x.json", "bf16"), EVA_ERR_INVALID_ARG);
}
END_TEST

START_TEST(tap_depth) {
    eva_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.vision.depth = 12;
    cfg.text.layers = 6;
    ck_assert_int_eq(eva_tap_depth(&cfg, "visual.trunk.patch_embed"), 0);
    ck_assert_int_eq(eva_tap_depth(&cfg, "visual.trunk.blocks.0.norm1"), 1);
    ck_assert_int_eq(eva_tap_depth(&cfg, "visual.trunk.blocks.11"), 12);
    ck_assert_int_eq(eva_tap_depth(&cfg, "visual.trunk.norm"), 12);
    ck_assert_int_eq(eva_tap_depth(&cfg, "image_embeds"), 12);
    ck_assert_int_eq(eva_tap_depth(&cfg, "text.token_embedding"), 0);
    ck_assert_int_eq(eva_tap_depth(&cfg, "text.transformer.resblocks.2.mlp"), 3);
    ck_assert_int_eq(eva_tap_depth(&cfg, "text_features"), 6);
    ck_assert_int_eq(eva_tap_depth(&cfg, "logits_per_image"), 12);
}
END_TEST

START_TEST(identical_passes) {
    float a[6] = {1, -2, 3, 0, 5, -6};
    int64_t sh[2] = {2, 3};
    eva_tol_rule r = rule(1e-6, 1e-6, 0.99999);
    eva_cmp_row row;
    eva_compare(&row, "x", a, a, 2, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_PASS);
    ck_assert(row.max_abs == 0 && row.max_rel == 0 && row.budget == 0);
    ck_assert(fabs(row.cosine - 1) < 1e-12);
    ck_assert(!eva_cmp_row_fails(&row));
    ck_assert_str_eq(row.name, "x");
    ck_assert_int_eq(row.ndim, 2);
    ck_assert_int_eq(row.shape[1], 3);
}
END_TEST

START_TEST(element_budget) {
    float ref[4] = {1, 2, 4, 8};
    float got[4] = {1, 2, 4, 8};
    int64_t sh[1] = {4};
    eva_tol_rule r = rule(0.01, 0.1, 0); /* limit on 8: 0.01 + 0.8 = 0.81 */
    eva_cmp_row row;
    got[3] = 8.4f; /* 0.4 of 0.81 */
    eva_compare(&row, "x", got, ref, 1, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_PASS);
    ck_assert(fabs(row.budget - 0.4 / 0.81) < 1e-5);
    ck_assert_int_eq(row.worst, 3);
    ck_assert(fabs(row.max_abs - 0.4) < 1e-5);
    ck_assert(fabs(row.max_rel - 0.05) < 1e-5);
    got[3] = 8.0f;
    got[0] = 1.2f; /* limit on 1: 0.11 -> over */
    eva_compare(&row, "x", got, ref, 1, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_FAIL);
    ck_assert_int_eq(row.over, 1);
    ck_assert_int_eq(row.worst, 0);
    ck_assert(row.budget > 1);
    ck_assert(eva_cmp_row_fails(&row));
    ck_assert(row.note[0] != '\0');
}
END_TEST

START_TEST(rms_and_depth_scaling) {
    /* rms(ref) = 10; atol_rms = 0.01 -> +0.1 absolute; depth growth 0.5 at depth 2 -> x2 */
    float ref[4] = {10, -10, 10, -10};
    float got[4] = {10, -10, 10, -10};
    int64_t sh[1] = {4};
    eva_tol_rule r = rule(0, 0, 0);
    r.atol_rms = 0.01;
    eva_cmp_row row;
    got[1] = -10.15f; /* over 0.1 */
    eva_compare(&row, "x", got, ref, 1, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_FAIL);
    ck_assert(fabs(row.atol - 0.1) < 1e-9);
    r.depth_growth = 0.5;
    eva_compare(&row, "x", got, ref, 1, sh, &r, 2); /* allowance 0.2 */
    ck_assert_int_eq(row.verdict, EVA_VERDICT_PASS);
    ck_assert(fabs(row.atol - 0.2) < 1e-9);
}
END_TEST

START_TEST(cosine_floor_and_items) {
    /* two items: the second is flipped. Elementwise budget is huge, so only the cosine fails. */
    float ref[4] = {1, 2, 3, 4};
    float got[4] = {1, 2, -3, -4};
    int64_t sh[2] = {2, 2};
    eva_tol_rule r = rule(100, 0, 0.5);
    eva_cmp_row row;
    eva_compare(&row, "x", got, ref, 2, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_FAIL);
    ck_assert(fabs(row.cosine + 1) < 1e-9); /* min over items */
    ck_assert_ptr_nonnull(strstr(row.note, "cosine"));
    /* zero against zero is cosine 1, zero against nonzero is 0 */
    float z[2] = {0, 0}, nz[2] = {0, 1};
    int64_t s1[1] = {2};
    eva_compare(&row, "z", z, z, 1, s1, &r, 0);
    ck_assert(row.cosine == 1.0 && row.verdict == EVA_VERDICT_PASS);
    eva_compare(&row, "z", z, nz, 1, s1, &r, 0);
    ck_assert(row.cosine == 0.0 && row.verdict == EVA_VERDICT_FAIL);
}
END_TEST

START_TEST(nonfinite_fails) {
    float ref[3] = {1, 2, 3};
    float got[3] = {1, NAN, 3};
    int64_t sh[1] = {3};
    eva_tol_rule r = rule(1e9, 1e9, 0);
    eva_cmp_row row;
    eva_compare(&row, "x", got, ref, 1, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_FAIL);
    ck_assert_int_eq(row.nonfinite_got, 1);
    got[1] = 2;
    ref[2] = INFINITY;
    eva_compare(&row, "x", got, ref, 1, sh, &r, 0);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_FAIL);
    ck_assert_int_eq(row.nonfinite_ref, 1);
    ck_assert_ptr_nonnull(strstr(row.note, "NaN/Inf"));
}
END_TEST

START_TEST(na_rows) {
    int64_t sh[2] = {2, 3};
    eva_tol_rule r = rule(1, 1, 0);
    eva_cmp_row row;
    eva_compare_na(&row, "visual.trunk.head", 2, sh, &r, NULL);
    ck_assert_int_eq(row.verdict, EVA_VERDICT_NA);
    ck_assert(eva_cmp_row_fails(&row)); /* N/A is never a silent pass */
    ck_assert_str_eq(eva_verdict_name(row.verdict), "N/A");
    r.optional = true;
    eva_compare_na(&row, "visual.trunk.head", 2, sh, &r, "skipped");
    ck_assert(!eva_cmp_row_fails(&row));
    ck_assert_str_eq(row.note, "skipped");
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("compare");
    tcase_add_test(tc, builtin_table_all_precisions);
    tcase_add_test(tc, fp32_embeds_meet_acceptance);
    tcase_add_test(tc, float32_golden_rows_chosen_by_attribute);
    tcase_add_test(tc, table_validation);
    tcase_add_test(tc, tap_depth);
    tcase_add_test(tc, identical_passes);
    tcase_add_test(tc, element_budget);
    tcase_add_test(tc, rms_and_depth_scaling);
    tcase_add_test(tc, cosine_floor_and_items);
    tcase_add_test(tc, nonfinite_fails);
    tcase_add_test(tc, na_rows);
    suite_add_tcase(s, tc);
        return s;
}
