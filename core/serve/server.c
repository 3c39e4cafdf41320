/* server.c - the HTTP side of `pagoda serve` (libmicrohttpd, a thread per
 * connection): routing, the request body (capped: a larger one is read and
 * dropped, then answered 413), JSON errors, and the waits for a request's
 * tokens. A non-streamed request waits for its end; a streamed one is a
 * chunked response whose reader callback waits for new tokens and writes
 * server-sent events. While waiting, a thread checks every 100 ms whether
 * its client is still connected (a peek at the socket); when it is gone,
 * or the stream's write fails, the request is marked abandoned and the
 * engine thread aborts it, which frees its KV blocks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve_impl.h"
#include "util/json_text.h"

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_big;
    srv_req *req;    /* a streamed request, until its response is freed */
} conn;

typedef struct stream {
    pgd_server *s;
    srv_req *r;
    struct MHD_Connection *c;
    char *buf;
    size_t len, cap, pos;
    int done;
} stream;

static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t k = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void timed_wait(pgd_server *s, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->out_cv, &s->mu, &ts);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text, const char *ctype) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *o) {
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!js) js = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    if (!js) return MHD_NO;
    return send_text(c, status, js, "application/json");
}

static enum MHD_Result send_error(pgd_server *s, struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *type, const char *param, const char *code) {
    if (status >= 400 && status < 500) {
        pthread_mutex_lock(&s->mu);
        s->m.bad_requests++;
        pthread_mutex_unlock(&s->mu);
    }
    return send_json(c, status, srv_error_json(msg, type, param, code));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    stream *st = cls;
    pgd_server *s = st->s;
    while (st->pos == st->len) {
        if (st->done) return MHD_CONTENT_READER_END_OF_STREAM;
        st->pos = st->len = 0;
        pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->stopping && !st->r->finished) {
                pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            int ok = srv_stream_chunks(s, st->r, &st->buf, &st->len, &st->cap, &st->done);
            if (!ok) {
                pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (st->len || st->done) break;
            if (client_gone(st->c)) {
                pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            timed_wait(s, 100);
        }
        pthread_mutex_unlock(&s->mu);
        if (st->done && st->len + 16 <= st->cap) {
            memcpy(st->buf + st->len, "data: [DONE]\n\n", 14);
            st->len += 14;
        } else if (st->done) {
            char *nb = realloc(st->buf, st->len + 16);
            if (!nb) return MHD_CONTENT_READER_END_WITH_ERROR;
            st->buf = nb;
            st->cap = st->len + 16;
            memcpy(st->buf + st->len, "data: [DONE]\n\n", 14);
            st->len += 14;
        }
    }
    size_t k = st->len - st->pos < max ? st->len - st->pos : max;
    memcpy(out, st->buf + st->pos, k);
    st->pos += k;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    stream *st = cls;
    pgd_server *s = st->s;
    pthread_mutex_lock(&s->mu);
    if (!st->r->finished) {
        st->r->abandoned = 1;
        pthread_cond_signal(&s->work_cv);
    }
    srv_req_unref_locked(st->r);
    pthread_mutex_unlock(&s->mu);
    free(st->buf);
    free(st);
}

static enum MHD_Result handle_generate(pgd_server *s, struct MHD_Connection *c, conn *cn, int chat) {
    double received = pgd_engine_now(s->eng); /* the real clock: safe from any thread */
    json_error_t je;
    json_t *body = json_loadb(cn->body ? cn->body : "", cn->len, JSON_REJECT_DUPLICATES, &je);
    if (!body) {
        char msg[400];
        snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                 je.column);
        return send_error(s, c, 400, msg, "invalid_request_error", NULL, "invalid_json");
    }
    srv_req *r = srv_req_new();
    if (!r) {
        json_decref(body);
        return send_error(s, c, 500, "out of memory", "server_error", NULL, NULL);
    }
    json_t *err = NULL;
    int st = srv_parse_request(s, body, chat, r, &err);
    json_decref(body);
    if (st) {
        srv_req_free(r);
        pthread_mutex_lock(&s->mu);
        s->m.bad_requests++;
        pthread_mutex_unlock(&s->mu);
        return send_json(c, (unsigned)st, err);
    }
    r->created = (long long)time(NULL);
    r->params.arrival_time = received > 0 ? received : 1e-9; /* latencies count from the body's arrival */
    if (!srv_submit(s, r)) {
        srv_req_free(r);
        return send_error(s, c, 503, "the server is busy (its request queue is full) or shutting down; retry later",
                          "server_error", NULL, "server_overloaded");
    }
    /* wait for the engine thread to take it: a request the engine refuses
     * is a 400, also when streamed (nothing is sent before) */
    pthread_mutex_lock(&s->mu);
    while (r->state == SRV_QUEUED && !s->stopping) timed_wait(s, 100);
    int refused = r->rejected;
    pthread_mutex_unlock(&s->mu);
    if (refused) {
        enum MHD_Result ret = send_error(s, c, 400, r->error ? r->error : "the engine refused the request",
                                         "invalid_request_error", NULL, "engine_rejected");
        pthread_mutex_lock(&s->mu);
        srv_req_unref_locked(r);
        pthread_mutex_unlock(&s->mu);
        return ret;
    }
    if (r->stream) {
        stream *sm = calloc(1, sizeof *sm);
        struct MHD_Response *resp = sm ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sm,
                                                                         stream_free) : NULL;
        if (!resp) {
            pthread_mutex_lock(&s->mu);
            r->abandoned = 1;
            pthread_cond_signal(&s->work_cv);
            srv_req_unref_locked(r);
            pthread_mutex_unlock(&s->mu);
            free(sm);
            return MHD_NO;
        }
        *sm = (stream){.s = s, .r = r, .c = c};
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    pthread_mutex_lock(&s->mu);
    while (!r->finished) {
        if (s->stopping || client_gone(c)) {
            r->abandoned = 1;
            pthread_cond_signal(&s->work_cv);
            srv_req_unref_locked(r);
            pthread_mutex_unlock(&s->mu);
            return MHD_NO;
        }
        timed_wait(s, 100);
    }
    pthread_mutex_unlock(&s->mu);
    /* finished: the engine thread no longer touches r */
    enum MHD_Result ret;
    if (!strcmp(r->finish_reason, "error"))
        ret = send_error(s, c, 500, r->error ? r->error : "the engine failed", "server_error", NULL, "engine_error");
    else ret = send_json(c, 200, srv_response_json(s, r));
    pthread_mutex_lock(&s->mu);
    srv_req_unref_locked(r);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    pgd_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t k = *upload_size;
        *upload_size = 0;
        if (cn->too_big || cn->len + k > s->cfg.max_body_bytes) {
            cn->too_big = 1;
            return MHD_YES;
        }
        if (cn->len + k + 1 > cn->cap) {
            size_t cap = (cn->len + k + 1) * 2;
            if (cap > s->cfg.max_body_bytes + 1) cap = s->cfg.max_body_bytes + 1;
            char *nb = realloc(cn->body, cap);
            if (!nb) return MHD_NO;
            cn->body = nb;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload, k);
        cn->len += k;
        cn->body[cn->len] = 0;
        return MHD_YES;
    }
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_cmpl = !strcmp(url, "/v1/completions"), is_chat = !strcmp(url, "/v1/chat/completions");
    if (is_cmpl || is_chat) {
        if (!post) return send_error(s, c, 405, "use POST", "invalid_request_error", NULL, "method_not_allowed");
        if (cn->too_big) {
            char msg[200];
            snprintf(msg, sizeof msg, "the request body is larger than this server's limit of %zu bytes",
                     s->cfg.max_body_bytes);
            return send_error(s, c, 413, msg, "invalid_request_error", NULL, "request_too_large");
        }
        return handle_generate(s, c, cn, is_chat);
    }
    int known = !strcmp(url, "/v1/models") || !strcmp(url, "/health") || !strcmp(url, "/metrics");
    if (known && !get) return send_error(s, c, 405, "use GET", "invalid_request_error", NULL, "method_not_allowed");
    if (!strcmp(url, "/health")) return send_text(c, 200, strdup(""), "text/plain");
    if (!strcmp(url, "/v1/models")) {
        json_t *m = json_pack("{s:o, s:s, s:I, s:s, s:i}", "id", pgd_json_text(s->model_name), "object", "model",
                              "created", (json_int_t)s->started, "owned_by", "pagoda", "max_model_len",
                              s->cfg.context_len);
        return send_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
    }
    if (!strcmp(url, "/metrics")) {
        pthread_mutex_lock(&s->mu);
        char *t = srv_metrics_text(s);
        pthread_mutex_unlock(&s->mu);
        if (!t) return send_error(s, c, 500, "out of memory", "server_error", NULL, NULL);
        return send_text(c, 200, t, "text/plain; version=0.0.4; charset=utf-8");
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no such endpoint: %s %.200s", method, url);
    return send_error(s, c, 404, msg, "invalid_request_error", NULL, "not_found");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

pgd_status pgd_server_create(const pgd_server_config *cfg, pgd_engine *eng, const pgd_tokenizer *tok,
                             pgd_server **out) {
    *out = NULL;
    if (!cfg || !eng || !tok || !cfg->model_name || !*cfg->model_name || cfg->context_len < 2 || cfg->vocab_size < 1)
        return pgd_error(PGD_ERR_INVALID, "serve: bad configuration (engine, tokenizer, model name, context, vocab)");
    if (cfg->port < 0 || cfg->port > 65535) return pgd_error(PGD_ERR_INVALID, "serve: port %d out of range", cfg->port);
    pgd_server *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "serve: out of memory");
    s->cfg = *cfg;
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.max_queue <= 0) s->cfg.max_queue = 1024;
    if (!s->cfg.max_body_bytes) s->cfg.max_body_bytes = 4u << 20;
    if (s->cfg.max_n <= 0) s->cfg.max_n = 64;
    if (!s->cfg.chat_template) s->cfg.chat_template = pgd_chat_template_find("none");
    s->model_name = strdup(cfg->model_name);
    s->eng = eng;
    s->tok = tok;
    s->started = (long long)time(NULL);
    const pgd_engine_config *ec = pgd_engine_get_config(eng);
    srv_metrics_init(&s->m, ec && ec->block_size > 0 ? ec->block_size : 16);
    pgd_engine_get_stats(eng, &s->m.stats);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->out_cv, NULL);
    const char *host = s->cfg.host;
    s->cfg.host = NULL; /* borrowed pointers are not kept */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        pgd_server_destroy(s);
        return pgd_error(PGD_ERR_INVALID, "serve: cannot resolve host '%s': %s", host, gai_strerror(gai));
    }
    if (!s->model_name) {
        freeaddrinfo(ai);
        pgd_server_destroy(s);
        return pgd_error(PGD_ERR_OOM, "serve: out of memory");
    }
    if (pthread_create(&s->engine_thread, NULL, srv_engine_main, s) != 0) {
        freeaddrinfo(ai);
        pgd_server_destroy(s);
        return pgd_error(PGD_ERR_OOM, "serve: cannot start the engine thread");
    }
    s->engine_started = 1;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)0, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        int e = errno;
        pgd_server_destroy(s);
        return pgd_error(PGD_ERR_IO, "serve: cannot listen on %s port %d: %s", host, cfg->port,
                         e ? strerror(e) : "libmicrohttpd could not start");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return PGD_OK;
}

int pgd_server_port(const pgd_server *s) { return s ? s->port : 0; }

void pgd_server_destroy(pgd_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->out_cv);
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->daemon) {
        MHD_quiesce_daemon(s->daemon);
        MHD_stop_daemon(s->daemon); /* joins the connection threads: they see stopping */
    }
    if (s->engine_started) {
        /* the engine thread aborts what is left, steps until it has landed, then exits */
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->engine_thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->out_cv);
    free(s->model_name);
    free(s);
}
