/* shapes.c - named model shapes and "key=value" shape specs, plus config
 * validation and size accounting. Named shapes are the published
 * architectures (weights are random; see random_weights.c). OPT shapes
 * (arch = opt: LayerNorm with bias, ReLU FFN of two matrices of width
 * 4*dim, learned positions, biases, vocabulary 50272, context 2048, tied
 * classifier) count their parameters as OPT does: OPT-13B has 12.85B, so
 * 25.7 GB in f16 (the paper's 26 GB), and 800 KB of f16 KV per token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

#define PGD_SHAPE_MAX_DIM (1 << 16) /* the largest dim pgd_model_config_validate accepts */

typedef struct {
    const char *name;
    int dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab_size, max_seq_len;
    float rope_theta;
    int tied;
    pgd_model_arch arch;
    float eps;             /* RMSNorm epsilon; 0 = 1e-5 */
    int qkv_bias;          /* q/k/v projections have biases (Qwen2) */
    const char *tokenizer; /* its real tokenizer under the shared data, or NULL */
    int bos, eos;          /* token ids from the model's config.json (with tokenizer) */
    const char *chat;      /* its instruct variant's chat template (pagoda/chat.h), or NULL */
} shape_entry;

static const shape_entry shapes[] = {
    /* llama2.c TinyStories models */
    {"stories260K", 64, 5, 8, 4, 172, 512, 512, 10000.f, 1, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"stories15M", 288, 6, 6, 6, 768, 32000, 256, 10000.f, 1, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"stories42M", 512, 8, 8, 8, 1376, 32000, 1024, 10000.f, 1, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"stories110M", 768, 12, 12, 12, 2048, 32000, 1024, 10000.f, 1, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    /* published Llama-family shapes */
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"llama-7b", 4096, 32, 32, 32, 11008, 32000, 2048, 10000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"llama-13b", 5120, 40, 40, 40, 13824, 32000, 2048, 10000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    {"llama2-13b", 5120, 40, 40, 40, 13824, 32000, 4096, 10000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, NULL},
    /* meta-llama/Meta-Llama-3-8B config.json: hidden_size 4096, num_hidden_layers 32,
     * num_attention_heads 32, num_key_value_heads 8, intermediate_size 14336,
     * vocab_size 128256, max_position_embeddings 8192, rope_theta 500000, rms_norm_eps 1e-5 */
    {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.f, 0, PGD_ARCH_LLAMA, 0.f, 0, NULL, 0, 0, "llama-3"},
    /* OPT (Zhang et al. 2022): the PagedAttention paper's models; sim backend only */
    {"opt-125m", 768, 12, 12, 12, 3072, 50272, 2048, 10000.f, 1, PGD_ARCH_OPT, 0.f, 0, NULL, 0, 0, NULL},
    {"opt-13b", 5120, 40, 40, 40, 20480, 50272, 2048, 10000.f, 1, PGD_ARCH_OPT, 0.f, 0, NULL, 0, 0, NULL},
    {"opt-66b", 9216, 64, 72, 72, 36864, 50272, 2048, 10000.f, 1, PGD_ARCH_OPT, 0.f, 0, NULL, 0, 0, NULL},
    {"opt-175b", 12288, 96, 96, 96, 49152, 50272, 2048, 10000.f, 1, PGD_ARCH_OPT, 0.f, 0, NULL, 0, 0, NULL},
    /* current models (after the older shapes: a lookup of those is unchanged) */
    /* HuggingFaceTB/SmolLM2-135M(-Instruct) config.json (../shared/data/tokenizers/
     * smollm2_config.json): hidden_size 576, 30 layers, 9 heads, 3 KV heads,
     * intermediate_size 1536, vocab 49152, 8192 positions, rope_theta 100000,
     * tied embeddings, bos_token_id 1, eos_token_id 2; with its tokenizer.json */
    {"smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000.f, 1, PGD_ARCH_LLAMA, 1e-5f, 0,
     "tokenizers/smollm2_tokenizer.json", 1, 2, "chatml"},
    /* Qwen/Qwen2.5-7B config.json: hidden_size 3584, 28 layers, 28 heads, 4 KV heads,
     * intermediate_size 18944, vocab 152064, max_position_embeddings 131072,
     * rope_theta 1e6, rms_norm_eps 1e-6, untied; q/k/v projections with biases
     * (the forward pass has none: compute backends refuse it, the sim accounts them) */
    {"qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, 131072, 1000000.f, 0, PGD_ARCH_LLAMA, 1e-6f, 1, NULL, 0, 0,
     "chatml"},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

pgd_status pgd_model_shape_tokenizer(const char *name, const char **rel_path, int *bos, int *eos) {
    *rel_path = NULL;
    for (size_t i = 0; i < N_SHAPES; i++)
        if (!strcasecmp(name, shapes[i].name)) {
            *rel_path = shapes[i].tokenizer;
            *bos = shapes[i].bos;
            *eos = shapes[i].eos;
            return PGD_OK;
        }
    return PGD_OK;
}

const char *pgd_model_shape_chat_template(const char *name) {
    size_t n = strcspn(name, ",");
    for (size_t i = 0; i < N_SHAPES; i++)
        if (strlen(shapes[i].name) == n && !strncasecmp(name, shapes[i].name, n)) return shapes[i].chat;
    return NULL;
}

const char *const *pgd_model_shape_names(void) {
    static const char *names[N_SHAPES + 1];
    for (size_t i = 0; i < N_SHAPES; i++) names[i] = shapes[i].name;
    names[N_SHAPES] = NULL;
    return names;
}

static void from_entry(const shape_entry *e, pgd_model_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", e->name);
    c->dim = e->dim;
    c->n_layers = e->n_layers;
    c->n_heads = e->n_heads;
    c->n_kv_heads = e->n_kv_heads;
    c->hidden_dim = e->hidden_dim;
    c->vocab_size = e->vocab_size;
    c->max_seq_len = e->max_seq_len;
    c->rope_theta = e->rope_theta;
    c->norm_eps = e->eps > 0 ? e->eps : 1e-5f;
    c->qkv_bias = e->qkv_bias;
    c->tied_classifier = e->tied;
    c->arch = e->arch;
    c->head_dim = e->dim / e->n_heads;
}

static int parse_int(const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x <= 0 || x > (1L << 30)) return 0;
    *out = (int)x;
    return 1;
}

pgd_status pgd_model_shape(const char *spec, pgd_model_config *out) {
    if (!spec || !*spec)
        return pgd_error(PGD_ERR_INVALID, "empty model shape; named shapes: stories15M, stories42M, "
                                          "stories110M, llama2-7b, llama3-8b, ... or dim=..,layers=..");
    char buf[512];
    if (strlen(spec) >= sizeof buf) return pgd_error(PGD_ERR_INVALID, "model shape spec too long");
    snprintf(buf, sizeof buf, "%s", spec);
    pgd_model_config c;
    memset(&c, 0, sizeof c);
    int have_base = 0, hidden_set = 0, kv_set = 0, dtype_set = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            if (have_base)
                return pgd_error(PGD_ERR_INVALID, "model shape '%s': two base shapes", spec);
            size_t i;
            for (i = 0; i < N_SHAPES; i++)
                if (!strcasecmp(tok, shapes[i].name)) break;
            if (i == N_SHAPES) {
                char names[512] = "";
                for (size_t j = 0; j < N_SHAPES; j++) {
                    strncat(names, shapes[j].name, sizeof names - strlen(names) - 3);
                    if (j + 1 < N_SHAPES) strcat(names, ", ");
                }
                return pgd_error(PGD_ERR_INVALID, "unknown model shape '%s' (known: %s)", tok, names);
            }
            from_entry(&shapes[i], &c);
            have_base = hidden_set = kv_set = 1;
            continue;
        }
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        int iv = 0;
        int *target = NULL;
        if (!strcmp(k, "dim")) target = &c.dim;
        else if (!strcmp(k, "layers")) target = &c.n_layers;
        else if (!strcmp(k, "heads")) target = &c.n_heads;
        else if (!strcmp(k, "kv_heads")) { target = &c.n_kv_heads; kv_set = 1; }
        else if (!strcmp(k, "hidden")) { target = &c.hidden_dim; hidden_set = 1; }
        else if (!strcmp(k, "vocab")) target = &c.vocab_size;
        else if (!strcmp(k, "seq")) target = &c.max_seq_len;
        else if (!strcmp(k, "arch")) {
            if (strcmp(v, "llama") && strcmp(v, "opt"))
                return pgd_error(PGD_ERR_INVALID, "model shape: arch must be llama or opt (got '%s')", v);
            c.arch = v[0] == 'o' ? PGD_ARCH_OPT : PGD_ARCH_LLAMA;
            continue;
        } else if (!strcmp(k, "tied")) {
            if (strcmp(v, "0") && strcmp(v, "1"))
                return pgd_error(PGD_ERR_INVALID, "model shape: tied must be 0 or 1 (got '%s')", v);
            c.tied_classifier = v[0] == '1';
            continue;
        } else if (!strcmp(k, "dtype")) {
            c.q4_k_m = !strcmp(v, "q4_k_m"); /* llama.cpp's recipe: q4_k and q6_k per tensor */
            if (c.q4_k_m) c.weight_dtype = PGD_Q4_K;
            else if (!pgd_dtype_from_name(v, &c.weight_dtype) || !pgd_dtype_is_weight(c.weight_dtype))
                return pgd_error(PGD_ERR_INVALID,
                                 "model shape: dtype must be f32, f16, bf16, q8_0, q4_0, "
                                 "q4_k, q6_k or q4_k_m (got '%s')",
                                 v);
            dtype_set = 1;
            continue;
        } else if (!strcmp(k, "theta") || !strcmp(k, "eps")) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || !(d > 0) || !isfinite(d))
                return pgd_error(PGD_ERR_INVALID, "model shape: %s must be a positive number (got '%s')", k, v);
            if (k[0] == 't') c.rope_theta = (float)d;
            else c.norm_eps = (float)d;
            continue;
        } else {
            return pgd_error(PGD_ERR_INVALID,
                             "model shape: unknown key '%s' (keys: dim, layers, heads, kv_heads, "
                             "hidden, vocab, seq, theta, eps, tied, arch, dtype)", k);
        }
        if (!parse_int(v, &iv))
            return pgd_error(PGD_ERR_INVALID, "model shape: %s must be a positive integer (got '%s')", k, v);
        *target = iv;
    }
    if (!have_base) {
        snprintf(c.name, sizeof c.name, "custom");
        if (!c.dim) c.dim = 288;
        if (!c.n_layers) c.n_layers = 6;
        if (!c.n_heads) c.n_heads = 6;
        if (!c.vocab_size) c.vocab_size = 32000;
        if (!c.max_seq_len) c.max_seq_len = 2048;
        if (c.rope_theta == 0) c.rope_theta = 10000.f;
        if (c.norm_eps == 0) c.norm_eps = 1e-5f;
    } else {
        snprintf(c.name + strlen(c.name), sizeof c.name - strlen(c.name), "%s",
                 strchr(spec, ',') ? "+custom" : "");
    }
    if (!kv_set) c.n_kv_heads = c.n_heads;
    /* the derived hidden width is computed only for a plausible dim: 8 * dim
     * overflows an int long before parse_int's bound (dim=622222222) */
    if (c.dim > PGD_SHAPE_MAX_DIM)
        return pgd_error(PGD_ERR_INVALID, "model shape '%s': dim %d is larger than %d", spec, c.dim,
                         PGD_SHAPE_MAX_DIM);
    if (!hidden_set) c.hidden_dim = (int)(((8 * (int64_t)c.dim / 3) + 31) / 32 * 32);
    if (c.n_heads > 0) c.head_dim = c.dim / c.n_heads;
    if (!dtype_set) c.weight_dtype = PGD_F32;
    PGD_TRY(pgd_model_config_validate(&c, spec));
    if (c.q4_k_m) { /* the recipe's dtypes and bytes, as the loader will lay them out */
        pgd_dtype et, ct;
        pgd_layer_dtypes *t = pgd_model_q4_k_m_layers(&c, &et, &ct);
        if (!t) return pgd_error(PGD_ERR_OOM, "model shape '%s': out of memory", spec);
        pgd_model_config_note_dtypes(&c, t, et, ct);
        free(t);
    }
    *out = c;
    return PGD_OK;
}

pgd_status pgd_model_config_validate(const pgd_model_config *c, const char *what) {
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->hidden_dim <= 0 || c->vocab_size <= 0 || c->max_seq_len <= 0)
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: model dimensions must be positive (dim=%d layers=%d heads=%d "
                         "kv_heads=%d hidden=%d vocab=%d seq=%d)",
                         what, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim,
                         c->vocab_size, c->max_seq_len);
    if (c->dim % c->n_heads)
        return pgd_error(PGD_ERR_FORMAT, "%s: heads (%d) must divide dim (%d)", what, c->n_heads, c->dim);
    if (c->n_heads % c->n_kv_heads)
        return pgd_error(PGD_ERR_FORMAT, "%s: kv_heads (%d) must divide heads (%d)", what,
                         c->n_kv_heads, c->n_heads);
    if ((c->dim / c->n_heads) % 2)
        return pgd_error(PGD_ERR_FORMAT, "%s: head dim %d must be even for rotary embeddings", what,
                         c->dim / c->n_heads);
    if (c->dim > PGD_SHAPE_MAX_DIM || c->hidden_dim > (1 << 18) || c->n_layers > 1024 ||
        c->vocab_size > (1 << 22) || c->max_seq_len > PGD_MAX_CONTEXT)
        return pgd_error(PGD_ERR_FORMAT, "%s: implausible model dimensions (dim=%d hidden=%d layers=%d "
                         "vocab=%d seq=%d)", what, c->dim, c->hidden_dim, c->n_layers,
                         c->vocab_size, c->max_seq_len);
    if (c->dim / c->n_heads > 512)
        return pgd_error(PGD_ERR_FORMAT, "%s: head dim %d exceeds 512 (the kernels' limit)", what,
                         c->dim / c->n_heads);
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0))
        return pgd_error(PGD_ERR_FORMAT, "%s: rope theta and norm eps must be positive", what);
    return PGD_OK;
}

/* Small f32 parameters: norm weights (OPT: LayerNorm weights and biases,
 * and every matmul bias). */
static size_t small_params(const pgd_model_config *c) {
    size_t d = (size_t)c->dim, L = (size_t)c->n_layers;
    if (c->arch != PGD_ARCH_OPT)
        return d * (2 * L + 1) +
               (c->qkv_bias ? L * (size_t)(c->n_heads + 2 * c->n_kv_heads) * (size_t)c->head_dim : 0);
    size_t kv = (size_t)c->n_kv_heads * (size_t)c->head_dim, qd = (size_t)c->n_heads * (size_t)c->head_dim;
    return L * (4 * d + qd + 2 * kv + d + (size_t)c->hidden_dim + d) + 2 * d;
}

size_t pgd_model_config_params(const pgd_model_config *c) {
    size_t d = (size_t)c->dim, kv = (size_t)c->n_kv_heads * (size_t)c->head_dim,
           qd = (size_t)c->n_heads * (size_t)c->head_dim, h = (size_t)c->hidden_dim;
    int ffn_mats = c->arch == PGD_ARCH_OPT ? 2 : 3;
    size_t layer = qd * d + 2 * kv * d + d * qd + (size_t)ffn_mats * h * d;
    size_t p = (size_t)c->vocab_size * d + (size_t)c->n_layers * layer + small_params(c);
    if (c->arch == PGD_ARCH_OPT) p += ((size_t)c->max_seq_len + 2) * d; /* learned positions (offset 2) */
    if (!c->tied_classifier) p += (size_t)c->vocab_size * d;
    return p;
}

size_t pgd_model_config_weight_bytes(const pgd_model_config *c) {
    if (c->stored_weight_bytes) return c->stored_weight_bytes; /* as loaded, per tensor */
    /* norms (and OPT's biases) are f32; everything else in weight_dtype */
    size_t norms = small_params(c);
    size_t big = pgd_model_config_params(c) - norms;
    if (pgd_dtype_is_blocked(c->weight_dtype)) { /* every quantized row is whole blocks */
        size_t blk = (size_t)pgd_dtype_block(c->weight_dtype);
        return norms * 4 + pgd_dtype_bytes(c->weight_dtype, big / blk * blk);
    }
    return norms * 4 + big * pgd_dtype_size(c->weight_dtype);
}

void pgd_model_config_note_dtypes(pgd_model_config *c, const pgd_layer_dtypes *ldt, pgd_dtype embd_dtype,
                                  pgd_dtype cls_dtype) {
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim,
           h = (size_t)c->hidden_dim, v = (size_t)c->vocab_size;
    size_t params[PGD_DTYPE_COUNT] = {0}, bytes = 0, layer_params = 0;
    uint32_t mask = 0;
    for (int l = 0; l < c->n_layers; l++) {
        pgd_dtype w = c->weight_dtype;
        pgd_layer_dtypes t = ldt ? ldt[l] : (pgd_layer_dtypes){w, w, w, w, w, w, w};
        const struct {
            pgd_dtype dt;
            size_t n;
        } mats[] = {
            {t.q, qd * d},   {t.k, kvd * d},  {t.v, kvd * d},
            {t.o, d * qd},   {t.gate, h * d}, {t.up, c->arch == PGD_ARCH_OPT ? 0 : h * d},
            {t.down, h * d},
        };
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            if (!mats[i].n) continue;
            params[mats[i].dt] += mats[i].n;
            layer_params += mats[i].n;
            bytes += pgd_dtype_bytes(mats[i].dt, mats[i].n);
            mask |= 1u << mats[i].dt;
        }
    }
    pgd_dtype most = c->weight_dtype;
    for (int i = 0; i < PGD_DTYPE_COUNT; i++)
        if (params[i] > params[most]) most = (pgd_dtype)i;
    c->weight_dtype = most;
    c->weight_dtypes = mask;
    /* the embedding (OPT: and its learned positions), the classifier unless tied, and the
     * small f32 parameters (norms; OPT's biases): the rest of pgd_model_config_params */
    size_t pos = c->arch == PGD_ARCH_OPT ? ((size_t)c->max_seq_len + 2) * d : 0;
    size_t small = pgd_model_config_params(c) - layer_params - v * d * (c->tied_classifier ? 1 : 2) - pos;
    c->stored_embd_bytes = pgd_dtype_bytes(embd_dtype, v * d);
    c->stored_weight_bytes = small * 4 + c->stored_embd_bytes + pgd_dtype_bytes(embd_dtype, pos) + bytes +
                             (c->tied_classifier ? 0 : pgd_dtype_bytes(cls_dtype, v * d));
}

size_t pgd_model_config_embd_bytes(const pgd_model_config *c) {
    if (c->stored_embd_bytes) return c->stored_embd_bytes;
    return pgd_dtype_bytes(c->weight_dtype, (size_t)c->vocab_size * c->dim);
}

const char *pgd_model_config_dtype_str(const pgd_model_config *c, char *buf, size_t n) {
    uint32_t mask = c->weight_dtypes;
    if (!mask || !(mask & (mask - 1))) { /* none noted, or one dtype */
        snprintf(buf, n, "%s", pgd_dtype_name(c->weight_dtype));
        return buf;
    }
    size_t used = (size_t)snprintf(buf, n, "mixed (");
    const char *sep = "";
    for (int i = 0; i < PGD_DTYPE_COUNT && used < n; i++)
        if (mask & (1u << i)) {
            used += (size_t)snprintf(buf + used, n - used, "%s%s", sep, pgd_dtype_name((pgd_dtype)i));
            sep = ", ";
        }
    if (used < n) snprintf(buf + used, n - used, ")");
    return buf;
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers, and
 * every third layer between them. */
static int use_more_bits(int layer, int n_layers) {
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

pgd_dtype pgd_model_q4_k_m_dtype(const char *name, int layer, int n_layers, int tied) {
    if (!strcmp(name, "output") || (tied && !strcmp(name, "token_embd"))) return PGD_Q6_K;
    if ((!strcmp(name, "attn_v") || !strcmp(name, "ffn_down")) && layer >= 0 && use_more_bits(layer, n_layers))
        return PGD_Q6_K;
    return PGD_Q4_K;
}

pgd_layer_dtypes *pgd_model_q4_k_m_layers(const pgd_model_config *c, pgd_dtype *embd_dtype, pgd_dtype *cls_dtype) {
    pgd_layer_dtypes *t = calloc((size_t)c->n_layers, sizeof *t);
    if (!t) return NULL;
    int L = c->n_layers, tied = c->tied_classifier;
    for (int l = 0; l < L; l++)
        t[l] = (pgd_layer_dtypes){
            .q = pgd_model_q4_k_m_dtype("attn_q", l, L, tied),
            .k = pgd_model_q4_k_m_dtype("attn_k", l, L, tied),
            .v = pgd_model_q4_k_m_dtype("attn_v", l, L, tied),
            .o = pgd_model_q4_k_m_dtype("attn_output", l, L, tied),
            .gate = pgd_model_q4_k_m_dtype("ffn_gate", l, L, tied),
            .up = pgd_model_q4_k_m_dtype("ffn_up", l, L, tied),
            .down = pgd_model_q4_k_m_dtype("ffn_down", l, L, tied),
        };
    *embd_dtype = pgd_model_q4_k_m_dtype("token_embd", -1, L, tied);
    *cls_dtype = pgd_model_q4_k_m_dtype("output", -1, L, tied);
    return t;
}
