/*
 * fuzz_agent.c - libFuzzer harness for the agent's own parsers: the
 * config file, socket frames, the registry file, alert-journal lines and
 * the transparency-log monitor's state file.  All of them read bytes that
 * someone other than the agent can write: the user's editor, any local
 * client, and malware without the PIN that edits the state directory.
 *
 * The first input byte picks the parser (its value modulo 5); the rest is
 * its input.  A monitor state that parses must format back to text that
 * parses to the same state.
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
#include "agent-tlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config cfg;
	struct registry reg;
	struct agent_alert a;
	struct agent_tlog_monitor m, m2;
	char how[16], *again = NULL;
	size_t again_len;
	json_t *obj = NULL;
	const char *text;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	size--;
	switch (data[0] % 5) {
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
	case 4:
		if (agent_tlog_monitor_parse(text, size, &m, NULL) != 0)
			break;
		if (agent_tlog_monitor_format(&m, &again, &again_len) != 0 ||
		    agent_tlog_monitor_parse(again, again_len, &m2, NULL) != 0 ||
		    m.f.size != m2.f.size || m.f.count != m2.f.count ||
		    m.next_seq != m2.next_seq ||
		    memcmp(m.f.node, m2.f.node, (size_t)m.f.count *
		    sizeof(m.f.node[0])) != 0)
			abort();
		free(again);
		break;
	default:
		memset(&a, 0, sizeof(a));
		if (agent_alert_parse_line(text, size, &a, how, NULL) == 1)
			json_decref(a.details);
		break;
	}
	return 0;
}
