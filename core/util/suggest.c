/* suggest.c - edit distance and the closest-name suggestion (suggest.h).
 * Optimal string alignment distance over two rows plus the one before. */
#include "util/suggest.h"

#include <stdio.h>
#include <string.h>

#define MAXLEN 255

int pgd_edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > MAXLEN) n = MAXLEN;
    if (m > MAXLEN) m = MAXLEN;
    int rows[3][MAXLEN + 1], *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d) d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

const char *pgd_suggest(const char *word, const char *const *candidates, size_t n) {
    if (!word || !candidates) return NULL;
    size_t len = strlen(word);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    if ((size_t)limit >= len) limit = len > 0 ? (int)len - 1 : 0;
    const char *best = NULL;
    int best_d = limit + 1;
    for (size_t i = 0; i < n && candidates[i]; i++) {
        int d = pgd_edit_distance(word, candidates[i]);
        if (d < best_d) best_d = d, best = candidates[i];
    }
    return best;
}

const char *pgd_names_join(const char *const *names, const char *sep, char *buf, size_t n) {
    if (!n) return buf;
    buf[0] = 0;
    for (int i = 0; names && names[i]; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", i ? sep : "", names[i]);
    }
    return buf;
}
