/*
 * test_processors.c - the company's code in the pipeline: the example
 * watermark plugin (build/plugins/watermark.so, `make plugins`) and the
 * exec processor, with their configuration errors and failure outcomes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chain.h"
#include "pipeline_util.h"

static char plugin_path[512];
/* A scratch directory for what exec programs report (removed at the end). */
static char tmpdir[64];

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
                               "expected processor.x.type, .command, .timeout.ms, .retries or "
                               ".env.VAR");
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
    const char *bad_env[] = {"processors",
                             "x",
                             "processor.x.type",
                             "exec",
                             "processor.x.command",
                             "cat",
                             "processor.x.env.1X",
                             "1",
                             NULL};
    expect_chain_error(bad_env, "processor.x.env.1X=1: expected env.VAR");
    /* The error names the key; a secret value stays hidden. */
    const char *secret[] = {"processors",
                            "x",
                            "processor.x.type",
                            "exec",
                            "processor.x.command",
                            "cat",
                            "processor.x.api_token",
                            "tok-5e2b7",
                            NULL};
    expect_chain_error(secret, "processor.x.api_token=[hidden]: unknown key for an exec processor");
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

/* s on one line, for a TAP comment (static buffer). */
static const char *one_line(const char *s)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return buf;
}

/* Reads a small file the program wrote into tmpdir ("" if absent). */
static const char *report(const char *name)
{
    static char buf[8192];
    char path[128];
    FILE *fp;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    buf[0] = '\0';
    if ((fp = fopen(path, "r"))) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

/* Runs one exec processor at the source stage (attempt 0) with extra
 * key/value pairs; returns the outcome, err the message. */
static is_proc_result_t exec_with(const char *cmd, const char *const *extra, char *err,
                                  size_t err_size)
{
    const char *kv[32] = {"processors",          "x@source", "processor.x.type", "exec",
                          "processor.x.command", cmd};
    int n = 6;
    is_result_t res;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        kv[n++] = extra[i];
    kv[n] = NULL;
    err[0] = '\0';
    is_proc_result_t pr = run_with("jpeg_baseline.jpg", NULL, kv, 0, &res, err, err_size);
    is_result_clear(&res);
    return pr;
}

/* The program gets a minimal environment, never the worker's own (which
 * holds IMGSINK_S3_SECRET_KEY), plus what processor.NAME.env.* sets. */
static void exec_environment(void **state)
{
    const char *extra[] = {"s3.secret.key", "env-secret-5f3a9c", "processor.x.env.MODEL_DIR",
                           "/opt/models", NULL};
    char cmd[256], err[1024];
    (void)state;
    setenv("IMGSINK_S3_SECRET_KEY", "env-secret-5f3a9c", 1);
    snprintf(cmd, sizeof(cmd), "env > %s/env; cat", tmpdir);
    is_proc_result_t pr = exec_with(cmd, extra, err, sizeof(err));
    unsetenv("IMGSINK_S3_SECRET_KEY");
    if (pr != IS_PROC_OK)
        fail_msg("'%s': %d %s", cmd, pr, err);
    const char *env = report("env");
    /* On failure only the offending line is shown: the rest of the test's
     * own environment has no business in a test log. */
    const char *leak = strstr(env, "IMGSINK_S3_SECRET_KEY=");
    if (leak)
        fail_msg("the program saw the worker's environment: %.*s", (int)strcspn(leak, "\n"), leak);
    assert_null(strstr(env, "env-secret-5f3a9c"));
    assert_null(strstr(env, "IMGSINK_"));
    print_message("# the program's environment: %s\n", one_line(env));
    assert_non_null(strstr(env, "PATH=/usr/bin:/bin\n"));
    assert_non_null(strstr(env, "LANG=C\n"));
    assert_non_null(strstr(env, "MODEL_DIR=/opt/models\n"));
}

/* Only 0, 1 and 2 reach the program, though the worker holds descriptors
 * that are not close-on-exec (libcurl's sockets). */
static void exec_descriptors(void **state)
{
    char cmd[256], err[1024];
    int leak = socket(AF_INET, SOCK_STREAM, 0); /* no SOCK_CLOEXEC, as libcurl 7.88 */
    (void)state;
    assert_true(leak >= 0);
    /* The shell's descriptors: the subshell takes the redirection (the
     * shell would keep a copy of its stdout while redirecting). */
    snprintf(cmd, sizeof(cmd), "(ls /proc/$$/fd) > %s/fds; cat", tmpdir);
    is_proc_result_t pr = exec_with(cmd, NULL, err, sizeof(err));
    close(leak);
    if (pr != IS_PROC_OK)
        fail_msg("'%s': %d %s", cmd, pr, err);
    print_message("# the program's descriptors: %s\n", one_line(report("fds")));
    assert_string_equal(report("fds"), "0\n1\n2\n");
}

/* Running, or gone for good (no process, or a zombie of init's). */
static int running(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *fp;
    size_t n;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(fp = fopen(path, "r")))
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* The pids the program wrote ("$$ $!"), the program reaped (no zombie of
 * ours) and its background child gone. Waits up to 10 s for the SIGKILL to
 * land. */
static void expect_group_gone(const char *what)
{
    int pid = 0, child = 0;
    if (sscanf(report("pids"), "%d %d", &pid, &child) != 2)
        fail_msg("%s: the program did not report its pids", what);
    for (int i = 0; i < 1000 && running(child); i++)
        usleep(10000);
    if (running(child)) {
        kill(child, SIGKILL);
        fail_msg("%s: the program's background child %d still runs", what, child);
    }
    errno = 0;
    if (waitpid(pid, NULL, WNOHANG) != -1 || errno != ECHILD)
        fail_msg("%s: the program %d was not reaped", what, pid);
    print_message("# %s: program %d reaped, its child %d gone\n", what, pid, child);
}

/* Nothing the program starts outlives its run: on timeout its process
 * group is killed, and so is what it leaves behind when it exits. */
static void exec_process_group(void **state)
{
    const char *extra[] = {"processor.x.timeout.ms", "500", "processor.x.retries", "0", NULL};
    char cmd[256], err[1024];
    (void)state;
    snprintf(cmd, sizeof(cmd), "sleep 1000 & echo $$ $! > %s/pids; wait", tmpdir);
    assert_int_equal(exec_with(cmd, extra, err, sizeof(err)), IS_PROC_FAIL);
    assert_non_null(strstr(err, "did not finish within 500 ms"));
    expect_group_gone("timeout");
    snprintf(cmd, sizeof(cmd), "sleep 1000 </dev/null >/dev/null 2>&1 & echo $$ $! > %s/pids; cat",
             tmpdir);
    if (exec_with(cmd, extra, err, sizeof(err)) != IS_PROC_OK)
        fail_msg("'%s': %s", cmd, err);
    expect_group_gone("exit");
}

/* What a failing program prints goes to the DLQ headers and the log: the
 * configured secrets and NAME=VALUE pairs for secret names are hidden. */
static void exec_stderr_secrets(void **state)
{
    const char *extra[] = {"s3.secret.key", "cfg-secret-81d2e7", NULL};
    const char *cmd = "echo 'upload as cfg-secret-81d2e7 failed;' >&2; "
                      "echo 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI db_password: hunter2hunter2' >&2;"
                      " exit 3";
    char err[1024];
    (void)state;
    assert_int_equal(exec_with(cmd, extra, err, sizeof(err)), IS_PROC_FAIL);
    print_message("# %s\n", err);
    if (strstr(err, "cfg-secret-81d2e7") || strstr(err, "wJalrXUtnFEMI") ||
        strstr(err, "hunter2hunter2"))
        fail_msg("a secret in the error: %s", err);
    assert_non_null(strstr(err, "exited with status 3"));
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY=[hidden] db_password: [hidden]"));
}

/* Three exec processors of 2 s each under limits.timeout.ms=3000: the
 * third gets only what is left of the image's time, is stopped at the
 * limit (it never gets to write its marker) and the image fails for its
 * time limit, instead of the steps together taking up to 6 s. */
static void exec_time_budget(void **state)
{
    char last[256], marker[128], err[1024] = "";
    struct timespec t0, t1;
    is_result_t res;
    (void)state;
    snprintf(marker, sizeof(marker), "%s/c-done", tmpdir);
    snprintf(last, sizeof(last), "sleep 1.2; touch %s; cat", marker);
    const char *kv[] = {"limits.timeout.ms",
                        "3000",
                        "processors",
                        "a@source,b@base,c@rendition",
                        "processor.a.type",
                        "exec",
                        "processor.a.command",
                        "sleep 1.2; cat",
                        "processor.a.timeout.ms",
                        "2000",
                        "processor.b.type",
                        "exec",
                        "processor.b.command",
                        "sleep 1.2; cat",
                        "processor.b.timeout.ms",
                        "2000",
                        "processor.c.type",
                        "exec",
                        "processor.c.command",
                        last,
                        "processor.c.timeout.ms",
                        "2000",
                        NULL};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    is_proc_result_t pr =
        run_with("jpeg_baseline.jpg", "a=200x150/jpeg/80", kv, 0, &res, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_result_clear(&res);
    print_message("# outcome %d after %.1f s: %s; c finished: %s\n", pr,
                  (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, err,
                  access(marker, F_OK) ? "no" : "yes");
    assert_int_equal(pr, IS_PROC_FAIL);
    assert_non_null(strstr(err, "limits.timeout.ms (3000 ms)"));
    if (!access(marker, F_OK))
        fail_msg("the third program ran to its end, past the image's time limit");
}

/* When the worker cannot learn the program's exit status (here SIGCHLD is
 * ignored, so the kernel reaps it first), its output is not used: the
 * record is retried, neither a success nor the record's fault. */
static void exec_wait_failure(void **state)
{
    char err[1024];
    (void)state;
    signal(SIGCHLD, SIG_IGN);
    is_proc_result_t pr = exec_with("cat; exit 3", NULL, err, sizeof(err));
    signal(SIGCHLD, SIG_DFL);
    print_message("# outcome %d: %s\n", pr, err);
    assert_int_equal(pr, IS_PROC_RETRY);
    assert_non_null(strstr(err, "cannot learn how 'cat; exit 3' ended"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(plugin_path, sizeof(plugin_path), "%s/plugins/watermark.so", tu_build());
    if (access(plugin_path, R_OK)) {
        fprintf(stderr, "%s missing: run `make plugins`\n", plugin_path);
        return -1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/imgsink-processors-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    return tu_global_setup();
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    is_pipeline_global_term();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(watermark_visible),    cmocka_unit_test(watermark_animated_rendition),
        cmocka_unit_test(configuration_errors), cmocka_unit_test(exec_identity),
        cmocka_unit_test(exec_failures),        cmocka_unit_test(exec_timeouts),
        cmocka_unit_test(plugin_abi),           cmocka_unit_test(exec_environment),
        cmocka_unit_test(exec_descriptors),     cmocka_unit_test(exec_process_group),
        cmocka_unit_test(exec_stderr_secrets),  cmocka_unit_test(exec_time_budget),
        cmocka_unit_test(exec_wait_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
