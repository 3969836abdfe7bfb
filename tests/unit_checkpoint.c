/* unit_checkpoint.c: eva_checkpoint (the published checkpoint layouts) on the committed fixtures of
 * golden/formats/ (made by golden/make_format_fixtures.py with the upstream writers):
 *   - the transformers safetensors shards (BAAI layout) read through the composite handle give every
 *     tensor of the tiny 18B model bit for bit equal to golden/tiny/18b.safetensors, shard given as
 *     the folder, the index JSON or one shard;
 *   - the open_clip_config.json of each of the seven timm/eva* hub repos (written by open_clip's
 *     save_config_for_hf from its packaged configs) gives exactly the built-in variant;
 *   - each of the ten built-in variants is found from its tensor names and shapes alone (a sparse
 *     file with the header of that variant, no data written), and only that one;
 *   - pickles, incomplete shard sets and hostile index files (not JSON, a path as shard name, a key
 *     missing from its shard, names with no counterpart, incomplete q/k/v) are refused with a
 *     message naming the file or tensor.
 */
#include <check.h>

#include "check_main.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eva_checkpoint.h"
#include "eva_safetensors.h"
#include "eva_tensors.h"

static const char *source_dir(void) {
    const char *d = getenv("EVA_SOURCE_DIR");
    return d && *d ? d : EVA_SOURCE_DIR;
}

static void fixture(char *p, size_t cap, const char *rel) {
    snprintf(p, cap, "%s/golden/%s", source_dir(), rel);
    ck_assert_msg(access(p, R_OK) == 0, "fixture %s not found", p);
}

/* Every tensor of `got` equals the tensor of the same name in `want`, and the sets are equal. */
static void assert_same_tensors(const eva_safetensors *got, const eva_safetensors *want) {
    ck_assert_int_eq(eva_safetensors_count(got), eva_safetensors_count(want));
    for (int i = 0; i < eva_safetensors_count(want); i++) {
        const eva_st_tensor *w = eva_safetensors_get(want, i);
        int j = eva_safetensors_find(got, w->name);
        ck_assert_msg(j >= 0, "tensor %s missing", w->name);
        const eva_st_tensor *g = eva_safetensors_get(got, j);
        ck_assert_int_eq(g->ndim, w->ndim);
        for (int d = 0; d < w->ndim; d++) ck_assert_int_eq(g->shape[d], w->shape[d]);
        float *a = malloc((size_t)w->numel * sizeof *a), *b = malloc((size_t)w->numel * sizeof *b);
        ck_assert(a && b);
        ck_assert_msg(eva_safetensors_read_f32(got, j, a, g->numel) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(eva_safetensors_read_f32(want, i, b, w->numel) == EVA_OK, "%s", eva_last_error());
        ck_assert_msg(memcmp(a, b, (size_t)w->numel * sizeof *a) == 0, "tensor %s differs", w->name);
        free(a);
        free(b);
    }
}

START_TEST(transformers_shards_equal_tiny_weights) {
    static const char *const ways[] = {"formats/hf-18b-st", "formats/hf-18b-st/model.safetensors.index.json",
                                       "formats/hf-18b-st/model-00001-of-00002.safetensors"};
    char pw[1024], pg[1024];
    fixture(pw, sizeof pw, "tiny/18b.safetensors");
    eva_safetensors *want = NULL, *got = NULL;
    ck_assert(eva_safetensors_open(&want, pw) == EVA_OK);
    for (size_t k = 0; k < sizeof ways / sizeof ways[0]; k++) {
        fixture(pg, sizeof pg, ways[k]);
        ck_assert_msg(eva_checkpoint_open(&got, pg) == EVA_OK, "%s", eva_last_error());
        assert_same_tensors(got, want);
        /* renamed-only tensors still point at their file bytes; concatenated ones do not */
        int q = eva_safetensors_find(got, "visual.blocks.0.attn.qkv.weight");
        int n = eva_safetensors_find(got, "visual.blocks.0.norm1.weight");
        ck_assert(q >= 0 && n >= 0);
        ck_assert_int_eq(eva_safetensors_source(got, q, NULL, NULL), 0);
        ck_assert_int_eq(eva_safetensors_source(got, n, NULL, NULL), 1);
        /* the shards' all-zero visual_projection.bias is dropped: 18B's head has no bias */
        ck_assert_int_lt(eva_safetensors_find(got, "visual.head.bias"), 0);
        eva_safetensors_close(got);
    }
    eva_safetensors_close(want);
}
END_TEST

START_TEST(open_clip_configs_give_builtins) {
    static const char *const names[] = {"EVA01-g-14", "EVA01-g-14-plus", "EVA02-B-16", "EVA02-L-14",
                                        "EVA02-L-14-336", "EVA02-E-14", "EVA02-E-14-plus"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char rel[256], p[1024];
        snprintf(rel, sizeof rel, "formats/open_clip_configs/%s.json", names[k]);
        fixture(p, sizeof p, rel);
        FILE *f = fopen(p, "rb");
        ck_assert(f);
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        eva_config got, want;
        ck_assert_msg(eva_config_from_open_clip_json(&got, buf, p) == EVA_OK, "%s", eva_last_error());
        ck_assert(eva_config_find(&want, names[k]) == EVA_OK);
        char *a = eva_config_to_json(&got, false), *b = eva_config_to_json(&want, false);
        ck_assert_msg(!strcmp(a, b), "%s:\n got %s\nwant %s", names[k], a, b);
        free(a);
        free(b);
    }
    eva_config c;
    ck_assert_int_eq(eva_config_from_open_clip_json(&c, "{\"model_cfg\":{\"embed_dim\":512,\"vision_cfg\":"
                     "{\"timm_model_name\":\"vit_base_patch16_224\"},\"text_cfg\":{}}}", "x.json"),
                     EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), "x.json") && strstr(eva_last_error(), "vit_base_patch16_224"), "%s",
                  eva_last_error());
}
END_TEST

/* A sparse safetensors file holding only the header of `cfg`'s table (official names, F16). */
static void write_header_only(const char *path, const eva_config *cfg) {
    eva_tensor_table tt;
    ck_assert(eva_tensors_build(&tt, cfg) == EVA_OK);
    size_t cap = (size_t)tt.count * 200 + 64, len = 0;
    char *h = malloc(cap);
    ck_assert(h);
    len += (size_t)snprintf(h + len, cap - len, "{");
    int64_t off = 0;
    for (int j = 0; j < tt.count; j++) {
        const eva_tensor_desc *d = &tt.items[j];
        len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"F16\",\"shape\":[", j ? "," : "", d->official);
        for (int k = 0; k < d->ndim; k++)
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", k ? "," : "", (long long)d->shape[k]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%lld,%lld]}", (long long)off,
                                (long long)(off + 2 * d->numel));
        off += 2 * d->numel;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    ck_assert(len < cap);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    ck_assert(fd >= 0);
    unsigned char n8[8];
    for (int k = 0; k < 8; k++) n8[k] = (unsigned char)((uint64_t)len >> (8 * k));
    ck_assert(write(fd, n8, 8) == 8 && write(fd, h, len) == (ssize_t)len);
    ck_assert(ftruncate(fd, (off_t)(8 + len + (size_t)off)) == 0);
    close(fd);
    free(h);
    eva_tensors_free(&tt);
}

START_TEST(builtins_found_from_shapes) {
    char path[] = "/tmp/evabench-unit-ckpt-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    for (int i = 0; i < eva_config_builtin_count(); i++) {
        const eva_config *want = eva_config_builtin(i);
        write_header_only(path, want);
        eva_config got;
        const char *how = NULL;
        ck_assert_msg(eva_checkpoint_config(&got, path, &how) == EVA_OK, "%s: %s", want->name, eva_last_error());
        ck_assert_str_eq(got.name, want->name);
        ck_assert_str_eq(how, "tensor shapes");
    }
    unlink(path);
}
END_TEST

START_TEST(refusals_name_the_file) {
    char p[1024];
    eva_safetensors *st = NULL;
    fixture(p, sizeof p, "formats/official/EVA_CLIP_tiny8b_psz7.pt");
    ck_assert_int_eq(eva_checkpoint_open(&st, p), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), p) && strstr(eva_last_error(), "convert_checkpoint.py"), "%s",
                  eva_last_error());
    fixture(p, sizeof p, "formats/hf-8b-bin");
    ck_assert_int_eq(eva_checkpoint_open(&st, p), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), "convert_checkpoint.py"), "%s", eva_last_error());
    /* an index naming a shard that is not there */
    char dir[] = "/tmp/evabench-unit-ckpt-XXXXXX", idx[256];
    ck_assert(mkdtemp(dir));
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(idx, "w");
    ck_assert(f);
    fputs("{\"weight_map\":{\"logit_scale\":\"model-00001-of-00002.safetensors\"}}", f);
    fclose(f);
    ck_assert_int_eq(eva_checkpoint_open(&st, dir), EVA_ERR_IO);
    ck_assert_msg(strstr(eva_last_error(), "model-00001-of-00002.safetensors"), "%s", eva_last_error());
    ck_assert(st == NULL);
    unlink(idx);
    /* a vision-only safetensors file: the config search says so */
    char vo[300];
    snprintf(vo, sizeof vo, "%s/vision.safetensors", dir);
    static const float v[4] = {1, 2, 3, 4};
    static const int64_t shape[2] = {2, 2};
    const eva_st_write_item it[2] = {{"blocks.0.attn.qkv.weight", EVA_ST_F32, 2, shape, v},
                                     {"patch_embed.proj.weight", EVA_ST_F32, 2, shape, v}};
    ck_assert(eva_safetensors_write(vo, it, 2, NULL) == EVA_OK);
    eva_config cfg;
    const char *how;
    ck_assert_int_eq(eva_checkpoint_config(&cfg, vo, &how), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), "vision-only") && strstr(eva_last_error(), vo), "%s", eva_last_error());
    unlink(vo);
    rmdir(dir);
}
END_TEST


/* Writes `json` to dir/name. */
static void put_text(const char *dir, const char *name, const char *json) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert(f);
    fputs(json, f);
    fclose(f);
}

/* One shard holding tensors named `names` (each [2,2] F32). */
static void put_shard(const char *dir, const char *name, const char *const *names, int n) {
    static const float v[4] = {1, 2, 3, 4};
    static const int64_t shape[2] = {2, 2};
    eva_st_write_item it[8];
    for (int k = 0; k < n; k++) it[k] = (eva_st_write_item){names[k], EVA_ST_F32, 2, shape, v};
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ck_assert_msg(eva_safetensors_write(p, it, n, NULL) == EVA_OK, "%s", eva_last_error());
}

static void expect_refused(const char *dir, eva_status want, const char *needle) {
    eva_safetensors *st = NULL;
    eva_status got = eva_checkpoint_open(&st, dir);
    ck_assert_msg(got == want, "status %d, expected %d: %s", got, want, eva_last_error());
    ck_assert_msg(strstr(eva_last_error(), needle), "message lacks '%s': %s", needle, eva_last_error());
    ck_assert(st == NULL);
}

START_TEST(hostile_indexes) {
    char dir[] = "/tmp/evabench-unit-ckpt-XXXXXX";
    ck_assert(mkdtemp(dir));
    const char *idx = "model.safetensors.index.json";
    static const char *const good[] = {"logit_scale", "text_projection.weight"};
    put_shard(dir, "a.safetensors", good, 2);
    put_text(dir, idx, "{not json");
    expect_refused(dir, EVA_ERR_FORMAT, "weight_map");
    put_text(dir, idx, "{\"weight_map\":{\"logit_scale\":7}}");
    expect_refused(dir, EVA_ERR_FORMAT, "not a string");
    put_text(dir, idx, "{\"weight_map\":{\"logit_scale\":\"../a.safetensors\"}}");
    expect_refused(dir, EVA_ERR_INVALID_ARG, "../a.safetensors");
    put_text(dir, idx, "{\"weight_map\":{\"visual_projection.weight\":\"a.safetensors\"}}");
    expect_refused(dir, EVA_ERR_SHAPE, "visual_projection.weight");
    /* names with no EVA-CLIP counterpart, and a vision k bias, are listed */
    static const char *const odd[] = {"vision_model.encoder.layers.0.self_attn.k_proj.bias",
                                      "vision_model.encoder.layers.0.bogus.weight", "lm_head.weight"};
    put_shard(dir, "b.safetensors", odd, 3);
    put_text(dir, idx, "{\"weight_map\":{\"vision_model.encoder.layers.0.self_attn.k_proj.bias\":\"b.safetensors\","
                       "\"vision_model.encoder.layers.0.bogus.weight\":\"b.safetensors\","
                       "\"lm_head.weight\":\"b.safetensors\"}}");
    expect_refused(dir, EVA_ERR_SHAPE, "3 tensors of the transformers layout have no EVA-CLIP counterpart");
    expect_refused(dir, EVA_ERR_SHAPE, "no k bias");
    /* incomplete q/k/v */
    static const char *const qk[] = {"text_model.encoder.layers.0.self_attn.q_proj.weight",
                                     "text_model.encoder.layers.0.self_attn.k_proj.weight"};
    put_shard(dir, "c.safetensors", qk, 2);
    put_text(dir, idx, "{\"weight_map\":{\"text_model.encoder.layers.0.self_attn.q_proj.weight\":\"c.safetensors\","
                       "\"text_model.encoder.layers.0.self_attn.k_proj.weight\":\"c.safetensors\"}}");
    expect_refused(dir, EVA_ERR_SHAPE, "text layer 0");
    /* a nonzero visual_projection.bias is kept as visual.head.bias (the fixtures' zero one is dropped) */
    static const char *const vb[] = {"visual_projection.bias"};
    put_shard(dir, "d.safetensors", vb, 1);
    put_text(dir, idx, "{\"weight_map\":{\"visual_projection.bias\":\"d.safetensors\"}}");
    eva_safetensors *st = NULL;
    ck_assert_msg(eva_checkpoint_open(&st, dir) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_ge(eva_safetensors_find(st, "visual.head.bias"), 0);
    eva_safetensors_close(st);
    const char *const files[] = {"a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors", idx};
    for (int k = 0; k < 5; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[k]);
        unlink(p);
    }
    rmdir(dir);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    (void)opt;
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("formats");
    tcase_add_test(tc, transformers_shards_equal_tiny_weights);
    tcase_add_test(tc, open_clip_configs_give_builtins);
    tcase_add_test(tc, builtins_found_from_shapes);
    tcase_add_test(tc, refusals_name_the_file);
    tcase_add_test(tc, hostile_indexes);
    suite_add_tcase(s, tc);
    return s;
}
