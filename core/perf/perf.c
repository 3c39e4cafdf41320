/* perf.c - the perf gate's workload registry, the measured call, and what
 * this build is (compiler, flags, glibc, kernel ISA).
 *
 * Invariant: pgd_perf_measure is a real, out-of-line function (valgrind
 * toggles collection on its entry and exit) that does nothing but call the
 * workload's measured part. */
#include <gnu/libc-version.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "perf/perf_impl.h"

#ifndef PAGODA_C_FLAGS
#define PAGODA_C_FLAGS "unknown"
#endif
#ifndef PAGODA_BUILD_TYPE
#define PAGODA_BUILD_TYPE "unknown"
#endif

static const pgd_perf_workload *const suite[] = {
    &pgd_perf_decode_b1,      &pgd_perf_decode_b32,        &pgd_perf_prefill_128,      &pgd_perf_attention_long,
    &pgd_perf_sched_preempt,  &pgd_perf_tokenize_sharegpt, &pgd_perf_run_sim,          &pgd_perf_config_load,
    &pgd_perf_decode_b1_q8_0, &pgd_perf_decode_b1_q4_0,    &pgd_perf_prefill_128_q8_0,
};
#define NSUITE ((int)(sizeof suite / sizeof suite[0]))

const pgd_perf_workload *const *pgd_perf_workloads(int *n) {
    if (n) *n = NSUITE;
    return suite;
}

const pgd_perf_workload *pgd_perf_find(const char *name) {
    for (int i = 0; name && i < NSUITE; i++)
        if (!strcmp(suite[i]->name, name)) return suite[i];
    char choices[512];
    size_t k = 0;
    for (int i = 0; i < NSUITE && k < sizeof choices; i++)
        k += (size_t)snprintf(choices + k, sizeof choices - k, "%s%s", i ? ", " : "", suite[i]->name);
    pgd_error(PGD_ERR_INVALID, "unknown perf workload '%s' (choices: %s)", name ? name : "", choices);
    return NULL;
}

__attribute__((noinline, noclone)) pgd_status pgd_perf_measure(const pgd_perf_workload *w, void *state) {
    pgd_status st = w->run(state);
    __asm__ volatile("" ::: "memory"); /* keep the call a call (no tail jump out of the toggle) */
    return st;
}

typedef struct run_job {
    const pgd_perf_workload *w;
    const pgd_perf_env *env;
    int reps;
    double *secs;
    uint64_t check;
    pgd_status st;
    char err[512];
} run_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run_thread(void *p) {
    run_job *j = p;
    for (int r = 0; r < j->reps && j->st == PGD_OK; r++) {
        void *state = NULL;
        if ((j->st = j->w->setup(j->env, &state)) != PGD_OK) {
            snprintf(j->err, sizeof j->err, "%s set-up: %s", j->w->name, pgd_last_error());
            break;
        }
        double t0 = now_s();
        j->st = pgd_perf_measure(j->w, state);
        if (j->secs) j->secs[r] = now_s() - t0;
        if (j->st == PGD_OK) j->check = j->w->check(state);
        else snprintf(j->err, sizeof j->err, "%s: %s", j->w->name, pgd_last_error());
        j->w->teardown(state);
    }
    return NULL;
}

pgd_status pgd_perf_run(const pgd_perf_workload *w, const pgd_perf_env *env, int reps, double *secs,
                        uint64_t *check) {
    if (!w || reps < 1) return pgd_error(PGD_ERR_INVALID, "pgd_perf_run: no workload or reps < 1");
    mallopt(M_MMAP_THRESHOLD, 128 * 1024); /* glibc's default, and no dynamic threshold */
    /* jansson seeds its hash tables at random (once, before the first object; a no-op later):
     * the order in which a parsed file's objects are freed, and so where the heap's free chunks
     * lie for the measured part, would change from run to run */
    json_object_seed(1);
    run_job j = {.w = w, .env = env, .reps = reps, .secs = secs, .st = PGD_OK};
    pthread_t t;
    if (pthread_create(&t, NULL, run_thread, &j) != 0)
        return pgd_error(PGD_ERR_OOM, "perf: cannot start the workload's thread");
    pthread_join(t, NULL);
    if (j.st != PGD_OK) return pgd_error(j.st, "%s", j.err); /* the message was the thread's */
    if (check) *check = j.check;
    return PGD_OK;
}

void pgd_perf_build_info(pgd_perf_build *out) {
#ifdef __VERSION__
    out->compiler = "gcc-compatible " __VERSION__;
#else
    out->compiler = "unknown";
#endif
    out->c_flags = PAGODA_C_FLAGS;
    out->build_type = PAGODA_BUILD_TYPE;
    out->glibc = gnu_get_libc_version();
    out->isa = pgd_cpu_isa();
}
