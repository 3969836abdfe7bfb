/* backend_select.c: --impl / --precision, the choice of implementation, config resolution. */
#include "backend_select.h"

#include <stdio.h>
#include <string.h>

#include "eva_checkpoint.h"
#include "ref_gemm.h"
#include "ref_model.h"
#ifdef EVA_HAVE_CUDA
#include "eva_cuda.h"
#endif

const eva_backend_ops *eva_backend_ops_for(eva_impl impl) {
    if (impl == EVA_IMPL_REF) return eva_ref_backend_ops();
#ifdef EVA_HAVE_CUDA
    if (impl == EVA_IMPL_CUDA) return eva_cuda_backend_ops();
#endif
    return NULL;
}

eva_status eva_backend_check(eva_impl impl, eva_precision p) {
    if (impl == EVA_IMPL_REF) {
        if (p != EVA_PREC_FP32)
            return eva_fail(EVA_ERR_UNSUPPORTED, "--precision %s: the reference runs fp32 only (use --impl cuda)",
                            eva_precision_name(p));
        return eva_gemm_kernel_from_env(); /* EVA_GEMM_KERNEL: a bad or unrunnable name is refused */
    }
#ifndef EVA_HAVE_CUDA
    return eva_fail(EVA_ERR_UNSUPPORTED, "--impl cuda: this build has no CUDA (nvcc was not found at build time)");
#else
    return EVA_OK;
#endif
}

eva_status eva_backend_attention_paths(eva_impl impl, const eva_config *cfg, eva_precision p, char *buf, size_t n) {
    if (!cfg || !buf || n == 0) return eva_fail(EVA_ERR_INVALID_ARG, "attention paths: NULL argument");
    if (impl == EVA_IMPL_REF) {
        snprintf(buf, n, "image and text: fp32 SGEMM per (batch, head) for scores and P.V, double row sums");
        return EVA_OK;
    }
#ifdef EVA_HAVE_CUDA
    return eva_cuda_attention_paths(cfg, p, buf, n);
#else
    return eva_fail(EVA_ERR_UNSUPPORTED, "--impl cuda: this build has no CUDA (nvcc was not found at build time)");
#endif
}

eva_status eva_backend_select(eva_impl *impl, eva_precision *p, const char *impl_s, const char *prec_s) {
    eva_status st = eva_impl_parse(impl, impl_s ? impl_s : "ref");
    if (st == EVA_OK) st = eva_precision_parse(p, prec_s ? prec_s : "fp32");
    if (st == EVA_OK) st = eva_backend_check(*impl, *p);
    return st;
}

eva_status eva_backend_open_impl(eva_backend *b, eva_impl impl, eva_precision p, const eva_model *m, int max_batch) {
    memset(b, 0, sizeof *b);
    eva_status st = eva_backend_check(impl, p);
    if (st != EVA_OK) return st;
    return eva_backend_open(b, eva_backend_ops_for(impl), impl, p, m, max_batch);
}

eva_status eva_resolve_config(eva_config *cfg, const char **source, const char *config_path, const char *variant,
                              const char *fallback_json, const char *fallback_source, const char *weights_path) {
    memset(cfg, 0, sizeof *cfg);
    if (config_path && variant)
        return eva_fail(EVA_ERR_INVALID_ARG, "--config and --variant both given: pass one of them");
    if (config_path) {
        *source = "--config";
        return eva_config_load(cfg, config_path);
    }
    if (variant) {
        *source = "--variant";
        return eva_config_find(cfg, variant);
    }
    if (fallback_json) {
        *source = fallback_source;
        return eva_config_from_json(cfg, fallback_json, fallback_source);
    }
    if (weights_path) {
        /* metadata, open_clip_config.json beside it, or the tensor shapes (eva_checkpoint.h) */
        *source = "weights";
        eva_status st = eva_checkpoint_config(cfg, weights_path, source);
        if (!*source) *source = "weights";
        return st;
    }
    return eva_fail(EVA_ERR_INVALID_ARG, "no config: pass --variant NAME or --config C.json");
}
