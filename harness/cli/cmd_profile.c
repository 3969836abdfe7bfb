/* cmd_profile.c: `evabench profile`: where the time of a forward goes, module by module.
 * Parse -> GEMM ceiling and session (harness/lib/bench.h) -> one profile per tower -> tables and JSON.
 *
 * Decisions:
 * - Segments are timed at the tap boundaries of docs/cli.md: every tap of the tower is wanted, and
 *   a tap's time is the wall time from the previous tap (or the start of the forward) to it, so a
 *   residual add is charged to the tap after it (for pre-norm blocks: the attention residual to
 *   norm2, the MLP residual to the block output). The reference's taps only timestamp; nothing is
 *   copied. Per segment: the median over --iters forwards.
 * - FLOPs are the matmul FLOPs of open_clip's GFLOPs figures (2 per multiply-add: projections,
 *   attention products, MLP, patch embedding, head); norms and pointwise ops count 0 and show no
 *   GFLOP/s.
 * - --impl cuda: the same segments, timed on the device. The model records a CUDA event at the
 *   start of the forward (after the input upload), at every tap boundary and at the end (after the
 *   features' download); nothing is copied to the host and no CUDA graph is used while timing, and
 *   the batch must run in one pass (refused otherwise). Segment times are device ms between
 *   consecutive events (eva_cuda_set_timing/eva_cuda_timings through the backend's set_timing/
 *   timings); the forward's total stays host wall clock, so it also holds the input upload and
 *   the launch gaps that no segment shows. Per segment, as for the reference: the median.
 * - The ceiling is measured, not quoted: for the reference, its SGEMM on a 2048^3 product on this
 *   machine; for cuda, cuBLASLt on an 8192^3 product in the run's precision on this card
 *   (eva_cuda_gemm_ceiling, the model's own GEMM path, best of 5), measured before the model is
 *   uploaded. Reported beside, and each segment's GFLOP/s as a fraction of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef EVA_HAVE_OPENMP
#include <omp.h>
#endif

#include "bench.h"
#include "cli.h"
#include "cmds.h"
#include "ref_gemm.h"

/* ---- summaries --------------------------------------------------------------------------------- */

#define MAX_KINDS 24

typedef struct {
    char kind[24];
    int count;
    double ms, gflop;
} kind_sum;

static int summarize_kinds(const eva_profile *p, kind_sum *ks) {
    int n = 0;
    for (int i = 0; i < p->nrows; i++) {
        const eva_profile_row *r = &p->rows[i];
        int k = 0;
        while (k < n && strcmp(ks[k].kind, r->kind) != 0) k++;
        if (k == n) {
            if (n == MAX_KINDS) continue;
            memset(&ks[n], 0, sizeof ks[n]);
            snprintf(ks[n].kind, sizeof ks[n].kind, "%s", r->kind);
            n++;
        }
        ks[k].count++;
        ks[k].ms += r->median_ms;
        ks[k].gflop += r->gflop;
    }
    return n;
}

static double sum_ms(const eva_profile *p) {
    double s = 0;
    for (int i = 0; i < p->nrows; i++) s += p->rows[i].median_ms;
    return s;
}

static void print_rate(double gflop, double ms, double ceiling) {
    if (gflop <= 0 || ms <= 0) {
        printf(" %9s %9s %8s\n", "-", "-", "-");
        return;
    }
    double g = gflop / (ms * 1e-3);
    if (ceiling > 0)
        printf(" %9.3f %9.1f %7.0f%%\n", gflop, g, 100.0 * g / ceiling);
    else
        printf(" %9.3f %9.1f %8s\n", gflop, g, "-");
}

/* Per block: the four modules and the residual, in ms. */
static void print_blocks(const eva_profile *p, const eva_config *cfg) {
    int depth = p->tower == EVA_BENCH_TEXT ? cfg->text.layers : cfg->vision.depth;
    static const char *const vcols[] = {"norm1", "attn", "norm2", "mlp", "residual"};
    static const char *const tcols[] = {"ln_1", "attn", "ln_2", "mlp", "residual"};
    const char *const *cols = p->tower == EVA_BENCH_TEXT ? tcols : vcols;
    if (depth <= 0) return;
    printf("\nper block (ms): %5s", "block");
    for (int c = 0; c < 5; c++) printf(" %9s", cols[c]);
    printf(" %9s\n", "total");
    for (int b = 0; b < depth; b++) {
        double v[5] = {0}, tot = 0;
        for (int i = 0; i < p->nrows; i++) {
            if (p->rows[i].block != b) continue;
            for (int c = 0; c < 5; c++)
                if (!strcmp(p->rows[i].kind, cols[c])) v[c] += p->rows[i].median_ms;
            tot += p->rows[i].median_ms;
        }
        printf("               %5d", b);
        for (int c = 0; c < 5; c++) printf(" %9.3f", v[c]);
        printf(" %9.3f\n", tot);
    }
}

static void print_profile(const eva_profile *p, const eva_config *cfg, double ceiling, bool all) {
    double seg = sum_ms(p);
    printf("\n%s tower, batch %d: forward %.2f ms (median of %d; segments sum to %.2f ms), %.3f GFLOP -> %.1f "
           "GFLOP/s",
           eva_bench_tower_name(p->tower), p->batch, p->total_median_ms, p->iters, seg, p->gflop_total,
           p->total_median_ms > 0 ? p->gflop_total / (p->total_median_ms * 1e-3) : 0.0);
    if (ceiling > 0 && p->total_median_ms > 0)
        printf(" = %.0f%% of the ceiling", 100.0 * p->gflop_total / (p->total_median_ms * 1e-3) / ceiling);
    printf("\n\n%-14s %5s %10s %7s %9s %9s %8s\n", "module", "count", "total ms", "share", "GFLOP", "GFLOP/s",
           "ceiling");
    kind_sum ks[MAX_KINDS];
    int nk = summarize_kinds(p, ks);
    for (int k = 0; k < nk; k++) {
        printf("%-14s %5d %10.3f %6.1f%%", ks[k].kind, ks[k].count, ks[k].ms, seg > 0 ? 100.0 * ks[k].ms / seg : 0.0);
        print_rate(ks[k].gflop, ks[k].ms, ceiling);
    }
    print_blocks(p, cfg);
    if (all) {
        printf("\n%-44s %10s %7s %9s %9s %8s\n", "tap (segment ends here)", "median ms", "share", "GFLOP", "GFLOP/s",
               "ceiling");
        for (int i = 0; i < p->nrows; i++) {
            const eva_profile_row *r = &p->rows[i];
            printf("%-44s %10.3f %6.1f%%", r->name, r->median_ms, seg > 0 ? 100.0 * r->median_ms / seg : 0.0);
            print_rate(r->gflop, r->median_ms, ceiling);
        }
    }
}

static void add_rate(cJSON *o, double gflop, double ms, double ceiling) {
    cJSON_AddNumberToObject(o, "gflop", gflop);
    if (gflop > 0 && ms > 0) {
        double g = gflop / (ms * 1e-3);
        cJSON_AddNumberToObject(o, "gflops", g);
        if (ceiling > 0)
            cJSON_AddNumberToObject(o, "ceiling_fraction", g / ceiling);
        else
            cJSON_AddNullToObject(o, "ceiling_fraction");
    } else {
        cJSON_AddNullToObject(o, "gflops");
        cJSON_AddNullToObject(o, "ceiling_fraction");
    }
}

static cJSON *profile_json(const eva_profile *p, double ceiling) {
    cJSON *o = cJSON_CreateObject();
    double seg = sum_ms(p);
    cJSON_AddStringToObject(o, "tower", eva_bench_tower_name(p->tower));
    cJSON_AddNumberToObject(o, "batch", p->batch);
    cJSON_AddNumberToObject(o, "warmup", p->warmup);
    cJSON_AddNumberToObject(o, "iters", p->iters);
    cJSON_AddNumberToObject(o, "median_ms", p->total_median_ms);
    cJSON_AddNumberToObject(o, "segments_ms", seg);
    add_rate(o, p->gflop_total, p->total_median_ms, ceiling);
    cJSON *kinds = cJSON_AddArrayToObject(o, "modules");
    kind_sum ks[MAX_KINDS];
    int nk = summarize_kinds(p, ks);
    for (int k = 0; k < nk; k++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", ks[k].kind);
        cJSON_AddNumberToObject(j, "count", ks[k].count);
        cJSON_AddNumberToObject(j, "ms", ks[k].ms);
        cJSON_AddNumberToObject(j, "share", seg > 0 ? ks[k].ms / seg : 0.0);
        add_rate(j, ks[k].gflop, ks[k].ms, ceiling);
        cJSON_AddItemToArray(kinds, j);
    }
    cJSON *rows = cJSON_AddArrayToObject(o, "taps");
    for (int i = 0; i < p->nrows; i++) {
        const eva_profile_row *r = &p->rows[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", r->name);
        cJSON_AddStringToObject(j, "kind", r->kind);
        if (r->block >= 0)
            cJSON_AddNumberToObject(j, "block", r->block);
        else
            cJSON_AddNullToObject(j, "block");
        cJSON_AddNumberToObject(j, "median_ms", r->median_ms);
        cJSON_AddNumberToObject(j, "share", seg > 0 ? r->median_ms / seg : 0.0);
        add_rate(j, r->gflop, r->median_ms, ceiling);
        cJSON_AddItemToArray(rows, j);
    }
    return o;
}

typedef struct {
    eva_bench_setup o;
    const char *tower, *json;
    long batch, warmup, iters, threads, seed, ceiling_n;
    bool all, cuda;
} profile_args;

static int parse(profile_args *a, int argc, char **argv) {
    *a = (profile_args){.o = {"profile", NULL, NULL, NULL, NULL, NULL, 0, 1, 1}, .tower = "image", .batch = 1,
                        .warmup = 1, .iters = 3, .ceiling_n = -1};
    const eva_opt opts[] = {
        EVA_ARG_STR("--variant", &a->o.variant, "NAME", "built-in variant (official or open_clip name)"),
        EVA_ARG_STR("--config", &a->o.config, "C.json", "config JSON instead of --variant"),
        EVA_ARG_STR("--weights", &a->o.weights, "W", "safetensors weights"),
        EVA_ARG_STR("--impl", &a->o.impl, "ref|cuda", "the reference (default) or the CUDA twin (needs a device)"),
        EVA_ARG_STR("--precision", &a->o.precision, "P",
                    "fp32 (default; the reference's only one), tf32, bf16 or fp16 (cuda)"),
        EVA_ARG_STR("--tower", &a->tower, "T", "image (default), text or both"),
        EVA_ARG_LONG("--batch", &a->batch, "N", "batch size (default 1)", 1, 1 << 20),
        EVA_ARG_LONG("--warmup", &a->warmup, "N", "untimed forwards (default 1)", 0, 100000),
        EVA_ARG_LONG("--iters", &a->iters, "N", "timed forwards; medians over them (default 3)", 1, 100000),
        EVA_ARG_LONG("--threads", &a->threads, "N", "OpenMP threads (default: all)", 1, 4096),
        EVA_ARG_LONG("--seed", &a->seed, "S", "seed of the random weights and inputs (default 0)", 0, 2147483647L),
        EVA_ARG_LONG("--ceiling", &a->ceiling_n, "N",
                     "size of the GEMM-ceiling product (default 2048 for ref, 8192 for cuda; 0 skips it)", 0, 16384),
        EVA_ARG_FLAG("--all", &a->all, "print every tap, not only the summary by module kind and block"),
        EVA_ARG_STR("--json", &a->json, "OUT.json", "write the profile (every tap) as JSON"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "profile",
        "usage: evabench profile [--variant NAME | --config C.json] [--weights W.safetensors] [--impl ref|cuda]\n"
        "                        [--precision P] [--tower image|text|both] [--batch N] [--warmup N] [--iters N]\n"
        "                        [--threads N] [--seed S] [--ceiling N] [--all] [--json OUT.json]\n"
        "\n"
        "Times each module of a forward at the tap boundaries (patch embedding; each block's norms, attention\n"
        "and MLP; final norm and head; the text tower likewise): median time, share of the forward, matmul\n"
        "GFLOP and achieved GFLOP/s per module, as a fraction of the GEMM ceiling measured on this machine\n"
        "(ref: the reference SGEMM on an N x N x N product; cuda: cuBLASLt on N x N x N in the run's\n"
        "precision). The reference is timed with host timestamps at its taps; cuda with CUDA events at the\n"
        "same boundaries (no copies, no CUDA graphs, the batch in one pass). Random weights unless --weights\n"
        "(the output says which). Before allocating, the memory the run needs is checked (exit 2 when it\n"
        "cannot fit).\n",
        opts, NULL,
        "Exit status: 0 ok, 2 bad usage or input, --impl cuda without a usable device (or in a build without\n"
        "CUDA), or a run that does not fit in memory, 3 internal failure.\n"};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r >= 0) return r;
    eva_status st = eva_bench_towers_parse(&a->o.towers, a->tower);
    if (st != EVA_OK) return eva_cli_fail("profile", st);
    a->cuda = a->o.impl && !strcmp(a->o.impl, "cuda");
    if (a->ceiling_n < 0) a->ceiling_n = a->cuda ? 8192 : 2048;
    a->o.max_batch = (int)a->batch;
    a->o.seed = (uint64_t)a->seed;
    return -1;
}

/* The card's GEMM ceiling (GFLOP/s) in the run's precision, before the model takes its memory. */
static eva_status cuda_ceiling(double *ceiling, const profile_args *a, bool tty) {
    eva_precision prec = EVA_PREC_FP32;
    double tflops = 0;
    eva_status st = eva_precision_parse(&prec, a->o.precision ? a->o.precision : "fp32");
    if (st == EVA_OK) st = eva_backend_check(EVA_IMPL_CUDA, prec);
    if (st != EVA_OK) return st;
    if (tty)
        fprintf(stderr, "profile: measuring the GEMM ceiling (%ld^3, %s)...", a->ceiling_n, eva_precision_name(prec));
    const eva_backend_ops *ops = eva_backend_ops_for(EVA_IMPL_CUDA);
    st = ops && ops->gemm_ceiling ? ops->gemm_ceiling(prec, (int)a->ceiling_n, &tflops)
                                  : eva_fail(EVA_ERR_UNSUPPORTED, "--impl cuda: no GEMM ceiling measurement");
    if (tty) eva_bench_progress(NULL, 0, 0);
    *ceiling = tflops * 1e3;
    return st;
}

/* The reference SGEMM's ceiling (GFLOP/s) on this machine. */
static eva_status ref_ceiling(double *ceiling, const profile_args *a, bool tty) {
    if (tty) fprintf(stderr, "profile: measuring the GEMM ceiling (%ld^3)...", a->ceiling_n);
    eva_status st = eva_bench_gemm_ceiling(ceiling, (int)a->ceiling_n, 3);
    if (tty) eva_bench_progress(NULL, 0, 0);
    return st;
}

/* One line naming the attention kernel(s) this run takes. */
static void attention_line(const eva_bench_session *s, char *buf, size_t n) {
    if (eva_backend_attention_paths(s->impl, &s->cfg, s->precision, buf, n) != EVA_OK) snprintf(buf, n, "?");
}

static void print_header(const eva_bench_session *s, const eva_sysinfo *si, const profile_args *a, double ceiling) {
    printf("evabench profile: %s (config from %s), impl %s, %s, weights %s%s\n", s->cfg.name, s->config_source,
           eva_impl_name(s->impl), eva_precision_name(s->precision), s->weights_desc,
           a->o.weights ? "" : " (random weights: timings only)");
    printf("device: %s\nbuild: %s (%s), %s, %s, gemm kernel %s%s\n", s->device, si->version, si->git_rev,
           si->compiler, si->flags, eva_gemm_kernel_name(),
           si->sanitizers ? ", SANITIZERS (timings not meaningful)" : "");
    char att[512];
    attention_line(s, att, sizeof att);
    printf("attention: %s\n", att);
    const long n = a->ceiling_n;
    if (ceiling > 0 && a->cuda)
        printf("GEMM ceiling: %.1f TFLOP/s (cuBLASLt %ld^3 %s, best of 5, this card)\n", ceiling * 1e-3, n,
               eva_precision_name(s->precision));
    else if (ceiling > 0)
        printf("GEMM ceiling: %.1f GFLOP/s (reference SGEMM, %ldx%ldx%ld fp32, best of 3, this machine)\n", ceiling, n,
               n, n);
    else
        printf("GEMM ceiling: not measured (--ceiling 0)\n");
    if (a->cuda)
        printf("times: device time (CUDA events) between consecutive taps, median of %ld forwards after %ld "
               "warm-up; the forward's total is host wall clock (input upload included); GFLOP: matmul FLOPs (2 per "
               "multiply-add)\n",
               a->iters, a->warmup);
    else
        printf("times: wall time between consecutive taps, median of %ld forwards after %ld warm-up; GFLOP: matmul "
               "FLOPs (2 per multiply-add)\n",
               a->iters, a->warmup);
}

/* The JSON document without its profiles (an empty "profiles" array to fill). */
static cJSON *root_json(const eva_bench_session *s, const eva_sysinfo *si, const profile_args *a, double ceiling) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "evabench-profile/1");
    cJSON_AddStringToObject(root, "variant", s->cfg.name);
    cJSON_AddStringToObject(root, "impl", eva_impl_name(s->impl));
    cJSON_AddStringToObject(root, "precision", eva_precision_name(s->precision));
    cJSON_AddStringToObject(root, "weights", s->weights_desc);
    cJSON_AddStringToObject(root, "device", s->device);
    char att[512];
    attention_line(s, att, sizeof att);
    cJSON_AddStringToObject(root, "attention", att);
    cJSON_AddStringToObject(root, "timing",
                            a->cuda ? "cuda events between tap boundaries (device); total: host wall clock incl. upload"
                                    : "cpu wall clock between tap boundaries");
    if (ceiling > 0) {
        cJSON_AddNumberToObject(root, "gemm_ceiling_gflops", ceiling);
        char shape[64];
        snprintf(shape, sizeof shape, "%ldx%ldx%ld", a->ceiling_n, a->ceiling_n, a->ceiling_n);
        cJSON_AddStringToObject(root, "gemm_ceiling_shape", shape);
        cJSON_AddStringToObject(root, "gemm_ceiling_source", a->cuda ? "cuBLASLt" : "reference SGEMM");
    } else {
        cJSON_AddNullToObject(root, "gemm_ceiling_gflops");
        cJSON_AddNullToObject(root, "gemm_ceiling_shape");
        cJSON_AddNullToObject(root, "gemm_ceiling_source");
    }
    cJSON *env = eva_bench_env_json(si);
    cJSON_AddItemToObject(root, "host", cJSON_DetachItemFromObject(env, "host"));
    cJSON_AddItemToObject(root, "build", cJSON_DetachItemFromObject(env, "build"));
    cJSON_Delete(env);
    cJSON_AddArrayToObject(root, "profiles");
    return root;
}

/* One profile per tower: printed and added to root's "profiles". Returns the exit code. */
static int run_towers(eva_bench_session *s, const profile_args *a, double ceiling, cJSON *root, bool tty) {
    cJSON *profiles = cJSON_GetObjectItemCaseSensitive(root, "profiles");
    for (int t = 0; t < 2; t++) {
        if (!(a->o.towers & (1 << t))) continue;
        eva_profile p;
        eva_status st = eva_profile_run(&p, &s->backend, &s->cfg, (eva_bench_tower)t, (int)a->batch, (int)a->warmup,
                                        (int)a->iters, (uint64_t)a->seed, tty);
        if (st != EVA_OK) {
            fprintf(stderr, "evabench profile: %s tower: %s\n", t ? "text" : "image", eva_last_error());
            return eva_status_exit_code(st);
        }
        print_profile(&p, &s->cfg, ceiling, a->all);
        cJSON_AddItemToArray(profiles, profile_json(&p, ceiling));
        eva_profile_free(&p);
    }
    return 0;
}

int eva_cmd_profile(int argc, char **argv) {
    profile_args a;
    int rc = parse(&a, argc, argv);
    if (rc >= 0) return rc;
    const bool tty = isatty(2);
    double ceiling = 0; /* GFLOP/s */
    eva_status st = EVA_OK;
    if (a.cuda && a.ceiling_n > 0 && (st = cuda_ceiling(&ceiling, &a, tty)) != EVA_OK)
        return eva_cli_fail("profile", st);
#ifdef EVA_HAVE_OPENMP
    if (a.threads > 0) omp_set_num_threads((int)a.threads);
#endif
    eva_sysinfo si;
    eva_sysinfo_get(&si);
    eva_bench_session s;
    st = eva_bench_session_open(&s, &a.o);
    if (st == EVA_OK && !a.cuda && a.ceiling_n > 0) st = ref_ceiling(&ceiling, &a, tty);
    if (st != EVA_OK) {
        rc = eva_cli_fail("profile", st);
        eva_bench_session_close(&s);
        return rc;
    }
    print_header(&s, &si, &a, ceiling);
    cJSON *root = root_json(&s, &si, &a, ceiling);
    rc = run_towers(&s, &a, ceiling, root, tty);
    if (rc == 0 && a.json && (st = eva_bench_write_json(a.json, root)) != EVA_OK) {
        fprintf(stderr, "evabench profile: %s\n", eva_last_error());
        rc = 2;
    }
    cJSON_Delete(root);
    eva_bench_session_close(&s);
    return rc;
}
