/* threadpool.c - fixed pool of pthread workers running one job at a time.
 *
 * A job is published by storing fn/arg and then bumping `gen` (release);
 * workers watch `gen`, spin for about `spin_ns` after their last job
 * and then sleep on `wake`. The caller runs share 0 itself, then waits for
 * `pending` (workers still running) to reach zero, spinning first and then
 * sleeping on `done`.
 *
 * Invariants:
 *  - fn/arg are written only while no worker runs a job (pending == 0).
 *  - Lost wake-ups are excluded Dekker-style: a sleeper increments `sleepers`
 *    (seq_cst) under `mu` before re-checking `gen`, and the publisher bumps
 *    `gen` (seq_cst) before reading `sleepers`; so either the sleeper sees
 *    the new job or the publisher sees the sleeper and broadcasts under `mu`.
 *    The caller's wait on `done` uses the same pattern with `caller_waiting`.
 *  - Claimed jobs (pgd_threadpool_run_claimed): `join` holds the job's
 *    generation, a closed flag and the number of workers that joined. A
 *    worker runs the job only if it joins (CAS) while the generation is the
 *    one it saw and the job is open; the caller closes the job (fetch_or)
 *    once its own call returns, and then waits only for the workers that
 *    joined (`finished`). A worker that sees a newer generation in `join`
 *    skips the job it saw: only a closed claimed job can be followed by
 *    another while a worker has not yet run it. fn/arg are read only after
 *    joining, so they are never read for a job other than the one joined.
 *  - Not reentrant: one pgd_threadpool_run(_claimed) at a time per pool.
 *  - Scratch slot i (pgd_threadpool_scratch) belongs to thread i while a job
 *    runs and slot n to the caller between jobs; a slot is only reallocated
 *    by its owner, so no slot is shared between threads at the same time. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Workers spin this long after a job before sleeping (environment
 * PAGODA_POOL_SPIN_US overrides it): it covers the gaps between the kernels
 * of one decode step and the host work between steps. Waking a sleeping
 * thread costs 0.05-3 ms on the 2-vCPU VM this was tuned on (the host
 * deschedules idle vCPUs), so sleeping between kernels would dominate. */
#define PGD_POOL_SPIN_NS 2000000
/* The caller waits for busy workers this long before sleeping itself: its
 * workers are running, so this only matters if they were descheduled. */
#define PGD_POOL_WAIT_SPIN_NS 5000000
/* Spinning turns from pause loops into sched_yield loops after this. */
#define PGD_POOL_PAUSE_NS 50000

struct pgd_threadpool {
    int n;              /* threads including the caller */
    pthread_t *threads; /* n-1 workers */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers sleep here between jobs */
    pthread_cond_t done; /* the caller sleeps here waiting for pending == 0 */
    atomic_uint gen;     /* job generation, bumped once per job */
    atomic_int pending;  /* workers that have not finished the current job */
    atomic_int sleepers; /* workers blocked (or about to block) on wake */
    atomic_int caller_waiting;
    atomic_int stop;
    _Atomic uint64_t join; /* gen << 32 | JOIN_CLAIMED | JOIN_CLOSED | workers joined */
    atomic_int finished;   /* claimed jobs: joined workers that have finished */
    int64_t spin_ns; /* worker spin budget */
    pgd_task_fn fn;
    void *arg;
    void **scratch;        /* n + 1 slots: one per thread, the last shared (pgd_threadpool_scratch) */
    size_t *scratch_bytes; /* each slot's capacity */
};

#define JOIN_CLAIMED (1ull << 31) /* the job is a claimed one (pgd_threadpool_run_claimed) */
#define JOIN_CLOSED (1ull << 30)  /* its caller has returned from its own share: no more joins */
#define JOIN_COUNT ((1ull << 30) - 1)

typedef struct worker_start {
    pgd_threadpool *tp;
    int index;
} worker_start;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Busy-wait step: pause for the first PGD_POOL_PAUSE_NS, then yield the
 * CPU on each step so that an oversubscribed machine (more runnable threads
 * than cores) still makes progress; with idle cores sched_yield returns at
 * once. Returns 1 once `budget` ns have passed since *t0 (0 = not started). */
static int spin_step(unsigned i, int64_t *t0, int64_t budget) {
    if ((i & 63) != 63) {
        cpu_relax();
        return 0;
    }
    int64_t t = now_ns();
    if (*t0 == 0) *t0 = t;
    if (t - *t0 > PGD_POOL_PAUSE_NS) sched_yield();
    return t - *t0 > budget;
}

/* Spin until `gen` differs from `seen` or the spin budget runs out; returns
 * the current generation. */
static unsigned spin_for_job(pgd_threadpool *tp, unsigned seen) {
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed)) return g;
        if (spin_step(i, &t0, tp->spin_ns)) return g;
    }
}

static void *worker_main(void *p) {
    worker_start ws = *(worker_start *)p;
    free(p);
    pgd_threadpool *tp = ws.tp;
    unsigned seen = 0; /* gen starts at 0 */
    for (;;) {
        unsigned g = spin_for_job(tp, seen);
        if (g == seen && !atomic_load(&tp->stop)) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while ((g = atomic_load(&tp->gen)) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop)) break;
        seen = g;
        uint64_t js = atomic_load(&tp->join);
        if ((unsigned)(js >> 32) != g) continue; /* a claimed job, closed and followed by another */
        if (js & JOIN_CLAIMED) {
            int joined = 0;
            while ((unsigned)(js >> 32) == g && !(js & JOIN_CLOSED))
                if (atomic_compare_exchange_weak(&tp->join, &js, js + 1)) {
                    joined = 1;
                    break;
                }
            if (!joined) continue; /* the caller did the work without this worker */
            tp->fn(tp->arg, ws.index, tp->n);
            atomic_fetch_add(&tp->finished, 1);
            if (atomic_load(&tp->caller_waiting)) {
                pthread_mutex_lock(&tp->mu);
                pthread_cond_signal(&tp->done);
                pthread_mutex_unlock(&tp->mu);
            }
            continue;
        }
        tp->fn(tp->arg, ws.index, tp->n);
        if (atomic_fetch_sub(&tp->pending, 1) == 1 && atomic_load(&tp->caller_waiting)) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
    return NULL;
}

pgd_threadpool *pgd_threadpool_create(int nthreads) {
    if (nthreads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (int)c : 1;
    }
    pgd_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n = nthreads;
    tp->spin_ns = PGD_POOL_SPIN_NS;
    const char *env = getenv("PAGODA_POOL_SPIN_US");
    if (env && *env) tp->spin_ns = strtoll(env, NULL, 10) * 1000;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->sleepers, 0);
    atomic_init(&tp->caller_waiting, 0);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->join, 0);
    atomic_init(&tp->finished, 0);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    pthread_cond_init(&tp->done, NULL);
    tp->threads = calloc((size_t)nthreads, sizeof *tp->threads);
    tp->scratch = calloc((size_t)nthreads + 1, sizeof *tp->scratch);
    tp->scratch_bytes = calloc((size_t)nthreads + 1, sizeof *tp->scratch_bytes);
    if (!tp->threads || !tp->scratch || !tp->scratch_bytes) goto fail;
    for (int i = 1; i < nthreads; i++) {
        worker_start *ws = malloc(sizeof *ws);
        if (ws) {
            ws->tp = tp;
            ws->index = i;
        }
        if (!ws || pthread_create(&tp->threads[i - 1], NULL, worker_main, ws) != 0) {
            free(ws);
            tp->n = i; /* only workers 1..i-1 exist: destroy joins just those */
            pgd_threadpool_destroy(tp);
            return NULL;
        }
    }
    return tp;
fail:
    free(tp->threads);
    free(tp->scratch);
    free(tp->scratch_bytes);
    pthread_cond_destroy(&tp->done);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
    return NULL;
}

void pgd_threadpool_destroy(pgd_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i - 1], NULL);
    pthread_cond_destroy(&tp->done);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->mu);
    for (int i = 0; i <= tp->n; i++) free(tp->scratch[i]);
    free(tp->scratch);
    free(tp->scratch_bytes);
    free(tp->threads);
    free(tp);
}

void *pgd_threadpool_scratch(pgd_threadpool *tp, int slot, size_t bytes) {
    if (!tp || slot < 0 || slot > tp->n) return NULL;
    if (bytes == 0) bytes = 1;
    if (tp->scratch_bytes[slot] < bytes) {
        size_t cap = (bytes + 4095) / 4096 * 4096; /* whole pages: a slightly larger call reuses it */
        free(tp->scratch[slot]);
        tp->scratch[slot] = aligned_alloc(64, cap);
        tp->scratch_bytes[slot] = tp->scratch[slot] ? cap : 0;
    }
    return tp->scratch[slot];
}

int pgd_threadpool_size(const pgd_threadpool *tp) { return tp ? tp->n : 1; }

/* Stores the job (fn, arg), bumps the generation (seq_cst: publishes
 * fn/arg/pending and `join`, stored first with the new generation) and
 * wakes sleeping workers. */
static void publish(pgd_threadpool *tp, pgd_task_fn fn, void *arg, uint64_t claimed) {
    tp->fn = fn;
    tp->arg = arg;
    unsigned g = atomic_load_explicit(&tp->gen, memory_order_relaxed) + 1;
    atomic_store(&tp->join, (uint64_t)g << 32 | claimed);
    atomic_fetch_add(&tp->gen, 1);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
}

/* Waits until *counter == target: spins, then sleeps on `done`. */
static void wait_for(pgd_threadpool *tp, atomic_int *counter, int target) {
    int64_t t0 = 0;
    for (unsigned i = 0; atomic_load_explicit(counter, memory_order_acquire) != target; i++) {
        if (spin_step(i, &t0, PGD_POOL_WAIT_SPIN_NS)) {
            pthread_mutex_lock(&tp->mu);
            atomic_store(&tp->caller_waiting, 1);
            while (atomic_load(counter) != target) pthread_cond_wait(&tp->done, &tp->mu);
            atomic_store(&tp->caller_waiting, 0);
            pthread_mutex_unlock(&tp->mu);
            break;
        }
    }
}

void pgd_threadpool_run_claimed(pgd_threadpool *tp, pgd_task_fn fn, void *arg) {
    if (!tp || tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    atomic_store(&tp->finished, 0);
    publish(tp, fn, arg, JOIN_CLAIMED);
    fn(arg, 0, tp->n);
    uint64_t js = atomic_fetch_or(&tp->join, JOIN_CLOSED);
    wait_for(tp, &tp->finished, (int)(js & JOIN_COUNT));
}

void pgd_threadpool_run(pgd_threadpool *tp, pgd_task_fn fn, void *arg) {
    if (!tp || tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    atomic_store(&tp->pending, tp->n - 1);
    publish(tp, fn, arg, 0);
    fn(arg, 0, tp->n);

    wait_for(tp, &tp->pending, 0); /* the workers: spin, then sleep */
}
