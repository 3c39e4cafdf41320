/* log.c - leveled stderr logging; level read once from PAGODA_LOG. */
#include "pagoda/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int level = -1;

static pgd_log_level env_level(void) {
    const char *e = getenv("PAGODA_LOG");
    if (!e) return PGD_LOG_WARN;
    if (!strcmp(e, "error")) return PGD_LOG_ERROR;
    if (!strcmp(e, "info")) return PGD_LOG_INFO;
    if (!strcmp(e, "debug")) return PGD_LOG_DEBUG;
    return PGD_LOG_WARN;
}

void pgd_log_set_level(pgd_log_level lvl) { level = (int)lvl; }
pgd_log_level pgd_log_get_level(void) {
    if (level < 0) level = (int)env_level();
    return (pgd_log_level)level;
}

void pgd_log(pgd_log_level lvl, const char *fmt, ...) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    if ((int)lvl > (int)pgd_log_get_level()) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pagoda[%s]: ", names[lvl]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
