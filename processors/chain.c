/*
 * chain.c - configured processors: parsing, plugin loading, running. See
 * chain.h.
 */
#include "chain.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "log.h"
#include "plugin.h"

#define MAX_PROCS 16

typedef struct proc {
    char name[64];
    is_stage_t stage;
    /* plugin */
    void *dl;
    const is_plugin_t *plugin;
    void *instance;
    /* exec */
    char *command;
    int64_t timeout_ms;
    int retries;
    char **envp; /* the program's whole environment, owned */
} proc_t;

/* At most this many secrets are hidden from exec programs' errors. */
#define MAX_HIDE 32

struct is_chain {
    proc_t procs[MAX_PROCS];
    int n;
    /* Copies of the configured secrets (is_config_secrets): an exec
     * program's stderr or command may quote one, and its error goes to the
     * DLQ headers and the log. Owned, read-only after is_chain_new. */
    char *hide[MAX_HIDE];
    size_t nhide;
};

static const char *stage_names[] = {"source", "base", "rendition"};

/* processor.NAME.KEY lookup in the pass-through list. */
static const char *kv_get(const is_config_t *cfg, const char *name, const char *key)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        const char *k = cfg->processor_kv[i].key;
        if (!strncmp(k, name, nl) && k[nl] == '.' && !strcmp(k + nl + 1, key))
            return cfg->processor_kv[i].value;
    }
    return NULL;
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The ABI check of plugin.h. The first member is read alone: a plugin of
 * another version may have another layout after it. */
static int check_abi(const is_plugin_t *pl, char *errstr, size_t errstr_size)
{
    if (pl->abi_version != IS_PLUGIN_ABI_VERSION) {
        snprintf(errstr, errstr_size,
                 "plugin ABI version %d, this imgsink needs %d: rebuild the plugin against this "
                 "imgsink's processors/plugin.h",
                 pl->abi_version, IS_PLUGIN_ABI_VERSION);
        return -1;
    }
    if (pl->struct_size != sizeof(is_plugin_t)) {
        snprintf(errstr, errstr_size,
                 "plugin struct is %zu bytes, this imgsink's is_plugin_t is %zu (same ABI version "
                 "%d): the plugin was built against another processors/plugin.h; rebuild it, "
                 "defining the plugin with IS_PLUGIN_DEFINE",
                 pl->struct_size, sizeof(is_plugin_t), IS_PLUGIN_ABI_VERSION);
        return -1;
    }
    if (pl->vips_major != vips_version(0)) {
        snprintf(errstr, errstr_size,
                 "plugin built against libvips %d.%d, this imgsink runs libvips %s (another "
                 "major version): rebuild the plugin against it",
                 pl->vips_major, pl->vips_minor, vips_version_string());
        return -1;
    }
    if (!pl->init || !pl->process) {
        snprintf(errstr, errstr_size,
                 "plugin '%s' has no %s function (is_plugin.%s is NULL): both init and process "
                 "are required",
                 pl->name ? pl->name : "(no name)", !pl->init ? "init" : "process",
                 !pl->init ? "init" : "process");
        return -1;
    }
    return 0;
}

static int load_plugin(proc_t *p, const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    const char *path = kv_get(cfg, p->name, "path");
    is_plugin_kv_t kv[64];
    size_t nkv = 0, nl = strlen(p->name);

    if (!path || !*path) {
        snprintf(errstr, errstr_size, "processor.%s.path: required for a plugin", p->name);
        return -1;
    }
    /* RTLD_LOCAL: two plugins may use the same helper symbol names. */
    if (!(p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        snprintf(errstr, errstr_size, "processor.%s.path=%s: %s", p->name, path, dlerror());
        return -1;
    }
    p->plugin = dlsym(p->dl, IS_PLUGIN_SYMBOL);
    if (!p->plugin) {
        snprintf(errstr, errstr_size, "processor.%s.path=%s: no symbol '%s': not an imgsink plugin",
                 p->name, path, IS_PLUGIN_SYMBOL);
        return -1;
    }
    if (check_abi(p->plugin, errstr, errstr_size)) {
        /* errstr holds the reason; the path goes in front. */
        char why[512];
        snprintf(why, sizeof(why), "%s", errstr);
        snprintf(errstr, errstr_size, "processor.%s.path=%s: %s", p->name, path, why);
        p->plugin = NULL;
        return -1;
    }
    if (p->plugin->vips_minor != vips_version(1))
        IS_WARN("processors",
                json_pack("{s:s,s:s,s:i,s:i,s:s}", "processor", p->name, "path", path,
                          "plugin_vips_major", p->plugin->vips_major, "plugin_vips_minor",
                          p->plugin->vips_minor, "vips", vips_version_string()),
                "processor %s: plugin %s was built against libvips %d.%d, running %s; it "
                "should work (same major version), rebuild it when you can",
                p->name, path, p->plugin->vips_major, p->plugin->vips_minor, vips_version_string());
    for (size_t i = 0; i < cfg->nprocessor_kv && nkv < 64; i++) {
        const char *k = cfg->processor_kv[i].key;
        if (strncmp(k, p->name, nl) || k[nl] != '.' || !strcmp(k + nl + 1, "type") ||
            !strcmp(k + nl + 1, "path"))
            continue;
        kv[nkv].key = k + nl + 1;
        kv[nkv++].value = cfg->processor_kv[i].value;
    }
    char why[512] = "";
    if (!(p->instance = p->plugin->init(kv, nkv, why, sizeof(why)))) {
        snprintf(errstr, errstr_size, "processor.%s (%s): init failed: %s", p->name,
                 p->plugin->name ? p->plugin->name : "plugin", *why ? why : "no reason given");
        p->plugin = NULL;
        return -1;
    }
    return 0;
}

/* An environment variable's name as POSIX shells accept it. */
static int env_name_ok(const char *n)
{
    if (!*n || (!isalpha((unsigned char)*n) && *n != '_'))
        return 0;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && *n != '_')
            return 0;
    return 1;
}

/* The program's whole environment: PATH and LANG unless configured, then
 * each processor.NAME.env.VAR = VALUE. Nothing of the worker's own
 * environment, which holds its secrets (IMGSINK_S3_SECRET_KEY). */
static int build_env(proc_t *p, const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    size_t nl = strlen(p->name), n = 0;
    int path = 0, lang = 0;

    if (!(p->envp = calloc(cfg->nprocessor_kv + 3, sizeof(char *))))
        goto oom;
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        const char *k = cfg->processor_kv[i].key, *v = cfg->processor_kv[i].value;
        if (strncmp(k, p->name, nl) || k[nl] != '.' || strncmp(k + nl + 1, "env.", 4))
            continue;
        path |= !strcmp(k + nl + 5, "PATH");
        lang |= !strcmp(k + nl + 5, "LANG");
        if (asprintf(&p->envp[n++], "%s=%s", k + nl + 5, v) < 0) {
            p->envp[--n] = NULL;
            goto oom;
        }
    }
    if ((!path && !(p->envp[n++] = strdup("PATH=/usr/bin:/bin"))) ||
        (!lang && !(p->envp[n++] = strdup("LANG=C"))))
        goto oom;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

static int load_exec(proc_t *p, const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    static const char *const known[] = {"type", "command", "timeout.ms", "retries"};
    const char *cmd = kv_get(cfg, p->name, "command");
    const char *t = kv_get(cfg, p->name, "timeout.ms"), *r = kv_get(cfg, p->name, "retries");
    int64_t v;
    size_t nl = strlen(p->name);

    /* Whole keys only: a prefix or a part of a known key is a typo. */
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        const char *k = cfg->processor_kv[i].key, *sub = k + nl + 1;
        int ok = 0;
        if (strncmp(k, p->name, nl) || k[nl] != '.')
            continue;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            ok |= !strcmp(sub, known[j]);
        if (!strncmp(sub, "env.", 4)) {
            if (!env_name_ok(sub + 4)) {
                snprintf(errstr, errstr_size,
                         "processor.%s=%s: expected env.VAR with VAR made of letters, digits "
                         "and '_', not starting with a digit",
                         k, cfg->processor_kv[i].value);
                return -1;
            }
            ok = 1;
        }
        if (!ok) {
            snprintf(errstr, errstr_size,
                     "processor.%s=%s: unknown key for an exec processor; expected "
                     "processor.%s.type, .command, .timeout.ms, .retries or .env.VAR",
                     k, cfg->processor_kv[i].value, p->name);
            return -1;
        }
    }
    if (!cmd || !*cmd) {
        snprintf(errstr, errstr_size, "processor.%s.command: required for exec", p->name);
        return -1;
    }
    if (!(p->command = strdup(cmd)) || build_env(p, cfg, errstr, errstr_size)) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    p->timeout_ms = 10000;
    p->retries = 2;
    if (t) {
        if (parse_int(t, 1, 3600000, &v)) {
            snprintf(errstr, errstr_size, "processor.%s.timeout.ms=%s: expected 1..3600000",
                     p->name, t);
            return -1;
        }
        p->timeout_ms = v;
    }
    /* One pipeline attempt runs every exec processor: a timeout the job
     * watchdog would count as stuck hands a slow but healthy job over. */
    if (cfg->worker_stuck_timeout_ms && p->timeout_ms >= cfg->worker_stuck_timeout_ms) {
        snprintf(errstr, errstr_size,
                 "processor.%s.timeout.ms=%lld: expected less than worker.stuck.timeout.ms (%lld), "
                 "or the watchdog would take a slow command for a stuck job",
                 p->name, (long long)p->timeout_ms, (long long)cfg->worker_stuck_timeout_ms);
        return -1;
    }
    if (r) {
        if (parse_int(r, 0, 100, &v)) {
            snprintf(errstr, errstr_size, "processor.%s.retries=%s: expected 0..100", p->name, r);
            return -1;
        }
        p->retries = (int)v;
    }
    return 0;
}

is_chain_t *is_chain_new(const is_config_t *cfg, char *errstr, size_t errstr_size)
{
    is_chain_t *c = calloc(1, sizeof(*c));
    const char *spec = cfg->processors_spec ? cfg->processors_spec : "";
    char *copy = strdup(spec), *save = NULL, *tok;
    int ok = 0;

    if (!c || !copy) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    const char *secrets[MAX_HIDE];
    size_t nsecrets = is_config_secrets(cfg, secrets, MAX_HIDE);
    for (size_t i = 0; i < nsecrets; i++)
        if (!(c->hide[c->nhide++] = strdup(secrets[i]))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto done;
        }
    for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *at = strchr(tok, '@');
        proc_t *p = &c->procs[c->n];
        if (c->n == MAX_PROCS) {
            snprintf(errstr, errstr_size, "processors: more than %d", MAX_PROCS);
            goto done;
        }
        if (at)
            *at++ = '\0';
        if (!*tok || strlen(tok) >= sizeof(p->name) || strchr(tok, '.')) {
            snprintf(errstr, errstr_size, "processors=%s: bad name '%s'", spec, tok);
            goto done;
        }
        for (int i = 0; i < c->n; i++)
            if (!strcmp(c->procs[i].name, tok)) {
                snprintf(errstr, errstr_size, "processors=%s: '%s' named twice", spec, tok);
                goto done;
            }
        snprintf(p->name, sizeof(p->name), "%s", tok);
        p->stage = IS_STAGE_BASE;
        if (at) {
            int s = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(at, stage_names[i]))
                    s = i;
            if (s < 0) {
                snprintf(errstr, errstr_size,
                         "processors=%s: stage '%s' of %s is not source, base or rendition", spec,
                         at, tok);
                goto done;
            }
            p->stage = (is_stage_t)s;
        }
        c->n++;
        const char *type = kv_get(cfg, p->name, "type");
        if (type && !strcmp(type, "plugin")) {
            if (p->stage == IS_STAGE_SOURCE) {
                snprintf(errstr, errstr_size,
                         "processors: %s@source: plugins work on images (base or rendition)",
                         p->name);
                goto done;
            }
            if (load_plugin(p, cfg, errstr, errstr_size))
                goto done;
        } else if (type && !strcmp(type, "exec")) {
            if (load_exec(p, cfg, errstr, errstr_size))
                goto done;
        } else {
            snprintf(errstr, errstr_size, "processor.%s.type=%s: expected plugin or exec", p->name,
                     type ? type : "(not set)");
            goto done;
        }
    }
    /* A setting for a processor that is not in the list is a typo. */
    for (size_t i = 0; i < cfg->nprocessor_kv; i++) {
        const char *k = cfg->processor_kv[i].key;
        int known = 0;
        for (int j = 0; j < c->n; j++) {
            size_t nl = strlen(c->procs[j].name);
            known |= !strncmp(k, c->procs[j].name, nl) && k[nl] == '.';
        }
        if (!known) {
            snprintf(errstr, errstr_size, "processor.%s: no processor of that name in processors",
                     k);
            goto done;
        }
    }
    ok = 1;
done:
    free(copy);
    if (!ok) {
        /* The error may quote a value: a secret one is not shown. */
        if (c)
            is_exec_redact(errstr, errstr_size, (const char *const *)c->hide, c->nhide);
        is_chain_destroy(c);
        return NULL;
    }
    return c;
}

void is_chain_destroy(is_chain_t *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        proc_t *p = &c->procs[i];
        if (p->plugin && p->plugin->destroy)
            p->plugin->destroy(p->instance);
        if (p->dl)
            dlclose(p->dl);
        free(p->command);
        for (size_t j = 0; p->envp && p->envp[j]; j++)
            free(p->envp[j]);
        free(p->envp);
    }
    for (size_t i = 0; i < c->nhide; i++)
        free(c->hide[i]);
    free(c);
}

int is_chain_count(const is_chain_t *c, is_stage_t stage)
{
    int n = 0;
    for (int i = 0; c && i < c->n; i++)
        n += c->procs[i].stage == stage;
    return n;
}

/* One exec run with the timeout policy of chain.h. The program's time comes
 * out of the image's: it gets min(timeout.ms, what is left of
 * limits.timeout.ms), so several exec processors together cannot keep one
 * image past its limit (nor past worker.stuck.timeout.ms, which is larger). */
static is_proc_result_t run_exec(const is_chain_t *c, const proc_t *p, const is_chain_ctx_t *ctx,
                                 const void *in, size_t len, void **out, size_t *out_len,
                                 char *errstr, size_t errstr_size)
{
    char why[1024];
    is_exec_opts_t o = {.max_out = (size_t)ctx->max_bytes,
                        .envp = p->envp,
                        .hide = (const char *const *)c->hide,
                        .nhide = c->nhide};
    for (int tries = 0;; tries++) {
        int64_t left = ctx->deadline ? is_deadline_left_ms(ctx->deadline) : INT64_MAX;
        int cut = left < p->timeout_ms;
        if (left <= 0) {
            snprintf(errstr, errstr_size,
                     "processor %s: not started, the image's limits.timeout.ms (%lld ms) has "
                     "passed",
                     p->name, (long long)ctx->deadline->ms);
            return IS_PROC_FAIL;
        }
        o.timeout_ms = cut ? left : p->timeout_ms;
        is_exec_status_t st = is_exec_run(p->command, in, len, &o, out, out_len, why, sizeof(why));
        if (st == IS_EXEC_OK) {
            if (*out_len == 0) {
                free(*out);
                *out = NULL;
                snprintf(errstr, errstr_size, "processor %s: '%s' wrote nothing to stdout", p->name,
                         p->command);
                is_exec_redact(errstr, errstr_size, o.hide, o.nhide);
                return IS_PROC_FAIL;
            }
            return IS_PROC_OK;
        }
        /* Stopped at the image's limit: the image failed, not the program
         * (the pipeline reports it as the limit). */
        if (st == IS_EXEC_TIMEOUT && cut) {
            snprintf(errstr, errstr_size,
                     "processor %s: stopped at the image's limits.timeout.ms (%lld ms): %s",
                     p->name, (long long)ctx->deadline->ms, why);
            return IS_PROC_FAIL;
        }
        /* The worker could not learn the program's exit status: its output
         * cannot be trusted, and the record is not at fault. */
        if (st == IS_EXEC_WAIT_ERROR) {
            snprintf(errstr, errstr_size, "processor %s: %s", p->name, why);
            return IS_PROC_RETRY;
        }
        if (st == IS_EXEC_TIMEOUT && ctx->attempt < 0 && tries < p->retries &&
            !(ctx->deadline && is_deadline_passed(ctx->deadline)))
            continue;
        if (st == IS_EXEC_TIMEOUT && ctx->attempt >= 0 && ctx->attempt < p->retries) {
            snprintf(errstr, errstr_size, "processor %s: %s (attempt %d of %d)", p->name, why,
                     ctx->attempt + 1, p->retries + 1);
            return IS_PROC_RETRY;
        }
        if (st == IS_EXEC_TIMEOUT)
            snprintf(errstr, errstr_size, "processor %s: %s, %d times", p->name, why,
                     p->retries + 1);
        else
            snprintf(errstr, errstr_size, "processor %s: %s", p->name, why);
        return IS_PROC_FAIL;
    }
}

is_proc_result_t is_chain_run_bytes(const is_chain_t *c, const is_chain_ctx_t *ctx, const void *in,
                                    size_t len, void **out, size_t *out_len, char *errstr,
                                    size_t errstr_size)
{
    void *cur = NULL;
    size_t cur_len = len;

    *out = NULL;
    for (int i = 0; c && i < c->n; i++) {
        const proc_t *p = &c->procs[i];
        void *next = NULL;
        size_t next_len = 0;
        if (p->stage != IS_STAGE_SOURCE)
            continue;
        is_proc_result_t r =
            run_exec(c, p, ctx, cur ? cur : in, cur_len, &next, &next_len, errstr, errstr_size);
        free(cur);
        if (r != IS_PROC_OK)
            return r;
        cur = next;
        cur_len = next_len;
    }
    *out = cur;
    *out_len = cur_len;
    return IS_PROC_OK;
}

/* Image stage exec: PNG to the program, any allowed format back, decoded
 * into memory within the pixel limit. */
static is_proc_result_t exec_image(const is_chain_t *c, const proc_t *p, const is_chain_ctx_t *ctx,
                                   VipsImage *in, VipsImage **out, char *errstr, size_t errstr_size)
{
    void *png = NULL, *res = NULL;
    size_t png_len = 0, res_len = 0;
    VipsImage *im = NULL;
    is_proc_result_t r = IS_PROC_FAIL;

    if (vips_pngsave_buffer(in, &png, &png_len, "compression", 1, "strip", TRUE, NULL)) {
        snprintf(errstr, errstr_size, "processor %s: cannot encode PNG: %s", p->name,
                 vips_error_buffer());
        vips_error_clear();
        goto done;
    }
    if ((r = run_exec(c, p, ctx, png, png_len, &res, &res_len, errstr, errstr_size)) != IS_PROC_OK)
        goto done;
    r = IS_PROC_FAIL;
    if (!(im = vips_image_new_from_buffer(res, res_len, "", "fail_on",
                                          !strcmp(ctx->fail_on, "none") ? VIPS_FAIL_ON_NONE
                                          : !strcmp(ctx->fail_on, "truncated")
                                              ? VIPS_FAIL_ON_TRUNCATED
                                          : !strcmp(ctx->fail_on, "warning") ? VIPS_FAIL_ON_WARNING
                                                                             : VIPS_FAIL_ON_ERROR,
                                          NULL))) {
        snprintf(errstr, errstr_size, "processor %s: output is not an image in an allowed format",
                 p->name);
        vips_error_clear();
        goto done;
    }
    if ((int64_t)vips_image_get_width(im) * vips_image_get_height(im) > ctx->max_pixels) {
        snprintf(errstr, errstr_size, "processor %s: output is %dx%d, over limits.max.pixels",
                 p->name, vips_image_get_width(im), vips_image_get_height(im));
        goto done;
    }
    is_deadline_watch(im, ctx->deadline);
    /* The decoded image must not point into res, which is freed below. */
    if (!(*out = vips_image_copy_memory(im))) {
        snprintf(errstr, errstr_size, "processor %s: cannot decode its output: %s", p->name,
                 vips_error_buffer());
        vips_error_clear();
        goto done;
    }
    r = IS_PROC_OK;
done:
    VIPS_UNREF(im);
    g_free(png);
    free(res);
    return r;
}

is_proc_result_t is_chain_run_image(const is_chain_t *c, is_stage_t stage,
                                    const is_chain_ctx_t *ctx, VipsImage *in, VipsImage **out,
                                    char *errstr, size_t errstr_size)
{
    VipsImage *cur = in;

    g_object_ref(cur);
    *out = NULL;
    for (int i = 0; c && i < c->n; i++) {
        const proc_t *p = &c->procs[i];
        VipsImage *next = NULL;
        is_proc_result_t r;
        if (p->stage != stage)
            continue;
        if (p->plugin) {
            char why[512] = "";
            r = p->plugin->process(p->instance, cur, &next, why, sizeof(why));
            if (r != IS_PROC_OK || !next) {
                snprintf(errstr, errstr_size, "processor %s: %s", p->name,
                         *why ? why : "plugin failed without a reason");
                vips_error_clear();
                if (r == IS_PROC_OK)
                    r = IS_PROC_FAIL;
            }
        } else {
            r = exec_image(c, p, ctx, cur, &next, errstr, errstr_size);
        }
        g_object_unref(cur);
        cur = next;
        if (r != IS_PROC_OK) {
            VIPS_UNREF(cur);
            return r;
        }
    }
    *out = cur;
    return IS_PROC_OK;
}
