/*
 * p11-eddsa.c - an Ed25519 key on a PKCS#11 token (CKK_EC_EDWARDS,
 * CKM_EDDSA): a devid-witness's cosigning key.  The token object comes
 * from p11_token_new() with the sig_only option; the key is its
 * "<base>-sig" key, kept in p->sig with type CKK_EC_EDWARDS and its raw
 * 32-byte public key in p->sig.spki.  p->keys_ready stays 0, so the
 * ECDSA operations of the token interface refuse this key.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "p11-private.h"

/* DER of the OID id-Ed25519 (1.3.101.112), CKA_EC_PARAMS. */
static const uint8_t p11_ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

#define P11_EDDSA_ID_LEN 16
#define P11_EDDSA_POINT_MAX 64

/* 1 when the token has mech with the flags want. */
static int
eddsa_has_mech(struct p11_token *p, CK_MECHANISM_TYPE mech, CK_FLAGS want)
{
	CK_MECHANISM_INFO mi;

	if (p->module->C_GetMechanismInfo(p->slot, mech, &mi) != CKR_OK)
		return 0;
	return (mi.flags & want) == want;
}

/*
 * The 32-byte Ed25519 public key from a CKA_EC_POINT value: DER (an
 * OCTET STRING 04 20 ...) as PKCS#11 3.0 says, or the raw 32 bytes some
 * modules give.  0 or ERR_FORMAT.
 */
int
p11_eddsa_point_decode(const uint8_t *v, size_t len, uint8_t pub[32])
{
	if (len == 34 && v[0] == 0x04 && v[1] == 0x20) {
		memcpy(pub, v + 2, 32);
		return 0;
	}
	if (len == 32) {
		memcpy(pub, v, 32);
		return 0;
	}
	return ERR_FORMAT;
}

/* Finds the one object of class cls labelled label: *h, or 0 in *count. */
static CK_RV
eddsa_find(struct p11_token *p, CK_OBJECT_CLASS cls, const char *label,
    CK_OBJECT_HANDLE *h, CK_ULONG *count)
{
	CK_KEY_TYPE kt = CKK_EC_EDWARDS;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_LABEL, (void *)(uintptr_t)label, strlen(label) },
	};
	CK_OBJECT_HANDLE found[2];
	CK_RV rv, rv2;

	*count = 0;
	if ((rv = p->module->C_FindObjectsInit(p->session, tmpl, 3)) !=
	    CKR_OK)
		return rv;
	rv = p->module->C_FindObjects(p->session, found, 2, count);
	rv2 = p->module->C_FindObjectsFinal(p->session);
	if (rv == CKR_OK)
		rv = rv2;
	if (rv == CKR_OK && *count > 0)
		*h = found[0];
	return rv;
}

/* A CK_BBOOL attribute; -1 when the token does not give it. */
static int
eddsa_bool(struct p11_token *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (p->module->C_GetAttributeValue(p->session, h, &a, 1) != CKR_OK ||
	    a.ulValueLen != sizeof(v))
		return -1;
	return v == CK_TRUE;
}

/*
 * Finds "<base>-sig" (private and public), checks that the private half
 * never left the token and reads the public key into p->sig.  On
 * success p->sig holds the key; on failure it is cleared.
 */
static int
eddsa_locate(struct p11_token *p, struct err_ctx *e)
{
	CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	CK_RV rv;
	uint8_t *val = NULL, raw[32];
	size_t len = 0;
	char label[P11_LABEL_MAX + 1];
	int r = ERR_INTERNAL;

	snprintf(label, sizeof(label), "%s-sig", p->label_base);
	if ((rv = eddsa_find(p, CKO_PRIVATE_KEY, label, &priv, &n)) != CKR_OK)
		return p11_fail(p, rv, e, "looking for the Ed25519 key");
	if (n == 0)
		return err_set(e, ERR_NOT_FOUND, "token '%s' has no Ed25519 "
		    "private key labelled '%s' (create it with "
		    "devid-witness init)", p->token_label, label);
	if (n > 1)
		return err_set(e, ERR_CONFIG, "token '%s' has more than one "
		    "Ed25519 private key labelled '%s'", p->token_label, label);
	if ((rv = eddsa_find(p, CKO_PUBLIC_KEY, label, &pub, &n)) != CKR_OK)
		return p11_fail(p, rv, e, "looking for the Ed25519 key");
	if (n != 1)
		return err_set(e, ERR_NOT_FOUND, "token '%s' has %s Ed25519 "
		    "public key labelled '%s'", p->token_label,
		    n == 0 ? "no" : "more than one", label);
	if (eddsa_bool(p, priv, CKA_SENSITIVE) != 1 ||
	    eddsa_bool(p, priv, CKA_ALWAYS_SENSITIVE) != 1 ||
	    eddsa_bool(p, priv, CKA_EXTRACTABLE) != 0 ||
	    eddsa_bool(p, priv, CKA_NEVER_EXTRACTABLE) != 1 ||
	    eddsa_bool(p, priv, CKA_SIGN) != 1)
		return err_set(e, ERR_KEY_POLICY, "token '%s': the key '%s' "
		    "could have been exported or cannot sign (it needs "
		    "sensitive, always-sensitive, never-extractable, sign)",
		    p->token_label, label);
	if ((rv = p11_attr_get(p, pub, CKA_EC_POINT, P11_EDDSA_POINT_MAX,
	    &val, &len)) != CKR_OK)
		return p11_fail(p, rv, e, "reading the Ed25519 public key");
	if (p11_eddsa_point_decode(val, len, raw) != 0) {
		r = err_set(e, ERR_FORMAT, "token '%s': the public key of '%s' "
		    "is not an Ed25519 point", p->token_label, label);
		goto out;
	}
	/* After a reconnection: the same key, or nothing. */
	if (p->sig.spki != NULL && (p->sig.spki_len != 32 ||
	    memcmp(p->sig.spki, raw, 32) != 0)) {
		r = err_set(e, ERR_WRONG_KEY, "token '%s': the key '%s' is not "
		    "the one opened before", p->token_label, label);
		goto out;
	}
	if (p->sig.spki == NULL) {
		p11_key_clear(&p->sig);
		if ((p->sig.spki = malloc(32)) == NULL) {
			r = err_set(e, ERR_ALLOC, "out of memory");
			goto out;
		}
		memcpy(p->sig.spki, raw, 32);
		p->sig.spki_len = 32;
	}
	p->sig.priv = priv;
	p->sig.type = CKK_EC_EDWARDS;
	snprintf(p->sig.label, sizeof(p->sig.label), "%s", label);
	snprintf(p->sig.attrs, sizeof(p->sig.attrs),
	    "sensitive,always-sensitive,never-extractable");
	r = 0;
 out:
	free(val);
	return r;
}

int
p11_eddsa_open(struct token *t, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	int r;

	return_val_if_fail(t != NULL, ERR_INVALID_ARG);
	if ((r = p11_ensure_session(p, e)) != 0)
		return r;
	if (!eddsa_has_mech(p, CKM_EDDSA, CKF_SIGN))
		return err_set(e, ERR_UNSUPPORTED, "token '%s' cannot sign "
		    "with Ed25519 (no CKM_EDDSA)", p->token_label);
	return eddsa_locate(p, e);
}

int
p11_eddsa_create(struct token *t, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	CK_MECHANISM mech = { CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE, h;
	CK_ULONG n = 0;
	CK_RV rv;
	uint8_t id[P11_EDDSA_ID_LEN];
	char label[P11_LABEL_MAX + 1];
	int r;

	return_val_if_fail(t != NULL, ERR_INVALID_ARG);
	if ((r = p11_ensure_session(p, e)) != 0)
		return r;
	if (!eddsa_has_mech(p, CKM_EC_EDWARDS_KEY_PAIR_GEN,
	    CKF_GENERATE_KEY_PAIR) || !eddsa_has_mech(p, CKM_EDDSA, CKF_SIGN))
		return err_set(e, ERR_UNSUPPORTED, "token '%s' cannot make or "
		    "use Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN or "
		    "CKM_EDDSA)", p->token_label);
	snprintf(label, sizeof(label), "%s-sig", p->label_base);
	if ((rv = eddsa_find(p, CKO_PRIVATE_KEY, label, &h, &n)) != CKR_OK)
		return p11_fail(p, rv, e, "looking for existing keys");
	if (n != 0)
		return err_set(e, ERR_EXISTS, "token '%s' already has a key "
		    "labelled '%s'; devid never replaces one", p->token_label,
		    label);
	if (crypto_random(id, sizeof(id)) != 0)
		return err_set(e, ERR_CRYPTO, "no random bytes for a key id");
	{
		CK_ATTRIBUTE pub_tmpl[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_VERIFY, &yes, sizeof(yes) },
			{ CKA_EC_PARAMS, (void *)(uintptr_t)p11_ed25519_oid,
			    sizeof(p11_ed25519_oid) },
			{ CKA_LABEL, label, strlen(label) },
			{ CKA_ID, id, sizeof(id) },
		};
		CK_ATTRIBUTE priv_tmpl[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_SIGN, &yes, sizeof(yes) },
			{ CKA_LABEL, label, strlen(label) },
			{ CKA_ID, id, sizeof(id) },
		};

		rv = p->module->C_GenerateKeyPair(p->session, &mech, pub_tmpl,
		    sizeof(pub_tmpl) / sizeof(pub_tmpl[0]), priv_tmpl,
		    sizeof(priv_tmpl) / sizeof(priv_tmpl[0]), &pub, &priv);
	}
	if (rv != CKR_OK)
		return p11_fail(p, rv, e, "generating an Ed25519 key");
	if ((r = eddsa_locate(p, e)) != 0) {
		(void)p->module->C_DestroyObject(p->session, priv);
		(void)p->module->C_DestroyObject(p->session, pub);
		return r;
	}
	return 0;
}

int
p11_eddsa_public(struct token *t, uint8_t pub[32], struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;

	return_val_if_fail(t != NULL && pub != NULL, ERR_INVALID_ARG);
	if (p->sig.type != CKK_EC_EDWARDS || p->sig.spki_len != 32)
		return err_set(e, ERR_INVALID_ARG, "token '%s': open or "
		    "create the Ed25519 key first", p->token_label);
	memcpy(pub, p->sig.spki, 32);
	return 0;
}

/* One CKM_EDDSA signature over msg into sig; the CK_RV. */
static CK_RV
eddsa_sign_once(struct p11_token *p, const uint8_t *msg, size_t len,
    uint8_t sig[64])
{
	CK_MECHANISM mech = { CKM_EDDSA, NULL, 0 };
	CK_ULONG sig_len = 64;
	CK_RV rv;

	if ((rv = p->module->C_SignInit(p->session, &mech, p->sig.priv)) !=
	    CKR_OK)
		return rv;
	if ((rv = p->module->C_Sign(p->session, (CK_BYTE_PTR)(uintptr_t)msg,
	    (CK_ULONG)len, sig, &sig_len)) != CKR_OK)
		return rv;
	return sig_len == 64 ? CKR_OK : P11_RV_BAD_OUTPUT;
}

int
p11_eddsa_sign(struct token *t, const uint8_t *msg, size_t len,
    uint8_t sig[64], struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	uint8_t out[64];
	CK_RV rv;
	char num[32];
	int r;

	return_val_if_fail(t != NULL && (msg != NULL || len == 0) &&
	    sig != NULL, ERR_INVALID_ARG);
	if (p->sig.type != CKK_EC_EDWARDS || p->sig.spki_len != 32)
		return err_set(e, ERR_INVALID_ARG, "token '%s': open or "
		    "create the Ed25519 key first", p->token_label);
	if ((r = p11_ensure_session(p, e)) != 0)
		return r;
	rv = eddsa_sign_once(p, msg, len, out);
	if (p11_rv_is_loss(rv)) {
		/* Once more on a new session, with the key found again. */
		(void)p11_fail(p, rv, NULL, "signing");
		if ((r = p11_ensure_session(p, e)) != 0 ||
		    (r = eddsa_locate(p, e)) != 0)
			return r;
		rv = eddsa_sign_once(p, msg, len, out);
	}
	if (rv != CKR_OK) {
		if (p11_rv_is_loss(rv))
			return p11_fail(p, rv, e, "signing");
		return err_set(e, p11_rv_err(rv) != 0 ? p11_rv_err(rv) :
		    ERR_TOKEN, "token '%s': Ed25519 signing with '%s' failed "
		    "(%s)", p->token_label, p->sig.label,
		    p11_rv_text(rv, num, sizeof(num)));
	}
	memcpy(sig, out, 64);
	t->stats.signs++;
	return 0;
}
