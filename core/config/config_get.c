/* config_get.c - read access to a loaded experiment: its runs, their
 * resolved values (typed getters), "file:line: [section] key" locations for
 * run-time errors, and the resolved config written back as INI.
 *
 * Invariant: values were checked at load, so conversions here cannot fail;
 * asking for a key that is not in the schema, or with the wrong type, is a
 * programming error (PGD_ASSERT). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"

const char *pgd_experiment_path(const pgd_experiment *e) { return e->path; }
const char *pgd_experiment_name(const pgd_experiment *e) { return e->name; }
int pgd_experiment_num_runs(const pgd_experiment *e) { return e->n_runs; }
const pgd_run_config *pgd_experiment_run(const pgd_experiment *e, int i) {
    return e && i >= 0 && i < e->n_runs ? e->runs[i] : NULL;
}
int pgd_experiment_num_swept(const pgd_experiment *e) { return e->n_sweeps; }
const char *pgd_experiment_swept_key(const pgd_experiment *e, int i) {
    return i >= 0 && i < e->n_sweeps ? e->sweeps[i].name : NULL;
}

const char *pgd_run_name(const pgd_run_config *r) { return r->name; }
const pgd_experiment *pgd_run_experiment(const pgd_run_config *r) { return r->exp; }
int pgd_run_index(const pgd_run_config *r) { return r->index; }
const char *pgd_run_swept_value(const pgd_run_config *r, int i) {
    return i >= 0 && i < r->exp->n_sweeps ? r->swept[i] : NULL;
}

static const pgd_cfg_value *lookup(const pgd_run_config *r, const char *section, const char *key,
                                   const pgd_cfg_key **kout) {
    const pgd_cfg_key *k = pgd_config_find_key(section, key);
    PGD_ASSERT(k != NULL);
    if (kout) *kout = k;
    return &r->vals[k - pgd_config_schema()];
}

const char *pgd_run_get_str(const pgd_run_config *r, const char *section, const char *key) {
    return lookup(r, section, key, NULL)->value;
}

int pgd_run_get_int(const pgd_run_config *r, const char *section, const char *key) {
    const pgd_cfg_key *k;
    const pgd_cfg_value *v = lookup(r, section, key, &k);
    PGD_ASSERT(k->type == PGD_CFG_INT);
    return (int)strtol(v->value, NULL, 10);
}

uint64_t pgd_run_get_u64(const pgd_run_config *r, const char *section, const char *key) {
    const pgd_cfg_key *k;
    const pgd_cfg_value *v = lookup(r, section, key, &k);
    PGD_ASSERT(k->type == PGD_CFG_U64);
    return strtoull(v->value, NULL, 10);
}

double pgd_run_get_num(const pgd_run_config *r, const char *section, const char *key) {
    const pgd_cfg_key *k;
    const pgd_cfg_value *v = lookup(r, section, key, &k);
    PGD_ASSERT(k->type == PGD_CFG_NUM);
    return strtod(v->value, NULL);
}

size_t pgd_run_get_size(const pgd_run_config *r, const char *section, const char *key) {
    const pgd_cfg_key *k;
    const pgd_cfg_value *v = lookup(r, section, key, &k);
    PGD_ASSERT(k->type == PGD_CFG_SIZE);
    size_t s = 0;
    if (*v->value) PGD_ASSERT(pgd_config_parse_size(v->value, &s));
    return s;
}

int pgd_run_get_bool(const pgd_run_config *r, const char *section, const char *key) {
    const pgd_cfg_key *k;
    const pgd_cfg_value *v = lookup(r, section, key, &k);
    PGD_ASSERT(k->type == PGD_CFG_BOOL);
    int b = 0;
    PGD_ASSERT(pgd_config_parse_bool(v->value, &b));
    return b;
}

int pgd_run_is_set(const pgd_run_config *r, const char *section, const char *key) {
    return lookup(r, section, key, NULL)->line > 0;
}

const char *pgd_run_where(const pgd_run_config *r, const char *section, const char *key, char *buf, size_t n) {
    const pgd_cfg_value *v = lookup(r, section, key, NULL);
    if (v->line >= PGD_CFG_LINE_SET)
        snprintf(buf, n, "%s: --set %s.%s=%s", r->exp->path, section, key, v->value);
    else if (v->line > 0) snprintf(buf, n, "%s:%d: [%s] %s = '%s'", r->exp->path, v->line, section, key, v->value);
    else snprintf(buf, n, "%s: [%s] %s = '%s' (default)", r->exp->path, section, key, v->value);
    return buf;
}

/* A list, one item per indented continuation line (INI lines are short). */
static void write_list(FILE *f, const char *key, const char *v) {
    fprintf(f, "%s =", key);
    int first = 1;
    for (const char *p = v; *p;) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ') n--;
        if (n) fprintf(f, "%s%.*s", first ? " " : ",\n    ", (int)n, p);
        first = 0;
        p += n;
    }
    fputc('\n', f);
}

pgd_status pgd_run_write_ini(const pgd_run_config *r, FILE *f) {
    const pgd_cfg_key *schema = pgd_config_schema();
    fprintf(f, "; resolved config of run '%.60s' of experiment '%.40s'\n; from %.150s\n", r->name, r->exp->name,
            r->exp->path);
    for (int s = 0; s < r->exp->n_sweeps; s++)
        fprintf(f, "; swept: %.60s = %.100s\n", r->exp->sweeps[s].name, r->swept[s]);
    const char *section = NULL;
    for (int i = 0; schema[i].section; i++) {
        if (!section || strcmp(section, schema[i].section)) {
            section = schema[i].section;
            fprintf(f, "\n[%s]\n", section);
        }
        const char *v = r->vals[i].value;
        if (!strcmp(section, "experiment") && !strcmp(schema[i].key, "name")) v = r->exp->name;
        if (!*v) fprintf(f, "; %s =   (unset: %.120s)\n", schema[i].key, schema[i].help);
        else if (schema[i].type == PGD_CFG_LIST) write_list(f, schema[i].key, v);
        else if (r->vals[i].line > 0 || v != r->vals[i].value) fprintf(f, "%s = %s\n", schema[i].key, v);
        else fprintf(f, "%s = %s ; default\n", schema[i].key, v);
    }
    return ferror(f) ? pgd_error(PGD_ERR_IO, "config: write error") : PGD_OK;
}

uint64_t pgd_run_config_hash(const pgd_run_config *r) {
    const pgd_cfg_key *schema = pgd_config_schema();
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; schema[i].section; i++) {
        const char *sec = schema[i].section, *key = schema[i].key;
        if (!strcmp(sec, "compare") ||
            (!strcmp(sec, "experiment") && (!strcmp(key, "name") || !strcmp(key, "output_dir") ||
                                            !strcmp(key, "description"))))
            continue;
        for (const char *p = sec; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ '.') * 1099511628211ull;
        for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ '=') * 1099511628211ull;
        for (const char *p = r->vals[i].value; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ '\n') * 1099511628211ull;
    }
    return h;
}
