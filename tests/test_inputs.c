/* test_inputs.c - issue 18, the input side: whatever a user, a file or the
 * model hands Pagoda, the results stay true and the memory bounded.
 *  - JSON output keeps every field when the text is not valid UTF-8
 *    (generate --output json/jsonl, summary.json's description).
 *  - Configs that would fail later (num_blocks = 1, a token budget below
 *    the model's context, a value config.ini cannot hold) or measure
 *    nothing (a rate swept over a trace) fail `--dry-run` with exit 2;
 *    policy = priority without priorities warns, in summary.json too.
 *  - A rejected request is named as requests.csv shows it.
 *  - A config or trace asking for absurd sizes fails in under a second
 *    with a peak RSS under 100 MB (measured with wait4; outside ASan the
 *    child also runs under an address-space limit, so a regression fails
 *    the test instead of taking the machine down). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "util/json_text.h"

static char MODEL[1024], TOK[1024], TMP[256];

static int suite_init(void) {
    snprintf(MODEL, sizeof MODEL, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    snprintf(TOK, sizeof TOK, "%s", pgd_test_data("models/stories260K/tok512.bin"));
    snprintf(TMP, sizeof TMP, "/tmp/pgd_inputs_XXXXXX");
    return mkdtemp(TMP) ? 0 : 1;
}

static int suite_clean(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMP);
    return system(cmd) == 0 ? 0 : 1;
}

/* ---- running pagoda, measured ---- */

typedef struct measured {
    int rc;         /* exit status, -1 if killed */
    double secs;    /* wall time */
    double cpu;     /* user + system CPU seconds: what a bound is held to,
                     * since a loaded machine stretches the wall time */
    long max_rss_kb;
    char *out, *err;
} measured;

/* Run the pagoda binary with argv (NULL-terminated, argv[0] is not the
 * binary) and capture stdout/stderr, its wall time and peak RSS. Outside
 * ASan the child gets a 2 GB address-space limit. */
static measured run_measured(const char *const *args) {
    measured m = {.rc = -1};
    char o[300], e[300];
    snprintf(o, sizeof o, "%s/stdout", TMP);
    snprintf(e, sizeof e, "%s/stderr", TMP);
    const char *argv[64] = {PGD_PAGODA_BIN};
    int n = 1;
    for (; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return m;
    if (pid == 0) {
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
#ifndef PGD_TEST_ASAN
        struct rlimit rl = {2ul << 30, 2ul << 30};
        setrlimit(RLIMIT_AS, &rl);
#endif
        execv(PGD_PAGODA_BIN, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (wait4(pid, &status, 0, &ru) != pid) return m;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    m.secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    m.cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
            1e-6 * (double)ru.ru_stime.tv_usec;
    m.max_rss_kb = ru.ru_maxrss;
    m.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    m.out = pgd_test_read_file(o, NULL);
    m.err = pgd_test_read_file(e, NULL);
    return m;
}

static void measured_free(measured *m) {
    free(m->out);
    free(m->err);
}

static char *write_file(const char *name, const char *text) {
    char *p = malloc(strlen(TMP) + strlen(name) + 2);
    sprintf(p, "%s/%s", TMP, name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A small stories260K experiment config with extra lines appended to the
 * given sections (NULL: none). */
static char *config(const char *name, const char *experiment, const char *engine, const char *workload,
                    const char *sweep) {
    char text[16384];
    snprintf(text, sizeof text,
             "[experiment]\nseed = 1\n%s\n[model]\npath = %s\ntokenizer = %s\n[engine]\n%s\n"
             "[workload]\nnum_requests = 4\ninput_len = fixed\ninput_mean = 8\noutput_len = fixed\noutput_mean = 4\n%s\n"
             "%s%s\n",
             experiment ? experiment : "", MODEL, TOK, engine ? engine : "", workload ? workload : "",
             sweep ? "[sweep]\n" : "", sweep ? sweep : "");
    return write_file(name, text);
}

/* ---- defect 5: invalid UTF-8 never drops a JSON field ---- */

static void test_json_text(void) {
    struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},
        {"\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong3 \xe0\x80\xaf", "overlong3 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"past max \xf4\x90\x80\x80", "past max \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = pgd_json_text(cases[i].in);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        if (strcmp(json_string_value(j), cases[i].want))
            fprintf(stderr, "\n  case %zu: got '%s'\n", i, json_string_value(j));
        CU_ASSERT_STRING_EQUAL(json_string_value(j), cases[i].want);
        json_decref(j);
    }
    json_t *j = pgd_json_text(NULL);
    CU_ASSERT_STRING_EQUAL(json_string_value(j), "");
    json_decref(j);
    j = pgd_json_textn("a\0b", 3);
    CU_ASSERT_EQUAL(json_string_length(j), 5);
    json_decref(j);
    /* every byte string of random bytes gives a string (never NULL) */
    unsigned char buf[64];
    uint64_t x = 88172645463325252ull;
    int all = 1;
    for (int t = 0; t < 20000; t++) {
        size_t n = (size_t)(x % sizeof buf);
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = (unsigned char)(x >> 24);
        }
        j = pgd_json_textn((const char *)buf, n);
        all &= j != NULL;
        json_decref(j);
    }
    CU_ASSERT(all);
}

static json_t *parse_line(const char *s) {
    json_error_t e;
    json_t *j = json_loadb(s, strcspn(s, "\n"), 0, &e);
    if (!j) fprintf(stderr, "\n  not JSON: %s (%s)\n", s, e.text);
    return j;
}

static void test_generate_json_keeps_fields(void) {
    /* a prompt with a stray byte, and sampled continuations (stories260K's
     * byte tokens often end a text inside a UTF-8 sequence) */
    const char *prompt = "Once upon a \xff time";
    int with_text = 0;
    for (int seed = 1; seed <= 10; seed++) {
        char s[16];
        snprintf(s, sizeof s, "%d", seed);
        const char *args[] = {"generate", "--model", MODEL, "--tokenizer", TOK, "--prompt", prompt,
                              "--temperature", "1.5", "--seed", s, "--max-tokens", "40", "--output", "jsonl", NULL};
        measured m = run_measured(args);
        CU_ASSERT_EQUAL(m.rc, 0);
        json_t *j = m.out ? parse_line(m.out) : NULL;
        CU_ASSERT_PTR_NOT_NULL(j);
        if (j) {
            const char *p = json_string_value(json_object_get(j, "prompt"));
            CU_ASSERT_PTR_NOT_NULL(p);
            CU_ASSERT(p && !strcmp(p, "Once upon a \xef\xbf\xbd time"));
            with_text += json_is_string(json_object_get(j, "text"));
        }
        json_decref(j);
        measured_free(&m);
    }
    CU_ASSERT_EQUAL(with_text, 10);
    const char *args[] = {"generate", "--model", MODEL, "--tokenizer", TOK, "--prompt", prompt, "--prompt", "\xc3",
                          "--max-tokens", "8", "--output", "json", NULL};
    measured m = run_measured(args);
    CU_ASSERT_EQUAL(m.rc, 0);
    json_error_t e;
    json_t *j = m.out ? json_loads(m.out, 0, &e) : NULL;
    CU_ASSERT(json_is_array(j) && json_array_size(j) == 2);
    for (size_t i = 0; j && i < json_array_size(j); i++) {
        CU_ASSERT(json_is_string(json_object_get(json_array_get(j, i), "prompt")));
        CU_ASSERT(json_is_string(json_object_get(json_array_get(j, i), "text")));
    }
    json_decref(j);
    measured_free(&m);
}

static json_t *summary_of(const char *outdir, const char *exp, const char *run) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s/summary.json", outdir, exp, run);
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j) fprintf(stderr, "\n  %s: %s\n", p, e.text);
    return j;
}

/* ---- defects 5, 9: summary.json keeps the description, records warnings ---- */

static void test_summary_description_and_warnings(void) {
    char *cfg = config("desc.ini", "name = desc\ndescription = caf\xe9 (latin-1) \xff", "policy = priority", NULL, NULL);
    char outdir[400];
    snprintf(outdir, sizeof outdir, "%s/out", TMP);
    const char *args[] = {"run", "--quiet", "--output-dir", outdir, cfg, NULL};
    measured m = run_measured(args);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, "WARNING (run run): policy = priority, but [workload] num_priorities"));
    json_t *s = summary_of(outdir, "desc", "run");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *d = json_string_value(json_object_get(s, "description"));
    CU_ASSERT(d && !strcmp(d, "caf\xef\xbf\xbd (latin-1) \xef\xbf\xbd"));
    json_t *w = json_object_get(s, "warnings");
    CU_ASSERT(json_is_array(w) && json_array_size(w) == 1);
    CU_ASSERT(w && strstr(json_string_value(json_array_get(w, 0)), "schedules exactly as fcfs"));
    json_decref(s);
    measured_free(&m);
    free(cfg);
    /* with priorities, no warning and no "warnings" key */
    cfg = config("prio.ini", "name = prio", "policy = priority", "num_priorities = 3", NULL);
    const char *args2[] = {"run", "--quiet", "--output-dir", outdir, cfg, NULL};
    m = run_measured(args2);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_PTR_NULL(m.err ? strstr(m.err, "WARNING") : NULL);
    s = summary_of(outdir, "prio", "run");
    CU_ASSERT_PTR_NULL(json_object_get(s, "warnings"));
    json_decref(s);
    measured_free(&m);
    free(cfg);
}

/* ---- defects 8, 9: configs that fail later, or measure nothing, fail --dry-run ---- */

static void expect_dry_run_error(const char *cfg, const char *needle) {
    const char *args[] = {"run", "--dry-run", cfg, NULL};
    measured m = run_measured(args);
    if (m.rc != 2 || !m.err || !strstr(m.err, needle))
        fprintf(stderr, "\n  %s: rc %d, stderr '%s' lacks '%s'\n", cfg, m.rc, m.err ? m.err : "", needle);
    CU_ASSERT_EQUAL(m.rc, 2);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, needle));
    measured_free(&m);
}

static void test_dry_run_catches(void) {
    char *c = config("nb1.ini", NULL, "num_blocks = 1", NULL, NULL);
    expect_dry_run_error(c, "num_blocks = 1 leaves no usable block");
    free(c);
    /* stories260K's context is 512 (read from the checkpoint's header) */
    c = config("budget.ini", NULL, "max_num_batched_tokens = 256", NULL, NULL);
    expect_dry_run_error(c, "must be >= the model's context (512)");
    free(c);
    c = config("budget_chunked.ini", NULL, "max_num_batched_tokens = 256\nchunked_prefill = on", NULL, NULL);
    const char *ok[] = {"run", "--dry-run", c, NULL};
    measured m = run_measured(ok);
    CU_ASSERT_EQUAL(m.rc, 0);
    measured_free(&m);
    /* num_blocks = 2 is the smallest cache */
    free(c);
    c = config("nb2.ini", NULL, "num_blocks = 2", NULL, NULL);
    const char *ok_nb[] = {"run", "--dry-run", c, NULL};
    m = run_measured(ok_nb);
    CU_ASSERT_EQUAL(m.rc, 0);
    measured_free(&m);
    free(c);
    /* the same for generate: exit 2 before loading the model */
    const char *gen[] = {"generate", "--model", MODEL, "--tokenizer", TOK, "--prompt", "hi", "--max-batched-tokens",
                         "100", NULL};
    m = run_measured(gen);
    CU_ASSERT_EQUAL(m.rc, 2);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, "--max-batched-tokens 100 is below the model's context (512)"));
    measured_free(&m);
    /* a 192-character name: `name=` fits a line, `name = ` in config.ini does not */
    char exp[256] = "name=";
    memset(exp + 5, 'n', 192);
    exp[197] = 0;
    c = config("longname.ini", exp, NULL, NULL, NULL);
    expect_dry_run_error(c, "in the run's config.ini would be 199 characters");
    free(c);
    /* a rate over a trace rescales its timestamps (issue 19), so time_scale
     * beside it would be ignored: an error naming both */
    char wl[1200];
    snprintf(wl, sizeof wl, "source = trace\npath = %s\n", pgd_test_data("traces/vidur_splitwise_code.csv"));
    char cfgtext[4096];
    snprintf(cfgtext, sizeof cfgtext,
             "[experiment]\nname = tr\n[model]\npath = %s\ntokenizer = %s\n[workload]\nnum_requests = 4\n%s"
             "time_scale = 0.5\n[sweep]\nworkload.rate = 1, 2\n", MODEL, TOK, wl);
    c = write_file("trace_rate.ini", cfgtext);
    expect_dry_run_error(c, "set rate (replay the trace at that mean request rate) or time_scale");
    free(c);
    snprintf(cfgtext, sizeof cfgtext,
             "[experiment]\nname = tr\n[model]\npath = %s\ntokenizer = %s\n[workload]\nnum_requests = 4\n%s"
             "arrival = poisson\n[sweep]\nworkload.rate = 1, 2\n", MODEL, TOK, wl);
    c = write_file("trace_poisson.ini", cfgtext);
    const char *ok2[] = {"run", "--dry-run", c, NULL};
    m = run_measured(ok2);
    CU_ASSERT_EQUAL(m.rc, 0);
    measured_free(&m);
    free(c);
}

/* ---- defect 8: the rejection warning names the request as requests.csv does ---- */

static void test_rejection_names_request(void) {
    char *c = config("rej.ini", "name = rej", NULL, NULL, NULL);
    /* top_k past the 512-token vocabulary: the engine rejects every request */
    FILE *f = fopen(c, "a");
    fputs("[sampling]\ntemperature = 1\ntop_k = 1000\n", f);
    fclose(f);
    char outdir[400];
    snprintf(outdir, sizeof outdir, "%s/out", TMP);
    const char *args[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    measured m = run_measured(args);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, "request id -1 in requests.csv (workload request 0, source row 0)"));
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, "request id -4 in requests.csv (workload request 3, source row 3)"));
    char p[1024];
    snprintf(p, sizeof p, "%s/rej/run/requests.csv", outdir);
    char *csv = pgd_test_read_file(p, NULL);
    CU_ASSERT_PTR_NOT_NULL(csv && strstr(csv, "\n-1,") && strstr(csv, "\n-4,"));
    free(csv);
    measured_free(&m);
    free(c);
}

/* ---- defect 8: --kv-memory 16G is sized to what the model can use ---- */

static void test_kv_memory_capped(void) {
    const char *args[] = {"generate", "--model", MODEL, "--tokenizer", TOK, "--prompt", "Once", "--max-tokens", "4",
                          "--kv-memory", "16G", "--max-num-seqs", "8", NULL};
    measured m = run_measured(args);
    printf("\n  --kv-memory 16G: exit %d, %.2f s, peak RSS %ld KB\n", m.rc, m.secs, m.max_rss_kb);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, "allocating 257 blocks"));
#ifdef PGD_TEST_ASAN
    CU_ASSERT(m.max_rss_kb < 400 * 1024); /* ASan's shadow and quarantine */
#else
    CU_ASSERT(m.max_rss_kb < 100 * 1024);
#endif
    measured_free(&m);
}

/* ---- done when: absurd sizes fail in under a second of CPU time, under 100 MB ---- */

static void expect_fast_small_failure(const char *what, const char *const *args, const char *needle) {
    measured m = run_measured(args);
    printf("\n  %-40s exit %d, %.3f s (%.3f CPU s), peak RSS %ld KB", what, m.rc, m.secs, m.cpu, m.max_rss_kb);
    if (!m.err || !strstr(m.err, needle)) fprintf(stderr, "\n  stderr '%s' lacks '%s'\n", m.err ? m.err : "", needle);
    CU_ASSERT(m.rc == 1 || m.rc == 2);
    CU_ASSERT_PTR_NOT_NULL(m.err && strstr(m.err, needle));
#ifdef PGD_TEST_ASAN
    CU_ASSERT(m.cpu < 5.0); /* the sanitizers' start-up and shadow memory */
    CU_ASSERT(m.max_rss_kb < 400 * 1024);
#else
    CU_ASSERT(m.cpu < 1.0);
    CU_ASSERT(m.max_rss_kb < 100 * 1024);
#endif
    measured_free(&m);
}

static void test_absurd_sizes_fail_fast(void) {
    char outdir[400];
    snprintf(outdir, sizeof outdir, "%s/absurd", TMP);
    char *c, text[4096];
    snprintf(text, sizeof text,
             "[experiment]\nname = huge\n[model]\npath = %s\ntokenizer = %s\n[workload]\nnum_requests = 100\n"
             "input_len = fixed\ninput_mean = 1e9\n", MODEL, TOK);
    c = write_file("huge_input.ini", text);
    const char *a1[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    expect_fast_small_failure("input_len = fixed, input_mean = 1e9", a1, "would be clipped to the model's context");
    free(c);

    char *tr = write_file("t1e300.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,5\n1e300,5,5\n");
    snprintf(text, sizeof text,
             "[experiment]\nname = t1e300\n[model]\npath = %s\ntokenizer = %s\n[workload]\nsource = trace\npath = %s\n",
             MODEL, TOK, tr);
    c = write_file("t1e300.ini", text);
    const char *a2[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    expect_fast_small_failure("trace arrived_at = 1e300", a2, "arrived_at '1e300' is out of range");
    free(c);
    free(tr);

    tr = write_file("mc.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2147483648, \"hash_ids\": [1]}\n");
    snprintf(text, sizeof text,
             "[experiment]\nname = mc\n[model]\npath = %s\ntokenizer = %s\n[workload]\nsource = trace\npath = %s\n",
             MODEL, TOK, tr);
    c = write_file("mc.ini", text);
    const char *a3[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    expect_fast_small_failure("mooncake output_length = 2^31", a3, "output_length 2147483648 too large");
    free(c);
    free(tr);

    const char *a4[] = {"generate", "--model", "random:dim=622222222", "--prompt", "hi", NULL};
    expect_fast_small_failure("random:dim=622222222", a4, "dim 622222222 is larger than 65536");
    snprintf(text, sizeof text, "[experiment]\nname = dim\n[model]\npath = random:dim=622222222\n");
    c = write_file("dim.ini", text);
    const char *a5[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    expect_fast_small_failure("[model] path = random:dim=622222222", a5, "622222222");
    free(c);

    /* a trace of 2^30-token prompts runs, clipped to the context, in bounded memory */
    char big[8192] = "num_prefill_tokens,num_decode_tokens\n";
    for (int i = 0; i < 20; i++) strcat(big, "1073741824,1\n");
    tr = write_file("big.csv", big);
    snprintf(text, sizeof text,
             "[experiment]\nname = big\n[model]\npath = %s\ntokenizer = %s\n[workload]\nsource = trace\npath = %s\n",
             MODEL, TOK, tr);
    c = write_file("big.ini", text);
    const char *a6[] = {"run", "--quiet", "--output-dir", outdir, c, NULL};
    measured m = run_measured(a6);
    printf("\n  %-40s exit %d, %.3f s, peak RSS %ld KB\n", "trace of 20 rows of 2^30 tokens", m.rc, m.secs,
           m.max_rss_kb);
    CU_ASSERT_EQUAL(m.rc, 0);
    CU_ASSERT(m.max_rss_kb < 400 * 1024);
    json_t *s = summary_of(outdir, "big", "run");
    CU_ASSERT_PTR_NOT_NULL(s);
    json_decref(s);
    measured_free(&m);
    free(c);
    free(tr);
}

static CU_TestInfo tests[] = {
    {"json text: invalid UTF-8 becomes U+FFFD, never NULL", test_json_text},
    {"generate json/jsonl keep prompt and text", test_generate_json_keeps_fields},
    {"summary.json keeps description, records warnings", test_summary_description_and_warnings},
    {"dry run catches what would fail later", test_dry_run_catches},
    {"rejection warning names the requests.csv id", test_rejection_names_request},
    {"--kv-memory 16G sized to what the model can use", test_kv_memory_capped},
    {"absurd sizes fail fast in little memory", test_absurd_sizes_fail_fast},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "inputs", .pInitFunc = suite_init, .pCleanupFunc = suite_clean, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
