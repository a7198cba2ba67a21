/*
 * exec.c - one external program per image. See exec.h.
 *
 * stdin is a socketpair rather than a pipe so that writing to a program that
 * stopped reading gives EPIPE through send(MSG_NOSIGNAL) instead of a
 * SIGPIPE for the whole worker.
 *
 * posix_spawn rather than fork: glibc starts the child with CLONE_VFORK, so
 * a worker with gigabytes of decoded pixels is not copied (or overcommitted)
 * per program, and the child runs no code of ours between fork and exec.
 * Its closefrom action is close_range(3, ~0U, 0), falling back to closing
 * what /proc/self/fd lists (glibc 2.34 and later).
 */
#include "exec.h"

#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Raw stderr kept before redaction: larger than what errstr shows, so that
 * a secret cut by the window's start is cut again when the tail is taken. */
#define RAW_TAIL (8 * IS_EXEC_STDERR_TAIL)

static char *const default_env[] = {"PATH=/usr/bin:/bin", "LANG=C", NULL};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Keeps the last RAW_TAIL bytes written to it. */
static void tail_add(char *tail, size_t *n, const char *p, size_t len)
{
    if (len >= RAW_TAIL) {
        memcpy(tail, p + len - RAW_TAIL, RAW_TAIL);
        *n = RAW_TAIL;
        return;
    }
    if (*n + len > RAW_TAIL) {
        size_t drop = *n + len - RAW_TAIL;
        memmove(tail, tail + drop, *n - drop);
        *n -= drop;
    }
    memcpy(tail + *n, p, len);
    *n += len;
}

/* stderr's tail as one line for a DLQ header: control bytes become spaces,
 * secrets "[hidden]", then the last IS_EXEC_STDERR_TAIL bytes. */
static void tail_text(const char *tail, size_t n, const is_exec_opts_t *o, char *out,
                      size_t out_size)
{
    char line[2 * RAW_TAIL];
    size_t j = 0, len;
    while (n && (tail[n - 1] == '\n' || tail[n - 1] == ' '))
        n--;
    for (size_t i = 0; i < n && j + 1 < sizeof(line); i++)
        line[j++] = (unsigned char)tail[i] < 0x20 ? ' ' : tail[i];
    line[j] = '\0';
    is_exec_redact(line, sizeof(line), o->hide, o->nhide);
    len = strlen(line);
    snprintf(out, out_size, "%s",
             line + (len > IS_EXEC_STDERR_TAIL ? len - IS_EXEC_STDERR_TAIL : 0));
}

/* Words that make a NAME=VALUE pair secret (compared in lower case). */
static const char *const secret_words[] = {"secret",  "password",    "passwd",       "token",
                                           "apikey",  "api_key",     "api-key",      "credential",
                                           "private", "session_key", "authorization"};

static int name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

static int secret_name(const char *p, size_t n)
{
    char low[128];
    if (n >= sizeof(low))
        n = sizeof(low) - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)p[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
        if (strstr(low, secret_words[i]))
            return 1;
    return 0;
}

/* Appends n bytes to a growing string; on allocation failure *buf becomes
 * NULL for good (the caller then shows nothing rather than a secret). */
static void put(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (!*buf)
        return;
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *nb = realloc(*buf, c);
        if (!nb) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* text with every occurrence of value replaced (malloc'ed; NULL when out of
 * memory). */
static char *hide_value(const char *text, const char *value)
{
    size_t vl = strlen(value), len = 0, cap = strlen(text) + 64;
    char *b = malloc(cap);
    const char *q = text, *hit;
    if (!b)
        return NULL;
    *b = '\0';
    while ((hit = strstr(q, value))) {
        put(&b, &len, &cap, q, (size_t)(hit - q));
        put(&b, &len, &cap, "[hidden]", 8);
        q = hit + vl;
    }
    put(&b, &len, &cap, q, strlen(q));
    return b;
}

/* text with the VALUE of NAME=VALUE, NAME: VALUE and "NAME": "VALUE" hidden
 * for a secret-looking NAME (malloc'ed; NULL when out of memory). A value
 * runs to a blank, quote, ',', ';', '&' or '}'. */
static char *hide_pairs(const char *text)
{
    size_t len = 0, cap = strlen(text) + 64;
    char *a = malloc(cap);
    const char *p = text;
    if (!a)
        return NULL;
    *a = '\0';
    while (*p) {
        if (!name_char(*p)) {
            put(&a, &len, &cap, p++, 1);
            continue;
        }
        const char *e = p, *v;
        while (name_char(*e))
            e++;
        v = e;
        if (*v == '"' || *v == '\'')
            v++;
        while (*v == ' ')
            v++;
        if (!secret_name(p, (size_t)(e - p)) || (*v != '=' && *v != ':')) {
            put(&a, &len, &cap, p, (size_t)(e - p));
            p = e;
            continue;
        }
        v++;
        while (*v == ' ')
            v++;
        if (*v == '"' || *v == '\'')
            v++;
        const char *end = v;
        if (!strncmp(v, "[hidden]", 8)) /* a known value, already hidden */
            end += 8;
        else
            while (*end && !strchr(" \t\"',;&}", *end))
                end++;
        put(&a, &len, &cap, p, (size_t)(v - p));
        if (end > v)
            put(&a, &len, &cap, "[hidden]", 8);
        p = end;
    }
    return a;
}

void is_exec_redact(char *s, size_t size, const char *const *hide, size_t nhide)
{
    char *a = strdup(s), *b;
    for (size_t i = 0; a && i < nhide; i++) {
        if (!hide[i] || strlen(hide[i]) < 4 || !strstr(a, hide[i]))
            continue;
        b = hide_value(a, hide[i]);
        free(a);
        a = b;
    }
    b = a ? hide_pairs(a) : NULL;
    /* Out of memory: nothing rather than a secret. */
    snprintf(s, size, "%s", b ? b : "(not shown: out of memory)");
    free(a);
    free(b);
}

/* Non-zero once pid has exited, without reaping it (WNOWAIT): while it is
 * a zombie its process group id cannot be reused, so kill(-pid) reaches
 * only what the program started. Returns 1 exited, 0 running, -1 failed
 * (errno). EINTR is retried. */
static int has_exited(pid_t pid, int block)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (!waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | (block ? 0 : WNOHANG)))
            return si.si_pid == pid;
        if (errno != EINTR)
            return -1;
    }
}

/* Reaps pid into *status; EINTR is retried. 0 or -1 (errno). */
static int reap(pid_t pid, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, 0);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* The error text, the command quoted and everything redacted. */
static void say(char *errstr, size_t errstr_size, const is_exec_opts_t *o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(char *errstr, size_t errstr_size, const is_exec_opts_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    is_exec_redact(errstr, errstr_size, o->hide, o->nhide);
}

is_exec_status_t is_exec_run(const char *command, const void *in, size_t len,
                             const is_exec_opts_t *o, void **out, size_t *out_len, char *errstr,
                             size_t errstr_size)
{
    int sin[2] = {-1, -1}, sout[2] = {-1, -1}, serr[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defs;
    pid_t pid = -1;
    is_exec_status_t st = IS_EXEC_SPAWN_ERROR;
    char *buf = NULL, tail[RAW_TAIL];
    size_t blen = 0, cap = 0, tlen = 0, off = 0;
    int64_t deadline = is_now_ms() + o->timeout_ms;
    int status = 0, spawned_attrs = 0, timed_out = 0, too_large = 0, io_error = 0;
    int exited = 0, wait_errno = 0;

    *out = NULL;
    *out_len = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sin) || pipe2(sout, O_CLOEXEC) ||
        pipe2(serr, O_CLOEXEC)) {
        snprintf(errstr, errstr_size, "cannot create pipes: %s", strerror(errno));
        goto done;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    spawned_attrs = 1;
    /* After the dup2s: every other descriptor of the worker is closed in
     * the child, whether or not its owner made it close-on-exec. */
    if (posix_spawn_file_actions_adddup2(&fa, sin[1], 0) ||
        posix_spawn_file_actions_adddup2(&fa, sout[1], 1) ||
        posix_spawn_file_actions_adddup2(&fa, serr[1], 2) ||
        posix_spawn_file_actions_addclosefrom_np(&fa, 3)) {
        snprintf(errstr, errstr_size, "cannot prepare '%s': %s", command, strerror(errno));
        goto done;
    }
    /* The worker ignores SIGPIPE and job threads may block signals; the
     * program starts with every signal at its default and unblocked (a
     * SIGCHLD ignored here would break the shell's own waiting), in a
     * process group of its own to be killed as a whole. */
    sigemptyset(&none);
    sigfillset(&defs);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    int err = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, o->envp ? o->envp : default_env);
    if (err) {
        pid = -1;
        say(errstr, errstr_size, o, "cannot start '%s': %s", command, strerror(err));
        goto done;
    }
    close_fd(&sin[1]);
    close_fd(&sout[1]);
    close_fd(&serr[1]);
    fcntl(sin[0], F_SETFL, O_NONBLOCK);
    fcntl(sout[0], F_SETFL, O_NONBLOCK);
    fcntl(serr[0], F_SETFL, O_NONBLOCK);
    if (len == 0)
        close_fd(&sin[0]);

    while (sout[0] >= 0 || serr[0] >= 0) {
        struct pollfd p[3] = {{sin[0], POLLOUT, 0}, {sout[0], POLLIN, 0}, {serr[0], POLLIN, 0}};
        int64_t left = deadline - is_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        /* Once the program has exited, what it left running goes too: a
         * background child holding stdout open would otherwise keep the
         * run going until the timeout. */
        if (!exited) {
            int e = has_exited(pid, 0);
            if (e < 0) {
                wait_errno = errno;
                break;
            }
            if (e) {
                exited = 1;
                kill(-pid, SIGKILL);
            }
        }
        if (poll(p, 3, (int)(left > 100 ? 100 : left)) < 0 && errno != EINTR) {
            snprintf(errstr, errstr_size, "poll: %s", strerror(errno));
            io_error = 1;
            break;
        }
        if (sin[0] >= 0 && p[0].revents) {
            ssize_t n = send(sin[0], (const char *)in + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            /* EPIPE: the program stopped reading; what it wrote decides. */
            if (off == len || (n < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&sin[0]);
        }
        if (sout[0] >= 0 && p[1].revents) {
            if (cap - blen < 65536) {
                char *nb = realloc(buf, cap = cap ? cap * 2 : 262144);
                if (!nb) {
                    snprintf(errstr, errstr_size, "out of memory reading the program's output");
                    io_error = 1;
                    break;
                }
                buf = nb;
            }
            ssize_t n = read(sout[0], buf + blen, cap - blen);
            if (n > 0)
                blen += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                close_fd(&sout[0]);
            if (blen > o->max_out) {
                too_large = 1;
                break;
            }
        }
        if (serr[0] >= 0 && p[2].revents) {
            char eb[4096];
            ssize_t n = read(serr[0], eb, sizeof(eb));
            if (n > 0)
                tail_add(tail, &tlen, eb, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                close_fd(&serr[0]);
        }
    }
    /* The program closed its output (or we stopped reading): it has until
     * the deadline to exit. */
    while (!exited && !wait_errno) {
        int e = has_exited(pid, 0);
        if (e < 0) {
            wait_errno = errno;
            break;
        }
        if (e)
            break;
        if (timed_out || too_large || io_error || is_now_ms() >= deadline) {
            timed_out = !too_large && !io_error;
            kill(-pid, SIGKILL);
            if (has_exited(pid, 1) < 0)
                wait_errno = errno;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* The program is a zombie now (or was reaped by someone else, when
     * waitid failed: then its group id may belong to another process and is
     * not signalled). Its group goes, then it is reaped. */
    if (!wait_errno) {
        kill(-pid, SIGKILL);
        if (reap(pid, &status))
            wait_errno = errno;
    }
    pid = -1;
    if (wait_errno) {
        say(errstr, errstr_size, o, "cannot learn how '%s' ended (waitpid: %s)", command,
            strerror(wait_errno));
        st = IS_EXEC_WAIT_ERROR;
    } else if (io_error) {
        st = IS_EXEC_SPAWN_ERROR;
    } else if (timed_out) {
        say(errstr, errstr_size, o, "'%s' did not finish within %lld ms", command,
            (long long)o->timeout_ms);
        st = IS_EXEC_TIMEOUT;
    } else if (too_large) {
        say(errstr, errstr_size, o, "'%s' wrote more than %zu bytes", command, o->max_out);
        st = IS_EXEC_TOO_LARGE;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char t[IS_EXEC_STDERR_TAIL + 1];
        tail_text(tail, tlen, o, t, sizeof(t));
        if (WIFSIGNALED(status))
            say(errstr, errstr_size, o, "'%s' was killed by signal %d: %s", command,
                WTERMSIG(status), t);
        else
            say(errstr, errstr_size, o, "'%s' exited with status %d: %s", command,
                WEXITSTATUS(status), t);
        st = IS_EXEC_FAILED;
    } else {
        *out = buf;
        *out_len = blen;
        buf = NULL;
        st = IS_EXEC_OK;
    }
done:
    if (pid > 0) {
        kill(-pid, SIGKILL);
        reap(pid, &status);
    }
    if (spawned_attrs) {
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
    }
    for (int i = 0; i < 2; i++) {
        close_fd(&sin[i]);
        close_fd(&sout[i]);
        close_fd(&serr[i]);
    }
    free(buf);
    return st;
}
