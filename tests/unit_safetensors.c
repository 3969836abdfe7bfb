/* unit_safetensors.c: the safetensors reader on well-formed and hostile files, and the exact
 * fp16/bf16 conversions of eva_half.h. Every hostile file is generated here byte by byte; each
 * must give the right status and a message naming the file (and the tensor where there is one). */
#include <check.h>

#include "check_main.h"
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eva_half.h"
#include "eva_safetensors.h"

static char tmpdir[256];
static char path[512];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/eva_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/t.safetensors", tmpdir);
}

static void teardown(void) {
    unlink(path);
    rmdir(tmpdir);
}

/* Writes an 8-byte length `hlen`, then `hdr` (strlen or hdr_bytes), then `ndata` bytes of data. */
static void write_raw(uint64_t hlen, const char *hdr, size_t hdr_bytes, size_t ndata) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char b[8];
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(hlen >> (8 * k));
    ck_assert_uint_eq(fwrite(b, 1, 8, f), 8);
    if (hdr_bytes) ck_assert_uint_eq(fwrite(hdr, 1, hdr_bytes, f), hdr_bytes);
    for (size_t i = 0; i < ndata; i++) fputc((int)(i * 37 & 0xff), f);
    ck_assert_int_eq(fclose(f), 0);
}

/* A file whose header length field matches the JSON. */
static void write_hdr(const char *json, size_t ndata) { write_raw(strlen(json), json, strlen(json), ndata); }

static void write_bytes(const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Opens `path`, expects status `want`, and a message containing the path and every `needles`. */
static void expect_open_fail(eva_status want, ...) {
    eva_safetensors *st = (eva_safetensors *)1;
    eva_clear_error();
    eva_status s = eva_safetensors_open(&st, path);
    const char *msg = eva_last_error();
    ck_assert_msg(s == want, "status %s, want %s (%s)", eva_status_name(s), eva_status_name(want), msg);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    ck_assert_msg(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
    va_list ap;
    va_start(ap, want);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, n) != NULL, "message lacks '%s': %s", n, msg);
    va_end(ap);
}

/* ---- eva_half.h ------------------------------------------------------------------------------ */

static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

START_TEST(half_f16_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eva_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            if (m == 0) {
                ck_assert(isinf(f));
                ck_assert_int_eq(!!signbit(f), (int)(h >> 15));
            } else {
                ck_assert(isnan(f));
            }
            continue;
        }
        ck_assert_msg((double)f == f16_value((uint16_t)h), "h=0x%04x", h);
        ck_assert_int_eq(!!signbit(f), (int)(h >> 15));
        /* narrowing an exactly representable value gives it back */
        ck_assert_uint_eq(eva_f32_to_f16(f), h);
    }
    /* specials */
    ck_assert_uint_eq(eva_f32_to_bits(eva_f16_to_f32(0x8000)), 0x80000000u); /* -0 */
    ck_assert(eva_f16_to_f32(0x0001) == ldexpf(1.0f, -24));                   /* smallest subnormal */
    ck_assert(eva_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24));         /* largest subnormal */
    ck_assert(eva_f16_to_f32(0x0400) == ldexpf(1.0f, -14));                   /* smallest normal */
    ck_assert(eva_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(eva_f16_to_f32(0xfc00) == -INFINITY);
    ck_assert(isnan(eva_f16_to_f32(0x7e00)) && isnan(eva_f16_to_f32(0xfd01)));
}
END_TEST

START_TEST(half_f16_rounding) {
    ck_assert_uint_eq(eva_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);      /* tie -> even */
    ck_assert_uint_eq(eva_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);  /* tie -> even (up) */
    ck_assert_uint_eq(eva_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01);
    ck_assert_uint_eq(eva_f32_to_f16(65519.0f), 0x7bff);
    ck_assert_uint_eq(eva_f32_to_f16(65520.0f), 0x7c00);                    /* overflow */
    ck_assert_uint_eq(eva_f32_to_f16(-1e10f), 0xfc00);
    ck_assert_uint_eq(eva_f32_to_f16(ldexpf(1, -25)), 0x0000);              /* tie -> 0 */
    ck_assert_uint_eq(eva_f32_to_f16(-ldexpf(1, -25)), 0x8000);
    ck_assert_uint_eq(eva_f32_to_f16(ldexpf(1.0001f, -25)), 0x0001);
    ck_assert_uint_eq(eva_f32_to_f16(3 * ldexpf(1, -25)), 0x0002);          /* 1.5 ulp -> 2 */
    ck_assert_uint_eq(eva_f32_to_f16(1023.5f * ldexpf(1, -24)), 0x0400);    /* into the normals */
    ck_assert_uint_eq(eva_f32_to_f16(1e-30f), 0x0000);
    ck_assert_uint_eq(eva_f32_to_f16(INFINITY), 0x7c00);
    uint16_t n = eva_f32_to_f16(NAN);
    ck_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
}
END_TEST

START_TEST(half_bf16_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eva_bf16_to_f32((uint16_t)h);
        ck_assert_uint_eq(eva_f32_to_bits(f), h << 16);
        if (!isnan(f)) ck_assert_uint_eq(eva_f32_to_bf16(f), h);
        else ck_assert(isnan(eva_bf16_to_f32(eva_f32_to_bf16(f))));
    }
    ck_assert_uint_eq(eva_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);      /* tie -> even */
    ck_assert_uint_eq(eva_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3f82);
    ck_assert_uint_eq(eva_f32_to_bf16(3.4028235e38f), 0x7f80);              /* FLT_MAX rounds to inf */
    ck_assert_uint_eq(eva_f32_to_bf16(-0.0f), 0x8000);
    ck_assert(isnan(eva_bf16_to_f32(eva_f32_to_bf16(eva_bits_to_f32(0x7f800001u))))); /* sNaN stays NaN */
    ck_assert(eva_bf16_to_f32(0x0001) == ldexpf(1, -133));                   /* bf16 subnormal */
}
END_TEST

/* ---- well-formed files --------------------------------------------------------------------- */

START_TEST(roundtrip_three_dtypes) {
    const float vals[6] = {1.0f, -2.5f, 0.0f, -0.0f, 65504.0f, ldexpf(1, -24)};
    const float one[1] = {4.605170185988092f};
    int64_t s23[2] = {2, 3}, s0[1] = {0};
    eva_st_write_item items[] = {
        {"a.f32", EVA_ST_F32, 2, s23, vals},
        {"b.f16", EVA_ST_F16, 2, s23, vals},
        {"c.bf16", EVA_ST_BF16, 1, s23 + 1, vals},
        {"scalar", EVA_ST_F32, 0, NULL, one},
        {"empty", EVA_ST_F16, 1, s0, NULL},
    };
    const char *meta[] = {"evabench.config", "{\"x\": 1}", "format", "pt", NULL};
    ck_assert_int_eq(eva_safetensors_write(path, items, 5, meta), EVA_OK);

    eva_safetensors *st = NULL;
    ck_assert_msg(eva_safetensors_open(&st, path) == EVA_OK, "%s", eva_last_error());
    ck_assert_str_eq(eva_safetensors_path(st), path);
    ck_assert_int_eq(eva_safetensors_count(st), 5);
    ck_assert_str_eq(eva_safetensors_metadata(st, "evabench.config"), "{\"x\": 1}");
    ck_assert_str_eq(eva_safetensors_metadata(st, "format"), "pt");
    ck_assert_ptr_null(eva_safetensors_metadata(st, "nope"));
    ck_assert_int_eq(eva_safetensors_metadata_count(st), 2);
    const char *k = NULL, *v = NULL;
    ck_assert(eva_safetensors_metadata_at(st, 1, &k, &v));
    ck_assert_str_eq(k, "format");
    ck_assert(!eva_safetensors_metadata_at(st, 2, &k, &v));
    ck_assert_int_eq(eva_safetensors_find(st, "zzz"), -1);

    float out[6];
    const char *names[3] = {"a.f32", "b.f16", "c.bf16"};
    for (int t = 0; t < 3; t++) {
        int i = eva_safetensors_find(st, names[t]);
        ck_assert_int_ge(i, 0);
        const eva_st_tensor *d = eva_safetensors_get(st, i);
        int64_t n = t == 2 ? 3 : 6;
        ck_assert_int_eq(d->numel, n);
        ck_assert_int_eq(d->dtype, t == 0 ? EVA_ST_F32 : t == 1 ? EVA_ST_F16 : EVA_ST_BF16);
        memset(out, 0x55, sizeof out);
        ck_assert_msg(eva_safetensors_read_f32(st, i, out, n) == EVA_OK, "%s", eva_last_error());
        for (int j = 0; j < n; j++) {
            /* 65504 and 2^-24 are exact in F16; in BF16 only the first three values are used */
            ck_assert_uint_eq(eva_f32_to_bits(out[j]), eva_f32_to_bits(vals[j]));
        }
        /* wrong destination size is refused */
        ck_assert_int_eq(eva_safetensors_read_f32(st, i, out, n - 1), EVA_ERR_INTERNAL);
    }
    int i = eva_safetensors_find(st, "scalar");
    ck_assert_int_eq(eva_safetensors_get(st, i)->ndim, 0);
    ck_assert_int_eq(eva_safetensors_get(st, i)->numel, 1);
    ck_assert_int_eq(eva_safetensors_read_f32(st, i, out, 1), EVA_OK);
    ck_assert(out[0] == one[0]);
    i = eva_safetensors_find(st, "empty");
    ck_assert_int_eq(eva_safetensors_get(st, i)->numel, 0);
    ck_assert_int_eq(eva_safetensors_read_f32(st, i, out, 0), EVA_OK);
    ck_assert_ptr_null(eva_safetensors_get(st, 5));
    ck_assert_ptr_null(eva_safetensors_get(st, -1));
    eva_safetensors_close(st);
    eva_safetensors_close(NULL);
}
END_TEST

START_TEST(header_padding_and_order) {
    /* reference writers pad with spaces; offsets need not follow header order */
    write_hdr("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"__metadata__\":{}}     ",
              8);
    eva_safetensors *st = NULL;
    ck_assert_msg(eva_safetensors_open(&st, path) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(eva_safetensors_count(st), 2);
    ck_assert_str_eq(eva_safetensors_get(st, 0)->name, "b");
    eva_safetensors_close(st);
    /* empty object, no data: a valid (empty) file */
    write_hdr("{}", 0);
    ck_assert_int_eq(eva_safetensors_open(&st, path), EVA_OK);
    ck_assert_int_eq(eva_safetensors_count(st), 0);
    eva_safetensors_close(st);
}
END_TEST

/* ---- hostile files ------------------------------------------------------------------------- */

START_TEST(missing_file_and_directory) {
    expect_open_fail(EVA_ERR_IO, "cannot open", NULL);
    snprintf(path, sizeof path, "%s", tmpdir);
    expect_open_fail(EVA_ERR_IO, "not a regular file", NULL);
    snprintf(path, sizeof path, "%s/t.safetensors", tmpdir);
}
END_TEST

START_TEST(empty_and_short) {
    write_bytes("", 0);
    expect_open_fail(EVA_ERR_FORMAT, "empty", NULL);
    write_bytes("\x02\0\0\0\0", 5);
    expect_open_fail(EVA_ERR_FORMAT, "too short", NULL);
    write_bytes("\x02\0\0\0\0\0\0", 7);
    expect_open_fail(EVA_ERR_FORMAT, "too short", NULL);
}
END_TEST

START_TEST(header_length_absurd) {
    write_raw(0, NULL, 0, 0);
    expect_open_fail(EVA_ERR_FORMAT, "header length is 0", NULL);
    write_raw(0, "{}", 2, 0);
    expect_open_fail(EVA_ERR_FORMAT, "header length is 0", NULL);
    const uint64_t absurd[] = {(uint64_t)1 << 63, (uint64_t)1 << 40, UINT64_MAX, 200000000, 3};
    for (size_t k = 0; k < sizeof absurd / sizeof absurd[0]; k++) {
        write_raw(absurd[k], "{}", 2, 0);
        expect_open_fail(EVA_ERR_FORMAT, "header length", "exceeds", NULL);
    }
    /* header cut short: claims 100 bytes, has 50 */
    char hdr[51];
    memset(hdr, ' ', 50);
    hdr[0] = '{';
    hdr[50] = 0;
    write_raw(100, hdr, 50, 0);
    expect_open_fail(EVA_ERR_FORMAT, "header length 100", NULL);
}
END_TEST

START_TEST(header_over_100mb_cap) {
    /* A sparse file larger than the cap whose header claims 100 MB + 1: refused before reading. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    uint64_t n = EVA_ST_MAX_HEADER + 1;
    unsigned char b[8];
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(n >> (8 * k));
    ck_assert_int_eq(write(fd, b, 8), 8);
    ck_assert_int_eq(ftruncate(fd, (off_t)(n + 64)), 0);
    close(fd);
    expect_open_fail(EVA_ERR_FORMAT, "100000001", "limit", NULL);
}
END_TEST

START_TEST(header_not_json) {
    write_hdr("hello, world", 0);
    expect_open_fail(EVA_ERR_FORMAT, "not valid JSON", NULL);
    write_hdr("{\"a\": ", 0);
    expect_open_fail(EVA_ERR_FORMAT, "not valid JSON", NULL);
    write_hdr("[1, 2, 3]", 0);
    expect_open_fail(EVA_ERR_FORMAT, "not a JSON object", NULL);
    write_hdr("42", 0);
    expect_open_fail(EVA_ERR_FORMAT, "not a JSON object", NULL);
    write_hdr("  {}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "must start with", NULL);
    write_hdr("{} {}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "bytes after its JSON", NULL);
    write_raw(4, "{}\0\0", 4, 0); /* NUL padding is not allowed (spaces are) */
    expect_open_fail(EVA_ERR_FORMAT, "bytes after its JSON", NULL);
    /* binary garbage */
    unsigned char g[64];
    for (int k = 0; k < 64; k++) g[k] = (unsigned char)(k * 97 + 13);
    write_raw(56, (const char *)g + 8, 56, 0);
    expect_open_fail(EVA_ERR_FORMAT, NULL);
}
END_TEST

START_TEST(entry_fields) {
    write_hdr("{\"w\": 5}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "not a JSON object", NULL);
    write_hdr("{\"w\": {\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "dtype", NULL);
    write_hdr("{\"w\": {\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "dtype", NULL);
    write_hdr("{\"w\": {\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "shape", NULL);
    write_hdr("{\"w\": {\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "shape", NULL);
    write_hdr("{\"w\": {\"dtype\":\"F32\",\"shape\":[1]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "data_offsets", NULL);
    write_hdr("{\"w\": {\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "unknown dtype 'Q4_K'", NULL);
    write_hdr("{\"w\": {\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2);
    expect_open_fail(EVA_ERR_FORMAT, "'w'", "whole number of bytes", NULL);
}
END_TEST

START_TEST(bad_dimensions) {
    const char *dims[] = {"[-1]", "[2.5]", "[\"2\"]", "[null]", "[true]", "[[2]]", "[1e300]",
                          "[9223372036854775808]", "[2, -3]", "[1,1,1,1,1,1,1,1,1]"};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        char h[256];
        snprintf(h, sizeof h, "{\"weird.tensor\": {\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,4]}}", dims[k]);
        write_hdr(h, 4);
        expect_open_fail(EVA_ERR_FORMAT, "'weird.tensor'", "shape", NULL);
    }
}
END_TEST

START_TEST(overflowing_dimensions) {
    write_hdr("{\"big\": {\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'big'", "overflows", NULL);
    write_hdr("{\"big\": {\"dtype\":\"F32\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'big'", "overflows", NULL);
    /* 2^20 x 2^20: fits int64 but not this file */
    write_hdr("{\"big\": {\"dtype\":\"BF16\",\"shape\":[1048576,1048576],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'big'", "needs", NULL);
    /* a zero dimension makes any other size harmless: 0 bytes */
    write_hdr("{\"z\": {\"dtype\":\"F32\",\"shape\":[0,4611686018427387904],\"data_offsets\":[0,0]}}", 0);
    eva_safetensors *st = NULL;
    ck_assert_msg(eva_safetensors_open(&st, path) == EVA_OK, "%s", eva_last_error());
    ck_assert_int_eq(eva_safetensors_get(st, 0)->numel, 0);
    eva_safetensors_close(st);
}
END_TEST

START_TEST(bad_offsets) {
    /* out of range: data cut */
    write_hdr("{\"t\": {\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_open_fail(EVA_ERR_FORMAT, "'t'", "out of range", NULL);
    write_hdr("{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1099511627776,1099511627780]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "'t'", "out of range", NULL);
    write_hdr("{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8);
    expect_open_fail(EVA_ERR_FORMAT, "'t'", "out of range", NULL);
    /* not matching shape x itemsize */
    write_hdr("{\"t\": {\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_open_fail(EVA_ERR_FORMAT, "'t'", "span 8 bytes", "needs 12", NULL);
    write_hdr("{\"t\": {\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16);
    expect_open_fail(EVA_ERR_FORMAT, "'t'", "needs 8", NULL);
    /* malformed pairs */
    const char *offs[] = {"[0]", "[0,4,8]", "[-4,0]", "[0,4.5]", "\"0,4\"", "[0,\"4\"]", "[]"};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        char h[256];
        snprintf(h, sizeof h, "{\"t\": {\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":%s}}", offs[k]);
        write_hdr(h, 4);
        expect_open_fail(EVA_ERR_FORMAT, "'t'", "data_offsets", NULL);
    }
}
END_TEST

START_TEST(layout_overlap_hole_trailing) {
    write_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_open_fail(EVA_ERR_FORMAT, "'a'", "'b'", "overlap", NULL);
    write_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
    expect_open_fail(EVA_ERR_FORMAT, "hole", "'b'", NULL);
    write_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8);
    expect_open_fail(EVA_ERR_FORMAT, "4 bytes after the last tensor", NULL);
    /* same range twice under two names: an overlap too */
    write_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_open_fail(EVA_ERR_FORMAT, "overlap", NULL);
}
END_TEST

START_TEST(duplicate_names) {
    write_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    expect_open_fail(EVA_ERR_FORMAT, "'a'", "twice", NULL);
}
END_TEST

START_TEST(bad_metadata) {
    write_hdr("{\"__metadata__\": [1]}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "__metadata__", NULL);
    write_hdr("{\"__metadata__\": {\"k\": 5}}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "__metadata__", "'k'", NULL);
    write_hdr("{\"__metadata__\": {\"k\": {\"x\":\"y\"}}}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "__metadata__", NULL);
    write_hdr("{\"__metadata__\": {\"k\": \"a\", \"k\": \"b\"}}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "twice", NULL);
    write_hdr("{\"__metadata__\": {}, \"__metadata__\": {}}", 0);
    expect_open_fail(EVA_ERR_FORMAT, "twice", NULL);
}
END_TEST

START_TEST(unsupported_dtypes_refused_on_read) {
    write_hdr("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
              "\"dbl\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[16,24]},"
              "\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}", 28);
    eva_safetensors *st = NULL;
    ck_assert_msg(eva_safetensors_open(&st, path) == EVA_OK, "%s", eva_last_error());
    float out[2];
    const char *names[2] = {"ids", "dbl"}, *dts[2] = {"I64", "F64"};
    for (int k = 0; k < 2; k++) {
        int i = eva_safetensors_find(st, names[k]);
        ck_assert_int_eq(eva_safetensors_get(st, i)->dtype, EVA_ST_OTHER);
        ck_assert_str_eq(eva_safetensors_get(st, i)->dtype_name, dts[k]);
        ck_assert_int_eq(eva_safetensors_read_f32(st, i, out, eva_safetensors_get(st, i)->numel),
                         EVA_ERR_UNSUPPORTED);
        const char *msg = eva_last_error();
        ck_assert_msg(strstr(msg, path) && strstr(msg, names[k]) && strstr(msg, dts[k]), "%s", msg);
    }
    ck_assert_int_eq(eva_safetensors_read_f32(st, 2, out, 1), EVA_OK);
    ck_assert_int_eq(eva_safetensors_read_f32(st, 3, out, 1), EVA_ERR_INVALID_ARG);
    eva_safetensors_close(st);
}
END_TEST

START_TEST(file_shrinks_after_open) {
    static float big[4096];
    int64_t shape[1] = {4096};
    eva_st_write_item a = {"a", EVA_ST_BF16, 1, shape, big};
    eva_st_write_item b = {"b", EVA_ST_F32, 1, shape, big};
    eva_st_write_item items[2] = {a, b};
    ck_assert_int_eq(eva_safetensors_write(path, items, 2, NULL), EVA_OK);
    eva_safetensors *st = NULL;
    ck_assert_int_eq(eva_safetensors_open(&st, path), EVA_OK);
    ck_assert_int_eq(truncate(path, 100), 0);
    ck_assert_int_eq(eva_safetensors_read_f32(st, 0, big, 4096), EVA_ERR_IO);
    ck_assert_msg(strstr(eva_last_error(), path) && strstr(eva_last_error(), "'a'"), "%s", eva_last_error());
    ck_assert_int_eq(eva_safetensors_read_f32(st, 1, big, 4096), EVA_ERR_IO);
    eva_safetensors_close(st);
}
END_TEST

START_TEST(writer_refuses_bad_items) {
    int64_t neg[1] = {-1};
    float x = 0;
    eva_st_write_item bad[] = {{"t", EVA_ST_F32, 1, neg, &x}};
    ck_assert_int_eq(eva_safetensors_write(path, bad, 1, NULL), EVA_ERR_INVALID_ARG);
    eva_st_write_item other[] = {{"t", EVA_ST_OTHER, 0, NULL, &x}};
    ck_assert_int_eq(eva_safetensors_write(path, other, 1, NULL), EVA_ERR_INVALID_ARG);
    eva_st_write_item meta[] = {{"__metadata__", EVA_ST_F32, 0, NULL, &x}};
    ck_assert_int_eq(eva_safetensors_write(path, meta, 1, NULL), EVA_ERR_INVALID_ARG);
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.safetensors", tmpdir);
    eva_st_write_item ok[] = {{"t", EVA_ST_F32, 0, NULL, &x}};
    ck_assert_int_eq(eva_safetensors_write(nodir, ok, 1, NULL), EVA_ERR_IO);
    ck_assert(strstr(eva_last_error(), nodir) != NULL);
}
END_TEST

Suite *eva_test_suite(eva_test_options *opt) {
    Suite *s = suite_create("safetensors");
    TCase *h = tcase_create("half");
    tcase_add_test(h, half_f16_exhaustive);
    tcase_add_test(h, half_f16_rounding);
    tcase_add_test(h, half_bf16_exhaustive);
    suite_add_tcase(s, h);
    TCase *r = tcase_create("reader");
    tcase_add_checked_fixture(r, setup, teardown);
    tcase_add_test(r, roundtrip_three_dtypes);
    tcase_add_test(r, header_padding_and_order);
    tcase_add_test(r, missing_file_and_directory);
    tcase_add_test(r, empty_and_short);
    tcase_add_test(r, header_length_absurd);
    tcase_add_test(r, header_over_100mb_cap);
    tcase_add_test(r, header_not_json);
    tcase_add_test(r, entry_fields);
    tcase_add_test(r, bad_dimensions);
    tcase_add_test(r, overflowing_dimensions);
    tcase_add_test(r, bad_offsets);
    tcase_add_test(r, layout_overlap_hole_trailing);
    tcase_add_test(r, duplicate_names);
    tcase_add_test(r, bad_metadata);
    tcase_add_test(r, unsupported_dtypes_refused_on_read);
    tcase_add_test(r, file_shrinks_after_open);
    tcase_add_test(r, writer_refuses_bad_items);
    suite_add_tcase(s, r);
        return s;
}
