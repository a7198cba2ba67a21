/*
 * badsize.c - a plugin whose is_plugin_t is larger than imgsink's, as one
 * built against an edited processors/plugin.h (a callback added without a
 * new ABI version) would be. imgsink must refuse it rather than read its
 * struct with the wrong layout (test/unit/test_processors.c). Not shipped.
 */
#include <stdio.h>

#include "plugin.h"

static void *bs_init(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size)
{
    static int instance;
    (void)conf, (void)nconf, (void)errstr, (void)errstr_size;
    return &instance;
}

static is_proc_result_t bs_process(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                   size_t errstr_size)
{
    (void)instance, (void)errstr, (void)errstr_size;
    g_object_ref(in);
    *out = in;
    return IS_PROC_OK;
}

/* The struct of the edited header: imgsink's plus one more callback. */
typedef struct badsize_plugin {
    is_plugin_t base;
    void (*extra)(void *instance);
} badsize_plugin_t;

const badsize_plugin_t is_plugin = {
    .base =
        {
            .abi_version = IS_PLUGIN_ABI_VERSION,
            .struct_size = sizeof(badsize_plugin_t),
            .vips_major = VIPS_MAJOR_VERSION,
            .vips_minor = VIPS_MINOR_VERSION,
            .name = "badsize",
            .init = bs_init,
            .process = bs_process,
        },
    .extra = NULL,
};
