/* test_cli.c - `pagoda generate` on bad input: every case exits non-zero
 * (1 or 2, never a signal) with one clear error line naming the culprit,
 * and good input still works (text and json output); --version's format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kernels.h" /* pgd_cpu_isa: whether bench ran the compute probes */
#include "pagoda/llm.h"
#include "test_util.h"

static char MODEL[1024], TOK[1024], GGUF[1024];

static int suite_init(void) {
    snprintf(MODEL, sizeof MODEL, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    snprintf(TOK, sizeof TOK, "%s", pgd_test_data("models/stories260K/tok512.bin"));
    snprintf(GGUF, sizeof GGUF, "%s", pgd_test_data("models/tiny-random-gguf/llama-2-tiny-random.gguf"));
    return 0;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

/* Expect failure with exit code 1 or 2, exactly one stderr line (unless
 * usage text follows it) containing `needle`, and nothing on stdout. */
static void expect_error(const char *args, const char *needle, int one_line) {
    char *out = NULL, *err = NULL;
    int rc = pgd_test_run_cli(args, &out, &err);
    int ok = (rc == 1 || rc == 2) && err && strstr(err, needle) && (!one_line || count_lines(err) == 1);
    if (!ok) fprintf(stderr, "\n  args: %s\n  rc=%d\n  stderr: %s\n", args, rc, err ? err : "(null)");
    CU_ASSERT(rc == 1 || rc == 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, needle));
    if (one_line) CU_ASSERT_EQUAL(count_lines(err), 1);
    CU_ASSERT(out == NULL || out[0] == '\0');
    free(out);
    free(err);
}

static void test_missing_and_corrupt_model(void) {
    char a[4096];
    snprintf(a, sizeof a, "generate --model /no/such/model.bin --tokenizer '%s' --prompt hi", TOK);
    expect_error(a, "/no/such/model.bin", 1);
    char *trunc = pgd_test_write_temp("\x40\0\0\0\xac\0\0\0\5\0\0\0\x08\0\0\0\4\0\0\0\0\2\0\0\0\2\0\0junk", 32, ".bin");
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt hi", trunc, TOK);
    expect_error(a, trunc, 1);
    remove(trunc);
    free(trunc);
    char *gg = pgd_test_write_temp("GGUF\3\0\0\0", 8, ".gguf");
    snprintf(a, sizeof a, "generate --model '%s' --prompt hi", gg);
    expect_error(a, gg, 1);
    remove(gg);
    free(gg);
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer /no/such/tok.bin --prompt hi", MODEL);
    expect_error(a, "/no/such/tok.bin", 1);
    snprintf(a, sizeof a, "generate --model random:nosuchshape --prompt hi");
    expect_error(a, "nosuchshape", 1);
}

/* pagoda bench --dtypes: bad lists and models rejected; a small run writes
 * one JSON entry per dtype, each with figures and a positive bound (a
 * compute bound too where the compute probes ran: AVX2); a q8 KV cache
 * reads under a third of f32's bytes; q8_0:deq rows measure the dequantizing
 * batched path beside the integer one. */
static void test_bench_dtypes(void) {
    expect_error("bench --model random:stories260K --dtypes f32,q5_1", "--dtypes takes", 1);
    expect_error("bench --model random:stories260K --dtypes q8", "--dtypes takes", 1);      /* KV only */
    expect_error("bench --model random:stories260K --dtypes f32:deq", "--dtypes takes", 1); /* not quantized */
    expect_error("bench --model random:stories260K --dtypes q8_0:x", "--dtypes takes", 1);
    expect_error("bench --model random:stories260K --dtypes f32 --kv-dtypes q8_0", "--kv-dtypes takes", 1);
    expect_error("bench --model random:stories260K,dtype=f16 --dtypes f32", "without a dtype= key", 0);
    expect_error("bench --model random:stories260K --dtypes f32 --tp 2", "drop --tp", 1);
    char *json = pgd_test_write_temp("", 0, ".json");
    char a[1024], *out = NULL;
    snprintf(a, sizeof a,
             "bench --model random:dim=64,layers=2,heads=2,hidden=128,vocab=512,seq=128 "
             "--dtypes f32,q8_0,q4_0,q8_0:deq --kv-dtypes f32,q8 --reps 1 --batches 1,4 --prompt-len 8 "
             "--decode-steps 2 --threads 1 --json '%s'",
             json);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "| q4_0, kv q8 |"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "| q8_0:deq, kv f32 |"));
    json_error_t je;
    json_t *j = json_load_file(json, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    json_t *d = json_object_get(j, "dtypes");
    CU_ASSERT_EQUAL(json_array_size(d), 8);
    int probed = json_real_value(json_object_get(j, "fma_flops_per_s")) > 0;
    CU_ASSERT_EQUAL(probed, !strcmp(pgd_cpu_isa(), "avx2"));
    for (size_t i = 0; i < json_array_size(d); i++) {
        json_t *e = json_array_get(d, i);
        CU_ASSERT(json_real_value(json_object_get(e, "single_decode_tps")) > 0);
        CU_ASSERT(json_real_value(json_object_get(e, "bound_decode_tps")) > 0);
        CU_ASSERT_EQUAL(json_real_value(json_object_get(e, "compute_bound_decode_tps")) > 0, probed);
        CU_ASSERT_EQUAL(json_array_size(json_object_get(e, "decode")), 2);
        CU_ASSERT_EQUAL(json_is_true(json_object_get(e, "batched_dequantized")), i >= 6);
    }
    /* the quantized rows stream fewer bytes than f32; a q8 KV row is head_dim + 4 bytes (32 + 4 here) */
    CU_ASSERT(json_integer_value(json_object_get(json_array_get(d, 2), "weight_bytes_per_step")) <
              json_integer_value(json_object_get(json_array_get(d, 0), "weight_bytes_per_step")) / 3);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(json_array_get(d, 1), "kv_bytes_per_seq_step")) /
                               json_real_value(json_object_get(json_array_get(d, 0), "kv_bytes_per_seq_step")),
                           36.0 / 128, 1e-9);
    json_decref(j);
    remove(json);
    free(json);
    free(out);
}

static double jnum(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }
static double jat(json_t *o, const char *k, int r) {
    return json_number_value(json_array_get(json_object_get(o, k), r));
}

/* One measurement's paired probes (bench --dtypes): per rep, the paired
 * bandwidth is the faster of the probes before and after, the paired bound
 * B x it / (weight bytes + B x KV bytes), the share measured / bound; the
 * median share lies within the reps' shares (their mean at 2 reps), min/max
 * are the arrays' own, and the median measurement is the row's figure.
 * after[r]: the probe after the previous measurement in rep r (0: none),
 * which must be this one's probe before; set to this one's after. */
static void check_paired(json_t *p, int reps, int b, double wbytes, double kv, double figure, double *after) {
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    static const char *arrays[] = {"probe_before_Bps", "probe_after_Bps",  "paired_read_bw_Bps",
                                   "measured_tps",     "paired_bound_tps", "paired_share"};
    for (int k = 0; k < 6; k++) CU_ASSERT_EQUAL(json_array_size(json_object_get(p, arrays[k])), (size_t)reps);
    double lo = 1e300, hi = 0, slo = 1e300, shi = 0, ssum = 0, msum = 0;
    for (int r = 0; r < reps; r++) {
        double pb = jat(p, "probe_before_Bps", r), pa = jat(p, "probe_after_Bps", r),
               bw = jat(p, "paired_read_bw_Bps", r);
        CU_ASSERT(pb > 0 && pa > 0);
        CU_ASSERT_EQUAL(bw, pb > pa ? pb : pa);
        if (after[r] > 0) CU_ASSERT_EQUAL(pb, after[r]); /* neighbours share the probe between them */
        after[r] = pa;
        double bound = jat(p, "paired_bound_tps", r), tps = jat(p, "measured_tps", r), sh = jat(p, "paired_share", r);
        CU_ASSERT_DOUBLE_EQUAL(bound / (b * bw / (wbytes + b * kv)), 1.0, 1e-9);
        CU_ASSERT(tps > 0);
        CU_ASSERT_DOUBLE_EQUAL(sh / (tps / bound), 1.0, 1e-9);
        lo = bw < lo ? bw : lo, hi = bw > hi ? bw : hi, slo = sh < slo ? sh : slo, shi = sh > shi ? sh : shi;
        ssum += sh, msum += tps;
    }
    double med = jnum(p, "median_paired_share");
    CU_ASSERT(med >= slo && med <= shi);
    if (reps == 2) {
        CU_ASSERT_DOUBLE_EQUAL(med / (ssum / 2), 1.0, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(figure / (msum / 2), 1.0, 1e-9);
    }
    CU_ASSERT_EQUAL(jnum(p, "paired_read_bw_min_Bps"), lo);
    CU_ASSERT_EQUAL(jnum(p, "paired_read_bw_max_Bps"), hi);
    CU_ASSERT(jnum(p, "run_read_bound_share") > 0);
}

/* pagoda bench --dtypes: every decode figure is also held to the read
 * probes taken just before and just after it in its rep; the JSON's
 * per-rep probes, bounds and shares agree with one another and with the
 * medians the table prints (a tiny model, 2 reps, one thread; no timing is
 * asserted). */
static void test_bench_paired_probes(void) {
    char *json = pgd_test_write_temp("", 0, ".json");
    char a[1024], *out = NULL;
    snprintf(a, sizeof a,
             "bench --model random:dim=64,layers=2,heads=2,hidden=128,vocab=512,seq=128 --dtypes f32,q8_0 --reps 2 "
             "--batches 1,4 --prompt-len 8 --decode-steps 2 --threads 1 --json '%s'",
             json);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "against the read probes beside each measurement"));
    CU_ASSERT_PTR_NOT_NULL(out &&
                           strstr(out, "| weights | decode b1 % bd | % rd | % pr | probe GB/s | batch 1 % bd |"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\n| q8_0 | "));
    json_error_t je;
    json_t *j = json_load_file(json, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "paired_probe_bytes")), 64 << 20);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "paired_probes")), 2 * 2 * 4); /* rows x reps x (2 + 2) */
    CU_ASSERT(jnum(j, "paired_probe_seconds") > 0 && jnum(j, "paired_probe_seconds") < jnum(j, "reps_seconds"));
    json_t *d = json_object_get(j, "dtypes");
    CU_ASSERT_EQUAL_FATAL(json_array_size(d), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(d, i), *dec = json_object_get(e, "decode");
        double wb = (double)json_integer_value(json_object_get(e, "weight_bytes_per_step")),
               kv = jnum(e, "kv_bytes_per_seq_step"), after[2] = {0, 0};
        check_paired(json_object_get(e, "single_decode_paired_read_bound"), 2, 1, wb, kv, jnum(e, "single_decode_tps"),
                     after);
        CU_ASSERT_EQUAL_FATAL(json_array_size(dec), 2);
        for (size_t k = 0; k < 2; k++) {
            json_t *b = json_array_get(dec, k);
            check_paired(json_object_get(b, "paired_read_bound"), 2,
                         (int)json_integer_value(json_object_get(b, "batch")), wb, kv, jnum(b, "decode_tps"), after);
        }
    }
    json_decref(j);
    remove(json);
    free(json);
    free(out);
}

/* 1 when two jsonl outputs hold the same "tokens" on every line. */
static int same_tokens(const char *a, const char *b) {
    int same = 1, lines = 0;
    while (same && *a && *b) {
        json_error_t e;
        json_t *x = json_loadb(a, strcspn(a, "\n"), 0, &e), *y = json_loadb(b, strcspn(b, "\n"), 0, &e);
        same = x && y && json_equal(json_object_get(x, "tokens"), json_object_get(y, "tokens"));
        json_decref(x), json_decref(y);
        a += strcspn(a, "\n"), b += strcspn(b, "\n");
        a += *a == '\n', b += *b == '\n';
        lines++;
    }
    return same && !*a && !*b && lines > 0;
}

/* A half-precision or q8 KV cache through the engine: tokens identical with
 * and without swap preemption (the swapped blocks are copied whole) and with
 * and without prefix caching (a cached prefix holds the values a recompute
 * would store); the f16 and q8 runs are real runs (their greedy tokens are
 * reported against the f32 ones: they may split where two logits nearly
 * tie). */
static void test_kv_dtype_engine(void) {
    static const char *base = "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' "
                              "--prompt 'Once upon a time, there was' --prompt 'The cat sat on the' --max-tokens 60 "
                              "--output jsonl --kv-dtype %s %s";
    static const char *kts[] = {"f16", "q8"};
    char a[4096], *f32 = NULL;
    snprintf(a, sizeof a, base, MODEL, TOK, "f32", "--num-blocks 64");
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &f32, NULL), 0);
    for (int k = 0; k < 2; k++) {
        char *plain = NULL, *swapped = NULL, *cached = NULL;
        snprintf(a, sizeof a, base, MODEL, TOK, kts[k], "--num-blocks 64");
        CU_ASSERT_EQUAL(pgd_test_run_cli(a, &plain, NULL), 0);
        snprintf(a, sizeof a, base, MODEL, TOK, kts[k], "--num-blocks 12 --block-size 8 --preemption swap");
        CU_ASSERT_EQUAL(pgd_test_run_cli(a, &swapped, NULL), 0);
        char *cerr = NULL;
        snprintf(a, sizeof a, base, MODEL, TOK, kts[k], "--num-blocks 200 --block-size 4 --prefix-caching on");
        CU_ASSERT_EQUAL(pgd_test_run_cli(a, &cached, &cerr), 0);
        CU_ASSERT_PTR_NOT_NULL(cerr && strstr(cerr, "prefix hits 1/")); /* the shared prefix's block was reused */
        free(cerr);
        CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
        CU_ASSERT_PTR_NOT_NULL_FATAL(swapped);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cached);
        CU_ASSERT(same_tokens(plain, swapped));
        CU_ASSERT(same_tokens(plain, cached));
        CU_ASSERT_PTR_NOT_NULL(strstr(swapped, "\"num_preemptions\":1")); /* the swap really happened */
        fprintf(stderr, "[%s KV tokens %s the f32 ones] ", kts[k],
                f32 && same_tokens(plain, f32) ? "equal" : "differ from");
        free(plain), free(swapped), free(cached);
    }
    expect_error("generate --model random:stories260K --prompt hi --kv-dtype q8_0", "--kv-dtype must be", 1);
    free(f32);
}

static void test_prompt_too_long(void) {
    /* stories260K has a 512-token context; 600 words are > 512 tokens */
    size_t n = 600 * 6 + 4096;
    char *a = malloc(n);
    int k = snprintf(a, n, "generate --model '%s' --tokenizer '%s' --prompt '", MODEL, TOK);
    for (int i = 0; i < 600; i++) k += snprintf(a + k, n - (size_t)k, "dog. ");
    snprintf(a + k, n - (size_t)k, "'");
    expect_error(a, "context", 1);
    free(a);
}

static void test_bad_sampling_params(void) {
    static const struct { const char *opt, *needle; } cases[] = {
        {"--temperature -1", "temperature"}, {"--temperature nan", "temperature"},
        {"--temperature abc", "temperature"}, {"--top-p 1.5", "top"},
        {"--top-p -0.1", "top"}, {"--top-k -3", "top"},
        {"--top-k 100000", "top"}, {"--max-tokens 0", "max-tokens"},
        {"--max-tokens 12x", "max-tokens"}, {"--seed -5", "seed"},
        {"--output xml", "output"}, {"--threads -2", "threads"},
        {"--block-size 0", "block-size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[4096];
        snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt hi %s", MODEL, TOK, cases[i].opt);
        expect_error(a, cases[i].needle, 1);
    }
}

static void test_missing_arguments(void) {
    char a[4096];
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s'", MODEL, TOK);
    expect_error(a, "--prompt", 0);
    expect_error("generate --prompt hi", "--model", 0);
    expect_error("frobnicate", "unknown command", 0);
    snprintf(a, sizeof a, "generate --model random:stories260K --prompt hi");
    expect_error(a, "tokenizer", 1);
}

static void test_good_runs(void) {
    char a[4096], *out = NULL, *err = NULL;
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 20",
             MODEL, TOK);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "Once upon a time, there was a little girl named Lily"));
    free(out);
    free(err);
    /* sampled, seeded: same seed same text */
    char *o1 = NULL, *o2 = NULL;
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt 'Once' --max-tokens 30 "
             "--temperature 0.9 --top-p 0.9 --top-k 40 --seed 7 --output json", MODEL, TOK);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &o1, NULL), 0);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &o2, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o2);
    CU_ASSERT_STRING_EQUAL(o1, o2);
    CU_ASSERT_PTR_NOT_NULL(strstr(o1, "\"tokens\""));
    free(o1);
    free(o2);
    /* the GGUF carries its own tokenizer */
    snprintf(a, sizeof a, "generate --model '%s' --prompt 'Hello world' --max-tokens 3 --output json", GGUF);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"prompt_tokens\":[1,15043,3186]"));
    free(out);
    free(err);
}

static void test_bad_engine_options(void) {
    static const struct { const char *opt, *needle; } cases[] = {
        {"--policy lifo", "lifo"}, {"--kv-manager buddy", "buddy"},
        {"--preemption drop", "drop"}, {"--chunked-prefill maybe", "chunked-prefill"},
        {"--prefix-caching 2", "prefix-caching"}, {"--n 0", "--n"},
        {"--beam-width -1", "beam-width"}, {"--num-blocks 1", "num-blocks"},
        {"--kv-memory 12X", "kv-memory"}, {"--max-batched-tokens 0", "max-batched-tokens"},
        {"--max-num-seqs x", "max-num-seqs"}, {"--swap-blocks -4", "swap-blocks"},
        {"--output yaml", "output"}, {"--n 2 --beam-width 2", "beam-width"},
        {"--prompts-file /no/such/prompts.txt", "/no/such/prompts.txt"},
        {"--max-batched-tokens 64", "64"}, /* < context with chunked prefill off */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[4096];
        snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt hi %s", MODEL, TOK, cases[i].opt);
        expect_error(a, cases[i].needle, 1);
    }
}

/* Several prompts run together: jsonl gives one object per prompt in input
 * order, each identical to the prompt run alone; a prompts file works too. */
static void test_several_prompts(void) {
    static const char *prompts[] = {"Once upon a time", "The cat sat", "Lily and Ben"};
    char a[8192], *single[3] = {0}, *out = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt '%s' --max-tokens 40 --output json",
                 MODEL, TOK, prompts[i]);
        CU_ASSERT_EQUAL(pgd_test_run_cli(a, &single[i], NULL), 0);
    }
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompt '%s' --prompt '%s' --prompt '%s' "
             "--max-tokens 40 --output jsonl --num-blocks 10 --block-size 8 --preemption swap --policy sjf",
             MODEL, TOK, prompts[0], prompts[1], prompts[2]);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    char *line = out;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
        *nl = 0;
        /* same object except the preemption count */
        char *p1 = strstr(line, ",\"num_preemptions\""), *p2 = single[i] ? strstr(single[i], ",\"num_preemptions\"") : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(p1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p2);
        *p1 = *p2 = 0;
        CU_ASSERT_STRING_EQUAL(line, single[i]);
        line = nl + 1;
    }
    free(out);
    /* prompts file, n = 2 sampled, chunked prefill, prefix caching */
    char *pf = pgd_test_write_temp("Once upon a time\n\nThe cat sat\n", 30, ".txt");
    snprintf(a, sizeof a, "generate --model '%s' --tokenizer '%s' --prompts-file '%s' --max-tokens 10 --n 2 "
             "--temperature 0.8 --output jsonl --chunked-prefill on --max-batched-tokens 16 --prefix-caching on",
             MODEL, TOK, pf);
    CU_ASSERT_EQUAL(pgd_test_run_cli(a, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"sequences\""));
    int lines = 0;
    for (char *c = out; c && *c; c++) lines += *c == '\n';
    CU_ASSERT_EQUAL(lines, 2);
    free(out);
    remove(pf);
    free(pf);
    for (int i = 0; i < 3; i++) free(single[i]);
}

/* `pagoda --version`: four lines, the commit 12 hex digits ("-dirty" when
 * tracked files had changed) or "unknown" outside a git checkout; the
 * library's pgd_version_string() names the same commit. */
static void test_version_format(void) {
    char *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_test_run_cli("--version", &out, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(count_lines(out), 4);
    static const char head[] = "pagoda " PAGODA_VERSION "\ncommit ";
    CU_ASSERT_FATAL(!strncmp(out, head, strlen(head)));
    const char *c = out + strlen(head), *eol = strchr(c, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(eol);
    char commit[64];
    snprintf(commit, sizeof commit, "%.*s", (int)(eol - c), c);
    size_t hex = strspn(commit, "0123456789abcdef");
    int ok = !strcmp(commit, "unknown") || (hex == 12 && (!commit[12] || !strcmp(commit + 12, "-dirty")));
    if (!ok) fprintf(stderr, "\n  commit line: '%s'\n", commit);
    CU_ASSERT(ok);
    CU_ASSERT_PTR_NOT_NULL(strstr(eol, "\nbuild "));
    CU_ASSERT_PTR_NOT_NULL(strstr(eol, "\noptions cuda="));
    char lib[80];
    snprintf(lib, sizeof lib, "(commit %s, ", commit);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_version_string(), lib));
    free(out);
    free(err);
}

static CU_TestInfo tests[] = {
    {"version_format", test_version_format},
    {"bad_engine_options", test_bad_engine_options},
    {"several_prompts", test_several_prompts},
    {"missing_and_corrupt_model", test_missing_and_corrupt_model},
    {"prompt_longer_than_context", test_prompt_too_long},
    {"bad_sampling_params", test_bad_sampling_params},
    {"missing_arguments", test_missing_arguments},
    {"good_runs", test_good_runs},
    {"bench_dtypes", test_bench_dtypes},
    {"bench_paired_probes", test_bench_paired_probes},
    {"kv_dtype_engine", test_kv_dtype_engine},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "cli", .pInitFunc = suite_init, .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
