/* layout.c - the size of a parallel layout, and whether this process
 * drives or serves one. (How a layout's ranks get the host's threads and
 * cores: core/exec/exec.c.) */
#include <string.h>

#include "pagoda/comm.h"
#include "pagoda/parallel.h"

int pgd_parallel_ranks(const pgd_parallel_config *pc) {
    if (!pc) return 1;
    return (pc->tp > 0 ? pc->tp : 1) * (pc->pp > 0 ? pc->pp : 1);
}

int pgd_parallel_process_serves(const pgd_parallel_config *pc) {
    const char *c = pc && pc->comm ? pc->comm : "threads";
    if (pc && !strcmp(c, "threads")) return 0;
    return pgd_comm_mpi_world_size() > 1 && pgd_comm_mpi_world_rank() > 0;
}

int pgd_parallel_process_index(void) { return pgd_comm_mpi_world_size() > 1 ? pgd_comm_mpi_world_rank() : 0; }
