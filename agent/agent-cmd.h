/*
 * agent-cmd.h - the devid-agent program's subcommands and what they share
 * (private to agent-main.c, agent-cli.c, agent-init.c, agent-run.c and
 * agent-client.c; not part of the agent library).
 *
 * main() parses the command line once (agent-cli.c) and hands the result
 * to one subcommand; each subcommand builds its effective settings with
 * agent_cli_load_settings() and returns the process's exit status.
 */
#ifndef DEVID_AGENT_CMD_H
#define DEVID_AGENT_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "agent-config.h"
#include "errors.h"

#define AGENT_PROG "devid-agent"

/* Options that are not settings. */
struct agent_cli {
	const char *command;
	const char *args[4];
	int n_args;
	const char *config;
	const char *password_file;
	const char *endorsement;        /* enroll --endorsement */
	int foreground;
	int use_existing;
	int follow;
	int json;
	int debug;
	int help;
	int yes;                /* endorse: the ids were compared */
	int force;              /* approve under require_endorsement */
	int no_qr;
	uint64_t locked;        /* settings given as flags */
};

/* --- agent-cli.c --- */

/* Prints the --help text (commands, options and every setting) to f. */
void agent_cli_usage(FILE *f);

/*
 * Prints "devid-agent: what: <message of e>" (or without "what: " when
 * what is NULL) to stderr.  Returns 1, the exit status of a failure.
 */
int agent_cli_die(const char *what, const struct err_ctx *e);

/*
 * Parses argv: the command, its arguments, the plain options (into cli,
 * which the caller zeroes) and every setting flag (--key value or
 * --key=value, dashes or underscores; into flags, initialised by the
 * caller with agent_config_init(), with the flag's bit set in
 * cli->locked).  Returns 0, or ERR_CONFIG (or the error of a bad value)
 * with the message in e.  Borrows argv's strings.
 */
int agent_cli_parse(int argc, char **argv, struct agent_cli *cli,
    struct agent_config *flags, struct err_ctx *e);

/*
 * Builds the effective settings in c: defaults, the config file
 * (--config or the XDG default; a missing file is fine when may_miss),
 * then the flags, then the XDG defaults for what is still unset
 * (want_socket: a missing socket path is an error).  When config_path is
 * not NULL it gets the config file's path (a new string) on success.  On
 * success the caller frees c with agent_config_free(); on failure c is
 * already freed (and empty, so freeing it again is harmless).
 */
int agent_cli_load_settings(const struct agent_cli *cli,
    const struct agent_config *flags, struct agent_config *c,
    char **config_path, int may_miss, int want_socket, struct err_ctx *e);

/*
 * Asks question on the terminal and returns 1 for an answer starting
 * with y or Y; 0 for anything else, and without asking when standard
 * input is not a terminal.
 */
int agent_cli_ask_yes(const char *question);

/*
 * Prints text as a QR code to f (UTF-8 half blocks, white on black, two
 * modules a character) when enabled, f is a terminal wide enough and the
 * locale is UTF-8.  Returns 1 when a code was printed.
 */
int agent_cli_print_qr(FILE *f, const char *text, int enabled);

/* --- the subcommands: each returns the exit status --- */

/*
 * init (agent-init.c): checks the directory first (nothing is created for
 * a wrong URL or key), then creates or adopts the keys, signs the device
 * record, pins the directory key, writes the registry (signed) and the
 * config.  Refuses a state directory that already holds a registry.
 */
int agent_cmd_init(const struct agent_cli *cli,
    const struct agent_config *flags);

/*
 * register (agent-init.c): sends this device's record, taken from the
 * registry after its signature verified with the token's key, to the
 * directory with the account password.  The password is wiped on every
 * path.
 */
int agent_cmd_register(const struct agent_cli *cli,
    const struct agent_config *flags);

/*
 * enroll (agent-init.c): on a new device after init, shows the device's
 * short id and enrolment code, takes the endorsement an existing device
 * made of it (--endorsement, else read from standard input), checks it,
 * keeps the endorsed record in the registry (signed) and registers it
 * with the account password.  Refuses while the daemon runs (it would
 * take the changed registry for tampering).
 */
int agent_cmd_enroll(const struct agent_cli *cli,
    const struct agent_config *flags);

/*
 * endorse (agent-client.c): on an existing device, decodes a new
 * device's enrolment code, shows its label and short id, asks whether
 * the new device shows the same (--yes: do not ask; without a terminal
 * and --yes it refuses), has the running daemon sign the endorsement in
 * the token and prints the endorsement string to carry back.
 */
int agent_cmd_endorse(const struct agent_cli *cli,
    const struct agent_config *flags);

/*
 * run (agent-run.c): detaches unless --foreground, loads the agent, opens
 * the socket, starts the watcher and serves until a signal.  On the way
 * out it waits a few seconds for a long-poll in flight; if it does not
 * end, the process exits without freeing what the watcher still uses.
 */
int agent_cmd_run(const struct agent_cli *cli,
    const struct agent_config *flags);

/*
 * Every other command (agent-client.c): the ones that talk to the running
 * daemon over its socket.  Builds the request, sends it and prints the
 * answer (as JSON with --json); an unknown command is refused here.
 * unlock reads the PIN from --pin-file or the terminal and wipes every
 * copy it made.
 */
int agent_cmd_client(const struct agent_cli *cli,
    const struct agent_config *flags);

#endif /* DEVID_AGENT_CMD_H */
