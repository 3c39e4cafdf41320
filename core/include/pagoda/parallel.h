/* parallel.h - tensor x pipeline parallel layouts (pgd_parallel_config in
 * model.h; an executor runs them: exec.h; the communicator: comm.h). */
#ifndef PAGODA_PARALLEL_H
#define PAGODA_PARALLEL_H

#include "pagoda/model.h"

/* tp * pp (1 for NULL). */
int pgd_parallel_ranks(const pgd_parallel_config *pc);

/* Does this process serve another's executor rather than drive one (an
 * mpirun rank other than the first, under a layout over MPI; pc = NULL:
 * under any such layout)? Such a process writes no results. */
int pgd_parallel_process_serves(const pgd_parallel_config *pc);
/* This process's index in its mpirun job (0 outside one), for messages. */
int pgd_parallel_process_index(void);

#endif
