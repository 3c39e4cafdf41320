/* test_profile.c - `pagoda profile`: it writes a calibration table that the
 * sim loads, with a row for every op the forward pass issues (at the model's
 * shapes) plus the derived host rows, every time positive, and the header
 * naming the machine and grid; a sim run calibrated with it works and is
 * deterministic; bad input fails before measuring anything, with one clear
 * message naming the culprit, and leaves no output file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/config.h"
#include "pagoda/runner.h"
#include "sim/sim_cost.h"
#include "test_util.h"

#define TINY "random:dim=64,layers=2,heads=4,kv_heads=4,hidden=128,vocab=512,seq=64"

static char *table_path;

static int suite_init(void) {
    table_path = pgd_test_write_temp("", 0, ".csv");
    return table_path ? 0 : -1;
}

static int suite_clean(void) {
    if (table_path) remove(table_path);
    free(table_path);
    return 0;
}

static void test_table_for_the_sim(void) {
    char args[1024], *err = NULL;
    snprintf(args, sizeof args,
             "profile --model '" TINY "' --threads 2 --quick --reps 2 --max-tokens 64 --max-seqs 8 --kv-memory 8M "
             "-o '%s'", table_path);
    int rc = pgd_test_run_cli(args, NULL, &err);
    if (rc != 0) fprintf(stderr, "\n%s\n", err ? err : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "wrote"));
    free(err);
    char *text = pgd_test_read_file(table_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# machine: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# model " TINY));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# copy bandwidth: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# matmul peak: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n" PGD_SIM_TABLE_HEADER "\n"));
    free(text);

    pgd_sim_table *t = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_sim_table_load(table_path, &t), PGD_OK);
    CU_ASSERT(pgd_sim_table_rows(t) > 40);
    /* a row for every op at this model's keys (sim_cost.h), each positive */
    static const struct {
        const char *op;
        long k1, k2, k3;
        double x, y;
    } want[] = {
        {"matmul", 64, 192, PGD_F32, 1, 0},       /* wqkv (q, k, v in one GEMM) */
        {"matmul", 64, 64, PGD_F32, 1, 0},        /* wo */
        {"matmul", 64, 256, PGD_F32, 8, 0},       /* w13 (gate and up in one GEMM) */
        {"matmul", 128, 64, PGD_F32, 16, 0},      /* w2 */
        {"matmul", 64, 512, PGD_F32, 1, 0},       /* classifier */
        {"embedding", 64, PGD_F32, 0, 4, 0},
        {"rmsnorm", 64, 0, 0, 4, 0},
        {"rope", 4, 4, 16, 4, 0},
        {"kv_write", 4, 16, 0, 4, 0},
        {"silu_mul", 0, 0, 0, 128, 0},            /* x: output elements (tokens * hidden) */
        {"add", 0, 0, 0, 64, 0},
        {"gather", 64, 0, 0, 2, 0},
        {"attn_decode", 4, 4, 16, 1, 16},
        {"attn_decode", 4, 4, 16, 8, 64},
        {"attn_prefill", 4, 4, 16, 16, 8},
        {"copy_blocks", 4 * 16 * 16, 0, 0, 4, 0},
        {"upload", 0, 0, 0, 4 * 16 * 16 * 4, 0},
        {"download", 0, 0, 0, 4 * 16 * 16 * 4, 0},
        {"meta_upload", 0, 0, 0, 100, 0},
        {"logits", 0, 0, 0, 4 * 512 * 4, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double v = -1;
        int found = pgd_sim_table_lookup(t, want[i].op, want[i].k1, want[i].k2, want[i].k3, want[i].x, want[i].y, &v);
        if (!found || !(v > 0)) fprintf(stderr, "\n  %s,%ld,%ld,%ld: found %d, %g s\n", want[i].op, want[i].k1,
                                        want[i].k2, want[i].k3, found, v);
        CU_ASSERT(found && v > 0 && v < 1);
    }
    double a = 0, b = 0; /* more work costs more: 64 tokens of matmul vs 1 (far apart, so noise cannot flip it) */
    CU_ASSERT(pgd_sim_table_lookup(t, "matmul", 64, 512, PGD_F32, 1, 0, &a));
    CU_ASSERT(pgd_sim_table_lookup(t, "logits", 0, 0, 0, 8 * 512 * 4, 0, &b));
    CU_ASSERT(a > 0 && b > 0);
    pgd_sim_table_destroy(t);

    /* the sim calibrated with it: runs, says so, same numbers twice */
    char ini[2048];
    snprintf(ini, sizeof ini,
             "[experiment]\nseed = 2\n[model]\npath = " TINY "\nbackend = sim\ndevice = cpu\nprofile = %s\n"
             "[engine]\nmax_num_batched_tokens = 64\nmax_num_seqs = 8\n"
             "[workload]\nnum_requests = 30\nrate = 50\ninput_len = uniform\ninput_min = 2\ninput_max = 30\n"
             "output_len = uniform\noutput_min = 1\noutput_max = 30\n", table_path);
    pgd_run_result r[2];
    for (int k = 0; k < 2; k++) {
        pgd_experiment *e = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_experiment_load_string(ini, "cal.ini", &e), PGD_OK);
        pgd_status st = pgd_run_execute(pgd_experiment_run(e, 0), NULL, &r[k]);
        if (st != PGD_OK) fprintf(stderr, "\n%s\n", pgd_last_error());
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        pgd_experiment_destroy(e);
    }
    CU_ASSERT_EQUAL(r[0].summary.completed, 30);
    CU_ASSERT_PTR_NOT_NULL(strstr(r[0].backend_desc, "calibrated"));
    CU_ASSERT(r[0].summary.e2e.mean > 0);
    CU_ASSERT_EQUAL(r[0].summary.e2e.mean, r[1].summary.e2e.mean);
    CU_ASSERT_EQUAL(r[0].summary.duration, r[1].summary.duration);
    pgd_run_result_free(&r[0]);
    pgd_run_result_free(&r[1]);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

/* Fails with exit 1 or 2, `needle` on stderr (in its first line when
 * one_line), nothing on stdout, and no table written. */
static void expect_error(const char *extra, const char *needle, int one_line) {
    char *out_file = pgd_test_write_temp("", 0, ".csv"), args[2048], *out = NULL, *err = NULL;
    remove(out_file);
    snprintf(args, sizeof args, "profile -o '%s' --quick --reps 1 --model '" TINY "' %s", out_file, extra);
    int rc = pgd_test_run_cli(args, &out, &err);
    int ok = (rc == 1 || rc == 2) && err && strstr(err, needle) && (!one_line || count_lines(err) == 1);
    if (!ok) fprintf(stderr, "\n  args: %s\n  rc=%d\n  stderr: %s\n", args, rc, err ? err : "(null)");
    CU_ASSERT(ok);
    CU_ASSERT(out == NULL || out[0] == '\0');
    CU_ASSERT(access(out_file, F_OK) != 0);
    remove(out_file);
    free(out_file);
    free(out);
    free(err);
}

static void test_bad_input(void) {
    expect_error("--threads -1", "--threads must be an integer in 0..1024 (got '-1')", 1);
    expect_error("--max-tokens 0", "--max-tokens must be an integer", 1);
    expect_error("--reps x", "--reps must be an integer", 1);
    expect_error("--dtype f8", "--dtype must be f32, f16, bf16, q8_0 or q4_0 (got 'f8')", 1);
    expect_error("--kv-memory lots", "--kv-memory must be a size like 256M or 1G (got 'lots')", 1);
    expect_error("--temperature -1", "--temperature must be >= 0", 1);
    expect_error("extra", "unexpected argument 'extra'", 1);
    expect_error("--backend tpu", "unknown backend 'tpu'", 1);
    expect_error("--backend sim", "computes nothing", 1);
    expect_error("--model random:nosuchshape", "nosuchshape", 0);
    expect_error("--model /no/such/model.bin", "/no/such/model.bin", 0);
    expect_error("--kv-memory 1K", "holds 0 blocks", 0);
    /* no output, or an output that cannot be written: before any measuring */
    char *out = NULL, *err = NULL;
    int rc = pgd_test_run_cli("profile --model random:stories15M", &out, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--output FILE is required"));
    CU_ASSERT_PTR_NULL(err && strstr(err, "loading"));
    free(out);
    free(err);
    err = NULL;
    rc = pgd_test_run_cli("profile -o /no/such/dir/table.csv", NULL, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "cannot write --output '/no/such/dir/table.csv'"));
    CU_ASSERT_PTR_NULL(err && strstr(err, "loading"));
    free(err);
    out = NULL;
    CU_ASSERT_EQUAL(pgd_test_run_cli("profile --help", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--max-tokens"));
    free(out);
}

static CU_TestInfo tests[] = {
    {"writes a table the sim loads and runs with", test_table_for_the_sim},
    {"bad input rejected before measuring", test_bad_input},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "profile", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
