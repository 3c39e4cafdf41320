/* test_scheduler.c - the scheduler with the real KV managers and a mock
 * forward pass (no model): randomized runs with requests arriving over
 * time, for every policy x preemption mode x chunked prefill x manager
 * kind, checking after every step that
 *  - the token budget and max_num_seqs hold, items compute exactly the
 *    tokens after each sequence's computed prefix, block tables cover them;
 *  - a simulated KV memory (token ids written per slot, with the plan's
 *    copies and swaps applied in order) holds every scheduled sequence's
 *    whole context: so CoW, swap out/in and prefix-cache hits return the
 *    right data ("swapped sequences return intact");
 *  - pgd_kv_check passes (ref counts, free lists);
 * and at the end that every request finished exactly once and every block
 * is free again. A burst variant sends forked groups (2-4 parallel samples
 * with long outputs) all at once: it must never stall (plans empty while
 * work is left: a recomputed forked group larger than a step's token
 * budget used to block the queue for ever) nor drop a group that fits the
 * cache when its prompt is shared, and its recompute waste is bounded.
 * The same runs with K = 2 and 3 batches in flight (a plan's sampling waits
 * for K - 1 more plans, as under pipeline stages or async scheduling): a
 * group is never in two in-flight plans, never preempted or freed while in
 * flight, and the same invariants hold.
 * Plus small deterministic cases for policies and limits, a long prompt
 * that must not wait behind the running decodes, and plans balanced over
 * the batches in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda/scheduler.h"
#include "test_util.h"

enum { BS = 8, NBLK = 48, NHOST = 96, CTX = 128, MAXSEQS = 8, NREQ = 400, NBURST = 60 };

typedef struct mreq {
    int out_len, n, done, dropped;
    int in_flight, abort_pending;
    int gen[4];
    pgd_sched_group *g;
} mreq;

/* Client mix of the randomized runs: 0 = three clients in turn; 1 = two
 * clients, client 0 sending three requests to client 1's one (the VTC
 * bound test). Service per client is counted from the plans with VTC's
 * weights (1 per prompt token, 2 per generated token); vtc_maxdiff is the
 * largest service difference seen over an interval in which both clients
 * stayed backlogged. */
static int client_mix;
static long vtc_maxdiff;

static uint64_t rng_state;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static int32_t dev[NBLK][BS], host[NHOST][BS];
static long n_ops[3], n_hits;

static int seq_slot(const pgd_sched_seq *q) { return (int)(intptr_t)q->user; }

/* A plan in flight: what its sampling needs once it lands. */
enum { MAXK = 4 };
typedef struct flight_item {
    int64_t req;
    pgd_sched_seq *seq;
    int sample, len;
} flight_item;
typedef struct flight {
    int n;
    flight_item it[MAXSEQS];
} flight;

/* One randomized run; returns the number of preemptions seen. burst: NBURST
 * forked groups at step 0 instead of NREQ requests over time. */
static void mock_sample(pgd_scheduler *s, mreq *R, int added, const flight *f, int *finished, int *bad);

static long run_random(const char *kind, int prefix, const char *policy, pgd_preempt_mode mode, int chunked,
                       uint64_t seed, int burst, int K) {
    rng_state = seed;
    pgd_kv_manager_config kc = {.name = kind,
                                .block_size = BS,
                                .num_blocks = NBLK,
                                .num_host_blocks = NHOST,
                                .max_seq_len = CTX,
                                .prefix_caching = prefix};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_kv_caps caps = pgd_kv_manager_caps(kv);
    pgd_sched_config sc = {.max_num_batched_tokens = chunked ? 40 : CTX, .max_num_seqs = MAXSEQS,
                           .policy = policy, .preemption = mode, .chunked_prefill = chunked, .max_seq_len = CTX,
                           .max_in_flight = K};
    pgd_scheduler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int free0 = pgd_kv_free_blocks(kv);
    static mreq R[NREQ];
    memset(R, 0, sizeof R);
    memset(dev, 0xff, sizeof dev);
    int added = 0, finished = 0, step = 0, bad = 0, nreq = burst ? NBURST : NREQ, idle = 0;
    static flight fl[MAXK];
    int fl_head = 0, fl_n = 0;
    long tokens = 0, useful = 0, served[2] = {0, 0}, w0[2] = {0, 0};
    int in_both = 0;
    int32_t prompt[CTX];
    while ((added < nreq || finished < added) && step < 30000 && !bad) {
        /* arrivals: a few per step early on (burst: all at once) */
        int arrivals = burst ? (step == 0 ? NBURST : 0)
                             : added < NREQ && rnd() % 4 == 0 ? 1 + (int)(rnd() % 2) * (step % 50 < 5) * 3 : 0;
        for (int a = 0; a < arrivals && added < nreq; a++) {
            mreq *m = &R[added];
            int np = 1 + (int)(rnd() % 60), shared = (int)(rnd() % 4) * 8;
            for (int i = 0; i < np; i++) prompt[i] = i < shared ? 1000 + i : (int32_t)(rnd() % 500);
            int max_new = 1 + (int)(rnd() % 50);
            if (np + max_new > CTX) max_new = CTX - np + 1;
            m->out_len = 1 + (int)(rnd() % (unsigned)max_new);
            m->n = caps & PGD_KV_CAN_FORK && rnd() % 5 == 0 ? 2 : 1;
            if (burst) { /* 2-4 samples, long outputs, prompt + all outputs within 4/5 of the cache */
                m->n = 2 + (int)(rnd() % 3);
                np = 8 + (int)(rnd() % 56);
                max_new = CTX - np + 1;
                if (np + m->n * max_new > (NBLK - 1) * BS * 4 / 5) max_new = ((NBLK - 1) * BS * 4 / 5 - np) / m->n;
                m->out_len = max_new / 2 + 1 + (int)(rnd() % (unsigned)(max_new / 2));
                if (m->out_len > max_new) m->out_len = max_new;
            }
            useful += np + (long)m->n * (m->out_len - 1);
            pgd_sched_request r = {.id = added, .prompt = prompt, .n_prompt = np, .max_new_tokens = max_new,
                                   .true_output_len = m->out_len, .priority = (int)(rnd() % 3),
                                   .arrival = step, .num_seqs = 1, .max_seqs = m->n,
                                   /* clients, SLO classes and deadlines without drawing from rnd() */
                                   .client = client_mix ? added % 4 == 3 : added % 3,
                                   .slo_class = added / 3 % 2, .ttft_deadline = step + added * 7 % 50};
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, &m->g), PGD_OK);
            m->g->seqs[0]->user = (void *)(intptr_t)0;
            added++;
        }
        /* occasional abort */
        if (step % 97 == 50) {
            int i = (int)(rnd() % (unsigned)(added ? added : 1));
            if (i < added && !R[i].done && !R[i].abort_pending) {
                if (R[i].in_flight) { /* removed when its batch lands */
                    R[i].abort_pending = 1;
                } else {
                    pgd_scheduler_remove(s, R[i].g);
                    R[i].done = 1;
                    finished++;
                }
            }
        }
        int running_before = pgd_scheduler_num_running(s);
        int backlog[2] = {0, 0};
        for (int i = 0; i < added && client_mix; i++)
            if (!R[i].done && R[i].g->state == PGD_SCHED_WAITING) backlog[R[i].g->client]++;
        const pgd_sched_plan *p = NULL;
        pgd_status st = pgd_scheduler_step(s, &p);
        CU_ASSERT_EQUAL_FATAL(st, PGD_OK);
        step++;
        if (client_mix) { /* the VTC bound: service difference while both are backlogged */
            if (!(backlog[0] && backlog[1])) in_both = 0;
            else if (!in_both) in_both = 1, w0[0] = served[0], w0[1] = served[1];
            for (int i = 0; i < p->num_items; i++) {
                const pgd_sched_item *it = &p->items[i];
                int dec = it->num_new_tokens == 1 && it->start >= it->group->prompt_len;
                served[it->group->client] += dec ? 2 : it->num_new_tokens;
            }
            long d = labs((served[0] - w0[0]) - (served[1] - w0[1]));
            if (in_both && d > vtc_maxdiff) vtc_maxdiff = d;
        }
        if (!strcmp(policy, "sarathi") && chunked) { /* the long-prefill cap and the partial-prefill limit */
            for (int i = 0; i < p->num_items; i++)
                if (p->items[i].group->num_seqs == 1 && p->items[i].num_new_tokens > sc.max_num_batched_tokens / 4)
                    bad = 11;
            int partial = 0;
            for (int i = 0; i < added; i++)
                if (!R[i].done && R[i].g->state == PGD_SCHED_RUNNING && R[i].g->num_seqs == 1 &&
                    R[i].g->seqs[0]->computed < R[i].g->seqs[0]->len - 1)
                    partial++;
            if (mode == PGD_PREEMPT_RECOMPUTE && partial > 4) bad = 12;
        }
        if (caps & PGD_KV_STATIC_BATCH && p->num_admitted > 0 && running_before > 0) bad = 1;
        /* progress: a few empty plans in a row with work left (and nothing in flight) is a stall */
        idle = p->num_items == 0 && p->num_dropped == 0 && fl_n == 0 && pgd_scheduler_has_unfinished(s) ? idle + 1
                                                                                                         : 0;
        /* in flight: never in two plans, never preempted while out */
        for (int i = 0; i < p->num_items; i++)
            if (R[p->items[i].group->id].in_flight) bad = 8;
        for (int i = 0; i < p->num_preempted; i++)
            if (R[p->preempted[i]->id].in_flight) bad = 9;
        if (idle > 3) bad = 7;
        if (p->num_tokens > sc.max_num_batched_tokens || p->num_items > MAXSEQS) bad = 2;
        for (int i = 0; i < p->num_dropped; i++) {
            mreq *m = &R[p->dropped[i]->id];
            m->done = m->dropped = 1;
            finished++;
            pgd_scheduler_remove(s, p->dropped[i]);
        }
        /* apply the ops in order, then write the new tokens */
        for (int i = 0; i < p->num_ops; i++) {
            const pgd_sched_op *o = &p->ops[i];
            n_ops[o->kind]++;
            if (o->kind == PGD_OP_COPY) memcpy(dev[o->dst], dev[o->src], sizeof dev[0]);
            else if (o->kind == PGD_OP_SWAP_OUT) memcpy(host[o->dst], dev[o->src], sizeof dev[0]);
            else memcpy(dev[o->dst], host[o->src], sizeof dev[0]);
        }
        int sum = 0;
        for (int i = 0; i < p->num_items; i++) {
            const pgd_sched_item *it = &p->items[i];
            sum += it->num_new_tokens;
            if (it->num_new_tokens < 1 || it->start + it->num_new_tokens > it->seq->len ||
                it->seq->computed != it->start + it->num_new_tokens || it->n_blocks * BS < it->seq->computed)
                bad = 3;
            for (int j = it->start; j < it->start + it->num_new_tokens && !bad; j++)
                dev[it->block_table[j / BS]][j % BS] = it->seq->tokens[j];
        }
        if (sum != p->num_tokens) bad = 4;
        for (int i = 0; i < p->num_items && !bad; i++) { /* the whole context is in place */
            const pgd_sched_item *it = &p->items[i];
            for (int j = 0; j < it->seq->computed; j++)
                if (dev[it->block_table[j / BS]][j % BS] != it->seq->tokens[j]) {
                    fprintf(stderr, "seq %lld pos %d: cache %d, token %d\n", (long long)it->seq->id, j,
                            dev[it->block_table[j / BS]][j % BS], it->seq->tokens[j]);
                    bad = 5;
                    break;
                }
        }
        if (pgd_kv_check(kv) != PGD_OK) {
            fprintf(stderr, "kv check: %s\n", pgd_last_error());
            bad = 6;
        }
        /* the plan goes in flight; the oldest lands (is sampled) once K are out,
         * or when nothing new was planned */
        if (p->num_items > 0) {
            flight *f = &fl[(fl_head + fl_n) % K];
            f->n = 0;
            for (int i = 0; i < p->num_items; i++) {
                const pgd_sched_item *it = &p->items[i];
                if (!R[it->group->id].in_flight) R[it->group->id].in_flight = 1;
                f->it[f->n++] = (flight_item){.req = it->group->id, .seq = it->seq, .sample = it->sample,
                                              .len = it->seq->len};
            }
            fl_n++;
        }
        while (fl_n > 0 && (fl_n == K || p->num_items == 0) && !bad) {
            flight *f = &fl[fl_head];
            fl_head = (fl_head + 1) % K;
            fl_n--;
            mock_sample(s, R, added, f, &finished, &bad);
            if (p->num_items == 0) break;
        }
        /* a forked child that got its first token above may already be complete */
        for (int i = 0; i < added; i++) {
            mreq *m = &R[i];
            if (m->done || m->in_flight || m->g->state != PGD_SCHED_RUNNING) continue;
            for (int j = 0; j < m->g->num_seqs; j++) {
                int k = seq_slot(m->g->seqs[j]);
                if (m->gen[k] >= m->out_len) pgd_scheduler_free_seq(s, m->g, m->g->seqs[j--]);
            }
            if (m->g->num_seqs == 0) {
                pgd_scheduler_remove(s, m->g);
                m->done = 1;
                finished++;
            }
        }
        tokens += p->num_tokens;
    }
    if (bad)
        fprintf(stderr, "\n%s/%s/%s/chunked=%d/prefix=%d/K=%d: check %d failed at step %d\n", kind, policy,
                mode == PGD_PREEMPT_SWAP ? "swap" : "recompute", chunked, prefix, K, bad, step);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(added, nreq);
    CU_ASSERT_EQUAL(finished, nreq);
    int dropped = 0;
    for (int i = 0; i < nreq; i++) dropped += R[i].dropped;
    CU_ASSERT_EQUAL(dropped, 0);
    CU_ASSERT_FALSE(pgd_scheduler_has_unfinished(s));
    CU_ASSERT(burst || step > 1000);
    if (burst) { /* recomputation stays a fraction of the useful work */
        if (tokens > 3 * useful)
            fprintf(stderr, "\n%s/%s/chunked=%d/prefix=%d: %ld tokens computed for %ld useful\n", policy,
                    mode == PGD_PREEMPT_SWAP ? "swap" : "recompute", chunked, prefix, tokens, useful);
        CU_ASSERT(tokens <= 3 * useful);
    }
    long pre = (long)pgd_scheduler_total_preemptions(s);
    pgd_scheduler_destroy(s);
    pgd_kv_stats ks;
    pgd_kv_get_stats(kv, &ks);
    n_hits += ks.prefix_hits;
    CU_ASSERT_EQUAL(ks.num_seqs, 0);
    CU_ASSERT_EQUAL(ks.host_blocks_used, 0);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(kv), free0);
    CU_ASSERT_EQUAL(pgd_kv_check(kv), PGD_OK);
    pgd_kv_manager_destroy(kv);
    return pre;
}

/* The oldest in-flight plan lands: sample its items, then report its
 * groups landed (an abort that came meanwhile removes the group now). */
static void mock_sample(pgd_scheduler *s, mreq *R, int added, const flight *f, int *finished, int *bad) {
    (void)added;
    for (int i = 0; i < f->n && !*bad; i++) {
        const flight_item *fi = &f->it[i];
        mreq *m = &R[fi->req];
        if (m->done || m->abort_pending || !fi->sample) continue;
        pgd_sched_group *g = m->g;
        pgd_sched_seq *q = fi->seq;
        if (g->state != PGD_SCHED_RUNNING || q->len != fi->len) *bad = 10; /* changed while in flight */
        if (m->n > 1 && g->num_seqs == 1 && m->gen[0] == 0 && m->gen[1] == 0 && q->len == g->prompt_len) {
            for (int k = 1; k < m->n; k++) { /* each sample's first token differs */
                pgd_sched_seq *c = NULL;
                CU_ASSERT_EQUAL_FATAL(pgd_scheduler_fork(s, g, q, &c), PGD_OK);
                c->user = (void *)(intptr_t)k;
                int32_t tk = (int32_t)((g->id * 31 + k * 7 + 1) % 500);
                m->gen[k]++;
                CU_ASSERT_EQUAL(pgd_scheduler_append(s, c, tk), PGD_OK);
            }
        }
        int k = seq_slot(q);
        int32_t tk = (int32_t)((g->id * 31 + k * 7 + m->gen[k] * 13) % 500);
        if (++m->gen[k] >= m->out_len) pgd_scheduler_free_seq(s, g, q);
        else CU_ASSERT_EQUAL(pgd_scheduler_append(s, q, tk), PGD_OK);
    }
    for (int i = 0; i < f->n; i++) {
        mreq *m = &R[f->it[i].req];
        if (!m->in_flight) continue;
        m->in_flight = 0;
        if (m->done) continue;
        pgd_scheduler_landed(s, m->g);
        if (m->abort_pending) {
            pgd_scheduler_remove(s, m->g);
            m->done = 1;
            (*finished)++;
        }
    }
}

static void run_kind(const char *kind, int prefix) {
    long pre = 0;
    memset(n_ops, 0, sizeof n_ops);
    n_hits = 0;
    uint64_t seed = 1;
    for (const char *const *pol = pgd_policy_names(); *pol; pol++)
        for (int mode = 0; mode < 2; mode++)
            for (int chunked = 0; chunked < 2; chunked++)
                pre += run_random(kind, prefix, *pol, (pgd_preempt_mode)mode, chunked, seed++ * 7919, 0, 1);
    fprintf(stderr, "[%s%s: %ld preemptions, %ld swap-outs, %ld swap-ins, %ld CoW copies, %ld prefix hits] ", kind,
            prefix ? "+prefix" : "", pre, n_ops[PGD_OP_SWAP_OUT], n_ops[PGD_OP_SWAP_IN], n_ops[PGD_OP_COPY], n_hits);
    pgd_kv_caps caps = 0;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_find(kind, &caps), PGD_OK);
    if (caps & PGD_KV_CAN_FORK && caps & PGD_KV_CAN_SWAP) { /* the runs really preempted, swapped and copied */
        CU_ASSERT(pre > 20);
        CU_ASSERT(n_ops[PGD_OP_SWAP_OUT] > 0 && n_ops[PGD_OP_SWAP_IN] > 0 && n_ops[PGD_OP_COPY] > 0);
        CU_ASSERT(!prefix || n_hits > 0);
    }
}

/* K batches in flight, for the paged manager (with and without prefix
 * caching, where forks, swaps and CoW happen) and Orca-Oracle. */
static void test_random_in_flight(void) {
    long pre = 0;
    uint64_t seed = 3;
    static const char *const kinds[] = {"paged", "paged", "orca-oracle"};
    for (int K = 2; K <= 3; K++)
        for (int ki = 0; ki < 3; ki++)
            for (const char *const *pol = pgd_policy_names(); *pol; pol++)
                for (int mode = 0; mode < 2; mode++, seed++)
                    pre += run_random(kinds[ki], ki == 1, *pol, (pgd_preempt_mode)mode, (int)(seed % 2),
                                      seed * 6151, 0, K);
    fprintf(stderr, "[in flight: %ld preemptions] ", pre);
    CU_ASSERT(pre > 20);
}

/* Every registered KV manager (a new one is picked up here without a line
 * of test code), with prefix caching on as well where it can cache. */
static void test_random_every_kv_manager(void) {
    int n = 0;
    for (const char *const *kind = pgd_kv_manager_names(); *kind; kind++, n++) {
        pgd_kv_caps caps = 0;
        CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_find(*kind, &caps), PGD_OK);
        run_kind(*kind, 0);
        if (caps & PGD_KV_CAN_CACHE_PREFIX) run_kind(*kind, 1);
    }
    CU_ASSERT(n >= 5);
}

/* Forked groups all at once, every policy x preemption mode x chunked
 * prefill x prefix caching, several seeds. */
static void test_forked_burst(void) {
    long pre = 0;
    uint64_t seed = 11;
    memset(n_ops, 0, sizeof n_ops);
    for (int rep = 0; rep < 3; rep++)
        for (const char *const *pol = pgd_policy_names(); *pol; pol++)
            for (int m = 0; m < 8; m++)
                pre += run_random("paged", m >> 2 & 1, *pol, (pgd_preempt_mode)(m & 1), m >> 1 & 1, seed++ * 104729, 1,
                                  rep == 2 ? 2 : 1); /* the last round with 2 in flight */
    fprintf(stderr, "[forked bursts: %ld preemptions, %ld swap-outs, %ld CoW copies] ", pre,
            n_ops[PGD_OP_SWAP_OUT], n_ops[PGD_OP_COPY]);
    CU_ASSERT(pre > 20); /* the bursts really preempted forked groups */
}

/* Admission order of four waiting requests under a policy with room for one at a time. */
static void admission_order(const char *policy, int *order) {
    pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 64, .max_seq_len = 64};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_sched_config sc = {.max_num_batched_tokens = 64, .max_num_seqs = 1, .policy = policy, .max_seq_len = 64};
    pgd_scheduler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int32_t prompt[60] = {0};
    /* id: prompt len, priority, true output length */
    static const int spec[4][3] = {{40, 2, 3}, {10, 1, 9}, {20, 0, 1}, {5, 1, 5}};
    for (int i = 0; i < 4; i++) {
        pgd_sched_request r = {.id = i, .prompt = prompt, .n_prompt = spec[i][0], .max_new_tokens = 2,
                               .priority = spec[i][1], .true_output_len = !strcmp(policy, "sjf") ? spec[i][2] : 0,
                               .arrival = i, .num_seqs = 1, .max_seqs = 1};
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    }
    for (int k = 0; k < 4; k++) {
        const pgd_sched_plan *p = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
        CU_ASSERT_EQUAL_FATAL(p->num_items, 1);
        pgd_sched_group *g = p->items[0].group;
        order[k] = (int)g->id;
        pgd_scheduler_remove(s, g);
    }
    pgd_scheduler_destroy(s);
    pgd_kv_manager_destroy(kv);
}

static void test_policy_orders(void) {
    int o[4];
    admission_order("fcfs", o);
    CU_ASSERT(o[0] == 0 && o[1] == 1 && o[2] == 2 && o[3] == 3);
    admission_order("priority", o);
    CU_ASSERT(o[0] == 2 && o[1] == 1 && o[2] == 3 && o[3] == 0);
    admission_order("sjf", o); /* true output lengths 3, 9, 1, 5 */
    CU_ASSERT(o[0] == 2 && o[1] == 0 && o[2] == 3 && o[3] == 1);
    admission_order("mlfq", o); /* levels by prompt: 40 -> 1, others 0 */
    CU_ASSERT(o[0] == 1 && o[1] == 2 && o[2] == 3 && o[3] == 0);
}

static void test_bad_config_and_requests(void) {
    pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 9, .max_seq_len = 64};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_scheduler *s = NULL;
    pgd_sched_config bad = {.max_num_batched_tokens = 64, .max_num_seqs = 4, .policy = "nope", .max_seq_len = 64};
    CU_ASSERT_EQUAL(pgd_scheduler_create(&bad, kv, &s), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "nope"));
    bad.policy = "fcfs";
    bad.max_num_batched_tokens = 32; /* < context with chunked prefill off */
    CU_ASSERT_EQUAL(pgd_scheduler_create(&bad, kv, &s), PGD_ERR_INVALID);
    pgd_sched_config sc = {.max_num_batched_tokens = 64, .max_num_seqs = 4, .max_seq_len = 64};
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int32_t prompt[100] = {0};
    pgd_sched_request r = {.id = 1, .prompt = prompt, .n_prompt = 65, .max_new_tokens = 1};
    CU_ASSERT_EQUAL(pgd_scheduler_add(s, &r, NULL), PGD_ERR_INVALID); /* beyond the context */
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "context"));
    r.n_prompt = 40; /* 10 blocks > 8 usable */
    CU_ASSERT_EQUAL(pgd_scheduler_add(s, &r, NULL), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "blocks"));
    r.n_prompt = 4;
    r.max_seqs = 5;
    CU_ASSERT_EQUAL(pgd_scheduler_add(s, &r, NULL), PGD_ERR_INVALID);
    /* a request that outgrows the whole cache alone is dropped with a reason */
    r.max_seqs = 1;
    r.n_prompt = 30;
    r.max_new_tokens = 30;
    pgd_sched_group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, &g), PGD_OK);
    int dropped = 0;
    for (int step = 0; step < 40 && !dropped; step++) {
        const pgd_sched_plan *p = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
        if (p->num_dropped) {
            dropped = 1;
            CU_ASSERT_PTR_NOT_NULL(strstr(p->dropped[0]->error, "blocks"));
            pgd_scheduler_remove(s, p->dropped[0]);
            break;
        }
        for (int i = 0; i < p->num_items; i++)
            if (p->items[i].sample) pgd_scheduler_append(s, p->items[i].seq, 5);
    }
    CU_ASSERT(dropped);
    CU_ASSERT_EQUAL(pgd_kv_free_blocks(kv), 8);
    pgd_scheduler_destroy(s);
    pgd_kv_manager_destroy(kv);
}

/* A prompt that fits a step's budget but not next to the running decodes
 * (chunked prefill off) is admitted within two steps, ahead of the
 * decodes, instead of waiting for every running request to finish. */
static void test_long_prompt_not_starved(void) {
    pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 200, .max_seq_len = 64};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_sched_config sc = {.max_num_batched_tokens = 64, .max_num_seqs = 8, .max_seq_len = 64};
    pgd_scheduler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int32_t prompt[64] = {0};
    for (int i = 0; i < 4; i++) { /* four short requests with long outputs */
        pgd_sched_request r = {.id = i, .prompt = prompt, .n_prompt = 4, .max_new_tokens = 50, .num_seqs = 1,
                               .max_seqs = 1};
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    }
    int admitted_at = -1;
    for (int step = 0; step < 40 && admitted_at < 0; step++) {
        if (step == 2) { /* 62 tokens: fits 64, not 64 minus 4 decodes */
            pgd_sched_request r = {.id = 9, .prompt = prompt, .n_prompt = 62, .max_new_tokens = 2, .num_seqs = 1,
                                   .max_seqs = 1};
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
        }
        const pgd_sched_plan *p = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
        CU_ASSERT(p->num_tokens <= 64);
        for (int i = 0; i < p->num_items; i++) {
            if (p->items[i].group->id == 9) admitted_at = step;
            if (p->items[i].sample) CU_ASSERT_EQUAL(pgd_scheduler_append(s, p->items[i].seq, 5), PGD_OK);
        }
    }
    CU_ASSERT(admitted_at >= 2 && admitted_at <= 3);
    pgd_scheduler_destroy(s);
    pgd_kv_manager_destroy(kv);
}

/* With K batches in flight the plans share the requests about equally
 * (the groups split into K batches anyway; unbalanced, a pipeline idles). */
static void test_in_flight_balanced(void) {
    pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 400, .max_seq_len = 64};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_sched_config sc = {.max_num_batched_tokens = 256, .max_num_seqs = 64, .max_seq_len = 64, .max_in_flight = 4};
    pgd_scheduler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int32_t prompt[8] = {0};
    for (int i = 0; i < 40; i++) {
        pgd_sched_request r = {.id = i, .prompt = prompt, .n_prompt = 4, .max_new_tokens = 30, .num_seqs = 1,
                               .max_seqs = 1};
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    }
    /* a ring of 4 plans in flight: land the oldest, plan the next */
    pgd_sched_group *fl[4][64];
    int nfl[4] = {0}, min_seqs = 1 << 30, max_seqs = 0;
    for (int step = 0; step < 40; step++) {
        int k = step % 4;
        for (int i = 0; i < nfl[k]; i++) pgd_scheduler_landed(s, fl[k][i]);
        const pgd_sched_plan *p = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
        nfl[k] = p->num_items;
        for (int i = 0; i < p->num_items; i++) {
            fl[k][i] = p->items[i].group;
            if (p->items[i].sample) CU_ASSERT_EQUAL(pgd_scheduler_append(s, p->items[i].seq, 5), PGD_OK);
        }
        if (step >= 8) {
            if (p->num_items < min_seqs) min_seqs = p->num_items;
            if (p->num_items > max_seqs) max_seqs = p->num_items;
        }
    }
    fprintf(stderr, "[40 requests, 4 in flight: plans of %d..%d sequences] ", min_seqs, max_seqs);
    CU_ASSERT(min_seqs == 10 && max_seqs == 10);
    pgd_scheduler_destroy(s);
    pgd_kv_manager_destroy(kv);
}

/* VTC's bound (vtc.c): two clients, one sending three times as many
 * requests, both backlogged for long stretches; over every interval in
 * which both stay backlogged their services (1 per prompt token, 2 per
 * generated token) differ by at most 2U, U = max(1 * longest context,
 * 2 * KV capacity in tokens), on every manager kind, preemption mode and
 * chunked prefill setting. fcfs shows the bound is not free. */
static void test_vtc_bound(void) {
    const long U = CTX > 2 * NBLK * BS ? CTX : 2 * NBLK * BS;
    long worst = 0, fcfs_worst = 0;
    client_mix = 1;
    for (int m = 0; m < 4; m++) {
        vtc_maxdiff = 0;
        run_random("paged", m >> 1, "vtc", (pgd_preempt_mode)(m & 1), m >> 1, 31 + (uint64_t)m, 0, 1);
        if (vtc_maxdiff > worst) worst = vtc_maxdiff;
        vtc_maxdiff = 0;
        run_random("paged", m >> 1, "fcfs", (pgd_preempt_mode)(m & 1), m >> 1, 31 + (uint64_t)m, 0, 1);
        if (vtc_maxdiff > fcfs_worst) fcfs_worst = vtc_maxdiff;
    }
    vtc_maxdiff = 0;
    run_random("orca-max", 0, "vtc", PGD_PREEMPT_RECOMPUTE, 1, 77, 0, 1);
    if (vtc_maxdiff > worst) worst = vtc_maxdiff;
    client_mix = 0;
    fprintf(stderr, "[vtc: largest backlogged service gap %ld (bound 2U = %ld); fcfs %ld] ", worst, 2 * U, fcfs_worst);
    CU_ASSERT(worst <= 2 * U);
    CU_ASSERT(worst > 0);
}

/* Cache-aware: with a 32-token prefix cached, the request that shares it
 * goes first ("cache-aware": longest cached prefix), and the short prompt
 * before a long uncached one ("cache-aware-uncached"); fcfs keeps arrival
 * order. The KV query answers what add_seq then finds. */
static int first_admitted(const char *policy) {
    pgd_kv_manager_config kc = {
        .name = "paged", .block_size = 8, .num_blocks = 64, .max_seq_len = 128, .prefix_caching = 1};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    pgd_sched_config sc = {.max_num_batched_tokens = 128, .max_num_seqs = 1, .policy = policy, .max_seq_len = 128};
    pgd_scheduler *s = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
    int32_t shared[40], other[60], tiny[12];
    for (int i = 0; i < 40; i++) shared[i] = 100 + i;
    for (int i = 0; i < 60; i++) other[i] = 300 + i;
    for (int i = 0; i < 12; i++) tiny[i] = 500 + i;
    /* request 0 caches shared[0..31] and finishes */
    pgd_sched_request r = {.id = 0, .prompt = shared, .n_prompt = 33, .max_new_tokens = 1, .num_seqs = 1, .max_seqs = 1};
    pgd_sched_group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, &g), PGD_OK);
    const pgd_sched_plan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
    pgd_scheduler_remove(s, g);
    CU_ASSERT_EQUAL(pgd_kv_cached_prefix(kv, shared, 40), 32);
    CU_ASSERT_EQUAL(pgd_kv_cached_prefix(kv, shared, 32), 24); /* the last prompt token is computed */
    CU_ASSERT_EQUAL(pgd_kv_cached_prefix(kv, other, 60), 0);
    /* 1: uncached, 60 tokens; 2: shares 32 of 40; 3: uncached, 12 tokens */
    r = (pgd_sched_request){.id = 1, .prompt = other, .n_prompt = 60, .max_new_tokens = 1, .arrival = 1, .num_seqs = 1, .max_seqs = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    r = (pgd_sched_request){.id = 2, .prompt = shared, .n_prompt = 40, .max_new_tokens = 1, .arrival = 2, .num_seqs = 1, .max_seqs = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    r = (pgd_sched_request){.id = 3, .prompt = tiny, .n_prompt = 12, .max_new_tokens = 1, .arrival = 3, .num_seqs = 1, .max_seqs = 1};
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
    CU_ASSERT_EQUAL_FATAL(p->num_items, 1);
    int id = (int)p->items[0].group->id;
    if (id == 2) CU_ASSERT_EQUAL(p->items[0].start, 32); /* its cached prefix was used */
    pgd_scheduler_destroy(s);
    pgd_kv_manager_destroy(kv);
    return id;
}

static void test_cache_aware_order(void) {
    CU_ASSERT_EQUAL(first_admitted("fcfs"), 1);
    CU_ASSERT_EQUAL(first_admitted("cache-aware"), 2);
    CU_ASSERT_EQUAL(first_admitted("cache-aware-uncached"), 2); /* 8 uncached tokens < 12 < 60 */
}

/* SLO-aware: class first, then the earliest TTFT deadline; VTC: the
 * client with the least service first. */
static void test_slo_and_vtc_orders(void) {
    pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 64, .max_seq_len = 64};
    pgd_kv_manager *kv = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
    int32_t prompt[16] = {0};
    for (int pol = 0; pol < 2; pol++) {
        pgd_sched_config sc = {.max_num_batched_tokens = 64, .max_num_seqs = 1, .policy = pol ? "vtc" : "slo",
                               .max_seq_len = 64};
        pgd_scheduler *s = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
        /* id: class, deadline, client */
        static const double spec[5][3] = {{1, 5, 0}, {0, 9, 0}, {0, 7, 0}, {1, 0, 1}, {0, 0, 2}};
        for (int i = 0; i < 5; i++) {
            pgd_sched_request r = {.id = i, .prompt = prompt, .n_prompt = 8, .max_new_tokens = 2, .arrival = i,
                                   .num_seqs = 1, .max_seqs = 1, .slo_class = (int)spec[i][0],
                                   .ttft_deadline = spec[i][1], .client = (int)spec[i][2]};
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
        }
        int order[5];
        for (int k = 0; k < 5; k++) {
            const pgd_sched_plan *p = NULL;
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
            CU_ASSERT_EQUAL_FATAL(p->num_items, 1);
            order[k] = (int)p->items[0].group->id;
            pgd_scheduler_remove(s, p->items[0].group);
        }
        if (!pol) { /* class 0 by deadline (7, 9, none), then class 1 (5, none) */
            CU_ASSERT(order[0] == 2 && order[1] == 1 && order[2] == 4 && order[3] == 0 && order[4] == 3);
        } else { /* client 0 first (all counters 0: the oldest), then clients 1 and 2 (less served), then 0 */
            CU_ASSERT(order[0] == 0 && order[1] == 3 && order[2] == 4 && order[3] == 1 && order[4] == 2);
        }
        pgd_scheduler_destroy(s);
    }
    pgd_kv_manager_destroy(kv);
}

/* The decision trace: preemptions name their victim and reason, the
 * waiting head its reason, and a run writes the same trace twice. */
static void test_decision_trace(void) {
    char *text[2] = {NULL, NULL};
    for (int rep = 0; rep < 2; rep++) {
        size_t len = 0;
        FILE *f = open_memstream(&text[rep], &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        pgd_kv_manager_config kc = {.name = "paged", .block_size = 4, .num_blocks = 9, .max_seq_len = 32};
        pgd_kv_manager *kv = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_kv_manager_create(&kc, &kv), PGD_OK);
        pgd_sched_config sc = {.max_num_batched_tokens = 32, .max_num_seqs = 4, .max_seq_len = 32, .trace = f};
        pgd_scheduler *s = NULL;
        CU_ASSERT_EQUAL_FATAL(pgd_scheduler_create(&sc, kv, &s), PGD_OK);
        int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        for (int i = 0; i < 3; i++) { /* 3 x 8-token prompts growing to 20: 15 blocks wanted, 8 there */
            pgd_sched_request r = {.id = i, .prompt = prompt, .n_prompt = 8, .max_new_tokens = 12, .arrival = i,
                                   .num_seqs = 1, .max_seqs = 1};
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_add(s, &r, NULL), PGD_OK);
        }
        for (int step = 0; step < 200 && pgd_scheduler_has_unfinished(s); step++) {
            const pgd_sched_plan *p = NULL;
            CU_ASSERT_EQUAL_FATAL(pgd_scheduler_step(s, &p), PGD_OK);
            for (int i = 0; i < p->num_items; i++) {
                pgd_sched_item *it = &p->items[i];
                if (!it->sample) continue;
                if (it->seq->len >= 19) pgd_scheduler_remove(s, it->group);
                else CU_ASSERT_EQUAL(pgd_scheduler_append(s, it->seq, 9), PGD_OK);
            }
        }
        CU_ASSERT_FALSE(pgd_scheduler_has_unfinished(s));
        pgd_scheduler_destroy(s);
        pgd_kv_manager_destroy(kv);
        fclose(f);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(text[0]);
    CU_ASSERT_STRING_EQUAL(text[0], text[1]);
    if (getenv("PGD_SHOW_TRACE")) fputs(text[0], stderr);
    const char *want[] = {
        "{\"step\":1,\"batch\":[[0,0,0,8,\"prefill\"],[1,0,0,8,\"prefill\"],[2,0,0,8,\"prefill\"]],"
        "\"admitted\":[0,1,2]}\n",
        "{\"step\":2,\"batch\":[[0,0,8,1,\"decode\"],[1,0,8,1,\"decode\"]],\"preempted\":[[2,\"recompute\","
        "\"no free KV block for its own next tokens; the policy chose it\"]],"
        "\"waiting\":{\"head\":2,\"why\":\"preempted\",\"behind\":0}}\n",
        "{\"step\":3,\"batch\":[[0,0,9,1,\"decode\"],[1,0,9,1,\"decode\"]],"
        "\"waiting\":{\"head\":2,\"why\":\"kv\",\"behind\":0}}\n",
        "\"preempted\":[[1,\"recompute\",\"victim: request 0 needed KV blocks for its next tokens\"]]",
        "{\"step\":13,\"batch\":[[1,0,0,17,\"prefill\"],[2,0,0,9,\"prefill\"]],\"admitted\":[1,2]}\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(text[0], want[i])) fprintf(stderr, "\nnot in the trace: %s\n", want[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(text[0], want[i]));
    }
    free(text[0]);
    free(text[1]);
}

static CU_TestInfo tests[] = {
    {"vtc_fairness_bound", test_vtc_bound},
    {"cache_aware_orders", test_cache_aware_order},
    {"slo_and_vtc_orders", test_slo_and_vtc_orders},
    {"decision_trace", test_decision_trace},
    {"policy_admission_orders", test_policy_orders},
    {"bad_config_and_impossible_requests", test_bad_config_and_requests},
    {"random_every_kv_manager", test_random_every_kv_manager},
    {"random_with_batches_in_flight", test_random_in_flight},
    {"forked_groups_all_at_once", test_forked_burst},
    {"long_prompt_not_starved_by_decodes", test_long_prompt_not_starved},
    {"batches_in_flight_balanced", test_in_flight_balanced},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "scheduler", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
