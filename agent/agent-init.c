/*
 * agent-init.c - devid-agent init, register and enroll: the directory key
 * pinned after the user confirmed it, the device keys created (or
 * adopted) in the token, the signed device record, the first registry and
 * the config file; then the registration of that record with the
 * directory, either as it is (register) or with the endorsement of an
 * existing device of the account (enroll).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acctlog.h"
#include "agent-cmd.h"
#include "agent-config.h"
#include "agent-enrol.h"
#include "agent-ops.h"
#include "agent-sock.h"
#include "agent-token.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "token.h"

/* --- init --- */

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
 * Makes sure the state directory exists (private) and holds no registry
 * yet.  Returns 0, or an error after printing why init stops (nothing
 * for an allocation failure).
 */
static int
init_check_state_dir_new(const struct agent_config *c)
{
	struct err_ctx e;
	struct stat st;
	char *path = NULL;
	int r = ERR_INTERNAL;

	err_clear(&e);
	if ((r = path_private_dir(c->state_dir, &e)) != 0) {
		agent_cli_die("state directory", &e);
		goto out;
	}
	if ((path = path_join(c->state_dir, REG_FILE)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (stat(path, &st) == 0) {
		fprintf(stderr, AGENT_PROG ": %s exists: this device is "
		    "already initialised (move the state directory %s away "
		    "to start over)\n", path, c->state_dir);
		r = ERR_EXISTS;
		goto out;
	}
	r = 0;
 out:
	free(path);
	return r;
}

/*
 * Asks the directory for its key and decides whether to pin it: the one
 * given as directory_key must match; without one, the user confirms the
 * key on the terminal and it is stored in c->directory_key.  info gets
 * the directory's answer and fp (fp_len bytes) the key's fingerprint.
 * Returns 0, or an error after printing why init stops.
 */
static int
init_confirm_directory_key(struct agent_config *c, struct dirc_info *info,
    char *fp, size_t fp_len)
{
	struct dirc *dc = NULL;
	struct dirc_options opt;
	struct err_ctx e;
	int r = ERR_INTERNAL;

	err_clear(&e);
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)c->http_timeout;
	if ((r = dirc_new(c->directory, &opt, &dc, &e)) != 0 ||
	    (r = dirc_info(dc, info, &e)) != 0) {
		agent_cli_die("directory", &e);
		goto out;
	}
	snprintf(fp, fp_len, "%.4s-%.4s-%.4s-%.4s", info->directory_id,
	    info->directory_id + 4, info->directory_id + 8,
	    info->directory_id + 12);
	if (c->directory_key != NULL &&
	    strcmp(c->directory_key, info->directory_id) != 0) {
		fprintf(stderr, AGENT_PROG ": the directory at %s signs with "
		    "key %s, not the given --directory-key %s: refusing to "
		    "pin it\n", c->directory, info->directory_id,
		    c->directory_key);
		r = ERR_WRONG_KEY;
		goto out;
	}
	if (c->directory_key == NULL) {
		printf("The directory at %s signs heads with the key\n  %s\n"
		    "(fingerprint %s).  Compare it with the one your "
		    "directory's operator publishes.\n", c->directory,
		    info->directory_id, fp);
		if (!agent_cli_ask_yes("Pin this directory key?")) {
			fprintf(stderr, AGENT_PROG ": directory key not "
			    "confirmed; pass --directory-key %s to pin it "
			    "without asking\n", info->directory_id);
			r = ERR_DENIED;
			goto out;
		}
		if ((c->directory_key = strdup(info->directory_id)) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
	}
	r = 0;
 out:
	dirc_free(dc);
	return r;
}

/*
 * Opens the token at (PIN from pin_file when set), creates the keys or,
 * with --use-existing, adopts the ones there, and builds the device
 * record signed by the new key into rec.  at must be zeroed; the caller
 * frees it either way.  Returns 0, or an error after printing why.
 */
static int
init_make_device_keys(const struct agent_cli *cli,
    const struct agent_config *c, struct agent_token *at, struct devrec *rec)
{
	enum token_enc_alg alg = TOKEN_ENC_NONE;
	struct err_ctx e;
	int r = ERR_INTERNAL;

	err_clear(&e);
	if (c->enc_alg != NULL && strcmp(c->enc_alg, "auto") != 0)
		(void)token_enc_alg_parse(c->enc_alg, &alg);
	if ((r = agent_token_init(at, c->token, c->tcti, c->state_dir, 1,
	    &e)) != 0 ||
	    (c->pin_file != NULL &&
	    (r = agent_token_pin_file(at, c->pin_file, &e)) != 0)) {
		agent_cli_die("token", &e);
		return r;
	}
	if (cli->use_existing)
		r = agent_token_open(at, &e);
	else
		r = agent_token_create(at, alg, &e);
	if (r == ERR_EXISTS)
		err_wrap(&e, r, "%s (adopt them with --use-existing)",
		    err_msg(&e));
	if (r != 0) {
		agent_cli_die("token", &e);
		return r;
	}
	if ((r = devrec_build(rec, c->account, c->label, at->sig_spki,
	    at->sig_spki_len, token_enc_alg_name(at->enc_alg), at->enc_spki,
	    at->enc_spki_len, (uint64_t)time(NULL), agent_token_sign_cb, at,
	    &e)) != 0) {
		agent_cli_die("device record", &e);
		return r;
	}
	return 0;
}

/*
 * Writes the device's state: the pinned directory key, the registry
 * holding this device (approved, with its record rec), signed by the
 * token, and the config file at config_path.  Returns 0, or an error
 * after printing why.
 */
static int
init_write_state(const struct agent_config *c, struct agent_token *at,
    const struct dirc_info *info, const struct devrec *rec,
    const char *config_path)
{
	struct registry reg;
	struct reg_device *d;
	struct err_ctx e;
	char *path = NULL;
	int r = ERR_ALLOC;

	err_clear(&e);
	memset(&reg, 0, sizeof(reg));
	if ((path = path_join(c->state_dir, AGENT_DIRKEY_FILE)) == NULL ||
	    (r = fileio_write_atomic(path, info->head_key, info->head_key_len,
	    0600, &e)) != 0) {
		agent_cli_die("directory key", &e);
		goto out;
	}
	if ((r = reg_init(&reg, c->account, at->device, info->directory_id,
	    &e)) != 0 || (r = reg_add(&reg, at->device, &d, &e)) != 0) {
		agent_cli_die("registry", &e);
		goto out;
	}
	snprintf(d->label, sizeof(d->label), "%s", c->label);
	d->state = REG_APPROVED;
	d->first_seen = d->changed = reg.updated = (uint64_t)time(NULL);
	d->rec = *rec;
	d->has_record = 1;
	if ((r = reg_save(&reg, c->state_dir, agent_token_sign_cb, at,
	    &e)) != 0) {
		agent_cli_die("registry", &e);
		goto out;
	}
	if ((r = make_parent(config_path, &e)) != 0 ||
	    (r = agent_config_write(c, config_path, &e)) != 0) {
		agent_cli_die("config", &e);
		goto out;
	}
	r = 0;
 out:
	reg_clear(&reg);
	free(path);
	return r;
}

int
agent_cmd_init(const struct agent_cli *cli, const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token at;
	struct err_ctx e;
	struct dirc_info info;
	struct devrec rec;
	char *config_path = NULL, short_id[DEVREC_SHORT_ID_LEN + 1];
	char fp[80];
	int rc = 1;

	err_clear(&e);
	memset(&at, 0, sizeof(at));
	if (agent_cli_load_settings(cli, flags, &c, &config_path, 1, 0,
	    &e) != 0) {
		agent_cli_die("init", &e);
		goto out;
	}
	if (c.account == NULL || c.label == NULL || c.token == NULL ||
	    c.directory == NULL) {
		fprintf(stderr, AGENT_PROG ": init needs --account, --label, "
		    "--token and --directory\n");
		goto out;
	}
	/* The directory before the token: no key is created for a wrong
	 * URL or directory key. */
	if (init_check_state_dir_new(&c) != 0 ||
	    init_confirm_directory_key(&c, &info, fp, sizeof(fp)) != 0 ||
	    init_make_device_keys(cli, &c, &at, &rec) != 0 ||
	    init_write_state(&c, &at, &info, &rec, config_path) != 0)
		goto out;
	(void)devrec_short_id(at.device, short_id);
	printf("device %s '%s' of %s initialised\n  device id:  %s\n"
	    "  token:      %s, encryption %s\n  directory:  %s (key %s)\n"
	    "  config:     %s\n  state:      %s\n"
	    "Next: " AGENT_PROG " register, then " AGENT_PROG " run.\n",
	    short_id, c.label, c.account, at.device, at.backend,
	    token_enc_alg_name(at.enc_alg), c.directory, fp, config_path,
	    c.state_dir);
	rc = 0;
 out:
	agent_token_free(&at);
	free(config_path);
	agent_config_free(&c);
	return rc;
}

/* --- register --- */

/*
 * Reads the account password into out (max bytes, NUL-terminated): the
 * first line of file, or asked on the terminal when file is NULL.
 * ERR_CONFIG when the file holds no password line.
 */
static int
read_password(const char *file, char *out, size_t max, struct err_ctx *e)
{
	if (file == NULL)
		return agent_read_secret("Account password: ", out, max, e);
	/* A file others may read is refused (chmod 600), like a PIN file. */
	return agent_read_secret_file(file, "password", out, max, NULL, e);
}

/*
 * Opens the token (PIN from pin_file, else asked when needed), loads the
 * registry verified with the token's key and finds this device in it
 * with its record (*self, borrowed from reg).  at and reg must be
 * zeroed; the caller frees them either way.  Returns 0, or an error
 * after printing why.
 */
static int
load_own_record(const struct agent_config *c, struct agent_token *at,
    struct registry *reg, struct reg_device **self)
{
	struct err_ctx e;
	int r;

	err_clear(&e);
	if ((r = agent_token_init(at, c->token, c->tcti, c->state_dir, 1,
	    &e)) != 0 || (c->pin_file != NULL &&
	    (r = agent_token_pin_file(at, c->pin_file, &e)) != 0) ||
	    (r = agent_token_open(at, &e)) != 0) {
		agent_cli_die("token", &e);
		return r;
	}
	if ((r = reg_load(c->state_dir, at->sig_pub, reg, &e)) != 0) {
		agent_cli_die("registry", &e);
		return r;
	}
	if ((*self = reg_find(reg, at->device)) == NULL ||
	    !(*self)->has_record) {
		fprintf(stderr, AGENT_PROG ": the registry holds no record of "
		    "this device\n");
		return ERR_NOT_FOUND;
	}
	return 0;
}

/*
 * Sends rec to the directory with the account password (--password-file
 * or asked); *head gets the signed head the directory answered with.
 * The password is wiped on every path.  Returns 0, or an error after
 * printing why.
 */
static int
register_record(const struct agent_cli *cli, const struct agent_config *c,
    const struct devrec *rec, struct acctlog_head *head)
{
	struct dirc *dc = NULL;
	struct dirc_options opt;
	struct err_ctx e;
	char pw[1024];
	int r;

	err_clear(&e);
	memset(pw, 0, sizeof(pw));
	if ((r = read_password(cli->password_file, pw, sizeof(pw), &e)) != 0) {
		agent_cli_die("password", &e);
		goto out;
	}
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)c->http_timeout;
	if ((r = dirc_new(c->directory, &opt, &dc, &e)) != 0 ||
	    (r = dirc_register_device(dc, pw, rec, head, &e)) != 0) {
		agent_cli_die("register", &e);
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(pw, sizeof(pw));
	dirc_free(dc);
	return r;
}

int
agent_cmd_register(const struct agent_cli *cli,
    const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token at;
	struct registry reg;
	struct reg_device *d;
	struct devrec rec;
	struct acctlog_head head;
	struct err_ctx e;
	char short_id[DEVREC_SHORT_ID_LEN + 1];
	int rc = 1;

	err_clear(&e);
	memset(&at, 0, sizeof(at));
	memset(&reg, 0, sizeof(reg));
	if (agent_cli_load_settings(cli, flags, &c, NULL, 0, 0, &e) != 0) {
		agent_cli_die("register", &e);
		goto out;
	}
	if (load_own_record(&c, &at, &reg, &d) != 0)
		goto out;
	/* Without an endorsement, also when an enroll that did not finish
	 * left one in the registry: register is the unendorsed way. */
	rec = d->rec;
	rec.has_endorsement = 0;
	if (register_record(cli, &c, &rec, &head) != 0)
		goto out;
	(void)devrec_short_id(at.device, short_id);
	printf("device %s '%s' registered for %s (log seq %" PRIu64 ")\n",
	    short_id, d->label, reg.account, head.seq);
	rc = 0;
 out:
	reg_clear(&reg);
	agent_token_free(&at);
	agent_config_free(&c);
	return rc;
}

/* --- enroll --- */

/*
 * 1 when a daemon answers on the socket of c (its `socket` setting, else
 * the default one when XDG_RUNTIME_DIR is set).
 */
static int
enroll_daemon_running(const struct agent_config *c)
{
	struct err_ctx e;
	const char *path = c->socket;
	char *def = NULL;
	int fd = -1, running;

	err_clear(&e);
	if (path == NULL && agent_config_default_socket(&def, &e) == 0)
		path = def;
	running = path != NULL &&
	    agent_sock_client_connect(path, &fd, &e) == 0;
	if (fd >= 0)
		close(fd);
	free(def);
	return running;
}

/* Cuts the white space off both ends of s (in place); returns s. */
static char *
trim(char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/*
 * Checks the endorsement text s against rec and, when it is one of rec,
 * puts it into rec (by in *by).  Returns 0, or an error after printing
 * why.
 */
static int
enroll_check_endorsement(const char *s, struct devrec *rec,
    char by[DEVREC_ID_HEX_LEN + 1])
{
	struct agent_enrol_endorsement en;
	struct err_ctx e;
	int r;

	err_clear(&e);
	if ((r = agent_enrol_endorsement_parse(s, strlen(s), &en, &e)) != 0 ||
	    (r = agent_enrol_endorsement_apply(rec, &en, &e)) != 0) {
		agent_cli_die("endorsement", &e);
		return r;
	}
	memcpy(by, en.by, DEVREC_ID_HEX_LEN + 1);
	return 0;
}

/*
 * The endorsement of rec: --endorsement, else one line of standard input
 * (asked for on a terminal, where a bad one is asked for again).  On
 * success rec carries it and by names the endorser.  Returns 0, or an
 * error after printing why.
 */
static int
enroll_take_endorsement(const struct agent_cli *cli, struct devrec *rec,
    char by[DEVREC_ID_HEX_LEN + 1])
{
	char line[AGENT_ENROL_ENDORSEMENT_MAX + 64], *arg, *s;
	int tty = isatty(STDIN_FILENO), ch, tries, r;

	if (cli->endorsement != NULL) {
		if ((arg = strdup(cli->endorsement)) == NULL)
			return ERR_ALLOC;
		r = enroll_check_endorsement(trim(arg), rec, by);
		free(arg);
		return r;
	}
	for (tries = 0; tries < 5; tries++) {
		if (tty) {
			printf("Endorsement: ");
			fflush(stdout);
		}
		if (fgets(line, sizeof(line), stdin) == NULL) {
			fprintf(stderr, AGENT_PROG ": no endorsement was "
			    "given; once you have it: " AGENT_PROG " enroll "
			    "--endorsement STRING\n");
			return ERR_NOT_FOUND;
		}
		if (strchr(line, '\n') == NULL && !feof(stdin)) {
			while ((ch = getchar()) != EOF && ch != '\n')
				;
			fprintf(stderr, AGENT_PROG ": that line is longer "
			    "than any endorsement\n");
			r = ERR_TOO_LARGE;
		} else if ((s = trim(line))[0] == '\0') {
			tries--;
			continue;
		} else if ((r = enroll_check_endorsement(s, rec, by)) == 0) {
			return 0;
		}
		if (!tty)
			return r;
		printf("Paste the whole line that " AGENT_PROG " endorse "
		    "printed (it starts with %s), or stop with Ctrl-C.\n",
		    AGENT_ENROL_ENDORSEMENT_PREFIX);
	}
	fprintf(stderr, AGENT_PROG ": no valid endorsement after %d tries\n",
	    tries);
	return ERR_FORMAT;
}

/* Shows this device's short id and enrolment code (and its QR code). */
static int
enroll_show_code(const struct agent_cli *cli, const struct devrec *rec)
{
	struct err_ctx e;
	char short_id[DEVREC_SHORT_ID_LEN + 1], *code = NULL;
	int r;

	err_clear(&e);
	(void)devrec_short_id(rec->device, short_id);
	if ((r = agent_enrol_code_encode(rec, &code, &e)) != 0) {
		agent_cli_die("enrolment code", &e);
		return r;
	}
	printf("This device: '%s' %s of %s\n\n"
	    "On a device of %s that is already set up, run\n"
	    "    " AGENT_PROG " endorse CODE\n"
	    "with this enrolment code as CODE (the whole line):\n\n%s\n\n",
	    rec->label, short_id, rec->account, rec->account, code);
	if (agent_cli_print_qr(stdout, code, !cli->no_qr))
		printf("\n");
	printf("It shows the new device's label and id: check that they are\n"
	    "'%s' %s, then bring back the endorsement it prints.\n",
	    rec->label, short_id);
	fflush(stdout);
	free(code);
	return 0;
}

int
agent_cmd_enroll(const struct agent_cli *cli,
    const struct agent_config *flags)
{
	struct agent_config c;
	struct agent_token at;
	struct registry reg;
	struct reg_device *d;
	struct devrec rec;
	struct acctlog_head head;
	struct err_ctx e;
	char short_id[DEVREC_SHORT_ID_LEN + 1], by_short[DEVREC_SHORT_ID_LEN + 1];
	char by[DEVREC_ID_HEX_LEN + 1];
	int rc = 1;

	err_clear(&e);
	memset(&at, 0, sizeof(at));
	memset(&reg, 0, sizeof(reg));
	if (agent_cli_load_settings(cli, flags, &c, NULL, 0, 0, &e) != 0) {
		agent_cli_die("enroll", &e);
		goto out;
	}
	if (cli->n_args != 0) {
		fprintf(stderr, AGENT_PROG ": enroll takes no argument (the "
		    "endorsement goes with --endorsement)\n");
		goto out;
	}
	/* The daemon would take the registry written here for tampering. */
	if (enroll_daemon_running(&c)) {
		fprintf(stderr, AGENT_PROG ": the agent of this device is "
		    "running: stop it, enroll, then start it again\n");
		goto out;
	}
	if (load_own_record(&c, &at, &reg, &d) != 0)
		goto out;
	(void)devrec_short_id(at.device, short_id);
	if (d->add_seq != 0) {
		fprintf(stderr, AGENT_PROG ": this device %s is registered "
		    "already (log seq %" PRIu64 "): enrolment is only for a "
		    "new device\n", short_id, d->add_seq);
		goto out;
	}
	rec = d->rec;
	rec.has_endorsement = 0;
	if (cli->endorsement == NULL && enroll_show_code(cli, &rec) != 0)
		goto out;
	if (enroll_take_endorsement(cli, &rec, by) != 0)
		goto out;
	(void)devrec_short_id(by, by_short);
	printf("Endorsement checked: device %s vouches for this device.\n",
	    by_short);
	/* Kept before it is sent: once the directory holds the record,
	 * the registry must say which device this one vouched for. */
	d->rec = rec;
	d->changed = reg.updated = (uint64_t)time(NULL);
	if (reg_save(&reg, c.state_dir, agent_token_sign_cb, &at, &e) != 0) {
		agent_cli_die("registry", &e);
		goto out;
	}
	if (register_record(cli, &c, &rec, &head) != 0) {
		fprintf(stderr, AGENT_PROG ": not registered; run " AGENT_PROG
		    " enroll again (the same code and endorsement hold)\n");
		goto out;
	}
	printf("device %s '%s' registered for %s\nwith the endorsement of "
	    "device %s (log seq %" PRIu64 ").\n"
	    "Next: " AGENT_PROG " run.  The account's devices that approved "
	    "%s\napprove this one by themselves.\n", short_id, d->label,
	    reg.account, by_short, head.seq, by_short);
	rc = 0;
 out:
	reg_clear(&reg);
	agent_token_free(&at);
	agent_config_free(&c);
	return rc;
}
