/* zeroshot.h: the zero-shot classification protocol (docs/model.md §8) for `evabench zeroshot`
 * and `evabench classify`.
 *
 * Owns: the built-in protocol texts (the 1000 OpenAI-curated ImageNet class names, the 80 OpenAI
 * and 7 "simple" templates, compiled in from golden/embed/, written there by
 * golden/make_zeroshot_data.py from open_clip's package), template filling, the dataset scan
 * (class subfolders in sorted order, files in torchvision ImageFolder order), the classifier
 * builder (per class: mean of the L2-normalised prompt embeddings, re-normalised), logits
 * (100 · cosine), top-k, metrics (acc1, acc5, mean per-class recall as CLIP_benchmark), the
 * classifier cache (HDF5 keyed by weights sha256, template and class-name text, impl, precision),
 * SHA-256, the ImageFolder-style image loader, the dataset type and class-name sources, and the
 * progress line.
 * Does not own: the towers (reached through a text-encoder callback, in practice the backend of
 * eva_backend.h), the tokenizer (eva_tokenizer.h), image decoding/preprocessing (eva_image.h),
 * printing of results or option parsing (harness/cli/cmd_zeroshot.c, cmd_classify.c).
 *
 * Library code: returns eva_status with eva_fail() messages; prints nothing except through the
 * progress helper, which the command enables explicitly.
 */
#ifndef EVA_ZEROSHOT_H
#define EVA_ZEROSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend_select.h"
#include "eva_status.h"
#include "eva_tokenizer.h"
#include "eva_weights.h"

/* ---- SHA-256 (FIPS 180-4), written for this project; checked against NIST vectors and sha256sum */
typedef struct {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
} eva_sha256_ctx;
void eva_sha256_init(eva_sha256_ctx *c);
void eva_sha256_update(eva_sha256_ctx *c, const void *data, size_t len);
void eva_sha256_final(eva_sha256_ctx *c, uint8_t digest[32]);
/* hex[65] <- lowercase hex digest of data[0..len). */
void eva_sha256_hex(char hex[65], const void *data, size_t len);
/* hex[65] <- digest of a whole file (streamed). */
eva_status eva_sha256_file(char hex[65], const char *path);

/* ---- string lists ---------------------------------------------------------------------------- */
typedef struct {
    char **s; /* [n] NUL-terminated UTF-8, owned */
    int n;
} eva_zs_list;
void eva_zs_list_free(eva_zs_list *l);
/* Appends a copy of s[0..len). */
eva_status eva_zs_list_push(eva_zs_list *l, const char *s, size_t len);
/* One entry per line of text[0..len): '\n' or "\r\n" line ends, surrounding blanks (space, tab)
 * trimmed, blank lines skipped; a NUL byte inside is an error naming `source`. */
eva_status eva_zs_list_from_text(eva_zs_list *l, const char *text, size_t len, const char *source);
/* The same from a file (EVA_ERR_IO if unreadable). */
eva_status eva_zs_list_from_file(eva_zs_list *l, const char *path);
/* Comma-separated labels ("cat, dog,tabby cat"): entries trimmed; an empty entry is an error. */
eva_status eva_zs_list_from_csv(eva_zs_list *l, const char *csv, const char *source);
/* sha256 of the list as text: entries joined with '\n', one trailing '\n'. */
void eva_zs_list_hash(char hex[65], const eva_zs_list *l);

/* ---- protocol texts -------------------------------------------------------------------------- */
/* Built-in lists: "imagenet_classnames.txt" (1000), "openai_templates.txt" (80),
 * "simple_templates.txt" (7). */
eva_status eva_zs_builtin(eva_zs_list *l, const char *embedded_name);
/* Templates from "openai", "simple" or a file (one per line, "{}" or "{c}" where the class name
 * goes; every line must hold at least one). *name: "openai", "simple" or the path. */
eva_status eva_zs_templates_load(eva_zs_list *l, const char *spec, const char **name);
/* out <- template with every "{}" and "{c}" replaced by classname (malloc'd). */
eva_status eva_zs_fill_template(char **out, const char *tmpl, const char *classname);

/* ---- dataset scan ---------------------------------------------------------------------------- */
typedef struct {
    char *path;  /* relative to the dataset root ("n01440764/ILSVRC2012_val_00000293.JPEG") */
    int label;   /* class index */
} eva_zs_item;

typedef struct {
    char root[4096];  /* the folder the class folders are in (DIR, or DIR/val for imagenet1k) */
    char **classes;   /* [n_classes] class folder names, sorted (byte order) */
    int n_classes;
    eva_zs_item *items; /* [n_items], class by class, each class's files in ImageFolder order */
    int64_t n_items;
} eva_zs_dataset;

/* Scans dir: every non-hidden subfolder is a class (sorted by name); every non-hidden regular file
 * below a class folder (recursively, as torchvision's ImageFolder walks: directories in sorted
 * path order, files sorted within each) is an item, whatever its extension (a file that does not
 * decode is reported and skipped later, never dropped here). Missing/unreadable dir: EVA_ERR_IO;
 * no class folder: EVA_ERR_INVALID_ARG. When want_classes > 0 and dir does not hold that many
 * class folders but dir/val does, dir/val is used (ImageNet's usual root). */
eva_status eva_zs_scan(eva_zs_dataset *ds, const char *dir, int want_classes);
void eva_zs_dataset_free(eva_zs_dataset *ds);
/* 1 when every class folder name is a WordNet id (n + 8 digits). */
bool eva_zs_classes_are_wnids(const eva_zs_dataset *ds);
/* Keeps `limit` items taken round-robin across classes (each class's first file, then each
 * class's second, ...), in dataset order. limit <= 0 or >= n_items keeps all. */
void eva_zs_dataset_limit(eva_zs_dataset *ds, int64_t limit);

typedef enum {
    EVA_ZS_AUTO,       /* imagenet1k when the folder holds 1000 WordNet-id class folders, else folder */
    EVA_ZS_IMAGENET1K, /* the 1000 ImageNet classes in dir or dir/val */
    EVA_ZS_FOLDER,     /* any class folders */
} eva_zs_dataset_type;
/* Scans dir as a dataset of that type (dir/val is tried for imagenet1k and auto); *imagenet says
 * which it is. imagenet1k without exactly 1000 class folders: EVA_ERR_INVALID_ARG. */
eva_status eva_zs_dataset_open(eva_zs_dataset *ds, bool *imagenet, const char *dir, eva_zs_dataset_type type);
/* The class names of ds: from the file at path if given, else the built-in ImageNet names when
 * imagenet, else ds->root/classnames.txt if it exists, else the class folder names. source[cap]
 * names where they came from. An empty list or one whose count is not ds->n_classes:
 * EVA_ERR_INVALID_ARG naming the source. */
eva_status eva_zs_class_names(eva_zs_list *classes, char *source, size_t cap, const eva_zs_dataset *ds,
                              const char *path, bool imagenet);

/* ---- classifier ------------------------------------------------------------------------------ */
/* features[T,E] <- text tower(ids[T,L]). */
typedef eva_status (*eva_zs_text_fn)(void *ctx, float *features, const int32_t *ids, int T);
/* Called after each class (done of total). */
typedef void (*eva_zs_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct {
    eva_tokenizer *tok;
    int context_length; /* L */
    int embed_dim;      /* E */
    int max_batch;      /* prompts per text-tower call (>= 1) */
    eva_zs_text_fn encode;
    void *encode_ctx;
    eva_zs_progress_fn progress; /* may be NULL */
    void *progress_ctx;
} eva_zs_text_encoder;

/* W[C,E] <- for each class c: normalize(mean_t normalize(text(template_t(class_c)))), in double,
 * exactly open_clip's build_zero_shot_classifier. */
eva_status eva_zs_build_classifier(float *W, const eva_zs_list *classes, const eva_zs_list *templates,
                                   const eva_zs_text_encoder *enc);

/* logits[C] <- 100 · normalize(feature[E]) · W[c] (dot products in double). */
void eva_zs_logits(float *logits, const float *feature, const float *W, int C, int E);
/* idx[k] <- indices of the k largest logits, descending; ties go to the lower index (torch.topk on
 * CPU order for distinct values; a NaN ranks last). k <= C. */
void eva_zs_topk(int *idx, const float *logits, int C, int k);
/* probs[C] <- softmax(logits) (in double). */
void eva_zs_softmax(double *probs, const float *logits, int C);

/* ---- metrics --------------------------------------------------------------------------------- */
typedef struct {
    int C;
    int64_t n, top1, top5;
    int64_t *per_class_n;       /* [C] */
    int64_t *per_class_correct; /* [C] */
} eva_zs_metrics;
eva_status eva_zs_metrics_init(eva_zs_metrics *m, int C);
void eva_zs_metrics_add(eva_zs_metrics *m, int label, const int *top, int k);
double eva_zs_acc1(const eva_zs_metrics *m);
/* NaN when C < 5 (CLIP_benchmark). */
double eva_zs_acc5(const eva_zs_metrics *m);
/* Mean over classes with at least one image of (correct / images): sklearn's
 * balanced_accuracy_score as CLIP_benchmark reports it. */
double eva_zs_mean_per_class_recall(const eva_zs_metrics *m);
void eva_zs_metrics_free(eva_zs_metrics *m);

/* ---- classifier cache (HDF5) ----------------------------------------------------------------- */
/* key[65] <- sha256 over "evabench-zeroshot-cache/1", weights sha256, config JSON, template
 * hash, class-name hash, impl, precision. */
void eva_zs_cache_key(char key[65], const char *weights_sha256, const char *config_json, const char *templates_hash,
                      const char *classes_hash, const char *impl, const char *precision);
/* The cache folder: dir if given, else $EVA_CACHE_DIR, else $HOME/.cache/evabench (or
 * ./.evabench-cache without HOME). out gets "<folder>/zeroshot-<key>.h5". */
void eva_zs_cache_path(char *out, size_t cap, const char *dir, const char *key);
/* Loads W[C,E] if path holds key with that shape: EVA_OK; a missing file, another key or shape
 * give EVA_ERR_IO/EVA_ERR_FORMAT (the caller recomputes). */
eva_status eva_zs_cache_load(float *W, const char *path, const char *key, int C, int E);
/* Writes atomically (temporary file + rename), creating the folder. Attributes record the key
 * parts for people reading the file. */
eva_status eva_zs_cache_store(const char *path, const char *key, const float *W, int C, int E, const char *model,
                              const char *weights_sha256, const char *templates_name, const char *impl,
                              const char *precision);

/* ---- images ---------------------------------------------------------------------------------- */
/* The image as torchvision's ImageFolder + open_clip's eval transform see it: decode, convert the
 * whole picture to RGB first (pil_loader), then Resize(S, bicubic) / CenterCrop(S) / normalise.
 * out[3,S,S]. */
eva_status eva_zs_load_image_folder_style(float *out, const char *path, int size);

/* ---- progress -------------------------------------------------------------------------------- */
typedef struct {
    FILE *f;        /* stderr */
    bool live;      /* redraw a line in place (terminal) */
    double t0, last;
    const char *what;
} eva_zs_progress;
void eva_zs_progress_start(eva_zs_progress *p, FILE *f, bool live, const char *what);
/* top1 < 0: not shown. Redraws at most every 0.2 s when live. */
void eva_zs_progress_update(eva_zs_progress *p, int64_t done, int64_t total, double top1);
/* Final line (always printed). */
void eva_zs_progress_end(eva_zs_progress *p, int64_t done, int64_t total, double top1);
double eva_zs_now(void);

/* ---- published numbers (docs/model.md §10) --------------------------------------------------- */
typedef struct {
    const char *official;  /* EVA02-CLIP-B-16 */
    const char *open_clip; /* EVA02-B-16 */
    double card_acc1;      /* EVA-CLIP README, IN-1K zero-shot top-1, % */
    double open_clip_acc1; /* open_clip docs/openclip_results.csv, % */
    double card_acc5;      /* % or NaN when not published */
} eva_zs_published;
/* The entry of a variant (official or open_clip name, case-insensitive), NULL if none. */
const eva_zs_published *eva_zs_published_find(const char *name);

/* ---- a loaded model behind the backend, with its tokenizer (shared by zeroshot and classify) --- */
typedef struct {
    eva_config cfg;
    const char *cfg_source; /* "--config", "--variant", "weights metadata" */
    eva_model model;
    eva_backend be;
    eva_tokenizer *tok;
    int text_batch; /* prompts per text-tower call */
} eva_zs_session;
/* Config (--config / --variant / weights metadata), checks that the text tower takes the CLIP
 * BPE ids (vocab_size >= 49408), without loading the weights yet. */
eva_status eva_zs_session_config(eva_zs_session *s, const char *weights, const char *config_path,
                                 const char *variant);
/* Loads the weights, opens the backend and the tokenizer. */
eva_status eva_zs_session_open(eva_zs_session *s, const char *weights, eva_impl impl, eva_precision prec);
/* A text encoder over the session (progress may be set afterwards). */
void eva_zs_session_text_encoder(eva_zs_session *s, eva_zs_text_encoder *enc);
void eva_zs_session_close(eva_zs_session *s);

/* ---- CSV ------------------------------------------------------------------------------------- */
/* Writes s as one CSV field (quoted as Python's csv module does when it holds , " \r or \n). */
void eva_zs_csv_field(FILE *f, const char *s);

#endif
