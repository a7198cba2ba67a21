/*
 * chain.h - the company's processors, in the order and at the stages the
 * configuration names: C plugins (plugin.h) and external programs (exec.h).
 *
 *   processors               = NAME[@STAGE], ...
 *   processor.NAME.type      = plugin | exec
 *   plugin: processor.NAME.path = FILE.so, other processor.NAME.* keys go to init()
 *   exec:   processor.NAME.command (run with /bin/sh -c),
 *           processor.NAME.timeout.ms (default 10000), processor.NAME.retries (default 2),
 *           processor.NAME.env.VAR = VALUE (the program's environment: these, plus
 *           PATH=/usr/bin:/bin and LANG=C unless set; nothing of the worker's)
 *           Any other processor.NAME.* key of an exec processor is an error.
 *
 * Stages: source (the payload bytes before decoding; exec only: the bytes
 * on stdin, the new payload from stdout, which then goes through every
 * check a payload does), base (default; the decoded upright 8-bit image
 * before renditions are cut) and rendition (each resized rendition before
 * encoding). At the image stages an exec program reads the image as PNG and
 * writes any allowed format back.
 *
 * Outcomes: a plugin returns OK/RETRY/FAIL itself. An exec program that
 * exits non-zero is FAIL with its stderr's tail (secrets hidden, exec.h);
 * one that overruns its timeout is RETRY while the record's attempt number
 * is below retries, then FAIL (when the caller does not count attempts,
 * attempt < 0, the program is re-run in place up to retries times). An exec
 * program gets min(timeout.ms, what is left of the image's deadline): one
 * stopped at the deadline is FAIL, the image took too long (no retry). When
 * the worker cannot learn how the program ended (waitpid failed) its output
 * is not used and the outcome is RETRY: the record is not at fault.
 *
 * Threads: is_chain_new/_destroy on the main thread (they dlopen and run
 * plugins' init/destroy); is_chain_run_* from any number of job threads.
 */
#ifndef IS_CHAIN_H
#define IS_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include <vips/vips.h>

#include "config.h"
#include "deadline.h"
#include "processor.h"

typedef enum { IS_STAGE_SOURCE = 0, IS_STAGE_BASE, IS_STAGE_RENDITION } is_stage_t;

typedef struct is_chain is_chain_t;

/* What a run needs besides its input: the record's attempt number (-1 when
 * unknown), the image's deadline and the limits an exec result must pass. */
typedef struct is_chain_ctx {
    int attempt;
    is_deadline_t *deadline;
    int64_t max_bytes, max_pixels;
    const char *fail_on;
} is_chain_ctx_t;

/* Builds the chain from cfg->processors_spec and cfg->processor_kv: loads
 * plugins, runs their init. Returns NULL with errstr when anything is
 * wrong (unknown type or stage, a processor.* key for a name not in
 * processors or unknown to an exec processor, missing path or command, a
 * plugin failing the ABI check of plugin.h, init failure); configured
 * secrets quoted in errstr are hidden. An empty spec gives an empty chain. */
is_chain_t *is_chain_new(const is_config_t *cfg, char *errstr, size_t errstr_size);
void is_chain_destroy(is_chain_t *chain);

/* Number of processors at a stage (chain may be NULL). */
int is_chain_count(const is_chain_t *chain, is_stage_t stage);

/* Source stage: on OK *out is the new payload, malloc'ed (caller frees), or
 * NULL when no processor runs at this stage (the payload is unchanged). */
is_proc_result_t is_chain_run_bytes(const is_chain_t *chain, const is_chain_ctx_t *ctx,
                                    const void *in, size_t len, void **out, size_t *out_len,
                                    char *errstr, size_t errstr_size);

/* Image stages: *out is a new reference on OK (it may equal in, reffed). */
is_proc_result_t is_chain_run_image(const is_chain_t *chain, is_stage_t stage,
                                    const is_chain_ctx_t *ctx, VipsImage *in, VipsImage **out,
                                    char *errstr, size_t errstr_size);

#endif
