/* dataset.c - real prompts: ShareGPT JSON ([{id, conversations:[{from,
 * value}]}]: the first "human"/"user" turn is the prompt, the turn right
 * after it, when from "gpt"/"chatgpt"/"assistant", gives the output
 * length), Alpaca JSON ([{instruction, input, output}]: prompt =
 * instruction, plus "\n" and input when input is non-empty; output length =
 * tokens of output) and MT-bench JSONL ({question_id, category, turns}:
 * the first turn; no output length).
 *
 * Reading keeps texts only; pgd_wl_dataset_tokenize encodes one selected
 * row (BOS + prompt; the output text without BOS/EOS), so a sample of 200
 * rows of a 5000-row file tokenizes 200 prompts. Rows whose prompt text is
 * empty are skipped and counted. Malformed JSON fails with PGD_ERR_FORMAT
 * naming file:line:column (JSON) or file:line (JSONL) or the entry index. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload/workload_impl.h"

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int is_from(json_t *turn, const char *const *names) {
    const char *f = json_string_value(json_object_get(turn, "from"));
    if (!f) f = json_string_value(json_object_get(turn, "role"));
    for (int i = 0; f && names[i]; i++)
        if (strcmp(f, names[i]) == 0) return 1;
    return 0;
}

static const char *turn_text(json_t *turn) {
    const char *v = json_string_value(json_object_get(turn, "value"));
    return v ? v : json_string_value(json_object_get(turn, "content"));
}

/* Texts of one entry: *text (prompt) and *out (may stay NULL). */
static pgd_status entry_texts(const char *path, size_t idx, pgd_dataset_format fmt, json_t *e,
                              char **text, char **out) {
    static const char *const human[] = {"human", "user", NULL};
    static const char *const gpt[] = {"gpt", "chatgpt", "assistant", "bard", NULL};
    if (!json_is_object(e))
        return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu is not a JSON object", path, idx);
    if (fmt == PGD_DATASET_SHAREGPT) {
        json_t *conv = json_object_get(e, "conversations");
        if (!json_is_array(conv))
            return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu has no 'conversations' array", path, idx);
        size_t n = json_array_size(conv);
        for (size_t i = 0; i < n; i++) {
            json_t *t = json_array_get(conv, i);
            if (!is_from(t, human)) continue;
            const char *v = turn_text(t);
            if (!v)
                return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu turn %zu has no string 'value'",
                                 path, idx, i);
            *text = dup_str(v);
            json_t *next = json_array_get(conv, i + 1);
            if (next && is_from(next, gpt) && turn_text(next)) *out = dup_str(turn_text(next));
            break;
        }
        if (!*text) *text = dup_str(""); /* no human turn: skipped */
    } else if (fmt == PGD_DATASET_ALPACA) {
        const char *ins = json_string_value(json_object_get(e, "instruction"));
        const char *in = json_string_value(json_object_get(e, "input"));
        const char *o = json_string_value(json_object_get(e, "output"));
        if (!ins)
            return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu has no string 'instruction'", path, idx);
        size_t n = strlen(ins) + (in ? strlen(in) : 0) + 2;
        if ((*text = malloc(n))) snprintf(*text, n, "%s%s%s", ins, in && *in ? "\n" : "", in ? in : "");
        if (o && *o) *out = dup_str(o);
    } else {
        json_t *turns = json_object_get(e, "turns");
        const char *t = json_string_value(json_array_get(turns, 0));
        if (!t) return pgd_error(PGD_ERR_FORMAT, "%s: entry %zu has no string 'turns[0]'", path, idx);
        *text = dup_str(t);
    }
    if (!*text) return pgd_error(PGD_ERR_OOM, "workload: out of memory");
    return PGD_OK;
}

static pgd_status stage(const char *path, size_t idx, pgd_dataset_format fmt, json_t *e,
                        pgd_wl_rows *rs) {
    char *text = NULL, *out = NULL;
    pgd_status st = entry_texts(path, idx, fmt, e, &text, &out);
    rs->rows_read++;
    if (st == PGD_OK && text[0] == '\0') {
        rs->skipped++;
    } else if (st == PGD_OK) {
        pgd_wl_row *row;
        if ((st = pgd_wl_rows_push(rs, &row)) == PGD_OK) {
            row->row = (int64_t)idx;
            row->text = text;
            row->out_text = out;
            return PGD_OK;
        }
    }
    free(text);
    free(out);
    return st;
}

static pgd_status read_jsonl(const pgd_workload_config *c, FILE *fp, pgd_dataset_format fmt,
                             pgd_wl_rows *rs) {
    char *line = NULL;
    size_t cap = 0;
    long len;
    pgd_status st = PGD_OK;
    size_t idx = 0;
    for (long lineno = 1; (len = pgd_wl_getline(&line, &cap, fp)) >= 0; lineno++) {
        if (len == 0) continue;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) {
            st = pgd_error(PGD_ERR_FORMAT, "%s:%ld: %s", c->path, lineno, err.text);
            break;
        }
        pgd_dataset_format f = fmt;
        if (f == PGD_DATASET_AUTO)
            f = json_object_get(o, "turns")           ? PGD_DATASET_MTBENCH
                : json_object_get(o, "conversations") ? PGD_DATASET_SHAREGPT
                                                      : PGD_DATASET_ALPACA;
        st = stage(c->path, idx++, f, o, rs);
        json_decref(o);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", pgd_last_error());
            pgd_error(st, "%s:%ld: %s", c->path, lineno, msg);
            break;
        }
    }
    free(line);
    return st;
}

pgd_status pgd_wl_dataset_read(const pgd_workload_config *c, pgd_wl_rows *rs,
                               pgd_dataset_format *fmt_out) {
    FILE *fp = fopen(c->path, "rb");
    if (!fp) return pgd_error(PGD_ERR_IO, "cannot open dataset %s: %s", c->path, strerror(errno));
    pgd_dataset_format fmt = c->dataset_format;
    size_t n = strlen(c->path);
    int jsonl = fmt == PGD_DATASET_MTBENCH || (n >= 6 && strcmp(c->path + n - 6, ".jsonl") == 0);
    pgd_status st = PGD_OK;
    if (jsonl) {
        st = read_jsonl(c, fp, fmt, rs);
        *fmt_out = fmt == PGD_DATASET_AUTO ? PGD_DATASET_MTBENCH : fmt;
        fclose(fp);
        return st;
    }
    json_error_t err;
    json_t *root = json_loadf(fp, 0, &err);
    fclose(fp);
    if (!root)
        return pgd_error(PGD_ERR_FORMAT, "%s:%d:%d: %s", c->path, err.line, err.column, err.text);
    if (!json_is_array(root)) {
        st = pgd_error(PGD_ERR_FORMAT, "%s: expected a JSON array of entries", c->path);
        goto done;
    }
    if (fmt == PGD_DATASET_AUTO) {
        json_t *e0 = json_array_get(root, 0);
        fmt = json_object_get(e0, "conversations") ? PGD_DATASET_SHAREGPT
              : json_object_get(e0, "instruction") ? PGD_DATASET_ALPACA
              : json_object_get(e0, "turns")       ? PGD_DATASET_MTBENCH
                                                   : PGD_DATASET_AUTO;
        if (fmt == PGD_DATASET_AUTO) {
            st = pgd_error(PGD_ERR_FORMAT,
                           "%s: unknown dataset (entries need 'conversations', 'instruction' or 'turns')",
                           c->path);
            goto done;
        }
    }
    *fmt_out = fmt;
    for (size_t i = 0; i < json_array_size(root) && st == PGD_OK; i++)
        st = stage(c->path, i, fmt, json_array_get(root, i), rs);
done:
    json_decref(root);
    return st;
}

pgd_status pgd_wl_dataset_tokenize(const pgd_workload_config *c, pgd_wl_row *row) {
    int n = 0;
    PGD_TRY(pgd_tokenizer_encode(c->tokenizer, row->text, 1, 0, &row->prompt, &n));
    row->in_len = n;
    row->out_len = 0;
    if (row->out_text && !c->override_output_len) {
        int32_t *t = NULL;
        PGD_TRY(pgd_tokenizer_encode(c->tokenizer, row->out_text, 0, 0, &t, &n));
        free(t);
        row->out_len = n;
    }
    return PGD_OK;
}
