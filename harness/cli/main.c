/* main.c: the evabench command-line entry point. Dispatches to cmd_<name>.c (one per command,
 * all compiled into the executable). */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} eva_command;

static void usage(FILE *f, const eva_command *cmds, int n) {
    fprintf(f, "evabench %s: EVA-CLIP reference, CUDA twin and verification harness\n\n"
               "usage: evabench <command> [options]   (evabench <command> --help for details)\n\n"
               "commands:\n", EVA_VERSION);
    for (int i = 0; i < n; i++) fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].summary);
}

int main(int argc, char **argv) {
    const eva_command cmds[] = {
        {"info", eva_cmd_info, "list the variants: parameters, GFLOPs, configs; build features"},
        {"encode", eva_cmd_encode, "encode images and/or texts to embeddings (HDF5 out)"},
        {"verify", eva_cmd_verify, "compare every activation tap against a golden HDF5"},
        {"compare", eva_cmd_compare, "judge another implementation's tap dump against a golden HDF5"},
        {"tokenize", eva_cmd_tokenize, "CLIP BPE token ids of strings"},
        {"preprocess", eva_cmd_preprocess, "images to normalised pixel tensors (HDF5 out)"},
        {"bench", eva_cmd_bench, "throughput, latency and memory of a tower"},
        {"profile", eva_cmd_profile, "time per module (per tap) of a forward pass"},
        {"zeroshot", eva_cmd_zeroshot, "zero-shot classification accuracy on a dataset"},
        {"classify", eva_cmd_classify, "rank labels for images with softmax probabilities"},
        {"retrieval", eva_cmd_retrieval, "zero-shot image-text retrieval recall@k on a captioned dataset"},
    };
    const int n = (int)(sizeof cmds / sizeof cmds[0]);
    if (argc < 2) {
        usage(stderr, cmds, n);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout, cmds, n);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("evabench %s (%s)\n", EVA_VERSION, EVA_GIT_REV);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        return cmds[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "evabench: unknown command '%s' (run 'evabench --help' for the list)\n", argv[1]);
    return 2;
}
