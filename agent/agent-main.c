/*
 * agent-main.c - devid-agent's main(): parses the command line and hands
 * it to the subcommand (init, register and enroll in agent-init.c, run in
 * agent-run.c, the commands that ask the running daemon, endorse among
 * them, in agent-client.c).  docs/agent.md is the manual.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "agent-cmd.h"
#include "agent-config.h"
#include "errors.h"
#include "secmem.h"

int
main(int argc, char **argv)
{
	struct agent_config flags;
	struct agent_cli cli;
	struct err_ctx e;
	int rc;

	/* First: jansson's copies of PINs and payloads are wiped. */
	secmem_json_install();
	memset(&cli, 0, sizeof(cli));
	err_clear(&e);
	agent_config_init(&flags);
	if (agent_cli_parse(argc, argv, &cli, &flags, &e) != 0) {
		rc = agent_cli_die(NULL, &e);
		goto out;
	}
	if (cli.help || cli.command == NULL ||
	    strcmp(cli.command, "help") == 0) {
		agent_cli_usage(cli.help || cli.command != NULL ? stdout :
		    stderr);
		rc = cli.help || cli.command != NULL ? 0 : 2;
		goto out;
	}
	if (strcmp(cli.command, "init") == 0)
		rc = agent_cmd_init(&cli, &flags);
	else if (strcmp(cli.command, "register") == 0)
		rc = agent_cmd_register(&cli, &flags);
	else if (strcmp(cli.command, "enroll") == 0)
		rc = agent_cmd_enroll(&cli, &flags);
	else if (strcmp(cli.command, "endorse") == 0)
		rc = agent_cmd_endorse(&cli, &flags);
	else if (strcmp(cli.command, "run") == 0)
		rc = agent_cmd_run(&cli, &flags);
	else
		rc = agent_cmd_client(&cli, &flags);
 out:
	agent_config_free(&flags);
	return rc;
}
