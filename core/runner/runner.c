/* runner.c - one run of an experiment: config -> model, engine, workload;
 * the arrival loop against the engine clock; per-request records and a
 * per-step timeline into pgd_metrics; the loop's length and the model
 * backend's op times over it (op_times.csv).
 *
 * Invariants: requests are submitted in workload (arrival) order; at most
 * max_concurrency are in flight (0 = unlimited); every submitted request is
 * recorded exactly once (finished, or rejected as "error"); the loop ends
 * when every request that arrives within the run is recorded. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pagoda/exec.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "pagoda/runner.h"
#include "pagoda/workload.h"
#include "runner/runner_cluster.h"
#include "runner/sessions.h"

typedef struct inflight {
    int64_t id;  /* engine request id */
    int index;   /* workload index */
} inflight;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t pgd_run_output_hash(int index, const pgd_request_output *o, int64_t *tokens) {
    uint64_t h = fnv(14695981039346656037ull, &index, sizeof index);
    if (o->num_seqs > 0) {
        h = fnv(h, o->seqs[0].tokens, sizeof(int32_t) * (size_t)o->seqs[0].n_tokens);
        *tokens += o->seqs[0].n_tokens;
    }
    return h;
}

static double wall_now(void) { return pgd_clock_now(NULL); }

pgd_status pgd_run_engine_config(const pgd_run_config *rc, pgd_clock *clock, pgd_engine_config *ec) {
    memset(ec, 0, sizeof *ec);
    ec->block_size = pgd_run_get_int(rc, "engine", "block_size");
    ec->num_blocks = pgd_run_get_int(rc, "engine", "num_blocks");
    ec->kv_memory_bytes = pgd_run_get_size(rc, "engine", "kv_memory");
    ec->num_host_blocks = pgd_run_get_int(rc, "engine", "swap_blocks");
    ec->max_num_batched_tokens = pgd_run_get_int(rc, "engine", "max_num_batched_tokens");
    ec->max_num_seqs = pgd_run_get_int(rc, "engine", "max_num_seqs");
    ec->policy = pgd_run_get_str(rc, "engine", "policy");
    ec->kv_manager = pgd_run_get_str(rc, "engine", "kv_manager");
    PGD_TRY(pgd_kv_manager_find(ec->kv_manager, NULL));
    PGD_TRY(pgd_preempt_mode_parse(pgd_run_get_str(rc, "engine", "preemption"), &ec->preemption));
    ec->chunked_prefill = pgd_run_get_bool(rc, "engine", "chunked_prefill");
    ec->prefix_caching = pgd_run_get_bool(rc, "engine", "prefix_caching");
    ec->hash_seed = pgd_run_get_u64(rc, "experiment", "seed");
    ec->clock = clock;
    return PGD_OK;
}

pgd_status pgd_run_client_mix(const pgd_run_config *rc, pgd_workload_config *wc); /* runner_clients.c */

static pgd_status len_dist(const pgd_run_config *rc, const char *which, pgd_len_dist *d) {
    char k[32];
    snprintf(k, sizeof k, "%s_len", which);
    PGD_TRY(pgd_len_kind_parse(pgd_run_get_str(rc, "workload", k), &d->kind));
    snprintf(k, sizeof k, "%s_mean", which);
    d->mean = pgd_run_get_num(rc, "workload", k);
    snprintf(k, sizeof k, "%s_stddev", which);
    d->stddev = pgd_run_get_num(rc, "workload", k);
    snprintf(k, sizeof k, "%s_min", which);
    d->min = pgd_run_get_int(rc, "workload", k);
    snprintf(k, sizeof k, "%s_max", which);
    d->max = pgd_run_get_int(rc, "workload", k);
    return PGD_OK;
}

pgd_status pgd_run_workload_config(const pgd_run_config *rc, const pgd_model_config *mc, const pgd_tokenizer *tok,
                                   pgd_workload_config *wc) {
    memset(wc, 0, sizeof *wc);
    PGD_TRY(pgd_workload_source_parse(pgd_run_get_str(rc, "workload", "source"), &wc->source));
    wc->num_requests = pgd_run_get_int(rc, "workload", "num_requests");
    wc->sample = pgd_run_get_bool(rc, "workload", "sample");
    wc->seed = pgd_run_get_u64(rc, "experiment", "seed");
    wc->vocab_size = mc->vocab_size;
    wc->max_model_len = mc->max_seq_len;
    PGD_TRY(len_dist(rc, "input", &wc->input_len));
    PGD_TRY(len_dist(rc, "output", &wc->output_len));
    wc->override_output_len = pgd_run_get_bool(rc, "workload", "override_output_len");
    wc->shared_prefix_len = pgd_run_get_int(rc, "workload", "shared_prefix_len");
    wc->num_priorities = pgd_run_get_int(rc, "workload", "num_priorities");
    double rate = pgd_run_get_num(rc, "workload", "rate"), duration = pgd_run_get_num(rc, "workload", "duration");
    const char *arr = pgd_run_get_str(rc, "workload", "arrival");
    if (!strcmp(arr, "default") && wc->source != PGD_WL_TRACE && isfinite(rate)) arr = "poisson";
    PGD_TRY(pgd_arrival_kind_parse(arr, &wc->arrival.kind));
    wc->arrival.rate = rate;
    wc->arrival.burstiness = pgd_run_get_num(rc, "workload", "burstiness");
    wc->arrival.max_concurrency = pgd_run_get_int(rc, "workload", "concurrency");
    if (wc->source == PGD_WL_SYNTHETIC && wc->num_requests == 0 && duration > 0 && isfinite(rate))
        wc->num_requests = (int)ceil(rate * duration * 1.5 + 10 * sqrt(rate * duration) + 10);
    const char *path = pgd_run_get_str(rc, "workload", "path");
    wc->path = *path ? path : NULL;
    PGD_TRY(pgd_trace_format_parse(pgd_run_get_str(rc, "workload", "trace_format"), &wc->trace_format));
    PGD_TRY(pgd_dataset_format_parse(pgd_run_get_str(rc, "workload", "dataset_format"), &wc->dataset_format));
    wc->time_scale = pgd_run_get_num(rc, "workload", "time_scale");
    wc->tokenizer = tok;
    wc->turns = pgd_run_get_int(rc, "workload", "turns");
    wc->think_time = pgd_run_get_num(rc, "workload", "think_time");
    wc->max_history = pgd_run_get_int(rc, "workload", "max_history");
    return pgd_run_client_mix(rc, wc);
}

/* Wrap the last error as "FILE: run NAME: [section]: message". */
static pgd_status ctx_error(pgd_status st, const pgd_run_config *rc, const char *section) {
    return pgd_error(st, "%s: run %s: [%s]: %s", pgd_experiment_path(pgd_run_experiment(rc)), pgd_run_name(rc),
                     section, pgd_last_error());
}

pgd_status pgd_run_ctx_error(pgd_status st, const pgd_run_config *rc, const char *section) {
    return ctx_error(st, rc, section);
}

typedef struct loop_state {
    pgd_engine *eng;
    pgd_workload *wl;
    pgd_metrics *m;
    inflight *fl;
    int n_fl;
    int done, n;
    int64_t tokens;
    uint64_t token_hash;
    int rejected;
    double t_start, t_end; /* engine clock at the loop's start and end */
} loop_state;

static pgd_status collect_finished(loop_state *s) {
    for (int i = 0; i < s->n_fl;) {
        const pgd_request_output *o = NULL;
        PGD_TRY(pgd_engine_get_output(s->eng, s->fl[i].id, &o));
        if (!o->finished) {
            i++;
            continue;
        }
        const pgd_workload_request *wr = pgd_workload_get(s->wl, s->fl[i].index);
        PGD_TRY(pgd_metrics_add_output(s->m, o, wr->priority));
        pgd_metrics_tag_last(s->m, wr->client, wr->slo_class, wr->ttft_slo);
        s->token_hash += pgd_run_output_hash(s->fl[i].index, o, &s->tokens);
        pgd_engine_release(s->eng, s->fl[i].id);
        s->fl[i] = s->fl[--s->n_fl];
        s->done++;
    }
    return PGD_OK;
}

void pgd_run_request_params(const pgd_run_config *rc, pgd_workload *wl, int i, double t_start, pgd_request_params *p) {
    memset(p, 0, sizeof *p);
    p->sampling.temperature = (float)pgd_run_get_num(rc, "sampling", "temperature");
    p->sampling.top_k = pgd_run_get_int(rc, "sampling", "top_k");
    p->sampling.top_p = (float)pgd_run_get_num(rc, "sampling", "top_p");
    p->sampling.seed = pgd_run_get_u64(rc, "experiment", "seed") + (uint64_t)i;
    pgd_workload_fill_params(wl, i, t_start, p);
    p->n = pgd_run_get_int(rc, "sampling", "n");
    p->beam_width = pgd_run_get_int(rc, "sampling", "beam_width");
}

static pgd_status submit(loop_state *s, const pgd_run_config *rc, int i, double t_start, double now, int delayed) {
    pgd_request_params p;
    pgd_run_request_params(rc, s->wl, i, t_start, &p);
    if (delayed) p.arrival_time = now;
    int64_t id;
    pgd_status ast = pgd_engine_add_request(s->eng, &p, &id);
    /* an impossible request is the request's failure; running out of memory (or a device) is the run's */
    if (ast == PGD_ERR_OOM || ast == PGD_ERR_DEVICE || ast == PGD_ERR_COMM) return ast;
    if (ast != PGD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", pgd_last_error());
        /* named as requests.csv shows it (engine ids skip rejected requests, so
         * "request i" named another, accepted request) and by its source row */
        PGD_LOG_W("run %s: request id %d in requests.csv (workload request %d, source row %lld) rejected: %s",
                  pgd_run_name(rc), -1 - i, i, (long long)pgd_workload_get(s->wl, i)->source_row, why);
        pgd_request_record r = {.id = -1 - i, .arrival = p.arrival_time > 0 ? p.arrival_time : now,
                                .first_scheduled = -1, .first_token = -1, .finish = now,
                                .prompt_tokens = p.n_prompt, .priority = p.priority, .finish_reason = "error",
                                .error = why};
        PGD_TRY(pgd_metrics_add_request(s->m, &r));
        pgd_metrics_tag_last(s->m, p.client, p.slo_class, p.ttft_slo);
        s->rejected++;
        s->done++;
        return PGD_OK;
    }
    s->fl[s->n_fl++] = (inflight){.id = id, .index = i};
    return PGD_OK;
}

static pgd_status run_loop(loop_state *s, const pgd_run_config *rc, const pgd_run_options *opts, pgd_clock *clock) {
    pgd_engine *eng = s->eng;
    int maxc = pgd_workload_max_concurrency(s->wl), next = 0;
    /* workload time 0 = engine time t_start (now): arrival a is engine time t_start + a */
    double t_start = pgd_engine_now(eng), t0c = pgd_clock_now(clock);
    s->t_start = s->t_end = t_start;
    pgd_engine_stats prev, cur;
    int have_prev = 0;
    double blocked_at = -1; /* last time a due request was held back by the concurrency limit */
    while (s->done < s->n) {
        if (opts && opts->stop && *opts->stop)
            return pgd_error(PGD_ERR_INVALID, "run %s: interrupted after %d of %d requests", pgd_run_name(rc),
                             s->done, s->n);
        double now = pgd_engine_now(eng);
        while (next < s->n && t_start + pgd_workload_get(s->wl, next)->arrival <= now) {
            if (maxc > 0 && s->n_fl >= maxc) {
                blocked_at = now;
                break;
            }
            /* a request held back by the limit counts from its submission */
            PGD_TRY(submit(s, rc, next, t_start, now, t_start + pgd_workload_get(s->wl, next)->arrival <= blocked_at));
            next++;
        }
        if (pgd_engine_has_unfinished(eng)) {
            int nf = 0;
            PGD_TRY(pgd_engine_step(eng, &nf));
            pgd_engine_get_stats(eng, &cur);
            pgd_timeline_sample ts;
            pgd_metrics_sample_engine(eng, have_prev ? &prev : NULL, &ts);
            ts.batch_seqs = cur.last_batch_seqs;
            ts.batch_tokens = cur.last_batch_tokens;
            PGD_TRY(pgd_metrics_add_sample(s->m, &ts));
            prev = cur;
            have_prev = 1;
            if (nf > 0) PGD_TRY(collect_finished(s)); /* O(in flight): only when something finished */
            if (opts && opts->on_progress) {
                pgd_run_progress p = {.done = s->done, .total = s->n, .tokens = s->tokens,
                                      .elapsed = pgd_engine_now(eng) - t_start, .steps = cur.steps,
                                      .running = ts.running, .waiting = ts.waiting, .kv_usage = ts.kv_usage};
                opts->on_progress(opts->progress_ctx, &p);
            }
        } else if (next < s->n && s->n_fl == 0) {
            double until = t0c + pgd_workload_get(s->wl, next)->arrival;
            /* on the real clock, in slices of 0.1 s so that a stop request is seen promptly */
            if (opts && opts->stop && pgd_clock_get_kind(clock) == PGD_CLOCK_REAL)
                while (!*opts->stop && pgd_clock_now(clock) + 0.1 < until)
                    pgd_clock_sleep_until(clock, pgd_clock_now(clock) + 0.1);
            if (!(opts && opts->stop && *opts->stop)) pgd_clock_sleep_until(clock, until);
        } else if (s->n_fl > 0) {
            PGD_TRY(collect_finished(s)); /* finished without a step (rejected mid-way) */
            if (pgd_engine_has_unfinished(eng) == 0 && s->n_fl > 0)
                return pgd_error(PGD_ERR_INVALID, "runner: %d requests in flight but the engine is idle", s->n_fl);
        }
    }
    s->t_end = pgd_engine_now(eng);
    return PGD_OK;
}

void pgd_run_exec_config(const pgd_run_config *rc, pgd_clock *clock, pgd_run_backend_opts *o, pgd_exec_config *xc) {
    int threads = pgd_run_get_int(rc, "model", "threads");
    const char *profile = pgd_run_get_str(rc, "model", "profile");
    const char *dt = pgd_run_get_str(rc, "model", "dtype");
    pgd_dtype rdt;
    /* [model] device, tensor_parallel and profile are the sim's options: given to a backend that
     * takes them (pgd_backend_option_keys), unused by the others */
    snprintf(o->dev, sizeof o->dev, "device=%s", pgd_run_get_str(rc, "model", "device"));
    snprintf(o->tp, sizeof o->tp, "tp=%d", pgd_run_get_int(rc, "model", "tensor_parallel"));
    snprintf(o->prof, sizeof o->prof, "profile=%s", profile);
    const char *be_name = pgd_run_get_str(rc, "model", "backend");
    const char *const *be_keys = pgd_backend_option_keys(be_name);
    const char *cand[] = {o->dev, o->tp, o->prof};
    memset(o->list, 0, sizeof o->list);
    for (int i = 0, n = 0; i < 3; i++)
        for (int k = 0; be_keys && be_keys[k]; k++)
            if (!strncmp(cand[i], be_keys[k], strlen(be_keys[k])) && cand[i][strlen(be_keys[k])] == '=')
                o->list[n++] = cand[i];
    *xc = (pgd_exec_config){
        .model = pgd_run_get_str(rc, "model", "path"),
        .load = {.seed = pgd_run_get_u64(rc, "model", "weight_seed"),
                 .random_dtype = pgd_dtype_from_name(dt, &rdt) ? rdt : PGD_F32},
        .backend = {.name = be_name,
                    .num_threads = threads,
                    .kv_dtype = strcmp(pgd_run_get_str(rc, "engine", "kv_dtype"), "auto")
                                    ? pgd_run_get_str(rc, "engine", "kv_dtype")
                                    : NULL,
                    .options = o->list},
        /* a virtual clock given by the caller is the one a simulating backend advances */
        .clock = clock && pgd_clock_get_kind(clock) == PGD_CLOCK_VIRTUAL ? clock : NULL,
        .parallel = {.tp = pgd_run_get_int(rc, "parallel", "tp"),
                     .pp = pgd_run_get_int(rc, "parallel", "pp"),
                     .comm = pgd_run_get_str(rc, "parallel", "comm"),
                     .stage_layers = pgd_run_get_str(rc, "parallel", "stage_layers"),
                     .pin = pgd_run_get_bool(rc, "parallel", "pin")},
        .async = pgd_run_get_bool(rc, "engine", "async"),
    };
}

pgd_status pgd_run_workload_create(const pgd_run_config *rc, int vocab_size, int max_model_len,
                                   const pgd_tokenizer *tok, pgd_workload **out, int *n_sent) {
    pgd_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.vocab_size = vocab_size;
    mc.max_seq_len = max_model_len;
    pgd_workload_config wc;
    pgd_status st;
    *out = NULL;
    if ((st = pgd_run_workload_config(rc, &mc, tok, &wc)) != PGD_OK || (st = pgd_workload_create(&wc, out)) != PGD_OK)
        return ctx_error(st, rc, "workload");
    int n = pgd_workload_count(*out);
    double duration = pgd_run_get_num(rc, "workload", "duration");
    if (duration > 0 && pgd_workload_num_sessions(*out) == 0)
        while (n > 0 && pgd_workload_get(*out, n - 1)->arrival >= duration) n--;
    if (n_sent) *n_sent = n;
    return PGD_OK;
}

pgd_status pgd_run_execute(const pgd_run_config *rc, const pgd_run_options *opts, pgd_run_result *out) {
    if (!rc || !out) return pgd_error(PGD_ERR_INVALID, "runner: NULL argument");
    if (pgd_run_get_int(rc, "cluster", "replicas") > 1 || pgd_run_get_int(rc, "cluster", "prefill") > 0 ||
        pgd_run_get_int(rc, "cluster", "decode") > 0)
        return pgd_run_execute_cluster(rc, opts, out);
    memset(out, 0, sizeof *out);
    double w0 = wall_now();
    pgd_status st;
    pgd_clock *own_clock = NULL, *clock = opts ? opts->clock : NULL;
    pgd_exec *ex = NULL;
    pgd_tokenizer *own_tok = NULL;
    pgd_engine *eng = NULL;
    pgd_workload *wl = NULL;
    loop_state s = {0};
    FILE *trace = NULL; /* the decision trace, buffered in out->steps_trace */
    int threads = pgd_run_get_int(rc, "model", "threads");
    pgd_exec_config xc;
    pgd_run_backend_opts bo;
    pgd_run_exec_config(rc, clock, &bo, &xc);
    if (pgd_run_get_int(rc, "model", "tensor_parallel") > 1 && pgd_parallel_ranks(&xc.parallel) > 1) {
        st = ctx_error(pgd_error(PGD_ERR_INVALID, "set either [model] tensor_parallel (the analytic split) or "
                                 "[parallel] tp (the engine's sharded model), not both"), rc, "parallel");
        goto done;
    }
    if ((st = pgd_exec_create(&xc, &ex)) != PGD_OK) {
        st = ctx_error(st, rc, pgd_parallel_ranks(&xc.parallel) > 1 ? "parallel" : "model");
        goto done;
    }
    if (!pgd_exec_is_driver(ex)) { /* an mpirun rank other than 0: serve the driver */
        out->worker = 1;
        st = pgd_exec_serve(ex);
        goto done;
    }
    /* the engine's clock: a simulating backend's virtual clock, else the caller's, else real time */
    if (pgd_exec_clock(ex)) clock = pgd_exec_clock(ex);
    if (!clock) {
        if ((st = pgd_clock_create(PGD_CLOCK_REAL, &own_clock)) != PGD_OK) goto done;
        clock = own_clock;
    }
    const pgd_model_config *mc = pgd_exec_model_config(ex);
    const pgd_tokenizer *tok = pgd_exec_tokenizer(ex);
    const char *tokpath = pgd_run_get_str(rc, "model", "tokenizer");
    if (*tokpath) {
        if ((st = pgd_tokenizer_load_file(tokpath, mc->vocab_size, &own_tok)) != PGD_OK) {
            st = ctx_error(st, rc, "model");
            goto done;
        }
        tok = own_tok;
    }
    /* the workload before the engine: a bad trace or length fails before the
     * KV cache is allocated and zeroed */
    pgd_workload_config wc;
    if ((st = pgd_run_workload_config(rc, mc, tok, &wc)) != PGD_OK || (st = pgd_workload_create(&wc, &wl)) != PGD_OK) {
        st = ctx_error(st, rc, "workload");
        goto done;
    }
    pgd_engine_config ec;
    if (pgd_run_get_bool(rc, "experiment", "trace_steps") &&
        !(trace = open_memstream(&out->steps_trace, &out->steps_trace_len))) {
        st = pgd_error(PGD_ERR_OOM, "runner: cannot buffer the decision trace");
        goto done;
    }
    if ((st = pgd_run_engine_config(rc, clock, &ec)) != PGD_OK ||
        (ec.sched_trace = trace, st = pgd_engine_create(&ec, ex, tok, &eng)) != PGD_OK) {
        st = ctx_error(st, rc, "engine");
        goto done;
    }
    if ((st = pgd_metrics_create(&s.m)) != PGD_OK) goto done;
    s.eng = eng;
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
    if (!(s.fl = malloc(sizeof *s.fl * (size_t)(s.n + 1)))) { st = pgd_error(PGD_ERR_OOM, "runner: out of memory"); goto done; }
    /* The measured run starts here: count only its ops (not weight loading or
     * the engine's setup). Under tp/pp > 1 this is the driver's (rank 0's)
     * backend; the other ranks' ops are not in op_times.csv. */
    pgd_backend_op_times_reset(pgd_exec_backend(ex));
    int ns = 0;
    const double *busy = pgd_exec_stage_busy(ex, &ns);
    if (ns > 64) ns = 64;
    for (int i = 0; busy && i < ns; i++) out->stage_busy[i] = -busy[i];
    if (pgd_workload_num_sessions(wl) > 0) { /* multi-turn conversations: runner/sessions.c */
        pgd_session_loop sl = {.eng = eng, .wl = wl, .m = s.m, .rc = rc, .opts = opts, .clock = clock};
        if ((st = pgd_run_sessions(&sl)) != PGD_OK) goto done;
        s.n = sl.n, s.done = sl.done, s.rejected = sl.rejected, s.tokens = sl.tokens;
        s.token_hash = sl.token_hash, s.t_start = sl.t_start, s.t_end = sl.t_end;
    } else if ((st = run_loop(&s, rc, opts, clock)) != PGD_OK) {
        goto done;
    }
    out->num_op_times = pgd_backend_op_times(pgd_exec_backend(ex), out->op_times, PGD_BACKEND_NUM_OPS);
    out->run_time = s.t_end - s.t_start;
    if ((busy = pgd_exec_stage_busy(ex, &ns)) != NULL) {
        out->num_stages = ns > 64 ? 64 : ns;
        for (int i = 0; i < out->num_stages; i++) out->stage_busy[i] += busy[i];
    }
    pgd_slo slo = {.ttft = pgd_run_get_num(rc, "slo", "ttft"), .tpot = pgd_run_get_num(rc, "slo", "tpot"),
                   .e2e = pgd_run_get_num(rc, "slo", "e2e")};
    if ((st = pgd_metrics_summarize(s.m, &slo, &out->summary)) != PGD_OK) goto done;
    pgd_engine_get_stats(eng, &out->stats);
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
    snprintf(out->backend_desc, sizeof out->backend_desc, "%s", pgd_backend_describe(pgd_exec_backend(ex)));
    snprintf(out->layout_desc, sizeof out->layout_desc, "%s", pgd_exec_describe(ex));
    pgd_workload_format(wl, out->workload_desc, sizeof out->workload_desc);
    out->wall_time = wall_now() - w0;
done:
    free(s.fl);
    pgd_metrics_destroy(s.m);
    pgd_workload_destroy(wl);
    pgd_engine_destroy(eng);
    if (trace && fclose(trace) != 0 && st == PGD_OK) st = pgd_error(PGD_ERR_OOM, "runner: decision trace lost");
    if (st != PGD_OK) {
        free(out->steps_trace);
        out->steps_trace = NULL;
    }
    pgd_tokenizer_destroy(own_tok);
    pgd_exec_destroy(ex);
    pgd_clock_destroy(own_clock);
    return st;
}

void pgd_run_result_free(pgd_run_result *r) {
    if (!r) return;
    pgd_metrics_destroy(r->metrics);
    r->metrics = NULL;
    json_decref(r->cluster);
    r->cluster = NULL;
    free(r->steps_trace);
    r->steps_trace = NULL;
    free(r->kv_transfers_csv);
    r->kv_transfers_csv = NULL;
}
