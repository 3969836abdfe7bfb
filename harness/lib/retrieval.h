/* retrieval.h: zero-shot image-text retrieval (`evabench retrieval`), by CLIP_benchmark's
 * zeroshot_retrieval protocol.
 *
 * Owns: the three dataset layouts (mscoco_captions: ROOT/val2014/ + the COCO-format karpathy json;
 * flickr30k: ROOT/ + flickr30k_test_karpathy.txt; captions: a path,caption CSV), the image and
 * caption embedding loops over a session (L2-normalised, as F.normalize), the caches of those
 * embeddings (HDF5 keyed by weights sha256, config, file/caption list, shard range, impl,
 * precision), ranking (scores = texts · imagesᵀ in double, top-k per caption over images and per
 * image over captions, ties to the lower index), recall@k exactly as CLIP_benchmark computes it,
 * and the predictions CSV.
 * Does not own: the towers and tokenizer (eva_zs_session, zeroshot.h), image decoding
 * (eva_zs_load_image_folder_style), printing, options or the JSON report (the command).
 *
 * Order (what makes indices line up with CLIP_benchmark's): mscoco_captions: images in increasing
 * id (torchvision CocoCaptions), each image's captions in annotation-file order; flickr30k and
 * captions: images in order of first appearance, each image's captions in line order. Captions are
 * numbered image-major (image 0's captions first), as CLIP_benchmark's texts_image_index.
 *
 * Library code: returns eva_status with eva_fail() messages naming the file and line or entry.
 */
#ifndef EVA_RETRIEVAL_H
#define EVA_RETRIEVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_status.h"
#include "zeroshot.h"

typedef enum { EVA_RT_MSCOCO = 0, EVA_RT_FLICKR = 1, EVA_RT_CAPTIONS = 2 } eva_rt_layout;

/* "mscoco_captions", "flickr30k", "captions" -> layout; anything else EVA_ERR_INVALID_ARG. */
eva_status eva_rt_layout_parse(eva_rt_layout *l, const char *name);
const char *eva_rt_layout_name(eva_rt_layout l);

typedef struct {
    eva_rt_layout layout;
    char root[4096];        /* image paths are relative to this folder */
    char annotations[4096]; /* the annotation file read */
    int n_images;
    char **images;          /* [n_images] paths relative to root ("val2014/COCO_val2014_...jpg") */
    int64_t *image_ids;     /* [n_images] COCO ids; -1 for the other layouts */
    int n_captions;
    char **captions;        /* [n_captions] UTF-8, image-major */
    int *caption_image;     /* [n_captions] index of the caption's image */
    int *cap_start;         /* [n_images] first caption of each image */
    int *cap_count;         /* [n_images] >= 1 */
} eva_rt_dataset;

/* Loads a layout from root (annotations NULL: the layout's default file). Errors (exit 2): missing
 * or unreadable annotation file (EVA_ERR_IO), malformed JSON/TXT/CSV (EVA_ERR_FORMAT, naming the
 * file and line or entry), an entry pointing at an image file that does not exist, an image
 * without captions, no caption at all (EVA_ERR_INVALID_ARG). Files are not decoded here. */
eva_status eva_rt_load(eva_rt_dataset *ds, eva_rt_layout layout, const char *root, const char *annotations);
void eva_rt_dataset_free(eva_rt_dataset *ds);
/* Keeps the first n images and their captions (n <= 0 or >= n_images keeps all). */
void eva_rt_dataset_limit(eva_rt_dataset *ds, int n);
/* sha256 of the captions in order, '\n'-joined (captions) or of the image files: root, then per
 * image its path, size and modification time (a changed file changes the hash). */
void eva_rt_list_hash(char hex[65], const eva_rt_dataset *ds, bool captions);

/* ---- embeddings ----------------------------------------------------------------------------- */
typedef void (*eva_rt_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
    int64_t index; /* image index in the dataset */
    char *reason; /* eva_last_error() of the failed decode */
} eva_rt_skip;

typedef struct {
    eva_rt_skip *v;
    int n;
} eva_rt_skips;
void eva_rt_skips_free(eva_rt_skips *s);

/* The relative path of item i of a list (a retrieval dataset, a zero-shot folder). */
typedef const char *(*eva_rt_path_fn)(const void *list, int64_t i);
/* hex[65] <- sha256 over root and, per item [0, n), its path, size and mtime (stat; a file that
 * cannot be stat'ed hashes as missing). */
void eva_rt_files_hash(char hex[65], const char *root, eva_rt_path_fn path_of, const void *list, int64_t n);
/* feats[hi-lo, E] <- L2-normalised image features of root/path_of(paths, i) for i in [lo, hi), as
 * eva_rt_embed_images; progress (after each batch, whose rows are then in feats) may be NULL. */
eva_status eva_rt_embed_paths(eva_zs_session *s, const char *root, eva_rt_path_fn path_of, const void *paths,
                              int64_t lo, int64_t hi, int batch, float *feats, uint8_t *ok, eva_rt_skips *skips,
                              eva_rt_progress_fn progress, void *pctx);
/* After a cache hit: for every row i with ok[i] == 0, decodes root/path_of(list, lo + i) again to
 * record why it is skipped (reasons are not cached). *stale <- true when such a file now decodes
 * (the cache no longer describes the files: recompute). */
eva_status eva_rt_recover_skips(int image_size, const char *root, eva_rt_path_fn path_of, const void *list,
                                int64_t lo, int64_t n, const uint8_t *ok, eva_rt_skips *skips, bool *stale);
/* feats[hi-lo, E] <- L2-normalised image features of images [lo, hi) (ImageFolder-style load,
 * open_clip eval transform), `batch` per tower call; ok[hi-lo] <- 1, or 0 for a file that does
 * not decode (its row zeroed, a skip recorded with the reason). Out of memory and internal errors
 * stop; every other decode failure is a skip. */
eva_status eva_rt_embed_images(eva_zs_session *s, const eva_rt_dataset *ds, int lo, int hi, int batch, float *feats,
                               uint8_t *ok, eva_rt_skips *skips, eva_rt_progress_fn progress, void *pctx);
/* feats[hi-lo, E] <- L2-normalised text features of captions [lo, hi) (open_clip tokenize: the
 * caption as written, truncated to the context with EOT last), `batch` per call. */
eva_status eva_rt_embed_captions(eva_zs_session *s, const eva_rt_dataset *ds, int lo, int hi, int batch, float *feats,
                                 eva_rt_progress_fn progress, void *pctx);
/* x[n,E] <- x / max(||x||, 1e-12) per row (norm in double), F.normalize. */
void eva_rt_normalize(float *x, int64_t n, int E);

/* ---- cache (HDF5) ----------------------------------------------------------------------------- */
/* key[65] <- sha256 over "evabench-retrieval-cache/1", kind ("images"/"captions"), weights sha256,
 * config JSON, list hash, range lo..hi, impl, precision. */
void eva_rt_cache_key(char key[65], const char *kind, const char *weights_sha256, const char *config_json,
                      const char *list_hash, int lo, int hi, const char *impl, const char *precision);
/* "<cache folder>/retrieval-<kind>-<key>.h5" (folder as eva_zs_cache_path). */
void eva_rt_cache_path(char *out, size_t cap, const char *dir, const char *kind, const char *key);
/* Loads feats[n,E] and ok[n] (ok may be NULL: all rows must be valid) when path holds key with
 * those shapes; else EVA_ERR_IO/EVA_ERR_FORMAT (the caller recomputes). */
eva_status eva_rt_cache_load(const char *path, const char *key, float *feats, uint8_t *ok, int n, int E);
/* Writes atomically (temporary file + rename), creating the folder. */
eva_status eva_rt_cache_store(const char *path, const char *key, const float *feats, const uint8_t *ok, int n, int E);

/* ---- ranking and metrics ---------------------------------------------------------------------- */
#define EVA_RT_MAX_K 16 /* at most this many distinct recall k values */

typedef struct {
    int n_k;
    int k[EVA_RT_MAX_K];           /* ascending, distinct */
    int64_t t2i_hits[EVA_RT_MAX_K]; /* captions whose own image is in their top k */
    int64_t i2t_hits[EVA_RT_MAX_K]; /* images with one of their captions in their top k */
    int64_t n_t2i, n_i2t;          /* queries: captions, images */
} eva_rt_metrics;

/* "1,5,10" -> sorted distinct k values >= 1 (EVA_ERR_INVALID_ARG otherwise). */
eva_status eva_rt_parse_ks(eva_rt_metrics *m, const char *list);

/* One pass over scores[t][i] = txt[t] · img[i] (double): t2i[T,K] <- per caption the K images of
 * highest score, descending; i2t[I,K] <- per image the K captions of highest score. Ties go to the
 * lower index (torch.topk gives the same order for distinct scores). K <= I and K <= T. */
eva_status eva_rt_rank(int *t2i, int *i2t, const float *img, int I, const float *txt, int T, int E, int K);
/* Counts the hits of every k (K >= the largest k): caption t's image is tii[t]. */
void eva_rt_recalls(eva_rt_metrics *m, const int *t2i, const int *i2t, const int *tii, int I, int T, int K);
/* CLIP_benchmark's value: the float32 mean of 0/1 hits = float32(hits) / float32(n) (NaN if n = 0). */
double eva_rt_recall_value(int64_t hits, int64_t n);

/* Predictions CSV: direction,query,target,top1..topK,hit1..hitK; t2i rows (query = caption index,
 * target = its image), then i2t rows (query = image index, target = its caption indices, space-
 * separated). img_idx/cap_idx map the ranked (compacted) indices back to dataset indices. */
eva_status eva_rt_write_predictions(const char *path, const int *t2i, const int *i2t, const int *tii, int I, int T,
                                    int K, const int *img_idx, const int *cap_idx);

/* ---- published numbers ------------------------------------------------------------------------ */
/* MSCOCO (5k karpathy test) text-to-image R@5 in % of the variant (official or open_clip name),
 * NaN when none is published. */
double eva_rt_card_coco_t2i_r5(const char *name);

/* ---- a whole run (the command's engine; shard-aware) ------------------------------------------ */
#include "shard.h"

typedef struct {
    const char *weights, *config_path, *variant, *data, *annotations, *cache_dir, *recall_k;
    eva_rt_layout layout;
    eva_impl impl;
    eva_precision prec;
    int batch;      /* images (and captions) per tower call */
    int limit;      /* first N images (0: all) */
    bool no_cache;
    eva_rt_progress_fn progress; /* (done, total) of the current phase; may be NULL */
    void (*phase)(void *ctx, const char *what); /* a phase starts ("images", "captions"); may be NULL */
    void *pctx;
} eva_rt_opts;

typedef struct {
    eva_zs_session sess;
    eva_rt_dataset ds;
    eva_rt_metrics m;       /* rank 0 */
    char weights_sha256[65];
    int K;                  /* largest k */
    int n_found_images;     /* before --limit */
    int I, T;               /* evaluated images and captions (rank 0) */
    int *t2i, *i2t;         /* [T,K], [I,K] in compacted indices (rank 0) */
    int *tii;               /* [T] compacted image of each compacted caption */
    int *img_idx, *cap_idx; /* compacted -> dataset index */
    int dropped_captions;   /* captions of skipped images */
    eva_rt_skips skips;     /* every rank's skips, dataset order (rank 0) */
    double t_hash, t_images, t_captions, t_rank; /* seconds (slowest rank for the towers) */
    int64_t images_encoded, captions_encoded;     /* through the towers (not from a cache), all ranks */
    const char *image_cache, *caption_cache;      /* "hit", "miss", "miss (not written)", "disabled" */
} eva_rt_result;

/* Every rank's skips into rank 0's list, dataset order (ranks hold contiguous blocks); the other
 * ranks' lists are emptied. One rank: nothing to do. */
eva_status eva_rt_skips_gather(const eva_shard *sh, eva_rt_skips *skips);

/* The whole protocol: dataset, model, this rank's share of images and captions (cache or towers),
 * gathered on rank 0, which ranks and counts. Every rank returns the same status for input errors
 * found before the towers run; a tower failure is this rank's alone (the command aborts the run). */
eva_status eva_rt_run(const eva_rt_opts *o, const eva_shard *sh, eva_rt_result *r);
void eva_rt_result_free(eva_rt_result *r);

#endif
