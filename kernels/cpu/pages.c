/* pages.c - memory for large streamed buffers: weights, KV caches and the
 * bandwidth probes that bound them.
 *
 * Decode streams the whole model from DRAM every step. With 4 KB pages
 * every 4 KB of it costs a TLB miss and a page walk, which on the 2-core
 * EPYC VM this was measured on held a 256 MiB q8_0 decode matmul to 22-28
 * GB/s against 34-35 GB/s on 2 MB pages (same buffers, same run), and the
 * 256 MiB read probe itself to 27-32 GB/s. Linux's transparent huge pages
 * are often "madvise" only (Debian's default), so a buffer of 2 MB or more
 * is aligned to 2 MB and marked MADV_HUGEPAGE: the kernel backs it with
 * huge pages where it can, and with 4 KB pages where it cannot (nothing
 * fails). The probes use the same allocation as the weights, so a bound
 * stays the fastest the machine reads such memory. */
#include <stdlib.h>
#include <sys/mman.h>

#include "kernels.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *pgd_cpu_alloc_pages(size_t bytes) {
    if (bytes < HUGE_PAGE) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, rounded);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: 4 KB pages where refused */
#endif
    return p;
}
