/* retrieval_run.c: one retrieval evaluation end to end (eva_rt_run, retrieval.h): dataset, model,
 * this rank's share of the images and captions through the cache or the towers, the gather to
 * rank 0, compaction past skipped images, ranking and recall@k. Prints nothing.
 *
 * Decisions:
 * - Shards are contiguous ranges (eva_shard_range) of images and, independently, of captions; the
 *   cache key holds the range, so a rerun with the same number of ranks resumes from each rank's
 *   files, and a single process uses the range [0, n).
 * - A skipped image (file present, not decodable) leaves the gallery and its captions leave the
 *   queries; predictions keep dataset indices.
 * - The reason of a skip is not cached: on a cache hit, rows marked not-ok are decoded again to
 *   recover the message (a failing decode is fast).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retrieval.h"

static const char *rt_path(const void *ds, int64_t i) { return ((const eva_rt_dataset *)ds)->images[i]; }

static void phase(const eva_rt_opts *o, const char *what) {
    if (o->phase) o->phase(o->pctx, what);
}

/* feats[hi-lo, E] (and ok) of this rank's images: cache, else the image tower. */
static eva_status shard_images(const eva_rt_opts *o, eva_rt_result *r, const char *cfg_json, int64_t lo, int64_t hi,
                               float *feats, uint8_t *ok) {
    char lh[65], key[65], path[4400] = "";
    const int E = r->sess.cfg.embed_dim, n = (int)(hi - lo);
    eva_rt_list_hash(lh, &r->ds, false);
    eva_rt_cache_key(key, "images", r->weights_sha256, cfg_json, lh, (int)lo, (int)hi, eva_impl_name(o->impl),
                     eva_precision_name(o->prec));
    r->image_cache = o->no_cache ? "disabled" : "miss";
    if (!o->no_cache) {
        eva_rt_cache_path(path, sizeof path, o->cache_dir, "images", key);
        bool stale = false;
        if (eva_rt_cache_load(path, key, feats, ok, n, E) == EVA_OK) {
            eva_status st = eva_rt_recover_skips(r->sess.cfg.vision.image_size, r->ds.root, rt_path, &r->ds, lo, n,
                                                 ok, &r->skips, &stale);
            if (st != EVA_OK) return st;
            if (!stale) {
                r->image_cache = "hit";
                return EVA_OK;
            }
            eva_rt_skips_free(&r->skips);
            r->image_cache = "stale";
        }
        eva_clear_error();
    }
    phase(o, "images");
    eva_status st = eva_rt_embed_images(&r->sess, &r->ds, (int)lo, (int)hi, o->batch, feats, ok, &r->skips,
                                        o->progress, o->pctx);
    if (st != EVA_OK) return st;
    r->images_encoded = n - r->skips.n;
    if (!o->no_cache && eva_rt_cache_store(path, key, feats, ok, n, E) != EVA_OK) {
        r->image_cache = "miss (not written)";
        eva_clear_error();
    }
    return EVA_OK;
}

static eva_status shard_captions(const eva_rt_opts *o, eva_rt_result *r, const char *cfg_json, int64_t lo, int64_t hi,
                                 float *feats) {
    char lh[65], key[65], path[4400] = "";
    const int E = r->sess.cfg.embed_dim, n = (int)(hi - lo);
    eva_rt_list_hash(lh, &r->ds, true);
    eva_rt_cache_key(key, "captions", r->weights_sha256, cfg_json, lh, (int)lo, (int)hi, eva_impl_name(o->impl),
                     eva_precision_name(o->prec));
    r->caption_cache = o->no_cache ? "disabled" : "miss";
    if (!o->no_cache) {
        eva_rt_cache_path(path, sizeof path, o->cache_dir, "captions", key);
        if (eva_rt_cache_load(path, key, feats, NULL, n, E) == EVA_OK) {
            r->caption_cache = "hit";
            return EVA_OK;
        }
        eva_clear_error();
    }
    phase(o, "captions");
    eva_status st = eva_rt_embed_captions(&r->sess, &r->ds, (int)lo, (int)hi, o->batch, feats, o->progress, o->pctx);
    if (st != EVA_OK) return st;
    r->captions_encoded = n;
    if (!o->no_cache && eva_rt_cache_store(path, key, feats, NULL, n, E) != EVA_OK) {
        r->caption_cache = "miss (not written)";
        eva_clear_error();
    }
    return EVA_OK;
}

eva_status eva_rt_skips_gather(const eva_shard *sh, eva_rt_skips *skips) {
    if (sh->size <= 1) return EVA_OK;
    size_t cap = 1;
    for (int i = 0; i < skips->n; i++) cap += strlen(skips->v[i].reason) + 24;
    char *mine = malloc(cap), *all = NULL;
    if (!mine) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    size_t off = 0;
    mine[0] = '\0';
    for (int i = 0; i < skips->n; i++) {
        for (char *p = skips->v[i].reason; *p; p++)
            if (*p == '\n' || *p == '\t') *p = ' ';
        off += (size_t)snprintf(mine + off, cap - off, "%lld\t%s\n", (long long)skips->v[i].index, skips->v[i].reason);
    }
    eva_status st = eva_shard_gather_text(sh, mine, &all);
    free(mine);
    eva_rt_skips_free(skips);
    for (char *p = all; st == EVA_OK && p && *p;) {
        char *tab = strchr(p, '\t'), *nl = tab ? strchr(tab, '\n') : NULL;
        if (!nl) break;
        *nl = '\0';
        eva_rt_skip *nv = realloc(skips->v, sizeof *nv * (size_t)(skips->n + 1));
        if (!nv) st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        else {
            skips->v = nv;
            nv[skips->n].index = atoll(p);
            nv[skips->n++].reason = strdup(tab + 1);
        }
        p = nl + 1;
    }
    free(all);
    return st;
}

/* Rank 0: drop skipped images and their captions, rank, count. */
static eva_status rank_and_count(eva_rt_result *r, float *img, const uint8_t *ok, float *txt) {
    const eva_rt_dataset *ds = &r->ds;
    const int E = r->sess.cfg.embed_dim;
    int *new_of = malloc(sizeof(int) * (size_t)ds->n_images);
    r->img_idx = malloc(sizeof(int) * (size_t)ds->n_images);
    r->cap_idx = malloc(sizeof(int) * (size_t)ds->n_captions);
    r->tii = malloc(sizeof(int) * (size_t)ds->n_captions);
    if (!new_of || !r->img_idx || !r->cap_idx || !r->tii) return free(new_of), eva_fail(EVA_ERR_NOMEM, "out of memory");
    int I = 0, T = 0;
    for (int i = 0; i < ds->n_images; i++) {
        new_of[i] = ok[i] ? I : -1;
        if (ok[i]) {
            memmove(img + (size_t)I * E, img + (size_t)i * E, sizeof(float) * (size_t)E);
            r->img_idx[I++] = i;
        }
    }
    for (int t = 0; t < ds->n_captions; t++) {
        int ni = new_of[ds->caption_image[t]];
        if (ni < 0) continue;
        memmove(txt + (size_t)T * E, txt + (size_t)t * E, sizeof(float) * (size_t)E);
        r->tii[T] = ni;
        r->cap_idx[T++] = t;
    }
    free(new_of);
    r->I = I, r->T = T;
    r->dropped_captions = ds->n_captions - T;
    if (I < r->K || T < r->K)
        return eva_fail(EVA_ERR_INVALID_ARG, "recall@%d needs at least %d images and captions; %d images (%d skipped) "
                        "and %d captions remain", r->K, r->K, I, ds->n_images - I, T);
    r->t2i = malloc(sizeof(int) * (size_t)T * (size_t)r->K);
    r->i2t = malloc(sizeof(int) * (size_t)I * (size_t)r->K);
    if (!r->t2i || !r->i2t) return eva_fail(EVA_ERR_NOMEM, "out of memory for the top-%d lists", r->K);
    double t0 = eva_zs_now();
    eva_status st = eva_rt_rank(r->t2i, r->i2t, img, I, txt, T, E, r->K);
    if (st == EVA_OK) eva_rt_recalls(&r->m, r->t2i, r->i2t, r->tii, I, T, r->K);
    r->t_rank = eva_zs_now() - t0;
    return st;
}

/* Dataset, config and the checks that need no weights. */
static eva_status prepare(const eva_rt_opts *o, eva_rt_result *r) {
    eva_status st = eva_rt_parse_ks(&r->m, o->recall_k ? o->recall_k : "1,5,10");
    if (st != EVA_OK) return st;
    r->K = r->m.k[r->m.n_k - 1];
    if ((st = eva_rt_load(&r->ds, o->layout, o->data, o->annotations)) != EVA_OK) return st;
    r->n_found_images = r->ds.n_images;
    eva_rt_dataset_limit(&r->ds, o->limit);
    if (r->ds.n_images < r->K || r->ds.n_captions < r->K)
        return eva_fail(EVA_ERR_INVALID_ARG, "recall@%d needs at least %d images and %d captions; %s has %d and %d",
                        r->K, r->K, r->K, r->ds.annotations, r->ds.n_images, r->ds.n_captions);
    return eva_zs_session_config(&r->sess, o->weights, o->config_path, o->variant);
}

eva_status eva_rt_run(const eva_rt_opts *o, const eva_shard *sh, eva_rt_result *r) {
    memset(r, 0, sizeof *r);
    eva_status st = prepare(o, r);
    if (st != EVA_OK) return st;
    double t0 = eva_zs_now();
    if ((st = eva_sha256_file(r->weights_sha256, o->weights)) != EVA_OK) return st;
    r->t_hash = eva_zs_now() - t0;
    if (o->impl == EVA_IMPL_CUDA) eva_shard_pick_device(sh);
    if ((st = eva_zs_session_open(&r->sess, o->weights, o->impl, o->prec)) != EVA_OK) return st;
    const int E = r->sess.cfg.embed_dim, I = r->ds.n_images, T = r->ds.n_captions;
    int64_t ilo, ihi, tlo, thi;
    eva_shard_range(sh, I, &ilo, &ihi);
    eva_shard_range(sh, T, &tlo, &thi);
    float *img = malloc(sizeof(float) * (size_t)I * E), *txt = malloc(sizeof(float) * (size_t)T * E);
    uint8_t *ok = malloc((size_t)I);
    char *cfg_json = eva_config_to_json(&r->sess.cfg, false);
    if (!img || !txt || !ok || !cfg_json) st = eva_fail(EVA_ERR_NOMEM, "out of memory for %d x %d embeddings", I + T, E);
    t0 = eva_zs_now();
    if (st == EVA_OK) st = shard_images(o, r, cfg_json, ilo, ihi, img + ilo * E, ok + ilo);
    r->t_images = eva_zs_now() - t0;
    t0 = eva_zs_now();
    if (st == EVA_OK) st = shard_captions(o, r, cfg_json, tlo, thi, txt + tlo * E);
    r->t_captions = eva_zs_now() - t0;
    free(cfg_json);
    if (st == EVA_OK) st = eva_shard_injected_failure(sh);
    if (st == EVA_OK && sh->size > 1) { /* every rank got here: gather */
        if ((st = eva_shard_gather(sh, img + ilo * E, ihi - ilo, img, I, E, 4, false)) == EVA_OK &&
            (st = eva_shard_gather(sh, ok + ilo, ihi - ilo, ok, I, 1, 1, false)) == EVA_OK &&
            (st = eva_shard_gather(sh, txt + tlo * E, thi - tlo, txt, T, E, 4, false)) == EVA_OK)
            st = eva_rt_skips_gather(sh, &r->skips);
        r->t_images = eva_shard_max(sh, r->t_images);
        r->t_captions = eva_shard_max(sh, r->t_captions);
        r->images_encoded = (int64_t)eva_shard_sum(sh, (double)r->images_encoded);
        r->captions_encoded = (int64_t)eva_shard_sum(sh, (double)r->captions_encoded);
    }
    if (st == EVA_OK && sh->rank == 0) st = rank_and_count(r, img, ok, txt);
    free(img), free(txt), free(ok);
    return st;
}

void eva_rt_result_free(eva_rt_result *r) {
    free(r->t2i), free(r->i2t), free(r->tii), free(r->img_idx), free(r->cap_idx);
    eva_rt_skips_free(&r->skips);
    eva_zs_session_close(&r->sess);
    eva_rt_dataset_free(&r->ds);
    memset(r, 0, sizeof *r);
}
