/* comm_sim.c - the simulator's communicator: rank 0 of `n` identical
 * tensor-parallel ranks, simulated by one process. The other ranks would run
 * the same ops at the same time on their own devices, so one rank's time is
 * the step's time; this communicator moves no data (the sim backend's
 * buffers are virtual) and advances the virtual clock by each collective's
 * cost on the device's links, which the sim backend prices (its
 * "link_seconds" request, pagoda/backend.h; backends/sim/sim_cost.h: the
 * preset's fitted all-reduce curves, else a ring over link_bw and
 * link_lat; all n ranks on one host) with the buffer in the device's
 * activation dtype (fp16 on the GPU presets). Commands (broadcast)
 * and barriers are host work and free. Point-to-point moves nothing and
 * costs nothing here: a pipeline's stages each have their own clock, and
 * the executor that runs them (core/exec/exec_simpipe.c) prices the
 * stage-to-stage transfer between those clocks (pgd_sim_cost_send). */
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"
#include "pagoda/backend.h"
#include "pagoda/clock.h"

typedef struct sim_comm {
    pgd_comm base;
    pgd_backend *sim; /* borrowed: prices the collectives */
    pgd_clock *clock; /* borrowed: the sim's */
    char *reason;     /* abort reason */
} sim_comm;

static pgd_status sim_create(int n, pgd_backend *sim, pgd_comm **out);

static void sim_destroy(pgd_comm *c) {
    sim_comm *s = (sim_comm *)c;
    free(s->reason);
    free(s);
}

static pgd_status sim_split(pgd_comm *c, int color, int key, pgd_comm **out) {
    sim_comm *s = (sim_comm *)c;
    (void)key;
    if (color < 0) return PGD_OK;
    /* every simulated rank is alike: the group is as large as its parent */
    return sim_create(c->size, s->sim, out);
}

/* Advance the clock by what `op` of count elements costs among the ranks. */
static pgd_status priced(sim_comm *s, const char *op, size_t count) {
    pgd_backend_link_cost l = {.op = op, .ranks = s->base.size, .elems = (double)count};
    PGD_TRY(pgd_backend_control(s->sim, "link_seconds", &l));
    pgd_clock_advance(s->clock, l.seconds);
    return PGD_OK;
}

static pgd_status sim_all_reduce(pgd_comm *c, void *buf, size_t count, pgd_dtype dt) {
    (void)buf, (void)dt;
    return priced((sim_comm *)c, "all_reduce", count);
}

static pgd_status sim_all_gather(pgd_comm *c, const void *send, void *recv, size_t count, pgd_dtype dt) {
    (void)send, (void)recv, (void)dt;
    return priced((sim_comm *)c, "all_gather", count);
}

static pgd_status sim_broadcast(pgd_comm *c, void *buf, size_t bytes, int root) {
    (void)c, (void)buf, (void)bytes, (void)root;
    return PGD_OK;
}

static pgd_status sim_send(pgd_comm *c, const void *buf, size_t bytes, int dst, int tag) {
    (void)c, (void)buf, (void)bytes, (void)dst, (void)tag;
    return PGD_OK;
}
static pgd_status sim_recv(pgd_comm *c, void *buf, size_t bytes, int src, int tag) {
    (void)c, (void)buf, (void)bytes, (void)src, (void)tag;
    return PGD_OK;
}
static pgd_status sim_barrier(pgd_comm *c) {
    (void)c;
    return PGD_OK;
}
static void sim_abort(pgd_comm *c, const char *reason) {
    sim_comm *s = (sim_comm *)c;
    if (!s->reason) {
        size_t n = strlen(reason) + 1;
        s->reason = malloc(n);
        if (s->reason) memcpy(s->reason, reason, n);
    }
}
static const char *sim_aborted(const pgd_comm *c) { return ((const sim_comm *)c)->reason; }

static const struct pgd_comm_ops sim_ops = {
    .name = "sim",
    .destroy = sim_destroy,
    .split = sim_split,
    .all_reduce_sum = sim_all_reduce,
    .all_gather = sim_all_gather,
    .broadcast = sim_broadcast,
    .send = sim_send,
    .recv = sim_recv,
    .barrier = sim_barrier,
    .abort = sim_abort,
    .aborted = sim_aborted,
};

static pgd_status sim_create(int n, pgd_backend *sim, pgd_comm **out) {
    sim_comm *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "sim communicator: out of memory");
    s->base.ops = &sim_ops;
    s->base.rank = 0;
    s->base.size = n;
    s->sim = sim;
    s->clock = pgd_backend_clock(sim);
    *out = &s->base;
    return PGD_OK;
}

pgd_status pgd_comm_sim_create(int n, pgd_backend *sim, pgd_comm **out) {
    if (!out || !sim) return pgd_error(PGD_ERR_INVALID, "sim communicator: NULL argument");
    *out = NULL;
    if (n < 1 || n > 64) return pgd_error(PGD_ERR_INVALID, "sim communicator: %d ranks (1..64)", n);
    if (!pgd_backend_clock(sim))
        return pgd_error(PGD_ERR_INVALID, "sim communicator: needs the sim backend's virtual clock");
    const char *dev = "?";
    pgd_backend_link_cost probe = {.op = "all_reduce", .ranks = n};
    if (pgd_backend_control(sim, "link_seconds", &probe) != PGD_OK) {
        pgd_backend_control(sim, "device", &dev);
        return pgd_error(PGD_ERR_INVALID,
                         "sim communicator: device %s has no device-to-device link "
                         "bandwidth for tensor parallelism",
                         dev);
    }
    return sim_create(n, sim, out);
}
