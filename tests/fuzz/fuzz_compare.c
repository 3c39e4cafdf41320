/* fuzz_compare.c - `pagoda compare`'s readers: a summary.json (any JSON)
 * compared with itself and with a real baseline summary, the report as
 * JSON, and the [compare] thresholds section of an INI file. Seeds: the
 * CI baselines' summary.json and config.ini files. */
#include <jansson.h>

#include "fuzz_util.h"
#include "pagoda/compare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pgd_compare_thresholds t;
    pgd_compare_thresholds_default(&t);
    (void)pgd_compare_thresholds_load(fuzz_file(0, ".ini", data, size), &t);
    pgd_compare_thresholds_default(&t);
    json_error_t err;
    json_t *cur = json_loadb((const char *)data, size, 0, &err);
    if (!cur) return 0;
    static json_t *base;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *bp = getenv("PGD_FUZZ_BASELINE");
        base = bp ? json_load_file(bp, 0, &err) : NULL;
    }
    pgd_compare_report rep = {0};
    (void)pgd_compare_json(cur, cur, "self", &t, &rep);
    if (base) {
        (void)pgd_compare_json(base, cur, "run", &t, &rep);
        (void)pgd_compare_json(cur, base, "run", &t, &rep);
    }
    json_t *j = pgd_compare_report_json(&rep, &t, "base", "cur");
    char *s = json_dumps(j, 0);
    free(s);
    json_decref(j);
    FILE *f = fopen("/dev/null", "w");
    pgd_compare_print(&rep, 1, f);
    fclose(f);
    pgd_compare_report_free(&rep);
    /* the same through the path reader */
    const char *p = fuzz_file(1, ".json", data, size);
    rep = (pgd_compare_report){0};
    (void)pgd_compare_paths(p, p, &t, &rep);
    pgd_compare_report_free(&rep);
    json_decref(cur);
    return 0;
}
