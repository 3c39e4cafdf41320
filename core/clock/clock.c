/* clock.c - real (CLOCK_MONOTONIC) and virtual clocks behind pgd_clock.
 *
 * Invariant: a virtual clock's time only grows (advance ignores negative
 * or non-finite steps; sleep_until never moves it backwards). */
#include "pagoda/clock.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

struct pgd_clock {
    pgd_clock_kind kind;
    double t; /* virtual time, seconds */
};

static double real_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pgd_status pgd_clock_create(pgd_clock_kind kind, pgd_clock **out) {
    if (!out) return pgd_error(PGD_ERR_INVALID, "clock: NULL argument");
    *out = NULL;
    if (kind != PGD_CLOCK_REAL && kind != PGD_CLOCK_VIRTUAL)
        return pgd_error(PGD_ERR_INVALID, "clock: unknown kind %d", (int)kind);
    pgd_clock *c = calloc(1, sizeof *c);
    if (!c) return pgd_error(PGD_ERR_OOM, "clock: out of memory");
    c->kind = kind;
    *out = c;
    return PGD_OK;
}

void pgd_clock_destroy(pgd_clock *c) { free(c); }

pgd_clock_kind pgd_clock_get_kind(const pgd_clock *c) { return c ? c->kind : PGD_CLOCK_REAL; }

const char *pgd_clock_kind_name(pgd_clock_kind k) { return k == PGD_CLOCK_VIRTUAL ? "virtual" : "real"; }

double pgd_clock_now(const pgd_clock *c) {
    if (c && c->kind == PGD_CLOCK_VIRTUAL) return c->t;
    return real_now();
}

void pgd_clock_advance(pgd_clock *c, double dt) {
    if (c && c->kind == PGD_CLOCK_VIRTUAL && isfinite(dt) && dt > 0) c->t += dt;
}

void pgd_clock_sleep_until(pgd_clock *c, double t) {
    if (!isfinite(t)) return;
    if (c && c->kind == PGD_CLOCK_VIRTUAL) {
        if (t > c->t) c->t = t;
        return;
    }
    double dt = t - real_now();
    if (dt <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)dt, .tv_nsec = (long)((dt - floor(dt)) * 1e9)};
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
