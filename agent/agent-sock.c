/*
 * agent-sock.c - frames, the non-blocking socket server and the client.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-log.h"
#include "agent-sock.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"

/* --- frames --- */

int
agent_sock_frame_header(const uint8_t hdr[4], size_t max, uint32_t *len)
{
	uint32_t n;

	if (max == 0 || max > AGENT_SOCK_FRAME_MAX)
		max = AGENT_SOCK_FRAME_MAX;
	n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	    ((uint32_t)hdr[2] << 8) | (uint32_t)hdr[3];
	if (n == 0)
		return ERR_FORMAT;
	if (n > max)
		return ERR_TOO_LARGE;
	*len = n;
	return 0;
}

int
agent_sock_frame_decode(const uint8_t *p, size_t len, json_t **out,
    struct err_ctx *e)
{
	return_val_if_fail(p != NULL && out != NULL, ERR_INVALID_ARG);
	return devrec_json_load((const char *)p, len, AGENT_SOCK_FRAME_MAX, out,
	    "request", e);
}

int
agent_sock_frame_encode(const json_t *obj, uint8_t **out, size_t *out_len,
    struct err_ctx *e)
{
	char *text;
	uint8_t *f;
	size_t n;

	if ((text = json_dumps(obj, JSON_COMPACT)) == NULL)
		return err_set(e, ERR_ALLOC, "cannot encode a frame");
	n = strlen(text);
	if (n == 0 || n > AGENT_SOCK_FRAME_MAX) {
		free(text);
		return err_set(e, ERR_TOO_LARGE, "frame of %zu bytes is over "
		    "the limit of %zu", n, AGENT_SOCK_FRAME_MAX);
	}
	if ((f = malloc(n + 4)) == NULL) {
		free(text);
		return ERR_ALLOC;
	}
	f[0] = (uint8_t)(n >> 24);
	f[1] = (uint8_t)(n >> 16);
	f[2] = (uint8_t)(n >> 8);
	f[3] = (uint8_t)n;
	memcpy(f + 4, text, n);
	crypto_wipe(text, n);
	free(text);
	*out = f;
	*out_len = n + 4;
	return 0;
}

const char *
agent_sock_err_code(int err)
{
	switch (err) {
	case ERR_FORMAT:
	case ERR_TRUNCATED:
	case ERR_INVALID_ARG:
		return "bad_request";
	case ERR_TOO_LARGE:
		return "too_large";
	case ERR_DENIED:
		return "denied";
	case ERR_NOT_FOUND:
		return "not_found";
	case ERR_EXISTS:
		return "exists";
	case ERR_PIN_REQUIRED:
		return "locked";
	case ERR_PIN_INCORRECT:
		return "pin_incorrect";
	case ERR_PIN_LOCKED:
		return "pin_locked";
	case ERR_REJECTED:
		return "rejected";
	case ERR_NETWORK:
	case ERR_TIMEOUT:
		return "unavailable";
	case ERR_TOKEN:
	case ERR_TOKEN_NOT_PRESENT:
		return "token";
	case ERR_QUOTA:
		return "full";
	default:
		return "internal";
	}
}

json_t *
agent_sock_error_reply(const char *code, const char *msg)
{
	return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code,
	    "message", msg);
}

/* --- server --- */

struct agent_sock_conn {
	struct agent_sock_server *srv;
	int fd;
	uid_t uid;
	uint8_t hdr[4];
	size_t hdr_got;
	uint8_t *body;
	uint32_t body_len;
	size_t body_got;
	uint8_t *out;
	size_t out_len;
	size_t out_off;
	int follow;
	int closing;            /* close once the output is flushed */
	int dead;               /* close now */
	time_t last_io;
};

struct agent_sock_server {
	char *path;
	int fd;
	agent_sock_handler_fn handler;
	void *arg;
	struct agent_sock_conn *conns[AGENT_SOCK_MAX_CLIENTS];
	size_t n_conns;
	uint64_t refused_peers;
	uint64_t bad_frames;
};

/* Whether an agent answers on path. */
static int
sock_alive(const char *path)
{
	struct sockaddr_un sa;
	int fd, alive;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

int
agent_sock_server_open(const char *path, agent_sock_handler_fn handler,
    void *arg, struct agent_sock_server **out, struct err_ctx *e)
{
	struct agent_sock_server *s = NULL;
	struct sockaddr_un sa;
	struct stat st;
	char dir[PATH_MAX], *slash;
	mode_t old_umask;
	int r = ERR_INTERNAL, bound = 0;

	return_val_if_fail(path != NULL && handler != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(dir))
		return err_set(e, ERR_CONFIG, "socket path %s is too long",
		    path);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return err_set(e, ERR_CONFIG, "socket path %s must be absolute "
		    "and inside a directory of its own", path);
	*slash = '\0';
	if ((r = path_private_dir(dir, e)) != 0)
		return r;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(e, ERR_EXISTS, "%s exists and is not a "
			    "socket", path);
		if (sock_alive(path))
			return err_set(e, ERR_EXISTS, "an agent already runs "
			    "on %s", path);
		(void)unlink(path);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ERR_ALLOC;
	s->fd = -1;
	s->handler = handler;
	s->arg = arg;
	if ((s->path = strdup(path)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		r = err_set(e, ERR_IO, "socket: %s", strerror(errno));
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	old_umask = umask(0177);
	r = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (r != 0) {
		r = err_set(e, ERR_IO, "bind %s: %s", path, strerror(errno));
		goto out;
	}
	bound = 1;
	if (chmod(path, 0600) != 0 || listen(s->fd, 64) != 0) {
		r = err_set(e, ERR_IO, "listen %s: %s", path, strerror(errno));
		goto out;
	}
	*out = s;
	s = NULL;       /* transferred */
	r = 0;
 out:
	if (s != NULL) {
		if (bound)
			(void)unlink(path);
		if (s->fd >= 0)
			close(s->fd);
		free(s->path);
		free(s);
	}
	return r;
}

/* Wipes and frees c's output queue (answers may hold a payload). */
static void
conn_out_free(struct agent_sock_conn *c)
{
	if (c->out != NULL) {
		crypto_wipe(c->out, c->out_len);
		free(c->out);
	}
	c->out = NULL;
	c->out_len = 0;
	c->out_off = 0;
}

static void
conn_free(struct agent_sock_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->body != NULL) {
		/* A frame cut short may hold part of a PIN. */
		crypto_wipe(c->body, c->body_len);
		free(c->body);
	}
	conn_out_free(c);
	free(c);
}

void
agent_sock_server_close(struct agent_sock_server *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_conns; i++)
		conn_free(s->conns[i]);
	if (s->fd >= 0)
		close(s->fd);
	if (s->path != NULL)
		(void)unlink(s->path);
	free(s->path);
	free(s);
}

/*
 * Appends len bytes to c's output queue.  The queue moves to a new buffer
 * and the old one is wiped (no realloc(), which would leave a copy of
 * what was queued -- a decrypted payload -- in freed memory).
 */
static int
conn_queue(struct agent_sock_conn *c, const uint8_t *p, size_t len)
{
	uint8_t *n;
	size_t pending = c->out_len - c->out_off;

	if (pending + len > AGENT_SOCK_OUT_MAX + AGENT_SOCK_FRAME_MAX + 4)
		return ERR_TOO_LARGE;
	if ((n = malloc(pending + len)) == NULL)
		return ERR_ALLOC;
	if (pending > 0)
		memcpy(n, c->out + c->out_off, pending);
	memcpy(n + pending, p, len);
	conn_out_free(c);
	c->out = n;
	c->out_len = pending + len;
	return 0;
}

void
agent_sock_conn_send(struct agent_sock_conn *c, const json_t *obj)
{
	uint8_t *f = NULL;
	size_t n = 0;

	if (c == NULL || c->dead)
		return;
	if (agent_sock_frame_encode(obj, &f, &n, NULL) != 0 ||
	    conn_queue(c, f, n) != 0)
		c->dead = 1;
	if (f != NULL) {
		crypto_wipe(f, n);
		free(f);
	}
}

void
agent_sock_conn_set_follow(struct agent_sock_conn *c, int follow)
{
	if (c != NULL)
		c->follow = follow;
}

void
agent_sock_server_broadcast(struct agent_sock_server *s, const json_t *obj)
{
	size_t i;

	for (i = 0; i < s->n_conns; i++)
		if (s->conns[i]->follow)
			agent_sock_conn_send(s->conns[i], obj);
}

size_t
agent_sock_server_clients(const struct agent_sock_server *s)
{
	return s->n_conns;
}

uint64_t
agent_sock_server_refused_peers(const struct agent_sock_server *s)
{
	return s->refused_peers;
}

uint64_t
agent_sock_server_bad_frames(const struct agent_sock_server *s)
{
	return s->bad_frames;
}

/* Sends an error and closes c after it. */
static void
conn_fail(struct agent_sock_conn *c, const char *code, const char *msg)
{
	json_t *j = agent_sock_error_reply(code, msg);

	c->srv->bad_frames++;
	if (j != NULL)
		agent_sock_conn_send(c, j);
	json_decref(j);
	c->closing = 1;
}

/* Best effort: one error frame on a fresh non-blocking socket. */
static void
refuse_fd(int fd, const char *msg)
{
	json_t *j = agent_sock_error_reply("denied", msg);
	uint8_t *f = NULL;
	size_t n = 0;

	if (j != NULL && agent_sock_frame_encode(j, &f, &n, NULL) == 0)
		(void)!write(fd, f, n);
	free(f);
	json_decref(j);
}

/*
 * Accepts every pending connection: a peer of another uid (SO_PEERCRED)
 * or one beyond AGENT_SOCK_MAX_CLIENTS gets one error frame and is closed.
 */
static void
server_accept(struct agent_sock_server *s)
{
	struct agent_sock_conn *c;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	char msg[128];
	int fd;

	for (;;) {
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred,
		    &clen) != 0 || cred.uid != geteuid()) {
			s->refused_peers++;
			snprintf(msg, sizeof(msg), "peer uid %d is not the "
			    "agent's uid %u", clen == sizeof(cred) ?
			    (int)cred.uid : -1, (unsigned int)geteuid());
			agent_log(LOG_WARNING, "socket: refused a client: %s",
			    msg);
			refuse_fd(fd, msg);
			close(fd);
			continue;
		}
		if (s->n_conns >= AGENT_SOCK_MAX_CLIENTS) {
			agent_log(LOG_WARNING, "socket: refused a client: "
			    "already %d clients", AGENT_SOCK_MAX_CLIENTS);
			refuse_fd(fd, "too many clients");
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			return;
		}
		c->srv = s;
		c->fd = fd;
		c->uid = cred.uid;
		c->last_io = time(NULL);
		s->conns[s->n_conns++] = c;
	}
}

/* Handles the complete frame in c->body. */
static void
conn_frame(struct agent_sock_conn *c)
{
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL;

	err_clear(&e);
	if (agent_sock_frame_decode(c->body, c->body_len, &req, &e) != 0) {
		c->srv->bad_frames++;
		resp = agent_sock_error_reply("bad_request", err_msg(&e));
	} else {
		resp = c->srv->handler(c->srv->arg, c, req);
	}
	if (resp != NULL)
		agent_sock_conn_send(c, resp);
	json_decref(resp);
	json_decref(req);
	/* Requests may carry a PIN. */
	crypto_wipe(c->body, c->body_len);
	free(c->body);
	c->body = NULL;
	c->body_len = 0;
	c->body_got = 0;
	c->hdr_got = 0;
}

/* Reads what c has sent and handles complete frames. */
static void
conn_read(struct agent_sock_conn *c)
{
	uint8_t tmp[4];
	ssize_t n;
	uint32_t len;
	int r, frames = 0;

	/* A few frames per turn: a client that floods requests gets its
	 * share, not the whole loop. */
	while (!c->dead && !c->closing && frames < AGENT_SOCK_FRAMES_PER_TURN &&
	    c->out_len - c->out_off <= AGENT_SOCK_OUT_MAX) {
		if (c->hdr_got < 4) {
			n = read(c->fd, c->hdr + c->hdr_got, 4 - c->hdr_got);
		} else {
			n = read(c->fd, c->body + c->body_got,
			    c->body_len - c->body_got);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* EOF or error: a partial frame is dropped. */
			if (c->hdr_got > 0)
				c->srv->bad_frames++;
			c->dead = 1;
			return;
		}
		c->last_io = time(NULL);
		if (c->hdr_got < 4) {
			c->hdr_got += (size_t)n;
			if (c->hdr_got < 4)
				continue;
			memcpy(tmp, c->hdr, 4);
			if ((r = agent_sock_frame_header(tmp,
			    AGENT_SOCK_FRAME_MAX, &len)) != 0) {
				conn_fail(c, r == ERR_TOO_LARGE ? "too_large" :
				    "bad_request", r == ERR_TOO_LARGE ?
				    "frame larger than 4 MiB" :
				    "empty frame");
				return;
			}
			if ((c->body = malloc(len)) == NULL) {
				c->dead = 1;
				return;
			}
			c->body_len = len;
			c->body_got = 0;
			continue;
		}
		c->body_got += (size_t)n;
		if (c->body_got == c->body_len) {
			conn_frame(c);
			frames++;
		}
	}
}

/* Writes what c has queued without blocking; closes it once a closing
 * connection's queue is empty. */
static void
conn_write(struct agent_sock_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->dead = 1;
			return;
		}
		c->out_off += (size_t)n;
		c->last_io = time(NULL);
	}
	conn_out_free(c);
	if (c->closing)
		c->dead = 1;
}

int
agent_sock_server_poll(struct agent_sock_server *s, int timeout_ms, int wake_fd)
{
	struct pollfd pfd[AGENT_SOCK_MAX_CLIENTS + 2];
	struct agent_sock_conn *c;
	size_t i, n = 0, base;
	time_t now;
	int woke = 0, rc;

	pfd[n].fd = s->fd;
	pfd[n].events = POLLIN;
	n++;
	if (wake_fd >= 0) {
		pfd[n].fd = wake_fd;
		pfd[n].events = POLLIN;
		n++;
	}
	base = n;
	for (i = 0; i < s->n_conns; i++) {
		c = s->conns[i];
		pfd[n].fd = c->fd;
		pfd[n].events = 0;
		if (!c->closing
		    && c->out_len - c->out_off <= AGENT_SOCK_OUT_MAX)
			pfd[n].events |= POLLIN;
		if (c->out_off < c->out_len)
			pfd[n].events |= POLLOUT;
		n++;
	}
	rc = poll(pfd, n, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : ERR_IO;
	if (wake_fd >= 0 && (pfd[1].revents & POLLIN))
		woke = 1;
	/* Clients first: accepting may append to conns[]. */
	for (i = 0; i < s->n_conns && base + i < n; i++) {
		c = s->conns[i];
		if (pfd[base + i].revents & (POLLIN | POLLHUP | POLLERR))
			conn_read(c);
		if (!c->dead && (pfd[base + i].revents & POLLOUT))
			conn_write(c);
		if (pfd[base + i].revents & POLLNVAL)
			c->dead = 1;
	}
	if (pfd[0].revents & POLLIN)
		server_accept(s);
	/* Flush what handlers and broadcasts queued, drop the dead. */
	now = time(NULL);
	for (i = 0; i < s->n_conns;) {
		c = s->conns[i];
		if (!c->dead && c->out_off < c->out_len)
			conn_write(c);
		if (!c->dead && (c->hdr_got > 0) &&
		    now - c->last_io > AGENT_SOCK_PARTIAL_TIMEOUT_S) {
			s->bad_frames++;
			c->dead = 1;
		}
		if (!c->dead && !c->follow && c->out_off == c->out_len &&
		    now - c->last_io > AGENT_SOCK_IDLE_TIMEOUT_S)
			c->dead = 1;
		if (c->dead) {
			conn_free(c);
			s->conns[i] = s->conns[--s->n_conns];
			continue;
		}
		i++;
	}
	return woke;
}

/* --- client --- */

int
agent_sock_client_connect(const char *path, int *fd, struct err_ctx *e)
{
	struct sockaddr_un sa;
	int s;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, ERR_CONFIG, "socket path %s is too long",
		    path);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return err_set(e, ERR_IO, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = errno;

		close(s);
		if (err == ENOENT || err == ECONNREFUSED)
			return err_set(e, ERR_NOT_FOUND, "no agent answers on "
			    "%s: is devid-agent running?", path);
		return err_set(e, ERR_IO, "connect %s: %s", path,
		    strerror(err));
	}
	*fd = s;
	return 0;
}

int
agent_sock_client_send(int fd, const json_t *req, struct err_ctx *e)
{
	uint8_t *f = NULL;
	size_t n = 0;
	int r;

	if ((r = agent_sock_frame_encode(req, &f, &n, e)) != 0)
		return r;
	r = fileio_write_all(fd, f, n);
	r = r == 0 ? 0 : err_set(e, ERR_IO, "writing to the agent: %s",
	    strerror(r));
	crypto_wipe(f, n);
	free(f);
	return r;
}

/* Reads exactly len bytes within the deadline (ms since the epoch, or 0). */
static int
read_full(int fd, uint8_t *p, size_t len, int timeout_ms, struct err_ctx *e)
{
	struct pollfd pfd;
	ssize_t n;
	int rc;

	while (len > 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0)
			return err_set(e, ERR_TIMEOUT, "the agent did not "
			    "answer in time");
		if (rc < 0)
			return err_set(e, ERR_IO, "poll: %s", strerror(errno));
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return err_set(e, ERR_IO, "the agent closed the "
			    "connection");
		if (n < 0)
			return err_set(e, ERR_IO, "reading from the agent: %s",
			    strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
agent_sock_client_recv(int fd, int timeout_ms, json_t **resp, struct err_ctx *e)
{
	uint8_t hdr[4], *body = NULL;
	uint32_t len;
	int r;

	if ((r = read_full(fd, hdr, 4, timeout_ms, e)) != 0)
		return r;
	if ((r = agent_sock_frame_header(hdr, AGENT_SOCK_FRAME_MAX, &len)) != 0)
		return err_set(e, r, "bad frame from the agent");
	if ((body = malloc(len)) == NULL)
		return ERR_ALLOC;
	if ((r = read_full(fd, body, len, timeout_ms, e)) == 0)
		r = agent_sock_frame_decode(body, len, resp, e);
	/* An answer may hold a payload or a session token. */
	crypto_wipe(body, len);
	free(body);
	return r;
}

int
agent_sock_client_call(const char *path, const json_t *req, int timeout_ms,
    json_t **resp, struct err_ctx *e)
{
	json_t *j = NULL, *err;
	const char *msg, *code;
	int fd = -1, r;

	if ((r = agent_sock_client_connect(path, &fd, e)) != 0)
		return r;
	if ((r = agent_sock_client_send(fd, req, e)) != 0 ||
	    (r = agent_sock_client_recv(fd, timeout_ms, &j, e)) != 0)
		goto out;
	if (!json_is_true(json_object_get(j, "ok"))) {
		err = json_object_get(j, "error");
		msg = json_string_value(json_object_get(err, "message"));
		code = json_string_value(json_object_get(err, "code"));
		r = ERR_REJECTED;
		if (code != NULL && strcmp(code, "denied") == 0)
			r = ERR_DENIED;
		else if (code != NULL && strcmp(code, "not_found") == 0)
			r = ERR_NOT_FOUND;
		else if (code != NULL && strcmp(code, "locked") == 0)
			r = ERR_PIN_REQUIRED;
		else if (code != NULL && strcmp(code, "pin_incorrect") == 0)
			r = ERR_PIN_INCORRECT;
		err_set(e, r, "%s", msg != NULL ? msg : "the agent refused");
		goto out;
	}
	*resp = j;
	j = NULL;       /* transferred */
	r = 0;
 out:
	json_decref(j);
	if (fd >= 0)
		close(fd);
	return r;
}
