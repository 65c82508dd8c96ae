/*
 * wit-key.c - the witness's Ed25519 key in a PEM file.
 */
#include "config.h"

#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto.h"
#include "errors.h"
#include "fileio.h"
#include "wit-key.h"

#define KEY_FILE_MAX ((size_t)16384)

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

/* No passphrase prompt, ever: an encrypted key file is an error. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int
wit_key_load(const char *path, EVP_PKEY **out, struct err_ctx *e)
{
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(path != NULL && out != NULL, ERR_INVALID_ARG);
	r = fileio_read(path, KEY_FILE_MAX, FILEIO_FOLLOW | FILEIO_PRIVATE |
	    FILEIO_SECRET, &data, &len, e);
	if (r == ERR_TOO_LARGE)
		r = err_wrap(e, ERR_FORMAT, "witness key %s: too large for a "
		    "key file", path);
	if (r != 0)
		goto out;
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase,
	    NULL)) == NULL) {
		r = err_set(e, ERR_FORMAT, "witness key %s: not an "
		    "unencrypted PEM private key", path);
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		r = err_set(e, ERR_UNSUPPORTED, "witness key %s: not an "
		    "Ed25519 key (make one with devid-witness init)", path);
		goto out;
	}
	*out = pkey;
	pkey = NULL; /* transferred */
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	if (data != NULL) {
		crypto_wipe(data, len + 1);
		free(data);
	}
	return r;
}
