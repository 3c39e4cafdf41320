/* comm_bench.h - communicator microbenchmark (core/parallel/comm_bench.c),
 * meant for a hidden `pagoda comm-bench` subcommand. */
#ifndef PAGODA_COMM_BENCH_H
#define PAGODA_COMM_BENCH_H

/* argv[0] is the subcommand name. Options:
 *   --comm threads|mpi   transport (default threads; mpi under mpirun)
 *   --ranks N            threads: number of rank threads (default 2)
 *   --min BYTES --max BYTES   message sizes, x4 steps (default 4K..16M;
 *                        K/M suffixes accepted)
 *   --dtype f32|f16|bf16 all-reduce element type (default f32)
 * Prints one table row per size on rank 0: all_reduce_sum latency (mean
 * and best of the timed calls), algorithm bandwidth (bytes / time) and bus
 * bandwidth (x 2(n-1)/n, comparable across rank counts), then a send/recv
 * ping-pong row set. Returns a process exit status. */
int pgd_comm_bench_main(int argc, char **argv);

#endif
