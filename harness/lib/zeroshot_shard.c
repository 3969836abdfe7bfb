/* zeroshot_shard.c: see zeroshot_shard.h.
 *
 * Decisions:
 * - Every image goes through eva_rt_embed_paths (ImageFolder-style load, L2-normalised feature)
 *   and eva_zs_logits/eva_zs_topk, with one rank or many, so the sharded report equals the
 *   single-process one by construction (same rows, same arithmetic, same order on rank 0).
 * - The image cache key holds the item list and the block, so a rerun with the same number of
 *   ranks resumes from each rank's file; the classifier keeps its own cache (zeroshot.h).
 */
#include "zeroshot_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool eva_zs_all_hit(const eva_shard *sh, bool hit) { return eva_shard_all(sh, hit); }

eva_status eva_zs_build_classifier_sharded(const eva_shard *sh, float *W, const eva_zs_list *classes,
                                           const eva_zs_list *templates, const eva_zs_text_encoder *enc) {
    if (sh->size <= 1) return eva_zs_build_classifier(W, classes, templates, enc);
    int64_t lo, hi;
    eva_shard_range(sh, classes->n, &lo, &hi);
    eva_zs_list mine = {classes->s + lo, (int)(hi - lo)};
    eva_status st = mine.n ? eva_zs_build_classifier(W + lo * enc->embed_dim, &mine, templates, enc) : EVA_OK;
    if (st != EVA_OK) return st;
    if ((st = eva_shard_injected_failure(sh)) != EVA_OK) return st;
    return eva_shard_gather(sh, W + lo * enc->embed_dim, hi - lo, W, classes->n, enc->embed_dim, 4, true);
}

static const char *zs_path(const void *ds, int64_t i) { return ((const eva_zs_dataset *)ds)->items[i].path; }

/* sha256 of the files (paths, sizes, times) and of the labels, in order. */
static void items_hash(char hex[65], const eva_zs_dataset *ds) {
    char files[65];
    eva_rt_files_hash(files, ds->root, zs_path, ds, ds->n_items);
    eva_sha256_ctx c;
    uint8_t d[32];
    eva_sha256_init(&c);
    eva_sha256_update(&c, files, 64);
    for (int64_t i = 0; i < ds->n_items; i++) eva_sha256_update(&c, &ds->items[i].label, sizeof ds->items[i].label);
    eva_sha256_final(&c, d);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = digits[d[i] >> 4], hex[2 * i + 1] = digits[d[i] & 15];
    hex[64] = '\0';
}

typedef struct {
    const eva_zs_dataset *ds;
    const float *W, *feats;
    const uint8_t *ok;
    int C, E;
    int64_t lo, seen, n_ok, top1;
    eva_zs_running_fn progress;
    void *pctx;
} running;

/* Progress after a batch: the new rows are in feats; count their top-1. */
static void on_batch(void *ctx, int64_t done, int64_t total) {
    running *r = ctx;
    float *lg = malloc(sizeof(float) * (size_t)r->C);
    for (; lg && r->seen < done; r->seen++) {
        if (!r->ok[r->seen]) continue;
        int top;
        eva_zs_logits(lg, r->feats + r->seen * r->E, r->W, r->C, r->E);
        eva_zs_topk(&top, lg, r->C, 1);
        r->n_ok++;
        r->top1 += top == r->ds->items[r->lo + r->seen].label;
    }
    free(lg);
    if (r->progress) r->progress(r->pctx, done, total, r->n_ok ? (double)r->top1 / (double)r->n_ok : -1);
}

/* This rank's feats[n,E], ok[n] of items [lo, hi): cache, else the tower. */
static eva_status block_features(eva_zs_session *s, const eva_zs_dataset *ds, int64_t lo,
                                 int64_t hi, int batch, const eva_zs_image_cache *cache, eva_zs_image_results *res,
                                 float *feats, uint8_t *ok, running *run) {
    const int E = s->cfg.embed_dim, n = (int)(hi - lo);
    char lh[65], key[65], path[4400] = "";
    items_hash(lh, ds);
    eva_rt_cache_key(key, "zeroshot-images", cache->weights_sha256, cache->config_json, lh, (int)lo, (int)hi,
                     cache->impl, cache->precision);
    res->cache = cache->no_cache ? "disabled" : "miss";
    if (!cache->no_cache) {
        eva_rt_cache_path(path, sizeof path, cache->cache_dir, "zeroshot-images", key);
        bool stale = false;
        if (eva_rt_cache_load(path, key, feats, ok, n, E) == EVA_OK) {
            eva_status st = eva_rt_recover_skips(s->cfg.vision.image_size, ds->root, zs_path, ds, lo, n, ok,
                                                 &res->skips, &stale);
            if (st != EVA_OK) return st;
            if (!stale) {
                res->cache = "hit";
                on_batch(run, n, n);
                return EVA_OK;
            }
            eva_rt_skips_free(&res->skips);
            res->cache = "stale";
        }
        eva_clear_error();
    }
    eva_status st = eva_rt_embed_paths(s, ds->root, zs_path, ds, lo, hi, batch, feats, ok, &res->skips, on_batch, run);
    if (st != EVA_OK) return st;
    res->encoded = n - res->skips.n;
    if (!cache->no_cache && eva_rt_cache_store(path, key, feats, ok, n, E) != EVA_OK) {
        res->cache = "miss (not written)";
        eva_clear_error();
    }
    return EVA_OK;
}

eva_status eva_zs_classify_sharded(const eva_shard *sh, eva_zs_session *s, const eva_zs_dataset *ds, const float *W,
                                   int C, int batch, const eva_zs_image_cache *cache, eva_zs_image_results *res,
                                   eva_zs_running_fn progress, void *pctx) {
    memset(res, 0, sizeof *res);
    const int E = s->cfg.embed_dim, K = C < 5 ? C : 5;
    const int64_t N = ds->n_items;
    int64_t lo, hi;
    eva_shard_range(sh, N, &lo, &hi);
    float *feats = malloc(sizeof(float) * (size_t)((hi - lo) * E + 1)), *lg = malloc(sizeof(float) * (size_t)C);
    uint8_t *ok = malloc((size_t)(hi - lo) + 1);
    int32_t *top = malloc(sizeof(int32_t) * (size_t)((hi - lo) * 5 + 1));
    res->top5 = malloc(sizeof(int32_t) * (size_t)(N * 5 + 1));
    res->ok = malloc((size_t)N + 1);
    eva_status st = EVA_OK;
    if (!feats || !lg || !ok || !top || !res->top5 || !res->ok) st = eva_fail(EVA_ERR_NOMEM, "out of memory");
    running run = {ds, W, feats, ok, C, E, lo, 0, 0, 0, progress, pctx};
    double t0 = eva_zs_now();
    if (st == EVA_OK) st = block_features(s, ds, lo, hi, batch, cache, res, feats, ok, &run);
    for (int64_t i = 0; st == EVA_OK && i < hi - lo; i++) {
        int t5[5];
        for (int k = 0; k < 5; k++) t5[k] = -1;
        if (ok[i]) {
            eva_zs_logits(lg, feats + i * E, W, C, E);
            eva_zs_topk(t5, lg, C, K);
        }
        for (int k = 0; k < 5; k++) top[i * 5 + k] = t5[k];
    }
    res->seconds = eva_zs_now() - t0;
    if (st == EVA_OK) st = eva_shard_injected_failure(sh);
    if (st == EVA_OK) st = eva_shard_gather(sh, top, hi - lo, res->top5, N, 5, 4, false);
    if (st == EVA_OK) st = eva_shard_gather(sh, ok, hi - lo, res->ok, N, 1, 1, false);
    if (st == EVA_OK) st = eva_rt_skips_gather(sh, &res->skips);
    if (st == EVA_OK && sh->size > 1) {
        res->seconds = eva_shard_max(sh, res->seconds);
        res->encoded = (int64_t)eva_shard_sum(sh, (double)res->encoded);
    }
    free(feats), free(lg), free(ok), free(top);
    return st;
}

void eva_zs_image_results_free(eva_zs_image_results *res) {
    free(res->top5);
    free(res->ok);
    eva_rt_skips_free(&res->skips);
    memset(res, 0, sizeof *res);
}

eva_status eva_zs_results_account(const eva_zs_dataset *ds, const eva_zs_image_results *res, int C,
                                  const char *prefix, eva_zs_metrics *met, FILE *pred) {
    const int K = C < 5 ? C : 5;
    for (int64_t i = 0; i < ds->n_items; i++) {
        if (!res->ok[i]) continue;
        int top[5];
        for (int k = 0; k < 5; k++) top[k] = res->top5[i * 5 + k];
        eva_zs_metrics_add(met, ds->items[i].label, top, K);
        if (!pred) continue;
        char rel[8400];
        snprintf(rel, sizeof rel, "%s%s", prefix, ds->items[i].path);
        eva_zs_csv_field(pred, rel);
        fprintf(pred, ",%d", ds->items[i].label);
        for (int k = 0; k < 5; k++) {
            if (k < K) fprintf(pred, ",%d", top[k]);
            else fputs(",", pred);
        }
        fputc('\n', pred);
    }
    return pred && ferror(pred) ? eva_fail(EVA_ERR_IO, "predictions: write failed") : EVA_OK;
}
