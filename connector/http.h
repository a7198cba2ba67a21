/*
 * http.h - the worker's HTTP endpoints, served by libmicrohttpd on
 * http.listen:
 *
 *   GET /metrics   Prometheus text format (metrics.h)
 *   GET /healthz   200 while the poll loop runs, 503 once it has not run
 *                  for http.health.stall.ms (health.h); for liveness probes
 *   GET /readyz    200 when assigned and connected, 503 with the reason
 *                  otherwise; for readiness probes
 *
 * Bodies are one short text line (except /metrics). Other paths are 404,
 * other methods 405.
 *
 * Threads: libmicrohttpd runs two internal threads that accept and answer
 * (epoll; idle connections cost no thread); they only read the metrics and
 * health state, so a slow scraper never blocks the worker. Probes still
 * answer while hundreds of idle or slow connections are open: see the
 * limits in http.c.
 */
#ifndef IS_HTTP_H
#define IS_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct is_http is_http_t;

/* Binds addr ("HOST:PORT", "[V6ADDR]:PORT" or ":PORT" for every
 * interface; PORT 0 picks a free port) and starts serving. Returns NULL with
 * errstr naming http.listen and the reason (e.g. the address is in use). */
is_http_t *is_http_new(const char *addr, int64_t stall_ms, char *errstr, size_t errstr_size);

/* Stops serving and closes the socket. Accepts NULL. */
void is_http_destroy(is_http_t *h);

/* The bound address as "HOST:PORT", with the actual port when PORT was 0. */
const char *is_http_address(const is_http_t *h);

/* A listening socket (close-on-exec) for addr, whose bound "HOST:PORT" goes
 * to bound; or -1 with errstr naming key ("api.listen=...: reason"). For
 * other servers of the binary (`imgsink api`). */
int is_http_listen(const char *key, const char *addr, int *family, char *bound, size_t bound_size,
                   char *errstr, size_t errstr_size);

#endif
