/* sampler.c - per-request token sampling: greedy, temperature, top-k, top-p.
 *
 * Job: turn one row of logits into one token id, following sampler.h.
 *
 * Invariants:
 *  - Each pgd_sampler owns its RNG (xoshiro256**, state filled by splitmix64
 *    from params.seed), so a request's tokens depend only on its seed and
 *    its logits sequence, never on the batch around it. Each call consumes
 *    exactly one 64-bit RNG output, except greedy ones (temperature 0 or
 *    top_k 1), which consume none.
 *  - Candidates are totally ordered by (logit desc, id asc), encoded as one
 *    uint64 key per token (cand_key). The softmax weight is monotone in the
 *    logit, so this is also a probability-descending order, and every tie
 *    (in logit, or in weights that round equal) goes to the lowest id. Hence
 *    top_k == 1 and a tiny top_p both reproduce pgd_argmax.
 *  - Weights are e_i = expf((l_i - max) / T) in float (the max subtracted
 *    first, so the largest weight is exactly 1 and nothing overflows); sums
 *    and cumulative masses are accumulated in double. Weights are never
 *    normalised in place: thresholds are scaled by the sum instead.
 *  - NaN logits are treated as -inf (probability 0). If every logit is -inf
 *    or NaN, or the largest is +inf, the result is pgd_argmax of the row.
 *  - Pipeline: top-k (min-heap for small k, O(n log k) with one float
 *    compare for most tokens; quickselect for large k, expected O(n)),
 *    softmax over the survivors, top-p on those survivors (llama2.c-style
 *    prefilter of weights below (1 - top_p) / (m - 1) of the mass, then a
 *    quickselect for the shortest best-first prefix reaching top_p of the
 *    mass: expected O(m), never a full sort), then one draw from what is
 *    left, renormalised. Quickselect falls back to heapsort after 64 rounds,
 *    so the worst case is O(n log n).
 *  - Scratch buffers (vocab_size each) are allocated once in create; sample
 *    never allocates. The caller's logits are only read, except that NaNs
 *    are rewritten to -inf (the contract lets the row be used as scratch).
 *  - Results depend only on the inputs: no data-dependent use of unordered
 *    containers, no qsort (whose order of equal elements is unspecified). */
#include "pagoda/sampler.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pgd_sampler {
    float temperature;
    int top_k;   /* 0 = off (normalised at create) */
    float top_p; /* 1 = off (normalised at create) */
    int n;
    pgd_rng rng;
    float *w;      /* n weights: per token, or parallel to key[] */
    uint64_t *key; /* n candidate keys, see cand_key() */
};

/* Uniform float in [0, 1) with 24 random bits (exactly representable). */
static float rng_uniform(pgd_rng *r) {
    return (float)(pgd_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* ---- validation ---- */

pgd_status pgd_sampling_params_validate(const pgd_sampling_params *p, int vocab_size) {
    if (!p) return pgd_error(PGD_ERR_INVALID, "sampling parameters missing");
    if (vocab_size <= 0)
        return pgd_error(PGD_ERR_INVALID, "sampler vocab_size must be > 0 (got %d)", vocab_size);
    if (!isfinite(p->temperature) || p->temperature < 0.0f)
        return pgd_error(PGD_ERR_INVALID, "--temperature must be a finite number >= 0 (got %g)",
                         (double)p->temperature);
    if (isnan(p->top_p) || p->top_p < 0.0f || p->top_p > 1.0f)
        return pgd_error(PGD_ERR_INVALID,
                         "--top-p must be a number in [0, 1] (0 or 1 = disabled) (got %g)",
                         (double)p->top_p);
    if (p->top_k < 0)
        return pgd_error(PGD_ERR_INVALID, "--top-k must be >= 0 (0 = disabled) (got %d)",
                         p->top_k);
    if (p->top_k > vocab_size)
        return pgd_error(PGD_ERR_INVALID,
                         "--top-k must not exceed the vocabulary size %d (got %d)", vocab_size,
                         p->top_k);
    return PGD_OK;
}

/* ---- lifecycle ---- */

pgd_status pgd_sampler_create(const pgd_sampling_params *p, int vocab_size, pgd_sampler **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "pgd_sampler_create: out is NULL");
    *out = NULL;
    PGD_TRY(pgd_sampling_params_validate(p, vocab_size));
    pgd_sampler *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "sampler: out of memory");
    s->n = vocab_size;
    s->temperature = p->temperature;
    s->top_k = (p->top_k >= vocab_size) ? 0 : p->top_k;
    s->top_p = (p->top_p <= 0.0f || p->top_p >= 1.0f) ? 1.0f : p->top_p;
    /* splitmix64 from the seed itself, one step before pgd_rng_seed's
     * start: seeded outputs stay what they have always been */
    uint64_t x = p->seed;
    for (int k = 0; k < 4; k++, x += 0x9E3779B97F4A7C15ull) s->rng.s[k] = pgd_hash64(x);
    s->w = malloc((size_t)vocab_size * sizeof *s->w);
    s->key = malloc((size_t)vocab_size * sizeof *s->key);
    if (!s->w || !s->key) {
        pgd_sampler_destroy(s);
        return pgd_error(PGD_ERR_OOM, "sampler: cannot allocate scratch for %d tokens",
                         vocab_size);
    }
    *out = s;
    return PGD_OK;
}

void pgd_sampler_destroy(pgd_sampler *s) {
    if (!s) return;
    free(s->w);
    free(s->key);
    free(s);
}

/* ---- helpers ---- */

int pgd_argmax(const float *x, int n) {
    int bi = 0;
    float bv = n > 0 ? x[0] : 0.0f;
    for (int i = 1; i < n; i++) {
        /* the second clause lets a number replace a leading NaN */
        if (x[i] > bv || (isnan(bv) && !isnan(x[i]))) {
            bv = x[i];
            bi = i;
        }
    }
    return bi;
}

/* A candidate is one uint64: the logit's bits mapped to an unsigned integer
 * of the same order (high half) and UINT32_MAX - id (low half). Keys are
 * distinct, and a larger key is a better candidate: larger logit, or equal
 * logit and lower id. -0 is folded into +0 first so that it ties with +0 as
 * in float comparison; NaN never gets here. */
static inline uint64_t cand_key(float l, int i) {
    l += 0.0f; /* -0 -> +0 */
    uint32_t u;
    memcpy(&u, &l, sizeof u);
    u ^= (0u - (u >> 31)) | 0x80000000u; /* negative: flip all; else: set sign */
    return ((uint64_t)u << 32) | (uint64_t)(UINT32_MAX - (uint32_t)i);
}

static inline float key_logit(uint64_t k) {
    uint32_t u = (uint32_t)(k >> 32);
    u ^= (0u - (~u >> 31)) | 0x80000000u; /* inverse of cand_key's map */
    float l;
    memcpy(&l, &u, sizeof l);
    return l;
}

static inline int key_id(uint64_t k) { return (int)(UINT32_MAX - (uint32_t)k); }

/* Min-heap of keys on h[0..n): h[0] is the worst. w (if not NULL) moves
 * along with h. */
static void heap_sift_down(uint64_t *h, float *w, int n, int j) {
    for (;;) {
        int l = 2 * j + 1, r = l + 1, m = j;
        if (l < n && h[l] < h[m]) m = l;
        if (r < n && h[r] < h[m]) m = r;
        if (m == j) return;
        uint64_t t = h[j];
        h[j] = h[m];
        h[m] = t;
        if (w) {
            float x = w[j];
            w[j] = w[m];
            w[m] = x;
        }
        j = m;
    }
}

/* Heapsort a[0..n) best first (w along): the O(n log n) fallback when
 * quickselect keeps drawing bad pivots. */
static void heapsort_desc(uint64_t *a, float *w, int n) {
    for (int j = n / 2 - 1; j >= 0; j--) heap_sift_down(a, w, n, j);
    for (int end = n - 1; end > 0; end--) {
        uint64_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        if (w) {
            float x = w[0];
            w[0] = w[end];
            w[end] = x;
        }
        heap_sift_down(a, w, end, 0);
    }
}

/* Median of three keys of [lo, hi) is swapped to hi - 1 and returned. */
static uint64_t pick_pivot(uint64_t *a, float *w, int lo, int hi) {
    int x = lo, y = lo + (hi - lo) / 2, z = hi - 1;
    if (a[x] < a[y]) { /* make a[x] the larger of x, y */
        int t = x;
        x = y;
        y = t;
    }
    int med = a[y] >= a[z] ? y : (a[x] < a[z] ? x : z);
    uint64_t pk = a[med];
    a[med] = a[hi - 1];
    a[hi - 1] = pk;
    if (w) {
        float pw = w[med];
        w[med] = w[hi - 1];
        w[hi - 1] = pw;
    }
    return pk;
}

/* Partition [lo, hi) around the median of three: afterwards a[lo..mid) are
 * better than the pivot, a[mid] is the pivot, a(mid..hi) are worse; w[]
 * (if not NULL) moves along. Branch-free inner loop. Returns mid. */
static int partition(uint64_t *a, float *w, int lo, int hi) {
    const uint64_t pk = pick_pivot(a, w, lo, hi);
    int mid = lo;
    if (w) {
        for (int j = lo; j < hi - 1; j++) {
            uint64_t kj = a[j];
            float wj = w[j];
            a[j] = a[mid];
            w[j] = w[mid];
            a[mid] = kj;
            w[mid] = wj;
            mid += kj > pk;
        }
        float pw = w[hi - 1];
        w[hi - 1] = w[mid];
        w[mid] = pw;
    } else {
        for (int j = lo; j < hi - 1; j++) {
            uint64_t kj = a[j];
            a[j] = a[mid];
            a[mid] = kj;
            mid += kj > pk;
        }
    }
    a[hi - 1] = a[mid];
    a[mid] = pk;
    return mid;
}

/* Sum of w[lo..hi) in double, four interleaved partial sums. */
static double wsum(const float *w, int lo, int hi) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = lo;
    for (; j + 4 <= hi; j += 4) {
        s0 += w[j];
        s1 += w[j + 1];
        s2 += w[j + 2];
        s3 += w[j + 3];
    }
    for (; j < hi; j++) s0 += w[j];
    return (s0 + s1) + (s2 + s3);
}

/* Sort keys [lo, hi) best first, carrying w along (small ranges). */
static void sort_desc(uint64_t *a, float *w, int lo, int hi) {
    for (int j = lo + 1; j < hi; j++) {
        uint64_t k = a[j];
        float x = w ? w[j] : 0.0f;
        int q = j;
        for (; q > lo && a[q - 1] < k; q--) {
            a[q] = a[q - 1];
            if (w) w[q] = w[q - 1];
        }
        a[q] = k;
        if (w) w[q] = x;
    }
}

/* Leave the k best of logits[0..n) in key[0..k), in no particular order.
 * Small k: a min-heap (most tokens cost one compare). Large k: quickselect,
 * expected O(n), finishing with a sort if the pivots keep being bad. */
static void select_top_k(const float *logits, int n, int k, uint64_t *key) {
    if (k <= 16 || k <= n / 64) { /* crossover measured at n = 32000 */
        for (int i = 0; i < k; i++) key[i] = cand_key(logits[i], i);
        for (int j = k / 2 - 1; j >= 0; j--) heap_sift_down(key, NULL, k, j);
        /* later ids lose ties, so only a logit strictly above the worst
         * kept one gets in; a float compare rejects most tokens */
        float worst = key_logit(key[0]);
        for (int i = k; i < n; i++) {
            if (logits[i] > worst) {
                key[0] = cand_key(logits[i], i);
                heap_sift_down(key, NULL, k, 0);
                worst = key_logit(key[0]);
            }
        }
        return;
    }
    for (int i = 0; i < n; i++) key[i] = cand_key(logits[i], i);
    int lo = 0, hi = n; /* key[0..lo) are in, key[hi..n) are out */
    for (int rounds = 0; hi - lo > 16 && lo < k && hi > k; rounds++) {
        if (rounds == 64) {
            heapsort_desc(key + lo, NULL, hi - lo);
            return;
        }
        int mid = partition(key, NULL, lo, hi);
        if (mid >= k) hi = mid;
        else lo = mid + 1;
    }
    if (lo < k && hi > k) sort_desc(key, NULL, lo, hi); /* <= 16 left */
}

/* Reorder (key, w)[0..n) so that the nucleus, the shortest prefix of the
 * best-first order whose weight reaches `target`, is [0..len); returns len
 * (n if rounding keeps the whole set short of the target) and its weight in
 * *mass. Quickselect on that order, expected O(n), the last few elements
 * (or a run of bad pivots) finished by a sort. Inside the nucleus the order
 * is not sorted, only fixed by the input. */
static int nucleus(uint64_t *key, float *w, int n, double target, double *mass) {
    int lo = 0, hi = n; /* [0..lo) is in the nucleus, [hi..n) is not */
    double taken = 0.0; /* weight of [0..lo) */
    for (int rounds = 0; hi - lo > 16; rounds++) {
        if (rounds == 64) {
            heapsort_desc(key + lo, w + lo, hi - lo);
            break;
        }
        int mid = partition(key, w, lo, hi);
        double better = wsum(w, lo, mid);
        if (taken + better >= target) {
            hi = mid; /* the nucleus ends among the better ones */
        } else {
            taken += better + w[mid];
            lo = mid + 1;
            if (taken >= target) {
                *mass = taken;
                return lo;
            }
        }
    }
    if (hi - lo <= 16) sort_desc(key, w, lo, hi);
    for (int j = lo; j < hi; j++) {
        taken += w[j];
        if (taken >= target) {
            *mass = taken;
            return j + 1;
        }
    }
    *mass = taken; /* [0..hi) reached the target before rounding; take it */
    return hi;
}

/* Draw from (key, w)[0..m) whose weights sum (in double) to `mass`. */
static int draw_keys(const uint64_t *key, const float *w, int m, double mass, float u) {
    double r = (double)u * mass, cum = 0.0;
    int last = key_id(key[0]);
    for (int j = 0; j < m; j++) {
        if (w[j] <= 0.0f) continue;
        cum += w[j];
        last = key_id(key[j]);
        if (r < cum) return last;
    }
    return last; /* rounding: r landed at the very end of the mass */
}

/* ---- sampling ---- */

int pgd_sampler_sample(pgd_sampler *s, float *logits) {
    PGD_ASSERT(s && logits);
    const int n = s->n;
    if (s->temperature == 0.0f || s->top_k == 1) return pgd_argmax(logits, n);
    const float u = rng_uniform(&s->rng); /* drawn first: one per call */

    /* max, with NaN mapped to -inf so it carries no probability */
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isnan(logits[i])) logits[i] = -INFINITY;
        else if (logits[i] > mx) mx = logits[i];
    }
    if (!isfinite(mx)) return pgd_argmax(logits, n); /* all -inf, or a +inf */

    const float t = s->temperature;
    const int use_k = s->top_k > 0;
    float *w = s->w;
    uint64_t *key = s->key;
    int m; /* candidates surviving top-k */
    double sum = 0.0;

    if (use_k) {
        m = s->top_k;
        select_top_k(logits, n, m, key);
        for (int j = 0; j < m; j++) {
            w[j] = expf((key_logit(key[j]) - mx) / t);
            sum += w[j];
        }
    } else {
        m = n;
        for (int i = 0; i < n; i++) {
            w[i] = expf((logits[i] - mx) / t);
            sum += w[i];
        }
    }

    if (s->top_p >= 1.0f || m == 1) {
        if (use_k) return draw_keys(key, w, m, sum, u);
        /* plain temperature sampling over the whole vocabulary */
        double r = (double)u * sum, cum = 0.0;
        int last = 0;
        for (int i = 0; i < n; i++) {
            if (w[i] <= 0.0f) continue;
            cum += w[i];
            last = i;
            if (r < cum) return i;
        }
        return last; /* rounding: r landed at the very end of the mass */
    }

    /* top-p. A weight below (1 - p) / (m - 1) of the mass can never be in the
     * nucleus: once the best-first walk reaches it, everything left (at most
     * m - 1 tokens) weighs less than 1 - p, so the mass so far already
     * exceeds p. The argument needs a token before it, so the top token
     * (weight exactly 1) is always kept: the cutoff is capped at 1. The
     * survivors are compacted in place (nf <= index, so nothing is lost). */
    const double p = s->top_p;
    const double cutoff = fmin((1.0 - p) / (double)(m - 1) * sum, 1.0);
    int nf = 0;
    if (use_k) {
        for (int j = 0; j < m; j++) {
            if (w[j] >= cutoff) {
                key[nf] = key[j];
                w[nf++] = w[j];
            }
        }
    } else {
        for (int i = 0; i < n; i++) {
            if (w[i] >= cutoff) {
                key[nf] = cand_key(logits[i], i);
                w[nf++] = w[i];
            }
        }
    }
    PGD_ASSERT(nf >= 1); /* the max has weight expf(0) = 1 >= cutoff */

    double mass;
    int len = nucleus(key, w, nf, p * sum, &mass);
    return draw_keys(key, w, len, mass, u);
}

void pgd_sampler_get_state(const pgd_sampler *s, uint64_t state[4]) { memcpy(state, s->rng.s, sizeof s->rng.s); }
void pgd_sampler_set_state(pgd_sampler *s, const uint64_t state[4]) { memcpy(s->rng.s, state, sizeof s->rng.s); }
