/* clock.h - the one notion of time the engine and the experiment runner
 * share: a real monotonic clock (real backends: requests arrive while the
 * engine computes) or a virtual clock that only moves when someone advances
 * it (the simulator backend's cost model, deterministic tests).
 *
 * Invariants: pgd_clock_now() never decreases; a virtual clock starts at
 * 0 and changes only through pgd_clock_advance()/pgd_clock_sleep(); sleeping
 * on a virtual clock advances it by exactly the requested time and returns
 * at once. A real clock's advance() is a no-op (time passes by itself). */
#ifndef PAGODA_CLOCK_H
#define PAGODA_CLOCK_H

#include "pagoda/status.h"

typedef struct pgd_clock pgd_clock;

typedef enum pgd_clock_kind { PGD_CLOCK_REAL = 0, PGD_CLOCK_VIRTUAL } pgd_clock_kind;

pgd_status pgd_clock_create(pgd_clock_kind kind, pgd_clock **out);
void pgd_clock_destroy(pgd_clock *c);
pgd_clock_kind pgd_clock_get_kind(const pgd_clock *c);
/* "real" or "virtual". */
const char *pgd_clock_kind_name(pgd_clock_kind k);

/* Seconds since an arbitrary fixed origin (virtual: since creation, from 0).
 * c == NULL reads the process-wide real monotonic clock. */
double pgd_clock_now(const pgd_clock *c);
/* Virtual: move time forward by dt >= 0 seconds. Real: no-op. */
void pgd_clock_advance(pgd_clock *c, double dt);
/* Wait until pgd_clock_now(c) >= t (real: nanosleep, interrupted sleeps
 * resumed; virtual: jump to t if it is in the future). c may be NULL (real). */
void pgd_clock_sleep_until(pgd_clock *c, double t);

#endif
