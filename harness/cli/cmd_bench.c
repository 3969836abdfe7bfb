/* cmd_bench.c: `evabench bench`: latency, throughput and memory of a tower at one batch or a sweep.
 * Parse -> open the session (harness/lib/bench.h) -> measure each (tower, batch) -> table and JSON.
 *
 * Decisions:
 * - The memory a run needs (the weights as held: a file's matrices mapped in its dtype, the rest
 *   fp32; + the largest batch's activations + inputs + a fixed allowance) is computed before
 *   anything large is allocated; a run that cannot fit is refused
 *   with the bytes needed and available (exit 2), never left to the OOM killer.
 * - Random weights (seeded) unless --weights; the header line and every record say which.
 * - Each (tower, batch) gets its own warm-up, a finiteness check of the features ("validate, then
 *   time"), then --iters timed forwards over rotating input batches (distinct buffers, together
 *   larger than the caches). Median and p90 (nearest rank) of the per-forward wall times.
 * - Peak host memory is the peak RSS of the measurement (VmHWM reset before each one where the
 *   kernel allows; the record says "measurement" or "process"). Peak device memory is null for the
 *   reference.
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

#define MAX_BATCHES 32

typedef struct {
    eva_bench_setup o;
    const char *tower, *batch, *threads_s, *json, *jsonl;
    long warmup, iters, seed;
    bool quiet;
    int batches[MAX_BATCHES], nb;
    int threads[MAX_BATCHES], nt; /* nt 0: the default thread count */
} bench_args;

/* "1,8,64" -> b[]; false on anything else. */
static bool parse_list(const char *s, int *b, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char tok[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof tok || *n >= MAX_BATCHES) return false;
        memcpy(tok, p, len);
        tok[len] = '\0';
        long v;
        if (!eva_cli_parse_long(tok, 1, 1 << 20, &v)) return false;
        b[(*n)++] = (int)v;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) return false;
        }
    }
    return *n > 0;
}

/* Options, then the values that need more than a range check (--tower, --batch). */
static int parse(bench_args *a, int argc, char **argv) {
    *a = (bench_args){.o = {"bench", NULL, NULL, NULL, NULL, NULL, 0, 1, 1}, .tower = "image", .batch = "1",
                      .warmup = 1, .iters = 5};
    const eva_opt opts[] = {
        EVA_ARG_STR("--variant", &a->o.variant, "NAME", "built-in variant (official or open_clip name)"),
        EVA_ARG_STR("--config", &a->o.config, "C.json", "config JSON instead of --variant"),
        EVA_ARG_STR("--weights", &a->o.weights, "W",
                    "safetensors weights (config from --variant/--config or its metadata)"),
        EVA_ARG_STR("--impl", &a->o.impl, "ref|cuda", "implementation (default ref)"),
        EVA_ARG_STR("--precision", &a->o.precision, "P", "fp32 (default); tf32, bf16, fp16 with --impl cuda"),
        EVA_ARG_STR("--tower", &a->tower, "T", "image (default), text or both"),
        EVA_ARG_STR("--batch", &a->batch, "LIST", "batch size or comma-separated sweep, e.g. 1,8,64,256 (default 1)"),
        EVA_ARG_LONG("--warmup", &a->warmup, "N", "untimed forwards per batch (default 1)", 0, 100000),
        EVA_ARG_LONG("--iters", &a->iters, "N", "timed forwards per batch (default 5)", 1, 1000000),
        EVA_ARG_STR("--threads", &a->threads_s, "LIST",
                    "threads of the reference, or a comma-separated sweep such as 1,2 (default: all CPUs)"),
        EVA_ARG_LONG("--seed", &a->seed, "S", "seed of the random weights and inputs (default 0)", 0, 2147483647L),
        EVA_ARG_STR("--json", &a->json, "OUT.json", "write the records (a JSON array) to OUT.json"),
        EVA_ARG_STR("--jsonl", &a->jsonl, "FILE", "append each record as one JSON line to FILE"),
        EVA_ARG_FLAG("--quiet", &a->quiet, "no table on stdout"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "bench",
        "usage: evabench bench [--variant NAME | --config C.json] [--weights W.safetensors] [--impl ref|cuda]\n"
        "                      [--precision fp32|tf32|bf16|fp16] [--tower image|text|both] [--batch N | N,N,...]\n"
        "                      [--warmup N] [--iters N] [--threads N | N,N,...] [--seed S] [--json OUT.json]\n"
        "                      [--jsonl FILE] [--quiet]\n"
        "\n"
        "Times forward passes of a tower and reports median and p90 latency, throughput (items/s), achieved\n"
        "GFLOP/s (model FLOPs / median time), peak host RSS and peak device memory (null without a GPU).\n"
        "Without --weights the model has random weights (--seed), and the output says so. Before\n"
        "allocating, the memory the run needs is compared with what is available; a run that cannot fit\n"
        "is refused with the bytes needed and available (exit 2).\n",
        opts, NULL,
        "Exit status: 0 ok, 1 a forward produced non-finite features, 2 bad usage or input or a run that\n"
        "does not fit in memory, 3 internal failure.\n"};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r >= 0) return r;
    eva_status st = eva_bench_towers_parse(&a->o.towers, a->tower);
    if (st != EVA_OK) return eva_cli_fail("bench", st);
    if (!parse_list(a->batch, a->batches, &a->nb))
        return eva_cli_usage_error("bench", "--batch '%s': expected a positive integer or a comma-separated list of "
                                            "at most %d", a->batch, MAX_BATCHES);
    for (int i = 0; i < a->nb; i++)
        if (a->batches[i] > a->o.max_batch) a->o.max_batch = a->batches[i];
    if (a->threads_s && !parse_list(a->threads_s, a->threads, &a->nt))
        return eva_cli_usage_error("bench", "--threads '%s': expected a positive integer or a comma-separated list "
                                            "of at most %d", a->threads_s, MAX_BATCHES);
    for (int i = 0; i < a->nt; i++)
        if (a->threads[i] > 4096)
            return eva_cli_usage_error("bench", "--threads %d: at most 4096", a->threads[i]);
    a->o.seed = (uint64_t)a->seed;
    return -1;
}

static void set_threads(int threads) {
    if (threads <= 0) return;
#ifdef EVA_HAVE_OPENMP
    omp_set_num_threads(threads);
#else
    if (threads > 1) fprintf(stderr, "evabench bench: --threads ignored (built without OpenMP)\n");
#endif
}

static double mib(int64_t b) { return b < 0 ? 0.0 : (double)b / (1024.0 * 1024.0); }

static void print_header(const eva_bench_session *s, const eva_sysinfo *si, bool random_weights) {
    printf("evabench bench: %s (config from %s), impl %s, %s, weights %s%s\n", s->cfg.name, s->config_source,
           eva_impl_name(s->impl), eva_precision_name(s->precision), s->weights_desc,
           random_weights ? " (random weights: timings only, outputs meaningless)" : "");
    printf("device: %s\nbuild: %s (%s), %s, %s, gemm kernel %s%s\n", s->device, si->version, si->git_rev,
           si->compiler, si->flags, eva_gemm_kernel_name(),
           si->sanitizers ? ", SANITIZERS (timings not meaningful)" : "");
    char mem[600];
    eva_bench_plan_describe(&s->plan, mem, sizeof mem);
    printf("memory: %s\n\n", mem);
    printf("%-6s %6s %6s %11s %11s %11s %10s %12s %12s\n", "tower", "batch", "iters", "median ms", "p90 ms",
           "items/s", "GFLOP/s", "peak RSS MiB", "device MiB");
    fflush(stdout);
}

static void print_row(const eva_bench_record *rec) {
    char dev[24];
    if (rec->peak_device_bytes < 0)
        snprintf(dev, sizeof dev, "null");
    else
        snprintf(dev, sizeof dev, "%.1f", mib(rec->peak_device_bytes));
    printf("%-6s %6d %6d %11.2f %11.2f %11.2f %10.1f %12.1f %12s\n", eva_bench_tower_name(rec->tower), rec->batch,
           rec->iters, rec->t.median_ms, rec->t.p90_ms, rec->throughput, rec->achieved_gflops,
           mib(rec->peak_host_bytes), dev);
    fflush(stdout);
}

/* One (tower, batch) measurement into rec. */
static eva_status measure(eva_bench_record *rec, eva_bench_session *s, const bench_args *a, int t, int batch,
                          bool tty) {
    memset(rec, 0, sizeof *rec);
    snprintf(rec->variant, sizeof rec->variant, "%s", s->cfg.name);
    rec->impl = eva_impl_name(s->impl);
    rec->precision = eva_precision_name(s->precision);
    snprintf(rec->weights, sizeof rec->weights, "%s", s->weights_desc);
    snprintf(rec->device, sizeof rec->device, "%s", s->device);
    rec->baseline_host_bytes = s->baseline_rss;
    rec->weight_bytes = s->plan.weight_bytes;
    eva_status st = eva_bench_measure(rec, &s->backend, &s->cfg, (eva_bench_tower)t, batch, (int)a->warmup,
                                      (int)a->iters, (uint64_t)a->seed, tty);
    rec->peak_device_bytes = eva_bench_session_peak_device(s);
    return st;
}

/* Every (tower, batch): a table row, a record in `all` and a --jsonl line. Returns the exit code. */
static int run_sweep(eva_bench_session *s, const bench_args *a, const eva_sysinfo *si, cJSON *all) {
    const bool tty = isatty(2);
    for (int t = 0; t < 2; t++) {
        if (!(a->o.towers & (1 << t))) continue;
        for (int k = 0; k < a->nb; k++) {
            eva_bench_record rec;
            eva_status st = measure(&rec, s, a, t, a->batches[k], tty);
            if (st != EVA_OK) {
                fprintf(stderr, "evabench bench: %s tower batch %d: %s\n", t ? "text" : "image", a->batches[k],
                        eva_last_error());
                return eva_status_exit_code(st);
            }
            if (!a->quiet) print_row(&rec);
            cJSON *j = eva_bench_record_json(&rec, si);
            cJSON_AddItemToArray(all, j);
            if (a->jsonl && eva_bench_append_jsonl(a->jsonl, j) != EVA_OK) {
                fprintf(stderr, "evabench bench: %s\n", eva_last_error());
                return 2;
            }
        }
    }
    return 0;
}

/* The sweep at each --threads count (a header line per count when there are several). */
static int run_threads(eva_bench_session *s, const bench_args *a, eva_sysinfo *si, cJSON *all) {
    if (a->nt == 0) return run_sweep(s, a, si, all);
    for (int i = 0; i < a->nt; i++) {
        set_threads(a->threads[i]);
        eva_bench_session_describe_host(s);
        eva_sysinfo_get(si);
        if (!a->quiet && a->nt > 1) printf("threads %d: %s\n", a->threads[i], s->device);
        int rc = run_sweep(s, a, si, all);
        if (rc != 0) return rc;
    }
    return 0;
}

int eva_cmd_bench(int argc, char **argv) {
    bench_args a;
    int rc = parse(&a, argc, argv);
    if (rc >= 0) return rc;
    int most = 0; /* the largest count first: anything sized by the thread count at open fits them all */
    for (int i = 0; i < a.nt; i++) most = a.threads[i] > most ? a.threads[i] : most;
    set_threads(most);
    eva_sysinfo si;
    eva_sysinfo_get(&si);
    eva_bench_session s;
    eva_status st = eva_bench_session_open(&s, &a.o);
    if (st != EVA_OK) {
        rc = eva_cli_fail("bench", st);
        eva_bench_session_close(&s);
        return rc;
    }
    if (!a.quiet) print_header(&s, &si, !a.o.weights);
    cJSON *all = cJSON_CreateArray();
    rc = run_threads(&s, &a, &si, all);
    if (rc == 0 && a.json && (st = eva_bench_write_json(a.json, all)) != EVA_OK) {
        fprintf(stderr, "evabench bench: %s\n", eva_last_error());
        rc = 2;
    }
    if (rc == 0 && !a.quiet)
        printf("\nmedian/p90: wall time per forward over %ld timed iterations after %ld warm-up; items/s = batch / "
               "median; GFLOP/s = model GFLOPs (%.2f per image, %.2f per text) x batch / median\n",
               a.iters, a.warmup, eva_config_gflops_image(&s.cfg), eva_config_gflops_text(&s.cfg));
    cJSON_Delete(all);
    eva_bench_session_close(&s);
    return rc;
}
