/* status.c - thread-local last-error message and assertion failure. */
#include "pagoda/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_msg[1024];

const char *pgd_status_str(pgd_status s) {
    switch (s) {
    case PGD_OK: return "ok";
    case PGD_ERR_INVALID: return "invalid argument";
    case PGD_ERR_OOM: return "out of memory";
    case PGD_ERR_NO_BLOCKS: return "no free KV blocks";
    case PGD_ERR_UNSUPPORTED: return "unsupported";
    case PGD_ERR_DEVICE: return "device error";
    case PGD_ERR_IO: return "I/O error";
    case PGD_ERR_FORMAT: return "format error";
    case PGD_ERR_COMM: return "communication error";
    }
    return "unknown status";
}

pgd_status pgd_error(pgd_status s, const char *fmt, ...) {
    /* format into a temporary first: callers may pass pgd_last_error() as
     * an argument to wrap the previous message */
    char tmp[sizeof last_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(last_msg, tmp, sizeof last_msg);
    return s;
}

const char *pgd_last_error(void) { return last_msg; }
void pgd_clear_error(void) { last_msg[0] = '\0'; }

void pgd_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "pagoda: internal error: assertion `%s' failed at %s:%d\n", expr, file, line);
    abort();
}
