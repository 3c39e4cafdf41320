/* tokenizer_impl.h - the tokenizer struct shared by tokenizer.c (SentencePiece
 * style, llama2.c semantics) and bpe.c (byte-level BPE); internal to
 * core/tokenizer. A byte-level tokenizer has bpe != NULL and keeps, in
 * vocab[i], the raw bytes token i decodes to (NUL-terminated; added tokens
 * their content), so decoding is shared; encoding is bpe.c's. */
#ifndef PAGODA_TOKENIZER_IMPL_H
#define PAGODA_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/tokenizer.h"

struct pgd_bpe;

struct pgd_tokenizer {
    int vocab_size;
    int bos, eos;
    size_t max_len;     /* longest piece, bytes */
    char **vocab;       /* vocab_size pieces, pointing into arena */
    float *scores;
    char *arena;
    unsigned char *control; /* NULL, or 1 for ids left out of the lookup table */
    int32_t *table;     /* open addressing, -1 = empty; size mask + 1 */
    uint32_t mask;
    int byte_id[256];
    char byte_pieces[512]; /* byte b decodes to byte_pieces + 2b */
    struct pgd_bpe *bpe;   /* byte-level BPE state (bpe.c), or NULL */
};

/* tokenizer.c: a zeroed tokenizer with n vocab slots, scores and an arena of
 * arena_bytes (+1); NULL when out of memory. */
pgd_tokenizer *pgd_tok_alloc(int n, size_t arena_bytes);

/* bpe.c */
void pgd_bpe_free(struct pgd_bpe *b);
pgd_status pgd_bpe_from_gguf(const struct pgd_gguf *g, pgd_tokenizer **out);
pgd_status pgd_bpe_encode(const pgd_tokenizer *t, const char *text, int add_bos, int add_eos,
                          int32_t **tokens, int *n);

#endif
