/* test_serve.c - the OpenAI-compatible server (pagoda/serve.h), started in
 * process on an ephemeral port and driven over HTTP with libcurl:
 *  - every bad request (malformed JSON, a 10 MB body, unknown model,
 *    max_tokens -1 or past the context, n = 10000, invalid UTF-8, wrong
 *    types, wrong method or path) gets its 4xx and an OpenAI-style error
 *    object, and a good request still works afterwards;
 *  - greedy completions, plain and streamed (and chat with the "none"
 *    template, and a token-id prompt), give exactly the stories260K goldens;
 *  - stop strings are cut from the text, n samples, /v1/models, /health,
 *    and /metrics (vLLM's names);
 *  - with --max-queue 1 a second request gets 503 while one streams, and a
 *    client that disconnects mid-stream has its request aborted and its KV
 *    blocks freed (seen in /metrics). That server runs random:stories15M
 *    weights so that the stream lasts seconds; the check waits for the
 *    abort, it does not time anything. */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/serve.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

typedef struct srv_fixture {
    pgd_exec *ex;
    pgd_tokenizer *tok;
    pgd_engine *eng;
    pgd_server *srv;
    char base[64];
} srv_fixture;

static srv_fixture F, F2, F3; /* stories260K; random stories15M with max_queue 1; stories260K, prefix caching */
static pgd_golden G[8];
static int NG;

static int start(srv_fixture *f, const char *model, const char *tokenizer, int max_queue, int prefix) {
    pgd_exec_config xc = {.model = model, .backend = {.name = "cpu", .num_threads = 1}};
    if (pgd_exec_create(&xc, &f->ex) != PGD_OK) return -1;
    const pgd_model_config *c = pgd_exec_model_config(f->ex);
    if (pgd_tokenizer_load_llama2c(tokenizer, c->vocab_size, &f->tok) != PGD_OK) return -1;
    pgd_engine_config ec = {.block_size = prefix ? 8 : 16, .prefix_caching = prefix};
    if (pgd_engine_create(&ec, f->ex, f->tok, &f->eng) != PGD_OK) return -1;
    pgd_server_config sc = {.port = 0, .max_queue = max_queue, .model_name = "stories", .context_len = c->max_seq_len,
                            .vocab_size = c->vocab_size};
    if (pgd_server_create(&sc, f->eng, f->tok, &f->srv) != PGD_OK) {
        fprintf(stderr, "server: %s\n", pgd_last_error());
        return -1;
    }
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", pgd_server_port(f->srv));
    return 0;
}

static void stop(srv_fixture *f) {
    pgd_server_destroy(f->srv);
    pgd_engine_destroy(f->eng);
    pgd_tokenizer_destroy(f->tok);
    pgd_exec_destroy(f->ex);
    memset(f, 0, sizeof *f);
}

static int suite_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    NG = pgd_test_load_goldens(G, 8);
    char model[1024], tok[1024];
    snprintf(model, sizeof model, "%s", pgd_test_data(MODEL));
    snprintf(tok, sizeof tok, "%s", pgd_test_data(TOKENIZER));
    if (NG <= 0 || start(&F, model, tok, 64, 0) || start(&F3, model, tok, 64, 1)) return -1;
    snprintf(tok, sizeof tok, "%s", pgd_test_data("tokenizers/llama2_tokenizer.bin"));
    return start(&F2, "random:stories15M,seq=1024", tok, 1, 0);
}

static int suite_clean(void) {
    stop(&F);
    stop(&F2);
    stop(&F3);
    curl_global_cleanup();
    return 0;
}

typedef struct buf {
    char *p;
    size_t n;
    size_t limit; /* stop the transfer after this many bytes (0 = never) */
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *ctx) {
    buf *b = ctx;
    size_t k = sz * nm;
    char *np = realloc(b->p, b->n + k + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = 0;
    if (b->limit && b->n >= b->limit) return 0;
    return k;
}

/* method NULL = GET without body, else POST of body (len bytes). Returns the status. */
static long http(const char *base, const char *path, const char *body, size_t len, char **out) {
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out) *out = b.p ? b.p : strdup("");
    else free(b.p);
    return status;
}

static long post(const char *path, const char *body, char **out) { return http(F.base, path, body, strlen(body), out); }

/* Check an OpenAI error object: message, type, param, code keys; param as expected (NULL = null). */
static void check_error(const char *resp, const char *param, const char *what) {
    json_t *o = json_loads(resp, 0, NULL), *e = json_object_get(o, "error");
    CU_ASSERT_PTR_NOT_NULL(e);
    if (!e) fprintf(stderr, "\n%s: not an error object: %.300s\n", what, resp);
    CU_ASSERT(json_is_string(json_object_get(e, "message")) && json_string_length(json_object_get(e, "message")) > 0);
    CU_ASSERT(json_is_string(json_object_get(e, "type")));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(e, "param"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(e, "code"));
    json_t *p = json_object_get(e, "param");
    if (param) {
        CU_ASSERT(json_is_string(p) && !strcmp(json_string_value(p), param));
        if (!json_is_string(p) || strcmp(json_string_value(p), param))
            fprintf(stderr, "\n%s: param %s, wanted %s\n", what, json_is_string(p) ? json_string_value(p) : "null", param);
    }
    json_decref(o);
}

static void good_request_works(void) {
    char *r = NULL;
    CU_ASSERT_EQUAL(post("/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 3}", &r), 200);
    json_t *o = json_loads(r, 0, NULL);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "usage"), "completion_tokens")), 3);
    json_decref(o);
    free(r);
}

static void test_bad_requests(void) {
    struct { const char *path, *body; long status; const char *param; } cases[] = {
        {"/v1/completions", "{\"prompt\": \"hi\"", 400, NULL},                          /* malformed JSON */
        {"/v1/completions", "", 400, NULL},                                             /* empty body */
        {"/v1/completions", "[1, 2]", 400, NULL},                                       /* not an object */
        {"/v1/completions", "{\"prompt\": \"hi\", \"prompt\": \"x\"}", 400, NULL},      /* duplicate key */
        {"/v1/completions", "{\"model\": \"gpt-9\", \"prompt\": \"hi\"}", 404, "model"},
        {"/v1/completions", "{\"model\": 7, \"prompt\": \"hi\"}", 400, "model"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": -1}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 0}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 100000}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 510}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": \"ten\"}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 2.5}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"n\": 10000}", 400, "n"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"n\": 0}", 400, "n"},
        {"/v1/completions", "{\"prompt\": \"hi\\udc00\"}", 400, NULL},                  /* lone surrogate */
        {"/v1/completions", "{\"prompt\": \"\xff\xfe bad\"}", 400, NULL},               /* invalid UTF-8 */
        {"/v1/completions", "{\"prompt\": 5}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": []}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": [1, 99999]}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": [1, -3]}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt"},
        {"/v1/completions", "{\"max_tokens\": 3}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"temperature\": \"hot\"}", 400, "temperature"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"temperature\": -1}", 400, "temperature"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"top_p\": 0}", 400, "top_p"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"top_p\": 1.5}", 400, "top_p"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"top_k\": -5}", 400, "top_k"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"seed\": -1}", 400, "seed"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"stream\": \"yes\"}", 400, "stream"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"stop\": 3}", 400, "stop"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"stop\": [\"\"]}", 400, "stop"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"priority\": \"high\"}", 400, "priority"},
        {"/v1/completions", "{\"prompt\": \"hi\", \"stream_options\": {\"include_usage\": true}}", 400, "stream_options"},
        {"/v1/chat/completions", "{\"messages\": \"hi\"}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": []}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\"}]}", 400, "messages"},
        {"/v1/chat/completions", "{\"prompt\": \"hi\"}", 400, "messages"},
        {"/v1/nothing", "{}", 404, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = NULL;
        long st = post(cases[i].path, cases[i].body, &r);
        if (st != cases[i].status) fprintf(stderr, "\ncase %zu (%s): status %ld, wanted %ld: %s\n", i, cases[i].body, st,
                                           cases[i].status, r);
        CU_ASSERT_EQUAL(st, cases[i].status);
        check_error(r, cases[i].param, cases[i].body);
        free(r);
    }
    /* a 10 MB body: 413, read and dropped */
    size_t big = 10u << 20;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    memcpy(body, "{\"prompt\": \"", 12);
    memset(body + 12, 'a', big - 20);
    memcpy(body + big - 8, "\", \"a\":1}", 8);
    body[big] = 0;
    char *r = NULL;
    CU_ASSERT_EQUAL(http(F.base, "/v1/completions", body, big, &r), 413);
    check_error(r, NULL, "10 MB body");
    free(r);
    free(body);
    /* wrong methods */
    CU_ASSERT_EQUAL(http(F.base, "/v1/completions", NULL, 0, &r), 405);
    check_error(r, NULL, "GET completions");
    free(r);
    CU_ASSERT_EQUAL(http(F.base, "/metrics", "{}", 2, &r), 405);
    free(r);
    /* unknown fields are ignored */
    CU_ASSERT_EQUAL(post("/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 2, \"frobnicate\": {\"x\": [1]}, "
                         "\"logit_bias\": null}", &r), 200);
    free(r);
    good_request_works();
}

static json_t *complete(const char *path, const char *body) {
    char *r = NULL;
    long st = post(path, body, &r);
    CU_ASSERT_EQUAL(st, 200);
    if (st != 200) fprintf(stderr, "\n%s -> %ld %s\n", body, st, r);
    json_t *o = json_loads(r, 0, NULL);
    free(r);
    return o;
}

static int tokens_match(json_t *ids, const pgd_golden *g) {
    if (json_array_size(ids) != (size_t)g->ng) return 0;
    for (int i = 0; i < g->ng; i++)
        if (json_integer_value(json_array_get(ids, (size_t)i)) != g->gtoks[i]) return 0;
    return 1;
}

static void test_golden_plain(void) {
    for (int gi = 0; gi < NG; gi++) {
        const pgd_golden *g = &G[gi];
        json_t *req = json_pack("{s:s, s:i, s:i, s:b}", "prompt", g->prompt, "max_tokens", g->ng, "temperature", 0,
                                "return_token_ids", 1);
        char *body = json_dumps(req, 0);
        json_t *o = complete("/v1/completions", body);
        json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
        CU_ASSERT(tokens_match(json_object_get(c0, "token_ids"), g));
        json_t *pt = json_object_get(o, "prompt_token_ids");
        CU_ASSERT_EQUAL(json_array_size(pt), (size_t)g->np);
        for (int i = 0; i < g->np && i < (int)json_array_size(pt); i++)
            CU_ASSERT_EQUAL(json_integer_value(json_array_get(pt, (size_t)i)), g->ptoks[i]);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "usage"), "completion_tokens")), g->ng);
        /* the same prompt as token ids, and as a chat message with the "none" template */
        json_t *req2 = json_pack("{s:o, s:i, s:i, s:b}", "prompt", json_deep_copy(pt), "max_tokens", g->ng,
                                 "temperature", 0, "return_token_ids", 1);
        char *body2 = json_dumps(req2, 0);
        json_t *o2 = complete("/v1/completions", body2);
        CU_ASSERT(tokens_match(json_object_get(json_array_get(json_object_get(o2, "choices"), 0), "token_ids"), g));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(json_object_get(o2, "choices"), 0), "text")),
                               json_string_value(json_object_get(c0, "text")));
        json_t *req3 = json_pack("{s:[{s:s, s:s}], s:i, s:i, s:b}", "messages", "role", "user", "content", g->prompt,
                                 "max_tokens", g->ng, "temperature", 0, "return_token_ids", 1);
        char *body3 = json_dumps(req3, 0);
        json_t *o3 = complete("/v1/chat/completions", body3);
        json_t *c3 = json_array_get(json_object_get(o3, "choices"), 0);
        CU_ASSERT(tokens_match(json_object_get(c3, "token_ids"), g));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(c3, "message"), "content")),
                               json_string_value(json_object_get(c0, "text")));
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o3, "object")), "chat.completion");
        free(body);
        free(body2);
        free(body3);
        json_decref(req);
        json_decref(req2);
        json_decref(req3);
        json_decref(o);
        json_decref(o2);
        json_decref(o3);
    }
}

/* Parse an SSE body: the JSON of every data line but [DONE] (which must end it). */
static json_t *sse_events(const char *s) {
    json_t *arr = json_array();
    int done = 0;
    const char *p = s;
    while (p && *p) {
        const char *e = strstr(p, "\n\n");
        CU_ASSERT_PTR_NOT_NULL(e);
        if (!e) break;
        CU_ASSERT(!strncmp(p, "data: ", 6));
        CU_ASSERT(!done);
        if (!strncmp(p + 6, "[DONE]", 6)) done = 1;
        else json_array_append_new(arr, json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL));
        p = e + 2;
    }
    CU_ASSERT(done);
    return arr;
}

static void test_golden_streamed(void) {
    for (int gi = 0; gi < NG; gi++) {
        const pgd_golden *g = &G[gi];
        for (int chat = 0; chat < 2; chat++) {
            json_t *req = chat ? json_pack("{s:[{s:s, s:s}], s:i, s:i, s:b, s:b, s:{s:b}}", "messages", "role", "user",
                                           "content", g->prompt, "max_tokens", g->ng, "temperature", 0,
                                           "return_token_ids", 1, "stream", 1, "stream_options", "include_usage", 1)
                               : json_pack("{s:s, s:i, s:i, s:b, s:b, s:{s:b}}", "prompt", g->prompt, "max_tokens",
                                           g->ng, "temperature", 0, "return_token_ids", 1, "stream", 1,
                                           "stream_options", "include_usage", 1);
            char *body = json_dumps(req, 0), *r = NULL;
            CU_ASSERT_EQUAL(post(chat ? "/v1/chat/completions" : "/v1/completions", body, &r), 200);
            json_t *ev = sse_events(r), *ids = json_array();
            size_t i;
            json_t *x;
            int usage_seen = 0, finish_seen = 0;
            char *text = calloc(1, 1);
            json_array_foreach(ev, i, x) {
                CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(x, "object")),
                                       chat ? "chat.completion.chunk" : "text_completion");
                json_t *u = json_object_get(x, "usage");
                if (u && !json_is_null(u)) {
                    usage_seen = 1;
                    CU_ASSERT_EQUAL(json_array_size(json_object_get(x, "choices")), 0);
                    CU_ASSERT_EQUAL(json_integer_value(json_object_get(u, "completion_tokens")), g->ng);
                    CU_ASSERT_EQUAL(json_integer_value(json_object_get(u, "prompt_tokens")), g->np);
                    continue;
                }
                CU_ASSERT(!usage_seen); /* usage comes last */
                json_t *c = json_array_get(json_object_get(x, "choices"), 0);
                if (json_object_get(c, "token_ids")) json_array_extend(ids, json_object_get(c, "token_ids"));
                json_t *t = chat ? json_object_get(json_object_get(c, "delta"), "content") : json_object_get(c, "text");
                if (json_is_string(t)) {
                    char *nt = malloc(strlen(text) + json_string_length(t) + 1);
                    sprintf(nt, "%s%s", text, json_string_value(t));
                    free(text);
                    text = nt;
                }
                if (json_is_string(json_object_get(c, "finish_reason"))) finish_seen = 1;
            }
            CU_ASSERT(usage_seen);
            CU_ASSERT(finish_seen);
            CU_ASSERT(tokens_match(ids, g));
            if (!tokens_match(ids, g)) fprintf(stderr, "\nstreamed %s: %zu tokens, wanted %d\n", g->prompt, json_array_size(ids), g->ng);
            /* the streamed text is the plain response's */
            json_t *pl = json_pack("{s:s, s:i, s:i}", "prompt", g->prompt, "max_tokens", g->ng, "temperature", 0);
            char *pb = json_dumps(pl, 0);
            json_t *o = complete("/v1/completions", pb);
            CU_ASSERT_STRING_EQUAL(text, json_string_value(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "text")));
            json_decref(o);
            json_decref(pl);
            free(pb);
            free(text);
            json_decref(ids);
            json_decref(ev);
            json_decref(req);
            free(body);
            free(r);
        }
    }
}

static void test_stop_and_n(void) {
    /* greedy "Once upon a time" continues ", there was a little" */
    json_t *o = complete("/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 30, \"temperature\": 0, "
                                            "\"stop\": [\" little\", \"zzz\"]}");
    json_t *c = json_array_get(json_object_get(o, "choices"), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "text")), ", there was a");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "finish_reason")), "stop");
    json_decref(o);
    /* streamed: the stop string is held back and never sent */
    char *r = NULL;
    CU_ASSERT_EQUAL(post("/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 30, \"temperature\": 0, "
                                            "\"stop\": \" little\", \"stream\": true}", &r), 200);
    CU_ASSERT_PTR_NULL(strstr(r, "little"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "\"finish_reason\":\"stop\""));
    free(r);
    /* n = 3 sampled: three choices, indexes 0..2, each max_tokens long or stopped */
    o = complete("/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8, \"n\": 3, \"seed\": 7, "
                                    "\"temperature\": 1.0, \"ignore_eos\": true}");
    json_t *ch = json_object_get(o, "choices");
    CU_ASSERT_EQUAL(json_array_size(ch), 3);
    for (size_t i = 0; i < json_array_size(ch); i++)
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(ch, i), "index")), (json_int_t)i);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(o, "usage"), "completion_tokens")), 24);
    json_decref(o);
}

static double metric(const char *text, const char *name) {
    const char *p = text;
    size_t nl = strlen(name);
    while ((p = strstr(p, name))) {
        if ((p == text || p[-1] == '\n') && (p[nl] == '{' || p[nl] == ' ')) {
            const char *v = strchr(p, ' ');
            if (p[nl] == '{') v = strstr(p, "} ") + 1;
            return strtod(v, NULL);
        }
        p += nl;
    }
    return -1;
}

static void test_endpoints(void) {
    char *r = NULL;
    CU_ASSERT_EQUAL(http(F.base, "/health", NULL, 0, &r), 200);
    free(r);
    CU_ASSERT_EQUAL(http(F.base, "/v1/models", NULL, 0, &r), 200);
    json_t *o = json_loads(r, 0, NULL);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id")), "stories");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "max_model_len")), 512);
    json_decref(o);
    free(r);
    good_request_works();
    CU_ASSERT_EQUAL(http(F.base, "/metrics", NULL, 0, &r), 200);
    const char *names[] = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:num_requests_swapped",
                           "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:num_preemptions_total",
                           "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:prefix_cache_queries_total",
                           "vllm:prefix_cache_hits_total", "vllm:time_to_first_token_seconds_count",
                           "vllm:inter_token_latency_seconds_count", "vllm:e2e_request_latency_seconds_count",
                           "pagoda:kv_blocks_used", "pagoda:bad_requests_total"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (metric(r, names[i]) < 0) fprintf(stderr, "\nmissing metric %s\n", names[i]);
        CU_ASSERT(metric(r, names[i]) >= 0);
    }
    CU_ASSERT(metric(r, "vllm:generation_tokens_total") >= 3);
    CU_ASSERT(metric(r, "vllm:e2e_request_latency_seconds_count") >= 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "# TYPE vllm:time_to_first_token_seconds histogram"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "vllm:time_to_first_token_seconds_bucket{model_name=\"stories\",le=\"+Inf\"}"));
    CU_ASSERT_EQUAL(metric(r, "pagoda:kv_blocks_used"), 0); /* nothing running */
    free(r);
}

/* usage.prompt_tokens_details.cached_tokens: 0 without a prefix cache; with
 * one, a prompt sent again finds its whole blocks cached (39 prompt tokens in
 * blocks of 8: 32; the last partial block is always computed). */
static void test_usage_cached_tokens(void) {
    const char *body = "{\"prompt\": \"Once upon a time, there was a little girl named Lily who loved to play "
                       "outside in the sunshine with her friends\", \"max_tokens\": 2}";
    for (int round = 0; round < 3; round++) {
        char *r = NULL;
        CU_ASSERT_EQUAL_FATAL(http(round ? F3.base : F.base, "/v1/completions", body, strlen(body), &r), 200);
        json_t *o = json_loads(r, 0, NULL), *u = json_object_get(o, "usage");
        int np = (int)json_integer_value(json_object_get(u, "prompt_tokens"));
        json_t *c = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
        CU_ASSERT_PTR_NOT_NULL(c);
        CU_ASSERT_EQUAL(np, 39);
        CU_ASSERT_EQUAL(json_integer_value(c), round == 2 ? 32 : 0);
        json_decref(o);
        free(r);
    }
}

/* --max-queue 1: a second request is refused while one streams; the
 * streaming client hangs up and its request is aborted, its blocks freed. */
#define SMALL "{\"prompt\": [1, 5], \"max_tokens\": 2}"
static void test_queue_full_and_disconnect(void) {
    CURLM *m = curl_multi_init();
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/completions", F2.base);
    buf b = {0};
    const char *body = "{\"prompt\": [1, 100, 200, 300], \"max_tokens\": 1000, \"n\": 4, \"ignore_eos\": true, "
                       "\"stream\": true}";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_multi_add_handle(m, c);
    int running = 1;
    for (int i = 0; i < 6000 && running && b.n < 200; i++) { /* until the first chunks arrive */
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    CU_ASSERT(b.n >= 200 && running);
    char *r = NULL;
    long st = http(F2.base, "/v1/completions", SMALL, strlen(SMALL), &r);
    CU_ASSERT_EQUAL(st, 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r, "server_overloaded"));
    check_error(r, NULL, "503");
    free(r);
    CU_ASSERT_EQUAL(http(F2.base, "/metrics", NULL, 0, &r), 200);
    CU_ASSERT(metric(r, "pagoda:kv_blocks_used") > 0);
    CU_ASSERT_EQUAL(metric(r, "vllm:num_requests_running"), 1);
    CU_ASSERT_EQUAL(metric(r, "pagoda:requests_rejected_total"), 1);
    free(r);
    /* hang up mid-stream */
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    free(b.p);
    double aborted = 0, used = -1;
    for (int i = 0; i < 600; i++) { /* wait (up to a minute) for the abort to land */
        CU_ASSERT_EQUAL_FATAL(http(F2.base, "/metrics", NULL, 0, &r), 200);
        const char *p = strstr(r, "finished_reason=\"abort\"} ");
        aborted = p ? strtod(p + 25, NULL) : -1;
        used = metric(r, "pagoda:kv_blocks_used");
        free(r);
        if (aborted == 1 && used == 0) break;
        usleep(100000);
    }
    CU_ASSERT_EQUAL(aborted, 1);
    CU_ASSERT_EQUAL(used, 0);
    /* and the server takes the next request */
    CU_ASSERT_EQUAL(http(F2.base, "/v1/completions", SMALL, strlen(SMALL), &r), 200);
    free(r);
}

/* `pagoda serve` as a child: --port 0 prints the port; SIGTERM in the middle
 * of a stream stops it cleanly (exit 0, the stream ends). */
static void test_cli_sigterm(void) {
    int pid = -1;
    int port =
        pgd_test_serve_child(MODEL, TOKENIZER, (const char *const[]){"--served-model-name", "child", NULL}, &pid);
    CU_ASSERT_FATAL(port > 0);
    char base[64], *r = NULL;
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    CU_ASSERT_EQUAL(http(base, "/v1/models", NULL, 0, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(r && strstr(r, "\"child\""));
    free(r);
    /* a long stream, then SIGTERM while it runs */
    CURLM *m = curl_multi_init();
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s/v1/completions", base);
    buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"prompt\": \"Once\", \"max_tokens\": 500, \"ignore_eos\": true, "
                                            "\"n\": 16, \"stream\": true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_multi_add_handle(m, c);
    int running = 1;
    for (int i = 0; i < 6000 && running && b.n < 100; i++) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    CU_ASSERT(b.n >= 100);
    kill(pid, SIGTERM);
    for (int i = 0; i < 6000 && running; i++) { /* the stream ends (cut or complete) */
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    CU_ASSERT_EQUAL(running, 0);
    CU_ASSERT_EQUAL(pgd_test_wait_child(pid), 0);
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    free(b.p);
}

static CU_TestInfo tests[] = {
    {"bad_requests", test_bad_requests},
    {"golden_plain", test_golden_plain},
    {"golden_streamed", test_golden_streamed},
    {"stop_and_n", test_stop_and_n},
    {"usage: prompt_tokens_details.cached_tokens from the prefix cache", test_usage_cached_tokens},
    {"endpoints_and_metrics", test_endpoints},
    {"queue_full_and_disconnect", test_queue_full_and_disconnect},
    {"cli_sigterm", test_cli_sigterm},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "serve", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
