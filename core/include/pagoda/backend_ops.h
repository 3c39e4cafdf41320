/* backend_ops.h - the one list of backend ops.
 *
 * PGD_BACKEND_OPS(X) names every op a backend runs on its stream, in the
 * order pgd_backend_op_times lists them. From this list alone come:
 *   - the op ids (pgd_backend_op, PGD_OP_<ID>) and names (pgd_backend_op_name),
 *   - the public entry points pgd_backend_<op>() (backend.h),
 *   - the function pointers of struct pgd_backend_ops (backends/backend_impl.h),
 *   - the checked, timed and observed wrappers (core/backend.c), which call
 *     each op's hand-written check_<op>() for its validation and shape,
 *   - pgd_backend_supports_op(),
 *   - the conformance test's coverage check (tests/test_backend_ops.c fails
 *     when an op has no case there).
 * Adding an op: a line here, check_<op>() in core/backend.c, the op in every
 * backend (backends/cpu, backends/sim, kernels/gpu + backends/cuda), its CPU
 * reference kernel (kernels/cpu), and its case in tests/test_backend_ops.c.
 *
 * X(op, ID, required, params, args):
 *   op       - the name: pgd_backend_<op>(), ops-table field <op>, "<op>"
 *   ID       - the enum suffix: PGD_OP_<ID>
 *   required - 1: every backend implements it; 0: optional (NULL in the
 *              table; the wrapper then reports PGD_ERR_UNSUPPORTED)
 *   params   - the parenthesised parameter list, starting with pgd_backend *b
 *   args     - the same names as an argument list
 * Shapes and semantics of each op: backend.h. */
#ifndef PAGODA_BACKEND_OPS_H
#define PAGODA_BACKEND_OPS_H

#define PGD_BACKEND_OPS(X)                                                                          \
    X(upload, UPLOAD, 1, (pgd_backend * b, void *dst, const void *src, size_t bytes),                \
      (b, dst, src, bytes))                                                                          \
    X(download, DOWNLOAD, 1, (pgd_backend * b, void *dst, const void *src, size_t bytes),            \
      (b, dst, src, bytes))                                                                          \
    X(memset, MEMSET, 1, (pgd_backend * b, void *dst, int value, size_t bytes), (b, dst, value, bytes)) \
    X(sync, SYNC, 1, (pgd_backend * b), (b))                                                         \
    X(embedding, EMBEDDING, 1,                                                                       \
      (pgd_backend * b, float *out, const void *table, pgd_dtype tt, const int32_t *tokens, int n,   \
       int dim),                                                                                     \
      (b, out, table, tt, tokens, n, dim))                                                           \
    X(matmul, MATMUL, 1,                                                                             \
      (pgd_backend * b, float *y, const float *x, const void *w, pgd_dtype wt, int n, int in,        \
       int out),                                                                                     \
      (b, y, x, w, wt, n, in, out))                                                                  \
    X(rmsnorm, RMSNORM, 1,                                                                           \
      (pgd_backend * b, float *y, const float *x, const float *w, int n, int dim, float eps),        \
      (b, y, x, w, n, dim, eps))                                                                     \
    X(rope, ROPE, 1,                                                                                 \
      (pgd_backend * b, float *q, float *k, const int32_t *pos, int n, int n_heads, int n_kv_heads,  \
       int head_dim, float theta, int stride),                                                       \
      (b, q, k, pos, n, n_heads, n_kv_heads, head_dim, theta, stride))                               \
    X(silu_mul, SILU_MUL, 1, (pgd_backend * b, float *out, const float *gate_up, int n_rows, int hidden), \
      (b, out, gate_up, n_rows, hidden))                                                             \
    X(add, ADD, 1, (pgd_backend * b, float *y, const float *x, size_t n), (b, y, x, n))              \
    X(kv_write, KV_WRITE, 1,                                                                         \
      (pgd_backend * b, float *k_cache, float *v_cache, const float *k, const float *v,                \
       const int32_t *slot_mapping, int n, int n_kv_heads, int head_dim, int block_size, int stride), \
      (b, k_cache, v_cache, k, v, slot_mapping, n, n_kv_heads, head_dim, block_size, stride))        \
    X(paged_attention, PAGED_ATTENTION, 1, (pgd_backend * b, const pgd_paged_attn *a), (b, a))       \
    X(gather_rows, GATHER_ROWS, 1,                                                                   \
      (pgd_backend * b, float *out, const float *x, const int32_t *rows, int n, int dim),            \
      (b, out, x, rows, n, dim))                                                                     \
    X(copy_blocks, COPY_BLOCKS, 1,                                                                   \
      (pgd_backend * b, float *cache, const int32_t *pairs, int n_pairs, size_t block_floats),        \
      (b, cache, pairs, n_pairs, block_floats))                                                      \
    X(argmax, ARGMAX, 0, (pgd_backend * b, int32_t *out, const float *logits, int n, int vocab),     \
      (b, out, logits, n, vocab))                                                                    \
    X(sample, SAMPLE, 0,                                                                             \
      (pgd_backend * b, int32_t *out, const float *logits, const pgd_sample_row *rows, int n,        \
       int vocab),                                                                                   \
      (b, out, logits, rows, n, vocab))

/* Strips the parentheses of a params or args list. */
#define PGD_UNPAREN(...) __VA_ARGS__

#endif
