/*
 * dir-server.h - the directory's HTTP layer on libmicrohttpd.
 *
 * dir-server.c owns everything about HTTP: the daemon and its thread pool,
 * optional TLS, reading request bodies up to a size cap, the per-client
 * limits (request rate, open connections, a deadline for receiving each
 * request), JSON responses and errors in the shape of PROTOCOL.md section
 * 5, one log line per request, long-poll waiters (suspended connections
 * woken by a change or by their deadline, never a thread each), a worker
 * pool for CPU-heavy work (password hashing) that runs off the HTTP
 * threads, and a draining shutdown.  What a request means is dir-api.c's
 * business: the server hands every request that passed the checks above
 * to one handler function.
 *
 * Large uploads (blobs) bypass the body buffer: a headers function sees
 * each request before its body and may answer at once or stream the
 * body to a sink of its own (dir_request_stream); large downloads are
 * files sent without copying (dir_reply_file).
 *
 * Clients are counted by network (dir-net.h: an IPv4 address, an IPv6
 * /64); behind a reverse proxy (behind_proxy) by the last address of
 * X-Forwarded-For, which the proxy appends.
 */
#ifndef DEVID_DIR_SERVER_H
#define DEVID_DIR_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define DIR_BODY_MAX_DEFAULT ((size_t)1024 * 1024)
#define DIR_THREADS_DEFAULT 4
#define DIR_RATE_DEFAULT 50          /* requests per second per client */
#define DIR_BURST_DEFAULT 100        /* bucket size */
#define DIR_CONNECTIONS_DEFAULT 4000
#define DIR_WAIT_MAX_S 60            /* longest long-poll */
#define DIR_DRAIN_MS 10000           /* how long shutdown waits */
#define DIR_PER_ADDRESS_DEFAULT 32   /* open connections per network */
#define DIR_UNLIMITED UINT32_MAX     /* max_per_address: no limit */
#define DIR_REQUEST_TIMEOUT_DEFAULT_S 30
#define DIR_THROTTLE_DELAY_DEFAULT_MS 1000
#define DIR_THROTTLE_DELAY_MAX_MS 10000
/* Larger bodies are read only after preauth() accepted the headers. */
#define DIR_BODY_PREAUTH_MAX ((size_t)8192)

struct dir_server;
struct dir_request;

/*
 * Handles one request.  It either answers (dir_reply_json/dir_reply_error)
 * or calls dir_request_wait() and returns without an answer; it is then
 * called again with the same request when a watched key changes or the
 * deadline passes.  The return value is ignored.
 */
typedef void (*dir_handler_fn)(void *arg, struct dir_request *rq);

/*
 * Decides, from the headers alone, whether a request may send a body
 * larger than DIR_BODY_PREAUTH_MAX (or a chunked one): 0 lets the server
 * read it; anything else means the function answered (usually 401) and
 * the body is never read.
 */
typedef int (*dir_preauth_fn)(void *arg, struct dir_request *rq);

/* A job for the worker pool (dir_request_run_job). */
typedef void (*dir_job_fn)(void *arg);

/*
 * Looks at every request once its headers are in (after the rate limit,
 * before the body size checks and preauth).  It may answer (the body is
 * then never read; return non-zero), claim the body as a stream with
 * dir_request_stream() (return 0), or do neither (return 0: the request
 * goes the usual way, its body buffered up to max_body).
 */
typedef int (*dir_headers_fn)(void *arg, struct dir_request *rq);

/*
 * Receives the next len bytes of a streamed body.  0 goes on; anything
 * else refuses the body: the sink gets no more bytes, the server reads
 * and throws away the rest up to DIR_STREAM_DISCARD_MAX bytes (so that
 * the client gets the handler's answer) or cuts the connection beyond,
 * and the handler is still called once the body ended; the sink keeps
 * its own reason.
 */
typedef int (*dir_sink_fn)(void *arg, const uint8_t *p, size_t len);

/* How much of a refused streamed body is read and thrown away. */
#define DIR_STREAM_DISCARD_MAX ((uint64_t)1024 * 1024)
/* The least rate a streamed body must keep: its receive deadline is
 * request_timeout_s plus its length at this rate. */
#define DIR_STREAM_MIN_RATE ((uint64_t)64 * 1024)

struct dir_server_config {
	const char *listen;          /* "ADDR:PORT", "[ADDR]:PORT"; port 0 ok */
	const char *tls_cert;        /* PEM files, both or neither */
	const char *tls_key;
	size_t max_body;             /* 0: DIR_BODY_MAX_DEFAULT */
	unsigned int threads;        /* 0: DIR_THREADS_DEFAULT */
	unsigned int rate;           /* per client per second; 0: no limit */
	unsigned int burst;          /* 0: 2 * rate */
	unsigned int max_connections;/* 0: DIR_CONNECTIONS_DEFAULT */
	unsigned int max_per_address;/* per network; 0: default,
	                                DIR_UNLIMITED: none */
	unsigned int request_timeout_s; /* 0: DIR_REQUEST_TIMEOUT_DEFAULT_S */
	unsigned int job_threads;    /* 0: one per online processor */
	unsigned int job_queue;      /* waiting jobs; 0: DIR_POOL_QUEUE_DEFAULT */
	unsigned int throttle_delay_ms; /* how long 429s are held (as is) */
	int behind_proxy;            /* client = last X-Forwarded-For entry */
	int quiet;                   /* no request log lines */
	dir_handler_fn handler;
	dir_preauth_fn preauth;      /* NULL: large bodies from anyone */
	dir_headers_fn headers;      /* NULL: no streamed bodies */
	void *handler_arg;           /* for handler and preauth */
};

/*
 * Starts serving.  On success *out is a running server; the bound address
 * (with the real port when 0 was asked for) is in dir_server_address().
 * TLS files are read once here.
 */
int dir_server_start(const struct dir_server_config *cfg,
    struct dir_server **out, struct err_ctx *e);

/* "127.0.0.1:8443" or "[::1]:8443", owned by the server. */
const char *dir_server_address(const struct dir_server *srv);

/*
 * Stops accepting connections (new ones are closed at once), answers every
 * waiting long-poll, waits up to DIR_DRAIN_MS for requests in flight to
 * finish (jobs of the worker pool included; answers say "Connection:
 * close" meanwhile), runs the jobs still queued, then stops the daemon and
 * frees srv.  NULL is fine.
 */
void dir_server_stop(struct dir_server *srv);

/*
 * Wakes every request waiting on key (dir_request_watch); called after a
 * change was committed.  Safe from any thread.
 */
void dir_server_notify(struct dir_server *srv, const char *key);

/*
 * Wakes every request waiting on a key (held answers keep waiting for
 * their delay): for when the changes are not known one by one.  Safe
 * from any thread; NULL is fine.
 */
void dir_server_notify_all(struct dir_server *srv);

/*
 * Claims rq's body as a stream, from a dir_headers_fn: the body must be
 * exactly length bytes (the announced Content-Length); each piece goes
 * to sink(arg, ...) as it arrives and nothing is buffered.  max_body and
 * preauth do not apply, but the request must arrive whole within
 * request_timeout_s + length / DIR_STREAM_MIN_RATE seconds.  Once the
 * body ended the handler is called as for any request and learns from
 * dir_request_stream_received() whether the whole body reached the sink.
 * A connection that ends before never reaches the handler: the request
 * state's free function (dir_request_set_state) is where a sink throws
 * away what it kept.
 */
void dir_request_stream(struct dir_request *rq, uint64_t length,
    dir_sink_fn sink, void *arg);
/* The bytes the sink accepted; 1 in *complete when that is the whole
 * announced length and the sink refused nothing. */
uint64_t dir_request_stream_received(const struct dir_request *rq,
    int *complete);

/* --- request accessors, valid during a handler call --- */

const char *dir_request_method(const struct dir_request *rq);
/* The decoded path, e.g. "/v1/accounts/alice@example.org/devices". */
const char *dir_request_path(const struct dir_request *rq);
/* A query argument or header value, or NULL. */
const char *dir_request_query(const struct dir_request *rq, const char *name);
const char *dir_request_header(const struct dir_request *rq,
    const char *name);
/* The body bytes (not NUL-terminated; may be empty). */
const uint8_t *dir_request_body(const struct dir_request *rq, size_t *len);
/* The client's numeric address (for logs). */
const char *dir_request_client(const struct dir_request *rq);
/* The client's network, the key of every per-client limit (dir-net.h). */
const char *dir_request_network(const struct dir_request *rq);
/*
 * HTTP Basic credentials: new strings in *user and *pw (the caller wipes
 * the password and frees both with dir_request_free_credentials), or
 * ERR_NOT_FOUND when the request carries none.
 */
int dir_request_basic_auth(struct dir_request *rq, char **user, char **pw,
    size_t *pw_len);
void dir_request_free_credentials(char *user, char *pw, size_t pw_len);

/* A pointer the handler may keep across calls for one request, freed
 * with the given function when the request ends. */
void *dir_request_state(const struct dir_request *rq);
void dir_request_set_state(struct dir_request *rq, void *state,
    void (*free_fn)(void *));

/*
 * Long-poll.  dir_request_watch() registers interest in key before the
 * handler looks at the data, so a change committed in between is not
 * missed.  dir_request_wait() then asks to be called again when key
 * changes or, at the latest, wait_s seconds after the first wait of this
 * request.  dir_request_expired() is 1 once that deadline passed or the
 * server is shutting down.
 */
int dir_request_watch(struct dir_request *rq, const char *key);
void dir_request_wait(struct dir_request *rq, unsigned int wait_s);
int dir_request_expired(const struct dir_request *rq);

/*
 * Runs fn(arg) on the server's worker pool, off the HTTP threads.  On 0
 * the handler returns without answering and is called again for rq once
 * fn returned (fn must not touch rq; it hands its result over through arg,
 * e.g. the request state).  ERR_TOO_LARGE when the pool's queue is full,
 * ERR_DENIED when the server is stopping, ERR_ALLOC: fn will not run and
 * the handler answers (503) itself.
 */
int dir_request_run_job(struct dir_request *rq, dir_job_fn fn, void *arg);

/*
 * Answers with status and body (takes ownership of body, which may be
 * NULL for an empty object).  Only the first answer counts.
 */
void dir_reply_json(struct dir_request *rq, unsigned int status,
    json_t *body);
/*
 * Answers with status and a JSON text made by the caller (takes ownership
 * of json, a malloc'd array of len bytes, which must be one JSON value):
 * for answers assembled from stored texts without parsing them again.
 * Only the first answer counts.
 */
void dir_reply_text(struct dir_request *rq, unsigned int status, char *json,
    size_t len);

/*
 * Answers with length bytes of the open file fd from offset, sent
 * without copying (sendfile), as application/octet-stream with
 * Content-Length; a 206 also says "Content-Range: bytes
 * offset-(offset+length-1)/total".  Takes ownership of fd (closed when
 * sent, or at once when an answer was already given).  Only the first
 * answer counts.
 */
void dir_reply_file(struct dir_request *rq, unsigned int status, int fd,
    uint64_t offset, uint64_t length, uint64_t total);

/* A 416 answer (JSON error "range_not_satisfiable") for a range past the
 * end of total bytes, with the Content-Range header that names total
 * as the size (RFC 9110, section 14.4). */
void dir_reply_range_error(struct dir_request *rq, uint64_t total);

/*
 * Answers with {"error": {"code": code, "message": ...}}.  For 401 the
 * WWW-Authenticate header names the scheme the endpoint expects, which
 * the handler sets with dir_reply_auth_scheme() first.
 */
void dir_reply_error(struct dir_request *rq, unsigned int status,
    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void dir_reply_auth_scheme(struct dir_request *rq, const char *scheme);

/*
 * Sends the answer given (or to be given) to rq only after the server's
 * throttle delay (throttle_delay_ms), holding the connection suspended,
 * not a thread.  For refusals of clients that hammer: a 429 that comes at
 * once invites the next request at once.  Not held while stopping.
 */
void dir_reply_hold(struct dir_request *rq);

/* Adds "Retry-After: seconds" to the answer (429 and 503 get 1 unless
 * set). */
void dir_reply_retry_after(struct dir_request *rq, unsigned int seconds);

/* The error code word and HTTP status for an ERR_* code. */
unsigned int dir_status_for(int err, const char **code);

#endif /* DEVID_DIR_SERVER_H */
