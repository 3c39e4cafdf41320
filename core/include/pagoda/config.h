/* config.h - experiment configs: INI files (parsed by libinih) describing
 * a model, engine settings, a workload, SLOs, regression thresholds and
 * sweeps, expanded into runs.
 *
 * Every key of every section is declared in one schema (config_schema.c)
 * with its type, range and default. pgd_experiment_load() parses the file,
 * checks every key and value (unknown section or key, wrong type, value out
 * of range, unknown policy / KV manager / distribution, missing model,
 * trace or dataset file, empty or malformed sweep list, key set twice),
 * expands the [sweep] section (keys "section.key = v1, v2, ...") into the
 * cartesian product of runs (the first sweep key varies slowest) and checks
 * every run's cross-key rules (e.g. prefix caching needs a KV manager that can cache prefixes)
 * BEFORE any run starts. The first failure is returned as PGD_ERR_INVALID
 * (PGD_ERR_IO for an unreadable config) with one message line:
 *   "FILE:LINE: [section] key = 'value': what is wrong"
 *
 * A run's resolved config holds a value for every schema key (the
 * default when unset); getters never fail for schema keys of the right
 * type (they PGD_ASSERT on a programming error). Runs are named from their
 * swept values: "rate-4_policy-sjf" ("run" without a sweep). */
#ifndef PAGODA_CONFIG_H
#define PAGODA_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pagoda/status.h"

typedef struct pgd_experiment pgd_experiment;
typedef struct pgd_run_config pgd_run_config;

/* Load and validate a config file / an in-memory config (`name` stands for
 * the file in messages). */
pgd_status pgd_experiment_load(const char *path, pgd_experiment **out);
pgd_status pgd_experiment_load_string(const char *text, const char *name, pgd_experiment **out);
/* Load with `--set` overrides: each "section.key=value" checked like a line
 * of the file and replacing the file's value (an unknown section or key is
 * an error with a did-you-mean; a swept key cannot be overridden). Messages
 * about an overridden key name "--set section.key=value". */
pgd_status pgd_experiment_load_overrides(const char *path, const char *const *sets, int n_sets,
                                         pgd_experiment **out);

/* Repeats: [experiment] repeats = N > 1 adds one last sweep key,
 * experiment.repeat = 1..N (varying fastest; run names end "_repeat-K");
 * repeat K's run has repeats = 1 and seed pgd_repeat_seed(seed, K), so its
 * config.ini reloads to that one run. Repeat 1 keeps the seed. */
#define PGD_REPEAT_SEED_STEP 1000003ull
uint64_t pgd_repeat_seed(uint64_t seed, int repeat);
/* A hash of a run's resolved config (every key but [experiment] name,
 * output_dir, description and [compare]): two runs with equal hashes ran
 * the same settings. summary.json records it as "config_hash"; `pagoda run`
 * refuses to keep a run of another config next to new ones. */
uint64_t pgd_run_config_hash(const pgd_run_config *r);
void pgd_experiment_destroy(pgd_experiment *e);

const char *pgd_experiment_path(const pgd_experiment *e);
/* [experiment] name (default: the config file's base name without .ini). */
const char *pgd_experiment_name(const pgd_experiment *e);
int pgd_experiment_num_runs(const pgd_experiment *e);
/* Borrowed; NULL when i is out of range. */
const pgd_run_config *pgd_experiment_run(const pgd_experiment *e, int i);
/* Swept keys ("section.key"), in [sweep] order. */
int pgd_experiment_num_swept(const pgd_experiment *e);
const char *pgd_experiment_swept_key(const pgd_experiment *e, int i);

const char *pgd_run_name(const pgd_run_config *r);
const pgd_experiment *pgd_run_experiment(const pgd_run_config *r);
int pgd_run_index(const pgd_run_config *r);
/* The swept value of sweep key i for this run. */
const char *pgd_run_swept_value(const pgd_run_config *r, int i);

/* Resolved values. get_str returns the text as written (or the default). */
const char *pgd_run_get_str(const pgd_run_config *r, const char *section, const char *key);
int pgd_run_get_int(const pgd_run_config *r, const char *section, const char *key);
uint64_t pgd_run_get_u64(const pgd_run_config *r, const char *section, const char *key);
double pgd_run_get_num(const pgd_run_config *r, const char *section, const char *key); /* inf allowed */
size_t pgd_run_get_size(const pgd_run_config *r, const char *section, const char *key);
int pgd_run_get_bool(const pgd_run_config *r, const char *section, const char *key);
/* 1 if the key was given in the file or by the sweep, 0 if it is a default. */
int pgd_run_is_set(const pgd_run_config *r, const char *section, const char *key);
/* Warnings about a run that is valid but likely not what was meant (e.g.
 * policy = priority with every request of one priority): found when the
 * config is loaded, printed by `pagoda run` and recorded in summary.json. */
int pgd_run_num_warnings(const pgd_run_config *r);
const char *pgd_run_warning(const pgd_run_config *r, int i);
/* "FILE:LINE: [section] key = 'value'" for messages about a key found
 * wrong only at run time (e.g. a KV memory too small for the model). */
const char *pgd_run_where(const pgd_run_config *r, const char *section, const char *key, char *buf, size_t n);

/* The resolved config as INI (every key, defaults included, sweep
 * applied; "; default" marks unset keys). Re-loading it gives one run with
 * the same values. */
pgd_status pgd_run_write_ini(const pgd_run_config *r, FILE *f);

/* ---- the schema ------------------------------------------------------- */

typedef enum pgd_cfg_type {
    PGD_CFG_STR = 0, /* free text */
    PGD_CFG_NAME,    /* [A-Za-z0-9._-]+ (used in paths) */
    PGD_CFG_INT,     /* integer in [lo, hi] */
    PGD_CFG_U64,     /* non-negative 64-bit integer */
    PGD_CFG_NUM,     /* finite number in [lo, hi]; "inf" too when hi is INFINITY */
    PGD_CFG_SIZE,    /* bytes: 1048576, 64M, 2G, 512K */
    PGD_CFG_BOOL,    /* on|off|true|false|yes|no|1|0 */
    PGD_CFG_CHOICE,  /* one of `choices` ("a|b|c") */
    PGD_CFG_POLICY,  /* a registered scheduling policy */
    PGD_CFG_KV,      /* a registered KV manager name */
    PGD_CFG_MODEL,   /* random:<shape> or an existing file */
    PGD_CFG_FILE,    /* an existing readable file (relative to the working directory) */
    PGD_CFG_LIST,    /* comma list of words */
    PGD_CFG_ROUTER,  /* a registered cluster router (cluster.h) */
} pgd_cfg_type;

typedef struct pgd_cfg_key {
    const char *section, *key;
    pgd_cfg_type type;
    double lo, hi;       /* INT / NUM bounds */
    const char *choices; /* CHOICE: "a|b|c" */
    const char *def;     /* default as text ("" = unset / none) */
    const char *help;    /* one line for the README and config.ini comments */
} pgd_cfg_key;

/* The schema: all keys, terminated by an entry with section == NULL. */
const pgd_cfg_key *pgd_config_schema(void);
const pgd_cfg_key *pgd_config_find_key(const char *section, const char *key);
/* Check one value against its key: PGD_OK, or PGD_ERR_INVALID with "what is
 * wrong" (without file/line) in the message. */
pgd_status pgd_config_check_value(const pgd_cfg_key *k, const char *value);
/* Parse helpers shared with the CLI (same rules as the schema types). */
int pgd_config_parse_bool(const char *v, int *out);
int pgd_config_parse_size(const char *v, size_t *out);

#endif
