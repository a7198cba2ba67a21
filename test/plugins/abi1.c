/*
 * abi1.c - a plugin as built against ABI version 1 of processors/plugin.h
 * (before struct_size and the libvips version were added): its layout is
 * declared here, as the old header had it. imgsink must refuse it with a
 * message saying to rebuild (test/unit/test_processors.c). Not shipped.
 */
#include <stdio.h>

#include "plugin.h"

typedef struct v1_plugin {
    int abi_version;
    const char *name;
    void *(*init)(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size);
    is_proc_result_t (*process)(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                size_t errstr_size);
    void (*destroy)(void *instance);
} v1_plugin_t;

static void *v1_init(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size)
{
    static int instance;
    (void)conf, (void)nconf, (void)errstr, (void)errstr_size;
    return &instance;
}

static is_proc_result_t v1_process(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                   size_t errstr_size)
{
    (void)instance, (void)errstr, (void)errstr_size;
    g_object_ref(in);
    *out = in;
    return IS_PROC_OK;
}

const v1_plugin_t is_plugin = {1, "abi1", v1_init, v1_process, NULL};
