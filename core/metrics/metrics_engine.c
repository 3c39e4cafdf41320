/* metrics_engine.c - one timeline sample from a live engine, from its
 * public stats alone (pgd_engine_get_stats: queue lengths, counters, KV).
 * Batch size is derived from counter differences to the previous sample's
 * stats: batch_tokens = tokens computed since then (the step's ragged batch
 * when sampled every step) and batch_seqs = tokens generated since then
 * (one per sequence that completed its step: every decode plus prefills
 * that finished). swaps = the preemptions that swapped out (in swap mode a
 * preemption recomputes when the host space is short). */
#include "metrics/metrics_impl.h"
#include "pagoda/engine.h"

void pgd_metrics_sample_engine(const pgd_engine *e, const pgd_engine_stats *prev,
                               pgd_timeline_sample *s) {
    pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    *s = (pgd_timeline_sample){0};
    s->time = pgd_engine_now(e);
    s->step = st.steps;
    s->running = st.num_running;
    s->waiting = st.num_waiting;
    s->swapped = st.num_swapped;
    s->batch_tokens = (int)(st.tokens_computed - (prev ? prev->tokens_computed : 0));
    s->batch_seqs = (int)(st.tokens_generated - (prev ? prev->tokens_generated : 0));
    s->kv_used_blocks = st.kv.used_blocks;
    s->kv_num_blocks = st.kv.num_blocks;
    s->kv_logical_blocks = st.kv.logical_blocks;
    s->kv_usage = st.kv.num_blocks > 0 ? (double)st.kv.used_blocks / st.kv.num_blocks : 0;
    s->kv_utilization = st.kv.slots_reserved > 0 ? st.kv.utilization : 1.0;
    s->kv_fragmentation = 1.0 - s->kv_utilization;
    s->preemptions = st.preemptions;
    s->swaps = st.swaps;
    s->prefix_hit_rate =
        st.kv.prefix_queries > 0 ? (double)st.kv.prefix_hits / (double)st.kv.prefix_queries : 0;
}
