/* config_impl.h - the experiment and run structs shared by config.c
 * (parsing, sweeps, checks) and config_get.c (getters, INI writer).
 *
 * Invariants: base[] and every run's vals[] have n_keys entries in schema
 * order; line 0 means "not in the file" (base: unset; run: default). */
#ifndef PAGODA_CONFIG_IMPL_H
#define PAGODA_CONFIG_IMPL_H

#include "pagoda/config.h"

typedef struct pgd_cfg_value {
    char *value;
    int line; /* 0 = default (value borrows the schema's text), else owned */
} pgd_cfg_value;

typedef struct pgd_cfg_sweep {
    char *name;    /* "section.key" as written */
    int key_index; /* into the schema */
    char **values;
    int n_values;
    int line;
} pgd_cfg_sweep;

#define PGD_RUN_MAX_WARNINGS 4

struct pgd_run_config {
    const pgd_experiment *exp;
    int index;
    char *name;
    pgd_cfg_value *vals; /* (n_keys) */
    const char **swept;  /* (n_sweeps) values borrowed from the sweeps */
    char *warnings[PGD_RUN_MAX_WARNINGS]; /* pgd_run_warning */
    unsigned char warning_shared[PGD_RUN_MAX_WARNINGS]; /* 1: borrowed from the experiment (hol_msg) */
    int n_warnings;
};

struct pgd_experiment {
    char *path, *name;
    int n_keys;
    pgd_cfg_value *base; /* (n_keys) values from the file */
    pgd_cfg_sweep *sweeps;
    int n_sweeps;
    pgd_run_config **runs;
    int n_runs;
    int repeat_sweep; /* index of the sweep added by [experiment] repeats > 1, else -1 */
    /* the last head-of-line stall warning and what it was made of: runs with
     * the same figures share its text (a config load of many runs stays as
     * cheap as it was: the perf gate's config_load) */
    struct pgd_cfg_hol { int key[4]; char *msg; } *hol; /* owned, each msg borrowed by its runs */
    int n_hol;
};

/* The line of the i-th `--set` override: past any file's lines, so that
 * "the later-set key" is the override (pgd_run_where names it --set). */
#define PGD_CFG_LINE_SET 1000000000

#endif
