/*
 * wit-server.h - devid-witness's HTTP server (libmicrohttpd): POST
 * /add-checkpoint and nothing else.
 *
 * Requests are served by a fixed pool of threads; the number of open
 * connections, in all and per client address, is bounded, and a
 * connection that does not deliver its request within the timeout is
 * closed, so that slow clients cannot stall the witness.  Bodies beyond
 * WIT_BODY_MAX are refused with 413 without being kept.
 */
#ifndef DEVID_WIT_SERVER_H
#define DEVID_WIT_SERVER_H

#include "errors.h"
#include "wit-witness.h"

#define WIT_THREADS_DEFAULT 4
#define WIT_CONNECTIONS_DEFAULT 256
#define WIT_PER_ADDRESS_DEFAULT 16
#define WIT_TIMEOUT_DEFAULT_S 10

struct wit_server_config {
	const char *listen;           /* ADDR:PORT or [ADDR]:PORT; port 0:
	                               * any free port */
	unsigned int threads;         /* 0: the defaults above */
	unsigned int max_connections;
	unsigned int per_address;
	unsigned int timeout_s;
	int quiet;                    /* no log line per request */
};

struct wit_server;

/* Starts serving w (not owned; it must outlive the server). */
int wit_server_start(const struct wit_server_config *cfg, struct wit *w,
    struct wit_server **out, struct err_ctx *e);

/* The address bound, "ADDR:PORT" or "[ADDR]:PORT". */
const char *wit_server_address(const struct wit_server *srv);

/* Stops accepting, finishes the requests in flight, frees srv.  NULL is
 * fine. */
void wit_server_stop(struct wit_server *srv);

/* One line on standard error, prefixed with the UTC time (ISO 8601). */
void wit_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* DEVID_WIT_SERVER_H */
