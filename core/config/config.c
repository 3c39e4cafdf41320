/* config.c - experiment configs: INI parsing (libinih, fed line by line so
 * every key keeps its line number), per-key validation against the schema,
 * [sweep] expansion into runs, cross-key checks and typed getters.
 *
 * Invariants: every stored value passed its key's check; a run holds one
 * value per schema key (vals[i] belongs to schema[i]; line 0 = default);
 * runs are built and checked completely before load returns, so a bad
 * config never starts a run. The first error wins and stops parsing. */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "pagoda/kv_manager.h"
#include "util/suggest.h"
#include "pagoda/model.h"

#define MAX_RUNS 100000

static const char *const sections[] = {"experiment", "model", "parallel", "engine",  "sampling",
                                       "workload",   "slo",   "compare",  "cluster", NULL};

static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    return d;
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct parse_state {
    pgd_experiment *e;
    const char *text, *pos;
    int line;
    int indented;          /* the current line starts with a blank (a continuation) */
    char last_section[64], last_key[128]; /* of the previous key = value */
    int failed;
    pgd_status st;
} parse_state;

static int fail(parse_state *ps, pgd_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parse_state *ps, pgd_status st, const char *fmt, ...) {
    if (ps->failed) return 0;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pgd_error(st, "%s:%d: %s", ps->e->path, ps->line, msg);
    ps->failed = 1;
    ps->st = st;
    return 0;
}

/* The longest line the reader takes (ini_parse_stream's buffer less the
 * newline and NUL): every value must fit one "key = value" line of the
 * run's config.ini (pgd_run_write_ini), or the written config cannot be
 * read back (a 192-character name could be given as "name=..." but not
 * written as "name = ..."). LIST values are written one item a line. */
#define LINE_MAX_CHARS (INI_MAX_LINE - 2)

static const char *too_long(const pgd_cfg_key *k, const char *v, char *msg, size_t n) {
    size_t len = strlen(k->key) + 3 + strlen(v);
    if (k->type == PGD_CFG_LIST || len <= LINE_MAX_CHARS) return NULL;
    snprintf(msg, n,
             "a value of %zu characters: its line '%s = ...' in the run's config.ini would be %zu characters, "
             "more than the %d a config line may hold (at most %zu for this key)",
             strlen(v), k->key, len, LINE_MAX_CHARS, LINE_MAX_CHARS - 3 - strlen(k->key));
    return msg;
}

/* ini_reader over the in-memory text: one line per call, counted. */
static char *reader(char *str, int num, void *stream) {
    parse_state *ps = stream;
    if (ps->failed || !*ps->pos) return NULL;
    const char *nl = strchr(ps->pos, '\n');
    size_t len = nl ? (size_t)(nl - ps->pos + 1) : strlen(ps->pos);
    ps->line++;
    if (len + 1 > (size_t)num) {
        fail(ps, PGD_ERR_INVALID, "line longer than %d characters (split the sweep list or shorten the value)", num - 2);
        return NULL;
    }
    memcpy(str, ps->pos, len);
    str[len] = 0;
    ps->indented = str[0] == ' ' || str[0] == '\t';
    ps->pos += len;
    return str;
}

static int known_section(const char *s) {
    for (int i = 0; sections[i]; i++)
        if (!strcmp(sections[i], s)) return 1;
    return 0;
}

static void keys_of(const char *section, char *buf, size_t n) {
    buf[0] = 0;
    for (const pgd_cfg_key *k = pgd_config_schema(); k->section; k++) {
        if (strcmp(k->section, section)) continue;
        if (buf[0]) strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, k->key, n - strlen(buf) - 1);
    }
}

/* " (did you mean 'x'?)" for an unknown key of a section, or "" */
static const char *key_hint(const char *section, const char *key, char *buf, size_t n) {
    const char *cands[128];
    size_t nc = 0;
    for (const pgd_cfg_key *k = pgd_config_schema(); k->section && nc < 128; k++)
        if (!strcmp(k->section, section)) cands[nc++] = k->key;
    const char *best = pgd_suggest(key, cands, nc);
    if (best) snprintf(buf, n, " (did you mean '%s'?)", best);
    else buf[0] = 0;
    return buf;
}

static const char *section_hint(const char *section, char *buf, size_t n) {
    static const char *const all[] = {"experiment", "model",   "parallel", "engine", "sampling", "workload",
                                      "slo",        "compare", "cluster",  "sweep",  NULL};
    const char *best = pgd_suggest(section, all, (size_t)-1);
    if (best) snprintf(buf, n, " (did you mean [%s]?)", best);
    else buf[0] = 0;
    return buf;
}

static int schema_index(const char *section, const char *key) {
    const pgd_cfg_key *k = pgd_config_find_key(section, key);
    return k ? (int)(k - pgd_config_schema()) : -1;
}

static int add_sweep_values(parse_state *ps, pgd_cfg_sweep *sw, const char *name, const char *value);

static int add_sweep(parse_state *ps, const char *name, const char *value) {
    pgd_experiment *e = ps->e;
    const char *dot = strchr(name, '.');
    char sec[64];
    if (!dot || (size_t)(dot - name) >= sizeof sec)
        return fail(ps, PGD_ERR_INVALID, "[sweep] %s: sweep keys are written section.key (e.g. workload.rate)", name);
    memcpy(sec, name, (size_t)(dot - name));
    sec[dot - name] = 0;
    int ki = schema_index(sec, dot + 1);
    int fixed = !strcmp(sec, "experiment") && (!strcmp(dot + 1, "name") || !strcmp(dot + 1, "output_dir") ||
                                              !strcmp(dot + 1, "repeats") || !strcmp(dot + 1, "repeat"));
    if (ki < 0 || fixed) {
        char keys[600], hint[160];
        if (fixed)
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s: the experiment's name, output_dir, repeats and repeat "
                        "cannot be swept (set [experiment] repeats = N to repeat every run)", name);
        if (!known_section(sec))
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s: unknown section '%s'%s", name, sec,
                        section_hint(sec, hint, sizeof hint));
        keys_of(sec, keys, sizeof keys);
        return fail(ps, PGD_ERR_INVALID, "[sweep] %s: unknown key '%s' in [%s]%s (keys: %s)", name, dot + 1, sec,
                    key_hint(sec, dot + 1, hint, sizeof hint), keys);
    }
    for (int i = 0; i < e->n_sweeps; i++)
        if (e->sweeps[i].key_index == ki)
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s: swept twice (first at line %d)", name, e->sweeps[i].line);
    pgd_cfg_sweep *sw = realloc(e->sweeps, sizeof *sw * (size_t)(e->n_sweeps + 1));
    if (!sw) return fail(ps, PGD_ERR_OOM, "out of memory");
    e->sweeps = sw;
    sw = &e->sweeps[e->n_sweeps++];
    memset(sw, 0, sizeof *sw);
    sw->key_index = ki;
    sw->line = ps->line;
    if (!(sw->name = xstrdup(name))) return fail(ps, PGD_ERR_OOM, "out of memory");
    return add_sweep_values(ps, sw, name, value);
}

static int add_sweep_values(parse_state *ps, pgd_cfg_sweep *sw, const char *name, const char *value) {
    int ki = sw->key_index;
    if (!*value) return fail(ps, PGD_ERR_INVALID, "[sweep] %s = '': empty sweep (give a comma list of values)", name);
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (!len && !comma && p != value) break; /* "1, 2," continued on the next line */
        if (!len) return fail(ps, PGD_ERR_INVALID, "[sweep] %s = '%s': empty value in the sweep list", name, value);
        char **vs = realloc(sw->values, sizeof *vs * (size_t)(sw->n_values + 1));
        if (!vs) return fail(ps, PGD_ERR_OOM, "out of memory");
        sw->values = vs;
        if (!(vs[sw->n_values] = strndup(p, len))) return fail(ps, PGD_ERR_OOM, "out of memory");
        const char *v = vs[sw->n_values++];
        for (int j = 0; j < sw->n_values - 1; j++)
            if (!strcmp(sw->values[j], v))
                return fail(ps, PGD_ERR_INVALID, "[sweep] %s = '%s': value '%s' listed twice", name, value, v);
        if (pgd_config_check_value(&pgd_config_schema()[ki], v) != PGD_OK)
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s = '%s': %s", name, v, pgd_last_error());
        char msg[300];
        if (too_long(&pgd_config_schema()[ki], v, msg, sizeof msg))
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s = '%.40s...': %s", name, v, msg);
        if (!comma) break;
        p = comma + 1;
    }
    return 1;
}

/* An indented line continues the previous key's list: a sweep list or a
 * LIST key (e.g. [compare] metrics) gets more comma-separated items. */
static int continuation(parse_state *ps, const char *section, const char *name, const char *value) {
    pgd_experiment *e = ps->e;
    if (!strcmp(section, "sweep")) {
        for (int i = 0; i < e->n_sweeps; i++)
            if (!strcmp(e->sweeps[i].name, name)) return add_sweep_values(ps, &e->sweeps[i], name, value);
        return 0; /* the sweep failed to register: already reported */
    }
    int ki = schema_index(section, name);
    if (ki < 0 || pgd_config_schema()[ki].type != PGD_CFG_LIST)
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': continuation line (indented) after a key that is not a list",
                    section, name, value);
    if (pgd_config_check_value(&pgd_config_schema()[ki], value) != PGD_OK)
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': %s", section, name, value, pgd_last_error());
    char *joined = NULL;
    if (asprintf(&joined, "%s,%s", e->base[ki].value, value) < 0) return fail(ps, PGD_ERR_OOM, "out of memory");
    free(e->base[ki].value);
    e->base[ki].value = joined;
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_state *ps = user;
    pgd_experiment *e = ps->e;
    if (ps->failed) return 0;
    if (ps->indented && !strcmp(section, ps->last_section) && !strcmp(name, ps->last_key))
        return continuation(ps, section, name, value);
    snprintf(ps->last_section, sizeof ps->last_section, "%s", section);
    snprintf(ps->last_key, sizeof ps->last_key, "%s", name);
    if (!*section) return fail(ps, PGD_ERR_INVALID, "%s = '%s': key outside a section (start with [experiment])", name, value);
    if (!strcmp(section, "sweep")) return add_sweep(ps, name, value);
    char hint[160];
    if (!known_section(section))
        return fail(ps, PGD_ERR_INVALID,
                    "[%s] %s: unknown section [%s]%s (sections: experiment, model, parallel, "
                    "engine, sampling, workload, slo, compare, cluster, sweep)",
                    section, name, section, section_hint(section, hint, sizeof hint));
    int ki = schema_index(section, name);
    if (ki < 0) {
        char keys[600];
        keys_of(section, keys, sizeof keys);
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': unknown key%s (keys of [%s]: %s)", section, name, value,
                    key_hint(section, name, hint, sizeof hint), section, keys);
    }
    if (e->base[ki].line > 0)
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': set twice (first at line %d)", section, name, value,
                    e->base[ki].line);
    if (pgd_config_check_value(&pgd_config_schema()[ki], value) != PGD_OK)
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': %s", section, name, value, pgd_last_error());
    char msg[300];
    if (too_long(&pgd_config_schema()[ki], value, msg, sizeof msg))
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%.40s...': %s", section, name, value, msg);
    char *v = xstrdup(value);
    if (!v) return fail(ps, PGD_ERR_OOM, "out of memory");
    free(e->base[ki].value);
    e->base[ki].value = v;
    e->base[ki].line = ps->line;
    return 1;
}

/* ---- runs ------------------------------------------------------------- */

static void run_destroy(pgd_run_config *r, int nkeys) {
    if (!r) return;
    for (int i = 0; i < nkeys && r->vals; i++)
        if (r->vals[i].line) free(r->vals[i].value); /* line 0: the schema's default, borrowed */
    for (int i = 0; i < r->n_warnings; i++)
        if (!r->warning_shared[i]) free(r->warnings[i]);
    free(r->vals);
    free(r->swept);
    free(r->name);
    free(r);
}

static void append_name(char *buf, size_t n, const char *key, const char *value) {
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s%s-", len ? "_" : "", key);
    len = strlen(buf);
    for (const char *p = value; *p && len + 1 < n; p++) {
        char c = *p;
        int ok = c == '.' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        buf[len++] = ok ? c : '_';
    }
    buf[len] = 0;
}

static pgd_status build_run(pgd_experiment *e, int index, pgd_run_config **out) {
    const pgd_cfg_key *schema = pgd_config_schema();
    pgd_run_config *r = calloc(1, sizeof *r);
    if (!r) return pgd_error(PGD_ERR_OOM, "config: out of memory");
    r->exp = e;
    r->index = index;
    r->vals = calloc((size_t)e->n_keys, sizeof *r->vals);
    r->swept = calloc((size_t)e->n_sweeps + 1, sizeof *r->swept);
    if (!r->vals || !r->swept) goto oom;
    for (int i = 0; i < e->n_keys; i++) {
        /* a default borrows the schema's text (most keys of most runs: a load
         * of many runs allocates only what the file and the sweep set) */
        r->vals[i].line = e->base[i].line;
        r->vals[i].value = e->base[i].line ? xstrdup(e->base[i].value) : (char *)schema[i].def;
        if (!r->vals[i].value) goto oom;
    }
    char name[512] = "";
    int rest = index;
    for (int s = e->n_sweeps - 1; s >= 0; s--) { /* first sweep key varies slowest */
        pgd_cfg_sweep *sw = &e->sweeps[s];
        int vi = rest % sw->n_values;
        rest /= sw->n_values;
        r->swept[s] = sw->values[vi];
        pgd_cfg_value *v = &r->vals[sw->key_index];
        if (v->line) free(v->value);
        v->line = sw->line; /* > 0: owned from here on */
        if (!(v->value = xstrdup(sw->values[vi]))) goto oom;
    }
    if (e->repeat_sweep >= 0) { /* one repeat of a repeated run: repeats = 1, its own seed */
        int rep = atoi(r->swept[e->repeat_sweep]), si = schema_index("experiment", "seed");
        char buf[32];
        pgd_cfg_value *rv = &r->vals[schema_index("experiment", "repeats")], *sv = &r->vals[si];
        if (rv->line) free(rv->value); /* set in the file or by --set: line > 0 */
        rv->line = e->sweeps[e->repeat_sweep].line;
        if (!(rv->value = xstrdup("1"))) goto oom;
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)pgd_repeat_seed(strtoull(sv->value, NULL, 10), rep));
        if (sv->line) free(sv->value);
        else sv->line = e->sweeps[e->repeat_sweep].line;
        if (!(sv->value = xstrdup(buf))) goto oom;
    }
    for (int s = 0; s < e->n_sweeps; s++) append_name(name, sizeof name, schema[e->sweeps[s].key_index].key, r->swept[s]);
    if (!(r->name = xstrdup(e->n_sweeps ? name : "run"))) goto oom;
    *out = r;
    return PGD_OK;
oom:
    run_destroy(r, e->n_keys);
    return pgd_error(PGD_ERR_OOM, "config: out of memory");
}

#define BAD(sec, key, ...) return bad(r, sec, key, __VA_ARGS__)
static pgd_status bad(const pgd_run_config *r, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pgd_status bad(const pgd_run_config *r, const char *sec, const char *key, const char *fmt, ...) {
    char where[600], msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pgd_run_where(r, sec, key, where, sizeof where);
    if (r->exp->n_sweeps) return pgd_error(PGD_ERR_INVALID, "%s: %s (in run %s)", where, msg, r->name);
    return pgd_error(PGD_ERR_INVALID, "%s: %s", where, msg);
}

/* The later-set of two keys (so the message points at the line to fix). */
static const char *later(const pgd_run_config *r, const char *sec, const char *a, const char *b) {
    int la = r->vals[schema_index(sec, a)].line, lb = r->vals[schema_index(sec, b)].line;
    return la >= lb ? a : b;
}

static void warn(pgd_run_config *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(pgd_run_config *r, const char *fmt, ...) {
    if (r->n_warnings >= PGD_RUN_MAX_WARNINGS) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *m = xstrdup(msg);
    if (m) r->warnings[r->n_warnings++] = m;
}

int pgd_run_num_warnings(const pgd_run_config *r) { return r ? r->n_warnings : 0; }
const char *pgd_run_warning(const pgd_run_config *r, int i) {
    return r && i >= 0 && i < r->n_warnings ? r->warnings[i] : NULL;
}

/* The checks of issue 18 read keys by their schema index, found once, and
 * only where the file or a sweep set them: a config load costs about what
 * it did (the perf gate's config_load). */
typedef struct {
    int num_blocks, input_len, input_mean, input_min, shared_prefix_len, policy, num_priorities, rate;
    int turns, think_time, max_history; /* multi-turn */
} key_ix;

static const key_ix *keys_ix(void) {
    static key_ix k;
    static int done;
    if (!done) {
        k = (key_ix){schema_index("engine", "num_blocks"), schema_index("workload", "input_len"),
                     schema_index("workload", "input_mean"), schema_index("workload", "input_min"),
                     schema_index("workload", "shared_prefix_len"), schema_index("engine", "policy"),
                     schema_index("workload", "num_priorities"), schema_index("workload", "rate"),
                     schema_index("workload", "turns"), schema_index("workload", "think_time"),
                     schema_index("workload", "max_history")};
        done = 1;
    }
    return &k;
}

/* The value of key index i as a number when the file or a sweep set it, else 0. */
static double set_num(const pgd_run_config *r, int i) {
    return r->vals[i].line > 0 ? strtod(r->vals[i].value, NULL) : 0;
}

/* The head-of-line stall (issue 19): with chunked prefill off a prompt is
 * prefilled whole in one step, so a step budget that the longest prompt the
 * workload can produce nearly fills (the budget equal to the context, the
 * scheduler's default) leaves no tokens for the running sequences' decodes:
 * one near-context prompt stalls the whole batch (latency up to 13x on the
 * Azure trace). Warn when the budget is below the longest prompt plus one
 * decode token per sequence (max_num_seqs). Keys are read by schema index
 * and the text is shared between runs with the same figures. */
static void hol_stall_warning(pgd_run_config *r, int ctx, int toks, int seqs, const char *src) {
    static int ix_chunked = -1, ix_kind, ix_max, ix_pre, ix_mean;
    if (ix_chunked < 0) {
        ix_kind = schema_index("workload", "input_len");
        ix_max = schema_index("workload", "input_max");
        ix_pre = schema_index("workload", "shared_prefix_len");
        ix_mean = schema_index("workload", "input_mean");
        ix_chunked = schema_index("engine", "chunked_prefill");
    }
    int chunked = 0;
    if (!ctx || r->n_warnings >= PGD_RUN_MAX_WARNINGS ||
        (pgd_config_parse_bool(r->vals[ix_chunked].value, &chunked) && chunked))
        return;
    int budget = toks ? toks : ctx > 2048 ? ctx : 2048; /* the scheduler's default */
    int nseqs = seqs ? seqs : 256;
    int longest = ctx - 1; /* a trace or dataset prompt is clipped to the context */
    if (!strcmp(src, "synthetic")) {
        double imax = atof(r->vals[ix_max].value), pre = atof(r->vals[ix_pre].value), l = longest;
        if (!strcmp(r->vals[ix_kind].value, "fixed")) l = atof(r->vals[ix_mean].value) + pre;
        else if (imax > 0) l = imax + pre;
        if (l < longest) longest = (int)l;
    }
    if ((double)budget >= (double)longest + nseqs) return;
    pgd_experiment *e = (pgd_experiment *)r->exp;
    int key[4] = {budget, longest, ctx, nseqs * 2 + (toks != 0)}, h = 0;
    while (h < e->n_hol && memcmp(key, e->hol[h].key, sizeof key)) h++;
    if (h == e->n_hol) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "[engine] max_num_batched_tokens = %d%s with chunked_prefill off: a prompt of up to %d tokens (the "
                 "longest this workload can produce; the model's context is %d) is prefilled whole in one step and "
                 "leaves %d tokens for the decodes of up to %d running sequences, so one long prompt stalls the "
                 "batch (head-of-line blocking); set max_num_batched_tokens >= %d (e.g. %d) or chunked_prefill = on",
                 budget, toks ? "" : " (the default)", longest, ctx, budget - longest, nseqs, longest + nseqs,
                 2 * ctx);
        struct pgd_cfg_hol *v = realloc(e->hol, sizeof *v * (size_t)(e->n_hol + 1));
        if (!v) return;
        e->hol = v;
        if (!(v[h].msg = xstrdup(msg))) return;
        memcpy(v[h].key, key, sizeof key);
        e->n_hol++;
    }
    r->warning_shared[r->n_warnings] = 1;
    r->warnings[r->n_warnings++] = e->hol[h].msg;
}

/* Rules between keys, checked for every run before any run starts. */
static pgd_status check_run(pgd_run_config *r) {
    const key_ix *K = keys_ix();
    if (set_num(r, K->num_blocks) == 1)
        BAD("engine", "num_blocks",
            "num_blocks = 1 leaves no usable block (block 0 is the null block): give 0 (size the cache "
            "from kv_memory) or at least 2");
    if (pgd_run_get_int(r, "engine", "num_blocks") && *pgd_run_get_str(r, "engine", "kv_memory"))
        BAD("engine", later(r, "engine", "num_blocks", "kv_memory"), "set num_blocks or kv_memory, not both");
    pgd_kv_caps kv_caps = 0;
    char kv_with[128];
    PGD_ASSERT(pgd_kv_manager_find(pgd_run_get_str(r, "engine", "kv_manager"), &kv_caps) == PGD_OK);
    if (pgd_run_get_bool(r, "engine", "prefix_caching") && !(kv_caps & PGD_KV_CAN_CACHE_PREFIX))
        BAD("engine", later(r, "engine", "prefix_caching", "kv_manager"),
            "prefix_caching = on needs kv_manager = %s (got %s)",
            pgd_kv_manager_names_with(PGD_KV_CAN_CACHE_PREFIX, " or ", kv_with, sizeof kv_with),
            pgd_run_get_str(r, "engine", "kv_manager"));
    if (pgd_run_get_int(r, "sampling", "beam_width") > 0 && pgd_run_get_int(r, "sampling", "n") > 1)
        BAD("sampling", later(r, "sampling", "beam_width", "n"), "beam_width and n > 1 cannot be combined");
    if (pgd_run_get_int(r, "sampling", "beam_width") > 0 && !(kv_caps & PGD_KV_CAN_FORK))
        BAD("sampling", "beam_width", "beam search needs kv_manager = %s (got %s)",
            pgd_kv_manager_names_with(PGD_KV_CAN_FORK, " or ", kv_with, sizeof kv_with),
            pgd_run_get_str(r, "engine", "kv_manager"));
    int seqs = pgd_run_get_int(r, "engine", "max_num_seqs"), toks = pgd_run_get_int(r, "engine", "max_num_batched_tokens");
    if (seqs && toks && seqs > toks)
        BAD("engine", later(r, "engine", "max_num_seqs", "max_num_batched_tokens"),
            "max_num_seqs (%d) exceeds max_num_batched_tokens (%d)", seqs, toks);
    const char *model = pgd_run_get_str(r, "model", "path");
    int ctx = 0; /* 0: a model that cannot be read now fails when its run loads it, naming the file */
    if (pgd_model_peek_context(model, &ctx) != PGD_OK) ctx = 0;
    if (ctx && toks && !pgd_run_get_bool(r, "engine", "chunked_prefill") && toks < ctx)
        BAD("engine", "max_num_batched_tokens",
            "must be >= the model's context (%d) when chunked_prefill is off (a recomputed sequence is prefilled whole)",
            ctx);
    const char *src = pgd_run_get_str(r, "workload", "source"), *path = pgd_run_get_str(r, "workload", "path");
    hol_stall_warning(r, ctx, toks, seqs, src);
    /* a synthetic input length no draw of which fits the context (the
     * workload refuses it too, but only once the run has loaded the model) */
    int fixed = !strcmp(r->vals[K->input_len].value, "fixed");
    double least = fixed ? set_num(r, K->input_mean) : 0, imin = set_num(r, K->input_min);
    if (imin > least) least = imin;
    least += set_num(r, K->shared_prefix_len);
    if (ctx && least > ctx - 1 && !strcmp(src, "synthetic"))
        BAD("workload", fixed ? "input_mean" : "input_min",
            "every prompt (at least %.0f tokens with shared_prefix_len) would be clipped to the model's context: a "
            "prompt holds at most %d tokens (context %d, less 1 for the output)", least, ctx - 1, ctx);
    const char *arr = pgd_run_get_str(r, "workload", "arrival");
    if (strcmp(src, "synthetic") && !*path) BAD("workload", "source", "source = %s needs [workload] path", src);
    if (!strcmp(src, "synthetic") && *path) BAD("workload", "path", "path is only read by source = trace or dataset");
    if (!strcmp(arr, "closed-loop") && pgd_run_get_int(r, "workload", "concurrency") <= 0)
        BAD("workload", "arrival", "arrival = closed-loop needs [workload] concurrency > 0");
    int turns = r->vals[K->turns].line > 0 ? (int)set_num(r, K->turns) : 1;
    if (turns == 0) BAD("workload", "turns", "turns = 0: use 1 for single-turn requests, >= 2 or -1 for conversations");
    if (turns != 1 && !strcmp(src, "trace"))
        BAD("workload", "turns", "turns = %d needs conversations: source = synthetic or dataset (a trace has none)", turns);
    if (turns == -1 && !strcmp(src, "synthetic"))
        BAD("workload", "turns", "turns = -1 (every turn) needs source = dataset; synthetic conversations need turns >= 2");
    if (turns != 1 && set_num(r, K->shared_prefix_len) > 0)
        BAD("workload", "shared_prefix_len", "shared_prefix_len is not used with turns = %d (the history is the shared prefix)", turns);
    if (turns == 1 && (set_num(r, K->think_time) > 0 || set_num(r, K->max_history) > 0))
        BAD("workload", set_num(r, K->think_time) > 0 ? "think_time" : "max_history",
            "is only used by multi-turn conversations (set [workload] turns)");
    if (!strcmp(arr, "trace") && strcmp(src, "trace"))
        BAD("workload", "arrival", "arrival = trace needs source = trace (got %s)", src);
    if ((!strcmp(arr, "poisson") || !strcmp(arr, "gamma")) && isinf(pgd_run_get_num(r, "workload", "rate")))
        BAD("workload", later(r, "workload", "rate", "arrival"), "arrival = %s needs a finite rate", arr);
    /* a trace replayed at a rate (arrival = default or trace) has its
     * timestamps rescaled to that mean rate: a time_scale other than 1 would
     * be ignored (1, as every run's config.ini writes it, is no conflict) */
    if (!strcmp(src, "trace") && (!strcmp(arr, "default") || !strcmp(arr, "trace")) &&
        isfinite(pgd_run_get_num(r, "workload", "rate")) && pgd_run_get_num(r, "workload", "time_scale") != 1.0)
        BAD("workload", later(r, "workload", "rate", "time_scale"),
            "set rate (replay the trace at that mean request rate) or time_scale (multiply its timestamps), "
            "not both");
    if (!strcmp(r->vals[K->policy].value, "priority") && set_num(r, K->num_priorities) <= 1)
        warn(r, "policy = priority, but [workload] num_priorities is %.0f: every request has priority 0, so the run "
             "schedules exactly as fcfs (set num_priorities >= 2 to give requests priorities)",
             set_num(r, K->num_priorities));
    if (!strcmp(src, "dataset") && !strncmp(pgd_run_get_str(r, "model", "path"), "random:", 7) &&
        !*pgd_run_get_str(r, "model", "tokenizer"))
        BAD("model", "tokenizer", "source = dataset with a random model needs [model] tokenizer");
    return PGD_OK;
}

/* ---- load ------------------------------------------------------------- */

uint64_t pgd_repeat_seed(uint64_t seed, int repeat) {
    return repeat <= 1 ? seed : seed + (uint64_t)(repeat - 1) * PGD_REPEAT_SEED_STEP;
}

/* `--set section.key=value` overrides: each checked like a line of the file
 * (did-you-mean for unknown names), replacing the file's value; a swept key
 * cannot be overridden (the sweep would replace it). */
static pgd_status apply_overrides(pgd_experiment *e, const char *const *sets, int n) {
    for (int i = 0; i < n; i++) {
        const char *s = sets[i], *dot = strchr(s, '.'), *eq = strchr(s, '=');
        char sec[64], key[128], hint[160], keys[600];
        if (!dot || !eq || dot > eq || dot == s || eq == dot + 1 || (size_t)(dot - s) >= sizeof sec ||
            (size_t)(eq - dot - 1) >= sizeof key)
            return pgd_error(PGD_ERR_INVALID, "--set '%s': expected section.key=value (e.g. workload.rate=4)", s);
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - s), s);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        const char *value = eq + 1;
        while (*value == ' ') value++;
        if (!strcmp(sec, "sweep"))
            return pgd_error(PGD_ERR_INVALID, "--set '%s': sweeps are set in the file's [sweep] section", s);
        if (!known_section(sec))
            return pgd_error(PGD_ERR_INVALID, "--set '%s': unknown section [%s]%s", s, sec,
                             section_hint(sec, hint, sizeof hint));
        int ki = schema_index(sec, key);
        if (ki < 0) {
            keys_of(sec, keys, sizeof keys);
            return pgd_error(PGD_ERR_INVALID, "--set '%s': unknown key '%s' in [%s]%s (keys: %s)", s, key, sec,
                             key_hint(sec, key, hint, sizeof hint), keys);
        }
        if (!strcmp(sec, "experiment") && !strcmp(key, "repeat"))
            return pgd_error(PGD_ERR_INVALID, "--set '%s': repeat is set by repeats, not by hand", s);
        for (int w = 0; w < e->n_sweeps; w++)
            if (e->sweeps[w].key_index == ki)
                return pgd_error(PGD_ERR_INVALID, "--set '%s': %s.%s is swept (%s:%d); edit the sweep instead", s,
                                 sec, key, e->path, e->sweeps[w].line);
        if (pgd_config_check_value(&pgd_config_schema()[ki], value) != PGD_OK)
            return pgd_error(PGD_ERR_INVALID, "--set '%s': [%s] %s = '%s': %s", s, sec, key, value, pgd_last_error());
        char msg[300];
        if (too_long(&pgd_config_schema()[ki], value, msg, sizeof msg))
            return pgd_error(PGD_ERR_INVALID, "--set '%.60s...': %s", s, msg);
        char *v = xstrdup(value);
        if (!v) return pgd_error(PGD_ERR_OOM, "config: out of memory");
        free(e->base[ki].value);
        e->base[ki].value = v;
        e->base[ki].line = PGD_CFG_LINE_SET + i;
    }
    return PGD_OK;
}

/* [experiment] repeats = N > 1: one more sweep, experiment.repeat = 1..N,
 * varying fastest (run names end in _repeat-K). */
static pgd_status add_repeats(pgd_experiment *e) {
    e->repeat_sweep = -1;
    int ri = schema_index("experiment", "repeats");
    int n = e->base[ri].line ? atoi(e->base[ri].value) : 1;
    if (n <= 1) return PGD_OK;
    pgd_cfg_sweep *sw = realloc(e->sweeps, sizeof *sw * (size_t)(e->n_sweeps + 1));
    if (!sw) return pgd_error(PGD_ERR_OOM, "config: out of memory");
    e->sweeps = sw;
    sw = &e->sweeps[e->n_sweeps++];
    memset(sw, 0, sizeof *sw);
    sw->key_index = schema_index("experiment", "repeat");
    sw->line = e->base[ri].line;
    if (!(sw->name = xstrdup("experiment.repeat")) || !(sw->values = calloc((size_t)n, sizeof *sw->values)))
        return pgd_error(PGD_ERR_OOM, "config: out of memory");
    for (int k = 0; k < n; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", k + 1);
        if (!(sw->values[k] = xstrdup(buf))) return pgd_error(PGD_ERR_OOM, "config: out of memory");
        sw->n_values++;
    }
    e->repeat_sweep = e->n_sweeps - 1;
    return PGD_OK;
}

static pgd_status load_text(const char *text, const char *path, const char *const *sets, int n_sets,
                            pgd_experiment **out) {
    *out = NULL;
    pgd_status st = PGD_ERR_OOM;
    pgd_experiment *e = calloc(1, sizeof *e);
    if (!e) return pgd_error(PGD_ERR_OOM, "config: out of memory");
    e->repeat_sweep = -1;
    for (const pgd_cfg_key *k = pgd_config_schema(); k->section; k++) e->n_keys++;
    e->path = xstrdup(path);
    e->base = calloc((size_t)e->n_keys, sizeof *e->base);
    if (!e->path || !e->base) goto oom;
    parse_state ps = {.e = e, .text = text, .pos = text};
    int rc = ini_parse_stream(reader, &ps, handler, &ps);
    if (ps.failed) {
        st = ps.st;
        goto fail;
    }
    if (rc != 0) {
        ps.line = rc;
        fail(&ps, PGD_ERR_INVALID, "syntax error (expected [section] or key = value)");
        st = PGD_ERR_INVALID;
        goto fail;
    }
    if ((st = apply_overrides(e, sets, n_sets)) != PGD_OK) goto fail;
    if ((st = add_repeats(e)) != PGD_OK) goto fail;
    int ni = schema_index("experiment", "name");
    if (e->base[ni].line) e->name = xstrdup(e->base[ni].value);
    else {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        e->name = xstrdup(b);
        char *dot = e->name ? strrchr(e->name, '.') : NULL;
        if (dot && dot != e->name) *dot = 0;
    }
    if (!e->name) goto oom;
    char msg[300];
    if (too_long(&pgd_config_schema()[ni], e->name, msg, sizeof msg)) {
        st = pgd_error(PGD_ERR_INVALID, "%s: [experiment] name (from the file name) '%.40s...': %s", path, e->name, msg);
        goto fail;
    }
    long n = 1;
    for (int s = 0; s < e->n_sweeps; s++) {
        if (e->sweeps[s].n_values == 0) {
            st = pgd_error(PGD_ERR_INVALID, "%s:%d: [sweep] %s: empty sweep (give a comma list of values)", path,
                           e->sweeps[s].line, e->sweeps[s].name);
            goto fail;
        }
        n *= e->sweeps[s].n_values;
        if (n > MAX_RUNS) {
            st = pgd_error(PGD_ERR_INVALID, "%s:%d: [sweep] %s: the sweep expands to more than %d runs", path,
                           e->sweeps[s].line, e->sweeps[s].name, MAX_RUNS);
            goto fail;
        }
    }
    if (!(e->runs = calloc((size_t)n, sizeof *e->runs))) goto oom;
    for (int i = 0; i < n; i++) {
        if ((st = build_run(e, i, &e->runs[i])) != PGD_OK) goto fail;
        e->n_runs++;
        if ((st = check_run(e->runs[i])) != PGD_OK) goto fail;
    }
    *out = e;
    return PGD_OK;
oom:
    st = pgd_error(PGD_ERR_OOM, "config: out of memory");
fail:
    pgd_experiment_destroy(e);
    return st;
}

pgd_status pgd_experiment_load_string(const char *text, const char *name, pgd_experiment **out) {
    if (!text || !name || !out) return pgd_error(PGD_ERR_INVALID, "config: NULL argument");
    return load_text(text, name, NULL, 0, out);
}

pgd_status pgd_experiment_load(const char *path, pgd_experiment **out) {
    return pgd_experiment_load_overrides(path, NULL, 0, out);
}

pgd_status pgd_experiment_load_overrides(const char *path, const char *const *sets, int n_sets,
                                         pgd_experiment **out) {
    if (!path || !out || n_sets < 0 || (n_sets && !sets)) return pgd_error(PGD_ERR_INVALID, "config: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return pgd_error(PGD_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                return pgd_error(PGD_ERR_OOM, "config: out of memory");
            }
            text = t;
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(text);
        return pgd_error(PGD_ERR_IO, "%s: cannot read config", path);
    }
    if (!text) text = calloc(1, 1);
    if (!text) return pgd_error(PGD_ERR_OOM, "config: out of memory");
    text[len] = 0;
    if (strlen(text) != len) {
        free(text);
        return pgd_error(PGD_ERR_FORMAT, "%s: config contains a NUL byte (not a text file?)", path);
    }
    pgd_status st = load_text(text, path, sets, n_sets, out);
    free(text);
    return st;
}

void pgd_experiment_destroy(pgd_experiment *e) {
    if (!e) return;
    for (int i = 0; i < e->n_runs; i++) run_destroy(e->runs[i], e->n_keys);
    free(e->runs);
    for (int i = 0; i < e->n_keys && e->base; i++) free(e->base[i].value);
    free(e->base);
    for (int s = 0; s < e->n_sweeps; s++) {
        for (int j = 0; j < e->sweeps[s].n_values; j++) free(e->sweeps[s].values[j]);
        free(e->sweeps[s].values);
        free(e->sweeps[s].name);
    }
    free(e->sweeps);
    for (int h = 0; h < e->n_hol; h++) free(e->hol[h].msg);
    free(e->hol);
    free(e->name);
    free(e->path);
    free(e);
}
