/* engine.c - the serving engine: creation (KV manager, the executor's KV
 * cache, scheduler), requests, and the step: schedule -> block copies/swaps
 * in plan order -> submit the ragged batch to the executor -> when a batch
 * lands (K in flight, or nothing new to plan): sampling and updates
 * (engine_seq.c, engine_beam.c).
 *
 * Each step's time is split on the engine clock into schedule (plan,
 * copies, swaps), forward (submit and wait) and logits (sampling, updates)
 * phases, summed in the stats.
 *
 * Invariants: the KV manager and the KV cache have the same block size and
 * block count; requests are indexed by id; a batch lists its plan's items
 * in plan order, so logits row i belongs to item i; a request is in at most
 * one batch in flight (the scheduler's max_in_flight), and its group and
 * eseqs stay alive until that batch lands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_impl.h"
#include "pagoda/log.h"

double pgd_engine_now(const pgd_engine *e) { return pgd_clock_now(e->cfg.clock) - e->t0; }
const pgd_engine_config *pgd_engine_get_config(const pgd_engine *e) { return &e->cfg; }

int pgd_engine_cached_prefix(const pgd_engine *e, const int32_t *prompt, int n_prompt) {
    return e && e->kvm && prompt && n_prompt > 0 ? pgd_kv_cached_prefix(e->kvm, prompt, n_prompt) : 0;
}

pgd_status pgd_engine_create(const pgd_engine_config *cfg, pgd_exec *exec, const pgd_tokenizer *tok,
                             pgd_engine **out) {
    if (!cfg || !exec || !out) return pgd_error(PGD_ERR_INVALID, "engine: NULL argument");
    if (!pgd_exec_is_driver(exec)) return pgd_error(PGD_ERR_INVALID, "engine: the executor is a serving rank");
    *out = NULL;
    pgd_status st = PGD_ERR_OOM;
    pgd_engine *e = calloc(1, sizeof *e);
    if (!e) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    e->cfg = *cfg;
    e->exec = exec;
    e->tok = tok;
    e->mc = pgd_exec_model_config(exec);
    pgd_engine_config *c = &e->cfg;
    if (c->block_size == 0) c->block_size = 16;
    if (c->max_num_seqs == 0) c->max_num_seqs = 256;
    if (c->block_size < 1 || c->block_size > 4096) {
        st = pgd_error(PGD_ERR_INVALID, "engine: block_size must be in 1..4096 (got %d)", c->block_size);
        goto fail;
    }
    size_t bb = pgd_kv_cache_block_bytes(e->mc, c->block_size);
    if (c->num_blocks == 0) {
        size_t mem = c->kv_memory_bytes ? c->kv_memory_bytes : (size_t)256 << 20;
        size_t nb = mem / bb, useful = (size_t)c->max_num_seqs *
                                           (size_t)((e->mc->max_seq_len + c->block_size - 1) / c->block_size) + 1;
        /* More blocks than max_num_seqs sequences of the whole context can
         * fill are never used: an explicit kv_memory is capped there too (a
         * 16G cache for a 260K model was allocated and zeroed whole), except
         * with prefix caching, where freed blocks keep cached prefixes. */
        if (nb > useful && c->kv_memory_bytes && !c->prefix_caching)
            PGD_LOG_W("engine: kv_memory %zu bytes holds %zu blocks, but %d sequences of at most %d tokens use "
                      "at most %zu: allocating %zu blocks (%.1f MiB)", mem, nb, c->max_num_seqs, e->mc->max_seq_len,
                      useful, useful, (double)useful * (double)bb / 1048576.0);
        else if (nb > useful && c->kv_memory_bytes)
            PGD_LOG_W("engine: kv_memory %zu bytes holds %zu blocks, more than the %zu that %d sequences of at most "
                      "%d tokens use at once; all are allocated because prefix caching keeps freed blocks as cache",
                      mem, nb > (1u << 30) ? (size_t)1 << 30 : nb, useful, c->max_num_seqs, e->mc->max_seq_len);
        if (nb > useful && (!c->kv_memory_bytes || !c->prefix_caching)) nb = useful;
        if (nb > (1u << 30)) nb = 1u << 30;
        c->num_blocks = (int)nb;
        if (c->num_blocks < 2) {
            st = pgd_error(PGD_ERR_INVALID, "engine: KV memory of %zu bytes holds %d blocks of %zu bytes (need >= 2)",
                           mem, c->num_blocks, bb);
            goto fail;
        }
    }
    if (c->num_blocks < 2) {
        st = pgd_error(PGD_ERR_INVALID, "engine: num_blocks must be >= 2 (got %d)", c->num_blocks);
        goto fail;
    }
    if (c->num_host_blocks == 0) c->num_host_blocks = c->num_blocks;
    pgd_kv_manager_config kc = {.name = c->kv_manager,
                                .block_size = c->block_size,
                                .num_blocks = c->num_blocks,
                                .num_host_blocks = c->num_host_blocks,
                                .max_seq_len = e->mc->max_seq_len,
                                .prefix_caching = c->prefix_caching,
                                .hash_seed = c->hash_seed};
    pgd_kv_caps caps = 0;
    if ((st = pgd_kv_manager_find(c->kv_manager, &caps)) != PGD_OK) goto fail;
    if (c->prefix_caching && !(caps & PGD_KV_CAN_CACHE_PREFIX)) {
        char with[128];
        st = pgd_error(PGD_ERR_INVALID, "engine: prefix caching needs a KV manager that caches prefixes (%s; got '%s')",
                       pgd_kv_manager_names_with(PGD_KV_CAN_CACHE_PREFIX, ", ", with, sizeof with),
                       c->kv_manager ? c->kv_manager : "paged");
        goto fail;
    }
    if ((st = pgd_kv_manager_create(&kc, &e->kvm)) != PGD_OK) goto fail;
    c->kv_manager = pgd_kv_manager_name(e->kvm); /* static storage: the caller's string may go */
    if ((st = pgd_exec_kv_create(exec, c->block_size, c->num_blocks, c->num_host_blocks)) != PGD_OK) goto fail;
    e->kv_created = 1;
    e->max_in_flight = pgd_exec_max_in_flight(exec);
    if (!(e->flights = calloc((size_t)e->max_in_flight, sizeof *e->flights))) {
        st = pgd_error(PGD_ERR_OOM, "engine: out of memory"); /* not the PGD_OK of the call before */
        goto fail;
    }
    pgd_sched_config sc = {.max_num_batched_tokens = c->max_num_batched_tokens, .max_num_seqs = c->max_num_seqs,
                           .policy = c->policy, .preemption = c->preemption,
                           .chunked_prefill = c->chunked_prefill, .max_seq_len = e->mc->max_seq_len,
                           .max_in_flight = e->max_in_flight, .trace = c->sched_trace};
    if ((st = pgd_scheduler_create(&sc, e->kvm, &e->sched)) != PGD_OK) goto fail;
    c->max_num_batched_tokens = pgd_scheduler_config(e->sched)->max_num_batched_tokens;
    c->policy = pgd_scheduler_config(e->sched)->policy;
    e->eos = tok ? pgd_tokenizer_eos(tok) : 2;
    e->bos = tok ? pgd_tokenizer_bos(tok) : 1;
    e->stop_bos = pgd_exec_model_config(exec)->stop_at_bos;
    e->can_fork = (caps & PGD_KV_CAN_FORK) != 0;
    e->stand_in_tokens = !pgd_exec_computes(exec);
    e->stats.max_in_flight = e->max_in_flight;
    e->t0 = pgd_clock_now(c->clock);
    *out = e;
    return PGD_OK;
fail:
    pgd_engine_destroy(e);
    return st;
}

static void req_destroy(ereq *r) {
    if (!r) return;
    for (int i = 0; i < r->n_seqs; i++) pgd_eseq_destroy(r->seqs[i]);
    for (int i = 0; i < r->n_fin; i++) pgd_eseq_destroy(r->fin[i]);
    for (int i = 0; i < r->p.n_stop_strings && r->stop_strs; i++) free(r->stop_strs[i]);
    free(r->stop_strs);
    free(r->seqs);
    free(r->fin);
    free(r->prompt);
    free(r->stop_ids);
    free(r->outs);
    free(r->staged);
    pgd_kv_handoff_free(r->pending); /* an import never admitted */
    free(r);
}

void pgd_engine_destroy(pgd_engine *e) {
    if (!e) return;
    for (int64_t i = 0; i < e->n_reqs; i++) req_destroy(e->reqs[i]);
    free(e->reqs);
    free(e->held); /* their blocks go with the KV manager */
    pgd_scheduler_destroy(e->sched);
    pgd_kv_manager_destroy(e->kvm);
    if (e->kv_created) pgd_exec_kv_destroy(e->exec); /* lands (drops) any batch still in flight */
    for (int i = 0; e->flights && i < e->max_in_flight; i++) free(e->flights[i].items);
    free(e->flights);
    free(e->tokens);
    free(e->qs);
    free(e->lens);
    free(e->tables);
    free(e->pairs);
    free(e->scratch);
    free(e->touched);
    free(e);
}

static pgd_status check_params(const pgd_engine *e, const pgd_request_params *p) {
    if (!p->prompt || p->n_prompt < 1) return pgd_error(PGD_ERR_INVALID, "request: empty prompt");
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= e->mc->vocab_size)
            return pgd_error(PGD_ERR_INVALID, "request: prompt token %d at index %d is outside the vocabulary (0..%d)",
                             p->prompt[i], i, e->mc->vocab_size - 1);
    if (p->n_prompt > e->mc->max_seq_len)
        return pgd_error(PGD_ERR_INVALID, "request: prompt of %d tokens is longer than the model's context of %d tokens",
                         p->n_prompt, e->mc->max_seq_len);
    if (p->max_tokens < 0 || p->n < 0 || p->beam_width < 0 || p->true_output_len < 0 || p->n_stop_token_ids < 0 ||
        p->n_stop_strings < 0)
        return pgd_error(PGD_ERR_INVALID, "request: max_tokens (%d), n (%d), beam_width (%d), true_output_len (%d) "
                         "and stop counts must not be negative", p->max_tokens, p->n, p->beam_width, p->true_output_len);
    if (p->beam_width > 0 && p->n > 1)
        return pgd_error(PGD_ERR_INVALID, "request: beam search (width %d) and n = %d samples cannot be combined",
                         p->beam_width, p->n);
    if (p->beam_width > 0 && !e->can_fork)
        return pgd_error(PGD_ERR_UNSUPPORTED, "request: beam search needs a KV manager that can fork (got '%s')",
                         pgd_kv_manager_name(e->kvm));
    if (p->n_stop_strings > 0 && !e->tok)
        return pgd_error(PGD_ERR_INVALID, "request: stop strings need a tokenizer");
    if (p->prefill_only && (p->n > 1 || p->beam_width > 0))
        return pgd_error(PGD_ERR_UNSUPPORTED,
                         "request: prefill_only hands one sequence over (got n = %d, "
                         "beam_width = %d)",
                         p->n, p->beam_width);
    return pgd_sampling_params_validate(&p->sampling, e->mc->vocab_size);
}

pgd_status pgd_engine_add_request(pgd_engine *e, const pgd_request_params *p, int64_t *id) {
    if (!e || !p) return pgd_error(PGD_ERR_INVALID, "engine: NULL argument");
    PGD_TRY(check_params(e, p));
    pgd_status st = PGD_ERR_OOM;
    ereq *r = calloc(1, sizeof *r);
    if (!r) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    r->p = *p;
    r->id = e->n_reqs;
    r->n = p->n > 1 ? p->n : 1;
    r->beam = p->beam_width;
    int limit = e->mc->max_seq_len - p->n_prompt + 1;
    r->max_new = p->max_tokens > 0 && p->max_tokens < limit ? p->max_tokens : limit;
    if (p->true_output_len > 0 && p->true_output_len < r->max_new) r->max_new = p->true_output_len;
    r->arrival = p->arrival_time > 0 ? p->arrival_time : pgd_engine_now(e);
    r->first_scheduled = r->first_token = r->finish = -1;
    r->touched_step = -1;
    int slots = r->beam ? r->beam : r->n;
    r->prompt = malloc(sizeof(int32_t) * (size_t)p->n_prompt);
    r->seqs = calloc((size_t)slots, sizeof *r->seqs);
    r->outs = calloc((size_t)slots, sizeof *r->outs);
    if (!r->prompt || !r->seqs || !r->outs) goto fail;
    memcpy(r->prompt, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    r->p.prompt = r->prompt;
    if (p->n_stop_token_ids > 0) {
        if (!(r->stop_ids = malloc(sizeof(int32_t) * (size_t)p->n_stop_token_ids))) goto fail;
        memcpy(r->stop_ids, p->stop_token_ids, sizeof(int32_t) * (size_t)p->n_stop_token_ids);
    }
    r->p.stop_token_ids = r->stop_ids;
    if (p->n_stop_strings > 0) {
        if (!(r->stop_strs = calloc((size_t)p->n_stop_strings, sizeof(char *)))) goto fail;
        for (int i = 0; i < p->n_stop_strings; i++)
            if (!(r->stop_strs[i] = strdup(p->stop_strings[i] ? p->stop_strings[i] : ""))) goto fail;
    }
    r->p.stop_strings = (const char *const *)r->stop_strs;
    int initial = e->can_fork ? 1 : r->n;
    for (int i = 0; i < initial; i++) {
        if (!(r->seqs[i] = pgd_eseq_create(i))) goto fail;
        r->n_seqs++;
        if (!r->beam) {
            pgd_sampling_params sp = p->sampling;
            sp.seed += (uint64_t)i;
            if ((st = pgd_sampler_create(&sp, e->mc->vocab_size, &r->seqs[i]->sampler)) != PGD_OK) goto fail;
        }
    }
    if (!r->beam && r->n > 1) r->n_seqs = r->n; /* fixed output slots, filled by fork */
    if (e->n_reqs == e->cap_reqs) {
        int64_t cap = e->cap_reqs ? 2 * e->cap_reqs : 64;
        ereq **q = realloc(e->reqs, sizeof *q * (size_t)cap);
        if (!q) goto fail;
        e->reqs = q;
        e->cap_reqs = cap;
    }
    pgd_sched_request sr = {.id = r->id, .prompt = r->prompt, .n_prompt = p->n_prompt, .max_new_tokens = r->max_new,
                            .true_output_len = p->true_output_len, .priority = p->priority, .arrival = r->arrival,
                            .num_seqs = initial, .max_seqs = slots, .user = r, .client = p->client,
                            .slo_class = p->slo_class,
                            .ttft_deadline = p->ttft_slo > 0 ? r->arrival + p->ttft_slo : 0};
    if (!e->importing) { /* pgd_engine_import admits its request itself (engine_disagg.c) */
        if ((st = pgd_scheduler_add(e->sched, &sr, &r->group)) != PGD_OK) goto fail;
        for (int i = 0; i < initial; i++) {
            r->seqs[i]->sseq = r->group->seqs[i];
            r->group->seqs[i]->user = r->seqs[i];
        }
    }
    e->reqs[e->n_reqs++] = r;
    e->n_live++;
    if (id) *id = r->id;
    return PGD_OK;
fail:
    req_destroy(r);
    return st == PGD_ERR_OOM ? pgd_error(PGD_ERR_OOM, "engine: out of memory") : st;
}

static ereq *find(const pgd_engine *e, int64_t id) {
    return e && id >= 0 && id < e->n_reqs ? e->reqs[id] : NULL;
}

void pgd_engine_finish(pgd_engine *e, ereq *r, const char *reason) {
    if (r->finished) return;
    if (r->parked || r->pending) pgd_engine_unpark(e, r); /* a hand-off's KV it still holds */
    if (r->group) {
        r->out.num_preemptions = r->group->num_preemptions;
        r->out.num_cached_tokens = r->group->cached_tokens;
        if (r->in_flight) r->remove_on_landing = 1; /* its batch still computes on its blocks */
        else pgd_scheduler_remove(e->sched, r->group);
    }
    if (!r->remove_on_landing) r->group = NULL;
    for (int i = 0; i < r->n_seqs; i++)
        if (r->seqs[i] && r->seqs[i]->sseq) {
            r->seqs[i]->sseq = NULL;
            if (!r->seqs[i]->finish_reason) r->seqs[i]->finish_reason = reason;
        }
    r->finished = 1;
    r->finish_reason = reason;
    r->finish = pgd_engine_now(e);
    e->n_live--;
}

pgd_status pgd_engine_abort(pgd_engine *e, int64_t id) {
    ereq *r = find(e, id);
    if (!r) return pgd_error(PGD_ERR_INVALID, "engine: no request %lld", (long long)id);
    if (!r->finished) pgd_engine_finish(e, r, "abort");
    return PGD_OK;
}

int pgd_engine_has_unfinished(const pgd_engine *e) { return e->n_live - e->n_parked > 0 || e->n_flights > 0; }

static pgd_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return PGD_OK;
    size_t c = need * 2;
    void *q = realloc(*p, c * elem);
    if (!q) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    *p = q;
    *cap = c;
    return PGD_OK;
}

/* Run the plan's block operations in order, batching runs of one kind. */
static pgd_status run_ops(pgd_engine *e, const pgd_sched_plan *pl) {
    PGD_TRY(grow((void **)&e->pairs, &e->cap_pairs, 2 * (size_t)pl->num_ops + 2, sizeof(int32_t)));
    for (int i = 0; i < pl->num_ops;) {
        int j = i, kind = pl->ops[i].kind;
        for (; j < pl->num_ops && pl->ops[j].kind == kind; j++) {
            e->pairs[2 * (j - i)] = pl->ops[j].src;
            e->pairs[2 * (j - i) + 1] = pl->ops[j].dst;
        }
        int op = kind == PGD_OP_COPY ? PGD_EXEC_KV_COPY : kind == PGD_OP_SWAP_OUT ? PGD_EXEC_KV_SWAP_OUT
                                                                               : PGD_EXEC_KV_SWAP_IN;
        PGD_TRY(pgd_exec_kv_op(e->exec, op, e->pairs, j - i));
        i = j;
    }
    return PGD_OK;
}

/* Build the plan's batch, submit it, and remember what its landing needs. */
static pgd_status submit_batch(pgd_engine *e, const pgd_sched_plan *pl) {
    int S = pl->num_items, maxb = 1;
    for (int i = 0; i < S; i++)
        if (pl->items[i].n_blocks > maxb) maxb = pl->items[i].n_blocks;
    PGD_TRY(grow((void **)&e->tokens, &e->cap_tokens, (size_t)pl->num_tokens, sizeof(int32_t)));
    size_t cs = e->cap_seqs;
    PGD_TRY(grow((void **)&e->qs, &cs, (size_t)S + 1, sizeof(int32_t)));
    cs = e->cap_seqs;
    PGD_TRY(grow((void **)&e->lens, &cs, (size_t)S + 1, sizeof(int32_t)));
    e->cap_seqs = cs;
    PGD_TRY(grow((void **)&e->tables, &e->cap_tables, (size_t)S * (size_t)maxb, sizeof(int32_t)));
    int T = 0;
    for (int i = 0; i < S; i++) {
        const pgd_sched_item *it = &pl->items[i];
        e->qs[i] = T;
        memcpy(e->tokens + T, it->seq->tokens + it->start, sizeof(int32_t) * (size_t)it->num_new_tokens);
        T += it->num_new_tokens;
        e->lens[i] = it->start + it->num_new_tokens;
        memcpy(e->tables + (size_t)i * maxb, it->block_table, sizeof(int32_t) * (size_t)it->n_blocks);
        memset(e->tables + (size_t)i * maxb + it->n_blocks, 0, sizeof(int32_t) * (size_t)(maxb - it->n_blocks));
    }
    e->qs[S] = T;
    pgd_batch b = {.num_seqs = S, .num_tokens = T, .tokens = e->tokens, .query_start = e->qs, .seq_lens = e->lens,
                   .block_tables = e->tables, .max_blocks_per_seq = maxb};
    flight *f = &e->flights[(e->flight_head + e->n_flights) % e->max_in_flight];
    if (S > f->cap) {
        flight_item *p = realloc(f->items, sizeof *p * (size_t)S);
        if (!p) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
        f->items = p;
        f->cap = S;
    }
    PGD_TRY(pgd_exec_submit(e->exec, &b, &f->ticket));
    f->n = S;
    for (int i = 0; i < S; i++) {
        const pgd_sched_item *it = &pl->items[i];
        ereq *r = it->group->user;
        f->items[i] = (flight_item){.r = r, .es = it->seq->user, .sample = it->sample};
        r->in_flight++;
    }
    e->n_flights++;
    return PGD_OK;
}

/* The oldest batch lands: sample its items, update their requests, and let
 * the scheduler plan them again. */
static pgd_status land_batch(pgd_engine *e) {
    flight *f = &e->flights[e->flight_head];
    const float *logits = NULL;
    double t_wait = pgd_engine_now(e);
    pgd_status st = pgd_exec_wait(e->exec, f->ticket, &logits);
    e->flight_head = (e->flight_head + 1) % e->max_in_flight;
    e->n_flights--;
    double now = pgd_engine_now(e);
    e->stats.forward_seconds += now - t_wait;
    for (int i = 0; i < f->n; i++) f->items[i].r->in_flight--;
    PGD_TRY(st);
    size_t cap = e->cap_touched;
    PGD_TRY(grow((void **)&e->touched, &cap, (size_t)f->n + 1, sizeof(ereq *)));
    e->cap_touched = cap;
    int64_t mark = ++e->landings;
    int nt = 0;
    for (int i = 0; i < f->n; i++) {
        const flight_item *it = &f->items[i];
        ereq *r = it->r;
        if (r->first_scheduled < 0) r->first_scheduled = now;
        if (r->touched_step != mark) e->touched[nt++] = r;
        r->touched_step = mark;
        if (it->sample && !r->finished)
            PGD_TRY(pgd_engine_on_logits(e, r, it->es, logits + (size_t)i * e->mc->vocab_size));
    }
    /* group-level updates once every item has been read (groups may be freed here) */
    for (int i = 0; i < nt; i++) {
        ereq *r = e->touched[i];
        r->touched_step = -1;
        if (r->in_flight) continue;
        if (r->group) pgd_scheduler_landed(e->sched, r->group);
        if (r->remove_on_landing) { /* finished (aborted) while its batch computed */
            pgd_scheduler_remove(e->sched, r->group);
            r->group = NULL;
            r->remove_on_landing = 0;
        }
        if (r->release_on_landing) {
            int64_t id = r->id;
            req_destroy(r);
            e->reqs[id] = NULL;
            continue;
        }
        if (r->finished) continue;
        if (r->parked && r->group) { /* prefill_only: its KV waits for pgd_engine_export */
            pgd_scheduler_remove(e->sched, r->group);
            r->group = NULL;
            continue;
        }
        if (r->beam) PGD_TRY(pgd_beam_advance(e, r));
        if (!r->finished && r->group->num_seqs == 0)
            pgd_engine_finish(e, r, r->seqs[0] && r->seqs[0]->finish_reason ? r->seqs[0]->finish_reason : "stop");
    }
    e->stats.logits_seconds += pgd_engine_now(e) - now;
    return PGD_OK;
}

pgd_status pgd_engine_step(pgd_engine *e, int *num_finished) {
    if (num_finished) *num_finished = 0;
    int64_t live0 = e->n_live;
    int submitted = 0;
    if (e->n_held) pgd_engine_free_sent(e, 0);                 /* exports whose transfer has ended */
    if (e->n_pending) PGD_TRY(pgd_engine_admit_imports(e, 0)); /* hand-offs whose KV has arrived */
    if (e->n_flights < e->max_in_flight) {
        const pgd_sched_plan *pl = NULL;
        double t_sched = pgd_engine_now(e); /* phase boundaries (pgd_engine_stats *_seconds) */
        PGD_TRY(pgd_scheduler_step(e->sched, &pl));
        e->stats.steps++;
        for (int i = 0; i < pl->num_dropped; i++) {
            ereq *r = pl->dropped[i]->user;
            snprintf(r->error, sizeof r->error, "%s", pl->dropped[i]->error);
            pgd_engine_finish(e, r, "error");
        }
        PGD_TRY(run_ops(e, pl));
        double t_fwd = pgd_engine_now(e);
        e->stats.last_batch_seqs = pl->num_items;
        e->stats.last_batch_tokens = pl->num_tokens;
        if (pl->num_items > 0) {
            PGD_TRY(submit_batch(e, pl));
            submitted = 1;
            e->stats.forward_steps++;
            e->stats.tokens_computed += pl->num_tokens;
            if (pl->num_items > e->stats.max_batch_seqs) e->stats.max_batch_seqs = pl->num_items;
            if (pl->num_tokens > e->stats.max_batch_tokens) e->stats.max_batch_tokens = pl->num_tokens;
        }
        e->stats.schedule_seconds += t_fwd - t_sched;
        e->stats.forward_seconds += pgd_engine_now(e) - t_fwd;
    }
    if (e->n_flights > 0 && (e->n_flights == e->max_in_flight || !submitted)) PGD_TRY(land_batch(e));
    else if (!submitted && e->n_pending) PGD_TRY(pgd_engine_admit_imports(e, 1)); /* idle: wait for a hand-off */
    else if (!submitted && e->n_held) pgd_engine_free_sent(e, 1); /* blocked by KV still being sent: wait for it */
    if (num_finished) *num_finished = (int)(live0 - e->n_live);
    return PGD_OK;
}

pgd_status pgd_engine_run(pgd_engine *e) {
    while (pgd_engine_has_unfinished(e)) PGD_TRY(pgd_engine_step(e, NULL));
    return PGD_OK;
}

void pgd_engine_release(pgd_engine *e, int64_t id) {
    ereq *r = find(e, id);
    if (!r) return;
    if (!r->finished) pgd_engine_finish(e, r, "abort");
    pgd_engine_unpark(e, r);
    if (r->in_flight) { /* its batch still refers to it */
        r->release_on_landing = 1;
        return;
    }
    req_destroy(r);
    e->reqs[id] = NULL;
}

void pgd_engine_get_stats(const pgd_engine *e, pgd_engine_stats *out) {
    *out = e->stats;
    out->preemptions = pgd_scheduler_total_preemptions(e->sched);
    out->swaps = pgd_scheduler_total_swaps(e->sched);
    out->num_waiting = pgd_scheduler_num_waiting(e->sched);
    out->num_running = pgd_scheduler_num_running(e->sched);
    out->num_swapped = pgd_scheduler_num_swapped(e->sched);
    pgd_kv_get_stats(e->kvm, &out->kv);
}
