/* test_util.h - shared helpers for the CUnit suites.
 *
 * Each tests/test_<module>.c defines its CU_TestInfo arrays and a
 * CU_SuiteInfo array (designated initializers), and ends with
 *   int main(void) { return pgd_test_main(suites); }
 * pgd_test_main() runs the suites verbosely and returns non-zero if any
 * test, assertion or suite setup failed. */
#ifndef PAGODA_TEST_UTIL_H
#define PAGODA_TEST_UTIL_H

/* PGD_TEST_ASAN: defined when built with AddressSanitizer (gcc or clang);
 * tests that limit address space or measure memory skip those checks. */
#if defined(__SANITIZE_ADDRESS__)
#define PGD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PGD_TEST_ASAN 1
#endif
#endif

#include <CUnit/Basic.h>
#include <stdint.h>
#include <stddef.h>

int pgd_test_main(CU_SuiteInfo *suites);

/* Path under ../shared/data, or under $PAGODA_SHARED_DATA when that is set
 * (static buffer, overwritten by the next call). */
const char *pgd_test_data(const char *rel);

/* Fill with deterministic uniform values in [lo, hi). */
void pgd_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

/* malloc'd n floats uniform in [lo, hi) (pgd_test_fill_uniform); free() it. */
float *pgd_test_randf(size_t n, uint64_t seed, float lo, float hi);
/* malloc'd n weights of dtype dt (f32, f16 or bf16) from uniform floats in
 * [-1, 1) of the given seed, rounded once to dt; free() it. */
void *pgd_test_rand_weights(size_t n, int dt, uint64_t seed);

/* max_i |a-b| / max(max_i |b|, tiny): relative error of a against reference b. */
double pgd_test_rel_err(const float *a, const float *b, size_t n);

/* malloc'd per-output bounds (n x out) for a matmul whose kernel rounds x
 * (n x in) to int8 per block of 32 (d = max|x| / 127): each output within
 * sum over blocks of (d / 2) sum |w| of the f32 reference (wf: out x in, in
 * % 32 == 0), times 1 + 1e-4, plus tol times the reference's largest |y|
 * (ref: n x out) for f32 rounding; free() it. */
double *pgd_test_int8_bounds(const float *x, const float *wf, const float *ref, int n, int in, int out, double tol);

/* Run the pagoda binary with `args` (a shell-quoted string), capturing stdout
 * and stderr into malloc'd strings (either may be NULL to discard). Returns
 * the exit status (or -1 if it did not exit normally). */
int pgd_test_run_cli(const char *args, char **out, char **err);

/* Start `pagoda serve` as a child process on an ephemeral port (--port 0),
 * with --model and --tokenizer these files under the shared data (paths as
 * pgd_test_data takes them) and then the NULL-ended `extra` arguments.
 * Returns the port of the line it prints once it listens ("listening on
 * http://127.0.0.1:PORT"), with the child in *pid; 0 when it printed no
 * such line (the child is then killed and reaped, *pid = -1). */
int pgd_test_serve_child(const char *model, const char *tokenizer, const char *const *extra, int *pid);
/* Wait for child `pid` to end: its exit status, -1 when it did not exit
 * normally (a signal) or is not a child. */
int pgd_test_wait_child(int pid);

/* Read a whole file into a malloc'd buffer (NUL-terminated, with 64 spare
 * bytes past the end); *n gets its size (n may be NULL). NULL on failure. */
void *pgd_test_read_file(const char *path, size_t *n);

/* Write `n` bytes to a fresh temp file; returns its malloc'd path. */
char *pgd_test_write_temp(const void *data, size_t n, const char *suffix);

/* The stories260K golden file (golden/stories260K_greedy.jsonl): each
 * line's prompt, prompt tokens and greedy continuation. */
typedef struct pgd_golden {
    char prompt[256];
    int np, ng;
    int32_t ptoks[64];
    int32_t gtoks[1024];
} pgd_golden;
#define PGD_GOLDEN_FILE "golden/stories260K_greedy.jsonl"
/* Read up to `max` goldens from PGD_GOLDEN_FILE under the shared data;
 * returns how many, 0 when the file is missing or malformed. */
int pgd_test_load_goldens(pgd_golden *g, int max);

/* Host model of the backend sample op's semantics (backend.h,
 * pgd_backend_sample): the token one row draws, and in *margin the smallest
 * distance (relative to the kept mass) between a cumulative sum and a
 * threshold it was compared with (a device may round across a threshold
 * that close). */
#include "pagoda/backend.h"
int pgd_test_ref_sample(const float *logits, int n, pgd_sample_row p, double *margin);

#endif
