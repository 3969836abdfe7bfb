/* check_my_layernorm.c: how a user checks their own kernel against the installed reference.
 * "my_layernorm" stands for the user's kernel (here a naive single-pass float version); the
 * reference is eva_ref_layernorm from evaref. Exit 0 when they agree within 1e-5, 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eva_config.h"
#include "ref_ops.h"

/* y [M,C] <- LayerNorm of x [M,C] with weight w [C], bias b [C]: the kernel under test. */
static void my_layernorm(float *y, const float *x, const float *w, const float *b, int M, int C, float eps) {
    for (int m = 0; m < M; m++) {
        const float *r = x + (size_t)m * C;
        float mean = 0, sq = 0;
        for (int c = 0; c < C; c++) mean += r[c];
        mean /= (float)C;
        for (int c = 0; c < C; c++) sq += (r[c] - mean) * (r[c] - mean);
        float inv = 1.0f / sqrtf(sq / (float)C + eps);
        for (int c = 0; c < C; c++) y[(size_t)m * C + c] = (r[c] - mean) * inv * w[c] + b[c];
    }
}

int main(void) {
    enum { M = 197, C = 768 };
    float *x = malloc(sizeof(float) * M * C), *w = malloc(sizeof(float) * C), *b = malloc(sizeof(float) * C);
    float *ref = malloc(sizeof(float) * M * C), *mine = malloc(sizeof(float) * M * C);
    if (!x || !w || !b || !ref || !mine) return 2;
    unsigned s = 12345;
    for (int i = 0; i < M * C; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) * 4 - 2;
    for (int c = 0; c < C; c++) w[c] = 0.5f + (float)c / C, b[c] = (float)(c % 7) / 10;
    eva_ref_layernorm(ref, x, w, b, M, C, 1e-6);
    my_layernorm(mine, x, w, b, M, C, 1e-6f);
    double worst = 0;
    for (int i = 0; i < M * C; i++) worst = fmax(worst, fabs((double)ref[i] - mine[i]));
    printf("my_layernorm vs eva_ref_layernorm [%d,%d]: max abs error %.3g (%s precision %s)\n", M, C, worst,
           "reference", eva_precision_name(EVA_PREC_FP32));
    free(x), free(w), free(b), free(ref), free(mine);
    return worst <= 1e-5 ? 0 : 1;
}
