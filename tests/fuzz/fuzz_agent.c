/*
 * fuzz_agent.c - libFuzzer harness for the agent's own parsers: the
 * config file, socket frames, the registry file and alert-journal lines.
 * All four read bytes that someone other than the agent can write: the
 * user's editor, any local client, and malware without the PIN that edits
 * the state directory.
 *
 * The first input byte picks the parser; the rest is its input.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent-alert.h"
#include "agent-config.h"
#include "registry.h"
#include "agent-sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config cfg;
	struct registry reg;
	struct agent_alert a;
	char how[16];
	json_t *obj = NULL;
	const char *text;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	size--;
	switch (data[0] % 4) {
	case 0:
		agent_config_init(&cfg);
		(void)agent_config_parse(&cfg, text, size, "fuzz", 0, NULL);
		agent_config_free(&cfg);
		break;
	case 1:
		if (agent_sock_frame_decode((const uint8_t *)text, size, &obj,
		    NULL) == 0)
			json_decref(obj);
		break;
	case 2:
		memset(&reg, 0, sizeof(reg));
		(void)reg_parse(text, size, &reg, NULL);
		reg_clear(&reg);
		break;
	default:
		memset(&a, 0, sizeof(a));
		if (agent_alert_parse_line(text, size, &a, how, NULL) == 1)
			json_decref(a.details);
		break;
	}
	return 0;
}
