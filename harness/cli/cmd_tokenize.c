/* cmd_tokenize.c: `evabench tokenize [--context-length 77] [--json] [--bpe FILE] TEXT...`: one line
 * per TEXT with all its context-length ids, space separated; --json prints one JSON array of
 * arrays. `--bench` instead times the 80,000 ImageNet prompts of golden/parity/tokens.h5
 * (bench_inputs.c). Exit 0 ok, 2 bad usage/input, 3 internal.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_inputs.h"
#include "cli.h"
#include "cmds.h"
#include "eva_tokenizer.h"

typedef struct {
    long context_length;
    bool json, bench;
    const char *bpe;
    eva_cli_list texts;
} tokenize_args;

static int parse(tokenize_args *a, int argc, char **argv) {
    *a = (tokenize_args){.context_length = EVA_CONTEXT_LENGTH};
    const eva_opt opts[] = {
        EVA_ARG_LONG("--context-length", &a->context_length, "N", "ids per text (default 77)", 1, 1000000),
        EVA_ARG_FLAG("--json", &a->json, "one JSON array of arrays instead of lines"),
        EVA_ARG_STR("--bpe", &a->bpe, "FILE", "another gzip merges file (default: CLIP's, compiled in)"),
        EVA_ARG_FLAG("--bench", &a->bench, "time the 80,000 ImageNet prompts (1000 classes x 80 templates)"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "tokenize",
        "usage: evabench tokenize [--context-length N] [--json] [--bpe FILE] [--] TEXT...\n"
        "       evabench tokenize --bench [--bpe FILE]\n\n"
        "CLIP BPE token ids of each TEXT, as open_clip's tokenize() (ftfy cleaning, lower case,\n"
        "[SOT] ids [EOT], truncated to N with EOT last, zero padded). One line per TEXT with all\n"
        "N ids; --json prints one array of arrays.\n",
        opts, &a->texts, NULL};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r < 0 && !a->bench && a->texts.n == 0) r = eva_cli_usage_error("tokenize", "no TEXT given (see --help)");
    return r;
}

/* Prints the ids of every text; stops at the first that fails. */
static eva_status print_ids(eva_tokenizer *tok, const tokenize_args *a) {
    const int ctx = (int)a->context_length;
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    if (!ids) return eva_fail(EVA_ERR_NOMEM, "out of memory");
    eva_status st = EVA_OK;
    if (a->json) fputc('[', stdout);
    for (int t = 0; t < a->texts.n && st == EVA_OK; t++) {
        if ((st = eva_tokenizer_encode(tok, ids, a->texts.v[t], ctx)) != EVA_OK) break;
        if (a->json) fputs(t ? ",[" : "[", stdout);
        for (int k = 0; k < ctx; k++) printf(a->json ? (k ? ",%d" : "%d") : (k ? " %d" : "%d"), ids[k]);
        fputs(a->json ? "]" : "\n", stdout);
    }
    if (a->json && st == EVA_OK) fputs("]\n", stdout);
    free(ids);
    return st;
}

int eva_cmd_tokenize(int argc, char **argv) {
    tokenize_args a;
    int r = parse(&a, argc, argv);
    if (r >= 0) return r;
    eva_tokenizer *tok;
    eva_status st = eva_tokenizer_open(&tok, a.bpe);
    if (st != EVA_OK) return eva_cli_fail("tokenize", st);
    st = a.bench ? eva_bench_tokenizer(tok, stdout) : print_ids(tok, &a);
    eva_tokenizer_free(tok);
    if (st != EVA_OK) return eva_cli_fail("tokenize", st);
    return fflush(stdout) == 0 ? 0 : 3;
}
