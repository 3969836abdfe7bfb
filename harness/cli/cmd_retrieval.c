/* cmd_retrieval.c: `evabench retrieval`: zero-shot image-text retrieval recall@k by CLIP_benchmark's
 * zeroshot_retrieval protocol (harness/retrieval.h does the work; this file parses options, drives
 * the run, prints and writes the reports). Under mpirun the images and captions are split over the
 * ranks; rank 0 prints and writes.
 *
 * Decisions:
 * - --recall-k defaults to 1,5,10 (CLIP_benchmark's retrieval table); the largest k must not exceed
 *   the number of images or captions (CLIP_benchmark's torch.topk would fail).
 * - A file that does not decode is reported on stderr, counted and listed in the JSON with the
 *   captions it takes out of the queries; the run goes on and exits 0.
 * - A failing rank prints "rank R of N: <message>" and ends every rank (MPI_Abort).
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
#include "retrieval.h"
#include "sysinfo.h"

typedef struct {
    eva_rt_opts o;
    const char *impl_s, *prec_s, *json_out, *pred_out, *dataset_s;
    long batch, limit;
} rt_args;

/* -1 to run, else the exit code (0 after --help, 2 after a usage error). */
static int rt_parse(int argc, char **argv, rt_args *a) {
    *a = (rt_args){.impl_s = "ref", .prec_s = "fp32", .batch = 32};
    const eva_opt opts[] = {
        EVA_ARG_STR("--weights", &a->o.weights, "W.safetensors", "safetensors weights (required)"),
        EVA_ARG_STR("--variant", &a->o.variant, "NAME", "built-in config (else --config, else the weights' metadata)"),
        EVA_ARG_STR("--config", &a->o.config_path, "C.json", "config JSON"),
        EVA_ARG_STR("--data", &a->o.data, "ROOT", "the dataset folder (required)"),
        EVA_ARG_STR("--dataset", &a->dataset_s, "D", "mscoco_captions, flickr30k or captions (required; layouts below)"),
        EVA_ARG_STR("--annotations", &a->o.annotations, "FILE", "another annotation file for the layout"),
        EVA_ARG_STR("--recall-k", &a->o.recall_k, "LIST", "k values, comma-separated (default 1,5,10)"),
        EVA_ARG_STR("--impl", &a->impl_s, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->prec_s, "P", "fp32 (default), tf32, bf16, fp16 (cuda only)"),
        EVA_ARG_LONG("--batch", &a->batch, "N", "images or captions per tower call (default 32)", 1, 4096),
        EVA_ARG_LONG("--limit", &a->limit, "N", "the first N images and their captions", 1, 1L << 30),
        EVA_ARG_STR("--json", &a->json_out, "OUT.json", "CLIP_benchmark-style result plus protocol, counts, skips, card R@5"),
        EVA_ARG_STR("--predictions", &a->pred_out, "OUT.csv", "direction,query,target,top1..topK,hit1..hitK per query"),
        EVA_ARG_STR("--cache-dir", &a->o.cache_dir, "DIR", "embedding cache (default $EVA_CACHE_DIR, else ~/.cache/evabench)"),
        EVA_ARG_FLAG("--no-cache", &a->o.no_cache, "neither read nor write the embedding cache"),
        EVA_ARG_END,
    };
    static char epilog[1200];
    snprintf(epilog, sizeof epilog,
             "Layouts: mscoco_captions: ROOT/val2014/ images, ROOT/coco_test_karpathy.json (COCO format,\n"
             "images in increasing id); flickr30k: ROOT/ images, ROOT/flickr30k_test_karpathy.txt (a header line,\n"
             "then NAME.jpg,caption, split at the first \".jpg,\"); captions: ROOT/captions.csv (path,caption\n"
             "rows, paths relative to ROOT, several rows per image allowed, quoted fields as Python's csv).\n"
             "mpirun -np N evabench retrieval ... splits images and captions over N ranks (each rank the GPU of\n"
             "its local rank with --impl cuda); rank 0 writes the one report. This build: MPI sharding %s.\n"
             "A file that does not decode is reported, counted and listed; its captions leave the queries.\n"
             "Exit status: 0 the run completed, 2 bad usage or input (missing annotation file, malformed\n"
             "JSON/TXT/CSV naming file and line or entry, an entry pointing at a missing image, an image without\n"
             "captions), 3 internal failure.\n",
             eva_shard_available() ? "available" : "not available (no MPI found at configure time)");
    const eva_cli_spec spec = {
        "retrieval",
        "usage: evabench retrieval --weights W.safetensors [--variant NAME | --config C.json] --data ROOT\n"
        "                          --dataset mscoco_captions|flickr30k|captions [--annotations FILE]\n"
        "                          [--recall-k 1,5,10] [--impl ref|cuda] [--precision P] [--batch N]\n"
        "                          [--limit N] [--json OUT.json] [--predictions OUT.csv] [--cache-dir DIR]\n"
        "                          [--no-cache]\n\n"
        "Zero-shot image-text retrieval by CLIP_benchmark's zeroshot_retrieval protocol: images and captions\n"
        "(as written, no template) are encoded and L2-normalised; scores = texts . images^T;\n"
        "image_retrieval_recall@k = share of captions whose own image is in their top k images,\n"
        "text_retrieval_recall@k = share of images with at least one own caption in their top k captions.\n"
        "Prints images/s and captions/s of each tower.\n",
        opts, NULL, epilog};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r >= 0) return r;
    if (!a->o.weights || !a->o.data || !a->dataset_s)
        return eva_cli_usage_error("retrieval", "--weights W, --data ROOT and --dataset D are required (see --help)");
    a->o.batch = (int)a->batch, a->o.limit = (int)a->limit;
    eva_status st = eva_rt_layout_parse(&a->o.layout, a->dataset_s);
    if (st == EVA_OK) st = eva_backend_select(&a->o.impl, &a->o.prec, a->impl_s, a->prec_s);
    if (st == EVA_OK && a->o.recall_k) {
        eva_rt_metrics m;
        st = eva_rt_parse_ks(&m, a->o.recall_k);
    }
    return st == EVA_OK ? -1 : eva_cli_fail("retrieval", st);
}

/* ---- progress (rank 0 only) ------------------------------------------------------------------- */
typedef struct {
    eva_zs_progress p;
    bool on, started, tty;
    int ranks;
    char what[96];
} rt_progress;

static void rt_phase(void *ctx, const char *what) {
    rt_progress *pr = ctx;
    if (!pr->on) return;
    if (pr->ranks > 1) snprintf(pr->what, sizeof pr->what, "%s (rank 0's share of %d)", what, pr->ranks);
    else snprintf(pr->what, sizeof pr->what, "%s", what);
    eva_zs_progress_start(&pr->p, stderr, pr->tty, pr->what);
    pr->started = true;
}

static void rt_progress_cb(void *ctx, int64_t done, int64_t total) {
    rt_progress *pr = ctx;
    if (!pr->on) return;
    if (done >= total) eva_zs_progress_end(&pr->p, done, total, -1);
    else eva_zs_progress_update(&pr->p, done, total, -1);
}

/* ---- report ----------------------------------------------------------------------------------- */
static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* The exact double (17 significant digits; cJSON's own printing may drop the last bit). */
static cJSON *exact_num(double v) {
    char buf[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

static double rate(int64_t n, double s) { return s > 0 && n > 0 ? (double)n / s : NAN; }

static void rt_print(const rt_args *a, const eva_rt_result *r, const eva_shard *sh) {
    const eva_rt_dataset *ds = &r->ds;
    printf("retrieval: %s on %s %s: %d images, %d captions evaluated; %d images skipped (%d captions dropped)%s%s\n",
           r->sess.cfg.name, eva_rt_layout_name(ds->layout), ds->root, r->I, r->T, ds->n_images - r->I,
           r->dropped_captions, a->o.limit ? " (--limit)" : "", sh->size > 1 ? "" : "");
    printf("  protocol: annotations %s, impl %s, precision %s, weights sha256 %.16s...%s\n", ds->annotations,
           a->impl_s, eva_precision_name(a->o.prec), r->weights_sha256, sh->size > 1 ? ", sharded over MPI ranks" : "");
    if (sh->size > 1) printf("  ranks: %d (images and captions split in contiguous blocks)\n", sh->size);
    double ir = rate(r->images_encoded, r->t_images), tr = rate(r->captions_encoded, r->t_captions);
    char is[64], ts[64];
    if (isfinite(ir)) snprintf(is, sizeof is, "%.2f images/s", ir);
    else snprintf(is, sizeof is, "cache %s", r->image_cache);
    if (isfinite(tr)) snprintf(ts, sizeof ts, "%.2f captions/s", tr);
    else snprintf(ts, sizeof ts, "cache %s", r->caption_cache);
    printf("  speed: image tower %lld images in %.3f s (%s); text tower %lld captions in %.3f s (%s); ranking %.3f s\n",
           (long long)r->images_encoded, r->t_images, is, (long long)r->captions_encoded, r->t_captions, ts, r->t_rank);
    for (int j = 0; j < r->m.n_k; j++)
        printf("  recall@%-3d image_retrieval %.4f (%lld/%lld)  text_retrieval %.4f (%lld/%lld)\n", r->m.k[j],
               eva_rt_recall_value(r->m.t2i_hits[j], r->m.n_t2i), (long long)r->m.t2i_hits[j], (long long)r->m.n_t2i,
               eva_rt_recall_value(r->m.i2t_hits[j], r->m.n_i2t), (long long)r->m.i2t_hits[j], (long long)r->m.n_i2t);
    double card = ds->layout == EVA_RT_MSCOCO ? eva_rt_card_coco_t2i_r5(r->sess.cfg.name) : NAN;
    for (int j = 0; j < r->m.n_k && isfinite(card); j++)
        if (r->m.k[j] == 5)
            printf("  model card: MSCOCO text-to-image R@5 %.1f%%; ours %.2f%%%s\n", card,
                   100 * eva_rt_recall_value(r->m.t2i_hits[j], r->m.n_t2i),
                   a->o.limit || r->I != 5000 ? " [not the 5k test set: not comparable]" : "");
    for (int i = 0; i < r->skips.n; i++)
        printf("  skipped: %s: %s\n", ds->images[r->skips.v[i].index], r->skips.v[i].reason);
}

static void rt_json_protocol(cJSON *p, const rt_args *a, const eva_rt_result *r, const eva_shard *sh) {
    const eva_rt_dataset *ds = &r->ds;
    eva_sysinfo si;
    eva_sysinfo_get(&si);
    cJSON_AddStringToObject(p, "layout", eva_rt_layout_name(ds->layout));
    cJSON_AddStringToObject(p, "data_root", ds->root);
    cJSON_AddStringToObject(p, "annotations", ds->annotations);
    cJSON_AddStringToObject(p, "scores", "L2-normalised embeddings, texts . images^T; captions as written, no "
                                         "template; ties to the lower index");
    cJSON_AddStringToObject(p, "preprocess", "convert('RGB') on load, Resize(S, bicubic, shortest side), "
                                             "CenterCrop(S), /255, CLIP mean/std");
    cJSON_AddNumberToObject(p, "image_size", r->sess.cfg.vision.image_size);
    cJSON_AddStringToObject(p, "impl", a->impl_s);
    cJSON_AddStringToObject(p, "precision", eva_precision_name(a->o.prec));
    const char *dev = eva_backend_describe(&r->sess.be);
    cJSON_AddStringToObject(p, "device", dev ? dev : "cpu");
    cJSON_AddStringToObject(p, "host", si.hostname);
    cJSON_AddStringToObject(p, "weights", a->o.weights);
    cJSON_AddStringToObject(p, "weights_sha256", r->weights_sha256);
    cJSON_AddStringToObject(p, "config_source", r->sess.cfg_source ? r->sess.cfg_source : "?");
    cJSON_AddNumberToObject(p, "images_found", r->n_found_images);
    if (a->o.limit) cJSON_AddNumberToObject(p, "limit", a->o.limit);
    else cJSON_AddNullToObject(p, "limit");
    cJSON_AddNumberToObject(p, "images_evaluated", r->I);
    cJSON_AddNumberToObject(p, "captions_evaluated", r->T);
    cJSON_AddNumberToObject(p, "images_skipped", ds->n_images - r->I);
    cJSON_AddNumberToObject(p, "captions_dropped", r->dropped_captions);
    cJSON *sk = cJSON_AddArrayToObject(p, "skipped");
    for (int i = 0; i < r->skips.n; i++) {
        cJSON *o = cJSON_CreateObject();
        int64_t ix = r->skips.v[i].index;
        cJSON_AddStringToObject(o, "path", ds->images[ix]);
        cJSON_AddNumberToObject(o, "image_index", (double)ix);
        cJSON_AddNumberToObject(o, "captions_dropped", ds->cap_count[ix]);
        cJSON_AddStringToObject(o, "reason", r->skips.v[i].reason);
        cJSON_AddItemToArray(sk, o);
    }
    cJSON_AddNumberToObject(p, "ranks", sh->size);
    cJSON_AddStringToObject(p, "image_cache", r->image_cache ? r->image_cache : "?");
    cJSON_AddStringToObject(p, "caption_cache", r->caption_cache ? r->caption_cache : "?");
    cJSON *tm = cJSON_AddObjectToObject(p, "timing_s");
    cJSON_AddNumberToObject(tm, "weights_hash", r->t_hash);
    cJSON_AddNumberToObject(tm, "images", r->t_images);
    cJSON_AddNumberToObject(tm, "captions", r->t_captions);
    cJSON_AddNumberToObject(tm, "ranking", r->t_rank);
    cJSON_AddItemToObject(p, "images_per_s", num_or_null(rate(r->images_encoded, r->t_images)));
    cJSON_AddItemToObject(p, "captions_per_s", num_or_null(rate(r->captions_encoded, r->t_captions)));
    cJSON_AddStringToObject(p, "evabench", EVA_VERSION " (" EVA_GIT_REV ")");
}

static eva_status rt_json(const rt_args *a, const eva_rt_result *r, const eva_shard *sh) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "dataset", eva_rt_layout_name(r->ds.layout));
    cJSON_AddStringToObject(root, "model", r->sess.cfg.name);
    cJSON_AddStringToObject(root, "pretrained", base_name(a->o.weights));
    cJSON_AddStringToObject(root, "task", "zeroshot_retrieval");
    cJSON *m = cJSON_AddObjectToObject(root, "metrics");
    for (int j = 0; j < r->m.n_k; j++) {
        char key[64];
        snprintf(key, sizeof key, "image_retrieval_recall@%d", r->m.k[j]);
        cJSON_AddItemToObject(m, key, exact_num(eva_rt_recall_value(r->m.t2i_hits[j], r->m.n_t2i)));
        snprintf(key, sizeof key, "text_retrieval_recall@%d", r->m.k[j]);
        cJSON_AddItemToObject(m, key, exact_num(eva_rt_recall_value(r->m.i2t_hits[j], r->m.n_i2t)));
    }
    cJSON_AddStringToObject(root, "language", "en");
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(root, "date", date);
    rt_json_protocol(cJSON_AddObjectToObject(root, "protocol"), a, r, sh);
    double card = r->ds.layout == EVA_RT_MSCOCO ? eva_rt_card_coco_t2i_r5(r->sess.cfg.name) : NAN;
    int j5 = -1;
    for (int j = 0; j < r->m.n_k; j++) j5 = r->m.k[j] == 5 ? j : j5;
    if (isfinite(card)) {
        cJSON *ref = cJSON_AddObjectToObject(root, "reference");
        double ours = j5 >= 0 ? eva_rt_recall_value(r->m.t2i_hits[j5], r->m.n_t2i) : NAN;
        cJSON_AddStringToObject(ref, "source", "EVA-CLIP model card (MSCOCO T2I R@5); bigE+: open_clip "
                                               "docs/openclip_retrieval_results.csv");
        cJSON_AddNumberToObject(ref, "card_image_retrieval_recall@5", card / 100.0);
        cJSON_AddItemToObject(ref, "ours_image_retrieval_recall@5", num_or_null(ours));
        cJSON_AddItemToObject(ref, "ours_minus_card", num_or_null(ours - card / 100.0));
        cJSON_AddBoolToObject(ref, "comparable", !a->o.limit && r->skips.n == 0 && r->I == 5000);
    }
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(a->json_out, "w") : NULL;
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    free(text);
    cJSON_Delete(root);
    return ok ? EVA_OK : eva_fail(EVA_ERR_IO, "--json %s: cannot write", a->json_out);
}

/* A rank's failure: its message, naming the rank when several run, then the end of every rank. */
static int rt_fail(const eva_shard *sh, eva_status st) {
    if (sh->size <= 1) return eva_cli_fail("retrieval", st);
    fprintf(stderr, "evabench retrieval: rank %d of %d: %s\n", sh->rank, sh->size, eva_last_error());
    int code = eva_status_exit_code(st);
    return eva_shard_abort(sh, code ? code : 3);
}

int eva_cmd_retrieval(int argc, char **argv) {
    rt_args a;
    int code = rt_parse(argc, argv, &a);
    if (code >= 0) return code;
    eva_shard sh;
    eva_status st = eva_shard_init(&sh, &argc, &argv);
    if (st != EVA_OK) return eva_cli_fail("retrieval", st);
    rt_progress pr = {.on = sh.rank == 0, .tty = isatty(2), .ranks = sh.size};
    a.o.progress = rt_progress_cb, a.o.phase = rt_phase, a.o.pctx = &pr;
    eva_rt_result r;
    st = eva_rt_run(&a.o, &sh, &r);
    if (st == EVA_OK && sh.rank == 0) {
        for (int i = 0; i < r.skips.n; i++)
            fprintf(stderr, "retrieval: skipped %s/%s: %s\n", r.ds.root, r.ds.images[r.skips.v[i].index],
                    r.skips.v[i].reason);
        rt_print(&a, &r, &sh);
        if (a.pred_out)
            st = eva_rt_write_predictions(a.pred_out, r.t2i, r.i2t, r.tii, r.I, r.T, r.K, r.img_idx, r.cap_idx);
        if (st == EVA_OK && a.json_out) st = rt_json(&a, &r, &sh);
    }
    code = st == EVA_OK ? 0 : rt_fail(&sh, st);
    eva_rt_result_free(&r);
    eva_shard_finalize(&sh);
    return code;
}
