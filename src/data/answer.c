/* answer.c: normalisation and exact-match comparison of answers (DESIGN §1). */
#include "data/answer.h"

#include <stdlib.h>
#include <string.h>

/* Number words up to twenty: the synthetic world's counts are at most 4, but real
 * benchmarks ask for larger counts, and a model may spell them out. */
static const char *const k_number_words[] = {
    "zero",    "one",     "two",       "three",    "four",    "five",     "six",
    "seven",   "eight",   "nine",      "ten",      "eleven",  "twelve",   "thirteen",
    "fourteen", "fifteen", "sixteen",  "seventeen", "eighteen", "nineteen", "twenty",
};
#define NUM_NUMBER_WORDS ((int)(sizeof k_number_words / sizeof k_number_words[0]))

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Letters, digits and any non-ASCII byte (part of a UTF-8 letter, most likely) are
 * word characters; everything else is punctuation or space. */
static int is_word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c >= 0x80;
}

static unsigned char to_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Pass 1: lower-case, strip punctuation, collapse and trim whitespace. */
static void clean(const char *in, char *out, size_t n) {
    size_t len = 0;
    int pending_space = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        unsigned char c = *p;
        if (is_word_char(c)) {
            if (pending_space && len > 0) {
                if (len + 1 >= n) break;
                out[len++] = ' ';
            }
            pending_space = 0;
            if (len + 1 >= n) break;
            out[len++] = (char)to_lower(c);
            continue;
        }
        /* Removed without separating, so the pieces stay one word. */
        if (c == '\'') continue;
        if (c == ',' && !pending_space && len > 0 && is_digit((unsigned char)out[len - 1]) &&
            is_digit(p[1]))
            continue;
        pending_space = 1;
    }
    out[len] = '\0';
}

static int is_article(const char *w, size_t len) {
    return (len == 1 && w[0] == 'a') || (len == 2 && memcmp(w, "an", 2) == 0) ||
           (len == 3 && memcmp(w, "the", 3) == 0);
}

/* Pass 2, in place over the cleaned text: drop leading articles, map number words.
 * Every replacement is no longer than the word it replaces, so the write position
 * never overtakes the read position. */
static void rewrite_words(char *s) {
    size_t r = 0, w = 0;
    int leading = 1;
    while (s[r]) {
        size_t start = r;
        while (s[r] && s[r] != ' ') r++;
        size_t len = r - start;
        int last = (s[r] == '\0');
        if (s[r] == ' ') r++;
        if (leading && !last && is_article(s + start, len)) continue;
        leading = 0;
        const char *word = s + start;
        char digits[4];
        for (int i = 0; i < NUM_NUMBER_WORDS; i++) {
            if (strlen(k_number_words[i]) == len && memcmp(word, k_number_words[i], len) == 0) {
                size_t dl = 0;
                if (i >= 10) digits[dl++] = (char)('0' + i / 10);
                digits[dl++] = (char)('0' + i % 10);
                word = digits;
                len = dl;
                break;
            }
        }
        if (w > 0) s[w++] = ' ';
        memmove(s + w, word, len);
        w += len;
    }
    s[w] = '\0';
}

void answer_normalize(const char *in, char *out, size_t n) {
    if (!out || n == 0) return;
    out[0] = '\0';
    if (!in) return;
    clean(in, out, n);
    rewrite_words(out);
}

int answer_correct(const char *pred, const char *gt) {
    if (!pred || !gt) return 0;
    /* Normalisation never lengthens a string, so strlen + 1 bytes suffice; short
     * answers (the common case) use the stack. */
    char sa[256], sb[256];
    size_t la = strlen(pred) + 1, lb = strlen(gt) + 1;
    char *a = la <= sizeof sa ? sa : malloc(la);
    char *b = lb <= sizeof sb ? sb : malloc(lb);
    int ok = 0;
    if (a && b) {
        answer_normalize(pred, a, la);
        answer_normalize(gt, b, lb);
        ok = strcmp(a, b) == 0;
    }
    if (a && a != sa) free(a);
    if (b && b != sb) free(b);
    return ok;
}
