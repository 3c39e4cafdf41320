/* gen_opts.h - options of `pagoda generate`, parsed and validated before
 * anything is loaded. */
#ifndef PAGODA_CLI_GEN_OPTS_H
#define PAGODA_CLI_GEN_OPTS_H

#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/model.h"

enum { PGD_OUT_TEXT = 0, PGD_OUT_JSON, PGD_OUT_JSONL };

typedef struct pgd_gen_opts {
    const char *model, *tokenizer;
    char **prompts; /* owned copies */
    int num_prompts;
    int max_tokens, threads, n, beam_width, output;
    const char *kv_dtype; /* --kv-dtype (NULL = the backend's default) */
    int async;                 /* --async: one more batch in flight */
    int stdin_used;            /* --prompt - or --prompts-file - read standard input */
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

/* What `pagoda generate` and `pagoda serve` run on: the executor of the
 * options' model, parallel layout and cpu backend, and the tokenizer (the
 * model's own, or the --tokenizer file's). */
typedef struct pgd_gen_model {
    pgd_exec *ex;
    const pgd_model_config *config; /* the driver's model (NULL on other ranks) */
    const pgd_tokenizer *tok;       /* what to tokenize with (NULL on other ranks) */
    pgd_tokenizer *own_tok;         /* --tokenizer's, else NULL */
} pgd_gen_model;
/* Open what o names into *m (zeroed first). Returns -1 when this process
 * is the driver and the command goes on; else the exit code: 0 after an
 * mpirun rank other than 0 served its driver's commands, 1 after a
 * failure (its message printed, naming the command). Close *m either way. */
int pgd_gen_model_open(const pgd_gen_opts *o, pgd_gen_model *m);
/* Free what pgd_gen_model_open opened (after the engine that borrows it)
 * and finalize MPI where it was initialized. */
void pgd_gen_model_close(pgd_gen_model *m);

#endif
