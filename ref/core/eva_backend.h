/* eva_backend.h: the one interface through which the harness drives an implementation.
 *
 * Owns: the table of function pointers an implementation provides (eva_backend_ops), the open
 * backend handle (eva_backend) and the thin calls over it. Does not own any implementation: the
 * plain-C reference provides its table in ref/model (eva_ref_backend_ops, ref_model.h), the CUDA
 * twin in cuda/ (eva_cuda_backend_ops, eva_cuda.h); choosing one from `--impl` is the harness's
 * job (backend_select.h). Lives in the core so that both implementations build against it
 * without knowing the harness, and the harness drives both without knowing their internals.
 */
#ifndef EVA_BACKEND_H
#define EVA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "eva_config.h"
#include "eva_status.h"
#include "eva_tap.h"
#include "eva_weights.h"

typedef enum { EVA_IMPL_REF = 0, EVA_IMPL_CUDA = 1 } eva_impl;

eva_status eva_impl_parse(eva_impl *out, const char *s); /* "ref" | "cuda" */
const char *eva_impl_name(eva_impl i);

/* What an implementation provides. `state` is whatever create() made. Taps are delivered through
 * eva_tap (ask, then take; batch-first float32 on the host). Members marked optional may be NULL. */
typedef struct eva_backend_ops {
    const char *name; /* "ref", "cuda" */
    /* Prepares to run model `m` (host weights, outlive the state) at precision p for batches of up
     * to max_batch items (larger ones may be split by the implementation). */
    eva_status (*create)(void **state, const eva_model *m, eva_precision p, int max_batch);
    /* features [B,E]; pixels [B,3,S,S] (host). */
    eva_status (*encode_image)(void *state, float *features, const float *pixels, int B, const eva_tap *tap);
    /* features [T,E]; ids [T,L] (host, already range-checked). */
    eva_status (*encode_text)(void *state, float *features, const int32_t *ids, int T, const eva_tap *tap);
    void (*destroy)(void *state);
    /* Optional: one line about the device/library versions (NULL if none). */
    const char *(*describe)(void *state);
    /* Optional per-module device timing (NULL for the reference, which is timed on the host through
     * its taps). set_timing(state, 1) makes every following forward record the device time between
     * its tap boundaries; timings() reads the last forward's: tap names in forward order and the
     * ms since the previous boundary, then "(after last tap)"; returns the count, -1 on error. */
    eva_status (*set_timing)(void *state, int on);
    int (*timings)(void *state, char (*names)[EVA_TAP_NAME_MAX], double *ms, int max);
    /* Optional, before any weights are loaded: the device this implementation would run on
     * (one line into desc), the bytes it would need there for `cfg` at `p` and max_batch, and the
     * bytes free there. Fails with EVA_ERR_NO_DEVICE when there is none. */
    eva_status (*plan_device)(const eva_config *cfg, eva_precision p, int max_batch, char *desc, size_t desc_size,
                              int64_t *need_bytes, int64_t *free_bytes);
    /* Optional: the device memory high-water mark of the state so far, in bytes (-1 unknown). */
    int64_t (*peak_device_bytes)(void *state);
    /* Optional: the measured GEMM rate of the device in precision p (n x n x n), TFLOP/s. */
    eva_status (*gemm_ceiling)(eva_precision p, int n, double *tflops);
    /* Optional: host memory for inputs and features that the device copies asynchronously
     * (page-locked); NULL on failure. Without them the harness uses malloc/free. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
    /* Optional: the device time of the last encode call in ms, measured on the device (events
     * from before the input's upload to after the features' download); -1 when unknown. */
    double (*last_call_ms)(void *state);
} eva_backend_ops;

/* An open implementation: its table, its state and what it was opened with. */
typedef struct {
    const eva_backend_ops *ops;
    void *state;
    eva_impl impl;
    eva_precision precision;
    const eva_model *model;
} eva_backend;

/* Opens `ops` for model m. On failure b is left zeroed. */
eva_status eva_backend_open(eva_backend *b, const eva_backend_ops *ops, eva_impl impl, eva_precision p,
                            const eva_model *m, int max_batch);
eva_status eva_backend_encode_image(eva_backend *b, float *features, const float *pixels, int B, const eva_tap *tap);
eva_status eva_backend_encode_text(eva_backend *b, float *features, const int32_t *ids, int T, const eva_tap *tap);
/* "" when the implementation has nothing to say. */
const char *eva_backend_describe(const eva_backend *b);
/* -1 when the implementation does not track device memory. */
int64_t eva_backend_peak_device_bytes(const eva_backend *b);
/* Accepts a zeroed or half-opened backend. */
void eva_backend_close(eva_backend *b);

#endif
