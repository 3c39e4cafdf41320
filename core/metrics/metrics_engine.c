/* metrics_engine.c - one timeline sample from a live engine.
 *
 * Reads the engine's public stats and, through the engine's internal
 * header, its scheduler's queue lengths (the public engine API has no
 * queue counts yet). Batch size is derived from counter differences to the
 * previous sample's stats: batch_tokens = tokens computed since then (the
 * step's ragged batch when sampled every step) and batch_seqs = tokens
 * generated since then (one per sequence that completed its step: every
 * decode plus prefills that finished). swaps = preemptions when the engine
 * preempts by swapping (the engine does not count swaps separately yet). */
#include "engine/engine_impl.h"
#include "metrics/metrics_impl.h"

void pgd_metrics_sample_engine(const pgd_engine *e, const pgd_engine_stats *prev,
                               pgd_timeline_sample *s) {
    pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    *s = (pgd_timeline_sample){0};
    s->time = pgd_engine_now(e);
    s->step = st.steps;
    s->running = pgd_scheduler_num_running(e->sched);
    s->waiting = pgd_scheduler_num_waiting(e->sched);
    s->swapped = pgd_scheduler_num_swapped(e->sched);
    s->batch_tokens = (int)(st.tokens_computed - (prev ? prev->tokens_computed : 0));
    s->batch_seqs = (int)(st.tokens_generated - (prev ? prev->tokens_generated : 0));
    s->kv_used_blocks = st.kv.used_blocks;
    s->kv_num_blocks = st.kv.num_blocks;
    s->kv_logical_blocks = st.kv.logical_blocks;
    s->kv_usage = st.kv.num_blocks > 0 ? (double)st.kv.used_blocks / st.kv.num_blocks : 0;
    s->kv_utilization = st.kv.slots_reserved > 0 ? st.kv.utilization : 1.0;
    s->kv_fragmentation = 1.0 - s->kv_utilization;
    s->preemptions = st.preemptions;
    s->swaps = e->cfg.preemption == PGD_PREEMPT_SWAP ? st.preemptions : 0;
    s->prefix_hit_rate =
        st.kv.prefix_queries > 0 ? (double)st.kv.prefix_hits / (double)st.kv.prefix_queries : 0;
}
