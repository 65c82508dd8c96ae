/*
 * token.c - dispatch for the token interface (token.h).
 */
#include "config.h"

#include <string.h>

#include "token.h"

const char *
token_enc_alg_name(enum token_enc_alg alg)
{
	switch (alg) {
	case TOKEN_ENC_HPKE_P256:
		return "hpke-p256";
	case TOKEN_ENC_RSA_OAEP:
		return "rsa-oaep-sha256";
	case TOKEN_ENC_NONE:
		break;
	}
	return "none";
}

int
token_enc_alg_parse(const char *name, enum token_enc_alg *out)
{
	if (name == NULL)
		return -1;
	if (strcmp(name, "hpke-p256") == 0)
		*out = TOKEN_ENC_HPKE_P256;
	else if (strcmp(name, "rsa-oaep-sha256") == 0)
		*out = TOKEN_ENC_RSA_OAEP;
	else
		return -1;
	return 0;
}

int
token_create_keys(struct token *t, enum token_enc_alg alg, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return t->ops->create_keys(t, alg, e);
}

int
token_open_keys(struct token *t, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return t->ops->open_keys(t, e);
}

int
token_public_key(struct token *t, enum token_key which, uint8_t **spki,
    size_t *spki_len, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return_val_if_fail(spki != NULL && spki_len != NULL, ERR_INVALID_ARG);
	return t->ops->public_key(t, which, spki, spki_len, e);
}

int
token_sign_digest(struct token *t, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return_val_if_fail(digest != NULL && sig != NULL, ERR_INVALID_ARG);
	return t->ops->sign_digest(t, digest, sig, e);
}

int
token_ecdh(struct token *t, const uint8_t peer[65], uint8_t out[32],
    struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return_val_if_fail(peer != NULL && out != NULL, ERR_INVALID_ARG);
	return t->ops->ecdh(t, peer, out, e);
}

int
token_rsa_decrypt(struct token *t, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL, ERR_INVALID_ARG);
	return_val_if_fail(ct != NULL && out != NULL && out_len != NULL,
	    ERR_INVALID_ARG);
	return t->ops->rsa_decrypt(t, ct, ct_len, out, out_max, out_len, e);
}

int
token_describe(struct token *t, struct token_desc *d, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops != NULL && d != NULL,
	    ERR_INVALID_ARG);
	memset(d, 0, sizeof(*d));
	return t->ops->describe(t, d, e);
}

void
token_close(struct token *t)
{
	if (t == NULL || t->ops == NULL)
		return;
	t->ops->close(t);
}

int
token_hpke_dh(void *arg, const uint8_t pk_e[65], uint8_t dh_out[32],
    struct err_ctx *e)
{
	return token_ecdh((struct token *)arg, pk_e, dh_out, e);
}
