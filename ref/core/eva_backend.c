/* eva_backend.c: the thin calls over an implementation's table (eva_backend.h). */
#include "eva_backend.h"

#include <string.h>

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

eva_status eva_backend_open(eva_backend *b, const eva_backend_ops *ops, eva_impl impl, eva_precision p,
                            const eva_model *m, int max_batch) {
    memset(b, 0, sizeof *b);
    if (!ops) return eva_fail(EVA_ERR_NO_DEVICE, "--impl %s: no implementation available", eva_impl_name(impl));
    eva_status st = ops->create(&b->state, m, p, max_batch);
    if (st != EVA_OK) {
        b->state = NULL;
        return st;
    }
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

int64_t eva_backend_peak_device_bytes(const eva_backend *b) {
    if (!b->ops || !b->ops->peak_device_bytes) return -1;
    return b->ops->peak_device_bytes(b->state);
}

void eva_backend_close(eva_backend *b) {
    if (!b) return;
    if (b->ops && b->ops->destroy) b->ops->destroy(b->state);
    memset(b, 0, sizeof *b);
}
