/* generate.c - `pagoda generate`: one prompt through a model, greedy or
 * sampled, printed as text (streamed) or as one JSON object.
 *
 * The prompt is prefilled in chunks through the paged forward pass and
 * then decoded token by token, with the sequence's blocks laid out 1..n in
 * its own KV cache (block 0 is the null block by convention). Generation
 * stops at --max-tokens, at EOS (and, for llama2.c checkpoints, at BOS, as
 * llama2.c's run.c does; the stop token is reported), or when the model's
 * context is full. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pagoda/backend.h"
#include "pagoda/log.h"
#include "pagoda/model.h"
#include "pagoda/sampler.h"
#include "pagoda/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda generate --model PATH|random:SHAPE [--tokenizer PATH] --prompt TEXT\n"
            "                       [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]\n"
            "                       [--seed S] [--output text|json] [--threads N]\n"
            "                       [--block-size B] [--prefill-chunk N]\n"
            "\n"
            "  --model        llama2.c checkpoint, GGUF file (detected from the file), or\n"
            "                 random:<shape> (e.g. random:stories110M) for seeded random weights\n"
            "  --tokenizer    llama2.c tokenizer.bin (GGUF files carry their own)\n"
            "  --max-tokens   tokens to generate (default 256)\n"
            "  --temperature  0 = greedy (default 0); --top-k 0 and --top-p 1 disable those filters\n"
            "  --output       text (default; streamed) or json (one object: prompt_tokens, tokens, text)\n");
}

int pgd_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL, *output = "text";
    int max_tokens = 256, threads = 0, block_size = 16, chunk = 256;
    pgd_sampling_params sp = {.temperature = 0.f, .top_k = 0, .top_p = 1.f, .seed = 42};
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"tokenizer", required_argument, 0, 'z'},
        {"prompt", required_argument, 0, 'p'},  {"max-tokens", required_argument, 0, 'n'},
        {"temperature", required_argument, 0, 't'}, {"top-k", required_argument, 0, 'k'},
        {"top-p", required_argument, 0, 'P'},   {"seed", required_argument, 0, 's'},
        {"output", required_argument, 0, 'o'},  {"threads", required_argument, 0, 'j'},
        {"block-size", required_argument, 0, 'b'}, {"prefill-chunk", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_path = optarg; break;
        case 'z': tok_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (!pgd_cli_int("--max-tokens", optarg, 1, 1 << 24, &max_tokens)) return 2; break;
        case 't': if (!pgd_cli_float("--temperature", optarg, &sp.temperature)) return 2; break;
        case 'k': if (!pgd_cli_int("--top-k", optarg, -(1L << 30), 1L << 30, &sp.top_k)) return 2; break;
        case 'P': if (!pgd_cli_float("--top-p", optarg, &sp.top_p)) return 2; break;
        case 's': if (!pgd_cli_u64("--seed", optarg, &sp.seed)) return 2; break;
        case 'o': output = optarg; break;
        case 'j': if (!pgd_cli_int("--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'b': if (!pgd_cli_int("--block-size", optarg, 1, 4096, &block_size)) return 2; break;
        case 'c': if (!pgd_cli_int("--prefill-chunk", optarg, 1, 1 << 20, &chunk)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda generate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model_path || !prompt) {
        fprintf(stderr, "pagoda generate: %s is required\n", !model_path ? "--model" : "--prompt");
        usage(stderr);
        return 2;
    }
    int json = 0;
    if (!strcmp(output, "json")) json = 1;
    else if (strcmp(output, "text")) {
        fprintf(stderr, "pagoda generate: --output must be 'text' or 'json' (got '%s')\n", output);
        return 2;
    }
    /* catch nonsense sampling values before loading anything */
    if (pgd_sampling_params_validate(&sp, 1 << 30) != PGD_OK) return pgd_cli_fail(NULL);

    int rc = 1;
    pgd_backend *be = NULL;
    pgd_model *model = NULL;
    pgd_tokenizer *own_tok = NULL;
    pgd_kv_cache *kv = NULL;
    pgd_sampler *sampler = NULL;
    int32_t *ptoks = NULL, *gen = NULL, *table = NULL, *chunk_toks = NULL;
    float *logits = NULL;
    char *text = NULL;

    pgd_backend_config bc = {.name = "cpu", .num_threads = threads};
    if (pgd_backend_create(&bc, &be) != PGD_OK) { rc = pgd_cli_fail("backend"); goto done; }
    if (pgd_model_load(model_path, NULL, be, &model) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    const pgd_model_config *c = pgd_model_get_config(model);
    const pgd_tokenizer *tok = pgd_model_tokenizer(model);
    if (tok_path) {
        if (pgd_tokenizer_load_llama2c(tok_path, c->vocab_size, &own_tok) != PGD_OK) {
            rc = pgd_cli_fail(NULL);
            goto done;
        }
        tok = own_tok;
    }
    if (!tok) {
        fprintf(stderr, "pagoda generate: model '%s' has no tokenizer of its own; pass --tokenizer PATH\n", model_path);
        goto done;
    }
    if (pgd_sampling_params_validate(&sp, c->vocab_size) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    int np = 0;
    if (pgd_tokenizer_encode(tok, prompt, 1, 0, &ptoks, &np) != PGD_OK) { rc = pgd_cli_fail("prompt"); goto done; }
    if (np > c->max_seq_len) {
        fprintf(stderr, "pagoda generate: the prompt is %d tokens, longer than the model's context of %d tokens\n",
                np, c->max_seq_len);
        goto done;
    }
    /* every generated token but the last is fed back, so at most seq - np + 1 */
    int limit = c->max_seq_len - np + 1;
    int to_gen = max_tokens < limit ? max_tokens : limit;
    int positions = np + to_gen - 1;
    int nblocks = (positions + block_size - 1) / block_size;
    if (pgd_kv_cache_create(be, c, block_size, nblocks + 1, &kv) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    table = malloc(sizeof(int32_t) * (size_t)nblocks);
    gen = malloc(sizeof(int32_t) * (size_t)to_gen);
    logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (!table || !gen || !logits) { fprintf(stderr, "pagoda generate: out of memory\n"); goto done; }
    for (int i = 0; i < nblocks; i++) table[i] = i + 1;
    if (pgd_sampler_create(&sp, c->vocab_size, &sampler) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }

    if (!json) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    double t0 = pgd_cli_now(), t_first = 0;
    /* prefill in chunks */
    int done_pos = 0;
    int32_t qs[2];
    while (done_pos < np) {
        int n = np - done_pos < chunk ? np - done_pos : chunk;
        qs[0] = 0;
        qs[1] = n;
        int32_t len = done_pos + n;
        pgd_batch b = {.num_seqs = 1, .num_tokens = n, .tokens = ptoks + done_pos, .query_start = qs,
                       .seq_lens = &len, .block_tables = table, .max_blocks_per_seq = nblocks};
        if (pgd_model_forward(model, kv, &b, logits) != PGD_OK) { rc = pgd_cli_fail("forward"); goto done; }
        done_pos += n;
    }
    int ngen = 0, prev = ptoks[np - 1];
    const char *finish = "length";
    int stop_bos = pgd_model_get_format(model) == PGD_FORMAT_LLAMA2C;
    for (;;) {
        int next = pgd_sampler_sample(sampler, logits);
        gen[ngen++] = next;
        if (ngen == 1) t_first = pgd_cli_now();
        if (next == pgd_tokenizer_eos(tok) || (stop_bos && next == pgd_tokenizer_bos(tok))) {
            finish = "stop";
            break;
        }
        if (!json) {
            const char *piece = pgd_tokenizer_decode(tok, prev, next);
            if (piece) fputs(piece, stdout);
            fflush(stdout);
        }
        prev = next;
        if (ngen >= to_gen) break;
        qs[0] = 0;
        qs[1] = 1;
        int32_t len = np + ngen;
        pgd_batch b = {.num_seqs = 1, .num_tokens = 1, .tokens = &gen[ngen - 1], .query_start = qs,
                       .seq_lens = &len, .block_tables = table, .max_blocks_per_seq = nblocks};
        if (pgd_model_forward(model, kv, &b, logits) != PGD_OK) { rc = pgd_cli_fail("forward"); goto done; }
    }
    double t1 = pgd_cli_now();
    if (json) {
        if (pgd_tokenizer_decode_all(tok, ptoks[np - 1], gen, ngen, &text) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
        json_t *o = json_object(), *pt = json_array(), *gt = json_array();
        for (int i = 0; i < np; i++) json_array_append_new(pt, json_integer(ptoks[i]));
        for (int i = 0; i < ngen; i++) json_array_append_new(gt, json_integer(gen[i]));
        json_object_set_new(o, "prompt", json_string(prompt));
        json_object_set_new(o, "prompt_tokens", pt);
        json_object_set_new(o, "tokens", gt);
        json_object_set_new(o, "text", json_string(text));
        json_object_set_new(o, "finish_reason", json_string(finish));
        char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        fputc('\n', stdout);
    }
    fflush(stdout);
    fprintf(stderr, "pagoda: %d prompt + %d generated tokens (%s) in %.1f ms: time to first token "
            "%.1f ms, decode %.1f tok/s, on %s\n", np, ngen, finish, (t1 - t0) * 1e3,
            (t_first - t0) * 1e3, ngen > 1 ? (ngen - 1) / (t1 - t_first) : 0.0,
            pgd_backend_describe(be));
    rc = 0;
done:
    free(text);
    free(logits);
    free(table);
    free(gen);
    free(ptoks);
    free(chunk_toks);
    pgd_sampler_destroy(sampler);
    pgd_kv_cache_destroy(kv);
    pgd_tokenizer_destroy(own_tok);
    pgd_model_destroy(model);
    pgd_backend_destroy(be);
    return rc;
}
