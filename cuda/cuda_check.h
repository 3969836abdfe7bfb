/* cuda_check.h: status-returning checks for CUDA runtime, cuBLAS(Lt) and kernel launches.
 *
 * Owns the one way every cuda/ file turns a failing CUDA call into an eva_status with a message
 * naming the op and cudaGetErrorString (library code never prints or exits). Plain C/C++ macros;
 * usable from .cu and .c files. Does not own error recording itself (ref/eva_status.h).
 *
 *   EVA_CU_TRY(op, call)     returns EVA_ERR_CUDA "op: <call text>: <error string>" on failure
 *   EVA_CU_LAUNCHED_ON(op, stream)  cudaGetLastError after a launch on `stream`, and a
 *                            synchronising check of the op when EVA_CUDA_SYNC=1 is set in the
 *                            environment (debug switch: an asynchronous fault then names the op
 *                            that caused it), skipped while `stream` is being captured
 *   EVA_CU_LAUNCHED(op)      the same for a launch on the default stream
 *   EVA_CUBLAS_TRY(op, call) returns EVA_ERR_CUBLAS with the cuBLAS status number and name
 */
#ifndef EVA_CUDA_CHECK_H
#define EVA_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "eva_status.h" /* ref/ headers carry no extern "C" of their own */
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* 1 when EVA_CUDA_SYNC=1 (read once). */
int eva_cuda_sync_debug(void);
/* Implements EVA_CU_LAUNCHED_ON: last error, then (debug switch, and only when `stream`, a
 * cudaStream_t, is not being captured into a graph) a device synchronisation. */
eva_status eva_cuda_after_launch(const char *op, void *stream);
#ifdef __cplusplus
}
#endif

#define EVA_CU_TRY(op, call)                                                                              \
    do {                                                                                                  \
        cudaError_t eva_cu_err_ = (call);                                                                 \
        if (eva_cu_err_ != cudaSuccess)                                                                   \
            return eva_fail(EVA_ERR_CUDA, "%s: %s: %s", (op), #call, cudaGetErrorString(eva_cu_err_));     \
    } while (0)

#define EVA_CU_LAUNCHED_ON(op, stream)                                                                    \
    do {                                                                                                  \
        eva_status eva_cu_st_ = eva_cuda_after_launch(op, (void *)(stream));                              \
        if (eva_cu_st_ != EVA_OK) return eva_cu_st_;                                                      \
    } while (0)
#define EVA_CU_LAUNCHED(op) EVA_CU_LAUNCHED_ON(op, NULL)

#define EVA_CUBLAS_TRY(op, call)                                                                          \
    do {                                                                                                  \
        int eva_cb_st_ = (int)(call);                                                                     \
        if (eva_cb_st_ != 0)                                                                              \
            return eva_fail(EVA_ERR_CUBLAS, "%s: %s: cuBLAS status %d", (op), #call, eva_cb_st_);          \
    } while (0)

/* Propagates an eva_status. */
#define EVA_TRY(expr)                                                                                     \
    do {                                                                                                  \
        eva_status eva_try_st_ = (expr);                                                                  \
        if (eva_try_st_ != EVA_OK) return eva_try_st_;                                                    \
    } while (0)

#endif
