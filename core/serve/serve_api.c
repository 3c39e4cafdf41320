/* serve_api.c - the OpenAI API of the HTTP server: a request body checked
 * field by field into a srv_req (every wrong type or value is a 4xx naming
 * the field; unknown fields are ignored, as OpenAI-compatible servers do),
 * and the response objects and server-sent-event chunks built from its
 * tokens. Text is sent only up to where it can no longer change: a stop
 * string that is still being completed is held back and cut off at the end,
 * and a UTF-8 character is never split between two chunks. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_impl.h"
#include "util/json_text.h"

#define MAX_STOPS 16

json_t *srv_error_json(const char *message, const char *type, const char *param, const char *code) {
    json_t *e = json_object();
    json_object_set_new(e, "message", pgd_json_text(message));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    return o;
}

srv_req *srv_req_new(void) {
    srv_req *r = calloc(1, sizeof *r);
    if (r) r->refs = 1;
    return r;
}

void srv_req_free(srv_req *r) {
    if (!r) return;
    free(r->prompt);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    for (int k = 0; r->seqs && k < r->n; k++) {
        free(r->seqs[k].tokens);
        free(r->seqs[k].text);
    }
    free(r->seqs);
    free(r->error);
    free(r);
}

static int bad(json_t **err, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(json_t **err, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *err = srv_error_json(msg, "invalid_request_error", param, "invalid_value");
    return 400;
}

/* Optional integer field in [lo, hi]: 1 absent, 0 ok (set), -1 error. */
static int get_int(json_t *body, const char *key, long long lo, long long hi, long long *v, json_t **err) {
    json_t *x = json_object_get(body, key);
    if (!x || json_is_null(x)) return 1;
    if (json_is_real(x) && floor(json_real_value(x)) == json_real_value(x) && fabs(json_real_value(x)) < 1e15)
        *v = (long long)json_real_value(x);
    else if (json_is_integer(x)) *v = json_integer_value(x);
    else return bad(err, key, "'%s' must be an integer", key), -1;
    if (*v < lo || *v > hi) return bad(err, key, "'%s' must be in %lld..%lld (got %lld)", key, lo, hi, *v), -1;
    return 0;
}

static int get_num(json_t *body, const char *key, double lo, double hi, double *v, json_t **err) {
    json_t *x = json_object_get(body, key);
    if (!x || json_is_null(x)) return 1;
    if (!json_is_number(x)) return bad(err, key, "'%s' must be a number", key), -1;
    *v = json_number_value(x);
    if (!(*v >= lo && *v <= hi)) return bad(err, key, "'%s' must be in [%g, %g] (got %g)", key, lo, hi, *v), -1;
    return 0;
}

static int get_bool(json_t *body, const char *key, int *v, json_t **err) {
    json_t *x = json_object_get(body, key);
    if (!x || json_is_null(x)) return 1;
    if (!json_is_boolean(x)) return bad(err, key, "'%s' must be true or false", key), -1;
    *v = json_is_true(x);
    return 0;
}

/* A chat message's content: a string, or a list of {"type": "text", "text": ...} parts. */
static char *content_text(json_t *c) {
    if (json_is_string(c)) return strdup(json_string_value(c));
    if (!json_is_array(c)) return NULL;
    size_t total = 1, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(json_object_get(part, "type")) ||
            strcmp(json_string_value(json_object_get(part, "type")), "text") || !json_is_string(t))
            return NULL;
        total += json_string_length(t);
    }
    char *s = malloc(total), *d = s;
    if (!s) return NULL;
    json_array_foreach(c, i, part) {
        json_t *t = json_object_get(part, "text");
        memcpy(d, json_string_value(t), json_string_length(t));
        d += json_string_length(t);
    }
    *d = 0;
    return s;
}

static int parse_chat_prompt(pgd_server *s, json_t *body, srv_req *r, json_t **err) {
    json_t *msgs = json_object_get(body, "messages");
    if (!msgs) return bad(err, "messages", "'messages' is required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(err, "messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects");
    size_t n = json_array_size(msgs);
    if (n > 100000) return bad(err, "messages", "too many messages (%zu)", n);
    pgd_chat_message *cm = calloc(n, sizeof *cm);
    char **texts = calloc(n, sizeof *texts);
    int status = 0;
    char *rendered = NULL;
    if (!cm || !texts) { status = bad(err, NULL, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            status = bad(err, "messages", "messages[%zu] must be an object with a string 'role'", i);
            goto out;
        }
        cm[i].role = json_string_value(role);
        if (strcmp(cm[i].role, "system") && strcmp(cm[i].role, "user") && strcmp(cm[i].role, "assistant")) {
            status = bad(err, "messages", "messages[%zu]: unknown role '%.40s' (system, user or assistant)", i, cm[i].role);
            goto out;
        }
        if (!(texts[i] = content_text(json_object_get(m, "content")))) {
            status = bad(err, "messages", "messages[%zu]: 'content' must be a string or a list of text parts", i);
            goto out;
        }
        cm[i].content = texts[i];
    }
    const pgd_chat_template *t = s->cfg.chat_template ? s->cfg.chat_template : pgd_chat_template_find("none");
    if (pgd_chat_render(t, cm, (int)n, 1, &rendered) != PGD_OK) {
        status = bad(err, "messages", "%s", pgd_last_error());
        goto out;
    }
    if (pgd_tokenizer_encode(s->tok, rendered, 1, 0, &r->prompt, &r->n_prompt) != PGD_OK)
        status = bad(err, "messages", "%s", pgd_last_error());
out:
    for (size_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(cm);
    free(rendered);
    return status;
}

static int parse_prompt(pgd_server *s, json_t *body, srv_req *r, json_t **err) {
    json_t *p = json_object_get(body, "prompt");
    if (!p) return bad(err, "prompt", "'prompt' is required");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) p = json_array_get(p, 0);
    if (json_is_string(p)) {
        if (pgd_tokenizer_encode(s->tok, json_string_value(p), 1, 0, &r->prompt, &r->n_prompt) != PGD_OK)
            return bad(err, "prompt", "%s", pgd_last_error());
        return 0;
    }
    if (!json_is_array(p) || json_array_size(p) == 0)
        return bad(err, "prompt", "'prompt' must be a string or a non-empty list of token ids");
    size_t n = json_array_size(p);
    if (json_is_array(json_array_get(p, 0)) || json_is_string(json_array_get(p, 0)))
        return bad(err, "prompt", "a list of several prompts is not supported: send one request per prompt");
    if (n > (size_t)INT_MAX / 2) return bad(err, "prompt", "prompt too long");
    r->prompt = malloc(sizeof *r->prompt * n);
    if (!r->prompt) return bad(err, "prompt", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(p, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= s->cfg.vocab_size)
            return bad(err, "prompt", "prompt[%zu] must be a token id in 0..%d", i, s->cfg.vocab_size - 1);
        r->prompt[i] = (int32_t)json_integer_value(x);
    }
    r->n_prompt = (int)n;
    return 0;
}

static int parse_stop(json_t *body, srv_req *r, json_t **err) {
    json_t *st = json_object_get(body, "stop");
    if (!st || json_is_null(st)) return 0;
    size_t n = json_is_string(st) ? 1 : json_is_array(st) ? json_array_size(st) : 0;
    if (!json_is_string(st) && !json_is_array(st)) return bad(err, "stop", "'stop' must be a string or a list of strings");
    if (n > MAX_STOPS) return bad(err, "stop", "at most %d stop strings (got %zu)", MAX_STOPS, n);
    if (n == 0) return 0;
    r->stops = calloc(n, sizeof *r->stops);
    if (!r->stops) return bad(err, "stop", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_is_string(st) ? st : json_array_get(st, i);
        if (!json_is_string(x) || json_string_length(x) == 0 || json_string_length(x) > 256 ||
            strlen(json_string_value(x)) != json_string_length(x))
            return bad(err, "stop", "each stop string must be a non-empty string of at most 256 bytes");
        r->stops[r->n_stops++] = strdup(json_string_value(x));
        if (json_string_length(x) > r->max_stop_len) r->max_stop_len = json_string_length(x);
    }
    return 0;
}

#define TRY(x) do { int t_ = (x); if (t_ < 0) return 400; } while (0)

int srv_parse_request(pgd_server *s, json_t *body, int chat, srv_req *r, json_t **err) {
    if (!json_is_object(body)) return bad(err, NULL, "the request body must be a JSON object");
    json_t *model = json_object_get(body, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) return bad(err, "model", "'model' must be a string");
        if (strcmp(json_string_value(model), s->model_name)) {
            char msg[512];
            snprintf(msg, sizeof msg, "The model '%.200s' does not exist (this server serves '%.200s')",
                     json_string_value(model), s->model_name);
            *err = srv_error_json(msg, "invalid_request_error", "model", "model_not_found");
            return 404;
        }
    }
    int st = chat ? parse_chat_prompt(s, body, r, err) : parse_prompt(s, body, r, err);
    if (st) return st;
    r->chat = chat;
    int ctx = s->cfg.context_len;
    if (r->n_prompt >= ctx)
        return bad(err, chat ? "messages" : "prompt", "the prompt has %d tokens; this model's context is %d, "
                   "leaving no room to generate", r->n_prompt, ctx);
    long long v = 0;
    int room = ctx - r->n_prompt;
    long long max_tokens = chat ? room : 16;
    int got = get_int(body, "max_tokens", 1, INT_MAX, &v, err);
    TRY(got);
    if (got == 0) max_tokens = v;
    if (chat) {
        int g2 = get_int(body, "max_completion_tokens", 1, INT_MAX, &v, err);
        TRY(g2);
        if (g2 == 0) max_tokens = v;
    }
    if (max_tokens > room)
        return bad(err, "max_tokens", "max_tokens %lld plus the prompt's %d tokens exceeds this model's context "
                   "of %d tokens", max_tokens, r->n_prompt, ctx);
    long long n = 1;
    TRY(get_int(body, "n", 1, s->cfg.max_n, &n, err));
    double temp = 1.0, top_p = 1.0;
    TRY(get_num(body, "temperature", 0, 100, &temp, err));
    TRY(get_num(body, "top_p", 0, 1, &top_p, err));
    if (top_p == 0) return bad(err, "top_p", "'top_p' must be in (0, 1]");
    long long top_k = 0, seed = -1, prio = 0;
    TRY(get_int(body, "top_k", -1, s->cfg.vocab_size, &top_k, err));
    TRY(get_int(body, "seed", 0, LLONG_MAX, &seed, err));
    TRY(get_int(body, "priority", INT_MIN, INT_MAX, &prio, err));
    TRY(get_bool(body, "stream", &r->stream, err));
    TRY(get_bool(body, "return_token_ids", &r->return_token_ids, err));
    int ignore_eos = 0;
    TRY(get_bool(body, "ignore_eos", &ignore_eos, err));
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return bad(err, "stream_options", "'stream_options' must be an object");
        if (!r->stream) return bad(err, "stream_options", "'stream_options' is only allowed with \"stream\": true");
        TRY(get_bool(so, "include_usage", &r->include_usage, err));
    }
    if (parse_stop(body, r, err)) return 400;
    r->n = (int)n;
    r->seqs = calloc((size_t)n, sizeof *r->seqs);
    if (!r->seqs) return bad(err, "n", "out of memory");
    pthread_mutex_lock(&s->mu);
    uint64_t id = s->next_id++;
    pthread_mutex_unlock(&s->mu);
    snprintf(r->id, sizeof r->id, "%s-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)id);
    r->params = (pgd_request_params){
        .prompt = r->prompt, .n_prompt = r->n_prompt, .max_tokens = (int)max_tokens, .n = (int)n,
        .priority = (int)prio, .ignore_eos = ignore_eos,
        .sampling = {.temperature = (float)temp, .top_k = top_k < 0 ? 0 : (int)top_k, .top_p = (float)top_p,
                     .seed = seed >= 0 ? (uint64_t)seed : id},
        .stop_strings = (const char *const *)r->stops, .n_stop_strings = r->n_stops};
    if (pgd_sampling_params_validate(&r->params.sampling, s->cfg.vocab_size) != PGD_OK)
        return bad(err, NULL, "%s", pgd_last_error());
    return 0;
}

/* ---- responses ---- */

size_t srv_seq_sendable(const srv_req *r, const srv_seq *q, int final) {
    size_t end = q->len;
    if (final) {
        /* cut at the earliest stop string (OpenAI leaves it out) */
        if (q->finish_reason && !strcmp(q->finish_reason, "stop"))
            for (int i = 0; i < r->n_stops; i++) {
                const char *hit = q->text ? strstr(q->text, r->stops[i]) : NULL;
                if (hit && (size_t)(hit - q->text) < end) end = (size_t)(hit - q->text);
            }
        return end < q->sent_text ? q->sent_text : end;
    }
    if (r->max_stop_len > 1) end = end > r->max_stop_len - 1 ? end - (r->max_stop_len - 1) : 0;
    /* do not split a UTF-8 sequence */
    for (size_t back = 1; back <= 4 && back <= end; back++) {
        unsigned char c = (unsigned char)q->text[end - back];
        if (c < 0x80) break;
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (need > back) end -= back;
            break;
        }
    }
    return end < q->sent_text ? q->sent_text : end;
}

static json_t *tokens_json(const int32_t *t, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(t[i]));
    return a;
}

static json_t *usage_json(const srv_req *r) {
    int gen = 0;
    for (int k = 0; k < r->n; k++) gen += r->seqs[k].n;
    /* prompt_tokens_details.cached_tokens as OpenAI's and vLLM's: the prefix cache's share of the prompt */
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", r->n_prompt, "completion_tokens", gen,
                     "total_tokens", r->n_prompt + gen, "prompt_tokens_details", "cached_tokens", r->cached_tokens);
}

static json_t *envelope(pgd_server *s, const srv_req *r, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:o}", "id", r->id, "object", object, "created", (json_int_t)r->created,
                     "model", pgd_json_text(s->model_name));
}

json_t *srv_response_json(pgd_server *s, srv_req *r) {
    json_t *o = envelope(s, r, r->chat ? "chat.completion" : "text_completion"), *ch = json_array();
    for (int k = 0; k < r->n; k++) {
        srv_seq *q = &r->seqs[k];
        size_t end = srv_seq_sendable(r, q, 1);
        json_t *text = pgd_json_textn(q->text ? q->text : "", end), *c = json_object();
        json_object_set_new(c, "index", json_integer(k));
        if (r->chat) json_object_set_new(c, "message", json_pack("{s:s, s:o}", "role", "assistant", "content", text));
        else json_object_set_new(c, "text", text);
        json_object_set_new(c, "logprobs", json_null());
        json_object_set_new(c, "finish_reason", json_string(q->finish_reason ? q->finish_reason : r->finish_reason));
        if (r->return_token_ids) json_object_set_new(c, "token_ids", tokens_json(q->tokens, q->n));
        json_array_append_new(ch, c);
    }
    json_object_set_new(o, "choices", ch);
    json_object_set_new(o, "usage", usage_json(r));
    if (r->return_token_ids) json_object_set_new(o, "prompt_token_ids", tokens_json(r->prompt, r->n_prompt));
    return o;
}

static int put_event(char **buf, size_t *len, size_t *cap, json_t *o) {
    char *js = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!js) return 0;
    size_t need = *len + strlen(js) + 9;
    if (need > *cap) {
        size_t c = need * 2;
        char *nb = realloc(*buf, c);
        if (!nb) { free(js); return 0; }
        *buf = nb;
        *cap = c;
    }
    *len += (size_t)sprintf(*buf + *len, "data: %s\n\n", js);
    free(js);
    return 1;
}

int srv_stream_chunks(pgd_server *s, srv_req *r, char **buf, size_t *len, size_t *cap, int *done) {
    const char *object = r->chat ? "chat.completion.chunk" : "text_completion";
    int ok = 1;
    if (r->finished && r->error && !strcmp(r->finish_reason, "error")) {
        ok = put_event(buf, len, cap, srv_error_json(r->error, "server_error", NULL, "engine_error"));
        *done = 1;
        return ok;
    }
    for (int k = 0; k < r->n && ok; k++) {
        srv_seq *q = &r->seqs[k];
        if (q->sent_final) continue;
        int final = r->finished;
        size_t end = srv_seq_sendable(r, q, final);
        int newtok = q->n - q->sent_tokens;
        if (r->chat && !q->sent_role) {
            json_t *c = json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", k, "delta", "role", "assistant",
                                  "content", "", "logprobs", "finish_reason");
            json_t *o = envelope(s, r, object);
            json_object_set_new(o, "choices", json_pack("[o]", c));
            ok = put_event(buf, len, cap, o);
            q->sent_role = 1;
        }
        if (end == q->sent_text && !final && !(r->return_token_ids && newtok > 0)) continue;
        json_t *text = pgd_json_textn(q->text ? q->text + q->sent_text : "", end - q->sent_text);
        json_t *c = json_pack("{s:i}", "index", k);
        if (r->chat) {
            json_t *d = json_object();
            if (end > q->sent_text) json_object_set_new(d, "content", text);
            else json_decref(text);
            json_object_set_new(c, "delta", d);
        } else {
            json_object_set_new(c, "text", text);
        }
        json_object_set_new(c, "logprobs", json_null());
        json_object_set_new(c, "finish_reason", final ? json_string(q->finish_reason ? q->finish_reason : r->finish_reason)
                                                      : json_null());
        if (r->return_token_ids) json_object_set_new(c, "token_ids", tokens_json(q->tokens + q->sent_tokens, newtok));
        json_t *o = envelope(s, r, object);
        json_object_set_new(o, "choices", json_pack("[o]", c));
        ok = put_event(buf, len, cap, o);
        q->sent_text = end;
        q->sent_tokens = q->n;
        if (final) q->sent_final = 1;
    }
    if (r->finished && ok) {
        if (r->include_usage) {
            json_t *o = envelope(s, r, object);
            json_object_set_new(o, "choices", json_array());
            json_object_set_new(o, "usage", usage_json(r));
            ok = put_event(buf, len, cap, o);
        }
        *done = 1;
    }
    return ok;
}
