/* unit_golden_io.c: the HDF5 side of the harness (golden.h): reading goldens whose attributes are
 * variable-length (h5py str) or fixed-length strings, inputs as float32 / int32 / int64 with the
 * int64 -> int32 range check, the refusals (missing file, not HDF5, wrong rank, wrong type, bad
 * schema, non-dataset members, oversized declared shapes) with messages naming file and dataset,
 * the weights path resolution, encode's writer read back, the guarded reader (a libhdf5 crash and
 * a hang become messages, unbacked and external datasets refused before reading) and the
 * in-memory entry used for fuzzing (same result as the guarded path). Files are made here with
 * the HDF5 C API in a temporary folder. */
#include <check.h>

#include "check_main.h"
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden.h"

static char tmpdir[256];

static void make_tmp(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/evabench-golden-io.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    eva_h5_quiet();
}

static void rm_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void attr_str(hid_t f, const char *name, const char *value, int vlen) {
    hid_t ty = H5Tcopy(H5T_C_S1);
    if (vlen) {
        H5Tset_size(ty, H5T_VARIABLE);
        H5Tset_cset(ty, H5T_CSET_UTF8);
    } else {
        H5Tset_size(ty, strlen(value));
        H5Tset_strpad(ty, H5T_STR_NULLPAD);
    }
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(a, 0);
    if (vlen) ck_assert_int_ge(H5Awrite(a, ty, &value), 0);
    else ck_assert_int_ge(H5Awrite(a, ty, value), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
}

static void attr_i64(hid_t f, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void dset(hid_t f, const char *name, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                 const void *data) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, file_type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    if (data) ck_assert_int_ge(H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

/* A small golden: 2 images 3x4x4, 3 texts of 5 ids (int64), two acts. */
static void write_golden(const char *path, int vlen, const char *schema) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    if (schema) attr_str(f, "schema", schema, vlen);
    attr_str(f, "config", "{\"name\": \"x\"}", vlen);
    attr_str(f, "weights", "w.safetensors", vlen);
    attr_str(f, "generator", "unit test", vlen);
    attr_i64(f, "seed", 1234);
    float pix[2 * 3 * 4 * 4];
    for (int i = 0; i < 96; i++) pix[i] = (float)i * 0.5f;
    hsize_t pd[4] = {2, 3, 4, 4};
    dset(f, "/inputs/pixel_values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, pd, pix);
    int64_t ids[15];
    for (int i = 0; i < 15; i++) ids[i] = i * 7;
    hsize_t id[2] = {3, 5};
    dset(f, "/inputs/input_ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, id, ids);
    float act[6] = {1, 2, 3, 4, 5, 6};
    hsize_t ad[2] = {2, 3};
    dset(f, "/acts/visual.trunk.head", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, ad, act);
    double actd[6] = {6, 5, 4, 3, 2, 1};
    dset(f, "/acts/image_features", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, ad, actd);
    H5Fclose(f);
}

static void read_golden_variant(int vlen) {
    make_tmp();
    const char *p = tpath("g.h5");
    write_golden(p, vlen, EVA_GOLDEN_SCHEMA);
    eva_golden g;
    ck_assert_msg(eva_golden_open(&g, p) == EVA_OK, "%s", eva_last_error());
    ck_assert_str_eq(g.schema, EVA_GOLDEN_SCHEMA);
    ck_assert_str_eq(g.config_json, "{\"name\": \"x\"}");
    ck_assert_str_eq(g.weights, "w.safetensors");
    ck_assert_str_eq(g.generator, "unit test");
    ck_assert(g.has_seed);
    ck_assert_int_eq(g.seed, 1234);
    ck_assert_int_eq(eva_inputs_images(&g.inputs), 2);
    ck_assert_int_eq(eva_inputs_texts(&g.inputs), 3);
    ck_assert(g.inputs.pixels[95] == 47.5f);
    ck_assert_int_eq(g.inputs.ids[14], 98);
    ck_assert_int_eq(g.n_acts, 2);
    ck_assert_str_eq(g.acts[0], "image_features"); /* sorted */
    ck_assert(eva_golden_has_act(&g, "visual.trunk.head"));
    ck_assert(!eva_golden_has_act(&g, "visual.trunk.norm"));
    float *d = NULL;
    int nd;
    int64_t sh[4];
    ck_assert_int_eq(eva_golden_act_shape(&g, "visual.trunk.head", &nd, sh), EVA_OK);
    ck_assert_int_eq(nd, 2);
    ck_assert_int_eq(sh[1], 3);
    ck_assert_int_eq(eva_golden_read_act(&g, "image_features", &d, &nd, sh), EVA_OK); /* f64 file type */
    ck_assert(d[0] == 6.0f && d[5] == 1.0f);
    free(d);
    ck_assert_int_eq(eva_golden_read_act(&g, "nope", &d, &nd, sh), EVA_ERR_FORMAT);
    ck_assert_ptr_null(d);
    char w[1200];
    ck_assert_int_eq(eva_golden_weights_path(&g, w, sizeof w), EVA_OK);
    ck_assert_str_eq(w, tpath("w.safetensors"));
    /* pixel/ids checks against a config */
    ck_assert_int_eq(eva_inputs_check_pixels(&g.inputs, 4, p), EVA_OK);
    ck_assert_int_eq(eva_inputs_check_pixels(&g.inputs, 8, p), EVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "[2,3,4,4]"));
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "[2,3,8,8]"));
    ck_assert_int_eq(eva_inputs_check_ids(&g.inputs, 5, 99, p), EVA_OK);
    ck_assert_int_eq(eva_inputs_check_ids(&g.inputs, 5, 98, p), EVA_ERR_INVALID_ARG); /* id 98 */
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "[2,4]"));
    ck_assert_int_eq(eva_inputs_check_ids(&g.inputs, 77, 1000, p), EVA_ERR_SHAPE);
    eva_golden_close(&g);
    eva_golden_close(&g); /* idempotent */
    rm_tmp();
}

START_TEST(golden_vlen_strings) { read_golden_variant(1); }
END_TEST

START_TEST(golden_fixed_strings) { read_golden_variant(0); }
END_TEST

START_TEST(golden_schema_checked) {
    make_tmp();
    eva_golden g;
    write_golden(tpath("a.h5"), 1, "evabench-golden/2");
    ck_assert_int_eq(eva_golden_open(&g, tpath("a.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "evabench-golden/2"));
    write_golden(tpath("b.h5"), 1, NULL);
    ck_assert_int_eq(eva_golden_open(&g, tpath("b.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "schema"));
    rm_tmp();
}
END_TEST

START_TEST(missing_and_not_hdf5) {
    make_tmp();
    eva_inputs in;
    eva_golden g;
    ck_assert_int_eq(eva_inputs_read(&in, tpath("none.h5")), EVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "none.h5"));
    ck_assert_int_eq(eva_golden_open(&g, tpath("none.h5")), EVA_ERR_IO);
    FILE *f = fopen(tpath("text.h5"), "w");
    fputs("hello\n", f);
    fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("text.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "text.h5"));
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "not an HDF5"));
    ck_assert_int_eq(eva_inputs_read(&in, tmpdir), EVA_ERR_IO); /* a folder */
    rm_tmp();
}
END_TEST

START_TEST(inputs_types_and_ranges) {
    make_tmp();
    eva_inputs in;
    hsize_t d2[2] = {2, 3};
    /* int32 ids */
    hid_t f = H5Fcreate(tpath("i32.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int32_t i32[6] = {0, 1, 2, 3, 4, 2147483647};
    dset(f, "/inputs/input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, d2, i32);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("i32.h5")), EVA_OK);
    ck_assert_ptr_null(in.pixels);
    ck_assert_int_eq(in.ids[5], 2147483647);
    eva_inputs_free(&in);
    /* int64 beyond int32 */
    f = H5Fcreate(tpath("i64.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int64_t i64[6] = {0, 1, 2, 3, -((int64_t)1 << 33), 5};
    dset(f, "/inputs/input_ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, d2, i64);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("i64.h5")), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "[1,1]"));
    ck_assert_ptr_null(in.ids);
    /* float ids, int pixels, wrong rank, no /inputs */
    f = H5Fcreate(tpath("bad.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    float fl[6] = {0};
    dset(f, "/inputs/input_ids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, fl);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("bad.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/inputs/input_ids"));
    f = H5Fcreate(tpath("rank.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    dset(f, "/inputs/pixel_values", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, fl);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("rank.h5")), EVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "rank 2"));
    f = H5Fcreate(tpath("pint.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d4[4] = {1, 3, 1, 2};
    dset(f, "/inputs/pixel_values", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, d4, i32);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("pint.h5")), EVA_ERR_FORMAT);
    f = H5Fcreate(tpath("noin.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    dset(f, "/other", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, fl);
    H5Fclose(f);
    ck_assert_int_eq(eva_inputs_read(&in, tpath("noin.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/inputs"));
    rm_tmp();
}
END_TEST

START_TEST(declared_size_is_capped) {
    make_tmp();
    /* a chunked dataset declaring ~1 PB: refused before any allocation */
    hid_t f = H5Fcreate(tpath("big.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {(hsize_t)1 << 30, 3, 1024, 1024}, chunk[4] = {1, 3, 16, 16};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, "/inputs/pixel_values", H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Fclose(f);
    eva_inputs in;
    ck_assert_int_eq(eva_inputs_read(&in, tpath("big.h5")), EVA_ERR_NOMEM);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "too large"));
    rm_tmp();
}
END_TEST

START_TEST(acts_members_must_be_datasets) {
    make_tmp();
    const char *p = tpath("g.h5");
    write_golden(p, 1, EVA_GOLDEN_SCHEMA);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t grp = H5Gcreate2(f, "/acts/a_group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(grp);
    H5Fclose(f);
    eva_golden g;
    ck_assert_int_eq(eva_golden_open(&g, p), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/acts/a_group"));
    /* a soft link is refused too */
    write_golden(p, 1, EVA_GOLDEN_SCHEMA);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Lcreate_soft("/inputs/pixel_values", f, "/acts/link", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    ck_assert_int_eq(eva_golden_open(&g, p), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "link"));
    rm_tmp();
}
END_TEST

START_TEST(writer_round_trip) {
    make_tmp();
    eva_h5out o;
    const char *p = tpath("out.h5");
    ck_assert_int_eq(eva_h5out_create(&o, p), EVA_OK);
    float a[6] = {1.5f, -2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    ck_assert_int_eq(eva_h5out_write(&o, "image_embeds", a, 2, sh), EVA_OK);
    ck_assert_int_eq(eva_h5out_attr(&o, "generator", "evabench test"), EVA_OK);
    ck_assert_int_eq(eva_h5out_attr(&o, "empty", ""), EVA_OK);
    ck_assert_int_eq(eva_h5out_write(&o, "image_embeds", a, 2, sh), EVA_ERR_IO); /* exists */
    ck_assert_int_eq(eva_h5out_close(&o), EVA_OK);
    ck_assert_int_eq(eva_h5out_close(&o), EVA_OK);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "image_embeds", H5P_DEFAULT);
    hid_t ty = H5Dget_type(d);
    ck_assert(H5Tequal(ty, H5T_IEEE_F32LE) > 0);
    float b[6];
    H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    H5Tclose(ty);
    H5Dclose(d);
    H5Fclose(f);
    ck_assert_int_eq(eva_h5out_create(&o, tpath("no/such/dir/out.h5")), EVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "no/such/dir/out.h5"));
    rm_tmp();
}
END_TEST

static const char *repo_file(const char *rel) {
    static char buf[2][1024];
    static int k;
    k ^= 1;
    const char *d = getenv("EVA_SOURCE_DIR");
    snprintf(buf[k], sizeof buf[k], "%s/%s", d && *d ? d : EVA_SOURCE_DIR, rel);
    return buf[k];
}

/* The guarded reader: a file that crashes libhdf5 and one that hangs it become EVA_ERR_FORMAT
 * with a message naming the file; the unbacked fill-value dataset is refused from its declared
 * shape (with a config) or from its stored size (without one), before anything is read. */
START_TEST(guarded_reader) {
    eva_golden g;
    eva_inputs in;
    const char *crash = repo_file("tests/data/hostile_h5/fz_vlen_attr_memcpy_overlap.h5");
    ck_assert_int_eq(eva_golden_open(&g, crash), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "libhdf5 crashed reading this file"));
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "fz_vlen_attr_memcpy_overlap.h5"));
    setenv("EVABENCH_H5_TIMEOUT", "2", 1);
    ck_assert_int_eq(eva_golden_open(&g, repo_file("tests/data/hostile_h5/fz_hang_a.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "timed out"));
    unsetenv("EVABENCH_H5_TIMEOUT");
    const char *fill = repo_file("tests/data/hostile_h5/fill_value.h5");
    eva_config cfg;
    ck_assert_int_eq(eva_config_find(&cfg, "EVA02-CLIP-B-16"), EVA_OK);
    ck_assert_int_eq(eva_inputs_read_for(&in, fill, &cfg), EVA_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "[1,3,9459,9459]"));
    ck_assert_int_eq(eva_inputs_read(&in, fill), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "stores only 0 bytes"));
    ck_assert_int_eq(eva_inputs_read(&in, repo_file("tests/data/hostile_h5/external.h5")), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "external files"));
}
END_TEST

/* The in-memory (fuzzing) entry gives what the guarded path gives. */
START_TEST(file_image_equals_guarded) {
    const char *p = repo_file("golden/tiny/eva02.h5");
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    eva_golden a, b;
    ck_assert_msg(eva_golden_open(&a, p) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_golden_open_image(&b, buf, (size_t)n, p, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(a.n_acts, b.n_acts);
    ck_assert_int_gt(a.n_acts, 10);
    ck_assert_str_eq(a.config_json, b.config_json);
    for (int i = 0; i < a.n_acts; i++) {
        float *x, *y;
        int na, nb;
        int64_t sa[4], sb[4];
        ck_assert_str_eq(a.acts[i], b.acts[i]);
        ck_assert_int_eq(eva_golden_read_act(&a, a.acts[i], &x, &na, sa), EVA_OK);
        ck_assert_int_eq(eva_golden_read_act(&b, b.acts[i], &y, &nb, sb), EVA_OK);
        ck_assert_int_eq(na, nb);
        int64_t cnt = 1;
        for (int d = 0; d < na; d++) {
            ck_assert_int_eq(sa[d], sb[d]);
            cnt *= sa[d];
        }
        ck_assert(memcmp(x, y, (size_t)cnt * sizeof(float)) == 0);
        free(x);
        free(y);
    }
    eva_golden_close(&a);
    eva_golden_close(&b);
    free(buf);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("golden_io");
    TCase *tc = tcase_create("golden_io");
    tcase_add_test(tc, golden_vlen_strings);
    tcase_add_test(tc, golden_fixed_strings);
    tcase_add_test(tc, golden_schema_checked);
    tcase_add_test(tc, missing_and_not_hdf5);
    tcase_add_test(tc, inputs_types_and_ranges);
    tcase_add_test(tc, declared_size_is_capped);
    tcase_add_test(tc, acts_members_must_be_datasets);
    tcase_add_test(tc, writer_round_trip);
    tcase_add_test(tc, guarded_reader);
    tcase_add_test(tc, file_image_equals_guarded);
    suite_add_tcase(s, tc);
        return s;
}
