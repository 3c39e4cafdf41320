/* generate.c - `pagoda generate`: one or more prompts through the serving
 * engine (continuous batching over a paged KV cache), greedy or sampled,
 * printed as text, one JSON value, or JSON lines (one object per prompt,
 * in input order).
 *
 * Every option value is checked before the model is loaded; a bad value
 * gives one error line naming the option and the value, and exit code 2.
 * A prompt the engine cannot serve (longer than the context or the whole
 * KV cache) is reported on stderr and the others still run (exit code 1).
 * With one prompt and text output the continuation is streamed. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gen_opts.h"
#include "pagoda/chat.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/log.h"
#include "pagoda/parallel.h"
#include "util/json_text.h"

typedef struct stream_ctx {
    const pgd_tokenizer *tok;
    int32_t prev;
} stream_ctx;

static void stream_token(void *ctx, int64_t req, int seq, int32_t token, double t) {
    stream_ctx *s = ctx;
    if (seq != 0) return;
    const char *piece = pgd_tokenizer_decode(s->tok, s->prev, token);
    if (piece) fputs(piece, stdout);
    fflush(stdout);
    s->prev = token;
}

static json_t *seq_json(const pgd_tokenizer *tok, const pgd_request_output *o, const pgd_seq_output *q,
                        int with_score) {
    json_t *obj = json_object(), *gt = json_array();
    for (int i = 0; i < q->n_tokens; i++) json_array_append_new(gt, json_integer(q->tokens[i]));
    char *text = NULL;
    if (pgd_tokenizer_decode_all(tok, o->prompt[o->n_prompt - 1], q->tokens, q->n_tokens, &text) != PGD_OK)
        text = NULL;
    json_object_set_new(obj, "tokens", gt);
    json_object_set_new(obj, "text", pgd_json_text(text ? text : ""));
    json_object_set_new(obj, "finish_reason", pgd_json_text(q->finish_reason ? q->finish_reason : o->finish_reason));
    if (with_score) json_object_set_new(obj, "cum_logprob", json_real(q->cum_logprob));
    free(text);
    return obj;
}

/* One request as a JSON object: prompt, prompt_tokens, tokens, text,
 * finish_reason (of the first sequence); with n > 1 or beams also
 * "sequences"; failed requests get "error". */
static json_t *request_json(const pgd_tokenizer *tok, const char *prompt, const pgd_request_output *o,
                            const char *error, int multi, int beams) {
    json_t *obj = json_object();
    json_object_set_new(obj, "prompt", pgd_json_text(prompt));
    if (!o) {
        json_object_set_new(obj, "error", pgd_json_text(error));
        return obj;
    }
    json_t *pt = json_array();
    for (int i = 0; i < o->n_prompt; i++) json_array_append_new(pt, json_integer(o->prompt[i]));
    json_object_set_new(obj, "prompt_tokens", pt);
    if (o->num_seqs > 0) {
        json_t *first = seq_json(tok, o, &o->seqs[0], beams);
        json_object_update(obj, first);
        json_decref(first);
    } else {
        json_object_set_new(obj, "tokens", json_array());
        json_object_set_new(obj, "text", pgd_json_text(""));
    }
    json_object_set_new(obj, "finish_reason", pgd_json_text(o->finish_reason ? o->finish_reason : "error"));
    if (o->error) json_object_set_new(obj, "error", pgd_json_text(o->error));
    if (multi) {
        json_t *arr = json_array();
        for (int i = 0; i < o->num_seqs; i++) json_array_append_new(arr, seq_json(tok, o, &o->seqs[i], beams));
        json_object_set_new(obj, "sequences", arr);
    }
    json_object_set_new(obj, "num_preemptions", json_integer(o->num_preemptions));
    return obj;
}

static void print_json(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) puts(s);
    free(s);
}

int pgd_cmd_generate(int argc, char **argv) {
    pgd_gen_opts o;
    int rc = pgd_gen_opts_parse(argc, argv, &o);
    if (rc >= 0) return rc; /* help or a bad option */
    rc = 1;
    pgd_gen_model gm = {0};
    pgd_engine *eng = NULL;
    int64_t *ids = NULL;
    char **errs = NULL;
    json_t *all = NULL;
    stream_ctx sc = {0};

    if ((rc = pgd_gen_model_open(&o, &gm)) >= 0) goto done;
    rc = 1;
    pgd_exec *ex = gm.ex;
    const pgd_model_config *c = gm.config;
    const pgd_tokenizer *tok = gm.tok;
    if (pgd_sampling_params_validate(&o.sampling, c->vocab_size) != PGD_OK) { rc = pgd_cli_fail(NULL); goto done; }
    int stream = o.num_prompts == 1 && o.output == PGD_OUT_TEXT && o.beam_width == 0 && o.n == 1;
    sc.tok = tok;
    o.engine.on_token = stream ? stream_token : NULL;
    o.engine.on_token_ctx = &sc;
    if (pgd_engine_create(&o.engine, ex, tok, &eng) != PGD_OK) { rc = pgd_cli_fail("engine"); goto done; }
    ids = malloc(sizeof *ids * (size_t)o.num_prompts);
    errs = calloc((size_t)o.num_prompts, sizeof *errs);
    if (!ids || !errs) { fprintf(stderr, "pagoda generate: out of memory\n"); goto done; }
    int failed = 0;
    const pgd_chat_template *tmpl = NULL;
    if (o.chat) {
        if (o.chat_template) tmpl = pgd_chat_template_find(o.chat_template);
        else if (pgd_chat_template_for_model(o.model, &tmpl) != PGD_OK) { rc = pgd_cli_fail("--chat"); goto done; }
    }
    for (int i = 0; i < o.num_prompts; i++) {
        int32_t *pt = NULL;
        int np = 0;
        ids[i] = -1;
        char *chat_text = NULL; /* --chat: the prompt as one user message */
        if (tmpl) {
            pgd_chat_message msg = {.role = "user", .content = o.prompts[i]};
            if (pgd_chat_render(tmpl, &msg, 1, 1, &chat_text) != PGD_OK) { rc = pgd_cli_fail("--chat"); goto done; }
        }
        pgd_status es = pgd_tokenizer_encode(tok, chat_text ? chat_text : o.prompts[i], 1, 0, &pt, &np);
        free(chat_text);
        if (es != PGD_OK) { rc = pgd_cli_fail("prompt"); goto done; }
        pgd_request_params rp = {.prompt = pt, .n_prompt = np, .sampling = o.sampling, .max_tokens = o.max_tokens,
                                 .n = o.n, .beam_width = o.beam_width};
        if (pgd_engine_add_request(eng, &rp, &ids[i]) != PGD_OK) {
            ids[i] = -1;
            errs[i] = strdup(pgd_last_error());
            if (o.num_prompts == 1) fprintf(stderr, "pagoda: %s\n", pgd_last_error());
            else fprintf(stderr, "pagoda: prompt %d: %s\n", i + 1, pgd_last_error());
            failed++;
        } else if (stream && i == 0) {
            sc.prev = pt[np - 1];
        }
        free(pt);
    }
    if (failed == o.num_prompts) goto done;
    if (stream) {
        fputs(o.prompts[0], stdout);
        fflush(stdout);
    }
    double t0 = pgd_cli_now();
    if (pgd_engine_run(eng) != PGD_OK) { rc = pgd_cli_fail("engine"); goto done; }
    double t1 = pgd_cli_now();
    int multi = o.n > 1 || o.beam_width > 0;
    if (o.output == PGD_OUT_JSON && o.num_prompts > 1) all = json_array();
    int64_t ntok = 0;
    for (int i = 0; i < o.num_prompts; i++) {
        const pgd_request_output *ro = NULL;
        if (ids[i] >= 0 && pgd_engine_get_output(eng, ids[i], &ro) != PGD_OK) ro = NULL;
        if (ro && ro->error) {
            fprintf(stderr, "pagoda: prompt %d: %s\n", i + 1, ro->error);
            failed++;
        }
        for (int k = 0; ro && k < ro->num_seqs; k++) ntok += ro->seqs[k].n_tokens;
        if (o.output == PGD_OUT_TEXT) {
            if (stream) { fputc('\n', stdout); continue; }
            for (int k = 0; ro && k < ro->num_seqs; k++) {
                char *text = NULL;
                if (pgd_tokenizer_decode_all(tok, ro->prompt[ro->n_prompt - 1], ro->seqs[k].tokens,
                                             ro->seqs[k].n_tokens, &text) != PGD_OK) text = NULL;
                if (multi) printf("[%d.%d] ", i + 1, k + 1);
                printf("%s%s\n", o.prompts[i], text ? text : "");
                free(text);
            }
            continue;
        }
        json_t *obj = request_json(tok, o.prompts[i], ro, errs[i], multi, o.beam_width > 0);
        if (all) json_array_append_new(all, obj);
        else {
            print_json(obj);
            json_decref(obj);
        }
    }
    if (all) print_json(all);
    fflush(stdout);
    pgd_engine_stats st;
    pgd_engine_get_stats(eng, &st);
    fprintf(stderr, "pagoda: %d prompts, %lld generated tokens in %.1f ms (%.1f tok/s), %lld steps, "
            "%lld preemptions, KV %d blocks of %d tokens, prefix hits %lld/%lld, on %s\n",
            o.num_prompts, (long long)ntok, (t1 - t0) * 1e3, t1 > t0 ? ntok / (t1 - t0) : 0.0,
            (long long)st.steps, (long long)st.preemptions, st.kv.num_blocks, o.engine.block_size,
            (long long)st.kv.prefix_hits, (long long)st.kv.prefix_queries, pgd_exec_describe(ex));
    rc = failed ? 1 : 0;
done:
    json_decref(all);
    for (int i = 0; errs && i < o.num_prompts; i++) free(errs[i]);
    free(errs);
    free(ids);
    pgd_engine_destroy(eng);
    pgd_gen_model_close(&gm);
    pgd_gen_opts_free(&o);
    return rc;
}
