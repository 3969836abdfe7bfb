/* backend.c: --impl / --precision and the dispatch to the reference or the CUDA twin. */
#include "backend.h"

#include <string.h>

#include "ref_model.h"

#if defined(EVA_HAVE_CUDA) && defined(__has_include)
#if __has_include("eva_cuda.h")
#include "eva_cuda.h"
#define EVA_BACKEND_HAS_CUDA_API 1
#endif
#endif

static const char *const impl_names[] = {"ref", "cuda"};

eva_status eva_impl_parse(eva_impl *out, const char *s) {
    for (int i = 0; i < 2; i++)
        if (s && !strcmp(s, impl_names[i])) {
            *out = (eva_impl)i;
            return EVA_OK;
        }
    return eva_fail(EVA_ERR_INVALID_ARG, "--impl '%s': expected ref or cuda", s ? s : "");
}

const char *eva_impl_name(eva_impl i) { return (unsigned)i < 2 ? impl_names[i] : "?"; }

/* ---- the reference behind the interface ---------------------------------------------------- */

static eva_status ref_create(void **state, const eva_model *m, eva_precision p) {
    if (p != EVA_PREC_FP32)
        return eva_fail(EVA_ERR_UNSUPPORTED, "--precision %s: the reference runs fp32 only", eva_precision_name(p));
    *state = (void *)m;
    return EVA_OK;
}
static eva_status ref_image(void *state, float *features, const float *pixels, int B, const eva_tap *tap) {
    return eva_ref_encode_image(features, pixels, B, (const eva_model *)state, tap);
}
static eva_status ref_text(void *state, float *features, const int32_t *ids, int T, const eva_tap *tap) {
    return eva_ref_encode_text(features, ids, T, (const eva_model *)state, tap);
}
static void ref_destroy(void *state) { (void)state; }
static const char *ref_describe(void *state) {
    (void)state;
#ifdef EVA_HAVE_OPENMP
    return "plain-C reference, fp32 storage, double accumulation, OpenMP";
#else
    return "plain-C reference, fp32 storage, double accumulation";
#endif
}

static const eva_backend_ops ref_ops = {"ref", ref_create, ref_image, ref_text, ref_destroy, ref_describe, NULL, NULL};
const eva_backend_ops *eva_ref_backend_ops(void) { return &ref_ops; }

/* ---- dispatch ------------------------------------------------------------------------------ */

eva_status eva_backend_check(eva_impl impl, eva_precision p) {
    if (impl == EVA_IMPL_REF) {
        if (p != EVA_PREC_FP32)
            return eva_fail(EVA_ERR_UNSUPPORTED, "--precision %s: the reference runs fp32 only (use --impl cuda)",
                            eva_precision_name(p));
        return EVA_OK;
    }
#if !defined(EVA_HAVE_CUDA)
    return eva_fail(EVA_ERR_UNSUPPORTED, "--impl cuda: this build has no CUDA (nvcc was not found at build time)");
#elif !defined(EVA_BACKEND_HAS_CUDA_API)
    return eva_fail(EVA_ERR_NO_DEVICE, "--impl cuda: no CUDA device is available (the CUDA twin is not built yet)");
#else
    return EVA_OK;
#endif
}

eva_status eva_backend_select(eva_impl *impl, eva_precision *p, const char *impl_s, const char *prec_s) {
    eva_status st = eva_impl_parse(impl, impl_s ? impl_s : "ref");
    if (st == EVA_OK) st = eva_precision_parse(p, prec_s ? prec_s : "fp32");
    if (st == EVA_OK) st = eva_backend_check(*impl, *p);
    return st;
}

eva_status eva_backend_open(eva_backend *b, eva_impl impl, eva_precision p, const eva_model *m) {
    memset(b, 0, sizeof *b);
    eva_status st = eva_backend_check(impl, p);
    if (st != EVA_OK) return st;
    const eva_backend_ops *ops = &ref_ops;
#if defined(EVA_BACKEND_HAS_CUDA_API)
    if (impl == EVA_IMPL_CUDA) ops = eva_cuda_backend_ops();
#endif
    if (!ops) return eva_fail(EVA_ERR_NO_DEVICE, "--impl %s: no implementation available", eva_impl_name(impl));
    st = ops->create(&b->state, m, p);
    if (st != EVA_OK) return st;
    b->ops = ops;
    b->impl = impl;
    b->precision = p;
    b->model = m;
    return EVA_OK;
}

eva_status eva_backend_encode_image(eva_backend *b, float *features, const float *pixels, int B, const eva_tap *tap) {
    if (!b->ops) return eva_fail(EVA_ERR_INTERNAL, "backend not open");
    return b->ops->encode_image(b->state, features, pixels, B, tap);
}

eva_status eva_backend_encode_text(eva_backend *b, float *features, const int32_t *ids, int T, const eva_tap *tap) {
    if (!b->ops) return eva_fail(EVA_ERR_INTERNAL, "backend not open");
    return b->ops->encode_text(b->state, features, ids, T, tap);
}

const char *eva_backend_describe(const eva_backend *b) {
    if (!b->ops || !b->ops->describe) return "";
    const char *d = b->ops->describe(b->state);
    return d ? d : "";
}

void eva_backend_close(eva_backend *b) {
    if (!b) return;
    if (b->ops && b->ops->destroy) b->ops->destroy(b->state);
    memset(b, 0, sizeof *b);
}

/* ---- config resolution --------------------------------------------------------------------- */

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
        *source = "weights metadata";
        return eva_model_config_from_weights(cfg, weights_path);
    }
    return eva_fail(EVA_ERR_INVALID_ARG, "no config: pass --variant NAME or --config C.json");
}
