/*
 * exec.c - one external program per image. See exec.h.
 *
 * stdin is a socketpair rather than a pipe so that writing to a program that
 * stopped reading gives EPIPE through send(MSG_NOSIGNAL) instead of a
 * SIGPIPE for the whole worker.
 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TAIL 512 /* bytes of stderr kept for the reason */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Keeps the last TAIL bytes written to it. */
static void tail_add(char *tail, size_t *n, const char *p, size_t len)
{
    if (len >= TAIL) {
        memcpy(tail, p + len - TAIL, TAIL);
        *n = TAIL;
        return;
    }
    if (*n + len > TAIL) {
        size_t drop = *n + len - TAIL;
        memmove(tail, tail + drop, *n - drop);
        *n -= drop;
    }
    memcpy(tail + *n, p, len);
    *n += len;
}

/* stderr's tail as one line for a DLQ header: control bytes become spaces. */
static void tail_text(const char *tail, size_t n, char *out, size_t out_size)
{
    size_t j = 0;
    while (n && (tail[n - 1] == '\n' || tail[n - 1] == ' '))
        n--;
    for (size_t i = 0; i < n && j + 1 < out_size; i++)
        out[j++] = (unsigned char)tail[i] < 0x20 ? ' ' : tail[i];
    out[j] = '\0';
}

is_exec_status_t is_exec_run(const char *command, const void *in, size_t len, int64_t timeout_ms,
                             size_t max_out, void **out, size_t *out_len, char *errstr,
                             size_t errstr_size)
{
    int sin[2] = {-1, -1}, sout[2] = {-1, -1}, serr[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defs;
    pid_t pid = -1;
    is_exec_status_t st = IS_EXEC_SPAWN_ERROR;
    char *buf = NULL, tail[TAIL];
    size_t blen = 0, cap = 0, tlen = 0, off = 0;
    int64_t deadline = now_ms() + timeout_ms;
    int status = 0, spawned_attrs = 0, timed_out = 0, too_large = 0, io_error = 0;

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
    posix_spawn_file_actions_adddup2(&fa, sin[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, serr[1], 2);
    /* The worker ignores SIGPIPE and job threads may block signals; the
     * program gets the defaults, and its own process group to be killed
     * as a whole. */
    sigemptyset(&none);
    sigemptyset(&defs);
    sigaddset(&defs, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    char *argv[] = {"sh", "-c", (char *)command, NULL};
    int err = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    if (err) {
        pid = -1;
        snprintf(errstr, errstr_size, "cannot start '%s': %s", command, strerror(err));
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
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
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
            if (blen > max_out) {
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
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) {
            status = ws;
            pid = -1;
            break;
        }
        if (r < 0 && errno != EINTR) {
            pid = -1;
            break;
        }
        if (timed_out || too_large || io_error || now_ms() >= deadline) {
            timed_out = !too_large && !io_error;
            kill(-pid, SIGKILL);
            waitpid(pid, &ws, 0);
            pid = -1;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (io_error) {
        st = IS_EXEC_SPAWN_ERROR;
    } else if (timed_out) {
        snprintf(errstr, errstr_size, "'%s' did not finish within %lld ms", command,
                 (long long)timeout_ms);
        st = IS_EXEC_TIMEOUT;
    } else if (too_large) {
        snprintf(errstr, errstr_size, "'%s' wrote more than %zu bytes", command, max_out);
        st = IS_EXEC_TOO_LARGE;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char t[TAIL + 1];
        tail_text(tail, tlen, t, sizeof(t));
        if (WIFSIGNALED(status))
            snprintf(errstr, errstr_size, "'%s' was killed by signal %d: %s", command,
                     WTERMSIG(status), t);
        else
            snprintf(errstr, errstr_size, "'%s' exited with status %d: %s", command,
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
        waitpid(pid, NULL, 0);
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
