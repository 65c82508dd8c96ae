/*
 * wit-server.c - devid-witness's HTTP server on libmicrohttpd.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "errors.h"
#include "netaddr.h"
#include "wit-server.h"
#include "wit-witness.h"

#define HOST_MAX 255

struct wit_server {
	struct MHD_Daemon *daemon;
	struct wit *w;
	struct wit_server_config cfg;
	char listen[HOST_MAX + 16];
	char address[INET6_ADDRSTRLEN + 16];
};

/* A request being received. */
struct conn {
	char *body;
	size_t len;
	int too_large;
};

void
wit_log(const char *fmt, ...)
{
	char when[32];
	char line[1024];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)now);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s %s\n", when, line);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	wit_log("libmicrohttpd: %s", msg);
}

/* Queues an answer: status, content type, body (copied). */
static enum MHD_Result
respond(struct MHD_Connection *c, unsigned int status, const char *type,
    const char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (type != NULL &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    type) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
respond_text(struct MHD_Connection *c, unsigned int status, const char *s)
{
	return respond(c, status, "text/plain; charset=utf-8", s, strlen(s));
}

/* Appends n bytes to q, or marks it too large (and keeps nothing). */
static void
body_append(struct conn *q, const char *p, size_t n)
{
	char *np;

	if (q->too_large)
		return;
	if (n > WIT_BODY_MAX - q->len) {
		q->too_large = 1;
		free(q->body);
		q->body = NULL;
		q->len = 0;
		return;
	}
	if ((np = realloc(q->body, q->len + n + 1)) == NULL) {
		/* treated as too large: the client is told and may retry */
		q->too_large = 1;
		return;
	}
	q->body = np;
	memcpy(q->body + q->len, p, n);
	q->len += n;
	q->body[q->len] = '\0';
}

/* The whole request is in: handles it. */
static enum MHD_Result
serve(struct wit_server *srv, struct MHD_Connection *c, struct conn *q)
{
	struct wit_answer a;
	struct err_ctx e;
	enum MHD_Result ret;
	int r;

	memset(&a, 0, sizeof(a));
	err_clear(&e);
	if (q->too_large) {
		if (!srv->cfg.quiet)
			wit_log("add-checkpoint: 413 body too large");
		return respond_text(c, 413, "request body too large\n");
	}
	r = wit_add_checkpoint(srv->w, q->body != NULL ? q->body : "", q->len,
	    (uint64_t)time(NULL), &a, &e);
	if (r != 0)
		wit_log("add-checkpoint: %s: %s", a.summary, err_msg(&e));
	else if (!srv->cfg.quiet)
		wit_log("add-checkpoint: %u %s", a.status, a.summary);
	ret = respond(c, a.status != 0 ? a.status : 500, a.content_type,
	    a.body != NULL ? a.body : "", a.body_len);
	wit_answer_clear(&a);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct wit_server *srv = cls;
	struct conn *q = *con_cls;
	const char *cl;
	char *end;
	unsigned long long n;

	(void)version;
	if (q == NULL) {
		if (strcmp(url, "/add-checkpoint") != 0)
			return respond_text(c, 404, "not found\n");
		if (strcmp(method, "POST") != 0) {
			struct MHD_Response *resp;
			enum MHD_Result ret;

			resp = MHD_create_response_from_buffer(0, NULL,
			    MHD_RESPMEM_PERSISTENT);
			if (resp == NULL)
				return MHD_NO;
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
			    "POST");
			ret = MHD_queue_response(c, 405, resp);
			MHD_destroy_response(resp);
			return ret;
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			n = strtoull(cl, &end, 10);
			if (*end == '\0' && n > WIT_BODY_MAX) {
				if (!srv->cfg.quiet)
					wit_log("add-checkpoint: 413 body of "
					    "%llu bytes", n);
				return respond_text(c, 413,
				    "request body too large\n");
			}
		}
		if ((q = calloc(1, sizeof(*q))) == NULL)
			return MHD_NO;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		body_append(q, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return serve(srv, c, q);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct conn *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q == NULL)
		return;
	free(q->body);
	free(q);
	*con_cls = NULL;
}

int
wit_server_start(const struct wit_server_config *cfg, struct wit *w,
    struct wit_server **out, struct err_ctx *e)
{
	struct wit_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t ss_len = 0;
	const union MHD_DaemonInfo *di;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned int flags;
	int r = ERR_INTERNAL;

	return_val_if_fail(cfg != NULL && cfg->listen != NULL && w != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	srv->cfg = *cfg;
	srv->w = w;
	if (srv->cfg.threads == 0)
		srv->cfg.threads = WIT_THREADS_DEFAULT;
	if (srv->cfg.max_connections == 0)
		srv->cfg.max_connections = WIT_CONNECTIONS_DEFAULT;
	if (srv->cfg.per_address == 0)
		srv->cfg.per_address = WIT_PER_ADDRESS_DEFAULT;
	if (srv->cfg.timeout_s == 0)
		srv->cfg.timeout_s = WIT_TIMEOUT_DEFAULT_S;
	snprintf(srv->listen, sizeof(srv->listen), "%s", cfg->listen);
	srv->cfg.listen = srv->listen;
	if ((r = net_listen_parse(srv->listen, 1, &ss, &ss_len, e)) != 0)
		goto out;
	flags = MHD_USE_AUTO_INTERNAL_THREAD |
	    MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
	    MHD_OPTION_SOCK_ADDR, &ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)srv->cfg.threads,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)srv->cfg.max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)srv->cfg.per_address,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)srv->cfg.timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_END);
	if (srv->daemon == NULL) {
		r = err_set(e, ERR_IO, "cannot listen on %s (address in use "
		    "or not permitted)", srv->listen);
		goto out;
	}
	di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (getnameinfo((const struct sockaddr *)&ss, ss_len, host,
	    sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "?");
	snprintf(srv->address, sizeof(srv->address),
	    ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	    di != NULL ? (unsigned int)di->port : 0);
	*out = srv;
	srv = NULL; /* transferred */
	r = 0;
 out:
	wit_server_stop(srv);
	return r;
}

const char *
wit_server_address(const struct wit_server *srv)
{
	return srv->address;
}

void
wit_server_stop(struct wit_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon != NULL)
		MHD_stop_daemon(srv->daemon);
	free(srv);
}
