/* cmd_zeroshot.c: `evabench zeroshot`: zero-shot classification accuracy on an image folder or
 * ImageNet-1K val, by the protocol of docs/model.md §8 (harness/zeroshot.h does the work; this
 * file parses options, drives the run, prints and writes the reports).
 *
 * Decisions:
 * - --dataset defaults to imagenet1k when DIR (or DIR/val) holds exactly 1000 WordNet-id folders,
 *   else folder. imagenet1k uses the built-in OpenAI-curated names unless --classnames is given.
 *   folder: --classnames FILE, else DIR/classnames.txt, else the folder names themselves (the
 *   source is written in the report).
 * - A file that does not decode (corrupt, not an image) is reported on stderr, counted and listed
 *   in the JSON; the run goes on and exits 0. A run where no file decodes exits 2.
 * - --limit N keeps N images round-robin across classes, so a short run touches every class.
 * - The classifier is cached (harness/zeroshot.h) unless --no-cache.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "eva_image.h"
#include "zeroshot.h"

static const char *zs_usage =
    "usage: evabench zeroshot --weights W.safetensors [--variant NAME | --config C.json] --data DIR\n"
    "                         [--dataset imagenet1k|folder] [--classnames FILE] [--templates openai|simple|FILE]\n"
    "                         [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--batch N] [--limit N]\n"
    "                         [--json OUT.json] [--predictions OUT.csv] [--cache-dir DIR] [--no-cache]\n"
    "\n"
    "Zero-shot classification by the CLIP protocol (docs/model.md §8): per class, the prompts made from\n"
    "the templates are encoded, L2-normalised, averaged and re-normalised; each image's logits are\n"
    "100 * cosine with every class; reports top-1, top-5 and mean per-class recall.\n"
    "\n"
    "  --weights W        safetensors weights (required)\n"
    "  --variant NAME     built-in config (else --config, else the weights' evabench.config metadata)\n"
    "  --config C.json    config JSON\n"
    "  --data DIR         one subfolder per class, sorted order = class index (ImageNet: DIR or DIR/val\n"
    "                     with the 1000 WordNet-id folders)\n"
    "  --dataset D        imagenet1k (1000 classes, OpenAI-curated names) or folder; default: imagenet1k\n"
    "                     when DIR holds 1000 WordNet-id folders, else folder\n"
    "  --classnames FILE  class names, one per line, in class-folder order (folder default:\n"
    "                     DIR/classnames.txt, else the folder names)\n"
    "  --templates T      openai (the 80 ImageNet prompts, default), simple (7) or a file, one template\n"
    "                     per line with {} where the class name goes\n"
    "  --impl ref|cuda    implementation (default ref)\n"
    "  --precision P      fp32 (default), tf32, bf16, fp16 (cuda only)\n"
    "  --batch N          images per image-tower call (default 32)\n"
    "  --limit N          evaluate N images, taken round-robin across classes\n"
    "  --json OUT.json    CLIP_benchmark-style result (dataset, model, pretrained, task, metrics{acc1, acc5,\n"
    "                     mean_per_class_recall}) plus the protocol, skipped images and, for a known\n"
    "                     variant on imagenet1k, the model card's number\n"
    "  --predictions CSV  path,label,top1,top2,top3,top4,top5 (path relative to DIR, class indices)\n"
    "  --cache-dir DIR    class-embedding cache folder (default $EVA_CACHE_DIR, else ~/.cache/evabench)\n"
    "  --no-cache         neither read nor write the cache\n"
    "\n"
    "Progress (images, images/s, ETA, running top-1) goes to stderr when it is a terminal; a final line\n"
    "always. Unreadable or non-image files are reported, counted, skipped and listed in the JSON.\n"
    "Exit status: 0 the run completed, 2 bad usage or input (missing folder, no classes, class-name\n"
    "count mismatch, no readable image, ...), 3 internal failure.\n";

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

typedef struct {
    char *path;
    char *reason;
} skipped_item;

typedef struct {
    eva_zs_progress *p;
} clf_progress_ctx;

static void clf_progress(void *ctx, int64_t done, int64_t total) {
    clf_progress_ctx *c = ctx;
    eva_zs_progress_update(c->p, done, total, -1);
}

int eva_cmd_zeroshot(int argc, char **argv) {
    const char *weights = NULL, *variant = NULL, *config_path = NULL, *data = NULL, *dataset_s = NULL;
    const char *classnames_path = NULL, *templates_s = "openai", *impl_s = "ref", *prec_s = "fp32";
    const char *batch_s = "32", *limit_s = NULL, *json_out = NULL, *pred_out = NULL, *cache_dir = NULL;
    bool no_cache = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(zs_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--no-cache")) {
            no_cache = true;
            continue;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--weights", &weights)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--variant", &variant)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--config", &config_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--data", &data)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--dataset", &dataset_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--classnames", &classnames_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--templates", &templates_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--impl", &impl_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--precision", &prec_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--batch", &batch_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--limit", &limit_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--json", &json_out)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--predictions", &pred_out)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--cache-dir", &cache_dir))) {
            if (r < 0) {
                fprintf(stderr, "evabench zeroshot: option %s needs a value (see --help)\n", argv[i]);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "evabench zeroshot: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    if (!weights || !data) {
        fprintf(stderr, "evabench zeroshot: --weights W and --data DIR are required (see --help)\n");
        return 2;
    }
    long batch = 32, limit = 0;
    if (!eva_cli_parse_long(batch_s, 1, 4096, &batch)) {
        fprintf(stderr, "evabench zeroshot: --batch '%s': expected an integer in [1, 4096]\n", batch_s);
        return 2;
    }
    if (limit_s && !eva_cli_parse_long(limit_s, 1, 1L << 40, &limit)) {
        fprintf(stderr, "evabench zeroshot: --limit '%s': expected a positive integer\n", limit_s);
        return 2;
    }
    bool imagenet;
    int dataset_auto = !dataset_s;
    if (dataset_s && strcmp(dataset_s, "imagenet1k") && strcmp(dataset_s, "folder")) {
        fprintf(stderr, "evabench zeroshot: --dataset '%s': expected imagenet1k or folder\n", dataset_s);
        return 2;
    }

    eva_status st;
    eva_impl impl;
    eva_precision prec;
    if ((st = eva_backend_select(&impl, &prec, impl_s, prec_s)) != EVA_OK)
        return eva_cli_fail("zeroshot", st);

    int code = 3;
    eva_zs_session sess;
    eva_zs_dataset ds;
    eva_zs_list classes = {0}, templates = {0};
    eva_zs_metrics met;
    memset(&sess, 0, sizeof sess);
    memset(&ds, 0, sizeof ds);
    memset(&met, 0, sizeof met);
    float *W = NULL, *pix = NULL, *feat = NULL, *logits = NULL;
    int *batch_label = NULL;
    int64_t *batch_item = NULL;
    skipped_item *skipped = NULL;
    int64_t n_skipped = 0;
    FILE *pred = NULL;
    char *json_text = NULL;
    cJSON *root = NULL;
    const char *templates_name = NULL;
    char class_source[4200] = "";
    char cache_path[4200] = "";
    const char *cache_state = no_cache ? "disabled" : "miss";
    double t_hash = 0, t_clf = 0, t_img = 0;
    bool tty = isatty(2);

    /* Quick checks first: config, templates, dataset, class names. */
    if ((st = eva_zs_session_config(&sess, weights, config_path, variant)) != EVA_OK) goto fail;
    if ((st = eva_zs_templates_load(&templates, templates_s, &templates_name)) != EVA_OK) goto fail;
    imagenet = dataset_s && !strcmp(dataset_s, "imagenet1k");
    if ((st = eva_zs_scan(&ds, data, (imagenet || dataset_auto) ? 1000 : 0)) != EVA_OK) goto fail;
    if (dataset_auto) imagenet = ds.n_classes == 1000 && eva_zs_classes_are_wnids(&ds);
    if (imagenet && ds.n_classes != 1000) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "--data %s: imagenet1k needs the 1000 class folders (WordNet ids) of the "
                                           "val set, in DIR or DIR/val; found %d folders", data, ds.n_classes);
        goto fail;
    }
    if (imagenet && !eva_zs_classes_are_wnids(&ds))
        fprintf(stderr, "evabench zeroshot: warning: %s: class folders are not all WordNet ids (n########); the "
                        "sorted order is still taken as the ImageNet class index\n", ds.root);
    if (classnames_path) {
        if ((st = eva_zs_list_from_file(&classes, classnames_path)) != EVA_OK) goto fail;
        snprintf(class_source, sizeof class_source, "%s", classnames_path);
    } else if (imagenet) {
        if ((st = eva_zs_builtin(&classes, "imagenet_classnames.txt")) != EVA_OK) goto fail;
        snprintf(class_source, sizeof class_source, "OpenAI-curated ImageNet names (open_clip IMAGENET_CLASSNAMES)");
    } else {
        char p[4200];
        snprintf(p, sizeof p, "%s/classnames.txt", ds.root);
        if (access(p, F_OK) == 0) {
            if ((st = eva_zs_list_from_file(&classes, p)) != EVA_OK) goto fail;
            snprintf(class_source, sizeof class_source, "%s", p);
        } else {
            for (int c = 0; c < ds.n_classes; c++)
                if ((st = eva_zs_list_push(&classes, ds.classes[c], strlen(ds.classes[c]))) != EVA_OK) goto fail;
            snprintf(class_source, sizeof class_source, "class folder names");
        }
    }
    if (classes.n == 0) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: empty class list", class_source);
        goto fail;
    }
    if (classes.n != ds.n_classes) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "%s: %d class names, but %s has %d class folders (one name per folder, "
                                           "in sorted folder order)", class_source, classes.n, ds.root, ds.n_classes);
        goto fail;
    }
    const int64_t n_found = ds.n_items;
    eva_zs_dataset_limit(&ds, limit);
    if (ds.n_items == 0) {
        st = eva_fail(EVA_ERR_INVALID_ARG, "--data %s: the %d class folders hold no files", ds.root, ds.n_classes);
        goto fail;
    }
    const int C = classes.n, E = sess.cfg.embed_dim, S = sess.cfg.vision.image_size;

    /* Weights: hash, load, backend. */
    double t0 = eva_zs_now();
    char wsha[65];
    if (tty) fprintf(stderr, "zeroshot: hashing %s...\n", weights);
    if ((st = eva_sha256_file(wsha, weights)) != EVA_OK) goto fail;
    t_hash = eva_zs_now() - t0;
    if ((st = eva_zs_session_open(&sess, weights, impl, prec)) != EVA_OK) goto fail;

    /* Classifier: cache or text tower. */
    char th[65], ch[65], key[65];
    eva_zs_list_hash(th, &templates);
    eva_zs_list_hash(ch, &classes);
    char *cfg_json = eva_config_to_json(&sess.cfg, false);
    eva_zs_cache_key(key, wsha, cfg_json ? cfg_json : sess.cfg.name, th, ch, impl_s, eva_precision_name(prec));
    free(cfg_json);
    W = malloc((size_t)C * (size_t)E * sizeof *W);
    if (!W) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory for the classifier [%d,%d]", C, E);
        goto fail;
    }
    t0 = eva_zs_now();
    bool have_clf = false;
    if (!no_cache) {
        eva_zs_cache_path(cache_path, sizeof cache_path, cache_dir, key);
        if (eva_zs_cache_load(W, cache_path, key, C, E) == EVA_OK) {
            have_clf = true;
            cache_state = "hit";
        }
        eva_clear_error();
    }
    if (!have_clf) {
        eva_zs_progress pp;
        eva_zs_progress_start(&pp, stderr, tty, "classifier (classes)");
        clf_progress_ctx pc = {&pp};
        eva_zs_text_encoder enc;
        eva_zs_session_text_encoder(&sess, &enc);
        enc.progress = clf_progress;
        enc.progress_ctx = &pc;
        if ((st = eva_zs_build_classifier(W, &classes, &templates, &enc)) != EVA_OK) goto fail;
        eva_zs_progress_end(&pp, C, C, -1);
        if (!no_cache) {
            eva_status cs = eva_zs_cache_store(cache_path, key, W, C, E, sess.cfg.name, wsha, templates_name, impl_s,
                                               eva_precision_name(prec));
            if (cs != EVA_OK) {
                fprintf(stderr, "evabench zeroshot: warning: classifier not cached: %s\n", eva_last_error());
                cache_state = "miss (not written)";
            }
        }
    }
    t_clf = eva_zs_now() - t0;
    fprintf(stderr, "zeroshot: classifier [%d classes x %d templates] %s in %.3f s%s%s\n", C, templates.n,
            have_clf ? "loaded from cache" : "computed by the text tower", t_clf,
            cache_path[0] ? ": " : "", cache_path);

    /* Predictions file. */
    const char *prefix = strcmp(ds.root, data) ? "val/" : "";
    if (pred_out) {
        pred = fopen(pred_out, "w");
        if (!pred) {
            st = eva_fail(EVA_ERR_IO, "--predictions %s: cannot create", pred_out);
            goto fail;
        }
        fputs("path,label,top1,top2,top3,top4,top5\n", pred);
    }

    /* Images. */
    if ((st = eva_zs_metrics_init(&met, C)) != EVA_OK) goto fail;
    size_t px_per = (size_t)3 * S * S;
    pix = malloc((size_t)batch * px_per * sizeof *pix);
    feat = malloc((size_t)batch * (size_t)E * sizeof *feat);
    logits = malloc((size_t)C * sizeof *logits);
    batch_label = malloc((size_t)batch * sizeof *batch_label);
    batch_item = malloc((size_t)batch * sizeof *batch_item);
    if (!pix || !feat || !logits || !batch_label || !batch_item) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory for a batch of %ld images", batch);
        goto fail;
    }
    eva_zs_progress ip;
    eva_zs_progress_start(&ip, stderr, tty, "images");
    t0 = eva_zs_now();
    int64_t next = 0, done = 0;
    while (next < ds.n_items) {
        int nb = 0;
        while (nb < batch && next < ds.n_items) {
            const eva_zs_item *it = &ds.items[next];
            char full[8400];
            snprintf(full, sizeof full, "%s/%s", ds.root, it->path);
            eva_status is = eva_zs_load_image_folder_style(pix + (size_t)nb * px_per, full, S);
            if (is != EVA_OK) {
                if (is == EVA_ERR_NOMEM || is == EVA_ERR_INTERNAL) {
                    st = is;
                    goto fail;
                }
                skipped_item *ns = realloc(skipped, (size_t)(n_skipped + 1) * sizeof *ns);
                if (!ns) {
                    st = eva_fail(EVA_ERR_NOMEM, "out of memory");
                    goto fail;
                }
                skipped = ns;
                size_t pl = strlen(prefix) + strlen(it->path) + 1;
                skipped[n_skipped].path = malloc(pl);
                skipped[n_skipped].reason = strdup(eva_last_error());
                if (skipped[n_skipped].path) snprintf(skipped[n_skipped].path, pl, "%s%s", prefix, it->path);
                n_skipped++;
                if (tty) fputs("\n", stderr);
                fprintf(stderr, "zeroshot: skipped %s: %s\n", full, eva_last_error());
                eva_clear_error();
            } else {
                batch_label[nb] = it->label;
                batch_item[nb] = next;
                nb++;
            }
            next++;
        }
        if (nb == 0) break;
        if ((st = eva_backend_encode_image(&sess.be, feat, pix, nb, NULL)) != EVA_OK) goto fail;
        for (int b = 0; b < nb; b++) {
            int top[5];
            int k = C < 5 ? C : 5;
            eva_zs_logits(logits, feat + (size_t)b * E, W, C, E);
            eva_zs_topk(top, logits, C, k);
            eva_zs_metrics_add(&met, batch_label[b], top, k);
            if (pred) {
                char rel[8400];
                snprintf(rel, sizeof rel, "%s%s", prefix, ds.items[batch_item[b]].path);
                eva_zs_csv_field(pred, rel);
                fprintf(pred, ",%d", batch_label[b]);
                for (int j = 0; j < 5; j++) {
                    if (j < k) fprintf(pred, ",%d", top[j]);
                    else fputs(",", pred);
                }
                fputc('\n', pred);
            }
        }
        done += nb;
        eva_zs_progress_update(&ip, done + n_skipped, ds.n_items, eva_zs_acc1(&met));
    }
    eva_zs_progress_end(&ip, done + n_skipped, ds.n_items, met.n ? eva_zs_acc1(&met) : -1);
    t_img = eva_zs_now() - t0;
    if (pred) {
        int bad = ferror(pred);
        if (fclose(pred) != 0 || bad) {
            pred = NULL;
            st = eva_fail(EVA_ERR_IO, "--predictions %s: write failed", pred_out);
            goto fail;
        }
        pred = NULL;
    }

    /* Summary. */
    double acc1 = eva_zs_acc1(&met), acc5 = eva_zs_acc5(&met), mpcr = eva_zs_mean_per_class_recall(&met);
    const eva_zs_published *pub = imagenet ? eva_zs_published_find(sess.cfg.name) : NULL;
    printf("zeroshot: %s on %s %s (%d classes): %lld images evaluated, %lld skipped%s\n", sess.cfg.name,
           imagenet ? "imagenet1k" : "folder", ds.root, C, (long long)met.n, (long long)n_skipped,
           limit ? " (--limit)" : "");
    printf("  protocol: templates %s (%d), class names: %s, impl %s, precision %s, weights sha256 %.16s...\n",
           templates_name, templates.n, class_source, impl_s, eva_precision_name(prec), wsha);
    printf("  classifier: %s in %.3f s; images: %.3f s (%.2f images/s); weights hash %.3f s\n",
           have_clf ? "from cache" : "text tower", t_clf, t_img, t_img > 0 ? (double)met.n / t_img : 0.0, t_hash);
    char acc5s[32];
    if (isfinite(acc5)) snprintf(acc5s, sizeof acc5s, "%.4f", acc5);
    else snprintf(acc5s, sizeof acc5s, "n/a (< 5 classes)");
    printf("  acc1 %.4f  acc5 %s  mean_per_class_recall %.4f\n", acc1, acc5s, mpcr);
    if (pub)
        printf("  model card (EVA-CLIP README): top-1 %.1f%%; open_clip re-evaluation %.2f%%; ours %.2f%% (%+.2f vs "
               "card)%s\n", pub->card_acc1, pub->open_clip_acc1, 100 * acc1, 100 * acc1 - pub->card_acc1,
               limit ? " [subset: not comparable]" : "");
    for (int64_t i = 0; i < n_skipped; i++)
        printf("  skipped: %s: %s\n", skipped[i].path ? skipped[i].path : "?", skipped[i].reason ? skipped[i].reason : "?");

    if (json_out) {
        root = cJSON_CreateObject();
        char bn[512];
        cJSON_AddStringToObject(root, "dataset", imagenet ? "imagenet1k" : base_name_buf(bn, sizeof bn, data));
        cJSON_AddStringToObject(root, "model", sess.cfg.name);
        cJSON_AddStringToObject(root, "pretrained", base_name_buf(bn, sizeof bn, weights));
        cJSON_AddStringToObject(root, "task", "zeroshot_classification");
        cJSON_AddStringToObject(root, "language", "en");
        cJSON *m = cJSON_AddObjectToObject(root, "metrics");
        cJSON_AddItemToObject(m, "acc1", num_or_null(acc1));
        cJSON_AddItemToObject(m, "acc5", num_or_null(acc5));
        cJSON_AddItemToObject(m, "mean_per_class_recall", num_or_null(mpcr));
        cJSON *p = cJSON_AddObjectToObject(root, "protocol");
        cJSON_AddStringToObject(p, "dataset_type", imagenet ? "imagenet1k" : "folder");
        cJSON_AddStringToObject(p, "data_root", ds.root);
        cJSON_AddNumberToObject(p, "classes", C);
        cJSON_AddStringToObject(p, "class_names", class_source);
        cJSON_AddStringToObject(p, "class_names_sha256", ch);
        cJSON_AddStringToObject(p, "templates", templates_name);
        cJSON_AddNumberToObject(p, "templates_count", templates.n);
        cJSON_AddStringToObject(p, "templates_sha256", th);
        cJSON_AddStringToObject(p, "classifier", "per class: mean of the L2-normalised prompt embeddings, "
                                                 "re-normalised; logits = 100 * cosine (docs/model.md §8)");
        cJSON_AddStringToObject(p, "preprocess", "convert('RGB') on load (ImageFolder), Resize(S, bicubic, shortest "
                                                 "side), CenterCrop(S), /255, CLIP mean/std (docs/model.md §7)");
        cJSON_AddNumberToObject(p, "image_size", S);
        cJSON_AddStringToObject(p, "impl", impl_s);
        cJSON_AddStringToObject(p, "precision", eva_precision_name(prec));
        const char *dev = eva_backend_describe(&sess.be);
        cJSON_AddStringToObject(p, "device", dev ? dev : "cpu");
        cJSON_AddStringToObject(p, "weights", weights);
        cJSON_AddStringToObject(p, "weights_sha256", wsha);
        cJSON_AddStringToObject(p, "config_source", sess.cfg_source ? sess.cfg_source : "?");
        cJSON_AddNumberToObject(p, "files_found", (double)n_found);
        if (limit) cJSON_AddNumberToObject(p, "limit", (double)limit);
        else cJSON_AddNullToObject(p, "limit");
        cJSON_AddNumberToObject(p, "images_evaluated", (double)met.n);
        cJSON_AddNumberToObject(p, "images_skipped", (double)n_skipped);
        cJSON *sk = cJSON_AddArrayToObject(p, "skipped");
        for (int64_t i = 0; i < n_skipped; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", skipped[i].path ? skipped[i].path : "?");
            cJSON_AddStringToObject(o, "reason", skipped[i].reason ? skipped[i].reason : "?");
            cJSON_AddItemToArray(sk, o);
        }
        cJSON_AddStringToObject(p, "classifier_cache", cache_state);
        if (cache_path[0]) cJSON_AddStringToObject(p, "cache_path", cache_path);
        cJSON *tm = cJSON_AddObjectToObject(p, "timing_s");
        cJSON_AddNumberToObject(tm, "weights_hash", t_hash);
        cJSON_AddNumberToObject(tm, "classifier", t_clf);
        cJSON_AddNumberToObject(tm, "images", t_img);
        cJSON_AddItemToObject(p, "images_per_s", num_or_null(t_img > 0 ? (double)met.n / t_img : NAN));
        cJSON_AddStringToObject(p, "evabench", EVA_VERSION " (" EVA_GIT_REV ")");
        if (pub) {
            cJSON *r = cJSON_AddObjectToObject(root, "reference");
            cJSON_AddStringToObject(r, "source", "EVA-CLIP model card (baaivision/EVA EVA-CLIP/README.md), "
                                                 "docs/model.md §10.1; open_clip docs/openclip_results.csv (§10.4)");
            cJSON_AddNumberToObject(r, "card_acc1", pub->card_acc1 / 100.0);
            cJSON_AddNumberToObject(r, "open_clip_acc1", pub->open_clip_acc1 / 100.0);
            cJSON_AddItemToObject(r, "card_acc5", num_or_null(pub->card_acc5 / 100.0));
            cJSON_AddItemToObject(r, "ours_acc1", num_or_null(acc1));
            cJSON_AddItemToObject(r, "ours_minus_card_acc1", num_or_null(acc1 - pub->card_acc1 / 100.0));
            cJSON_AddBoolToObject(r, "comparable", !limit && n_skipped == 0 && met.n == 50000);
            cJSON_AddStringToObject(r, "note", "card numbers: 50,000 val images, fp16 autocast; expect about "
                                               "0.1-0.3 points between correct implementations");
        }
        cJSON *cn = cJSON_AddArrayToObject(root, "classnames");
        for (int c = 0; c < C; c++) cJSON_AddItemToArray(cn, cJSON_CreateString(classes.s[c]));
        cJSON *tl = cJSON_AddArrayToObject(root, "templates");
        for (int t = 0; t < templates.n; t++) cJSON_AddItemToArray(tl, cJSON_CreateString(templates.s[t]));
        json_text = cJSON_Print(root);
        FILE *jf = json_text ? fopen(json_out, "w") : NULL;
        if (!jf || fputs(json_text, jf) < 0 || fputc('\n', jf) == EOF || fclose(jf) != 0) {
            st = eva_fail(EVA_ERR_IO, "--json %s: cannot write", json_out);
            goto fail;
        }
    }
    if (met.n == 0) {
        fprintf(stderr, "evabench zeroshot: none of the %lld files under %s could be read as an image\n",
                (long long)ds.n_items, ds.root);
        code = 2;
    } else {
        code = 0;
    }
    goto done;
fail:
    code = eva_cli_fail("zeroshot", st);
done:
    if (pred) fclose(pred);
    cJSON_Delete(root);
    free(json_text);
    for (int64_t i = 0; i < n_skipped; i++) free(skipped[i].path), free(skipped[i].reason);
    free(skipped);
    free(W), free(pix), free(feat), free(logits), free(batch_label), free(batch_item);
    eva_zs_metrics_free(&met);
    eva_zs_list_free(&classes);
    eva_zs_list_free(&templates);
    eva_zs_dataset_free(&ds);
    eva_zs_session_close(&sess);
    return code;
}
