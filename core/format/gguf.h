/* gguf.h - reader for GGUF v2/v3 files (core/format: a module below both
 * the model loader and the tokenizer, which read GGUF files).
 *
 * The file is mmap'd read-only. pgd_gguf_open() validates everything before
 * returning: magic "GGUF", version 2 or 3, counts that fit the file, every
 * metadata key/value well-formed (strings and arrays within bounds), every
 * tensor's type known, its dims positive, and its data (offset aligned to
 * general.alignment, default 32) lying inside the file. Any violation is a
 * PGD_ERR_FORMAT whose message names the file and the offending item. */
#ifndef PAGODA_GGUF_H
#define PAGODA_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda/status.h"

typedef struct pgd_gguf pgd_gguf;

/* GGUF value types (gguf spec numbering). */
enum {
    PGD_GGUF_U8 = 0, PGD_GGUF_I8 = 1, PGD_GGUF_U16 = 2, PGD_GGUF_I16 = 3,
    PGD_GGUF_U32 = 4, PGD_GGUF_I32 = 5, PGD_GGUF_F32 = 6, PGD_GGUF_BOOL = 7,
    PGD_GGUF_STRING = 8, PGD_GGUF_ARRAY = 9, PGD_GGUF_U64 = 10, PGD_GGUF_I64 = 11,
    PGD_GGUF_F64 = 12,
};

/* ggml tensor types we read (others are rejected by name/number). */
enum {
    PGD_GGML_F32 = 0,
    PGD_GGML_F16 = 1,
    PGD_GGML_Q4_0 = 2,
    PGD_GGML_Q8_0 = 8,
    PGD_GGML_BF16 = 30,
    PGD_GGML_Q4_K = 12,
    PGD_GGML_Q6_K = 14,
};

typedef struct pgd_gguf_tensor {
    const char *name;        /* NUL-terminated copy */
    int n_dims;
    int64_t ne[4];           /* ne[0] is the innermost (contiguous) dimension */
    int type;                /* PGD_GGML_* */
    size_t nbytes;
    const void *data;        /* points into the mapping */
} pgd_gguf_tensor;

pgd_status pgd_gguf_open(const char *path, pgd_gguf **out);
void pgd_gguf_close(pgd_gguf *g);

const char *pgd_gguf_path(const pgd_gguf *g);
uint32_t pgd_gguf_version(const pgd_gguf *g);
int64_t pgd_gguf_n_kv(const pgd_gguf *g);
int64_t pgd_gguf_n_tensors(const pgd_gguf *g);

/* Metadata lookup. Return PGD_OK, or PGD_ERR_FORMAT (key missing or of
 * another type; the message names the key and the file). Integer getters
 * accept any integer type whose value fits. Strings are NUL-terminated
 * copies owned by g (len excludes the NUL; the bytes may contain NULs).
 * An array index out of range is PGD_ERR_INVALID. Arrays of arrays are
 * validated on open but their elements cannot be read. */
pgd_status pgd_gguf_get_str(const pgd_gguf *g, const char *key, const char **s, size_t *len);
pgd_status pgd_gguf_get_int(const pgd_gguf *g, const char *key, int64_t *v);
pgd_status pgd_gguf_get_f32(const pgd_gguf *g, const char *key, float *v); /* f32 or f64 */
int pgd_gguf_has_key(const pgd_gguf *g, const char *key);
pgd_status pgd_gguf_get_bool(const pgd_gguf *g, const char *key, int *v); /* bool keys */
/* Array metadata: element type and count; then element access. */
pgd_status pgd_gguf_get_arr(const pgd_gguf *g, const char *key, int *elem_type, int64_t *count);
pgd_status pgd_gguf_arr_str(const pgd_gguf *g, const char *key, int64_t i, const char **s,
                            size_t *len);
pgd_status pgd_gguf_arr_f32(const pgd_gguf *g, const char *key, int64_t i, float *v);
pgd_status pgd_gguf_arr_int(const pgd_gguf *g, const char *key, int64_t i, int64_t *v);

/* Tensor lookup by name; NULL if absent. */
const pgd_gguf_tensor *pgd_gguf_find_tensor(const pgd_gguf *g, const char *name);
const pgd_gguf_tensor *pgd_gguf_tensor_at(const pgd_gguf *g, int64_t i);

/* general.alignment (default 32) and the file offset of the tensor data section. */
size_t pgd_gguf_alignment(const pgd_gguf *g);
size_t pgd_gguf_data_offset(const pgd_gguf *g);
/* "F32", "F16", "Q4_0", "Q8_0", "BF16", or "unknown". */
const char *pgd_gguf_type_name(int ggml_type);
/* ne[0] * ne[1] * ne[2] * ne[3] (unused dims are 1). */
int64_t pgd_gguf_tensor_nelements(const pgd_gguf_tensor *t);
/* Convert a whole tensor (F32/F16/BF16/Q8_0/Q4_0) to f32: dst holds
 * pgd_gguf_tensor_nelements(t) floats. */
pgd_status pgd_gguf_tensor_to_f32(const pgd_gguf_tensor *t, float *dst);

#endif
