/* eva_cuda_backend.c: the CUDA twin behind the core's backend interface (eva_backend.h), so
 * encode/verify/bench take --impl cuda. A thin adapter over eva_cuda.h: create() uploads the
 * model for max_batch items (0: EVA_CUDA_MAX_BATCH from the environment, default 256; the model
 * shrinks that to the device's free memory and splits larger batches), describe() names the
 * device and library versions, set_timing()/timings() expose the model's per-module device events
 * to `evabench profile`, plan_device()/peak_device_bytes()/gemm_ceiling() feed bench's memory plan
 * and profile's ceiling, host_alloc()/host_free() give bench page-locked input and feature buffers
 * and last_call_ms() the device time of a call (CUDA events around upload, forward, download).
 */
#include <stdio.h>
#include <stdlib.h>

#include "eva_backend.h"
#include "eva_cuda.h"

typedef struct {
    eva_cuda_model *m;
    char desc[1024];
} cuda_state;

static eva_status cb_create(void **state, const eva_model *m, eva_precision p, int max_batch) {
    *state = NULL;
    eva_cuda_device_info di;
    eva_status st = eva_cuda_device(&di);
    if (st != EVA_OK) return st;
    if (max_batch <= 0) {
        max_batch = 256;
        const char *env = getenv("EVA_CUDA_MAX_BATCH");
        if (env && atoi(env) > 0) max_batch = atoi(env);
    }
    cuda_state *s = calloc(1, sizeof *s);
    if (!s) return eva_fail(EVA_ERR_NOMEM, "--impl cuda: out of host memory");
    st = eva_cuda_model_create(&s->m, m, p, max_batch);
    if (st != EVA_OK) {
        free(s);
        return st;
    }
    char att[512] = "";
    (void)eva_cuda_attention_paths(&m->cfg, p, att, sizeof att);
    snprintf(s->desc, sizeof s->desc,
             "CUDA twin on %s (sm_%d%d, driver %d, runtime %d, cuBLASLt %d, cuDNN %zu), %s, cuBLASLt GEMMs, "
             "fused norm/SwiGLU kernels; attention: %s",
             di.name, di.sm_major, di.sm_minor, di.driver_version, di.runtime_version, di.cublas_version,
             di.cudnn_version, eva_precision_name(p), att);
    *state = s;
    return EVA_OK;
}

static eva_status cb_image(void *state, float *features, const float *pixels, int B, const eva_tap *tap) {
    return eva_cuda_encode_image(((cuda_state *)state)->m, features, pixels, B, tap);
}

static eva_status cb_text(void *state, float *features, const int32_t *ids, int T, const eva_tap *tap) {
    return eva_cuda_encode_text(((cuda_state *)state)->m, features, ids, T, tap);
}

static void cb_destroy(void *state) {
    cuda_state *s = state;
    if (!s) return;
    eva_cuda_model_free(s->m);
    free(s);
}

static const char *cb_describe(void *state) { return state ? ((cuda_state *)state)->desc : "CUDA twin"; }

static eva_status cb_set_timing(void *state, int on) { return eva_cuda_set_timing(((cuda_state *)state)->m, on); }

static int cb_timings(void *state, char (*names)[EVA_TAP_NAME_MAX], double *ms, int max) {
    return eva_cuda_timings(((cuda_state *)state)->m, names, ms, max);
}

static eva_status cb_plan_device(const eva_config *cfg, eva_precision p, int max_batch, char *desc, size_t desc_size,
                                 int64_t *need_bytes, int64_t *free_bytes) {
    eva_cuda_device_info di;
    eva_status st = eva_cuda_device(&di);
    if (st != EVA_OK) return st;
    snprintf(desc, desc_size, "gpu: %s (sm_%d%d, %.1f GiB, driver %d, runtime %d, cuBLAS %d, cuDNN %zu)", di.name,
             di.sm_major, di.sm_minor, di.total_bytes / (1024.0 * 1024.0 * 1024.0), di.driver_version,
             di.runtime_version, di.cublas_version, di.cudnn_version);
    *need_bytes = (int64_t)eva_cuda_model_bytes_needed(cfg, p, max_batch);
    *free_bytes = (int64_t)di.free_bytes;
    return EVA_OK;
}

static int64_t cb_peak_device_bytes(void *state) {
    return state ? (int64_t)eva_cuda_model_peak_bytes(((cuda_state *)state)->m) : -1;
}

static double cb_last_call_ms(void *state) { return state ? eva_cuda_last_call_ms(((cuda_state *)state)->m) : -1.0; }

static const eva_backend_ops cuda_ops = {
    .name = "cuda",
    .create = cb_create,
    .encode_image = cb_image,
    .encode_text = cb_text,
    .destroy = cb_destroy,
    .describe = cb_describe,
    .set_timing = cb_set_timing,
    .timings = cb_timings,
    .plan_device = cb_plan_device,
    .peak_device_bytes = cb_peak_device_bytes,
    .gemm_ceiling = eva_cuda_gemm_ceiling,
    .host_alloc = eva_cuda_host_alloc,
    .host_free = eva_cuda_host_free,
    .last_call_ms = cb_last_call_ms,
};

const eva_backend_ops *eva_cuda_backend_ops(void) { return &cuda_ops; }
