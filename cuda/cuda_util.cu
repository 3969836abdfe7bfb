/* cuda_util.cu: launch checking, the EVA_CUDA_SYNC debug switch, dtype helpers, device memory
 * helpers (malloc/upload/download with host-side rounding) and the fp32 <-> act conversion kernel.
 * Owns no model logic. Host-side rounding uses ref/eva_half.h (exact round-to-nearest-even), so a
 * weight uploaded here is the same value the CPU twin tests compute with.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"
#include "eva_half.h"

extern "C" int eva_cuda_sync_debug(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *s = getenv("EVA_CUDA_SYNC");
        cached = (s && s[0] == '1') ? 1 : 0;
    }
    return cached;
}

extern "C" eva_status eva_cuda_after_launch(const char *op, void *stream) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return eva_fail(EVA_ERR_CUDA, "%s: kernel launch failed: %s", op, cudaGetErrorString(e));
    if (eva_cuda_sync_debug()) {
        /* a stream being captured into a graph must not be synchronised */
        cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing((cudaStream_t)stream, &cs) != cudaSuccess) {
            (void)cudaGetLastError();
            return EVA_OK;
        }
        if (cs != cudaStreamCaptureStatusNone) return EVA_OK;
        e = cudaDeviceSynchronize();
        if (e != cudaSuccess)
            return eva_fail(EVA_ERR_CUDA, "%s: failed while running (EVA_CUDA_SYNC=1): %s", op, cudaGetErrorString(e));
    }
    return EVA_OK;
}

extern "C" size_t eva_cu_dtype_size(eva_cu_dtype t) { return t == EVA_CU_F32 ? 4 : 2; }

extern "C" eva_cu_dtype eva_cu_act_dtype(eva_precision p) {
    return p == EVA_PREC_BF16 ? EVA_CU_BF16 : p == EVA_PREC_FP16 ? EVA_CU_F16 : EVA_CU_F32;
}

extern "C" eva_status eva_cu_malloc(void **p, size_t bytes) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        return eva_fail(e == cudaErrorMemoryAllocation ? EVA_ERR_NOMEM : EVA_ERR_CUDA, "cudaMalloc of %zu bytes: %s",
                        bytes, cudaGetErrorString(e));
    }
    return EVA_OK;
}

extern "C" void eva_cu_free(void *p) {
    if (p) (void)cudaFree(p);
}

extern "C" eva_status eva_cu_upload_bytes(void *dst, const void *src, size_t bytes) {
    EVA_CU_TRY("upload", cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return EVA_OK;
}

extern "C" eva_status eva_cu_synchronize(void) {
    EVA_CU_TRY("synchronize", cudaDeviceSynchronize());
    return EVA_OK;
}

/* Converts in host chunks of 1 Mi elements so huge tensors need little host memory. */
extern "C" eva_status eva_cu_upload(void *dst, const float *src, size_t n, eva_cu_dtype t) {
    if (t == EVA_CU_F32) return eva_cu_upload_bytes(dst, src, n * sizeof(float));
    const size_t chunk = (size_t)1 << 20;
    uint16_t *tmp = (uint16_t *)malloc(sizeof(uint16_t) * (n < chunk ? (n ? n : 1) : chunk));
    if (!tmp) return eva_fail(EVA_ERR_NOMEM, "upload: cannot allocate a host staging buffer");
    eva_status st = EVA_OK;
    for (size_t i = 0; i < n && st == EVA_OK; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        for (size_t j = 0; j < m; j++)
            tmp[j] = t == EVA_CU_BF16 ? eva_f32_to_bf16(src[i + j]) : eva_f32_to_f16(src[i + j]);
        st = eva_cu_upload_bytes((uint16_t *)dst + i, tmp, m * sizeof(uint16_t));
    }
    free(tmp);
    return st;
}

extern "C" eva_status eva_cu_download(float *dst, const void *src, size_t n, eva_cu_dtype t) {
    if (t == EVA_CU_F32) {
        EVA_CU_TRY("download", cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost));
        return EVA_OK;
    }
    /* 16-bit values land in the upper half of dst's own storage and are widened in place from the
     * back, so no second host buffer is needed */
    uint16_t *h = (uint16_t *)dst + n;
    EVA_CU_TRY("download", cudaMemcpy(h, src, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        uint16_t b = h[i];
        dst[i] = t == EVA_CU_BF16 ? eva_bf16_to_f32(b) : eva_f16_to_f32(b);
    }
    return EVA_OK;
}

template <typename TD, typename TS>
__global__ void convert_kernel(TD *dst, const TS *src, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        eva::st(dst, i, eva::ld(src, i));
}

template <typename TD>
static void launch_convert_from(TD *dst, const void *src, eva_cu_dtype stype, long long n, cudaStream_t s) {
    unsigned g = eva::grid_for(n, 256);
    if (stype == EVA_CU_BF16)
        convert_kernel<<<g, 256, 0, s>>>(dst, (const __nv_bfloat16 *)src, n);
    else if (stype == EVA_CU_F16)
        convert_kernel<<<g, 256, 0, s>>>(dst, (const __half *)src, n);
    else
        convert_kernel<<<g, 256, 0, s>>>(dst, (const float *)src, n);
}

extern "C" eva_status eva_cu_convert(void *dst, eva_cu_dtype dt, const void *src, eva_cu_dtype stype, int64_t n,
                                     void *stream) {
    if (n <= 0) return EVA_OK;
    cudaStream_t s = (cudaStream_t)stream;
    if (dt == EVA_CU_BF16)
        launch_convert_from((__nv_bfloat16 *)dst, src, stype, n, s);
    else if (dt == EVA_CU_F16)
        launch_convert_from((__half *)dst, src, stype, n, s);
    else
        launch_convert_from((float *)dst, src, stype, n, s);
    EVA_CU_LAUNCHED_ON("convert", stream);
    return EVA_OK;
}
