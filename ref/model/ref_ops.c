/* ref_ops.c: the reference ops of ref_ops.h (and the l2-normalise / logits ops of ref_model.h).
 *
 * Owns the arithmetic only: no op ordering, no workspace of its own (the SGEMM behind linear and
 * attention allocates its packing buffers, a few MiB at most). The performance-sensitive ops
 * are eva_ref_linear, which is the reference SGEMM of ref_gemm.c (packed token panels, cache-
 * blocked weights, OpenMP over output tiles, float chains of at most 128 products folded into
 * double), and eva_ref_attention, which runs both products of each (batch, head) pair through
 * the same SGEMM on one thread each (score chains of 16 products) with a one-exp softmax.
 *
 * The row and pointwise ops (norms, SwiGLU, softmax, residual add) are written once on generic
 * 8-lane vectors (GCC/Clang vector extensions: double lanes for every statistic and every
 * transcendental) and compiled for the baseline, AVX2 and AVX-512 by per-function targets; the
 * variant follows the SGEMM kernel selection (ref_gemm.h). The lanes, their order of combination
 * and every operation are the same in each variant (no contraction: -ffp-contract=off), so the
 * variants give the same bits. exp is a branch-free double polynomial (below), which rounded to
 * float equals libm's exp/expf except in rare last-bit ties; GELU's erf and erfc are polynomials
 * too (gelu_v), and the attention softmax takes a float exp (expf_v). Parallel loops hand out
 * rows or chunks dynamically, so that a thread slowed by the machine takes fewer.
 */
#include "ref_ops.h"

#include <float.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_gemm.h"
#include "ref_model.h"
#include "ref_pool.h"

#ifdef EVA_HAVE_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* 64-byte vectors in always-inline helpers: no ABI involved */
#endif

/* ---- generic 8-lane vectors and the per-ISA variants ----------------------------------------- */

#define AI static inline __attribute__((always_inline))
typedef double vd8 __attribute__((vector_size(64)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int vi8f __attribute__((vector_size(32))); /* the lanes of a vf8 as integers (masks) */
typedef int64_t vl8 __attribute__((vector_size(64)));
typedef uint64_t vu8 __attribute__((vector_size(64)));

AI vd8 vsplat(double a) { return (vd8){a, a, a, a, a, a, a, a}; }
AI vd8 vload(const float *p) { /* 8 floats widened to double */
    vf8 f;
    memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, vd8);
}
/* (Vectors are passed to helpers by address or through macros: a 64-byte vector passed by value
 * draws an ABI note from GCC even where the helper is always inlined.) */
#define VSTORE(p, x)                                    \
    do { /* rounded to float */                         \
        vf8 f_ = __builtin_convertvector((x), vf8);     \
        memcpy((p), &f_, sizeof f_);                    \
    } while (0)
#define VSEL(m, a, b) ((vd8)(((vl8)(a) & (m)) | ((vl8)(b) & ~(m))))
/* Lane masks from integer operations only (vector float compares wider than the hardware's
 * vectors are split into scalar code by GCC): all ones where the sign bit of the double is set,
 * where the integer is negative, or where the double is a NaN. */
#define VSIGNMASK(v) ((vl8){0} - (vl8)((vu8)(v) >> 63))
#define VNANMASK(v) \
    ((vl8){0} - (vl8)((vu8)((vl8){0} + 0x7ff0000000000000LL - ((vl8)(v) & 0x7fffffffffffffffLL)) >> 63))
AI double vsum(const vd8 *v) { /* lanes added in lane order */
    double s = (*v)[0];
    for (int i = 1; i < 8; i++) s += (*v)[i];
    return s;
}

/* exp(x) in double, branch-free: x = n ln2 + r (|r| <= ln2/2, Cody-Waite split of ln2), e^r by its
 * Taylor series to r^12 (relative error ~1e-16 on that range), times 2^n built in the exponent
 * bits. x is clamped to [-708, 709] (no overflow, no subnormal scale); e^-708 is far below any
 * float, so every use here (rounded to float or added to 1) is unaffected. */
AI vd8 exp_v(const vd8 *px) {
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    const vd8 x0 = *px;
    vd8 x = VSEL(VSIGNMASK(x0 + 708.0), vsplat(-708.0), x0); /* x < -708 (or -inf) */
    x = VSEL(VSIGNMASK(709.0 - x), vsplat(709.0), x);           /* x > 709 (or +inf) */
    vd8 t = x * 1.4426950408889634 + shifter;
    vd8 n = t - shifter;
    vd8 r = x - n * 6.93147180369123816490e-01; /* ln2 high part: n * it is exact */
    r = r - n * 1.90821492927058770002e-10;     /* ln2 low part */
    vd8 p = vsplat(1.0 / 479001600.0);
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    vl8 e = ((vl8)t - (vl8)vsplat(shifter) + 1023) << 52; /* 2^n: n sits in t's low mantissa bits */
    return VSEL(VNANMASK(x0), x0, p * (vd8)e);                /* NaN in, NaN out */
}
AI double exp_s(double x) {
    vd8 v = vsplat(x);
    return exp_v(&v)[0];
}

/* name##_base / _avx2 / _avx512: the always-inline name##_body compiled for each instruction set
 * (x86-64; elsewhere only the baseline), picked by ISA_PICK at the call. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define ISA_VARIANTS(name, params, args)                                                        \
    static void name##_base params { name##_body args; }                                        \
    __attribute__((target("avx2,fma"))) static void name##_avx2 params { name##_body args; }    \
    __attribute__((target("avx512f"))) static void name##_avx512 params { name##_body args; }
#define ISA_PICK(name) (isa_level() == 2 ? name##_avx512 : isa_level() == 1 ? name##_avx2 : name##_base)
static int isa_level(void) {
    const char *k = eva_gemm_kernel_name();
    return strcmp(k, "avx512") == 0 ? 2 : strcmp(k, "avx2") == 0 ? 1 : 0;
}
#else
#define ISA_VARIANTS(name, params, args) \
    static void name##_base params { name##_body args; }
#define ISA_PICK(name) name##_base
#endif

int eva_ref_threads(void) {
#ifdef EVA_HAVE_OPENMP
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

/* ---- parallel pieces ------------------------------------------------------------------------
 * An op splits its work into `count` pieces (rows or chunks of elements) and runs them on the
 * pool (ref_pool.h), handed out one at a time; piece(ctx, i, worker) does piece i. */

typedef void (*piece_fn)(void *ctx, int i, int worker);
typedef struct {
    piece_fn piece;
    void *ctx;
    int count;
    atomic_int next;
} pieces_job;

static void pieces_worker(void *c, int worker, int nworkers) {
    pieces_job *j = c;
    (void)nworkers;
    for (int i; (i = eva_pool_next(&j->next, j->count)) >= 0;) j->piece(j->ctx, i, worker);
}

/* Runs pieces 0..count-1 on up to `threads` workers (<= 0: eva_ref_threads()); on the calling
 * thread alone when !parallel. */
static void run_pieces(int count, bool parallel, int threads, piece_fn piece, void *ctx) {
    if (threads <= 0) threads = eva_ref_threads();
    if (!parallel || count < 2 || threads < 2) {
        for (int i = 0; i < count; i++) piece(ctx, i, 0);
        return;
    }
    pieces_job j = {piece, ctx, count, 0};
    atomic_init(&j.next, 0);
    eva_pool_run(threads < count ? threads : count, pieces_worker, &j);
}

/* ---- linear ---------------------------------------------------------------------------------- */

void eva_ref_linear(float *out, const float *x, const float *w, const float *bias, int M, int C, int K) {
    /* the reference SGEMM (ref_gemm.h): packed, cache-blocked, OpenMP over output tiles; float
     * chains of at most EVA_GEMM_KC (128) products, folded into double, bias added in double */
    eva_gemm_nt(out, x, w, bias, M, C, K, K, K, C, 0);
}

void eva_ref_linear_w(float *out, const float *x, eva_wmat w, const float *bias, int M, int C, int K) {
    eva_gemm_nt_w(out, x, w, bias, M, C, K, K, K, C, 0);
}

/* ---- norms and pointwise ops ----------------------------------------------------------------- */

#define ROWS_PAR(M, C) ((double)(M) * (double)(C) > 32768.0)
/* rows per dynamically handed-out chunk: about 16K elements */
#define ROW_CHUNK(C) ((C) >= 16384 ? 1 : 16384 / ((C) > 0 ? (C) : 1))
enum { PW_CHUNK = 16384 }; /* elements per chunk of the pointwise ops */

/* y[C] = (x - mean) / sqrt(var + eps) * w (+ b): two passes, sums in 8 double lanes */
AI void layernorm_row_body(float *y, const float *x, const float *w, const float *b, int C, double eps) {
    vd8 s8 = vsplat(0.0);
    int c = 0;
    for (; c + 8 <= C; c += 8) s8 += vload(x + c);
    double mean = vsum(&s8);
    for (; c < C; c++) mean += x[c];
    mean /= C;
    vd8 v8 = vsplat(0.0);
    for (c = 0; c + 8 <= C; c += 8) {
        vd8 t = vload(x + c) - mean;
        v8 += t * t;
    }
    double var = vsum(&v8);
    for (; c < C; c++) {
        double t = x[c] - mean;
        var += t * t;
    }
    var /= C;
    const double inv = 1.0 / sqrt(var + eps);
    for (c = 0; c + 8 <= C; c += 8) {
        vd8 t = (vload(x + c) - mean) * inv * vload(w + c);
        VSTORE(y + c, b ? t + vload(b + c) : t);
    }
    for (; c < C; c++) {
        double t = (x[c] - mean) * inv * w[c];
        y[c] = (float)(b ? t + b[c] : t);
    }
}
ISA_VARIANTS(layernorm_row, (float *y, const float *x, const float *w, const float *b, int C, double eps),
             (y, x, w, b, C, eps))

/* rows [i * rows, (i + 1) * rows) of a row op */
typedef struct {
    float *y;
    const float *x, *w, *b;
    int M, C, rows;
    double eps;
    void (*ln)(float *, const float *, const float *, const float *, int, double);
    void (*rms)(float *, const float *, const float *, int, double);
    void (*sm)(float *, const float *, int);
} rows_ctx;

static void rows_piece(void *c, int i, int worker) {
    const rows_ctx *a = c;
    (void)worker;
    const int r1 = (i + 1) * a->rows < a->M ? (i + 1) * a->rows : a->M;
    for (int r = i * a->rows; r < r1; r++) {
        float *y = a->y + (size_t)r * a->C;
        const float *x = a->x + (size_t)r * a->C;
        if (a->ln)
            a->ln(y, x, a->w, a->b, a->C, a->eps);
        else if (a->rms)
            a->rms(y, x, a->w, a->C, a->eps);
        else
            a->sm(y, x, a->C);
    }
}

static void run_rows(rows_ctx *a) {
    a->rows = ROW_CHUNK(a->C);
    run_pieces((a->M + a->rows - 1) / a->rows, ROWS_PAR(a->M, a->C), 0, rows_piece, a);
}

void eva_ref_layernorm(float *y, const float *x, const float *w, const float *b, int M, int C, double eps) {
    rows_ctx a = {y, x, w, b, M, C, 0, eps, ISA_PICK(layernorm_row), NULL, NULL};
    run_rows(&a);
}

/* y[C] = x * (mean(x^2) + eps)^-1/2 * w, the sum of squares in 8 double lanes */
AI void rmsnorm_row_body(float *y, const float *x, const float *w, int C, double eps) {
    vd8 s8 = vsplat(0.0);
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        vd8 t = vload(x + c);
        s8 += t * t;
    }
    double ss = vsum(&s8);
    for (; c < C; c++) ss += (double)x[c] * x[c];
    const double inv = 1.0 / sqrt(ss / C + eps);
    for (c = 0; c + 8 <= C; c += 8) VSTORE(y + c, vload(x + c) * inv * vload(w + c));
    for (; c < C; c++) y[c] = (float)(x[c] * inv * w[c]);
}
ISA_VARIANTS(rmsnorm_row, (float *y, const float *x, const float *w, int C, double eps), (y, x, w, C, eps))

void eva_ref_rmsnorm(float *y, const float *x, const float *w, int M, int C, double eps) {
    rows_ctx a = {y, x, w, NULL, M, C, 0, eps, NULL, ISA_PICK(rmsnorm_row), NULL};
    run_rows(&a);
}

/* chunk i (PW_CHUNK elements) of a pointwise op: out = f(in1, in2) */
typedef struct {
    float *out;
    const float *in1, *in2;
    int64_t n;
    void (*f)(float *, const float *, const float *, int64_t);
} pw_ctx;

static void pw_piece(void *c, int i, int worker) {
    const pw_ctx *a = c;
    (void)worker;
    int64_t o = (int64_t)i * PW_CHUNK, len = a->n - o < PW_CHUNK ? a->n - o : PW_CHUNK;
    a->f(a->out + o, a->in1 + o, a->in2 ? a->in2 + o : NULL, len);
}

static void run_pointwise(pw_ctx *a, int64_t min_parallel) {
    run_pieces((int)((a->n + PW_CHUNK - 1) / PW_CHUNK), a->n > min_parallel, 0, pw_piece, a);
}

/* GELU(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, in double, 8 lanes, branch-free, with
 * z = |x| / sqrt 2 (constants: harness/scripts/gen_gelu_coeffs.py, which prints them and their
 * error):
 *   z < 1:  erf(z) = z * P(z^2), the Taylor series cut after z^35 (next term < 4e-18);
 *   z >= 1: erfc(z) = exp(-z^2) / z * h(1 / z^2), h a degree-18 polynomial on two pieces (z in
 *           [1, 2] and [2, 10.5]; relative error below 1.3e-14); Phi = 1 - erfc / 2 for x > 0 and
 *           erfc / 2 for x < 0 (no cancellation in 1 + erf for negative x); past 10.5, 1 or 0.
 * About 1e-14 relative before the rounding to float: the float result is the correctly rounded
 * one except in rare last-bit ties; results below 2^-126 are flushed to zero (flush_subnormal). */
static const double gelu_erf_taylor[18] = {
    1.1283791670955126,
    -0.37612638903183754,
    0.11283791670955126,
    -0.026866170645131252,
    0.0052239776254421879,
    -0.00085483270234508533,
    0.00012055332981789664,
    -1.492565035840625e-05,
    1.6462114365889248e-06,
    -1.6365844691234924e-07,
    1.4807192815879218e-08,
    -1.2290555301717928e-09,
    9.4227590646504113e-11,
    -6.7113668551641105e-12,
    4.4632242632864775e-13,
    -2.7835162072109215e-14,
    1.6342614095367152e-15,
    -9.0639708428086728e-17};
/* u in [0.25, 1]: max relative error 1.22e-14 */
static const double gelu_h_near[19] = {
    0.46135447772515253,
    -0.039684641727910752,
    0.0072902063300159629,
    -0.0017508162077076808,
    0.00048694527108198338,
    -0.00014897205279149135,
    4.8780908804308308e-05,
    -1.6816853704160146e-05,
    6.0383482604646488e-06,
    -2.2436035048182605e-06,
    8.562658100059553e-07,
    -3.2855052106965141e-07,
    1.3071460810726716e-07,
    -6.2199154793750382e-08,
    2.5925049819820169e-08,
    -2.4858222666346124e-09,
    8.9363317635248965e-10,
    -4.5514809363596155e-09,
    2.0059909821486002e-09};
/* u in [0.0090702947845804991, 0.25]: max relative error 3.96e-15 */
static const double gelu_h_far[19] = {
    0.533126214136451,
    -0.024883065636029579,
    0.0029782066428931352,
    -0.00052152077543200998,
    0.00011434366251521863,
    -2.9226261411250933e-05,
    8.367112144387902e-06,
    -2.6161753352042235e-06,
    8.783881978271661e-07,
    -3.1358451207608504e-07,
    1.1750327106038626e-07,
    -4.407841626287103e-08,
    1.7705232114445523e-08,
    -1.0250262305328616e-08,
    4.6203466873590944e-09,
    5.1941471207291509e-10,
    -3.4590842757676533e-10,
    -1.116970423275564e-09,
    5.5482362382124661e-10};

/* a polynomial (n coefficients, lowest first) at s by Horner's rule */
AI vd8 poly_v(const double *c, int n, const vd8 *s) {
    vd8 p = vsplat(c[n - 1]);
    for (int i = n - 2; i >= 0; i--) p = p * *s + c[i];
    return p;
}

/* lanes of a mask that are all ones / all zeros */
AI bool all_set(const vl8 *m) {
    int64_t a = -1;
    for (int l = 0; l < 8; l++) a &= (*m)[l];
    return a == -1;
}
AI bool none_set(const vl8 *m) {
    int64_t a = 0;
    for (int l = 0; l < 8; l++) a |= (*m)[l];
    return a == 0;
}

/* r, or a zero of r's sign where |r| is below the smallest normal float (2^-126): subnormal
 * activations would make every later product that reads them take microcode assists (a post-norm
 * model's forward ran 5x slower), for a change below 1.2e-38. */
AI vd8 flush_subnormal(const vd8 *r) {
    const vl8 mag = (vl8)*r & 0x7fffffffffffffffLL;
    const vl8 tiny = VSIGNMASK((vd8)(mag - (vl8)vsplat(0x1p-126)));
    return VSEL(tiny, (vd8)((vl8)*r & (vl8)vsplat(-0.0)), *r);
}

AI vd8 gelu_v(const vd8 *px) {
    const vd8 t = *px;
    const vd8 z = (vd8)((vl8)t & 0x7fffffffffffffffLL) * 0.70710678118654752440; /* |t| / sqrt 2 */
    const vl8 neg = VSIGNMASK(t), small = VSIGNMASK(z - 1.0);
    /* z < 1: Phi = 1/2 +- erf(z) / 2 (skipped when no lane needs it; the lanes do not change) */
    vd8 phi_a = vsplat(0.0), phi_b = vsplat(0.0);
    if (!none_set(&small)) {
        const vd8 w = z * z;
        const vd8 erf_a = z * poly_v(gelu_erf_taylor, 18, &w);
        phi_a = VSEL(neg, 0.5 - 0.5 * erf_a, 0.5 + 0.5 * erf_a);
        if (all_set(&small)) {
            const vd8 y = t * phi_a;
            return flush_subnormal(&y);
        }
    }
    /* z >= 1 (z clamped to [1, 10.5]): q = erfc(z) / 2 */
    vd8 zb = VSEL(small, vsplat(1.0), z);
    zb = VSEL(VSIGNMASK(10.5 - zb), vsplat(10.5), zb);
    const vd8 r = 1.0 / zb, u = r * r;
    const vd8 s_near = u * (2.0 / 0.75) - 1.25 / 0.75;
    const double far_a = 1.0 / 110.25, far_b = 0.25;
    const vd8 s_far = u * (2.0 / (far_b - far_a)) - (far_a + far_b) / (far_b - far_a);
    const vd8 h_near = poly_v(gelu_h_near, 19, &s_near), h_far = poly_v(gelu_h_far, 19, &s_far);
    const vd8 hz = VSEL(VSIGNMASK(zb - 2.0), h_near, h_far); /* zb < 2: the near piece */
    vd8 nz2 = -(zb * zb);
    vd8 q = 0.5 * exp_v(&nz2) * hz * r;
    q = VSEL(VSIGNMASK(10.5 - z), vsplat(0.0), q); /* z > 10.5: erfc below any float */
    phi_b = VSEL(neg, q, 1.0 - q);
    const vd8 y = t * VSEL(small, phi_a, phi_b);
    return flush_subnormal(&y);
}

AI void gelu_chunk_body(float *y, const float *x, const float *unused, int64_t n) {
    (void)unused;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vd8 t = vload(x + i);
        VSTORE(y + i, gelu_v(&t));
    }
    if (i < n) { /* the last n % 8 through a padded vector */
        float buf[8] = {0};
        memcpy(buf, x + i, sizeof(float) * (size_t)(n - i));
        vd8 t = vload(buf);
        VSTORE(buf, gelu_v(&t));
        memcpy(y + i, buf, sizeof(float) * (size_t)(n - i));
    }
}
ISA_VARIANTS(gelu_chunk, (float *y, const float *x, const float *unused, int64_t n), (y, x, unused, n))

void eva_ref_gelu(float *y, const float *x, int64_t n) {
    pw_ctx a = {y, x, NULL, n, ISA_PICK(gelu_chunk)};
    run_pointwise(&a, 32768);
}

/* z[n] = g / (1 + exp(-g)) * a in double */
AI void swiglu_chunk_body(float *z, const float *g, const float *a, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vd8 t = vload(g + i), nt = -t;
        VSTORE(z + i, t / (1.0 + exp_v(&nt)) * vload(a + i));
    }
    for (; i < n; i++) {
        double t = g[i];
        z[i] = (float)(t / (1.0 + exp_s(-t)) * a[i]);
    }
}
ISA_VARIANTS(swiglu_chunk, (float *z, const float *g, const float *a, int64_t n), (z, g, a, n))

void eva_ref_swiglu(float *z, const float *g, const float *a, int64_t n) {
    pw_ctx c = {z, g, a, n, ISA_PICK(swiglu_chunk)};
    run_pointwise(&c, 32768);
}

/* y[C] = exp(x - max) / sum exp(x - max), in double (exp twice: nothing stored in between) */
AI void softmax_row_body(float *y, const float *x, int C) {
    double mx = -INFINITY;
    for (int c = 0; c < C; c++)
        if (x[c] > mx) mx = x[c];
    vd8 s8 = vsplat(0.0);
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        vd8 t = vload(x + c) - mx;
        s8 += exp_v(&t);
    }
    double sum = vsum(&s8);
    for (; c < C; c++) sum += exp_s((double)x[c] - mx);
    const double inv = 1.0 / sum;
    for (c = 0; c + 8 <= C; c += 8) {
        vd8 t = vload(x + c) - mx;
        VSTORE(y + c, exp_v(&t) * inv);
    }
    for (; c < C; c++) y[c] = (float)(exp_s((double)x[c] - mx) * inv);
}
ISA_VARIANTS(softmax_row, (float *y, const float *x, int C), (y, x, C))

void eva_ref_softmax(float *y, const float *x, int M, int C) {
    rows_ctx a = {y, x, NULL, NULL, M, C, 0, 0.0, NULL, NULL, ISA_PICK(softmax_row)};
    run_rows(&a);
}

AI void add_chunk_body(float *y, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vf8 u, v;
        memcpy(&u, a + i, sizeof u);
        memcpy(&v, b + i, sizeof v);
        u += v;
        memcpy(y + i, &u, sizeof u);
    }
    for (; i < n; i++) y[i] = a[i] + b[i];
}
ISA_VARIANTS(add_chunk, (float *y, const float *a, const float *b, int64_t n), (y, a, b, n))

void eva_ref_add(float *y, const float *a, const float *b, int64_t n) {
    pw_ctx c = {y, a, b, n, ISA_PICK(add_chunk)};
    run_pointwise(&c, 131072);
}

/* ---- attention ------------------------------------------------------------------------------- */

/* ---- float exp for the attention softmax (16 lanes) --------------------------------------------
 * e^x in float: x clamped to [-104, 89] (e^-104 is below half the smallest float), n = round(x /
 * ln 2) by the 1.5 * 2^23 shifter, r = x - n ln 2 in two parts (Cody-Waite: the high part times
 * n is exact), Cephes' degree-6 polynomial for e^r, then the scale 2^n applied as 2^(n/2) .
 * 2^(n - n/2); results below the smallest normal float are 0 (flushed). Plain float multiplies
 * and adds (no contraction): the same bits on every instruction set. Error below 1 ulp of the
 * exact value (0.96 ulp at worst on a sweep of 36 million floats over [-104, 88.5],
 * tests/op_ref.c). */
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef uint32_t vu16 __attribute__((vector_size(64)));
#define FSPLAT(a) ((vf16){0} + (float)(a))
#define FSEL(m, a, b) ((vf16)(((vi16)(a) & (m)) | ((vi16)(b) & ~(m))))
#define FSIGNMASK(v) ((vi16){0} - (vi16)((vu16)(v) >> 31)) /* all ones where the sign bit is set */
#define FNANMASK(v) ((vi16){0} - (vi16)((vu16)((vi16){0} + 0x7f800000 - ((vi16)(v) & 0x7fffffff)) >> 31))

AI vf16 expf_v(const vf16 *px) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const vf16 x0 = *px;
    vf16 x = FSEL(FSIGNMASK(x0 + 104.0f), FSPLAT(-104.0f), x0); /* x < -104 (or -inf) */
    x = FSEL(FSIGNMASK(89.0f - x), FSPLAT(89.0f), x);            /* x > 89 (or +inf): e^89 is inf */
    vf16 t = x * 1.44269504088896341f + shifter;
    vf16 n = t - shifter;
    vf16 r = x - n * 0.693359375f; /* ln 2, high part (9 bits: times n is exact) */
    r = r - n * -2.12194440e-4f;   /* ln 2, low part */
    vf16 p = FSPLAT(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vi16 ni = (vi16)t - (vi16)FSPLAT(shifter); /* n: it sits in t's low mantissa bits */
    vi16 n1 = ni >> 1, n2 = ni - n1;           /* n in [-150, 128]: both halves in [-75, 64] */
    vf16 e = p * (vf16)((n1 + 127) << 23) * (vf16)((n2 + 127) << 23);
    /* results below the smallest normal float (2^-126) are 0: as probabilities they are
     * nothing, and as subnormals they would make the P . V product take microcode assists */
    e = FSEL(FSIGNMASK((vf16)((vi16)e - 0x00800000)), FSPLAT(0.0f), e);
    return FSEL(FNANMASK(x0), x0, e); /* NaN in, NaN out */
}

/* y[0..n) = expf_v(x[0..n)) (the last n % 16 through a padded vector) */
AI void expf_chunk_body(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t c = n - i < 16 ? n - i : 16;
        float buf[16] = {0};
        memcpy(buf, x + i, sizeof(float) * (size_t)c);
        vf16 v;
        memcpy(&v, buf, sizeof v);
        v = expf_v(&v);
        memcpy(buf, &v, sizeof buf);
        memcpy(y + i, buf, sizeof(float) * (size_t)c);
    }
}
ISA_VARIANTS(expf_chunk, (float *y, const float *x, int64_t n), (y, x, n))

void eva_ref_expf(float *y, const float *x, int64_t n) { ISA_PICK(expf_chunk)(y, x, n); }

/* One row of scores in place: sr[m] = e_m / sum e, e_m = e^(sr[m] - max) in float (expf_v, 16
 * at a time; sr[m] - max rounded to float first, as PyTorch's softmax does), for m < len; the sum
 * of the e_m in double, element m in lane m % 8, the lanes then added in lane order; each e_m
 * times the double reciprocal of the sum, rounded to float; sr[len..N) = 0 (masked). */
AI void score_softmax_body(float *sr, int len, int N) {
    /* the row maximum (exact in any order): four independent 8-lane running maxima (one compare
     * and select chain would wait on itself), then their lanes */
    float mx = sr[0];
    int m0 = 0;
    if (len >= 32) {
        vf8 acc[4];
        memcpy(acc, sr, sizeof acc);
        for (m0 = 32; m0 + 32 <= len; m0 += 32)
            for (int a = 0; a < 4; a++) {
                vf8 v;
                memcpy(&v, sr + m0 + 8 * a, sizeof v);
                vi8f gt = v > acc[a]; /* lanes where v is larger: all ones */
                acc[a] = (vf8)(((vi8f)v & gt) | ((vi8f)acc[a] & ~gt));
            }
        for (int a = 0; a < 4; a++)
            for (int l = 0; l < 8; l++) mx = acc[a][l] > mx ? acc[a][l] : mx;
    }
    for (int m = m0; m < len; m++) mx = sr[m] > mx ? sr[m] : mx;
    vd8 s8 = vsplat(0.0);
    int m = 0;
    for (; m + 16 <= len; m += 16) {
        vf16 v;
        memcpy(&v, sr + m, sizeof v);
        v = v - mx;
        vf16 e = expf_v(&v);
        memcpy(sr + m, &e, sizeof e);
        s8 += vload(sr + m);
        s8 += vload(sr + m + 8);
    }
    if (m < len) { /* the last len - m < 16, padded with -inf: their e is exactly +0 (flushed) */
        const int n = len - m;
        float buf[16];
        for (int l = 0; l < 16; l++) buf[l] = l < n ? sr[m + l] : -INFINITY;
        vf16 v;
        memcpy(&v, buf, sizeof v);
        v = v - mx;
        vf16 e = expf_v(&v);
        memcpy(buf, &e, sizeof buf);
        s8 += vload(buf);
        s8 += vload(buf + 8);
        for (int l = 0; l < n; l++) sr[m + l] = buf[l];
    }
    const double inv = 1.0 / vsum(&s8);
    for (m = 0; m + 8 <= len; m += 8) VSTORE(sr + m, vload(sr + m) * inv);
    for (; m < len; m++) sr[m] = (float)(sr[m] * inv);
    for (m = len; m < N; m++) sr[m] = 0.0f;
}
ISA_VARIANTS(score_softmax, (float *sr, int len, int N), (sr, len, N))

/* Per thread: qs [N,d], ks [N,d], vt [d,N], s [N,N], os [N,d]. */
static int64_t attn_thread_floats(int N, int d) { return 4 * (int64_t)N * d + (int64_t)N * N; }

int64_t eva_ref_attention_scratch_floats(int N, int d, int threads) {
    if (threads < 1) threads = 1;
    return attn_thread_floats(N, d) * threads;
}

/* The operands of one attention call, shared by the workers. A piece is one block of query rows
 * of one (batch, head) pair: qb blocks per pair (1 unless there are fewer pairs than threads). */
typedef struct {
    float *out, *scratch, *gemm_scratch;
    const float *q, *k, *v;
    int N, H, d, ldq, ldk, ldv, qb;
    bool causal;
    int64_t gs;
    float scale;
    void (*score_softmax)(float *, int, int);
} attn_ctx;

/* Query rows [n0, n1) of pair p / qb: qs = their scaled q, vt = the head's v^T (all N keys),
 * S = qs . k^T, the softmax of each row, O rows = P . vt^T. Every output row is computed the
 * same way whatever the block, so the split does not change a bit. */
static void attn_piece(void *c, int piece, int worker) {
    const attn_ctx *a = c;
    const int p = piece / a->qb, blk = piece % a->qb;
    const int N = a->N, d = a->d, D = a->H * d, b = p / a->H, h = p % a->H;
    const int n0 = (int)((int64_t)N * blk / a->qb), n1 = (int)((int64_t)N * (blk + 1) / a->qb), nq = n1 - n0;
    float *qs = a->scratch + attn_thread_floats(N, d) * worker;
    float *vt = qs + (size_t)N * d, *s = vt + 3 * (size_t)N * d;
    float *gsc = a->gemm_scratch ? a->gemm_scratch + (size_t)a->gs * worker : NULL;
    const float *kh = a->k + (size_t)b * N * a->ldk + (size_t)h * d;
    float *oh = a->out + ((size_t)b * N + n0) * D + (size_t)h * d;
    for (int n = n0; n < n1; n++) {
        const float *qr = a->q + ((size_t)b * N + n) * a->ldq + (size_t)h * d;
        for (int c = 0; c < d; c++) qs[(size_t)(n - n0) * d + c] = qr[c] * a->scale;
    }
    for (int m0 = 0; m0 < N; m0 += 16) /* vt = v^T in 16-token strips (cache-friendly) */
        for (int c = 0; c < d; c++)
            for (int m = m0; m < m0 + 16 && m < N; m++)
                vt[(size_t)c * N + m] = a->v[((size_t)b * N + m) * a->ldv + (size_t)h * d + c];
    eva_gemm_nt_serial(s, gsc, qs, kh, NULL, nq, N, d, d, a->ldk, N, 16); /* S = qs . k^T */
    for (int n = n0; n < n1; n++) a->score_softmax(s + (size_t)(n - n0) * N, a->causal ? n + 1 : N, N);
    eva_gemm_nt_serial(oh, gsc, s, vt, NULL, nq, d, N, N, N, D, 0); /* O = P . vt^T, into out */
}

/* Query blocks per (batch, head) pair: 1 when the pairs alone keep every thread busy; else about
 * two pieces per thread, in blocks of at least 32 rows (each piece transposes the head's v anew). */
static int attn_query_blocks(int pairs, int N, int threads) {
    if (pairs >= threads) return 1;
    int qb = (2 * threads + pairs - 1) / pairs, most = N / 32;
    if (qb > most) qb = most;
    return qb < 1 ? 1 : qb;
}

void eva_ref_attention(float *out, float *scratch, const float *q, const float *k, const float *v, int B, int N,
                       int H, int d, int ldq, int ldk, int ldv, bool causal, int threads) {
    /* Per (batch, head) pair on one worker (or per block of its query rows when there are fewer
     * pairs than threads: batch 1 on a wide host), handed out one at a time: S = (q * scale) .
     * k^T and O = P . V with the reference SGEMM (serial entry; one packing allocation per call;
     * if that fails the SGEMM computes the same sums by plain loops), scores in float chains of 16
     * products folded into double, the softmax in between with one float exp per score (expf_v)
     * and the row sum in double. k is read in place; q is scaled into qs; v is transposed
     * into vt (the SGEMM's weight side is row-major over the inner dim); O is written straight
     * into its columns of out. */
    if (threads < 1) threads = 1;
    int64_t gs = eva_gemm_scratch_floats(N, d), gs2 = eva_gemm_scratch_floats(N, N);
    if (gs2 > gs) gs = gs2;
    const int qb = attn_query_blocks(B * H, N, threads);
    attn_ctx a = {out, scratch, malloc(sizeof(float) * (size_t)gs * (size_t)threads), q, k, v, N, H, d, ldq, ldk,
                  ldv, qb, causal, gs, (float)(1.0 / sqrt((double)d)), ISA_PICK(score_softmax)};
    run_pieces(B * H * qb, true, threads, attn_piece, &a);
    free(a.gemm_scratch);
}

/* ---- rotary embedding ------------------------------------------------------------------------ */

eva_status eva_ref_rope_table(float *cos_t, float *sin_t, int G, int ref, int d) {
    if (d <= 0 || d % 4 != 0)
        return eva_fail(EVA_ERR_INVALID_ARG, "rope: head_dim %d is not a positive multiple of 4", d);
    if (G < 1 || ref < 1) return eva_fail(EVA_ERR_INVALID_ARG, "rope: grid %d / reference grid %d must be >= 1", G, ref);
    const int F = d / 4;
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) {
            size_t row = ((size_t)r * G + c) * d;
            float pr = ((float)r / (float)G) * (float)ref; /* t / feat * ref in float32 */
            float pc = ((float)c / (float)G) * (float)ref;
            for (int k = 0; k < F; k++) {
                float e = (float)k / (float)F;            /* timm freq_bands: arange(F) / F in float32 */
                float band = 1.0f / powf(10000.0f, e);    /* 1 / temperature ** exp, float32 */
                float tr = pr * band, tc = pc * band;     /* grid * bands, float32 */
                float cr = (float)cos((double)tr), sr = (float)sin((double)tr);
                float cc = (float)cos((double)tc), sc = (float)sin((double)tc);
                cos_t[row + 2 * k] = cos_t[row + 2 * k + 1] = cr;
                sin_t[row + 2 * k] = sin_t[row + 2 * k + 1] = sr;
                cos_t[row + d / 2 + 2 * k] = cos_t[row + d / 2 + 2 * k + 1] = cc;
                sin_t[row + d / 2 + 2 * k] = sin_t[row + d / 2 + 2 * k + 1] = sc;
            }
        }
    return EVA_OK;
}

typedef struct {
    float *x;
    const float *cos_t, *sin_t;
    int N, H, d, ld, rows;
} rope_ctx;

static void rope_piece(void *c, int i, int worker) {
    const rope_ctx *a = c;
    (void)worker;
    const int d = a->d, end = (i + 1) * a->rows;
    for (int r = i * a->rows; r < end; r++) {
        int b = r / (a->N - 1), t = r % (a->N - 1);
        float *xr = a->x + ((size_t)b * a->N + t + 1) * a->ld;
        const float *C = a->cos_t + (size_t)t * d, *S = a->sin_t + (size_t)t * d;
        for (int h = 0; h < a->H; h++) {
            float *xh = xr + (size_t)h * d;
            for (int m = 0; m < d / 2; m++) {
                double x0 = xh[2 * m], x1 = xh[2 * m + 1];
                xh[2 * m] = (float)(x0 * C[2 * m] - x1 * S[2 * m]);
                xh[2 * m + 1] = (float)(x1 * C[2 * m + 1] + x0 * S[2 * m + 1]);
            }
        }
    }
}

void eva_ref_rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int N, int H, int d, int ld) {
    const int rows = B * (N - 1);
    if (rows <= 0) return;
    rope_ctx a = {x, cos_t, sin_t, N, H, d, ld, 1};
    /* pieces of whole rows, exactly dividing `rows` (at most ~32 rows each) */
    for (int r = 32; r > 1; r--)
        if (rows % r == 0) {
            a.rows = r;
            break;
        }
    run_pieces(rows / a.rows, (double)rows * H * d > 32768.0, 0, rope_piece, &a);
}

/* ---- embeddings ------------------------------------------------------------------------------ */

int64_t eva_ref_patch_embed_scratch_floats(int B, int S, int P) {
    int64_t G = P > 0 ? S / P : 0;
    return (int64_t)B * G * G * 3 * P * P;
}

void eva_ref_patch_embed(float *out, float *scratch, const float *pixels, const float *w, const float *bias, int B,
                         int S, int P, int D) {
    const int G = S / P, K = 3 * P * P;
    const int rows = B * G * G;
    for (int t = 0; t < rows; t++) { /* im2col: copies only, a small share of the product after it */
        int b = t / (G * G), r = (t / G) % G, c = t % G;
        float *col = scratch + (size_t)t * K;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < P; i++)
                memcpy(col + ((size_t)ch * P + i) * P,
                       pixels + (((size_t)b * 3 + ch) * S + (size_t)r * P + i) * S + (size_t)c * P, sizeof(float) * P);
    }
    eva_ref_linear(out, scratch, w, bias, rows, D, K);
}

void eva_ref_cls_pos(float *x, const float *patches, const float *cls, const float *pos, int B, int N, int D) {
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            float *xr = x + ((size_t)b * N + n) * D;
            const float *src = n == 0 ? cls : patches + ((size_t)b * (N - 1) + n - 1) * D;
            const float *pr = pos + (size_t)n * D;
            for (int c = 0; c < D; c++) xr[c] = src[c] + pr[c];
        }
}

void eva_ref_embedding(float *out, const int32_t *ids, const float *table, int T, int L, int W) {
    const eva_wmat t = {table, EVA_DT_F32};
    eva_ref_embedding_w(out, ids, t, T, L, W);
}

void eva_ref_embedding_w(float *out, const int32_t *ids, eva_wmat table, int T, int L, int W) {
    for (int64_t i = 0; i < (int64_t)T * L; i++)
        eva_widen(out + i * W, table.data, table.dtype, (size_t)ids[i] * W, (size_t)W);
}

void eva_ref_argmax_ids(int *pos, const int32_t *ids, int T, int L) {
    for (int t = 0; t < T; t++) {
        int best = 0;
        for (int l = 1; l < L; l++)
            if (ids[(size_t)t * L + l] > ids[(size_t)t * L + best]) best = l;
        pos[t] = best;
    }
}

void eva_ref_matmul_proj(float *out, const float *x, const float *P, int M, int W, int E) {
    for (int m = 0; m < M; m++)
        for (int e = 0; e < E; e++) {
            double s = 0.0;
            for (int c = 0; c < W; c++) s += (double)x[(size_t)m * W + c] * P[(size_t)c * E + e];
            out[(size_t)m * E + e] = (float)s;
        }
}

/* ---- outputs (declared in ref_model.h) ------------------------------------------------------- */

void eva_ref_l2_normalize(float *emb, const float *x, int n, int E) {
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int c = 0; c < E; c++) ss += (double)x[(size_t)r * E + c] * x[(size_t)r * E + c];
        double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
        for (int c = 0; c < E; c++) emb[(size_t)r * E + c] = (float)(x[(size_t)r * E + c] * inv);
    }
}

void eva_ref_logits(float *logits, const float *img_emb, const float *txt_emb, int B, int T, int E, float scale) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            double s = 0.0;
            for (int c = 0; c < E; c++) s += (double)img_emb[(size_t)b * E + c] * txt_emb[(size_t)t * E + c];
            logits[(size_t)b * T + t] = (float)(scale * s);
        }
}
