/* rows.h - the raw rows a trace or dataset file holds (rows.c), staged
 * before workload.c selects, clips and times them into requests. The
 * container only: trace.c and dataset.c fill it, workload.c reads it. */
#ifndef PAGODA_WORKLOAD_ROWS_H
#define PAGODA_WORKLOAD_ROWS_H

#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_wl_row {
    int64_t row;         /* 0-based data row in the file */
    int64_t t_sec;       /* timestamp: whole seconds (has_time) */
    double t_frac;       /* and the fraction */
    int in_len, out_len; /* out_len 0 = unknown */
    int32_t *prompt;     /* tokens when known (dataset), else NULL */
    int64_t *hash_ids;   /* Mooncake */
    int n_hash_ids;
    char *text, *out_text; /* dataset texts before tokenization (owned) */
    int client, slo_class; /* trace columns "client", "slo_class" (0 when absent) */
} pgd_wl_row;

typedef struct pgd_wl_rows {
    pgd_wl_row *v;
    int64_t n, cap;
    int has_time;
    int64_t rows_read; /* data rows seen */
    int64_t skipped;   /* rows dropped (empty prompt) */
} pgd_wl_rows;

pgd_status pgd_wl_rows_push(pgd_wl_rows *rs, pgd_wl_row **out);
void pgd_wl_rows_free(pgd_wl_rows *rs);

#endif
