/* fuzz_tokenizer.c: libFuzzer target for the tokenizer (cleaning, pre-tokenizer, BPE) on
 * arbitrary bytes. Needs the merges file (golden/fetch_bpe.sh, or EVA_BPE_PATH). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "eva_tokenizer.h"

static eva_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (eva_tokenizer_open(&tok, NULL) != EVA_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", eva_last_error());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t ids[EVA_CONTEXT_LENGTH];
    if (eva_tokenizer_encode_n(tok, ids, (const char *)data, size, EVA_CONTEXT_LENGTH) == EVA_OK) {
        for (int i = 0; i < EVA_CONTEXT_LENGTH; i++)
            if (ids[i] < 0 || ids[i] >= EVA_VOCAB_SIZE) abort();
    }
    int32_t *raw = NULL;
    size_t n = 0;
    if (eva_tokenizer_encode_raw(tok, (const char *)data, size, &raw, &n) == EVA_OK) {
        for (size_t i = 0; i < n; i++)
            if (raw[i] < 0 || raw[i] >= EVA_VOCAB_SIZE) abort();
    }
    free(raw);
    return 0;
}
