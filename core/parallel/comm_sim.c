/* comm_sim.c - the simulator's communicator: rank 0 of `n` identical
 * tensor-parallel ranks, simulated by one process. The other ranks would run
 * the same ops at the same time on their own devices, so one rank's time is
 * the step's time; this communicator moves no data (the sim backend's
 * buffers are virtual) and advances the virtual clock by each collective's
 * cost on the device's links (pgd_sim_cost_all_reduce / _all_gather of
 * backends/sim/sim_cost.h: the preset's fitted all-reduce curves, else a
 * ring over link_bw and link_lat; all n ranks on one host),
 * where bytes counts the buffer in the device's activation dtype
 * (act_bytes per element, fp16 on the GPU presets). Commands (broadcast)
 * and barriers are host work and free. Point-to-point moves nothing and
 * costs nothing here: a pipeline's stages each have their own clock, and
 * the executor that runs them (core/exec/exec_simpipe.c) prices the
 * stage-to-stage transfer between those clocks (pgd_sim_cost_send). */
#include <stdlib.h>
#include <string.h>

#include "comm_impl.h"
#include "pagoda/clock.h"
#include "sim/sim_cost.h"

typedef struct sim_comm {
    pgd_comm base;
    pgd_clock *clock; /* borrowed */
    pgd_sim_device dev;
    char *reason;     /* abort reason */
} sim_comm;

static pgd_status sim_create(int n, pgd_clock *clock, const pgd_sim_device *dev, pgd_comm **out);

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
    return sim_create(c->size, s->clock, &s->dev, out);
}

static double elems_bytes(const sim_comm *s, size_t count) { return (double)count * s->dev.act_bytes; }

static pgd_status sim_all_reduce(pgd_comm *c, void *buf, size_t count, pgd_dtype dt) {
    sim_comm *s = (sim_comm *)c;
    (void)buf, (void)dt;
    pgd_sim_cost cost = {.dev = s->dev, .tp = 1};
    pgd_clock_advance(s->clock, pgd_sim_cost_all_reduce(&cost, c->size, 1, elems_bytes(s, count)));
    return PGD_OK;
}

static pgd_status sim_all_gather(pgd_comm *c, const void *send, void *recv, size_t count, pgd_dtype dt) {
    sim_comm *s = (sim_comm *)c;
    (void)send, (void)recv, (void)dt;
    pgd_sim_cost cost = {.dev = s->dev, .tp = 1};
    pgd_clock_advance(s->clock, pgd_sim_cost_all_gather(&cost, c->size, elems_bytes(s, count) * c->size));
    return PGD_OK;
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

static pgd_status sim_create(int n, pgd_clock *clock, const pgd_sim_device *dev, pgd_comm **out) {
    sim_comm *s = calloc(1, sizeof *s);
    if (!s) return pgd_error(PGD_ERR_OOM, "sim communicator: out of memory");
    s->base.ops = &sim_ops;
    s->base.rank = 0;
    s->base.size = n;
    s->clock = clock;
    s->dev = *dev;
    *out = &s->base;
    return PGD_OK;
}

pgd_status pgd_comm_sim_create(int n, pgd_clock *clock, const char *device, pgd_comm **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "sim communicator: NULL argument");
    *out = NULL;
    if (n < 1 || n > 64) return pgd_error(PGD_ERR_INVALID, "sim communicator: %d ranks (1..64)", n);
    if (!clock) return pgd_error(PGD_ERR_INVALID, "sim communicator: needs the sim backend's virtual clock");
    pgd_sim_device dev;
    PGD_TRY(pgd_sim_device_find(device && *device ? device : "a100-40gb", &dev));
    if (!(dev.link_bw > 0))
        return pgd_error(PGD_ERR_INVALID, "sim communicator: device %s has no device-to-device link "
                         "bandwidth for tensor parallelism", dev.name);
    return sim_create(n, clock, &dev, out);
}
