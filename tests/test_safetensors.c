/* test_safetensors.c - Hugging Face checkpoint directories and the current
 * models' random shapes.
 *
 * stories260K's llama2.c weights are written as an HF Llama checkpoint
 * (config.json + model.safetensors, HF tensor names, q/k rows permuted for
 * rotate_half as HF's conversion script does, classifier tied), also in two
 * shards with model.safetensors.index.json: `pagoda generate` on the
 * directory must give exactly the stories260K golden tokens, whole and
 * split for tensor and pipeline parallelism. A bf16 copy loads and runs.
 * Every damaged-file case gives one clear error. The named shapes
 * smollm2-135m (with its real tokenizer) and qwen2.5-7b have the published
 * parameter counts; `pagoda generate` runs on random:smollm2-135m. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagoda/dtype.h"
#include "pagoda/model.h"
#include "test_util.h"

#define MODEL "models/stories260K/stories260K.bin"
#define TOKENIZER "models/stories260K/tok512.bin"

static pgd_golden G[8];
static int NG;

/* ---- a checkpoint writer ---- */

typedef struct tensor {
    char name[96];
    const char *dtype;
    int64_t shape[2];
    int nd;
    void *data; /* owned */
    size_t bytes;
    int shard;
} tensor;

typedef struct ckpt {
    tensor t[64];
    int n;
} ckpt;

enum { D_NONE, D_BAD_JSON, D_HEADER_LEN, D_OFFSET_PAST, D_OVERLAP, D_DTYPE, D_SHAPE, D_MISSING, D_BIAS, D_NO_CONFIG };

static int DIM, HID, LAYERS, HEADS, KVH, VOCAB, SEQ;

static void add(ckpt *c, const char *name, const float *src, int64_t rows, int64_t cols, int bf16, int shard) {
    tensor *t = &c->t[c->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nd = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    t->dtype = bf16 ? "BF16" : "F32";
    t->bytes = n * (bf16 ? 2 : 4);
    t->data = malloc(t->bytes);
    if (bf16) pgd_dtype_from_f32(t->data, PGD_BF16, src, n);
    else memcpy(t->data, src, t->bytes);
    t->shard = shard;
}

/* HF's permute(): within each head, HF row p*hd/2 + i = Meta row 2i + p. */
static float *permute(const float *w, int heads, int hd, int dim) {
    float *o = malloc(sizeof(float) * (size_t)heads * hd * dim);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int p = 0; p < 2; p++)
                memcpy(o + ((size_t)h * hd + (size_t)p * hd / 2 + i) * dim, w + ((size_t)h * hd + 2 * i + p) * dim,
                       sizeof(float) * dim);
    return o;
}

/* stories260K.bin as HF tensors (2 shards when sharded: layers 0-2 and the rest). */
static void from_llama2c(ckpt *c, int bf16, int sharded) {
    size_t size;
    float *file = pgd_test_read_file(pgd_test_data(MODEL), &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    int32_t h[7];
    memcpy(h, file, 28);
    DIM = h[0], HID = h[1], LAYERS = h[2], HEADS = h[3], KVH = h[4], VOCAB = abs(h[5]), SEQ = h[6];
    int hd = DIM / HEADS;
    size_t d = (size_t)DIM, L = (size_t)LAYERS, qd = (size_t)HEADS * hd, kvd = (size_t)KVH * hd;
    const float *p = (const float *)((const char *)file + 28);
    const float *embd = p, *att = embd + (size_t)VOCAB * d, *wq = att + L * d, *wk = wq + L * qd * d,
                *wv = wk + L * kvd * d, *wo = wv + L * kvd * d, *ffn = wo + L * d * qd, *w1 = ffn + L * d,
                *w2 = w1 + L * (size_t)HID * d, *w3 = w2 + L * d * (size_t)HID, *fin = w3 + L * (size_t)HID * d;
    c->n = 0;
    add(c, "model.embed_tokens.weight", embd, VOCAB, DIM, bf16, 0);
    for (int l = 0; l < LAYERS; l++) {
        char n[96];
        int sh = sharded && l >= 3;
#define T(suffix, src, r, cc)                                  \
    snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, suffix); \
    add(c, n, src, r, cc, bf16, sh);
        float *pq = permute(wq + (size_t)l * qd * d, HEADS, hd, DIM), *pk = permute(wk + (size_t)l * kvd * d, KVH, hd, DIM);
        T("input_layernorm", att + l * d, DIM, 0)
        T("self_attn.q_proj", pq, (int64_t)qd, DIM)
        T("self_attn.k_proj", pk, (int64_t)kvd, DIM)
        T("self_attn.v_proj", wv + (size_t)l * kvd * d, (int64_t)kvd, DIM)
        T("self_attn.o_proj", wo + (size_t)l * d * qd, DIM, (int64_t)qd)
        T("post_attention_layernorm", ffn + l * d, DIM, 0)
        T("mlp.gate_proj", w1 + (size_t)l * HID * d, HID, DIM)
        T("mlp.down_proj", w2 + (size_t)l * d * HID, DIM, HID)
        T("mlp.up_proj", w3 + (size_t)l * HID * d, HID, DIM)
#undef T
        free(pq);
        free(pk);
    }
    add(c, "model.norm.weight", fin, DIM, 0, bf16, sharded);
    free(file);
}

static void free_ckpt(ckpt *c) {
    for (int i = 0; i < c->n; i++) free(c->t[i].data);
    c->n = 0;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(s, f);
    fclose(f);
}

/* Write shard `shard` of c (all tensors when shard < 0) to path, damaged as asked. */
static void write_file(const ckpt *c, int shard, const char *path, int damage) {
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    const char *prev = NULL;
    for (int i = 0; i < c->n; i++) {
        const tensor *t = &c->t[i];
        if (shard >= 0 && t->shard != shard) continue;
        json_t *shape = json_array();
        for (int k = 0; k < t->nd; k++) json_array_append_new(shape, json_integer(t->shape[k]));
        size_t b = off, e = off + t->bytes;
        if (damage == D_OFFSET_PAST && !strcmp(t->name, "model.norm.weight")) e += 1u << 20, b += 1u << 20;
        if (damage == D_OVERLAP && !strcmp(t->name, "model.layers.1.input_layernorm.weight")) b -= 8, e -= 8;
        json_object_set_new(hdr, t->name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype",
                                      damage == D_DTYPE && !strcmp(t->name, "model.norm.weight") ? "Q7" : t->dtype,
                                      "shape", shape, "data_offsets", (json_int_t)b, (json_int_t)e));
        off += t->bytes;
        prev = t->name;
    }
    (void)prev;
    char *js = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint64_t len = hl + pad;
    if (damage == D_HEADER_LEN) len = 1u << 30;
    fwrite(&len, 8, 1, f);
    if (damage == D_BAD_JSON) js[0] = '['; /* an array that never closes */
    fwrite(js, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    for (int i = 0; i < c->n; i++)
        if (shard < 0 || c->t[i].shard == shard) fwrite(c->t[i].data, 1, c->t[i].bytes, f);
    fclose(f);
    free(js);
    json_decref(hdr);
}

static char *make_dir(int bf16, int sharded, int damage) {
    char tmpl[] = "/tmp/pgd_st_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpl));
    char *dir = strdup(tmpl), path[256], cfg[1024];
    ckpt *c = calloc(1, sizeof *c);
    from_llama2c(c, bf16, sharded);
    if (damage == D_MISSING) { /* drop model.norm.weight (the last tensor) */
        free(c->t[c->n - 1].data);
        c->n--;
    }
    if (damage == D_BIAS) {
        float *z = calloc((size_t)DIM, sizeof *z);
        add(c, "model.layers.0.self_attn.q_proj.bias", z, DIM, 0, 0, 0);
        free(z);
    }
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d, "
             "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"num_key_value_heads\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, "
             "\"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": true, "
             "\"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"%s\"}",
             DIM, damage == D_SHAPE ? HID - 2 : HID, LAYERS, HEADS, KVH, VOCAB, SEQ, bf16 ? "bfloat16" : "float32");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (damage != D_NO_CONFIG) write_text(path, cfg);
    if (sharded) {
        for (int s = 0; s < 2; s++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-00002.safetensors", dir, s + 1);
            write_file(c, s, path, damage);
        }
        json_t *wm = json_object();
        for (int i = 0; i < c->n; i++)
            json_object_set_new(wm, c->t[i].name,
                                json_string(c->t[i].shard ? "model-00002-of-00002.safetensors"
                                                          : "model-00001-of-00002.safetensors"));
        json_t *idx = json_pack("{s:{s:i},s:o}", "metadata", "total_size", 0, "weight_map", wm);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        json_dump_file(idx, path, 0);
        json_decref(idx);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_file(c, -1, path, damage);
    }
    free_ckpt(c);
    free(c);
    return dir;
}

static void rm_dir(char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    free(dir);
}

/* ---- goldens through `pagoda generate` ---- */

static void expect_golden(const char *dir, const char *extra) {
    for (int gi = 0; gi < NG; gi++) {
        pgd_golden *g = &G[gi];
        char args[4096], tok[1024];
        snprintf(tok, sizeof tok, "%s", pgd_test_data(TOKENIZER));
        snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%.1000s' --prompt '%.255s' --max-tokens %d "
                 "--output json %s", dir, tok, g->prompt, g->ng, extra);
        char *out = NULL, *err = NULL;
        int rc = pgd_test_run_cli(args, &out, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0) fprintf(stderr, "\n  stderr: %s\n", err ? err : "");
        json_error_t je;
        json_t *o = out ? json_loads(out, 0, &je) : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        json_t *gt = json_object_get(o, "tokens");
        CU_ASSERT_EQUAL(json_array_size(gt), (size_t)g->ng);
        int mism = -1;
        for (int i = 0; i < g->ng && i < (int)json_array_size(gt); i++)
            if (json_integer_value(json_array_get(gt, i)) != g->gtoks[i]) {
                mism = i;
                break;
            }
        if (mism >= 0) fprintf(stderr, "\n  %s: prompt '%s': first mismatch at token %d\n", extra, g->prompt, mism);
        CU_ASSERT_EQUAL(mism, -1);
        json_decref(o);
        free(out);
        free(err);
    }
}

static void test_golden_single(void) {
    char *dir = make_dir(0, 0, D_NONE);
    expect_golden(dir, "");
    expect_golden(dir, "--tp 2");
    expect_golden(dir, "--pp 2");
    char file[512];
    snprintf(file, sizeof file, "%s/model.safetensors", dir); /* the file itself names the checkpoint too */
    expect_golden(file, "");
    rm_dir(dir);
}

static void test_golden_sharded(void) {
    char *dir = make_dir(0, 1, D_NONE);
    expect_golden(dir, "");
    expect_golden(dir, "--tp 2 --pp 2");
    rm_dir(dir);
}

static void test_bf16_loads(void) {
    char *dir = make_dir(1, 0, D_NONE);
    pgd_backend *be = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    pgd_model *m = NULL;
    pgd_status st = pgd_model_load(dir, NULL, be, &m);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT_EQUAL(pgd_model_get_format(m), PGD_FORMAT_SAFETENSORS);
    const pgd_model_config *c = pgd_model_get_config(m);
    CU_ASSERT_EQUAL(c->weight_dtype, PGD_BF16);
    CU_ASSERT_EQUAL(c->n_kv_heads, 4);
    CU_ASSERT(c->tied_classifier);
    CU_ASSERT_PTR_NULL(pgd_model_tokenizer(m)); /* no tokenizer.json in the directory */
    int ctx = 0;
    CU_ASSERT_EQUAL(pgd_model_peek_context(dir, &ctx), PGD_OK);
    CU_ASSERT_EQUAL(ctx, 512);
    pgd_model_destroy(m);
    pgd_backend_destroy(be);
    rm_dir(dir);
}

/* A tokenizer.json in the directory becomes the model's tokenizer, BOS/EOS
 * from config.json; one larger than the vocabulary is refused. */
static void test_tokenizer_json(void) {
    char *dir = make_dir(0, 0, D_NONE), path[512];
    /* a minimal byte-level vocabulary: the 256 byte characters, one merge */
    json_t *vocab = json_object();
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int cp = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174) ? b : 256 + n++;
        char u[4] = {0};
        if (cp < 0x80) u[0] = (char)cp;
        else u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F));
        json_object_set_new(vocab, u, json_integer(b));
    }
    json_object_set_new(vocab, "ab", json_integer(256));
    json_t *tj = json_pack("{s:{s:s,s:o,s:[s]},s:{s:s,s:b,s:b}}", "model", "type", "BPE", "vocab", vocab, "merges",
                           "a b", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "use_regex", 1);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    json_dump_file(tj, path, 0);
    pgd_backend *be = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    pgd_model *m = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_model_load(dir, NULL, be, &m), PGD_OK);
    const pgd_tokenizer *t = pgd_model_tokenizer(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(pgd_tokenizer_is_byte_level(t));
    CU_ASSERT(pgd_tokenizer_bos(t) == 1 && pgd_tokenizer_eos(t) == 2);
    int32_t *ids = NULL;
    int k = 0;
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(t, "abc", 1, 0, &ids, &k), PGD_OK);
    CU_ASSERT(k == 2 && ids[0] == 256 && ids[1] == 'c');
    free(ids);
    pgd_model_destroy(m);
    /* SmolLM2's 49152 tokens do not fit stories260K's 512 */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pgd_test_data("tokenizers/smollm2_tokenizer.json"), path);
    CU_ASSERT_EQUAL(system(cmd), 0);
    m = NULL;
    CU_ASSERT_EQUAL(pgd_model_load(dir, NULL, be, &m), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "the tokenizer has 49152 tokens, the model's vocabulary only 512"));
    pgd_backend_destroy(be);
    json_decref(tj);
    rm_dir(dir);
}

/* ---- damaged checkpoints ---- */

static void expect_fail(int damage, int sharded, pgd_status want, const char *needle) {
    char *dir = make_dir(0, sharded, damage);
    pgd_backend *be = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &be), PGD_OK);
    pgd_model *m = NULL;
    pgd_status st = pgd_model_load(dir, NULL, be, &m);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(m);
    if (!strstr(pgd_last_error(), needle)) {
        fprintf(stderr, "\n  damage %d: error '%s' lacks '%s'\n", damage, pgd_last_error(), needle);
        CU_FAIL("error message");
    }
    CU_ASSERT_PTR_NULL(strchr(pgd_last_error(), '\n')); /* one line */
    pgd_model_destroy(m);
    pgd_backend_destroy(be);
    rm_dir(dir);
}

static void test_damaged(void) {
    expect_fail(D_BAD_JSON, 0, PGD_ERR_FORMAT, "the safetensors header is not valid JSON");
    expect_fail(D_HEADER_LEN, 0, PGD_ERR_FORMAT, "header length 1073741824 runs past the end of the file");
    expect_fail(D_OFFSET_PAST, 0, PGD_ERR_FORMAT, "tensor 'model.norm.weight' has data_offsets");
    expect_fail(D_OFFSET_PAST, 0, PGD_ERR_FORMAT, "past the end of the data");
    expect_fail(D_OVERLAP, 0, PGD_ERR_FORMAT, "overlap");
    expect_fail(D_DTYPE, 0, PGD_ERR_FORMAT, "tensor 'model.norm.weight' has unknown dtype 'Q7'");
    expect_fail(D_SHAPE, 0, PGD_ERR_FORMAT,
                "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [172, 64], config.json implies [170, 64]");
    expect_fail(D_MISSING, 0, PGD_ERR_FORMAT, "tensor 'model.norm.weight' is missing");
    expect_fail(D_MISSING, 1, PGD_ERR_FORMAT, "tensor 'model.norm.weight' is missing");
    expect_fail(D_BIAS, 0, PGD_ERR_UNSUPPORTED, "q/k/v biases");
    expect_fail(D_NO_CONFIG, 0, PGD_ERR_IO, "no readable config.json");
    expect_fail(D_DTYPE, 1, PGD_ERR_FORMAT, "unknown dtype 'Q7'");
}

/* ---- current models' shapes ---- */

static void test_shapes(void) {
    pgd_model_config c;
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("smollm2-135m", &c), PGD_OK);
    CU_ASSERT(c.dim == 576 && c.n_layers == 30 && c.n_heads == 9 && c.n_kv_heads == 3 && c.head_dim == 64);
    CU_ASSERT(c.tied_classifier && c.rope_theta == 100000.f && c.vocab_size == 49152);
    CU_ASSERT_EQUAL(pgd_model_config_params(&c), 134515008); /* HF's count for SmolLM2-135M */
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("qwen2.5-7b", &c), PGD_OK);
    CU_ASSERT(c.qkv_bias && c.n_kv_heads == 4 && c.head_dim == 128 && c.norm_eps == 1e-6f);
    CU_ASSERT_EQUAL(pgd_model_config_params(&c), 7615616512); /* Qwen2.5-7B's 7.62B, biases included */
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("llama3-8b", &c), PGD_OK);
    CU_ASSERT_EQUAL(pgd_model_config_params(&c), 8030261248); /* Meta-Llama-3-8B */
    const char *rel = NULL;
    int bos = 0, eos = 0;
    CU_ASSERT_EQUAL(pgd_model_shape_tokenizer("smollm2-135m", &rel, &bos, &eos), PGD_OK);
    CU_ASSERT(rel && bos == 1 && eos == 2);
    /* Qwen2's biases: refused on a compute backend, accounted on the sim */
    char *err = NULL;
    CU_ASSERT_EQUAL(pgd_test_run_cli("generate --model random:qwen2.5-7b --prompt hi --tokenizer x", NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "has q/k/v biases (Qwen2), which Pagoda's forward pass does not implement"));
    free(err);
}

static void test_smollm2_generate(void) {
    char *out = NULL, *err = NULL;
    int rc = pgd_test_run_cli("generate --model random:smollm2-135m,layers=2 --prompt 'Hello <|im_start|>user' "
                              "--max-tokens 4 --output json", &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) fprintf(stderr, "\n  %s\n", err ? err : "");
    json_error_t je;
    json_t *o = out ? json_loads(out, 0, &je) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    /* the real SmolLM2 tokenizer: "Hello" 19556, " " 216... <|im_start|> 1, "user" 4093; no BOS added */
    json_t *pt = json_object_get(o, "prompt_tokens");
    CU_ASSERT_EQUAL(json_array_size(pt), 4);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(pt, 0)), 19556);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(pt, 2)), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_array_get(pt, 3)), 4093);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(o, "tokens")), 4);
    json_decref(o);
    free(out);
    free(err);
}

static int suite_init(void) {
    NG = pgd_test_load_goldens(G, 8);
    if (NG > 3) NG = 3; /* three prompts keep the parallel runs short */
    return NG > 0 ? 0 : -1;
}

static CU_TestInfo st_tests[] = {
    {"stories260K as safetensors: golden tokens (whole, tp 2, pp 2)", test_golden_single},
    {"sharded with an index: golden tokens (whole, tp 2 x pp 2)", test_golden_sharded},
    {"bf16 checkpoint loads", test_bf16_loads},
    {"tokenizer.json in the directory", test_tokenizer_json},
    {"damaged files: one clear error each", test_damaged},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo shape_tests[] = {
    {"named shapes", test_shapes},
    {"generate on random:smollm2-135m", test_smollm2_generate},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "safetensors", .pInitFunc = suite_init, .pTests = st_tests},
    {.pName = "current model shapes", .pTests = shape_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
