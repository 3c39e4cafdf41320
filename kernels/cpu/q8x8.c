/* q8x8.c - the CPU backend's layout for q8_0 weight matrices: "q8_0x8".
 *
 * A q8_0 row is a sequence of 34-byte blocks {f16 d; int8 q[32]}. The
 * decode kernel's cost on AVX2 was not the multiply-adds but the horizontal
 * work around them: each block's 8 int32 partial sums had to be reduced to
 * one (hadd trees) and each block's f16 scale inserted into a vector. In
 * q8_0x8 every 8 consecutive blocks of a row (a group, 256 values, 272
 * bytes: the same bytes as before) are stored as
 *     d[8]        the eight f16 scales, block j at 2 j         (16 bytes)
 *     q[8][8][4]  chunk k (values 4k..4k+3) of block j at 16 + 32 k + 4 j
 * so one 32-byte load of chunk k holds four values of each of the 8 blocks,
 * one in each 32-bit lane: vpmaddubsw + vpmaddwd on it leave block j's
 * partial sum in lane j, the 8 chunks add up with vpaddd (the cheap pipes),
 * and the group ends with the 8 block sums in one register, scaled by the 8
 * scales of one 16-byte load in one FMA. No reduction, no inserts.
 *
 * The CPU backend rearranges a q8_0 matrix in place when the model offers
 * it (the "prepare_weight" control request) and the row length is a
 * multiple of 256 (whole groups: rows stay independent), and only when no
 * weight is -128: the AVX2 kernels give w the sign of x (vpsignb), and
 * -128 has no int8 negation (llama.cpp's and Pagoda's quantizers write
 * -127..127; a file that has -128 keeps the plain layout). Everything else about the matrix stays q8_0: bytes,
 * rows, offsets of whole rows. These functions are portable C: the layout
 * change and the exact f32 values of a row, for the scalar paths and the
 * embedding lookup. */
#include <string.h>

#include "kernels.h"

#define QB PGD_QBLOCK
#define GB 8                                      /* blocks a group */
#define GROUP_BYTES (GB * sizeof(pgd_block_q8_0)) /* 272 */

int pgd_cpu_q8x8_fits(int in) { return in > 0 && in % (GB * QB) == 0; }

int pgd_cpu_q8x8_pack(void *w, size_t rows, int in) {
    if (!pgd_cpu_q8x8_fits(in)) return 0;
    size_t groups = rows * (size_t)(in / (GB * QB));
    const char *p = w;
    for (size_t i = 0; i < groups * GB; i++, p += sizeof(pgd_block_q8_0)) { /* refuse -128 before changing anything */
        const int8_t *q = (const int8_t *)(p + 2);
        for (int k = 0; k < QB; k++)
            if (q[k] == -128) return 0;
    }
    char *g = w;
    for (size_t i = 0; i < groups; i++, g += GROUP_BYTES) {
        pgd_block_q8_0 b[GB];
        memcpy(b, g, GROUP_BYTES);
        for (int j = 0; j < GB; j++) {
            memcpy(g + 2 * j, &b[j].d, 2);
            for (int k = 0; k < GB; k++) memcpy(g + 16 + 32 * k + 4 * j, b[j].q + 4 * k, 4);
        }
    }
    return 1;
}

void pgd_cpu_q8x8_row_to_f32(float *dst, const void *row, int in) {
    const char *g = row;
    for (int gi = 0; gi < in / (GB * QB); gi++, g += GROUP_BYTES)
        for (int j = 0; j < GB; j++) {
            uint16_t h;
            memcpy(&h, g + 2 * j, 2);
            float d = pgd_f16_to_f32(h);
            for (int v = 0; v < QB; v++)
                dst[(size_t)gi * GB * QB + (size_t)j * QB + v] =
                    d * (float)(int8_t)g[16 + 32 * (v / 4) + 4 * j + v % 4];
        }
}
