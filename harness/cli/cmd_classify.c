/* cmd_classify.c: `evabench classify`: ranks free-form labels for each image, with softmax
 * probabilities of 100 · cosine (the zero-shot classifier of docs/model.md §8 over the given labels).
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"
#include "eva_image.h"
#include "zeroshot.h"

static const char *cl_usage =
    "usage: evabench classify --weights W.safetensors [--variant NAME | --config C.json] --labels \"cat,dog,...\"\n"
    "                         [--templates openai|simple|FILE] [--impl ref|cuda] [--precision P] [--top K]\n"
    "                         [--json OUT.json] IMAGE...\n"
    "\n"
    "For each image, the labels ranked by softmax(100 * cosine) with the zero-shot classifier built from\n"
    "the labels and the templates (docs/model.md §8).\n"
    "\n"
    "  --weights W        safetensors weights (required)\n"
    "  --variant NAME     built-in config (else --config, else the weights' evabench.config metadata)\n"
    "  --config C.json    config JSON\n"
    "  --labels L         comma-separated labels (required)\n"
    "  --templates T      openai (80 prompts, default), simple (7) or a file, one template per line with {}\n"
    "  --impl ref|cuda    implementation (default ref)\n"
    "  --precision P      fp32 (default), tf32, bf16, fp16 (cuda only)\n"
    "  --top K            print the K best labels per image (default all)\n"
    "  --json OUT.json    [{\"image\": path, \"labels\": [{\"label\", \"index\", \"prob\", \"logit\"}, ...]}, ...]\n"
    "\n"
    "Exit status: 0 every image classified, 2 bad usage or an unreadable image (the others are still\n"
    "classified), 3 internal failure.\n";

int eva_cmd_classify(int argc, char **argv) {
    const char *weights = NULL, *variant = NULL, *config_path = NULL, *labels_s = NULL;
    const char *templates_s = "openai", *impl_s = "ref", *prec_s = "fp32", *top_s = NULL, *json_out = NULL;
    const char **images = calloc((size_t)argc + 1, sizeof *images);
    int n_images = 0;
    if (!images) {
        fprintf(stderr, "evabench classify: out of memory\n");
        return 3;
    }
    bool only_images = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (only_images || argv[i][0] != '-' || !strcmp(argv[i], "-")) {
            images[n_images++] = argv[i];
            continue;
        }
        if (!strcmp(argv[i], "--")) {
            only_images = true;
            continue;
        }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(cl_usage, stdout);
            free(images);
            return 0;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--weights", &weights)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--variant", &variant)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--config", &config_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--labels", &labels_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--templates", &templates_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--impl", &impl_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--precision", &prec_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--top", &top_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--json", &json_out))) {
            if (r < 0) {
                fprintf(stderr, "evabench classify: option %s needs a value (see --help)\n", argv[i]);
                free(images);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "evabench classify: unknown argument '%s' (see --help)\n", argv[i]);
        free(images);
        return 2;
    }
    if (!weights || !labels_s || n_images == 0) {
        fprintf(stderr, "evabench classify: --weights W, --labels \"a,b,...\" and at least one IMAGE are required "
                        "(see --help)\n");
        free(images);
        return 2;
    }
    int top_k = 0;
    if (top_s) {
        char *end;
        long v = strtol(top_s, &end, 10);
        if (!*top_s || *end || v < 1 || v > 1000000) {
            fprintf(stderr, "evabench classify: --top '%s': expected a positive integer\n", top_s);
            free(images);
            return 2;
        }
        top_k = (int)v;
    }

    eva_status st;
    eva_impl impl;
    eva_precision prec;
    int code = 3;
    eva_zs_session sess;
    eva_zs_list labels = {0}, templates = {0};
    memset(&sess, 0, sizeof sess);
    float *W = NULL, *pix = NULL, *feat = NULL, *logits = NULL;
    double *probs = NULL;
    int *order = NULL;
    cJSON *root = NULL;
    char *json_text = NULL;
    const char *templates_name = NULL;
    int n_failed = 0;

    if ((st = eva_backend_select(&impl, &prec, impl_s, prec_s)) != EVA_OK)
        goto fail;
    if ((st = eva_zs_list_from_csv(&labels, labels_s, "--labels")) != EVA_OK) goto fail;
    if ((st = eva_zs_templates_load(&templates, templates_s, &templates_name)) != EVA_OK) goto fail;
    if ((st = eva_zs_session_config(&sess, weights, config_path, variant)) != EVA_OK) goto fail;
    if ((st = eva_zs_session_open(&sess, weights, impl, prec)) != EVA_OK) goto fail;

    const int C = labels.n, E = sess.cfg.embed_dim, S = sess.cfg.vision.image_size;
    if (!top_k || top_k > C) top_k = C;
    W = malloc((size_t)C * (size_t)E * sizeof *W);
    pix = malloc((size_t)3 * S * S * sizeof *pix);
    feat = malloc((size_t)E * sizeof *feat);
    logits = malloc((size_t)C * sizeof *logits);
    probs = malloc((size_t)C * sizeof *probs);
    order = malloc((size_t)C * sizeof *order);
    if (!W || !pix || !feat || !logits || !probs || !order) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        goto fail;
    }
    eva_zs_text_encoder enc;
    eva_zs_session_text_encoder(&sess, &enc);
    if ((st = eva_zs_build_classifier(W, &labels, &templates, &enc)) != EVA_OK) goto fail;

    if (json_out) root = cJSON_CreateArray();
    for (int i = 0; i < n_images; i++) {
        st = eva_image_load_preprocessed(pix, images[i], S);
        if (st == EVA_OK) st = eva_backend_encode_image(&sess.be, feat, pix, 1, NULL);
        if (st != EVA_OK) {
            if (st == EVA_ERR_NOMEM || st == EVA_ERR_INTERNAL || st == EVA_ERR_CUDA) goto fail;
            fprintf(stderr, "evabench classify: %s\n", eva_last_error());
            eva_clear_error();
            n_failed++;
            continue;
        }
        eva_zs_logits(logits, feat, W, C, E);
        eva_zs_softmax(probs, logits, C);
        eva_zs_topk(order, logits, C, C);
        printf("%s\n", images[i]);
        for (int k = 0; k < top_k; k++)
            printf("  %2d. %-32s %.4f   (logit %.3f)\n", k + 1, labels.s[order[k]], probs[order[k]], logits[order[k]]);
        if (root) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "image", images[i]);
            cJSON *ls = cJSON_AddArrayToObject(o, "labels");
            for (int k = 0; k < C; k++) {
                cJSON *l = cJSON_CreateObject();
                cJSON_AddStringToObject(l, "label", labels.s[order[k]]);
                cJSON_AddNumberToObject(l, "index", order[k]);
                cJSON_AddNumberToObject(l, "prob", probs[order[k]]);
                cJSON_AddNumberToObject(l, "logit", logits[order[k]]);
                cJSON_AddItemToArray(ls, l);
            }
            cJSON_AddItemToArray(root, o);
        }
    }
    fprintf(stderr, "classify: %s, %d labels x %d templates (%s), %d image(s), %d unreadable\n", sess.cfg.name, C,
            templates.n, templates_name, n_images - n_failed, n_failed);
    if (root) {
        json_text = cJSON_Print(root);
        FILE *jf = json_text ? fopen(json_out, "w") : NULL;
        if (!jf || fputs(json_text, jf) < 0 || fputc('\n', jf) == EOF || fclose(jf) != 0) {
            st = eva_fail(EVA_ERR_IO, "--json %s: cannot write", json_out);
            goto fail;
        }
    }
    code = n_failed ? 2 : 0;
    goto done;
fail:
    code = eva_cli_fail("classify", st);
done:
    cJSON_Delete(root);
    free(json_text);
    free(W), free(pix), free(feat), free(logits), free(probs), free(order);
    eva_zs_list_free(&labels);
    eva_zs_list_free(&templates);
    eva_zs_session_close(&sess);
    free(images);
    return code;
}
