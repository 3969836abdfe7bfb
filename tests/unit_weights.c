/* unit_weights.c: the weights loader (eva_weights.c) on tiny models of each family: round trips
 * in all three dtypes and both namings give bitwise identical arenas; a missing, unexpected,
 * duplicate, wrong-shape or unsupported-dtype tensor is refused with every offender listed in one
 * line naming the file; random weights are deterministic and sane; the committed tiny goldens load
 * and their dtype/naming variants agree bit for bit. Model files are written here with
 * eva_safetensors_write. */
#include <check.h>

#include "check_main.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eva_half.h"
#include "eva_safetensors.h"
#include "eva_weights.h"

#define TEXT_JSON "\"text\":{\"context_length\":8,\"vocab_size\":50,\"width\":24,\"heads\":2,\"layers\":2," \
                  "\"mlp_hidden\":40,\"norm_eps\":1e-5}"
static const char *const cfg_eva02 =
    "{\"name\":\"t-eva02\",\"embed_dim\":16,\"vision\":{\"image_size\":32,\"patch_size\":8,\"width\":32,"
    "\"depth\":2,\"heads\":2,\"head_dim\":16,\"mlp_hidden\":48,\"mlp\":\"swiglu\",\"subln\":true,\"rope\":true,"
    "\"rope_ref_grid\":16,\"postnorm\":false,\"qkv\":\"split\",\"qv_bias\":true,\"norm\":\"layernorm\","
    "\"norm_eps\":1e-6,\"head_bias\":true}," TEXT_JSON "}";
static const char *const cfg_eva01 =
    "{\"name\":\"t-eva01\",\"embed_dim\":16,\"vision\":{\"image_size\":28,\"patch_size\":7,\"width\":24,"
    "\"depth\":2,\"heads\":3,\"head_dim\":8,\"mlp_hidden\":40,\"mlp\":\"gelu\",\"subln\":false,\"rope\":false,"
    "\"rope_ref_grid\":16,\"postnorm\":false,\"qkv\":\"fused\",\"qv_bias\":true,\"norm\":\"layernorm\","
    "\"norm_eps\":1e-6,\"head_bias\":true}," TEXT_JSON "}";
static const char *const cfg_8b =
    "{\"name\":\"t-8b\",\"embed_dim\":16,\"vision\":{\"image_size\":28,\"patch_size\":7,\"width\":32,"
    "\"depth\":2,\"heads\":2,\"head_dim\":16,\"mlp_hidden\":40,\"mlp\":\"gelu\",\"subln\":false,\"rope\":false,"
    "\"rope_ref_grid\":16,\"postnorm\":false,\"qkv\":\"fused\",\"qv_bias\":false,\"norm\":\"rmsnorm\","
    "\"norm_eps\":1e-6,\"head_bias\":false}," TEXT_JSON "}";

static char tmpdir[256];
static char path[512], path2[512];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eva_w_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/m.safetensors", tmpdir);
    snprintf(path2, sizeof path2, "%s/m2.safetensors", tmpdir);
}

static void teardown(void) {
    unlink(path);
    unlink(path2);
    rmdir(tmpdir);
}

static void get_cfg(eva_config *cfg, const char *json) {
    ck_assert_msg(eva_config_from_json(cfg, json, "test") == EVA_OK, "%s", eva_last_error());
}

/* bf16-representable and, flushing below 2^-14, F16-representable: the same values in all dtypes */
static void quantize(eva_model *m) {
    for (int64_t k = 0; k < m->tensors.arena_floats; k++) {
        float q = eva_bf16_to_f32(eva_f32_to_bf16(m->arena[k]));
        m->arena[k] = fabsf(q) < ldexpf(1, -14) ? 0.0f : q;
    }
}

static void random_model(eva_model *m, const char *json, uint64_t seed) {
    eva_config cfg;
    get_cfg(&cfg, json);
    ck_assert_msg(eva_model_init_random(m, &cfg, seed) == EVA_OK, "%s", eva_last_error());
}

/* The model's tensors as writer items, with room for additions. */
typedef struct {
    eva_st_write_item it[1024];
    int n;
} itemlist;

static void model_items(itemlist *l, const eva_model *m, int official, eva_st_dtype dt) {
    ck_assert_int_lt(m->tensors.count, 1000);
    l->n = 0;
    for (int j = 0; j < m->tensors.count; j++) {
        const eva_tensor_desc *d = &m->tensors.items[j];
        eva_st_write_item w = {official ? d->official : d->name, dt, d->ndim, d->shape, m->arena + d->offset};
        l->it[l->n++] = w;
    }
}

static int il_index(const itemlist *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->it[i].name, name)) return i;
    ck_abort_msg("test bug: no item %s", name);
    return -1;
}

static void il_drop(itemlist *l, const char *name) {
    int i = il_index(l, name);
    memmove(&l->it[i], &l->it[i + 1], (size_t)(l->n - i - 1) * sizeof l->it[0]);
    l->n--;
}

static float zeros[1 << 16];

static void il_add(itemlist *l, const char *name, eva_st_dtype dt, int ndim, const int64_t *shape) {
    eva_st_write_item w = {name, dt, ndim, shape, zeros};
    l->it[l->n++] = w;
}

static void il_write(const itemlist *l, const char *p, const char *cfg_json) {
    const char *meta[] = {EVA_CONFIG_METADATA_KEY, cfg_json, NULL};
    ck_assert_msg(eva_safetensors_write(p, l->it, l->n, cfg_json ? meta : NULL) == EVA_OK, "%s", eva_last_error());
}

static void write_model(const eva_model *m, const char *p, int official, eva_st_dtype dt) {
    static itemlist l;
    model_items(&l, m, official, dt);
    il_write(&l, p, NULL);
}

/* Every tensor, widened to fp32, bit for bit the same in both models (wherever each holds it). */
static void assert_same_arena(const eva_model *a, const eva_model *b) {
    ck_assert_int_eq(a->tensors.count, b->tensors.count);
    for (int j = 0; j < a->tensors.count; j++) {
        const eva_tensor_desc *d = &a->tensors.items[j];
        float *x = malloc((size_t)d->numel * sizeof *x + 4), *y = malloc((size_t)d->numel * sizeof *y + 4);
        ck_assert(x && y);
        eva_model_tensor_f32(a, j, x);
        eva_model_tensor_f32(b, j, y);
        ck_assert_msg(!memcmp(x, y, (size_t)d->numel * sizeof(float)), "%s differs (%s vs %s)", d->name, a->source,
                      b->source);
        free(x);
        free(y);
    }
}

/* Typed tensors are served by the file mapping in the file's dtype, the others by the fp32
 * arena; the bytes held are what eva_model_plan_bytes predicted from the header. */
static void assert_placement(const eva_model *m, eva_dtype file_dt) {
    const char *lo = m->maps && m->nmaps == 1 ? m->maps[0].addr : NULL;
    ck_assert_ptr_nonnull(lo);
    int64_t mapped = 0;
    for (int j = 0; j < m->tensors.count; j++) {
        const eva_tensor_desc *d = &m->tensors.items[j];
        const char *p = m->at[j].data;
        int in_map = p >= lo && p < lo + m->maps[0].len;
        ck_assert_msg(in_map == d->typed, "%s: typed %d, in the mapping %d", d->name, d->typed, in_map);
        ck_assert_int_eq(m->at[j].dtype, d->typed ? file_dt : EVA_DT_F32);
        if (!d->typed) ck_assert_uint_eq((uintptr_t)p % 64, 0);
        if (d->typed) mapped += d->numel * (int64_t)eva_dtype_size(file_dt);
    }
    ck_assert_int_eq(m->bytes.mapped_bytes[0] + m->bytes.mapped_bytes[1] + m->bytes.mapped_bytes[2], mapped);
    eva_weights_bytes plan;
    ck_assert_msg(eva_model_plan_bytes(&plan, m->source, &m->cfg) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(plan.arena_bytes, m->bytes.arena_bytes);
    for (int t = 0; t < 3; t++) ck_assert_int_eq(plan.mapped_bytes[t], m->bytes.mapped_bytes[t]);
    ck_assert_int_eq(plan.mapped_dtype, (int)file_dt);
    ck_assert_int_eq(m->bytes.mapped_dtype, (int)file_dt);
    ck_assert_int_lt(m->bytes.arena_bytes, mapped); /* matrices dominate even the tiny models */
}

/* Loads `p` with cfg, expecting failure `want` and a one-line message naming p and each needle. */
static void expect_load_fail(const char *p, const char *json, eva_status want, ...) {
    eva_config cfg;
    get_cfg(&cfg, json);
    eva_model m;
    memset(&m, 0x5a, sizeof m); /* load must not trust the incoming contents */
    eva_clear_error();
    eva_status s = eva_model_load(&m, p, &cfg);
    const char *msg = eva_last_error();
    ck_assert_msg(s == want, "status %s, want %s: %s", eva_status_name(s), eva_status_name(want), msg);
    ck_assert_ptr_null(m.arena);
    ck_assert_ptr_null(m.vblocks);
    ck_assert_msg(strstr(msg, p) != NULL, "message does not name the file: %s", msg);
    ck_assert_msg(!strchr(msg, '\n'), "not one line: %s", msg);
    va_list ap;
    va_start(ap, want);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, n) != NULL, "message lacks '%s': %s", n, msg);
    va_end(ap);
    eva_model_free(&m);
}

static void load_ok(eva_model *m, const char *p, const char *json) {
    eva_config cfg;
    get_cfg(&cfg, json);
    ck_assert_msg(eva_model_load(m, p, &cfg) == EVA_OK, "%s", eva_last_error());
}

/* ---- round trips ------------------------------------------------------------------------- */

START_TEST(roundtrip_f32_views_bound) {
    eva_model src, m;
    random_model(&src, cfg_eva02, 7);
    write_model(&src, path, 0, EVA_ST_F32);
    load_ok(&m, path, cfg_eva02);
    assert_same_arena(&src, &m);
    ck_assert_int_eq(m.random, 0);
    ck_assert_str_eq(m.source, path);
    ck_assert_str_eq(m.cfg.name, "t-eva02");
    int j = eva_tensors_find(&m.tensors, "visual.trunk.blocks.1.mlp.fc1_g.weight");
    ck_assert_int_ge(j, 0);
    ck_assert_ptr_eq(m.w.vision.blocks[1].fc1_g_w.data, m.at[j].data);
    ck_assert_int_eq(m.w.vision.blocks[1].fc1_g_w.dtype, EVA_DT_F32);
    j = eva_tensors_find(&m.tensors, "text.transformer.resblocks.1.attn.in_proj_weight");
    ck_assert_ptr_eq(m.w.text.blocks[1].in_proj_w.data, m.at[j].data);
    j = eva_tensors_find(&m.tensors, "visual.trunk.blocks.1.mlp.norm.bias");
    ck_assert_ptr_eq(m.w.vision.blocks[1].mlp_norm_b, m.at[j].data);
    ck_assert_int_eq(m.w.vision.depth, 2);
    ck_assert_int_eq(m.w.text.layers, 2);
    ck_assert_ptr_null(m.w.vision.blocks[0].qkv_w.data); /* split family */
    ck_assert_ptr_nonnull(m.w.vision.blocks[0].mlp_norm_b);
    ck_assert(*m.w.logit_scale == (float)log(100.0));
    ck_assert_uint_eq((uintptr_t)m.arena % 64, 0);
    assert_placement(&m, EVA_DT_F32); /* F32 files are mapped, not copied */
    eva_model_free(&m);
    eva_model_free(&src);
}
END_TEST

START_TEST(three_dtypes_identical) {
    const char *cfgs[3] = {cfg_eva02, cfg_eva01, cfg_8b};
    for (int c = 0; c < 3; c++) {
        eva_model src;
        random_model(&src, cfgs[c], 11 + (uint64_t)c);
        quantize(&src);
        const eva_st_dtype dts[3] = {EVA_ST_F32, EVA_ST_F16, EVA_ST_BF16};
        for (int d = 0; d < 3; d++) {
            eva_model m;
            write_model(&src, path, c == 2, dts[d]); /* 8B: official naming only */
            load_ok(&m, path, cfgs[c]);
            assert_same_arena(&src, &m);
            assert_placement(&m, (eva_dtype)dts[d]); /* F16/BF16 stay 2 bytes per value */
            eva_model_free(&m);
        }
        eva_model_free(&src);
    }
}
END_TEST

START_TEST(both_namings_identical) {
    const char *cfgs[2] = {cfg_eva02, cfg_eva01};
    for (int c = 0; c < 2; c++) {
        eva_model src, a, b;
        random_model(&src, cfgs[c], 5);
        write_model(&src, path, 0, EVA_ST_F32);
        write_model(&src, path2, 1, EVA_ST_F32);
        load_ok(&a, path, cfgs[c]);
        load_ok(&b, path2, cfgs[c]);
        assert_same_arena(&a, &b);
        assert_same_arena(&src, &a);
        eva_model_free(&a);
        eva_model_free(&b);
        eva_model_free(&src);
    }
}
END_TEST

START_TEST(official_rope_buffers_ignored) {
    eva_model src, m;
    random_model(&src, cfg_eva02, 3);
    static itemlist l;
    model_items(&l, &src, 1, EVA_ST_BF16);
    static const int64_t rs[2] = {16, 16};
    il_add(&l, "visual.rope.freqs_cos", EVA_ST_F16, 2, rs);
    il_add(&l, "visual.rope.freqs_sin", EVA_ST_F16, 2, rs);
    il_add(&l, "visual.blocks.0.attn.rope.freqs_cos", EVA_ST_F32, 2, rs);
    il_add(&l, "visual.blocks.1.attn.rope.freqs_sin", EVA_ST_F32, 2, rs);
    il_write(&l, path, NULL);
    load_ok(&m, path, cfg_eva02);
    eva_model_free(&m);
    eva_model_free(&src);
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------------ */

START_TEST(missing_tensor) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_F32);
    il_drop(&l, "visual.trunk.blocks.1.attn.q_proj.bias");
    il_write(&l, path, NULL);
    expect_load_fail(path, cfg_eva02, EVA_ERR_SHAPE, "1 missing tensor",
                     "visual.trunk.blocks.1.attn.q_proj.bias or visual.blocks.1.attn.q_bias", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(unexpected_tensor) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_F16);
    static const int64_t d[1] = {32};
    il_add(&l, "visual.trunk.blocks.0.attn.k_proj.bias", EVA_ST_F16, 1, d);
    il_write(&l, path, NULL);
    expect_load_fail(path, cfg_eva02, EVA_ERR_SHAPE, "1 unexpected tensor",
                     "visual.trunk.blocks.0.attn.k_proj.bias", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(wrong_shape) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_F32);
    static const int64_t t[2] = {16, 24}, s1[1] = {1};
    l.it[il_index(&l, "text.text_projection")].shape = t;
    l.it[il_index(&l, "logit_scale")].ndim = 1;
    l.it[il_index(&l, "logit_scale")].shape = s1;
    il_write(&l, path, NULL);
    expect_load_fail(path, cfg_eva02, EVA_ERR_SHAPE, "2 wrong shape",
                     "text.text_projection: file [16,24], expected [24,16]", "logit_scale: file [1], expected []",
                     NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(duplicate_under_both_namings) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_F32);
    static const int64_t d[1] = {32};
    il_add(&l, "visual.blocks.0.attn.q_bias", EVA_ST_F32, 1, d);
    il_write(&l, path, NULL);
    expect_load_fail(path, cfg_eva02, EVA_ERR_SHAPE, "1 duplicate",
                     "visual.blocks.0.attn.q_bias = visual.trunk.blocks.0.attn.q_proj.bias", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(every_offender_in_one_message) {
    eva_model src;
    random_model(&src, cfg_eva01, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_BF16);
    il_drop(&l, "visual.trunk.norm.bias");
    il_drop(&l, "text.transformer.resblocks.0.ln_2.weight");
    static const int64_t one[1] = {1}, bad[4] = {24, 3, 8, 8};
    il_add(&l, "extra.a", EVA_ST_F32, 1, one);
    il_add(&l, "extra.b", EVA_ST_F32, 1, one);
    il_add(&l, "visual.trunk.blocks.0.mlp.fc1_g.weight", EVA_ST_F32, 1, one);
    l.it[il_index(&l, "visual.trunk.patch_embed.proj.weight")].shape = bad;
    il_add(&l, "visual.blocks.1.attn.q_bias", EVA_ST_F32, 1, one); /* official twin of an open_clip key */
    il_write(&l, path, NULL);
    expect_load_fail(path, cfg_eva01, EVA_ERR_SHAPE, "1 duplicate", "visual.blocks.1.attn.q_bias", "2 missing tensors", "visual.trunk.norm.bias",
                     "text.transformer.resblocks.0.ln_2.weight", "3 unexpected tensors", "extra.a", "extra.b",
                     "visual.trunk.blocks.0.mlp.fc1_g.weight", "1 wrong shape",
                     "visual.trunk.patch_embed.proj.weight: file [24,3,8,8], expected [24,3,7,7]", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(huge_offender_list_is_truncated) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    write_model(&src, path, 0, EVA_ST_F32);
    /* every vision tensor wrong for the EVA-01 config: dozens of offenders */
    expect_load_fail(path, cfg_eva01, EVA_ERR_SHAPE, "missing", "unexpected", "more", NULL);
    ck_assert_int_lt(strlen(eva_last_error()), 4000);
    eva_model_free(&src);
}
END_TEST

START_TEST(official_only_family) {
    eva_model src, m;
    random_model(&src, cfg_8b, 2);
    write_model(&src, path, 1, EVA_ST_F32);
    load_ok(&m, path, cfg_8b);
    assert_same_arena(&src, &m);
    ck_assert_ptr_null(m.w.vision.norm_b);
    ck_assert_ptr_null(m.w.vision.head_b);
    ck_assert_ptr_null(m.w.vision.blocks[0].q_b);
    ck_assert_ptr_nonnull(m.w.vision.blocks[0].qkv_w.data);
    eva_model_free(&m);
    write_model(&src, path, 0, EVA_ST_F32); /* open_clip naming: refused */
    expect_load_fail(path, cfg_8b, EVA_ERR_SHAPE, "unexpected", "visual.trunk.blocks.0.attn.qkv.weight",
                     "missing", "visual.blocks.0.attn.qkv.weight", "official naming", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(unsupported_dtype_named) {
    eva_model src;
    random_model(&src, cfg_eva01, 1);
    write_model(&src, path, 0, EVA_ST_F32);
    /* patch logit_scale's dtype F32 -> I32 (same size) in the header */
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    unsigned char lb[8];
    ck_assert_uint_eq(fread(lb, 1, 8, f), 8);
    size_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | lb[k];
    char *h = malloc(n + 1);
    ck_assert_uint_eq(fread(h, 1, n, f), n);
    h[n] = 0;
    char *p = strstr(h, "\"logit_scale\":{");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "\"F32\"");
    ck_assert_ptr_nonnull(p);
    p[1] = 'I';
    fseek(f, 8, SEEK_SET);
    ck_assert_uint_eq(fwrite(h, 1, n, f), n);
    fclose(f);
    free(h);
    expect_load_fail(path, cfg_eva01, EVA_ERR_UNSUPPORTED, "1 unsupported dtype", "logit_scale: I32", NULL);
    eva_model_free(&src);
}
END_TEST

START_TEST(hostile_and_missing_files) {
    char nofile[600];
    snprintf(nofile, sizeof nofile, "%s/absent.safetensors", tmpdir);
    expect_load_fail(nofile, cfg_eva02, EVA_ERR_IO, NULL);
    FILE *f = fopen(path, "wb");
    fwrite("\x10\0\0\0\0\0\0\0not json at all!", 1, 24, f);
    fclose(f);
    expect_load_fail(path, cfg_eva02, EVA_ERR_FORMAT, "JSON", NULL);
    f = fopen(path, "wb");
    fclose(f);
    expect_load_fail(path, cfg_eva02, EVA_ERR_FORMAT, "empty", NULL);
}
END_TEST

/* ---- config from metadata --------------------------------------------------------------------- */

START_TEST(config_from_metadata) {
    eva_model src;
    random_model(&src, cfg_eva02, 1);
    static itemlist l;
    model_items(&l, &src, 0, EVA_ST_F32);
    il_write(&l, path, cfg_eva02);
    eva_config cfg;
    ck_assert_msg(eva_model_config_from_weights(&cfg, path) == EVA_OK, "%s", eva_last_error());
    ck_assert_str_eq(cfg.name, "t-eva02");
    ck_assert_int_eq(cfg.vision.grid, 4);
    eva_model m;
    ck_assert_int_eq(eva_model_load(&m, path, &cfg), EVA_OK);
    assert_same_arena(&src, &m);
    eva_model_free(&m);
    /* absent key */
    il_write(&l, path, NULL);
    ck_assert_int_eq(eva_model_config_from_weights(&cfg, path), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), path) && strstr(eva_last_error(), "--variant"), "%s", eva_last_error());
    /* malformed config in the metadata */
    il_write(&l, path, "{\"name\": \"x\"");
    ck_assert_int_eq(eva_model_config_from_weights(&cfg, path), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), path) != NULL, "%s", eva_last_error());
    il_write(&l, path, "{\"name\":\"x\",\"embed_dim\":16,\"vision\":{},\"text\":{}}");
    ck_assert_int_eq(eva_model_config_from_weights(&cfg, path), EVA_ERR_INVALID_ARG);
    ck_assert_msg(strstr(eva_last_error(), path) != NULL, "%s", eva_last_error());
    eva_model_free(&src);
}
END_TEST

/* ---- random weights ---------------------------------------------------------------------------- */

START_TEST(random_deterministic_and_sane) {
    eva_model a, b, c;
    random_model(&a, cfg_eva02, 42);
    random_model(&b, cfg_eva02, 42);
    random_model(&c, cfg_eva02, 43);
    assert_same_arena(&a, &b);
    ck_assert(memcmp(a.arena, c.arena, (size_t)a.tensors.arena_floats * 4) != 0);
    ck_assert_int_eq(a.random, 1);
    ck_assert_str_eq(a.source, "random(42)");
    ck_assert(*a.w.logit_scale == (float)log(100.0));
    for (int j = 0; j < a.tensors.count; j++) {
        const eva_tensor_desc *d = &a.tensors.items[j];
        const float *x = a.arena + d->offset;
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t k = 0; k < d->numel; k++) {
            ck_assert(isfinite(x[k]));
            lo = fmin(lo, x[k]);
            hi = fmax(hi, x[k]);
        }
        /* padding to the next tensor stays zero */
        int64_t padded = (d->numel + EVA_ARENA_ALIGN_FLOATS - 1) / EVA_ARENA_ALIGN_FLOATS * EVA_ARENA_ALIGN_FLOATS;
        for (int64_t k = d->numel; k < padded; k++) ck_assert(x[k] == 0.0f);
        if (d->ndim == 1 && strstr(d->name, "bias")) {
            ck_assert_msg(lo >= -0.02 && hi <= 0.02 && hi > lo, "%s", d->name);
        } else if (d->ndim == 1) {
            ck_assert_msg(lo >= 0.9 && hi <= 1.1 && hi > lo, "%s", d->name); /* not all ones */
        } else if (d->ndim >= 2) {
            ck_assert_msg(hi - lo > 0 && fmax(-lo, hi) <= 1.0, "%s", d->name);
        }
    }
    eva_model_free(&a);
    eva_model_free(&b);
    eva_model_free(&c);
}
END_TEST

START_TEST(random_full_size_b16_is_fast) {
    eva_config cfg;
    ck_assert_msg(eva_config_find(&cfg, "EVA02-CLIP-B-16") == EVA_OK, "%s", eva_last_error());
    eva_model m;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_msg(eva_model_init_random(&m, &cfg, 1) == EVA_OK, "%s", eva_last_error());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("init_random EVA02-CLIP-B-16: %" PRId64 " floats in %.3f s\n", m.tensors.arena_floats, s);
    ck_assert_int_gt(m.tensors.arena_floats, 140000000); /* ~150M parameters, both towers */
    ck_assert_msg(s < 10.0, "took %.2f s", s);               /* generous: sanitizer builds are slow */
    eva_model_free(&m);
}
END_TEST

/* eva_model_write_random streams init_random's values: loading the file gives them rounded to
 * the file's dtype, and the plan of the file matches the load. */
START_TEST(write_random_matches_init_random) {
    const char *cfgs[2] = {cfg_eva02, cfg_8b};
    for (int c = 0; c < 2; c++) {
        eva_model src, m;
        eva_config cfg;
        get_cfg(&cfg, cfgs[c]);
        random_model(&src, cfgs[c], 9);
        for (int64_t k = 0; k < src.tensors.arena_floats; k++) src.arena[k] = eva_bf16_to_f32(eva_f32_to_bf16(src.arena[k]));
        ck_assert_msg(eva_model_write_random(path, &cfg, 9, EVA_DT_BF16) == EVA_OK, "%s", eva_last_error());
        eva_config from_meta;
        ck_assert_msg(eva_model_config_from_weights(&from_meta, path) == EVA_OK, "%s", eva_last_error());
        ck_assert_str_eq(from_meta.name, cfg.name);
        load_ok(&m, path, cfgs[c]);
        assert_same_arena(&src, &m);
        assert_placement(&m, EVA_DT_BF16);
        eva_model_free(&m);
        eva_model_free(&src);
    }
}
END_TEST

/* The branch-free F16 widening of the GEMM's packing equals the reference conversion on all
 * 65536 inputs (NaNs: both NaN with the same bits). */
START_TEST(f16_widening_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        float a = eva_f16_to_f32((uint16_t)h), b = eva_f16_to_f32_flat((uint16_t)h);
        ck_assert_msg(eva_f32_to_bits(a) == eva_f32_to_bits(b), "0x%04x: %08x vs %08x", h, eva_f32_to_bits(a),
                      eva_f32_to_bits(b));
    }
    uint16_t hs[3] = {0x3c00, 0x0001, 0xfbff};
    float out[3];
    eva_widen(out, hs, EVA_DT_F16, 0, 3);
    ck_assert(out[0] == 1.0f && out[1] == ldexpf(1, -24) && out[2] == -65504.0f);
}
END_TEST

START_TEST(free_is_safe) {
    eva_model m;
    memset(&m, 0, sizeof m);
    eva_model_free(&m);
    eva_model_free(&m);
    eva_model_free(NULL);
    random_model(&m, cfg_eva01, 1);
    eva_model_free(&m);
    eva_model_free(&m);
}
END_TEST

/* ---- committed tiny goldens --------------------------------------------------------------------- */

static const char *source_dir(void) {
    const char *d = getenv("EVA_SOURCE_DIR");
    return d && *d ? d : EVA_SOURCE_DIR;
}

static void load_golden(eva_model *m, const char *file) {
    char p[1024];
    snprintf(p, sizeof p, "%s/golden/tiny/%s", source_dir(), file);
    ck_assert_msg(access(p, R_OK) == 0, "golden weights %s not found", p);
    eva_config cfg;
    ck_assert_msg(eva_model_config_from_weights(&cfg, p) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_model_load(m, p, &cfg) == EVA_OK, "%s", eva_last_error());
}

/* Transformers shards: every shard mapped once, renamed tensors used in place, q/k/v assembled
 * into one qkv copied once in BF16 (not widened), the same values as the tiny golden, and the
 * plan from the headers equal to what the load holds. */
START_TEST(shards_mapped_and_assembled) {
    char p[1024];
    snprintf(p, sizeof p, "%s/golden/formats/hf-18b-st", source_dir());
    ck_assert_msg(access(p, R_OK) == 0, "fixture %s not found", p);
    eva_model base, m;
    load_golden(&base, "18b.safetensors");
    ck_assert_msg(eva_model_load(&m, p, &base.cfg) == EVA_OK, "%s", eva_last_error());
    assert_same_arena(&base, &m);
    ck_assert_int_eq(m.nmaps, 2);
    int q = eva_tensors_find(&m.tensors, "visual.blocks.0.attn.qkv.weight");
    int f = eva_tensors_find(&m.tensors, "visual.blocks.0.attn.proj.weight");
    ck_assert(q >= 0 && f >= 0);
    ck_assert_int_eq(m.at[q].dtype, EVA_DT_BF16);
    ck_assert_int_eq(m.at[f].dtype, EVA_DT_BF16);
    const char *a = (const char *)m.arena, *pq = m.at[q].data, *pf = m.at[f].data;
    ck_assert_msg(pq >= a && pq < a + m.bytes.arena_bytes, "qkv is not the owned copy");
    ck_assert_msg(!(pf >= a && pf < a + m.bytes.arena_bytes), "proj is not used in place");
    eva_weights_bytes plan;
    ck_assert_msg(eva_model_plan_bytes(&plan, p, &base.cfg) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(plan.arena_bytes, m.bytes.arena_bytes);
    for (int t = 0; t < 3; t++) ck_assert_int_eq(plan.mapped_bytes[t], m.bytes.mapped_bytes[t]);
    eva_model_free(&m);
    eva_model_free(&base);
}
END_TEST

START_TEST(golden_variants_identical) {
    /* base file, then files that must give the same arena bit for bit */
    static const char *const sets[][4] = {
        {"eva01.safetensors", "eva01.official.safetensors", NULL},
        {"eva02.safetensors", "eva02.f16.safetensors", "eva02.bf16.safetensors", "eva02.official.safetensors"},
        {"bige.safetensors", "bige.official.safetensors", NULL},
        {"8b.safetensors", "8b.f16.safetensors", "8b.bf16.safetensors", NULL},
        {"18b.safetensors", "18b.f16.safetensors", NULL},
    };
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        eva_model base;
        load_golden(&base, sets[s][0]);
        for (int k = 1; k < 4 && sets[s][k]; k++) {
            eva_model other;
            load_golden(&other, sets[s][k]);
            assert_same_arena(&base, &other);
            eva_model_free(&other);
        }
        eva_model_free(&base);
    }
}
END_TEST

START_TEST(arena_after_tensor_check) {
    /* The tiny EVA-02 file against the full 18B config (an arena of ~73 GB): refused for its
     * tensors before any arena is allocated (an allocation first would fail with NOMEM, or abort
     * under AddressSanitizer). */
    char p[1024];
    snprintf(p, sizeof p, "%s/golden/tiny/eva02.safetensors", source_dir());
    eva_config cfg;
    ck_assert_int_eq(eva_config_find(&cfg, "EVA-CLIP-18B"), EVA_OK);
    eva_model m;
    ck_assert_int_eq(eva_model_load(&m, p, &cfg), EVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "do not match config"));
    ck_assert_ptr_null(m.arena);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("weights");
    TCase *t = tcase_create("load");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, roundtrip_f32_views_bound);
    tcase_add_test(t, three_dtypes_identical);
    tcase_add_test(t, both_namings_identical);
    tcase_add_test(t, official_rope_buffers_ignored);
    tcase_add_test(t, missing_tensor);
    tcase_add_test(t, unexpected_tensor);
    tcase_add_test(t, wrong_shape);
    tcase_add_test(t, duplicate_under_both_namings);
    tcase_add_test(t, every_offender_in_one_message);
    tcase_add_test(t, huge_offender_list_is_truncated);
    tcase_add_test(t, official_only_family);
    tcase_add_test(t, unsupported_dtype_named);
    tcase_add_test(t, hostile_and_missing_files);
    tcase_add_test(t, config_from_metadata);
    tcase_add_test(t, random_deterministic_and_sane);
    tcase_add_test(t, random_full_size_b16_is_fast);
    tcase_add_test(t, write_random_matches_init_random);
    tcase_add_test(t, f16_widening_exhaustive);
    tcase_add_test(t, free_is_safe);
    tcase_add_test(t, golden_variants_identical);
    tcase_add_test(t, shards_mapped_and_assembled);
    tcase_add_test(t, arena_after_tensor_check);
    suite_add_tcase(s, t);
        return s;
}
