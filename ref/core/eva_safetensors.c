/* eva_safetensors.c: validating safetensors reader and a small writer (see eva_safetensors.h).
 *
 * Validation follows the reference implementation (huggingface/safetensors, Metadata::validate):
 * header length within the file and under 100 MB, a JSON object, entries with a known dtype, a
 * shape of non-negative integers, offsets that match shape x itemsize with overflow checks, and
 * tensors that tile the data buffer exactly. Nothing is allocated from a file field before it has
 * been checked against the real file size.
 */
#include "eva_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eva_half.h"

struct eva_safetensors {
    char *path;
    int fd;
    uint64_t file_size;   /* bytes */
    uint64_t data_start;  /* 8 + N */
    uint64_t data_size;   /* file_size - data_start */
    eva_st_tensor *t;     /* [n] */
    char **names;         /* [n], owned; t[i].name points here */
    int n;
    char **meta_k, **meta_v; /* [nmeta] */
    int nmeta;
    /* composite handles only (fd < 0): the handles the pieces come from, and each tensor's pieces */
    eva_safetensors **sub;      /* [nsub], owned */
    int nsub;
    eva_st_composite_item *items; /* [n]; name unused (see names) */
};

typedef struct {
    const char *name;
    int bits;
    eva_st_dtype dt;
} st_dtype_info;

/* Every dtype of safetensors' Dtype enum (tensor.rs). */
static const st_dtype_info st_dtypes[] = {
    {"F32", 32, EVA_ST_F32},      {"F16", 16, EVA_ST_F16},          {"BF16", 16, EVA_ST_BF16},
    {"BOOL", 8, EVA_ST_OTHER},    {"U8", 8, EVA_ST_OTHER},          {"I8", 8, EVA_ST_OTHER},
    {"I16", 16, EVA_ST_OTHER},    {"U16", 16, EVA_ST_OTHER},        {"I32", 32, EVA_ST_OTHER},
    {"U32", 32, EVA_ST_OTHER},    {"F64", 64, EVA_ST_OTHER},        {"I64", 64, EVA_ST_OTHER},
    {"U64", 64, EVA_ST_OTHER},    {"C64", 64, EVA_ST_OTHER},        {"F8_E5M2", 8, EVA_ST_OTHER},
    {"F8_E4M3", 8, EVA_ST_OTHER}, {"F8_E8M0", 8, EVA_ST_OTHER},     {"F8_E4M3FNUZ", 8, EVA_ST_OTHER},
    {"F8_E5M2FNUZ", 8, EVA_ST_OTHER}, {"F4", 4, EVA_ST_OTHER},      {"F6_E2M3", 6, EVA_ST_OTHER},
    {"F6_E3M2", 6, EVA_ST_OTHER},
};

const char *eva_st_dtype_name(eva_st_dtype dt) {
    switch (dt) {
    case EVA_ST_F32: return "F32";
    case EVA_ST_F16: return "F16";
    case EVA_ST_BF16: return "BF16";
    case EVA_ST_OTHER: break;
    }
    return NULL;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Reads exactly n bytes at off; 0 on success, else errno-ish (-1 with errno 0 on EOF). */
static int st_pread_all(int fd, void *dst, size_t n, uint64_t off) {
    unsigned char *p = dst;
    while (n > 0) {
        size_t want = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t got = pread(fd, p, want, (off_t)off);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (got == 0) {
            errno = 0;
            return -1;
        }
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* A JSON number that is a non-negative integer below 2^63 (cJSON keeps numbers as doubles, exact
 * up to 2^53; anything larger cannot describe a real file anyway and is refused by the size
 * checks that follow). */
static int st_json_u63(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || !(d < 9223372036854775808.0)) return 0; /* also rejects NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

static void st_fmt_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, d ? "," : "", shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

void eva_safetensors_close(eva_safetensors *st) {
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->nsub; i++) eva_safetensors_close(st->sub[i]);
    free(st->sub);
    free(st->items);
    if (st->names)
        for (int i = 0; i < st->n; i++) free(st->names[i]);
    free(st->names);
    free(st->t);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_k[i]);
        free(st->meta_v[i]);
    }
    free(st->meta_k);
    free(st->meta_v);
    free(st->path);
    free(st);
}

/* qsort helpers over index arrays (the tensor table is reached through a file-scope pointer set
 * just before sorting; open() is not reentrant on one handle, and qsort has no context arg). */
static _Thread_local const eva_st_tensor *st_sort_t;

static int st_cmp_name(const void *a, const void *b) {
    return strcmp(st_sort_t[*(const int *)a].name, st_sort_t[*(const int *)b].name);
}

static int st_cmp_range(const void *a, const void *b) {
    const eva_st_tensor *x = &st_sort_t[*(const int *)a], *y = &st_sort_t[*(const int *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry into *t (name already set). */
static eva_status st_parse_entry(eva_safetensors *st, eva_st_tensor *t, const cJSON *e) {
    const char *path = st->path, *name = t->name;
    if (!cJSON_IsObject(e))
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (!cJSON_IsArray(sh))
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    if (!cJSON_IsArray(off))
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"data_offsets\"", path, name);

    const st_dtype_info *info = NULL;
    for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
        if (!strcmp(st_dtypes[k].name, dt->valuestring)) info = &st_dtypes[k];
    if (!info)
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, name, dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", info->name);
    t->dtype = info->dt;
    t->bits = info->bits;

    int ndim = cJSON_GetArraySize(sh);
    if (ndim > EVA_ST_MAX_NDIM)
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions (at most %d supported)",
                        path, name, ndim, EVA_ST_MAX_NDIM);
    t->ndim = ndim;
    int d = 0, has_zero = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        uint64_t u;
        if (!st_json_u63(v, &u))
            return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                            path, name, d);
        t->shape[d] = (int64_t)u;
        if (u == 0) has_zero = 1;
    }
    int64_t numel = 1;
    if (has_zero) {
        numel = 0;
    } else {
        for (d = 0; d < ndim; d++) {
            if (numel > INT64_MAX / t->shape[d])
                return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': element count of the shape overflows",
                                path, name);
            numel *= t->shape[d];
        }
    }
    t->numel = numel;
    if (numel > INT64_MAX / t->bits)
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': byte size of the shape overflows", path, name);
    uint64_t nbits = (uint64_t)numel * (uint64_t)t->bits;
    if (nbits % 8)
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': %s shape is not a whole number of bytes",
                        path, name, t->dtype_name);
    uint64_t nbytes = nbits / 8;

    uint64_t b = 0, en = 0;
    if (cJSON_GetArraySize(off) != 2 || !st_json_u63(off->child, &b) || !st_json_u63(off->child->next, &en))
        return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s': data_offsets is not a pair of non-negative integers",
                        path, name);
    if (b > en || en > st->data_size)
        return eva_fail(EVA_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] out of range (data is %" PRIu64
                        " bytes)",
                        path, name, b, en, st->data_size);
    if (en - b != nbytes) {
        char sbuf[160];
        st_fmt_shape(sbuf, sizeof sbuf, t->shape, ndim);
        return eva_fail(EVA_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                        " bytes but %s %s needs %" PRIu64,
                        path, name, b, en, en - b, t->dtype_name, sbuf, nbytes);
    }
    t->begin = b;
    t->end = en;
    return EVA_OK;
}

static eva_status st_parse_metadata(eva_safetensors *st, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return eva_fail(EVA_ERR_FORMAT, "%s: __metadata__ is not a JSON object", st->path);
    int n = cJSON_GetArraySize(m);
    if (n == 0) return EVA_OK;
    st->meta_k = calloc((size_t)n, sizeof *st->meta_k);
    st->meta_v = calloc((size_t)n, sizeof *st->meta_v);
    if (!st->meta_k || !st->meta_v)
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading __metadata__", st->path);
    for (const cJSON *v = m->child; v; v = v->next) {
        if (!cJSON_IsString(v) || !v->valuestring)
            return eva_fail(EVA_ERR_FORMAT, "%s: __metadata__ value of '%.64s' is not a string", st->path,
                            v->string ? v->string : "?");
        for (int k = 0; k < st->nmeta; k++)
            if (!strcmp(st->meta_k[k], v->string))
                return eva_fail(EVA_ERR_FORMAT, "%s: __metadata__ has key '%.64s' twice", st->path, v->string);
        st->meta_k[st->nmeta] = st_strdup(v->string);
        st->meta_v[st->nmeta] = st_strdup(v->valuestring);
        st->nmeta++;
        if (!st->meta_k[st->nmeta - 1] || !st->meta_v[st->nmeta - 1])
            return eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading __metadata__", st->path);
    }
    return EVA_OK;
}

static eva_status st_parse_header(eva_safetensors *st, const char *hdr, size_t len) {
    const char *path = st->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, len, &end, 0);
    if (!root) return eva_fail(EVA_ERR_FORMAT, "%s: header is not valid JSON", path);
    eva_status s = EVA_OK;
    int *idx = NULL;
    if (!cJSON_IsObject(root) || hdr[0] != '{') {
        s = eva_fail(EVA_ERR_FORMAT, "%s: header is not a JSON object%s", path,
                     cJSON_IsObject(root) ? " (it must start with '{')" : "");
        goto fail;
    }
    for (const char *p = end; p && p < hdr + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = eva_fail(EVA_ERR_FORMAT, "%s: header has bytes after its JSON object (offset %zu)", path,
                         (size_t)(p - hdr) + 8);
            goto fail;
        }
    }
    int total = cJSON_GetArraySize(root);
    st->t = calloc((size_t)(total > 0 ? total : 1), sizeof *st->t);
    st->names = calloc((size_t)(total > 0 ? total : 1), sizeof *st->names);
    if (!st->t || !st->names) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading the header (%d entries)", path, total);
        goto fail;
    }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        const char *key = e->string ? e->string : "";
        if (!strcmp(key, "__metadata__")) {
            if (seen_meta++) {
                s = eva_fail(EVA_ERR_FORMAT, "%s: header has __metadata__ twice", path);
                goto fail;
            }
            if ((s = st_parse_metadata(st, e)) != EVA_OK) goto fail;
            continue;
        }
        int i = st->n;
        st->names[i] = st_strdup(key);
        if (!st->names[i]) {
            s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading the header", path);
            goto fail;
        }
        st->n++;
        st->t[i].name = st->names[i];
        if ((s = st_parse_entry(st, &st->t[i], e)) != EVA_OK) goto fail;
    }

    /* Duplicate names (JSON objects may repeat keys; cJSON keeps both). */
    idx = malloc((size_t)(st->n > 0 ? st->n : 1) * sizeof *idx);
    if (!idx) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory validating the header", path);
        goto fail;
    }
    for (int i = 0; i < st->n; i++) idx[i] = i;
    st_sort_t = st->t;
    qsort(idx, (size_t)st->n, sizeof *idx, st_cmp_name);
    for (int i = 1; i < st->n; i++) {
        if (!strcmp(st->t[idx[i]].name, st->t[idx[i - 1]].name)) {
            s = eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, st->t[idx[i]].name);
            goto fail;
        }
    }
    /* The tensors must tile [0, data_size) exactly: no overlap, no hole, nothing trailing. */
    qsort(idx, (size_t)st->n, sizeof *idx, st_cmp_range);
    uint64_t expect = 0;
    for (int i = 0; i < st->n; i++) {
        const eva_st_tensor *t = &st->t[idx[i]];
        if (t->begin < expect) {
            s = eva_fail(EVA_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (byte %" PRIu64 ")", path,
                         st->t[idx[i - 1]].name, t->name, t->begin);
            goto fail;
        }
        if (t->begin > expect) {
            s = eva_fail(EVA_ERR_FORMAT, "%s: hole in the data before tensor '%s' (bytes %" PRIu64 "..%" PRIu64 ")",
                         path, t->name, expect, t->begin);
            goto fail;
        }
        expect = t->end;
    }
    if (expect != st->data_size) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: %" PRIu64 " bytes after the last tensor (data is %" PRIu64
                     " bytes, tensors cover %" PRIu64 ")",
                     path, st->data_size - expect, st->data_size, expect);
        goto fail;
    }
fail:
    free(idx);
    cJSON_Delete(root);
    return s;
}

eva_status eva_safetensors_open(eva_safetensors **out, const char *path) {
    *out = NULL;
    if (!path) return eva_fail(EVA_ERR_INVALID_ARG, "safetensors: no path given");
    eva_status s = EVA_OK;
    char *hdr = NULL;
    eva_safetensors *st = calloc(1, sizeof *st);
    if (!st) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
    st->fd = -1;
    st->path = st_strdup(path);
    if (!st->path) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0) {
        s = eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(st->fd, &sb) != 0) {
        s = eva_fail(EVA_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        s = eva_fail(EVA_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    st->file_size = (uint64_t)sb.st_size;
    if (st->file_size == 0) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: file is empty, not safetensors", path);
        goto fail;
    }
    if (st->file_size < 8) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: file is %" PRIu64 " bytes, too short for a safetensors header", path,
                     st->file_size);
        goto fail;
    }
    unsigned char lenb[8];
    if (st_pread_all(st->fd, lenb, 8, 0) != 0) {
        s = eva_fail(EVA_ERR_IO, "%s: cannot read the header length: %s", path,
                     errno ? strerror(errno) : "file ended");
        goto fail;
    }
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | lenb[k];
    if (n == 0) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: header length is 0", path);
        goto fail;
    }
    if (n > st->file_size - 8) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the file (%" PRIu64
                     " bytes): truncated or not safetensors", path, n, st->file_size);
        goto fail;
    }
    if (n > EVA_ST_MAX_HEADER) {
        s = eva_fail(EVA_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", path, n,
                     EVA_ST_MAX_HEADER);
        goto fail;
    }
    st->data_start = 8 + n;
    st->data_size = st->file_size - st->data_start;
    hdr = malloc((size_t)n + 1);
    if (!hdr) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
        goto fail;
    }
    if (st_pread_all(st->fd, hdr, (size_t)n, 8) != 0) {
        s = eva_fail(EVA_ERR_IO, "%s: cannot read the header: %s", path, errno ? strerror(errno) : "file ended");
        goto fail;
    }
    hdr[n] = '\0';
    if ((s = st_parse_header(st, hdr, (size_t)n)) != EVA_OK) goto fail;
    free(hdr);
    *out = st;
    return EVA_OK;
fail:
    free(hdr);
    eva_safetensors_close(st);
    return s;
}

const char *eva_safetensors_path(const eva_safetensors *st) { return st ? st->path : NULL; }

int eva_safetensors_count(const eva_safetensors *st) { return st ? st->n : 0; }

const eva_st_tensor *eva_safetensors_get(const eva_safetensors *st, int i) {
    if (!st || i < 0 || i >= st->n) return NULL;
    return &st->t[i];
}

int eva_safetensors_find(const eva_safetensors *st, const char *name) {
    if (!st || !name) return -1;
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return i;
    return -1;
}

const char *eva_safetensors_metadata(const eva_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_k[i], key)) return st->meta_v[i];
    return NULL;
}

int eva_safetensors_metadata_count(const eva_safetensors *st) { return st ? st->nmeta : 0; }

int eva_safetensors_metadata_at(const eva_safetensors *st, int i, const char **key, const char **value) {
    if (!st || i < 0 || i >= st->nmeta) return 0;
    if (key) *key = st->meta_k[i];
    if (value) *value = st->meta_v[i];
    return 1;
}

eva_status eva_safetensors_map(const eva_safetensors *st, void **addr, size_t *len) {
    *addr = NULL;
    *len = 0;
    if (!st || st->fd < 0) return eva_fail(EVA_ERR_INVALID_ARG, "eva_safetensors_map: no open file");
    if (st->file_size > (uint64_t)SIZE_MAX)
        return eva_fail(EVA_ERR_IO, "%s: %" PRIu64 " bytes cannot be mapped here", st->path, st->file_size);
    void *p = mmap(NULL, (size_t)st->file_size, PROT_READ, MAP_PRIVATE, st->fd, 0);
    if (p == MAP_FAILED) return eva_fail(EVA_ERR_IO, "%s: cannot map the file: %s", st->path, strerror(errno));
    *addr = p;
    *len = (size_t)st->file_size;
    return EVA_OK;
}

uint64_t eva_safetensors_data_offset(const eva_safetensors *st, int i) {
    if (!st || i < 0 || i >= st->n) return 0;
    return st->data_start + st->t[i].begin;
}

int eva_safetensors_native_order(void) { return host_is_little_endian(); }

#define ST_CHUNK_ELEMS ((size_t)1 << 20)

/* Tensor i of a composite handle: its pieces one after the other, or the transpose of its one
 * 2-D piece (through a temporary copy). */
static eva_status st_read_composite(const eva_safetensors *st, int i, float *dst) {
    const eva_st_composite_item *it = &st->items[i];
    if (it->transpose) {
        const eva_st_tensor *p = eva_safetensors_get(st->sub[it->sub[0]], it->idx[0]);
        const int64_t r = p->shape[0], c = p->shape[1];
        float *tmp = malloc((size_t)p->numel * sizeof *tmp);
        if (!tmp) return eva_fail(EVA_ERR_NOMEM, "%s: tensor '%s': out of memory", st->path, st->t[i].name);
        eva_status s = eva_safetensors_read_f32(st->sub[it->sub[0]], it->idx[0], tmp, p->numel);
        if (s == EVA_OK)
            for (int64_t a = 0; a < r; a++)
                for (int64_t b = 0; b < c; b++) dst[b * r + a] = tmp[a * c + b];
        free(tmp);
        return s;
    }
    int64_t off = 0;
    for (int k = 0; k < it->npieces; k++) {
        const eva_st_tensor *p = eva_safetensors_get(st->sub[it->sub[k]], it->idx[k]);
        eva_status s = eva_safetensors_read_f32(st->sub[it->sub[k]], it->idx[k], dst + off, p->numel);
        if (s != EVA_OK) return s;
        off += p->numel;
    }
    return EVA_OK;
}

/* Checks item j against its pieces and fills the presented tensor t. */
static eva_status st_composite_item(eva_safetensors *st, const eva_st_composite_item *it, eva_st_tensor *t) {
    const char *nm = it->name ? it->name : "?";
    if (it->npieces < 1 || it->npieces > EVA_ST_MAX_PIECES || it->ndim < 0 || it->ndim > EVA_ST_MAX_NDIM ||
        (it->transpose && (it->npieces != 1 || it->ndim != 2)))
        return eva_fail(EVA_ERR_INTERNAL, "%s: tensor '%s': bad composite description", st->path, nm);
    int64_t numel = 1, sum = 0;
    for (int d = 0; d < it->ndim; d++) {
        if (it->shape[d] < 0) return eva_fail(EVA_ERR_INTERNAL, "%s: tensor '%s': negative dim", st->path, nm);
        numel *= it->shape[d];
    }
    const eva_st_tensor *first = NULL;
    for (int k = 0; k < it->npieces; k++) {
        if (it->sub[k] < 0 || it->sub[k] >= st->nsub || !eva_safetensors_get(st->sub[it->sub[k]], it->idx[k]))
            return eva_fail(EVA_ERR_INTERNAL, "%s: tensor '%s': piece %d does not exist", st->path, nm, k);
        const eva_st_tensor *p = eva_safetensors_get(st->sub[it->sub[k]], it->idx[k]);
        int same_rows = !first || p->ndim == first->ndim;
        for (int d = 1; same_rows && first && d < p->ndim; d++) same_rows = p->shape[d] == first->shape[d];
        if (!same_rows || (k > 0 && it->transpose))
            return eva_fail(EVA_ERR_SHAPE, "%s: tensor '%s': pieces %s and %s differ beyond their first dimension",
                            st->path, nm, first->name, p->name);
        if (first && strcmp(p->dtype_name, first->dtype_name) != 0)
            return eva_fail(EVA_ERR_FORMAT, "%s: tensor '%s' is made of %s (%s) and %s (%s): pieces of one tensor "
                            "must share a dtype", st->path, nm, first->name, first->dtype_name, p->name, p->dtype_name);
        if (!first) first = p;
        sum += p->numel;
    }
    int trailing = it->npieces == 1 || it->ndim == first->ndim;
    for (int d = 1; trailing && it->npieces > 1 && d < it->ndim; d++) trailing = it->shape[d] == first->shape[d];
    if (sum != numel || !trailing || (it->transpose && first->ndim != 2))
        return eva_fail(EVA_ERR_SHAPE, "%s: tensor '%s': its pieces (%s%s) hold %" PRId64 " values, its shape %" PRId64,
                        st->path, nm, first->name, it->npieces > 1 ? ", ..." : "", sum, numel);
    memset(t, 0, sizeof *t);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", first->dtype_name);
    t->dtype = first->dtype;
    t->bits = first->bits;
    t->ndim = it->ndim;
    for (int d = 0; d < it->ndim; d++) t->shape[d] = it->shape[d];
    t->numel = numel;
    return EVA_OK;
}

eva_status eva_safetensors_open_composite(eva_safetensors **out, const char *path, eva_safetensors **subs, int nsub,
                                          const eva_st_composite_item *items, int n) {
    eva_status s = EVA_OK;
    *out = NULL;
    eva_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        for (int k = 0; k < nsub; k++) eva_safetensors_close(subs[k]);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path ? path : "checkpoint");
    }
    st->fd = -1;
    st->sub = malloc((size_t)(nsub > 0 ? nsub : 1) * sizeof *st->sub);
    if (!st->sub) {
        for (int k = 0; k < nsub; k++) eva_safetensors_close(subs[k]);
        free(st);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path ? path : "checkpoint");
    }
    for (int k = 0; k < nsub; k++) st->sub[k] = subs[k];
    st->nsub = nsub;
    st->path = st_strdup(path ? path : "checkpoint");
    size_t cnt = (size_t)(n > 0 ? n : 1);
    st->t = calloc(cnt, sizeof *st->t);
    st->names = calloc(cnt, sizeof *st->names);
    st->items = calloc(cnt, sizeof *st->items);
    if (!st->path || !st->t || !st->names || !st->items) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path ? path : "checkpoint");
        goto fail;
    }
    for (int j = 0; j < n; j++) {
        st->n = j + 1; /* close() frees names[0..n) */
        if ((s = st_composite_item(st, &items[j], &st->t[j])) != EVA_OK) goto fail;
        st->items[j] = items[j];
        st->items[j].name = NULL;
        if (!(st->names[j] = st_strdup(items[j].name))) {
            s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", st->path);
            goto fail;
        }
        st->t[j].name = st->names[j];
        for (int k = 0; k < j; k++)
            if (!strcmp(st->names[k], st->names[j])) {
                s = eva_fail(EVA_ERR_FORMAT, "%s: two tensors map to '%s'", st->path, st->names[j]);
                goto fail;
            }
    }
    st->n = n;
    *out = st;
    return EVA_OK;
fail:
    eva_safetensors_close(st);
    return s;
}

int eva_safetensors_source(const eva_safetensors *st, int i, const eva_safetensors **file, int *index) {
    if (!st || i < 0 || i >= st->n) return 0;
    if (!st->items) {
        if (file) *file = st;
        if (index) *index = i;
        return 1;
    }
    const eva_st_composite_item *it = &st->items[i];
    if (it->npieces != 1 || it->transpose) return 0;
    return eva_safetensors_source(st->sub[it->sub[0]], it->idx[0], file, index);
}

eva_status eva_safetensors_read_f32(const eva_safetensors *st, int i, float *dst, int64_t dst_numel) {
    if (!st || i < 0 || i >= st->n)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: no tensor #%d", st ? st->path : "safetensors", i);
    const eva_st_tensor *t = &st->t[i];
    if (t->dtype == EVA_ST_OTHER)
        return eva_fail(EVA_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype %s (F32, F16 or BF16 expected)",
                        st->path, t->name, t->dtype_name);
    if (dst_numel != t->numel)
        return eva_fail(EVA_ERR_INTERNAL, "%s: tensor '%s': destination holds %" PRId64 " floats, tensor has %" PRId64,
                        st->path, t->name, dst_numel, t->numel);
    if (t->numel == 0) return EVA_OK;
    if (st->items) return st_read_composite(st, i, dst);
    uint64_t off = st->data_start + t->begin;
    if (t->dtype == EVA_ST_F32) {
        if (st_pread_all(st->fd, dst, (size_t)t->numel * 4, off) != 0)
            return eva_fail(EVA_ERR_IO, "%s: tensor '%s': read failed: %s", st->path, t->name,
                            errno ? strerror(errno) : "file ended (changed since it was opened?)");
        if (!host_is_little_endian()) {
            for (int64_t k = 0; k < t->numel; k++) {
                unsigned char b[4];
                memcpy(b, &dst[k], 4);
                dst[k] = eva_bits_to_f32((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                         (uint32_t)b[3] << 24);
            }
        }
        return EVA_OK;
    }
    size_t chunk = (size_t)t->numel < ST_CHUNK_ELEMS ? (size_t)t->numel : ST_CHUNK_ELEMS;
    unsigned char *buf = malloc(chunk * 2);
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: tensor '%s': out of memory", st->path, t->name);
    const int bf = t->dtype == EVA_ST_BF16;
    for (int64_t done = 0; done < t->numel;) {
        size_t m = (size_t)(t->numel - done) < chunk ? (size_t)(t->numel - done) : chunk;
        if (st_pread_all(st->fd, buf, m * 2, off + (uint64_t)done * 2) != 0) {
            eva_status s = eva_fail(EVA_ERR_IO, "%s: tensor '%s': read failed: %s", st->path, t->name,
                                    errno ? strerror(errno) : "file ended (changed since it was opened?)");
            free(buf);
            return s;
        }
        float *o = dst + done;
        if (bf)
            for (size_t k = 0; k < m; k++) o[k] = eva_bf16_to_f32((uint16_t)(buf[2 * k] | buf[2 * k + 1] << 8));
        else
            for (size_t k = 0; k < m; k++) o[k] = eva_f16_to_f32((uint16_t)(buf[2 * k] | buf[2 * k + 1] << 8));
        done += (int64_t)m;
    }
    free(buf);
    return EVA_OK;
}

/* ---- writer ---------------------------------------------------------------------------------- */

/* Values come from it->data or, without it, from fill() one chunk at a time. */
static int st_write_data(FILE *f, const eva_st_write_item *it, int i, int64_t numel, eva_st_fill fill, void *ctx) {
    unsigned char buf[4096];
    float chunk[512];
    size_t k = 0;
    for (int64_t j0 = 0; j0 < numel; j0 += 512) {
        int64_t m = numel - j0 < 512 ? numel - j0 : 512;
        const float *src = it->data ? it->data + j0 : chunk;
        if (!it->data && fill(ctx, i, j0, m, chunk) != 0) return -1;
        for (int64_t j = 0; j < m; j++) {
            float v = src[j];
            if (it->dtype == EVA_ST_F32) {
                uint32_t b = eva_f32_to_bits(v);
                buf[k++] = (unsigned char)b;
                buf[k++] = (unsigned char)(b >> 8);
                buf[k++] = (unsigned char)(b >> 16);
                buf[k++] = (unsigned char)(b >> 24);
            } else {
                uint16_t h = it->dtype == EVA_ST_F16 ? eva_f32_to_f16(v) : eva_f32_to_bf16(v);
                buf[k++] = (unsigned char)h;
                buf[k++] = (unsigned char)(h >> 8);
            }
            if (k + 4 > sizeof buf) {
                if (fwrite(buf, 1, k, f) != k) return -1;
                k = 0;
            }
        }
    }
    if (k && fwrite(buf, 1, k, f) != k) return -1;
    return 0;
}

eva_status eva_safetensors_write(const char *path, const eva_st_write_item *items, int n,
                                 const char *const *metadata) {
    return eva_safetensors_write_stream(path, items, n, metadata, NULL, NULL);
}

eva_status eva_safetensors_write_stream(const char *path, const eva_st_write_item *items, int n,
                                        const char *const *metadata, eva_st_fill fill, void *ctx) {
    eva_status s = EVA_OK;
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;
    FILE *f = NULL;
    int64_t *numel = calloc((size_t)(n > 0 ? n : 1), sizeof *numel);
    if (!root || !numel || n < 0) {
        s = eva_fail(n < 0 ? EVA_ERR_INVALID_ARG : EVA_ERR_NOMEM, "%s: cannot build the header", path);
        goto fail;
    }
    if (metadata && metadata[0]) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) {
            s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (int k = 0; metadata[k]; k += 2) {
            if (!metadata[k + 1]) {
                s = eva_fail(EVA_ERR_INVALID_ARG, "%s: metadata key '%s' has no value", path, metadata[k]);
                goto fail;
            }
            if (!cJSON_AddStringToObject(m, metadata[k], metadata[k + 1])) {
                s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
        }
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const eva_st_write_item *it = &items[i];
        if (!it->name || !strcmp(it->name, "__metadata__") || !eva_st_dtype_name(it->dtype) || it->ndim < 0 ||
            it->ndim > EVA_ST_MAX_NDIM || (it->ndim > 0 && !it->shape)) {
            s = eva_fail(EVA_ERR_INVALID_ARG, "%s: item %d: bad name, dtype or shape", path, i);
            goto fail;
        }
        int64_t ne = 1;
        for (int d = 0; d < it->ndim; d++) {
            if (it->shape[d] < 0 || (it->shape[d] > 0 && ne > INT64_MAX / 4 / it->shape[d])) {
                s = eva_fail(EVA_ERR_INVALID_ARG, "%s: tensor '%s': bad shape", path, it->name);
                goto fail;
            }
            ne *= it->shape[d];
        }
        if (ne > 0 && !it->data && !fill) {
            s = eva_fail(EVA_ERR_INVALID_ARG, "%s: tensor '%s': no data", path, it->name);
            goto fail;
        }
        numel[i] = ne;
        uint64_t bytes = (uint64_t)ne * (it->dtype == EVA_ST_F32 ? 4u : 2u);
        cJSON *e = cJSON_AddObjectToObject(root, it->name);
        cJSON *sh = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *off = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!e || !sh || !off || !cJSON_AddStringToObject(e, "dtype", eva_st_dtype_name(it->dtype))) {
            s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        for (int d = 0; d < it->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)it->shape[d]));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)pos));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(pos + bytes)));
        pos += bytes;
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        s = eva_fail(EVA_ERR_NOMEM, "%s: out of memory printing the header", path);
        goto fail;
    }
    size_t jl = strlen(json);
    size_t padded = (jl + 7) / 8 * 8;
    f = fopen(path, "wb");
    if (!f) {
        s = eva_fail(EVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    unsigned char lenb[8];
    for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)((uint64_t)padded >> (8 * k));
    int bad = fwrite(lenb, 1, 8, f) != 8 || fwrite(json, 1, jl, f) != jl;
    for (size_t k = jl; k < padded && !bad; k++) bad = fputc(' ', f) == EOF;
    for (int i = 0; i < n && !bad; i++) bad = st_write_data(f, &items[i], i, numel[i], fill, ctx) != 0;
    if (fclose(f) != 0) bad = 1;
    f = NULL;
    if (bad) s = eva_fail(EVA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
fail:
    if (f) fclose(f);
    free(json);
    free(numel);
    cJSON_Delete(root);
    return s;
}
