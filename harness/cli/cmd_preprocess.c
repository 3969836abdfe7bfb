/* cmd_preprocess.c: `evabench preprocess --size N --out OUT.h5 IMAGE...`: writes
 * /pixel_values float32 [K,3,N,N] in argument order, as open_clip's evaluation transform computes
 * it (eva_image.h). `--bench IMAGE` prints decode+preprocess timings instead.
 * Exit 0 ok, 2 bad usage or a bad image (message names the file), 3 internal/IO on output.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_inputs.h"
#include "cli.h"
#include "cmds.h"
#include "eva_image.h"
#include "golden.h"

static int write_h5(const char *out, const float *px, int k, int n) {
    eva_h5_quiet();
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    hsize_t dims[4] = {(hsize_t)k, 3, (hsize_t)n, (hsize_t)n};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t d = sp >= 0 ? H5Dcreate2(f, "/pixel_values", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t r = d >= 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, px) : -1;
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (H5Fclose(f) < 0) r = -1;
    return r < 0 ? -1 : 0;
}

typedef struct {
    long size, iters;
    bool bench;
    const char *out;
    eva_cli_list images;
} preprocess_args;

static int parse(preprocess_args *a, int argc, char **argv) {
    *a = (preprocess_args){.iters = 50};
    const eva_opt opts[] = {
        EVA_ARG_LONG("--size", &a->size, "N", "output size (shortest side resized to N, centre crop N x N)", 1, 4096),
        EVA_ARG_STR("--out", &a->out, "OUT.h5", "output file with /pixel_values [K,3,N,N] float32"),
        EVA_ARG_FLAG("--bench", &a->bench, "print decode + preprocess timings of one IMAGE instead"),
        EVA_ARG_LONG("--iters", &a->iters, "K", "--bench: timed repetitions (default 50)", 1, 4096),
        EVA_ARG_END,
    };
    char synopsis[1024];
    snprintf(synopsis, sizeof synopsis,
             "usage: evabench preprocess --size N --out OUT.h5 IMAGE...\n"
             "       evabench preprocess --bench [--size N] [--iters K] IMAGE\n\n"
             "Decodes PNG/JPEG images and writes /pixel_values float32 [K,3,N,N] (argument order):\n"
             "Pillow bicubic shortest-side resize to N, centre crop, RGB, /255, CLIP mean/std --\n"
             "open_clip's evaluation transform, bit-exact with Pillow 9.4 on the parity images.\n"
             "Images above %lld pixels are refused (Pillow's decompression-bomb limit).\n",
             (long long)EVA_IMAGE_MAX_PIXELS);
    const eva_cli_spec spec = {"preprocess", synopsis, opts, &a->images, NULL};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r >= 0) return r;
    if (a->bench && a->images.n != 1) return eva_cli_usage_error("preprocess", "--bench takes exactly one IMAGE");
    if (a->bench) return -1;
    if (!a->size) return eva_cli_usage_error("preprocess", "--size N is required (see --help)");
    if (!a->out) return eva_cli_usage_error("preprocess", "--out OUT.h5 is required (see --help)");
    if (a->images.n < 1) return eva_cli_usage_error("preprocess", "no IMAGE given (see --help)");
    size_t per = (size_t)3 * (size_t)(a->size * a->size);
    if ((size_t)a->images.n > ((size_t)1 << 34) / (per * sizeof(float)))
        return eva_cli_usage_error("preprocess", "%d images at size %ld exceed the 16 GiB output limit",
                                   a->images.n, a->size);
    return -1;
}

/* px [K,3,N,N] <- every image, in argument order. */
static eva_status preprocess_all(float *px, const preprocess_args *a) {
    size_t per = (size_t)3 * (size_t)(a->size * a->size);
    for (int j = 0; j < a->images.n; j++) {
        eva_status st = eva_image_load_preprocessed(px + (size_t)j * per, a->images.v[j], (int)a->size);
        if (st != EVA_OK) return st;
    }
    return EVA_OK;
}

int eva_cmd_preprocess(int argc, char **argv) {
    preprocess_args a;
    int r = parse(&a, argc, argv);
    if (r >= 0) return r;
    if (a.bench) {
        eva_status st = eva_bench_preprocess(a.images.v[0], a.size ? (int)a.size : 224, (int)a.iters, stdout);
        return st == EVA_OK ? 0 : eva_cli_fail("preprocess", st);
    }
    float *px = malloc((size_t)a.images.n * 3 * (size_t)(a.size * a.size) * sizeof *px);
    if (!px) {
        fprintf(stderr, "evabench preprocess: out of memory for %d images\n", a.images.n);
        return 3;
    }
    eva_status st = preprocess_all(px, &a);
    if (st != EVA_OK) {
        free(px);
        return eva_cli_fail("preprocess", st);
    }
    r = write_h5(a.out, px, a.images.n, (int)a.size);
    free(px);
    if (r) {
        fprintf(stderr, "evabench preprocess: %s: cannot write the HDF5 output\n", a.out);
        return 3;
    }
    return 0;
}
