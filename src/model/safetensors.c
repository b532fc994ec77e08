/* safetensors.c: the safetensors reader (memory-mapped, validated on open) and the
 * F32 writer. See safetensors.h for the format.
 *
 * Everything that could make a later read go wrong is checked once in safetensors_open:
 * the header length against the file size, every tensor's dtype, shape and offsets, the
 * byte count against numel * dtype size, and that no two tensors share bytes. After
 * that, reads index the mapping without further bounds checks. */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zlib.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/strbuf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c copies little-endian data as is: a big-endian host needs byte swapping"
#endif

/* The Hugging Face library refuses headers above 100 MB; so do we, so that a corrupt
 * length cannot make us parse gigabytes. */
#define MAX_HEADER (100u * 1000u * 1000u)
/* Offsets and sizes travel as JSON numbers (doubles): exact up to 2^53. */
#define MAX_JSON_INT 9007199254740992.0

typedef struct dtype_info {
    const char *name;
    int size;
} dtype_info;

static const dtype_info DTYPES[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
    {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
    {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

typedef struct tensor {
    char *name;
    int dtype; /* index into DTYPES */
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* within the data section */
} tensor;

struct sevo_safetensors {
    char path[1024];
    unsigned char *map;
    size_t map_len;
    const unsigned char *data; /* the data section, inside map */
    uint64_t data_len;
    tensor *t; /* in header order */
    int n;
    int *by_name; /* indices into t, sorted by name, for binary search */
    char **meta;  /* key, value, key, value... */
    int n_meta;
};

/* ---- reading ---- */

void safetensors_close(sevo_safetensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    for (int i = 0; i < st->n; i++)
        free(st->t[i].name);
    free(st->t);
    free(st->by_name);
    for (int i = 0; i < 2 * st->n_meta; i++)
        free(st->meta[i]);
    free(st->meta);
    free(st);
}

/* A non-negative JSON integer that a double holds exactly; -1 if it is not one. */
static int64_t json_u53(const cJSON *j) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= MAX_JSON_INT) || v != floor(v)) return -1;
    return (int64_t)v;
}

static void format_shape(char *out, size_t n, const int64_t *shape, int ndim) {
    size_t len = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(out + len, n - len, "]");
}

static int parse_tensor(sevo_safetensors *st, tensor *t, const cJSON *j, sevo_error *err) {
    const char *p = st->path, *name = t->name;
    if (!cJSON_IsObject(j)) return sevo_fail(err, "%s: tensor '%s': expected an object", p, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dtype))
        return sevo_fail(err, "%s: tensor '%s': field 'dtype': %s", p, name,
                         dtype ? "expected a string" : "missing");
    t->dtype = -1;
    for (int d = 0; d < N_DTYPES; d++)
        if (strcmp(dtype->valuestring, DTYPES[d].name) == 0) t->dtype = d;
    if (t->dtype < 0)
        return sevo_fail(err, "%s: tensor '%s': unknown dtype '%s'", p, name, dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return sevo_fail(err, "%s: tensor '%s': field 'shape': %s", p, name,
                         shape ? "expected an array" : "missing");
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > SAFETENSORS_MAX_DIMS)
        return sevo_fail(err, "%s: tensor '%s': %d dimensions, sevo supports at most %d", p, name,
                         t->ndim, SAFETENSORS_MAX_DIMS);
    /* numel * size must fit in 2^53 to compare with the offsets; check as we multiply. */
    double bytes = DTYPES[t->dtype].size;
    t->numel = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        int64_t v = json_u53(dim);
        if (v < 0)
            return sevo_fail(err,
                             "%s: tensor '%s': field 'shape': dimension %d is not a "
                             "non-negative integer",
                             p, name, d);
        t->shape[d++] = v;
        bytes *= (double)v;
        if (bytes > MAX_JSON_INT)
            return sevo_fail(err, "%s: tensor '%s': shape is too large", p, name);
        t->numel *= v;
    }
    int64_t b = -1, e = -1;
    if (cJSON_IsArray(offs) && cJSON_GetArraySize(offs) == 2) {
        b = json_u53(cJSON_GetArrayItem(offs, 0));
        e = json_u53(cJSON_GetArrayItem(offs, 1));
    }
    if (b < 0 || e < 0 || e < b)
        return sevo_fail(err, "%s: tensor '%s': field 'data_offsets': %s", p, name,
                         offs ? "expected [begin, end] with begin <= end" : "missing");
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end > st->data_len)
        return sevo_fail(err,
                         "%s: tensor '%s': data_offsets [%llu, %llu] exceed the file's data "
                         "size %llu (truncated file?)",
                         p, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)st->data_len);
    if ((double)(t->end - t->begin) != bytes) {
        char s[256];
        format_shape(s, sizeof s, t->shape, t->ndim);
        return sevo_fail(err,
                         "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but "
                         "%s %s needs %.0f",
                         p, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         (unsigned long long)(t->end - t->begin), DTYPES[t->dtype].name, s, bytes);
    }
    return 0;
}

static int parse_metadata(sevo_safetensors *st, const cJSON *j, sevo_error *err) {
    if (!cJSON_IsObject(j)) return sevo_fail(err, "%s: __metadata__: expected an object", st->path);
    int n = cJSON_GetArraySize(j);
    st->meta = sevo_calloc((size_t)(2 * n + 1), sizeof *st->meta, "metadata", err);
    if (!st->meta) return -1;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, j) {
        if (!cJSON_IsString(kv))
            return sevo_fail(err, "%s: __metadata__.%s: expected a string", st->path, kv->string);
        char *k = sevo_strdup(kv->string, "string", err);
        char *v = k ? sevo_strdup(kv->valuestring, "string", err) : NULL;
        if (!v) {
            free(k);
            return -1;
        }
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
    }
    return 0;
}

/* qsort has no context argument, so sort (key, index) pairs instead of bare indices. */
typedef struct sort_item {
    const tensor *t;
    int i;
} sort_item;

static int by_name_cmp(const void *a, const void *b) {
    return strcmp(((const sort_item *)a)->t->name, ((const sort_item *)b)->t->name);
}

static int by_begin_cmp(const void *a, const void *b) {
    const tensor *x = ((const sort_item *)a)->t, *y = ((const sort_item *)b)->t;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Builds the name index and checks that names are unique and tensors do not overlap. */
static int index_tensors(sevo_safetensors *st, sevo_error *err) {
    sort_item *s = sevo_calloc((size_t)(st->n ? st->n : 1), sizeof *s, "tensor index", err);
    st->by_name =
        sevo_calloc((size_t)(st->n ? st->n : 1), sizeof *st->by_name, "tensor index", err);
    int rc = -1;
    if (!s || !st->by_name) goto done;
    for (int i = 0; i < st->n; i++)
        s[i] = (sort_item){&st->t[i], i};
    qsort(s, (size_t)st->n, sizeof *s, by_name_cmp);
    for (int i = 0; i < st->n; i++) {
        if (i > 0 && strcmp(s[i - 1].t->name, s[i].t->name) == 0) {
            sevo_fail(err, "%s: tensor '%s' appears twice in the header", st->path, s[i].t->name);
            goto done;
        }
        st->by_name[i] = s[i].i;
    }
    qsort(s, (size_t)st->n, sizeof *s, by_begin_cmp);
    const tensor *prev = NULL; /* the non-empty tensor that ends last so far */
    for (int i = 0; i < st->n; i++) {
        const tensor *t = s[i].t;
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end) {
            sevo_fail(err,
                      "%s: tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and "
                      "[%llu, %llu])",
                      st->path, prev->name, t->name, (unsigned long long)prev->begin,
                      (unsigned long long)prev->end, (unsigned long long)t->begin,
                      (unsigned long long)t->end);
            goto done;
        }
        if (!prev || t->end > prev->end) prev = t;
    }
    rc = 0;
done:
    free(s);
    return rc;
}

static int parse_header(sevo_safetensors *st, const char *text, size_t len, sevo_error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* Only the writer's space padding may follow the JSON value. */
    while (root && end < text + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (root && end < text + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) return sevo_fail(err, "%s: the header is not valid JSON", st->path);
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        sevo_fail(err, "%s: the header is not a JSON object", st->path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    st->t = sevo_calloc((size_t)(n ? n : 1), sizeof *st->t, "tensor table", err);
    if (!st->t) goto done;
    const cJSON *j;
    cJSON_ArrayForEach(j, root) {
        if (strcmp(j->string, "__metadata__") == 0) {
            if (st->meta) {
                sevo_fail(err, "%s: __metadata__ appears twice", st->path);
                goto done;
            }
            if (parse_metadata(st, j, err) != 0) goto done;
            continue;
        }
        tensor *t = &st->t[st->n];
        t->name = sevo_strdup(j->string, "string", err);
        if (!t->name) goto done;
        st->n++;
        if (parse_tensor(st, t, j, err) != 0) goto done;
    }
    rc = index_tensors(st, err);
done:
    cJSON_Delete(root);
    return rc;
}

/* A file that sevo wrote carries the CRC-32 of its data section in __metadata__
 * ("sevo_crc32"): a flipped bit on disk is then refused instead of loaded. Files from
 * elsewhere have none and are taken as they are. */
static int verify_checksum(const sevo_safetensors *st, sevo_error *err) {
    const char *want = safetensors_metadata(st, SAFETENSORS_CRC_KEY);
    if (!want) return 0;
    uint64_t end = 0;
    for (int i = 0; i < st->n; i++)
        if (st->t[i].end > end) end = st->t[i].end;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t off = 0; off < end;) {
        uInt chunk = end - off > (1u << 30) ? (1u << 30) : (uInt)(end - off);
        crc = crc32(crc, st->data + off, chunk);
        off += chunk;
    }
    char got[16];
    snprintf(got, sizeof got, "%08x", (unsigned)crc);
    if (strcmp(got, want) != 0)
        return sevo_fail(err, "%s: checksum mismatch (__metadata__.%s is %s, the data gives %s): the file is "
                              "corrupt",
                         st->path, SAFETENSORS_CRC_KEY, want, got);
    return 0;
}

int safetensors_open(sevo_safetensors **out, const char *path, sevo_error *err) {
    *out = NULL;
    sevo_safetensors *st = sevo_calloc(1, sizeof *st, "safetensors", err);
    if (!st) return -1;
    snprintf(st->path, sizeof st->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        sevo_fail(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        sevo_fail(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        sevo_fail(err, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        close(fd);
        sevo_fail(err,
                  "%s: truncated: %llu bytes, but a safetensors file starts with an 8-byte "
                  "header length",
                  path, (unsigned long long)size);
        goto fail;
    }
    st->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file */
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        sevo_fail(err, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    st->map_len = (size_t)size;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->map[i];
    if (hlen > size - 8) {
        sevo_fail(err, "%s: header length %llu exceeds the file size %llu (truncated file?)", path,
                  (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    if (hlen > MAX_HEADER) {
        sevo_fail(err, "%s: header length %llu is implausibly large", path,
                  (unsigned long long)hlen);
        goto fail;
    }
    st->data = st->map + 8 + hlen;
    st->data_len = size - 8 - hlen;
    if (parse_header(st, (const char *)st->map + 8, (size_t)hlen, err) != 0) goto fail;
    if (verify_checksum(st, err) != 0) goto fail;
    *out = st;
    return 0;
fail:
    safetensors_close(st);
    return -1;
}

int safetensors_count(const sevo_safetensors *st) { return st->n; }

const char *safetensors_name(const sevo_safetensors *st, int i) {
    return i >= 0 && i < st->n ? st->t[i].name : NULL;
}

static const tensor *find(const sevo_safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const tensor *t = &st->t[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int safetensors_shape(const sevo_safetensors *st, const char *name, int64_t *shape, int max_dims) {
    const tensor *t = find(st, name);
    if (!t) return -1;
    for (int i = 0; i < t->ndim && i < max_dims; i++)
        shape[i] = t->shape[i];
    return t->ndim;
}

int64_t safetensors_numel(const sevo_safetensors *st, const char *name) {
    const tensor *t = find(st, name);
    return t ? t->numel : -1;
}

const char *safetensors_dtype(const sevo_safetensors *st, const char *name) {
    const tensor *t = find(st, name);
    return t ? DTYPES[t->dtype].name : NULL;
}

const char *safetensors_metadata(const sevo_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

/* IEEE half to float, subnormals, infinities and NaNs included. */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int safetensors_read_f32(const sevo_safetensors *st, const char *name, float *dst,
                         const int64_t *expect_shape, int expect_ndim, sevo_error *err) {
    const tensor *t = find(st, name);
    if (!t) return sevo_fail(err, "%s: tensor '%s': not in the file", st->path, name);
    if (expect_shape) {
        int same = expect_ndim == t->ndim;
        for (int i = 0; same && i < t->ndim; i++)
            same = expect_shape[i] == t->shape[i];
        if (!same) {
            char have[256], want[256];
            format_shape(have, sizeof have, t->shape, t->ndim);
            format_shape(want, sizeof want, expect_shape, expect_ndim);
            return sevo_fail(err, "%s: tensor '%s': shape %s in file, model expects %s", st->path,
                             name, have, want);
        }
    }
    const unsigned char *src = st->data + t->begin;
    const char *dt = DTYPES[t->dtype].name;
    size_t n = (size_t)t->numel;
    /* The data section need not be aligned for the element type: copy bytes. */
    if (strcmp(dt, "F32") == 0) {
        if (n) memcpy(dst, src, n * sizeof(float));
    } else if (strcmp(dt, "F16") == 0 || strcmp(dt, "BF16") == 0) {
        int brain = dt[0] == 'B';
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = brain ? bf16_to_f32(h) : f16_to_f32(h);
        }
    } else if (strcmp(dt, "F64") == 0) {
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, sizeof v);
            dst[i] = (float)v;
        }
    } else {
        return sevo_fail(err, "%s: tensor '%s': dtype %s cannot be read as float32", st->path, name,
                         dt);
    }
    return 0;
}

/* ---- writing ---- */

static int check_entries(const char *path, const safetensors_entry *e, int n, const char *const *kv,
                         int n_meta, sevo_error *err) {
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0])
            return sevo_fail(err, "%s: tensor %d has no name", path, i);
        if (strcmp(e[i].name, "__metadata__") == 0)
            return sevo_fail(err, "%s: '__metadata__' cannot name a tensor", path);
        if (e[i].ndim < 0 || e[i].ndim > SAFETENSORS_MAX_DIMS)
            return sevo_fail(err, "%s: tensor '%s': ndim %d out of range [0, %d]", path, e[i].name,
                             e[i].ndim, SAFETENSORS_MAX_DIMS);
        double bytes = 4;
        for (int d = 0; d < e[i].ndim; d++) {
            if (e[i].shape[d] < 0)
                return sevo_fail(err, "%s: tensor '%s': negative dimension", path, e[i].name);
            bytes *= (double)e[i].shape[d];
        }
        if (bytes > MAX_JSON_INT)
            return sevo_fail(err, "%s: tensor '%s': too large", path, e[i].name);
        if (bytes > 0 && !e[i].data)
            return sevo_fail(err, "%s: tensor '%s': no data", path, e[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(e[i].name, e[j].name) == 0)
                return sevo_fail(err, "%s: tensor '%s' given twice", path, e[i].name);
    }
    if (n_meta > 0 && !kv) return sevo_fail(err, "%s: metadata missing", path);
    for (int i = 0; i < 2 * n_meta; i++)
        if (!kv[i]) return sevo_fail(err, "%s: metadata entry %d is NULL", path, i / 2);
    return 0;
}

static uint64_t entry_bytes(const safetensors_entry *e) {
    uint64_t b = 4;
    for (int d = 0; d < e->ndim; d++)
        b *= (uint64_t)e->shape[d];
    return b;
}

/* CRC-32 (zlib's) of the tensor data, in the order written. */
static uint32_t entries_crc32(const safetensors_entry *e, int n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        uint64_t bytes = entry_bytes(&e[i]);
        const unsigned char *p = (const unsigned char *)e[i].data;
        /* zlib takes 32-bit lengths */
        while (bytes > 0) {
            uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
            crc = crc32(crc, p, chunk);
            p += chunk;
            bytes -= chunk;
        }
    }
    return (uint32_t)crc;
}

int safetensors_write_f32(const char *path, const safetensors_entry *entries, int n,
                          const char *const *metadata_kv, int n_metadata, sevo_error *err) {
    if (check_entries(path, entries, n, metadata_kv, n_metadata, err) != 0) return -1;
    /* The header, in the library's layout: metadata first, compact JSON; the data's
     * checksum last among the metadata. */
    strbuf h = {0};
    strbuf_puts(&h, "{\"__metadata__\":{");
    for (int i = 0; i < n_metadata; i++) {
        if (strcmp(metadata_kv[2 * i], SAFETENSORS_CRC_KEY) == 0) continue; /* computed below */
        strbuf_json_string(&h, metadata_kv[2 * i]);
        strbuf_puts(&h, ":");
        strbuf_json_string(&h, metadata_kv[2 * i + 1]);
        strbuf_puts(&h, ",");
    }
    strbuf_printf(&h, "\"%s\":\"%08x\"}", SAFETENSORS_CRC_KEY, (unsigned)entries_crc32(entries, n));
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const safetensors_entry *e = &entries[i];
        strbuf_puts(&h, ",");
        strbuf_json_string(&h, e->name);
        strbuf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++)
            strbuf_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        uint64_t bytes = entry_bytes(e);
        strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    strbuf_puts(&h, "}");
    /* Pad with spaces so the data section starts 8-byte aligned. */
    while (!h.oom && h.len % 8 != 0)
        strbuf_puts(&h, " ");
    if (h.oom) {
        free(h.p);
        return sevo_fail(err, "%s: out of memory while building the header", path);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

    sevo_atomic_file af;
    if (sevo_atomic_open(&af, path, err) != 0) {
        free(h.p);
        return -1;
    }
    int ok = fwrite(len8, 1, 8, af.f) == 8 && fwrite(h.p, 1, h.len, af.f) == h.len;
    free(h.p);
    for (int i = 0; ok && i < n; i++) {
        size_t count = (size_t)(entry_bytes(&entries[i]) / 4);
        ok = count == 0 || fwrite(entries[i].data, sizeof(float), count, af.f) == count;
    }
    if (!ok) {
        sevo_atomic_abort(&af);
        return sevo_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    return sevo_atomic_commit(&af, err);
}
