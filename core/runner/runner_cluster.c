/* runner_cluster.c - one run over [cluster] replicas > 1 engines behind a
 * router (cluster.h): the arrival loop of runner.c on the cluster's
 * timeline. Requests are routed when the cluster's time reaches their
 * arrival; each cluster step steps the earliest busy replica (the sim) or
 * every busy replica in its own thread (the CPU). Every finished request is
 * recorded in the cluster's metrics and in its replica's (times on the
 * cluster timeline); the cluster timeline gets one sample per cluster step
 * (queues, batches and KV blocks summed over the replicas, the cumulative
 * prefix hit rate over all of them), each replica's timeline one sample
 * per step of its own.
 *
 * Invariants (as run_loop): requests are submitted in workload order, at
 * most max_concurrency in flight, each recorded exactly once; the token
 * fingerprint hashes tokens by workload index, so it equals a one-engine
 * run's whenever the tokens are the same.
 *
 * Multi-turn workloads: runner/sessions.c's loop drives the cluster
 * (cl_target below): each turn is routed like any request when it is
 * released (the previous turn's finish + think time, on the cluster's
 * timeline), every finished turn is recorded in the cluster's metrics and
 * in its replica's (summary.json's "turns", and each per_replica entry's).
 * [experiment] trace_steps: every replica's decision trace in one
 * steps.jsonl with a replica member (runner/cluster_trace.h); not over MPI.
 *
 * [cluster] comm = mpi: replica r on rank r of `mpirun -np replicas` (P/D:
 * `-np prefill+decode`, the KV going rank to rank); rank 0 runs this loop
 * (and writes the results, kv_transfers.csv included), every other rank
 * serves its replica (pgd_cluster_serve) and returns with out->worker set. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/cluster.h"
#include "pagoda/comm.h"
#include "pagoda/disagg.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "runner/cluster_trace.h"
#include "runner/runner_cluster.h"
#include "runner/sessions.h"

typedef struct cinflight {
    int64_t id; /* cluster id */
    int index;  /* workload index */
    int replica;
} cinflight;

typedef struct cl_state {
    pgd_cluster *c;
    int nr;
    pgd_workload *wl;
    pgd_metrics *m;   /* the cluster's */
    pgd_metrics **rm; /* each replica's */
    int *routed;      /* requests routed to each replica */
    pgd_engine_stats *prev;
    int *have_prev;
    pgd_timeline_sample *last;
    cinflight *fl;
    int n_fl, done, n, rejected;
    int64_t tokens, steps;
    uint64_t token_hash;
    double t_start, t_end;
    pgd_cluster_trace *trace; /* [experiment] trace_steps, else NULL */
    FILE *trace_out;          /* the run's steps.jsonl text */
    int *stepped;             /* scratch for the multi-turn target's steps */
} cl_state;

static pgd_status collect(cl_state *s) {
    for (int i = 0; i < s->n_fl;) {
        const pgd_request_output *o = NULL;
        PGD_TRY(pgd_cluster_get_output(s->c, s->fl[i].id, &o));
        if (!o->finished) {
            i++;
            continue;
        }
        const pgd_workload_request *wr = pgd_workload_get(s->wl, s->fl[i].index);
        int r = pgd_cluster_request_replica(s->c, s->fl[i].id); /* where it finished (P/D: moved) */
        PGD_TRY(pgd_metrics_add_output(s->m, o, wr->priority));
        pgd_metrics_tag_last(s->m, wr->client, wr->slo_class, wr->ttft_slo);
        if (r >= 0) {
            PGD_TRY(pgd_metrics_add_output(s->rm[r], o, wr->priority));
            pgd_metrics_tag_last(s->rm[r], wr->client, wr->slo_class, wr->ttft_slo);
        }
        s->token_hash += pgd_run_output_hash(s->fl[i].index, o, &s->tokens);
        pgd_cluster_release(s->c, s->fl[i].id);
        s->fl[i] = s->fl[--s->n_fl];
        s->done++;
    }
    return PGD_OK;
}

static pgd_status submit(cl_state *s, const pgd_run_config *rc, int i, double now, int delayed) {
    pgd_request_params p;
    pgd_run_request_params(rc, s->wl, i, s->t_start, &p);
    if (delayed) p.arrival_time = now;
    int64_t id;
    int where = -1;
    pgd_status ast = pgd_cluster_add_request(s->c, &p, &id, &where);
    if (ast == PGD_ERR_OOM || ast == PGD_ERR_DEVICE || ast == PGD_ERR_COMM) return ast;
    if (ast != PGD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", pgd_last_error());
        PGD_LOG_W("run %s: request id %d in requests.csv (workload request %d, source row %lld) rejected by "
                  "replica %d: %s",
                  pgd_run_name(rc), -1 - i, i, (long long)pgd_workload_get(s->wl, i)->source_row, where, why);
        pgd_request_record r = {.id = -1 - i,
                                .arrival = p.arrival_time > 0 ? p.arrival_time : now,
                                .first_scheduled = -1,
                                .first_token = -1,
                                .finish = now,
                                .prompt_tokens = p.n_prompt,
                                .priority = p.priority,
                                .finish_reason = "error",
                                .error = why};
        PGD_TRY(pgd_metrics_add_request(s->m, &r));
        pgd_metrics_tag_last(s->m, p.client, p.slo_class, p.ttft_slo);
        s->rejected++;
        s->done++;
        return PGD_OK;
    }
    if (where >= 0) s->routed[where]++;
    s->fl[s->n_fl++] = (cinflight){.id = id, .index = i, .replica = where};
    return PGD_OK;
}

/* A sample from a remote replica's stats (pgd_metrics_sample_engine's
 * fields, for a replica whose engine is on another MPI rank). */
static void sample_stats(const pgd_engine_stats *st, const pgd_engine_stats *prev, double now, pgd_timeline_sample *s) {
    *s = (pgd_timeline_sample){0};
    s->time = now;
    s->step = st->steps;
    s->running = st->num_running;
    s->waiting = st->num_waiting;
    s->swapped = st->num_swapped;
    s->batch_tokens = (int)(st->tokens_computed - (prev ? prev->tokens_computed : 0));
    s->batch_seqs = (int)(st->tokens_generated - (prev ? prev->tokens_generated : 0));
    s->kv_used_blocks = st->kv.used_blocks;
    s->kv_num_blocks = st->kv.num_blocks;
    s->kv_logical_blocks = st->kv.logical_blocks;
    s->kv_usage = st->kv.num_blocks > 0 ? (double)st->kv.used_blocks / st->kv.num_blocks : 0;
    s->kv_utilization = st->kv.slots_reserved > 0 ? st->kv.utilization : 1.0;
    s->kv_fragmentation = 1.0 - s->kv_utilization;
    s->preemptions = st->preemptions;
    s->swaps = st->swaps;
    s->prefix_hit_rate = st->kv.prefix_queries > 0 ? (double)st->kv.prefix_hits / (double)st->kv.prefix_queries : 0;
}

static void replica_sample(cl_state *s, int r, const pgd_engine_stats *cur, const pgd_engine_stats *prev,
                           pgd_timeline_sample *ts) {
    pgd_engine *e = pgd_cluster_engine(s->c, r);
    if (e) {
        pgd_metrics_sample_engine(e, prev, ts);
        ts->time = pgd_cluster_to_cluster_time(s->c, r, ts->time);
    } else {
        sample_stats(cur, prev, pgd_cluster_replica_now(s->c, r), ts);
    }
}

/* Per-replica samples of the replicas that stepped, then the cluster's sample. */
static pgd_status sample(cl_state *s, const int *stepped) {
    pgd_timeline_sample agg = {0};
    int64_t hits = 0, queries = 0;
    double util_w = 0;
    for (int r = 0; r < s->nr; r++) {
        pgd_engine_stats cur;
        pgd_cluster_replica_stats(s->c, r, &cur);
        if (stepped[r]) {
            pgd_timeline_sample ts;
            replica_sample(s, r, &cur, s->have_prev[r] ? &s->prev[r] : NULL, &ts);
            ts.batch_seqs = cur.last_batch_seqs;
            ts.batch_tokens = cur.last_batch_tokens;
            PGD_TRY(pgd_metrics_add_sample(s->rm[r], &ts));
            s->last[r] = ts;
            s->prev[r] = cur;
            s->have_prev[r] = 1;
            agg.batch_seqs += ts.batch_seqs;
            agg.batch_tokens += ts.batch_tokens;
        }
        const pgd_timeline_sample *l = &s->last[r];
        agg.step += l->step;
        agg.running += l->running;
        agg.waiting += l->waiting;
        agg.swapped += l->swapped;
        agg.kv_used_blocks += l->kv_used_blocks;
        agg.kv_num_blocks += l->kv_num_blocks;
        agg.kv_logical_blocks += l->kv_logical_blocks;
        agg.preemptions += l->preemptions;
        agg.swaps += l->swaps;
        util_w += l->kv_utilization * l->kv_used_blocks;
        hits += cur.kv.prefix_hits;
        queries += cur.kv.prefix_queries;
    }
    agg.time = pgd_cluster_now(s->c);
    agg.kv_usage = agg.kv_num_blocks > 0 ? (double)agg.kv_used_blocks / agg.kv_num_blocks : 0;
    agg.kv_utilization = agg.kv_used_blocks > 0 ? util_w / agg.kv_used_blocks : 1.0;
    agg.kv_fragmentation = 1.0 - agg.kv_utilization;
    agg.prefix_hit_rate = queries > 0 ? (double)hits / (double)queries : 0;
    agg.step = ++s->steps;
    if (s->trace) PGD_TRY(pgd_cluster_trace_flush(s->trace, s->trace_out));
    return pgd_metrics_add_sample(s->m, &agg);
}

/* The replicas' first timeline samples (their state before the loop). */
static void loop_begin(cl_state *s) {
    for (int r = 0; r < s->nr; r++) {
        pgd_engine_stats st0;
        pgd_cluster_replica_stats(s->c, r, &st0);
        replica_sample(s, r, &st0, NULL, &s->last[r]);
    }
}

/* The loop's end: on the sim the latest replica clock (the earliest busy one is not the end). */
static double loop_end(cl_state *s) {
    double end = pgd_cluster_now(s->c);
    for (int r = 0; r < s->nr; r++) {
        double t = pgd_cluster_replica_now(s->c, r);
        if (pgd_cluster_is_virtual(s->c) && t > end) end = t;
    }
    return end;
}

static pgd_status cluster_loop(cl_state *s, const pgd_run_config *rc, const pgd_run_options *opts) {
    pgd_cluster *c = s->c;
    int maxc = pgd_workload_max_concurrency(s->wl), next = 0;
    int *stepped = calloc((size_t)s->nr, sizeof *stepped);
    if (!stepped) return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    s->t_start = s->t_end = pgd_cluster_now(c);
    loop_begin(s);
    double blocked_at = -1;
    pgd_status st = PGD_OK;
    while (s->done < s->n) {
        if (opts && opts->stop && *opts->stop) {
            st = pgd_error(PGD_ERR_INVALID, "run %s: interrupted after %d of %d requests", pgd_run_name(rc), s->done,
                           s->n);
            break;
        }
        double now = pgd_cluster_now(c);
        while (next < s->n && s->t_start + pgd_workload_get(s->wl, next)->arrival <= now) {
            if (maxc > 0 && s->n_fl >= maxc) {
                blocked_at = now;
                break;
            }
            if ((st = submit(s, rc, next, now, s->t_start + pgd_workload_get(s->wl, next)->arrival <= blocked_at)) !=
                PGD_OK)
                goto out;
            next++;
        }
        if (pgd_cluster_busy(c)) {
            int nf = 0;
            if ((st = pgd_cluster_step(c, &nf, stepped)) != PGD_OK) goto out;
            if ((st = sample(s, stepped)) != PGD_OK) goto out;
            if (nf > 0 && (st = collect(s)) != PGD_OK) goto out;
            if (opts && opts->on_progress) {
                const pgd_timeline_sample *ts = pgd_metrics_sample(s->m, pgd_metrics_num_samples(s->m) - 1);
                pgd_run_progress p = {.done = s->done,
                                      .total = s->n,
                                      .tokens = s->tokens,
                                      .elapsed = pgd_cluster_now(c) - s->t_start,
                                      .steps = s->steps,
                                      .running = ts->running,
                                      .waiting = ts->waiting,
                                      .kv_usage = ts->kv_usage};
                opts->on_progress(opts->progress_ctx, &p);
            }
        } else if (next < s->n && s->n_fl == 0) {
            double until = s->t_start + pgd_workload_get(s->wl, next)->arrival;
            if (pgd_cluster_is_virtual(c)) {
                pgd_cluster_idle_until(c, until);
            } else { /* in slices of 0.1 s so that a stop request is seen promptly */
                while (!(opts && opts->stop && *opts->stop) && pgd_cluster_now(c) + 0.1 < until)
                    pgd_cluster_idle_until(c, pgd_cluster_now(c) + 0.1);
                if (!(opts && opts->stop && *opts->stop)) pgd_cluster_idle_until(c, until);
            }
        } else if (s->n_fl > 0) {
            if ((st = collect(s)) != PGD_OK) goto out;
            if (!pgd_cluster_busy(c) && s->n_fl > 0) {
                st = pgd_error(PGD_ERR_INVALID, "runner: %d requests in flight but every replica is idle", s->n_fl);
                goto out;
            }
        }
    }
    s->t_end = loop_end(s);
out:
    free(stepped);
    return st;
}

/* ---- multi-turn conversations: the cluster as runner/sessions.c's target ---- */

static double clt_now(void *ctx) { return pgd_cluster_now(((cl_state *)ctx)->c); }
static int clt_busy(void *ctx) { return pgd_cluster_busy(((cl_state *)ctx)->c); }

static pgd_status clt_add(void *ctx, const pgd_request_params *p, int64_t *id, int *where) {
    cl_state *s = ctx;
    PGD_TRY(pgd_cluster_add_request(s->c, p, id, where));
    if (*where >= 0) s->routed[*where]++;
    return PGD_OK;
}

static pgd_status clt_get_output(void *ctx, int64_t id, const pgd_request_output **out) {
    return pgd_cluster_get_output(((cl_state *)ctx)->c, id, out);
}

/* The turn's record in the metrics of the replica it finished on, too. */
static pgd_status clt_recorded(void *ctx, int64_t id, const pgd_request_output *o, const pgd_workload_request *wr) {
    cl_state *s = ctx;
    int r = pgd_cluster_request_replica(s->c, id);
    if (r < 0) return PGD_OK;
    PGD_TRY(pgd_metrics_add_output(s->rm[r], o, wr->priority));
    return pgd_metrics_set_last_turn(s->rm[r], wr->session, wr->turn, wr->num_turns);
}

static void clt_release(void *ctx, int64_t id) { pgd_cluster_release(((cl_state *)ctx)->c, id); }

static pgd_status clt_step(void *ctx, int *nf, pgd_run_progress *p) {
    cl_state *s = ctx;
    PGD_TRY(pgd_cluster_step(s->c, nf, s->stepped));
    PGD_TRY(sample(s, s->stepped));
    const pgd_timeline_sample *ts = pgd_metrics_sample(s->m, pgd_metrics_num_samples(s->m) - 1);
    p->steps = s->steps, p->running = ts->running, p->waiting = ts->waiting, p->kv_usage = ts->kv_usage;
    return PGD_OK;
}

static void clt_idle_until(void *ctx, double t) { pgd_cluster_idle_until(((cl_state *)ctx)->c, t); }

static pgd_status sessions_loop(cl_state *s, const pgd_run_config *rc, const pgd_run_options *opts) {
    if (!(s->stepped = calloc((size_t)s->nr, sizeof *s->stepped)))
        return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    pgd_session_target t = {.ctx = s,
                            .real_time = !pgd_cluster_is_virtual(s->c),
                            .now = clt_now,
                            .busy = clt_busy,
                            .add = clt_add,
                            .get_output = clt_get_output,
                            .recorded = clt_recorded,
                            .release = clt_release,
                            .step = clt_step,
                            .idle_until = clt_idle_until};
    pgd_session_loop sl = {.target = &t, .wl = s->wl, .m = s->m, .rc = rc, .opts = opts};
    loop_begin(s);
    PGD_TRY(pgd_run_sessions(&sl));
    s->n = sl.n, s->done = sl.done, s->rejected = sl.rejected, s->tokens = sl.tokens;
    s->token_hash = sl.token_hash, s->t_start = sl.t_start, s->t_end = loop_end(s);
    return PGD_OK;
}

static void sum_stats(pgd_engine_stats *a, const pgd_engine_stats *b) {
    a->steps += b->steps;
    a->preemptions += b->preemptions;
    a->tokens_computed += b->tokens_computed;
    a->tokens_generated += b->tokens_generated;
    if (b->max_batch_seqs > a->max_batch_seqs) a->max_batch_seqs = b->max_batch_seqs;
    if (b->max_batch_tokens > a->max_batch_tokens) a->max_batch_tokens = b->max_batch_tokens;
    a->num_waiting += b->num_waiting;
    a->num_running += b->num_running;
    a->num_swapped += b->num_swapped;
    a->kv.num_blocks += b->kv.num_blocks;
    a->kv.used_blocks += b->kv.used_blocks;
    a->kv.free_blocks += b->kv.free_blocks;
    a->kv.cached_blocks += b->kv.cached_blocks;
    a->kv.prefix_queries += b->kv.prefix_queries;
    a->kv.prefix_hits += b->kv.prefix_hits;
    a->schedule_seconds += b->schedule_seconds;
    a->forward_seconds += b->forward_seconds;
    a->logits_seconds += b->logits_seconds;
    a->forward_steps += b->forward_steps;
    if (b->max_in_flight > a->max_in_flight) a->max_in_flight = b->max_in_flight;
    a->swaps += b->swaps;
}

/* summary.json's "cluster" section and runs.csv's replica_* fields. */
static pgd_status replica_results(cl_state *s, const pgd_slo *slo, const pgd_metrics_summary *cs, pgd_run_result *out) {
    json_t *cl = json_object(), *arr = json_array();
    if (!cl || !arr) {
        json_decref(cl);
        json_decref(arr);
        return pgd_error(PGD_ERR_OOM, "runner: out of memory");
    }
    json_object_set_new(cl, "replicas", json_integer(s->nr));
    json_object_set_new(cl, "router", json_string(pgd_cluster_router_name(s->c)));
    json_object_set_new(cl, "virtual_time", json_boolean(pgd_cluster_is_virtual(s->c)));
    json_object_set_new(cl, "per_replica", arr);
    out->cluster = cl;
    for (int r = 0; r < s->nr; r++) {
        pgd_metrics_summary rs;
        pgd_metrics_set_window(s->rm[r], cs->start, cs->end); /* throughputs over the cluster's window: they sum */
        PGD_TRY(pgd_metrics_summarize(s->rm[r], slo, &rs));
        pgd_engine_stats es;
        pgd_cluster_replica_stats(s->c, r, &es);
        double hit = es.kv.prefix_queries > 0 ? (double)es.kv.prefix_hits / (double)es.kv.prefix_queries : 0;
        json_t *o = json_object(), *sj = pgd_metrics_summary_to_json(&rs);
        if (!o || !sj) {
            json_decref(o);
            json_decref(sj);
            return pgd_error(PGD_ERR_OOM, "runner: out of memory");
        }
        json_object_set_new(o, "replica", json_integer(r));
        json_object_set_new(o, "routed", json_integer(s->routed[r]));
        json_object_set_new(o, "steps", json_integer(es.steps));
        json_object_set_new(o, "prefix_queries", json_integer(es.kv.prefix_queries));
        json_object_set_new(o, "prefix_hits", json_integer(es.kv.prefix_hits));
        json_object_set_new(o, "prefix_hit_rate", json_real(hit));
        json_object_set_new(o, "kv_mean_usage", json_real(rs.mean_kv_usage));
        json_object_set_new(o, "kv_max_usage", json_real(rs.max_kv_usage));
        json_object_set_new(o, "summary", sj);
        json_t *turns = pgd_metrics_turns_json(s->rm[r]); /* multi-turn: this replica's per-turn figures */
        if (turns) json_object_set_new(o, "turns", turns);
        json_array_append_new(arr, o);
        double req = (double)rs.num_requests;
        if (r == 0 || req < out->replica_requests_min) out->replica_requests_min = req;
        if (r == 0 || req > out->replica_requests_max) out->replica_requests_max = req;
        if (r == 0 || rs.ttft.p90 > out->replica_ttft_p90_max) out->replica_ttft_p90_max = rs.ttft.p90;
        if (r == 0 || rs.mean_kv_usage > out->replica_kv_usage_max) out->replica_kv_usage_max = rs.mean_kv_usage;
        if (r == 0 || hit < out->replica_prefix_hit_rate_min) out->replica_prefix_hit_rate_min = hit;
        if (r == 0 || hit > out->replica_prefix_hit_rate_max) out->replica_prefix_hit_rate_max = hit;
    }
    return PGD_OK;
}

pgd_status pgd_run_execute_cluster(const pgd_run_config *rc, const pgd_run_options *opts, pgd_run_result *out) {
    memset(out, 0, sizeof *out);
    double w0 = pgd_clock_now(NULL);
    pgd_status st = PGD_OK;
    pgd_cluster *c = NULL;
    pgd_workload *wl = NULL;
    cl_state s = {0};
    pgd_comm *comm = NULL;
    int nr = pgd_run_get_int(rc, "cluster", "replicas");
    int threads = pgd_run_get_int(rc, "model", "threads");
    pgd_disagg *dg = NULL; /* P/D disaggregation ([cluster] prefill/decode; core/cluster/disagg.c) */
    pgd_replica_role *roles = NULL;
    int np = pgd_run_get_int(rc, "cluster", "prefill"), nd = pgd_run_get_int(rc, "cluster", "decode");
    if (np > 0 || nd > 0) {
        if (nr != 1 && nr != np + nd) {
            st = pgd_run_ctx_error(pgd_error(PGD_ERR_INVALID,
                                             "replicas = %d but prefill = %d + decode = %d: leave "
                                             "replicas out (or set it to %d) with P/D",
                                             nr, np, nd, np + nd),
                                   rc, "cluster");
            goto done;
        }
        nr = np + nd;
        pgd_kv_link_config lc = {.gbps = pgd_run_get_num(rc, "cluster", "kv_link_gbps"),
                                 .latency_us = pgd_run_get_num(rc, "cluster", "kv_link_latency_us")};
        if (!(roles = calloc((size_t)nr, sizeof *roles))) {
            st = pgd_error(PGD_ERR_OOM, "runner: out of memory");
            goto done;
        }
        if ((st = pgd_disagg_roles(np, nd, roles)) != PGD_OK || (st = pgd_disagg_create(&lc, &dg)) != PGD_OK) {
            st = pgd_run_ctx_error(st, rc, "cluster");
            goto done;
        }
    }
    pgd_clock *given = opts ? opts->clock : NULL;
    pgd_cluster_config cc = {.replicas = nr,
                             .router = pgd_run_get_str(rc, "cluster", "router"),
                             .roles = roles,
                             .handoff = dg ? pgd_disagg_handoff : NULL,
                             .handoff_ctx = dg};
    /* each replica's backend makes its own clock (the sim: its own device); a caller's clock
     * is the engines' shared clock on real backends */
    pgd_run_backend_opts bo;
    pgd_run_exec_config(rc, NULL, &bo, &cc.exec);
    int mpi = !strcmp(pgd_run_get_str(rc, "cluster", "comm"), "mpi");
    if (pgd_parallel_ranks(&cc.exec.parallel) > 1 && !strcmp(cc.exec.parallel.comm, "mpi")) {
        st = pgd_run_ctx_error(pgd_error(PGD_ERR_UNSUPPORTED,
                                         "replicas = %d with [parallel] comm = mpi: a cluster "
                                         "runs its replicas in one process (threads); use comm = threads",
                                         nr),
                               rc, "cluster");
        goto done;
    }
    if (pgd_run_get_int(rc, "model", "tensor_parallel") > 1 && pgd_parallel_ranks(&cc.exec.parallel) > 1) {
        st = pgd_run_ctx_error(pgd_error(PGD_ERR_INVALID, "set either [model] tensor_parallel (the analytic split) or "
                                                          "[parallel] tp (the engine's sharded model), not both"),
                               rc, "parallel");
        goto done;
    }
    if (pgd_run_get_bool(rc, "experiment", "trace_steps")) {
        if (mpi) { /* the other ranks' engines would trace into their own processes */
            st = pgd_run_ctx_error(pgd_error(PGD_ERR_UNSUPPORTED,
                                             "trace_steps with [cluster] comm = mpi: the replicas on "
                                             "other ranks keep no trace here; use comm = threads or set "
                                             "trace_steps off"),
                                   rc, "experiment");
            goto done;
        }
        if ((st = pgd_cluster_trace_create(nr, &s.trace)) != PGD_OK ||
            !(s.trace_out = open_memstream(&out->steps_trace, &out->steps_trace_len))) {
            st = st != PGD_OK ? st : pgd_error(PGD_ERR_OOM, "runner: cannot buffer the decision trace");
            goto done;
        }
        cc.sched_traces = pgd_cluster_trace_files(s.trace);
    }
    if ((st = pgd_run_engine_config(rc, NULL, &cc.engine)) != PGD_OK) {
        st = pgd_run_ctx_error(st, rc, "engine");
        goto done;
    }
    cc.engine.clock = given && pgd_clock_get_kind(given) == PGD_CLOCK_VIRTUAL ? given : NULL;
    if (mpi) { /* replica r on rank r: rank 0 routes, the others serve */
        if (cc.engine.clock) {
            st = pgd_run_ctx_error(pgd_error(PGD_ERR_UNSUPPORTED, "comm = mpi runs on the real clock"), rc, "cluster");
            goto done;
        }
        if (pgd_comm_mpi_world_size() != nr) {
            st = pgd_run_ctx_error(pgd_error(PGD_ERR_INVALID,
                                             "comm = mpi with replicas = %d needs `mpirun -np %d` "
                                             "(this job has %d process%s)",
                                             nr, nr, pgd_comm_mpi_world_size(),
                                             pgd_comm_mpi_world_size() == 1 ? "" : "es"),
                                   rc, "cluster");
            goto done;
        }
        if ((st = pgd_comm_mpi_create(&comm)) != PGD_OK) {
            st = pgd_run_ctx_error(st, rc, "cluster");
            goto done;
        }
        cc.comm = comm;
    }
    const char *tokpath = pgd_run_get_str(rc, "model", "tokenizer");
    cc.tokenizer_path = *tokpath ? tokpath : NULL;
    if (comm && pgd_comm_rank(comm) > 0) { /* this rank serves one replica; rank 0 writes the results */
        out->worker = 1;
        if ((st = pgd_cluster_serve(&cc, comm)) != PGD_OK) st = pgd_run_ctx_error(st, rc, "cluster");
        goto done;
    }
    if ((st = pgd_cluster_create(&cc, &c)) != PGD_OK) {
        st = pgd_run_ctx_error(st, rc, "cluster");
        goto done;
    }
    if (s.trace) pgd_cluster_trace_attach(s.trace, c);
    pgd_exec *x0 = pgd_cluster_exec(c, 0);
    const pgd_model_config *mc = pgd_exec_model_config(x0);
    const pgd_tokenizer *tok = pgd_cluster_tokenizer(c);
    pgd_workload_config wc;
    if ((st = pgd_run_workload_config(rc, mc, tok, &wc)) != PGD_OK || (st = pgd_workload_create(&wc, &wl)) != PGD_OK) {
        st = pgd_run_ctx_error(st, rc, "workload");
        goto done;
    }
    s.c = c;
    s.nr = nr;
    s.wl = wl;
    s.n = pgd_workload_count(wl);
    double duration = pgd_run_get_num(rc, "workload", "duration");
    if (duration > 0)
        while (s.n > 0 && pgd_workload_get(wl, s.n - 1)->arrival >= duration) s.n--;
    out->offered_rate = INFINITY;
    if (s.n > 1) {
        double span = pgd_workload_get(wl, s.n - 1)->arrival - pgd_workload_get(wl, 0)->arrival;
        if (span > 0) out->offered_rate = (s.n - 1) / span;
    }
    if (!(s.fl = malloc(sizeof *s.fl * (size_t)(s.n + 1))) || !(s.rm = calloc((size_t)nr, sizeof *s.rm)) ||
        !(s.routed = calloc((size_t)nr, sizeof *s.routed)) || !(s.prev = calloc((size_t)nr, sizeof *s.prev)) ||
        !(s.have_prev = calloc((size_t)nr, sizeof *s.have_prev)) || !(s.last = calloc((size_t)nr, sizeof *s.last))) {
        st = pgd_error(PGD_ERR_OOM, "runner: out of memory");
        goto done;
    }
    if ((st = pgd_metrics_create(&s.m)) != PGD_OK) goto done;
    for (int r = 0; r < nr; r++)
        if ((st = pgd_metrics_create(&s.rm[r])) != PGD_OK) goto done;
    for (int r = 0; r < nr; r++)
        if (pgd_cluster_exec(c, r)) pgd_backend_op_times_reset(pgd_exec_backend(pgd_cluster_exec(c, r)));
    if (pgd_workload_num_sessions(wl) > 0) { /* multi-turn conversations: runner/sessions.c */
        if ((st = sessions_loop(&s, rc, opts)) != PGD_OK) goto done;
    } else if ((st = cluster_loop(&s, rc, opts)) != PGD_OK) {
        goto done;
    }
    /* op times summed over the replicas' backends (the same backend: the same ops, in order) */
    for (int r = 0; r < nr; r++) { /* (MPI: rank 0's replica only) */
        if (!pgd_cluster_exec(c, r)) continue;
        pgd_op_time ot[PGD_BACKEND_NUM_OPS];
        int k = pgd_backend_op_times(pgd_exec_backend(pgd_cluster_exec(c, r)), ot, PGD_BACKEND_NUM_OPS);
        if (r == 0) {
            memcpy(out->op_times, ot, sizeof ot[0] * (size_t)k);
            out->num_op_times = k;
            continue;
        }
        for (int i = 0; i < k; i++) {
            int j = 0;
            while (j < out->num_op_times && strcmp(out->op_times[j].op, ot[i].op)) j++;
            if (j == out->num_op_times) {
                if (j == PGD_BACKEND_NUM_OPS) continue;
                out->op_times[out->num_op_times++] = ot[i];
            } else {
                out->op_times[j].calls += ot[i].calls;
                out->op_times[j].seconds += ot[i].seconds;
            }
        }
    }
    out->run_time = s.t_end - s.t_start;
    pgd_slo slo = {.ttft = pgd_run_get_num(rc, "slo", "ttft"),
                   .tpot = pgd_run_get_num(rc, "slo", "tpot"),
                   .e2e = pgd_run_get_num(rc, "slo", "e2e")};
    if ((st = pgd_metrics_summarize(s.m, &slo, &out->summary)) != PGD_OK) goto done;
    for (int r = 0; r < nr; r++) {
        pgd_engine_stats es;
        pgd_cluster_replica_stats(c, r, &es);
        sum_stats(&out->stats, &es);
    }
    out->replicas = nr;
    snprintf(out->router, sizeof out->router, "%s", pgd_cluster_router_name(c));
    if ((st = replica_results(&s, &slo, &out->summary, out)) != PGD_OK) goto done;
    if (dg && (st = pgd_run_disagg_results(dg, np, nd, out->cluster, &out->kv_transfers_csv,
                                           &out->kv_transfers_csv_len)) != PGD_OK)
        goto done;
    out->metrics = s.m;
    s.m = NULL;
    out->num_requests = s.n;
    out->rejected = s.rejected;
    out->workload_fingerprint = pgd_workload_fingerprint(wl);
    out->token_fingerprint = s.token_hash;
    out->threads = threads;
    char dts[64]; /* "q4_0", or "mixed (q4_k, q6_k)" for per-tensor dtypes */
    snprintf(out->model_desc, sizeof out->model_desc, "%s (%s, %.1fM params, %s)", pgd_run_get_str(rc, "model", "path"),
             mc->name, (double)pgd_model_config_params(mc) / 1e6, pgd_model_config_dtype_str(mc, dts, sizeof dts));
    snprintf(out->backend_desc, sizeof out->backend_desc, "%d x %s", nr, pgd_backend_describe(pgd_exec_backend(x0)));
    snprintf(out->layout_desc, sizeof out->layout_desc, "%d replicas%s (router %s), each %s", nr,
             comm ? " on MPI ranks" : "", pgd_cluster_router_name(c), pgd_exec_describe(x0));
    pgd_workload_format(wl, out->workload_desc, sizeof out->workload_desc);
    out->wall_time = pgd_clock_now(NULL) - w0;
done:
    if (st != PGD_OK) {
        json_decref(out->cluster);
        out->cluster = NULL;
    }
    free(s.fl);
    pgd_metrics_destroy(s.m);
    for (int r = 0; s.rm && r < nr; r++) pgd_metrics_destroy(s.rm[r]);
    free(s.rm);
    free(s.routed);
    free(s.prev);
    free(s.have_prev);
    free(s.last);
    free(s.stepped);
    pgd_workload_destroy(wl);
    pgd_cluster_destroy(c);
    pgd_cluster_trace_destroy(s.trace); /* after the cluster: its engines wrote to the streams */
    if (s.trace_out && fclose(s.trace_out) != 0 && st == PGD_OK)
        st = pgd_error(PGD_ERR_OOM, "runner: decision trace lost");
    if (st != PGD_OK) {
        free(out->steps_trace);
        out->steps_trace = NULL;
        out->steps_trace_len = 0;
    }
    pgd_disagg_destroy(dg);
    free(roles);
    pgd_comm_destroy(comm);
    return st;
}
