/* serve.h - an OpenAI-compatible HTTP server over one engine.
 *
 * The server borrows an engine and runs it on a thread of its own: HTTP
 * threads (libmicrohttpd, one per connection) parse and validate a request,
 * hand it to the engine thread through a bounded queue and wait for its
 * tokens; only the engine thread calls the engine. Endpoints:
 * POST /v1/completions, POST /v1/chat/completions (stream: true gives
 * server-sent events), GET /v1/models, /health and /metrics (Prometheus
 * text, vLLM's metric names where the meaning is the same). Every bad
 * request gets a 4xx with an OpenAI-style error object and touches nothing
 * else; a client that disconnects has its request aborted and its KV blocks
 * freed. See README.md ("Serving over HTTP") for the request fields. */
#ifndef PAGODA_SERVE_H
#define PAGODA_SERVE_H

#include <stddef.h>

#include "pagoda/chat.h"
#include "pagoda/engine.h"
#include "pagoda/tokenizer.h"

typedef struct pgd_server pgd_server;

typedef struct pgd_server_config {
    const char *host;          /* address to bind; NULL = "127.0.0.1" */
    int port;                  /* 0 = any free port (pgd_server_port says which) */
    int max_queue;             /* requests accepted and not finished; more get 503; 0 = 1024 */
    size_t max_body_bytes;     /* larger request bodies get 413; 0 = 4 MiB */
    int max_n;                 /* largest n a request may ask for; 0 = 64 */
    const char *model_name;    /* the name clients send and /v1/models lists (copied) */
    const pgd_chat_template *chat_template; /* NULL = "none" */
    int context_len;           /* the model's context: prompt + max_tokens must fit */
    int vocab_size;            /* token ids in prompts must be below it */
} pgd_server_config;

/* Start serving: binds, starts the engine thread and the HTTP threads.
 * eng and tok are borrowed and must outlive the server; eng must have no
 * requests of its own and run on the real clock (engine config clock NULL:
 * HTTP threads read it to stamp a request's arrival, so TTFT and E2E in
 * /metrics count from when its body was received). */
pgd_status pgd_server_create(const pgd_server_config *cfg, pgd_engine *eng, const pgd_tokenizer *tok,
                             pgd_server **out);
/* The TCP port it listens on. */
int pgd_server_port(const pgd_server *s);
/* Stop: no new connections, open streams end, requests in the engine are
 * aborted and released, threads joined. NULL is a no-op. */
void pgd_server_destroy(pgd_server *s);

#endif
