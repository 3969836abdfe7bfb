/* zeroshot_shard.h: `evabench zeroshot` spread over MPI ranks (and, with one rank, the same code
 * path): the classifier built class-block by class-block on the ranks and shared by all, the
 * images split in contiguous blocks, each rank's image embeddings cached (resumable), and the
 * per-image top-5 gathered to rank 0 in dataset order, so rank 0 computes the metrics and writes
 * the predictions exactly as one process does.
 * Does not own: the protocol pieces (zeroshot.h), the embedding loop and cache format
 * (retrieval.h), MPI (shard.h), printing (the command).
 */
#ifndef EVA_ZEROSHOT_SHARD_H
#define EVA_ZEROSHOT_SHARD_H

#include "retrieval.h"
#include "shard.h"
#include "zeroshot.h"

/* W[C,E] on every rank: rank r builds the rows of its block of classes (eva_shard_range), then
 * every rank receives all rows. One rank: eva_zs_build_classifier. */
eva_status eva_zs_build_classifier_sharded(const eva_shard *sh, float *W, const eva_zs_list *classes,
                                           const eva_zs_list *templates, const eva_zs_text_encoder *enc);
/* Whether every rank loaded the cached classifier (the ranks must agree before building). */
bool eva_zs_all_hit(const eva_shard *sh, bool hit);

typedef struct {
    const char *cache_dir;       /* NULL: the default folder */
    bool no_cache;
    const char *weights_sha256, *config_json, *impl, *precision;
} eva_zs_image_cache;

typedef struct {
    int32_t *top5;       /* [n,5] (rank 0): class indices, -1 past C */
    uint8_t *ok;         /* [n] (rank 0): 0 = skipped */
    eva_rt_skips skips;  /* (rank 0) every rank's skips, dataset order */
    int64_t encoded;     /* images through the tower, all ranks */
    double seconds;      /* image phase, slowest rank */
    const char *cache;   /* this rank's image cache: "hit", "miss", "miss (not written)", "disabled" */
} eva_zs_image_results;

/* (done, total) of this rank's images and the running top-1 of its share. */
typedef void (*eva_zs_running_fn)(void *ctx, int64_t done, int64_t total, double top1);

/* Top-5 of every image of ds (items [0, n_items)) against W[C,E]: this rank's block through the
 * cache or the image tower (L2-normalised features, logits = 100 cosine), gathered to rank 0. */
eva_status eva_zs_classify_sharded(const eva_shard *sh, eva_zs_session *s, const eva_zs_dataset *ds, const float *W,
                                   int C, int batch, const eva_zs_image_cache *cache, eva_zs_image_results *res,
                                   eva_zs_running_fn progress, void *pctx);
void eva_zs_image_results_free(eva_zs_image_results *res);

/* Rank 0, after eva_zs_classify_sharded: every evaluated image into met (initialised for C
 * classes), in dataset order, and its predictions row (path with `prefix`, label, top1..top5;
 * blank past C) on pred when not NULL. */
eva_status eva_zs_results_account(const eva_zs_dataset *ds, const eva_zs_image_results *res, int C,
                                  const char *prefix, eva_zs_metrics *met, FILE *pred);

#endif
