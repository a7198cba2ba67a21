/*
 * hang.c - a processor plugin for the watchdog tests (test/e2e/t36): it
 * never returns for images of one width, like a plugin or library call
 * stuck for good, and ignores libvips' kill flag. Not shipped.
 *
 *   processors             = hang@base
 *   processor.hang.type    = plugin
 *   processor.hang.path    = build/test/plugins/hang.so
 *   processor.hang.width   = 13     images this wide (at the base stage) hang
 *   processor.hang.times   = 1      hang this many times per process, then
 *                                   pass; 0 means always
 *
 * Other images pass through unchanged.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

typedef struct hang {
    int width, times;
    atomic_int hung;
} hang_t;

static int parse_int(const char *key, const char *v, int min, int *out, char *errstr, size_t n)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < min || x > 1000000) {
        snprintf(errstr, n, "%s=%s: expected an integer >= %d", key, v, min);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static void *hang_init(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size)
{
    hang_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->width = 13;
    h->times = 1;
    for (size_t i = 0; i < nconf; i++) {
        int rc;
        if (!strcmp(conf[i].key, "width"))
            rc = parse_int("width", conf[i].value, 1, &h->width, errstr, errstr_size);
        else if (!strcmp(conf[i].key, "times"))
            rc = parse_int("times", conf[i].value, 0, &h->times, errstr, errstr_size);
        else {
            snprintf(errstr, errstr_size, "unknown key %s (expected width or times)", conf[i].key);
            rc = -1;
        }
        if (rc) {
            free(h);
            return NULL;
        }
    }
    return h;
}

static is_proc_result_t hang_process(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                     size_t errstr_size)
{
    hang_t *h = instance;
    (void)errstr, (void)errstr_size;
    if (in->Xsize == h->width && (h->times == 0 || atomic_fetch_add(&h->hung, 1) < h->times))
        for (;;) {
            struct timespec ts = {3600, 0};
            nanosleep(&ts, NULL);
        }
    g_object_ref(in);
    *out = in;
    return IS_PROC_OK;
}

static void hang_destroy(void *instance)
{
    free(instance);
}

IS_PLUGIN_DEFINE("hang", hang_init, hang_process, hang_destroy);
