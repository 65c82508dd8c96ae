/*
 * agent-sock.h - the agent's Unix socket: frames, the poll()-based server
 * and the client used by the CLI subcommands and other local programs.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of
 * JSON text holding one object; a length of 0 or more than AGENT_SOCK_FRAME_MAX
 * (4 MiB) is refused.  The server listens in a directory of mode 0700 on a
 * socket of mode 0600 and serves only peers of its own uid (SO_PEERCRED).
 * It reads and writes without blocking, so a slow or stuck client never
 * holds up the others.  docs/agent.md describes every request.
 */
#ifndef DEVID_AGENT_SOCK_H
#define DEVID_AGENT_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define AGENT_SOCK_FRAME_MAX ((size_t)4 * 1024 * 1024)
#define AGENT_SOCK_MAX_CLIENTS 64
/* Responses queued for one client before the server stops reading it. */
#define AGENT_SOCK_OUT_MAX ((size_t)16 * 1024 * 1024)
/* Frames handled for one client before the others get their turn. */
#define AGENT_SOCK_FRAMES_PER_TURN 4
/* A client that stays in the middle of a frame this long is dropped. */
#define AGENT_SOCK_PARTIAL_TIMEOUT_S 30
/* A client that sends nothing this long (and does not follow alerts) is
 * dropped, so that forgotten connections do not hold the slots. */
#define AGENT_SOCK_IDLE_TIMEOUT_S 600

/* --- frames --- */

/*
 * Checks a frame header: *len gets the body length.  ERR_FORMAT for a
 * zero length, ERR_TOO_LARGE above max (0: AGENT_SOCK_FRAME_MAX).
 */
int agent_sock_frame_header(const uint8_t hdr[4], size_t max, uint32_t *len);

/*
 * Parses a frame body: JSON text of exactly one object, no duplicate
 * keys, at most AGENT_SOCK_FRAME_MAX bytes.  *out is a new reference.
 * ERR_FORMAT / ERR_TOO_LARGE with a message in e.
 */
int agent_sock_frame_decode(const uint8_t *p, size_t len, json_t **out,
    struct err_ctx *e);

/*
 * Encodes obj as a complete frame (header and compact JSON) in a new
 * array (*out, caller frees) of *out_len bytes.  ERR_TOO_LARGE when the
 * JSON is longer than AGENT_SOCK_FRAME_MAX.
 */
int agent_sock_frame_encode(const json_t *obj, uint8_t **out, size_t *out_len,
    struct err_ctx *e);

/* {"ok": false, "error": {"code": word, "message": msg}}: a new object. */
json_t *agent_sock_error_reply(const char *code, const char *msg);
/* The error word for an ERR_* code ("denied", "not_found", ...). */
const char *agent_sock_err_code(int err);

/* --- server --- */

struct agent_sock_server;
struct agent_sock_conn;

/*
 * Handles one request (borrowed).  Returns the response (a new
 * reference, sent in order) or NULL to send nothing now.
 */
typedef json_t *(*agent_sock_handler_fn)(void *arg, struct agent_sock_conn *c,
    json_t *req);

/*
 * Creates the socket directory (0700, checked) and the socket at path
 * (0600), replacing a stale socket but refusing when an agent answers on
 * it (ERR_EXISTS).  On success *out serves requests through handler.
 */
int agent_sock_server_open(const char *path, agent_sock_handler_fn handler,
    void *arg, struct agent_sock_server **out, struct err_ctx *e);

/* Closes every connection and the socket, removes the socket file and
 * frees s.  NULL is fine. */
void agent_sock_server_close(struct agent_sock_server *s);

/*
 * Waits at most timeout_ms for activity on the socket, the clients or
 * wake_fd (-1: none), and serves what is ready.  Returns 1 when wake_fd
 * became readable (the caller drains it), 0 otherwise, or ERR_IO for a
 * poll failure other than EINTR.
 */
int agent_sock_server_poll(struct agent_sock_server *s, int timeout_ms,
    int wake_fd);

/* Queues a frame to c (obj borrowed); on failure c is closed. */
void agent_sock_conn_send(struct agent_sock_conn *c, const json_t *obj);

/* Marks c as a follower (alerts --follow) or not. */
void agent_sock_conn_set_follow(struct agent_sock_conn *c, int follow);

/* Sends obj to every follower. */
void agent_sock_server_broadcast(struct agent_sock_server *s,
    const json_t *obj);

/* Number of connected clients; counters of refused peers and frames. */
size_t agent_sock_server_clients(const struct agent_sock_server *s);
uint64_t agent_sock_server_refused_peers(const struct agent_sock_server *s);
uint64_t agent_sock_server_bad_frames(const struct agent_sock_server *s);

/* --- client --- */

/*
 * Connects to the agent at path.  ERR_NOT_FOUND when nothing listens
 * ("is devid-agent running?"), ERR_IO otherwise.
 */
int agent_sock_client_connect(const char *path, int *fd, struct err_ctx *e);

/* Sends one frame (blocking). */
int agent_sock_client_send(int fd, const json_t *req, struct err_ctx *e);

/* Reads one frame (blocking, at most timeout_ms; -1: no limit). */
int agent_sock_client_recv(int fd, int timeout_ms, json_t **resp,
    struct err_ctx *e);

/*
 * One request and its response on a new connection.  A response with
 * "ok": false is returned as an error whose message is the agent's.
 */
int agent_sock_client_call(const char *path, const json_t *req, int timeout_ms,
    json_t **resp, struct err_ctx *e);

#endif /* DEVID_AGENT_SOCK_H */
