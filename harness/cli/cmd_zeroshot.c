/* cmd_zeroshot.c: `evabench zeroshot`: zero-shot classification accuracy on an image folder or
 * ImageNet-1K val, by the protocol of docs/model.md §8 (harness/lib/zeroshot.h does the work; this
 * file parses options, drives the run, prints and writes the reports). Parse -> prepare (config,
 * templates, dataset, class names) -> open the model -> classifier (cache or text tower) -> images
 * -> report.
 *
 * Decisions:
 * - --dataset defaults to imagenet1k when DIR (or DIR/val) holds exactly 1000 WordNet-id folders,
 *   else folder. imagenet1k uses the built-in OpenAI-curated names unless --classnames is given.
 *   folder: --classnames FILE, else DIR/classnames.txt, else the folder names themselves (the
 *   source is written in the report).
 * - A file that does not decode (corrupt, not an image) is reported on stderr, counted and listed
 *   in the JSON; the run goes on and exits 0. A run where no file decodes exits 2.
 * - --limit N keeps N images round-robin across classes, so a short run touches every class.
 * - The classifier is cached (harness/lib/zeroshot.h) unless --no-cache.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "sysinfo.h"
#include "zeroshot.h"
#include "zeroshot_shard.h"

typedef struct {
    const char *weights, *variant, *config, *data, *dataset, *classnames, *templates, *impl, *precision;
    const char *json, *predictions, *cache_dir;
    long batch, limit;
    bool no_cache;
    eva_zs_dataset_type type;
} zs_args;

static const char *const zs_synopsis =
    "usage: evabench zeroshot --weights W.safetensors [--variant NAME | --config C.json] --data DIR\n"
    "                         [--dataset imagenet1k|folder] [--classnames FILE] [--templates openai|simple|FILE]\n"
    "                         [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--batch N] [--limit N]\n"
    "                         [--json OUT.json] [--predictions OUT.csv] [--cache-dir DIR] [--no-cache]\n"
    "\n"
    "Zero-shot classification by the CLIP protocol (docs/model.md §8): per class, the prompts made from\n"
    "the templates are encoded, L2-normalised, averaged and re-normalised; each image's logits are\n"
    "100 * cosine with every class; reports top-1, top-5 and mean per-class recall. DIR holds one\n"
    "subfolder per class, sorted order = class index (ImageNet: DIR or DIR/val with the 1000 WordNet-id\n"
    "folders). Class names: --classnames, else for imagenet1k the OpenAI-curated names, else\n"
    "DIR/classnames.txt, else the folder names. --json writes a CLIP_benchmark-style result (dataset,\n"
    "model, pretrained, task, metrics{acc1, acc5, mean_per_class_recall}) plus the protocol, the skipped\n"
    "images and, for a known variant on imagenet1k, the model card's number.\n";

static const char *const zs_epilog =
    "Progress (images, images/s, ETA, running top-1) goes to stderr when it is a terminal; a final line\n"
    "always. Unreadable or non-image files are reported, counted, skipped and listed in the JSON.\n"
    "mpirun -np N evabench zeroshot ... splits the classes and the images over N ranks (each rank the GPU of\n"
    "its local rank with --impl cuda); rank 0 writes the one report; a rerun resumes from the per-rank\n"
    "image caches. A failing rank ends the run naming the rank.\n"
    "Exit status: 0 the run completed, 2 bad usage or input (missing folder, no classes, class-name\n"
    "count mismatch, no readable image, ...), 3 internal failure.\n";

/* The values the table cannot check: required options and --dataset. */
static int check_args(zs_args *a) {
    if (!a->weights || !a->data)
        return eva_cli_usage_error("zeroshot", "--weights W and --data DIR are required (see --help)");
    if (!a->dataset) a->type = EVA_ZS_AUTO;
    else if (!strcmp(a->dataset, "imagenet1k")) a->type = EVA_ZS_IMAGENET1K;
    else if (!strcmp(a->dataset, "folder")) a->type = EVA_ZS_FOLDER;
    else return eva_cli_usage_error("zeroshot", "--dataset '%s': expected imagenet1k or folder", a->dataset);
    return -1;
}

static int parse(zs_args *a, int argc, char **argv) {
    *a = (zs_args){.templates = "openai", .impl = "ref", .precision = "fp32", .batch = 32};
    const eva_opt opts[] = {
        EVA_ARG_STR("--weights", &a->weights, "W", "safetensors weights (required)"),
        EVA_ARG_STR("--variant", &a->variant, "NAME", "built-in config (else --config, else the weights' metadata)"),
        EVA_ARG_STR("--config", &a->config, "C.json", "config JSON"),
        EVA_ARG_STR("--data", &a->data, "DIR", "one subfolder per class (required)"),
        EVA_ARG_STR("--dataset", &a->dataset, "D",
                    "imagenet1k or folder; default: imagenet1k when DIR holds 1000 WordNet-id folders"),
        EVA_ARG_STR("--classnames", &a->classnames, "FILE", "class names, one per line, in class-folder order"),
        EVA_ARG_STR("--templates", &a->templates, "T",
                    "openai (80 prompts, default), simple (7) or a file, one template per line with {}"),
        EVA_ARG_STR("--impl", &a->impl, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->precision, "P", "fp32 (default), tf32, bf16, fp16 (cuda only)"),
        EVA_ARG_LONG("--batch", &a->batch, "N", "images per image-tower call (default 32)", 1, 4096),
        EVA_ARG_LONG("--limit", &a->limit, "N", "evaluate N images, taken round-robin across classes", 1, 1L << 40),
        EVA_ARG_STR("--json", &a->json, "OUT.json", "the result as JSON (see above)"),
        EVA_ARG_STR("--predictions", &a->predictions, "CSV",
                    "path,label,top1,top2,top3,top4,top5 (path relative to DIR, class indices)"),
        EVA_ARG_STR("--cache-dir", &a->cache_dir, "DIR",
                    "class and image embedding cache (default $EVA_CACHE_DIR, else ~/.cache/evabench)"),
        EVA_ARG_FLAG("--no-cache", &a->no_cache, "neither read nor write the cache"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {"zeroshot", zs_synopsis, opts, NULL, zs_epilog};
    int r = eva_cli_parse(&spec, argc, argv);
    return r >= 0 ? r : check_args(a);
}

typedef struct {
    char *path;
    char *reason;
} skipped_item;

/* Everything a run holds, from the options to the metrics. */
typedef struct {
    eva_impl impl;
    eva_precision prec;
    eva_zs_session sess;
    eva_zs_dataset ds;
    bool imagenet, tty;
    int64_t n_found; /* files before --limit */
    const char *prefix; /* "val/" when the classes are in DIR/val: paths in the reports are relative to DIR */
    eva_zs_list classes, templates;
    const char *templates_name;
    char class_source[4200];
    int C, E, S;
    char wsha[65], th[65], ch[65]; /* sha256 of the weights, the templates, the class names */
    float *W;                      /* [C,E] classifier */
    bool clf_cached;
    char cache_path[4200];
    const char *cache_state;
    eva_zs_metrics met;
    skipped_item *skipped;
    int64_t n_skipped;
    double t_hash, t_clf, t_img;
    eva_shard sh;                 /* this rank of an mpirun (rank 0 of 1 otherwise) */
    eva_zs_image_results res;     /* per-image top-5 and skips (rank 0) */
} zs_run;

static void run_free(zs_run *r) {
    for (int64_t i = 0; i < r->n_skipped; i++) free(r->skipped[i].path), free(r->skipped[i].reason);
    free(r->skipped);
    free(r->W);
    eva_zs_metrics_free(&r->met);
    eva_zs_list_free(&r->classes);
    eva_zs_list_free(&r->templates);
    eva_zs_dataset_free(&r->ds);
    eva_zs_session_close(&r->sess);
    eva_zs_image_results_free(&r->res);
}

/* The quick checks first: backend, config, templates, dataset, class names. */
static eva_status prepare(zs_run *r, const zs_args *a) {
    eva_status st;
    r->tty = isatty(2);
    r->cache_state = a->no_cache ? "disabled" : "miss";
    if ((st = eva_backend_select(&r->impl, &r->prec, a->impl, a->precision)) != EVA_OK) return st;
    if ((st = eva_zs_session_config(&r->sess, a->weights, a->config, a->variant)) != EVA_OK) return st;
    if ((st = eva_zs_templates_load(&r->templates, a->templates, &r->templates_name)) != EVA_OK) return st;
    if ((st = eva_zs_dataset_open(&r->ds, &r->imagenet, a->data, a->type)) != EVA_OK) return st;
    if (r->imagenet && !eva_zs_classes_are_wnids(&r->ds))
        fprintf(stderr, "evabench zeroshot: warning: %s: class folders are not all WordNet ids (n########); the "
                        "sorted order is still taken as the ImageNet class index\n", r->ds.root);
    st = eva_zs_class_names(&r->classes, r->class_source, sizeof r->class_source, &r->ds, a->classnames, r->imagenet);
    if (st != EVA_OK) return st;
    r->n_found = r->ds.n_items;
    eva_zs_dataset_limit(&r->ds, a->limit);
    if (r->ds.n_items == 0)
        return eva_fail(EVA_ERR_INVALID_ARG, "--data %s: the %d class folders hold no files", r->ds.root,
                        r->ds.n_classes);
    r->prefix = strcmp(r->ds.root, a->data) ? "val/" : "";
    r->C = r->classes.n, r->E = r->sess.cfg.embed_dim, r->S = r->sess.cfg.vision.image_size;
    return EVA_OK;
}

/* Hashes the weights (the cache key and the report name them), then loads them. */
static eva_status open_model(zs_run *r, const zs_args *a) {
    double t0 = eva_zs_now();
    if (r->tty) fprintf(stderr, "zeroshot: hashing %s...\n", a->weights);
    eva_status st = eva_sha256_file(r->wsha, a->weights);
    if (st != EVA_OK) return st;
    r->t_hash = eva_zs_now() - t0;
    if (r->impl == EVA_IMPL_CUDA) eva_shard_pick_device(&r->sh);
    return eva_zs_session_open(&r->sess, a->weights, r->impl, r->prec);
}

static void clf_progress(void *ctx, int64_t done, int64_t total) { eva_zs_progress_update(ctx, done, total, -1); }

/* W <- the classifier computed by the text tower, with a progress line. */
static eva_status compute_classifier(zs_run *r) {
    eva_zs_progress pp;
    const bool show = r->sh.rank == 0;
    eva_zs_progress_start(&pp, stderr, r->tty, r->sh.size > 1 ? "classifier (classes, rank 0's share)"
                                                               : "classifier (classes)");
    eva_zs_text_encoder enc;
    eva_zs_session_text_encoder(&r->sess, &enc);
    enc.progress = show ? clf_progress : NULL;
    enc.progress_ctx = &pp;
    eva_status st = eva_zs_build_classifier_sharded(&r->sh, r->W, &r->classes, &r->templates, &enc);
    if (st == EVA_OK && show) eva_zs_progress_end(&pp, r->C, r->C, -1);
    return st;
}

/* W <- the cached classifier, else the text tower's (then cached; a cache that cannot be written
 * is a warning). */
static eva_status classifier(zs_run *r, const zs_args *a) {
    char key[65];
    eva_zs_list_hash(r->th, &r->templates);
    eva_zs_list_hash(r->ch, &r->classes);
    char *cfg_json = eva_config_to_json(&r->sess.cfg, false);
    eva_zs_cache_key(key, r->wsha, cfg_json ? cfg_json : r->sess.cfg.name, r->th, r->ch, a->impl,
                     eva_precision_name(r->prec));
    free(cfg_json);
    if (!(r->W = malloc((size_t)r->C * (size_t)r->E * sizeof *r->W)))
        return eva_fail(EVA_ERR_NOMEM, "out of memory for the classifier [%d,%d]", r->C, r->E);
    double t0 = eva_zs_now();
    if (!a->no_cache) {
        eva_zs_cache_path(r->cache_path, sizeof r->cache_path, a->cache_dir, key);
        r->clf_cached = eva_zs_cache_load(r->W, r->cache_path, key, r->C, r->E) == EVA_OK;
        eva_clear_error();
    }
    r->clf_cached = eva_zs_all_hit(&r->sh, r->clf_cached); /* the ranks build it together or not at all */
    if (r->clf_cached) r->cache_state = "hit";
    if (!r->clf_cached) {
        eva_status st = compute_classifier(r);
        if (st != EVA_OK) return st;
        if (!a->no_cache && r->sh.rank == 0 && eva_zs_cache_store(r->cache_path, key, r->W, r->C, r->E, r->sess.cfg.name, r->wsha,
                                               r->templates_name, a->impl, eva_precision_name(r->prec)) != EVA_OK) {
            fprintf(stderr, "evabench zeroshot: warning: classifier not cached: %s\n", eva_last_error());
            r->cache_state = "miss (not written)";
        }
    }
    r->t_clf = eva_zs_now() - t0;
    if (r->sh.rank == 0)
        fprintf(stderr, "zeroshot: classifier [%d classes x %d templates] %s in %.3f s%s%s\n", r->C, r->templates.n,
            r->clf_cached ? "loaded from cache" : "computed by the text tower", r->t_clf,
            r->cache_path[0] ? ": " : "", r->cache_path);
    return EVA_OK;
}

static void img_progress(void *ctx, int64_t done, int64_t total, double top1) {
    eva_zs_progress_update(ctx, done, total, top1);
}

/* Rank 0: the gathered skips into the report's list, each on stderr. */
static eva_status collect_skips(zs_run *r) {
    const eva_rt_skips *sk = &r->res.skips;
    if (!sk->n) return EVA_OK;
    if (!(r->skipped = calloc((size_t)sk->n, sizeof *r->skipped))) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < sk->n; i++) {
        const char *rel = r->ds.items[sk->v[i].index].path;
        size_t pl = strlen(r->prefix) + strlen(rel) + 1;
        skipped_item *it = &r->skipped[r->n_skipped++];
        it->path = malloc(pl);
        it->reason = strdup(sk->v[i].reason);
        if (it->path) snprintf(it->path, pl, "%s%s", r->prefix, rel);
        fprintf(stderr, "zeroshot: skipped %s/%s: %s\n", r->ds.root, rel, sk->v[i].reason);
    }
    return EVA_OK;
}

/* Every image (this rank's block; cache or tower), gathered; rank 0 scores them in dataset order. */
static eva_status run_images(zs_run *r, const zs_args *a, FILE *pred) {
    eva_status st = eva_zs_metrics_init(&r->met, r->C);
    char *cfg_json = eva_config_to_json(&r->sess.cfg, false);
    eva_zs_image_cache cache = {a->cache_dir, a->no_cache, r->wsha, cfg_json ? cfg_json : r->sess.cfg.name, a->impl,
                                eva_precision_name(r->prec)};
    eva_zs_progress ip;
    eva_zs_progress_start(&ip, stderr, r->tty, r->sh.size > 1 ? "images (rank 0's share)" : "images");
    const double t0 = eva_zs_now();
    if (st == EVA_OK)
        st = eva_zs_classify_sharded(&r->sh, &r->sess, &r->ds, r->W, r->C, (int)a->batch, &cache, &r->res,
                                     r->sh.rank == 0 ? img_progress : NULL, &ip);
    free(cfg_json);
    r->t_img = r->sh.size > 1 ? r->res.seconds : eva_zs_now() - t0;
    if (st != EVA_OK || r->sh.rank != 0) return st;
    if ((st = eva_zs_results_account(&r->ds, &r->res, r->C, r->prefix, &r->met, pred)) != EVA_OK) return st;
    if ((st = collect_skips(r)) != EVA_OK) return st;
    eva_zs_progress_end(&ip, r->met.n + r->n_skipped, r->ds.n_items, r->met.n ? eva_zs_acc1(&r->met) : -1);
    return EVA_OK;
}

/* run_images with the --predictions file around it. */
static eva_status evaluate(zs_run *r, const zs_args *a) {
    FILE *pred = NULL;
    if (a->predictions && r->sh.rank == 0) {
        if (!(pred = fopen(a->predictions, "w")))
            return eva_fail(EVA_ERR_IO, "--predictions %s: cannot create", a->predictions);
        fputs("path,label,top1,top2,top3,top4,top5\n", pred);
    }
    eva_status st = run_images(r, a, pred);
    if (pred) {
        int bad = ferror(pred);
        if ((fclose(pred) != 0 || bad) && st == EVA_OK)
            st = eva_fail(EVA_ERR_IO, "--predictions %s: write failed", a->predictions);
    }
    return st;
}

/* ---- report ---------------------------------------------------------------------------------- */

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* Last path component, trailing slashes ignored ("a/b/" -> "b"), into buf. */
static const char *base_name_buf(char *buf, size_t cap, const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), p + b);
    return buf;
}

/* "N images/s" through the image tower, or where the embeddings came from. */
static const char *images_rate(const zs_run *r) {
    static char buf[64];
    if (r->res.encoded > 0 && r->t_img > 0) snprintf(buf, sizeof buf, "%.2f images/s", (double)r->res.encoded / r->t_img);
    else snprintf(buf, sizeof buf, "image cache %s", r->res.cache ? r->res.cache : "?");
    return buf;
}

static void print_summary(const zs_run *r, const zs_args *a, const eva_zs_published *pub) {
    const eva_zs_metrics *m = &r->met;
    double acc1 = eva_zs_acc1(m), acc5 = eva_zs_acc5(m), mpcr = eva_zs_mean_per_class_recall(m);
    printf("zeroshot: %s on %s %s (%d classes): %lld images evaluated, %lld skipped%s\n", r->sess.cfg.name,
           r->imagenet ? "imagenet1k" : "folder", r->ds.root, r->C, (long long)m->n, (long long)r->n_skipped,
           a->limit ? " (--limit)" : "");
    printf("  protocol: templates %s (%d), class names: %s, impl %s, precision %s, weights sha256 %.16s...\n",
           r->templates_name, r->templates.n, r->class_source, a->impl, eva_precision_name(r->prec), r->wsha);
    printf("  classifier: %s in %.3f s; images: %.3f s (%s); weights hash %.3f s\n",
           r->clf_cached ? "from cache" : "text tower", r->t_clf, r->t_img, images_rate(r), r->t_hash);
    if (r->sh.size > 1) printf("  ranks: %d (classes and images split in contiguous blocks)\n", r->sh.size);
    char acc5s[32];
    if (isfinite(acc5)) snprintf(acc5s, sizeof acc5s, "%.4f", acc5);
    else snprintf(acc5s, sizeof acc5s, "n/a (< 5 classes)");
    printf("  acc1 %.4f  acc5 %s  mean_per_class_recall %.4f\n", acc1, acc5s, mpcr);
    if (pub)
        printf("  model card (EVA-CLIP README): top-1 %.1f%%; open_clip re-evaluation %.2f%%; ours %.2f%% (%+.2f vs "
               "card)%s\n", pub->card_acc1, pub->open_clip_acc1, 100 * acc1, 100 * acc1 - pub->card_acc1,
               a->limit ? " [subset: not comparable]" : "");
    for (int64_t i = 0; i < r->n_skipped; i++)
        printf("  skipped: %s: %s\n", r->skipped[i].path ? r->skipped[i].path : "?",
               r->skipped[i].reason ? r->skipped[i].reason : "?");
}

/* protocol: what was evaluated and how. */
static void add_protocol_setup(cJSON *p, const zs_run *r, const zs_args *a) {
    cJSON_AddStringToObject(p, "dataset_type", r->imagenet ? "imagenet1k" : "folder");
    cJSON_AddStringToObject(p, "data_root", r->ds.root);
    cJSON_AddNumberToObject(p, "classes", r->C);
    cJSON_AddStringToObject(p, "class_names", r->class_source);
    cJSON_AddStringToObject(p, "class_names_sha256", r->ch);
    cJSON_AddStringToObject(p, "templates", r->templates_name);
    cJSON_AddNumberToObject(p, "templates_count", r->templates.n);
    cJSON_AddStringToObject(p, "templates_sha256", r->th);
    cJSON_AddStringToObject(p, "classifier", "per class: mean of the L2-normalised prompt embeddings, "
                                             "re-normalised; logits = 100 * cosine (docs/model.md §8)");
    cJSON_AddStringToObject(p, "preprocess", "convert('RGB') on load (ImageFolder), Resize(S, bicubic, shortest "
                                             "side), CenterCrop(S), /255, CLIP mean/std (docs/model.md §7)");
    cJSON_AddNumberToObject(p, "image_size", r->S);
    cJSON_AddStringToObject(p, "impl", a->impl);
    cJSON_AddStringToObject(p, "precision", eva_precision_name(r->prec));
    const char *dev = eva_backend_describe(&r->sess.be);
    cJSON_AddStringToObject(p, "device", dev ? dev : "cpu");
    cJSON_AddStringToObject(p, "weights", a->weights);
    cJSON_AddStringToObject(p, "weights_sha256", r->wsha);
    cJSON_AddStringToObject(p, "config_source", r->sess.cfg_source ? r->sess.cfg_source : "?");
}

/* protocol: what happened: counts, skipped files, cache, timings. */
static void add_protocol_run(cJSON *p, const zs_run *r, const zs_args *a) {
    cJSON_AddNumberToObject(p, "files_found", (double)r->n_found);
    if (a->limit) cJSON_AddNumberToObject(p, "limit", (double)a->limit);
    else cJSON_AddNullToObject(p, "limit");
    cJSON_AddNumberToObject(p, "images_evaluated", (double)r->met.n);
    cJSON_AddNumberToObject(p, "images_skipped", (double)r->n_skipped);
    cJSON *sk = cJSON_AddArrayToObject(p, "skipped");
    for (int64_t i = 0; i < r->n_skipped; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", r->skipped[i].path ? r->skipped[i].path : "?");
        cJSON_AddStringToObject(o, "reason", r->skipped[i].reason ? r->skipped[i].reason : "?");
        cJSON_AddItemToArray(sk, o);
    }
    cJSON_AddStringToObject(p, "classifier_cache", r->cache_state);
    if (r->cache_path[0]) cJSON_AddStringToObject(p, "cache_path", r->cache_path);
    cJSON_AddStringToObject(p, "image_cache", r->res.cache ? r->res.cache : "?");
    cJSON_AddNumberToObject(p, "ranks", r->sh.size);
    eva_sysinfo si;
    eva_sysinfo_get(&si);
    cJSON_AddStringToObject(p, "host", si.hostname);
    cJSON *tm = cJSON_AddObjectToObject(p, "timing_s");
    cJSON_AddNumberToObject(tm, "weights_hash", r->t_hash);
    cJSON_AddNumberToObject(tm, "classifier", r->t_clf);
    cJSON_AddNumberToObject(tm, "images", r->t_img);
    cJSON_AddItemToObject(p, "images_per_s",
                          num_or_null(r->t_img > 0 && r->res.encoded > 0 ? (double)r->res.encoded / r->t_img : NAN));
    cJSON_AddStringToObject(p, "evabench", EVA_VERSION " (" EVA_GIT_REV ")");
}

/* reference: the published numbers of the variant beside ours. */
static void add_reference(cJSON *root, const zs_run *r, const zs_args *a, const eva_zs_published *pub) {
    const double acc1 = eva_zs_acc1(&r->met);
    cJSON *o = cJSON_AddObjectToObject(root, "reference");
    cJSON_AddStringToObject(o, "source", "EVA-CLIP model card (baaivision/EVA EVA-CLIP/README.md), "
                                         "docs/model.md §10.1; open_clip docs/openclip_results.csv (§10.4)");
    cJSON_AddNumberToObject(o, "card_acc1", pub->card_acc1 / 100.0);
    cJSON_AddNumberToObject(o, "open_clip_acc1", pub->open_clip_acc1 / 100.0);
    cJSON_AddItemToObject(o, "card_acc5", num_or_null(pub->card_acc5 / 100.0));
    cJSON_AddItemToObject(o, "ours_acc1", num_or_null(acc1));
    cJSON_AddItemToObject(o, "ours_minus_card_acc1", num_or_null(acc1 - pub->card_acc1 / 100.0));
    cJSON_AddBoolToObject(o, "comparable", !a->limit && r->n_skipped == 0 && r->met.n == 50000);
    cJSON_AddStringToObject(o, "note", "card numbers: 50,000 val images, fp16 autocast; expect about "
                                       "0.1-0.3 points between correct implementations");
}

/* The CLIP_benchmark-style result with the protocol, the reference, class names and templates. */
static cJSON *result_json(const zs_run *r, const zs_args *a, const eva_zs_published *pub) {
    cJSON *root = cJSON_CreateObject();
    char bn[512];
    cJSON_AddStringToObject(root, "dataset", r->imagenet ? "imagenet1k" : base_name_buf(bn, sizeof bn, a->data));
    cJSON_AddStringToObject(root, "model", r->sess.cfg.name);
    cJSON_AddStringToObject(root, "pretrained", base_name_buf(bn, sizeof bn, a->weights));
    cJSON_AddStringToObject(root, "task", "zeroshot_classification");
    cJSON_AddStringToObject(root, "language", "en");
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(root, "date", date);
    cJSON *m = cJSON_AddObjectToObject(root, "metrics");
    cJSON_AddItemToObject(m, "acc1", num_or_null(eva_zs_acc1(&r->met)));
    cJSON_AddItemToObject(m, "acc5", num_or_null(eva_zs_acc5(&r->met)));
    cJSON_AddItemToObject(m, "mean_per_class_recall", num_or_null(eva_zs_mean_per_class_recall(&r->met)));
    cJSON *p = cJSON_AddObjectToObject(root, "protocol");
    add_protocol_setup(p, r, a);
    add_protocol_run(p, r, a);
    if (pub) add_reference(root, r, a, pub);
    cJSON *cn = cJSON_AddArrayToObject(root, "classnames");
    for (int c = 0; c < r->C; c++) cJSON_AddItemToArray(cn, cJSON_CreateString(r->classes.s[c]));
    cJSON *tl = cJSON_AddArrayToObject(root, "templates");
    for (int t = 0; t < r->templates.n; t++) cJSON_AddItemToArray(tl, cJSON_CreateString(r->templates.s[t]));
    return root;
}

static eva_status write_json(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    free(text);
    return ok ? EVA_OK : eva_fail(EVA_ERR_IO, "--json %s: cannot write", path);
}

/* Summary on stdout, --json; exit 2 when no file was an image. */
static int report(const zs_run *r, const zs_args *a) {
    const eva_zs_published *pub = r->imagenet ? eva_zs_published_find(r->sess.cfg.name) : NULL;
    print_summary(r, a, pub);
    if (a->json) {
        cJSON *root = result_json(r, a, pub);
        eva_status st = write_json(a->json, root);
        cJSON_Delete(root);
        if (st != EVA_OK) return eva_cli_fail("zeroshot", st);
    }
    if (r->met.n == 0) {
        fprintf(stderr, "evabench zeroshot: none of the %lld files under %s could be read as an image\n",
                (long long)r->ds.n_items, r->ds.root);
        return 2;
    }
    return 0;
}

int eva_cmd_zeroshot(int argc, char **argv) {
    zs_args a;
    int code = parse(&a, argc, argv);
    if (code >= 0) return code;
    zs_run r = {0};
    eva_status st = eva_shard_init(&r.sh, &argc, &argv);
    if (st != EVA_OK) return eva_cli_fail("zeroshot", st);
    st = prepare(&r, &a);
    if (st == EVA_OK) st = open_model(&r, &a);
    if (st == EVA_OK) st = classifier(&r, &a);
    if (st == EVA_OK) st = evaluate(&r, &a);
    if (st == EVA_OK) code = r.sh.rank == 0 ? report(&r, &a) : 0;
    else if (r.sh.size > 1) { /* name the rank, then end every rank */
        fprintf(stderr, "evabench zeroshot: rank %d of %d: %s\n", r.sh.rank, r.sh.size, eva_last_error());
        code = eva_shard_abort(&r.sh, eva_status_exit_code(st) ? eva_status_exit_code(st) : 3);
    } else
        code = eva_cli_fail("zeroshot", st);
    run_free(&r);
    eva_shard_finalize(&r.sh);
    return code;
}
