/* cmd_classify.c: `evabench classify`: ranks free-form labels for each image, with softmax
 * probabilities of 100 · cosine (the zero-shot classifier of docs/model.md §8 over the given
 * labels). Parse -> prepare (model, classifier) -> classify each image -> report.
 *
 * Decisions:
 * - Images go through open_clip's eval transform exactly as `preprocess(Image.open(path))` does
 *   (eva_image_load_preprocessed; the same as `evabench preprocess`), the way open_clip's README
 *   classifies one picture.
 * - Templates default to the 80 OpenAI ImageNet prompts (as zeroshot); `--templates simple` or a
 *   file with "{}" work too; a file holding the single line "{}" uses the bare labels.
 * - An image that cannot be read is reported and the others are still classified; the exit
 *   status is then 2.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cmds.h"
#include "eva_image.h"
#include "zeroshot.h"

typedef struct {
    const char *weights, *variant, *config, *labels, *templates, *impl, *precision, *json;
    long top;
    eva_cli_list images;
} classify_args;

static int parse(classify_args *a, int argc, char **argv) {
    *a = (classify_args){.templates = "openai", .impl = "ref", .precision = "fp32"};
    const eva_opt opts[] = {
        EVA_ARG_STR("--weights", &a->weights, "W", "safetensors weights (required)"),
        EVA_ARG_STR("--variant", &a->variant, "NAME", "built-in config (else --config, else the weights' metadata)"),
        EVA_ARG_STR("--config", &a->config, "C.json", "config JSON"),
        EVA_ARG_STR("--labels", &a->labels, "L", "comma-separated labels (required)"),
        EVA_ARG_STR("--templates", &a->templates, "T",
                    "openai (80 prompts, default), simple (7) or a file, one template per line with {}"),
        EVA_ARG_STR("--impl", &a->impl, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->precision, "P", "fp32 (default), tf32, bf16, fp16 (cuda only)"),
        EVA_ARG_LONG("--top", &a->top, "K", "print the K best labels per image (default all)", 1, 1000000),
        EVA_ARG_STR("--json", &a->json, "OUT.json",
                    "[{\"image\": path, \"labels\": [{\"label\", \"index\", \"prob\", \"logit\"}, ...]}, ...]"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "classify",
        "usage: evabench classify --weights W.safetensors [--variant NAME | --config C.json] --labels \"cat,dog,...\"\n"
        "                         [--templates openai|simple|FILE] [--impl ref|cuda] [--precision P] [--top K]\n"
        "                         [--json OUT.json] [--] IMAGE...\n"
        "\n"
        "For each image, the labels ranked by softmax(100 * cosine) with the zero-shot classifier built from\n"
        "the labels and the templates (docs/model.md §8).\n",
        opts, &a->images,
        "Exit status: 0 every image classified, 2 bad usage or an unreadable image (the others are still\n"
        "classified), 3 internal failure.\n"};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r < 0 && (!a->weights || !a->labels || a->images.n == 0))
        r = eva_cli_usage_error("classify", "--weights W, --labels \"a,b,...\" and at least one IMAGE are required "
                                            "(see --help)");
    return r;
}

/* The model, the classifier W[C,E] of the labels and the buffers of one image. */
typedef struct {
    eva_zs_session sess;
    eva_zs_list labels, templates;
    const char *templates_name;
    int C, E, S;
    float *W, *pix, *feat, *logits; /* [C,E], [3,S,S], [E], [C] */
    double *probs;                  /* [C] */
    int *order;                     /* [C] label indices, best first */
} classify_run;

static void run_free(classify_run *r) {
    free(r->W), free(r->pix), free(r->feat), free(r->logits), free(r->probs), free(r->order);
    eva_zs_list_free(&r->labels);
    eva_zs_list_free(&r->templates);
    eva_zs_session_close(&r->sess);
}

/* Backend, labels, templates, model, buffers and the classifier. */
static eva_status prepare(classify_run *r, const classify_args *a) {
    eva_impl impl;
    eva_precision prec;
    eva_status st;
    if ((st = eva_backend_select(&impl, &prec, a->impl, a->precision)) != EVA_OK) return st;
    if ((st = eva_zs_list_from_csv(&r->labels, a->labels, "--labels")) != EVA_OK) return st;
    if ((st = eva_zs_templates_load(&r->templates, a->templates, &r->templates_name)) != EVA_OK) return st;
    if ((st = eva_zs_session_config(&r->sess, a->weights, a->config, a->variant)) != EVA_OK) return st;
    if ((st = eva_zs_session_open(&r->sess, a->weights, impl, prec)) != EVA_OK) return st;
    r->C = r->labels.n, r->E = r->sess.cfg.embed_dim, r->S = r->sess.cfg.vision.image_size;
    const size_t C = (size_t)r->C;
    r->W = malloc(C * (size_t)r->E * sizeof *r->W);
    r->pix = malloc((size_t)3 * r->S * r->S * sizeof *r->pix);
    r->feat = malloc((size_t)r->E * sizeof *r->feat);
    r->logits = malloc(C * sizeof *r->logits);
    r->probs = malloc(C * sizeof *r->probs);
    r->order = malloc(C * sizeof *r->order);
    if (!r->W || !r->pix || !r->feat || !r->logits || !r->probs || !r->order)
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    eva_zs_text_encoder enc;
    eva_zs_session_text_encoder(&r->sess, &enc);
    return eva_zs_build_classifier(r->W, &r->labels, &r->templates, &enc);
}

/* logits, probs and order of one image. */
static eva_status classify_image(classify_run *r, const char *path) {
    eva_status st = eva_image_load_preprocessed(r->pix, path, r->S);
    if (st == EVA_OK) st = eva_backend_encode_image(&r->sess.be, r->feat, r->pix, 1, NULL);
    if (st != EVA_OK) return st;
    eva_zs_logits(r->logits, r->feat, r->W, r->C, r->E);
    eva_zs_softmax(r->probs, r->logits, r->C);
    eva_zs_topk(r->order, r->logits, r->C, r->C);
    return EVA_OK;
}

static void print_ranking(const classify_run *r, const char *path, int top_k) {
    printf("%s\n", path);
    for (int k = 0; k < top_k; k++) {
        int c = r->order[k];
        printf("  %2d. %-32s %.4f   (logit %.3f)\n", k + 1, r->labels.s[c], r->probs[c], r->logits[c]);
    }
}

static cJSON *ranking_json(const classify_run *r, const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "image", path);
    cJSON *ls = cJSON_AddArrayToObject(o, "labels");
    for (int k = 0; k < r->C; k++) {
        int c = r->order[k];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "label", r->labels.s[c]);
        cJSON_AddNumberToObject(l, "index", c);
        cJSON_AddNumberToObject(l, "prob", r->probs[c]);
        cJSON_AddNumberToObject(l, "logit", r->logits[c]);
        cJSON_AddItemToArray(ls, l);
    }
    return o;
}

/* Classifies every image; an unreadable one is reported and counted in *n_failed. Stops only on
 * internal failures (memory, device). */
static eva_status classify_all(classify_run *r, const classify_args *a, cJSON *json, int *n_failed) {
    int top_k = a->top && a->top < r->C ? (int)a->top : r->C;
    for (int i = 0; i < a->images.n; i++) {
        const char *path = a->images.v[i];
        eva_status st = classify_image(r, path);
        if (st == EVA_ERR_NOMEM || st == EVA_ERR_INTERNAL || st == EVA_ERR_CUDA) return st;
        if (st != EVA_OK) {
            fprintf(stderr, "evabench classify: %s\n", eva_last_error());
            eva_clear_error();
            (*n_failed)++;
            continue;
        }
        print_ranking(r, path, top_k);
        if (json) cJSON_AddItemToArray(json, ranking_json(r, path));
    }
    return EVA_OK;
}

static eva_status write_json(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    free(text);
    return ok ? EVA_OK : eva_fail(EVA_ERR_IO, "--json %s: cannot write", path);
}

int eva_cmd_classify(int argc, char **argv) {
    classify_args a;
    int code = parse(&a, argc, argv);
    if (code >= 0) return code;
    classify_run r = {0};
    cJSON *json = a.json ? cJSON_CreateArray() : NULL;
    int n_failed = 0;
    eva_status st = prepare(&r, &a);
    if (st == EVA_OK) st = classify_all(&r, &a, json, &n_failed);
    if (st == EVA_OK) {
        fprintf(stderr, "classify: %s, %d labels x %d templates (%s), %d image(s), %d unreadable\n", r.sess.cfg.name,
                r.C, r.templates.n, r.templates_name, a.images.n - n_failed, n_failed);
        if (json) st = write_json(a.json, json);
    }
    code = st != EVA_OK ? eva_cli_fail("classify", st) : n_failed ? 2 : 0;
    cJSON_Delete(json);
    run_free(&r);
    return code;
}
