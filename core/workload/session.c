/* session.c - multi-turn workloads: conversations whose turn k's prompt is
 * the history (every earlier message and the model's actual output) plus
 * the new message, released think_time after turn k-1 finishes.
 *
 * Building (pgd_wl_sessions_create): stage conversations from the source
 * (synthetic draws, every human turn of a ShareGPT entry with the next gpt
 * turn's length as the output length, or MT-bench's turns), select the
 * first num_requests conversations (or a seeded sample), tokenize and
 * clip each message, draw conversation arrivals and priorities, and order
 * the requests by (conversation arrival, conversation, turn).
 *
 * Invariants: every message has >= 1 token and every output >= 1; with a
 * context L, message + output <= L for every turn; all draws come from
 * per-(conversation, turn) seeded streams, so a conversation does not
 * depend on how many others there are; a conversation's turns are
 * contiguous and in order. The history is built by the caller from the
 * outputs it got (pgd_workload_turn_prompt), so the workload itself is a
 * pure function of the config. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/model.h"
#include "workload/workload_impl.h"

typedef struct conv_turn {
    char *text, *out_text; /* dataset */
    int in_len, out_len;   /* synthetic draws / after tokenizing */
    int32_t *tokens;
} conv_turn;

typedef struct conv {
    int64_t row;
    conv_turn *t;
    int n;
} conv;

typedef struct convs {
    conv *v;
    int64_t n, cap, rows_read, skipped;
} convs;

static void convs_free(convs *cs) {
    for (int64_t i = 0; i < cs->n; i++) {
        for (int j = 0; j < cs->v[i].n; j++) {
            free(cs->v[i].t[j].text);
            free(cs->v[i].t[j].out_text);
            free(cs->v[i].t[j].tokens);
        }
        free(cs->v[i].t);
    }
    free(cs->v);
    memset(cs, 0, sizeof *cs);
}

static conv *convs_push(convs *cs, int64_t row, int nturns) {
    if (cs->n == cs->cap) {
        int64_t cap = cs->cap ? cs->cap * 2 : 64;
        conv *v = realloc(cs->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        cs->v = v, cs->cap = cap;
    }
    conv *c = &cs->v[cs->n];
    c->row = row;
    c->n = 0;
    if (!(c->t = calloc((size_t)(nturns > 0 ? nturns : 1), sizeof *c->t))) return NULL;
    cs->n++;
    return c;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int from_is(json_t *turn, const char *const *names) {
    const char *f = json_string_value(json_object_get(turn, "from"));
    if (!f) f = json_string_value(json_object_get(turn, "role"));
    for (int i = 0; f && names[i]; i++)
        if (!strcmp(f, names[i])) return 1;
    return 0;
}

static const char *turn_value(json_t *t) {
    const char *v = json_string_value(json_object_get(t, "value"));
    return v ? v : json_string_value(json_object_get(t, "content"));
}

/* One dataset entry into a conversation of at most max_turns turns (<= 0 = all). */
static pgd_status stage_entry(const pgd_workload_config *c, size_t idx, json_t *e, int max_turns, convs *cs) {
    static const char *const human[] = {"human", "user", NULL};
    static const char *const gpt[] = {"gpt", "chatgpt", "assistant", "bard", NULL};
    cs->rows_read++;
    if (!json_is_object(e)) return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu is not a JSON object", c->path, idx);
    json_t *turns = json_object_get(e, "turns"), *conv_a = json_object_get(e, "conversations");
    int mt = c->dataset_format == PGD_DATASET_MTBENCH ||
             (c->dataset_format == PGD_DATASET_AUTO && turns && !conv_a);
    if (!mt && (c->dataset_format == PGD_DATASET_ALPACA || !conv_a))
        return pgd_error(PGD_ERR_INVALID,
                         "%s: entry %zu has no 'conversations' or 'turns': multi-turn sessions need a ShareGPT or "
                         "MT-bench dataset", c->path, idx);
    json_t *arr = mt ? turns : conv_a;
    if (!json_is_array(arr))
        return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu: '%s' is not an array", c->path, idx,
                         mt ? "turns" : "conversations");
    size_t n = json_array_size(arr);
    conv *cv = convs_push(cs, (int64_t)idx, (int)n);
    if (!cv) return pgd_error(PGD_ERR_OOM, "workload: out of memory staging conversations");
    for (size_t i = 0; i < n && (max_turns <= 0 || cv->n < max_turns); i++) {
        json_t *t = json_array_get(arr, i);
        const char *msg = NULL, *out = NULL;
        if (mt) {
            if (!(msg = json_string_value(t)))
                return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu turn %zu is not a string", c->path, idx, i);
        } else {
            if (!from_is(t, human)) continue;
            if (!(msg = turn_value(t)))
                return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu turn %zu has no string 'value'", c->path, idx, i);
            json_t *nx = json_array_get(arr, i + 1);
            if (nx && from_is(nx, gpt)) out = turn_value(nx);
        }
        if (!*msg) break; /* an empty message ends the conversation */
        conv_turn *ct = &cv->t[cv->n++];
        ct->text = dup_str(msg);
        ct->out_text = out && *out ? dup_str(out) : NULL;
        if (!ct->text || (out && *out && !ct->out_text)) return pgd_error(PGD_ERR_OOM, "workload: out of memory");
    }
    if (cv->n == 0) { /* nothing to say: skipped */
        free(cv->t);
        cs->n--;
        cs->skipped++;
    }
    return PGD_OK;
}

static pgd_status read_dataset(const pgd_workload_config *c, int max_turns, convs *cs) {
    FILE *fp = fopen(c->path, "rb");
    if (!fp) return pgd_error(PGD_ERR_IO, "cannot open dataset %s: %s", c->path, strerror(errno));
    size_t n = strlen(c->path);
    pgd_status st = PGD_OK;
    if (c->dataset_format == PGD_DATASET_MTBENCH || (n >= 6 && !strcmp(c->path + n - 6, ".jsonl"))) {
        char *line = NULL;
        size_t cap = 0, idx = 0;
        long len;
        for (long lineno = 1; st == PGD_OK && (len = pgd_wl_getline(&line, &cap, fp)) >= 0; lineno++) {
            if (len == 0) continue;
            json_error_t err;
            json_t *o = json_loads(line, 0, &err);
            if (!o) {
                st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: %s", c->path, lineno, err.text);
                break;
            }
            st = stage_entry(c, idx++, o, max_turns, cs);
            json_decref(o);
        }
        free(line);
        fclose(fp);
        return st;
    }
    json_error_t err;
    json_t *root = json_loadf(fp, 0, &err);
    fclose(fp);
    if (!root) return pgd_error(PGD_ERR_FORMAT, "%s:%d:%d: %s", c->path, err.line, err.column, err.text);
    if (!json_is_array(root)) st = pgd_error(PGD_ERR_FORMAT, "%s: expected a JSON array of entries", c->path);
    for (size_t i = 0; st == PGD_OK && i < json_array_size(root); i++)
        st = stage_entry(c, i, json_array_get(root, i), max_turns, cs);
    json_decref(root);
    return st;
}

static uint64_t turn_index(int64_t row, int turn) { return ((uint64_t)row << 12) ^ (uint64_t)turn; }

/* Tokens, lengths and clipping of every turn of conversation cv. */
static pgd_status materialize(const pgd_workload_config *c, const pgd_len_dist *in_d, const pgd_len_dist *out_d,
                              conv *cv, int *clipped) {
    int vocab = c->vocab_size ? c->vocab_size : 32000, L = c->max_model_len;
    for (int k = 0; k < cv->n; k++) {
        conv_turn *t = &cv->t[k];
        pgd_rng r;
        int cut = 0;
        if (c->source == PGD_WL_DATASET) {
            PGD_TRY(pgd_tokenizer_encode(c->tokenizer, t->text, k == 0, 0, &t->tokens, &t->in_len));
            t->out_len = 0;
            if (t->out_text && !c->override_output_len) {
                int32_t *o = NULL;
                PGD_TRY(pgd_tokenizer_encode(c->tokenizer, t->out_text, 0, 0, &o, &t->out_len));
                free(o);
            }
            if (t->out_len <= 0) {
                pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_OUTPUT_LEN, turn_index(cv->row, k)));
                t->out_len = pgd_len_dist_sample(out_d, &r);
            }
            if (t->in_len == 0) { /* a message of nothing but unknown bytes still says something */
                free(t->tokens);
                if (!(t->tokens = malloc(sizeof *t->tokens))) return pgd_error(PGD_ERR_OOM, "workload: out of memory");
                t->tokens[0] = 1, t->in_len = 1;
            }
        } else {
            pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_INPUT_LEN, turn_index(cv->row, k)));
            t->in_len = pgd_len_dist_sample(in_d, &r);
            pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_OUTPUT_LEN, turn_index(cv->row, k)));
            t->out_len = pgd_len_dist_sample(out_d, &r);
            if (L <= 0 && t->in_len > PGD_MAX_CONTEXT)
                return pgd_error(PGD_ERR_INVALID,
                                 "workload: message of %d tokens is longer than any model's context (%d); give "
                                 "the context (max_model_len) to clip it", t->in_len, PGD_MAX_CONTEXT);
            int keep = L > 0 && t->in_len > L - 1 ? L - 1 : t->in_len;
            if (!(t->tokens = malloc((size_t)keep * sizeof *t->tokens)))
                return pgd_error(PGD_ERR_OOM, "workload: out of memory for a message");
            pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_TOKENS, turn_index(cv->row, k)));
            for (int j = 0; j < keep; j++) t->tokens[j] = (int32_t)pgd_rng_range(&r, 3, vocab);
            if (keep < t->in_len) t->in_len = keep, cut = 1;
        }
        if (L > 0 && t->in_len > L - 1) t->in_len = L - 1, cut = 1;
        if (L > 0 && t->out_len > L - t->in_len) t->out_len = L - t->in_len, cut = 1;
        *clipped += cut;
    }
    return PGD_OK;
}

typedef struct {
    double t;
    int i;
} okey;

static int cmp_okey(const void *a, const void *b) {
    const okey *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

pgd_status pgd_wl_sessions_create(const pgd_workload_config *cfg, pgd_workload **out) {
    const pgd_workload_config *c = cfg;
    *out = NULL;
    if (c->turns < -1 || (c->source == PGD_WL_SYNTHETIC && c->turns < 2))
        return pgd_error(PGD_ERR_INVALID, "workload: turns %d must be >= 2 (synthetic) or -1 = every turn (dataset)",
                         c->turns);
    if (c->source == PGD_WL_TRACE)
        return pgd_error(PGD_ERR_INVALID, "workload: a trace has no conversations: turns = %d needs a synthetic "
                         "or dataset source", c->turns);
    if (!(c->think_time >= 0) || isinf(c->think_time))
        return pgd_error(PGD_ERR_INVALID, "workload: think_time %g must be >= 0 and finite", c->think_time);
    if (c->max_history < 0)
        return pgd_error(PGD_ERR_INVALID, "workload: max_history %d must be >= 0", c->max_history);
    if (c->shared_prefix_len > 0)
        return pgd_error(PGD_ERR_INVALID, "workload: shared_prefix_len is not used by multi-turn sessions (the "
                         "history is the shared prefix)");
    if (c->arrival.kind == PGD_ARRIVAL_TRACE)
        return pgd_error(PGD_ERR_INVALID, "workload: arrival 'trace' but multi-turn sessions have no timestamps");
    convs cs = {0};
    pgd_workload *w = NULL;
    okey *keys = NULL;
    pgd_status st = PGD_OK;
    pgd_len_dist in_d = {0}, out_d = {0};
    int clipped = 0;
    pgd_len_kind fb = PGD_LEN_SHAREGPT;
    if ((c->source == PGD_WL_SYNTHETIC &&
         (st = pgd_len_dist_resolve(&c->input_len, 0, fb, "input_len", &in_d))) ||
        (st = pgd_len_dist_resolve(&c->output_len, 1, fb, "output_len", &out_d)))
        return st;
    if (c->source == PGD_WL_SYNTHETIC) {
        int n = c->num_requests ? c->num_requests : 100;
        for (int i = 0; i < n; i++) {
            conv *cv = convs_push(&cs, i, c->turns);
            if (!cv) {
                st = pgd_error(PGD_ERR_OOM, "workload: out of memory");
                goto fail;
            }
            cv->n = c->turns;
        }
        cs.rows_read = n;
    } else if ((st = read_dataset(c, c->turns, &cs))) {
        goto fail;
    }
    if (cs.n == 0) {
        st = pgd_error(PGD_ERR_FORMAT, "workload: %s has no usable conversations", c->path ? c->path : "source");
        goto fail;
    }
    int64_t k = c->num_requests && c->num_requests < cs.n ? c->num_requests : cs.n;
    /* selection: the first k, or Algorithm S (seeded) */
    int64_t m = 0;
    pgd_rng sr;
    pgd_rng_seed(&sr, pgd_rng_stream(c->seed, PGD_STREAM_SAMPLE, 0));
    for (int64_t t = 0; t < cs.n && m < k; t++) {
        if (c->sample && k < cs.n && !((double)(cs.n - t) * pgd_rng_uniform(&sr) < (double)(k - m))) continue;
        if (m != t) { /* move conversation t to slot m; the one there is dropped */
            conv tmp = cs.v[m];
            cs.v[m] = cs.v[t];
            cs.v[t] = tmp;
        }
        m++;
    }
    int n_conv = (int)k;
    for (int i = 0; i < n_conv; i++)
        if ((st = materialize(c, &in_d, &out_d, &cs.v[i], &clipped))) goto fail;
    /* arrivals of conversations (as the single-turn workload: first at 0) */
    if (!(keys = malloc((size_t)n_conv * sizeof *keys))) {
        st = pgd_error(PGD_ERR_OOM, "workload: out of memory");
        goto fail;
    }
    pgd_arrival_kind kind = c->arrival.kind;
    double rate = c->arrival.rate;
    int gaps = (kind == PGD_ARRIVAL_POISSON || kind == PGD_ARRIVAL_GAMMA) && !isinf(rate);
    double shape = kind == PGD_ARRIVAL_GAMMA && c->arrival.burstiness > 0 ? c->arrival.burstiness : 1.0;
    pgd_rng ar;
    pgd_rng_seed(&ar, pgd_rng_stream(c->seed, PGD_STREAM_ARRIVAL, 0));
    double t = 0;
    int total = 0;
    for (int i = 0; i < n_conv; i++) {
        if (gaps && i > 0)
            t += shape == 1.0 ? pgd_rng_exponential(&ar, 1.0 / rate) : pgd_rng_gamma(&ar, shape, 1.0 / (rate * shape));
        keys[i] = (okey){t, i};
        total += cs.v[i].n;
    }
    qsort(keys, (size_t)n_conv, sizeof *keys, cmp_okey);
    if (!(w = calloc(1, sizeof *w)) || !(w->reqs = calloc((size_t)total, sizeof *w->reqs))) {
        st = pgd_error(PGD_ERR_OOM, "workload: out of memory");
        goto fail;
    }
    for (int s = 0; s < n_conv; s++) {
        conv *cv = &cs.v[keys[s].i];
        int prio = 0;
        if (c->num_priorities > 1) {
            pgd_rng r;
            pgd_rng_seed(&r, pgd_rng_stream(c->seed, PGD_STREAM_PRIORITY, (uint64_t)cv->row));
            prio = (int)pgd_rng_range(&r, 0, c->num_priorities);
        }
        for (int j = 0; j < cv->n; j++) {
            pgd_wl_req *q = &w->reqs[w->n++];
            q->prompt = cv->t[j].tokens;
            cv->t[j].tokens = NULL;
            q->pub = (pgd_workload_request){.arrival = keys[s].t, .prompt = q->prompt, .n_prompt = cv->t[j].in_len,
                                            .output_len = cv->t[j].out_len, .priority = prio, .source_row = cv->row,
                                            .session = s, .turn = j, .num_turns = cv->n};
        }
    }
    w->num_clipped = clipped;
    w->num_skipped = (int)cs.skipped;
    w->rows_read = cs.rows_read;
    w->closed_loop = kind == PGD_ARRIVAL_CLOSED_LOOP;
    w->max_concurrency = c->arrival.max_concurrency;
    w->num_sessions = n_conv;
    w->think_time = c->think_time;
    w->max_history = c->max_history;
    w->max_model_len = c->max_model_len;
    free(keys);
    convs_free(&cs);
    *out = w;
    return PGD_OK;
fail:
    free(keys);
    convs_free(&cs);
    pgd_workload_destroy(w);
    return st;
}

int pgd_workload_num_sessions(const pgd_workload *w) { return w ? w->num_sessions : 0; }
double pgd_workload_think_time(const pgd_workload *w) { return w ? w->think_time : 0; }

pgd_status pgd_session_history_append(pgd_session_history *h, const int32_t *t, int n) {
    if (n <= 0) return PGD_OK;
    if (h->n + n > h->cap) {
        int cap = h->cap ? h->cap : 256;
        while (cap < h->n + n) cap *= 2;
        int32_t *v = realloc(h->tokens, (size_t)cap * sizeof *v);
        if (!v) return pgd_error(PGD_ERR_OOM, "workload: out of memory growing a conversation's history");
        h->tokens = v, h->cap = cap;
    }
    memcpy(h->tokens + h->n, t, (size_t)n * sizeof *t);
    h->n += n;
    return PGD_OK;
}

void pgd_session_history_free(pgd_session_history *h) {
    if (!h) return;
    free(h->tokens);
    memset(h, 0, sizeof *h);
}

pgd_status pgd_workload_turn_prompt(const pgd_workload *w, int i, const pgd_session_history *h, int32_t **out,
                                    int *n, int *cut) {
    const pgd_workload_request *r = pgd_workload_get(w, i);
    if (!r) return pgd_error(PGD_ERR_INVALID, "workload: no request %d", i);
    int nh = r->turn > 0 && h ? h->n : 0;
    int64_t full = (int64_t)nh + r->n_prompt, keep = full;
    if (w->max_history > 0 && keep > w->max_history) keep = w->max_history;
    if (w->max_model_len > 0 && keep > w->max_model_len - r->output_len) keep = w->max_model_len - r->output_len;
    if (keep < 1) keep = 1;
    int32_t *p = malloc((size_t)keep * sizeof *p);
    if (!p) return pgd_error(PGD_ERR_OOM, "workload: out of memory for a turn's prompt");
    int64_t skip = full - keep; /* dropped from the front of history + message */
    int64_t from_h = skip < nh ? nh - skip : 0;
    if (from_h) memcpy(p, h->tokens + skip, (size_t)from_h * sizeof *p);
    int64_t msg_skip = skip > nh ? skip - nh : 0;
    memcpy(p + from_h, r->prompt + msg_skip, (size_t)(keep - from_h) * sizeof *p);
    *out = p;
    *n = (int)keep;
    if (cut) *cut = (int)skip;
    return PGD_OK;
}
