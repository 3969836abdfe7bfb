/* tapcmp.h: judging any implementation's tap dump against a golden (`evabench compare`).
 *
 * Owns: the name map from other implementations' module names to evabench's tap names, and the
 * comparison of two files in the golden layout (golden.h) tap by tap in forward order with the
 * tolerance table (compare.h). Does not own reading HDF5 (golden.h), the tolerance rule
 * (compare.h) or printing (report.h).
 *
 * Name map (dataset names under /acts of the candidate; the golden always uses our names):
 *
 *   our tap (open_clip)                official EVA-CLIP (eva_clip)   transformers (EvaCLIPModel)
 *   visual.trunk.patch_embed           visual.patch_embed             -
 *   visual.trunk.pos_drop              visual.pos_drop                vision_model.embeddings
 *   visual.trunk.blocks.<i>            visual.blocks.<i>              vision_model.encoder.layers.<i>
 *     .norm1 .attn .norm2 .mlp           .norm1 .attn .norm2 .mlp       .layer_norm1 .self_attn
 *                                                                        .layer_norm2 .mlp
 *   visual.trunk.norm                  visual.norm                    -
 *   visual.trunk.head                  visual.head                    visual_projection
 *   text.token_embedding               text.token_embedding           text_model.embeddings.token_embedding
 *   text.transformer.resblocks.<i>     text.transformer.resblocks.<i> text_model.encoder.layers.<i>
 *     .ln_1 .attn .ln_2 .mlp             .ln_1 .attn .ln_2 .mlp         .layer_norm1 .self_attn
 *                                                                        .layer_norm2 .mlp
 *   text.ln_final                      text.ln_final                  text_model.final_layer_norm
 *   image_features                     visual                         -
 *   text_features                      text                           text_projection
 * In every scheme image_features, text_features, image_embeds, text_embeds and logits_per_image
 * keep their names, and under open_clip names `visual` and `text` (the towers' outputs) are
 * image_features and text_features. transformers' vision_model.post_layernorm (the pooled token
 * only) and the embeddings with text positions have no tap and are unknown. `auto` picks
 * transformers when a name starts with vision_model., text_model., visual_projection or
 * text_projection, else official when a name starts with "visual." but not "visual.trunk.", else
 * open_clip.
 *
 * Decisions:
 * - Every candidate dataset must map to a tap of the golden's config with exactly the shape that
 *   tap has for the golden's inputs (B images, T texts), else EVA_ERR_INVALID_ARG / EVA_ERR_SHAPE
 *   (exit 2). Two datasets mapping to one tap are an error.
 * - When the candidate has /inputs, they must be the golden's (ids equal, pixels within float16
 *   rounding), else the dump was made from other inputs: EVA_ERR_INVALID_ARG.
 * - A golden tap the candidate lacks is an ABSENT row: reported and listed, never a failure. A
 *   candidate tap the golden lacks is listed as "not in the golden". A dump with any subset of
 *   taps passes when every tap in common passes; no tap in common is an error (exit 2).
 */
#ifndef EVA_TAPCMP_H
#define EVA_TAPCMP_H

#include "compare.h"
#include "eva_config.h"
#include "golden.h"

typedef enum { EVA_NAMES_AUTO = 0, EVA_NAMES_OPEN_CLIP, EVA_NAMES_OFFICIAL, EVA_NAMES_TRANSFORMERS } eva_names;

/* "auto", "open_clip", "official", "transformers". */
eva_status eva_names_parse(eva_names *out, const char *s);
const char *eva_names_name(eva_names n);
/* The tap name of a candidate dataset name under scheme n (not AUTO) into out; false when the
 * scheme has no such module. Does not check the tap exists in a config (eva_tap_shape does). */
bool eva_names_map(eva_names n, const char *module, char out[EVA_TAP_NAME_MAX]);
/* The scheme of a list of dataset names (rule in the header comment). */
eva_names eva_names_detect(const char (*names)[EVA_TAP_NAME_MAX], int n);

typedef struct {
    eva_names names;             /* the scheme used (resolved from AUTO) */
    eva_cmp_row *rows;           /* [n_rows] every golden tap in forward order */
    char (*module)[EVA_TAP_NAME_MAX]; /* [n_rows] the candidate's dataset name ("" when absent) */
    int n_rows;
    int n_pass, n_fail, n_absent;
    int first_fail;              /* index into rows, -1 when every tap in common passes */
    char (*extra)[EVA_TAP_NAME_MAX]; /* [n_extra] candidate taps (our names) the golden lacks */
    int n_extra;
    int64_t images, texts;       /* B and T of the golden's inputs */
} eva_dumpcmp;

/* Compares the candidate's taps with the golden's under cfg (the golden's config) and tol.
 * Returns EVA_OK when the comparison ran (r->first_fail says whether it passed); an error for bad
 * input (unknown or mis-shaped tap, other inputs, no tap in common). */
eva_status eva_dumpcmp_run(eva_dumpcmp *r, const eva_golden *gold, const eva_golden *cand, const eva_config *cfg,
                           const eva_tol_table *tol, eva_names names);
void eva_dumpcmp_free(eva_dumpcmp *r);

/* The tolerance table for a candidate: its `precision` attribute when that names a table
 * (fp32, tf32, bf16, fp16), else fp32. Into buf; returns buf. */
const char *eva_dump_precision(const eva_golden *cand, char *buf, size_t cap);
/* "impl; generator" from the candidate's attributes (either may be absent) into buf; NULL when
 * it has neither. */
const char *eva_dump_made_by(const eva_golden *cand, char *buf, size_t cap);

#endif
