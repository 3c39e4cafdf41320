/* test_results.c - results that are whole or absent (issue 18, defects 2,
 * 3, 8 and 9), through the real `pagoda run`, `compare` and `plot`:
 *  - a sweep interrupted by SIGINT, or killed by SIGKILL while re-running
 *    into an existing directory, leaves only whole runs; compare against
 *    the full sweep exits 1 naming the runs that are missing, and the old
 *    sweep's runs never pass for the new one (they are in .previous/);
 *  - a full disk (RLIMIT_FSIZE: EFBIG, or the SIGXFSZ that kills) leaves no
 *    half-written run directory; compare and plot name the interrupted run;
 *    the next `pagoda run` cleans up;
 *  - --only moves the re-run run's old directory and runs.csv row aside
 *    before computing it;
 *  - the experiment directory is locked: a second `pagoda run` fails at
 *    once naming the holder's pid;
 *  - a read-only results directory fails before any run is computed;
 *  - a run whose requests all failed, or more than 10% of them, is written
 *    whole and exits 1; the failures (counts, reasons) are in summary.json
 *    and each failed request's reason in requests.csv's error column. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagoda/results.h"
#include "pagoda/runner.h"
#include "test_util.h"

static char root[] = "/tmp/pgd_results_XXXXXX";

/* 3 runs of ~0.4 s each (Release; longer under ASan): room to interrupt */
static const char *SWEEP =
    "[experiment]\nname = sw\n[model]\npath = random:stories260K\nthreads = 1\n"
    "[engine]\nblock_size = 16\nnum_blocks = 64\n"
    "[workload]\nnum_requests = 150\nrate = inf\ninput_len = uniform\ninput_min = 8\ninput_max = 64\n"
    "output_len = uniform\noutput_min = 8\noutput_max = 64\n"
    "[sweep]\nexperiment.seed = 1, 2, 3\n"
    "[compare]\ncounts = 0\nmetrics = engine.steps, engine.tokens_computed, completed, total_output_tokens,\n"
    "    workload.fingerprint, token_fingerprint\n";

/* a KV cache of 8 usable blocks of 16 tokens: prompts above 128 tokens cannot run */
static const char *FAILING =
    "[experiment]\nname = %s\n[model]\npath = random:stories260K\nthreads = 1\n"
    "[engine]\nblock_size = 16\nnum_blocks = 9\n"
    "[workload]\nnum_requests = %d\nrate = inf\ninput_len = uniform\ninput_min = %d\ninput_max = %d\n"
    "output_len = fixed\noutput_mean = 4\n";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/%s", root, rel); }

static int exists(const char *rel) {
    char p[1024];
    path(p, sizeof p, rel);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void write_text(const char *rel, const char *text) {
    char p[1024];
    path(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    PGD_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static void sh(const char *fmt, const char *arg) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, arg);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

typedef struct child {
    pid_t pid;
    char out[1024], err[1024];
} child;

/* Start `pagoda ARGS...` (stdout/stderr to files under root). fsize > 0 caps
 * the size of files it writes (RLIMIT_FSIZE, as a full disk would), with
 * SIGXFSZ ignored (writes fail with EFBIG) or not (the signal kills it). */
static void spawn(child *c, long fsize, int ignore_xfsz, const char *const *args) {
    static int seq;
    snprintf(c->out, sizeof c->out, "%s/out-%d.txt", root, seq);
    snprintf(c->err, sizeof c->err, "%s/err-%d.txt", root, seq++);
    c->pid = fork();
    PGD_ASSERT(c->pid >= 0);
    if (c->pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(126);
        if (fsize > 0) {
            struct rlimit rl = {.rlim_cur = (rlim_t)fsize, .rlim_max = (rlim_t)fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
            signal(SIGXFSZ, ignore_xfsz ? SIG_IGN : SIG_DFL);
        }
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        const char *argv[32] = {PGD_PAGODA_BIN};
        int n = 1;
        for (; args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(PGD_PAGODA_BIN, (char *const *)argv);
        _exit(127);
    }
}

/* Wait for the child: its raw wait status. */
static int reap(child *c) {
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static char *err_text(const child *c) {
    char *t = pgd_test_read_file(c->err, NULL);
    return t ? t : calloc(1, 1);
}

/* Poll until every `rel` exists (up to 120 s). */
static int wait_for(const char *rel1, const char *rel2) {
    double t0 = now();
    while (now() - t0 < 120) {
        if (exists(rel1) && (!rel2 || exists(rel2))) return 1;
        usleep(5000);
    }
    return 0;
}

/* `pagoda run --quiet --output-dir ROOT/DIR ROOT/INI` to completion: exit status. */
static int run_sync(const char *dir, const char *ini, char **err) {
    char od[1024], ip[1024];
    path(od, sizeof od, dir);
    path(ip, sizeof ip, ini);
    const char *args[] = {"run", "--quiet", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 0, 0, args);
    int st = reap(&c);
    if (err) *err = err_text(&c);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `pagoda compare ROOT/A ROOT/B`: exit status; stderr must name `needle`. */
static int compare(const char *a, const char *b, const char *needle) {
    char args[2400], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "compare '%s/%s' '%s/%s'", root, a, root, b);
    int rc = pgd_test_run_cli(args, &out, &err);
    if (needle && !(err && strstr(err, needle))) {
        fprintf(stderr, "\ncompare %s %s (rc %d): stderr lacks '%s':\n%s\n", a, b, rc, needle, err ? err : "");
        CU_FAIL("compare does not name what is wrong");
    }
    if (!needle && rc != 0) fprintf(stderr, "\ncompare %s %s (rc %d):\n%s\n", a, b, rc, err ? err : "");
    free(out);
    free(err);
    return rc;
}

/* Every visible run directory of ROOT/EXP is whole (every file matches its
 * marker) and listed in runs.csv with its own sweep id; when `partial_ok`
 * is 0 (not killed) no .partial is left and every run is listed. Returns
 * how many runs there are. */
static int whole_runs(const char *exp, int partial_ok) {
    static const char *const runs[] = {"seed-1", "seed-2", "seed-3"};
    char d[1024], sid[80], rsid[80], rel[512];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "%s/%s", exp, runs[i]);
        path(d, sizeof d, rel);
        if (exists(rel)) {
            n++;
            if (pgd_results_check_run(d, NULL, sid, sizeof sid) != PGD_OK) {
                fprintf(stderr, "\n%s\n", pgd_last_error());
                CU_FAIL("a run directory is not whole");
                continue;
            }
            /* listed in runs.csv with its sweep id (a kill between the rename of the run
               directory and the rewrite of runs.csv leaves it unlisted, which compare calls
               stale, or leaves no runs.csv yet when it was the sweep's first run) */
            path(d, sizeof d, exp);
            int listed = pgd_results_runs_csv_sweep(d, runs[i], rsid, sizeof rsid);
            CU_ASSERT_TRUE(listed == 1 || (partial_ok && listed <= 0));
            if (listed == 1) CU_ASSERT_STRING_EQUAL(rsid, sid);
        }
        snprintf(rel, sizeof rel, "%s/.%s.partial", exp, runs[i]);
        if (!partial_ok) CU_ASSERT_FALSE(exists(rel));
    }
    return n;
}

static int suite_init(void) {
    if (!mkdtemp(root)) return 1;
    chmod(root, 0755); /* the read-only test runs pagoda as nobody */
    write_text("sweep.ini", SWEEP);
    char buf[1024];
    snprintf(buf, sizeof buf, FAILING, "allfail", 10, 200, 200);
    write_text("allfail.ini", buf);
    snprintf(buf, sizeof buf, FAILING, "manyfail", 50, 8, 180); /* 15 of 50 fail */
    write_text("manyfail.ini", buf);
    snprintf(buf, sizeof buf, FAILING, "fewfail", 50, 8, 135); /* 3 of 50 fail */
    write_text("fewfail.ini", buf);
    /* the full sweep every interrupted one is compared with */
    return run_sync("base", "sweep.ini", NULL) != 0;
}

static int suite_clean(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", root, root);
    return system(cmd) != 0;
}

/* SIGINT mid-sweep: the run in progress is not written, the runs before it
 * are whole, the process dies of SIGINT; compare names the missing runs. */
static void test_sigint_mid_sweep(void) {
    char od[1024], ip[1024];
    path(od, sizeof od, "int");
    path(ip, sizeof ip, "sweep.ini");
    const char *args[] = {"run", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 0, 0, args);
    CU_ASSERT_TRUE(wait_for("int/sw/seed-1/complete.json", NULL));
    kill(c.pid, SIGINT);
    int st = reap(&c);
    CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    char *err = err_text(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "interrupted by signal"));
    free(err);
    int n = whole_runs("int/sw", 0);
    CU_ASSERT_TRUE(n >= 1 && n < 3);
    CU_ASSERT_FALSE(exists("int/sw/seed-3"));
    CU_ASSERT_EQUAL(compare("base/sw", "int/sw", "run 'seed-3' of the baseline is missing"), 1);
}

/* SIGINT while the runner waits for a far arrival: it stops at once. */
static void test_sigint_while_waiting(void) {
    write_text("slow.ini", "[experiment]\nname = slow\n[model]\npath = random:stories260K\nthreads = 1\n"
                           "[workload]\nnum_requests = 3\nrate = 0.002\narrival = poisson\n");
    char od[1024], ip[1024];
    path(od, sizeof od, "slow");
    path(ip, sizeof ip, "slow.ini");
    const char *args[] = {"run", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 0, 0, args);
    CU_ASSERT_TRUE(wait_for("slow/slow/.lock", NULL));
    usleep(500000);
    double t0 = now();
    kill(c.pid, SIGINT);
    int st = reap(&c);
    CU_ASSERT_TRUE(now() - t0 < 5);
    CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    CU_ASSERT_FALSE(exists("slow/slow/run"));
}

/* SIGKILL while re-running into a directory holding a whole older sweep:
 * the older runs are in .previous/, never read as current; compare exits 1
 * naming what the new sweep did not write; the next run cleans up. */
static void test_sigkill_rerun(void) {
    CU_ASSERT_EQUAL(run_sync("kill", "sweep.ini", NULL), 0);
    CU_ASSERT_EQUAL(compare("base/sw", "kill/sw", NULL), 0);
    char od[1024], ip[1024];
    path(od, sizeof od, "kill");
    path(ip, sizeof ip, "sweep.ini");
    const char *args[] = {"run", "--quiet", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 0, 0, args);
    /* the new seed-1 is written once the old one has gone to .previous */
    CU_ASSERT_TRUE(wait_for("kill/sw/.previous/seed-1/complete.json", "kill/sw/seed-1/complete.json"));
    kill(c.pid, SIGKILL);
    int st = reap(&c);
    CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CU_ASSERT_TRUE(whole_runs("kill/sw", 1) < 3);
    CU_ASSERT_TRUE(exists("kill/sw/.previous/seed-3/complete.json"));
    CU_ASSERT_FALSE(exists("kill/sw/seed-3"));
    CU_ASSERT_EQUAL(compare("base/sw", "kill/sw", "seed-3"), 1);
    /* the next sweep removes what the killed one left and writes every run */
    CU_ASSERT_EQUAL(run_sync("kill", "sweep.ini", NULL), 0);
    CU_ASSERT_EQUAL(whole_runs("kill/sw", 0), 3);
    CU_ASSERT_EQUAL(compare("base/sw", "kill/sw", NULL), 0);
    /* --only killed before its run is written: the old run is moved aside, not kept as current */
    const char *only[] = {"run", "--quiet", "--only", "seed-2", "--output-dir", od, ip, NULL};
    spawn(&c, 0, 0, only);
    CU_ASSERT_TRUE(wait_for("kill/sw/.previous/seed-2/complete.json", NULL));
    kill(c.pid, SIGKILL);
    reap(&c);
    CU_ASSERT_EQUAL(whole_runs("kill/sw", 1), 2);
    CU_ASSERT_EQUAL(compare("base/sw", "kill/sw", "seed-2"), 1);
}

/* A full disk: the write of requests.csv fails (EFBIG). The runs fail naming
 * the file, none is left half-written; with SIGXFSZ the process dies mid-write
 * and leaves only a .partial directory, which compare and plot name. */
static void test_full_disk(void) {
    char od[1024], ip[1024];
    path(od, sizeof od, "full");
    path(ip, sizeof ip, "sweep.ini");
    const char *args[] = {"run", "--quiet", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 10000, 1, args); /* summary.json (~3 kB) fits, requests.csv (~20 kB) does not */
    int st = reap(&c);
    CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *err = err_text(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "requests.csv"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not written"));
    free(err);
    CU_ASSERT_EQUAL(whole_runs("full/sw", 0), 0);
    CU_ASSERT_EQUAL(compare("base/sw", "full/sw", "run 'seed-1' of the baseline is missing"), 1);
    /* killed by SIGXFSZ in the middle of writing */
    spawn(&c, 10000, 0, args);
    st = reap(&c);
    CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ);
    CU_ASSERT_TRUE(exists("full/sw/.seed-1.partial"));
    CU_ASSERT_FALSE(exists("full/sw/seed-1"));
    CU_ASSERT_EQUAL(compare("base/sw", "full/sw", "interrupted while being written"), 1);
    /* plot refuses it by name (runs.csv from a hand-made row: the sweep never wrote one) */
    write_text("full/sw/runs.csv", "run,seed,completed,sweep_id\nseed-1,1,150,x\n");
    char args2[1200], *out = NULL, *perr = NULL;
    snprintf(args2, sizeof args2, "plot '%s/full/sw'", root);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args2, &out, &perr), 1);
    CU_ASSERT_PTR_NOT_NULL(perr && strstr(perr, "seed-1"));
    free(out);
    free(perr);
    /* the next run cleans the leftovers up */
    CU_ASSERT_EQUAL(run_sync("full", "sweep.ini", NULL), 0);
    CU_ASSERT_FALSE(exists("full/sw/.seed-1.partial"));
    CU_ASSERT_EQUAL(whole_runs("full/sw", 0), 3);
    CU_ASSERT_EQUAL(compare("base/sw", "full/sw", NULL), 0);
    /* plot draws complete runs, refuses a cut timeline.csv by name */
    snprintf(args2, sizeof args2, "plot '%s/full/sw'", root);
    int prc = pgd_test_run_cli(args2, &out, &perr);
    CU_ASSERT_TRUE(prc == 0 || (perr && strstr(perr, "gnuplot"))); /* gnuplot may be absent */
    free(out);
    free(perr);
    sh("truncate -s 100 '%s/full/sw/seed-2/timeline.csv'", root);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args2, &out, &perr), 1);
    CU_ASSERT_PTR_NOT_NULL(perr && strstr(perr, "seed-2") && strstr(perr, "timeline.csv"));
    free(out);
    free(perr);
}

/* Two `pagoda run` into one directory: the second fails at once naming the first. */
static void test_lock(void) {
    char od[1024], ip[1024], exp[1100];
    path(od, sizeof od, "lock");
    path(ip, sizeof ip, "sweep.ini");
    snprintf(exp, sizeof exp, "%s/sw", od);
    int fd;
    CU_ASSERT_EQUAL_FATAL(pgd_results_lock(exp, &fd), PGD_OK);
    char *err = NULL, mine[64];
    double t0 = now();
    CU_ASSERT_EQUAL(run_sync("lock", "sweep.ini", &err), 1);
    CU_ASSERT_TRUE(now() - t0 < 10);
    snprintf(mine, sizeof mine, "pid %ld ", (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "in use by another `pagoda run`"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, mine));
    free(err);
    CU_ASSERT_FALSE(exists("lock/sw/seed-1"));
    pgd_results_unlock(fd);
    /* a real second process */
    const char *args[] = {"run", "--quiet", "--output-dir", od, ip, NULL};
    child c;
    spawn(&c, 0, 0, args);
    char lockfile[1200], want[64];
    snprintf(lockfile, sizeof lockfile, "%s/.lock", exp);
    snprintf(want, sizeof want, "pid %ld ", (long)c.pid);
    char *held = NULL;
    for (double t = now(); now() - t < 60; usleep(2000)) {
        free(held);
        held = pgd_test_read_file(lockfile, NULL);
        if (held && strstr(held, want)) break;
    }
    CU_ASSERT_EQUAL(run_sync("lock", "sweep.ini", &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    free(err);
    free(held);
    CU_ASSERT_TRUE(WIFEXITED(reap(&c)));
    CU_ASSERT_EQUAL(whole_runs("lock/sw", 0), 3);
}

/* A read-only results directory fails before any run is computed. */
static void test_read_only(void) {
    if (geteuid() == 0 && system("command -v setpriv >/dev/null 2>&1") != 0) {
        fprintf(stderr, "\n  skipped: root writes anywhere and setpriv (util-linux) is missing\n");
        return;
    }
    CU_ASSERT_EQUAL(run_sync("ro", "sweep.ini", NULL), 0);
    sh("chmod -R a-w '%s/ro/sw'", root);
    char cmd[2400], errp[1024];
    path(errp, sizeof errp, "ro-err.txt");
    /* root writes anywhere: run as nobody then */
    const char *as = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    snprintf(cmd, sizeof cmd, "%s%s run --output-dir '%s/ro' '%s/sweep.ini' >/dev/null 2>'%s'", as, PGD_PAGODA_BIN, root,
             root, errp);
    int st = system(cmd);
    sh("chmod -R u+w '%s/ro'", root);
    CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *err = pgd_test_read_file(errp, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot write to the results directory"));
    CU_ASSERT_PTR_NULL(strstr(err, "requests")); /* no progress: nothing was computed */
    free(err);
    CU_ASSERT_EQUAL(whole_runs("ro/sw", 0), 3); /* the old results are untouched */
}

static json_t *failures(const char *exp) {
    char p[1024];
    snprintf(p, sizeof p, "%s/fail/%s/run/summary.json", root, exp);
    json_error_t je;
    json_t *s = json_load_file(p, 0, &je);
    json_t *f = json_incref(json_object_get(s, "failures"));
    json_decref(s);
    return f;
}

/* Failed requests: counted with their reasons; all or > 10% failing is a
 * failed run (exit 1), written whole; a few failing is a warning (exit 0). */
static void test_failed_requests(void) {
    char *err = NULL, p[1024];
    CU_ASSERT_EQUAL(run_sync("fail", "allfail.ini", &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "FAILED: run run: all 10 of 10 requests failed"));
    free(err);
    path(p, sizeof p, "fail/allfail/run");
    CU_ASSERT_EQUAL(pgd_results_check_run(p, NULL, NULL, 0), PGD_OK);
    json_t *f = failures("allfail");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "failed")), 10);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "rejected")) +
                        0 * json_integer_value(json_object_get(f, "aborted")), 10);
    json_t *r0 = json_array_get(json_object_get(f, "reasons"), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r0, "count")), 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(r0, "reason")), "KV blocks"));
    json_decref(f);
    path(p, sizeof p, "fail/allfail/run/requests.csv");
    char *csv = pgd_test_read_file(p, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(csv, ",finish_reason,error,session,turn,cached_tokens,prefix_hit_rate,client,slo_class\n"));
    int rows = 0;
    for (char *l = strstr(csv, ",error,\""); l; l = strstr(l + 1, ",error,\"")) rows += strstr(l, "KV blocks") != NULL;
    CU_ASSERT_EQUAL(rows, 10);
    free(csv);

    CU_ASSERT_EQUAL(run_sync("fail", "manyfail.ini", &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "FAILED: run run: 15 of 50 requests failed"));
    free(err);
    f = failures("manyfail");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "failed")), 15);
    CU_ASSERT_TRUE(json_array_size(json_object_get(f, "reasons")) >= 1);
    json_decref(f);

    CU_ASSERT_EQUAL(run_sync("fail", "fewfail.ini", &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "WARNING: run run: 3 of 50 requests failed"));
    free(err);
    f = failures("fewfail");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "failed")), 3);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(f, "failed_share")), 0.06, 1e-12);
    json_decref(f);
}

static CU_TestInfo tests[] = {
    {"SIGINT mid-sweep leaves only whole runs; compare names the missing", test_sigint_mid_sweep},
    {"SIGINT while waiting for an arrival stops at once", test_sigint_while_waiting},
    {"SIGKILL while re-running: no stale run passes as current", test_sigkill_rerun},
    {"a full disk (EFBIG, SIGXFSZ) leaves no half-written run", test_full_disk},
    {"one pagoda run per results directory", test_lock},
    {"a read-only results directory fails before computing", test_read_only},
    {"failed requests: counted, explained, a failed run above 10%", test_failed_requests},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "results", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
