/* gemm.cu: every matrix product of the CUDA twin, and the only cuBLAS/cuBLASLt caller.
 *
 * Row-major out[M,C] = x[M,K] . w[C,K]^T (+ bias) is computed as the column-major product
 * out^T[C,M] = op(w) . x^T: A = w (K x C col-major, transposed), B = x (K x M, ld = ldx),
 * D = out (C x M, ld = ldo). GELU is NOT taken from an epilogue: cuBLASLt's GELU epilogues are the
 * tanh approximation, while every EVA tower uses exact erf GELU (elementwise.cu).
 *
 * Plans, one per (shape, strides, bias, pointer alignment), created on first use and cached:
 *  1. cublasLtMatmul with the bias in the CUBLASLT_EPILOGUE_BIAS epilogue; the heuristic's top
 *     EVA_GEMM_CANDIDATES algorithms are timed once (CUDA events on the caller's stream, when it is
 *     not being captured and the product is big enough to matter) and the fastest is kept;
 *  2. when the heuristic returns no algorithm or an error for that (a dimension of 1 does, for
 *     the bias epilogue), cublasLtMatmul without epilogue: the bias is first broadcast into out
 *     and the product accumulated onto it (beta = 1, so it is still rounded once);
 *  3. when cuBLASLt has nothing either, cublasGemmEx (cuBLAS) the same way.
 * In-place split-K reduction schemes are excluded from the heuristic so a plan's results are
 * run-to-run identical (the timed choice can differ between processes).
 *
 * Compute types: fp32 -> CUBLAS_COMPUTE_32F (TF32 off, must match the reference), tf32 ->
 * CUBLAS_COMPUTE_32F_FAST_TF32, bf16/fp16 -> 16-bit A/B/D with CUBLAS_COMPUTE_32F accumulation.
 * fp32 with a long reduction (K >= EVA_CU_SPLITK_MIN_K, e.g. the MLP output GEMMs of bigE,
 * K = 15360, and 18B, K = 25600): split K into chunks of EVA_CU_SPLITK_KC products, each chunk's
 * float sum from one strided-batched cuBLASLt call into a scratch buffer, and the chunks folded in
 * double, plus the bias, rounded to float once (the reference folds float chains into double the
 * same way, ref_gemm.h). Rows are processed in blocks that fit the scratch. EVA_CUDA_SPLITK=0 in
 * the environment turns this off.
 *
 * Also here: eva_cuda_gemm_ceiling (eva_cuda.h), the card's measured n^3 rate through this same
 * path, for the fractions of `evabench profile --impl cuda`.
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"
#include "eva_cuda.h"

#define EVA_GEMM_MAX_PLANS 256
#define EVA_GEMM_CANDIDATES 6
#define EVA_GEMM_TUNE_MIN_FLOP (1LL << 24) /* M*C*K below this: the heuristic's first choice */
#define SPLITK_SCRATCH_BYTES ((size_t)128 << 20)

typedef enum { PLAN_LT = 0, PLAN_GEMMEX = 1 } plan_kind;

typedef struct {
    int M, C, K, ldx, ldw, ldo, transA, bias, align, batch; /* batch > 1: strided chunks of K (split-K) */
    plan_kind kind;
    int epi_bias; /* the bias rides the epilogue; else it is broadcast first and beta = 1 */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct eva_cu_gemm_ctx {
    cublasLtHandle_t lt;
    cublasHandle_t blas; /* the cublasGemmEx fallback */
    eva_precision prec;
    cudaDataType_t dtype;
    cublasComputeType_t compute;
    void *workspace;
    size_t workspace_bytes;
    float *splitk; /* fp32 chunk sums, SPLITK_SCRATCH_BYTES, allocated on first use */
    int force;     /* eva_cu_gemm_force */
    int splitk_on;
    eva_cu_gemm_path last;
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
    const char *e = getenv("EVA_CUDA_SPLITK");
    g->splitk_on = p == EVA_PREC_FP32 && !(e && e[0] == '0');
    cublasStatus_t cs = cublasLtCreate(&g->lt);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return eva_fail(EVA_ERR_CUBLAS, "gemm: cublasLtCreate: %s", cublasLtGetStatusString(cs));
    }
    cs = cublasCreate(&g->blas);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        cublasLtDestroy(g->lt);
        free(g);
        return eva_fail(EVA_ERR_CUBLAS, "gemm: cublasCreate: %s", cublasGetStatusString(cs));
    }
    g->workspace_bytes = workspace_bytes;
    if (workspace_bytes) {
        cudaError_t ce = cudaMalloc(&g->workspace, workspace_bytes);
        if (ce != cudaSuccess) {
            (void)cudaGetLastError();
            g->workspace = NULL;
            eva_cu_gemm_free(g);
            return eva_fail(EVA_ERR_NOMEM, "gemm: cudaMalloc of the %zu-byte cuBLASLt workspace: %s",
                            workspace_bytes, cudaGetErrorString(ce));
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
    if (g->splitk) cudaFree(g->splitk);
    if (g->blas) cublasDestroy(g->blas);
    if (g->lt) cublasLtDestroy(g->lt);
    free(g);
}

extern "C" int eva_cu_gemm_cached_plans(const eva_cu_gemm_ctx *g) { return g ? g->nplans : 0; }
extern "C" void eva_cu_gemm_force(eva_cu_gemm_ctx *g, eva_cu_gemm_path path) {
    if (g) g->force = (int)path;
}
extern "C" eva_cu_gemm_path eva_cu_gemm_last_path(const eva_cu_gemm_ctx *g) { return g ? g->last : EVA_CU_GEMM_AUTO; }
extern "C" const char *eva_cu_gemm_path_name(eva_cu_gemm_path p) {
    switch (p) {
    case EVA_CU_GEMM_AUTO: return "automatic";
    case EVA_CU_GEMM_LT: return "cublasLt (bias epilogue)";
    case EVA_CU_GEMM_LT_BETA: return "cublasLt + broadcast bias";
    case EVA_CU_GEMM_GEMMEX: return "cublasGemmEx + broadcast bias";
    case EVA_CU_GEMM_SPLITK: return "fp32 split-K, double fold";
    }
    return "?";
}
extern "C" int eva_cu_gemm_splitk_chunk(const eva_cu_gemm_ctx *g, int K) {
    return g && g->splitk_on && K >= EVA_CU_SPLITK_MIN_K ? EVA_CU_SPLITK_KC : 0;
}
extern "C" size_t eva_cu_gemm_extra_bytes(eva_precision p) { return p == EVA_PREC_FP32 ? SPLITK_SCRATCH_BYTES : 0; }

static int ptr_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int a = 256;
    while (a > 1 && (v % (uintptr_t)a)) a >>= 1;
    return a;
}

/* ---- plan creation ---------------------------------------------------------------------------- */

/* Descriptors of p (epilogue: bias or none) and up to `want` heuristic algorithms. */
static cublasStatus_t lt_describe(eva_cu_gemm_ctx *g, gemm_plan *p, int epi_bias, int want,
                                  cublasLtMatmulHeuristicResult_t *res, int *found) {
    *found = 0;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->op, g->compute, CUDA_R_32F);
    cublasOperation_t ta = p->transA ? CUBLAS_OP_N : CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = epi_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
#define LT_STEP(call)                                                                                     \
    if (s == CUBLAS_STATUS_SUCCESS) s = (call)
    LT_STEP(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_STEP(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_STEP(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (p->transA) /* P [K,C] row-major = P^T col-major C x K */
        LT_STEP(cublasLtMatrixLayoutCreate(&p->a, g->dtype, p->C, p->K, p->ldw));
    else /* w [C,K] row-major = col-major K x C, op T */
        LT_STEP(cublasLtMatrixLayoutCreate(&p->a, g->dtype, p->K, p->C, p->ldw));
    LT_STEP(cublasLtMatrixLayoutCreate(&p->b, g->dtype, p->K, p->M, p->ldx));
    LT_STEP(cublasLtMatrixLayoutCreate(&p->d, g->dtype, p->C, p->M, p->ldo));
    if (p->batch > 1) { /* split-K chunks: A and B step along K, D along its own slots */
        const int32_t n = p->batch;
        const int64_t sk = p->K, sd = (int64_t)p->ldo * p->M;
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->a, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n));
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sk, sizeof sk));
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->b, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n));
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sk, sizeof sk));
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &n, sizeof n));
        LT_STEP(cublasLtMatrixLayoutSetAttribute(p->d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sd, sizeof sd));
    }
    cublasLtMatmulPreference_t pref = NULL;
    LT_STEP(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = g->workspace_bytes;
    const uint32_t al = (uint32_t)p->align;
    const uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof al));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof al));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof al));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof al));
    LT_STEP(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));
    LT_STEP(cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->d, p->d, pref, want, res, found));
#undef LT_STEP
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    return s;
}

static cublasStatus_t lt_exec(eva_cu_gemm_ctx *g, const gemm_plan *p, const cublasLtMatmulAlgo_t *algo, void *out,
                              const void *x, const void *w, float beta, cudaStream_t stream) {
    const float one = 1.0f;
    return cublasLtMatmul(g->lt, p->op, &one, w, p->a, x, p->b, &beta, out, p->d, out, p->d, algo, g->workspace,
                          g->workspace_bytes, stream);
}

/* Times the candidates on `stream` (one warm-up and two timed runs each; out is scratch here) and
 * returns the index of the fastest that ran; 0 when nothing could be timed. */
static int pick_fastest(eva_cu_gemm_ctx *g, gemm_plan *p, const cublasLtMatmulHeuristicResult_t *res, int found,
                        void *out, const void *x, const void *w, cudaStream_t stream) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (found < 2 || (long long)p->M * p->C * p->K < EVA_GEMM_TUNE_MIN_FLOP) return 0;
    if (cudaStreamIsCapturing(stream, &cs) != cudaSuccess || cs != cudaStreamCaptureStatusNone) {
        (void)cudaGetLastError();
        return 0;
    }
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        (void)cudaGetLastError();
        if (e0) cudaEventDestroy(e0);
        return 0;
    }
    int best = 0;
    float best_ms = -1.0f;
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        if (lt_exec(g, p, &res[i].algo, out, x, w, 0.0f, stream) != CUBLAS_STATUS_SUCCESS) continue;
        cudaEventRecord(e0, stream);
        cublasStatus_t s1 = lt_exec(g, p, &res[i].algo, out, x, w, 0.0f, stream);
        cublasStatus_t s2 = lt_exec(g, p, &res[i].algo, out, x, w, 0.0f, stream);
        cudaEventRecord(e1, stream);
        float ms = 0.0f;
        if (s1 != CUBLAS_STATUS_SUCCESS || s2 != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            continue;
        if (best_ms < 0.0f || ms < best_ms) best_ms = ms, best = i;
    }
    (void)cudaGetLastError();
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return best;
}

/* Builds p (key fields set) as a cuBLASLt plan with the bias epilogue, a cuBLASLt plan without
 * one, or a cublasGemmEx plan, the first that works (see the top of the file). */
static void build_plan(eva_cu_gemm_ctx *g, gemm_plan *p, void *out, const void *x, const void *w, const void *bias,
                       cudaStream_t stream) {
    cublasLtMatmulHeuristicResult_t res[EVA_GEMM_CANDIDATES];
    const gemm_plan key = *p;
    for (int epi = p->bias ? 1 : 0; epi >= 0; epi--) {
        if (g->force == EVA_CU_GEMM_GEMMEX || (g->force == EVA_CU_GEMM_LT_BETA && epi)) continue;
        int found = 0;
        memset(res, 0, sizeof res);
        if (lt_describe(g, p, epi, EVA_GEMM_CANDIDATES, res, &found) == CUBLAS_STATUS_SUCCESS && found > 0) {
            p->kind = PLAN_LT;
            p->epi_bias = epi;
            /* the timed runs read the bias through the epilogue: its pointer must be set */
            const int timed = !epi || cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                                      sizeof bias) == CUBLAS_STATUS_SUCCESS;
            p->algo = res[timed ? pick_fastest(g, p, res, found, out, x, w, stream) : 0].algo;
            return;
        }
        plan_destroy(p);
        *p = key;
    }
    (void)cudaGetLastError();
    p->kind = PLAN_GEMMEX;
    p->epi_bias = 0;
}

static gemm_plan *get_plan(eva_cu_gemm_ctx *g, const gemm_plan *key, void *out, const void *x, const void *w,
                           const void *bias, cudaStream_t stream) {
    for (int i = 0; i < g->nplans; i++) {
        gemm_plan *q = &g->plans[i];
        if (q->M == key->M && q->C == key->C && q->K == key->K && q->ldx == key->ldx && q->ldw == key->ldw &&
            q->ldo == key->ldo && q->transA == key->transA && q->bias == key->bias && q->align == key->align &&
            q->batch == key->batch)
            return q;
    }
    if (g->nplans == EVA_GEMM_MAX_PLANS) { /* an unusual workload: recycle the plans */
        for (int i = 0; i < g->nplans; i++) plan_destroy(&g->plans[i]);
        g->nplans = 0;
    }
    gemm_plan *p = &g->plans[g->nplans++];
    *p = *key;
    build_plan(g, p, out, x, w, bias, stream);
    return p;
}

/* ---- execution -------------------------------------------------------------------------------- */

/* out[r, c] = bias[c] for r < M, c < C (row stride ldo), same type (an exact copy). */
template <typename T>
__global__ void bias_rows_kernel(T *out, const T *bias, int M, int C, long long ldo) {
    const long long n = (long long)M * C;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        out[(i / C) * ldo + i % C] = bias[i % C];
}
template <typename T>
static void launch_bias_rows(void *out, const void *bias, int M, int C, int ldo, cudaStream_t s) {
    bias_rows_kernel<T><<<eva::grid_for((long long)M * C, 256), 256, 0, s>>>((T *)out, (const T *)bias, M, C, ldo);
}

static eva_status exec_plan(eva_cu_gemm_ctx *g, const gemm_plan *p, void *out, const void *x, const void *w,
                            const void *bias, cudaStream_t stream) {
    float beta = 0.0f;
    if (bias && p->epi_bias)
        EVA_CUBLAS_TRY("gemm bias pointer", cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                                           &bias, sizeof bias));
    if (bias && !p->epi_bias) {
        const eva_cu_dtype t = g->dtype == CUDA_R_16BF ? EVA_CU_BF16 : g->dtype == CUDA_R_16F ? EVA_CU_F16 : EVA_CU_F32;
        EVA_CU_DISPATCH(t, launch_bias_rows, out, bias, p->M, p->C, p->ldo, stream);
        EVA_CU_LAUNCHED_ON("gemm bias", stream);
        beta = 1.0f;
    }
    if (p->kind == PLAN_LT) {
        cublasStatus_t s = lt_exec(g, p, &p->algo, out, x, w, beta, stream);
        if (s != CUBLAS_STATUS_SUCCESS)
            return eva_fail(EVA_ERR_CUBLAS, "gemm %dx%dx%d: cublasLtMatmul: %s", p->M, p->C, p->K,
                            cublasLtGetStatusString(s));
    } else {
        const float one = 1.0f;
        cublasStatus_t s = cublasSetStream(g->blas, stream);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasGemmEx(g->blas, p->transA ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N, p->C, p->M, p->K, &one, w,
                             g->dtype, p->ldw, x, g->dtype, p->ldx, &beta, out, g->dtype, p->ldo, g->compute,
                             CUBLAS_GEMM_DEFAULT);
        if (s != CUBLAS_STATUS_SUCCESS)
            return eva_fail(EVA_ERR_CUBLAS, "gemm %dx%dx%d: cublasGemmEx: %s", p->M, p->C, p->K,
                            cublasGetStatusString(s));
    }
    EVA_CU_LAUNCHED_ON("gemm", stream);
    return EVA_OK;
}

/* the alignment every pointer and row start of the product shares (bytes, >= element size) */
static int product_align(const eva_cu_gemm_ctx *g, const void *out, const void *x, const void *w, const void *bias,
                         int K, int C, int ldx, int ldw, int ldo, int transA) {
    int align = ptr_align(out);
    if (ptr_align(x) < align) align = ptr_align(x);
    if (ptr_align(w) < align) align = ptr_align(w);
    if (bias && ptr_align(bias) < align) align = ptr_align(bias);
    const long long es = g->dtype == CUDA_R_32F ? 4 : 2;
    while (align > es && ((ldx * es) % align || (ldo * es) % align || (ldw * es) % align || (K * es) % align ||
                          (transA && (C * es) % align)))
        align >>= 1;
    return align;
}

static eva_status run_plain(eva_cu_gemm_ctx *g, void *out, const void *x, const void *w, const void *bias, int M,
                            int C, int K, int ldx, int ldw, int ldo, int transA, cudaStream_t stream) {
    gemm_plan key;
    memset(&key, 0, sizeof key);
    key.M = M, key.C = C, key.K = K, key.ldx = ldx, key.ldw = ldw, key.ldo = ldo, key.transA = transA;
    key.bias = bias != NULL, key.batch = 1;
    key.align = product_align(g, out, x, w, bias, K, C, ldx, ldw, ldo, transA);
    const gemm_plan *p = get_plan(g, &key, out, x, w, bias, stream);
    g->last = p->kind == PLAN_GEMMEX ? EVA_CU_GEMM_GEMMEX : p->epi_bias || !bias ? EVA_CU_GEMM_LT : EVA_CU_GEMM_LT_BETA;
    return exec_plan(g, p, out, x, w, bias, stream);
}

/* out[r, c] = (float)(sum_s part[s][r][c] (in double, s ascending) + bias[c]); part slots are
 * [M, C] contiguous, `slots` of them. */
__global__ void splitk_fold_kernel(float *out, const float *part, const float *bias, int M, int C, long long ldo,
                                   int slots) {
    const long long n = (long long)M * C, slot = n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double acc = 0.0;
        for (int s = 0; s < slots; s++) acc += (double)part[s * slot + i];
        const int c = (int)(i % C);
        if (bias) acc += (double)bias[c];
        out[(i / C) * ldo + c] = (float)acc;
    }
}

/* fp32, long K: chunks of EVA_CU_SPLITK_KC products summed in float by cuBLASLt (one batched call
 * per row block, plus one call for a remainder chunk), folded in double. */
static eva_status run_splitk(eva_cu_gemm_ctx *g, float *out, const float *x, const float *w, const float *bias, int M,
                             int C, int K, int ldx, int ldo, cudaStream_t stream) {
    const int kc = EVA_CU_SPLITK_KC, full = K / kc, rem = K - full * kc, slots = full + (rem ? 1 : 0);
    if (!g->splitk) {
        cudaError_t e = cudaMalloc((void **)&g->splitk, SPLITK_SCRATCH_BYTES);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            g->splitk = NULL;
            return eva_fail(EVA_ERR_NOMEM, "gemm split-K: cudaMalloc of %zu bytes: %s", SPLITK_SCRATCH_BYTES,
                            cudaGetErrorString(e));
        }
    }
    long long rows = (long long)(SPLITK_SCRATCH_BYTES / sizeof(float)) / ((long long)slots * C);
    if (rows < 1) return eva_fail(EVA_ERR_UNSUPPORTED, "gemm split-K: %d x %d chunk sums exceed the scratch", slots, C);
    const int mb = rows < M ? (int)rows : M;
    for (int r0 = 0; r0 < M; r0 += mb) {
        const int m = M - r0 < mb ? M - r0 : mb;
        const float *xr = x + (long long)r0 * ldx;
        gemm_plan key;
        memset(&key, 0, sizeof key);
        key.M = m, key.C = C, key.K = kc, key.ldx = ldx, key.ldw = K, key.ldo = C, key.batch = full;
        key.align = product_align(g, g->splitk, xr, w, NULL, kc, C, ldx, K, C, 0);
        const gemm_plan *p = get_plan(g, &key, g->splitk, xr, w, NULL, stream);
        if (p->kind != PLAN_LT || full < 1) { /* no batched plan: one call per chunk */
            for (int s = 0; s < full; s++)
                EVA_TRY(run_plain(g, g->splitk + (long long)s * m * C, xr + (long long)s * kc, w + (long long)s * kc,
                                  NULL, m, C, kc, ldx, K, C, 0, stream));
        } else {
            EVA_TRY(exec_plan(g, p, g->splitk, xr, w, NULL, stream));
        }
        if (rem)
            EVA_TRY(run_plain(g, g->splitk + (long long)full * m * C, xr + (long long)full * kc,
                              w + (long long)full * kc, NULL, m, C, rem, ldx, K, C, 0, stream));
        splitk_fold_kernel<<<eva::grid_for((long long)m * C, 256), 256, 0, stream>>>(
            out + (long long)r0 * ldo, g->splitk, bias, m, C, ldo, slots);
        EVA_CU_LAUNCHED_ON("gemm split-K fold", stream);
    }
    g->last = EVA_CU_GEMM_SPLITK;
    return EVA_OK;
}

static eva_status run(eva_cu_gemm_ctx *g, void *out, const void *x, const void *w, const void *bias, int M, int C,
                      int K, int ldx, int ldo, int transA, void *stream) {
    if (M <= 0 || C <= 0) return EVA_OK;
    if (K <= 0 || ldx < K || ldo < C) return eva_fail(EVA_ERR_INVALID_ARG, "gemm: bad shape %dx%dx%d", M, C, K);
    cudaStream_t s = (cudaStream_t)stream;
    if (!transA && eva_cu_gemm_splitk_chunk(g, K) && (g->force == EVA_CU_GEMM_AUTO || g->force == EVA_CU_GEMM_SPLITK))
        return run_splitk(g, (float *)out, (const float *)x, (const float *)w, (const float *)bias, M, C, K, ldx, ldo,
                          s);
    return run_plain(g, out, x, w, bias, M, C, K, ldx, transA ? C : K, ldo, transA, s);
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
