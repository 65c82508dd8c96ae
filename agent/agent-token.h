/*
 * agent-token.h - the agent's hold on its token: the factory that turns
 * the `token` setting into a backend, the PIN cache behind unlock/lock,
 * and the device's public keys read from the token.
 *
 * `token = tpm2` makes a TPM token (tpm_token_new) on the TCTI of the
 * `tcti` setting, else $DEVID_TCTI, else device:/dev/tpmrm0, with the key
 * files in the state directory.  `token = pkcs11:...` makes a PKCS#11
 * token (p11_token_new) from the RFC 7512 URI, whose pin-value or
 * pin-source it honours.
 *
 * PIN sources, first that has one: the URI (PKCS#11 only), the pin_file
 * setting, `devid-agent unlock` over the socket, and -- for the
 * interactive commands (init, register) -- a prompt on the terminal.  The
 * PIN is cached only here, handed to the backend through its PIN
 * callback, wiped on lock (which also closes the backend so that its
 * copies are wiped too), on a PIN the token rejects, and at the end.
 *
 * Not thread-safe: the agent serialises calls.
 */
#ifndef DEVID_AGENT_TOKEN_H
#define DEVID_AGENT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "agent-config.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "token.h"

#define AGENT_PIN_MAX 256

struct agent_token {
	char *spec;             /* the `token` setting, as given */
	struct agent_token_spec parsed;
	char *tcti;
	char *state_dir;
	int interactive;        /* prompt on the terminal when no PIN */
	struct token *t;        /* NULL while closed */
	int keys_open;
	char pin[AGENT_PIN_MAX + 1];
	size_t pin_len;
	int pin_set;
	uint64_t pin_time;      /* when the PIN was given */
	int needs_pin;          /* the token asked for a PIN and had none */
	/* Public keys, read from the token the first time it opened. */
	int have_keys;
	EVP_PKEY *sig_pub;
	uint8_t sig_spki[CRYPTO_SPKI_MAX];
	size_t sig_spki_len;
	uint8_t enc_spki[CRYPTO_SPKI_MAX];
	size_t enc_spki_len;
	enum token_enc_alg enc_alg;
	char device[DEVREC_ID_HEX_LEN + 1];
	char backend[16];       /* parsed.backend, for status and init */
	struct token_stats closed;      /* counts of closed backends */
};

/* Sets up at for spec (nothing is opened); refuses what
 * agent_token_spec_parse refuses, with its message.  Copies the strings. */
int agent_token_init(struct agent_token *at, const char *spec,
    const char *tcti, const char *state_dir, int interactive,
    struct err_ctx *e);

/* Closes the token, wipes the PIN and frees everything.  NULL is fine. */
void agent_token_free(struct agent_token *at);

/* Caches a PIN (len bytes, 1..AGENT_PIN_MAX, no NUL inside). */
int agent_token_set_pin(struct agent_token *at, const char *pin, size_t len,
    struct err_ctx *e);

/* The largest PIN or password file read. */
#define AGENT_SECRET_FILE_MAX ((size_t)4096)

/*
 * Reads the first line of the secret file at path into out (at most
 * max - 1 bytes and a NUL; *len, when len is not NULL, gets its length).
 * what names the secret in messages ("PIN", "password").  The file must
 * be a regular file (a symbolic link is followed) of at most
 * AGENT_SECRET_FILE_MAX bytes that neither group nor others may access,
 * as ssh wants of a key file: ERR_DENIED otherwise, with a message that
 * says to run chmod 600 on it.  ERR_CONFIG when the first line is empty
 * or too long, ERR_NOT_FOUND, ERR_IO.  The file's bytes are wiped; out
 * holds the secret (the caller wipes it) only on success.
 */
int agent_read_secret_file(const char *path, const char *what, char *out,
    size_t max, size_t *len, struct err_ctx *e);

/* Caches the PIN from the first line of the file at path, read with
 * agent_read_secret_file(): a file others may read is refused. */
int agent_token_pin_file(struct agent_token *at, const char *path,
    struct err_ctx *e);

/* Prompts for a secret on the terminal without echo (or reads a line
 * from stdin when it is not a terminal).  out gets a NUL-terminated
 * string of at most max - 1 bytes; the caller wipes it. */
int agent_read_secret(const char *prompt, char *out, size_t max,
    struct err_ctx *e);

/*
 * Opens the backend and its existing keys when they are not open yet,
 * and reads the public keys; the first time these fix the device id,
 * later they must match it (ERR_KEY_POLICY otherwise).  ERR_PIN_REQUIRED
 * when the token needs a PIN that no source has (the agent is locked).
 */
int agent_token_open(struct agent_token *at, struct err_ctx *e);

/* init: creates the keys (alg TOKEN_ENC_NONE: the token's best) and
 * reads their public halves.  ERR_EXISTS when keys exist. */
int agent_token_create(struct agent_token *at, enum token_enc_alg alg,
    struct err_ctx *e);

/* Signs a SHA-256 digest with the device signing key (opening the token
 * when needed). */
int agent_token_sign(struct agent_token *at, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e);

/* A devrec_sign_fn / reg_sign_fn / env_sign_fn: arg is the agent_token. */
int agent_token_sign_cb(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e);

/*
 * unlock: caches pin, reopens the token and proves the PIN with one
 * signature that is verified with the known public key (ERR_KEY_POLICY
 * when it does not verify: the token's keys were swapped).  A rejected
 * PIN is wiped and the token left closed.
 */
int agent_token_unlock(struct agent_token *at, const char *pin, size_t len,
    struct err_ctx *e);

/* lock: wipes the PIN and closes the backend. */
void agent_token_lock(struct agent_token *at);

/* Whether the token needs a PIN the agent does not have. */
int agent_token_locked(const struct agent_token *at);

/* The counters of every backend opened so far, added up. */
void agent_token_stats(const struct agent_token *at, struct token_stats *out);

/* The backend object for env_open's callbacks (opening it when needed). */
struct token *agent_token_backend(struct agent_token *at, struct err_ctx *e);

#endif /* DEVID_AGENT_TOKEN_H */
