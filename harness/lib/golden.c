/* golden.c: goldens and inputs files read through a guarded child process (see golden.h), and
 * the in-memory objects built from what the child decoded.
 *
 * The child (fork) runs golden_h5.c's reader under limits and writes the golden_dump.h stream to
 * a memfd it shares with the parent; the parent waits, turns a death or a timeout of the child
 * into one message, then checks the stream record by record (sizes, shapes, offsets against the
 * stream's length) before it allocates anything. Activations stay in the memfd and are copied out
 * by eva_golden_read_act.
 *
 * Cost (Intel Sapphire Rapids, 2 cores shared with other work (load ~4), Release build;
 * eva_golden_open and reading every activation, against the same libhdf5 reading done in-process,
 * median of 41 and 5 runs): tiny golden eva02.h5 (0.9 MB): 3.5 ms instead of 1.8 ms; a 270 MB
 * golden of 64 activations: 252 ms instead of 165 ms (the extra copy through the memfd). Under
 * heavy load (~18) the fork waits for a core: 14 ms instead of 1.7 ms for the tiny golden.
 */
#define _GNU_SOURCE
#include "golden.h"
#include "golden_dump.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct eva_golden_act {
    char name[EVA_TAP_NAME_MAX];
    int ndim;
    int64_t shape[4];
    int64_t off;      /* offset of the float32 data in the dump */
    bool has_data;    /* false: the declared shape was not the expected one, nothing read */
};

/* ---- the guarded child --------------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define EVA_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVA_SANITIZED 1
#endif
#endif

static int guard_seconds(int64_t file_bytes) {
    const char *e = getenv("EVABENCH_H5_TIMEOUT");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == '\0' && v >= 1 && v <= 86400) return (int)v;
    }
    return EVA_H5_GUARD_SECONDS + (int)(file_bytes / (50 << 20));
}

/* Current address-space size of this process in bytes (0 when unknown). */
static int64_t vm_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu", &pages) != 1) pages = 0;
    fclose(f);
    return (int64_t)pages * sysconf(_SC_PAGESIZE);
}

static void child_limits(int seconds) {
    struct rlimit r = {0, 0};
    setrlimit(RLIMIT_CORE, &r);
    int64_t vm = vm_bytes();
    if (vm > 0) {
        r.rlim_cur = r.rlim_max = (rlim_t)(vm + EVA_H5_GUARD_MEM);
        setrlimit(RLIMIT_AS, &r);
    }
    r.rlim_cur = (rlim_t)seconds + 1;
    r.rlim_max = (rlim_t)seconds + 2;
    setrlimit(RLIMIT_CPU, &r);
#ifndef EVA_SANITIZED
    /* libhdf5 may print on its own (assertions, diagnostics): the parent reports in one line. A
     * sanitizer build keeps stderr so that a report in our own code stays visible. */
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
#endif
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)seconds);
}

/* Waits for the reading child: a death by signal (a timeout: SIGALRM, SIGXCPU, SIGKILL) or a
 * non-zero exit becomes EVA_ERR_FORMAT naming the file. */
static eva_status wait_reader(pid_t pid, const char *path, int seconds) {
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return eva_fail(EVA_ERR_INTERNAL, "%s: waiting for the reading process failed: %s", path, strerror(errno));
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return EVA_OK;
    int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
    if (sig == SIGALRM || sig == SIGXCPU || sig == SIGKILL)
        return eva_fail(EVA_ERR_FORMAT, "%s: libhdf5 timed out reading this file (over %d s; signal %d)", path, seconds,
                        sig);
    if (sig) return eva_fail(EVA_ERR_FORMAT, "%s: libhdf5 crashed reading this file (signal %d)", path, sig);
    return eva_fail(EVA_ERR_FORMAT, "%s: libhdf5 crashed reading this file (the reader exited with status %d)", path,
                    WEXITSTATUS(ws));
}

/* Runs the reader in a child; on success *out_fd is the memfd holding the stream. */
static eva_status run_guarded(int *out_fd, const char *path, int64_t file_bytes, eva_h5_what what,
                              const eva_config *cfg) {
    *out_fd = -1;
    int fd = memfd_create("evabench-h5", MFD_CLOEXEC);
    if (fd < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create a memory file for reading: %s", path, strerror(errno));
    int seconds = guard_seconds(file_bytes);
    eva_h5_quiet(); /* initialises libhdf5 here, once, instead of in every child */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return eva_fail(EVA_ERR_IO, "%s: cannot start the reading process: %s", path, strerror(errno));
    }
    if (pid == 0) {
        child_limits(seconds);
        eva_h5_dump_path(path, what, cfg, fd);
        _exit(0);
    }
    eva_status st = wait_reader(pid, path, seconds);
    if (st != EVA_OK) {
        close(fd);
        return st;
    }
    *out_fd = fd;
    return EVA_OK;
}

/* ---- a guarded call for other readers (the embedding caches) -------------------------------- */

/* What the child hands back through the shared mapping: its status, message and result bytes. */
typedef struct {
    int status;
    char message[1024];
} guard_head;

eva_status eva_h5_guarded_call(const char *path, eva_h5_reader fn, void *ctx, void *result, size_t result_bytes) {
    struct stat sb;
    if (stat(path, &sb) != 0) return eva_fail(EVA_ERR_IO, "%s: %s", path, strerror(errno));
    size_t map_bytes = sizeof(guard_head) + result_bytes;
    void *map = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return eva_fail(EVA_ERR_NOMEM, "%s: cannot map %zu bytes for reading", path, map_bytes);
    guard_head *head = map;
    head->status = EVA_ERR_INTERNAL;
    int seconds = guard_seconds((int64_t)sb.st_size);
    eva_h5_quiet();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        munmap(map, map_bytes);
        return eva_fail(EVA_ERR_IO, "%s: cannot start the reading process: %s", path, strerror(errno));
    }
    if (pid == 0) {
        child_limits(seconds);
        eva_status st = fn(ctx, path, (char *)map + sizeof(guard_head));
        snprintf(head->message, sizeof head->message, "%s", st == EVA_OK ? "" : eva_last_error());
        head->status = st;
        _exit(0);
    }
    eva_status st = wait_reader(pid, path, seconds);
    if (st == EVA_OK && head->status != EVA_OK)
        st = eva_fail((eva_status)head->status, "%.1000s", head->message);
    if (st == EVA_OK) memcpy(result, (char *)map + sizeof(guard_head), result_bytes);
    munmap(map, map_bytes);
    return st;
}

/* ---- reading the stream back --------------------------------------------------------------- */

static bool pread_all(int fd, void *dst, size_t n, int64_t off) {
    char *p = dst;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return true;
}

typedef struct {
    int fd;
    int64_t size, off;
    const char *path;
} dump_reader;

static eva_status bad_dump(const dump_reader *d) {
    return eva_fail(EVA_ERR_FORMAT, "%s: libhdf5 returned inconsistent data for this file (at byte %lld of %lld)",
                    d->path, (long long)d->off, (long long)d->size);
}

/* Reads the head; returns the reader's own status and message when it failed. */
static eva_status dump_head(dump_reader *d) {
    eva_dump_head h;
    struct stat st;
    if (fstat(d->fd, &st) != 0 || st.st_size < (off_t)sizeof h || !pread_all(d->fd, &h, sizeof h, 0) ||
        memcmp(h.magic, EVA_DUMP_MAGIC, sizeof h.magic) != 0)
        return eva_fail(EVA_ERR_FORMAT, "%s: libhdf5 stopped reading this file without a result", d->path);
    d->size = (int64_t)st.st_size;
    d->off = (int64_t)sizeof h;
    if (h.status != EVA_OK) {
        h.msg[sizeof h.msg - 1] = '\0';
        eva_status s = h.status < 0 && h.status >= EVA_ERR_MISMATCH ? (eva_status)h.status : EVA_ERR_FORMAT;
        return eva_fail(s, "%s", h.msg);
    }
    return EVA_OK;
}

/* Next record; checks its kind, name, shape and that its payload lies inside the stream. */
static eva_status dump_next(dump_reader *d, eva_dump_rec *r) {
    if (d->size - d->off < (int64_t)sizeof *r || !pread_all(d->fd, r, sizeof *r, d->off)) return bad_dump(d);
    if (r->kind < EVA_DUMP_SCHEMA || r->kind >= EVA_DUMP_KIND_END || r->ndim < 0 || r->ndim > 4 ||
        memchr(r->name, '\0', sizeof r->name) == NULL)
        return bad_dump(d);
    int64_t n = 1;
    for (int i = 0; i < r->ndim; i++) {
        if (r->shape[i] < 1 || r->shape[i] > EVA_H5_MAX_BYTES || n > EVA_H5_MAX_BYTES / r->shape[i]) return bad_dump(d);
        n *= r->shape[i];
    }
    int64_t room = d->size - d->off - (int64_t)sizeof *r;
    if (r->nbytes > (uint64_t)room) return bad_dump(d);
    bool tensor = r->kind == EVA_DUMP_PIXELS || r->kind == EVA_DUMP_IDS || r->kind == EVA_DUMP_ACT;
    bool shape_only = r->kind == EVA_DUMP_ACT && (r->flags & EVA_DUMP_SHAPE_ONLY);
    if (tensor && r->nbytes != (shape_only ? 0 : (uint64_t)n * 4)) return bad_dump(d);
    if (r->kind == EVA_DUMP_PIXELS && r->ndim != 4) return bad_dump(d);
    if (r->kind == EVA_DUMP_IDS && r->ndim != 2) return bad_dump(d);
    if (r->kind == EVA_DUMP_ACT && r->ndim < 1) return bad_dump(d);
    if (r->kind == EVA_DUMP_SEED && r->nbytes != 8) return bad_dump(d);
    if (!tensor && r->kind != EVA_DUMP_SEED && r->nbytes > (uint64_t)EVA_H5_MAX_ATTR_BYTES) return bad_dump(d);
    d->off += (int64_t)sizeof *r;
    return EVA_OK;
}

/* Payload of the current record into a new buffer (+1 NUL byte); advances past it. */
static eva_status dump_payload(dump_reader *d, const eva_dump_rec *r, void **out) {
    char *buf = malloc((size_t)r->nbytes + 1);
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: cannot allocate %llu bytes", d->path, (unsigned long long)r->nbytes);
    if (!pread_all(d->fd, buf, (size_t)r->nbytes, d->off)) {
        free(buf);
        return bad_dump(d);
    }
    buf[r->nbytes] = '\0';
    d->off += (int64_t)r->nbytes;
    *out = buf;
    return EVA_OK;
}

static eva_status take_inputs(dump_reader *d, const eva_dump_rec *r, eva_inputs *in) {
    void *p;
    if (r->kind == EVA_DUMP_PIXELS ? in->pixels != NULL : in->ids != NULL) return bad_dump(d);
    eva_status st = dump_payload(d, r, &p);
    if (st != EVA_OK) return st;
    if (r->kind == EVA_DUMP_PIXELS) {
        in->pixels = p;
        memcpy(in->pix_shape, r->shape, sizeof in->pix_shape);
    } else {
        in->ids = p;
        in->ids_shape[0] = r->shape[0];
        in->ids_shape[1] = r->shape[1];
    }
    return EVA_OK;
}

static eva_status take_string(dump_reader *d, const eva_dump_rec *r, eva_golden *g) {
    char **slot = r->kind == EVA_DUMP_SCHEMA ? &g->schema
                : r->kind == EVA_DUMP_CONFIG ? &g->config_json
                : r->kind == EVA_DUMP_WEIGHTS ? &g->weights : &g->generator;
    if (*slot) return bad_dump(d);
    void *p;
    eva_status st = dump_payload(d, r, &p);
    if (st == EVA_OK) *slot = p;
    return st;
}

static eva_status take_act(dump_reader *d, const eva_dump_rec *r, eva_golden *g, int *cap) {
    if (g->n_acts >= EVA_GOLDEN_MAX_ACTS) return bad_dump(d);
    if (g->n_acts == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        struct eva_golden_act *na = realloc(g->act_info, (size_t)nc * sizeof *na);
        if (!na) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory listing /acts", d->path);
        g->act_info = na;
        *cap = nc;
    }
    struct eva_golden_act *a = &g->act_info[g->n_acts++];
    memcpy(a->name, r->name, sizeof a->name);
    a->ndim = r->ndim;
    memcpy(a->shape, r->shape, sizeof a->shape);
    a->off = d->off;
    a->has_data = !(r->flags & EVA_DUMP_SHAPE_ONLY);
    d->off += (int64_t)r->nbytes;
    return EVA_OK;
}

static eva_status take_attr(dump_reader *d, const eva_dump_rec *r, eva_golden *g) {
    if (g->n_attrs >= EVA_DUMP_MAX_ATTRS) return bad_dump(d);
    if (!g->attr_names) {
        g->attr_names = calloc(EVA_DUMP_MAX_ATTRS, sizeof *g->attr_names);
        g->attr_values = calloc(EVA_DUMP_MAX_ATTRS, sizeof *g->attr_values);
        if (!g->attr_names || !g->attr_values) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", d->path);
    }
    void *p;
    eva_status st = dump_payload(d, r, &p);
    if (st != EVA_OK) return st;
    memcpy(g->attr_names[g->n_attrs], r->name, sizeof g->attr_names[0]);
    g->attr_values[g->n_attrs++] = p;
    return EVA_OK;
}

static int cmp_act(const void *a, const void *b) {
    return strcmp(((const struct eva_golden_act *)a)->name, ((const struct eva_golden_act *)b)->name);
}

/* Sorts the activations by name, refuses duplicates, fills g->acts. */
static eva_status index_acts(eva_golden *g) {
    if (g->n_acts > 1) qsort(g->act_info, (size_t)g->n_acts, sizeof *g->act_info, cmp_act);
    g->acts = calloc(g->n_acts ? (size_t)g->n_acts : 1, sizeof *g->acts);
    if (!g->acts) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory listing /acts", g->path);
    for (int i = 0; i < g->n_acts; i++) {
        if (i && !strcmp(g->act_info[i].name, g->act_info[i - 1].name))
            return eva_fail(EVA_ERR_FORMAT, "%s: /acts/%s appears twice", g->path, g->act_info[i].name);
        memcpy(g->acts[i], g->act_info[i].name, sizeof g->acts[i]);
    }
    return EVA_OK;
}

/* Builds g (when non-NULL) or in from the stream in fd; `what` as given to the reader. */
static eva_status load_dump(int fd, const char *path, eva_h5_what what, eva_golden *g, eva_inputs *in) {
    dump_reader d = {fd, 0, 0, path};
    eva_status st = dump_head(&d);
    int cap = 0;
    while (st == EVA_OK && d.off < d.size) {
        eva_dump_rec r;
        if ((st = dump_next(&d, &r)) != EVA_OK) break;
        if (r.kind == EVA_DUMP_PIXELS || r.kind == EVA_DUMP_IDS) {
            st = take_inputs(&d, &r, in);
        } else if (!g) {
            st = bad_dump(&d);
        } else if (r.kind == EVA_DUMP_ACT) {
            st = take_act(&d, &r, g, &cap);
        } else if (r.kind == EVA_DUMP_ATTR) {
            st = take_attr(&d, &r, g);
        } else if (r.kind == EVA_DUMP_SEED) {
            if (g->has_seed || !pread_all(fd, &g->seed, 8, d.off)) st = bad_dump(&d);
            g->has_seed = true;
            d.off += 8;
        } else {
            st = take_string(&d, &r, g);
        }
    }
    if (st == EVA_OK && what != EVA_H5_DUMP && !in->pixels && !in->ids)
        st = eva_fail(EVA_ERR_FORMAT, "%s: /inputs has neither pixel_values nor input_ids", path);
    if (st == EVA_OK && what == EVA_H5_GOLDEN && (!g->schema || strcmp(g->schema, EVA_GOLDEN_SCHEMA) != 0))
        st = bad_dump(&d);
    if (st == EVA_OK && g) st = index_acts(g);
    if (st == EVA_OK && what == EVA_H5_DUMP && g->n_acts == 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: has no /acts/<tap> datasets (expected the golden layout: one dataset per "
                                      "tap under /acts)", path);
    return st;
}

/* ---- public API ---------------------------------------------------------------------------- */

static eva_status check_path(const char *path, int64_t *bytes) {
    struct stat st;
    if (!path || !*path) return eva_fail(EVA_ERR_INVALID_ARG, "empty HDF5 file name");
    if (strlen(path) >= 1024) return eva_fail(EVA_ERR_INVALID_ARG, "%.64s...: path too long", path);
    if (stat(path, &st) != 0) return eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return eva_fail(EVA_ERR_IO, "%s: not a regular file", path);
    *bytes = (int64_t)st.st_size;
    return EVA_OK;
}

eva_status eva_inputs_read_for(eva_inputs *in, const char *path, const eva_config *cfg) {
    int64_t bytes;
    int fd;
    memset(in, 0, sizeof *in);
    eva_status st = check_path(path, &bytes);
    if (st == EVA_OK) st = run_guarded(&fd, path, bytes, EVA_H5_INPUTS, cfg);
    if (st != EVA_OK) return st;
    st = load_dump(fd, path, EVA_H5_INPUTS, NULL, in);
    close(fd);
    if (st != EVA_OK) eva_inputs_free(in);
    return st;
}

eva_status eva_inputs_read(eva_inputs *in, const char *path) { return eva_inputs_read_for(in, path, NULL); }

eva_status eva_inputs_read_image(eva_inputs *in, const void *buf, size_t len, const char *name,
                                 const eva_config *cfg) {
    memset(in, 0, sizeof *in);
    int fd = memfd_create("evabench-h5", MFD_CLOEXEC);
    if (fd < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create a memory file: %s", name, strerror(errno));
    eva_h5_dump_image(buf, len, name, EVA_H5_INPUTS, cfg, fd);
    eva_status st = load_dump(fd, name, EVA_H5_INPUTS, NULL, in);
    close(fd);
    if (st != EVA_OK) eva_inputs_free(in);
    return st;
}

static eva_status golden_begin(eva_golden *g, const char *path) {
    memset(g, 0, sizeof *g);
    if (!path || strlen(path) >= sizeof g->path) return eva_fail(EVA_ERR_INVALID_ARG, "golden path too long");
    snprintf(g->path, sizeof g->path, "%s", path);
    snprintf(g->dir, sizeof g->dir, "%s", path);
    char *slash = strrchr(g->dir, '/');
    if (slash == g->dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(g->dir, sizeof g->dir, ".");
    return EVA_OK;
}

/* A golden's compute_dtype attribute: "float64" (also when absent) or "float32". */
static eva_status golden_compute_dtype(eva_golden *g) {
    eva_status st = eva_golden_attr(g, "compute_dtype", &g->compute_dtype);
    if (st == EVA_OK && g->compute_dtype && strcmp(g->compute_dtype, "float64") && strcmp(g->compute_dtype, "float32"))
        st = eva_fail(EVA_ERR_FORMAT, "%s: compute_dtype is \"%.32s\", expected \"float64\" or \"float32\"", g->path,
                      g->compute_dtype);
    return st;
}

/* Takes ownership of fd (the stream). */
static eva_status golden_finish(eva_golden *g, int fd, eva_h5_what what) {
    g->dump = fd + 1;
    eva_status st = load_dump(fd, g->path, what, g, &g->inputs);
    if (st == EVA_OK && what == EVA_H5_GOLDEN) st = golden_compute_dtype(g);
    if (st != EVA_OK) eva_golden_close(g);
    return st;
}

eva_status eva_golden_open_for(eva_golden *g, const char *path, const eva_config *cfg) {
    int64_t bytes;
    int fd;
    eva_status st = golden_begin(g, path);
    if (st == EVA_OK) st = check_path(path, &bytes);
    if (st == EVA_OK) st = run_guarded(&fd, path, bytes, EVA_H5_GOLDEN, cfg);
    if (st != EVA_OK) return st;
    return golden_finish(g, fd, EVA_H5_GOLDEN);
}

eva_status eva_golden_open(eva_golden *g, const char *path) { return eva_golden_open_for(g, path, NULL); }

eva_status eva_golden_open_image(eva_golden *g, const void *buf, size_t len, const char *name,
                                 const eva_config *cfg) {
    eva_status st = golden_begin(g, name);
    if (st != EVA_OK) return st;
    int fd = memfd_create("evabench-h5", MFD_CLOEXEC);
    if (fd < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create a memory file: %s", name, strerror(errno));
    eva_h5_dump_image(buf, len, name, EVA_H5_GOLDEN, cfg, fd);
    return golden_finish(g, fd, EVA_H5_GOLDEN);
}

eva_status eva_dump_open(eva_golden *g, const char *path) {
    int64_t bytes;
    int fd;
    eva_status st = golden_begin(g, path);
    if (st == EVA_OK) st = check_path(path, &bytes);
    if (st == EVA_OK) st = run_guarded(&fd, path, bytes, EVA_H5_DUMP, NULL);
    if (st != EVA_OK) return st;
    return golden_finish(g, fd, EVA_H5_DUMP);
}

eva_status eva_dump_open_image(eva_golden *g, const void *buf, size_t len, const char *name) {
    eva_status st = golden_begin(g, name);
    if (st != EVA_OK) return st;
    int fd = memfd_create("evabench-h5", MFD_CLOEXEC);
    if (fd < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create a memory file: %s", name, strerror(errno));
    eva_h5_dump_image(buf, len, name, EVA_H5_DUMP, NULL, fd);
    return golden_finish(g, fd, EVA_H5_DUMP);
}

eva_status eva_golden_attr(const eva_golden *g, const char *name, char **value) {
    *value = NULL;
    if (g->dump <= 0) return eva_fail(EVA_ERR_INTERNAL, "%s: file is not open", g->path);
    for (int i = 0; i < g->n_attrs; i++) {
        if (strcmp(g->attr_names[i], name) != 0) continue;
        *value = strdup(g->attr_values[i]);
        return *value ? EVA_OK : eva_fail(EVA_ERR_NOMEM, "%s: out of memory", g->path);
    }
    return EVA_OK;
}

static const struct eva_golden_act *find_act(const eva_golden *g, const char *name) {
    if (!g->act_info || g->n_acts == 0) return NULL;
    struct eva_golden_act key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, g->act_info, (size_t)g->n_acts, sizeof *g->act_info, cmp_act);
}

bool eva_golden_has_act(const eva_golden *g, const char *name) { return find_act(g, name) != NULL; }

eva_status eva_golden_act_shape(const eva_golden *g, const char *name, int *ndim, int64_t shape[4]) {
    const struct eva_golden_act *a = find_act(g, name);
    if (!a) return eva_fail(EVA_ERR_FORMAT, "%s: has no dataset /acts/%s", g->path, name);
    *ndim = a->ndim;
    memcpy(shape, a->shape, sizeof a->shape);
    return EVA_OK;
}

eva_status eva_golden_read_act(const eva_golden *g, const char *name, float **data, int *ndim, int64_t shape[4]) {
    *data = NULL;
    const struct eva_golden_act *a = find_act(g, name);
    if (!a) return eva_fail(EVA_ERR_FORMAT, "%s: has no dataset /acts/%s", g->path, name);
    if (!a->has_data)
        return eva_fail(EVA_ERR_SHAPE, "%s: /acts/%s has a shape the golden's config does not expect (not read)",
                        g->path, name);
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: /acts/%s: cannot allocate %lld floats", g->path, name, (long long)n);
    if (!pread_all((int)(g->dump - 1), buf, (size_t)n * sizeof(float), a->off)) {
        free(buf);
        return eva_fail(EVA_ERR_IO, "%s: /acts/%s: reading the decoded data failed", g->path, name);
    }
    *data = buf;
    *ndim = a->ndim;
    memcpy(shape, a->shape, sizeof a->shape);
    return EVA_OK;
}

eva_status eva_golden_weights_path(const eva_golden *g, char *out, size_t cap) {
    if (!g->weights || !*g->weights)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: has no 'weights' attribute; pass --weights", g->path);
    int n = g->weights[0] == '/' ? snprintf(out, cap, "%s", g->weights)
                                 : snprintf(out, cap, "%s/%s", g->dir, g->weights);
    if (n < 0 || (size_t)n >= cap) return eva_fail(EVA_ERR_INVALID_ARG, "%s: weights path too long", g->path);
    return EVA_OK;
}

void eva_golden_close(eva_golden *g) {
    if (!g) return;
    if (g->dump > 0) close((int)(g->dump - 1));
    free(g->schema);
    free(g->config_json);
    free(g->weights);
    free(g->generator);
    free(g->compute_dtype);
    free(g->acts);
    free(g->act_info);
    for (int i = 0; i < g->n_attrs; i++) free(g->attr_values[i]);
    free(g->attr_values);
    free(g->attr_names);
    eva_inputs_free(&g->inputs);
    memset(g, 0, sizeof *g);
}

/* ---- inputs against a config --------------------------------------------------------------- */
eva_status eva_inputs_check_pixels(const eva_inputs *in, int image_size, const char *path) {
    if (!in->pixels) return EVA_OK;
    const int64_t *s = in->pix_shape;
    if (s[1] != 3 || s[2] != image_size || s[3] != image_size)
        return eva_fail(EVA_ERR_SHAPE,
                        "%s: /inputs/pixel_values has shape [%lld,%lld,%lld,%lld], the config expects [%lld,3,%d,%d]",
                        path, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], (long long)s[0],
                        image_size, image_size);
    if (s[0] > INT_MAX) return eva_fail(EVA_ERR_SHAPE, "%s: /inputs/pixel_values: too many images", path);
    return EVA_OK;
}

eva_status eva_inputs_check_ids(const eva_inputs *in, int context_length, int vocab_size, const char *path) {
    if (!in->ids) return EVA_OK;
    const int64_t T = in->ids_shape[0], L = in->ids_shape[1];
    if (L != context_length)
        return eva_fail(EVA_ERR_SHAPE, "%s: /inputs/input_ids has shape [%lld,%lld], the config expects [%lld,%d]",
                        path, (long long)T, (long long)L, (long long)T, context_length);
    if (T > INT_MAX) return eva_fail(EVA_ERR_SHAPE, "%s: /inputs/input_ids: too many texts", path);
    for (int64_t i = 0; i < T * L; i++) {
        int32_t v = in->ids[i];
        if (v < 0 || v >= vocab_size)
            return eva_fail(EVA_ERR_INVALID_ARG,
                            "%s: /inputs/input_ids[%lld,%lld] = %d is %s, expected a token id in [0, %d)", path,
                            (long long)(i / L), (long long)(i % L), v, v < 0 ? "negative" : "out of range",
                            vocab_size);
    }
    return EVA_OK;
}

void eva_inputs_free(eva_inputs *in) {
    if (!in) return;
    free(in->pixels);
    free(in->ids);
    memset(in, 0, sizeof *in);
}
