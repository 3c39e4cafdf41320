/* test_tokenizer.c - the llama2.c-compatible tokenizer on real vocabularies:
 * tok512 against llama2.c's golden tokens and text, the Llama-2 32000-token
 * tokenizer.bin against known SentencePiece encodings (byte fallback
 * included) and a naive copy of run.c's encode(), the same vocabulary read
 * from GGUF metadata (identical encodings), round trips, and bad inputs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "pagoda/tokenizer.h"
#include "test_util.h"

#define TOK512 "models/stories260K/tok512.bin"
#define LLAMA2 "tokenizers/llama2_tokenizer.bin"
#define TINY_GGUF "models/tiny-random-gguf/llama-2-tiny-random.gguf"
#define GOLDEN "golden/stories260K_greedy.jsonl"

static pgd_tokenizer *load_bin(const char *rel, int vocab) {
    pgd_tokenizer *t = NULL;
    pgd_status st = pgd_tokenizer_load_llama2c(pgd_test_data(rel), vocab, &t);
    if (st != PGD_OK) fprintf(stderr, "\n  %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    return t;
}

static void expect_tokens(const pgd_tokenizer *t, const char *text, int bos, int eos,
                          const int32_t *want, int n_want) {
    int32_t *got = NULL;
    int n = -1;
    CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, text, bos, eos, &got, &n), PGD_OK);
    int same = n == n_want && (n == 0 || (want && memcmp(got, want, (size_t)n * sizeof *got) == 0));
    CU_ASSERT(same);
    if (!same) {
        fprintf(stderr, "\n  encode(\"%s\"): got", text);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(got);
}

/* decode_all(encode(text with BOS)) == text. */
static void expect_round_trip(const pgd_tokenizer *t, const char *text) {
    int32_t *ids = NULL;
    int n = 0;
    char *back = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, text, 1, 1, &ids, &n), PGD_OK);
    CU_ASSERT_EQUAL(pgd_tokenizer_decode_all(t, -1, ids, n, &back), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_STRING_EQUAL(back, text);
    free(back);
    free(ids);
}

/* ---- tok512 and the llama2.c golden outputs ---- */

static void test_tok512_encode(void) {
    pgd_tokenizer *t = load_bin(TOK512, 512);
    CU_ASSERT_EQUAL(pgd_tokenizer_vocab_size(t), 512);
    CU_ASSERT_EQUAL(pgd_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(pgd_tokenizer_eos(t), 2);
    expect_tokens(t, "Once upon a time", 1, 0, (const int32_t[]){1, 403, 407, 261, 378}, 5);
    expect_tokens(t, "Once upon a time", 0, 1, (const int32_t[]){403, 407, 261, 378, 2}, 5);
    expect_tokens(t, "", 1, 0, (const int32_t[]){1}, 1);
    expect_tokens(t, "", 0, 0, NULL, 0);
    expect_tokens(t, "", 1, 1, (const int32_t[]){1, 2}, 2);
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 1, 403), "Once");   /* space dropped */
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 403, 407), " upon");
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 5, 13), "\n");      /* <0x0A> */
    CU_ASSERT_PTR_NULL(pgd_tokenizer_decode(t, 1, 512));
    CU_ASSERT_PTR_NULL(pgd_tokenizer_decode(t, 1, -1));
    int32_t bad[] = {403, 600};
    char *s = NULL;
    CU_ASSERT_EQUAL(pgd_tokenizer_decode_all(t, 1, bad, 2, &s), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(s);
    pgd_tokenizer_destroy(t);
    pgd_tokenizer_destroy(NULL);
}

static int32_t *json_ints(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *v = malloc(((size_t)*n + 1) * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return v;
}

static void test_tok512_golden(void) {
    pgd_tokenizer *t = load_bin(TOK512, 512);
    FILE *f = fopen(pgd_test_data(GOLDEN), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[1 << 16];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        lines++;
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        const char *text = json_string_value(json_object_get(o, "text"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(prompt);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        int np, ng;
        int32_t *pt = json_ints(json_object_get(o, "prompt_tokens"), &np);
        int32_t *gt = json_ints(json_object_get(o, "greedy_new_tokens"), &ng);
        CU_ASSERT_FATAL(np >= 1 && ng >= 1);
        expect_tokens(t, prompt, 1, 0, pt, np);
        /* The continuation: new tokens printed after the last prompt token. */
        size_t plen = strlen(prompt);
        CU_ASSERT_FATAL(strncmp(text, prompt, plen) == 0);
        char *cont = NULL;
        CU_ASSERT_EQUAL(pgd_tokenizer_decode_all(t, pt[np - 1], gt, ng, &cont), PGD_OK);
        CU_ASSERT_STRING_EQUAL(cont, text + plen);
        /* The whole printed text: prompt tokens (BOS not printed) then new tokens. */
        int32_t *all = malloc((size_t)(np + ng) * sizeof *all);
        memcpy(all, pt, (size_t)np * sizeof *all);
        memcpy(all + np, gt, (size_t)ng * sizeof *all);
        char *full = NULL;
        CU_ASSERT_EQUAL(pgd_tokenizer_decode_all(t, -1, all, np + ng, &full), PGD_OK);
        CU_ASSERT_STRING_EQUAL(full, text);
        free(full);
        free(all);
        free(cont);
        free(pt);
        free(gt);
        json_decref(o);
    }
    fclose(f);
    CU_ASSERT_EQUAL(lines, 2);
    pgd_tokenizer_destroy(t);
}

/* ---- Llama-2 32000-token vocabulary ---- */

/* Expected ids without BOS; each checked against SentencePiece itself
 * (tokenizers/llama2_tokenizer.model), which agrees with llama2.c here. */
static const struct { const char *text; int n; int32_t ids[20]; } LLAMA2_CASES[] = {
    {"Hello world", 2, {15043, 3186}},
    {"Once upon a time", 4, {9038, 2501, 263, 931}},
    {"The quick brown fox jumps over the lazy dog.", 12,
     {450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889}},
    {"It's 3.14159, isn't it?", 17,
     {739, 29915, 29879, 29871, 29941, 29889, 29896, 29946, 29896, 29945, 29929, 29892, 3508,
      29915, 29873, 372, 29973}},
    {"Hello\nworld\n\n  two  spaces", 9, {15043, 13, 11526, 13, 13, 29871, 1023, 29871, 8162}},
    {"naïve café résumé", 8, {1055, 30085, 345, 274, 28059, 6896, 398, 29948}},
    {"你好，世界", 6, {29871, 30919, 31076, 30214, 30793, 30967}},
    /* byte fallback: the llama emoji U+1F999 (F0 9F A6 99) and U+1D11E are not pieces */
    {"I love 🦙 and 𝄞", 13,
     {306, 5360, 29871, 243, 162, 169, 156, 322, 29871, 243, 160, 135, 161}},
    {"龘", 4, {29871, 236, 193, 155}}, /* rare CJK: E9 BE 98 -> bytes + 3 */
    {"def f(x):\n    return x * 2\n", 13,
     {822, 285, 29898, 29916, 1125, 13, 1678, 736, 921, 334, 29871, 29906, 13}},
    {"x\ty", 3, {921, 12, 29891}},
    {"<s>", 3, {529, 29879, 29958}}, /* special-token text is plain text */
};

static const char *ROUND_TRIP[] = {
    "Hello world", " leading space", "trailing space ", "  two  spaces  ", "\n", "\n\nx\n",
    "Tabs\tand\r\nCRLF", "Punctuation: (a), [b]; {c}! \"quoted\" 'single' ~`@#$%^&*_+=|\\/<>?",
    "naïve café résumé — “smart quotes” …", "日本語のテキスト、中文文本，한국어 텍스트",
    "Emoji: 🦙🔥👍🏽 and 𝄞 (4-byte)", "Math: ∀x ∈ ℝ, x² ≥ 0", "bad utf8: \x80\xff\xc3 end",
    "<0x41> <s> </s> <unk>", "a", " ", "\xE2\x96\x81 (the SentencePiece marker)",
};

static void test_llama2_known(void) {
    pgd_tokenizer *t = load_bin(LLAMA2, 32000);
    CU_ASSERT_EQUAL(pgd_tokenizer_vocab_size(t), 32000);
    for (size_t i = 0; i < sizeof LLAMA2_CASES / sizeof LLAMA2_CASES[0]; i++) {
        int32_t want[24] = {1};
        int n = LLAMA2_CASES[i].n;
        memcpy(want + 1, LLAMA2_CASES[i].ids, (size_t)n * sizeof *want);
        expect_tokens(t, LLAMA2_CASES[i].text, 1, 0, want, n + 1);
    }
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 1, 15043), "Hello");
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 15043, 3186), " world");
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 29871, 243), "\xF0"); /* <0xF0> */
    pgd_tokenizer_destroy(t);
}

static void test_llama2_round_trip(void) {
    pgd_tokenizer *t = load_bin(LLAMA2, 32000);
    for (size_t i = 0; i < sizeof ROUND_TRIP / sizeof ROUND_TRIP[0]; i++)
        expect_round_trip(t, ROUND_TRIP[i]);
    /* A long text: 4000 sentences (the heap merge keeps this fast). */
    const char *unit = "The cat sat on the mat, naïvely. ";
    size_t ul = strlen(unit), reps = 4000;
    char *big = malloc(ul * reps + 1);
    for (size_t i = 0; i < reps; i++) memcpy(big + i * ul, unit, ul);
    big[ul * reps] = '\0';
    expect_round_trip(t, big);
    free(big);
    pgd_tokenizer_destroy(t);
}

/* A naive transcription of llama2.c run.c encode() (bsearch over the sorted
 * vocabulary, full rescan after every merge) reading tokenizer.bin itself. */
typedef struct ref_vocab { int n; char **piece; float *score; char **sorted; } ref_vocab;

static int ref_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ref_lookup(const ref_vocab *v, const char *s) {
    char *const *hit = bsearch(&s, v->sorted, (size_t)v->n, sizeof *v->sorted, ref_cmp);
    if (!hit) return -1;
    for (int i = 0; i < v->n; i++) if (v->piece[i] == *hit) return i;
    return -1;
}

static int ref_encode(const ref_vocab *v, const char *text, int *tokens) {
    int n = 0;
    char buf[128];
    size_t len = 0;
    tokens[n++] = 1;
    if (text[0]) tokens[n++] = ref_lookup(v, " ");
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) len = 0;
        buf[len++] = *c;
        buf[len] = '\0';
        if ((c[1] & 0xC0) == 0x80 && len < 4) continue;
        int id = ref_lookup(v, buf);
        if (id != -1) tokens[n++] = id;
        else for (size_t i = 0; i < len; i++) tokens[n++] = (unsigned char)buf[i] + 3;
        len = 0;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i < n - 1; i++) {
            snprintf(buf, sizeof buf, "%s%s", v->piece[tokens[i]], v->piece[tokens[i + 1]]);
            int id = ref_lookup(v, buf);
            if (id != -1 && v->score[id] > best) {
                best = v->score[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        tokens[best_idx] = best_id;
        for (int i = best_idx + 1; i < n - 1; i++) tokens[i] = tokens[i + 1];
        n--;
    }
    return n;
}

static void test_llama2_vs_reference(void) {
    size_t size;
    uint8_t *raw = pgd_test_read_file(pgd_test_data(LLAMA2), &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
    ref_vocab v = {.n = 32000};
    v.piece = malloc(32000 * sizeof *v.piece);
    v.score = malloc(32000 * sizeof *v.score);
    v.sorted = malloc(32000 * sizeof *v.sorted);
    size_t pos = 4;
    for (int i = 0; i < 32000; i++) {
        int32_t len;
        memcpy(&v.score[i], raw + pos, 4);
        memcpy(&len, raw + pos + 4, 4);
        pos += 8;
        v.piece[i] = v.sorted[i] = strndup((const char *)raw + pos, (size_t)len);
        pos += (size_t)len;
    }
    qsort(v.sorted, 32000, sizeof *v.sorted, ref_cmp);
    pgd_tokenizer *t = load_bin(LLAMA2, 32000);
    static const char *alphabet[] = {"a", "b", "e", " ", "  ", "\n", "é", "🦙", "ab", "the ",
                                     "ing", ",", "<0x41>", "<s>", "\t", "中", "1", "Ω"};
    uint64_t s = 42;
    char text[512];
    int ref[1024];
    int mismatches = 0;
    for (int it = 0; it < 150; it++) {
        size_t tl = 0;
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int parts = 1 + (int)(s % 60);
        for (int p = 0; p < parts; p++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            const char *a = alphabet[s % (sizeof alphabet / sizeof alphabet[0])];
            memcpy(text + tl, a, strlen(a));
            tl += strlen(a);
        }
        text[tl] = '\0';
        int nr = ref_encode(&v, text, ref);
        int32_t *got;
        int ng;
        CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, text, 1, 0, &got, &ng), PGD_OK);
        int same = ng == nr;
        for (int i = 0; same && i < ng; i++) same = got[i] == ref[i];
        if (!same && mismatches++ < 3) fprintf(stderr, "\n  mismatch on \"%s\"\n", text);
        free(got);
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    pgd_tokenizer_destroy(t);
    for (int i = 0; i < 32000; i++) free(v.piece[i]);
    free(v.piece);
    free(v.score);
    free(v.sorted);
    free(raw);
}

/* ---- the same vocabulary from GGUF metadata ---- */

static void test_gguf_vocab(void) {
    pgd_gguf *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(pgd_test_data(TINY_GGUF), &g), PGD_OK);
    pgd_tokenizer *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_from_gguf(g, &t), PGD_OK);
    pgd_gguf_close(g); /* the tokenizer keeps its own copy */
    pgd_tokenizer *ref = load_bin(LLAMA2, 32000);
    CU_ASSERT_EQUAL(pgd_tokenizer_vocab_size(t), 32000);
    CU_ASSERT_EQUAL(pgd_tokenizer_bos(t), 1);
    CU_ASSERT_EQUAL(pgd_tokenizer_eos(t), 2);
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 1, 15043), "Hello"); /* "\u2581Hello" */
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 0, 29871), " ");
    CU_ASSERT_STRING_EQUAL(pgd_tokenizer_decode(t, 0, 13), "\n");
    for (size_t i = 0; i < sizeof ROUND_TRIP / sizeof ROUND_TRIP[0]; i++) {
        int32_t *a, *b;
        int na, nb;
        CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(t, ROUND_TRIP[i], 1, 0, &a, &na), PGD_OK);
        CU_ASSERT_EQUAL_FATAL(pgd_tokenizer_encode(ref, ROUND_TRIP[i], 1, 0, &b, &nb), PGD_OK);
        CU_ASSERT(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
        free(a);
        free(b);
        expect_round_trip(t, ROUND_TRIP[i]);
    }
    for (size_t i = 0; i < sizeof LLAMA2_CASES / sizeof LLAMA2_CASES[0]; i++)
        expect_round_trip(t, LLAMA2_CASES[i].text);
    pgd_tokenizer_destroy(ref);
    pgd_tokenizer_destroy(t);
}

/* Patch a copy of the tiny GGUF right after the length-prefixed string `key`. */
static size_t find_key_end(const uint8_t *b, size_t n, const char *key) {
    uint8_t pat[128];
    uint64_t l = strlen(key);
    memcpy(pat, &l, 8);
    memcpy(pat + 8, key, l);
    const uint8_t *hit = memmem(b, n, pat, l + 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hit);
    return (size_t)(hit - b) + l + 8;
}

static void expect_gguf_tok_fail(const uint8_t *bytes, size_t n, pgd_status want,
                                 const char *needle) {
    char *path = pgd_test_write_temp(bytes, n, ".gguf");
    pgd_gguf *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_gguf_open(path, &g), PGD_OK);
    pgd_tokenizer *t = (pgd_tokenizer *)1;
    CU_ASSERT_EQUAL(pgd_tokenizer_from_gguf(g, &t), want);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), needle));
    if (!strstr(pgd_last_error(), needle)) fprintf(stderr, "\n  %s\n", pgd_last_error());
    pgd_gguf_close(g);
    unlink(path);
    free(path);
}

static void test_gguf_bad_vocab(void) {
    size_t n;
    uint8_t *b = pgd_test_read_file(pgd_test_data(TINY_GGUF), &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    uint8_t *c = malloc(n);
    size_t m = find_key_end(b, n, "tokenizer.ggml.model"); /* u32 type, u64 len, "llama" */
    memcpy(c, b, n);
    memcpy(c + m + 12, "gpt2x", 5);
    expect_gguf_tok_fail(c, n, PGD_ERR_UNSUPPORTED, "'gpt2x'");
    memcpy(c, b, n);
    memcpy(c + m - 5, "mudel", 5); /* key renamed: tokenizer.ggml.mudel */
    expect_gguf_tok_fail(c, n, PGD_ERR_FORMAT, "'tokenizer.ggml.model' is missing");
    size_t bos = find_key_end(b, n, "tokenizer.ggml.bos_token_id"); /* u32 type, u32 value */
    memcpy(c, b, n);
    uint32_t v = 40000;
    memcpy(c + bos + 4, &v, 4);
    expect_gguf_tok_fail(c, n, PGD_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 40000");
    size_t sc = find_key_end(b, n, "tokenizer.ggml.scores"); /* u32 9, u32 elem type */
    memcpy(c, b, n);
    v = 4; /* scores as an array of u32 */
    memcpy(c + sc + 4, &v, 4);
    expect_gguf_tok_fail(c, n, PGD_ERR_FORMAT, "tokenizer.ggml.scores");
    free(c);
    free(b);
}

/* ---- bad tokenizer.bin input ---- */

static void expect_bin_fail(const void *bytes, size_t n, int vocab, pgd_status want,
                            const char *needle) {
    char *path = pgd_test_write_temp(bytes, n, ".bin");
    pgd_tokenizer *t = (pgd_tokenizer *)1;
    CU_ASSERT_EQUAL(pgd_tokenizer_load_llama2c(path, vocab, &t), want);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), needle));
    if (!strstr(pgd_last_error(), needle)) fprintf(stderr, "\n  %s\n", pgd_last_error());
    unlink(path);
    free(path);
}

static void test_bad_bin(void) {
    pgd_tokenizer *t = (pgd_tokenizer *)1;
    const char *missing = "/nonexistent/tokenizer.bin";
    CU_ASSERT_EQUAL(pgd_tokenizer_load_llama2c(missing, 512, &t), PGD_ERR_IO);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), missing));
    CU_ASSERT_EQUAL(pgd_tokenizer_load_llama2c(pgd_test_data(TOK512), 0, &t), PGD_ERR_INVALID);

    size_t n;
    uint8_t *b = pgd_test_read_file(pgd_test_data(TOK512), &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL_FATAL(n, 6227);
    expect_bin_fail(b, 0, 512, PGD_ERR_FORMAT, "truncated");
    expect_bin_fail(b, 2, 512, PGD_ERR_FORMAT, "truncated");
    expect_bin_fail(b, 4, 512, PGD_ERR_FORMAT, "truncated at token 0 of 512");
    expect_bin_fail(b, 14, 512, PGD_ERR_FORMAT, "token 0 has length 5 at offset 8, past the end");
    expect_bin_fail(b, 3000, 512, PGD_ERR_FORMAT, "token");
    expect_bin_fail(b, n - 1, 512, PGD_ERR_FORMAT, "token 511");
    expect_bin_fail(b, n, 513, PGD_ERR_FORMAT, "truncated at token 512 of 513");
    uint8_t *c = malloc(n);
    /* token 0: score at 4, len at 8 ("<unk>"), token 1: score at 17, len at 21. */
    int32_t len = -1;
    memcpy(c, b, n);
    memcpy(c + 21, &len, 4);
    expect_bin_fail(c, n, 512, PGD_ERR_FORMAT, "token 1 has length -1");
    len = 0x7fffffff;
    memcpy(c + 21, &len, 4);
    expect_bin_fail(c, n, 512, PGD_ERR_FORMAT, "token 1 has length 2147483647");
    memcpy(c, b, n);
    len = -7;
    memcpy(c, &len, 4);
    expect_bin_fail(c, n, 512, PGD_ERR_FORMAT, "max_token_length");
    memcpy(c, b, n);
    memcpy(c + 17, "\x00\x00\xc0\x7f", 4); /* NaN score */
    expect_bin_fail(c, n, 512, PGD_ERR_FORMAT, "token 1 has a NaN score");
    /* A vocabulary file with fewer tokens than requested via a shorter vocab is fine. */
    pgd_tokenizer *small = NULL;
    CU_ASSERT_EQUAL(pgd_tokenizer_load_llama2c(pgd_test_data(TOK512), 300, &small), PGD_OK);
    pgd_tokenizer_destroy(small);
    free(c);
    free(b);
}

static CU_TestInfo tok512_tests[] = {
    {"encode", test_tok512_encode},
    {"golden decode", test_tok512_golden},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo llama2_tests[] = {
    {"known encodings", test_llama2_known},
    {"round trip", test_llama2_round_trip},
    {"matches naive run.c encode", test_llama2_vs_reference},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo gguf_tests[] = {
    {"vocab from metadata", test_gguf_vocab},
    {"bad metadata", test_gguf_bad_vocab},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo bad_tests[] = {
    {"tokenizer.bin", test_bad_bin},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "tokenizer: tok512 (llama2.c golden)", .pTests = tok512_tests},
    {.pName = "tokenizer: llama-2 32000", .pTests = llama2_tests},
    {.pName = "tokenizer: gguf vocab", .pTests = gguf_tests},
    {.pName = "tokenizer: bad input", .pTests = bad_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
