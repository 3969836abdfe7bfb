/* eva_weights.c: where a model's weights are held (see eva_weights.h).
 *
 * eva_model_load() matches a safetensors file one-to-one against the tensor table built from the
 * config: every file tensor must be a table entry (open_clip or official name; official only for
 * the 8B/18B families), given once, with the table's shape and a convertible dtype; every table
 * entry must be present. All offenders are collected first and reported in one line naming the
 * file; only then is the file mapped. Sizes come from the validated config (the table), never from
 * the file. Placement (tensor_placement) decides per tensor: served by the mapping in the file's
 * dtype, or widened into the fp32 arena; eva_model_plan_bytes() applies the same rule to a header
 * so that a memory plan counts what the load will hold. eva_model_init_random() fills an all-fp32
 * arena with deterministic random values, eva_model_write_random() streams them to a file.
 * This file does not own the safetensors format (eva_safetensors.c) or the table (eva_tensors.c).
 */
#include "eva_weights.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "eva_checkpoint.h"
#include "eva_safetensors.h"

#define EVA_ARENA_ALIGN_BYTES 64
/* Offenders listed by name per category before "and N more". */
#define EVA_LIST_MAX 6

void eva_model_free(eva_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nmaps; i++)
        if (m->maps[i].addr) munmap(m->maps[i].addr, m->maps[i].len);
    free(m->maps);
    free(m->at);
    free(m->arena);
    free(m->vblocks);
    free(m->tblocks);
    eva_tensors_free(&m->tensors);
    memset(m, 0, sizeof *m);
}

static size_t arena_bytes_of(int64_t nf) {
    return ((size_t)nf * sizeof(float) + EVA_ARENA_ALIGN_BYTES - 1) / EVA_ARENA_ALIGN_BYTES * EVA_ARENA_ALIGN_BYTES;
}

/* Allocates the fp32 arena of nf floats (uninitialised) into m->arena. */
static eva_status arena_alloc(eva_model *m, int64_t nf, const char *what) {
    if (nf <= 0) nf = EVA_ARENA_ALIGN_FLOATS;
    if ((uint64_t)nf > (SIZE_MAX - EVA_ARENA_ALIGN_BYTES) / sizeof(float))
        return eva_fail(EVA_ERR_INTERNAL, "%s: weight arena of %" PRId64 " floats cannot be allocated", what, nf);
    size_t bytes = arena_bytes_of(nf);
    m->arena = aligned_alloc(EVA_ARENA_ALIGN_BYTES, bytes);
    if (!m->arena)
        return eva_fail(EVA_ERR_NOMEM, "%s: cannot allocate %.2f GB for the fp32 weights (%" PRId64 " floats)", what,
                        (double)bytes / 1e9, nf);
    m->bytes.arena_bytes = (int64_t)bytes;
    return EVA_OK;
}

/* Builds the table and the per-tensor and block view arrays (no arena yet). */
static eva_status model_alloc(eva_model *m, const eva_config *cfg, const char *what) {
    eva_status s;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->bytes.mapped_dtype = -1;
    if ((s = eva_tensors_build(&m->tensors, cfg)) != EVA_OK) return s;
    size_t nv = cfg->vision.depth > 0 ? (size_t)cfg->vision.depth : 1;
    size_t nt = cfg->text.layers > 0 ? (size_t)cfg->text.layers : 1;
    m->vblocks = calloc(nv, sizeof *m->vblocks);
    m->tblocks = calloc(nt, sizeof *m->tblocks);
    m->at = calloc((size_t)(m->tensors.count > 0 ? m->tensors.count : 1), sizeof *m->at);
    if (!m->vblocks || !m->tblocks || !m->at) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", what);
    return EVA_OK;
}

/* The all-fp32 arena of random weights: every tensor at its table offset, the alignment padding
 * after each zeroed (the tensors themselves are about to be overwritten; a full memset would
 * double the time of a full-size random init). */
static eva_status model_alloc_fp32(eva_model *m, const eva_config *cfg, const char *what) {
    eva_status s;
    if ((s = model_alloc(m, cfg, what)) != EVA_OK) return s;
    int64_t nf = m->tensors.arena_floats;
    if ((s = arena_alloc(m, nf, what)) != EVA_OK) return s;
    for (int j = 0; j < m->tensors.count; j++) {
        const eva_tensor_desc *d = &m->tensors.items[j];
        int64_t end = d->offset + d->numel;
        int64_t padded = (end + EVA_ARENA_ALIGN_FLOATS - 1) / EVA_ARENA_ALIGN_FLOATS * EVA_ARENA_ALIGN_FLOATS;
        if (padded > nf) padded = nf;
        if (padded > end) memset(m->arena + end, 0, (size_t)(padded - end) * sizeof(float));
        m->at[j].data = m->arena + d->offset;
        m->at[j].dtype = EVA_DT_F32;
    }
    return EVA_OK;
}

static void model_bind(eva_model *m) {
    eva_tensors_bind_at(&m->w, m->vblocks, m->tblocks, &m->tensors, m->at);
}

void eva_model_tensor_f32(const eva_model *m, int i, float *dst) {
    const eva_tensor_desc *d = &m->tensors.items[i];
    eva_widen(dst, m->at[i].data, m->at[i].dtype, 0, (size_t)d->numel);
}

/* ---- placement: mapped in the file's dtype, copied in its dtype, or widened into the arena ---- */

typedef enum { PLACE_F32 = 0, PLACE_MAP, PLACE_COPY16 } placement;

/* Where handle tensor i, table entry d, is held. PLACE_MAP: one untransposed piece of a file
 * (*file, *fidx), its values aligned to their size; PLACE_COPY16: a typed F16/BF16 tensor
 * assembled from pieces, copied once in its dtype; PLACE_F32: every other tensor, widened. */
static placement place_of(const eva_tensor_desc *d, const eva_safetensors *st, int i, const eva_safetensors **file,
                          int *fidx) {
    const eva_st_tensor *t = eva_safetensors_get(st, i);
    if (!d->typed || t->dtype == EVA_ST_OTHER || !eva_safetensors_native_order()) return PLACE_F32;
    if (eva_safetensors_source(st, i, file, fidx) &&
        eva_safetensors_data_offset(*file, *fidx) % eva_dtype_size((eva_dtype)t->dtype) == 0)
        return PLACE_MAP;
    return t->dtype == EVA_ST_F32 ? PLACE_F32 : PLACE_COPY16;
}

static int64_t pad_floats(int64_t n) {
    return (n + EVA_ARENA_ALIGN_FLOATS - 1) / EVA_ARENA_ALIGN_FLOATS * EVA_ARENA_ALIGN_FLOATS;
}

static void note_mapped(eva_weights_bytes *b, const eva_tensor_desc *d, const eva_st_tensor *t) {
    int none = b->mapped_bytes[0] + b->mapped_bytes[1] + b->mapped_bytes[2] == 0;
    b->mapped_bytes[d->tower] += t->numel * (int64_t)eva_dtype_size((eva_dtype)t->dtype);
    if (none)
        b->mapped_dtype = (int)t->dtype;
    else if (b->mapped_dtype != (int)t->dtype)
        b->mapped_dtype = -1;
}

eva_status eva_model_plan_bytes(eva_weights_bytes *b, const char *path, const eva_config *cfg) {
    memset(b, 0, sizeof *b);
    b->mapped_dtype = -1;
    eva_tensor_table tt;
    eva_status s = eva_tensors_build(&tt, cfg);
    if (s != EVA_OK) return s;
    if (!path) {
        b->arena_bytes = (int64_t)arena_bytes_of(tt.arena_floats);
        eva_tensors_free(&tt);
        return EVA_OK;
    }
    eva_safetensors *st = NULL;
    if ((s = eva_checkpoint_open(&st, path)) != EVA_OK) {
        eva_tensors_free(&tt);
        return s;
    }
    int64_t nf = 0, n16 = 0;
    for (int j = 0; j < tt.count; j++) {
        const eva_tensor_desc *d = &tt.items[j];
        int i = eva_safetensors_find(st, d->official);
        if (i < 0 && !tt.official_only) i = eva_safetensors_find(st, d->name);
        if (i < 0) continue;
        const eva_safetensors *file = NULL;
        int fidx = -1;
        placement pl = place_of(d, st, i, &file, &fidx);
        if (pl == PLACE_MAP)
            note_mapped(b, d, eva_safetensors_get(st, i));
        else if (pl == PLACE_COPY16)
            n16 += pad_floats(d->numel);
        else
            nf += pad_floats(d->numel);
    }
    int64_t owned = nf + (n16 + 1) / 2; /* as model_place allocates it */
    b->arena_bytes = (int64_t)arena_bytes_of(owned > 0 ? owned : EVA_ARENA_ALIGN_FLOATS);
    eva_safetensors_close(st);
    eva_tensors_free(&tt);
    return EVA_OK;
}

/* The mapping of `file` (made on first use); keys[] holds the file handle of each of m->maps. */
static eva_status map_of(eva_model *m, const eva_safetensors **keys, const eva_safetensors *file,
                         const unsigned char **base) {
    for (int k = 0; k < m->nmaps; k++)
        if (keys[k] == file) {
            *base = m->maps[k].addr;
            return EVA_OK;
        }
    eva_status s = eva_safetensors_map(file, &m->maps[m->nmaps].addr, &m->maps[m->nmaps].len);
    if (s != EVA_OK) return s;
    keys[m->nmaps] = file;
    *base = m->maps[m->nmaps++].addr;
    return EVA_OK;
}

/* Tensor i of st, F16/BF16, copied into dst in its dtype (read widened, narrowed back: exact). */
static eva_status copy16(uint16_t *dst, const eva_safetensors *st, int i, const eva_tensor_desc *d, const char *path) {
    const eva_st_tensor *t = eva_safetensors_get(st, i);
    float *tmp = malloc((size_t)d->numel * sizeof *tmp + 4);
    if (!tmp) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory assembling '%s'", path, d->name);
    eva_status s = eva_safetensors_read_f32(st, i, tmp, d->numel);
    for (int64_t k = 0; s == EVA_OK && k < d->numel; k++)
        dst[k] = t->dtype == EVA_ST_BF16 ? eva_f32_to_bf16(tmp[k]) : eva_f32_to_f16(tmp[k]);
    free(tmp);
    return s;
}

/* Places every table entry j (handle tensor src[j]): in place in its file's mapping, copied in
 * its dtype, or widened into a fresh fp32 arena. */
static eva_status model_place(eva_model *m, const eva_safetensors *st, const int *src, const char *path) {
    const eva_tensor_table *tt = &m->tensors;
    eva_status s = EVA_OK;
    placement *pl = malloc((size_t)(tt->count > 0 ? tt->count : 1) * sizeof *pl);
    const eva_safetensors **keys = calloc((size_t)(tt->count > 0 ? tt->count : 1), sizeof *keys);
    m->maps = calloc((size_t)(tt->count > 0 ? tt->count : 1), sizeof *m->maps);
    if (!pl || !keys || !m->maps) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    int64_t nf = 0, n16 = 0;
    for (int j = 0; j < tt->count && s == EVA_OK; j++) {
        const eva_tensor_desc *d = &tt->items[j];
        const eva_safetensors *file = NULL;
        int fidx = -1;
        pl[j] = place_of(d, st, src[j], &file, &fidx);
        m->at[j].dtype = pl[j] == PLACE_F32 ? EVA_DT_F32 : (eva_dtype)eva_safetensors_get(st, src[j])->dtype;
        if (pl[j] == PLACE_MAP) {
            const unsigned char *base = NULL;
            if ((s = map_of(m, keys, file, &base)) != EVA_OK) break;
            m->at[j].data = base + eva_safetensors_data_offset(file, fidx);
            note_mapped(&m->bytes, d, eva_safetensors_get(st, src[j]));
        } else if (pl[j] == PLACE_COPY16) {
            n16 += pad_floats(d->numel);
        } else {
            nf += pad_floats(d->numel);
        }
    }
    if (s != EVA_OK || (s = arena_alloc(m, nf + (n16 + 1) / 2, path)) != EVA_OK) goto done;
    float *f = m->arena;
    uint16_t *h = (uint16_t *)(m->arena + nf); /* the 16-bit copies after the fp32 tensors */
    for (int j = 0; j < tt->count && s == EVA_OK; j++) {
        const eva_tensor_desc *d = &tt->items[j];
        if (pl[j] == PLACE_F32) {
            memset(f + d->numel, 0, (size_t)(pad_floats(d->numel) - d->numel) * sizeof(float));
            s = eva_safetensors_read_f32(st, src[j], f, d->numel);
            m->at[j].data = f;
            f += pad_floats(d->numel);
        } else if (pl[j] == PLACE_COPY16) {
            s = copy16(h, st, src[j], d, path);
            m->at[j].data = h;
            h += pad_floats(d->numel);
        }
    }
done:
    free(pl);
    free(keys);
    return s;
}

/* ---- the one-line report of every offender ------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
} msgbuf;

static void mb_add(msgbuf *b, const char *fmt, ...) EVA_PRINTF(2, 3);
static void mb_add(msgbuf *b, const char *fmt, ...) {
    if (b->len + 1 >= b->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    b->len += (size_t)n;
    if (b->len >= b->cap) b->len = b->cap - 1;
}

static void fmt_shape(msgbuf *b, const int64_t *shape, int ndim) {
    mb_add(b, "[");
    for (int d = 0; d < ndim; d++) mb_add(b, "%s%" PRId64, d ? "," : "", shape[d]);
    mb_add(b, "]");
}

typedef enum { OFF_UNEXPECTED = 0, OFF_DUPLICATE, OFF_SHAPE, OFF_DTYPE, OFF_MISSING, OFF_KINDS } offender_kind;

eva_status eva_model_load(eva_model *m, const char *path, const eva_config *cfg) {
    eva_status s;
    eva_safetensors *st = NULL;
    int *src = NULL, *kind_of = NULL, *tab_of = NULL;
    char *msg = NULL;
    memset(m, 0, sizeof *m);
    if (!path || !cfg) return eva_fail(EVA_ERR_INVALID_ARG, "eva_model_load: no path or config");

    if ((s = eva_checkpoint_open(&st, path)) != EVA_OK) return s;
    if ((s = model_alloc(m, cfg, path)) != EVA_OK) goto fail;
    const eva_tensor_table *tt = &m->tensors;
    int nf = eva_safetensors_count(st);
    src = malloc((size_t)(tt->count > 0 ? tt->count : 1) * sizeof *src);
    kind_of = malloc((size_t)(nf > 0 ? nf : 1) * sizeof *kind_of);  /* -1 ok, -2 ignored, else kind */
    tab_of = malloc((size_t)(nf > 0 ? nf : 1) * sizeof *tab_of);
    if (!src || !kind_of || !tab_of) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int j = 0; j < tt->count; j++) src[j] = -1;

    int count[OFF_KINDS] = {0};
    int open_clip_named = 0; /* open_clip names given for an official-only family */
    for (int i = 0; i < nf; i++) {
        const eva_st_tensor *t = eva_safetensors_get(st, i);
        kind_of[i] = -1;
        tab_of[i] = -1;
        if (eva_tensors_is_ignored_key(t->name)) {
            kind_of[i] = -2;
            continue;
        }
        int j = eva_tensors_find(tt, t->name);
        if (j >= 0 && tt->official_only && strcmp(tt->items[j].official, t->name) != 0) {
            j = -1;
            open_clip_named++;
        }
        tab_of[i] = j;
        if (j < 0) {
            kind_of[i] = OFF_UNEXPECTED;
        } else if (src[j] >= 0) {
            kind_of[i] = OFF_DUPLICATE;
        } else {
            src[j] = i;
            const eva_tensor_desc *d = &tt->items[j];
            int same = t->ndim == d->ndim;
            for (int k = 0; same && k < d->ndim; k++) same = t->shape[k] == d->shape[k];
            if (!same)
                kind_of[i] = OFF_SHAPE;
            else if (t->dtype == EVA_ST_OTHER)
                kind_of[i] = OFF_DTYPE;
        }
        if (kind_of[i] >= 0) count[kind_of[i]]++;
    }
    for (int j = 0; j < tt->count; j++)
        if (src[j] < 0) count[OFF_MISSING]++;

    int bad = 0;
    for (int k = 0; k < OFF_KINDS; k++) bad += count[k];
    if (bad) {
        static const char *const what[OFF_KINDS] = {"unexpected", "duplicate (same tensor under both namings)",
                                                    "wrong shape", "unsupported dtype", "missing"};
        size_t cap = 3500;
        msg = malloc(cap);
        if (!msg) {
            s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        msgbuf b = {msg, cap, 0};
        mb_add(&b, "%s: weights do not match config '%s':", path, cfg->name);
        int first = 1;
        /* Order: missing, unexpected, duplicate, shape, dtype. */
        static const offender_kind order[OFF_KINDS] = {OFF_MISSING, OFF_UNEXPECTED, OFF_DUPLICATE, OFF_SHAPE,
                                                       OFF_DTYPE};
        for (int o = 0; o < OFF_KINDS; o++) {
            offender_kind k = order[o];
            if (!count[k]) continue;
            mb_add(&b, "%s %d %s%s (", first ? "" : ",", count[k], what[k],
                   k == OFF_UNEXPECTED || k == OFF_MISSING ? (count[k] == 1 ? " tensor" : " tensors") : "");
            first = 0;
            int shown = 0;
            if (k == OFF_MISSING) {
                for (int j = 0; j < tt->count && shown < EVA_LIST_MAX; j++) {
                    if (src[j] >= 0) continue;
                    const char *nm = tt->official_only ? tt->items[j].official : tt->items[j].name;
                    mb_add(&b, "%s%s", shown++ ? ", " : "", nm);
                    if (!tt->official_only && strcmp(tt->items[j].official, tt->items[j].name))
                        mb_add(&b, " or %s", tt->items[j].official);
                }
            } else {
                for (int i = 0; i < nf && shown < EVA_LIST_MAX; i++) {
                    if (kind_of[i] != (int)k) continue;
                    const eva_st_tensor *t = eva_safetensors_get(st, i);
                    mb_add(&b, "%s%s", shown++ ? ", " : "", t->name);
                    if (k == OFF_SHAPE) {
                        mb_add(&b, ": file ");
                        fmt_shape(&b, t->shape, t->ndim);
                        mb_add(&b, ", expected ");
                        fmt_shape(&b, tt->items[tab_of[i]].shape, tt->items[tab_of[i]].ndim);
                    } else if (k == OFF_DTYPE) {
                        mb_add(&b, ": %s", t->dtype_name);
                    } else if (k == OFF_DUPLICATE) {
                        mb_add(&b, " = %s", eva_safetensors_get(st, src[tab_of[i]])->name);
                    }
                }
            }
            if (count[k] > shown) mb_add(&b, ", and %d more", count[k] - shown);
            mb_add(&b, ")");
        }
        if (open_clip_named && open_clip_named == count[OFF_UNEXPECTED])
            mb_add(&b, "; config '%s' (8B/18B family) takes only the official naming (visual.blocks.*, no trunk)",
                   cfg->name);
        else if (count[OFF_MISSING] == tt->count && nf > 0)
            mb_add(&b, "; no tensor matched: is this the right --variant/--config?");
        int only_dtype = count[OFF_DTYPE] == bad;
        s = eva_fail(only_dtype ? EVA_ERR_UNSUPPORTED : EVA_ERR_SHAPE, "%s", msg);
        goto fail;
    }

    if ((s = model_place(m, st, src, path)) != EVA_OK) goto fail;
    model_bind(m);
    snprintf(m->source, sizeof m->source, "%s", path);
    m->random = 0;
    free(src);
    free(kind_of);
    free(tab_of);
    eva_safetensors_close(st);
    return EVA_OK;
fail:
    free(msg);
    free(src);
    free(kind_of);
    free(tab_of);
    eva_safetensors_close(st);
    eva_model_free(m);
    return s;
}

/* ---- random weights -------------------------------------------------------------------------- */

static inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* FNV-1a of a tensor name: the stream of a tensor depends on its name and the seed only, so
 * adding a tensor to the table does not change the others. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Counter-based uniforms in [-1, 1): pair k of a tensor is a pure function of (key, k), so the
 * fill is deterministic under any thread count. 24 random bits per value -> exact floats. */
static inline void uniform_pair(uint64_t key, uint64_t k, float *a, float *b) {
    uint64_t r = splitmix64(key ^ (k * 0xd1b54a32d192ed03ull));
    const float s = 1.0f / (float)(1 << 23);
    *a = (float)((int32_t)(r >> 40) - (1 << 23)) * s;
    *b = (float)((int32_t)((r >> 16) & 0xffffff) - (1 << 23)) * s;
}

typedef struct {
    uint64_t key;
    float base, scale;
} fill_rule;

/* Distribution of a tensor, from its shape and name. */
static fill_rule fill_rule_of(const eva_tensor_desc *d, uint64_t seed) {
    fill_rule r = {splitmix64(seed ^ name_hash(d->name)), 0.0f, 0.0f};
    if (d->ndim == 0) {                    /* logit_scale: filled separately */
    } else if (d->ndim == 1) {
        if (strstr(d->name, "bias")) {
            r.scale = 0.02f;               /* biases: small */
        } else {
            r.base = 1.0f;                 /* norm weights (and layer scales): 1 + noise */
            r.scale = 0.1f;
        }
    } else {
        /* weights [out, in...]: fan_in = product of the trailing dims; text_projection [W,E] is
         * used as x . P so its fan-in is W */
        int64_t fan_in = d->numel / (d->shape[0] > 0 ? d->shape[0] : 1);
        if (strstr(d->name, "text_projection")) fan_in = d->shape[0];
        if (fan_in < 1) fan_in = 1;
        r.scale = (float)sqrt(3.0 / (double)fan_in);
    }
    return r;
}

/* Elements [lo, hi) of a tensor; lo even. */
static void fill_range(float *dst, const fill_rule *r, int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; k += 2) {
        float a, b;
        uniform_pair(r->key, (uint64_t)k >> 1, &a, &b);
        dst[k] = r->base + r->scale * a;
        if (k + 1 < hi) dst[k + 1] = r->base + r->scale * b;
    }
}

#define EVA_FILL_CHUNK ((int64_t)1 << 18) /* elements per work item (even) */

eva_status eva_model_init_random(eva_model *m, const eva_config *cfg, uint64_t seed) {
    eva_status s;
    char what[64];
    int64_t *first_chunk = NULL;
    fill_rule *rules = NULL;
    snprintf(what, sizeof what, "random(%" PRIu64 ")", seed);
    if (!cfg) return eva_fail(EVA_ERR_INVALID_ARG, "eva_model_init_random: no config");
    if ((s = model_alloc_fp32(m, cfg, what)) != EVA_OK) goto fail;
    const eva_tensor_table *tt = &m->tensors;
    /* Work items: every tensor cut into chunks, all in one parallel loop. */
    first_chunk = malloc((size_t)(tt->count + 1) * sizeof *first_chunk);
    rules = malloc((size_t)(tt->count > 0 ? tt->count : 1) * sizeof *rules);
    if (!first_chunk || !rules) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    first_chunk[0] = 0;
    for (int j = 0; j < tt->count; j++) {
        const eva_tensor_desc *d = &tt->items[j];
        rules[j] = fill_rule_of(d, seed);
        if (d->ndim == 0) m->arena[d->offset] = (float)log(100.0);
        int64_t nch = d->ndim == 0 ? 0 : (d->numel + EVA_FILL_CHUNK - 1) / EVA_FILL_CHUNK;
        first_chunk[j + 1] = first_chunk[j] + nch;
    }
    const int64_t nchunks = first_chunk[tt->count];
    float *arena = m->arena;
#ifdef EVA_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 4)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        int lo = 0, hi = tt->count - 1; /* tensor j with first_chunk[j] <= c < first_chunk[j+1] */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (first_chunk[mid] <= c) lo = mid;
            else hi = mid - 1;
        }
        const eva_tensor_desc *d = &tt->items[lo];
        int64_t b = (c - first_chunk[lo]) * EVA_FILL_CHUNK;
        int64_t e = b + EVA_FILL_CHUNK < d->numel ? b + EVA_FILL_CHUNK : d->numel;
        fill_range(arena + d->offset, &rules[lo], b, e);
    }
    free(first_chunk);
    free(rules);
    model_bind(m);
    snprintf(m->source, sizeof m->source, "%s", what);
    m->random = 1;
    return EVA_OK;
fail:
    free(first_chunk);
    free(rules);
    eva_model_free(m);
    return s;
}

/* ---- random weights to a file ------------------------------------------------------------------ */

typedef struct {
    const eva_tensor_table *tt;
    uint64_t seed;
} write_ctx;

static int write_fill(void *ctx, int item, int64_t first, int64_t count, float *dst) {
    const write_ctx *w = ctx;
    const eva_tensor_desc *d = &w->tt->items[item];
    if (d->ndim == 0) {
        dst[0] = (float)log(100.0);
        return 0;
    }
    fill_rule r = fill_rule_of(d, w->seed);
    for (int64_t k = 0; k < count; k += 2) { /* first is even: chunks of 512 */
        float a, b;
        uniform_pair(r.key, (uint64_t)(first + k) >> 1, &a, &b);
        dst[k] = r.base + r.scale * a;
        if (k + 1 < count) dst[k + 1] = r.base + r.scale * b;
    }
    return 0;
}

eva_status eva_model_write_random(const char *path, const eva_config *cfg, uint64_t seed, eva_dtype dtype) {
    eva_tensor_table tt;
    eva_status s = eva_tensors_build(&tt, cfg);
    if (s != EVA_OK) return s;
    eva_st_write_item *items = calloc((size_t)(tt.count > 0 ? tt.count : 1), sizeof *items);
    char *json = eva_config_to_json(cfg, false);
    if (!items || !json) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
    } else {
        for (int j = 0; j < tt.count; j++) {
            const eva_tensor_desc *d = &tt.items[j];
            items[j] = (eva_st_write_item){tt.official_only ? d->official : d->name, (eva_st_dtype)dtype, d->ndim,
                                           d->shape, NULL};
        }
        const char *meta[] = {EVA_CONFIG_METADATA_KEY, json, NULL};
        write_ctx w = {&tt, seed};
        s = eva_safetensors_write_stream(path, items, tt.count, meta, write_fill, &w);
    }
    free(json);
    free(items);
    eva_tensors_free(&tt);
    return s;
}

/* ---- config from metadata ------------------------------------------------------------------- */

eva_status eva_model_config_from_weights(eva_config *cfg, const char *path) {
    const char *how;
    return eva_checkpoint_config(cfg, path, &how);
}
