/* perf_compare.c - the instruction gate's verdicts: limits from the gate
 * config (INI), and the comparison of a current record against a
 * baseline with a report naming the functions that moved most.
 *
 * Rules: counts are compared only when the toolchain (compiler, glibc,
 * valgrind, kernel ISA) is the same; otherwise the answer is 2 and nothing
 * is judged. A workload whose count rose by more than its limit (percent
 * of the baseline) is a regression; one that fell by more is "better"
 * (time to update the baseline). Build flags that differ from the
 * baseline's are reported and the counts judged all the same. */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/perf.h"

/* ---- limits ---- */

typedef struct limits_parse {
    const char *path;
    FILE *f;
    int line;
    pgd_perf_limits *l;
    pgd_status st;
} limits_parse;

static char *read_line(char *str, int num, void *stream) {
    limits_parse *p = stream;
    if (p->st != PGD_OK || !fgets(str, num, p->f)) return NULL;
    p->line++;
    return str;
}

static int limits_fail(limits_parse *p, const char *section, const char *key, const char *value, const char *why) {
    p->st = pgd_error(PGD_ERR_INVALID, "%s:%d: [%s] %s = '%s': %s", p->path, p->line, section, key, value, why);
    return 0;
}

static int limits_handler(void *user, const char *section, const char *key, const char *value) {
    limits_parse *p = user;
    char *end;
    double v = strtod(value, &end);
    int num_ok = end != value && !*end && isfinite(v) && v >= 0;
    if (!strcmp(section, "gate") || !strcmp(section, "ab")) {
        if (strcmp(key, "threshold")) return limits_fail(p, section, key, value, "unknown key (keys: threshold)");
        if (!num_ok) return limits_fail(p, section, key, value, "must be a non-negative number (percent)");
        if (!strcmp(section, "gate")) p->l->pct_default = v;
        else p->l->ab_pct = v;
        return 1;
    }
    if (!strncmp(section, "workload.", 9)) {
        const char *name = section + 9;
        if (!pgd_perf_find(name)) return limits_fail(p, section, key, value, pgd_last_error());
        if (strcmp(key, "threshold")) return limits_fail(p, section, key, value, "unknown key (keys: threshold)");
        if (!num_ok) return limits_fail(p, section, key, value, "must be a non-negative number (percent)");
        pgd_perf_limits *l = p->l;
        char **nn = realloc(l->names, sizeof *nn * (size_t)(l->n + 1));
        if (nn) l->names = nn;
        double *np = realloc(l->pct, sizeof *np * (size_t)(l->n + 1));
        if (np) l->pct = np;
        if (!nn || !np) {
            p->st = pgd_error(PGD_ERR_OOM, "out of memory reading %s", p->path);
            return 0;
        }
        l->names[l->n] = strdup(name);
        l->pct[l->n++] = v;
        return 1;
    }
    return limits_fail(p, section, key, value, "unknown section (sections: gate, ab, workload.<name>)");
}

pgd_status pgd_perf_limits_load(const char *path, pgd_perf_limits *out) {
    memset(out, 0, sizeof *out);
    out->pct_default = 1;
    out->ab_pct = 5;
    if (!path) return PGD_OK;
    FILE *f = fopen(path, "r");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    limits_parse p = {.path = path, .f = f, .l = out, .st = PGD_OK};
    int rc = ini_parse_stream(read_line, &p, limits_handler, &p);
    fclose(f);
    if (p.st == PGD_OK && rc != 0)
        p.st = pgd_error(PGD_ERR_INVALID, "%s:%d: syntax error (expected [section] or key = value)", path, rc);
    if (p.st != PGD_OK) pgd_perf_limits_free(out);
    return p.st;
}

void pgd_perf_limits_free(pgd_perf_limits *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->pct);
    l->names = NULL;
    l->pct = NULL;
    l->n = 0;
}

double pgd_perf_limit_for(const pgd_perf_limits *l, const char *workload) {
    double v = l ? l->pct_default : 1;
    for (int i = 0; l && i < l->n; i++)
        if (!strcmp(l->names[i], workload)) v = l->pct[i]; /* the last one given wins */
    return v;
}

/* ---- comparison ---- */

static void commas(char *buf, size_t n, int64_t v) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(raw), k = 0;
    if (v < 0 && k + 1 < n) buf[k++] = '-';
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        buf[k++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len) buf[k++] = ',';
    }
    buf[k] = 0;
}

typedef struct mover {
    const char *name, *obj;
    int64_t base, cur; /* -1: not listed on that side (below the recorded share) */
} mover;

static int cmp_mover(const void *a, const void *b) {
    const mover *x = a, *y = b;
    int64_t dx = (x->cur < 0 ? 0 : x->cur) - (x->base < 0 ? 0 : x->base);
    int64_t dy = (y->cur < 0 ? 0 : y->cur) - (y->base < 0 ? 0 : y->base);
    dx = dx < 0 ? -dx : dx;
    dy = dy < 0 ? -dy : dy;
    if (dx != dy) return dx < dy ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* The functions whose exclusive counts moved most between b and c, top of them printed. */
static void print_movers(FILE *f, const pgd_perf_entry *b, const pgd_perf_entry *c, int top) {
    int cap = b->num_fns + c->num_fns, n = 0;
    mover *m = calloc(cap ? (size_t)cap : 1, sizeof *m);
    if (!m) return;
    for (int i = 0; i < b->num_fns; i++)
        m[n++] = (mover){.name = b->fns[i].name, .obj = b->fns[i].obj, .base = b->fns[i].ir, .cur = -1};
    for (int i = 0; i < c->num_fns; i++) {
        int k;
        for (k = 0; k < n && strcmp(m[k].name, c->fns[i].name); k++) {}
        if (k == n) m[n++] = (mover){.name = c->fns[i].name, .obj = c->fns[i].obj, .base = -1};
        m[k].cur = c->fns[i].ir;
        if (!m[k].obj[0]) m[k].obj = c->fns[i].obj;
    }
    qsort(m, (size_t)n, sizeof *m, cmp_mover);
    int64_t change = c->instructions - b->instructions, shown = 0;
    fprintf(f, "    functions that moved most (exclusive instructions, baseline -> current):\n");
    for (int i = 0; i < n && i < top; i++) {
        /* a function a record leaves out has under PGD_PERF_MIN_IR there: moves smaller than
         * that may be artifacts of the cut and are not shown */
        int64_t d = (m[i].cur < 0 ? 0 : m[i].cur) - (m[i].base < 0 ? 0 : m[i].base);
        if ((d < 0 ? -d : d) < PGD_PERF_MIN_IR) break;
        shown++;
        char ds[32], bs[32], cs[32], fn[300];
        commas(ds, sizeof ds, d);
        if (m[i].base < 0) snprintf(bs, sizeof bs, "(< %d)", PGD_PERF_MIN_IR);
        else commas(bs, sizeof bs, m[i].base);
        if (m[i].cur < 0) snprintf(cs, sizeof cs, "(< %d)", PGD_PERF_MIN_IR);
        else commas(cs, sizeof cs, m[i].cur);
        snprintf(fn, sizeof fn, "%s%s%s%s", m[i].name, m[i].obj[0] ? " [" : "", m[i].obj, m[i].obj[0] ? "]" : "");
        char share[32] = "";
        if (change != 0) snprintf(share, sizeof share, "%5.0f%% of the change", 100.0 * (double)d / (double)change);
        fprintf(f, "      %s%-14s %-44s %15s -> %-15s %s\n", d > 0 ? "+" : "", ds, fn, bs, cs, share);
    }
    if (!shown) fprintf(f, "      (no function moved by %d instructions or more)\n", PGD_PERF_MIN_IR);
    free(m);
}

static int differs(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

int pgd_perf_compare(const pgd_perf_record *baseline, const pgd_perf_record *current,
                     const pgd_perf_limits *limits, int top, FILE *f) {
    FILE *out = f ? f : fopen("/dev/null", "w");
    if (!out) return 2;
    int rc = 0;
    /* the toolchain: different counts for the same code, so nothing to judge */
    struct { const char *what, *b, *c; } tc[] = {{"compiler", baseline->compiler, current->compiler},
                                                 {"glibc", baseline->glibc, current->glibc},
                                                 {"valgrind", baseline->valgrind, current->valgrind},
                                                 {"CPU kernels (ISA)", baseline->isa, current->isa}};
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        if (!differs(tc[i].b, tc[i].c)) continue;
        if (!rc) fprintf(out, "perf gate: the toolchain changed since the baseline; instruction counts of "
                              "different toolchains are not comparable, nothing judged:\n");
        fprintf(out, "  %-18s baseline '%s', now '%s'\n", tc[i].what, tc[i].b, tc[i].c);
        rc = 2;
    }
    if (rc) {
        fprintf(out, "  Make new baselines with this toolchain (scripts/perf_gate.sh --update, see README).\n");
        goto done;
    }
    for (int i = 0; i < current->num_entries; i++)
        if (!pgd_perf_record_find(baseline, current->entries[i].workload)) {
            fprintf(out, "perf gate: workload %s has no baseline (scripts/perf_gate.sh --update makes one)\n",
                    current->entries[i].workload);
            rc = 2;
        }
    for (int i = 0; i < baseline->num_entries; i++)
        if (!pgd_perf_record_find(current, baseline->entries[i].workload)) {
            fprintf(out, "perf gate: workload %s of the baseline was not measured\n", baseline->entries[i].workload);
            rc = 2;
        }
    if (rc) goto done;

    fprintf(out, "toolchain : %s, glibc %s, %s, %s kernels (as the baseline)\n", current->compiler, current->glibc,
            current->valgrind, current->isa);
    fprintf(out, "baseline  : commit %.12s, %s, %s build, flags '%s'\n", baseline->commit, baseline->date,
            baseline->build_type, baseline->c_flags);
    if (differs(baseline->c_flags, current->c_flags) || differs(baseline->build_type, current->build_type))
        fprintf(out, "current   : %s build, flags '%s'  <- NOT the baseline's build flags (judged all the same)\n",
                current->build_type, current->c_flags);
    else fprintf(out, "current   : same build flags\n");
    fprintf(out, "\n| %-18s | %15s | %15s | %8s | %6s | %-10s |\n", "workload", "baseline", "current", "change",
            "limit", "verdict");
    fprintf(out, "|--------------------|-----------------|-----------------|----------|--------|------------|\n");
    int regressions = 0;
    pgd_perf_verdict *v = calloc((size_t)current->num_entries + 1, sizeof *v);
    double *chg = calloc((size_t)current->num_entries + 1, sizeof *chg);
    if (!v || !chg) {
        free(v);
        free(chg);
        rc = 2;
        goto done;
    }
    for (int i = 0; i < current->num_entries; i++) {
        const pgd_perf_entry *c = &current->entries[i], *b = pgd_perf_record_find(baseline, c->workload);
        double lim = pgd_perf_limit_for(limits, c->workload);
        chg[i] = b->instructions > 0 ? 100.0 * (double)(c->instructions - b->instructions) / (double)b->instructions
                                     : (c->instructions > 0 ? INFINITY : 0);
        v[i] = chg[i] > lim ? PGD_PERF_REGRESSION : chg[i] < -lim ? PGD_PERF_BETTER : PGD_PERF_OK;
        regressions += v[i] == PGD_PERF_REGRESSION;
        char bs[32], cs[32], lim_s[16];
        commas(bs, sizeof bs, b->instructions);
        commas(cs, sizeof cs, c->instructions);
        snprintf(lim_s, sizeof lim_s, "%g%%", lim);
        fprintf(out, "| %-18s | %15s | %15s | %+7.2f%% | %6s | %-10s |\n", c->workload, bs, cs, chg[i], lim_s,
                v[i] == PGD_PERF_REGRESSION ? "REGRESSION" : v[i] == PGD_PERF_BETTER ? "better" : "ok");
    }
    for (int i = 0; i < current->num_entries; i++) {
        const pgd_perf_entry *c = &current->entries[i], *b = pgd_perf_record_find(baseline, c->workload);
        if (v[i] == PGD_PERF_OK && fabs(chg[i]) < 0.1) continue; /* unchanged: nothing to show */
        fprintf(out, "\n%s %s: %+.2f%% instructions (limit %g%%)%s\n",
                v[i] == PGD_PERF_REGRESSION ? "REGRESSION" : v[i] == PGD_PERF_BETTER ? "better" : "moved",
                c->workload, chg[i], pgd_perf_limit_for(limits, c->workload),
                differs(b->check, c->check) ? "; its output differs from the baseline's" : "");
        print_movers(out, b, c, top);
    }
    fprintf(out, "\n");
    if (regressions) {
        fprintf(out, "perf gate: FAILED: %d workload%s over the limit:", regressions, regressions > 1 ? "s" : "");
        for (int i = 0; i < current->num_entries; i++)
            if (v[i] == PGD_PERF_REGRESSION) fprintf(out, " %s", current->entries[i].workload);
        fprintf(out, "\n  If the cost is intended, update the baselines in the same change (README: \"Updating "
                     "the perf baselines\").\n");
        rc = 1;
    } else {
        int better = 0;
        for (int i = 0; i < current->num_entries; i++) better += v[i] == PGD_PERF_BETTER;
        fprintf(out, "perf gate: passed (%d workloads within their limits%s)\n", current->num_entries,
                better ? "; some got cheaper: update the baselines to keep the gain" : "");
    }
    free(v);
    free(chg);
done:
    if (!f) fclose(out);
    return rc;
}
