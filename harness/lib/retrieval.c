/* retrieval.c: the zero-shot retrieval protocol declared in retrieval.h (layouts, embedding loops,
 * cache, ranking, recall@k, predictions). See the header for what it owns and does not.
 *
 * Decisions:
 * - Parsing follows what CLIP_benchmark runs: flickr30k skips the first line (a header), strips
 *   each line (ASCII whitespace), skips blank lines and splits at ".jpg," (at the first one; a
 *   caption holding ".jpg," makes CLIP_benchmark stop, we keep the rest of the line as caption).
 *   mscoco_captions reads the json as pycocotools does (images[{id, file_name}], annotations
 *   [{image_id, caption}]). captions is a CSV as Python's csv module reads it (quoted fields with
 *   "" escapes, newlines inside quotes), an optional "path,caption" header, two fields per row.
 * - Everything CLIP_benchmark would stop on, or would silently count wrong (an image without a
 *   caption counts as a text-retrieval miss there), is an error naming file and line/entry.
 * - A file that exists but does not decode is a skip: the image leaves the gallery and its captions
 *   leave the queries; the numbers are CLIP_benchmark's on the annotations without that image.
 * - Scores are double dot products of the float32 normalised embeddings; the metric value is
 *   float32(hits) / float32(n), what torch's CPU mean of the 0/1 hit tensor returns.
 */
#include "retrieval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "golden.h"

/* ============================================================================================ */
/* Layout names. */

static const char *layout_names[] = {"mscoco_captions", "flickr30k", "captions"};
static const char *layout_default_ann[] = {"coco_test_karpathy.json", "flickr30k_test_karpathy.txt", "captions.csv"};

eva_status eva_rt_layout_parse(eva_rt_layout *l, const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, layout_names[i])) {
            *l = (eva_rt_layout)i;
            return EVA_OK;
        }
    return eva_fail(EVA_ERR_INVALID_ARG, "--dataset '%s': expected mscoco_captions, flickr30k or captions",
                    name ? name : "");
}

const char *eva_rt_layout_name(eva_rt_layout l) { return (unsigned)l < 3 ? layout_names[l] : "?"; }

/* ============================================================================================ */
/* Building a dataset: images in first-seen order, (image, caption) pairs, then image-major. */

typedef struct {
    eva_rt_dataset *ds;
    int cap_images;
    int *hash;      /* open addressing over image names: index + 1, 0 = empty */
    int hash_cap;
    int n_pairs, cap_pairs;
    int *pair_image; /* [n_pairs] */
    char **pair_text;
} builder;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static eva_status rehash(builder *b) {
    int nc = b->hash_cap ? b->hash_cap * 2 : 1024;
    int *nh = calloc((size_t)nc, sizeof *nh);
    if (!nh) return eva_fail(EVA_ERR_NOMEM, "out of memory indexing image names");
    for (int i = 0; i < b->ds->n_images; i++) {
        size_t h = (size_t)(fnv1a(b->ds->images[i]) & (uint64_t)(nc - 1));
        while (nh[h]) h = (h + 1) & (size_t)(nc - 1);
        nh[h] = i + 1;
    }
    free(b->hash);
    b->hash = nh;
    b->hash_cap = nc;
    return EVA_OK;
}

/* *idx <- the index of image `name`, appending it (with id) when new (or when id >= 0: always). */
static eva_status builder_image(builder *b, const char *name, size_t len, int64_t id, int *idx) {
    eva_rt_dataset *ds = b->ds;
    char *s = malloc(len + 1);
    if (!s) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    memcpy(s, name, len);
    s[len] = '\0';
    if (2 * (ds->n_images + 1) > b->hash_cap) {
        eva_status st = rehash(b);
        if (st != EVA_OK) return free(s), st;
    }
    size_t h = (size_t)(fnv1a(s) & (uint64_t)(b->hash_cap - 1));
    while (b->hash[h]) {
        if (id < 0 && !strcmp(ds->images[b->hash[h] - 1], s)) {
            *idx = b->hash[h] - 1;
            free(s);
            return EVA_OK;
        }
        h = (h + 1) & (size_t)(b->hash_cap - 1);
    }
    if (ds->n_images == b->cap_images) {
        int nc = b->cap_images ? 2 * b->cap_images : 256;
        char **ni = realloc(ds->images, (size_t)nc * sizeof *ni);
        if (ni) ds->images = ni;
        int64_t *nd = realloc(ds->image_ids, (size_t)nc * sizeof *nd);
        if (nd) ds->image_ids = nd;
        if (!ni || !nd) return free(s), eva_fail(EVA_ERR_NOMEM, "out of memory");
        b->cap_images = nc;
    }
    b->hash[h] = ds->n_images + 1;
    ds->images[ds->n_images] = s;
    ds->image_ids[ds->n_images] = id;
    *idx = ds->n_images++;
    return EVA_OK;
}

static eva_status builder_pair(builder *b, int image, const char *text, size_t len) {
    if (b->n_pairs >= (1 << 28)) return eva_fail(EVA_ERR_INVALID_ARG, "more than 2^28 captions");
    if (b->n_pairs == b->cap_pairs) {
        int nc = b->cap_pairs ? 2 * b->cap_pairs : 1024;
        int *ni = realloc(b->pair_image, (size_t)nc * sizeof *ni);
        if (ni) b->pair_image = ni;
        char **nt = realloc(b->pair_text, (size_t)nc * sizeof *nt);
        if (nt) b->pair_text = nt;
        if (!ni || !nt) return eva_fail(EVA_ERR_NOMEM, "out of memory");
        b->cap_pairs = nc;
    }
    char *s = malloc(len + 1);
    if (!s) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    memcpy(s, text, len);
    s[len] = '\0';
    b->pair_image[b->n_pairs] = image;
    b->pair_text[b->n_pairs++] = s;
    return EVA_OK;
}

static void builder_free(builder *b) {
    for (int i = 0; i < b->n_pairs; i++) free(b->pair_text[i]);
    free(b->pair_text);
    free(b->pair_image);
    free(b->hash);
}

/* Moves the pairs into ds image-major (stable within an image); every image needs a caption. */
static eva_status builder_finish(builder *b, const char *(*describe)(const eva_rt_dataset *, int, char *, size_t)) {
    eva_rt_dataset *ds = b->ds;
    if (b->n_pairs == 0) return eva_fail(EVA_ERR_INVALID_ARG, "%s: no captions", ds->annotations);
    ds->cap_start = calloc((size_t)ds->n_images + 1, sizeof *ds->cap_start);
    ds->cap_count = calloc((size_t)ds->n_images + 1, sizeof *ds->cap_count);
    ds->captions = calloc((size_t)b->n_pairs, sizeof *ds->captions);
    ds->caption_image = calloc((size_t)b->n_pairs, sizeof *ds->caption_image);
    if (!ds->cap_start || !ds->cap_count || !ds->captions || !ds->caption_image)
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (int p = 0; p < b->n_pairs; p++) ds->cap_count[b->pair_image[p]]++;
    for (int i = 0; i < ds->n_images; i++) {
        if (!ds->cap_count[i]) {
            char buf[4200];
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: %s has no caption (every image needs at least one)",
                            ds->annotations, describe(ds, i, buf, sizeof buf));
        }
        ds->cap_start[i + 1] = ds->cap_start[i] + ds->cap_count[i];
    }
    int *fill = calloc((size_t)ds->n_images, sizeof *fill);
    if (!fill) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (int p = 0; p < b->n_pairs; p++) {
        int i = b->pair_image[p], t = ds->cap_start[i] + fill[i]++;
        ds->captions[t] = b->pair_text[p];
        ds->caption_image[t] = i;
        b->pair_text[p] = NULL;
    }
    free(fill);
    ds->n_captions = b->n_pairs;
    b->n_pairs = 0;
    return EVA_OK;
}

static const char *describe_plain(const eva_rt_dataset *ds, int i, char *buf, size_t cap) {
    snprintf(buf, cap, "image %s", ds->images[i]);
    return buf;
}

static const char *describe_coco(const eva_rt_dataset *ds, int i, char *buf, size_t cap) {
    snprintf(buf, cap, "image id %lld (%s)", (long long)ds->image_ids[i], ds->images[i]);
    return buf;
}

/* Every image file must exist (a missing file is a wrong annotation, not a corrupt image). */
static eva_status check_files(const eva_rt_dataset *ds, const char *(*describe)(const eva_rt_dataset *, int, char *,
                                                                                 size_t)) {
    for (int i = 0; i < ds->n_images; i++) {
        char full[8400], buf[4200];
        snprintf(full, sizeof full, "%s/%s", ds->root, ds->images[i]);
        struct stat sb;
        if (stat(full, &sb) != 0 || !S_ISREG(sb.st_mode))
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: %s points at %s, which %s", ds->annotations,
                            describe(ds, i, buf, sizeof buf), full,
                            stat(full, &sb) != 0 ? "does not exist" : "is not a file");
    }
    return EVA_OK;
}

/* ============================================================================================ */
/* Reading files. */

static eva_status read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return eva_fail(EVA_ERR_IO, "%s: annotation file missing: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return eva_fail(EVA_ERR_IO, "%s: annotation file is not a regular file", path);
    if (sb.st_size > ((off_t)1 << 31)) return eva_fail(EVA_ERR_FORMAT, "%s: larger than 2 GiB", path);
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        return eva_fail(EVA_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, (size_t)sb.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err || n != (size_t)sb.st_size) {
        free(buf);
        return eva_fail(EVA_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return EVA_OK;
}

static int line_of(const char *buf, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

/* ============================================================================================ */
/* mscoco_captions. */

typedef struct {
    int64_t id;
    int index;
} id_index;

static int cmp_id(const void *a, const void *b) {
    int64_t x = ((const id_index *)a)->id, y = ((const id_index *)b)->id;
    return (x > y) - (x < y);
}

/* images[] -> ds->images in increasing id; ids sorted into *map for lookups. */
static eva_status coco_images(builder *b, const cJSON *images, id_index **map) {
    eva_rt_dataset *ds = b->ds;
    int n = cJSON_GetArraySize(images);
    if (n == 0) return eva_fail(EVA_ERR_INVALID_ARG, "%s: \"images\" is empty", ds->annotations);
    id_index *m = calloc((size_t)n, sizeof *m);
    if (!m) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    *map = m;
    int j = 0;
    for (const cJSON *it = images->child; it; it = it->next, j++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "file_name");
        if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) || fabs(id->valuedouble) > 9e15)
            return eva_fail(EVA_ERR_FORMAT, "%s: images[%d]: \"id\" missing or not an integer", ds->annotations, j);
        if (!cJSON_IsString(fn) || !fn->valuestring[0])
            return eva_fail(EVA_ERR_FORMAT, "%s: images[%d] (id %.0f): \"file_name\" missing or not a string",
                            ds->annotations, j, id->valuedouble);
        m[j].id = (int64_t)id->valuedouble;
        m[j].index = j;
    }
    qsort(m, (size_t)n, sizeof *m, cmp_id);
    for (int k = 1; k < n; k++)
        if (m[k].id == m[k - 1].id)
            return eva_fail(EVA_ERR_FORMAT, "%s: images[%d] and images[%d] have the same id %lld", ds->annotations,
                            m[k - 1].index, m[k].index, (long long)m[k].id);
    for (int k = 0; k < n; k++) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(images, m[k].index), "file_name");
        char rel[4200];
        int idx;
        snprintf(rel, sizeof rel, "val2014/%s", fn->valuestring);
        eva_status st = builder_image(b, rel, strlen(rel), m[k].id, &idx);
        if (st != EVA_OK) return st;
        m[k].index = idx; /* == k: sorted order */
    }
    return EVA_OK;
}

static eva_status coco_annotations(builder *b, const cJSON *anns, const id_index *map) {
    eva_rt_dataset *ds = b->ds;
    int j = 0;
    for (const cJSON *a = anns->child; a; a = a->next, j++) {
        const cJSON *iid = cJSON_GetObjectItemCaseSensitive(a, "image_id");
        const cJSON *cap = cJSON_GetObjectItemCaseSensitive(a, "caption");
        if (!cJSON_IsNumber(iid) || iid->valuedouble != floor(iid->valuedouble))
            return eva_fail(EVA_ERR_FORMAT, "%s: annotations[%d]: \"image_id\" missing or not an integer",
                            ds->annotations, j);
        if (!cJSON_IsString(cap))
            return eva_fail(EVA_ERR_FORMAT, "%s: annotations[%d]: \"caption\" missing or not a string",
                            ds->annotations, j);
        id_index key = {(int64_t)iid->valuedouble, 0};
        const id_index *hit = bsearch(&key, map, (size_t)ds->n_images, sizeof *map, cmp_id);
        if (!hit)
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: annotations[%d]: image_id %lld is not in \"images\"",
                            ds->annotations, j, (long long)key.id);
        eva_status st = builder_pair(b, hit->index, cap->valuestring, strlen(cap->valuestring));
        if (st != EVA_OK) return st;
    }
    return EVA_OK;
}

static eva_status load_coco(builder *b, const char *text, size_t len) {
    eva_rt_dataset *ds = b->ds;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = e && e >= text && e <= text + len ? (size_t)(e - text) : 0;
        return eva_fail(EVA_ERR_FORMAT, "%s: line %d: not valid JSON", ds->annotations, line_of(text, off));
    }
    eva_status st = EVA_OK;
    id_index *map = NULL;
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(doc, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(doc, "annotations");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(images) || !cJSON_IsArray(anns))
        st = eva_fail(EVA_ERR_FORMAT, "%s: expected a COCO captions object with \"images\" and \"annotations\" arrays",
                      ds->annotations);
    if (st == EVA_OK) st = coco_images(b, images, &map);
    if (st == EVA_OK) st = coco_annotations(b, anns, map);
    free(map);
    cJSON_Delete(doc);
    return st;
}

/* ============================================================================================ */
/* flickr30k. */

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static eva_status load_flickr(builder *b, const char *text, size_t len) {
    eva_rt_dataset *ds = b->ds;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        const char *e = memchr(text + i, '\n', len - i);
        size_t n = e ? (size_t)(e - (text + i)) : len - i;
        const char *s = text + i;
        i += n + 1;
        if (++line == 1) continue; /* header */
        while (n && is_space(*s)) s++, n--;
        while (n && is_space(s[n - 1])) n--;
        if (!n) continue;
        if (memchr(s, '\0', n))
            return eva_fail(EVA_ERR_FORMAT, "%s: line %d: holds a NUL byte", ds->annotations, line);
        const char *sep = NULL;
        for (size_t k = 0; k + 5 <= n && !sep; k++)
            if (!memcmp(s + k, ".jpg,", 5)) sep = s + k;
        if (!sep)
            return eva_fail(EVA_ERR_FORMAT, "%s: line %d: no \".jpg,\" (expected NAME.jpg,caption)", ds->annotations,
                            line);
        int idx;
        eva_status st = builder_image(b, s, (size_t)(sep - s) + 4, -1, &idx);
        if (st == EVA_OK) st = builder_pair(b, idx, sep + 5, n - (size_t)(sep + 5 - s));
        if (st != EVA_OK) return st;
    }
    return EVA_OK;
}

/* ============================================================================================ */
/* captions (CSV). */

/* One CSV field starting at text[*i]; *out malloc'd. Returns 1 at end of record, 0 at ',' */
static eva_status csv_field(const char *text, size_t len, size_t *i, int *line, char **out, size_t *olen, int *eor,
                            const char *file) {
    size_t p = *i, n = 0;
    char *buf = malloc(len - p + 1);
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    if (p < len && text[p] == '"') {
        int start = *line;
        for (p++;; p++) {
            if (p >= len) {
                free(buf);
                return eva_fail(EVA_ERR_FORMAT, "%s: line %d: quoted field not closed", file, start);
            }
            if (text[p] == '"' && p + 1 < len && text[p + 1] == '"') buf[n++] = '"', p++;
            else if (text[p] == '"') break;
            else *line += (buf[n++] = text[p]) == '\n';
        }
        p++;
        if (p < len && text[p] == '\r') p++;
        if (p < len && text[p] != ',' && text[p] != '\n') {
            free(buf);
            return eva_fail(EVA_ERR_FORMAT, "%s: line %d: text after a closing quote", file, *line);
        }
    } else {
        while (p < len && text[p] != ',' && text[p] != '\n') buf[n++] = text[p++];
        if (n && buf[n - 1] == '\r') n--;
    }
    *eor = p >= len || text[p] == '\n';
    if (p < len && text[p] == '\n') ++*line;
    *i = p + 1;
    buf[n] = '\0';
    *out = buf;
    *olen = n;
    return EVA_OK;
}

static eva_status load_captions(builder *b, const char *text, size_t len) {
    eva_rt_dataset *ds = b->ds;
    size_t i = 0;
    int line = 1;
    bool first = true;
    if (memchr(text, '\0', len)) return eva_fail(EVA_ERR_FORMAT, "%s: holds a NUL byte (not a CSV file)", ds->annotations);
    while (i < len) {
        int row_line = line;
        if (text[i] == '\n' || (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')) { /* blank line */
            i += text[i] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        char *f[3] = {NULL, NULL, NULL};
        size_t fl[3] = {0, 0, 0};
        int nf = 0, eor = 0;
        eva_status st = EVA_OK;
        while (!eor && st == EVA_OK) {
            char *v = NULL;
            size_t vl = 0;
            st = csv_field(text, len, &i, &line, &v, &vl, &eor, ds->annotations);
            if (st == EVA_OK && nf < 3) f[nf] = v, fl[nf] = vl;
            else if (st == EVA_OK) free(v);
            if (st == EVA_OK) nf++;
        }
        if (st == EVA_OK && nf != 2)
            st = eva_fail(EVA_ERR_FORMAT, "%s: line %d: %d fields (expected path,caption)", ds->annotations, row_line, nf);
        if (st == EVA_OK && !(first && !strcmp(f[0], "path") && !strcmp(f[1], "caption"))) {
            int idx;
            if (!fl[0]) st = eva_fail(EVA_ERR_FORMAT, "%s: line %d: empty path", ds->annotations, row_line);
            if (st == EVA_OK) st = builder_image(b, f[0], fl[0], -1, &idx);
            if (st == EVA_OK) st = builder_pair(b, idx, f[1], fl[1]);
        }
        first = false;
        free(f[0]), free(f[1]), free(f[2]);
        if (st != EVA_OK) return st;
    }
    return EVA_OK;
}

/* ============================================================================================ */

eva_status eva_rt_load(eva_rt_dataset *ds, eva_rt_layout layout, const char *root, const char *annotations) {
    memset(ds, 0, sizeof *ds);
    ds->layout = layout;
    if ((unsigned)layout > 2) return eva_fail(EVA_ERR_INVALID_ARG, "unknown retrieval layout %d", (int)layout);
    snprintf(ds->root, sizeof ds->root, "%s", root);
    size_t rl = strlen(ds->root);
    while (rl > 1 && ds->root[rl - 1] == '/') ds->root[--rl] = '\0';
    struct stat sb;
    if (stat(ds->root, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eva_fail(EVA_ERR_IO, "--data %s: not a folder", root);
    if (annotations) snprintf(ds->annotations, sizeof ds->annotations, "%s", annotations);
    else snprintf(ds->annotations, sizeof ds->annotations, "%s/%s", ds->root, layout_default_ann[layout]);
    char *text;
    size_t len;
    eva_status st = read_all(ds->annotations, &text, &len);
    if (st != EVA_OK) return st;
    builder b;
    memset(&b, 0, sizeof b);
    b.ds = ds;
    if (layout == EVA_RT_MSCOCO) st = load_coco(&b, text, len);
    else if (layout == EVA_RT_FLICKR) st = load_flickr(&b, text, len);
    else st = load_captions(&b, text, len);
    free(text);
    const char *(*describe)(const eva_rt_dataset *, int, char *, size_t) =
        layout == EVA_RT_MSCOCO ? describe_coco : describe_plain;
    if (st == EVA_OK) st = builder_finish(&b, describe);
    builder_free(&b);
    if (st == EVA_OK) st = check_files(ds, describe);
    if (st != EVA_OK) eva_rt_dataset_free(ds);
    return st;
}

void eva_rt_dataset_free(eva_rt_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_images; i++) free(ds->images[i]);
    for (int t = 0; t < ds->n_captions; t++) free(ds->captions[t]);
    free(ds->images);
    free(ds->image_ids);
    free(ds->captions);
    free(ds->caption_image);
    free(ds->cap_start);
    free(ds->cap_count);
    eva_rt_layout l = ds->layout;
    memset(ds, 0, sizeof *ds);
    ds->layout = l;
}

void eva_rt_dataset_limit(eva_rt_dataset *ds, int n) {
    if (n <= 0 || n >= ds->n_images) return;
    int keep_caps = ds->cap_start[n];
    for (int i = n; i < ds->n_images; i++) free(ds->images[i]);
    for (int t = keep_caps; t < ds->n_captions; t++) free(ds->captions[t]);
    ds->n_images = n;
    ds->n_captions = keep_caps;
}

static const char *rt_path(const void *ds, int64_t i) { return ((const eva_rt_dataset *)ds)->images[i]; }

void eva_rt_files_hash(char hex[65], const char *root, eva_rt_path_fn path_of, const void *list, int64_t n) {
    eva_sha256_ctx c;
    uint8_t d[32];
    eva_sha256_init(&c);
    eva_sha256_update(&c, root, strlen(root) + 1);
    for (int64_t i = 0; i < n; i++) {
        char full[8400], meta[96];
        const char *p = path_of(list, i);
        snprintf(full, sizeof full, "%s/%s", root, p);
        struct stat sb;
        if (stat(full, &sb) == 0)
            snprintf(meta, sizeof meta, "\t%lld\t%lld.%09ld\n", (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
                     (long)sb.st_mtim.tv_nsec);
        else
            snprintf(meta, sizeof meta, "\tmissing\n");
        eva_sha256_update(&c, p, strlen(p));
        eva_sha256_update(&c, meta, strlen(meta));
    }
    eva_sha256_final(&c, d);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = digits[d[i] >> 4], hex[2 * i + 1] = digits[d[i] & 15];
    hex[64] = '\0';
}

void eva_rt_list_hash(char hex[65], const eva_rt_dataset *ds, bool captions) {
    if (!captions) {
        eva_rt_files_hash(hex, ds->root, rt_path, ds, ds->n_images);
        return;
    }
    eva_zs_list l = {ds->captions, ds->n_captions};
    eva_zs_list_hash(hex, &l);
}

/* ============================================================================================ */
/* Embeddings. */

void eva_rt_skips_free(eva_rt_skips *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].reason);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static eva_status skips_add(eva_rt_skips *s, int64_t index, const char *reason) {
    eva_rt_skip *nv = realloc(s->v, (size_t)(s->n + 1) * sizeof *nv);
    if (!nv) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    s->v = nv;
    s->v[s->n].index = index;
    s->v[s->n].reason = strdup(reason ? reason : "?");
    if (!s->v[s->n].reason) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    s->n++;
    return EVA_OK;
}

void eva_rt_normalize(float *x, int64_t n, int E) {
    for (int64_t r = 0; r < n; r++) {
        float *v = x + r * E;
        double ss = 0;
        for (int e = 0; e < E; e++) ss += (double)v[e] * v[e];
        double nrm = sqrt(ss);
        if (nrm < 1e-12) nrm = 1e-12;
        for (int e = 0; e < E; e++) v[e] = (float)(v[e] / nrm);
    }
}

/* Encodes the nb decoded pixels of a batch and scatters the rows to their slots. */
static eva_status flush_images(eva_zs_session *s, float *pix, float *tmp, int nb, const int *slot, float *feats, int E) {
    if (!nb) return EVA_OK;
    eva_status st = eva_backend_encode_image(&s->be, tmp, pix, nb, NULL);
    if (st != EVA_OK) return st;
    eva_rt_normalize(tmp, nb, E);
    for (int b = 0; b < nb; b++) memcpy(feats + (size_t)slot[b] * E, tmp + (size_t)b * E, (size_t)E * sizeof *feats);
    return EVA_OK;
}

eva_status eva_rt_embed_paths(eva_zs_session *s, const char *root, eva_rt_path_fn path_of, const void *paths,
                              int64_t lo, int64_t hi, int batch, float *feats, uint8_t *ok, eva_rt_skips *skips,
                              eva_rt_progress_fn progress, void *pctx) {
    const int E = s->cfg.embed_dim, S = s->cfg.vision.image_size;
    const size_t px_per = (size_t)3 * S * S;
    if (batch < 1) batch = 1;
    float *pix = malloc((size_t)batch * px_per * sizeof *pix), *tmp = malloc((size_t)batch * E * sizeof *tmp);
    int *slot = malloc((size_t)batch * sizeof *slot);
    eva_status st = EVA_OK;
    if (!pix || !tmp || !slot) st = eva_fail(EVA_ERR_NOMEM, "out of memory for a batch of %d images", batch);
    memset(feats, 0, (size_t)(hi - lo) * E * sizeof *feats);
    int nb = 0;
    for (int64_t i = lo; i < hi && st == EVA_OK; i++) {
        char full[8400];
        snprintf(full, sizeof full, "%s/%s", root, path_of(paths, i));
        eva_status is = eva_zs_load_image_folder_style(pix + (size_t)nb * px_per, full, S);
        ok[i - lo] = is == EVA_OK;
        if (is == EVA_ERR_NOMEM || is == EVA_ERR_INTERNAL) st = is;
        else if (is != EVA_OK) st = skips_add(skips, i, eva_last_error()), eva_clear_error();
        else slot[nb++] = (int)(i - lo);
        if (st == EVA_OK && (nb == batch || i + 1 == hi)) {
            st = flush_images(s, pix, tmp, nb, slot, feats, E);
            nb = 0;
            if (st == EVA_OK && progress) progress(pctx, i + 1 - lo, hi - lo);
        }
    }
    free(pix), free(tmp), free(slot);
    return st;
}

eva_status eva_rt_recover_skips(int image_size, const char *root, eva_rt_path_fn path_of, const void *list,
                                int64_t lo, int64_t n, const uint8_t *ok, eva_rt_skips *skips, bool *stale) {
    *stale = false;
    float *pix = NULL;
    eva_status st = EVA_OK;
    for (int64_t i = 0; i < n && st == EVA_OK && !*stale; i++) {
        if (ok[i]) continue;
        if (!pix && !(pix = malloc(sizeof(float) * 3 * (size_t)image_size * (size_t)image_size)))
            return eva_fail(EVA_ERR_NOMEM, "out of memory");
        char full[8400];
        snprintf(full, sizeof full, "%s/%s", root, path_of(list, lo + i));
        eva_status is = eva_zs_load_image_folder_style(pix, full, image_size);
        if (is == EVA_OK) *stale = true;
        else if (is == EVA_ERR_NOMEM || is == EVA_ERR_INTERNAL) st = is;
        else st = skips_add(skips, lo + i, eva_last_error()), eva_clear_error();
    }
    free(pix);
    return st;
}

eva_status eva_rt_embed_images(eva_zs_session *s, const eva_rt_dataset *ds, int lo, int hi, int batch, float *feats,
                               uint8_t *ok, eva_rt_skips *skips, eva_rt_progress_fn progress, void *pctx) {
    return eva_rt_embed_paths(s, ds->root, rt_path, ds, lo, hi, batch, feats, ok, skips, progress, pctx);
}

eva_status eva_rt_embed_captions(eva_zs_session *s, const eva_rt_dataset *ds, int lo, int hi, int batch, float *feats,
                                 eva_rt_progress_fn progress, void *pctx) {
    const int E = s->cfg.embed_dim, L = s->cfg.text.context_length;
    if (batch < 1) batch = 1;
    int32_t *ids = malloc((size_t)batch * L * sizeof *ids);
    if (!ids) return eva_fail(EVA_ERR_NOMEM, "out of memory for a batch of %d captions", batch);
    eva_status st = EVA_OK;
    for (int t0 = lo; t0 < hi && st == EVA_OK; t0 += batch) {
        int nb = hi - t0 < batch ? hi - t0 : batch;
        for (int b = 0; b < nb && st == EVA_OK; b++) {
            st = eva_tokenizer_encode(s->tok, ids + (size_t)b * L, ds->captions[t0 + b], L);
            if (st != EVA_OK) eva_fail_context("caption %d", t0 + b);
        }
        float *out = feats + (size_t)(t0 - lo) * E;
        if (st == EVA_OK) st = eva_backend_encode_text(&s->be, out, ids, nb, NULL);
        if (st == EVA_OK) eva_rt_normalize(out, nb, E);
        if (st == EVA_OK && progress) progress(pctx, t0 + nb - lo, hi - lo);
    }
    free(ids);
    return st;
}

/* ============================================================================================ */
/* Cache. */

void eva_rt_cache_key(char key[65], const char *kind, const char *weights_sha256, const char *config_json,
                      const char *list_hash, int lo, int hi, const char *impl, const char *precision) {
    char cfg_hash[65], range[64];
    eva_sha256_hex(cfg_hash, config_json, strlen(config_json));
    snprintf(range, sizeof range, "%d..%d", lo, hi);
    const char *parts[] = {"evabench-retrieval-cache/1", kind, weights_sha256, cfg_hash, list_hash, range, impl,
                           precision};
    eva_sha256_ctx c;
    uint8_t d[32];
    eva_sha256_init(&c);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        eva_sha256_update(&c, parts[i], strlen(parts[i]));
        eva_sha256_update(&c, "\n", 1);
    }
    eva_sha256_final(&c, d);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) key[2 * i] = digits[d[i] >> 4], key[2 * i + 1] = digits[d[i] & 15];
    key[64] = '\0';
}

void eva_rt_cache_path(char *out, size_t cap, const char *dir, const char *kind, const char *key) {
    char z[4300];
    eva_zs_cache_path(z, sizeof z, dir, key); /* "<folder>/zeroshot-<key32>.h5" */
    char *slash = strrchr(z, '/');
    if (slash) *slash = '\0';
    snprintf(out, cap, "%s/retrieval-%s-%.32s.h5", slash ? z : ".", kind, key);
}

static bool key_matches(hid_t f, const char *key) {
    if (H5Aexists(f, "key") <= 0) return false;
    hid_t a = H5Aopen(f, "key", H5P_DEFAULT), mt = H5Tcopy(H5T_C_S1);
    char buf[65] = "";
    H5Tset_size(mt, sizeof buf);
    bool ok = a >= 0 && H5Aread(a, mt, buf) >= 0 && !strcmp(buf, key);
    H5Tclose(mt);
    if (a >= 0) H5Aclose(a);
    return ok;
}

static bool read_2d(hid_t f, const char *name, hid_t mem_type, void *out, hsize_t d0, hsize_t d1, int rank) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return false;
    hid_t s = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    bool ok = s >= 0 && H5Sget_simple_extent_ndims(s) == rank && H5Sget_simple_extent_dims(s, dims, NULL) == rank &&
              dims[0] == d0 && (rank == 1 || dims[1] == d1) &&
              H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (s >= 0) H5Sclose(s);
    H5Dclose(d);
    return ok;
}

typedef struct {
    const char *key;
    int n, E;
    bool want_ok;
} rt_cache_query;

/* In the guarded child: embeds [n,E] then, when asked, ok [n] of the cache at path into out. */
static eva_status rt_cache_read(void *ctx, const char *path, void *out) {
    const rt_cache_query *q = ctx;
    const char *key = q->key;
    const int n = q->n, E = q->E;
    float *feats = out;
    uint8_t *ok = q->want_ok ? (uint8_t *)(feats + (size_t)n * E) : NULL;
    bool good = false;
    H5E_BEGIN_TRY {
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            good = key_matches(f, key) && read_2d(f, "embeds", H5T_NATIVE_FLOAT, feats, (hsize_t)n, (hsize_t)E, 2);
            if (good && ok) good = read_2d(f, "ok", H5T_NATIVE_UINT8, ok, (hsize_t)n, 0, 1);
            H5Fclose(f);
        }
    } H5E_END_TRY;
    if (!good) return eva_fail(EVA_ERR_FORMAT, "%s: not a cache of this key and shape", path);
    for (int64_t i = 0; i < (int64_t)n * E; i++)
        if (!isfinite(feats[i])) return eva_fail(EVA_ERR_FORMAT, "%s: non-finite value", path);
    return EVA_OK;
}

eva_status eva_rt_cache_load(const char *path, const char *key, float *feats, uint8_t *ok, int n, int E) {
    if (access(path, R_OK) != 0) return eva_fail(EVA_ERR_IO, "%s: no cached embeddings", path);
    rt_cache_query q = {key, n, E, ok != NULL};
    size_t fbytes = (size_t)n * (size_t)E * sizeof(float), total = fbytes + (ok ? (size_t)n : 0);
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory for %d cached embeddings", path, n);
    eva_status st = eva_h5_guarded_call(path, rt_cache_read, &q, buf, total);
    if (st == EVA_OK) {
        memcpy(feats, buf, fbytes);
        if (ok) memcpy(ok, buf + fbytes, (size_t)n);
    }
    free(buf);
    return st;
}

static eva_status mkdirs(const char *path_of_file) {
    char buf[4200];
    snprintf(buf, sizeof buf, "%s", path_of_file);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return eva_fail(EVA_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    return EVA_OK;
}

static bool write_ds(hid_t f, const char *name, hid_t file_type, hid_t mem_type, const void *data, hsize_t d0,
                     hsize_t d1, int rank) {
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = d >= 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

eva_status eva_rt_cache_store(const char *path, const char *key, const float *feats, const uint8_t *ok, int n, int E) {
    eva_status st = mkdirs(path);
    if (st != EVA_OK) return st;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    bool good = false;
    H5E_BEGIN_TRY {
        hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (f >= 0) {
            hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
            H5Tset_size(t, 65);
            hid_t a = H5Acreate2(f, "key", t, sp, H5P_DEFAULT, H5P_DEFAULT);
            good = a >= 0 && H5Awrite(a, t, key) >= 0;
            if (a >= 0) H5Aclose(a);
            H5Sclose(sp), H5Tclose(t);
            good = good && write_ds(f, "embeds", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, feats, (hsize_t)n, (hsize_t)E, 2);
            if (ok) good = good && write_ds(f, "ok", H5T_STD_U8LE, H5T_NATIVE_UINT8, ok, (hsize_t)n, 0, 1);
            good = H5Fclose(f) >= 0 && good;
        }
    } H5E_END_TRY;
    if (good && rename(tmp, path) == 0) return EVA_OK;
    unlink(tmp);
    return eva_fail(EVA_ERR_IO, "%s: cannot write the embedding cache", path);
}

/* ============================================================================================ */
/* Ranking and metrics. */

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

eva_status eva_rt_parse_ks(eva_rt_metrics *m, const char *list) {
    memset(m, 0, sizeof *m);
    const char *p = list;
    while (p && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 1000000 || (*end && *end != ','))
            return eva_fail(EVA_ERR_INVALID_ARG, "--recall-k '%s': expected positive integers separated by commas", list);
        bool dup = false;
        for (int i = 0; i < m->n_k; i++) dup |= m->k[i] == v;
        if (!dup) {
            if (m->n_k == EVA_RT_MAX_K)
                return eva_fail(EVA_ERR_INVALID_ARG, "--recall-k '%s': at most %d values", list, EVA_RT_MAX_K);
            m->k[m->n_k++] = (int)v;
        }
        p = *end ? end + 1 : end;
    }
    if (!m->n_k) return eva_fail(EVA_ERR_INVALID_ARG, "--recall-k '%s': no value", list);
    qsort(m->k, (size_t)m->n_k, sizeof m->k[0], cmp_int);
    return EVA_OK;
}

/* Inserts (score, idx) into the descending list top[K]/val[K] holding *n entries; an equal score
 * stays behind the entries already there (they have lower indices). */
static void topk_insert(int *top, double *val, int *n, int K, double score, int idx) {
    if (*n == K && !(score > val[K - 1])) return;
    int j = *n < K ? (*n)++ : K - 1;
    while (j > 0 && score > val[j - 1]) {
        val[j] = val[j - 1];
        top[j] = top[j - 1];
        j--;
    }
    val[j] = score;
    top[j] = idx;
}

static double dot(const float *a, const float *b, int E) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int e = 0;
    for (; e + 4 <= E; e += 4) {
        s0 += (double)a[e] * b[e];
        s1 += (double)a[e + 1] * b[e + 1];
        s2 += (double)a[e + 2] * b[e + 2];
        s3 += (double)a[e + 3] * b[e + 3];
    }
    for (; e < E; e++) s0 += (double)a[e] * b[e];
    return (s0 + s1) + (s2 + s3);
}

eva_status eva_rt_rank(int *t2i, int *i2t, const float *img, int I, const float *txt, int T, int E, int K) {
    if (K < 1 || K > I || K > T)
        return eva_fail(EVA_ERR_INVALID_ARG, "recall@%d needs at least %d images and %d captions (have %d and %d)", K, K,
                        K, I, T);
    double *ival = malloc((size_t)I * K * sizeof *ival), *tval = malloc((size_t)K * sizeof *tval);
    int *icount = calloc((size_t)I, sizeof *icount);
    if (!ival || !tval || !icount) {
        free(ival), free(tval), free(icount);
        return eva_fail(EVA_ERR_NOMEM, "out of memory ranking %d images", I);
    }
    for (int t = 0; t < T; t++) {
        int tn = 0;
        const float *q = txt + (size_t)t * E;
        for (int i = 0; i < I; i++) {
            double s = dot(q, img + (size_t)i * E, E);
            topk_insert(t2i + (size_t)t * K, tval, &tn, K, s, i);
            topk_insert(i2t + (size_t)i * K, ival + (size_t)i * K, &icount[i], K, s, t);
        }
    }
    free(ival), free(tval), free(icount);
    return EVA_OK;
}

void eva_rt_recalls(eva_rt_metrics *m, const int *t2i, const int *i2t, const int *tii, int I, int T, int K) {
    m->n_t2i = T;
    m->n_i2t = I;
    for (int j = 0; j < m->n_k; j++) {
        int k = m->k[j] < K ? m->k[j] : K;
        int64_t th = 0, ih = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < k; r++)
                if (t2i[(size_t)t * K + r] == tii[t]) {
                    th++;
                    break;
                }
        for (int i = 0; i < I; i++)
            for (int r = 0; r < k; r++)
                if (tii[i2t[(size_t)i * K + r]] == i) {
                    ih++;
                    break;
                }
        m->t2i_hits[j] = th;
        m->i2t_hits[j] = ih;
    }
}

double eva_rt_recall_value(int64_t hits, int64_t n) {
    if (n <= 0) return NAN;
    return (double)((float)hits / (float)n);
}

eva_status eva_rt_write_predictions(const char *path, const int *t2i, const int *i2t, const int *tii, int I, int T,
                                    int K, const int *img_idx, const int *cap_idx) {
    FILE *f = fopen(path, "w");
    if (!f) return eva_fail(EVA_ERR_IO, "--predictions %s: cannot create: %s", path, strerror(errno));
    fputs("direction,query,target", f);
    for (int r = 0; r < K; r++) fprintf(f, ",top%d", r + 1);
    for (int r = 0; r < K; r++) fprintf(f, ",hit%d", r + 1);
    fputc('\n', f);
    for (int t = 0; t < T; t++) {
        fprintf(f, "t2i,%d,%d", cap_idx[t], img_idx[tii[t]]);
        for (int r = 0; r < K; r++) fprintf(f, ",%d", img_idx[t2i[(size_t)t * K + r]]);
        for (int r = 0; r < K; r++) fprintf(f, ",%d", t2i[(size_t)t * K + r] == tii[t]);
        fputc('\n', f);
    }
    for (int i = 0; i < I; i++) {
        fprintf(f, "i2t,%d,", img_idx[i]);
        int first = 1;
        for (int t = 0; t < T; t++)
            if (tii[t] == i) fprintf(f, first ? "%d" : " %d", cap_idx[t]), first = 0;
        for (int r = 0; r < K; r++) fprintf(f, ",%d", cap_idx[i2t[(size_t)i * K + r]]);
        for (int r = 0; r < K; r++) fprintf(f, ",%d", tii[i2t[(size_t)i * K + r]] == i);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return eva_fail(EVA_ERR_IO, "--predictions %s: write failed", path);
    return EVA_OK;
}

/* ============================================================================================ */
/* Published MSCOCO 5k text-to-image R@5 (%): the EVA-CLIP model card's column; for bigE+ the
 * number of open_clip's docs/openclip_retrieval_results.csv (74.92; the card's README gives 75.0). */

double eva_rt_card_coco_t2i_r5(const char *name) {
    static const struct {
        const char *official, *open_clip;
        double r5;
    } t[] = {
        {"EVA01-CLIP-g-14", "EVA01-g-14", 68.5},         {"EVA01-CLIP-g-14-plus", "EVA01-g-14-plus", 74.0},
        {"EVA02-CLIP-B-16", "EVA02-B-16", 66.9},         {"EVA02-CLIP-L-14", "EVA02-L-14", 71.2},
        {"EVA02-CLIP-L-14-336", "EVA02-L-14-336", 71.7}, {"EVA02-CLIP-bigE-14", "EVA02-E-14", 74.7},
        {"EVA02-CLIP-bigE-14-plus", "EVA02-E-14-plus", 74.9},
    };
    for (size_t i = 0; name && i < sizeof t / sizeof t[0]; i++)
        if (!strcasecmp(name, t[i].official) || !strcasecmp(name, t[i].open_clip)) return t[i].r5;
    return NAN;
}
