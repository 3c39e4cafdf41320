/* test_comm.c - CUnit tests for the communicator (core/parallel/comm*.c)
 * over the threads transport: collectives against serial references
 * (bitwise, and identical on every rank) for 1 to 4 ranks, point-to-point
 * ordering/buffering/flow control, splits into TP x PP groups, aborts that
 * must wake blocked ranks promptly, and argument validation.
 *
 * Each test runs its ranks as threads; CUnit is not thread-safe, so ranks
 * record failures in their context and the main thread asserts after the
 * join. A watchdog alarm turns a hang into a failure. The MPI transport has
 * its own program under tests/mpi/ (run by mpirun). */
#include "test_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagoda/comm.h"
#include "comm_values.h"
#ifdef PAGODA_HAVE_MPI
#include <mpi.h>
#endif
#ifdef PAGODA_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif

/* ---- harness ---- */

typedef struct rank_ctx rank_ctx;
typedef void (*rank_fn)(rank_ctx *);

struct rank_ctx {
    pgd_comm *c;
    int rank, n;
    void *arg;
    int fails;
    char msg[512];
};

#define RCHECK(x, cond)                                                                     \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            if (!(x)->fails++)                                                              \
                snprintf((x)->msg, sizeof (x)->msg, "rank %d: %s:%d: %s", (x)->rank,        \
                         __FILE__, __LINE__, #cond);                                        \
        }                                                                                   \
    } while (0)
#define ROK(x, call)                                                                        \
    do {                                                                                    \
        pgd_status s_ = (call);                                                             \
        if (s_ != PGD_OK && !(x)->fails++)                                                  \
            snprintf((x)->msg, sizeof (x)->msg, "rank %d: %s:%d: %s -> %s (%s)", (x)->rank, \
                     __FILE__, __LINE__, #call, pgd_status_str(s_), pgd_last_error());      \
    } while (0)

static void on_alarm(int sig) {
    static const char m[] = "test_comm: watchdog: a test hung\n";
    (void)!write(2, m, sizeof m - 1);
    _exit(3);
}

static void watchdog(unsigned seconds) {
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct thread_arg {
    rank_fn fn;
    rank_ctx *ctx;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *t = p;
    t->fn(t->ctx);
    return NULL;
}

/* Run fn on n rank threads over a fresh threads communicator. */
static void run_ranks(int n, rank_fn fn, void *arg) {
    pgd_comm *comms[16] = {0};
    rank_ctx ctx[16];
    thread_arg ta[16];
    pthread_t th[16];
    CU_ASSERT_FATAL(n >= 1 && n <= 16);
    CU_ASSERT_EQUAL_FATAL(pgd_comm_threads_create(n, comms), PGD_OK);
    watchdog(60);
    for (int r = 0; r < n; r++) {
        ctx[r] = (rank_ctx){.c = comms[r], .rank = r, .n = n, .arg = arg};
        ta[r] = (thread_arg){fn, &ctx[r]};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[r], NULL, thread_main, &ta[r]), 0);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    watchdog(120); /* a safety net for the single-threaded code that follows */
    for (int r = 0; r < n; r++) {
        if (ctx[r].fails) fprintf(stderr, "\n  n=%d %s (%d failures)\n", n, ctx[r].msg, ctx[r].fails);
        CU_ASSERT_EQUAL(ctx[r].fails, 0);
        pgd_comm_destroy(comms[r]);
    }
}

/* ---- transport list, creation ---- */

static void test_list(void) {
    const char *const *names = pgd_comm_list();
    CU_ASSERT_PTR_NOT_NULL_FATAL(names);
    CU_ASSERT_STRING_EQUAL(names[0], "threads");
    int has_mpi = 0, has_nccl = 0;
    for (int i = 0; names[i]; i++) {
        has_mpi |= !strcmp(names[i], "mpi");
        has_nccl |= !strcmp(names[i], "nccl");
    }
#ifdef PAGODA_HAVE_MPI
    CU_ASSERT(has_mpi);
    /* not under mpirun: the world is this process, and MPI stays untouched */
    CU_ASSERT_EQUAL(pgd_comm_mpi_world_size(), 1);
    CU_ASSERT_EQUAL(pgd_comm_mpi_world_rank(), 0);
    int inited = 1;
    MPI_Initialized(&inited);
    CU_ASSERT_EQUAL(inited, 0);
    pgd_comm_mpi_finalize(); /* harmless when nothing was initialised */
#else
    CU_ASSERT(!has_mpi);
    pgd_comm *m = (pgd_comm *)1;
    CU_ASSERT_EQUAL(pgd_comm_mpi_create(&m), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(pgd_comm_mpi_world_size(), 1);
#endif
#ifndef PAGODA_HAVE_NCCL
    CU_ASSERT(!has_nccl);
    pgd_comm *boot[1], *g = (pgd_comm *)1;
    CU_ASSERT_EQUAL_FATAL(pgd_comm_threads_create(1, boot), PGD_OK);
    CU_ASSERT_EQUAL(pgd_comm_nccl_create(boot[0], 0, &g), PGD_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(g);
    pgd_comm_destroy(boot[0]);
#else
    CU_ASSERT(has_nccl);
#endif
}

static void test_create(void) {
    pgd_comm *c[4];
    CU_ASSERT_EQUAL(pgd_comm_threads_create(0, c), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "0 ranks"));
    CU_ASSERT_EQUAL(pgd_comm_threads_create(-3, c), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_threads_create(2, NULL), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(pgd_comm_threads_create(4, c), PGD_OK);
    for (int r = 0; r < 4; r++) {
        CU_ASSERT_EQUAL(pgd_comm_rank(c[r]), r);
        CU_ASSERT_EQUAL(pgd_comm_size(c[r]), 4);
        CU_ASSERT_STRING_EQUAL(pgd_comm_kind(c[r]), "threads");
        CU_ASSERT_EQUAL(pgd_comm_seconds(c[r]), 0.0);
    }
    for (int r = 3; r >= 0; r--) pgd_comm_destroy(c[r]);
    pgd_comm_destroy(NULL);
    /* size 1: every collective is local */
    CU_ASSERT_EQUAL_FATAL(pgd_comm_threads_create(1, c), PGD_OK);
    float x[3] = {1, 2, 3}, g[3] = {0};
    CU_ASSERT_EQUAL(pgd_comm_all_reduce_sum(c[0], x, 3, PGD_F32), PGD_OK);
    CU_ASSERT(x[0] == 1 && x[1] == 2 && x[2] == 3);
    CU_ASSERT_EQUAL(pgd_comm_all_gather(c[0], x, g, 3, PGD_F32), PGD_OK);
    CU_ASSERT(!memcmp(x, g, sizeof x));
    CU_ASSERT_EQUAL(pgd_comm_broadcast(c[0], x, sizeof x, 0), PGD_OK);
    CU_ASSERT_EQUAL(pgd_comm_barrier(c[0]), PGD_OK);
    CU_ASSERT_EQUAL(pgd_comm_send(c[0], x, sizeof x, 0, 5), PGD_OK); /* to self: buffered */
    memset(g, 0, sizeof g);
    CU_ASSERT_EQUAL(pgd_comm_recv(c[0], g, sizeof g, 0, 5), PGD_OK);
    CU_ASSERT(!memcmp(x, g, sizeof x));
    pgd_comm_destroy(c[0]);
}

/* ---- all_reduce ---- */

static const size_t ar_counts[] = {1, 5, 31, 32, 33, 100, 1000, 4099, 65536 + 7, 1 << 20};

static void rank_all_reduce(rank_ctx *x) {
    for (int d = 0; d < 3; d++) {
        pgd_dtype dt = (pgd_dtype)d;
        size_t es = pgd_dtype_size(dt);
        for (size_t k = 0; k < sizeof ar_counts / sizeof ar_counts[0]; k++) {
            size_t count = ar_counts[k];
            int seed = (int)(k * 3 + (size_t)d);
            void *buf = malloc(count * es), *ref = malloc(count * es);
            fill(buf, count, dt, x->rank, seed);
            ref_sum(ref, count, dt, x->n, seed);
            ROK(x, pgd_comm_all_reduce_sum(x->c, buf, count, dt));
            RCHECK(x, !memcmp(buf, ref, count * es)); /* bitwise: rank-order f32 sum */
            free(buf);
            free(ref);
        }
    }
    /* many small ones back to back (barrier generations, no stale slots) */
    for (int it = 0; it < 500; it++) {
        float v[3] = {(float)(x->rank + it), 1.0f, (float)it};
        ROK(x, pgd_comm_all_reduce_sum(x->c, v, 3, PGD_F32));
        float want = (float)(x->n * it + x->n * (x->n - 1) / 2);
        RCHECK(x, v[0] == want && v[1] == (float)x->n && v[2] == (float)(x->n * it));
    }
    /* count 0 is a no-op */
    ROK(x, pgd_comm_all_reduce_sum(x->c, NULL, 0, PGD_F32));
}

static void test_all_reduce(void) {
    for (int n = 1; n <= 4; n++) run_ranks(n, rank_all_reduce, NULL);
}

/* identical on every rank even for values whose sum depends on the order */
static void rank_all_reduce_cancel(rank_ctx *x) {
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = (x->rank % 2 ? -1.0f : 1.0f) * (x->rank == 0 ? 1e8f : 1.0f) + (float)i * 1e-3f;
    ROK(x, pgd_comm_all_reduce_sum(x->c, v, 64, PGD_F32));
    float *all = x->arg;
    memcpy(all + 64 * x->rank, v, sizeof v);
}

static void test_all_reduce_identical(void) {
    for (int n = 2; n <= 4; n++) {
        float all[4 * 64];
        run_ranks(n, rank_all_reduce_cancel, all);
        for (int r = 1; r < n; r++) CU_ASSERT(!memcmp(all, all + 64 * r, 64 * sizeof(float)));
    }
}

/* ---- all_gather, broadcast ---- */

static void rank_all_gather(rank_ctx *x) {
    static const size_t counts[] = {1, 3, 1000, 65537};
    for (int d = 0; d < 3; d++) {
        pgd_dtype dt = (pgd_dtype)d;
        size_t es = pgd_dtype_size(dt);
        for (size_t k = 0; k < 4; k++) {
            size_t count = counts[k], bytes = count * es;
            char *send = malloc(bytes), *recv = malloc(bytes * (size_t)x->n),
                 *want = malloc(bytes * (size_t)x->n);
            for (int r = 0; r < x->n; r++) fill(want + (size_t)r * bytes, count, dt, r, (int)k);
            memcpy(send, want + (size_t)x->rank * bytes, bytes);
            memset(recv, 0xab, bytes * (size_t)x->n);
            ROK(x, pgd_comm_all_gather(x->c, send, recv, count, dt));
            RCHECK(x, !memcmp(recv, want, bytes * (size_t)x->n));
            /* in place: send is this rank's block of recv */
            memset(recv, 0xcd, bytes * (size_t)x->n);
            memcpy(recv + (size_t)x->rank * bytes, send, bytes);
            ROK(x, pgd_comm_all_gather(x->c, recv + (size_t)x->rank * bytes, recv, count, dt));
            RCHECK(x, !memcmp(recv, want, bytes * (size_t)x->n));
            free(send);
            free(recv);
            free(want);
        }
    }
}

static void test_all_gather(void) {
    for (int n = 1; n <= 4; n++) run_ranks(n, rank_all_gather, NULL);
}

static void rank_broadcast(rank_ctx *x) {
    static const size_t sizes[] = {1, 13, 4096, 1 << 20};
    for (int root = 0; root < x->n; root++) {
        for (size_t k = 0; k < 4; k++) {
            size_t bytes = sizes[k];
            unsigned char *buf = malloc(bytes);
            for (size_t i = 0; i < bytes; i++)
                buf[i] = x->rank == root ? (unsigned char)(i * 7 + (size_t)root) : 0xee;
            ROK(x, pgd_comm_broadcast(x->c, buf, bytes, root));
            int ok = 1;
            for (size_t i = 0; i < bytes; i++) ok &= buf[i] == (unsigned char)(i * 7 + (size_t)root);
            RCHECK(x, ok);
            free(buf);
        }
    }
}

static void test_broadcast(void) {
    for (int n = 1; n <= 4; n++) run_ranks(n, rank_broadcast, NULL);
}

/* ---- barrier, timing ---- */

static void rank_barrier(rank_ctx *x) {
    atomic_int *arrived = x->arg;
    for (int round = 0; round < 50; round++) {
        if (round < 3) sleep_ms(5 * x->rank);
        atomic_fetch_add(&arrived[round], 1);
        ROK(x, pgd_comm_barrier(x->c));
        RCHECK(x, atomic_load(&arrived[round]) == x->n);
    }
}

static void test_barrier(void) {
    for (int n = 1; n <= 4; n++) {
        atomic_int arrived[50];
        for (int i = 0; i < 50; i++) atomic_init(&arrived[i], 0);
        run_ranks(n, rank_barrier, arrived);
    }
}

static void rank_seconds(rank_ctx *x) {
    double before = pgd_comm_seconds(x->c);
    RCHECK(x, before == 0.0);
    if (x->rank == 1) sleep_ms(60);
    ROK(x, pgd_comm_barrier(x->c));
    double s = pgd_comm_seconds(x->c);
    if (x->rank == 0) RCHECK(x, s >= 0.05); /* waited for rank 1 */
    RCHECK(x, s < 5.0);
}

static void test_seconds(void) { run_ranks(2, rank_seconds, NULL); }

/* ---- send / recv ---- */

static void rank_tags(rank_ctx *x) {
    /* rank 0 sends 10 messages on tag 3, then 10 on tag 4; rank 1 reads
     * tag 4 first: only possible because sends are buffered */
    int buf[300];
    if (x->rank == 0) {
        for (int tag = 3; tag <= 4; tag++)
            for (int m = 0; m < 10; m++) {
                int len = 1 + 29 * m;
                for (int i = 0; i < len; i++) buf[i] = tag * 100000 + m * 1000 + i;
                ROK(x, pgd_comm_send(x->c, buf, (size_t)len * sizeof(int), 1, tag));
            }
        ROK(x, pgd_comm_send(x->c, NULL, 0, 1, 0)); /* empty message */
    } else if (x->rank == 1) {
        for (int tag = 4; tag >= 3; tag--)
            for (int m = 0; m < 10; m++) {
                int len = 1 + 29 * m, ok = 1;
                ROK(x, pgd_comm_recv(x->c, buf, (size_t)len * sizeof(int), 0, tag));
                for (int i = 0; i < len; i++) ok &= buf[i] == tag * 100000 + m * 1000 + i;
                RCHECK(x, ok);
            }
        ROK(x, pgd_comm_recv(x->c, NULL, 0, 0, 0));
    }
}

static void test_send_recv_tags(void) { run_ranks(2, rank_tags, NULL); }

#define BIG (8u << 20)

static void rank_large(rank_ctx *x) {
    /* buffered large sends, then a receiver that waits first (direct copy) */
    size_t words = BIG / 4;
    uint32_t *buf = malloc(BIG);
    if (x->rank == 0) {
        for (int m = 0; m < 4; m++) {
            for (size_t i = 0; i < words; i++) buf[i] = (uint32_t)(i * 2654435761u) + (uint32_t)m;
            double t0 = now_s();
            ROK(x, pgd_comm_send(x->c, buf, BIG, 1, 9));
            RCHECK(x, now_s() - t0 < 2.0);
        }
        ROK(x, pgd_comm_barrier(x->c)); /* the four are queued before rank 1 reads */
        sleep_ms(30);                   /* rank 1 is now waiting in recv */
        for (size_t i = 0; i < words; i++) buf[i] = (uint32_t)i ^ 0x5a5a5a5au;
        ROK(x, pgd_comm_send(x->c, buf, BIG, 1, 10));
    } else if (x->rank == 1) {
        ROK(x, pgd_comm_barrier(x->c));
        ROK(x, pgd_comm_recv(x->c, buf, BIG, 0, 10));
        int ok = 1;
        for (size_t i = 0; i < words; i++) ok &= buf[i] == ((uint32_t)i ^ 0x5a5a5a5au);
        RCHECK(x, ok);
        for (int m = 0; m < 4; m++) {
            ROK(x, pgd_comm_recv(x->c, buf, BIG, 0, 9));
            ok = 1;
            for (size_t i = 0; i < words; i++) ok &= buf[i] == (uint32_t)(i * 2654435761u) + (uint32_t)m;
            RCHECK(x, ok);
        }
    }
    free(buf);
}

static void test_send_recv_large(void) { run_ranks(2, rank_large, NULL); }

static void rank_ring(rank_ctx *x) {
    /* everyone sends first, then receives: deadlock-free thanks to buffering */
    int next = (x->rank + 1) % x->n, prev = (x->rank + x->n - 1) % x->n;
    size_t count = 100000;
    float *out = malloc(count * sizeof *out), *in = malloc(count * sizeof *in);
    for (int it = 0; it < 20; it++) {
        fill(out, count, PGD_F32, x->rank, it);
        ROK(x, pgd_comm_send(x->c, out, count * sizeof *out, next, 1));
        ROK(x, pgd_comm_recv(x->c, in, count * sizeof *in, prev, 1));
        fill(out, count, PGD_F32, prev, it);
        RCHECK(x, !memcmp(in, out, count * sizeof *in));
    }
    free(out);
    free(in);
}

static void test_send_recv_ring(void) {
    for (int n = 2; n <= 4; n++) run_ranks(n, rank_ring, NULL);
}

static void rank_mismatch(rank_ctx *x) {
    char buf[64] = {0};
    if (x->rank == 0) {
        ROK(x, pgd_comm_send(x->c, buf, 32, 1, 2));
        ROK(x, pgd_comm_send(x->c, buf, 16, 1, 2));
    } else {
        RCHECK(x, pgd_comm_recv(x->c, buf, 64, 0, 2) == PGD_ERR_INVALID);
        RCHECK(x, strstr(pgd_last_error(), "expected 64 bytes") != NULL);
        RCHECK(x, strstr(pgd_last_error(), "has 32") != NULL);
        ROK(x, pgd_comm_recv(x->c, buf, 16, 0, 2)); /* the stream goes on */
    }
}

static void test_send_recv_mismatch(void) { run_ranks(2, rank_mismatch, NULL); }

static void rank_flow(rank_ctx *x) {
    /* channels hold 1 MiB here: the third 512 KiB send waits for rank 1 */
    size_t bytes = 512u << 10;
    char *buf = malloc(bytes);
    ROK(x, pgd_comm_barrier(x->c)); /* start together */
    if (x->rank == 0) {
        double t0 = now_s();
        for (int m = 0; m < 3; m++) {
            memset(buf, m + 1, bytes);
            ROK(x, pgd_comm_send(x->c, buf, bytes, 1, 0));
        }
        RCHECK(x, now_s() - t0 >= 0.08);
    } else {
        sleep_ms(100);
        for (int m = 0; m < 3; m++) {
            ROK(x, pgd_comm_recv(x->c, buf, bytes, 0, 0));
            RCHECK(x, buf[0] == m + 1 && buf[bytes - 1] == m + 1);
        }
    }
    free(buf);
}

static void test_send_recv_flow_control(void) {
    setenv("PAGODA_COMM_CHANNEL_MB", "1", 1);
    run_ranks(2, rank_flow, NULL);
    unsetenv("PAGODA_COMM_CHANNEL_MB");
}

/* ---- split ---- */

static void rank_split(rank_ctx *x) {
    int r = x->rank, n = x->n;
    if (n == 4) {
        /* TP 2 x PP 2: tp groups {0,1},{2,3}; pp groups {0,2},{1,3} */
        pgd_comm *tp = NULL, *pp = NULL;
        ROK(x, pgd_comm_split(x->c, r / 2, r, &tp));
        ROK(x, pgd_comm_split(x->c, r % 2, r, &pp));
        RCHECK(x, tp && pp);
        if (!tp || !pp) return;
        RCHECK(x, pgd_comm_size(tp) == 2 && pgd_comm_rank(tp) == r % 2);
        RCHECK(x, pgd_comm_size(pp) == 2 && pgd_comm_rank(pp) == r / 2);
        RCHECK(x, !strcmp(pgd_comm_kind(tp), "threads"));
        float v = (float)r;
        ROK(x, pgd_comm_all_reduce_sum(tp, &v, 1, PGD_F32));
        RCHECK(x, v == (float)(r / 2 * 4 + 1)); /* 0+1 or 2+3 */
        v = (float)r;
        ROK(x, pgd_comm_all_reduce_sum(pp, &v, 1, PGD_F32));
        RCHECK(x, v == (float)(2 + 2 * (r % 2))); /* 0+2 or 1+3 */
        /* pipeline hand-off between stages inside a pp group */
        int h = 100 + r;
        if (pgd_comm_rank(pp) == 0) ROK(x, pgd_comm_send(pp, &h, sizeof h, 1, 0));
        else {
            ROK(x, pgd_comm_recv(pp, &h, sizeof h, 0, 0));
            RCHECK(x, h == 100 + r - 2);
        }
        /* the groups work concurrently with the parent */
        ROK(x, pgd_comm_barrier(tp));
        ROK(x, pgd_comm_barrier(x->c));
        /* a split of a split */
        pgd_comm *solo = NULL;
        ROK(x, pgd_comm_split(tp, pgd_comm_rank(tp), 0, &solo));
        RCHECK(x, solo && pgd_comm_size(solo) == 1 && pgd_comm_rank(solo) == 0);
        pgd_comm_destroy(solo);
        pgd_comm_destroy(tp);
        pgd_comm_destroy(pp);
    }
    /* key orders the ranks (reverse), ties by parent rank */
    pgd_comm *rev = NULL;
    ROK(x, pgd_comm_split(x->c, 7, -r, &rev));
    RCHECK(x, rev && pgd_comm_size(rev) == n && pgd_comm_rank(rev) == n - 1 - r);
    pgd_comm_destroy(rev);
    pgd_comm *tie = NULL;
    ROK(x, pgd_comm_split(x->c, 0, 5, &tie));
    RCHECK(x, tie && pgd_comm_rank(tie) == r);
    pgd_comm_destroy(tie);
    /* negative color: not a member; odd/even sizes */
    pgd_comm *half = (pgd_comm *)&half;
    ROK(x, pgd_comm_split(x->c, r == 0 ? -1 : r % 2, r, &half));
    if (r == 0) {
        RCHECK(x, half == NULL);
    } else {
        int members = 0;
        for (int i = 1; i < n; i++) members += i % 2 == r % 2;
        RCHECK(x, half && pgd_comm_size(half) == members);
        float v = 1;
        ROK(x, pgd_comm_all_reduce_sum(half, &v, 1, PGD_F32));
        RCHECK(x, v == (float)members);
        pgd_comm_destroy(half);
    }
}

static void test_split(void) {
    for (int n = 1; n <= 4; n++) run_ranks(n, rank_split, NULL);
}

/* ---- abort ---- */

typedef struct abort_arg {
    int mode;     /* 0: all_reduce, 1: recv, 2: barrier of a split, 3: send (full channel) */
    double wait_s[8];
    pgd_status got[8];
    char msg[8][256];
} abort_arg;

static void rank_abort(rank_ctx *x) {
    abort_arg *a = x->arg;
    int r = x->rank;
    pgd_comm *tp = NULL;
    if (a->mode == 2) ROK(x, pgd_comm_split(x->c, r / 2, r, &tp));
    size_t count = 1 << 16;
    float *buf = calloc(count, sizeof *buf);
    if (r == 0) {
        sleep_ms(100);
        pgd_comm_abort(x->c, "boom on purpose (%d)", 42);
        a->got[r] = pgd_comm_barrier(x->c);
    } else {
        double t0 = now_s();
        pgd_status st = PGD_OK;
        if (a->mode == 0) st = pgd_comm_all_reduce_sum(x->c, buf, count, PGD_F32);
        else if (a->mode == 1) st = pgd_comm_recv(x->c, buf, 16, 0, 3);
        else if (a->mode == 2) st = r < 3 ? pgd_comm_recv(tp, buf, 16, 1 - pgd_comm_rank(tp), 3) : pgd_comm_barrier(tp);
        else if (a->mode == 3 && r == 1) {
            for (int m = 0; m < 8 && st == PGD_OK; m++)
                st = pgd_comm_send(x->c, buf, count * sizeof *buf, 2, 0);
        } else {
            st = pgd_comm_barrier(x->c);
        }
        a->wait_s[r] = now_s() - t0;
        a->got[r] = st;
        snprintf(a->msg[r], sizeof a->msg[r], "%s", pgd_last_error());
    }
    /* every later call fails fast, on every rank */
    RCHECK(x, pgd_comm_barrier(x->c) == PGD_ERR_COMM);
    RCHECK(x, pgd_comm_all_reduce_sum(x->c, buf, 4, PGD_F32) == PGD_ERR_COMM);
    RCHECK(x, strstr(pgd_last_error(), "boom on purpose (42)") != NULL);
    RCHECK(x, pgd_comm_send(x->c, buf, 4, (r + 1) % x->n, 0) == PGD_ERR_COMM);
    RCHECK(x, pgd_comm_recv(x->c, buf, 4, (r + 1) % x->n, 0) == PGD_ERR_COMM);
    pgd_comm *sub = NULL;
    RCHECK(x, pgd_comm_split(x->c, 0, 0, &sub) == PGD_ERR_COMM && sub == NULL);
    if (tp) RCHECK(x, pgd_comm_barrier(tp) == PGD_ERR_COMM);
    pgd_comm_destroy(tp);
    free(buf);
}

static void check_abort(int n, int mode) {
    abort_arg a;
    memset(&a, 0, sizeof a);
    a.mode = mode;
    if (mode == 3) setenv("PAGODA_COMM_CHANNEL_MB", "1", 1);
    run_ranks(n, rank_abort, &a);
    if (mode == 3) unsetenv("PAGODA_COMM_CHANNEL_MB");
    CU_ASSERT_EQUAL(a.got[0], PGD_ERR_COMM);
    for (int r = 1; r < n; r++) {
        CU_ASSERT_EQUAL(a.got[r], PGD_ERR_COMM);
        CU_ASSERT_PTR_NOT_NULL(strstr(a.msg[r], "rank 0: boom on purpose (42)"));
        CU_ASSERT(a.wait_s[r] < 2.0); /* woken promptly (the abort came at ~0.1 s) */
        if (a.got[r] != PGD_ERR_COMM || a.wait_s[r] >= 2.0)
            fprintf(stderr, "\n  abort n=%d mode=%d rank %d: %s after %.3f s: %s\n", n, mode, r,
                    pgd_status_str(a.got[r]), a.wait_s[r], a.msg[r]);
    }
}

static void test_abort_all_reduce(void) {
    for (int n = 2; n <= 4; n++) check_abort(n, 0);
}
static void test_abort_recv(void) {
    for (int n = 2; n <= 3; n++) check_abort(n, 1);
}
static void test_abort_split(void) { check_abort(4, 2); }
static void test_abort_send_full(void) { check_abort(3, 3); }

/* ---- argument validation ---- */

static void test_bad_args(void) {
    pgd_comm *c[2];
    float f[8] = {0};
    CU_ASSERT_EQUAL_FATAL(pgd_comm_threads_create(2, c), PGD_OK);
    pgd_comm *a = c[0];
    CU_ASSERT_EQUAL(pgd_comm_all_reduce_sum(NULL, f, 1, PGD_F32), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "NULL"));
    CU_ASSERT_EQUAL(pgd_comm_barrier(NULL), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_send(NULL, f, 4, 0, 0), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_rank(NULL), -1);
    CU_ASSERT_EQUAL(pgd_comm_size(NULL), 0);
    CU_ASSERT_EQUAL(pgd_comm_seconds(NULL), 0.0);
    pgd_comm_abort(NULL, "nothing");
    CU_ASSERT_EQUAL(pgd_comm_all_reduce_sum(a, f, 1, (pgd_dtype)7), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "dtype 7"));
    CU_ASSERT_EQUAL(pgd_comm_all_reduce_sum(a, f, SIZE_MAX / 2, PGD_F32), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "overflow"));
    CU_ASSERT_EQUAL(pgd_comm_all_gather(a, f, f, SIZE_MAX / 4 + 1, PGD_F16), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "overflow"));
    CU_ASSERT_EQUAL(pgd_comm_all_reduce_sum(a, NULL, 4, PGD_F32), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_all_gather(a, f + 1, f, 2, PGD_F32), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "overlaps"));
    CU_ASSERT_EQUAL(pgd_comm_broadcast(a, f, 4, 2), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "root rank 2 out of range [0, 2)"));
    CU_ASSERT_EQUAL(pgd_comm_broadcast(a, f, 4, -1), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_send(a, f, 4, 2, 0), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "destination rank 2"));
    CU_ASSERT_EQUAL(pgd_comm_send(a, f, 4, -1, 0), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_recv(a, f, 4, 5, 0), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "source rank 5"));
    CU_ASSERT_EQUAL(pgd_comm_send(a, f, 4, 1, -1), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "tag -1"));
    CU_ASSERT_EQUAL(pgd_comm_recv(a, f, 4, 1, 40000), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "tag 40000 out of range [0, 32767]"));
    CU_ASSERT_EQUAL(pgd_comm_send(a, NULL, 4, 1, 0), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_comm_split(a, 0, 0, NULL), PGD_ERR_INVALID);
    /* nothing above reached the other rank: the communicator still works */
    pgd_comm_destroy(c[0]);
    pgd_comm_destroy(c[1]);
}

/* ranks disagreeing on a collective all get PGD_ERR_INVALID, none hangs */
static void rank_disagree(rank_ctx *x) {
    float f[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    pgd_status st = pgd_comm_all_reduce_sum(x->c, f, x->rank == 2 ? 7 : 8, PGD_F32);
    RCHECK(x, st == PGD_ERR_INVALID);
    RCHECK(x, strstr(pgd_last_error(), "count mismatch: rank 0 has 8, rank 2 has 7") != NULL);
    st = x->rank == 1 ? pgd_comm_broadcast(x->c, f, 8, 0) : pgd_comm_all_reduce_sum(x->c, f, 2, PGD_F32);
    RCHECK(x, st == PGD_ERR_INVALID);
    RCHECK(x, strstr(pgd_last_error(), "rank 0 called all_reduce_sum but rank 1 called broadcast") != NULL);
    st = pgd_comm_broadcast(x->c, f, 8, x->rank == 0 ? 1 : 0);
    RCHECK(x, st == PGD_ERR_INVALID);
    RCHECK(x, strstr(pgd_last_error(), "root mismatch") != NULL);
    st = pgd_comm_all_reduce_sum(x->c, f, 2, x->rank == 1 ? PGD_F16 : PGD_F32);
    RCHECK(x, st == PGD_ERR_INVALID);
    RCHECK(x, strstr(pgd_last_error(), "dtype mismatch: rank 0 has 0, rank 1 has 1") != NULL);
    /* and the communicator is still usable afterwards */
    float v = 1;
    ROK(x, pgd_comm_all_reduce_sum(x->c, &v, 1, PGD_F32));
    RCHECK(x, v == (float)x->n);
}

static void test_disagree(void) { run_ranks(3, rank_disagree, NULL); }

/* ---- a mixed workload with more ranks than cores ---- */

static void rank_stress(rank_ctx *x) {
    int next = (x->rank + 1) % x->n, prev = (x->rank + x->n - 1) % x->n;
    for (int it = 0; it < 300; it++) {
        float v[17];
        for (int i = 0; i < 17; i++) v[i] = (float)(x->rank * it + i);
        ROK(x, pgd_comm_all_reduce_sum(x->c, v, 17, PGD_F32));
        RCHECK(x, v[3] == (float)(it * x->n * (x->n - 1) / 2 + 3 * x->n));
        int tok = x->rank * 1000 + it, got = -1;
        ROK(x, pgd_comm_send(x->c, &tok, sizeof tok, next, it % 3));
        ROK(x, pgd_comm_recv(x->c, &got, sizeof got, prev, it % 3));
        RCHECK(x, got == prev * 1000 + it);
        if (it % 50 == 0) ROK(x, pgd_comm_barrier(x->c));
    }
}

static void test_stress(void) {
    run_ranks(4, rank_stress, NULL);
    run_ranks(8, rank_stress, NULL);
}

/* ---- NCCL (only in builds with NCCL; ranks = threads, one GPU each) ---- */

#ifdef PAGODA_HAVE_NCCL
static void rank_nccl(rank_ctx *x) {
    pgd_comm *g = NULL;
    int n = x->n, r = x->rank;
    ROK(x, pgd_comm_nccl_create(x->c, r, &g));
    if (!g) return;
    RCHECK(x, !strcmp(pgd_comm_kind(g), "nccl") && pgd_comm_rank(g) == r && pgd_comm_size(g) == n);
    size_t count = 4099, bytes = count * sizeof(float);
    float *h = malloc(bytes * (size_t)n), *ref = malloc(bytes * (size_t)n);
    void *d = NULL;
    RCHECK(x, cudaMalloc(&d, bytes * (size_t)n) == cudaSuccess);
    /* all_reduce: NCCL's order of summation, so within rounding */
    fill(h, count, PGD_F32, r, 5);
    ref_sum(ref, count, PGD_F32, n, 5);
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    ROK(x, pgd_comm_all_reduce_sum(g, d, count, PGD_F32));
    cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    RCHECK(x, pgd_test_rel_err(h, ref, count) < 1e-6);
    /* all_gather in place */
    for (int k = 0; k < n; k++) fill(ref + (size_t)k * count, count, PGD_F32, k, 6);
    cudaMemcpy((char *)d + (size_t)r * bytes, ref + (size_t)r * count, bytes, cudaMemcpyHostToDevice);
    ROK(x, pgd_comm_all_gather(g, (char *)d + (size_t)r * bytes, d, count, PGD_F32));
    cudaMemcpy(h, d, bytes * (size_t)n, cudaMemcpyDeviceToHost);
    RCHECK(x, !memcmp(h, ref, bytes * (size_t)n));
    /* broadcast from the last rank, barrier */
    fill(h, count, PGD_F32, r, 7);
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    ROK(x, pgd_comm_broadcast(g, d, bytes, n - 1));
    cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    fill(ref, count, PGD_F32, n - 1, 7);
    RCHECK(x, !memcmp(h, ref, bytes));
    ROK(x, pgd_comm_barrier(g));
    RCHECK(x, pgd_comm_send(g, d, 4, r, 0) == PGD_ERR_UNSUPPORTED);
    if (n >= 2 && r < 2) { /* rank 0 -> rank 1 */
        fill(h, count, PGD_F32, 0, 8);
        if (r == 0) {
            cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
            ROK(x, pgd_comm_send(g, d, bytes, 1, 0));
        } else {
            ROK(x, pgd_comm_recv(g, d, bytes, 0, 0));
            cudaMemcpy(ref, d, bytes, cudaMemcpyDeviceToHost);
            RCHECK(x, !memcmp(h, ref, bytes));
        }
    }
    pgd_comm *half = NULL;
    ROK(x, pgd_comm_split(g, r % 2, r, &half));
    RCHECK(x, half && pgd_comm_size(half) == (n - r % 2 + 1) / 2);
    ROK(x, pgd_comm_barrier(half));
    pgd_comm_destroy(half);
    if (n >= 2) { /* abort: the others leave their all_reduce */
        if (r == 0) {
            sleep_ms(100);
            pgd_comm_abort(g, "gpu rank gave up");
        } else {
            RCHECK(x, pgd_comm_all_reduce_sum(g, d, count, PGD_F32) == PGD_ERR_COMM);
            RCHECK(x, strstr(pgd_last_error(), "gpu rank gave up") != NULL);
        }
    }
    cudaFree(d);
    free(h);
    free(ref);
    pgd_comm_destroy(g);
}

static void test_nccl(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("(no GPU: NCCL not exercised) ");
        return;
    }
    run_ranks(ndev < 4 ? ndev : 4, rank_nccl, NULL);
}
#endif

/* ---- registration ---- */

static CU_TestInfo comm_tests[] = {
    {"transport list, MPI untouched outside mpirun", test_list},
    {"threads create, size-1 communicator", test_create},
    {"all_reduce f32/f16/bf16 bitwise vs serial sum, n=1..4", test_all_reduce},
    {"all_reduce identical on every rank", test_all_reduce_identical},
    {"all_gather in and out of place, n=1..4", test_all_gather},
    {"broadcast from every root, n=1..4", test_broadcast},
    {"barrier", test_barrier},
    {"seconds spent in calls", test_seconds},
    {"send/recv: tags, order, buffering, empty", test_send_recv_tags},
    {"send/recv: 8 MiB buffered and direct", test_send_recv_large},
    {"send/recv: ring without deadlock", test_send_recv_ring},
    {"send/recv: size mismatch", test_send_recv_mismatch},
    {"send/recv: flow control on a full channel", test_send_recv_flow_control},
    {"split: TP x PP groups, key order, no color", test_split},
    {"abort wakes ranks in all_reduce", test_abort_all_reduce},
    {"abort wakes ranks in recv", test_abort_recv},
    {"abort of the world wakes a split's waiters", test_abort_split},
    {"abort wakes a sender on a full channel", test_abort_send_full},
    {"bad arguments rejected", test_bad_args},
    {"ranks disagreeing on a collective", test_disagree},
    {"mixed stress, 4 and 8 ranks", test_stress},
#ifdef PAGODA_HAVE_NCCL
    {"nccl over a threads boot, one GPU per rank", test_nccl},
#endif
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "comm", .pTests = comm_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) {
    watchdog(120);
    return pgd_test_main(suites);
}
