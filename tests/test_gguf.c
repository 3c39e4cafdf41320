/* test_gguf.c - GGUF reader: the real tiny Llama-2 GGUF (metadata, tensor
 * table, conversion), a synthetic v2 file covering every value type and the
 * Q8_0/BF16 tensor types, and corrupt files (each must fail with the right
 * status and a message naming the file), plus a small deterministic fuzz
 * (truncations and byte flips must never crash). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "pagoda/dtype.h"
#include "test_util.h"

#define TINY "models/tiny-random-gguf/llama-2-tiny-random.gguf"
#define TINY_SIZE 1750560u
#define TINY_DATA_START 724416u /* aligned end of the tensor-info section */

/* ---- helpers ---- */

static uint8_t *tiny_bytes(size_t *n) {
    uint8_t *b = pgd_test_read_file(pgd_test_data(TINY), n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL_FATAL(*n, TINY_SIZE);
    return b;
}

/* Offset just past the length-prefixed string `s` in b (searching from `from`). */
static size_t find_lp_str(const uint8_t *b, size_t n, size_t from, const char *s) {
    size_t len = strlen(s);
    uint8_t pat[256];
    uint64_t l64 = len;
    memcpy(pat, &l64, 8);
    memcpy(pat + 8, s, len);
    const uint8_t *hit = memmem(b + from, n - from, pat, len + 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
    return (size_t)(hit - b) + len + 8;
}

/* Opening `bytes` written to a temp file must fail with `want`, a message
 * naming the file and containing `needle` (if not NULL). */
static void expect_fail(const void *bytes, size_t n, pgd_status want, const char *needle) {
    char *path = pgd_test_write_temp(bytes, n, ".gguf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(path);
    pgd_gguf *g = (pgd_gguf *)1;
    pgd_status st = pgd_gguf_open(path, &g);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(g);
    const char *msg = pgd_last_error();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, path));
    if (needle) CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    if (st != want || !strstr(msg, path) || (needle && !strstr(msg, needle)))
        fprintf(stderr, "\n  status %d (want %d), message: %s (want '%s')\n", st, want, msg,
                needle ? needle : "");
    pgd_gguf_close(st == PGD_OK ? g : NULL);
    unlink(path);
    free(path);
}

static pgd_gguf *open_bytes(const void *bytes, size_t n, char **path_out) {
    char *path = pgd_test_write_temp(bytes, n, ".gguf");
    pgd_gguf *g = NULL;
    pgd_status st = pgd_gguf_open(path, &g);
    if (st != PGD_OK) fprintf(stderr, "\n  open failed: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL(st, PGD_OK);
    if (path_out) *path_out = path;
    else {
        unlink(path);
        free(path);
    }
    return g;
}

/* ---- the real file ---- */

static void test_tiny_metadata(void) {
    pgd_gguf *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(pgd_test_data(TINY), &g), PGD_OK);
    CU_ASSERT_EQUAL(pgd_gguf_version(g), 3);
    CU_ASSERT_EQUAL(pgd_gguf_n_kv(g), 18);
    CU_ASSERT_EQUAL(pgd_gguf_n_tensors(g), 12);
    CU_ASSERT_EQUAL(pgd_gguf_alignment(g), 32);
    CU_ASSERT_EQUAL(pgd_gguf_data_offset(g), TINY_DATA_START);
    CU_ASSERT_STRING_EQUAL(pgd_gguf_path(g), pgd_test_data(TINY));

    const char *s;
    size_t len;
    CU_ASSERT_EQUAL(pgd_gguf_get_str(g, "general.architecture", &s, &len), PGD_OK);
    CU_ASSERT_STRING_EQUAL(s, "llama");
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_EQUAL(pgd_gguf_get_str(g, "general.name", &s, NULL), PGD_OK);
    CU_ASSERT_STRING_EQUAL(s, "LLaMA v2");
    CU_ASSERT_EQUAL(pgd_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL), PGD_OK);
    CU_ASSERT_STRING_EQUAL(s, "llama");

    static const struct { const char *key; int64_t v; } ints[] = {
        {"llama.context_length", 4096}, {"llama.embedding_length", 8},
        {"llama.block_count", 1}, {"llama.feed_forward_length", 32},
        {"llama.rope.dimension_count", 4}, {"llama.attention.head_count", 2},
        {"llama.attention.head_count_kv", 2}, {"general.file_type", 1},
        {"tokenizer.ggml.bos_token_id", 1}, {"tokenizer.ggml.eos_token_id", 2},
        {"tokenizer.ggml.unknown_token_id", 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = -1;
        CU_ASSERT_EQUAL(pgd_gguf_get_int(g, ints[i].key, &v), PGD_OK);
        CU_ASSERT_EQUAL(v, ints[i].v);
    }
    float eps = 0;
    CU_ASSERT_EQUAL(pgd_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps), PGD_OK);
    CU_ASSERT_EQUAL(eps, 1e-5f);

    int et = -1;
    int64_t count = -1;
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count), PGD_OK);
    CU_ASSERT_EQUAL(et, PGD_GGUF_STRING);
    CU_ASSERT_EQUAL(count, 32000);
    static const struct { int64_t i; const char *s; } toks[] = {
        {0, "<unk>"}, {1, "<s>"}, {2, "</s>"}, {3, "<0x00>"}, {258, "<0xFF>"},
        {259, "\xE2\x96\x81\xE2\x96\x81"}, {29871, "\xE2\x96\x81"}, {15043, "\xE2\x96\x81Hello"},
    };
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        CU_ASSERT_EQUAL(pgd_gguf_arr_str(g, "tokenizer.ggml.tokens", toks[i].i, &s, &len), PGD_OK);
        CU_ASSERT_STRING_EQUAL(s, toks[i].s);
        CU_ASSERT_EQUAL(len, strlen(toks[i].s));
    }
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &count), PGD_OK);
    CU_ASSERT_EQUAL(et, PGD_GGUF_F32);
    CU_ASSERT_EQUAL(count, 32000);
    float f = 1;
    CU_ASSERT_EQUAL(pgd_gguf_arr_f32(g, "tokenizer.ggml.scores", 0, &f), PGD_OK);
    CU_ASSERT_EQUAL(f, 0.0f);
    CU_ASSERT_EQUAL(pgd_gguf_arr_f32(g, "tokenizer.ggml.scores", 259, &f), PGD_OK);
    CU_ASSERT_EQUAL(f, -1e9f);
    CU_ASSERT_EQUAL(pgd_gguf_arr_f32(g, "tokenizer.ggml.scores", 260, &f), PGD_OK);
    CU_ASSERT_EQUAL(f, -1.0f);
    CU_ASSERT_EQUAL(pgd_gguf_arr_f32(g, "tokenizer.ggml.scores", 31999, &f), PGD_OK);
    CU_ASSERT_EQUAL(f, -31740.0f);
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count), PGD_OK);
    CU_ASSERT_EQUAL(et, PGD_GGUF_I32);
    CU_ASSERT_EQUAL(count, 32000);
    int64_t v = -1;
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "tokenizer.ggml.token_type", 0, &v), PGD_OK);
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "tokenizer.ggml.token_type", 1, &v), PGD_OK);
    CU_ASSERT_EQUAL(v, 3);
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "tokenizer.ggml.token_type", 3, &v), PGD_OK);
    CU_ASSERT_EQUAL(v, 6);
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "tokenizer.ggml.token_type", 1000, &v), PGD_OK);
    CU_ASSERT_EQUAL(v, 1);
    pgd_gguf_close(g);
}

static void expect_lookup_err(pgd_status got, pgd_status want, const char *needle) {
    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), pgd_test_data(TINY)));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), needle));
}

static void test_tiny_lookup_errors(void) {
    pgd_gguf *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(pgd_test_data(TINY), &g), PGD_OK);
    const char *s;
    int64_t v;
    float f;
    CU_ASSERT_FALSE(pgd_gguf_has_key(g, "llama.no_such_key"));
    CU_ASSERT_TRUE(pgd_gguf_has_key(g, "llama.block_count"));
    expect_lookup_err(pgd_gguf_get_int(g, "llama.no_such_key", &v), PGD_ERR_FORMAT,
                      "'llama.no_such_key' is missing");
    expect_lookup_err(pgd_gguf_get_int(g, "general.name", &v), PGD_ERR_FORMAT, "general.name");
    expect_lookup_err(pgd_gguf_get_str(g, "llama.block_count", &s, NULL), PGD_ERR_FORMAT,
                      "llama.block_count");
    expect_lookup_err(pgd_gguf_get_f32(g, "llama.block_count", &f), PGD_ERR_FORMAT, "u32");
    expect_lookup_err(pgd_gguf_get_str(g, "tokenizer.ggml.tokens", &s, NULL), PGD_ERR_FORMAT,
                      "array");
    expect_lookup_err(pgd_gguf_arr_f32(g, "tokenizer.ggml.tokens", 0, &f), PGD_ERR_FORMAT,
                      "array of string");
    expect_lookup_err(pgd_gguf_arr_str(g, "tokenizer.ggml.tokens", 32000, &s, NULL),
                      PGD_ERR_INVALID, "32000");
    expect_lookup_err(pgd_gguf_arr_int(g, "tokenizer.ggml.token_type", -1, &v), PGD_ERR_INVALID,
                      "-1");
    expect_lookup_err(pgd_gguf_arr_int(g, "general.name", 0, &v), PGD_ERR_FORMAT, "general.name");
    pgd_gguf_close(g);
    pgd_gguf_close(NULL);
}

static void test_tiny_tensors(void) {
    static const struct { const char *name; int n_dims; int64_t ne0, ne1; int type; size_t off; }
    want[] = {
        {"token_embd.weight", 2, 8, 32000, PGD_GGML_F16, 0},
        {"blk.0.attn_q.weight", 2, 8, 8, PGD_GGML_F16, 512000},
        {"blk.0.attn_k.weight", 2, 8, 8, PGD_GGML_F16, 512128},
        {"blk.0.attn_v.weight", 2, 8, 8, PGD_GGML_F16, 512256},
        {"blk.0.attn_output.weight", 2, 8, 8, PGD_GGML_F16, 512384},
        {"blk.0.ffn_gate.weight", 2, 8, 32, PGD_GGML_F16, 512512},
        {"blk.0.ffn_up.weight", 2, 8, 32, PGD_GGML_F16, 513024},
        {"blk.0.ffn_down.weight", 2, 32, 8, PGD_GGML_F16, 513536},
        {"blk.0.attn_norm.weight", 1, 8, 1, PGD_GGML_F32, 514048},
        {"blk.0.ffn_norm.weight", 1, 8, 1, PGD_GGML_F32, 514080},
        {"output_norm.weight", 1, 8, 1, PGD_GGML_F32, 514112},
        {"output.weight", 2, 8, 32000, PGD_GGML_F16, 514144},
    };
    size_t n;
    uint8_t *raw = tiny_bytes(&n);
    pgd_gguf *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(pgd_test_data(TINY), &g), PGD_OK);
    const uint8_t *base = pgd_gguf_tensor_at(g, 0)->data;
    for (int i = 0; i < 12; i++) {
        const pgd_gguf_tensor *t = pgd_gguf_tensor_at(g, i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_STRING_EQUAL(t->name, want[i].name);
        CU_ASSERT_PTR_EQUAL(pgd_gguf_find_tensor(g, want[i].name), t);
        CU_ASSERT_EQUAL(t->n_dims, want[i].n_dims);
        CU_ASSERT_EQUAL(t->ne[0], want[i].ne0);
        CU_ASSERT_EQUAL(t->ne[1], want[i].ne1);
        CU_ASSERT_EQUAL(t->ne[2], 1);
        CU_ASSERT_EQUAL(t->ne[3], 1);
        CU_ASSERT_EQUAL(t->type, want[i].type);
        size_t es = want[i].type == PGD_GGML_F32 ? 4 : 2;
        CU_ASSERT_EQUAL(t->nbytes, (size_t)(want[i].ne0 * want[i].ne1) * es);
        CU_ASSERT_EQUAL((size_t)((const uint8_t *)t->data - base), want[i].off);
        CU_ASSERT_EQUAL(memcmp(t->data, raw + TINY_DATA_START + want[i].off, t->nbytes), 0);
    }
    CU_ASSERT_PTR_NULL(pgd_gguf_tensor_at(g, 12));
    CU_ASSERT_PTR_NULL(pgd_gguf_tensor_at(g, -1));
    CU_ASSERT_PTR_NULL(pgd_gguf_find_tensor(g, "blk.1.attn_q.weight"));
    CU_ASSERT_PTR_NULL(pgd_gguf_find_tensor(g, ""));
    CU_ASSERT_STRING_EQUAL(pgd_gguf_type_name(PGD_GGML_Q8_0), "Q8_0");

    /* f32 conversion: F32 copies, F16 goes through pgd_f16_to_f32. */
    const pgd_gguf_tensor *norm = pgd_gguf_find_tensor(g, "output_norm.weight");
    float nf[8];
    CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(norm, nf), PGD_OK);
    CU_ASSERT_EQUAL(memcmp(nf, norm->data, sizeof nf), 0);
    const pgd_gguf_tensor *emb = pgd_gguf_find_tensor(g, "token_embd.weight");
    CU_ASSERT_EQUAL(pgd_gguf_tensor_nelements(emb), 256000);
    float *ef = malloc(256000 * sizeof *ef);
    CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(emb, ef), PGD_OK);
    int bad = 0;
    for (int i = 0; i < 256000; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)emb->data + 2 * i, 2);
        if (ef[i] != pgd_f16_to_f32(h) || !isfinite(ef[i])) bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(ef);
    pgd_gguf_close(g);
    free(raw);
}

/* ---- synthetic files ---- */

typedef struct gbuf { uint8_t *p; size_t n, cap; } gbuf;

static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(gbuf *b, const char *k, uint32_t type) {
    put_str(b, k);
    put_u32(b, type);
}

/* Variations of the synthetic file, one defect each. */
typedef struct synth {
    uint32_t version, alignment, q8_ne0, n_dims_q8, bf_type, bool_val, bf_offset;
    uint64_t f32_ne0;
    int dup_key, dup_tensor, nest_depth;
} synth;

static const synth SYNTH_OK = {.version = 2, .alignment = 64, .q8_ne0 = 64, .n_dims_q8 = 2,
                               .bf_type = PGD_GGML_BF16, .bool_val = 1, .bf_offset = 192,
                               .f32_ne0 = 4, .nest_depth = 2};

/* Q8_0 tensor data: 4 blocks, block b has d = 0.5 * (b + 1), q[j] = j - 16 + b. */
static float q8_expect(int i) {
    int b = i / 32, j = i % 32;
    return 0.5f * (float)(b + 1) * (float)(j - 16 + b);
}

static gbuf build(const synth *o) {
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, o->version);
    put_u64(&b, o->dup_tensor ? 5 : 4); /* tensors */
    put_u64(&b, 19 + (o->dup_key ? 1 : 0)); /* kvs */
    put_key(&b, "general.architecture", PGD_GGUF_STRING); put_str(&b, "test");
    put_key(&b, "general.alignment", PGD_GGUF_U32); put_u32(&b, o->alignment);
    uint8_t u8 = 200; int8_t i8 = -5; uint16_t u16 = 65000; int16_t i16 = -30000;
    int32_t i32 = -2000000000; int64_t i64 = -(1ll << 40); float f32 = 1.5f; double f64 = 2.25;
    uint8_t bo = (uint8_t)o->bool_val;
    put_key(&b, "t.u8", PGD_GGUF_U8); put(&b, &u8, 1);
    put_key(&b, "t.i8", PGD_GGUF_I8); put(&b, &i8, 1);
    put_key(&b, "t.u16", PGD_GGUF_U16); put(&b, &u16, 2);
    put_key(&b, "t.i16", PGD_GGUF_I16); put(&b, &i16, 2);
    put_key(&b, "t.u32", PGD_GGUF_U32); put_u32(&b, 4000000000u);
    put_key(&b, "t.i32", PGD_GGUF_I32); put(&b, &i32, 4);
    put_key(&b, "t.u64", PGD_GGUF_U64); put_u64(&b, 1ull << 40);
    put_key(&b, "t.u64big", PGD_GGUF_U64); put_u64(&b, UINT64_MAX);
    put_key(&b, "t.i64", PGD_GGUF_I64); put(&b, &i64, 8);
    put_key(&b, "t.f32", PGD_GGUF_F32); put(&b, &f32, 4);
    put_key(&b, "t.f64", PGD_GGUF_F64); put(&b, &f64, 8);
    put_key(&b, "t.bool", PGD_GGUF_BOOL); put(&b, &bo, 1);
    int16_t ai16[3] = {1, -2, 3};
    put_key(&b, "t.arr_i16", PGD_GGUF_ARRAY); put_u32(&b, PGD_GGUF_I16); put_u64(&b, 3);
    put(&b, ai16, sizeof ai16);
    double af64[2] = {0.5, -1.25};
    put_key(&b, "t.arr_f64", PGD_GGUF_ARRAY); put_u32(&b, PGD_GGUF_F64); put_u64(&b, 2);
    put(&b, af64, sizeof af64);
    put_key(&b, "t.strs", PGD_GGUF_ARRAY); put_u32(&b, PGD_GGUF_STRING); put_u64(&b, 3);
    put_str(&b, "a"); put_str(&b, ""); put_str(&b, "ccc");
    /* t.nested: nest_depth levels of one-element arrays around [7, 8] (u8). */
    put_key(&b, "t.nested", PGD_GGUF_ARRAY);
    for (int d = 1; d < o->nest_depth; d++) { put_u32(&b, PGD_GGUF_ARRAY); put_u64(&b, 1); }
    put_u32(&b, PGD_GGUF_U8); put_u64(&b, 2); put(&b, "\x07\x08", 2);
    put_key(&b, "t.empty", PGD_GGUF_ARRAY); put_u32(&b, PGD_GGUF_STRING); put_u64(&b, 0);
    if (o->dup_key) { put_key(&b, "t.u8", PGD_GGUF_U8); put(&b, &u8, 1); }
    /* tensors */
    put_str(&b, "q8"); put_u32(&b, o->n_dims_q8); put_u64(&b, o->q8_ne0);
    for (uint32_t d = 1; d < o->n_dims_q8; d++) put_u64(&b, 2);
    put_u32(&b, PGD_GGML_Q8_0); put_u64(&b, 0);
    put_str(&b, "bf"); put_u32(&b, 1); put_u64(&b, 3); put_u32(&b, o->bf_type);
    put_u64(&b, o->bf_offset);
    put_str(&b, "f16"); put_u32(&b, 4); put_u64(&b, 2); put_u64(&b, 1); put_u64(&b, 1);
    put_u64(&b, 2); put_u32(&b, PGD_GGML_F16); put_u64(&b, 256);
    put_str(&b, "f32"); put_u32(&b, 1); put_u64(&b, o->f32_ne0); put_u32(&b, PGD_GGML_F32);
    put_u64(&b, 320);
    if (o->dup_tensor) {
        put_str(&b, "bf"); put_u32(&b, 1); put_u64(&b, 3); put_u32(&b, PGD_GGML_BF16);
        put_u64(&b, 192);
    }
    uint32_t al = o->alignment && !(o->alignment & (o->alignment - 1)) ? o->alignment : 1;
    while (b.n % al) put(&b, "\0", 1);
    size_t data = b.n;
    for (int blk = 0; blk < 4; blk++) {
        uint16_t d = pgd_f32_to_f16(0.5f * (float)(blk + 1));
        put(&b, &d, 2);
        for (int j = 0; j < 32; j++) { int8_t q = (int8_t)(j - 16 + blk); put(&b, &q, 1); }
    }
    while (b.n < data + 192) put(&b, "\0", 1);
    uint16_t bf[3] = {pgd_f32_to_bf16(1.0f), pgd_f32_to_bf16(-2.5f), pgd_f32_to_bf16(3e38f)};
    put(&b, bf, sizeof bf);
    while (b.n < data + 256) put(&b, "\0", 1);
    uint16_t hf[4] = {pgd_f32_to_f16(0.25f), pgd_f32_to_f16(-1.0f), pgd_f32_to_f16(65504.0f),
                      pgd_f32_to_f16(0.0f)};
    put(&b, hf, sizeof hf);
    while (b.n < data + 320) put(&b, "\0", 1);
    float ff[4] = {1, 2, 3, 4};
    put(&b, ff, sizeof ff);
    return b;
}

static void test_synthetic_v2(void) {
    gbuf b = build(&SYNTH_OK);
    pgd_gguf *g = open_bytes(b.p, b.n, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(pgd_gguf_version(g), 2);
    CU_ASSERT_EQUAL(pgd_gguf_alignment(g), 64);
    CU_ASSERT_EQUAL(pgd_gguf_data_offset(g) % 64, 0);
    static const struct { const char *k; int64_t v; } ints[] = {
        {"t.u8", 200}, {"t.i8", -5}, {"t.u16", 65000}, {"t.i16", -30000},
        {"t.u32", 4000000000ll}, {"t.i32", -2000000000}, {"t.u64", 1ll << 40},
        {"t.i64", -(1ll << 40)}, {"general.alignment", 64},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        CU_ASSERT_EQUAL(pgd_gguf_get_int(g, ints[i].k, &v), PGD_OK);
        CU_ASSERT_EQUAL(v, ints[i].v);
    }
    int64_t v;
    CU_ASSERT_EQUAL(pgd_gguf_get_int(g, "t.u64big", &v), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "t.u64big"));
    CU_ASSERT_EQUAL(pgd_gguf_get_int(g, "t.bool", &v), PGD_ERR_FORMAT);
    float f;
    CU_ASSERT_EQUAL(pgd_gguf_get_f32(g, "t.f32", &f), PGD_OK);
    CU_ASSERT_EQUAL(f, 1.5f);
    CU_ASSERT_EQUAL(pgd_gguf_get_f32(g, "t.f64", &f), PGD_OK);
    CU_ASSERT_EQUAL(f, 2.25f);
    int et;
    int64_t n;
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "t.arr_i16", &et, &n), PGD_OK);
    CU_ASSERT_EQUAL(et, PGD_GGUF_I16);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "t.arr_i16", 1, &v), PGD_OK);
    CU_ASSERT_EQUAL(v, -2);
    CU_ASSERT_EQUAL(pgd_gguf_arr_f32(g, "t.arr_f64", 1, &f), PGD_OK);
    CU_ASSERT_EQUAL(f, -1.25f);
    const char *s;
    size_t len;
    CU_ASSERT_EQUAL(pgd_gguf_arr_str(g, "t.strs", 1, &s, &len), PGD_OK);
    CU_ASSERT_STRING_EQUAL(s, "");
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(pgd_gguf_arr_str(g, "t.strs", 2, &s, &len), PGD_OK);
    CU_ASSERT_STRING_EQUAL(s, "ccc");
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "t.nested", &et, &n), PGD_OK);
    CU_ASSERT_EQUAL(et, PGD_GGUF_ARRAY);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(pgd_gguf_arr_int(g, "t.nested", 0, &v), PGD_ERR_FORMAT);
    CU_ASSERT_EQUAL(pgd_gguf_get_arr(g, "t.empty", &et, &n), PGD_OK);
    CU_ASSERT_EQUAL(n, 0);

    const pgd_gguf_tensor *q8 = pgd_gguf_find_tensor(g, "q8");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q8);
    CU_ASSERT_EQUAL(q8->type, PGD_GGML_Q8_0);
    CU_ASSERT_EQUAL(q8->nbytes, 4 * 34);
    float qf[128];
    CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(q8, qf), PGD_OK);
    int bad = 0;
    for (int i = 0; i < 128; i++) bad += qf[i] != q8_expect(i);
    CU_ASSERT_EQUAL(bad, 0);
    const pgd_gguf_tensor *bf = pgd_gguf_find_tensor(g, "bf");
    CU_ASSERT_EQUAL(bf->nbytes, 6);
    float bff[3];
    CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(bf, bff), PGD_OK);
    CU_ASSERT_EQUAL(bff[0], 1.0f);
    CU_ASSERT_EQUAL(bff[1], -2.5f);
    CU_ASSERT(fabsf(bff[2] - 3e38f) < 3e38f * 0.01f);
    const pgd_gguf_tensor *h = pgd_gguf_find_tensor(g, "f16");
    CU_ASSERT_EQUAL(h->n_dims, 4);
    CU_ASSERT_EQUAL(h->ne[3], 2);
    CU_ASSERT_EQUAL(pgd_gguf_tensor_nelements(h), 4);
    float hf[4];
    CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(h, hf), PGD_OK);
    CU_ASSERT_EQUAL(hf[0], 0.25f);
    CU_ASSERT_EQUAL(hf[1], -1.0f);
    CU_ASSERT_EQUAL(hf[2], 65504.0f);
    CU_ASSERT_EQUAL(hf[3], 0.0f);
    pgd_gguf_close(g);
    free(b.p);
}

static void expect_synth_fail(synth o, const char *needle) {
    gbuf b = build(&o);
    expect_fail(b.p, b.n, PGD_ERR_FORMAT, needle);
    free(b.p);
}

static void test_synthetic_defects(void) {
    synth o;
    o = SYNTH_OK; o.q8_ne0 = 48; expect_synth_fail(o, "tensor 'q8'");
    o = SYNTH_OK; o.n_dims_q8 = 0; expect_synth_fail(o, "0 dimensions");
    o = SYNTH_OK; o.n_dims_q8 = 5; expect_synth_fail(o, "5 dimensions");
    o = SYNTH_OK; o.f32_ne0 = 0; expect_synth_fail(o, "tensor 'f32' has dimension 0 = 0");
    o = SYNTH_OK; o.f32_ne0 = 1ull << 63; expect_synth_fail(o, "tensor 'f32'");
    o = SYNTH_OK; o.f32_ne0 = 1ull << 62; expect_synth_fail(o, "tensor 'f32'");
    o = SYNTH_OK; o.bf_type = 99; expect_synth_fail(o, "tensor 'bf' has ggml type 99");
    o = SYNTH_OK; o.bf_type = 3; expect_synth_fail(o, "ggml type 3"); /* Q4_1: not read */
    o = SYNTH_OK; o.bf_type = 2; expect_synth_fail(o, "is Q4_0 but its row length 3 is not a multiple of the block size 32");
    o = SYNTH_OK; o.bf_offset = 200; expect_synth_fail(o, "not a multiple of the alignment 64");
    o = SYNTH_OK; o.alignment = 48; expect_synth_fail(o, "general.alignment = 48");
    o = SYNTH_OK; o.alignment = 0; expect_synth_fail(o, "general.alignment = 0");
    o = SYNTH_OK; o.bool_val = 2; expect_synth_fail(o, "key 't.bool'");
    o = SYNTH_OK; o.dup_key = 1; expect_synth_fail(o, "'t.u8' appears more than once");
    o = SYNTH_OK; o.dup_tensor = 1; expect_synth_fail(o, "tensor 'bf' appears more than once");
    o = SYNTH_OK; o.nest_depth = 100; expect_synth_fail(o, "key 't.nested'");
    o = SYNTH_OK; o.version = 1; expect_synth_fail(o, "version 1");
}

/* ---- k-quants (Q4_K, Q6_K) ---- */

/* Super-block b of 256 values as the GGUF spec lays it out, built by an
 * encoder written from the spec (the inverse of the decoder under test):
 * Q4_K: 8 sub-blocks j of 32 with 6-bit scale sc[j] and min m[j]; chunk c
 * of 64 values holds sub-block 2c in the low nibbles of qs[32c .. 32c+31]
 * and 2c+1 in the high ones. value = d sc[j] q - dmin m[j]. */
static float q4k_make(uint8_t *blk, int b, int i) { /* i < 0: encode the whole block */
    float d = 0.25f * (float)(b + 1), dmin = 0.125f;
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) sc[j] = (j * 9 + b * 5 + 3) % 64, m[j] = (j * 13 + b * 7 + 1) % 64;
    if (i >= 0) {
        int j = i / 32, l = i % 32, q = (l * 7 + j * 3 + b) % 16;
        return d * (float)sc[j] * (float)q - dmin * (float)m[j];
    }
    uint16_t dh = pgd_f32_to_f16(d), mh = pgd_f32_to_f16(dmin);
    memcpy(blk, &dh, 2);
    memcpy(blk + 2, &mh, 2);
    uint8_t *s = blk + 4, *qs = blk + 16;
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) s[j] = (uint8_t)sc[j], s[j + 4] = (uint8_t)m[j];
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
        s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
        s[j] |= (uint8_t)((m[j] >> 4) << 6);
    }
    memset(qs, 0, 128);
    for (int v = 0; v < 256; v++) {
        int j = v / 32, l = v % 32, q = (l * 7 + j * 3 + b) % 16, c = j / 2;
        qs[32 * c + l] |= (uint8_t)(j % 2 ? q << 4 : q);
    }
    return 0;
}

/* Q6_K: halves h of 128 values; in a half, quarter k (32 values, l < 32)
 * has its low 4 bits in ql[64h + l + 32 (k & 1)] (low nibble for k < 2, high
 * for k >= 2), its top 2 bits in qh[32h + l] at bit 2k, and scale
 * sc[8h + l / 16 + 2k] (16 int8 scales, one per 16 values). value =
 * d sc (q - 32), q in 0..63. */
static float q6k_make(uint8_t *blk, int b, int i) {
    float d = 0.0625f * (float)(b + 1);
    int8_t sc[16];
    for (int s = 0; s < 16; s++) sc[s] = (int8_t)((s * 11 + b * 3) % 128 - 64);
    if (i >= 0) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32, q = (i * 5 + b) % 64;
        return d * (float)sc[8 * h + l / 16 + 2 * k] * (float)(q - 32);
    }
    memset(blk, 0, 210);
    uint8_t *ql = blk, *qh = blk + 128;
    memcpy(blk + 192, sc, 16);
    uint16_t dh = pgd_f32_to_f16(d);
    memcpy(blk + 208, &dh, 2);
    for (int v = 0; v < 256; v++) {
        int h = v / 128, k = (v % 128) / 32, l = v % 32, q = (v * 5 + b) % 64;
        ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)(k < 2 ? q & 0xF : (q & 0xF) << 4);
        qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
    }
    return 0;
}

/* A GGUF file with one k-quant tensor "k" [ne0, rows_claimed] whose data
 * holds `rows` super-blocks (cut short by `cut` bytes). */
static gbuf kquant_file(int type, uint64_t ne0, int rows_claimed, int rows, size_t cut) {
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 1);
    put_u64(&b, 1);
    put_key(&b, "general.architecture", PGD_GGUF_STRING);
    put_str(&b, "test");
    put_str(&b, "k");
    put_u32(&b, 2);
    put_u64(&b, ne0);
    put_u64(&b, (uint64_t)rows_claimed);
    put_u32(&b, (uint32_t)type);
    put_u64(&b, 0);
    while (b.n % 32) put(&b, "\0", 1);
    size_t bs = type == PGD_GGML_Q4_K ? 144 : 210;
    uint8_t blk[210];
    for (int r = 0; r < rows; r++) {
        if (type == PGD_GGML_Q4_K) q4k_make(blk, r, -1);
        else q6k_make(blk, r, -1);
        put(&b, blk, bs);
    }
    b.n -= cut;
    return b;
}

/* Q4_K and Q6_K tensors read and dequantized exactly as the spec's encoding
 * says (every value of 3 super-blocks with distinct scales, mins and
 * quants); sizes 144 and 210 bytes per 256 values. */
static void test_kquants(void) {
    static const int types[] = {PGD_GGML_Q4_K, PGD_GGML_Q6_K};
    for (int t = 0; t < 2; t++) {
        gbuf b = kquant_file(types[t], 256, 3, 3, 0);
        pgd_gguf *g = open_bytes(b.p, b.n, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        const pgd_gguf_tensor *k = pgd_gguf_find_tensor(g, "k");
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_EQUAL(k->type, types[t]);
        CU_ASSERT_EQUAL(k->nbytes, 3 * (t ? 210 : 144));
        CU_ASSERT_STRING_EQUAL(pgd_gguf_type_name(types[t]), t ? "Q6_K" : "Q4_K");
        float v[768];
        CU_ASSERT_EQUAL(pgd_gguf_tensor_to_f32(k, v), PGD_OK);
        int bad = 0;
        for (int i = 0; i < 768; i++) {
            float want = t ? q6k_make(NULL, i / 256, i % 256) : q4k_make(NULL, i / 256, i % 256);
            bad += v[i] != want;
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(pgd_dtype_bytes(t ? PGD_Q6_K : PGD_Q4_K, 512), t ? 420 : 288);
        pgd_gguf_close(g);
        free(b.p);
    }
}

/* Damaged k-quant tensors: a row that is not whole super-blocks, data cut
 * short by one byte, more rows claimed than the data holds. */
static void test_kquant_defects(void) {
    static const int types[] = {PGD_GGML_Q4_K, PGD_GGML_Q6_K};
    for (int t = 0; t < 2; t++) {
        gbuf b = kquant_file(types[t], 128, 4, 2, 0); /* rows of half a super-block */
        expect_fail(b.p, b.n, PGD_ERR_FORMAT,
                    t ? "is Q6_K but its row length 128 is not a multiple of the block size 256"
                      : "is Q4_K but its row length 128 is not a multiple of the block size 256");
        free(b.p);
        b = kquant_file(types[t], 256, 2, 2, 1); /* truncated */
        expect_fail(b.p, b.n, PGD_ERR_FORMAT, "tensor 'k' data");
        free(b.p);
        b = kquant_file(types[t], 256, 3, 2, 0); /* a block count the data does not hold */
        expect_fail(b.p, b.n, PGD_ERR_FORMAT, "lies past the end of the file");
        free(b.p);
    }
}

/* ---- damaged copies of the real file ---- */

static void test_corrupt_header(void) {
    size_t n;
    uint8_t *b = tiny_bytes(&n);
    uint8_t *c = malloc(n);
    memcpy(c, b, n); memcpy(c, "GGUX", 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "not a GGUF file");
    memcpy(c, b, n); c[4] = 1;
    expect_fail(c, n, PGD_ERR_FORMAT, "version 1");
    memcpy(c, b, n); c[4] = 99;
    expect_fail(c, n, PGD_ERR_FORMAT, "version 99");
    memcpy(c, b, n); c[4] = 0; c[7] = 3;
    expect_fail(c, n, PGD_ERR_FORMAT, "big-endian");
    memcpy(c, b, n); memset(c + 8, 0xff, 8); /* n_tensors = 2^64 - 1 */
    expect_fail(c, n, PGD_ERR_FORMAT, "tensors");
    memcpy(c, b, n); c[16 + 5] = 1; /* n_kv = 2^40 + 18 */
    expect_fail(c, n, PGD_ERR_FORMAT, "metadata entries");
    expect_fail(c, 0, PGD_ERR_FORMAT, "too small");
    free(c);
    free(b);
}

static void test_corrupt_truncated(void) {
    size_t n;
    uint8_t *b = tiny_bytes(&n);
    static const struct { size_t len; const char *needle; } cuts[] = {
        {3, "too small"},                  /* inside the magic */
        {6, "GGUF version"},               /* inside the version */
        {10, "tensor count"},              /* inside the counts */
        {20, "metadata count"},
        {24, "more than the file (24 bytes) can hold"}, /* counts vs size */
        {500, "more than the file (500 bytes) can hold"},
        {700, "key 'tokenizer.ggml.tokens' is an array of 32000"}, /* kv section */
        {300000, "key 'tokenizer.ggml.tokens'"},
        {723709, "the name of tensor 0"},  /* kv section ends here */
        {723730, "the name of tensor 0 has length 17"},
        {723750, "tensor 'token_embd.weight'"}, /* tensor infos */
        {724300, "the name of tensor 10 needs 8 bytes at offset 724295"},
        {724330, "truncated: tensor 'output_norm.weight' needs 8 bytes"},
        {724398 + 4, "tensor 'token_embd.weight' data"}, /* data section */
        {1000000, "tensor 'token_embd.weight' data [offset 0, 512000 bytes]"},
        {1300000, "tensor 'output.weight' data [offset 514144, 512000 bytes]"},
        {TINY_SIZE - 1, "lies past the end of the file"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_fail(b, cuts[i].len, PGD_ERR_FORMAT, cuts[i].needle);
    free(b);
}

static void test_corrupt_tensor_info(void) {
    size_t n;
    uint8_t *b = tiny_bytes(&n);
    uint8_t *c = malloc(n);
    /* output.weight is the last tensor: name, u32 n_dims=2, 2 x u64, u32 type, u64 offset. */
    size_t ow = find_lp_str(b, n, 723709, "output.weight");
    memcpy(c, b, n);
    uint64_t off = 1ull << 40;
    memcpy(c + ow + 4 + 16 + 4, &off, 8);
    expect_fail(c, n, PGD_ERR_FORMAT,
                "tensor 'output.weight' data [offset 1099511627776, 512000 bytes] lies past the "
                "end of the file (1750560 bytes");
    memcpy(c, b, n);
    off = 514144 + 32;
    memcpy(c + ow + 4 + 16 + 4, &off, 8); /* data would end 32 bytes past the file */
    expect_fail(c, n, PGD_ERR_FORMAT, "tensor 'output.weight' data [offset 514176");
    memcpy(c, b, n);
    off = 514144 + 8;
    memcpy(c + ow + 4 + 16 + 4, &off, 8);
    expect_fail(c, n, PGD_ERR_FORMAT, "not a multiple of the alignment 32");
    size_t te = find_lp_str(b, n, 723709, "token_embd.weight");
    memcpy(c, b, n);
    uint32_t ty = 99;
    memcpy(c + te + 4 + 16, &ty, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "tensor 'token_embd.weight' has ggml type 99");
    memcpy(c, b, n);
    uint64_t dim = 0;
    memcpy(c + te + 4 + 8, &dim, 8);
    expect_fail(c, n, PGD_ERR_FORMAT, "tensor 'token_embd.weight' has dimension 1 = 0");
    memcpy(c, b, n);
    uint32_t nd = 7;
    memcpy(c + te, &nd, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "tensor 'token_embd.weight' has 7 dimensions");
    free(c);
    free(b);
}

static void test_corrupt_metadata(void) {
    size_t n;
    uint8_t *b = tiny_bytes(&n);
    uint8_t *c = malloc(n);
    /* Rename general.file_type (u32 = 1, same key length) to general.alignment. */
    size_t ft = find_lp_str(b, n, 24, "general.file_type");
    uint32_t al;
    memcpy(c, b, n);
    memcpy(c + ft - 17, "general.alignment", 17);
    al = 24;
    memcpy(c + ft + 4, &al, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "general.alignment = 24 is not a power of two");
    al = 64; /* blk.0.ffn_norm.weight sits at 514080, not a multiple of 64 */
    memcpy(c + ft + 4, &al, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "not a multiple of the alignment 64");
    al = 1; /* valid: data starts right after the tensor infos */
    memcpy(c + ft + 4, &al, 4);
    char *path;
    pgd_gguf *g = open_bytes(c, n, &path);
    if (g) {
        CU_ASSERT_EQUAL(pgd_gguf_alignment(g), 1);
        CU_ASSERT_EQUAL(pgd_gguf_data_offset(g), 724398);
        pgd_gguf_close(g);
    }
    unlink(path);
    free(path);
    memcpy(c, b, n);
    uint32_t ty = 42; /* unknown value type for general.file_type */
    memcpy(c + ft, &ty, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "key 'general.file_type' has unknown value type 42");
    /* tokenizer.ggml.tokens: u32 elem type, u64 count. */
    size_t tk = find_lp_str(b, n, 24, "tokenizer.ggml.tokens");
    memcpy(c, b, n);
    uint64_t cnt = 1ull << 60;
    memcpy(c + tk + 4 + 4, &cnt, 8);
    expect_fail(c, n, PGD_ERR_FORMAT, "key 'tokenizer.ggml.tokens' is an array of");
    memcpy(c, b, n);
    uint64_t slen = 1ull << 50; /* first token's string length */
    memcpy(c + tk + 4 + 4 + 8, &slen, 8);
    expect_fail(c, n, PGD_ERR_FORMAT, "key 'tokenizer.ggml.tokens' has length 1125899906842624 "
                "at offset 563, past the end of the file (1750560 bytes) (array element 0)");
    memcpy(c, b, n);
    ty = 13;
    memcpy(c + tk + 4, &ty, 4);
    expect_fail(c, n, PGD_ERR_FORMAT, "unknown element type 13");
    memcpy(c, b, n);
    uint64_t klen = 1ull << 62; /* the first key's length */
    memcpy(c + 24, &klen, 8);
    expect_fail(c, n, PGD_ERR_FORMAT, "metadata entry 0");
    free(c);
    free(b);
}

static void test_missing_file(void) {
    pgd_gguf *g = (pgd_gguf *)1;
    const char *p = "/nonexistent/dir/model.gguf";
    CU_ASSERT_EQUAL(pgd_gguf_open(p, &g), PGD_ERR_IO);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), p));
    CU_ASSERT_EQUAL(pgd_gguf_open("/tmp", &g), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/tmp"));
    CU_ASSERT_EQUAL(pgd_gguf_open(NULL, &g), PGD_ERR_INVALID);
}

/* Truncations at many lengths and random byte flips in the header sections:
 * every open returns OK or FORMAT and never crashes (run under ASan). */
static void test_fuzz(void) {
    size_t n;
    uint8_t *b = tiny_bytes(&n);
    uint8_t *c = malloc(n);
    uint64_t s = 0x1234567;
    int ok = 0, fmt = 0, other = 0;
    for (int it = 0; it < 160; it++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t len;
        memcpy(c, b, n);
        if (it < 60) {
            len = it < 30 ? (size_t)(s % 800) : (size_t)(s % n);
        } else {
            len = n;
            int flips = 1 + (int)(s % 4);
            for (int k = 0; k < flips; k++) {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                size_t at = k % 2 ? (size_t)(s % 600) : (size_t)((s >> 8) % TINY_DATA_START);
                c[at] ^= (uint8_t)(1u << (s >> 40) % 8);
            }
        }
        char *path = pgd_test_write_temp(c, len, ".gguf");
        pgd_gguf *g = NULL;
        pgd_status st = pgd_gguf_open(path, &g);
        if (st == PGD_OK) {
            ok++;
            for (int64_t i = 0; i < pgd_gguf_n_tensors(g); i++) {
                const pgd_gguf_tensor *t = pgd_gguf_tensor_at(g, i);
                volatile uint8_t last = ((const uint8_t *)t->data)[t->nbytes - 1];
                (void)last;
            }
            pgd_gguf_close(g);
        } else if (st == PGD_ERR_FORMAT && strstr(pgd_last_error(), path)) {
            fmt++;
        } else {
            other++;
            fprintf(stderr, "\n  fuzz %d: status %d: %s\n", it, st, pgd_last_error());
        }
        unlink(path);
        free(path);
    }
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT(fmt >= 60); /* every truncation fails */
    free(c);
    free(b);
}

static CU_TestInfo tiny_tests[] = {
    {"metadata", test_tiny_metadata},
    {"lookup errors", test_tiny_lookup_errors},
    {"tensors", test_tiny_tensors},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo synth_tests[] = {
    {"v2 file, all value types, Q8_0/BF16", test_synthetic_v2},
    {"defects", test_synthetic_defects},
    {"Q4_K, Q6_K dequantized as the spec encodes", test_kquants},
    {"damaged Q4_K, Q6_K tensors", test_kquant_defects},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo corrupt_tests[] = {
    {"header", test_corrupt_header},
    {"truncated", test_corrupt_truncated},
    {"tensor info", test_corrupt_tensor_info},
    {"metadata", test_corrupt_metadata},
    {"missing file", test_missing_file},
    {"fuzz", test_fuzz},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "gguf: tiny llama-2", .pTests = tiny_tests},
    {.pName = "gguf: synthetic", .pTests = synth_tests},
    {.pName = "gguf: corrupt files", .pTests = corrupt_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
