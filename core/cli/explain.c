/* explain.c - `pagoda explain RUN_DIR --request ID`: one request's life
 * told from the run's decision trace (steps.jsonl, written with
 * [experiment] trace_steps = on; format in scheduler.h): when it waited at
 * the head of the queue and why, when it was admitted, its prefill chunks
 * and decodes, its preemptions with their reasons, swaps back in, and a
 * summary. Runs of equal steps (decodes, waits for the same reason) are
 * told as one line. Request ids are the engine's, as in requests.csv.
 * A cluster's trace (lines with a "replica" member, cluster ids) is read
 * on the replica that holds the request: another replica's lines that do
 * not name it are skipped, and the story says when it moves (a P/D
 * hand-off); steps are that replica's own. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: pagoda explain RUN_DIR --request ID\n"
               "  tells request ID's life (waits and why, admission, prefill chunks, decodes,\n"
               "  preemptions and their reasons) from RUN_DIR/steps.jsonl, the decision trace a\n"
               "  run writes with [experiment] trace_steps = on. RUN_DIR may also be the file.\n");
}

typedef struct story {
    long long id;
    const char *run_kind; /* the current run of equal lines: "decode", "wait", or NULL */
    char run_why[64];
    long first, last, count;
    long admitted, preempted, swapped_in, prefill_tokens, decodes, waits, steps_seen;
    long recompute_tokens;
    int had_prefill;
    int out; /* 1: waiting (not at the head unless the line says so), 2: swapped out */
    long replica; /* a cluster's trace: the replica of the latest line naming it (-1 = none yet) */
} story;

static void flush(story *s) {
    if (!s->run_kind) return;
    char steps[64];
    if (s->first == s->last) snprintf(steps, sizeof steps, "step %ld", s->first);
    else snprintf(steps, sizeof steps, "steps %ld-%ld", s->first, s->last);
    if (!strcmp(s->run_kind, "decode"))
        printf("  %-16s %ld decode step%s\n", steps, s->count, s->count == 1 ? "" : "s");
    else if (!strncmp(s->run_why, "no: ", 4))
        printf("  %-16s waited, %s\n", steps, s->run_why + 4);
    else
        printf("  %-16s waited at the head of the queue: %s\n", steps, s->run_why);
    s->run_kind = NULL;
}

static void run_of(story *s, const char *kind, const char *why, long step) {
    if (s->run_kind && !strcmp(s->run_kind, kind) && !strcmp(s->run_why, why ? why : "") && step == s->last + 1) {
        s->last = step;
        s->count++;
        return;
    }
    flush(s);
    s->run_kind = kind;
    snprintf(s->run_why, sizeof s->run_why, "%s", why ? why : "");
    s->first = s->last = step;
    s->count = 1;
}

static const char *why_text(const char *w) {
    if (!strcmp(w, "budget")) return "budget (the step's token budget was used up)";
    if (!strcmp(w, "kv")) return "kv (not enough free KV blocks)";
    if (!strcmp(w, "max_num_seqs")) return "max_num_seqs (the batch had no sequence slot left)";
    if (!strcmp(w, "policy")) return "policy (the policy's admission hook held it back)";
    if (!strcmp(w, "static")) return "static (static batching: groups still running)";
    if (!strcmp(w, "swapped")) return "swapped (swapped-out groups come back first)";
    if (!strcmp(w, "preempted")) return "preempted (preempted this step)";
    return w;
}

static int has_id(json_t *arr, long long id) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_integer(v) && json_integer_value(v) == id) return 1;
    return 0;
}

/* Does the line name request id anywhere? */
static int names(json_t *o, long long id) {
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(o, "batch"), i,
                       it) if (json_integer_value(json_array_get(it, 0)) == id) return 1;
    json_array_foreach(json_object_get(o, "preempted"), i,
                       it) if (json_integer_value(json_array_get(it, 0)) == id) return 1;
    json_t *w = json_object_get(o, "waiting");
    return has_id(json_object_get(o, "admitted"), id) || has_id(json_object_get(o, "swapped_in"), id) ||
           has_id(json_object_get(o, "dropped"), id) ||
           (json_is_object(w) && json_integer_value(json_object_get(w, "head")) == id);
}

static void step_line(story *s, json_t *o) {
    long step = (long)json_integer_value(json_object_get(o, "step"));
    int seen = 0, in = 0;
    json_t *rj = json_object_get(o, "replica");
    if (json_is_integer(rj)) { /* a cluster's trace: follow the request's replica */
        long r = (long)json_integer_value(rj);
        if (!names(o, s->id)) {
            if (r != s->replica) return;
        } else if (r != s->replica) {
            flush(s);
            printf("  on replica %ld%s (its steps):\n", r, s->replica < 0 ? "" : " now");
            s->replica = r;
        }
    }
    if (has_id(json_object_get(o, "admitted"), s->id)) {
        flush(s);
        printf("  step %-11ld admitted%s\n", step, s->admitted ? " again" : "");
        s->admitted++;
        seen = in = 1;
        s->out = 0;
    }
    if (has_id(json_object_get(o, "swapped_in"), s->id)) {
        flush(s);
        printf("  step %-11ld swapped back in\n", step);
        s->swapped_in++;
        seen = in = 1;
        s->out = 0;
    }
    size_t i;
    json_t *it;
    long pre = 0, dec = 0, start = -1, nseq = 0;
    json_array_foreach(json_object_get(o, "batch"), i, it) {
        if (json_integer_value(json_array_get(it, 0)) != s->id) continue;
        long st = (long)json_integer_value(json_array_get(it, 2)), n = (long)json_integer_value(json_array_get(it, 3));
        const char *kind = json_string_value(json_array_get(it, 4));
        nseq++;
        if (kind && !strcmp(kind, "decode")) dec++;
        else {
            pre += n;
            if (start < 0 || st < start) start = st;
        }
    }
    if (pre > 0) {
        flush(s);
        printf("  step %-11ld %s: %ld token%s from position %ld%s\n", step,
               s->had_prefill && s->admitted > 1 ? "prefill (recomputing)" : "prefill", pre, pre == 1 ? "" : "s",
               start, nseq > 1 ? " (over its sequences)" : "");
        s->prefill_tokens += pre;
        if (s->admitted > 1) s->recompute_tokens += pre;
        s->had_prefill = 1;
        seen = 1;
    }
    if (dec > 0) {
        run_of(s, "decode", NULL, step);
        s->decodes += dec;
        seen = 1;
    }
    json_array_foreach(json_object_get(o, "preempted"), i, it) {
        if (json_integer_value(json_array_get(it, 0)) != s->id) continue;
        flush(s);
        const char *mode = json_string_value(json_array_get(it, 1));
        printf("  step %-11ld PREEMPTED (%s): %s\n", step, mode ? mode : "?",
               json_string_value(json_array_get(it, 2)) ?: "?");
        s->preempted++;
        s->out = mode && !strcmp(mode, "swap") ? 2 : 1;
        seen = 1;
    }
    json_t *w = json_object_get(o, "waiting");
    if (json_is_object(w) && json_integer_value(json_object_get(w, "head")) == s->id) {
        const char *why = json_string_value(json_object_get(w, "why"));
        if (!why || strcmp(why, "preempted")) run_of(s, "wait", why_text(why ? why : "?"), step);
        s->waits++;
        s->out = 1;
        seen = 1;
    } else if (s->out && !in && !seen) { /* still out: behind other requests, or swapped out */
        run_of(s, "wait", s->out == 2 ? "no: swapped out, waiting to come back"
                                      : "no: queued behind other requests (the policy's order)", step);
    }
    if (has_id(json_object_get(o, "dropped"), s->id)) {
        flush(s);
        printf("  step %-11ld dropped: it can never fit the KV cache (requests.csv's error column says why)\n", step);
        seen = 1;
    }
    s->steps_seen += seen;
}

int pgd_cmd_explain(int argc, char **argv) {
    const char *dir = NULL, *req = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--request") && i + 1 < argc) {
            req = argv[++i];
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "pagoda explain: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !req) {
        fprintf(stderr, "pagoda explain: %s\n", !dir ? "give the run's results directory" : "give --request ID");
        usage(stderr);
        return 2;
    }
    char *end;
    long long id = strtoll(req, &end, 10);
    if (!*req || *end || id < 0) {
        fprintf(stderr, "pagoda explain: --request '%s': want a request id (a whole number >= 0, requests.csv's id)\n",
                req);
        return 2;
    }
    char path[4200];
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(path, sizeof path, "%s/steps.jsonl", dir);
    else snprintf(path, sizeof path, "%s", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pagoda explain: cannot open %s: %s%s\n", path, strerror(errno),
                errno == ENOENT ? " (run the experiment with [experiment] trace_steps = on to write it)" : "");
        return 1;
    }
    story s = {.id = id, .replica = -1};
    printf("request %lld (from %s):\n", id, path);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o || !json_is_object(o) || !json_is_integer(json_object_get(o, "step"))) {
            fprintf(stderr, "pagoda explain: %s:%ld: not a decision-trace line (%s)\n", path, lineno,
                    o ? "no \"step\"" : je.text);
            json_decref(o);
            rc = 1;
            break;
        }
        step_line(&s, o);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    flush(&s);
    if (s.steps_seen == 0) {
        fprintf(stderr, "pagoda explain: request %lld does not appear in %s (ids are requests.csv's)\n", id, path);
        return 1;
    }
    printf("summary: admitted %ld time%s, preempted %ld time%s, swapped back in %ld time%s; %ld prefill tokens "
           "(%ld of them recomputed), %ld decode tokens; %ld step%s waiting at the head of the queue\n",
           s.admitted, s.admitted == 1 ? "" : "s", s.preempted, s.preempted == 1 ? "" : "s", s.swapped_in,
           s.swapped_in == 1 ? "" : "s", s.prefill_tokens, s.recompute_tokens, s.decodes, s.waits,
           s.waits == 1 ? "" : "s");
    return 0;
}
