/* comm_mpi.c - the MPI transport (Open MPI): ranks are processes started by
 * `mpirun`, on one or many hosts. Compiled when CMake finds MPI
 * (PAGODA_HAVE_MPI); otherwise comm.c provides stubs.
 *
 * MPI is initialised lazily (MPI_Init_thread, MPI_THREAD_SERIALIZED: any one
 * thread at a time may call) by the first communicator, or by a world size
 * or rank query when the process was started by a launcher (environment
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK), so a plain `pagoda` run
 * never touches MPI. Each communicator is a duplicate of MPI_COMM_WORLD (or
 * a split of one) with MPI_ERRORS_RETURN, so MPI errors come back as
 * PGD_ERR_COMM with MPI's message.
 *
 * all_reduce (default, PAGODA_MPI_ALLREDUCE=ordered) is a reduce-scatter
 * (MPI_Alltoallv of slices; small buffers: MPI_Allgather of the whole
 * buffer) where each rank sums its slice in rank order 0..n-1 in f32, then
 * an MPI_Allgatherv of the sums: every rank gets bitwise the same result,
 * which is also bitwise the threads transport's. PAGODA_MPI_ALLREDUCE=native
 * uses MPI_Allreduce (f16/bf16 through an f32 copy, still rounded once) for
 * comparison; MPI does not promise identical results on every rank there.
 *
 * send copies the message and posts MPI_Isend, so the sender does not wait
 * for the receiver (up to SEND_BUFFER_BYTES in flight per communicator);
 * completed sends are reaped on later calls and at destroy. Messages larger
 * than CHUNK_BYTES travel as several MPI messages of the same tag.
 *
 * pgd_comm_abort prints the reason and calls MPI_Abort on MPI_COMM_WORLD,
 * which ends every rank of the job. */
#ifdef PAGODA_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parallel/comm_impl.h"

#define CHUNK_BYTES ((size_t)1 << 30)      /* largest single MPI message (int counts) */
#define SMALL_ALLREDUCE_BYTES (64u << 10) /* n * bytes below which all_reduce gathers all */
#define SEND_BUFFER_BYTES ((size_t)256 << 20)
#define SLICE_ALIGN 32

typedef struct pending_send {
    MPI_Request req;
    void *buf;
    size_t bytes;
} pending_send;

typedef struct mcomm {
    pgd_comm base;
    MPI_Comm comm;
    int native;   /* PAGODA_MPI_ALLREDUCE=native */
    char *tmp;    /* all_reduce scratch */
    size_t tmp_cap;
    const void **srcs; /* n */
    int *counts, *displs, *scounts, *rcounts, *rdispls; /* n each */
    pending_send *pend;
    int npend, cap_pend;
    size_t pend_bytes;
} mcomm;

static const struct pgd_comm_ops mpi_ops;
static int we_initialized;

static pgd_status mpi_fail(const mcomm *c, const char *op, int rc) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return pgd_error(PGD_ERR_COMM, "comm mpi %s (rank %d of %d): %s", op, c ? c->base.rank : -1,
                     c ? c->base.size : 0, len ? msg : "unknown MPI error");
}

/* ---- initialisation ---- */

static int under_launcher(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           getenv("PMI_SIZE");
}

static int mpi_live(void) {
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    return inited && !fin;
}

static pgd_status ensure_init(void) {
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (fin) return pgd_error(PGD_ERR_COMM, "comm mpi: MPI was already finalized");
    if (inited) return PGD_OK;
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail(NULL, "MPI_Init_thread", rc);
    we_initialized = 1;
    return PGD_OK;
}

int pgd_comm_mpi_world_size(void) {
    if (!mpi_live() && (!under_launcher() || ensure_init() != PGD_OK)) return 1;
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int pgd_comm_mpi_world_rank(void) {
    if (!mpi_live() && (!under_launcher() || ensure_init() != PGD_OK)) return 0;
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

void pgd_comm_mpi_finalize(void) {
    if (we_initialized && mpi_live()) MPI_Finalize();
}

static pgd_status wrap(MPI_Comm comm, mcomm **out) {
    mcomm *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "comm mpi: out of memory");
    c->comm = comm;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &c->base.rank);
    MPI_Comm_size(comm, &c->base.size);
    c->base.ops = &mpi_ops;
    const char *mode = getenv("PAGODA_MPI_ALLREDUCE");
    c->native = mode && !strcmp(mode, "native");
    size_t n = (size_t)c->base.size;
    c->srcs = calloc(n, sizeof *c->srcs);
    c->counts = calloc(5 * n, sizeof *c->counts);
    if (!c->srcs || !c->counts) {
        free(c->srcs);
        free(c->counts);
        free(c);
        return pgd_error(PGD_ERR_OOM, "comm mpi: out of memory");
    }
    c->displs = c->counts + n;
    c->scounts = c->counts + 2 * n;
    c->rcounts = c->counts + 3 * n;
    c->rdispls = c->counts + 4 * n;
    *out = c;
    return PGD_OK;
}

pgd_status pgd_comm_mpi_create(pgd_comm **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_comm_mpi_create: out is NULL");
    *out = NULL;
    PGD_TRY(ensure_init());
    MPI_Comm dup;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    if (rc != MPI_SUCCESS) return mpi_fail(NULL, "MPI_Comm_dup", rc);
    mcomm *c;
    pgd_status st = wrap(dup, &c);
    if (st != PGD_OK) {
        MPI_Comm_free(&dup);
        return st;
    }
    *out = &c->base;
    return PGD_OK;
}

/* ---- buffered sends ---- */

/* Free the buffers of completed sends (wait_all: wait for every send). */
static pgd_status reap(mcomm *c, int wait_all) {
    int keep = 0;
    pgd_status st = PGD_OK;
    for (int i = 0; i < c->npend; i++) {
        pending_send *p = &c->pend[i];
        int done = 0, rc;
        if (wait_all) rc = MPI_Wait(&p->req, MPI_STATUS_IGNORE), done = 1;
        else rc = MPI_Test(&p->req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS && st == PGD_OK) st = mpi_fail(c, "send", rc), done = 1;
        if (done) {
            c->pend_bytes -= p->bytes;
            free(p->buf);
        } else {
            c->pend[keep++] = *p;
        }
    }
    c->npend = keep;
    return st;
}

static pgd_status mpi_send(pgd_comm *base, const void *buf, size_t bytes, int dst, int tag) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    /* too much in flight: wait for the oldest sends */
    while (c->npend && c->pend_bytes + bytes > SEND_BUFFER_BYTES) {
        pending_send *p = &c->pend[0];
        int rc = MPI_Wait(&p->req, MPI_STATUS_IGNORE);
        c->pend_bytes -= p->bytes;
        free(p->buf);
        memmove(c->pend, c->pend + 1, (size_t)(--c->npend) * sizeof *c->pend);
        if (rc != MPI_SUCCESS) return mpi_fail(c, "send", rc);
    }
    size_t off = 0;
    do {
        size_t n = bytes - off < CHUNK_BYTES ? bytes - off : CHUNK_BYTES;
        if (c->npend == c->cap_pend) {
            int cap = c->cap_pend ? 2 * c->cap_pend : 16;
            pending_send *np = realloc(c->pend, (size_t)cap * sizeof *np);
            if (!np) return pgd_error(PGD_ERR_OOM, "comm mpi send: out of memory");
            c->pend = np, c->cap_pend = cap;
        }
        char *copy = malloc(n ? n : 1);
        if (!copy)
            return pgd_error(PGD_ERR_OOM, "comm mpi send: out of memory buffering %zu bytes", n);
        if (n) memcpy(copy, (const char *)buf + off, n);
        pending_send *p = &c->pend[c->npend];
        int rc = MPI_Isend(copy, (int)n, MPI_BYTE, dst, tag, c->comm, &p->req);
        if (rc != MPI_SUCCESS) {
            free(copy);
            return mpi_fail(c, "send", rc);
        }
        p->buf = copy, p->bytes = n;
        c->npend++;
        c->pend_bytes += n;
        off += n;
    } while (off < bytes);
    return PGD_OK;
}

static pgd_status mpi_recv(pgd_comm *base, void *buf, size_t bytes, int src, int tag) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    size_t off = 0;
    char dummy;
    do {
        size_t n = bytes - off < CHUNK_BYTES ? bytes - off : CHUNK_BYTES;
        MPI_Status status;
        int rc = MPI_Recv(n ? (char *)buf + off : &dummy, (int)n, MPI_BYTE, src, tag, c->comm,
                          &status);
        if (rc != MPI_SUCCESS) {
            int cls = 0;
            MPI_Error_class(rc, &cls);
            if (cls == MPI_ERR_TRUNCATE)
                return pgd_error(PGD_ERR_INVALID,
                                 "pgd_comm_recv: rank %d expected %zu bytes from rank %d (tag %d) "
                                 "but the message is larger",
                                 base->rank, bytes, src, tag);
            return mpi_fail(c, "recv", rc);
        }
        int got = 0;
        MPI_Get_count(&status, MPI_BYTE, &got);
        if ((size_t)got != n)
            return pgd_error(PGD_ERR_INVALID,
                             "pgd_comm_recv: rank %d expected %zu bytes from rank %d (tag %d) but "
                             "the message has %zu",
                             base->rank, bytes, src, tag, off + (size_t)got);
        off += n;
    } while (off < bytes);
    return PGD_OK;
}

/* ---- collectives ---- */

static pgd_status scratch(mcomm *c, size_t bytes) {
    if (bytes <= c->tmp_cap) return PGD_OK;
    free(c->tmp);
    c->tmp = malloc(bytes);
    c->tmp_cap = c->tmp ? bytes : 0;
    if (!c->tmp)
        return pgd_error(PGD_ERR_OOM, "comm mpi all_reduce: out of memory (%zu bytes)", bytes);
    return PGD_OK;
}

static pgd_status all_reduce_native(mcomm *c, char *p, size_t m, pgd_dtype dt) {
    int rc;
    if (dt == PGD_F32) {
        rc = MPI_Allreduce(MPI_IN_PLACE, p, (int)m, MPI_FLOAT, MPI_SUM, c->comm);
    } else {
        PGD_TRY(scratch(c, m * sizeof(float)));
        float *f = (float *)c->tmp;
        const uint16_t *h = (const uint16_t *)p;
        for (size_t i = 0; i < m; i++)
            f[i] = dt == PGD_F16 ? pgd_f16_to_f32(h[i]) : pgd_bf16_to_f32(h[i]);
        rc = MPI_Allreduce(MPI_IN_PLACE, f, (int)m, MPI_FLOAT, MPI_SUM, c->comm);
        for (size_t i = 0; i < m; i++)
            ((uint16_t *)p)[i] = dt == PGD_F16 ? pgd_f32_to_f16(f[i]) : pgd_f32_to_bf16(f[i]);
    }
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(c, "all_reduce_sum", rc);
}

/* Sum m elements at p over the ranks, each element in rank order. */
static pgd_status all_reduce_ordered(mcomm *c, char *p, size_t m, pgd_dtype dt) {
    int n = c->base.size, r = c->base.rank, rc;
    size_t es = pgd_dtype_size(dt);
    if ((size_t)n * m * es <= SMALL_ALLREDUCE_BYTES) {
        /* small: everyone gets everything and sums it all */
        PGD_TRY(scratch(c, (size_t)n * m * es));
        rc = MPI_Allgather(p, (int)(m * es), MPI_BYTE, c->tmp, (int)(m * es), MPI_BYTE, c->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(c, "all_reduce_sum", rc);
        for (int k = 0; k < n; k++) c->srcs[k] = c->tmp + (size_t)k * m * es;
        void *dst = p;
        pgd_comm_sum_slice(&dst, 1, c->srcs, n, 0, m, dt);
        return PGD_OK;
    }
    /* reduce-scatter: slice k of every rank goes to rank k (our own slice
     * stays where it is), which sums them in rank order in place */
    size_t mylo = 0, myhi = 0;
    for (int k = 0; k < n; k++) {
        size_t lo, hi;
        pgd_comm_slice(m, n, k, SLICE_ALIGN, &lo, &hi);
        c->counts[k] = (int)((hi - lo) * es);
        c->displs[k] = (int)(lo * es);
        c->scounts[k] = k == r ? 0 : c->counts[k];
        if (k == r) mylo = lo, myhi = hi;
    }
    size_t len = myhi - mylo;
    for (int k = 0; k < n; k++) {
        c->rcounts[k] = k == r ? 0 : (int)(len * es);
        c->rdispls[k] = (int)((size_t)k * len * es);
    }
    PGD_TRY(scratch(c, (size_t)n * len * es + 1));
    rc = MPI_Alltoallv(p, c->scounts, c->displs, MPI_BYTE, c->tmp, c->rcounts, c->rdispls, MPI_BYTE,
                       c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(c, "all_reduce_sum", rc);
    if (len) {
        void *dst = p + mylo * es;
        for (int k = 0; k < n; k++) c->srcs[k] = k == r ? dst : c->tmp + (size_t)k * len * es;
        pgd_comm_sum_slice(&dst, 1, c->srcs, n, 0, len, dt);
    }
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p, c->counts, c->displs, MPI_BYTE,
                        c->comm);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(c, "all_reduce_sum", rc);
}

static pgd_status mpi_all_reduce(pgd_comm *base, void *buf, size_t count, pgd_dtype dt) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    size_t es = pgd_dtype_size(dt), chunk = CHUNK_BYTES / es;
    for (size_t off = 0; off < count; off += chunk) {
        size_t m = count - off < chunk ? count - off : chunk;
        char *p = (char *)buf + off * es;
        PGD_TRY(c->native ? all_reduce_native(c, p, m, dt) : all_reduce_ordered(c, p, m, dt));
    }
    return PGD_OK;
}

static pgd_status mpi_all_gather(pgd_comm *base, const void *send, void *recv, size_t count,
                                 pgd_dtype dt) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    size_t bytes = count * pgd_dtype_size(dt);
    if (bytes > INT_MAX)
        return pgd_error(PGD_ERR_UNSUPPORTED,
                         "comm mpi all_gather: %zu bytes per rank exceeds MPI's int count limit",
                         bytes);
    const void *s = (const char *)recv + (size_t)base->rank * bytes == send ? MPI_IN_PLACE : send;
    int rc = MPI_Allgather(s, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, c->comm);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(c, "all_gather", rc);
}

static pgd_status mpi_broadcast(pgd_comm *base, void *buf, size_t bytes, int root) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    for (size_t off = 0; off < bytes; off += CHUNK_BYTES) {
        size_t n = bytes - off < CHUNK_BYTES ? bytes - off : CHUNK_BYTES;
        int rc = MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, c->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(c, "broadcast", rc);
    }
    return PGD_OK;
}

static pgd_status mpi_barrier(pgd_comm *base) {
    mcomm *c = (mcomm *)base;
    PGD_TRY(reap(c, 0));
    int rc = MPI_Barrier(c->comm);
    return rc == MPI_SUCCESS ? PGD_OK : mpi_fail(c, "barrier", rc);
}

static pgd_status mpi_split(pgd_comm *base, int color, int key, pgd_comm **out) {
    mcomm *c = (mcomm *)base;
    MPI_Comm sub;
    int rc = MPI_Comm_split(c->comm, color < 0 ? MPI_UNDEFINED : color, key, &sub);
    if (rc != MPI_SUCCESS) return mpi_fail(c, "split", rc);
    if (sub == MPI_COMM_NULL) return PGD_OK;
    mcomm *child;
    pgd_status st = wrap(sub, &child);
    if (st != PGD_OK) {
        MPI_Comm_free(&sub);
        return st;
    }
    *out = &child->base;
    return PGD_OK;
}

static void mpi_destroy(pgd_comm *base) {
    mcomm *c = (mcomm *)base;
    if (mpi_live()) {
        reap(c, 1);
        MPI_Comm_free(&c->comm);
    }
    free(c->pend);
    free(c->tmp);
    free(c->srcs);
    free(c->counts);
    free(c);
}

static void mpi_abort(pgd_comm *base, const char *reason) {
    int wr = 0, ws = 1;
    if (mpi_live()) {
        MPI_Comm_rank(MPI_COMM_WORLD, &wr);
        MPI_Comm_size(MPI_COMM_WORLD, &ws);
    }
    fprintf(stderr, "pagoda: MPI rank %d of %d aborting the job: %s\n", wr, ws, reason);
    fflush(stderr);
    if (mpi_live()) MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static const char *mpi_aborted(const pgd_comm *base) {
    return NULL; /* an abort ends the process */
}

static const struct pgd_comm_ops mpi_ops = {
    .name = "mpi",
    .destroy = mpi_destroy,
    .split = mpi_split,
    .all_reduce_sum = mpi_all_reduce,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .aborted = mpi_aborted,
};

#else
typedef int pgd_comm_mpi_not_built; /* keep the translation unit non-empty */
#endif /* PAGODA_HAVE_MPI */
