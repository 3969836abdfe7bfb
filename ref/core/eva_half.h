/* eva_half.h: exact conversions between IEEE binary16 (F16), bfloat16 (BF16) and fp32.
 *
 * Widening (16 -> 32 bits) is exact for every input: subnormals are normalised, -0, +-inf keep
 * their sign, NaNs stay NaN with their payload in the top mantissa bits. Narrowing (32 -> 16,
 * used by the safetensors writer and by tests) rounds to nearest, ties to even, overflows to inf
 * and keeps NaN a NaN (quiet). Header-only, static inline, no libm, valid C11 and C++ so CUDA
 * host code can include it. This file owns no memory and knows nothing of files.
 *
 * It also names the dtypes weights are held in (eva_dtype: a tensor stays in its file's dtype,
 * 2 bytes per value for F16/BF16) with a typed pointer to such a tensor (eva_wmat) and the
 * widening of a run of stored values to fp32 (eva_widen), which the GEMM's weight packing, the
 * embedding lookup and the CUDA upload use.
 */
#ifndef EVA_HALF_H
#define EVA_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline float eva_bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t eva_f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
static inline float eva_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (uint32_t)(h >> 10) & 0x1fu;
    uint32_t man = (uint32_t)h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {                      /* inf / NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {                   /* normal: rebias 15 -> 127 */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {                   /* +-0 */
        bits = sign;
    } else {                                 /* subnormal man * 2^-24: normalise */
        uint32_t e = 113u;                   /* fp32 exponent field of 2^-14 */
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return eva_bits_to_f32(bits);
}

/* bfloat16 is the top half of an fp32. */
static inline float eva_bf16_to_f32(uint16_t b) { return eva_bits_to_f32((uint32_t)b << 16); }

/* Round to nearest even; |x| >= 65520 -> inf; NaN -> quiet NaN with the top payload bits. */
static inline uint16_t eva_f32_to_f16(float f) {
    uint32_t x = eva_f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (ax < 0x38800000u) {                                    /* below 2^-14: subnormal */
        if (ax <= 0x33000000u) return sign;                    /* <= 2^-25 (tie) -> 0 */
        uint32_t e = ax >> 23;                                 /* 102..112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e;                             /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax - 0x38000000u;                             /* exponent 127 -> 15 bias */
    uint32_t q = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* Round to nearest even; NaN -> quiet NaN. */
static inline uint16_t eva_f32_to_bf16(float f) {
    uint32_t x = eva_f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ---- weights held in their stored dtype -------------------------------------------------------- */

/* The numbering matches eva_st_dtype's F32, F16 and BF16. */
typedef enum { EVA_DT_F32 = 0, EVA_DT_F16 = 1, EVA_DT_BF16 = 2 } eva_dtype;

static inline size_t eva_dtype_size(eva_dtype dt) { return dt == EVA_DT_F32 ? 4 : 2; }
static inline const char *eva_dtype_name(eva_dtype dt) {
    return dt == EVA_DT_F32 ? "F32" : dt == EVA_DT_F16 ? "F16" : "BF16";
}

/* A weight tensor in its stored dtype (little-endian values, row-major); never owns memory. */
typedef struct {
    const void *data;
    eva_dtype dtype;
} eva_wmat;

/* The same as eva_f16_to_f32, without branches (a loop of it vectorises): normals rebias the
 * exponent by adding (127 - 15) << 23 to the shifted bits, subnormals are their integer mantissa
 * times 2^-24 (exact, and no subnormal fp32 operand anywhere), inf and NaN get the fp32 exponent. */
static inline float eva_f16_to_f32_flat(uint16_t h) {
    uint32_t em = (uint32_t)h & 0x7fffu;
    uint32_t normal = (em << 13) + 0x38000000u;
    uint32_t sub = eva_f32_to_bits((float)em * 5.9604644775390625e-08f); /* 2^-24 */
    uint32_t special = 0x7f800000u | (em << 13);
    uint32_t bits = em < 0x400u ? sub : em >= 0x7c00u ? special : normal;
    return eva_bits_to_f32(bits | ((uint32_t)(h & 0x8000u) << 16));
}

/* dst[0..n) = src[first .. first + n) of a tensor stored as dt, widened exactly to fp32. */
static inline void eva_widen(float *dst, const void *src, eva_dtype dt, size_t first, size_t n) {
    if (dt == EVA_DT_F32) {
        memcpy(dst, (const float *)src + first, n * sizeof(float));
    } else if (dt == EVA_DT_BF16) {
        const uint16_t *s = (const uint16_t *)src + first;
        for (size_t k = 0; k < n; k++) dst[k] = eva_bits_to_f32((uint32_t)s[k] << 16);
    } else {
        const uint16_t *s = (const uint16_t *)src + first;
        for (size_t k = 0; k < n; k++) dst[k] = eva_f16_to_f32_flat(s[k]);
    }
}

#endif
