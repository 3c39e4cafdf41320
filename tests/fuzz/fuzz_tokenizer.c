/* fuzz_tokenizer.c - the llama2.c tokenizer.bin reader, then encoding and
 * decoding with whatever vocabulary it read; the decoded text must make a
 * JSON string (util/json_text.h). The first 2 bytes choose the
 * vocab size asked for and how much of the rest is a text to encode.
 * Seeds: tok512.bin and the Llama-2 tokenizer.bin, behind 2 bytes. */
#include "fuzz_util.h"
#include "pagoda/tokenizer.h"
#include "util/json_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int vocab = 1 + (data[0] | (data[1] & 0x7f) << 8); /* 1..32768 */
    data += 2, size -= 2;
    size_t tlen = size < 64 ? size : 64; /* the last bytes double as a text */
    const char *path = fuzz_file(0, ".bin", data, size);
    pgd_tokenizer *t = NULL;
    if (pgd_tokenizer_load_llama2c(path, vocab, &t) != PGD_OK) return 0;
    char *text = fuzz_str(data + size - tlen, tlen);
    int32_t *ids = NULL;
    int n = 0;
    if (pgd_tokenizer_encode(t, text, 1, 1, &ids, &n) == PGD_OK) {
        char *back = NULL;
        if (pgd_tokenizer_decode_all(t, 1, ids, n, &back) == PGD_OK) {
            /* decoded text of any bytes is a JSON string, never a dropped field */
            json_t *j = pgd_json_text(back);
            if (!j) abort();
            json_decref(j);
            free(back);
        }
        for (int i = 0; i < n; i++) (void)pgd_tokenizer_decode(t, i ? ids[i - 1] : 1, ids[i]);
        free(ids);
    }
    for (int id = -1; id <= pgd_tokenizer_vocab_size(t) && id < 600; id++) (void)pgd_tokenizer_decode(t, 1, id);
    free(text);
    pgd_tokenizer_destroy(t);
    return 0;
}
