/* sarathi.c - fcfs with Sarathi-Serve's stall-free batching knobs
 * (Agrawal et al., OSDI'24), as the scheduler's budget hooks:
 *  - chunk_limit: a long-prefill cap, each prefill computes at most a
 *    quarter of the step's token budget per step, so several prompts share
 *    a step instead of one long prompt taking all of it;
 *  - may_admit: at most SARATHI_PARTIAL groups with a partly computed
 *    prompt at once (vLLM's max_num_partial_prefills);
 *  - prefill_budget: new prefills take at most three quarters of a step's
 *    budget, so a burst of arrivals cannot stretch a step (and the running
 *    decodes' inter-token time) much beyond the decodes' own.
 * Running decodes go first, as in every policy. The budget hooks act only
 * where prompts may be split (chunked prefill on); order and victim are
 * fcfs's. */
#include <stdint.h>

#include "policy.h"

enum { SARATHI_PARTIAL = 4 };

static pgd_status sarathi_init(const pgd_policy_env *env, void **self) {
    /* the step's token budget rides in the pointer value: nothing to allocate or free */
    *self = (void *)(intptr_t)env->max_num_batched_tokens;
    return PGD_OK;
}

static int partial(const pgd_sched_group *g) {
    for (int i = 0; i < g->num_seqs; i++)
        if (g->seqs[i]->len - g->seqs[i]->computed > 1) return 1;
    return 0;
}

static int sarathi_may_admit(void *self, const pgd_sched_group *g, const pgd_policy_view *v) {
    (void)self;
    (void)g;
    int n = 0;
    for (int i = 0; i < v->n_running; i++) n += partial(v->running[i]);
    return n < SARATHI_PARTIAL;
}

static int sarathi_prefill_budget(void *self, int total, int left) {
    (void)self;
    int cap = total - total / 4;
    return left < cap ? left : cap;
}

static int sarathi_chunk_limit(void *self, const pgd_sched_group *g, int left) {
    (void)g;
    int cap = (int)(intptr_t)self / 4;
    if (cap < 1) cap = 1;
    return left < cap ? left : cap;
}

const struct pgd_policy_ops pgd_policy_sarathi = {
    .name = "sarathi",
    .init = sarathi_init,
    .order = pgd_group_cmp_arrival,
    .may_admit = sarathi_may_admit,
    .prefill_budget = sarathi_prefill_budget,
    .chunk_limit = sarathi_chunk_limit,
};
