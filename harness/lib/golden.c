/* golden.c: HDF5 readers (goldens, encode inputs) and encode's writer. See golden.h.
 *
 * HDF5 is told not to print (eva_h5_quiet); each failure here is turned into one message naming
 * the file and the dataset. Shapes and types are checked before any allocation, and every
 * allocation is capped by EVA_H5_MAX_BYTES.
 */
#include "golden.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Checks that `path` names an existing regular file that HDF5 recognises, then opens it
 * read-only. */
static eva_status open_h5_read(hid_t *out, const char *path) {
    struct stat st;
    *out = H5I_INVALID_HID;
    eva_h5_quiet();
    if (!path || !*path) return eva_fail(EVA_ERR_INVALID_ARG, "empty HDF5 file name");
    if (stat(path, &st) != 0)
        return eva_fail(EVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return eva_fail(EVA_ERR_IO, "%s: not a regular file", path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return eva_fail(EVA_ERR_FORMAT, "%s: not an HDF5 file (expected an HDF5 file)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return eva_fail(EVA_ERR_FORMAT, "%s: HDF5 cannot open the file (corrupt or truncated?)", path);
    *out = f;
    return EVA_OK;
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

static int64_t numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* Reads a float-class dataset of rank minr..maxr into a new float32 buffer. */
static eva_status read_f32(hid_t loc, const char *path, const char *dname, int minr, int maxr, float **data,
                           int *ndim, int64_t shape[4]) {
    eva_status st;
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    *data = NULL;
    if ((st = open_ds(&ds, loc, path, dname)) != EVA_OK) return st;
    if ((st = ds_shape(ds, path, dname, minr, maxr, 4, ndim, shape, &cls, &tsize)) != EVA_OK) goto fail;
    if (cls != H5T_FLOAT) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-float datatype, expected float32", path, dname);
        goto fail;
    }
    int64_t n = numel(*ndim, shape);
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) {
        st = eva_fail(EVA_ERR_NOMEM, "%s: %s: cannot allocate %lld floats", path, dname, (long long)n);
        goto fail;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: read failed (corrupt data or a compression filter this HDF5 lacks)",
                      path, dname);
        goto fail;
    }
    *data = buf;
fail:
    close_id(ds);
    return st;
}

/* Reads an integer [T,L] dataset (int32 or int64, any signedness) into int32 with a range check. */
static eva_status read_ids(hid_t loc, const char *path, const char *dname, int32_t **data, int64_t shape[2]) {
    eva_status st;
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    int ndim;
    int64_t sh[4];
    *data = NULL;
    if ((st = open_ds(&ds, loc, path, dname)) != EVA_OK) return st;
    if ((st = ds_shape(ds, path, dname, 2, 2, 8, &ndim, sh, &cls, &tsize)) != EVA_OK) goto fail;
    if (cls != H5T_INTEGER || tsize > 8) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-integer datatype, expected int32 or int64 token ids", path,
                      dname);
        goto fail;
    }
    int64_t n = sh[0] * sh[1];
    int64_t *tmp = malloc((size_t)n * sizeof(int64_t));
    int32_t *out = malloc((size_t)n * sizeof(int32_t));
    if (!tmp || !out) {
        free(tmp);
        free(out);
        st = eva_fail(EVA_ERR_NOMEM, "%s: %s: cannot allocate %lld ids", path, dname, (long long)n);
        goto fail;
    }
    if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) < 0) {
        free(tmp);
        free(out);
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: read failed (corrupt data, values beyond int64, or a missing filter)",
                      path, dname);
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        if (tmp[i] < INT32_MIN || tmp[i] > INT32_MAX) {
            st = eva_fail(EVA_ERR_INVALID_ARG, "%s: %s: token id %lld at [%lld,%lld] is out of range", path, dname,
                          (long long)tmp[i], (long long)(i / sh[1]), (long long)(i % sh[1]));
            free(tmp);
            free(out);
            goto fail;
        }
        out[i] = (int32_t)tmp[i];
    }
    free(tmp);
    shape[0] = sh[0];
    shape[1] = sh[1];
    *data = out;
fail:
    close_id(ds);
    return st;
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

/* ---- inputs -------------------------------------------------------------------------------- */

static eva_status inputs_from(eva_inputs *in, hid_t f, const char *path) {
    eva_status st = EVA_OK;
    memset(in, 0, sizeof *in);
    if (H5Lexists(f, "inputs", H5P_DEFAULT) <= 0)
        return eva_fail(EVA_ERR_FORMAT, "%s: has no /inputs group (expected /inputs/pixel_values and/or "
                                        "/inputs/input_ids)", path);
    hid_t g = H5Gopen2(f, "inputs", H5P_DEFAULT);
    if (g < 0) return eva_fail(EVA_ERR_FORMAT, "%s: /inputs is not a group", path);
    if (H5Lexists(g, "pixel_values", H5P_DEFAULT) > 0) {
        int nd;
        st = read_f32(f, path, "/inputs/pixel_values", 4, 4, &in->pixels, &nd, in->pix_shape);
        if (st != EVA_OK) goto fail;
    }
    if (H5Lexists(g, "input_ids", H5P_DEFAULT) > 0) {
        st = read_ids(f, path, "/inputs/input_ids", &in->ids, in->ids_shape);
        if (st != EVA_OK) goto fail;
    }
    if (!in->pixels && !in->ids)
        st = eva_fail(EVA_ERR_FORMAT, "%s: /inputs has neither pixel_values nor input_ids", path);
fail:
    H5Gclose(g);
    if (st != EVA_OK) eva_inputs_free(in);
    return st;
}

eva_status eva_inputs_read(eva_inputs *in, const char *path) {
    hid_t f;
    memset(in, 0, sizeof *in);
    eva_status st = open_h5_read(&f, path);
    if (st != EVA_OK) return st;
    st = inputs_from(in, f, path);
    H5Fclose(f);
    return st;
}

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

/* ---- golden -------------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static eva_status list_acts(eva_golden *g, hid_t f) {
    if (H5Lexists(f, "acts", H5P_DEFAULT) <= 0) return EVA_OK; /* a golden of inputs only */
    hid_t grp = H5Gopen2(f, "acts", H5P_DEFAULT);
    if (grp < 0) return eva_fail(EVA_ERR_FORMAT, "%s: /acts is not a group", g->path);
    eva_status st = EVA_OK;
    H5G_info_t info;
    if (H5Gget_info(grp, &info) < 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: /acts cannot be listed", g->path);
        goto fail;
    }
    if (info.nlinks > EVA_GOLDEN_MAX_ACTS) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: /acts holds %llu members (more than %d)", g->path,
                      (unsigned long long)info.nlinks, EVA_GOLDEN_MAX_ACTS);
        goto fail;
    }
    g->acts = calloc(info.nlinks ? info.nlinks : 1, sizeof *g->acts);
    if (!g->acts) {
        st = eva_fail(EVA_ERR_NOMEM, "%s: out of memory listing /acts", g->path);
        goto fail;
    }
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[EVA_TAP_NAME_MAX];
        ssize_t n = H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (n < 0) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: /acts member %llu cannot be read", g->path, (unsigned long long)i);
            goto fail;
        }
        if (n >= EVA_TAP_NAME_MAX) {
            char shortname[48];
            H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, shortname, sizeof shortname, H5P_DEFAULT);
            st = eva_fail(EVA_ERR_INVALID_ARG, "%s: /acts/%s...: unknown tap (name longer than %d characters)",
                          g->path, shortname, EVA_TAP_NAME_MAX - 1);
            goto fail;
        }
        H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT);
        H5L_info_t li;
        if (H5Lget_info(grp, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_HARD) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: /acts/%s is a soft or external link, expected a dataset", g->path, name);
            goto fail;
        }
        H5O_type_t ot = H5O_TYPE_UNKNOWN;
        hid_t o = H5Oopen(grp, name, H5P_DEFAULT);
        if (o >= 0) {
            ot = H5Iget_type(o) == H5I_DATASET ? H5O_TYPE_DATASET : H5O_TYPE_GROUP;
            H5Oclose(o);
        }
        if (ot != H5O_TYPE_DATASET) {
            st = eva_fail(EVA_ERR_FORMAT, "%s: /acts/%s is not a dataset", g->path, name);
            goto fail;
        }
        memcpy(g->acts[g->n_acts++], name, sizeof name);
    }
    qsort(g->acts, (size_t)g->n_acts, sizeof *g->acts, cmp_names);
fail:
    H5Gclose(grp);
    return st;
}

eva_status eva_golden_open(eva_golden *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->file = H5I_INVALID_HID;
    if (strlen(path) >= sizeof g->path) return eva_fail(EVA_ERR_INVALID_ARG, "golden path too long");
    snprintf(g->path, sizeof g->path, "%s", path);
    snprintf(g->dir, sizeof g->dir, "%s", path);
    char *slash = strrchr(g->dir, '/');
    if (slash == g->dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(g->dir, sizeof g->dir, ".");

    hid_t f;
    eva_status st = open_h5_read(&f, path);
    if (st != EVA_OK) return st;
    g->file = f;
    if ((st = attr_string(f, path, "schema", &g->schema)) != EVA_OK) goto fail;
    if (!g->schema) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: has no 'schema' attribute, expected \"%s\"", path, EVA_GOLDEN_SCHEMA);
        goto fail;
    }
    if (strcmp(g->schema, EVA_GOLDEN_SCHEMA) != 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: schema is \"%.64s\", expected \"%s\"", path, g->schema, EVA_GOLDEN_SCHEMA);
        goto fail;
    }
    if ((st = attr_string(f, path, "config", &g->config_json)) != EVA_OK) goto fail;
    if ((st = attr_string(f, path, "weights", &g->weights)) != EVA_OK) goto fail;
    if ((st = attr_string(f, path, "generator", &g->generator)) != EVA_OK) goto fail;
    if ((st = attr_int(f, path, "seed", &g->seed, &g->has_seed)) != EVA_OK) goto fail;
    if ((st = attr_string(f, path, "compute_dtype", &g->compute_dtype)) != EVA_OK) goto fail;
    if (g->compute_dtype && strcmp(g->compute_dtype, "float64") && strcmp(g->compute_dtype, "float32")) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: compute_dtype is \"%.32s\", expected \"float64\" or \"float32\"", path,
                      g->compute_dtype);
        goto fail;
    }
    if ((st = inputs_from(&g->inputs, f, path)) != EVA_OK) goto fail;
    if ((st = list_acts(g, f)) != EVA_OK) goto fail;
    return EVA_OK;
fail:
    eva_golden_close(g);
    return st;
}

bool eva_golden_has_act(const eva_golden *g, const char *name) {
    if (!g->acts) return false;
    return bsearch(name, g->acts, (size_t)g->n_acts, sizeof *g->acts, cmp_names) != NULL;
}

static eva_status act_open(hid_t *ds, const eva_golden *g, const char *name, char *dname, size_t cap) {
    snprintf(dname, cap, "/acts/%s", name);
    if (!eva_golden_has_act(g, name)) return eva_fail(EVA_ERR_FORMAT, "%s: has no dataset %s", g->path, dname);
    return open_ds(ds, (hid_t)g->file, g->path, dname);
}

eva_status eva_golden_act_shape(const eva_golden *g, const char *name, int *ndim, int64_t shape[4]) {
    char dname[EVA_TAP_NAME_MAX + 8];
    hid_t ds;
    H5T_class_t cls;
    size_t tsize;
    eva_status st = act_open(&ds, g, name, dname, sizeof dname);
    if (st != EVA_OK) return st;
    st = ds_shape(ds, g->path, dname, 1, 4, 4, ndim, shape, &cls, &tsize);
    if (st == EVA_OK && cls != H5T_FLOAT)
        st = eva_fail(EVA_ERR_FORMAT, "%s: %s: has a non-float datatype, expected float32", g->path, dname);
    H5Dclose(ds);
    return st;
}

eva_status eva_golden_read_act(const eva_golden *g, const char *name, float **data, int *ndim, int64_t shape[4]) {
    char dname[EVA_TAP_NAME_MAX + 8];
    *data = NULL;
    snprintf(dname, sizeof dname, "/acts/%s", name);
    if (!eva_golden_has_act(g, name)) return eva_fail(EVA_ERR_FORMAT, "%s: has no dataset %s", g->path, dname);
    return read_f32((hid_t)g->file, g->path, dname, 1, 4, data, ndim, shape);
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
    if (g->file > 0) H5Fclose((hid_t)g->file);
    free(g->schema);
    free(g->config_json);
    free(g->weights);
    free(g->generator);
    free(g->compute_dtype);
    free(g->acts);
    eva_inputs_free(&g->inputs);
    memset(g, 0, sizeof *g);
    g->file = H5I_INVALID_HID;
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

/* ---- tap dumps (any implementation's /acts, read with the golden readers above) -------------- */

eva_status eva_dump_open(eva_golden *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->file = H5I_INVALID_HID;
    if (strlen(path) >= sizeof g->path) return eva_fail(EVA_ERR_INVALID_ARG, "dump path too long");
    snprintf(g->path, sizeof g->path, "%s", path);
    snprintf(g->dir, sizeof g->dir, ".");
    hid_t f;
    eva_status st = open_h5_read(&f, path);
    if (st != EVA_OK) return st;
    g->file = f;
    if ((st = attr_string(f, path, "schema", &g->schema)) != EVA_OK) goto fail;
    if (g->schema && strcmp(g->schema, EVA_GOLDEN_SCHEMA) != 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: schema is \"%.64s\", expected \"%s\" (or no schema attribute)", path,
                      g->schema, EVA_GOLDEN_SCHEMA);
        goto fail;
    }
    if ((st = attr_string(f, path, "config", &g->config_json)) != EVA_OK) goto fail;
    if ((st = attr_string(f, path, "generator", &g->generator)) != EVA_OK) goto fail;
    if (H5Lexists(f, "inputs", H5P_DEFAULT) > 0 && (st = inputs_from(&g->inputs, f, path)) != EVA_OK) goto fail;
    if ((st = list_acts(g, f)) != EVA_OK) goto fail;
    if (g->n_acts == 0) {
        st = eva_fail(EVA_ERR_FORMAT, "%s: has no /acts/<tap> datasets (expected the golden layout: one dataset per "
                                      "tap under /acts)", path);
        goto fail;
    }
    return EVA_OK;
fail:
    eva_golden_close(g);
    return st;
}

eva_status eva_golden_attr(const eva_golden *g, const char *name, char **value) {
    *value = NULL;
    if (g->file <= 0) return eva_fail(EVA_ERR_INTERNAL, "%s: file is not open", g->path);
    return attr_string((hid_t)g->file, g->path, name, value);
}

/* ---- writer: row blocks of a dataset and integer datasets ------------------------------------ */

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
