/* tokenizer.h: text <-> token ids, stored as a Hugging Face `tokenizer.json` (DESIGN §4).
 *
 * sevo reads and writes the same file that the Python `tokenizers` library does, so a
 * checkpoint trained here tokenizes identically there. Supported today: the WordLevel
 * model (the synthetic world's), the Lowercase normalizer (alone or in a Sequence, or
 * none), and the Whitespace (\w+|[^\w\s]+), WhitespaceSplit or null pre-tokenizers.
 * Byte-level BPE has its slot in the model dispatch but loading one reports "not
 * supported yet".
 *
 * Encoding follows the Python library: added tokens (e.g. "<perceive>") are cut out of
 * the raw text first, longest match first; the text between them is normalised,
 * pre-tokenised and each word mapped to its id or to "<unk>". Only ASCII letters are
 * lower-cased; bytes >= 0x80 count as word characters. */
#ifndef SEVO_DATA_TOKENIZER_H
#define SEVO_DATA_TOKENIZER_H

#include <stddef.h>

#include "core/error.h"

typedef struct sevo_tokenizer sevo_tokenizer;

/* Builds a WordLevel vocabulary: ids 0..n_special-1 are special_tokens in order (they
 * become special "added_tokens"), then every distinct word of the normalised,
 * pre-tokenised texts in byte order. Special tokens occurring inside the texts are cut
 * out first, as encoding does, so they do not leave fragments such as "<" in the
 * vocabulary. "<unk>" must be one of the special tokens. */
int tokenizer_build_wordlevel(sevo_tokenizer **out, const char *const *texts, int n_texts,
                              const char *const *special_tokens, int n_special, sevo_error *err);

int tokenizer_load(sevo_tokenizer **out, const char *path, sevo_error *err);
/* Writes a valid Hugging Face tokenizer.json, atomically. */
int tokenizer_save(const sevo_tokenizer *t, const char *path, sevo_error *err);
void tokenizer_free(sevo_tokenizer *t);

/* Number of ids, added tokens included (ids are 0..size-1). */
int tokenizer_vocab_size(const sevo_tokenizer *t);
/* Exact lookup, no normalisation; -1 if absent. */
int tokenizer_token_id(const sevo_tokenizer *t, const char *tok);
/* NULL if id is out of range. */
const char *tokenizer_id_to_token(const sevo_tokenizer *t, int id);
/* 1 if id is an added token marked special, else 0. */
int tokenizer_is_special(const sevo_tokenizer *t, int id);

/* Encodes text. Returns the number of ids the text has; only the first max_ids are
 * written to ids (so a return value > max_ids means truncation). */
int tokenizer_encode(const sevo_tokenizer *t, const char *text, int *ids, int max_ids);

/* Decodes ids into out as the tokens joined by single spaces (the library's behaviour
 * with no decoder). Ids out of range are skipped, as the library does; special tokens
 * are skipped when skip_special is non-zero. Returns the length of the full string and
 * truncates like snprintf when outlen is too small. */
int tokenizer_decode(const sevo_tokenizer *t, const int *ids, int n, char *out, size_t outlen,
                     int skip_special);

#endif
