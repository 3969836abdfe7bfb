/* fuzz_golden.c: libFuzzer target for the golden / tap dump / inputs HDF5 reader, in-process on an HDF5 file
 * image (H5Pset_file_image): libhdf5's parsing, our checks of every declared size, the dump
 * stream and its checked read-back. Crashes inside libhdf5 itself are expected on such inputs
 * (that is why evabench reads HDF5 in a guarded child): run this target with -fork=N
 * -ignore_crashes=1 to collect them (fuzz/README.md); a crash whose top frames are in evabench's
 * code is a finding. */
#include <stdint.h>
#include <stdlib.h>

#include "golden.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    eva_golden g;
    if (eva_golden_open_image(&g, data, size, "fuzz.h5", NULL) == EVA_OK) {
        for (int i = 0; i < g.n_acts; i++) {
            float *buf = NULL;
            int nd;
            int64_t sh[4];
            if (eva_golden_read_act(&g, g.acts[i], &buf, &nd, sh) == EVA_OK) free(buf);
        }
        eva_golden_close(&g);
    }
    if (eva_dump_open_image(&g, data, size, "fuzz.h5") == EVA_OK) {
        char *impl = NULL;
        if (eva_golden_attr(&g, "impl", &impl) == EVA_OK) free(impl);
        eva_golden_close(&g);
    }
    eva_inputs in;
    if (eva_inputs_read_image(&in, data, size, "fuzz.h5", NULL) == EVA_OK) eva_inputs_free(&in);
    return 0;
}
