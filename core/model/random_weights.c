/* random_weights.c - seeded random weights at a named or given shape, for
 * speed experiments without downloads (like vLLM's --load-format dummy).
 * Each tensor is filled from its own stream, seeded from (seed, tensor id),
 * uniform in +-sqrt(3/fan_in) (variance 1/fan_in) so activations stay
 * O(1) through the layers; norm weights are 1. Same seed, same weights.
 * dtype=q4_k_m takes each tensor's dtype from llama.cpp's Q4_K_M recipe
 * (pgd_model_q4_k_m_dtype): q4_k and q6_k tensors side by side.
 * On a virtual backend (sim) nothing is filled: loading is instant. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/log.h"

#include "model_impl.h"

/* splitmix64 is counter-based: call k of a stream started at state s0
 * returns mix(s0 + (k + 1) * golden), so any element can be generated
 * without the ones before it (a tensor-parallel rank makes only its slice).
 * Element j of a tensor is half (j & 1) of call j / 2. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void pgd_random_stream(uint64_t seed, uint64_t id, float scale, size_t first, size_t n, float *out) {
    const uint64_t golden = 0x9E3779B97F4A7C15ull;
    uint64_t s0 = seed * 0x100000001B3ull ^ (id + 1) * 0xD6E8FEB86659FD93ull;
    for (size_t i = 0; i < n; i++) {
        size_t j = first + i;
        uint64_t r = mix64(s0 + (uint64_t)(j / 2 + 1) * golden);
        uint32_t half = (j & 1) ? (uint32_t)(r >> 32) : (uint32_t)r;
        out[i] = scale * ((float)half * (2.0f / 4294967296.0f) - 1.0f);
    }
}

float pgd_random_scale(const pgd_model_config *c, pgd_tensor_kind k) {
    float d = (float)c->dim, qd = (float)c->n_heads * c->head_dim, h = (float)c->hidden_dim;
    switch (k) {
    case PGD_T_EMBD: return 1.0f; /* embedding rows of unit-ish scale */
    case PGD_T_WO: return sqrtf(3.0f / qd);
    case PGD_T_W2: return sqrtf(3.0f / h);
    default: return sqrtf(3.0f / d);
    }
}

/* A named shape with a real tokenizer (smollm2-135m) gets it from the shared
 * data ($PAGODA_SHARED_DATA, else ../shared/data); when the file is not
 * there, or the shape's vocabulary was changed, the model has no tokenizer
 * (a warning says why). */
static pgd_status attach_tokenizer(pgd_model *m, const char *shape) {
    char base[64];
    size_t n = strcspn(shape, ",");
    if (n >= sizeof base) return PGD_OK;
    memcpy(base, shape, n);
    base[n] = '\0';
    const char *rel = NULL;
    int bos = -1, eos = -1;
    PGD_TRY(pgd_model_shape_tokenizer(base, &rel, &bos, &eos));
    if (!rel) return PGD_OK;
    const char *dir = getenv("PAGODA_SHARED_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "../shared/data", rel);
    if (access(path, R_OK) != 0) {
        PGD_LOG_W("model %s: its tokenizer %s is not readable; the model has no tokenizer (set PAGODA_SHARED_DATA "
                  "or pass --tokenizer)", shape, path);
        return PGD_OK;
    }
    pgd_tokenizer *t = NULL;
    PGD_TRY(pgd_tokenizer_load_hf(path, &t));
    if (pgd_tokenizer_vocab_size(t) > m->cfg.vocab_size) {
        PGD_LOG_W("model %s: vocabulary %d is smaller than its tokenizer's %d; the model has no tokenizer", shape,
                  m->cfg.vocab_size, pgd_tokenizer_vocab_size(t));
        pgd_tokenizer_destroy(t);
        return PGD_OK;
    }
    pgd_status s = pgd_tokenizer_set_special(t, bos, eos);
    if (s != PGD_OK) {
        pgd_tokenizer_destroy(t);
        return s;
    }
    m->tokenizer = t;
    return PGD_OK;
}

pgd_status pgd_model_load_random(pgd_model *m, const char *shape, const pgd_model_load_opts *o) {
    PGD_TRY(pgd_model_shape(shape, &m->cfg));
    pgd_model_config *c = &m->cfg;
    /* the dtype: the spec's dtype= key, else the caller's (config key model.dtype) */
    if (o->random_dtype != PGD_F32) {
        if (c->weight_dtype != PGD_F32 && c->weight_dtype != o->random_dtype)
            return pgd_error(PGD_ERR_INVALID, "model shape '%s' asks for %s weights but the dtype option says %s",
                             shape, pgd_dtype_name(c->weight_dtype), pgd_dtype_name(o->random_dtype));
        c->weight_dtype = o->random_dtype;
    }
    uint64_t seed = o->seed ? o->seed : 1234;
    if (c->arch == PGD_ARCH_OPT && pgd_backend_computes(m->backend))
        return pgd_error(PGD_ERR_UNSUPPORTED, "model shape '%s': the OPT architecture (LayerNorm, ReLU, learned "
                         "positions) runs on the sim backend only, not on '%s'", shape, pgd_backend_name(m->backend));
    if (c->qkv_bias && pgd_backend_computes(m->backend))
        return pgd_error(PGD_ERR_UNSUPPORTED, "model shape '%s' has q/k/v biases (Qwen2), which Pagoda's forward pass "
                         "does not implement; it runs on the sim backend only, not on '%s'", shape,
                         pgd_backend_name(m->backend));
    PGD_TRY(attach_tokenizer(m, shape));
    pgd_dtype edt = c->weight_dtype, cdt = c->weight_dtype;
    if (c->q4_k_m) { /* llama.cpp's Q4_K_M recipe, tensor by tensor (pgd_model_q4_k_m_dtype) */
        m->ldt = pgd_model_q4_k_m_layers(c, &edt, &cdt);
        if (!m->ldt) return pgd_error(PGD_ERR_OOM, "model: out of memory");
        pgd_model_note_dtypes(m, edt, cdt);
    }
    PGD_TRY(pgd_model_layout(m, edt, cdt));
    /* a virtual backend (sim) holds no data: the shapes are all it needs */
    if (!pgd_backend_computes(m->backend)) return PGD_OK;
    uint64_t id = 0;
    const pgd_tensor_src ones = {.ones = 1};
#define RND(kind, l, tid) \
    PGD_TRY(pgd_model_put_tensor(m, kind, l, &(pgd_tensor_src){.seed = seed, .id = (tid), \
                                 .scale = pgd_random_scale(c, kind)}))
    uint64_t embd_id = id++;
    RND(PGD_T_EMBD, 0, embd_id);
    if (!c->tied_classifier) RND(PGD_T_CLS, 0, id++);
    else PGD_TRY(pgd_model_put_tensor(m, PGD_T_CLS, 0, &(pgd_tensor_src){.seed = seed, .id = embd_id, .scale = 1.0f}));
    PGD_TRY(pgd_model_put_tensor(m, PGD_T_FINAL_NORM, 0, &ones));
    for (int l = 0; l < c->n_layers; l++) {
        PGD_TRY(pgd_model_put_tensor(m, PGD_T_ATTN_NORM, l, &ones));
        PGD_TRY(pgd_model_put_tensor(m, PGD_T_FFN_NORM, l, &ones));
        RND(PGD_T_WQ, l, id++);
        RND(PGD_T_WK, l, id++);
        RND(PGD_T_WV, l, id++);
        RND(PGD_T_WO, l, id++);
        RND(PGD_T_W1, l, id++);
        RND(PGD_T_W2, l, id++);
        RND(PGD_T_W3, l, id++);
    }
#undef RND
    return PGD_OK;
}
