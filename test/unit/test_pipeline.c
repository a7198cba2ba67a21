/*
 * test_pipeline.c - hostile and odd inputs through is_pipeline_run: each is
 * either processed correctly (renditions decodable, within their boxes,
 * upright, 8-bit, no metadata) or fails with its specific reason. Never a
 * crash; peak RSS bounded; no libvips object or pixel buffer leaked.
 *
 * Prints a table "input -> outcome: reason" and the peak RSS as TAP
 * comments. Inputs come from test/hostile/make_inputs.py (pipeline_util.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline_util.h"

/* All four formats, every fit, an avif effort. */
#define RENDITIONS                                                                                 \
    "large=800x800/webp/75/effort=2,medium=400x400/jpeg/80/cover,"                                 \
    "thumb=96x96/png/80/attention,tiny=64x64/avif/50/effort=0"

typedef enum { OK, FAIL } expect_t;

typedef struct hcase {
    const char *file;
    expect_t expect;
    const char *reason; /* FAIL: substring of the reason; OK: NULL */
    int w, h;           /* OK: expected upright size of "large" (0: not checked) */
} hcase_t;

static hcase_t cases[] = {
    {"jpeg_baseline.jpg", OK, NULL, 480, 320},
    {"jpeg_progressive.jpg", OK, NULL, 480, 320},
    {"jpeg_grey.jpg", OK, NULL, 480, 320},
    {"jpeg_cmyk.jpg", OK, NULL, 480, 320},
    {"jpeg_srgb_icc.jpg", OK, NULL, 480, 320},
    {"jpeg_gps_camera.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_1.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_2.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_3.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_4.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_5.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_6.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_7.jpg", OK, NULL, 480, 320},
    {"jpeg_orientation_8.jpg", OK, NULL, 480, 320},
    {"png_rgb.png", OK, NULL, 480, 320},
    {"png_16bit.png", OK, NULL, 480, 320},
    {"png_palette.png", OK, NULL, 480, 320},
    {"png_grey_alpha.png", OK, NULL, 480, 320},
    {"png_rgba.png", OK, NULL, 480, 320},
    {"png_1x1.png", OK, NULL, 1, 1},
    {"png_noise.png", OK, NULL, 480, 320},
    {"png_panorama.png", OK, NULL, 800, 2},
    {"png_named_jpg.jpg", OK, NULL, 480, 320},
    {"png_large_9000x9000.png", OK, NULL, 800, 800},
    {"webp_lossy.webp", OK, NULL, 480, 320},
    {"webp_anim_12.webp", OK, NULL, 64, 48},
    {"gif_static.gif", OK, NULL, 480, 320},
    {"gif_anim_12.gif", OK, NULL, 64, 48},
    {"tiff_rgb.tif", OK, NULL, 480, 320},
    {"avif.avif", OK, NULL, 480, 320},
    {"truncated_jpeg.jpg", FAIL, "cannot decode image", 0, 0},
    {"truncated_png.png", FAIL, "cannot decode image", 0, 0},
    {"png_bad_crc.png", FAIL, "cannot decode image", 0, 0},
    {"jpeg_header_only.jpg", FAIL, "cannot", 0, 0},
    {"png_header_100000x100000.png", FAIL, "limits.max.pixels", 0, 0},
    {"jpeg_header_65000x65000.jpg", FAIL, "limits.max.pixels", 0, 0},
    {"tiff_header_100000x100000.tif", FAIL, "limits.max.pixels", 0, 0},
    {"png_bomb_30000x30000.png", FAIL, "limits.max.pixels", 0, 0},
    {"webp_bomb_16000x16000.webp", FAIL, "limits.max.pixels", 0, 0},
    {"gif_3000_frames.gif", FAIL, "3000 frames, limits.max.frames is 1000", 0, 0},
    {"svg.svg", FAIL, "not an image in an allowed format (read by VipsForeignLoadSvg", 0, 0},
    {"pdf.pdf", FAIL, "not an image in an allowed format (read by VipsForeignLoadPdf", 0, 0},
    {"bmp_magick_only.bmp", FAIL,
     "not an image in an allowed format (read by VipsForeignLoadMagick", 0, 0},
    {"ppm_vips_only.ppm", FAIL, "not an image in an allowed format (read by VipsForeignLoadMagick",
     0, 0},
    {"fits_vips_only.fits", FAIL,
     "not an image in an allowed format (read by VipsForeignLoadMagick", 0, 0},
    {"empty.jpg", FAIL, "empty image payload", 0, 0},
    {"random_4k.bin", FAIL, "not an image in an allowed format (limits.formats)", 0, 0},
    {"html_named_jpg.jpg", FAIL, "not an image in an allowed format (limits.formats)", 0, 0},
    {"jpeg_magic_then_junk.jpg", FAIL, "cannot read image header", 0, 0},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static char outcome[NCASES][300]; /* filled by run_case, for the table */

static is_config_t *cfg;
static is_pipeline_conf_t conf;

/* The red block marks the picture's top-left corner (make_inputs.py): an
 * upright output has it there whatever the source's EXIF orientation. */
static void assert_upright(VipsImage *im, const char *file)
{
    double *px = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(im, &px, &n, 3, 3, NULL), 0);
    if (n < 3 || px[0] < 150 || px[1] > 90 || px[2] > 90)
        fail_msg("%s: top-left pixel is %.0f,%.0f,%.0f, not the red marker", file, px[0],
                 n > 1 ? px[1] : 0, n > 2 ? px[2] : 0);
    g_free(px);
}

/* Checks every rendition of an OK result as a user of the store would. */
static void check_outputs(const hcase_t *c, const is_result_t *res)
{
    assert_int_equal(res->nout, conf.nrenditions);
    for (int i = 0; i < res->nout; i++) {
        const is_output_t *o = &res->out[i];
        const is_rendition_t *r = &conf.renditions[i];
        VipsImage *im = tu_decode(o);
        if (!im)
            fail_msg("%s: rendition %s does not decode: %s", c->file, o->name, vips_error_buffer());
        assert_true(o->width <= r->width && o->height <= r->height);
        assert_int_equal(vips_image_get_width(im), o->width);
        assert_int_equal(vips_image_get_format(im), VIPS_FORMAT_UCHAR);
        /* Stripped: no EXIF (so no GPS), no XMP, no orientation left. */
        char **f = vips_image_get_fields(im);
        for (int k = 0; f[k]; k++)
            if (!strncmp(f[k], "exif-", 5) || !strcmp(f[k], "xmp-data") ||
                !strcmp(f[k], "iptc-data") || !strcmp(f[k], "orientation"))
                fail_msg("%s: rendition %s carries metadata %s", c->file, o->name, f[k]);
        g_strfreev(f);
        if (!strcmp(o->name, "large") && c->w) {
            if (o->width != c->w || o->height != c->h)
                fail_msg("%s: large is %dx%d, expected %dx%d", c->file, o->width, o->height, c->w,
                         c->h);
            if (!strncmp(c->file, "jpeg_orientation_", 17) || !strcmp(c->file, "png_rgb.png") ||
                !strcmp(c->file, "jpeg_cmyk.jpg") || !strcmp(c->file, "png_16bit.png"))
                assert_upright(im, c->file);
        }
        if (!strcmp(o->name, "medium") && c->w >= 400 && c->h >= 400)
            assert_true(o->width == 400 && o->height == 400); /* cover */
        g_object_unref(im);
    }
}

static void run_case(void **state)
{
    hcase_t *c = *state;
    char *out = outcome[c - cases];
    is_result_t res;
    char err[1024] = "";
    size_t len = 0;
    void *buf = tu_read(tu_input(c->file), &len);

    assert_non_null(buf);
    is_proc_result_t pr = is_pipeline_run(&conf, buf, len, &res, err, sizeof(err));
    if (pr == IS_PROC_OK)
        snprintf(out, sizeof(outcome[0]), "OK %s %dx%d, large %dx%d", res.format, res.width,
                 res.height, res.out[0].width, res.out[0].height);
    else
        snprintf(out, sizeof(outcome[0]), "%s: %s", pr == IS_PROC_FAIL ? "FAIL" : "RETRY", err);
    if (c->expect == OK) {
        if (pr != IS_PROC_OK)
            fail_msg("%s: expected OK, got %s", c->file, out);
        check_outputs(c, &res);
    } else {
        if (pr != IS_PROC_FAIL)
            fail_msg("%s: expected FAIL (%s), got %s", c->file, c->reason, out);
        /* libvips 8.16 no longer names a blocked loader when asked which
         * loader reads a buffer (8.14 did): the payload is refused before
         * any loader is named, with the plain message. */
        const char *named = "not an image in an allowed format (read by ";
        const char *reason = c->reason;
        if (vips_version(1) >= 16 && !strncmp(reason, named, strlen(named)))
            reason = "payload is not an image in an allowed format (limits.formats)";
        if (!strstr(err, reason))
            fail_msg("%s: reason '%s' does not say '%s'", c->file, err, reason);
        assert_int_equal(res.nout, 0);
    }
    is_result_clear(&res);
    g_free(buf);
}

/* The location tags of a file as exiftool reads them, one "[Group] Tag :
 * value" line each (GPS IFD and XMP location), "" when there is none.
 * exiftool, not libvips: the check must not share the code it checks.
 * Fails the test when exiftool cannot run (make deps installs it). */
static char *location_tags(const char *path)
{
    char cmd[1200], line[512];
    GString *out = g_string_new("");
    snprintf(cmd, sizeof(cmd),
             "exiftool -q -q -a -s -G1 -gps:all -xmp:City -xmp:Country -xmp:Location "
             "-xmp-exif:all '%s' 2>&1",
             path);
    FILE *p = popen(cmd, "r");
    if (!p)
        fail_msg("cannot run exiftool");
    while (fgets(line, sizeof(line), p))
        g_string_append(out, line);
    int st = pclose(p);
    /* exiftool exits 1 when no tag was found, which is what we hope for. */
    if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
        fail_msg("exiftool failed (status %d; installed by make deps): %s", st, out->str);
    return g_string_free(out, FALSE);
}

/* Camera make/model are read, location is not: the result has no field
 * for it and no rendition carries a GPS or XMP location tag, as exiftool
 * reads them. The input really has them (make_inputs.py writes them with
 * exiftool): checked first, so the test cannot pass on an input without. */
static void camera_no_gps(void **state)
{
    is_result_t res;
    char err[512], path[] = "/tmp/test_pipeline_out.XXXXXX";
    size_t len;
    const char *input = tu_input("jpeg_gps_camera.jpg");
    void *buf = tu_read(input, &len);
    (void)state;

    char *in_tags = location_tags(input);
    if (!strstr(in_tags, "GPSLatitude") || !strstr(in_tags, "GPSLongitude") ||
        !strstr(in_tags, "City"))
        fail_msg("%s lacks the GPS and XMP location tags the test needs: '%s'", input, in_tags);
    g_free(in_tags);

    assert_int_equal(is_pipeline_run(&conf, buf, len, &res, err, sizeof(err)), IS_PROC_OK);
    assert_string_equal(res.camera_make, "Canon");
    assert_string_equal(res.camera_model, "Canon EOS 5D");
    assert_true(res.nout > 0);
    for (int i = 0; i < res.nout; i++) {
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, res.out[i].buf, res.out[i].len), (ssize_t)res.out[i].len);
        close(fd);
        char *tags = location_tags(path);
        unlink(path);
        strcpy(path, "/tmp/test_pipeline_out.XXXXXX");
        if (*tags)
            fail_msg("rendition %s carries location tags:\n%s", res.out[i].name, tags);
        g_free(tags);
    }
    is_result_clear(&res);
    g_free(buf);
}

/* Orientation is reported as read, and 5..8 come out with swapped sides. */
static void orientation_reported(void **state)
{
    (void)state;
    for (int n = 1; n <= 8; n++) {
        char name[64], err[512];
        is_result_t res;
        size_t len;
        snprintf(name, sizeof(name), "jpeg_orientation_%d.jpg", n);
        void *buf = tu_read(tu_input(name), &len);
        assert_int_equal(is_pipeline_run(&conf, buf, len, &res, err, sizeof(err)), IS_PROC_OK);
        assert_int_equal(res.orientation, n);
        assert_int_equal(res.width, n >= 5 ? 320 : 480); /* as stored */
        is_result_clear(&res);
        g_free(buf);
    }
}

static void too_many_bytes(void **state)
{
    is_pipeline_conf_t small = conf;
    is_result_t res;
    char err[512];
    size_t len;
    void *buf = tu_read(tu_input("jpeg_baseline.jpg"), &len);
    (void)state;
    small.max_input_bytes = 1000;
    assert_int_equal(is_pipeline_run(&small, buf, len, &res, err, sizeof(err)), IS_PROC_FAIL);
    assert_non_null(strstr(err, "limits.max.input.bytes is 1000"));
    g_free(buf);
}

/* A large image with a short time limit is stopped, with that reason. */
static void time_limit(void **state)
{
    is_pipeline_conf_t quick = conf;
    is_result_t res;
    char err[512];
    size_t len;
    void *buf = tu_read(tu_input("png_large_9000x9000.png"), &len);
    (void)state;
    quick.timeout_ms = 20;
    assert_int_equal(is_pipeline_run(&quick, buf, len, &res, err, sizeof(err)), IS_PROC_FAIL);
    assert_non_null(strstr(err, "limits.timeout.ms (20 ms)"));
    assert_true(res.processing_ms < 2000); /* stopped, not run to the end */
    g_free(buf);
}

/* Animated sources: first frame by default; every frame for a rendition
 * with the animated option; the frame count counts against the pixels. */
static void animation(void **state)
{
    is_config_t *acfg = tu_config("anim=32x32/webp/70/animated,still=32x32/jpeg/70", NULL);
    is_pipeline_conf_t ac;
    is_result_t res;
    char err[512];
    size_t len;
    (void)state;
    is_pipeline_conf_init(&ac, acfg);
    const char *files[] = {"gif_anim_12.gif", "webp_anim_12.webp"};
    for (int f = 0; f < 2; f++) {
        void *buf = tu_read(tu_input(files[f]), &len);
        assert_int_equal(is_pipeline_run(&ac, buf, len, &res, err, sizeof(err)), IS_PROC_OK);
        assert_int_equal(res.pages, 12);
        assert_int_equal(res.out[0].pages, 12);
        assert_int_equal(res.out[1].pages, 1);
        VipsImage *im = vips_image_new_from_buffer(res.out[0].buf, res.out[0].len, "n=-1", NULL);
        assert_non_null(im);
        assert_int_equal(vips_image_get_n_pages(im), 12);
        assert_int_equal(vips_image_get_page_height(im), 24); /* 64x48 inside 32x32 */
        g_object_unref(im);
        is_result_clear(&res);
        /* 64 x 48 x 12 = 36864 pixels decoded: over a 20000-pixel limit,
         * while the first frame alone (3072) is within it. */
        ac.max_pixels = 20000;
        assert_int_equal(is_pipeline_run(&ac, buf, len, &res, err, sizeof(err)), IS_PROC_FAIL);
        assert_non_null(strstr(err, "x frames 12"));
        ac.max_pixels = conf.max_pixels;
        g_free(buf);
    }
    is_config_destroy(acfg);
}

/* width x height x frames, as the header check counts it, never wraps:
 * libvips opens images up to VIPS_MAX_COORD a side, and limits.max.frames
 * may be raised to 100000, which is 1e19 pixels, past what int64 holds. A
 * count that does not fit is over any limit (-1), never a small or negative
 * number that would pass limits.max.pixels. */
static void pixel_count_overflow(void **state)
{
    (void)state;
    assert_int_equal(is_pipeline_pixels(64, 48, 12), 36864);
    /* VIPS_MAX_COORD is 1e7 in libvips 8.14 (Debian 12), 1e8 in 8.16
     * (Debian 13): the largest frame count that fits follows from it. */
    const int64_t side = VIPS_MAX_COORD, frame = side * side, fit = INT64_MAX / frame;
    assert_int_equal(is_pipeline_pixels(VIPS_MAX_COORD, VIPS_MAX_COORD, 1), frame);
    assert_int_equal(is_pipeline_pixels(VIPS_MAX_COORD, VIPS_MAX_COORD, (int)fit), frame * fit);
    assert_int_equal(is_pipeline_pixels(VIPS_MAX_COORD, VIPS_MAX_COORD, (int)fit + 1), -1);
    assert_int_equal(is_pipeline_pixels(VIPS_MAX_COORD, VIPS_MAX_COORD, 100000), -1);
    assert_int_equal(is_pipeline_pixels(INT32_MAX, INT32_MAX, INT32_MAX), -1);
}

/* The icc option keeps the ICC profile and nothing else. */
static void keep_icc(void **state)
{
    is_config_t *icfg = tu_config("a=200x200/jpeg/80/icc,b=200x200/jpeg/80", NULL);
    is_pipeline_conf_t ic;
    is_result_t res;
    char err[512];
    size_t len;
    void *buf = tu_read(tu_input("jpeg_srgb_icc.jpg"), &len);
    (void)state;
    is_pipeline_conf_init(&ic, icfg);
    assert_int_equal(is_pipeline_run(&ic, buf, len, &res, err, sizeof(err)), IS_PROC_OK);
    VipsImage *a = tu_decode(&res.out[0]), *b = tu_decode(&res.out[1]);
    assert_true(vips_image_get_typeof(a, "icc-profile-data") != 0);
    assert_true(vips_image_get_typeof(b, "icc-profile-data") == 0);
    assert_true(vips_image_get_typeof(a, "exif-ifd3-GPSLatitude") == 0);
    assert_true(vips_image_get_typeof(a, "exif-data") == 0);
    assert_true(vips_image_get_typeof(a, "xmp-data") == 0);
    g_object_unref(a);
    g_object_unref(b);
    is_result_clear(&res);
    g_free(buf);
    is_config_destroy(icfg);
}

/* Similar pictures have close hashes, different ones do not; the mean
 * colour is that of the picture. */
static void phash_and_colour(void **state)
{
    is_result_t a, b, c;
    char err[512];
    size_t la, lb, lc;
    void *ba = tu_read(tu_input("png_rgb.png"), &la);
    void *bb = tu_read(tu_input("jpeg_progressive.jpg"), &lb);
    void *bc = tu_read(tu_input("png_noise.png"), &lc);
    (void)state;
    assert_int_equal(is_pipeline_run(&conf, ba, la, &a, err, sizeof(err)), IS_PROC_OK);
    assert_int_equal(is_pipeline_run(&conf, bb, lb, &b, err, sizeof(err)), IS_PROC_OK);
    assert_int_equal(is_pipeline_run(&conf, bc, lc, &c, err, sizeof(err)), IS_PROC_OK);
    int near = __builtin_popcountll(a.phash ^ b.phash),
        far = __builtin_popcountll(a.phash ^ c.phash);
    print_message("# phash png %016llx jpeg %016llx noise %016llx: distances %d, %d\n",
                  (unsigned long long)a.phash, (unsigned long long)b.phash,
                  (unsigned long long)c.phash, near, far);
    assert_true(near <= 6);
    assert_true(far >= 16);
    /* photo(): mean red over the gradient ~127 plus the red marker. */
    assert_in_range(a.mean_rgb[0], 120, 145);
    assert_in_range(a.mean_rgb[1], 110, 135);
    is_result_clear(&a);
    is_result_clear(&b);
    is_result_clear(&c);
    g_free(ba);
    g_free(bb);
    g_free(bc);
}

static void *count_object(void *o, void *a, void *b)
{
    (void)o;
    (void)b;
    (*(int *)a)++;
    return NULL;
}

/* After every input above has run: the table, the peak RSS, and nothing
 * of libvips' left behind (objects alive, tracked pixel memory). */
static void report_and_leaks(void **state)
{
    struct rusage ru;
    int objects = 0;
    (void)state;
    print_message("# %-32s outcome\n", "input");
    for (size_t i = 0; i < NCASES; i++)
        print_message("# %-32s %s\n", cases[i].file, outcome[i]);
    getrusage(RUSAGE_SELF, &ru);
    print_message("# peak RSS %ld MiB over %zu inputs\n", ru.ru_maxrss / 1024, NCASES);
#if defined(__SANITIZE_ADDRESS__)
    assert_true(ru.ru_maxrss < 2048 * 1024); /* ASan's shadow memory and quarantine */
#else
    assert_true(ru.ru_maxrss < 600 * 1024);
#endif
    vips_object_map(count_object, &objects, NULL);
    /* Idle libvips pool threads keep small per-thread buffer caches that
     * are released asynchronously (seen: 169,595 bytes on a loaded
     * machine, 0 otherwise). A leaked image shows up as a live object,
     * checked strictly; tracked memory gets time to settle and a bound far
     * below one decoded input image. */
    vips_thread_shutdown();
    for (int i = 0; i < 40 && vips_tracked_get_mem() > 0; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    print_message("# libvips objects alive: %d, tracked memory: %zu bytes\n", objects,
                  vips_tracked_get_mem());
    if (objects)
        vips_object_print_all();
    assert_int_equal(objects, 0);
    assert_true(vips_tracked_get_mem() <= 256 * 1024);
}

static int setup(void **state)
{
    (void)state;
    if (tu_global_setup())
        return -1;
    cfg = tu_config(RENDITIONS, NULL);
    is_pipeline_conf_init(&conf, cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    is_config_destroy(cfg);
    is_pipeline_global_term();
    return 0;
}

int main(void)
{
    struct CMUnitTest tests[NCASES + 16];
    size_t n = 0;
    for (size_t i = 0; i < NCASES; i++)
        tests[n++] = (struct CMUnitTest){cases[i].file, run_case, NULL, NULL, &cases[i]};
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(camera_no_gps);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(orientation_reported);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(too_many_bytes);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(time_limit);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(animation);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(pixel_count_overflow);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(keep_icc);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(phash_and_colour);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(report_and_leaks);
    return _cmocka_run_group_tests("pipeline", tests, n, setup, teardown);
}
