/* random_weights.c - seeded random weights at a named or given shape, for
 * speed experiments without downloads (like vLLM's --load-format dummy).
 * Each tensor is filled from its own stream, seeded from (seed, tensor id),
 * uniform in +-sqrt(3/fan_in) (variance 1/fan_in) so activations stay
 * O(1) through the layers; norm weights are 1. Same seed, same weights.
 * On a virtual backend (sim) nothing is filled: loading is instant. */
#include <math.h>
#include <stdlib.h>

#include "model_impl.h"

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static pgd_status fill(pgd_model *m, void *dst, pgd_dtype dt, size_t count, float scale,
                       uint64_t seed, uint64_t id) {
    enum { CHUNK = 1 << 16 };
    float *buf = malloc(CHUNK * sizeof(float));
    if (!buf) return pgd_error(PGD_ERR_OOM, "random weights: out of memory");
    uint64_t st = seed * 0x100000001B3ull ^ (id + 1) * 0xD6E8FEB86659FD93ull;
    pgd_status s = PGD_OK;
    for (size_t i0 = 0; i0 < count && s == PGD_OK; i0 += CHUNK) {
        size_t n = count - i0 < CHUNK ? count - i0 : CHUNK;
        for (size_t i = 0; i + 1 < n; i += 2) {
            uint64_t r = splitmix64(&st);
            buf[i] = scale * ((float)(uint32_t)r * (2.0f / 4294967296.0f) - 1.0f);
            buf[i + 1] = scale * ((float)(uint32_t)(r >> 32) * (2.0f / 4294967296.0f) - 1.0f);
        }
        if (n & 1) buf[n - 1] = scale * ((float)(uint32_t)splitmix64(&st) * (2.0f / 4294967296.0f) - 1.0f);
        s = pgd_model_put(m, (char *)dst + i0 * pgd_dtype_size(dt), dt, buf, PGD_F32, n);
    }
    free(buf);
    return s;
}

static pgd_status ones(pgd_model *m, float *dst, size_t count) {
    float *buf = malloc(count * sizeof(float));
    if (!buf) return pgd_error(PGD_ERR_OOM, "random weights: out of memory");
    for (size_t i = 0; i < count; i++) buf[i] = 1.0f;
    pgd_status s = pgd_backend_upload(m->backend, dst, buf, count * sizeof(float));
    free(buf);
    return s;
}

pgd_status pgd_model_load_random(pgd_model *m, const char *shape, const pgd_model_load_opts *o) {
    PGD_TRY(pgd_model_shape(shape, &m->cfg));
    pgd_model_config *c = &m->cfg;
    c->weight_dtype = o->random_dtype;
    uint64_t seed = o->seed ? o->seed : 1234;
    if (c->arch == PGD_ARCH_OPT && !pgd_backend_is_virtual(m->backend))
        return pgd_error(PGD_ERR_UNSUPPORTED, "model shape '%s': the OPT architecture (LayerNorm, ReLU, learned "
                         "positions) runs on the sim backend only, not on '%s'", shape, pgd_backend_name(m->backend));
    PGD_TRY(pgd_model_layout(m, c->weight_dtype, c->weight_dtype));
    /* a virtual backend (sim) holds no data: the shapes are all it needs */
    if (pgd_backend_is_virtual(m->backend)) return PGD_OK;
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, h = (size_t)c->hidden_dim,
           V = (size_t)c->vocab_size;
    pgd_dtype wt = c->weight_dtype;
    float sd = sqrtf(3.0f / (float)d), sq = sqrtf(3.0f / (float)qd), sh = sqrtf(3.0f / (float)h);
    uint64_t id = 0;
    /* embedding rows of unit-ish scale */
    PGD_TRY(fill(m, m->tok_embd, m->embd_dtype, V * d, 1.0f, seed, id++));
    if (!c->tied_classifier) PGD_TRY(fill(m, m->wcls, m->cls_dtype, V * d, sd, seed, id++));
    PGD_TRY(ones(m, m->final_norm, d));
    for (int l = 0; l < c->n_layers; l++) {
        pgd_layer_weights *L = &m->layers[l];
        PGD_TRY(ones(m, L->attn_norm, d));
        PGD_TRY(ones(m, L->ffn_norm, d));
        PGD_TRY(fill(m, L->wq, wt, qd * d, sd, seed, id++));
        PGD_TRY(fill(m, L->wk, wt, kvd * d, sd, seed, id++));
        PGD_TRY(fill(m, L->wv, wt, kvd * d, sd, seed, id++));
        PGD_TRY(fill(m, L->wo, wt, d * qd, sq, seed, id++));
        PGD_TRY(fill(m, L->w1, wt, h * d, sd, seed, id++));
        PGD_TRY(fill(m, L->w2, wt, d * h, sh, seed, id++));
        PGD_TRY(fill(m, L->w3, wt, h * d, sd, seed, id++));
    }
    return PGD_OK;
}
