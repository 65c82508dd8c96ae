/*
 * msg-main.c - devid-msg: messages between devid devices that refuse
 * phantom devices.  See docs/msg.md.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "errors.h"
#include "msg.h"
#include "secmem.h"

int
main(int argc, char **argv)
{
	struct msg_cli cli;
	struct err_ctx e;

	/* First: jansson's copies of payloads and sessions are wiped. */
	secmem_json_install();
	err_clear(&e);
	if (msg_cli_parse(argc, argv, &cli, &e) != 0) {
		fprintf(stderr, "devid-msg: %s (devid-msg --help)\n",
		    err_msg(&e));
		return 2;
	}
	switch (cli.cmd) {
	case MSG_CMD_HELP:
		msg_cli_usage(stdout);
		return 0;
	case MSG_CMD_VERSION:
		printf("devid-msg %s\n", PACKAGE_VERSION);
		return 0;
	case MSG_CMD_SEND:
		return msg_cmd_send(&cli);
	case MSG_CMD_RECV:
		return msg_cmd_recv(&cli);
	case MSG_CMD_TRUST:
		return msg_cmd_trust(&cli);
	case MSG_CMD_CONTACTS:
		return msg_cmd_contacts(&cli);
	default:
		msg_cli_usage(stderr);
		return 2;
	}
}
