/* loadgen.c - the HTTP load generator (pagoda/loadgen.h): one thread, one
 * libcurl multi handle, one easy handle per request in flight.
 *
 * Every request belongs to a conversation (a single-turn workload: one
 * conversation per request), which holds its next turn, the time that
 * turn is due and its history. The loop releases due turns (at most
 * max_concurrency in flight), lets libcurl move bytes, parses each
 * stream's server-sent events as they arrive (timestamping every event
 * that carries output), and records each finished transfer; then it
 * sleeps in curl_multi_poll until a socket is ready or the next turn is
 * due (at most 50 ms).
 *
 * Invariants: every workload request is recorded exactly once (finished,
 * failed, or failed because an earlier turn of its conversation failed);
 * times are seconds since the replay started; a request's handle is
 * removed from the multi handle before it is freed. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/clock.h"
#include "pagoda/loadgen.h"

#define LG_RAW_CAP 65536 /* body bytes kept for error messages */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

typedef struct lg_req {
    CURL *h;
    struct curl_slist *hdr;
    char *body;
    char curl_err[CURL_ERROR_SIZE];
    int idx, n_prompt, max_tokens;
    double t0_abs, arrival, first, finish;
    double *times;
    int n_times, cap_times;
    int32_t *ids;
    int n_ids, cap_ids;
    buf text, line, raw;
    int done_seen, events, oom;
    int usage_prompt, usage_completion, cached;
    char finish_reason[16];
    char err[512];
} lg_req;

typedef struct conv_state {
    int first, end, next;
    double release;
    int held; /* due but held back by the concurrency limit */
    lg_req *r;
    pgd_session_history hist;
} conv_state;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static double now_abs(void) { return pgd_clock_now(NULL); }

/* url without a trailing '/' or "/v1". */
static void base_url(const char *url, char *out, size_t n) {
    snprintf(out, n, "%s", url);
    size_t l = strlen(out);
    while (l > 0 && out[l - 1] == '/') out[--l] = 0;
    if (l >= 3 && !strcmp(out + l - 3, "/v1")) out[l - 3] = 0;
}

static size_t probe_write(char *p, size_t sz, size_t nm, void *ud) {
    buf *b = ud;
    size_t n = sz * nm;
    if (b->n < LG_RAW_CAP && buf_add(b, p, n)) return 0;
    return n;
}

pgd_status pgd_loadgen_probe(const char *url, double timeout, char *model, size_t n) {
    if (!url || !*url) return pgd_error(PGD_ERR_INVALID, "loadgen: no server URL");
    pthread_once(&g_curl_once, curl_init_once);
    char base[2048], full[2100], errb[CURL_ERROR_SIZE] = "";
    base_url(url, base, sizeof base);
    snprintf(full, sizeof full, "%s/v1/models", base);
    CURL *h = curl_easy_init();
    if (!h) return pgd_error(PGD_ERR_OOM, "loadgen: cannot create an HTTP handle");
    buf b = {0};
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errb);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)((timeout > 0 ? timeout : 10) * 1000));
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    pgd_status st = PGD_OK;
    if (rc != CURLE_OK) {
        st = pgd_error(PGD_ERR_IO, "cannot reach %s: %s%s%s (is the server running?)", full, curl_easy_strerror(rc),
                       errb[0] ? ": " : "", errb);
    } else if (status != 200) {
        st = pgd_error(PGD_ERR_IO, "%s answered HTTP %ld: %.200s", full, status, b.p ? b.p : "");
    } else {
        json_error_t je;
        json_t *o = json_loads(b.p ? b.p : "", 0, &je);
        const char *id = json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id"));
        if (!id)
            st = pgd_error(PGD_ERR_IO, "%s: no model id in the answer (expected {\"data\": [{\"id\": ...}]}): %.200s",
                           full, b.p ? b.p : "");
        else if (model && n)
            snprintf(model, n, "%s", id);
        json_decref(o);
    }
    free(b.p);
    return st;
}

/* ---- one request ---- */

static void req_free(lg_req *r) {
    if (!r) return;
    if (r->h) curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hdr);
    free(r->body);
    free(r->times);
    free(r->ids);
    free(r->text.p);
    free(r->line.p);
    free(r->raw.p);
    free(r);
}

static void on_event(lg_req *r, const char *data, double t) {
    while (*data == ' ') data++;
    if (!strcmp(data, "[DONE]")) {
        r->done_seen = 1;
        return;
    }
    json_error_t je;
    json_t *o = json_loads(data, 0, &je);
    if (!o) {
        if (!r->err[0]) snprintf(r->err, sizeof r->err, "malformed server-sent event: %.200s", data);
        return;
    }
    json_t *e = json_object_get(o, "error");
    if (e && !r->err[0]) {
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(r->err, sizeof r->err, "server error in the stream: %.400s", m ? m : json_string_value(e) ? json_string_value(e) : "?");
    }
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    int got = 0;
    if (c0) {
        const char *txt = json_string_value(json_object_get(c0, "text"));
        if (txt && *txt) {
            got = 1;
            if (buf_add(&r->text, txt, strlen(txt))) r->oom = 1;
        }
        json_t *ids = json_object_get(c0, "token_ids");
        size_t k = json_array_size(ids);
        if (k > 0) {
            got = 1;
            if (r->n_ids + (int)k > r->cap_ids) {
                int cap = r->cap_ids ? r->cap_ids * 2 : 64;
                while (cap < r->n_ids + (int)k) cap *= 2;
                int32_t *v = realloc(r->ids, (size_t)cap * sizeof *v);
                if (!v) r->oom = 1;
                else r->ids = v, r->cap_ids = cap;
            }
            for (size_t j = 0; j < k && r->n_ids < r->cap_ids; j++)
                r->ids[r->n_ids++] = (int32_t)json_integer_value(json_array_get(ids, j));
        }
        const char *fr = json_string_value(json_object_get(c0, "finish_reason"));
        if (fr) snprintf(r->finish_reason, sizeof r->finish_reason, "%s", fr);
    }
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
        if (json_is_integer(pt)) r->usage_prompt = (int)json_integer_value(pt);
        if (json_is_integer(ct)) r->usage_completion = (int)json_integer_value(ct);
        json_t *cached = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
        if (json_is_integer(cached)) r->cached = (int)json_integer_value(cached);
    }
    if (got) {
        if (r->n_times == r->cap_times) {
            int cap = r->cap_times ? r->cap_times * 2 : 64;
            double *v = realloc(r->times, (size_t)cap * sizeof *v);
            if (!v) {
                r->oom = 1;
                json_decref(o);
                return;
            }
            r->times = v, r->cap_times = cap;
        }
        r->times[r->n_times++] = t;
        if (r->first < 0) r->first = t;
        r->events++;
    }
    json_decref(o);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    lg_req *r = ud;
    size_t n = sz * nm;
    double t = now_abs() - r->t0_abs;
    if (r->raw.n < LG_RAW_CAP && buf_add(&r->raw, p, n < LG_RAW_CAP ? n : LG_RAW_CAP)) return 0;
    long status = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 400) return n; /* an error body: read whole at the end */
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (p[i] != '\r' && buf_add(&r->line, p + i, 1)) return 0;
            continue;
        }
        if (r->line.n >= 5 && !strncmp(r->line.p, "data:", 5)) on_event(r, r->line.p + 5, t);
        r->line.n = 0;
        if (r->line.p) r->line.p[0] = 0;
    }
    return n;
}

typedef struct lg {
    const pgd_loadgen_config *cfg;
    const pgd_workload *wl;
    CURLM *multi;
    char url[2200];
    const char *model;
    double t0;
    int in_flight, done, failed, n;
    int64_t tokens;
    uint64_t fp;
    pgd_metrics *m;
} lg;

static pgd_status start(lg *g, conv_state *c, double t) {
    const pgd_loadgen_config *cfg = g->cfg;
    int i = c->next;
    const pgd_workload_request *wr = pgd_workload_get(g->wl, i);
    lg_req *r = calloc(1, sizeof *r);
    if (!r) return pgd_error(PGD_ERR_OOM, "loadgen: out of memory");
    r->idx = i;
    r->first = r->finish = -1;
    r->usage_prompt = r->usage_completion = -1;
    r->t0_abs = g->t0;
    r->arrival = c->held ? t : c->release;
    int32_t *prompt = NULL;
    int np = 0;
    pgd_status st = pgd_workload_turn_prompt(g->wl, i, &c->hist, &prompt, &np, NULL);
    if (st) {
        free(r);
        return st;
    }
    r->n_prompt = np;
    r->max_tokens = wr->output_len;
    json_t *pa = json_array();
    for (int k = 0; pa && k < np; k++) json_array_append_new(pa, json_integer(prompt[k]));
    free(prompt);
    json_t *o = json_pack("{s:s,s:o,s:i,s:i,s:b,s:b,s:{s:b},s:f,s:f,s:I}", "model", g->model, "prompt", pa,
                          "max_tokens", wr->output_len, "min_tokens", wr->output_len, "ignore_eos", 1, "stream", 1,
                          "stream_options", "include_usage", 1, "temperature", cfg->temperature, "top_p",
                          cfg->top_p > 0 ? cfg->top_p : 1.0, "seed", (json_int_t)(cfg->seed + (uint64_t)i));
    if (o && cfg->top_k > 0) json_object_set_new(o, "top_k", json_integer(cfg->top_k));
    if (o && cfg->send_priority) json_object_set_new(o, "priority", json_integer(wr->priority));
    if (o && cfg->return_token_ids) json_object_set_new(o, "return_token_ids", json_true());
    r->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    r->h = curl_easy_init();
    r->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!r->body || !r->h || !r->hdr) {
        req_free(r);
        return pgd_error(PGD_ERR_OOM, "loadgen: out of memory building a request");
    }
    CURL *h = r->h;
    curl_easy_setopt(h, CURLOPT_URL, g->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)((cfg->timeout > 0 ? cfg->timeout : 600) * 1000));
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    if (curl_multi_add_handle(g->multi, h) != CURLM_OK) {
        req_free(r);
        return pgd_error(PGD_ERR_OOM, "loadgen: cannot add a transfer");
    }
    c->r = r;
    c->held = 0;
    c->release = INFINITY;
    g->in_flight++;
    return PGD_OK;
}

static pgd_status fail_rest(lg *g, conv_state *c, int from, double t) {
    for (int i = from; i < c->end; i++) {
        const pgd_workload_request *wr = pgd_workload_get(g->wl, i);
        pgd_request_record rec = {.id = i,
                                  .arrival = t,
                                  .first_scheduled = -1,
                                  .first_token = -1,
                                  .finish = t,
                                  .prompt_tokens = wr->n_prompt,
                                  .priority = wr->priority,
                                  .finish_reason = "error",
                                  .error = "an earlier turn of its conversation failed",
                                  .client = wr->client,
                                  .slo_class = wr->slo_class,
                                  .ttft_slo = wr->ttft_slo};
        PGD_TRY(pgd_metrics_add_request(g->m, &rec));
        if (wr->num_turns > 0) PGD_TRY(pgd_metrics_set_last_turn(g->m, wr->session, wr->turn, wr->num_turns));
        g->done++;
        g->failed++;
    }
    c->next = c->end;
    pgd_session_history_free(&c->hist);
    return PGD_OK;
}

/* Turn the finished transfer of conversation c into a record. */
static pgd_status finish(lg *g, conv_state *c, CURLcode rc) {
    lg_req *r = c->r;
    double t = now_abs() - g->t0;
    r->finish = t;
    long status = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    if (r->line.n >= 5 && !strncmp(r->line.p, "data:", 5)) on_event(r, r->line.p + 5, t); /* no final newline */
    char why[700] = "";
    if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "%s%s%.400s", curl_easy_strerror(rc), r->curl_err[0] ? ": " : "", r->curl_err);
    } else if (status >= 400 || status < 200) {
        json_error_t je;
        json_t *o = r->raw.p ? json_loads(r->raw.p, 0, &je) : NULL;
        json_t *e = json_object_get(o, "error");
        const char *m = json_string_value(json_object_get(e, "message"));
        if (!m) m = json_string_value(e);
        snprintf(why, sizeof why, "HTTP %ld: %.400s", status, m ? m : r->raw.p ? r->raw.p : "(no body)");
        json_decref(o);
    } else if (r->oom) {
        snprintf(why, sizeof why, "out of memory reading the stream");
    } else if (r->err[0]) {
        snprintf(why, sizeof why, "%s", r->err);
    } else if (!r->done_seen) {
        snprintf(why, sizeof why, "the stream ended before 'data: [DONE]'");
    }
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    int out_tokens = r->usage_completion >= 0 ? r->usage_completion : r->n_ids > 0 ? r->n_ids : r->events;
    const pgd_workload_request *wr = pgd_workload_get(g->wl, r->idx);
    const char *fr = why[0] ? "error" : r->finish_reason[0] ? r->finish_reason : "length";
    pgd_request_record rec = {.id = r->idx,
                              .arrival = r->arrival,
                              .first_scheduled = -1,
                              .first_token = why[0] ? -1 : r->first,
                              .finish = t,
                              .token_times = why[0] ? NULL : r->times,
                              .n_tokens = why[0] ? 0 : r->n_times,
                              .prompt_tokens = r->usage_prompt >= 0 ? r->usage_prompt : r->n_prompt,
                              .output_tokens = why[0] ? 0 : out_tokens,
                              .priority = wr->priority,
                              .finish_reason = fr,
                              .error = why[0] ? why : NULL,
                              .cached_tokens = r->cached,
                              .client = wr->client,
                              .slo_class = wr->slo_class,
                              .ttft_slo = wr->ttft_slo};
    pgd_status st = pgd_metrics_add_request(g->m, &rec);
    if (st == PGD_OK && wr->num_turns > 0) st = pgd_metrics_set_last_turn(g->m, wr->session, wr->turn, wr->num_turns);
    uint64_t h = 14695981039346656037ull;
    for (size_t k = 0; k < sizeof r->idx; k++) h = (h ^ ((const unsigned char *)&r->idx)[k]) * 1099511628211ull;
    for (size_t k = 0; k < r->text.n; k++) h = (h ^ (unsigned char)r->text.p[k]) * 1099511628211ull;
    g->fp += h;
    g->done++;
    g->failed += why[0] != 0;
    if (!why[0]) g->tokens += out_tokens;
    /* the next turn: history += this message + the server's actual output */
    int ok = !why[0], i = r->idx;
    if (st == PGD_OK && ok && i + 1 < c->end) {
        st = pgd_session_history_append(&c->hist, wr->prompt, wr->n_prompt);
        if (st == PGD_OK && r->n_ids > 0) {
            st = pgd_session_history_append(&c->hist, r->ids, r->n_ids);
        } else if (st == PGD_OK && r->text.n > 0 && g->cfg->tokenizer) {
            int32_t *ids = NULL;
            int n = 0;
            st = pgd_tokenizer_encode(g->cfg->tokenizer, r->text.p, 0, 0, &ids, &n);
            if (st == PGD_OK) st = pgd_session_history_append(&c->hist, ids, n);
            free(ids);
        } else if (st == PGD_OK && r->text.n > 0) {
            ok = 0; /* cannot know the output's tokens */
        }
    }
    curl_multi_remove_handle(g->multi, r->h);
    req_free(r);
    c->r = NULL;
    g->in_flight--;
    PGD_TRY(st);
    if (!ok) {
        if (!why[0] && i + 1 < c->end) { /* the output cannot become history */
            for (int k = i + 1; k < c->end; k++) {
                const pgd_workload_request *q = pgd_workload_get(g->wl, k);
                pgd_request_record rec2 = {.id = k,
                                           .arrival = t,
                                           .first_scheduled = -1,
                                           .first_token = -1,
                                           .finish = t,
                                           .prompt_tokens = q->n_prompt,
                                           .priority = q->priority,
                                           .finish_reason = "error",
                                           .error = "the server sent no token ids and there is no tokenizer to "
                                                    "encode its output for the history ([model] tokenizer, or "
                                                    "--token-ids)",
                                           .client = q->client,
                                           .slo_class = q->slo_class,
                                           .ttft_slo = q->ttft_slo};
                PGD_TRY(pgd_metrics_add_request(g->m, &rec2));
                PGD_TRY(pgd_metrics_set_last_turn(g->m, q->session, q->turn, q->num_turns));
                g->done++;
                g->failed++;
            }
            c->next = c->end;
            pgd_session_history_free(&c->hist);
            return PGD_OK;
        }
        return fail_rest(g, c, i + 1, t);
    }
    c->next = i + 1;
    if (c->next < c->end) c->release = t + pgd_workload_think_time(g->wl);
    else pgd_session_history_free(&c->hist);
    return PGD_OK;
}

pgd_status pgd_loadgen_run(const pgd_loadgen_config *cfg, const pgd_workload *wl, pgd_loadgen_result *out) {
    if (!cfg || !wl || !out) return pgd_error(PGD_ERR_INVALID, "loadgen: NULL argument");
    memset(out, 0, sizeof *out);
    pthread_once(&g_curl_once, curl_init_once);
    lg g = {.cfg = cfg, .wl = wl};
    char base[2048];
    base_url(cfg->url ? cfg->url : "", base, sizeof base);
    snprintf(g.url, sizeof g.url, "%s/v1/completions", base);
    if (cfg->model && *cfg->model) snprintf(out->model, sizeof out->model, "%s", cfg->model);
    else PGD_TRY(pgd_loadgen_probe(cfg->url, cfg->timeout > 0 && cfg->timeout < 10 ? cfg->timeout : 10, out->model,
                                   sizeof out->model));
    g.model = out->model;
    int n = pgd_workload_count(wl), nconv;
    int sessions = pgd_workload_num_sessions(wl) > 0;
    if (cfg->num_requests > 0 && cfg->num_requests < n && !sessions) n = cfg->num_requests;
    nconv = sessions ? pgd_workload_num_sessions(wl) : n;
    conv_state *cv = calloc((size_t)(nconv > 0 ? nconv : 1), sizeof *cv);
    pgd_status st = PGD_OK;
    if (!cv || pgd_metrics_create(&g.m) != PGD_OK || !(g.multi = curl_multi_init())) {
        st = pgd_error(PGD_ERR_OOM, "loadgen: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const pgd_workload_request *r = pgd_workload_get(wl, i);
        conv_state *c = &cv[sessions ? r->session : i];
        if (!sessions || r->turn == 0) c->first = c->next = i, c->release = r->arrival;
        c->end = i + 1;
    }
    g.n = n;
    int maxc = pgd_workload_max_concurrency(wl);
    g.t0 = now_abs();
    double last_progress = -1;
    while (g.done < g.n) {
        if (cfg->stop && *cfg->stop) {
            st = pgd_error(PGD_ERR_INVALID, "loadgen: interrupted after %d of %d requests", g.done, g.n);
            goto done;
        }
        double t = now_abs() - g.t0, next_release = INFINITY;
        for (int k = 0; k < nconv; k++) {
            conv_state *c = &cv[k];
            if (c->r || c->next >= c->end) continue;
            if (c->release <= t) {
                if (maxc > 0 && g.in_flight >= maxc) {
                    c->held = 1;
                    continue;
                }
                if ((st = start(&g, c, t))) goto done;
            } else if (c->release < next_release) {
                next_release = c->release;
            }
        }
        int running = 0;
        curl_multi_perform(g.multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(g.multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            conv_state *c = NULL;
            CURLcode res = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if ((st = finish(&g, c, res))) goto done;
        }
        t = now_abs() - g.t0;
        if (t - last_progress >= 0.1 || g.done == g.n) {
            /* the client's timeline: requests in flight and held back (no engine columns) */
            int held = 0;
            for (int k = 0; k < nconv; k++) held += cv[k].held && !cv[k].r;
            pgd_timeline_sample ts = {.time = t, .step = pgd_metrics_num_samples(g.m), .running = g.in_flight,
                                      .waiting = held, .kv_utilization = 1};
            if ((st = pgd_metrics_add_sample(g.m, &ts))) goto done;
        }
        if (cfg->on_progress && (t - last_progress >= 0.1 || g.done == g.n)) {
            pgd_loadgen_progress p = {.done = g.done, .total = g.n, .failed = g.failed, .tokens = g.tokens,
                                      .elapsed = t};
            cfg->on_progress(cfg->progress_ctx, &p);
        }
        if (t - last_progress >= 0.1 || g.done == g.n) last_progress = t;
        if (g.done >= g.n) break;
        double wait = next_release - t;
        int ms = !(wait < 0.05) ? 50 : wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        if (g.in_flight > 0 || ms > 0) curl_multi_poll(g.multi, NULL, 0, ms, NULL);
    }
    out->end = now_abs() - g.t0;
    out->start = 0;
    out->metrics = g.m;
    g.m = NULL;
    out->num_requests = g.n;
    out->failed = g.failed;
    out->output_tokens = g.tokens;
    out->output_fingerprint = g.fp;
done:
    for (int k = 0; cv && k < nconv; k++) {
        if (cv[k].r) {
            curl_multi_remove_handle(g.multi, cv[k].r->h);
            req_free(cv[k].r);
        }
        pgd_session_history_free(&cv[k].hist);
    }
    free(cv);
    if (g.multi) curl_multi_cleanup(g.multi);
    pgd_metrics_destroy(g.m);
    return st;
}

void pgd_loadgen_result_free(pgd_loadgen_result *r) {
    if (!r) return;
    pgd_metrics_destroy(r->metrics);
    r->metrics = NULL;
}
