/* bench.c: memory plan, rotating inputs, timing loops, profiles, GEMM ceiling, JSON records. */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eva_tensors.h"
#include "ref_gemm.h"
#include "ref_model.h"
#include "ref_ops.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define OVERHEAD_BYTES ((int64_t)96 << 20) /* process image, libraries, packing buffers */
#define ROTATION_TARGET_BYTES ((int64_t)4 << 20) /* inputs together larger than both L2s here */

const char *eva_bench_tower_name(eva_bench_tower t) { return t == EVA_BENCH_TEXT ? "text" : "image"; }

eva_status eva_bench_towers_parse(int *towers, const char *s) {
    static const char *const names[] = {"image", "text", "both"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i])) {
            *towers = i + 1;
            return EVA_OK;
        }
    return eva_fail(EVA_ERR_INVALID_ARG, "--tower '%s': expected image, text or both", s ? s : "");
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* The largest packing allocation the reference's SGEMM makes during a forward (linear layers,
 * and the per-thread buffers of attention). */
static int64_t gemm_alloc_bytes(const eva_config *cfg, eva_bench_tower tower, int batch) {
    const int th = eva_ref_threads();
    int64_t mx = 0;
#define SHAPE(M, C, K)                                                            \
    do {                                                                          \
        int64_t b_ = eva_gemm_nt_alloc_bytes((int)(M), (int)(C), (int)(K), th);   \
        if (b_ > mx) mx = b_;                                                     \
    } while (0)
    int N, D, F, d;
    int64_t rows;
    if (tower == EVA_BENCH_TEXT) {
        const eva_text_config *t = &cfg->text;
        N = t->context_length, D = t->width, F = t->mlp_hidden, d = t->heads > 0 ? t->width / t->heads : 1;
        rows = (int64_t)batch * N;
        SHAPE(rows, 3 * D, D);
        SHAPE(rows, F, D);
        SHAPE(rows, D, F);
    } else {
        const eva_vision_config *v = &cfg->vision;
        int G = v->patch_size > 0 ? v->image_size / v->patch_size : 0;
        N = G * G + 1, D = v->width, F = v->mlp_hidden, d = v->head_dim;
        rows = (int64_t)batch * N;
        SHAPE(rows, v->qkv == EVA_QKV_FUSED ? 3 * D : D, D);
        SHAPE(rows, F, D);
        SHAPE(rows, D, F);
        SHAPE((int64_t)batch * G * G, D, 3 * v->patch_size * v->patch_size);
    }
#undef SHAPE
    int64_t a1 = eva_gemm_scratch_floats(N, d), a2 = eva_gemm_scratch_floats(N, N);
    int64_t attn = (a1 > a2 ? a1 : a2) * (int64_t)sizeof(float) * th;
    return mx > attn ? mx : attn;
}

int64_t eva_bench_activation_bytes(const eva_config *cfg, eva_bench_tower tower, int batch) {
    int64_t f = tower == EVA_BENCH_TEXT ? eva_ref_text_workspace_floats(cfg, batch)
                                        : eva_ref_image_workspace_floats(cfg, batch);
    return f * (int64_t)sizeof(float) + gemm_alloc_bytes(cfg, tower, batch);
}

static int64_t input_floats(const eva_config *cfg, eva_bench_tower tower, int batch) {
    if (tower == EVA_BENCH_TEXT) return (int64_t)batch * cfg->text.context_length; /* int32 ids */
    int64_t S = cfg->vision.image_size;
    return (int64_t)batch * 3 * S * S;
}

int eva_bench_rotation(const eva_config *cfg, eva_bench_tower tower, int batch) {
    int64_t bytes = input_floats(cfg, tower, batch) * 4;
    int64_t n = bytes > 0 ? (ROTATION_TARGET_BYTES + bytes - 1) / bytes : 2;
    if (n < 2) n = 2;
    if (n > 16) n = 16;
    return (int)n;
}

static int64_t inputs_bytes(const eva_config *cfg, eva_bench_tower tower, int batch) {
    return (int64_t)eva_bench_rotation(cfg, tower, batch) * input_floats(cfg, tower, batch) * 4 +
           (int64_t)batch * cfg->embed_dim * 4;
}

eva_status eva_bench_plan_memory(eva_mem_plan *p, const eva_config *cfg, int towers, int max_batch,
                                 const char *weights) {
    memset(p, 0, sizeof *p);
    p->device_bytes = p->device_free_bytes = -1;
    eva_weights_bytes wb;
    eva_status st = eva_model_plan_bytes(&wb, weights, cfg);
    if (st != EVA_OK) return st;
    p->weight_arena_bytes = wb.arena_bytes;
    p->weight_mapped_dtype = wb.mapped_dtype;
    int64_t block = 0; /* the largest block's mapped bytes among the towers run (about: blocks are alike) */
    for (int t = 0; t < 2; t++) {
        if (!(towers & (1 << t))) continue;
        p->weight_mapped_bytes += wb.mapped_bytes[t];
        int n = t == EVA_BENCH_IMAGE ? cfg->vision.depth : cfg->text.layers;
        int64_t b = n > 0 ? wb.mapped_bytes[t] / n : wb.mapped_bytes[t];
        if (b > block) block = b;
        int64_t a = eva_bench_activation_bytes(cfg, (eva_bench_tower)t, max_batch);
        int64_t in = inputs_bytes(cfg, (eva_bench_tower)t, max_batch);
        if (a + in > p->activation_bytes + p->input_bytes) p->activation_bytes = a, p->input_bytes = in;
    }
    p->weight_mapped_bytes += wb.mapped_bytes[EVA_TOWER_TOP];
    p->weight_bytes = p->weight_arena_bytes + p->weight_mapped_bytes;
    p->overhead_bytes = OVERHEAD_BYTES;
    p->total_bytes = p->weight_bytes + p->activation_bytes + p->input_bytes + p->overhead_bytes;
    p->resident_min_bytes = p->total_bytes - p->weight_mapped_bytes + 2 * block;
    p->available_bytes = eva_mem_available();
    return EVA_OK;
}

static const char *mapped_dtype_name(int dt) {
    return dt < 0 ? "mixed-dtype" : eva_dtype_name((eva_dtype)dt);
}

eva_status eva_bench_check_memory(eva_mem_plan *p, const char *what) {
    p->weights_paged = false;
    if (p->available_bytes >= 0 && p->total_bytes > p->available_bytes && p->weight_mapped_bytes > 0 &&
        p->resident_min_bytes <= p->available_bytes)
        p->weights_paged = true; /* runs, reading the mapped weights from the file on every forward */
    else if (p->available_bytes >= 0 && p->total_bytes > p->available_bytes) {
        char w[160];
        if (p->weight_mapped_bytes > 0)
            snprintf(w, sizeof w, "weights %.2f GiB (%s mapped from the file %.2f GiB + owned %.2f GiB)",
                     p->weight_bytes / GIB, mapped_dtype_name(p->weight_mapped_dtype), p->weight_mapped_bytes / GIB,
                     p->weight_arena_bytes / GIB);
        else
            snprintf(w, sizeof w, "fp32 weights %.2f GiB", p->weight_bytes / GIB);
        char paged[120] = "";
        if (p->weight_mapped_bytes > 0)
            snprintf(paged, sizeof paged, "; at least %.2f GiB with the mapped weights read through the page cache",
                     p->resident_min_bytes / GIB);
        return eva_fail(EVA_ERR_NOMEM,
                        "%s: needs %.2f GiB (%lld bytes: %s + activations %.2f GiB + inputs %.2f GiB + overhead "
                        "%.2f GiB%s), %.2f GiB (%lld bytes) available",
                        what, p->total_bytes / GIB, (long long)p->total_bytes, w, p->activation_bytes / GIB,
                        p->input_bytes / GIB, p->overhead_bytes / GIB, paged, p->available_bytes / GIB,
                        (long long)p->available_bytes);
    }
    if (p->device_bytes >= 0 && p->device_free_bytes >= 0 && p->device_bytes > p->device_free_bytes)
        return eva_fail(EVA_ERR_NOMEM, "%s: needs %.2f GiB (%lld bytes) of device memory, %.2f GiB (%lld bytes) free",
                        what, p->device_bytes / GIB, (long long)p->device_bytes, p->device_free_bytes / GIB,
                        (long long)p->device_free_bytes);
    return EVA_OK;
}

void eva_bench_plan_describe(const eva_mem_plan *p, char *buf, size_t n) {
    const double M = 1024.0 * 1024.0;
    int k;
    if (p->weight_mapped_bytes > 0)
        k = snprintf(buf, n, "weights %.1f MiB held (%s %.1f MiB mapped from the file, %.1f MiB owned)",
                     p->weight_bytes / M, mapped_dtype_name(p->weight_mapped_dtype), p->weight_mapped_bytes / M,
                     p->weight_arena_bytes / M);
    else
        k = snprintf(buf, n, "fp32 weights %.1f MiB", p->weight_bytes / M);
    if (k < 0 || (size_t)k >= n) return;
    int k2 = snprintf(buf + k, n - (size_t)k,
                      ", largest batch activations %.1f MiB, inputs %.1f MiB; %.1f MiB available%s",
                      p->activation_bytes / M, p->input_bytes / M, p->available_bytes / M,
                      p->weights_paged ? " (the mapped weights do not fit: read from the file through the page "
                                         "cache on every forward, timings include the disk)"
                                       : "");
    (void)k2;
}

/* ---- session ---------------------------------------------------------------------------------- */

/* The device half of the memory plan: where the implementation has a device, the bytes it needs
 * there and the bytes free replace the host's activation share. */
static eva_status plan_device(eva_bench_session *s, const eva_backend_ops *ops, int max_batch,
                              const char *weights) {
    if (!ops || !ops->plan_device) return EVA_OK;
    eva_status st = ops->plan_device(&s->cfg, s->precision, max_batch, s->device, sizeof s->device,
                                     &s->plan.device_bytes, &s->plan.device_free_bytes);
    if (st != EVA_OK) return st;
    eva_mem_plan all; /* the upload reads both towers' weights once */
    if ((st = eva_bench_plan_memory(&all, &s->cfg, 3, 1, weights)) != EVA_OK) return st;
    s->plan.weight_mapped_bytes = all.weight_mapped_bytes;
    s->plan.weight_bytes = s->plan.weight_arena_bytes + s->plan.weight_mapped_bytes;
    s->plan.activation_bytes = 0; /* on the device */
    s->plan.total_bytes = s->plan.weight_bytes + s->plan.input_bytes + s->plan.overhead_bytes;
    s->plan.resident_min_bytes = s->plan.total_bytes - s->plan.weight_mapped_bytes;
    return EVA_OK;
}

void eva_bench_session_describe_host(eva_bench_session *s) {
    if (s->impl != EVA_IMPL_REF) return;
    eva_sysinfo si;
    eva_sysinfo_get(&si);
    snprintf(s->device, sizeof s->device, "cpu: %s (%d threads, %d CPUs)", si.cpu_model, si.omp_threads,
             si.cpus_online);
}

eva_status eva_bench_session_open(eva_bench_session *s, const eva_bench_setup *o) {
    memset(s, 0, sizeof *s);
    eva_status st = eva_backend_select(&s->impl, &s->precision, o->impl, o->precision);
    if (st == EVA_OK)
        st = eva_resolve_config(&s->cfg, &s->config_source, o->config, o->variant, NULL, NULL, o->weights);
    if (st == EVA_OK) st = eva_bench_plan_memory(&s->plan, &s->cfg, o->towers, o->max_batch, o->weights);
    if (st != EVA_OK) return st;
    const eva_backend_ops *ops = eva_backend_ops_for(s->impl);
    if ((st = plan_device(s, ops, o->max_batch, o->weights)) != EVA_OK) return st;
    char what[400];
    snprintf(what, sizeof what, "%s %s at batch %d", s->cfg.name, eva_precision_name(s->precision), o->max_batch);
    if ((st = eva_bench_check_memory(&s->plan, what)) != EVA_OK) return st;
    if (!ops->plan_device) eva_bench_session_describe_host(s);
    s->baseline_rss = eva_current_rss();
    if (o->weights) {
        st = eva_model_load(&s->model, o->weights, &s->cfg);
        snprintf(s->weights_desc, sizeof s->weights_desc, "%s", o->weights);
    } else {
        st = eva_model_init_random(&s->model, &s->cfg, o->seed);
        snprintf(s->weights_desc, sizeof s->weights_desc, "random(seed=%llu)", (unsigned long long)o->seed);
    }
    if (st != EVA_OK) return st;
    return eva_backend_open(&s->backend, ops, s->impl, s->precision, &s->model, o->max_batch);
}

int64_t eva_bench_session_peak_device(const eva_bench_session *s) {
    return eva_backend_peak_device_bytes(&s->backend);
}

void eva_bench_session_close(eva_bench_session *s) {
    eva_backend_close(&s->backend);
    eva_model_free(&s->model);
}

/* ---- inputs ---------------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void *bench_malloc(size_t n) { return malloc(n); }

eva_status eva_bench_inputs_make(eva_bench_inputs *in, const eva_backend *b, const eva_config *cfg,
                                 eva_bench_tower tower, int batch, uint64_t seed) {
    memset(in, 0, sizeof *in);
    const bool own = b && b->ops && b->ops->host_alloc && b->ops->host_free;
    void *(*alloc)(size_t) = own ? b->ops->host_alloc : bench_malloc;
    in->release = own ? b->ops->host_free : free;
    in->tower = tower;
    in->batch = batch;
    in->count = eva_bench_rotation(cfg, tower, batch);
    int64_t n = input_floats(cfg, tower, batch);
    uint64_t s = seed * 0x100000001B3ULL + 12345;
    in->features = alloc(sizeof(float) * (size_t)batch * (size_t)cfg->embed_dim);
    if (tower == EVA_BENCH_TEXT) {
        in->ids = calloc((size_t)in->count, sizeof *in->ids);
        if (!in->ids || !in->features) goto nomem;
        const int L = cfg->text.context_length, V = cfg->text.vocab_size;
        for (int c = 0; c < in->count; c++) {
            if (!(in->ids[c] = alloc(sizeof(int32_t) * (size_t)n))) goto nomem;
            for (int t = 0; t < batch; t++) {
                int32_t *row = in->ids[c] + (size_t)t * L;
                int len = L > 2 ? 2 + (int)(splitmix(&s) % (uint64_t)(L - 1)) : L; /* 2..L tokens */
                if (len > L) len = L;
                for (int j = 0; j < L; j++)
                    row[j] = j < len - 1 ? (int32_t)(1 + splitmix(&s) % (uint64_t)(V > 2 ? V - 2 : 1)) : 0;
                row[len - 1] = V - 1; /* the end token: the largest id, where the tower pools */
            }
        }
    } else {
        in->pixels = calloc((size_t)in->count, sizeof *in->pixels);
        if (!in->pixels || !in->features) goto nomem;
        for (int c = 0; c < in->count; c++) {
            if (!(in->pixels[c] = alloc(sizeof(float) * (size_t)n))) goto nomem;
            for (int64_t i = 0; i < n; i++) /* normalised pixels lie in about [-2, 2] */
                in->pixels[c][i] = (float)((double)(splitmix(&s) >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
    }
    return EVA_OK;
nomem:
    eva_bench_inputs_free(in);
    return eva_fail(EVA_ERR_NOMEM, "bench: cannot allocate %d input batches of %lld values",
                    eva_bench_rotation(cfg, tower, batch), (long long)n);
}

void eva_bench_inputs_free(eva_bench_inputs *in) {
    void (*release)(void *) = in->release ? in->release : free;
    for (int c = 0; c < in->count; c++) {
        if (in->pixels && in->pixels[c]) release(in->pixels[c]);
        if (in->ids && in->ids[c]) release(in->ids[c]);
    }
    free(in->pixels);
    free(in->ids);
    if (in->features) release(in->features);
    memset(in, 0, sizeof *in);
}

eva_status eva_bench_run_once(eva_backend *b, eva_bench_inputs *in, int i, const eva_tap *tap) {
    int c = i % in->count;
    if (in->tower == EVA_BENCH_TEXT) return eva_backend_encode_text(b, in->features, in->ids[c], in->batch, tap);
    return eva_backend_encode_image(b, in->features, in->pixels[c], in->batch, tap);
}

/* ---- timing ---------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void eva_timing_summarize(eva_timing *t, double *ms, int n) {
    memset(t, 0, sizeof *t);
    t->n = n;
    if (n <= 0) return;
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    t->median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    int r90 = (int)ceil(0.9 * n) - 1; /* nearest rank */
    t->p90_ms = ms[r90 < 0 ? 0 : r90];
    t->min_ms = ms[0];
    t->max_ms = ms[n - 1];
    double s = 0;
    for (int i = 0; i < n; i++) s += ms[i];
    t->mean_ms = s / n;
}

void eva_bench_progress(const char *label, int done, int total) {
    if (!isatty(2)) return;
    if (!label)
        fprintf(stderr, "\r%-70s\r", "");
    else
        fprintf(stderr, "\r%s: %d/%d   ", label, done, total);
    fflush(stderr);
}

static double gflops_item(const eva_config *cfg, eva_bench_tower tower) {
    return tower == EVA_BENCH_TEXT ? eva_config_gflops_text(cfg) : eva_config_gflops_image(cfg);
}

eva_status eva_bench_measure(eva_bench_record *r, eva_backend *b, const eva_config *cfg, eva_bench_tower tower,
                             int batch, int warmup, int iters, uint64_t seed, bool show_progress) {
    eva_bench_inputs in;
    eva_status st = eva_bench_inputs_make(&in, b, cfg, tower, batch, seed);
    if (st != EVA_OK) return st;
    double (*device_ms)(void *) = b->ops->last_call_ms;
    double *ms = malloc(sizeof(double) * (size_t)(iters > 0 ? iters : 1));
    if (!ms) {
        eva_bench_inputs_free(&in);
        return eva_fail(EVA_ERR_NOMEM, "bench: out of memory");
    }
    bool reset = eva_peak_rss_reset();
    char label[96];
    snprintf(label, sizeof label, "bench %s batch %d warm-up", eva_bench_tower_name(tower), batch);
    for (int i = 0; i < warmup && st == EVA_OK; i++) {
        if (show_progress) eva_bench_progress(label, i, warmup);
        st = eva_bench_run_once(b, &in, i, NULL);
    }
    if (st == EVA_OK && warmup > 0) { /* validate, then time */
        for (int64_t i = 0; i < (int64_t)batch * cfg->embed_dim; i++)
            if (!isfinite(in.features[i])) {
                st = eva_fail(EVA_ERR_MISMATCH, "bench: %s tower batch %d: feature %lld is not finite",
                              eva_bench_tower_name(tower), batch, (long long)i);
                break;
            }
    }
    snprintf(label, sizeof label, "bench %s batch %d", eva_bench_tower_name(tower), batch);
    for (int i = 0; i < iters && st == EVA_OK; i++) {
        if (show_progress) eva_bench_progress(label, i, iters);
        double t0 = eva_now();
        st = eva_bench_run_once(b, &in, warmup + i, NULL);
        ms[i] = (eva_now() - t0) * 1e3;
        if (st == EVA_OK && device_ms) {
            const double d = device_ms(b->state);
            if (d >= 0) ms[i] = d;
            else st = eva_fail(EVA_ERR_INTERNAL, "bench: the backend measured no device time for the call");
        }
    }
    if (show_progress) eva_bench_progress(NULL, 0, 0);
    if (st == EVA_OK) {
        r->tower = tower;
        r->batch = batch;
        r->warmup = warmup;
        r->iters = iters;
        r->rotation = in.count;
        eva_timing_summarize(&r->t, ms, iters);
        r->throughput = r->t.median_ms > 0 ? batch / (r->t.median_ms * 1e-3) : 0.0;
        r->timed_region = device_ms ? "host inputs (page-locked) -> upload -> forward -> features downloaded; "
                                      "device events"
                                    : "host inputs -> forward -> host features; host clock";
        r->gflops_per_item = gflops_item(cfg, tower);
        r->params = eva_config_params(cfg);
        r->achieved_gflops = r->t.median_ms > 0 ? r->gflops_per_item * batch / (r->t.median_ms * 1e-3) : 0.0;
        r->peak_host_bytes = eva_peak_rss();
        r->peak_host_scope = reset ? "measurement" : "process";
        r->activation_bytes = eva_bench_activation_bytes(cfg, tower, batch);
        r->input_bytes = inputs_bytes(cfg, tower, batch);
        int64_t one_input = input_floats(cfg, tower, batch) * 4, features = (int64_t)batch * cfg->embed_dim * 4;
        int64_t one_batch = r->activation_bytes + one_input + features;
        r->rss_budget_bytes = r->weight_bytes + one_batch * 3 / 2 + (int64_t)(in.count - 1) * one_input;
        r->rss_within_budget = r->peak_host_bytes >= 0 && r->baseline_host_bytes >= 0 &&
                               r->peak_host_bytes - r->baseline_host_bytes <= r->rss_budget_bytes;
    }
    free(ms);
    eva_bench_inputs_free(&in);
    return st;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void add_bytes(cJSON *o, const char *key, int64_t v) {
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)v);
}

cJSON *eva_bench_env_json(const eva_sysinfo *si) {
    cJSON *env = cJSON_CreateObject();
    cJSON *host = cJSON_AddObjectToObject(env, "host");
    cJSON_AddStringToObject(host, "cpu_model", si->cpu_model);
    cJSON_AddNumberToObject(host, "cpus", si->cpus_online);
    cJSON_AddNumberToObject(host, "omp_threads", si->omp_threads);
    add_bytes(host, "mem_total_bytes", si->mem_total);
    cJSON_AddStringToObject(host, "hostname", si->hostname);
    cJSON *build = cJSON_AddObjectToObject(env, "build");
    cJSON_AddStringToObject(build, "version", si->version);
    cJSON_AddStringToObject(build, "git_rev", si->git_rev);
    cJSON_AddStringToObject(build, "compiler", si->compiler);
    cJSON_AddStringToObject(build, "flags", si->flags);
    cJSON_AddBoolToObject(build, "cuda", si->cuda_build);
    cJSON_AddBoolToObject(build, "sanitizers", si->sanitizers);
    cJSON_AddStringToObject(build, "gemm_kernel", eva_gemm_kernel_name());
    return env;
}

static void add_timestamp(cJSON *o) {
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, "timestamp", ts);
}

cJSON *eva_bench_record_json(const eva_bench_record *r, const eva_sysinfo *si) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "evabench-bench/1");
    cJSON_AddStringToObject(o, "variant", r->variant);
    cJSON_AddStringToObject(o, "impl", r->impl);
    cJSON_AddStringToObject(o, "precision", r->precision);
    cJSON_AddStringToObject(o, "tower", eva_bench_tower_name(r->tower));
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "warmup", r->warmup);
    cJSON_AddNumberToObject(o, "iters", r->iters);
    cJSON_AddNumberToObject(o, "threads", si->omp_threads);
    cJSON_AddNumberToObject(o, "rotating_inputs", r->rotation);
    cJSON_AddNumberToObject(o, "median_ms", r->t.median_ms);
    cJSON_AddNumberToObject(o, "p90_ms", r->t.p90_ms);
    cJSON_AddNumberToObject(o, "min_ms", r->t.min_ms);
    cJSON_AddNumberToObject(o, "mean_ms", r->t.mean_ms);
    cJSON_AddNumberToObject(o, "throughput", r->throughput);
    if (r->timed_region) cJSON_AddStringToObject(o, "timed_region", r->timed_region);
    cJSON_AddStringToObject(o, "throughput_unit", r->tower == EVA_BENCH_TEXT ? "texts/s" : "images/s");
    cJSON_AddNumberToObject(o, "gflops_per_item", r->gflops_per_item);
    cJSON_AddNumberToObject(o, "params_total", (double)r->params.total);
    cJSON_AddNumberToObject(o, "params_image", (double)r->params.image);
    cJSON_AddNumberToObject(o, "params_text", (double)r->params.text);
    cJSON_AddNumberToObject(o, "gflops", r->achieved_gflops);
    add_bytes(o, "peak_host_bytes", r->peak_host_bytes);
    cJSON_AddStringToObject(o, "peak_host_scope", r->peak_host_scope ? r->peak_host_scope : "process");
    add_bytes(o, "peak_device_bytes", r->peak_device_bytes);
    add_bytes(o, "baseline_host_bytes", r->baseline_host_bytes);
    add_bytes(o, "weight_bytes", r->weight_bytes);
    add_bytes(o, "activation_bytes", r->activation_bytes);
    add_bytes(o, "input_bytes", r->input_bytes);
    add_bytes(o, "rss_budget_bytes", r->rss_budget_bytes);
    cJSON_AddBoolToObject(o, "rss_within_budget", r->rss_within_budget);
    cJSON_AddStringToObject(o, "weights", r->weights);
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddStringToObject(o, "metric", "latency_median");
    cJSON_AddNumberToObject(o, "value", r->t.median_ms);
    cJSON_AddStringToObject(o, "unit", "ms");
    cJSON *env = eva_bench_env_json(si);
    cJSON_AddItemToObject(o, "host", cJSON_DetachItemFromObject(env, "host"));
    cJSON_AddItemToObject(o, "build", cJSON_DetachItemFromObject(env, "build"));
    cJSON_Delete(env);
    add_timestamp(o);
    return o;
}

eva_status eva_bench_write_json(const char *path, const cJSON *item) {
    char *s = cJSON_Print(item);
    if (!s) return eva_fail(EVA_ERR_NOMEM, "%s: cannot format JSON", path);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(s);
        return eva_fail(EVA_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    }
    bool ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    free(s);
    return ok ? EVA_OK : eva_fail(EVA_ERR_IO, "%s: write failed", path);
}

eva_status eva_bench_append_jsonl(const char *path, const cJSON *item) {
    char *s = cJSON_PrintUnformatted(item);
    if (!s) return eva_fail(EVA_ERR_NOMEM, "%s: cannot format JSON", path);
    FILE *f = fopen(path, "a");
    if (!f) {
        free(s);
        return eva_fail(EVA_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    }
    bool ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    free(s);
    return ok ? EVA_OK : eva_fail(EVA_ERR_IO, "%s: write failed", path);
}

/* ---- GEMM ceiling ------------------------------------------------------------------------------ */

eva_status eva_bench_gemm_ceiling(double *gflops, int n, int reps) {
    *gflops = 0;
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return eva_fail(EVA_ERR_NOMEM, "GEMM ceiling: cannot allocate three %dx%d matrices", n, n);
    }
    uint64_t s = 7;
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((double)(splitmix(&s) >> 11) / 9007199254740992.0 - 0.5);
        b[i] = (float)((double)(splitmix(&s) >> 11) / 9007199254740992.0 - 0.5);
    }
    eva_gemm_nt(c, a, b, NULL, n, n, n, n, n, n, 0);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = eva_now();
        eva_gemm_nt(c, a, b, NULL, n, n, n, n, n, n, 0);
        double t = eva_now() - t0;
        if (t < best) best = t;
    }
    *gflops = 2.0 * n * (double)n * n / best * 1e-9;
    free(a), free(b), free(c);
    return EVA_OK;
}

/* ---- profile ----------------------------------------------------------------------------------- */

/* "<prefix>.<i><suffix>" -> block i and the suffix (without the dot); -1 if not a block tap. */
static int parse_block(const char *name, const char *prefix, const char **suffix) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '.') return -1;
    char *end;
    long i = strtol(name + pl + 1, &end, 10);
    if (end == name + pl + 1 || i < 0) return -1;
    *suffix = *end == '.' ? end + 1 : end;
    return (int)i;
}

static const char *tap_kind(const char *name, int *block) {
    const char *suf;
    *block = parse_block(name, "visual.trunk.blocks", &suf);
    if (*block < 0) *block = parse_block(name, "text.transformer.resblocks", &suf);
    if (*block >= 0) return *suf ? suf : "residual";
    if (!strcmp(name, "visual.trunk.patch_embed")) return "patch_embed";
    if (!strcmp(name, "visual.trunk.pos_drop")) return "pos_embed";
    if (!strcmp(name, "visual.trunk.norm")) return "norm";
    if (!strcmp(name, "visual.trunk.head")) return "head";
    if (!strcmp(name, "text.token_embedding")) return "embedding";
    if (!strcmp(name, "text.ln_final")) return "ln_final";
    return "tail";
}

double eva_profile_tap_gflop(const eva_config *cfg, const char *name, int batch) {
    int block;
    const char *kind = tap_kind(name, &block);
    const double Bd = batch;
    if (!strncmp(name, "visual.", 7)) {
        const eva_vision_config *v = &cfg->vision;
        const double G = v->image_size / v->patch_size, N = G * G + 1, D = v->width, F = v->mlp_hidden;
        if (!strcmp(kind, "patch_embed")) return 2.0 * Bd * G * G * 3.0 * v->patch_size * v->patch_size * D * 1e-9;
        if (!strcmp(kind, "attn")) return 2.0 * Bd * (N * 4.0 * D * D + 2.0 * N * N * D) * 1e-9;
        if (!strcmp(kind, "mlp")) return 2.0 * Bd * N * (v->mlp == EVA_MLP_SWIGLU ? 3.0 : 2.0) * D * F * 1e-9;
        if (!strcmp(kind, "head")) return 2.0 * Bd * D * cfg->embed_dim * 1e-9;
        return 0.0;
    }
    if (!strncmp(name, "text.", 5) || !strcmp(name, "(after last tap)")) {
        const eva_text_config *t = &cfg->text;
        const double L = t->context_length, W = t->width, F = t->mlp_hidden;
        if (!strcmp(kind, "attn")) return 2.0 * Bd * (L * 4.0 * W * W + 2.0 * L * L * W) * 1e-9;
        if (!strcmp(kind, "mlp")) return 2.0 * Bd * L * 2.0 * W * F * 1e-9;
        return 0.0;
    }
    return 0.0;
}

typedef struct {
    eva_profile *p;
    const eva_config *cfg;
    int iter;         /* sample index, -1 during warm-up */
    int next;         /* next row */
    int cap;          /* rows allocated (taps + the tail) */
    bool first;       /* the first forward names the rows */
    double last;      /* time of the previous boundary */
    eva_status st;
} prof_ctx;

static bool prof_wants(void *ctx, const char *name) {
    prof_ctx *c = ctx;
    bool image = c->p->tower == EVA_BENCH_IMAGE;
    return !strncmp(name, image ? "visual." : "text.", image ? 7 : 5);
}

/* The segment ending at tap `name` took `ms`. Rows are created in arrival order by the first
 * forward (first = true) and must arrive in the same order in every later one. */
static void prof_segment(prof_ctx *c, const char *name, double ms) {
    eva_profile *p = c->p;
    if (c->first && c->next < c->cap) {
        eva_profile_row *r = &p->rows[c->next];
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->kind, sizeof r->kind, "%s", tap_kind(name, &r->block));
        r->gflop = eva_profile_tap_gflop(c->cfg, name, p->batch);
        p->nrows = c->next + 1;
    }
    if (c->next >= p->nrows) {
        if (c->st == EVA_OK) c->st = eva_fail(EVA_ERR_INTERNAL, "profile: unexpected tap '%s'", name);
    } else {
        eva_profile_row *r = &p->rows[c->next];
        if (strcmp(r->name, name) != 0 && c->st == EVA_OK)
            c->st = eva_fail(EVA_ERR_INTERNAL, "profile: tap '%s' arrived where '%s' did before", name, r->name);
        if (c->iter >= 0) r->ms[c->iter] = ms;
    }
    c->next++;
}

/* The reference's tap: host timestamps at the boundaries, nothing copied. */
static void prof_take(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    (void)data, (void)ndim, (void)shape;
    prof_ctx *c = ctx;
    prof_segment(c, name, (eva_now() - c->last) * 1e3);
    c->last = eva_now(); /* the bookkeeping above is not charged to the next module */
}

/* A backend with device timing (set_timing on): after a forward, its boundaries must be the
 * tower's taps in eva_tap_names order, then "(after last tap)"; fills the rows like prof_take
 * and returns the tail's ms in *tail_ms. got/ms hold ntaps + 1 entries. */
static eva_status prof_device(prof_ctx *c, eva_backend *b, char (*expect)[EVA_TAP_NAME_MAX],
                              char (*got)[EVA_TAP_NAME_MAX], double *ms, int ntaps, double *tail_ms) {
    int n = b->ops->timings(b->state, got, ms, ntaps + 1);
    if (n < 0) return EVA_ERR_CUDA; /* the backend said why (eva_last_error) */
    if (n != ntaps + 1)
        return eva_fail(EVA_ERR_INTERNAL,
                        "profile: the device recorded %d boundaries; the tower has %d taps and the end", n, ntaps);
    for (int i = 0; i <= ntaps; i++) {
        const char *want = i < ntaps ? expect[i] : "(after last tap)";
        if (strcmp(got[i], want) != 0)
            return eva_fail(EVA_ERR_INTERNAL, "profile: device boundary %d is '%s'; expected '%s'", i, got[i], want);
    }
    for (int i = 0; i < ntaps; i++) prof_segment(c, got[i], ms[i]);
    *tail_ms = ms[ntaps];
    return c->st;
}

void eva_profile_free(eva_profile *p) {
    if (p->rows)
        for (int i = 0; i < p->nrows; i++) free(p->rows[i].ms);
    free(p->rows);
    memset(p, 0, sizeof *p);
}

eva_status eva_profile_run(eva_profile *p, eva_backend *b, const eva_config *cfg, eva_bench_tower tower, int batch,
                           int warmup, int iters, uint64_t seed, bool show_progress) {
    memset(p, 0, sizeof *p);
    if (iters < 1) return eva_fail(EVA_ERR_INVALID_ARG, "profile: --iters must be >= 1");
    p->tower = tower;
    p->batch = batch;
    p->iters = iters;
    p->warmup = warmup;
    eva_tap_set set = tower == EVA_BENCH_TEXT ? EVA_TAPS_TEXT : EVA_TAPS_IMAGE;
    int ntaps = eva_tap_names(cfg, set, NULL, 0);
    p->rows = calloc((size_t)ntaps + 1, sizeof *p->rows);
    double *total = calloc((size_t)iters, sizeof *total);
    if (!p->rows || !total) {
        free(total);
        eva_profile_free(p);
        return eva_fail(EVA_ERR_NOMEM, "profile: out of memory");
    }
    eva_status st = EVA_OK;
    for (int i = 0; i <= ntaps && st == EVA_OK; i++)
        if (!(p->rows[i].ms = calloc((size_t)iters, sizeof(double))))
            st = eva_fail(EVA_ERR_NOMEM, "profile: out of memory");
    /* device timing (cuda): the forward runs without taps and reports its boundary events */
    const bool dev = b->ops && b->ops->set_timing && b->ops->timings;
    char (*expect)[EVA_TAP_NAME_MAX] = NULL, (*got)[EVA_TAP_NAME_MAX] = NULL;
    double *dev_ms = NULL, tail_ms = 0.0;
    if (dev && st == EVA_OK) {
        expect = calloc((size_t)ntaps + 1, sizeof *expect);
        got = calloc((size_t)ntaps + 1, sizeof *got);
        dev_ms = calloc((size_t)ntaps + 1, sizeof *dev_ms);
        if (!expect || !got || !dev_ms)
            st = eva_fail(EVA_ERR_NOMEM, "profile: out of memory");
        else
            eva_tap_names(cfg, set, expect, ntaps);
    }
    bool timing_on = false;
    if (dev && st == EVA_OK) {
        st = b->ops->set_timing(b->state, 1);
        timing_on = st == EVA_OK;
    }
    eva_bench_inputs in;
    if (st == EVA_OK) st = eva_bench_inputs_make(&in, b, cfg, tower, batch, seed);
    if (st != EVA_OK) {
        if (timing_on) (void)b->ops->set_timing(b->state, 0);
        free(expect), free(got), free(dev_ms);
        free(total);
        p->nrows = ntaps + 1;
        eva_profile_free(p);
        return st;
    }
    prof_ctx ctx = {p, cfg, -1, 0, ntaps, true, 0.0, EVA_OK};
    eva_tap tap = {prof_wants, prof_take, &ctx};
    for (int it = 0; it < warmup + iters && st == EVA_OK; it++) {
        if (show_progress) eva_bench_progress("profile", it, warmup + iters);
        ctx.iter = it < warmup ? -1 : it - warmup;
        ctx.next = 0;
        double t0 = eva_now();
        ctx.last = t0;
        st = eva_bench_run_once(b, &in, it, dev ? NULL : &tap);
        double t1 = eva_now();
        if (st == EVA_OK && dev) st = prof_device(&ctx, b, expect, got, dev_ms, ntaps, &tail_ms);
        if (st == EVA_OK && ctx.st != EVA_OK) st = ctx.st;
        if (st == EVA_OK && ctx.next != p->nrows)
            st = eva_fail(EVA_ERR_INTERNAL, "profile: %d taps arrived, %d the first time", ctx.next, p->nrows);
        if (st == EVA_OK && ctx.first) { /* the tail row: from the last tap to the return */
            eva_profile_row *r = &p->rows[p->nrows];
            snprintf(r->name, sizeof r->name, "(after last tap)");
            snprintf(r->kind, sizeof r->kind, "tail");
            r->block = -1;
            /* the text projection (and pooling) run after the last text tap */
            r->gflop = tower == EVA_BENCH_TEXT ? 2.0 * batch * cfg->text.width * cfg->embed_dim * 1e-9 : 0.0;
            ctx.first = false;
        }
        if (st == EVA_OK && ctx.iter >= 0) {
            p->rows[p->nrows].ms[ctx.iter] = dev ? tail_ms : (t1 - ctx.last) * 1e3;
            total[ctx.iter] = (t1 - t0) * 1e3; /* host wall clock, in both cases */
        }
    }
    p->nrows += 1; /* the tail */
    if (show_progress) eva_bench_progress(NULL, 0, 0);
    eva_bench_inputs_free(&in);
    if (timing_on) {
        eva_status st2 = b->ops->set_timing(b->state, 0);
        if (st == EVA_OK) st = st2;
    }
    free(expect), free(got), free(dev_ms);
    if (st != EVA_OK) {
        free(total);
        p->nrows = ntaps + 1; /* every allocated row */
        eva_profile_free(p);
        return st;
    }
    for (int i = 0; i < p->nrows; i++) {
        eva_profile_row *r = &p->rows[i];
        double *tmp = malloc(sizeof(double) * (size_t)iters);
        if (!tmp) {
            free(total);
            eva_profile_free(p);
            return eva_fail(EVA_ERR_NOMEM, "profile: out of memory");
        }
        memcpy(tmp, r->ms, sizeof(double) * (size_t)iters);
        eva_timing t;
        eva_timing_summarize(&t, tmp, iters);
        free(tmp);
        r->n = iters;
        r->median_ms = t.median_ms;
        p->gflop_total += r->gflop;
    }
    eva_timing t;
    eva_timing_summarize(&t, total, iters);
    p->total_median_ms = t.median_ms;
    free(total);
    return EVA_OK;
}
