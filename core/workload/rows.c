/* rows.c - the staging area of raw rows (rows.h) that the trace and dataset
 * readers fill and workload.c turns into requests: its own file, so the
 * readers depend on it and not on workload.c, which calls them. */
#include <stdlib.h>
#include <string.h>

#include "rows.h"

pgd_status pgd_wl_rows_push(pgd_wl_rows *rs, pgd_wl_row **out) {
    if (rs->n == rs->cap) {
        int64_t cap = rs->cap ? rs->cap * 2 : 256;
        pgd_wl_row *v = realloc(rs->v, (size_t)cap * sizeof *v);
        if (!v) return pgd_error(PGD_ERR_OOM, "workload: out of memory staging rows");
        rs->v = v;
        rs->cap = cap;
    }
    *out = &rs->v[rs->n++];
    memset(*out, 0, sizeof **out);
    return PGD_OK;
}

void pgd_wl_rows_free(pgd_wl_rows *rs) {
    for (int64_t i = 0; i < rs->n; i++) {
        free(rs->v[i].prompt);
        free(rs->v[i].hash_ids);
        free(rs->v[i].text);
        free(rs->v[i].out_text);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}
