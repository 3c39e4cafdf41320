/* test_chat.c - chat templates (pagoda/chat.h): the exact strings each
 * built-in template renders, family detection from Jinja markers and from a
 * model's GGUF metadata, bad messages, and `pagoda generate --chat` /
 * `pagoda serve` option checks. */
#include <stdlib.h>
#include <string.h>

#include "pagoda/chat.h"
#include "test_util.h"

static const pgd_chat_message CONV[] = {
    {.role = "system", .content = "Be brief."},
    {.role = "user", .content = "Hi"},
    {.role = "assistant", .content = "Hello!"},
    {.role = "user", .content = "Tell me a story."},
};

static void expect(const char *tmpl, const pgd_chat_message *m, int n, int gen, const char *want) {
    const pgd_chat_template *t = pgd_chat_template_find(tmpl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(t), tmpl);
    char *got = NULL;
    CU_ASSERT_EQUAL_FATAL(pgd_chat_render(t, m, n, gen, &got), PGD_OK);
    CU_ASSERT_STRING_EQUAL(got, want);
    if (strcmp(got, want)) fprintf(stderr, "\n%s rendered:\n[%s]\nwanted:\n[%s]\n", tmpl, got, want);
    free(got);
}

static void test_chatml(void) {
    expect("chatml", CONV, 4, 1,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nTell me a story.<|im_end|>\n"
           "<|im_start|>assistant\n");
    expect("chatml", CONV + 1, 1, 0, "<|im_start|>user\nHi<|im_end|>\n");
}

static void test_llama3(void) {
    expect("llama-3", CONV, 4, 1,
           "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect("llama-3", CONV + 1, 1, 0, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

static void test_llama2(void) {
    expect("llama-2", CONV, 4, 1,
           "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Tell me a story. [/INST]");
    expect("llama-2", CONV + 1, 1, 1, "[INST] Hi [/INST]");
    expect("llama-2", CONV, 1, 1, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n [/INST]");
}

static void test_none(void) {
    expect("none", CONV + 1, 1, 1, "Hi");
    expect("none", CONV, 4, 1, "Be brief.\nHi\nHello!\nTell me a story.");
}

static void test_bad_messages(void) {
    const pgd_chat_template *t = pgd_chat_template_find("chatml");
    char *out = (char *)1;
    pgd_chat_message bad[] = {{.role = "tool", .content = "x"}};
    CU_ASSERT_EQUAL(pgd_chat_render(t, bad, 1, 1, &out), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(pgd_last_error(), "unknown role 'tool'"));
    pgd_chat_message nocontent[] = {{.role = "user", .content = NULL}};
    CU_ASSERT_EQUAL(pgd_chat_render(t, nocontent, 1, 1, &out), PGD_ERR_INVALID);
    CU_ASSERT_EQUAL(pgd_chat_render(t, CONV, 0, 1, &out), PGD_ERR_INVALID);
    CU_ASSERT_PTR_NULL(pgd_chat_template_find("vicuna"));
    CU_ASSERT_PTR_NULL(pgd_chat_template_find(NULL));
    int n = 0;
    for (const char *const *p = pgd_chat_template_names(); *p; p++, n++) CU_ASSERT_PTR_NOT_NULL(pgd_chat_template_find(*p));
    CU_ASSERT_EQUAL(n, 4);
}

static void test_detect(void) {
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(pgd_chat_template_detect(
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% endfor %}")), "chatml");
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(pgd_chat_template_detect(
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}")), "llama-3");
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(pgd_chat_template_detect(
        "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}")), "llama-2");
    CU_ASSERT_PTR_NULL(pgd_chat_template_detect("{{ message['content'] }}"));
    CU_ASSERT_PTR_NULL(pgd_chat_template_detect(NULL));
    /* models without a template: llama2.c checkpoints, random: specs, a GGUF without the key */
    const pgd_chat_template *t = NULL;
    CU_ASSERT_EQUAL(pgd_chat_template_for_model(pgd_test_data("models/stories260K/stories260K.bin"), &t), PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(t), "none");
    CU_ASSERT_EQUAL(pgd_chat_template_for_model("random:stories15M", &t), PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(t), "none");
    CU_ASSERT_EQUAL(pgd_chat_template_for_model(pgd_test_data("models/tiny-random-gguf/llama-2-tiny-random.gguf"), &t),
                    PGD_OK);
    CU_ASSERT_STRING_EQUAL(pgd_chat_template_name(t), "none");
}

/* --chat with the "none" template is the plain prompt: the same tokens */
static void test_generate_chat_cli(void) {
    char model[1024], tok[1024], args[4096];
    snprintf(model, sizeof model, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", pgd_test_data("models/stories260K/tok512.bin"));
    char *plain = NULL, *chat = NULL, *err = NULL;
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 12 --output json",
             model, tok);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &plain, NULL), 0);
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 12 "
             "--output json --chat", model, tok);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &chat, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chat);
    CU_ASSERT_STRING_EQUAL(plain, chat);
    free(chat);
    chat = NULL;
    /* chatml: the prompt tokens grow by the template's markers */
    snprintf(args, sizeof args, "generate --model '%s' --tokenizer '%s' --prompt 'Once upon a time' --max-tokens 4 "
             "--output json --chat --chat-template chatml", model, tok);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, &chat, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(chat && strstr(chat, "\"prompt_tokens\""));
    CU_ASSERT(chat && strlen(chat) > 0 && strcmp(chat, plain));
    free(plain);
    free(chat);
    snprintf(args, sizeof args, "generate --model '%s' --prompt hi --chat --chat-template vicuna", model);
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--chat-template: unknown template 'vicuna'"));
    free(err);
    snprintf(args, sizeof args, "generate --model '%s' --prompt hi --port 9", model);
    err = NULL;
    CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--port is an option of `pagoda serve`"));
    free(err);
}

static void test_serve_options(void) {
    char model[1024], args[4096], *err = NULL;
    snprintf(model, sizeof model, "%s", pgd_test_data("models/stories260K/stories260K.bin"));
    struct { const char *opts, *msg; } cases[] = {
        {"--port 70000", "--port must be an integer in 0..65535 (got '70000')"},
        {"--port abc", "--port must be an integer"},
        {"--max-queue 0", "--max-queue must be an integer in 1.."},
        {"--max-tokens 5", "--max-tokens is per request"},
        {"--temperature 0.5", "--temperature is per request"},
        {"--prompt hi", "--prompt is per request"},
        {"--chat-template nope", "unknown template 'nope'"},
        {"--host ''", "--host must not be empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "serve --model '%s' %s", model, cases[i].opts);
        err = NULL;
        CU_ASSERT_EQUAL(pgd_test_run_cli(args, NULL, &err), 2);
        if (!err || !strstr(err, cases[i].msg)) fprintf(stderr, "\n'%s': %s\n", cases[i].opts, err ? err : "(none)");
        CU_ASSERT_PTR_NOT_NULL(err && strstr(err, cases[i].msg));
        free(err);
    }
    err = NULL;
    CU_ASSERT_EQUAL(pgd_test_run_cli("serve", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(err && strstr(err, "--model is required"));
    free(err);
    char *out = NULL;
    CU_ASSERT_EQUAL(pgd_test_run_cli("serve --help", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--served-model-name"));
    free(out);
}

static CU_TestInfo tests[] = {
    {"chatml", test_chatml},
    {"llama3", test_llama3},
    {"llama2", test_llama2},
    {"none", test_none},
    {"bad_messages", test_bad_messages},
    {"detect", test_detect},
    {"generate_chat_cli", test_generate_chat_cli},
    {"serve_options", test_serve_options},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {.pName = "chat", .pTests = tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return pgd_test_main(suites); }
