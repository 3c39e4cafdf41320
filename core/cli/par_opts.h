/* par_opts.h - the parallel-layout options shared by `pagoda generate` and
 * `pagoda bench`: --tp N --pp M --comm threads|mpi|nccl
 * --stage-layers A,B,... --pin. */
#ifndef PAGODA_CLI_PAR_OPTS_H
#define PAGODA_CLI_PAR_OPTS_H

#include "pagoda/model.h"

/* getopt_long entries (values 0x300..0x304); put them in the option table. */
#define PGD_PAR_LONGOPTS                                                                          \
    {"tp", required_argument, 0, 0x300}, {"pp", required_argument, 0, 0x301},                      \
        {"comm", required_argument, 0, 0x302}, {"stage-layers", required_argument, 0, 0x303},      \
        {"pin", no_argument, 0, 0x304}, {"async", no_argument, 0, 0x305}

#define PGD_PAR_USAGE                                                                             \
    "  --tp N         tensor-parallel ranks (heads and FFN split N ways; default 1)\n"              \
    "  --pp M         pipeline stages (layers split M ways; default 1)\n"                           \
    "  --comm KIND    threads (default: ranks are threads), mpi (ranks are the processes of\n"      \
    "                 `mpirun -np TP*PP pagoda ...`), nccl (GPU ranks)\n"                           \
    "  --stage-layers A,B,..  layers per stage (default: even split)\n"                             \
    "  --pin          bind each rank's threads to its own cores (hwloc)\n"                        \
    "  --async        one more batch in flight: scheduling and sampling overlap the pass\n"

/* Handle option `ch`: 1 = taken, 0 = not a parallel option, -1 = bad value
 * (message printed). --async sets *async. */
int pgd_par_opt(int ch, const char *arg, pgd_parallel_config *pc, int *async);

#endif
