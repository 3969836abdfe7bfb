/* bench_inputs.h: the input parity data (golden/parity/, made by golden/make_parity_inputs.py)
 * and the speed lines of the input pipeline (tokenize --bench, preprocess --bench).
 *
 * A text set is one group of golden/parity/tokens.h5: n strings as raw UTF-8 bytes
 * (bytes[offs[i]..offs[i+1])) and open_clip's ids for each (ids[id_offs[i]..id_offs[i+1]]:
 * tokenize(text)[0] at context 77 with the trailing zeros dropped).
 */
#ifndef EVA_BENCH_INPUTS_H
#define EVA_BENCH_INPUTS_H

#include <stdint.h>
#include <stdio.h>

#include "eva_status.h"
#include "eva_tokenizer.h"

typedef struct {
    int64_t n;
    uint8_t *bytes;   /* [offs[n]] */
    int64_t *offs;    /* [n+1] */
    int32_t *ids;     /* [id_offs[n]] */
    int64_t *id_offs; /* [n+1] */
} eva_text_set;

/* $EVA_PARITY_DIR, else golden/parity of the source tree the build was configured from. */
const char *eva_parity_dir(void);
/* Reads group `group` (imagenet, hard, mojibake) of the tokens file `h5path`; checks the offsets. */
eva_status eva_text_set_read(eva_text_set *s, const char *h5path, const char *group);
void eva_text_set_free(eva_text_set *s);

/* Reads float32 dataset `name` of `h5path` into out[count] (exact element count required). */
eva_status eva_h5_read_f32(const char *h5path, const char *name, float *out, int64_t count);

/* Tokenizes the 80,000 ImageNet prompts of tokens.h5 (after one warm-up pass that is not timed
 * unless cold) and prints the time and the match rate against open_clip's ids. */
eva_status eva_bench_tokenizer(eva_tokenizer *tok, FILE *out);
/* Decodes and preprocesses `image` at size S `iters` times; prints the median ms. */
eva_status eva_bench_preprocess(const char *image, int size, int iters, FILE *out);

#endif
