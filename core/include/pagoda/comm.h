/* comm.h - the communicator under tensor and pipeline parallelism.
 *
 * One interface, several transports:
 *   threads  ranks are threads of one process; buffers are exchanged
 *            through shared memory (core/parallel/comm_threads.c)
 *   mpi      ranks are processes started by `mpirun` (Open MPI), on one or
 *            many hosts (core/parallel/comm_mpi.c; built when MPI is found)
 *   nccl     GPU ranks; buffers are device pointers (core/parallel/
 *            comm_nccl.c; built when NCCL and the CUDA backend are found)
 *
 * Buffers are pointers of the rank's backend (host memory for the CPU
 * backend). Every call is blocking: when it returns the data is in place
 * and the send buffer may be reused. Collectives must be called by every
 * rank of the communicator in the same order with the same counts.
 *
 * Failure: a rank that fails calls pgd_comm_abort(); every rank blocked in
 * (or later entering) a call of that communicator then returns
 * PGD_ERR_COMM with the aborting rank's reason instead of hanging. Under
 * MPI the abort ends the job (MPI_Abort) after printing the reason; a rank
 * process that dies is reported by mpirun. */
#ifndef PAGODA_COMM_H
#define PAGODA_COMM_H

#include <stddef.h>

#include "pagoda/dtype.h"
#include "pagoda/status.h"

typedef struct pgd_comm pgd_comm;

/* Names of the transports compiled into this build ("threads" always,
 * "mpi" and "nccl" when found), NULL-terminated. */
const char *const *pgd_comm_list(void);

/* threads: create `n` communicator handles sharing one state, one per rank
 * (comms[r] has rank r). Each rank's thread uses only its own handle.
 * Destroy each handle once (from any thread, after all ranks are done). */
pgd_status pgd_comm_threads_create(int n, pgd_comm **comms);

/* mpi: initialise MPI if needed (MPI_Init_thread, MPI_THREAD_SERIALIZED) and
 * wrap MPI_COMM_WORLD. Returns PGD_ERR_UNSUPPORTED when the build has no
 * MPI. pgd_comm_mpi_world_size() gives the world size without creating a
 * communicator (1 when not launched by mpirun or no MPI). */
pgd_status pgd_comm_mpi_create(pgd_comm **out);
int pgd_comm_mpi_world_size(void);
int pgd_comm_mpi_world_rank(void);
/* Call once at exit of a process that created an MPI communicator
 * (MPI_Finalize); harmless otherwise. */
void pgd_comm_mpi_finalize(void);

/* nccl: one GPU rank per MPI rank (the unique id is broadcast over `boot`,
 * an MPI communicator) or per thread (boot = a threads communicator) on
 * device `device`. Returns PGD_ERR_UNSUPPORTED when the build has no NCCL. */
pgd_status pgd_comm_nccl_create(pgd_comm *boot, int device, pgd_comm **out);

/* sim: rank 0 of n identical tensor-parallel ranks of the simulator
 * (core/parallel/comm_sim.c): collectives move no data and advance the
 * clock of backend `sim` (borrowed; its "clock" request) by what they cost
 * on its device's links (its "link_seconds" request, pagoda/backend.h);
 * point-to-point is unsupported. */
struct pgd_backend;
pgd_status pgd_comm_sim_create(int n, struct pgd_backend *sim, pgd_comm **out);

int pgd_comm_rank(const pgd_comm *c);
int pgd_comm_size(const pgd_comm *c);
const char *pgd_comm_kind(const pgd_comm *c); /* "threads", "mpi", "nccl" */

/* Sub-communicator of the ranks that pass the same `color`, ordered by
 * `key` (then by parent rank); color < 0 joins no group (*out = NULL).
 * Collective over the parent. The child is destroyed separately (before
 * its parent). */
pgd_status pgd_comm_split(pgd_comm *c, int color, int key, pgd_comm **out);

/* In-place sum over ranks of `count` elements of dtype dt (f32, f16 or
 * bf16; f16/bf16 are summed in f32 and rounded once). */
pgd_status pgd_comm_all_reduce_sum(pgd_comm *c, void *buf, size_t count, pgd_dtype dt);
/* recv holds size * count elements: rank r's `send` at recv + r * count.
 * send may be recv + rank * count (in place). */
pgd_status pgd_comm_all_gather(pgd_comm *c, const void *send, void *recv, size_t count,
                               pgd_dtype dt);
pgd_status pgd_comm_broadcast(pgd_comm *c, void *buf, size_t bytes, int root);
/* Point-to-point; `tag` (0..32767) separates streams between the same pair
 * of ranks (messages with the same tag arrive in order; NCCL ignores tags
 * and matches in issue order). A recv must ask for exactly the bytes sent.
 * threads and MPI buffer sends (the sender does not wait for the receiver);
 * NCCL's send blocks until the receiver posts. */
pgd_status pgd_comm_send(pgd_comm *c, const void *buf, size_t bytes, int dst, int tag);
pgd_status pgd_comm_recv(pgd_comm *c, void *buf, size_t bytes, int src, int tag);
pgd_status pgd_comm_barrier(pgd_comm *c);

/* Mark the communicator failed with a reason (printf-style); see above. */
void pgd_comm_abort(pgd_comm *c, const char *fmt, ...);

/* Seconds this handle spent inside communication calls since creation
 * (wall time, waiting included), for the communication share of a step. */
double pgd_comm_seconds(const pgd_comm *c);

void pgd_comm_destroy(pgd_comm *c);

#endif
