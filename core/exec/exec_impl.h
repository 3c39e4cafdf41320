/* exec_impl.h - the executor ops table (public API: pagoda/exec.h). An
 * implementation fills a static const struct pgd_exec_ops and embeds
 * struct pgd_exec first in its own struct; only exec.c calls x->ops->fn,
 * after checking the arguments.
 *
 * Tickets: exec.c numbers the batches 0, 1, 2, ... in submit order and
 * keeps the in-flight count; submit gets the ticket to use, wait is called
 * for the oldest one only. */
#ifndef PAGODA_EXEC_IMPL_H
#define PAGODA_EXEC_IMPL_H

#include "pagoda/exec.h"

struct pgd_exec_ops {
    const char *name;
    void (*destroy)(pgd_exec *x);
    pgd_status (*serve)(pgd_exec *x);                 /* non-driver ranks only */
    pgd_status (*kv_create)(pgd_exec *x, int block_size, int num_blocks, int num_host_blocks);
    void (*kv_destroy)(pgd_exec *x);
    pgd_status (*kv_op)(pgd_exec *x, int op, const int32_t *pairs, int n);
    pgd_status (*submit)(pgd_exec *x, const pgd_batch *b, int ticket);
    pgd_status (*wait)(pgd_exec *x, int ticket, const float **logits);
    double (*comm_seconds)(const pgd_exec *x);        /* optional */
    /* optional (absent: PGD_ERR_UNSUPPORTED): pgd_exec_kv_io on a computing executor */
    pgd_status (*kv_io)(pgd_exec *x, int dir, const int32_t *blocks, int n, void *host);
    const double *(*stage_busy)(const pgd_exec *x, int *n); /* optional */
};

struct pgd_exec {
    const struct pgd_exec_ops *ops;
    pgd_backend *backend;            /* the driver's backend (owned) */
    pgd_backend *acct;               /* the backend whose ops are accounted (pgd_exec_backend);
                                        NULL = backend */
    pgd_clock *clock;                /* the engine's virtual clock; NULL = the backend's */
    pgd_model_config cfg;            /* the whole model's configuration */
    pgd_model_format format;
    const pgd_tokenizer *tok;        /* borrowed from the driver's model */
    int driver, computes, max_in_flight;
    int kv_block_size, kv_num_blocks; /* 0 until kv_create */
    int next_ticket, n_in_flight;
    char desc[192];
};

/* Create one of each kind (cfg checked by exec.c; b is owned on success). */
pgd_status pgd_exec_local_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out);
pgd_status pgd_exec_dist_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out);
/* The sim's pipeline stages (pp > 1 on a backend that computes nothing). */
pgd_status pgd_exec_simpipe_create(const pgd_exec_config *cfg, pgd_backend *b, pgd_exec **out);

/* Copy of a batch's arrays into one int32 buffer (tokens | query_start |
 * seq_lens | block_tables), growing *buf; returns the element count. */
pgd_status pgd_exec_pack_batch(const pgd_batch *b, int32_t **buf, size_t *cap, size_t *n);
/* The batch view of a packed buffer. */
pgd_batch pgd_exec_unpack_batch(const int32_t *p, int num_seqs, int num_tokens, int max_blocks, int all_logits);

/* The layer counts of a [parallel] stage_layers list ("10,14") into out[64]:
 * returns pp, 0 for an empty list (even split), -1 when malformed. */
int pgd_exec_parse_stage_layers(const char *s, int pp, int *out);
/* Pipeline micro-batches of a step of S sequences and T tokens over pp
 * stages: `forced` (PAGODA_PP_MICROBATCHES) when > 0, else one per
 * PGD_PP_MB_TOKENS tokens, at most pp, at most S. Splitting a small
 * (memory-bound) decode step only makes each stage stream its weights once
 * per micro-batch: measured on the 2-core CPU, PP 2 decode at batch 8 ran
 * at 255 tok/s with 2 micro-batches and 502 tok/s with 1. */
#define PGD_PP_MB_TOKENS 64
int pgd_exec_microbatches(int pp, int forced, int S, int T);
/* End (exclusive sequence index) of micro-batch mb of M that starts at
 * sequence s0: cut where the token count passes (mb + 1) / M of T, leaving
 * a sequence for each later micro-batch. Driver and stages call it alike,
 * so they agree. */
int pgd_exec_mb_end(const int32_t *qs, int S, int T, int M, int mb, int s0);

#endif
