/* llama2c.c - loader for llama2.c checkpoints (legacy "version 0" export):
 * 7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len} (a negative vocab_size means the classifier is stored
 * separately at the end; positive means it shares the token embedding),
 * then f32 tensors, each for all layers at once: token_embedding, rms_att,
 * wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
 * freq_cis_imag (unused: RoPE is computed), [wcls].
 * The file size must equal what the header implies. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_impl.h"

pgd_status pgd_model_load_llama2c(pgd_model *m, const char *path) {
    pgd_status s = PGD_OK;
    void *map = MAP_FAILED;
    size_t size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return pgd_error(PGD_ERR_IO, "cannot open model '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s = pgd_error(PGD_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    size = (size_t)st.st_size;
    if (size < 28) {
        s = pgd_error(PGD_ERR_FORMAT, "%s: truncated llama2.c checkpoint: %zu bytes, the header alone is 28", path, size);
        goto fail;
    }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        s = pgd_error(PGD_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
        goto fail;
    }
    int32_t h[7];
    memcpy(h, map, sizeof h);
    if ((uint32_t)h[0] == 0x616b3432u) {
        s = pgd_error(PGD_ERR_UNSUPPORTED, "%s: llama2.c 'ak42' (version 1/2) checkpoints are not supported yet; "
                      "export with the legacy format (version 0)", path);
        goto fail;
    }
    pgd_model_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    const char *base = strrchr(path, '/');
    snprintf(c->name, sizeof c->name, "%s", base ? base + 1 : path);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->tied_classifier = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : (h[5] > 0 ? h[5] : -h[5]);
    c->max_seq_len = h[6];
    c->rope_theta = 10000.f;
    c->norm_eps = 1e-5f;
    c->weight_dtype = PGD_F32;
    c->stop_at_bos = 1; /* llama2.c's run.c ends a sample at BOS */
    s = pgd_model_config_validate(c, path);
    if (s != PGD_OK) {
        s = pgd_error(PGD_ERR_FORMAT, "%s (is this a llama2.c checkpoint?)", pgd_last_error());
        goto fail;
    }
    c->head_dim = c->dim / c->n_heads;

    size_t d = (size_t)c->dim, hd = (size_t)c->head_dim, L = (size_t)c->n_layers,
           qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd,
           hid = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, S = (size_t)c->max_seq_len;
    size_t floats = V * d + L * d + L * qd * d + 2 * L * kvd * d + L * d * qd + L * d +
                    3 * L * hid * d + d + S * hd;
    if (!c->tied_classifier) floats += V * d;
    size_t expect = 28 + floats * 4;
    if (size != expect) {
        s = pgd_error(PGD_ERR_FORMAT,
                      "%s: size %zu bytes disagrees with its header (dim=%d hidden=%d layers=%d heads=%d "
                      "kv_heads=%d vocab=%d seq=%d implies %zu bytes)%s",
                      path, size, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                      h[5], c->max_seq_len, expect, size < expect ? ": the file is truncated" : "");
        goto fail;
    }
    s = pgd_model_layout(m, PGD_F32, PGD_F32);
    if (s != PGD_OK) goto fail;

    /* each rank uploads only its shard; the mapping means it reads only those pages */
    const float *p = (const float *)((const char *)map + 28);
    const float *embd = p;
#define SRC(ptr) (&(pgd_tensor_src){.data = (ptr), .dt = PGD_F32})
    s = pgd_model_put_tensor(m, PGD_T_EMBD, 0, SRC(p));
    p += V * d;
#define PER_LAYER(kind, count)                                                  \
    for (size_t l = 0; l < L && s == PGD_OK; l++)                               \
        s = pgd_model_put_tensor(m, kind, (int)l, SRC(p + l * (count)));        \
    p += L * (count);
    PER_LAYER(PGD_T_ATTN_NORM, d)
    PER_LAYER(PGD_T_WQ, qd * d)
    PER_LAYER(PGD_T_WK, kvd * d)
    PER_LAYER(PGD_T_WV, kvd * d)
    PER_LAYER(PGD_T_WO, d * qd)
    PER_LAYER(PGD_T_FFN_NORM, d)
    PER_LAYER(PGD_T_W1, hid * d)
    PER_LAYER(PGD_T_W2, d * hid)
    PER_LAYER(PGD_T_W3, hid * d)
#undef PER_LAYER
    if (s == PGD_OK) s = pgd_model_put_tensor(m, PGD_T_FINAL_NORM, 0, SRC(p));
    p += d + S * hd; /* skip freq_cis_real/imag */
    if (s == PGD_OK) s = pgd_model_put_tensor(m, PGD_T_CLS, 0, SRC(c->tied_classifier ? embd : p));
#undef SRC
fail:
    if (map != MAP_FAILED) munmap(map, size);
    close(fd);
    return s;
}
