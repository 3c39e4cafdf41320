/* status.h - the one error type of Pagoda and its message channel.
 *
 * Every fallible function returns pgd_status. On failure it also records a
 * human-readable message (naming the file, key or value at fault) that
 * pgd_last_error() returns until the next error on the same thread.
 * Broken internal invariants are not errors: they hit PGD_ASSERT, which is
 * compiled in release builds too. */
#ifndef PAGODA_STATUS_H
#define PAGODA_STATUS_H

#include <stdarg.h>

typedef enum pgd_status {
    PGD_OK = 0,
    PGD_ERR_INVALID,     /* bad argument, bad config value, impossible request */
    PGD_ERR_OOM,         /* allocation failed */
    PGD_ERR_NO_BLOCKS,   /* KV manager has no room (not fatal: caller preempts) */
    PGD_ERR_UNSUPPORTED, /* valid request this build/backend cannot do */
    PGD_ERR_DEVICE,      /* device runtime error */
    PGD_ERR_IO,          /* missing/unreadable file */
    PGD_ERR_FORMAT,      /* file exists but its content is malformed */
    PGD_ERR_COMM,        /* a communicator failed: a rank aborted or died */
} pgd_status;

/* Short constant name of a status ("invalid argument", ...). */
const char *pgd_status_str(pgd_status s);

/* Record the message for the current thread and return `s` (so callers can
 * write `return pgd_error(PGD_ERR_IO, "cannot open %s: %s", path, strerror(errno));`). */
pgd_status pgd_error(pgd_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Message of the last error on this thread ("" if none). */
const char *pgd_last_error(void);
void pgd_clear_error(void);

void pgd_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));
#define PGD_ASSERT(e) ((e) ? (void)0 : pgd_assert_fail(#e, __FILE__, __LINE__))

/* Propagate a failure: `PGD_TRY(f(x));` inside a function returning pgd_status. */
#define PGD_TRY(expr)                          \
    do {                                       \
        pgd_status pgd__s = (expr);            \
        if (pgd__s != PGD_OK) return pgd__s;   \
    } while (0)

#endif
