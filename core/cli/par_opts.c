/* par_opts.c - parsing the parallel-layout options (see par_opts.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pagoda/comm.h"
#include "par_opts.h"

int pgd_par_opt(int ch, const char *arg, pgd_parallel_config *pc, int *async) {
    switch (ch) {
    case 0x300: return pgd_cli_int("--tp", arg, 1, 64, &pc->tp) ? 1 : -1;
    case 0x301: return pgd_cli_int("--pp", arg, 1, 64, &pc->pp) ? 1 : -1;
    case 0x302:
        if (strcmp(arg, "threads") && strcmp(arg, "mpi") && strcmp(arg, "nccl")) {
            fprintf(stderr, "pagoda: --comm must be threads, mpi or nccl (got '%s')\n", arg);
            return -1;
        }
        for (const char *const *k = pgd_comm_list(); *k; k++)
            if (!strcmp(*k, arg)) {
                pc->comm = arg;
                return 1;
            }
        fprintf(stderr, "pagoda: --comm %s: this build has no %s support (rebuild with %s found)\n", arg,
                arg, !strcmp(arg, "mpi") ? "Open MPI (libopenmpi-dev)" : "NCCL and CUDA");
        return -1;
    case 0x303: {
        const char *p = arg;
        int any = 0;
        for (; *p; p++) {
            if ((*p < '0' || *p > '9') && *p != ',') break;
            any |= *p != ',';
        }
        if (*p || !any) {
            fprintf(stderr, "pagoda: --stage-layers must be layer counts separated by commas, e.g. 3,2 (got '%s')\n",
                    arg);
            return -1;
        }
        pc->stage_layers = arg;
        return 1;
    }
    case 0x304: pc->pin = 1; return 1;
    case 0x305: *async = 1; return 1;
    default: return 0;
    }
}
