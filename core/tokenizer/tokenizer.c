/* tokenizer.c - SentencePiece-style BPE tokenizer with llama2.c semantics.
 *
 * Loads a vocabulary (pieces + scores) from a llama2.c tokenizer.bin or from
 * GGUF tokenizer.ggml.* metadata and encodes/decodes exactly like llama2.c's
 * run.c: [BOS] + dummy-prefix " " + per-code-point tokens (byte fallback
 * <0xXX>) and then, repeatedly, the merge of the adjacent pair whose
 * concatenation is the best-scored vocab piece (leftmost on ties; a merge
 * needs a score above -1e10, as in run.c). run.c rescans all pairs after each
 * merge (quadratic); here a heap of candidate pairs with lazy invalidation
 * picks the same pair in O(n log n).
 *
 * Invariants after load:
 *  - vocab[i] is a NUL-terminated piece (llama2.c C-string semantics: bytes
 *    after an embedded NUL are ignored), scores[i] is not NaN;
 *  - the hash table maps every distinct piece to its lowest id, except
 *    GGUF control tokens (token_type 3: <s>, </s>), which text never
 *    produces (llama2.c's tokenizer.bin gets the same effect by storing
 *    them as "\n<s>\n");
 *  - 0 <= bos, eos < vocab_size;
 *  - byte_id[b] is the id of piece "<0xXX>" if present, else b + 3 (run.c). */
#include "pagoda/tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "tokenizer/tokenizer_impl.h"

#define TOK_MIN_SCORE (-1e10f) /* run.c's initial best_score: lower never merges */


/* ---- piece lookup ---- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Id of the piece equal to s[0..n), or -1. */
static int lookup(const pgd_tokenizer *t, const char *s, size_t n) {
    for (uint32_t h = hash_bytes(s, n) & t->mask;; h = (h + 1) & t->mask) {
        int32_t id = t->table[h];
        if (id < 0) return -1;
        const char *p = t->vocab[id];
        if (strncmp(p, s, n) == 0 && p[n] == '\0') return id;
    }
}

/* Build the hash table, byte fallback ids and max_len once vocab is filled. */
static pgd_status build_index(pgd_tokenizer *t) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)t->vocab_size) cap <<= 1;
    t->table = malloc(cap * sizeof *t->table);
    if (!t->table) return pgd_error(PGD_ERR_OOM, "out of memory building the tokenizer index");
    memset(t->table, 0xff, cap * sizeof *t->table);
    t->mask = cap - 1;
    t->max_len = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        size_t n = strlen(t->vocab[i]);
        if (n > t->max_len) t->max_len = n;
        if (t->control && t->control[i]) continue;
        if (lookup(t, t->vocab[i], n) >= 0) continue; /* duplicate: first id wins */
        uint32_t h = hash_bytes(t->vocab[i], n) & t->mask;
        while (t->table[h] >= 0) h = (h + 1) & t->mask;
        t->table[h] = i;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int id = lookup(t, name, 6);
        t->byte_id[b] = id >= 0 ? id : b + 3;
        t->byte_pieces[2 * b] = (char)b;
        t->byte_pieces[2 * b + 1] = '\0';
    }
    return PGD_OK;
}

pgd_tokenizer *pgd_tok_alloc(int n, size_t arena_bytes) {
    pgd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->vocab_size = n;
    t->vocab = calloc((size_t)n, sizeof *t->vocab);
    t->scores = calloc((size_t)n, sizeof *t->scores);
    t->arena = malloc(arena_bytes + 1);
    if (!t->vocab || !t->scores || !t->arena) {
        pgd_tokenizer_destroy(t);
        return NULL;
    }
    return t;
}

void pgd_tokenizer_destroy(pgd_tokenizer *t) {
    if (!t) return;
    free(t->vocab);
    free(t->scores);
    free(t->arena);
    free(t->table);
    free(t->control);
    pgd_bpe_free(t->bpe);
    free(t);
}

/* ---- loading ---- */

pgd_status pgd_tokenizer_load_llama2c(const char *path, int vocab_size, pgd_tokenizer **out) {
    if (!path || !out)
        return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_load_llama2c: NULL argument");
    *out = NULL;
    if (vocab_size < 3)
        return pgd_error(PGD_ERR_INVALID, "%s: vocab_size %d is too small (need BOS=1, EOS=2)",
                         path, vocab_size);
    pgd_status st;
    pgd_tokenizer *t = NULL;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = pgd_error(PGD_ERR_IO, "cannot open tokenizer %s: %s", path, strerror(errno));
        goto fail;
    }
    long fsize = -1;
    if (fseek(f, 0, SEEK_END) == 0) fsize = ftell(f);
    if (fsize < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = pgd_error(PGD_ERR_IO, "cannot read tokenizer %s: %s", path, strerror(errno));
        goto fail;
    }
    size_t size = (size_t)fsize;
    buf = malloc(size + 1);
    if (!buf) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory reading %zu bytes", path, size);
        goto fail;
    }
    if (fread(buf, 1, size, f) != size) {
        st = pgd_error(PGD_ERR_IO, "cannot read tokenizer %s: %s", path,
                       ferror(f) ? strerror(errno) : "short read");
        goto fail;
    }
    int32_t max_token_length;
    if (size < 4) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: truncated: %zu bytes, no max_token_length header",
                       path, size);
        goto fail;
    }
    memcpy(&max_token_length, buf, 4);
    if (max_token_length < 0) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: negative max_token_length %" PRId32, path,
                       max_token_length);
        goto fail;
    }
    /* Pieces total at most size bytes, plus one NUL each. */
    t = pgd_tok_alloc(vocab_size, size + (size_t)vocab_size);
    if (!t) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory for %d tokens", path, vocab_size);
        goto fail;
    }
    t->bos = 1;
    t->eos = 2;
    size_t pos = 4, used = 0;
    for (int i = 0; i < vocab_size; i++) {
        float score;
        int32_t len;
        if (size - pos < 8) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: truncated at token %d of %d (offset %zu, file is "
                           "%zu bytes)", path, i, vocab_size, pos, size);
            goto fail;
        }
        memcpy(&score, buf + pos, 4);
        memcpy(&len, buf + pos + 4, 4);
        pos += 8;
        if (isnan(score)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: token %d has a NaN score", path, i);
            goto fail;
        }
        if (len < 0 || (size_t)len > size - pos) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: token %d has length %" PRId32 " at offset %zu, "
                           "%s", path, i, len, pos - 4,
                           len < 0 ? "negative" : "past the end of the file");
            goto fail;
        }
        t->vocab[i] = t->arena + used;
        t->scores[i] = score;
        memcpy(t->arena + used, buf + pos, (size_t)len);
        t->arena[used + (size_t)len] = '\0';
        used += (size_t)len + 1;
        pos += (size_t)len;
    }
    if ((st = build_index(t)) != PGD_OK) goto fail;
    fclose(f);
    free(buf);
    *out = t;
    return PGD_OK;
fail:
    if (f) fclose(f);
    free(buf);
    pgd_tokenizer_destroy(t);
    return st;
}

/* Optional integer key with a default; must be a valid token id. */
static pgd_status gguf_token_id(const struct pgd_gguf *g, const char *key, int def, int n,
                                int *id) {
    int64_t v = def;
    if (pgd_gguf_has_key(g, key)) PGD_TRY(pgd_gguf_get_int(g, key, &v));
    if (v < 0 || v >= n)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s = %" PRId64 " is not a token id (vocab %d)",
                         pgd_gguf_path(g), key, v, n);
    *id = (int)v;
    return PGD_OK;
}

pgd_status pgd_tokenizer_from_gguf(const struct pgd_gguf *g, pgd_tokenizer **out) {
    if (!g || !out) return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_from_gguf: NULL argument");
    *out = NULL;
    static const char *K_TOK = "tokenizer.ggml.tokens", *K_SCORES = "tokenizer.ggml.scores",
                      *K_TYPE = "tokenizer.ggml.token_type";
    const char *path = pgd_gguf_path(g), *model;
    pgd_tokenizer *t = NULL;
    pgd_status st;
    int et;
    int64_t n, n_scores = 0, n_types = 0;
    if ((st = pgd_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL)) != PGD_OK) goto fail;
    if (strcmp(model, "gpt2") == 0) return pgd_bpe_from_gguf(g, out); /* byte-level BPE */
    if (strcmp(model, "llama") != 0) {
        st = pgd_error(PGD_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not supported "
                       "(only 'llama' SentencePiece and 'gpt2' byte-level BPE vocabularies)", path, model);
        goto fail;
    }
    if ((st = pgd_gguf_get_arr(g, K_TOK, &et, &n)) != PGD_OK) goto fail;
    if (et != PGD_GGUF_STRING || n < 3 || n > INT32_MAX / 4) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: %s must be an array of 3 to %d strings (has %" PRId64
                       " elements of type %d)", path, K_TOK, INT32_MAX / 4, n, et);
        goto fail;
    }
    if (pgd_gguf_has_key(g, K_SCORES)) {
        if ((st = pgd_gguf_get_arr(g, K_SCORES, &et, &n_scores)) != PGD_OK) goto fail;
        if ((et != PGD_GGUF_F32 && et != PGD_GGUF_F64) || n_scores != n) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: %s must be an array of %" PRId64 " f32 (has %"
                           PRId64 " elements of type %d)", path, K_SCORES, n, n_scores, et);
            goto fail;
        }
    }
    if (pgd_gguf_has_key(g, K_TYPE)) {
        if ((st = pgd_gguf_get_arr(g, K_TYPE, &et, &n_types)) != PGD_OK) goto fail;
        if (n_types != n) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: %s has %" PRId64 " elements, expected %" PRId64,
                           path, K_TYPE, n_types, n);
            goto fail;
        }
    }
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t len;
        if ((st = pgd_gguf_arr_str(g, K_TOK, i, NULL, &len)) != PGD_OK) goto fail;
        total += len + 1;
    }
    if (!(t = pgd_tok_alloc((int)n, total))) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory for %" PRId64 " tokens", path, n);
        goto fail;
    }
    if (n_types && !(t->control = calloc((size_t)n, 1))) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory for %" PRId64 " tokens", path, n);
        goto fail;
    }
    size_t used = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        int64_t type = 1;
        if (n_types && (st = pgd_gguf_arr_int(g, K_TYPE, i, &type)) != PGD_OK) goto fail;
        if (n_types) t->control[i] = type == 3;
        if ((st = pgd_gguf_arr_str(g, K_TOK, i, &s, NULL)) != PGD_OK) goto fail;
        /* Copy as a C string, mapping U+2581 (SentencePiece space) to ' '. */
        char *d = t->arena + used;
        t->vocab[i] = d;
        for (; *s; s++) {
            if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x96 &&
                (unsigned char)s[2] == 0x81) {
                *d++ = ' ';
                s += 2;
            } else {
                *d++ = *s;
            }
        }
        *d++ = '\0';
        used = (size_t)(d - t->arena);
        float score = 0;
        if (n_scores && (st = pgd_gguf_arr_f32(g, K_SCORES, i, &score)) != PGD_OK) goto fail;
        if (isnan(score)) {
            st = pgd_error(PGD_ERR_FORMAT, "%s: %s[%" PRId64 "] is NaN", path, K_SCORES, i);
            goto fail;
        }
        t->scores[i] = score;
    }
    if ((st = gguf_token_id(g, "tokenizer.ggml.bos_token_id", 1, (int)n, &t->bos)) != PGD_OK ||
        (st = gguf_token_id(g, "tokenizer.ggml.eos_token_id", 2, (int)n, &t->eos)) != PGD_OK ||
        (st = build_index(t)) != PGD_OK)
        goto fail;
    *out = t;
    return PGD_OK;
fail:
    pgd_tokenizer_destroy(t);
    return st;
}

int pgd_tokenizer_vocab_size(const pgd_tokenizer *t) { return t->vocab_size; }
int pgd_tokenizer_bos(const pgd_tokenizer *t) { return t->bos; }
int pgd_tokenizer_eos(const pgd_tokenizer *t) { return t->eos; }

/* ---- encoding ---- */

typedef struct tok_node { int id, prev, next; } tok_node; /* doubly linked token list */
typedef struct tok_cand { float score; int left, lid, rid, merged; } tok_cand;

/* Heap order: higher score first, then the leftmost pair (node order = text order). */
static int cand_before(const tok_cand *a, const tok_cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(tok_cand *h, int *n, tok_cand c) {
    int i = (*n)++;
    while (i > 0 && cand_before(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static tok_cand heap_pop(tok_cand *h, int *n) {
    tok_cand top = h[0], last = h[--*n];
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

/* Push the pair (left, left.next) if its concatenation is a mergeable piece. */
static void push_pair(const pgd_tokenizer *t, const tok_node *nodes, int left, char *buf,
                      tok_cand *heap, int *n_heap) {
    if (left < 0 || nodes[left].next < 0) return;
    int right = nodes[left].next;
    const char *a = t->vocab[nodes[left].id], *b = t->vocab[nodes[right].id];
    size_t la = strlen(a), lb = strlen(b);
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb);
    int id = lookup(t, buf, la + lb);
    if (id < 0 || !(t->scores[id] > TOK_MIN_SCORE)) return;
    heap_push(heap, n_heap,
              (tok_cand){t->scores[id], left, nodes[left].id, nodes[right].id, id});
}

pgd_status pgd_tokenizer_encode(const pgd_tokenizer *t, const char *text, int add_bos,
                                int add_eos, int32_t **tokens, int *n) {
    if (!t || !text || !tokens || !n)
        return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_encode: NULL argument");
    *tokens = NULL;
    *n = 0;
    if (t->bpe) return pgd_bpe_encode(t, text, add_bos, add_eos, tokens, n);
    size_t text_len = strlen(text);
    if (text_len > INT_MAX / 4)
        return pgd_error(PGD_ERR_INVALID, "tokenizer: text of %zu bytes is too long", text_len);
    pgd_status st = PGD_OK;
    int cap = (int)text_len + 3, count = 0, n_heap = 0;
    tok_node *nodes = malloc((size_t)cap * sizeof *nodes);
    tok_cand *heap = malloc((size_t)cap * 3 * sizeof *heap);
    char *buf = malloc(2 * t->max_len + 8);
    int32_t *res = NULL;
    if (!nodes || !heap || !buf) goto oom;

    /* Initial tokens: BOS (run.c lets it take part in merges), dummy prefix, code points. */
    if (add_bos) nodes[count++].id = t->bos;
    if (text_len) {
        int sp = lookup(t, " ", 1);
        nodes[count++].id = sp >= 0 ? sp : t->byte_id[' '];
    }
    size_t cp = 0; /* bytes of the current code point in buf */
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) cp = 0;
        buf[cp++] = *c;
        if ((c[1] & 0xC0) == 0x80 && cp < 4) continue;
        int id = lookup(t, buf, cp);
        if (id >= 0) {
            nodes[count++].id = id;
        } else {
            for (size_t i = 0; i < cp; i++) nodes[count++].id = t->byte_id[(unsigned char)buf[i]];
        }
        cp = 0;
    }
    for (int i = 0; i < count; i++) {
        if (nodes[i].id >= t->vocab_size) {
            st = pgd_error(PGD_ERR_UNSUPPORTED, "tokenizer: vocabulary of %d tokens has no "
                           "byte-fallback token for byte 0x%02X", t->vocab_size,
                           (unsigned)(nodes[i].id - 3) & 0xff);
            goto fail;
        }
        nodes[i].prev = i - 1;
        nodes[i].next = i + 1 < count ? i + 1 : -1;
    }

    /* Merge the best pair until none is left. */
    for (int i = 0; i + 1 < count; i++) push_pair(t, nodes, i, buf, heap, &n_heap);
    while (n_heap > 0) {
        tok_cand c = heap_pop(heap, &n_heap);
        tok_node *l = &nodes[c.left];
        if (l->id != c.lid || l->next < 0 || nodes[l->next].id != c.rid) continue; /* stale */
        int r = l->next;
        l->id = c.merged;
        l->next = nodes[r].next;
        if (l->next >= 0) nodes[l->next].prev = c.left;
        nodes[r].id = -1; /* dead: no pair can name it again */
        push_pair(t, nodes, l->prev, buf, heap, &n_heap);
        push_pair(t, nodes, c.left, buf, heap, &n_heap);
    }

    res = malloc(((size_t)count + 1) * sizeof *res);
    if (!res) goto oom;
    int m = 0;
    for (int i = count > 0 ? 0 : -1; i >= 0; i = nodes[i].next) res[m++] = nodes[i].id;
    if (add_eos) res[m++] = t->eos;
    free(nodes);
    free(heap);
    free(buf);
    *tokens = res;
    *n = m;
    return PGD_OK;
oom:
    st = pgd_error(PGD_ERR_OOM, "tokenizer: out of memory encoding %zu bytes", text_len);
fail:
    free(nodes);
    free(heap);
    free(buf);
    free(res);
    return st;
}

/* ---- decoding ---- */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

const char *pgd_tokenizer_decode(const pgd_tokenizer *t, int prev, int token) {
    if (!t || token < 0 || token >= t->vocab_size) return NULL;
    const char *piece = t->vocab[token];
    if (t->bpe) return piece; /* byte-level: the raw bytes, nothing stripped */
    if (prev == t->bos && piece[0] == ' ') piece++; /* SentencePiece strips it after BOS */
    if (piece[0] == '<' && piece[1] == '0' && piece[2] == 'x') {
        int hi = hex_digit(piece[3]), lo = hi >= 0 ? hex_digit(piece[4]) : -1;
        if (lo >= 0 && piece[5] == '>' && piece[6] == '\0')
            return t->byte_pieces + 2 * (hi * 16 + lo);
    }
    return piece;
}

pgd_status pgd_tokenizer_decode_all(const pgd_tokenizer *t, int prev, const int32_t *tokens,
                                    int n, char **text) {
    if (!t || (!tokens && n > 0) || n < 0 || !text)
        return pgd_error(PGD_ERR_INVALID, "pgd_tokenizer_decode_all: bad argument");
    *text = NULL;
    size_t total = 1;
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= t->vocab_size)
            return pgd_error(PGD_ERR_INVALID, "tokenizer: token %" PRId32 " at index %d is out "
                             "of range (vocab %d)", tokens[i], i, t->vocab_size);
        total += strlen(t->vocab[tokens[i]]);
    }
    char *s = malloc(total), *d = s;
    if (!s) return pgd_error(PGD_ERR_OOM, "tokenizer: out of memory decoding %d tokens", n);
    for (int i = 0; i < n; prev = tokens[i++]) {
        if (tokens[i] == t->bos || tokens[i] == t->eos) continue;
        const char *p = pgd_tokenizer_decode(t, prev, tokens[i]);
        size_t len = strlen(p);
        memcpy(d, p, len);
        d += len;
    }
    *d = '\0';
    *text = s;
    return PGD_OK;
}
