/*
 * dir-server.c - HTTP for devid-directory on libmicrohttpd.
 *
 * Threads: libmicrohttpd runs a pool of polling threads that call
 * on_request(); one more thread here (the timer) resumes long-polls whose
 * deadline passed.  A long-poll is a suspended connection in the waiter
 * list, so thousands of idle clients cost memory, not threads.
 *
 * Waking without losing a change: a handler first registers the key it
 * watches (dir_request_watch), then reads the data, then asks to wait.
 * dir_server_notify() marks every registered request of the key as woken,
 * suspended or not.  on_request() suspends a connection only while holding
 * the waiter lock and only when it was not woken meanwhile; the notifier
 * resumes it under the same lock.  So a change committed at any point
 * after the registration either finds the request suspended (and resumes
 * it) or is seen before the suspension.
 *
 * Work for the worker pool (dir_request_run_job) suspends its request the
 * same way: the job marks the request woken and resumes it when it is
 * done, under wait_lock, so a job that finishes before the suspension is
 * not missed either.  A held answer (dir_reply_hold) is a waiter without
 * a key that only its deadline (the timer) or the stop resumes.
 *
 * Connections: libmicrohttpd tells us when each one starts and ends
 * (on_connection); we count them per client network and give each a
 * deadline by which its next request must have arrived whole.  The
 * accept policy (on_accept) refuses a network over its limit and, once
 * stopping, everyone -- this is how the server stops accepting without
 * MHD_quiesce_daemon(), whose removal of the listening socket from the
 * pool threads' epoll sets races with the threads themselves in
 * libmicrohttpd 0.9.75 and can abort the process.  The timer cuts a
 * connection that missed its deadline with shutdown(2): libmicrohttpd
 * sees the end of the stream and closes it itself, so the descriptor is
 * never closed behind its back.
 *
 * Streamed bodies (dir_request_stream): a headers function may take a
 * request's body as a stream before any of it is read.  Each piece
 * libmicrohttpd hands over goes straight to the sink (a blob file), so
 * an upload of any size costs a connection's read buffer, and its
 * deadline grows with the announced length.  A cut connection ends in
 * on_completed without the handler ever running; the request state's
 * free function throws away what the sink kept.  Answers may be files
 * (dir_reply_file), sent with sendfile(2) by libmicrohttpd.
 *
 * Lock order: wait_lock, then libmicrohttpd's internal locks (taken by
 * MHD_suspend_connection/MHD_resume_connection).  conn_lock and rate_lock
 * are leaves.  Nothing here calls back into the handler while holding a
 * lock.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "crypto.h"
#include "dir-log.h"
#include "dir-net.h"
#include "dir-parse.h"
#include "dir-pool.h"
#include "dir-server.h"
#include "errors.h"
#include "netaddr.h"
#include "fileio.h"

#define TLS_FILE_MAX ((size_t)1024 * 1024)
#define RATE_TABLE_SIZE 1024
#define RATE_ENTRIES_MAX 100000
#define RATE_IDLE_MS 60000
#define CLIENT_MAX 64
#define NET_TABLE_SIZE 1024
#define REAP_INTERVAL_MS 500
#define GONE_CHECK_MS 2000               /* closed long-poll clients */
#define STREAM_GONE_MS 1000              /* a gone uploader is cut after */

struct rate_bucket {
	char client[CLIENT_MAX];
	double tokens;
	uint64_t last_ms;
	struct rate_bucket *next;
};

/* Open connections of one client network. */
struct net_count {
	char net[DIR_NET_KEY_MAX];
	unsigned int open;
	struct net_count *next;
};

/* One connection, libmicrohttpd's socket context; guarded by conn_lock. */
struct dir_conn {
	int fd;
	char net[DIR_NET_KEY_MAX];
	uint64_t deadline_ms;            /* 0: a request is being handled */
	int cut;                         /* shut down by the timer */
	int streaming;                   /* a streamed body is arriving */
	uint64_t progress;               /* its bytes so far (atomic) */
	uint64_t stall_ms;               /* its client seen gone since, or 0 */
	uint64_t stall_progress;         /* progress at stall_ms */
	struct dir_conn *prev, *next;
};

/* A job on its way through the pool. */
struct job {
	struct dir_request *rq;
	dir_job_fn fn;
	void *arg;
};

struct dir_request {
	struct dir_server *srv;
	struct MHD_Connection *conn;
	char method[16];                 /* a copy: "GET", "POST", ... */
	char *path;
	char client[CLIENT_MAX];         /* address text, for logs */
	char net[DIR_NET_KEY_MAX];       /* the limits' key */
	struct dir_conn *dconn;          /* may be NULL */
	uint64_t start_ms;

	uint8_t *body;
	size_t body_len;
	size_t body_cap;
	int too_large;
	int body_oom;

	/* a streamed body (dir_request_stream) instead of the buffer */
	int streamed;
	dir_sink_fn sink;
	void *sink_arg;
	uint64_t stream_len;             /* announced */
	uint64_t stream_got;             /* bytes the sink accepted */
	uint64_t stream_discarded;       /* bytes thrown away after a refusal */
	int stream_refused;

	/* the answer */
	int replied;
	unsigned int status;
	char *resp;                      /* JSON text, malloc'd */
	size_t resp_len;
	int resp_fd;                     /* a file answer, -1: none */
	uint64_t resp_offset;
	uint64_t resp_total;             /* 206/416: the whole size */
	const char *auth_scheme;
	unsigned int retry_after_s;
	int hold;                        /* dir_reply_hold() asked */
	int queued;

	/* long-poll; the fields below key are guarded by srv->wait_lock */
	int wait_requested;
	uint64_t deadline_ms;            /* 0: not waiting yet */
	char *key;
	int registered;
	int woken;
	int suspended;
	int job_pending;                 /* a pool job will wake it */
	int job_started;                 /* this handler run queued one */
	int gone;                        /* its client closed the connection */
	struct dir_request *wprev, *wnext;

	void *state;
	void (*state_free)(void *);
};

struct dir_server {
	struct MHD_Daemon *daemon;
	struct dir_server_config cfg;
	char address[96];
	char *tls_cert;
	char *tls_key;
	size_t tls_key_len;

	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;        /* timer: new deadline or stop */
	struct dir_request *waiters;
	int stopping;
	int timer_stop;
	uint64_t timer_next;             /* the deadline the timer sleeps to */
	uint64_t gone_checked_ms;        /* last look for closed clients */
	pthread_t timer;
	int timer_started;

	pthread_mutex_t flight_lock;
	pthread_cond_t flight_cond;
	unsigned long in_flight;

	pthread_mutex_t rate_lock;
	struct rate_bucket *rate[RATE_TABLE_SIZE];
	size_t rate_entries;

	pthread_mutex_t conn_lock;
	struct dir_conn *conns;
	struct net_count *nets[NET_TABLE_SIZE];
	int refusing;                    /* on_accept refuses everyone */
	uint64_t refused_logged_ms;

	struct dir_pool *pool;
};

static void conn_deadline_at(struct dir_server *srv, struct dir_conn *c,
    uint64_t at);
static void conn_streaming(struct dir_server *srv, struct dir_conn *c,
    int on);

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- errors --- */

unsigned int
dir_status_for(int err, const char **code)
{
	switch (err) {
	case ERR_FORMAT:
	case ERR_TRUNCATED:
	case ERR_INVALID_ARG:
	case ERR_UNSUPPORTED:
		*code = "bad_request";
		return MHD_HTTP_BAD_REQUEST;
	case ERR_SIGNATURE:
		*code = "bad_signature";
		return MHD_HTTP_BAD_REQUEST;
	case ERR_STALE:
		*code = "bad_time";
		return MHD_HTTP_BAD_REQUEST;
	case ERR_REPLAY:
		*code = "replayed";
		return MHD_HTTP_CONFLICT;
	case ERR_DENIED:
		*code = "forbidden";
		return MHD_HTTP_FORBIDDEN;
	case ERR_NOT_FOUND:
		*code = "not_found";
		return MHD_HTTP_NOT_FOUND;
	case ERR_EXISTS:
		*code = "conflict";
		return MHD_HTTP_CONFLICT;
	case ERR_GONE:
		*code = "expired";
		return MHD_HTTP_GONE;
	case ERR_CHAIN:
		*code = "busy";
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case ERR_TOO_LARGE:
		*code = "too_large";
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case ERR_FAIR_SHARE:
		*code = "sender_share";
		return MHD_HTTP_TOO_MANY_REQUESTS;
	case ERR_QUOTA:
		*code = "quota_exceeded";
		return MHD_HTTP_TOO_MANY_REQUESTS;
	case ERR_ALLOC:
	case ERR_IO:
	case ERR_NETWORK:	/* the database is out of reach for now */
		*code = "overloaded";
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	default:
		*code = "internal";
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* --- answers --- */

void
dir_reply_json(struct dir_request *rq, unsigned int status, json_t *body)
{
	char *s;

	if (rq->replied) {
		json_decref(body);
		return;
	}
	if (body == NULL)
		body = json_object();
	s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	rq->replied = 1;
	if (s == NULL) {
		/* Out of memory: a fixed answer that needs no allocation. */
		rq->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		rq->resp = NULL;
		rq->resp_len = 0;
		return;
	}
	rq->status = status;
	rq->resp = s;
	rq->resp_len = strlen(s);
}

void
dir_reply_text(struct dir_request *rq, unsigned int status, char *json,
    size_t len)
{
	if (rq->replied) {
		free(json);
		return;
	}
	rq->replied = 1;
	rq->status = status;
	rq->resp = json;
	rq->resp_len = len;
}

void
dir_reply_file(struct dir_request *rq, unsigned int status, int fd,
    uint64_t offset, uint64_t length, uint64_t total)
{
	if (rq->replied) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rq->replied = 1;
	rq->status = status;
	rq->resp_fd = fd;
	rq->resp_offset = offset;
	rq->resp_len = (size_t)length;
	rq->resp_total = total;
}

void
dir_reply_range_error(struct dir_request *rq, uint64_t total)
{
	dir_reply_error(rq, MHD_HTTP_RANGE_NOT_SATISFIABLE,
	    "range_not_satisfiable", "the range starts at or past the end "
	    "of the %llu bytes: ask for bytes=N- with N below the size",
	    (unsigned long long)total);
	rq->resp_total = total;
}

void
dir_reply_error(struct dir_request *rq, unsigned int status, const char *code,
    const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dir_reply_json(rq, status, json_pack("{s:{s:s,s:s}}", "error",
	    "code", code, "message", msg));
}

void
dir_reply_auth_scheme(struct dir_request *rq, const char *scheme)
{
	rq->auth_scheme = scheme;
}

void
dir_reply_hold(struct dir_request *rq)
{
	rq->hold = rq->srv->cfg.throttle_delay_ms > 0;
}

void
dir_reply_retry_after(struct dir_request *rq, unsigned int seconds)
{
	rq->retry_after_s = seconds > 0 ? seconds : 1;
}

static int
server_stopping(struct dir_server *srv)
{
	return __atomic_load_n(&srv->refusing, __ATOMIC_ACQUIRE);
}

static enum MHD_Result
queue_reply(struct dir_request *rq)
{
	static const char oom[] = "{\"error\":{\"code\":\"overloaded\","
	    "\"message\":\"the directory is out of memory: try again "
	    "later\"}}";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char www[64], retry[16], range[80];
	int file = 0;

	if (rq->resp_fd >= 0) {
		/* Zero copy: libmicrohttpd sends the file with sendfile(2)
		 * and closes it with the response. */
		resp = MHD_create_response_from_fd_at_offset64(rq->resp_len,
		    rq->resp_fd, rq->resp_offset);
		if (resp != NULL)
			rq->resp_fd = -1; /* transferred */
		file = 1;
	} else if (rq->resp != NULL) {
		resp = MHD_create_response_from_buffer(rq->resp_len, rq->resp,
		    MHD_RESPMEM_MUST_FREE);
		if (resp != NULL)
			rq->resp = NULL; /* transferred */
	} else {
		resp = MHD_create_response_from_buffer(sizeof(oom) - 1,
		    (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
		rq->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		rq->resp_len = sizeof(oom) - 1;
	}
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    file ? "application/octet-stream" : "application/json");
	if (file && rq->status == MHD_HTTP_PARTIAL_CONTENT) {
		snprintf(range, sizeof(range), "bytes %llu-%llu/%llu",
		    (unsigned long long)rq->resp_offset,
		    (unsigned long long)(rq->resp_offset + rq->resp_len - 1),
		    (unsigned long long)rq->resp_total);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
		    range);
	} else if (rq->status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
		snprintf(range, sizeof(range), "bytes */%llu",
		    (unsigned long long)rq->resp_total);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
		    range);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	if (rq->status == MHD_HTTP_UNAUTHORIZED) {
		snprintf(www, sizeof(www), "%s realm=\"devid\"",
		    rq->auth_scheme != NULL ? rq->auth_scheme : "Bearer");
		MHD_add_response_header(resp,
		    MHD_HTTP_HEADER_WWW_AUTHENTICATE, www);
	}
	if (rq->status == MHD_HTTP_TOO_MANY_REQUESTS ||
	    rq->status == MHD_HTTP_SERVICE_UNAVAILABLE ||
	    rq->retry_after_s > 0) {
		snprintf(retry, sizeof(retry), "%u",
		    rq->retry_after_s > 0 ? rq->retry_after_s : 1);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    retry);
	}
	/* Draining: let keep-alive clients go rather than send more. */
	if (server_stopping(rq->srv))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		    "close");
	ret = MHD_queue_response(rq->conn, rq->status, resp);
	MHD_destroy_response(resp);
	rq->queued = 1;
	return ret;
}

/* --- streamed bodies --- */

void
dir_request_stream(struct dir_request *rq, uint64_t length, dir_sink_fn sink,
    void *arg)
{
	struct dir_server *srv = rq->srv;
	uint64_t allowed_s;

	rq->streamed = 1;
	rq->sink = sink;
	rq->sink_arg = arg;
	rq->stream_len = length;
	/* A large body on a slow link needs longer than a JSON request:
	 * the deadline grows with the announced length at the least rate
	 * a client must keep. */
	allowed_s = srv->cfg.request_timeout_s + length / DIR_STREAM_MIN_RATE;
	conn_deadline_at(srv, rq->dconn, mono_ms() + allowed_s * 1000);
	conn_streaming(srv, rq->dconn, 1);
}

uint64_t
dir_request_stream_received(const struct dir_request *rq, int *complete)
{
	if (complete != NULL)
		*complete = rq->streamed && !rq->stream_refused &&
		    rq->stream_got == rq->stream_len;
	return rq->stream_got;
}

/*
 * Hands upload data to the sink.  After a refusal the rest is read and
 * thrown away up to DIR_STREAM_DISCARD_MAX, then MHD_NO cuts the
 * connection.  libmicrohttpd never delivers more than Content-Length
 * bytes, but the count is checked here all the same.
 */
static enum MHD_Result
stream_append(struct dir_request *rq, const char *data, size_t len)
{
	enum MHD_Result ret = MHD_YES;

	if (!rq->stream_refused && (len > rq->stream_len - rq->stream_got ||
	    rq->sink(rq->sink_arg, (const uint8_t *)data, len) != 0))
		rq->stream_refused = 1;
	if (!rq->stream_refused) {
		rq->stream_got += len;
	} else {
		rq->stream_discarded += len;
		if (rq->stream_discarded > DIR_STREAM_DISCARD_MAX)
			ret = MHD_NO;
	}
	/* For the timer, which watches for clients gone mid-body. */
	if (rq->dconn != NULL)
		__atomic_store_n(&rq->dconn->progress, rq->stream_got +
		    rq->stream_discarded, __ATOMIC_RELAXED);
	return ret;
}

/* --- request accessors --- */

const char *
dir_request_method(const struct dir_request *rq)
{
	return rq->method;
}

const char *
dir_request_path(const struct dir_request *rq)
{
	return rq->path;
}

const char *
dir_request_query(const struct dir_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
	    name);
}

const char *
dir_request_header(const struct dir_request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const uint8_t *
dir_request_body(const struct dir_request *rq, size_t *len)
{
	*len = rq->body_len;
	return rq->body != NULL ? rq->body : (const uint8_t *)"";
}

const char *
dir_request_client(const struct dir_request *rq)
{
	return rq->client;
}

const char *
dir_request_network(const struct dir_request *rq)
{
	return rq->net;
}

int
dir_request_basic_auth(struct dir_request *rq, char **user, char **pw,
    size_t *pw_len)
{
	int r;

	r = dir_parse_basic_auth(dir_request_header(rq,
	    MHD_HTTP_HEADER_AUTHORIZATION), user, pw, pw_len);
	/* Malformed credentials are no credentials. */
	return r == ERR_FORMAT ? ERR_NOT_FOUND : r;
}

void
dir_request_free_credentials(char *user, char *pw, size_t pw_len)
{
	free(user);
	if (pw != NULL) {
		crypto_wipe(pw, pw_len);
		free(pw);
	}
}

void *
dir_request_state(const struct dir_request *rq)
{
	return rq->state;
}

void
dir_request_set_state(struct dir_request *rq, void *state,
    void (*free_fn)(void *))
{
	if (rq->state != NULL && rq->state_free != NULL)
		rq->state_free(rq->state);
	rq->state = state;
	rq->state_free = free_fn;
}

/* --- waiters --- */

/* Unlinks rq from the waiter list; wait_lock held. */
static void
waiter_unlink(struct dir_server *srv, struct dir_request *rq)
{
	if (!rq->registered)
		return;
	if (rq->wprev != NULL)
		rq->wprev->wnext = rq->wnext;
	else
		srv->waiters = rq->wnext;
	if (rq->wnext != NULL)
		rq->wnext->wprev = rq->wprev;
	rq->wprev = rq->wnext = NULL;
	rq->registered = 0;
}

/* Links rq at the head of the waiter list; wait_lock held. */
static void
waiter_link(struct dir_server *srv, struct dir_request *rq)
{
	if (rq->registered)
		return;
	rq->wprev = NULL;
	rq->wnext = srv->waiters;
	if (srv->waiters != NULL)
		srv->waiters->wprev = rq;
	srv->waiters = rq;
	rq->registered = 1;
}

int
dir_request_watch(struct dir_request *rq, const char *key)
{
	struct dir_server *srv = rq->srv;
	char *k;

	if (rq->registered)
		return 0;
	if ((k = strdup(key)) == NULL)
		return ERR_ALLOC;
	pthread_mutex_lock(&srv->wait_lock);
	free(rq->key);
	rq->key = k;
	rq->woken = 0;
	waiter_link(srv, rq);
	pthread_mutex_unlock(&srv->wait_lock);
	return 0;
}

void
dir_request_wait(struct dir_request *rq, unsigned int wait_s)
{
	if (wait_s > DIR_WAIT_MAX_S)
		wait_s = DIR_WAIT_MAX_S;
	if (rq->deadline_ms == 0)
		rq->deadline_ms = rq->start_ms + (uint64_t)wait_s * 1000;
	rq->wait_requested = 1;
}

int
dir_request_expired(const struct dir_request *rq)
{
	int stopping;

	pthread_mutex_lock(&rq->srv->wait_lock);
	stopping = rq->srv->stopping || rq->gone;
	pthread_mutex_unlock(&rq->srv->wait_lock);
	if (stopping)
		return 1;
	return rq->deadline_ms != 0 && mono_ms() >= rq->deadline_ms;
}

/* Runs on a pool thread: the job, then wakes its request. */
static void
job_main(void *arg)
{
	struct job *j = arg;
	struct dir_request *rq = j->rq;
	struct dir_server *srv = rq->srv;

	j->fn(j->arg);
	free(j);
	pthread_mutex_lock(&srv->wait_lock);
	rq->job_pending = 0;
	rq->woken = 1;
	if (rq->suspended) {
		rq->suspended = 0;
		MHD_resume_connection(rq->conn);
	}
	pthread_mutex_unlock(&srv->wait_lock);
}

int
dir_request_run_job(struct dir_request *rq, dir_job_fn fn, void *arg)
{
	struct job *j;
	int r;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return ERR_ALLOC;
	j->rq = rq;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&rq->srv->wait_lock);
	rq->job_pending = 1;
	pthread_mutex_unlock(&rq->srv->wait_lock);
	if ((r = dir_pool_submit(rq->srv->pool, job_main, j)) != 0) {
		pthread_mutex_lock(&rq->srv->wait_lock);
		rq->job_pending = 0;
		pthread_mutex_unlock(&rq->srv->wait_lock);
		free(j);
		return r;
	}
	rq->job_started = 1;
	return 0;
}

void
dir_server_notify(struct dir_server *srv, const char *key)
{
	struct dir_request *rq;

	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->wait_lock);
	for (rq = srv->waiters; rq != NULL; rq = rq->wnext) {
		if (rq->key == NULL || strcmp(rq->key, key) != 0)
			continue;
		rq->woken = 1;
		if (rq->suspended) {
			rq->suspended = 0;
			MHD_resume_connection(rq->conn);
		}
	}
	pthread_mutex_unlock(&srv->wait_lock);
}

void
dir_server_notify_all(struct dir_server *srv)
{
	struct dir_request *rq;

	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->wait_lock);
	for (rq = srv->waiters; rq != NULL; rq = rq->wnext) {
		if (rq->key == NULL)
			continue;
		rq->woken = 1;
		if (rq->suspended) {
			rq->suspended = 0;
			MHD_resume_connection(rq->conn);
		}
	}
	pthread_mutex_unlock(&srv->wait_lock);
}

/*
 * Cuts every connection whose request did not arrive whole by its
 * deadline: shutdown(2) ends the stream, and libmicrohttpd closes the
 * connection (and tells on_connection) when it next looks at it.
 */
/*
 * Whether the client of c, which is sending a streamed body, is gone:
 * its end of the stream closed (POLLRDHUP) and no byte of the body
 * arrived for STREAM_GONE_MS.  libmicrohttpd 0.9.75 may miss the end of
 * a stream that came right behind data it already read (its epoll is
 * edge-triggered) and would hold the connection, and the upload's
 * partial file, until its idle timeout.  conn_lock held.
 */
static int
stream_client_gone(struct dir_conn *c, uint64_t now)
{
	struct pollfd pfd;
	uint64_t progress = __atomic_load_n(&c->progress, __ATOMIC_RELAXED);

	pfd.fd = c->fd;
	pfd.events = POLLRDHUP;
	pfd.revents = 0;
	if (c->fd < 0 || poll(&pfd, 1, 0) != 1 ||
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0) {
		c->stall_ms = 0;
		return 0;
	}
	if (c->stall_ms == 0 || progress != c->stall_progress) {
		c->stall_ms = now;
		c->stall_progress = progress;
		return 0;
	}
	return now - c->stall_ms >= STREAM_GONE_MS;
}

static void
reap_connections(struct dir_server *srv, uint64_t now)
{
	struct dir_conn *c;

	pthread_mutex_lock(&srv->conn_lock);
	for (c = srv->conns; c != NULL; c = c->next) {
		if (!c->cut && c->streaming && stream_client_gone(c, now)) {
			c->cut = 1;
			(void)shutdown(c->fd, SHUT_RDWR);
			continue;
		}
		if (c->cut || c->deadline_ms == 0 || c->deadline_ms > now)
			continue;
		c->cut = 1;
		(void)shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->conn_lock);
}

/*
 * libmicrohttpd does not watch a suspended connection, so a long-poll
 * whose client went away would hold its descriptor (and its place in the
 * per-address limit) until its wait ends.  This looks at each one's socket
 * (poll with POLLRDHUP, which also sees a shutdown behind unread TLS
 * bytes) and ends the long-poll of a client that is gone.  wait_lock held.
 */
static void
check_gone(struct dir_server *srv, uint64_t now)
{
	struct dir_request *rq;
	struct pollfd pfd;

	if (now - srv->gone_checked_ms < GONE_CHECK_MS)
		return;
	srv->gone_checked_ms = now;
	for (rq = srv->waiters; rq != NULL; rq = rq->wnext) {
		if (!rq->suspended || rq->key == NULL || rq->dconn == NULL ||
		    rq->dconn->fd < 0)
			continue;
		pfd.fd = rq->dconn->fd;
		pfd.events = POLLRDHUP;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) != 1 ||
		    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
			continue;
		rq->gone = 1;
		rq->woken = 1;
		rq->suspended = 0;
		MHD_resume_connection(rq->conn);
	}
}

/* Resumes suspended requests whose deadline passed, ends those whose
 * client is gone and cuts overdue connections; sleeps until the next
 * deadline (at most REAP_INTERVAL_MS) or until woken by a new waiter or
 * the stop. */
static void *
timer_main(void *arg)
{
	struct dir_server *srv = arg;
	struct dir_request *rq;
	struct timespec ts;
	uint64_t now, next;

	pthread_mutex_lock(&srv->wait_lock);
	while (!srv->timer_stop) {
		now = mono_ms();
		reap_connections(srv, now);
		check_gone(srv, now);
		next = now + REAP_INTERVAL_MS;
		for (rq = srv->waiters; rq != NULL; rq = rq->wnext) {
			if (!rq->suspended)
				continue;
			if (srv->stopping || rq->deadline_ms <= now) {
				rq->suspended = 0;
				rq->woken = 1;
				MHD_resume_connection(rq->conn);
			} else if (rq->deadline_ms < next) {
				next = rq->deadline_ms;
			}
		}
		srv->timer_next = next;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		next -= now;
		ts.tv_sec += (time_t)(next / 1000);
		ts.tv_nsec += (long)(next % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&srv->wait_cond, &srv->wait_lock, &ts);
	}
	pthread_mutex_unlock(&srv->wait_lock);
	return NULL;
}

/* --- rate limit: a token bucket per client address --- */

static size_t
rate_slot(const char *client)
{
	uint32_t h = 2166136261u;

	for (; *client != '\0'; client++)
		h = (h ^ (uint8_t)*client) * 16777619u;
	return h % RATE_TABLE_SIZE;
}

/* 0: allowed; ERR_TOO_LARGE: over the limit; ERR_ALLOC: table full. */
static int
rate_take(struct dir_server *srv, const char *client)
{
	struct rate_bucket **pp, *b, *found = NULL;
	uint64_t now = mono_ms();
	double burst = srv->cfg.burst, rate = srv->cfg.rate;
	int r = 0;

	if (srv->cfg.rate == 0)
		return 0;
	pthread_mutex_lock(&srv->rate_lock);
	pp = &srv->rate[rate_slot(client)];
	while ((b = *pp) != NULL) {
		if (strcmp(b->client, client) == 0) {
			found = b;
			pp = &b->next;
		} else if (now - b->last_ms > RATE_IDLE_MS) {
			*pp = b->next;
			free(b);
			srv->rate_entries--;
		} else {
			pp = &b->next;
		}
	}
	if ((b = found) == NULL) {
		if (srv->rate_entries >= RATE_ENTRIES_MAX ||
		    (b = calloc(1, sizeof(*b))) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		snprintf(b->client, sizeof(b->client), "%s", client);
		b->tokens = burst;
		b->last_ms = now;
		b->next = srv->rate[rate_slot(client)];
		srv->rate[rate_slot(client)] = b;
		srv->rate_entries++;
	}
	b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_ms = now;
	if (b->tokens < 1.0) {
		r = ERR_TOO_LARGE;
		goto out;
	}
	b->tokens -= 1.0;
 out:
	pthread_mutex_unlock(&srv->rate_lock);
	return r;
}

/* --- connections: counts per network and request deadlines --- */

static size_t
net_slot(const char *net)
{
	return rate_slot(net) % NET_TABLE_SIZE;
}

/* The count of net, created when create is set; conn_lock held. */
static struct net_count *
net_find(struct dir_server *srv, const char *net, int create)
{
	struct net_count *n;
	size_t slot = net_slot(net);

	for (n = srv->nets[slot]; n != NULL; n = n->next)
		if (strcmp(n->net, net) == 0)
			return n;
	if (!create || (n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	snprintf(n->net, sizeof(n->net), "%s", net);
	n->next = srv->nets[slot];
	srv->nets[slot] = n;
	return n;
}

/* Drops the count of net once it reached 0; conn_lock held. */
static void
net_release(struct dir_server *srv, const char *net)
{
	struct net_count **pp, *n;

	for (pp = &srv->nets[net_slot(net)]; (n = *pp) != NULL;
	    pp = &n->next) {
		if (strcmp(n->net, net) != 0)
			continue;
		if (n->open > 0)
			n->open--;
		if (n->open == 0) {
			*pp = n->next;
			free(n);
		}
		return;
	}
}

/*
 * The accept policy: nobody once stopping; otherwise a network at its
 * limit of open connections is refused (the socket is closed at once).
 * Counting happens in on_connection, so several threads accepting at the
 * same moment may overshoot the limit by a connection or two.
 */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct dir_server *srv = cls;
	struct net_count *n;
	char net[DIR_NET_KEY_MAX];
	unsigned int open = 0;
	uint64_t now;
	int log = 0;

	(void)addrlen;
	if (server_stopping(srv))
		return MHD_NO;
	if (srv->cfg.max_per_address == DIR_UNLIMITED)
		return MHD_YES;
	dir_net_key(addr, net, sizeof(net));
	pthread_mutex_lock(&srv->conn_lock);
	if ((n = net_find(srv, net, 0)) != NULL)
		open = n->open;
	if (open >= srv->cfg.max_per_address) {
		now = mono_ms();
		if (now - srv->refused_logged_ms >= 10000) {
			srv->refused_logged_ms = now;
			log = 1;
		}
	}
	pthread_mutex_unlock(&srv->conn_lock);
	if (open < srv->cfg.max_per_address)
		return MHD_YES;
	if (log)
		dir_log("%s already has %u open connections, the most "
		    "--max-per-address allows: refusing more (logged at most "
		    "every 10 s)", net, open);
	return MHD_NO;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct dir_server *srv = cls;
	struct dir_conn *c = *socket_context;
	const union MHD_ConnectionInfo *ci;
	struct net_count *n;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return; /* untracked: only libmicrohttpd's timeout */
		ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci != NULL ? ci->connect_fd : -1;
		ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		dir_net_key(ci != NULL ? ci->client_addr : NULL, c->net,
		    sizeof(c->net));
		c->deadline_ms = mono_ms() +
		    (uint64_t)srv->cfg.request_timeout_s * 1000;
		pthread_mutex_lock(&srv->conn_lock);
		if ((n = net_find(srv, c->net, 1)) != NULL)
			n->open++;
		else
			c->net[0] = '\0'; /* not counted */
		c->next = srv->conns;
		if (srv->conns != NULL)
			srv->conns->prev = c;
		srv->conns = c;
		pthread_mutex_unlock(&srv->conn_lock);
		*socket_context = c;
		return;
	}
	if (c == NULL)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->net[0] != '\0')
		net_release(srv, c->net);
	pthread_mutex_unlock(&srv->conn_lock);
	free(c);
	*socket_context = NULL;
}

/* Sets the connection's deadline: now + the request timeout, or none. */
static void
conn_deadline(struct dir_server *srv, struct dir_conn *c, int armed)
{
	conn_deadline_at(srv, c, armed ? mono_ms() +
	    (uint64_t)srv->cfg.request_timeout_s * 1000 : 0);
}

/* Marks c as receiving a streamed body (on) or not. */
static void
conn_streaming(struct dir_server *srv, struct dir_conn *c, int on)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	c->streaming = on;
	c->stall_ms = 0;
	__atomic_store_n(&c->progress, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&srv->conn_lock);
}

/* Sets the connection's deadline to at (monotonic ms; 0: none). */
static void
conn_deadline_at(struct dir_server *srv, struct dir_conn *c, uint64_t at)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&srv->conn_lock);
	c->deadline_ms = at;
	pthread_mutex_unlock(&srv->conn_lock);
}

/* --- libmicrohttpd callbacks --- */

static void
client_address(struct MHD_Connection *conn, char *out, size_t out_len,
    char *net, size_t net_len)
{
	const union MHD_ConnectionInfo *ci;
	const void *src = NULL;

	snprintf(out, out_len, "unknown");
	snprintf(net, net_len, "unknown");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	dir_net_key(ci->client_addr, net, net_len);
	if (ci->client_addr->sa_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)
		    ci->client_addr)->sin_addr;
	else if (ci->client_addr->sa_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)
		    ci->client_addr)->sin6_addr;
	if (src == NULL || inet_ntop(ci->client_addr->sa_family, src, out,
	    (socklen_t)out_len) == NULL)
		snprintf(out, out_len, "unknown");
}

/* Keeps the value of the last X-Forwarded-For header line. */
static enum MHD_Result
last_xff(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	const char **last = cls;

	(void)kind;
	if (key != NULL && value != NULL &&
	    strcasecmp(key, "X-Forwarded-For") == 0)
		*last = value;
	return MHD_YES;
}

/*
 * Behind a proxy the client is the last X-Forwarded-For entry: the one the
 * proxy itself appended, either to the header's list (nginx) or as a
 * header line of its own after any the client sent (haproxy); whatever
 * comes before it is the client's word.  Without a usable header the peer
 * (the proxy) stays the client.
 */
static void
proxy_client(struct dir_request *rq)
{
	const char *xff = NULL, *last;
	char net[DIR_NET_KEY_MAX];

	MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, last_xff, &xff);
	if (xff == NULL)
		return;
	last = strrchr(xff, ',');
	last = last != NULL ? last + 1 : xff;
	if (dir_net_key_text(last, net, sizeof(net)) != 0)
		return;
	last += strspn(last, " \t");
	snprintf(rq->client, sizeof(rq->client), "%.*s",
	    (int)strcspn(last, " \t"), last);
	snprintf(rq->net, sizeof(rq->net), "%s", net);
}

static struct dir_request *
request_new(struct dir_server *srv, struct MHD_Connection *conn,
    const char *url)
{
	struct dir_request *rq;
	const union MHD_ConnectionInfo *ci;

	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return NULL;
	if ((rq->path = strdup(url)) == NULL) {
		free(rq);
		return NULL;
	}
	rq->srv = srv;
	rq->conn = conn;
	rq->resp_fd = -1;
	rq->start_ms = mono_ms();
	client_address(conn, rq->client, sizeof(rq->client), rq->net,
	    sizeof(rq->net));
	if (srv->cfg.behind_proxy)
		proxy_client(rq);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	rq->dconn = ci != NULL ? ci->socket_context : NULL;
	pthread_mutex_lock(&srv->flight_lock);
	srv->in_flight++;
	pthread_mutex_unlock(&srv->flight_lock);
	return rq;
}

static void
request_free(struct dir_request *rq)
{
	struct dir_server *srv;

	if (rq == NULL)
		return;
	srv = rq->srv;
	/* Only this request's own thread changes `registered`; a request
	 * that answered is unlinked already, so the common path takes no
	 * lock here (libmicrohttpd may hold its own locks around this). */
	if (rq->registered) {
		pthread_mutex_lock(&srv->wait_lock);
		waiter_unlink(srv, rq);
		pthread_mutex_unlock(&srv->wait_lock);
	}
	if (rq->state != NULL && rq->state_free != NULL)
		rq->state_free(rq->state);
	free(rq->key);
	free(rq->resp);
	if (rq->resp_fd >= 0)
		close(rq->resp_fd);
	/* Bodies may hold a password (POST /v1/accounts). */
	if (rq->body != NULL)
		crypto_wipe(rq->body, rq->body_len);
	free(rq->body);
	free(rq->path);
	free(rq);
	pthread_mutex_lock(&srv->flight_lock);
	srv->in_flight--;
	pthread_cond_broadcast(&srv->flight_cond);
	pthread_mutex_unlock(&srv->flight_lock);
}

/* Appends upload data, or only notes that the cap was passed. */
static void
body_append(struct dir_request *rq, const char *data, size_t len)
{
	uint8_t *nb;
	size_t cap;

	if (rq->too_large || rq->body_oom)
		return;
	if (len > rq->srv->cfg.max_body - rq->body_len) {
		rq->too_large = 1;
		if (rq->body != NULL)
			crypto_wipe(rq->body, rq->body_len);
		free(rq->body);
		rq->body = NULL;
		rq->body_len = rq->body_cap = 0;
		return;
	}
	/* Grow by doubling with malloc + copy rather than realloc, so that no
	 * unwiped copy of the old contents is left behind. */
	if (rq->body_len + len > rq->body_cap) {
		cap = rq->body_cap == 0 ? 4096 : rq->body_cap;
		while (cap < rq->body_len + len)
			cap *= 2;
		if (cap > rq->srv->cfg.max_body)
			cap = rq->srv->cfg.max_body;
		if ((nb = malloc(cap)) == NULL) {
			rq->body_oom = 1;
			return;
		}
		if (rq->body != NULL) {
			memcpy(nb, rq->body, rq->body_len);
			crypto_wipe(rq->body, rq->body_len);
			free(rq->body);
		}
		rq->body = nb;
		rq->body_cap = cap;
	}
	memcpy(rq->body + rq->body_len, data, len);
	rq->body_len += len;
}

/*
 * Sends rq's answer, or first holds it for the throttle delay
 * (dir_reply_hold): the request then waits in the waiter list without a
 * key until the timer resumes it and this runs again.
 */
static enum MHD_Result
finish_reply(struct dir_server *srv, struct dir_request *rq)
{
	pthread_mutex_lock(&srv->wait_lock);
	if (rq->hold && !srv->stopping) {
		rq->hold = 0;
		free(rq->key);
		rq->key = NULL;
		waiter_link(srv, rq);
		rq->deadline_ms = mono_ms() + srv->cfg.throttle_delay_ms;
		MHD_suspend_connection(rq->conn);
		rq->suspended = 1;
		if (rq->deadline_ms < srv->timer_next)
			pthread_cond_signal(&srv->wait_cond);
		pthread_mutex_unlock(&srv->wait_lock);
		return MHD_YES;
	}
	waiter_unlink(srv, rq);
	pthread_mutex_unlock(&srv->wait_lock);
	return queue_reply(rq);
}

/* Runs the handler until it answers or may be suspended. */
static enum MHD_Result
run_handler(struct dir_server *srv, struct dir_request *rq)
{
	int expired_reruns = 0;

	for (;;) {
		if (rq->replied)
			return finish_reply(srv, rq);
		pthread_mutex_lock(&srv->wait_lock);
		rq->woken = 0;
		pthread_mutex_unlock(&srv->wait_lock);
		rq->wait_requested = 0;
		rq->job_started = 0;
		srv->cfg.handler(srv->cfg.handler_arg, rq);
		if (rq->replied)
			continue;
		if (rq->job_started) {
			/* The job may have finished already (it then marked
			 * the request woken): run the handler again at once. */
			pthread_mutex_lock(&srv->wait_lock);
			if (rq->job_pending && !rq->woken) {
				MHD_suspend_connection(rq->conn);
				rq->suspended = 1;
				pthread_mutex_unlock(&srv->wait_lock);
				return MHD_YES;
			}
			pthread_mutex_unlock(&srv->wait_lock);
			continue;
		}
		if (!rq->wait_requested || !rq->registered) {
			dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "internal", "the directory did not answer this "
			    "request");
			continue;
		}
		if (dir_request_expired(rq)) {
			/* The deadline or the shutdown came between the
			 * handler's check and now: one more run answers. */
			if (expired_reruns++ == 0)
				continue;
			dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "internal", "the directory did not end a "
			    "long-poll");
			continue;
		}
		pthread_mutex_lock(&srv->wait_lock);
		if (rq->woken || srv->stopping) {
			pthread_mutex_unlock(&srv->wait_lock);
			continue;
		}
		MHD_suspend_connection(rq->conn);
		rq->suspended = 1;
		/* Wake the timer only when it sleeps past this deadline, so
		 * that many arriving long-polls do not each cost a scan. */
		if (rq->deadline_ms < srv->timer_next)
			pthread_cond_signal(&srv->wait_cond);
		pthread_mutex_unlock(&srv->wait_lock);
		return MHD_YES;
	}
}

/*
 * The checks made once the headers are in, before any body is read:
 * the rate limit, the announced size, and for a large body the handler's
 * preauth.  0 lets the request go on; otherwise it has an answer.
 */
static int
check_headers(struct dir_server *srv, struct dir_request *rq)
{
	const char *cl, *te;
	unsigned long long n = 0;
	char *end;
	int r, large;

	if ((r = rate_take(srv, rq->net)) != 0) {
		if (r == ERR_TOO_LARGE) {
			dir_reply_error(rq, MHD_HTTP_TOO_MANY_REQUESTS,
			    "rate_limited", "more than %u requests per second "
			    "from %s: slow down and retry", srv->cfg.rate,
			    rq->net);
			dir_reply_hold(rq);
		} else {
			dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "overloaded", "the directory is tracking too many "
			    "clients: try again later");
		}
		return -1;
	}
	/* The handler's look first: it may answer, or take the body as a
	 * stream, to which neither max_body nor preauth applies. */
	if (srv->cfg.headers != NULL &&
	    srv->cfg.headers(srv->cfg.handler_arg, rq) != 0) {
		if (!rq->replied)
			dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "internal", "the directory did not answer this "
			    "request");
		return -1;
	}
	if (rq->replied)
		return -1;
	if (rq->streamed)
		return 0;
	cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (cl != NULL) {
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno != 0 || *end != '\0' || n > srv->cfg.max_body) {
			dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE,
			    "too_large", "the request body is larger than the "
			    "%zu bytes this directory accepts",
			    srv->cfg.max_body);
			return -1;
		}
	}
	large = n > DIR_BODY_PREAUTH_MAX || (cl == NULL && te != NULL);
	if (large && srv->cfg.preauth != NULL &&
	    srv->cfg.preauth(srv->cfg.handler_arg, rq) != 0) {
		if (!rq->replied)
			dir_reply_error(rq, MHD_HTTP_UNAUTHORIZED,
			    "unauthorized", "a body of more than %zu bytes "
			    "needs a session", DIR_BODY_PREAUTH_MAX);
		return -1;
	}
	return 0;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct dir_server *srv = cls;
	struct dir_request *rq = *con_cls;
	size_t len;

	if (rq == NULL) {
		if ((rq = request_new(srv, conn, url)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		if (check_headers(srv, rq) != 0)
			return finish_reply(srv, rq);
		return MHD_YES;
	}
	if (rq->queued)
		return MHD_YES;
	if (rq->replied) {
		/* A held answer given before the body: never read it. */
		*upload_data_size = 0;
		return finish_reply(srv, rq);
	}
	if (*upload_data_size != 0) {
		len = *upload_data_size;
		*upload_data_size = 0;
		if (rq->streamed)
			return stream_append(rq, upload_data, len);
		body_append(rq, upload_data, len);
		return MHD_YES;
	}
	/* The request is in whole: no more deadline while it is handled
	 * (a long-poll may wait far longer). */
	conn_deadline(srv, rq->dconn, 0);
	if (rq->streamed)
		conn_streaming(srv, rq->dconn, 0);
	if (rq->too_large) {
		dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the request body is larger than the %zu bytes this "
		    "directory accepts", srv->cfg.max_body);
		return finish_reply(srv, rq);
	}
	if (rq->body_oom) {
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
		    "the directory is out of memory: try again later");
		return finish_reply(srv, rq);
	}
	return run_handler(srv, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct dir_request *rq = *con_cls;
	struct dir_server *srv = cls;
	char method[16], path[256];

	if (rq == NULL)
		return;
	if (!srv->cfg.quiet) {
		dir_log_sanitize(rq->method, method, sizeof(method));
		dir_log_sanitize(rq->path, path, sizeof(path));
		dir_log("%s \"%s %s\" %u %zu %llums%s", rq->client, method, path,
		    rq->queued ? rq->status : 0, rq->queued ? rq->resp_len : 0,
		    (unsigned long long)(mono_ms() - rq->start_ms),
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
		    " (connection ended early)");
	}
	/* The next request on a kept-alive connection has its own time. */
	conn_deadline(srv, rq->dconn, 1);
	if (rq->streamed)
		conn_streaming(srv, rq->dconn, 0);
	request_free(rq);
	*con_cls = NULL;
}

/* libmicrohttpd's own messages; fmt is its printf format. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	dir_log("libmicrohttpd: %s", msg);
}

/* --- start and stop --- */

static void
server_free(struct dir_server *srv)
{
	struct rate_bucket *b, *next;
	struct net_count *n, *nnext;
	size_t i;

	dir_pool_free(srv->pool);
	for (i = 0; i < RATE_TABLE_SIZE; i++) {
		for (b = srv->rate[i]; b != NULL; b = next) {
			next = b->next;
			free(b);
		}
	}
	for (i = 0; i < NET_TABLE_SIZE; i++) {
		for (n = srv->nets[i]; n != NULL; n = nnext) {
			nnext = n->next;
			free(n);
		}
	}
	free(srv->tls_cert);
	if (srv->tls_key != NULL) {
		crypto_wipe(srv->tls_key, srv->tls_key_len);
		free(srv->tls_key);
	}
	pthread_mutex_destroy(&srv->wait_lock);
	pthread_cond_destroy(&srv->wait_cond);
	pthread_mutex_destroy(&srv->flight_lock);
	pthread_cond_destroy(&srv->flight_cond);
	pthread_mutex_destroy(&srv->rate_lock);
	pthread_mutex_destroy(&srv->conn_lock);
	free(srv);
}

/* Gives the settings cfg leaves at 0 their defaults and caps the
 * throttle delay. */
static void
config_fill_defaults(struct dir_server_config *cfg)
{
	if (cfg->max_body == 0)
		cfg->max_body = DIR_BODY_MAX_DEFAULT;
	if (cfg->threads == 0)
		cfg->threads = DIR_THREADS_DEFAULT;
	if (cfg->burst == 0)
		cfg->burst = 2 * cfg->rate;
	if (cfg->max_connections == 0)
		cfg->max_connections = DIR_CONNECTIONS_DEFAULT;
	if (cfg->max_per_address == 0)
		cfg->max_per_address = DIR_PER_ADDRESS_DEFAULT;
	if (cfg->behind_proxy)
		cfg->max_per_address = DIR_UNLIMITED;
	if (cfg->request_timeout_s == 0)
		cfg->request_timeout_s = DIR_REQUEST_TIMEOUT_DEFAULT_S;
	if (cfg->job_threads == 0)
		cfg->job_threads = dir_pool_default_threads();
	if (cfg->job_queue == 0)
		cfg->job_queue = DIR_POOL_QUEUE_DEFAULT;
	if (cfg->throttle_delay_ms > DIR_THROTTLE_DELAY_MAX_MS)
		cfg->throttle_delay_ms = DIR_THROTTLE_DELAY_MAX_MS;
}

/* The locks and condition variables of srv; the timer waits on the
 * monotonic clock. */
static void
server_sync_init(struct dir_server *srv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	srv->timer_next = UINT64_MAX;
	pthread_mutex_init(&srv->wait_lock, NULL);
	pthread_cond_init(&srv->wait_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&srv->flight_lock, NULL);
	pthread_cond_init(&srv->flight_cond, NULL);
	pthread_mutex_init(&srv->rate_lock, NULL);
	pthread_mutex_init(&srv->conn_lock, NULL);
}

/* Stops the timer thread of srv and waits for it to end. */
static void
timer_join(struct dir_server *srv)
{
	pthread_mutex_lock(&srv->wait_lock);
	srv->timer_stop = 1;
	pthread_cond_signal(&srv->wait_cond);
	pthread_mutex_unlock(&srv->wait_lock);
	pthread_join(srv->timer, NULL);
}

/*
 * Plain HTTP only on loopback, unless a TLS-terminating proxy is in front:
 * elsewhere clients would send passwords and tokens in the clear.
 */
static int
listen_check_plain(const struct dir_server_config *cfg,
    const struct sockaddr_storage *ss, struct err_ctx *e)
{
	if (cfg->tls_cert == NULL && !cfg->behind_proxy &&
	    !dir_net_is_loopback((const struct sockaddr *)ss))
		return err_set(e, ERR_CONFIG, "refusing plain HTTP on %s, "
		    "which is not a loopback address: clients would send "
		    "passwords and session tokens unencrypted.  Give "
		    "--tls-cert and --tls-key, or --behind-proxy when a "
		    "TLS-terminating proxy is in front (see "
		    "docs/directory.md)", cfg->listen);
	return 0;
}

/* Reads the TLS certificate and key of srv->cfg, if any, into srv. */
static int
tls_load(struct dir_server *srv, struct err_ctx *e)
{
	size_t cert_len = 0;
	int r;

	if (srv->cfg.tls_cert == NULL)
		return 0;
	/* Certificate paths are often symlinks into a renewal tool's tree. */
	if ((r = fileio_read(srv->cfg.tls_cert, TLS_FILE_MAX, FILEIO_FOLLOW,
	    &srv->tls_cert, &cert_len, e)) != 0 ||
	    (r = fileio_read(srv->cfg.tls_key, TLS_FILE_MAX, FILEIO_FOLLOW |
	    FILEIO_SECRET, &srv->tls_key, &srv->tls_key_len, e)) != 0)
		return r;
	return 0;
}

/* Starts libmicrohttpd for srv, listening on ss. */
static int
daemon_start(struct dir_server *srv, struct sockaddr_storage *ss,
    struct err_ctx *e)
{
	struct MHD_OptionItem opts[8];
	unsigned int flags;
	size_t i = 0;

	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (srv->tls_cert != NULL)
		flags |= MHD_USE_TLS;
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, ss };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
	    (intptr_t)srv->cfg.threads, NULL };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    (intptr_t)srv->cfg.max_connections, NULL };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	    (intptr_t)srv->cfg.request_timeout_s, NULL };
	if (srv->tls_cert != NULL) {
		opts[i++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert };
		opts[i++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key };
	}
	opts[i] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	srv->daemon = MHD_start_daemon(flags, 0, on_accept, srv, on_request,
	    srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
	    MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (srv->daemon == NULL)
		return err_set(e, ERR_IO, "cannot listen on %s (address in "
		    "use, not permitted, or a bad TLS certificate or key)",
		    srv->cfg.listen);
	return 0;
}

/* srv->address: the numeric address of ss with the port bound. */
static void
address_set(struct dir_server *srv, const struct sockaddr_storage *ss,
    socklen_t ss_len)
{
	const union MHD_DaemonInfo *di;
	char host[INET6_ADDRSTRLEN + 1];

	di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (getnameinfo((const struct sockaddr *)ss, ss_len, host,
	    sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "?");
	snprintf(srv->address, sizeof(srv->address),
	    ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	    di != NULL ? (unsigned int)di->port : 0);
}

int
dir_server_start(const struct dir_server_config *cfg,
    struct dir_server **out, struct err_ctx *e)
{
	struct dir_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(cfg != NULL && cfg->listen != NULL &&
	    cfg->handler != NULL && out != NULL, ERR_INVALID_ARG);
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return err_set(e, ERR_CONFIG, "TLS needs both a certificate "
		    "(--tls-cert) and its key (--tls-key)");
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	srv->cfg = *cfg;
	config_fill_defaults(&srv->cfg);
	server_sync_init(srv);

	if ((r = net_listen_parse(cfg->listen, 0, &ss, &ss_len, e)) != 0 ||
	    (r = dir_pool_new(srv->cfg.job_threads, srv->cfg.job_queue,
	    &srv->pool, e)) != 0 ||
	    (r = listen_check_plain(cfg, &ss, e)) != 0 ||
	    (r = tls_load(srv, e)) != 0)
		goto out;
	if (pthread_create(&srv->timer, NULL, timer_main, srv) != 0) {
		r = err_set(e, ERR_INTERNAL, "cannot start the timer thread");
		goto out;
	}
	srv->timer_started = 1;
	if ((r = daemon_start(srv, &ss, e)) != 0)
		goto out;
	address_set(srv, &ss, ss_len);
	*out = srv;
	srv = NULL; /* transferred */
	r = 0;
 out:
	if (srv != NULL) {
		if (srv->timer_started)
			timer_join(srv);
		server_free(srv);
	}
	return r;
}

const char *
dir_server_address(const struct dir_server *srv)
{
	return srv->address;
}

void
dir_server_stop(struct dir_server *srv)
{
	struct dir_request *rq;
	struct timespec ts;

	if (srv == NULL)
		return;
	/* From now on on_accept() closes every new connection. */
	__atomic_store_n(&srv->refusing, 1, __ATOMIC_RELEASE);
	/* Answer every long-poll and held answer now. */
	pthread_mutex_lock(&srv->wait_lock);
	srv->stopping = 1;
	for (rq = srv->waiters; rq != NULL; rq = rq->wnext) {
		rq->woken = 1;
		if (rq->suspended) {
			rq->suspended = 0;
			MHD_resume_connection(rq->conn);
		}
	}
	pthread_mutex_unlock(&srv->wait_lock);
	/* Drain requests in flight. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += DIR_DRAIN_MS / 1000;
	pthread_mutex_lock(&srv->flight_lock);
	while (srv->in_flight > 0) {
		if (pthread_cond_timedwait(&srv->flight_cond,
		    &srv->flight_lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&srv->flight_lock);
	/* Every job still queued runs and wakes its request; after this no
	 * other thread touches a request. */
	dir_pool_free(srv->pool);
	srv->pool = NULL;
	timer_join(srv);
	MHD_stop_daemon(srv->daemon);
	server_free(srv);
}
