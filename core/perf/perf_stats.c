/* perf_stats.c - statistics of the wall-clock A/B mode: the percentile
 * bootstrap of a median (Efron & Tibshirani, ch. 13).
 *
 * Each resample draws n values with replacement from x (xoshiro256** with
 * a fixed seed: a report is reproducible) and takes its median; the
 * interval is the (1-level)/2 and (1+level)/2 quantiles of those medians
 * (linear interpolation between order statistics, as numpy.percentile). */
#include <stdlib.h>
#include <string.h>

#include "pagoda/perf.h"
#include "util/rng.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, int n) {
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double quantile_sorted(const double *v, int n, double q) {
    double r = q * (n - 1);
    int lo = (int)r;
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (r - lo) * (v[lo + 1] - v[lo]);
}

pgd_status pgd_perf_bootstrap_median(const double *x, int n, int resamples, double level, uint64_t seed,
                                     pgd_perf_interval *out) {
    if (!x || !out || n < 1 || resamples < 1 || !(level > 0 && level < 1))
        return pgd_error(PGD_ERR_INVALID, "bootstrap: need n >= 1 values, resamples >= 1, 0 < level < 1 "
                                          "(got n %d, resamples %d, level %g)", n, resamples, level);
    double *s = malloc(sizeof(double) * (size_t)n), *meds = malloc(sizeof(double) * (size_t)resamples);
    if (!s || !meds) {
        free(s);
        free(meds);
        return pgd_error(PGD_ERR_OOM, "bootstrap: out of memory");
    }
    memcpy(s, x, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    out->median = median_sorted(s, n);
    pgd_rng r;
    pgd_rng_seed(&r, seed);
    for (int b = 0; b < resamples; b++) {
        for (int i = 0; i < n; i++) s[i] = x[pgd_rng_range(&r, 0, n)];
        qsort(s, (size_t)n, sizeof *s, cmp_d);
        meds[b] = median_sorted(s, n);
    }
    qsort(meds, (size_t)resamples, sizeof *meds, cmp_d);
    out->lo = quantile_sorted(meds, resamples, (1 - level) / 2);
    out->hi = quantile_sorted(meds, resamples, (1 + level) / 2);
    free(s);
    free(meds);
    return PGD_OK;
}
