/* tokenizer.c: the Hugging Face tokenizer.json reader/writer and the encoder behind it.
 *
 * Layout: every token (the model's vocabulary, then any added token that is not in it)
 * lives in one id-indexed array of strings; a hash table of ids finds a token's id from
 * its text. Encoding is a pipeline of three splitters, each handing its pieces to a
 * callback so that encoding and vocabulary building share the exact same segmentation:
 *
 *   raw text -> cut out added tokens with normalized=false        (split_pass, pass 0)
 *            -> cut out added tokens with normalized=true         (split_pass, pass 1)
 *            -> pre-tokenise into words                           (pretokenize)
 *            -> the model maps each word to ids                   (model_word)
 *
 * The Lowercase normaliser only touches ASCII bytes, so it never changes a length and
 * never moves a word boundary. That lets every stage work on offsets into the raw text
 * and apply the lower-casing inside comparisons, with no copies and no allocation
 * during encoding. */
#include "data/tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/jsonutil.h"

/* The dispatch point for the model: WordLevel today, byte-level BPE next. */
typedef enum { TOK_MODEL_WORDLEVEL, TOK_MODEL_BPE } tok_model_type;
typedef enum { TOK_NORM_NONE, TOK_NORM_LOWERCASE } tok_normalizer;
typedef enum { TOK_PRE_NONE, TOK_PRE_WHITESPACE, TOK_PRE_WHITESPACE_SPLIT } tok_pretokenizer;

typedef struct added_token {
    int id; /* its text is tokens[id] */
    size_t len;
    unsigned char special, normalized, lstrip, rstrip, single_word;
} added_token;

struct sevo_tokenizer {
    tok_model_type model;
    tok_normalizer normalizer;
    tok_pretokenizer pretokenizer;
    char **tokens; /* id -> text, each malloc'ed */
    int n_tokens;
    int cap_tokens;
    int n_model;        /* ids 0..n_model-1 are the model's vocabulary */
    int *slots;         /* open-addressing hash table of ids; -1 = empty */
    size_t n_slots;     /* a power of two, kept at least twice n_tokens */
    added_token *added; /* longest first, so the first match is the longest */
    int n_added;
    int unk_id;
};

/* ---- character classes and the hash table ---- */

static unsigned char to_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* \w: ASCII letters, digits, underscore; bytes of multi-byte UTF-8 count as letters. */
static int is_word(unsigned char c) {
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* FNV-1a over the (optionally lower-cased) bytes. */
static uint64_t hash_bytes(const char *s, size_t n, int lower) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        h ^= lower ? to_lower(c) : c;
        h *= 1099511628211ull;
    }
    return h;
}

/* Does tok (NUL-terminated) equal s[0..n), lower-casing s when asked? */
static int bytes_equal(const char *tok, const char *s, size_t n, int lower) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((unsigned char)tok[i] != (lower ? to_lower(c) : c) || tok[i] == '\0') return 0;
    }
    return tok[n] == '\0';
}

static int map_find(const sevo_tokenizer *t, const char *s, size_t n, int lower) {
    if (t->n_slots == 0) return -1;
    size_t mask = t->n_slots - 1;
    for (size_t i = hash_bytes(s, n, lower) & mask;; i = (i + 1) & mask) {
        int id = t->slots[i];
        if (id < 0) return -1;
        if (bytes_equal(t->tokens[id], s, n, lower)) return id;
    }
}

static void map_place(int *slots, size_t n_slots, const char *tok, int id) {
    size_t mask = n_slots - 1;
    size_t i = hash_bytes(tok, strlen(tok), 0) & mask;
    while (slots[i] >= 0)
        i = (i + 1) & mask;
    slots[i] = id;
}

/* Appends a token (a copy of s[0..n), lower-cased if asked) with the next id. The caller
 * has checked that it is not present. Returns the id or -1. */
static int add_token(sevo_tokenizer *t, const char *s, size_t n, int lower, sevo_error *err) {
    if (t->n_tokens == INT_MAX - 1) return sevo_fail(err, "tokenizer: too many tokens");
    if (t->n_tokens == t->cap_tokens) {
        int cap = t->cap_tokens ? t->cap_tokens * 2 : 64;
        if (cap < 0 || cap > INT_MAX / 2) cap = INT_MAX - 1;
        char **p = realloc(t->tokens, (size_t)cap * sizeof *p);
        if (!p) return sevo_fail(err, "out of memory: tokenizer vocabulary");
        t->tokens = p;
        t->cap_tokens = cap;
    }
    if ((size_t)(t->n_tokens + 1) * 2 > t->n_slots) {
        size_t ns = t->n_slots ? t->n_slots * 2 : 128;
        int *slots = sevo_malloc(ns * sizeof *slots, "tokenizer hash table", err);
        if (!slots) return -1;
        for (size_t i = 0; i < ns; i++)
            slots[i] = -1;
        for (int id = 0; id < t->n_tokens; id++)
            map_place(slots, ns, t->tokens[id], id);
        free(t->slots);
        t->slots = slots;
        t->n_slots = ns;
    }
    char *copy = sevo_malloc(n + 1, "token", err);
    if (!copy) return -1;
    for (size_t i = 0; i < n; i++)
        copy[i] = lower ? (char)to_lower((unsigned char)s[i]) : s[i];
    copy[n] = '\0';
    int id = t->n_tokens++;
    t->tokens[id] = copy;
    map_place(t->slots, t->n_slots, copy, id);
    return id;
}

static sevo_tokenizer *tokenizer_new(sevo_error *err) {
    sevo_tokenizer *t = sevo_calloc(1, sizeof *t, "tokenizer", err);
    if (!t) return NULL;
    t->model = TOK_MODEL_WORDLEVEL;
    t->normalizer = TOK_NORM_LOWERCASE;
    t->pretokenizer = TOK_PRE_WHITESPACE;
    t->unk_id = -1;
    return t;
}

void tokenizer_free(sevo_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_tokens; i++)
        free(t->tokens[i]);
    free(t->tokens);
    free(t->slots);
    free(t->added);
    free(t);
}

static int by_length_desc(const void *a, const void *b) {
    const added_token *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id - y->id;
}

/* ---- segmentation ---- */

/* Receives each piece of the text: an added token (added_id >= 0) or a raw,
 * not yet normalised word s[0..n). Non-zero return aborts the walk. */
typedef int (*piece_fn)(void *ctx, const sevo_tokenizer *t, const char *s, size_t n, int added_id);

static int pretokenize(const sevo_tokenizer *t, const char *s, size_t begin, size_t end,
                       piece_fn fn, void *ctx) {
    if (t->pretokenizer == TOK_PRE_NONE) return fn(ctx, t, s + begin, end - begin, -1);
    size_t i = begin;
    while (i < end) {
        while (i < end && is_space((unsigned char)s[i]))
            i++;
        if (i == end) break;
        size_t j = i;
        if (t->pretokenizer == TOK_PRE_WHITESPACE_SPLIT) {
            while (j < end && !is_space((unsigned char)s[j]))
                j++;
        } else if (is_word((unsigned char)s[i])) { /* \w+ */
            while (j < end && is_word((unsigned char)s[j]))
                j++;
        } else { /* [^\w\s]+ */
            while (j < end && !is_word((unsigned char)s[j]) && !is_space((unsigned char)s[j]))
                j++;
        }
        int rc = fn(ctx, t, s + i, j - i, -1);
        if (rc) return rc;
        i = j;
    }
    return 0;
}

/* Finds the leftmost added token of this pass in s[from, end) (the segment being split
 * is s[begin, end)); at one position the longest token wins. Returns its index in
 * t->added and the span it covers, widened by its lstrip/rstrip whitespace. */
static int find_added(const sevo_tokenizer *t, const char *s, size_t begin, size_t from, size_t end,
                      int pass, size_t *mb, size_t *me) {
    int lower = pass == 1 && t->normalizer == TOK_NORM_LOWERCASE;
    for (size_t i = from; i < end; i++) {
        for (int k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->normalized != pass || a->len > end - i) continue;
            if (!bytes_equal(t->tokens[a->id], s + i, a->len, lower)) continue;
            size_t b = i, e = i + a->len;
            if (a->single_word && ((b > begin && is_word((unsigned char)s[b - 1])) ||
                                   (e < end && is_word((unsigned char)s[e]))))
                continue;
            if (a->lstrip)
                while (b > from && is_space((unsigned char)s[b - 1]))
                    b--;
            if (a->rstrip)
                while (e < end && is_space((unsigned char)s[e]))
                    e++;
            *mb = b;
            *me = e;
            return k;
        }
    }
    return -1;
}

static int split_pass(const sevo_tokenizer *t, const char *s, size_t begin, size_t end, int pass,
                      piece_fn fn, void *ctx) {
    size_t pos = begin;
    while (pos < end) {
        size_t mb = end, me = end;
        int k = find_added(t, s, begin, pos, end, pass, &mb, &me);
        if (mb > pos) {
            int rc = pass == 0 ? split_pass(t, s, pos, mb, 1, fn, ctx)
                               : pretokenize(t, s, pos, mb, fn, ctx);
            if (rc) return rc;
        }
        if (k < 0) break;
        int rc = fn(ctx, t, s + mb, me - mb, t->added[k].id);
        if (rc) return rc;
        pos = me;
    }
    return 0;
}

static int segment(const sevo_tokenizer *t, const char *text, piece_fn fn, void *ctx) {
    return split_pass(t, text, 0, strlen(text), 0, fn, ctx);
}

/* ---- encoding ---- */

typedef struct encode_ctx {
    int *ids;
    int max_ids;
    int count;
} encode_ctx;

static void emit(encode_ctx *c, int id) {
    if (c->count < c->max_ids) c->ids[c->count] = id;
    if (c->count < INT_MAX) c->count++;
}

/* The model: a normalised word to its ids. */
static void model_word(const sevo_tokenizer *t, const char *s, size_t n, encode_ctx *c) {
    switch (t->model) {
    case TOK_MODEL_WORDLEVEL: {
        int id = map_find(t, s, n, t->normalizer == TOK_NORM_LOWERCASE);
        /* Added tokens outside the model's vocabulary are not words of the model. */
        emit(c, id >= 0 && id < t->n_model ? id : t->unk_id);
        break;
    }
    case TOK_MODEL_BPE: /* refused by tokenizer_load until implemented */
        emit(c, t->unk_id);
        break;
    }
}

static int encode_piece(void *ctx, const sevo_tokenizer *t, const char *s, size_t n, int added_id) {
    encode_ctx *c = ctx;
    if (added_id >= 0)
        emit(c, added_id);
    else
        model_word(t, s, n, c);
    return 0;
}

int tokenizer_encode(const sevo_tokenizer *t, const char *text, int *ids, int max_ids) {
    encode_ctx c = {ids, ids ? max_ids : 0, 0};
    if (!t || !text) return 0;
    segment(t, text, encode_piece, &c);
    return c.count;
}

/* ---- lookups and decoding ---- */

int tokenizer_vocab_size(const sevo_tokenizer *t) { return t->n_tokens; }

int tokenizer_token_id(const sevo_tokenizer *t, const char *tok) {
    return tok ? map_find(t, tok, strlen(tok), 0) : -1;
}

const char *tokenizer_id_to_token(const sevo_tokenizer *t, int id) {
    return id >= 0 && id < t->n_tokens ? t->tokens[id] : NULL;
}

int tokenizer_is_special(const sevo_tokenizer *t, int id) {
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) return t->added[k].special;
    return 0;
}

int tokenizer_decode(const sevo_tokenizer *t, const int *ids, int n, char *out, size_t outlen,
                     int skip_special) {
    size_t len = 0;
    int first = 1;
    for (int i = 0; i < n; i++) {
        const char *tok = tokenizer_id_to_token(t, ids[i]);
        if (!tok || (skip_special && tokenizer_is_special(t, ids[i]))) continue;
        for (const char *p = first ? "" : " "; *p; p++, len++)
            if (len + 1 < outlen) out[len] = *p;
        for (const char *p = tok; *p; p++, len++)
            if (len + 1 < outlen) out[len] = *p;
        first = 0;
    }
    if (outlen) out[len < outlen ? len : outlen - 1] = '\0';
    return len > INT_MAX ? INT_MAX : (int)len;
}

/* ---- building ---- */

typedef struct build_ctx {
    const sevo_tokenizer *t; /* the specials */
    sevo_tokenizer *words;   /* a scratch token store used as a set of new words */
    sevo_error *err;
} build_ctx;

static int build_piece(void *ctx, const sevo_tokenizer *t, const char *s, size_t n, int added_id) {
    build_ctx *c = ctx;
    (void)t;
    if (added_id >= 0) return 0;
    if (map_find(c->t, s, n, 1) >= 0 || map_find(c->words, s, n, 1) >= 0) return 0;
    return add_token(c->words, s, n, 1, c->err) < 0 ? -1 : 0;
}

static int by_bytes(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int tokenizer_build_wordlevel(sevo_tokenizer **out, const char *const *texts, int n_texts,
                              const char *const *special_tokens, int n_special, sevo_error *err) {
    *out = NULL;
    sevo_tokenizer *t = tokenizer_new(err);
    sevo_tokenizer *words = tokenizer_new(err);
    if (!t || !words) goto fail;
    if (n_special < 1) {
        sevo_fail(err, "tokenizer: no special tokens given; '<unk>' is required");
        goto fail;
    }
    t->added = sevo_calloc((size_t)n_special, sizeof *t->added, "added tokens", err);
    if (!t->added) goto fail;
    for (int i = 0; i < n_special; i++) {
        const char *s = special_tokens[i];
        if (!s || !*s) {
            sevo_fail(err, "tokenizer: special token %d is empty", i);
            goto fail;
        }
        if (map_find(t, s, strlen(s), 0) >= 0) {
            sevo_fail(err, "tokenizer: special token '%s' given twice", s);
            goto fail;
        }
        int id = add_token(t, s, strlen(s), 0, err);
        if (id < 0) goto fail;
        t->added[t->n_added++] = (added_token){.id = id, .len = strlen(s), .special = 1};
    }
    t->n_model = t->n_tokens;
    t->unk_id = map_find(t, "<unk>", 5, 0);
    if (t->unk_id < 0) {
        sevo_fail(err, "tokenizer: '<unk>' must be one of the special tokens");
        goto fail;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, by_length_desc);

    build_ctx c = {t, words, err};
    for (int i = 0; i < n_texts; i++) {
        if (!texts[i]) {
            sevo_fail(err, "tokenizer: text %d is NULL", i);
            goto fail;
        }
        if (segment(t, texts[i], build_piece, &c) != 0) goto fail;
    }
    qsort(words->tokens, (size_t)words->n_tokens, sizeof *words->tokens, by_bytes);
    for (int i = 0; i < words->n_tokens; i++)
        if (add_token(t, words->tokens[i], strlen(words->tokens[i]), 0, err) < 0) goto fail;
    t->n_model = t->n_tokens;
    tokenizer_free(words);
    *out = t;
    return 0;
fail:
    tokenizer_free(words);
    tokenizer_free(t);
    return -1;
}

/* ---- loading ---- */

/* Reads a JSON integer in [0, INT_MAX]; -1 if it is not one. */
static int json_index(const cJSON *j) {
    int v;
    return json_int_in(j, 0, INT_MAX, &v) ? -1 : v;
}

static int load_normalizer(sevo_tokenizer *t, const cJSON *root, const char *path,
                           sevo_error *err) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    t->normalizer = TOK_NORM_NONE;
    if (!n || cJSON_IsNull(n)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (!cJSON_IsString(type))
        return sevo_fail(err, "%s: field 'normalizer.type': expected a string", path);
    if (strcmp(type->valuestring, "Lowercase") == 0) {
        t->normalizer = TOK_NORM_LOWERCASE;
        return 0;
    }
    if (strcmp(type->valuestring, "Sequence") != 0)
        return sevo_fail(err,
                         "%s: field 'normalizer.type': unsupported normalizer '%s' (sevo "
                         "supports Lowercase, or a Sequence of it)",
                         path, type->valuestring);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!cJSON_IsArray(list))
        return sevo_fail(err, "%s: field 'normalizer.normalizers': expected an array", path);
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(item, "type");
        if (!cJSON_IsString(it) || strcmp(it->valuestring, "Lowercase") != 0)
            return sevo_fail(err,
                             "%s: field 'normalizer.normalizers[%d].type': unsupported "
                             "normalizer '%s' (sevo supports Lowercase)",
                             path, i, cJSON_IsString(it) ? it->valuestring : "?");
        t->normalizer = TOK_NORM_LOWERCASE;
        i++;
    }
    return 0;
}

static int load_pretokenizer(sevo_tokenizer *t, const cJSON *root, const char *path,
                             sevo_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    t->pretokenizer = TOK_PRE_NONE;
    if (!p || cJSON_IsNull(p)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(type))
        return sevo_fail(err, "%s: field 'pre_tokenizer.type': expected a string", path);
    if (strcmp(type->valuestring, "Whitespace") == 0)
        t->pretokenizer = TOK_PRE_WHITESPACE;
    else if (strcmp(type->valuestring, "WhitespaceSplit") == 0)
        t->pretokenizer = TOK_PRE_WHITESPACE_SPLIT;
    else
        return sevo_fail(err,
                         "%s: field 'pre_tokenizer.type': unsupported pre-tokenizer '%s' "
                         "(sevo supports Whitespace and WhitespaceSplit)",
                         path, type->valuestring);
    return 0;
}

/* post_processor and decoder change what encode/decode produce; sevo implements neither,
 * so anything but null would silently give different ids or text: refuse it. */
static int require_null(const cJSON *root, const char *field, const char *path, sevo_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!j || cJSON_IsNull(j)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    return sevo_fail(err, "%s: field '%s': '%s' is not supported (sevo needs null)", path, field,
                     cJSON_IsString(type) ? type->valuestring : json_kind(j));
}

static int load_vocab(sevo_tokenizer *t, const cJSON *model, const char *path, sevo_error *err) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!vocab) return sevo_fail(err, "%s: field 'model.vocab': missing", path);
    if (!cJSON_IsObject(vocab))
        return sevo_fail(err, "%s: field 'model.vocab': expected an object, got %s", path,
                         json_kind(vocab));
    int n = cJSON_GetArraySize(vocab);
    /* Ids must be exactly 0..n-1: the file is read into an id-indexed array. */
    char **slot = sevo_calloc((size_t)(n ? n : 1), sizeof *slot, "vocabulary", err);
    if (!slot) return -1;
    int rc = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int id = json_index(e);
        if (id < 0 || id >= n) {
            if (cJSON_IsNumber(e))
                sevo_fail(err,
                          "%s: field 'model.vocab': token '%s': id %.17g out of range "
                          "[0, %d)",
                          path, e->string, e->valuedouble, n);
            else
                sevo_fail(err,
                          "%s: field 'model.vocab': token '%s': expected an integer id, "
                          "got %s",
                          path, e->string, json_kind(e));
            goto done;
        }
        if (slot[id]) {
            sevo_fail(err, "%s: field 'model.vocab': id %d duplicated ('%s' and '%s')", path, id,
                      slot[id], e->string);
            goto done;
        }
        slot[id] = e->string;
    }
    /* n distinct ids in [0, n): every slot is filled. */
    for (int id = 0; id < n; id++) {
        if (map_find(t, slot[id], strlen(slot[id]), 0) >= 0) {
            sevo_fail(err, "%s: field 'model.vocab': token '%s' duplicated", path, slot[id]);
            goto done;
        }
        if (add_token(t, slot[id], strlen(slot[id]), 0, err) < 0) goto done;
    }
    t->n_model = n;
    rc = 0;
done:
    free(slot);
    return rc;
}

static int json_flag(const cJSON *obj, const char *key, int dflt, int i, const char *path, int *out,
                     sevo_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(j))
        return sevo_fail(err, "%s: field 'added_tokens[%d].%s': expected true or false, got %s",
                         path, i, key, json_kind(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

static int load_added(sevo_tokenizer *t, const cJSON *root, const char *path, sevo_error *err) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list))
        return sevo_fail(err, "%s: field 'added_tokens': expected an array, got %s", path,
                         json_kind(list));
    int n = cJSON_GetArraySize(list);
    t->added = sevo_calloc((size_t)(n ? n : 1), sizeof *t->added, "added tokens", err);
    if (!t->added) return -1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return sevo_fail(err, "%s: field 'added_tokens[%d].content': %s", path, i,
                             content ? "expected a non-empty string" : "missing");
        const char *s = content->valuestring;
        int id = json_index(jid);
        if (id < 0)
            return sevo_fail(err, "%s: field 'added_tokens[%d].id': %s", path, i,
                             jid ? "expected a non-negative integer" : "missing");
        added_token a = {.len = strlen(s)};
        int special = 0, normalized = 0, lstrip = 0, rstrip = 0, single_word = 0;
        if (json_flag(e, "special", 0, i, path, &special, err) ||
            json_flag(e, "normalized", !special, i, path, &normalized, err) ||
            json_flag(e, "lstrip", 0, i, path, &lstrip, err) ||
            json_flag(e, "rstrip", 0, i, path, &rstrip, err) ||
            json_flag(e, "single_word", 0, i, path, &single_word, err))
            return -1;
        a.special = (unsigned char)special;
        a.normalized = (unsigned char)normalized;
        a.lstrip = (unsigned char)lstrip;
        a.rstrip = (unsigned char)rstrip;
        a.single_word = (unsigned char)single_word;
        /* The library gives an added token the model's id for the same text, or else the
         * next free id; a file that says otherwise would tokenize differently there. */
        int have = map_find(t, s, a.len, 0);
        for (int k = 0; k < t->n_added; k++)
            if (t->added[k].id == have)
                return sevo_fail(err, "%s: field 'added_tokens[%d]': '%s' listed twice", path, i,
                                 s);
        int expect = have >= 0 ? have : t->n_tokens;
        if (id != expect)
            return sevo_fail(err,
                             "%s: field 'added_tokens[%d].id': '%s' has id %d, expected %d "
                             "(%s)",
                             path, i, s, id, expect,
                             have >= 0 ? "its id in model.vocab"
                                       : "the next id after the vocabulary");
        if (have < 0 && add_token(t, s, a.len, 0, err) < 0) return -1;
        a.id = id;
        t->added[t->n_added++] = a;
        i++;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, by_length_desc);
    return 0;
}

static int from_json(sevo_tokenizer *t, const cJSON *root, const char *path, sevo_error *err) {
    if (!cJSON_IsObject(root)) return sevo_fail(err, "%s: expected a JSON object", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) return sevo_fail(err, "%s: field 'model': missing", path);
    if (!cJSON_IsObject(model))
        return sevo_fail(err, "%s: field 'model': expected an object, got %s", path,
                         json_kind(model));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!type) return sevo_fail(err, "%s: field 'model.type': missing", path);
    if (!cJSON_IsString(type))
        return sevo_fail(err, "%s: field 'model.type': expected a string, got %s", path,
                         json_kind(type));
    if (strcmp(type->valuestring, "BPE") == 0)
        return sevo_fail(err,
                         "%s: field 'model.type': BPE tokenizers are not supported yet "
                         "(sevo reads WordLevel)",
                         path);
    if (strcmp(type->valuestring, "WordLevel") != 0)
        return sevo_fail(err, "%s: field 'model.type': unknown model '%s' (sevo reads WordLevel)",
                         path, type->valuestring);
    t->model = TOK_MODEL_WORDLEVEL;
    if (load_vocab(t, model, path, err) || load_normalizer(t, root, path, err) ||
        load_pretokenizer(t, root, path, err) || require_null(root, "post_processor", path, err) ||
        require_null(root, "decoder", path, err))
        return -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *unk_s = "<unk>"; /* the library's default */
    if (unk && !cJSON_IsString(unk))
        return sevo_fail(err, "%s: field 'model.unk_token': expected a string, got %s", path,
                         json_kind(unk));
    if (unk) unk_s = unk->valuestring;
    t->unk_id = map_find(t, unk_s, strlen(unk_s), 0);
    if (t->unk_id < 0)
        return sevo_fail(err, "%s: field 'model.unk_token': '%s' is not in model.vocab", path,
                         unk_s);
    return load_added(t, root, path, err);
}

int tokenizer_load(sevo_tokenizer **out, const char *path, sevo_error *err) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    if (sevo_read_file(path, &text, &len, err) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    while (root && end < text + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (root && end < text + len) { /* text after the document */
        cJSON_Delete(root);
        root = NULL;
    }
    int line = 1; /* where parsing stopped, for the message */
    for (const char *p = text; end && p < end && p < text + len; p++)
        line += *p == '\n';
    free(text);
    if (!root) return sevo_fail(err, "%s:%d: invalid JSON", path, line);
    sevo_tokenizer *t = tokenizer_new(err);
    if (!t || from_json(t, root, path, err) != 0) {
        cJSON_Delete(root);
        tokenizer_free(t);
        return -1;
    }
    cJSON_Delete(root);
    *out = t;
    return 0;
}

/* ---- saving ---- */

static int by_id(const void *a, const void *b) {
    return ((const added_token *)a)->id - ((const added_token *)b)->id;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "type", type)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Builds the whole document; NULL on out of memory (cJSON frees partial trees). */
static cJSON *to_json(const sevo_tokenizer *t, added_token *sorted) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = cJSON_AddStringToObject(root, "version", "1.0") &&
             cJSON_AddNullToObject(root, "truncation") && cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    ok = ok && added;
    for (int k = 0; ok && k < t->n_added; k++) {
        const added_token *a = &sorted[k];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(added, o) && cJSON_AddNumberToObject(o, "id", a->id) &&
             cJSON_AddStringToObject(o, "content", t->tokens[a->id]) &&
             cJSON_AddBoolToObject(o, "single_word", a->single_word) &&
             cJSON_AddBoolToObject(o, "lstrip", a->lstrip) &&
             cJSON_AddBoolToObject(o, "rstrip", a->rstrip) &&
             cJSON_AddBoolToObject(o, "normalized", a->normalized) &&
             cJSON_AddBoolToObject(o, "special", a->special);
    }
    if (ok) {
        cJSON *n = t->normalizer == TOK_NORM_LOWERCASE ? typed("Lowercase") : cJSON_CreateNull();
        ok = n && cJSON_AddItemToObject(root, "normalizer", n);
    }
    if (ok) {
        cJSON *p = t->pretokenizer == TOK_PRE_WHITESPACE         ? typed("Whitespace")
                   : t->pretokenizer == TOK_PRE_WHITESPACE_SPLIT ? typed("WhitespaceSplit")
                                                                 : cJSON_CreateNull();
        ok = p && cJSON_AddItemToObject(root, "pre_tokenizer", p);
    }
    ok = ok && cJSON_AddNullToObject(root, "post_processor") &&
         cJSON_AddNullToObject(root, "decoder");
    cJSON *model = ok ? typed("WordLevel") : NULL;
    ok = model && cJSON_AddItemToObject(root, "model", model);
    cJSON *vocab = ok ? cJSON_AddObjectToObject(model, "vocab") : NULL;
    ok = vocab != NULL;
    for (int id = 0; ok && id < t->n_model; id++)
        ok = cJSON_AddNumberToObject(vocab, t->tokens[id], id) != NULL;
    ok = ok && cJSON_AddStringToObject(model, "unk_token", t->tokens[t->unk_id]);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int tokenizer_save(const sevo_tokenizer *t, const char *path, sevo_error *err) {
    if (t->model != TOK_MODEL_WORDLEVEL)
        return sevo_fail(err, "%s: only WordLevel tokenizers can be saved", path);
    added_token *sorted =
        sevo_calloc((size_t)(t->n_added ? t->n_added : 1), sizeof *sorted, "added tokens", err);
    if (!sorted) return -1;
    if (t->n_added) memcpy(sorted, t->added, (size_t)t->n_added * sizeof *sorted);
    qsort(sorted, (size_t)t->n_added, sizeof *sorted, by_id);
    cJSON *root = to_json(t, sorted);
    free(sorted);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return sevo_fail(err, "%s: out of memory while writing the tokenizer", path);
    int rc = sevo_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}
