/* cmd_info.c: `evabench info`: the variant registry with exact parameter counts and GFLOPs, the
 * build's features, the attention kernel --impl cuda takes per precision, and (with --variant NAME
 * --json) a variant's config JSON, usable as --config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend_select.h"
#include "cli.h"
#include "cmds.h"
#include "eva_config.h"
#include "ref_gemm.h"

static cJSON *build_json(void) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "version", EVA_VERSION);
    cJSON_AddStringToObject(b, "git", EVA_GIT_REV);
#ifdef EVA_HAVE_CUDA
    cJSON_AddBoolToObject(b, "cuda", 1);
#else
    cJSON_AddBoolToObject(b, "cuda", 0);
#endif
#ifdef EVA_HAVE_CUDNN
    cJSON_AddBoolToObject(b, "cudnn", 1);
#else
    cJSON_AddBoolToObject(b, "cudnn", 0);
#endif
#ifdef EVA_HAVE_OPENMP
    cJSON_AddBoolToObject(b, "openmp", 1);
#else
    cJSON_AddBoolToObject(b, "openmp", 0);
#endif
#if defined(__SANITIZE_ADDRESS__)
    cJSON_AddBoolToObject(b, "sanitizers", 1);
#else
    cJSON_AddBoolToObject(b, "sanitizers", 0);
#endif
    cJSON_AddStringToObject(b, "compiler", __VERSION__);
    cJSON_AddStringToObject(b, "flags", EVA_BUILD_FLAGS);
    cJSON_AddStringToObject(b, "gemm_kernel", eva_gemm_kernel_name());
    cJSON *k = cJSON_AddArrayToObject(b, "gemm_kernels_available");
    static const char *const kernels[] = {"portable", "avx2", "avx512", "neon"};
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (eva_gemm_kernel_available(kernels[i])) cJSON_AddItemToArray(k, cJSON_CreateString(kernels[i]));
    return b;
}

static cJSON *variant_json(int i) {
    const eva_config *c = eva_config_builtin(i);
    eva_param_count pc = eva_config_params(c);
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "name", c->name);
    cJSON *aliases = cJSON_AddArrayToObject(v, "aliases");
    const char *const *al = eva_config_builtin_aliases(i);
    for (int k = 0; al[k]; k++) cJSON_AddItemToArray(aliases, cJSON_CreateString(al[k]));
    cJSON_AddStringToObject(v, "family", eva_family_name(eva_config_family(c)));
    cJSON_AddNumberToObject(v, "params_total", (double)pc.total);
    cJSON_AddNumberToObject(v, "params_image", (double)pc.image);
    cJSON_AddNumberToObject(v, "params_text", (double)pc.text);
    cJSON_AddNumberToObject(v, "gflops_image", eva_config_gflops_image(c));
    cJSON_AddNumberToObject(v, "gflops_text", eva_config_gflops_text(c));
    cJSON_AddNumberToObject(v, "image_size", c->vision.image_size);
    cJSON_AddNumberToObject(v, "embed_dim", c->embed_dim);
    cJSON *att = cJSON_AddObjectToObject(v, "attention_cuda"); /* the kernel per precision (--impl cuda) */
    for (int p = 0; p <= EVA_PREC_FP16; p++) {
        char line[512];
        if (eva_backend_attention_paths(EVA_IMPL_CUDA, c, (eva_precision)p, line, sizeof line) == EVA_OK)
            cJSON_AddStringToObject(att, eva_precision_name((eva_precision)p), line);
        else
            cJSON_AddNullToObject(att, eva_precision_name((eva_precision)p));
    }
    char *cj = eva_config_to_json(c, false);
    cJSON_AddItemToObject(v, "config", cj ? cJSON_Parse(cj) : cJSON_CreateNull());
    free(cj);
    return v;
}

static int find_builtin(const char *name) {
    eva_config c;
    if (eva_config_find(&c, name) != EVA_OK) return -1;
    for (int i = 0; i < eva_config_builtin_count(); i++)
        if (!strcmp(eva_config_builtin(i)->name, c.name)) return i;
    return -1;
}

static void print_row(int i) {
    const eva_config *c = eva_config_builtin(i);
    eva_param_count pc = eva_config_params(c);
    printf("%-24s %-20s %15lld %15lld %13lld %9.2f %7.2f %5d %5d\n", c->name,
           eva_family_name(eva_config_family(c)), (long long)pc.total, (long long)pc.image, (long long)pc.text,
           eva_config_gflops_image(c), eva_config_gflops_text(c), c->vision.image_size, c->embed_dim);
}

typedef struct {
    const char *variant;
    bool json;
} info_args;

static int parse(info_args *a, int argc, char **argv) {
    *a = (info_args){0};
    const eva_opt opts[] = {
        EVA_ARG_STR("--variant", &a->variant, "NAME", "one variant (official or open_clip name, case-insensitive)"),
        EVA_ARG_FLAG("--json", &a->json, "JSON: {\"build\": {...}, \"variants\": [...]}, or with --variant its config"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "info",
        "usage: evabench info [--variant NAME] [--json]\n\n"
        "Without options: a table of the ten variants: parameters (total/image/text), GFLOPs per image\n"
        "and per 77-token text, image size, embedding size. --json prints one object with the build's\n"
        "features, the exact parameter counts and each variant's resolved config; --variant NAME --json\n"
        "prints that variant's config JSON (the --config format).\n",
        opts, NULL, NULL};
    return eva_cli_parse(&spec, argc, argv);
}

static int print_json_all(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "build", build_json());
    cJSON *arr = cJSON_AddArrayToObject(root, "variants");
    for (int i = 0; i < eva_config_builtin_count(); i++) cJSON_AddItemToArray(arr, variant_json(i));
    char *s = cJSON_Print(root);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
    return 0;
}

/* The table, all variants or only `only` (>= 0) with its aliases and config. */
static int print_table(int only) {
    printf("%-24s %-20s %15s %15s %13s %9s %7s %5s %5s\n", "variant", "family", "params", "image", "text",
           "GF/image", "GF/text", "size", "embed");
    for (int i = 0; i < eva_config_builtin_count(); i++)
        if (only < 0 || only == i) print_row(i);
    printf("\nreference SGEMM kernel: %s (this CPU runs:", eva_gemm_kernel_name());
    static const char *const kernels[] = {"portable", "avx2", "avx512", "neon"};
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (eva_gemm_kernel_available(kernels[i])) printf(" %s", kernels[i]);
    printf("; EVA_GEMM_KERNEL=NAME selects one)\n");
    if (only >= 0) {
        const char *const *al = eva_config_builtin_aliases(only);
        printf("\naliases:");
        for (int k = 0; al[k]; k++) printf(" %s", al[k]);
        printf("\nattention (--impl cuda):\n");
        for (int p = 0; p <= EVA_PREC_FP16; p++) {
            char line[512];
            if (eva_backend_attention_paths(EVA_IMPL_CUDA, eva_config_builtin(only), (eva_precision)p, line,
                                            sizeof line) == EVA_OK)
                printf("  %-5s %s\n", eva_precision_name((eva_precision)p), line);
            else
                printf("  %-5s (this build has no CUDA)\n", eva_precision_name((eva_precision)p));
        }
        char *cj = eva_config_to_json(eva_config_builtin(only), true);
        printf("config:\n%s\n", cj ? cj : "?");
        free(cj);
    }
    return 0;
}

int eva_cmd_info(int argc, char **argv) {
    info_args a;
    int r = parse(&a, argc, argv);
    if (r >= 0) return r;
    if (eva_gemm_kernel_from_env() != EVA_OK) return eva_cli_fail("info", EVA_ERR_INVALID_ARG);
    int only = -1;
    if (a.variant && (only = find_builtin(a.variant)) < 0) return eva_cli_fail("info", EVA_ERR_INVALID_ARG);
    if (a.json && only >= 0) {
        char *cj = eva_config_to_json(eva_config_builtin(only), true);
        if (!cj) return 3;
        printf("%s\n", cj);
        free(cj);
        return 0;
    }
    return a.json ? print_json_all() : print_table(only);
}
