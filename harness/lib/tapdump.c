/* tapdump.c: the tap that writes activations into the golden layout. See tapdump.h. */
#include "tapdump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool dump_wants(void *ctx, const char *name) {
    (void)name;
    return ((eva_tapdump *)ctx)->err == EVA_OK;
}

static void dump_take(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    eva_tapdump *d = ctx;
    if (d->err != EVA_OK) return;
    char dname[EVA_TAP_NAME_MAX + 8];
    snprintf(dname, sizeof dname, "acts/%s", name);
    d->err = eva_h5out_write_rows(d->out, dname, data, ndim, shape, d->offset, d->total);
}

eva_tap eva_tapdump_tap(eva_tapdump *d) {
    eva_tap t = {dump_wants, dump_take, d};
    return t;
}

eva_status eva_tapdump_header(eva_h5out *out, const eva_config *cfg, const eva_inputs *in, const char *weights,
                              const char *generator, const char *impl, const char *precision) {
    eva_status st = EVA_OK;
    if (in->pixels) st = eva_h5out_write(out, "inputs/pixel_values", in->pixels, 4, in->pix_shape);
    if (st == EVA_OK && in->ids)
        st = eva_h5out_write_ids(out, "inputs/input_ids", in->ids, in->ids_shape[0], in->ids_shape[1]);
    char *cj = eva_config_to_json(cfg, false);
    if (st == EVA_OK && !cj) st = eva_fail(EVA_ERR_NOMEM, "%s: cannot format the config", out->path);
    if (st == EVA_OK) st = eva_h5out_attr(out, "schema", EVA_GOLDEN_SCHEMA);
    if (st == EVA_OK) st = eva_h5out_attr(out, "config", cj);
    if (st == EVA_OK) st = eva_h5out_attr(out, "weights", weights);
    if (st == EVA_OK) st = eva_h5out_attr(out, "generator", generator);
    if (st == EVA_OK) st = eva_h5out_attr(out, "impl", impl);
    if (st == EVA_OK) st = eva_h5out_attr(out, "precision", precision);
    /* evabench computes in float32 at best: as a golden, judged with the float32-golden rows */
    if (st == EVA_OK) st = eva_h5out_attr(out, "compute_dtype", "float32");
    free(cj);
    return st;
}

eva_status eva_tapdump_outputs(eva_h5out *out, const float *fi, const float *ei, int64_t B, const float *ft,
                               const float *et, int64_t T, int64_t E, const float *logits) {
    eva_status st = EVA_OK;
    int64_t sh[2] = {B, E};
    if (B > 0) {
        st = eva_h5out_write(out, "acts/image_features", fi, 2, sh);
        if (st == EVA_OK) st = eva_h5out_write(out, "acts/image_embeds", ei, 2, sh);
    }
    sh[0] = T;
    if (st == EVA_OK && T > 0) {
        st = eva_h5out_write(out, "acts/text_features", ft, 2, sh);
        if (st == EVA_OK) st = eva_h5out_write(out, "acts/text_embeds", et, 2, sh);
    }
    sh[0] = B;
    sh[1] = T;
    if (st == EVA_OK && logits) st = eva_h5out_write(out, "acts/logits_per_image", logits, 2, sh);
    return st;
}
