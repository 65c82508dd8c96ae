/*
 * agent-main.c - devid-agent: command-line dispatch, init, register and
 * the daemon's main loop.  docs/agent.md is the manual.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acctlog.h"
#include "agent-alert.h"
#include "agent-config.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "agent-watch.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "timefmt.h"
#include "token.h"

#define PROG "devid-agent"
#define CLIENT_TIMEOUT_MS 120000

/* Options that are not settings. */
struct cli {
	const char *command;
	const char *args[4];
	int n_args;
	const char *config;
	const char *password_file;
	int foreground;
	int use_existing;
	int follow;
	int json;
	int debug;
	int help;
	uint64_t locked;        /* settings given as flags */
};

static void
usage(FILE *f)
{
	int i;

	fprintf(f,
"Usage: " PROG " COMMAND [OPTIONS]\n"
"\n"
"The devid agent: keeps this device's keys in a TPM or PKCS#11 token, keeps\n"
"a token-signed registry of the account's devices and alerts when the\n"
"directory shows a device that was not approved here.\n"
"\n"
"Commands:\n"
"  init        create (or --use-existing: adopt) the device keys, pin the\n"
"              directory key, write the config and the registry\n"
"  register    register this device with the directory (account password\n"
"              from --password-file or asked on the terminal)\n"
"  run         start the daemon (--foreground: stay attached, log to stderr)\n"
"  status      the daemon's state, token operation counts and open alerts\n"
"  info        this device's id, public keys and directory (JSON)\n"
"  devices     the devices in the registry\n"
"  approve ID  approve a device (a prefix of its id, at least 4 digits)\n"
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
"  --password-file FILE  register: read the account password from FILE\n"
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

		snprintf(flag, sizeof(flag), "--%s %s",
		    agent_config_keys[i].key, agent_config_keys[i].arg);
		for (k = 2; flag[k] != ' ' && flag[k] != '\0'; k++)
			if (flag[k] == '_')
				flag[k] = '-';
		fprintf(f, "  %-26s %s\n", flag, agent_config_keys[i].help);
	}
	fprintf(f, "\nSee docs/agent.md for the files, the socket protocol and "
	    "the alerts.\n");
}

static int
die(const char *what, const struct err_ctx *e)
{
	fprintf(stderr, PROG ": %s%s%s\n", what != NULL ? what : "",
	    what != NULL ? ": " : "", err_msg(e));
	return 1;
}

/*
 * Parses argv: the command, its arguments, the plain options and every
 * setting flag (--key value or --key=value, dashes or underscores).
 */
static int
parse_args(int argc, char **argv, struct cli *cli, struct agent_config *flags,
    struct err_ctx *e)
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
#undef FLAG
		if (strcmp(key, "config") == 0 ||
		    strcmp(key, "password_file") == 0) {
			if (val == NULL && (val = argv[++i]) == NULL)
				return err_set(e, ERR_CONFIG, "%s needs a "
				    "value", arg);
			if (strcmp(key, "config") == 0)
				cli->config = val;
			else
				cli->password_file = val;
			continue;
		}
		if ((idx = agent_config_key_index(key)) < 0)
			return err_set(e, ERR_CONFIG, "unknown option %s (see "
			    PROG " --help)", arg);
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
#undef STR
#undef NUM
	return 0;
}

/*
 * Builds the effective settings: defaults, the config file (required
 * unless may_miss), then the flags.
 */
static int
load_settings(const struct cli *cli, const struct agent_config *flags,
    struct agent_config *c, char **config_path, int may_miss, int want_socket,
    struct err_ctx *e)
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
	free(path);
	return r;
}

/* --- init --- */

static int
ask_yes(const char *question)
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

/* Creates the parent directories of a file path (0700 for new ones). */
static int
make_parent(const char *path, struct err_ctx *e)
{
	char dir[4096], *slash;
	size_t i;

	if (strlen(path) >= sizeof(dir))
		return err_set(e, ERR_CONFIG, "path too long");
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (i = 1; dir[i] != '\0'; i++) {
		if (dir[i] != '/')
			continue;
		dir[i] = '\0';
		(void)mkdir(dir, 0700);
		dir[i] = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return err_set(e, ERR_IO, "cannot create %s: %s", dir,
		    strerror(errno));
	return 0;
}

/*
 * init: checks the directory first (nothing is created for a wrong URL or
 * key), then creates or adopts the keys, signs the device record, pins the
 * directory key, writes the registry (signed) and the config.  Refuses a
 * state directory that already holds a registry.  Returns the exit status.
 */
static int
cmd_init(const struct cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token at;
	struct err_ctx e;
	struct dirc *dc = NULL;
	struct dirc_info info;
	struct dirc_options opt;
	struct registry reg;
	struct reg_device *d;
	struct devrec rec;
	enum token_enc_alg alg = TOKEN_ENC_NONE;
	char *config_path = NULL, *path = NULL, short_id[DEVREC_SHORT_ID_LEN + 1];
	char fp[80];
	struct stat st;
	int r, rc = 1;

	err_clear(&e);
	memset(&at, 0, sizeof(at));
	memset(&reg, 0, sizeof(reg));
	if ((r = load_settings(cli, flags, &c, &config_path, 1, 0, &e)) != 0) {
		die("init", &e);
		goto out;
	}
	if (c.account == NULL || c.label == NULL || c.token == NULL ||
	    c.directory == NULL) {
		fprintf(stderr, PROG ": init needs --account, --label, --token "
		    "and --directory\n");
		goto out;
	}
	if (c.enc_alg != NULL && strcmp(c.enc_alg, "auto") != 0)
		(void)token_enc_alg_parse(c.enc_alg, &alg);
	if ((r = path_private_dir(c.state_dir, &e)) != 0) {
		die("state directory", &e);
		goto out;
	}
	if ((path = path_join(c.state_dir, REG_FILE)) == NULL)
		goto out;
	if (stat(path, &st) == 0) {
		fprintf(stderr, PROG ": %s exists: this device is already "
		    "initialised (move the state directory %s away to start "
		    "over)\n", path, c.state_dir);
		goto out;
	}
	free(path);
	path = NULL;

	/* The directory first: nothing is created for a wrong URL or key. */
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)c.http_timeout;
	if ((r = dirc_new(c.directory, &opt, &dc, &e)) != 0 ||
	    (r = dirc_info(dc, &info, &e)) != 0) {
		die("directory", &e);
		goto out;
	}
	snprintf(fp, sizeof(fp), "%.4s-%.4s-%.4s-%.4s", info.directory_id,
	    info.directory_id + 4, info.directory_id + 8,
	    info.directory_id + 12);
	if (c.directory_key != NULL) {
		if (strcmp(c.directory_key, info.directory_id) != 0) {
			fprintf(stderr, PROG ": the directory at %s signs with "
			    "key %s, not the given --directory-key %s: refusing "
			    "to pin it\n", c.directory, info.directory_id,
			    c.directory_key);
			goto out;
		}
	} else {
		printf("The directory at %s signs heads with the key\n  %s\n"
		    "(fingerprint %s).  Compare it with the one your "
		    "directory's operator publishes.\n", c.directory,
		    info.directory_id, fp);
		if (!ask_yes("Pin this directory key?")) {
			fprintf(stderr, PROG ": directory key not confirmed; "
			    "pass --directory-key %s to pin it without "
			    "asking\n", info.directory_id);
			goto out;
		}
		if ((c.directory_key = strdup(info.directory_id)) == NULL)
			goto out;
	}

	/* The token and its keys. */
	if ((r = agent_token_init(&at, c.token, c.tcti, c.state_dir, 1,
	    &e)) != 0 ||
	    (c.pin_file != NULL &&
	    (r = agent_token_pin_file(&at, c.pin_file, &e)) != 0)) {
		die("token", &e);
		goto out;
	}
	if (cli->use_existing)
		r = agent_token_open(&at, &e);
	else
		r = agent_token_create(&at, alg, &e);
	if (r == ERR_EXISTS)
		err_wrap(&e, r, "%s (adopt them with --use-existing)",
		    err_msg(&e));
	if (r != 0) {
		die("token", &e);
		goto out;
	}
	if ((r = devrec_build(&rec, c.account, c.label, at.sig_spki,
	    at.sig_spki_len, token_enc_alg_name(at.enc_alg), at.enc_spki,
	    at.enc_spki_len, (uint64_t)time(NULL), agent_token_sign_cb, &at,
	    &e)) != 0) {
		die("device record", &e);
		goto out;
	}

	/* Pin the directory key, write the registry and the config. */
	if ((path = path_join(c.state_dir, AGENT_DIRKEY_FILE)) == NULL ||
	    (r = fileio_write_atomic(path, info.head_key, info.head_key_len,
	    0600, &e)) != 0) {
		die("directory key", &e);
		goto out;
	}
	if ((r = reg_init(&reg, c.account, at.device, info.directory_id,
	    &e)) != 0 || (r = reg_add(&reg, at.device, &d, &e)) != 0) {
		die("registry", &e);
		goto out;
	}
	snprintf(d->label, sizeof(d->label), "%s", c.label);
	d->state = REG_APPROVED;
	d->first_seen = d->changed = reg.updated = (uint64_t)time(NULL);
	d->rec = rec;
	d->has_record = 1;
	if ((r = reg_save(&reg, c.state_dir, agent_token_sign_cb, &at,
	    &e)) != 0) {
		die("registry", &e);
		goto out;
	}
	if ((r = make_parent(config_path, &e)) != 0 ||
	    (r = agent_config_write(&c, config_path, &e)) != 0) {
		die("config", &e);
		goto out;
	}
	(void)devrec_short_id(at.device, short_id);
	printf("device %s '%s' of %s initialised\n  device id:  %s\n"
	    "  token:      %s, encryption %s\n  directory:  %s (key %s)\n"
	    "  config:     %s\n  state:      %s\n"
	    "Next: " PROG " register, then " PROG " run.\n", short_id,
	    c.label, c.account, at.device, at.backend,
	    token_enc_alg_name(at.enc_alg), c.directory, fp, config_path,
	    c.state_dir);
	rc = 0;
 out:
	dirc_free(dc);
	reg_clear(&reg);
	agent_token_free(&at);
	free(path);
	free(config_path);
	agent_config_free(&c);
	return rc;
}

/* --- register --- */

static int
read_password(const char *file, char *out, size_t max, struct err_ctx *e)
{
	FILE *f;
	size_t len;

	if (file == NULL)
		return agent_read_secret("Account password: ", out, max, e);
	if ((f = fopen(file, "r")) == NULL)
		return err_set(e, ERR_IO, "cannot open %s: %s", file,
		    strerror(errno));
	if (fgets(out, (int)max, f) == NULL)
		out[0] = '\0';
	fclose(f);
	len = strcspn(out, "\r\n");
	out[len] = '\0';
	if (len == 0)
		return err_set(e, ERR_CONFIG, "%s holds no password line",
		    file);
	return 0;
}

/*
 * register: sends this device's record, taken from the registry after its
 * signature verified with the token's key, to the directory with the
 * account password.  The password is wiped on every path.
 */
static int
cmd_register(const struct cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token at;
	struct registry reg;
	struct reg_device *d;
	struct dirc *dc = NULL;
	struct dirc_options opt;
	struct acctlog_head head;
	struct err_ctx e;
	char pw[1024], short_id[DEVREC_SHORT_ID_LEN + 1];
	int r, rc = 1;

	err_clear(&e);
	memset(&at, 0, sizeof(at));
	memset(&reg, 0, sizeof(reg));
	memset(pw, 0, sizeof(pw));
	if ((r = load_settings(cli, flags, &c, NULL, 0, 0, &e)) != 0) {
		die("register", &e);
		goto out;
	}
	if ((r = agent_token_init(&at, c.token, c.tcti, c.state_dir, 1,
	    &e)) != 0 || (c.pin_file != NULL &&
	    (r = agent_token_pin_file(&at, c.pin_file, &e)) != 0) ||
	    (r = agent_token_open(&at, &e)) != 0) {
		die("token", &e);
		goto out;
	}
	if ((r = reg_load(c.state_dir, at.sig_pub, &reg, &e)) != 0) {
		die("registry", &e);
		goto out;
	}
	if ((d = reg_find(&reg, at.device)) == NULL || !d->has_record) {
		fprintf(stderr, PROG ": the registry holds no record of this "
		    "device\n");
		goto out;
	}
	if ((r = read_password(cli->password_file, pw, sizeof(pw), &e)) != 0) {
		die("password", &e);
		goto out;
	}
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)c.http_timeout;
	if ((r = dirc_new(c.directory, &opt, &dc, &e)) != 0 ||
	    (r = dirc_register_device(dc, pw, &d->rec, &head, &e)) != 0) {
		die("register", &e);
		goto out;
	}
	(void)devrec_short_id(at.device, short_id);
	printf("device %s '%s' registered for %s (log seq %" PRIu64 ")\n",
	    short_id, d->label, reg.account, head.seq);
	rc = 0;
 out:
	crypto_wipe(pw, sizeof(pw));
	dirc_free(dc);
	reg_clear(&reg);
	agent_token_free(&at);
	agent_config_free(&c);
	return rc;
}

/* --- run --- */

static volatile sig_atomic_t got_signal;
static int signal_fd = -1;

static void
on_signal(int sig)
{
	char c = 1;

	got_signal = sig;
	if (signal_fd >= 0)
		(void)!write(signal_fd, &c, 1);
}

static int
daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if ((pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/*
 * run: detaches unless --foreground, loads the agent, opens the socket,
 * starts the watcher and serves until a signal.  On the way out it waits a
 * few seconds for a long-poll in flight; if it does not end, the process
 * exits without freeing what the watcher still uses.
 */
static int
cmd_run(const struct cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent *a = NULL;
	struct sigaction sa;
	struct err_ctx e;
	pthread_t th;
	char drain[64];
	int r, rc = 1, watching = 0, i;

	err_clear(&e);
	if ((r = load_settings(cli, flags, &c, NULL, 0, 1, &e)) != 0)
		return die("run", &e);
	agent_log_init(c.log != NULL ? strcmp(c.log, "syslog") == 0 :
	    !cli->foreground, cli->debug);
	if (!cli->foreground && daemonize() != 0) {
		agent_log(LOG_ERR, "cannot detach: %s", strerror(errno));
		agent_config_free(&c);
		return 1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		goto out;
	if ((r = agent_load(a, &c, &e)) != 0) {
		agent_log(LOG_ERR, "cannot start: %s", err_msg(&e));
		goto out;
	}
	if ((r = agent_sock_server_open(c.socket, agent_handle, a, &a->srv,
	    &e)) != 0) {
		agent_log(LOG_ERR, "socket: %s", err_msg(&e));
		goto out;
	}
	signal_fd = a->wake_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	if ((r = agent_watch_start(a, &th, &e)) != 0) {
		agent_log(LOG_ERR, "%s", err_msg(&e));
		goto out;
	}
	watching = 1;
	agent_log(LOG_NOTICE, "devid-agent %s for %s, device %.16s, listening "
	    "on %s%s", PACKAGE_VERSION, c.account, a->tok.device, c.socket,
	    agent_token_locked(&a->tok) ? " (locked)" : "");
	while (!got_signal) {
		r = agent_sock_server_poll(a->srv, 1000, a->wake_pipe[0]);
		if (r == 1)
			while (read(a->wake_pipe[0], drain, sizeof(drain)) > 0)
				;
		if (r < 0) {
			agent_log(LOG_ERR, "poll failed: %s", strerror(errno));
			break;
		}
		agent_flush_broadcast(a);
		agent_tick(a);
	}
	agent_log(LOG_NOTICE, "stopping (signal %d)", (int)got_signal);
	rc = 0;
 out:
	if (watching) {
		pthread_mutex_lock(&a->lock);
		a->stop = 1;
		pthread_cond_broadcast(&a->wake_watch);
		pthread_mutex_unlock(&a->lock);
		/* A long-poll in flight ends within its wait; do not hang. */
		for (i = 0; i < 50 && a->watch_running; i++)
			usleep(100000);
		if (a->watch_running) {
			agent_log(LOG_NOTICE, "watcher still in a request: "
			    "exiting without waiting");
			agent_sock_server_close(a->srv);
			a->srv = NULL;
			pthread_mutex_lock(&a->lock);
			agent_token_lock(&a->tok);
			fflush(NULL);
			_exit(rc);
		}
		pthread_join(th, NULL);
	}
	signal_fd = -1;
	if (a != NULL) {
		agent_sock_server_close(a->srv);
		a->srv = NULL;
		agent_free(a);
		free(a);
	}
	agent_config_free(&c);
	return rc;
}

/* --- client commands --- */

static void
print_alert(const json_t *al)
{
	char when[32];

	timefmt_utc((uint64_t)json_integer_value(json_object_get(al, "time")),
	    when, sizeof(when));
	printf("alert %s  %-17s %s  %s\n",
	    json_string_value(json_object_get(al, "id")),
	    json_string_value(json_object_get(al, "kind")), when,
	    json_string_value(json_object_get(al, "message")));
}

static void
print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
}

static void
print_status(const json_t *j)
{
	const json_t *w = json_object_get(j, "watcher");
	const json_t *t = json_object_get(j, "token");
	const json_t *al = json_object_get(j, "alerts");
	char when[32];
	size_t i;

	timefmt_utc((uint64_t)json_integer_value(json_object_get(w,
	    "last_success")), when, sizeof(when));
	printf("account:   %s\ndevice:    %s\nlocked:    %s\n"
	    "registry:  %s\nlog seq:   %" JSON_INTEGER_FORMAT "\n"
	    "checks:    %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
	    " failed), last fresh check %s (%" JSON_INTEGER_FORMAT " s ago)%s\n",
	    json_string_value(json_object_get(j, "account")),
	    json_string_value(json_object_get(j, "short_id")),
	    json_is_true(json_object_get(j, "locked")) ? "yes (devid-agent "
	    "unlock)" : "no",
	    json_is_true(json_object_get(j, "registry_verified")) ?
	    "verified" : "not verified yet",
	    json_integer_value(json_object_get(w, "seq")),
	    json_integer_value(json_object_get(w, "checks")),
	    json_integer_value(json_object_get(w, "failed")), when,
	    json_integer_value(json_object_get(w, "age")),
	    json_is_true(json_object_get(w, "stale")) ? " STALE" : "");
	if (json_string_length(json_object_get(w, "last_error")) > 0)
		printf("last error: %s\n",
		    json_string_value(json_object_get(w, "last_error")));
	printf("token:     %s: %" JSON_INTEGER_FORMAT " signatures, %"
	    JSON_INTEGER_FORMAT " ECDH, %" JSON_INTEGER_FORMAT " decryptions, %"
	    JSON_INTEGER_FORMAT " logins\n",
	    json_string_value(json_object_get(t, "backend")),
	    json_integer_value(json_object_get(t, "signs")),
	    json_integer_value(json_object_get(t, "ecdhs")),
	    json_integer_value(json_object_get(t, "decrypts")),
	    json_integer_value(json_object_get(t, "logins")));
	printf("alerts:    %zu open\n", json_array_size(al));
	for (i = 0; i < json_array_size(al); i++)
		print_alert(json_array_get(al, i));
}

static void
print_devices(const json_t *j)
{
	const json_t *arr = json_object_get(j, "devices"), *d;
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		d = json_array_get(arr, i);
		printf("%s  %-9s %-8s %-15s '%s'%s\n",
		    json_string_value(json_object_get(d, "short_id")),
		    json_string_value(json_object_get(d, "state")),
		    json_is_true(json_object_get(d, "active")) ? "active" :
		    "-", json_string_value(json_object_get(d, "enc_alg")),
		    json_string_value(json_object_get(d, "label")),
		    json_is_true(json_object_get(d, "self")) ?
		    " (this device)" : "");
	}
}

/*
 * The commands that talk to the running daemon: builds the request, sends
 * it over the socket and prints the answer (as JSON with --json).  unlock
 * reads the PIN from --pin-file or the terminal and wipes every copy it
 * made.
 */
static int
cmd_client(const struct cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token pinsrc;
	struct err_ctx e;
	json_t *req = NULL, *resp = NULL, *al;
	const char *cmd = cli->command;
	size_t i;
	int fd = -1, r, rc = 1;

	err_clear(&e);
	memset(&pinsrc, 0, sizeof(pinsrc));
	if ((r = load_settings(cli, flags, &c, NULL, 1, 1, &e)) != 0)
		return die(cmd, &e);
	if ((strcmp(cmd, "approve") == 0 || strcmp(cmd, "ack") == 0 ||
	    strcmp(cmd, "revoke") == 0) && cli->n_args != 1) {
		fprintf(stderr, PROG ": %s needs one ID argument\n", cmd);
		goto out;
	}
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "devices") == 0 ||
	    strcmp(cmd, "lock") == 0 || strcmp(cmd, "info") == 0)
		req = json_pack("{s:s}", "op", cmd);
	else if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "revoke") == 0)
		req = json_pack("{s:s, s:s}", "op", cmd, "device",
		    cli->args[0]);
	else if (strcmp(cmd, "ack") == 0)
		req = json_pack("{s:s, s:s}", "op", cmd, "alert", cli->args[0]);
	else if (strcmp(cmd, "alerts") == 0)
		req = json_pack("{s:s, s:b}", "op", cmd, "follow", cli->follow);
	else if (strcmp(cmd, "unlock") == 0) {
		char pin[AGENT_PIN_MAX + 2];

		if (c.pin_file != NULL) {
			if ((r = agent_token_pin_file(&pinsrc, c.pin_file,
			    &e)) != 0) {
				die("unlock", &e);
				goto out;
			}
			snprintf(pin, sizeof(pin), "%s", pinsrc.pin);
			crypto_wipe(pinsrc.pin, sizeof(pinsrc.pin));
		} else if ((r = agent_read_secret("Token PIN: ", pin,
		    sizeof(pin), &e)) != 0) {
			crypto_wipe(pin, sizeof(pin));
			die("unlock", &e);
			goto out;
		}
		req = json_pack("{s:s, s:s}", "op", "unlock", "pin", pin);
		crypto_wipe(pin, sizeof(pin));
	} else {
		fprintf(stderr, PROG ": unknown command '%s' (see " PROG
		    " --help)\n", cmd);
		goto out;
	}
	if (req == NULL)
		goto out;
	if (strcmp(cmd, "alerts") == 0 && cli->follow) {
		if ((r = agent_sock_client_connect(c.socket, &fd, &e)) != 0 ||
		    (r = agent_sock_client_send(fd, req, &e)) != 0) {
			die(cmd, &e);
			goto out;
		}
		setvbuf(stdout, NULL, _IOLBF, 0);
		for (;;) {
			if ((r = agent_sock_client_recv(fd, -1, &resp,
			    &e)) != 0)
				break;
			if (cli->json)
				print_json(resp);
			else if ((al = json_object_get(resp, "alert")) != NULL)
				print_alert(al);
			else
				for (i = 0; i < json_array_size(json_object_get(
				    resp, "alerts")); i++)
					print_alert(json_array_get(
					    json_object_get(resp, "alerts"),
					    i));
			fflush(stdout);
			json_decref(resp);
			resp = NULL;
		}
		rc = 0;
		goto out;
	}
	r = agent_sock_client_call(c.socket, req, CLIENT_TIMEOUT_MS, &resp, &e);
	if (strcmp(cmd, "unlock") == 0) {
		const json_t *pv = json_object_get(req, "pin");

		if (pv != NULL)
			crypto_wipe((void *)(uintptr_t)json_string_value(pv),
			    json_string_length(pv));
	}
	if (r != 0) {
		die(cmd, &e);
		goto out;
	}
	if (cli->json)
		print_json(resp);
	else if (strcmp(cmd, "status") == 0)
		print_status(resp);
	else if (strcmp(cmd, "devices") == 0)
		print_devices(resp);
	else if (strcmp(cmd, "alerts") == 0) {
		al = json_object_get(resp, "alerts");
		if (json_array_size(al) == 0)
			printf("no open alerts\n");
		for (i = 0; i < json_array_size(al); i++)
			print_alert(json_array_get(al, i));
	} else if (strcmp(cmd, "approve") == 0)
		printf("approved device %s '%s'\n",
		    json_string_value(json_object_get(resp, "short_id")),
		    json_string_value(json_object_get(resp, "label")));
	else if (strcmp(cmd, "revoke") == 0)
		printf("revoked device %s\n",
		    json_string_value(json_object_get(resp, "short_id")));
	else if (strcmp(cmd, "ack") == 0)
		printf("acknowledged alert %s\n",
		    json_string_value(json_object_get(resp, "alert")));
	else if (strcmp(cmd, "info") == 0)
		print_json(resp);
	else
		printf("%s: done\n", cmd);
	rc = 0;
 out:
	if (fd >= 0)
		close(fd);
	json_decref(req);
	json_decref(resp);
	agent_token_free(&pinsrc);
	agent_config_free(&c);
	return rc;
}

int
main(int argc, char **argv)
{
	struct agent_config flags;
	struct cli cli;
	struct err_ctx e;
	int rc;

	memset(&cli, 0, sizeof(cli));
	err_clear(&e);
	agent_config_init(&flags);
	if (parse_args(argc, argv, &cli, &flags, &e) != 0) {
		rc = die(NULL, &e);
		goto out;
	}
	if (cli.help || cli.command == NULL || strcmp(cli.command, "help") == 0) {
		usage(cli.help || cli.command != NULL ? stdout : stderr);
		rc = cli.help || cli.command != NULL ? 0 : 2;
		goto out;
	}
	if (strcmp(cli.command, "init") == 0)
		rc = cmd_init(&cli, &flags);
	else if (strcmp(cli.command, "register") == 0)
		rc = cmd_register(&cli, &flags);
	else if (strcmp(cli.command, "run") == 0)
		rc = cmd_run(&cli, &flags);
	else
		rc = cmd_client(&cli, &flags);
 out:
	agent_config_free(&flags);
	return rc;
}
