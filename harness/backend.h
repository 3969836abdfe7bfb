/* backend.h: the implementation switch of encode, verify (and later bench): --impl ref|cuda ×
 * --precision fp32|tf32|bf16|fp16.
 *
 * Owns: parsing the two options, refusing combinations a build cannot run (exit 2 through the
 * status: the reference runs fp32 only; a build without CUDA; no device), and one interface
 * (eva_backend_ops) through which the harness drives either implementation. Does not own the
 * implementations: ref/ref_model.h (always present) and cuda/eva_cuda.h.
 *
 * How the CUDA twin plugs in: when the build defines EVA_HAVE_CUDA and cuda/eva_cuda.h exists,
 * backend.c includes it and calls
 *     const eva_backend_ops *eva_cuda_backend_ops(void);
 * which eva_cuda.h must declare (it may include this header for the type). Until then
 * --impl cuda answers EVA_ERR_NO_DEVICE "no CUDA device is available" in CUDA builds, and
 * EVA_ERR_UNSUPPORTED "this build has no CUDA" in builds without it (both exit 2).
 */
#ifndef EVA_BACKEND_H
#define EVA_BACKEND_H

#include <stdint.h>

#include "eva_status.h"
#include "eva_tap.h"
#include "eva_weights.h"

typedef enum { EVA_IMPL_REF = 0, EVA_IMPL_CUDA = 1 } eva_impl;
/* eva_precision, eva_precision_parse and eva_precision_name live in eva_config.h. */

eva_status eva_impl_parse(eva_impl *out, const char *s);           /* "ref" | "cuda" */
const char *eva_impl_name(eva_impl i);

/* What an implementation provides. `state` is whatever create() made. Taps are delivered through
 * eva_tap (ask, then take; batch-first float32 on the host). */
typedef struct eva_backend_ops {
    const char *name; /* "ref", "cuda" */
    /* Prepares to run model `m` (host fp32 weights, outlives the state) at precision p. */
    eva_status (*create)(void **state, const eva_model *m, eva_precision p);
    /* features [B,E]; pixels [B,3,S,S] (host). */
    eva_status (*encode_image)(void *state, float *features, const float *pixels, int B, const eva_tap *tap);
    /* features [T,E]; ids [T,L] (host, already range-checked). */
    eva_status (*encode_text)(void *state, float *features, const int32_t *ids, int T, const eva_tap *tap);
    void (*destroy)(void *state);
    /* Optional: one line about the device/library versions (NULL if none). */
    const char *(*describe)(void *state);
    /* Optional per-module device timing for `evabench profile` (NULL for the reference, which is
     * timed on the host through its taps). set_timing(state, 1) makes every following forward
     * record the device time between its tap boundaries (a batch must then run in one pass);
     * timings() reads the last forward's: tap names in forward order and the ms since the previous
     * boundary, then "(after last tap)"; returns the count, -1 on a device error (see
     * eva_last_error). */
    eva_status (*set_timing)(void *state, int on);
    int (*timings)(void *state, char (*names)[EVA_TAP_NAME_MAX], double *ms, int max);
} eva_backend_ops;

typedef struct {
    const eva_backend_ops *ops;
    void *state;
    eva_impl impl;
    eva_precision precision;
    const eva_model *model;
} eva_backend;

/* Checks that (impl, precision) is runnable by this build without touching a device or weights:
 * used before loading anything so that a refusal is quick. */
eva_status eva_backend_check(eva_impl impl, eva_precision p);
/* The --impl / --precision options: parses both (NULL means "ref" / "fp32") and checks the pair
 * with eva_backend_check. */
eva_status eva_backend_select(eva_impl *impl, eva_precision *p, const char *impl_s, const char *prec_s);
eva_status eva_backend_open(eva_backend *b, eva_impl impl, eva_precision p, const eva_model *m);
eva_status eva_backend_encode_image(eva_backend *b, float *features, const float *pixels, int B, const eva_tap *tap);
eva_status eva_backend_encode_text(eva_backend *b, float *features, const int32_t *ids, int T, const eva_tap *tap);
const char *eva_backend_describe(const eva_backend *b);
/* Accepts a zeroed or half-opened backend. */
void eva_backend_close(eva_backend *b);

/* Config resolution shared by the commands: --config PATH, else --variant NAME, else
 * `fallback_json` (a golden's config attribute, described by fallback_source), else the weights'
 * evabench.config metadata. Giving both --config and --variant is an error. *source names where
 * the config came from ("--config", "--variant", fallback_source, "weights metadata"). */
eva_status eva_resolve_config(eva_config *cfg, const char **source, const char *config_path, const char *variant,
                              const char *fallback_json, const char *fallback_source, const char *weights_path);

/* The plain-C reference behind the same interface. */
const eva_backend_ops *eva_ref_backend_ops(void);

#endif
