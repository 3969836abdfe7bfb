/* fuzz_safetensors.c: libFuzzer target for the safetensors reader: header JSON, offsets, dtypes,
 * metadata, and the fp32 conversion of every tensor small enough to read. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "eva_safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    eva_safetensors *st = NULL;
    if (eva_safetensors_open(&st, path) == EVA_OK) {
        int n = eva_safetensors_count(st);
        for (int i = 0; i < n; i++) {
            const eva_st_tensor *t = eva_safetensors_get(st, i);
            int64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
            if (numel > (1 << 20)) continue;
            float *buf = malloc((size_t)(numel ? numel : 1) * sizeof(float));
            if (buf) (void)eva_safetensors_read_f32(st, i, buf, numel);
            free(buf);
            (void)eva_safetensors_find(st, t->name);
        }
        for (int i = 0; i < eva_safetensors_metadata_count(st); i++) {
            const char *k, *v;
            (void)eva_safetensors_metadata_at(st, i, &k, &v);
        }
        eva_safetensors_close(st);
    }
    close(fd);
    return 0;
}
