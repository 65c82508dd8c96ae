/*
 * wit-key.c - the witness's Ed25519 key in a PEM file.
 */
#include "config.h"

#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "errors.h"
#include "wit-key.h"

int
wit_key_generate(const char *path, EVP_PKEY **out, struct err_ctx *e)
{
	EVP_PKEY *pkey = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(path != NULL, ERR_INVALID_ARG);
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		r = err_set(e, ERR_CRYPTO, "cannot generate an Ed25519 key");
		goto out;
	}
	if ((r = crypto_pkey_save_pem(path, pkey, e)) != 0)
		goto out;
	if (out != NULL) {
		*out = pkey;
		pkey = NULL; /* transferred */
	}
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_PKEY_free(pkey);
	return r;
}

int
wit_key_load(const char *path, EVP_PKEY **out, struct err_ctx *e)
{
	EVP_PKEY *pkey = NULL;
	int r;

	return_val_if_fail(path != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = crypto_pkey_load_pem_any(path, &pkey, e)) != 0)
		return err_wrap(e, r, "witness key: %s", err_msg(e));
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return err_set(e, ERR_UNSUPPORTED, "witness key %s: not an "
		    "Ed25519 key (make one with devid-witness init)", path);
	}
	*out = pkey;
	return 0;
}
