/*
 * p11-keys.c - the device keys on a PKCS#11 token: generation, lookup by
 * label or CKA_ID, the attribute checks that prove non-exportability, and
 * the public keys as SubjectPublicKeyInfo.
 *
 * A key is accepted only when the token says CKA_SENSITIVE and
 * CKA_ALWAYS_SENSITIVE are true and CKA_EXTRACTABLE and (through
 * CKA_NEVER_EXTRACTABLE) every earlier value of it were false: the private
 * half has never been readable outside the token.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "crypto.h"
#include "p11-private.h"

/* DER of the OID prime256v1 (1.2.840.10045.3.1.7), CKA_EC_PARAMS. */
static const uint8_t p11_p256_oid[] = {
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};

#define P11_NEW_ID_LEN 16
#define P11_RSA_BITS 2048
/* Largest attribute devid reads (an RSA-4096 modulus is 512 bytes). */
#define P11_ATTR_MAX 1024

void
p11_key_clear(struct p11_key *k)
{
	if (k == NULL)
		return;
	free(k->spki);
	memset(k, 0, sizeof(*k));
	k->priv = CK_INVALID_HANDLE;
}

CK_RV
p11_attr_get(struct p11_token *p, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type, size_t max, uint8_t **val, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	uint8_t *buf = NULL;
	CK_RV rv;

	if ((rv = p->module->C_GetAttributeValue(p->session, obj, &a, 1)) !=
	    CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
		return CKR_ATTRIBUTE_SENSITIVE;
	if (a.ulValueLen > max)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	/* One spare byte: a zero-length value still gets an allocation. */
	if ((buf = calloc(1, a.ulValueLen + 1)) == NULL)
		return CKR_HOST_MEMORY;
	a.pValue = buf;
	if ((rv = p->module->C_GetAttributeValue(p->session, obj, &a, 1)) !=
	    CKR_OK) {
		free(buf);
		return rv;
	}
	if (a.ulValueLen > max) {
		free(buf);
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	*val = buf;
	*len = a.ulValueLen;
	return CKR_OK;
}

/* Reads a CK_BBOOL; -1 when the token does not give it. */
static int
p11_attr_bool(struct p11_token *p, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (p->module->C_GetAttributeValue(p->session, obj, &a, 1) != CKR_OK ||
	    a.ulValueLen != sizeof(v))
		return -1;
	return v == CK_TRUE ? 1 : 0;
}

static CK_RV
p11_attr_ulong(struct p11_token *p, CK_OBJECT_HANDLE obj,
    CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
	CK_ATTRIBUTE a = { type, out, sizeof(*out) };
	CK_RV rv;

	if ((rv = p->module->C_GetAttributeValue(p->session, obj, &a, 1)) !=
	    CKR_OK)
		return rv;
	return a.ulValueLen == sizeof(*out) ? CKR_OK : P11_RV_BAD_OUTPUT;
}

/*
 * Finds objects matching tmpl: up to max handles in found, their number
 * (at most max) in *count.  Callers ask for one more than they want to
 * detect duplicates.
 */
static CK_RV
p11_find(struct p11_token *p, CK_ATTRIBUTE *tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE *found, CK_ULONG max, CK_ULONG *count)
{
	CK_RV rv, rv2;

	*count = 0;
	if ((rv = p->module->C_FindObjectsInit(p->session, tmpl, n)) !=
	    CKR_OK)
		return rv;
	rv = p->module->C_FindObjects(p->session, found, max, count);
	rv2 = p->module->C_FindObjectsFinal(p->session);
	return rv != CKR_OK ? rv : rv2;
}

/* Whether the token offers mech with all of want_flags. */
static int
p11_has_mech(struct p11_token *p, CK_MECHANISM_TYPE mech, CK_FLAGS want)
{
	CK_MECHANISM_INFO info;

	if (p->module->C_GetMechanismInfo(p->slot, mech, &info) != CKR_OK)
		return 0;
	return (info.flags & want) == want;
}

/* --- public keys --- */

int
p11_ec_point_decode(const uint8_t *v, size_t len,
    uint8_t point[CRYPTO_P256_POINT_LEN])
{
	if (len == CRYPTO_P256_POINT_LEN && v[0] == 0x04) {
		memcpy(point, v, len);
		return 0;
	}
	/* OCTET STRING (04), length 65 (41), then the point. */
	if (len == CRYPTO_P256_POINT_LEN + 2 && v[0] == 0x04 &&
	    v[1] == CRYPTO_P256_POINT_LEN && v[2] == 0x04) {
		memcpy(point, v + 2, CRYPTO_P256_POINT_LEN);
		return 0;
	}
	return ERR_FORMAT;
}

/* Builds an RSA public key from its modulus and public exponent. */
static int
p11_rsa_pkey(const uint8_t *mod, size_t mod_len, const uint8_t *exp,
    size_t exp_len, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *n = NULL, *ex = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ERR_CRYPTO;

	if ((n = BN_bin2bn(mod, (int)mod_len, NULL)) == NULL ||
	    (ex = BN_bin2bn(exp, (int)exp_len, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ex) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	*out = pkey;
	pkey = NULL; /* transferred */
	r = 0;
 out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(ex);
	return r;
}

/*
 * Reads the public key of k from obj (its public-key object, or the
 * private key itself when the token has no public object) into k->spki.
 * CKR_ATTRIBUTE_* failures are returned as *rv for the caller to try the
 * next object; everything else is an ERR_* code.
 */
static int
p11_key_read_public(struct p11_token *p, struct p11_key *k,
    CK_OBJECT_HANDLE obj, CK_RV *rv, struct err_ctx *e)
{
	uint8_t *a = NULL, *b = NULL, point[CRYPTO_P256_POINT_LEN];
	size_t a_len = 0, b_len = 0;
	EVP_PKEY *pkey = NULL;
	int r = ERR_INTERNAL;

	*rv = CKR_OK;
	if (k->type == CKK_EC) {
		if ((*rv = p11_attr_get(p, obj, CKA_EC_POINT, P11_ATTR_MAX,
		    &a, &a_len)) != CKR_OK) {
			r = 0;
			goto out;
		}
		if (p11_ec_point_decode(a, a_len, point) != 0 ||
		    crypto_ec_point_to_pkey(point, sizeof(point), &pkey) != 0) {
			r = err_set(e, ERR_FORMAT, "token '%s': key '%s' has "
			    "no valid P-256 CKA_EC_POINT", p->token_label,
			    k->label);
			goto out;
		}
	} else {
		if ((*rv = p11_attr_get(p, obj, CKA_MODULUS, P11_ATTR_MAX, &a,
		    &a_len)) != CKR_OK ||
		    (*rv = p11_attr_get(p, obj, CKA_PUBLIC_EXPONENT, 16, &b,
		    &b_len)) != CKR_OK) {
			r = 0;
			goto out;
		}
		if (a_len == 0 || b_len == 0 ||
		    p11_rsa_pkey(a, a_len, b, b_len, &pkey) != 0 ||
		    !crypto_is_rsa(pkey)) {
			r = err_set(e, ERR_UNSUPPORTED, "token '%s': key '%s' "
			    "is not an RSA key of 2048 to 4096 bits",
			    p->token_label, k->label);
			goto out;
		}
		/* The modulus without leading zero bytes. */
		k->rsa_bytes = (size_t)EVP_PKEY_get_size(pkey);
	}
	if (crypto_spki_export(pkey, &k->spki, &k->spki_len) != 0) {
		r = err_set(e, ERR_CRYPTO, "token '%s': cannot encode the "
		    "public key of '%s'", p->token_label, k->label);
		goto out;
	}
	r = 0;
 out:
	EVP_PKEY_free(pkey);
	free(a);
	free(b);
	return r;
}

/* Finds the public-key object of k (same label and id), else uses the
 * private key's own attributes. */
static int
p11_key_load_public(struct p11_token *p, struct p11_key *k,
    struct err_ctx *e)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[3];
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0, count = 0;
	CK_RV rv;
	char num[32];
	int r;

	tmpl[n].type = CKA_CLASS;
	tmpl[n].pValue = &cls;
	tmpl[n++].ulValueLen = sizeof(cls);
	if (k->label[0] != '\0') {
		tmpl[n].type = CKA_LABEL;
		tmpl[n].pValue = k->label;
		tmpl[n++].ulValueLen = strlen(k->label);
	}
	if (k->id_len > 0) {
		tmpl[n].type = CKA_ID;
		tmpl[n].pValue = k->id;
		tmpl[n++].ulValueLen = k->id_len;
	}
	if ((rv = p11_find(p, tmpl, n, found, 2, &count)) != CKR_OK)
		return p11_fail(p, rv, e, "finding public keys");
	if (count == 1) {
		if ((r = p11_key_read_public(p, k, found[0], &rv, e)) != 0)
			return r;
		if (rv == CKR_OK)
			return 0;
	}
	if ((r = p11_key_read_public(p, k, k->priv, &rv, e)) != 0)
		return r;
	if (rv == CKR_OK)
		return 0;
	if (p11_rv_is_loss(rv))
		return p11_fail(p, rv, e, "reading public keys");
	snprintf(num, sizeof(num), "%s",
	    p11_rv_name(rv) != NULL ? p11_rv_name(rv) : "error");
	return err_set(e, ERR_NOT_FOUND, "token '%s': no public key for '%s' "
	    "(%s): the token needs a public-key object with the same label "
	    "and CKA_ID", p->token_label, k->label, num);
}

/* Fills in the label (unless k has one) and the id of the key at h,
 * when the token tells them. */
static void
p11_key_read_names(struct p11_token *p, struct p11_key *k,
    CK_OBJECT_HANDLE h)
{
	uint8_t *v = NULL;
	size_t v_len = 0;

	if (k->label[0] == '\0' && p11_attr_get(p, h, CKA_LABEL,
	    P11_LABEL_MAX, &v, &v_len) == CKR_OK) {
		if (memchr(v, '\0', v_len) == NULL) {
			memcpy(k->label, v, v_len);
			k->label[v_len] = '\0';
		}
		free(v);
		v = NULL;
	}
	if (p11_attr_get(p, h, CKA_ID, P11_ID_MAX, &v, &v_len) == CKR_OK) {
		memcpy(k->id, v, v_len);
		k->id_len = v_len;
		free(v);
	}
}

/* A boolean attribute as p11_attr_bool() read it, for messages. */
static const char *
p11_bool_name(int v)
{
	return v == 1 ? "true" : v == 0 ? "false" : "unknown";
}

/*
 * The key at h (the role key of k) never left the token and never can:
 * sensitive and never extractable from its creation on (ERR_KEY_POLICY
 * otherwise).  Records what holds in k->attrs and k->always_auth.
 */
static int
p11_key_check_policy(struct p11_token *p, struct p11_key *k,
    CK_OBJECT_HANDLE h, const char *role, struct err_ctx *e)
{
	int sens, asens, extr, nextr, local;

	sens = p11_attr_bool(p, h, CKA_SENSITIVE);
	asens = p11_attr_bool(p, h, CKA_ALWAYS_SENSITIVE);
	extr = p11_attr_bool(p, h, CKA_EXTRACTABLE);
	nextr = p11_attr_bool(p, h, CKA_NEVER_EXTRACTABLE);
	local = p11_attr_bool(p, h, CKA_LOCAL);
	if (sens != 1 || asens != 1 || extr != 0 || nextr != 1)
		return err_set(e, ERR_KEY_POLICY, "token '%s': the %s key "
		    "'%s' could have been exported (CKA_SENSITIVE %s, "
		    "CKA_ALWAYS_SENSITIVE %s, CKA_EXTRACTABLE %s, "
		    "CKA_NEVER_EXTRACTABLE %s): devid refuses it; create keys "
		    "that never left the token", p->token_label, role,
		    k->label, p11_bool_name(sens), p11_bool_name(asens),
		    p11_bool_name(extr), p11_bool_name(nextr));
	snprintf(k->attrs, sizeof(k->attrs), "sensitive,always-sensitive,"
	    "never-extractable%s", local == 1 ? ",local" : "");
	k->always_auth = p11_attr_bool(p, h, CKA_ALWAYS_AUTHENTICATE) == 1;
	return 0;
}

/*
 * The key at h, of the given type, fits its role (sig: 1 for the signing
 * key): EC on P-256 for either role, or RSA for encryption
 * (ERR_UNSUPPORTED otherwise), and allowed to sign, derive or decrypt
 * (ERR_KEY_POLICY otherwise).
 */
static int
p11_key_check_usage(struct p11_token *p, const struct p11_key *k,
    CK_OBJECT_HANDLE h, CK_ULONG type, int sig, const char *role,
    struct err_ctx *e)
{
	uint8_t *v = NULL;
	size_t v_len = 0;
	CK_RV rv;
	int use, r = ERR_INTERNAL;

	if (type == CKK_EC) {
		if ((rv = p11_attr_get(p, h, CKA_EC_PARAMS, P11_ATTR_MAX, &v,
		    &v_len)) != CKR_OK) {
			r = p11_fail(p, rv, e, "reading the curve of a key");
			goto out;
		}
		if (v_len != sizeof(p11_p256_oid) ||
		    memcmp(v, p11_p256_oid, v_len) != 0) {
			r = err_set(e, ERR_UNSUPPORTED, "token '%s': the %s "
			    "key '%s' is not on curve P-256", p->token_label,
			    role, k->label);
			goto out;
		}
		use = p11_attr_bool(p, h, sig ? CKA_SIGN : CKA_DERIVE);
	} else if (type == CKK_RSA && !sig) {
		use = p11_attr_bool(p, h, CKA_DECRYPT);
	} else {
		r = err_set(e, ERR_UNSUPPORTED, "token '%s': the %s key '%s' "
		    "must be %s", p->token_label, role, k->label,
		    sig ? "EC P-256" : "EC P-256 or RSA");
		goto out;
	}
	if (use == 0) {
		r = err_set(e, ERR_KEY_POLICY, "token '%s': the %s key '%s' "
		    "does not allow %s", p->token_label, role, k->label,
		    sig ? "signing (CKA_SIGN)" : type == CKK_EC ?
		    "ECDH (CKA_DERIVE)" : "decryption (CKA_DECRYPT)");
		goto out;
	}
	r = 0;
 out:
	free(v);
	return r;
}

/*
 * Loads key k at handle h for its role (sig: 1 for the signing key):
 * reads its type, label and id, checks the non-exportability attributes
 * (ERR_KEY_POLICY), the curve or modulus size and the usage flags, and
 * reads its public key.
 */
static int
p11_key_load(struct p11_token *p, struct p11_key *k, CK_OBJECT_HANDLE h,
    int sig, struct err_ctx *e)
{
	CK_ULONG type;
	CK_RV rv;
	int r;
	const char *role = sig ? "signing" : "encryption";

	k->priv = h;
	if ((rv = p11_attr_ulong(p, h, CKA_KEY_TYPE, &type)) != CKR_OK)
		return p11_fail(p, rv, e, "reading the key type");
	k->type = type;
	p11_key_read_names(p, k, h);
	if ((r = p11_key_check_policy(p, k, h, role, e)) != 0 ||
	    (r = p11_key_check_usage(p, k, h, type, sig, role, e)) != 0 ||
	    (r = p11_key_load_public(p, k, e)) != 0)
		return r;
	return 0;
}

/*
 * On a token that needs a login, a device key must be a private object
 * (CKA_PRIVATE true): a private key that is a public object can be
 * generated, used and destroyed by anyone without the PIN, so a key pair
 * that malware made under the device keys' labels is never taken for
 * them.  Appends that condition to tmpl at *n when it applies.
 */
static void
p11_tmpl_private(struct p11_token *p, CK_ATTRIBUTE *tmpl, CK_ULONG *n)
{
	static CK_BBOOL yes = CK_TRUE;

	if ((p->tinfo.flags & CKF_LOGIN_REQUIRED) == 0)
		return;
	tmpl[*n].type = CKA_PRIVATE;
	tmpl[*n].pValue = &yes;
	tmpl[(*n)++].ulValueLen = sizeof(yes);
}

/*
 * Finds the one private key labelled label (and holding the URI's id, if
 * any; a private object, p11_tmpl_private()).  ERR_NOT_FOUND when none,
 * ERR_CONFIG when several.
 */
static int
p11_find_priv_by_label(struct p11_token *p, const char *label,
    CK_OBJECT_HANDLE *h, struct err_ctx *e)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[4];
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0, count = 0;
	CK_RV rv;

	tmpl[n].type = CKA_CLASS;
	tmpl[n].pValue = &cls;
	tmpl[n++].ulValueLen = sizeof(cls);
	p11_tmpl_private(p, tmpl, &n);
	tmpl[n].type = CKA_LABEL;
	tmpl[n].pValue = (void *)label;
	tmpl[n++].ulValueLen = strlen(label);
	if (p->uri->id_len > 0) {
		tmpl[n].type = CKA_ID;
		tmpl[n].pValue = p->uri->id;
		tmpl[n++].ulValueLen = p->uri->id_len;
	}
	if ((rv = p11_find(p, tmpl, n, found, 2, &count)) != CKR_OK)
		return p11_fail(p, rv, e, "finding keys");
	if (count == 0)
		return err_set(e, ERR_NOT_FOUND, "token '%s' has no private "
		    "key labelled '%s'%s: create the keys, or name existing ones "
		    "with object= or id= in the URI", p->token_label, label,
		    p->uri->id_len > 0 ? " with the URI's id" : "");
	if (count > 1)
		return err_set(e, ERR_CONFIG, "token '%s' has several private "
		    "keys labelled '%s': add id= to the URI", p->token_label,
		    label);
	*h = found[0];
	return 0;
}

/*
 * Finds the private keys holding the URI's id (private objects,
 * p11_tmpl_private()) and tells them apart: an RSA key or an EC key that
 * may derive and not sign is the encryption key, any other the signing
 * key.  With enc there must be exactly one of each;
 * with enc NULL (sig_only) exactly one signing key, and an encryption key
 * beside it is ignored.  *sig and *enc are set only on success.
 */
static int
p11_find_priv_by_id(struct p11_token *p, CK_OBJECT_HANDLE *sig,
    CK_OBJECT_HANDLE *enc, struct err_ctx *e)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[3] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, p->uri->id, p->uri->id_len },
	};
	CK_OBJECT_HANDLE found[3];
	CK_OBJECT_HANDLE hs = CK_INVALID_HANDLE, he = CK_INVALID_HANDLE;
	CK_ULONG n = 2, count = 0, type, i, n_sig = 0;
	CK_RV rv;

	p11_tmpl_private(p, tmpl, &n);
	if ((rv = p11_find(p, tmpl, n, found, 3, &count)) != CKR_OK)
		return p11_fail(p, rv, e, "finding keys");
	if (enc != NULL && count != 2)
		return err_set(e, count == 0 ? ERR_NOT_FOUND : ERR_CONFIG,
		    "token '%s' has %lu private keys with the URI's id; devid "
		    "needs exactly two (signing and encryption)",
		    p->token_label, (unsigned long)count);
	if (enc == NULL && (count == 0 || count > 2))
		return err_set(e, count == 0 ? ERR_NOT_FOUND : ERR_CONFIG,
		    "token '%s' has %lu private keys with the URI's id; devid "
		    "needs its signing key (and at most an encryption key "
		    "beside it)", p->token_label, (unsigned long)count);
	for (i = 0; i < count; i++) {
		if ((rv = p11_attr_ulong(p, found[i], CKA_KEY_TYPE, &type)) !=
		    CKR_OK)
			return p11_fail(p, rv, e, "reading the key type");
		if (type == CKK_RSA ||
		    (p11_attr_bool(p, found[i], CKA_DERIVE) == 1 &&
		    p11_attr_bool(p, found[i], CKA_SIGN) != 1)) {
			he = found[i];
		} else {
			hs = found[i];
			n_sig++;
		}
	}
	if (enc == NULL && n_sig == 0)
		return err_set(e, ERR_NOT_FOUND, "token '%s' has no signing "
		    "key with the URI's id, only an encryption key: create "
		    "the signing key, or name it with object=",
		    p->token_label);
	if (n_sig != 1 || (enc != NULL && count - n_sig != 1))
		return err_set(e, ERR_CONFIG, "token '%s': cannot tell the "
		    "signing key from the encryption key among the keys with "
		    "the URI's id: name them with object=", p->token_label);
	*sig = hs;
	if (enc != NULL)
		*enc = he;
	return 0;
}

/*
 * Finds and loads the keys into sig and enc (cleared first): both, or with
 * opt.sig_only the signing key alone (enc stays empty).
 */
static int
p11_keys_locate(struct p11_token *p, struct p11_key *sig,
    struct p11_key *enc, struct err_ctx *e)
{
	CK_OBJECT_HANDLE hs = CK_INVALID_HANDLE, he = CK_INVALID_HANDLE;
	int sig_only = p->opt.sig_only, r;

	p11_key_clear(sig);
	p11_key_clear(enc);
	if (p->uri->id_len > 0 && p->uri->object == NULL) {
		if ((r = p11_find_priv_by_id(p, &hs, sig_only ? NULL : &he,
		    e)) != 0)
			return r;
	} else {
		snprintf(sig->label, sizeof(sig->label), "%s-sig",
		    p->label_base);
		if ((r = p11_find_priv_by_label(p, sig->label, &hs, e)) != 0)
			return r;
		if (!sig_only) {
			snprintf(enc->label, sizeof(enc->label), "%s-enc",
			    p->label_base);
			if ((r = p11_find_priv_by_label(p, enc->label, &he,
			    e)) != 0)
				return r;
		}
	}
	if ((r = p11_key_load(p, sig, hs, 1, e)) != 0)
		return r;
	if (!sig_only && (r = p11_key_load(p, enc, he, 0, e)) != 0)
		return r;
	return 0;
}

/* Makes sig and enc the token's keys (takes what they hold; enc is empty
 * with opt.sig_only). */
static void
p11_keys_adopt(struct p11_token *p, struct p11_key *sig, struct p11_key *enc)
{
	p11_key_clear(&p->sig);
	p11_key_clear(&p->enc);
	p->sig = *sig;
	p->enc = *enc;
	memset(sig, 0, sizeof(*sig));
	memset(enc, 0, sizeof(*enc));
	if (p->opt.sig_only)
		p->base.enc_alg = TOKEN_ENC_NONE;
	else
		p->base.enc_alg = p->enc.type == CKK_RSA ?
		    TOKEN_ENC_RSA_OAEP : TOKEN_ENC_HPKE_P256;
	p->keys_ready = 1;
}

int
p11_open_keys(struct token *t, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	struct p11_key sig, enc;
	int r = ERR_INTERNAL;

	memset(&sig, 0, sizeof(sig));
	memset(&enc, 0, sizeof(enc));
	if ((r = p11_ensure_session(p, e)) != 0 ||
	    (r = p11_keys_locate(p, &sig, &enc, e)) != 0)
		goto out;
	p11_keys_adopt(p, &sig, &enc);
	r = 0;
 out:
	p11_key_clear(&sig);
	p11_key_clear(&enc);
	return r;
}

int
p11_keys_refind(struct p11_token *p, struct err_ctx *e)
{
	struct p11_key sig, enc;
	int r = ERR_INTERNAL;

	memset(&sig, 0, sizeof(sig));
	memset(&enc, 0, sizeof(enc));
	if ((r = p11_keys_locate(p, &sig, &enc, e)) != 0)
		goto out;
	if (sig.spki_len != p->sig.spki_len ||
	    memcmp(sig.spki, p->sig.spki, sig.spki_len) != 0 ||
	    (!p->opt.sig_only && (enc.spki_len != p->enc.spki_len ||
	    memcmp(enc.spki, p->enc.spki, enc.spki_len) != 0))) {
		r = err_set(e, ERR_TOKEN, "token '%s' came back with other "
		    "keys under the same labels: devid will not use them; "
		    "insert the original token", p->token_label);
		goto out;
	}
	p11_keys_adopt(p, &sig, &enc);
	r = 0;
 out:
	p11_key_clear(&sig);
	p11_key_clear(&enc);
	return r;
}

int
p11_public_key(struct token *t, enum token_key which, uint8_t **spki,
    size_t *spki_len, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	const struct p11_key *k = which == TOKEN_KEY_SIG ? &p->sig : &p->enc;
	uint8_t *copy;

	if (which != TOKEN_KEY_SIG && which != TOKEN_KEY_ENC)
		return err_set(e, ERR_INVALID_ARG, "no such key");
	if (which == TOKEN_KEY_ENC && p->opt.sig_only)
		return p11_no_enc_key(p, e, "its public key");
	if (!p->keys_ready)
		return err_set(e, ERR_INVALID_ARG, "token '%s': open or create "
		    "the device keys first", p->token_label);
	if ((copy = malloc(k->spki_len)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(copy, k->spki, k->spki_len);
	*spki = copy;
	*spki_len = k->spki_len;
	return 0;
}

/* --- generation --- */

/*
 * The encryption algorithm to create: the requested one if the token has
 * its mechanisms, else (TOKEN_ENC_NONE) ECDH before RSA-OAEP.
 */
static int
p11_choose_enc(struct p11_token *p, enum token_enc_alg want,
    enum token_enc_alg *out, struct err_ctx *e)
{
	int ecdh, oaep;

	ecdh = p11_has_mech(p, CKM_ECDH1_DERIVE, CKF_DERIVE) &&
	    p11_has_mech(p, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR);
	oaep = p11_has_mech(p, CKM_RSA_PKCS_OAEP, CKF_DECRYPT) &&
	    p11_has_mech(p, CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR);
	switch (want) {
	case TOKEN_ENC_HPKE_P256:
		if (!ecdh)
			return err_set(e, ERR_UNSUPPORTED, "token '%s' cannot "
			    "do hpke-p256: it lacks CKM_ECDH1_DERIVE or "
			    "CKM_EC_KEY_PAIR_GEN", p->token_label);
		break;
	case TOKEN_ENC_RSA_OAEP:
		if (!oaep)
			return err_set(e, ERR_UNSUPPORTED, "token '%s' cannot "
			    "do rsa-oaep-sha256: it lacks CKM_RSA_PKCS_OAEP "
			    "or CKM_RSA_PKCS_KEY_PAIR_GEN", p->token_label);
		break;
	case TOKEN_ENC_NONE:
		if (ecdh)
			want = TOKEN_ENC_HPKE_P256;
		else if (oaep)
			want = TOKEN_ENC_RSA_OAEP;
		else
			return err_set(e, ERR_UNSUPPORTED, "token '%s' can "
			    "hold no devid encryption key: it offers neither "
			    "CKM_ECDH1_DERIVE (hpke-p256) nor "
			    "CKM_RSA_PKCS_OAEP (rsa-oaep-sha256)",
			    p->token_label);
		break;
	default:
		return err_set(e, ERR_INVALID_ARG, "unknown encryption "
		    "algorithm %d", (int)want);
	}
	*out = want;
	return 0;
}

/* ERR_EXISTS when any object carries one of the labels (enc_label may be
 * NULL) or the id. */
static int
p11_check_free(struct p11_token *p, const char *sig_label,
    const char *enc_label, const uint8_t *id, size_t id_len,
    struct err_ctx *e)
{
	CK_ATTRIBUTE tmpl;
	CK_OBJECT_HANDLE found;
	CK_ULONG count;
	CK_RV rv;
	const char *labels[2] = { sig_label, enc_label };
	size_t i;

	for (i = 0; i < 2; i++) {
		if (labels[i] == NULL)
			continue;
		tmpl.type = CKA_LABEL;
		tmpl.pValue = (void *)labels[i];
		tmpl.ulValueLen = strlen(labels[i]);
		if ((rv = p11_find(p, &tmpl, 1, &found, 1, &count)) != CKR_OK)
			return p11_fail(p, rv, e, "looking for existing keys");
		if (count > 0)
			return err_set(e, ERR_EXISTS, "token '%s' already has "
			    "an object labelled '%s': use the existing keys, "
			    "or choose another label", p->token_label,
			    labels[i]);
	}
	tmpl.type = CKA_ID;
	tmpl.pValue = (void *)id;
	tmpl.ulValueLen = id_len;
	if ((rv = p11_find(p, &tmpl, 1, &found, 1, &count)) != CKR_OK)
		return p11_fail(p, rv, e, "looking for existing keys");
	if (count > 0)
		return err_set(e, ERR_EXISTS, "token '%s' already has an "
		    "object with the CKA_ID for the new keys: use the "
		    "existing keys, or another id", p->token_label);
	return 0;
}

/*
 * Generates one key pair on the token, with CKA_TOKEN, CKA_PRIVATE and
 * CKA_SENSITIVE true and CKA_EXTRACTABLE false set explicitly (SoftHSM and
 * others default CKA_SENSITIVE to false), and the private key allowed only
 * its one use.  rsa selects an RSA-2048 encryption key; otherwise sig
 * selects a P-256 signing key, else a P-256 ECDH key.  Returns the CK_RV.
 */
static CK_RV
p11_generate_pair(struct p11_token *p, const char *label, const uint8_t *id,
    size_t id_len, int sig, int rsa, CK_OBJECT_HANDLE *pub,
    CK_OBJECT_HANDLE *priv)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = P11_RSA_BITS;
	CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM mech = { rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN :
	    CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ULONG label_len = strlen(label);
	CK_ATTRIBUTE pub_tmpl[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, label_len },
		{ CKA_ID, (void *)id, id_len },
		/* No usage flags on public keys: they protect nothing, and
		 * tpm2-pkcs11 refuses any that differ from its own choice. */
		/* Last: the curve for EC, size and exponent for RSA. */
		{ CKA_EC_PARAMS, (void *)p11_p256_oid, sizeof(p11_p256_oid) },
		{ CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) },
	};
	CK_ULONG pub_n = sizeof(pub_tmpl) / sizeof(pub_tmpl[0]) - 1;
	CK_ATTRIBUTE priv_tmpl[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, label_len },
		{ CKA_ID, (void *)id, id_len },
		{ CKA_SIGN, sig ? &yes : &no, sizeof(yes) },
		{ CKA_DERIVE, (!sig && !rsa) ? &yes : &no, sizeof(yes) },
		{ CKA_DECRYPT, rsa ? &yes : &no, sizeof(yes) },
		{ CKA_UNWRAP, &no, sizeof(no) },
	};

	if (rsa) {
		pub_tmpl[pub_n - 1].type = CKA_MODULUS_BITS;
		pub_tmpl[pub_n - 1].pValue = &bits;
		pub_tmpl[pub_n - 1].ulValueLen = sizeof(bits);
		pub_n++;
	}
	return p->module->C_GenerateKeyPair(p->session, &mech, pub_tmpl,
	    pub_n, priv_tmpl, sizeof(priv_tmpl) / sizeof(priv_tmpl[0]), pub,
	    priv);
}

/* The new signing key signs digest, and the signature verifies under
 * its public key. */
static int
p11_self_test_sign(struct p11_token *p,
    const uint8_t digest[CRYPTO_SHA256_LEN], struct err_ctx *inner)
{
	struct token *t = &p->base;
	uint8_t sig[CRYPTO_ECDSA_SIG_LEN];
	EVP_PKEY *pub = NULL;
	int r;

	if ((r = crypto_spki_import(p->sig.spki, p->sig.spki_len, &pub,
	    inner)) != 0 ||
	    (r = t->ops->sign_digest(t, digest, sig, inner)) != 0)
		goto out;
	if ((r = crypto_ecdsa_verify(pub, digest, sig)) != 0)
		err_set(inner, r, "its signature does not verify");
 out:
	EVP_PKEY_free(pub);
	return r;
}

/* ECDH of the new encryption key (public key pub) with a fresh software
 * key gives what software ECDH gives. */
static int
p11_self_test_ecdh(struct p11_token *p, EVP_PKEY *pub,
    struct err_ctx *inner)
{
	struct token *t = &p->base;
	uint8_t peer[CRYPTO_P256_POINT_LEN], secret[32], want[32];
	EVP_PKEY *eph = NULL;
	int r = ERR_INTERNAL;

	if ((r = crypto_ec_generate(&eph)) != 0 ||
	    (r = crypto_ec_point_get(eph, peer)) != 0 ||
	    (r = crypto_ecdh(eph, pub, want)) != 0) {
		err_set(inner, r, "software ECDH failed");
		goto out;
	}
	if ((r = t->ops->ecdh(t, peer, secret, inner)) != 0)
		goto out;
	if (crypto_memeq_ct(secret, want, sizeof(want)) != 0) {
		r = err_set(inner, ERR_CRYPTO, "its ECDH result differs from "
		    "software ECDH");
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(secret, sizeof(secret));
	crypto_wipe(want, sizeof(want));
	EVP_PKEY_free(eph);
	return r;
}

/* The new encryption key (public key pub) decrypts what software
 * RSA-OAEP-SHA256 encrypted of plain. */
static int
p11_self_test_rsa(struct p11_token *p, EVP_PKEY *pub,
    const uint8_t plain[32], struct err_ctx *inner)
{
	struct token *t = &p->base;
	uint8_t *ct = NULL, pt[64];
	size_t ct_len = 0, pt_len = 0;
	int r = ERR_INTERNAL;

	if ((r = crypto_rsa_oaep_encrypt(pub, plain, 32, &ct,
	    &ct_len)) != 0) {
		err_set(inner, r, "software RSA-OAEP failed");
		goto out;
	}
	if ((r = t->ops->rsa_decrypt(t, ct, ct_len, pt, sizeof(pt), &pt_len,
	    inner)) != 0)
		goto out;
	if (pt_len != 32 || crypto_memeq_ct(pt, plain, 32) != 0) {
		r = err_set(inner, ERR_CRYPTO, "its RSA-OAEP result is wrong");
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(pt, sizeof(pt));
	free(ct);
	return r;
}

/* The new encryption key works: ECDH or RSA-OAEP, by its type. */
static int
p11_self_test_enc(struct p11_token *p, const uint8_t plain[32],
    struct err_ctx *inner)
{
	EVP_PKEY *pub = NULL;
	int r;

	if ((r = crypto_spki_import(p->enc.spki, p->enc.spki_len, &pub,
	    inner)) != 0)
		return r;
	if (p->enc.type == CKK_EC)
		r = p11_self_test_ecdh(p, pub, inner);
	else
		r = p11_self_test_rsa(p, pub, plain, inner);
	EVP_PKEY_free(pub);
	return r;
}

/*
 * The error of a failed self-test, r with the sentence in inner, into e:
 * a token gone and PIN trouble as they are, anything else as new keys
 * that failed and were removed.  Returns the code.
 */
static int
p11_self_test_error(struct p11_token *p, int r, const struct err_ctx *inner,
    struct err_ctx *e)
{
	if (r == ERR_TOKEN_NOT_PRESENT || r == ERR_PIN_INCORRECT ||
	    r == ERR_PIN_LOCKED)
		return err_wrap(e, r, "%s", err_msg(inner));
	if (p->opt.sig_only)
		return err_wrap(e, r == ERR_UNSUPPORTED ? ERR_UNSUPPORTED :
		    ERR_TOKEN, "token '%s': the new signing key failed its "
		    "self-test and was removed: %s", p->token_label,
		    err_msg(inner));
	return err_wrap(e, r == ERR_UNSUPPORTED ? ERR_UNSUPPORTED :
	    ERR_TOKEN, "token '%s': the new %s keys failed their "
	    "self-test and were removed: %s", p->token_label,
	    token_enc_alg_name(p->base.enc_alg), err_msg(inner));
}

/*
 * Proves that new keys work before they are accepted: a signature that
 * verifies and (unless opt.sig_only) an ECDH equal to software ECDH, or
 * an RSA-OAEP-SHA256 round trip.  Tokens that list a mechanism but not
 * with devid's parameters (SoftHSM 2.6 does OAEP only with SHA-1) are
 * caught here rather than when the first message arrives.
 */
static int
p11_self_test(struct p11_token *p, struct err_ctx *e)
{
	uint8_t digest[CRYPTO_SHA256_LEN], plain[32];
	struct err_ctx inner;
	int r = ERR_INTERNAL;

	err_clear(&inner);
	if (crypto_random(digest, sizeof(digest)) != 0 ||
	    crypto_random(plain, sizeof(plain)) != 0) {
		r = err_set(e, ERR_CRYPTO, "no random bytes");
		goto out;
	}
	if ((r = p11_self_test_sign(p, digest, &inner)) != 0 ||
	    (!p->opt.sig_only &&
	    (r = p11_self_test_enc(p, plain, &inner)) != 0))
		r = p11_self_test_error(p, r, &inner, e);
 out:
	crypto_wipe(plain, sizeof(plain));
	return r;
}

/*
 * What p11_create_keys() makes on p's token: the signing key and (unless
 * opt.sig_only) an encryption key for *alg, which becomes the algorithm
 * chosen (*rsa: 1 for RSA-OAEP).  Opens the session.  ERR_UNSUPPORTED
 * when the token cannot hold devid keys.
 */
static int
p11_create_choose(struct p11_token *p, enum token_enc_alg *alg, int *rsa,
    struct err_ctx *e)
{
	int r;

	*rsa = 0;
	if (p->opt.sig_only && *alg != TOKEN_ENC_NONE)
		return err_set(e, ERR_INVALID_ARG, "token '%s': an %s "
		    "encryption key was asked for, but the token is used for "
		    "its signing key only", p->token_label,
		    token_enc_alg_name(*alg));
	if ((r = p11_ensure_session(p, e)) != 0)
		return r;
	if (!p11_has_mech(p, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR) ||
	    !p11_has_mech(p, CKM_ECDSA, CKF_SIGN))
		return err_set(e, ERR_UNSUPPORTED, "token '%s' cannot hold a "
		    "devid signing key: it lacks CKM_EC_KEY_PAIR_GEN or "
		    "CKM_ECDSA", p->token_label);
	if (!p->opt.sig_only) {
		if ((r = p11_choose_enc(p, *alg, alg, e)) != 0)
			return r;
		*rsa = *alg == TOKEN_ENC_RSA_OAEP;
	}
	return 0;
}

/* The CKA_ID of new keys into id (P11_ID_MAX bytes): the URI's id, or
 * P11_NEW_ID_LEN random bytes. */
static int
p11_new_key_id(struct p11_token *p, uint8_t id[P11_ID_MAX], size_t *id_len,
    struct err_ctx *e)
{
	if (p->uri->id_len > 0) {
		memcpy(id, p->uri->id, p->uri->id_len);
		*id_len = p->uri->id_len;
		return 0;
	}
	*id_len = P11_NEW_ID_LEN;
	if (crypto_random(id, *id_len) != 0)
		return err_set(e, ERR_CRYPTO, "no random bytes for the key id");
	return 0;
}

/*
 * Generates the signing pair labelled sig_label into h[0] (public) and
 * h[1] (private) and, unless enc_label is NULL, the encryption pair (RSA
 * when rsa) into h[2] and h[3], all with id.  The caller destroys the
 * handles that are set when anything fails.
 */
static int
p11_generate_keys(struct p11_token *p, const char *sig_label,
    const char *enc_label, const uint8_t *id, size_t id_len, int rsa,
    CK_OBJECT_HANDLE h[4], struct err_ctx *e)
{
	char num[32];
	CK_RV rv;

	if ((rv = p11_generate_pair(p, sig_label, id, id_len, 1, 0, &h[0],
	    &h[1])) == CKR_OK &&
	    (enc_label == NULL || (rv = p11_generate_pair(p, enc_label, id,
	    id_len, 0, rsa, &h[2], &h[3])) == CKR_OK))
		return 0;
	if (p11_rv_is_loss(rv))
		return p11_fail(p, rv, e, "key generation");
	return err_set(e, p11_rv_err(rv), "token '%s': generating the %s key "
	    "failed (%s)", p->token_label,
	    h[1] == CK_INVALID_HANDLE ? "signing" : "encryption",
	    p11_rv_text(rv, num, sizeof(num)));
}

/*
 * token_ops.create_keys: generates the signing key and the encryption key
 * for alg (or opt.enc_alg, or the token's best), or with opt.sig_only the
 * signing key alone, reads back and checks what the token made, and runs
 * the self-test.  Keys that fail on the way are destroyed; on failure the
 * token has no usable keys (keys_ready stays 0).
 */
int
p11_create_keys(struct token *t, enum token_enc_alg alg, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	struct p11_key sig, enc;
	CK_OBJECT_HANDLE h[4] = { CK_INVALID_HANDLE, CK_INVALID_HANDLE,
	    CK_INVALID_HANDLE, CK_INVALID_HANDLE };
	uint8_t id[P11_ID_MAX];
	size_t id_len = 0, i;
	int r = ERR_INTERNAL, rsa = 0, sig_only = p->opt.sig_only;

	memset(&sig, 0, sizeof(sig));
	memset(&enc, 0, sizeof(enc));
	memset(id, 0, sizeof(id));
	if (alg == TOKEN_ENC_NONE)
		alg = p->opt.enc_alg;
	if ((r = p11_create_choose(p, &alg, &rsa, e)) != 0 ||
	    (r = p11_new_key_id(p, id, &id_len, e)) != 0)
		goto out;
	snprintf(sig.label, sizeof(sig.label), "%s-sig", p->label_base);
	if (!sig_only)
		snprintf(enc.label, sizeof(enc.label), "%s-enc",
		    p->label_base);
	if ((r = p11_check_free(p, sig.label, sig_only ? NULL : enc.label,
	    id, id_len, e)) != 0 ||
	    (r = p11_generate_keys(p, sig.label, sig_only ? NULL : enc.label,
	    id, id_len, rsa, h, e)) != 0)
		goto out;
	/* Read back what the token made: a key that fails is destroyed. */
	if ((r = p11_key_load(p, &sig, h[1], 1, e)) != 0 ||
	    (!sig_only && (r = p11_key_load(p, &enc, h[3], 0, e)) != 0))
		goto out;
	p11_keys_adopt(p, &sig, &enc);
	if ((r = p11_self_test(p, e)) != 0) {
		p11_key_clear(&p->sig);
		p11_key_clear(&p->enc);
		p->keys_ready = 0;
		p->base.enc_alg = TOKEN_ENC_NONE;
		goto out;
	}
	r = 0;
 out:
	if (r != 0) {
		for (i = 0; i < 4; i++)
			if (h[i] != CK_INVALID_HANDLE)
				(void)p->module->C_DestroyObject(p->session,
				    h[i]);
	}
	crypto_wipe(id, sizeof(id));
	p11_key_clear(&sig);
	p11_key_clear(&enc);
	return r;
}
