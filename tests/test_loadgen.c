/* test_loadgen.c - multi-turn conversations and the HTTP load generator:
 * the conversation workload's construction (turn order, messages, output
 * lengths from ShareGPT's gpt turns, MT-bench's two turns), the history a
 * turn's prompt is built from (earlier messages + the actual outputs), the
 * in-process run (every turn of every conversation finishes; turn k is
 * released exactly think_time after turn k-1 finished, on the engine's
 * clock; the prefix cache serves the history, outputs included), and
 * `pagoda bench serve` against a small in-test OpenAI-style server (one
 * thread per connection, SSE streams with deterministic token ids):
 * complete results with TTFT <= E2E and the token counts asked for, the
 * server's outputs in the next turn's prompt, failures in the error
 * column, and one clear line when no server is there. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pagoda/config.h"
#include "pagoda/loadgen.h"
#include "pagoda/runner.h"
#include "pagoda/tokenizer.h"
#include "pagoda/workload.h"
#include "test_util.h"

/* ---- workload construction ---- */

static void test_synthetic_turns(void) {
    pgd_workload_config c = {.turns = 3, .num_requests = 5, .seed = 3, .vocab_size = 512, .max_model_len = 512,
                             .input_len = {.kind = PGD_LEN_FIXED, .mean = 10},
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 4},
                             .arrival = {.kind = PGD_ARRIVAL_POISSON, .rate = 2}, .think_time = 0.5};
    pgd_workload *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 15);
    CU_ASSERT_EQUAL(pgd_workload_num_sessions(w), 5);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_think_time(w), 0.5, 0);
    double last = -1;
    for (int i = 0; i < 15; i++) {
        const pgd_workload_request *r = pgd_workload_get(w, i);
        CU_ASSERT_EQUAL(r->session, i / 3); /* contiguous, in order */
        CU_ASSERT_EQUAL(r->turn, i % 3);
        CU_ASSERT_EQUAL(r->num_turns, 3);
        CU_ASSERT_EQUAL(r->n_prompt, 10);
        CU_ASSERT_EQUAL(r->output_len, 4);
        if (r->turn == 0) {
            CU_ASSERT(r->arrival >= last); /* conversations in arrival order */
            last = r->arrival;
        } else {
            CU_ASSERT_DOUBLE_EQUAL(r->arrival, last, 0);
        }
    }
    /* turn 1's prompt = turn 0's message + its output + turn 1's message */
    pgd_session_history h = {0};
    int32_t out0[4] = {100, 101, 102, 103};
    const pgd_workload_request *t0 = pgd_workload_get(w, 0), *t1 = pgd_workload_get(w, 1);
    CU_ASSERT_EQUAL(pgd_session_history_append(&h, t0->prompt, t0->n_prompt), PGD_OK);
    CU_ASSERT_EQUAL(pgd_session_history_append(&h, out0, 4), PGD_OK);
    int32_t *p = NULL;
    int n = 0, cut = -1;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_turn_prompt(w, 1, &h, &p, &n, &cut), PGD_OK);
    CU_ASSERT_EQUAL(n, 24);
    CU_ASSERT_EQUAL(cut, 0);
    CU_ASSERT(!memcmp(p, t0->prompt, 10 * sizeof *p));
    CU_ASSERT(!memcmp(p + 10, out0, sizeof out0));
    CU_ASSERT(!memcmp(p + 14, t1->prompt, 10 * sizeof *p));
    free(p);
    pgd_session_history_free(&h);
    pgd_workload_destroy(w);
    /* the history is cut to the last max_history tokens */
    c.max_history = 16;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    t0 = pgd_workload_get(w, 0), t1 = pgd_workload_get(w, 1);
    CU_ASSERT_EQUAL(pgd_session_history_append(&h, t0->prompt, t0->n_prompt), PGD_OK);
    CU_ASSERT_EQUAL(pgd_session_history_append(&h, out0, 4), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_workload_turn_prompt(w, 1, &h, &p, &n, &cut), PGD_OK);
    CU_ASSERT_EQUAL(n, 16);
    CU_ASSERT_EQUAL(cut, 8);
    CU_ASSERT(!memcmp(p, t0->prompt + 8, 2 * sizeof *p));
    CU_ASSERT(!memcmp(p + 2, out0, sizeof out0));
    CU_ASSERT(!memcmp(p + 6, t1->prompt, 10 * sizeof *p));
    free(p);
    pgd_session_history_free(&h);
    pgd_workload_destroy(w);
    /* bad keys */
    c.max_history = 0;
    c.source = PGD_WL_TRACE;
    c.path = "x.csv";
    CU_ASSERT_EQUAL(pgd_workload_create(&c, &w), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "trace has no conversations"));
    c.source = PGD_WL_SYNTHETIC;
    c.path = NULL;
    c.turns = -1;
    CU_ASSERT_EQUAL(pgd_workload_create(&c, &w), PGD_ERR_INVALID);
    c.turns = 2;
    c.think_time = -1;
    CU_ASSERT_EQUAL(pgd_workload_create(&c, &w), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "think_time"));
}

static pgd_tokenizer *tok260k(void) {
    pgd_tokenizer *t = NULL;
    if (pgd_tokenizer_load_llama2c(pgd_test_data("models/stories260K/tok512.bin"), 512, &t) != PGD_OK) return NULL;
    return t;
}

static void test_sharegpt_every_turn(void) {
    static const char js[] =
        "[{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"Once upon a time\"},"
        "{\"from\":\"gpt\",\"value\":\"there was a dog\"},{\"from\":\"human\",\"value\":\"What was its name\"},"
        "{\"from\":\"gpt\",\"value\":\"Tom\"},{\"from\":\"human\",\"value\":\"Where did it live\"}]},"
        "{\"id\":\"b\",\"conversations\":[{\"from\":\"human\",\"value\":\"\"}]},"
        "{\"id\":\"c\",\"conversations\":[{\"from\":\"human\",\"value\":\"The cat sat\"},{\"from\":\"gpt\",\"value\":\"on a mat\"}]}]";
    char *path = pgd_test_write_temp(js, sizeof js - 1, ".json");
    pgd_tokenizer *tok = tok260k();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    pgd_workload_config c = {.source = PGD_WL_DATASET, .path = path, .tokenizer = tok, .turns = -1,
                             .vocab_size = 512, .max_model_len = 512,
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 7}};
    pgd_workload *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_num_sessions(w), 2); /* the empty one is skipped */
    CU_ASSERT_EQUAL_FATAL(pgd_workload_count(w), 4);
    int32_t *ids = NULL;
    int n = 0;
    const pgd_workload_request *r = pgd_workload_get(w, 0);
    CU_ASSERT_EQUAL(r->num_turns, 3);
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(tok, "Once upon a time", 1, 0, &ids, &n), PGD_OK);
    CU_ASSERT_EQUAL(r->n_prompt, n); /* turn 0: BOS + text */
    CU_ASSERT(!memcmp(r->prompt, ids, (size_t)n * sizeof *ids));
    free(ids);
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(tok, "there was a dog", 0, 0, &ids, &n), PGD_OK);
    CU_ASSERT_EQUAL(r->output_len, n); /* the gpt turn's length */
    free(ids);
    r = pgd_workload_get(w, 1);
    CU_ASSERT_EQUAL(r->turn, 1);
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(tok, "What was its name", 0, 0, &ids, &n), PGD_OK);
    CU_ASSERT_EQUAL(r->n_prompt, n); /* later turns: the new message only, no BOS */
    CU_ASSERT(!memcmp(r->prompt, ids, (size_t)n * sizeof *ids));
    free(ids);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->output_len, 7); /* no gpt turn after it: output_len */
    CU_ASSERT_EQUAL(pgd_workload_get(w, 3)->session, 1);
    pgd_workload_destroy(w);
    c.turns = 2; /* at most 2 turns */
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 3);
    pgd_workload_destroy(w);
    /* MT-bench (shared data): two turns each */
    c.path = pgd_test_data("traces/mtbench_questions.jsonl");
    c.turns = -1;
    c.num_requests = 10;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL(pgd_workload_num_sessions(w), 10);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 20);
    for (int i = 0; i < 20; i++) CU_ASSERT_EQUAL(pgd_workload_get(w, i)->turn, i % 2);
    pgd_workload_destroy(w);
    /* Alpaca has no conversations */
    c.path = pgd_test_data("traces/alpaca_5000.json");
    CU_ASSERT_EQUAL(pgd_workload_create(&c, &w), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "ShareGPT or MT-bench"));
    pgd_tokenizer_destroy(tok);
    remove(path);
    free(path);
}

/* ---- in process ---- */

static pgd_experiment *load_ini(const char *text) {
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(text, "mt.ini", &e) != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    return e;
}

static void test_in_process_sessions(void) {
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[experiment]\nname = mt\nseed = 2\n[model]\npath = %s\nthreads = 1\n"
             "[engine]\nnum_blocks = 300\nprefix_caching = on\n"
             "[workload]\nnum_requests = 6\nturns = 3\nthink_time = 0.25\ninput_len = fixed\ninput_mean = 20\n"
             "output_len = fixed\noutput_mean = 40\nrate = 50\n",
             pgd_test_data("models/stories260K/stories260K.bin"));
    pgd_experiment *e = load_ini(ini);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgd_run_result res;
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, &res), PGD_OK);
    CU_ASSERT_EQUAL(res.num_requests, 18);
    CU_ASSERT_EQUAL(res.summary.completed, 18); /* every turn of every conversation */
    CU_ASSERT_EQUAL(pgd_metrics_num_requests(res.metrics), 18);
    const pgd_request_record *by[6][3] = {{0}};
    for (int64_t i = 0; i < pgd_metrics_num_requests(res.metrics); i++) {
        const pgd_request_record *r = pgd_metrics_request(res.metrics, i);
        CU_ASSERT_FATAL(r->num_turns == 3 && r->session >= 0 && r->session < 6 && r->turn >= 0 && r->turn < 3);
        CU_ASSERT_PTR_NULL(by[r->session][r->turn]);
        by[r->session][r->turn] = r;
    }
    for (int s = 0; s < 6; s++)
        for (int k = 1; k < 3; k++) {
            const pgd_request_record *p = by[s][k - 1], *r = by[s][k];
            CU_ASSERT_FATAL(p && r);
            /* released exactly think_time after the previous turn finished (engine clock) */
            CU_ASSERT_DOUBLE_EQUAL(r->arrival, p->finish + 0.25, 1e-9);
            CU_ASSERT(r->first_scheduled >= r->arrival);
            CU_ASSERT_EQUAL(p->output_tokens, 40);
            /* history = previous prompt + its 40 output tokens + the 20-token message */
            CU_ASSERT_EQUAL(r->prompt_tokens, p->prompt_tokens + 40 + 20);
            /* the prefix cache served the history INCLUDING the generated tokens' full
             * blocks: only the engine's actual output tokens hash to those blocks */
            int reach = (p->prompt_tokens + 40 - 1) / 16 * 16;
            CU_ASSERT(r->cached_tokens >= reach - 16 && r->cached_tokens > p->prompt_tokens / 16 * 16);
        }
    json_t *turns = pgd_metrics_turns_json(res.metrics);
    CU_ASSERT_EQUAL_FATAL(json_array_size(turns), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(turns, 2), "completed")), 6);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(json_array_get(turns, 0), "prefix_hit_rate")), 0, 0);
    CU_ASSERT(json_real_value(json_object_get(json_array_get(turns, 2), "prefix_hit_rate")) > 0.5);
    json_decref(turns);
    pgd_run_result_free(&res);
    pgd_experiment_destroy(e);
}

static void test_config_keys(void) {
    pgd_experiment *e = NULL;
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[workload]\nturns = 0\n", "k.ini", &e), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "turns"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[workload]\nturns = -1\n", "k.ini", &e), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "source = dataset"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[workload]\nthink_time = 2\n", "k.ini", &e), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "think_time"));
    CU_ASSERT_NOT_EQUAL(pgd_experiment_load_string("[workload]\nturns = 2\nthink_time = -1\n", "k.ini", &e), PGD_OK);
    CU_ASSERT_EQUAL(pgd_experiment_load_string("[workload]\nturns = 2\nthink_time = 1.5\nmax_history = 64\n", "k.ini", &e),
                    PGD_OK);
    pgd_experiment_destroy(e);
}

/* ---- a tiny OpenAI-style server ---- */

typedef struct fake_server {
    int fd, port;
    volatile int stop;
    pthread_t acceptor;
    pthread_t workers[256];
    int n_workers;
    pthread_mutex_t mu;
    json_t *prompts; /* every completion's prompt, by "seed" (the client's seed + index) */
} fake_server;

typedef struct conn {
    fake_server *s;
    int fd;
} conn;

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

static int32_t fake_token(int64_t seed, int k) { return (int32_t)(3 + (seed * 31 + k * 7) % 500); }

static void *serve_conn(void *arg) {
    conn *c = arg;
    char req[1 << 16];
    size_t n = 0;
    char *body = NULL;
    long clen = 0;
    while (n < sizeof req - 1) {
        ssize_t k = recv(c->fd, req + n, sizeof req - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
        req[n] = 0;
        char *hend = strstr(req, "\r\n\r\n");
        if (!hend) continue;
        char *cl = strcasestr(req, "Content-Length:");
        clen = cl ? strtol(cl + 15, NULL, 10) : 0;
        if ((long)(n - (size_t)(hend + 4 - req)) >= clen) {
            body = hend + 4;
            break;
        }
    }
    if (!strncmp(req, "GET /v1/models", 14)) {
        const char *r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                        "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\",\"object\":\"model\"}]}";
        send_all(c->fd, r, strlen(r));
    } else if (!strncmp(req, "POST /v1/completions", 20) && body) {
        json_error_t je;
        json_t *o = json_loadb(body, (size_t)clen, 0, &je);
        int max_tokens = (int)json_integer_value(json_object_get(o, "max_tokens"));
        int64_t seed = json_integer_value(json_object_get(o, "seed"));
        int ids = json_is_true(json_object_get(o, "return_token_ids"));
        int ok = json_is_true(json_object_get(o, "ignore_eos")) && json_is_true(json_object_get(o, "stream")) &&
                 json_integer_value(json_object_get(o, "min_tokens")) == max_tokens;
        pthread_mutex_lock(&c->s->mu);
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)seed);
        json_object_set(c->s->prompts, key, json_object_get(o, "prompt"));
        pthread_mutex_unlock(&c->s->mu);
        if (max_tokens == 7 || !ok) {
            const char *r = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                            "{\"error\":{\"message\":\"test: max_tokens 7 refused\",\"type\":\"invalid_request_error\"}}";
            send_all(c->fd, r, strlen(r));
        } else {
            const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            send_all(c->fd, h, strlen(h));
            char ev[512];
            for (int k = 0; k < max_tokens; k++) {
                int m = snprintf(ev, sizeof ev, "data: {\"choices\":[{\"index\":0,\"text\":\"w%d \",%s%d%s\"finish_reason\":%s}]}\n\n", k,
                                 ids ? "\"token_ids\":[" : "\"x\":", (int)fake_token(seed, k), ids ? "]," : ",",
                                 k == max_tokens - 1 ? "\"length\"" : "null");
                if (send_all(c->fd, ev, (size_t)m)) break;
                usleep(1000);
            }
            int m = snprintf(ev, sizeof ev,
                             "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%zu,\"completion_tokens\":%d,"
                             "\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\ndata: [DONE]\n\n",
                             json_array_size(json_object_get(o, "prompt")), max_tokens);
            send_all(c->fd, ev, (size_t)m);
        }
        json_decref(o);
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *acceptor(void *arg) {
    fake_server *s = arg;
    while (!s->stop) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) continue;
        conn *c = malloc(sizeof *c);
        c->s = s, c->fd = fd;
        if (s->n_workers >= 256 || pthread_create(&s->workers[s->n_workers], NULL, serve_conn, c)) {
            close(fd);
            free(c);
            continue;
        }
        s->n_workers++;
    }
    return NULL;
}

static int server_start(fake_server *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->prompts = json_object();
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t al = sizeof a;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 128) ||
        getsockname(s->fd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->acceptor, NULL, acceptor, s);
}

static void server_stop(fake_server *s) {
    s->stop = 1;
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
    close(s->fd);
    json_decref(s->prompts);
    pthread_mutex_destroy(&s->mu);
}

/* ---- the client against it ---- */

static void test_bench_serve_results(void) {
    fake_server s;
    CU_ASSERT_EQUAL_FATAL(server_start(&s), 0);
    char dir[] = "/tmp/pgd_loadgen_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char ini[1024], path[512], args[2048];
    snprintf(ini, sizeof ini,
             "[experiment]\nname = hb\nseed = 100\n[model]\npath = random:stories260K\n"
             "[workload]\nnum_requests = 12\ninput_len = uniform\ninput_min = 5\ninput_max = 30\n"
             "output_len = uniform\noutput_min = 8\noutput_max = 16\nrate = 200\nconcurrency = 4\n");
    snprintf(path, sizeof path, "%s/hb.ini", dir);
    FILE *f = fopen(path, "w");
    fputs(ini, f);
    fclose(f);
    snprintf(args, sizeof args, "bench serve --url http://127.0.0.1:%d --out %s %s", s.port, dir, path);
    char *out = NULL, *err = NULL;
    int rc = pgd_test_run_cli(args, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n%s\n%s\n", out, err);
    free(out);
    free(err);
    char p2[600];
    snprintf(p2, sizeof p2, "%s/hb/run/complete.json", dir);
    CU_ASSERT_EQUAL(access(p2, R_OK), 0);
    /* the same workload the engine would run: compare lengths per request */
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load(path, &e), PGD_OK);
    pgd_workload *w = NULL;
    int n_sent = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_run_workload_create(pgd_experiment_run(e, 0), 512, 512, NULL, &w, &n_sent), PGD_OK);
    snprintf(p2, sizeof p2, "%s/hb/run/requests.csv", dir);
    char *csv = pgd_test_read_file(p2, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "id,", 3)) {
            CU_ASSERT_PTR_NOT_NULL(strstr(line, ",session,turn,cached_tokens,prefix_hit_rate"));
            continue;
        }
        char *fld[32];
        int nf = 0;
        for (char *q = line; nf < 32;) { /* no quoted fields in completed rows */
            fld[nf++] = q;
            char *comma = strchr(q, ',');
            if (!comma) break;
            *comma = 0;
            q = comma + 1;
        }
        CU_ASSERT_EQUAL_FATAL(nf, 22);
        int id = atoi(fld[0]), np = atoi(fld[6]), no = atoi(fld[7]);
        double arr = atof(fld[2]), first = atof(fld[4]), fin = atof(fld[5]), ttft = atof(fld[8]), e2e = atof(fld[10]);
        CU_ASSERT_STRING_EQUAL(fld[3], "");    /* first_scheduled: the client cannot see it */
        CU_ASSERT_STRING_EQUAL(fld[14], "length");
        CU_ASSERT_STRING_EQUAL(fld[15], "");   /* no error */
        CU_ASSERT_STRING_EQUAL(fld[18], "3");  /* cached_tokens from usage.prompt_tokens_details */
        CU_ASSERT_STRING_EQUAL(fld[20], "0");  /* client: one */
        CU_ASSERT_STRING_EQUAL(fld[21], "0");  /* SLO class: one */
        const pgd_workload_request *r = pgd_workload_get(w, id);
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_EQUAL(np, r->n_prompt);   /* usage.prompt_tokens: the ids sent */
        CU_ASSERT_EQUAL(no, r->output_len); /* exactly the fixed output length */
        CU_ASSERT(ttft > 0 && ttft <= e2e);
        CU_ASSERT(first >= arr && fin >= first);
        rows++;
    }
    CU_ASSERT_EQUAL(rows, 12);
    free(csv);
    snprintf(p2, sizeof p2, "%s/hb/run/summary.json", dir);
    json_error_t je;
    json_t *sum = json_load_file(p2, 0, &je);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sum, "completed")), 12);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(sum, "itl"), "count")),
                    json_integer_value(json_object_get(sum, "total_output_tokens")) - 12);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(sum, "client"), "model")), "fake-model");
    json_decref(sum);
    /* pagoda compare and pagoda plot read it */
    snprintf(args, sizeof args, "compare %s/hb %s/hb", dir, dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "plot %s/hb", dir);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, NULL), 0);
    snprintf(p2, sizeof p2, "%s/hb/plots/ttft_cdf.png", dir);
    CU_ASSERT_EQUAL(access(p2, R_OK), 0);
    pgd_workload_destroy(w);
    pgd_experiment_destroy(e);
    server_stop(&s);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(args), 0);
}

static void test_bench_serve_multi_turn_and_failures(void) {
    fake_server s;
    CU_ASSERT_EQUAL_FATAL(server_start(&s), 0);
    /* two turns: the second prompt = turn 0's message + the server's token ids + the new message */
    pgd_workload_config c = {.turns = 2, .num_requests = 3, .seed = 9, .vocab_size = 512, .max_model_len = 512,
                             .input_len = {.kind = PGD_LEN_FIXED, .mean = 6},
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 5}, .think_time = 0.01};
    pgd_workload *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", s.port);
    pgd_loadgen_config lc = {.url = url, .seed = 1000, .return_token_ids = 1};
    pgd_loadgen_result lr;
    CU_ASSERT_EQUAL_FATAL(pgd_loadgen_run(&lc, w, &lr), PGD_OK);
    CU_ASSERT_STRING_EQUAL(lr.model, "fake-model");
    CU_ASSERT_EQUAL(lr.num_requests, 6);
    CU_ASSERT_EQUAL(lr.failed, 0);
    for (int i = 0; i < 6; i += 2) {
        char k0[32], k1[32];
        snprintf(k0, sizeof k0, "%d", 1000 + i);
        snprintf(k1, sizeof k1, "%d", 1000 + i + 1);
        json_t *p0 = json_object_get(s.prompts, k0), *p1 = json_object_get(s.prompts, k1);
        CU_ASSERT_EQUAL_FATAL(json_array_size(p0), 6);
        CU_ASSERT_EQUAL_FATAL(json_array_size(p1), 6 + 5 + 6);
        for (int j = 0; j < 6; j++) CU_ASSERT(json_equal(json_array_get(p0, j), json_array_get(p1, j)));
        for (int j = 0; j < 5; j++) CU_ASSERT_EQUAL(json_integer_value(json_array_get(p1, 6 + j)), fake_token(1000 + i, j));
        const pgd_workload_request *t1 = pgd_workload_get(w, i + 1);
        for (int j = 0; j < 6; j++) CU_ASSERT_EQUAL(json_integer_value(json_array_get(p1, 11 + j)), t1->prompt[j]);
    }
    for (int64_t i = 0; i < pgd_metrics_num_requests(lr.metrics); i++) {
        const pgd_request_record *r = pgd_metrics_request(lr.metrics, i);
        CU_ASSERT_EQUAL(r->num_turns, 2);
        CU_ASSERT_EQUAL(r->output_tokens, 5);
        CU_ASSERT_EQUAL(r->n_tokens, 5); /* one event per token */
    }
    pgd_loadgen_result_free(&lr);
    pgd_workload_destroy(w);
    /* an HTTP error is the request's failure, with the server's message; the
     * conversation's later turn fails with it, nothing is dropped */
    c.output_len.mean = 7;
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&c, &w), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_loadgen_run(&lc, w, &lr), PGD_OK);
    CU_ASSERT_EQUAL(lr.failed, 6);
    CU_ASSERT_EQUAL(pgd_metrics_num_requests(lr.metrics), 6);
    int http = 0, later = 0;
    for (int64_t i = 0; i < pgd_metrics_num_requests(lr.metrics); i++) {
        const pgd_request_record *r = pgd_metrics_request(lr.metrics, i);
        CU_ASSERT_STRING_EQUAL(r->finish_reason, "error");
        http += r->error && !strcmp(r->error, "HTTP 400: test: max_tokens 7 refused");
        later += r->error && strstr(r->error, "earlier turn") != NULL;
    }
    CU_ASSERT_EQUAL(http, 3);
    CU_ASSERT_EQUAL(later, 3);
    pgd_loadgen_result_free(&lr);
    server_stop(&s);
    /* connection refused: recorded per request, and the probe says it in one line */
    lc.model = "m";
    CU_ASSERT_EQUAL_FATAL(pgd_loadgen_run(&lc, w, &lr), PGD_OK);
    CU_ASSERT_EQUAL(lr.failed, 6);
    const pgd_request_record *r0 = pgd_metrics_request(lr.metrics, 0);
    CU_ASSERT_PTR_NOT_NULL(r0->error && strstr(r0->error, "onnect"));
    pgd_loadgen_result_free(&lr);
    char model[64];
    CU_ASSERT_EQUAL(pgd_loadgen_probe(url, 2, model, sizeof model), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "cannot reach"));
    CU_ASSERT_PTR_NULL(strchr(pgd_last_error(), '\n'));
    char args[256], *err = NULL;
    snprintf(args, sizeof args, "bench serve --url %s experiments/quickstart.ini", url);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "pagoda bench serve: cannot reach"));
    free(err);
    pgd_workload_destroy(w);
}

/* Field `col` (0-based) of a requests.csv line (no quoted fields before it), into out. */
static void csv_field(const char *line, int col, char *out, size_t n) {
    for (int c = 0; c < col && line; c++) {
        line = strchr(line, ',');
        if (line) line++;
    }
    size_t k = 0;
    while (line && line[k] && line[k] != ',' && k + 1 < n) out[k] = line[k], k++;
    out[k] = 0;
}

/* prompt_tokens of (session, turn) rows: pt[session][turn]; returns rows read. */
static int read_turn_prompts(const char *path, int pt[8][2], int *out_ok) {
    char *csv = pgd_test_read_file(path, NULL);
    if (!csv) return 0;
    int rows = 0, ok = 1;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "id,", 3)) continue;
        char f[64];
        csv_field(line, 16, f, sizeof f);
        int sess = atoi(f);
        csv_field(line, 17, f, sizeof f);
        int turn = atoi(f);
        csv_field(line, 6, f, sizeof f);
        if (sess >= 0 && sess < 8 && turn >= 0 && turn < 2) pt[sess][turn] = atoi(f);
        csv_field(line, 7, f, sizeof f);
        ok &= atoi(f) == 16;
        csv_field(line, 14, f, sizeof f);
        ok &= !strcmp(f, "length");
        char t1[64], t2[64];
        csv_field(line, 8, t1, sizeof t1);
        csv_field(line, 10, t2, sizeof t2);
        ok &= atof(t1) > 0 && atof(t1) <= atof(t2);
        rows++;
    }
    free(csv);
    *out_ok = ok;
    return rows;
}

/* The real `pagoda serve` (a child on --port 0) against `pagoda bench serve`,
 * MT-bench conversations over HTTP with the server's token ids as history:
 * every turn completes with the asked-for tokens, TTFT <= E2E, and each
 * turn's prompt has the length the in-process run gives it (history of the
 * same greedy outputs). */
static void test_bench_serve_real_server(void) {
    int pid = -1;
    int port = pgd_test_serve_child("models/stories260K/stories260K.bin", "models/stories260K/tok512.bin",
                                    (const char *const[]){"--threads", "1", "--prefix-caching", "on", NULL}, &pid);
    CU_ASSERT_FATAL(port > 0);
    char dir[] = "/tmp/pgd_loadgen_real_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char ini[4096], path[512], args[2048], p2[600];
    char mpath[1024], tpath[1024], dpath[1024];
    snprintf(mpath, sizeof mpath, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    snprintf(tpath, sizeof tpath, "%s", pgd_test_data("models/stories260K/tok512.bin"));
    snprintf(dpath, sizeof dpath, "%s", pgd_test_data("traces/mtbench_questions.jsonl"));
    snprintf(ini, sizeof ini,
             "[experiment]\nname = mt\nseed = 4\n[model]\npath = %s\ntokenizer = %s\nthreads = 1\n"
             "[engine]\nprefix_caching = on\n"
             "[workload]\nsource = dataset\npath = %s\nnum_requests = 6\nturns = -1\nthink_time = 0.01\n"
             "override_output_len = on\noutput_len = fixed\noutput_mean = 16\nrate = 50\n",
             mpath, tpath, dpath);
    snprintf(path, sizeof path, "%s/mt.ini", dir);
    FILE *cf = fopen(path, "w");
    fputs(ini, cf);
    fclose(cf);
    snprintf(args, sizeof args, "bench serve --token-ids --url http://127.0.0.1:%d --out %s/http %s", port, dir, path);
    char *out = NULL, *err = NULL;
    int rc = pgd_test_run_cli(args, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n%s\n%s\n", out, err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "run --quiet --output-dir %s/eng %s", dir, path);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, NULL), 0);
    int ph[8][2] = {{0}}, pe[8][2] = {{0}}, okh = 0, oke = 0;
    snprintf(p2, sizeof p2, "%s/http/mt/run/requests.csv", dir);
    CU_ASSERT_EQUAL(read_turn_prompts(p2, ph, &okh), 12);
    snprintf(p2, sizeof p2, "%s/eng/mt/run/requests.csv", dir);
    CU_ASSERT_EQUAL(read_turn_prompts(p2, pe, &oke), 12);
    CU_ASSERT(okh && oke);
    for (int s = 0; s < 6; s++) {
        CU_ASSERT(ph[s][0] > 1 && ph[s][1] > ph[s][0] + 16);
        CU_ASSERT_EQUAL(ph[s][0], pe[s][0]);
        CU_ASSERT_EQUAL(ph[s][1], pe[s][1]);
    }
    kill(pid, SIGTERM);
    CU_ASSERT_EQUAL(pgd_test_wait_child(pid), 0); /* under ASan: nothing leaked either */
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(args), 0);
}

static CU_TestInfo tests[] = {
    {"synthetic conversations: order, history, cut", test_synthetic_turns},
    {"ShareGPT every turn, MT-bench two turns", test_sharegpt_every_turn},
    {"config keys turns/think_time/max_history", test_config_keys},
    {"in process: every turn, think time, history in the cache", test_in_process_sessions},
    {"bench serve: results files vs the workload", test_bench_serve_results},
    {"bench serve: multi-turn history, failures, no server", test_bench_serve_multi_turn_and_failures},
    {"bench serve against pagoda serve: MT-bench over HTTP", test_bench_serve_real_server},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "loadgen", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
