/* exec.h - executors: what runs a model's forward passes and KV-cache
 * operations for the engine, on one backend or over tp x pp ranks.
 *
 * The engine holds one executor. It creates the KV cache through it, sends
 * the scheduler's block operations (copies, swaps) in plan order, and
 * SUBMITS batches, then WAITS for their logits, oldest first; up to
 * pgd_exec_max_in_flight() batches may be out at once:
 *   - one rank, synchronous: 1 (submit runs the pass);
 *   - one rank with async = 1: 2 (a worker thread runs the passes while the
 *     engine schedules the next step and samples the last one);
 *   - pp pipeline stages: pp (stage s works on batch b while stage s + 1
 *     works on batch b - 1; vLLM's virtual engines), plus 1 with async;
 *   - the sim with pp stages: pp (+1 with async), on a clock per stage.
 * Operations take effect in call order on every rank: a block copy sent
 * after a batch's submit runs after that batch's pass on each stage.
 *
 * Every process of an mpirun job creates the executor (collectively); the
 * driver (world rank 0) gets one to run the engine with, every other rank
 * calls pgd_exec_serve(), which runs the driver's commands until the driver
 * destroys its executor. A rank that fails aborts the communicator: every
 * other rank's next call returns PGD_ERR_COMM naming it.
 *
 * Implementations (core/exec/): exec_local.c (one backend, the model's
 * forward pass), exec_dist.c (tensor and pipeline parallel ranks over a
 * communicator: threads, MPI, NCCL, or the sim's), behind the ops table of
 * exec_impl.h. */
#ifndef PAGODA_EXEC_H
#define PAGODA_EXEC_H

#include "pagoda/backend.h"
#include "pagoda/model.h"
#include "pagoda/tokenizer.h"

typedef struct pgd_exec pgd_exec;

typedef struct pgd_exec_config {
    const char *model;             /* model file or random:<shape> */
    pgd_model_load_opts load;      /* seed and dtype of random weights */
    pgd_backend_config backend;    /* this process's backend; with ranks it is split among them:
                                      num_threads = the host's threads to share (0 = all cores) */
    pgd_parallel_config parallel;  /* tp x pp over a communicator (zeroed: one rank) */
    int async;                     /* 1: one more batch in flight (scheduling and sampling overlap
                                      the forward pass) */
    pgd_clock *clock;              /* borrowed virtual clock a simulating backend (the driver's) is
                                      to advance ("set_clock", pagoda/backend.h); NULL = its own */
} pgd_exec_config;

pgd_status pgd_exec_create(const pgd_exec_config *cfg, pgd_exec **out);
void pgd_exec_destroy(pgd_exec *x);

/* 1 on the process that runs the engine, 0 on an mpirun rank that serves it. */
int pgd_exec_is_driver(const pgd_exec *x);
pgd_status pgd_exec_serve(pgd_exec *x);

const pgd_model_config *pgd_exec_model_config(const pgd_exec *x);
pgd_model_format pgd_exec_model_format(const pgd_exec *x);
/* The tokenizer embedded in the model file (GGUF), or NULL. Borrowed. */
const pgd_tokenizer *pgd_exec_tokenizer(const pgd_exec *x);
/* The driver's backend (op accounting). */
pgd_backend *pgd_exec_backend(const pgd_exec *x);
/* The virtual clock of a simulating backend (the engine's clock then), or NULL. */
pgd_clock *pgd_exec_clock(const pgd_exec *x);
/* 0 when the backend computes nothing (the sim: logits are stand-ins). */
int pgd_exec_computes(const pgd_exec *x);
int pgd_exec_max_in_flight(const pgd_exec *x);
/* One line: "tp 2 x pp 1 over threads; rank 0: layers 0-4, ..." or "one rank on cpu". */
const char *pgd_exec_describe(const pgd_exec *x);
/* Seconds the driver spent in communication calls (waiting included). */
double pgd_exec_comm_seconds(const pgd_exec *x);
/* Seconds each pipeline stage's device has been busy since creation (the
 * sim's stage clocks; NULL elsewhere); n gets the stage count. */
const double *pgd_exec_stage_busy(const pgd_exec *x, int *n);

/* The KV cache: num_blocks device blocks of block_size tokens (over all
 * layers and KV heads, each rank holding its part), and num_host_blocks
 * blocks of host swap space. One at a time: an engine creates it and
 * destroys it (no batch may be in flight then). */
pgd_status pgd_exec_kv_create(pgd_exec *x, int block_size, int num_blocks, int num_host_blocks);
void pgd_exec_kv_destroy(pgd_exec *x);
enum { PGD_EXEC_KV_COPY = 1, PGD_EXEC_KV_SWAP_OUT, PGD_EXEC_KV_SWAP_IN };
/* pairs (n, 2) of {src, dst} block ids (pgd_kv_cache_copy_blocks). */
pgd_status pgd_exec_kv_op(pgd_exec *x, int op, const int32_t *pairs, int n);

/* KV hand-off (prefill/decode disaggregation): read (PGD_EXEC_KV_READ) the
 * K/V of n device blocks into host memory, or write (PGD_EXEC_KV_WRITE) them
 * from it, per block every layer's K then V in the cache dtype,
 * pgd_exec_kv_block_bytes() bytes each, blocks in list order. It runs after
 * every batch and block operation sent before it (an async executor's queue
 * is drained first). On an executor that computes nothing (the sim) no data
 * moves and `host` may be NULL. Over tp x pp ranks every rank reads or writes
 * its layers' and KV heads' part, gathered to or scattered from the driver
 * (exec_dist.c), so both sides may have different layouts. */
enum { PGD_EXEC_KV_READ = 1, PGD_EXEC_KV_WRITE };
pgd_status pgd_exec_kv_io(pgd_exec *x, int dir, const int32_t *blocks, int n, void *host);
size_t pgd_exec_kv_block_bytes(const pgd_exec *x);

/* Queue a batch (its arrays are copied: the caller may reuse them at
 * once); *ticket names it. Every index is checked before anything runs. */
pgd_status pgd_exec_submit(pgd_exec *x, const pgd_batch *b, int *ticket);
/* Wait for the oldest batch in flight, which must be `ticket`; *logits
 * (host memory: (num_seqs, vocab), or (num_tokens, vocab) with all_logits)
 * stays valid until the next submit. */
pgd_status pgd_exec_wait(pgd_exec *x, int ticket, const float **logits);
/* Submit and wait: one batch, synchronously (logits copied out). */
pgd_status pgd_exec_forward(pgd_exec *x, const pgd_batch *b, float *logits);

#endif
