/* comm.c - the communicator front end: transport list, argument checks,
 * abort state and call timing around the ops table of each transport
 * (comm_impl.h). This is the only file that calls through pgd_comm_ops.
 *
 * Invariants every op may rely on (see comm_impl.h): arguments are valid,
 * transfers are non-empty, collectives run only when size > 1, and the
 * communicator was not aborted when the call began. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "parallel/comm_impl.h"

static const char *const names[] = {
    "threads",
#ifdef PAGODA_HAVE_MPI
    "mpi",
#endif
#ifdef PAGODA_HAVE_NCCL
    "nccl",
#endif
    NULL,
};

const char *const *pgd_comm_list(void) { return names; }

double pgd_comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

pgd_status pgd_comm_aborted_error(const pgd_comm *c, const char *op, const char *reason) {
    return pgd_error(PGD_ERR_COMM, "%s: %s communicator (rank %d of %d) was aborted: %s", op,
                     c->ops->name, c->rank, c->size, reason ? reason : "unknown reason");
}

void pgd_comm_slice(size_t count, int n, int r, size_t align, size_t *lo, size_t *hi) {
    size_t blocks = (count + align - 1) / align;
    size_t b0 = blocks * (size_t)r / (size_t)n, b1 = blocks * (size_t)(r + 1) / (size_t)n;
    *lo = b0 * align < count ? b0 * align : count;
    *hi = b1 * align < count ? b1 * align : count;
}

#define SUM_CHUNK 256

static inline float load_elem(const void *p, size_t i, pgd_dtype dt) {
    if (dt == PGD_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == PGD_F16 ? pgd_f16_to_f32(h) : pgd_bf16_to_f32(h);
}

void pgd_comm_sum_slice(void *const *dst, int ndst, const void *const *src, int nsrc, size_t off,
                        size_t len, pgd_dtype dt) {
    float acc[SUM_CHUNK];
    uint16_t half[SUM_CHUNK];
    size_t es = pgd_dtype_size(dt);
    for (size_t c0 = 0; c0 < len; c0 += SUM_CHUNK) {
        size_t m = len - c0 < SUM_CHUNK ? len - c0 : SUM_CHUNK, base = off + c0;
        if (dt == PGD_F32) {
            const float *s0 = (const float *)src[0] + base;
            for (size_t j = 0; j < m; j++) acc[j] = s0[j];
            for (int k = 1; k < nsrc; k++) {
                const float *sk = (const float *)src[k] + base;
                for (size_t j = 0; j < m; j++) acc[j] += sk[j];
            }
            for (int k = 0; k < ndst; k++) memcpy((float *)dst[k] + base, acc, m * sizeof(float));
        } else {
            for (size_t j = 0; j < m; j++) acc[j] = load_elem(src[0], base + j, dt);
            for (int k = 1; k < nsrc; k++)
                for (size_t j = 0; j < m; j++) acc[j] += load_elem(src[k], base + j, dt);
            for (size_t j = 0; j < m; j++)
                half[j] = dt == PGD_F16 ? pgd_f32_to_f16(acc[j]) : pgd_f32_to_bf16(acc[j]);
            for (int k = 0; k < ndst; k++) memcpy((char *)dst[k] + base * es, half, m * es);
        }
    }
}

/* ---- argument checks ---- */

#define CHECK_COMM(c, op)                                                                  \
    do {                                                                                   \
        if (!(c)) return pgd_error(PGD_ERR_INVALID, "pgd_comm_" op ": communicator is NULL"); \
    } while (0)

#define CHECK_ALIVE(c, op)                                                                 \
    do {                                                                                   \
        const char *why_ = (c)->ops->aborted((c));                                         \
        if (why_) return pgd_comm_aborted_error((c), "pgd_comm_" op, why_);                \
    } while (0)

static pgd_status check_dtype(const pgd_comm *c, const char *op, pgd_dtype dt) {
    if (dt != PGD_F32 && dt != PGD_F16 && dt != PGD_BF16)
        return pgd_error(PGD_ERR_INVALID, "pgd_comm_%s: rank %d: bad dtype %d (f32, f16 or bf16)",
                         op, c->rank, (int)dt);
    return PGD_OK;
}

static pgd_status check_peer(const pgd_comm *c, const char *op, const char *what, int peer) {
    if (peer < 0 || peer >= c->size)
        return pgd_error(PGD_ERR_INVALID, "pgd_comm_%s: rank %d: %s rank %d out of range [0, %d)",
                         op, c->rank, what, peer, c->size);
    return PGD_OK;
}

static pgd_status check_tag(const pgd_comm *c, const char *op, int tag) {
    if (tag < 0 || tag > PGD_COMM_TAG_MAX)
        return pgd_error(PGD_ERR_INVALID, "pgd_comm_%s: rank %d: tag %d out of range [0, %d]", op,
                         c->rank, tag, PGD_COMM_TAG_MAX);
    return PGD_OK;
}

static pgd_status check_buf(const pgd_comm *c, const char *op, const char *what, const void *p) {
    if (!p)
        return pgd_error(PGD_ERR_INVALID, "pgd_comm_%s: rank %d: %s is NULL", op, c->rank, what);
    return PGD_OK;
}

/* ---- accessors ---- */

int pgd_comm_rank(const pgd_comm *c) { return c ? c->rank : -1; }
int pgd_comm_size(const pgd_comm *c) { return c ? c->size : 0; }
const char *pgd_comm_kind(const pgd_comm *c) { return c ? c->ops->name : "none"; }
double pgd_comm_seconds(const pgd_comm *c) { return c ? c->seconds : 0.0; }

const char *pgd_comm_abort_reason(const pgd_comm *c) { return c ? c->ops->aborted(c) : NULL; }

void pgd_comm_destroy(pgd_comm *c) {
    if (c) c->ops->destroy(c);
}

void pgd_comm_abort(pgd_comm *c, const char *fmt, ...) {
    if (!c) return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt ? fmt : "(no reason given)", ap);
    va_end(ap);
    char full[600];
    snprintf(full, sizeof full, "rank %d: %s", c->rank, reason);
    c->ops->abort(c, full);
}

/* ---- calls ---- */

pgd_status pgd_comm_split(pgd_comm *c, int color, int key, pgd_comm **out) {
    CHECK_COMM(c, "split");
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_comm_split: out is NULL");
    *out = NULL;
    CHECK_ALIVE(c, "split");
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->split(c, color, key, out);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_all_reduce_sum(pgd_comm *c, void *buf, size_t count, pgd_dtype dt) {
    CHECK_COMM(c, "all_reduce_sum");
    PGD_TRY(check_dtype(c, "all_reduce_sum", dt));
    if (count > SIZE_MAX / pgd_dtype_size(dt))
        return pgd_error(PGD_ERR_INVALID,
                         "pgd_comm_all_reduce_sum: rank %d: count %zu of %s overflows size_t",
                         c->rank, count, pgd_dtype_name(dt));
    CHECK_ALIVE(c, "all_reduce_sum");
    if (count == 0 || c->size == 1) return PGD_OK;
    PGD_TRY(check_buf(c, "all_reduce_sum", "buf", buf));
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->all_reduce_sum(c, buf, count, dt);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_all_gather(pgd_comm *c, const void *send, void *recv, size_t count,
                               pgd_dtype dt) {
    CHECK_COMM(c, "all_gather");
    PGD_TRY(check_dtype(c, "all_gather", dt));
    size_t es = pgd_dtype_size(dt);
    if (count > SIZE_MAX / es / (size_t)c->size)
        return pgd_error(PGD_ERR_INVALID,
                         "pgd_comm_all_gather: rank %d: %d x %zu elements of %s overflow size_t",
                         c->rank, c->size, count, pgd_dtype_name(dt));
    CHECK_ALIVE(c, "all_gather");
    if (count == 0) return PGD_OK;
    PGD_TRY(check_buf(c, "all_gather", "send", send));
    PGD_TRY(check_buf(c, "all_gather", "recv", recv));
    size_t bytes = count * es;
    const char *s = send, *r = recv, *mine = r + (size_t)c->rank * bytes;
    /* send must be its own block of recv, or lie outside recv entirely */
    if (s != mine && s < r + (size_t)c->size * bytes && s + bytes > r)
        return pgd_error(PGD_ERR_INVALID,
                         "pgd_comm_all_gather: rank %d: send overlaps recv but is not "
                         "recv + rank * count (the only in-place layout)",
                         c->rank);
    double t0 = pgd_comm_now();
    /* also for size 1: the op knows how to copy its (maybe device) buffers */
    pgd_status st = c->ops->all_gather(c, send, recv, count, dt);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_broadcast(pgd_comm *c, void *buf, size_t bytes, int root) {
    CHECK_COMM(c, "broadcast");
    PGD_TRY(check_peer(c, "broadcast", "root", root));
    CHECK_ALIVE(c, "broadcast");
    if (bytes == 0 || c->size == 1) return PGD_OK;
    PGD_TRY(check_buf(c, "broadcast", "buf", buf));
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->broadcast(c, buf, bytes, root);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_send(pgd_comm *c, const void *buf, size_t bytes, int dst, int tag) {
    CHECK_COMM(c, "send");
    PGD_TRY(check_peer(c, "send", "destination", dst));
    PGD_TRY(check_tag(c, "send", tag));
    if (bytes) PGD_TRY(check_buf(c, "send", "buf", buf));
    CHECK_ALIVE(c, "send");
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->send(c, buf, bytes, dst, tag);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_recv(pgd_comm *c, void *buf, size_t bytes, int src, int tag) {
    CHECK_COMM(c, "recv");
    PGD_TRY(check_peer(c, "recv", "source", src));
    PGD_TRY(check_tag(c, "recv", tag));
    if (bytes) PGD_TRY(check_buf(c, "recv", "buf", buf));
    CHECK_ALIVE(c, "recv");
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->recv(c, buf, bytes, src, tag);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

pgd_status pgd_comm_barrier(pgd_comm *c) {
    CHECK_COMM(c, "barrier");
    CHECK_ALIVE(c, "barrier");
    if (c->size == 1) return PGD_OK;
    double t0 = pgd_comm_now();
    pgd_status st = c->ops->barrier(c);
    c->seconds += pgd_comm_now() - t0;
    return st;
}

/* ---- transports missing from this build ---- */

#ifndef PAGODA_HAVE_MPI
pgd_status pgd_comm_mpi_create(pgd_comm **out) {
    if (out) *out = NULL;
    return pgd_error(PGD_ERR_UNSUPPORTED,
                     "comm 'mpi': this build has no MPI (install libopenmpi-dev and reconfigure)");
}
int pgd_comm_mpi_world_size(void) { return 1; }
int pgd_comm_mpi_world_rank(void) { return 0; }
void pgd_comm_mpi_finalize(void) {}
#endif

#ifndef PAGODA_HAVE_NCCL
pgd_status pgd_comm_nccl_create(pgd_comm *boot, int device, pgd_comm **out) {
    if (out) *out = NULL;
    return pgd_error(PGD_ERR_UNSUPPORTED,
                     "comm 'nccl': this build has no NCCL (needs the CUDA backend and nccl.h)");
}
#endif
