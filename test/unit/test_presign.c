/*
 * test_presign.c - presigned URLs against the Amazon S3 API Reference,
 * "Authenticating Requests: Using Query Parameters (AWS Signature Version
 * 4)", example "GET object" (examplebucket/test.txt, 20130524T000000Z,
 * 86400 s): the signature below is copied from that page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presign.h"

static const is_presign_t aws = {
    "https://s3.amazonaws.com",
    "us-east-1",
    "examplebucket",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    NULL,
    0,
};

static void test_aws_example(void **state)
{
    (void)state;
    char err[256];
    char *url =
        is_presign_url(&aws, "GET", "test.txt", 86400, 1369353600, NULL, 0, err, sizeof(err));
    assert_non_null(url);
    assert_string_equal(
        url, "https://examplebucket.s3.amazonaws.com/test.txt"
             "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    assert_null(strstr(url, "wJalr"));
    char *red = is_presign_redact(url);
    assert_non_null(red);
    assert_null(strstr(red, "aeeed9bb"));
    assert_null(strstr(red, "AKIAIOSFODNN7EXAMPLE"));
    assert_non_null(strstr(red, "X-Amz-Signature=REDACTED"));
    free(red);
    free(url);
}

/* Signed headers are listed sorted with host, and change the signature. */
static void test_signed_headers(void **state)
{
    (void)state;
    char err[256];
    is_presign_t p = aws;
    p.endpoint = "http://127.0.0.1:9000";
    p.path_style = 1;
    is_sigv4_header_t h1[] = {{"content-length", "10"}, {"content-type", "image/png"}};
    is_sigv4_header_t h2[] = {{"content-length", "11"}, {"content-type", "image/png"}};
    char *a = is_presign_url(&p, "PUT", "raw/t/x y", 60, 1369353600, h1, 2, err, sizeof(err));
    char *b = is_presign_url(&p, "PUT", "raw/t/x y", 60, 1369353600, h2, 2, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(strstr(a, "http://127.0.0.1:9000/examplebucket/raw/t/x%20y?"));
    assert_non_null(strstr(a, "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&"));
    assert_string_not_equal(strstr(a, "X-Amz-Signature="), strstr(b, "X-Amz-Signature="));
    free(a);
    free(b);
    assert_null(is_presign_url(&p, "PUT", "k", 0, 1369353600, NULL, 0, err, sizeof(err)));
    assert_null(is_presign_url(&p, "PUT", "k", 604801, 1369353600, NULL, 0, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_example),
        cmocka_unit_test(test_signed_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
