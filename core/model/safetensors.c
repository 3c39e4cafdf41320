/* safetensors.c - loader for Hugging Face Llama-family checkpoint
 * directories: config.json plus model.safetensors, or the shards a
 * model.safetensors.index.json's weight_map names; an optional
 * tokenizer.json becomes the model's tokenizer (BOS/EOS from config.json).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {...}}, then the data (offsets relative to its start). Each file is
 * mmap'ed read-only and its header checked whole before any tensor is used:
 * valid JSON, length within the file, every entry's offsets inside the data
 * and agreeing with its shape and dtype, no two tensors overlapping, dtype
 * names known. F32, F16 and BF16 tensors are used as they are (the matmul
 * weights run in the dtype of layer 0's q_proj when the backend takes it,
 * else f32); any tensor's shape must match config.json.
 *
 * HF names map to Pagoda's tensors: model.embed_tokens, model.layers.N.
 * {input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
 * mlp.{gate,up,down}_proj}, model.norm, lm_head (absent = tied). HF's
 * q_proj/k_proj rows are permuted for rotate_half rotary (within each head,
 * HF row p*hd/2 + i holds Meta/llama2.c row 2i + p); the loader undoes that
 * so the forward pass (interleaved pairs) is unchanged. Each rank uploads
 * only its shard (pgd_model_put_tensor), reading only those pages except
 * for q/k, which are un-permuted whole through a host buffer. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_impl.h"

#define ST_MAX_HEADER (100u << 20) /* the format's own limit is 100 MB */
#define ST_MAX_FILES 256

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
    json_t *header;
    const char *data; /* map + 8 + N */
    size_t data_size;
} st_file;

typedef struct st_dir {
    const char *dir;
    st_file files[ST_MAX_FILES];
    int n_files;
    json_t *weight_map; /* index: name -> file name; NULL for one file */
} st_dir;

static int dtype_known(const char *d) {
    static const char *const names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
                                        "F64", "I64", "U64", "F8_E4M3", "F8_E5M2", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(d, names[i])) return 1;
    return 0;
}

static size_t dtype_size(const char *d) {
    if (!strcmp(d, "BOOL") || !strcmp(d, "U8") || !strcmp(d, "I8") || !strncmp(d, "F8", 2)) return 1;
    if (!strcmp(d, "I16") || !strcmp(d, "U16") || !strcmp(d, "F16") || !strcmp(d, "BF16")) return 2;
    if (!strcmp(d, "I32") || !strcmp(d, "U32") || !strcmp(d, "F32")) return 4;
    return 8;
}

typedef struct span { size_t b, e; const char *name; } span;
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

static pgd_status check_header(st_file *f) {
    const char *path = f->path;
    if (!json_is_object(f->header))
        return pgd_error(PGD_ERR_FORMAT, "%s: the safetensors header is not a JSON object", path);
    size_t n = json_object_size(f->header), k = 0;
    span *sp = malloc((n + 1) * sizeof *sp);
    if (!sp) return pgd_error(PGD_ERR_OOM, "%s: out of memory", path);
    pgd_status s = PGD_OK;
    const char *name;
    json_t *v;
    json_object_foreach(f->header, name, v) {
        if (!strcmp(name, "__metadata__")) continue;
        json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
               *off = json_object_get(v, "data_offsets");
        if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(off) || json_array_size(off) != 2 ||
            !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1))) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' needs a dtype string, a shape array and data_offsets "
                          "[begin, end]", path, name);
            goto out;
        }
        if (!dtype_known(json_string_value(dt))) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", path, name,
                          json_string_value(dt));
            goto out;
        }
        long long b = json_integer_value(json_array_get(off, 0)), e = json_integer_value(json_array_get(off, 1));
        if (b < 0 || e < b || (unsigned long long)e > f->data_size) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' has data_offsets [%lld, %lld] past the end of the data "
                          "(%zu bytes)", path, name, b, e, f->data_size);
            goto out;
        }
        size_t count = 1;
        json_t *d;
        size_t i;
        json_array_foreach(shape, i, d) {
            if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > (1LL << 40)) {
                s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' has a bad shape entry %zu", path, name, i);
                goto out;
            }
            count *= (size_t)json_integer_value(d);
        }
        size_t want = count * dtype_size(json_string_value(dt));
        if (want != (size_t)(e - b)) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s': its shape and dtype %s need %zu bytes, data_offsets "
                          "[%lld, %lld] hold %lld", path, name, json_string_value(dt), want, b, e, e - b);
            goto out;
        }
        sp[k++] = (span){(size_t)b, (size_t)e, name};
    }
    qsort(sp, k, sizeof *sp, span_cmp);
    for (size_t i = 1; i < k; i++)
        if (sp[i].b < sp[i - 1].e && sp[i].e > sp[i].b) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", path,
                          sp[i - 1].name, sp[i - 1].b, sp[i - 1].e, sp[i].name, sp[i].b, sp[i].e);
            goto out;
        }
out:
    free(sp);
    return s;
}

static pgd_status open_file(st_dir *d, const char *fname, st_file **out) {
    for (int i = 0; i < d->n_files; i++) {
        const char *p = strrchr(d->files[i].path, '/');
        if (!strcmp(p ? p + 1 : d->files[i].path, fname)) {
            *out = &d->files[i];
            return PGD_OK;
        }
    }
    if (d->n_files == ST_MAX_FILES)
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: more than %d safetensors shards", d->dir, ST_MAX_FILES);
    if (strchr(fname, '/'))
        return pgd_error(PGD_ERR_FORMAT, "%s: shard name '%s' is not a file in the directory", d->dir, fname);
    st_file *f = &d->files[d->n_files];
    memset(f, 0, sizeof *f);
    f->map = MAP_FAILED;
    size_t pl = strlen(d->dir) + strlen(fname) + 2;
    if (!(f->path = malloc(pl))) return pgd_error(PGD_ERR_OOM, "out of memory");
    snprintf(f->path, pl, "%s/%s", d->dir, fname);
    d->n_files++;
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return pgd_error(PGD_ERR_IO, "cannot open '%s': %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return pgd_error(PGD_ERR_IO, "cannot stat '%s': %s", f->path, strerror(errno));
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        return pgd_error(PGD_ERR_FORMAT, "%s: truncated: %zu bytes, not even the 8-byte header length", f->path,
                         f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) return pgd_error(PGD_ERR_IO, "cannot map '%s': %s", f->path, strerror(errno));
    const unsigned char *p = f->map;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
    if (hl > f->size - 8 || hl > ST_MAX_HEADER)
        return pgd_error(PGD_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)%s",
                         f->path, hl, f->size, hl > ST_MAX_HEADER ? " or over the 100 MB limit" : "");
    json_error_t err;
    f->header = json_loadb((const char *)p + 8, (size_t)hl, 0, &err);
    if (!f->header)
        return pgd_error(PGD_ERR_FORMAT, "%s: the safetensors header is not valid JSON (column %d: %s)", f->path,
                         err.column, err.text);
    f->data = (const char *)p + 8 + hl;
    f->data_size = f->size - 8 - (size_t)hl;
    PGD_TRY(check_header(f));
    *out = f;
    return PGD_OK;
}

static void close_dir(st_dir *d) {
    for (int i = 0; i < d->n_files; i++) {
        if (d->files[i].map != MAP_FAILED && d->files[i].map) munmap(d->files[i].map, d->files[i].size);
        json_decref(d->files[i].header);
        free(d->files[i].path);
    }
    json_decref(d->weight_map);
}

/* The header entry of tensor `name` and its file; NULL entry when absent. */
static pgd_status find(st_dir *d, const char *name, st_file **fo, json_t **eo) {
    *eo = NULL;
    *fo = NULL;
    if (d->weight_map) {
        const char *fname = json_string_value(json_object_get(d->weight_map, name));
        if (!fname) return PGD_OK;
        PGD_TRY(open_file(d, fname, fo));
        *eo = json_object_get((*fo)->header, name);
        if (!*eo)
            return pgd_error(PGD_ERR_FORMAT, "%s: the index puts tensor '%s' in this file but its header has no "
                             "such tensor", (*fo)->path, name);
        return PGD_OK;
    }
    *fo = &d->files[0];
    *eo = json_object_get((*fo)->header, name);
    return PGD_OK;
}

static pgd_status tensor_dtype(const st_file *f, const char *name, json_t *e, pgd_dtype *dt) {
    const char *s = json_string_value(json_object_get(e, "dtype"));
    if (!strcmp(s, "F32")) *dt = PGD_F32;
    else if (!strcmp(s, "F16")) *dt = PGD_F16;
    else if (!strcmp(s, "BF16")) *dt = PGD_BF16;
    else
        return pgd_error(PGD_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", f->path,
                         name, s);
    return PGD_OK;
}

/* Find `name`, check its shape is (rows, cols) (cols = 0: a vector of rows)
 * and hand it over; permute_heads > 0 undoes HF's rotary row permutation
 * over that many heads. */
static pgd_status put(pgd_model *m, st_dir *d, const char *name, int64_t rows, int64_t cols, pgd_tensor_kind kind,
                      int layer, int permute_heads) {
    st_file *f;
    json_t *e;
    PGD_TRY(find(d, name, &f, &e));
    if (!e) return pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' is missing", d->dir, name);
    json_t *shape = json_object_get(e, "shape");
    int nd = (int)json_array_size(shape);
    int64_t s0 = nd > 0 ? json_integer_value(json_array_get(shape, 0)) : -1,
            s1 = nd > 1 ? json_integer_value(json_array_get(shape, 1)) : -1;
    if (cols ? (nd != 2 || s0 != rows || s1 != cols) : (nd != 1 || s0 != rows)) {
        char want[64], got[96] = "[";
        if (cols) snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
        else snprintf(want, sizeof want, "[%lld]", (long long)rows);
        for (int i = 0; i < nd && i < 4; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)json_integer_value(json_array_get(shape, (size_t)i)));
        strcat(got, "]");
        return pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", f->path, name, got,
                         want);
    }
    pgd_dtype dt = PGD_F32;
    PGD_TRY(tensor_dtype(f, name, e, &dt));
    const char *data = f->data + json_integer_value(json_array_get(json_object_get(e, "data_offsets"), 0));
    if (!permute_heads) return pgd_model_put_tensor(m, kind, layer, &(pgd_tensor_src){.data = data, .dt = dt});
    size_t row = pgd_dtype_bytes(dt, (size_t)cols), hd = (size_t)rows / (size_t)permute_heads, half = hd / 2;
    char *buf = malloc(row * (size_t)rows);
    if (!buf) return pgd_error(PGD_ERR_OOM, "%s: out of memory un-permuting '%s'", d->dir, name);
    for (size_t h = 0; h < (size_t)permute_heads; h++)
        for (size_t i = 0; i < half; i++)
            for (size_t p = 0; p < 2; p++)
                memcpy(buf + (h * hd + 2 * i + p) * row, data + (h * hd + p * half + i) * row, row);
    pgd_status s = pgd_model_put_tensor(m, kind, layer, &(pgd_tensor_src){.data = buf, .dt = dt});
    free(buf);
    return s;
}

/* config.json integer `key` (> 0), or dflt when absent (dflt < 0: required). */
static pgd_status cfg_int(const char *path, json_t *cfg, const char *key, long long dflt, int *out) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        if (dflt < 0) return pgd_error(PGD_ERR_FORMAT, "%s: '%s' is missing", path, key);
        *out = (int)dflt;
        return PGD_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > (1LL << 30))
        return pgd_error(PGD_ERR_FORMAT, "%s: '%s' must be a positive integer", path, key);
    *out = (int)json_integer_value(v);
    return PGD_OK;
}

static pgd_status cfg_num(const char *path, json_t *cfg, const char *key, double dflt, float *out) {
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        *out = (float)dflt;
        return PGD_OK;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        return pgd_error(PGD_ERR_FORMAT, "%s: '%s' must be a positive number", path, key);
    *out = (float)json_number_value(v);
    return PGD_OK;
}

/* A token id from config.json (an integer or a list whose first entry is used), or -1. */
static int cfg_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

/* Read and check config.json of dir into c (the model's shape only). */
static pgd_status read_config(const char *dir, pgd_model_config *c, json_t **cfg_out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    if (!cfg) {
        if (access(path, R_OK) != 0)
            return pgd_error(PGD_ERR_IO, "%s: no readable config.json (a safetensors checkpoint directory needs one)",
                             dir);
        return pgd_error(PGD_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", path, err.line, err.text);
    }
    pgd_status s = PGD_OK;
    const char *mt = json_string_value(json_object_get(cfg, "model_type"));
    if (mt && strcmp(mt, "llama") && strcmp(mt, "mistral")) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (llama%s)", path, mt,
                      !strcmp(mt, "qwen2") ? "; Qwen2's q/k/v biases are not implemented in the forward pass" : "");
        goto out;
    }
    if (json_is_true(json_object_get(cfg, "attention_bias")) || json_is_true(json_object_get(cfg, "mlp_bias"))) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: attention_bias/mlp_bias are not supported (the forward pass has no "
                      "biases)", path);
        goto out;
    }
    json_t *rs = json_object_get(cfg, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: rope_scaling is not supported (plain RoPE only)", path);
        goto out;
    }
    memset(c, 0, sizeof *c);
    const char *base = strrchr(dir, '/');
    snprintf(c->name, sizeof c->name, "%s", base && base[1] ? base + 1 : dir);
    if ((s = cfg_int(path, cfg, "hidden_size", -1, &c->dim)) || (s = cfg_int(path, cfg, "num_hidden_layers", -1, &c->n_layers)) ||
        (s = cfg_int(path, cfg, "num_attention_heads", -1, &c->n_heads)) ||
        (s = cfg_int(path, cfg, "num_key_value_heads", c->n_heads, &c->n_kv_heads)) ||
        (s = cfg_int(path, cfg, "intermediate_size", -1, &c->hidden_dim)) ||
        (s = cfg_int(path, cfg, "vocab_size", -1, &c->vocab_size)) ||
        (s = cfg_int(path, cfg, "max_position_embeddings", 2048, &c->max_seq_len)) ||
        (s = cfg_num(path, cfg, "rope_theta", 10000.0, &c->rope_theta)) ||
        (s = cfg_num(path, cfg, "rms_norm_eps", 1e-6, &c->norm_eps)))
        goto out;
    if ((s = pgd_model_config_validate(c, path))) goto out;
    c->head_dim = c->dim / c->n_heads;
    int hd = 0;
    if ((s = cfg_int(path, cfg, "head_dim", c->head_dim, &hd))) goto out;
    if (hd != c->head_dim) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: head_dim %d differs from hidden_size / num_attention_heads = %d",
                      path, hd, c->head_dim);
        goto out;
    }
out:
    if (s == PGD_OK && cfg_out) *cfg_out = cfg;
    else json_decref(cfg);
    return s;
}

int pgd_model_is_safetensors(const char *spec) {
    struct stat sb;
    if (stat(spec, &sb) != 0) return 0;
    if (S_ISDIR(sb.st_mode)) return 1;
    size_t n = strlen(spec);
    return n > 12 && !strcmp(spec + n - 12, ".safetensors");
}

/* The directory of a spec (a directory, or a .safetensors file in one). */
static void spec_dir(const char *spec, char *dir, size_t cap) {
    struct stat sb;
    snprintf(dir, cap, "%s", spec);
    if (stat(spec, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        char *sl = strrchr(dir, '/');
        if (sl) *sl = '\0';
        else snprintf(dir, cap, ".");
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
}

pgd_status pgd_model_peek_safetensors_context(const char *spec, int *max_seq_len) {
    char dir[4096];
    spec_dir(spec, dir, sizeof dir);
    pgd_model_config c;
    PGD_TRY(read_config(dir, &c, NULL));
    *max_seq_len = c.max_seq_len;
    return PGD_OK;
}

pgd_status pgd_model_load_safetensors(pgd_model *m, const char *spec) {
    char dir[4096], path[4200];
    spec_dir(spec, dir, sizeof dir);
    st_dir d = {.dir = dir};
    json_t *cfg = NULL;
    pgd_model_config *c = &m->cfg;
    pgd_status s = read_config(dir, c, &cfg);
    if (s != PGD_OK) return s;
    st_file *f0 = NULL;
    struct stat sb;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (stat(spec, &sb) == 0 && !S_ISDIR(sb.st_mode)) { /* a file named: that file alone */
        const char *b = strrchr(spec, '/');
        s = open_file(&d, b ? b + 1 : spec, &f0);
    } else if (access(path, R_OK) == 0) {
        json_error_t err;
        json_t *idx = json_load_file(path, 0, &err);
        if (!idx) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", path, err.line, err.text);
            goto out;
        }
        d.weight_map = json_incref(json_object_get(idx, "weight_map"));
        json_decref(idx);
        if (!json_is_object(d.weight_map)) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: no \"weight_map\" object", path);
            goto out;
        }
        /* open and check every shard up front: a damaged one fails before any upload */
        const char *k;
        json_t *v;
        json_object_foreach(d.weight_map, k, v) {
            if (!json_is_string(v)) {
                s = pgd_error(PGD_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", path, k);
                goto out;
            }
            if ((s = open_file(&d, json_string_value(v), &f0))) goto out;
        }
    } else {
        s = open_file(&d, "model.safetensors", &f0);
    }
    if (s != PGD_OK) goto out;
    if (d.n_files == 0) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: the index names no shards", dir);
        goto out;
    }
    /* biases are not implemented: refuse a checkpoint that has them rather than drop them */
    st_file *fb;
    json_t *eb;
    if ((s = find(&d, "model.layers.0.self_attn.q_proj.bias", &fb, &eb))) goto out;
    if (eb) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: the checkpoint has q/k/v biases (model.layers.0.self_attn.q_proj.bias), "
                      "which the forward pass does not implement", dir);
        goto out;
    }
    st_file *fe, *fq, *fo;
    json_t *ee, *eq, *eo;
    if ((s = find(&d, "model.embed_tokens.weight", &fe, &ee)) || (s = find(&d, "model.layers.0.self_attn.q_proj.weight", &fq, &eq)) ||
        (s = find(&d, "lm_head.weight", &fo, &eo)))
        goto out;
    if (!ee || !eq) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: tensor '%s' is missing", dir,
                      !ee ? "model.embed_tokens.weight" : "model.layers.0.self_attn.q_proj.weight");
        goto out;
    }
    c->tied_classifier = eo == NULL;
    if (c->tied_classifier && json_is_false(json_object_get(cfg, "tie_word_embeddings"))) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: tensor 'lm_head.weight' is missing (config.json says "
                      "tie_word_embeddings false)", dir);
        goto out;
    }
    pgd_dtype edt = PGD_F32, cdt = PGD_F32;
    if ((s = tensor_dtype(fq, "model.layers.0.self_attn.q_proj.weight", eq, &c->weight_dtype)) ||
        (s = tensor_dtype(fe, "model.embed_tokens.weight", ee, &edt)) ||
        (eo && (s = tensor_dtype(fo, "lm_head.weight", eo, &cdt))))
        goto out;
    if (!pgd_backend_takes_weights(m->backend, c->weight_dtype)) c->weight_dtype = PGD_F32;
    if (!pgd_backend_takes_weights(m->backend, edt)) edt = PGD_F32;
    if (!pgd_backend_takes_weights(m->backend, cdt)) cdt = PGD_F32;
    if ((s = pgd_model_layout(m, edt, cdt))) goto out;

    int64_t dm = c->dim, qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim,
            h = c->hidden_dim, V = c->vocab_size;
    if ((s = put(m, &d, "model.embed_tokens.weight", V, dm, PGD_T_EMBD, 0, 0)) ||
        (s = put(m, &d, "model.norm.weight", dm, 0, PGD_T_FINAL_NORM, 0, 0)) ||
        (s = put(m, &d, eo ? "lm_head.weight" : "model.embed_tokens.weight", V, dm, PGD_T_CLS, 0, 0)))
        goto out;
    for (int l = 0; l < c->n_layers; l++) {
        if (l < m->sh.layer_begin || l >= m->sh.layer_end) continue; /* another stage's layer */
        char n[128];
#define PUT(suffix, r, cc, kind, perm)                                      \
    snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, suffix);          \
    if ((s = put(m, &d, n, r, cc, kind, l, perm))) goto out;
        PUT("input_layernorm", dm, 0, PGD_T_ATTN_NORM, 0)
        PUT("self_attn.q_proj", qd, dm, PGD_T_WQ, c->n_heads)
        PUT("self_attn.k_proj", kvd, dm, PGD_T_WK, c->n_kv_heads)
        PUT("self_attn.v_proj", kvd, dm, PGD_T_WV, 0)
        PUT("self_attn.o_proj", dm, qd, PGD_T_WO, 0)
        PUT("post_attention_layernorm", dm, 0, PGD_T_FFN_NORM, 0)
        PUT("mlp.gate_proj", h, dm, PGD_T_W1, 0)
        PUT("mlp.down_proj", dm, h, PGD_T_W2, 0)
        PUT("mlp.up_proj", h, dm, PGD_T_W3, 0)
#undef PUT
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) {
        if ((s = pgd_tokenizer_load_hf(path, &m->tokenizer))) goto out;
        if (pgd_tokenizer_vocab_size(m->tokenizer) > c->vocab_size) {
            s = pgd_error(PGD_ERR_FORMAT, "%s: the tokenizer has %d tokens, the model's vocabulary only %d", path,
                          pgd_tokenizer_vocab_size(m->tokenizer), c->vocab_size);
            goto out;
        }
        int bos = cfg_token(cfg, "bos_token_id"), eos = cfg_token(cfg, "eos_token_id");
        if ((s = pgd_tokenizer_set_special(m->tokenizer, bos < c->vocab_size ? bos : -1,
                                           eos < c->vocab_size ? eos : -1)))
            goto out;
    }
out:
    close_dir(&d);
    json_decref(cfg);
    return s;
}
