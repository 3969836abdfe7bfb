/* unit_image.c: image decoding and open_clip's evaluation transform against the parity data of
 * golden/parity (made by golden/make_parity_inputs.py with Pillow 9.4 + torchvision 0.14):
 *  - every test image (every PNG/JPEG mode and size class) at S = 224, 336, 448: the float tensor
 *    equals open_clip's (lut[c][crop], see images.h5) within one 8-bit level everywhere and on
 *    >= 99.9 % of elements exactly (printed: max level difference and % equal per size);
 *  - the decoded mode of each file is the one Pillow reports;
 *  - refusals: corrupt, truncated, empty, not-an-image, decompression bomb (PNG and JPEG headers
 *    claiming huge sizes; refused before any pixel allocation) -> EVA_ERR_FORMAT naming the file;
 *  - torchvision's output-size and half-even crop arithmetic on a few hand cases. */
#include <check.h>

#include "check_main.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_inputs.h"
#include "eva_image.h"
#include "golden.h"

#define N_MAX 64
static char names[N_MAX][128], modes[N_MAX][16];
static int n_images;
static float lut[3][256];

static void load_index(void) {
    if (n_images) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/images.h5", eva_parity_dir());
    ck_assert_int_eq(eva_h5_read_f32(path, "/lut", &lut[0][0], 3 * 256), EVA_OK);
    eva_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    const char *ds[2] = {"/names", "/modes"};
    for (int which = 0; which < 2; which++) {
        hid_t d = H5Dopen2(f, ds[which], H5P_DEFAULT);
        ck_assert_int_ge(d, 0);
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        size_t sz = H5Tget_size(t);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        ck_assert(n > 0 && n <= N_MAX && sz < 128 && !H5Tis_variable_str(t));
        char *buf = calloc((size_t)n, sz);
        ck_assert_int_ge(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
        for (hssize_t i = 0; i < n; i++) {
            char *dst = which ? modes[i] : names[i];
            size_t cap = which ? sizeof modes[i] : sizeof names[i];
            size_t l = strnlen(buf + (size_t)i * sz, sz);
            ck_assert(l < cap);
            memcpy(dst, buf + (size_t)i * sz, l);
            dst[l] = 0;
        }
        n_images = (int)n;
        free(buf);
        H5Tclose(t);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
}

static const char *mode_name(eva_image_mode m) {
    static const char *n[] = {"1", "L", "P", "I", "LA", "RGB", "RGBA", "CMYK"};
    return n[m];
}

START_TEST(parity_all_sizes) {
    load_index();
    ck_assert_int_ge(n_images, 20);
    static const int sizes[3] = {224, 336, 448};
    static const float stdv[3] = {EVA_CLIP_STD_R, EVA_CLIP_STD_G, EVA_CLIP_STD_B};
    for (int si = 0; si < 3; si++) {
        int S = sizes[si];
        size_t plane = (size_t)S * S;
        float *out = malloc(3 * plane * sizeof *out);
        long long total = 0, equal = 0;
        double max_level = 0;
        int bad_images = 0;
        for (int i = 0; i < n_images; i++) {
            char p[4096], e[8192];
            snprintf(p, sizeof p, "%s/images/%s", eva_parity_dir(), names[i]);
            snprintf(e, sizeof e, "%s/expected/%s.s%d.png", eva_parity_dir(), names[i], S);
            eva_image exp;
            /* the expected crop is a plain 8-bit RGB PNG written by PIL */
            ck_assert_int_eq(eva_image_decode(&exp, e), EVA_OK);
            ck_assert(exp.mode == EVA_MODE_RGB && exp.w == S && exp.h == S);
            eva_status st = eva_image_load_preprocessed(out, p, S);
            if (st != EVA_OK) ck_abort_msg("%s", eva_last_error());
            long long eq_img = 0;
            for (size_t k = 0; k < plane; k++)
                for (int c = 0; c < 3; c++) {
                    float want = lut[c][exp.px[3 * k + c]], got = out[c * plane + k];
                    double lv = fabs((double)got - (double)want) / (1.0 / 255.0 / stdv[c]);
                    if (lv > max_level) max_level = lv;
                    eq_img += got == want;
                }
            total += (long long)(3 * plane);
            equal += eq_img;
            if (eq_img != (long long)(3 * plane)) {
                bad_images++;
                printf("  %s at %d: %.4f %% equal\n", names[i], S, 100.0 * (double)eq_img / (double)(3 * plane));
            }
            eva_image_free(&exp);
        }
        printf("image parity S=%d: %d images, %lld elements, %.4f %% equal, max difference %.3f levels, "
               "%d images not bit-exact\n", S, n_images, total, 100.0 * (double)equal / (double)total, max_level,
               bad_images);
        ck_assert(max_level <= 1.0 + 1e-6);
        ck_assert((double)equal >= 0.999 * (double)total);
        free(out);
    }
}
END_TEST

START_TEST(modes_as_pillow) {
    load_index();
    for (int i = 0; i < n_images; i++) {
        char p[8400];
        snprintf(p, sizeof p, "%s/images/%s", eva_parity_dir(), names[i]);
        eva_image img;
        ck_assert_int_eq(eva_image_decode(&img, p), EVA_OK);
        if (strcmp(mode_name(img.mode), modes[i]))
            ck_abort_msg("%s: decoded as mode %s, Pillow says %s", names[i], mode_name(img.mode), modes[i]);
        eva_image_free(&img);
    }
}
END_TEST

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)l);
    ck_assert_uint_eq(fread(b, 1, (size_t)l, f), (size_t)l);
    fclose(f);
    *n = (size_t)l;
    return b;
}

static void expect_refused(const unsigned char *data, size_t n, const char *name, const char *what) {
    eva_image img;
    eva_status st = eva_image_decode_mem(&img, data, n, name);
    if (st != EVA_ERR_FORMAT) ck_abort_msg("%s (%s): status %d, want EVA_ERR_FORMAT", name, what, st);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), name));
    ck_assert_ptr_null(img.px);
    ck_assert_ptr_null(img.pi);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

START_TEST(refusals) {
    char p[8400];
    size_t n;
    snprintf(p, sizeof p, "%s/images/png_rgb_224x224.png", eva_parity_dir());
    unsigned char *png = slurp(p, &n);
    snprintf(p, sizeof p, "%s/images/jpeg_rgb_500x375.jpg", eva_parity_dir());
    size_t jn;
    unsigned char *jpg = slurp(p, &jn);
    expect_refused(png, 0, "empty.png", "empty");
    expect_refused((const unsigned char *)"hello, world\n", 13, "text.png", "not an image");
    expect_refused((const unsigned char *)"GIF89a....", 10, "anim.gif", "unsupported format");
    for (size_t cut = 8; cut < n; cut += n / 7) expect_refused(png, cut, "truncated.png", "truncated PNG");
    /* a cut anywhere, headers or scan, is refused as Pillow refuses it ("image file is truncated") */
    for (size_t cut = 3; cut < jn; cut += jn / 9) expect_refused(jpg, cut, "truncated.jpg", "truncated JPEG");
    /* corrupt PNG: flip bytes in the middle of IDAT data (CRC mismatch) */
    unsigned char *bad = malloc(n);
    memcpy(bad, png, n);
    for (size_t i = n / 2; i < n / 2 + 16; i++) bad[i] ^= 0x5A;
    expect_refused(bad, n, "corrupt.png", "corrupt IDAT");
    /* PNG bomb: IHDR claiming 100000 x 100000 (valid CRC): refused from the header */
    memcpy(bad, png, n);
    unsigned char dim[8] = {0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0};
    memcpy(bad + 16, dim, 8);
    uint32_t crc = crc32_of(bad + 12, 17);
    bad[29] = (unsigned char)(crc >> 24), bad[30] = (unsigned char)(crc >> 16), bad[31] = (unsigned char)(crc >> 8),
    bad[32] = (unsigned char)crc;
    expect_refused(bad, n, "bomb.png", "decompression bomb");
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "exceeds the limit"));
    /* 9460 x 9460 = 89,491,600 pixels: just above Pillow's MAX_IMAGE_PIXELS */
    memcpy(bad, png, n);
    unsigned char dim2[8] = {0, 0, 0x24, 0xF4, 0, 0, 0x24, 0xF4};
    memcpy(bad + 16, dim2, 8);
    crc = crc32_of(bad + 12, 17);
    bad[29] = (unsigned char)(crc >> 24), bad[30] = (unsigned char)(crc >> 16), bad[31] = (unsigned char)(crc >> 8),
    bad[32] = (unsigned char)crc;
    expect_refused(bad, n, "bomb2.png", "just above the limit");
    free(bad);
    /* JPEG bomb: SOF0 claiming 65000 x 65000 */
    bad = malloc(jn);
    memcpy(bad, jpg, jn);
    int patched = 0;
    for (size_t i = 2; i + 9 < jn; i++)
        if (bad[i] == 0xFF && (bad[i + 1] == 0xC0 || bad[i + 1] == 0xC2)) {
            bad[i + 5] = 0xFD, bad[i + 6] = 0xE8, bad[i + 7] = 0xFD, bad[i + 8] = 0xE8;
            patched = 1;
            break;
        }
    ck_assert(patched);
    expect_refused(bad, jn, "bomb.jpg", "decompression bomb");
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "exceeds the limit"));
    /* corrupt JPEG: garbage in the Huffman tables / headers */
    memcpy(bad, jpg, jn);
    for (size_t i = 20; i < 200; i++) bad[i] = (unsigned char)(i * 37);
    eva_image img;
    eva_status st = eva_image_decode_mem(&img, bad, jn, "garbled.jpg");
    if (st == EVA_OK) eva_image_free(&img); /* libjpeg may still decode garbage; it must not crash */
    else ck_assert_ptr_nonnull(strstr(eva_last_error(), "garbled.jpg"));
    free(bad);
    free(png);
    free(jpg);
    /* files: missing is an IO error naming the file */
    float out[3 * 4 * 4];
    ck_assert_int_eq(eva_image_load_preprocessed(out, "/nonexistent/x.jpg", 4), EVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(eva_last_error(), "/nonexistent/x.jpg"));
}
END_TEST

/* Damaged files (tests/data/damaged_images, made by golden/make_damaged_images.py) with Pillow's
 * decision on each (expected.txt): our decoder accepts exactly the files Pillow 9.4's
 * Image.open(f).convert("RGB") accepts (truncation anywhere in the image data refused as
 * "image file is truncated", bad CRCs before IDAT refused, after it ignored, bad Huffman data
 * accepted when libjpeg only warns). */
START_TEST(damaged_as_pillow) {
    const char *src = getenv("EVA_SOURCE_DIR");
    char dir[4096], p[8400], line[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/damaged_images", src && *src ? src : EVA_SOURCE_DIR);
    snprintf(p, sizeof p, "%s/expected.txt", dir);
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "%s missing", p);
    int n = 0, same = 0;
    while (fgets(line, sizeof line, f)) {
        char file[256], want[16];
        if (line[0] == '#' || sscanf(line, "%255s %15s", file, want) != 2) continue;
        snprintf(p, sizeof p, "%s/%s", dir, file);
        eva_image img;
        eva_status st = eva_image_decode(&img, p);
        const char *got = st == EVA_OK ? "accept" : "refuse";
        if (st == EVA_OK) eva_image_free(&img);
        n++;
        if (!strcmp(got, want)) same++;
        else printf("damaged image %s: Pillow %s, we %s (%s)\n", file, want, got, st == EVA_OK ? "" : eva_last_error());
    }
    fclose(f);
    printf("damaged images: %d/%d decisions equal to Pillow's\n", same, n);
    ck_assert_int_ge(n, 30);
    ck_assert_int_eq(same, n);
}
END_TEST

START_TEST(size_arithmetic) {
    int w, h;
    eva_image_resize_dims(500, 375, 224, &w, &h);
    ck_assert(w == 298 && h == 224);
    eva_image_resize_dims(375, 500, 224, &w, &h);
    ck_assert(w == 224 && h == 298);
    eva_image_resize_dims(501, 333, 224, &w, &h);
    ck_assert(w == 337 && h == 224);
    eva_image_resize_dims(100, 100, 448, &w, &h);
    ck_assert(w == 448 && h == 448);
    eva_image_resize_dims(1000, 50, 448, &w, &h);
    ck_assert(w == 8960 && h == 448);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, size_arithmetic);
    tcase_add_test(tc, modes_as_pillow);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, damaged_as_pillow);
    tcase_add_test(tc, parity_all_sizes);
    suite_add_tcase(s, tc);
    opt->nofork = true;
    return s;
}
