/*
 * agent-req.c - reading the agent's socket requests and writing answers.
 */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "agent-req.h"
#include "agent-sock.h"
#include "devrec.h"
#include "errors.h"

json_t *
agent_reply_err(int r, const struct err_ctx *e)
{
	return agent_sock_error_reply(agent_sock_err_code(r), err_msg(e));
}

json_t *
agent_reply_ok(void)
{
	return json_pack("{s:b}", "ok", 1);
}

int
agent_req_keys(const json_t *req, const char *const *allowed, size_t n,
    struct err_ctx *e)
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)req, key, v) {
		(void)v;
		if (strcmp(key, "op") == 0 || strcmp(key, "id") == 0)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (i == n)
			return err_set(e, ERR_FORMAT, "unknown field '%.32s' "
			    "in the request", key);
	}
	return 0;
}

const char *
agent_req_str(const json_t *req, const char *key, size_t max,
    struct err_ctx *e)
{
	const char *s = NULL;

	if (devrec_json_str(req, key, max, &s, "request", e) != 0)
		return NULL;
	return s;
}

int
agent_err_locked(struct err_ctx *e)
{
	return err_set(e, ERR_PIN_REQUIRED, "the agent is locked: run "
	    "devid-agent unlock");
}
