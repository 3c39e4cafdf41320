/* fuzz_safetensors.c - the safetensors checkpoint loader: a directory with a
 * fixed small config.json (dim 16, 1 layer, 2 heads, hidden 32, vocab 8)
 * and the input as model.safetensors, loaded on the CPU backend. Any input
 * is loaded or rejected with an error, never a crash or a read outside the
 * mapping. Seeds: a valid checkpoint of that shape (tests/fuzz/seeds/
 * safetensors) and its damaged variants. */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "pagoda/model.h"

static char dir[128];
static pgd_backend *be;

static void cleanup(void) {
    char p[256];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/pgd_fuzz_st_%d_XXXXXX", (int)getpid());
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        pgd_log_set_level(PGD_LOG_ERROR);
        snprintf(p, sizeof p, "%s/config.json", dir);
        FILE *f = fopen(p, "w");
        if (!f) abort();
        fputs("{\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 1, "
              "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 8, "
              "\"max_position_embeddings\": 32, \"tie_word_embeddings\": true}", f);
        fclose(f);
        pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
        if (pgd_backend_create(&bc, &be) != PGD_OK) abort();
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    pgd_model *m = NULL;
    if (pgd_model_load(dir, NULL, be, &m) == PGD_OK) pgd_model_destroy(m);
    return 0;
}
