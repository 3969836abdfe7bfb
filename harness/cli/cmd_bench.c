/* cmd_bench.c: `evabench bench`: latency, throughput and memory of a tower at one batch or a sweep.
 *
 * Decisions:
 * - The memory a run needs (fp32 weights + the largest batch's activations + inputs + a fixed
 *   allowance) is computed before anything large is allocated; a run that cannot fit is refused
 *   with the bytes needed and available (exit 2), never left to the OOM killer.
 * - Random weights (seeded) unless --weights; the header line and every record say which.
 * - Each (tower, batch) gets its own warm-up, a finiteness check of the features ("validate, then
 *   time"), then --iters timed forwards over rotating input batches (distinct buffers, together
 *   larger than the caches). Median and p90 (nearest rank) of the per-forward wall times.
 * - Peak host memory is the peak RSS of the measurement (VmHWM reset before each one where the
 *   kernel allows; the record says "measurement" or "process"). Peak device memory is null for the
 *   reference.
 */
#include <errno.h>
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

static const char *bench_usage =
    "usage: evabench bench [--variant NAME | --config C.json] [--weights W.safetensors] [--impl ref|cuda]\n"
    "                      [--precision fp32|tf32|bf16|fp16] [--tower image|text|both] [--batch N | N,N,...]\n"
    "                      [--warmup N] [--iters N] [--threads N] [--seed S] [--json OUT.json] [--jsonl FILE]\n"
    "                      [--quiet]\n"
    "\n"
    "Times forward passes of a tower and reports median and p90 latency, throughput (items/s), achieved\n"
    "GFLOP/s (model FLOPs / median time), peak host RSS and peak device memory (null without a GPU).\n"
    "Without --weights the model has random weights (--seed), and the output says so. Before\n"
    "allocating, the memory the run needs is compared with what is available; a run that cannot fit\n"
    "is refused with the bytes needed and available (exit 2).\n"
    "\n"
    "  --variant NAME       built-in variant (official or open_clip name)\n"
    "  --config C.json      config JSON instead of --variant\n"
    "  --weights W          safetensors weights (config from --variant/--config or its metadata)\n"
    "  --impl ref|cuda      implementation (default ref)\n"
    "  --precision P        fp32 (default); tf32, bf16, fp16 with --impl cuda\n"
    "  --tower T            image (default), text or both\n"
    "  --batch LIST         batch size or comma-separated sweep, e.g. 1,8,64,256 (default 1)\n"
    "  --warmup N           untimed forwards per batch (default 1)\n"
    "  --iters N            timed forwards per batch (default 5)\n"
    "  --threads N          OpenMP threads of the reference (default: all)\n"
    "  --seed S             seed of the random weights and inputs (default 0)\n"
    "  --json OUT.json      write the records (a JSON array) to OUT.json\n"
    "  --jsonl FILE         append each record as one JSON line to FILE (e.g. reports/bench.jsonl)\n"
    "  --quiet              no table on stdout\n"
    "\n"
    "Exit status: 0 ok, 1 a forward produced non-finite features, 2 bad usage or input or a run that\n"
    "does not fit in memory, 3 internal failure.\n";

#define MAX_BATCHES 32

/* "1,8,64" -> batches; false on anything else. */
static bool parse_batches(const char *s, int *b, int *n) {
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

static double mib(int64_t b) { return b < 0 ? 0.0 : (double)b / (1024.0 * 1024.0); }

int eva_cmd_bench(int argc, char **argv) {
    eva_bench_setup o = {"bench", NULL, NULL, NULL, NULL, NULL, 0, 1, 1};
    const char *tower_s = "image", *batch_s = "1", *json_out = NULL, *jsonl_out = NULL;
    long warmup = 1, iters = 5, threads = 0, seed = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(bench_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
            continue;
        }
#define OPT(name, dst)                                                              \
    if ((r = eva_cli_opt_value(argc, argv, &i, name, &v)) != 0) {                           \
        if (r < 0) {                                                                \
            fprintf(stderr, "evabench bench: %s needs a value\n%s", name, bench_usage); \
            return 2;                                                               \
        }                                                                           \
        dst = v;                                                                    \
        continue;                                                                   \
    }
        const char *num = NULL;
        OPT("--variant", o.variant)
        OPT("--config", o.config)
        OPT("--weights", o.weights)
        OPT("--impl", o.impl)
        OPT("--precision", o.precision)
        OPT("--tower", tower_s)
        OPT("--batch", batch_s)
        OPT("--json", json_out)
        OPT("--jsonl", jsonl_out)
        if ((r = eva_cli_opt_value(argc, argv, &i, "--warmup", &num)) != 0) {
            if (r < 0 || !eva_cli_parse_long(num, 0, 100000, &warmup)) {
                fprintf(stderr, "evabench bench: --warmup '%s': expected an integer >= 0\n", num ? num : "");
                return 2;
            }
            continue;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--iters", &num)) != 0) {
            if (r < 0 || !eva_cli_parse_long(num, 1, 1000000, &iters)) {
                fprintf(stderr, "evabench bench: --iters '%s': expected an integer >= 1\n", num ? num : "");
                return 2;
            }
            continue;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--threads", &num)) != 0) {
            if (r < 0 || !eva_cli_parse_long(num, 1, 4096, &threads)) {
                fprintf(stderr, "evabench bench: --threads '%s': expected an integer >= 1\n", num ? num : "");
                return 2;
            }
            continue;
        }
        if ((r = eva_cli_opt_value(argc, argv, &i, "--seed", &num)) != 0) {
            if (r < 0 || !eva_cli_parse_long(num, 0, 2147483647L, &seed)) {
                fprintf(stderr, "evabench bench: --seed '%s': expected an integer >= 0\n", num ? num : "");
                return 2;
            }
            continue;
        }
#undef OPT
        fprintf(stderr, "evabench bench: unknown option '%s'\n%s", argv[i], bench_usage);
        return 2;
    }
    if (!strcmp(tower_s, "image"))
        o.towers = 1;
    else if (!strcmp(tower_s, "text"))
        o.towers = 2;
    else if (!strcmp(tower_s, "both"))
        o.towers = 3;
    else {
        fprintf(stderr, "evabench bench: --tower '%s': expected image, text or both\n", tower_s);
        return 2;
    }
    int batches[MAX_BATCHES], nb = 0;
    if (!parse_batches(batch_s, batches, &nb)) {
        fprintf(stderr,
                "evabench bench: --batch '%s': expected a positive integer or a comma-separated list of at most %d\n",
                batch_s, MAX_BATCHES);
        return 2;
    }
    o.max_batch = 1;
    for (int i = 0; i < nb; i++)
        if (batches[i] > o.max_batch) o.max_batch = batches[i];
    o.seed = (uint64_t)seed;
    if (threads > 0) {
#ifdef EVA_HAVE_OPENMP
        omp_set_num_threads((int)threads);
#else
        if (threads > 1) fprintf(stderr, "evabench bench: --threads ignored (built without OpenMP)\n");
#endif
    }

    eva_sysinfo si;
    eva_sysinfo_get(&si);
    eva_bench_session s;
    eva_status st = eva_bench_session_open(&s, &o);
    if (st != EVA_OK) {
        fprintf(stderr, "evabench bench: %s\n", eva_last_error());
        eva_bench_session_close(&s);
        return eva_status_exit_code(st);
    }
    if (!quiet) {
        printf("evabench bench: %s (config from %s), impl %s, %s, weights %s%s\n", s.cfg.name, s.config_source,
               eva_impl_name(s.impl), eva_precision_name(s.precision), s.weights_desc,
               o.weights ? "" : " (random weights: timings only, outputs meaningless)");
        printf("device: %s\nbuild: %s (%s), %s, %s, gemm kernel %s%s\n", s.device, si.version, si.git_rev,
               si.compiler, si.flags, eva_gemm_kernel_name(),
               si.sanitizers ? ", SANITIZERS (timings not meaningful)" : "");
        printf("memory: fp32 weights %.1f MiB, largest batch activations %.1f MiB, inputs %.1f MiB; %.1f MiB "
               "available\n\n",
               mib(s.plan.weight_bytes), mib(s.plan.activation_bytes), mib(s.plan.input_bytes),
               mib(s.plan.available_bytes));
        printf("%-6s %6s %6s %11s %11s %11s %10s %12s %12s\n", "tower", "batch", "iters", "median ms", "p90 ms",
               "items/s", "GFLOP/s", "peak RSS MiB", "device MiB");
        fflush(stdout);
    }
    cJSON *all = cJSON_CreateArray();
    int rc = 0;
    bool tty = isatty(2);
    for (int t = 0; t < 2 && rc == 0; t++) {
        if (!(o.towers & (1 << t))) continue;
        for (int k = 0; k < nb && rc == 0; k++) {
            eva_bench_record rec;
            memset(&rec, 0, sizeof rec);
            snprintf(rec.variant, sizeof rec.variant, "%s", s.cfg.name);
            rec.impl = eva_impl_name(s.impl);
            rec.precision = eva_precision_name(s.precision);
            snprintf(rec.weights, sizeof rec.weights, "%s", s.weights_desc);
            snprintf(rec.device, sizeof rec.device, "%s", s.device);
            rec.baseline_host_bytes = s.baseline_rss;
            rec.weight_bytes = s.plan.weight_bytes;
            st = eva_bench_measure(&rec, &s.backend, &s.cfg, (eva_bench_tower)t, batches[k], (int)warmup, (int)iters,
                                   (uint64_t)seed, tty);
            if (st != EVA_OK) {
                fprintf(stderr, "evabench bench: %s tower batch %d: %s\n", t ? "text" : "image", batches[k],
                        eva_last_error());
                rc = eva_status_exit_code(st);
                break;
            }
            rec.peak_device_bytes = eva_bench_session_peak_device(&s);
            if (!quiet) {
                char dev[24];
                if (rec.peak_device_bytes < 0)
                    snprintf(dev, sizeof dev, "null");
                else
                    snprintf(dev, sizeof dev, "%.1f", mib(rec.peak_device_bytes));
                printf("%-6s %6d %6d %11.2f %11.2f %11.2f %10.1f %12.1f %12s\n", eva_bench_tower_name(rec.tower),
                       rec.batch, rec.iters, rec.t.median_ms, rec.t.p90_ms, rec.throughput, rec.achieved_gflops,
                       mib(rec.peak_host_bytes), dev);
                fflush(stdout);
            }
            cJSON *j = eva_bench_record_json(&rec, &si);
            if (jsonl_out && (st = eva_bench_append_jsonl(jsonl_out, j)) != EVA_OK) {
                fprintf(stderr, "evabench bench: %s\n", eva_last_error());
                rc = 2;
            }
            cJSON_AddItemToArray(all, j);
        }
    }
    if (rc == 0 && json_out && (st = eva_bench_write_json(json_out, all)) != EVA_OK) {
        fprintf(stderr, "evabench bench: %s\n", eva_last_error());
        rc = 2;
    }
    if (rc == 0 && !quiet) {
        printf("\nmedian/p90: wall time per forward over %ld timed iterations after %ld warm-up; items/s = batch / "
               "median; GFLOP/s = model GFLOPs (%.2f per image, %.2f per text) x batch / median\n",
               iters, warmup, eva_config_gflops_image(&s.cfg), eva_config_gflops_text(&s.cfg));
    }
    cJSON_Delete(all);
    eva_bench_session_close(&s);
    return rc;
}
