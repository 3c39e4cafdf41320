/* chat.h - chat templates: a conversation of {role, content} messages
 * rendered as the one prompt string a chat model was trained on.
 *
 * A small built-in set, not a Jinja interpreter: "llama-2" ([INST] ...
 * [/INST], the system message folded into the first user turn as
 * <<SYS>>...<</SYS>>), "llama-3" (<|start_header_id|>role<|end_header_id|>
 * ... <|eot_id|>), "chatml" (<|im_start|>role ... <|im_end|>) and "none"
 * (the contents joined by newlines, for base models such as stories260K).
 * The leading BOS is never part of the text: the caller encodes the
 * rendered string with add_bos, as for a plain prompt. A model's own
 * template (GGUF metadata tokenizer.chat_template) is recognised by its
 * markers and mapped to one of these. Roles: "system", "user", "assistant". */
#ifndef PAGODA_CHAT_H
#define PAGODA_CHAT_H

#include "pagoda/status.h"

typedef struct pgd_chat_template pgd_chat_template;

typedef struct pgd_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated text */
} pgd_chat_message;

/* The built-in template of that name (NULL when unknown). */
const pgd_chat_template *pgd_chat_template_find(const char *name);
const char *pgd_chat_template_name(const pgd_chat_template *t);
/* NULL-terminated list of the built-in names. */
const char *const *pgd_chat_template_names(void);
/* The built-in family of a Jinja template text by its markers
 * ("<|im_start|>" chatml, "<|start_header_id|>" llama-3, "[INST]" llama-2);
 * NULL when none matches. */
const pgd_chat_template *pgd_chat_template_detect(const char *jinja);
/* The template a model spec asks for: a GGUF file's tokenizer.chat_template
 * when it has one that is recognised, else "none" (llama2.c checkpoints
 * and random: specs carry no template). *out is never NULL on PGD_OK. */
pgd_status pgd_chat_template_for_model(const char *model_spec, const pgd_chat_template **out);

/* Render n >= 1 messages into a malloc'd string (caller frees). With
 * add_generation_prompt the assistant turn's header follows (chatml,
 * llama-3; llama-2 and none have none). An unknown role, a NULL content or
 * n < 1 is PGD_ERR_INVALID naming the message. */
pgd_status pgd_chat_render(const pgd_chat_template *t, const pgd_chat_message *msgs, int n,
                           int add_generation_prompt, char **out);

#endif
