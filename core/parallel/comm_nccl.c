/* comm_nccl.c - the NCCL transport: GPU ranks, buffers are device pointers
 * of the rank's device. Compiled when CMake finds NCCL and the CUDA
 * toolkit (PAGODA_HAVE_NCCL); otherwise comm.c provides a stub.
 *
 * Creation: rank 0 of the boot communicator (MPI ranks, or threads of one
 * process) makes the NCCL unique id and broadcasts it over boot; each rank
 * then joins with ncclCommInitRankConfig on its device and its own
 * non-blocking CUDA stream. The boot communicator is borrowed and must
 * outlive this one: aborts travel through it.
 *
 * Every call is blocking, as comm.h requires: the NCCL operation is
 * enqueued on the stream, then the stream is polled (cudaStreamQuery) while
 * watching ncclCommGetAsyncError and the boot communicator's abort state.
 * The communicator is non-blocking (config.blocking = 0), so even joining
 * and splitting can be interrupted: when any rank aborts (through this
 * communicator or the boot one) the waiters call ncclCommAbort and return
 * PGD_ERR_COMM instead of hanging in a collective that will never finish.
 *
 * Differences from the other transports: f16/bf16 all-reduce sums in
 * NCCL's own arithmetic (not f32-then-round-once), results are identical on
 * all ranks but not bitwise equal to the threads/MPI transports; send/recv
 * ignore the tag (NCCL matches point-to-point calls in issue order) and a
 * send returns only once the receiver has received it (no buffering), so a
 * send to self is refused. UNTESTED on a GPU: this file was only compiled. */
#ifdef PAGODA_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/comm_impl.h"

typedef struct ncomm {
    pgd_comm base;
    ncclComm_t comm; /* NULL once aborted */
    cudaStream_t stream;
    int device;
    pgd_comm *boot;  /* borrowed: watched for aborts, receives ours */
    float *scratch;  /* one device float for barrier */
    char reason[640];
    int aborted;
} ncomm;

static const struct pgd_comm_ops nccl_ops;
static void nccl_abort(pgd_comm *base, const char *reason);

static pgd_status cuda_fail(const ncomm *c, const char *op, cudaError_t e) {
    return pgd_error(PGD_ERR_DEVICE, "comm nccl %s (rank %d, device %d): CUDA error: %s", op,
                     c ? c->base.rank : -1, c ? c->device : -1, cudaGetErrorString(e));
}

static pgd_status nccl_fail(const ncomm *c, const char *op, ncclResult_t r) {
    return pgd_error(PGD_ERR_COMM, "comm nccl %s (rank %d of %d): %s%s%s", op, c->base.rank,
                     c->base.size, ncclGetErrorString(r), ncclGetLastError(c->comm) ? ": " : "",
                     ncclGetLastError(c->comm) ? ncclGetLastError(c->comm) : "");
}

static const char *watch_reason(const ncomm *c) {
    if (c->aborted) return c->reason;
    return pgd_comm_abort_reason(c->boot);
}

/* Tear the NCCL communicator down after an abort (ours or another rank's). */
static pgd_status give_up(ncomm *c, const char *op) {
    const char *why = watch_reason(c);
    if (!c->aborted) {
        snprintf(c->reason, sizeof c->reason, "%s", why ? why : "NCCL failed");
        c->aborted = 1;
    }
    if (c->comm) ncclCommAbort(c->comm);
    c->comm = NULL;
    return pgd_comm_aborted_error(&c->base, op, c->reason);
}

/* Wait until a non-blocking NCCL call on `comm` finished its host side. */
static pgd_status wait_comm(ncomm *c, ncclComm_t comm, ncclResult_t r, const char *op) {
    if (r != ncclSuccess && r != ncclInProgress) return nccl_fail(c, op, r);
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(comm, &state);
        if (q != ncclSuccess) return nccl_fail(c, op, q);
        if (state == ncclSuccess) return PGD_OK;
        if (state != ncclInProgress) return nccl_fail(c, op, state);
        if (watch_reason(c)) return give_up(c, op);
        sched_yield();
    }
}

/* Finish an enqueued operation: host side, then the stream. */
static pgd_status finish(ncomm *c, ncclResult_t r, const char *op) {
    pgd_status st = wait_comm(c, c->comm, r, op);
    if (st != PGD_OK) return st;
    for (;;) {
        cudaError_t e = cudaStreamQuery(c->stream);
        if (e == cudaSuccess) return PGD_OK;
        if (e != cudaErrorNotReady) return cuda_fail(c, op, e);
        ncclResult_t state = ncclSuccess;
        ncclCommGetAsyncError(c->comm, &state);
        if (state != ncclSuccess && state != ncclInProgress) {
            /* NCCL failed on this rank: fail the others too, or they would hang */
            pgd_status fail = nccl_fail(c, op, state);
            char why[sizeof c->reason];
            snprintf(why, sizeof why, "rank %d: %s", c->base.rank, pgd_last_error());
            nccl_abort(&c->base, why);
            return fail;
        }
        if (watch_reason(c)) return give_up(c, op);
        sched_yield();
    }
}

static pgd_status begin(ncomm *c, const char *op) {
    if (!c->comm) return pgd_comm_aborted_error(&c->base, op, c->reason);
    cudaError_t e = cudaSetDevice(c->device);
    return e == cudaSuccess ? PGD_OK : cuda_fail(c, op, e);
}

static ncclConfig_t make_config(void) {
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    return cfg;
}

/* A handle around an NCCL communicator that is being created (or NULL).
 * On failure *out is NULL and the NCCL communicator has been aborted. */
static pgd_status wrap(ncclComm_t comm, ncclResult_t r, int device, pgd_comm *boot,
                       const char *op, pgd_comm **out) {
    ncomm *c = calloc(1, sizeof *c);
    if (!c) {
        if (comm) ncclCommAbort(comm);
        return pgd_error(PGD_ERR_OOM, "comm nccl: out of memory");
    }
    c->base.ops = &nccl_ops;
    c->comm = comm;
    c->device = device;
    c->boot = boot;
    pgd_status st = wait_comm(c, comm, r, op);
    cudaError_t e = cudaSuccess;
    if (st == PGD_OK) {
        ncclCommUserRank(comm, &c->base.rank);
        ncclCommCount(comm, &c->base.size);
        e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) e = cudaMalloc((void **)&c->scratch, sizeof(float));
        if (e != cudaSuccess) st = cuda_fail(c, op, e);
    }
    if (st != PGD_OK) {
        if (c->comm) ncclCommAbort(c->comm);
        if (c->stream) cudaStreamDestroy(c->stream);
        cudaFree(c->scratch);
        free(c);
        return st;
    }
    *out = &c->base;
    return PGD_OK;
}

pgd_status pgd_comm_nccl_create(pgd_comm *boot, int device, pgd_comm **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_comm_nccl_create: out is NULL");
    *out = NULL;
    if (!boot) return pgd_error(PGD_ERR_INVALID, "pgd_comm_nccl_create: boot communicator is NULL");
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    pgd_status st = PGD_OK;
    if (e != cudaSuccess)
        st = cuda_fail(NULL, "create", e);
    else if (device < 0 || device >= ndev)
        st = pgd_error(PGD_ERR_INVALID, "pgd_comm_nccl_create: device %d out of range [0, %d)",
                       device, ndev);
    else if ((e = cudaSetDevice(device)) != cudaSuccess)
        st = cuda_fail(NULL, "create", e);
    /* rank 0 makes the id; every rank learns whether that worked */
    struct {
        int ok;
        ncclUniqueId id;
    } hello;
    memset(&hello, 0, sizeof hello);
    int rank = pgd_comm_rank(boot), size = pgd_comm_size(boot);
    if (rank == 0) hello.ok = st == PGD_OK && ncclGetUniqueId(&hello.id) == ncclSuccess;
    pgd_status bst = pgd_comm_broadcast(boot, &hello, sizeof hello, 0);
    if (bst != PGD_OK) return bst;
    if (st != PGD_OK) {
        pgd_comm_abort(boot, "NCCL setup failed: %s", pgd_last_error());
        return st;
    }
    if (!hello.ok)
        return pgd_error(PGD_ERR_COMM, "comm nccl: rank 0 of the boot communicator could not "
                                       "create the NCCL unique id");
    ncclConfig_t cfg = make_config();
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&comm, size, hello.id, rank, &cfg);
    return wrap(comm, r, device, boot, "create", out);
}

static pgd_status nccl_split(pgd_comm *base, int color, int key, pgd_comm **out) {
    ncomm *c = (ncomm *)base;
    PGD_TRY(begin(c, "split"));
    ncclConfig_t cfg = make_config();
    ncclComm_t sub = NULL;
    int ncolor = color < 0 ? NCCL_SPLIT_NOCOLOR : color;
    ncclResult_t r = ncclCommSplit(c->comm, ncolor, key, &sub, &cfg);
    PGD_TRY(wait_comm(c, c->comm, r, "split"));
    if (!sub) return PGD_OK;
    return wrap(sub, ncclSuccess, c->device, c->boot, "split", out);
}

static ncclDataType_t nccl_type(pgd_dtype dt) {
    return dt == PGD_F32 ? ncclFloat32 : dt == PGD_F16 ? ncclFloat16 : ncclBfloat16;
}

static pgd_status nccl_all_reduce(pgd_comm *base, void *buf, size_t count, pgd_dtype dt) {
    ncomm *c = (ncomm *)base;
    PGD_TRY(begin(c, "all_reduce_sum"));
    return finish(c, ncclAllReduce(buf, buf, count, nccl_type(dt), ncclSum,
                                   c->comm, c->stream),
                  "all_reduce_sum");
}

static pgd_status nccl_all_gather(pgd_comm *base, const void *send, void *recv, size_t count,
                                  pgd_dtype dt) {
    ncomm *c = (ncomm *)base;
    PGD_TRY(begin(c, "all_gather"));
    /* NCCL is in place when send == recv + rank * count, as comm.h allows */
    return finish(c, ncclAllGather(send, recv, count, nccl_type(dt), c->comm,
                                   c->stream),
                  "all_gather");
}

static pgd_status nccl_broadcast(pgd_comm *base, void *buf, size_t bytes, int root) {
    ncomm *c = (ncomm *)base;
    PGD_TRY(begin(c, "broadcast"));
    return finish(c, ncclBroadcast(buf, buf, bytes, ncclUint8, root, c->comm, c->stream),
                  "broadcast");
}

static pgd_status nccl_send(pgd_comm *base, const void *buf, size_t bytes, int dst, int tag) {
    ncomm *c = (ncomm *)base;
    if (dst == base->rank)
        return pgd_error(PGD_ERR_UNSUPPORTED, "comm nccl send: rank %d: send to self is not "
                                              "supported (NCCL sends wait for the receiver)",
                         dst);
    PGD_TRY(begin(c, "send"));
    if (!bytes) return PGD_OK; /* NCCL moves nothing for an empty message; neither side waits */
    return finish(c, ncclSend(buf, bytes, ncclUint8, dst, c->comm, c->stream), "send");
}

static pgd_status nccl_recv(pgd_comm *base, void *buf, size_t bytes, int src, int tag) {
    ncomm *c = (ncomm *)base;
    if (src == base->rank)
        return pgd_error(PGD_ERR_UNSUPPORTED, "comm nccl recv: rank %d: receive from self is not "
                                              "supported",
                         src);
    PGD_TRY(begin(c, "recv"));
    if (!bytes) return PGD_OK;
    return finish(c, ncclRecv(buf, bytes, ncclUint8, src, c->comm, c->stream), "recv");
}

static pgd_status nccl_barrier(pgd_comm *base) {
    ncomm *c = (ncomm *)base;
    PGD_TRY(begin(c, "barrier"));
    return finish(c, ncclAllReduce(c->scratch, c->scratch, 1, ncclFloat32, ncclSum, c->comm,
                                   c->stream),
                  "barrier");
}

static void nccl_destroy(pgd_comm *base) {
    ncomm *c = (ncomm *)base;
    cudaSetDevice(c->device);
    if (c->comm) {
        /* flush; on failure (a peer gone) abort instead of waiting forever */
        if (wait_comm(c, c->comm, ncclCommFinalize(c->comm), "destroy") == PGD_OK && c->comm)
            ncclCommDestroy(c->comm);
        else if (c->comm)
            ncclCommAbort(c->comm);
    }
    if (c->stream) cudaStreamDestroy(c->stream);
    cudaFree(c->scratch);
    free(c);
}

static void nccl_abort(pgd_comm *base, const char *reason) {
    ncomm *c = (ncomm *)base;
    if (!c->aborted) {
        snprintf(c->reason, sizeof c->reason, "%s", reason);
        c->aborted = 1;
    }
    if (c->comm) ncclCommAbort(c->comm);
    c->comm = NULL;
    /* tell the other ranks: they watch the boot communicator (MPI: ends the job) */
    c->boot->ops->abort(c->boot, reason);
}

static const char *nccl_aborted(const pgd_comm *base) {
    const ncomm *c = (const ncomm *)base;
    return watch_reason(c);
}

static const struct pgd_comm_ops nccl_ops = {
    .name = "nccl",
    .destroy = nccl_destroy,
    .split = nccl_split,
    .all_reduce_sum = nccl_all_reduce,
    .all_gather = nccl_all_gather,
    .broadcast = nccl_broadcast,
    .send = nccl_send,
    .recv = nccl_recv,
    .barrier = nccl_barrier,
    .abort = nccl_abort,
    .aborted = nccl_aborted,
};

#else
typedef int pgd_comm_nccl_not_built; /* keep the translation unit non-empty */
#endif /* PAGODA_HAVE_NCCL */
