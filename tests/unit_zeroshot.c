/* unit_zeroshot.c: the zero-shot pieces (zeroshot.h) and parity with open_clip's own
 * zero-shot pipeline on the committed parity data (golden/zeroshot/, made by
 * golden/make_zeroshot_data.py from open_clip's build_zero_shot_classifier, its eval transform and
 * torchvision's ImageFolder, float64).
 *
 * Parity acceptance, per tiny model: top-1 identical for every image, top-5 identical
 * (same five classes in the same order) for >= 95 % of images, every logit within 1e-3.
 * The 80,000-prompt check (1000 ImageNet names x 80 templates through the tokenizer and the tiny
 * eva02 text tower, compared with open_clip's classifier) is the test case tagged "prompts80k", which
 * ctest runs on its own (cmake/tests.cmake): in full as `full_zeroshot_prompts_80000` (label full,
 * normal build: `make test-full`; about 40-70 s on 2 cores), and on the first 100 classes as
 * `unit_zeroshot_prompts_8000_sanitizer` in the sanitizer build of `make test`.
 * EVA_ZS_PROMPTS=N (prompts, rounded down to whole classes) limits it; unset or "all": all.
 */
#include <check.h>

#include "check_main.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_select.h"
#include "zeroshot.h"

static const char *src_dir(void) {
    const char *s = getenv("EVA_SOURCE_DIR");
    return s && *s ? s : EVA_SOURCE_DIR;
}

/* ---- SHA-256 --------------------------------------------------------------------------------- */

START_TEST(sha256_nist_vectors) {
    char hex[65];
    eva_sha256_hex(hex, "", 0);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    eva_sha256_hex(hex, "abc", 3);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    eva_sha256_hex(hex, m, strlen(m));
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces */
    eva_sha256_ctx c;
    uint8_t d[32];
    char buf[1000];
    memset(buf, 'a', sizeof buf);
    eva_sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = step < left ? step : left;
        if (n > sizeof buf) n = sizeof buf;
        eva_sha256_update(&c, buf, n);
        left -= n;
        step = step * 7 % 997 + 1;
    }
    eva_sha256_final(&c, d);
    static const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(want + 2 * i, "%2x", &v);
        ck_assert_uint_eq(d[i], v);
    }
    /* lengths around the padding boundary: 55, 56, 63, 64, 65 bytes, chunked vs whole */
    for (size_t n = 50; n < 130; n++) {
        char whole[65], part[65];
        eva_sha256_hex(whole, buf, n);
        eva_sha256_init(&c);
        eva_sha256_update(&c, buf, n / 3);
        eva_sha256_update(&c, buf, n - n / 3);
        eva_sha256_final(&c, d);
        static const char dg[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) part[2 * i] = dg[d[i] >> 4], part[2 * i + 1] = dg[d[i] & 15];
        part[64] = 0;
        ck_assert_str_eq(whole, part);
    }
}
END_TEST

START_TEST(sha256_file_matches_sha256sum) {
    char path[1024], hex[65], cmd[1200], line[200];
    snprintf(path, sizeof path, "%s/golden/zeroshot/eva02.safetensors", src_dir());
    ck_assert_int_eq(eva_sha256_file(hex, path), EVA_OK);
    snprintf(cmd, sizeof cmd, "sha256sum '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (p && fgets(line, sizeof line, p)) {
        line[64] = 0;
        ck_assert_str_eq(hex, line);
    }
    if (p) pclose(p);
    ck_assert_int_eq(eva_sha256_file(hex, "/nonexistent/file"), EVA_ERR_IO);
}
END_TEST

/* ---- texts ----------------------------------------------------------------------------------- */

START_TEST(builtin_protocol_texts) {
    eva_zs_list l;
    ck_assert_int_eq(eva_zs_builtin(&l, "imagenet_classnames.txt"), EVA_OK);
    ck_assert_int_eq(l.n, 1000);
    ck_assert_str_eq(l.s[0], "tench");
    ck_assert_str_eq(l.s[1], "goldfish");
    ck_assert_str_eq(l.s[999], "toilet paper");
    ck_assert_str_eq(l.s[657], "missile"); /* the known duplicates of the curated list */
    ck_assert_str_eq(l.s[744], "missile");
    ck_assert_str_eq(l.s[836], "sunglasses");
    ck_assert_str_eq(l.s[837], "sunglasses");
    eva_zs_list_free(&l);
    const char *name;
    ck_assert_int_eq(eva_zs_templates_load(&l, "openai", &name), EVA_OK);
    ck_assert_int_eq(l.n, 80);
    ck_assert_str_eq(l.s[0], "a bad photo of a {}.");
    ck_assert_str_eq(l.s[79], "a tattoo of the {}.");
    eva_zs_list_free(&l);
    ck_assert_int_eq(eva_zs_templates_load(&l, "simple", &name), EVA_OK);
    ck_assert_int_eq(l.n, 7);
    ck_assert_str_eq(l.s[0], "itap of a {}.");
    ck_assert_str_eq(l.s[6], "a photo of the small {}.");
    eva_zs_list_free(&l);
    ck_assert_int_eq(eva_zs_templates_load(&l, "/nonexistent/templates.txt", &name), EVA_ERR_IO);
}
END_TEST

START_TEST(lists_and_templates) {
    eva_zs_list l;
    const char *t = "  a b \r\n\n\t c\t\r\nlast";
    ck_assert_int_eq(eva_zs_list_from_text(&l, t, strlen(t), "x"), EVA_OK);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.s[0], "a b");
    ck_assert_str_eq(l.s[1], "c");
    ck_assert_str_eq(l.s[2], "last");
    eva_zs_list_free(&l);
    ck_assert_int_eq(eva_zs_list_from_text(&l, "a\0b", 3, "x"), EVA_ERR_FORMAT);
    ck_assert_int_eq(eva_zs_list_from_csv(&l, " cat, dog ,tabby cat", "--labels"), EVA_OK);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.s[1], "dog");
    ck_assert_str_eq(l.s[2], "tabby cat");
    eva_zs_list_free(&l);
    ck_assert_int_eq(eva_zs_list_from_csv(&l, "cat,,dog", "--labels"), EVA_ERR_INVALID_ARG);
    ck_assert_int_eq(eva_zs_list_from_csv(&l, "", "--labels"), EVA_ERR_INVALID_ARG);
    char *s;
    ck_assert_int_eq(eva_zs_fill_template(&s, "a photo of a {}.", "tench"), EVA_OK);
    ck_assert_str_eq(s, "a photo of a tench.");
    free(s);
    ck_assert_int_eq(eva_zs_fill_template(&s, "{c} and {} {", "x"), EVA_OK);
    ck_assert_str_eq(s, "x and x {");
    free(s);
    /* a template file without a slot is refused, naming the line */
    char dir[] = "/tmp/eva_zs_XXXXXX", p[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/t.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("a photo of {}.\nno slot here\n", f);
    fclose(f);
    const char *name;
    ck_assert_int_eq(eva_zs_templates_load(&l, p, &name), EVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "template 2"));
    f = fopen(p, "w");
    fclose(f);
    ck_assert_int_eq(eva_zs_templates_load(&l, p, &name), EVA_ERR_INVALID_ARG);
    unlink(p);
    rmdir(dir);
    /* the hash is over the text: equal lists, equal hash */
    eva_zs_list a = {0}, b = {0};
    char ha[65], hb[65];
    eva_zs_list_from_csv(&a, "x,y", "a");
    eva_zs_list_from_text(&b, "x\ny\n", 4, "b");
    eva_zs_list_hash(ha, &a);
    eva_zs_list_hash(hb, &b);
    ck_assert_str_eq(ha, hb);
    eva_sha256_hex(hb, "x\ny\n", 4);
    ck_assert_str_eq(ha, hb);
    eva_zs_list_free(&a);
    eva_zs_list_free(&b);
}
END_TEST

/* ---- ranking and metrics --------------------------------------------------------------------- */

START_TEST(topk_ties_and_nan) {
    float l[7] = {1.0f, 3.0f, 3.0f, NAN, -2.0f, 5.0f, 3.0f};
    int idx[7];
    eva_zs_topk(idx, l, 7, 5);
    int want[5] = {5, 1, 2, 6, 0};
    for (int i = 0; i < 5; i++) ck_assert_int_eq(idx[i], want[i]);
    eva_zs_topk(idx, l, 7, 7);
    ck_assert_int_eq(idx[5], 4);
    ck_assert_int_eq(idx[6], 3); /* NaN last */
    double p[3];
    float lg[3] = {100.0f, 100.0f, 0.0f};
    eva_zs_softmax(p, lg, 3);
    ck_assert_double_eq_tol(p[0], 0.5, 1e-12);
    ck_assert_double_eq_tol(p[0] + p[1] + p[2], 1.0, 1e-12);
    float f[2] = {3, 4}, W[4] = {1, 0, 0, 1}, out[2];
    eva_zs_logits(out, f, W, 2, 2);
    ck_assert_float_eq_tol(out[0], 60.0f, 1e-4f);
    ck_assert_float_eq_tol(out[1], 80.0f, 1e-4f);
}
END_TEST

START_TEST(metrics_clip_benchmark) {
    eva_zs_metrics m;
    ck_assert_int_eq(eva_zs_metrics_init(&m, 6), EVA_OK);
    int t[5];
    /* class 0: 3 images, 2 right; class 1: 1 image, wrong but in top-5; classes 2..5: none */
    t[0] = 0, t[1] = 1, t[2] = 2, t[3] = 3, t[4] = 4;
    eva_zs_metrics_add(&m, 0, t, 5);
    eva_zs_metrics_add(&m, 0, t, 5);
    t[0] = 5, t[1] = 4, t[2] = 3, t[3] = 2, t[4] = 1;
    eva_zs_metrics_add(&m, 0, t, 5);
    eva_zs_metrics_add(&m, 1, t, 5);
    ck_assert_double_eq_tol(eva_zs_acc1(&m), 0.5, 1e-12);
    ck_assert_double_eq_tol(eva_zs_acc5(&m), 0.75, 1e-12);
    ck_assert_double_eq_tol(eva_zs_mean_per_class_recall(&m), (2.0 / 3 + 0.0) / 2, 1e-12);
    eva_zs_metrics_free(&m);
    ck_assert_int_eq(eva_zs_metrics_init(&m, 3), EVA_OK);
    eva_zs_metrics_add(&m, 2, t, 3);
    ck_assert(isnan(eva_zs_acc5(&m))); /* fewer than 5 classes: NaN, as CLIP_benchmark */
    eva_zs_metrics_free(&m);
}
END_TEST

START_TEST(published_numbers) {
    const eva_zs_published *p = eva_zs_published_find("eva02-clip-b-16");
    ck_assert_ptr_nonnull(p);
    ck_assert_double_eq(p->card_acc1, 74.7);
    ck_assert_ptr_eq(eva_zs_published_find("EVA02-E-14-plus"), eva_zs_published_find("EVA02-CLIP-bigE-14-plus"));
    ck_assert_double_eq(eva_zs_published_find("EVA02-E-14-plus")->card_acc1, 82.0);
    ck_assert_double_eq(eva_zs_published_find("EVA01-CLIP-g-14")->card_acc5, 95.51);
    ck_assert_ptr_null(eva_zs_published_find("EVA-CLIP-8B")); /* no IN-1K number on its card */
    ck_assert_ptr_null(eva_zs_published_find("tiny-zs-eva02"));
}
END_TEST

/* ---- dataset --------------------------------------------------------------------------------- */

/* Reads the path column of an upstream predictions CSV (no quoting in the parity data). */
static int read_csv(const char *path, char paths[][512], int rows[][7], int max) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing: run golden/make_zeroshot_data.py", path);
    char line[512];
    int n = 0;
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "path,label,top1,top2,top3,top4,top5\n");
    while (n < max && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ',');
        ck_assert_ptr_nonnull(c);
        *c = 0;
        snprintf(paths[n], 512, "%s", line);
        ck_assert_int_eq(sscanf(c + 1, "%d,%d,%d,%d,%d,%d", &rows[n][0], &rows[n][1], &rows[n][2], &rows[n][3],
                                &rows[n][4], &rows[n][5]), 6);
        n++;
    }
    fclose(f);
    return n;
}

START_TEST(scan_matches_imagefolder) {
    char dir[1024], csv[1024];
    snprintf(dir, sizeof dir, "%s/golden/zeroshot/images", src_dir());
    snprintf(csv, sizeof csv, "%s/golden/zeroshot/eva02.predictions.csv", src_dir());
    eva_zs_dataset ds;
    ck_assert_int_eq(eva_zs_scan(&ds, dir, 0), EVA_OK);
    static char paths[64][512];
    static int rows[64][7];
    int n = read_csv(csv, paths, rows, 64);
    ck_assert_int_eq(ds.n_classes, 8);
    ck_assert_int_eq((int)ds.n_items, n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(ds.items[i].path, paths[i]);
        ck_assert_int_eq(ds.items[i].label, rows[i][0]);
    }
    ck_assert(!eva_zs_classes_are_wnids(&ds));
    /* round-robin limit: 10 of 8 classes x 3 -> first image of every class + second of classes 0, 1 */
    eva_zs_dataset_limit(&ds, 10);
    ck_assert_int_eq((int)ds.n_items, 10);
    int per[8] = {0};
    for (int i = 0; i < 10; i++) per[ds.items[i].label]++;
    for (int c = 0; c < 8; c++) ck_assert_int_eq(per[c], c < 2 ? 2 : 1);
    eva_zs_dataset_free(&ds);
    ck_assert_int_eq(eva_zs_scan(&ds, "/nonexistent/folder", 0), EVA_ERR_IO);
    /* a folder without class subfolders */
    char tmp[] = "/tmp/eva_zs_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    ck_assert_int_eq(eva_zs_scan(&ds, tmp, 0), EVA_ERR_INVALID_ARG);
    rmdir(tmp);
}
END_TEST

/* Writes text to path (a test fixture). */
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(dataset_type_and_class_names) {
    char dir[1024], src[1200];
    snprintf(dir, sizeof dir, "%s/golden/zeroshot/images", src_dir());
    eva_zs_dataset ds;
    eva_zs_list names = {0};
    bool imagenet = true;
    /* auto: 8 folders that are not WordNet ids -> folder; imagenet1k refuses 8 folders */
    ck_assert_int_eq(eva_zs_dataset_open(&ds, &imagenet, dir, EVA_ZS_AUTO), EVA_OK);
    ck_assert(!imagenet);
    ck_assert_int_eq(ds.n_classes, 8);
    /* folder default: DIR/classnames.txt, in folder order */
    ck_assert_int_eq(eva_zs_class_names(&names, src, sizeof src, &ds, NULL, false), EVA_OK);
    ck_assert_int_eq(names.n, 8);
    ck_assert_str_eq(names.s[3], "golden retriever");
    ck_assert_ptr_nonnull(strstr(src, "classnames.txt"));
    eva_zs_list_free(&names);
    /* imagenet names (1000) on 8 folders, an empty file, a file of 2: refused, naming the source */
    ck_assert_int_eq(eva_zs_class_names(&names, src, sizeof src, &ds, NULL, true), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "1000 class names"));
    eva_zs_list_free(&names);
    char tmp[] = "/tmp/eva_zs_XXXXXX", p[600];
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(p, sizeof p, "%s/names.txt", tmp);
    write_text(p, "");
    ck_assert_int_eq(eva_zs_class_names(&names, src, sizeof src, &ds, p, false), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "empty class list"));
    eva_zs_list_free(&names);
    write_text(p, "a\nb\n");
    ck_assert_int_eq(eva_zs_class_names(&names, src, sizeof src, &ds, p, false), EVA_ERR_INVALID_ARG);
    ck_assert_str_eq(src, p);
    eva_zs_list_free(&names);
    unlink(p);
    eva_zs_dataset_free(&ds);
    ck_assert_int_eq(eva_zs_dataset_open(&ds, &imagenet, dir, EVA_ZS_IMAGENET1K), EVA_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "found 8 folders"));
    eva_zs_dataset_free(&ds);
    /* no classnames.txt: the folder names */
    const char *sub[] = {"b_dog", "a_cat"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, sub[i]);
        ck_assert_int_eq(mkdir(p, 0700), 0);
        snprintf(p, sizeof p, "%s/%s/x.jpg", tmp, sub[i]);
        write_text(p, "x");
    }
    ck_assert_int_eq(eva_zs_dataset_open(&ds, &imagenet, tmp, EVA_ZS_FOLDER), EVA_OK);
    ck_assert_int_eq(eva_zs_class_names(&names, src, sizeof src, &ds, NULL, false), EVA_OK);
    ck_assert_int_eq(names.n, 2);
    ck_assert_str_eq(names.s[0], "a_cat");
    ck_assert_str_eq(names.s[1], "b_dog");
    ck_assert_str_eq(src, "class folder names");
    eva_zs_list_free(&names);
    eva_zs_dataset_free(&ds);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/x.jpg", tmp, sub[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", tmp, sub[i]);
        rmdir(p);
    }
    rmdir(tmp);
}
END_TEST

START_TEST(cache_roundtrip) {
    char dir[] = "/tmp/eva_zs_XXXXXX", path[512], key[65], other[65];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    eva_zs_cache_key(key, "w", "{}", "t", "c", "ref", "fp32");
    eva_zs_cache_key(other, "w", "{}", "t", "c", "ref", "bf16");
    ck_assert_str_ne(key, other);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    eva_zs_cache_path(path, sizeof path, sub, key);
    float W[6] = {1, 2, 3, 4, 5, 6}, R[6] = {0};
    ck_assert_int_eq(eva_zs_cache_load(R, path, key, 2, 3), EVA_ERR_IO);
    ck_assert_int_eq(eva_zs_cache_store(path, key, W, 2, 3, "m", "w", "openai", "ref", "fp32"), EVA_OK);
    ck_assert_int_eq(eva_zs_cache_load(R, path, key, 2, 3), EVA_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(R[i], W[i]);
    ck_assert_int_ne(eva_zs_cache_load(R, path, other, 2, 3), EVA_OK);
    ck_assert_int_ne(eva_zs_cache_load(R, path, key, 3, 2), EVA_OK);
    /* a corrupt cache file is refused, not trusted */
    FILE *f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    ck_assert_int_ne(eva_zs_cache_load(R, path, key, 2, 3), EVA_OK);
    unlink(path);
    snprintf(path, sizeof path, "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
    rmdir(dir);
}
END_TEST

/* ---- parity with open_clip ------------------------------------------------------------------- */

static double *read_h5(const char *path, const char *name, int *rows, int *cols) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "%s: cannot open", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no %s", path, name);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {1, 1};
    int nd = H5Sget_simple_extent_dims(s, dims, NULL);
    ck_assert(nd == 1 || nd == 2);
    double *buf = malloc(sizeof(double) * dims[0] * dims[1]);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    *rows = (int)dims[0];
    *cols = nd == 2 ? (int)dims[1] : 1;
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

static void parity_model(const char *name) {
    char w[1024], h5[1024], dir[1024], cn[1100];
    snprintf(w, sizeof w, "%s/golden/zeroshot/%s.safetensors", src_dir(), name);
    snprintf(h5, sizeof h5, "%s/golden/zeroshot/%s.h5", src_dir(), name);
    snprintf(dir, sizeof dir, "%s/golden/zeroshot/images", src_dir());
    snprintf(cn, sizeof cn, "%s/classnames.txt", dir);
    eva_zs_session s;
    ck_assert_msg(eva_zs_session_config(&s, w, NULL, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_zs_session_open(&s, w, EVA_IMPL_REF, EVA_PREC_FP32) == EVA_OK, "%s", eva_last_error());
    eva_zs_list classes, templates;
    const char *tn;
    ck_assert_int_eq(eva_zs_list_from_file(&classes, cn), EVA_OK);
    ck_assert_int_eq(eva_zs_templates_load(&templates, "openai", &tn), EVA_OK);
    const int C = classes.n, E = s.cfg.embed_dim, S = s.cfg.vision.image_size;
    float *W = malloc(sizeof(float) * C * E);
    eva_zs_text_encoder enc;
    eva_zs_session_text_encoder(&s, &enc);
    ck_assert_msg(eva_zs_build_classifier(W, &classes, &templates, &enc) == EVA_OK, "%s", eva_last_error());
    int r, c;
    double *up_w = read_h5(h5, "classifier", &r, &c);
    ck_assert_int_eq(r, C);
    ck_assert_int_eq(c, E);
    double dw = 0;
    for (int i = 0; i < C * E; i++) dw = fmax(dw, fabs(W[i] - up_w[i]));
    double *up_l = read_h5(h5, "logits", &r, &c);
    double *up_t = read_h5(h5, "top5", &r, &c);
    eva_zs_dataset ds;
    ck_assert_int_eq(eva_zs_scan(&ds, dir, 0), EVA_OK);
    ck_assert_int_eq((int)ds.n_items, r);
    float *pix = malloc(sizeof(float) * 3 * S * S), *feat = malloc(sizeof(float) * E), *lg = malloc(sizeof(float) * C);
    int top1_same = 0, top5_same = 0;
    double dl = 0;
    for (int i = 0; i < r; i++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, ds.items[i].path);
        ck_assert_msg(eva_zs_load_image_folder_style(pix, p, S) == EVA_OK, "%s", eva_last_error());
        ck_assert_int_eq(eva_backend_encode_image(&s.be, feat, pix, 1, NULL), EVA_OK);
        eva_zs_logits(lg, feat, W, C, E);
        int top[5];
        eva_zs_topk(top, lg, C, 5);
        for (int k = 0; k < C; k++) dl = fmax(dl, fabs(lg[k] - up_l[i * C + k]));
        top1_same += top[0] == (int)up_t[i * 5];
        int same = 1;
        for (int k = 0; k < 5; k++) same &= top[k] == (int)up_t[i * 5 + k];
        top5_same += same;
    }
    printf("zeroshot parity %-6s: %d images, top-1 identical %d/%d, top-5 identical %d/%d (%.1f%%), max |logit "
           "diff| %.3g, max |classifier diff| %.3g\n", name, r, top1_same, r, top5_same, r, 100.0 * top5_same / r,
           dl, dw);
    fflush(stdout);
    ck_assert_int_eq(top1_same, r);
    ck_assert_int_ge(top5_same * 100, 95 * r);
    ck_assert_double_le(dl, 1e-3);
    ck_assert_double_le(dw, 1e-5);
    free(pix), free(feat), free(lg), free(W), free(up_w), free(up_l), free(up_t);
    eva_zs_dataset_free(&ds);
    eva_zs_list_free(&classes);
    eva_zs_list_free(&templates);
    eva_zs_session_close(&s);
}

START_TEST(parity_eva02) { parity_model("eva02"); }
END_TEST
START_TEST(parity_eva01) { parity_model("eva01"); }
END_TEST
START_TEST(parity_8b) { parity_model("8b"); }
END_TEST

/* The 80,000 ImageNet prompts through the tokenizer and the tiny eva02 text tower, compared with
 * open_clip's classifier for the same model. */
START_TEST(imagenet_80k_prompts) {
    char w[1024], h5[1024];
    snprintf(w, sizeof w, "%s/golden/zeroshot/eva02.safetensors", src_dir());
    snprintf(h5, sizeof h5, "%s/golden/zeroshot/eva02.imagenet_classifier.h5", src_dir());
    eva_zs_session s;
    ck_assert_int_eq(eva_zs_session_config(&s, w, NULL, NULL), EVA_OK);
    ck_assert_msg(eva_zs_session_open(&s, w, EVA_IMPL_REF, EVA_PREC_FP32) == EVA_OK, "%s", eva_last_error());
    eva_zs_list classes, templates;
    const char *tn;
    ck_assert_int_eq(eva_zs_builtin(&classes, "imagenet_classnames.txt"), EVA_OK);
    ck_assert_int_eq(eva_zs_templates_load(&templates, "openai", &tn), EVA_OK);
    const char *lim = getenv("EVA_ZS_PROMPTS");
    int C = classes.n;
    if (lim && strcmp(lim, "all") && atoi(lim) > 0 && atoi(lim) / templates.n < C)
        C = atoi(lim) / templates.n > 0 ? atoi(lim) / templates.n : 1;
    int saved = classes.n;
    classes.n = C;
    const int E = s.cfg.embed_dim;
    float *W = malloc(sizeof(float) * C * E);
    eva_zs_text_encoder enc;
    eva_zs_session_text_encoder(&s, &enc);
    double t0 = eva_zs_now();
    ck_assert_msg(eva_zs_build_classifier(W, &classes, &templates, &enc) == EVA_OK, "%s", eva_last_error());
    double t = eva_zs_now() - t0;
    classes.n = saved;
    int r, c;
    double *up = read_h5(h5, "classifier", &r, &c);
    ck_assert_int_eq(r, 1000);
    ck_assert_int_eq(c, E);
    double d = 0;
    for (int i = 0; i < C * E; i++) d = fmax(d, fabs(W[i] - up[i]));
    printf("zeroshot 80k prompts: %d classes x %d templates = %d prompts through tokenizer + tiny eva02 text tower in "
           "%.2f s; max |classifier diff| vs open_clip %.3g\n", C, templates.n, C * templates.n, t, d);
    fflush(stdout);
    ck_assert_double_le(d, 1e-5);
    free(W);
    free(up);
    eva_zs_list_free(&classes);
    eva_zs_list_free(&templates);
    eva_zs_session_close(&s);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("zeroshot");
    TCase *tc = tcase_create("unit");
    tcase_add_test(tc, sha256_nist_vectors);
    tcase_add_test(tc, sha256_file_matches_sha256sum);
    tcase_add_test(tc, builtin_protocol_texts);
    tcase_add_test(tc, lists_and_templates);
    tcase_add_test(tc, topk_ties_and_nan);
    tcase_add_test(tc, metrics_clip_benchmark);
    tcase_add_test(tc, published_numbers);
    tcase_add_test(tc, scan_matches_imagefolder);
    tcase_add_test(tc, dataset_type_and_class_names);
    tcase_add_test(tc, cache_roundtrip);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("parity");
    tcase_set_timeout(tp, 1200);
    tcase_add_test(tp, parity_eva02);
    tcase_add_test(tp, parity_eva01);
    tcase_add_test(tp, parity_8b);
    suite_add_tcase(s, tp);
    TCase *t80 = tcase_create("prompts80k");
    tcase_set_tags(t80, "prompts80k"); /* ctest selects it with CK_INCLUDE_TAGS / CK_EXCLUDE_TAGS */
    tcase_set_timeout(t80, 1200);
    tcase_add_test(t80, imagenet_80k_prompts);
    suite_add_tcase(s, t80);
        return s;
}
