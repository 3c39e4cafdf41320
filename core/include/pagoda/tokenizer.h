/* tokenizer.h - tokenizers: SentencePiece-style BPE (Llama-2 family) and
 * byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM2; core/tokenizer/bpe.c, Hugging
 * Face tokenizers' semantics, see there), behind one interface.
 *
 * SentencePiece style:
 * Two sources, one behaviour: a llama2.c tokenizer.bin (int32
 * max_token_length, then per token: f32 score, int32 len, bytes), or the
 * tokenizer.ggml.* metadata of a GGUF file (tokens, scores, token_type; the
 * SentencePiece "\xE2\x96\x81" space marker is mapped to ' ' on load).
 * Encoding follows llama2.c's run.c exactly: optional BOS, a dummy-prefix
 * space when the text is non-empty, UTF-8 code points looked up whole with
 * byte fallback (<0xXX> tokens at id byte+3), then greedy merging of the
 * best-scored adjacent pair until none merges; optional EOS. */
#ifndef PAGODA_TOKENIZER_H
#define PAGODA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_tokenizer pgd_tokenizer;
struct pgd_gguf;

/* vocab_size: number of tokens to read (the model's vocab size). */
pgd_status pgd_tokenizer_load_llama2c(const char *path, int vocab_size, pgd_tokenizer **out);
/* From GGUF metadata (tokenizer.ggml.model must be "llama"). */
pgd_status pgd_tokenizer_from_gguf(const struct pgd_gguf *g, pgd_tokenizer **out);
/* GGUF with tokenizer.ggml.model "gpt2" gives a byte-level BPE tokenizer
 * (tokens, merges, token_type: control/user-defined tokens are added tokens;
 * tokenizer.ggml.pre picks the pre-tokenizer: default/gpt2, llama3/llama-bpe,
 * qwen2, smollm). */

/* Byte-level BPE from a Hugging Face tokenizer.json (model.type BPE with
 * vocab and merges in "a b" or ["a","b"] form, added_tokens, pre_tokenizer
 * Sequence/Split/ByteLevel/Digits, no normalizer). BOS is the first special
 * token of a TemplateProcessing post-processor (then add_bos adds it, as HF
 * does by default), else <|begin_of_text|>, <s> or <|endoftext|> if present;
 * EOS <|end_of_text|>, <|endoftext|>, </s> or <|im_end|>; -1 when absent
 * (pgd_tokenizer_set_special sets them from a model's config.json). */
pgd_status pgd_tokenizer_load_hf(const char *path, pgd_tokenizer **out);
/* A path ending in .json: pgd_tokenizer_load_hf (which must not have more
 * tokens than vocab_size > 0), else a llama2.c tokenizer.bin. */
pgd_status pgd_tokenizer_load_file(const char *path, int vocab_size, pgd_tokenizer **out);
/* Set BOS / EOS ids (-1 leaves one as it is). */
pgd_status pgd_tokenizer_set_special(pgd_tokenizer *t, int bos, int eos);
/* 1 for a byte-level BPE tokenizer. */
int pgd_tokenizer_is_byte_level(const pgd_tokenizer *t);
void pgd_tokenizer_destroy(pgd_tokenizer *t);

int pgd_tokenizer_vocab_size(const pgd_tokenizer *t);
int pgd_tokenizer_bos(const pgd_tokenizer *t);
int pgd_tokenizer_eos(const pgd_tokenizer *t);

/* Byte-level BPE: add_bos adds BOS only when the tokenizer's convention
 * adds one (above; SmolLM2's adds nothing, so text may encode to 0 tokens);
 * add_eos adds EOS when there is one. Added/special tokens written in the
 * text become their ids. Decoding gives the raw bytes back, so
 * decode(encode(s)) == s for every NUL-free byte string (valid UTF-8 or not);
 * pgd_tokenizer_decode strips nothing. bos/eos may be -1 (none).
 *
 * Encode NUL-terminated text. *tokens is malloc'd (caller frees), *n its length. */
pgd_status pgd_tokenizer_encode(const pgd_tokenizer *t, const char *text, int add_bos,
                                int add_eos, int32_t **tokens, int *n);

/* The piece printed for `token` following `prev` (llama2.c decode: a leading
 * space is dropped after BOS, <0xXX> pieces become their byte). Borrowed
 * pointer, valid until the tokenizer is destroyed. NULL for ids out of range. */
const char *pgd_tokenizer_decode(const pgd_tokenizer *t, int prev, int token);

/* Decode a whole sequence into a malloc'd NUL-terminated string; `prev` is
 * the token before tokens[0] (e.g. the last prompt token, or BOS). Tokens
 * BOS/EOS are not printed. The result is the raw bytes (no filtering of
 * non-printable bytes as run.c's safe_printf does), so byte-fallback UTF-8
 * round-trips. GGUF control tokens (token_type 3) are never produced by
 * encoding text. */
pgd_status pgd_tokenizer_decode_all(const pgd_tokenizer *t, int prev, const int32_t *tokens,
                                    int n, char **text);

#endif
