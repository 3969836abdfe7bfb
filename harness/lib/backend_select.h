/* backend_select.h: from the --impl / --precision options to an open implementation.
 *
 * Owns: refusing combinations this build cannot run before anything is loaded (the reference
 * runs fp32 only; a build without CUDA; no device: exit 2 through the status), picking the
 * implementation's table (the reference's from ref/model, the CUDA twin's from cuda/ when the
 * build has it), and resolving the model config from the usual sources. The interface itself is
 * the core's (eva_backend.h).
 */
#ifndef EVA_BACKEND_SELECT_H
#define EVA_BACKEND_SELECT_H

#include "eva_backend.h"

/* The table of `impl` in this build, NULL when the build lacks it. */
const eva_backend_ops *eva_backend_ops_for(eva_impl impl);
/* Checks that (impl, precision) is runnable by this build without touching a device or weights:
 * used before loading anything so that a refusal is quick. */
eva_status eva_backend_check(eva_impl impl, eva_precision p);
/* The --impl / --precision options: parses both (NULL means "ref" / "fp32") and checks the pair. */
eva_status eva_backend_select(eva_impl *impl, eva_precision *p, const char *impl_s, const char *prec_s);
/* eva_backend_check, then eva_backend_open with the table of `impl`; max_batch 0 = default. */
eva_status eva_backend_open_impl(eva_backend *b, eva_impl impl, eva_precision p, const eva_model *m, int max_batch);

/* One line naming the attention kernel(s) `impl` runs for cfg at precision p (for info and
 * profile): for cuda, per tower, tensor cores or CUDA cores, the padded head dim and whether RoPE
 * is fused; EVA_ERR_UNSUPPORTED when the build lacks the implementation. Needs no device. */
eva_status eva_backend_attention_paths(eva_impl impl, const eva_config *cfg, eva_precision p, char *buf, size_t n);

/* Config resolution shared by the commands: --config PATH, else --variant NAME, else
 * `fallback_json` (a golden's config attribute, described by fallback_source), else what the
 * weights say (eva_checkpoint_config: metadata, open_clip_config.json beside them, tensor shapes).
 * Giving both --config and --variant is an error. *source names where the config came from
 * ("--config", "--variant", fallback_source, "weights metadata", "open_clip_config.json" or
 * "tensor shapes"). */
eva_status eva_resolve_config(eva_config *cfg, const char **source, const char *config_path, const char *variant,
                              const char *fallback_json, const char *fallback_source, const char *weights_path);

#endif
