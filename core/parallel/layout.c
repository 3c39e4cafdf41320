/* layout.c - turning a parallel layout (tp x pp over a transport) into the
 * backend and load options of this process's ranks: threads per rank (the
 * host's cores divided among the ranks that share it) and hwloc core
 * ranges when pinning. Shared by `pagoda generate`, `bench` and `run`. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/comm.h"
#include "pagoda/parallel.h"

int pgd_parallel_ranks(const pgd_parallel_config *pc) {
    if (!pc) return 1;
    return (pc->tp > 0 ? pc->tp : 1) * (pc->pp > 0 ? pc->pp : 1);
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

pgd_status pgd_parallel_prepare(const pgd_parallel_config *pc, int threads, pgd_backend_config *driver_bc,
                                pgd_backend_config *rank_bc, pgd_model_load_opts *mo) {
    int n = pgd_parallel_ranks(pc);
    const char *comm = pc && pc->comm && *pc->comm ? pc->comm : "threads";
    if (strcmp(comm, "threads") && strcmp(comm, "mpi") && strcmp(comm, "nccl"))
        return pgd_error(PGD_ERR_INVALID, "parallel layout: unknown communicator '%s' (threads, mpi or nccl)", comm);
    int over_mpi = !strcmp(comm, "mpi") || (!strcmp(comm, "nccl") && pgd_comm_mpi_world_size() > 1);
    /* ranks that share this host's cores, and which of them this process is */
    int local = n, local_rank = 0;
    if (over_mpi) {
        local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", n);
        local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", pgd_comm_mpi_world_rank());
        if (local < 1) local = 1;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    int total = threads > 0 ? threads : (int)ncpu;
    int per = total / local > 0 ? total / local : 1;
    if (n > 1 || over_mpi) driver_bc->num_threads = per;
    if (pc && pc->pin && (n > 1 || over_mpi)) {
        driver_bc->pin_rank = local_rank + 1;
        driver_bc->pin_ranks = local;
    }
    if (!strcmp(comm, "nccl")) driver_bc->device = over_mpi ? local_rank : 0; /* one GPU per rank */
    *rank_bc = *driver_bc; /* worker threads set their own pin_rank (and GPU) */
    mo->parallel = pc;
    mo->rank_backend = rank_bc;
    return PGD_OK;
}
