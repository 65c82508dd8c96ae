/*
 * dir-key.c - the head-signing key: PEM file or PKCS#11 token.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec.h"
#include "crypto.h"
#include "dir-key.h"
#include "errors.h"
#include "p11-token.h"
#include "token.h"

struct dir_key {
	EVP_PKEY *priv;                 /* file keys */
	struct token *token;            /* or a PKCS#11 token */
	EVP_PKEY *pub;
	uint8_t *spki;
	size_t spki_len;
	char id[DIR_KEY_ID_LEN + 1];
	pthread_mutex_t lock;           /* serialises signing */
};

/* Sets pub and id from spki (already set). */
static int
key_finish(struct dir_key *k, struct err_ctx *e)
{
	uint8_t h[32];
	int r;

	if ((r = crypto_spki_import(k->spki, k->spki_len, &k->pub, e)) != 0)
		return r;
	if (!crypto_is_p256(k->pub))
		return err_set(e, ERR_FORMAT, "the head key must be an ECDSA "
		    "P-256 key");
	if ((r = crypto_sha256(k->spki, k->spki_len, h)) != 0)
		return err_set(e, r, "cannot hash the head key");
	hex_encode(h, sizeof(h), k->id);
	return 0;
}

/*
 * The head key in a PKCS#11 token: the signing key the URI names
 * ("<object>-sig"), opened in the backend's signing-key-only mode, so no
 * encryption key is wanted or made.  With create, a token without the key
 * gets it.  On failure k->token may be set; the caller closes it.
 */
static int
key_open_token(struct dir_key *k, const char *uri, int create,
    int *created, struct err_ctx *e)
{
	struct p11_options opt;
	int r;

	memset(&opt, 0, sizeof(opt));
	opt.sig_only = 1;
	if ((r = p11_token_new(uri, &opt, &k->token, e)) != 0)
		return r;
	r = token_open_keys(k->token, e);
	if (r == ERR_NOT_FOUND && create) {
		err_clear(e);
		if ((r = token_create_keys(k->token, TOKEN_ENC_NONE, e)) != 0)
			return r;
		if (created != NULL)
			*created = 1;
	}
	if (r != 0)
		return r;
	return token_public_key(k->token, TOKEN_KEY_SIG, &k->spki,
	    &k->spki_len, e);
}

int
dir_key_open(const char *spec, int create, struct dir_key **out,
    int *created, struct err_ctx *e)
{
	struct dir_key *k = NULL;
	int r = ERR_INTERNAL, lock_ok = 0;

	return_val_if_fail(spec != NULL && out != NULL, ERR_INVALID_ARG);
	if (created != NULL)
		*created = 0;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	if (pthread_mutex_init(&k->lock, NULL) != 0) {
		r = err_set(e, ERR_INTERNAL, "cannot create a mutex");
		goto out;
	}
	lock_ok = 1;
	if (strncmp(spec, "pkcs11:", 7) == 0) {
		if ((r = key_open_token(k, spec, create, created, e)) != 0)
			goto out;
		goto finish;
	}
	r = crypto_pkey_load_pem(spec, &k->priv, e);
	if (r == ERR_NOT_FOUND && create) {
		err_clear(e);
		if ((r = crypto_ec_generate(&k->priv)) != 0) {
			err_set(e, r, "cannot generate a head key");
			goto out;
		}
		if ((r = crypto_pkey_save_pem(spec, k->priv, e)) != 0)
			goto out;
		if (created != NULL)
			*created = 1;
	} else if (r != 0) {
		goto out;
	}
	if ((r = crypto_spki_export(k->priv, &k->spki, &k->spki_len)) != 0) {
		err_set(e, r, "cannot encode the head key");
		goto out;
	}
 finish:
	if ((r = key_finish(k, e)) != 0)
		goto out;
	*out = k;
	k = NULL; /* transferred */
	r = 0;
 out:
	if (k != NULL) {
		EVP_PKEY_free(k->priv);
		EVP_PKEY_free(k->pub);
		token_close(k->token);
		free(k->spki);
		if (lock_ok)
			pthread_mutex_destroy(&k->lock);
		free(k);
	}
	return r;
}

void
dir_key_free(struct dir_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->priv);
	EVP_PKEY_free(k->pub);
	token_close(k->token);
	free(k->spki);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

const char *
dir_key_id(const struct dir_key *k)
{
	return k->id;
}

const uint8_t *
dir_key_spki(const struct dir_key *k, size_t *len)
{
	*len = k->spki_len;
	return k->spki;
}

EVP_PKEY *
dir_key_public(const struct dir_key *k)
{
	return k->pub;
}

void
dir_key_fingerprint(const struct dir_key *k,
    char out[DIR_KEY_FINGERPRINT_LEN + 1])
{
	size_t i, o = 0;

	for (i = 0; i < DIR_KEY_ID_LEN; i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = ' ';
		out[o++] = k->id[i];
	}
	out[o] = '\0';
}

int
dir_key_sign(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	struct dir_key *k = arg;
	int r;

	return_val_if_fail(k != NULL && digest != NULL && sig != NULL,
	    ERR_INVALID_ARG);
	/* A token is not thread-safe (token.h); the lock serialises file
	 * keys too, which costs little next to the request. */
	pthread_mutex_lock(&k->lock);
	if (k->token != NULL)
		r = token_sign_digest(k->token, digest, sig, e);
	else if ((r = crypto_ecdsa_sign(k->priv, digest, sig)) != 0)
		err_set(e, r, "the head key could not sign");
	pthread_mutex_unlock(&k->lock);
	if (r != 0)
		return r;
	/* A token that signs with another key would sign heads nobody can
	 * verify: catch it here rather than at every client. */
	if (k->token != NULL && crypto_ecdsa_verify(k->pub, digest, sig) != 0)
		return err_set(e, ERR_TOKEN, "the token's head key signature "
		    "does not verify under its public key");
	return 0;
}
