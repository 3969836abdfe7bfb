/* ref_model.h: the plain-C reference forward of every EVA-CLIP family.
 *
 * Each tower is a flat list of op calls (ref_ops.h) in the order of the upstream modules, with a
 * tap after each module named in docs/cli.md. fp32 activations (weights in their stored dtype,
 * widened while packed); long reductions accumulate in double; LayerNorm is two-pass. OpenMP over
 * tokens/heads. Activation memory for a batch is one workspace (size from
 * eva_ref_*_workspace_floats): the *_ws entry points take it from a caller's eva_ref_workspace,
 * which grows to the largest batch seen and is reused by every later forward of either tower;
 * the others allocate it and free it before returning.
 */
#ifndef EVA_REF_MODEL_H
#define EVA_REF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "eva_backend.h"
#include "eva_tap.h"
#include "eva_weights.h"

/* A reusable activation workspace (zero-initialise; eva_ref_workspace_free releases it). */
typedef struct {
    float *buf;
    int64_t floats;
} eva_ref_workspace;
void eva_ref_workspace_free(eva_ref_workspace *w);

/* features: [B,E] projections (not normalised). pixels: [B,3,S,S] normalised RGB. */
eva_status eva_ref_encode_image(float *features, const float *pixels, int B, const eva_model *m,
                                const eva_tap *tap);
/* features: [T,E]. ids: [T,L] with L = cfg.text.context_length; every id in [0, V) (else
 * EVA_ERR_INVALID_ARG naming the text and position). */
eva_status eva_ref_encode_text(float *features, const int32_t *ids, int T, const eva_model *m,
                               const eva_tap *tap);
/* The same in the workspace ws (grown when the batch needs more). */
eva_status eva_ref_encode_image_ws(eva_ref_workspace *ws, float *features, const float *pixels, int B,
                                   const eva_model *m, const eva_tap *tap);
eva_status eva_ref_encode_text_ws(eva_ref_workspace *ws, float *features, const int32_t *ids, int T,
                                  const eva_model *m, const eva_tap *tap);

/* Floats of activation workspace the reference allocates for a batch (for memory planning). */
int64_t eva_ref_image_workspace_floats(const eva_config *cfg, int B);
int64_t eva_ref_text_workspace_floats(const eva_config *cfg, int T);

/* emb[n,E] = x[n,E] / ||x|| (rows with zero norm stay zero). */
void eva_ref_l2_normalize(float *emb, const float *x, int n, int E);
/* logits[B,T] = scale * img_emb . txt_emb^T (both normalised). */
void eva_ref_logits(float *logits, const float *img_emb, const float *txt_emb, int B, int T, int E, float scale);

/* The reference behind the core backend interface (ref_backend.c). */
const eva_backend_ops *eva_ref_backend_ops(void);

#endif
