/* test_util.c - CUnit runner, data paths, random fill, CLI runner, a `pagoda serve` child. */
#include "test_util.h"

#include "pagoda/dtype.h"
#include "pagoda/sampler.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int pgd_test_main(CU_SuiteInfo *suites) {
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                     CU_get_number_of_suites_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return fails ? 1 : 0;
}

const char *pgd_test_data(const char *rel) {
    static char buf[4096];
    /* PAGODA_SHARED_DATA overrides the build-time path (a copy of the tree
     * run elsewhere, e.g. on a lent GPU machine, carries its own data) */
    const char *dir = getenv("PAGODA_SHARED_DATA");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : PGD_SHARED_DATA, rel);
    return buf;
}

void pgd_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

double pgd_test_rel_err(const float *a, const float *b, size_t n) {
    double maxdiff = 0, maxref = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxdiff || isnan(d)) maxdiff = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > maxref) maxref = fabs((double)b[i]);
    }
    return maxdiff / maxref;
}

double *pgd_test_int8_bounds(const float *x, const float *wf, const float *ref, int n, int in, int out, double tol) {
    size_t no = (size_t)n * out;
    double *bound = calloc(no ? no : 1, sizeof *bound), ymax = 1e-30;
    if (!bound) return NULL;
    for (size_t i = 0; i < no; i++) ymax = fmax(ymax, fabs(ref[i]));
    for (int t = 0; t < n; t++)
        for (int r = 0; r < out; r++) {
            double b = 0;
            for (int k0 = 0; k0 < in; k0 += 32) {
                double amax = 0, sw = 0;
                for (int k = k0; k < k0 + 32; k++) {
                    amax = fmax(amax, fabs(x[(size_t)t * in + k]));
                    sw += fabs(wf[(size_t)r * in + k]);
                }
                b += amax / 127.0 / 2.0 * sw;
            }
            bound[(size_t)t * out + r] = b * (1 + 1e-4) + tol * ymax;
        }
    return bound;
}

void *pgd_test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = sz >= 0 ? calloc((size_t)sz + 65, 1) : NULL;
    size_t got = p ? fread(p, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!p || got != (size_t)sz) {
        free(p);
        return NULL;
    }
    if (n) *n = got;
    return p;
}

int pgd_test_run_cli(const char *args, char **out, char **err) {
    char o[] = "/tmp/pgd_test_outXXXXXX", e[] = "/tmp/pgd_test_errXXXXXX";
    int fo = mkstemp(o), fe = mkstemp(e);
    if (fo < 0 || fe < 0) return -1;
    close(fo);
    close(fe);
    size_t n = strlen(args) + strlen(PGD_PAGODA_BIN) + 128;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s %s >%s 2>%s", PGD_PAGODA_BIN, args, o, e);
    int rc = system(cmd);
    free(cmd);
    if (out) *out = pgd_test_read_file(o, NULL);
    if (err) *err = pgd_test_read_file(e, NULL);
    unlink(o);
    unlink(e);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

int pgd_test_serve_child(const char *model, const char *tokenizer, const char *const *extra, int *pid) {
    char mpath[4096], tpath[4096];
    snprintf(mpath, sizeof mpath, "%s", pgd_test_data(model));
    snprintf(tpath, sizeof tpath, "%s", pgd_test_data(tokenizer));
    const char *argv[40] = {"pagoda", "serve", "--model", mpath, "--tokenizer", tpath, "--port", "0"};
    int argc = 8;
    for (int i = 0; extra && extra[i] && argc < 39; i++) argv[argc++] = extra[i];
    argv[argc] = NULL;
    int fds[2];
    *pid = -1;
    if (pipe(fds)) return 0;
    pid_t child = fork();
    if (child < 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    if (child == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execv(PGD_PAGODA_BIN, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[1024] = "";
    if (!f || !fgets(line, sizeof line, f)) line[0] = 0;
    if (f) fclose(f);
    else close(fds[0]);
    static const char listening[] = "listening on http://127.0.0.1:";
    const char *p = strstr(line, listening);
    int port = p ? atoi(p + strlen(listening)) : 0;
    if (port <= 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return 0;
    }
    *pid = child;
    return port;
}

int pgd_test_wait_child(int pid) {
    int st = 0;
    if (pid <= 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

char *pgd_test_write_temp(const void *data, size_t n, const char *suffix) {
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/pgd_test_XXXXXX%s", suffix ? suffix : "");
    int fd = mkstemps(tmpl, suffix ? (int)strlen(suffix) : 0);
    if (fd < 0) return NULL;
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w <= 0) break;
        p += w;
        left -= (size_t)w;
    }
    close(fd);
    return strdup(tmpl);
}

int pgd_test_load_goldens(pgd_golden *G, int max) {
    FILE *f = fopen(pgd_test_data(PGD_GOLDEN_FILE), "r");
    if (!f) return 0;
    static char line[65536];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) {
            fclose(f);
            return 0;
        }
        pgd_golden *g = &G[n];
        json_t *pt = json_object_get(o, "prompt_tokens"), *gt = json_object_get(o, "greedy_new_tokens");
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        snprintf(g->prompt, sizeof g->prompt, "%s", prompt ? prompt : "");
        g->np = (int)json_array_size(pt);
        g->ng = (int)json_array_size(gt);
        if (g->np > 0 && g->np <= 64 && g->ng <= 1024) {
            for (int i = 0; i < g->np; i++) g->ptoks[i] = (int32_t)json_integer_value(json_array_get(pt, i));
            for (int i = 0; i < g->ng; i++) g->gtoks[i] = (int32_t)json_integer_value(json_array_get(gt, i));
            n++;
        }
        json_decref(o);
    }
    fclose(f);
    return n;
}

float *pgd_test_randf(size_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (x) pgd_test_fill_uniform(x, n, seed, lo, hi);
    return x;
}

void *pgd_test_rand_weights(size_t n, int dt, uint64_t seed) {
    float *f = pgd_test_randf(n, seed, -1.0f, 1.0f);
    if (!f || dt == PGD_F32) return f;
    if (pgd_dtype_is_blocked((pgd_dtype)dt)) { /* n a multiple of 32 (k-quants: 256) */
        void *q = malloc(pgd_dtype_bytes((pgd_dtype)dt, n) + 1);
        if (q) pgd_dtype_from_f32(q, (pgd_dtype)dt, f, n);
        free(f);
        return q;
    }
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; h && i < n; i++) h[i] = dt == PGD_F16 ? pgd_f32_to_f16(f[i]) : pgd_f32_to_bf16(f[i]);
    free(f);
    return h;
}

static int cmp_desc(const void *pa, const void *pb, void *ctx) {
    const float *x = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (x[a] != x[b]) return x[a] > x[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Host model of the GPU sampler's semantics (backend.h): returns the token
 * and in *margin the smallest distance (relative to the mass) between the
 * draw or the nucleus target and a cumulative sum at a decision boundary. */
int pgd_test_ref_sample(const float *logits, int n, pgd_sample_row p, double *margin) {
    *margin = 1.0;
    int k = (p.top_k <= 0 || p.top_k >= n) ? 0 : p.top_k;
    double tp = (p.top_p <= 0.0f || p.top_p >= 1.0f) ? 1.0 : p.top_p;
    if (p.temperature == 0.0f || k == 1) return pgd_argmax(logits, n);
    float *x = malloc((size_t)n * 4), *w = malloc((size_t)n * 4);
    int *ord = malloc((size_t)n * sizeof *ord);
    char *kept = calloc((size_t)n, 1);
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] = isnan(logits[i]) ? -INFINITY : logits[i] == 0.0f ? 0.0f : logits[i];
        if (x[i] > mx) mx = x[i];
        ord[i] = i;
    }
    int tok;
    if (!isfinite(mx)) {
        tok = pgd_argmax(x, n);
        goto done;
    }
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_desc, x);
    int m = k ? k : n;
    double sum = 0.0;
    for (int j = 0; j < m; j++) {
        w[ord[j]] = expf((x[ord[j]] - mx) / p.temperature);
        sum += w[ord[j]];
    }
    int len = m;
    double mass = sum;
    if (tp < 1.0 && m > 1) {
        double target = tp * sum, cum = 0.0;
        for (len = 0; len < m;) {
            cum += w[ord[len++]];
            if (fabs(cum - target) / sum < *margin) *margin = fabs(cum - target) / sum;
            if (cum >= target) break;
        }
        mass = cum;
    }
    for (int j = 0; j < len; j++) kept[ord[j]] = 1;
    double r = (double)p.uniform * mass, cum = 0.0;
    tok = -1;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (!kept[i] || w[i] <= 0.0f) continue;
        cum += w[i];
        last = i;
        if (fabs(cum - r) / mass < *margin) *margin = fabs(cum - r) / mass;
        if (r < cum) {
            tok = i;
            break;
        }
    }
    if (tok < 0) tok = last;
done:
    free(x), free(w), free(ord), free(kept);
    return tok;
}
