/* chat.c - the built-in chat templates (pagoda/chat.h): each renders
 * messages by appending to one growing string; nothing is evaluated from
 * the model's Jinja text, which is only matched by markers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sys/stat.h>

#include "format/gguf.h"
#include "pagoda/chat.h"
#include "pagoda/model.h"

typedef enum { CHAT_NONE, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_CHATML } chat_kind;

struct pgd_chat_template {
    const char *name;
    chat_kind kind;
};

static const pgd_chat_template TEMPLATES[] = {
    {.name = "none", .kind = CHAT_NONE},
    {.name = "llama-2", .kind = CHAT_LLAMA2},
    {.name = "llama-3", .kind = CHAT_LLAMA3},
    {.name = "chatml", .kind = CHAT_CHATML},
};
static const char *const NAMES[] = {"none", "llama-2", "llama-3", "chatml", NULL};

const pgd_chat_template *pgd_chat_template_find(const char *name) {
    for (size_t i = 0; name && i < sizeof TEMPLATES / sizeof TEMPLATES[0]; i++)
        if (!strcmp(TEMPLATES[i].name, name)) return &TEMPLATES[i];
    return NULL;
}

const char *pgd_chat_template_name(const pgd_chat_template *t) { return t ? t->name : NULL; }
const char *const *pgd_chat_template_names(void) { return NAMES; }

const pgd_chat_template *pgd_chat_template_detect(const char *jinja) {
    if (!jinja) return NULL;
    if (strstr(jinja, "<|im_start|>")) return pgd_chat_template_find("chatml");
    if (strstr(jinja, "<|start_header_id|>")) return pgd_chat_template_find("llama-3");
    if (strstr(jinja, "[INST]")) return pgd_chat_template_find("llama-2");
    return NULL;
}

static int is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char m[4] = {0};
    int ok = fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    fclose(f);
    return ok;
}

/* A Hugging Face checkpoint directory's tokenizer_config.json chat_template,
 * recognised by its markers (dir may also name a file inside the directory). */
static const pgd_chat_template *from_hf_dir(const char *dir) {
    struct stat st;
    char path[4096];
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    else {
        const char *slash = strrchr(dir, '/');
        int n = slash ? (int)(slash - dir) : 1;
        snprintf(path, sizeof path, "%.*s/tokenizer_config.json", n, slash ? dir : ".");
    }
    json_t *j = json_load_file(path, 0, NULL);
    const char *t = j ? json_string_value(json_object_get(j, "chat_template")) : NULL;
    const pgd_chat_template *r = t ? pgd_chat_template_detect(t) : NULL;
    json_decref(j);
    return r;
}

pgd_status pgd_chat_template_for_model(const char *spec, const pgd_chat_template **out) {
    *out = pgd_chat_template_find("none");
    if (!spec) return PGD_OK;
    if (!strncmp(spec, "random:", 7)) { /* a named shape's instruct variant's */
        const char *name = pgd_model_shape_chat_template(spec + 7);
        if (name && pgd_chat_template_find(name)) *out = pgd_chat_template_find(name);
        return PGD_OK;
    }
    if (!is_gguf(spec)) {
        const pgd_chat_template *t = from_hf_dir(spec);
        if (t) *out = t;
        return PGD_OK;
    }
    pgd_gguf *g = NULL;
    PGD_TRY(pgd_gguf_open(spec, &g));
    const char *s = NULL;
    size_t len = 0;
    if (pgd_gguf_has_key(g, "tokenizer.chat_template") &&
        pgd_gguf_get_str(g, "tokenizer.chat_template", &s, &len) == PGD_OK) {
        const pgd_chat_template *t = pgd_chat_template_detect(s);
        if (t) *out = t;
    }
    pgd_gguf_close(g);
    return PGD_OK;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->n + (size_t)k + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

pgd_status pgd_chat_render(const pgd_chat_template *t, const pgd_chat_message *m, int n, int gen, char **out) {
    *out = NULL;
    if (!t) return pgd_error(PGD_ERR_INVALID, "chat: no template");
    if (n < 1) return pgd_error(PGD_ERR_INVALID, "chat: messages must hold at least one message");
    for (int i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content) return pgd_error(PGD_ERR_INVALID, "chat: message %d has no %s", i, !m[i].role ? "role" : "content");
        if (strcmp(m[i].role, "system") && strcmp(m[i].role, "user") && strcmp(m[i].role, "assistant"))
            return pgd_error(PGD_ERR_INVALID, "chat: message %d: unknown role '%s' (system, user or assistant)", i, m[i].role);
    }
    sbuf b = {0};
    put(&b, "%s", "");
    switch (t->kind) {
    case CHAT_NONE:
        for (int i = 0; i < n; i++) put(&b, "%s%s", i ? "\n" : "", m[i].content);
        break;
    case CHAT_CHATML:
        for (int i = 0; i < n; i++) put(&b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        if (gen) put(&b, "<|im_start|>assistant\n");
        break;
    case CHAT_LLAMA3:
        for (int i = 0; i < n; i++)
            put(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", m[i].role, m[i].content);
        if (gen) put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_LLAMA2: {
        /* [INST] user [/INST] answer </s><s>[INST] ...; the system message
         * goes into the first user turn; the first <s> is the BOS token */
        const char *sys = NULL;
        int first = 1;
        for (int i = 0; i < n; i++) {
            if (!strcmp(m[i].role, "system")) { sys = m[i].content; continue; }
            if (!strcmp(m[i].role, "user")) {
                put(&b, "%s[INST] ", first ? "" : "<s>");
                if (sys) put(&b, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
                sys = NULL;
                put(&b, "%s [/INST]", m[i].content);
            } else {
                put(&b, " %s </s>", m[i].content);
            }
            first = 0;
        }
        if (sys) put(&b, "%s[INST] <<SYS>>\n%s\n<</SYS>>\n\n [/INST]", first ? "" : "<s>", sys);
        break;
    }
    }
    if (b.oom) {
        free(b.p);
        return pgd_error(PGD_ERR_OOM, "chat: out of memory");
    }
    *out = b.p;
    return PGD_OK;
}
