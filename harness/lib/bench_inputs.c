/* bench_inputs.c: reading the input parity data (tokens.h5 text sets, images.h5 tensors) and
 * the speed lines of the tokenizer and of image decode + preprocess. See bench_inputs.h. */
#include "bench_inputs.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eva_image.h"
#include "golden.h"

const char *eva_parity_dir(void) {
    const char *e = getenv("EVA_PARITY_DIR");
    return (e && *e) ? e : EVA_DEFAULT_PARITY_DIR;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads a rank-1 dataset of `mtype` into a fresh buffer of elem bytes per element. */
static eva_status read_1d(hid_t f, const char *path, const char *name, hid_t mtype, size_t elem, void **buf,
                          int64_t *n) {
    *buf = NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return eva_fail(EVA_ERR_FORMAT, "%s: no dataset %s", path, name);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1] = {0};
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank != 1 || H5Sget_simple_extent_dims(sp, dims, NULL) != 1 || dims[0] > ((hsize_t)1 << 31)) {
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
        return eva_fail(EVA_ERR_SHAPE, "%s: %s is not a rank-1 dataset of a sane size", path, name);
    }
    H5Sclose(sp);
    *buf = malloc(dims[0] ? dims[0] * elem : 1);
    if (!*buf) {
        H5Dclose(d);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory for %s", path, name);
    }
    herr_t r = dims[0] ? H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) : 0;
    H5Dclose(d);
    if (r < 0) {
        free(*buf);
        *buf = NULL;
        return eva_fail(EVA_ERR_FORMAT, "%s: cannot read %s", path, name);
    }
    *n = (int64_t)dims[0];
    return EVA_OK;
}

void eva_text_set_free(eva_text_set *s) {
    free(s->bytes);
    free(s->offs);
    free(s->ids);
    free(s->id_offs);
    memset(s, 0, sizeof *s);
}

eva_status eva_text_set_read(eva_text_set *s, const char *h5path, const char *group) {
    memset(s, 0, sizeof *s);
    eva_h5_quiet();
    hid_t f = H5Fopen(h5path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return eva_fail(EVA_ERR_IO, "%s: cannot open as HDF5", h5path);
    char name[256];
    int64_t nb = 0, no = 0, ni = 0, nio = 0;
    eva_status st;
    void *p;
    snprintf(name, sizeof name, "/%s/text_bytes", group);
    st = read_1d(f, h5path, name, H5T_NATIVE_UINT8, 1, &p, &nb);
    s->bytes = p;
    if (st == EVA_OK) {
        snprintf(name, sizeof name, "/%s/text_offsets", group);
        st = read_1d(f, h5path, name, H5T_NATIVE_INT64, 8, &p, &no);
        s->offs = p;
    }
    if (st == EVA_OK) {
        snprintf(name, sizeof name, "/%s/ids", group);
        st = read_1d(f, h5path, name, H5T_NATIVE_INT32, 4, &p, &ni);
        s->ids = p;
    }
    if (st == EVA_OK) {
        snprintf(name, sizeof name, "/%s/id_offsets", group);
        st = read_1d(f, h5path, name, H5T_NATIVE_INT64, 8, &p, &nio);
        s->id_offs = p;
    }
    H5Fclose(f);
    if (st == EVA_OK) {
        s->n = no - 1;
        int ok = no >= 1 && no == nio && s->offs[0] == 0 && s->id_offs[0] == 0 && s->offs[no - 1] == nb &&
                 s->id_offs[no - 1] == ni;
        for (int64_t i = 0; ok && i + 1 < no; i++)
            ok = s->offs[i] <= s->offs[i + 1] && s->id_offs[i] <= s->id_offs[i + 1];
        if (!ok) st = eva_fail(EVA_ERR_FORMAT, "%s: group %s has inconsistent offsets", h5path, group);
    }
    if (st != EVA_OK) eva_text_set_free(s);
    return st;
}

eva_status eva_h5_read_f32(const char *h5path, const char *name, float *out, int64_t count) {
    eva_h5_quiet();
    hid_t f = H5Fopen(h5path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return eva_fail(EVA_ERR_IO, "%s: cannot open as HDF5", h5path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        H5Fclose(f);
        return eva_fail(EVA_ERR_FORMAT, "%s: no dataset %s", h5path, name);
    }
    hid_t sp = H5Dget_space(d);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    eva_status st = EVA_OK;
    if (np != count)
        st = eva_fail(EVA_ERR_SHAPE, "%s: %s has %lld elements, expected %lld", h5path, name, (long long)np,
                      (long long)count);
    else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: cannot read %s", h5path, name);
    H5Dclose(d);
    H5Fclose(f);
    return st;
}

eva_status eva_bench_tokenizer(eva_tokenizer *tok, FILE *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokens.h5", eva_parity_dir());
    eva_text_set s;
    eva_status st = eva_text_set_read(&s, path, "imagenet");
    if (st != EVA_OK) return st;
    int32_t ids[EVA_CONTEXT_LENGTH];
    char *buf = NULL;
    size_t cap = 0;
    double t_cold = 0, t_warm = 0;
    int64_t match = 0;
    for (int pass = 0; pass < 2 && st == EVA_OK; pass++) {
        double t0 = now_s();
        for (int64_t i = 0; i < s.n && st == EVA_OK; i++) {
            size_t len = (size_t)(s.offs[i + 1] - s.offs[i]);
            if (len + 1 > cap) {
                cap = len + 64;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    st = eva_fail(EVA_ERR_NOMEM, "out of memory");
                    break;
                }
                buf = nb;
            }
            memcpy(buf, s.bytes + s.offs[i], len);
            buf[len] = 0;
            st = eva_tokenizer_encode(tok, ids, buf, EVA_CONTEXT_LENGTH);
            if (pass == 0 && st == EVA_OK) {
                int64_t m = s.id_offs[i + 1] - s.id_offs[i];
                int ok = m <= EVA_CONTEXT_LENGTH;
                for (int64_t k = 0; ok && k < EVA_CONTEXT_LENGTH; k++)
                    ok = ids[k] == (k < m ? s.ids[s.id_offs[i] + k] : 0);
                match += ok;
            }
        }
        if (pass) t_warm = now_s() - t0;
        else t_cold = now_s() - t0;
    }
    if (st == EVA_OK)
        fprintf(out,
                "tokenize: %lld ImageNet prompts in %.3f s (fresh BPE cache), %.3f s (warm cache); "
                "%.0f prompts/s; exact match with open_clip %lld/%lld (%.3f %%)\n",
                (long long)s.n, t_cold, t_warm, (double)s.n / t_cold, (long long)match, (long long)s.n,
                100.0 * (double)match / (double)s.n);
    free(buf);
    eva_text_set_free(&s);
    return st;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

eva_status eva_bench_preprocess(const char *image, int size, int iters, FILE *out) {
    if (iters < 1) iters = 1;
    float *px = malloc((size_t)3 * size * size * sizeof *px);
    double *t = malloc((size_t)iters * sizeof *t);
    if (!px || !t) {
        free(px);
        free(t);
        return eva_fail(EVA_ERR_NOMEM, "out of memory");
    }
    eva_status st = EVA_OK;
    int w = 0, h = 0;
    for (int i = 0; i < iters && st == EVA_OK; i++) {
        double t0 = now_s();
        st = eva_image_load_preprocessed(px, image, size);
        t[i] = now_s() - t0;
    }
    if (st == EVA_OK) st = eva_image_probe(image, &w, &h);
    if (st == EVA_OK) {
        qsort(t, (size_t)iters, sizeof *t, cmp_d);
        fprintf(out, "preprocess: %s (%dx%d) -> [3,%d,%d]: decode+resize+crop+normalise median %.3f ms, "
                     "min %.3f ms over %d runs\n",
                image, w, h, size, size, 1e3 * t[iters / 2], 1e3 * t[0], iters);
    }
    free(px);
    free(t);
    return st;
}
