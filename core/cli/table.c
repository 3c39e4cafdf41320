/* table.c - `pagoda table DIR...`: one table from the runs.csv (or, with
 * --mean, runs_mean.csv) of several experiments, for papers and scripts.
 *
 * Rows: every row of every DIR in the order given, with a first column
 * "experiment" (the DIR's base name). Columns: the union of the files'
 * columns in order of first appearance (a column a file lacks is empty in
 * its rows), or exactly those of --columns (each must exist in some file;
 * "did you mean" otherwise). Output: CSV (default) or a Markdown table on
 * stdout; numbers as the files hold them, or in Markdown to 4 significant
 * digits.
 *
 * Exit status: 0 written, 2 bad usage or an unreadable or malformed file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "csv_table.h"
#include "util/suggest.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pagoda table [--columns A,B,..] [--format csv|md] [--mean] RESULTS_DIR...\n"
            "\n"
            "  RESULTS_DIR   results/<experiment> directories written by `pagoda run`\n"
            "  --columns     the columns to print, in this order (default: all; 'experiment' and\n"
            "                'run' name the row)\n"
            "  --format      csv (default) or md (a Markdown table, numbers to 4 significant digits)\n"
            "  --mean        read runs_mean.csv (means and NAME_ci95 over repeats) instead of runs.csv\n"
            "Merges the tables of all the directories into one on standard output.\n");
}

static int is_number(const char *s, double *v) {
    char *end;
    if (!*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}

int pgd_cmd_table(int argc, char **argv) {
    const char *columns = NULL, *format = "csv";
    int mean = 0;
    static const struct option opts[] = {{"columns", required_argument, 0, 'c'}, {"format", required_argument, 0, 'f'},
                                         {"mean", no_argument, 0, 'm'},          {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 1;
    int ch;
    while ((ch = pgd_cli_getopt(argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 'c': columns = optarg; break;
        case 'f': format = optarg; break;
        case 'm': mean = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(format, "csv") && strcmp(format, "md")) {
        fprintf(stderr, "pagoda table: --format must be csv or md (got '%s')\n", format);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "pagoda table: give at least one results directory\n");
        usage(stderr);
        return 2;
    }
    int nd = argc - optind, rc = 2;
    csv_table *in = calloc((size_t)nd, sizeof *in), out = {0};
    char **want = NULL;
    int nwant = 0;
    if (!in) return 2;
    for (int d = 0; d < nd; d++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", argv[optind + d], mean ? "runs_mean.csv" : "runs.csv");
        if (!csv_table_load("table", path, &in[d])) goto done;
        if (in[d].ncols < 1 || strcmp(in[d].cols[0], "run")) {
            fprintf(stderr, "pagoda table: %s: not written by pagoda run (no 'run' column first)\n", path);
            goto done;
        }
    }
    /* the columns: --columns, else the union in order of first appearance */
    if (csv_table_add_col(&out, "experiment") < 0) goto done;
    if (columns) {
        char *list = strdup(columns), *save = NULL;
        for (char *tok = list ? strtok_r(list, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            int found = !strcmp(tok, "experiment");
            for (int d = 0; d < nd && !found; d++) found = csv_table_col(&in[d], tok) >= 0;
            if (!found) {
                const char *best = NULL;
                for (int d = 0; d < nd && !best; d++)
                    best = pgd_suggest(tok, (const char *const *)in[d].cols, (size_t)in[d].ncols);
                fprintf(stderr, "pagoda table: no column '%s' in %s%s%s%s\n", tok, nd > 1 ? "any of the tables" : argv[optind],
                        best ? " (did you mean '" : "", best ? best : "", best ? "'?)" : "");
                free(list);
                goto done;
            }
            char **w = realloc(want, sizeof *w * (size_t)(nwant + 1));
            if (!w || !(w[nwant] = strdup(tok))) {
                free(w ? w : want);
                want = NULL;
                free(list);
                goto done;
            }
            want = w;
            nwant++;
        }
        free(list);
        if (!nwant) {
            fprintf(stderr, "pagoda table: --columns '%s' names no column\n", columns);
            goto done;
        }
        csv_table_free(&out);
        for (int i = 0; i < nwant; i++)
            if (csv_table_add_col(&out, want[i]) < 0) goto done;
    } else {
        for (int d = 0; d < nd; d++)
            for (int c = 0; c < in[d].ncols; c++)
                if (csv_table_col(&out, in[d].cols[c]) < 0 && csv_table_add_col(&out, in[d].cols[c]) < 0) goto done;
    }
    int ec = csv_table_col(&out, "experiment");
    for (int d = 0; d < nd; d++) {
        const char *dir = argv[optind + d];
        char base[256];
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/') len--;
        const char *b = dir + len;
        while (b > dir && b[-1] != '/') b--;
        snprintf(base, sizeof base, "%.*s", (int)(dir + len - b), b);
        for (int r = 0; r < in[d].nrows; r++) {
            int row = csv_table_add_row(&out);
            if (row < 0) goto done;
            if (ec >= 0 && !csv_table_set(&out, row, ec, base)) goto done;
            for (int c = 0; c < in[d].ncols; c++) {
                int oc = csv_table_col(&out, in[d].cols[c]);
                if (oc >= 0 && oc != ec && !csv_table_set(&out, row, oc, csv_table_cell(&in[d], r, c))) goto done;
            }
        }
    }
    if (!strcmp(format, "csv")) {
        csv_write_fields(stdout, (const char *const *)out.cols, out.ncols);
        for (int r = 0; r < out.nrows; r++)
            csv_write_fields(stdout, (const char *const *)out.cells + r * out.ncols, out.ncols);
    } else {
        printf("|");
        for (int c = 0; c < out.ncols; c++) printf(" %s |", out.cols[c]);
        printf("\n|");
        for (int c = 0; c < out.ncols; c++) {
            double v;
            int num = out.nrows > 0;
            for (int r = 0; r < out.nrows && num; r++) num = is_number(csv_table_cell(&out, r, c), &v) || !*csv_table_cell(&out, r, c);
            printf("%s|", num ? "---:" : "---");
        }
        printf("\n");
        for (int r = 0; r < out.nrows; r++) {
            printf("|");
            for (int c = 0; c < out.ncols; c++) {
                const char *s = csv_table_cell(&out, r, c);
                double v;
                if (is_number(s, &v) && strpbrk(s, ".eE")) printf(" %.4g |", v);
                else {
                    printf(" ");
                    for (; *s; s++) printf(*s == '|' ? "\\|" : "%c", *s);
                    printf(" |");
                }
            }
            printf("\n");
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    for (int d = 0; d < nd; d++) csv_table_free(&in[d]);
    free(in);
    for (int i = 0; i < nwant; i++) free(want[i]);
    free(want);
    csv_table_free(&out);
    return rc;
}
