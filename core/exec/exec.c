/* exec.c - executor creation and the checked wrappers of the ops table
 * (exec_impl.h): which kind serves a configuration, the backend of this
 * process (its share of the host's threads under a parallel layout, its
 * cores when pinning: what layout.c decided before), ticket order and the
 * in-flight count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_impl.h"
#include "pagoda/comm.h"
#include "pagoda/parallel.h"

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

/* The driver's backend configuration under a layout: the host's threads
 * split among the ranks that share it, pinning, one GPU per NCCL rank. */
static pgd_status layout_backend(const pgd_exec_config *cfg, pgd_backend_config *bc) {
    const pgd_parallel_config *pc = &cfg->parallel;
    int n = pgd_parallel_ranks(pc);
    const char *comm = pc->comm && *pc->comm ? pc->comm : "threads";
    if (strcmp(comm, "threads") && strcmp(comm, "mpi") && strcmp(comm, "nccl"))
        return pgd_error(PGD_ERR_INVALID, "parallel layout: unknown communicator '%s' (threads, mpi or nccl)", comm);
    int over_mpi = !strcmp(comm, "mpi") || (!strcmp(comm, "nccl") && pgd_comm_mpi_world_size() > 1);
    int local = n, local_rank = 0;
    if (over_mpi) {
        local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", n);
        local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", pgd_comm_mpi_world_rank());
        if (local < 1) local = 1;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    int total = cfg->backend.num_threads > 0 ? cfg->backend.num_threads : (int)ncpu;
    int per = total / local > 0 ? total / local : 1;
    if (n > 1 || over_mpi) bc->num_threads = per;
    if (pc->pin && (n > 1 || over_mpi)) {
        bc->pin_rank = local_rank + 1;
        bc->pin_ranks = local;
    }
    if (!strcmp(comm, "nccl")) bc->device = over_mpi ? local_rank : 0; /* one GPU per rank */
    return PGD_OK;
}

pgd_status pgd_exec_create(const pgd_exec_config *cfg, pgd_exec **out) {
    if (!cfg || !out || !cfg->model) return pgd_error(PGD_ERR_INVALID, "executor: NULL argument");
    *out = NULL;
    if (cfg->async < 0 || cfg->async > 1)
        return pgd_error(PGD_ERR_INVALID, "executor: async must be 0 or 1 (got %d)", cfg->async);
    int tp = cfg->parallel.tp > 0 ? cfg->parallel.tp : 1, pp = cfg->parallel.pp > 0 ? cfg->parallel.pp : 1;
    if (tp > 64 || pp > 64 || tp * pp > 256)
        return pgd_error(PGD_ERR_INVALID, "parallel layout: tp %d x pp %d is too large (tp, pp <= 64, 256 ranks)",
                         tp, pp);
    int n = pgd_parallel_ranks(&cfg->parallel);
    const char *comm = cfg->parallel.comm && *cfg->parallel.comm ? cfg->parallel.comm : "threads";
    pgd_backend_config bc = cfg->backend;
    PGD_TRY(layout_backend(cfg, &bc));
    int dist = n > 1 || strcmp(comm, "threads");
    if (dist && !strcmp(comm, "mpi") && pgd_comm_mpi_world_size() != n) /* before MPI or any backend starts */
        return pgd_error(PGD_ERR_INVALID, "parallel layout: mpi tp %d x pp %d needs %d MPI ranks, this job has %d "
                         "(start it with mpirun -np %d)", tp, pp, n, pgd_comm_mpi_world_size(), n);
    pgd_backend *b = NULL;
    pgd_status st0;
    PGD_TRY(pgd_backend_create(&bc, &b));
    if (cfg->clock && !pgd_backend_computes(b) && (st0 = pgd_backend_control(b, "set_clock", cfg->clock)) != PGD_OK) {
        pgd_backend_destroy(b);
        return st0;
    }
    pgd_exec_config c = *cfg;
    c.backend = bc;
    pgd_status st = !pgd_backend_computes(b) && pp > 1 ? pgd_exec_simpipe_create(&c, b, out)
                    : dist                            ? pgd_exec_dist_create(&c, b, out)
                                                      : pgd_exec_local_create(&c, b, out);
    if (st != PGD_OK) {
        pgd_backend_destroy(b);
        return st;
    }
    (*out)->backend = b;
    return PGD_OK;
}

void pgd_exec_destroy(pgd_exec *x) {
    if (!x) return;
    pgd_backend *b = x->backend;
    x->ops->destroy(x);
    pgd_backend_destroy(b);
}

int pgd_exec_is_driver(const pgd_exec *x) { return x->driver; }

pgd_status pgd_exec_serve(pgd_exec *x) {
    if (x->driver || !x->ops->serve)
        return pgd_error(PGD_ERR_INVALID, "executor: this process is the driver, not a serving rank");
    return x->ops->serve(x);
}

const pgd_model_config *pgd_exec_model_config(const pgd_exec *x) { return &x->cfg; }
pgd_model_format pgd_exec_model_format(const pgd_exec *x) { return x->format; }
const pgd_tokenizer *pgd_exec_tokenizer(const pgd_exec *x) { return x->tok; }
pgd_backend *pgd_exec_backend(const pgd_exec *x) { return x->acct ? x->acct : x->backend; }
pgd_clock *pgd_exec_clock(const pgd_exec *x) { return x->clock ? x->clock : pgd_backend_clock(x->backend); }
int pgd_exec_computes(const pgd_exec *x) { return x->computes; }
int pgd_exec_max_in_flight(const pgd_exec *x) { return x->max_in_flight; }
const char *pgd_exec_describe(const pgd_exec *x) { return x->desc; }
double pgd_exec_comm_seconds(const pgd_exec *x) { return x->ops->comm_seconds ? x->ops->comm_seconds(x) : 0; }

const double *pgd_exec_stage_busy(const pgd_exec *x, int *n) {
    *n = 0;
    return x->ops->stage_busy ? x->ops->stage_busy(x, n) : NULL;
}

pgd_status pgd_exec_kv_create(pgd_exec *x, int block_size, int num_blocks, int num_host_blocks) {
    if (!x->driver) return pgd_error(PGD_ERR_INVALID, "executor: only the driver creates the KV cache");
    if (x->kv_num_blocks) return pgd_error(PGD_ERR_INVALID, "executor: a KV cache exists already (one at a time)");
    if (block_size <= 0 || block_size > 4096 || num_blocks <= 0 || num_host_blocks < 0)
        return pgd_error(PGD_ERR_INVALID, "kv cache: block size %d / %d blocks / %d host blocks out of range",
                         block_size, num_blocks, num_host_blocks);
    PGD_TRY(x->ops->kv_create(x, block_size, num_blocks, num_host_blocks));
    x->kv_block_size = block_size;
    x->kv_num_blocks = num_blocks;
    return PGD_OK;
}

void pgd_exec_kv_destroy(pgd_exec *x) {
    if (!x || !x->driver || !x->kv_num_blocks) return;
    const float *l;
    while (x->n_in_flight > 0) (void)pgd_exec_wait(x, x->next_ticket - x->n_in_flight, &l); /* drain */
    x->ops->kv_destroy(x);
    x->kv_num_blocks = x->kv_block_size = 0;
}

pgd_status pgd_exec_kv_op(pgd_exec *x, int op, const int32_t *pairs, int n) {
    if (op != PGD_EXEC_KV_COPY && op != PGD_EXEC_KV_SWAP_OUT && op != PGD_EXEC_KV_SWAP_IN)
        return pgd_error(PGD_ERR_INVALID, "executor: unknown KV operation %d", op);
    if (!x->kv_num_blocks) return pgd_error(PGD_ERR_INVALID, "executor: KV operation without a KV cache");
    if (n <= 0) return PGD_OK;
    if (!pairs) return pgd_error(PGD_ERR_INVALID, "executor: NULL block pairs");
    return x->ops->kv_op(x, op, pairs, n);
}

size_t pgd_exec_kv_block_bytes(const pgd_exec *x) {
    return x->kv_block_size ? pgd_kv_cache_block_bytes(&x->cfg, x->kv_block_size) : 0;
}

pgd_status pgd_exec_kv_io(pgd_exec *x, int dir, const int32_t *blocks, int n, void *host) {
    if (!x) return pgd_error(PGD_ERR_INVALID, "executor: NULL argument");
    if (dir != PGD_EXEC_KV_READ && dir != PGD_EXEC_KV_WRITE)
        return pgd_error(PGD_ERR_INVALID, "executor: unknown KV transfer direction %d", dir);
    if (!x->kv_num_blocks) return pgd_error(PGD_ERR_INVALID, "executor: KV transfer without a KV cache");
    if (n <= 0) return PGD_OK;
    if (!blocks) return pgd_error(PGD_ERR_INVALID, "executor: NULL block list");
    for (int i = 0; i < n; i++)
        if (blocks[i] < 0 || blocks[i] >= x->kv_num_blocks)
            return pgd_error(PGD_ERR_INVALID, "executor: KV transfer of block %d outside 0..%d", blocks[i],
                             x->kv_num_blocks - 1);
    if (!x->computes) return PGD_OK; /* the sim: only the byte count matters (the caller prices it) */
    if (!host) return pgd_error(PGD_ERR_INVALID, "executor: NULL host buffer for a KV transfer");
    if (!x->ops->kv_io)
        return pgd_error(PGD_ERR_UNSUPPORTED, "executor: KV export/import over %s is not supported", x->desc);
    return x->ops->kv_io(x, dir, blocks, n, host);
}

pgd_status pgd_exec_submit(pgd_exec *x, const pgd_batch *b, int *ticket) {
    if (!x || !b || !ticket) return pgd_error(PGD_ERR_INVALID, "executor: NULL argument");
    if (!x->driver) return pgd_error(PGD_ERR_INVALID, "executor: only the driver submits batches");
    if (!x->kv_num_blocks) return pgd_error(PGD_ERR_INVALID, "executor: submit before the KV cache was created");
    if (x->n_in_flight >= x->max_in_flight)
        return pgd_error(PGD_ERR_INVALID, "executor: %d batches in flight already (at most %d): wait first",
                         x->n_in_flight, x->max_in_flight);
    PGD_TRY(pgd_model_check_config_batch(&x->cfg, x->kv_block_size, x->kv_num_blocks, b));
    int t = x->next_ticket;
    PGD_TRY(x->ops->submit(x, b, t));
    x->next_ticket++;
    x->n_in_flight++;
    *ticket = t;
    return PGD_OK;
}

pgd_status pgd_exec_wait(pgd_exec *x, int ticket, const float **logits) {
    if (!x || !logits) return pgd_error(PGD_ERR_INVALID, "executor: NULL argument");
    int oldest = x->next_ticket - x->n_in_flight;
    if (x->n_in_flight == 0 || ticket != oldest)
        return pgd_error(PGD_ERR_INVALID, "executor: wait for batch %d, but the oldest in flight is %d (%d in flight)",
                         ticket, oldest, x->n_in_flight);
    pgd_status st = x->ops->wait(x, ticket, logits);
    x->n_in_flight--; /* landed or failed: either way no longer in flight */
    return st;
}

pgd_status pgd_exec_forward(pgd_exec *x, const pgd_batch *b, float *logits) {
    int t = -1;
    const float *l = NULL;
    PGD_TRY(pgd_exec_submit(x, b, &t));
    PGD_TRY(pgd_exec_wait(x, t, &l));
    size_t rows = b->all_logits ? (size_t)b->num_tokens : (size_t)b->num_seqs;
    memcpy(logits, l, sizeof(float) * rows * (size_t)x->cfg.vocab_size);
    return PGD_OK;
}

pgd_status pgd_exec_pack_batch(const pgd_batch *b, int32_t **buf, size_t *cap, size_t *n) {
    const int S = b->num_seqs, T = b->num_tokens, MB = b->max_blocks_per_seq;
    size_t need = (size_t)T + 2 * (size_t)S + 1 + (size_t)S * MB;
    if (need > *cap) {
        size_t c = need > 2 * *cap ? need : 2 * *cap;
        int32_t *p = realloc(*buf, c * sizeof(int32_t));
        if (!p) return pgd_error(PGD_ERR_OOM, "executor: out of memory for a batch of %zu ints", need);
        *buf = p;
        *cap = c;
    }
    int32_t *p = *buf;
    memcpy(p, b->tokens, sizeof(int32_t) * T);
    memcpy(p + T, b->query_start, sizeof(int32_t) * (S + 1));
    memcpy(p + T + S + 1, b->seq_lens, sizeof(int32_t) * S);
    memcpy(p + T + 2 * S + 1, b->block_tables, sizeof(int32_t) * (size_t)S * MB);
    *n = need;
    return PGD_OK;
}

pgd_batch pgd_exec_unpack_batch(const int32_t *p, int num_seqs, int num_tokens, int max_blocks, int all_logits) {
    const int S = num_seqs, T = num_tokens;
    return (pgd_batch){.num_seqs = S, .num_tokens = T, .tokens = p, .query_start = p + T, .seq_lens = p + T + S + 1,
                       .block_tables = p + T + 2 * S + 1, .max_blocks_per_seq = max_blocks, .all_logits = all_logits};
}

int pgd_exec_mb_end(const int32_t *qs, int S, int T, int M, int mb, int s0) {
    if (mb == M - 1) return S;
    int s1 = s0 + 1;
    long target = (long)T * (mb + 1) / M;
    while (s1 < S - (M - 1 - mb) && qs[s1] < target) s1++;
    return s1;
}

int pgd_exec_microbatches(int pp, int forced, int S, int T) {
    int M = 1;
    if (pp > 1) {
        M = forced ? forced : T / PGD_PP_MB_TOKENS;
        if (M > pp && !forced) M = pp;
        if (M > S) M = S;
        if (M < 1) M = 1;
    }
    return M;
}

int pgd_exec_parse_stage_layers(const char *s, int pp, int *out) {
    memset(out, 0, sizeof(int) * 64);
    if (!s || !*s) return 0;
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || n >= 64) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n == pp ? n : -1;
}
