/* cluster_trace.c - the replicas' decision traces in one file (cluster_trace.h).
 *
 * Invariants: replica r's stream is written only by r's engine, inside its
 * step (its worker thread, or the caller's thread); `line` and `pending`
 * of r are touched by that writer during a step and by the flush between
 * steps, never both at once (the cluster's step returns after every
 * replica's step). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "runner/cluster_trace.h"

typedef struct rtrace {
    struct pgd_cluster_trace *t;
    int index;
    FILE *f;
    char *line; /* a line not yet ended */
    size_t n_line, cap_line;
    char *pending; /* rewritten lines not yet flushed */
    size_t n_pending, cap_pending;
    int lost; /* out of memory: a line was dropped */
} rtrace;

struct pgd_cluster_trace {
    int n;
    rtrace *r;
    FILE **files;
    const pgd_cluster *c;
};

static int append(char **buf, size_t *n, size_t *cap, const char *p, size_t k) {
    if (*n + k + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < *n + k + 1) nc *= 2;
        char *q = realloc(*buf, nc);
        if (!q) return -1;
        *buf = q;
        *cap = nc;
    }
    memcpy(*buf + *n, p, k);
    *n += k;
    (*buf)[*n] = 0;
    return 0;
}

static void map_id(rtrace *r, json_t *v) {
    if (!json_is_integer(v)) return;
    int64_t cid = pgd_cluster_id_of(r->t->c, r->index, (int64_t)json_integer_value(v));
    if (cid >= 0) json_integer_set(v, (json_int_t)cid);
}

static void map_ids(rtrace *r, json_t *arr) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) map_id(r, v);
}

/* "victim: request N needed ..." names an engine id too. */
static void map_reason(rtrace *r, json_t *s) {
    const char *text = json_string_value(s), *pre = "victim: request ";
    if (!text || strncmp(text, pre, strlen(pre))) return;
    char *end;
    long long e = strtoll(text + strlen(pre), &end, 10);
    int64_t cid = pgd_cluster_id_of(r->t->c, r->index, e);
    if (end == text + strlen(pre) || cid < 0) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s%lld%s", pre, (long long)cid, end);
    json_string_set(s, buf);
}

/* One scheduler line -> {"replica":R, ...its members, ids mapped}. */
static void rewrite(rtrace *r, const char *text, size_t len) {
    json_error_t je;
    json_t *in = json_loadb(text, len, 0, &je), *out = json_object();
    char *s = NULL;
    if (in && out && json_is_object(in)) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(in, "batch"), i, v) map_id(r, json_array_get(v, 0));
        map_ids(r, json_object_get(in, "admitted"));
        map_ids(r, json_object_get(in, "swapped_in"));
        map_ids(r, json_object_get(in, "dropped"));
        json_array_foreach(json_object_get(in, "preempted"), i, v) {
            map_id(r, json_array_get(v, 0));
            map_reason(r, json_array_get(v, 2));
        }
        map_id(r, json_object_get(json_object_get(in, "waiting"), "head"));
        json_object_set_new(out, "replica", json_integer(r->index));
        json_object_update(out, in);
        s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    if (!s || append(&r->pending, &r->n_pending, &r->cap_pending, s, strlen(s)) ||
        append(&r->pending, &r->n_pending, &r->cap_pending, "\n", 1))
        r->lost = 1;
    free(s);
    json_decref(in);
    json_decref(out);
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t size) {
    rtrace *r = cookie;
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(buf + i, '\n', size - i);
        size_t k = nl ? (size_t)(nl - (buf + i)) : size - i;
        if (append(&r->line, &r->n_line, &r->cap_line, buf + i, k)) r->lost = 1;
        i += k;
        if (!nl) break;
        i++; /* the newline */
        if (r->n_line > 0) rewrite(r, r->line, r->n_line);
        r->n_line = 0;
    }
    return (ssize_t)size;
}

void pgd_cluster_trace_destroy(pgd_cluster_trace *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        if (t->files[i]) fclose(t->files[i]);
        free(t->r[i].line);
        free(t->r[i].pending);
    }
    free(t->files);
    free(t->r);
    free(t);
}

pgd_status pgd_cluster_trace_create(int replicas, pgd_cluster_trace **out) {
    *out = NULL;
    pgd_cluster_trace *t = calloc(1, sizeof *t);
    if (!t || !(t->r = calloc((size_t)replicas, sizeof *t->r)) ||
        !(t->files = calloc((size_t)replicas, sizeof *t->files))) {
        pgd_cluster_trace_destroy(t);
        return pgd_error(PGD_ERR_OOM, "runner: out of memory for the decision trace");
    }
    t->n = replicas;
    for (int i = 0; i < replicas; i++) {
        rtrace *r = &t->r[i];
        r->t = t;
        r->index = i;
        cookie_io_functions_t io = {.write = cookie_write};
        if (!(t->files[i] = fopencookie(r, "w", io)) || setvbuf(t->files[i], NULL, _IOLBF, 0) != 0) {
            pgd_cluster_trace_destroy(t);
            return pgd_error(PGD_ERR_OOM, "runner: cannot open replica %d's decision trace", i);
        }
    }
    *out = t;
    return PGD_OK;
}

FILE *const *pgd_cluster_trace_files(pgd_cluster_trace *t) { return t->files; }

void pgd_cluster_trace_attach(pgd_cluster_trace *t, const pgd_cluster *c) { t->c = c; }

pgd_status pgd_cluster_trace_flush(pgd_cluster_trace *t, FILE *out) {
    for (int i = 0; i < t->n; i++) {
        rtrace *r = &t->r[i];
        if (r->lost) return pgd_error(PGD_ERR_OOM, "runner: replica %d's decision trace lost a line", i);
        if (r->n_pending && fwrite(r->pending, 1, r->n_pending, out) != r->n_pending)
            return pgd_error(PGD_ERR_OOM, "runner: decision trace lost");
        r->n_pending = 0;
    }
    return PGD_OK;
}
