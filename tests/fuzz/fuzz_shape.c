/* fuzz_shape.c - the `random:` model shape parser (named shapes and
 * key=value specs; issue 18: dim=622222222 overflowed), and the sizes it
 * leads to. Seeds: tests/fuzz/seeds/shape. */
#include "fuzz_util.h"
#include "pagoda/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *spec = fuzz_str(data, size);
    pgd_model_config c;
    if (pgd_model_shape(spec, &c) == PGD_OK) {
        (void)pgd_model_config_params(&c);
        (void)pgd_model_config_weight_bytes(&c);
        (void)pgd_kv_cache_block_bytes(&c, 16);
    }
    char full[4200];
    snprintf(full, sizeof full, "random:%s", spec);
    int ctx;
    (void)pgd_model_peek_context(full, &ctx);
    free(spec);
    return 0;
}
