/*
 * msg-agent.c - a client of the devid-agent socket: framing, errors, and
 * the "sign" operation.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "codec.h"
#include "crypto.h"
#include "errors.h"
#include "fileio.h"
#include "msg-agent.h"
#include "paths.h"

struct msg_agent {
	int fd;
	char *path;
};

int
msg_agent_socket_path(const char *path, char **out, struct err_ctx *e)
{
	int r;

	if (path != NULL && *path != '\0') {
		if ((*out = strdup(path)) == NULL)
			return ERR_ALLOC;
		return 0;
	}
	if ((r = path_default_socket(out, e)) == ERR_CONFIG)
		return err_wrap(e, r, "XDG_RUNTIME_DIR is not set: give the "
		    "agent's socket with --socket");
	return r;
}

int
msg_agent_connect(const char *path, struct msg_agent **out,
    struct err_ctx *e)
{
	struct sockaddr_un sun;
	struct timeval tv;
	struct msg_agent *a = NULL;
	int fd = -1, r = ERR_INTERNAL;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return err_set(e, ERR_CONFIG, "the socket path %s is too long",
		    path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = err_set(e, ERR_IO, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		r = err_set(e, ERR_NETWORK, "devid-agent is not running (no "
		    "answer on %s: %s): start it with devid-agent run", path,
		    strerror(errno));
		goto out;
	}
	memset(&tv, 0, sizeof(tv));
	tv.tv_sec = MSG_AGENT_TIMEOUT_S;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->path = strdup(path)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	a->fd = fd;
	fd = -1;        /* transferred */
	*out = a;
	a = NULL;
	r = 0;
 out:
	if (fd >= 0)
		close(fd);
	if (a != NULL)
		free(a->path);
	free(a);
	return r;
}

void
msg_agent_free(struct msg_agent *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}

int
msg_agent_frame(size_t len, uint8_t hdr[4])
{
	if (len == 0 || len > MSG_AGENT_FRAME_MAX)
		return ERR_TOO_LARGE;
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	return 0;
}

int
msg_agent_frame_len(const uint8_t hdr[4], size_t *len)
{
	uint32_t n;

	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0 || n > MSG_AGENT_FRAME_MAX)
		return ERR_TOO_LARGE;
	*len = n;
	return 0;
}

static int
read_all(int fd, void *p, size_t len)
{
	uint8_t *q = p;
	ssize_t n;

	while (len > 0) {
		if ((n = read(fd, q, len)) < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ?
			    ERR_TIMEOUT : ERR_IO;
		}
		if (n == 0)
			return ERR_TRUNCATED;
		q += n;
		len -= (size_t)n;
	}
	return 0;
}

int
msg_agent_error_code(const char *code)
{
	static const struct {
		const char *word;
		int code;
	} map[] = {
		{ "bad_request", ERR_FORMAT },
		{ "too_large", ERR_TOO_LARGE },
		{ "denied", ERR_DENIED },
		{ "not_found", ERR_NOT_FOUND },
		{ "exists", ERR_EXISTS },
		{ "locked", ERR_PIN_REQUIRED },
		{ "pin_incorrect", ERR_PIN_INCORRECT },
		{ "pin_locked", ERR_PIN_LOCKED },
		{ "rejected", ERR_REJECTED },
		{ "unavailable", ERR_NETWORK },
		{ "token", ERR_TOKEN },
		{ "unsupported", ERR_UNSUPPORTED },
		{ "full", ERR_QUOTA },
		{ "internal", ERR_INTERNAL },
	};
	size_t i;

	if (code == NULL)
		return ERR_INTERNAL;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].word) == 0)
			return map[i].code;
	return ERR_INTERNAL;
}

/* Turns an error answer into a code and a sentence the user can act on. */
static int
answer_error(const json_t *resp, struct err_ctx *e)
{
	const json_t *err = json_object_get(resp, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	int r = msg_agent_error_code(code);

	if (msg == NULL)
		msg = "no reason given";
	switch (r) {
	case ERR_PIN_REQUIRED:
		return err_set(e, r, "the token needs its PIN: run devid-agent "
		    "unlock (%.200s)", msg);
	case ERR_PIN_INCORRECT:
	case ERR_PIN_LOCKED:
		return err_set(e, r, "the token refused the PIN: %.200s", msg);
	case ERR_NETWORK:
		return err_set(e, r, "the agent cannot reach the directory: "
		    "%.300s", msg);
	default:
		return err_set(e, r, "devid-agent: %.400s", msg);
	}
}

int
msg_agent_call(struct msg_agent *a, json_t *req, json_t **resp,
    struct err_ctx *e)
{
	char *text = NULL, *in = NULL;
	uint8_t hdr[4];
	size_t len = 0, in_len = 0;
	json_t *o = NULL;
	json_error_t jerr;
	int r = ERR_INTERNAL;

	if ((text = json_dumps(req, JSON_COMPACT)) == NULL)
		return ERR_ALLOC;
	len = strlen(text);
	if ((r = msg_agent_frame(len, hdr)) != 0) {
		r = err_set(e, r, "request of %zu bytes is too large for the "
		    "agent's socket", len);
		goto out;
	}
	if ((r = fileio_write_all(a->fd, hdr, 4)) != 0 ||
	    (r = fileio_write_all(a->fd, text, len)) != 0) {
		r = err_set(e, ERR_IO, "writing to devid-agent at %s: %s",
		    a->path, strerror(r));
		goto out;
	}
	if ((r = read_all(a->fd, hdr, 4)) != 0) {
		r = err_set(e, r == ERR_TIMEOUT ? ERR_TIMEOUT : ERR_IO,
		    "devid-agent at %s did not answer", a->path);
		goto out;
	}
	if ((r = msg_agent_frame_len(hdr, &in_len)) != 0) {
		r = err_set(e, ERR_FORMAT, "devid-agent sent a frame of bad "
		    "length");
		goto out;
	}
	if ((in = malloc(in_len)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = read_all(a->fd, in, in_len)) != 0) {
		r = err_set(e, ERR_IO, "devid-agent at %s closed the "
		    "connection in the middle of an answer", a->path);
		goto out;
	}
	if ((o = json_loadb(in, in_len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL || !json_is_object(o)) {
		r = err_set(e, ERR_FORMAT, "devid-agent sent an answer that "
		    "is not a JSON object");
		goto out;
	}
	if (!json_is_true(json_object_get(o, "ok"))) {
		r = answer_error(o, e);
		goto out;
	}
	*resp = o;
	o = NULL;       /* transferred */
	r = 0;
 out:
	/* Answers may hold a session token or plaintext. */
	if (in != NULL) {
		crypto_wipe(in, in_len);
		free(in);
	}
	if (text != NULL) {
		crypto_wipe(text, len);
		free(text);
	}
	json_decref(o);
	return r;
}

int
msg_agent_sign(struct msg_agent *a, const uint8_t *transcript, size_t len,
    uint8_t sig[64], struct err_ctx *e)
{
	char *b64 = NULL;
	const char *s;
	json_t *req = NULL, *resp = NULL;
	int r = ERR_INTERNAL;

	if ((r = b64url_encode(transcript, len, &b64)) != 0)
		goto out;
	if ((req = json_pack("{s:s, s:s}", "op", "sign", "transcript",
	    b64)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = msg_agent_call(a, req, &resp, e)) != 0)
		goto out;
	if ((s = json_string_value(json_object_get(resp, "sig"))) == NULL ||
	    b64url_decode_exact(s, strlen(s), sig, 64) != 0) {
		r = err_set(e, ERR_FORMAT, "devid-agent answered sign without "
		    "a 64-byte signature");
		goto out;
	}
	r = 0;
 out:
	free(b64);
	json_decref(req);
	json_decref(resp);
	return r;
}
