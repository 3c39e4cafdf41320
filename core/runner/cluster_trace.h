/* cluster_trace.h - [experiment] trace_steps through a cluster: every
 * replica's scheduler decision trace in the run's one steps.jsonl.
 *
 * Each line is the replica's scheduler line (scheduler.h, "Decision
 * trace") with "replica":R as its first member and every request id the
 * cluster id (the id requests.csv shows) instead of the replica's engine
 * id, "victim: request N" reasons included:
 *   {"replica":1,"step":7,"batch":[[12,0,0,40,"prefill"]],"admitted":[12]}
 * "step" counts that replica's own scheduler steps. Lines come in the
 * order the steps ran: on the sim one replica per event, in event order;
 * on threads each round's replicas in index order. A script reads one
 * replica's trace with `jq -c 'select(.replica == 1)' steps.jsonl`.
 *
 * How: replica r's engine writes its trace into its own stream (a
 * line-buffered fopencookie stream), so each line is rewritten as it is
 * written, inside that replica's step (in its worker thread on the CPU),
 * while the engine id still maps to its cluster id (a P/D hand-off after
 * the step unmaps it), and kept as the replica's pending text; after
 * every cluster step, pgd_cluster_trace_flush moves the pending text of
 * every replica, in replica order, to the run's trace. */
#ifndef PAGODA_RUNNER_CLUSTER_TRACE_H
#define PAGODA_RUNNER_CLUSTER_TRACE_H

#include <stdio.h>

#include "pagoda/cluster.h"

typedef struct pgd_cluster_trace pgd_cluster_trace;

pgd_status pgd_cluster_trace_create(int replicas, pgd_cluster_trace **out);
/* replicas streams, for pgd_cluster_config.sched_traces (owned by t). */
FILE *const *pgd_cluster_trace_files(pgd_cluster_trace *t);
/* The cluster the engine ids are mapped through (before its first step). */
void pgd_cluster_trace_attach(pgd_cluster_trace *t, const pgd_cluster *c);
/* Append the replicas' lines so far to out (between steps, on the caller's thread);
 * PGD_ERR_OOM when a line could not be kept. */
pgd_status pgd_cluster_trace_flush(pgd_cluster_trace *t, FILE *out);
/* Closes the streams (NULL: no-op); destroy the cluster first, its engines write to them. */
void pgd_cluster_trace_destroy(pgd_cluster_trace *t);

#endif
