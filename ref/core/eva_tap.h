/* eva_tap.h: the activation capture hook and the list of tap names.
 *
 * Implementations ask first (wants) and then hand over (take) the output of each module named in
 * docs/formats.md ("Golden activations"), batch-first float32, only when wanted: a CUDA build copies
 * a tap back to the host only when asked. eva_tap_names() lists the taps a config produces in
 * forward order (image tower, text tower, then image_features, text_features, logits_per_image);
 * verify uses it to reject unknown tap names and to name the first failing tap.
 */
#ifndef EVA_TAP_H
#define EVA_TAP_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_config.h"

typedef struct eva_tap {
    bool (*wants)(void *ctx, const char *name);
    /* data: batch-first float32 with `ndim` dims of `shape`; valid only during the call. */
    void (*take)(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape);
    void *ctx;
} eva_tap;

static inline bool eva_tap_wants(const eva_tap *tap, const char *name) {
    return tap && tap->wants && tap->wants(tap->ctx, name);
}

/* Calls take if wanted. */
void eva_tap_emit(const eva_tap *tap, const char *name, const float *data, int ndim, const int64_t *shape);

#define EVA_TAP_NAME_MAX 80

typedef enum { EVA_TAPS_IMAGE = 1, EVA_TAPS_TEXT = 2, EVA_TAPS_OUTPUTS = 4, EVA_TAPS_ALL = 7 } eva_tap_set;

/* Number of taps of `cfg` in the given set; if names != NULL fills names[i] (EVA_TAP_NAME_MAX
 * chars each) in forward order. */
int eva_tap_names(const eva_config *cfg, eva_tap_set set, char (*names)[EVA_TAP_NAME_MAX], int max_names);
/* Expected shape of a tap for B images and T texts; returns ndim, or -1 if the name is unknown. */
int eva_tap_shape(const eva_config *cfg, const char *name, int64_t B, int64_t T, int64_t shape[4]);

#endif
