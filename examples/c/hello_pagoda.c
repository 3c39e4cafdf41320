/* hello_pagoda.c - load a model and print its continuation of a prompt
 * through Pagoda's public API (pagoda/llm.h), built against the installed
 * library:
 *   cc hello_pagoda.c $(pkg-config --cflags --libs pagoda) -o hello_pagoda
 *   ./hello_pagoda stories260K.bin tok512.bin "Once upon a time" 252
 * Greedy decoding (temperature 0), so the text is deterministic. */
#include <stdio.h>
#include <stdlib.h>

#include <pagoda/llm.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL TOKENIZER PROMPT MAX_TOKENS\n", argv[0]);
        return 2;
    }
    pgd_llm *llm = NULL;
    if (pgd_llm_create(argv[1], argv[2], 1, &llm) != PGD_OK) {
        fprintf(stderr, "hello_pagoda: %s\n", pgd_last_error());
        return 1;
    }
    const char *prompts[] = {argv[3]};
    char *text = NULL;
    if (pgd_llm_generate(llm, prompts, 1, atoi(argv[4]), 0.0f, 0, 1.0f, 42, &text) != PGD_OK) {
        fprintf(stderr, "hello_pagoda: %s\n", pgd_last_error());
        pgd_llm_destroy(llm);
        return 1;
    }
    printf("%s%s\n", argv[3], text);
    pgd_llm_free_text(text);
    pgd_llm_destroy(llm);
    return 0;
}
