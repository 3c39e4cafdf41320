/* suggest.h - "did you mean" for unknown names: the closest candidate by
 * edit distance (Levenshtein: insertions, deletions, substitutions; an
 * adjacent swap counts 1), used for config sections and keys, CLI options
 * and registry names (policies, KV managers). */
#ifndef PAGODA_UTIL_SUGGEST_H
#define PAGODA_UTIL_SUGGEST_H

#include <stddef.h>

/* Edit distance of a and b (each at most 255 characters; longer ones are
 * compared by their first 255). */
int pgd_edit_distance(const char *a, const char *b);

/* The candidate closest to `word` when it is close enough to be a typo
 * (distance <= 1 for words up to 4 characters, <= 2 up to 8, else <= 3,
 * and less than the word's length), else NULL. Candidates: n entries, or up
 * to a NULL entry when n is (size_t)-1. Ties go to the first. */
const char *pgd_suggest(const char *word, const char *const *candidates, size_t n);

/* Join a NULL-terminated name list with sep into buf (cut to fit). */
const char *pgd_names_join(const char *const *names, const char *sep, char *buf, size_t n);

#endif
