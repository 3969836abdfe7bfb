/* ref_backend.c: the plain-C reference behind the core's backend interface (eva_backend.h).
 * A thin adapter: the state is the model and its reusable activation workspace; the reference
 * runs fp32 only. */
#include <stdlib.h>

#include "eva_backend.h"
#include "ref_model.h"

/* The state: the model and its activation workspace, allocated by the first forward, grown to
 * the largest batch, reused by every later forward of either tower. */
typedef struct {
    const eva_model *m;
    eva_ref_workspace ws;
} ref_state;

static eva_status ref_create(void **state, const eva_model *m, eva_precision p, int max_batch) {
    (void)max_batch; /* the workspace grows to the largest batch run */
    if (p != EVA_PREC_FP32)
        return eva_fail(EVA_ERR_UNSUPPORTED, "--precision %s: the reference runs fp32 only", eva_precision_name(p));
    ref_state *r = calloc(1, sizeof *r);
    if (!r) return eva_fail(EVA_ERR_NOMEM, "reference: out of memory");
    r->m = m;
    *state = r;
    return EVA_OK;
}

static eva_status ref_image(void *state, float *features, const float *pixels, int B, const eva_tap *tap) {
    ref_state *r = state;
    return eva_ref_encode_image_ws(&r->ws, features, pixels, B, r->m, tap);
}

static eva_status ref_text(void *state, float *features, const int32_t *ids, int T, const eva_tap *tap) {
    ref_state *r = state;
    return eva_ref_encode_text_ws(&r->ws, features, ids, T, r->m, tap);
}

static void ref_destroy(void *state) {
    ref_state *r = state;
    if (!r) return;
    eva_ref_workspace_free(&r->ws);
    free(r);
}

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
