/*
 * exec.h - runs an external program on one image: the image on its stdin,
 * the result from its stdout, within a time limit. For the company's code
 * written in other languages (processor type "exec").
 *
 * Threads: any number of job threads at once. Every descriptor is created
 * close-on-exec, so a program started by one thread never holds another
 * thread's pipes open. The program runs in its own process group, which is
 * killed as a whole on timeout.
 */
#ifndef IS_EXEC_H
#define IS_EXEC_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    IS_EXEC_OK = 0,      /* exit status 0; *out holds stdout */
    IS_EXEC_TIMEOUT,     /* killed after timeout_ms */
    IS_EXEC_FAILED,      /* non-zero exit or killed by a signal: errstr holds stderr's tail */
    IS_EXEC_TOO_LARGE,   /* stdout exceeded max_out bytes */
    IS_EXEC_SPAWN_ERROR, /* could not start (errstr says why) */
} is_exec_status_t;

/* Runs `/bin/sh -c command` with in[0..len) on stdin. On IS_EXEC_OK *out is
 * malloc'ed (caller frees; may be NULL when stdout was empty). */
is_exec_status_t is_exec_run(const char *command, const void *in, size_t len, int64_t timeout_ms,
                             size_t max_out, void **out, size_t *out_len, char *errstr,
                             size_t errstr_size);

#endif
