/* threadpool.h - a fixed pool of worker threads for CPU kernels.
 *
 * pgd_threadpool_run(tp, fn, arg) runs fn(arg, i, n) for i = 0..n-1 where n is
 * the pool size (the caller is thread 0), and returns when all are done.
 * Workers spin briefly and then sleep between jobs, so back-to-back kernel
 * launches (dozens per decode step) cost microseconds. A NULL pool runs fn
 * once with (arg, 0, 1). Not reentrant: one job at a time per pool. */
#ifndef PAGODA_THREADPOOL_H
#define PAGODA_THREADPOOL_H

#include <stddef.h>

typedef struct pgd_threadpool pgd_threadpool;
typedef void (*pgd_task_fn)(void *arg, int ithread, int nthreads);

/* nthreads <= 0 means the number of online CPUs. Returns NULL on failure. */
pgd_threadpool *pgd_threadpool_create(int nthreads);
void pgd_threadpool_destroy(pgd_threadpool *tp);
int pgd_threadpool_size(const pgd_threadpool *tp);
void pgd_threadpool_run(pgd_threadpool *tp, pgd_task_fn fn, void *arg);
/* The same for tasks whose threads take their work from a shared claim
 * (an atomic counter) until none is left, so that fn(arg, 0, n) on the
 * caller alone does all the work the workers have not claimed. Workers
 * that have not started by the time the caller's own call returns skip
 * the job and are not waited for: a worker the host has descheduled, or
 * one slow to wake, costs the caller nothing but the work it would have
 * done. fn must not depend on every index i running. */
void pgd_threadpool_run_claimed(pgd_threadpool *tp, pgd_task_fn fn, void *arg);
/* A buffer of at least `bytes` bytes, 64-byte aligned, that the pool keeps
 * (and frees in pgd_threadpool_destroy) so that kernels run on it do not
 * allocate per call: slot i (0 <= i < size) for the thread that fn sees as
 * ithread = i, only from that thread while a job runs; slot `size` for the
 * caller, outside a job (e.g. data the job's threads then share). Contents
 * are kept until the slot is grown (then they are lost). NULL for a NULL
 * pool, a slot out of range or no memory: the caller allocates itself. */
void *pgd_threadpool_scratch(pgd_threadpool *tp, int slot, size_t bytes);

#endif
