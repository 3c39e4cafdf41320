/* gen_opts.h - options of `pagoda generate`, parsed and validated before
 * anything is loaded. */
#ifndef PAGODA_CLI_GEN_OPTS_H
#define PAGODA_CLI_GEN_OPTS_H

#include "pagoda/engine.h"
#include "pagoda/model.h"

enum { PGD_OUT_TEXT = 0, PGD_OUT_JSON, PGD_OUT_JSONL };

typedef struct pgd_gen_opts {
    const char *model, *tokenizer;
    char **prompts; /* owned copies */
    int num_prompts;
    int max_tokens, threads, n, beam_width, output;
    const char *kv_dtype; /* --kv-dtype (NULL = the backend's default) */
    int async;                 /* --async: one more batch in flight */
    pgd_sampling_params sampling;
    pgd_engine_config engine;
    pgd_parallel_config par;
    int chat;                  /* --chat: each prompt is one user message of a chat */
    const char *chat_template; /* --chat-template NAME (NULL = the model's, else "none") */
    /* `pagoda serve` only (pgd_gen_opts_parse_serve): */
    int serve;
    const char *host;          /* --host (default 127.0.0.1) */
    int port;                  /* --port (default 8000; 0 = any free port) */
    int max_queue;             /* --max-queue: requests accepted and not finished */
    const char *served_model_name;
} pgd_gen_opts;

/* Returns -1 when generation should run, else the exit code (0 after
 * --help, 2 after a bad option: one error line naming the option). */
int pgd_gen_opts_parse(int argc, char **argv, pgd_gen_opts *o);
/* The same options for `pagoda serve`: no prompts; adds --host, --port,
 * --max-queue, --served-model-name; --max-tokens, --temperature, ... are
 * rejected (they are per request). */
int pgd_gen_opts_parse_serve(int argc, char **argv, pgd_gen_opts *o);
void pgd_gen_opts_free(pgd_gen_opts *o);

#endif
