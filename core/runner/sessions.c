/* sessions.c - the multi-turn arrival loop (sessions.h).
 *
 * State per conversation: the index of its next turn, the time that turn
 * is released (engine clock; INFINITY while the previous turn runs) and
 * its history. Each loop pass releases the due turns (first turns in
 * arrival order, later turns whose release time has passed), steps the
 * engine, and on every finished turn appends the turn's message and its
 * actual output tokens to the history and schedules the next turn at
 * finish + think_time. When the engine is idle the loop sleeps on the
 * engine's clock to the next release (a virtual clock jumps there).
 *
 * Invariants: turn k of a conversation is added only after turn k-1 has
 * been recorded; every turn is recorded exactly once (finished, rejected,
 * or failed because an earlier turn failed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/log.h"
#include "runner/runner_cluster.h"
#include "runner/sessions.h"

typedef struct conv_state {
    int first, end;   /* workload indices [first, end) */
    int next;         /* next turn's workload index (end = finished) */
    double release;   /* engine clock time the next turn may be added */
    int running;      /* a turn is in the engine */
    int held;         /* its next turn was due but held back by the concurrency limit */
    int64_t id;       /* its engine id */
    pgd_session_history hist;
} conv_state;

/* Record turns [from, c->end) of a conversation as failed because an earlier turn failed. */
static pgd_status fail_rest(pgd_session_loop *s, conv_state *c, int from, double now) {
    for (int i = from; i < c->end; i++) {
        const pgd_workload_request *r = pgd_workload_get(s->wl, i);
        pgd_request_record rec = {.id = -1 - i, .arrival = now, .first_scheduled = -1, .first_token = -1,
                                  .finish = now, .prompt_tokens = r->n_prompt, .priority = r->priority,
                                  .finish_reason = "error", .error = "an earlier turn of its conversation failed"};
        PGD_TRY(pgd_metrics_add_request(s->m, &rec));
        PGD_TRY(pgd_metrics_set_last_turn(s->m, r->session, r->turn, r->num_turns));
        s->done++;
    }
    c->next = c->end;
    pgd_session_history_free(&c->hist);
    return PGD_OK;
}

static pgd_status submit(pgd_session_loop *s, conv_state *c, double now, int *in_flight) {
    const pgd_run_config *rc = s->rc;
    int i = c->next;
    const pgd_workload_request *wr = pgd_workload_get(s->wl, i);
    pgd_request_params p = {0};
    p.sampling.temperature = (float)pgd_run_get_num(rc, "sampling", "temperature");
    p.sampling.top_k = pgd_run_get_int(rc, "sampling", "top_k");
    p.sampling.top_p = (float)pgd_run_get_num(rc, "sampling", "top_p");
    p.sampling.seed = pgd_run_get_u64(rc, "experiment", "seed") + (uint64_t)i;
    pgd_workload_fill_params(s->wl, i, s->t_start, &p);
    p.n = pgd_run_get_int(rc, "sampling", "n");
    p.beam_width = pgd_run_get_int(rc, "sampling", "beam_width");
    p.arrival_time = wr->turn == 0 ? s->t_start + wr->arrival : c->release;
    if (c->held) p.arrival_time = now; /* as the single-turn loop: held back, it counts from its submission */
    c->held = 0;
    int32_t *prompt = NULL;
    int n = 0;
    PGD_TRY(pgd_workload_turn_prompt(s->wl, i, &c->hist, &prompt, &n, NULL));
    p.prompt = prompt;
    p.n_prompt = n;
    int64_t id;
    pgd_status ast = pgd_engine_add_request(s->eng, &p, &id);
    free(prompt);
    if (ast == PGD_ERR_OOM || ast == PGD_ERR_DEVICE || ast == PGD_ERR_COMM) return ast;
    if (ast != PGD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", pgd_last_error());
        PGD_LOG_W("run %s: conversation %d turn %d (workload request %d) rejected: %s", pgd_run_name(rc),
                  wr->session, wr->turn, i, why);
        pgd_request_record r = {.id = -1 - i, .arrival = p.arrival_time, .first_scheduled = -1, .first_token = -1,
                                .finish = now, .prompt_tokens = n, .priority = p.priority, .finish_reason = "error",
                                .error = why};
        PGD_TRY(pgd_metrics_add_request(s->m, &r));
        PGD_TRY(pgd_metrics_set_last_turn(s->m, wr->session, wr->turn, wr->num_turns));
        s->rejected++;
        s->done++;
        return fail_rest(s, c, i + 1, now);
    }
    c->running = 1;
    c->id = id;
    c->release = INFINITY;
    (*in_flight)++;
    return PGD_OK;
}

/* Collect conversation c's running turn if it finished. */
static pgd_status collect(pgd_session_loop *s, conv_state *c, int *in_flight) {
    const pgd_request_output *o = NULL;
    PGD_TRY(pgd_engine_get_output(s->eng, c->id, &o));
    if (!o->finished) return PGD_OK;
    int i = c->next;
    const pgd_workload_request *wr = pgd_workload_get(s->wl, i);
    PGD_TRY(pgd_metrics_add_output(s->m, o, wr->priority));
    PGD_TRY(pgd_metrics_set_last_turn(s->m, wr->session, wr->turn, wr->num_turns));
    s->token_hash += pgd_run_output_hash(i, o, &s->tokens);
    int ok = o->finish_reason && (!strcmp(o->finish_reason, "stop") || !strcmp(o->finish_reason, "length"));
    const int32_t *out = o->num_seqs > 0 ? o->seqs[0].tokens : NULL;
    int n_out = o->num_seqs > 0 ? o->seqs[0].n_tokens : 0;
    double finish = o->finish;
    /* the history grows by this turn's message and the model's actual output */
    pgd_status st = PGD_OK;
    if (ok && i + 1 < c->end) {
        if (wr->turn == 0) st = pgd_session_history_append(&c->hist, wr->prompt, wr->n_prompt);
        else st = pgd_session_history_append(&c->hist, wr->prompt, wr->n_prompt);
        if (st == PGD_OK) st = pgd_session_history_append(&c->hist, out, n_out);
    }
    pgd_engine_release(s->eng, c->id);
    c->running = 0;
    (*in_flight)--;
    s->done++;
    PGD_TRY(st);
    if (!ok) return fail_rest(s, c, i + 1, finish);
    c->next = i + 1;
    if (c->next < c->end) c->release = finish + pgd_workload_think_time(s->wl);
    else pgd_session_history_free(&c->hist);
    return PGD_OK;
}

pgd_status pgd_run_sessions(pgd_session_loop *s) {
    pgd_engine *eng = s->eng;
    const pgd_run_options *opts = s->opts;
    int nconv = pgd_workload_num_sessions(s->wl), maxc = pgd_workload_max_concurrency(s->wl);
    s->n = pgd_workload_count(s->wl);
    conv_state *cv = calloc((size_t)nconv, sizeof *cv);
    if (!cv) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    s->t_start = s->t_end = pgd_engine_now(eng);
    double t0c = pgd_clock_now(s->clock);
    for (int i = 0; i < s->n; i++) {
        const pgd_workload_request *r = pgd_workload_get(s->wl, i);
        conv_state *c = &cv[r->session];
        if (r->turn == 0) c->first = c->next = i, c->release = s->t_start + r->arrival;
        c->end = i + 1;
    }
    pgd_status st = PGD_OK;
    pgd_engine_stats prev, cur;
    int have_prev = 0, in_flight = 0;
    while (s->done < s->n) {
        if (opts && opts->stop && *opts->stop) {
            st = pgd_error(PGD_ERR_INVALID, "run %s: interrupted after %d of %d turns", pgd_run_name(s->rc), s->done,
                           s->n);
            goto done;
        }
        double now = pgd_engine_now(eng), next_release = INFINITY;
        /* release due turns (conversations are in arrival order, so first turns go in order) */
        for (int k = 0; k < nconv; k++) {
            conv_state *c = &cv[k];
            if (c->running || c->next >= c->end) continue;
            if (c->release <= now && (maxc <= 0 || in_flight < maxc)) {
                if ((st = submit(s, c, now, &in_flight))) goto done;
            } else if (c->release <= now) {
                c->held = 1;
            } else if (c->release < next_release) {
                next_release = c->release;
            }
        }
        if (pgd_engine_has_unfinished(eng)) {
            int nf = 0;
            if ((st = pgd_engine_step(eng, &nf))) goto done;
            pgd_engine_get_stats(eng, &cur);
            pgd_timeline_sample ts;
            pgd_metrics_sample_engine(eng, have_prev ? &prev : NULL, &ts);
            ts.batch_seqs = cur.last_batch_seqs;
            ts.batch_tokens = cur.last_batch_tokens;
            if ((st = pgd_metrics_add_sample(s->m, &ts))) goto done;
            prev = cur;
            have_prev = 1;
            if (nf > 0)
                for (int k = 0; k < nconv; k++)
                    if (cv[k].running && (st = collect(s, &cv[k], &in_flight))) goto done;
            if (opts && opts->on_progress) {
                pgd_run_progress p = {.done = s->done, .total = s->n, .tokens = s->tokens,
                                      .elapsed = pgd_engine_now(eng) - s->t_start, .steps = cur.steps};
                opts->on_progress(opts->progress_ctx, &p);
            }
        } else if (in_flight > 0) { /* finished without a step (dropped mid-way) */
            for (int k = 0; k < nconv; k++)
                if (cv[k].running && (st = collect(s, &cv[k], &in_flight))) goto done;
            if (in_flight > 0 && !pgd_engine_has_unfinished(eng)) {
                st = pgd_error(PGD_ERR_INVALID, "runner: %d turns in flight but the engine is idle", in_flight);
                goto done;
            }
        } else if (isfinite(next_release)) {
            double until = t0c + (next_release - s->t_start);
            if (opts && opts->stop && pgd_clock_get_kind(s->clock) == PGD_CLOCK_REAL)
                while (!*opts->stop && pgd_clock_now(s->clock) + 0.1 < until)
                    pgd_clock_sleep_until(s->clock, pgd_clock_now(s->clock) + 0.1);
            if (!(opts && opts->stop && *opts->stop)) pgd_clock_sleep_until(s->clock, until);
        } else if (s->done < s->n) {
            st = pgd_error(PGD_ERR_INVALID, "runner: %d of %d turns left but none can be released", s->n - s->done,
                           s->n);
            goto done;
        }
    }
    s->t_end = pgd_engine_now(eng);
done:
    for (int k = 0; k < nconv; k++) pgd_session_history_free(&cv[k].hist);
    free(cv);
    return st;
}
