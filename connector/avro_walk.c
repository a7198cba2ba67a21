/*
 * avro_walk.c - the validation pass over an Avro binary body, run before
 * avro-c sees any input. See avro_walk.h and envelope.c for why.
 */
#include "avro_walk.h"

#include "envelope.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENVELOPE_MAX_DEPTH 32 /* nesting of writer schemas */

/*
 * Validation pass over the Avro binary encoding, generic over the writer
 * schema. Advances w->p exactly as avro-c's reader will; rejects whatever
 * avro-c would either mishandle or accept but imgsink cannot represent
 * (NUL in strings, invalid UTF-8).
 */
struct envelope_walk {
    const unsigned char *msg; /* start of the message: offsets in errors */
    const unsigned char *p, *end;
    size_t items;   /* map entries and array elements so far */
    char path[128]; /* field path for errors, e.g. payload.key */
    size_t pathlen;
    char *errstr;
    size_t errstr_size;
};

static int walk_fail(struct envelope_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats "<path>: <message>" into errstr and returns -1. */
static int walk_fail(struct envelope_walk *w, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->pathlen)
        snprintf(w->errstr, w->errstr_size, "%s: %s", w->path, msg);
    else
        snprintf(w->errstr, w->errstr_size, "%s", msg);
    return -1;
}

static size_t walk_off(const struct envelope_walk *w)
{
    return (size_t)(w->p - w->msg);
}

static size_t walk_left(const struct envelope_walk *w)
{
    return (size_t)(w->end - w->p);
}

/* Appends to the path; returns the length to restore with walk_pop(). */
static size_t walk_push(struct envelope_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t walk_push(struct envelope_walk *w, const char *fmt, ...)
{
    size_t saved = w->pathlen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(w->path + w->pathlen, sizeof(w->path) - w->pathlen, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->pathlen = strlen(w->path);
    return saved;
}

static void walk_pop(struct envelope_walk *w, size_t saved)
{
    w->pathlen = saved;
    w->path[saved] = '\0';
}

/* Avro long: zigzag varint of at most 10 bytes. avro-c accepts any 10th
 * byte and shifts it into bit 63 of a signed value; only 0 and 1 fit. */
static int walk_long(struct envelope_walk *w, int64_t *vp)
{
    size_t start = walk_off(w);
    uint64_t u = 0;
    int i;

    for (i = 0;; i++) {
        unsigned b;
        if (w->p == w->end)
            return walk_fail(w, "truncated: varint at byte %zu runs past the end", start);
        b = *w->p++;
        if (i == 9 && b > 1)
            return walk_fail(w, "varint at byte %zu is longer than 64 bits", start);
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            break;
    }
    *vp = (int64_t)((u >> 1) ^ (~(u & 1) + 1));
    return 0;
}

/* A bytes or string length: checked against the input before avro-c
 * allocates len + 1 for it. */
static int walk_length(struct envelope_walk *w, size_t *lenp)
{
    size_t at = walk_off(w);
    int64_t n;

    if (walk_long(w, &n))
        return -1;
    if (n < 0)
        return walk_fail(w, "negative length %" PRId64 " (at byte %zu)", n, at);
    if ((uint64_t)n > walk_left(w))
        return walk_fail(w, "declared length %" PRId64 " exceeds remaining %zu (at byte %zu)", n,
                         walk_left(w), at);
    *lenp = (size_t)n;
    return 0;
}

/* Returns the offset of the first byte that is not valid UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF are invalid), or n. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t need, k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i - 1 < need)
            return i;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += need + 1;
    }
    return n;
}

static int walk_string(struct envelope_walk *w)
{
    const unsigned char *nul;
    size_t len, bad;

    if (walk_length(w, &len))
        return -1;
    if ((nul = memchr(w->p, 0, len)) != NULL)
        return walk_fail(w, "string contains a NUL byte (at byte %zu)", (size_t)(nul - w->msg));
    if ((bad = utf8_check(w->p, len)) != len)
        return walk_fail(w, "string is not valid UTF-8 (at byte %zu)", walk_off(w) + bad);
    w->p += len;
    return 0;
}

static int walk_fixed(struct envelope_walk *w, size_t n)
{
    if (walk_left(w) < n)
        return walk_fail(w, "truncated: %zu-byte value at byte %zu, %zu bytes remain", n,
                         walk_off(w), walk_left(w));
    w->p += n;
    return 0;
}

static int walk_value(struct envelope_walk *w, avro_schema_t s, int depth);

/* Arrays and maps: blocks of <count> items, a negative count being followed
 * by the block's byte size; a zero count ends the value. */
static int walk_blocks(struct envelope_walk *w, avro_schema_t s, int depth)
{
    int is_map = is_avro_map(s);
    avro_schema_t items = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);

    for (;;) {
        size_t at = walk_off(w);
        int64_t count, i;

        if (walk_long(w, &count))
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) {
            int64_t bytes;
            if (count == INT64_MIN)
                return walk_fail(w, "invalid block count at byte %zu", at);
            count = -count;
            if (walk_long(w, &bytes))
                return -1;
            if (bytes < 0 || (uint64_t)bytes > walk_left(w))
                return walk_fail(w, "block size %" PRId64 " at byte %zu exceeds remaining %zu",
                                 bytes, at, walk_left(w));
        }
        if ((uint64_t)count > IS_ENVELOPE_MAX_ITEMS - w->items)
            return walk_fail(w, "%" PRId64 " more %s at byte %zu exceed the limit of %d per record",
                             count, is_map ? "map entries" : "array items", at,
                             IS_ENVELOPE_MAX_ITEMS);
        for (i = 0; i < count; i++) {
            size_t saved = walk_push(w, "[%zu]", w->items);
            int r = 0;

            w->items++;
            if (is_map) {
                size_t k = walk_push(w, " key");
                r = walk_string(w);
                walk_pop(w, k);
            }
            if (!r)
                r = walk_value(w, items, depth + 1);
            walk_pop(w, saved);
            if (r)
                return -1;
        }
    }
}

static int walk_value(struct envelope_walk *w, avro_schema_t s, int depth)
{
    size_t at = walk_off(w);
    int64_t v;
    size_t len, i, n;

    if (depth > ENVELOPE_MAX_DEPTH)
        return walk_fail(w, "values nested deeper than %d", ENVELOPE_MAX_DEPTH);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        if (walk_fixed(w, 1))
            return -1;
        if (w->p[-1] > 1)
            return walk_fail(w, "invalid boolean 0x%02x at byte %zu", w->p[-1], at);
        return 0;
    case AVRO_INT32:
        if (walk_long(w, &v))
            return -1;
        if (v < INT32_MIN || v > INT32_MAX)
            return walk_fail(w, "value %" PRId64 " at byte %zu is out of range for int", v, at);
        return 0;
    case AVRO_INT64:
        return walk_long(w, &v);
    case AVRO_FLOAT:
        return walk_fixed(w, 4);
    case AVRO_DOUBLE:
        return walk_fixed(w, 8);
    case AVRO_BYTES:
        if (walk_length(w, &len))
            return -1;
        w->p += len;
        return 0;
    case AVRO_STRING:
        return walk_string(w);
    case AVRO_FIXED:
        return walk_fixed(w, (size_t)avro_schema_fixed_size(s));
    case AVRO_ENUM:
        if (walk_long(w, &v))
            return -1;
        n = (size_t)avro_schema_enum_number_of_symbols(s);
        if (v < 0 || (uint64_t)v >= n)
            return walk_fail(w, "invalid enum index %" PRId64 " at byte %zu (%s has %zu symbols)",
                             v, at, avro_schema_name(s), n);
        return 0;
    case AVRO_UNION:
        if (walk_long(w, &v))
            return -1;
        n = avro_schema_union_size(s);
        if (v < 0 || (uint64_t)v >= n)
            return walk_fail(
                w, "invalid union branch %" PRId64 " at byte %zu (union has %zu branches)", v, at,
                n);
        return walk_value(w, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD:
        n = avro_schema_record_size(s);
        for (i = 0; i < n; i++) {
            const char *name = avro_schema_record_field_name(s, (int)i);
            size_t saved = walk_push(w, w->pathlen ? ".%s" : "%s", name);
            int r = walk_value(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
            walk_pop(w, saved);
            if (r)
                return -1;
        }
        return 0;
    case AVRO_MAP:
    case AVRO_ARRAY:
        return walk_blocks(w, s, depth);
    case AVRO_LINK:
        return walk_value(w, avro_schema_link_target(s), depth + 1);
    default:
        return walk_fail(w, "unsupported schema type %d", (int)avro_typeof(s));
    }
}

/* Checks the whole body [p, end) against schema s; on success *itemsp is
 * the number of map entries and array elements. */
int is_avro_walk(const unsigned char *msg, const unsigned char *p, const unsigned char *end,
                 avro_schema_t s, size_t *itemsp, char *errstr, size_t errstr_size)
{
    struct envelope_walk w = {
        .msg = msg, .p = p, .end = end, .errstr = errstr, .errstr_size = errstr_size};

    if (walk_value(&w, s, 0))
        return -1;
    if (w.p != w.end) {
        size_t extra = walk_left(&w);
        return walk_fail(&w, "trailing %zu byte%s after the record (at byte %zu)", extra,
                         extra == 1 ? "" : "s", walk_off(&w));
    }
    *itemsp = w.items;
    return 0;
}
