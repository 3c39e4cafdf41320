/* json_text.h - JSON strings from text that may not be valid UTF-8.
 *
 * jansson's json_string() returns NULL for invalid UTF-8, and
 * json_object_set_new(o, key, NULL) then drops the field without a word:
 * a prompt, a generated text or a description with one stray byte
 * vanished from the output. Every string that holds user, file or model
 * text goes through pgd_json_text() instead, which never returns NULL for
 * a non-NULL s (short of running out of memory). */
#ifndef PAGODA_UTIL_JSON_TEXT_H
#define PAGODA_UTIL_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string of s (NULL gives ""): valid UTF-8 as it is; each byte that
 * does not start a valid UTF-8 sequence (stray continuation bytes, overlong
 * forms, surrogates, code points past U+10FFFF, a cut sequence) becomes
 * U+FFFD, the replacement character. */
json_t *pgd_json_text(const char *s);

/* The same for n bytes of s (which may hold NUL bytes: each becomes U+FFFD
 * too, as JSON strings cut at NUL in most readers). */
json_t *pgd_json_textn(const char *s, size_t n);

/* Length in bytes of the valid UTF-8 sequence at s (1 to 4), or 0 when the
 * byte at s does not start one (n: the bytes available). */
size_t pgd_utf8_seq_len(const unsigned char *s, size_t n);

#endif
