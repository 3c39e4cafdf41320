/* fuzz_gguf.c - the GGUF reader: open (every metadata value and tensor
 * info validated), metadata and tensor lookups, the tokenizer from GGUF
 * metadata, and the model config derived from it. Seeds: the shared
 * tiny-random GGUF file (tests/fuzz/run.sh). */
#include "format/gguf.h"
#include "fuzz_util.h"
#include "pagoda/model.h"
#include "pagoda/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(0, ".gguf", data, size);
    pgd_gguf *g = NULL;
    if (pgd_gguf_open(path, &g) != PGD_OK) return 0;
    const char *s;
    size_t len;
    int64_t v;
    float f;
    (void)pgd_gguf_get_str(g, "general.architecture", &s, &len);
    (void)pgd_gguf_get_int(g, "llama.context_length", &v);
    (void)pgd_gguf_get_f32(g, "llama.rope.freq_base", &f);
    int et;
    int64_t n;
    if (pgd_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) == PGD_OK && n > 0) {
        (void)pgd_gguf_arr_str(g, "tokenizer.ggml.tokens", n - 1, &s, &len);
        (void)pgd_gguf_arr_str(g, "tokenizer.ggml.tokens", n, &s, &len);
    }
    for (int64_t i = 0; i < pgd_gguf_n_tensors(g) && i < 64; i++) {
        const pgd_gguf_tensor *t = pgd_gguf_tensor_at(g, i);
        if (t && pgd_gguf_tensor_nelements(t) <= 4096) {
            float *dst = malloc(sizeof(float) * (size_t)(pgd_gguf_tensor_nelements(t) + 1));
            (void)pgd_gguf_tensor_to_f32(t, dst);
            free(dst);
        }
    }
    pgd_tokenizer *tok = NULL;
    if (pgd_tokenizer_from_gguf(g, &tok) == PGD_OK) {
        int32_t *ids = NULL;
        int nt = 0;
        if (pgd_tokenizer_encode(tok, "Hello world, \xc3\xa9t\xc3\xa9!", 1, 0, &ids, &nt) == PGD_OK) {
            char *text = NULL;
            if (pgd_tokenizer_decode_all(tok, 1, ids, nt, &text) == PGD_OK) free(text);
            free(ids);
        }
        pgd_tokenizer_destroy(tok);
    }
    pgd_gguf_close(g);
    int ctx;
    (void)pgd_model_peek_context(path, &ctx);
    return 0;
}
