/* cmd_preprocess.c: `evabench preprocess --size N --out OUT.h5 IMAGE...` (contract.md): writes
 * /pixel_values float32 [K,3,N,N] in argument order, as open_clip's evaluation transform computes
 * it (ref/eva_image.h). `--bench IMAGE` prints decode+preprocess timings instead.
 * Exit 0 ok, 2 bad usage or a bad image (message names the file), 3 internal/IO on output.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_inputs.h"
#include "cmds.h"
#include "eva_image.h"
#include "golden.h"

static void preprocess_usage(FILE *f) {
    fprintf(f, "usage: evabench preprocess --size N --out OUT.h5 IMAGE...\n"
               "       evabench preprocess --bench [--size N] [--iters K] IMAGE\n\n"
               "Decodes PNG/JPEG images and writes /pixel_values float32 [K,3,N,N] (argument order):\n"
               "Pillow bicubic shortest-side resize to N, centre crop, RGB, /255, CLIP mean/std --\n"
               "open_clip's evaluation transform, bit-exact with Pillow 9.4 on the parity images.\n"
               "Images above %lld pixels are refused (Pillow's decompression-bomb limit).\n",
            (long long)EVA_IMAGE_MAX_PIXELS);
}

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

int eva_cmd_preprocess(int argc, char **argv) {
    int size = 0, bench = 0, iters = 50;
    const char *out = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            preprocess_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--bench")) {
            bench = 1;
        } else if (!strcmp(a, "--size") || !strcmp(a, "--out") || !strcmp(a, "--iters")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "evabench preprocess: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--out")) {
                out = v;
            } else {
                char *end;
                long x = strtol(v, &end, 10);
                if (*end || end == v || x < 1 || x > 4096) {
                    fprintf(stderr, "evabench preprocess: %s '%s' is not an integer in 1..4096\n", a, v);
                    return 2;
                }
                if (!strcmp(a, "--size")) size = (int)x;
                else iters = (int)x;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "evabench preprocess: unknown option '%s' (see --help)\n", a);
            return 2;
        } else {
            break;
        }
    }
    int k = argc - i;
    if (bench) {
        if (k != 1) {
            fprintf(stderr, "evabench preprocess: --bench takes exactly one IMAGE\n");
            return 2;
        }
        eva_status st = eva_bench_preprocess(argv[i], size ? size : 224, iters, stdout);
        if (st != EVA_OK) fprintf(stderr, "evabench preprocess: %s\n", eva_last_error());
        return eva_status_exit_code(st);
    }
    if (!size) {
        fprintf(stderr, "evabench preprocess: --size N is required (see --help)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "evabench preprocess: --out OUT.h5 is required (see --help)\n");
        return 2;
    }
    if (k < 1) {
        fprintf(stderr, "evabench preprocess: no IMAGE given (see --help)\n");
        return 2;
    }
    size_t per = (size_t)3 * size * size;
    if ((size_t)k > ((size_t)1 << 34) / (per * sizeof(float))) {
        fprintf(stderr, "evabench preprocess: %d images at size %d exceed the 16 GiB output limit\n", k, size);
        return 2;
    }
    float *px = malloc((size_t)k * per * sizeof *px);
    if (!px) {
        fprintf(stderr, "evabench preprocess: out of memory for %d images\n", k);
        return 3;
    }
    for (int j = 0; j < k; j++) {
        eva_status st = eva_image_load_preprocessed(px + (size_t)j * per, argv[i + j], size);
        if (st != EVA_OK) {
            fprintf(stderr, "evabench preprocess: %s\n", eva_last_error());
            free(px);
            return eva_status_exit_code(st);
        }
    }
    int r = write_h5(out, px, k, size);
    free(px);
    if (r) {
        fprintf(stderr, "evabench preprocess: %s: cannot write the HDF5 output\n", out);
        return 3;
    }
    return 0;
}
