/* tapdump.h: writing an implementation's activations as a golden (`evabench encode --taps`).
 *
 * Owns: the eva_tap that writes every tap it is handed to /acts/<tap> of an output file, batch by
 * batch (rows [offset, offset + n) of a dataset sized for the whole run), and the golden header
 * (/inputs and the root attributes schema, config, weights, generator, impl, precision,
 * compute_dtype), so the
 * file is a golden that verify and compare read. Does not own running the model (the backend) or
 * the file format (golden.h).
 */
#ifndef EVA_TAPDUMP_H
#define EVA_TAPDUMP_H

#include "eva_config.h"
#include "eva_tap.h"
#include "golden.h"

typedef struct {
    eva_h5out *out;
    int64_t offset;  /* first row of the batch being run */
    int64_t total;   /* rows of the whole run (B images or T texts) */
    eva_status err;  /* first write failure (later taps are then not wanted) */
} eva_tapdump;

/* The tap: wants every tap while no write failed; take writes /acts/<name> rows. */
eva_tap eva_tapdump_tap(eva_tapdump *d);

/* Writes /inputs (pixel_values float32, input_ids int64; the parts present) and the root
 * attributes: schema evabench-golden/1, config (JSON), weights, generator, impl, precision and
 * compute_dtype "float32" (the file as a golden was computed in float32, not float64). */
eva_status eva_tapdump_header(eva_h5out *out, const eva_config *cfg, const eva_inputs *in, const char *weights,
                              const char *generator, const char *impl, const char *precision);

/* Writes the outputs under /acts: image_features and image_embeds [B,E] when B > 0,
 * text_features and text_embeds [T,E] when T > 0, logits_per_image [B,T] when logits != NULL. */
eva_status eva_tapdump_outputs(eva_h5out *out, const float *fi, const float *ei, int64_t B, const float *ft,
                               const float *et, int64_t T, int64_t E, const float *logits);

#endif
