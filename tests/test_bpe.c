/* test_bpe.c - byte-level BPE against Hugging Face tokenizers' own
 * encodings: tests/data/smollm2_tokenizer_goldens.jsonl (the SmolLM2
 * tokenizer.json, 220 strings) and the GPT-2, Llama-3 and Qwen2
 * pre-tokenizers on SmolLM2's vocabulary (tests/data/
 * smollm2_tokenizer_{gpt2,llama3,qwen2,options}pre_goldens.jsonl, whose header names
 * the change made to tokenizer.json); all made by tests/tokenizer_ref/
 * make_goldens.js (an entry taken from the shared ShareGPT file names its
 * row, and its text is read from ../shared/data). Every golden must match
 * exactly, decode(encode(s)) == s
 * (the variant "options" covers Digits grouping digits, ByteLevel's
 * add_prefix_space and added tokens' lstrip/rstrip), the same vocabulary
 * from GGUF metadata must encode the same, random byte
 * strings (invalid UTF-8 included) round-trip, and bad files fail clearly. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "pagoda/tokenizer.h"
#include "test_util.h"

#define SMOL "tokenizers/smollm2_tokenizer.json"
#define SHAREGPT "traces/sharegpt_v3_filtered_500.json"

typedef struct golden {
    char *text;
    int32_t *ids;
    int n;
} golden;

/* Read a golden file: its "# variant-json:" header (malloc'd, or NULL) and
 * its entries. */
/* The text of a {"sharegpt": ROW} entry: that row's first human turn in the
 * shared ShareGPT file (the goldens keep the row index, not the text). */
static char *sharegpt_turn(json_t *rows, json_int_t row) {
    json_t *conv = json_object_get(json_array_get(rows, (size_t)row), "conversations"), *c;
    size_t i;
    json_array_foreach(conv, i, c) if (!strcmp(json_string_value(json_object_get(c, "from")), "human")) return strdup(
        json_string_value(json_object_get(c, "value")));
    return NULL;
}

static golden *read_goldens(const char *path, int *count, char **variant) {
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    json_t *rows = NULL; /* the ShareGPT file, loaded on the first {"sharegpt": ROW} */
    golden *g = NULL;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    if (variant) *variant = NULL;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#') {
            const char *k = "# variant-json: ";
            if (variant && !strncmp(line, k, strlen(k))) *variant = strdup(line + strlen(k));
            continue;
        }
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        json_t *ids = json_object_get(o, "ids");
        g = realloc(g, (size_t)(n + 1) * sizeof *g);
        json_t *row = json_object_get(o, "sharegpt");
        if (row && !rows) {
            json_error_t e2;
            rows = json_load_file(pgd_test_data(SHAREGPT), 0, &e2);
            CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
        }
        g[n].text =
            row ? sharegpt_turn(rows, json_integer_value(row)) : strdup(json_string_value(json_object_get(o, "text")));
        CU_ASSERT_PTR_NOT_NULL_FATAL(g[n].text);
        g[n].n = (int)json_array_size(ids);
        g[n].ids = malloc(((size_t)g[n].n + 1) * sizeof *g[n].ids);
        for (int i = 0; i < g[n].n; i++) g[n].ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
        n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    json_decref(rows);
    *count = n;
    return g;
}

static void free_goldens(golden *g, int n) {
    for (int i = 0; i < n; i++) {
        free(g[i].text);
        free(g[i].ids);
    }
    free(g);
}

static pgd_tokenizer *load_hf(const char *path) {
    pgd_tokenizer *t = NULL;
    pgd_status st = pgd_tokenizer_load_hf(path, &t);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    return t;
}

/* Every golden encodes exactly and decodes back; returns the mismatches. */
static int check_goldens(const pgd_tokenizer *t, const golden *g, int n, const char *what, int lossless) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        int m = -1;
        CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, g[i].text, 0, 0, &ids, &m), PGD_OK);
        int same = m == g[i].n && (m == 0 || memcmp(ids, g[i].ids, (size_t)m * sizeof *ids) == 0);
        if (!same && bad++ < 3) {
            fprintf(stderr, "\n  %s: golden %d \"%.60s\": got %d tokens:", what, i, g[i].text, m);
            for (int k = 0; k < m && k < 24; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n    want %d:", g[i].n);
            for (int k = 0; k < g[i].n && k < 24; k++) fprintf(stderr, " %d", g[i].ids[k]);
        }
        /* the pieces give the text back (decode_all leaves BOS/EOS out) */
        size_t len = strlen(g[i].text), at = 0;
        int back = 1;
        for (int k = 0; k < m && back; k++) {
            const char *p = pgd_tokenizer_decode(t, k ? ids[k - 1] : -1, ids[k]);
            size_t pl = p ? strlen(p) : 0;
            back = p && at + pl <= len && !memcmp(g[i].text + at, p, pl);
            at += pl;
        }
        CU_ASSERT(!lossless || (back && at == len));
        if (lossless && !(back && at == len)) fprintf(stderr, "\n  %s: golden %d does not decode back", what, i);
        free(ids);
    }
    CU_ASSERT_EQUAL(bad, 0);
    return bad;
}

static void test_smollm2_goldens(void) {
    int n;
    golden *g = read_goldens("tests/data/smollm2_tokenizer_goldens.jsonl", &n, NULL);
    CU_ASSERT(n >= 200);
    pgd_tokenizer *t = load_hf(pgd_test_data(SMOL));
    CU_ASSERT_EQUAL(pgd_tokenizer_vocab_size(t), 49152);
    CU_ASSERT(pgd_tokenizer_is_byte_level(t));
    check_goldens(t, g, n, "smollm2", 1);
    /* HF's default (add_special_tokens) adds nothing for SmolLM2: neither does add_bos */
    int32_t *ids = NULL;
    int m = 0;
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(t, "Hello", 1, 0, &ids, &m), PGD_OK);
    CU_ASSERT(m == 1 && ids[0] == 19556);
    free(ids);
    /* special tokens written in text are their ids; decoding gives the text */
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(t, "<|im_start|>user<|im_end|>", 0, 1, &ids, &m), PGD_OK);
    CU_ASSERT(m == 4 && ids[0] == 1 && ids[2] == 2 && ids[3] == pgd_tokenizer_eos(t));
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, -1, 1), "<|im_start|>");
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, -1, 216), " "); /* "Ġ" */
    free(ids);
    pgd_tokenizer_destroy(t);
    free_goldens(g, n);
}

/* SmolLM2's tokenizer.json with the variant's changes, in a temp file. */
static char *variant_json(const char *variant) {
    json_error_t err;
    json_t *root = json_load_file(pgd_test_data(SMOL), 0, &err), *v = json_loads(variant, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    json_object_set(root, "pre_tokenizer", json_object_get(v, "pre_tokenizer"));
    if (json_is_true(json_object_get(v, "ignore_merges")))
        json_object_set_new(json_object_get(root, "model"), "ignore_merges", json_true());
    const char *id;
    json_t *flag, *e;
    size_t i;
    json_object_foreach(json_object_get(v, "strip"), id, flag) /* {"1": "lstrip"}: that added token's flag */
        json_array_foreach(json_object_get(root, "added_tokens"), i, e)
            if (json_integer_value(json_object_get(e, "id")) == atoi(id))
                json_object_set_new(e, json_string_value(flag), json_true());
    char *s = json_dumps(root, JSON_COMPACT);
    char *path = pgd_test_write_temp(s, strlen(s), ".json");
    free(s);
    json_decref(root);
    json_decref(v);
    return path;
}

static void check_family(const char *file, const char *what) {
    int n;
    char *variant = NULL;
    golden *g = read_goldens(file, &n, &variant);
    CU_ASSERT_PTR_NOT_NULL_FATAL(variant);
    CU_ASSERT(n >= 100);
    char *path = variant_json(variant);
    pgd_tokenizer *t = load_hf(path);
    /* lstrip/rstrip swallow whitespace: that variant does not decode back */
    check_goldens(t, g, n, what, strcmp(what, "options") != 0);
    pgd_tokenizer_destroy(t);
    unlink(path);
    free(path);
    free(variant);
    free_goldens(g, n);
}

static void test_gpt2_pre(void) { check_family("tests/data/smollm2_tokenizer_gpt2pre_goldens.jsonl", "gpt2"); }
static void test_llama3_pre(void) { check_family("tests/data/smollm2_tokenizer_llama3pre_goldens.jsonl", "llama3"); }
static void test_options(void) { check_family("tests/data/smollm2_tokenizer_optionspre_goldens.jsonl", "options"); }
static void test_qwen2_pre(void) { check_family("tests/data/smollm2_tokenizer_qwen2pre_goldens.jsonl", "qwen2"); }

/* ---- GGUF: the same vocabulary as tokenizer.ggml.* metadata ---- */

typedef struct gbuf { unsigned char *p; size_t n, cap; } gbuf;
static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
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

/* A GGUF holding only the tokenizer of SmolLM2's tokenizer.json. */
static char *smol_gguf(const char *pre) {
    json_error_t err;
    json_t *root = json_load_file(pgd_test_data(SMOL), 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab"),
           *merges = json_object_get(json_object_get(root, "model"), "merges"), *v;
    size_t n = json_object_size(vocab), i;
    const char **toks = calloc(n, sizeof *toks);
    const char *key;
    json_object_foreach(vocab, key, v) toks[json_integer_value(v)] = key;
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0); /* tensors */
    put_u64(&b, 7); /* kv */
    put_str(&b, "tokenizer.ggml.model");
    put_u32(&b, 8);
    put_str(&b, "gpt2");
    put_str(&b, "tokenizer.ggml.pre");
    put_u32(&b, 8);
    put_str(&b, pre);
    put_str(&b, "tokenizer.ggml.tokens");
    put_u32(&b, 9);
    put_u32(&b, 8);
    put_u64(&b, n);
    for (i = 0; i < n; i++) put_str(&b, toks[i]);
    put_str(&b, "tokenizer.ggml.token_type");
    put_u32(&b, 9);
    put_u32(&b, 5);
    put_u64(&b, n);
    for (i = 0; i < n; i++) put_u32(&b, i < 17 ? 3 : 1); /* SmolLM2's 17 added tokens are ids 0..16 */
    put_str(&b, "tokenizer.ggml.merges");
    put_u32(&b, 9);
    put_u32(&b, 8);
    put_u64(&b, json_array_size(merges));
    json_array_foreach(merges, i, v) put_str(&b, json_string_value(v));
    put_str(&b, "tokenizer.ggml.bos_token_id");
    put_u32(&b, 4);
    put_u32(&b, 1);
    put_str(&b, "tokenizer.ggml.eos_token_id");
    put_u32(&b, 4);
    put_u32(&b, 2);
    char *path = pgd_test_write_temp(b.p, b.n, ".gguf");
    free(b.p);
    free(toks);
    json_decref(root);
    return path;
}

static void test_gguf_same(void) {
    int n;
    golden *g = read_goldens("tests/data/smollm2_tokenizer_goldens.jsonl", &n, NULL);
    char *path = smol_gguf("smollm");
    pgd_gguf *gg = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(path, &gg), PGD_OK);
    pgd_tokenizer *t = NULL;
    pgd_status st = pgd_tokenizer_from_gguf(gg, &t);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    CU_ASSERT(pgd_tokenizer_is_byte_level(t));
    CU_ASSERT_EQUAL(pgd_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(pgd_tokenizer_eos(t), 2);
    check_goldens(t, g, n, "gguf smollm", 1);
    pgd_tokenizer_destroy(t);
    pgd_gguf_close(gg);
    unlink(path);
    free(path);
    /* an unknown pre-tokenizer name is refused, naming the known ones */
    path = smol_gguf("mystery");
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(path, &gg), PGD_OK);
    CU_ASSERT_EQUAL(pgd_tokenizer_from_gguf(gg, &t), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "tokenizer.ggml.pre 'mystery' is not supported"));
    pgd_gguf_close(gg);
    unlink(path);
    free(path);
    free_goldens(g, n);
}

/* ---- round trips ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* decode_all(encode(s)) == s (s has no BOS/EOS text in it) */
static void round_trip(const pgd_tokenizer *t, const char *s) {
    int32_t *ids = NULL;
    int m = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, s, 0, 0, &ids, &m), PGD_OK);
    char *back = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_decode_all(t, -1, ids, m, &back), PGD_OK);
    CU_ASSERT(strcmp(back, s) == 0);
    free(back);
    free(ids);
}

static void test_random_bytes(void) {
    pgd_tokenizer *t = load_hf(pgd_test_data(SMOL));
    /* the bytes SmolLM2's vocabulary has no token for: HF drops them (BPE
     * without unk_token), so does Pagoda; every other byte round-trips */
    static const unsigned char missing[] = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2,
                                            0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
    int ok[256];
    for (int c = 0; c < 256; c++) ok[c] = c != 0 && !memchr(missing, c, sizeof missing);
    int32_t *ids = NULL;
    int m = 0;
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(t, "a\x04\xff\xfe", 0, 0, &ids, &m), PGD_OK);
    CU_ASSERT(m == 1 && ids[0] == 81); /* "a" */
    free(ids);
    char buf[400];
    for (int it = 0; it < 600; it++) {
        int len = (int)(next_u32() % 300);
        int mode = it % 3; /* any byte; mostly high bytes (invalid UTF-8); ASCII with specials */
        for (int i = 0; i < len; i++) {
            uint32_t r = next_u32();
            do buf[i] = mode == 0 ? (char)(1 + r % 255) : mode == 1 ? (char)(0x80 + r % 128) : (char)(1 + r % 127);
            while (!ok[(unsigned char)buf[i]] && (r = next_u32()));
        }
        buf[len] = '\0';
        if (mode == 2 && len > 20) memcpy(buf + len / 2, "<|im_end|>", 10);
        round_trip(t, buf);
    }
    round_trip(t, "\x80\xbf invalid \xc3 utf-8 \xe2\x82 \xf0\x9f\x98 truncated");
    round_trip(t, "\xed\xa0\x80 surrogate, \xe0\x80\xaf overlong, \xf4\x90\x80\x80 past U+10FFFF");
    pgd_tokenizer_destroy(t);
}

/* A long prompt (tens of thousands of tokens) encodes and round-trips: the
 * merge loop is O(n log n) per piece, so a whitespace run of 20000 bytes
 * (one piece) is no problem either. */
static void test_long_text(void) {
    pgd_tokenizer *t = load_hf(pgd_test_data(SMOL));
    int n;
    golden *g = read_goldens("tests/data/smollm2_tokenizer_goldens.jsonl", &n, NULL);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(g[i].text) + 1;
    char *big = malloc(total + 20001), *p = big;
    long want = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(g[i].text);
        if (strstr(g[i].text, "<|endoftext|>")) continue; /* BOS/EOS: decode_all leaves it out */
        memcpy(p, g[i].text, l);
        p += l;
    }
    *p = '\0';
    round_trip(t, big);
    memset(big, ' ', 20000);
    big[20000] = '\0';
    int32_t *ids = NULL;
    int m = 0;
    CU_ASSERT_EQUAL(pgd_tokenizer_encode(t, big, 0, 0, &ids, &m), PGD_OK);
    CU_ASSERT(m > 0 && m < 20000);
    free(ids);
    round_trip(t, big);
    (void)want;
    free(big);
    free_goldens(g, n);
    pgd_tokenizer_destroy(t);
}

/* ---- bad files ---- */

static void expect_hf_fail(const char *json, pgd_status want, const char *needle) {
    char *path = pgd_test_write_temp(json, strlen(json), ".json");
    pgd_tokenizer *t = NULL;
    pgd_status st = pgd_tokenizer_load_hf(path, &t);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(t);
    if (!strstr(pgd_last_error(), needle)) {
        fprintf(stderr, "\n  error '%s' lacks '%s'\n", pgd_last_error(), needle);
        CU_FAIL("error message");
    }
    pgd_tokenizer_destroy(t);
    unlink(path);
    free(path);
}

static void test_bad_json(void) {
    pgd_tokenizer *t = NULL;
    CU_ASSERT_EQUAL(pgd_tokenizer_load_hf("/nonexistent/tokenizer.json", &t), PGD_ERR_IO);
    expect_hf_fail("{\"model\": ", PGD_ERR_FORMAT, "not valid JSON");
    expect_hf_fail("{\"model\": {\"type\": \"BPE\"}}", PGD_ERR_FORMAT, "no model.vocab");
    expect_hf_fail("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", PGD_ERR_UNSUPPORTED,
                   "model type 'WordPiece' is not supported");
    expect_hf_fail("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", PGD_ERR_FORMAT,
                   "tokens for only 1 of the 256 bytes");
    expect_hf_fail("{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"vocab\": {}, \"merges\": []}}",
                   PGD_ERR_UNSUPPORTED, "normalizer 'NFC' is not supported");
    expect_hf_fail("{\"model\": {\"vocab\": {\"a\": -3}, \"merges\": []}}", PGD_ERR_FORMAT, "is not a token id");
    /* a merge naming pieces that are not tokens */
    json_error_t err;
    json_t *root = json_load_file(pgd_test_data(SMOL), 0, &err);
    json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"), json_string("zzqx yyqx"));
    char *s = json_dumps(root, JSON_COMPACT);
    expect_hf_fail(s, PGD_ERR_FORMAT, "merge 48900 'zzqx yyqx': its left part is not in the vocabulary");
    free(s);
    json_array_remove(json_object_get(json_object_get(root, "model"), "merges"), 48900);
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace"));
    s = json_dumps(root, JSON_COMPACT);
    expect_hf_fail(s, PGD_ERR_UNSUPPORTED, "pre_tokenizer type 'Metaspace' is not supported");
    free(s);
    json_object_set_new(root, "pre_tokenizer",
                        json_pack("{s:s,s:{s:s},s:s}", "type", "Split", "pattern", "Regex", "(unclosed", "behavior",
                                  "Isolated"));
    s = json_dumps(root, JSON_COMPACT);
    expect_hf_fail(s, PGD_ERR_FORMAT, "regex '(unclosed' does not compile");
    free(s);
    json_decref(root);
    /* load_file picks the loader by extension and checks the vocabulary fits */
    CU_ASSERT_EQUAL(pgd_tokenizer_load_file(pgd_test_data(SMOL), 1000, &t), PGD_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "49152 tokens, more than the model's vocabulary of 1000"));
    CU_ASSERT_EQUAL(pgd_tokenizer_load_file(pgd_test_data(SMOL), 49152, &t), PGD_OK);
    pgd_tokenizer_destroy(t);
}

static CU_TestInfo golden_tests[] = {
    {"smollm2 tokenizer.json (220 goldens)", test_smollm2_goldens},
    {"gpt2 pre-tokenizer", test_gpt2_pre},
    {"llama3 pre-tokenizer (ignore_merges)", test_llama3_pre},
    {"qwen2 pre-tokenizer", test_qwen2_pre},
    {"digits grouped, prefix space, lstrip/rstrip", test_options},
    {"gguf gpt2 vocabulary", test_gguf_same},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo rt_tests[] = {
    {"random byte strings", test_random_bytes},
    {"long text", test_long_text},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo bad_tests[] = {
    {"bad tokenizer.json", test_bad_json},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "bpe: reference goldens", .pTests = golden_tests},
    {.pName = "bpe: round trips", .pTests = rt_tests},
    {.pName = "bpe: bad input", .pTests = bad_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
