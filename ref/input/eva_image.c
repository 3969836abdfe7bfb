/* eva_image.c: PNG/JPEG decoding as Pillow 9.4's Image.open + load, Pillow's ImagingResample
 * (bicubic, a = -0.5, antialiased, 22-bit fixed point, horizontal pass then vertical with 8-bit
 * rounding between), Pillow's nearest-neighbour ImagingScaleAffine for P/1, torchvision 0.14's
 * Resize/CenterCrop arithmetic, Pillow's convert("RGB"), ToTensor and Normalize. See eva_image.h.
 *
 * Error handling: libpng and libjpeg report fatal errors through longjmp; every buffer that can
 * be live at a longjmp is reachable from the decode context and freed on the error path.
 */
#include "eva_image.h"

#include <stddef.h>
#include <stdio.h>

#include <jpeglib.h>
#include <jerror.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers ---------------- */

void eva_image_free(eva_image *img) {
    if (!img) return;
    free(img->px);
    free(img->pi);
    img->px = NULL;
    img->pi = NULL;
}

static int mode_channels(eva_image_mode m) {
    switch (m) {
    case EVA_MODE_LA: return 2;
    case EVA_MODE_RGB: return 3;
    case EVA_MODE_RGBA:
    case EVA_MODE_CMYK: return 4;
    default: return 1;
    }
}

static eva_status image_alloc(eva_image *img, int w, int h, eva_image_mode mode, const char *name) {
    img->w = w;
    img->h = h;
    img->mode = mode;
    img->channels = mode_channels(mode);
    img->px = NULL;
    img->pi = NULL;
    size_t n = (size_t)w * (size_t)h;
    if (mode == EVA_MODE_I) img->pi = malloc(n * sizeof *img->pi);
    else img->px = malloc(n * (size_t)img->channels);
    if (!img->px && !img->pi) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
    return EVA_OK;
}

static eva_status check_dims(long long w, long long h, const char *name) {
    if (w < 1 || h < 1) return eva_fail(EVA_ERR_FORMAT, "%s: image has no pixels (%lldx%lld)", name, w, h);
    if (w * h > EVA_IMAGE_MAX_PIXELS)
        return eva_fail(EVA_ERR_FORMAT,
                        "%s: image of %lldx%lld = %lld pixels exceeds the limit of %lld pixels "
                        "(Pillow's MAX_IMAGE_PIXELS; possible decompression bomb)",
                        name, w, h, w * h, (long long)EVA_IMAGE_MAX_PIXELS);
    return EVA_OK;
}

/* ------------------------------------------------------------------ PNG -------------------- */

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    char msg[200];
} png_src;

static void png_read_cb(png_structp png, png_bytep out, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) png_error(png, "file is truncated");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static eva_status decode_png(eva_image *img, const uint8_t *data, size_t len, const char *name) {
    png_src src = {data, len, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_error_cb, png_warn_cb);
    if (!png) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", name);
    png_infop info = png_create_info_struct(png);
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    eva_status st = EVA_OK;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory", name);
    }
    img->px = NULL;
    img->pi = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(raw);
        free(rows);
        eva_image_free(img);
        png_destroy_read_struct(&png, &info, NULL);
        return eva_fail(EVA_ERR_FORMAT, "%s: corrupt PNG: %s", name, src.msg[0] ? src.msg : "decode error");
    }
    png_set_read_fn(png, &src, png_read_cb);
    /* CRCs as Pillow checks them: every chunk before the image data (critical or ancillary, known
     * or not) must have a good CRC; IDAT and what follows are not checked (Pillow skips those
     * CRCs), and the chunks after the image data are not read at all (Pillow accepts a file cut
     * after its last IDAT). */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    st = check_dims(w, h, name);
    if (st != EVA_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    eva_image_mode mode;
    int src_ch;
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: mode = depth == 1 ? EVA_MODE_1 : depth == 16 ? EVA_MODE_I : EVA_MODE_L; src_ch = 1; break;
    case PNG_COLOR_TYPE_PALETTE: mode = EVA_MODE_P; src_ch = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: mode = depth == 16 ? EVA_MODE_RGBA : EVA_MODE_LA; src_ch = 2; break;
    case PNG_COLOR_TYPE_RGB: mode = EVA_MODE_RGB; src_ch = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: mode = EVA_MODE_RGBA; src_ch = 4; break;
    default:
        png_destroy_read_struct(&png, &info, NULL);
        return eva_fail(EVA_ERR_FORMAT, "%s: unsupported PNG colour type %d", name, ctype);
    }
    if (depth < 8) png_set_packing(png); /* one byte per sample, value unscaled */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t bps = depth == 16 ? 2 : 1;
    if (rowbytes != (size_t)w * (size_t)src_ch * bps) png_error(png, "unexpected row size");
    raw = malloc(rowbytes * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!raw || !rows) {
        free(raw);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return eva_fail(EVA_ERR_NOMEM, "%s: out of memory for a %ux%u PNG", name, (unsigned)w, (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = raw + (size_t)y * rowbytes;
    png_read_image(png, rows);
    if (mode == EVA_MODE_P) {
        /* Pillow's new palette is a grey ramp; PLTE overwrites the first entries. */
        for (int i = 0; i < 256; i++) img->pal[3 * i] = img->pal[3 * i + 1] = img->pal[3 * i + 2] = (uint8_t)i;
        png_colorp plte;
        int np = 0;
        if (png_get_PLTE(png, info, &plte, &np) & PNG_INFO_PLTE)
            for (int i = 0; i < np && i < 256; i++) {
                img->pal[3 * i] = plte[i].red;
                img->pal[3 * i + 1] = plte[i].green;
                img->pal[3 * i + 2] = plte[i].blue;
            }
    }
    png_destroy_read_struct(&png, &info, NULL);
    st = image_alloc(img, (int)w, (int)h, mode, name);
    if (st != EVA_OK) {
        free(raw);
        free(rows);
        return st;
    }
    size_t n = (size_t)w * h;
    const uint8_t *r = raw;
    switch (mode) {
    case EVA_MODE_1:
        for (size_t i = 0; i < n; i++) img->px[i] = r[i] ? 255 : 0;
        break;
    case EVA_MODE_L: {
        int mul = depth == 2 ? 0x55 : depth == 4 ? 0x11 : 1; /* Pillow's L;2, L;4 */
        for (size_t i = 0; i < n; i++) img->px[i] = (uint8_t)(r[i] * mul);
        break;
    }
    case EVA_MODE_P: memcpy(img->px, r, n); break;
    case EVA_MODE_I:
        for (size_t i = 0; i < n; i++) img->pi[i] = (int32_t)(r[2 * i] << 8 | r[2 * i + 1]);
        break;
    case EVA_MODE_RGBA:
        if (src_ch == 2) { /* 16-bit grey+alpha: Pillow's LA;16B -> RGBA, high bytes */
            for (size_t i = 0; i < n; i++) {
                uint8_t l = r[4 * i], a = r[4 * i + 2];
                img->px[4 * i] = img->px[4 * i + 1] = img->px[4 * i + 2] = l;
                img->px[4 * i + 3] = a;
            }
            break;
        }
        /* fallthrough */
    default: /* LA, RGB, RGBA: 8-bit copy or 16-bit high byte */
        if (bps == 1) memcpy(img->px, r, n * (size_t)src_ch);
        else
            for (size_t i = 0; i < n * (size_t)src_ch; i++) img->px[i] = r[2 * i];
        break;
    }
    free(raw);
    free(rows);
    return EVA_OK;
}

/* ------------------------------------------------------------------ JPEG ------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (corrupt entropy-coded data, extraneous bytes) are not fatal, as in Pillow, except
 * running out of data: libjpeg would pad the rest with grey, Pillow (LOAD_TRUNCATED_IMAGES off)
 * raises "image file is truncated". */
static void jpeg_emit_cb(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "image file is truncated");
        longjmp(e->jb, 1);
    }
}

static eva_status decode_jpeg(eva_image *img, const uint8_t *data, size_t len, const char *name) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_error_exit_cb;
    err.pub.emit_message = jpeg_emit_cb;
    err.msg[0] = 0;
    img->px = NULL;
    img->pi = NULL;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        eva_image_free(img);
        return eva_fail(EVA_ERR_FORMAT, "%s: corrupt JPEG: %s", name, err.msg[0] ? err.msg : "decode error");
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    eva_status st = check_dims(cinfo.image_width, cinfo.image_height, name);
    if (st != EVA_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    eva_image_mode mode;
    switch (cinfo.num_components) {
    case 1: mode = EVA_MODE_L; cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: mode = EVA_MODE_RGB; cinfo.out_color_space = JCS_RGB; break;
    case 4: mode = EVA_MODE_CMYK; cinfo.out_color_space = JCS_CMYK; break;
    default:
        jpeg_destroy_decompress(&cinfo);
        return eva_fail(EVA_ERR_FORMAT, "%s: JPEG with %d components is not supported", name, cinfo.num_components);
    }
    st = image_alloc(img, (int)cinfo.image_width, (int)cinfo.image_height, mode, name);
    if (st != EVA_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != img->channels || (int)cinfo.output_width != img->w ||
        (int)cinfo.output_height != img->h) {
        jpeg_destroy_decompress(&cinfo);
        eva_image_free(img);
        return eva_fail(EVA_ERR_FORMAT, "%s: unexpected JPEG output geometry", name);
    }
    size_t stride = (size_t)img->w * (size_t)img->channels;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = img->px + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (mode == EVA_MODE_CMYK) /* Pillow's "CMYK;I" raw mode (Adobe convention) */
        for (size_t i = 0; i < stride * (size_t)img->h; i++) img->px[i] = (uint8_t)(255 - img->px[i]);
    return EVA_OK;
}

/* ------------------------------------------------------------------ files ------------------ */

static eva_status read_file(const char *path, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return eva_fail(EVA_ERR_IO, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        if (cap >= ((size_t)1 << 31)) { /* 2 GiB of compressed input is not an image we take */
            free(buf);
            fclose(f);
            return eva_fail(EVA_ERR_FORMAT, "%s: file larger than 2 GiB", path);
        }
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (rerr) {
        free(buf);
        return eva_fail(EVA_ERR_IO, "%s: read error", path);
    }
    *data = buf;
    *len = n;
    return EVA_OK;
}

static int is_png(const uint8_t *d, size_t n) { return n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8); }
static int is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

eva_status eva_image_decode_mem(eva_image *img, const uint8_t *data, size_t len, const char *name) {
    memset(img, 0, sizeof *img);
    if (len == 0) return eva_fail(EVA_ERR_FORMAT, "%s: empty file", name);
    if (is_png(data, len)) return decode_png(img, data, len, name);
    if (is_jpeg(data, len)) return decode_jpeg(img, data, len, name);
    return eva_fail(EVA_ERR_FORMAT, "%s: not a PNG or JPEG image", name);
}

eva_status eva_image_decode(eva_image *img, const char *path) {
    uint8_t *data;
    size_t len;
    memset(img, 0, sizeof *img);
    eva_status st = read_file(path, &data, &len);
    if (st != EVA_OK) return st;
    st = eva_image_decode_mem(img, data, len, path);
    free(data);
    return st;
}

eva_status eva_image_probe(const char *path, int *w, int *h) {
    /* Decoding is cheap enough for the probe's uses (benchmarks, messages). */
    eva_image img;
    eva_status st = eva_image_decode(&img, path);
    if (st != EVA_OK) return st;
    *w = img.w;
    *h = img.h;
    eva_image_free(&img);
    return EVA_OK;
}

/* ------------------------------------------------------------------ resample ---------------- */

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow precompute_coeffs with box [0, in_size]: bounds[out][2] (xmin, count), kk[out][ksize]. */
static int precompute_coeffs(int in_size, int out_size, int **boundsp, double **kkp) {
    float in0 = 0.0f, in1 = (float)in_size;
    double scale, filterscale, support;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = calloc((size_t)out_size * (size_t)ksize, sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!kk || !bounds) {
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        for (int x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static int32_t *coeffs_8bpc(const double *kk, size_t n) {
    int32_t *k = malloc(n * sizeof *k);
    if (!k) return NULL;
    for (size_t i = 0; i < n; i++)
        k[i] = kk[i] < 0 ? (int)(-0.5 + kk[i] * (1 << PRECISION_BITS)) : (int)(0.5 + kk[i] * (1 << PRECISION_BITS));
    return k;
}

static inline uint8_t clip8(int v) {
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's table index */
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* 8-bit pass along x (horizontal) of rows [y0, y0+rows) of src into dst[rows, out_w, c]. */
static void resample_h8(uint8_t *dst, const uint8_t *src, int src_w, int c, int y0, int rows, int out_w,
                        const int *bounds, const int32_t *k, int ksize) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + ((size_t)(y + y0) * src_w) * c;
        uint8_t *out = dst + (size_t)y * out_w * c;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[2 * xx], xn = bounds[2 * xx + 1];
            const int32_t *kx = k + (size_t)xx * ksize;
            for (int ch = 0; ch < c; ch++) {
                int ss = 1 << (PRECISION_BITS - 1);
                const uint8_t *p = in + (size_t)xmin * c + ch;
                for (int x = 0; x < xn; x++) ss += p[(size_t)x * c] * kx[x];
                out[(size_t)xx * c + ch] = clip8(ss);
            }
        }
    }
}

/* 8-bit pass along y: dst[out_h, w, c] from src[*, w, c]. */
static void resample_v8(uint8_t *dst, const uint8_t *src, int w, int c, int out_h, const int *bounds,
                        const int32_t *k, int ksize) {
    size_t stride = (size_t)w * c;
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = bounds[2 * yy], yn = bounds[2 * yy + 1];
        const int32_t *ky = k + (size_t)yy * ksize;
        uint8_t *out = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int ss = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = src + (size_t)ymin * stride + i;
            for (int y = 0; y < yn; y++) ss += p[(size_t)y * stride] * ky[y];
            out[i] = clip8(ss);
        }
    }
}

static int round_up(double f) { return (int)(f >= 0.0 ? f + 0.5f : f - 0.5f); }

static void resample_h32(int32_t *dst, const int32_t *src, int src_w, int y0, int rows, int out_w, const int *bounds,
                         const double *k, int ksize) {
    for (int y = 0; y < rows; y++) {
        const int32_t *in = src + (size_t)(y + y0) * src_w;
        for (int xx = 0; xx < out_w; xx++) {
            double ss = 0.0;
            const double *kx = k + (size_t)xx * ksize;
            for (int x = 0; x < bounds[2 * xx + 1]; x++) ss += in[x + bounds[2 * xx]] * kx[x];
            dst[(size_t)y * out_w + xx] = round_up(ss);
        }
    }
}

static void resample_v32(int32_t *dst, const int32_t *src, int w, int out_h, const int *bounds, const double *k,
                         int ksize) {
    for (int yy = 0; yy < out_h; yy++) {
        const double *ky = k + (size_t)yy * ksize;
        for (int xx = 0; xx < w; xx++) {
            double ss = 0.0;
            for (int y = 0; y < bounds[2 * yy + 1]; y++) ss += src[(size_t)(y + bounds[2 * yy]) * w + xx] * ky[y];
            dst[(size_t)yy * w + xx] = round_up(ss);
        }
    }
}

/* Pillow ImagingResampleInner (BICUBIC, box = whole image) on 8-bit or int32 pixels. */
static eva_status resample(eva_image *out, const eva_image *in, int w, int h) {
    int need_h = w != in->w, need_v = h != in->h;
    int *bv = NULL, *bh = NULL;
    double *kv = NULL, *kh = NULL;
    int32_t *iv = NULL, *ih = NULL;
    void *tmp = NULL;
    eva_status st = EVA_OK;
    int c = in->channels;
    int is32 = in->mode == EVA_MODE_I;
    int ksv = precompute_coeffs(in->h, h, &bv, &kv);
    if (!ksv) return eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
    int yfirst = bv[0], ylast = bv[2 * h - 2] + bv[2 * h - 1];
    const uint8_t *src8 = in->px;
    const int32_t *src32 = in->pi;
    int cur_w = in->w;
    memset(out, 0, sizeof *out);
    out->mode = in->mode;
    out->channels = c;
    memcpy(out->pal, in->pal, sizeof out->pal);
    if (need_h) {
        int ksh = precompute_coeffs(in->w, w, &bh, &kh);
        if (!ksh) {
            st = eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        for (int i = 0; i < h; i++) bv[2 * i] -= yfirst;
        size_t n = (size_t)w * (size_t)(ylast - yfirst);
        tmp = is32 ? malloc(n * sizeof(int32_t)) : malloc(n * (size_t)c);
        if (!is32) ih = coeffs_8bpc(kh, (size_t)w * ksh);
        if (!tmp || (!is32 && !ih)) {
            st = eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        if (is32) resample_h32(tmp, in->pi, in->w, yfirst, ylast - yfirst, w, bh, kh, ksh);
        else resample_h8(tmp, in->px, in->w, c, yfirst, ylast - yfirst, w, bh, ih, ksh);
        src8 = tmp;
        src32 = tmp;
        cur_w = w;
    }
    out->w = cur_w;
    out->h = need_v ? h : in->h;
    size_t n = (size_t)out->w * (size_t)out->h;
    if (is32) out->pi = malloc(n * sizeof(int32_t));
    else out->px = malloc(n * (size_t)c);
    if (!out->px && !out->pi) {
        st = eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
        goto done;
    }
    if (need_v) {
        if (is32) {
            resample_v32(out->pi, src32, cur_w, h, bv, kv, ksv);
        } else {
            iv = coeffs_8bpc(kv, (size_t)h * ksv);
            if (!iv) {
                st = eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
                goto done;
            }
            resample_v8(out->px, src8, cur_w, c, h, bv, iv, ksv);
        }
    } else if (is32) {
        memcpy(out->pi, src32, n * sizeof(int32_t));
    } else {
        memcpy(out->px, src8, n * (size_t)c);
    }
done:
    free(bv);
    free(kv);
    free(bh);
    free(kh);
    free(iv);
    free(ih);
    free(tmp);
    if (st != EVA_OK) eva_image_free(out);
    return st;
}

/* Pillow ImagingScaleAffine (NEAREST) as Image.resize uses for P and 1. */
static eva_status resize_nearest(eva_image *out, const eva_image *in, int w, int h) {
    memset(out, 0, sizeof *out);
    out->mode = in->mode;
    out->channels = in->channels;
    out->w = w;
    out->h = h;
    memcpy(out->pal, in->pal, sizeof out->pal);
    int c = in->channels;
    out->px = calloc((size_t)w * h, (size_t)c);
    int *xin = malloc((size_t)w * sizeof *xin);
    if (!out->px || !xin) {
        free(xin);
        eva_image_free(out);
        return eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
    }
    double a0 = (double)((float)in->w - 0.0f) / w, a4 = (double)((float)in->h - 0.0f) / h;
    double xo = 0.0 + a0 * 0.5, yo = 0.0 + a4 * 0.5;
    for (int x = 0; x < w; x++) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        xin[x] = (xi >= 0 && xi < in->w) ? xi : -1;
        xo += a0;
    }
    for (int y = 0; y < h; y++) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        yo += a4;
        if (yi < 0 || yi >= in->h) continue; /* stays 0 (fill) */
        for (int x = 0; x < w; x++)
            if (xin[x] >= 0) memcpy(out->px + ((size_t)y * w + x) * c, in->px + ((size_t)yi * in->w + xin[x]) * c, (size_t)c);
    }
    free(xin);
    return EVA_OK;
}

#define MULDIV255(a, b) ((((unsigned)(a) * (unsigned)(b) + 128) + (((unsigned)(a) * (unsigned)(b) + 128) >> 8)) >> 8)

eva_status eva_image_resize(eva_image *out, const eva_image *in, int w, int h) {
    if (w < 1 || h < 1) return eva_fail(EVA_ERR_INVALID_ARG, "resize: target %dx%d has no pixels", w, h);
    if (in->mode == EVA_MODE_P || in->mode == EVA_MODE_1) return resize_nearest(out, in, w, h);
    if (w == in->w && h == in->h) { /* Pillow: a copy */
        return resample(out, in, w, h);
    }
    if (in->mode != EVA_MODE_LA && in->mode != EVA_MODE_RGBA) return resample(out, in, w, h);
    /* LA -> La / RGBA -> RGBa (premultiply), resample, back (Pillow's lA2la/rgbA2rgba and inverses) */
    eva_image pm = *in;
    int c = in->channels, ac = c - 1;
    size_t n = (size_t)in->w * in->h;
    pm.px = malloc(n * (size_t)c);
    if (!pm.px) return eva_fail(EVA_ERR_NOMEM, "resize: out of memory");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = in->px + i * c;
        uint8_t *q = pm.px + i * c;
        unsigned a = p[ac];
        for (int k = 0; k < ac; k++) q[k] = (uint8_t)MULDIV255(p[k], a);
        q[ac] = (uint8_t)a;
    }
    eva_status st = resample(out, &pm, w, h);
    free(pm.px);
    if (st != EVA_OK) return st;
    size_t m = (size_t)out->w * out->h;
    for (size_t i = 0; i < m; i++) {
        uint8_t *q = out->px + i * c;
        unsigned a = q[ac];
        if (a == 255 || a == 0) continue;
        for (int k = 0; k < ac; k++) {
            unsigned v = (255u * q[k]) / a;
            q[k] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    return EVA_OK;
}

void eva_image_resize_dims(int w, int h, int size, int *ow, int *oh) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int ns = size, nl = (int)((double)((long long)size * l) / (double)s);
    if (w <= h) *ow = ns, *oh = nl;
    else *ow = nl, *oh = ns;
}

void eva_image_to_rgb8(uint8_t *rgb, const eva_image *img, int x0, int y0, int cw, int ch) {
    for (int y = 0; y < ch; y++) {
        for (int x = 0; x < cw; x++) {
            size_t i = (size_t)(y + y0) * img->w + (size_t)(x + x0);
            uint8_t *o = rgb + ((size_t)y * cw + x) * 3;
            const uint8_t *p = img->px ? img->px + i * img->channels : NULL;
            switch (img->mode) {
            case EVA_MODE_1:
                o[0] = o[1] = o[2] = p[0] ? 255 : 0;
                break;
            case EVA_MODE_L:
            case EVA_MODE_LA:
                o[0] = o[1] = o[2] = p[0];
                break;
            case EVA_MODE_P:
                memcpy(o, img->pal + 3 * p[0], 3);
                break;
            case EVA_MODE_I: {
                int32_t v = img->pi[i];
                o[0] = o[1] = o[2] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : v);
                break;
            }
            case EVA_MODE_RGB:
            case EVA_MODE_RGBA:
                memcpy(o, p, 3);
                break;
            case EVA_MODE_CMYK: {
                int nk = 255 - p[3];
                for (int k = 0; k < 3; k++) {
                    int v = nk - (int)MULDIV255(p[k], nk);
                    o[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
                break;
            }
            }
        }
    }
}

/* Python round(d / 2.0) for an integer d >= 0: half to even. */
static int half_even_div2(int d) {
    int q = d / 2;
    if (d % 2 == 0) return q;
    return (q % 2 == 0) ? q : q + 1;
}

eva_status eva_image_preprocess(float *out, uint8_t *rgb8, const eva_image *img, int size) {
    if (size < 1 || size > 16384) return eva_fail(EVA_ERR_INVALID_ARG, "preprocess: size %d out of range", size);
    int rw, rh;
    eva_image_resize_dims(img->w, img->h, size, &rw, &rh);
    eva_image r;
    const eva_image *src = img;
    int resized = 0;
    /* torchvision returns the image untouched when the short side already equals S */
    if (!((img->w <= img->h ? img->w : img->h) == size)) {
        eva_status st = eva_image_resize(&r, img, rw, rh);
        if (st != EVA_OK) return st;
        src = &r;
        resized = 1;
    }
    eva_status st = EVA_OK;
    int H = src->h, W = src->w;
    if (H < size || W < size) { /* cannot happen after a shortest-side resize */
        st = eva_fail(EVA_ERR_INTERNAL, "preprocess: resized image %dx%d smaller than %d", W, H, size);
    } else {
        int top = half_even_div2(H - size), left = half_even_div2(W - size);
        uint8_t *buf = rgb8 ? rgb8 : malloc((size_t)size * size * 3);
        if (!buf) {
            st = eva_fail(EVA_ERR_NOMEM, "preprocess: out of memory");
        } else {
            eva_image_to_rgb8(buf, src, left, top, size, size);
            static const float mean[3] = {EVA_CLIP_MEAN_R, EVA_CLIP_MEAN_G, EVA_CLIP_MEAN_B};
            static const float stdv[3] = {EVA_CLIP_STD_R, EVA_CLIP_STD_G, EVA_CLIP_STD_B};
            size_t plane = (size_t)size * size;
            for (size_t i = 0; i < plane; i++)
                for (int c = 0; c < 3; c++) {
                    float v = (float)buf[3 * i + c] / 255.0f; /* ToTensor: .div(255) */
                    out[c * plane + i] = (v - mean[c]) / stdv[c];
                }
            if (!rgb8) free(buf);
        }
    }
    if (resized) eva_image_free(&r);
    return st;
}

eva_status eva_image_load_preprocessed(float *out, const char *path, int size) {
    eva_image img;
    eva_status st = eva_image_decode(&img, path);
    if (st != EVA_OK) return st;
    st = eva_image_preprocess(out, NULL, &img, size);
    eva_image_free(&img);
    if (st != EVA_OK && st != EVA_ERR_NOMEM) eva_fail_context("%s", path);
    return st;
}
