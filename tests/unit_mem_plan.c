/* unit_mem_plan.c: the memory plan of bench/profile (bench.h) counts what a run holds: a file's
 * weight matrices in the file's dtype (BF16 half the bytes of F32, only the towers run), its small
 * tensors and random weights as fp32; the refusal names the numbers; mapped weights that do not fit
 * run through the page cache when the rest fits, and a plan whose non-weight part does not fit is
 * refused. Uses the committed tiny 8B goldens (F32 and BF16 copies of the same weights). */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "eva_tensors.h"
#include "eva_weights.h"

static const char *source_dir(void) {
    const char *d = getenv("EVA_SOURCE_DIR");
    return d && *d ? d : EVA_SOURCE_DIR;
}

static void golden_path(char *p, size_t n, const char *file) {
    snprintf(p, n, "%s/golden/tiny/%s", source_dir(), file);
}

static void cfg_of(eva_config *cfg, const char *path) {
    ck_assert_msg(eva_model_config_from_weights(cfg, path) == EVA_OK, "%s", eva_last_error());
}

/* Bytes of the table's typed tensors of one tower, at `size` bytes per value. */
static int64_t typed_bytes(const eva_config *cfg, eva_tower tower, int64_t size) {
    eva_tensor_table tt;
    ck_assert_int_eq(eva_tensors_build(&tt, cfg), EVA_OK);
    int64_t b = 0;
    for (int j = 0; j < tt.count; j++)
        if (tt.items[j].typed && tt.items[j].tower == tower) b += tt.items[j].numel * size;
    eva_tensors_free(&tt);
    return b;
}

START_TEST(plan_counts_file_dtype) {
    char f32[1024], bf16[1024];
    golden_path(f32, sizeof f32, "8b.safetensors");
    golden_path(bf16, sizeof bf16, "8b.bf16.safetensors");
    eva_config cfg;
    cfg_of(&cfg, f32);
    unsetenv("EVA_MEM_AVAILABLE");
    eva_mem_plan a, b, r, both;
    ck_assert_msg(eva_bench_plan_memory(&a, &cfg, 1, 1, f32) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_bench_plan_memory(&b, &cfg, 1, 1, bf16) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_bench_plan_memory(&both, &cfg, 3, 1, bf16) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_bench_plan_memory(&r, &cfg, 1, 1, NULL) == EVA_OK, "%s", eva_last_error());
    /* image tower only: its matrices, 4 or 2 bytes per value */
    ck_assert_int_eq(a.weight_mapped_bytes, typed_bytes(&cfg, EVA_TOWER_IMAGE, 4));
    ck_assert_int_eq(b.weight_mapped_bytes, typed_bytes(&cfg, EVA_TOWER_IMAGE, 2));
    ck_assert_int_eq(b.weight_mapped_dtype, EVA_DT_BF16);
    ck_assert_int_eq(both.weight_mapped_bytes,
                     typed_bytes(&cfg, EVA_TOWER_IMAGE, 2) + typed_bytes(&cfg, EVA_TOWER_TEXT, 2));
    /* the small tensors are fp32 whatever the file */
    ck_assert_int_eq(a.weight_arena_bytes, b.weight_arena_bytes);
    ck_assert_int_eq(b.weight_bytes, b.weight_arena_bytes + b.weight_mapped_bytes);
    ck_assert_int_eq(b.total_bytes, b.weight_bytes + b.activation_bytes + b.input_bytes + b.overhead_bytes);
    /* random weights: one fp32 arena of every tensor, nothing mapped */
    eva_tensor_table tt;
    ck_assert_int_eq(eva_tensors_build(&tt, &cfg), EVA_OK);
    ck_assert_int_ge(r.weight_arena_bytes, tt.arena_floats * 4);
    ck_assert_int_lt(r.weight_arena_bytes, tt.arena_floats * 4 + 64);
    eva_tensors_free(&tt);
    ck_assert_int_eq(r.weight_mapped_bytes, 0);
    ck_assert_int_eq(r.weight_mapped_dtype, -1);
    char line[600];
    eva_bench_plan_describe(&b, line, sizeof line);
    ck_assert_msg(strstr(line, "BF16") && strstr(line, "mapped"), "%s", line);
}
END_TEST

START_TEST(refusal_and_paging) {
    char src[1024], bf16[64];
    golden_path(src, sizeof src, "8b.bf16.safetensors");
    eva_config cfg;
    cfg_of(&cfg, src);
    cfg.vision.depth = 8; /* enough blocks for "two blocks" to be less than all of them */
    snprintf(bf16, sizeof bf16, "/tmp/eva_plan_%d.safetensors", (int)getpid());
    ck_assert_msg(eva_model_write_random(bf16, &cfg, 1, EVA_DT_BF16) == EVA_OK, "%s", eva_last_error());
    eva_mem_plan p;
    ck_assert_int_eq(eva_bench_plan_memory(&p, &cfg, 1, 1, bf16), EVA_OK);
    const int64_t rest = p.total_bytes - p.weight_mapped_bytes;
    ck_assert_int_gt(p.resident_min_bytes, rest);
    ck_assert_int_lt(p.resident_min_bytes, p.total_bytes);
    /* everything fits */
    p.available_bytes = p.total_bytes;
    ck_assert_int_eq(eva_bench_check_memory(&p, "x"), EVA_OK);
    ck_assert(!p.weights_paged);
    /* the mapped weights do not fit, the rest and two blocks do: runs paged */
    p.available_bytes = p.resident_min_bytes;
    ck_assert_int_eq(eva_bench_check_memory(&p, "x"), EVA_OK);
    ck_assert(p.weights_paged);
    /* less than that: refused with the numbers */
    p.available_bytes = p.resident_min_bytes - 1;
    ck_assert_int_eq(eva_bench_check_memory(&p, "tiny 8B"), EVA_ERR_NOMEM);
    const char *msg = eva_last_error();
    char want[64];
    snprintf(want, sizeof want, "(%lld bytes) available", (long long)p.available_bytes);
    ck_assert_msg(strstr(msg, "tiny 8B: needs") && strstr(msg, want) && strstr(msg, "BF16 mapped"), "%s", msg);
    /* random weights are never paged: refused as soon as they do not fit */
    ck_assert_int_eq(eva_bench_plan_memory(&p, &cfg, 1, 1, NULL), EVA_OK);
    p.available_bytes = p.total_bytes - 1;
    ck_assert_int_eq(eva_bench_check_memory(&p, "x"), EVA_ERR_NOMEM);
    unlink(bf16);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    (void)opt;
    Suite *s = suite_create("mem_plan");
    TCase *t = tcase_create("plan");
    tcase_add_test(t, plan_counts_file_dtype);
    tcase_add_test(t, refusal_and_paging);
    suite_add_tcase(s, t);
    return s;
}
