/* serve.c - `pagoda serve`: load a model as `pagoda generate` does, start
 * the OpenAI-compatible HTTP server (pagoda/serve.h) and serve until
 * SIGINT or SIGTERM, then stop cleanly (open streams end, requests are
 * aborted, threads joined). Prints one line "pagoda serve: listening on
 * http://HOST:PORT ..." on stdout once it accepts connections (with
 * --port 0 the port chosen). Options are checked before anything loads. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen_opts.h"
#include "pagoda/chat.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/serve.h"

int pgd_cmd_serve(int argc, char **argv) {
    pgd_gen_opts o;
    int rc = pgd_gen_opts_parse_serve(argc, argv, &o);
    if (rc >= 0) return rc;
    rc = 1;
    pgd_gen_model gm = {0};
    pgd_engine *eng = NULL;
    pgd_server *srv = NULL;
    /* the signals are taken by sigwait below: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = pgd_gen_model_open(&o, &gm)) >= 0) goto done;
    rc = 1;
    pgd_exec *ex = gm.ex;
    const pgd_model_config *c = gm.config;
    const pgd_tokenizer *tok = gm.tok;
    const pgd_chat_template *tmpl = NULL;
    if (o.chat_template) tmpl = pgd_chat_template_find(o.chat_template);
    else if (pgd_chat_template_for_model(o.model, &tmpl) != PGD_OK) { rc = pgd_cli_fail("chat template"); goto done; }
    if (pgd_engine_create(&o.engine, ex, tok, &eng) != PGD_OK) { rc = pgd_cli_fail("engine"); goto done; }
    const char *name = o.served_model_name;
    if (!name) {
        const char *slash = strrchr(o.model, '/');
        name = slash && slash[1] ? slash + 1 : o.model;
    }
    pgd_server_config sc = {.host = o.host, .port = o.port, .max_queue = o.max_queue, .model_name = name,
                            .chat_template = tmpl, .context_len = c->max_seq_len, .vocab_size = c->vocab_size};
    if (pgd_server_create(&sc, eng, tok, &srv) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    int v6 = strchr(o.host, ':') != NULL;
    printf("pagoda serve: listening on http://%s%s%s:%d (model '%s', context %d, chat template %s, on %s)\n",
           v6 ? "[" : "", o.host, v6 ? "]" : "", pgd_server_port(srv), name, c->max_seq_len,
           pgd_chat_template_name(tmpl), pgd_exec_describe(ex));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "pagoda serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
done:
    pgd_server_destroy(srv);
    pgd_engine_destroy(eng);
    pgd_gen_model_close(&gm);
    pgd_gen_opts_free(&o);
    return rc;
}
