/* gemm.cu: every matrix product of the CUDA twin, and the only cuBLAS/cuBLASLt caller.
 *
 * Row-major out[M,C] = x[M,K] . w[C,K]^T (+ bias) is computed as the column-major product
 * out^T[C,M] = op(w) . x^T with cublasLtMatmul: A = w (K x C col-major, transposed), B = x (K x M,
 * ld = ldx), D = out (C x M, ld = ldo). The bias rides the CUBLASLT_EPILOGUE_BIAS epilogue (one
 * value per row of D, i.e. per output feature). GELU is NOT taken from the epilogue: cuBLASLt's
 * GELU epilogues are the tanh approximation, while every EVA tower uses exact erf GELU; it runs
 * as a separate exact kernel (elementwise.cu) instead.
 *
 * Compute types: fp32 -> CUBLAS_COMPUTE_32F (TF32 off, must match the reference), tf32 ->
 * CUBLAS_COMPUTE_32F_FAST_TF32, bf16/fp16 -> 16-bit A/B/D with CUBLAS_COMPUTE_32F accumulation
 * and fp32 scale. One plan per (shape, strides, bias, pointer alignment): descriptors plus the
 * best algorithm from cublasLtMatmulAlgoGetHeuristic, created on first use and cached; in-place
 * split-K reduction schemes are excluded from the heuristic so results are run-to-run identical.
 *
 * Also here: eva_cuda_gemm_ceiling (eva_cuda.h), the card's measured n^3 rate through this same
 * path, for the fractions of `evabench profile --impl cuda`.
 */
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"
#include "eva_cuda.h"

#define EVA_GEMM_MAX_PLANS 256

typedef struct {
    int M, C, K, ldx, ldo, transA, bias, align;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct eva_cu_gemm_ctx {
    cublasLtHandle_t lt;
    eva_precision prec;
    cudaDataType_t dtype;
    cublasComputeType_t compute;
    void *workspace;
    size_t workspace_bytes;
    gemm_plan plans[EVA_GEMM_MAX_PLANS];
    int nplans;
};

extern "C" eva_status eva_cu_gemm_create(eva_cu_gemm_ctx **out, eva_precision p, size_t workspace_bytes) {
    *out = NULL;
    eva_cu_gemm_ctx *g = (eva_cu_gemm_ctx *)calloc(1, sizeof *g);
    if (!g) return eva_fail(EVA_ERR_NOMEM, "gemm: cannot allocate the context");
    g->prec = p;
    g->dtype = p == EVA_PREC_BF16 ? CUDA_R_16BF : p == EVA_PREC_FP16 ? CUDA_R_16F : CUDA_R_32F;
    g->compute = p == EVA_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cublasStatus_t cs = cublasLtCreate(&g->lt);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return eva_fail(EVA_ERR_CUBLAS, "gemm: cublasLtCreate: %s", cublasLtGetStatusString(cs));
    }
    g->workspace_bytes = workspace_bytes;
    if (workspace_bytes) {
        cudaError_t e = cudaMalloc(&g->workspace, workspace_bytes);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            cublasLtDestroy(g->lt);
            free(g);
            return eva_fail(EVA_ERR_NOMEM, "gemm: cudaMalloc of the %zu-byte cuBLASLt workspace: %s",
                            workspace_bytes, cudaGetErrorString(e));
        }
    }
    *out = g;
    return EVA_OK;
}

static void plan_destroy(gemm_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

extern "C" void eva_cu_gemm_free(eva_cu_gemm_ctx *g) {
    if (!g) return;
    for (int i = 0; i < g->nplans; i++) plan_destroy(&g->plans[i]);
    if (g->workspace) cudaFree(g->workspace);
    if (g->lt) cublasLtDestroy(g->lt);
    free(g);
}

extern "C" int eva_cu_gemm_cached_plans(const eva_cu_gemm_ctx *g) { return g ? g->nplans : 0; }

static int ptr_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int a = 256;
    while (a > 1 && (v % (uintptr_t)a)) a >>= 1;
    return a;
}

#define LT_TRY(what, call)                                                                                \
    do {                                                                                                  \
        cublasStatus_t lt_st_ = (call);                                                                   \
        if (lt_st_ != CUBLAS_STATUS_SUCCESS) {                                                            \
            plan_destroy(p);                                                                              \
            return eva_fail(EVA_ERR_CUBLAS, "gemm %dx%dx%d: %s: %s", M, C, K, what,                       \
                            cublasLtGetStatusString(lt_st_));                                             \
        }                                                                                                 \
    } while (0)

/* Finds or builds the plan; transA = 0: A = w [C,K] row-major (op T); transA = 1: A = P [K,C]
 * row-major (op N, the text projection). */
static eva_status get_plan(eva_cu_gemm_ctx *g, gemm_plan **out, int M, int C, int K, int ldx, int ldo, int transA,
                           int bias, int align) {
    for (int i = 0; i < g->nplans; i++) {
        gemm_plan *q = &g->plans[i];
        if (q->M == M && q->C == C && q->K == K && q->ldx == ldx && q->ldo == ldo && q->transA == transA &&
            q->bias == bias && q->align == align) {
            *out = q;
            return EVA_OK;
        }
    }
    if (g->nplans == EVA_GEMM_MAX_PLANS) { /* an unusual workload: recycle the oldest plans */
        for (int i = 0; i < g->nplans; i++) plan_destroy(&g->plans[i]);
        g->nplans = 0;
    }
    gemm_plan *p = &g->plans[g->nplans];
    memset(p, 0, sizeof *p);
    p->M = M, p->C = C, p->K = K, p->ldx = ldx, p->ldo = ldo, p->transA = transA, p->bias = bias, p->align = align;
    LT_TRY("matmul descriptor", cublasLtMatmulDescCreate(&p->op, g->compute, CUDA_R_32F));
    cublasOperation_t ta = transA ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY("transa", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY("transb", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    LT_TRY("epilogue", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (transA)
        LT_TRY("layout A", cublasLtMatrixLayoutCreate(&p->a, g->dtype, C, K, C)); /* P^T as col-major C x K */
    else
        LT_TRY("layout A", cublasLtMatrixLayoutCreate(&p->a, g->dtype, K, C, K)); /* w col-major K x C, op T */
    LT_TRY("layout B", cublasLtMatrixLayoutCreate(&p->b, g->dtype, K, M, ldx));
    LT_TRY("layout D", cublasLtMatrixLayoutCreate(&p->d, g->dtype, C, M, ldo));

    cublasLtMatmulPreference_t pref = NULL;
    LT_TRY("preference", cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->workspace_bytes;
    uint32_t al = (uint32_t)align;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    cublasStatus_t s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                             sizeof ws);
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al);
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al);
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al);
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al);
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red);
    cublasLtMatmulHeuristicResult_t res[1];
    int found = 0;
    if (s1 == CUBLAS_STATUS_SUCCESS)
        s1 = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->d, p->d, pref, 1, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    LT_TRY("heuristic", s1);
    if (found < 1) {
        plan_destroy(p);
        return eva_fail(EVA_ERR_CUBLAS, "gemm %dx%dx%d (%s): cuBLASLt has no algorithm for this shape", M, C, K,
                        g->dtype == CUDA_R_32F ? "fp32" : "16-bit");
    }
    p->algo = res[0].algo;
    g->nplans++;
    *out = p;
    return EVA_OK;
}

static eva_status run(eva_cu_gemm_ctx *g, void *out, const void *x, const void *w, const void *bias, int M, int C,
                      int K, int ldx, int ldo, int transA, void *stream) {
    if (M <= 0 || C <= 0) return EVA_OK;
    if (K <= 0 || ldx < K || ldo < C) return eva_fail(EVA_ERR_INVALID_ARG, "gemm: bad shape %dx%dx%d", M, C, K);
    int align = ptr_align(out);
    int ax = ptr_align(x), aw = ptr_align(w);
    if (ax < align) align = ax;
    if (aw < align) align = aw;
    if (bias && ptr_align(bias) < align) align = ptr_align(bias);
    /* strides also decide the alignment of rows after the first */
    const int es = g->dtype == CUDA_R_32F ? 4 : 2;
    while (align > es && (((long long)ldx * es) % align || ((long long)ldo * es) % align || ((long long)K * es) % align ||
                          (transA && ((long long)C * es) % align)))
        align >>= 1;
    gemm_plan *p = NULL;
    EVA_TRY(get_plan(g, &p, M, C, K, ldx, ldo, transA, bias != NULL, align));
    if (bias)
        EVA_CUBLAS_TRY("gemm bias pointer", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                                           &bias, sizeof bias));
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasLtMatmul(g->lt, p->op, &one, w, p->a, x, p->b, &zero, out, p->d, out, p->d, &p->algo,
                                      g->workspace, g->workspace_bytes, (cudaStream_t)stream);
    if (s != CUBLAS_STATUS_SUCCESS)
        return eva_fail(EVA_ERR_CUBLAS, "gemm %dx%dx%d: cublasLtMatmul: %s", M, C, K, cublasLtGetStatusString(s));
    EVA_CU_LAUNCHED_ON("gemm", stream);
    return EVA_OK;
}

extern "C" eva_status eva_cu_linear(eva_cu_gemm_ctx *g, void *out, const void *x, const void *w, const void *bias,
                                    int M, int C, int K, int ldx, int ldo, void *stream) {
    return run(g, out, x, w, bias, M, C, K, ldx, ldo, 0, stream);
}

extern "C" eva_status eva_cu_matmul_proj(eva_cu_gemm_ctx *g, void *out, const void *x, const void *Pm, int M, int W,
                                         int E, int ldx, void *stream) {
    return run(g, out, x, Pm, NULL, M, E, W, ldx, E, 1, stream);
}

/* ---- measured ceiling ----------------------------------------------------------------------- */

#define CEILING_REPS 5

/* Times CEILING_REPS products (after one warm-up) on `stream`; best in ms. */
static eva_status time_products(eva_cu_gemm_ctx *g, void *o, const void *x, const void *w, int n, cudaStream_t stream,
                                cudaEvent_t e0, cudaEvent_t e1, float *best_ms) {
    EVA_TRY(eva_cu_linear(g, o, x, w, NULL, n, n, n, n, n, stream));
    *best_ms = 0.0f;
    for (int r = 0; r < CEILING_REPS; r++) {
        EVA_CU_TRY("gemm ceiling", cudaEventRecord(e0, stream));
        EVA_TRY(eva_cu_linear(g, o, x, w, NULL, n, n, n, n, n, stream));
        EVA_CU_TRY("gemm ceiling", cudaEventRecord(e1, stream));
        EVA_CU_TRY("gemm ceiling", cudaEventSynchronize(e1));
        float ms = 0.0f;
        EVA_CU_TRY("gemm ceiling", cudaEventElapsedTime(&ms, e0, e1));
        if (r == 0 || ms < *best_ms) *best_ms = ms;
    }
    return EVA_OK;
}

extern "C" eva_status eva_cuda_gemm_ceiling(eva_precision prec, int n, double *tflops) {
    if (!tflops) return eva_fail(EVA_ERR_INVALID_ARG, "gemm ceiling: NULL argument");
    *tflops = 0.0;
    if (n < 16 || n > 32768) return eva_fail(EVA_ERR_INVALID_ARG, "gemm ceiling: n %d outside [16, 32768]", n);
    if ((unsigned)prec > EVA_PREC_FP16)
        return eva_fail(EVA_ERR_INVALID_ARG, "gemm ceiling: unknown precision %d", (int)prec);
    EVA_TRY(eva_cuda_device(NULL));
    const eva_cu_dtype t = eva_cu_act_dtype(prec);
    const size_t nn = (size_t)n * (size_t)n;
    eva_cu_gemm_ctx *g = NULL;
    void *x = NULL, *w = NULL, *o = NULL;
    cudaStream_t stream = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float best = 0.0f;
    float *host = (float *)malloc(nn * sizeof(float));
    eva_status st = host ? EVA_OK : eva_fail(EVA_ERR_NOMEM, "gemm ceiling: out of host memory (%d x %d)", n, n);
    if (st == EVA_OK) { /* random values in [-1, 1): constant or zero inputs would draw less power */
        uint32_t r = 12345u;
        for (size_t i = 0; i < nn; i++) {
            r = r * 1664525u + 1013904223u;
            host[i] = (float)(r >> 8) * (2.0f / 16777216.0f) - 1.0f;
        }
    }
    if (st == EVA_OK) st = eva_cu_gemm_create(&g, prec, (size_t)32 << 20);
    if (st == EVA_OK) st = eva_cu_malloc(&x, nn * eva_cu_dtype_size(t));
    if (st == EVA_OK) st = eva_cu_malloc(&w, nn * eva_cu_dtype_size(t));
    if (st == EVA_OK) st = eva_cu_malloc(&o, nn * eva_cu_dtype_size(t));
    if (st == EVA_OK) st = eva_cu_upload(x, host, nn, t);
    if (st == EVA_OK) st = eva_cu_upload(w, host, nn, t);
    if (st == EVA_OK && cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
        stream = NULL;
        st = eva_fail(EVA_ERR_CUDA, "gemm ceiling: cudaStreamCreate failed");
    }
    if (st == EVA_OK && (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess))
        st = eva_fail(EVA_ERR_CUDA, "gemm ceiling: cudaEventCreate failed");
    if (st == EVA_OK) st = time_products(g, o, x, w, n, stream, e0, e1, &best);
    if (st == EVA_OK && !(best > 0.0f))
        st = eva_fail(EVA_ERR_CUDA, "gemm ceiling: %d^3 product timed at %g ms", n, (double)best);
    if (st == EVA_OK) *tflops = 2.0 * (double)n * (double)n * (double)n / ((double)best * 1e-3) * 1e-12;
    if (st != EVA_OK) (void)cudaGetLastError();
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (stream) {
        cudaStreamSynchronize(stream);
        cudaStreamDestroy(stream);
    }
    eva_cu_free(x);
    eva_cu_free(w);
    eva_cu_free(o);
    eva_cu_gemm_free(g);
    free(host);
    return st;
}
