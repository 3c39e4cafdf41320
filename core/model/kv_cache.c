/* kv_cache.c - paged KV cache storage: one device allocation holding, per
 * layer, K then V, each (num_blocks, n_kv_heads, block_size, head_dim) f32.
 * Block 0 is an ordinary block here; reserving it as the null block is the
 * KV manager's convention. */
#include <stdlib.h>

#include "model_impl.h"

struct pgd_kv_cache {
    pgd_backend *backend; /* borrowed */
    float *data;
    size_t layer_floats;  /* floats in one layer's K (or V) */
    int n_layers, block_size, num_blocks;
};

size_t pgd_kv_cache_block_bytes(const pgd_model_config *c, int block_size) {
    return 2 * (size_t)c->n_layers * (size_t)c->n_kv_heads * (size_t)block_size *
           (size_t)c->head_dim * sizeof(float);
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
    kv->layer_floats = (size_t)num_blocks * c->n_kv_heads * block_size * c->head_dim;
    size_t bytes = 2 * (size_t)c->n_layers * kv->layer_floats * sizeof(float);
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
    free(kv);
}
int pgd_kv_cache_block_size(const pgd_kv_cache *kv) { return kv->block_size; }
int pgd_kv_cache_num_blocks(const pgd_kv_cache *kv) { return kv->num_blocks; }
float *pgd_kv_cache_k(pgd_kv_cache *kv, int layer) {
    return kv->data + (size_t)2 * layer * kv->layer_floats;
}
float *pgd_kv_cache_v(pgd_kv_cache *kv, int layer) {
    return kv->data + ((size_t)2 * layer + 1) * kv->layer_floats;
}
