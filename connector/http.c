/*
 * http.c - /metrics, /healthz and /readyz over libmicrohttpd. See http.h.
 *
 * The listening socket is opened here rather than by libmicrohttpd so a
 * failure to bind reports errno (address in use, permission denied) and the
 * port picked for PORT 0 can be read back.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "health.h"
#include "log.h"
#include "metrics.h"

static void bound_address(int fd, char *out, size_t out_size);

struct is_http {
    struct MHD_Daemon *mhd;
    int64_t stall_ms;
    char address[80];
};

/* libmicrohttpd's own error messages, into the JSON log, at most one a
 * second: a flood of broken clients ("closed by remote side with incomplete
 * request") must not flood the log too. Its threads. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static atomic_llong last_s;
    static atomic_int skipped;
    char msg[512];
    (void)cls;
    long long now = (long long)time(NULL), last = atomic_load(&last_s);
    if (now == last || !atomic_compare_exchange_strong(&last_s, &last, now)) {
        atomic_fetch_add(&skipped, 1);
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    int n = atomic_exchange(&skipped, 0);
    IS_WARN("http", n ? json_pack("{s:i}", "messages_skipped", n) : NULL, "%s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body,
                             size_t len, const char *ctype)
{
    /* MHD_RESPMEM_MUST_FREE: the response frees body. */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_line(struct MHD_Connection *conn, unsigned int status,
                                  const char *line)
{
    char *body = NULL;
    int n = asprintf(&body, "%s\n", line);
    if (n < 0)
        return MHD_NO;
    return reply(conn, status, body, (size_t)n, "text/plain; charset=utf-8");
}

/* The metrics, then liveness and readiness as gauges, evaluated now: a
 * stalled poll loop still answers /metrics from this thread, so an alert on
 * imgsink_live catches what a liveness probe would. NULL when out of memory. */
static char *metrics_text(const is_http_t *h, size_t *len)
{
    char why[1024], *buf = NULL;
    size_t n = 0;
    char *text = is_metrics_render(NULL);
    FILE *fp = text ? open_memstream(&buf, &n) : NULL;

    if (!fp) {
        free(text);
        return NULL;
    }
    fputs(text, fp);
    free(text);
    fprintf(fp,
            "# HELP imgsink_live 1 while the poll loop runs (/healthz answers 200), 0 once it "
            "has stalled for http.health.stall.ms.\n"
            "# TYPE imgsink_live gauge\nimgsink_live %d\n"
            "# HELP imgsink_ready 1 when assigned and connected (/readyz answers 200).\n"
            "# TYPE imgsink_ready gauge\nimgsink_ready %d\n",
            is_health_live(h->stall_ms, why, sizeof(why)),
            is_health_ready(h->stall_ms, why, sizeof(why)));
    if (fclose(fp)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* One request. libmicrohttpd's thread. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    is_http_t *h = cls;
    char why[1024];
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;

    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_line(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    if (!strcmp(url, "/metrics")) {
        size_t len = 0;
        char *text = metrics_text(h, &len);
        if (!text)
            return reply_line(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return reply(conn, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!strcmp(url, "/healthz")) {
        int ok = is_health_live(h->stall_ms, why, sizeof(why));
        return reply_line(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
    }
    if (!strcmp(url, "/readyz")) {
        int ok = is_health_ready(h->stall_ms, why, sizeof(why));
        return reply_line(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
    }
    return reply_line(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz");
}

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT". */
static int split_listen(const char *addr, char *host, size_t hsz, char *port, size_t psz)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= hsz)
            return -1;
        snprintf(host, hsz, "%.*s", (int)(rb - addr - 1), addr + 1);
        colon = rb + 1;
    } else {
        if (!(colon = strrchr(addr, ':')) || (size_t)(colon - addr) >= hsz ||
            memchr(addr, ':', (size_t)(colon - addr)))
            return -1;
        snprintf(host, hsz, "%.*s", (int)(colon - addr), addr);
    }
    if (!colon[1] || strlen(colon + 1) >= psz ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    snprintf(port, psz, "%s", colon + 1);
    return atoi(port) <= 65535 ? 0 : -1;
}

/* A listening socket for addr, or -1 with errstr naming key. */
static int open_listener_key(const char *key, const char *addr, int *family, char *errstr,
                             size_t errstr_size)
{
    char host[256], port[8];
    struct addrinfo hints = {0}, *res = NULL;
    int fd = -1, one = 1, rc;

    if (split_listen(addr, host, sizeof(host), port, sizeof(port))) {
        snprintf(errstr, errstr_size,
                 "%s=%s: expected HOST:PORT, [IPV6]:PORT or :PORT (empty disables)", key, addr);
        return -1;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, &res))) {
        snprintf(errstr, errstr_size, "%s=%s: %s", key, addr, gai_strerror(rc));
        return -1;
    }
    /* The first address that binds: a name can resolve to an IPv6 address
     * on a host without IPv6. */
    int err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN)) {
            err = err ? err : errno; /* the first address's reason is the one to report */
            if (fd >= 0)
                close(fd);
            fd = -1;
            continue;
        }
        *family = ai->ai_family;
    }
    if (fd < 0)
        snprintf(errstr, errstr_size, "%s=%s: %s%s", key, addr, strerror(err),
                 err == EADDRINUSE ? " (another process listens there: set it to another "
                                     "HOST:PORT, PORT 0 for any free port, or empty to disable "
                                     "the endpoints)"
                                   : "");
    freeaddrinfo(res);
    return fd;
}

static int open_listener(const char *addr, int *family, char *errstr, size_t errstr_size)
{
    return open_listener_key("http.listen", addr, family, errstr, errstr_size);
}

int is_http_listen(const char *key, const char *addr, int *family, char *bound, size_t bound_size,
                   char *errstr, size_t errstr_size)
{
    int fd = open_listener_key(key, addr, family, errstr, errstr_size);
    if (fd >= 0)
        bound_address(fd, bound, bound_size);
    return fd;
}

static void bound_address(int fd, char *out, size_t out_size)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            port = ntohs(s6->sin6_port);
            snprintf(out, out_size, "[%s]:%d", ip, port);
            return;
        }
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
    }
    snprintf(out, out_size, "%s:%d", ip, port);
}

/*
 * Probes must answer while careless or hostile clients hold connections
 * (kubelet probes and Prometheus share the port with whatever else reaches
 * it). The internal threads poll with epoll, so idle connections cost no
 * thread, and the handlers never block:
 * - connections: many, up to half the file descriptors the process may
 *   open, so a flood cannot take the sockets the worker needs for Kafka and
 *   the store; at the limit libmicrohttpd stops accepting (the kernel's
 *   backlog holds the rest) until one closes;
 * - timeout: a connection idle for HTTP_IDLE_TIMEOUT_S is closed (a probe
 *   sends its request at once; the kubelet's timeout is 1 s by default);
 * - per client address: half the connections, so one address cannot take
 *   them all. Not less: the kubelet probes from the node's address, which
 *   every host-network pod and NAT'd client shares (and a test's flood and
 *   probes both come from 127.0.0.1);
 * - two threads: a slow /metrics render does not hold the probes.
 * A client that trickles a request byte by byte within the idle timeout
 * keeps its connection: only the connection limit bounds those.
 */
#define HTTP_MAX_CONNECTIONS 1000u
#define HTTP_IDLE_TIMEOUT_S  3u
#define HTTP_THREADS         2u

static unsigned int connection_limit(void)
{
    struct rlimit rl;
    unsigned int n = HTTP_MAX_CONNECTIONS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < n)
        n = (unsigned int)(rl.rlim_cur / 2);
    return n < 64 ? 64 : n;
}

is_http_t *is_http_new(const char *addr, int64_t stall_ms, char *errstr, size_t errstr_size)
{
    int family = AF_INET;
    int fd = open_listener(addr, &family, errstr, errstr_size);
    is_http_t *h;

    if (fd < 0)
        return NULL;
    if (!(h = calloc(1, sizeof(*h)))) {
        close(fd);
        snprintf(errstr, errstr_size, "http: out of memory");
        return NULL;
    }
    h->stall_ms = stall_ms;
    bound_address(fd, h->address, sizeof(h->address));
    unsigned int flags =
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (family == AF_INET6 ? MHD_USE_IPv6 : 0);
    unsigned int limit = connection_limit();
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                              NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                              limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, limit / 2,
                              MHD_OPTION_CONNECTION_TIMEOUT, HTTP_IDLE_TIMEOUT_S,
                              MHD_OPTION_THREAD_POOL_SIZE, HTTP_THREADS, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(errstr, errstr_size, "http.listen=%s: libmicrohttpd could not start", addr);
        close(fd);
        free(h);
        return NULL;
    }
    return h;
}

void is_http_destroy(is_http_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->mhd); /* closes the listening socket too */
    free(h);
}

const char *is_http_address(const is_http_t *h)
{
    return h->address;
}
