/* perf_record.c - perf records: parsing callgrind_annotate's function
 * table, the record's JSON file (read, and written whole or not at all),
 * and the history CSV.
 *
 * The JSON layout (one function per line, so a baseline update diffs
 * readably):
 *   {"format": "pagoda-perf-1",
 *    "toolchain": {"compiler": .., "glibc": .., "valgrind": .., "isa": ..},
 *    "build": {"c_flags": .., "build_type": ..},
 *    "commit": .., "date": .., "machine": ..,
 *    "workloads": [
 *     {"name": "decode_b1", "instructions": 1234, "check": "89ab..", "wall_median_s": 0.01,
 *      "functions": [
 *       {"fn": "pgd_avx2_matmul_rows", "obj": "", "ir": 1000},
 *       ...]},
 *     ...]} */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/perf.h"
#include "util/json_text.h"

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

void pgd_perf_entry_free(pgd_perf_entry *e) {
    if (!e) return;
    for (int i = 0; i < e->num_fns; i++) {
        free(e->fns[i].name);
        free(e->fns[i].obj);
    }
    free(e->fns);
    free(e->workload);
    free(e->check);
    memset(e, 0, sizeof *e);
}

void pgd_perf_record_free(pgd_perf_record *r) {
    if (!r) return;
    for (int i = 0; i < r->num_entries; i++) pgd_perf_entry_free(&r->entries[i]);
    free(r->entries);
    char **s[] = {&r->compiler, &r->glibc, &r->valgrind, &r->isa, &r->c_flags,
                  &r->build_type, &r->commit, &r->date, &r->machine};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) free(*s[i]);
    memset(r, 0, sizeof *r);
}

const pgd_perf_entry *pgd_perf_record_find(const pgd_perf_record *r, const char *workload) {
    for (int i = 0; r && i < r->num_entries; i++)
        if (!strcmp(r->entries[i].workload, workload)) return &r->entries[i];
    return NULL;
}

/* ---- callgrind_annotate ---- */

/* "198,282,198" -> 198282198; -1 if not a number. */
static int64_t parse_count(const char *s, const char **end) {
    int64_t v = 0;
    int digits = 0;
    for (; *s == ',' || (*s >= '0' && *s <= '9'); s++) {
        if (*s == ',') continue;
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*s - '0');
        digits++;
    }
    if (end) *end = s;
    return digits ? v : -1;
}

static int cmp_fn(const void *a, const void *b) {
    const pgd_perf_fn *x = a, *y = b;
    if (x->ir != y->ir) return x->ir < y->ir ? 1 : -1;
    return strcmp(x->name, y->name);
}

pgd_status pgd_perf_parse_annotate(const char *path, const char *binary, int64_t min_ir, int max_fns,
                                   pgd_perf_entry *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char bin_real[PATH_MAX] = "";
    if (binary && !realpath(binary, bin_real)) snprintf(bin_real, sizeof bin_real, "%s", binary);
    const char *bin_base = strrchr(bin_real, '/') ? strrchr(bin_real, '/') + 1 : bin_real;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, in_fns = 0, cap_fns = 0;
    int64_t total = -1;
    pgd_status st = PGD_OK;
    while (st == PGD_OK && getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        const char *p = line;
        while (*p == ' ') p++;
        if (strstr(line, "PROGRAM TOTALS")) {
            total = parse_count(p, NULL);
            if (total < 0) st = pgd_error(PGD_ERR_FORMAT, "%s:%d: PROGRAM TOTALS without a count", path, lineno);
            continue;
        }
        if (strstr(line, "file:function")) {
            in_fns = 1;
            continue;
        }
        if (!in_fns || !*p || *p == '-') continue;
        if (p[0] == '.' && p[1] == ' ') continue; /* "." = no instructions (a caller of the toggle) */
        /* IR (PCT%)  FILE:FUNCTION [OBJECT] */
        const char *q;
        int64_t ir = parse_count(p, &q);
        if (ir < 0) {
            if (!strncmp(p, "-- ", 3) || !strncmp(p, "Auto-annotated", 14)) break; /* source annotation */
            st = pgd_error(PGD_ERR_FORMAT, "%s:%d: expected 'COUNT (PCT%%) FILE:FUNCTION', got '%s'", path,
                           lineno, line);
            break;
        }
        while (*q == ' ') q++;
        if (*q == '(') q = strchr(q, ')') ? strchr(q, ')') + 1 : q + strlen(q);
        while (*q == ' ') q++;
        const char *colon = strchr(q, ':');
        if (!colon) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%d: no FILE:FUNCTION in '%s'", path, lineno, line);
            break;
        }
        char fn[1024], obj[PATH_MAX] = "";
        snprintf(fn, sizeof fn, "%s", colon + 1);
        size_t fl = strlen(fn);
        if (fl > 0 && fn[fl - 1] == ']') {
            char *br = strrchr(fn, '[');
            if (br && br > fn && br[-1] == ' ') {
                snprintf(obj, sizeof obj, "%.*s", (int)(fn + fl - 1 - br - 1), br + 1);
                br[-1] = 0;
            }
        }
        if (!strncmp(fn, "0x", 2)) { /* code without a symbol (PLT stubs): its address differs per build */
            snprintf(fn, sizeof fn, "(no symbol)");
            obj[0] = 0;
        }
        const char *obase = strrchr(obj, '/') ? strrchr(obj, '/') + 1 : obj;
        if (*obj && (!strcmp(obj, bin_real) || !strcmp(obase, bin_base))) obase = "";
        int k;
        for (k = 0; k < out->num_fns && strcmp(out->fns[k].name, fn); k++) {}
        if (k == out->num_fns) {
            if (out->num_fns == cap_fns) {
                int c = cap_fns ? 2 * cap_fns : 256;
                pgd_perf_fn *nf = realloc(out->fns, sizeof *nf * (size_t)c);
                if (!nf) {
                    st = pgd_error(PGD_ERR_OOM, "out of memory reading %s", path);
                    break;
                }
                out->fns = nf;
                cap_fns = c;
            }
            out->fns[k] = (pgd_perf_fn){.name = strdup(fn), .obj = strdup(*obj ? obase : ""), .ir = 0};
            out->num_fns++;
        } else if (!out->fns[k].obj[0] && *obj && *obase) {
            free(out->fns[k].obj);
            out->fns[k].obj = strdup(obase);
        }
        out->fns[k].ir += ir;
    }
    free(line);
    fclose(f);
    if (st == PGD_OK && total < 0)
        st = pgd_error(PGD_ERR_FORMAT, "%s: no PROGRAM TOTALS line (not callgrind_annotate output?)", path);
    if (st != PGD_OK) {
        pgd_perf_entry_free(out);
        return st;
    }
    out->instructions = total;
    out->wall_median_s = -1;
    qsort(out->fns, (size_t)out->num_fns, sizeof *out->fns, cmp_fn);
    int keep = 0;
    while (keep < out->num_fns && keep < max_fns && out->fns[keep].ir >= min_ir && out->fns[keep].ir > 0) keep++;
    for (int i = keep; i < out->num_fns; i++) {
        free(out->fns[i].name);
        free(out->fns[i].obj);
    }
    out->num_fns = keep;
    return PGD_OK;
}

/* ---- JSON ---- */

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

pgd_status pgd_perf_record_read(const char *path, pgd_perf_record *out) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (errno == ENOENT || strstr(je.text, "unable to open"))
            return pgd_error(PGD_ERR_IO, "cannot read %s: %s", path, je.text);
        return pgd_error(PGD_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    pgd_status st = PGD_OK;
    json_t *tc = json_object_get(root, "toolchain"), *b = json_object_get(root, "build"),
           *ws = json_object_get(root, "workloads");
    if (strcmp(jstr(root, "format"), "pagoda-perf-1") || !json_is_object(tc) || !json_is_array(ws)) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: not a pagoda perf record (format \"pagoda-perf-1\" with toolchain "
                                       "and workloads)", path);
        goto done;
    }
    out->compiler = dup_or_empty(jstr(tc, "compiler"));
    out->glibc = dup_or_empty(jstr(tc, "glibc"));
    out->valgrind = dup_or_empty(jstr(tc, "valgrind"));
    out->isa = dup_or_empty(jstr(tc, "isa"));
    out->c_flags = dup_or_empty(jstr(b, "c_flags"));
    out->build_type = dup_or_empty(jstr(b, "build_type"));
    out->commit = dup_or_empty(jstr(root, "commit"));
    out->date = dup_or_empty(jstr(root, "date"));
    out->machine = dup_or_empty(jstr(root, "machine"));
    size_t n = json_array_size(ws);
    out->entries = calloc(n ? n : 1, sizeof *out->entries);
    if (!out->entries) {
        st = pgd_error(PGD_ERR_OOM, "out of memory reading %s", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_array_get(ws, i), *fns = json_object_get(w, "functions"),
               *ins = json_object_get(w, "instructions");
        if (!json_is_string(json_object_get(w, "name")) || !json_is_integer(ins) || json_integer_value(ins) < 0 ||
            (fns && !json_is_array(fns))) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: workloads[%zu] needs a name and a non-negative integer "
                                           "instructions", path, i);
            goto done;
        }
        pgd_perf_entry *e = &out->entries[out->num_entries++];
        e->workload = strdup(jstr(w, "name"));
        e->check = dup_or_empty(jstr(w, "check"));
        e->instructions = json_integer_value(ins);
        json_t *wm = json_object_get(w, "wall_median_s");
        e->wall_median_s = json_is_number(wm) ? json_number_value(wm) : -1;
        size_t nf = json_array_size(fns);
        e->fns = calloc(nf ? nf : 1, sizeof *e->fns);
        if (!e->fns) {
            st = pgd_error(PGD_ERR_OOM, "out of memory reading %s", path);
            goto done;
        }
        for (size_t k = 0; k < nf; k++) {
            json_t *fo = json_array_get(fns, k), *ir = json_object_get(fo, "ir");
            if (!json_is_string(json_object_get(fo, "fn")) || !json_is_integer(ir)) {
                st = pgd_error(PGD_ERR_FORMAT, "%s: workload %s function %zu needs fn and integer ir", path,
                               e->workload, k);
                goto done;
            }
            e->fns[e->num_fns++] = (pgd_perf_fn){.name = strdup(jstr(fo, "fn")), .obj = strdup(jstr(fo, "obj")),
                                                 .ir = json_integer_value(ir)};
        }
    }
done:
    json_decref(root);
    if (st != PGD_OK) pgd_perf_record_free(out);
    return st;
}

/* A JSON string literal of s. */
static void put_str(FILE *f, const char *s) {
    json_t *j = pgd_json_text(s ? s : "");
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(d ? d : "\"\"", f);
    free(d);
    json_decref(j);
}

/* Write to a temporary file in path's directory, then rename over path. */
typedef void (*write_fn)(FILE *f, const void *ctx);

static pgd_status write_whole(const char *path, write_fn fn, const void *ctx) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return pgd_error(PGD_ERR_INVALID, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return pgd_error(PGD_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return pgd_error(PGD_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    fn(f, ctx);
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0 || fsync(fd) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        pgd_status st = pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    return PGD_OK;
}

static void write_record(FILE *f, const void *ctx) {
    const pgd_perf_record *r = ctx;
    fputs("{\"format\": \"pagoda-perf-1\",\n \"toolchain\": {\"compiler\": ", f);
    put_str(f, r->compiler);
    fputs(", \"glibc\": ", f);
    put_str(f, r->glibc);
    fputs(", \"valgrind\": ", f);
    put_str(f, r->valgrind);
    fputs(", \"isa\": ", f);
    put_str(f, r->isa);
    fputs("},\n \"build\": {\"c_flags\": ", f);
    put_str(f, r->c_flags);
    fputs(", \"build_type\": ", f);
    put_str(f, r->build_type);
    fputs("},\n \"commit\": ", f);
    put_str(f, r->commit);
    fputs(", \"date\": ", f);
    put_str(f, r->date);
    fputs(", \"machine\": ", f);
    put_str(f, r->machine);
    fputs(",\n \"workloads\": [", f);
    for (int i = 0; i < r->num_entries; i++) {
        const pgd_perf_entry *e = &r->entries[i];
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        put_str(f, e->workload);
        fprintf(f, ", \"instructions\": %lld, \"check\": ", (long long)e->instructions);
        put_str(f, e->check);
        if (e->wall_median_s >= 0) fprintf(f, ", \"wall_median_s\": %.9g", e->wall_median_s);
        fputs(",\n   \"functions\": [", f);
        for (int k = 0; k < e->num_fns; k++) {
            fputs(k ? ",\n    {\"fn\": " : "\n    {\"fn\": ", f);
            put_str(f, e->fns[k].name);
            fputs(", \"obj\": ", f);
            put_str(f, e->fns[k].obj);
            fprintf(f, ", \"ir\": %lld}", (long long)e->fns[k].ir);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
}

pgd_status pgd_perf_record_write(const pgd_perf_record *r, const char *path) {
    return write_whole(path, write_record, r);
}

/* ---- history ---- */

#define HISTORY_HEADER "commit,date,machine,workload,instructions,wall_median_s,c_flags"

typedef struct hist_ctx {
    const char *old; /* existing content (header included), or NULL */
    const pgd_perf_record *r;
} hist_ctx;

/* A CSV field: quoted when it holds a comma, a quote or a newline. */
static void put_csv(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void write_history(FILE *f, const void *ctx) {
    const hist_ctx *h = ctx;
    if (h->old) fputs(h->old, f);
    else fputs(HISTORY_HEADER "\n", f);
    for (int i = 0; i < h->r->num_entries; i++) {
        const pgd_perf_entry *e = &h->r->entries[i];
        put_csv(f, h->r->commit);
        fputc(',', f);
        put_csv(f, h->r->date);
        fputc(',', f);
        put_csv(f, h->r->machine);
        fputc(',', f);
        put_csv(f, e->workload);
        fprintf(f, ",%lld,", (long long)e->instructions);
        if (e->wall_median_s >= 0) fprintf(f, "%.9g", e->wall_median_s);
        fputc(',', f);
        put_csv(f, h->r->c_flags);
        fputc('\n', f);
    }
}

pgd_status pgd_perf_history_append(const char *path, const pgd_perf_record *current) {
    char *old = NULL;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t cap = 0, n = 0;
        char buf[65536];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
            if (n + k + 2 > cap) {
                cap = (n + k + 2) * 2;
                char *o = realloc(old, cap);
                if (!o) {
                    free(old);
                    fclose(f);
                    return pgd_error(PGD_ERR_OOM, "out of memory reading %s", path);
                }
                old = o;
            }
            memcpy(old + n, buf, k);
            n += k;
        }
        fclose(f);
        if (old) {
            if (n && old[n - 1] != '\n') old[n++] = '\n';
            old[n] = 0;
        }
        if (old && strncmp(old, HISTORY_HEADER "\n", strlen(HISTORY_HEADER) + 1)) {
            free(old);
            return pgd_error(PGD_ERR_FORMAT, "%s: not a perf history (its first line is not '%s')", path,
                             HISTORY_HEADER);
        }
    } else if (errno != ENOENT) {
        return pgd_error(PGD_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    hist_ctx h = {.old = old, .r = current};
    pgd_status st = write_whole(path, write_history, &h);
    free(old);
    return st;
}
