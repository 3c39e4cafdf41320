/* trace.c - reading request traces into staged rows: Azure 2023 CSV
 * (TIMESTAMP "YYYY-MM-DD HH:MM:SS.fffffff", ContextTokens,
 * GeneratedTokens), Vidur CSV (arrived_at seconds, num_prefill_tokens,
 * num_decode_tokens), Vidur length CSV (num_prefill_tokens,
 * num_decode_tokens, no times) and Mooncake JSONL ({timestamp ms,
 * input_length, output_length, hash_ids}).
 *
 * Invariants: columns are found by header name (any order, extra columns
 * ignored); every malformed row fails with PGD_ERR_FORMAT naming
 * file:line and the column; timestamps are kept as whole seconds plus a
 * fraction so 2023 wall-clock times keep sub-microsecond precision; rows
 * with an empty prompt are skipped and counted, outputs < 1 become 1;
 * times past PGD_TRACE_MAX_SECONDS and lengths past 2^30 are rejected
 * (never cast out of range). Optional per-request client and SLO class:
 * CSV columns "client" and "slo_class", Mooncake fields of those names
 * (integers in 0..PGD_MAX_CLIENTS-1; see trace_client()). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workload/workload_impl.h"

#define MAX_FIELDS 32
/* Latest accepted trace time, in seconds (about 31,700 years): far past any
 * real trace, and small enough that whole seconds fit an int64_t and the
 * difference of two of them is exact in a double (< 2^53). */
#define PGD_TRACE_MAX_SECONDS 1e12

static int split_csv(char *line, char **f) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < MAX_FIELDS) f[n] = p;
        n++;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static int parse_long(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    while (*end == ' ') end++;
    return end != s && *end == '\0' && errno == 0;
}

static int parse_double(const char *s, double *v) {
    char *end;
    *v = strtod(s, &end);
    while (*end == ' ') end++;
    return end != s && *end == '\0' && isfinite(*v);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_timestamp(const char *s, int64_t *sec, double *frac) {
    int y, mo, d, h, mi, consumed = 0;
    double se;
    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &se, &consumed) != 6)
        return 0;
    if (s[consumed] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || !(se >= 0 && se < 61))
        return 0;
    double whole = floor(se);
    *sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (int64_t)whole;
    *frac = se - whole;
    return 1;
}

static int find_col(char **f, int n, const char *name) {
    for (int i = 0; i < n && i < MAX_FIELDS; i++)
        if (strcmp(f[i], name) == 0) return i;
    return -1;
}

/* An optional client or SLO class value: 1 = set, 0 = bad (error recorded). */
static int trace_client(const char *path, long lineno, const char *what, long v, int *out) {
    if (v < 0 || v >= PGD_MAX_CLIENTS) {
        pgd_error(PGD_ERR_FORMAT, "%s:%ld: %s %ld is out of range (0..%d)", path, lineno, what, v,
                  PGD_MAX_CLIENTS - 1);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static pgd_status read_csv(const pgd_workload_config *c, FILE *fp, pgd_wl_rows *rs) {
    const char *path = c->path;
    char *line = NULL, *f[MAX_FIELDS];
    size_t cap = 0;
    pgd_status st = PGD_OK;
    long len = pgd_wl_getline(&line, &cap, fp);
    if (len < 0) {
        st = pgd_error(PGD_ERR_FORMAT, "%s:1: empty file (expected a CSV header)", path);
        goto done;
    }
    int nh = split_csv(line, f);
    pgd_trace_format fmt = c->trace_format;
    if (fmt == PGD_TRACE_AUTO) {
        fmt = find_col(f, nh, "TIMESTAMP") >= 0    ? PGD_TRACE_AZURE
              : find_col(f, nh, "arrived_at") >= 0 ? PGD_TRACE_VIDUR
              : find_col(f, nh, "num_prefill_tokens") >= 0 ? PGD_TRACE_LENGTHS
                                                           : PGD_TRACE_AUTO;
        if (fmt == PGD_TRACE_AUTO) {
            st = pgd_error(PGD_ERR_FORMAT,
                           "%s:1: unknown trace header (expected TIMESTAMP,ContextTokens,"
                           "GeneratedTokens or arrived_at,num_prefill_tokens,num_decode_tokens)",
                           path);
            goto done;
        }
    }
    const char *names[3];
    if (fmt == PGD_TRACE_AZURE) {
        names[0] = "TIMESTAMP", names[1] = "ContextTokens", names[2] = "GeneratedTokens";
    } else if (fmt == PGD_TRACE_VIDUR) {
        names[0] = "arrived_at", names[1] = "num_prefill_tokens", names[2] = "num_decode_tokens";
    } else if (fmt == PGD_TRACE_LENGTHS) {
        names[0] = NULL, names[1] = "num_prefill_tokens", names[2] = "num_decode_tokens";
    } else {
        st = pgd_error(PGD_ERR_INVALID, "%s: trace format '%s' is not a CSV format", path,
                       pgd_trace_format_name(fmt));
        goto done;
    }
    int col[3] = {-1, -1, -1};
    for (int k = 0; k < 3; k++) {
        if (!names[k]) continue;
        if ((col[k] = find_col(f, nh, names[k])) < 0) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:1: missing column '%s' for the %s format", path,
                           names[k], pgd_trace_format_name(fmt));
            goto done;
        }
    }
    rs->has_time = names[0] != NULL;
    int ccol[2] = {find_col(f, nh, "client"), find_col(f, nh, "slo_class")}; /* optional */
    for (long lineno = 2; (len = pgd_wl_getline(&line, &cap, fp)) >= 0; lineno++) {
        if (len == 0) continue;
        int n = split_csv(line, f);
        for (int k = 0; k < 3; k++)
            if (col[k] >= n) {
                st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: %d fields, no column '%s'", path, lineno,
                               n, names[k]);
                goto done;
            }
        int64_t sec = 0;
        double frac = 0;
        long in, out;
        if (fmt == PGD_TRACE_AZURE && !parse_timestamp(f[col[0]], &sec, &frac)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad TIMESTAMP '%s'", path, lineno, f[col[0]]);
            goto done;
        }
        if (fmt == PGD_TRACE_VIDUR) {
            double t;
            if (!parse_double(f[col[0]], &t) || t < 0) {
                st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad arrived_at '%s'", path, lineno,
                               f[col[0]]);
                goto done;
            }
            if (t > PGD_TRACE_MAX_SECONDS) {
                st = pgd_error(PGD_ERR_FORMAT,
                               "%s:%ld: arrived_at '%s' is out of range (at most %.0e seconds)",
                               path, lineno, f[col[0]], PGD_TRACE_MAX_SECONDS);
                goto done;
            }
            sec = (int64_t)floor(t);
            frac = t - floor(t);
        }
        for (int k = 1; k < 3; k++) {
            long *v = k == 1 ? &in : &out;
            if (!parse_long(f[col[k]], v) || *v < 0 || *v > (1L << 30)) {
                st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad %s '%s'", path, lineno, names[k],
                               f[col[k]]);
                goto done;
            }
        }
        rs->rows_read++;
        if (in == 0) {
            rs->skipped++;
            continue;
        }
        pgd_wl_row *row;
        if ((st = pgd_wl_rows_push(rs, &row))) goto done;
        row->row = lineno - 2;
        row->t_sec = sec;
        row->t_frac = frac;
        row->in_len = (int)in;
        row->out_len = out > 0 ? (int)out : 1;
        for (int k = 0; k < 2; k++) {
            long v;
            if (ccol[k] < 0 || ccol[k] >= n || !*f[ccol[k]]) continue;
            const char *what = k ? "slo_class" : "client";
            if (!parse_long(f[ccol[k]], &v)) {
                st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad %s '%s'", path, lineno, what, f[ccol[k]]);
                goto done;
            }
            if (!trace_client(path, lineno, what, v, k ? &row->slo_class : &row->client)) {
                st = PGD_ERR_FORMAT;
                goto done;
            }
        }
    }
done:
    free(line);
    return st;
}

static pgd_status mooncake_row(const char *path, long lineno, json_t *o, pgd_wl_row *row) {
    json_t *ts = json_object_get(o, "timestamp"), *il = json_object_get(o, "input_length"),
           *ol = json_object_get(o, "output_length"), *h = json_object_get(o, "hash_ids");
    const char *bad = !json_is_number(ts)                                        ? "timestamp"
                      : !json_is_integer(il) || json_integer_value(il) < 0       ? "input_length"
                      : !json_is_integer(ol) || json_integer_value(ol) < 0       ? "output_length"
                      : !json_is_array(h)                                        ? "hash_ids"
                                                                                 : NULL;
    if (bad) return pgd_error(PGD_ERR_FORMAT, "%s:%ld: missing or bad '%s'", path, lineno, bad);
    double ms = json_number_value(ts);
    if (!(ms >= 0) || !isfinite(ms))
        return pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad timestamp %g", path, lineno, ms);
    if (ms > PGD_TRACE_MAX_SECONDS * 1000)
        return pgd_error(PGD_ERR_FORMAT,
                         "%s:%ld: timestamp %g ms is out of range (at most %.0e ms)", path, lineno,
                         ms, PGD_TRACE_MAX_SECONDS * 1000);
    if (json_is_integer(ts)) {
        json_int_t v = json_integer_value(ts);
        row->t_sec = v / 1000;
        row->t_frac = (double)(v % 1000) / 1000.0;
    } else {
        row->t_sec = (int64_t)floor(ms / 1000);
        row->t_frac = ms / 1000 - floor(ms / 1000);
    }
    if (json_integer_value(il) > (1 << 30))
        return pgd_error(PGD_ERR_FORMAT, "%s:%ld: input_length %lld too large (at most %d)", path,
                         lineno, (long long)json_integer_value(il), 1 << 30);
    if (json_integer_value(ol) > (1 << 30)) /* not (int)-wrapped into something small */
        return pgd_error(PGD_ERR_FORMAT, "%s:%ld: output_length %lld too large (at most %d)", path,
                         lineno, (long long)json_integer_value(ol), 1 << 30);
    row->in_len = (int)json_integer_value(il);
    row->out_len = json_integer_value(ol) > 0 ? (int)json_integer_value(ol) : 1;
    static const char *const opt[2] = {"client", "slo_class"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(o, opt[k]);
        if (!v) continue;
        if (!json_is_integer(v)) return pgd_error(PGD_ERR_FORMAT, "%s:%ld: bad '%s'", path, lineno, opt[k]);
        if (!trace_client(path, lineno, opt[k], (long)json_integer_value(v), k ? &row->slo_class : &row->client))
            return PGD_ERR_FORMAT;
    }
    size_t nh = json_array_size(h);
    row->hash_ids = malloc((nh ? nh : 1) * sizeof *row->hash_ids);
    if (!row->hash_ids) return pgd_error(PGD_ERR_OOM, "workload: out of memory");
    row->n_hash_ids = (int)nh;
    for (size_t j = 0; j < nh; j++) {
        json_t *x = json_array_get(h, j);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return pgd_error(PGD_ERR_FORMAT, "%s:%ld: hash_ids[%zu] is not a non-negative integer",
                             path, lineno, j);
        row->hash_ids[j] = json_integer_value(x);
    }
    return PGD_OK;
}

static pgd_status read_mooncake(const pgd_workload_config *c, FILE *fp, pgd_wl_rows *rs) {
    char *line = NULL;
    size_t cap = 0;
    long len;
    pgd_status st = PGD_OK;
    rs->has_time = 1;
    for (long lineno = 1; (len = pgd_wl_getline(&line, &cap, fp)) >= 0; lineno++) {
        if (len == 0) continue;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o || !json_is_object(o)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: %s", c->path, lineno,
                           o ? "not a JSON object" : err.text);
            json_decref(o);
            break;
        }
        rs->rows_read++;
        pgd_wl_row *row;
        if ((st = pgd_wl_rows_push(rs, &row)) == PGD_OK) {
            row->row = rs->rows_read - 1;
            st = mooncake_row(c->path, lineno, o, row);
            if (st == PGD_OK && row->in_len == 0) {
                free(row->hash_ids);
                rs->n--;
                rs->skipped++;
            }
        }
        json_decref(o);
        if (st) break;
    }
    free(line);
    return st;
}

pgd_status pgd_wl_trace_read(const pgd_workload_config *c, pgd_wl_rows *rs) {
    FILE *fp = fopen(c->path, "rb");
    if (!fp) return pgd_error(PGD_ERR_IO, "cannot open trace %s: %s", c->path, strerror(errno));
    pgd_trace_format fmt = c->trace_format;
    if (fmt == PGD_TRACE_AUTO) {
        size_t n = strlen(c->path);
        if (n >= 6 && strcmp(c->path + n - 6, ".jsonl") == 0) fmt = PGD_TRACE_MOONCAKE;
    }
    pgd_status st = fmt == PGD_TRACE_MOONCAKE ? read_mooncake(c, fp, rs) : read_csv(c, fp, rs);
    fclose(fp);
    return st;
}
