/* fuzz_util.h - shared by the fuzz targets: the readers under test take a
 * path, so each input is written to one temporary file per process (its
 * suffix chosen by the target: the trace reader picks Mooncake by
 * ".jsonl"), and logging is kept to errors. */
#ifndef PAGODA_FUZZ_UTIL_H
#define PAGODA_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagoda/log.h"

static char fuzz_paths[8][128];

static inline void fuzz_cleanup(void) {
    for (int i = 0; i < 8; i++)
        if (fuzz_paths[i][0]) unlink(fuzz_paths[i]);
}

/* Write data to a per-process temp file named with `suffix` (kept across
 * calls, one per suffix slot 0..7); returns its path. */
static inline const char *fuzz_file(int slot, const char *suffix, const uint8_t *data, size_t size) {
    char (*paths)[128] = fuzz_paths;
    if (!paths[slot][0]) {
        if (slot == 0 || !fuzz_paths[0][0]) atexit(fuzz_cleanup);
        snprintf(paths[slot], sizeof paths[slot], "/tmp/pgd_fuzz_%d_%d_XXXXXX%s", (int)getpid(), slot, suffix);
        int fd = mkstemps(paths[slot], (int)strlen(suffix));
        if (fd < 0) abort();
        close(fd);
        pgd_log_set_level(PGD_LOG_ERROR);
    }
    FILE *f = fopen(paths[slot], "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return paths[slot];
}

/* A NUL-terminated malloc'd copy of data. */
static inline char *fuzz_str(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
