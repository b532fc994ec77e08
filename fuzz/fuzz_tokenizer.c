/* fuzz_tokenizer.c: libFuzzer target for the Hugging Face tokenizer.json reader,
 * tokenizer_load (src/data/tokenizer.c), and the encoder and decoder it sets up.
 *
 * The input is the tokenizer.json, optionally followed by a NUL byte and a text to
 * encode (a JSON document cannot hold a raw NUL, so the split is unambiguous; without
 * one a fixed prompt is encoded). A file that loads must give ids inside the
 * vocabulary, decode within its buffer at any buffer size, and survive sevo's own round
 * trip: written by tokenizer_save and loaded again, it has the same tokens, the same
 * special flags and encodes the text to the same ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 512

static const char DEFAULT_TEXT[] =
    "<image> What COLOR is the circle left of the square? <perceive> a red circle, "
    "a blue square </perceive> <answer> red </answer>";

/* Encodes text, checks the ids and the decoder, and returns the id count. */
static int encode_checked(const sevo_tokenizer *t, const char *text, int *ids) {
    int n = tokenizer_encode(t, text, ids, MAX_IDS);
    FUZZ_CHECK(n >= 0);
    int shown = n < MAX_IDS ? n : MAX_IDS;
    int vocab = tokenizer_vocab_size(t);
    for (int i = 0; i < shown; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
    for (int skip = 0; skip < 2; skip++) {
        int len = tokenizer_decode(t, ids, shown, NULL, 0, skip);
        FUZZ_CHECK(len >= 0);
        char *full = malloc((size_t)len + 1);
        FUZZ_CHECK(full != NULL);
        FUZZ_CHECK(tokenizer_decode(t, ids, shown, full, (size_t)len + 1, skip) == len);
        FUZZ_CHECK(strlen(full) == (size_t)len);
        char small[7]; /* truncates like snprintf */
        FUZZ_CHECK(tokenizer_decode(t, ids, shown, small, sizeof small, skip) == len);
        FUZZ_CHECK(strncmp(small, full, sizeof small - 1) == 0);
        free(full);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100], rt_path[1100];
    if (!path[0]) {
        fuzz_path(path, sizeof path, "tokenizer.json");
        fuzz_path(rt_path, sizeof rt_path, "written.json");
    }
    const uint8_t *nul = memchr(data, '\0', size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    char *text = NULL;
    if (nul) {
        size_t text_len = size - json_len - 1;
        text = malloc(text_len + 1);
        FUZZ_CHECK(text != NULL);
        memcpy(text, nul + 1, text_len);
        text[text_len] = '\0';
    }
    fuzz_write(path, data, json_len);

    sevo_tokenizer *t = NULL;
    sevo_error err;
    if (tokenizer_load(&t, path, &err) != 0) {
        FUZZ_CHECK(t == NULL && err.msg[0]);
        free(text);
        return 0;
    }
    static int ids[MAX_IDS], ids_back[MAX_IDS];
    const char *input = text ? text : DEFAULT_TEXT;
    int n = encode_checked(t, input, ids);
    int vocab = tokenizer_vocab_size(t);
    for (int id = 0; id < vocab; id++) {
        const char *tok = tokenizer_id_to_token(t, id);
        FUZZ_CHECK(tok != NULL && tokenizer_token_id(t, tok) == id);
    }

    FUZZ_CHECK(tokenizer_save(t, rt_path, &err) == 0);
    sevo_tokenizer *back = NULL;
    FUZZ_CHECK(tokenizer_load(&back, rt_path, &err) == 0);
    FUZZ_CHECK(tokenizer_vocab_size(back) == vocab);
    for (int id = 0; id < vocab; id++) {
        FUZZ_CHECK(strcmp(tokenizer_id_to_token(back, id), tokenizer_id_to_token(t, id)) == 0);
        FUZZ_CHECK(tokenizer_is_special(back, id) == tokenizer_is_special(t, id));
    }
    FUZZ_CHECK(encode_checked(back, input, ids_back) == n);
    FUZZ_CHECK(memcmp(ids, ids_back, (size_t)(n < MAX_IDS ? n : MAX_IDS) * sizeof *ids) == 0);

    tokenizer_free(back);
    tokenizer_free(t);
    free(text);
    return 0;
}
