/* sim_check_cmd.c - `pagoda sim-check`: the sim's GPU cost model against
 * measured op times in Vidur's formats (backends/sim/sim_vidur.h). Prints,
 * for every op in the files, predicted vs measured (signed median error,
 * p90 and worst of |error|, by token-count regime), then whole steps (one
 * layer of the measured system's ops; what a step is: backends/sim/
 * sim_check.h): decode steps, prefill steps and, for every tensor-parallel
 * degree above 1 in the MLP file, the dense layer (no attention, with its
 * two all-reduces when an all-reduce file is given) at decode sizes. The
 * last line is the summary:
 *   decode step median |err| A%, p90 B%; prefill step median |err| C%, p90 D%
 * --fit refits the curves to the given files first, prints them as the
 * preset blocks of backends/sim/sim_presets.c and checks with them.
 * Exit status: 0 checked, 1 a failure while checking, 2 bad usage or a bad
 * file (one line naming the file, line and column). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pagoda/model.h"
#include "sim/sim_check.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda sim-check --model SHAPE --device PRESET [--mlp FILE] [--attention FILE]\n"
            "                        [--all-reduce FILE] [--tp N] [--calibration TABLE] [--fit | --roofline]\n\n"
            "Holds the sim's cost model for PRESET against measured GPU op times (Vidur's\n"
            "profiling formats: mlp.csv, attention.csv or the transcribed tp,kind,a,b,median_ms\n"
            "form, all_reduce.csv): every op, then decode and prefill steps at TP N (default 1)\n"
            "and dense layers at every TP of the MLP file.\n\n"
            "  --model SHAPE        the model the files measured (e.g. llama3-8b)\n"
            "  --mlp, --attention, --all-reduce   the measurements (at least one; steps need the first two)\n"
            "  --device PRESET      %s\n"
            "  --calibration TABLE  price ops from a calibration table first (pagoda profile)\n"
            "  --fit                fit the curves to these files, print them, check with them\n"
            "  --roofline           check the preset's datasheet roofline instead of its curves\n",
            pgd_sim_device_choices());
}

typedef struct group {
    char name[48];
    char regime[32];
    double *e;
    int n, cap;
} group;

typedef struct report {
    group *g;
    int n, cap;
} report;

static group *group_get(report *r, const char *name, const char *regime) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->g[i].name, name) && !strcmp(r->g[i].regime, regime)) return &r->g[i];
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        group *g = realloc(r->g, sizeof *g * (size_t)cap);
        if (!g) return NULL;
        r->g = g, r->cap = cap;
    }
    group *g = &r->g[r->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->regime, sizeof g->regime, "%s", regime);
    return g;
}

static int group_add(group *g, double e) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        double *p = realloc(g->e, sizeof *p * (size_t)cap);
        if (!p) return 0;
        g->e = p, g->cap = cap;
    }
    g->e[g->n++] = e;
    return 1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* signed median, p90 and worst of |e| (reorders e) */
static void stats(double *e, int n, double *med, double *p90, double *worst) {
    qsort(e, (size_t)n, sizeof *e, cmp_d);
    *med = n % 2 ? e[n / 2] : 0.5 * (e[n / 2 - 1] + e[n / 2]);
    *worst = fabs(e[0]) > fabs(e[n - 1]) ? fabs(e[0]) : fabs(e[n - 1]);
    double *a = malloc(sizeof(double) * (size_t)n);
    if (!a) {
        *p90 = *worst;
        return;
    }
    for (int i = 0; i < n; i++) a[i] = e[i];
    pgd_sim_fit_err fe = pgd_sim_err_stats(a, n);
    *p90 = fe.p90;
    free(a);
}

static const char *token_regime(double tokens) {
    return tokens <= 64 ? "tokens 1-64" : tokens <= 512 ? "tokens 65-512" : tokens <= 4096 ? "tokens 513-4096"
                                                                                           : "tokens > 4096";
}

static void regime_of(const pgd_vidur_row *r, char *name, size_t nn, char *reg, size_t nr) {
    switch (r->kind) {
    case PGD_VIDUR_MLP:
        snprintf(name, nn, "%s tp%d", r->op, r->tp);
        snprintf(reg, nr, "%s", token_regime(r->a));
        break;
    case PGD_VIDUR_DECODE:
        snprintf(name, nn, "attn_decode tp%d", r->tp);
        snprintf(reg, nr, "%s", r->a <= 16 ? "batch 1-16" : r->a <= 64 ? "batch 17-64" : r->a <= 256 ? "batch 65-256"
                                                                                                    : "batch > 256");
        break;
    case PGD_VIDUR_PREFILL:
        snprintf(name, nn, "attn_prefill tp%d", r->tp);
        snprintf(reg, nr, "%s", r->a <= 512 ? "chunk 1-512" : r->a <= 4096 ? "chunk 513-4096" : "chunk > 4096");
        break;
    default:
        snprintf(name, nn, "all_reduce %d ranks, %d host%s", r->ranks, r->nodes, r->nodes == 1 ? "" : "s");
        snprintf(reg, nr, "%s", r->a < 65536 ? "< 64 KiB" : r->a < 1048576 ? "64 KiB-1 MiB"
                                : r->a < 16777216 ? "1-16 MiB" : ">= 16 MiB");
    }
}

static void print_curves(const pgd_sim_kernel_curves *k, const pgd_sim_link_curves *l, int have_links,
                         const char *files) {
    printf("\n/* fitted by `pagoda sim-check --fit` to %s */\n", files);
    printf("static const pgd_sim_kernel_curves fitted_kernels = {\n");
    printf("    .gemm = {.t0 = %.4e, .mm_eff = %.4f, .bw_eff = %.4f, .q = %.4f, .err = {%d, %.4f, %.4f}},\n",
           k->gemm.t0, k->gemm.mm_eff, k->gemm.bw_eff, k->gemm.q, k->gemm.err.n, k->gemm.err.median, k->gemm.err.p90);
    static const char *const enames[] = {"PGD_SIM_NORM", "PGD_SIM_ROPE", "PGD_SIM_ACT", "PGD_SIM_ADD", "PGD_SIM_EMBED"};
    printf("    .stream = {\n");
    for (int i = 0; i < PGD_SIM_N_STREAM; i++)
        printf("        [%s] = {.t0 = %.4e, .eff_cache = %.4f, .eff = %.4f, .err = {%d, %.4f, %.4f}},\n", enames[i],
               k->stream[i].t0, k->stream[i].eff_cache, k->stream[i].eff, k->stream[i].err.n, k->stream[i].err.median,
               k->stream[i].err.p90);
    printf("    },\n");
    const pgd_sim_decode_curve *d = &k->decode;
    printf("    .decode = {.t0 = %.4e, .t_split = %.4e, .t_wave = %.4e, .cta_bw = %.4e, .eff = %.4f,\n"
           "               .split_per_sm = %d, .resident_per_sm = %d, .err = {%d, %.4f, %.4f}},\n",
           d->t0, d->t_split, d->t_wave, d->cta_bw, d->eff, d->split_per_sm, d->resident_per_sm, d->err.n,
           d->err.median, d->err.p90);
    const pgd_sim_prefill_curve *p = &k->prefill;
    printf("    .prefill = {.t0 = %.4e, .eff_max = %.4f, .chunk_half = %.2f, .bw_eff = %.4f, .err = {%d, %.4f, %.4f}},\n",
           p->t0, p->eff_max, p->chunk_half, p->bw_eff, p->err.n, p->err.median, p->err.p90);
    printf("};\n");
    if (have_links) {
        printf("static const pgd_sim_link_curves fitted_links = {\n    .n = %d,\n    .c = {\n", l->n);
        for (int i = 0; i < l->n; i++) {
            const pgd_sim_link_curve *c = &l->c[i];
            printf("        {.ranks = %d, .nodes = %d, .lat = %.4e, .bus_bw = %.4e, .q = %.4f, .err = {%d, %.4f, %.4f}},\n",
                   c->ranks, c->nodes, c->lat, c->bus_bw, c->q, c->err.n, c->err.median, c->err.p90);
        }
        printf("    },\n};\n");
    }
    printf("\n");
}

static void print_steps(const char *what, const pgd_sim_step *s, int n) {
    if (!n) {
        printf("%-34s no points (the files lack the rows)\n", what);
        return;
    }
    double *e = malloc(sizeof(double) * (size_t)n);
    if (!e) return;
    double amin = INFINITY, amax = 0, bmin = INFINITY, bmax = 0;
    for (int i = 0; i < n; i++) {
        e[i] = s[i].predicted / s[i].measured - 1;
        amin = fmin(amin, s[i].a), amax = fmax(amax, s[i].a), bmin = fmin(bmin, s[i].b), bmax = fmax(bmax, s[i].b);
    }
    double med, p90, worst;
    stats(e, n, &med, &p90, &worst);
    pgd_sim_fit_err fe = pgd_sim_check_step_err(s, n);
    printf("%-34s %4d points  %.0f-%.0f x %.0f-%.0f   median |err| %5.1f%%  p90 %5.1f%%  worst %5.1f%%  "
           "signed median %+5.1f%%\n", what, n, amin, amax, bmin, bmax, 100 * fe.median, 100 * fe.p90,
           100 * worst, 100 * med);
    free(e);
}

int pgd_cmd_sim_check(int argc, char **argv) {
    const char *model = NULL, *device = NULL, *mlp = NULL, *attn = NULL, *ar = NULL, *calib = NULL;
    int tp = 1, fit = 0, roofline = 0;
    static const struct option lo[] = {{"model", required_argument, 0, 'm'}, {"device", required_argument, 0, 'd'},
                                       {"mlp", required_argument, 0, 'M'}, {"attention", required_argument, 0, 'A'},
                                       {"all-reduce", required_argument, 0, 'R'}, {"tp", required_argument, 0, 't'},
                                       {"calibration", required_argument, 0, 'c'}, {"fit", no_argument, 0, 'f'},
                                       {"roofline", no_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (o) {
        case 'm': model = optarg; break;
        case 'd': device = optarg; break;
        case 'M': mlp = optarg; break;
        case 'A': attn = optarg; break;
        case 'R': ar = optarg; break;
        case 'c': calib = optarg; break;
        case 'f': fit = 1; break;
        case 'r': roofline = 1; break;
        case 't':
            if (!pgd_cli_int("--tp", optarg, 1, 64, &tp)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda sim-check: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (fit && roofline) {
        fprintf(stderr, "pagoda sim-check: --fit and --roofline exclude each other\n");
        return 2;
    }
    if (!model || !device || (!mlp && !attn && !ar)) {
        fprintf(stderr, "pagoda sim-check: --model, --device and at least one of --mlp, --attention, --all-reduce "
                        "are required (--help)\n");
        return 2;
    }
    if (fit && (!mlp || !attn)) {
        fprintf(stderr, "pagoda sim-check: --fit needs --mlp and --attention (it fits every kernel curve)\n");
        return 2;
    }
    pgd_model_config mc;
    pgd_sim_cost c = {.tp = 1};
    pgd_vidur v = {0};
    pgd_sim_table *table = NULL;
    pgd_sim_kernel_curves kc;
    pgd_sim_link_curves lc;
    report rep = {0};
    pgd_sim_step *steps = NULL;
    int rc = 2, nsteps = 0;
    if (pgd_model_shape(model, &mc) != PGD_OK || pgd_sim_device_find(device, &c.dev) != PGD_OK ||
        (mlp && pgd_vidur_read_mlp(&v, mlp) != PGD_OK) || (attn && pgd_vidur_read_attention(&v, attn) != PGD_OK) ||
        (ar && pgd_vidur_read_all_reduce(&v, ar) != PGD_OK) || pgd_sim_check_model(&v, &mc) != PGD_OK ||
        (calib && pgd_sim_table_load(calib, &table) != PGD_OK)) {
        fprintf(stderr, "pagoda sim-check: %s\n", pgd_last_error());
        goto done;
    }
    c.table = table;
    if (roofline) c.dev.kernels = NULL, c.dev.links = NULL;
    rc = 1;
    char files[1024];
    snprintf(files, sizeof files, "%s%s%s%s%s", mlp ? mlp : "", mlp && attn ? ", " : "", attn ? attn : "",
             (mlp || attn) && ar ? ", " : "", ar ? ar : "");
    if (fit) {
        pgd_sim_hw hw = {.peak_flops = c.dev.peak_flops, .mem_bw = c.dev.mem_bw, .l2_bytes = c.dev.l2_bytes,
                         .sms = c.dev.sms};
        int have_links = 0;
        if (pgd_sim_check_fit(&v, &mc, &hw, NULL, NULL, &kc, &lc, &have_links) != PGD_OK) {
            fprintf(stderr, "pagoda sim-check: %s\n", pgd_last_error());
            goto done;
        }
        print_curves(&kc, &lc, have_links, files);
        kc.source = "this fit";
        c.dev.kernels = &kc;
        if (have_links) lc.source = "this fit", c.dev.links = &lc;
    }
    printf("pagoda sim-check: %s on %s (%d SMs, %.0f TFLOP/s, %.2f TB/s): %s%s\n", mc.name, c.dev.name, c.dev.sms,
           c.dev.peak_flops / 1e12, c.dev.mem_bw / 1e12,
           table ? "calibration table first, then " : "",
           c.dev.kernels ? (fit ? "curves fitted to these files" : "the preset's fitted curves")
                         : "the roofline (this preset has no curves)");
    printf("files: %s (%d measured rows)\n\n", files, v.n);
    /* per op */
    for (int i = 0; i < v.n; i++) {
        const pgd_vidur_row *r = &v.rows[i];
        double p = pgd_sim_check_predict(&c, &mc, r);
        if (p < 0) continue;
        char name[48], reg[32];
        regime_of(r, name, sizeof name, reg, sizeof reg);
        group *g = group_get(&rep, name, reg);
        if (!g || !group_add(g, p / r->seconds - 1)) {
            fprintf(stderr, "pagoda sim-check: out of memory\n");
            goto done;
        }
    }
    printf("Per op: predicted / measured - 1 (signed median; p90 and worst of |error|)\n");
    printf("%-34s %-16s %6s %8s %8s %8s\n", "op", "regime", "points", "median", "p90", "worst");
    for (int i = 0; i < rep.n; i++) {
        group *g = &rep.g[i];
        double med, p90, worst;
        stats(g->e, g->n, &med, &p90, &worst);
        printf("%-34s %-16s %6d %+7.1f%% %7.1f%% %7.1f%%\n", g->name, g->regime, g->n, 100 * med, 100 * p90,
               100 * worst);
    }
    printf("\nSteps: one layer of the measured system's ops (x %d layers), predicted / measured - 1;\n"
           "MLP times at token counts between measured ones interpolated linearly.\n", mc.n_layers);
    pgd_sim_fit_err de = {0}, pe = {0};
    for (int k = 0; k < 2; k++) {
        int kind = k ? PGD_STEP_PREFILL : PGD_STEP_DECODE;
        if (pgd_sim_check_steps(&v, &mc, &c, kind, tp, NULL, NULL, &steps, &nsteps) != PGD_OK) {
            fprintf(stderr, "pagoda sim-check: %s\n", pgd_last_error());
            goto done;
        }
        char what[64];
        snprintf(what, sizeof what, "%s steps tp%d (%s)", k ? "prefill" : "decode", tp,
                 k ? "chunk x cached" : "batch x context");
        print_steps(what, steps, nsteps);
        *(k ? &pe : &de) = pgd_sim_check_step_err(steps, nsteps);
        free(steps);
        steps = NULL;
    }
    int tps[16], ntp = 0;
    for (int i = 0; i < v.n; i++) {
        const pgd_vidur_row *r = &v.rows[i];
        int seen = r->kind != PGD_VIDUR_MLP || r->tp <= 1;
        for (int j = 0; j < ntp && !seen; j++) seen = tps[j] == r->tp;
        if (!seen && ntp < 16) tps[ntp++] = r->tp;
    }
    for (int i = 0; i < ntp; i++)
        for (int with_ar = 0; with_ar <= (ar != NULL); with_ar++) {
            if (pgd_sim_check_steps(&v, &mc, &c, with_ar ? PGD_STEP_DENSE_AR : PGD_STEP_DENSE, tps[i], NULL, NULL,
                                    &steps, &nsteps) != PGD_OK) {
                fprintf(stderr, "pagoda sim-check: %s\n", pgd_last_error());
                goto done;
            }
            char what[64];
            snprintf(what, sizeof what, "dense layer tp%d%s (tokens)", tps[i], with_ar ? " + 2 all-reduces" : "");
            print_steps(what, steps, nsteps);
            free(steps);
            steps = NULL;
        }
    if (ar) { /* every all-reduce row, and those within one host */
        for (int intra = 0; intra < 2; intra++) {
            double *e = malloc(sizeof(double) * (size_t)(v.n + 1));
            int ne = 0;
            for (int i = 0; e && i < v.n; i++) {
                const pgd_vidur_row *r = &v.rows[i];
                if (r->kind != PGD_VIDUR_ALL_REDUCE || (intra && r->nodes != 1)) continue;
                double p = pgd_sim_check_predict(&c, &mc, r);
                if (p >= 0) e[ne++] = p / r->seconds - 1;
            }
            if (ne) {
                double med, p90, worst;
                stats(e, ne, &med, &p90, &worst);
                pgd_sim_fit_err fe = pgd_sim_err_stats(e, ne);
                printf("%-34s %4d points  median |err| %5.1f%%  p90 %5.1f%%  worst %5.1f%%  signed median %+5.1f%%\n",
                       intra ? "all-reduce, one host" : "all-reduce, every row", ne, 100 * fe.median, 100 * fe.p90,
                       100 * worst, 100 * med);
            }
            free(e);
        }
    }
    printf("\n");
    if (!de.n || !pe.n)
        printf("(a step kind without points is n/a: steps need --mlp and --attention)\n");
    char d1[16] = "n/a", d2[16] = "n/a", p1[16] = "n/a", p2[16] = "n/a";
    if (de.n) snprintf(d1, sizeof d1, "%.1f%%", 100 * de.median), snprintf(d2, sizeof d2, "%.1f%%", 100 * de.p90);
    if (pe.n) snprintf(p1, sizeof p1, "%.1f%%", 100 * pe.median), snprintf(p2, sizeof p2, "%.1f%%", 100 * pe.p90);
    printf("decode step median |err| %s, p90 %s; prefill step median |err| %s, p90 %s\n", d1, d2, p1, p2);
    rc = 0;
done:
    for (int i = 0; i < rep.n; i++) free(rep.g[i].e);
    free(rep.g);
    free(steps);
    pgd_sim_table_destroy(table);
    pgd_vidur_free(&v);
    return rc;
}
