/* fuzz_llama2c.c - loading a model file (llama2.c checkpoint, or GGUF when
 * the input starts with "GGUF") onto the CPU backend: header checks, size
 * accounting against the file, weights. Seeds: stories260K.bin. */
#include "fuzz_util.h"
#include "pagoda/backend.h"
#include "pagoda/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static pgd_backend *b;
    if (!b) {
        pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
        if (pgd_backend_create(&bc, &b) != PGD_OK) abort();
    }
    const char *path = fuzz_file(0, ".bin", data, size);
    int ctx;
    (void)pgd_model_peek_context(path, &ctx);
    pgd_model *m = NULL;
    if (pgd_model_load(path, NULL, b, &m) == PGD_OK) pgd_model_destroy(m);
    return 0;
}
