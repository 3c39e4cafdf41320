/* results.c - the results directory protocol (results.h): whole-or-absent
 * files (temporary name, fsync, rename), the complete.json marker of a run
 * (sizes and FNV-1a hashes of its files, written last) and its check, the
 * experiment directory's lock (flock, naming the holder), and moving a
 * previous sweep's results aside.
 *
 * Invariants: a path handed to pgd_results_commit either holds the whole
 * new content or is untouched; a marker is only written after every file
 * it lists is whole on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pagoda/results.h"
#include "pagoda/runner.h"

pgd_status pgd_results_open(const char *path, char *tmp, size_t n, FILE **out) {
    *out = NULL;
    if (snprintf(tmp, n, "%s.tmp-%ld", path, (long)getpid()) >= (int)n)
        return pgd_error(PGD_ERR_INVALID, "path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    *out = f;
    return PGD_OK;
}

pgd_status pgd_results_commit(FILE *f, const char *tmp, const char *path) {
    int err = 0;
    if (fflush(f) != 0 || ferror(f)) err = errno ? errno : EIO;
    if (!err && fsync(fileno(f)) != 0 && errno != EINVAL && errno != EROFS) err = errno;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    return PGD_OK;
}

pgd_status pgd_results_write_json(const json_t *j, size_t flags, const char *path) {
    char tmp[4300];
    FILE *f;
    PGD_TRY(pgd_results_open(path, tmp, sizeof tmp, &f));
    if (json_dumpf(j, f, flags) != 0 || fputc('\n', f) == EOF) {
        int e = errno ? errno : EIO;
        fclose(f);
        unlink(tmp);
        return pgd_error(PGD_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return pgd_results_commit(f, tmp, path);
}

/* Size and FNV-1a 64 hash of a file; -1 when it cannot be read. */
static int64_t hash_file(const char *path, uint64_t *h) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char buf[65536];
    uint64_t x = 14695981039346656037ull;
    int64_t total = 0;
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < k; i++) x = (x ^ buf[i]) * 1099511628211ull;
        total += (int64_t)k;
    }
    int bad = ferror(f);
    fclose(f);
    *h = x;
    return bad ? -1 : total;
}

pgd_status pgd_results_seal(const char *dir, const char *run, const char *sweep_id, const char *const *files) {
    char path[4300];
    json_t *o = json_object(), *fl = json_object();
    if (!o || !fl) {
        json_decref(o);
        json_decref(fl);
        return pgd_error(PGD_ERR_OOM, "results: out of memory");
    }
    json_object_set_new(o, "format", json_integer(1));
    json_object_set_new(o, "run", json_string(run ? run : ""));
    json_object_set_new(o, "sweep_id", json_string(sweep_id ? sweep_id : ""));
    json_object_set_new(o, "files", fl);
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        uint64_t h;
        int64_t size = hash_file(path, &h);
        if (size < 0) {
            json_decref(o);
            return pgd_error(PGD_ERR_IO, "cannot seal %s: cannot read %s", dir, path);
        }
        char hx[20];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)h);
        if (json_object_set_new(fl, files[i], json_pack("{s:I,s:s}", "bytes", (json_int_t)size, "fnv1a64", hx))) {
            json_decref(o);
            return pgd_error(PGD_ERR_OOM, "results: out of memory");
        }
    }
    snprintf(path, sizeof path, "%s/%s", dir, PGD_RESULTS_MARKER);
    pgd_status st = pgd_results_write_json(o, JSON_INDENT(2) | JSON_SORT_KEYS, path);
    json_decref(o);
    return st;
}

static pgd_status check_file(const char *dir, json_t *files, const char *name) {
    json_t *e = json_object_get(files, name);
    json_t *b = json_object_get(e, "bytes"), *hx = json_object_get(e, "fnv1a64");
    if (!json_is_integer(b) || !json_is_string(hx))
        return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: %s is not listed in its %s", dir, name,
                         PGD_RESULTS_MARKER);
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t h;
    int64_t size = hash_file(path, &h);
    if (size < 0) return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: %s is missing", dir, name);
    if (size != json_integer_value(b))
        return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: %s has %lld bytes, %lld when the run was written "
                         "(cut or changed since)", dir, name, (long long)size, (long long)json_integer_value(b));
    char mine[20];
    snprintf(mine, sizeof mine, "%016llx", (unsigned long long)h);
    if (strcmp(mine, json_string_value(hx)))
        return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: %s changed since the run was written (hash %s, "
                         "recorded %s)", dir, name, mine, json_string_value(hx));
    return PGD_OK;
}

pgd_status pgd_results_check_run(const char *dir, const char *const *need, char *sweep_id, size_t n) {
    char path[4300];
    struct stat sb;
    if (sweep_id && n) sweep_id[0] = 0;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return pgd_error(PGD_ERR_FORMAT, "run %s is missing (no such directory)", dir);
    snprintf(path, sizeof path, "%s/%s", dir, PGD_RESULTS_MARKER);
    if (stat(path, &sb) != 0)
        return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: no %s (its writing was cut short, or an older "
                         "pagoda wrote it); re-run it", dir, PGD_RESULTS_MARKER);
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    json_t *files = json_object_get(m, "files");
    if (!m || !json_is_object(files)) {
        json_decref(m);
        return pgd_error(PGD_ERR_FORMAT, "incomplete run %s: %s is malformed", dir, PGD_RESULTS_MARKER);
    }
    pgd_status st = PGD_OK;
    if (need) {
        for (int i = 0; need[i] && st == PGD_OK; i++) st = check_file(dir, files, need[i]);
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(files, k, v) {
            if ((st = check_file(dir, files, k)) != PGD_OK) break;
        }
    }
    const char *sid = json_string_value(json_object_get(m, "sweep_id"));
    if (st == PGD_OK && sweep_id && n) snprintf(sweep_id, n, "%s", sid ? sid : "");
    json_decref(m);
    return st;
}

void pgd_results_new_sweep_id(char *buf, size_t n) {
    static int counter;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, n, "%s-%ld-%d", ts, (long)getpid(), ++counter);
}

pgd_status pgd_results_lock(const char *expdir, int *fd) {
    *fd = -1;
    PGD_TRY(pgd_mkdir_p(expdir));
    char path[4300], holder[256] = "";
    snprintf(path, sizeof path, "%s/.lock", expdir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f < 0)
        return pgd_error(PGD_ERR_IO, "cannot write to the results directory %s: %s (check --output-dir or "
                         "[experiment] output_dir)", expdir, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t k = pread(f, holder, sizeof holder - 1, 0);
        holder[k > 0 ? k : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        close(f);
        if (e == EWOULDBLOCK)
            return pgd_error(PGD_ERR_IO, "results directory %s is in use by another `pagoda run` (%s); wait for it "
                             "to finish or use another --output-dir", expdir, holder[0] ? holder : "holder unknown");
        return pgd_error(PGD_ERR_IO, "cannot lock %s: %s", path, strerror(e));
    }
    char host[128] = "?", ts[32];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int k = snprintf(holder, sizeof holder, "pid %ld on %s, started %s\n", (long)getpid(), host, ts);
    if (ftruncate(f, 0) != 0 || pwrite(f, holder, (size_t)k, 0) != k) {
        int e = errno;
        close(f);
        return pgd_error(PGD_ERR_IO, "cannot write to the results directory %s: %s (check --output-dir or "
                         "[experiment] output_dir)", expdir, strerror(e));
    }
    /* the lock file may be writable in a directory that is not: check the directory itself */
    snprintf(path, sizeof path, "%s/.probe-%ld", expdir, (long)getpid());
    int p = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (p < 0 || close(p) != 0 || unlink(path) != 0) {
        int e = errno;
        close(f);
        return pgd_error(PGD_ERR_IO, "cannot write to the results directory %s: %s (check --output-dir or "
                         "[experiment] output_dir)", expdir, strerror(e));
    }
    *fd = f;
    return PGD_OK;
}

void pgd_results_unlock(int fd) {
    if (fd >= 0) close(fd);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) != 0 && errno != ENOENT ? -1 : 0;
}

pgd_status pgd_results_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return PGD_OK;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return pgd_error(PGD_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return PGD_OK;
}

pgd_status pgd_results_move_aside(const char *expdir, const char *name) {
    char from[4300], dir[4300], to[4400];
    struct stat sb;
    snprintf(from, sizeof from, "%s/%s", expdir, name);
    if (lstat(from, &sb) != 0) return PGD_OK;
    snprintf(dir, sizeof dir, "%s/%s", expdir, PGD_RESULTS_PREVIOUS);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return pgd_error(PGD_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(to, sizeof to, "%s/%s", dir, name);
    PGD_TRY(pgd_results_remove_tree(to));
    if (rename(from, to) != 0) return pgd_error(PGD_ERR_IO, "cannot move %s to %s: %s", from, to, strerror(errno));
    return PGD_OK;
}

pgd_status pgd_results_begin_sweep(const char *expdir, int all, int *moved) {
    if (moved) *moved = 0;
    char path[4300], prev[4300];
    snprintf(prev, sizeof prev, "%s/%s", expdir, PGD_RESULTS_PREVIOUS);
    DIR *d = opendir(expdir);
    if (!d) return pgd_error(PGD_ERR_IO, "cannot read %s: %s", expdir, strerror(errno));
    char **names = NULL;
    int n = 0, emptied = 0;
    pgd_status st = PGD_OK;
    for (struct dirent *de; st == PGD_OK && (de = readdir(d));) {
        const char *nm = de->d_name;
        size_t len = strlen(nm), sl = strlen(PGD_RESULTS_PARTIAL_SUFFIX);
        if (nm[0] == '.') {
            /* a run whose writing was cut short, or a temporary file of a killed writer */
            if ((len > sl && !strcmp(nm + len - sl, PGD_RESULTS_PARTIAL_SUFFIX)) || strstr(nm, ".tmp-")) {
                snprintf(path, sizeof path, "%s/%s", expdir, nm);
                st = pgd_results_remove_tree(path);
            }
            continue;
        }
        if (strstr(nm, ".tmp-")) { /* runs.csv.tmp-PID of a killed writer */
            snprintf(path, sizeof path, "%s/%s", expdir, nm);
            st = pgd_results_remove_tree(path);
            continue;
        }
        if (!all) continue;
        char **nn = realloc(names, sizeof *nn * (size_t)(n + 1));
        if (!nn || !(nn[n] = strdup(nm))) {
            if (nn) names = nn;
            st = pgd_error(PGD_ERR_OOM, "results: out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    for (int i = 0; st == PGD_OK && i < n; i++) {
        if (!emptied) { /* keep one generation: the sweep before this one */
            st = pgd_results_remove_tree(prev);
            emptied = 1;
        }
        if (st == PGD_OK) st = pgd_results_move_aside(expdir, names[i]);
        if (st == PGD_OK && moved) (*moved)++;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

int pgd_results_runs_csv_sweep(const char *expdir, const char *run, char *buf, size_t n) {
    char path[4300];
    snprintf(path, sizeof path, "%s/runs.csv", expdir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int col = -1, found = 0;
    if (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\r\n")] = 0;
        int i = 0;
        for (char *save = NULL, *tok = strtok_r(line, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++)
            if (!strcmp(tok, "sweep_id")) col = i;
    }
    while (col >= 0 && !found && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\r\n")] = 0;
        size_t nl = strcspn(line, ",");
        if (nl != strlen(run) || strncmp(line, run, nl)) continue;
        /* fields up to the sweep_id column (swept values may be quoted) */
        char *p = line;
        for (int i = 0; i < col && *p; i++) {
            int q = 0;
            while (*p && (q || *p != ',')) q ^= *p++ == '"';
            if (*p) p++;
        }
        size_t k = strcspn(p, ",");
        snprintf(buf, n, "%.*s", (int)k, p);
        found = 1;
    }
    free(line);
    fclose(f);
    return col < 0 ? -1 : found;
}
