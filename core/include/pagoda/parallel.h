/* parallel.h - setting up a tensor x pipeline parallel layout (see
 * pgd_parallel_config in model.h and the communicator in comm.h). */
#ifndef PAGODA_PARALLEL_H
#define PAGODA_PARALLEL_H

#include "pagoda/backend.h"
#include "pagoda/model.h"

/* tp * pp (1 for NULL). */
int pgd_parallel_ranks(const pgd_parallel_config *pc);

/* Given the layout and the thread budget of this host (`threads`, 0 = all
 * online CPUs), set driver_bc's threads per rank and core pinning, copy it
 * to rank_bc (the backend each worker thread creates), and point mo at
 * both. pc and rank_bc must outlive the model load. */
pgd_status pgd_parallel_prepare(const pgd_parallel_config *pc, int threads, pgd_backend_config *driver_bc,
                                pgd_backend_config *rank_bc, pgd_model_load_opts *mo);

#endif
