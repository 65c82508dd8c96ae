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
 * Lock order: wait_lock, then libmicrohttpd's internal locks (taken by
 * MHD_suspend_connection/MHD_resume_connection).  Nothing here calls back
 * into the handler while holding wait_lock.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "crypto.h"
#include "dir-server.h"
#include "dir-log.h"
#include "dir-parse.h"
#include "errors.h"
#include "fileio.h"

#define TLS_FILE_MAX ((size_t)1024 * 1024)
#define RATE_TABLE_SIZE 1024
#define RATE_ENTRIES_MAX 100000
#define RATE_IDLE_MS 60000
#define CLIENT_MAX 64

struct rate_bucket {
	char client[CLIENT_MAX];
	double tokens;
	uint64_t last_ms;
	struct rate_bucket *next;
};

struct dir_request {
	struct dir_server *srv;
	struct MHD_Connection *conn;
	char method[16];                 /* a copy: "GET", "POST", ... */
	char *path;
	char client[CLIENT_MAX];
	uint64_t start_ms;

	uint8_t *body;
	size_t body_len;
	size_t body_cap;
	int too_large;
	int body_oom;

	/* the answer */
	int replied;
	unsigned int status;
	char *resp;                      /* JSON text, malloc'd */
	size_t resp_len;
	const char *auth_scheme;
	int queued;

	/* long-poll; the fields below key are guarded by srv->wait_lock */
	int wait_requested;
	uint64_t deadline_ms;            /* 0: not waiting yet */
	char *key;
	int registered;
	int woken;
	int suspended;
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
	pthread_t timer;
	int timer_started;

	pthread_mutex_t flight_lock;
	pthread_cond_t flight_cond;
	unsigned long in_flight;

	pthread_mutex_t rate_lock;
	struct rate_bucket *rate[RATE_TABLE_SIZE];
	size_t rate_entries;
};

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
	case ERR_CHAIN:
		*code = "busy";
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case ERR_TOO_LARGE:
		*code = "too_large";
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case ERR_ALLOC:
	case ERR_IO:
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

static enum MHD_Result
queue_reply(struct dir_request *rq)
{
	static const char oom[] = "{\"error\":{\"code\":\"overloaded\","
	    "\"message\":\"the directory is out of memory: try again "
	    "later\"}}";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char www[64];

	if (rq->resp != NULL) {
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
	    "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	if (rq->status == MHD_HTTP_UNAUTHORIZED) {
		snprintf(www, sizeof(www), "%s realm=\"devid\"",
		    rq->auth_scheme != NULL ? rq->auth_scheme : "Bearer");
		MHD_add_response_header(resp,
		    MHD_HTTP_HEADER_WWW_AUTHENTICATE, www);
	}
	if (rq->status == MHD_HTTP_TOO_MANY_REQUESTS)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    "1");
	ret = MHD_queue_response(rq->conn, rq->status, resp);
	MHD_destroy_response(resp);
	rq->queued = 1;
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
	rq->wprev = NULL;
	rq->wnext = srv->waiters;
	if (srv->waiters != NULL)
		srv->waiters->wprev = rq;
	srv->waiters = rq;
	rq->registered = 1;
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
	stopping = rq->srv->stopping;
	pthread_mutex_unlock(&rq->srv->wait_lock);
	if (stopping)
		return 1;
	return rq->deadline_ms != 0 && mono_ms() >= rq->deadline_ms;
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

/* Resumes suspended requests whose deadline passed; sleeps until the next
 * deadline or until woken by a new waiter or the stop. */
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
		next = UINT64_MAX;
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
		if (next == UINT64_MAX) {
			pthread_cond_wait(&srv->wait_cond, &srv->wait_lock);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			next -= now;
			ts.tv_sec += (time_t)(next / 1000);
			ts.tv_nsec += (long)(next % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&srv->wait_cond, &srv->wait_lock,
			    &ts);
		}
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

/* --- libmicrohttpd callbacks --- */

static void
client_address(struct MHD_Connection *conn, char *out, size_t out_len)
{
	const union MHD_ConnectionInfo *ci;
	socklen_t len;

	snprintf(out, out_len, "unknown");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	len = ci->client_addr->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (getnameinfo(ci->client_addr, len, out, (socklen_t)out_len, NULL,
	    0, NI_NUMERICHOST) != 0)
		snprintf(out, out_len, "unknown");
}

static struct dir_request *
request_new(struct dir_server *srv, struct MHD_Connection *conn,
    const char *url)
{
	struct dir_request *rq;

	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return NULL;
	if ((rq->path = strdup(url)) == NULL) {
		free(rq);
		return NULL;
	}
	rq->srv = srv;
	rq->conn = conn;
	rq->start_ms = mono_ms();
	client_address(conn, rq->client, sizeof(rq->client));
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

/* Runs the handler until it answers or may be suspended. */
static enum MHD_Result
run_handler(struct dir_server *srv, struct dir_request *rq)
{
	int expired_reruns = 0;

	for (;;) {
		pthread_mutex_lock(&srv->wait_lock);
		rq->woken = 0;
		pthread_mutex_unlock(&srv->wait_lock);
		rq->wait_requested = 0;
		srv->cfg.handler(srv->cfg.handler_arg, rq);
		if (rq->replied)
			break;
		if (!rq->wait_requested || !rq->registered) {
			dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "internal", "the directory did not answer this "
			    "request");
			break;
		}
		if (dir_request_expired(rq)) {
			/* The deadline or the shutdown came between the
			 * handler's check and now: one more run answers. */
			if (expired_reruns++ == 0)
				continue;
			dir_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "internal", "the directory did not end a "
			    "long-poll");
			break;
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
	pthread_mutex_lock(&srv->wait_lock);
	waiter_unlink(srv, rq);
	pthread_mutex_unlock(&srv->wait_lock);
	return queue_reply(rq);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct dir_server *srv = cls;
	struct dir_request *rq = *con_cls;
	const char *cl;
	unsigned long long n;
	char *end;
	int r;

	if (rq == NULL) {
		if ((rq = request_new(srv, conn, url)) == NULL)
			return MHD_NO;
		*con_cls = rq;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		if ((r = rate_take(srv, rq->client)) != 0) {
			if (r == ERR_TOO_LARGE)
				dir_reply_error(rq, MHD_HTTP_TOO_MANY_REQUESTS,
				    "rate_limited", "more than %u requests per "
				    "second from %s: slow down and retry",
				    srv->cfg.rate, rq->client);
			else
				dir_reply_error(rq,
				    MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
				    "the directory is tracking too many "
				    "clients: try again later");
			return queue_reply(rq);
		}
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			errno = 0;
			n = strtoull(cl, &end, 10);
			if (errno != 0 || *end != '\0' ||
			    n > srv->cfg.max_body) {
				dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE,
				    "too_large", "the request body is larger "
				    "than the %zu bytes this directory "
				    "accepts", srv->cfg.max_body);
				return queue_reply(rq);
			}
		}
		return MHD_YES;
	}
	if (rq->queued)
		return MHD_YES;
	if (*upload_data_size != 0) {
		body_append(rq, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_large) {
		dir_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the request body is larger than the %zu bytes this "
		    "directory accepts", srv->cfg.max_body);
		return queue_reply(rq);
	}
	if (rq->body_oom) {
		dir_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
		    "the directory is out of memory: try again later");
		return queue_reply(rq);
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
	dir_log_sanitize(rq->method, method, sizeof(method));
	dir_log_sanitize(rq->path, path, sizeof(path));
	if (!srv->cfg.quiet)
		dir_log("%s \"%s %s\" %u %zu %llums%s", rq->client, method, path,
		    rq->queued ? rq->status : 0, rq->queued ? rq->resp_len : 0,
		    (unsigned long long)(mono_ms() - rq->start_ms),
		    toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
		    " (connection ended early)");
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

/* Resolves "ADDR:PORT" or "[ADDR]:PORT" into ss. */
static int
parse_listen(const char *listen, struct sockaddr_storage *ss,
    socklen_t *ss_len, struct err_ctx *e)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	const char *colon, *port;
	size_t hlen;
	int r = ERR_CONFIG;

	if (listen[0] == '[') {
		colon = strstr(listen, "]:");
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - listen - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, hlen);
		port = colon + 2;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - listen);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, listen, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	if (*port == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || atoi(port) > 65535)
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL ||
	    res->ai_addrlen > sizeof(*ss)) {
		r = err_set(e, ERR_CONFIG, "cannot resolve the listen address "
		    "'%s'", listen);
		goto out;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*ss_len = res->ai_addrlen;
	r = 0;
	goto out;
 bad:
	r = err_set(e, ERR_CONFIG, "listen address '%s' is not ADDR:PORT or "
	    "[ADDR]:PORT", listen);
 out:
	if (res != NULL)
		freeaddrinfo(res);
	return r;
}

static void
server_free(struct dir_server *srv)
{
	struct rate_bucket *b, *next;
	size_t i;

	for (i = 0; i < RATE_TABLE_SIZE; i++) {
		for (b = srv->rate[i]; b != NULL; b = next) {
			next = b->next;
			free(b);
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
	free(srv);
}

int
dir_server_start(const struct dir_server_config *cfg,
    struct dir_server **out, struct err_ctx *e)
{
	struct dir_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len = 0;
	pthread_condattr_t ca;
	struct MHD_OptionItem opts[8];
	const union MHD_DaemonInfo *di;
	size_t i;
	unsigned int flags;
	size_t cert_len = 0;
	char host[INET6_ADDRSTRLEN + 1];
	int r = ERR_INTERNAL;

	return_val_if_fail(cfg != NULL && cfg->listen != NULL &&
	    cfg->handler != NULL && out != NULL, ERR_INVALID_ARG);
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		return err_set(e, ERR_CONFIG, "TLS needs both a certificate "
		    "(--tls-cert) and its key (--tls-key)");
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	srv->cfg = *cfg;
	if (srv->cfg.max_body == 0)
		srv->cfg.max_body = DIR_BODY_MAX_DEFAULT;
	if (srv->cfg.threads == 0)
		srv->cfg.threads = DIR_THREADS_DEFAULT;
	if (srv->cfg.burst == 0)
		srv->cfg.burst = 2 * srv->cfg.rate;
	if (srv->cfg.max_connections == 0)
		srv->cfg.max_connections = DIR_CONNECTIONS_DEFAULT;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	srv->timer_next = UINT64_MAX;
	pthread_mutex_init(&srv->wait_lock, NULL);
	pthread_cond_init(&srv->wait_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&srv->flight_lock, NULL);
	pthread_cond_init(&srv->flight_cond, NULL);
	pthread_mutex_init(&srv->rate_lock, NULL);

	if ((r = parse_listen(cfg->listen, &ss, &ss_len, e)) != 0)
		goto out;
	/* Certificate paths are often symlinks into a renewal tool's tree. */
	if (cfg->tls_cert != NULL &&
	    ((r = fileio_read(cfg->tls_cert, TLS_FILE_MAX, FILEIO_FOLLOW,
	    &srv->tls_cert, &cert_len, e)) != 0 ||
	    (r = fileio_read(cfg->tls_key, TLS_FILE_MAX, FILEIO_FOLLOW |
	    FILEIO_SECRET, &srv->tls_key, &srv->tls_key_len, e)) != 0))
		goto out;
	if (pthread_create(&srv->timer, NULL, timer_main, srv) != 0) {
		r = err_set(e, ERR_INTERNAL, "cannot start the timer thread");
		goto out;
	}
	srv->timer_started = 1;

	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (srv->tls_cert != NULL)
		flags |= MHD_USE_TLS;
	i = 0;
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
	    (intptr_t)srv->cfg.threads, NULL };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
	    (intptr_t)srv->cfg.max_connections, NULL };
	opts[i++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	    30, NULL };
	if (srv->tls_cert != NULL) {
		opts[i++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert };
		opts[i++] = (struct MHD_OptionItem){
		    MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key };
	}
	opts[i] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (srv->daemon == NULL) {
		r = err_set(e, ERR_IO, "cannot listen on %s (address in use, "
		    "not permitted, or a bad TLS certificate or key)",
		    cfg->listen);
		goto out;
	}
	di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (getnameinfo((struct sockaddr *)&ss, ss_len, host, sizeof(host),
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "?");
	snprintf(srv->address, sizeof(srv->address),
	    ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	    di != NULL ? (unsigned int)di->port : 0);
	*out = srv;
	srv = NULL; /* transferred */
	r = 0;
 out:
	if (srv != NULL) {
		if (srv->timer_started) {
			pthread_mutex_lock(&srv->wait_lock);
			srv->timer_stop = 1;
			pthread_cond_signal(&srv->wait_cond);
			pthread_mutex_unlock(&srv->wait_lock);
			pthread_join(srv->timer, NULL);
		}
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
	MHD_socket fd;

	if (srv == NULL)
		return;
	fd = MHD_quiesce_daemon(srv->daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	/* Answer every long-poll now. */
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
	pthread_mutex_lock(&srv->wait_lock);
	srv->timer_stop = 1;
	pthread_cond_signal(&srv->wait_cond);
	pthread_mutex_unlock(&srv->wait_lock);
	pthread_join(srv->timer, NULL);
	MHD_stop_daemon(srv->daemon);
	server_free(srv);
}
