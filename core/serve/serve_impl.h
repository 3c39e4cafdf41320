/* serve_impl.h - internals of the HTTP server (core/serve): the request
 * object shared by an HTTP thread and the engine thread, the server state,
 * and the functions each file gives the others.
 *
 * Locking: one mutex (pgd_server.mu) guards every field marked "shared",
 * the lists and the metrics. The engine thread holds it except while it
 * runs pgd_engine_step(); HTTP threads hold it only to hand over a request
 * and to copy out new tokens. Requests are reference counted (the HTTP
 * side holds one reference, the engine thread one while the request is
 * queued or in the engine); the last unref frees. */
#ifndef PAGODA_SERVE_IMPL_H
#define PAGODA_SERVE_IMPL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "pagoda/serve.h"

enum { SRV_QUEUED = 0, SRV_ACTIVE, SRV_DONE };

typedef struct srv_seq {
    int32_t *tokens;          /* shared: generated tokens */
    int n, cap;
    char *text;               /* shared: their decoded text (BOS/EOS not printed) */
    size_t len, tcap;
    int32_t prev;             /* engine thread: the token before the next */
    const char *finish_reason; /* shared: "stop"/"length"/"abort" once done (static) */
    /* HTTP thread only: how much of it the client has been sent */
    int sent_tokens;
    size_t sent_text;
    int sent_role, sent_final;
} srv_seq;

typedef struct srv_req {
    /* set before hand-over, then read-only */
    int32_t *prompt;
    int n_prompt;
    pgd_request_params params;
    char **stops;
    int n_stops;
    size_t max_stop_len;
    int n, chat, stream, include_usage, return_token_ids;
    char id[48];
    long long created;
    /* shared */
    int refs;
    int state;                /* SRV_QUEUED, SRV_ACTIVE, SRV_DONE */
    int64_t eng_id;
    int abandoned;            /* the client went away: abort */
    int aborted;              /* the engine was told */
    int finished;
    int rejected;             /* the engine refused it (add_request failed): a 400 */
    const char *finish_reason; /* the request's ("stop", "length", "abort", "error") */
    int cached_tokens;        /* prompt tokens the prefix cache served (usage.prompt_tokens_details) */
    char *error;              /* when the engine refused or failed it */
    srv_seq *seqs;
    struct srv_req *next;     /* in the queue or the active list */
} srv_req;

/* A Prometheus histogram: cumulative counts per upper bound, plus sum and count. */
typedef struct srv_hist {
    const double *bounds;
    int nb;
    uint64_t counts[32];      /* per bucket, not cumulative (+Inf is counts[nb]) */
    double sum;
    uint64_t count;
} srv_hist;

typedef struct srv_metrics {
    pgd_engine_stats stats;   /* the engine's, after the latest step */
    int block_size;
    uint64_t prompt_tokens, generation_tokens;
    uint64_t finished_stop, finished_length, finished_abort, finished_error;
    uint64_t rejected_full, bad_requests;
    srv_hist ttft, itl, e2e, queue;
} srv_metrics;

struct pgd_server {
    pgd_server_config cfg;
    char *model_name;
    pgd_engine *eng;
    const pgd_tokenizer *tok;
    struct MHD_Daemon *daemon;
    int port;
    long long started;        /* unix time */

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* the engine thread waits here for work */
    pthread_cond_t out_cv;    /* HTTP threads wait here for tokens (broadcast) */
    pthread_t engine_thread;
    int engine_started;
    int stopping;             /* shared */
    srv_req *queue_head, *queue_tail; /* shared: handed over, not yet in the engine */
    srv_req *active;          /* engine thread: in the engine */
    int in_flight;            /* shared: queued + active (bounded by max_queue) */
    uint64_t next_id;         /* shared */
    srv_metrics m;            /* shared */
};

/* serve_engine.c */
void *srv_engine_main(void *arg);
void srv_req_unref_locked(srv_req *r);
/* Queue r (one reference moves to the engine side); 0 when the queue is full. */
int srv_submit(pgd_server *s, srv_req *r);

/* serve_api.c: parse and validate a request body into r (prompt, params,
 * flags). On failure returns the HTTP status and sets *err to an error object. */
int srv_parse_request(pgd_server *s, json_t *body, int chat, srv_req *r, json_t **err);
json_t *srv_error_json(const char *message, const char *type, const char *param, const char *code);
srv_req *srv_req_new(void);
void srv_req_free(srv_req *r);
/* Text of seq q ready to send: [q->sent_text, *end); final when the
 * request is finished (stop strings cut). */
size_t srv_seq_sendable(const srv_req *r, const srv_seq *q, int final);
/* The whole response of a finished, non-streamed request. */
json_t *srv_response_json(pgd_server *s, srv_req *r);
/* The SSE data lines for what is new in r since the last call (appended to
 * *buf/len/cap, malloc'd); sets *done once the stream is complete. */
int srv_stream_chunks(pgd_server *s, srv_req *r, char **buf, size_t *len, size_t *cap, int *done);

/* serve_metrics.c */
void srv_metrics_init(srv_metrics *m, int block_size);
void srv_hist_observe(srv_hist *h, double v);
char *srv_metrics_text(pgd_server *s); /* malloc'd; call with mu held */

#endif
