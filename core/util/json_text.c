/* json_text.c - JSON strings from text that may not be valid UTF-8
 * (json_text.h). The rules match jansson's own check (RFC 3629): no
 * overlong forms, no surrogates, nothing past U+10FFFF. */
#include "util/json_text.h"

#include <stdlib.h>
#include <string.h>

size_t pgd_utf8_seq_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c >= 0x01 && c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0; /* NUL, a continuation byte, 0xC0/0xC1, 0xF5..0xFF */
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0; /* overlong */
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                           /* surrogate */
    if (cp > 0x10FFFF) return 0;
    return len;
}

json_t *pgd_json_textn(const char *s, size_t n) {
    if (!s) return json_string("");
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad = 0;
    while (i < n) {
        size_t l = pgd_utf8_seq_len(u + i, n - i);
        if (l) i += l;
        else i++, bad++;
    }
    if (!bad) return json_stringn(s, n);
    char *out = malloc(n + 2 * bad + 1); /* each bad byte: 1 byte becomes 3 */
    if (!out) return NULL;
    size_t o = 0;
    for (i = 0; i < n;) {
        size_t l = pgd_utf8_seq_len(u + i, n - i);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l, i += l;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

json_t *pgd_json_text(const char *s) { return pgd_json_textn(s, s ? strlen(s) : 0); }
