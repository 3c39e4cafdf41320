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
#include "pagoda/model.h"

#define MAX_RUNS 100000

static const char *const sections[] = {"experiment", "model", "parallel", "engine", "sampling", "workload", "slo", "compare", NULL};

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
    int fixed = !strcmp(sec, "experiment") && (!strcmp(dot + 1, "name") || !strcmp(dot + 1, "output_dir"));
    if (ki < 0 || fixed) {
        char keys[600];
        if (fixed) return fail(ps, PGD_ERR_INVALID, "[sweep] %s: the experiment's name and output_dir cannot be swept", name);
        if (!known_section(sec))
            return fail(ps, PGD_ERR_INVALID, "[sweep] %s: unknown section '%s'", name, sec);
        keys_of(sec, keys, sizeof keys);
        return fail(ps, PGD_ERR_INVALID, "[sweep] %s: unknown key '%s' in [%s] (keys: %s)", name, dot + 1, sec, keys);
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
    if (!known_section(section))
        return fail(ps, PGD_ERR_INVALID, "[%s] %s: unknown section [%s] (sections: experiment, model, parallel, engine, "
                    "sampling, workload, slo, compare, sweep)", section, name, section);
    int ki = schema_index(section, name);
    if (ki < 0) {
        char keys[600];
        keys_of(section, keys, sizeof keys);
        return fail(ps, PGD_ERR_INVALID, "[%s] %s = '%s': unknown key (keys of [%s]: %s)", section, name, value,
                    section, keys);
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
    for (int i = 0; i < nkeys && r->vals; i++) free(r->vals[i].value);
    for (int i = 0; i < r->n_warnings; i++) free(r->warnings[i]);
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
        r->vals[i].line = e->base[i].line;
        r->vals[i].value = xstrdup(e->base[i].line ? e->base[i].value : schema[i].def);
        if (!r->vals[i].value) goto oom;
    }
    char name[512] = "";
    int rest = index;
    for (int s = e->n_sweeps - 1; s >= 0; s--) { /* first sweep key varies slowest */
        pgd_cfg_sweep *sw = &e->sweeps[s];
        int vi = rest % sw->n_values;
        rest /= sw->n_values;
        r->swept[s] = sw->values[vi];
        free(r->vals[sw->key_index].value);
        if (!(r->vals[sw->key_index].value = xstrdup(sw->values[vi]))) goto oom;
        r->vals[sw->key_index].line = sw->line;
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

/* Rules between keys, checked for every run before any run starts. */
static pgd_status check_run(pgd_run_config *r) {
    const key_ix *K = keys_ix();
    if (set_num(r, K->num_blocks) == 1)
        BAD("engine", "num_blocks",
            "num_blocks = 1 leaves no usable block (block 0 is the null block): give 0 (size the cache "
            "from kv_memory) or at least 2");
    if (pgd_run_get_int(r, "engine", "num_blocks") && *pgd_run_get_str(r, "engine", "kv_memory"))
        BAD("engine", later(r, "engine", "num_blocks", "kv_memory"), "set num_blocks or kv_memory, not both");
    pgd_kv_kind kind;
    PGD_ASSERT(pgd_kv_kind_parse(pgd_run_get_str(r, "engine", "kv_manager"), &kind) == PGD_OK);
    if (pgd_run_get_bool(r, "engine", "prefix_caching") && kind != PGD_KV_PAGED)
        BAD("engine", later(r, "engine", "prefix_caching", "kv_manager"),
            "prefix_caching = on needs kv_manager = paged (got %s)", pgd_run_get_str(r, "engine", "kv_manager"));
    if (pgd_run_get_int(r, "sampling", "beam_width") > 0 && pgd_run_get_int(r, "sampling", "n") > 1)
        BAD("sampling", later(r, "sampling", "beam_width", "n"), "beam_width and n > 1 cannot be combined");
    if (pgd_run_get_int(r, "sampling", "beam_width") > 0 && kind != PGD_KV_PAGED)
        BAD("sampling", "beam_width", "beam search needs kv_manager = paged (got %s)",
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
    /* a trace replays its own timestamps (arrival = default or trace): a
     * swept rate would label identical runs with different rates */
    int rate_swept = 0;
    for (int s = 0; s < r->exp->n_sweeps; s++)
        rate_swept |= r->exp->sweeps[s].key_index == K->rate && r->exp->sweeps[s].n_values > 1;
    if (rate_swept && !strcmp(src, "trace") && (!strcmp(arr, "default") || !strcmp(arr, "trace")))
        BAD("workload", "rate",
            "rate is swept, but source = trace replays the trace's own arrival times (arrival = %s), so every "
            "run would be the same workload under a different label; sweep workload.time_scale to change the "
            "load, or set arrival = poisson to draw arrivals at each rate", arr);
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

static pgd_status load_text(const char *text, const char *path, pgd_experiment **out) {
    *out = NULL;
    pgd_status st = PGD_ERR_OOM;
    pgd_experiment *e = calloc(1, sizeof *e);
    if (!e) return pgd_error(PGD_ERR_OOM, "config: out of memory");
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
    return load_text(text, name, out);
}

pgd_status pgd_experiment_load(const char *path, pgd_experiment **out) {
    if (!path || !out) return pgd_error(PGD_ERR_INVALID, "config: NULL argument");
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
    pgd_status st = load_text(text, path, out);
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
    free(e->name);
    free(e->path);
    free(e);
}
