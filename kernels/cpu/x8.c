/* x8.c - the CPU backend's layouts for q8_0 and q4_0 weight matrices,
 * "q8_0x8" and "q4_0x8".
 *
 * A q8_0 / q4_0 row is a sequence of blocks {f16 d; q} (34 / 18 bytes). The
 * AVX2 decode kernels on that layout spent their time on the horizontal
 * work around the multiply-adds, not on them: each block's 8 int32 partial
 * sums reduced to one (hadd trees), each block's f16 scale inserted into a
 * vector. In the x8 layouts every 8 consecutive blocks of a row (a group,
 * 256 values; 272 / 144 bytes, the same bytes as before) are stored as
 *     d[8]      the eight f16 scales, block j at 2 j             (16 bytes)
 *     then chunk k of block j's quant bytes at 16 + 32 k + 4 j:
 *       q8_0x8: k < 8, the int8 values 4k..4k+3
 *       q4_0x8: k < 4, bytes 4k..4k+3 of q[16]: values 4k..4k+3 in the low
 *               nibbles, 16+4k..16+4k+3 in the high ones
 * so one 32-byte load of chunk k holds four values (q4_0: eight) of each
 * of the 8 blocks, one block per 32-bit lane: multiply-adds on it leave
 * block j's partial sum in lane j, the chunks add up with vpaddd/vpaddw (the
 * cheap pipes), and a group ends with the 8 block sums in one register,
 * scaled by the 8 scales of one 16-byte load in one FMA.
 *
 * The CPU backend rearranges a matrix in place when the model offers it
 * (the "prepare_weight" control request) and the row length is a multiple
 * of 256 (whole groups: rows stay independent); q8_0 only when no weight is
 * -128, since the AVX2 kernel gives w the sign of x (vpsignb) and -128 has
 * no int8 negation (llama.cpp's and Pagoda's quantizers write -127..127).
 * Everything else about the matrix stays as it was: bytes, rows, offsets of
 * whole rows. These functions are portable C: the layout change and the
 * exact f32 values of a row, for the scalar paths and the embedding. */
#include <string.h>

#include "kernels.h"

#define QB PGD_QBLOCK
#define GB 8 /* blocks a group */

int pgd_cpu_x8_fits(int in) { return in > 0 && in % (GB * QB) == 0; }

/* Quant bytes per block: 32 (q8_0), 16 (q4_0). */
static size_t qbytes(pgd_dtype wt) { return wt == PGD_Q8_0 ? QB : QB / 2; }

int pgd_cpu_x8_pack(void *w, pgd_dtype wt, size_t rows, int in) {
    if ((wt != PGD_Q8_0 && wt != PGD_Q4_0) || !pgd_cpu_x8_fits(in)) return 0;
    size_t groups = rows * (size_t)(in / (GB * QB)), bsz = 2 + qbytes(wt), gbytes = GB * bsz;
    if (wt == PGD_Q8_0) { /* refuse -128 before changing anything */
        const char *p = w;
        for (size_t i = 0; i < groups * GB; i++, p += bsz)
            for (int k = 0; k < QB; k++)
                if ((int8_t)p[2 + k] == -128) return 0;
    }
    char *g = w, b[GB * (2 + QB)];
    for (size_t i = 0; i < groups; i++, g += gbytes) {
        memcpy(b, g, gbytes);
        for (int j = 0; j < GB; j++) {
            memcpy(g + 2 * j, b + j * bsz, 2);
            for (size_t k = 0; k < qbytes(wt) / 4; k++) memcpy(g + 16 + 32 * k + 4 * j, b + j * bsz + 2 + 4 * k, 4);
        }
    }
    return 1;
}

void pgd_cpu_x8_row_to_f32(float *dst, const void *row, pgd_dtype wt, int in) {
    const char *g = row;
    size_t gbytes = GB * (2 + qbytes(wt));
    for (int gi = 0; gi < in / (GB * QB); gi++, g += gbytes, dst += GB * QB)
        for (int j = 0; j < GB; j++) {
            uint16_t h;
            memcpy(&h, g + 2 * j, 2);
            float d = pgd_f16_to_f32(h);
            for (int v = 0; v < QB; v++) {
                int q;
                if (wt == PGD_Q8_0) {
                    q = (int8_t)g[16 + 32 * (v / 4) + 4 * j + v % 4];
                } else { /* value v: byte v % 16 of the block, low nibble below 16, high above */
                    uint8_t byte = (uint8_t)g[16 + 32 * ((v % 16) / 4) + 4 * j + v % 4];
                    q = (v < 16 ? byte & 15 : byte >> 4) - 8;
                }
                dst[j * QB + v] = d * (float)q;
            }
        }
}
