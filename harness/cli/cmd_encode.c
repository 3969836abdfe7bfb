/* cmd_encode.c: `evabench encode` (contract.md): images and/or token ids from an HDF5 /inputs
 * group through the chosen implementation, written as features, L2-normalised embeddings and
 * (when both towers ran) logits_per_image to OUT.h5.
 *
 * Everything is checked before any compute: options, the config (--config, else --variant, else
 * the weights' evabench.config metadata), the inputs against the config (pixel size, context
 * length, every token id in [0, vocab)), and the weights (strict loader). The output file is
 * created only after the forward passes succeeded, so a failed run leaves no half-written file.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_select.h"
#include "cli.h"
#include "cmds.h"
#include "eva_image.h"
#include "eva_tokenizer.h"
#include "golden.h"
#include "ref_model.h"

#define EVA_ENCODE_DEFAULT_BATCH 16
#define EVA_ENCODE_MAX_BATCH 65536
#define EVA_ENCODE_MAX_ITEMS 65536 /* --image / --text arguments */

static const char *encode_usage =
    "usage: evabench encode --weights W.safetensors [--variant NAME | --config C.json] --inputs IN.h5 --out OUT.h5\n"
    "                       [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--batch N]\n"
    "       evabench encode --weights W.safetensors [...] [--image FILE...] [--text STRING...] --out OUT.h5\n"
    "\n"
    "Reads /inputs/pixel_values [B,3,S,S] float32 and/or /inputs/input_ids [T,L] int32|int64 from IN.h5 (or\n"
    "preprocesses --image files as open_clip's evaluation transform does and tokenizes --text strings) and\n"
    "writes to OUT.h5 (all float32): /image_features [B,E], /text_features [T,E] (projections, before\n"
    "normalisation), /image_embeds, /text_embeds (L2-normalised) and, when both towers ran,\n"
    "/logits_per_image [B,T] = exp(logit_scale) * cosine.\n"
    "\n"
    "  --weights W        safetensors weights (F32, F16 or BF16; open_clip or official naming)\n"
    "  --variant NAME     built-in config (official or open_clip name, see evabench info)\n"
    "  --config C.json    config JSON (contract.md); default: the weights' evabench.config metadata\n"
    "  --inputs IN.h5     HDF5 file with an /inputs group (the golden layout)\n"
    "  --image FILE...    PNG/JPEG images instead of --inputs (resize, centre crop, CLIP normalisation)\n"
    "  --text STRING...   texts instead of --inputs (CLIP BPE tokenizer, open_clip tokenize)\n"
    "  --out OUT.h5       output file (overwritten)\n"
    "  --impl ref|cuda    implementation (default ref)\n"
    "  --precision P      fp32 (default), tf32, bf16 or fp16 (cuda only)\n"
    "  --batch N          images or texts per forward pass (default 16)\n"
    "\n"
    "Exit status: 0 success, 2 bad usage or input (missing or corrupt file, wrong shape, bad token id, ...),\n"
    "3 internal failure.\n";

/* Builds the inputs from --image files (open_clip's evaluation transform at the config's size)
 * and --text strings (the CLIP tokenizer at the config's context length). */
static eva_status inputs_from_args(eva_inputs *in, const eva_config *cfg, char **images, int n_images, char **texts,
                                   int n_texts) {
    memset(in, 0, sizeof *in);
    const int64_t S = cfg->vision.image_size, L = cfg->text.context_length;
    eva_status st = EVA_OK;
    if (n_images > 0) {
        if ((int64_t)n_images * 3 * S * S > EVA_H5_MAX_BYTES / 4)
            return eva_fail(EVA_ERR_NOMEM, "--image: %d images of %lld px are too many", n_images, (long long)S);
        in->pixels = malloc((size_t)n_images * 3 * (size_t)(S * S) * sizeof(float));
        if (!in->pixels) return eva_fail(EVA_ERR_NOMEM, "--image: out of memory for %d images", n_images);
        for (int i = 0; i < n_images; i++)
            if ((st = eva_image_load_preprocessed(in->pixels + (int64_t)i * 3 * S * S, images[i], (int)S)) != EVA_OK)
                goto fail;
        in->pix_shape[0] = n_images;
        in->pix_shape[1] = 3;
        in->pix_shape[2] = in->pix_shape[3] = S;
    }
    if (n_texts > 0) {
        eva_tokenizer *tok = NULL;
        if ((st = eva_tokenizer_open(&tok, NULL)) != EVA_OK) goto fail;
        in->ids = malloc((size_t)n_texts * (size_t)L * sizeof(int32_t));
        if (!in->ids) {
            eva_tokenizer_free(tok);
            st = eva_fail(EVA_ERR_NOMEM, "--text: out of memory for %d texts", n_texts);
            goto fail;
        }
        for (int i = 0; i < n_texts && st == EVA_OK; i++) {
            st = eva_tokenizer_encode(tok, in->ids + (int64_t)i * L, texts[i], (int)L);
            if (st != EVA_OK) eva_fail_context("--text %d", i + 1);
        }
        eva_tokenizer_free(tok);
        if (st != EVA_OK) goto fail;
        in->ids_shape[0] = n_texts;
        in->ids_shape[1] = L;
    }
    return EVA_OK;
fail:
    eva_inputs_free(in);
    return st;
}

int eva_cmd_encode(int argc, char **argv) {
    const char *weights = NULL, *variant = NULL, *config_path = NULL, *inputs_path = NULL, *out_path = NULL;
    const char *impl_s = "ref", *prec_s = "fp32", *batch_s = NULL;
    char **images = NULL, **texts = NULL;
    int n_images = 0, n_texts = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(encode_usage, stdout);
            return 0;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--weights", &weights)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--variant", &variant)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--config", &config_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--inputs", &inputs_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--out", &out_path)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--impl", &impl_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--precision", &prec_s)) ||
            (r = eva_cli_opt_value(argc, argv, &i, "--batch", &batch_s))) {
            if (r < 0) {
                fprintf(stderr, "evabench encode: option %s needs a value (see --help)\n", argv[i]);
                return 2;
            }
            continue;
        }
        if (!strcmp(argv[i], "--image") || !strcmp(argv[i], "--text")) {
            bool img = argv[i][2] == 'i';
            int first = i + 1, k = first;
            while (k < argc && strncmp(argv[k], "--", 2) != 0) k++;
            if (k == first) {
                fprintf(stderr, "evabench encode: %s needs at least one value (see --help)\n", argv[i]);
                return 2;
            }
            if (k - first > EVA_ENCODE_MAX_ITEMS || (img ? n_images : n_texts) > 0) {
                fprintf(stderr, "evabench encode: %s: give it once, with at most %d values\n", argv[i],
                        EVA_ENCODE_MAX_ITEMS);
                return 2;
            }
            if (img) { images = argv + first; n_images = k - first; }
            else { texts = argv + first; n_texts = k - first; }
            i = k - 1;
            continue;
        }
        fprintf(stderr, "evabench encode: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    int batch = EVA_ENCODE_DEFAULT_BATCH;
    if (batch_s) {
        char *end = NULL;
        errno = 0;
        long v = strtol(batch_s, &end, 10);
        if (errno || !end || *end || end == batch_s || v < 1 || v > EVA_ENCODE_MAX_BATCH) {
            fprintf(stderr, "evabench encode: --batch '%s': expected an integer in [1, %d]\n", batch_s,
                    EVA_ENCODE_MAX_BATCH);
            return 2;
        }
        batch = (int)v;
    }
    if (!weights) {
        fprintf(stderr, "evabench encode: --weights W.safetensors is required (see --help)\n");
        return 2;
    }
    if (!inputs_path && !n_images && !n_texts) {
        fprintf(stderr, "evabench encode: --inputs IN.h5 (or --image / --text) is required (see --help)\n");
        return 2;
    }
    if (inputs_path && (n_images || n_texts)) {
        fprintf(stderr, "evabench encode: --inputs and --image/--text both given: pass one kind of input\n");
        return 2;
    }
    if (!out_path || !*out_path) {
        fprintf(stderr, "evabench encode: --out OUT.h5 is required (see --help)\n");
        return 2;
    }
    if ((inputs_path && !strcmp(out_path, inputs_path)) || !strcmp(out_path, weights)) {
        fprintf(stderr, "evabench encode: --out %s would overwrite an input file\n", out_path);
        return 2;
    }

    eva_status st;
    eva_impl impl;
    eva_precision prec;
    if ((st = eva_backend_select(&impl, &prec, impl_s, prec_s)) != EVA_OK)
        return eva_cli_fail("encode", st);

    int code = 3;
    eva_config cfg;
    eva_inputs in;
    eva_model model;
    eva_backend be;
    eva_h5out out;
    memset(&in, 0, sizeof in);
    memset(&model, 0, sizeof model);
    memset(&be, 0, sizeof be);
    memset(&out, 0, sizeof out);
    out.file = -1;
    float *fi = NULL, *ft = NULL, *ei = NULL, *et = NULL, *logits = NULL;

    const char *source = NULL;
    if ((st = eva_resolve_config(&cfg, &source, config_path, variant, NULL, NULL, weights)) != EVA_OK) goto fail;
    if (inputs_path) {
        if ((st = eva_inputs_read(&in, inputs_path)) != EVA_OK) goto fail;
    } else if ((st = inputs_from_args(&in, &cfg, images, n_images, texts, n_texts)) != EVA_OK) {
        goto fail;
    }
    if (!inputs_path) inputs_path = n_images ? "--image" : "--text";
    if ((st = eva_inputs_check_pixels(&in, cfg.vision.image_size, inputs_path)) != EVA_OK) goto fail;
    if ((st = eva_inputs_check_ids(&in, cfg.text.context_length, cfg.text.vocab_size, inputs_path)) != EVA_OK)
        goto fail;
    const int64_t B = eva_inputs_images(&in), T = eva_inputs_texts(&in), E = cfg.embed_dim;
    const int64_t S = cfg.vision.image_size, L = cfg.text.context_length;

    if ((st = eva_model_load(&model, weights, &cfg)) != EVA_OK) goto fail;
    if ((st = eva_backend_open_impl(&be, impl, prec, &model, 0)) != EVA_OK) goto fail;

    bool tty = isatty(2);
    if (B > 0) {
        fi = malloc((size_t)(B * E) * sizeof(float));
        ei = malloc((size_t)(B * E) * sizeof(float));
        if (!fi || !ei) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory for %lld image features", (long long)B);
            goto fail;
        }
        for (int64_t b0 = 0; b0 < B; b0 += batch) {
            int nb = (int)(B - b0 < batch ? B - b0 : batch);
            if (tty) fprintf(stderr, "\rencode: images %lld-%lld of %lld", (long long)b0 + 1, (long long)(b0 + nb),
                             (long long)B);
            st = eva_backend_encode_image(&be, fi + b0 * E, in.pixels + b0 * 3 * S * S, nb, NULL);
            if (st != EVA_OK) {
                eva_fail_context("%s: images %lld-%lld", inputs_path, (long long)b0, (long long)(b0 + nb - 1));
                goto fail;
            }
        }
        if (tty) fprintf(stderr, "\n");
        eva_ref_l2_normalize(ei, fi, (int)B, (int)E);
    }
    if (T > 0) {
        ft = malloc((size_t)(T * E) * sizeof(float));
        et = malloc((size_t)(T * E) * sizeof(float));
        if (!ft || !et) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory for %lld text features", (long long)T);
            goto fail;
        }
        for (int64_t t0 = 0; t0 < T; t0 += batch) {
            int nt = (int)(T - t0 < batch ? T - t0 : batch);
            if (tty) fprintf(stderr, "\rencode: texts %lld-%lld of %lld", (long long)t0 + 1, (long long)(t0 + nt),
                             (long long)T);
            st = eva_backend_encode_text(&be, ft + t0 * E, in.ids + t0 * L, nt, NULL);
            if (st != EVA_OK) {
                eva_fail_context("%s: texts %lld-%lld", inputs_path, (long long)t0, (long long)(t0 + nt - 1));
                goto fail;
            }
        }
        if (tty) fprintf(stderr, "\n");
        eva_ref_l2_normalize(et, ft, (int)T, (int)E);
    }
    if (B > 0 && T > 0) {
        if (B * T > EVA_H5_MAX_BYTES / 4) {
            st = eva_fail(EVA_ERR_NOMEM, "%lld x %lld logits are too many", (long long)B, (long long)T);
            goto fail;
        }
        logits = malloc((size_t)(B * T) * sizeof(float));
        if (!logits) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory for logits");
            goto fail;
        }
        eva_ref_logits(logits, ei, et, (int)B, (int)T, (int)E, expf(model.w.logit_scale[0]));
    }

    /* Only now touch the output path. */
    if ((st = eva_h5out_create(&out, out_path)) != EVA_OK) goto fail;
    int64_t sh[2];
    if (B > 0) {
        sh[0] = B; sh[1] = E;
        if ((st = eva_h5out_write(&out, "image_features", fi, 2, sh)) != EVA_OK) goto fail;
        if ((st = eva_h5out_write(&out, "image_embeds", ei, 2, sh)) != EVA_OK) goto fail;
    }
    if (T > 0) {
        sh[0] = T; sh[1] = E;
        if ((st = eva_h5out_write(&out, "text_features", ft, 2, sh)) != EVA_OK) goto fail;
        if ((st = eva_h5out_write(&out, "text_embeds", et, 2, sh)) != EVA_OK) goto fail;
    }
    if (logits) {
        sh[0] = B; sh[1] = T;
        if ((st = eva_h5out_write(&out, "logits_per_image", logits, 2, sh)) != EVA_OK) goto fail;
    }
    char *cj = eva_config_to_json(&cfg, false);
    char gen[160];
    snprintf(gen, sizeof gen, "evabench %s (%s) encode --impl %s --precision %s", EVA_VERSION, EVA_GIT_REV,
             eva_impl_name(impl), eva_precision_name(prec));
    st = eva_h5out_attr(&out, "generator", gen);
    if (st == EVA_OK && cj) st = eva_h5out_attr(&out, "config", cj);
    if (st == EVA_OK) st = eva_h5out_attr(&out, "weights", weights);
    free(cj);
    if (st != EVA_OK) goto fail;
    if ((st = eva_h5out_close(&out)) != EVA_OK) goto fail;
    fprintf(stderr, "evabench encode: wrote %s (%lld images, %lld texts, config %s from %s, %s %s)\n", out_path,
            (long long)B, (long long)T, cfg.name, source, eva_impl_name(impl), eva_precision_name(prec));
    code = 0;
    goto done;
fail:
    code = eva_cli_fail("encode", st);
    if (out.file > 0) {
        eva_h5out_close(&out);
        remove(out_path); /* never leave a half-written output */
    }
done:
    free(fi);
    free(ft);
    free(ei);
    free(et);
    free(logits);
    eva_backend_close(&be);
    eva_model_free(&model);
    eva_inputs_free(&in);
    return code;
}
