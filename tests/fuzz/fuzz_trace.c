/* fuzz_trace.c - workloads from traces and datasets: the Azure/Vidur/
 * lengths CSV and Mooncake JSONL readers, then selection, clipping to a
 * context and arrivals (issue 18: huge lengths and times). The first
 * byte picks the reader (0 CSV, 1 Mooncake JSONL, 2 dataset JSON with the
 * stories260K tokenizer from $PGD_FUZZ_TOKENIZER when set) and the context.
 * Seeds: the head of every shared trace (tests/fuzz/run.sh). */
#include "fuzz_util.h"
#include "pagoda/tokenizer.h"
#include "pagoda/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static pgd_tokenizer *tok;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *tp = getenv("PGD_FUZZ_TOKENIZER");
        if (tp && pgd_tokenizer_load_llama2c(tp, 512, &tok) != PGD_OK) tok = NULL;
    }
    if (size < 1) return 0;
    int kind = data[0] % 3, ctx = (data[0] >> 2) ? 64 << (data[0] >> 5) : 0;
    data++, size--;
    static const char *const suffix[] = {".csv", ".jsonl", ".json"};
    const char *path = fuzz_file(kind, suffix[kind], data, size);
    pgd_workload_config c = {.source = kind == 2 ? PGD_WL_DATASET : PGD_WL_TRACE, .path = path, .seed = 7,
                             .vocab_size = 512, .max_model_len = ctx, .num_requests = 64, .shared_prefix_len = 3,
                             .time_scale = 0.5, .tokenizer = tok};
    if (kind == 2 && !tok) return 0;
    pgd_workload *w = NULL;
    if (pgd_workload_create(&c, &w) == PGD_OK) {
        pgd_workload_summary s;
        pgd_workload_describe(w, &s);
        char desc[512];
        pgd_workload_format(w, desc, sizeof desc);
        pgd_workload_destroy(w);
    }
    return 0;
}
