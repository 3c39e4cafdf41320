/* fuzz_bpe.c - byte-level BPE: the first byte chooses the mode. Mode 0:
 * the input is a tokenizer.json (loaded or rejected; if loaded, a short
 * text is encoded and decoded). Otherwise the input is text encoded with
 * the SmolLM2 tokenizer ($PGD_FUZZ_BPE, set by run.sh; skipped when unset)
 * and the decoded pieces of encode(text) must be the text less the bytes
 * that vocabulary has no token for (dropped, as HF does). Seeds: small tokenizer.json files
 * (tests/fuzz/seeds/bpe) and ShareGPT-like text. */
#include "fuzz_util.h"
#include "pagoda/tokenizer.h"

static pgd_tokenizer *smol;
static int tried;
static unsigned char dropped[256]; /* bytes smol has no token for (encode to nothing) */

/* Encode and decode; with exact, the pieces concatenated must be the text
 * less its dropped bytes. */
static void check(const pgd_tokenizer *t, const char *text, int exact) {
    int32_t *ids = NULL;
    int n = 0;
    if (pgd_tokenizer_encode(t, text, !exact, !exact, &ids, &n) != PGD_OK) return;
    size_t len = strlen(text), k = 0, at = 0;
    char *want = malloc(len + 1);
    if (!want) abort();
    for (size_t i = 0; i < len; i++)
        if (!dropped[(unsigned char)text[i]]) want[k++] = text[i];
    for (int i = 0; i < n; i++) {
        const char *p = pgd_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i]);
        if (!p) abort();
        size_t pl = strlen(p);
        if (exact) {
            if (at + pl > k || memcmp(want + at, p, pl)) abort();
            at += pl;
        }
    }
    if (exact && at != k) abort();
    char *back = NULL;
    if (pgd_tokenizer_decode_all(t, -1, ids, n, &back) == PGD_OK) free(back);
    free(want);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 1;
    data++, size--;
    if (mode == 0) {
        const char *path = fuzz_file(0, ".json", data, size);
        pgd_tokenizer *t = NULL;
        if (pgd_tokenizer_load_hf(path, &t) != PGD_OK) return 0;
        check(t, "Hello world 123 <|im_start|> \xff\xfe caf\xc3\xa9", 0);
        pgd_tokenizer_destroy(t);
        return 0;
    }
    if (!tried) {
        tried = 1;
        pgd_log_set_level(PGD_LOG_ERROR);
        const char *p = getenv("PGD_FUZZ_BPE");
        if (p && pgd_tokenizer_load_hf(p, &smol) != PGD_OK) abort();
        for (int b = 1; smol && b < 256; b++) {
            char one[2] = {(char)b, 0};
            int32_t *ids = NULL;
            int n = 0;
            if (pgd_tokenizer_encode(smol, one, 0, 0, &ids, &n) != PGD_OK) abort();
            dropped[b] = n == 0;
            free(ids);
        }
    }
    if (!smol) return 0;
    char *text = fuzz_str(data, size);
    check(smol, text, 1);
    free(text);
    return 0;
}
