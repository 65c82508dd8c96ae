/*
 * msg-cli.c - devid-msg's command line.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "msg.h"

enum {
	OPT_FOLLOW = 256,
	OPT_JSON,
	OPT_COUNT,
	OPT_DEVICE,
	OPT_ENDORSED,
	OPT_SOCKET,
	OPT_DIRECTORY,
	OPT_DATA_DIR,
	OPT_MAX_STALE,
};

static const struct option long_opts[] = {
	{ "message", required_argument, NULL, 'm' },
	{ "file", required_argument, NULL, 'f' },
	{ "type", required_argument, NULL, 't' },
	{ "output", required_argument, NULL, 'o' },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "endorsed", required_argument, NULL, OPT_ENDORSED },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "directory", required_argument, NULL, OPT_DIRECTORY },
	{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
	{ "max-stale", required_argument, NULL, OPT_MAX_STALE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

void
msg_cli_usage(FILE *f)
{
	fprintf(f,
"Usage: devid-msg send ACCOUNT... [-m TEXT] [-f FILE [-t TYPE]]\n"
"       devid-msg recv [--follow] [--count N] [--json] [-o DIR]\n"
"       devid-msg trust ACCOUNT [--device ID-PREFIX | --endorsed yes|no]\n"
"       devid-msg contacts [--json]\n"
"\n"
"Messages between devid devices.  Every message is encrypted once and its\n"
"key wrapped to each device of the recipients and to this account's other\n"
"approved devices; keys never leave the devices' tokens (devid-agent).\n"
"\n"
"Commands:\n"
"  send ACCOUNT...   send TEXT (-m), a FILE (-f, with -m as its caption)\n"
"                    or standard input.  The recipients' device lists\n"
"                    are verified against the directory's signed logs\n"
"                    and the pins of earlier contacts; a device that is\n"
"                    new since the pin stops the send (see trust).\n"
"  recv              fetch, verify and show the messages for this device,\n"
"                    save their files (-o); acknowledge what was handled.\n"
"  trust ACCOUNT     accept ACCOUNT's current devices (or only the one\n"
"                    given with --device) after you checked them with the\n"
"                    contact, and pin them.  --endorsed yes: from now on\n"
"                    accept (and show) a new device of ACCOUNT that a\n"
"                    device you accepted endorsed, without asking.\n"
"  contacts          list the pinned contacts and their devices.\n"
"\n"
"Options:\n"
"  -m, --message TEXT   the message text (send; with -f its caption)\n"
"  -f, --file FILE      send FILE as an attachment (up to the directory's\n"
"                       limit, 100 MiB by default)\n"
"  -t, --type TYPE      the attachment's media type\n"
"                       (default application/octet-stream)\n"
"  -o, --output DIR     where received files are saved (default: the\n"
"                       current directory); never over an existing file\n"
"      --follow         keep waiting for new messages (recv)\n"
"      --count N        stop after N messages (recv)\n"
"      --json           one JSON object per line\n"
"      --device PREFIX  trust only this device (trust)\n"
"      --endorsed yes|no  trust_endorsed for ACCOUNT (trust; default no)\n"
"      --socket PATH    the agent's socket\n"
"                       (default $XDG_RUNTIME_DIR/devid/agent.sock)\n"
"      --directory URL  reach the directory at URL instead of the agent's\n"
"                       (its key must still be the pinned one)\n"
"      --data-dir DIR   contact pins, replay store and log\n"
"                       (default $XDG_DATA_HOME/devid)\n"
"      --max-stale S    refuse signed heads older than S seconds (900)\n"
"  -q, --quiet          print only messages and errors\n"
"  -h, --help           this text\n"
"  -V, --version        the version\n"
"\n"
"Exit status: 0 on success, 1 on failure (a message says what to do),\n"
"2 for a usage error.  See docs/msg.md.\n");
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return ERR_INVALID_ARG;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return ERR_INVALID_ARG;
	*out = v;
	return 0;
}

static int
parse_cmd(const char *s, enum msg_cmd *cmd)
{
	static const struct {
		const char *name;
		enum msg_cmd cmd;
	} cmds[] = {
		{ "send", MSG_CMD_SEND },
		{ "recv", MSG_CMD_RECV },
		{ "trust", MSG_CMD_TRUST },
		{ "contacts", MSG_CMD_CONTACTS },
		{ "help", MSG_CMD_HELP },
	};
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(s, cmds[i].name) == 0) {
			*cmd = cmds[i].cmd;
			return 0;
		}
	}
	return ERR_INVALID_ARG;
}

/*
 * The options, one case each, into cli.  -h and -V set cli->cmd and end
 * the parse there.  optind is left at the command.
 */
static int
parse_options(int argc, char **argv, struct msg_cli *cli, struct err_ctx *e)
{
	uint64_t v;
	int c;

	optind = 0;     /* GNU: start afresh (the tests parse many times) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:f:t:o:qhV", long_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'm':
			cli->text = optarg;
			break;
		case 'f':
			cli->file = optarg;
			break;
		case 't':
			cli->type = optarg;
			break;
		case 'o':
			cli->out_dir = optarg;
			break;
		case OPT_FOLLOW:
			cli->follow = 1;
			break;
		case OPT_JSON:
			cli->json = 1;
			break;
		case OPT_COUNT:
			if (parse_u64(optarg, 1000000, &v) != 0 || v == 0)
				return err_set(e, ERR_INVALID_ARG, "--count "
				    "takes a number from 1 to 1000000");
			cli->count = (unsigned long)v;
			break;
		case OPT_DEVICE:
			cli->device = optarg;
			break;
		case OPT_ENDORSED:
			if (strcmp(optarg, "yes") == 0)
				cli->endorsed = MSG_ENDORSED_YES;
			else if (strcmp(optarg, "no") == 0)
				cli->endorsed = MSG_ENDORSED_NO;
			else
				return err_set(e, ERR_INVALID_ARG, "--endorsed "
				    "takes yes or no");
			break;
		case OPT_SOCKET:
			cli->socket = optarg;
			break;
		case OPT_DIRECTORY: {
			struct err_ctx why;

			err_clear(&why);
			if (dirc_url_check(optarg, &why) != 0)
				return err_set(e, ERR_INVALID_ARG,
				    "--directory: %s", err_msg(&why));
			cli->directory = optarg;
			break;
		}
		case OPT_DATA_DIR:
			cli->data_dir = optarg;
			break;
		case OPT_MAX_STALE:
			if (parse_u64(optarg, 10u * 365 * 86400, &v) != 0 ||
			    v == 0)
				return err_set(e, ERR_INVALID_ARG, "--max-stale "
				    "takes a number of seconds (at least 1)");
			cli->max_stale_s = v;
			break;
		case 'q':
			cli->quiet = 1;
			break;
		case 'h':
			cli->cmd = MSG_CMD_HELP;
			return 0;
		case 'V':
			cli->cmd = MSG_CMD_VERSION;
			return 0;
		case ':':
			return err_set(e, ERR_INVALID_ARG, "%s needs a value",
			    argv[optind - 1]);
		default:
			return err_set(e, ERR_INVALID_ARG, "unknown option %s",
			    argv[optind - 1]);
		}
	}
	return 0;
}

/*
 * The command at argv[optind] and its accounts, each a valid account name;
 * one named twice counts once.
 */
static int
parse_command(int argc, char **argv, struct msg_cli *cli, struct err_ctx *e)
{
	size_t i;
	int pos;

	if (optind >= argc)
		return err_set(e, ERR_INVALID_ARG, "no command given");
	if (parse_cmd(argv[optind], &cli->cmd) != 0)
		return err_set(e, ERR_INVALID_ARG, "unknown command '%.40s'",
		    argv[optind]);
	for (pos = optind + 1; pos < argc; pos++) {
		if (cli->n_accounts == MSG_MAX_TO)
			return err_set(e, ERR_INVALID_ARG, "at most %d accounts",
			    MSG_MAX_TO);
		if (devrec_account_check(argv[pos], e) != 0)
			return err_wrap(e, ERR_INVALID_ARG, "'%.130s' is not an "
			    "account name (1-128 of a-z 0-9 . _ + @ -, starting "
			    "with a letter or digit)", argv[pos]);
		for (i = 0; i < cli->n_accounts; i++)
			if (strcmp(cli->accounts[i], argv[pos]) == 0)
				break;
		if (i == cli->n_accounts)        /* named twice: once */
			cli->accounts[cli->n_accounts++] = argv[pos];
	}
	return 0;
}

/* The accounts and options that go with cli->cmd (named cmd_name). */
static int
check_command_args(const struct msg_cli *cli, const char *cmd_name,
    struct err_ctx *e)
{
	switch (cli->cmd) {
	case MSG_CMD_SEND:
		if (cli->n_accounts == 0)
			return err_set(e, ERR_INVALID_ARG, "send: name at least "
			    "one recipient account");
		if (cli->type != NULL && cli->file == NULL)
			return err_set(e, ERR_INVALID_ARG, "send: --type goes "
			    "with -f");
		break;
	case MSG_CMD_TRUST:
		if (cli->n_accounts != 1)
			return err_set(e, ERR_INVALID_ARG, "trust: name exactly "
			    "one account");
		break;
	case MSG_CMD_RECV:
	case MSG_CMD_CONTACTS:
	case MSG_CMD_HELP:
		if (cli->n_accounts != 0)
			return err_set(e, ERR_INVALID_ARG, "%s takes no accounts",
			    cmd_name);
		break;
	default:
		break;
	}
	if (cli->cmd != MSG_CMD_SEND && (cli->text != NULL ||
	    cli->file != NULL || cli->type != NULL))
		return err_set(e, ERR_INVALID_ARG, "-m, -f and -t go with send");
	if (cli->cmd != MSG_CMD_RECV && (cli->out_dir != NULL ||
	    cli->follow || cli->count != 0))
		return err_set(e, ERR_INVALID_ARG, "-o, --follow and --count go "
		    "with recv");
	if (cli->cmd != MSG_CMD_TRUST && (cli->device != NULL ||
	    cli->endorsed != MSG_ENDORSED_UNSET))
		return err_set(e, ERR_INVALID_ARG, "--device and --endorsed go "
		    "with trust");
	if (cli->device != NULL && cli->endorsed != MSG_ENDORSED_UNSET)
		return err_set(e, ERR_INVALID_ARG, "trust takes --device or "
		    "--endorsed, not both");
	return 0;
}

int
msg_cli_parse(int argc, char **argv, struct msg_cli *cli, struct err_ctx *e)
{
	int r;

	memset(cli, 0, sizeof(*cli));
	if ((r = parse_options(argc, argv, cli, e)) != 0)
		return r;
	if (cli->cmd == MSG_CMD_HELP || cli->cmd == MSG_CMD_VERSION)
		return 0;       /* -h, -V */
	if ((r = parse_command(argc, argv, cli, e)) != 0)
		return r;
	return check_command_args(cli, argv[optind], e);
}
