/* fuzz_weights.c: libFuzzer target for the weights loader: the config metadata of a safetensors
 * file and eva_model_load against that config (name mapping, shape checks, conversion). Configs
 * with more than 4M parameters are skipped, so that one input stays fast. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eva_weights.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    eva_config cfg;
    if (eva_model_config_from_weights(&cfg, path) == EVA_OK) {
        eva_param_count pc = eva_config_params(&cfg);
        if (pc.total <= 4000000) {
            eva_model m;
            memset(&m, 0, sizeof m);
            (void)eva_model_load(&m, path, &cfg);
            eva_model_free(&m);
        }
    }
    close(fd);
    return 0;
}
