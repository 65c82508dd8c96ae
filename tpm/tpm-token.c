/*
 * tpm-token.c - the TPM 2.0 token (tpm-token.h): the table of operations,
 * reconnect-and-retry, key creation and the key files.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <tss2/tss2_esys.h>

#include "codec.h"
#include "crypto.h"
#include "fileio.h"
#include "tpm-private.h"

/* Name of the pinned-parent file contents: hex of a SHA-256 TPM2B_NAME. */
#define TPM_NAME_LEN (2 + 32)
#define TPM_NAME_HEX_LEN (2 * TPM_NAME_LEN)

static const struct token_ops tpm_token_ops;

static struct tpm_token *
tpm_cast(struct token *t)
{
	return (struct tpm_token *)t;
}

static const char *
tpm_key_what(enum token_key which)
{
	return which == TOKEN_KEY_SIG ? "signing key" : "encryption key";
}

/* The device-key templates: non-exportable, DA-protected, no policy. */
#define TPM_DEVICE_KEY_ATTRS (TPMA_OBJECT_FIXEDTPM | \
	TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN | \
	TPMA_OBJECT_USERWITHAUTH)

static void
tpm_key_template(enum token_key which, TPM2B_PUBLIC *tmpl)
{
	TPMT_PUBLIC *p = &tmpl->publicArea;

	memset(tmpl, 0, sizeof(*tmpl));
	p->type = TPM2_ALG_ECC;
	p->nameAlg = TPM2_ALG_SHA256;
	p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	if (which == TOKEN_KEY_SIG) {
		p->objectAttributes = TPM_DEVICE_KEY_ATTRS |
		    TPMA_OBJECT_SIGN_ENCRYPT;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
		p->parameters.eccDetail.scheme.details.ecdsa.hashAlg =
		    TPM2_ALG_SHA256;
	} else {
		/* A NULL scheme, as other TPM software makes ECDH keys. */
		p->objectAttributes = TPM_DEVICE_KEY_ATTRS |
		    TPMA_OBJECT_DECRYPT;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	}
}

/* TPMA_OBJECT as "fixedTPM|fixedParent|..." into out. */
static void
tpm_attrs_text(TPMA_OBJECT a, char *out, size_t out_len)
{
	static const struct {
		TPMA_OBJECT bit;
		const char *name;
	} names[] = {
		{ TPMA_OBJECT_FIXEDTPM, "fixedTPM" },
		{ TPMA_OBJECT_STCLEAR, "stClear" },
		{ TPMA_OBJECT_FIXEDPARENT, "fixedParent" },
		{ TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin" },
		{ TPMA_OBJECT_USERWITHAUTH, "userWithAuth" },
		{ TPMA_OBJECT_ADMINWITHPOLICY, "adminWithPolicy" },
		{ TPMA_OBJECT_NODA, "noDA" },
		{ TPMA_OBJECT_ENCRYPTEDDUPLICATION, "encryptedDuplication" },
		{ TPMA_OBJECT_RESTRICTED, "restricted" },
		{ TPMA_OBJECT_DECRYPT, "decrypt" },
		{ TPMA_OBJECT_SIGN_ENCRYPT, "sign" },
	};
	size_t i, used = 0;
	int n;

	if (out_len == 0)
		return;
	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((a & names[i].bit) == 0)
			continue;
		n = snprintf(out + used, out_len - used, "%s%s",
		    used > 0 ? "|" : "", names[i].name);
		if (n < 0 || (size_t)n >= out_len - used)
			return;
		used += (size_t)n;
	}
}

/*
 * Checks that a key from a file is one devid can use as `which` and that
 * its attributes prove it cannot leave the TPM.  ERR_KEY_POLICY or
 * ERR_UNSUPPORTED with a message naming path.
 */
static int
tpm_check_key(const struct tpm_keyfile *kf, enum token_key which,
    const char *path, struct err_ctx *e)
{
	const TPMT_PUBLIC *p = &kf->pub.publicArea;
	const TPMS_ECC_PARMS *ecc = &p->parameters.eccDetail;
	TPMA_OBJECT a = p->objectAttributes;
	char text[TOKEN_DESC_MAX];

	tpm_attrs_text(a, text, sizeof(text));
	if (p->type != TPM2_ALG_ECC || ecc->curveID != TPM2_ECC_NIST_P256 ||
	    p->nameAlg != TPM2_ALG_SHA256)
		return err_set(e, ERR_UNSUPPORTED, "%s: the %s is not a "
		    "NIST P-256 key with name algorithm SHA-256", path,
		    tpm_key_what(which));
	if ((a & TPM_DEVICE_KEY_ATTRS & ~TPMA_OBJECT_USERWITHAUTH) !=
	    (TPM_DEVICE_KEY_ATTRS & ~TPMA_OBJECT_USERWITHAUTH))
		return err_set(e, ERR_KEY_POLICY, "%s: the %s does not prove "
		    "that it never leaves the TPM (attributes %s; needs "
		    "fixedTPM, fixedParent and sensitiveDataOrigin)", path,
		    tpm_key_what(which), text);
	if ((a & TPMA_OBJECT_USERWITHAUTH) == 0 || p->authPolicy.size != 0)
		return err_set(e, ERR_UNSUPPORTED, "%s: the %s needs a policy "
		    "session, which devid does not support", path,
		    tpm_key_what(which));
	if (!kf->empty_auth && (a & TPMA_OBJECT_NODA) != 0)
		return err_set(e, ERR_KEY_POLICY, "%s: the %s has a PIN but "
		    "noDA set, so the TPM would not stop PIN guessing", path,
		    tpm_key_what(which));
	if ((a & TPMA_OBJECT_RESTRICTED) != 0)
		return err_set(e, ERR_UNSUPPORTED, "%s: the %s is restricted",
		    path, tpm_key_what(which));
	if (which == TOKEN_KEY_SIG &&
	    ((a & TPMA_OBJECT_SIGN_ENCRYPT) == 0 ||
	    (ecc->scheme.scheme != TPM2_ALG_NULL &&
	    (ecc->scheme.scheme != TPM2_ALG_ECDSA ||
	    ecc->scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256))))
		return err_set(e, ERR_UNSUPPORTED, "%s: the signing key cannot "
		    "make ECDSA-SHA256 signatures", path);
	if (which == TOKEN_KEY_ENC &&
	    ((a & TPMA_OBJECT_DECRYPT) == 0 ||
	    (ecc->scheme.scheme != TPM2_ALG_NULL &&
	    ecc->scheme.scheme != TPM2_ALG_ECDH)))
		return err_set(e, ERR_UNSUPPORTED, "%s: the encryption key "
		    "cannot do ECDH", path);
	if (p->unique.ecc.x.size == 0 || p->unique.ecc.x.size > 32 ||
	    p->unique.ecc.y.size == 0 || p->unique.ecc.y.size > 32)
		return err_set(e, ERR_FORMAT, "%s: the %s has no valid public "
		    "point", path, tpm_key_what(which));
	return 0;
}

/* Copies a big-endian TPM2B_ECC_PARAMETER left-padded into 32 bytes. */
static int
tpm_ecc_param_get(const TPM2B_ECC_PARAMETER *v, uint8_t out[32])
{
	if (v->size > 32)
		return ERR_FORMAT;
	memset(out, 0, 32);
	memcpy(out + 32 - v->size, v->buffer, v->size);
	return 0;
}

/* The uncompressed point 04||x||y of a key's public area. */
static int
tpm_public_point(const TPM2B_PUBLIC *pub, uint8_t point[65])
{
	point[0] = 0x04;
	if (tpm_ecc_param_get(&pub->publicArea.unique.ecc.x, point + 1) != 0 ||
	    tpm_ecc_param_get(&pub->publicArea.unique.ecc.y, point + 33) != 0)
		return ERR_FORMAT;
	return 0;
}

/* --- running an operation with reconnect-and-retry --- */

typedef int (*tpm_op_fn)(struct tpm_token *tt, void *arg, struct err_ctx *e);

static int
tpm_loaded(const struct tpm_token *tt)
{
	return tt->esys != NULL && tt->session != ESYS_TR_NONE &&
	    tt->sig_key != ESYS_TR_NONE && tt->enc_key != ESYS_TR_NONE;
}

/*
 * Runs fn with the keys loaded.  When the connection or the TPM's
 * volatile state turns out to be gone (tpm_rc_is_stale), it disconnects,
 * reconnects, reloads the keys from their files and runs fn once more.
 * Other failures (a wrong PIN above all) are returned as they are.
 */
static int
tpm_run(struct tpm_token *tt, tpm_op_fn fn, void *arg, struct err_ctx *e)
{
	struct err_ctx local;
	int attempt, r = ERR_INTERNAL;

	if (!tt->keys_known)
		return err_set(e, ERR_INVALID_ARG,
		    "TPM token: create or open the keys first");
	for (attempt = 0; attempt < 2; attempt++) {
		err_clear(&local);
		tt->last_rc = TSS2_RC_SUCCESS;
		r = 0;
		if (!tpm_loaded(tt)) {
			r = tpm_keys_load(tt, &local);
			if (r == 0 && tt->ever_loaded)
				tt->base.stats.reconnects++;
			if (r == 0)
				tt->ever_loaded = 1;
		}
		if (r == 0)
			r = fn(tt, arg, &local);
		if (r == 0)
			return 0;
		if (attempt > 0 || !tpm_rc_is_stale(tt->last_rc))
			break;
		/* Handles the TPM still answers for (a session flushed by
		 * someone else) are ours to flush; after a reset they are
		 * gone and their numbers may be someone else's. */
		tpm_disconnect(tt, !tpm_rc_is_reset(tt->last_rc));
	}
	if (tpm_rc_is_stale(tt->last_rc))       /* start afresh next time */
		tpm_disconnect(tt, !tpm_rc_is_reset(tt->last_rc));
	return err_set(e, r, "%s", err_msg(&local));
}

/*
 * Gives ESAPI the auth value of key `which` for the next command: empty
 * for an emptyAuth key, else the PIN, asking pin_cb when there is none.
 * ERR_PIN_REQUIRED when a PIN is needed and none can be had.
 */
static int
tpm_key_auth(struct tpm_token *tt, enum token_key which, struct err_ctx *e)
{
	const struct tpm_keyfile *kf =
	    which == TOKEN_KEY_SIG ? &tt->sig_kf : &tt->enc_kf;
	ESYS_TR key = which == TOKEN_KEY_SIG ? tt->sig_key : tt->enc_key;
	const TPM2B_AUTH empty = { .size = 0 };
	char pin[TPM_PIN_MAX + 2];
	size_t len;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	if (!kf->empty_auth && !tt->have_auth) {
		if (tt->pin_cb == NULL)
			return err_set(e, ERR_PIN_REQUIRED, "the %s (%s) needs "
			    "a PIN and none was given", tpm_key_what(which),
			    which == TOKEN_KEY_SIG ? tt->sig_path :
			    tt->enc_path);
		memset(pin, 0, sizeof(pin));
		r = tt->pin_cb(tt->pin_cb_arg, tpm_key_what(which), pin,
		    sizeof(pin));
		len = strnlen(pin, sizeof(pin));
		if (r != 0 || len == 0 || len > TPM_PIN_MAX) {
			OPENSSL_cleanse(pin, sizeof(pin));
			if (r == 0)
				return err_set(e, ERR_PIN_REQUIRED, "no usable "
				    "PIN for the %s (1 to %d bytes)",
				    tpm_key_what(which), TPM_PIN_MAX);
			return err_set(e, r < 0 ? r : ERR_PIN_REQUIRED,
			    "no PIN for the %s", tpm_key_what(which));
		}
		memcpy(tt->auth.buffer, pin, len);
		tt->auth.size = (UINT16)len;
		tt->have_auth = 1;
		tt->base.stats.logins++;
		OPENSSL_cleanse(pin, sizeof(pin));
	}
	rc = Esys_TR_SetAuth(tt->esys, key,
	    kf->empty_auth ? &empty : &tt->auth);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err_rc(tt, rc, "setting the key's auth value", e);
	return 0;
}

/*
 * Overwrites ESAPI's copy of a key's auth value with the empty one (ESAPI
 * copies the whole TPM2B, so the PIN bytes are zeroed in its memory).
 */
static void
tpm_key_auth_clear(struct tpm_token *tt, ESYS_TR key)
{
	const TPM2B_AUTH empty = { .size = 0 };

	if (tt->esys != NULL && key != ESYS_TR_NONE)
		(void)Esys_TR_SetAuth(tt->esys, key, &empty);
}

/* Whether rc is an authorization failure that tpm_err_auth reports. */
static int
tpm_rc_is_auth(TSS2_RC rc)
{
	TSS2_RC b = tpm_rc_base(rc);

	return b == TPM2_RC_AUTH_FAIL || b == TPM2_RC_BAD_AUTH ||
	    b == TPM2_RC_LOCKOUT;
}

/*
 * Reports an authorization failure.  A rejected PIN is forgotten at once
 * so that nothing ever tries it again (each try costs a DA failure); the
 * next use asks pin_cb or fails with ERR_PIN_REQUIRED.
 */
static int
tpm_auth_failed(struct tpm_token *tt, TSS2_RC rc, enum token_key which,
    struct err_ctx *e)
{
	if (tpm_rc_base(rc) != TPM2_RC_LOCKOUT) {
		OPENSSL_cleanse(&tt->auth, sizeof(tt->auth));
		tt->have_auth = 0;
	}
	return tpm_err_auth(tt, rc, tpm_key_what(which), e);
}

/* --- operations --- */

struct tpm_sign_arg {
	const uint8_t *digest;
	uint8_t *sig;
};

/*
 * TPM2_Sign over the digest with ECDSA/SHA-256 and a NULL ticket (the key
 * is unrestricted), raw r||s left-padded into a->sig.  Auth failures go
 * through tpm_auth_failed.
 */
static int
tpm_sign_once(struct tpm_token *tt, void *arg, struct err_ctx *e)
{
	struct tpm_sign_arg *a = arg;
	TPM2B_DIGEST digest = { .size = 32 };
	const TPMT_SIG_SCHEME scheme = {
		.scheme = TPM2_ALG_ECDSA,
		.details.ecdsa.hashAlg = TPM2_ALG_SHA256,
	};
	const TPMT_TK_HASHCHECK ticket = {
		.tag = TPM2_ST_HASHCHECK,
		.hierarchy = TPM2_RH_NULL,
	};
	TPMT_SIGNATURE *sig = NULL;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	memcpy(digest.buffer, a->digest, 32);
	if ((r = tpm_key_auth(tt, TOKEN_KEY_SIG, e)) != 0 ||
	    (r = tpm_session_attrs(tt, TPMA_SESSION_DECRYPT, e)) != 0)
		goto out;
	rc = Esys_Sign(tt->esys, tt->sig_key, tt->session, ESYS_TR_NONE,
	    ESYS_TR_NONE, &digest, &scheme, &ticket, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		if (tpm_rc_is_auth(rc))
			r = tpm_auth_failed(tt, rc, TOKEN_KEY_SIG, e);
		else
			r = tpm_err_rc(tt, rc, "signing", e);
		goto out;
	}
	if (sig->sigAlg != TPM2_ALG_ECDSA ||
	    tpm_ecc_param_get(&sig->signature.ecdsa.signatureR, a->sig) != 0 ||
	    tpm_ecc_param_get(&sig->signature.ecdsa.signatureS,
	    a->sig + 32) != 0) {
		r = err_set(e, ERR_TOKEN, "the TPM at '%s' returned a "
		    "malformed ECDSA signature", tt->tcti_conf);
		goto out;
	}
	tt->base.stats.signs++;
	r = 0;
 out:
	tpm_key_auth_clear(tt, tt->sig_key);
	Esys_Free(sig);
	return r;
}

static int
tpm_sign_digest(struct token *t, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	struct tpm_sign_arg a = { digest, sig };

	return tpm_run(tpm_cast(t), tpm_sign_once, &a, e);
}

struct tpm_ecdh_arg {
	const uint8_t *peer;
	uint8_t *out;
};

/*
 * TPM2_ECDH_ZGen with the peer point (the TPM checks it is on the curve:
 * ERR_FORMAT otherwise), the x-coordinate left-padded into a->out.  Every
 * copy of the result this code owns is wiped; a->out too on failure.
 */
static int
tpm_ecdh_once(struct tpm_token *tt, void *arg, struct err_ctx *e)
{
	struct tpm_ecdh_arg *a = arg;
	TPM2B_ECC_POINT in;
	TPM2B_ECC_POINT *z = NULL;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	memset(&in, 0, sizeof(in));
	in.size = 2 + 32 + 2 + 32;
	in.point.x.size = 32;
	in.point.y.size = 32;
	memcpy(in.point.x.buffer, a->peer + 1, 32);
	memcpy(in.point.y.buffer, a->peer + 33, 32);
	if ((r = tpm_key_auth(tt, TOKEN_KEY_ENC, e)) != 0 ||
	    (r = tpm_session_attrs(tt, TPMA_SESSION_DECRYPT |
	    TPMA_SESSION_ENCRYPT, e)) != 0)
		goto out;
	/* The session encrypts the result: Z never crosses the bus. */
	rc = Esys_ECDH_ZGen(tt->esys, tt->enc_key, tt->session, ESYS_TR_NONE,
	    ESYS_TR_NONE, &in, &z);
	if (rc != TSS2_RC_SUCCESS) {
		if (tpm_rc_is_auth(rc))
			r = tpm_auth_failed(tt, rc, TOKEN_KEY_ENC, e);
		else
			r = tpm_err_rc(tt, rc, "ECDH", e);
		goto out;
	}
	if (tpm_ecc_param_get(&z->point.x, a->out) != 0) {
		r = err_set(e, ERR_TOKEN, "the TPM at '%s' returned a "
		    "malformed ECDH result", tt->tcti_conf);
		goto out;
	}
	tt->base.stats.ecdhs++;
	r = 0;
 out:
	tpm_key_auth_clear(tt, tt->enc_key);
	if (z != NULL)
		OPENSSL_cleanse(z, sizeof(*z));
	Esys_Free(z);
	if (r != 0)
		OPENSSL_cleanse(a->out, 32);
	return r;
}

static int
tpm_ecdh(struct token *t, const uint8_t peer[65], uint8_t out[32],
    struct err_ctx *e)
{
	struct tpm_ecdh_arg a = { peer, out };

	if (peer[0] != 0x04)
		return err_set(e, ERR_FORMAT, "ECDH: the peer point is not an "
		    "uncompressed P-256 point");
	return tpm_run(tpm_cast(t), tpm_ecdh_once, &a, e);
}

static int
tpm_rsa_decrypt(struct token *t, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e)
{
	return err_set(e, ERR_UNSUPPORTED, "the TPM backend's encryption key "
	    "is hpke-p256 (ECDH), not RSA-OAEP");
}

/* DER SPKI of a loaded key's public point (from its TPM2B_PUBLIC). */
static int
tpm_public_key(struct token *t, enum token_key which, uint8_t **spki,
    size_t *spki_len, struct err_ctx *e)
{
	struct tpm_token *tt = tpm_cast(t);
	uint8_t point[65];
	EVP_PKEY *pkey = NULL;
	int r = ERR_INTERNAL;

	/* The public areas were checked by the TPM when the keys were
	 * loaded (the name covers them), so they are the TPM's keys. */
	if (!tt->keys_known)
		return err_set(e, ERR_INVALID_ARG,
		    "TPM token: create or open the keys first");
	if (which != TOKEN_KEY_SIG && which != TOKEN_KEY_ENC)
		return ERR_INVALID_ARG;
	if (tpm_public_point(which == TOKEN_KEY_SIG ? &tt->sig_kf.pub :
	    &tt->enc_kf.pub, point) != 0)
		return err_set(e, ERR_FORMAT, "TPM token: bad public point");
	if ((r = crypto_ec_point_to_pkey(point, sizeof(point), &pkey)) != 0) {
		err_set(e, r, "TPM token: the %s's public point is invalid",
		    tpm_key_what(which));
		goto out;
	}
	if ((r = crypto_spki_export(pkey, spki, spki_len)) != 0) {
		err_set(e, r, "TPM token: cannot encode the public key");
		goto out;
	}
	r = 0;
 out:
	EVP_PKEY_free(pkey);
	return r;
}

struct tpm_describe_arg {
	struct token_desc *d;
};

/* The loaded keys' attributes, read back with TPM2_ReadPublic. */
static int
tpm_describe_once(struct tpm_token *tt, void *arg, struct err_ctx *e)
{
	struct tpm_describe_arg *a = arg;
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int r = ERR_INTERNAL, i;

	/* Read back from the TPM, not from the files: what the TPM holds. */
	for (i = 0; i < 2; i++) {
		rc = Esys_ReadPublic(tt->esys, i == 0 ? tt->sig_key :
		    tt->enc_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		    &pub, NULL, NULL);
		if (rc != TSS2_RC_SUCCESS)
			return tpm_err_rc(tt, rc, "reading a key's public area",
			    e);
		tpm_attrs_text(pub->publicArea.objectAttributes,
		    i == 0 ? a->d->sig_attrs : a->d->enc_attrs,
		    sizeof(a->d->sig_attrs));
		Esys_Free(pub);
		pub = NULL;
	}
	r = 0;
	return r;
}

static int
tpm_describe(struct token *t, struct token_desc *d, struct err_ctx *e)
{
	struct tpm_token *tt = tpm_cast(t);
	struct tpm_describe_arg a = { d };

	snprintf(d->backend, sizeof(d->backend), "tpm2");
	snprintf(d->token, sizeof(d->token), "%s", tt->tcti_conf);
	snprintf(d->sig_ref, sizeof(d->sig_ref), "%s", tt->sig_path);
	snprintf(d->enc_ref, sizeof(d->enc_ref), "%s", tt->enc_path);
	d->enc_alg = tt->base.enc_alg;
	if (!tt->keys_known)
		return 0;
	if (tt->parent_name.size <= (sizeof(d->parent) - 1) / 2)
		hex_encode(tt->parent_name.name, tt->parent_name.size,
		    d->parent);
	return tpm_run(tt, tpm_describe_once, &a, e);
}

/* --- the pinned parent name --- */

/*
 * Reads the pinned parent name into tt->parent_name; a missing file leaves
 * it empty (size 0: pin on first load).  ERR_FORMAT for anything but the
 * 68 lowercase hex digits of a SHA-256 name and an optional newline.
 */
static int
tpm_parent_pin_read(struct tpm_token *tt, struct err_ctx *e)
{
	struct err_ctx local;
	char *text = NULL;
	size_t len = 0;
	int r;

	tt->parent_name.size = 0;
	err_clear(&local);
	r = fileio_read(tt->parent_path, TPM_NAME_HEX_LEN + 1, 0, &text, &len,
	    &local);
	/* Missing for keys made by other software: pinned on first load. */
	if (r == ERR_NOT_FOUND)
		return 0;
	if (r != 0)
		return err_set(e, r, "%s", err_msg(&local));
	if (len == TPM_NAME_HEX_LEN + 1 && text[len - 1] == '\n')
		len--;
	if (len != TPM_NAME_HEX_LEN ||
	    hex_decode(text, len, tt->parent_name.name,
	    TPM_NAME_LEN) != 0 ||
	    tt->parent_name.name[0] != 0x00 || tt->parent_name.name[1] !=
	    (TPM2_ALG_SHA256 & 0xff)) {
		r = err_set(e, ERR_FORMAT, "%s: not the hex name of a "
		    "SHA-256 TPM object", tt->parent_path);
		goto out;
	}
	tt->parent_name.size = TPM_NAME_LEN;
	r = 0;
 out:
	free(text);
	return r;
}

/* Writes tt->parent_name (mode 0600, replacing through a rename). */
static int
tpm_parent_pin_write(struct tpm_token *tt, struct err_ctx *e)
{
	char text[TPM_NAME_HEX_LEN + 2];

	if (tt->parent_name.size != TPM_NAME_LEN)
		return err_set(e, ERR_UNSUPPORTED, "TPM storage parent: "
		    "unexpected name length %u",
		    (unsigned int)tt->parent_name.size);
	hex_encode(tt->parent_name.name, TPM_NAME_LEN, text);
	text[TPM_NAME_HEX_LEN] = '\n';
	text[TPM_NAME_HEX_LEN + 1] = '\0';
	return fileio_write_atomic(tt->parent_path, text, TPM_NAME_HEX_LEN + 1,
	    0600, e);
}

static int
tpm_noop(struct tpm_token *tt, void *arg, struct err_ctx *e)
{
	return 0;
}

static void
tpm_forget_keys(struct tpm_token *tt)
{
	tt->keys_known = 0;
	OPENSSL_cleanse(&tt->sig_kf, sizeof(tt->sig_kf));
	OPENSSL_cleanse(&tt->enc_kf, sizeof(tt->enc_kf));
	memset(&tt->parent_name, 0, sizeof(tt->parent_name));
}

/*
 * Reads and checks both key files and the pin, then loads the keys (the
 * steady state).  Opening twice is a no-op.  On failure nothing stays
 * loaded and the token can be opened (or created) again.
 */
static int
tpm_open_keys(struct token *t, struct err_ctx *e)
{
	struct tpm_token *tt = tpm_cast(t);
	int pin_new, r = ERR_INTERNAL;

	if (tt->keys_known)
		return 0;
	if ((r = tpm_keyfile_load(tt->sig_path, &tt->sig_kf, e)) != 0 ||
	    (r = tpm_keyfile_load(tt->enc_path, &tt->enc_kf, e)) != 0) {
		if (r == ERR_NOT_FOUND)
			err_wrap(e, r, "%s: no TPM device key there; create "
			    "the keys first", err_msg(e));
		goto out;
	}
	if ((r = tpm_check_key(&tt->sig_kf, TOKEN_KEY_SIG, tt->sig_path,
	    e)) != 0 ||
	    (r = tpm_check_key(&tt->enc_kf, TOKEN_KEY_ENC, tt->enc_path,
	    e)) != 0 ||
	    (r = tpm_parent_pin_read(tt, e)) != 0)
		goto out;
	pin_new = tt->parent_name.size == 0;
	tt->keys_known = 1;
	if ((r = tpm_run(tt, tpm_noop, NULL, e)) != 0)
		goto out;
	/* Both keys loaded under this parent, so it is the right one. */
	if (pin_new && (r = tpm_parent_pin_write(tt, e)) != 0)
		goto out;
	tt->base.enc_alg = TOKEN_ENC_HPKE_P256;
	r = 0;
 out:
	if (r != 0) {
		tpm_disconnect(tt, !tpm_rc_is_reset(tt->last_rc));
		tpm_forget_keys(tt);
	}
	return r;
}

/* Creates one key under parent through the session, into kf. */
static int
tpm_key_create(struct tpm_token *tt, ESYS_TR parent, enum token_key which,
    struct tpm_keyfile *kf, struct err_ctx *e)
{
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_PUBLIC tmpl;
	TPM2B_DATA outside_info;
	TPML_PCR_SELECTION creation_pcr;
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;
	int r = ERR_INTERNAL;

	memset(&sens, 0, sizeof(sens));
	memset(&outside_info, 0, sizeof(outside_info));
	memset(&creation_pcr, 0, sizeof(creation_pcr));
	tpm_key_template(which, &tmpl);
	if (tt->have_auth)
		sens.sensitive.userAuth = tt->auth;
	/* DECRYPT: the PIN in inSensitive is encrypted on the bus. */
	if ((r = tpm_session_attrs(tt, TPMA_SESSION_DECRYPT, e)) != 0)
		goto out;
	rc = Esys_Create(tt->esys, parent, tt->session, ESYS_TR_NONE,
	    ESYS_TR_NONE, &sens, &tmpl, &outside_info, &creation_pcr, &priv,
	    &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_err_rc(tt, rc, which == TOKEN_KEY_SIG ?
		    "creation of the signing key" :
		    "creation of the encryption key", e);
		goto out;
	}
	memset(kf, 0, sizeof(*kf));
	kf->empty_auth = !tt->have_auth;
	kf->parent = TPM2_RH_OWNER;
	kf->pub = *pub;
	kf->priv = *priv;
	r = 0;
 out:
	OPENSSL_cleanse(&sens, sizeof(sens));
	Esys_Free(priv);
	Esys_Free(pub);
	return r;
}

/*
 * Creates both keys under a fresh parent, pins the parent's name, loads
 * the keys and only then writes the files (the pin file first, the keys
 * exclusively).  On failure the key files written here are removed,
 * nothing stays loaded, and existing files are never touched.
 */
static int
tpm_create_keys(struct token *t, enum token_enc_alg alg, struct err_ctx *e)
{
	struct tpm_token *tt = tpm_cast(t);
	ESYS_TR parent = ESYS_TR_NONE;
	int wrote_sig = 0, wrote_enc = 0, r = ERR_INTERNAL;

	if (alg == TOKEN_ENC_RSA_OAEP)
		return err_set(e, ERR_UNSUPPORTED, "the TPM backend makes "
		    "hpke-p256 (ECDH) encryption keys; rsa-oaep-sha256 is for "
		    "PKCS#11 tokens that cannot do ECDH");
	if (alg != TOKEN_ENC_NONE && alg != TOKEN_ENC_HPKE_P256)
		return err_set(e, ERR_INVALID_ARG, "unknown encryption "
		    "algorithm");
	if (tt->keys_known)
		return err_set(e, ERR_EXISTS, "TPM token: keys are already "
		    "open");
	if (access(tt->sig_path, F_OK) == 0 || access(tt->enc_path, F_OK) == 0)
		return err_set(e, ERR_EXISTS, "TPM device keys already exist "
		    "(%s, %s): open them, or remove them to make new ones",
		    tt->sig_path, tt->enc_path);

	if ((r = tpm_connect(tt, e)) != 0 ||
	    (r = tpm_parent_create(tt, NULL, &parent, &tt->parent_name,
	    e)) != 0 ||
	    (r = tpm_session_start(tt, parent, e)) != 0 ||
	    (r = tpm_key_create(tt, parent, TOKEN_KEY_SIG, &tt->sig_kf,
	    e)) != 0 ||
	    (r = tpm_key_create(tt, parent, TOKEN_KEY_ENC, &tt->enc_kf,
	    e)) != 0)
		goto out;
	/* Three objects at most at any time: flush this parent before
	 * tpm_keys_load makes it again (it keeps the session). */
	tpm_flush(tt, &parent);
	tt->keys_known = 1;
	if ((r = tpm_keys_load(tt, e)) != 0)
		goto out;
	tt->ever_loaded = 1;
	if ((r = tpm_parent_pin_write(tt, e)) != 0 ||
	    (r = tpm_keyfile_save(tt->sig_path, &tt->sig_kf, e)) != 0)
		goto out;
	wrote_sig = 1;
	if ((r = tpm_keyfile_save(tt->enc_path, &tt->enc_kf, e)) != 0)
		goto out;
	wrote_enc = 1;
	tt->base.enc_alg = TOKEN_ENC_HPKE_P256;
	r = 0;
 out:
	tpm_flush(tt, &parent);
	if (r != 0) {
		if (wrote_sig)
			(void)unlink(tt->sig_path);
		if (wrote_enc)
			(void)unlink(tt->enc_path);
		tpm_disconnect(tt, !tpm_rc_is_reset(tt->last_rc));
		tpm_forget_keys(tt);
	}
	return r;
}

/* Flushes the keys and the session, wipes the PIN, frees t. */
static void
tpm_close(struct token *t)
{
	struct tpm_token *tt = tpm_cast(t);

	if (tt == NULL)
		return;
	tpm_disconnect(tt, 1);
	tpm_forget_keys(tt);
	OPENSSL_cleanse(&tt->auth, sizeof(tt->auth));
	free(tt->tcti_conf);
	free(tt->sig_path);
	free(tt->enc_path);
	free(tt->parent_path);
	free(tt);
}

static const struct token_ops tpm_token_ops = {
	.name = "tpm2",
	.create_keys = tpm_create_keys,
	.open_keys = tpm_open_keys,
	.public_key = tpm_public_key,
	.sign_digest = tpm_sign_digest,
	.ecdh = tpm_ecdh,
	.rsa_decrypt = tpm_rsa_decrypt,
	.describe = tpm_describe,
	.close = tpm_close,
};

/* dir/name, or name itself when absolute; NULL when out of memory. */
static char *
tpm_path_join(const char *dir, const char *name)
{
	char *p = NULL;

	if (name[0] == '/')
		return strdup(name);
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int
tpm_token_new(const char *tcti, const char *state_dir,
    const struct tpm_options *opt, struct token **out, struct err_ctx *e)
{
	struct tpm_token *tt = NULL;
	const char *pin = opt != NULL ? opt->pin : NULL;
	size_t pin_len = pin != NULL ? strlen(pin) : 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(state_dir != NULL && out != NULL, ERR_INVALID_ARG);
	if (tcti == NULL)
		tcti = getenv(TPM_TCTI_ENV);
	if (tcti == NULL || tcti[0] == '\0')
		tcti = TPM_TCTI_DEFAULT;
	if (pin_len > TPM_PIN_MAX)
		return err_set(e, ERR_INVALID_ARG, "a TPM PIN has at most %d "
		    "bytes", TPM_PIN_MAX);
	if ((tt = calloc(1, sizeof(*tt))) == NULL)
		return ERR_ALLOC;
	tt->base.ops = &tpm_token_ops;
	tt->base.enc_alg = TOKEN_ENC_NONE;
	tt->sig_key = tt->enc_key = tt->session = ESYS_TR_NONE;
	tt->tcti_conf = strdup(tcti);
	tt->sig_path = tpm_path_join(state_dir, opt != NULL &&
	    opt->sig_file != NULL ? opt->sig_file : TPM_SIG_FILE_DEFAULT);
	tt->enc_path = tpm_path_join(state_dir, opt != NULL &&
	    opt->enc_file != NULL ? opt->enc_file : TPM_ENC_FILE_DEFAULT);
	tt->parent_path = tpm_path_join(state_dir, opt != NULL &&
	    opt->parent_file != NULL ? opt->parent_file :
	    TPM_PARENT_FILE_DEFAULT);
	if (tt->tcti_conf == NULL || tt->sig_path == NULL ||
	    tt->enc_path == NULL || tt->parent_path == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (pin_len > 0) {
		memcpy(tt->auth.buffer, pin, pin_len);
		tt->auth.size = (UINT16)pin_len;
		tt->have_auth = 1;
	}
	if (opt != NULL) {
		tt->pin_cb = opt->pin_cb;
		tt->pin_cb_arg = opt->pin_cb_arg;
	}
	*out = &tt->base;
	tt = NULL;      /* transferred */
	r = 0;
 out:
	if (tt != NULL)
		tpm_close(&tt->base);
	return r;
}

/*
 * Counts the handles of one type with TPM2_GetCapability; first is the
 * first handle of the range (literal: tss2's TPM2_TRANSIENT_FIRST shifts
 * into the sign bit of an int, which UBSan rightly rejects).
 */
static int
tpm_count_handles(struct tpm_token *tt, TPM2_HC first, unsigned int *count,
    struct err_ctx *e)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	rc = Esys_GetCapability(tt->esys, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, TPM2_CAP_HANDLES, first, TPM2_MAX_CAP_HANDLES, &more,
	    &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_err_rc(tt, rc, "reading the loaded handles", e);
	*count = cap->data.handles.count;
	Esys_Free(cap);
	return 0;
}

int
tpm_token_loaded_handles(struct token *t, unsigned int *objects,
    unsigned int *sessions, struct err_ctx *e)
{
	struct tpm_token *tt;
	int r;

	return_val_if_fail(t != NULL && t->ops == &tpm_token_ops &&
	    objects != NULL && sessions != NULL, ERR_INVALID_ARG);
	tt = tpm_cast(t);
	if ((r = tpm_connect(tt, e)) != 0 ||
	    (r = tpm_count_handles(tt, 0x80000000u, objects, e)) != 0 ||
	    (r = tpm_count_handles(tt, 0x02000000u, sessions, e)) != 0)
		return r;
	return 0;
}

int
tpm_token_da_state(struct token *t, uint32_t *counter, uint32_t *max_tries,
    uint32_t *interval_s, struct err_ctx *e)
{
	return_val_if_fail(t != NULL && t->ops == &tpm_token_ops,
	    ERR_INVALID_ARG);
	return tpm_da_read(tpm_cast(t), counter, max_tries, interval_s, e);
}
