/* gen_opts.c - command-line options of `pagoda generate`: every value is
 * checked here (numbers, choices, sizes) with a one-line error naming the
 * option and the value, so nothing is loaded for a typo. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen_opts.h"
#include "pagoda/chat.h"
#include "pagoda/comm.h"
#include "pagoda/kv_manager.h"
#include "pagoda/scheduler.h"
#include "par_opts.h"
#include "util/suggest.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: pagoda generate --model PATH|random:SHAPE [--tokenizer PATH]\n"
        "                       (--prompt TEXT)... | --prompts-file PATH\n"
        "                       [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
        "                       [--n N | --beam-width K] [--output text|json|jsonl] [--threads N]\n"
        "                       [--block-size B] [--num-blocks N | --kv-memory SIZE] [--swap-blocks N] [--kv-dtype T]\n"
        "                       [--max-batched-tokens N] [--max-num-seqs N] [--policy NAME]\n"
        "                       [--kv-manager NAME]\n"
        "                       [--preemption recompute|swap] [--chunked-prefill on|off]\n"
        "                       [--prefix-caching on|off] [--tp N] [--pp M] [--comm threads|mpi|nccl]\n"
        "                       [--stage-layers A,B,..] [--pin] [--chat] [--chat-template NAME]\n"
        "\n"
        "  --model        llama2.c checkpoint, GGUF file (detected from the file), Hugging Face\n"
        "                 checkpoint directory (config.json + *.safetensors), or random:<shape>\n"
        "                 (e.g. random:stories110M, random:smollm2-135m) for seeded random weights\n"
        "  --tokenizer    llama2.c tokenizer.bin or HF tokenizer.json (GGUF files, checkpoint\n"
        "                 directories with a tokenizer.json and random:smollm2-135m carry their own)\n"
        "  --prompt       repeatable; all prompts run together through the engine ('-': all of\n"
        "                 standard input is one prompt)\n"
        "  --prompts-file one prompt per line (blank lines are skipped), after any --prompt ('-':\n"
        "                 standard input)\n"
        "  --max-tokens   tokens to generate per sequence (default 256)\n"
        "  --temperature  0 = greedy (default 0); --top-k 0 and --top-p 1 disable those filters\n"
        "  --n            parallel samples per prompt (seeds seed, seed+1, ...)\n"
        "  --beam-width   beam search of width K (needs a KV manager that can fork: paged)\n"
        "  --output       text (default; streamed for one prompt), json (one object, or an array\n"
        "                 for several prompts), jsonl (one object per prompt, in input order)\n"
        "  --kv-memory    KV cache size, e.g. 64M or 2G (instead of --num-blocks)\n"
        "  --kv-dtype     KV cache element type: f32 (default), f16 or bf16 (half the bytes: twice\n"
        "                 the blocks in --kv-memory, half the attention reads; values rounded), q8\n"
        "                 (int8 + an f32 scale per token and head: head_dim + 4 bytes a row)\n"
        "  --prefill-chunk N  same as --chunked-prefill on --max-batched-tokens N\n"
        "  --chat         each prompt is one user message, rendered by the chat template\n"
        "  --chat-template none|llama-2|llama-3|chatml (default: the model's GGUF template, else "
        "none)\n" PGD_PAR_USAGE);
    char names[512];
    fprintf(f, "  --policy       scheduling policy (default fcfs): %s\n",
            pgd_names_join(pgd_policy_names(), ", ", names, sizeof names));
    fprintf(f, "  --kv-manager   KV cache manager (default paged): %s\n",
            pgd_names_join(pgd_kv_manager_names(), ", ", names, sizeof names));
}

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: pagoda serve --model PATH|random:SHAPE [--tokenizer PATH] [--host ADDR] [--port N]\n"
            "                    [--max-queue N] [--served-model-name NAME] [--chat-template NAME]\n"
            "                    [--threads N] [--block-size B] [--num-blocks N | --kv-memory SIZE]\n"
            "                    [--swap-blocks N] [--kv-dtype T] [--max-batched-tokens N] [--max-num-seqs N]\n"
            "                    [--policy NAME] [--kv-manager KIND] [--preemption recompute|swap]\n"
            "                    [--chunked-prefill on|off] [--prefix-caching on|off] [--tp N] [--pp M] ...\n"
            "\n"
            "An OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (stream: true\n"
            "as server-sent events), /v1/models, /health, /metrics (Prometheus text).\n"
            "  --host         address to bind (default 127.0.0.1: this machine only)\n"
            "  --port         TCP port (default 8000; 0 = a free port, printed on stdout)\n"
            "  --max-queue    requests accepted and not yet finished; more get 503 (default 1024)\n"
            "  --served-model-name  the model name clients send and /v1/models lists\n"
            "                 (default: the --model file's name)\n"
            "  --chat-template none|llama-2|llama-3|chatml (default: the model's GGUF template, else none)\n"
            "Engine options are those of `pagoda generate` (see pagoda generate --help).\n"
            "Sampling and length are per request (the JSON body), not options.\n");
}

static int parse_onoff(const char *opt, const char *v, int *out) {
    if (!strcmp(v, "on")) *out = 1;
    else if (!strcmp(v, "off")) *out = 0;
    else {
        fprintf(stderr, "pagoda: %s must be 'on' or 'off' (got '%s')\n", opt, v);
        return 0;
    }
    return 1;
}

static int parse_size(const char *opt, const char *v, size_t *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (errno || end == v || *end || !(x > 0) || x * mul > 1e15) {
        fprintf(stderr, "pagoda: %s must be a positive size like 64M or 2G (got '%s')\n", opt, v);
        return 0;
    }
    *out = (size_t)(x * mul);
    return 1;
}

static int add_prompt(pgd_gen_opts *o, const char *p);

/* --prompt -: all of standard input is one prompt (its last newline dropped). */
static int stdin_prompt(pgd_gen_opts *o) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, got, m);
    int err = ferror(stdin);
    fclose(m);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
    if (err || len == 0) {
        fprintf(stderr, "pagoda: --prompt -: %s\n", err ? "cannot read standard input" : "standard input is empty");
        free(text);
        return 0;
    }
    if (strlen(text) != len) {
        fprintf(stderr, "pagoda: --prompt -: standard input holds a NUL byte (not text?)\n");
        free(text);
        return 0;
    }
    int ok = add_prompt(o, text);
    free(text);
    return ok;
}

static int add_prompt(pgd_gen_opts *o, const char *p) {
    if (!strcmp(p, "-") && !o->stdin_used) {
        o->stdin_used = 1;
        return stdin_prompt(o);
    }
    if (!strcmp(p, "-")) {
        fprintf(stderr, "pagoda: standard input can be read once (--prompt - or --prompts-file -)\n");
        return 0;
    }
    char **np = realloc(o->prompts, sizeof *np * (size_t)(o->num_prompts + 1));
    if (!np) return 0;
    o->prompts = np;
    if (!(np[o->num_prompts] = strdup(p))) return 0;
    o->num_prompts++;
    return 1;
}

static int read_prompts(pgd_gen_opts *o, const char *path) {
    int from_stdin = !strcmp(path, "-");
    if (from_stdin && o->stdin_used) {
        fprintf(stderr, "pagoda: standard input can be read once (--prompt - or --prompts-file -)\n");
        return 0;
    }
    o->stdin_used |= from_stdin;
    FILE *f = from_stdin ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pagoda: --prompts-file: cannot open '%s': %s\n", path, strerror(errno));
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ok = 1;
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n > 0) ok = add_prompt(o, line);
    }
    free(line);
    if (!from_stdin) fclose(f);
    if (!ok) fprintf(stderr, "pagoda: out of memory\n");
    return ok;
}

void pgd_gen_opts_free(pgd_gen_opts *o) {
    for (int i = 0; i < o->num_prompts; i++) free(o->prompts[i]);
    free(o->prompts);
    o->prompts = NULL;
    o->num_prompts = 0;
}

#define BAD(x) do { if (!(x)) { pgd_gen_opts_free(o); return 2; } } while (0)

static int parse_opts(int argc, char **argv, pgd_gen_opts *o, int serve);

int pgd_gen_opts_parse(int argc, char **argv, pgd_gen_opts *o) { return parse_opts(argc, argv, o, 0); }
int pgd_gen_opts_parse_serve(int argc, char **argv, pgd_gen_opts *o) { return parse_opts(argc, argv, o, 1); }

static int parse_opts(int argc, char **argv, pgd_gen_opts *o, int serve) {
    memset(o, 0, sizeof *o);
    o->serve = serve;
    o->host = "127.0.0.1";
    o->port = 8000;
    o->max_queue = 1024;
    o->max_tokens = 256;
    o->n = 1;
    o->sampling = (pgd_sampling_params){.temperature = 0.f, .top_k = 0, .top_p = 1.f, .seed = 42};
    o->engine.block_size = 16;
    const char *file = NULL, *output = "text";
    int chunk = 0, seqs_given = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tokenizer", required_argument, 0, 'z'},
        {"prompt", required_argument, 0, 'p'}, {"prompts-file", required_argument, 0, 'F'},
        {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
        {"top-k", required_argument, 0, 'k'}, {"top-p", required_argument, 0, 'P'},
        {"seed", required_argument, 0, 's'}, {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 'j'}, {"block-size", required_argument, 0, 'b'},
        {"prefill-chunk", required_argument, 0, 'c'}, {"num-blocks", required_argument, 0, 'B'},
        {"kv-memory", required_argument, 0, 'M'}, {"swap-blocks", required_argument, 0, 'S'},
        {"max-batched-tokens", required_argument, 0, 'T'}, {"max-num-seqs", required_argument, 0, 'Q'},
        {"policy", required_argument, 0, 'y'}, {"kv-manager", required_argument, 0, 'K'},
        {"preemption", required_argument, 0, 'e'}, {"chunked-prefill", required_argument, 0, 'C'},
        {"prefix-caching", required_argument, 0, 'x'}, {"n", required_argument, 0, 'N'},
        {"beam-width", required_argument, 0, 'w'}, {"help", no_argument, 0, 'h'},
        {"kv-dtype", required_argument, 0, 'V'}, {"chat", no_argument, 0, 1001},
        {"chat-template", required_argument, 0, 1002}, {"host", required_argument, 0, 1003},
        {"port", required_argument, 0, 1004}, {"max-queue", required_argument, 0, 1005},
        {"served-model-name", required_argument, 0, 1006}, PGD_PAR_LONGOPTS,
        {0, 0, 0, 0}};
    optind = 1;
    int ch, li = -1;
    while ((li = -1, ch = pgd_cli_getopt_index(argc, argv, "", opts, &li)) != -1) {
        const char *oname = li >= 0 ? opts[li].name : "?";
        /* per-request options of generate are not server options, and back */
        if (serve && (ch == 'p' || ch == 'F' || ch == 'n' || ch == 't' || ch == 'k' || ch == 'P' || ch == 's' ||
                      ch == 'o' || ch == 'N' || ch == 'w' || ch == 1001)) {
            fprintf(stderr, "pagoda serve: --%s is per request (the JSON body), not a server option\n", oname);
            BAD(0);
        }
        if (!serve && ch >= 1003 && ch <= 1006) {
            fprintf(stderr, "pagoda generate: --%s is an option of `pagoda serve`\n", oname);
            BAD(0);
        }
        switch (ch) {
        case 1001: o->chat = 1; break;
        case 1002:
            if (!pgd_chat_template_find(optarg)) {
                fprintf(stderr, "pagoda: --chat-template: unknown template '%s' (choices: none, llama-2, llama-3, chatml)\n", optarg);
                BAD(0);
            }
            o->chat_template = optarg;
            break;
        case 1003:
            if (!*optarg) { fprintf(stderr, "pagoda serve: --host must not be empty\n"); BAD(0); }
            o->host = optarg;
            break;
        case 1004: BAD(pgd_cli_int("--port", optarg, 0, 65535, &o->port)); break;
        case 1005: BAD(pgd_cli_int("--max-queue", optarg, 1, 1 << 20, &o->max_queue)); break;
        case 1006:
            if (!*optarg) { fprintf(stderr, "pagoda serve: --served-model-name must not be empty\n"); BAD(0); }
            o->served_model_name = optarg;
            break;
        case 'm': o->model = optarg; break;
        case 'z': o->tokenizer = optarg; break;
        case 'p': BAD(add_prompt(o, optarg)); break;
        case 'F': file = optarg; break;
        case 'n': BAD(pgd_cli_int("--max-tokens", optarg, 1, 1 << 24, &o->max_tokens)); break;
        case 't': BAD(pgd_cli_float("--temperature", optarg, &o->sampling.temperature)); break;
        case 'k': BAD(pgd_cli_int("--top-k", optarg, -(1L << 30), 1L << 30, &o->sampling.top_k)); break;
        case 'P': BAD(pgd_cli_float("--top-p", optarg, &o->sampling.top_p)); break;
        case 's': BAD(pgd_cli_u64("--seed", optarg, &o->sampling.seed)); break;
        case 'o': output = optarg; break;
        case 'j': BAD(pgd_cli_int("--threads", optarg, 0, 1024, &o->threads)); break;
        case 'b': BAD(pgd_cli_int("--block-size", optarg, 1, 4096, &o->engine.block_size)); break;
        case 'c': BAD(pgd_cli_int("--prefill-chunk", optarg, 1, 1 << 20, &chunk)); break;
        case 'B': BAD(pgd_cli_int("--num-blocks", optarg, 2, 1 << 30, &o->engine.num_blocks)); break;
        case 'M': BAD(parse_size("--kv-memory", optarg, &o->engine.kv_memory_bytes)); break;
        case 'S': BAD(pgd_cli_int("--swap-blocks", optarg, 0, 1 << 30, &o->engine.num_host_blocks)); break;
        case 'T': BAD(pgd_cli_int("--max-batched-tokens", optarg, 1, 1 << 24, &o->engine.max_num_batched_tokens)); break;
        case 'Q': BAD(pgd_cli_int("--max-num-seqs", optarg, 1, 1 << 20, &o->engine.max_num_seqs)); seqs_given = 1; break;
        case 'y': o->engine.policy = optarg; break;
        case 'K':
            o->engine.kv_manager = optarg;
            if (pgd_kv_manager_find(optarg, NULL) != PGD_OK) {
                fprintf(stderr, "pagoda: --kv-manager: %s\n", pgd_last_error());
                BAD(0);
            }
            break;
        case 'e':
            if (pgd_preempt_mode_parse(optarg, &o->engine.preemption) != PGD_OK) {
                fprintf(stderr, "pagoda: --preemption must be 'recompute' or 'swap' (got '%s')\n", optarg);
                BAD(0);
            }
            break;
        case 'C': BAD(parse_onoff("--chunked-prefill", optarg, &o->engine.chunked_prefill)); break;
        case 'x': BAD(parse_onoff("--prefix-caching", optarg, &o->engine.prefix_caching)); break;
        case 'V': {
            pgd_dtype t;
            if (!pgd_dtype_from_name(optarg, &t) || !pgd_dtype_is_kv(t)) {
                fprintf(stderr, "pagoda: --kv-dtype must be f32, f16, bf16 or q8 (got '%s')\n", optarg);
                BAD(0);
            }
            o->kv_dtype = optarg;
            break;
        }
        case 'N': BAD(pgd_cli_int("--n", optarg, 1, 1024, &o->n)); break;
        case 'w': BAD(pgd_cli_int("--beam-width", optarg, 1, 1024, &o->beam_width)); break;
        case 'h': serve ? serve_usage(stdout) : usage(stdout); pgd_gen_opts_free(o); return 0;
        default: {
            int r = pgd_par_opt(ch, optarg, &o->par, &o->async);
            if (r == 1) break;
            if (r == 0) serve ? serve_usage(stderr) : usage(stderr);
            pgd_gen_opts_free(o);
            return 2;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda %s: unexpected argument '%s'\n", serve ? "serve" : "generate", argv[optind]);
        BAD(0);
    }
    if (file) BAD(read_prompts(o, file));
    if (serve && !o->model) {
        fprintf(stderr, "pagoda serve: --model is required\n");
        serve_usage(stderr);
        BAD(0);
    }
    if (!serve && (!o->model || !o->num_prompts)) {
        fprintf(stderr, "pagoda generate: %s is required\n",
                !o->model ? "--model" : file ? "a non-empty --prompts-file" : "--prompt");
        usage(stderr);
        BAD(0);
    }
    if (!strcmp(output, "json")) o->output = PGD_OUT_JSON;
    else if (!strcmp(output, "jsonl")) o->output = PGD_OUT_JSONL;
    else if (strcmp(output, "text")) {
        fprintf(stderr, "pagoda generate: --output must be 'text', 'json' or 'jsonl' (got '%s')\n", output);
        BAD(0);
    }
    if (o->engine.policy) {
        int found = 0;
        for (const char *const *p = pgd_policy_names(); *p; p++) found |= !strcmp(*p, o->engine.policy);
        if (!found) {
            char names[512], hint[96] = "";
            const char *best = pgd_suggest(o->engine.policy, pgd_policy_names(), (size_t)-1);
            if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            fprintf(stderr, "pagoda: --policy: unknown policy '%s'%s (choices: %s)\n", o->engine.policy, hint,
                    pgd_names_join(pgd_policy_names(), ", ", names, sizeof names));
            BAD(0);
        }
    }
    if (o->n > 1 && o->beam_width > 0) {
        fprintf(stderr, "pagoda: --n %d and --beam-width %d cannot be combined\n", o->n, o->beam_width);
        BAD(0);
    }
    if (o->engine.num_blocks && o->engine.kv_memory_bytes) {
        fprintf(stderr, "pagoda: --num-blocks and --kv-memory cannot be combined\n");
        BAD(0);
    }
    if (chunk) {
        o->engine.chunked_prefill = 1;
        if (!o->engine.max_num_batched_tokens) o->engine.max_num_batched_tokens = chunk;
    }
    int budget = o->engine.max_num_batched_tokens;
    if (!seqs_given && budget) o->engine.max_num_seqs = budget < 256 ? budget : 256;
    if (budget && o->engine.max_num_seqs > budget) {
        fprintf(stderr, "pagoda: --max-num-seqs %d exceeds --max-batched-tokens %d\n", o->engine.max_num_seqs, budget);
        BAD(0);
    }
    /* a token budget below the model's context fails in the scheduler after
     * the model is loaded: say so first, as bad input (issue 18) */
    int ctx = 0;
    if (budget && !o->engine.chunked_prefill && pgd_model_peek_context(o->model, &ctx) == PGD_OK && budget < ctx) {
        fprintf(stderr, "pagoda: --max-batched-tokens %d is below the model's context (%d): use at least %d, "
                "or --chunked-prefill on\n", budget, ctx, ctx);
        BAD(0);
    }
    /* catch nonsense sampling values before loading anything */
    if (pgd_sampling_params_validate(&o->sampling, 1 << 30) != PGD_OK) {
        pgd_cli_fail(NULL);
        BAD(0);
    }
    return -1;
}

int pgd_gen_model_open(const pgd_gen_opts *o, pgd_gen_model *m) {
    const char *cmd = o->serve ? "serve" : "generate";
    *m = (pgd_gen_model){0};
    pgd_exec_config xc = {.model = o->model,
                          .backend = {.name = "cpu", .num_threads = o->threads, .kv_dtype = o->kv_dtype},
                          .parallel = o->par,
                          .async = o->async};
    if (pgd_exec_create(&xc, &m->ex) != PGD_OK) return pgd_cli_fail(NULL);
    if (!pgd_exec_is_driver(m->ex)) /* an mpirun rank other than 0: run the driver's commands */
        return pgd_exec_serve(m->ex) == PGD_OK ? 0 : pgd_cli_fail(NULL);
    m->config = pgd_exec_model_config(m->ex);
    m->tok = pgd_exec_tokenizer(m->ex);
    if (o->tokenizer) {
        if (pgd_tokenizer_load_file(o->tokenizer, m->config->vocab_size, &m->own_tok) != PGD_OK)
            return pgd_cli_fail(NULL);
        m->tok = m->own_tok;
    }
    if (!m->tok) {
        fprintf(stderr, "pagoda %s: model '%s' has no tokenizer of its own; pass --tokenizer PATH\n", cmd, o->model);
        return 1;
    }
    return -1;
}

void pgd_gen_model_close(pgd_gen_model *m) {
    pgd_tokenizer_destroy(m->own_tok);
    pgd_exec_destroy(m->ex);
    pgd_comm_mpi_finalize();
    *m = (pgd_gen_model){0};
}
