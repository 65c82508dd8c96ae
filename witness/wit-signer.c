/*
 * wit-signer.c - the witness's cosigning key, in a file or a token.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "errors.h"
#include "p11-token.h"
#include "token.h"
#include "tlog-note.h"
#include "wit-key.h"
#include "wit-signer.h"

#define COSIG_PREFIX "cosignature/v1\ntime "

struct wit_signer {
	EVP_PKEY *pkey;               /* a file: the private key */
	EVP_PKEY *pub;                /* a token: its public key */
	struct token *token;
	pthread_mutex_t lock;         /* serialises the token */
};

/* A token's Ed25519 key into s. */
static int
token_open(struct wit_signer *s, const char *uri, const char *pin_file,
    int create, struct err_ctx *e)
{
	struct p11_options opt;
	uint8_t pub[TLOG_ED25519_LEN];
	int r;

	memset(&opt, 0, sizeof(opt));
	opt.sig_only = 1;
	opt.pin_file = pin_file;
	if ((r = p11_token_new(uri, &opt, &s->token, e)) != 0 ||
	    (r = create ? p11_eddsa_create(s->token, e) :
	    p11_eddsa_open(s->token, e)) != 0 ||
	    (r = p11_eddsa_public(s->token, pub, e)) != 0)
		return r;
	if ((s->pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
	    sizeof(pub))) == NULL) {
		ERR_clear_error();
		return err_set(e, ERR_CRYPTO, "the token's Ed25519 public key "
		    "is not valid");
	}
	return 0;
}

int
wit_signer_open(const char *key, const char *pin_file, int create,
    struct wit_signer **out, struct err_ctx *e)
{
	struct wit_signer *s = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(key != NULL && out != NULL, ERR_INVALID_ARG);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	if (strncmp(key, "pkcs11:", 7) == 0)
		r = token_open(s, key, pin_file, create, e);
	else if (create)
		r = wit_key_generate(key, &s->pkey, e);
	else
		r = wit_key_load(key, &s->pkey, e);
	if (r != 0)
		goto out;
	*out = s;
	s = NULL; /* transferred */
	r = 0;
 out:
	wit_signer_free(s);
	return r;
}

void
wit_signer_free(struct wit_signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->pkey);
	EVP_PKEY_free(s->pub);
	token_close(s->token);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

EVP_PKEY *
wit_signer_public(const struct wit_signer *s)
{
	return s->pkey != NULL ? s->pkey : s->pub;
}

/*
 * In a token: the signed message "cosignature/v1\ntime <t>\n" || text
 * (C2SP tlog-cosignature), the signature u64 t || Ed25519 signature.
 */
static int
token_cosign(struct wit_signer *s, const char *text, size_t len,
    const struct tlog_vkey *k, uint64_t t, struct tlog_sigline *out,
    struct err_ctx *e)
{
	char head[sizeof(COSIG_PREFIX) + 24];
	uint8_t *msg = NULL;
	size_t hl;
	int n, r, i;

	if (k->type != TLOG_SIGTYPE_COSIG || k->key_len != TLOG_ED25519_LEN)
		return err_set(e, ERR_INVALID_ARG, "not a cosigner's vkey");
	if (len == 0 || len > TLOG_TEXT_MAX || text[len - 1] != '\n')
		return err_set(e, ERR_INVALID_ARG, "cosigner '%s': note text "
		    "empty, too long or without its final newline", k->name);
	n = snprintf(head, sizeof(head), COSIG_PREFIX "%llu\n",
	    (unsigned long long)t);
	if (n < 0 || (size_t)n >= sizeof(head))
		return ERR_INTERNAL;
	hl = (size_t)n;
	if ((msg = malloc(hl + len)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(msg, head, hl);
	memcpy(msg + hl, text, len);
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	r = p11_eddsa_sign(s->token, msg, hl + len, out->sig + 8, e);
	pthread_mutex_unlock(&s->lock);
	free(msg);
	if (r != 0)
		return r;
	for (i = 0; i < 8; i++)
		out->sig[i] = (uint8_t)(t >> (56 - 8 * i));
	out->sig_len = TLOG_COSIG_LEN;
	snprintf(out->name, sizeof(out->name), "%s", k->name);
	out->key_id = k->key_id;
	return 0;
}

int
wit_signer_cosign(struct wit_signer *s, const char *text, size_t len,
    const struct tlog_vkey *k, uint64_t t, struct tlog_sigline *out,
    struct err_ctx *e)
{
	return_val_if_fail(s != NULL && text != NULL && k != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	if (s->pkey != NULL)
		return tlog_cosign(text, len, s->pkey, k, t, out, e);
	return token_cosign(s, text, len, k, t, out, e);
}
