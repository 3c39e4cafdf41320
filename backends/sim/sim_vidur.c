/* sim_vidur.c - readers of Vidur's profiling CSV files (formats and errors:
 * sim_vidur.h). The files are plain CSV without quoting; each reader maps
 * the header's column names to indices, so column order does not matter,
 * and every value it uses is checked as it is read. */
#include "sim_vidur.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const mlp_ops[] = {"emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
                                      "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add",
                                      NULL};
const char *const *pgd_vidur_mlp_ops(void) { return mlp_ops; }

/* Vidur attention profiles also time these; they are not ops of ours */
static const char *const attn_other[] = {"attn_input_reshape", "attn_output_reshape", "attn_kv_cache_save", NULL};

void pgd_vidur_free(pgd_vidur *v) {
    if (!v) return;
    free(v->rows);
    memset(v, 0, sizeof *v);
}

static pgd_status push(pgd_vidur *v, const pgd_vidur_row *r) {
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 1024;
        pgd_vidur_row *p = realloc(v->rows, sizeof *p * (size_t)cap);
        if (!p) return pgd_error(PGD_ERR_OOM, "vidur: out of memory");
        v->rows = p;
        v->cap = cap;
    }
    v->rows[v->n++] = *r;
    return PGD_OK;
}

/* ------------------------------------------------------------ CSV lines */

#define MAX_COLS 128
typedef struct csv {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    int lineno;
    char *col[MAX_COLS];
    int ncol;
} csv;

/* Next non-blank, non-comment line split at commas; 0 at the end. */
static int csv_next(csv *c, pgd_status *st) {
    *st = PGD_OK;
    for (;;) {
        errno = 0;
        ssize_t len = getline(&c->line, &c->cap, c->f);
        if (len < 0) {
            if (errno) *st = pgd_error(PGD_ERR_IO, "%s: read error: %s", c->path, strerror(errno));
            return 0;
        }
        c->lineno++;
        while (len > 0 && (c->line[len - 1] == '\n' || c->line[len - 1] == '\r')) c->line[--len] = 0;
        if (len == 0 || c->line[0] == '#') continue;
        c->ncol = 0;
        char *p = c->line;
        for (;;) {
            if (c->ncol == MAX_COLS) {
                *st = pgd_error(PGD_ERR_FORMAT, "%s:%d: more than %d columns", c->path, c->lineno, MAX_COLS);
                return 0;
            }
            c->col[c->ncol++] = p;
            char *comma = strchr(p, ',');
            if (!comma) break;
            *comma = 0;
            p = comma + 1;
        }
        return 1;
    }
}

static pgd_status csv_open(csv *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->f = fopen(path, "r");
    if (!c->f) return pgd_error(PGD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return PGD_OK;
}

static void csv_close(csv *c) {
    if (c->f) fclose(c->f);
    free(c->line);
}

/* Header names -> owned copies (the line buffer is reused). */
typedef struct header {
    char *name[MAX_COLS];
    int n;
} header;

static pgd_status header_read(csv *c, header *h) {
    pgd_status st;
    memset(h, 0, sizeof *h);
    if (!csv_next(c, &st)) return st ? st : pgd_error(PGD_ERR_FORMAT, "%s: empty file (no header)", c->path);
    for (int i = 0; i < c->ncol; i++) {
        h->name[i] = strdup(c->col[i]);
        if (!h->name[i]) return pgd_error(PGD_ERR_OOM, "vidur: out of memory");
        h->n++;
    }
    return PGD_OK;
}

static void header_free(header *h) {
    for (int i = 0; i < h->n; i++) free(h->name[i]);
}

static int header_find(const header *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->name[i], name)) return i;
    return -1;
}

static pgd_status need(const csv *c, const header *h, const char *name, int *idx) {
    *idx = header_find(h, name);
    if (*idx < 0) return pgd_error(PGD_ERR_FORMAT, "%s: missing column '%s'", c->path, name);
    return PGD_OK;
}

/* A number in column idx of the current line; positive = 1: > 0 (a time). */
static pgd_status num(const csv *c, const header *h, int idx, int positive, double *out) {
    if (idx >= c->ncol)
        return pgd_error(PGD_ERR_FORMAT, "%s:%d: %d columns, the header has %d", c->path, c->lineno, c->ncol, h->n);
    const char *s = c->col[idx];
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE)
        return pgd_error(PGD_ERR_FORMAT, "%s:%d: column '%s' is '%s', not a number", c->path, c->lineno,
                         h->name[idx], s);
    if (!isfinite(v) || v < 0 || (positive && v <= 0))
        return pgd_error(PGD_ERR_FORMAT, "%s:%d: column '%s' is %s: %s", c->path, c->lineno, h->name[idx], s,
                         positive ? "a time must be a positive finite number of ms" : "must be finite and >= 0");
    *out = v;
    return PGD_OK;
}

static pgd_status whole(const csv *c, const header *h, int idx, int lo, int *out) {
    double v = 0;
    PGD_TRY(num(c, h, idx, 0, &v));
    if (v != floor(v) || v < lo || v > 1e9)
        return pgd_error(PGD_ERR_FORMAT, "%s:%d: column '%s' is %g: needs a whole number >= %d", c->path,
                         c->lineno, h->name[idx], v, lo);
    *out = (int)v;
    return PGD_OK;
}

/* time_stats.<op>.<stat>: *op gets <op>, or 0 if the name is not of that form. */
static int stat_op(const char *name, char *op, size_t n) {
    const char *pre = "time_stats.";
    if (strncmp(name, pre, strlen(pre))) return 0;
    const char *a = name + strlen(pre), *dot = strrchr(a, '.');
    if (!dot || dot == a || (size_t)(dot - a) >= n) return 0;
    memcpy(op, a, (size_t)(dot - a));
    op[dot - a] = 0;
    return 1;
}

static int in_list(const char *const *list, const char *s) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], s)) return 1;
    return 0;
}

/* ------------------------------------------------------------------ MLP */

pgd_status pgd_vidur_read_mlp(pgd_vidur *v, const char *path) {
    csv c;
    header h;
    pgd_status st = csv_open(&c, path);
    if (st) return st;
    if ((st = header_read(&c, &h))) goto done;
    int i_tok, i_tp, i_head, i_kv, i_embd, i_hid, i_voc, i_gated, i_med[16], have[16] = {0};
    if ((st = need(&c, &h, "num_tokens", &i_tok)) || (st = need(&c, &h, "num_tensor_parallel_workers", &i_tp)) ||
        (st = need(&c, &h, "n_head", &i_head)) || (st = need(&c, &h, "n_kv_head", &i_kv)) ||
        (st = need(&c, &h, "n_embd", &i_embd)) || (st = need(&c, &h, "n_expanded_embd", &i_hid)) ||
        (st = need(&c, &h, "vocab_size", &i_voc)))
        goto done;
    i_gated = header_find(&h, "use_gated_mlp");
    int nops = 0;
    while (mlp_ops[nops]) nops++;
    for (int j = 0; j < h.n; j++) {
        char op[64];
        if (!stat_op(h.name[j], op, sizeof op)) continue;
        if (!in_list(mlp_ops, op)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: column '%s': unknown op '%s' (known: emb, input_layernorm, "
                           "attn_pre_proj, attn_rope, attn_post_proj, post_attention_layernorm, mlp_up_proj, "
                           "mlp_act, mlp_down_proj, add)", path, h.name[j], op);
            goto done;
        }
    }
    for (int k = 0; k < nops; k++) {
        char name[96];
        snprintf(name, sizeof name, "time_stats.%s.median", mlp_ops[k]);
        i_med[k] = header_find(&h, name);
        have[k] = i_med[k] >= 0;
    }
    int any = 0;
    for (int k = 0; k < nops; k++) any |= have[k];
    if (!any) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: no time_stats.<op>.median column of a known op", path);
        goto done;
    }
    int rows = 0;
    while (csv_next(&c, &st)) {
        pgd_vidur_model m = {0};
        int tokens, tp;
        if ((st = whole(&c, &h, i_tok, 1, &tokens)) || (st = whole(&c, &h, i_tp, 1, &tp)) ||
            (st = whole(&c, &h, i_head, 1, &m.heads)) || (st = whole(&c, &h, i_kv, 1, &m.kv_heads)) ||
            (st = whole(&c, &h, i_embd, 1, &m.dim)) || (st = whole(&c, &h, i_hid, 1, &m.hidden)) ||
            (st = whole(&c, &h, i_voc, 1, &m.vocab)))
            goto done;
        m.gated = i_gated < 0 || i_gated >= c.ncol || !strcasecmp(c.col[i_gated], "true") ||
                  !strcmp(c.col[i_gated], "1");
        if (!v->model.dim) {
            v->model = m;
        } else if (memcmp(&v->model, &m, sizeof m)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%d: model dimensions (heads %d, kv %d, dim %d, hidden %d, vocab %d) "
                           "differ from the earlier rows' (%d, %d, %d, %d, %d): one model per file", path, c.lineno,
                           m.heads, m.kv_heads, m.dim, m.hidden, m.vocab, v->model.heads, v->model.kv_heads,
                           v->model.dim, v->model.hidden, v->model.vocab);
            goto done;
        }
        for (int k = 0; k < nops; k++) {
            if (!have[k]) continue;
            pgd_vidur_row r = {.kind = PGD_VIDUR_MLP, .tp = tp, .a = tokens};
            snprintf(r.op, sizeof r.op, "%s", mlp_ops[k]);
            if ((st = num(&c, &h, i_med[k], 1, &r.seconds))) goto done;
            r.seconds *= 1e-3;
            if ((st = push(v, &r))) goto done;
        }
        rows++;
    }
    if (!st && !rows) st = pgd_error(PGD_ERR_FORMAT, "%s: no data rows (an empty grid)", path);
done:
    header_free(&h);
    csv_close(&c);
    return st;
}

/* ------------------------------------------------------------ attention */

static pgd_status read_attention_vidur(csv *c, const header *h, pgd_vidur *v, int *rows) {
    pgd_status st;
    for (int j = 0; j < h->n; j++) {
        char op[64];
        if (stat_op(h->name[j], op, sizeof op) && strcmp(op, "attn_prefill") && strcmp(op, "attn_decode") &&
            !in_list(attn_other, op))
            return pgd_error(PGD_ERR_FORMAT, "%s: column '%s': unknown op '%s' (known: attn_prefill, attn_decode, "
                             "attn_input_reshape, attn_output_reshape, attn_kv_cache_save)", c->path, h->name[j], op);
    }
    int i_pre, i_dec, i_bs, i_chunk, i_kv, i_isp, i_tp;
    PGD_TRY(need(c, h, "time_stats.attn_prefill.median", &i_pre));
    PGD_TRY(need(c, h, "time_stats.attn_decode.median", &i_dec));
    PGD_TRY(need(c, h, "batch_size", &i_bs));
    PGD_TRY(need(c, h, "prefill_chunk_size", &i_chunk));
    PGD_TRY(need(c, h, "kv_cache_size", &i_kv));
    PGD_TRY(need(c, h, "is_prefill", &i_isp));
    PGD_TRY(need(c, h, "num_tensor_parallel_workers", &i_tp));
    while (csv_next(c, &st)) {
        if (i_isp >= c->ncol)
            return pgd_error(PGD_ERR_FORMAT, "%s:%d: %d columns, the header has %d", c->path, c->lineno, c->ncol, h->n);
        const char *isp = c->col[i_isp];
        int prefill = !strcasecmp(isp, "true") || !strcmp(isp, "1");
        if (!prefill && strcasecmp(isp, "false") && strcmp(isp, "0"))
            return pgd_error(PGD_ERR_FORMAT, "%s:%d: is_prefill is '%s' (True or False)", c->path, c->lineno, isp);
        pgd_vidur_row r = {.kind = prefill ? PGD_VIDUR_PREFILL : PGD_VIDUR_DECODE};
        snprintf(r.op, sizeof r.op, "%s", prefill ? "attn_prefill" : "attn_decode");
        int a, b;
        PGD_TRY(whole(c, h, i_tp, 1, &r.tp));
        PGD_TRY(whole(c, h, prefill ? i_chunk : i_bs, 1, &a));
        PGD_TRY(whole(c, h, i_kv, 0, &b));
        PGD_TRY(num(c, h, prefill ? i_pre : i_dec, 1, &r.seconds));
        r.a = a, r.b = b, r.seconds *= 1e-3;
        PGD_TRY(push(v, &r));
        (*rows)++;
    }
    return st;
}

static pgd_status read_attention_short(csv *c, const header *h, pgd_vidur *v, int *rows) {
    pgd_status st;
    int i_tp, i_kind, i_a, i_b, i_med;
    PGD_TRY(need(c, h, "tp", &i_tp));
    PGD_TRY(need(c, h, "kind", &i_kind));
    PGD_TRY(need(c, h, "a", &i_a));
    PGD_TRY(need(c, h, "b", &i_b));
    PGD_TRY(need(c, h, "median_ms", &i_med));
    while (csv_next(c, &st)) {
        if (i_kind >= c->ncol)
            return pgd_error(PGD_ERR_FORMAT, "%s:%d: %d columns, the header has %d", c->path, c->lineno, c->ncol, h->n);
        const char *kind = c->col[i_kind];
        int prefill = !strcmp(kind, "prefill");
        if (!prefill && strcmp(kind, "decode"))
            return pgd_error(PGD_ERR_FORMAT, "%s:%d: kind is '%s': unknown op (decode or prefill)", c->path,
                             c->lineno, kind);
        pgd_vidur_row r = {.kind = prefill ? PGD_VIDUR_PREFILL : PGD_VIDUR_DECODE};
        snprintf(r.op, sizeof r.op, "%s", prefill ? "attn_prefill" : "attn_decode");
        int a, b;
        PGD_TRY(whole(c, h, i_tp, 1, &r.tp));
        PGD_TRY(whole(c, h, i_a, 1, &a));
        PGD_TRY(whole(c, h, i_b, 0, &b));
        PGD_TRY(num(c, h, i_med, 1, &r.seconds));
        r.a = a, r.b = b, r.seconds *= 1e-3;
        PGD_TRY(push(v, &r));
        (*rows)++;
    }
    return st;
}

pgd_status pgd_vidur_read_attention(pgd_vidur *v, const char *path) {
    csv c;
    header h;
    pgd_status st = csv_open(&c, path);
    if (st) return st;
    int rows = 0;
    if (!(st = header_read(&c, &h))) {
        if (header_find(&h, "kind") >= 0 || header_find(&h, "median_ms") >= 0)
            st = read_attention_short(&c, &h, v, &rows);
        else
            st = read_attention_vidur(&c, &h, v, &rows);
    }
    if (!st && !rows) st = pgd_error(PGD_ERR_FORMAT, "%s: no data rows (an empty grid)", path);
    header_free(&h);
    csv_close(&c);
    return st;
}

/* ----------------------------------------------------------- all-reduce */

pgd_status pgd_vidur_read_all_reduce(pgd_vidur *v, const char *path) {
    csv c;
    header h;
    pgd_status st = csv_open(&c, path);
    if (st) return st;
    int rows = 0;
    if ((st = header_read(&c, &h))) goto done;
    for (int j = 0; j < h.n; j++) {
        char op[64];
        if (stat_op(h.name[j], op, sizeof op) && strcmp(op, "all_reduce")) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: column '%s': unknown op '%s' (this reader knows all_reduce)", path,
                           h.name[j], op);
            goto done;
        }
    }
    int i_med, i_n, i_size, i_dpn, i_coll;
    if ((st = need(&c, &h, "time_stats.all_reduce.median", &i_med)) || (st = need(&c, &h, "num_workers", &i_n)) ||
        (st = need(&c, &h, "size", &i_size)) || (st = need(&c, &h, "devices_per_node", &i_dpn)))
        goto done;
    i_coll = header_find(&h, "collective");
    while (csv_next(&c, &st)) {
        if (i_coll >= 0 && i_coll < c.ncol && strcmp(c.col[i_coll], "all_reduce")) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%d: collective '%s': unknown op (this reader knows all_reduce)", path,
                           c.lineno, c.col[i_coll]);
            goto done;
        }
        pgd_vidur_row r = {.kind = PGD_VIDUR_ALL_REDUCE};
        snprintf(r.op, sizeof r.op, "all_reduce");
        int size, dpn;
        if ((st = whole(&c, &h, i_n, 1, &r.ranks)) || (st = whole(&c, &h, i_size, 1, &size)) ||
            (st = whole(&c, &h, i_dpn, 1, &dpn)) || (st = num(&c, &h, i_med, 1, &r.seconds)))
            goto done;
        if (dpn > r.ranks) dpn = r.ranks;
        r.nodes = (r.ranks + dpn - 1) / dpn;
        r.a = 2.0 * size; /* fp16 elements -> bytes */
        r.seconds *= 1e-3;
        if ((st = push(v, &r))) goto done;
        rows++;
    }
    if (!st && !rows) st = pgd_error(PGD_ERR_FORMAT, "%s: no data rows (an empty grid)", path);
done:
    header_free(&h);
    csv_close(&c);
    return st;
}
