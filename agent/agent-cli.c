/*
 * agent-cli.c - devid-agent's command line: the --help text, the parsing
 * of the command, its arguments, the plain options and the setting flags,
 * the effective settings built from defaults, the config file and the
 * flags, and what the commands share on the terminal (a yes/no question,
 * a QR code).
 */
#include "config.h"

#include <sys/ioctl.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <qrencode.h>

#include "agent-cmd.h"
#include "agent-config.h"
#include "errors.h"

void
agent_cli_usage(FILE *f)
{
	int i;

	fprintf(f,
"Usage: " AGENT_PROG " COMMAND [OPTIONS]\n"
"\n"
"The devid agent: keeps this device's keys in a TPM or PKCS#11 token, keeps\n"
"a token-signed registry of the account's devices and alerts when the\n"
"directory shows a device that was not approved here.\n"
"\n"
"Commands:\n"
"  init        create (or --use-existing: adopt) the device keys, pin the\n"
"              directory key, write the config and the registry\n"
"  enroll      after init on a new device: show its enrolment code, take\n"
"              the endorsement an existing device made of it, register\n"
"  endorse CODE\n"
"              on an existing device: check a new device's enrolment code\n"
"              and endorse it; prints the endorsement to carry back\n"
"  register    register this device without an endorsement (every other\n"
"              device then asks you to approve it)\n"
"  run         start the daemon (--foreground: stay attached, log to stderr)\n"
"  status      the daemon's state, token operation counts and open alerts\n"
"  info        this device's id, public keys and directory (JSON)\n"
"  devices     the devices in the registry\n"
"  approve ID  approve a device (a prefix of its id, at least 4 digits;\n"
"              --force for an unendorsed one under require_endorsement)\n"
"  ack ID      acknowledge an alert (a prefix of its id)\n"
"  revoke ID   revoke a device of the account at the directory\n"
"  alerts      list open alerts (--follow: keep printing new ones)\n"
"  unlock      hand the token PIN to the daemon (prompted, or --pin-file)\n"
"  lock        make the daemon forget the PIN\n"
"\n"
"Options:\n"
"  --config FILE         config file (default\n"
"                        $XDG_CONFIG_HOME/devid/agent.conf)\n"
"  --use-existing        init: adopt keys that already exist in the token\n"
"  --password-file FILE  register, enroll: read the account password from\n"
"                        FILE\n"
"  --endorsement STRING  enroll: the endorsement (else it is asked for)\n"
"  --yes                 endorse: do not ask (the ids were compared)\n"
"  --force               approve: also a device without an endorsement\n"
"                        when require_endorsement is on\n"
"  --no-qr               enroll, endorse: no QR code\n"
"  --foreground          run: do not detach; log to stderr\n"
"  --follow              alerts: wait for new alerts\n"
"  --json                print the daemon's answers as JSON\n"
"  --debug               more log lines\n"
"  --help                this text\n"
"\n"
"Settings (config file keys; each is also a flag, --check-interval for\n"
"check_interval):\n");
	for (i = 0; agent_config_keys[i].key != NULL; i++) {
		char flag[64];
		size_t k;

		snprintf(flag, sizeof(flag), "--%s%s%s",
		    agent_config_keys[i].key,
		    agent_config_keys[i].arg != NULL ? " " : "",
		    agent_config_keys[i].arg != NULL ?
		    agent_config_keys[i].arg : "");
		for (k = 2; flag[k] != ' ' && flag[k] != '\0'; k++)
			if (flag[k] == '_')
				flag[k] = '-';
		fprintf(f, "  %-26s %s\n", flag, agent_config_keys[i].help);
	}
	fprintf(f, "\nSee docs/agent.md for the files, the socket protocol and "
	    "the alerts.\n");
}

int
agent_cli_die(const char *what, const struct err_ctx *e)
{
	fprintf(stderr, AGENT_PROG ": %s%s%s\n", what != NULL ? what : "",
	    what != NULL ? ": " : "", err_msg(e));
	return 1;
}

int
agent_cli_parse(int argc, char **argv, struct agent_cli *cli,
    struct agent_config *flags, struct err_ctx *e)
{
	char key[64], *eq;
	const char *arg, *val;
	size_t k;
	int i, idx, r;

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			if (cli->command == NULL)
				cli->command = arg;
			else if (cli->n_args < 4)
				cli->args[cli->n_args++] = arg;
			else
				return err_set(e, ERR_CONFIG, "too many "
				    "arguments");
			continue;
		}
		snprintf(key, sizeof(key), "%s", arg + 2);
		val = NULL;
		if ((eq = strchr(key, '=')) != NULL) {
			*eq = '\0';
			val = strchr(arg, '=') + 1;
		}
		for (k = 0; key[k] != '\0'; k++)
			if (key[k] == '-')
				key[k] = '_';
#define FLAG(name, field)						\
		if (strcmp(key, name) == 0 && val == NULL) {		\
			cli->field = 1;					\
			continue;					\
		}
		FLAG("foreground", foreground);
		FLAG("use_existing", use_existing);
		FLAG("follow", follow);
		FLAG("json", json);
		FLAG("debug", debug);
		FLAG("help", help);
		FLAG("yes", yes);
		FLAG("force", force);
		FLAG("no_qr", no_qr);
#undef FLAG
		if (strcmp(key, "config") == 0 ||
		    strcmp(key, "password_file") == 0 ||
		    strcmp(key, "endorsement") == 0) {
			if (val == NULL && (val = argv[++i]) == NULL)
				return err_set(e, ERR_CONFIG, "%s needs a "
				    "value", arg);
			if (strcmp(key, "config") == 0)
				cli->config = val;
			else if (strcmp(key, "password_file") == 0)
				cli->password_file = val;
			else
				cli->endorsement = val;
			continue;
		}
		if ((idx = agent_config_key_index(key)) < 0)
			return err_set(e, ERR_CONFIG, "unknown option %s (see "
			    AGENT_PROG " --help)", arg);
		/* A yes/no setting alone means yes: --require-endorsement. */
		if (val == NULL && agent_config_key_is_bool(key))
			val = "yes";
		if (val == NULL && (val = argv[++i]) == NULL)
			return err_set(e, ERR_CONFIG, "%s needs a value", arg);
		if ((r = agent_config_set(flags, key, val, arg, e)) != 0)
			return r;
		cli->locked |= (uint64_t)1 << idx;
	}
	return 0;
}

/* Copies the settings given as flags over c. */
static int
apply_flags(struct agent_config *c, const struct agent_config *flags,
    uint64_t locked)
{
#define STR(f) do {							\
		if (flags->f != NULL) {					\
			free(c->f);					\
			if ((c->f = strdup(flags->f)) == NULL)		\
				return ERR_ALLOC;			\
		}							\
	} while (0)
#define NUM(f) do {							\
		if (locked &						\
		    ((uint64_t)1 << agent_config_key_index(#f)))	\
			c->f = flags->f;				\
	} while (0)
	STR(account);
	STR(label);
	STR(token);
	STR(tcti);
	STR(pin_file);
	STR(directory);
	STR(directory_key);
	STR(enc_alg);
	STR(state_dir);
	STR(socket);
	STR(alert_command);
	STR(log);
	NUM(check_interval);
	NUM(max_stale);
	NUM(long_poll);
	NUM(http_timeout);
	NUM(pin_timeout);
	NUM(require_endorsement);
	NUM(witness_quorum);
	if ((locked & ((uint64_t)1 << agent_config_key_index("witness"))) &&
	    agent_config_copy_witnesses(c, flags) != 0)
		return ERR_ALLOC;
#undef STR
#undef NUM
	return 0;
}

int
agent_cli_load_settings(const struct agent_cli *cli,
    const struct agent_config *flags, struct agent_config *c,
    char **config_path, int may_miss, int want_socket, struct err_ctx *e)
{
	char *path = NULL;
	int r;

	agent_config_init(c);
	if (cli->config != NULL) {
		if ((path = strdup(cli->config)) == NULL)
			return ERR_ALLOC;
	} else if ((r = agent_config_default_config_path(&path, e)) != 0) {
		return r;
	}
	r = agent_config_load(c, path, cli->locked, e);
	if (r == ERR_NOT_FOUND && may_miss) {
		err_clear(e);
		r = 0;
	}
	if (r == 0)
		r = apply_flags(c, flags, cli->locked);
	if (r == 0)
		r = agent_config_finish(c, want_socket, e);
	if (r == 0 && config_path != NULL) {
		*config_path = path;
		path = NULL;
	}
	if (r != 0)
		agent_config_free(c);
	free(path);
	return r;
}

/* --- on the terminal --- */

int
agent_cli_ask_yes(const char *question)
{
	char line[16];
	FILE *tty;
	int yes = 0;

	if (!isatty(STDIN_FILENO) || (tty = fopen("/dev/tty", "r+")) == NULL)
		return 0;
	fprintf(tty, "%s [y/N] ", question);
	fflush(tty);
	if (fgets(line, sizeof(line), tty) != NULL)
		yes = line[0] == 'y' || line[0] == 'Y';
	fclose(tty);
	return yes;
}

/* 1 when the locale's character set (LC_ALL, else LC_CTYPE, else LANG)
 * is UTF-8. */
static int
locale_is_utf8(void)
{
	static const char *const vars[] = { "LC_ALL", "LC_CTYPE", "LANG" };
	const char *v = NULL;
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if ((v = getenv(vars[i])) != NULL && v[0] != '\0')
			break;
	if (v == NULL || v[0] == '\0')
		return 0;
	return strcasestr(v, "utf-8") != NULL || strcasestr(v, "utf8") != NULL;
}

/* Whether module (x, y) of qr is dark; outside the symbol (the quiet
 * zone) it is light. */
static int
qr_dark(const QRcode *qr, int x, int y)
{
	if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
		return 0;
	return qr->data[y * qr->width + x] & 1;
}

#define QR_QUIET 2      /* modules of light border on each side */

int
agent_cli_print_qr(FILE *f, const char *text, int enabled)
{
	/* Two modules a character: upper half, lower half; light modules
	 * are drawn (white on black), so that the code reads the same on
	 * light and dark terminals. */
	static const char *const cell[4] = { "\xe2\x96\x88" /* both */,
	    "\xe2\x96\x80" /* upper */, "\xe2\x96\x84" /* lower */,
	    " " };
	struct winsize ws;
	QRcode *qr;
	int x, y, side;

	if (!enabled || !isatty(fileno(f)) || !locale_is_utf8())
		return 0;
	if ((qr = QRcode_encodeData((int)strlen(text),
	    (const unsigned char *)text, 0, QR_ECLEVEL_L)) == NULL)
		return 0;
	side = qr->width + 2 * QR_QUIET;
	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 &&
	    ws.ws_col < side) {
		fprintf(f, "(a QR code of this needs a terminal %d columns "
		    "wide)\n", side);
		QRcode_free(qr);
		return 0;
	}
	for (y = -QR_QUIET; y < qr->width + QR_QUIET; y += 2) {
		fputs("\x1b[40;37m", f);
		for (x = -QR_QUIET; x < qr->width + QR_QUIET; x++)
			fputs(cell[qr_dark(qr, x, y) * 2 +
			    qr_dark(qr, x, y + 1)], f);
		fputs("\x1b[0m\n", f);
	}
	QRcode_free(qr);
	return 1;
}
