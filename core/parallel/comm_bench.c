/* comm_bench.c - communicator microbenchmark: all_reduce_sum latency and
 * bandwidth over a range of sizes, and send/recv ping-pong, for the threads
 * transport (N rank threads in this process) or MPI (one rank per process
 * under mpirun). Rank 0 prints the table; see comm_bench.h. */
#include "parallel/comm_bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/comm_impl.h"

typedef struct bench_opts {
    const char *comm;
    int ranks;
    size_t min_bytes, max_bytes;
    pgd_dtype dt;
} bench_opts;

static int parse_size(const char *v, size_t *out) {
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || v[0] == '-') return 0;
    if (*end == 'K' || *end == 'k') x <<= 10, end++;
    else if (*end == 'M' || *end == 'm') x <<= 20, end++;
    else if (*end == 'G' || *end == 'g') x <<= 30, end++;
    if (*end == 'B' || *end == 'i') end++;
    if (*end || x == 0) return 0;
    *out = (size_t)x;
    return 1;
}

/* Time `iters` calls after warm-up; returns mean seconds, *best the fastest. */
static pgd_status time_all_reduce(pgd_comm *c, void *buf, size_t count, pgd_dtype dt, int iters,
                                  double *mean, double *best) {
    for (int i = 0; i < 3; i++) PGD_TRY(pgd_comm_all_reduce_sum(c, buf, count, dt));
    PGD_TRY(pgd_comm_barrier(c));
    double t0 = pgd_comm_now(), b = 1e30;
    for (int i = 0; i < iters; i++) {
        double s = pgd_comm_now();
        PGD_TRY(pgd_comm_all_reduce_sum(c, buf, count, dt));
        double e = pgd_comm_now() - s;
        if (e < b) b = e;
    }
    *mean = (pgd_comm_now() - t0) / iters;
    *best = b;
    return PGD_OK;
}

static pgd_status ping_pong(pgd_comm *c, void *buf, size_t bytes, int iters, double *one_way) {
    int r = pgd_comm_rank(c);
    PGD_TRY(pgd_comm_barrier(c));
    double t0 = pgd_comm_now();
    for (int i = 0; i < iters; i++) {
        if (r == 0) {
            PGD_TRY(pgd_comm_send(c, buf, bytes, 1, 0));
            PGD_TRY(pgd_comm_recv(c, buf, bytes, 1, 0));
        } else if (r == 1) {
            PGD_TRY(pgd_comm_recv(c, buf, bytes, 0, 0));
            PGD_TRY(pgd_comm_send(c, buf, bytes, 0, 0));
        }
    }
    *one_way = (pgd_comm_now() - t0) / iters / 2;
    return PGD_OK;
}

static int iters_for(size_t bytes) {
    size_t it = ((size_t)256 << 20) / bytes;
    return it < 5 ? 5 : it > 2000 ? 2000 : (int)it;
}

/* The benchmark body, run by every rank; rank 0 prints. */
static pgd_status bench_rank(pgd_comm *c, const bench_opts *o) {
    int r = pgd_comm_rank(c), n = pgd_comm_size(c);
    size_t es = pgd_dtype_size(o->dt);
    void *buf = calloc(o->max_bytes / es + 1, es);
    if (!buf) return pgd_error(PGD_ERR_OOM, "comm-bench: out of memory");
    pgd_status st = PGD_OK;
    if (r == 0) {
        printf("# comm-bench: %s, %d ranks, all_reduce_sum %s\n", pgd_comm_kind(c), n,
               pgd_dtype_name(o->dt));
        printf("%12s %10s %8s %12s %12s %12s %12s\n", "bytes", "count", "iters", "mean_us",
               "best_us", "algbw_GBs", "busbw_GBs");
    }
    for (size_t bytes = o->min_bytes; bytes <= o->max_bytes && st == PGD_OK; bytes *= 4) {
        size_t count = bytes / es;
        int iters = iters_for(bytes);
        double mean = 0, best = 0;
        st = time_all_reduce(c, buf, count, o->dt, iters, &mean, &best);
        if (st == PGD_OK && r == 0) {
            double alg = (double)(count * es) / mean / 1e9;
            printf("%12zu %10zu %8d %12.2f %12.2f %12.3f %12.3f\n", count * es, count, iters,
                   mean * 1e6, best * 1e6, alg, alg * 2.0 * (n - 1) / n);
        }
    }
    if (st == PGD_OK && n >= 2) {
        if (r == 0) printf("# send/recv ping-pong rank 0 <-> 1\n%12s %8s %12s %12s\n", "bytes",
                           "iters", "one_way_us", "GBs");
        for (size_t bytes = o->min_bytes; bytes <= o->max_bytes && st == PGD_OK; bytes *= 4) {
            int iters = iters_for(bytes) / 2 + 2;
            double t = 0;
            st = ping_pong(c, buf, bytes, iters, &t);
            if (st == PGD_OK && r == 0)
                printf("%12zu %8d %12.2f %12.3f\n", bytes, iters, t * 1e6, (double)bytes / t / 1e9);
        }
    }
    if (r == 0) fflush(stdout);
    free(buf);
    return st;
}

typedef struct bench_thread {
    pgd_comm *c;
    const bench_opts *o;
    pgd_status st;
    char msg[512];
} bench_thread;

static void *bench_thread_main(void *p) {
    bench_thread *t = p;
    t->st = bench_rank(t->c, t->o);
    if (t->st != PGD_OK) {
        snprintf(t->msg, sizeof t->msg, "%s", pgd_last_error());
        pgd_comm_abort(t->c, "comm-bench failed: %s", t->msg);
    }
    return NULL;
}

static int run_threads(const bench_opts *o) {
    int n = o->ranks;
    pgd_comm **comms = calloc((size_t)n, sizeof *comms);
    bench_thread *t = calloc((size_t)n, sizeof *t);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    int rc = 1;
    if (!comms || !t || !th) {
        fprintf(stderr, "pagoda comm-bench: out of memory\n");
        goto out;
    }
    if (pgd_comm_threads_create(n, comms) != PGD_OK) {
        fprintf(stderr, "pagoda comm-bench: %s\n", pgd_last_error());
        goto out;
    }
    for (int r = 0; r < n; r++) {
        t[r] = (bench_thread){.c = comms[r], .o = o};
        pthread_create(&th[r], NULL, bench_thread_main, &t[r]);
    }
    rc = 0;
    for (int r = 0; r < n; r++) {
        pthread_join(th[r], NULL);
        if (t[r].st != PGD_OK && !rc) {
            fprintf(stderr, "pagoda comm-bench: rank %d: %s\n", r, t[r].msg);
            rc = 1;
        }
    }
    for (int r = 0; r < n; r++) pgd_comm_destroy(comms[r]);
out:
    free(comms);
    free(t);
    free(th);
    return rc;
}

static int run_mpi(const bench_opts *o) {
    pgd_comm *c = NULL;
    if (pgd_comm_mpi_create(&c) != PGD_OK) {
        fprintf(stderr, "pagoda comm-bench: %s\n", pgd_last_error());
        return 1;
    }
    if (bench_rank(c, o) != PGD_OK) pgd_comm_abort(c, "comm-bench failed: %s", pgd_last_error());
    pgd_comm_destroy(c);
    pgd_comm_mpi_finalize();
    return 0;
}

int pgd_comm_bench_main(int argc, char **argv) {
    bench_opts o = {.comm = "threads", .ranks = 2, .min_bytes = 4 << 10, .max_bytes = 16 << 20,
                    .dt = PGD_F32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = v != NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: pagoda comm-bench [--comm threads|mpi] [--ranks N] [--min BYTES] "
                   "[--max BYTES] [--dtype f32|f16|bf16]\n");
            return 0;
        } else if (!strcmp(a, "--comm") && ok) {
            o.comm = v;
        } else if (!strcmp(a, "--ranks") && ok) {
            o.ranks = atoi(v);
            ok = o.ranks >= 1 && o.ranks <= 256;
        } else if (!strcmp(a, "--min") && ok) {
            ok = parse_size(v, &o.min_bytes);
        } else if (!strcmp(a, "--max") && ok) {
            ok = parse_size(v, &o.max_bytes);
        } else if (!strcmp(a, "--dtype") && ok) {
            o.dt = !strcmp(v, "f16") ? PGD_F16 : !strcmp(v, "bf16") ? PGD_BF16 : PGD_F32;
            ok = !strcmp(v, "f16") || !strcmp(v, "bf16") || !strcmp(v, "f32");
        } else {
            fprintf(stderr, "pagoda comm-bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "pagoda comm-bench: bad value for %s: '%s'\n", a, v ? v : "(missing)");
            return 2;
        }
        i++;
    }
    if (o.min_bytes > o.max_bytes || o.min_bytes < pgd_dtype_size(o.dt)) {
        fprintf(stderr, "pagoda comm-bench: need %zu <= --min <= --max\n", pgd_dtype_size(o.dt));
        return 2;
    }
    if (!strcmp(o.comm, "threads")) return run_threads(&o);
    if (!strcmp(o.comm, "mpi")) return run_mpi(&o);
    fprintf(stderr, "pagoda comm-bench: --comm must be threads or mpi (got '%s')\n", o.comm);
    return 2;
}
