/* workload.c - building a workload: stage rows from the source (synthetic
 * draws, trace rows, dataset texts), select the first N or a seeded
 * sample, materialize prompts (random ids, Mooncake hash blocks or
 * tokenized text, plus the optional shared prefix), clip to the context,
 * assign arrivals and priorities, and sort by arrival.
 *
 * Invariants: every request has n_prompt >= 1 and output_len >= 1, and
 * with max_model_len > 0, n_prompt + output_len <= max_model_len; requests
 * are sorted by (arrival, selection order); all draws come from per-item
 * seeded streams (workload_impl.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/log.h"
#include "pagoda/model.h"
#include "workload/workload_impl.h"

static pgd_status validate(const pgd_workload_config *c) {
    if (c->num_requests < 0)
        return pgd_error(PGD_ERR_INVALID, "workload: num_requests %d must be >= 0", c->num_requests);
    if (c->vocab_size < 0 || (c->vocab_size > 0 && c->vocab_size < 4))
        return pgd_error(PGD_ERR_INVALID, "workload: vocab_size %d must be >= 4", c->vocab_size);
    if (c->max_model_len < 0 || c->max_model_len == 1)
        return pgd_error(PGD_ERR_INVALID, "workload: max_model_len %d must be 0 or >= 2",
                         c->max_model_len);
    if (c->shared_prefix_len < 0)
        return pgd_error(PGD_ERR_INVALID, "workload: shared_prefix_len %d must be >= 0",
                         c->shared_prefix_len);
    if (c->num_priorities < 0)
        return pgd_error(PGD_ERR_INVALID, "workload: num_priorities %d must be >= 0",
                         c->num_priorities);
    if (!(c->time_scale >= 0) || isinf(c->time_scale))
        return pgd_error(PGD_ERR_INVALID, "workload: time_scale %g must be >= 0 and finite",
                         c->time_scale);
    const pgd_arrival *a = &c->arrival;
    if ((unsigned)a->kind > PGD_ARRIVAL_TRACE)
        return pgd_error(PGD_ERR_INVALID, "workload: unknown arrival kind %d", (int)a->kind);
    if ((a->kind == PGD_ARRIVAL_POISSON || a->kind == PGD_ARRIVAL_GAMMA) && !(a->rate > 0))
        return pgd_error(PGD_ERR_INVALID, "workload: arrival rate %g must be > 0 (inf = all at once)",
                         a->rate);
    if (!(a->burstiness >= 0) || isinf(a->burstiness))
        return pgd_error(PGD_ERR_INVALID, "workload: burstiness %g must be > 0", a->burstiness);
    if (a->max_concurrency < 0)
        return pgd_error(PGD_ERR_INVALID, "workload: max_concurrency %d must be >= 0",
                         a->max_concurrency);
    if (a->kind == PGD_ARRIVAL_CLOSED_LOOP && a->max_concurrency <= 0)
        return pgd_error(PGD_ERR_INVALID, "workload: closed-loop arrivals need max_concurrency > 0");
    if ((unsigned)c->source > PGD_WL_DATASET)
        return pgd_error(PGD_ERR_INVALID, "workload: unknown source %d", (int)c->source);
    if (c->source != PGD_WL_SYNTHETIC && (!c->path || !*c->path))
        return pgd_error(PGD_ERR_INVALID, "workload: a %s source needs a path",
                         pgd_workload_source_name(c->source));
    if (c->source == PGD_WL_DATASET && !c->tokenizer)
        return pgd_error(PGD_ERR_INVALID, "workload: dataset %s needs a tokenizer", c->path);
    if (c->num_clients < 0 || c->num_clients > PGD_MAX_CLIENTS)
        return pgd_error(PGD_ERR_INVALID, "workload: %d clients; at most %d", c->num_clients, PGD_MAX_CLIENTS);
    if (c->num_classes < 0 || c->num_classes > PGD_MAX_CLIENTS)
        return pgd_error(PGD_ERR_INVALID, "workload: %d SLO classes; at most %d", c->num_classes, PGD_MAX_CLIENTS);
    for (int i = 0; i < c->num_clients; i++) {
        if (!(c->client_rate[i] > 0) || isinf(c->client_rate[i]))
            return pgd_error(PGD_ERR_INVALID, "workload: client %d's rate %g must be > 0 and finite", i,
                             c->client_rate[i]);
        if (!(c->client_burstiness[i] >= 0) || isinf(c->client_burstiness[i]))
            return pgd_error(PGD_ERR_INVALID, "workload: client %d's burstiness %g must be > 0", i,
                             c->client_burstiness[i]);
        if (c->client_class[i] < 0 || c->client_class[i] >= PGD_MAX_CLIENTS)
            return pgd_error(PGD_ERR_INVALID, "workload: client %d's SLO class %d must be in 0..%d", i,
                             c->client_class[i], PGD_MAX_CLIENTS - 1);
    }
    for (int i = 0; i < c->num_classes; i++)
        if (!(c->class_ttft_slo[i] >= 0) || isinf(c->class_ttft_slo[i]))
            return pgd_error(PGD_ERR_INVALID, "workload: SLO class %d's TTFT target %g must be >= 0 and finite", i,
                             c->class_ttft_slo[i]);
    if (c->num_clients > 0 && a->kind != PGD_ARRIVAL_DEFAULT && a->kind != PGD_ARRIVAL_POISSON &&
        a->kind != PGD_ARRIVAL_GAMMA)
        return pgd_error(PGD_ERR_INVALID,
                         "workload: a client mix gives each client its own arrivals; arrival '%s' conflicts "
                         "(use default, poisson or gamma)", pgd_arrival_kind_name(a->kind));
    return PGD_OK;
}

/* A synthetic input length whose every draw is longer than the context
 * (fixed, or a uniform minimum) would measure clipped prompts under the
 * label of the length asked for: an error, not a silent clip. */
static pgd_status check_fits(const pgd_workload_config *c, const pgd_len_dist *in) {
    int L = c->max_model_len;
    if (L <= 0) return PGD_OK;
    double least = in->kind == PGD_LEN_FIXED ? in->mean : in->kind == PGD_LEN_UNIFORM ? in->min : 0;
    if (in->min > least) least = in->min;
    if (least + c->shared_prefix_len <= L - 1) return PGD_OK;
    if (c->shared_prefix_len >= L - 1)
        return pgd_error(PGD_ERR_INVALID,
                         "workload: shared_prefix_len %d leaves no room for the input in the "
                         "model's context of %d tokens (a prompt holds at most %d)",
                         c->shared_prefix_len, L, L - 1);
    char pre[64] = "";
    if (c->shared_prefix_len)
        snprintf(pre, sizeof pre, " + shared_prefix_len %d", c->shared_prefix_len);
    return pgd_error(PGD_ERR_INVALID,
                     "workload: every prompt would be clipped to the model's context: input_len "
                     "%s %s %.0f%s is more than the %d tokens a prompt can hold (max_model_len %d, "
                     "less 1 for the output); ask for at most %d",
                     pgd_len_kind_name(in->kind), in->kind == PGD_LEN_FIXED ? "of" : "of at least",
                     least, pre, L - 1, L, L - 1 - c->shared_prefix_len);
}

/* Algorithm S (Knuth): k of n indices, uniformly, in increasing order. */
static void select_rows(const pgd_workload_config *c, int64_t n, int64_t k, int64_t *sel) {
    if (!c->sample || k >= n) {
        for (int64_t i = 0; i < k; i++) sel[i] = i;
        return;
    }
    pgd_rng r;
    pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_SAMPLE, 0));
    int64_t m = 0;
    for (int64_t t = 0; t < n && m < k; t++)
        if ((double)(n - t) * pgd_rng_uniform(&r) < (double)(k - m)) sel[m++] = t;
}

static void random_tokens(uint64_t seed, int vocab, int32_t *dst, int n) {
    pgd_rng r;
    pgd_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) dst[i] = (int32_t)pgd_rng_range(&r, 3, vocab);
}

/* Mooncake: block j's tokens depend on (seed, hash id) only. */
static void mooncake_tokens(const pgd_workload_config *c, int vocab, const pgd_wl_row *row,
                            int32_t *dst, int n) {
    int done = 0;
    for (int j = 0; j < row->n_hash_ids && done < n; j++) {
        int m = n - done < PGD_MOONCAKE_BLOCK ? n - done : PGD_MOONCAKE_BLOCK;
        random_tokens(pgd_rng_stream(c->seed, PGD_STREAM_BLOCK, (uint64_t)row->hash_ids[j]), vocab,
                      dst + done, m);
        done += m;
    }
    if (done < n) /* tokens past the hashed blocks: unique to this row */
        random_tokens(pgd_rng_stream(c->seed, PGD_STREAM_TOKENS, (uint64_t)row->row), vocab,
                      dst + done, n - done);
}

/* Build request i from staged row `row`; takes ownership of row->hash_ids. */
static pgd_status materialize(const pgd_workload_config *c, int is_mooncake, pgd_len_dist *out_d,
                              int i, pgd_wl_row *row, pgd_wl_req *q) {
    int vocab = c->vocab_size ? c->vocab_size : 32000;
    if (c->source == PGD_WL_DATASET) {
        PGD_TRY(pgd_wl_dataset_tokenize(c, row));
        if (c->override_output_len || row->out_len <= 0) {
            pgd_rng r;
            pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_OUTPUT_LEN, (uint64_t)row->row));
            row->out_len = pgd_len_dist_sample(out_d, &r);
        }
    }
    int pre = c->source == PGD_WL_TRACE ? 0 : c->shared_prefix_len;
    int64_t total = (int64_t)pre + row->in_len;
    int L = c->max_model_len;
    if (total > (1 << 30))
        return pgd_error(PGD_ERR_INVALID,
                         "workload: prompt of %lld tokens (shared_prefix_len %d + input %d) is "
                         "more than %d", (long long)total, pre, row->in_len, 1 << 30);
    /* without a context to clip to, a prompt no model could hold would be made whole */
    if (L <= 0 && total > PGD_MAX_CONTEXT)
        return pgd_error(PGD_ERR_INVALID,
                         "workload: prompt of %lld tokens (shared_prefix_len %d + input %d, source row %lld) is "
                         "longer than any model's context (%d); give the context (max_model_len) to clip it",
                         (long long)total, pre, row->in_len, (long long)row->row, PGD_MAX_CONTEXT);
    /* Only the tokens kept after clipping to the context are made: a prompt
     * of 10^9 tokens costs what the model can read, not 4 GB. Each token
     * stream is drawn in order, so the kept tokens equal the first `keep`
     * of the whole prompt. */
    int keep = L > 0 && total > L - 1 ? L - 1 : (int)total;
    int kpre = pre < keep ? pre : keep, kin = keep - kpre;
    q->prompt = malloc((size_t)(keep > 0 ? keep : 1) * sizeof *q->prompt);
    if (!q->prompt) return pgd_error(PGD_ERR_OOM, "workload: out of memory for a prompt");
    if (kpre) random_tokens(pgd_rng_stream(c->seed, PGD_STREAM_PREFIX, 0), vocab, q->prompt, kpre);
    if (row->prompt)
        memcpy(q->prompt + kpre, row->prompt, (size_t)kin * sizeof *q->prompt);
    else if (is_mooncake)
        mooncake_tokens(c, vocab, row, q->prompt + kpre, kin);
    else
        random_tokens(pgd_rng_stream(c->seed, PGD_STREAM_TOKENS, (uint64_t)row->row), vocab,
                      q->prompt + kpre, kin);
    pgd_workload_request *p = &q->pub;
    p->n_prompt = keep;
    p->clipped = keep < total;
    p->output_len = row->out_len > 0 ? row->out_len : 1;
    p->shared_prefix_len = kpre;
    p->source_row = row->row;
    p->client = row->client; /* a client mix ([workload] client_rates) reassigns both */
    p->slo_class = row->slo_class;
    q->hash_ids = row->hash_ids;
    p->n_hash_ids = row->n_hash_ids;
    row->hash_ids = NULL;
    if (L > 0 && p->output_len > L - p->n_prompt) p->output_len = L - p->n_prompt, p->clipped = 1;
    if (c->num_priorities > 1) {
        pgd_rng r;
        pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_PRIORITY, (uint64_t)row->row));
        p->priority = (int)pgd_rng_range(&r, 0, c->num_priorities);
    }
    (void)i;
    return PGD_OK;
}

/* Client mix: each client's own arrival process, merged (workload.h). */
static void client_arrivals(const pgd_workload_config *c, pgd_wl_req *q, int n) {
    pgd_rng r[PGD_MAX_CLIENTS];
    double next[PGD_MAX_CLIENTS];
    for (int k = 0; k < c->num_clients; k++) {
        pgd_rng_seed(&r[k], pgd_rng_stream(c->seed, PGD_STREAM_ARRIVAL, 1 + (uint64_t)k));
        next[k] = 0;
    }
    for (int i = 0; i < n; i++) {
        int k = 0;
        for (int j = 1; j < c->num_clients; j++)
            if (next[j] < next[k]) k = j;
        pgd_workload_request *p = &q[i].pub;
        p->arrival = next[k];
        p->client = k;
        p->slo_class = c->client_class[k];
        double b = c->client_burstiness[k] > 0 ? c->client_burstiness[k] : 1.0, rate = c->client_rate[k];
        next[k] += b == 1.0 ? pgd_rng_exponential(&r[k], 1.0 / rate) : pgd_rng_gamma(&r[k], b, 1.0 / (rate * b));
    }
}

static pgd_status assign_arrivals(const pgd_workload_config *c, pgd_arrival_kind kind,
                                  const pgd_wl_row *const *rows, pgd_wl_req *q, int n) {
    if (n <= 0) return PGD_OK;
    if (c->num_clients > 0) {
        client_arrivals(c, q, n);
        return PGD_OK;
    }
    if (kind == PGD_ARRIVAL_TRACE) {
        int64_t s0 = rows[0]->t_sec;
        double f0 = rows[0]->t_frac;
        for (int i = 1; i < n; i++) /* earliest selected row */
            if (rows[i]->t_sec < s0 || (rows[i]->t_sec == s0 && rows[i]->t_frac < f0))
                s0 = rows[i]->t_sec, f0 = rows[i]->t_frac;
        double scale = c->time_scale > 0 ? c->time_scale : 1.0;
        /* a finite rate replays the trace at that load: its timestamps
         * rescaled so the selected requests arrive at rate req/s on average
         * ((n - 1) / span), keeping the trace's burst shape */
        if (isfinite(c->arrival.rate) && c->arrival.rate > 0 && n > 1) {
            double span = 0;
            for (int i = 0; i < n; i++) {
                double t = (double)(rows[i]->t_sec - s0) + (rows[i]->t_frac - f0);
                if (t > span) span = t;
            }
            if (span > 0) scale = (double)(n - 1) / (c->arrival.rate * span);
        }
        for (int i = 0; i < n; i++) {
            q[i].pub.arrival = ((double)(rows[i]->t_sec - s0) + (rows[i]->t_frac - f0)) * scale;
            if (!isfinite(q[i].pub.arrival))
                return pgd_error(PGD_ERR_INVALID,
                                 "workload: %s row %lld: arrival time out of range after time_scale %g",
                                 c->path ? c->path : "trace", (long long)rows[i]->row, c->time_scale);
        }
        return PGD_OK;
    }
    double rate = c->arrival.rate;
    int gaps = (kind == PGD_ARRIVAL_POISSON || kind == PGD_ARRIVAL_GAMMA) && !isinf(rate);
    double shape = kind == PGD_ARRIVAL_GAMMA && c->arrival.burstiness > 0 ? c->arrival.burstiness : 1.0;
    pgd_rng r;
    pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_ARRIVAL, 0));
    double t = 0;
    for (int i = 0; i < n; i++) {
        if (gaps && i > 0)
            t += shape == 1.0 ? pgd_rng_exponential(&r, 1.0 / rate)
                              : pgd_rng_gamma(&r, shape, 1.0 / (rate * shape));
        q[i].pub.arrival = t;
    }
    return PGD_OK;
}

typedef struct {
    double t;
    int i;
} order_key;

static int cmp_order(const void *a, const void *b) {
    const order_key *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Mooncake: leading full blocks whose ids an earlier (arrival order) request used. */
static pgd_status mark_shared_blocks(pgd_workload *w) {
    int64_t total = 0;
    for (int i = 0; i < w->n; i++) total += w->reqs[i].pub.n_hash_ids;
    size_t cap = 64;
    while (cap < (size_t)total * 2) cap *= 2;
    int64_t *set = malloc(cap * sizeof *set);
    if (!set) return pgd_error(PGD_ERR_OOM, "workload: out of memory");
    for (size_t k = 0; k < cap; k++) set[k] = -1;
    for (int i = 0; i < w->n; i++) {
        pgd_workload_request *p = &w->reqs[i].pub;
        int shared = 1;
        for (int j = 0; j < p->n_hash_ids; j++) {
            int64_t h = p->hash_ids[j];
            size_t k = pgd_hash64((uint64_t)h) & (cap - 1);
            while (set[k] != -1 && set[k] != h) k = (k + 1) & (cap - 1);
            int seen = set[k] == h;
            if (h >= 0) set[k] = h;
            if (shared && seen && (j + 1) * PGD_MOONCAKE_BLOCK <= p->n_prompt)
                p->shared_prefix_len = (j + 1) * PGD_MOONCAKE_BLOCK;
            else
                shared = 0;
        }
    }
    free(set);
    return PGD_OK;
}

pgd_status pgd_workload_create(const pgd_workload_config *cfg, pgd_workload **out) {
    *out = NULL;
    PGD_TRY(validate(cfg));
    if (cfg->turns != 0 && cfg->turns != 1) return pgd_wl_sessions_create(cfg, out);
    pgd_workload_config c = *cfg;
    pgd_wl_rows rs = {0};
    pgd_workload *w = NULL;
    int64_t *sel = NULL;
    const pgd_wl_row **srows = NULL;
    order_key *keys = NULL;
    pgd_wl_req *tmp = NULL;
    pgd_status st = PGD_OK;
    pgd_dataset_format dfmt = PGD_DATASET_AUTO;
    pgd_len_dist in_d, out_d;
    pgd_len_kind out_fallback = PGD_LEN_SHAREGPT;

    if (c.source == PGD_WL_SYNTHETIC) {
        if ((st = pgd_len_dist_resolve(&c.input_len, 0, PGD_LEN_SHAREGPT, "input_len", &in_d)) ||
            (st = pgd_len_dist_resolve(&c.output_len, 1, PGD_LEN_SHAREGPT, "output_len", &out_d)))
            goto fail;
        if ((st = check_fits(&c, &in_d))) goto fail;
        int n = c.num_requests ? c.num_requests : 100;
        for (int i = 0; i < n; i++) {
            pgd_wl_row *row = NULL;
            if ((st = pgd_wl_rows_push(&rs, &row))) goto fail;
            row->row = i;
            pgd_rng r;
            pgd_rng_seed(&r, pgd_rng_stream(c.seed, PGD_STREAM_INPUT_LEN, (uint64_t)i));
            row->in_len = pgd_len_dist_sample(&in_d, &r);
            pgd_rng_seed(&r, pgd_rng_stream(c.seed, PGD_STREAM_OUTPUT_LEN, (uint64_t)i));
            row->out_len = pgd_len_dist_sample(&out_d, &r);
        }
        rs.rows_read = n;
    } else if (c.source == PGD_WL_TRACE) {
        if ((st = pgd_wl_trace_read(&c, &rs))) goto fail;
    } else {
        if ((st = pgd_wl_dataset_read(&c, &rs, &dfmt))) goto fail;
        if (dfmt == PGD_DATASET_ALPACA) out_fallback = PGD_LEN_ALPACA;
        if ((st = pgd_len_dist_resolve(&c.output_len, 1, out_fallback, "output_len", &out_d)))
            goto fail;
    }
    if (rs.n == 0) {
        st = pgd_error(PGD_ERR_FORMAT, "workload: %s has no usable rows", c.path ? c.path : "source");
        goto fail;
    }
    pgd_arrival_kind kind = c.arrival.kind;
    if (c.num_clients > 0) kind = PGD_ARRIVAL_POISSON; /* each client's own process */
    if (kind == PGD_ARRIVAL_DEFAULT) /* a length-only trace at a finite rate: Poisson at that rate */
        kind = rs.has_time ? PGD_ARRIVAL_TRACE
               : isfinite(c.arrival.rate) && c.arrival.rate > 0 ? PGD_ARRIVAL_POISSON : PGD_ARRIVAL_ALL_AT_ONCE;
    if (kind == PGD_ARRIVAL_TRACE && !rs.has_time) {
        st = pgd_error(PGD_ERR_INVALID, "workload: arrival 'trace' but %s has no timestamps",
                       c.path ? c.path : "the synthetic source");
        goto fail;
    }
    int64_t k = c.num_requests && c.num_requests < rs.n ? c.num_requests : rs.n;
    if (c.num_requests > rs.n)
        PGD_LOG_W("workload: %s has %lld usable rows, fewer than num_requests %d: using all",
                  c.path ? c.path : "source", (long long)rs.n, c.num_requests);
    if (k > (1 << 30)) k = 1 << 30;
    int n = (int)k;
    w = calloc(1, sizeof *w);
    sel = malloc((size_t)n * sizeof *sel);
    srows = malloc((size_t)n * sizeof *srows);
    keys = malloc((size_t)n * sizeof *keys);
    tmp = calloc((size_t)n, sizeof *tmp);
    if (!w || !sel || !srows || !keys || !tmp) {
        st = pgd_error(PGD_ERR_OOM, "workload: out of memory");
        goto fail;
    }
    select_rows(&c, rs.n, n, sel);
    int is_mooncake = 0;
    for (int64_t i = 0; i < rs.n && !is_mooncake; i++) is_mooncake = rs.v[i].hash_ids != NULL;
    for (int i = 0; i < n; i++) {
        srows[i] = &rs.v[sel[i]];
        if ((st = materialize(&c, is_mooncake, &out_d, i, &rs.v[sel[i]], &tmp[i]))) {
            w->reqs = tmp, w->n = i + 1;
            tmp = NULL;
            goto fail;
        }
    }
    if ((st = assign_arrivals(&c, kind, srows, tmp, n))) {
        w->reqs = tmp, w->n = n, tmp = NULL;
        goto fail;
    }
    for (int i = 0; i < n; i++) keys[i] = (order_key){tmp[i].pub.arrival, i};
    qsort(keys, (size_t)n, sizeof *keys, cmp_order);
    w->reqs = malloc((size_t)n * sizeof *w->reqs);
    if (!w->reqs) {
        w->reqs = tmp, w->n = n, tmp = NULL;
        st = pgd_error(PGD_ERR_OOM, "workload: out of memory");
        goto fail;
    }
    w->n = n;
    for (int i = 0; i < n; i++) {
        pgd_wl_req *q = &w->reqs[i];
        *q = tmp[keys[i].i];
        q->pub.prompt = q->prompt;
        q->pub.hash_ids = q->hash_ids;
        w->num_clipped += q->pub.clipped;
        if (q->pub.slo_class < c.num_classes) q->pub.ttft_slo = c.class_ttft_slo[q->pub.slo_class];
    }
    if (is_mooncake && (st = mark_shared_blocks(w))) goto fail;
    w->closed_loop = kind == PGD_ARRIVAL_CLOSED_LOOP;
    w->max_concurrency = c.arrival.max_concurrency;
    w->num_skipped = (int)rs.skipped;
    w->rows_read = rs.rows_read;
    free(tmp);
    free(keys);
    free(srows);
    free(sel);
    pgd_wl_rows_free(&rs);
    *out = w;
    return PGD_OK;
fail:
    free(tmp);
    free(keys);
    free(srows);
    free(sel);
    pgd_wl_rows_free(&rs);
    pgd_workload_destroy(w);
    return st;
}

void pgd_workload_destroy(pgd_workload *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->reqs[i].prompt);
        free(w->reqs[i].hash_ids);
    }
    free(w->reqs);
    free(w);
}
