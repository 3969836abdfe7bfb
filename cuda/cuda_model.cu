/* cuda_model.cu: the CUDA twin of ref_model.c behind cuda/eva_cuda.h.
 *
 * Owns: device discovery, the device weight layout (uploaded once, converted to the run's
 * precision), the activation plan (sized before the first kernel, for max_batch items, shrunk to
 * the device's free memory), the op order of both towers (same order and tap names as ref_model.c),
 * batch splitting, tap copies (only when the tap asks), CUDA-graph replay of tap-free batches,
 * per-module device timing for profiles (events at the tap boundaries) and the fp16 policy. The
 * arithmetic is in the eva_cu_* launchers (eva_cuda_ops.h).
 *
 * Weights on the device: matrices and Linear biases in the activation dtype (fp32 for fp32/tf32,
 * else bf16/fp16); LayerNorm/RMSNorm weights and biases, cls/pos/token/positional embeddings and
 * the RoPE tables stay fp32. EVA-02's separate q/k/v are packed into one [3D,D] matrix (bias
 * q_b | 0 | v_b) so attention takes one GEMM; SwiGLU's two input projections into one [2F,D].
 * Residual stream: always fp32 (like autocast); GEMM inputs/outputs: activation dtype.
 *
 * fp16 policy: refused (EVA_ERR_UNSUPPORTED) for post-norm towers (bigE, 18B), whose attention
 * and MLP read the raw, growing residual stream: nobody has verified they stay under 65504 and
 * no GPU was at hand to check every layer on real weights (docs/model.md §11.3). bf16 has fp32's range.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#ifdef EVA_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "cuda_common.cuh"
#include "eva_cuda.h"
#include "ref_ops.h"

#define ALIGN_BYTES 256
#define GEMM_WORKSPACE ((size_t)32 << 20)
#define DEVICE_MARGIN ((size_t)512 << 20) /* context, cuBLAS internals, fragmentation */
#define EVA_GRAPH_SLOTS 4                 /* CUDA graphs kept per tower (distinct batch sizes) */
/* the GEMM context's device memory: cuBLASLt workspace, and fp32's split-K scratch */
#define GEMM_BYTES(prec) (GEMM_WORKSPACE + eva_cu_gemm_extra_bytes(prec))

typedef struct {
    const float *n1w, *n1b, *anw, *anb, *n2w, *n2b, *mnw, *mnb;
    void *qkv_w, *qkv_b, *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} dev_vblock;

typedef struct {
    const float *ln1w, *ln1b, *ln2w, *ln2b;
    void *in_w, *in_b, *out_w, *out_b, *fc_w, *fc_b, *pr_w, *pr_b;
} dev_tblock;

/* offsets (bytes) into the activation arena */
typedef struct {
    size_t px, x, xc, u, qkv, o, a, h, z, cols, patches, feat, featf, total;
} image_plan;
typedef struct {
    size_t x, u, qkv, o, a, h, ids, rows, pooled, feat, featf, total;
} text_plan;

struct eva_cuda_model {
    eva_config cfg;
    eva_precision prec;
    eva_cu_dtype act;
    size_t es; /* bytes per activation element */
    int max_batch;
    char *wbuf, *abuf;
    size_t wbytes, abytes, peak;
    dev_vblock *vb;
    dev_tblock *tb;
    void *patch_w, *patch_b, *head_w, *head_b, *text_proj;
    const float *cls, *pos, *norm_w, *norm_b, *rope_cos, *rope_sin;
    const float *tok, *tpos, *lnf_w, *lnf_b;
    eva_cu_gemm_ctx *gemm;
    cudaStream_t stream;
    float *host_tap;
    size_t host_tap_floats;
    /* graph replay of tap-free forwards: per tower, one graph per batch size (EVA_GRAPH_SLOTS) */
    cudaGraphExec_t graph[2][EVA_GRAPH_SLOTS];
    int graph_batch[2][EVA_GRAPH_SLOTS];
    unsigned long graph_age[2][EVA_GRAPH_SLOTS], graph_clock;
    int use_graphs;
    /* per-module timing (eva_cuda_set_timing): events recorded at the forward's start, at every
     * tap boundary and at its end; ev_name[i] names the boundary of ev[i] */
    int timing;
    cudaEvent_t *ev;
    char (*ev_name)[EVA_TAP_NAME_MAX];
    int ev_cap, nev;
    /* the span of the last encode call (eva_cuda_last_call_ms) */
    cudaEvent_t span[2];
    int span_ok;
};

/* ---- device discovery -------------------------------------------------------------------- */

extern "C" eva_status eva_cuda_device(eva_cuda_device_info *info) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1) {
        (void)cudaGetLastError();
        return eva_fail(EVA_ERR_NO_DEVICE, "no CUDA device is available (%s)",
                        e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0 devices");
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess)
        return eva_fail(EVA_ERR_NO_DEVICE, "no CUDA device is available (cudaGetDeviceProperties: %s)",
                        cudaGetErrorString(e));
    if (p.major < 8)
        return eva_fail(EVA_ERR_NO_DEVICE,
                        "no CUDA device is available (device 0, %s, has compute capability %d.%d; this build needs 8.0 "
                        "or newer)",
                        p.name, p.major, p.minor);
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", p.name);
        info->sm_major = p.major, info->sm_minor = p.minor;
        size_t fr = 0, tot = 0;
        EVA_CU_TRY("device", cudaMemGetInfo(&fr, &tot));
        info->free_bytes = fr, info->total_bytes = tot;
        EVA_CU_TRY("device", cudaDriverGetVersion(&info->driver_version));
        EVA_CU_TRY("device", cudaRuntimeGetVersion(&info->runtime_version));
        info->cublas_version = (int)cublasLtGetVersion();
#ifdef EVA_HAVE_CUDNN
        info->cudnn_version = cudnnGetVersion();
#endif
    }
    return EVA_OK;
}

/* The image MLP's hidden width on the device: F rounded up to a multiple of 64 (L/14: 2730 ->
 * 2752) with zero weights, so every GEMM row of h and z starts 16-byte aligned and the fc2
 * reduction is a multiple of the tensor-core tiles; GELU(0) = 0 and SwiGLU writes 0 there, the
 * sub-norm's statistics stay over the real F, and the zero fc2 columns add exactly nothing. */
static int mlp_padded_width(const eva_vision_config *v) { return (v->mlp_hidden + 63) / 64 * 64; }

/* ---- attention paths (for info and profile) ---------------------------------------------------- */

static int describe_path(char *buf, size_t n, const char *tower, int d, eva_cu_dtype t, int rope, int causal) {
    if (eva_cu_attention_path(d, t) == EVA_CU_ATTENTION_MMA) {
        const int dp = eva_cu_attention_padded_dim(d);
        char pad[48] = "";
        if (dp != d) snprintf(pad, sizeof pad, ", head_dim %d padded to %d", d, dp);
        return snprintf(buf, n, "%s: tensor cores (mma.sync m16n8k16 %s flash kernel%s%s%s)", tower,
                        t == EVA_CU_BF16 ? "bf16" : "fp16", pad, rope ? ", RoPE applied while staging q/k" : "",
                        causal ? ", causal" : "");
    }
    return snprintf(buf, n, "%s: CUDA cores (fp32 flash kernel, head_dim %d%s%s)", tower, d,
                    rope ? ", RoPE as a separate pass" : "", causal ? ", causal" : "");
}

extern "C" eva_status eva_cuda_attention_paths(const eva_config *cfg, eva_precision prec, char *buf, size_t n) {
    if (!cfg || !buf || n == 0) return eva_fail(EVA_ERR_INVALID_ARG, "attention paths: NULL argument");
    if ((unsigned)prec > EVA_PREC_FP16) return eva_fail(EVA_ERR_INVALID_ARG, "attention paths: precision %d", prec);
    const eva_cu_dtype t = eva_cu_act_dtype(prec);
    int k = describe_path(buf, n, "image", cfg->vision.head_dim, t, cfg->vision.rope, 0);
    if (k >= 0 && (size_t)k < n) {
        k += snprintf(buf + k, n - (size_t)k, "; ");
        if ((size_t)k < n) describe_path(buf + k, n - (size_t)k, "text", cfg->text.head_dim, t, 0, 1);
    }
    return EVA_OK;
}

/* ---- weight layout ------------------------------------------------------------------------- */

typedef struct {
    char *base; /* NULL while sizing */
    size_t off;
    eva_status st;
} cursor;

static size_t align_up(size_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

/* Uploads n values of host tensor src (held in its stored dtype) as dtype t: F32 sources go as
 * they are, F16/BF16 ones are widened to fp32 on the host in chunks first (the reference holds
 * weights in the file's dtype; the device gets the precision it runs in). */
static eva_status upload_typed(void *dst, eva_wmat src, size_t n, eva_cu_dtype t) {
    if (src.dtype == EVA_DT_F32) return eva_cu_upload(dst, (const float *)src.data, n, t);
    const size_t chunk = (size_t)1 << 20;
    float *tmp = (float *)malloc(sizeof(float) * (n < chunk ? (n ? n : 1) : chunk));
    if (!tmp) return eva_fail(EVA_ERR_NOMEM, "upload: cannot allocate a host staging buffer");
    eva_status st = EVA_OK;
    for (size_t i = 0; i < n && st == EVA_OK; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        eva_widen(tmp, src.data, src.dtype, i, m);
        st = eva_cu_upload((char *)dst + i * eva_cu_dtype_size(t), tmp, m, t);
    }
    free(tmp);
    return st;
}

static eva_wmat wf(const float *p) {
    eva_wmat w;
    w.data = p;
    w.dtype = EVA_DT_F32;
    return w;
}

/* Places the concatenation of parts (src.data NULL = zeros) as one tensor of dtype t; returns its
 * device address (NULL while sizing). */
static void *place(cursor *c, eva_cu_dtype t, int nparts, const eva_wmat *srcs, const size_t *ns) {
    size_t total = 0;
    for (int i = 0; i < nparts; i++) total += ns[i];
    void *dst = c->base ? c->base + c->off : NULL;
    if (c->base && c->st == EVA_OK) {
        size_t o = 0;
        for (int i = 0; i < nparts && c->st == EVA_OK; i++) {
            char *p = (char *)dst + o * eva_cu_dtype_size(t);
            if (srcs[i].data)
                c->st = upload_typed(p, srcs[i], ns[i], t);
            else if (cudaMemset(p, 0, ns[i] * eva_cu_dtype_size(t)) != cudaSuccess)
                c->st = eva_fail(EVA_ERR_CUDA, "weights upload: cudaMemset failed");
            o += ns[i];
        }
    }
    c->off += align_up(total * eva_cu_dtype_size(t));
    return dst;
}
static void *place1(cursor *c, eva_cu_dtype t, eva_wmat src, size_t n) { return place(c, t, 1, &src, &n); }

static const eva_wmat no_wmat = {NULL, EVA_DT_F32};
#define HV(field) wf(h ? h->field : NULL)
#define HVM(field) (h ? h->field : no_wmat) /* typed (eva_wmat) views */

/* Places a [rows, cols] matrix (any stored dtype) as [rows, cols_p], each row followed by
 * cols_p - cols zeros. */
static void *place_rows_padded(cursor *c, eva_cu_dtype t, eva_wmat src, size_t rows, size_t cols, size_t cols_p) {
    if (cols_p == cols) return place1(c, t, src, rows * cols);
    eva_wmat *s = (eva_wmat *)calloc(2 * rows, sizeof *s);
    size_t *n = (size_t *)calloc(2 * rows, sizeof *n);
    void *p = NULL;
    if (!s || !n) {
        if (c->st == EVA_OK) c->st = eva_fail(EVA_ERR_NOMEM, "weights upload: out of host memory");
    } else {
        const size_t row_bytes = cols * eva_dtype_size(src.dtype);
        for (size_t r = 0; r < rows; r++) {
            s[2 * r] = src.data ? (eva_wmat){(const char *)src.data + r * row_bytes, src.dtype} : no_wmat;
            n[2 * r] = cols;
            s[2 * r + 1] = no_wmat, n[2 * r + 1] = cols_p - cols;
        }
        p = place(c, t, (int)(2 * rows), s, n);
    }
    free(s);
    free(n);
    return p;
}

/* Walks every device tensor in a fixed order: sizes (m == NULL) or uploads from host model h. */
static size_t weights_walk(const eva_config *cfg, eva_cu_dtype act, const eva_model *h, eva_cuda_model *m,
                           cursor *c) {
    const eva_vision_config *v = &cfg->vision;
    const eva_text_config *tc = &cfg->text;
    const size_t D = v->width, F = v->mlp_hidden, P = v->patch_size, E = cfg->embed_dim;
    const size_t Fp = (size_t)mlp_padded_width(v);
    const size_t G = v->image_size / v->patch_size, N = G * G + 1, d = v->head_dim;
    const int ln = v->norm == EVA_NORM_LAYERNORM;
    const eva_cu_dtype F32 = EVA_CU_F32;
    for (int i = 0; i < v->depth; i++) {
        const eva_vblock_weights *hb = h ? &h->w.vision.blocks[i] : NULL;
        dev_vblock db;
        memset(&db, 0, sizeof db);
#define HB(f) wf(hb ? hb->f : NULL)
#define HBM(f) (hb ? hb->f : no_wmat)
        db.n1w = (const float *)place1(c, F32, HB(norm1_w), D);
        if (ln) db.n1b = (const float *)place1(c, F32, HB(norm1_b), D);
        if (v->qkv == EVA_QKV_FUSED) {
            db.qkv_w = place1(c, act, HBM(qkv_w), 3 * D * D);
        } else {
            const eva_wmat s[3] = {HBM(q_w), HBM(k_w), HBM(v_w)};
            size_t n[3] = {D * D, D * D, D * D};
            db.qkv_w = place(c, act, 3, s, n);
        }
        if (v->qv_bias) {
            const eva_wmat s[3] = {HB(q_b), no_wmat, HB(v_b)};
            size_t n[3] = {D, D, D};
            db.qkv_b = place(c, act, 3, s, n);
        }
        if (v->subln) {
            db.anw = (const float *)place1(c, F32, HB(attn_norm_w), D);
            db.anb = (const float *)place1(c, F32, HB(attn_norm_b), D);
            db.mnw = (const float *)place1(c, F32, HB(mlp_norm_w), F);
            db.mnb = (const float *)place1(c, F32, HB(mlp_norm_b), F);
        }
        db.proj_w = place1(c, act, HBM(proj_w), D * D);
        db.proj_b = place1(c, act, HB(proj_b), D);
        db.n2w = (const float *)place1(c, F32, HB(norm2_w), D);
        if (ln) db.n2b = (const float *)place1(c, F32, HB(norm2_b), D);
        /* MLP width padded to Fp with zero weights (mlp_padded_width) */
        if (v->mlp == EVA_MLP_SWIGLU) {
            const eva_wmat sw[4] = {HBM(fc1_g_w), no_wmat, HBM(fc1_x_w), no_wmat};
            const eva_wmat sb[4] = {HB(fc1_g_b), no_wmat, HB(fc1_x_b), no_wmat};
            size_t nw[4] = {F * D, (Fp - F) * D, F * D, (Fp - F) * D}, nb[4] = {F, Fp - F, F, Fp - F};
            db.fc1_w = place(c, act, 4, sw, nw);
            db.fc1_b = place(c, act, 4, sb, nb);
        } else {
            const eva_wmat sw[2] = {HBM(fc1_w), no_wmat}, sb[2] = {HB(fc1_b), no_wmat};
            size_t nw[2] = {F * D, (Fp - F) * D}, nb[2] = {F, Fp - F};
            db.fc1_w = place(c, act, 2, sw, nw);
            db.fc1_b = place(c, act, 2, sb, nb);
        }
        db.fc2_w = place_rows_padded(c, act, HBM(fc2_w), D, F, Fp);
        db.fc2_b = place1(c, act, HB(fc2_b), D);
#undef HB
        if (m) m->vb[i] = db;
    }
    void *p;
    p = place1(c, act, HV(w.vision.patch_w), D * 3 * P * P);
    if (m) m->patch_w = p;
    p = place1(c, act, HV(w.vision.patch_b), D);
    if (m) m->patch_b = p;
    p = place1(c, F32, HV(w.vision.cls_token), D);
    if (m) m->cls = (const float *)p;
    p = place1(c, F32, HV(w.vision.pos_embed), N * D);
    if (m) m->pos = (const float *)p;
    p = place1(c, F32, HV(w.vision.norm_w), D);
    if (m) m->norm_w = (const float *)p;
    if (ln) {
        p = place1(c, F32, HV(w.vision.norm_b), D);
        if (m) m->norm_b = (const float *)p;
    }
    p = place1(c, act, HVM(w.vision.head_w), E * D);
    if (m) m->head_w = p;
    if (v->head_bias) {
        p = place1(c, act, HV(w.vision.head_b), E);
        if (m) m->head_b = p;
    }
    if (v->rope) { /* tables [G*G, d], computed on the host exactly as the reference does */
        float *tab = NULL;
        if (c->base && c->st == EVA_OK) {
            tab = (float *)malloc(sizeof(float) * 2 * (N - 1) * d);
            if (!tab)
                c->st = eva_fail(EVA_ERR_NOMEM, "rope tables: out of host memory");
            else
                c->st = eva_ref_rope_table(tab, tab + (N - 1) * d, (int)G, v->rope_ref_grid, (int)d);
        }
        const float *s0 = tab, *s1 = tab ? tab + (N - 1) * d : NULL;
        p = place1(c, F32, wf(c->st == EVA_OK ? s0 : NULL), (N - 1) * d);
        if (m) m->rope_cos = (const float *)p;
        p = place1(c, F32, wf(c->st == EVA_OK ? s1 : NULL), (N - 1) * d);
        if (m) m->rope_sin = (const float *)p;
        free(tab);
    }
    const size_t W = tc->width, L = tc->context_length, V = tc->vocab_size, Ft = tc->mlp_hidden;
    for (int i = 0; i < tc->layers; i++) {
        const eva_tblock_weights *hb = h ? &h->w.text.blocks[i] : NULL;
        dev_tblock db;
#define HB(f) wf(hb ? hb->f : NULL)
#define HBM(f) (hb ? hb->f : no_wmat)
        db.ln1w = (const float *)place1(c, F32, HB(ln_1_w), W);
        db.ln1b = (const float *)place1(c, F32, HB(ln_1_b), W);
        db.in_w = place1(c, act, HBM(in_proj_w), 3 * W * W);
        db.in_b = place1(c, act, HB(in_proj_b), 3 * W);
        db.out_w = place1(c, act, HBM(out_proj_w), W * W);
        db.out_b = place1(c, act, HB(out_proj_b), W);
        db.ln2w = (const float *)place1(c, F32, HB(ln_2_w), W);
        db.ln2b = (const float *)place1(c, F32, HB(ln_2_b), W);
        db.fc_w = place1(c, act, HBM(c_fc_w), Ft * W);
        db.fc_b = place1(c, act, HB(c_fc_b), Ft);
        db.pr_w = place1(c, act, HBM(c_proj_w), W * Ft);
        db.pr_b = place1(c, act, HB(c_proj_b), W);
#undef HB
        if (m) m->tb[i] = db;
    }
    p = place1(c, F32, HVM(w.text.token_embedding), V * W);
    if (m) m->tok = (const float *)p;
    p = place1(c, F32, HV(w.text.positional_embedding), L * W);
    if (m) m->tpos = (const float *)p;
    p = place1(c, F32, HV(w.text.ln_final_w), W);
    if (m) m->lnf_w = (const float *)p;
    p = place1(c, F32, HV(w.text.ln_final_b), W);
    if (m) m->lnf_b = (const float *)p;
    p = place1(c, act, HV(w.text.text_projection), W * E);
    if (m) m->text_proj = p;
    return c->off;
}

/* ---- activation plan -------------------------------------------------------------------- */

static void plan_image(image_plan *lo, const eva_config *cfg, size_t es, int B) {
    const eva_vision_config *v = &cfg->vision;
    const size_t G = v->image_size / v->patch_size, N = G * G + 1, D = v->width, F = (size_t)mlp_padded_width(v);
    const size_t BN = (size_t)B * N, P = v->patch_size, S = v->image_size;
    size_t off = 0;
#define TAKE(f, bytes) (lo->f = off, off += align_up(bytes))
    TAKE(px, (size_t)B * 3 * S * S * 4);
    TAKE(x, BN * D * 4);
    TAKE(xc, v->postnorm ? BN * D * es : 0);
    TAKE(u, BN * D * es);
    TAKE(qkv, BN * 3 * D * es);
    TAKE(o, BN * D * es);
    TAKE(a, BN * D * es);
    TAKE(h, BN * (v->mlp == EVA_MLP_SWIGLU ? 2 * F : F) * es);
    TAKE(z, v->mlp == EVA_MLP_SWIGLU ? BN * F * es : 0);
    TAKE(cols, (size_t)B * G * G * 3 * P * P * es);
    TAKE(patches, (size_t)B * G * G * D * es);
    TAKE(feat, (size_t)B * cfg->embed_dim * es);
    TAKE(featf, (size_t)B * cfg->embed_dim * 4);
    lo->total = off;
}

static void plan_text(text_plan *lo, const eva_config *cfg, size_t es, int T) {
    const eva_text_config *t = &cfg->text;
    const size_t TL = (size_t)T * t->context_length, W = t->width;
    size_t off = 0;
    TAKE(x, TL * W * 4);
    TAKE(u, TL * W * es);
    TAKE(qkv, TL * 3 * W * es);
    TAKE(o, TL * W * es);
    TAKE(a, TL * W * es);
    TAKE(h, TL * t->mlp_hidden * es);
    TAKE(ids, TL * 4);
    TAKE(rows, (size_t)T * 4);
    TAKE(pooled, (size_t)T * W * es);
    TAKE(feat, (size_t)T * cfg->embed_dim * es);
    TAKE(featf, (size_t)T * cfg->embed_dim * 4);
#undef TAKE
    lo->total = off;
}

static size_t act_bytes(const eva_config *cfg, size_t es, int B) {
    image_plan ip;
    text_plan tp;
    plan_image(&ip, cfg, es, B);
    plan_text(&tp, cfg, es, B);
    return ip.total > tp.total ? ip.total : tp.total;
}

static size_t weight_bytes(const eva_config *cfg, eva_cu_dtype act) {
    cursor c = {NULL, 0, EVA_OK};
    return weights_walk(cfg, act, NULL, NULL, &c);
}

extern "C" size_t eva_cuda_model_bytes_needed(const eva_config *cfg, eva_precision prec, int max_batch) {
    if (!cfg || max_batch < 1) return 0;
    eva_cu_dtype act = eva_cu_act_dtype(prec);
    return weight_bytes(cfg, act) + act_bytes(cfg, eva_cu_dtype_size(act), max_batch) + GEMM_BYTES(prec);
}

extern "C" size_t eva_cuda_model_peak_bytes(const eva_cuda_model *m) { return m ? m->peak : 0; }

/* ---- create / free ------------------------------------------------------------------------ */

static void timing_free(eva_cuda_model *m) {
    for (int i = 0; i < m->ev_cap; i++)
        if (m->ev[i]) cudaEventDestroy(m->ev[i]);
    free(m->ev);
    free(m->ev_name);
    m->ev = NULL, m->ev_name = NULL;
    m->ev_cap = m->nev = 0;
    m->timing = 0;
}

extern "C" void eva_cuda_model_free(eva_cuda_model *m) {
    if (!m) return;
    timing_free(m);
    for (int i = 0; i < 2; i++)
        if (m->span[i]) cudaEventDestroy(m->span[i]);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < EVA_GRAPH_SLOTS; j++)
            if (m->graph[i][j]) cudaGraphExecDestroy(m->graph[i][j]);
    eva_cu_gemm_free(m->gemm);
    if (m->wbuf) cudaFree(m->wbuf);
    if (m->abuf) cudaFree(m->abuf);
    if (m->stream) cudaStreamDestroy(m->stream);
    free(m->vb);
    free(m->tb);
    free(m->host_tap);
    free(m);
}

static const char *fmt_gib(char *buf, size_t n, size_t bytes) {
    snprintf(buf, n, "%.2f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

extern "C" eva_status eva_cuda_model_create(eva_cuda_model **out, const eva_model *host, eva_precision prec,
                                            int max_batch) {
    if (!out || !host) return eva_fail(EVA_ERR_INVALID_ARG, "cuda model: NULL argument");
    *out = NULL;
    if (max_batch < 1) return eva_fail(EVA_ERR_INVALID_ARG, "cuda model: max_batch %d must be >= 1", max_batch);
    const eva_config *cfg = &host->cfg;
    const eva_vision_config *v = &cfg->vision;
    if ((unsigned)prec > EVA_PREC_FP16) return eva_fail(EVA_ERR_INVALID_ARG, "cuda model: unknown precision %d", prec);
    if (prec == EVA_PREC_FP16 && v->postnorm)
        return eva_fail(EVA_ERR_UNSUPPORTED,
                        "--precision fp16 is refused for %s: its image tower is post-norm (attention and MLP read the "
                        "raw residual stream, which grows with depth), and no run has shown that every layer stays "
                        "within fp16's range (65504); use bf16 (same speed, fp32's range) or fp32",
                        cfg->name);
    if (v->head_dim > 256 || cfg->text.head_dim > 256)
        return eva_fail(EVA_ERR_UNSUPPORTED, "cuda model %s: head_dim above 256 is not supported", cfg->name);
    if (!host->w.vision.blocks || !host->w.text.blocks)
        return eva_fail(EVA_ERR_INTERNAL, "cuda model %s: host weights are not bound", cfg->name);
    eva_cuda_device_info di;
    EVA_TRY(eva_cuda_device(&di));

    const eva_cu_dtype act = eva_cu_act_dtype(prec);
    const size_t es = eva_cu_dtype_size(act);
    const size_t wb = weight_bytes(cfg, act);
    /* shrink the batch until weights + activations + workspace fit the free memory */
    size_t need = wb + act_bytes(cfg, es, max_batch) + GEMM_BYTES(prec);
    const size_t avail = di.free_bytes > DEVICE_MARGIN ? di.free_bytes - DEVICE_MARGIN : 0;
    int batch = max_batch;
    if (need > avail) {
        int lo = 0, hi = max_batch;
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            if (wb + act_bytes(cfg, es, mid) + GEMM_BYTES(prec) <= avail)
                lo = mid;
            else
                hi = mid - 1;
        }
        if (lo < 1) {
            char a[32], b[32], c2[32];
            return eva_fail(EVA_ERR_NOMEM,
                            "%s in %s needs %s on the device for batch 1 (weights %s), but %s has only %s free "
                            "(keeping %d MiB spare)",
                            cfg->name, eva_precision_name(prec),
                            fmt_gib(a, sizeof a, wb + act_bytes(cfg, es, 1) + GEMM_BYTES(prec)),
                            fmt_gib(b, sizeof b, wb), di.name, fmt_gib(c2, sizeof c2, di.free_bytes),
                            (int)(DEVICE_MARGIN >> 20));
        }
        batch = lo;
    }

    eva_cuda_model *m = (eva_cuda_model *)calloc(1, sizeof *m);
    if (!m) return eva_fail(EVA_ERR_NOMEM, "cuda model: out of host memory");
    eva_status st = EVA_OK;
    m->cfg = *cfg;
    m->prec = prec;
    m->act = act;
    m->es = es;
    m->max_batch = batch;
    m->use_graphs = !eva_cuda_sync_debug() && !(getenv("EVA_CUDA_GRAPHS") && getenv("EVA_CUDA_GRAPHS")[0] == '0');
    m->vb = (dev_vblock *)calloc(v->depth > 0 ? v->depth : 1, sizeof *m->vb);
    m->tb = (dev_tblock *)calloc(cfg->text.layers > 0 ? cfg->text.layers : 1, sizeof *m->tb);
    if (!m->vb || !m->tb) {
        st = eva_fail(EVA_ERR_NOMEM, "cuda model: out of host memory");
        goto fail;
    }
    if (cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking) != cudaSuccess) {
        st = eva_fail(EVA_ERR_CUDA, "cuda model: cudaStreamCreate failed");
        goto fail;
    }
    st = eva_cu_malloc((void **)&m->wbuf, wb);
    if (st != EVA_OK) goto fail;
    m->wbytes = wb;
    {
        cursor c = {m->wbuf, 0, EVA_OK};
        weights_walk(cfg, act, host, m, &c);
        st = c.st;
        if (st != EVA_OK) goto fail;
    }
    m->abytes = act_bytes(cfg, es, batch);
    st = eva_cu_malloc((void **)&m->abuf, m->abytes);
    if (st != EVA_OK) goto fail;
    st = eva_cu_gemm_create(&m->gemm, prec, GEMM_WORKSPACE);
    if (st != EVA_OK) goto fail;
    if (cudaEventCreate(&m->span[0]) != cudaSuccess || cudaEventCreate(&m->span[1]) != cudaSuccess) {
        st = eva_fail(EVA_ERR_CUDA, "cuda model: cudaEventCreate failed");
        goto fail;
    }
    m->peak = m->wbytes + m->abytes + GEMM_BYTES(prec);
    if (cudaDeviceSynchronize() != cudaSuccess) {
        st = eva_fail(EVA_ERR_CUDA, "cuda model: weight upload failed");
        goto fail;
    }
    *out = m;
    return EVA_OK;
fail:
    eva_fail_context("cuda model %s (%s)", cfg->name, eva_precision_name(prec));
    eva_cuda_model_free(m);
    return st;
}

/* ---- host memory, call span ------------------------------------------------------------------ */

extern "C" void *eva_cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

extern "C" void eva_cuda_host_free(void *p) {
    if (p) (void)cudaFreeHost(p);
}

extern "C" double eva_cuda_last_call_ms(const eva_cuda_model *m) {
    if (!m || !m->span_ok) return -1.0;
    float ms = 0.0f;
    if (cudaEventElapsedTime(&ms, m->span[0], m->span[1]) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1.0;
    }
    return ms;
}

/* ---- per-module timing ------------------------------------------------------------------------ */

extern "C" eva_status eva_cuda_set_timing(eva_cuda_model *m, int on) {
    if (!m) return eva_fail(EVA_ERR_INVALID_ARG, "cuda timing: NULL model");
    if (!on) {
        timing_free(m);
        return EVA_OK;
    }
    if (m->timing) return EVA_OK;
    /* every tap of both towers, the start and the end */
    const int cap = eva_tap_names(&m->cfg, (eva_tap_set)(EVA_TAPS_IMAGE | EVA_TAPS_TEXT), NULL, 0) + 2;
    m->ev = (cudaEvent_t *)calloc((size_t)cap, sizeof *m->ev);
    m->ev_name = (char(*)[EVA_TAP_NAME_MAX])calloc((size_t)cap, sizeof *m->ev_name);
    if (!m->ev || !m->ev_name) {
        free(m->ev);
        free(m->ev_name);
        m->ev = NULL, m->ev_name = NULL;
        return eva_fail(EVA_ERR_NOMEM, "cuda timing: out of host memory");
    }
    m->ev_cap = cap;
    for (int i = 0; i < cap; i++) {
        cudaError_t e = cudaEventCreate(&m->ev[i]);
        if (e != cudaSuccess) {
            m->ev[i] = NULL;
            timing_free(m);
            return eva_fail(EVA_ERR_CUDA, "cuda timing: cudaEventCreate (%d events): %s", cap,
                            cudaGetErrorString(e));
        }
    }
    m->timing = 1;
    return EVA_OK;
}

/* Records the boundary `name` on the model's stream (no-op unless timing). */
static eva_status mark(eva_cuda_model *m, const char *name) {
    if (!m->timing) return EVA_OK;
    if (m->nev >= m->ev_cap)
        return eva_fail(EVA_ERR_INTERNAL, "cuda timing: more than %d boundaries in one forward (at %s)", m->ev_cap,
                        name);
    snprintf(m->ev_name[m->nev], EVA_TAP_NAME_MAX, "%s", name);
    EVA_CU_TRY("cuda timing", cudaEventRecord(m->ev[m->nev], m->stream));
    m->nev++;
    return EVA_OK;
}

extern "C" int eva_cuda_timings(const eva_cuda_model *m, char (*names)[EVA_TAP_NAME_MAX], double *ms, int max) {
    if (!m || !m->timing || m->nev < 2) return 0;
    for (int i = 1; i < m->nev; i++) {
        if (i - 1 >= max) continue;
        float t = 0.0f;
        cudaError_t e = cudaEventElapsedTime(&t, m->ev[i - 1], m->ev[i]);
        if (e != cudaSuccess) {
            (void)eva_fail(EVA_ERR_CUDA, "cuda timing: cudaEventElapsedTime (%s): %s", m->ev_name[i],
                           cudaGetErrorString(e));
            return -1;
        }
        if (names) snprintf(names[i - 1], EVA_TAP_NAME_MAX, "%s", m->ev_name[i]);
        if (ms) ms[i - 1] = t;
    }
    return m->nev - 1;
}

/* ---- taps ------------------------------------------------------------------------------------ */

static bool taps_on(const eva_tap *tap) { return tap && tap->wants && tap->take; }

/* Copies a device tensor (dtype t) back and hands it to the tap, only if the tap wants it (the
 * timing boundary is recorded first, so a copy is never timed as part of the module). */
static eva_status tap_dev(eva_cuda_model *m, const eva_tap *tap, const char *name, const void *dev, eva_cu_dtype t,
                          int ndim, int64_t d0, int64_t d1, int64_t d2) {
    EVA_TRY(mark(m, name));
    if (!eva_tap_wants(tap, name)) return EVA_OK;
    size_t n = (size_t)d0 * (size_t)d1 * (ndim == 3 ? (size_t)d2 : 1);
    if (n > m->host_tap_floats) {
        float *p = (float *)realloc(m->host_tap, n * sizeof(float));
        if (!p) return eva_fail(EVA_ERR_NOMEM, "tap %s: out of host memory", name);
        m->host_tap = p, m->host_tap_floats = n;
    }
    EVA_CU_TRY(name, cudaStreamSynchronize(m->stream));
    EVA_TRY(eva_cu_download(m->host_tap, dev, n, t));
    int64_t shape[3] = {d0, d1, d2};
    tap->take(tap->ctx, name, m->host_tap, ndim, shape);
    return EVA_OK;
}

static eva_status tap_block(eva_cuda_model *m, const eva_tap *tap, const char *pfx, int i, const char *sfx,
                            const void *dev, eva_cu_dtype t, int64_t d0, int64_t d1, int64_t d2) {
    if (!taps_on(tap) && !m->timing) return EVA_OK;
    char name[EVA_TAP_NAME_MAX];
    snprintf(name, sizeof name, "%s.%d%s", pfx, i, sfx);
    return tap_dev(m, tap, name, dev, t, 3, d0, d1, d2);
}

/* ---- image tower ------------------------------------------------------------------------------ */

#define A(off) ((void *)(m->abuf + (off)))

static eva_status v_attention(eva_cuda_model *m, const image_plan *lo, const dev_vblock *bw, void *a, const void *in,
                              int B) {
    const eva_vision_config *v = &m->cfg.vision;
    const int N = v->tokens, BN = B * N, D = v->width, H = v->heads, d = v->head_dim;
    void *qkv = A(lo->qkv), *o = A(lo->o);
    const size_t es = m->es;
    EVA_TRY(eva_cu_linear(m->gemm, qkv, in, bw->qkv_w, bw->qkv_b, BN, 3 * D, D, D, 3 * D, m->stream));
    /* RoPE rides the q/k staging of the tensor-core kernel; the CUDA-core path rotates in place */
    EVA_TRY(eva_cu_attention_rope(o, qkv, (char *)qkv + D * es, (char *)qkv + 2 * D * es,
                                  v->rope ? m->rope_cos : NULL, v->rope ? m->rope_sin : NULL, B, N, H, d, 3 * D, 0,
                                  m->act, m->stream));
    if (v->subln)
        EVA_TRY(eva_cu_norm(NULL, o, o, NULL, bw->anw, bw->anb, BN, D, D, v->norm_eps, 0, EVA_CU_NORM_PLAIN, m->act,
                            m->stream));
    return eva_cu_linear(m->gemm, a, o, bw->proj_w, bw->proj_b, BN, D, D, D, D, m->stream);
}

static eva_status v_mlp(eva_cuda_model *m, const image_plan *lo, const dev_vblock *bw, void *a, const void *in,
                        int B) {
    const eva_vision_config *v = &m->cfg.vision;
    const int BN = B * v->tokens, D = v->width, F = v->mlp_hidden, Fp = mlp_padded_width(v);
    void *h = A(lo->h);
    if (v->mlp == EVA_MLP_SWIGLU) {
        void *z = A(lo->z);
        EVA_TRY(eva_cu_linear(m->gemm, h, in, bw->fc1_w, bw->fc1_b, BN, 2 * Fp, D, D, 2 * Fp, m->stream));
        EVA_TRY(eva_cu_swiglu_ln_padded(z, h, v->subln ? bw->mnw : NULL, bw->mnb, BN, F, Fp, v->norm_eps, m->act,
                                        m->stream));
        return eva_cu_linear(m->gemm, a, z, bw->fc2_w, bw->fc2_b, BN, D, Fp, Fp, D, m->stream);
    }
    EVA_TRY(eva_cu_linear(m->gemm, h, in, bw->fc1_w, bw->fc1_b, BN, Fp, D, D, Fp, m->stream));
    EVA_TRY(eva_cu_gelu(h, (int64_t)BN * Fp, m->act, m->stream));
    if (v->subln)
        EVA_TRY(eva_cu_norm(NULL, h, h, NULL, bw->mnw, bw->mnb, BN, F, Fp, v->norm_eps, 0, EVA_CU_NORM_PLAIN, m->act,
                            m->stream));
    return eva_cu_linear(m->gemm, a, h, bw->fc2_w, bw->fc2_b, BN, D, Fp, Fp, D, m->stream);
}

/* The device part of one image batch (pixels already in lo->px); leaves features in lo->featf. */
static eva_status image_forward(eva_cuda_model *m, const image_plan *lo, int B, const eva_tap *tap) {
    const eva_vision_config *v = &m->cfg.vision;
    const int G = v->grid, N = v->tokens, D = v->width, BN = B * N, E = m->cfg.embed_dim, P = v->patch_size;
    const int rms = v->norm == EVA_NORM_RMSNORM;
    const double eps = v->norm_eps;
    const eva_cu_dtype t = m->act;
    float *x = (float *)A(lo->x);
    void *u = A(lo->u), *a = A(lo->a), *xc = v->postnorm ? A(lo->xc) : NULL;
    static const char *const pfx = "visual.trunk.blocks";

    EVA_TRY(eva_cu_im2col(A(lo->cols), (const float *)A(lo->px), B, v->image_size, P, t, m->stream));
    EVA_TRY(eva_cu_linear(m->gemm, A(lo->patches), A(lo->cols), m->patch_w, m->patch_b, B * G * G, D, 3 * P * P,
                          3 * P * P, D, m->stream));
    EVA_TRY(tap_dev(m, tap, "visual.trunk.patch_embed", A(lo->patches), t, 3, B, (int64_t)G * G, D));
    EVA_TRY(eva_cu_cls_pos(x, xc, A(lo->patches), m->cls, m->pos, B, N, D, t, m->stream));
    EVA_TRY(tap_dev(m, tap, "visual.trunk.pos_drop", x, EVA_CU_F32, 3, B, N, D));

    if (!v->postnorm) {
        /* x += a fused with the next norm: norm1 of the next block, or the final norm */
        const float *nw = v->depth ? m->vb[0].n1w : m->norm_w, *nb = v->depth ? m->vb[0].n1b : m->norm_b;
        EVA_TRY(eva_cu_norm(x, NULL, u, NULL, nw, nb, BN, D, D, eps, rms, EVA_CU_NORM_PRE, t, m->stream));
        for (int i = 0; i < v->depth; i++) {
            const dev_vblock *bw = &m->vb[i];
            EVA_TRY(tap_block(m, tap, pfx, i, ".norm1", u, t, B, N, D));
            EVA_TRY(v_attention(m, lo, bw, a, u, B));
            EVA_TRY(tap_block(m, tap, pfx, i, ".attn", a, t, B, N, D));
            EVA_TRY(eva_cu_norm(x, a, u, NULL, bw->n2w, bw->n2b, BN, D, D, eps, rms, EVA_CU_NORM_PRE, t, m->stream));
            EVA_TRY(tap_block(m, tap, pfx, i, ".norm2", u, t, B, N, D));
            EVA_TRY(v_mlp(m, lo, bw, a, u, B));
            EVA_TRY(tap_block(m, tap, pfx, i, ".mlp", a, t, B, N, D));
            nw = i + 1 < v->depth ? m->vb[i + 1].n1w : m->norm_w;
            nb = i + 1 < v->depth ? m->vb[i + 1].n1b : m->norm_b;
            EVA_TRY(eva_cu_norm(x, a, u, NULL, nw, nb, BN, D, D, eps, rms, EVA_CU_NORM_PRE, t, m->stream));
            EVA_TRY(tap_block(m, tap, pfx, i, "", x, EVA_CU_F32, B, N, D));
        }
    } else {
        for (int i = 0; i < v->depth; i++) {
            const dev_vblock *bw = &m->vb[i];
            EVA_TRY(v_attention(m, lo, bw, a, xc, B));
            EVA_TRY(tap_block(m, tap, pfx, i, ".attn", a, t, B, N, D));
            EVA_TRY(eva_cu_norm(x, a, u, xc, bw->n1w, bw->n1b, BN, D, D, eps, rms, EVA_CU_NORM_POST, t, m->stream));
            EVA_TRY(tap_block(m, tap, pfx, i, ".norm1", u, t, B, N, D));
            EVA_TRY(v_mlp(m, lo, bw, a, xc, B));
            EVA_TRY(tap_block(m, tap, pfx, i, ".mlp", a, t, B, N, D));
            EVA_TRY(eva_cu_norm(x, a, u, xc, bw->n2w, bw->n2b, BN, D, D, eps, rms, EVA_CU_NORM_POST, t, m->stream));
            EVA_TRY(tap_block(m, tap, pfx, i, ".norm2", u, t, B, N, D));
            EVA_TRY(tap_block(m, tap, pfx, i, "", x, EVA_CU_F32, B, N, D));
        }
        EVA_TRY(eva_cu_norm(x, NULL, u, NULL, m->norm_w, m->norm_b, BN, D, D, eps, rms, EVA_CU_NORM_PRE, t,
                            m->stream));
    }
    EVA_TRY(tap_dev(m, tap, "visual.trunk.norm", u, t, 3, B, N, D));
    /* head on the CLS rows: row stride N*D picks token 0 of every image */
    EVA_TRY(eva_cu_linear(m->gemm, A(lo->feat), u, m->head_w, v->head_bias ? m->head_b : NULL, B, E, D, N * D, E,
                          m->stream));
    EVA_TRY(eva_cu_convert(A(lo->featf), EVA_CU_F32, A(lo->feat), t, (int64_t)B * E, m->stream));
    /* the head tap itself is emitted on the host after the download (eva_cuda_encode_image) */
    EVA_TRY(mark(m, "visual.trunk.head"));
    return EVA_OK;
}

/* Runs `fwd` for one chunk. Without taps or timing, and unless graphs are off: replays the CUDA
 * graph kept for this tower and batch size; the first chunk of a new batch size runs eagerly (that
 * pass creates the GEMM plans, times their algorithms, allocates lazily and loads the modules, none
 * of which may happen inside a capture) and is then captured, without running, for the next time.
 * Up to EVA_GRAPH_SLOTS batch sizes per tower are kept (typically the device batch and a tail). */
typedef eva_status (*fwd_fn)(eva_cuda_model *, const void *, int, const eva_tap *);

static eva_status capture_chunk(eva_cuda_model *m, int tower, fwd_fn fwd, const void *lo, int B) {
    int slot = 0; /* a free slot, else the oldest one */
    for (int i = 0; i < EVA_GRAPH_SLOTS; i++)
        if (!m->graph[tower][i]) {
            slot = i;
            break;
        } else if (m->graph_age[tower][i] < m->graph_age[tower][slot]) {
            slot = i;
        }
    if (m->graph[tower][slot]) cudaGraphExecDestroy(m->graph[tower][slot]);
    m->graph[tower][slot] = NULL;
    cudaGraph_t g = NULL;
    EVA_CU_TRY("graph capture", cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
    eva_status st = fwd(m, lo, B, NULL);
    cudaError_t e = cudaStreamEndCapture(m->stream, &g);
    if (st == EVA_OK && e == cudaSuccess) e = cudaGraphInstantiate(&m->graph[tower][slot], g, 0);
    if (g) cudaGraphDestroy(g);
    if (st != EVA_OK || e != cudaSuccess) { /* capture not possible here: eager from now on */
        m->graph[tower][slot] = NULL;
        (void)cudaGetLastError();
        m->use_graphs = 0;
        return st; /* the eager pass before has produced this chunk's results */
    }
    m->graph_batch[tower][slot] = B;
    m->graph_age[tower][slot] = ++m->graph_clock;
    return EVA_OK;
}

static eva_status run_chunk(eva_cuda_model *m, int tower, fwd_fn fwd, const void *lo, int B, const eva_tap *tap) {
    if (!m->use_graphs || taps_on(tap) || m->timing) return fwd(m, lo, B, tap);
    for (int i = 0; i < EVA_GRAPH_SLOTS; i++)
        if (m->graph[tower][i] && m->graph_batch[tower][i] == B) {
            m->graph_age[tower][i] = ++m->graph_clock;
            EVA_CU_TRY("graph replay", cudaGraphLaunch(m->graph[tower][i], m->stream));
            return EVA_OK;
        }
    EVA_TRY(fwd(m, lo, B, NULL)); /* eager pass: this chunk's results */
    EVA_CU_TRY("graph capture", cudaStreamSynchronize(m->stream));
    return capture_chunk(m, tower, fwd, lo, B);
}

static eva_status image_fwd_cb(eva_cuda_model *m, const void *lo, int B, const eva_tap *tap) {
    return image_forward(m, (const image_plan *)lo, B, tap);
}

extern "C" eva_status eva_cuda_encode_image(eva_cuda_model *m, float *features, const float *pixels, int B,
                                            const eva_tap *tap) {
    if (!m || !features || !pixels) return eva_fail(EVA_ERR_INVALID_ARG, "cuda encode_image: NULL argument");
    if (B < 1) return eva_fail(EVA_ERR_INVALID_ARG, "cuda encode_image: batch size %d must be >= 1", B);
    if ((taps_on(tap) || m->timing) && B > m->max_batch)
        return eva_fail(EVA_ERR_UNSUPPORTED,
                        "cuda encode_image: %s the whole batch in one pass (%d images, device batch %d; lower the "
                        "batch or raise EVA_CUDA_MAX_BATCH if the device has room)",
                        m->timing ? "per-module timing needs" : "taps need", B, m->max_batch);
    m->nev = 0;
    m->span_ok = 0;
    const eva_vision_config *v = &m->cfg.vision;
    const size_t S = v->image_size, E = m->cfg.embed_dim;
    EVA_CU_TRY("encode_image", cudaEventRecord(m->span[0], m->stream));
    for (int b0 = 0; b0 < B; b0 += m->max_batch) {
        const int nb = B - b0 < m->max_batch ? B - b0 : m->max_batch;
        image_plan lo;
        plan_image(&lo, &m->cfg, m->es, nb);
        EVA_CU_TRY("encode_image: upload pixels",
                   cudaMemcpyAsync(A(lo.px), pixels + (size_t)b0 * 3 * S * S, sizeof(float) * nb * 3 * S * S,
                                   cudaMemcpyHostToDevice, m->stream));
        EVA_TRY(mark(m, "(start)")); /* timing starts after the pixels' upload */
        EVA_TRY(run_chunk(m, 0, image_fwd_cb, &lo, nb, tap));
        EVA_CU_TRY("encode_image: download features",
                   cudaMemcpyAsync(features + (size_t)b0 * E, A(lo.featf), sizeof(float) * nb * E,
                                   cudaMemcpyDeviceToHost, m->stream));
        EVA_TRY(mark(m, "(after last tap)"));
        if (b0 + nb >= B) EVA_CU_TRY("encode_image", cudaEventRecord(m->span[1], m->stream));
        EVA_CU_TRY("encode_image", cudaStreamSynchronize(m->stream));
    }
    m->span_ok = 1;
    if (taps_on(tap)) {
        int64_t shape[2] = {B, (int64_t)E};
        eva_tap_emit(tap, "visual.trunk.head", features, 2, shape);
    }
    return EVA_OK;
}

/* ---- text tower ------------------------------------------------------------------------------- */

static eva_status text_forward(eva_cuda_model *m, const text_plan *lo, int T, const eva_tap *tap) {
    const eva_text_config *tc = &m->cfg.text;
    const int L = tc->context_length, W = tc->width, TL = T * L, Ft = tc->mlp_hidden, H = tc->heads;
    const int hd = W / H, E = m->cfg.embed_dim;
    const double eps = tc->norm_eps;
    const eva_cu_dtype t = m->act;
    const size_t es = m->es;
    float *x = (float *)A(lo->x);
    void *u = A(lo->u), *a = A(lo->a), *qkv = A(lo->qkv), *o = A(lo->o), *h = A(lo->h);
    const int32_t *ids = (const int32_t *)A(lo->ids);
    static const char *const pfx = "text.transformer.resblocks";

    if (eva_tap_wants(tap, "text.token_embedding")) {
        EVA_TRY(eva_cu_embedding(x, ids, m->tok, NULL, T, L, W, m->stream));
        EVA_TRY(tap_dev(m, tap, "text.token_embedding", x, EVA_CU_F32, 3, T, L, W));
    }
    EVA_TRY(eva_cu_embedding(x, ids, m->tok, m->tpos, T, L, W, m->stream));
    if (!eva_tap_wants(tap, "text.token_embedding")) /* else tap_dev marked it before the positions */
        EVA_TRY(mark(m, "text.token_embedding"));
    const float *nw = tc->layers ? m->tb[0].ln1w : m->lnf_w, *nb = tc->layers ? m->tb[0].ln1b : m->lnf_b;
    EVA_TRY(eva_cu_norm(x, NULL, u, NULL, nw, nb, TL, W, W, eps, 0, EVA_CU_NORM_PRE, t, m->stream));
    for (int i = 0; i < tc->layers; i++) {
        const dev_tblock *bw = &m->tb[i];
        EVA_TRY(tap_block(m, tap, pfx, i, ".ln_1", u, t, T, L, W));
        EVA_TRY(eva_cu_linear(m->gemm, qkv, u, bw->in_w, bw->in_b, TL, 3 * W, W, W, 3 * W, m->stream));
        EVA_TRY(eva_cu_attention(o, qkv, (char *)qkv + W * es, (char *)qkv + 2 * W * es, T, L, H, hd, 3 * W, 1, t,
                                 m->stream));
        EVA_TRY(eva_cu_linear(m->gemm, a, o, bw->out_w, bw->out_b, TL, W, W, W, W, m->stream));
        EVA_TRY(tap_block(m, tap, pfx, i, ".attn", a, t, T, L, W));
        EVA_TRY(eva_cu_norm(x, a, u, NULL, bw->ln2w, bw->ln2b, TL, W, W, eps, 0, EVA_CU_NORM_PRE, t, m->stream));
        EVA_TRY(tap_block(m, tap, pfx, i, ".ln_2", u, t, T, L, W));
        EVA_TRY(eva_cu_linear(m->gemm, h, u, bw->fc_w, bw->fc_b, TL, Ft, W, W, Ft, m->stream));
        EVA_TRY(eva_cu_gelu(h, (int64_t)TL * Ft, t, m->stream));
        EVA_TRY(eva_cu_linear(m->gemm, a, h, bw->pr_w, bw->pr_b, TL, W, Ft, Ft, W, m->stream));
        EVA_TRY(tap_block(m, tap, pfx, i, ".mlp", a, t, T, L, W));
        nw = i + 1 < tc->layers ? m->tb[i + 1].ln1w : m->lnf_w;
        nb = i + 1 < tc->layers ? m->tb[i + 1].ln1b : m->lnf_b;
        EVA_TRY(eva_cu_norm(x, a, u, NULL, nw, nb, TL, W, W, eps, 0, EVA_CU_NORM_PRE, t, m->stream));
        EVA_TRY(tap_block(m, tap, pfx, i, "", x, EVA_CU_F32, T, L, W));
    }
    EVA_TRY(tap_dev(m, tap, "text.ln_final", u, t, 3, T, L, W));
    EVA_TRY(eva_cu_gather_rows(A(lo->pooled), u, (const int32_t *)A(lo->rows), T, L, W, t, m->stream));
    EVA_TRY(eva_cu_matmul_proj(m->gemm, A(lo->feat), A(lo->pooled), m->text_proj, T, W, E, W, m->stream));
    EVA_TRY(eva_cu_convert(A(lo->featf), EVA_CU_F32, A(lo->feat), t, (int64_t)T * E, m->stream));
    return EVA_OK;
}

static eva_status text_fwd_cb(eva_cuda_model *m, const void *lo, int T, const eva_tap *tap) {
    return text_forward(m, (const text_plan *)lo, T, tap);
}

extern "C" eva_status eva_cuda_encode_text(eva_cuda_model *m, float *features, const int32_t *ids, int T,
                                           const eva_tap *tap) {
    if (!m || !features || !ids) return eva_fail(EVA_ERR_INVALID_ARG, "cuda encode_text: NULL argument");
    if (T < 1) return eva_fail(EVA_ERR_INVALID_ARG, "cuda encode_text: number of texts %d must be >= 1", T);
    if ((taps_on(tap) || m->timing) && T > m->max_batch)
        return eva_fail(EVA_ERR_UNSUPPORTED,
                        "cuda encode_text: %s the whole batch in one pass (%d texts, device batch %d; lower the "
                        "batch or raise EVA_CUDA_MAX_BATCH if the device has room)",
                        m->timing ? "per-module timing needs" : "taps need", T, m->max_batch);
    m->nev = 0;
    const eva_text_config *tc = &m->cfg.text;
    const int L = tc->context_length, V = tc->vocab_size;
    const size_t E = m->cfg.embed_dim;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < L; j++) {
            int32_t id = ids[(size_t)t * L + j];
            if (id < 0 || id >= V)
                return eva_fail(EVA_ERR_INVALID_ARG, "text %d position %d: token id %ld out of range [0, %d)", t, j,
                                (long)id, V);
        }
    int32_t *rows = (int32_t *)malloc(sizeof(int32_t) * (size_t)(T < m->max_batch ? T : m->max_batch));
    if (!rows) return eva_fail(EVA_ERR_NOMEM, "cuda encode_text: out of host memory");
    m->span_ok = 0;
    eva_status st = EVA_OK;
    if (cudaEventRecord(m->span[0], m->stream) != cudaSuccess)
        st = eva_fail(EVA_ERR_CUDA, "encode_text: cudaEventRecord failed");
    for (int t0 = 0; t0 < T && st == EVA_OK; t0 += m->max_batch) {
        const int nt = T - t0 < m->max_batch ? T - t0 : m->max_batch;
        text_plan lo;
        plan_text(&lo, &m->cfg, m->es, nt);
        for (int t = 0; t < nt; t++) { /* argmax-EOT: first position of the largest id */
            const int32_t *r = ids + (size_t)(t0 + t) * L;
            int best = 0;
            for (int j = 1; j < L; j++)
                if (r[j] > r[best]) best = j;
            rows[t] = best;
        }
        cudaError_t e = cudaMemcpyAsync(A(lo.ids), ids + (size_t)t0 * L, sizeof(int32_t) * nt * L,
                                        cudaMemcpyHostToDevice, m->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(A(lo.rows), rows, sizeof(int32_t) * nt, cudaMemcpyHostToDevice, m->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(m->stream); /* rows is reused by the next chunk */
        if (e != cudaSuccess) {
            st = eva_fail(EVA_ERR_CUDA, "encode_text: upload ids: %s", cudaGetErrorString(e));
            break;
        }
        st = mark(m, "(start)"); /* timing starts after the ids' upload */
        if (st == EVA_OK) st = run_chunk(m, 1, text_fwd_cb, &lo, nt, tap);
        if (st != EVA_OK) break;
        e = cudaMemcpyAsync(features + (size_t)t0 * E, A(lo.featf), sizeof(float) * nt * E, cudaMemcpyDeviceToHost,
                            m->stream);
        if (e == cudaSuccess && (st = mark(m, "(after last tap)")) != EVA_OK) break;
        if (e == cudaSuccess && t0 + nt >= T) e = cudaEventRecord(m->span[1], m->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(m->stream);
        if (e != cudaSuccess) st = eva_fail(EVA_ERR_CUDA, "encode_text: %s", cudaGetErrorString(e));
    }
    free(rows);
    m->span_ok = st == EVA_OK;
    return st;
}
