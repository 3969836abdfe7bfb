/* fuzz_config.c: libFuzzer target for the config JSON parser (eva_config_from_json), with a
 * round trip through eva_config_to_json for every config it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eva_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1);
    if (!json) return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    eva_config cfg;
    if (eva_config_from_json(&cfg, json, "fuzz") == EVA_OK) {
        char *back = eva_config_to_json(&cfg, false);
        eva_config again;
        if (back && eva_config_from_json(&again, back, "fuzz-roundtrip") != EVA_OK) abort();
        free(back);
        (void)eva_config_params(&cfg);
    }
    free(json);
    return 0;
}
