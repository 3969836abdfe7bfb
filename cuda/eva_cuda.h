/* eva_cuda.h: the C API of the CUDA twin, mirroring ref_model.h.
 *
 * Plain C (no C++ in this header): included by the harness (C11) and implemented in the .cu files of cuda/.
 * A model is uploaded once (weights converted to the run's precision), activation and workspace
 * memory is sized before the first kernel for `max_batch` items, and batches larger than that are
 * split. Taps follow the same names and shapes as the reference (eva_tap.h); a tap is copied back
 * to the host only when eva_tap_wants() says so. Without a usable device every entry point returns
 * EVA_ERR_NO_DEVICE with the message "no CUDA device is available (...)".
 */
#ifndef EVA_CUDA_H
#define EVA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "eva_backend.h"
#include "eva_config.h"
#include "eva_tap.h"
#include "eva_weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eva_cuda_model eva_cuda_model;

typedef struct {
    char name[256];          /* device name, e.g. "NVIDIA H100 80GB HBM3" */
    int sm_major, sm_minor;
    size_t total_bytes, free_bytes;
    int driver_version, runtime_version;
    int cublas_version;
    size_t cudnn_version;    /* 0 when built without cuDNN */
} eva_cuda_device_info;

/* EVA_OK and fills info when a device is usable; EVA_ERR_NO_DEVICE otherwise. */
eva_status eva_cuda_device(eva_cuda_device_info *info);

/* Uploads `host` (weights in their stored dtype, widened per tensor on the host) in `prec`.
 * Refuses fp16 for variants where it is unsafe (EVA_ERR_UNSUPPORTED with the reason). max_batch sizes the activation memory. */
eva_status eva_cuda_model_create(eva_cuda_model **out, const eva_model *host, eva_precision prec, int max_batch);
/* Same semantics and shapes as eva_ref_encode_image / eva_ref_encode_text (features before
 * normalisation, fp32 on the host). */
eva_status eva_cuda_encode_image(eva_cuda_model *m, float *features, const float *pixels, int B, const eva_tap *tap);
eva_status eva_cuda_encode_text(eva_cuda_model *m, float *features, const int32_t *ids, int T, const eva_tap *tap);
/* Peak device bytes allocated by this model so far (weights + activations + workspace). */
size_t eva_cuda_model_peak_bytes(const eva_cuda_model *m);
/* Bytes a model would need for max_batch items at prec, computed before allocating. */
size_t eva_cuda_model_bytes_needed(const eva_config *cfg, eva_precision prec, int max_batch);
void eva_cuda_model_free(eva_cuda_model *m);

/* Per-module device timing for `evabench profile`. While on, each forward records a CUDA event on
 * the model's stream at its start, at every tap boundary (nothing is copied unless the tap wants
 * the data) and at its end (after the features' download); CUDA graphs are not used, and a batch
 * larger than the device batch is refused (EVA_ERR_UNSUPPORTED) because the forward must run as
 * one pass. Turning it on allocates the events; off frees them. */
eva_status eva_cuda_set_timing(eva_cuda_model *m, int on);
/* After a timed forward (which has synchronised): the tap names in forward order and the device
 * ms from the previous boundary to each; the last entry, "(after last tap)", runs from the last
 * tap to the end of the forward. Fills at most `max` entries and returns the number of
 * boundaries the last forward recorded (0 when timing is off or nothing was recorded). */
int eva_cuda_timings(const eva_cuda_model *m, char (*names)[EVA_TAP_NAME_MAX], double *ms, int max);
/* The card's measured GEMM rate in `prec`: an n x n x n product through the same cuBLASLt path
 * as the model (eva_cu_linear), best of a few timed runs after a warm-up, in TFLOP/s (2 FLOPs
 * per multiply-add). For the profile's ceiling. */
eva_status eva_cuda_gemm_ceiling(eva_precision prec, int n, double *tflops);

/* Page-locked host memory (cudaHostAlloc): uploads from it and downloads into it are
 * asynchronous DMA. NULL on failure (or without a device); free with eva_cuda_host_free. */
void *eva_cuda_host_alloc(size_t bytes);
void eva_cuda_host_free(void *p);
/* Device ms of the last eva_cuda_encode_image/_text call, from CUDA events on the model's stream
 * recorded before the input's upload and after the features' download (all chunks); -1 when the
 * last call failed or none was made. */
double eva_cuda_last_call_ms(const eva_cuda_model *m);

/* One line naming the attention kernel each tower takes in `prec` (tensor cores or CUDA cores,
 * padded head dim, RoPE fused or not), e.g. "image: tensor cores (mma.sync m16n8k16 bf16 flash
 * kernel, head_dim 88 padded to 96); text: ...". Needs no device (for `info` and `profile`). */
eva_status eva_cuda_attention_paths(const eva_config *cfg, eva_precision prec, char *buf, size_t n);

/* The core's backend interface (eva_backend.h) over this API, for --impl cuda. Its create()
 * sizes activations for max_batch items (0: EVA_CUDA_MAX_BATCH from the environment, default 256;
 * shrunk to fit the device) and larger batches are split. Defined in eva_cuda_backend.c. */
const eva_backend_ops *eva_cuda_backend_ops(void);

#ifdef __cplusplus
}
#endif

#endif
