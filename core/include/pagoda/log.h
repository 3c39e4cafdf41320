/* log.h - leveled logging to stderr. Level from pgd_log_set_level() or the
 * PAGODA_LOG environment variable (error|warn|info|debug); default warn. */
#ifndef PAGODA_LOG_H
#define PAGODA_LOG_H

typedef enum { PGD_LOG_ERROR = 0, PGD_LOG_WARN, PGD_LOG_INFO, PGD_LOG_DEBUG } pgd_log_level;

void pgd_log_set_level(pgd_log_level lvl);
pgd_log_level pgd_log_get_level(void);
void pgd_log(pgd_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PGD_LOG_E(...) pgd_log(PGD_LOG_ERROR, __VA_ARGS__)
#define PGD_LOG_W(...) pgd_log(PGD_LOG_WARN, __VA_ARGS__)
#define PGD_LOG_I(...) pgd_log(PGD_LOG_INFO, __VA_ARGS__)
#define PGD_LOG_D(...) pgd_log(PGD_LOG_DEBUG, __VA_ARGS__)

#endif
