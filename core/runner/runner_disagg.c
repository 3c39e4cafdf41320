/* runner_disagg.c - what a P/D run ([cluster] prefill/decode) adds to
 * summary.json's "cluster" section: {"disagg": {prefill, decode,
 * kv_link_gbps, kv_link_latency_us, transfers, kv_bytes, link_seconds_mean,
 * link_seconds_max, comm_seconds, "kv_transfers": [[request, from, to,
 * kv_bytes, start, ready], ...]}}; times on the cluster timeline, the
 * transfers in hand-off order (the timeline of the KV link). */
#include <jansson.h>

#include "pagoda/disagg.h"
#include "runner/runner_cluster.h"

pgd_status pgd_run_disagg_results(const pgd_disagg *d, int prefill, int decode, json_t *cluster) {
    if (!cluster) return PGD_OK;
    pgd_disagg_stats st;
    pgd_disagg_get_stats(d, &st);
    const pgd_kv_link_config *l = pgd_disagg_link(d);
    json_t *o = json_object(), *arr = json_array();
    if (!o || !arr) goto oom;
    int64_t n = pgd_disagg_num_transfers(d);
    for (int64_t i = 0; i < n; i++) {
        const pgd_kv_transfer *t = pgd_disagg_transfer(d, i);
        json_t *row = json_pack("[IiiIff]", (json_int_t)t->request, t->from, t->to, (json_int_t)t->kv_bytes,
                                t->start, t->ready);
        if (!row || json_array_append_new(arr, row)) goto oom;
    }
    if (json_object_set_new(o, "prefill", json_integer(prefill)) || json_object_set_new(o, "decode", json_integer(decode)) ||
        json_object_set_new(o, "kv_link_gbps", json_real(l->gbps)) ||
        json_object_set_new(o, "kv_link_latency_us", json_real(l->latency_us)) ||
        json_object_set_new(o, "transfers", json_integer(st.transfers)) ||
        json_object_set_new(o, "kv_bytes", json_real(st.kv_bytes)) ||
        json_object_set_new(o, "link_seconds_mean", json_real(st.transfers ? st.link_seconds / st.transfers : 0)) ||
        json_object_set_new(o, "link_seconds_max", json_real(st.max_link_seconds)) ||
        json_object_set_new(o, "comm_seconds", json_real(st.comm_seconds)) ||
        json_object_set_new(o, "kv_transfers_columns",
                            json_pack("[ssssss]", "request", "from", "to", "kv_bytes", "start", "ready")))
        goto oom;
    json_object_set_new(o, "kv_transfers", arr);
    arr = NULL;
    if (json_object_set_new(cluster, "disagg", o)) {
        o = NULL;
        goto oom;
    }
    return PGD_OK;
oom:
    json_decref(o);
    json_decref(arr);
    return pgd_error(PGD_ERR_OOM, "runner: out of memory");
}
