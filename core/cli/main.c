/* main.c - entry point of the `pagoda` command: dispatches subcommands
 * (their shared helpers: cli.h, cli_util.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pagoda/status.h"
#include "parallel/comm_bench.h"
#include "util/suggest.h"
#include "util/version.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate   run prompts through a model and print the continuation\n"
            "  serve      an OpenAI-compatible HTTP server (completions, chat, SSE streams, /metrics)\n"
            "  bench      measure decode/prefill speed of a model on this machine\n"
            "  bench serve  replay an experiment's workload against an OpenAI-compatible server (HTTP)\n"
            "  profile    time every backend op over a grid of shapes: the sim's calibration table\n"
            "  run        run an experiment config (every sweep point) and write its results\n"
            "  plot       draw an experiment's results with gnuplot (PNG and SVG)\n"
            "  table      merge the runs.csv of several experiments into one table (CSV or Markdown)\n"
            "  compare    compare two results against regression thresholds\n"
            "  sim-check  hold the sim's GPU cost model against measured op times (Vidur files)\n"
            "  perf       the performance gate's workloads and verdicts (scripts/perf_gate.sh)\n"
            "  explain    one request's life from a run's decision trace (steps.jsonl)\n"
            "  comm-bench communicator microbenchmark (all-reduce, send/recv; threads or mpi)\n"
            "  version    print the version, commit and build options (also --version)\n"
            "\n"
            "Run 'pagoda <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "generate")) return pgd_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench") && argc > 2 && !strcmp(argv[2], "serve")) return pgd_cmd_bench_serve(argc - 2, argv + 2);
    if (!strcmp(cmd, "serve")) return pgd_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return pgd_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile")) return pgd_cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return pgd_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "plot")) return pgd_cmd_plot(argc - 1, argv + 1);
    if (!strcmp(cmd, "table")) return pgd_cmd_table(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare")) return pgd_cmd_compare(argc - 1, argv + 1);
    if (!strcmp(cmd, "sim-check")) return pgd_cmd_sim_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "perf")) return pgd_cmd_perf(argc - 1, argv + 1);
    if (!strcmp(cmd, "explain")) return pgd_cmd_explain(argc - 1, argv + 1);
    if (!strcmp(cmd, "comm-bench")) return pgd_comm_bench_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        pgd_version_print(stdout);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    static const char *const cmds[] = {"generate", "serve", "bench", "profile", "run", "plot", "table", "explain", "compare",
                                       "sim-check", "perf", "comm-bench", "version", "help", NULL};
    const char *best = pgd_suggest(cmd, cmds, (size_t)-1);
    if (best) fprintf(stderr, "pagoda: unknown command '%s' (did you mean '%s'?)\n\n", cmd, best);
    else fprintf(stderr, "pagoda: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
