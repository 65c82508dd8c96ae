/*
 * msg-agent.h - the messaging client's side of the devid-agent socket
 * (docs/agent.md, "The socket protocol").
 *
 * Frames are a 4-byte big-endian length and that many bytes of JSON
 * holding one object, at most MSG_AGENT_FRAME_MAX bytes.  Every request is
 * answered in order; an answer with "ok": false becomes the matching
 * ERR_* code with a sentence a user can act on ("devid-agent is locked:
 * run devid-agent unlock").
 */
#ifndef DEVID_MSG_AGENT_H
#define DEVID_MSG_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define MSG_AGENT_FRAME_MAX ((size_t)4 * 1024 * 1024)
/* Seconds an answer may take: the agent may wait for the directory
 * (a login, a revocation) for its own http_timeout first. */
#define MSG_AGENT_TIMEOUT_S 120

struct msg_agent;

/*
 * The socket path: path when not NULL, else $XDG_RUNTIME_DIR/devid/
 * agent.sock.  A new string in *out (caller frees).  ERR_CONFIG when
 * neither is available.
 */
int msg_agent_socket_path(const char *path, char **out, struct err_ctx *e);

/*
 * Connects to the agent at path.  A missing socket or a refused
 * connection is ERR_NETWORK with "devid-agent is not running (...)".
 * *out is a new connection (free with msg_agent_free()).
 */
int msg_agent_connect(const char *path, struct msg_agent **out,
    struct err_ctx *e);

/* Closes the connection; NULL is fine. */
void msg_agent_free(struct msg_agent *a);

/*
 * Sends req (borrowed) and reads one answer.  On "ok": true returns 0
 * with the answer in *resp (caller json_decref).  An error answer is
 * returned as msg_agent_error_code(code) with the agent's sentence (and
 * what to do) in e; a broken connection or frame is ERR_IO.
 */
int msg_agent_call(struct msg_agent *a, json_t *req, json_t **resp,
    struct err_ctx *e);

/* The ERR_* code for an error word of the socket protocol. */
int msg_agent_error_code(const char *code);

/*
 * Frame helpers, exposed for the unit tests: msg_agent_frame() writes
 * the 4-byte header for len into hdr (ERR_TOO_LARGE above the maximum or
 * for 0); msg_agent_frame_len() reads it back with the same limits.
 */
int msg_agent_frame(size_t len, uint8_t hdr[4]);
int msg_agent_frame_len(const uint8_t hdr[4], size_t *len);

/*
 * The "sign" operation: the agent signs SHA-256(transcript) with the
 * device signing key, raw r||s into sig.  The transcript must begin with
 * a domain tag the agent signs (else ERR_DENIED).
 */
int msg_agent_sign(struct msg_agent *a, const uint8_t *transcript,
    size_t len, uint8_t sig[64], struct err_ctx *e);

#endif /* DEVID_MSG_AGENT_H */
