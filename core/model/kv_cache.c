/* kv_cache.c - paged KV cache storage: one device allocation holding, per
 * layer, K then V, each (num_blocks, n_kv_heads, block_size, head_dim) f32.
 * Block 0 is an ordinary block here; reserving it as the null block is the
 * KV manager's convention. Swap space is a host buffer of whole blocks
 * (all layers' K and V of one block together) from pgd_backend_host_alloc:
 * page-locked on GPU backends, plain memory on the CPU.
 * On a computing backend the storage holds the backend's KV dtype (f32,
 * f16, bf16: elem bytes each; q8: rows of head_dim int8 after an f32 scale,
 * pgd_kv_row_bytes); on a virtual backend (sim) it is f32-shaped and holds
 * nothing, while swaps transfer block_bytes (what a GPU would move) and the
 * host swap space is a virtual range too. */
#include <stdlib.h>

#include "model_impl.h"

struct pgd_kv_cache {
    pgd_backend *backend; /* borrowed */
    char *data;
    size_t layer_floats;  /* elements in one layer's K (or V) */
    size_t block_floats;  /* elements of one block in one layer's K (or V) */
    size_t store_block;   /* bytes of one stored block in one layer's K (or V): block_bytes, or
                             block_floats * 4 on a virtual backend */
    int n_layers, block_size, num_blocks;
    char *host;           /* swap space: (num_host_blocks, 2 * n_layers, block_floats) elements */
    int num_host_blocks;
    int host_on_backend;  /* virtual backend: host allocated (as a virtual range) by the backend */
    size_t block_bytes;   /* bytes of one block in one layer's K (or V) in the KV dtype: what a
                             swap moves */
};

pgd_status pgd_model_kv_cache_create(pgd_model *m, int block_size, int num_blocks,
                                     pgd_kv_cache **out) {
    if (!m || !out) return pgd_error(PGD_ERR_INVALID, "kv cache: NULL argument");
    return pgd_kv_cache_create(m->backend, &m->cfg, block_size, num_blocks, out);
}

size_t pgd_kv_cache_block_bytes(const pgd_model_config *c, int block_size) {
    return 2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * (size_t)block_size *
           pgd_kv_row_bytes(c->kv_dtype, c->head_dim);
}

pgd_status pgd_kv_cache_create(pgd_backend *b, const pgd_model_config *c, int block_size,
                               int num_blocks, pgd_kv_cache **out) {
    if (!b || !c || !out) return pgd_error(PGD_ERR_INVALID, "kv cache: NULL argument");
    *out = NULL;
    if (block_size <= 0 || block_size > 4096)
        return pgd_error(PGD_ERR_INVALID, "kv cache: block size must be in 1..4096 (got %d)", block_size);
    if (num_blocks <= 0)
        return pgd_error(PGD_ERR_INVALID, "kv cache: number of blocks must be positive (got %d)", num_blocks);
    pgd_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return pgd_error(PGD_ERR_OOM, "kv cache: out of memory");
    kv->backend = b;
    kv->n_layers = c->n_layers;
    kv->block_size = block_size;
    kv->num_blocks = num_blocks;
    kv->block_floats = (size_t)c->n_kv_heads * block_size * c->head_dim;
    kv->block_bytes = (size_t)c->n_kv_heads * block_size * pgd_kv_row_bytes(c->kv_dtype, c->head_dim);
    kv->host_on_backend = !pgd_backend_computes(b);
    kv->store_block = kv->host_on_backend ? kv->block_floats * sizeof(float) : kv->block_bytes;
    if (kv->store_block % sizeof(float)) { /* copy_blocks moves whole floats */
        size_t bb = kv->block_bytes;
        free(kv);
        return pgd_error(PGD_ERR_INVALID,
                         "kv cache: a %s block of %d tokens x %d kv heads takes %zu bytes, "
                         "not a multiple of 4: use a block size that is a multiple of 4",
                         pgd_dtype_name(c->kv_dtype), block_size, c->n_kv_heads, bb);
    }
    kv->layer_floats = (size_t)num_blocks * kv->block_floats;
    size_t bytes = 2 * (size_t)c->n_layers * (size_t)num_blocks * kv->store_block;
    pgd_status s = pgd_backend_alloc(b, bytes, (void **)&kv->data);
    if (s != PGD_OK) {
        free(kv);
        return pgd_error(s, "kv cache: cannot allocate %d blocks (%.2f GiB): %s", num_blocks,
                         bytes / 1073741824.0, pgd_last_error());
    }
    s = pgd_backend_memset(b, kv->data, 0, bytes);
    if (s != PGD_OK) {
        pgd_kv_cache_destroy(kv);
        return s;
    }
    *out = kv;
    return PGD_OK;
}

void pgd_kv_cache_destroy(pgd_kv_cache *kv) {
    if (!kv) return;
    pgd_backend_free(kv->backend, kv->data);
    if (kv->host_on_backend) pgd_backend_free(kv->backend, kv->host);
    else pgd_backend_host_free(kv->backend, kv->host);
    free(kv);
}

pgd_status pgd_kv_cache_copy_blocks(pgd_kv_cache *kv, const int32_t *pairs, int n) {
    for (int i = 0; i < n; i++)
        if (pairs[2 * i] < 0 || pairs[2 * i] >= kv->num_blocks || pairs[2 * i + 1] < 0 ||
            pairs[2 * i + 1] >= kv->num_blocks)
            return pgd_error(PGD_ERR_INVALID, "kv cache: copy %d -> %d outside 0..%d", pairs[2 * i],
                             pairs[2 * i + 1], kv->num_blocks - 1);
    if (n <= 0) return PGD_OK;
    int32_t *dev = NULL;
    PGD_TRY(pgd_backend_alloc(kv->backend, sizeof(int32_t) * 2 * (size_t)n, (void **)&dev));
    pgd_status s = pgd_backend_upload(kv->backend, dev, pairs, sizeof(int32_t) * 2 * (size_t)n);
    for (int l = 0; l < 2 * kv->n_layers && s == PGD_OK; l++)
        s = pgd_backend_copy_blocks(kv->backend, (float *)(kv->data + (size_t)l * kv->num_blocks * kv->store_block),
                                    dev, n, kv->store_block / sizeof(float));
    pgd_backend_free(kv->backend, dev);
    return s;
}

pgd_status pgd_kv_cache_set_host_blocks(pgd_kv_cache *kv, int num_host_blocks) {
    if (num_host_blocks < 0) return pgd_error(PGD_ERR_INVALID, "kv cache: negative swap space");
    if (kv->host_on_backend) pgd_backend_free(kv->backend, kv->host);
    else pgd_backend_host_free(kv->backend, kv->host);
    kv->host = NULL;
    kv->num_host_blocks = 0;
    if (!num_host_blocks) return PGD_OK;
    size_t bytes = (size_t)num_host_blocks * 2 * kv->n_layers * kv->store_block;
    if (kv->host_on_backend) {
        if (pgd_backend_alloc(kv->backend, bytes, (void **)&kv->host) != PGD_OK) kv->host = NULL;
    } else { /* pinned on GPU backends: swaps run by DMA */
        if (pgd_backend_host_alloc(kv->backend, bytes, (void **)&kv->host) != PGD_OK) kv->host = NULL;
    }
    if (!kv->host)
        return pgd_error(PGD_ERR_OOM, "kv cache: cannot allocate %d host blocks (%.2f GiB) of swap space",
                         num_host_blocks, bytes / 1073741824.0);
    kv->num_host_blocks = num_host_blocks;
    return PGD_OK;
}

static pgd_status swap(pgd_kv_cache *kv, const int32_t *pairs, int n, int out) {
    for (int i = 0; i < n; i++) {
        int dev = pairs[2 * i + (out ? 0 : 1)], host = pairs[2 * i + (out ? 1 : 0)];
        if (dev < 0 || dev >= kv->num_blocks || host < 0 || host >= kv->num_host_blocks)
            return pgd_error(PGD_ERR_INVALID, "kv cache: swap of device block %d / host block %d out of "
                             "range (%d device, %d host blocks)", dev, host, kv->num_blocks, kv->num_host_blocks);
        for (int l = 0; l < 2 * kv->n_layers; l++) {
            char *d = kv->data + ((size_t)l * kv->num_blocks + (size_t)dev) * kv->store_block;
            char *h = kv->host + ((size_t)host * 2 * kv->n_layers + l) * kv->store_block;
            size_t bytes = kv->block_bytes;
            PGD_TRY(out ? pgd_backend_download(kv->backend, h, d, bytes)
                        : pgd_backend_upload(kv->backend, d, h, bytes));
        }
    }
    return PGD_OK;
}

pgd_status pgd_kv_cache_swap_out(pgd_kv_cache *kv, const int32_t *pairs, int n) { return swap(kv, pairs, n, 1); }
pgd_status pgd_kv_cache_swap_in(pgd_kv_cache *kv, const int32_t *pairs, int n) { return swap(kv, pairs, n, 0); }
int pgd_kv_cache_block_size(const pgd_kv_cache *kv) { return kv->block_size; }
int pgd_kv_cache_num_blocks(const pgd_kv_cache *kv) { return kv->num_blocks; }
float *pgd_kv_cache_k(pgd_kv_cache *kv, int layer) {
    return (float *)(kv->data + (size_t)2 * layer * kv->num_blocks * kv->store_block);
}
float *pgd_kv_cache_v(pgd_kv_cache *kv, int layer) {
    return (float *)(kv->data + ((size_t)2 * layer + 1) * kv->num_blocks * kv->store_block);
}

size_t pgd_kv_cache_io_block_bytes(const pgd_kv_cache *kv) { return 2 * (size_t)kv->n_layers * kv->block_bytes; }

/* Blocks to or from a host buffer laid out like the swap space: per listed
 * block, every layer's K then V, block_bytes of the cache dtype each
 * (disaggregation's KV hand-off). */
static pgd_status io_blocks(pgd_kv_cache *kv, const int32_t *blocks, int n, void *host, int read) {
    for (int i = 0; i < n; i++)
        if (blocks[i] < 0 || blocks[i] >= kv->num_blocks)
            return pgd_error(PGD_ERR_INVALID, "kv cache: block %d outside 0..%d", blocks[i], kv->num_blocks - 1);
    size_t bytes = kv->block_bytes;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < 2 * kv->n_layers; l++) {
            char *d = kv->data + ((size_t)l * kv->num_blocks + (size_t)blocks[i]) * kv->store_block;
            char *h = (char *)host + ((size_t)i * 2 * kv->n_layers + l) * bytes;
            PGD_TRY(read ? pgd_backend_download(kv->backend, h, d, bytes)
                         : pgd_backend_upload(kv->backend, d, h, bytes));
        }
    return PGD_OK;
}

pgd_status pgd_kv_cache_read_blocks(pgd_kv_cache *kv, const int32_t *blocks, int n, void *host) {
    return io_blocks(kv, blocks, n, host, 1);
}
pgd_status pgd_kv_cache_write_blocks(pgd_kv_cache *kv, const int32_t *blocks, int n, const void *host) {
    return io_blocks(kv, blocks, n, (void *)host, 0);
}
