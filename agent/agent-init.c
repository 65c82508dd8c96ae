/*
 * agent-init.c - devid-agent init and register: the directory key pinned
 * after the user confirmed it, the device keys created (or adopted) in
 * the token, the signed device record, the first registry and the config
 * file; then the registration of that record with the directory.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

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
#include "agent-ops.h"
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
		if (!ask_yes("Pin this directory key?")) {
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

int
agent_cmd_register(const struct agent_cli *cli,
    const struct agent_config *flags)
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
	if ((r = agent_cli_load_settings(cli, flags, &c, NULL, 0, 0,
	    &e)) != 0) {
		agent_cli_die("register", &e);
		goto out;
	}
	if ((r = agent_token_init(&at, c.token, c.tcti, c.state_dir, 1,
	    &e)) != 0 || (c.pin_file != NULL &&
	    (r = agent_token_pin_file(&at, c.pin_file, &e)) != 0) ||
	    (r = agent_token_open(&at, &e)) != 0) {
		agent_cli_die("token", &e);
		goto out;
	}
	if ((r = reg_load(c.state_dir, at.sig_pub, &reg, &e)) != 0) {
		agent_cli_die("registry", &e);
		goto out;
	}
	if ((d = reg_find(&reg, at.device)) == NULL || !d->has_record) {
		fprintf(stderr, AGENT_PROG ": the registry holds no record of "
		    "this device\n");
		goto out;
	}
	if ((r = read_password(cli->password_file, pw, sizeof(pw), &e)) != 0) {
		agent_cli_die("password", &e);
		goto out;
	}
	memset(&opt, 0, sizeof(opt));
	opt.timeout_s = (long)c.http_timeout;
	if ((r = dirc_new(c.directory, &opt, &dc, &e)) != 0 ||
	    (r = dirc_register_device(dc, pw, &d->rec, &head, &e)) != 0) {
		agent_cli_die("register", &e);
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
