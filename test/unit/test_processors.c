/*
 * test_processors.c - the company's code in the pipeline: the example
 * watermark plugin (build/plugins/watermark.so, `make plugins`) and the
 * exec processor, with their configuration errors and failure outcomes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain.h"
#include "pipeline_util.h"

static char plugin_path[512];

/* Under ASan (test/run.sh asan): fontconfig, used by vips_text in the
 * watermark plugin, keeps its font cache for the life of the process. That
 * is fontconfig's global state, not a leak of the pipeline or the plugin. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

/* Runs one file through renditions + processors given as key/value pairs.
 * Returns the outcome; *chain_err is set when the chain could not be
 * built (and the pipeline is not run). */
static is_proc_result_t run_with(const char *file, const char *renditions, const char *const *kv,
                                 int attempt, is_result_t *res, char *err, size_t err_size)
{
    is_config_t *cfg = tu_config(renditions, kv);
    is_pipeline_conf_t conf;
    is_proc_result_t pr = IS_PROC_FAIL;
    size_t len;
    void *buf = tu_read(tu_input(file), &len);
    is_chain_t *chain = is_chain_new(cfg, err, err_size);

    memset(res, 0, sizeof(*res));
    if (chain) {
        is_pipeline_conf_init(&conf, cfg);
        conf.chain = chain;
        pr = is_pipeline_run_attempt(&conf, buf, len, attempt, res, err, err_size);
    }
    is_chain_destroy(chain);
    is_config_destroy(cfg);
    g_free(buf);
    return chain ? pr : (is_proc_result_t)-1;
}

/* Mean of band 0 over a rectangle of a decoded rendition. */
static double region_mean(const is_output_t *o, double x0, double y0, double x1, double y1)
{
    VipsImage *im = tu_decode(o), *crop = NULL;
    double avg = -1;
    int w = vips_image_get_width(im), h = vips_image_get_height(im);
    assert_int_equal(vips_crop(im, &crop, (int)(x0 * w), (int)(y0 * h), (int)((x1 - x0) * w),
                               (int)((y1 - y0) * h), NULL),
                     0);
    assert_int_equal(vips_avg(crop, &avg, NULL), 0);
    g_object_unref(crop);
    g_object_unref(im);
    return avg;
}

static void watermark_visible(void **state)
{
    const char *kv[] = {"processors",
                        "wm@base",
                        "processor.wm.type",
                        "plugin",
                        "processor.wm.path",
                        plugin_path,
                        "processor.wm.text",
                        "ACME",
                        "processor.wm.opacity",
                        "1",
                        NULL};
    is_result_t res, plain;
    char err[512];
    (void)state;
    assert_int_equal(run_with("png_dark.png", "a=400x300/png/90,b=200x150/jpeg/90", kv, 0, &res,
                              err, sizeof(err)),
                     IS_PROC_OK);
    assert_int_equal(run_with("png_dark.png", "a=400x300/png/90,b=200x150/jpeg/90", NULL, 0, &plain,
                              err, sizeof(err)),
                     IS_PROC_OK);
    for (int i = 0; i < 2; i++) {
        double mark = region_mean(&res.out[i], 0.6, 0.75, 1.0, 1.0);
        double corner = region_mean(&res.out[i], 0.0, 0.0, 0.4, 0.4);
        double before = region_mean(&plain.out[i], 0.6, 0.75, 1.0, 1.0);
        print_message("# %s: bottom-right mean %.1f with the watermark, %.1f without\n",
                      res.out[i].name, mark, before);
        assert_true(mark > 10.0); /* white text on black, in every rendition */
        assert_true(before < 1.0);
        assert_true(corner < 1.0); /* the rest untouched */
    }
    is_result_clear(&res);
    is_result_clear(&plain);
}

/* At stage rendition, every frame of an animated rendition is marked. */
static void watermark_animated_rendition(void **state)
{
    const char *kv[] = {"processors", "wm@rendition",      "processor.wm.type",
                        "plugin",     "processor.wm.path", plugin_path,
                        NULL};
    is_result_t res;
    char err[512];
    (void)state;
    assert_int_equal(
        run_with("gif_anim_12.gif", "anim=320x240/webp/80/animated", kv, 0, &res, err, sizeof(err)),
        IS_PROC_OK);
    assert_int_equal(res.out[0].pages, 12);
    is_result_clear(&res);
}

static void expect_chain_error(const char *const *kv, const char *why)
{
    is_result_t res;
    char err[512] = "";
    if (run_with("png_dark.png", NULL, kv, 0, &res, err, sizeof(err)) != (is_proc_result_t)-1)
        fail_msg("configuration accepted, expected an error about '%s'", why);
    if (!strstr(err, why))
        fail_msg("error '%s' does not say '%s'", err, why);
}

static void configuration_errors(void **state)
{
    (void)state;
    const char *unknown_key[] = {"processors",
                                 "wm",
                                 "processor.wm.type",
                                 "plugin",
                                 "processor.wm.path",
                                 plugin_path,
                                 "processor.wm.colour",
                                 "red",
                                 NULL};
    expect_chain_error(unknown_key, "init failed: unknown key 'colour'");
    const char *bad_path[] = {
        "processors",         "wm", "processor.wm.type", "plugin", "processor.wm.path",
        "/nonexistent/wm.so", NULL};
    expect_chain_error(bad_path, "processor.wm.path=/nonexistent/wm.so");
    const char *not_plugin[] = {
        "processors", "wm", "processor.wm.type", "plugin", "processor.wm.path", "libm.so.6", NULL};
    expect_chain_error(not_plugin, "not an imgsink plugin");
    const char *no_type[] = {"processors", "wm", NULL};
    expect_chain_error(no_type, "processor.wm.type=(not set): expected plugin or exec");
    const char *stray[] = {"processors", "", "processor.typo.type", "exec", NULL};
    expect_chain_error(stray, "processor.typo.type: no processor of that name");
    const char *plugin_source[] = {"processors", "wm@source",         "processor.wm.type",
                                   "plugin",     "processor.wm.path", plugin_path,
                                   NULL};
    expect_chain_error(plugin_source, "plugins work on images");
    const char *bad_stage[] = {
        "processors", "x@middle", "processor.x.type", "exec", "processor.x.command", "cat", NULL};
    expect_chain_error(bad_stage, "stage 'middle'");
    const char *no_cmd[] = {"processors", "x", "processor.x.type", "exec", NULL};
    expect_chain_error(no_cmd, "processor.x.command: required");
    const char *slow[] = {"processors",
                          "x",
                          "processor.x.type",
                          "exec",
                          "processor.x.command",
                          "cat",
                          "processor.x.timeout.ms",
                          "200000",
                          NULL};
    expect_chain_error(slow, "processor.x.timeout.ms=200000: expected less than "
                             "worker.stuck.timeout.ms (120000)");
    /* Whole keys only: a prefix of timeout.ms is a typo, not timeout.ms. */
    const char *prefix[] = {"processors",
                            "x",
                            "processor.x.type",
                            "exec",
                            "processor.x.command",
                            "cat",
                            "processor.x.timeout",
                            "5000",
                            NULL};
    expect_chain_error(prefix, "processor.x.timeout=5000: unknown key for an exec processor; "
                               "expected processor.x.type, .command, .timeout.ms or .retries");
    const char *part[] = {"processors",
                          "x",
                          "processor.x.type",
                          "exec",
                          "processor.x.command",
                          "cat",
                          "processor.x.ms",
                          "1",
                          NULL};
    expect_chain_error(part, "processor.x.ms=1: unknown key for an exec processor");
    const char *bogus[] = {"processors",
                           "x",
                           "processor.x.type",
                           "exec",
                           "processor.x.command",
                           "cat",
                           "processor.x.bogus",
                           "1",
                           NULL};
    expect_chain_error(bogus, "processor.x.bogus=1: unknown key for an exec processor");
}

/* Plugins that do not match this imgsink's ABI (test/plugins/) are refused
 * at start with a message saying what is wrong. */
static void plugin_abi(void **state)
{
    static const struct {
        const char *so, *why;
    } cases[] = {
        {"abi1", "plugin ABI version 1, this imgsink needs 2: rebuild the plugin"},
        {"badsize", "plugin struct is"},
        {"noprocess", "plugin 'noprocess' has no process function (is_plugin.process is NULL)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/test/plugins/%s.so", tu_build(), cases[i].so);
        const char *kv[] = {"processors", "p", "processor.p.type", "plugin", "processor.p.path",
                            path,         NULL};
        expect_chain_error(kv, cases[i].why);
    }
}

static void exec_identity(void **state)
{
    const char *src[] = {
        "processors", "x@source", "processor.x.type", "exec", "processor.x.command", "cat", NULL};
    const char *base[] = {"processors", "x", "processor.x.type", "exec", "processor.x.command",
                          "cat",        NULL};
    is_result_t res;
    char err[512];
    (void)state;
    assert_int_equal(run_with("jpeg_baseline.jpg", NULL, src, 0, &res, err, sizeof(err)),
                     IS_PROC_OK);
    assert_int_equal(res.out[0].width, 480);
    is_result_clear(&res);
    assert_int_equal(run_with("jpeg_baseline.jpg", NULL, base, 0, &res, err, sizeof(err)),
                     IS_PROC_OK);
    assert_int_equal(res.out[0].width, 480);
    is_result_clear(&res);
}

static void expect_exec(const char *cmd, const char *stage, int attempt, is_proc_result_t want,
                        const char *why)
{
    char spec[64];
    snprintf(spec, sizeof(spec), "x@%s", stage);
    const char *kv[] = {"processors",
                        spec,
                        "processor.x.type",
                        "exec",
                        "processor.x.command",
                        cmd,
                        "processor.x.timeout.ms",
                        "300",
                        "processor.x.retries",
                        "1",
                        NULL};
    is_result_t res;
    char err[1024] = "";
    is_proc_result_t pr = run_with("jpeg_baseline.jpg", NULL, kv, attempt, &res, err, sizeof(err));
    if (pr != want || !strstr(err, why))
        fail_msg("'%s' at %s, attempt %d: got %d '%s', expected %d '%s'", cmd, stage, attempt, pr,
                 err, want, why);
    is_result_clear(&res);
}

static void exec_failures(void **state)
{
    (void)state;
    expect_exec("echo starting; echo 'model weights not found' >&2; exit 3", "source", 0,
                IS_PROC_FAIL, "exited with status 3: model weights not found");
    expect_exec("kill -SEGV $$", "base", 0, IS_PROC_FAIL, "killed by signal 11");
    expect_exec("exit 0", "source", 0, IS_PROC_FAIL, "wrote nothing to stdout");
    expect_exec("echo not an image", "source", 0, IS_PROC_FAIL,
                "not an image in an allowed format");
    expect_exec("echo not an image", "base", 0, IS_PROC_FAIL, "output is not an image");
    /* stdin is large and never read: no SIGPIPE, the exit status decides. */
    expect_exec("exit 4", "base", 0, IS_PROC_FAIL, "exited with status 4");
}

static void exec_timeouts(void **state)
{
    struct timespec t0, t1;
    (void)state;
    /* Counted attempts: RETRY below the limit, then FAIL. */
    expect_exec("sleep 10", "source", 0, IS_PROC_RETRY, "did not finish within 300 ms (attempt 1");
    expect_exec("sleep 10", "source", 1, IS_PROC_FAIL, "did not finish within 300 ms, 2 times");
    /* Uncounted (is_pipeline_run): retried in place, then FAIL; the
     * program and its children are killed, not waited for. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_exec("sleep 10 & sleep 10; wait", "base", -1, IS_PROC_FAIL, "2 times");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
}

static int setup(void **state)
{
    (void)state;
    snprintf(plugin_path, sizeof(plugin_path), "%s/plugins/watermark.so", tu_build());
    if (access(plugin_path, R_OK)) {
        fprintf(stderr, "%s missing: run `make plugins`\n", plugin_path);
        return -1;
    }
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
        cmocka_unit_test(watermark_visible),    cmocka_unit_test(watermark_animated_rendition),
        cmocka_unit_test(configuration_errors), cmocka_unit_test(exec_identity),
        cmocka_unit_test(exec_failures),        cmocka_unit_test(exec_timeouts),
        cmocka_unit_test(plugin_abi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
