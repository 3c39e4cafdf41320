/* gguf.c - validating reader for GGUF v2/v3 files (see gguf.h).
 *
 * The file is mmap'd read-only and parsed twice by the same code: the first
 * pass validates every byte of the header, metadata and tensor-info sections
 * (general.alignment is taken as soon as it is read) and counts the string
 * bytes; the second pass copies keys, string values and tensor names into one
 * arena, NUL-terminated. Then names are checked for duplicates and every
 * tensor's data range against the file.
 *
 * Invariants once pgd_gguf_open() returned PGD_OK:
 *  - every kv/tensor pointer points into g->arena or g->map and stays valid
 *    until pgd_gguf_close();
 *  - keys and tensor names are unique, non-empty and free of NUL bytes;
 *  - numeric array data (kv.data) lies inside the mapping, count elements;
 *  - each tensor's data [data, data + nbytes) lies inside the mapping and its
 *    offset from the data section start is a multiple of general.alignment;
 *  - kv_by_key / t_by_name hold every key / tensor name once, sorted.
 * Multi-byte values are little-endian in the file; the host must be too. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pagoda/dtype.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian files by memcpy and needs a little-endian host"
#endif

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NEST 8 /* arrays of arrays deeper than this are rejected */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_str {
    const char *s; /* NUL-terminated, in the arena */
    size_t len;
} gguf_str;

typedef struct gguf_kv {
    const char *key;
    uint32_t type;
    union { uint64_t u; int64_t i; double f; } num; /* scalar types */
    gguf_str str;                                   /* PGD_GGUF_STRING */
    uint32_t elem_type;                             /* PGD_GGUF_ARRAY ... */
    int64_t count;
    const uint8_t *data;                            /* numeric elements, in the map */
    gguf_str *elems;                                /* string elements (count) */
} gguf_kv;

typedef struct gguf_name_idx { /* sorted lookup index */
    const char *name;
    int64_t i;
} gguf_name_idx;

struct pgd_gguf {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version;
    int64_t n_kv, n_tensors;
    size_t alignment, data_start;
    gguf_kv *kv;
    gguf_name_idx *kv_by_key;
    pgd_gguf_tensor *tensors;
    uint64_t *offsets; /* tensor data offsets relative to data_start */
    gguf_name_idx *t_by_name;
    char *arena;
    size_t arena_cap, arena_used;
    gguf_str *elems;
    size_t elems_cap, elems_used;
};

/* Parse state: a cursor over the mapping plus what the error messages need. */
typedef struct parser {
    pgd_gguf *g;
    const uint8_t *p;
    size_t size, pos;
    int fill;          /* 0: validate and count, 1: copy into the arena */
    char what[320];    /* the item being read, for messages */
} parser;

static const char *type_name(uint32_t t) {
    static const char *names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static size_t type_size(uint32_t t) {
    switch (t) {
    case PGD_GGUF_U8: case PGD_GGUF_I8: case PGD_GGUF_BOOL: return 1;
    case PGD_GGUF_U16: case PGD_GGUF_I16: return 2;
    case PGD_GGUF_U32: case PGD_GGUF_I32: case PGD_GGUF_F32: return 4;
    case PGD_GGUF_U64: case PGD_GGUF_I64: case PGD_GGUF_F64: return 8;
    default: return 0; /* string, array, unknown */
    }
}

static int is_int_type(uint32_t t) {
    return t <= PGD_GGUF_I32 || t == PGD_GGUF_U64 || t == PGD_GGUF_I64;
}

static const char *ggml_type_name(int t) {
    switch (t) {
    case PGD_GGML_F32: return "F32";
    case PGD_GGML_F16: return "F16";
    case PGD_GGML_Q8_0: return "Q8_0";
    case PGD_GGML_Q4_0: return "Q4_0";
    case PGD_GGML_BF16: return "BF16";
    case PGD_GGML_Q4_K: return "Q4_K";
    case PGD_GGML_Q6_K: return "Q6_K";
    default: return NULL;
    }
}

static pgd_status truncated(parser *ps, size_t need) {
    return pgd_error(PGD_ERR_FORMAT,
                     "%s: truncated: %s needs %zu bytes at offset %zu but the file is %zu bytes",
                     ps->g->path, ps->what, need, ps->pos, ps->size);
}

static pgd_status rd_bytes(parser *ps, void *dst, size_t n) {
    if (n > ps->size - ps->pos) return truncated(ps, n);
    memcpy(dst, ps->p + ps->pos, n);
    ps->pos += n;
    return PGD_OK;
}

static pgd_status rd_u32(parser *ps, uint32_t *v) { return rd_bytes(ps, v, 4); }
static pgd_status rd_u64(parser *ps, uint64_t *v) { return rd_bytes(ps, v, 8); }

/* Read a gguf string (u64 length + bytes). With ps->fill, copy it into the
 * arena and store it in *out; otherwise count its bytes. */
static pgd_status rd_str(parser *ps, gguf_str *out) {
    uint64_t len = 0;
    PGD_TRY(rd_u64(ps, &len));
    if (len > ps->size - ps->pos)
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: %s has length %" PRIu64 " at offset %zu, past the end of the "
                         "file (%zu bytes)",
                         ps->g->path, ps->what, len, ps->pos - 8, ps->size);
    pgd_gguf *g = ps->g;
    if (ps->fill) {
        char *s = g->arena + g->arena_used;
        PGD_ASSERT(g->arena_used + len + 1 <= g->arena_cap);
        memcpy(s, ps->p + ps->pos, (size_t)len);
        s[len] = '\0';
        g->arena_used += (size_t)len + 1;
        if (out) *out = (gguf_str){s, (size_t)len};
    } else {
        g->arena_cap += (size_t)len + 1;
    }
    ps->pos += (size_t)len;
    return PGD_OK;
}

/* Read (depth 0, kv != NULL) or skip (nested, kv == NULL) a value of `type`.
 * Strings are copied into the arena only in the fill pass. */
static pgd_status rd_value(parser *ps, uint32_t type, int depth, gguf_kv *kv) {
    size_t sz = type_size(type);
    if (sz) {
        uint8_t b[8] = {0};
        PGD_TRY(rd_bytes(ps, b, sz));
        if (type == PGD_GGUF_BOOL && b[0] > 1)
            return pgd_error(PGD_ERR_FORMAT, "%s: %s is a bool with value %u (must be 0 or 1)",
                             ps->g->path, ps->what, b[0]);
        if (!kv) return PGD_OK;
        switch (type) {
        case PGD_GGUF_U8: case PGD_GGUF_BOOL: kv->num.u = b[0]; break;
        case PGD_GGUF_I8: kv->num.i = (int8_t)b[0]; break;
        case PGD_GGUF_U16: { uint16_t v; memcpy(&v, b, 2); kv->num.u = v; break; }
        case PGD_GGUF_I16: { int16_t v; memcpy(&v, b, 2); kv->num.i = v; break; }
        case PGD_GGUF_U32: { uint32_t v; memcpy(&v, b, 4); kv->num.u = v; break; }
        case PGD_GGUF_I32: { int32_t v; memcpy(&v, b, 4); kv->num.i = v; break; }
        case PGD_GGUF_F32: { float v; memcpy(&v, b, 4); kv->num.f = v; break; }
        case PGD_GGUF_U64: memcpy(&kv->num.u, b, 8); break;
        case PGD_GGUF_I64: memcpy(&kv->num.i, b, 8); break;
        case PGD_GGUF_F64: memcpy(&kv->num.f, b, 8); break;
        default: break;
        }
        return PGD_OK;
    }
    if (type == PGD_GGUF_STRING) return rd_str(ps, kv ? &kv->str : NULL);
    if (type != PGD_GGUF_ARRAY)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s has unknown value type %" PRIu32, ps->g->path,
                         ps->what, type);
    if (depth >= GGUF_MAX_NEST)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s nests arrays deeper than %d levels",
                         ps->g->path, ps->what, GGUF_MAX_NEST);
    uint32_t et = 0;
    uint64_t count = 0;
    PGD_TRY(rd_u32(ps, &et));
    PGD_TRY(rd_u64(ps, &count));
    if (et > PGD_GGUF_F64)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s is an array of unknown element type %" PRIu32,
                         ps->g->path, ps->what, et);
    /* Smallest encoding of one element: its size, 8 (string length), 12 (array header). */
    size_t min_elem = type_size(et) ? type_size(et) : et == PGD_GGUF_STRING ? 8 : 12;
    if (count > (ps->size - ps->pos) / min_elem)
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: %s is an array of %" PRIu64 " %s elements, more than the %zu bytes "
                         "left in the file can hold",
                         ps->g->path, ps->what, count, type_name(et), ps->size - ps->pos);
    if (kv) {
        kv->elem_type = et;
        kv->count = (int64_t)count;
        kv->data = ps->p + ps->pos;
    }
    if (type_size(et)) {
        if (et == PGD_GGUF_BOOL) {
            for (uint64_t i = 0; i < count; i++)
                if (ps->p[ps->pos + i] > 1)
                    return pgd_error(PGD_ERR_FORMAT,
                                     "%s: %s element %" PRIu64 " is a bool with value %u",
                                     ps->g->path, ps->what, i, ps->p[ps->pos + i]);
        }
        ps->pos += (size_t)count * type_size(et);
        return PGD_OK;
    }
    pgd_gguf *g = ps->g;
    int keep = depth == 0 && et == PGD_GGUF_STRING; /* nested strings are skipped */
    if (keep && !ps->fill) g->elems_cap += (size_t)count;
    if (keep && kv && ps->fill) {
        kv->elems = g->elems + g->elems_used;
        g->elems_used += (size_t)count;
    }
    for (uint64_t i = 0; i < count; i++) {
        pgd_status st = et == PGD_GGUF_STRING
                            ? rd_str(ps, kv && ps->fill ? &kv->elems[i] : NULL)
                            : rd_value(ps, PGD_GGUF_ARRAY, depth + 1, NULL);
        if (st != PGD_OK) {
            if (depth > 0) return st;
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", pgd_last_error());
            return pgd_error(st, "%s (array element %" PRIu64 ")", msg, i);
        }
    }
    return PGD_OK;
}

static pgd_status rd_kv(parser *ps, int64_t i) {
    pgd_gguf *g = ps->g;
    gguf_kv tmp = {0}, *kv = ps->fill ? &g->kv[i] : &tmp;
    gguf_str key = {0};
    snprintf(ps->what, sizeof ps->what, "the key of metadata entry %" PRId64, i);
    size_t key_pos = ps->pos + 8;
    PGD_TRY(rd_str(ps, &key));
    size_t key_len = ps->pos - key_pos;
    const char *kp = (const char *)ps->p + key_pos;
    if (key_len == 0)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata entry %" PRId64 " has an empty key",
                         g->path, i);
    if (memchr(kp, '\0', key_len))
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key %" PRId64 " contains a NUL byte",
                         g->path, i);
    int kl = key_len > 200 ? 200 : (int)key_len;
    snprintf(ps->what, sizeof ps->what, "key '%.*s'%s", kl, kp, kl < (int)key_len ? "..." : "");
    uint32_t type = 0;
    PGD_TRY(rd_u32(ps, &type));
    if (type > PGD_GGUF_F64)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s has unknown value type %" PRIu32, g->path,
                         ps->what, type);
    kv->key = key.s;
    kv->type = type;
    PGD_TRY(rd_value(ps, type, 0, kv));
    if (!ps->fill && key_len == strlen("general.alignment") &&
        !memcmp(kp, "general.alignment", key_len)) {
        /* The spec says u32; accept any integer type holding a sane power of two. */
        if (!is_int_type(type))
            return pgd_error(PGD_ERR_FORMAT, "%s: general.alignment has type %s, expected u32",
                             g->path, type_name(type));
        int neg = (type == PGD_GGUF_I8 || type == PGD_GGUF_I16 || type == PGD_GGUF_I32 ||
                   type == PGD_GGUF_I64) && kv->num.i < 0;
        uint64_t a = kv->num.u;
        if (neg)
            return pgd_error(PGD_ERR_FORMAT, "%s: general.alignment = %" PRId64
                             " is negative", g->path, kv->num.i);
        if (a == 0 || (a & (a - 1)) || a > (1u << 30))
            return pgd_error(PGD_ERR_FORMAT, "%s: general.alignment = %" PRIu64
                             " is not a power of two in [1, 2^30]", g->path, a);
        g->alignment = (size_t)a;
    }
    return PGD_OK;
}

/* Checked product of the dims; 0 on overflow past INT64_MAX. */
static int64_t n_elements(const uint64_t *ne, int n) {
    uint64_t total = 1;
    for (int d = 0; d < n; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / total) return 0;
        total *= ne[d];
    }
    return (int64_t)total;
}

static pgd_status rd_tensor_info(parser *ps, int64_t i) {
    pgd_gguf *g = ps->g;
    pgd_gguf_tensor *t = ps->fill ? &g->tensors[i] : NULL;
    gguf_str name = {0};
    snprintf(ps->what, sizeof ps->what, "the name of tensor %" PRId64, i);
    size_t name_pos = ps->pos + 8;
    PGD_TRY(rd_str(ps, &name));
    size_t name_len = ps->pos - name_pos;
    const char *np = (const char *)ps->p + name_pos;
    if (name_len == 0)
        return pgd_error(PGD_ERR_FORMAT, "%s: tensor %" PRId64 " has an empty name", g->path, i);
    if (memchr(np, '\0', name_len))
        return pgd_error(PGD_ERR_FORMAT, "%s: the name of tensor %" PRId64 " contains a NUL byte",
                         g->path, i);
    int nl = name_len > 200 ? 200 : (int)name_len;
    const char *dots = nl < (int)name_len ? "..." : "";
    snprintf(ps->what, sizeof ps->what, "tensor '%.*s'%s", nl, np, dots);
    uint32_t n_dims = 0, type = 0;
    uint64_t ne[GGUF_MAX_DIMS] = {1, 1, 1, 1}, offset = 0;
    PGD_TRY(rd_u32(ps, &n_dims));
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s has %" PRIu32 " dimensions (must be 1..%d)",
                         g->path, ps->what, n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < n_dims; d++) PGD_TRY(rd_u64(ps, &ne[d]));
    PGD_TRY(rd_u32(ps, &type));
    PGD_TRY(rd_u64(ps, &offset));
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX)
            return pgd_error(PGD_ERR_FORMAT, "%s: %s has dimension %" PRIu32 " = %" PRIu64
                             " (must be positive)", g->path, ps->what, d, ne[d]);
    int64_t nel = n_elements(ne, (int)n_dims);
    if (nel == 0)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s has too many elements (%" PRIu64 " x %" PRIu64
                         " x %" PRIu64 " x %" PRIu64 " overflows)",
                         g->path, ps->what, ne[0], ne[1], ne[2], ne[3]);
    if (type > INT32_MAX || !ggml_type_name((int)type))
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: %s has ggml type %" PRIu32
                         ", which is not supported (only F32=0, F16=1, Q4_0=2, Q8_0=8, Q4_K=12, Q6_K=14, BF16=30)",
                         g->path, ps->what, type);
    uint64_t nbytes;
    if (type == PGD_GGML_Q8_0 || type == PGD_GGML_Q4_0 || type == PGD_GGML_Q4_K || type == PGD_GGML_Q6_K) {
        int kq = type == PGD_GGML_Q4_K || type == PGD_GGML_Q6_K;
        uint64_t qb = kq ? 256 : 32; /* values per block */
        if (ne[0] % qb)
            return pgd_error(PGD_ERR_FORMAT,
                             "%s: %s is %s but its row length %" PRIu64 " is not a multiple of the block size %" PRIu64,
                             g->path, ps->what, ggml_type_name((int)type), ne[0], qb);
        /* bytes per block: 34 (Q8_0), 18 (Q4_0), 144 (Q4_K), 210 (Q6_K) */
        uint64_t bsz = type == PGD_GGML_Q8_0 ? 34 : type == PGD_GGML_Q4_0 ? 18 : type == PGD_GGML_Q4_K ? 144 : 210;
        nbytes = (uint64_t)nel / qb;
        if (nbytes > UINT64_MAX / bsz) goto too_big;
        nbytes *= bsz;
    } else {
        uint64_t es = type == PGD_GGML_F32 ? 4 : 2;
        if ((uint64_t)nel > UINT64_MAX / es) goto too_big;
        nbytes = (uint64_t)nel * es;
    }
    if (nbytes > SIZE_MAX) goto too_big;
    if (offset % g->alignment)
        return pgd_error(PGD_ERR_FORMAT, "%s: %s data offset %" PRIu64
                         " is not a multiple of the alignment %zu", g->path, ps->what, offset,
                         g->alignment);
    if (t) {
        t->name = name.s;
        t->n_dims = (int)n_dims;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = (int64_t)ne[d];
        t->type = (int)type;
        t->nbytes = (size_t)nbytes;
        t->data = NULL; /* set once the data section start is known */
        g->offsets[i] = offset;
    }
    return PGD_OK;
too_big:
    return pgd_error(PGD_ERR_FORMAT, "%s: %s is too large (%" PRId64 " elements)", g->path,
                     ps->what, nel);
}

static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const gguf_name_idx *)a)->name, ((const gguf_name_idx *)b)->name);
}

static int64_t find_index(const gguf_name_idx *idx, int64_t n, const char *name) {
    if (!name || n == 0) return -1;
    gguf_name_idx key = {name, 0};
    const gguf_name_idx *hit = bsearch(&key, idx, (size_t)n, sizeof *idx, cmp_name_idx);
    return hit ? hit->i : -1;
}

/* Header: magic, version, tensor and kv counts (checked against the file size). */
static pgd_status rd_header(parser *ps) {
    pgd_gguf *g = ps->g;
    const uint8_t *m = ps->p;
    if (ps->size < 4)
        return pgd_error(PGD_ERR_FORMAT, "%s: file is %zu bytes, too small to be a GGUF file",
                         g->path, ps->size);
    if (memcmp(m, "GGUF", 4))
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected "
                         "'GGUF')", g->path, m[0], m[1], m[2], m[3]);
    ps->pos = 4;
    snprintf(ps->what, sizeof ps->what, "the GGUF version");
    PGD_TRY(rd_u32(ps, &g->version));
    uint32_t v = g->version;
    if (v == 1)
        return pgd_error(PGD_ERR_FORMAT, "%s: GGUF version 1 is not supported (only versions 2 "
                         "and 3); re-convert the model with a current llama.cpp", g->path);
    if (v == 0x02000000u || v == 0x03000000u)
        return pgd_error(PGD_ERR_FORMAT, "%s: big-endian GGUF files are not supported", g->path);
    if (v != 2 && v != 3)
        return pgd_error(PGD_ERR_FORMAT, "%s: unsupported GGUF version %" PRIu32
                         " (only versions 2 and 3)", g->path, v);
    uint64_t nt = 0, nkv = 0;
    snprintf(ps->what, sizeof ps->what, "the tensor count");
    PGD_TRY(rd_u64(ps, &nt));
    snprintf(ps->what, sizeof ps->what, "the metadata count");
    PGD_TRY(rd_u64(ps, &nkv));
    /* Smallest encodings: a kv is 8+1+4+1 bytes, a tensor info 8+1+4+8+4+8. */
    size_t left = ps->size - ps->pos;
    if (nkv > left / 14 || nt > left / 33 || nkv * 14 + nt * 33 > left)
        return pgd_error(PGD_ERR_FORMAT,
                         "%s: header claims %" PRIu64 " metadata entries and %" PRIu64
                         " tensors, more than the file (%zu bytes) can hold",
                         g->path, nkv, nt, ps->size);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    return PGD_OK;
}

/* One pass over the metadata and tensor-info sections. */
static pgd_status rd_sections(parser *ps) {
    pgd_gguf *g = ps->g;
    ps->pos = 24;
    for (int64_t i = 0; i < g->n_kv; i++) PGD_TRY(rd_kv(ps, i));
    for (int64_t i = 0; i < g->n_tensors; i++) PGD_TRY(rd_tensor_info(ps, i));
    return PGD_OK;
}

/* After the fill pass: unique names, sorted indexes, data section bounds. */
static pgd_status check_and_index(pgd_gguf *g, size_t info_end) {
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_by_key[i] = (gguf_name_idx){g->kv[i].key, i};
    qsort(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_name_idx);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (!strcmp(g->kv_by_key[i].name, g->kv_by_key[i - 1].name))
            return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' appears more than once",
                             g->path, g->kv_by_key[i].name);
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->t_by_name[i] = (gguf_name_idx){g->tensors[i].name, i};
    qsort(g->t_by_name, (size_t)g->n_tensors, sizeof *g->t_by_name, cmp_name_idx);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->t_by_name[i].name, g->t_by_name[i - 1].name))
            return pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' appears more than once", g->path,
                             g->t_by_name[i].name);
    size_t pad = (g->alignment - info_end % g->alignment) % g->alignment;
    g->data_start = info_end + pad;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        pgd_gguf_tensor *t = &g->tensors[i];
        uint64_t off = g->offsets[i];
        if (g->data_start > g->size || off > g->size - g->data_start ||
            t->nbytes > g->size - g->data_start - off)
            return pgd_error(PGD_ERR_FORMAT,
                             "%s: tensor '%s' data [offset %" PRIu64 ", %zu bytes] lies past the "
                             "end of the file (%zu bytes, data section at %zu)",
                             g->path, t->name, off, t->nbytes, g->size, g->data_start);
        t->data = g->map + g->data_start + off;
    }
    return PGD_OK;
}

pgd_status pgd_gguf_open(const char *path, pgd_gguf **out) {
    if (!path || !out) return pgd_error(PGD_ERR_INVALID, "pgd_gguf_open: NULL argument");
    *out = NULL;
    pgd_status st;
    int fd = -1;
    pgd_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory opening GGUF file", path);
        goto fail;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = pgd_error(PGD_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = pgd_error(PGD_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = pgd_error(PGD_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    g->size = (size_t)sb.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = pgd_error(PGD_ERR_IO, "cannot map %s: %s", path, strerror(errno));
            goto fail;
        }
        g->map = m;
    }
    close(fd);
    fd = -1;

    parser ps = {.g = g, .p = g->map, .size = g->size};
    if ((st = rd_header(&ps)) != PGD_OK) goto fail;
    if ((st = rd_sections(&ps)) != PGD_OK) goto fail; /* validate, count strings */
    size_t info_end = ps.pos;
    g->kv = calloc((size_t)g->n_kv + 1, sizeof *g->kv);
    g->kv_by_key = calloc((size_t)g->n_kv + 1, sizeof *g->kv_by_key);
    g->tensors = calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    g->offsets = calloc((size_t)g->n_tensors + 1, sizeof *g->offsets);
    g->t_by_name = calloc((size_t)g->n_tensors + 1, sizeof *g->t_by_name);
    g->arena = malloc(g->arena_cap + 1);
    g->elems = calloc(g->elems_cap + 1, sizeof *g->elems);
    if (!g->kv || !g->kv_by_key || !g->tensors || !g->offsets || !g->t_by_name || !g->arena ||
        !g->elems) {
        st = pgd_error(PGD_ERR_OOM, "%s: out of memory reading GGUF metadata", path);
        goto fail;
    }
    ps.fill = 1;
    if ((st = rd_sections(&ps)) != PGD_OK) goto fail; /* copy strings */
    PGD_ASSERT(ps.pos == info_end && g->arena_used == g->arena_cap &&
               g->elems_used == g->elems_cap);
    if ((st = check_and_index(g, info_end)) != PGD_OK) goto fail;
    *out = g;
    return PGD_OK;
fail:
    if (fd >= 0) close(fd);
    pgd_gguf_close(g);
    return st;
}

void pgd_gguf_close(pgd_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    free(g->path);
    free(g->kv);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->offsets);
    free(g->t_by_name);
    free(g->arena);
    free(g->elems);
    free(g);
}

const char *pgd_gguf_path(const pgd_gguf *g) { return g->path; }
uint32_t pgd_gguf_version(const pgd_gguf *g) { return g->version; }
int64_t pgd_gguf_n_kv(const pgd_gguf *g) { return g->n_kv; }
int64_t pgd_gguf_n_tensors(const pgd_gguf *g) { return g->n_tensors; }
size_t pgd_gguf_alignment(const pgd_gguf *g) { return g->alignment; }
size_t pgd_gguf_data_offset(const pgd_gguf *g) { return g->data_start; }
const char *pgd_gguf_type_name(int ggml_type) {
    const char *n = ggml_type_name(ggml_type);
    return n ? n : "unknown";
}

/* ---- metadata lookup ---- */

static const gguf_kv *find_kv(const pgd_gguf *g, const char *key) {
    int64_t i = find_index(g->kv_by_key, g->n_kv, key);
    return i < 0 ? NULL : &g->kv[i];
}

/* The kv for `key` with value type `type`, or an error naming both. */
static pgd_status lookup(const pgd_gguf *g, const char *key, uint32_t type, const gguf_kv **kv) {
    *kv = find_kv(g, key);
    if (!*kv)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' is missing", g->path,
                         key ? key : "(null)");
    if ((*kv)->type != type)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected %s",
                         g->path, key, type_name((*kv)->type), type_name(type));
    return PGD_OK;
}

int pgd_gguf_has_key(const pgd_gguf *g, const char *key) { return find_kv(g, key) != NULL; }

pgd_status pgd_gguf_get_bool(const pgd_gguf *g, const char *key, int *v) {
    const gguf_kv *kv;
    PGD_TRY(lookup(g, key, PGD_GGUF_BOOL, &kv));
    if (v) *v = kv->num.u != 0;
    return PGD_OK;
}

pgd_status pgd_gguf_get_str(const pgd_gguf *g, const char *key, const char **s, size_t *len) {
    const gguf_kv *kv;
    PGD_TRY(lookup(g, key, PGD_GGUF_STRING, &kv));
    if (s) *s = kv->str.s;
    if (len) *len = kv->str.len;
    return PGD_OK;
}

/* Decode an integer of gguf type `t` from `raw` (little-endian, in the map). */
static void read_int(uint32_t t, const uint8_t *raw, int64_t *v, uint64_t *u, int *is_unsigned) {
    uint8_t b[8];
    memcpy(b, raw, type_size(t));
    *is_unsigned = 0;
    switch (t) {
    case PGD_GGUF_U8: *u = b[0]; *is_unsigned = 1; break;
    case PGD_GGUF_I8: *v = (int8_t)b[0]; break;
    case PGD_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); *u = x; *is_unsigned = 1; break; }
    case PGD_GGUF_I16: { int16_t x; memcpy(&x, b, 2); *v = x; break; }
    case PGD_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); *u = x; *is_unsigned = 1; break; }
    case PGD_GGUF_I32: { int32_t x; memcpy(&x, b, 4); *v = x; break; }
    case PGD_GGUF_U64: memcpy(u, b, 8); *is_unsigned = 1; break;
    case PGD_GGUF_I64: memcpy(v, b, 8); break;
    default: PGD_ASSERT(!"not an integer type");
    }
}

static pgd_status int_result(const pgd_gguf *g, const char *key, int is_unsigned, uint64_t u,
                             int64_t i, int64_t *v) {
    if (is_unsigned) {
        if (u > (uint64_t)INT64_MAX)
            return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' = %" PRIu64
                             " does not fit in int64", g->path, key, u);
        i = (int64_t)u;
    }
    if (v) *v = i;
    return PGD_OK;
}

pgd_status pgd_gguf_get_int(const pgd_gguf *g, const char *key, int64_t *v) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' is missing", g->path,
                         key ? key : "(null)");
    if (!is_int_type(kv->type))
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected an integer",
                         g->path, key, type_name(kv->type));
    int is_u = kv->type == PGD_GGUF_U8 || kv->type == PGD_GGUF_U16 ||
               kv->type == PGD_GGUF_U32 || kv->type == PGD_GGUF_U64;
    return int_result(g, key, is_u, kv->num.u, kv->num.i, v);
}

pgd_status pgd_gguf_get_f32(const pgd_gguf *g, const char *key, float *v) {
    const gguf_kv *kv = find_kv(g, key);
    if (!kv)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' is missing", g->path,
                         key ? key : "(null)");
    if (kv->type != PGD_GGUF_F32 && kv->type != PGD_GGUF_F64)
        return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' has type %s, expected f32",
                         g->path, key, type_name(kv->type));
    if (v) *v = (float)kv->num.f;
    return PGD_OK;
}

pgd_status pgd_gguf_get_arr(const pgd_gguf *g, const char *key, int *elem_type, int64_t *count) {
    const gguf_kv *kv;
    PGD_TRY(lookup(g, key, PGD_GGUF_ARRAY, &kv));
    if (elem_type) *elem_type = (int)kv->elem_type;
    if (count) *count = kv->count;
    return PGD_OK;
}

/* The array kv for `key`, checking the index. */
static pgd_status lookup_elem(const pgd_gguf *g, const char *key, int64_t i, const gguf_kv **kv) {
    PGD_TRY(lookup(g, key, PGD_GGUF_ARRAY, kv));
    if (i < 0 || i >= (*kv)->count)
        return pgd_error(PGD_ERR_INVALID, "%s: index %" PRId64 " out of range for array '%s' "
                         "of %" PRId64 " elements", g->path, i, key, (*kv)->count);
    return PGD_OK;
}

static pgd_status elem_type_error(const pgd_gguf *g, const char *key, uint32_t et,
                                  const char *want) {
    return pgd_error(PGD_ERR_FORMAT, "%s: metadata key '%s' is an array of %s, expected %s",
                     g->path, key, type_name(et), want);
}

pgd_status pgd_gguf_arr_str(const pgd_gguf *g, const char *key, int64_t i, const char **s,
                            size_t *len) {
    const gguf_kv *kv;
    PGD_TRY(lookup_elem(g, key, i, &kv));
    if (kv->elem_type != PGD_GGUF_STRING)
        return elem_type_error(g, key, kv->elem_type, "strings");
    if (s) *s = kv->elems[i].s;
    if (len) *len = kv->elems[i].len;
    return PGD_OK;
}

pgd_status pgd_gguf_arr_f32(const pgd_gguf *g, const char *key, int64_t i, float *v) {
    const gguf_kv *kv;
    PGD_TRY(lookup_elem(g, key, i, &kv));
    if (kv->elem_type == PGD_GGUF_F32) {
        float f;
        memcpy(&f, kv->data + (size_t)i * 4, 4);
        if (v) *v = f;
    } else if (kv->elem_type == PGD_GGUF_F64) {
        double d;
        memcpy(&d, kv->data + (size_t)i * 8, 8);
        if (v) *v = (float)d;
    } else {
        return elem_type_error(g, key, kv->elem_type, "f32");
    }
    return PGD_OK;
}

pgd_status pgd_gguf_arr_int(const pgd_gguf *g, const char *key, int64_t i, int64_t *v) {
    const gguf_kv *kv;
    PGD_TRY(lookup_elem(g, key, i, &kv));
    if (!is_int_type(kv->elem_type)) return elem_type_error(g, key, kv->elem_type, "integers");
    int64_t si = 0;
    uint64_t u = 0;
    int is_u;
    size_t es = type_size(kv->elem_type);
    read_int(kv->elem_type, kv->data + (size_t)i * es, &si, &u, &is_u);
    return int_result(g, key, is_u, u, si, v);
}

/* ---- tensors ---- */

const pgd_gguf_tensor *pgd_gguf_find_tensor(const pgd_gguf *g, const char *name) {
    int64_t i = find_index(g->t_by_name, g->n_tensors, name);
    return i < 0 ? NULL : &g->tensors[i];
}

const pgd_gguf_tensor *pgd_gguf_tensor_at(const pgd_gguf *g, int64_t i) {
    return i < 0 || i >= g->n_tensors ? NULL : &g->tensors[i];
}

int64_t pgd_gguf_tensor_nelements(const pgd_gguf_tensor *t) {
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

pgd_status pgd_gguf_tensor_to_f32(const pgd_gguf_tensor *t, float *dst) {
    if (!t || !dst) return pgd_error(PGD_ERR_INVALID, "pgd_gguf_tensor_to_f32: NULL argument");
    const uint8_t *src = t->data;
    size_t n = (size_t)pgd_gguf_tensor_nelements(t);
    switch (t->type) {
    case PGD_GGML_F32:
        memcpy(dst, src, n * 4);
        break;
    case PGD_GGML_F16:
    case PGD_GGML_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = t->type == PGD_GGML_F16 ? pgd_f16_to_f32(h) : pgd_bf16_to_f32(h);
        }
        break;
    case PGD_GGML_Q8_0: /* blocks of 32 values (dtype.h) */
    case PGD_GGML_Q4_0:
        pgd_dtype_to_f32(dst, src, t->type == PGD_GGML_Q8_0 ? PGD_Q8_0 : PGD_Q4_0, n);
        break;
    case PGD_GGML_Q4_K: /* super-blocks of 256 values (dtype.h) */
    case PGD_GGML_Q6_K: pgd_dtype_to_f32(dst, src, t->type == PGD_GGML_Q4_K ? PGD_Q4_K : PGD_Q6_K, n); break;
    default:
        return pgd_error(PGD_ERR_UNSUPPORTED, "tensor '%s': ggml type %d cannot be converted",
                         t->name, t->type);
    }
    return PGD_OK;
}
