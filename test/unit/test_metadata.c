/*
 * test_metadata.c - metadata.json of a real pipeline run validates against
 * schemas/metadata.schema.json, carries what analysts query (camera,
 * perceptual hash, mean colour, renditions) and no location.
 *
 * The validator below covers the JSON Schema keywords the schema uses:
 * type (one or a list), const, enum, required, properties,
 * additionalProperties (false or a schema), items, minItems, minimum,
 * maximum and pattern (POSIX extended regex). An unknown keyword fails the
 * test, so the schema cannot drift beyond what is checked.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <openssl/evp.h>

#include "metadata.h"
#include "pipeline_util.h"
#include "s3.h"

static int type_is(const json_t *v, const char *t)
{
    if (!strcmp(t, "object"))
        return json_is_object(v);
    if (!strcmp(t, "array"))
        return json_is_array(v);
    if (!strcmp(t, "string"))
        return json_is_string(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v);
    if (!strcmp(t, "number"))
        return json_is_number(v);
    if (!strcmp(t, "null"))
        return json_is_null(v);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(v);
    fail_msg("schema: unknown type %s", t);
    return 0;
}

/* Validates v against schema s; path names the place for messages. */
static void validate(const json_t *v, const json_t *s, const char *path)
{
    const char *kw;
    json_t *arg;

    json_object_foreach((json_t *)s, kw, arg)
    {
        char sub[512];
        if (!strcmp(kw, "$schema") || !strcmp(kw, "$id") || !strcmp(kw, "title") ||
            !strcmp(kw, "description")) {
            continue;
        } else if (!strcmp(kw, "type")) {
            int ok = 0;
            if (json_is_string(arg))
                ok = type_is(v, json_string_value(arg));
            for (size_t i = 0; json_is_array(arg) && i < json_array_size(arg); i++)
                ok |= type_is(v, json_string_value(json_array_get(arg, i)));
            if (!ok)
                fail_msg("%s: wrong type", path);
        } else if (!strcmp(kw, "const")) {
            if (!json_equal((json_t *)v, arg))
                fail_msg("%s: not the constant", path);
        } else if (!strcmp(kw, "enum")) {
            int ok = 0;
            for (size_t i = 0; i < json_array_size(arg); i++)
                ok |= json_equal((json_t *)v, json_array_get(arg, i));
            if (!ok)
                fail_msg("%s: %s not in enum", path, json_string_value(v));
        } else if (!strcmp(kw, "required")) {
            for (size_t i = 0; i < json_array_size(arg); i++)
                if (!json_object_get(v, json_string_value(json_array_get(arg, i))))
                    fail_msg("%s: missing %s", path, json_string_value(json_array_get(arg, i)));
        } else if (!strcmp(kw, "properties")) {
            const char *k;
            json_t *ps;
            json_object_foreach(arg, k, ps)
            {
                json_t *pv = json_object_get(v, k);
                snprintf(sub, sizeof(sub), "%s.%s", path, k);
                if (pv)
                    validate(pv, ps, sub);
            }
        } else if (!strcmp(kw, "additionalProperties")) {
            const char *k;
            json_t *pv, *props = json_object_get(s, "properties");
            json_object_foreach((json_t *)v, k, pv)
            {
                if (props && json_object_get(props, k))
                    continue;
                snprintf(sub, sizeof(sub), "%s.%s", path, k);
                if (json_is_false(arg))
                    fail_msg("%s: not in the schema", sub);
                validate(pv, arg, sub);
            }
        } else if (!strcmp(kw, "items")) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
                validate(json_array_get(v, i), arg, sub);
            }
        } else if (!strcmp(kw, "minItems")) {
            if ((json_int_t)json_array_size(v) < json_integer_value(arg))
                fail_msg("%s: too few items", path);
        } else if (!strcmp(kw, "minimum")) {
            if (json_number_value(v) < json_number_value(arg))
                fail_msg("%s: below minimum", path);
        } else if (!strcmp(kw, "maximum")) {
            if (json_number_value(v) > json_number_value(arg))
                fail_msg("%s: above maximum", path);
        } else if (!strcmp(kw, "pattern")) {
            regex_t re;
            assert_int_equal(regcomp(&re, json_string_value(arg), REG_EXTENDED | REG_NOSUB), 0);
            if (json_is_string(v) && regexec(&re, json_string_value(v), 0, NULL, 0))
                fail_msg("%s: '%s' does not match %s", path, json_string_value(v),
                         json_string_value(arg));
            regfree(&re);
        } else {
            fail_msg("schema: keyword %s at %s is not checked by this test", kw, path);
        }
    }
}

/* metadata.json for one input through the default renditions. shas:
 * the renditions' digests as the worker passes them, or NULL. */
static json_t *document_with(const char *file, char **text_out, is_result_t *res,
                             const char *const *shas)
{
    is_config_t *cfg = tu_config("large=300x300/webp/80,thumb=64x64/jpeg/80/cover", NULL);
    is_pipeline_conf_t conf;
    char err[512], *keys[2] = {"processed/acme/2024/02/29/img-1/large.webp",
                               "processed/acme/2024/02/29/img-1/thumb.jpg"};
    char *ak[] = {"camera", "note"}, *av[] = {"studio-4", "caf\xc3\xa9"};
    is_record_t rec = {.id = "img-1",
                       .tenant = "acme",
                       .source = "stream",
                       .content_type = "image/jpeg",
                       .filename = "IMG_0001.JPG",
                       .uploaded_at_ms = INT64_C(1709251199999),
                       .retention_days = 7,
                       .nattrs = 2,
                       .attr_keys = ak,
                       .attr_values = av};
    is_metadata_src_t src = {"images", 3, 42,
                             "0123456789abcdef0123456789abcdef"
                             "0123456789abcdef0123456789abcdef",
                             shas};
    size_t len;
    void *buf = tu_read(tu_input(file), &len);

    assert_non_null(buf);
    is_pipeline_conf_init(&conf, cfg);
    assert_int_equal(is_pipeline_run(&conf, buf, len, res, err, sizeof(err)), IS_PROC_OK);
    char *text = is_metadata_json(&rec, res, keys, &src);
    assert_non_null(text);
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    assert_non_null(doc);
    *text_out = text;
    g_free(buf);
    is_config_destroy(cfg);
    return doc;
}

static json_t *document(const char *file, char **text_out, is_result_t *res)
{
    return document_with(file, text_out, res, NULL);
}

static void validates_against_schema(void **state)
{
    json_error_t je;
    json_t *schema = json_load_file("schemas/metadata.schema.json", 0, &je);
    is_result_t res;
    char *text;
    (void)state;
    assert_non_null(schema);
    const char *files[] = {"jpeg_gps_camera.jpg", "png_grey_alpha.png", "gif_anim_12.gif",
                           "jpeg_orientation_6.jpg"};
    for (size_t i = 0; i < 4; i++) {
        json_t *doc = document(files[i], &text, &res);
        if (i == 0) {
            char *one =
                json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
            /* printf: cmocka's print_message truncates long lines. */
            printf("# metadata.json of %s: %s\n", files[i], one);
            fflush(stdout);
            free(one);
        }
        validate(doc, schema, files[i]);
        json_decref(doc);
        free(text);
        is_result_clear(&res);
    }
    json_decref(schema);
}

/* What analysts query, and no location anywhere in the document. */
static void analyst_fields_no_location(void **state)
{
    is_result_t res;
    char *text, hex[17];
    json_t *doc = document("jpeg_gps_camera.jpg", &text, &res);
    json_t *in = json_object_get(doc, "input");
    (void)state;
    assert_string_equal(json_string_value(json_object_get(in, "camera_make")), "Canon");
    assert_string_equal(json_string_value(json_object_get(in, "camera_model")), "Canon EOS 5D");
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)res.phash);
    assert_string_equal(json_string_value(json_object_get(in, "phash")), hex);
    assert_int_equal(strlen(json_string_value(json_object_get(in, "mean_color"))), 7);
    json_t *r = json_array_get(json_object_get(doc, "renditions"), 1);
    assert_string_equal(json_string_value(json_object_get(r, "key")),
                        "processed/acme/2024/02/29/img-1/thumb.jpg");
    assert_int_equal(json_integer_value(json_object_get(r, "width")), 64);
    assert_int_equal(json_integer_value(json_object_get(r, "height")), 64);
    const char *banned[] = {"GPS", "gps", "atitude", "ongitude", "Paris", "48.8", "2.29"};
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
        if (strstr(text, banned[i]))
            fail_msg("metadata.json mentions '%s'", banned[i]);
    json_decref(doc);
    free(text);
    is_result_clear(&res);
}

/* The worker hashes each rendition once, for its PUT (is_s3_digest), and
 * metadata.json records that digest: the document is byte for byte the one
 * hashed on its own, the hex and base64 forms name the same 32 bytes, and
 * a digest given is the one written (not recomputed). */
static void rendition_digests_reused(void **state)
{
    is_result_t res;
    char *text, *given;
    json_t *doc = document("jpeg_orientation_6.jpg", &text, &res);
    is_s3_digest_t d[2];
    const char *shas[2];
    (void)state;
    assert_int_equal(res.nout, 2);
    for (int i = 0; i < 2; i++) {
        unsigned char raw[48], fromhex[32];
        assert_int_equal(is_s3_digest(res.out[i].buf, res.out[i].len, &d[i]), 0);
        shas[i] = d[i].hex;
        assert_int_equal(EVP_DecodeBlock(raw, (const unsigned char *)d[i].b64, 44), 33);
        for (int k = 0; k < 32; k++)
            assert_int_equal(sscanf(d[i].hex + 2 * k, "%2hhx", &fromhex[k]), 1);
        assert_memory_equal(raw, fromhex, 32);
        json_t *r = json_array_get(json_object_get(doc, "renditions"), (size_t)i);
        assert_string_equal(json_string_value(json_object_get(r, "sha256")), d[i].hex);
    }
    json_decref(doc);
    is_result_clear(&res);
    json_decref(document_with("jpeg_orientation_6.jpg", &given, &res, shas));
    assert_string_equal(given, text);
    free(given);
    is_result_clear(&res);

    const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
    shas[1] = zero;
    doc = document_with("jpeg_orientation_6.jpg", &given, &res, shas);
    json_t *r = json_array_get(json_object_get(doc, "renditions"), 1);
    assert_string_equal(json_string_value(json_object_get(r, "sha256")), zero);
    json_decref(doc);
    free(given);
    free(text);
    is_result_clear(&res);
}

static int setup(void **state)
{
    (void)state;
    return tu_global_setup();
}

static int teardown(void **state)
{
    (void)state;
    is_pipeline_global_term();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(validates_against_schema),
        cmocka_unit_test(analyst_fields_no_location),
        cmocka_unit_test(rendition_digests_reused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
