/* sched_trace.c - the per-step decision trace (scheduler.h, "Decision
 * trace"): the step's plan and the reasons recorded while it was made,
 * written as one JSON line. Only numbers and fixed words are written, so
 * no escaping is needed. */
#include <stdlib.h>

#include "sched_impl.h"

pgd_status pgd_sched_trace_pre_push(pgd_scheduler *s, int64_t req, int64_t for_req, int why) {
    if (!s->cfg.trace) return PGD_OK;
    if (s->n_tr_pre == s->cap_tr_pre) {
        int c = s->cap_tr_pre ? 2 * s->cap_tr_pre : 16;
        pgd_sched_trace_pre *p = realloc(s->tr_pre, sizeof *p * (size_t)c);
        if (!p) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        s->tr_pre = p;
        s->cap_tr_pre = c;
    }
    s->tr_pre[s->n_tr_pre++] = (pgd_sched_trace_pre){.req = req, .for_req = for_req, .why = why};
    return PGD_OK;
}

pgd_status pgd_sched_trace_in_push(pgd_scheduler *s, int64_t req, char kind) {
    if (!s->cfg.trace) return PGD_OK;
    if (s->n_tr_in == s->cap_tr_in) {
        int c = s->cap_tr_in ? 2 * s->cap_tr_in : 16;
        int64_t *p = realloc(s->tr_in, sizeof *p * (size_t)c);
        if (!p) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        s->tr_in = p;
        char *k = realloc(s->tr_kind, (size_t)c);
        if (!k) return pgd_error(PGD_ERR_OOM, "scheduler: out of memory");
        s->tr_kind = k;
        s->cap_tr_in = c;
    }
    s->tr_in[s->n_tr_in] = req;
    s->tr_kind[s->n_tr_in++] = kind;
    return PGD_OK;
}

static int seq_index(const pgd_sched_group *g, const pgd_sched_seq *q) {
    for (int i = 0; i < g->num_seqs; i++)
        if (g->seqs[i] == q) return i;
    return -1;
}

void pgd_sched_trace_write(pgd_scheduler *s) {
    FILE *f = s->cfg.trace;
    const pgd_sched_plan *p = &s->plan;
    if (!f) return;
    if (p->num_items == 0 && p->num_preempted == 0 && p->num_dropped == 0 && pgd_pol_len(s, s->waiting) == 0 &&
        s->n_tr_in == 0)
        return;
    fprintf(f, "{\"step\":%d", s->step_no);
    if (p->num_items) {
        fputs(",\"batch\":[", f);
        for (int i = 0; i < p->num_items; i++) {
            const pgd_sched_item *it = &p->items[i];
            int decode = it->num_new_tokens == 1 && it->start >= it->group->prompt_len;
            fprintf(f, "%s[%lld,%d,%d,%d,\"%s\"]", i ? "," : "", (long long)it->group->id,
                    seq_index(it->group, it->seq), it->start, it->num_new_tokens, decode ? "decode" : "prefill");
        }
        fputc(']', f);
    }
    static const char *const kinds[2] = {"admitted", "swapped_in"};
    for (int k = 0; k < 2; k++) {
        int n = 0;
        for (int i = 0; i < s->n_tr_in; i++) {
            if (s->tr_kind[i] != k) continue;
            if (n++ == 0) fprintf(f, ",\"%s\":[", kinds[k]);
            else fputc(',', f);
            fprintf(f, "%lld", (long long)s->tr_in[i]);
        }
        if (n) fputc(']', f);
    }
    if (p->num_preempted) {
        fputs(",\"preempted\":[", f);
        for (int i = 0; i < p->num_preempted; i++) {
            const pgd_sched_group *g = p->preempted[i];
            const pgd_sched_trace_pre *t = NULL;
            for (int j = 0; j < s->n_tr_pre; j++)
                if (s->tr_pre[j].req == g->id) t = &s->tr_pre[j];
            fprintf(f, "%s[%lld,\"%s\",\"", i ? "," : "", (long long)g->id,
                    g->state == PGD_SCHED_SWAPPED ? "swap" : "recompute");
            if (!t || t->why == 1) fputs("an append ran out of KV blocks", f);
            else if (t->why == 2) fputs("alone and out of KV blocks: recomputed to share its prefix again", f);
            else if (t->for_req == g->id) fputs("no free KV block for its own next tokens; the policy chose it", f);
            else fprintf(f, "victim: request %lld needed KV blocks for its next tokens", (long long)t->for_req);
            fputs("\"]", f);
        }
        fputc(']', f);
    }
    if (p->num_dropped) {
        fputs(",\"dropped\":[", f);
        for (int i = 0; i < p->num_dropped; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)p->dropped[i]->id);
        fputc(']', f);
    }
    if (pgd_pol_len(s, s->waiting) > 0) {
        const pgd_sched_group *h = pgd_pol_peek(s, s->waiting);
        fprintf(f, ",\"waiting\":{\"head\":%lld,\"why\":\"%s\",\"behind\":%d}", (long long)h->id,
                s->wait_why ? s->wait_why : "policy", pgd_pol_len(s, s->waiting) - 1);
    }
    int nop[3] = {0, 0, 0};
    for (int i = 0; i < p->num_ops; i++) nop[p->ops[i].kind]++;
    if (p->num_ops)
        fprintf(f, ",\"ops\":{\"swap_out\":%d,\"copy\":%d,\"swap_in\":%d}", nop[PGD_OP_SWAP_OUT], nop[PGD_OP_COPY],
                nop[PGD_OP_SWAP_IN]);
    fputs("}\n", f);
}
