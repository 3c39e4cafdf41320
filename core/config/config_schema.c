/* config_schema.c - every key an experiment config may hold: section, key,
 * type, range, default and a one-line description, and the value checks
 * for each type. The README's config reference mirrors this table.
 *
 * Invariant: each default passes its own key's check (test_config checks). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/cluster.h"
#include "pagoda/config.h"
#include "pagoda/kv_manager.h"
#include "pagoda/model.h"
#include "pagoda/scheduler.h"
#include "util/suggest.h"

#define BIG 1e9
static const pgd_cfg_key schema[] = {
    {"experiment", "name", PGD_CFG_NAME, 0, 0, NULL, "", "results directory name (default: the file's base name)"},
    {"experiment", "seed", PGD_CFG_U64, 0, 0, NULL, "0", "seed of the workload and of sampling"},
    {"experiment", "output_dir", PGD_CFG_STR, 0, 0, NULL, "results", "root of results/<experiment>/<run>/"},
    {"experiment", "description", PGD_CFG_STR, 0, 0, NULL, "", "free text, copied to summary.json"},
    {"experiment", "repeats", PGD_CFG_INT, 1, 1000, NULL, "1",
     "run every sweep point this many times (seeds derived per repeat; runs_mean.csv: mean and 95% CI)"},
    {"experiment", "repeat", PGD_CFG_INT, 0, 1000, NULL, "0",
     "which repeat a run is (set by repeats, recorded in each run's config.ini; 0 = not repeated)"},
    {"experiment", "trace_steps", PGD_CFG_BOOL, 0, 0, NULL, "off",
     "write the scheduler's per-step decisions to steps.jsonl (`pagoda explain`)"},

    {"model", "path", PGD_CFG_MODEL, 0, 0, NULL, "random:stories15M", "model file or random:<shape>"},
    {"model", "tokenizer", PGD_CFG_FILE, 0, 0, NULL, "", "llama2.c tokenizer.bin (datasets need one)"},
    {"model", "dtype", PGD_CFG_CHOICE, 0, 0, "f32|f16|bf16|q8_0|q4_0|q4_k|q6_k", "f32",
     "weight dtype of random models"},
    {"model", "weight_seed", PGD_CFG_U64, 0, 0, NULL, "0", "seed of random weights (0 = 1234)"},
    {"model", "backend", PGD_CFG_CHOICE, 0, 0, "cpu|sim|cuda|rocm|gpu-emu", "cpu",
     "compute backend (sim: cost model on a virtual clock; cuda/rocm when built; gpu-emu: GPU kernels emulated on the "
     "CPU)"},
    {"model", "device", PGD_CFG_CHOICE, 0, 0, "a100-40gb|a100-80gb|h100|h200|cpu", "a100-40gb",
     "sim: device preset whose fitted cost curves time the ops"},
    {"model", "tensor_parallel", PGD_CFG_INT, 1, 64, NULL, "1",
     "sim: GPUs the model is split over (Megatron tensor parallel)"},
    {"model", "profile", PGD_CFG_FILE, 0, 0, NULL, "",
     "sim: calibration table from `pagoda profile` (measured times first, the preset's curves for the rest)"},
    {"model", "threads", PGD_CFG_INT, 0, 1024, NULL, "0", "backend threads (0 = all cores)"},

    {"parallel", "tp", PGD_CFG_INT, 1, 64, NULL, "1", "tensor-parallel ranks (heads and FFN split)"},
    {"parallel", "pp", PGD_CFG_INT, 1, 64, NULL, "1", "pipeline stages (layers split; pp batches in flight)"},
    {"parallel", "comm", PGD_CFG_CHOICE, 0, 0, "threads|mpi|nccl", "threads",
     "transport: threads of this process, mpi (run under mpirun -np tp*pp), nccl"},
    {"parallel", "stage_layers", PGD_CFG_STR, 0, 0, NULL, "", "layers per stage, e.g. 3,2 (default: even split)"},
    {"parallel", "pin", PGD_CFG_BOOL, 0, 0, NULL, "off", "bind each rank's threads to its own cores (hwloc)"},

    {"engine", "block_size", PGD_CFG_INT, 1, 4096, NULL, "16", "tokens per KV block"},
    {"engine", "kv_memory", PGD_CFG_SIZE, 0, 0, NULL, "",
     "KV cache size (e.g. 64M); default 256M capped at what max_num_seqs can use"},
    {"engine", "kv_dtype", PGD_CFG_CHOICE, 0, 0, "auto|f32|f16|bf16|q8", "auto",
     "KV cache element type (auto: f32; the sim's GPU presets f16; q8: int8 with an f32 scale per token per head)"},
    {"engine", "num_blocks", PGD_CFG_INT, 0, 1 << 30, NULL, "0",
     "KV blocks incl. the null block (instead of kv_memory; 0 = from kv_memory)"},
    {"engine", "swap_blocks", PGD_CFG_INT, 0, 1 << 30, NULL, "0",
     "host swap space in blocks (0 = as many as device blocks)"},
    {"engine", "max_num_batched_tokens", PGD_CFG_INT, 0, 1 << 24, NULL, "0",
     "token budget per step (0 = scheduler default)"},
    {"engine", "max_num_seqs", PGD_CFG_INT, 0, 1 << 20, NULL, "0", "sequences per step (0 = 256)"},
    {"engine", "policy", PGD_CFG_POLICY, 0, 0, NULL, "fcfs",
     "scheduling policy: a registered one (`pagoda run --help` lists them)"},
    {"engine", "kv_manager", PGD_CFG_KV, 0, 0, NULL, "paged",
     "KV cache manager: a registered one (`pagoda run --help` lists them)"},
    {"engine", "preemption", PGD_CFG_CHOICE, 0, 0, "recompute|swap", "recompute", "preemption mode"},
    {"engine", "chunked_prefill", PGD_CFG_BOOL, 0, 0, NULL, "off", "split long prompts over steps"},
    {"engine", "prefix_caching", PGD_CFG_BOOL, 0, 0, NULL, "off",
     "reuse KV blocks of equal prompt prefixes (KV managers that cache prefixes: paged)"},
    {"engine", "async", PGD_CFG_BOOL, 0, 0, NULL, "off",
     "one more batch in flight: schedule and sample while the pass runs"},

    {"sampling", "temperature", PGD_CFG_NUM, 0, 100, NULL, "0", "0 = greedy"},
    {"sampling", "top_k", PGD_CFG_INT, 0, 1 << 30, NULL, "0", "0 = off"},
    {"sampling", "top_p", PGD_CFG_NUM, 0, 1, NULL, "1", "1 = off"},
    {"sampling", "n", PGD_CFG_INT, 1, 64, NULL, "1", "parallel samples per request (sharing the prompt's KV blocks)"},
    {"sampling", "beam_width", PGD_CFG_INT, 0, 64, NULL, "0",
     "beam search width (0 = off; needs a KV manager that can fork: paged)"},

    {"workload", "source", PGD_CFG_CHOICE, 0, 0, "synthetic|trace|dataset", "synthetic", "where requests come from"},
    {"workload", "num_requests", PGD_CFG_INT, 0, 10000000, NULL, "0",
     "requests (synthetic: 0 = 100, or enough for duration; trace/dataset: 0 = all rows)"},
    {"workload", "duration", PGD_CFG_NUM, 0, BIG, NULL, "0",
     "only requests arriving in the first DURATION seconds are sent (0 = no limit)"},
    {"workload", "sample", PGD_CFG_BOOL, 0, 0, NULL, "off",
     "trace/dataset: a seeded random sample of num_requests rows"},
    {"workload", "input_len", PGD_CFG_CHOICE, 0, 0, "sharegpt|alpaca|fixed|uniform|normal|lognormal", "sharegpt",
     "prompt length distribution"},
    {"workload", "input_mean", PGD_CFG_NUM, 0, BIG, NULL, "0", "fixed/normal/lognormal mean"},
    {"workload", "input_stddev", PGD_CFG_NUM, 0, BIG, NULL, "0", "normal/lognormal standard deviation"},
    {"workload", "input_min", PGD_CFG_INT, 0, 1 << 24, NULL, "0", "uniform lower bound, else clamp (0 = none)"},
    {"workload", "input_max", PGD_CFG_INT, 0, 1 << 24, NULL, "0", "uniform upper bound, else clamp (0 = none)"},
    {"workload", "output_len", PGD_CFG_CHOICE, 0, 0, "sharegpt|alpaca|fixed|uniform|normal|lognormal", "sharegpt",
     "output length distribution"},
    {"workload", "output_mean", PGD_CFG_NUM, 0, BIG, NULL, "0", "fixed/normal/lognormal mean"},
    {"workload", "output_stddev", PGD_CFG_NUM, 0, BIG, NULL, "0", "normal/lognormal standard deviation"},
    {"workload", "output_min", PGD_CFG_INT, 0, 1 << 24, NULL, "0", "uniform lower bound, else clamp (0 = none)"},
    {"workload", "output_max", PGD_CFG_INT, 0, 1 << 24, NULL, "0", "uniform upper bound, else clamp (0 = none)"},
    {"workload", "override_output_len", PGD_CFG_BOOL, 0, 0, NULL, "off",
     "dataset: draw outputs from output_len even where given"},
    {"workload", "shared_prefix_len", PGD_CFG_INT, 0, 1 << 20, NULL, "0", "tokens common to every prompt"},
    {"workload", "num_priorities", PGD_CFG_INT, 0, 1 << 20, NULL, "0", "priorities uniform in [0, n)"},
    {"workload", "arrival", PGD_CFG_CHOICE, 0, 0, "default|poisson|gamma|all-at-once|closed-loop|trace", "default",
     "arrival process (default: trace timestamps, else poisson at a finite rate, else all at once)"},
    {"workload", "rate", PGD_CFG_NUM, 1e-9, INFINITY, NULL, "inf",
     "requests/s (inf = all at t = 0); on a trace: its timestamps rescaled to this mean rate"},
    {"workload", "burstiness", PGD_CFG_NUM, 1e-9, BIG, NULL, "1", "gamma shape (1 = Poisson)"},
    {"workload", "concurrency", PGD_CFG_INT, 0, 1 << 20, NULL, "0", "max requests in flight (closed loop: required)"},
    {"workload", "path", PGD_CFG_FILE, 0, 0, NULL, "", "trace or dataset file"},
    {"workload", "trace_format", PGD_CFG_CHOICE, 0, 0, "auto|azure|vidur|lengths|mooncake", "auto",
     "trace file format"},
    {"workload", "dataset_format", PGD_CFG_CHOICE, 0, 0, "auto|sharegpt|alpaca|mtbench", "auto", "dataset file format"},
    {"workload", "time_scale", PGD_CFG_NUM, 1e-9, BIG, NULL, "1", "trace arrivals multiplied by this"},
    {"workload", "client_rates", PGD_CFG_STR, 0, 0, NULL, "",
     "client mix: requests/s of each client's own arrivals, e.g. 2, 0.5 (empty = one client)"},
    {"workload", "client_burstiness", PGD_CFG_STR, 0, 0, NULL, "",
     "gamma shape of each client's arrivals (1 = Poisson, < 1 bursty; empty = 1 each)"},
    {"workload", "client_classes", PGD_CFG_STR, 0, 0, NULL, "",
     "SLO class of each client's requests (0 = most urgent; empty = 0 each)"},
    {"workload", "turns", PGD_CFG_INT, -1, 4096, NULL, "1",
     "turns per conversation: 1 = single-turn; synthetic: >= 2 turns each; dataset: -1 = every turn, k = at most k"},
    {"workload", "think_time", PGD_CFG_NUM, 0, BIG, NULL, "0",
     "multi-turn: seconds between a turn's finish and the next turn"},
    {"workload", "max_history", PGD_CFG_INT, 0, 1 << 24, NULL, "0",
     "multi-turn: a turn's prompt keeps the last N tokens of history + message (0 = up to the context)"},

    {"cluster", "replicas", PGD_CFG_INT, 1, 1024, NULL, "1",
     "engines behind a router (data parallel; 1 = one engine, no router): each its own executor (sim: its own device)"},
    {"cluster", "router", PGD_CFG_ROUTER, 0, 0, NULL, "round-robin",
     "how requests are spread over the replicas: a registered router (`pagoda run --help` lists them)"},
    {"cluster", "prefill", PGD_CFG_INT, 0, 512, NULL, "0",
     "P/D disaggregation: replicas that only prefill (with decode > 0; replicas = prefill + decode)"},
    {"cluster", "decode", PGD_CFG_INT, 0, 512, NULL, "0",
     "P/D disaggregation: replicas that only decode, taking the KV handed over by the prefill ones"},
    {"cluster", "kv_link_gbps", PGD_CFG_NUM, 0.001, 1e6, NULL, "2400",
     "P/D on the sim: KV link bandwidth in Gbit/s (2400 = A100 NVLink, 300 GB/s one way, as DistServe's "
     "intra-node placement; 25 = DistServe's cross-node link)"},
    {"cluster", "kv_link_latency_us", PGD_CFG_NUM, 0, 1e9, NULL, "5",
     "P/D on the sim: per-transfer KV link latency in microseconds"},
    {"cluster", "comm", PGD_CFG_CHOICE, 0, 0, "threads|mpi", "threads",
     "where the replicas run: threads of this process (the sim: one event loop), or mpi: replica r on rank r of "
     "`mpirun -np REPLICAS`"},

    {"slo", "ttft", PGD_CFG_NUM, 0, BIG, NULL, "0", "TTFT bound in seconds for goodput (0 = none)"},
    {"slo", "tpot", PGD_CFG_NUM, 0, BIG, NULL, "0", "TPOT bound in seconds (0 = none)"},
    {"slo", "e2e", PGD_CFG_NUM, 0, BIG, NULL, "0", "E2E bound in seconds (0 = none)"},
    {"slo", "class_ttft", PGD_CFG_STR, 0, 0, NULL, "",
     "TTFT target (s) of each SLO class, e.g. 0.5, 5: the slo policy's deadlines and per-class attainment"},

    {"compare", "throughput", PGD_CFG_NUM, 0, 100, NULL, "5", "max % drop of throughput/goodput metrics"},
    {"compare", "latency", PGD_CFG_NUM, 0, BIG, NULL, "10", "max % rise of latency metrics"},
    {"compare", "counts", PGD_CFG_NUM, 0, BIG, NULL, "10", "max % change for the worse of other metrics"},
    {"compare", "metrics", PGD_CFG_LIST, 0, 0, NULL, "",
     "metrics to compare (names or globs like ttft.*; empty = all)"},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL},
};

const pgd_cfg_key *pgd_config_schema(void) { return schema; }

/* Lookups go through an open-addressing hash of (section, key), built once:
 * every getter of a resolved run asks for its key by name, so a linear scan
 * made loading a config quadratic in the schema's size. */
#define KEY_SLOTS 512 /* a power of two, well above twice the schema */
_Static_assert(2 * (sizeof schema / sizeof schema[0]) <= KEY_SLOTS, "grow KEY_SLOTS with the schema");
static int16_t key_slot[KEY_SLOTS];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static uint32_t key_hash(const char *section, const char *key) {
    uint32_t h = 2166136261u; /* FNV-1a over "section\0key" */
    for (const char *p = section; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0u) * 16777619u;
    for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static void build_key_index(void) {
    for (int i = 0; i < KEY_SLOTS; i++) key_slot[i] = -1;
    for (int i = 0; schema[i].section; i++) {
        uint32_t s = key_hash(schema[i].section, schema[i].key) & (KEY_SLOTS - 1);
        while (key_slot[s] >= 0) s = (s + 1) & (KEY_SLOTS - 1);
        key_slot[s] = (int16_t)i;
    }
}

const pgd_cfg_key *pgd_config_find_key(const char *section, const char *key) {
    pthread_once(&key_once, build_key_index);
    for (uint32_t s = key_hash(section, key) & (KEY_SLOTS - 1); key_slot[s] >= 0; s = (s + 1) & (KEY_SLOTS - 1)) {
        const pgd_cfg_key *k = &schema[key_slot[s]];
        if (!strcmp(k->key, key) && !strcmp(k->section, section)) return k;
    }
    return NULL;
}

int pgd_config_parse_bool(const char *v, int *out) {
    static const char *yes[] = {"on", "true", "yes", "1"}, *no[] = {"off", "false", "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(v, yes[i])) return *out = 1, 1;
        if (!strcmp(v, no[i])) return *out = 0, 1;
    }
    return 0;
}

int pgd_config_parse_size(const char *v, size_t *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end), mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576.0, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824.0, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (errno || end == v || *end || !(x > 0) || x * mul > 1e15) return 0;
    *out = (size_t)(x * mul);
    return 1;
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static pgd_status check_list_words(const char *v) {
    for (const char *p = v; *p; p++)
        if (!(p[0] == ',' || p[0] == ' ' || p[0] == '.' || p[0] == '_' || p[0] == '-' || p[0] == '*' ||
              (p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= '0' && p[0] <= '9')))
            return pgd_error(PGD_ERR_INVALID, "expected a comma list of metric names");
    return PGD_OK;
}

static pgd_status check_file(const char *v) {
    if (access(v, R_OK) != 0) return pgd_error(PGD_ERR_INVALID, "cannot read file: %s", strerror(errno));
    return PGD_OK;
}

pgd_status pgd_config_check_value(const pgd_cfg_key *k, const char *v) {
    char *end;
    switch (k->type) {
    case PGD_CFG_STR: return PGD_OK;
    case PGD_CFG_LIST: return check_list_words(v);
    case PGD_CFG_NAME:
        if (!*v) return pgd_error(PGD_ERR_INVALID, "must not be empty");
        for (const char *p = v; *p; p++)
            if (!(*p == '.' || *p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9')))
                return pgd_error(PGD_ERR_INVALID, "must use only letters, digits, '.', '_' and '-'");
        return PGD_OK;
    case PGD_CFG_INT: {
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < (long)k->lo || x > (long)k->hi)
            return pgd_error(PGD_ERR_INVALID, "expected an integer in %.0f..%.0f", k->lo, k->hi);
        return PGD_OK;
    }
    case PGD_CFG_U64:
        errno = 0;
        (void)strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-')
            return pgd_error(PGD_ERR_INVALID, "expected a non-negative integer");
        return PGD_OK;
    case PGD_CFG_NUM: {
        int allow_inf = isinf(k->hi);
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || isnan(x) || (!allow_inf && isinf(x)) || x < k->lo || x > k->hi) {
            if (allow_inf) return pgd_error(PGD_ERR_INVALID, "expected a number >= %g or 'inf'", k->lo);
            return pgd_error(PGD_ERR_INVALID, "expected a number in %g..%g", k->lo, k->hi);
        }
        return PGD_OK;
    }
    case PGD_CFG_SIZE: {
        size_t s;
        if (!*v || pgd_config_parse_size(v, &s)) return PGD_OK;
        return pgd_error(PGD_ERR_INVALID, "expected a positive size like 64M or 2G");
    }
    case PGD_CFG_BOOL: {
        int b;
        if (pgd_config_parse_bool(v, &b)) return PGD_OK;
        return pgd_error(PGD_ERR_INVALID, "expected on or off");
    }
    case PGD_CFG_CHOICE:
        if (in_choices(k->choices, v)) return PGD_OK;
        {
            char list[512], hint[128] = "";
            const char *words[64];
            size_t nw = 0;
            snprintf(list, sizeof list, "%s", k->choices);
            for (char *save = NULL, *w = strtok_r(list, "|", &save); w && nw < 64; w = strtok_r(NULL, "|", &save))
                words[nw++] = w;
            const char *best = pgd_suggest(v, words, nw);
            if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            return pgd_error(PGD_ERR_INVALID, "expected one of %s%s", k->choices, hint);
        }
    case PGD_CFG_POLICY: {
        char names[256] = "", hint[96] = "";
        for (const char *const *p = pgd_policy_names(); *p; p++) {
            if (!strcmp(*p, v)) return PGD_OK;
            if (names[0]) strncat(names, "|", sizeof names - strlen(names) - 1);
            strncat(names, *p, sizeof names - strlen(names) - 1);
        }
        const char *best = pgd_suggest(v, pgd_policy_names(), (size_t)-1);
        if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        return pgd_error(PGD_ERR_INVALID, "unknown policy%s (choices: %s)", hint, names);
    }
    case PGD_CFG_KV: {
        char names[256], hint[96] = "";
        if (pgd_kv_manager_find(v, NULL) == PGD_OK) return PGD_OK;
        const char *best = pgd_suggest(v, pgd_kv_manager_names(), (size_t)-1);
        if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        return pgd_error(PGD_ERR_INVALID, "unknown KV manager%s (choices: %s)", hint,
                         pgd_names_join(pgd_kv_manager_names(), "|", names, sizeof names));
    }
    case PGD_CFG_ROUTER: {
        char names[256], hint[96] = "";
        if (pgd_router_find(v)) return PGD_OK;
        const char *best = pgd_suggest(v, pgd_router_names(), (size_t)-1);
        if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        return pgd_error(PGD_ERR_INVALID, "unknown router%s (choices: %s)", hint,
                         pgd_names_join(pgd_router_names(), "|", names, sizeof names));
    }
    case PGD_CFG_MODEL:
        if (!strncmp(v, "random:", 7)) {
            pgd_model_config mc;
            if (pgd_model_shape(v + 7, &mc) != PGD_OK)
                return pgd_error(PGD_ERR_INVALID, "bad random model shape: %s", pgd_last_error());
            return PGD_OK;
        }
        if (!*v) return pgd_error(PGD_ERR_INVALID, "must not be empty");
        return check_file(v);
    case PGD_CFG_FILE:
        return *v ? check_file(v) : PGD_OK; /* "" = unset */
    }
    return pgd_error(PGD_ERR_INVALID, "unknown key type");
}
