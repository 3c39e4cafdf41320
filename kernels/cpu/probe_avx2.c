/* probe_avx2.c - the compute probes of pagoda bench's bounds: the peak rate
 * of the inner operation of the AVX2 kernels, one thread, in registers (no
 * loads or stores in the loop, so only the execution units limit it).
 *  - f32: _mm256_fmadd_ps on 12 independent accumulators (enough to cover
 *    the FMA latency on two pipes): 16 flops per instruction.
 *  - int8: the quantized kernels' dot product of one block of 32 int8
 *    pairs: _mm256_sign_epi8 (the sign trick: |w| times x with w's sign),
 *    _mm256_maddubs_epi16, _mm256_madd_epi16 with ones, _mm256_cvtepi32_ps
 *    and one _mm256_fmadd_ps with the blocks' scales, on 5 independent
 *    chains (all in registers): 32 multiply-adds per sequence. A kernel does at least this per
 *    32 multiply-adds (plus loads and scale arithmetic), so its rate can
 *    only be lower.
 *  - int16: the batched quantized GEMM's vpmaddwd + vpaddd (16
 *    multiply-adds), on 8 independent chains; that kernel adds loads and a
 *    scale FMA per 256 values, so it too can only be slower.
 *  - maddubs: q4_0's batched GEMM, vpmaddubsw + vpaddw (32 multiply-adds). */
#include <immintrin.h>

#include "fast_impl.h"

/* Each chain in its own variable (an array would live on the stack, and
 * store-forwarding would set the pace); the empty asm keeps the compiler
 * from hoisting or merging the chains. */
double pgd_avx2_probe_fma(long iters) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
    __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
    __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long it = 0; it < iters; it++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c), a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
        __asm__ volatile(""
                         : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
                           "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)iters * 12 * 16 + (f[0] == 1234.5f); /* flops; the sum keeps the chains live */
}

#define DOT(x, acc)        \
    acc = _mm256_fmadd_ps( \
        sc, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x, w)), ones)), acc)

/* The batched quantized GEMMs' inner operation (matmul_qgemm_avx2.c), MUL
 * ("vpmaddwd": 16 multiply-adds of int16 pairs, added in int32 by ADD,
 * "vpaddd"; "vpmaddubsw": 32 of unsigned x signed bytes, added in int16 by
 * "vpaddw"), on 8 independent chains; the kernels add loads, a widening
 * and a scale FMA per 256 values, so they can only be slower. In assembly,
 * as the kernels' loops are: GCC merges the repeated products of C
 * intrinsics and spills an accumulator here. */
#define PROBE_MUL_ADD(NAME, MUL, ADD, MACS)                                                                           \
    double NAME(long iters) {                                                                                         \
        __m256i w = _mm256_set1_epi8(-7), x0 = _mm256_set1_epi16(1), x1 = _mm256_set1_epi16(2);                       \
        __m256i x2 = _mm256_set1_epi16(3), x3 = _mm256_set1_epi16(4), p;                                              \
        __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;           \
        for (long it = 0; it < iters; it++)                                                                           \
            __asm__ volatile(MUL                                                                                      \
                             " %[x0], %[w], %[p]\n\t" ADD " %[p], %[c0], %[c0]\n\t" MUL " %[x1], %[w], %[p]\n\t" ADD  \
                             " %[p], %[c1], %[c1]\n\t" MUL " %[x2], %[w], %[p]\n\t" ADD " %[p], %[c2], %[c2]\n\t" MUL \
                             " %[x3], %[w], %[p]\n\t" ADD " %[p], %[c3], %[c3]\n\t" MUL " %[x0], %[w], %[p]\n\t" ADD  \
                             " %[p], %[c4], %[c4]\n\t" MUL " %[x1], %[w], %[p]\n\t" ADD " %[p], %[c5], %[c5]\n\t" MUL \
                             " %[x2], %[w], %[p]\n\t" ADD " %[p], %[c6], %[c6]\n\t" MUL " %[x3], %[w], %[p]\n\t" ADD  \
                             " %[p], %[c7], %[c7]"                                                                    \
                             : [c0] "+x"(c0), [c1] "+x"(c1), [c2] "+x"(c2), [c3] "+x"(c3), [c4] "+x"(c4),             \
                               [c5] "+x"(c5), [c6] "+x"(c6), [c7] "+x"(c7), [p] "=&x"(p)                              \
                             : [w] "x"(w), [x0] "x"(x0), [x1] "x"(x1), [x2] "x"(x2), [x3] "x"(x3));                   \
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),            \
                                     _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));           \
        return (double)iters * 8 * (MACS) + (_mm256_extract_epi32(s, 0) == 12345); /* multiply-adds */                \
    }

PROBE_MUL_ADD(pgd_avx2_probe_madd16, "vpmaddwd", "vpaddd", 16)
PROBE_MUL_ADD(pgd_avx2_probe_maddubs, "vpmaddubsw", "vpaddw", 32)

double pgd_avx2_probe_int8(long iters) {
    __m256i w = _mm256_set1_epi8(-37), ones = _mm256_set1_epi16(1);
    __m256i x0 = _mm256_set1_epi8(1), x1 = _mm256_set1_epi8(14), x2 = _mm256_set1_epi8(27);
    __m256i x3 = _mm256_set1_epi8(40), x4 = _mm256_set1_epi8(53);
    __m256 sc = _mm256_set1_ps(1e-6f), c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0;
    __m256i wabs = _mm256_sign_epi8(w, w);
    for (long it = 0; it < iters; it++) {
        DOT(x0, c0);
        DOT(x1, c1);
        DOT(x2, c2);
        DOT(x3, c3);
        DOT(x4, c4);
        __asm__ volatile(""
                         : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(x3), "+x"(x4), "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3),
                           "+x"(c4));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)), c4);
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)iters * 5 * 32 + (f[0] == 1234.5f); /* multiply-adds */
}
