/*
 * Unit tests for connector/envelope.c: ImageRecord decode/encode.
 *
 * Run from the repository root (the schema test reads
 * schemas/image_record.avsc), or set IS_SOURCE_DIR at compile time or
 * IMGSINK_SOURCE_DIR in the environment. Hostile inputs are built byte by
 * byte with struct bld so each test states exactly what is on the wire.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <avro.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "keys.h"

#define MAXREC ((size_t)8 << 20)

/* ---- helpers ----------------------------------------------------------- */

struct bld {
    unsigned char b[1 << 16];
    size_t n;
};

static void put_raw(struct bld *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof(b->b));
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void put_byte(struct bld *b, unsigned char c)
{
    put_raw(b, &c, 1);
}

/* Avro long: zigzag, then base-128 varint. */
static void put_long(struct bld *b, int64_t v)
{
    uint64_t u = v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
    while (u >= 0x80) {
        put_byte(b, (unsigned char)(u | 0x80));
        u >>= 7;
    }
    put_byte(b, (unsigned char)u);
}

static void put_str(struct bld *b, const char *s)
{
    put_long(b, (int64_t)strlen(s));
    put_raw(b, s, strlen(s));
}

/* Fields id .. filename of a valid record. */
static void put_head(struct bld *b, const char *id)
{
    put_str(b, id);
    put_str(b, "acme");
    put_long(b, 0); /* source: stream */
    put_long(b, INT64_C(1700000000000));
    put_str(b, "image/jpeg");
    put_str(b, "a.jpg");
}

/* attributes {}, retention_days 7, payload inline "\xff\xd8". */
static void put_tail(struct bld *b)
{
    put_long(b, 0);
    put_long(b, 7);
    put_long(b, 0);
    put_str(b, "\xff\xd8");
}

static void sample(is_record_t *r, int ref)
{
    static char *keys[] = {"camera", "caption", "empty"};
    static char *vals[] = {"Nikon Z6", "Café in Zürich \xe2\x98\x95 \xf0\x9f\x93\xb7 日本", ""};
    static unsigned char img[] = {0xff, 0xd8, 0x00, 0xff, 0x00, 0x7f, 0x80, 0xd9};

    memset(r, 0, sizeof(*r));
    r->id = "img-0001_A.b";
    r->tenant = "acme";
    r->source = ref ? "api" : "stream";
    r->uploaded_at_ms = INT64_C(1700000000123);
    r->content_type = "image/jpeg";
    r->filename = "\xc3\xa9t\xc3\xa9 \xe5\x86\x99\xe7\x9c\x9f.jpg";
    r->nattrs = 3;
    r->attr_keys = keys;
    r->attr_values = vals;
    r->retention_days = 7;
    r->schema_id = -1;
    if (ref) {
        r->payload_is_ref = 1;
        r->ref.bucket = "raw";
        r->ref.key = "acme/2023/11/14/img-0001/original";
        r->ref.version_id = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY";
        r->ref.sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        r->ref.size = INT64_C(5000000000);
    } else {
        r->payload = img;
        r->payload_len = sizeof(img);
    }
}

static void encode(const is_record_t *r, int schema_id, unsigned char **buf, size_t *len)
{
    char err[512] = "";
    void *out = NULL;
    if (is_envelope_encode(r, schema_id, &out, len, err, sizeof(err)))
        fail_msg("encode: %s", err);
    *buf = out;
}

static is_record_t *decode_ok(const void *buf, size_t len, is_envelope_format_t fmt)
{
    char err[512] = "";
    is_record_t *rec = (is_record_t *)1;
    if (is_envelope_decode(buf, len, fmt, MAXREC, &rec, err, sizeof(err)))
        fail_msg("decode: %s", err);
    assert_non_null(rec);
    return rec;
}

/* Decoding must fail, leave *recp NULL, and the message must contain
 * `needle` (and `needle2` when given). Returns nothing: fails the test. */
static void expect_fail_max(const void *buf, size_t len, is_envelope_format_t fmt, size_t max,
                            const char *needle, const char *needle2)
{
    char err[512] = "";
    is_record_t *rec = (is_record_t *)1;
    int r = is_envelope_decode(buf, len, fmt, max, &rec, err, sizeof(err));
    if (r != -1) {
        is_record_destroy(r == 0 ? rec : NULL);
        fail_msg("decode succeeded, expected an error containing \"%s\"", needle);
    }
    assert_null(rec);
    if (!strstr(err, needle) || (needle2 && !strstr(err, needle2)))
        fail_msg("error \"%s\" does not contain \"%s\"%s%s", err, needle, needle2 ? " and " : "",
                 needle2 ? needle2 : "");
}

static void expect_fail(const void *buf, size_t len, is_envelope_format_t fmt, const char *needle,
                        const char *needle2)
{
    expect_fail_max(buf, len, fmt, MAXREC, needle, needle2);
}

static void assert_same(const is_record_t *a, const is_record_t *b)
{
    size_t i;
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->tenant, b->tenant);
    assert_string_equal(a->source, b->source);
    assert_string_equal(a->content_type, b->content_type);
    assert_string_equal(a->filename, b->filename);
    assert_true(a->uploaded_at_ms == b->uploaded_at_ms);
    assert_int_equal(a->retention_days, b->retention_days);
    assert_int_equal(a->nattrs, b->nattrs);
    for (i = 0; i < a->nattrs; i++) {
        assert_string_equal(a->attr_keys[i], b->attr_keys[i]);
        assert_string_equal(a->attr_values[i], b->attr_values[i]);
    }
    assert_int_equal(a->payload_is_ref, b->payload_is_ref);
    if (!a->payload_is_ref) {
        assert_int_equal(a->payload_len, b->payload_len);
        assert_memory_equal(a->payload, b->payload, a->payload_len);
    } else {
        assert_string_equal(a->ref.bucket, b->ref.bucket);
        assert_string_equal(a->ref.key, b->ref.key);
        if (a->ref.version_id || b->ref.version_id)
            assert_string_equal(a->ref.version_id, b->ref.version_id);
        if (a->ref.sha256 || b->ref.sha256)
            assert_string_equal(a->ref.sha256, b->ref.sha256);
        assert_null(a->ref.version_id ? NULL : b->ref.version_id);
        assert_null(a->ref.sha256 ? NULL : b->ref.sha256);
        assert_true(a->ref.size == b->ref.size);
    }
}

static char *slurp(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *lenp = (size_t)n;
    return buf;
}

/* ---- tests ------------------------------------------------------------- */

/* The compiled-in schema is the file's schema. avro-c 1.11.1 ignores doc,
 * default and logicalType, so avro_schema_equal alone would miss drift in
 * them: the JSON documents are compared too. */
static void test_schema_matches_avsc(void **state)
{
    const char *dir = getenv("IMGSINK_SOURCE_DIR");
    char path[1024];
    avro_schema_t a = NULL, b = NULL, c = NULL;
    json_t *ja, *jb;
    char *text;
    size_t len = 0;
    const char *changed =
        "{\"type\":\"record\",\"name\":\"ImageRecord\",\"namespace\":\"io.imgsink\","
        "\"fields\":[{\"name\":\"id\",\"type\":\"bytes\"}]}";
    (void)state;

#ifdef IS_SOURCE_DIR
    if (!dir)
        dir = IS_SOURCE_DIR;
#endif
    snprintf(path, sizeof(path), "%s/schemas/image_record.avsc", dir ? dir : ".");
    text = slurp(path, &len);
    if (!text)
        fail_msg("cannot read %s (run from the repository root or set IMGSINK_SOURCE_DIR)", path);

    assert_int_equal(avro_schema_from_json_length(text, len, &a), 0);
    assert_int_equal(avro_schema_from_json_length(is_envelope_schema_json(),
                                                  strlen(is_envelope_schema_json()), &b),
                     0);
    assert_true(avro_schema_equal(a, b));
    /* The comparison can fail: a different schema is not equal. */
    assert_int_equal(avro_schema_from_json_length(changed, strlen(changed), &c), 0);
    assert_false(avro_schema_equal(a, c));

    ja = json_loads(text, 0, NULL);
    jb = json_loads(is_envelope_schema_json(), 0, NULL);
    assert_non_null(ja);
    assert_non_null(jb);
    assert_true(json_equal(ja, jb));

    json_decref(ja);
    json_decref(jb);
    avro_schema_decref(a);
    avro_schema_decref(b);
    avro_schema_decref(c);
    free(text);
}

static void test_roundtrip_plain_inline(void **state)
{
    is_record_t in, *out;
    unsigned char *buf;
    size_t len;
    (void)state;

    sample(&in, 0);
    encode(&in, -1, &buf, &len);
    assert_true(buf[0] != 0);
    out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
    /* The record owns copies: wipe and free the input first. */
    memset(buf, 0xa5, len);
    free(buf);
    assert_same(&in, out);
    assert_int_equal(out->schema_id, -1);
    assert_string_equal(out->attr_values[1], "Café in Zürich ☕ 📷 日本");
    is_record_destroy(out);

    encode(&in, -1, &buf, &len);
    out = decode_ok(buf, len, IS_ENVELOPE_AVRO);
    assert_same(&in, out);
    is_record_destroy(out);
    free(buf);
}

static void test_roundtrip_confluent_ref(void **state)
{
    static const unsigned char hdr[] = {0x00, 0x00, 0x00, 0x01, 0x2c};
    is_record_t in, *out;
    unsigned char *buf;
    size_t len;
    (void)state;

    sample(&in, 1);
    encode(&in, 300, &buf, &len);
    assert_memory_equal(buf, hdr, sizeof(hdr));
    out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
    assert_same(&in, out);
    assert_int_equal(out->schema_id, 300);
    assert_string_equal(out->source, "api");
    is_record_destroy(out);
    out = decode_ok(buf, len, IS_ENVELOPE_CONFLUENT);
    assert_int_equal(out->schema_id, 300);
    is_record_destroy(out);
    free(buf);

    /* Largest id, inline payload. */
    sample(&in, 0);
    encode(&in, 0x7fffffff, &buf, &len);
    out = decode_ok(buf, len, IS_ENVELOPE_CONFLUENT);
    assert_int_equal(out->schema_id, 0x7fffffff);
    assert_same(&in, out);
    is_record_destroy(out);
    free(buf);
}

static void test_roundtrip_minimal(void **state)
{
    is_record_t in, *out;
    unsigned char *buf;
    size_t len;
    (void)state;

    sample(&in, 1);
    in.nattrs = 0;
    in.attr_keys = in.attr_values = NULL;
    in.ref.version_id = in.ref.sha256 = NULL;
    in.filename = "";
    in.uploaded_at_ms = 0;
    encode(&in, 0, &buf, &len);
    out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
    assert_same(&in, out);
    assert_null(out->ref.version_id);
    assert_null(out->ref.sha256);
    assert_int_equal(out->nattrs, 0);
    assert_int_equal(out->schema_id, 0);
    is_record_destroy(out);
    free(buf);
}

/* Every proper prefix of a valid message fails with a truncation message
 * and before avro-c allocates anything. */
static void test_truncated_everywhere(void **state)
{
    int ref, id;
    (void)state;

    for (ref = 0; ref < 2; ref++) {
        for (id = -1; id <= 7; id += 8) {
            is_record_t in;
            unsigned char *buf;
            size_t len, cut;

            sample(&in, ref);
            encode(&in, id, &buf, &len);
            for (cut = 0; cut < len; cut++) {
                /* A copy of exactly cut bytes, so ASan sees any over-read. */
                unsigned char *p = malloc(cut ? cut : 1);
                char err[512] = "";
                is_record_t *rec = (is_record_t *)1;

                assert_non_null(p);
                memcpy(p, buf, cut);
                assert_int_equal(
                    is_envelope_decode(p, cut, IS_ENVELOPE_AUTO, MAXREC, &rec, err, sizeof(err)),
                    -1);
                assert_null(rec);
                if (!strstr(err, "truncated") && !strstr(err, "exceeds remaining") &&
                    !strstr(err, "empty message"))
                    fail_msg("cut at %zu of %zu: unexpected error \"%s\"", cut, len, err);
                assert_int_equal(is_envelope_last_decode_peak(), 0);
                free(p);
            }
            free(buf);
        }
    }
}

static void test_huge_declared_length(void **state)
{
    struct bld b = {.n = 0};
    (void)state;

    /* payload bytes declared as 2^40 long, 3 bytes follow */
    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 0);
    put_long(&b, INT64_C(1) << 40);
    put_raw(&b, "abc", 3);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO,
                "payload: declared length 1099511627776 exceeds remaining 3", NULL);
    assert_int_equal(is_envelope_last_decode_peak(), 0);

    /* the first string, with the maximum positive long */
    b.n = 0;
    put_long(&b, INT64_MAX);
    put_raw(&b, "abc", 3);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO,
                "id: declared length 9223372036854775807 exceeds remaining 3", NULL);

    /* a map key */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 1);
    put_long(&b, INT64_C(1) << 33);
    put_raw(&b, "k", 1);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "attributes[0] key: declared length 8589934592", NULL);

    /* a map block count of 2^40 entries */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, INT64_C(1) << 40);
    put_str(&b, "k");
    put_str(&b, "v");
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "attributes: 1099511627776 more map entries",
                "exceed the limit of 4096");
    assert_int_equal(is_envelope_last_decode_peak(), 0);
}

static void test_wrong_magic(void **state)
{
    unsigned char m1[] = {0x01, 0, 0, 0, 1, 2};
    unsigned char mff[] = {0xff, 0, 0, 0, 1, 2};
    is_record_t in;
    unsigned char *buf;
    size_t len;
    char want[64];
    (void)state;

    expect_fail(m1, sizeof(m1), IS_ENVELOPE_CONFLUENT, "unknown magic byte 0x01", NULL);
    expect_fail(mff, sizeof(mff), IS_ENVELOPE_CONFLUENT, "unknown magic byte 0xff", NULL);

    /* a plain record is not accepted where Confluent is required */
    sample(&in, 0);
    encode(&in, -1, &buf, &len);
    snprintf(want, sizeof(want), "unknown magic byte 0x%02x", buf[0]);
    expect_fail(buf, len, IS_ENVELOPE_CONFLUENT, want, NULL);
    free(buf);

    /* and a Confluent record is not plain Avro */
    encode(&in, 5, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AVRO, "plain Avro: ", NULL);
    free(buf);

    /* a schema id above INT_MAX */
    {
        unsigned char big[] = {0x00, 0x80, 0, 0, 0, 2, 'x'};
        expect_fail(big, sizeof(big), IS_ENVELOPE_AUTO, "schema id 2147483648 out of range", NULL);
    }
}

static void test_empty_and_short(void **state)
{
    static const unsigned char z[] = {0x00, 0x00, 0x00};
    char err[128];
    is_record_t *rec = (is_record_t *)1;
    (void)state;

    expect_fail(z, 0, IS_ENVELOPE_AUTO, "empty message", NULL);
    expect_fail(z, 0, IS_ENVELOPE_CONFLUENT, "empty message", NULL);
    expect_fail(NULL, 0, IS_ENVELOPE_AVRO, "empty message", NULL);
    expect_fail(z, 3, IS_ENVELOPE_AUTO, "truncated header: 3 bytes, need 5", NULL);
    /* header only: the body is empty */
    expect_fail("\0\0\0\0\1", 5, IS_ENVELOPE_AUTO, "Confluent schema id 1: id: truncated", NULL);
    assert_int_equal(is_envelope_decode(NULL, 4, IS_ENVELOPE_AUTO, MAXREC, &rec, err, sizeof(err)),
                     -1);
    assert_null(rec);
    expect_fail(z, 3, (is_envelope_format_t)42, "unknown envelope format 42", NULL);
}

static void test_oversize(void **state)
{
    is_record_t in, *out;
    unsigned char *buf;
    size_t len;
    char want[96];
    (void)state;

    sample(&in, 0);
    encode(&in, -1, &buf, &len);
    snprintf(want, sizeof(want), "message is %zu bytes, exceeds the limit of %zu", len, len - 1);
    expect_fail_max(buf, len, IS_ENVELOPE_AUTO, len - 1, want, NULL);
    expect_fail_max(buf, len, IS_ENVELOPE_AUTO, 0, "exceeds the limit of 0", NULL);
    {
        char err[256];
        assert_int_equal(
            is_envelope_decode(buf, len, IS_ENVELOPE_AUTO, len, &out, err, sizeof(err)), 0);
        is_record_destroy(out);
    }
    free(buf);
}

static void test_trailing_bytes(void **state)
{
    is_record_t in;
    unsigned char *buf, *big;
    size_t len;
    (void)state;

    sample(&in, 1);
    encode(&in, 9, &buf, &len);
    big = malloc(len + 5);
    assert_non_null(big);
    memcpy(big, buf, len);
    memset(big + len, 0, 5);
    expect_fail(big, len + 1, IS_ENVELOPE_AUTO, "trailing 1 byte after the record", NULL);
    expect_fail(big, len + 5, IS_ENVELOPE_AUTO, "trailing 5 bytes after the record", NULL);
    free(big);
    free(buf);
}

static void test_negative_lengths(void **state)
{
    struct bld b = {.n = 0};
    is_record_t *out;
    (void)state;

    put_long(&b, -1); /* id length -1: a single 0x01 byte */
    put_raw(&b, "abc", 3);
    assert_int_equal(b.b[0], 0x01);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "id: negative length -1", NULL);

    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 0);
    put_long(&b, -3);
    put_raw(&b, "abc", 3);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "payload: negative length -3", NULL);

    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 1);
    put_long(&b, -9);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "attributes[0] key: negative length -9", NULL);

    /* A negative block count is legal Avro: count 2 then the block's
     * byte size. It decodes. */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, -2);
    put_long(&b, 8);
    put_str(&b, "k1");
    put_str(&b, "v1");
    put_str(&b, "k2");
    put_str(&b, "v2");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 0);
    put_str(&b, "\xff\xd8");
    out = decode_ok(b.b, b.n, IS_ENVELOPE_AUTO);
    assert_int_equal(out->nattrs, 2);
    assert_string_equal(out->attr_keys[1], "k2");
    assert_string_equal(out->attr_values[1], "v2");
    is_record_destroy(out);

    /* ... but its byte size cannot be negative or beyond the input */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, -1);
    put_long(&b, -4);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "attributes: block size -4", NULL);
}

static void test_invalid_enum_index(void **state)
{
    struct bld b = {.n = 0};
    int64_t idx[] = {2, -1, 1000000};
    const char *want[] = {"source: invalid enum index 2", "source: invalid enum index -1",
                          "source: invalid enum index 1000000"};
    size_t i;
    (void)state;

    for (i = 0; i < 3; i++) {
        b.n = 0;
        put_str(&b, "x");
        put_str(&b, "acme");
        put_long(&b, idx[i]);
        put_long(&b, 1);
        put_str(&b, "image/jpeg");
        put_str(&b, "a.jpg");
        put_tail(&b);
        expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, want[i], "Source has 2 symbols");
    }
}

static void test_invalid_union_branch(void **state)
{
    struct bld b = {.n = 0};
    (void)state;

    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 2);
    put_str(&b, "\xff\xd8");
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "payload: invalid union branch 2", "2 branches");

    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, -1);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "payload: invalid union branch -1", NULL);

    /* inside the ObjectRef */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 1);
    put_str(&b, "bucket");
    put_str(&b, "key");
    put_long(&b, 3);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "payload.version_id: invalid union branch 3", NULL);
}

static void test_retention_range(void **state)
{
    int32_t bad[] = {0, -5, 3651, INT32_MAX, INT32_MIN};
    int32_t good[] = {1, 7, 3650};
    struct bld b = {.n = 0};
    is_record_t in, *out;
    unsigned char *buf;
    size_t len, i;
    char want[64];
    (void)state;

    sample(&in, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        in.retention_days = bad[i];
        encode(&in, -1, &buf, &len);
        snprintf(want, sizeof(want), "retention_days %d out of range 1..3650", (int)bad[i]);
        expect_fail(buf, len, IS_ENVELOPE_AUTO, want, NULL);
        free(buf);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        in.retention_days = good[i];
        encode(&in, -1, &buf, &len);
        out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
        assert_int_equal(out->retention_days, good[i]);
        is_record_destroy(out);
        free(buf);
    }

    /* a varint that does not fit an Avro int */
    put_head(&b, "x");
    put_long(&b, 0);
    put_long(&b, INT64_C(1) << 31);
    put_long(&b, 0);
    put_str(&b, "\xff\xd8");
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "retention_days: value 2147483648",
                "out of range for int");
}

static void test_id_and_tenant_rules(void **state)
{
    char id128[IS_KEYS_MAX_ID + 2];
    is_record_t in, *out;
    unsigned char *buf;
    size_t len;
    (void)state;

    memset(id128, 'a', sizeof(id128));
    id128[IS_KEYS_MAX_ID + 1] = '\0'; /* 129 */
    sample(&in, 0);

#define EXPECT_ID(field, value, needle)                                                            \
    do {                                                                                           \
        sample(&in, 0);                                                                            \
        in.field = (value);                                                                        \
        encode(&in, -1, &buf, &len);                                                               \
        expect_fail(buf, len, IS_ENVELOPE_AUTO, needle, NULL);                                     \
        free(buf);                                                                                 \
    } while (0)

    /* An empty id encodes as a leading 0x00, which looks like the
     * Confluent magic byte; AUTO must still report the real problem, as
     * plain Avro mode does, not a failed parse with a made-up schema id. */
    sample(&in, 0);
    in.id = "";
    encode(&in, -1, &buf, &len);
    assert_int_equal(buf[0], 0x00);
    expect_fail(buf, len, IS_ENVELOPE_AVRO, "plain Avro: id is empty", NULL);
    {
        char err[512] = "";
        is_record_t *rec = (is_record_t *)1;
        assert_int_equal(
            is_envelope_decode(buf, len, IS_ENVELOPE_AUTO, MAXREC, &rec, err, sizeof(err)), -1);
        assert_null(rec);
        if (strncmp(err, "plain Avro: id is empty", strlen("plain Avro: id is empty")))
            fail_msg("AUTO, empty id: error \"%s\" does not start with \"plain Avro: id is "
                     "empty\"",
                     err);
    }
    free(buf);
    /* The same record framed as Confluent decodes, empty id and all, up to
     * the id rule: AUTO names the rule for the Confluent parse. */
    encode(&in, 7, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "Confluent schema id 7: id is empty", NULL);
    free(buf);
    /* Neither parse gets far: both reasons are given. */
    {
        static const unsigned char both[] = {0x00, 0x00, 0x00, 0x00, 0x03, 0x01};
        expect_fail(both, sizeof(both), IS_ENVELOPE_AUTO,
                    "Confluent schema id 3: ", "; as plain Avro: ");
    }
    EXPECT_ID(id, "a/b", "id contains byte 0x2f at position 1");
    EXPECT_ID(id, "../../etc/passwd", "id contains byte 0x2f at position 2");
    EXPECT_ID(id, "..", "id starts with '.'");
    EXPECT_ID(id, ".hidden", "id starts with '.'");
    EXPECT_ID(id, "caf\xc3\xa9", "id contains byte 0xc3 at position 3");
    EXPECT_ID(id, id128, "id is 129 characters long, at most 128 allowed");
    EXPECT_ID(tenant, "acme corp", "tenant contains byte 0x20 at position 4");
    EXPECT_ID(tenant, "", "tenant is empty");

    sample(&in, 0);
    id128[IS_KEYS_MAX_ID] = '\0';
    in.id = id128;
    encode(&in, -1, &buf, &len);
    out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
    assert_string_equal(out->id, id128);
    is_record_destroy(out);
    free(buf);
#undef EXPECT_ID
}

static void test_strings_utf8_and_nul(void **state)
{
    struct {
        const char *bytes;
        size_t len;
        const char *needle;
    } cases[] = {
        {"a\xff", 2, "filename: string is not valid UTF-8"},
        {"\xc0\xaf", 2, "not valid UTF-8"},         /* overlong '/' */
        {"\xed\xa0\x80", 3, "not valid UTF-8"},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, "not valid UTF-8"}, /* > U+10FFFF */
        {"ab\xe2\x82", 4, "not valid UTF-8"},       /* cut sequence */
        {"a\0b", 3, "filename: string contains a NUL byte"},
    };
    struct bld b;
    size_t i;
    is_record_t *out;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        b.n = 0;
        put_str(&b, "x");
        put_str(&b, "acme");
        put_long(&b, 0);
        put_long(&b, 1);
        put_str(&b, "image/jpeg");
        put_long(&b, (int64_t)cases[i].len);
        put_raw(&b, cases[i].bytes, cases[i].len);
        put_tail(&b);
        expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, cases[i].needle, NULL);
    }

    /* the byte offset points at the bad byte in the message */
    b.n = 0;
    put_str(&b, "x");      /* bytes 0-1 */
    put_str(&b, "acme");   /* 2-6 */
    put_long(&b, 0);       /* 7 */
    put_long(&b, 1);       /* 8 */
    put_str(&b, "ab\xff"); /* 9-12, 0xff at 12 */
    put_str(&b, "a.jpg");
    put_tail(&b);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "content_type: string is not valid UTF-8 (at byte 12)",
                NULL);

    /* 4-byte sequences are fine */
    b.n = 0;
    put_head(&b, "x");
    put_long(&b, 1);
    put_str(&b, "\xf0\x9f\x93\xb7");
    put_str(&b, "\xf4\x8f\xbf\xbf");
    put_long(&b, 0);
    put_long(&b, 7);
    put_long(&b, 0);
    put_str(&b, "\xff\xd8");
    out = decode_ok(b.b, b.n, IS_ENVELOPE_AUTO);
    assert_string_equal(out->attr_keys[0], "📷");
    is_record_destroy(out);
}

static void test_varints(void **state)
{
    struct bld b = {.n = 0};
    is_record_t in;
    unsigned char *buf;
    size_t len;
    int i;
    (void)state;

    /* 11-byte varint */
    for (i = 0; i < 10; i++)
        put_byte(&b, 0x80);
    put_byte(&b, 0x00);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "id: varint at byte 0 is longer than 64 bits", NULL);

    /* 10th byte carrying more than bit 63 */
    b.n = 0;
    for (i = 0; i < 9; i++)
        put_byte(&b, 0xff);
    put_byte(&b, 0x02);
    expect_fail(b.b, b.n, IS_ENVELOPE_AUTO, "longer than 64 bits", NULL);

    /* uploaded_at at the extremes of long: valid Avro, out of range */
    sample(&in, 0);
    in.uploaded_at_ms = INT64_MAX;
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "uploaded_at 9223372036854775807 out of range", NULL);
    free(buf);
    in.uploaded_at_ms = INT64_MIN;
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "uploaded_at -9223372036854775808 out of range", NULL);
    free(buf);
    in.uploaded_at_ms = IS_ENVELOPE_UPLOADED_AT_MAX_MS + 1;
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "uploaded_at 253402300800000 out of range", NULL);
    free(buf);
}

static void test_payload_rules(void **state)
{
    is_record_t in;
    unsigned char *buf;
    size_t len;
    (void)state;

    sample(&in, 0);
    in.payload = NULL;
    in.payload_len = 0;
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "payload: inline bytes are empty", NULL);
    free(buf);

    sample(&in, 1);
    in.ref.bucket = "";
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "payload.bucket is empty", NULL);
    free(buf);

    sample(&in, 1);
    in.ref.key = "";
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "payload.key is empty", NULL);
    free(buf);

    sample(&in, 1);
    in.ref.size = 0;
    encode(&in, -1, &buf, &len);
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "payload.size 0 must be positive", NULL);
    free(buf);
}

/* Many attributes decode within the budget; one more than the limit is
 * rejected; a repeated key keeps its last value. */
static void test_attributes_limits(void **state)
{
    struct bld *b = calloc(1, sizeof(*b));
    is_record_t *out;
    size_t i, budget;
    char k[16];
    (void)state;

    assert_non_null(b);
    put_head(b, "x");
    put_long(b, IS_ENVELOPE_MAX_ITEMS);
    for (i = 0; i < IS_ENVELOPE_MAX_ITEMS; i++) {
        snprintf(k, sizeof(k), "%zx", i);
        put_str(b, k);
        put_str(b, "");
    }
    put_long(b, 0);
    put_long(b, 7);
    put_long(b, 0);
    put_str(b, "\xff\xd8");
    out = decode_ok(b->b, b->n, IS_ENVELOPE_AUTO);
    assert_int_equal(out->nattrs, IS_ENVELOPE_MAX_ITEMS);
    assert_string_equal(out->attr_keys[4095], "fff");
    is_record_destroy(out);
    /* The densest input this schema allows stays well inside the
     * budget: avro-c's failure paths must never run on valid input. */
    budget = 64 * 1024 + 2 * b->n + 256 * IS_ENVELOPE_MAX_ITEMS;
    assert_true(is_envelope_last_decode_peak() > 0);
    if (is_envelope_last_decode_peak() * 3 / 2 > budget)
        fail_msg("peak %zu too close to budget %zu", is_envelope_last_decode_peak(), budget);

    b->n = 0;
    put_head(b, "x");
    put_long(b, IS_ENVELOPE_MAX_ITEMS);
    for (i = 0; i < IS_ENVELOPE_MAX_ITEMS; i++) {
        snprintf(k, sizeof(k), "%zx", i);
        put_str(b, k);
        put_str(b, "");
    }
    put_long(b, 1);
    expect_fail(b->b, b->n, IS_ENVELOPE_AUTO, "attributes: 1 more map entries", "limit of 4096");

    b->n = 0;
    put_head(b, "x");
    put_long(b, 3);
    put_str(b, "k");
    put_str(b, "first");
    put_str(b, "j");
    put_str(b, "other");
    put_str(b, "k");
    put_str(b, "last");
    put_long(b, 0);
    put_long(b, 7);
    put_long(b, 0);
    put_str(b, "\xff\xd8");
    out = decode_ok(b->b, b->n, IS_ENVELOPE_AUTO);
    assert_int_equal(out->nattrs, 2);
    assert_string_equal(out->attr_keys[0], "k");
    assert_string_equal(out->attr_values[0], "last");
    is_record_destroy(out);
    free(b);
}

/* The budget accounting sees avro-c's allocations: a 1 MiB inline payload
 * shows up in the peak, and stays inside 64 KiB + 2 * len. */
static void test_memory_peak(void **state)
{
    is_record_t in, *out;
    unsigned char *img = malloc(1 << 20), *buf;
    size_t len, peak;
    (void)state;

    assert_non_null(img);
    memset(img, 0x5a, 1 << 20);
    sample(&in, 0);
    in.payload = img;
    in.payload_len = 1 << 20;
    encode(&in, 1, &buf, &len);
    out = decode_ok(buf, len, IS_ENVELOPE_AUTO);
    peak = is_envelope_last_decode_peak();
    assert_true(peak >= (size_t)1 << 20);
    assert_true(peak <= 64 * 1024 + 2 * len);
    assert_memory_equal(out->payload, img, 1 << 20);
    is_record_destroy(out);
    free(buf);
    free(img);
}

static void test_encode_errors(void **state)
{
    is_record_t in;
    void *buf = (void *)1;
    size_t len = 99;
    char err[256];
    (void)state;

    sample(&in, 0);
    in.id = NULL;
    assert_int_equal(is_envelope_encode(&in, -1, &buf, &len, err, sizeof(err)), -1);
    assert_null(buf);
    assert_non_null(strstr(err, "must not be NULL"));

    sample(&in, 0);
    in.source = "ftp";
    assert_int_equal(is_envelope_encode(&in, -1, &buf, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "source must be \"stream\" or \"api\""));

    sample(&in, 0);
    in.attr_values = NULL;
    assert_int_equal(is_envelope_encode(&in, -1, &buf, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "attr_keys or attr_values is NULL"));

    sample(&in, 1);
    in.ref.key = NULL;
    assert_int_equal(is_envelope_encode(&in, -1, &buf, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ref.bucket and ref.key"));

    is_record_destroy(NULL);
}

static void test_requires_init(void **state)
{
    is_record_t in;
    unsigned char *buf;
    size_t len;
    char err[256];
    (void)state;

    sample(&in, 0);
    encode(&in, -1, &buf, &len);
    is_envelope_global_term();
    expect_fail(buf, len, IS_ENVELOPE_AUTO, "is_envelope_global_init() was not called", NULL);
    assert_int_equal(is_envelope_global_init(err, sizeof(err)), 0);
    is_record_destroy(decode_ok(buf, len, IS_ENVELOPE_AUTO));
    free(buf);
}

/* Several threads decode at once, good and bad messages interleaved. */
struct thread_arg {
    const unsigned char *good, *bad;
    size_t good_len, bad_len;
    int failures;
};

static void *decode_thread(void *p)
{
    struct thread_arg *a = p;
    int i;

    for (i = 0; i < 400; i++) {
        char err[256];
        is_record_t *rec;
        if (is_envelope_decode(a->good, a->good_len, IS_ENVELOPE_AUTO, MAXREC, &rec, err,
                               sizeof(err)) ||
            strcmp(rec->attr_keys[1], "caption"))
            a->failures++;
        is_record_destroy(rec);
        if (is_envelope_decode(a->bad, a->bad_len, IS_ENVELOPE_AUTO, MAXREC, &rec, err,
                               sizeof(err)) != -1 ||
            !strstr(err, "exceeds remaining"))
            a->failures++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[8];
    struct thread_arg args[8];
    is_record_t in;
    unsigned char *good, *bad;
    size_t good_len, bad_len;
    int i;
    (void)state;

    sample(&in, 1);
    encode(&in, 77, &good, &good_len);
    sample(&in, 0);
    encode(&in, -1, &bad, &bad_len);
    bad_len -= 3; /* payload bytes cut short */
    for (i = 0; i < 8; i++) {
        args[i] = (struct thread_arg){good, bad, good_len, bad_len, 0};
        assert_int_equal(pthread_create(&th[i], NULL, decode_thread, &args[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    free(good);
    free(bad);
}

static int setup(void **state)
{
    char err[256];
    (void)state;
    if (is_envelope_global_init(err, sizeof(err))) {
        fprintf(stderr, "is_envelope_global_init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    is_envelope_global_term();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_matches_avsc),
        cmocka_unit_test(test_roundtrip_plain_inline),
        cmocka_unit_test(test_roundtrip_confluent_ref),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_huge_declared_length),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_empty_and_short),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_negative_lengths),
        cmocka_unit_test(test_invalid_enum_index),
        cmocka_unit_test(test_invalid_union_branch),
        cmocka_unit_test(test_retention_range),
        cmocka_unit_test(test_id_and_tenant_rules),
        cmocka_unit_test(test_strings_utf8_and_nul),
        cmocka_unit_test(test_varints),
        cmocka_unit_test(test_payload_rules),
        cmocka_unit_test(test_attributes_limits),
        cmocka_unit_test(test_memory_peak),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_requires_init),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
