/* bpe.c - byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM2 families) with
 * Hugging Face tokenizers' semantics.
 *
 * Encoding a text:
 *  1. added tokens (tokenizer.json "added_tokens"; GGUF control and
 *     user-defined tokens) are found first, leftmost and longest, and become
 *     their ids; they are never split (lstrip/rstrip widen a match over
 *     the whitespace next to it, as in HF);
 *  2. each stretch between them goes through the pre-tokenizer steps: regex
 *     splits (PCRE2, UTF-8 with Unicode properties; a subject that is not
 *     valid UTF-8 is matched too, its invalid bytes never match a pattern
 *     character so they end up in the gaps, which are kept as pieces), the
 *     Digits split (\p{N}, Rust's char::is_numeric), ByteLevel's optional
 *     prefix space and GPT-2 regex;
 *  3. each piece's bytes start as the single-byte tokens (GPT-2's
 *     byte-to-unicode mapping is undone at load, so the tokenizer works on
 *     raw bytes) and the adjacent pair of lowest merge rank is merged
 *     (leftmost on ties) until no pair has a rank: a heap of candidate pairs
 *     with lazy invalidation and a hash map of merge ranks keyed by the
 *     pair of ids, O(n log n) per piece. With ignore_merges (Llama-3) a
 *     piece that is a vocabulary entry is that token.
 * Every byte of the text ends up in exactly one token, so decoding (the
 * tokens' raw bytes concatenated) gives the text back byte for byte.
 *
 * BOS is added only when the caller asks (add_bos) and the tokenizer's own
 * convention adds one (HF post_processor TemplateProcessing starting with a
 * special token; GGUF tokenizer.ggml.add_bos_token), as HF's
 * add_special_tokens does; SmolLM2's adds nothing. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "pagoda/log.h"
#include "tokenizer/tokenizer_impl.h"

/* The pre-tokenizer regexes of each family (HF tokenizers' ByteLevel regex;
 * Llama-3's and Qwen2's Split patterns from their tokenizer.json). */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"     \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

enum { STEP_SPLIT, STEP_PREFIX_SPACE };
enum { SPLIT_ISOLATED, SPLIT_REMOVED };
#define BPE_MAX_STEPS 16

typedef struct bpe_step {
    int kind;
    int behavior;
    pcre2_code *re;
} bpe_step;

typedef struct bpe_added {
    int id;
    char *s;
    size_t n;
    int lstrip, rstrip;
} bpe_added;

typedef struct bpe_merge {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX = empty */
    uint32_t rank;
    int32_t id;
} bpe_merge;

struct pgd_bpe {
    bpe_step steps[BPE_MAX_STEPS];
    int n_steps;
    uint32_t *len;        /* raw byte length of each piece (pieces may hold a NUL) */
    int32_t *ptab;        /* raw piece -> id (model vocabulary only), open addressing */
    uint32_t pmask;
    bpe_merge *merges;
    uint32_t mmask;
    int byte_tok[256];
    bpe_added *added;
    int n_added;
    int ignore_merges;
    int add_bos;
    unsigned char first[256]; /* 1 for bytes an added token starts with */
};

/* ---- GPT-2's byte <-> unicode mapping ---- */

/* Code point byte b is written as in byte-level vocabularies. */
static unsigned byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    int n = 0; /* the others take 256, 257, ... in byte order */
    for (int i = 0; i < b; i++)
        if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255))) n++;
    return 256u + (unsigned)n;
}

static int cp_byte[324]; /* code point -> byte, -1 if none (built once) */
static pthread_once_t cp_once = PTHREAD_ONCE_INIT;
static void cp_init(void) {
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_byte[byte_cp(b)] = b;
}

/* Decode a byte-level string s[0..n) to raw bytes in out (at most n bytes);
 * returns the length, or -1 when s has a character outside the mapping. */
static long byte_decode(const char *s, size_t n, char *out) {
    pthread_once(&cp_once, cp_init);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t k;
        if (c < 0x80) { cp = c; k = 1; }
        else if ((c & 0xE0) == 0xC0 && i + 1 < n) { cp = (c & 0x1Fu) << 6 | ((unsigned char)s[i + 1] & 0x3Fu); k = 2; }
        else return -1;
        if (cp >= 324 || cp_byte[cp] < 0) return -1;
        out[o++] = (char)cp_byte[cp];
        i += k;
    }
    return (long)o;
}

/* ---- hashing ---- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int piece_lookup(const pgd_tokenizer *t, const char *s, size_t n) {
    const struct pgd_bpe *b = t->bpe;
    for (uint32_t h = hash_bytes(s, n) & b->pmask;; h = (h + 1) & b->pmask) {
        int32_t id = b->ptab[h];
        if (id < 0) return -1;
        if (b->len[id] == n && memcmp(t->vocab[id], s, n) == 0) return id;
    }
}

static void piece_insert(pgd_tokenizer *t, int id) {
    struct pgd_bpe *b = t->bpe;
    if (piece_lookup(t, t->vocab[id], b->len[id]) >= 0) return; /* first id wins */
    uint32_t h = hash_bytes(t->vocab[id], b->len[id]) & b->pmask;
    while (b->ptab[h] >= 0) h = (h + 1) & b->pmask;
    b->ptab[h] = id;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const bpe_merge *merge_find(const struct pgd_bpe *b, int l, int r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (uint32_t h = (uint32_t)mix64(key) & b->mmask;; h = (h + 1) & b->mmask) {
        if (b->merges[h].key == UINT64_MAX) return NULL;
        if (b->merges[h].key == key) return &b->merges[h];
    }
}

/* ---- building ---- */

void pgd_bpe_free(struct pgd_bpe *b) {
    if (!b) return;
    for (int i = 0; i < b->n_steps; i++) pcre2_code_free(b->steps[i].re);
    for (int i = 0; i < b->n_added; i++) free(b->added[i].s);
    free(b->added);
    free(b->len);
    free(b->ptab);
    free(b->merges);
    free(b);
}

static pgd_status add_regex_step(struct pgd_bpe *b, const char *src, const char *pattern, int literal,
                                 int behavior) {
    if (b->n_steps == BPE_MAX_STEPS)
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", src, BPE_MAX_STEPS);
    int err;
    PCRE2_SIZE off;
    uint32_t opts = literal ? PCRE2_LITERAL | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF
                            : PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return pgd_error(PGD_ERR_FORMAT, "%s: pre-tokenizer regex '%s' does not compile at offset %zu: %s",
                         src, pattern, (size_t)off, (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter when JIT is unavailable */
    b->steps[b->n_steps++] = (bpe_step){STEP_SPLIT, behavior, re};
    return PGD_OK;
}

static pgd_status add_prefix_step(struct pgd_bpe *b, const char *src) {
    if (b->n_steps == BPE_MAX_STEPS)
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", src, BPE_MAX_STEPS);
    b->steps[b->n_steps++] = (bpe_step){STEP_PREFIX_SPACE, 0, NULL};
    return PGD_OK;
}

/* Steps of a GGUF tokenizer.ggml.pre name (llama.cpp's names). */
static pgd_status pre_from_name(struct pgd_bpe *b, const char *src, const char *pre) {
    if (!strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2"))
        return add_regex_step(b, src, RE_GPT2, 0, SPLIT_ISOLATED);
    if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3"))
        return add_regex_step(b, src, RE_LLAMA3, 0, SPLIT_ISOLATED);
    if (!strcmp(pre, "qwen2"))
        return add_regex_step(b, src, RE_QWEN2, 0, SPLIT_ISOLATED);
    if (!strcmp(pre, "smollm")) {
        PGD_TRY(add_regex_step(b, src, "\\p{N}", 0, SPLIT_ISOLATED));
        return add_regex_step(b, src, RE_GPT2, 0, SPLIT_ISOLATED);
    }
    return pgd_error(PGD_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported (known: default, gpt2, "
                     "llama3, llama-bpe, qwen2, smollm)", src, pre);
}

/* Steps of an HF pre_tokenizer object (Sequence, Split, ByteLevel, Digits). */
static pgd_status pre_from_json(struct pgd_bpe *b, const char *src, json_t *p) {
    if (!p || json_is_null(p)) return PGD_OK;
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return pgd_error(PGD_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers"), *e;
        size_t i;
        if (!json_is_array(list))
            return pgd_error(PGD_ERR_FORMAT, "%s: pre_tokenizer Sequence without a \"pretokenizers\" array", src);
        json_array_foreach(list, i, e) PGD_TRY(pre_from_json(b, src, e));
        return PGD_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_is_true(json_object_get(p, "add_prefix_space"))) PGD_TRY(add_prefix_step(b, src));
        json_t *ur = json_object_get(p, "use_regex");
        if (!ur || json_is_true(ur)) PGD_TRY(add_regex_step(b, src, RE_GPT2, 0, SPLIT_ISOLATED));
        return PGD_OK;
    }
    if (!strcmp(type, "Digits"))
        return add_regex_step(b, src, json_is_true(json_object_get(p, "individual_digits")) ? "\\p{N}" : "\\p{N}+",
                              0, SPLIT_ISOLATED);
    if (!strcmp(type, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *lit = json_string_value(json_object_get(pat, "String"));
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!re && !lit)
            return pgd_error(PGD_ERR_FORMAT, "%s: Split pre-tokenizer without a Regex or String pattern", src);
        if (json_is_true(json_object_get(p, "invert")))
            return pgd_error(PGD_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with invert=true is not supported", src);
        int behavior;
        if (beh && !strcmp(beh, "Isolated")) behavior = SPLIT_ISOLATED;
        else if (beh && !strcmp(beh, "Removed")) behavior = SPLIT_REMOVED;
        else
            return pgd_error(PGD_ERR_UNSUPPORTED, "%s: Split pre-tokenizer behavior '%s' is not supported "
                             "(Isolated, Removed)", src, beh ? beh : "(none)");
        return add_regex_step(b, src, re ? re : lit, re == NULL, behavior);
    }
    return pgd_error(PGD_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported (Sequence, Split, "
                     "ByteLevel, Digits)", src, type);
}

static pgd_status alloc_bpe(pgd_tokenizer *t, const char *src) {
    struct pgd_bpe *b = calloc(1, sizeof *b);
    if (!b) return pgd_error(PGD_ERR_OOM, "%s: out of memory", src);
    t->bpe = b;
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)t->vocab_size) cap <<= 1;
    b->len = calloc((size_t)t->vocab_size, sizeof *b->len);
    b->ptab = malloc(cap * sizeof *b->ptab);
    if (!b->len || !b->ptab) return pgd_error(PGD_ERR_OOM, "%s: out of memory", src);
    memset(b->ptab, 0xff, cap * sizeof *b->ptab);
    b->pmask = cap - 1;
    return PGD_OK;
}

static pgd_status alloc_merges(struct pgd_bpe *b, size_t n, const char *src) {
    uint32_t cap = 16;
    while (cap < 2 * n + 2 && cap < (1u << 31)) cap <<= 1;
    b->merges = malloc(cap * sizeof *b->merges);
    if (!b->merges) return pgd_error(PGD_ERR_OOM, "%s: out of memory for %zu merges", src, n);
    for (uint32_t i = 0; i < cap; i++) b->merges[i].key = UINT64_MAX;
    b->mmask = cap - 1;
    return PGD_OK;
}

/* Merge `rank`: the pieces a and b (byte-level text). */
static pgd_status add_merge(pgd_tokenizer *t, const char *src, uint32_t rank, const char *a, size_t na,
                            const char *bb, size_t nb, char *tmp) {
    struct pgd_bpe *b = t->bpe;
    long ra = byte_decode(a, na, tmp), rb = ra >= 0 ? byte_decode(bb, nb, tmp + ra) : -1;
    int la = ra >= 0 ? piece_lookup(t, tmp, (size_t)ra) : -1;
    int lb = rb >= 0 ? piece_lookup(t, tmp + ra, (size_t)rb) : -1;
    int id = la >= 0 && lb >= 0 ? piece_lookup(t, tmp, (size_t)(ra + rb)) : -1;
    if (la < 0 || lb < 0 || id < 0)
        return pgd_error(PGD_ERR_FORMAT, "%s: merge %" PRIu32 " '%.*s %.*s': %s is not in the vocabulary", src,
                         rank, (int)na, a, (int)nb, bb, la < 0 ? "its left part" : lb < 0 ? "its right part"
                                                                                     : "the merged token");
    uint64_t key = (uint64_t)(uint32_t)la << 32 | (uint32_t)lb;
    uint32_t h = (uint32_t)mix64(key) & b->mmask;
    for (; b->merges[h].key != UINT64_MAX; h = (h + 1) & b->mmask)
        if (b->merges[h].key == key) return PGD_OK; /* a repeated merge keeps its first rank */
    b->merges[h] = (bpe_merge){key, rank, id};
    return PGD_OK;
}

static pgd_status add_added(struct pgd_bpe *b, const char *src, int id, const char *s, size_t n, int lstrip,
                            int rstrip) {
    if (n == 0) return PGD_OK; /* an empty added token never matches */
    bpe_added *a = realloc(b->added, ((size_t)b->n_added + 1) * sizeof *a);
    if (!a) return pgd_error(PGD_ERR_OOM, "%s: out of memory", src);
    b->added = a;
    char *c = malloc(n + 1);
    if (!c) return pgd_error(PGD_ERR_OOM, "%s: out of memory", src);
    memcpy(c, s, n);
    c[n] = '\0';
    a[b->n_added++] = (bpe_added){id, c, n, lstrip, rstrip};
    b->first[(unsigned char)s[0]] = 1;
    return PGD_OK;
}

/* After the vocabulary: the single-byte tokens every piece starts from. A
 * byte without one is dropped from the text, as HF's BPE does without an
 * unk_token (SmolLM2 has none for 21 bytes that valid UTF-8 never or
 * rarely holds: 0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2 0xF5-0xFF). */
static pgd_status find_byte_tokens(pgd_tokenizer *t, const char *src) {
    int have = 0;
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        t->bpe->byte_tok[c] = piece_lookup(t, &ch, 1);
        have += t->bpe->byte_tok[c] >= 0;
    }
    for (int c = 'A'; c <= 'Z'; c++)
        if (t->bpe->byte_tok[c] < 0 || have < 128)
            return pgd_error(PGD_ERR_FORMAT, "%s: the vocabulary has tokens for only %d of the 256 bytes (none for "
                             "'%c'): not a byte-level BPE vocabulary", src, have, t->bpe->byte_tok[c] < 0 ? c : '?');
    size_t mx = 0;
    for (int i = 0; i < t->vocab_size; i++)
        if (t->bpe->len[i] > mx) mx = t->bpe->len[i];
    t->max_len = mx;
    return PGD_OK;
}

/* Id of the first vocabulary entry (or added token) among names, else -1. */
static int find_named(const pgd_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        for (int i = 0; i < t->bpe->n_added; i++)
            if (!strcmp(t->bpe->added[i].s, *names)) return t->bpe->added[i].id;
    }
    return -1;
}

static const char *const BOS_NAMES[] = {"<|begin_of_text|>", "<s>", "<|endoftext|>", NULL};
static const char *const EOS_NAMES[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|im_end|>", NULL};

pgd_status pgd_tokenizer_load_hf(const char *path, pgd_tokenizer **out) {
    if (!path || !out) return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_load_hf: NULL argument");
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        FILE *f = fopen(path, "rb");
        if (!f) return pgd_error(PGD_ERR_IO, "cannot open tokenizer %s", path);
        fclose(f);
        return pgd_error(PGD_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", path, jerr.line, jerr.text);
    }
    pgd_status st = PGD_OK;
    pgd_tokenizer *t = NULL;
    char *tmp = NULL;
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab"),
           *merges = json_object_get(model, "merges"), *added = json_object_get(root, "added_tokens");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model) || !json_is_object(vocab) || !json_is_array(merges)) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: no model.vocab object and model.merges array (not an HF "
                       "tokenizer.json?)", path);
        goto fail;
    }
    if (mtype && strcmp(mtype, "BPE")) {
        st = pgd_error(PGD_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE)", path, mtype);
        goto fail;
    }
    if (json_is_true(json_object_get(model, "byte_fallback")) ||
        json_string_value(json_object_get(model, "continuing_subword_prefix")) ||
        json_string_value(json_object_get(model, "end_of_word_suffix"))) {
        st = pgd_error(PGD_ERR_UNSUPPORTED, "%s: BPE with byte_fallback, a continuing_subword_prefix or an "
                       "end_of_word_suffix is not supported (only byte-level BPE)", path);
        goto fail;
    }
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *nt = json_string_value(json_object_get(norm, "type"));
        json_t *nl = json_object_get(norm, "normalizers");
        if (!(nt && !strcmp(nt, "Sequence") && json_is_array(nl) && json_array_size(nl) == 0)) {
            st = pgd_error(PGD_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (only none)", path,
                           nt ? nt : "?");
            goto fail;
        }
    }
    /* size: the largest id of the vocabulary and the added tokens */
    long long max_id = -1;
    size_t arena = 0, i;
    const char *key;
    json_t *v, *e;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 22)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: model.vocab['%s'] is not a token id", path, key);
            goto fail;
        }
        if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
        arena += strlen(key) + 1;
    }
    if (added && !json_is_array(added)) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: added_tokens is not an array", path);
        goto fail;
    }
    json_array_foreach(added, i, e) {
        json_t *id = json_object_get(e, "id");
        const char *c = json_string_value(json_object_get(e, "content"));
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 22) || !c) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: added_tokens[%zu] needs an integer id and a content string", path, i);
            goto fail;
        }
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
        arena += json_string_length(json_object_get(e, "content")) + 1;
    }
    if (max_id < 0) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: empty vocabulary", path);
        goto fail;
    }
    int n = (int)max_id + 1;
    if (!(t = pgd_tok_alloc(n, arena)) || (st = alloc_bpe(t, path)) != PGD_OK) {
        if (st == PGD_OK) st = pgd_error(PGD_ERR_OOM, "%s: out of memory for %d tokens", path, n);
        goto fail;
    }
    for (int k = 0; k < n; k++) t->vocab[k] = NULL;
    size_t used = 0;
    json_object_foreach(vocab, key, v) {
        int id = (int)json_integer_value(v);
        if (t->vocab[id]) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: token id %d appears twice in model.vocab", path, id);
            goto fail;
        }
        size_t kl = strlen(key);
        long r = byte_decode(key, kl, t->arena + used);
        if (r < 0) { /* not byte-level text: kept as it is (only reachable as a whole) */
            memcpy(t->arena + used, key, kl);
            r = (long)kl;
        }
        t->vocab[id] = t->arena + used;
        t->bpe->len[id] = (uint32_t)r;
        t->arena[used + (size_t)r] = '\0';
        used += (size_t)r + 1;
    }
    json_array_foreach(added, i, e) {
        int id = (int)json_integer_value(json_object_get(e, "id"));
        json_t *cj = json_object_get(e, "content");
        size_t cl = json_string_length(cj);
        if (!t->vocab[id]) { /* an added token outside model.vocab */
            memcpy(t->arena + used, json_string_value(cj), cl);
            t->arena[used + cl] = '\0';
            t->vocab[id] = t->arena + used;
            t->bpe->len[id] = (uint32_t)cl;
            used += cl + 1;
        }
        if ((st = add_added(t->bpe, path, id, json_string_value(cj), cl,
                            json_is_true(json_object_get(e, "lstrip")),
                            json_is_true(json_object_get(e, "rstrip")))) != PGD_OK)
            goto fail;
    }
    for (int k = 0; k < n; k++)
        if (!t->vocab[k]) t->vocab[k] = t->arena + arena; /* a hole: the empty piece, never produced */
    t->arena[arena] = '\0';
    json_object_foreach(vocab, key, v) piece_insert(t, (int)json_integer_value(v));
    if ((st = find_byte_tokens(t, path)) != PGD_OK) goto fail;
    /* merges: "a b" or ["a", "b"] */
    if ((st = alloc_merges(t->bpe, json_array_size(merges), path)) != PGD_OK) goto fail;
    if (!(tmp = malloc(2 * t->max_len + 8))) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory", path);
        goto fail;
    }
    json_array_foreach(merges, i, e) {
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (json_is_string(e)) {
            const char *s = json_string_value(e), *sp = strchr(s, ' ');
            if (sp) {
                a = s;
                na = (size_t)(sp - s);
                b = sp + 1;
                nb = strlen(b);
            }
        } else if (json_is_array(e) && json_array_size(e) == 2) {
            a = json_string_value(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1));
            na = a ? json_string_length(json_array_get(e, 0)) : 0;
            nb = b ? json_string_length(json_array_get(e, 1)) : 0;
        }
        if (!a || !b || na + nb > 2 * t->max_len) {
            if (a && b) continue; /* longer than any token: cannot apply */
            st = pgd_error(PGD_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            goto fail;
        }
        if ((st = add_merge(t, path, (uint32_t)i, a, na, b, nb, tmp)) != PGD_OK) goto fail;
    }
    t->bpe->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    if ((st = pre_from_json(t->bpe, path, json_object_get(root, "pre_tokenizer"))) != PGD_OK) goto fail;
    /* BOS: the special token a TemplateProcessing post-processor puts first */
    t->bos = -1;
    json_t *pp = json_object_get(root, "post_processor");
    json_t *procs = json_is_array(json_object_get(pp, "processors")) ? json_object_get(pp, "processors") : NULL;
    for (size_t k = 0; pp && k < (procs ? json_array_size(procs) : 1); k++) {
        json_t *p = procs ? json_array_get(procs, k) : pp;
        const char *pt = json_string_value(json_object_get(p, "type"));
        if (!pt || strcmp(pt, "TemplateProcessing")) continue;
        json_t *first = json_array_get(json_object_get(p, "single"), 0);
        const char *sid = json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id"));
        json_t *ids = json_object_get(json_object_get(json_object_get(p, "special_tokens"), sid ? sid : ""), "ids");
        if (sid && json_is_integer(json_array_get(ids, 0)) && json_integer_value(json_array_get(ids, 0)) < n &&
            json_integer_value(json_array_get(ids, 0)) >= 0) {
            t->bos = (int)json_integer_value(json_array_get(ids, 0));
            t->bpe->add_bos = 1;
        }
    }
    if (t->bos < 0) t->bos = find_named(t, BOS_NAMES);
    t->eos = find_named(t, EOS_NAMES);
    free(tmp);
    json_decref(root);
    *out = t;
    return PGD_OK;
fail:
    free(tmp);
    json_decref(root);
    pgd_tokenizer_destroy(t);
    return st;
}

pgd_status pgd_bpe_from_gguf(const pgd_gguf *g, pgd_tokenizer **out) {
    static const char *K_TOK = "tokenizer.ggml.tokens", *K_TYPE = "tokenizer.ggml.token_type",
                      *K_MERGES = "tokenizer.ggml.merges";
    const char *path = pgd_gguf_path(g);
    pgd_tokenizer *t = NULL;
    char *tmp = NULL;
    pgd_status st;
    int et;
    int64_t n, n_types = 0, n_merges = 0;
    if ((st = pgd_gguf_get_arr(g, K_TOK, &et, &n)) != PGD_OK) return st;
    if (et != PGD_GGUF_STRING || n < 256 || n > (1 << 22))
        return pgd_error(PGD_ERR_FORMAT, "%s: %s must be an array of 256 to %d strings (has %" PRId64
                         " elements of type %d)", path, K_TOK, 1 << 22, n, et);
    if ((st = pgd_gguf_get_arr(g, K_MERGES, &et, &n_merges)) != PGD_OK) return st;
    if (et != PGD_GGUF_STRING)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s must be an array of strings", path, K_MERGES);
    if (pgd_gguf_has_key(g, K_TYPE)) {
        PGD_TRY(pgd_gguf_get_arr(g, K_TYPE, &et, &n_types));
        if (n_types != n)
            return pgd_error(PGD_ERR_FORMAT, "%s: %s has %" PRId64 " elements, expected %" PRId64, path, K_TYPE,
                             n_types, n);
    }
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len;
        PGD_TRY(pgd_gguf_arr_str(g, K_TOK, i, NULL, &len));
        total += len + 1;
    }
    if (!(t = pgd_tok_alloc((int)n, total))) return pgd_error(PGD_ERR_OOM, "%s: out of memory", path);
    if ((st = alloc_bpe(t, path)) != PGD_OK) goto fail;
    size_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        int64_t type = 1;
        if ((st = pgd_gguf_arr_str(g, K_TOK, i, &s, &len)) != PGD_OK) goto fail;
        if (n_types && (st = pgd_gguf_arr_int(g, K_TYPE, i, &type)) != PGD_OK) goto fail;
        long r = -1;
        /* control (3) and user-defined (4) tokens are added tokens: their text as it is */
        if (type != 3 && type != 4) r = byte_decode(s, len, t->arena + used);
        if (r < 0) {
            memcpy(t->arena + used, s, len);
            r = (long)len;
        }
        t->vocab[i] = t->arena + used;
        t->bpe->len[i] = (uint32_t)r;
        t->arena[used + (size_t)r] = '\0';
        used += (size_t)r + 1;
        if (type == 3 || type == 4) {
            if ((st = add_added(t->bpe, path, (int)i, s, len, 0, 0)) != PGD_OK) goto fail;
        } else {
            piece_insert(t, (int)i);
        }
    }
    if ((st = find_byte_tokens(t, path)) != PGD_OK) goto fail;
    if ((st = alloc_merges(t->bpe, (size_t)n_merges, path)) != PGD_OK) goto fail;
    if (!(tmp = malloc(2 * t->max_len + 8))) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory", path);
        goto fail;
    }
    for (int64_t i = 0; i < n_merges; i++) {
        const char *s;
        size_t len;
        if ((st = pgd_gguf_arr_str(g, K_MERGES, i, &s, &len)) != PGD_OK) goto fail;
        const char *sp = memchr(s, ' ', len);
        if (!sp) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: %s[%" PRId64 "] '%.*s' is not \"a b\"", path, K_MERGES, i,
                           (int)len, s);
            goto fail;
        }
        if (len > 2 * t->max_len + 1) continue;
        if ((st = add_merge(t, path, (uint32_t)i, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1, tmp)))
            goto fail;
    }
    const char *pre = "default";
    if (pgd_gguf_has_key(g, "tokenizer.ggml.pre") &&
        (st = pgd_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL)) != PGD_OK)
        goto fail;
    if ((st = pre_from_name(t->bpe, path, pre)) != PGD_OK) goto fail;
    static const char *const ids[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    int *dst[2] = {&t->bos, &t->eos};
    for (int k = 0; k < 2; k++) {
        int64_t v = -1;
        if (pgd_gguf_has_key(g, ids[k]) && (st = pgd_gguf_get_int(g, ids[k], &v)) != PGD_OK) goto fail;
        if (v < -1 || v >= n) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: %s = %" PRId64 " is not a token id (vocab %" PRId64 ")", path,
                           ids[k], v, n);
            goto fail;
        }
        *dst[k] = (int)v;
    }
    if (t->bos < 0) t->bos = find_named(t, BOS_NAMES);
    if (t->eos < 0) t->eos = find_named(t, EOS_NAMES);
    if (pgd_gguf_has_key(g, "tokenizer.ggml.add_bos_token") &&
        (st = pgd_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->bpe->add_bos)) != PGD_OK)
        goto fail;
    free(tmp);
    *out = t;
    return PGD_OK;
fail:
    free(tmp);
    pgd_tokenizer_destroy(t);
    return st;
}

/* ---- encoding ---- */

typedef struct piece { size_t off, n; } piece;

typedef struct enc {
    const pgd_tokenizer *t;
    char *work;        /* the stretch being pre-tokenized, then prefixed copies */
    size_t wlen, wcap;
    piece *pa, *pb;    /* pieces before / after a step */
    size_t na, cap_p;
    pcre2_match_data *md;
    int32_t *out;
    int nout, cap_out;
    /* BPE of one piece */
    int *sym, *prev, *next;
    struct cand { uint32_t rank; int pos, lid, rid, id; } *heap;
    size_t cap_sym;
} enc;

static int cand_before(const struct cand *a, const struct cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct cand *h, int *n, struct cand c) {
    int i = (*n)++;
    while (i > 0 && cand_before(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, int *n) {
    struct cand top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_before(&h[c + 1], &h[c])) c++;
        if (!cand_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static int emit(enc *e, int id) {
    if (e->nout == e->cap_out) {
        int nc = e->cap_out * 2 + 16;
        int32_t *o = realloc(e->out, (size_t)nc * sizeof *o);
        if (!o) return -1;
        e->out = o;
        e->cap_out = nc;
    }
    e->out[e->nout++] = id;
    return 0;
}

static void push_pair(enc *e, int l, int *n_heap) {
    if (l < 0 || e->next[l] < 0) return;
    int r = e->next[l];
    const bpe_merge *m = merge_find(e->t->bpe, e->sym[l], e->sym[r]);
    if (m) heap_push(e->heap, n_heap, (struct cand){m->rank, l, e->sym[l], e->sym[r], m->id});
}

/* BPE-merge one piece's bytes and emit its tokens. */
static int bpe_piece(enc *e, const char *s, size_t n) {
    const struct pgd_bpe *b = e->t->bpe;
    if (n == 0) return 0;
    if (n == 1) return b->byte_tok[(unsigned char)s[0]] < 0 ? 0 : emit(e, b->byte_tok[(unsigned char)s[0]]);
    if (b->ignore_merges) {
        int id = piece_lookup(e->t, s, n);
        if (id >= 0) return emit(e, id);
    }
    if (n > e->cap_sym) {
        size_t c = n * 2;
        int *a = realloc(e->sym, c * sizeof *a);
        if (a) e->sym = a;
        int *p = realloc(e->prev, c * sizeof *p);
        if (p) e->prev = p;
        int *q = realloc(e->next, c * sizeof *q);
        if (q) e->next = q;
        struct cand *h = realloc(e->heap, 3 * c * sizeof *h);
        if (h) e->heap = h;
        if (!a || !p || !q || !h) return -1;
        e->cap_sym = c;
    }
    int cnt = 0, n_heap = 0;
    for (size_t i = 0; i < n; i++)
        if (b->byte_tok[(unsigned char)s[i]] >= 0) e->sym[cnt++] = b->byte_tok[(unsigned char)s[i]];
    if (cnt == 0) return 0;
    for (int i = 0; i < cnt; i++) {
        e->prev[i] = i - 1;
        e->next[i] = i + 1 < cnt ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < cnt; i++) push_pair(e, i, &n_heap);
    while (n_heap > 0) {
        struct cand c = heap_pop(e->heap, &n_heap);
        int l = c.pos, r = e->next[l];
        if (e->sym[l] != c.lid || r < 0 || e->sym[r] != c.rid) continue; /* stale */
        e->sym[l] = c.id;
        e->next[l] = e->next[r];
        if (e->next[l] >= 0) e->prev[e->next[l]] = l;
        e->sym[r] = -1;
        push_pair(e, e->prev[l], &n_heap);
        push_pair(e, l, &n_heap);
    }
    for (int i = 0; i >= 0; i = e->next[i])
        if (emit(e, e->sym[i])) return -1;
    return 0;
}

static int push_piece(enc *e, size_t *nb, size_t off, size_t n) {
    if (n == 0) return 0;
    if (*nb == e->cap_p) {
        size_t c = e->cap_p * 2 + 16;
        piece *a = realloc(e->pa, c * sizeof *a), *b;
        if (!a) return -1;
        e->pa = a;
        if (!(b = realloc(e->pb, c * sizeof *b))) return -1;
        e->pb = b;
        e->cap_p = c;
    }
    e->pb[(*nb)++] = (piece){off, n};
    return 0;
}

/* Pre-tokenize work[0..wlen) and BPE every piece. */
static int encode_stretch(enc *e) {
    const struct pgd_bpe *b = e->t->bpe;
    e->na = 0;
    size_t nb = 0;
    if (push_piece(e, &nb, 0, e->wlen)) return -1;
    piece *sw = e->pa; e->pa = e->pb; e->pb = sw;
    e->na = nb;
    for (int k = 0; k < b->n_steps; k++) {
        const bpe_step *st = &b->steps[k];
        nb = 0;
        for (size_t i = 0; i < e->na; i++) {
            piece p = e->pa[i];
            if (st->kind == STEP_PREFIX_SPACE) {
                if (e->work[p.off] == ' ') {
                    if (push_piece(e, &nb, p.off, p.n)) return -1;
                    continue;
                }
                if (e->wlen + p.n + 1 > e->wcap) {
                    size_t c = (e->wlen + p.n + 1) * 2;
                    char *w = realloc(e->work, c);
                    if (!w) return -1;
                    e->work = w;
                    e->wcap = c;
                }
                e->work[e->wlen] = ' ';
                memcpy(e->work + e->wlen + 1, e->work + p.off, p.n);
                if (push_piece(e, &nb, e->wlen, p.n + 1)) return -1;
                e->wlen += p.n + 1;
                continue;
            }
            size_t pos = 0, from = 0;
            const PCRE2_SPTR subj = (PCRE2_SPTR)(e->work + p.off);
            while (from < p.n) {
                int rc = pcre2_match(st->re, subj, p.n, from, 0, e->md, NULL);
                if (rc < 0) break; /* no further match (or a matching error: the rest stays one piece) */
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
                size_t ms = ov[0], me = ov[1];
                if (me <= ms) { /* an empty match: look further on */
                    from = ms + 1;
                    continue;
                }
                if (push_piece(e, &nb, p.off + pos, ms - pos)) return -1;
                if (st->behavior == SPLIT_ISOLATED && push_piece(e, &nb, p.off + ms, me - ms)) return -1;
                pos = from = me;
            }
            if (push_piece(e, &nb, p.off + pos, p.n - pos)) return -1;
        }
        sw = e->pa; e->pa = e->pb; e->pb = sw;
        e->na = nb;
    }
    for (size_t i = 0; i < e->na; i++)
        if (bpe_piece(e, e->work + e->pa[i].off, e->pa[i].n)) return -1;
    return 0;
}

/* Length of the whitespace character (Rust's char::is_whitespace: White_Space)
 * starting at s[0..n), or 0. */
static size_t ws_at(const unsigned char *s, size_t n) {
    if (n >= 1 && (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r'))) return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; /* U+1680 */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;                                                        /* U+2000-200A, 2028, 2029, 202F */
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    return 0;
}

/* Length of the whitespace character ending at text[end) (not before start), or 0. */
static size_t ws_before(const char *text, size_t start, size_t end) {
    for (size_t k = 1; k <= 3 && k <= end - start; k++)
        if (ws_at((const unsigned char *)text + end - k, k) == k) return k;
    return 0;
}

pgd_status pgd_bpe_encode(const pgd_tokenizer *t, const char *text, int add_bos, int add_eos, int32_t **tokens,
                          int *n) {
    const struct pgd_bpe *b = t->bpe;
    size_t len = strlen(text);
    if (len > INT_MAX / 4) return pgd_error(PGD_ERR_INVALID, "tokenizer: text of %zu bytes is too long", len);
    enc e = {.t = t};
    e.wcap = len + 16;
    e.work = malloc(e.wcap);
    e.md = pcre2_match_data_create(4, NULL);
    e.cap_out = (int)len + 8;
    e.out = malloc((size_t)e.cap_out * sizeof *e.out);
    if (!e.work || !e.md || !e.out) goto oom;
    if (add_bos && b->add_bos && t->bos >= 0 && emit(&e, t->bos)) goto oom;
    size_t start = 0; /* start of the current stretch of ordinary text */
    for (size_t i = 0; i <= len;) {
        /* the longest added token at i (leftmost-longest, as HF's matcher) */
        int best = -1;
        size_t best_n = 0;
        for (int k = 0; i < len && b->first[(unsigned char)text[i]] && k < b->n_added; k++)
            if (b->added[k].n > best_n && b->added[k].n <= len - i && !memcmp(text + i, b->added[k].s, b->added[k].n)) {
                best = k;
                best_n = b->added[k].n;
            }
        if (best < 0 && i < len) {
            i++;
            continue;
        }
        size_t end = i, resume = i + best_n;
        size_t w;
        if (best >= 0 && b->added[best].lstrip) /* the whitespace around the token goes with it */
            while (end > start && (w = ws_before(text, start, end)) > 0) end -= w;
        if (best >= 0 && b->added[best].rstrip)
            while (resume < len && (w = ws_at((const unsigned char *)text + resume, len - resume)) > 0) resume += w;
        if (end > start) {
            memcpy(e.work, text + start, end - start);
            e.wlen = end - start;
            if (encode_stretch(&e)) goto oom;
        }
        if (best < 0) break; /* i == len */
        if (emit(&e, b->added[best].id)) goto oom;
        i = start = resume;
    }
    if (add_eos && t->eos >= 0 && emit(&e, t->eos)) goto oom;
    free(e.work);
    free(e.pa);
    free(e.pb);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    pcre2_match_data_free(e.md);
    *tokens = e.out;
    *n = e.nout;
    return PGD_OK;
oom:
    free(e.work);
    free(e.pa);
    free(e.pb);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    free(e.out);
    pcre2_match_data_free(e.md);
    return pgd_error(PGD_ERR_OOM, "tokenizer: out of memory encoding %zu bytes", len);
}

/* ---- public helpers ---- */

int pgd_tokenizer_is_byte_level(const pgd_tokenizer *t) { return t && t->bpe != NULL; }

pgd_status pgd_tokenizer_set_special(pgd_tokenizer *t, int bos, int eos) {
    if (!t) return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_set_special: NULL tokenizer");
    if (bos < -1 || bos >= t->vocab_size || eos < -1 || eos >= t->vocab_size)
        return pgd_error(PGD_ERR_INVALID, "tokenizer: bos %d / eos %d is not a token id (vocab %d)", bos, eos,
                         t->vocab_size);
    if (bos >= 0) t->bos = bos;
    if (eos >= 0) t->eos = eos;
    return PGD_OK;
}

pgd_status pgd_tokenizer_load_file(const char *path, int vocab_size, pgd_tokenizer **out) {
    if (!path || !out) return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_load_file: NULL argument");
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) {
        PGD_TRY(pgd_tokenizer_load_hf(path, out));
        if (vocab_size > 0 && (*out)->vocab_size > vocab_size) {
            int have = (*out)->vocab_size;
            pgd_tokenizer_destroy(*out);
            *out = NULL;
            return pgd_error(PGD_ERR_FORMAT, "%s: the tokenizer has %d tokens, more than the model's vocabulary "
                             "of %d", path, have, vocab_size);
        }
        return PGD_OK;
    }
    return pgd_tokenizer_load_llama2c(path, vocab_size, out);
}
