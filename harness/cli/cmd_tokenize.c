/* cmd_tokenize.c: `evabench tokenize [--context-length 77] [--json] [--bpe FILE] TEXT...`
 * (contract.md): one line per TEXT with all its context-length ids, space separated; --json prints
 * one JSON array of arrays. `--bench` instead times the 80,000 ImageNet prompts of
 * golden/parity/tokens.h5 (harness/bench_inputs.c). Exit 0 ok, 2 bad usage/input, 3 internal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_inputs.h"
#include "cmds.h"
#include "eva_tokenizer.h"

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: evabench tokenize [--context-length N] [--json] [--bpe FILE] [--] TEXT...\n"
            "       evabench tokenize --bench [--bpe FILE]\n\n"
            "CLIP BPE token ids of each TEXT, as open_clip's tokenize() (ftfy cleaning, lower case,\n"
            "[SOT] ids [EOT], truncated to N with EOT last, zero padded). One line per TEXT with all\n"
            "N ids; --json prints one array of arrays. N defaults to 77.\n"
            "  --bpe FILE   another gzip merges file (default: CLIP's, compiled in)\n"
            "  --bench      time the 80,000 ImageNet prompts (1000 classes x 80 templates)\n");
}

int eva_cmd_tokenize(int argc, char **argv) {
    int ctx = EVA_CONTEXT_LENGTH, json = 0, bench = 0;
    const char *bpe = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--bench")) {
            bench = 1;
        } else if (!strcmp(a, "--context-length") || !strcmp(a, "--bpe")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "evabench tokenize: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--bpe")) {
                bpe = argv[++i];
            } else {
                char *end;
                long v = strtol(argv[++i], &end, 10);
                if (*end || end == argv[i] || v < 1 || v > 1000000) {
                    fprintf(stderr, "evabench tokenize: --context-length '%s' is not an integer in 1..1000000\n", argv[i]);
                    return 2;
                }
                ctx = (int)v;
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "evabench tokenize: unknown option '%s' (see --help)\n", a);
            return 2;
        } else {
            break;
        }
    }
    if (!bench && i >= argc) {
        fprintf(stderr, "evabench tokenize: no TEXT given (see --help)\n");
        return 2;
    }
    eva_tokenizer *tok;
    eva_status st = eva_tokenizer_open(&tok, bpe);
    if (st != EVA_OK) {
        fprintf(stderr, "evabench tokenize: %s\n", eva_last_error());
        return eva_status_exit_code(st);
    }
    if (bench) {
        st = eva_bench_tokenizer(tok, stdout);
        eva_tokenizer_free(tok);
        if (st != EVA_OK) fprintf(stderr, "evabench tokenize: %s\n", eva_last_error());
        return eva_status_exit_code(st);
    }
    int32_t *ids = malloc((size_t)ctx * sizeof *ids);
    if (!ids) {
        eva_tokenizer_free(tok);
        fprintf(stderr, "evabench tokenize: out of memory\n");
        return 3;
    }
    if (json) fputc('[', stdout);
    for (int t = i; t < argc; t++) {
        st = eva_tokenizer_encode(tok, ids, argv[t], ctx);
        if (st != EVA_OK) break;
        if (json) fputs(t > i ? ",[" : "[", stdout);
        for (int k = 0; k < ctx; k++) printf(json ? (k ? ",%d" : "%d") : (k ? " %d" : "%d"), ids[k]);
        fputs(json ? "]" : "\n", stdout);
    }
    if (json && st == EVA_OK) fputs("]\n", stdout);
    free(ids);
    eva_tokenizer_free(tok);
    if (st != EVA_OK) {
        fprintf(stderr, "evabench tokenize: %s\n", eva_last_error());
        return eva_status_exit_code(st);
    }
    return fflush(stdout) == 0 ? 0 : 3;
}
