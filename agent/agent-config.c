/*
 * agent-config.c - the agent's INI file, settings and XDG paths.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-config.h"
#include "codec.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "tpm-token.h"

/* Order matters: agent_config_parse's `locked` mask indexes this table. */
const struct agent_config_key agent_config_keys[] = {
	{ "account", "ACCOUNT", "the account this device belongs to" },
	{ "label", "LABEL", "this device's label (1-64 bytes of UTF-8)" },
	{ "token", "TOKEN", "'tpm2' or an RFC 7512 'pkcs11:' URI" },
	{ "tcti", "TCTI", "TPM TCTI string (default: $DEVID_TCTI or "
	    "device:/dev/tpmrm0)" },
	{ "pin_file", "FILE", "read the token PIN from FILE" },
	{ "directory", "URL", "the directory's base URL" },
	{ "directory_key", "ID", "the pinned directory key id (64 hex)" },
	{ "enc_alg", "ALG", "auto, hpke-p256 or rsa-oaep-sha256 (init)" },
	{ "state_dir", "DIR", "state directory (default "
	    "$XDG_DATA_HOME/devid)" },
	{ "socket", "PATH", "agent socket (default "
	    "$XDG_RUNTIME_DIR/devid/agent.sock)" },
	{ "alert_command", "CMD", "run CMD (sh -c) for every alert" },
	{ "log", "WHERE", "stderr or syslog" },
	{ "check_interval", "S", "seconds between checks (default 60)" },
	{ "max_stale", "S", "alert after S seconds without a fresh check "
	    "(default 900)" },
	{ "long_poll", "S", "long-poll wait, 0 to disable (default 60, "
	    "at most 60)" },
	{ "http_timeout", "S", "directory request timeout (default 30)" },
	{ "pin_timeout", "S", "forget an unlocked PIN after S seconds "
	    "(0: never)" },
	{ "require_endorsement", NULL, "unendorsed additions are critical, "
	    "approve needs --force (=no: off)" },
	{ "witness", "VKEY", "a witness of the directory's transparency log "
	    "(repeat for each)" },
	{ "witness_quorum", "K", "cosignatures of witnesses a checkpoint "
	    "needs (default: all)" },
	{ NULL, NULL, NULL }
};

int
agent_token_spec_parse(const char *spec, struct agent_token_spec *out,
    struct err_ctx *e)
{
	if (spec == NULL)
		return err_set(e, ERR_CONFIG, "no token configured: give "
		    "--token tpm2 or --token 'pkcs11:...'");
	if (strcmp(spec, "tpm2") == 0) {
		out->kind = AGENT_TOKEN_TPM2;
		out->backend = "tpm2";
		out->pin_max = TPM_PIN_MAX;
		return 0;
	}
	if (strncmp(spec, "pkcs11:", 7) == 0) {
		out->kind = AGENT_TOKEN_PKCS11;
		out->backend = "pkcs11";
		out->pin_max = 0;
		return 0;
	}
	return err_set(e, ERR_CONFIG, "token must be 'tpm2' or a 'pkcs11:' "
	    "URI");
}

void
agent_config_init(struct agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->check_interval = AGENT_CONFIG_CHECK_INTERVAL_DEFAULT;
	c->max_stale = AGENT_CONFIG_MAX_STALE_DEFAULT;
	c->long_poll = AGENT_CONFIG_LONG_POLL_DEFAULT;
	c->http_timeout = AGENT_CONFIG_HTTP_TIMEOUT_DEFAULT;
}

void
agent_config_free(struct agent_config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->account);
	free(c->label);
	free(c->token);
	free(c->tcti);
	free(c->pin_file);
	free(c->directory);
	free(c->directory_key);
	free(c->enc_alg);
	free(c->state_dir);
	free(c->socket);
	free(c->alert_command);
	free(c->log);
	for (i = 0; i < c->n_witness; i++)
		free(c->witness[i]);
	memset(c, 0, sizeof(*c));
}

int
agent_config_key_index(const char *key)
{
	int i;

	for (i = 0; agent_config_keys[i].key != NULL; i++)
		if (strcmp(agent_config_keys[i].key, key) == 0)
			return i;
	return -1;
}

/* Strict decimal in [min, max]. */
static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 20)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Replaces *slot with a copy of value. */
static int
set_str(char **slot, const char *value)
{
	char *copy;

	if ((copy = strdup(value)) == NULL)
		return ERR_ALLOC;
	free(*slot);
	*slot = copy;
	return 0;
}

/* The checks of string settings: 0, or ERR_CONFIG (or the error of the
 * check it relies on) with where in front of the message. */

static int
check_account(const char *value, const char *where, struct err_ctx *e)
{
	if (!devrec_account_valid(value))
		return err_set(e, ERR_CONFIG, "%s: '%s' is not a valid account "
		    "name (1-128 of a-z 0-9 . _ + @ -, starting with a letter "
		    "or digit)", where, value);
	return 0;
}

static int
check_label(const char *value, const char *where, struct err_ctx *e)
{
	if (!devrec_label_valid(value))
		return err_set(e, ERR_CONFIG, "%s: the label must be 1-64 "
		    "bytes of UTF-8 without control characters", where);
	return 0;
}

static int
check_token(const char *value, const char *where, struct err_ctx *e)
{
	struct agent_token_spec spec;
	struct err_ctx why;
	int r;

	err_clear(&why);
	if ((r = agent_token_spec_parse(value, &spec, &why)) != 0)
		return err_set(e, r, "%s: %s", where, err_msg(&why));
	return 0;
}

static int
check_directory_key(const char *value, const char *where, struct err_ctx *e)
{
	if (!devrec_id_valid(value))
		return err_set(e, ERR_CONFIG, "%s: directory_key must be the "
		    "64 lowercase hex digits of the directory id", where);
	return 0;
}

static int
check_directory(const char *value, const char *where, struct err_ctx *e)
{
	struct err_ctx why;
	int r;

	err_clear(&why);
	if ((r = dirc_url_check(value, &why)) != 0)
		return err_set(e, r, "%s: %s", where, err_msg(&why));
	return 0;
}

static int
check_enc_alg(const char *value, const char *where, struct err_ctx *e)
{
	if (strcmp(value, "auto") != 0 && strcmp(value, "hpke-p256") != 0 &&
	    strcmp(value, "rsa-oaep-sha256") != 0)
		return err_set(e, ERR_CONFIG, "%s: enc_alg must be auto, "
		    "hpke-p256 or rsa-oaep-sha256", where);
	return 0;
}

static int
check_log(const char *value, const char *where, struct err_ctx *e)
{
	if (strcmp(value, "stderr") != 0 && strcmp(value, "syslog") != 0)
		return err_set(e, ERR_CONFIG, "%s: log must be stderr or "
		    "syslog", where);
	return 0;
}

static int
check_socket(const char *value, const char *where, struct err_ctx *e)
{
	/* The longest path a sockaddr_un holds (sun_path[108]). */
	if (strlen(value) >= 108)
		return err_set(e, ERR_CONFIG, "%s: the socket path is longer "
		    "than 107 bytes", where);
	return 0;
}

/* The shapes of settings and the C type of their field. */
enum setting_kind {
	SETTING_STRING,         /* char * */
	SETTING_NUMBER,         /* uint64_t */
	SETTING_BOOL,           /* int, 0 or 1 */
	SETTING_WITNESS,        /* appended to witness[] */
};

/* How agent_config_set() checks and stores one setting. */
struct config_setting {
	const char *key;
	size_t offset;          /* of the field in struct agent_config */
	enum setting_kind kind;
	uint64_t min, max;      /* numbers: the range */
	/* strings: the check of a non-empty value; NULL: any */
	int (*check)(const char *value, const char *where, struct err_ctx *e);
};

#define STRING_SETTING(field, check)					\
	{ #field, offsetof(struct agent_config, field), SETTING_STRING,	\
	    0, 0, check }
#define NUMBER_SETTING(field, min, max)					\
	{ #field, offsetof(struct agent_config, field), SETTING_NUMBER,	\
	    min, max, NULL }
#define BOOL_SETTING(field)						\
	{ #field, offsetof(struct agent_config, field), SETTING_BOOL,	\
	    0, 1, NULL }

static const struct config_setting config_settings[] = {
	STRING_SETTING(account, check_account),
	STRING_SETTING(label, check_label),
	STRING_SETTING(token, check_token),
	STRING_SETTING(tcti, NULL),
	STRING_SETTING(pin_file, NULL),
	STRING_SETTING(directory, check_directory),
	STRING_SETTING(directory_key, check_directory_key),
	STRING_SETTING(enc_alg, check_enc_alg),
	STRING_SETTING(state_dir, NULL),
	STRING_SETTING(socket, check_socket),
	STRING_SETTING(alert_command, NULL),
	STRING_SETTING(log, check_log),
	NUMBER_SETTING(check_interval, 1, 86400),
	NUMBER_SETTING(max_stale, 1, 30 * 86400),
	NUMBER_SETTING(long_poll, 0, 60),
	NUMBER_SETTING(http_timeout, 1, 600),
	NUMBER_SETTING(pin_timeout, 0, 30 * 86400),
	BOOL_SETTING(require_endorsement),
	{ "witness", 0, SETTING_WITNESS, 0, 0, NULL },
	NUMBER_SETTING(witness_quorum, 1, TLOG_WITNESS_MAX),
	{ NULL, 0, 0, 0, 0, NULL }
};

#undef STRING_SETTING
#undef NUMBER_SETTING
#undef BOOL_SETTING

/* The entry of key in config_settings, or NULL. */
static const struct config_setting *
config_setting_find(const char *key)
{
	size_t i;

	for (i = 0; config_settings[i].key != NULL; i++)
		if (strcmp(config_settings[i].key, key) == 0)
			return &config_settings[i];
	return NULL;
}

/* The field of c that s describes: a char * for a string setting... */
static char **
config_string_field(struct agent_config *c, const struct config_setting *s)
{
	return (char **)(void *)((char *)c + s->offset);
}

/* ... a uint64_t for a number ... */
static uint64_t *
config_number_field(struct agent_config *c, const struct config_setting *s)
{
	return (uint64_t *)(void *)((char *)c + s->offset);
}

/* ... and an int for yes or no. */
static int *
config_bool_field(struct agent_config *c, const struct config_setting *s)
{
	return (int *)(void *)((char *)c + s->offset);
}

/* yes/true: 1, no/false: 0, anything else -1. */
static int
parse_bool(const char *s)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0)
		return 1;
	if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0)
		return 0;
	return -1;
}

int
agent_config_key_is_bool(const char *key)
{
	const struct config_setting *s = config_setting_find(key);

	return s != NULL && s->kind == SETTING_BOOL;
}

/* 0 unless value has a control character or is longer than the limit. */
static int
check_value_text(const char *key, const char *value, const char *where,
    struct err_ctx *e)
{
	size_t i;

	if (strlen(value) > AGENT_CONFIG_VALUE_MAX)
		return err_set(e, ERR_CONFIG, "%s: the value of %s is longer "
		    "than %d bytes", where, key, AGENT_CONFIG_VALUE_MAX);
	for (i = 0; value[i] != '\0'; i++)
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
			return err_set(e, ERR_CONFIG, "%s: the value of %s "
			    "contains a control character", where, key);
	return 0;
}

/*
 * Appends the witness vkey value to c after checking it, with the
 * witnesses already there, through the policy code that will use it.
 */
static int
add_witness(struct agent_config *c, const char *value, const char *where,
    struct err_ctx *e)
{
	struct tlog_policy *p;
	struct err_ctx why;
	size_t i;
	int r;

	if (c->n_witness >= TLOG_WITNESS_MAX)
		return err_set(e, ERR_CONFIG, "%s: more than %d witnesses",
		    where, TLOG_WITNESS_MAX);
	/* A policy holds 16 keys of up to 512 bytes: not on the stack. */
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return ERR_ALLOC;
	err_clear(&why);
	r = 0;
	for (i = 0; i < c->n_witness && r == 0; i++)
		r = tlog_policy_add_witness(p, c->witness[i], &why);
	if (r == 0 && (r = tlog_policy_add_witness(p, value, &why)) != 0) {
		if (r == ERR_EXISTS)
			r = err_set(e, ERR_CONFIG, "%s: witness %.64s is "
			    "given twice", where, value);
		else
			r = err_set(e, ERR_CONFIG, "%s: witness '%.80s' is not "
			    "a witness verifier key (name+keyid+base64 key, as "
			    "the witness prints it): %s", where, value,
			    err_msg(&why));
	} else if (r != 0) {
		r = err_set(e, ERR_CONFIG, "%s: a witness given before does "
		    "not parse: %s", where, err_msg(&why));
	}
	free(p);
	if (r != 0)
		return r;
	if ((c->witness[c->n_witness] = strdup(value)) == NULL)
		return ERR_ALLOC;
	c->n_witness++;
	return 0;
}

int
agent_config_set(struct agent_config *c, const char *key, const char *value,
    const char *where, struct err_ctx *e)
{
	const struct config_setting *s;
	uint64_t n = 0;
	int r;

	return_val_if_fail(c != NULL && key != NULL && value != NULL,
	    ERR_INVALID_ARG);
	if (where == NULL)
		where = "config";
	if ((r = check_value_text(key, value, where, e)) != 0)
		return r;
	s = config_setting_find(key);
	if (s != NULL && s->kind == SETTING_WITNESS) {
		if (value[0] == '\0')
			return err_set(e, ERR_CONFIG, "%s: %s is empty", where,
			    key);
		return add_witness(c, value, where, e);
	}
	if (s != NULL && s->kind == SETTING_BOOL) {
		int b = parse_bool(value);

		if (b < 0)
			return err_set(e, ERR_CONFIG, "%s: %s must be yes or no, "
			    "not '%s'", where, key, value);
		*config_bool_field(c, s) = b;
		return 0;
	}
	if (s != NULL && s->kind == SETTING_NUMBER) {
		if (parse_u64(value, s->min, s->max, &n) != 0)
			return err_set(e, ERR_CONFIG, "%s: %s must be a whole "
			    "number from %llu to %llu, not '%s'", where, key,
			    (unsigned long long)s->min,
			    (unsigned long long)s->max, value);
		*config_number_field(c, s) = n;
		return 0;
	}
	/* Also for an unknown key: an empty value is named as such. */
	if (value[0] == '\0')
		return err_set(e, ERR_CONFIG, "%s: %s is empty", where, key);
	if (s == NULL)
		return err_set(e, ERR_CONFIG, "%s: unknown setting '%s'", where,
		    key);
	if (s->check != NULL && (r = s->check(value, where, e)) != 0)
		return r;
	return set_str(config_string_field(c, s), value);
}

static int
is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

int
agent_config_parse(struct agent_config *c, const char *text, size_t len,
    const char *name, uint64_t locked, struct err_ctx *e)
{
	char line[AGENT_CONFIG_LINE_MAX + 1], where[PATH_MAX + 32];
	uint64_t seen = 0;
	size_t pos = 0, n, i;
	unsigned int lineno = 0;
	char *key, *val, *eq, *end;
	int idx, r;

	return_val_if_fail(c != NULL && text != NULL, ERR_INVALID_ARG);
	if (name == NULL)
		name = "config";
	if (len > AGENT_CONFIG_FILE_MAX)
		return err_set(e, ERR_CONFIG, "%s: larger than %zu bytes",
		    name, AGENT_CONFIG_FILE_MAX);
	while (pos < len) {
		lineno++;
		for (n = 0; pos + n < len && text[pos + n] != '\n'; n++)
			;
		snprintf(where, sizeof(where), "%s:%u", name, lineno);
		if (n > AGENT_CONFIG_LINE_MAX)
			return err_set(e, ERR_CONFIG, "%s: line longer than %d "
			    "bytes", where, AGENT_CONFIG_LINE_MAX);
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (pos + n < len ? 1 : 0);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		for (i = 0; i < n; i++)
			if (line[i] == '\0' || ((unsigned char)line[i] < 0x20 &&
			    line[i] != '\t') || line[i] == 0x7f)
				return err_set(e, ERR_CONFIG, "%s: control "
				    "character in line", where);
		key = line;
		while (is_space(*key))
			key++;
		if (*key == '\0' || *key == '#' || *key == ';')
			continue;
		if (*key == '[') {
			if (strcmp(key, "[agent]") != 0) {
				end = key + strlen(key);
				while (end > key && is_space(end[-1]))
					*--end = '\0';
				if (strcmp(key, "[agent]") != 0)
					return err_set(e, ERR_CONFIG, "%s: "
					    "unknown section %s (only [agent])",
					    where, key);
			}
			continue;
		}
		if ((eq = strchr(key, '=')) == NULL)
			return err_set(e, ERR_CONFIG, "%s: expected 'key = "
			    "value'", where);
		*eq = '\0';
		val = eq + 1;
		end = eq;
		while (end > key && is_space(end[-1]))
			*--end = '\0';
		while (is_space(*val))
			val++;
		end = val + strlen(val);
		while (end > val && is_space(end[-1]))
			*--end = '\0';
		if ((idx = agent_config_key_index(key)) < 0)
			return err_set(e, ERR_CONFIG, "%s: unknown setting "
			    "'%.64s'", where, key);
		if ((seen & ((uint64_t)1 << idx)) &&
		    strcmp(key, "witness") != 0)
			return err_set(e, ERR_CONFIG, "%s: '%s' is set twice",
			    where, key);
		seen |= (uint64_t)1 << idx;
		if (locked & ((uint64_t)1 << idx))
			continue;
		if ((r = agent_config_set(c, key, val, where, e)) != 0)
			return r;
	}
	return 0;
}

int
agent_config_load(struct agent_config *c, const char *path, uint64_t locked,
    struct err_ctx *e)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = fileio_read(path, AGENT_CONFIG_FILE_MAX, 0, &text, &len, e);
	if (r == ERR_NOT_FOUND)
		return err_wrap(e, r, "config file %s does not exist (run "
		    "devid-agent init)", path);
	if (r == ERR_TOO_LARGE)
		return err_wrap(e, ERR_CONFIG, "%s", err_msg(e));
	if (r != 0)
		return r;
	r = agent_config_parse(c, text, len, path, locked, e);
	free(text);
	return r;
}

/* Appends "key = value\n" to f when value is set. */
static void
write_kv(FILE *f, const char *key, const char *value)
{
	if (value != NULL)
		fprintf(f, "%s = %s\n", key, value);
}

int
agent_config_write(const struct agent_config *c, const char *path,
    struct err_ctx *e)
{
	char *text = NULL;
	size_t len = 0, i;
	FILE *f;
	int failed, r;

	if ((f = open_memstream(&text, &len)) == NULL)
		return ERR_ALLOC;
	fprintf(f, "# devid-agent configuration (devid-agent --help lists "
	    "every setting)\n[agent]\n");
	write_kv(f, "account", c->account);
	write_kv(f, "label", c->label);
	write_kv(f, "token", c->token);
	write_kv(f, "tcti", c->tcti);
	write_kv(f, "pin_file", c->pin_file);
	write_kv(f, "directory", c->directory);
	write_kv(f, "directory_key", c->directory_key);
	write_kv(f, "enc_alg", c->enc_alg);
	write_kv(f, "state_dir", c->state_dir);
	write_kv(f, "socket", c->socket);
	write_kv(f, "alert_command", c->alert_command);
	write_kv(f, "log", c->log);
	for (i = 0; i < c->n_witness; i++)
		write_kv(f, "witness", c->witness[i]);
	if (c->witness_quorum != 0)
		fprintf(f, "witness_quorum = %llu\n",
		    (unsigned long long)c->witness_quorum);
	fprintf(f, "check_interval = %llu\nmax_stale = %llu\n"
	    "long_poll = %llu\nhttp_timeout = %llu\npin_timeout = %llu\n"
	    "require_endorsement = %s\n",
	    (unsigned long long)c->check_interval,
	    (unsigned long long)c->max_stale,
	    (unsigned long long)c->long_poll,
	    (unsigned long long)c->http_timeout,
	    (unsigned long long)c->pin_timeout,
	    c->require_endorsement ? "yes" : "no");
	/* A memory stream fails only when memory runs out. */
	failed = ferror(f) != 0;
	if (fclose(f) != 0 || failed) {
		free(text);
		return ERR_ALLOC;
	}
	r = fileio_write_atomic(path, text, len, 0600, e);
	free(text);
	return r;
}

int
agent_config_default_config_path(char **out, struct err_ctx *e)
{
	return path_xdg("XDG_CONFIG_HOME", ".config", "devid/agent.conf", out,
	    e);
}

int
agent_config_default_state_dir(char **out, struct err_ctx *e)
{
	return path_default_state_dir(out, e);
}

int
agent_config_default_socket(char **out, struct err_ctx *e)
{
	int r;

	if ((r = path_default_socket(out, e)) != 0)
		return err_wrap(e, r, "no socket path: XDG_RUNTIME_DIR is not "
		    "set; give --socket PATH");
	return 0;
}

int
agent_config_finish(struct agent_config *c, int want_socket, struct err_ctx *e)
{
	int r;

	if (c->state_dir == NULL &&
	    (r = agent_config_default_state_dir(&c->state_dir, e)) != 0)
		return r;
	if (c->socket == NULL && want_socket &&
	    (r = agent_config_default_socket(&c->socket, e)) != 0)
		return r;
	if (c->socket != NULL && strlen(c->socket) >= 108)
		return err_set(e, ERR_CONFIG, "the socket path %s is longer "
		    "than 107 bytes", c->socket);
	if (c->long_poll > 60)
		c->long_poll = 60;
	if (c->witness_quorum > c->n_witness)
		return err_set(e, ERR_CONFIG, "witness_quorum is %llu but "
		    "%zu witnesses are configured: give at least that many "
		    "witness settings or a smaller quorum",
		    (unsigned long long)c->witness_quorum, c->n_witness);
	return 0;
}

int
agent_config_tlog_policy(const struct agent_config *c, struct tlog_policy *p,
    struct err_ctx *e)
{
	struct err_ctx why;
	size_t i;
	int r;

	memset(p, 0, sizeof(*p));
	if (c->n_witness == 0) {
		if (c->witness_quorum != 0)
			return err_set(e, ERR_CONFIG, "witness_quorum is set "
			    "but no witness is configured");
		return 0;
	}
	err_clear(&why);
	for (i = 0; i < c->n_witness; i++)
		if ((r = tlog_policy_add_witness(p, c->witness[i], &why)) != 0)
			return err_set(e, ERR_CONFIG, "witness '%.80s': %s",
			    c->witness[i], err_msg(&why));
	p->quorum = (unsigned int)(c->witness_quorum != 0 ?
	    c->witness_quorum : c->n_witness);
	p->max_stale = c->max_stale;
	if ((r = tlog_policy_check(p, &why)) != 0)
		return err_set(e, ERR_CONFIG, "witness_quorum: %s",
		    err_msg(&why));
	return 0;
}

int
agent_config_copy_witnesses(struct agent_config *c,
    const struct agent_config *src)
{
	char *copy[TLOG_WITNESS_MAX];
	size_t i;

	for (i = 0; i < src->n_witness; i++)
		if ((copy[i] = strdup(src->witness[i])) == NULL) {
			while (i-- > 0)
				free(copy[i]);
			return ERR_ALLOC;
		}
	for (i = 0; i < c->n_witness; i++)
		free(c->witness[i]);
	for (i = 0; i < src->n_witness; i++)
		c->witness[i] = copy[i];
	c->n_witness = src->n_witness;
	return 0;
}
