/* test_metrics.c - metrics: vLLM-convention statistics on hand-computed
 * requests (TTFT, TPOT, ITL, E2E, normalized latency, percentiles,
 * throughputs, goodput), the writers' files read back, and one small
 * workload served by the engine on stories260K end to end. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/backend.h"
#include "pagoda/engine.h"
#include "pagoda/metrics.h"
#include "pagoda/model.h"
#include "pagoda/workload.h"
#include "test_util.h"

#define EPS 1e-9

/* R0: arrival 0, sched 0.5, tokens 1.0 1.5 2.5 3.0, 10 prompt tokens
 * R1: arrival 1, sched 1.0, token 2.0, 5 prompt tokens (1 output token)
 * R2: arrival 2, sched 2.5, tokens 4.0 4.25 5.0, 20 prompt tokens, 2 preemptions
 * R3: arrival 2.5, aborted at 3.5 before any token, 7 prompt tokens */
static pgd_metrics *example(void) {
    static const double t0[] = {1.0, 1.5, 2.5, 3.0}, t1[] = {2.0}, t2[] = {4.0, 4.25, 5.0};
    pgd_request_record r[] = {
        {.id = 0, .arrival = 0, .first_scheduled = 0.5, .first_token = 1.0, .finish = 3.0,
         .token_times = t0, .n_tokens = 4, .prompt_tokens = 10, .output_tokens = 4,
         .finish_reason = "length"},
        {.id = 1, .arrival = 1, .first_scheduled = 1.0, .first_token = 2.0, .finish = 2.0,
         .token_times = t1, .n_tokens = 1, .prompt_tokens = 5, .output_tokens = 1,
         .finish_reason = "stop", .priority = 1},
        {.id = 2, .arrival = 2, .first_scheduled = 2.5, .first_token = 4.0, .finish = 5.0,
         .token_times = t2, .n_tokens = 3, .prompt_tokens = 20, .output_tokens = 3,
         .num_preemptions = 2, .finish_reason = "length"},
        {.id = 3, .arrival = 2.5, .first_scheduled = -1, .first_token = -1, .finish = 3.5,
         .prompt_tokens = 7, .finish_reason = "abort"},
    };
    pgd_metrics *m = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_metrics_create(&m), PGD_OK);
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(pgd_metrics_add_request(m, &r[i]), PGD_OK);
    pgd_timeline_sample s0 = {.time = 1.0, .step = 1, .running = 2, .waiting = 1, .batch_seqs = 2,
                              .batch_tokens = 10, .kv_used_blocks = 4, .kv_num_blocks = 8,
                              .kv_usage = 0.5, .kv_utilization = 0.75, .kv_fragmentation = 0.25};
    pgd_timeline_sample s1 = s0;
    s1.time = 2.0, s1.step = 2, s1.batch_seqs = 4, s1.batch_tokens = 30, s1.kv_usage = 0.25;
    s1.swaps = 1, s1.preemptions = 2, s1.prefix_hit_rate = 0.5;
    CU_ASSERT_EQUAL(pgd_metrics_add_sample(m, &s0), PGD_OK);
    CU_ASSERT_EQUAL(pgd_metrics_add_sample(m, &s1), PGD_OK);
    return m;
}

static void test_percentiles(void) {
    double v[] = {4, 1, 3, 2};
    double s[] = {1, 2, 3, 4};
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 4, 50), 2.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 4, 90), 3.7, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 4, 99), 3.97, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 4, 0), 1, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 4, 100), 4, EPS);
    CU_ASSERT_DOUBLE_EQUAL(pgd_percentile_sorted(s, 1, 99), 1, EPS);
    pgd_dist_stats d;
    pgd_dist_stats_compute(v, 4, &d);
    CU_ASSERT_EQUAL(d.count, 4);
    CU_ASSERT_DOUBLE_EQUAL(d.mean, 2.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(d.median, 2.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(d.std, sqrt(1.25), EPS); /* population std, numpy ddof=0 */
    CU_ASSERT_DOUBLE_EQUAL(d.min, 1, EPS);
    CU_ASSERT_DOUBLE_EQUAL(d.max, 4, EPS);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 4, EPS); /* input untouched */
    pgd_dist_stats_compute(v, 0, &d);
    CU_ASSERT_EQUAL(d.count, 0);
    CU_ASSERT_DOUBLE_EQUAL(d.mean, 0, EPS);
}

static void test_summary(void) {
    pgd_metrics *m = example();
    pgd_metrics_summary s;
    CU_ASSERT_EQUAL_FATAL(pgd_metrics_summarize(m, NULL, &s), PGD_OK);
    CU_ASSERT_EQUAL(s.num_requests, 4);
    CU_ASSERT_EQUAL(s.completed, 3);
    CU_ASSERT_EQUAL(s.failed, 1);
    CU_ASSERT_EQUAL(s.total_input_tokens, 35);
    CU_ASSERT_EQUAL(s.total_output_tokens, 8);
    CU_ASSERT_DOUBLE_EQUAL(s.duration, 5.0, EPS); /* first arrival 0 .. last finish 5 */
    CU_ASSERT_DOUBLE_EQUAL(s.request_throughput, 0.6, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.output_throughput, 1.6, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.total_token_throughput, 8.6, EPS);
    /* TTFT {1, 1, 2} */
    CU_ASSERT_EQUAL(s.ttft.count, 3);
    CU_ASSERT_DOUBLE_EQUAL(s.ttft.mean, 4.0 / 3, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.ttft.median, 1.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.ttft.std, sqrt(2.0 / 9), EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.ttft.p90, 1.8, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.ttft.p99, 1.98, EPS);
    /* TPOT: R0 (3-1)/3, R2 (3-2)/2; R1 has one token */
    CU_ASSERT_EQUAL(s.tpot.count, 2);
    CU_ASSERT_DOUBLE_EQUAL(s.tpot.mean, (2.0 / 3 + 0.5) / 2, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.tpot.p90, 0.5 + (2.0 / 3 - 0.5) * 0.9, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.tpot.std, (2.0 / 3 - 0.5) / 2, EPS);
    /* ITL pooled {0.5, 1.0, 0.5, 0.25, 0.75} */
    CU_ASSERT_EQUAL(s.itl.count, 5);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.mean, 0.6, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.median, 0.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.p90, 0.9, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.p99, 0.99, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.std, sqrt(0.065), EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.itl.max, 1.0, EPS);
    /* E2E {3, 1, 3}; normalized {0.75, 1, 1}; queue {0.5, 0, 0.5} */
    CU_ASSERT_DOUBLE_EQUAL(s.e2e.mean, 7.0 / 3, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.e2e.median, 3.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.norm_latency.mean, 2.75 / 3, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.queue_delay.mean, 1.0 / 3, EPS);
    CU_ASSERT_EQUAL(s.preemptions, 2);
    CU_ASSERT_EQUAL(s.good_requests, 3);
    CU_ASSERT_DOUBLE_EQUAL(s.goodput, 0.6, EPS);
    /* timeline */
    CU_ASSERT_EQUAL(s.timeline_samples, 2);
    CU_ASSERT_DOUBLE_EQUAL(s.mean_batch_seqs, 3, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.mean_batch_tokens, 20, EPS);
    CU_ASSERT_EQUAL(s.max_batch_tokens, 30);
    CU_ASSERT_DOUBLE_EQUAL(s.max_kv_usage, 0.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(s.mean_kv_usage, 0.375, EPS);
    CU_ASSERT_EQUAL(s.swaps, 1);
    CU_ASSERT_DOUBLE_EQUAL(s.prefix_hit_rate, 0.5, EPS);
    /* window override */
    pgd_metrics_set_window(m, 0, 10);
    pgd_metrics_summarize(m, NULL, &s);
    CU_ASSERT_DOUBLE_EQUAL(s.request_throughput, 0.3, EPS);
    pgd_metrics_destroy(m);
}

static void test_goodput(void) {
    pgd_metrics *m = example();
    pgd_metrics_summary s;
    /* R0 fails TPOT (0.667), R2 fails TTFT (2); R1 passes (1-token TPOT = 0) */
    pgd_slo slo = {.ttft = 1.5, .tpot = 0.55};
    pgd_metrics_summarize(m, &slo, &s);
    CU_ASSERT_EQUAL(s.good_requests, 1);
    CU_ASSERT_DOUBLE_EQUAL(s.goodput, 0.2, EPS);
    slo = (pgd_slo){.e2e = 2.5};
    pgd_metrics_summarize(m, &slo, &s);
    CU_ASSERT_EQUAL(s.good_requests, 1);
    slo = (pgd_slo){.tpot = 0.7};
    pgd_metrics_summarize(m, &slo, &s);
    CU_ASSERT_EQUAL(s.good_requests, 3);
    slo = (pgd_slo){.ttft = 1.0, .tpot = 0.5}; /* bounds are inclusive */
    pgd_metrics_summarize(m, &slo, &s);
    CU_ASSERT_EQUAL(s.good_requests, 1);
    pgd_metrics_destroy(m);
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

static void test_writers(void) {
    pgd_metrics *m = example();
    pgd_metrics_summary s;
    pgd_slo slo = {.ttft = 1.5};
    pgd_metrics_summarize(m, &slo, &s);
    char dir[] = "/tmp/pgd_metrics_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char p_sum[64], p_req[64], p_tl[64];
    snprintf(p_sum, sizeof p_sum, "%s/summary.json", dir);
    snprintf(p_req, sizeof p_req, "%s/requests.csv", dir);
    snprintf(p_tl, sizeof p_tl, "%s/timeline.csv", dir);
    json_t *extra = json_pack("{s:s}", "run", "example");
    CU_ASSERT_EQUAL(pgd_metrics_write_summary_json(&s, extra, p_sum), PGD_OK);
    json_decref(extra);
    CU_ASSERT_EQUAL(pgd_metrics_write_requests_csv(m, p_req), PGD_OK);
    CU_ASSERT_EQUAL(pgd_metrics_write_timeline_csv(m, p_tl), PGD_OK);

    json_error_t err;
    json_t *o = json_load_file(p_sum, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "run")), "example");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "completed")), 3);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(o, "request_throughput")), 0.6, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(json_object_get(o, "itl"), "p90")), 0.9,
                           1e-9);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(json_object_get(o, "slo"), "ttft_s")), 1.5,
                           1e-12);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "good_requests")), 2);
    const char *keys[] = {"ttft", "tpot", "e2e", "normalized_latency", "queue_delay", "batch", "kv",
                          "goodput", "output_throughput", "total_token_throughput", "duration_s"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CU_ASSERT_PTR_NOT_NULL(json_object_get(o, keys[i]));
    json_decref(o);

    char *csv = pgd_test_read_file(p_req, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    CU_ASSERT_EQUAL(
        strncmp(csv,
                "id,priority,arrival,first_scheduled,first_token,finish,"
                "prompt_tokens,output_tokens,ttft,tpot,e2e,normalized_latency,"
                "queue_delay,num_preemptions,finish_reason,error,session,turn,cached_tokens,prefix_hit_rate,"
                "client,slo_class\n",
                224),
        0);
    CU_ASSERT_EQUAL(count_char(csv, '\n'), 5);
    CU_ASSERT_EQUAL(count_char(csv, ','), 5 * 21);
    /* R1: tpot empty (1 token); R3: no first token, no ttft; client and SLO class 0 (the only ones) */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(csv, "\n1,1,1.000000000,1.000000000,2.000000000,2.000000000,5,1,1,,1,1,0,0,stop,,,,0,0,0,0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\n3,0,2.500000000,,,3.500000000,7,0,,,1,,,0,abort,,,,0,0,0,0\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(csv, "\n2,0,2.000000000,2.500000000,4.000000000,5.000000000,20,3,2,0.5,3,1,0.5,2,length,,,,0,0,0,0\n"));
    free(csv);
    char *tl = pgd_test_read_file(p_tl, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tl);
    CU_ASSERT_EQUAL(strncmp(tl, "time,step,running,waiting,swapped,batch_seqs,batch_tokens,"
                                "kv_used_blocks,kv_num_blocks,kv_usage,kv_utilization,"
                                "kv_fragmentation,preemptions,swaps,prefix_hit_rate\n", 150), 0);
    CU_ASSERT_EQUAL(count_char(tl, '\n'), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(tl, "\n2.000000000,2,2,1,0,4,30,4,8,0.25,0.75,0.25,2,1,0.5\n"));
    free(tl);
    /* a failed request's reason goes into the error column, quoted when it holds a comma or quote;
     * its client and SLO class (tagged as the runner tags them) close the row */
    pgd_request_record rej = {.id = -9, .arrival = 3, .first_scheduled = -1, .first_token = -1, .finish = 3,
                              .prompt_tokens = 9, .finish_reason = "error",
                              .error = "request: max_tokens (5), n (2) \"too\" many"};
    CU_ASSERT_EQUAL(pgd_metrics_add_request(m, &rej), PGD_OK);
    pgd_metrics_tag_last(m, 2, 1, 0.5);
    CU_ASSERT_EQUAL(pgd_metrics_write_requests_csv(m, p_req), PGD_OK);
    csv = pgd_test_read_file(p_req, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
    CU_ASSERT_PTR_NOT_NULL(strstr(csv, ",0,error,\"request: max_tokens (5), n (2) \"\"too\"\" many\",,,0,0,2,1\n"));
    free(csv);
    CU_ASSERT_EQUAL(pgd_metrics_write_requests_csv(m, "/nonexistent/dir/requests.csv"), PGD_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "/nonexistent/dir/requests.csv"));
    CU_ASSERT_EQUAL(pgd_metrics_write_summary_json(&s, NULL, "/nonexistent/dir/s.json"), PGD_ERR_IO);
    remove(p_sum);
    remove(p_req);
    remove(p_tl);
    rmdir(dir);
    pgd_metrics_destroy(m);
}

/* A synthetic workload served by the engine on stories260K: every request
 * completes with its exact output length and the timeline has one sample
 * per step. */
static void test_engine_end_to_end(void) {
    pgd_exec *model = NULL;
    pgd_engine *e = NULL;
    pgd_workload *w = NULL;
    pgd_metrics *m = NULL;
    pgd_exec_config xc = {.model = pgd_test_data("models/stories260K/stories260K.bin"), .backend = {.name = "cpu"}};
    CU_ASSERT_EQUAL_FATAL(pgd_exec_create(&xc, &model), PGD_OK);
    pgd_workload_config wc = {.num_requests = 12, .seed = 3, .vocab_size = 512,
                              .max_model_len = 512, .shared_prefix_len = 32,
                              .input_len = {.kind = PGD_LEN_UNIFORM, .min = 4, .max = 40},
                              .output_len = {.kind = PGD_LEN_UNIFORM, .min = 1, .max = 24}};
    CU_ASSERT_EQUAL_FATAL(pgd_workload_create(&wc, &w), PGD_OK);
    pgd_engine_config ec = {.block_size = 16, .num_blocks = 64, .prefix_caching = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_engine_create(&ec, model, NULL, &e), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_metrics_create(&m), PGD_OK);
    int64_t ids[12];
    pgd_engine_stats prev = {0};
    for (int i = 0; i < 12; i++) {
        pgd_request_params p = {0};
        pgd_workload_fill_params(w, i, 0, &p);
        CU_ASSERT_EQUAL_FATAL(pgd_engine_add_request(e, &p, &ids[i]), PGD_OK);
        if (i == 0) { /* the first request's prefill fills the prefix cache */
            pgd_timeline_sample ts;
            CU_ASSERT_EQUAL_FATAL(pgd_engine_step(e, NULL), PGD_OK);
            pgd_metrics_sample_engine(e, &prev, &ts);
            pgd_metrics_add_sample(m, &ts);
            pgd_engine_get_stats(e, &prev);
        }
    }
    while (pgd_engine_has_unfinished(e)) {
        CU_ASSERT_EQUAL_FATAL(pgd_engine_step(e, NULL), PGD_OK);
        pgd_timeline_sample ts;
        pgd_metrics_sample_engine(e, &prev, &ts);
        pgd_metrics_add_sample(m, &ts);
        pgd_engine_get_stats(e, &prev);
    }
    for (int i = 0; i < 12; i++) {
        const pgd_request_output *o;
        CU_ASSERT_EQUAL_FATAL(pgd_engine_get_output(e, ids[i], &o), PGD_OK);
        CU_ASSERT_EQUAL(o->seqs[0].n_tokens, pgd_workload_get(w, i)->output_len);
        CU_ASSERT_EQUAL(pgd_metrics_add_output(m, o, pgd_workload_get(w, i)->priority), PGD_OK);
    }
    pgd_metrics_summary s;
    CU_ASSERT_EQUAL(pgd_metrics_summarize(m, NULL, &s), PGD_OK);
    pgd_workload_summary ws;
    pgd_workload_describe(w, &ws);
    pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    CU_ASSERT_EQUAL(s.completed, 12);
    CU_ASSERT_EQUAL(s.total_output_tokens, ws.total_output);
    CU_ASSERT_EQUAL(s.total_input_tokens, ws.total_input);
    CU_ASSERT_EQUAL(s.timeline_samples, st.steps);
    CU_ASSERT_EQUAL(s.itl.count, ws.total_output - 12);
    CU_ASSERT(s.ttft.min >= 0 && s.e2e.max >= s.ttft.max && s.duration > 0);
    CU_ASSERT(s.max_batch_seqs >= 2);
    CU_ASSERT(s.prefix_hit_rate > 0); /* the 32-token shared prefix = 2 cached blocks */
    int64_t computed = 0, generated = 0;
    for (int64_t i = 0; i < pgd_metrics_num_samples(m); i++) {
        computed += pgd_metrics_sample(m, i)->batch_tokens;
        generated += pgd_metrics_sample(m, i)->batch_seqs;
    }
    CU_ASSERT_EQUAL(computed, st.tokens_computed);
    CU_ASSERT_EQUAL(generated, ws.total_output);
    CU_ASSERT_EQUAL(pgd_metrics_sample(m, 0)->batch_tokens, pgd_workload_get(w, 0)->n_prompt);
    printf("\n  engine: %lld steps, mean batch %.2f seqs / %.1f tokens, hit rate %.3f, "
           "TTFT mean %.4f s, TPOT mean %.5f s\n",
           (long long)st.steps, s.mean_batch_seqs, s.mean_batch_tokens, s.prefix_hit_rate,
           s.ttft.mean, s.tpot.mean);
    pgd_metrics_destroy(m);
    pgd_engine_destroy(e);
    pgd_workload_destroy(w);
    pgd_exec_destroy(model);
}

static CU_TestInfo tests[] = {
    {"percentiles and stats (numpy conventions)", test_percentiles},
    {"summary on hand-computed requests", test_summary},
    {"goodput under SLOs", test_goodput},
    {"summary.json, requests.csv, timeline.csv", test_writers},
    {"workload served by the engine end to end", test_engine_end_to_end},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "metrics", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
