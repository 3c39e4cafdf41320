/* results.h - the results directory protocol: files written whole or not at
 * all, runs marked complete only when every file is whole, one writer per
 * experiment directory, stale runs never read as current.
 *
 * Files: every results file is written to a temporary name next to it
 * (NAME.tmp-PID), flushed, fsync'ed and renamed over NAME; a failed write
 * (full disk, EFBIG) removes the temporary file and names NAME.
 *
 * Runs: a run directory is complete when it holds the marker complete.json,
 * written last, which lists each file of the run with its size and FNV-1a
 * 64 hash, the run name and the sweep id of the `pagoda run` that wrote it.
 * A reader checks the marker and each file it reads against it
 * (pgd_results_check_run); a directory without the marker, or a file that
 * is missing, cut or changed, is an incomplete run. `pagoda run` writes a
 * run into <expdir>/.<run>.partial/ and renames it to <expdir>/<run>/ once
 * sealed, so an interrupted write leaves a hidden .partial directory (that
 * the next `pagoda run` removes and readers name as interrupted), never a
 * half-written run directory.
 *
 * Experiment directories: `pagoda run` holds an exclusive lock
 * (flock on <expdir>/.lock, which names the holder) for its whole sweep. A
 * full sweep first moves the previous results (run directories, runs.csv,
 * plots) into <expdir>/.previous/; a sweep with --only moves each run's old
 * directory there before computing it. runs.csv records each row's
 * sweep_id, so a reader can tell a run directory that runs.csv does not
 * describe. */
#ifndef PAGODA_RESULTS_H
#define PAGODA_RESULTS_H

#include <stddef.h>
#include <stdio.h>

#include "pagoda/status.h"

struct json_t;

#define PGD_RESULTS_MARKER "complete.json"
#define PGD_RESULTS_PARTIAL_SUFFIX ".partial"
#define PGD_RESULTS_PREVIOUS ".previous"

/* Open a temporary file for `path` (its name goes into tmp[n]). */
pgd_status pgd_results_open(const char *path, char *tmp, size_t n, FILE **out);
/* Close f (opened by pgd_results_open), fsync it and rename tmp to path.
 * On any failure (ferror, fclose, fsync, rename) tmp is removed and the
 * error names path. f is closed in every case. */
pgd_status pgd_results_commit(FILE *f, const char *tmp, const char *path);
/* Dump a JSON value to path with pgd_results_open/commit. */
pgd_status pgd_results_write_json(const struct json_t *j, size_t flags, const char *path);

/* Write dir/complete.json listing `files` (NULL-terminated names inside
 * dir, each must exist) with their sizes and hashes. */
pgd_status pgd_results_seal(const char *dir, const char *run, const char *sweep_id, const char *const *files);

/* Check that dir is a complete run: its marker is present and well formed,
 * and each of `need` (NULL-terminated; NULL = every file the marker lists)
 * is listed in it and matches its size and hash. sweep_id (may be NULL)
 * receives the marker's sweep id. PGD_ERR_FORMAT with a message naming
 * dir and what is wrong otherwise. */
pgd_status pgd_results_check_run(const char *dir, const char *const *need, char *sweep_id, size_t n);

/* A new sweep id: UTC time, pid and a counter ("20261204T205800Z-1234-1"). */
void pgd_results_new_sweep_id(char *buf, size_t n);

/* Take the exclusive lock of an experiment directory (created if needed)
 * without waiting. Fails naming the holder (pid, host, start time) when
 * another process holds it, or naming the directory when it is not
 * writable. *fd gets the lock (release with pgd_results_unlock). */
pgd_status pgd_results_lock(const char *expdir, int *fd);
void pgd_results_unlock(int fd);

/* rm -rf path (no error when absent). */
pgd_status pgd_results_remove_tree(const char *path);
/* Move expdir/name to expdir/.previous/name (replacing an older one there);
 * nothing to do when expdir/name does not exist. */
pgd_status pgd_results_move_aside(const char *expdir, const char *name);
/* Start a sweep in a locked expdir: remove leftover .partial directories;
 * with `all`, move every visible entry (previous runs, runs.csv, plots)
 * into .previous/ (emptied first). *moved gets how many were moved. */
pgd_status pgd_results_begin_sweep(const char *expdir, int all, int *moved);

/* The sweep_id of run `run` in expdir/runs.csv: 1 and the id in buf when
 * runs.csv has a sweep_id column and a row for the run; 0 when runs.csv
 * has no row for it; -1 when there is no runs.csv or no sweep_id column. */
int pgd_results_runs_csv_sweep(const char *expdir, const char *run, char *buf, size_t n);

#endif
