/* eva_weights.h: a loaded model = config + tensor table + where each tensor is held + views.
 *
 * eva_model_load() opens a checkpoint (eva_checkpoint_open: a safetensors file, an open_clip hub
 * folder, transformers safetensors shards; F32, F16 or BF16), maps official EVA-CLIP names and
 * open_clip names onto the tensor table, and refuses any mismatch: a missing tensor, an
 * unexpected tensor or a wrong shape, listing every offender in one message. The official files'
 * rope buffers are ignored. Every file is mapped read-only (mmap, MAP_PRIVATE): the typed tensors
 * (weight matrices and the token embedding, eva_tensor_desc.typed) stored as one piece of a file
 * are used in place, in the file's dtype, so F16/BF16 weights stay 2 bytes per value and F32
 * files are not copied; pages come from the page cache when first touched. A typed tensor
 * assembled from pieces (q/k/v of transformers shards) is copied once into owned memory in its
 * dtype. The other tensors (norms, biases, embeddings of patches/positions/cls, text projection,
 * logit scale: under 1% of the parameters) are widened into a small owned fp32 arena at load, as
 * is a typed tensor no mapping can serve (values not aligned to their size in the file, or a
 * big-endian host).
 * eva_model_init_random() fills an all-fp32 arena with deterministic random weights (benchmarks
 * without --weights); eva_model_write_random() writes the same values to a file in any dtype.
 * Config resolution (--config / --variant / metadata) is the caller's: see
 * eva_model_config_from_weights() for the metadata key.
 */
#ifndef EVA_WEIGHTS_H
#define EVA_WEIGHTS_H

#include <stdint.h>

#include "eva_config.h"
#include "eva_tensors.h"

#define EVA_CONFIG_METADATA_KEY "evabench.config"

/* A file mapping the model reads its typed tensors from; owned by the model. */
typedef struct {
    void *addr;
    size_t len;
} eva_weights_map;

/* Bytes a model holds: what it allocated, what it reads through mappings (per tower). */
typedef struct {
    int64_t arena_bytes;          /* owned arena: fp32 tensors and 16-bit copies of assembled ones */
    int64_t mapped_bytes[3];      /* typed tensors served by a mapping, by eva_tower (image, text, top) */
    int mapped_dtype;             /* eva_dtype of every mapped tensor; -1 when none or mixed */
} eva_weights_bytes;

typedef struct {
    eva_config cfg;
    eva_tensor_table tensors;
    eva_wmat *at;                 /* [tensors.count]: where tensor i is held and in which dtype; owned */
    float *arena;                 /* owned arena, 64-byte aligned: every tensor at its table offset for random
                                     weights; for a loaded file the tensors widened at load, then the
                                     16-bit copies of typed tensors assembled from pieces */
    eva_weights_map *maps;        /* [nmaps] file mappings; owned */
    int nmaps;
    eva_weights_bytes bytes;      /* what is held */
    eva_weight_views w;           /* views onto at[] */
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
/* What eva_model_load(path, cfg) would hold, from the file's header alone (nothing read or
 * mapped); path NULL: eva_model_init_random's arena. Tensors the table does not know are not
 * counted (the load refuses such a file anyway). */
eva_status eva_model_plan_bytes(eva_weights_bytes *b, const char *path, const eva_config *cfg);
/* dst[numel] = tensor i of the table, widened to fp32. */
void eva_model_tensor_f32(const eva_model *m, int i, float *dst);
/* Writes eva_model_init_random(cfg, seed)'s values (rounded to dtype) as a safetensors file, tensor
 * by tensor (memory: a few KiB, whatever the model's size), open_clip names unless the family is
 * official-only, with the config as evabench.config metadata. */
eva_status eva_model_write_random(const char *path, const eva_config *cfg, uint64_t seed, eva_dtype dtype);
/* Frees everything; accepts a zeroed or half-built model. */
void eva_model_free(eva_model *m);

#endif
