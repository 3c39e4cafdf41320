/* comm_threads.c - the threads transport: ranks are threads of one process
 * exchanging data through shared memory.
 *
 * Collectives publish each rank's arguments in its slot, cross an entry
 * barrier, check that all ranks called the same operation with the same
 * counts, move the data directly between the ranks' own buffers, and cross
 * an exit barrier (after which no rank touches another's buffer).
 * all_reduce is a reduce-scatter fused with an all-gather: rank r sums its
 * slice of every rank's buffer in rank order 0..n-1 (in f32) and writes the
 * result into that slice of every buffer, so each element is computed once
 * and every rank gets bitwise the same, timing-independent result.
 *
 * send/recv go through per-destination mailboxes holding one FIFO channel
 * per (source, tag). A send copies into a buffered message and returns
 * without waiting for the receiver unless the channel already holds
 * CHANNEL_BYTES; when the receiver is already waiting, the sender copies
 * straight into its buffer instead.
 *
 * Failure: the world communicator and everything split from it form one
 * family. pgd_comm_abort on any of them sets the family's flag and wakes
 * every waiter of every member; waits that have not yet been matched give
 * up (an entry barrier is left by un-arriving, so either every rank passes
 * it or none does), and every later call fails with the reason. Exit
 * barriers and sends copying into a claimed receive are not abortable:
 * every rank is past its entry barrier, so they finish in bounded time and
 * no rank can free a buffer another is still reading.
 *
 * Waiting spins for PAGODA_COMM_SPIN_US microseconds (default 50,
 * about a futex wake-up on a VM; no spinning when ranks outnumber the cores) and
 * then blocks on a condition variable, so idle ranks leave the cores to the
 * ranks that compute. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parallel/comm_impl.h"

#define CACHE_LINE 64
#define SLICE_ALIGN 32 /* elements: a slice boundary never splits a cache line */
#define DEFAULT_CHANNEL_BYTES ((size_t)64 << 20)
#define MAX_THREAD_RANKS 4096
#define MAX_SPARES 4

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- shared structures ---- */

typedef struct tstate tstate;

typedef struct family { /* a world communicator and its splits */
    pthread_mutex_t mu;  /* guards states, refs, and the first write of reason */
    atomic_int aborted;  /* set (release) after reason is written */
    char reason[640];
    tstate *states;      /* live members, to wake on abort */
    int refs;
} family;

enum { OP_ALL_REDUCE = 1, OP_ALL_GATHER, OP_BROADCAST, OP_SPLIT };
static const char *const op_names[] = {"?", "all_reduce_sum", "all_gather", "broadcast", "split"};

typedef struct slot { /* rank r's arguments of the collective in progress */
    _Alignas(CACHE_LINE) int op;
    int dt, root, color, key;
    size_t count;
    const void *send;
    void *buf;
    pgd_comm *child; /* split: written by the leader */
} slot;

typedef struct tbarrier {
    _Alignas(CACHE_LINE) _Atomic uint64_t word; /* generation << 32 | ranks arrived */
    atomic_int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} tbarrier;

typedef struct msg {
    struct msg *next;
    size_t bytes, cap;
    char data[];
} msg;

enum { R_NONE, R_POSTED, R_CLAIMED, R_DONE };

typedef struct chan { /* messages from one source with one tag, in order */
    struct chan *next;
    int src, tag;
    msg *head, *tail;
    size_t queued;  /* bytes in the queue */
    void *rbuf;     /* a waiting receiver's buffer (rstate != R_NONE) */
    size_t rbytes;
    int rstate;
} chan;

typedef struct mailbox { /* everything sent to one rank */
    _Alignas(CACHE_LINE) pthread_mutex_t mu;
    pthread_cond_t cv; /* any change: message queued/taken, copy done, abort */
    atomic_uint seq;   /* bumped under mu on every change; spinners watch it */
    chan *chans;
    msg *spares;       /* recycled message buffers */
    int nspares;
} mailbox;

struct tstate {
    int n;
    atomic_int refs; /* live handles */
    family *fam;
    tstate *fam_prev, *fam_next;
    tbarrier bar;
    slot *slots;      /* n */
    mailbox *boxes;   /* n, indexed by destination */
    double spin_s;
    size_t channel_bytes;
    pgd_status split_status;
    char split_msg[256];
};

typedef struct tcomm {
    pgd_comm base;
    tstate *st;
    void **ptrs; /* n scratch pointers */
} tcomm;

static const struct pgd_comm_ops threads_ops;

static int family_aborted(const family *f) {
    return atomic_load_explicit(&((family *)f)->aborted, memory_order_acquire);
}

static pgd_status abort_error(tcomm *c, const char *op) {
    return pgd_comm_aborted_error(&c->base, op, c->st->fam->reason);
}

/* ---- barrier ---- */

/* Cross the barrier. abortable: a rank not yet matched leaves it on abort by
 * un-arriving (so the barrier can no longer complete without it) and gets
 * PGD_ERR_COMM; once the barrier completed the rank passes it. */
static pgd_status bar_wait(tcomm *c, int abortable, const char *op) {
    tstate *s = c->st;
    tbarrier *b = &s->bar;
    uint64_t v = atomic_load(&b->word), nv;
    uint32_t gen, arrived;
    for (;;) {
        if (abortable && family_aborted(s->fam)) return abort_error(c, op);
        gen = (uint32_t)(v >> 32);
        arrived = (uint32_t)v;
        nv = arrived + 1 == (uint32_t)s->n ? (uint64_t)(gen + 1) << 32 : v + 1;
        if (atomic_compare_exchange_weak(&b->word, &v, nv)) break;
    }
    if (arrived + 1 == (uint32_t)s->n) {
        if (atomic_load(&b->sleepers)) {
            pthread_mutex_lock(&b->mu);
            pthread_cond_broadcast(&b->cv);
            pthread_mutex_unlock(&b->mu);
        }
        return PGD_OK;
    }
#define PASSED() ((uint32_t)(atomic_load(&b->word) >> 32) != gen)
    double deadline = s->spin_s > 0 ? pgd_comm_now() + s->spin_s : 0;
    while (deadline > 0) {
        for (int i = 0; i < 64; i++) {
            if (PASSED()) return PGD_OK;
            cpu_relax();
        }
        if (abortable && family_aborted(s->fam)) goto leave;
        if (pgd_comm_now() > deadline) break;
    }
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&b->sleepers, 1);
    while (!PASSED()) {
        if (abortable && family_aborted(s->fam)) {
            atomic_fetch_sub(&b->sleepers, 1);
            pthread_mutex_unlock(&b->mu);
            goto leave;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    atomic_fetch_sub(&b->sleepers, 1);
    pthread_mutex_unlock(&b->mu);
    return PGD_OK;
leave:
    v = atomic_load(&b->word);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen) return PGD_OK; /* completed meanwhile: take part */
        if (atomic_compare_exchange_weak(&b->word, &v, v - 1)) return abort_error(c, op);
    }
#undef PASSED
}

/* ---- state lifetime ---- */

static void wake_state(tstate *s) {
    pthread_mutex_lock(&s->bar.mu);
    pthread_cond_broadcast(&s->bar.cv);
    pthread_mutex_unlock(&s->bar.mu);
    for (int i = 0; i < s->n; i++) {
        mailbox *mb = &s->boxes[i];
        pthread_mutex_lock(&mb->mu);
        atomic_fetch_add(&mb->seq, 1);
        pthread_cond_broadcast(&mb->cv);
        pthread_mutex_unlock(&mb->mu);
    }
}

static void family_unref(family *f) {
    pthread_mutex_lock(&f->mu);
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (!last) return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static void state_free(tstate *s) {
    if (!s) return;
    family *f = s->fam;
    if (f) {
        pthread_mutex_lock(&f->mu);
        if (s->fam_prev) s->fam_prev->fam_next = s->fam_next;
        else if (f->states == s) f->states = s->fam_next;
        if (s->fam_next) s->fam_next->fam_prev = s->fam_prev;
        pthread_mutex_unlock(&f->mu);
    }
    if (s->boxes) {
        for (int i = 0; i < s->n; i++) {
            mailbox *mb = &s->boxes[i];
            for (chan *ch = mb->chans, *nc; ch; ch = nc) {
                nc = ch->next;
                for (msg *m = ch->head, *nm; m; m = nm) {
                    nm = m->next;
                    free(m);
                }
                free(ch);
            }
            for (msg *m = mb->spares, *nm; m; m = nm) {
                nm = m->next;
                free(m);
            }
            pthread_mutex_destroy(&mb->mu);
            pthread_cond_destroy(&mb->cv);
        }
        free(s->boxes);
    }
    free(s->slots);
    pthread_mutex_destroy(&s->bar.mu);
    pthread_cond_destroy(&s->bar.cv);
    if (f) family_unref(f);
    free(s);
}

static void *alloc_lines(size_t n, size_t size) {
    size_t bytes = (n * size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    void *p = aligned_alloc(CACHE_LINE, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static double env_spin_seconds(void) {
    const char *e = getenv("PAGODA_COMM_SPIN_US");
    if (e && *e) {
        char *end;
        double us = strtod(e, &end);
        if (*end == '\0' && us >= 0 && us <= 1e6) return us * 1e-6;
    }
    return 50e-6;
}

static size_t env_channel_bytes(void) {
    const char *e = getenv("PAGODA_COMM_CHANNEL_MB");
    if (e && *e) {
        char *end;
        unsigned long long mb = strtoull(e, &end, 10);
        if (*end == '\0' && mb <= ((size_t)1 << 20)) return (size_t)mb << 20;
    }
    return DEFAULT_CHANNEL_BYTES;
}

/* A state for n ranks joining family f (NULL: a new family). */
static tstate *state_new(int n, family *f) {
    tstate *s = aligned_alloc(CACHE_LINE, (sizeof *s + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->n = n;
    atomic_init(&s->refs, n);
    atomic_init(&s->bar.word, 0);
    atomic_init(&s->bar.sleepers, 0);
    pthread_mutex_init(&s->bar.mu, NULL);
    pthread_cond_init(&s->bar.cv, NULL);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* more ranks than cores: a spinning rank would steal the core of the
     * rank it waits for */
    s->spin_s = ncpu > 0 && n > ncpu ? 0 : env_spin_seconds();
    s->channel_bytes = env_channel_bytes();
    s->slots = alloc_lines((size_t)n, sizeof *s->slots);
    s->boxes = alloc_lines((size_t)n, sizeof *s->boxes);
    if (!s->slots || !s->boxes) {
        free(s->slots);
        free(s->boxes);
        s->slots = NULL;
        s->boxes = NULL;
        state_free(s);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_init(&s->boxes[i].mu, NULL);
        pthread_cond_init(&s->boxes[i].cv, NULL);
        atomic_init(&s->boxes[i].seq, 0);
    }
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f) {
            state_free(s);
            return NULL;
        }
        pthread_mutex_init(&f->mu, NULL);
        atomic_init(&f->aborted, 0);
    }
    pthread_mutex_lock(&f->mu);
    f->refs++;
    s->fam = f;
    s->fam_next = f->states;
    if (f->states) f->states->fam_prev = s;
    f->states = s;
    pthread_mutex_unlock(&f->mu);
    return s;
}

static tcomm *handle_new(tstate *s, int rank) {
    tcomm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ptrs = calloc((size_t)s->n, sizeof *c->ptrs);
    if (!c->ptrs) {
        free(c);
        return NULL;
    }
    c->base.ops = &threads_ops;
    c->base.rank = rank;
    c->base.size = s->n;
    c->st = s;
    return c;
}

static void handle_free(tcomm *c) {
    free(c->ptrs);
    free(c);
}

/* Build a state and its n handles (h[i] has rank i). */
static pgd_status group_new(int n, family *f, tcomm **h) {
    tstate *s = state_new(n, f);
    if (!s) return pgd_error(PGD_ERR_OOM, "comm threads: out of memory creating %d ranks", n);
    for (int i = 0; i < n; i++) {
        h[i] = handle_new(s, i);
        if (!h[i]) {
            for (int j = 0; j < i; j++) handle_free(h[j]);
            state_free(s);
            return pgd_error(PGD_ERR_OOM, "comm threads: out of memory creating %d ranks", n);
        }
    }
    return PGD_OK;
}

pgd_status pgd_comm_threads_create(int n, pgd_comm **comms) {
    if (!comms) return pgd_error(PGD_ERR_INVALID, "pgd_comm_threads_create: comms is NULL");
    if (n < 1 || n > MAX_THREAD_RANKS)
        return pgd_error(PGD_ERR_INVALID,
                         "pgd_comm_threads_create: %d ranks (need 1 to %d)", n, MAX_THREAD_RANKS);
    tcomm **h = calloc((size_t)n, sizeof *h);
    if (!h) return pgd_error(PGD_ERR_OOM, "comm threads: out of memory creating %d ranks", n);
    pgd_status st = group_new(n, NULL, h);
    for (int i = 0; i < n; i++) comms[i] = st == PGD_OK ? &h[i]->base : NULL;
    free(h);
    return st;
}

static void threads_destroy(pgd_comm *base) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    handle_free(c);
    if (atomic_fetch_sub(&s->refs, 1) == 1) state_free(s);
}

static void threads_abort(pgd_comm *base, const char *reason) {
    family *f = ((tcomm *)base)->st->fam;
    pthread_mutex_lock(&f->mu);
    if (!family_aborted(f)) {
        snprintf(f->reason, sizeof f->reason, "%s", reason);
        atomic_store_explicit(&f->aborted, 1, memory_order_release);
    }
    for (tstate *s = f->states; s; s = s->fam_next) wake_state(s);
    pthread_mutex_unlock(&f->mu);
}

static const char *threads_aborted(const pgd_comm *base) {
    family *f = ((const tcomm *)base)->st->fam;
    return family_aborted(f) ? f->reason : NULL;
}

/* ---- collectives ---- */

/* After the entry barrier: every rank reaches the same verdict on whether
 * all ranks called the same collective with the same arguments. */
static pgd_status check_same(tcomm *c) {
    tstate *s = c->st;
    const slot *a = &s->slots[0];
    for (int r = 1; r < s->n; r++) {
        const slot *b = &s->slots[r];
        const char *what = NULL;
        long long va = 0, vb = 0;
        if (b->op != a->op) {
            return pgd_error(PGD_ERR_INVALID,
                             "comm threads: rank 0 called %s but rank %d called %s (collectives "
                             "must be called in the same order on all ranks)",
                             op_names[a->op], r, op_names[b->op]);
        } else if (b->count != a->count) {
            what = a->op == OP_BROADCAST ? "bytes" : "count";
            va = (long long)a->count, vb = (long long)b->count;
        } else if (b->dt != a->dt) {
            what = "dtype", va = a->dt, vb = b->dt;
        } else if (b->root != a->root) {
            what = "root", va = a->root, vb = b->root;
        }
        if (what)
            return pgd_error(PGD_ERR_INVALID,
                             "comm threads %s: %s mismatch: rank 0 has %lld, rank %d has %lld",
                             op_names[a->op], what, va, r, vb);
    }
    return PGD_OK;
}

/* Publish this rank's arguments and cross the entry barrier. */
static pgd_status enter(tcomm *c, int op, int dt, size_t count, int root, const void *send,
                        void *buf) {
    slot *me = &c->st->slots[c->base.rank];
    me->op = op, me->dt = dt, me->count = count, me->root = root;
    me->send = send, me->buf = buf;
    return bar_wait(c, 1, op_names[op]);
}

static pgd_status leave(tcomm *c, pgd_status st) {
    bar_wait(c, 0, "exit"); /* not abortable: cannot fail */
    return st;
}

static pgd_status threads_all_reduce(pgd_comm *base, void *buf, size_t count, pgd_dtype dt) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    PGD_TRY(enter(c, OP_ALL_REDUCE, dt, count, 0, NULL, buf));
    pgd_status st = check_same(c);
    if (st == PGD_OK) {
        size_t lo, hi;
        pgd_comm_slice(count, s->n, base->rank, SLICE_ALIGN, &lo, &hi);
        for (int k = 0; k < s->n; k++) c->ptrs[k] = s->slots[k].buf;
        if (hi > lo)
            pgd_comm_sum_slice(c->ptrs, s->n, (const void *const *)c->ptrs, s->n, lo, hi - lo, dt);
    }
    return leave(c, st);
}

static pgd_status threads_all_gather(pgd_comm *base, const void *send, void *recv, size_t count,
                                     pgd_dtype dt) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    PGD_TRY(enter(c, OP_ALL_GATHER, dt, count, 0, send, recv));
    pgd_status st = check_same(c);
    if (st == PGD_OK) {
        size_t bytes = count * pgd_dtype_size(dt);
        for (int k = 0; k < s->n; k++) {
            char *dst = (char *)recv + (size_t)k * bytes;
            if ((const char *)s->slots[k].send != dst) memcpy(dst, s->slots[k].send, bytes);
        }
    }
    return leave(c, st);
}

static pgd_status threads_broadcast(pgd_comm *base, void *buf, size_t bytes, int root) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    PGD_TRY(enter(c, OP_BROADCAST, 0, bytes, root, NULL, buf));
    pgd_status st = check_same(c);
    if (st == PGD_OK && base->rank != root) memcpy(buf, s->slots[root].buf, bytes);
    return leave(c, st);
}

static pgd_status threads_barrier(pgd_comm *base) {
    return bar_wait((tcomm *)base, 1, "barrier");
}

/* ---- split ---- */

/* Leader (rank 0): make one group per color >= 0, members ordered by
 * (key, parent rank), and leave each member's handle in its slot. */
static pgd_status build_groups(tcomm *c) {
    tstate *s = c->st;
    int n = s->n;
    int *members = malloc((size_t)n * sizeof *members);
    char *done = calloc((size_t)n, 1);
    tcomm **h = calloc((size_t)n, sizeof *h);
    pgd_status st = PGD_OK;
    if (!members || !done || !h) {
        st = pgd_error(PGD_ERR_OOM, "comm threads split: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) s->slots[i].child = NULL;
    for (int i = 0; i < n && st == PGD_OK; i++) {
        if (done[i] || s->slots[i].color < 0) continue;
        int m = 0;
        for (int j = i; j < n; j++) {
            if (done[j] || s->slots[j].color != s->slots[i].color) continue;
            /* insertion by (key, parent rank); j increases, so ties keep order */
            int at = m;
            while (at > 0 && s->slots[members[at - 1]].key > s->slots[j].key) {
                members[at] = members[at - 1];
                at--;
            }
            members[at] = j;
            m++;
            done[j] = 1;
        }
        st = group_new(m, s->fam, h);
        if (st == PGD_OK)
            for (int k = 0; k < m; k++) s->slots[members[k]].child = &h[k]->base;
    }
    if (st != PGD_OK) { /* undo: destroy every group made so far */
        for (int i = 0; i < n; i++)
            if (s->slots[i].child) pgd_comm_destroy(s->slots[i].child), s->slots[i].child = NULL;
    }
out:
    free(members);
    free(done);
    free(h);
    return st;
}

static pgd_status threads_split(pgd_comm *base, int color, int key, pgd_comm **out) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    slot *me = &s->slots[base->rank];
    me->color = color, me->key = key;
    PGD_TRY(enter(c, OP_SPLIT, 0, 0, 0, NULL, NULL));
    pgd_status st = check_same(c);
    if (st == PGD_OK && base->rank == 0) {
        s->split_status = build_groups(c);
        if (s->split_status != PGD_OK)
            snprintf(s->split_msg, sizeof s->split_msg, "%s", pgd_last_error());
    }
    bar_wait(c, 0, "exit");
    if (st != PGD_OK) return st;
    if (s->split_status != PGD_OK) return pgd_error(s->split_status, "%s", s->split_msg);
    *out = me->child;
    return PGD_OK;
}

/* ---- send / recv ---- */

static chan *find_chan(mailbox *mb, int src, int tag) {
    for (chan *ch = mb->chans; ch; ch = ch->next)
        if (ch->src == src && ch->tag == tag) return ch;
    chan *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->src = src, ch->tag = tag;
    ch->next = mb->chans;
    mb->chans = ch;
    return ch;
}

/* Called with mb->mu held after observing sequence number `seen`; returns
 * with it held once something may have changed. */
static void box_wait(tstate *s, mailbox *mb, unsigned seen) {
    if (s->spin_s > 0) {
        pthread_mutex_unlock(&mb->mu);
        double deadline = pgd_comm_now() + s->spin_s;
        int changed = 0;
        while (!changed) {
            for (int i = 0; i < 64 && !changed; i++) {
                changed = atomic_load(&mb->seq) != seen;
                cpu_relax();
            }
            if (family_aborted(s->fam) || pgd_comm_now() > deadline) break;
        }
        pthread_mutex_lock(&mb->mu);
    }
    if (atomic_load(&mb->seq) == seen && !family_aborted(s->fam))
        pthread_cond_wait(&mb->cv, &mb->mu);
}

static void box_changed(mailbox *mb) { /* with mb->mu held */
    atomic_fetch_add(&mb->seq, 1);
    pthread_cond_broadcast(&mb->cv);
}

static msg *take_spare(mailbox *mb, size_t bytes) {
    for (msg **pp = &mb->spares; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= bytes) {
            msg *m = *pp;
            *pp = m->next;
            mb->nspares--;
            return m;
        }
    }
    return NULL;
}

static void give_spare(mailbox *mb, msg *m) {
    if (mb->nspares >= MAX_SPARES) {
        free(m);
        return;
    }
    m->next = mb->spares;
    mb->spares = m;
    mb->nspares++;
}

static pgd_status threads_send(pgd_comm *base, const void *buf, size_t bytes, int dst, int tag) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    mailbox *mb = &s->boxes[dst];
    pthread_mutex_lock(&mb->mu);
    chan *ch = find_chan(mb, base->rank, tag);
    if (!ch) {
        pthread_mutex_unlock(&mb->mu);
        return pgd_error(PGD_ERR_OOM, "comm threads send: out of memory");
    }
    for (;;) {
        if (family_aborted(s->fam)) {
            pthread_mutex_unlock(&mb->mu);
            return abort_error(c, "send");
        }
        if (!ch->head && ch->rstate == R_POSTED && ch->rbytes == bytes) {
            /* the receiver waits: copy straight into its buffer */
            ch->rstate = R_CLAIMED;
            void *to = ch->rbuf;
            pthread_mutex_unlock(&mb->mu);
            if (bytes) memcpy(to, buf, bytes);
            pthread_mutex_lock(&mb->mu);
            ch->rstate = R_DONE;
            box_changed(mb);
            pthread_mutex_unlock(&mb->mu);
            return PGD_OK;
        }
        if (!ch->queued || ch->queued + bytes <= s->channel_bytes) break;
        box_wait(s, mb, atomic_load(&mb->seq)); /* channel full: wait for the receiver */
    }
    msg *m = take_spare(mb, bytes);
    pthread_mutex_unlock(&mb->mu);
    if (!m) {
        m = malloc(sizeof *m + (bytes ? bytes : 1));
        if (!m)
            return pgd_error(PGD_ERR_OOM, "comm threads send: out of memory buffering %zu bytes",
                             bytes);
        m->cap = bytes;
    }
    m->next = NULL;
    m->bytes = bytes;
    if (bytes) memcpy(m->data, buf, bytes);
    pthread_mutex_lock(&mb->mu);
    if (ch->tail) ch->tail->next = m;
    else ch->head = m;
    ch->tail = m;
    ch->queued += bytes;
    box_changed(mb);
    pthread_mutex_unlock(&mb->mu);
    return PGD_OK;
}

static pgd_status threads_recv(pgd_comm *base, void *buf, size_t bytes, int src, int tag) {
    tcomm *c = (tcomm *)base;
    tstate *s = c->st;
    mailbox *mb = &s->boxes[base->rank];
    pthread_mutex_lock(&mb->mu);
    chan *ch = find_chan(mb, src, tag);
    if (!ch) {
        pthread_mutex_unlock(&mb->mu);
        return pgd_error(PGD_ERR_OOM, "comm threads recv: out of memory");
    }
    for (;;) {
        if (ch->rstate == R_DONE) { /* a sender copied into buf */
            ch->rstate = R_NONE;
            pthread_mutex_unlock(&mb->mu);
            return PGD_OK;
        }
        if (ch->rstate == R_CLAIMED) { /* copy in progress: must wait, even on abort */
            pthread_cond_wait(&mb->cv, &mb->mu);
            continue;
        }
        if (ch->head) {
            ch->rstate = R_NONE;
            msg *m = ch->head;
            ch->head = m->next;
            if (!ch->head) ch->tail = NULL;
            ch->queued -= m->bytes;
            box_changed(mb); /* room for a waiting sender */
            pthread_mutex_unlock(&mb->mu);
            pgd_status st = PGD_OK;
            if (m->bytes != bytes)
                st = pgd_error(PGD_ERR_INVALID,
                               "pgd_comm_recv: rank %d expected %zu bytes from rank %d (tag %d) "
                               "but the message has %zu",
                               base->rank, bytes, src, tag, m->bytes);
            else if (bytes)
                memcpy(buf, m->data, bytes);
            pthread_mutex_lock(&mb->mu);
            give_spare(mb, m);
            pthread_mutex_unlock(&mb->mu);
            return st;
        }
        if (family_aborted(s->fam)) {
            ch->rstate = R_NONE;
            pthread_mutex_unlock(&mb->mu);
            return abort_error(c, "recv");
        }
        if (ch->rstate == R_NONE) {
            ch->rbuf = buf, ch->rbytes = bytes, ch->rstate = R_POSTED;
        }
        box_wait(s, mb, atomic_load(&mb->seq));
    }
}

static const struct pgd_comm_ops threads_ops = {
    .name = "threads",
    .destroy = threads_destroy,
    .split = threads_split,
    .all_reduce_sum = threads_all_reduce,
    .all_gather = threads_all_gather,
    .broadcast = threads_broadcast,
    .send = threads_send,
    .recv = threads_recv,
    .barrier = threads_barrier,
    .abort = threads_abort,
    .aborted = threads_aborted,
};
