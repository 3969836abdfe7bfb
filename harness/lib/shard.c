/* shard.c: see shard.h. MPI calls only under EVA_HAVE_MPI; the single-process versions are copies.
 *
 * Decisions:
 * - MPI starts only when a launcher's variables are present (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 *   PMIX_RANK, SLURM_NTASKS with SLURM_PROCID): a plain `evabench zeroshot` never touches MPI, so
 *   the single-process path and its output are the same in builds with and without MPI.
 * - Gathers use MPI_Gatherv/Allgatherv of bytes in chunks below 2^31 bytes per rank (MPI counts
 *   are int); the ranges are contiguous, so rank order is dataset order.
 */
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef EVA_HAVE_MPI
#include <mpi.h>
#endif

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int launched_size(void) {
    const char *v = env("OMPI_COMM_WORLD_SIZE");
    if (!v) v = env("PMI_SIZE");
    if (!v && env("SLURM_PROCID")) v = env("SLURM_NTASKS");
    return v ? atoi(v) : 0;
}

bool eva_shard_available(void) {
#ifdef EVA_HAVE_MPI
    return true;
#else
    return false;
#endif
}

eva_status eva_shard_init(eva_shard *s, int *argc, char ***argv) {
    memset(s, 0, sizeof *s);
    s->size = 1;
    int n = launched_size();
    if (n <= 1 && !env("PMIX_RANK")) return EVA_OK;
#ifdef EVA_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) return eva_fail(EVA_ERR_INTERNAL, "MPI_Init failed");
    s->mpi = !inited;
    MPI_Comm_rank(MPI_COMM_WORLD, &s->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &s->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, s->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &s->local_rank);
    MPI_Comm_free(&local);
    return EVA_OK;
#else
    (void)argc, (void)argv;
    if (n > 1)
        return eva_fail(EVA_ERR_UNSUPPORTED, "launched as one of %d MPI processes, but this build has no MPI "
                                             "(configure with Open MPI installed, EVABENCH_MPI=AUTO or ON)", n);
    return EVA_OK;
#endif
}

void eva_shard_finalize(eva_shard *s) {
#ifdef EVA_HAVE_MPI
    if (s->mpi) MPI_Finalize();
#endif
    s->mpi = false;
}

void eva_shard_range(const eva_shard *s, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t base = n / s->size, extra = n % s->size, r = s->rank;
    *lo = r * base + (r < extra ? r : extra);
    *hi = *lo + base + (r < extra ? 1 : 0);
}

void eva_shard_pick_device(const eva_shard *s) {
    if (s->size <= 1) return;
    const char *vis = env("CUDA_VISIBLE_DEVICES");
    char buf[64];
    if (vis) {
        int count = 1;
        for (const char *p = vis; *p; p++) count += *p == ',';
        int want = s->local_rank % count;
        const char *p = vis;
        for (int i = 0; i < want; i++) p = strchr(p, ',') + 1;
        size_t len = strcspn(p, ",");
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 63 ? len : 63), p);
    } else {
        snprintf(buf, sizeof buf, "%d", s->local_rank);
    }
    setenv("CUDA_VISIBLE_DEVICES", buf, 1);
}

int eva_shard_first_failure(const eva_shard *s, bool ok) {
    int mine = ok ? s->size : s->rank, first = mine;
#ifdef EVA_HAVE_MPI
    if (s->size > 1) MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
#endif
    return first < s->size ? first : -1;
}

bool eva_shard_all(const eva_shard *s, bool flag) {
    int v = flag, all = v;
#ifdef EVA_HAVE_MPI
    if (s->size > 1) MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
#else
    (void)s;
#endif
    return all != 0;
}

double eva_shard_sum(const eva_shard *s, double v) {
    double r = v;
#ifdef EVA_HAVE_MPI
    if (s->size > 1) MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)s;
#endif
    return r;
}

double eva_shard_max(const eva_shard *s, double v) {
    double r = v;
#ifdef EVA_HAVE_MPI
    if (s->size > 1) MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#else
    (void)s;
#endif
    return r;
}

eva_status eva_shard_gather(const eva_shard *s, const void *mine, int64_t n_mine, void *all, int64_t n_total,
                            int64_t width, int elem_size, bool allgather) {
    int64_t row = width * elem_size;
    if (s->size <= 1) {
        if (n_mine != n_total) return eva_fail(EVA_ERR_INTERNAL, "gather: %lld rows of %lld", (long long)n_mine,
                                               (long long)n_total);
        if (all && all != mine && n_total) memcpy(all, mine, (size_t)(n_total * row));
        return EVA_OK;
    }
#ifdef EVA_HAVE_MPI
    int *counts = malloc(sizeof(int) * (size_t)s->size), *displs = malloc(sizeof(int) * (size_t)s->size);
    if (!counts || !displs) {
        free(counts), free(displs);
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    }
    /* rows per chunk so that every rank's chunk stays below 2^31 bytes */
    int64_t chunk_rows = ((int64_t)1 << 30) / (row ? row : 1);
    if (chunk_rows < 1) chunk_rows = 1;
    int64_t max_rows = (n_total + s->size - 1) / s->size;
    int rc = MPI_SUCCESS;
    for (int64_t c0 = 0; c0 < max_rows && rc == MPI_SUCCESS; c0 += chunk_rows) {
        int64_t off = 0;
        for (int r = 0; r < s->size; r++) {
            eva_shard t = *s;
            int64_t lo, hi;
            t.rank = r;
            eva_shard_range(&t, n_total, &lo, &hi);
            int64_t take = hi - lo - c0;
            take = take < 0 ? 0 : take > chunk_rows ? chunk_rows : take;
            counts[r] = (int)(take * row);
            displs[r] = (int)(off * row);
            off += take;
        }
        char *tmp = (allgather || s->rank == 0) ? malloc((size_t)(off * row) + 1) : NULL;
        int64_t my_take = counts[s->rank] / (row ? row : 1);
        const char *src = (const char *)mine + c0 * row;
        if (allgather) rc = MPI_Allgatherv(src, counts[s->rank], MPI_BYTE, tmp, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
        else rc = MPI_Gatherv(src, counts[s->rank], MPI_BYTE, tmp, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (tmp && all) /* scatter the chunk rows back to their dataset positions */
            for (int r = 0; r < s->size; r++) {
                eva_shard t = *s;
                int64_t lo, hi;
                t.rank = r;
                eva_shard_range(&t, n_total, &lo, &hi);
                if (counts[r]) memcpy((char *)all + (lo + c0) * row, tmp + displs[r], (size_t)counts[r]);
            }
        (void)my_take;
        free(tmp);
    }
    free(counts), free(displs);
    return rc == MPI_SUCCESS ? EVA_OK : eva_fail(EVA_ERR_INTERNAL, "MPI gather failed");
#else
    (void)all, (void)allgather;
    return eva_fail(EVA_ERR_INTERNAL, "gather over %d ranks in a build without MPI", s->size);
#endif
}

eva_status eva_shard_gather_text(const eva_shard *s, const char *mine, char **all) {
    *all = NULL;
    if (s->size <= 1) {
        *all = strdup(mine ? mine : "");
        return *all ? EVA_OK : eva_fail(EVA_ERR_NOMEM, "out of memory");
    }
#ifdef EVA_HAVE_MPI
    int len = (int)strlen(mine ? mine : "");
    int *lens = s->rank == 0 ? calloc((size_t)s->size, sizeof *lens) : NULL;
    int *displs = s->rank == 0 ? calloc((size_t)s->size, sizeof *displs) : NULL;
    MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int total = 0;
    if (s->rank == 0)
        for (int r = 0; r < s->size; r++) displs[r] = total, total += lens[r];
    char *buf = s->rank == 0 ? malloc((size_t)total + 1) : NULL;
    MPI_Gatherv(mine ? mine : "", len, MPI_CHAR, buf, lens, displs, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (buf) buf[total] = '\0';
    free(lens), free(displs);
    *all = buf;
    return EVA_OK;
#else
    return eva_fail(EVA_ERR_INTERNAL, "gather over %d ranks in a build without MPI", s->size);
#endif
}

eva_status eva_shard_injected_failure(const eva_shard *s) {
    const char *v = env("EVA_SHARD_FAIL_RANK");
    if (s->size > 1 && v && atoi(v) == s->rank)
        return eva_fail(EVA_ERR_INTERNAL, "injected failure (EVA_SHARD_FAIL_RANK=%s)", v);
    return EVA_OK;
}

int eva_shard_abort(const eva_shard *s, int code) {
#ifdef EVA_HAVE_MPI
    if (s->size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#else
    (void)s;
#endif
    return code;
}
