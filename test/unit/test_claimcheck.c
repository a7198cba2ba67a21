/*
 * test_claimcheck.c - the claim-check allow-list (claimcheck.allowed) with
 * hostile references, and the checks of a fetched object against its ref.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "claimcheck.h"
#include "sigv4.h"

#define SPEC "raw/uploads/{tenant}/, shared.bucket/public/"

static is_claimcheck_t *make(const char *spec)
{
    char err[256] = "";
    is_claimcheck_t *cc = is_claimcheck_new(spec, err, sizeof(err));
    if (!cc)
        fail_msg("'%s' refused: %s", spec, err);
    return cc;
}

static void allowed(const is_claimcheck_t *cc, const char *tenant, const char *bucket,
                    const char *key)
{
    char err[512] = "";
    if (is_claimcheck_allowed(cc, tenant, bucket, key, err, sizeof(err)))
        fail_msg("tenant %s, %s/%s refused: %s", tenant, bucket, key, err);
}

static void refused(const is_claimcheck_t *cc, const char *tenant, const char *bucket,
                    const char *key, const char *words)
{
    char err[512] = "";
    if (!is_claimcheck_allowed(cc, tenant, bucket, key, err, sizeof(err)))
        fail_msg("tenant %s, %s/%s allowed", tenant ? tenant : "(null)", bucket, key);
    if (!strstr(err, words))
        fail_msg("tenant %s, %s/%s: '%s' lacks '%s'", tenant ? tenant : "(null)", bucket, key, err,
                 words);
}

static void own_prefix_allowed(void **state)
{
    (void)state;
    is_claimcheck_t *cc = make(SPEC);
    assert_int_equal(is_claimcheck_count(cc), 2);
    allowed(cc, "acme", "raw", "uploads/acme/a.jpg");
    allowed(cc, "acme", "raw", "uploads/acme/2026/01/01/a b+c.jpg");
    allowed(cc, "acme", "raw", "uploads/acme/.hidden.jpg");
    allowed(cc, "acme", "raw", "uploads/acme/caf\xc3\xa9.jpg");
    allowed(cc, "other", "shared.bucket", "public/x.jpg");
    allowed(cc, "acme", "shared.bucket", "public/x.jpg");
    is_claimcheck_destroy(cc);
}

static void other_tenant_or_bucket_refused(void **state)
{
    (void)state;
    is_claimcheck_t *cc = make(SPEC);
    const char *w = "is not under an allowed prefix for tenant acme";
    refused(cc, "acme", "raw", "uploads/other/a.jpg", w);
    /* A tenant that is a prefix of another's name does not reach it. */
    refused(cc, "acme", "raw", "uploads/acme-corp/a.jpg", w);
    refused(cc, "acme", "raw", "uploads/acmecorp/a.jpg", w);
    refused(cc, "acme", "raw", "uploads/acme", w); /* the segment itself is not under it */
    refused(cc, "acme", "raw", "uploads/a.jpg", w);
    refused(cc, "acme", "raw", "other/acme/a.jpg", w);
    refused(cc, "acme", "raw2", "uploads/acme/a.jpg", w);
    refused(cc, "acme", "ra", "uploads/acme/a.jpg", w);
    refused(cc, "acme", "RAW", "uploads/acme/a.jpg", w);
    refused(cc, "acme", "processed", "uploads/acme/a.jpg", w);
    refused(cc, "acme", "shared.bucket", "publicity/x.jpg", w);
    /* Case is not folded: keys are bytes. */
    refused(cc, "acme", "raw", "Uploads/acme/a.jpg", w);
    refused(cc, "ACME", "raw", "uploads/acme/a.jpg", "tenant ACME");
    is_claimcheck_destroy(cc);
}

static void traversal_refused(void **state)
{
    (void)state;
    is_claimcheck_t *cc = make(SPEC);
    refused(cc, "acme", "raw", "uploads/acme/../other/a.jpg", "'..' segment");
    refused(cc, "acme", "raw", "uploads/acme/..", "'..' segment");
    refused(cc, "acme", "raw", "uploads/acme/./a.jpg", "'.' or '..' segment");
    refused(cc, "acme", "raw", "uploads/acme//a.jpg", "'//'");
    refused(cc, "acme", "raw", "/uploads/acme/a.jpg", "starts with '/'");
    refused(cc, "acme", "raw", "uploads/acme/..\\other\\a.jpg", "backslash");
    refused(cc, "acme", "raw", "uploads/acme\\..\\other/a.jpg", "backslash");
    refused(cc, "acme", "raw", "uploads/acme/a\x01.jpg", "control character");
    refused(cc, "acme", "raw", "uploads/acme/a\n.jpg", "control character");
    refused(cc, "acme", "raw", "uploads/acme/a\x7f.jpg", "control character");
    /* Percent-encoding is refused, never decoded: %2F would be a '/' to a
     * layer that decodes, %2E%2E a "..". */
    refused(cc, "acme", "raw", "uploads/acme/%2E%2E/other/a.jpg", "'%'");
    refused(cc, "acme", "raw", "uploads%2Facme/a.jpg", "'%'");
    refused(cc, "acme", "raw", "uploads/acme%2F..%2Fother/a.jpg", "'%'");
    refused(cc, "acme", "raw", "uploads/acme/100%.jpg", "'%'");
    /* Over S3's 1024-byte limit. */
    char longkey[1100];
    memset(longkey, 'a', sizeof(longkey) - 1);
    memcpy(longkey, "uploads/acme/", 13);
    longkey[sizeof(longkey) - 1] = '\0';
    refused(cc, "acme", "raw", longkey, "at most 1024");
    refused(cc, "acme", "raw", "", "empty bucket or key");
    refused(cc, "acme", "", "uploads/acme/a.jpg", "empty bucket or key");
    is_claimcheck_destroy(cc);
}

static void hostile_tenant_refused(void **state)
{
    (void)state;
    is_claimcheck_t *cc = make(SPEC);
    /* The tenant fills {tenant}: it must stay one segment. */
    refused(cc, "", "raw", "uploads//a.jpg", "tenant is empty");
    refused(cc, NULL, "raw", "uploads/acme/a.jpg", "tenant is empty");
    refused(cc, "acme/../other", "raw", "uploads/acme/../other/a.jpg", "tenant contains byte 0x2f");
    refused(cc, "other/x", "raw", "uploads/other/x/a.jpg", "tenant contains byte 0x2f");
    refused(cc, "..", "raw", "uploads/../a.jpg", "tenant starts with '.'");
    refused(cc, ".", "raw", "uploads/./a.jpg", "tenant starts with '.'");
    refused(cc, "ac%2Fme", "raw", "uploads/ac%2Fme/a.jpg", "tenant contains byte 0x25");
    refused(cc, "{tenant}", "raw", "uploads/{tenant}/a.jpg", "tenant contains byte 0x7b");
    refused(cc, "ac me", "raw", "uploads/ac me/a.jpg", "tenant contains byte 0x20");
    is_claimcheck_destroy(cc);
}

static void empty_list_refuses_all(void **state)
{
    (void)state;
    const char *specs[] = {"", "  ", NULL};
    for (size_t i = 0; i < 3; i++) {
        is_claimcheck_t *cc = make(specs[i]);
        assert_int_equal(is_claimcheck_count(cc), 0);
        refused(cc, "acme", "raw", "uploads/acme/a.jpg", "claimcheck.allowed is empty");
        is_claimcheck_destroy(cc);
    }
    refused(NULL, "acme", "raw", "uploads/acme/a.jpg", "claimcheck.allowed is empty");
    is_claimcheck_destroy(NULL);
}

static void whole_bucket_entry(void **state)
{
    (void)state;
    is_claimcheck_t *cc = make("tenant-files/{tenant}/,everything/");
    allowed(cc, "acme", "tenant-files", "acme/a.jpg");
    refused(cc, "acme", "tenant-files", "other/a.jpg", "not under");
    allowed(cc, "acme", "everything", "any/key.jpg");
    /* Even a whole bucket refuses keys that stores read differently. */
    refused(cc, "acme", "everything", "a/../b.jpg", "'..'");
    is_claimcheck_destroy(cc);
}

static void bad_spec(const char *spec, const char *words)
{
    char err[256] = "";
    is_claimcheck_t *cc = is_claimcheck_new(spec, err, sizeof(err));
    if (cc) {
        is_claimcheck_destroy(cc);
        fail_msg("'%s' accepted", spec);
    }
    if (!strstr(err, words))
        fail_msg("'%s': '%s' lacks '%s'", spec, err, words);
}

static void config_value_validated(void **state)
{
    (void)state;
    bad_spec("raw", "expected BUCKET/PREFIX");
    bad_spec("raw/uploads/,", "empty entry");
    bad_spec("raw/a/,,raw/b/", "empty entry");
    bad_spec("Raw/uploads/", "not an S3 bucket name");
    bad_spec("r/uploads/", "not an S3 bucket name");
    bad_spec("a..b/uploads/", "not an S3 bucket name");
    bad_spec("raw_1/uploads/", "not an S3 bucket name");
    bad_spec("raw/uploads/{tenant}", "{tenant} that is not a whole segment");
    bad_spec("raw/uploads/x{tenant}/", "{tenant} that is not a whole segment");
    bad_spec("raw/uploads/{tenant}x/", "{tenant} that is not a whole segment");
    bad_spec("raw/uploads/{user}/", "'{' or '}' that is not {tenant}");
    bad_spec("raw/../uploads/", "'..'");
    bad_spec("raw//uploads/", "starts with '/'");
    bad_spec("raw/uploads//", "'//'");
    bad_spec("raw/uploads%2F/", "'%'");
    bad_spec("raw/up\\loads/", "backslash");
    is_claimcheck_t *cc = make(" raw/uploads/{tenant}/ ,\tother/{tenant}/x/{tenant}/ ");
    assert_int_equal(is_claimcheck_count(cc), 2);
    allowed(cc, "acme", "raw", "uploads/acme/a");
    allowed(cc, "acme", "other", "acme/x/acme/a");
    refused(cc, "acme", "other", "acme/x/other/a", "not under");
    is_claimcheck_destroy(cc);
}

static void ref_fields_checked(void **state)
{
    (void)state;
    char err[256];
    is_objref_t ref = {"raw", "uploads/acme/a.jpg", NULL, NULL, 100};
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), 0);
    ref.size = 1001;
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exceeds limits.max.input.bytes"));
    ref.size = 100;
    ref.sha256 = "abc";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not 64 hex digits"));
    ref.sha256 = "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), -1);
    ref.sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), 0);
    ref.version_id = "";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), -1);
    ref.version_id = "a b";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), -1);
    ref.version_id = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo";
    assert_int_equal(is_claimcheck_check_ref(&ref, 1000, err, sizeof(err)), 0);
}

static void fetched_bytes_verified(void **state)
{
    (void)state;
    char err[256], hex[65];
    const char body[] = "hello";
    is_objref_t ref = {"raw", "k", NULL, NULL, 5};
    assert_int_equal(is_sha256_hex(body, 5, hex), 0);

    assert_int_equal(is_claimcheck_verify(&ref, body, 5, err, sizeof(err)), 0);
    ref.size = 6;
    assert_int_equal(is_claimcheck_verify(&ref, body, 5, err, sizeof(err)), -1);
    assert_string_equal(err, "size mismatch: record says 6, object has 5");
    ref.size = 5;
    ref.sha256 = hex;
    assert_int_equal(is_claimcheck_verify(&ref, body, 5, err, sizeof(err)), 0);
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    ref.sha256 = upper;
    assert_int_equal(is_claimcheck_verify(&ref, body, 5, err, sizeof(err)), 0);
    ref.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(is_claimcheck_verify(&ref, body, 5, err, sizeof(err)), -1);
    char want[256];
    snprintf(want, sizeof(want), "sha256 mismatch: record says %s, object has %s", ref.sha256, hex);
    assert_string_equal(err, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(own_prefix_allowed),     cmocka_unit_test(other_tenant_or_bucket_refused),
        cmocka_unit_test(traversal_refused),      cmocka_unit_test(hostile_tenant_refused),
        cmocka_unit_test(empty_list_refuses_all), cmocka_unit_test(whole_bucket_entry),
        cmocka_unit_test(config_value_validated), cmocka_unit_test(ref_fields_checked),
        cmocka_unit_test(fetched_bytes_verified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
