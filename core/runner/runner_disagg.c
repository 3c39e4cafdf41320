/* runner_disagg.c - what a P/D run ([cluster] prefill/decode) adds to its
 * results: summary.json's "cluster" section gets {"disagg": {prefill,
 * decode, kv_link_gbps, kv_link_latency_us, transfers, kv_bytes,
 * link_seconds_mean, link_seconds_max, comm_seconds}}, and kv_transfers.csv
 * has one row per hand-off in hand-off order (the KV link's timeline):
 *   request,from,to,kv_bytes,start,ready
 * with the request's cluster id (the workload order of requests.csv), the
 * prefill and decode replicas, the KV bytes the link carried (priced on the
 * sim), and the hand-off and arrival times on the cluster timeline. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "pagoda/disagg.h"
#include "runner/runner_cluster.h"

static pgd_status transfers_csv(const pgd_disagg *d, char **csv, size_t *len) {
    *csv = NULL;
    *len = 0;
    FILE *f = open_memstream(csv, len);
    if (!f) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    fprintf(f, "request,from,to,kv_bytes,start,ready\n");
    int64_t n = pgd_disagg_num_transfers(d);
    for (int64_t i = 0; i < n; i++) {
        const pgd_kv_transfer *t = pgd_disagg_transfer(d, i);
        fprintf(f, "%lld,%d,%d,%zu,%.9f,%.9f\n", (long long)t->request, t->from, t->to, t->kv_bytes, t->start,
                t->ready);
    }
    if (fclose(f) != 0) {
        free(*csv);
        *csv = NULL;
        return pgd_error(PGD_ERR_OOM, "runner: out of memory for kv_transfers.csv");
    }
    return PGD_OK;
}

pgd_status pgd_run_disagg_results(const pgd_disagg *d, int prefill, int decode, json_t *cluster, char **csv,
                                  size_t *csv_len) {
    PGD_TRY(transfers_csv(d, csv, csv_len));
    if (!cluster) return PGD_OK;
    pgd_disagg_stats st;
    pgd_disagg_get_stats(d, &st);
    const pgd_kv_link_config *l = pgd_disagg_link(d);
    json_t *o =
        json_pack("{s:i, s:i, s:f, s:f, s:I, s:f, s:f, s:f, s:f}", "prefill", prefill, "decode", decode, "kv_link_gbps",
                  l->gbps, "kv_link_latency_us", l->latency_us, "transfers", (json_int_t)st.transfers, "kv_bytes",
                  st.kv_bytes, "link_seconds_mean", st.transfers ? st.link_seconds / (double)st.transfers : 0.0,
                  "link_seconds_max", st.max_link_seconds, "comm_seconds", st.comm_seconds);
    if (!o || json_object_set_new(cluster, "disagg", o)) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    return PGD_OK;
}
