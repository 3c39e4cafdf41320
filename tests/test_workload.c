/* test_workload.c - workloads: determinism, length and arrival
 * statistics, trace replay of the shared trace files, dataset prompts
 * tokenized with the Llama-2 tokenizer, and named errors. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagoda/workload.h"
#include "test_util.h"

static pgd_workload *make(const pgd_workload_config *c) {
    pgd_workload *w = NULL;
    pgd_status st = pgd_workload_create(c, &w);
    if (st != PGD_OK) fprintf(stderr, "workload: %s\n", pgd_last_error());
    CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
    return w;
}

static void expect_error(const pgd_workload_config *c, pgd_status want, const char *needle) {
    pgd_workload *w = NULL;
    pgd_status st = pgd_workload_create(c, &w);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_PTR_NULL(w);
    const char *msg = pgd_last_error();
    if (!strstr(msg, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", msg, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    pgd_workload_destroy(w);
}

static void test_determinism(void) {
    pgd_workload_config c = {.num_requests = 300, .seed = 7, .vocab_size = 512,
                             .arrival = {.kind = PGD_ARRIVAL_POISSON, .rate = 4}};
    pgd_workload *a = make(&c), *b = make(&c);
    c.seed = 8;
    pgd_workload *d = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_count(a), 300);
    CU_ASSERT_EQUAL(pgd_workload_fingerprint(a), pgd_workload_fingerprint(b));
    CU_ASSERT_NOT_EQUAL(pgd_workload_fingerprint(a), pgd_workload_fingerprint(d));
    int tok_ok = 1, sorted = 1;
    for (int i = 0; i < 300; i++) {
        const pgd_workload_request *r = pgd_workload_get(a, i), *q = pgd_workload_get(b, i);
        CU_ASSERT_EQUAL(r->n_prompt, q->n_prompt);
        CU_ASSERT_EQUAL(memcmp(r->prompt, q->prompt, (size_t)r->n_prompt * 4), 0);
        for (int j = 0; j < r->n_prompt; j++) tok_ok &= r->prompt[j] >= 3 && r->prompt[j] < 512;
        if (i) sorted &= r->arrival >= pgd_workload_get(a, i - 1)->arrival;
    }
    CU_ASSERT(tok_ok);
    CU_ASSERT(sorted);
    CU_ASSERT_EQUAL(pgd_workload_get(a, 0)->arrival, 0.0);
    CU_ASSERT_PTR_NULL(pgd_workload_get(a, 300));
    /* same seed, other rate: the same prompts (independent streams) */
    c.seed = 7;
    c.arrival.rate = 16;
    pgd_workload *e = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(e, 5)->n_prompt, pgd_workload_get(a, 5)->n_prompt);
    CU_ASSERT_EQUAL(memcmp(pgd_workload_get(e, 5)->prompt, pgd_workload_get(a, 5)->prompt, 16), 0);
    pgd_request_params p = {0};
    pgd_workload_fill_params(a, 3, 10.0, &p);
    CU_ASSERT_EQUAL(p.n_prompt, pgd_workload_get(a, 3)->n_prompt);
    CU_ASSERT_EQUAL(p.max_tokens, pgd_workload_get(a, 3)->output_len);
    CU_ASSERT_EQUAL(p.true_output_len, p.max_tokens);
    CU_ASSERT_EQUAL(p.ignore_eos, 1);
    CU_ASSERT_DOUBLE_EQUAL(p.arrival_time, 10.0 + pgd_workload_get(a, 3)->arrival, 1e-12);
    pgd_workload_destroy(a);
    pgd_workload_destroy(b);
    pgd_workload_destroy(d);
    pgd_workload_destroy(e);
}

static void check_means(pgd_len_kind k, double in, double out) {
    pgd_workload_config c = {.num_requests = 20000, .seed = 1, .input_len = {.kind = k},
                             .output_len = {.kind = k}};
    pgd_workload *w = make(&c);
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    printf("\n  %s: mean input %.2f (target %.2f), mean output %.2f (target %.2f), "
           "input [%d, %d], output [%d, %d]\n",
           pgd_len_kind_name(k), s.mean_input, in, s.mean_output, out, s.min_input, s.max_input,
           s.min_output, s.max_output);
    CU_ASSERT(fabs(s.mean_input / in - 1) < 0.03);
    CU_ASSERT(fabs(s.mean_output / out - 1) < 0.03);
    CU_ASSERT(s.min_input >= 1 && s.min_output >= 1);
    pgd_workload_destroy(w);
}

static void test_named_means(void) {
    check_means(PGD_LEN_SHAREGPT, 161.31, 337.99);
    check_means(PGD_LEN_ALPACA, 19.31, 58.45);
    pgd_workload_config c = {.num_requests = 5};
    pgd_workload *w = make(&c); /* zeroed: sharegpt lengths, all at once */
    CU_ASSERT_EQUAL(pgd_workload_count(w), 5);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 4)->arrival, 0.0);
    pgd_workload_destroy(w);
}

static void test_other_lengths(void) {
    pgd_workload_config c = {.num_requests = 4000, .seed = 3,
                             .input_len = {.kind = PGD_LEN_UNIFORM, .min = 10, .max = 20},
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 7}};
    pgd_workload *w = make(&c);
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    CU_ASSERT_EQUAL(s.min_input, 10);
    CU_ASSERT_EQUAL(s.max_input, 20);
    CU_ASSERT(fabs(s.mean_input - 15) < 0.3);
    CU_ASSERT_EQUAL(s.min_output, 7);
    CU_ASSERT_EQUAL(s.max_output, 7);
    pgd_workload_destroy(w);
    c.input_len = (pgd_len_dist){.kind = PGD_LEN_NORMAL, .mean = 100, .stddev = 10};
    c.output_len = (pgd_len_dist){.kind = PGD_LEN_LOGNORMAL, .mean = 50, .stddev = 40, .max = 400};
    w = make(&c);
    pgd_workload_describe(w, &s);
    CU_ASSERT(fabs(s.mean_input - 100) < 1.0);
    CU_ASSERT(fabs(s.mean_output / 50 - 1) < 0.04);
    CU_ASSERT(s.max_output <= 400);
    pgd_workload_destroy(w);
    /* shared prefix and context clipping */
    c = (pgd_workload_config){.num_requests = 50, .seed = 4, .shared_prefix_len = 32,
                              .max_model_len = 256, .num_priorities = 3};
    w = make(&c);
    pgd_workload_describe(w, &s);
    int prefix_ok = 1, fits = 1, prio_ok = 1;
    for (int i = 0; i < 50; i++) {
        const pgd_workload_request *r = pgd_workload_get(w, i);
        prefix_ok &= memcmp(r->prompt, pgd_workload_get(w, 0)->prompt, 32 * 4) == 0 &&
                     r->shared_prefix_len == 32;
        fits &= r->n_prompt + r->output_len <= 256 && r->output_len >= 1;
        prio_ok &= r->priority >= 0 && r->priority < 3;
    }
    CU_ASSERT(prefix_ok);
    CU_ASSERT(fits);
    CU_ASSERT(prio_ok);
    CU_ASSERT(s.num_clipped > 0);
    printf("\n  clipped to 256: %d of 50\n", s.num_clipped);
    pgd_workload_destroy(w);
}

static void gap_stats(const pgd_workload *w, double *mean, double *cv) {
    int n = pgd_workload_count(w);
    double s = 0, ss = 0;
    for (int i = 1; i < n; i++) {
        double g = pgd_workload_get(w, i)->arrival - pgd_workload_get(w, i - 1)->arrival;
        s += g;
        ss += g * g;
    }
    *mean = s / (n - 1);
    *cv = sqrt(ss / (n - 1) - *mean * *mean) / *mean;
}

static void test_arrivals(void) {
    pgd_workload_config c = {.num_requests = 20000, .seed = 11,
                             .input_len = {.kind = PGD_LEN_FIXED, .mean = 4},
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 4},
                             .arrival = {.kind = PGD_ARRIVAL_POISSON, .rate = 10}};
    pgd_workload *w = make(&c);
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    double mean, cv;
    gap_stats(w, &mean, &cv);
    printf("\n  poisson rate 10: measured %.3f req/s, gap CV %.3f\n", s.rate, cv);
    CU_ASSERT(fabs(s.rate / 10 - 1) < 0.03);
    CU_ASSERT(fabs(cv - 1) < 0.05);
    pgd_workload_destroy(w);
    double bursts[] = {0.25, 4.0};
    for (int b = 0; b < 2; b++) {
        c.arrival = (pgd_arrival){.kind = PGD_ARRIVAL_GAMMA, .rate = 10, .burstiness = bursts[b]};
        w = make(&c);
        gap_stats(w, &mean, &cv);
        printf("  gamma burstiness %.2f: mean gap %.4f, CV %.3f (expected %.3f)\n", bursts[b],
               mean, cv, 1 / sqrt(bursts[b]));
        CU_ASSERT(fabs(mean * 10 - 1) < 0.05);
        CU_ASSERT(fabs(cv * sqrt(bursts[b]) - 1) < 0.06);
        pgd_workload_destroy(w);
    }
    c.num_requests = 10;
    c.arrival = (pgd_arrival){.kind = PGD_ARRIVAL_POISSON, .rate = INFINITY};
    w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 9)->arrival, 0.0);
    pgd_workload_destroy(w);
    c.arrival = (pgd_arrival){.kind = PGD_ARRIVAL_CLOSED_LOOP, .max_concurrency = 4};
    w = make(&c);
    CU_ASSERT(pgd_workload_closed_loop(w));
    CU_ASSERT_EQUAL(pgd_workload_max_concurrency(w), 4);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 9)->arrival, 0.0);
    pgd_workload_destroy(w);
}

static void test_azure_vidur(void) {
    pgd_workload_config c = {.source = PGD_WL_TRACE, .num_requests = 200,
                             .path = pgd_test_data("traces/azure2023_conv.csv")};
    pgd_workload *w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 200);
    /* 18:15:46.6805900,374,44 / 18:15:50.9951690,396,109 / 18:15:51.2224670,879,55 */
    const pgd_workload_request *r0 = pgd_workload_get(w, 0), *r1 = pgd_workload_get(w, 1),
                               *r2 = pgd_workload_get(w, 2);
    CU_ASSERT_EQUAL(r0->n_prompt, 374);
    CU_ASSERT_EQUAL(r0->output_len, 44);
    CU_ASSERT_EQUAL(r1->n_prompt, 396);
    CU_ASSERT_EQUAL(r1->output_len, 109);
    CU_ASSERT_EQUAL(r2->n_prompt, 879);
    CU_ASSERT_DOUBLE_EQUAL(r0->arrival, 0.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(r1->arrival, 4.314579, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r2->arrival, 4.541877, 1e-9);
    double last = pgd_workload_get(w, 199)->arrival;
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    printf("\n  azure conv 200: %.1f s, input mean %.1f, output mean %.1f\n", s.duration,
           s.mean_input, s.mean_output);
    pgd_workload_destroy(w);
    c.time_scale = 0.5;
    w = make(&c);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 1)->arrival, 4.314579 / 2, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 199)->arrival, last / 2, 1e-9);
    pgd_workload_destroy(w);
    /* the Vidur re-timing of the same trace agrees */
    c = (pgd_workload_config){.source = PGD_WL_TRACE, .num_requests = 3,
                              .path = pgd_test_data("traces/vidur_splitwise_conv.csv")};
    w = make(&c);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 1)->arrival, 4.314579, 1e-9);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->n_prompt, 879);
    pgd_workload_destroy(w);
    c.path = pgd_test_data("traces/azure2023_code.csv");
    c.max_model_len = 2048;
    w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->n_prompt, 2047); /* 4808 clipped */
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->output_len, 1);
    CU_ASSERT(pgd_workload_get(w, 0)->clipped);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->n_prompt, 110);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->output_len, 27);
    pgd_workload_describe(w, &s);
    CU_ASSERT_EQUAL(s.num_clipped, 2);
    pgd_workload_destroy(w);
}

/* The trace's load axis (issue 19): a finite rate rescales the selected
 * rows' timestamps so they arrive at that mean rate, (n - 1) / span, with
 * the trace's gaps in proportion; a length-only trace at a rate is Poisson. */
static void test_trace_rate(void) {
    pgd_workload_config c = {.source = PGD_WL_TRACE, .num_requests = 200,
                             .path = pgd_test_data("traces/azure2023_conv.csv"),
                             .arrival = {.kind = PGD_ARRIVAL_DEFAULT, .rate = INFINITY}};
    pgd_workload *w = make(&c);
    double span = pgd_workload_get(w, 199)->arrival, r1 = pgd_workload_get(w, 1)->arrival;
    pgd_workload_destroy(w);
    double rates[] = {0.5, 2, 8};
    for (int i = 0; i < 3; i++) {
        c.arrival.rate = rates[i];
        w = make(&c);
        pgd_workload_summary s;
        pgd_workload_describe(w, &s);
        CU_ASSERT_DOUBLE_EQUAL(s.rate, rates[i], 1e-9 * rates[i]);
        CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 199)->arrival, 199 / rates[i], 1e-9 * span);
        /* the gaps keep their proportions: request 1 at the same share of the span */
        CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 1)->arrival / pgd_workload_get(w, 199)->arrival, r1 / span, 1e-12);
        CU_ASSERT_EQUAL(pgd_workload_get(w, 2)->n_prompt, 879); /* same requests, other times */
        pgd_workload_destroy(w);
    }
    printf("\n  azure conv 200: native %.4f req/s, replayed at 0.5 / 2 / 8 req/s\n", 199 / span);
    /* the trace kind too (arrival = trace) */
    c.arrival = (pgd_arrival){.kind = PGD_ARRIVAL_TRACE, .rate = 4};
    w = make(&c);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 199)->arrival, 199 / 4.0, 1e-9 * span);
    pgd_workload_destroy(w);
    /* no timestamps: Poisson at the rate */
    c = (pgd_workload_config){.source = PGD_WL_TRACE, .num_requests = 400, .seed = 3,
                              .path = pgd_test_data("traces/vidur_arxiv_summarization_lengths.csv"),
                              .arrival = {.kind = PGD_ARRIVAL_DEFAULT, .rate = 5}};
    w = make(&c);
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    CU_ASSERT(s.duration > 0);
    CU_ASSERT(fabs(s.rate / 5 - 1) < 0.15);
    pgd_workload_destroy(w);
}

static void test_lengths_trace_and_sample(void) {
    pgd_workload_config c = {.source = PGD_WL_TRACE, .num_requests = 100, .seed = 5,
                             .path = pgd_test_data("traces/vidur_arxiv_summarization_lengths.csv")};
    pgd_workload *w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->n_prompt, 3772); /* all at once: source order */
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->output_len, 54);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 99)->arrival, 0.0);
    pgd_workload_destroy(w);
    c.arrival = (pgd_arrival){.kind = PGD_ARRIVAL_POISSON, .rate = 2};
    w = make(&c);
    CU_ASSERT(pgd_workload_get(w, 99)->arrival > 10);
    pgd_workload_destroy(w);
    c.arrival.kind = PGD_ARRIVAL_TRACE;
    expect_error(&c, PGD_ERR_INVALID, "no timestamps");
    /* seeded sample: deterministic, not the first rows, in [0, rows) */
    c = (pgd_workload_config){.source = PGD_WL_TRACE, .num_requests = 50, .sample = 1, .seed = 9,
                              .path = pgd_test_data("traces/azure2023_conv.csv")};
    pgd_workload *a = make(&c), *b = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_fingerprint(a), pgd_workload_fingerprint(b));
    CU_ASSERT(pgd_workload_get(a, 49)->source_row > 49);
    CU_ASSERT_EQUAL(pgd_workload_get(a, 0)->arrival, 0.0);
    pgd_workload_destroy(a);
    pgd_workload_destroy(b);
}

static void test_mooncake(void) {
    pgd_workload_config c = {.source = PGD_WL_TRACE, .num_requests = 200, .seed = 2,
                             .path = pgd_test_data("traces/mooncake_conversation_trace.jsonl")};
    pgd_workload *w = make(&c);
    CU_ASSERT_EQUAL_FATAL(pgd_workload_count(w), 200);
    const pgd_workload_request *r0 = pgd_workload_get(w, 0), *r1 = pgd_workload_get(w, 1);
    /* first rows: 6758/500 ids [0..13], 7322/490 ids [0,14..27] */
    CU_ASSERT_EQUAL(r0->n_prompt, 6758);
    CU_ASSERT_EQUAL(r0->output_len, 500);
    CU_ASSERT_EQUAL(r0->n_hash_ids, 14);
    CU_ASSERT_EQUAL(r1->n_prompt, 7322);
    CU_ASSERT_EQUAL(r1->hash_ids[1], 14);
    CU_ASSERT_EQUAL(r0->shared_prefix_len, 0);
    CU_ASSERT_EQUAL(r1->shared_prefix_len, 512);
    CU_ASSERT_EQUAL(memcmp(r0->prompt, r1->prompt, 512 * 4), 0);          /* id 0 == id 0 */
    CU_ASSERT_NOT_EQUAL(memcmp(r0->prompt + 512, r1->prompt + 512, 512 * 4), 0); /* 1 vs 14 */
    /* every pair of equal ids in the first 200 gives equal blocks */
    int checked = 0, equal = 1, shared = 0;
    for (int i = 0; i < 200; i++) {
        const pgd_workload_request *a = pgd_workload_get(w, i);
        shared += a->shared_prefix_len > 0;
        for (int j = 0; j < a->n_hash_ids && (j + 1) * 512 <= a->n_prompt; j++)
            for (int k = 0; k < i; k++) {
                const pgd_workload_request *b = pgd_workload_get(w, k);
                if (j < b->n_hash_ids && (j + 1) * 512 <= b->n_prompt &&
                    b->hash_ids[j] == a->hash_ids[j]) {
                    equal &= memcmp(a->prompt + j * 512, b->prompt + j * 512, 512 * 4) == 0;
                    checked++;
                    break;
                }
            }
    }
    printf("\n  mooncake conv 200: %d equal-id block pairs checked, %d requests share a prefix, "
           "last arrival %.1f s\n",
           checked, shared, pgd_workload_get(w, 199)->arrival);
    CU_ASSERT(checked > 100);
    CU_ASSERT(equal);
    double last = pgd_workload_get(w, 199)->arrival;
    CU_ASSERT(last > 0);
    pgd_workload_destroy(w);
    c.max_model_len = 1024;
    c.time_scale = 2;
    w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->n_prompt, 1023);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 1)->shared_prefix_len, 512);
    CU_ASSERT_DOUBLE_EQUAL(pgd_workload_get(w, 199)->arrival, 2 * last, 1e-9);
    pgd_workload_destroy(w);
}

static pgd_tokenizer *tok;
static int setup_tok(void) {
    return pgd_tokenizer_load_llama2c(pgd_test_data("tokenizers/llama2_tokenizer.bin"), 32000, &tok);
}
static int teardown_tok(void) {
    pgd_tokenizer_destroy(tok);
    return 0;
}

static void test_datasets(void) {
    pgd_workload_config c = {.source = PGD_WL_DATASET, .tokenizer = tok, .seed = 1,
                             .path = pgd_test_data("traces/sharegpt_v3_filtered_500.json")};
    pgd_workload *w = make(&c);
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    printf("\n  sharegpt 500: %d requests, input mean %.1f [%d, %d], output mean %.1f\n", s.count,
           s.mean_input, s.min_input, s.max_input, s.mean_output);
    CU_ASSERT_EQUAL(s.count + s.num_skipped, 500);
    CU_ASSERT(s.count >= 490);
    int32_t *t = NULL;
    int n = 0;
    pgd_tokenizer_encode(tok, "How to stop automatic updates from the WSUS Server to a target machine",
                         1, 0, &t, &n);
    const pgd_workload_request *r0 = pgd_workload_get(w, 0);
    CU_ASSERT_EQUAL(r0->n_prompt, n);
    CU_ASSERT(n > 10 && memcmp(r0->prompt, t, (size_t)n * 4) == 0);
    CU_ASSERT_EQUAL(r0->prompt[0], 1);
    free(t);
    pgd_workload_destroy(w);

    c.path = pgd_test_data("traces/alpaca_5000.json");
    c.num_requests = 100;
    w = make(&c);
    pgd_tokenizer_encode(tok, "No", 0, 0, &t, &n);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->output_len, n); /* from the dataset */
    free(t);
    pgd_workload_describe(w, &s);
    printf("  alpaca 100: input mean %.1f, output mean %.1f\n", s.mean_input, s.mean_output);
    pgd_workload_destroy(w);

    c.path = pgd_test_data("traces/sharegpt_sg90k_first_sampled_sorted.json");
    c.num_requests = 300;
    c.sample = 1;
    w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 300);
    pgd_workload_destroy(w);
    c.sample = 0;

    c.path = pgd_test_data("traces/mtbench_questions.jsonl");
    c.num_requests = 0;
    c.output_len = (pgd_len_dist){.kind = PGD_LEN_FIXED, .mean = 64};
    w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_count(w), 80);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->output_len, 64);
    pgd_workload_destroy(w);
}

static void test_errors(void) {
    pgd_workload_config c = {.source = PGD_WL_TRACE, .path = "/nonexistent/trace.csv"};
    expect_error(&c, PGD_ERR_IO, "/nonexistent/trace.csv");
    const char csv[] = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                       "2023-11-16 18:15:46.6805900,374,44\n"
                       "2023-11-16 18:15:47.0,abc,44\n";
    char *p = pgd_test_write_temp(csv, sizeof csv - 1, ".csv");
    c.path = p;
    expect_error(&c, PGD_ERR_FORMAT, ":3: bad ContextTokens 'abc'");
    remove(p);
    free(p);
    const char ts[] = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-16 18:15:46,1,1\n";
    p = pgd_test_write_temp(ts, sizeof ts - 1, ".csv");
    c.path = p;
    expect_error(&c, PGD_ERR_FORMAT, ":2: bad TIMESTAMP");
    remove(p);
    free(p);
    const char jl[] = "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 3, \"hash_ids\": [0]}\n"
                      "{\"timestamp\": 10, \"input_length\": 5,\n";
    p = pgd_test_write_temp(jl, sizeof jl - 1, ".jsonl");
    c.path = p;
    expect_error(&c, PGD_ERR_FORMAT, ":2:");
    remove(p);
    free(p);
    const char jm[] = "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 3}\n";
    p = pgd_test_write_temp(jm, sizeof jm - 1, ".jsonl");
    c.path = p;
    expect_error(&c, PGD_ERR_FORMAT, ":1: missing or bad 'hash_ids'");
    remove(p);
    free(p);
    const char js[] = "[{\"instruction\": \"a\"},\n {\"instruction\": }]";
    p = pgd_test_write_temp(js, sizeof js - 1, ".json");
    c = (pgd_workload_config){.source = PGD_WL_DATASET, .path = p, .tokenizer = tok};
    expect_error(&c, PGD_ERR_FORMAT, ":2:");
    c.tokenizer = NULL;
    expect_error(&c, PGD_ERR_INVALID, "tokenizer");
    remove(p);
    free(p);

    c = (pgd_workload_config){.arrival = {.kind = PGD_ARRIVAL_POISSON, .rate = -1}};
    expect_error(&c, PGD_ERR_INVALID, "rate -1");
    c = (pgd_workload_config){.arrival = {.kind = PGD_ARRIVAL_CLOSED_LOOP}};
    expect_error(&c, PGD_ERR_INVALID, "max_concurrency");
    c = (pgd_workload_config){.input_len = {.kind = PGD_LEN_UNIFORM, .min = 5, .max = 2}};
    expect_error(&c, PGD_ERR_INVALID, "input_len");
    c = (pgd_workload_config){.output_len = {.kind = PGD_LEN_LOGNORMAL, .mean = 10}};
    expect_error(&c, PGD_ERR_INVALID, "output_len: lognormal stddev 0");
    c = (pgd_workload_config){.num_requests = -3};
    expect_error(&c, PGD_ERR_INVALID, "num_requests -3");
    pgd_len_kind k;
    CU_ASSERT_EQUAL(pgd_len_kind_parse("zipf", &k), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "'zipf'"));
    CU_ASSERT_EQUAL(pgd_len_kind_parse("sharegpt", &k), PGD_OK);
    CU_ASSERT_EQUAL(k, PGD_LEN_SHAREGPT);
    pgd_arrival_kind ak;
    CU_ASSERT_EQUAL(pgd_arrival_kind_parse("closed-loop", &ak), PGD_OK);
    CU_ASSERT_EQUAL(ak, PGD_ARRIVAL_CLOSED_LOOP);
    CU_ASSERT_EQUAL(pgd_arrival_kind_parse("bursty", &ak), PGD_ERR_INVALID);
    pgd_trace_format tf;
    CU_ASSERT_EQUAL(pgd_trace_format_parse("mooncake", &tf), PGD_OK);
    CU_ASSERT_EQUAL(tf, PGD_TRACE_MOONCAKE);
    CU_ASSERT_STRING_EQUAL(pgd_dataset_format_name(PGD_DATASET_MTBENCH), "mtbench");
}

static void test_describe(void) {
    pgd_workload_config c = {.num_requests = 3, .input_len = {.kind = PGD_LEN_FIXED, .mean = 10},
                             .output_len = {.kind = PGD_LEN_FIXED, .mean = 5}};
    pgd_workload *w = make(&c);
    char buf[256];
    pgd_workload_format(w, buf, sizeof buf);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "3 requests, input mean 10.0 [10, 10], output mean 5.0"));
    pgd_workload_destroy(w);
}

static void test_every_trace_loads(void) {
    const char *files[] = {"traces/azure2023_code.csv", "traces/vidur_splitwise_code.csv",
                           "traces/vidur_splitwise_conv.csv", "traces/mooncake_synthetic_trace.jsonl",
                           "traces/vidur_arxiv_summarization_lengths.csv"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        pgd_workload_config c = {.source = PGD_WL_TRACE, .path = pgd_test_data(files[i]),
                                 .max_model_len = 4096};
        pgd_workload *w = make(&c);
        char buf[256];
        pgd_workload_format(w, buf, sizeof buf);
        printf("\n  %s: %s", files[i], buf);
        CU_ASSERT(pgd_workload_count(w) > 3000);
        pgd_workload_destroy(w);
    }
    printf("\n");
}

static char *write_text(const char *text, const char *suffix) {
    return pgd_test_write_temp(text, strlen(text), suffix);
}

/* issue 18, defect 1: a trace of 100 rows of 2^30 prompt tokens each took
 * 4 GB per request (the whole prompt was made, then clipped), and so did
 * input_len = fixed, input_mean = 1e9. Each must end in well under a second
 * with memory bounded by the context: the checks run in a child under a
 * 1 GB address-space limit (not under ASan, whose shadow memory needs
 * terabytes of address space). The child's exit code names the check that
 * failed. */
static int huge_prompt_checks(const char *trace) {
#ifndef PGD_TEST_ASAN
    struct rlimit rl = {1ul << 30, 1ul << 30};
    setrlimit(RLIMIT_AS, &rl);
#endif
    pgd_workload_config c = {.source = PGD_WL_TRACE, .path = trace, .max_model_len = 512, .seed = 1};
    pgd_workload *w = NULL;
    if (pgd_workload_create(&c, &w) != PGD_OK) {
        fprintf(stderr, "workload: %s\n", pgd_last_error());
        return 10;
    }
    int ok = pgd_workload_count(w) == 100;
    for (int i = 0; ok && i < 100; i++) {
        const pgd_workload_request *r = pgd_workload_get(w, i);
        ok = r->n_prompt == 511 && r->output_len == 1 && r->clipped &&
             malloc_usable_size((void *)r->prompt) < 4096;
    }
    pgd_workload_summary s;
    pgd_workload_describe(w, &s);
    pgd_workload_destroy(w);
    if (!ok || s.num_clipped != 100) return 11;
    /* the same rows without a context to clip to (max_model_len = 0): longer than any model's
     * context, so an error, not 4 GB per prompt (found by fuzz_trace) */
    c.max_model_len = 0;
    w = NULL;
    pgd_status st0 = pgd_workload_create(&c, &w);
    pgd_workload_destroy(w);
    if (st0 != PGD_ERR_INVALID || !strstr(pgd_last_error(), "longer than any model's context (4194304)")) {
        fprintf(stderr, "no context: status %d, '%s'\n", (int)st0, pgd_last_error());
        return 12;
    }
    /* a synthetic length that can never fit the context: an error naming it */
    struct {
        pgd_len_dist in;
        int prefix;
        const char *needle;
    } never[] = {
        {{.kind = PGD_LEN_FIXED, .mean = 1e9}, 0, "input_len fixed of 1000000000"},
        {{.kind = PGD_LEN_UNIFORM, .min = 600, .max = 700}, 0, "ask for at most 511"},
        {{.kind = PGD_LEN_FIXED, .mean = 500}, 20, "+ shared_prefix_len 20"},
        {{.kind = PGD_LEN_FIXED, .mean = 5}, 1 << 29, "shared_prefix_len 536870912 leaves no room"},
    };
    for (int i = 0; i < 4; i++) {
        c = (pgd_workload_config){.num_requests = 100, .max_model_len = 512, .input_len = never[i].in,
                                  .shared_prefix_len = never[i].prefix};
        w = NULL;
        pgd_status st = pgd_workload_create(&c, &w);
        pgd_workload_destroy(w);
        if (st != PGD_ERR_INVALID || !strstr(pgd_last_error(), never[i].needle)) {
            fprintf(stderr, "case %d: status %d, '%s' lacks '%s'\n", i, (int)st, pgd_last_error(),
                    never[i].needle);
            return 20 + i;
        }
    }
    return 0;
}

static void test_huge_prompts_bounded(void) {
    char csv[8192] = "num_prefill_tokens,num_decode_tokens\n";
    for (int i = 0; i < 100; i++) strcat(csv, "1073741824,1073741824\n");
    char *p = write_text(csv, ".csv");
    /* held to the child's CPU time, not the wall clock a loaded machine
     * stretches: walking 2^30-token prompts would take minutes of CPU */
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) _exit(huge_prompt_checks(p));
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    CU_ASSERT_EQUAL(wait4(pid, &status, 0, &ru), pid);
    double cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                 1e-6 * (double)ru.ru_stime.tv_usec;
    printf("\n  2^30-token prompts: %.3f CPU s, exit %d\n", cpu, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT(cpu < 1.0);
    remove(p);
    free(p);

    pgd_workload_config c = {.num_requests = 100, .max_model_len = 512,
                             .input_len = {.kind = PGD_LEN_FIXED, .mean = 500}};
    /* the longest prompt that fits is accepted, unclipped */
    c.shared_prefix_len = 11;
    c.output_len = (pgd_len_dist){.kind = PGD_LEN_FIXED, .mean = 1};
    pgd_workload *w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->n_prompt, 511);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 0)->clipped, 0);
    pgd_workload_destroy(w);
    /* clipping keeps the leading tokens the unclipped prompt would have */
    pgd_workload_config big = {.num_requests = 20, .seed = 5, .shared_prefix_len = 40,
                               .input_len = {.kind = PGD_LEN_UNIFORM, .min = 10, .max = 900}};
    pgd_workload *wa = make(&big);
    big.max_model_len = 300;
    pgd_workload *wb = make(&big);
    int same = 1;
    for (int i = 0; i < 20; i++) {
        const pgd_workload_request *a = pgd_workload_get(wa, i), *b = pgd_workload_get(wb, i);
        same &= b->n_prompt == (a->n_prompt < 299 ? a->n_prompt : 299) &&
                memcmp(a->prompt, b->prompt, (size_t)b->n_prompt * sizeof *b->prompt) == 0;
    }
    CU_ASSERT(same);
    pgd_workload_destroy(wa);
    pgd_workload_destroy(wb);
}

/* issue 18, defects 6 and 8: trace values out of range are errors, never
 * undefined casts or silent wraps */
static void test_trace_out_of_range(void) {
    struct {
        const char *text, *suffix, *needle;
    } bad[] = {
        {"arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,5\n1e300,5,5\n", ".csv",
         ":3: arrived_at '1e300' is out of range"},
        {"arrived_at,num_prefill_tokens,num_decode_tokens\n1e13,5,5\n", ".csv", "out of range"},
        {"{\"timestamp\": 1e300, \"input_length\": 5, \"output_length\": 3, \"hash_ids\": [0]}\n",
         ".jsonl", ":1: timestamp 1e+300 ms is out of range"},
        {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2147483648, \"hash_ids\": [0]}\n",
         ".jsonl", ":1: output_length 2147483648 too large"},
        {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 4294967297, \"hash_ids\": []}\n",
         ".jsonl", "output_length 4294967297 too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *p = write_text(bad[i].text, bad[i].suffix);
        pgd_workload_config c = {.source = PGD_WL_TRACE, .path = p, .max_model_len = 512};
        expect_error(&c, PGD_ERR_FORMAT, bad[i].needle);
        remove(p);
        free(p);
    }
    /* the largest accepted time, scaled past a double's range */
    char *p = write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,5\n1e12,5,5\n", ".csv");
    pgd_workload_config c = {.source = PGD_WL_TRACE, .path = p, .max_model_len = 512,
                             .time_scale = 1e300};
    expect_error(&c, PGD_ERR_INVALID, "arrival time out of range");
    c.time_scale = 1;
    pgd_workload *w = make(&c);
    CU_ASSERT_EQUAL(pgd_workload_get(w, 1)->arrival, 1e12);
    pgd_workload_destroy(w);
    remove(p);
    free(p);
}

static CU_TestInfo wl_tests[] = {
    {"determinism", test_determinism},
    {"sharegpt and alpaca means", test_named_means},
    {"fixed/uniform/normal/lognormal, prefix, clipping", test_other_lengths},
    {"poisson, gamma, all at once, closed loop", test_arrivals},
    {"azure and vidur traces", test_azure_vidur},
    {"lengths trace and seeded sample", test_lengths_trace_and_sample},
    {"trace replayed at a rate (load axis)", test_trace_rate},
    {"mooncake hash blocks", test_mooncake},
    {"every shared trace loads whole", test_every_trace_loads},
    {"describe", test_describe},
    {"huge prompts: memory bounded by the context", test_huge_prompts_bounded},
    {"trace times and lengths out of range", test_trace_out_of_range},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo tok_tests[] = {
    {"sharegpt, alpaca, mt-bench", test_datasets},
    {"errors", test_errors},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "workload", .pTests = wl_tests},
    {.pName = "workload datasets", .pInitFunc = setup_tok, .pCleanupFunc = teardown_tok,
     .pTests = tok_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
