/*
 * agent-token.c - token factory, PIN cache, unlock and lock.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent-token.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "p11-token.h"
#include "token.h"
#include "tpm-token.h"

int
agent_token_init(struct agent_token *at, const char *spec, const char *tcti,
    const char *state_dir, int interactive, struct err_ctx *e)
{
	int r;

	memset(at, 0, sizeof(*at));
	if ((r = agent_token_spec_parse(spec, &at->parsed, e)) != 0)
		return r;
	if ((at->spec = strdup(spec)) == NULL ||
	    (tcti != NULL && (at->tcti = strdup(tcti)) == NULL) ||
	    (at->state_dir = strdup(state_dir)) == NULL) {
		agent_token_free(at);
		return ERR_ALLOC;
	}
	at->interactive = interactive;
	snprintf(at->backend, sizeof(at->backend), "%s", at->parsed.backend);
	return 0;
}

static void
add_stats(struct token_stats *sum, const struct token_stats *s)
{
	sum->signs += s->signs;
	sum->ecdhs += s->ecdhs;
	sum->decrypts += s->decrypts;
	sum->logins += s->logins;
	sum->reconnects += s->reconnects;
}

/* Closes the backend, keeping its counters. */
static void
backend_close(struct agent_token *at)
{
	if (at->t != NULL) {
		add_stats(&at->closed, &at->t->stats);
		token_close(at->t);
	}
	at->t = NULL;
	at->keys_open = 0;
}

static void
pin_wipe(struct agent_token *at)
{
	crypto_wipe(at->pin, sizeof(at->pin));
	at->pin_len = 0;
	at->pin_set = 0;
	at->pin_time = 0;
}

void
agent_token_free(struct agent_token *at)
{
	if (at == NULL)
		return;
	backend_close(at);
	pin_wipe(at);
	EVP_PKEY_free(at->sig_pub);
	free(at->spec);
	free(at->tcti);
	free(at->state_dir);
	memset(at, 0, sizeof(*at));
}

int
agent_token_set_pin(struct agent_token *at, const char *pin, size_t len,
    struct err_ctx *e)
{
	if (len == 0 || len > AGENT_PIN_MAX || memchr(pin, '\0', len) != NULL)
		return err_set(e, ERR_INVALID_ARG, "a PIN is 1 to %d bytes",
		    AGENT_PIN_MAX);
	pin_wipe(at);
	memcpy(at->pin, pin, len);
	at->pin[len] = '\0';
	at->pin_len = len;
	at->pin_set = 1;
	at->pin_time = (uint64_t)time(NULL);
	return 0;
}

int
agent_read_secret_file(const char *path, const char *what, char *out,
    size_t max, size_t *len, struct err_ctx *e)
{
	char *text = NULL;
	size_t text_len = 0, n;
	struct stat st;
	int r;

	return_val_if_fail(path != NULL && what != NULL && out != NULL &&
	    max > 0, ERR_INVALID_ARG);
	out[0] = '\0';
	r = fileio_read(path, AGENT_SECRET_FILE_MAX, FILEIO_FOLLOW |
	    FILEIO_SECRET | FILEIO_PRIVATE, &text, &text_len, e);
	if (r == ERR_DENIED) {
		/* Like ssh with a key file: say what to run. */
		return err_wrap(e, ERR_DENIED, "the %s file %s is open to "
		    "other users (mode %04o): run chmod 600 %s", what, path,
		    stat(path, &st) == 0 ?
		    (unsigned int)(st.st_mode & 07777) : 0u, path);
	}
	if (r == ERR_TOO_LARGE)
		return err_wrap(e, ERR_CONFIG, "the %s file %s is larger than "
		    "%zu bytes", what, path, AGENT_SECRET_FILE_MAX);
	if (r != 0)
		return err_wrap(e, r, "the %s file: %s", what, err_msg(e));
	n = strcspn(text, "\r\n");
	if (n == 0 || n >= max || memchr(text, '\0', n) != NULL) {
		r = err_set(e, ERR_CONFIG, "the %s file %s holds no %s on its "
		    "first line (1 to %zu bytes)", what, path, what, max - 1);
	} else {
		memcpy(out, text, n);
		out[n] = '\0';
		if (len != NULL)
			*len = n;
		r = 0;
	}
	crypto_wipe(text, text_len);
	free(text);
	return r;
}

int
agent_token_pin_file(struct agent_token *at, const char *path,
    struct err_ctx *e)
{
	char pin[AGENT_PIN_MAX + 1];
	size_t len = 0;
	int r;

	if ((r = agent_read_secret_file(path, "PIN", pin, sizeof(pin), &len,
	    e)) == 0)
		r = agent_token_set_pin(at, pin, len, e);
	crypto_wipe(pin, sizeof(pin));
	return r;
}

int
agent_read_secret(const char *prompt, char *out, size_t max,
    struct err_ctx *e)
{
	struct termios old, quiet;
	FILE *in;
	int fd, tty, restore = 0, r = 0;
	size_t len;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) >= 0 &&
	    isatty(STDIN_FILENO)) {
		tty = 1;
	} else {
		if (fd >= 0)
			close(fd);
		fd = -1;
		tty = 0;
	}
	if (tty) {
		if ((in = fdopen(fd, "r+")) == NULL) {
			close(fd);
			return err_set(e, ERR_IO, "cannot use the terminal");
		}
		fprintf(in, "%s", prompt);
		fflush(in);
		if (tcgetattr(fd, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
			if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0)
				restore = 1;
		}
	} else {
		in = stdin;
	}
	if (fgets(out, (int)max, in) == NULL) {
		r = err_set(e, ERR_PIN_REQUIRED, "no secret was entered");
		out[0] = '\0';
	}
	if (tty) {
		if (restore)
			(void)tcsetattr(fd, TCSAFLUSH, &old);
		fprintf(in, "\n");
		fclose(in);
	}
	len = strcspn(out, "\r\n");
	out[len] = '\0';
	if (r == 0 && len == 0)
		r = err_set(e, ERR_PIN_REQUIRED, "an empty secret was entered");
	return r;
}

/* The backend asks for a PIN: the cache, else a prompt when allowed. */
static int
pin_for_backend(struct agent_token *at, char *pin, size_t pin_max)
{
	char prompt[128];

	if (!at->pin_set && at->interactive) {
		char buf[AGENT_PIN_MAX + 2];
		int r;

		snprintf(prompt, sizeof(prompt), "PIN for the device keys in "
		    "the %s token: ", at->t != NULL ? at->t->ops->name :
		    at->backend);
		r = agent_read_secret(prompt, buf, sizeof(buf), NULL);
		if (r == 0)
			r = agent_token_set_pin(at, buf, strlen(buf), NULL);
		crypto_wipe(buf, sizeof(buf));
		if (r != 0)
			return ERR_PIN_REQUIRED;
	}
	if (!at->pin_set) {
		at->needs_pin = 1;
		return ERR_PIN_REQUIRED;
	}
	if (at->pin_len >= pin_max)
		return ERR_PIN_REQUIRED;
	memcpy(pin, at->pin, at->pin_len + 1);
	return 0;
}

static int
tpm_pin_cb(void *arg, const char *what, char *pin, size_t pin_max)
{
	(void)what;
	return pin_for_backend(arg, pin, pin_max);
}

static int
p11_pin_cb(void *arg, const char *token_label, char *pin, size_t pin_max)
{
	(void)token_label;
	return pin_for_backend(arg, pin, pin_max);
}

/* Creates the backend object for at->spec; with_pin puts the cached PIN
 * into the TPM options (key creation sets it as the keys' auth). */
static int
backend_new(struct agent_token *at, int with_pin, struct err_ctx *e)
{
	struct tpm_options topt;
	struct p11_options popt;

	if (at->t != NULL)
		return 0;
	switch (at->parsed.kind) {
	case AGENT_TOKEN_TPM2:
		memset(&topt, 0, sizeof(topt));
		if (with_pin && at->pin_set) {
			if (at->pin_len > at->parsed.pin_max)
				return err_set(e, ERR_CONFIG, "a TPM PIN is at "
				    "most %zu bytes", at->parsed.pin_max);
			topt.pin = at->pin;
		}
		topt.pin_cb = tpm_pin_cb;
		topt.pin_cb_arg = at;
		return tpm_token_new(at->tcti, at->state_dir, &topt, &at->t, e);
	case AGENT_TOKEN_PKCS11:
		memset(&popt, 0, sizeof(popt));
		popt.pin_prompt = p11_pin_cb;
		popt.pin_prompt_arg = at;
		return p11_token_new(at->spec, &popt, &at->t, e);
	}
	return err_set(e, ERR_INTERNAL, "unknown token backend");
}

/* Reads the public keys; the first time fixes them, later checks them. */
static int
read_public_keys(struct agent_token *at, struct err_ctx *e)
{
	uint8_t *sig = NULL, *enc = NULL;
	size_t sig_len = 0, enc_len = 0;
	char id[DEVREC_ID_HEX_LEN + 1];
	EVP_PKEY *pub = NULL;
	int r = ERR_INTERNAL;

	if ((r = token_public_key(at->t, TOKEN_KEY_SIG, &sig, &sig_len,
	    e)) != 0 ||
	    (r = token_public_key(at->t, TOKEN_KEY_ENC, &enc, &enc_len,
	    e)) != 0)
		goto out;
	if (sig_len > CRYPTO_SPKI_MAX || enc_len > CRYPTO_SPKI_MAX) {
		r = err_set(e, ERR_FORMAT, "token public key too large");
		goto out;
	}
	if ((r = devrec_device_id(sig, sig_len, id)) != 0)
		goto out;
	if (at->have_keys) {
		if (strcmp(id, at->device) != 0) {
			r = err_set(e, ERR_KEY_POLICY, "the token now holds "
			    "another signing key (device %.16s, expected "
			    "%.16s)", id, at->device);
			goto out;
		}
		r = 0;
		goto out;
	}
	if ((r = crypto_spki_import(sig, sig_len, &pub, e)) != 0)
		goto out;
	if (!crypto_is_p256(pub)) {
		r = err_set(e, ERR_KEY_POLICY, "the token's signing key is "
		    "not P-256");
		goto out;
	}
	memcpy(at->sig_spki, sig, sig_len);
	at->sig_spki_len = sig_len;
	memcpy(at->enc_spki, enc, enc_len);
	at->enc_spki_len = enc_len;
	at->enc_alg = at->t->enc_alg;
	memcpy(at->device, id, sizeof(id));
	at->sig_pub = pub;
	pub = NULL;
	at->have_keys = 1;
	r = 0;
 out:
	EVP_PKEY_free(pub);
	free(sig);
	free(enc);
	return r;
}

int
agent_token_open(struct agent_token *at, struct err_ctx *e)
{
	int r;

	if (at->t != NULL && at->keys_open)
		return 0;
	if ((r = backend_new(at, 0, e)) != 0)
		return r;
	if ((r = token_open_keys(at->t, e)) != 0) {
		if (r == ERR_PIN_REQUIRED)
			at->needs_pin = 1;
		if (r == ERR_PIN_INCORRECT || r == ERR_PIN_LOCKED ||
		    r == ERR_PIN_REQUIRED) {
			pin_wipe(at);
			backend_close(at);
		}
		return r;
	}
	at->keys_open = 1;
	if ((r = read_public_keys(at, e)) != 0) {
		backend_close(at);
		return r;
	}
	return 0;
}

int
agent_token_create(struct agent_token *at, enum token_enc_alg alg,
    struct err_ctx *e)
{
	int r;

	if ((r = backend_new(at, 1, e)) != 0)
		return r;
	if ((r = token_create_keys(at->t, alg, e)) != 0)
		return r;
	at->keys_open = 1;
	return read_public_keys(at, e);
}

int
agent_token_sign(struct agent_token *at, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e)
{
	int r;

	if ((r = agent_token_open(at, e)) != 0)
		return r;
	r = token_sign_digest(at->t, digest, sig, e);
	if (r == ERR_PIN_REQUIRED)
		at->needs_pin = 1;
	if (r == ERR_PIN_INCORRECT || r == ERR_PIN_LOCKED) {
		/* Never try a rejected PIN again. */
		pin_wipe(at);
		backend_close(at);
	}
	if (r == 0 && !at->pin_set)
		at->needs_pin = 0;
	return r;
}

int
agent_token_sign_cb(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	return agent_token_sign(arg, digest, sig, e);
}

int
agent_token_unlock(struct agent_token *at, const char *pin, size_t len,
    struct err_ctx *e)
{
	uint8_t digest[32], sig[64];
	int r;

	backend_close(at);
	if ((r = agent_token_set_pin(at, pin, len, e)) != 0)
		return r;
	if ((r = crypto_random(digest, sizeof(digest))) != 0 ||
	    (r = agent_token_sign(at, digest, sig, e)) != 0)
		goto out;
	if (crypto_ecdsa_verify(at->sig_pub, digest, sig) != 0) {
		r = err_set(e, ERR_KEY_POLICY, "the token signed with another "
		    "key than the public key it shows for its signing key");
		goto out;
	}
	at->needs_pin = 1;      /* it has one now; lock brings it back */
	r = 0;
 out:
	if (r != 0) {
		pin_wipe(at);
		backend_close(at);
	}
	return r;
}

void
agent_token_lock(struct agent_token *at)
{
	pin_wipe(at);
	backend_close(at);
}

int
agent_token_locked(const struct agent_token *at)
{
	return at->needs_pin && !at->pin_set;
}

void
agent_token_stats(const struct agent_token *at, struct token_stats *out)
{
	*out = at->closed;
	if (at->t != NULL)
		add_stats(out, &at->t->stats);
}

struct token *
agent_token_backend(struct agent_token *at, struct err_ctx *e)
{
	if (agent_token_open(at, e) != 0)
		return NULL;
	return at->t;
}
