/* zeroshot.c: the zero-shot protocol pieces declared in zeroshot.h (scan, templates, classifier,
 * metrics, cache, SHA-256, progress). See the header for what it owns and does not.
 *
 * Decisions:
 * - Every file under a class folder is an item, whatever its extension: a file that is not an
 *   image is reported and skipped by the command, so nothing vanishes without a line in the
 *   report. For valid images the order is torchvision ImageFolder's (sorted os.walk, sorted
 *   names), so predictions line up with upstream's.
 * - Sorting is byte order (strcmp), which equals Python's code-point order for UTF-8 names.
 * - The classifier is accumulated in double (upstream golden runs float64; the ImageNet runs
 *   of the card are fp16 autocast, so double is never the weak link).
 * - Images in zeroshot follow ImageFolder's loader (convert("RGB") before the transform), the
 *   protocol of open_clip_train's ImageNet eval and CLIP_benchmark; it differs from
 *   preprocess(Image.open(p)) only for palette, bilevel, LA/RGBA-with-transparency, I and CMYK
 *   inputs.
 */
#include "zeroshot.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "eva_embedded.h"
#include "eva_image.h"
#include "golden.h"
#include "ref_model.h"

/* ============================================================================================ */
/* SHA-256, FIPS 180-4 §6.2. */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + sha_k[i] + w[i];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void eva_sha256_init(eva_sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->nbytes = 0;
    c->nbuf = 0;
}

void eva_sha256_update(eva_sha256_ctx *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->nbytes += len;
    if (c->nbuf) {
        size_t take = 64 - c->nbuf < len ? 64 - c->nbuf : len;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take;
        p += take;
        len -= take;
        if (c->nbuf < 64) return;
        sha_block(c->h, c->buf);
        c->nbuf = 0;
    }
    for (; len >= 64; p += 64, len -= 64) sha_block(c->h, p);
    if (len) memcpy(c->buf, p, len);
    c->nbuf = len;
}

void eva_sha256_final(eva_sha256_ctx *c, uint8_t digest[32]) {
    uint64_t bits = c->nbytes * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
    eva_sha256_update(c, pad, padlen);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(bits >> (56 - 8 * i));
    eva_sha256_update(c, len8, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(c->h[i] >> (24 - 8 * j));
}

static void to_hex(char *hex, const uint8_t *d, int n) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

void eva_sha256_hex(char hex[65], const void *data, size_t len) {
    eva_sha256_ctx c;
    uint8_t d[32];
    eva_sha256_init(&c);
    eva_sha256_update(&c, data, len);
    eva_sha256_final(&c, d);
    to_hex(hex, d, 32);
}

eva_status eva_sha256_file(char hex[65], const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open for hashing: %s", path, strerror(errno));
    eva_sha256_ctx c;
    eva_sha256_init(&c);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return eva_fail(EVA_ERR_NOMEM, "out of memory hashing %s", path);
    }
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) eva_sha256_update(&c, buf, n);
    int err = ferror(f);
    free(buf);
    fclose(f);
    if (err) return eva_fail(EVA_ERR_IO, "%s: read error while hashing", path);
    uint8_t d[32];
    eva_sha256_final(&c, d);
    to_hex(hex, d, 32);
    return EVA_OK;
}

/* ============================================================================================ */
/* String lists. */

void eva_zs_list_free(eva_zs_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    l->s = NULL;
    l->n = 0;
}

eva_status eva_zs_list_push(eva_zs_list *l, const char *s, size_t len) {
    if (l->n >= (1 << 24)) return eva_fail(EVA_ERR_INVALID_ARG, "too many entries (more than %d)", 1 << 24);
    char **ns = realloc(l->s, (size_t)(l->n + 1) * sizeof *ns);
    if (!ns) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    l->s = ns;
    char *c = malloc(len + 1);
    if (!c) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    memcpy(c, s, len);
    c[len] = '\0';
    l->s[l->n++] = c;
    return EVA_OK;
}

static void trim(const char **s, size_t *len) {
    while (*len && (**s == ' ' || **s == '\t' || **s == '\r')) (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r')) (*len)--;
}

eva_status eva_zs_list_from_text(eva_zs_list *l, const char *text, size_t len, const char *source) {
    memset(l, 0, sizeof *l);
    if (memchr(text, '\0', len)) return eva_fail(EVA_ERR_FORMAT, "%s: holds a NUL byte (not a text file)", source);
    size_t i = 0;
    while (i < len) {
        const char *e = memchr(text + i, '\n', len - i);
        size_t n = e ? (size_t)(e - (text + i)) : len - i;
        const char *s = text + i;
        size_t m = n;
        trim(&s, &m);
        if (m) {
            eva_status st = eva_zs_list_push(l, s, m);
            if (st != EVA_OK) {
                eva_zs_list_free(l);
                return st;
            }
        }
        i += n + 1;
    }
    return EVA_OK;
}

eva_status eva_zs_list_from_file(eva_zs_list *l, const char *path) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            if (cap > ((size_t)256 << 20)) {
                free(buf);
                fclose(f);
                return eva_fail(EVA_ERR_FORMAT, "%s: larger than 256 MiB: not a list of names", path);
            }
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return eva_fail(EVA_ERR_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return eva_fail(EVA_ERR_IO, "%s: read error (is it a folder?)", path);
    }
    eva_status st = eva_zs_list_from_text(l, buf ? buf : "", n, path);
    free(buf);
    return st;
}

eva_status eva_zs_list_from_csv(eva_zs_list *l, const char *csv, const char *source) {
    memset(l, 0, sizeof *l);
    const char *p = csv;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        size_t m = n;
        trim(&s, &m);
        if (!m) {
            eva_zs_list_free(l);
            return eva_fail(EVA_ERR_INVALID_ARG, "%s: empty label in \"%s\"", source, csv);
        }
        eva_status st = eva_zs_list_push(l, s, m);
        if (st != EVA_OK) {
            eva_zs_list_free(l);
            return st;
        }
        if (!e) break;
        p = e + 1;
    }
    return EVA_OK;
}

void eva_zs_list_hash(char hex[65], const eva_zs_list *l) {
    eva_sha256_ctx c;
    uint8_t d[32];
    eva_sha256_init(&c);
    for (int i = 0; i < l->n; i++) {
        eva_sha256_update(&c, l->s[i], strlen(l->s[i]));
        eva_sha256_update(&c, "\n", 1);
    }
    eva_sha256_final(&c, d);
    to_hex(hex, d, 32);
}

/* ============================================================================================ */
/* Protocol texts. */

eva_status eva_zs_builtin(eva_zs_list *l, const char *embedded_name) {
    size_t len = 0;
    const unsigned char *data = eva_embedded_file(embedded_name, &len);
    memset(l, 0, sizeof *l);
    if (!data) return eva_fail(EVA_ERR_INTERNAL, "built-in file %s is missing from this build", embedded_name);
    return eva_zs_list_from_text(l, (const char *)data, len, embedded_name);
}

static bool has_slot(const char *t) { return strstr(t, "{}") || strstr(t, "{c}"); }

eva_status eva_zs_templates_load(eva_zs_list *l, const char *spec, const char **name) {
    eva_status st;
    memset(l, 0, sizeof *l);
    if (!strcmp(spec, "openai")) {
        *name = "openai";
        st = eva_zs_builtin(l, "openai_templates.txt");
    } else if (!strcmp(spec, "simple")) {
        *name = "simple";
        st = eva_zs_builtin(l, "simple_templates.txt");
    } else {
        *name = spec;
        st = eva_zs_list_from_file(l, spec);
    }
    if (st != EVA_OK) return st;
    if (l->n == 0) {
        eva_zs_list_free(l);
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: no templates (one per line, \"{}\" where the class name goes)", spec);
    }
    for (int i = 0; i < l->n; i++)
        if (!has_slot(l->s[i])) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: template %d \"%s\" has no \"{}\" (or \"{c}\") for the class name",
                          spec, i + 1, l->s[i]);
            eva_zs_list_free(l);
            return st;
        }
    return EVA_OK;
}

eva_status eva_zs_fill_template(char **out, const char *tmpl, const char *classname) {
    size_t cl = strlen(classname), n = 0;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '}') n += cl, p += 2;
        else if (p[0] == '{' && p[1] == 'c' && p[2] == '}') n += cl, p += 3;
        else n++, p++;
    }
    char *s = malloc(n + 1), *q = s;
    if (!s) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '}') memcpy(q, classname, cl), q += cl, p += 2;
        else if (p[0] == '{' && p[1] == 'c' && p[2] == '}') memcpy(q, classname, cl), q += cl, p += 3;
        else *q++ = *p++;
    }
    *q = '\0';
    *out = s;
    return EVA_OK;
}

/* ============================================================================================ */
/* Dataset scan. */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void sort_list(eva_zs_list *l) {
    if (l->n > 1) qsort(l->s, (size_t)l->n, sizeof *l->s, cmp_str);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    if (!la) memmove(s, s + 1, lb + 1);
    return s;
}

/* Lists the non-hidden entries of `dir`: subfolders into dirs, regular files into files
 * (following symlinks, as ImageFolder does). Unsorted. */
static eva_status list_dir(const char *dir, eva_zs_list *dirs, eva_zs_list *files) {
    DIR *d = opendir(dir);
    if (!d) return eva_fail(EVA_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    eva_status st = EVA_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *full = join(dir, de->d_name);
        if (!full) {
            st = eva_fail(EVA_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        int ok = stat(full, &sb) == 0;
        free(full);
        if (!ok) continue; /* dangling link: not a file ImageFolder would see either */
        if (S_ISDIR(sb.st_mode)) {
            if (dirs && (st = eva_zs_list_push(dirs, de->d_name, strlen(de->d_name))) != EVA_OK) break;
        } else if (S_ISREG(sb.st_mode)) {
            if (files && (st = eva_zs_list_push(files, de->d_name, strlen(de->d_name))) != EVA_OK) break;
        }
    }
    closedir(d);
    return st;
}

static eva_status add_item(eva_zs_dataset *ds, int64_t *cap, char *path, int label) {
    if (ds->n_items == *cap) {
        int64_t nc = *cap ? *cap * 2 : 1024;
        eva_zs_item *ni = realloc(ds->items, (size_t)nc * sizeof *ni);
        if (!ni) {
            free(path);
            return eva_fail(EVA_ERR_NOMEM, "out of memory listing images");
        }
        ds->items = ni;
        *cap = nc;
    }
    ds->items[ds->n_items].path = path;
    ds->items[ds->n_items].label = label;
    ds->n_items++;
    return EVA_OK;
}

/* Collects every folder below rel (relative to root), rel included, into out (relative paths). */
static eva_status walk_dirs(const char *root, const char *rel, int depth, eva_zs_list *out) {
    eva_status st = eva_zs_list_push(out, rel, strlen(rel));
    if (st != EVA_OK) return st;
    if (depth > 32) return eva_fail(EVA_ERR_INVALID_ARG, "%s/%s: folders nested deeper than 32 (a link loop?)", root, rel);
    char *full = join(root, rel);
    if (!full) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    eva_zs_list sub = {0};
    st = list_dir(full, &sub, NULL);
    free(full);
    for (int i = 0; st == EVA_OK && i < sub.n; i++) {
        char *r = join(rel, sub.s[i]);
        if (!r) st = eva_fail(EVA_ERR_NOMEM, "out of memory");
        else st = walk_dirs(root, r, depth + 1, out);
        free(r);
    }
    eva_zs_list_free(&sub);
    return st;
}

static eva_status scan_root(eva_zs_dataset *ds, const char *dir) {
    eva_zs_list classes = {0};
    eva_status st = list_dir(dir, &classes, NULL);
    if (st != EVA_OK) return st;
    sort_list(&classes);
    snprintf(ds->root, sizeof ds->root, "%s", dir);
    ds->classes = classes.s;
    ds->n_classes = classes.n;
    return EVA_OK;
}

eva_status eva_zs_scan(eva_zs_dataset *ds, const char *dir, int want_classes) {
    memset(ds, 0, sizeof *ds);
    struct stat sb;
    if (stat(dir, &sb) != 0) return eva_fail(EVA_ERR_IO, "--data %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return eva_fail(EVA_ERR_IO, "--data %s: not a folder", dir);
    if (strlen(dir) >= sizeof ds->root - 8) return eva_fail(EVA_ERR_INVALID_ARG, "--data: path too long");
    eva_status st = scan_root(ds, dir);
    if (st != EVA_OK) return st;
    if (want_classes > 0 && ds->n_classes != want_classes) {
        char val[4200];
        snprintf(val, sizeof val, "%s/val", dir);
        eva_zs_dataset alt;
        memset(&alt, 0, sizeof alt);
        if (stat(val, &sb) == 0 && S_ISDIR(sb.st_mode) && scan_root(&alt, val) == EVA_OK &&
            alt.n_classes == want_classes) {
            eva_zs_dataset_free(ds);
            *ds = alt;
        } else {
            eva_zs_dataset_free(&alt);
        }
        eva_clear_error();
    }
    if (ds->n_classes == 0) {
        eva_zs_dataset_free(ds);
        return eva_fail(EVA_ERR_INVALID_ARG, "--data %s: no class subfolders (expected one folder per class)", dir);
    }
    int64_t cap = 0;
    for (int c = 0; c < ds->n_classes && st == EVA_OK; c++) {
        eva_zs_list dirs = {0};
        st = walk_dirs(ds->root, ds->classes[c], 0, &dirs);
        if (st == EVA_OK) sort_list(&dirs);
        for (int k = 0; st == EVA_OK && k < dirs.n; k++) {
            char *full = join(ds->root, dirs.s[k]);
            eva_zs_list files = {0};
            st = full ? list_dir(full, NULL, &files) : eva_fail(EVA_ERR_NOMEM, "out of memory");
            free(full);
            if (st == EVA_OK) sort_list(&files);
            for (int j = 0; st == EVA_OK && j < files.n; j++) {
                char *rel = join(dirs.s[k], files.s[j]);
                st = rel ? add_item(ds, &cap, rel, c) : eva_fail(EVA_ERR_NOMEM, "out of memory");
            }
            eva_zs_list_free(&files);
        }
        eva_zs_list_free(&dirs);
    }
    if (st != EVA_OK) eva_zs_dataset_free(ds);
    return st;
}

void eva_zs_dataset_free(eva_zs_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    for (int64_t i = 0; i < ds->n_items; i++) free(ds->items[i].path);
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

bool eva_zs_classes_are_wnids(const eva_zs_dataset *ds) {
    for (int i = 0; i < ds->n_classes; i++) {
        const char *s = ds->classes[i];
        if (s[0] != 'n' || strlen(s) != 9) return false;
        for (int j = 1; j < 9; j++)
            if (!isdigit((unsigned char)s[j])) return false;
    }
    return ds->n_classes > 0;
}

void eva_zs_dataset_limit(eva_zs_dataset *ds, int64_t limit) {
    if (limit <= 0 || limit >= ds->n_items) return;
    /* rank of each item within its class; keep items by (rank, class) order */
    int64_t *rank = calloc((size_t)ds->n_items, sizeof *rank);
    int64_t *seen = calloc((size_t)ds->n_classes, sizeof *seen);
    char *keep = calloc((size_t)ds->n_items, 1);
    if (!rank || !seen || !keep) {
        free(rank), free(seen), free(keep);
        return; /* keep everything rather than fail: callers print the count they got */
    }
    int64_t maxrank = 0;
    for (int64_t i = 0; i < ds->n_items; i++) {
        rank[i] = seen[ds->items[i].label]++;
        if (rank[i] > maxrank) maxrank = rank[i];
    }
    /* count per rank r = number of classes with more than r items; take whole ranks, then the
     * lowest classes of the last rank */
    int64_t left = limit;
    int64_t r_full = 0;
    for (; r_full <= maxrank; r_full++) {
        int64_t cnt = 0;
        for (int c = 0; c < ds->n_classes; c++) cnt += seen[c] > r_full;
        if (cnt > left) break;
        left -= cnt;
    }
    for (int64_t i = 0; i < ds->n_items; i++) {
        if (rank[i] < r_full) keep[i] = 1;
    }
    for (int64_t i = 0; i < ds->n_items && left > 0; i++) {
        /* items of rank r_full in class order (items are sorted by class) */
        if (rank[i] == r_full) keep[i] = 1, left--;
    }
    int64_t o = 0;
    for (int64_t i = 0; i < ds->n_items; i++) {
        if (keep[i]) ds->items[o++] = ds->items[i];
        else free(ds->items[i].path);
    }
    ds->n_items = o;
    free(rank), free(seen), free(keep);
}

eva_status eva_zs_dataset_open(eva_zs_dataset *ds, bool *imagenet, const char *dir, eva_zs_dataset_type type) {
    *imagenet = type == EVA_ZS_IMAGENET1K;
    eva_status st = eva_zs_scan(ds, dir, type == EVA_ZS_FOLDER ? 0 : 1000);
    if (st != EVA_OK) return st;
    if (type == EVA_ZS_AUTO) *imagenet = ds->n_classes == 1000 && eva_zs_classes_are_wnids(ds);
    if (*imagenet && ds->n_classes != 1000)
        return eva_fail(EVA_ERR_INVALID_ARG, "--data %s: imagenet1k needs the 1000 class folders (WordNet ids) of the "
                                             "val set, in DIR or DIR/val; found %d folders", dir, ds->n_classes);
    return EVA_OK;
}

/* The folder default: DIR/classnames.txt, else the folder names. */
static eva_status folder_class_names(eva_zs_list *classes, char *source, size_t cap, const eva_zs_dataset *ds) {
    char p[4200];
    snprintf(p, sizeof p, "%s/classnames.txt", ds->root);
    if (access(p, F_OK) == 0) {
        snprintf(source, cap, "%s", p);
        return eva_zs_list_from_file(classes, p);
    }
    snprintf(source, cap, "class folder names");
    eva_status st = EVA_OK;
    for (int c = 0; c < ds->n_classes && st == EVA_OK; c++)
        st = eva_zs_list_push(classes, ds->classes[c], strlen(ds->classes[c]));
    return st;
}

eva_status eva_zs_class_names(eva_zs_list *classes, char *source, size_t cap, const eva_zs_dataset *ds,
                              const char *path, bool imagenet) {
    eva_status st;
    if (path) {
        snprintf(source, cap, "%s", path);
        st = eva_zs_list_from_file(classes, path);
    } else if (imagenet) {
        snprintf(source, cap, "OpenAI-curated ImageNet names (open_clip IMAGENET_CLASSNAMES)");
        st = eva_zs_builtin(classes, "imagenet_classnames.txt");
    } else {
        st = folder_class_names(classes, source, cap, ds);
    }
    if (st != EVA_OK) return st;
    if (classes->n == 0) return eva_fail(EVA_ERR_INVALID_ARG, "%s: empty class list", source);
    if (classes->n != ds->n_classes)
        return eva_fail(EVA_ERR_INVALID_ARG, "%s: %d class names, but %s has %d class folders (one name per folder, "
                                             "in sorted folder order)", source, classes->n, ds->root, ds->n_classes);
    return EVA_OK;
}

/* ============================================================================================ */
/* Classifier. */

eva_status eva_zs_build_classifier(float *W, const eva_zs_list *classes, const eva_zs_list *templates,
                                   const eva_zs_text_encoder *enc) {
    const int C = classes->n, T = templates->n, L = enc->context_length, E = enc->embed_dim;
    if (C <= 0) return eva_fail(EVA_ERR_INVALID_ARG, "empty class list");
    if (T <= 0) return eva_fail(EVA_ERR_INVALID_ARG, "empty template list");
    if (L <= 0 || E <= 0 || enc->max_batch <= 0) return eva_fail(EVA_ERR_INTERNAL, "bad text encoder sizes");
    /* Classes go through the text tower in groups of G (G*T prompts per call when that fits
     * max_batch, as open_clip batches 10 classes), a group's prompts split into calls of at most
     * max_batch. Each prompt's embedding is the same whatever its batch. */
    const int G = enc->max_batch >= T ? (enc->max_batch / T < C ? enc->max_batch / T : C) : 1;
    const size_t P = (size_t)G * (size_t)T;
    int32_t *ids = malloc(P * (size_t)L * sizeof *ids);
    float *feat = malloc(P * (size_t)E * sizeof *feat);
    double *acc = malloc((size_t)E * sizeof *acc);
    eva_status st = EVA_OK;
    if (!ids || !feat || !acc) {
        st = eva_fail(EVA_ERR_NOMEM, "out of memory building the classifier");
        goto done;
    }
    for (int c0 = 0; c0 < C; c0 += G) {
        const int g = C - c0 < G ? C - c0 : G;
        for (int c = c0; c < c0 + g; c++)
            for (int t = 0; t < T; t++) {
                char *text = NULL;
                if ((st = eva_zs_fill_template(&text, templates->s[t], classes->s[c])) != EVA_OK) goto done;
                st = eva_tokenizer_encode(enc->tok, ids + ((size_t)(c - c0) * T + t) * L, text, L);
                if (st != EVA_OK)
                    eva_fail_context("class %d \"%s\", template %d \"%s\"", c, classes->s[c], t + 1, text);
                free(text);
                if (st != EVA_OK) goto done;
            }
        const size_t np = (size_t)g * T;
        for (size_t p0 = 0; p0 < np; p0 += (size_t)enc->max_batch) {
            int n = (int)(np - p0 < (size_t)enc->max_batch ? np - p0 : (size_t)enc->max_batch);
            if ((st = enc->encode(enc->encode_ctx, feat + p0 * E, ids + p0 * L, n)) != EVA_OK) {
                eva_fail_context("text tower, classes %d..%d", c0, c0 + g - 1);
                goto done;
            }
        }
        for (int c = c0; c < c0 + g; c++) {
            for (int e = 0; e < E; e++) acc[e] = 0;
            for (int t = 0; t < T; t++) {
                const float *f = feat + ((size_t)(c - c0) * T + t) * E;
                double s = 0;
                for (int e = 0; e < E; e++) s += (double)f[e] * f[e];
                double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
                for (int e = 0; e < E; e++) acc[e] += f[e] * inv;
            }
            double s = 0;
            for (int e = 0; e < E; e++) {
                acc[e] /= T;
                s += acc[e] * acc[e];
            }
            double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
            for (int e = 0; e < E; e++) W[(size_t)c * E + e] = (float)(acc[e] * inv);
        }
        if (enc->progress) enc->progress(enc->progress_ctx, c0 + g, C);
    }
done:
    free(ids);
    free(feat);
    free(acc);
    return st;
}

void eva_zs_logits(float *logits, const float *feature, const float *W, int C, int E) {
    double s = 0;
    for (int e = 0; e < E; e++) s += (double)feature[e] * feature[e];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    for (int c = 0; c < C; c++) {
        double d = 0;
        const float *w = W + (size_t)c * E;
        for (int e = 0; e < E; e++) d += (double)feature[e] * w[e];
        logits[c] = (float)(100.0 * d * inv);
    }
}

/* a ranks before b */
static bool before(float a, int ia, float b, int ib) {
    if (isnan(a)) return isnan(b) ? ia < ib : false;
    if (isnan(b)) return true;
    return a > b || (a == b && ia < ib);
}

void eva_zs_topk(int *idx, const float *logits, int C, int k) {
    if (k > C) k = C;
    int n = 0;
    for (int c = 0; c < C; c++) {
        if (n == k && !before(logits[c], c, logits[idx[k - 1]], idx[k - 1])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && before(logits[c], c, logits[idx[j - 1]], idx[j - 1])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = c;
    }
}

void eva_zs_softmax(double *probs, const float *logits, int C) {
    double mx = -INFINITY;
    for (int c = 0; c < C; c++)
        if (logits[c] > mx) mx = logits[c];
    double s = 0;
    for (int c = 0; c < C; c++) s += probs[c] = exp((double)logits[c] - mx);
    for (int c = 0; c < C; c++) probs[c] /= s;
}

/* ============================================================================================ */
/* Metrics. */

eva_status eva_zs_metrics_init(eva_zs_metrics *m, int C) {
    memset(m, 0, sizeof *m);
    m->C = C;
    m->per_class_n = calloc((size_t)C, sizeof *m->per_class_n);
    m->per_class_correct = calloc((size_t)C, sizeof *m->per_class_correct);
    if (!m->per_class_n || !m->per_class_correct) {
        eva_zs_metrics_free(m);
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    }
    return EVA_OK;
}

void eva_zs_metrics_add(eva_zs_metrics *m, int label, const int *top, int k) {
    m->n++;
    m->per_class_n[label]++;
    if (k > 0 && top[0] == label) {
        m->top1++;
        m->per_class_correct[label]++;
    }
    for (int i = 0; i < k && i < 5; i++)
        if (top[i] == label) {
            m->top5++;
            break;
        }
}

double eva_zs_acc1(const eva_zs_metrics *m) { return m->n ? (double)m->top1 / (double)m->n : NAN; }
double eva_zs_acc5(const eva_zs_metrics *m) { return m->n && m->C >= 5 ? (double)m->top5 / (double)m->n : NAN; }

double eva_zs_mean_per_class_recall(const eva_zs_metrics *m) {
    double s = 0;
    int n = 0;
    for (int c = 0; c < m->C; c++)
        if (m->per_class_n[c]) {
            s += (double)m->per_class_correct[c] / (double)m->per_class_n[c];
            n++;
        }
    return n ? s / n : NAN;
}

void eva_zs_metrics_free(eva_zs_metrics *m) {
    free(m->per_class_n);
    free(m->per_class_correct);
    memset(m, 0, sizeof *m);
}

/* ============================================================================================ */
/* Cache. */

void eva_zs_cache_key(char key[65], const char *weights_sha256, const char *config_json, const char *templates_hash,
                      const char *classes_hash, const char *impl, const char *precision) {
    eva_sha256_ctx c;
    uint8_t d[32];
    char cfg_hash[65];
    eva_sha256_hex(cfg_hash, config_json, strlen(config_json));
    const char *parts[] = {"evabench-zeroshot-cache/1", weights_sha256, cfg_hash, templates_hash, classes_hash, impl,
                           precision};
    eva_sha256_init(&c);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        eva_sha256_update(&c, parts[i], strlen(parts[i]));
        eva_sha256_update(&c, "\n", 1);
    }
    eva_sha256_final(&c, d);
    to_hex(key, d, 32);
}

static void cache_dir(char *out, size_t cap, const char *dir) {
    const char *env = getenv("EVA_CACHE_DIR"), *home = getenv("HOME");
    if (dir && *dir) snprintf(out, cap, "%s", dir);
    else if (env && *env) snprintf(out, cap, "%s", env);
    else if (home && *home) snprintf(out, cap, "%s/.cache/evabench", home);
    else snprintf(out, cap, ".evabench-cache");
}

void eva_zs_cache_path(char *out, size_t cap, const char *dir, const char *key) {
    char d[4096];
    cache_dir(d, sizeof d, dir);
    snprintf(out, cap, "%s/zeroshot-%.32s.h5", d, key);
}

static bool attr_string_equals(hid_t obj, const char *name, const char *want) {
    if (H5Aexists(obj, name) <= 0) return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return false;
    hid_t t = H5Aget_type(a);
    bool ok = false;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t n = H5Tget_size(t);
        if (n > 0 && n < 4096) {
            char *buf = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n);
            if (buf && H5Aread(a, mt, buf) >= 0) ok = !strcmp(buf, want);
            H5Tclose(mt);
            free(buf);
        }
    }
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return ok;
}

typedef struct {
    const char *key;
    int C, E;
} zs_cache_query;

/* In the guarded child: the classifier [C,E] of the cache at path into W. */
static eva_status zs_cache_read(void *ctx, const char *path, void *out) {
    const zs_cache_query *q = ctx;
    const char *key = q->key;
    const int C = q->C, E = q->E;
    float *W = out;
    eva_status st = EVA_OK;
    hid_t f = -1, d = -1, s = -1;
    H5E_BEGIN_TRY {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) st = eva_fail(EVA_ERR_FORMAT, "%s: not an HDF5 file", path);
        else if (!attr_string_equals(f, "key", key)) st = eva_fail(EVA_ERR_FORMAT, "%s: another key", path);
        else if ((d = H5Dopen2(f, "classifier", H5P_DEFAULT)) < 0)
            st = eva_fail(EVA_ERR_FORMAT, "%s: no /classifier", path);
        else {
            hsize_t dims[2];
            s = H5Dget_space(d);
            if (s < 0 || H5Sget_simple_extent_ndims(s) != 2 || H5Sget_simple_extent_dims(s, dims, NULL) != 2 ||
                dims[0] != (hsize_t)C || dims[1] != (hsize_t)E)
                st = eva_fail(EVA_ERR_FORMAT, "%s: /classifier is not [%d,%d]", path, C, E);
            else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, W) < 0)
                st = eva_fail(EVA_ERR_FORMAT, "%s: cannot read /classifier", path);
        }
        if (s >= 0) H5Sclose(s);
        if (d >= 0) H5Dclose(d);
        if (f >= 0) H5Fclose(f);
    } H5E_END_TRY;
    if (st == EVA_OK) {
        for (int64_t i = 0; i < (int64_t)C * E; i++)
            if (!isfinite(W[i])) return eva_fail(EVA_ERR_FORMAT, "%s: non-finite value in /classifier", path);
    }
    return st;
}

eva_status eva_zs_cache_load(float *W, const char *path, const char *key, int C, int E) {
    if (access(path, R_OK) != 0) return eva_fail(EVA_ERR_IO, "%s: no cached classifier", path);
    zs_cache_query q = {key, C, E};
    return eva_h5_guarded_call(path, zs_cache_read, &q, W, (size_t)C * (size_t)E * sizeof(float));
}

static eva_status mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return eva_fail(EVA_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return eva_fail(EVA_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
    return EVA_OK;
}

static herr_t put_attr(hid_t obj, const char *name, const char *val) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(val) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a >= 0 ? H5Awrite(a, t, val) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return r;
}

eva_status eva_zs_cache_store(const char *path, const char *key, const float *W, int C, int E, const char *model,
                              const char *weights_sha256, const char *templates_name, const char *impl,
                              const char *precision) {
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        eva_status st = mkdir_p(dir);
        if (st != EVA_OK) return st;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    eva_status st = EVA_OK;
    H5E_BEGIN_TRY {
        hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (f < 0) {
            st = eva_fail(EVA_ERR_IO, "%s: cannot create", tmp);
        } else {
            hsize_t dims[2] = {(hsize_t)C, (hsize_t)E};
            hid_t sp = H5Screate_simple(2, dims, NULL);
            hid_t d = H5Dcreate2(f, "classifier", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, W) < 0 ||
                put_attr(f, "key", key) < 0 || put_attr(f, "schema", "evabench-zeroshot-cache/1") < 0 ||
                put_attr(f, "model", model) < 0 || put_attr(f, "weights_sha256", weights_sha256) < 0 ||
                put_attr(f, "templates", templates_name) < 0 || put_attr(f, "impl", impl) < 0 ||
                put_attr(f, "precision", precision) < 0)
                st = eva_fail(EVA_ERR_IO, "%s: write failed", tmp);
            if (d >= 0) H5Dclose(d);
            H5Sclose(sp);
            if (H5Fclose(f) < 0 && st == EVA_OK) st = eva_fail(EVA_ERR_IO, "%s: close failed", tmp);
        }
    } H5E_END_TRY;
    if (st == EVA_OK && rename(tmp, path) != 0)
        st = eva_fail(EVA_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st != EVA_OK) unlink(tmp);
    return st;
}

/* ============================================================================================ */
/* Images. */

eva_status eva_zs_load_image_folder_style(float *out, const char *path, int size) {
    eva_image img;
    memset(&img, 0, sizeof img);
    eva_status st = eva_image_decode(&img, path);
    if (st != EVA_OK) return st;
    if (img.mode != EVA_MODE_RGB) {
        /* pil_loader: img.convert("RGB") before the transform */
        uint8_t *rgb = malloc((size_t)img.w * (size_t)img.h * 3);
        if (!rgb) {
            eva_image_free(&img);
            return eva_fail(EVA_ERR_NOMEM, "%s: out of memory converting to RGB", path);
        }
        eva_image_to_rgb8(rgb, &img, 0, 0, img.w, img.h);
        int w = img.w, h = img.h;
        eva_image_free(&img);
        memset(&img, 0, sizeof img);
        img.w = w;
        img.h = h;
        img.mode = EVA_MODE_RGB;
        img.channels = 3;
        img.px = rgb;
    }
    st = eva_image_preprocess(out, NULL, &img, size);
    if (st != EVA_OK) eva_fail_context("%s", path);
    eva_image_free(&img);
    return st;
}

/* ============================================================================================ */
/* Progress. */

double eva_zs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void eva_zs_progress_start(eva_zs_progress *p, FILE *f, bool live, const char *what) {
    p->f = f;
    p->live = live;
    p->t0 = eva_zs_now();
    p->last = 0;
    p->what = what;
}

static void fmt_dur(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static void progress_line(eva_zs_progress *p, int64_t done, int64_t total, double top1, const char *end) {
    double el = eva_zs_now() - p->t0;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32], ela[32];
    fmt_dur(eta, sizeof eta, rate > 0 ? (double)(total - done) / rate : NAN);
    fmt_dur(ela, sizeof ela, el);
    fprintf(p->f, "%s%s: %lld/%lld (%.1f%%), %.2f/s, elapsed %s, ETA %s", p->live ? "\r" : "", p->what,
            (long long)done, (long long)total, total ? 100.0 * (double)done / (double)total : 100.0, rate, ela, eta);
    if (top1 >= 0) fprintf(p->f, ", running top-1 %.2f%%", 100.0 * top1);
    fputs(end, p->f);
    fflush(p->f);
}

void eva_zs_progress_update(eva_zs_progress *p, int64_t done, int64_t total, double top1) {
    if (!p->live) return;
    double t = eva_zs_now();
    if (t - p->last < 0.2 && done < total) return;
    p->last = t;
    progress_line(p, done, total, top1, "\033[K");
}

void eva_zs_progress_end(eva_zs_progress *p, int64_t done, int64_t total, double top1) {
    progress_line(p, done, total, top1, p->live ? "\033[K\n" : "\n");
}

/* ============================================================================================ */
/* Published numbers: docs/model.md §10.1 (card) and §10.4 (open_clip re-evaluation); acc5 of
 * g-14 from §10.3. */

static const eva_zs_published published[] = {
    {"EVA01-CLIP-g-14", "EVA01-g-14", 78.5, 78.52, 95.51},
    {"EVA01-CLIP-g-14-plus", "EVA01-g-14-plus", 79.3, 79.33, NAN},
    {"EVA02-CLIP-B-16", "EVA02-B-16", 74.7, 74.72, NAN},
    {"EVA02-CLIP-L-14", "EVA02-L-14", 79.8, 79.77, NAN},
    {"EVA02-CLIP-L-14-336", "EVA02-L-14-336", 80.4, 80.39, NAN},
    {"EVA02-CLIP-bigE-14", "EVA02-E-14", 81.9, 81.96, NAN},
    {"EVA02-CLIP-bigE-14-plus", "EVA02-E-14-plus", 82.0, 82.01, NAN},
};

const eva_zs_published *eva_zs_published_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++)
        if (!strcasecmp(name, published[i].official) || !strcasecmp(name, published[i].open_clip))
            return &published[i];
    return NULL;
}

/* ============================================================================================ */

void eva_zs_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* ============================================================================================ */
/* Session. */

eva_status eva_zs_session_config(eva_zs_session *s, const char *weights, const char *config_path,
                                 const char *variant) {
    memset(s, 0, sizeof *s);
    eva_status st = eva_resolve_config(&s->cfg, &s->cfg_source, config_path, variant, NULL, NULL, weights);
    if (st != EVA_OK) return st;
    if (s->cfg.text.vocab_size < EVA_VOCAB_SIZE)
        return eva_fail(EVA_ERR_INVALID_ARG,
                        "config '%s' (from %s): the text tower's vocabulary has %d entries, but zero-shot prompts go "
                        "through the CLIP BPE tokenizer, whose ids reach %d: use a model with the full vocabulary",
                        s->cfg.name, s->cfg_source, s->cfg.text.vocab_size, EVA_VOCAB_SIZE);
    return EVA_OK;
}

static eva_status session_encode_text(void *ctx, float *features, const int32_t *ids, int T) {
    eva_zs_session *s = ctx;
    return eva_backend_encode_text(&s->be, features, ids, T, NULL);
}

eva_status eva_zs_session_open(eva_zs_session *s, const char *weights, eva_impl impl, eva_precision prec) {
    eva_status st = eva_model_load(&s->model, weights, &s->cfg);
    if (st != EVA_OK) return st;
    if ((st = eva_backend_open_impl(&s->be, impl, prec, &s->model, 0)) != EVA_OK) return st;
    if ((st = eva_tokenizer_open(&s->tok, NULL)) != EVA_OK) return st;
    if (!s->text_batch) {
        /* as many prompts per call as keep the reference's activation workspace under 1 GiB */
        s->text_batch = 1024;
        while (s->text_batch > 1 && eva_ref_text_workspace_floats(&s->cfg, s->text_batch) > ((int64_t)1 << 28))
            s->text_batch /= 2;
    }
    return EVA_OK;
}

void eva_zs_session_text_encoder(eva_zs_session *s, eva_zs_text_encoder *enc) {
    memset(enc, 0, sizeof *enc);
    enc->tok = s->tok;
    enc->context_length = s->cfg.text.context_length;
    enc->embed_dim = s->cfg.embed_dim;
    enc->max_batch = s->text_batch > 0 ? s->text_batch : 1024;
    enc->encode = session_encode_text;
    enc->encode_ctx = s;
}

void eva_zs_session_close(eva_zs_session *s) {
    eva_backend_close(&s->be);
    eva_model_free(&s->model);
    eva_tokenizer_free(s->tok);
    s->tok = NULL;
}
