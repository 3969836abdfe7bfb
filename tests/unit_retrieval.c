/* unit_retrieval.c: the retrieval pieces (harness/retrieval.h) and parity with CLIP_benchmark's
 * zeroshot_retrieval on the committed parity data (golden/retrieval/, made by
 * golden/make_retrieval_data.py with clip-benchmark 1.6.2, float64 models).
 *
 * Parity acceptance, per tiny model (eva02, eva01, 8b) and layout (mscoco_captions, flickr30k, and
 * captions on the COCO pairs): every image_retrieval_recall@k and text_retrieval_recall@k for k in
 * 1, 2, 5, 10 equal to CLIP_benchmark's value (same hit count; the same float32 value), the
 * embeddings within 1e-5 of the float64 ones, and the top-10 lists equal to torch.topk's.
 */
#include <check.h>

#include "check_main.h"
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_select.h"
#include "retrieval.h"

static const char *src_dir(void) {
    const char *s = getenv("EVA_SOURCE_DIR");
    return s && *s ? s : EVA_SOURCE_DIR;
}

static void gpath(char *out, size_t cap, const char *rel) { snprintf(out, cap, "%s/golden/retrieval/%s", src_dir(), rel); }

static double *read_h5(const char *path, const char *name, int *rows, int *cols) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "%s: cannot open", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no %s", path, name);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {1, 1};
    int nd = H5Sget_simple_extent_dims(s, dims, NULL);
    double *buf = malloc(sizeof(double) * dims[0] * dims[1]);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    *rows = (int)dims[0];
    *cols = nd == 2 ? (int)dims[1] : 1;
    H5Sclose(s), H5Dclose(d), H5Fclose(f);
    return buf;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    ck_assert_msg(j != NULL, "%s: not JSON", path);
    return j;
}

/* ---- layouts ---------------------------------------------------------------------------------- */

START_TEST(layouts_match_clip_benchmark_order) {
    char root[1024], h5[1024];
    eva_rt_dataset ds;
    int r, c;
    gpath(root, sizeof root, "coco");
    ck_assert_msg(eva_rt_load(&ds, EVA_RT_MSCOCO, root, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(ds.n_images, 12);
    ck_assert_int_eq(ds.n_captions, 39);
    for (int i = 1; i < ds.n_images; i++) ck_assert_int_lt(ds.image_ids[i - 1], ds.image_ids[i]);
    ck_assert_str_eq(ds.images[0], "val2014/COCO_val2014_000000000003.png");
    ck_assert_str_eq(ds.captions[0], "Black and white line drawing of a bicycle.");
    gpath(h5, sizeof h5, "expected/eva02.mscoco_captions.h5");
    double *tii = read_h5(h5, "texts_image_index", &r, &c);
    ck_assert_int_eq(r, ds.n_captions);
    for (int t = 0; t < r; t++) ck_assert_int_eq(ds.caption_image[t], (int)tii[t]);
    free(tii);
    /* the captions layout of the same pairs: identical dataset */
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/captions.csv", root);
    eva_rt_dataset dc;
    ck_assert_msg(eva_rt_load(&dc, EVA_RT_CAPTIONS, root, csv) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(dc.n_images, ds.n_images);
    ck_assert_int_eq(dc.n_captions, ds.n_captions);
    for (int i = 0; i < ds.n_images; i++) ck_assert_str_eq(dc.images[i], ds.images[i]);
    for (int t = 0; t < ds.n_captions; t++) ck_assert_str_eq(dc.captions[t], ds.captions[t]);
    eva_rt_dataset_free(&dc);
    eva_rt_dataset_free(&ds);
    gpath(root, sizeof root, "flickr");
    ck_assert_msg(eva_rt_load(&ds, EVA_RT_FLICKR, root, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(ds.n_images, 11);
    ck_assert_int_eq(ds.n_captions, 33);
    ck_assert_str_eq(ds.images[0], "1000092795.jpg");
    ck_assert_str_eq(ds.captions[1], "An airplane, white and blue, flying over a field.");
    gpath(h5, sizeof h5, "expected/eva02.flickr30k.h5");
    tii = read_h5(h5, "texts_image_index", &r, &c);
    for (int t = 0; t < r; t++) ck_assert_int_eq(ds.caption_image[t], (int)tii[t]);
    free(tii);
    eva_rt_dataset_limit(&ds, 3);
    ck_assert_int_eq(ds.n_images, 3);
    ck_assert_int_eq(ds.n_captions, 10);
    eva_rt_dataset_free(&ds);
}
END_TEST

/* Writes text to dir/name. */
static void put(const char *dir, const char *name, const char *text) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Loading must fail with exit status 2 and a message holding every `want` fragment. */
static void expect_error(eva_rt_layout l, const char *root, const char *ann, const char *want1, const char *want2) {
    eva_rt_dataset ds;
    eva_status st = eva_rt_load(&ds, l, root, ann);
    ck_assert_msg(st != EVA_OK, "loaded %s", ann ? ann : root);
    ck_assert_int_eq(eva_status_exit_code(st), 2);
    ck_assert_msg(strstr(eva_last_error(), want1), "'%s' lacks '%s'", eva_last_error(), want1);
    if (want2) ck_assert_msg(strstr(eva_last_error(), want2), "'%s' lacks '%s'", eva_last_error(), want2);
    eva_clear_error();
}

START_TEST(bad_annotations_are_errors) {
    char dir[] = "/tmp/eva_rt_XXXXXX", p[1200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/val2014", dir);
    ck_assert_int_eq(mkdir(p, 0777), 0);
    put(dir, "val2014/a.jpg", "not an image");
    put(dir, "a.jpg", "not an image");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "coco_test_karpathy.json", "missing");
    put(dir, "coco_test_karpathy.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}],\n\"annotations\": [\n{\"image_id\": 1,}]}");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "coco_test_karpathy.json: line 3", "JSON");
    put(dir, "coco_test_karpathy.json", "{\"images\": [{\"id\": 1, \"file_name\": \"b.jpg\"}], \"annotations\": "
                                        "[{\"image_id\": 1, \"caption\": \"x\"}]}");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "val2014/b.jpg", "does not exist");
    put(dir, "coco_test_karpathy.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}, {\"id\": 2, "
                                        "\"file_name\": \"a.jpg\"}], \"annotations\": [{\"image_id\": 1, \"caption\": \"x\"}]}");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "image id 2", "no caption");
    put(dir, "coco_test_karpathy.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}], \"annotations\": []}");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "coco_test_karpathy.json", "no captions");
    put(dir, "coco_test_karpathy.json", "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}], \"annotations\": "
                                        "[{\"image_id\": 7, \"caption\": \"x\"}]}");
    expect_error(EVA_RT_MSCOCO, dir, NULL, "annotations[0]", "image_id 7");
    put(dir, "flickr30k_test_karpathy.txt", "image,caption\na.jpg,one, two\n\nb.png,three\n");
    expect_error(EVA_RT_FLICKR, dir, NULL, "flickr30k_test_karpathy.txt: line 4", ".jpg,");
    put(dir, "flickr30k_test_karpathy.txt", "image,caption\n");
    expect_error(EVA_RT_FLICKR, dir, NULL, "flickr30k_test_karpathy.txt", "no captions");
    put(dir, "flickr30k_test_karpathy.txt", "image,caption\nc.jpg,a cat\n");
    expect_error(EVA_RT_FLICKR, dir, NULL, "c.jpg", "does not exist");
    put(dir, "captions.csv", "path,caption\na.jpg,\"quoted, with comma\"\na.jpg,\"not closed\n");
    expect_error(EVA_RT_CAPTIONS, dir, NULL, "captions.csv: line 3", "not closed");
    put(dir, "captions.csv", "a.jpg,x,y\n");
    expect_error(EVA_RT_CAPTIONS, dir, NULL, "captions.csv: line 1", "3 fields");
    /* a valid CSV: quotes, "" escapes, a newline inside quotes, CRLF, first-appearance order */
    put(dir, "b.png", "x");
    put(dir, "captions.csv", "path,caption\r\nb.png,\"say \"\"hi\"\", twice\"\r\na.jpg,plain\r\nb.png,\"two\nlines\"\r\n");
    eva_rt_dataset ds;
    ck_assert_msg(eva_rt_load(&ds, EVA_RT_CAPTIONS, dir, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(ds.n_images, 2);
    ck_assert_str_eq(ds.images[0], "b.png");
    ck_assert_str_eq(ds.captions[0], "say \"hi\", twice");
    ck_assert_str_eq(ds.captions[1], "two\nlines");
    ck_assert_str_eq(ds.captions[2], "plain");
    ck_assert_int_eq(ds.caption_image[2], 1);
    eva_rt_dataset_free(&ds);
    const char *names[] = {"val2014/a.jpg", "a.jpg", "b.png", "coco_test_karpathy.json", "flickr30k_test_karpathy.txt",
                           "captions.csv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/val2014", dir);
    rmdir(p);
    rmdir(dir);
}
END_TEST

/* ---- ranking and metrics ---------------------------------------------------------------------- */

START_TEST(ranking_ties_and_recalls) {
    /* 3 images, 4 captions, E = 2; caption 3 ties between images 1 and 2 (lower index first) */
    const float img[] = {1, 0, 0, 1, 0, 1};
    const float txt[] = {1, 0, 0, 1, 0.6f, 0.8f, 0, 1};
    const int tii[] = {0, 1, 1, 2};
    int t2i[4 * 2], i2t[3 * 2];
    ck_assert_int_eq(eva_rt_rank(t2i, i2t, img, 3, txt, 4, 2, 2), EVA_OK);
    ck_assert_int_eq(t2i[0], 0);
    ck_assert_int_eq(t2i[2], 1);
    ck_assert_int_eq(t2i[3], 2); /* tie: 1 before 2 */
    ck_assert_int_eq(t2i[6], 1);
    ck_assert_int_eq(t2i[7], 2);
    ck_assert_int_eq(i2t[0], 0);
    ck_assert_int_eq(i2t[1], 2); /* image 0: captions 0 (1.0), 2 (0.6) */
    ck_assert_int_eq(i2t[2], 1);
    ck_assert_int_eq(i2t[3], 3); /* image 1: captions 1, 3 tie at 1.0 */
    eva_rt_metrics m;
    ck_assert_int_eq(eva_rt_parse_ks(&m, "2,1,2"), EVA_OK);
    ck_assert_int_eq(m.n_k, 2);
    eva_rt_recalls(&m, t2i, i2t, tii, 3, 4, 2);
    ck_assert_int_eq(m.t2i_hits[0], 3); /* @1: captions 0, 1, 2 (3 ties to image 1) */
    ck_assert_int_eq(m.t2i_hits[1], 4);
    ck_assert_int_eq(m.i2t_hits[0], 2); /* @1: images 0, 1 (image 2's best is caption 1, of image 1) */
    ck_assert_int_eq(m.i2t_hits[1], 3);
    ck_assert_double_eq(eva_rt_recall_value(1, 3), (double)(1.0f / 3.0f));
    ck_assert_int_ne(eva_rt_rank(t2i, i2t, img, 3, txt, 4, 2, 4), EVA_OK);
    ck_assert_int_ne(eva_rt_parse_ks(&m, "1,0"), EVA_OK);
    ck_assert_int_ne(eva_rt_parse_ks(&m, "5,x"), EVA_OK);
    eva_clear_error();
    ck_assert_double_eq(eva_rt_card_coco_t2i_r5("EVA02-CLIP-B-16"), 66.9);
    ck_assert_double_eq(eva_rt_card_coco_t2i_r5("eva02-e-14-plus"), 74.9);
    ck_assert(isnan(eva_rt_card_coco_t2i_r5("tiny")));
}
END_TEST

START_TEST(cache_roundtrip) {
    char dir[] = "/tmp/eva_rt_XXXXXX", path[1024], key[65], other[65];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    eva_rt_cache_key(key, "images", "w", "{}", "l", 0, 2, "ref", "fp32");
    eva_rt_cache_key(other, "images", "w", "{}", "l", 0, 3, "ref", "fp32");
    ck_assert_str_ne(key, other);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/c", dir);
    eva_rt_cache_path(path, sizeof path, sub, "images", key);
    float F[6] = {1, 2, 3, 4, 5, 6}, R[6] = {0};
    uint8_t ok[2] = {1, 0}, rok[2] = {9, 9};
    ck_assert_int_ne(eva_rt_cache_load(path, key, R, rok, 2, 3), EVA_OK);
    ck_assert_int_eq(eva_rt_cache_store(path, key, F, ok, 2, 3), EVA_OK);
    ck_assert_int_eq(eva_rt_cache_load(path, key, R, rok, 2, 3), EVA_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(R[i], F[i]);
    ck_assert_int_eq(rok[0], 1);
    ck_assert_int_eq(rok[1], 0);
    ck_assert_int_ne(eva_rt_cache_load(path, other, R, rok, 2, 3), EVA_OK);
    ck_assert_int_ne(eva_rt_cache_load(path, key, R, rok, 3, 2), EVA_OK);
    eva_clear_error();
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}
END_TEST

START_TEST(shard_ranges_single_process) {
    eva_shard sh = {0, 4, 0, false};
    int64_t lo, hi, next = 0;
    for (int r = 0; r < 4; r++) { /* 10 items over 4 ranks: 3, 3, 2, 2, contiguous */
        sh.rank = r;
        eva_shard_range(&sh, 10, &lo, &hi);
        ck_assert_int_eq(lo, next);
        ck_assert_int_eq(hi - lo, r < 2 ? 3 : 2);
        next = hi;
    }
    ck_assert_int_eq(next, 10);
    int argc = 1;
    char *args[] = {"x", NULL}, **argv = args;
    eva_shard one;
    ck_assert_int_eq(eva_shard_init(&one, &argc, &argv), EVA_OK); /* not under mpirun: rank 0 of 1 */
    ck_assert_int_eq(one.size, 1);
    ck_assert_int_eq(one.rank, 0);
    eva_shard_range(&one, 7, &lo, &hi);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 7);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0};
    ck_assert_int_eq(eva_shard_gather(&one, a, 3, b, 3, 2, 4, false), EVA_OK);
    for (int i = 0; i < 6; i++) ck_assert_float_eq(a[i], b[i]);
    ck_assert(eva_shard_all(&one, true));
    ck_assert(!eva_shard_all(&one, false));
    ck_assert_double_eq(eva_shard_sum(&one, 2.5), 2.5);
    ck_assert_int_eq(eva_shard_first_failure(&one, true), -1);
    ck_assert_int_eq(eva_shard_injected_failure(&one), EVA_OK);
    char *t = NULL;
    ck_assert_int_eq(eva_shard_gather_text(&one, "abc", &t), EVA_OK);
    ck_assert_str_eq(t, "abc");
    free(t);
    eva_shard_finalize(&one);
}
END_TEST

/* ---- parity with CLIP_benchmark ------------------------------------------------------------- */

static void parity(const char *model, const char *dataset, eva_rt_layout layout, const char *ann) {
    char w[1024], h5[1024], js[1024], root[1024], rel[256];
    snprintf(w, sizeof w, "%s/golden/zeroshot/%s.safetensors", src_dir(), model);
    snprintf(rel, sizeof rel, "expected/%s.%s.h5", model, dataset);
    gpath(h5, sizeof h5, rel);
    snprintf(rel, sizeof rel, "expected/%s.%s.json", model, dataset);
    gpath(js, sizeof js, rel);
    gpath(root, sizeof root, layout == EVA_RT_FLICKR ? "flickr" : "coco");
    eva_rt_dataset ds;
    ck_assert_msg(eva_rt_load(&ds, layout, root, ann) == EVA_OK, "%s", eva_last_error());
    eva_zs_session s;
    ck_assert_msg(eva_zs_session_config(&s, w, NULL, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_msg(eva_zs_session_open(&s, w, EVA_IMPL_REF, EVA_PREC_FP32) == EVA_OK, "%s", eva_last_error());
    const int I = ds.n_images, T = ds.n_captions, E = s.cfg.embed_dim, K = 10;
    float *img = malloc(sizeof(float) * I * E), *txt = malloc(sizeof(float) * T * E);
    uint8_t *ok = malloc((size_t)I);
    eva_rt_skips sk = {0};
    ck_assert_msg(eva_rt_embed_images(&s, &ds, 0, I, 5, img, ok, &sk, NULL, NULL) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(sk.n, 0);
    ck_assert_msg(eva_rt_embed_captions(&s, &ds, 0, T, 7, txt, NULL, NULL) == EVA_OK, "%s", eva_last_error());
    int r, c;
    double *ui = read_h5(h5, "image_embeds", &r, &c), *ut = read_h5(h5, "text_embeds", &r, &c);
    double di = 0, dt = 0;
    for (int i = 0; i < I * E; i++) di = fmax(di, fabs(img[i] - ui[i]));
    for (int i = 0; i < T * E; i++) dt = fmax(dt, fabs(txt[i] - ut[i]));
    int *t2i = malloc(sizeof(int) * T * K), *i2t = malloc(sizeof(int) * I * K);
    ck_assert_int_eq(eva_rt_rank(t2i, i2t, img, I, txt, T, E, K), EVA_OK);
    double *ut2i = read_h5(h5, "t2i_topk", &r, &c), *ui2t = read_h5(h5, "i2t_topk", &r, &c);
    int same_t = 0, same_i = 0;
    for (int i = 0; i < T * K; i++) same_t += t2i[i] == (int)ut2i[i];
    for (int i = 0; i < I * K; i++) same_i += i2t[i] == (int)ui2t[i];
    eva_rt_metrics m;
    ck_assert_int_eq(eva_rt_parse_ks(&m, "1,2,5,10"), EVA_OK);
    eva_rt_recalls(&m, t2i, i2t, ds.caption_image, I, T, K);
    cJSON *exp = read_json(js);
    const cJSON *met = cJSON_GetObjectItem(exp, "metrics"), *hits = cJSON_GetObjectItem(exp, "hits");
    int equal = 0;
    for (int j = 0; j < m.n_k; j++) {
        char key[64];
        for (int dir = 0; dir < 2; dir++) {
            snprintf(key, sizeof key, "%s_retrieval_recall@%d", dir ? "text" : "image", m.k[j]);
            double want = cJSON_GetObjectItem(met, key)->valuedouble;
            int64_t h = dir ? m.i2t_hits[j] : m.t2i_hits[j], n = dir ? m.n_i2t : m.n_t2i;
            double got = eva_rt_recall_value(h, n);
            ck_assert_msg(got == want, "%s %s %s: ours %.17g (%lld/%lld), CLIP_benchmark %.17g", model, dataset, key,
                          got, (long long)h, (long long)n, want);
            ck_assert_int_eq(h, cJSON_GetArrayItem(cJSON_GetObjectItem(hits, key), 0)->valueint);
            equal++;
        }
    }
    printf("retrieval parity %-6s %-15s%s: %d/8 recalls equal to CLIP_benchmark, top-10 lists equal %d/%d (t2i) "
           "%d/%d (i2t), max |embed diff| image %.2g text %.2g\n", model, dataset, ann ? " (captions.csv)" : "", equal,
           same_t, T * K, same_i, I * K, di, dt);
    fflush(stdout);
    ck_assert_int_eq(same_t, T * K);
    ck_assert_int_eq(same_i, I * K);
    ck_assert_double_le(di, 1e-5);
    ck_assert_double_le(dt, 1e-5);
    cJSON_Delete(exp);
    free(img), free(txt), free(ok), free(ui), free(ut), free(t2i), free(i2t), free(ut2i), free(ui2t);
    eva_rt_skips_free(&sk);
    eva_zs_session_close(&s);
    eva_rt_dataset_free(&ds);
}

static void parity_model(const char *model) {
    char csv[1024];
    gpath(csv, sizeof csv, "coco/captions.csv");
    parity(model, "mscoco_captions", EVA_RT_MSCOCO, NULL);
    parity(model, "flickr30k", EVA_RT_FLICKR, NULL);
    parity(model, "mscoco_captions", EVA_RT_CAPTIONS, csv);
}

START_TEST(parity_eva02) { parity_model("eva02"); }
END_TEST
START_TEST(parity_eva01) { parity_model("eva01"); }
END_TEST
START_TEST(parity_8b) { parity_model("8b"); }
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    (void)opt;
    Suite *s = suite_create("retrieval");
    TCase *tc = tcase_create("pieces");
    tcase_add_test(tc, layouts_match_clip_benchmark_order);
    tcase_add_test(tc, bad_annotations_are_errors);
    tcase_add_test(tc, ranking_ties_and_recalls);
    tcase_add_test(tc, cache_roundtrip);
    tcase_add_test(tc, shard_ranges_single_process);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("parity");
    tcase_set_timeout(tp, 600);
    tcase_add_test(tp, parity_eva02);
    tcase_add_test(tp, parity_eva01);
    tcase_add_test(tp, parity_8b);
    suite_add_tcase(s, tp);
    return s;
}
