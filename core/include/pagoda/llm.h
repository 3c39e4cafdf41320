/* llm.h - offline generation in a few calls, the shape users know from
 * vLLM's LLM(model).generate(prompts, SamplingParams(...)): load a model
 * once, then run batches of text prompts through the engine (continuous
 * batching, paged KV cache, CPU backend) and get their continuations as
 * text. Plain C types only, so that a foreign-function interface (Python's
 * ctypes: examples/python/) can call it without knowing engine structs.
 *
 * Ownership: pgd_llm_create gives an object the caller destroys with
 * pgd_llm_destroy (NULL is a no-op); texts returned by pgd_llm_generate are
 * the caller's, freed with pgd_llm_free_text. Errors: a pgd_status and
 * pgd_last_error() (status.h), naming the file or the bad argument. */
#ifndef PAGODA_LLM_H
#define PAGODA_LLM_H

#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_llm pgd_llm;

/* Load `model` (a llama2.c checkpoint, a GGUF file or random:<shape>) on
 * the CPU backend with `num_threads` threads (0 = the machine's cores);
 * `tokenizer` is a llama2.c tokenizer.bin, or NULL when the model carries
 * its own (GGUF). */
pgd_status pgd_llm_create(const char *model, const char *tokenizer, int num_threads, pgd_llm **out);
void pgd_llm_destroy(pgd_llm *llm);

/* Generate for n prompts together: texts[i] gets the continuation of
 * prompts[i] (without the prompt), as the tokenizer decodes it. Sampling:
 * temperature 0 = greedy; top_k 0 and top_p 1 = off; request i's seed is
 * seed + i. max_tokens >= 1 new tokens per prompt (fewer at EOS or a full
 * context). On failure no text is returned (texts[i] = NULL for all i). */
pgd_status pgd_llm_generate(pgd_llm *llm, const char *const *prompts, int n, int max_tokens, float temperature,
                            int top_k, float top_p, uint64_t seed, char **texts);
void pgd_llm_free_text(char *text);

/* The model's context length and vocabulary size (0 for NULL). */
int pgd_llm_context(const pgd_llm *llm);
int pgd_llm_vocab_size(const pgd_llm *llm);

/* Run every run of an experiment config, as `pagoda run --quiet` does but
 * without --only, --resume or signal handling: the experiment directory
 * <output_dir>/<experiment>/ (output_dir NULL = the config's) is locked,
 * its previous results move to .previous/, and each run is written whole
 * (summary.json, requests.csv, ... and its complete.json marker) with
 * runs.csv rewritten after each. *runs_dir (may be NULL) gets the
 * experiment directory (free with pgd_llm_free_text). Stops at the first
 * run that cannot be executed or written; a run whose requests failed is
 * written and not an error here. */
pgd_status pgd_experiment_run_file(const char *config, const char *output_dir, char **runs_dir);

/* "0.1.0 (commit abc1234, Release, ...)" of this library (build_info). */
const char *pgd_version_string(void);

#endif
