/* golden_h5.c: everything that calls libhdf5: reading a golden or an inputs file into the dump
 * stream of golden_dump.h, and encode's writer (eva_h5out). See golden.h for the layout read.
 *
 * The readers run in the guarded child of golden.c (libhdf5 1.10 mis-parses hostile files: heap
 * overflows, use-after-free, endless loops), or in-process on a file image for fuzzing. They
 * trust no declared size: rank, dims and type class are checked, the size is capped
 * (EVA_H5_MAX_BYTES), compared with what the config expects, and compared with the bytes the
 * file actually stores for the dataset (a chunked dataset with no chunks would otherwise be
 * "read" as gigabytes of fill value) before any buffer is allocated. Datasets whose raw data
 * lives in other files (external storage, virtual datasets) and links that leave the file are
 * refused. HDF5's own error printing is off (eva_h5_quiet).
 */
#include "golden.h"
#include "golden_dump.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void eva_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- small helpers ------------------------------------------------------------------------- */

static void close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}


/* Rank, dims and type class of a dataset; checks rank in [minr,maxr], dims >= 1 and the total
 * size (elements * elem_bytes) under the cap. */
static eva_status ds_shape(hid_t ds, const char *path, const char *dname, int minr, int maxr, int64_t elem_bytes,
                           int *ndim, int64_t shape[4], H5T_class_t *cls, size_t *tsize) {
    eva_status st = EVA_OK;
    hid_t sp = H5Dget_space(ds);
    hid_t ty = H5Dget_type(ds);
    if (sp < 0 || ty < 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: cannot read the dataspace or datatype", path, dname);
        goto fail;
    }
    if (H5Sget_simple_extent_type(sp) != H5S_SIMPLE) {
        if (minr == maxr)
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s: is a scalar or empty dataset, expected an array of rank %d", path,
                          dname, minr);
        else
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s: is a scalar or empty dataset, expected an array of rank %d to %d",
                          path, dname, minr, maxr);
        goto fail;
    }
    int r = H5Sget_simple_extent_ndims(sp);
    if (r < minr || r > maxr || r > 4) {
        if (minr == maxr)
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s: has rank %d, expected rank %d", path, dname, r, minr);
        else
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s: has rank %d, expected rank %d to %d", path, dname, r, minr, maxr);
        goto fail;
    }
    hsize_t dims[32];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    int64_t total = elem_bytes;
    for (int i = 0; i < r; i++) {
        if (dims[i] < 1) {
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s: dimension %d is 0 (empty dataset)", path, dname, i);
            goto fail;
        }
        if (dims[i] > (hsize_t)EVA_H5_MAX_BYTES || total > EVA_H5_MAX_BYTES / (int64_t)dims[i]) {
            st = eva_fail(EVA_ERR_NOMEM, "%s: %s: too large (over %lld bytes)", path, dname,
                          (long long)EVA_H5_MAX_BYTES);
            goto fail;
        }
        total *= (int64_t)dims[i];
        shape[i] = (int64_t)dims[i];
    }
    *ndim = r;
    *cls = H5Tget_class(ty);
    *tsize = H5Tget_size(ty);
fail:
    close_id(ty);
    close_id(sp);
    return st;
}

static eva_status open_ds(hid_t *ds, hid_t loc, const char *path, const char *dname) {
    *ds = H5I_INVALID_HID;
    htri_t ex = H5Lexists(loc, dname, H5P_DEFAULT);
    if (ex <= 0) return eva_fail(EVA_ERR_FORMAT, "%s: has no dataset %s", path, dname);
    H5L_info_t li;
    if (H5Lget_info(loc, dname, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
        return eva_fail(EVA_ERR_FORMAT, "%s: %s: is a soft or external link (only plain datasets are read)", path, dname);
    hid_t d = H5Dopen2(loc, dname, H5P_DEFAULT);
    if (d < 0) return eva_fail(EVA_ERR_FORMAT, "%s: %s: is not a dataset", path, dname);
    *ds = d;
    return EVA_OK;
}




/* A string attribute (variable-length or fixed-length, scalar or one element). *out = NULL and
 * EVA_OK when the attribute is absent. */
static eva_status attr_string(hid_t obj, const char *path, const char *aname, char **out) {
    eva_status st = EVA_OK;
    hid_t a = H5I_INVALID_HID, ty = H5I_INVALID_HID, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    *out = NULL;
    if (H5Aexists(obj, aname) <= 0) return EVA_OK;
    a = H5Aopen(obj, aname, H5P_DEFAULT);
    ty = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    if (a < 0 || ty < 0 || sp < 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' cannot be read", path, aname);
        goto fail;
    }
    if (H5Tget_class(ty) != H5T_STRING) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' is not a string", path, aname);
        goto fail;
    }
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    if (npts != 1) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' holds %lld strings, expected one", path, aname,
                      (long long)npts);
        goto fail;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0) {
        st = eva_fail(EVA_ERR_INTERNAL, "%s: attribute '%s': H5Tcopy failed", path, aname);
        goto fail;
    }
    H5Tset_cset(mt, H5Tget_cset(ty));
    if (H5Tis_variable_str(ty) > 0) {
        char *v = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a, mt, &v) < 0 || !v) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' cannot be read", path, aname);
            goto fail;
        }
        size_t n = strnlen(v, (size_t)EVA_H5_MAX_ATTR_BYTES + 1);
        if ((int64_t)n > EVA_H5_MAX_ATTR_BYTES) {
            H5free_memory(v);
            st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' is too long", path, aname);
            goto fail;
        }
        *out = malloc(n + 1);
        if (*out) {
            memcpy(*out, v, n);
            (*out)[n] = '\0';
        }
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ty);
        if (n == 0 || (int64_t)n > EVA_H5_MAX_ATTR_BYTES) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' has a bad string size", path, aname);
            goto fail;
        }
        H5Tset_size(mt, n + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        *out = calloc(n + 2, 1);
        if (*out && H5Aread(a, mt, *out) < 0) {
            free(*out);
            *out = NULL;
            st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' cannot be read", path, aname);
            goto fail;
        }
    }
    if (!*out) st = eva_fail(EVA_ERR_NOMEM, "%s: attribute '%s': out of memory", path, aname);
fail:
    close_id(mt);
    close_id(sp);
    close_id(ty);
    close_id(a);
    return st;
}

static eva_status attr_int(hid_t obj, const char *path, const char *aname, int64_t *out, bool *present) {
    *present = false;
    if (H5Aexists(obj, aname) <= 0) return EVA_OK;
    eva_status st = EVA_OK;
    hid_t a = H5Aopen(obj, aname, H5P_DEFAULT);
    hid_t ty = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    hid_t sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    if (a < 0 || ty < 0 || sp < 0 || H5Tget_class(ty) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != 1 ||
        H5Aread(a, H5T_NATIVE_INT64, out) < 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: attribute '%s' is not a single integer", path, aname);
    else
        *present = true;
    close_id(sp);
    close_id(ty);
    close_id(a);
    return st;
}

/* ---- what the file stores ------------------------------------------------------------------ */

/* Refuses a dataset whose raw data is outside the file (external storage, virtual layout) or
 * whose declared size (mem_bytes once converted) is not backed by what the file stores: more than
 * EVA_H5_MAX_RATIO times its stored bytes plus 1 MiB (deflate cannot expand more than ~1032x; a
 * chunked dataset with no chunks written stores nothing and would read as fill value). */
#define EVA_H5_MAX_RATIO 1100
static eva_status ds_backed(hid_t ds, const char *path, const char *dname, int64_t mem_bytes) {
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return eva_fail(EVA_ERR_FORMAT, "%s: %s: cannot read the dataset's creation properties", path, dname);
    H5D_layout_t lay = H5Pget_layout(dcpl);
    int next = H5Pget_external_count(dcpl);
    H5Pclose(dcpl);
    if (lay != H5D_COMPACT && lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED)
        return eva_fail(EVA_ERR_FORMAT, "%s: %s: has a virtual or unknown storage layout (only data stored in the "
                                        "file itself is read)", path, dname);
    if (next != 0)
        return eva_fail(EVA_ERR_FORMAT, "%s: %s: keeps its data in external files (only data stored in the file "
                                        "itself is read)", path, dname);
    int64_t stored = (int64_t)H5Dget_storage_size(ds);
    if (stored < 0 || stored > ((int64_t)1 << 50)) stored = 0;
    if (mem_bytes > stored * EVA_H5_MAX_RATIO + ((int64_t)1 << 20))
        return eva_fail(EVA_ERR_FORMAT, "%s: %s: declares %lld bytes but the file stores only %lld bytes for it "
                                        "(unwritten or corrupt dataset)", path, dname, (long long)mem_bytes,
                        (long long)stored);
    return EVA_OK;
}

/* ---- the dump stream ----------------------------------------------------------------------- */

static eva_status put_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return eva_fail(EVA_ERR_IO, "writing the decoded HDF5 data failed: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return EVA_OK;
}

static eva_status put_rec(int fd, eva_dump_kind kind, const char *name, uint32_t flags, int ndim,
                          const int64_t *shape, const void *data, size_t nbytes) {
    eva_dump_rec r;
    memset(&r, 0, sizeof r);
    r.kind = (uint32_t)kind;
    r.flags = flags;
    r.ndim = ndim;
    for (int i = 0; i < ndim && i < 4; i++) r.shape[i] = shape[i];
    r.nbytes = nbytes;
    if (name) snprintf(r.name, sizeof r.name, "%s", name);
    eva_status st = put_all(fd, &r, sizeof r);
    if (st == EVA_OK && nbytes) st = put_all(fd, data, nbytes);
    return st;
}

static eva_status put_string(int fd, eva_dump_kind kind, const char *s) {
    if (!s) return EVA_OK;
    return put_rec(fd, kind, NULL, 0, 0, NULL, s, strlen(s));
}

/* ---- datasets ------------------------------------------------------------------------------ */

static int64_t numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* Reads an open float-class dataset whose shape was checked into a new float32 buffer. */
static eva_status read_f32(hid_t ds, const char *path, const char *dname, int64_t n, float **data) {
    eva_status st = ds_backed(ds, path, dname, n * 4);
    if (st != EVA_OK) return st;
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: %s: cannot allocate %lld floats", path, dname, (long long)n);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        return eva_fail(EVA_ERR_FORMAT, "%s: %s: read failed (corrupt data or a compression filter this HDF5 lacks)",
                        path, dname);
    }
    *data = buf;
    return EVA_OK;
}

/* Reads an open integer [T,L] dataset (int32 or int64, any signedness) into int32 with a range check. */
static eva_status read_ids(hid_t ds, const char *path, const char *dname, const int64_t sh[2], int32_t **data) {
    int64_t n = sh[0] * sh[1];
    eva_status st = ds_backed(ds, path, dname, n * 8);
    if (st != EVA_OK) return st;
    int64_t *tmp = malloc((size_t)n * sizeof(int64_t));
    int32_t *out = malloc((size_t)n * sizeof(int32_t));
    if (!tmp || !out) {
        st = eva_fail(EVA_ERR_NOMEM, "%s: %s: cannot allocate %lld ids", path, dname, (long long)n);
    } else if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: read failed (corrupt data, values beyond int64, or a missing filter)",
                      path, dname);
    } else {
        for (int64_t i = 0; i < n && st == EVA_OK; i++) {
            if (tmp[i] < INT32_MIN || tmp[i] > INT32_MAX)
                st = eva_fail(EVA_ERR_INVALID_ARG, "%s: %s: token id %lld at [%lld,%lld] is out of range", path, dname,
                              (long long)tmp[i], (long long)(i / sh[1]), (long long)(i % sh[1]));
            else
                out[i] = (int32_t)tmp[i];
        }
    }
    free(tmp);
    if (st != EVA_OK) free(out);
    else *data = out;
    return st;
}

/* /inputs/pixel_values: [B,C,H,W] float; with a config, [B,3,S,S] is required before reading. */
static eva_status dump_pixels(hid_t f, const char *path, const eva_config *cfg, int fd) {
    const char *dname = "/inputs/pixel_values";
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    int nd;
    int64_t s[4];
    float *buf = NULL;
    eva_status st = open_ds(&ds, f, path, dname);
    if (st != EVA_OK) return st;
    if ((st = ds_shape(ds, path, dname, 4, 4, 4, &nd, s, &cls, &tsize)) != EVA_OK) goto done;
    if (cls != H5T_FLOAT) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-float datatype, expected float32", path, dname);
        goto done;
    }
    if (cfg) {
        const int S = cfg->vision.image_size;
        if (s[1] != 3 || s[2] != S || s[3] != S) {
            st = eva_fail(EVA_ERR_SHAPE, "%s: %s has shape [%lld,%lld,%lld,%lld], the config expects [%lld,3,%d,%d]",
                          path, dname, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
                          (long long)s[0], S, S);
            goto done;
        }
    }
    if ((st = read_f32(ds, path, dname, numel(4, s), &buf)) != EVA_OK) goto done;
    st = put_rec(fd, EVA_DUMP_PIXELS, NULL, 0, 4, s, buf, (size_t)numel(4, s) * sizeof(float));
done:
    free(buf);
    close_id(ds);
    return st;
}

/* /inputs/input_ids: [T,L] integer; with a config, L = context_length is required before reading. */
static eva_status dump_ids(hid_t f, const char *path, const eva_config *cfg, int fd) {
    const char *dname = "/inputs/input_ids";
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    int nd;
    int64_t s[4];
    int32_t *ids = NULL;
    eva_status st = open_ds(&ds, f, path, dname);
    if (st != EVA_OK) return st;
    if ((st = ds_shape(ds, path, dname, 2, 2, 8, &nd, s, &cls, &tsize)) != EVA_OK) goto done;
    if (cls != H5T_INTEGER || tsize > 8) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-integer datatype, expected int32 or int64 token ids", path,
                      dname);
        goto done;
    }
    if (cfg && s[1] != cfg->text.context_length) {
        st = eva_fail(EVA_ERR_SHAPE, "%s: %s has shape [%lld,%lld], the config expects [%lld,%d]", path, dname,
                      (long long)s[0], (long long)s[1], (long long)s[0], cfg->text.context_length);
        goto done;
    }
    if ((st = read_ids(ds, path, dname, s, &ids)) != EVA_OK) goto done;
    st = put_rec(fd, EVA_DUMP_IDS, NULL, 0, 2, s, ids, (size_t)(s[0] * s[1]) * sizeof(int32_t));
done:
    free(ids);
    close_id(ds);
    return st;
}

/* True when the link `name` in `loc` exists and is a hard link (not soft, not external). */
static eva_status hard_link(hid_t loc, const char *path, const char *name, bool *exists) {
    *exists = H5Lexists(loc, name, H5P_DEFAULT) > 0;
    if (!*exists) return EVA_OK;
    H5L_info_t li;
    if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD)
        return eva_fail(EVA_ERR_FORMAT, "%s: /%s is a soft or external link (only plain groups are read)", path, name);
    return EVA_OK;
}

static eva_status dump_inputs(hid_t f, const char *path, const eva_config *cfg, int fd, int64_t *B, int64_t *T) {
    bool ex, has_pix, has_ids;
    eva_status st = hard_link(f, path, "inputs", &ex);
    if (st != EVA_OK) return st;
    if (!ex)
        return eva_fail(EVA_ERR_FORMAT, "%s: has no /inputs group (expected /inputs/pixel_values and/or "
                                        "/inputs/input_ids)", path);
    hid_t g = H5Gopen2(f, "inputs", H5P_DEFAULT);
    if (g < 0) return eva_fail(EVA_ERR_FORMAT, "%s: /inputs is not a group", path);
    has_pix = H5Lexists(g, "pixel_values", H5P_DEFAULT) > 0;
    has_ids = H5Lexists(g, "input_ids", H5P_DEFAULT) > 0;
    H5Gclose(g);
    *B = *T = 0;
    if (!has_pix && !has_ids) return eva_fail(EVA_ERR_FORMAT, "%s: /inputs has neither pixel_values nor input_ids", path);
    if (has_pix && (st = dump_pixels(f, path, cfg, fd)) != EVA_OK) return st;
    if (has_ids && (st = dump_ids(f, path, cfg, fd)) != EVA_OK) return st;
    /* B and T as declared (for the expected shapes of the activations). */
    hsize_t d[4];
    hid_t ds, sp;
    if (has_pix && (ds = H5Dopen2(f, "/inputs/pixel_values", H5P_DEFAULT)) >= 0) {
        if ((sp = H5Dget_space(ds)) >= 0 && H5Sget_simple_extent_dims(sp, d, NULL) == 4) *B = (int64_t)d[0];
        close_id(sp);
        H5Dclose(ds);
    }
    if (has_ids && (ds = H5Dopen2(f, "/inputs/input_ids", H5P_DEFAULT)) >= 0) {
        if ((sp = H5Dget_space(ds)) >= 0 && H5Sget_simple_extent_dims(sp, d, NULL) == 2) *T = (int64_t)d[0];
        close_id(sp);
        H5Dclose(ds);
    }
    return EVA_OK;
}

/* ---- activations --------------------------------------------------------------------------- */

/* Expected shape of /acts/<name> for cfg with B images and T texts; -1 when unknown. */
static int act_expected(const eva_config *cfg, const char *name, int64_t B, int64_t T, int64_t want[4]) {
    if (!strcmp(name, "image_embeds") || !strcmp(name, "text_embeds")) {
        want[0] = name[0] == 'i' ? B : T;
        want[1] = cfg->embed_dim;
        return 2;
    }
    return eva_tap_shape(cfg, name, B, T, want);
}

/* One /acts member: shape checked; data read only when it has the shape cfg expects (or with no
 * config); otherwise only its declared shape is recorded, for the caller's message. */
static eva_status dump_act(hid_t grp, const char *path, const char *name, const eva_config *cfg, int64_t B, int64_t T,
                           int fd) {
    char dname[EVA_TAP_NAME_MAX + 8];
    snprintf(dname, sizeof dname, "/acts/%s", name);
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    int nd;
    int64_t s[4], want[4];
    float *buf = NULL;
    eva_status st = open_ds(&ds, grp, path, name);
    if (st != EVA_OK) {
        eva_fail(st, "%s: %s is not a dataset", path, dname);
        return st;
    }
    if ((st = ds_shape(ds, path, dname, 1, 4, 4, &nd, s, &cls, &tsize)) != EVA_OK) goto done;
    if (cls != H5T_FLOAT) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-float datatype, expected float32", path, dname);
        goto done;
    }
    int nw = cfg ? act_expected(cfg, name, B, T, want) : nd;
    bool match = nw == nd && (!cfg || memcmp(want, s, (size_t)nd * sizeof *s) == 0);
    if (!match) {
        st = put_rec(fd, EVA_DUMP_ACT, name, EVA_DUMP_SHAPE_ONLY, nd, s, NULL, 0);
        goto done;
    }
    if ((st = read_f32(ds, path, dname, numel(nd, s), &buf)) != EVA_OK) goto done;
    st = put_rec(fd, EVA_DUMP_ACT, name, 0, nd, s, buf, (size_t)numel(nd, s) * sizeof(float));
done:
    free(buf);
    close_id(ds);
    return st;
}

static eva_status dump_acts(hid_t f, const char *path, const eva_config *cfg, int64_t B, int64_t T, int fd) {
    bool ex;
    eva_status st = hard_link(f, path, "acts", &ex);
    if (st != EVA_OK || !ex) return st; /* a golden of inputs only */
    hid_t grp = H5Gopen2(f, "acts", H5P_DEFAULT);
    if (grp < 0) return eva_fail(EVA_ERR_FORMAT, "%s: /acts is not a group", path);
    H5G_info_t info;
    if (H5Gget_info(grp, &info) < 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: /acts cannot be listed", path);
        goto done;
    }
    if (info.nlinks > EVA_GOLDEN_MAX_ACTS) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: /acts holds %llu members (more than %d)", path,
                      (unsigned long long)info.nlinks, EVA_GOLDEN_MAX_ACTS);
        goto done;
    }
    for (hsize_t i = 0; i < info.nlinks && st == EVA_OK; i++) {
        char name[EVA_TAP_NAME_MAX];
        ssize_t n = H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (n < 0) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: /acts member %llu cannot be read", path, (unsigned long long)i);
        } else if (n >= EVA_TAP_NAME_MAX) {
            char shortname[48] = "";
            H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, shortname, sizeof shortname, H5P_DEFAULT);
            st = eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s...: unknown tap (name longer than %d characters)", path,
                          shortname, EVA_TAP_NAME_MAX - 1);
        } else if (H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
                   strlen(name) != (size_t)n) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: /acts member %llu has an unreadable name", path, (unsigned long long)i);
        } else {
            st = dump_act(grp, path, name, cfg, B, T, fd);
        }
    }
done:
    H5Gclose(grp);
    return st;
}

/* ---- whole files --------------------------------------------------------------------------- */

/* Every string attribute of the root group (at most EVA_DUMP_MAX_ATTRS, names shorter than
 * EVA_TAP_NAME_MAX; other attributes are skipped), for eva_golden_attr. */
static eva_status dump_root_attrs(hid_t f, const char *path, int fd) {
    H5O_info_t oi;
    if (H5Oget_info2(f, &oi, H5O_INFO_NUM_ATTRS) < 0) return eva_fail(EVA_ERR_FORMAT, "%s: root attributes cannot be listed", path);
    eva_status st = EVA_OK;
    for (hsize_t i = 0; i < oi.num_attrs && i < EVA_DUMP_MAX_ATTRS && st == EVA_OK; i++) {
        char name[EVA_TAP_NAME_MAX];
        ssize_t n = H5Aget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        if (n <= 0 || n >= (ssize_t)sizeof name) continue;
        hid_t a = H5Aopen(f, name, H5P_DEFAULT);
        hid_t ty = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
        bool is_str = ty >= 0 && H5Tget_class(ty) == H5T_STRING;
        close_id(ty);
        close_id(a);
        char *v = NULL;
        if (is_str && (st = attr_string(f, path, name, &v)) == EVA_OK && v)
            st = put_rec(fd, EVA_DUMP_ATTR, name, 0, 0, NULL, v, strlen(v));
        free(v);
    }
    return st;
}

static eva_status dump_golden(hid_t f, const char *path, const eva_config *expect, bool any_impl, int fd) {
    char *s = NULL;
    eva_status st = attr_string(f, path, "schema", &s);
    if (st != EVA_OK) return st;
    if (!s && !any_impl)
        return eva_fail(EVA_ERR_FORMAT, "%s: has no 'schema' attribute, expected \"%s\"", path, EVA_GOLDEN_SCHEMA);
    if (s && strcmp(s, EVA_GOLDEN_SCHEMA) != 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: schema is \"%.64s\", expected \"%s\"%s", path, s, EVA_GOLDEN_SCHEMA,
                      any_impl ? " (or no schema attribute)" : "");
        free(s);
        return st;
    }
    st = put_string(fd, EVA_DUMP_SCHEMA, s);
    free(s);
    static const char *const names[] = {"config", "weights", "generator"};
    static const eva_dump_kind kinds[] = {EVA_DUMP_CONFIG, EVA_DUMP_WEIGHTS, EVA_DUMP_GENERATOR};
    eva_config own;
    for (int i = 0; i < 3 && st == EVA_OK; i++) {
        s = NULL;
        if ((st = attr_string(f, path, names[i], &s)) == EVA_OK) st = put_string(fd, kinds[i], s);
        /* With no config from the caller, a golden's own config sizes what is read. */
        if (st == EVA_OK && i == 0 && s && !expect && !any_impl) {
            if (eva_config_from_json(&own, s, path) == EVA_OK) expect = &own;
            eva_clear_error(); /* a config that does not parse is the caller's to report */
        }
        free(s);
    }
    int64_t seed, B = 0, T = 0;
    bool has_seed, has_inputs = true;
    if (st == EVA_OK) st = attr_int(f, path, "seed", &seed, &has_seed);
    if (st == EVA_OK && has_seed) st = put_rec(fd, EVA_DUMP_SEED, NULL, 0, 0, NULL, &seed, sizeof seed);
    if (st == EVA_OK) st = dump_root_attrs(f, path, fd);
    if (st == EVA_OK && any_impl) st = hard_link(f, path, "inputs", &has_inputs);
    if (st == EVA_OK && has_inputs) st = dump_inputs(f, path, expect, fd, &B, &T);
    if (st == EVA_OK) st = dump_acts(f, path, expect, B, T, fd);
    return st;
}

/* Writes the head: the magic and the reader's status and message. */
static eva_status write_head(int fd, eva_status st, const char *path) {
    eva_dump_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, EVA_DUMP_MAGIC, sizeof h.magic);
    h.status = st;
    if (st != EVA_OK) snprintf(h.msg, sizeof h.msg, "%s", eva_last_error());
    if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        return eva_fail(EVA_ERR_IO, "%s: writing the decoded HDF5 data failed", path);
    return st;
}

eva_status eva_h5_dump(int64_t file, const char *path, eva_h5_what what, const eva_config *expect, int fd) {
    int64_t B, T;
    eva_h5_quiet();
    eva_status st = what == EVA_H5_INPUTS ? dump_inputs((hid_t)file, path, expect, fd, &B, &T)
                                          : dump_golden((hid_t)file, path, expect, what == EVA_H5_DUMP, fd);
    return write_head(fd, st, path);
}

/* Positions fd after the (not yet written) head. */
static eva_status dump_start(int fd) {
    eva_dump_head h;
    memset(&h, 0, sizeof h);
    return put_all(fd, &h, sizeof h);
}

eva_status eva_h5_dump_path(const char *path, eva_h5_what what, const eva_config *expect, int fd) {
    eva_h5_quiet();
    eva_status st = dump_start(fd);
    if (st != EVA_OK) return st;
    hid_t f = H5I_INVALID_HID;
    if (H5Fis_hdf5(path) <= 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: not an HDF5 file (expected an HDF5 file)", path);
    else if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        st = eva_fail(EVA_ERR_FORMAT, "%s: HDF5 cannot open the file (corrupt or truncated?)", path);
    if (st != EVA_OK) return write_head(fd, st, path);
    st = eva_h5_dump(f, path, what, expect, fd);
    H5Fclose(f);
    return st;
}

eva_status eva_h5_dump_image(const void *buf, size_t len, const char *name, eva_h5_what what,
                             const eva_config *expect, int fd) {
    eva_h5_quiet();
    eva_status st = dump_start(fd);
    if (st != EVA_OK) return st;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t f = H5I_INVALID_HID;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_file_image(fapl, (void *)buf, len) >= 0)
        f = H5Fopen("/proc/evabench-hdf5-file-image", H5F_ACC_RDONLY, fapl); /* a name no file has: the
                                                                            core driver refuses an
                                                                            existing file's name */
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) return write_head(fd, eva_fail(EVA_ERR_FORMAT, "%s: HDF5 cannot open the file image", name), name);
    st = eva_h5_dump(f, name, what, expect, fd);
    H5Fclose(f);
    return st;
}

/* ---- writer -------------------------------------------------------------------------------- */

eva_status eva_h5out_create(eva_h5out *o, const char *path) {
    memset(o, 0, sizeof *o);
    o->file = H5I_INVALID_HID;
    eva_h5_quiet();
    if (!path || !*path) return eva_fail(EVA_ERR_INVALID_ARG, "empty output file name");
    if (strlen(path) >= sizeof o->path) return eva_fail(EVA_ERR_INVALID_ARG, "%.64s...: output path too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create the output file", path);
    o->file = f;
    return EVA_OK;
}

eva_status eva_h5out_write(eva_h5out *o, const char *name, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > 4) return eva_fail(EVA_ERR_INTERNAL, "%s: %s: bad rank %d", o->path, name, ndim);
    hsize_t dims[4];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    eva_status st = EVA_OK;
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = sp >= 0 ? H5Dcreate2((hid_t)o->file, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                       : H5I_INVALID_HID;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = eva_fail(EVA_ERR_IO, "%s: cannot write dataset /%s", o->path, name);
    close_id(ds);
    close_id(lcpl);
    close_id(sp);
    return st;
}

eva_status eva_h5out_attr(eva_h5out *o, const char *name, const char *value) {
    size_t n = strlen(value);
    eva_status st = EVA_OK;
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, n ? n : 1);
    H5Tset_strpad(ty, H5T_STR_NULLPAD);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2((hid_t)o->file, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, ty, n ? value : " ") < 0)
        st = eva_fail(EVA_ERR_IO, "%s: cannot write attribute '%s'", o->path, name);
    close_id(a);
    close_id(sp);
    close_id(ty);
    return st;
}

eva_status eva_h5out_close(eva_h5out *o) {
    if (!o || o->file <= 0) return EVA_OK;
    herr_t e = H5Fclose((hid_t)o->file);
    o->file = H5I_INVALID_HID;
    if (e < 0) return eva_fail(EVA_ERR_IO, "%s: closing (flushing) the output file failed", o->path);
    return EVA_OK;
}
/* ---- writer: row blocks of a dataset and integer datasets ---------------------------------- */

/* Opens /name, creating it as float32 [total, shape[1..]] on first use; checks the dims agree. */
static eva_status rows_dataset(hid_t *ds, eva_h5out *o, const char *name, int ndim, const int64_t *shape,
                               int64_t total) {
    hsize_t dims[4];
    dims[0] = (hsize_t)total;
    for (int i = 1; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    *ds = H5I_INVALID_HID;
    if (H5Lexists((hid_t)o->file, name, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2((hid_t)o->file, name, H5P_DEFAULT);
        hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
        hsize_t have[4] = {0, 0, 0, 0};
        int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (r == ndim) H5Sget_simple_extent_dims(sp, have, NULL);
        close_id(sp);
        bool same = r == ndim;
        for (int i = 0; same && i < ndim; i++) same = have[i] == dims[i];
        if (!same) {
            close_id(d);
            return eva_fail(EVA_ERR_INTERNAL, "%s: /%s: a later batch has a different shape", o->path, name);
        }
        *ds = d;
        return EVA_OK;
    }
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = sp >= 0 ? H5Dcreate2((hid_t)o->file, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                      : H5I_INVALID_HID;
    close_id(lcpl);
    close_id(sp);
    if (d < 0) return eva_fail(EVA_ERR_IO, "%s: cannot create dataset /%s", o->path, name);
    *ds = d;
    return EVA_OK;
}

eva_status eva_h5out_write_rows(eva_h5out *o, const char *name, const float *data, int ndim, const int64_t *shape,
                                int64_t offset, int64_t total) {
    if (ndim < 1 || ndim > 4 || offset < 0 || shape[0] < 1 || offset + shape[0] > total)
        return eva_fail(EVA_ERR_INTERNAL, "%s: /%s: rows %lld+%lld do not fit %lld", o->path, name, (long long)offset,
                        (long long)(ndim >= 1 ? shape[0] : 0), (long long)total);
    hid_t ds;
    eva_status st = rows_dataset(&ds, o, name, ndim, shape, total);
    if (st != EVA_OK) return st;
    hsize_t start[4] = {(hsize_t)offset, 0, 0, 0}, count[4];
    for (int i = 0; i < ndim; i++) count[i] = (hsize_t)shape[i];
    hid_t fsp = H5Dget_space(ds);
    hid_t msp = H5Screate_simple(ndim, count, NULL);
    if (fsp < 0 || msp < 0 || H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, data) < 0)
        st = eva_fail(EVA_ERR_IO, "%s: cannot write rows %lld-%lld of dataset /%s", o->path, (long long)offset,
                      (long long)(offset + shape[0] - 1), name);
    close_id(msp);
    close_id(fsp);
    close_id(ds);
    return st;
}

eva_status eva_h5out_write_ids(eva_h5out *o, const char *name, const int32_t *ids, int64_t rows, int64_t cols) {
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    eva_status st = EVA_OK;
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = sp >= 0 ? H5Dcreate2((hid_t)o->file, name, H5T_STD_I64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                       : H5I_INVALID_HID;
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) < 0)
        st = eva_fail(EVA_ERR_IO, "%s: cannot write dataset /%s", o->path, name);
    close_id(ds);
    close_id(lcpl);
    close_id(sp);
    return st;
}
