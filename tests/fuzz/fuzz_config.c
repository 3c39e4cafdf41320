/* fuzz_config.c - experiment configs: the INI reader, the schema's value
 * checks, sweeps, the rules between keys, and each run's resolved
 * config.ini read back (which must load). Seeds: the .ini files under experiments/. */
#include "fuzz_util.h"
#include "pagoda/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *text = fuzz_str(data, size);
    pgd_experiment *e = NULL;
    if (pgd_experiment_load_string(text, "fuzz.ini", &e) == PGD_OK) {
        for (int i = 0; i < pgd_experiment_num_runs(e) && i < 4; i++) {
            const pgd_run_config *r = pgd_experiment_run(e, i);
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            if (pgd_run_write_ini(r, f) != PGD_OK) abort();
            fclose(f);
            pgd_experiment *back = NULL;
            /* a resolved config must read back (issue 18: a long name did not) */
            if (pgd_experiment_load_string(buf, "config.ini", &back) != PGD_OK) {
                fprintf(stderr, "resolved config does not load back: %s\n%s\n", pgd_last_error(), buf);
                abort();
            }
            pgd_experiment_destroy(back);
            free(buf);
            (void)pgd_run_get_num(r, "workload", "rate");
            (void)pgd_run_get_size(r, "engine", "kv_memory");
        }
        pgd_experiment_destroy(e);
    }
    free(text);
    return 0;
}
