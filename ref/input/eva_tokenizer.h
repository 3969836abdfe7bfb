/* eva_tokenizer.h: the CLIP byte-level BPE tokenizer (docs/model.md §6), as open_clip 2.24's
 * SimpleTokenizer (clean='lower') computes it with ftfy 6.2 installed.
 *
 * Pipeline: UTF-8 -> code points (an undecodable byte becomes U+FFFD: what Python gives for a
 * command-line argument, decoded with surrogateescape, after ftfy's fix_surrogates) -> ftfy's
 * default fixes (see eva_tokenizer.c for exactly which) -> html.unescape twice -> strip, collapse
 * whitespace -> str.lower() -> pre-tokenizer -> BPE over the merges file -> [SOT] ids [EOT],
 * truncated to the context length with EOT kept last, zero padded.
 *
 * The merges file bpe_simple_vocab_16e6.txt.gz (OpenAI CLIP's, as open_clip ships it) is committed
 * under ref/input/data/, its sha256 checked when the build is configured, and compiled into the
 * library: eva_tokenizer_open(.., NULL) touches no file and no network.
 *
 * Thread safety: a tokenizer holds a BPE cache that encode updates; use one per thread.
 */
#ifndef EVA_TOKENIZER_H
#define EVA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "eva_status.h"

#define EVA_TOKEN_SOT 49406
#define EVA_TOKEN_EOT 49407
#define EVA_VOCAB_SIZE 49408
#define EVA_CONTEXT_LENGTH 77

typedef struct eva_tokenizer eva_tokenizer;

/* Loads the merges (gzip, 48894 merges used): bpe_path NULL = the copy compiled in, else that
 * gzip file. */
eva_status eva_tokenizer_open(eva_tokenizer **tok, const char *bpe_path);
void eva_tokenizer_free(eva_tokenizer *tok);

/* ids[context_length] <- the framed, truncated, zero-padded ids of the NUL-terminated UTF-8 text
 * (open_clip tokenize(text, context_length)[0]). context_length >= 1. */
eva_status eva_tokenizer_encode(eva_tokenizer *tok, int32_t *ids, const char *text, int context_length);
/* The same for text[0..len), which may hold NUL characters (removed by the cleaning, as ftfy does). */
eva_status eva_tokenizer_encode_n(eva_tokenizer *tok, int32_t *ids, const char *text, size_t len,
                                  int context_length);

/* All BPE ids of text[0..len) without SOT/EOT and without truncation (open_clip encode()).
 * *ids is malloc'd (free it); *n may be 0. */
eva_status eva_tokenizer_encode_raw(eva_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                                    size_t *n);

/* The cleaned text that the pre-tokenizer sees (open_clip _clean_lower), malloc'd, NUL-terminated
 * UTF-8. Needs no merges file. */
eva_status eva_tokenizer_clean(const char *text, size_t len, char **out, size_t *out_len);

#endif
