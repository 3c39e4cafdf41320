/* comm_impl.h - what a communicator transport implements (not a public
 * header; only core/parallel/comm*.c include it).
 *
 * A transport allocates a struct whose first member is `pgd_comm base`,
 * fills base.ops/rank/size, and returns it from its create function.
 * core/parallel/comm.c is the only caller of the ops: it validates every
 * argument (ranks, tags, dtypes, counts, overlapping buffers), returns early
 * for empty transfers and size-1 collectives (all_gather excepted: it
 * copies send into recv), refuses calls on an aborted
 * communicator, and accumulates the wall time spent in calls. So an op sees
 * only valid arguments, count > 0 and (for collectives but all_gather) size > 1.
 *
 * An op returns PGD_OK, PGD_ERR_COMM (a rank aborted or the transport
 * failed) or another status, with the message recorded by pgd_error(). */
#ifndef PAGODA_COMM_IMPL_H
#define PAGODA_COMM_IMPL_H

#include "pagoda/comm.h"

/* Tags of pgd_comm_send/recv are in [0, PGD_COMM_TAG_MAX] on every
 * transport (MPI guarantees at least 32767). */
#define PGD_COMM_TAG_MAX 32767

struct pgd_comm_ops {
    const char *name; /* "threads", "mpi", "nccl" */
    void (*destroy)(pgd_comm *c);
    /* color < 0: the rank joins no group and gets *out = NULL */
    pgd_status (*split)(pgd_comm *c, int color, int key, pgd_comm **out);
    pgd_status (*all_reduce_sum)(pgd_comm *c, void *buf, size_t count, pgd_dtype dt);
    pgd_status (*all_gather)(pgd_comm *c, const void *send, void *recv, size_t count,
                             pgd_dtype dt);
    pgd_status (*broadcast)(pgd_comm *c, void *buf, size_t bytes, int root);
    pgd_status (*send)(pgd_comm *c, const void *buf, size_t bytes, int dst, int tag);
    pgd_status (*recv)(pgd_comm *c, void *buf, size_t bytes, int src, int tag);
    pgd_status (*barrier)(pgd_comm *c);
    /* Mark the communicator (and everything that shares its failure domain)
     * failed and wake every waiter. May end the process (MPI). */
    void (*abort)(pgd_comm *c, const char *reason);
    /* The failure message if the communicator was aborted, else NULL. */
    const char *(*aborted)(const pgd_comm *c);
};

struct pgd_comm {
    const struct pgd_comm_ops *ops;
    int rank, size;
    double seconds; /* wall time inside calls; touched only by the owner thread */
};

/* The message every op returns once a communicator is aborted. */
pgd_status pgd_comm_aborted_error(const pgd_comm *c, const char *op, const char *reason);

/* The abort reason of any communicator (c->ops->aborted), for transports
 * that watch another one (NCCL watches its boot communicator). */
const char *pgd_comm_abort_reason(const pgd_comm *c);

/* Monotonic wall clock in seconds. */
double pgd_comm_now(void);

/* Block [lo, hi) of `count` elements that rank r of n owns in a reduce-
 * scatter: slices are whole multiples of `align` elements (so ranks never
 * write the same cache line) except the last one. */
void pgd_comm_slice(size_t count, int n, int r, size_t align, size_t *lo, size_t *hi);

/* acc[i] = sum over k of src[k][off + i], k = 0..n-1 in rank order, in f32
 * (f16/bf16 inputs converted), then acc is rounded once and stored into
 * every dst[k][off ..]. Bitwise the same on every transport and rank. */
void pgd_comm_sum_slice(void *const *dst, int ndst, const void *const *src, int nsrc, size_t off,
                        size_t len, pgd_dtype dt);

#endif
