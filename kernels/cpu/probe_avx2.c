/* probe_avx2.c - the compute probes of pagoda bench's bounds: the peak rate
 * of the inner operation of the AVX2 kernels, one thread, in registers (no
 * loads or stores in the loop, so only the execution units limit it).
 *  - f32: _mm256_fmadd_ps on 12 independent accumulators (enough to cover
 *    the FMA latency on two pipes): 16 flops per instruction.
 *  - int8: the quantized kernels' dot product of one block of 32 int8
 *    pairs: _mm256_sign_epi8 (the sign trick: |w| times x with w's sign),
 *    _mm256_maddubs_epi16, _mm256_madd_epi16 with ones, _mm256_cvtepi32_ps
 *    and one _mm256_fmadd_ps with the blocks' scales, on 6 independent
 *    chains: 32 multiply-adds per sequence. A kernel does at least this per
 *    32 multiply-adds (plus loads and scale arithmetic), so its rate can
 *    only be lower. */
#include <immintrin.h>

#include "fast_impl.h"

double pgd_avx2_probe_fma(long iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
        __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]));
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)iters * 12 * 16 + (f[0] == 1234.5f); /* flops; the sum keeps the chains live */
}

double pgd_avx2_probe_int8(long iters) {
    __m256i w = _mm256_set1_epi8(-37), ones = _mm256_set1_epi16(1), x[6];
    __m256 acc[6], sc = _mm256_set1_ps(1e-6f);
    for (int i = 0; i < 6; i++) x[i] = _mm256_set1_epi8((char)(i * 13 + 1)), acc[i] = _mm256_setzero_ps();
    __m256i wabs = _mm256_sign_epi8(w, w);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256i p16 = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x[i], w));
            acc[i] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)), acc[i]);
        }
        __asm__ volatile("" : "+x"(x[0]), "+x"(x[1]), "+x"(x[2]), "+x"(x[3]), "+x"(x[4]), "+x"(x[5]));
    }
    __m256 s = acc[0];
    for (int i = 1; i < 6; i++) s = _mm256_add_ps(s, acc[i]);
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)iters * 6 * 32 + (f[0] == 1234.5f); /* multiply-adds */
}
