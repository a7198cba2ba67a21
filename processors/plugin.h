/*
 * plugin.h - the ABI of imgsink processor plugins: the company's own image
 * code in C, loaded with dlopen at start.
 *
 * A plugin is a shared object that exports one symbol, IS_PLUGIN_SYMBOL
 * ("is_plugin"): a const is_plugin_t, best defined with IS_PLUGIN_DEFINE,
 * which fills in what the ABI check needs:
 *
 *   IS_PLUGIN_DEFINE("watermark", wm_init, wm_process, wm_destroy);
 *
 * Build it against libvips and this header only:
 *
 *   cc -shared -fPIC -Iprocessors $(pkg-config --cflags vips) -o my.so my.c
 *
 * The ABI and its check at load (imgsink refuses to start, naming the
 * plugin's path and what to do, unless every point holds):
 * - abi_version == IS_PLUGIN_ABI_VERSION. The version changes whenever
 *   is_plugin_t, is_plugin_kv_t, is_proc_result_t or the contract below
 *   changes; abi_version stays the first member forever, so any plugin can
 *   be asked. Version 1 had no struct_size and no libvips version: rebuild.
 * - struct_size == sizeof(is_plugin_t) as this imgsink was built: catches a
 *   plugin built against an edited or differently packed header.
 * - vips_major == the running libvips' major version: the plugin passes
 *   VipsImage objects and may use their fields, whose layout a major
 *   version may change. Another minor version is only a warning in the log
 *   (libvips keeps its ABI within a major version; rebuild when you can).
 * - init and process are set (destroy may be NULL).
 *
 * Configuration (imgsink.conf):
 *
 *   processors                = wm@base          # NAME[@STAGE], comma-separated
 *   processor.wm.type         = plugin
 *   processor.wm.path         = /opt/imgsink/plugins/watermark.so
 *   processor.wm.text         = ACME             # passed to init()
 *
 * Stages: "base" (default) is the decoded, upright, 8-bit image before any
 * rendition is cut, so the result shows in every rendition; "rendition" is
 * each resized rendition before it is encoded.
 *
 * Images handed to process() are 8-bit (VIPS_FORMAT_UCHAR), sRGB (3 bands)
 * or B_W (1 band), plus an alpha band when the source had one, upright. An
 * animated rendition arrives as one tall image of its frames with the
 * "page-height" metadata set; a plugin that changes the height must set it
 * again or work per frame.
 *
 * Threads and ownership: init() and destroy() run once, on the main thread,
 * at start and shutdown. process() is called from several job threads at
 * once with the same instance: treat the instance as read-only after init(),
 * or lock inside. `in` is borrowed (do not unref it); on IS_PROC_OK `*out`
 * is a new reference that imgsink owns and unrefs. It may be a lazy libvips
 * pipeline: imgsink evaluates it under its per-image time limit
 * (limits.timeout.ms), so a runaway plugin operation is stopped there. On
 * RETRY or FAIL leave `*out` NULL and write the reason into errstr: FAIL
 * sends the record to the dead-letter topic with that reason, RETRY tries
 * it again later with backoff.
 */
#ifndef IS_PLUGIN_H
#define IS_PLUGIN_H

#include <stddef.h>

#include <vips/vips.h>

#include "processor.h"

#define IS_PLUGIN_ABI_VERSION 2
#define IS_PLUGIN_SYMBOL      "is_plugin"

/* One processor.NAME.KEY = VALUE setting, without the "processor.NAME."
 * prefix and without type and path. Valid only during init(). */
typedef struct is_plugin_kv {
    const char *key, *value;
} is_plugin_kv_t;

typedef struct is_plugin {
    int abi_version;    /* IS_PLUGIN_ABI_VERSION; always the first member */
    size_t struct_size; /* sizeof(is_plugin_t) where the plugin was built */
    int vips_major;     /* VIPS_MAJOR_VERSION where the plugin was built */
    int vips_minor;     /* VIPS_MINOR_VERSION where the plugin was built */
    const char *name;   /* for logs and errors, e.g. "watermark" */
    /* Returns the instance, or NULL with errstr set (imgsink then refuses
     * to start, showing errstr). An unknown key should be an error. */
    void *(*init)(const is_plugin_kv_t *conf, size_t nconf, char *errstr, size_t errstr_size);
    is_proc_result_t (*process)(void *instance, VipsImage *in, VipsImage **out, char *errstr,
                                size_t errstr_size);
    void (*destroy)(void *instance); /* NULL instance: nothing to do */
} is_plugin_t;

/* Defines the exported is_plugin symbol with the ABI fields of the header
 * and libvips the plugin is compiled against. */
#define IS_PLUGIN_DEFINE(NAME, INIT, PROCESS, DESTROY)                                             \
    const is_plugin_t is_plugin = {                                                                \
        .abi_version = IS_PLUGIN_ABI_VERSION,                                                      \
        .struct_size = sizeof(is_plugin_t),                                                        \
        .vips_major = VIPS_MAJOR_VERSION,                                                          \
        .vips_minor = VIPS_MINOR_VERSION,                                                          \
        .name = (NAME),                                                                            \
        .init = (INIT),                                                                            \
        .process = (PROCESS),                                                                      \
        .destroy = (DESTROY),                                                                      \
    }

#endif
