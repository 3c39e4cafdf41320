/* sessions.c - the multi-turn arrival loop (sessions.h).
 *
 * State per conversation: the index of its next turn, the time that turn
 * is released (the target's timeline; INFINITY while the previous turn
 * runs) and its history. Each loop pass releases the due turns (first
 * turns in arrival order, later turns whose release time has passed),
 * steps the target, and on every finished turn appends the turn's message
 * and its actual output tokens to the history and schedules the next turn
 * at finish + think_time. When the target is idle the loop sleeps on its
 * timeline to the next release (a virtual clock jumps there). The loop
 * talks to the target only through pgd_session_target; one engine is the
 * target engine_target below builds.
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
    int where = -1;
    pgd_status ast = s->target->add(s->target->ctx, &p, &id, &where);
    free(prompt);
    if (ast == PGD_ERR_OOM || ast == PGD_ERR_DEVICE || ast == PGD_ERR_COMM) return ast;
    if (ast != PGD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", pgd_last_error());
        char by[32] = "";
        if (where >= 0) snprintf(by, sizeof by, " by replica %d", where);
        PGD_LOG_W("run %s: conversation %d turn %d (workload request %d) rejected%s: %s", pgd_run_name(rc), wr->session,
                  wr->turn, i, by, why);
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
    const pgd_session_target *t = s->target;
    PGD_TRY(t->get_output(t->ctx, c->id, &o));
    if (!o->finished) return PGD_OK;
    int i = c->next;
    const pgd_workload_request *wr = pgd_workload_get(s->wl, i);
    PGD_TRY(pgd_metrics_add_output(s->m, o, wr->priority));
    PGD_TRY(pgd_metrics_set_last_turn(s->m, wr->session, wr->turn, wr->num_turns));
    s->token_hash += pgd_run_output_hash(i, o, &s->tokens);
    if (t->recorded) PGD_TRY(t->recorded(t->ctx, c->id, o, wr));
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
    t->release(t->ctx, c->id);
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

static pgd_status run_loop(pgd_session_loop *s) {
    const pgd_session_target *t = s->target;
    const pgd_run_options *opts = s->opts;
    int nconv = pgd_workload_num_sessions(s->wl), maxc = pgd_workload_max_concurrency(s->wl);
    s->n = pgd_workload_count(s->wl);
    conv_state *cv = calloc((size_t)nconv, sizeof *cv);
    if (!cv) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    s->t_start = s->t_end = t->now(t->ctx);
    for (int i = 0; i < s->n; i++) {
        const pgd_workload_request *r = pgd_workload_get(s->wl, i);
        conv_state *c = &cv[r->session];
        if (r->turn == 0) c->first = c->next = i, c->release = s->t_start + r->arrival;
        c->end = i + 1;
    }
    pgd_status st = PGD_OK;
    int in_flight = 0;
    while (s->done < s->n) {
        if (opts && opts->stop && *opts->stop) {
            st = pgd_error(PGD_ERR_INVALID, "run %s: interrupted after %d of %d turns", pgd_run_name(s->rc), s->done,
                           s->n);
            goto done;
        }
        double now = t->now(t->ctx), next_release = INFINITY;
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
        if (t->busy(t->ctx)) {
            int nf = 0;
            pgd_run_progress p = {0};
            if ((st = t->step(t->ctx, &nf, &p))) goto done;
            if (nf > 0)
                for (int k = 0; k < nconv; k++)
                    if (cv[k].running && (st = collect(s, &cv[k], &in_flight))) goto done;
            if (opts && opts->on_progress) {
                p.done = s->done, p.total = s->n, p.tokens = s->tokens, p.elapsed = t->now(t->ctx) - s->t_start;
                opts->on_progress(opts->progress_ctx, &p);
            }
        } else if (in_flight > 0) { /* finished without a step (dropped mid-way) */
            for (int k = 0; k < nconv; k++)
                if (cv[k].running && (st = collect(s, &cv[k], &in_flight))) goto done;
            if (in_flight > 0 && !t->busy(t->ctx)) {
                st = pgd_error(PGD_ERR_INVALID, "runner: %d turns in flight but the engine is idle", in_flight);
                goto done;
            }
        } else if (isfinite(next_release)) {
            if (opts && opts->stop && t->real_time) /* in slices of 0.1 s so that a stop request is seen promptly */
                while (!*opts->stop && t->now(t->ctx) + 0.1 < next_release) t->idle_until(t->ctx, t->now(t->ctx) + 0.1);
            if (!(opts && opts->stop && *opts->stop)) t->idle_until(t->ctx, next_release);
        } else if (s->done < s->n) {
            st = pgd_error(PGD_ERR_INVALID, "runner: %d of %d turns left but none can be released", s->n - s->done,
                           s->n);
            goto done;
        }
    }
    s->t_end = t->now(t->ctx);
done:
    for (int k = 0; k < nconv; k++) pgd_session_history_free(&cv[k].hist);
    free(cv);
    return st;
}

/* ---- one engine as the target (times on its clock) ---- */

typedef struct engine_target {
    pgd_engine *eng;
    pgd_clock *clock;
    pgd_metrics *m;
    double t0c, t_start; /* the clock and the engine time at the loop's start */
    pgd_engine_stats prev;
    int have_prev;
} engine_target;

static double eng_now(void *ctx) { return pgd_engine_now(((engine_target *)ctx)->eng); }
static int eng_busy(void *ctx) { return pgd_engine_has_unfinished(((engine_target *)ctx)->eng); }

static pgd_status eng_add(void *ctx, const pgd_request_params *p, int64_t *id, int *where) {
    *where = -1;
    return pgd_engine_add_request(((engine_target *)ctx)->eng, p, id);
}

static pgd_status eng_get_output(void *ctx, int64_t id, const pgd_request_output **out) {
    return pgd_engine_get_output(((engine_target *)ctx)->eng, id, out);
}

static void eng_release(void *ctx, int64_t id) { pgd_engine_release(((engine_target *)ctx)->eng, id); }

static pgd_status eng_step(void *ctx, int *nf, pgd_run_progress *p) {
    engine_target *e = ctx;
    PGD_TRY(pgd_engine_step(e->eng, nf));
    pgd_engine_stats cur;
    pgd_engine_get_stats(e->eng, &cur);
    pgd_timeline_sample ts;
    pgd_metrics_sample_engine(e->eng, e->have_prev ? &e->prev : NULL, &ts);
    ts.batch_seqs = cur.last_batch_seqs;
    ts.batch_tokens = cur.last_batch_tokens;
    PGD_TRY(pgd_metrics_add_sample(e->m, &ts));
    e->prev = cur;
    e->have_prev = 1;
    p->steps = cur.steps, p->running = ts.running, p->waiting = ts.waiting, p->kv_usage = ts.kv_usage;
    return PGD_OK;
}

static void eng_idle_until(void *ctx, double t) {
    engine_target *e = ctx;
    pgd_clock_sleep_until(e->clock, e->t0c + (t - e->t_start));
}

pgd_status pgd_run_sessions(pgd_session_loop *s) {
    if (s->target) return run_loop(s);
    engine_target e = {
        .eng = s->eng, .clock = s->clock, .m = s->m, .t0c = pgd_clock_now(s->clock), .t_start = pgd_engine_now(s->eng)};
    pgd_session_target t = {.ctx = &e,
                            .real_time = pgd_clock_get_kind(s->clock) == PGD_CLOCK_REAL,
                            .now = eng_now,
                            .busy = eng_busy,
                            .add = eng_add,
                            .get_output = eng_get_output,
                            .release = eng_release,
                            .step = eng_step,
                            .idle_until = eng_idle_until};
    s->target = &t;
    pgd_status st = run_loop(s);
    s->target = NULL;
    return st;
}
