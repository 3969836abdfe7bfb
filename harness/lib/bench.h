/* bench.h: timing loops, memory planning, rotating inputs, per-module profiles and the records of
 * `evabench bench` and `evabench profile` (docs/cli.md fields).
 *
 * Owns: the memory a run needs (computed before anything large is allocated) and the refusal
 * when it cannot fit; distinct input buffers cycled through the timed loop so that no iteration
 * finds its input in cache; warm-up and timed loops kept apart, median and p90 (nearest rank);
 * the per-tap timer of a profile (host timestamps at consecutive tap boundaries, or the backend's
 * device events) and the FLOPs of each module; the measured SGEMM ceiling; JSON records. Does not
 * own the implementations (backend.h) nor printing (cmd_bench.c, cmd_profile.c).
 */
#ifndef EVA_BENCH_H
#define EVA_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "backend_select.h"
#include "eva_config.h"
#include "eva_tap.h"
#include "sysinfo.h"

typedef enum { EVA_BENCH_IMAGE = 0, EVA_BENCH_TEXT = 1 } eva_bench_tower;
const char *eva_bench_tower_name(eva_bench_tower t); /* "image" | "text" */
/* *towers <- the bits of "image" (1), "text" (2) or "both" (3); EVA_ERR_INVALID_ARG naming --tower else. */
eva_status eva_bench_towers_parse(int *towers, const char *s);

/* ---- memory ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t weight_bytes;     /* weights held for the run: weight_arena_bytes + weight_mapped_bytes */
    int64_t weight_arena_bytes;  /* owned arena: random weights (every tensor, fp32), or a file's small tensors
                                    (fp32) and 16-bit copies of matrices assembled from pieces */
    int64_t weight_mapped_bytes; /* the run's towers' weight matrices, read in place from the mapped file in its
                                    dtype (page cache); 0 for random weights */
    int weight_mapped_dtype;  /* eva_dtype of the mapped weights, -1 when none or mixed */
    bool weights_paged;       /* the mapped weights do not fit the available memory: they are read from the file
                                 through the page cache, block by block, on every forward (disk-bound timings) */
    int64_t activation_bytes; /* reference workspace + SGEMM packing of the largest batch (towers run one at a time) */
    int64_t input_bytes;      /* rotating input buffers and the features of the largest batch */
    int64_t overhead_bytes;   /* process, libraries, GEMM packing buffers (a fixed allowance) */
    int64_t total_bytes;      /* the sum: what the run needs on the host */
    int64_t resident_min_bytes; /* with paged weights: what must stay resident (all but the mapped weights, plus
                                   two blocks' worth of them) */
    int64_t available_bytes;  /* eva_mem_available(), -1 unknown */
    int64_t device_bytes;     /* --impl cuda: device bytes needed, else -1 */
    int64_t device_free_bytes;/* --impl cuda: free device bytes, else -1 */
} eva_mem_plan;

/* Activation bytes of one batch of a tower: the reference's workspace plus the largest packing
 * buffer its SGEMM allocates during the forward (linear layers or attention). */
int64_t eva_bench_activation_bytes(const eva_config *cfg, eva_bench_tower tower, int batch);
/* Fills the plan for running `towers` (bit 1 image, bit 2 text) at batches up to max_batch, with the
 * weights of file `weights` (its header only is read: eva_model_plan_bytes) or random (NULL). */
eva_status eva_bench_plan_memory(eva_mem_plan *p, const eva_config *cfg, int towers, int max_batch,
                                 const char *weights);
/* EVA_ERR_NOMEM, with "<what>: needs X GiB (weights A (...) + activations B + inputs C + overhead
 * D), Y GiB available", when the plan exceeds the available memory (host, or device for cuda).
 * Mapped weights that do not fit are not refused as long as the rest plus two blocks of them fit:
 * the plan is then marked weights_paged. */
eva_status eva_bench_check_memory(eva_mem_plan *p, const char *what);
/* One line describing the plan ("weights ... held (...), largest batch activations ..., inputs
 * ...; ... available"), for the command's header. */
void eva_bench_plan_describe(const eva_mem_plan *p, char *buf, size_t n);

/* ---- a session: config, memory check, weights, implementation ------------------------------- */

typedef struct {
    const char *command;             /* "bench" | "profile" (messages) */
    const char *variant, *config, *weights;
    const char *impl, *precision;    /* NULL: ref, fp32 */
    uint64_t seed;                   /* random weights */
    int towers;                      /* bit 1 image, bit 2 text */
    int max_batch;
} eva_bench_setup;

typedef struct {
    eva_config cfg;
    const char *config_source;
    eva_impl impl;
    eva_precision precision;
    eva_model model;
    eva_backend backend;
    eva_mem_plan plan;
    int64_t baseline_rss;            /* RSS before the weights */
    char weights_desc[600];          /* "random(seed=N)" or the path */
    char device[400];
} eva_bench_session;

/* Resolves the config, plans the memory and refuses (EVA_ERR_NOMEM, exit 2) before allocating
 * when it cannot fit, then makes random weights or loads --weights and opens the implementation.
 * --impl cuda sizes device memory for max_batch and measures peak device bytes. */
eva_status eva_bench_session_open(eva_bench_session *s, const eva_bench_setup *o);
/* Rewrites s->device for a host implementation from the current thread count (after a change of
 * --threads); a device implementation's line is left as it is. */
void eva_bench_session_describe_host(eva_bench_session *s);
/* Peak device bytes of a cuda session (-1 for the reference or when unknown). */
int64_t eva_bench_session_peak_device(const eva_bench_session *s);
void eva_bench_session_close(eva_bench_session *s);

/* ---- inputs ---------------------------------------------------------------------------------- */

/* `count` distinct batches of inputs, cycled by the timed loop. */
typedef struct {
    eva_bench_tower tower;
    int batch, count;
    float **pixels;   /* [count][B*3*S*S], image tower */
    int32_t **ids;    /* [count][T*L], text tower: random ids with the end token (the largest id) last */
    float *features;  /* [B*E] */
    void (*release)(void *); /* how the buffers above are freed */
} eva_bench_inputs;

/* How many distinct batches make the inputs larger than the caches (at least 2, at most 16). */
int eva_bench_rotation(const eva_config *cfg, eva_bench_tower tower, int batch);
/* Buffers from the backend's host_alloc when it has one (page-locked for cuda: the copies of a
 * forward are then asynchronous, as in PyTorch's pinned-memory loaders), else malloc; b may be NULL. */
eva_status eva_bench_inputs_make(eva_bench_inputs *in, const eva_backend *b, const eva_config *cfg,
                                 eva_bench_tower tower, int batch, uint64_t seed);
void eva_bench_inputs_free(eva_bench_inputs *in);
/* Runs input i % count through the backend. */
eva_status eva_bench_run_once(eva_backend *b, eva_bench_inputs *in, int i, const eva_tap *tap);

/* ---- timing ---------------------------------------------------------------------------------- */

typedef struct {
    int n;
    double median_ms, p90_ms, min_ms, max_ms, mean_ms;
} eva_timing;

/* Sorts ms[0..n) and summarises it (p90 by nearest rank). */
void eva_timing_summarize(eva_timing *t, double *ms, int n);

/* Progress line on stderr (only when stderr is a terminal); NULL label clears the line. */
void eva_bench_progress(const char *label, int done, int total);

/* One bench measurement (docs/cli.md "bench"). */
typedef struct {
    char variant[64];
    const char *impl, *precision;
    eva_bench_tower tower;
    int batch, warmup, iters, rotation;
    eva_timing t;
    double throughput;          /* items per second at the median */
    const char *timed_region;   /* what one timed iteration covers, and with which clock */
    double gflops_per_item;     /* model FLOPs of one image or one 77-token text */
    eva_param_count params;     /* exact parameter counts of the config */
    double achieved_gflops;     /* gflops_per_item * batch / median */
    int64_t peak_host_bytes;    /* peak RSS during this measurement (process lifetime peak where the
                                 * kernel cannot reset it: see peak_host_scope) */
    const char *peak_host_scope;/* "measurement" | "process" */
    int64_t peak_device_bytes;  /* -1: null (no GPU) */
    int64_t baseline_host_bytes;/* RSS before the weights were made or loaded */
    int64_t weight_bytes, activation_bytes, input_bytes;
    /* RSS check: peak_host - baseline_host <= rss_budget_bytes = weights + 1.5 x one batch's
     * activations (workspace + its inputs and features) + the other rotating input copies (a
     * benchmark artefact, not model memory). */
    int64_t rss_budget_bytes;
    bool rss_within_budget;
    char weights[600];          /* "random(seed=N)" or the weights path */
    char device[400];           /* "cpu: <model>, N threads" or the GPU line */
} eva_bench_record;

/* Times one (tower, batch): `warmup` untimed runs, then `iters` timed runs over the rotating
 * inputs; checks after the warm-up that every feature is finite (EVA_ERR_MISMATCH otherwise).
 * An iteration is one encode call: host inputs in, host fp32 features out. A backend with
 * last_call_ms (cuda) is timed by its device events around upload, forward and download (the
 * region bench_pytorch.py times with --region pinned); the reference by the host clock. */
eva_status eva_bench_measure(eva_bench_record *r, eva_backend *b, const eva_config *cfg, eva_bench_tower tower,
                             int batch, int warmup, int iters, uint64_t seed, bool show_progress);

/* JSON object of a record with the host and build description. */
cJSON *eva_bench_record_json(const eva_bench_record *r, const eva_sysinfo *si);
/* The host/build description alone (for profiles and summaries). */
cJSON *eva_bench_env_json(const eva_sysinfo *si);
/* Writes `item` (pretty) to path / appends it as one line to path (JSON Lines). */
eva_status eva_bench_write_json(const char *path, const cJSON *item);
eva_status eva_bench_append_jsonl(const char *path, const cJSON *item);

/* ---- GEMM ceiling ------------------------------------------------------------------------------ */

/* GFLOP/s of the reference SGEMM on an n x n x n product (best of `reps`, after one warm-up) on
 * the reference's threads: the machine's measured GEMM ceiling for profile fractions. */
eva_status eva_bench_gemm_ceiling(double *gflops, int n, int reps);

/* ---- profile ----------------------------------------------------------------------------------- */

typedef struct {
    char name[EVA_TAP_NAME_MAX]; /* the tap that ends the segment, or "(after last tap)" */
    char kind[24];               /* patch_embed, pos_embed, norm1, attn, norm2, mlp, residual, norm, head,
                                  * embedding, ln_1, ln_2, ln_final, tail */
    int block;                   /* block index, -1 outside blocks */
    double gflop;                /* matmul GFLOP of the segment (2 per multiply-add), batch included */
    int n;                       /* samples */
    double *ms;                  /* [iters] times of the segment */
    double median_ms;
} eva_profile_row;

typedef struct {
    eva_bench_tower tower;
    int batch, iters, warmup;
    int nrows;
    eva_profile_row *rows;
    double total_median_ms;      /* median of the whole forward */
    double gflop_total;          /* sum of the rows' GFLOP */
} eva_profile;

/* Runs `warmup` + `iters` forwards of one tower and fills per-segment medians. A backend without
 * device timing (the reference) has every tap of the tower wanted, and its taps only timestamp
 * (nothing is copied). A backend with set_timing/timings (cuda) runs tap-free forwards and its
 * device events give the segments (they must be the tower's taps in eva_tap_names order, else
 * EVA_ERR_INTERNAL). total_median_ms is host wall time around the forward in both cases (for
 * cuda it includes the input upload, which no segment does). */
eva_status eva_profile_run(eva_profile *p, eva_backend *b, const eva_config *cfg, eva_bench_tower tower, int batch,
                           int warmup, int iters, uint64_t seed, bool show_progress);
void eva_profile_free(eva_profile *p);
/* GFLOP (matmul, 2 per multiply-add) of the segment ending at tap `name` for `batch` items. */
double eva_profile_tap_gflop(const eva_config *cfg, const char *name, int batch);

#endif
