/* lengths.c - token-length distributions of synthetic workloads, and the
 * name tables of every workload enum.
 *
 * Named shapes (lognormal fits whose means are the PagedAttention paper's
 * dataset means; the sigmas are plausible spreads for each dataset, not
 * fitted to raw data):
 *   sharegpt: input  mean 161.31, sigma 1.0 (median  98)
 *             output mean 337.99, sigma 0.9 (median 226)
 *   alpaca:   input  mean  19.31, sigma 0.5 (median  17)
 *             output mean  58.45, sigma 0.8 (median  42)
 * A lognormal of mean m and standard deviation s has sigma^2 =
 * ln(1 + s^2/m^2) and mu = ln(m) - sigma^2/2. Draws are rounded to the
 * nearest integer and clamped to [max(1, min), max] (max 0 = no bound), so
 * sample means match the targets while clipping (and the context) removes
 * little of the tail. */
#include <math.h>
#include <string.h>

#include "workload/workload_impl.h"

#define NAME_TABLE(fn_name, fn_parse, type, what, ...)                                       \
    static const char *const fn_name##_tab[] = {__VA_ARGS__};                                \
    const char *fn_name(type k) {                                                            \
        size_t n = sizeof fn_name##_tab / sizeof *fn_name##_tab;                             \
        return (unsigned)k < n ? fn_name##_tab[k] : "?";                                     \
    }                                                                                        \
    pgd_status fn_parse(const char *name, type *out) {                                       \
        size_t n = sizeof fn_name##_tab / sizeof *fn_name##_tab;                             \
        for (size_t i = 0; name && i < n; i++)                                               \
            if (strcmp(name, fn_name##_tab[i]) == 0) {                                       \
                *out = (type)i;                                                              \
                return PGD_OK;                                                               \
            }                                                                                \
        char choices[256] = "";                                                              \
        for (size_t i = 0; i < n; i++) {                                                     \
            strncat(choices, fn_name##_tab[i], sizeof choices - strlen(choices) - 1);        \
            if (i + 1 < n) strncat(choices, ", ", sizeof choices - strlen(choices) - 1);     \
        }                                                                                    \
        return pgd_error(PGD_ERR_INVALID, "unknown " what " '%s' (choices: %s)",             \
                         name ? name : "(null)", choices);                                   \
    }

NAME_TABLE(pgd_len_kind_name, pgd_len_kind_parse, pgd_len_kind, "length distribution",
           "default", "fixed", "uniform", "normal", "lognormal", "sharegpt", "alpaca")
NAME_TABLE(pgd_arrival_kind_name, pgd_arrival_kind_parse, pgd_arrival_kind, "arrival process",
           "default", "poisson", "gamma", "all-at-once", "closed-loop", "trace")
NAME_TABLE(pgd_workload_source_name, pgd_workload_source_parse, pgd_workload_source,
           "workload source", "synthetic", "trace", "dataset")
NAME_TABLE(pgd_trace_format_name, pgd_trace_format_parse, pgd_trace_format, "trace format",
           "auto", "azure", "vidur", "lengths", "mooncake")
NAME_TABLE(pgd_dataset_format_name, pgd_dataset_format_parse, pgd_dataset_format,
           "dataset format", "auto", "sharegpt", "alpaca", "mtbench")

static void preset(double mean, double sigma, pgd_len_dist *out) {
    out->kind = PGD_LEN_LOGNORMAL;
    out->mean = mean;
    out->stddev = mean * sqrt(exp(sigma * sigma) - 1.0);
}

pgd_status pgd_len_dist_resolve(const pgd_len_dist *d, int is_output, pgd_len_kind fallback,
                                const char *what, pgd_len_dist *out) {
    *out = *d;
    pgd_len_kind k = d->kind == PGD_LEN_DEFAULT ? fallback : d->kind;
    if (d->min < 0 || d->max < 0 || (d->max > 0 && d->min > d->max))
        return pgd_error(PGD_ERR_INVALID, "%s: bad bounds min=%d max=%d", what, d->min, d->max);
    switch (k) {
    case PGD_LEN_SHAREGPT:
        preset(is_output ? 337.99 : 161.31, is_output ? 0.9 : 1.0, out);
        return PGD_OK;
    case PGD_LEN_ALPACA:
        preset(is_output ? 58.45 : 19.31, is_output ? 0.8 : 0.5, out);
        return PGD_OK;
    case PGD_LEN_FIXED:
        if (!(d->mean >= 1 && d->mean <= 1e9))
            return pgd_error(PGD_ERR_INVALID, "%s: fixed length %g must be >= 1", what, d->mean);
        break;
    case PGD_LEN_UNIFORM:
        if (d->min < 1 || d->max < d->min)
            return pgd_error(PGD_ERR_INVALID, "%s: uniform needs 1 <= min <= max (min=%d max=%d)",
                             what, d->min, d->max);
        break;
    case PGD_LEN_NORMAL:
    case PGD_LEN_LOGNORMAL:
        if (!(d->mean > 0 && d->mean <= 1e9))
            return pgd_error(PGD_ERR_INVALID, "%s: %s mean %g must be > 0", what,
                             pgd_len_kind_name(k), d->mean);
        if (!(d->stddev >= 0 && d->stddev <= 1e9) || (k == PGD_LEN_LOGNORMAL && d->stddev == 0))
            return pgd_error(PGD_ERR_INVALID, "%s: %s stddev %g must be %s", what,
                             pgd_len_kind_name(k), d->stddev,
                             k == PGD_LEN_LOGNORMAL ? "> 0" : ">= 0");
        break;
    default:
        return pgd_error(PGD_ERR_INVALID, "%s: unknown length distribution %d", what, (int)k);
    }
    out->kind = k;
    return PGD_OK;
}

int pgd_len_dist_sample(const pgd_len_dist *d, pgd_rng *r) {
    double x;
    switch (d->kind) {
    case PGD_LEN_FIXED: x = d->mean; break;
    case PGD_LEN_UNIFORM: return (int)pgd_rng_range(r, d->min, (int64_t)d->max + 1);
    case PGD_LEN_NORMAL: x = d->mean + d->stddev * pgd_rng_normal(r); break;
    case PGD_LEN_LOGNORMAL: {
        double s2 = log(1.0 + (d->stddev * d->stddev) / (d->mean * d->mean));
        double mu = log(d->mean) - 0.5 * s2;
        x = exp(mu + sqrt(s2) * pgd_rng_normal(r));
        break;
    }
    default: PGD_ASSERT(0 && "unresolved length distribution"); return 1;
    }
    double lo = d->min > 1 ? d->min : 1;
    if (x < lo) x = lo;
    if (d->max > 0 && x > d->max) x = d->max;
    if (x > 1e9) x = 1e9;
    return (int)lround(x);
}
