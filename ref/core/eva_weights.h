/* eva_weights.h: a loaded model = config + tensor table + one aligned fp32 arena + views.
 *
 * eva_model_load() reads a checkpoint (eva_checkpoint_open: a safetensors file, an open_clip hub
 * folder, transformers safetensors shards; F32, F16 or BF16, converted to fp32), maps official
 * EVA-CLIP names and open_clip names onto the tensor table, and refuses any mismatch: a missing
 * tensor, an unexpected tensor or a wrong shape, listing every offender in one message. The
 * official files' rope buffers are ignored. eva_model_init_random() fills the same arena with
 * deterministic random weights (benchmarks without --weights).
 * Config resolution (--config / --variant / metadata) is the caller's: see
 * eva_model_config_from_weights() for the metadata key.
 */
#ifndef EVA_WEIGHTS_H
#define EVA_WEIGHTS_H

#include <stdint.h>

#include "eva_config.h"
#include "eva_tensors.h"

#define EVA_CONFIG_METADATA_KEY "evabench.config"

typedef struct {
    eva_config cfg;
    eva_tensor_table tensors;
    float *arena;                 /* tensors.arena_floats floats, 64-byte aligned; owned */
    eva_weight_views w;           /* views into arena */
    eva_vblock_weights *vblocks;  /* [cfg.vision.depth], owned */
    eva_tblock_weights *tblocks;  /* [cfg.text.layers], owned */
    char source[512];             /* weights path, or "random(seed)" */
    int random;                   /* 1 when made by eva_model_init_random */
} eva_model;

/* Loads `path` for the (already validated) config `cfg`. */
eva_status eva_model_load(eva_model *m, const char *path, const eva_config *cfg);
/* Deterministic random weights (norm weights near 1, small biases, fan-in scaled matrices). */
eva_status eva_model_init_random(eva_model *m, const eva_config *cfg, uint64_t seed);
/* The config of the checkpoint at path (eva_checkpoint_config: evabench.config metadata,
 * open_clip_config.json beside it, or the tensor shapes); EVA_ERR_INVALID_ARG when none says
 * (the message says to pass --variant/--config). */
eva_status eva_model_config_from_weights(eva_config *cfg, const char *path);
/* Frees everything; accepts a zeroed or half-built model. */
void eva_model_free(eva_model *m);

#endif
