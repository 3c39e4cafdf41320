/* backend.h - the compute backend interface (CPU, CUDA, ROCm, simulator).
 *
 * A backend owns device memory and runs the ops of a Llama forward pass.
 * Device memory is addressed by plain pointers returned by
 * pgd_backend_alloc(): host pointers on the CPU backend, device pointers on
 * GPUs (never dereference them on the host; use upload/download). Ops are
 * queued in order on the backend's stream and may run asynchronously;
 * pgd_backend_download() and pgd_backend_sync() wait for them.
 *
 * Implementations fill a `static const struct pgd_backend_ops` (see
 * backends/backend_impl.h); only core/backend.c calls through the table. */
#ifndef PAGODA_BACKEND_H
#define PAGODA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/clock.h"
#include "pagoda/dtype.h"
#include "pagoda/paged_attn.h"
#include "pagoda/backend_ops.h"
#include "pagoda/status.h"

typedef struct pgd_backend pgd_backend;

typedef struct pgd_backend_config {
    const char *name; /* "cpu" (default when NULL), "sim", or where built "cuda", "rocm",
                         "gpu-emu" (pgd_backend_list()) */
    int num_threads;  /* CPU: worker threads, <= 0 = all online CPUs */
    int device;       /* GPU ordinal */
    /* CPU: bind the backend's threads (the creating thread included) to
     * core range pin_rank (1-based) of pin_ranks equal ranges of this host's
     * cores (hwloc); pin_rank = 0: no binding. Used by parallel layouts to
     * give each rank its own cores. */
    int pin_rank, pin_ranks;
    /* KV cache element type: "f32", "f16", "bf16"; NULL or "" = the backend's
     * default (f32; the sim: its preset's). A backend that cannot store it
     * (CUDA, ROCm: f32 only) fails to create. */
    const char *kv_dtype;
    /* Options only the named backend understands: "key=value" strings, the
     * list ended by NULL (NULL = none). pgd_backend_option_keys() names the
     * keys a backend takes; create fails on any other. The sim's
     * (backends/sim/sim_cost.h):
     *   device=PRESET  a100-40gb (default), a100-80gb, h100, h200, cpu
     *   profile=CSV    calibration table (from `pagoda profile`); absent or
     *                  empty = roofline
     *   tp=N           tensor-parallel degree (GPUs), 1..64; 0 = 1 */
    const char *const *options;
} pgd_backend_config;


pgd_status pgd_backend_create(const pgd_backend_config *cfg, pgd_backend **out);
void pgd_backend_destroy(pgd_backend *b);
const char *pgd_backend_name(const pgd_backend *b);
/* A one-line description (e.g. "cpu: 2 threads, avx2"). */
const char *pgd_backend_describe(const pgd_backend *b);
/* The keys backend `name` takes in pgd_backend_config.options,
 * NULL-terminated (empty for a backend that takes none); NULL for a name
 * this build does not have. */
const char *const *pgd_backend_option_keys(const char *name);
/* The escape hatch: a request only some backends understand, by name (as
 * SQLite's xFileControl or ggml's get_proc_address), so that one backend's
 * particulars stay out of this interface. PGD_ERR_UNSUPPORTED (with a
 * message) when backend b does not know `what`. Requests:
 *   "clock"      arg pgd_clock **: the virtual clock a simulating backend
 *                advances (the sim)
 *   "set_clock"  arg pgd_clock *: advance this borrowed virtual clock from
 *                now on instead of the backend's own (the sim; a real clock
 *                is PGD_ERR_INVALID); the caller keeps it alive
 *   "device"     arg const char **: the name of the simulated device
 *                preset (the sim)
 *   "link_seconds" arg pgd_backend_link_cost *: what a collective or a
 *                transfer between the simulated devices costs on their
 *                links (the sim; PGD_ERR_UNSUPPORTED for a device without
 *                device-to-device links): the sim's communicator and
 *                pipeline stages are priced through it
 *   "prepare_weight" arg pgd_backend_weight *: the matrix at w (rows x in
 *                of dtype, written whole) is a weight that from now on only
 *                matmul and embedding read, with that dtype: the backend
 *                may rearrange it in place for its kernels, and says so in
 *                `arranged` (the cpu backend: q8_0 and q4_0 with in % 256
 *                == 0 on its AVX2 kernels, to the x8 layouts of
 *                kernels/cpu/kernels.h; uploads into it are refused after).
 *                The model offers every matmul weight and its embedding
 *                table after loading; a backend that does not know the
 *                request keeps them as they are. */
pgd_status pgd_backend_control(pgd_backend *b, const char *what, void *arg);
typedef struct pgd_backend_weight {
    void *w;
    pgd_dtype dtype;
    size_t rows;
    int in;
    int arranged; /* out: 1 when the backend rearranged it */
} pgd_backend_weight;
typedef struct pgd_backend_link_cost {
    const char *op; /* "all_reduce", "all_gather" (among `ranks` devices of one host), "send" */
    int ranks;
    double elems;   /* activations, in the device's activation dtype: all_reduce's buffer,
                       all_gather's share of each rank, send's message */
    double seconds; /* out */
} pgd_backend_link_cost;
/* The virtual clock a simulating backend advances by each op's predicted
 * time (its "clock" request), or NULL for a backend that computes in real
 * time. */
pgd_clock *pgd_backend_clock(const pgd_backend *b);
/* Capability: 1 when the backend computes values; 0 when large allocations
 * hold no data (the sim: never dereferenced, uploads to them are dropped,
 * downloads from them give zeros, ops only cost time). Loaders then skip
 * filling weights, and the engine samples stand-in tokens. */
int pgd_backend_computes(const pgd_backend *b);
/* Element type of the KV cache: what kv_write stores and paged_attention
 * reads (the k_cache/v_cache pointers point at storage of this type), and
 * what its memory budget counts. f32 unless pgd_backend_config.kv_dtype
 * asked for another; the sim's GPU presets default to f16 (accounting only:
 * the sim stores nothing). */
pgd_dtype pgd_backend_kv_dtype(const pgd_backend *b);
/* Capability: 1 when matmul and embedding take weights of dtype t (f32,
 * f16 and bf16 everywhere; q8_0 and q4_0 where the backend has kernels for
 * them, else loaders dequantize such weights). */
int pgd_backend_takes_weights(const pgd_backend *b, pgd_dtype t);
/* Capability: 1 when the backend's memory is the host's own (its
 * allocations are ordinary host memory, read and written at the host's
 * copy bandwidth: the cpu backend); 0 for a device with memory of its own
 * and for the sim (whose allocations hold no data). pagoda profile measures
 * the host's copy bandwidth for such a backend. */
int pgd_backend_host_memory(const pgd_backend *b);

pgd_status pgd_backend_alloc(pgd_backend *b, size_t bytes, void **dptr);
void pgd_backend_free(pgd_backend *b, void *dptr);

/* ---- ops ----
 * Every op below is declared from the one list in pagoda/backend_ops.h,
 * which also gives its id (PGD_OP_<NAME>) and name. Shapes as in
 * kernels/cpu/kernels.h.
 *
 * upload, download, memset, sync: transfers; download waits for the ops
 *   queued before it, sync for all of them.
 * embedding(out, table, tt, tokens, n, dim): out[i] = row tokens[i] of table
 *   (of dtype tt). matmul(y, x, w, wt, n, in, out): y(n, out) = x(n, in) @
 *   W^T, W (out, in) of dtype wt (pgd_backend_takes_weights). rmsnorm(y, x,
 *   w, n, dim, eps). add(y, x, n): y += x.
 * Row strides (rope, kv_write, pgd_paged_attn.q_stride) are floats between
 *   consecutive tokens' rows of the token-major inputs, so the ops can read
 *   q, k and v in place from the forward pass's fused QKV rows; 0 means
 *   dense rows, a nonzero stride must be at least the row's width (else
 *   PGD_ERR_INVALID).
 * rope(q, k, pos, n, n_heads, n_kv_heads, head_dim, theta, stride): in place
 *   on q (n, n_heads*head_dim) and k (n, n_kv_heads*head_dim) whose token
 *   rows are `stride` floats apart (both; 0 = dense, each its own width).
 * silu_mul(out, gate_up, n_rows, hidden): the FFN activation, out(n_rows,
 *   hidden) = silu(gate) * up, where gate_up is (n_rows, 2*hidden) with row
 *   r = [gate | up] (the forward pass's fused w1 | w3 GEMM output). out must
 *   not overlap gate_up. Priced and profiled by its n_rows*hidden outputs.
 * kv_write(k_cache, v_cache, k, v, slot_mapping, n, n_kv_heads, head_dim,
 *   block_size, stride): k and v (n, n_kv_heads*head_dim), token rows
 *   `stride` floats apart (0 = dense), into the caches (of the backend's KV
 *   dtype) at slots slot_mapping[i].
 * paged_attention(a): pagoda/paged_attn.h; a->kv_dtype must be the backend's.
 * gather_rows(out, x, rows, n, dim): out[i] = x[rows[i]] for rows of `dim`
 *   floats.
 * copy_blocks(cache, pairs, n_pairs, block_floats): copy-on-write support:
 *   pairs (n_pairs, 2) of {src, dst} block ids; a block is block_floats
 *   4-byte words (of f32, or twice as many f16/bf16).
 * argmax(out, logits, n, vocab), sample(out, logits, rows, n, vocab)
 *   (optional: GPU backends only): sampling on device logits, n rows of
 *   vocab floats; out is a device array of n token ids. argmax: pgd_argmax()
 *   per row (ties to the lowest id). sample: per row, temperature / top-k /
 *   top-p as in sampler.h, drawing with the row's `uniform` in [0, 1) (the
 *   kept tokens are walked in id order). */
typedef struct pgd_sample_row {
    float temperature; /* 0 = greedy */
    int32_t top_k;     /* <= 0 or >= vocab: off */
    float top_p;       /* <= 0 or >= 1: off */
    float uniform;     /* the row's draw in [0, 1) */
} pgd_sample_row;

#define PGD_BACKEND_DECLARE_OP_(op, ID, req, params, args) pgd_status pgd_backend_##op params;
PGD_BACKEND_OPS(PGD_BACKEND_DECLARE_OP_)
#undef PGD_BACKEND_DECLARE_OP_

/* Op ids, in the list's order. */
#define PGD_BACKEND_OP_ID_(op, ID, req, params, args) PGD_OP_##ID,
typedef enum pgd_backend_op { PGD_BACKEND_OPS(PGD_BACKEND_OP_ID_) PGD_OP_COUNT } pgd_backend_op;
#undef PGD_BACKEND_OP_ID_
/* "matmul", ...; NULL for an id out of range. */
const char *pgd_backend_op_name(pgd_backend_op op);
/* 1 when backend b implements op (every required op; the optional ones
 * where it has them). A call of an op it lacks fails with
 * PGD_ERR_UNSUPPORTED naming the op and the backend. */
int pgd_backend_supports_op(const pgd_backend *b, pgd_backend_op op);

/* Host memory for transfers with the device (the KV cache's swap space):
 * page-locked on GPU backends, so copies run by DMA at full link speed;
 * plain 64-byte-aligned host memory on backends without pinned memory.
 * An upload from it may still be in flight when upload returns (it is
 * ordered before the backend's later ops): write it on the host only after
 * a later download or sync. Free with pgd_backend_host_free(). */
pgd_status pgd_backend_host_alloc(pgd_backend *b, size_t bytes, void **hptr);
void pgd_backend_host_free(pgd_backend *b, void *hptr);

/* Op accounting: every op wrapper that reaches the backend's op (not a call
 * that fails validation or returns early with nothing to do, e.g. n = 0;
 * not alloc/free/host_alloc/host_free, which are not ops) counts one call
 * and the seconds it took, in the backend object: between two reads of
 * pgd_clock_now(pgd_backend_clock(b)), i.e. the predicted seconds on the
 * sim's virtual clock, CLOCK_MONOTONIC wall time on a real backend. No
 * allocation, no locks: like the backend itself, one thread at a time.
 *
 * What wall time measures: the CPU backend computes each op before
 * returning (its sync is a no-op), so an op's seconds are its compute time.
 * GPU backends queue ops on a stream and return at once: an op's seconds
 * are then its launch time only, and the queued work is charged to the
 * next op that waits for it (a download, or a sync where the caller syncs);
 * the accounting adds no syncs of its own (but see pgd_backend_observe).
 *
 * pgd_backend_op_times writes up to cap rows, one per op with calls > 0, in
 * the list's op order, and returns how many it wrote (out == NULL: how many
 * there are). Names are static strings. Counts run from the backend's
 * creation or the last pgd_backend_op_times_reset. */
#define PGD_BACKEND_NUM_OPS ((int)PGD_OP_COUNT) /* rows pgd_backend_op_times can return at most */
typedef struct pgd_op_time {
    const char *op; /* "matmul", ... */
    int64_t calls;
    double seconds;
} pgd_op_time;
int pgd_backend_op_times(const pgd_backend *b, pgd_op_time *out, int cap);
void pgd_backend_op_times_reset(pgd_backend *b);

/* An op's shape as the sim's calibration table keys it (backends/sim/sim_cost.h):
 *   embedding (dim, tt; n)          matmul (in, out, wt; n)
 *   rmsnorm (dim; n)                rope (n_heads, n_kv_heads, head_dim; n)
 *   silu_mul (; n_rows*hidden)      add (; n)
 *   kv_write (n_kv_heads, head_dim; n)
 *   paged_attention (n_heads, n_kv_heads, head_dim; num_tokens, num_seqs)
 *   gather_rows (dim; n)            copy_blocks (block_floats; n_pairs)
 *   upload, download, memset (; bytes)   sync (; 0)
 *   argmax, sample (vocab; n) */
typedef struct pgd_op_shape {
    long k[3];
    double x, y;
} pgd_op_shape;
/* Called after every counted op with its id, shape and seconds (as the op
 * accounting measures them). */
typedef void (*pgd_backend_observer)(void *ctx, pgd_backend_op op, const pgd_op_shape *shape, double seconds);
/* Install (fn != NULL) or remove an observer. sync_each = 1 makes every op
 * but sync itself wait for its queued work inside the timed interval (a
 * sync through the table), so that an asynchronous backend's ops are timed
 * to completion: what `pagoda profile` needs; 0 leaves the stream alone. */
void pgd_backend_observe(pgd_backend *b, pgd_backend_observer fn, void *ctx, int sync_each);

/* Names of the backends compiled into this build, NULL-terminated. */
const char *const *pgd_backend_list(void);

#endif
