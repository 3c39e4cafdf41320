/* runner_cluster.h - the runner's parts shared by the single-engine run
 * (runner.c) and the cluster run (runner_cluster.c, [cluster] replicas > 1). */
#ifndef PAGODA_RUNNER_CLUSTER_H
#define PAGODA_RUNNER_CLUSTER_H

#include "pagoda/exec.h"
#include "pagoda/runner.h"
#include "pagoda/workload.h"

/* The run's executor, engine and workload configs (runner.c). The backend's
 * option strings ("device=...") live in *o, which must outlive *xc. */
typedef struct pgd_run_backend_opts {
    char dev[160], tp[32], prof[4200];
    const char *list[4];
} pgd_run_backend_opts;
void pgd_run_exec_config(const pgd_run_config *rc, pgd_clock *clock, pgd_run_backend_opts *o, pgd_exec_config *xc);
pgd_status pgd_run_engine_config(const pgd_run_config *rc, pgd_clock *clock, pgd_engine_config *ec);
pgd_status pgd_run_workload_config(const pgd_run_config *rc, const pgd_model_config *mc, const pgd_tokenizer *tok,
                                   pgd_workload_config *wc);
/* Workload request i's params (sampling seed = experiment seed + i; arrival t_start + its arrival). */
void pgd_run_request_params(const pgd_run_config *rc, pgd_workload *wl, int i, double t_start, pgd_request_params *p);
/* Finished request `index`'s share of the run's token fingerprint (its index
 * and its first sequence's tokens; the run sums them, so the order requests
 * finish in does not matter); adds that sequence's token count to *tokens. */
uint64_t pgd_run_output_hash(int index, const pgd_request_output *o, int64_t *tokens);
/* Wrap the last error as "FILE: run NAME: [section]: message". */
pgd_status pgd_run_ctx_error(pgd_status st, const pgd_run_config *rc, const char *section);

/* summary.json's cluster.disagg section (P/D replicas, the KV link, the
 * transfers' totals) and kv_transfers.csv's text (*csv malloc'd, one row per
 * hand-off) (runner_disagg.c). */
struct pgd_disagg;
struct json_t;
pgd_status pgd_run_disagg_results(const struct pgd_disagg *d, int prefill, int decode, struct json_t *cluster,
                                  char **csv, size_t *csv_len);

/* pgd_run_execute for [cluster] replicas > 1 (runner_cluster.c). */
pgd_status pgd_run_execute_cluster(const pgd_run_config *rc, const pgd_run_options *opts, pgd_run_result *out);

#endif
