/* threadpool.h - a fixed pool of worker threads for CPU kernels.
 *
 * pgd_threadpool_run(tp, fn, arg) runs fn(arg, i, n) for i = 0..n-1 where n is
 * the pool size (the caller is thread 0), and returns when all are done.
 * Workers spin briefly and then sleep between jobs, so back-to-back kernel
 * launches (dozens per decode step) cost microseconds. A NULL pool runs fn
 * once with (arg, 0, 1). Not reentrant: one job at a time per pool. */
#ifndef PAGODA_THREADPOOL_H
#define PAGODA_THREADPOOL_H

typedef struct pgd_threadpool pgd_threadpool;
typedef void (*pgd_task_fn)(void *arg, int ithread, int nthreads);

/* nthreads <= 0 means the number of online CPUs. Returns NULL on failure. */
pgd_threadpool *pgd_threadpool_create(int nthreads);
void pgd_threadpool_destroy(pgd_threadpool *tp);
int pgd_threadpool_size(const pgd_threadpool *tp);
void pgd_threadpool_run(pgd_threadpool *tp, pgd_task_fn fn, void *arg);

#endif
