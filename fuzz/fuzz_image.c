/* fuzz_image.c: libFuzzer target for the PNG/JPEG decoder (eva_image_decode_mem) and, for the
 * images it accepts that are not huge, the open_clip preprocessing at 224. */
#include <stdint.h>
#include <stdlib.h>

#include "eva_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    eva_image img;
    if (eva_image_decode_mem(&img, data, size, "fuzz") != EVA_OK) return 0;
    if ((int64_t)img.w * img.h <= 1 << 20) {
        float *out = malloc(3 * 224 * 224 * sizeof(float));
        uint8_t *rgb = malloc(3 * 224 * 224);
        if (out && rgb) (void)eva_image_preprocess(out, rgb, &img, 224);
        free(out);
        free(rgb);
    }
    eva_image_free(&img);
    return 0;
}
