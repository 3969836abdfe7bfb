/* eva_image.h: image files to the normalised pixel tensor of open_clip's evaluation transform
 * (docs/model.md §7), bit-exact with Pillow 9.4 + torchvision 0.14 where the decoders agree.
 *
 * Decoding keeps the mode Pillow's Image.open gives (PNG: 1, L (1/2/4/8-bit grey scaled as
 * Pillow's L;2/L;4), I (16-bit grey, 0..65535), P (palette, tRNS ignored), LA, RGB, RGBA
 * (16-bit: high byte, as Pillow's RGB;16B/RGBA;16B/LA;16B); JPEG through libjpeg(-turbo) with the
 * library defaults Pillow uses: L, RGB, CMYK (Adobe-inverted, YCCK converted by libjpeg)).
 * Then, in Pillow's order: Resize(S) in the native mode (P and 1 nearest-neighbour as Pillow
 * forces; LA/RGBA premultiplied around the resample; I with double coefficients), CenterCrop(S),
 * convert("RGB") (alpha dropped, palette expanded, I clipped to 0..255, CMYK by cmyk2rgb),
 * /255, (x - mean) / std in float32.
 *
 * Limits: width and height >= 1; width*height <= EVA_IMAGE_MAX_PIXELS (Pillow's MAX_IMAGE_PIXELS,
 * above which Pillow warns of a decompression bomb; Pillow only refuses above twice that — we
 * refuse at once). The size is checked from the header before any pixel buffer is allocated.
 * Damaged files get Pillow's decision (LOAD_TRUNCATED_IMAGES off): a JPEG or PNG cut anywhere in
 * its image data is refused ("image file is truncated"), PNG CRCs are checked before the image data
 * and not after, libjpeg's warnings on corrupt entropy-coded data are not fatal.
 * Every failure is EVA_ERR_FORMAT (or EVA_ERR_IO for an unreadable file) with a message naming
 * the file; libpng/libjpeg errors longjmp back and free everything.
 */
#ifndef EVA_IMAGE_H
#define EVA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "eva_status.h"

#define EVA_IMAGE_MAX_PIXELS 89478485LL /* int(1024 * 1024 * 1024 // 4 // 3) */

/* CLIP normalisation constants (open_clip constants.py), as float32. */
#define EVA_CLIP_MEAN_R 0.48145466f
#define EVA_CLIP_MEAN_G 0.4578275f
#define EVA_CLIP_MEAN_B 0.40821073f
#define EVA_CLIP_STD_R 0.26862954f
#define EVA_CLIP_STD_G 0.26130258f
#define EVA_CLIP_STD_B 0.27577711f

typedef enum {
    EVA_MODE_1,    /* bilevel, stored 0/255, 1 byte */
    EVA_MODE_L,    /* 1 byte */
    EVA_MODE_P,    /* palette index, 1 byte; palette[256*3] */
    EVA_MODE_I,    /* int32 */
    EVA_MODE_LA,   /* 2 bytes: L, A */
    EVA_MODE_RGB,  /* 3 bytes */
    EVA_MODE_RGBA, /* 4 bytes */
    EVA_MODE_CMYK  /* 4 bytes (after Pillow's CMYK;I inversion) */
} eva_image_mode;

typedef struct {
    int w, h;
    eva_image_mode mode;
    int channels;      /* bytes per pixel for the 8-bit modes, 1 for I */
    uint8_t *px;       /* [h, w, channels] for 8-bit modes */
    int32_t *pi;       /* [h, w] for mode I */
    uint8_t pal[256 * 3];
} eva_image;

/* Decodes a PNG or JPEG file (detected by signature) in its native mode. */
eva_status eva_image_decode(eva_image *img, const char *path);
/* The same from memory; `name` is used in messages. */
eva_status eva_image_decode_mem(eva_image *img, const uint8_t *data, size_t len, const char *name);
void eva_image_free(eva_image *img);

/* Width and height from the header only (no pixel decode). */
eva_status eva_image_probe(const char *path, int *w, int *h);

/* Pillow Image.resize((w, h), BICUBIC) in img's mode (NEAREST for P and 1; premultiplied for LA
 * and RGBA): out is a new image. */
eva_status eva_image_resize(eva_image *out, const eva_image *img, int w, int h);

/* torchvision Resize(S) output size: short side S, long side int(S * long / short). */
void eva_image_resize_dims(int w, int h, int size, int *out_w, int *out_h);

/* Pillow convert("RGB") of the window [x0, x0+cw) x [y0, y0+ch): rgb[ch, cw, 3] uint8. */
void eva_image_to_rgb8(uint8_t *rgb, const eva_image *img, int x0, int y0, int cw, int ch);

/* The whole evaluation transform on a decoded image: out[3, S, S] float32 (CHW), and optionally
 * the uint8 crop rgb8[S, S, 3] (NULL to skip). */
eva_status eva_image_preprocess(float *out, uint8_t *rgb8, const eva_image *img, int size);

/* Decode + preprocess: out[3, size, size]. */
eva_status eva_image_load_preprocessed(float *out, const char *path, int size);

#endif
