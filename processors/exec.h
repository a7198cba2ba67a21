/*
 * exec.h - runs an external program on one image: the image on its stdin,
 * the result from its stdout, within a time limit. For the company's code
 * written in other languages (processor type "exec").
 *
 * The program gets nothing of the worker but the image:
 * - its environment is only what the caller passes (PATH=/usr/bin:/bin and
 *   LANG=C when envp is NULL), never the worker's own, which holds
 *   IMGSINK_S3_SECRET_KEY and the like;
 * - every descriptor but 0, 1 and 2 is closed before it starts (libcurl's
 *   sockets are not close-on-exec), and every signal is at its default;
 * - it runs in a process group of its own, which is killed as a whole on
 *   timeout and once the program has exited, so nothing it started in the
 *   background outlives the run; the program is always reaped;
 * - its stderr reaches errstr only as a bounded tail with the hide[] values
 *   and anything shaped like NAME=VALUE for a secret-looking NAME
 *   (password, secret, token, credential, ...) replaced by "[hidden]". The
 *   command is quoted in errstr the same way.
 *
 * Threads: any number of job threads at once. Every descriptor is created
 * close-on-exec, so a program started by one thread never holds another
 * thread's pipes open.
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
    IS_EXEC_WAIT_ERROR,  /* its exit status could not be learned (waitpid failed, e.g. SIGCHLD
                            ignored in this process): whatever it wrote is not used */
} is_exec_status_t;

typedef struct is_exec_opts {
    int64_t timeout_ms;      /* the program's group is killed after this */
    size_t max_out;          /* stdout limit */
    char *const *envp;       /* the program's whole environment, NULL-terminated "K=V";
                                NULL: PATH=/usr/bin:/bin and LANG=C */
    const char *const *hide; /* nhide values never shown in errstr (secrets) */
    size_t nhide;
} is_exec_opts_t;

/* Stderr bytes kept for errstr (the last ones, after redaction). */
#define IS_EXEC_STDERR_TAIL 512

/* Runs `/bin/sh -c command` with in[0..len) on stdin. On IS_EXEC_OK *out is
 * malloc'ed (caller frees; may be NULL when stdout was empty). */
is_exec_status_t is_exec_run(const char *command, const void *in, size_t len,
                             const is_exec_opts_t *opts, void **out, size_t *out_len, char *errstr,
                             size_t errstr_size);

/* Replaces, in the NUL-terminated text s (at most size bytes with the NUL),
 * each of the nhide values (4 bytes or longer) and the value of anything
 * shaped like NAME=VALUE or NAME: VALUE whose NAME looks like a secret's
 * with "[hidden]"; what no longer fits is cut. */
void is_exec_redact(char *s, size_t size, const char *const *hide, size_t nhide);

#endif
