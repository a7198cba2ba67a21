/*
 * noprocess.c - a plugin whose process callback is missing, for the load
 * check of processors/plugin.h (test/unit/test_processors.c). Not shipped.
 */
#include <stdio.h>

#include "plugin.h"

static int instance;

static void *np_init(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size)
{
    (void)conf, (void)nconf, (void)errstr, (void)errstr_size;
    return &instance;
}

IS_PLUGIN_DEFINE("noprocess", np_init, NULL, NULL);
