/* answer.h: the answer check of DESIGN §1, correct(a, a_gt).
 *
 * Both strings are normalised (lower case, punctuation stripped, whitespace collapsed,
 * number words "zero".."twenty" written as digits, leading articles dropped) and then
 * compared for exact equality. Never substring containment: the reference's
 * `gt in pred` marks "no" correct inside "not sure", which would reward hedging and
 * corrupt every label built on this check (Valid(c), the gate labels y_k, r_ans). */
#ifndef SEVO_DATA_ANSWER_H
#define SEVO_DATA_ANSWER_H

#include <stddef.h>

/* Writes the normalised form of `in` into out (capacity n bytes, always NUL-terminated
 * when n > 0; longer results are truncated). The normalised form is never longer than
 * the input, so n = strlen(in) + 1 always suffices. Rules, in order:
 *   - ASCII letters are lower-cased; bytes >= 0x80 (UTF-8) are kept as they are;
 *   - apostrophes are removed ("don't" -> "dont"), as is a comma between two digits
 *     ("1,000" -> "1000"); every other non-alphanumeric byte separates words;
 *   - runs of separators become one space, leading/trailing ones are trimmed;
 *   - the words "zero".."twenty" become "0".."20";
 *   - leading articles "a", "an", "the" are dropped while another word follows
 *     (so "the red one" -> "red one", but a lone "a" stays "a"). */
void answer_normalize(const char *in, char *out, size_t n);

/* 1 iff pred and gt are equal after answer_normalize, else 0 (also 0 when either is
 * NULL or memory runs out). "No." vs "no" -> 1, "two" vs "2" -> 1, "not sure" vs
 * "no" -> 0. */
int answer_correct(const char *pred, const char *gt);

#endif
