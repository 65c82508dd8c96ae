/*
 * agent-config.h - devid-agent settings: the INI file, XDG paths and the
 * command-line flags that mirror every setting.
 *
 * The file is $XDG_CONFIG_HOME/devid/agent.conf (or --config FILE):
 *
 *     # comment
 *     [agent]
 *     account = alice@example.org
 *     check_interval = 60
 *
 * Every key is also a flag: check_interval is --check-interval.  Values
 * from flags win over the file.  `witness` is the one key that may be
 * given more than once (in the file and as flags); witnesses given as
 * flags replace those of the file.  Parsing is bounded and strict: unknown
 * keys, duplicate keys, other sections, lines without '=', control
 * characters, over-long lines and out-of-range numbers are errors that
 * name the file and line.
 */
#ifndef DEVID_AGENT_CONFIG_H
#define DEVID_AGENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "tlog-client.h"

#define AGENT_CONFIG_FILE_MAX ((size_t)64 * 1024)
#define AGENT_CONFIG_LINE_MAX 1024
#define AGENT_CONFIG_VALUE_MAX 1000

#define AGENT_CONFIG_CHECK_INTERVAL_DEFAULT 60
#define AGENT_CONFIG_MAX_STALE_DEFAULT 900
#define AGENT_CONFIG_LONG_POLL_DEFAULT 60
#define AGENT_CONFIG_HTTP_TIMEOUT_DEFAULT 30

/* The backends a `token` setting can name. */
enum agent_token_kind {
	AGENT_TOKEN_TPM2,
	AGENT_TOKEN_PKCS11,
};

/* What a `token` setting names, as agent_token_spec_parse reads it. */
struct agent_token_spec {
	enum agent_token_kind kind;
	/* The backend's name, the ops->name of the token it makes: "tpm2"
	 * or "pkcs11".  A static string. */
	const char *backend;
	/* The longest PIN the backend takes as the keys' auth value when it
	 * creates them; 0: no limit of its own. */
	size_t pin_max;
};

/*
 * The one place that decides which backend a `token` setting names (the
 * config check and the agent's token factory both ask it):
 * exactly "tpm2" (the TPM on the `tcti` setting), or an RFC 7512 URI
 * starting with "pkcs11:" (checked in full only by the PKCS#11 backend).
 * Fills out and returns 0, or returns ERR_CONFIG with the reason in e
 * (spec NULL: no token is configured); out is untouched on failure.
 */
int agent_token_spec_parse(const char *spec, struct agent_token_spec *out,
    struct err_ctx *e);

/*
 * Every setting.  Strings are owned (NULL when unset); numbers are in
 * seconds.  agent_config_free() releases the strings.
 */
struct agent_config {
	char *account;
	char *label;
	char *token;            /* "tpm2" or a pkcs11: URI */
	char *tcti;             /* TPM only; NULL: DEVID_TCTI or default */
	char *pin_file;
	char *directory;        /* base URL */
	char *directory_key;    /* pinned directory id (64 hex) */
	char *enc_alg;          /* "auto", "hpke-p256", "rsa-oaep-sha256" */
	char *state_dir;
	char *socket;
	char *alert_command;
	char *log;              /* "stderr" or "syslog" */
	uint64_t check_interval;
	uint64_t max_stale;
	uint64_t long_poll;     /* 0: no long-poll */
	uint64_t http_timeout;
	uint64_t pin_timeout;   /* 0: cached until lock or stop */
	/* An addition without the endorsement of an approved device is a
	 * critical alert that `approve` accepts only with --force. */
	int require_endorsement;
	/* The witnesses of the directory's transparency log (vkey strings,
	 * docs/protocol.md 7.3) and how many must cosign a checkpoint (0:
	 * all of them).  No witness: the transparency log is not checked. */
	char *witness[TLOG_WITNESS_MAX];
	size_t n_witness;
	uint64_t witness_quorum;
};

/* One setting: its INI key, a line of help, and the value's shape. */
struct agent_config_key {
	const char *key;
	const char *arg;        /* "N", "URL", ... for --help; NULL: a yes/no
	                           setting, a flag without a value */
	const char *help;
};

/* The table of settings, terminated by a NULL key. */
extern const struct agent_config_key agent_config_keys[];

/* Sets the defaults (numbers; strings stay NULL). */
void agent_config_init(struct agent_config *c);

/* Frees every string in c and zeroes it; NULL is fine. */
void agent_config_free(struct agent_config *c);

/*
 * Sets key to value (NUL-terminated), checking it: numbers are decimal
 * within their range, the account and label follow PROTOCOL.md, the
 * directory key is 64 lowercase hex digits, the directory URL passes
 * dirc_url_check() (https://, or http:// only to loopback), enc_alg and
 * log one of their words, a witness a witness vkey (type 0x04) not given
 * before, appended to the others (at most TLOG_WITNESS_MAX).  ERR_CONFIG
 * with a message for an unknown key or a bad value; c is unchanged then.
 * where ("file:line" or "--flag") prefixes messages.
 */
int agent_config_set(struct agent_config *c, const char *key, const char *value,
    const char *where, struct err_ctx *e);

/*
 * Parses len bytes of INI text (at most AGENT_CONFIG_FILE_MAX) into c;
 * name is the file name for messages.  Keys already in `locked` (set from
 * flags, a bitmask by agent_config_keys index) are skipped so that flags
 * win.  On failure c may hold the settings before the bad line.
 */
int agent_config_parse(struct agent_config *c, const char *text, size_t len,
    const char *name, uint64_t locked, struct err_ctx *e);

/* Reads and parses a file.  ERR_NOT_FOUND when it does not exist. */
int agent_config_load(struct agent_config *c, const char *path, uint64_t locked,
    struct err_ctx *e);

/* The index of key in agent_config_keys or -1. */
int agent_config_key_index(const char *key);

/*
 * 1 when key is a yes/no setting (in the file `yes`, `no`, `true` or
 * `false`; as a flag `--key` alone means yes, `--key=no` no).
 */
int agent_config_key_is_bool(const char *key);

/*
 * Writes c as INI to path (mode 0600, replacing the file atomically).
 * Only settings that are set are written.
 */
int agent_config_write(const struct agent_config *c, const char *path,
    struct err_ctx *e);

/*
 * XDG paths, each a new string the caller frees:
 *  - config file: $XDG_CONFIG_HOME/devid/agent.conf, else
 *    $HOME/.config/devid/agent.conf;
 *  - state dir: $XDG_DATA_HOME/devid, else $HOME/.local/share/devid;
 *  - socket: $XDG_RUNTIME_DIR/devid/agent.sock (ERR_CONFIG when
 *    XDG_RUNTIME_DIR is unset: pass --socket).
 */
int agent_config_default_config_path(char **out, struct err_ctx *e);
int agent_config_default_state_dir(char **out, struct err_ctx *e);
int agent_config_default_socket(char **out, struct err_ctx *e);

/*
 * Fills state_dir and socket from the XDG defaults when unset.
 * want_socket: whether a missing socket path is an error.
 */
int agent_config_finish(struct agent_config *c, int want_socket,
    struct err_ctx *e);

/*
 * The transparency-log policy of c into p: its witnesses, the quorum
 * (witness_quorum, or every witness when 0) and max_stale.  With no
 * witness p->n_witness is 0 (nothing to check) and 0 is returned.
 * ERR_CONFIG for a quorum without witnesses or larger than their
 * number, or a witness that does not parse; p is zeroed first.
 */
int agent_config_tlog_policy(const struct agent_config *c,
    struct tlog_policy *p, struct err_ctx *e);

/* Replaces the witnesses of c with copies of those of src. */
int agent_config_copy_witnesses(struct agent_config *c,
    const struct agent_config *src);

#endif /* DEVID_AGENT_CONFIG_H */
