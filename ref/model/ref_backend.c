/* ref_backend.c: the plain-C reference behind the core's backend interface (eva_backend.h).
 * A thin adapter: the state is the model itself; the reference runs fp32 only. */
#include "eva_backend.h"
#include "ref_model.h"

static eva_status ref_create(void **state, const eva_model *m, eva_precision p, int max_batch) {
    (void)max_batch; /* the reference sizes its workspace per call */
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

static const eva_backend_ops ref_ops = {
    .name = "ref",
    .create = ref_create,
    .encode_image = ref_image,
    .encode_text = ref_text,
    .destroy = ref_destroy,
    .describe = ref_describe,
};

const eva_backend_ops *eva_ref_backend_ops(void) { return &ref_ops; }
