/* profile_import.c - `pagoda profile --import vidur`: measured GPU op times
 * in Vidur's formats (backends/sim/sim_vidur.h) converted into the sim's
 * calibration table (format and lookup: backends/sim/sim_cost.h), so the
 * sim prices each op of that model on that GPU from the measurements,
 * interpolating between measured points (ops the table lacks, e.g.
 * kv_write, fall back to the device's curves):
 *   attn_pre_proj, attn_post_proj, mlp_up_proj, mlp_down_proj
 *                   -> matmul (in, out per GPU, dtype) x = tokens, for f16
 *                      and bf16 weights alike (both 2 bytes)
 *   input_layernorm, post_attention_layernorm -> rmsnorm (dim) x = tokens
 *   attn_rope       -> rope (heads / tp, kv_heads / tp, head_dim) x = tokens
 *   mlp_act         -> silu_mul x = tokens x hidden / tp outputs
 *   add             -> add x = tokens x dim
 *   emb             -> embedding (dim, dtype) x = tokens
 *   attn_decode     -> attn_decode (heads / tp, kv_heads / tp, head_dim)
 *                      x = batch, y = context
 *   attn_prefill    -> attn_prefill x = chunk tokens, y = (query, key) pairs
 *                      per token = cached + (chunk + 1) / 2
 *   all_reduce      -> all_reduce (ranks, hosts) x = bytes
 * Measurements that land on the same row (a replicated op measured at
 * several TP degrees, the two norms of a layer, repeated rows) are averaged.
 * Exit status: 0 written, 1 a failure writing, 2 bad usage or a bad file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "pagoda/model.h"
#include "sim/sim_check.h"

typedef struct acc_row {
    char op[PGD_SIM_OP_MAX];
    long k[3];
    double x, y, sum;
    int n;
} acc_row;

typedef struct acc {
    acc_row *r;
    int n, cap;
} acc;

static int cmp_acc(const void *a, const void *b) {
    const acc_row *p = a, *q = b;
    int c = strcmp(p->op, q->op);
    if (c) return c;
    for (int i = 0; i < 3; i++)
        if (p->k[i] != q->k[i]) return p->k[i] < q->k[i] ? -1 : 1;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

static int acc_add(acc *a, const char *op, long k1, long k2, long k3, double x, double y, double t) {
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 4096;
        acc_row *p = realloc(a->r, sizeof *p * (size_t)cap);
        if (!p) return 0;
        a->r = p, a->cap = cap;
    }
    acc_row *r = &a->r[a->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    r->k[0] = k1, r->k[1] = k2, r->k[2] = k3, r->x = x, r->y = y, r->sum = t, r->n = 1;
    return 1;
}

static int add_row(acc *a, const pgd_model_config *m, const pgd_vidur_row *r) {
    int tp = r->tp > 0 ? r->tp : 1, hd = m->head_dim;
    int h = m->n_heads / tp, kvh = m->n_kv_heads / tp, hid = m->hidden_dim / tp, gated = m->arch != PGD_ARCH_OPT;
    double t = r->seconds, n = r->a;
    switch (r->kind) {
    case PGD_VIDUR_MLP:
        if (!strcmp(r->op, "attn_pre_proj") || !strcmp(r->op, "attn_post_proj") || !strcmp(r->op, "mlp_up_proj") ||
            !strcmp(r->op, "mlp_down_proj")) {
            long in = !strcmp(r->op, "attn_post_proj") ? (long)h * hd : !strcmp(r->op, "mlp_down_proj") ? hid : m->dim;
            long out = !strcmp(r->op, "attn_pre_proj") ? (long)(h + 2 * kvh) * hd
                       : !strcmp(r->op, "mlp_up_proj") ? (gated ? 2L : 1L) * hid : m->dim;
            return acc_add(a, "matmul", in, out, PGD_F16, n, 0, t) && acc_add(a, "matmul", in, out, PGD_BF16, n, 0, t);
        }
        if (!strcmp(r->op, "input_layernorm") || !strcmp(r->op, "post_attention_layernorm"))
            return acc_add(a, "rmsnorm", m->dim, 0, 0, n, 0, t);
        if (!strcmp(r->op, "attn_rope")) return acc_add(a, "rope", h, kvh, hd, n, 0, t);
        if (!strcmp(r->op, "mlp_act")) return acc_add(a, "silu_mul", 0, 0, 0, n * hid, 0, t);
        if (!strcmp(r->op, "add")) return acc_add(a, "add", 0, 0, 0, n * m->dim, 0, t);
        if (!strcmp(r->op, "emb"))
            return acc_add(a, "embedding", m->dim, PGD_F16, 0, n, 0, t) &&
                   acc_add(a, "embedding", m->dim, PGD_BF16, 0, n, 0, t);
        return 1;
    case PGD_VIDUR_DECODE: return acc_add(a, "attn_decode", h, kvh, hd, n, r->b > 1 ? r->b : 1, t);
    case PGD_VIDUR_PREFILL: return acc_add(a, "attn_prefill", h, kvh, hd, n, r->b + (n + 1) / 2, t);
    case PGD_VIDUR_ALL_REDUCE: return acc_add(a, "all_reduce", r->ranks, r->nodes, 0, r->a, 0, t);
    }
    return 1;
}

int pgd_cmd_profile_import(int argc, char **argv) {
    const char *format = NULL, *model = NULL, *mlp = NULL, *attn = NULL, *ar = NULL, *out = NULL;
    static const struct option lo[] = {{"import", required_argument, 0, 'i'}, {"model", required_argument, 0, 'm'},
                                       {"mlp", required_argument, 0, 'M'}, {"attention", required_argument, 0, 'A'},
                                       {"all-reduce", required_argument, 0, 'R'}, {"output", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'i': format = optarg; break;
        case 'm': model = optarg; break;
        case 'M': mlp = optarg; break;
        case 'A': attn = optarg; break;
        case 'R': ar = optarg; break;
        case 'o': out = optarg; break;
        case 'h':
            printf("usage: pagoda profile --import vidur --model SHAPE --mlp FILE [--attention FILE]\n"
                   "                      [--all-reduce FILE] -o TABLE\n\n"
                   "Converts measured GPU op times in Vidur's formats into the sim's calibration\n"
                   "table ([model] profile = TABLE, or pagoda sim-check --calibration TABLE).\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda profile: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!format || strcmp(format, "vidur")) {
        fprintf(stderr, "pagoda profile: --import '%s': unknown format (vidur)\n", format ? format : "");
        return 2;
    }
    if (!model || !out || (!mlp && !attn && !ar)) {
        fprintf(stderr, "pagoda profile: --import vidur needs --model, -o and at least one of --mlp, --attention, "
                        "--all-reduce\n");
        return 2;
    }
    pgd_model_config mc;
    pgd_vidur v = {0};
    acc a = {0};
    pgd_sim_table *t = NULL;
    int rc = 2;
    if (pgd_model_shape(model, &mc) != PGD_OK || (mlp && pgd_vidur_read_mlp(&v, mlp) != PGD_OK) ||
        (attn && pgd_vidur_read_attention(&v, attn) != PGD_OK) ||
        (ar && pgd_vidur_read_all_reduce(&v, ar) != PGD_OK) || pgd_sim_check_model(&v, &mc) != PGD_OK) {
        fprintf(stderr, "pagoda profile: %s\n", pgd_last_error());
        goto done;
    }
    rc = 1;
    for (int i = 0; i < v.n; i++)
        if (!add_row(&a, &mc, &v.rows[i])) {
            fprintf(stderr, "pagoda profile: out of memory\n");
            goto done;
        }
    qsort(a.r, (size_t)a.n, sizeof *a.r, cmp_acc);
    if (pgd_sim_table_new(&t) != PGD_OK) goto fail;
    int rows = 0;
    for (int i = 0; i < a.n;) {
        int j = i + 1;
        double sum = a.r[i].sum;
        int n = 1;
        while (j < a.n && !cmp_acc(&a.r[i], &a.r[j])) sum += a.r[j].sum, n++, j++;
        if (pgd_sim_table_add(t, a.r[i].op, a.r[i].k[0], a.r[i].k[1], a.r[i].k[2], a.r[i].x, a.r[i].y, sum / n) !=
            PGD_OK)
            goto fail;
        rows++;
        i = j;
    }
    char comment[4096], when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    snprintf(comment, sizeof comment,
             "pagoda profile --import vidur: calibration table of the sim backend (format: backends/sim/sim_cost.h)\n"
             "imported %s from measured GPU op times (%d rows -> %d table rows, repeated points averaged)\n"
             "model %s: dim %d, %d/%d heads x %d, hidden %d, vocab %d\nfiles: %s%s%s%s%s", when, v.n, rows, mc.name,
             mc.dim, mc.n_heads, mc.n_kv_heads, mc.head_dim, mc.hidden_dim, mc.vocab_size, mlp ? mlp : "",
             attn ? " " : "", attn ? attn : "", ar ? " " : "", ar ? ar : "");
    if (pgd_sim_table_save(t, out, comment) != PGD_OK) goto fail;
    printf("pagoda profile: wrote %s (%d rows from %d measurements)\n", out, rows, v.n);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "pagoda profile: %s\n", pgd_last_error());
done:
    pgd_sim_table_destroy(t);
    free(a.r);
    pgd_vidur_free(&v);
    return rc;
}
