/* eva_checkpoint.h: opening what a user downloaded, and finding its config.
 *
 * The one path per published format (golden/README.md has the table):
 *   - a `.safetensors` file (ours with evabench.config metadata, a converted official `.pt`, or an
 *     open_clip hub file): opened as is;
 *   - an open_clip hub folder (timm/eva02_*, timm/eva_giant_*, ...): `open_clip_model.safetensors`
 *     in it, the config derived from `open_clip_config.json` beside it;
 *   - the transformers shards of the BAAI EVA-CLIP-8B/-8B-448/-18B repos: the folder, the
 *     `model.safetensors.index.json`, or one `model-0000N-of-0000M.safetensors`: every shard opened,
 *     the transformers names mapped back to the official ones (q/k/v concatenated, text projection
 *     transposed, class/position embeddings reshaped) as a composite handle; nothing is copied;
 *   - pickled files (`.pt`, `.bin`, `pytorch_model*.bin` shards) are refused with the conversion
 *     command (golden/convert_checkpoint.py streams them to safetensors).
 * Config, in order: the evabench.config metadata; open_clip_config.json beside the file; the
 * tensor names and shapes matched against the ten built-in variants (exactly one must match).
 */
#ifndef EVA_CHECKPOINT_H
#define EVA_CHECKPOINT_H

#include <stddef.h>

#include "eva_config.h"
#include "eva_safetensors.h"

/* Opens `path` (file or folder, see above). On failure *st is NULL and the message names the path
 * and what to do (EVA_ERR_INVALID_ARG / EVA_ERR_FORMAT / EVA_ERR_IO). */
eva_status eva_checkpoint_open(eva_safetensors **st, const char *path);

/* The config of the checkpoint at `path`; *how (static string) says where it came from:
 * "weights metadata", "open_clip_config.json" or "tensor shapes". */
eva_status eva_checkpoint_config(eva_config *cfg, const char *path, const char **how);

/* open_clip's hub config JSON ({"model_cfg": {"embed_dim", "vision_cfg": {"timm_model_name",
 * "image_size", ...}, "text_cfg": {...}}, ...}, or a bare model_cfg) -> config. The vision tower
 * comes from the timm model name (the EVA-CLIP trunks timm registers for open_clip), the text tower
 * and embed_dim from the JSON; the result takes a built-in variant's name when it equals one. */
eva_status eva_config_from_open_clip_json(eva_config *cfg, const char *json, const char *source);

/* The built-in variant whose tensor table matches the handle's tensors by name and shape (rope
 * buffers ignored). EVA_ERR_INVALID_ARG when none or several match. */
eva_status eva_config_from_tensors(eva_config *cfg, const eva_safetensors *st, const char *source);

#endif
