/* shard.h: one evaluation spread over MPI ranks (`mpirun -np N evabench zeroshot|retrieval ...`).
 *
 * Owns: starting MPI when the process was launched by an MPI launcher (and the build has MPI:
 * EVA_HAVE_MPI), the contiguous split of N items over the ranks, the device of each rank for
 * --impl cuda (its local rank), and the collectives the commands need: gathering rows of floats,
 * bytes or ints to rank 0 in rank order (so rank 0 holds exactly what one process computes),
 * gathering text, broadcasting/agreeing small values. Without MPI (or not launched by mpirun) the
 * shard is rank 0 of 1 and every collective is a copy.
 * Does not own: printing or ending the run (the command prints the failing rank's message and
 * calls eva_shard_abort, the one place that ends a multi-rank run).
 */
#ifndef EVA_SHARD_H
#define EVA_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_status.h"

typedef struct {
    int rank, size, local_rank;
    bool mpi; /* MPI was started here (finalise it) */
} eva_shard;

/* Rank 0 of 1 unless launched by mpirun/srun with a build that has MPI; then MPI_Init. A build
 * without MPI launched by mpirun with more than one process: EVA_ERR_UNSUPPORTED (each process
 * would otherwise run the whole evaluation on its own). */
eva_status eva_shard_init(eva_shard *s, int *argc, char ***argv);
void eva_shard_finalize(eva_shard *s);
/* Whether this build can run sharded. */
bool eva_shard_available(void);
/* [lo, hi) of n items for this rank: contiguous blocks, the first n % size ranks one longer. */
void eva_shard_range(const eva_shard *s, int64_t n, int64_t *lo, int64_t *hi);
/* For --impl cuda with several ranks: makes the rank's CUDA device its local rank (entry
 * local_rank % count of CUDA_VISIBLE_DEVICES when set, else device local_rank), before CUDA starts. */
void eva_shard_pick_device(const eva_shard *s);

/* Every rank reports whether it succeeded; returns the lowest failing rank, or -1 when all did. */
int eva_shard_first_failure(const eva_shard *s, bool ok);
/* Logical AND of flag over the ranks. */
bool eva_shard_all(const eva_shard *s, bool flag);
/* Sums v over the ranks (every rank gets the sum). */
double eva_shard_sum(const eva_shard *s, double v);
/* Maximum of v over the ranks. */
double eva_shard_max(const eva_shard *s, double v);

/* Rank 0's all[n_total * width] <- every rank's mine[n_mine * width] in rank order (the ranges of
 * eva_shard_range). Elements are 4-byte (floats or int32) or 1-byte. all may be NULL elsewhere.
 * allgather: every rank receives all. */
eva_status eva_shard_gather(const eva_shard *s, const void *mine, int64_t n_mine, void *all, int64_t n_total,
                            int64_t width, int elem_size, bool allgather);
/* Rank 0's *all (malloc'd, NUL-terminated) <- every rank's text concatenated in rank order. */
eva_status eva_shard_gather_text(const eva_shard *s, const char *mine, char **all);

/* Test hook for the failure path of a sharded run: EVA_SHARD_FAIL_RANK=r makes rank r of a
 * multi-rank run fail here (EVA_ERR_INTERNAL, "injected failure"); EVA_OK otherwise. The commands
 * call it once, after the rank's own work and before the gather. */
eva_status eva_shard_injected_failure(const eva_shard *s);

/* Ends every rank with `code` (MPI_Abort) when several run; otherwise returns code. */
int eva_shard_abort(const eva_shard *s, int code);

#endif
