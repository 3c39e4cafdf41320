/* engine_disagg.c - prefill/decode disaggregation's KV hand-off (engine.h):
 * parking a prefill_only request's KV after its first token, exporting it
 * (state + every layer's K/V of its blocks through the executor), importing
 * it into another engine, and the export's wire format.
 *
 * Invariants: a parked request is finished ("prefilled") and holds either a
 * KV-manager sequence park_id sharing its blocks (paged) or a host copy of
 * them (staged, contiguous kinds), until export or release frees it; an
 * imported request's first token and sampler state are the exporter's, so
 * its tokens equal a single engine's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"

#define PARK_BASE ((int64_t)1 << 60) /* parked KV ids: above any scheduler sequence id */

typedef struct export_priv {
    int32_t *prompt, *stop_ids;
    char **stop_strs;
    int n_stop_strs;
} export_priv;

void pgd_kv_handoff_free(pgd_kv_handoff *x) {
    if (!x) return;
    export_priv *p = x->priv;
    if (p) {
        free(p->prompt);
        free(p->stop_ids);
        for (int i = 0; i < p->n_stop_strs; i++) free(p->stop_strs[i]);
        free(p->stop_strs);
        free(p);
    }
    free(x->kv);
    free(x);
}

static pgd_status read_blocks(pgd_engine *e, const int32_t *table, int n, void **out, size_t *bytes) {
    *out = NULL;
    *bytes = (size_t)n * pgd_exec_kv_block_bytes(e->exec);
    if (!pgd_exec_computes(e->exec) || n == 0) return pgd_exec_kv_io(e->exec, PGD_EXEC_KV_READ, table, n, NULL);
    void *buf = malloc(*bytes);
    if (!buf) return pgd_error(PGD_ERR_OOM, "engine: out of memory for %zu bytes of KV", *bytes);
    pgd_status st = pgd_exec_kv_io(e->exec, PGD_EXEC_KV_READ, table, n, buf);
    if (st != PGD_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return PGD_OK;
}

pgd_status pgd_engine_park(pgd_engine *e, ereq *r, eseq *es) {
    int64_t kid = es->sseq->id;
    if (e->can_fork) { /* paged: a second reference keeps the blocks once the sequence is freed */
        r->park_id = PARK_BASE + r->id;
        PGD_TRY(pgd_kv_fork(e->kvm, kid, r->park_id));
        r->parked = 1;
    } else { /* contiguous reservations cannot be shared: copy the K/V out now */
        const int32_t *table = NULL;
        int nb = 0;
        PGD_TRY(pgd_kv_block_table(e->kvm, kid, &table, &nb));
        PGD_TRY(read_blocks(e, table, nb, &r->staged, &r->staged_bytes));
        r->staged_blocks = nb;
        r->parked = 2;
    }
    e->n_parked++;                                        /* live, but nothing to run: the engine is not busy with it */
    pgd_scheduler_free_seq(e->sched, r->group, es->sseq); /* its group goes when the batch lands */
    es->sseq = NULL;
    return PGD_OK;
}

void pgd_engine_unpark(pgd_engine *e, ereq *r) {
    if (r->parked == 1) (void)pgd_kv_free(e->kvm, r->park_id);
    if (r->parked) e->n_parked--;
    free(r->staged);
    r->staged = NULL;
    r->parked = 0;
    if (r->pending) {
        pgd_kv_handoff_free(r->pending);
        r->pending = NULL;
        e->n_pending--;
    }
}

static pgd_status copy_params(pgd_kv_handoff *x, const pgd_request_params *p) {
    export_priv *pv = x->priv;
    x->params = *p;
    x->params.prefill_only = 0;
    if (!(pv->prompt = malloc(sizeof(int32_t) * (size_t)p->n_prompt))) goto oom;
    memcpy(pv->prompt, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    x->params.prompt = pv->prompt;
    x->params.stop_token_ids = NULL;
    x->params.stop_strings = NULL;
    if (p->n_stop_token_ids > 0) {
        if (!(pv->stop_ids = malloc(sizeof(int32_t) * (size_t)p->n_stop_token_ids))) goto oom;
        memcpy(pv->stop_ids, p->stop_token_ids, sizeof(int32_t) * (size_t)p->n_stop_token_ids);
        x->params.stop_token_ids = pv->stop_ids;
    }
    if (p->n_stop_strings > 0) {
        if (!(pv->stop_strs = calloc((size_t)p->n_stop_strings, sizeof(char *)))) goto oom;
        pv->n_stop_strs = p->n_stop_strings;
        for (int i = 0; i < p->n_stop_strings; i++)
            if (!(pv->stop_strs[i] = strdup(p->stop_strings[i] ? p->stop_strings[i] : ""))) goto oom;
        x->params.stop_strings = (const char *const *)pv->stop_strs;
    }
    return PGD_OK;
oom:
    return pgd_error(PGD_ERR_OOM, "engine: out of memory");
}

static pgd_kv_handoff *export_new(void) {
    pgd_kv_handoff *x = calloc(1, sizeof *x);
    if (x && !(x->priv = calloc(1, sizeof(export_priv)))) {
        free(x);
        x = NULL;
    }
    return x;
}

/* Keep a paged export's blocks (its parked KV id) until pgd_engine_export_sent. */
static pgd_status hold(pgd_engine *e, ereq *r) {
    if (e->n_held == e->cap_held) {
        int cap = e->cap_held ? 2 * e->cap_held : 16;
        struct held_kv *h = realloc(e->held, sizeof *h * (size_t)cap);
        if (!h) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
        e->held = h;
        e->cap_held = cap;
    }
    e->held[e->n_held++] = (struct held_kv){.request = r->id, .kv_id = r->park_id, .free_at = INFINITY};
    pgd_scheduler_set_held_blocks(e->sched, pgd_engine_held_blocks(e));
    r->parked = 0; /* the blocks are the transfer's now, not the request's */
    e->n_parked--;
    return PGD_OK;
}

static pgd_status export_request(pgd_engine *e, int64_t id, int keep, pgd_kv_handoff **out) {
    if (!e || !out) return pgd_error(PGD_ERR_INVALID, "engine: NULL argument");
    *out = NULL;
    ereq *r = id >= 0 && id < e->n_reqs ? e->reqs[id] : NULL;
    if (!r) return pgd_error(PGD_ERR_INVALID, "export: no request %lld", (long long)id);
    if (!r->p.prefill_only)
        return pgd_error(PGD_ERR_INVALID, "export: request %lld was not added as prefill_only", (long long)id);
    if (r->exported) return pgd_error(PGD_ERR_INVALID, "export: request %lld was exported already", (long long)id);
    eseq *es = r->seqs[0];
    int prefilled = r->parked != 0;
    if (!prefilled && (!r->finished || r->in_flight))
        return pgd_error(PGD_ERR_INVALID, "export: request %lld has not finished its prefill yet", (long long)id);
    if (!prefilled &&
        (!es || es->n_gen != 1 || (strcmp(r->finish_reason, "stop") && strcmp(r->finish_reason, "length"))))
        return pgd_error(PGD_ERR_INVALID, "export: request %lld ended with '%s'%s%s", (long long)id, r->finish_reason,
                         r->error[0] ? ": " : "", r->error);
    pgd_kv_handoff *x = export_new();
    if (!x) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    pgd_status st = copy_params(x, &r->p);
    if (st != PGD_OK) goto fail;
    const pgd_model_config *mc = e->mc;
    x->n_layers = mc->n_layers, x->n_kv_heads = mc->n_kv_heads, x->head_dim = mc->head_dim;
    x->vocab_size = mc->vocab_size, x->max_seq_len = mc->max_seq_len, x->kv_dtype = (int)mc->kv_dtype;
    x->block_size = e->cfg.block_size;
    x->first_token = es && es->n_gen > 0 ? es->gen[0] : -1;
    x->finish_reason = prefilled ? "prefilled" : r->finish_reason;
    x->arrival = r->arrival + e->t0;
    x->first_scheduled = r->first_scheduled + e->t0;
    x->first_token_time = r->first_token + e->t0;
    x->num_cached_tokens = r->out.num_cached_tokens;
    if (es && es->sampler) pgd_sampler_get_state(es->sampler, x->sampler_state);
    x->n_tokens = r->p.n_prompt;
    x->block_bytes = pgd_exec_kv_block_bytes(e->exec);
    if (r->parked == 1) {
        const int32_t *table = NULL;
        int nb = 0;
        if ((st = pgd_kv_block_table(e->kvm, r->park_id, &table, &nb)) != PGD_OK) goto fail;
        if ((st = read_blocks(e, table, nb, &x->kv, &x->kv_bytes)) != PGD_OK) goto fail;
        x->n_blocks = nb;
    } else if (r->parked == 2) {
        x->kv = r->staged;
        x->kv_bytes = r->staged_bytes;
        x->n_blocks = r->staged_blocks;
        r->staged = NULL;
    }
    if (keep && r->parked == 1 && (st = hold(e, r)) != PGD_OK) goto fail;
    r->exported = 1;
    if (prefilled) pgd_engine_finish(e, r, "exported"); /* frees its parked KV (unless held) */
    *out = x;
    return PGD_OK;
fail:
    pgd_kv_handoff_free(x);
    return st;
}

pgd_status pgd_engine_export(pgd_engine *e, int64_t id, pgd_kv_handoff **out) { return export_request(e, id, 0, out); }

pgd_status pgd_engine_export_held(pgd_engine *e, int64_t id, pgd_kv_handoff **out) {
    return export_request(e, id, 1, out);
}

void pgd_engine_free_sent(pgd_engine *e, int idle) {
    double now = pgd_engine_now(e), first = INFINITY;
    for (int i = 0; idle && i < e->n_held; i++)
        if (e->held[i].free_at < first) first = e->held[i].free_at;
    if (idle && first > now && first < INFINITY) { /* nothing else to do: the sim's clock jumps */
        pgd_clock_sleep_until(e->cfg.clock, e->t0 + first);
        now = pgd_engine_now(e);
    }
    for (int i = 0; i < e->n_held;) {
        if (e->held[i].free_at <= now) {
            (void)pgd_kv_free(e->kvm, e->held[i].kv_id);
            e->held[i] = e->held[--e->n_held];
        } else {
            i++;
        }
    }
    pgd_scheduler_set_held_blocks(e->sched, pgd_engine_held_blocks(e));
}

void pgd_engine_export_sent(pgd_engine *e, int64_t id, double t) {
    if (!e) return;
    for (int i = 0; i < e->n_held; i++)
        if (e->held[i].request == id) e->held[i].free_at = t;
    pgd_engine_free_sent(e, 0);
}

int pgd_engine_held_blocks(const pgd_engine *e) {
    int n = 0;
    for (int i = 0; e && i < e->n_held; i++) {
        const int32_t *table = NULL;
        int nb = 0;
        if (pgd_kv_block_table(e->kvm, e->held[i].kv_id, &table, &nb) == PGD_OK) n += nb;
    }
    return n;
}

static pgd_status check_fits(const pgd_engine *e, const pgd_kv_handoff *x) {
    const pgd_model_config *mc = e->mc;
    if (strcmp(x->finish_reason ? x->finish_reason : "", "prefilled"))
        return pgd_error(PGD_ERR_INVALID,
                         "import: the request has nothing to decode (it finished with '%s' at its "
                         "first token)",
                         x->finish_reason ? x->finish_reason : "?");
    if (x->n_layers != mc->n_layers || x->n_kv_heads != mc->n_kv_heads || x->head_dim != mc->head_dim ||
        x->vocab_size != mc->vocab_size)
        return pgd_error(PGD_ERR_INVALID,
                         "import: the KV was computed by a different model (%d layers x %d KV "
                         "heads x head_dim %d, vocab %d) than this engine's (%d x %d x %d, vocab %d)",
                         x->n_layers, x->n_kv_heads, x->head_dim, x->vocab_size, mc->n_layers, mc->n_kv_heads,
                         mc->head_dim, mc->vocab_size);
    if (x->kv_dtype != (int)mc->kv_dtype)
        return pgd_error(PGD_ERR_INVALID, "import: the KV is %s, this engine's cache holds %s",
                         pgd_dtype_name((pgd_dtype)x->kv_dtype), pgd_dtype_name(mc->kv_dtype));
    if (x->block_size != e->cfg.block_size)
        return pgd_error(PGD_ERR_INVALID,
                         "import: the KV comes in blocks of %d tokens, this engine's block_size "
                         "is %d (both sides need the same block_size)",
                         x->block_size, e->cfg.block_size);
    int nb = (x->n_tokens + x->block_size - 1) / x->block_size;
    if (x->n_tokens != x->params.n_prompt || x->n_blocks != nb ||
        x->block_bytes != pgd_kv_cache_block_bytes(mc, e->cfg.block_size) || x->kv_bytes != (size_t)nb * x->block_bytes)
        return pgd_error(PGD_ERR_INVALID,
                         "import: inconsistent export (%d tokens in %d blocks of %zu bytes, "
                         "%zu bytes of KV)",
                         x->n_tokens, x->n_blocks, x->block_bytes, x->kv_bytes);
    if (pgd_exec_computes(e->exec) && !x->kv)
        return pgd_error(PGD_ERR_INVALID, "import: the export carries no K/V data (it came from an engine that "
                                          "computes nothing, the sim), this engine computes");
    if (x->first_token < 0 || x->first_token >= mc->vocab_size)
        return pgd_error(PGD_ERR_INVALID, "import: first token %d outside the vocabulary", x->first_token);
    return PGD_OK;
}

/* Admit an imported request (its KV is here): straight into running with the
 * K/V written into its fresh blocks. PGD_ERR_NO_BLOCKS: no room now. */
static pgd_status admit(pgd_engine *e, ereq *r, const pgd_kv_handoff *x) {
    int np = x->params.n_prompt, cached = 0;
    int32_t *tokens = malloc(sizeof(int32_t) * ((size_t)np + 1));
    if (!tokens) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    memcpy(tokens, x->params.prompt, sizeof(int32_t) * (size_t)np);
    tokens[np] = x->first_token;
    pgd_sched_request sr = {.id = r->id,
                            .prompt = r->prompt,
                            .n_prompt = np,
                            .max_new_tokens = r->max_new,
                            .true_output_len = r->p.true_output_len,
                            .priority = r->p.priority,
                            .arrival = r->arrival,
                            .num_seqs = 1,
                            .max_seqs = 1,
                            .user = r,
                            .client = r->p.client,
                            .slo_class = r->p.slo_class,
                            .ttft_deadline = r->p.ttft_slo > 0 ? r->arrival + r->p.ttft_slo : 0};
    pgd_status st = pgd_scheduler_add_prefilled(e->sched, &sr, tokens, np + 1, np, &r->group, &cached);
    free(tokens);
    PGD_TRY(st);
    eseq *es = r->seqs[0];
    es->sseq = r->group->seqs[0];
    es->sseq->user = es;
    /* the K/V into the fresh blocks (those found in this engine's prefix cache hold it already) */
    const int32_t *table = NULL;
    int nb = 0;
    if ((st = pgd_kv_block_table(e->kvm, es->sseq->id, &table, &nb)) != PGD_OK) return st;
    PGD_ASSERT(nb == x->n_blocks);
    int skip = cached / x->block_size;
    if (nb > skip)
        st = pgd_exec_kv_io(e->exec, PGD_EXEC_KV_WRITE, table + skip, nb - skip,
                            x->kv ? (char *)x->kv + (size_t)skip * x->block_bytes : NULL);
    return st;
}

static pgd_kv_handoff *copy_handoff(const pgd_kv_handoff *x) {
    void *buf = NULL;
    size_t n = 0;
    pgd_kv_handoff *y = NULL;
    if (pgd_kv_handoff_pack(x, &buf, &n) == PGD_OK) (void)pgd_kv_handoff_unpack(buf, n, &y);
    free(buf);
    if (y) y->ready_time = x->ready_time;
    return y;
}

pgd_status pgd_engine_import(pgd_engine *e, const pgd_kv_handoff *x, int64_t *id) {
    if (!e || !x) return pgd_error(PGD_ERR_INVALID, "engine: NULL argument");
    PGD_TRY(check_fits(e, x));
    pgd_request_params p = x->params;
    p.prefill_only = 0;
    p.arrival_time = 0;
    int64_t rid = -1;
    e->importing = 1;
    pgd_status st = pgd_engine_add_request(e, &p, &rid); /* the request, without its scheduler group */
    e->importing = 0;
    PGD_TRY(st);
    ereq *r = e->reqs[rid];
    eseq *es = r->seqs[0];
    r->arrival = x->arrival - e->t0;
    r->first_scheduled = x->first_scheduled - e->t0;
    r->first_token = x->first_token_time - e->t0;
    r->out.num_cached_tokens = x->num_cached_tokens;
    if (es->sampler) pgd_sampler_set_state(es->sampler, x->sampler_state);
    if ((st = pgd_eseq_push(es, x->first_token, r->first_token)) != PGD_OK) goto fail;
    if (r->p.n_stop_strings > 0) (void)pgd_engine_stop_reason(e, r, es, x->first_token); /* its text so far */
    r->ready_at = x->ready_time > 0 ? x->ready_time - e->t0 : 0;
    if (r->ready_at <= pgd_engine_now(e)) {
        st = admit(e, r, x);
        if (st == PGD_OK) goto done;
        if (st != PGD_ERR_NO_BLOCKS) goto fail;
    }
    if (!(r->pending = copy_handoff(x))) { /* admitted by a later step */
        st = pgd_error(PGD_ERR_OOM, "engine: out of memory keeping a hand-off of %zu bytes", x->kv_bytes);
        goto fail;
    }
    e->n_pending++;
done:
    if (id) *id = rid;
    return PGD_OK;
fail:
    pgd_engine_release(e, rid);
    return st;
}

pgd_status pgd_engine_admit_imports(pgd_engine *e, int idle) {
    double now = pgd_engine_now(e), first = -1;
    while (e->pending_lo < e->n_reqs && (!e->reqs[e->pending_lo] || !e->reqs[e->pending_lo]->pending))
        e->pending_lo++; /* imports take new ids: the pending ones are at the end */
    for (int64_t i = e->pending_lo; i < e->n_reqs && idle; i++) { /* nothing else to run: wait for the earliest */
        ereq *r = e->reqs[i];
        if (r && r->pending && (first < 0 || r->ready_at < first)) first = r->ready_at;
    }
    if (idle && first > now) {
        pgd_clock_sleep_until(e->cfg.clock, e->t0 + first);
        now = pgd_engine_now(e);
    }
    for (int64_t i = e->pending_lo; i < e->n_reqs && e->n_pending > 0; i++) {
        ereq *r = e->reqs[i];
        if (!r || !r->pending || r->ready_at > now) continue;
        pgd_status st = admit(e, r, r->pending);
        if (st == PGD_ERR_NO_BLOCKS) {
            if (idle && !pgd_scheduler_has_unfinished(e->sched))
                return pgd_error(PGD_ERR_INVALID,
                                 "import: request %lld does not fit the idle engine's KV cache "
                                 "(%d blocks)",
                                 (long long)r->id, e->cfg.num_blocks);
            break; /* in arrival order: the next ones wait too */
        }
        PGD_TRY(st);
        pgd_kv_handoff_free(r->pending);
        r->pending = NULL;
        e->n_pending--;
    }
    return PGD_OK;
}

/* ---- wire format: a header of fixed-width fields, then the arrays ---- */

#define MAGIC 0x4b56484fu /* "KVHO" */
enum { NI = 16, ND = 3 };

typedef struct wbuf {
    char *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *w, const void *d, size_t n) {
    if (w->oom || !n) return;
    if (w->n + n > w->cap) {
        size_t c = (w->n + n) * 2;
        char *q = realloc(w->p, c);
        if (!q) {
            w->oom = 1;
            return;
        }
        w->p = q;
        w->cap = c;
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}

static int reason_code(const char *r) {
    return !r ? 0 : !strcmp(r, "prefilled") ? 1 : !strcmp(r, "stop") ? 2 : !strcmp(r, "length") ? 3 : 0;
}
static const char *reason_name(int c) { return c == 1 ? "prefilled" : c == 2 ? "stop" : c == 3 ? "length" : NULL; }

pgd_status pgd_kv_handoff_pack(const pgd_kv_handoff *x, void **buf, size_t *n) {
    if (!x || !buf || !n) return pgd_error(PGD_ERR_INVALID, "export: NULL argument");
    const pgd_request_params *p = &x->params;
    int64_t iv[NI] = {MAGIC,
                      x->n_layers,
                      x->n_kv_heads,
                      x->head_dim,
                      x->vocab_size,
                      x->max_seq_len,
                      x->kv_dtype,
                      x->block_size,
                      x->first_token,
                      reason_code(x->finish_reason),
                      x->num_cached_tokens,
                      x->n_tokens,
                      x->n_blocks,
                      (int64_t)x->block_bytes,
                      (int64_t)x->kv_bytes,
                      x->kv != NULL};
    int64_t pv[] = {p->n_prompt,
                    p->max_tokens,
                    p->n,
                    p->beam_width,
                    p->priority,
                    p->n_stop_token_ids,
                    p->n_stop_strings,
                    p->true_output_len,
                    p->ignore_eos,
                    p->client,
                    p->slo_class,
                    p->sampling.top_k,
                    (int64_t)p->sampling.seed};
    double dv[] = {x->arrival,        x->first_scheduled, x->first_token_time, p->ttft_slo, p->sampling.temperature,
                   p->sampling.top_p, p->arrival_time};
    wbuf w = {0};
    put(&w, iv, sizeof iv);
    put(&w, pv, sizeof pv);
    put(&w, dv, sizeof dv);
    put(&w, x->sampler_state, sizeof x->sampler_state);
    put(&w, p->prompt, sizeof(int32_t) * (size_t)p->n_prompt);
    if (p->n_stop_token_ids > 0) put(&w, p->stop_token_ids, sizeof(int32_t) * (size_t)p->n_stop_token_ids);
    for (int i = 0; i < p->n_stop_strings; i++) put(&w, p->stop_strings[i], strlen(p->stop_strings[i]) + 1);
    if (x->kv) put(&w, x->kv, x->kv_bytes);
    if (w.oom) {
        free(w.p);
        return pgd_error(PGD_ERR_OOM, "export: out of memory packing %zu bytes", w.n);
    }
    *buf = w.p;
    *n = w.n;
    return PGD_OK;
}

static int take(const char **p, const char *end, void *d, size_t n) {
    if ((size_t)(end - *p) < n) return 0;
    memcpy(d, *p, n);
    *p += n;
    return 1;
}

pgd_status pgd_kv_handoff_unpack(const void *buf, size_t n, pgd_kv_handoff **out) {
    if (!buf || !out) return pgd_error(PGD_ERR_INVALID, "export: NULL argument");
    *out = NULL;
    const char *p = buf, *end = p + n;
    int64_t iv[NI], pv[13];
    double dv[7];
    pgd_kv_handoff *x = NULL;
    pgd_status st = PGD_ERR_FORMAT;
    if (!take(&p, end, iv, sizeof iv) || iv[0] != MAGIC || !take(&p, end, pv, sizeof pv) ||
        !take(&p, end, dv, sizeof dv))
        return pgd_error(PGD_ERR_FORMAT, "export: not a KV hand-off (%zu bytes, bad header)", n);
    if (pv[0] < 1 || pv[0] > (1 << 24) || pv[5] < 0 || pv[5] > (1 << 20) || pv[6] < 0 || pv[6] > 4096 || iv[14] < 0 ||
        (iv[15] && (size_t)iv[14] > n) || iv[12] < 0 || iv[11] != pv[0] || !reason_name((int)iv[9]))
        return pgd_error(PGD_ERR_FORMAT, "export: corrupt KV hand-off header");
    if (!(x = export_new())) return pgd_error(PGD_ERR_OOM, "engine: out of memory");
    export_priv *pr = x->priv;
    x->n_layers = (int)iv[1], x->n_kv_heads = (int)iv[2], x->head_dim = (int)iv[3], x->vocab_size = (int)iv[4];
    x->max_seq_len = (int)iv[5], x->kv_dtype = (int)iv[6], x->block_size = (int)iv[7];
    x->first_token = (int32_t)iv[8], x->finish_reason = reason_name((int)iv[9]), x->num_cached_tokens = (int)iv[10];
    x->n_tokens = (int)iv[11], x->n_blocks = (int)iv[12], x->block_bytes = (size_t)iv[13];
    x->kv_bytes = (size_t)iv[14];
    pgd_request_params *q = &x->params;
    q->n_prompt = (int)pv[0], q->max_tokens = (int)pv[1], q->n = (int)pv[2], q->beam_width = (int)pv[3];
    q->priority = (int)pv[4], q->n_stop_token_ids = (int)pv[5], q->n_stop_strings = (int)pv[6];
    q->true_output_len = (int)pv[7], q->ignore_eos = (int)pv[8], q->client = (int)pv[9], q->slo_class = (int)pv[10];
    q->sampling.top_k = (int)pv[11], q->sampling.seed = (uint64_t)pv[12];
    x->arrival = dv[0], x->first_scheduled = dv[1], x->first_token_time = dv[2], q->ttft_slo = dv[3];
    q->sampling.temperature = (float)dv[4], q->sampling.top_p = (float)dv[5], q->arrival_time = dv[6];
    st = PGD_ERR_OOM;
    if (!take(&p, end, x->sampler_state, sizeof x->sampler_state)) goto bad;
    if (!(pr->prompt = malloc(sizeof(int32_t) * (size_t)q->n_prompt))) goto fail;
    if (!take(&p, end, pr->prompt, sizeof(int32_t) * (size_t)q->n_prompt)) goto bad;
    q->prompt = pr->prompt;
    if (q->n_stop_token_ids > 0) {
        if (!(pr->stop_ids = malloc(sizeof(int32_t) * (size_t)q->n_stop_token_ids))) goto fail;
        if (!take(&p, end, pr->stop_ids, sizeof(int32_t) * (size_t)q->n_stop_token_ids)) goto bad;
        q->stop_token_ids = pr->stop_ids;
    }
    if (q->n_stop_strings > 0) {
        if (!(pr->stop_strs = calloc((size_t)q->n_stop_strings, sizeof(char *)))) goto fail;
        pr->n_stop_strs = q->n_stop_strings;
        for (int i = 0; i < q->n_stop_strings; i++) {
            const char *z = memchr(p, 0, (size_t)(end - p));
            if (!z) goto bad;
            if (!(pr->stop_strs[i] = strdup(p))) goto fail;
            p = z + 1;
        }
        q->stop_strings = (const char *const *)pr->stop_strs;
    }
    if (iv[15]) {
        if (!(x->kv = malloc(x->kv_bytes ? x->kv_bytes : 1))) goto fail;
        if (!take(&p, end, x->kv, x->kv_bytes)) goto bad;
    }
    if (p != end) goto bad;
    *out = x;
    return PGD_OK;
bad:
    pgd_kv_handoff_free(x);
    return pgd_error(PGD_ERR_FORMAT, "export: truncated or corrupt KV hand-off (%zu bytes)", n);
fail:
    pgd_kv_handoff_free(x);
    return pgd_error(st, "engine: out of memory");
}
