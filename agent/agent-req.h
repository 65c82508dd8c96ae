/*
 * agent-req.h - reading the agent's socket requests and writing answers.
 *
 * A request is a JSON object with "op", an optional "id" and the fields
 * of its operation (docs/agent.md); an answer is {"ok": true, ...} or the
 * error object of agent-sock.  These helpers are shared by every
 * operation (agent-ops.c, agent-open.c), so that a field is checked and
 * an error worded the same way everywhere.
 */
#ifndef DEVID_AGENT_REQ_H
#define DEVID_AGENT_REQ_H

#include <stddef.h>

#include <jansson.h>

#include "errors.h"

/* An error answer for code r with the message in e (a new object). */
json_t *agent_reply_err(int r, const struct err_ctx *e);

/* The answer of an operation that has nothing to say: {"ok": true}. */
json_t *agent_reply_ok(void);

/* 0 when req has only these keys besides "op" and "id"; else ERR_FORMAT. */
int agent_req_keys(const json_t *req, const char *const *allowed, size_t n,
    struct err_ctx *e);

/* A required string field of 1..max bytes (borrowed), or NULL with e set. */
const char *agent_req_str(const json_t *req, const char *key, size_t max,
    struct err_ctx *e);

/*
 * Records in e why an operation that needs the unlocked token was
 * refused, and returns ERR_PIN_REQUIRED.
 */
int agent_err_locked(struct err_ctx *e);

#endif /* DEVID_AGENT_REQ_H */
