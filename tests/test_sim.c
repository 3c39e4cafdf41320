/* test_sim.c - the simulator backend: cost-model roofline math on
 * hand-computed cases, monotonicity in tokens and context, calibration-table
 * interpolation (one and two sizes, written and read back), rejection of
 * bad tables with their file and line, determinism of whole runs (same
 * config, same timings), an OPT-13B engine workload in well under a second
 * of real time, clear errors for bad device names and for OPT on the
 * CPU backend, and the backends' op accounting (pgd_backend_op_times).
 * The fitted GPU curves are tested against measurements in test_sim_check.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/backend.h"
#include "pagoda/config.h"
#include "pagoda/engine.h"
#include "pagoda/exec.h"
#include "pagoda/model.h"
#include "pagoda/runner.h"
#include "sim/sim_cost.h"
#include "test_util.h"

#define NEAR(a, b) CU_ASSERT(fabs((a) - (b)) <= 1e-9 * fabs(b) + 1e-15)

static pgd_sim_cost cost_of(const char *dev) {
    pgd_sim_cost c = {.tp = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_sim_device_find(dev, &c.dev), PGD_OK);
    return c;
}

/* The roofline, as a preset without fitted curves prices ops (the "cpu"
 * preset, or a GPU preset with its curves taken away). */
static void test_roofline(void) {
    pgd_sim_cost c = cost_of("a100-40gb");
    c.dev.kernels = NULL, c.dev.links = NULL;
    /* decode matmul of OPT-13B's fc1 (5120 -> 20480, f16), 1 token: memory bound.
     * bytes = 5120*20480*2 + 1*(5120+20480)*2 = 209766400; / (1.555e12 * 0.9) */
    double t = pgd_sim_cost_matmul(&c, 1, 5120, 20480, PGD_F16);
    NEAR(t, 5e-6 + 209766400.0 / (1.555e12 * 0.9));
    /* 4096 tokens: compute bound: 2*4096*5120*20480 / (312e12 * 0.8) */
    t = pgd_sim_cost_matmul(&c, 4096, 5120, 20480, PGD_F16);
    NEAR(t, 5e-6 + 2.0 * 4096 * 5120 * 20480 / (312e12 * 0.8));
    /* attention, two decode sequences of 100 and 300 tokens, 40 heads x 128:
     * KV bytes 2*(400)*40*128*2, Q/O bytes 2*2*40*128*2 at attn_eff 0.72 */
    int32_t qs[] = {0, 1, 2}, lens[] = {100, 300};
    double bytes = 2.0 * 400 * 40 * 128 * 2 + 2.0 * 2 * 40 * 128 * 2;
    NEAR(pgd_sim_cost_attention(&c, qs, lens, 2, 40, 40, 128), 5e-6 + bytes / (1.555e12 * 0.72));
    /* swap of one 16-token block of one layer's K over PCIe: 10 us + bytes / 25 GB/s */
    NEAR(pgd_sim_cost_transfer(&c, 16 * 5120 * 2, 1, 0), 10e-6 + 16.0 * 5120 * 2 / 25e9);
    /* tensor parallel: 2 GPUs halve a memory-bound matmul's bytes, adds pay an all-reduce */
    pgd_sim_cost c2 = c;
    c2.tp = 2;
    CU_ASSERT(pgd_sim_cost_matmul(&c2, 1, 5120, 20480, PGD_F16) < 0.51 * pgd_sim_cost_matmul(&c, 1, 5120, 20480, PGD_F16) + 5e-6);
    CU_ASSERT(pgd_sim_cost_add(&c2, 5120) > pgd_sim_cost_add(&c, 5120));
    /* an f32 KV cache on the GPU preset (f16 by default) doubles the KV bytes attention reads,
     * q and out stay in the activations' f16 */
    pgd_sim_cost c4 = c;
    c4.kv_bytes = 4;
    NEAR(pgd_sim_cost_attention(&c4, qs, lens, 2, 40, 40, 128),
         5e-6 + (2.0 * 400 * 40 * 128 * 4 + 2.0 * 2 * 40 * 128 * 2) / (1.555e12 * 0.72));
    CU_ASSERT(pgd_sim_cost_kv_write(&c4, 64, 40, 128) > pgd_sim_cost_kv_write(&c, 64, 40, 128));
    CU_ASSERT(pgd_sim_cost_copy_blocks(&c4, 8, 4096) > pgd_sim_cost_copy_blocks(&c, 8, 4096));
    /* H100 is faster than A100-40GB on the same op */
    pgd_sim_cost h = cost_of("H100");
    h.dev.kernels = NULL, h.dev.links = NULL;
    CU_ASSERT(pgd_sim_cost_matmul(&h, 512, 5120, 5120, PGD_F16) < pgd_sim_cost_matmul(&c, 512, 5120, 5120, PGD_F16));
}

static void test_monotonic(void) {
    pgd_sim_cost c = cost_of("a100-80gb");
    double prev = 0;
    for (int n = 1; n <= 8192; n *= 2) {
        double t = pgd_sim_cost_matmul(&c, n, 4096, 11008, PGD_F16);
        CU_ASSERT(t >= prev);
        prev = t;
    }
    prev = 0;
    for (int L = 1; L <= 4096; L *= 2) {
        int32_t qs[] = {0, 1}, lens[] = {L};
        double t = pgd_sim_cost_attention(&c, qs, lens, 1, 32, 32, 128);
        CU_ASSERT(t > prev || L == 1);
        prev = t;
        /* a prefill of L tokens costs at least a decode at context L */
        int32_t qp[] = {0, L};
        CU_ASSERT(pgd_sim_cost_attention(&c, qp, lens, 1, 32, 32, 128) >= t);
    }
}

static void test_table(void) {
    /* version 1 (no y column), still read */
    const char *csv = "op,k1,k2,k3,x,seconds\n"
                      "matmul,8,16,0,1,0.001\n"
                      "matmul,8,16,0,5,0.003\n"
                      "matmul,8,32,0,1,0.5\n";
    char *path = pgd_test_write_temp(csv, strlen(csv), ".csv");
    pgd_sim_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_load(path, &t), PGD_OK);
    double v = 0;
    CU_ASSERT(pgd_sim_table_lookup(t, "matmul", 8, 16, 0, 3, 0, &v));
    NEAR(v, 0.002);                              /* interpolated */
    CU_ASSERT(pgd_sim_table_lookup(t, "matmul", 8, 16, 0, 10, 0, &v));
    NEAR(v, 0.006);                              /* scaled beyond the last point */
    CU_ASSERT(pgd_sim_table_lookup(t, "matmul", 8, 16, 0, 0.5, 0, &v));
    NEAR(v, 0.001);                              /* floored at the first */
    CU_ASSERT(!pgd_sim_table_lookup(t, "matmul", 8, 64, 0, 1, 0, &v)); /* unknown shape: roofline */
    pgd_sim_cost c = cost_of("cpu");
    c.table = t;
    NEAR(pgd_sim_cost_matmul(&c, 3, 8, 16, PGD_F32), 0.002);
    pgd_sim_table_destroy(t);
    remove(path);
    free(path);
}

/* Version 2: two sizes (attention), written by pgd_sim_table_save and read
 * back: exact at every measured point, bilinear inside, monotone between
 * points, floored below, proportional beyond, ragged rows of x allowed. */
static void test_table_2d(void) {
    pgd_sim_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_new(&t), PGD_OK);
    /* attn_decode(B, L) = 1e-5 + 1e-6 B + 1e-8 B L at B = 1, 4, 16 and L = 16, 64, 256 (16: L = 16, 64 only) */
    static const int Bs[] = {1, 4, 16}, Ls[] = {16, 64, 256};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if (Bs[i] == 16 && Ls[j] == 256) continue;
            double B = Bs[i], L = Ls[j];
            CU_ASSERT_EQUAL(pgd_sim_table_add(t, "attn_decode", 6, 6, 48, B, L, 1e-5 + 1e-6 * B + 1e-8 * B * L), PGD_OK);
        }
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "logits", 0, 0, 0, 128000, 0, 5e-5), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "logits", 0, 0, 0, 256000, 0, 9e-5), PGD_OK);
    char *path = pgd_test_write_temp("", 0, ".csv");
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_save(t, path, "a test table\nsecond line"), PGD_OK);
    pgd_sim_table_destroy(t);
    size_t n = 0;
    char *text = pgd_test_read_file(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    static const char head[] = "# a test table\n# second line\n" PGD_SIM_TABLE_HEADER "\n";
    CU_ASSERT(!strncmp(text, head, strlen(head)));
    free(text);
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_load(path, &t), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_table_rows(t), 10);
    double v = 0;
    for (int i = 0; i < 3; i++) /* exact at the measured points */
        for (int j = 0; j < 3; j++) {
            if (Bs[i] == 16 && Ls[j] == 256) continue;
            double B = Bs[i], L = Ls[j];
            CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, B, L, &v));
            NEAR(v, 1e-5 + 1e-6 * B + 1e-8 * B * L);
        }
    /* inside a cell: bilinear, and the test function is bilinear, so exact */
    CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, 2.5, 40, &v));
    NEAR(v, 1e-5 + 1e-6 * 2.5 + 1e-8 * 2.5 * 40);
    /* monotone between points along x and along y */
    double prev = 0;
    for (double B = 1; B <= 16; B += 0.25) {
        CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, B, 50, &v));
        CU_ASSERT(v >= prev);
        prev = v;
    }
    prev = 0;
    for (double L = 16; L <= 256; L += 4) {
        CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, 3, L, &v));
        CU_ASSERT(v >= prev);
        prev = v;
    }
    /* below the grid: floored; beyond: proportional (B = 16 stops at L = 64) */
    CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, 0.5, 8, &v));
    NEAR(v, 1e-5 + 1e-6 + 1e-8 * 16);
    CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, 16, 128, &v));
    NEAR(v, (1e-5 + 16e-6 + 1e-8 * 16 * 64) * 2);
    CU_ASSERT(pgd_sim_table_lookup(t, "attn_decode", 6, 6, 48, 32, 64, &v));
    NEAR(v, (1e-5 + 16e-6 + 1e-8 * 16 * 64) * 2);
    CU_ASSERT(!pgd_sim_table_lookup(t, "attn_decode", 8, 8, 64, 4, 64, &v));
    /* the cost model uses it: 4 decode sequences of context 64 = one lookup at (4, 64) */
    pgd_sim_cost c = cost_of("cpu");
    c.table = t;
    int32_t qs[] = {0, 1, 2, 3, 4}, lens[] = {32, 64, 64, 96};
    NEAR(pgd_sim_cost_attention(&c, qs, lens, 4, 6, 6, 48), 1e-5 + 4e-6 + 1e-8 * 4 * 64);
    /* logits: the result download (and the engine's sampling) by bytes; a swap download is not logits */
    NEAR(pgd_sim_cost_transfer(&c, 192000, 1, 1), 7e-5);
    CU_ASSERT(pgd_sim_cost_transfer(&c, 192000, 1, 0) != 7e-5);
    pgd_sim_table_destroy(t);
    remove(path);
    free(path);
}

/* Tables that must not load, each with a message naming file and line. */
static void test_table_errors(void) {
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "no header"},
        {"# only a comment\n", "no header"},
        {"op,k1,k2,k3,x,y,seconds\n", "no rows"},
        {"op,x,seconds\nmatmul,1,2\n", "expected the header"},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2\n", ":2: expected op,k1,k2,k3,x,y,seconds"},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2,3,4,5,6,7\n", ":2: expected"},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2,3,4,0,-1\n", ":2: "},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2,3,-4,0,1\n", "must be finite and >= 0"},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2,3,4,0,nan\n", "must be finite"},
        {"op,k1,k2,k3,x,y,seconds\nMat Mul,1,2,3,4,0,1\n", "op name"},
        {"op,k1,k2,k3,x,y,seconds\nmatmul,1,2,3,4,0,1\nmatmul,1,2,3,4,0,2\n", "appears twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = pgd_test_write_temp(bad[i].text, strlen(bad[i].text), ".csv");
        pgd_sim_table *t = (pgd_sim_table *)1;
        pgd_status st = pgd_sim_table_load(path, &t);
        CU_ASSERT_EQUAL(st, PGD_ERR_FORMAT);
        CU_ASSERT_PTR_NULL(t);
        if (!strstr(pgd_last_error(), bad[i].msg) || !strstr(pgd_last_error(), path)) {
            fprintf(stderr, "\ncase %zu: message '%s' lacks '%s' or the path\n", i, pgd_last_error(), bad[i].msg);
            CU_FAIL("error message");
        }
        remove(path);
        free(path);
    }
    pgd_sim_table *t = NULL;
    CU_ASSERT_EQUAL(pgd_sim_table_load("/nonexistent/dir/table.csv", &t), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/nonexistent/dir/table.csv"));
    /* and through the sim backend and a config */
    pgd_backend *b = NULL;
    pgd_backend_config bc = {.name = "sim",
                             .options = (const char *const[]){"device=cpu", "profile=/nonexistent/table.csv", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bc, &b), PGD_ERR_IO);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_new(&t), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "bad-name", 0, 0, 0, 1, 0, 1), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "matmul", 0, 0, 0, 1, 0, INFINITY), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "matmul", 0, 0, 0, 1, 0, 1), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_table_add(t, "matmul", 0, 0, 0, 1, 0, 2), PGD_OK);
    CU_ASSERT_EQUAL(pgd_sim_table_save(t, "/nonexistent/dir/t.csv", NULL), PGD_ERR_FORMAT); /* repeated point */
    pgd_sim_table_destroy(t);
}

static void test_bad_device(void) {
    pgd_backend *b = NULL;
    pgd_backend_config bc = {.name = "sim", .options = (const char *const[]){"device=a100-30gb", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bc, &b), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "unknown device 'a100-30gb'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "h100"));
    /* and in a config: one line naming the key */
    const char *ini = "[model]\npath = random:opt-13b\nbackend = sim\ndevice = tpu\n";
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL(pgd_experiment_load_string(ini, "x.ini", &e), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "device = 'tpu'"));
    /* OPT needs the sim */
    pgd_backend_config cc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&cc, &b), PGD_OK);
    pgd_model *m = NULL;
    CU_ASSERT_EQUAL(pgd_model_load("random:opt-125m", NULL, b, &m), PGD_ERR_UNSUPPORTED);
    pgd_backend_destroy(b);
}

static void test_opt_shapes(void) {
    pgd_model_config c;
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("opt-13b", &c), PGD_OK);
    c.weight_dtype = PGD_F16;
    c.kv_dtype = PGD_F16;
    /* 12.85B parameters, ~25.7 GB of f16; 800 KB (819200 bytes) of KV per token */
    CU_ASSERT(fabs((double)pgd_model_config_params(&c) - 12.85e9) < 0.02e9);
    CU_ASSERT(fabs((double)pgd_model_config_weight_bytes(&c) - 25.7e9) < 0.1e9);
    CU_ASSERT_EQUAL(pgd_kv_cache_block_bytes(&c, 1), 819200);
    CU_ASSERT_EQUAL_FATAL(pgd_model_shape("opt-175b", &c), PGD_OK);
    c.weight_dtype = PGD_F16;
    CU_ASSERT(fabs((double)pgd_model_config_params(&c) - 175e9) < 1e9);
}

static const char *exp_ini =
    "[experiment]\nseed = 3\n"
    "[model]\npath = random:opt-13b\ndtype = f16\nbackend = sim\ndevice = a100-40gb\n"
    "[engine]\nkv_memory = 12G\n"
    "[workload]\nnum_requests = 200\nrate = 2\ninput_len = sharegpt\noutput_len = sharegpt\n";

static void run_once(pgd_run_result *res) {
    pgd_experiment *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(exp_ini, "sim.ini", &e), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_run_execute(pgd_experiment_run(e, 0), NULL, res), PGD_OK);
    pgd_experiment_destroy(e);
}

static void test_engine_opt13b(void) {
    pgd_run_result a, b;
    run_once(&a);
    run_once(&b);
    /* every request served at its drawn length, on virtual time; real time
     * only bounded loosely (no pathological slowdown: about 0.1 s in a
     * Release build, several times that under ASan on a busy machine) */
    CU_ASSERT_EQUAL(a.summary.completed, 200);
    fprintf(stderr, "[200 OPT-13B requests in %.3f s real time] ", a.wall_time);
    CU_ASSERT(a.wall_time < 30.0);
    CU_ASSERT(a.summary.duration > 50); /* 200 requests at 2 req/s: ~100 virtual seconds */
    CU_ASSERT_PTR_NOT_NULL(strstr(a.backend_desc, "a100-40gb"));
    /* same config, same timings (bit for bit) and tokens */
    CU_ASSERT_EQUAL(a.summary.duration, b.summary.duration);
    CU_ASSERT_EQUAL(a.summary.e2e.mean, b.summary.e2e.mean);
    CU_ASSERT_EQUAL(a.summary.ttft.p99, b.summary.ttft.p99);
    CU_ASSERT_EQUAL(a.stats.steps, b.stats.steps);
    CU_ASSERT_EQUAL(a.token_fingerprint, b.token_fingerprint);
    /* decode steps of a 26 GB model on 1.4 TB/s: ~18 ms per token at least */
    CU_ASSERT(a.summary.tpot.mean > 0.018 && a.summary.tpot.mean < 0.1);
    pgd_run_result_free(&a);
    pgd_run_result_free(&b);
}

/* The KV dtype asked of a sim backend is priced from its creation: an f32
 * cache on a GPU preset (f16 by default) makes a kv_write cost more, a q8
 * one (1 byte a value + a 4-byte scale per 128-value row) less. */
static void test_kv_dtype_priced(void) {
    double dt[3];
    const char *kts[3] = {NULL, "f32", "q8"};
    for (int i = 0; i < 3; i++) {
        pgd_backend *b = NULL;
        pgd_backend_config bc = {
            .name = "sim", .kv_dtype = kts[i], .options = (const char *const[]){"device=a100-40gb", NULL}};
        CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &b), PGD_OK);
        CU_ASSERT_EQUAL(pgd_backend_kv_dtype(b), i == 2 ? PGD_Q8 : i ? PGD_F32 : PGD_F16);
        void *w = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, (size_t)64 << 20, &w), PGD_OK); /* virtual */
        double t0 = pgd_clock_now(pgd_backend_clock(b));
        CU_ASSERT_EQUAL(pgd_backend_kv_write(b, w, w, w, w, w, 4096, 8, 128, 16, 0), PGD_OK);
        dt[i] = pgd_clock_now(pgd_backend_clock(b)) - t0;
        pgd_backend_free(b, w);
        pgd_backend_destroy(b);
    }
    CU_ASSERT(dt[1] > dt[0] && dt[0] > dt[2] && dt[2] > 0);
}

/* Op accounting on the sim backend: each op's seconds are exactly the
 * virtual clock's advance over it; calls that do nothing (n = 0) or fail
 * validation are not counted; reset zeroes; a short `cap` gets only
 * `cap` rows. */
static void test_op_times(void) {
    pgd_backend *b = NULL;
    pgd_backend_config bc = {.name = "sim"};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &b), PGD_OK);
    pgd_clock *clk = pgd_backend_clock(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(clk);
    pgd_op_time t[PGD_BACKEND_NUM_OPS + 1];
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 0);
    void *meta = NULL, *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, 4096, &meta), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, (size_t)64 << 20, &w), PGD_OK); /* virtual */
    int32_t host[1024] = {0};
    double t0 = pgd_clock_now(clk);
    CU_ASSERT_EQUAL(pgd_backend_upload(b, meta, host, sizeof host), PGD_OK);
    double t_up = pgd_clock_now(clk) - t0;
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(pgd_backend_matmul(b, w, w, w, PGD_F16, 64, 4096, 4096), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_matmul(b, w, w, w, PGD_F16, 0, 4096, 4096), PGD_OK);      /* n = 0: no op */
    CU_ASSERT_EQUAL(pgd_backend_matmul(b, w, w, w, PGD_F16, 64, 0, 4096), PGD_ERR_INVALID); /* not run */
    for (int i = 0; i < 2; i++) CU_ASSERT_EQUAL(pgd_backend_rmsnorm(b, w, w, w, 64, 4096, 1e-5f), PGD_OK);
    double total = pgd_clock_now(clk) - t0;
    CU_ASSERT(total > t_up && t_up > 0);
    /* fixed order (upload before matmul before rmsnorm), only ops with calls */
    CU_ASSERT_EQUAL_FATAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 3);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, NULL, 0), 3);
    CU_ASSERT_STRING_EQUAL(t[0].op, "upload");
    CU_ASSERT_STRING_EQUAL(t[1].op, "matmul");
    CU_ASSERT_STRING_EQUAL(t[2].op, "rmsnorm");
    CU_ASSERT_EQUAL(t[0].calls, 1);
    CU_ASSERT_EQUAL(t[1].calls, 3);
    CU_ASSERT_EQUAL(t[2].calls, 2);
    NEAR(t[0].seconds, t_up);
    pgd_sim_cost c = cost_of("a100-40gb");
    NEAR(t[1].seconds, 3 * pgd_sim_cost_matmul(&c, 64, 4096, 4096, PGD_F16));
    NEAR(t[0].seconds + t[1].seconds + t[2].seconds, total);
    /* cap smaller than the count: the first cap rows, nothing past them */
    t[1] = t[2] = (pgd_op_time){.op = "untouched", .calls = -7};
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, t, 1), 1);
    CU_ASSERT_STRING_EQUAL(t[0].op, "upload");
    CU_ASSERT_STRING_EQUAL(t[1].op, "untouched");
    CU_ASSERT_EQUAL(t[1].calls, -7);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, t, 0), 0);
    CU_ASSERT_STRING_EQUAL(t[0].op, "upload");
    /* reset zeroes; counting starts again */
    pgd_backend_op_times_reset(b);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 0);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, NULL, 0), 0);
    CU_ASSERT_EQUAL(pgd_backend_add(b, w, w, 4096), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 1);
    CU_ASSERT_STRING_EQUAL(t[0].op, "add");
    CU_ASSERT_EQUAL(t[0].calls, 1);
    NEAR(t[0].seconds, pgd_sim_cost_add(&c, 4096));
    CU_ASSERT_EQUAL(pgd_backend_op_times(NULL, t, 1), 0);
    pgd_backend_op_times_reset(NULL);
    pgd_backend_free(b, w);
    pgd_backend_free(b, meta);
    pgd_backend_destroy(b);
}

/* Row strides (rope, kv_write, attention's q): 0 or a whole row, else
 * PGD_ERR_INVALID naming the op (and not counted); a strided op is priced as
 * the dense one. silu_mul: shape and overlap checked; priced by its
 * rows * hidden outputs. */
static void test_strided_ops_checked(void) {
    pgd_backend *b = NULL;
    pgd_backend_config bc = {.name = "sim"};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &b), PGD_OK);
    pgd_clock *clk = pgd_backend_clock(b);
    void *w = NULL;
    int32_t *meta = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, (size_t)64 << 20, &w), PGD_OK); /* virtual */
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, 4096, (void **)&meta), PGD_OK);
    pgd_sim_cost c = cost_of("a100-40gb");
    const int T = 8, nh = 32, nkv = 8, hd = 128, qkv = (nh + 2 * nkv) * hd;
    for (int st = 0; st <= qkv; st += qkv) { /* dense, fused rows */
        double t0 = pgd_clock_now(clk);
        CU_ASSERT_EQUAL(pgd_backend_rope(b, w, w, meta, T, nh, nkv, hd, 1e4f, st), PGD_OK);
        NEAR(pgd_clock_now(clk) - t0, pgd_sim_cost_rope(&c, T, nh, nkv, hd));
        t0 = pgd_clock_now(clk);
        CU_ASSERT_EQUAL(pgd_backend_kv_write(b, w, w, w, w, meta, T, nkv, hd, 16, st), PGD_OK);
        NEAR(pgd_clock_now(clk) - t0, pgd_sim_cost_kv_write(&c, T, nkv, hd));
    }
    pgd_backend_op_times_reset(b);
    CU_ASSERT_EQUAL(pgd_backend_rope(b, w, w, meta, T, nh, nkv, hd, 1e4f, nh * hd - 1), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "rope"));
    CU_ASSERT_EQUAL(pgd_backend_rope(b, w, w, meta, T, nh, nkv, hd, 1e4f, -1), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_backend_kv_write(b, w, w, w, w, meta, T, nkv, hd, 16, nkv * hd - 1), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "kv_write"));
    meta[0] = 0, meta[1] = 1, meta[2] = 5; /* query_start {0, 1}, seq_lens {5} */
    pgd_paged_attn a = {.out = w, .q = w, .k_cache = w, .v_cache = w, .query_start = meta, .seq_lens = meta + 2,
                        .block_tables = meta, .num_seqs = 1, .num_tokens = 1, .max_blocks_per_seq = 1,
                        .max_seq_len = 5, .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .block_size = 16,
                        .scale = 1, .q_stride = nh * hd - 8, .kv_dtype = pgd_backend_kv_dtype(b)};
    CU_ASSERT_EQUAL(pgd_backend_paged_attention(b, &a), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "paged_attention"));
    /* silu_mul: shape checked, out must not overlap gate_up */
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, w, (float *)w + 4096, T, 0), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, w, (float *)w + 4096, -1, 128), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, (float *)w + 2 * T * 128 - 1, w, T, 128), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "silu_mul"));
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, w, (float *)w + T * 128 - 1, T, 128), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, NULL, 0), 0); /* none of them ran */
    a.q_stride = qkv;
    CU_ASSERT_EQUAL(pgd_backend_paged_attention(b, &a), PGD_OK);
    /* silu_mul priced by its outputs: rows * hidden */
    double t0 = pgd_clock_now(clk);
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, w, (float *)w + T * 14336, T, 14336), PGD_OK);
    NEAR(pgd_clock_now(clk) - t0, pgd_sim_cost_silu_mul(&c, (size_t)T * 14336));
    CU_ASSERT_EQUAL(pgd_backend_silu_mul(b, (float *)w + 2 * T * 128, w, T, 128), PGD_OK); /* just past */
    pgd_backend_free(b, meta);
    pgd_backend_free(b, w);
    pgd_backend_destroy(b);
}

/* On the CPU the seconds are wall time: finite, >= 0, and calls counted. */
static void test_op_times_cpu(void) {
    pgd_backend *b = NULL;
    pgd_backend_config bc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &b), PGD_OK);
    float *x = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, sizeof(float) * 1024, (void **)&x), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_memset(b, x, 0, sizeof(float) * 1024), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_add(b, x, x, 1024), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_add(b, x, x, 1024), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_sync(b), PGD_OK);
    pgd_op_time t[PGD_BACKEND_NUM_OPS];
    CU_ASSERT_EQUAL_FATAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 3);
    CU_ASSERT_STRING_EQUAL(t[0].op, "memset");
    CU_ASSERT_STRING_EQUAL(t[1].op, "sync");
    CU_ASSERT_STRING_EQUAL(t[2].op, "add");
    CU_ASSERT_EQUAL(t[2].calls, 2);
    for (int i = 0; i < 3; i++) CU_ASSERT(isfinite(t[i].seconds) && t[i].seconds >= 0 && t[i].seconds < 1);
    pgd_backend_op_times_reset(b);
    CU_ASSERT_EQUAL(pgd_backend_op_times(b, t, PGD_BACKEND_NUM_OPS), 0);
    pgd_backend_free(b, x);
    pgd_backend_destroy(b);
}

/* Beam search on the sim: no logits are computed (all equal), so each
 * beam's candidates are tokens 0..2k-1 at -log V, what a scan of equal
 * logits keeps, without the scan; every step's k beams descend from beam 0,
 * so beam i is zeros then token i, all at the same score. */
static void test_beam_stand_in(void) {
    pgd_exec *m = NULL;
    pgd_exec_config xc = {.model = "random:opt-125m",
                          .backend = {.name = "sim", .options = (const char *const[]){"device=a100-40gb", NULL}}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &m), PGD_OK);
    const pgd_model_config *mc = pgd_exec_model_config(m);
    pgd_engine_config ec = {.block_size = 16, .num_blocks = 64, .max_num_batched_tokens = 2048, .max_num_seqs = 16};
    pgd_engine *e = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ec, m, NULL, &e), PGD_OK);
    int32_t prompt[20];
    for (int i = 0; i < 20; i++) prompt[i] = 100 + i;
    const int k = 3, T = 40;
    pgd_request_params p = {.prompt = prompt, .n_prompt = 20, .max_tokens = T, .beam_width = k, .ignore_eos = 1};
    int64_t id = -1;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, &id), PGD_OK);
    double most_saved = 0;
    for (int guard = 0; guard < 1000; guard++) {
        int done = 0;
        CU_ASSERT_EQUAL_FATAL(pgd_engine_step(e, &done), PGD_OK);
        pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        if (st.kv.logical_blocks > 0) {
            double saved = 1 - (double)st.kv.used_blocks / (double)st.kv.logical_blocks;
            if (saved > most_saved) most_saved = saved;
        }
        if (done) break;
    }
    const pgd_request_output *o = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(e, id, &o), PGD_OK);
    CU_ASSERT(o->finished);
    CU_ASSERT_EQUAL_FATAL(o->num_seqs, k);
    double lp = (float)(0.0 - log((double)mc->vocab_size));
    for (int i = 0; i < k; i++) {
        const pgd_seq_output *so = &o->seqs[i];
        CU_ASSERT_EQUAL_FATAL(so->n_tokens, T);
        int zeros = 1;
        for (int t = 0; t + 1 < T; t++) zeros &= so->tokens[t] == 0;
        CU_ASSERT(zeros);
        CU_ASSERT_EQUAL(so->tokens[T - 1], i);
        CU_ASSERT_DOUBLE_EQUAL(so->cum_logprob, T * lp, 1e-6 * T * fabs(lp));
    }
    /* right after a step the k beams, all just forked from one, still hold
     * that one's blocks (each copies its last block when the next step
     * writes into it): k tables over one set of blocks, the most sharing
     * there can be */
    CU_ASSERT_DOUBLE_EQUAL(most_saved, 1.0 - 1.0 / k, 1e-12);
    pgd_engine_destroy(e);
    pgd_exec_destroy(m);
}

/* The sim's options and requests travel through the generic slots
 * (pgd_backend_config.options, pgd_backend_control), checked by key. */
static void test_options_and_control(void) {
    const char *const *keys = pgd_backend_option_keys("sim");
    CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
    CU_ASSERT_STRING_EQUAL(keys[0], "device");
    CU_ASSERT_STRING_EQUAL(keys[1], "profile");
    CU_ASSERT_STRING_EQUAL(keys[2], "tp");
    CU_ASSERT_PTR_NULL(keys[3]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pgd_backend_option_keys("cpu"));
    CU_ASSERT_PTR_NULL(pgd_backend_option_keys("cpu")[0]);
    CU_ASSERT_PTR_NULL(pgd_backend_option_keys("tpu"));
    pgd_backend *b = NULL;
    pgd_backend_config bad = {.name = "sim", .options = (const char *const[]){"devcie=h100", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bad, &b), PGD_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "the sim backend has no option 'devcie' (it takes: device, profile, tp)");
    bad = (pgd_backend_config){.name = "cpu", .options = (const char *const[]){"device=h100", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bad, &b), PGD_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "the cpu backend has no option 'device' (it takes none)");
    bad = (pgd_backend_config){.name = "sim", .options = (const char *const[]){"h100", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bad, &b), PGD_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "backend option 'h100' is not key=value");
    bad = (pgd_backend_config){.name = "sim", .options = (const char *const[]){"tp=65", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bad, &b), PGD_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "sim backend: tensor-parallel degree must be in 1..64 (got 65)");
    bad = (pgd_backend_config){.name = "sim", .options = (const char *const[]){"tp=2x", NULL}};
    CU_ASSERT_EQUAL(pgd_backend_create(&bad, &b), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(b);

    pgd_backend_config bc = {.name = "sim", .options = (const char *const[]){"device=h100", "tp=2", NULL}};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&bc, &b), PGD_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_backend_describe(b), "h100 x2"));
    CU_ASSERT_EQUAL(pgd_backend_host_memory(b), 0);
    const char *dev = NULL;
    CU_ASSERT_EQUAL(pgd_backend_control(b, "device", &dev), PGD_OK);
    CU_ASSERT_STRING_EQUAL(dev, "h100");
    pgd_clock *own = NULL;
    CU_ASSERT_EQUAL(pgd_backend_control(b, "clock", &own), PGD_OK);
    CU_ASSERT_PTR_EQUAL(own, pgd_backend_clock(b));
    CU_ASSERT_EQUAL(pgd_clock_get_kind(own), PGD_CLOCK_VIRTUAL);
    CU_ASSERT_EQUAL(pgd_backend_control(b, "flush", NULL), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "the sim backend has no request 'flush'");
    /* a borrowed clock: ops advance it, and the op accounting reads it */
    pgd_clock *v = NULL, *real = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_VIRTUAL, &v), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_clock_create(PGD_CLOCK_REAL, &real), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_control(b, "set_clock", real), PGD_ERR_INVALID);
    CU_ASSERT_PTR_EQUAL(pgd_backend_clock(b), own);
    CU_ASSERT_EQUAL(pgd_backend_control(b, "set_clock", v), PGD_OK);
    CU_ASSERT_PTR_EQUAL(pgd_backend_clock(b), v);
    double t0 = pgd_clock_now(v);
    void *x = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_backend_alloc(b, 1 << 20, &x), PGD_OK);
    CU_ASSERT_EQUAL(pgd_backend_rmsnorm(b, x, x, x, 16, 1024, 1e-5f), PGD_OK);
    CU_ASSERT(pgd_clock_now(v) > t0);
    pgd_op_time ot[PGD_BACKEND_NUM_OPS];
    CU_ASSERT_EQUAL_FATAL(pgd_backend_op_times(b, ot, PGD_BACKEND_NUM_OPS), 1);
    CU_ASSERT_DOUBLE_EQUAL(ot[0].seconds, pgd_clock_now(v) - t0, 1e-15);
    pgd_backend_free(b, x);
    pgd_backend_destroy(b);
    pgd_clock_destroy(v);
    pgd_clock_destroy(real);
    /* a backend without a clock (its only request is prepare_weight) */
    pgd_backend_config cc = {.name = "cpu", .num_threads = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_backend_create(&cc, &b), PGD_OK);
    CU_ASSERT_PTR_NULL(pgd_backend_clock(b));
    CU_ASSERT_EQUAL(pgd_backend_host_memory(b), 1);
    CU_ASSERT_EQUAL(pgd_backend_control(b, "clock", &own), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_STRING_EQUAL(pgd_last_error(), "the cpu backend takes no request 'clock' (it takes: prepare_weight)");
    pgd_backend_destroy(b);
}

static CU_TestInfo tests[] = {
    {"backend options and requests: the sim's through the generic slots", test_options_and_control},
    {"KV dtype priced from creation", test_kv_dtype_priced},
    {"roofline math on hand-computed cases", test_roofline},
    {"monotonic in tokens and context", test_monotonic},
    {"calibration table interpolation", test_table},
    {"calibration table: two sizes, save and load", test_table_2d},
    {"calibration table: bad files rejected with the line", test_table_errors},
    {"bad device names and OPT on the CPU rejected", test_bad_device},
    {"OPT shapes: parameters, weight and KV bytes", test_opt_shapes},
    {"OPT-13B workload: deterministic", test_engine_opt13b},
    {"op times: sim seconds are the clock's advance; reset; short cap", test_op_times},
    {"op times on the cpu backend: wall time, calls", test_op_times_cpu},
    {"strided ops and fused silu_mul: arguments checked, priced", test_strided_ops_checked},
    {"beam search on the sim: the equal-logits candidates without a scan", test_beam_stand_in},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "sim", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
