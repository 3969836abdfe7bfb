/* cmd_encode.c: `evabench encode`: images and/or token ids from an HDF5 /inputs
 * group through the chosen implementation, written as features, L2-normalised embeddings and
 * (when both towers ran) logits_per_image to OUT.h5.
 *
 * Everything is checked before any compute: options, the config (--config, else --variant, else
 * the weights' evabench.config metadata), the inputs against the config (pixel size, context
 * length, every token id in [0, vocab)), and the weights (strict loader). The output file is
 * created only after the forward passes succeeded, so a failed run leaves no half-written file.
 *
 * --taps: the file is a golden (the golden layout: /inputs, /acts/<tap> for every tap the
 * implementation hands over plus the outputs and embeddings, root attributes schema, config,
 * weights (absolute path), generator, impl, precision), so verify and compare read it. The taps
 * are written as each batch hands them over (tapdump.h), so the file is created before the
 * forward passes and removed again if anything fails.
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
#include "tapdump.h"

#define EVA_ENCODE_DEFAULT_BATCH 16
#define EVA_ENCODE_MAX_BATCH 65536
#define EVA_ENCODE_MAX_ITEMS 65536 /* --image / --text arguments */

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

typedef struct {
    const char *weights, *variant, *config, *inputs, *out, *impl, *precision;
    long batch;
    eva_cli_list images, texts;
    bool taps;
} encode_args;

static int check_args(const encode_args *a) {
    const char *cmd = "encode";
    if (!a->weights) return eva_cli_usage_error(cmd, "--weights W.safetensors is required (see --help)");
    if (!a->inputs && !a->images.n && !a->texts.n)
        return eva_cli_usage_error(cmd, "--inputs IN.h5 (or --image / --text) is required (see --help)");
    if (a->inputs && (a->images.n || a->texts.n))
        return eva_cli_usage_error(cmd, "--inputs and --image/--text both given: pass one kind of input");
    if (a->images.n > EVA_ENCODE_MAX_ITEMS || a->texts.n > EVA_ENCODE_MAX_ITEMS)
        return eva_cli_usage_error(cmd, "--image/--text: at most %d values", EVA_ENCODE_MAX_ITEMS);
    if (!a->out || !*a->out) return eva_cli_usage_error(cmd, "--out OUT.h5 is required (see --help)");
    if ((a->inputs && !strcmp(a->out, a->inputs)) || !strcmp(a->out, a->weights))
        return eva_cli_usage_error(cmd, "--out %s would overwrite an input file", a->out);
    return -1;
}

static int parse(encode_args *a, int argc, char **argv) {
    *a = (encode_args){.impl = "ref", .precision = "fp32", .batch = EVA_ENCODE_DEFAULT_BATCH};
    const eva_opt opts[] = {
        EVA_ARG_STR("--weights", &a->weights, "W",
                    "weights: a .safetensors file (F32, F16 or BF16; open_clip or official naming), an open_clip "
                    "hub folder, or transformers safetensors shards (folder, index JSON or one shard)"),
        EVA_ARG_STR("--variant", &a->variant, "NAME", "built-in config (official or open_clip name, see evabench info)"),
        EVA_ARG_STR("--config", &a->config, "C.json", "config JSON; default: the weights' evabench.config metadata, the "
                                                         "open_clip_config.json beside them, or their tensor shapes"),
        EVA_ARG_STR("--inputs", &a->inputs, "IN.h5", "HDF5 file with an /inputs group (the golden layout)"),
        EVA_ARG_LIST("--image", &a->images, "FILE", "PNG/JPEG images instead of --inputs (open_clip's eval transform)"),
        EVA_ARG_LIST("--text", &a->texts, "STRING", "texts instead of --inputs (CLIP BPE tokenizer, open_clip tokenize)"),
        EVA_ARG_STR("--out", &a->out, "OUT.h5", "output file (overwritten)"),
        EVA_ARG_STR("--impl", &a->impl, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->precision, "P", "fp32 (default), tf32, bf16 or fp16 (cuda only)"),
        EVA_ARG_LONG("--batch", &a->batch, "N", "images or texts per forward pass (default 16)", 1, EVA_ENCODE_MAX_BATCH),
        EVA_ARG_FLAG("--taps", &a->taps, "also write every tap under /acts/<tap>: OUT.h5 is then a golden"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "encode",
        "usage: evabench encode --weights W.safetensors [--variant NAME | --config C.json] --inputs IN.h5 --out OUT.h5\n"
        "                       [--impl ref|cuda] [--precision fp32|tf32|bf16|fp16] [--batch N]\n"
        "       evabench encode --weights W.safetensors [...] [--image FILE...] [--text STRING...] --out OUT.h5\n\n"
        "Reads /inputs/pixel_values [B,3,S,S] float32 and/or /inputs/input_ids [T,L] int32|int64 from IN.h5 (or\n"
        "preprocesses --image files as open_clip's evaluation transform does and tokenizes --text strings) and\n"
        "writes to OUT.h5 (all float32): /image_features [B,E], /text_features [T,E] (projections, before\n"
        "normalisation), /image_embeds, /text_embeds (L2-normalised) and, when both towers ran,\n"
        "/logits_per_image [B,T] = exp(logit_scale) * cosine. With --taps OUT.h5 is also a golden: /inputs,\n"
        "/acts/<tap> for every tap and output, attributes schema, config, weights, generator, impl, precision.\n",
        opts, NULL, NULL};
    int r = eva_cli_parse(&spec, argc, argv);
    return r >= 0 ? r : check_args(a);
}

/* Everything one encode run holds; encode_free() releases it all. */
typedef struct {
    eva_config cfg;
    const char *config_source, *inputs_name;
    eva_impl impl;
    eva_precision precision;
    eva_inputs in;
    eva_model model;
    eva_backend be;
    int64_t B, T, E;
    float *features[2], *embeds[2]; /* [0] images [B,E], [1] texts [T,E] */
    float *logits;                  /* [B,T] when both towers ran */
    eva_h5out out;                  /* open from before the forward passes with --taps */
    eva_tapdump dump;               /* --taps: writes each batch's taps into out */
} encode_run;

static void encode_free(encode_run *r) {
    for (int k = 0; k < 2; k++) free(r->features[k]), free(r->embeds[k]);
    free(r->logits);
    eva_backend_close(&r->be);
    eva_model_free(&r->model);
    eva_inputs_free(&r->in);
}

/* Config, inputs (checked against the config), weights and implementation, before any compute. */
static eva_status encode_prepare(encode_run *r, const encode_args *a) {
    eva_status st = eva_backend_select(&r->impl, &r->precision, a->impl, a->precision);
    if (st == EVA_OK)
        st = eva_resolve_config(&r->cfg, &r->config_source, a->config, a->variant, NULL, NULL, a->weights);
    if (st != EVA_OK) return st;
    if (a->inputs)
        st = eva_inputs_read_for(&r->in, a->inputs, &r->cfg); /* shapes checked before reading */
    else
        st = inputs_from_args(&r->in, &r->cfg, a->images.v, a->images.n, a->texts.v, a->texts.n);
    if (st != EVA_OK) return st;
    r->inputs_name = a->inputs ? a->inputs : a->images.n ? "--image" : "--text";
    if ((st = eva_inputs_check_pixels(&r->in, r->cfg.vision.image_size, r->inputs_name)) != EVA_OK) return st;
    st = eva_inputs_check_ids(&r->in, r->cfg.text.context_length, r->cfg.text.vocab_size, r->inputs_name);
    if (st != EVA_OK) return st;
    r->B = eva_inputs_images(&r->in), r->T = eva_inputs_texts(&r->in), r->E = r->cfg.embed_dim;
    if ((st = eva_model_load(&r->model, a->weights, &r->cfg)) != EVA_OK) return st;
    return eva_backend_open_impl(&r->be, r->impl, r->precision, &r->model, 0);
}

/* One tower (0 images, 1 texts) in batches of `batch`, then L2-normalised. */
static eva_status encode_tower(encode_run *r, int tower, int64_t n, int batch) {
    const int64_t E = r->E, S = r->cfg.vision.image_size, L = r->cfg.text.context_length;
    const char *what = tower ? "texts" : "images";
    r->features[tower] = malloc((size_t)(n * E) * sizeof(float));
    r->embeds[tower] = malloc((size_t)(n * E) * sizeof(float));
    if (!r->features[tower] || !r->embeds[tower])
        return eva_fail(EVA_ERR_NOMEM, "out of memory for %lld %s features", (long long)n, what);
    bool tty = isatty(2);
    eva_tap dump = eva_tapdump_tap(&r->dump);
    const eva_tap *tap = r->dump.out ? &dump : NULL;
    r->dump.total = n;
    for (int64_t i0 = 0; i0 < n; i0 += batch) {
        int nb = (int)(n - i0 < batch ? n - i0 : batch);
        if (tty) fprintf(stderr, "\rencode: %s %lld-%lld of %lld", what, (long long)i0 + 1, (long long)(i0 + nb), (long long)n);
        r->dump.offset = i0;
        eva_status st = tower ? eva_backend_encode_text(&r->be, r->features[1] + i0 * E, r->in.ids + i0 * L, nb, tap)
                              : eva_backend_encode_image(&r->be, r->features[0] + i0 * E, r->in.pixels + i0 * 3 * S * S, nb, tap);
        if (st == EVA_OK) st = r->dump.err;
        if (st != EVA_OK) {
            eva_fail_context("%s: %s %lld-%lld", r->inputs_name, what, (long long)i0, (long long)(i0 + nb - 1));
            return st;
        }
    }
    if (tty) fprintf(stderr, "\n");
    eva_ref_l2_normalize(r->embeds[tower], r->features[tower], (int)n, (int)E);
    return EVA_OK;
}

static eva_status encode_compute(encode_run *r, int batch) {
    eva_status st = EVA_OK;
    if (r->B > 0 && (st = encode_tower(r, 0, r->B, batch)) != EVA_OK) return st;
    if (r->T > 0 && (st = encode_tower(r, 1, r->T, batch)) != EVA_OK) return st;
    if (r->B == 0 || r->T == 0) return EVA_OK;
    if (r->B * r->T > EVA_H5_MAX_BYTES / 4)
        return eva_fail(EVA_ERR_NOMEM, "%lld x %lld logits are too many", (long long)r->B, (long long)r->T);
    if (!(r->logits = malloc((size_t)(r->B * r->T) * sizeof(float))))
        return eva_fail(EVA_ERR_NOMEM, "out of memory for logits");
    eva_ref_logits(r->logits, r->embeds[0], r->embeds[1], (int)r->B, (int)r->T, (int)r->E,
                   expf(r->model.w.logit_scale[0]));
    return EVA_OK;
}

static void generator(char *buf, size_t cap, const encode_run *r) {
    snprintf(buf, cap, "evabench %s (%s) encode --impl %s --precision %s", EVA_VERSION, EVA_GIT_REV,
             eva_impl_name(r->impl), eva_precision_name(r->precision));
}

/* --taps: OUT.h5 created before the forward passes, with the golden header. */
static eva_status encode_open_taps(encode_run *r, const encode_args *a) {
    char weights[PATH_MAX], gen[160];
    if (!realpath(a->weights, weights)) snprintf(weights, sizeof weights, "%s", a->weights);
    generator(gen, sizeof gen, r);
    eva_status st = eva_h5out_create(&r->out, a->out);
    if (st == EVA_OK)
        st = eva_tapdump_header(&r->out, &r->cfg, &r->in, weights, gen, eva_impl_name(r->impl),
                                eva_precision_name(r->precision));
    r->dump.out = &r->out;
    return st;
}

/* The datasets and attributes of OUT.h5 (already created). */
static eva_status encode_write(eva_h5out *out, const encode_run *r, const encode_args *a) {
    static const char *const names[2][2] = {{"image_features", "image_embeds"}, {"text_features", "text_embeds"}};
    eva_status st = EVA_OK;
    for (int k = 0; k < 2 && st == EVA_OK; k++) {
        int64_t sh[2] = {k ? r->T : r->B, r->E};
        if (sh[0] == 0) continue;
        st = eva_h5out_write(out, names[k][0], r->features[k], 2, sh);
        if (st == EVA_OK) st = eva_h5out_write(out, names[k][1], r->embeds[k], 2, sh);
    }
    int64_t lsh[2] = {r->B, r->T};
    if (st == EVA_OK && r->logits) st = eva_h5out_write(out, "logits_per_image", r->logits, 2, lsh);
    if (st == EVA_OK && r->dump.out)
        return eva_tapdump_outputs(out, r->features[0], r->embeds[0], r->B, r->features[1], r->embeds[1], r->T, r->E,
                                   r->logits); /* the attributes came with the golden header */
    char gen[160];
    generator(gen, sizeof gen, r);
    char *cj = eva_config_to_json(&r->cfg, false);
    if (st == EVA_OK) st = eva_h5out_attr(out, "generator", gen);
    if (st == EVA_OK && cj) st = eva_h5out_attr(out, "config", cj);
    if (st == EVA_OK) st = eva_h5out_attr(out, "weights", a->weights);
    free(cj);
    return st;
}

/* Creates OUT.h5 only after everything was computed; never leaves a half-written file. */
static eva_status encode_output(encode_run *r, const encode_args *a) {
    eva_status st = r->dump.out ? EVA_OK : eva_h5out_create(&r->out, a->out);
    if (st == EVA_OK) st = encode_write(&r->out, r, a);
    if (st == EVA_OK) return eva_h5out_close(&r->out);
    return st;
}

int eva_cmd_encode(int argc, char **argv) {
    encode_args a;
    int code = parse(&a, argc, argv);
    if (code >= 0) return code;
    encode_run r;
    memset(&r, 0, sizeof r);
    r.out.file = -1;
    eva_status st = encode_prepare(&r, &a);
    if (st == EVA_OK && a.taps) st = encode_open_taps(&r, &a);
    if (st == EVA_OK) st = encode_compute(&r, (int)a.batch);
    if (st == EVA_OK) st = encode_output(&r, &a);
    if (st != EVA_OK && r.out.file > 0) {
        eva_h5out_close(&r.out);
        remove(a.out); /* never leave a half-written output */
    }
    if (st == EVA_OK)
        fprintf(stderr, "evabench encode: wrote %s (%lld images, %lld texts, config %s from %s, %s %s)\n", a.out,
                (long long)r.B, (long long)r.T, r.cfg.name, r.config_source, eva_impl_name(r.impl),
                eva_precision_name(r.precision));
    code = st == EVA_OK ? 0 : eva_cli_fail("encode", st);
    encode_free(&r);
    return code;
}
