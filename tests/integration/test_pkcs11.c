/*
 * test_pkcs11.c - the PKCS#11 backend against real SoftHSM2 tokens.
 *
 * Run by test-pkcs11.sh, which creates the throwaway tokens and calls this
 * program three times, each a new process:
 *
 *   test_pkcs11 create   generate keys on "devid" (chosen: hpke-p256);
 *                        force rsa-oaep-sha256 on "devrsa" (refused by
 *                        the self-test: SoftHSM 2.6 does OAEP with SHA-1
 *                        only); refuse keys that could be exported; a
 *                        signing key alone (sig_only) on "devsig", and
 *                        nothing else on that token;
 *   test_pkcs11 use      open the keys again, sign, ECDH, HPKE, RSA-OAEP
 *                        with "existing" keys made on "devrsa" the way a
 *                        card's own tool would, non-exportability, lookup
 *                        by id, reconnection after the sessions were
 *                        closed, wrong PIN; the signing key alone again,
 *                        by label and by id;
 *   test_pkcs11 loss     the token goes away: ERR_TOKEN_NOT_PRESENT.
 *
 * Environment: SOFTHSM2_MODULE (the module file), SOFTHSM2_CONF, and
 * P11_TEST_DIR (the tokens' directory, which holds the PIN file "pin" and
 * receives the exported public keys and signatures for OpenSSL to check).
 */
#include "config.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "crypto.h"
#include "hpke.h"
#include "p11-token.h"
#include "token.h"

#define PIN "1234"
#define TOKEN_EC "devid"
#define TOKEN_RSA "devrsa"
#define TOKEN_PIN "devpin"
#define TOKEN_SIG "devsig"

static const char *module_path;
static const char *test_dir;
/* The module raw_open() loads: SoftHSM, or tpm2-pkcs11 in the tpm modes. */
static const char *raw_module;

/* --- helpers --- */

static void
path_in_dir(char *out, size_t out_len, const char *name)
{
	snprintf(out, out_len, "%s/%s", test_dir, name);
}

static void
save_file(const char *name, const uint8_t *p, size_t len)
{
	char path[1024];
	FILE *f;

	path_in_dir(path, sizeof(path), name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(p, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *
load_file(const char *name, size_t *len)
{
	char path[1024];
	uint8_t *p;
	FILE *f;
	long n;

	path_in_dir(path, sizeof(path), name);
	assert_non_null(f = fopen(path, "rb"));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0 && n < 65536);
	rewind(f);
	assert_non_null(p = malloc((size_t)n));
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* A URI for token label with the module by path and the PIN by value. */
static void
uri_by_path(char *out, size_t out_len, const char *label, const char *obj,
    const char *pin)
{
	snprintf(out, out_len, "pkcs11:token=%s%s%s?module-path=%s"
	    "&pin-value=%s", label, obj != NULL ? ";object=" : "",
	    obj != NULL ? obj : "", module_path, pin);
}

static struct token *
open_token(const char *uri, const struct p11_options *opt)
{
	struct token *t = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (p11_token_new(uri, opt, &t, &e) != 0)
		fail_msg("p11_token_new: %s", err_msg(&e));
	assert_non_null(t);
	return t;
}

static struct token *
open_keys(const char *uri)
{
	struct token *t = open_token(uri, NULL);
	struct err_ctx e;

	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys: %s", err_msg(&e));
	return t;
}

static EVP_PKEY *
public_pkey(struct token *t, enum token_key which)
{
	uint8_t *spki = NULL;
	size_t spki_len = 0;
	EVP_PKEY *pkey = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(token_public_key(t, which, &spki, &spki_len, &e), 0);
	assert_int_equal(crypto_spki_import(spki, spki_len, &pkey, &e), 0);
	free(spki);
	return pkey;
}

static void
assert_public_equals_file(struct token *t, enum token_key which,
    const char *name)
{
	uint8_t *spki = NULL, *saved;
	size_t spki_len = 0, saved_len;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(token_public_key(t, which, &spki, &spki_len, &e), 0);
	saved = load_file(name, &saved_len);
	assert_int_equal(spki_len, saved_len);
	assert_memory_equal(spki, saved, saved_len);
	free(spki);
	free(saved);
}

static void
sign_and_verify(struct token *t, const char *text)
{
	uint8_t digest[32], sig[64];
	EVP_PKEY *pub = public_pkey(t, TOKEN_KEY_SIG);
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_sha256(text, strlen(text), digest), 0);
	if (token_sign_digest(t, digest, sig, &e) != 0)
		fail_msg("sign: %s", err_msg(&e));
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), 0);
	/* And not for another digest. */
	digest[0] ^= 1;
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig),
	    ERR_SIGNATURE);
	EVP_PKEY_free(pub);
}

/* --- the module without the backend, for independent checks --- */

struct raw {
	void *dl;
	CK_FUNCTION_LIST *f;
	int initialized_here;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
};

static void
raw_open(struct raw *r, const char *label, int login)
{
	CK_C_GetFunctionList gfl;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int found = 0;

	memset(r, 0, sizeof(*r));
	assert_non_null(r->dl = dlopen(raw_module, RTLD_NOW | RTLD_LOCAL));
	assert_non_null(gfl = (CK_C_GetFunctionList)dlsym(r->dl,
	    "C_GetFunctionList"));
	assert_int_equal(gfl(&r->f), CKR_OK);
	rv = r->f->C_Initialize(NULL);
	assert_true(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
	r->initialized_here = rv == CKR_OK;
	assert_int_equal(r->f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n; i++) {
		if (r->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (memcmp(ti.label, label, strlen(label)) == 0 &&
		    ti.label[strlen(label)] == ' ') {
			r->slot = slots[i];
			found = 1;
		}
	}
	assert_true(found);
	if (!login)
		return;
	assert_int_equal(r->f->C_OpenSession(r->slot, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &r->s), CKR_OK);
	rv = r->f->C_Login(r->s, CKU_USER, (CK_UTF8CHAR_PTR)PIN, 4);
	assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

static void
raw_close(struct raw *r)
{
	if (r->s != 0)
		r->f->C_CloseSession(r->s);
	if (r->initialized_here)
		r->f->C_Finalize(NULL);
	dlclose(r->dl);
}

static CK_OBJECT_HANDLE
raw_find(struct raw *r, CK_OBJECT_CLASS cls, const char *label)
{
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;

	assert_int_equal(r->f->C_FindObjectsInit(r->s, tmpl, 2), CKR_OK);
	assert_int_equal(r->f->C_FindObjects(r->s, h, 2, &n), CKR_OK);
	assert_int_equal(r->f->C_FindObjectsFinal(r->s), CKR_OK);
	assert_int_equal(n, 1);
	return h[0];
}

/* An EC key pair in the session, or on the token with the given label
 * and CKA_ID "card". */
static void
raw_ec_pair(struct raw *r, const char *label, CK_BBOOL on_token,
    CK_BBOOL sensitive, CK_BBOOL extractable, CK_BBOOL sign,
    CK_BBOOL always_auth, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	static const uint8_t oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	    0x3d, 0x03, 0x01, 0x07 };
	CK_BBOOL yes = CK_TRUE, derive = !sign;
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pt[] = {
		{ CKA_TOKEN, &on_token, sizeof(on_token) },
		{ CKA_EC_PARAMS, (void *)oid, sizeof(oid) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, "card", 4 },
	};
	CK_ATTRIBUTE kt[] = {
		{ CKA_TOKEN, &on_token, sizeof(on_token) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &sensitive, sizeof(sensitive) },
		{ CKA_EXTRACTABLE, &extractable, sizeof(extractable) },
		{ CKA_SIGN, &sign, sizeof(sign) },
		{ CKA_DERIVE, &derive, sizeof(derive) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, "card", 4 },
		{ CKA_ALWAYS_AUTHENTICATE, &always_auth, sizeof(always_auth) },
	};

	assert_int_equal(r->f->C_GenerateKeyPair(r->s, &mech, pt, 4, kt, 9,
	    pub, priv), CKR_OK);
}

/* A non-exportable RSA-2048 decryption key on the token, the way a card's
 * own tool makes one. */
static void
raw_rsa_pair(struct raw *r, const char *label)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 2048;
	CK_BYTE exp[] = { 1, 0, 1 };
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pt[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, "card", 4 },
	};
	CK_ATTRIBUTE kt[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, "card", 4 },
	};
	CK_OBJECT_HANDLE pub, priv;

	assert_int_equal(r->f->C_GenerateKeyPair(r->s, &mech, pt, 6, kt, 7,
	    &pub, &priv), CKR_OK);
}

/* How many objects carry label. */
static CK_ULONG
raw_count(struct raw *r, const char *label)
{
	CK_ATTRIBUTE tmpl = { CKA_LABEL, (void *)label, strlen(label) };
	CK_OBJECT_HANDLE h[4];
	CK_ULONG n = 0;

	assert_int_equal(r->f->C_FindObjectsInit(r->s, &tmpl, 1), CKR_OK);
	assert_int_equal(r->f->C_FindObjects(r->s, h, 4, &n), CKR_OK);
	assert_int_equal(r->f->C_FindObjectsFinal(r->s), CKR_OK);
	return n;
}

/*
 * The private key labelled label can be neither read nor wrapped, while
 * the same wrapping key does wrap an extractable key: the refusal is the
 * key's attributes, not a missing mechanism.
 */
static void
assert_not_exportable(struct raw *r, const char *label, CK_KEY_TYPE type)
{
	CK_OBJECT_HANDLE key = raw_find(r, CKO_PRIVATE_KEY, label);
	CK_OBJECT_HANDLE wrapper, ctl_pub, ctl_priv;
	CK_ULONG aes_len = 32, wrapped_len;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE, flag;
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM wrap = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_ATTRIBUTE aes[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VALUE_LEN, &aes_len, sizeof(aes_len) },
		{ CKA_WRAP, &yes, sizeof(yes) },
	};
	uint8_t buf[4096];
	CK_ATTRIBUTE get = { CKA_VALUE, buf, sizeof(buf) };
	CK_ATTRIBUTE get_b = { 0, &flag, sizeof(flag) };
	CK_RV rv;

	/* The secret value is not readable. */
	rv = r->f->C_GetAttributeValue(r->s, key, &get, 1);
	assert_true(rv != CKR_OK ||
	    get.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	if (type == CKK_RSA) {
		get.type = CKA_PRIVATE_EXPONENT;
		get.ulValueLen = sizeof(buf);
		rv = r->f->C_GetAttributeValue(r->s, key, &get, 1);
		assert_true(rv != CKR_OK ||
		    get.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	}
	/* The token says it never was. */
	get_b.type = CKA_ALWAYS_SENSITIVE;
	assert_int_equal(r->f->C_GetAttributeValue(r->s, key, &get_b, 1),
	    CKR_OK);
	assert_int_equal(flag, CK_TRUE);
	get_b.type = CKA_NEVER_EXTRACTABLE;
	assert_int_equal(r->f->C_GetAttributeValue(r->s, key, &get_b, 1),
	    CKR_OK);
	assert_int_equal(flag, CK_TRUE);

	/* Wrapping is refused. */
	assert_int_equal(r->f->C_GenerateKey(r->s, &gen, aes, 3, &wrapper),
	    CKR_OK);
	wrapped_len = sizeof(buf);
	rv = r->f->C_WrapKey(r->s, &wrap, wrapper, key, buf, &wrapped_len);
	assert_int_not_equal(rv, CKR_OK);
	/* Control: an extractable session key wraps fine. */
	raw_ec_pair(r, "control", CK_FALSE, CK_FALSE, CK_TRUE, CK_TRUE,
	    CK_FALSE, &ctl_pub, &ctl_priv);
	wrapped_len = sizeof(buf);
	assert_int_equal(r->f->C_WrapKey(r->s, &wrap, wrapper, ctl_priv, buf,
	    &wrapped_len), CKR_OK);
	assert_true(wrapped_len > 32);
	r->f->C_DestroyObject(r->s, ctl_pub);
	r->f->C_DestroyObject(r->s, ctl_priv);
	r->f->C_DestroyObject(r->s, wrapper);
}

/* --- create --- */

static void
test_create_hpke(void **state)
{
	char uri[2048];
	struct token *t;
	struct token_desc d;
	struct err_ctx e;
	uint8_t *spki;
	size_t spki_len;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_token(uri, NULL);
	err_clear(&e);
	/* Nothing yet to use. */
	assert_int_equal(token_open_keys(t, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "devid-sig"));
	err_clear(&e);
	if (token_create_keys(t, TOKEN_ENC_NONE, &e) != 0)
		fail_msg("create_keys: %s", err_msg(&e));
	/* SoftHSM offers CKM_ECDH1_DERIVE: the preferred algorithm. */
	assert_int_equal(t->enc_alg, TOKEN_ENC_HPKE_P256);
	assert_int_equal(t->stats.logins, 1);

	assert_int_equal(token_describe(t, &d, &e), 0);
	assert_string_equal(d.backend, "pkcs11");
	assert_string_equal(d.token, TOKEN_EC);
	assert_int_equal(d.enc_alg, TOKEN_ENC_HPKE_P256);
	assert_non_null(strstr(d.sig_ref, "object=devid-sig"));
	assert_non_null(strstr(d.enc_ref, "object=devid-enc"));
	assert_non_null(strstr(d.sig_ref, "token=devid"));
	assert_null(strstr(d.sig_ref, "pin-value"));
	assert_non_null(strstr(d.sig_attrs, "always-sensitive"));
	assert_non_null(strstr(d.sig_attrs, "never-extractable"));
	assert_non_null(strstr(d.enc_attrs, "never-extractable"));

	assert_int_equal(token_public_key(t, TOKEN_KEY_SIG, &spki, &spki_len,
	    &e), 0);
	save_file("sig.der", spki, spki_len);
	free(spki);
	assert_int_equal(token_public_key(t, TOKEN_KEY_ENC, &spki, &spki_len,
	    &e), 0);
	save_file("enc.der", spki, spki_len);
	free(spki);
	sign_and_verify(t, "fresh key");

	/* A second set under the same labels is refused. */
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_NONE, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "devid-sig"));
	token_close(t);
}

/*
 * rsa-oaep-sha256 forced on a token that lists CKM_RSA_PKCS_OAEP: SoftHSM
 * 2.6 does OAEP only with SHA-1, and the self-test of create_keys must
 * catch that, say so, and leave nothing behind.
 */
static void
test_create_rsa(void **state)
{
	char uri[2048];
	struct token *t;
	struct raw r;
	struct err_ctx e;
	uint8_t *spki = NULL;
	size_t spki_len = 0;

	uri_by_path(uri, sizeof(uri), TOKEN_RSA, NULL, PIN);
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_RSA_OAEP, &e),
	    ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "token 'devrsa'"));
	assert_non_null(strstr(e.msg, "rsa-oaep-sha256"));
	assert_non_null(strstr(e.msg, "SHA-256"));
	assert_non_null(strstr(e.msg, "removed"));
	assert_int_equal(t->enc_alg, TOKEN_ENC_NONE);
	err_clear(&e);
	assert_int_equal(token_public_key(t, TOKEN_KEY_SIG, &spki, &spki_len,
	    &e), ERR_INVALID_ARG);

	raw_open(&r, TOKEN_RSA, 1);
	assert_int_equal(raw_count(&r, "devid-sig"), 0);
	assert_int_equal(raw_count(&r, "devid-enc"), 0);
	raw_close(&r);
	token_close(t);
}

/*
 * Keys made by a card's own tools ("use existing keys") on "devrsa": an EC
 * signing key "card-sig" and an RSA decryption key "card-enc".  Each test
 * that uses them calls this first: they are made on the first call and
 * found on the next (in this process or a later one), so that no test
 * depends on another having run.  A token holding only one of the two is
 * a failure.  A caller with a backend token open opens it first, so that
 * the module stays initialised by p11-kit.
 */
static void
existing_card_keys(void)
{
	CK_OBJECT_HANDLE pub, priv;
	CK_ULONG n_sig, n_enc;
	struct raw r;

	raw_open(&r, TOKEN_RSA, 1);
	n_sig = raw_count(&r, "card-sig");
	n_enc = raw_count(&r, "card-enc");
	if (n_sig == 0 && n_enc == 0) {
		raw_ec_pair(&r, "card-sig", CK_TRUE, CK_TRUE, CK_FALSE,
		    CK_TRUE, CK_FALSE, &pub, &priv);
		raw_rsa_pair(&r, "card-enc");
	} else if (n_sig != 2 || n_enc != 2) {
		fail_msg("token '%s' holds %lu card-sig and %lu card-enc "
		    "objects, not a pair of each", TOKEN_RSA,
		    (unsigned long)n_sig, (unsigned long)n_enc);
	}
	raw_close(&r);
}

/*
 * The same for "auth-sig" (a signing key that wants the PIN for every
 * signature) and "auth-enc" on "devid".
 */
static void
existing_auth_keys(void)
{
	CK_OBJECT_HANDLE pub, priv;
	CK_ULONG n_sig, n_enc;
	struct raw r;

	raw_open(&r, TOKEN_EC, 1);
	n_sig = raw_count(&r, "auth-sig");
	n_enc = raw_count(&r, "auth-enc");
	if (n_sig == 0 && n_enc == 0) {
		raw_ec_pair(&r, "auth-sig", CK_TRUE, CK_TRUE, CK_FALSE,
		    CK_TRUE, CK_TRUE, &pub, &priv);
		raw_ec_pair(&r, "auth-enc", CK_TRUE, CK_TRUE, CK_FALSE,
		    CK_FALSE, CK_FALSE, &pub, &priv);
	} else if (n_sig != 2 || n_enc != 2) {
		fail_msg("token '%s' holds %lu auth-sig and %lu auth-enc "
		    "objects, not a pair of each", TOKEN_EC,
		    (unsigned long)n_sig, (unsigned long)n_enc);
	}
	raw_close(&r);
}

/* Replaces the public-key object of label by one whose CKA_EC_POINT is
 * the raw point, as some modules store it; returns that point. */
static void
raw_public_to_raw_point(struct raw *r, const char *label, uint8_t point[65])
{
	static const uint8_t oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	    0x3d, 0x03, 0x01, 0x07 };
	CK_OBJECT_HANDLE pub = raw_find(r, CKO_PUBLIC_KEY, label), fresh;
	uint8_t der[80];
	CK_ATTRIBUTE get = { CKA_EC_POINT, der, sizeof(der) };
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, "card", 4 },
		{ CKA_EC_PARAMS, (void *)oid, sizeof(oid) },
		{ CKA_EC_POINT, point, 65 },
	};

	assert_int_equal(r->f->C_GetAttributeValue(r->s, pub, &get, 1),
	    CKR_OK);
	/* SoftHSM wraps it in DER: 04 41 04 X Y. */
	assert_int_equal(get.ulValueLen, 67);
	assert_int_equal(der[0], 0x04);
	memcpy(point, der + 2, 65);
	assert_int_equal(r->f->C_DestroyObject(r->s, pub), CKR_OK);
	assert_int_equal(r->f->C_CreateObject(r->s, tmpl, 7, &fresh), CKR_OK);
	get.ulValueLen = sizeof(der);
	assert_int_equal(r->f->C_GetAttributeValue(r->s, fresh, &get, 1),
	    CKR_OK);
	assert_int_equal(get.ulValueLen, 65);
}

/* CKA_EC_POINT given raw instead of DER-wrapped is read the same way. */
static void
test_raw_ec_point(void **state)
{
	CK_OBJECT_HANDLE pub, priv;
	uint8_t sig_point[65], enc_point[65], got[65], peer[65];
	uint8_t in_token[32], in_software[32];
	EVP_PKEY *pkey, *sw = NULL;
	char uri[2048];
	struct token *t;
	struct raw r;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, "rawpt", PIN);
	t = open_token(uri, NULL);
	raw_open(&r, TOKEN_EC, 1);
	raw_ec_pair(&r, "rawpt-sig", CK_TRUE, CK_TRUE, CK_FALSE, CK_TRUE,
	    CK_FALSE, &pub, &priv);
	raw_ec_pair(&r, "rawpt-enc", CK_TRUE, CK_TRUE, CK_FALSE, CK_FALSE,
	    CK_FALSE, &pub, &priv);
	raw_public_to_raw_point(&r, "rawpt-sig", sig_point);
	raw_public_to_raw_point(&r, "rawpt-enc", enc_point);

	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys: %s", err_msg(&e));
	pkey = public_pkey(t, TOKEN_KEY_SIG);
	assert_int_equal(crypto_ec_point_get(pkey, got), 0);
	assert_memory_equal(got, sig_point, 65);
	EVP_PKEY_free(pkey);
	pkey = public_pkey(t, TOKEN_KEY_ENC);
	assert_int_equal(crypto_ec_point_get(pkey, got), 0);
	assert_memory_equal(got, enc_point, 65);
	/* And they are the private keys' partners. */
	sign_and_verify(t, "raw point");
	assert_int_equal(crypto_ec_generate(&sw), 0);
	assert_int_equal(crypto_ec_point_get(sw, peer), 0);
	assert_int_equal(token_ecdh(t, peer, in_token, &e), 0);
	assert_int_equal(crypto_ecdh(sw, pkey, in_software), 0);
	assert_memory_equal(in_token, in_software, 32);
	EVP_PKEY_free(pkey);
	EVP_PKEY_free(sw);
	raw_close(&r);
	token_close(t);
}

/* Keys made elsewhere that could have been exported are refused. */
static void
test_exportable_refused(void **state)
{
	struct raw r;
	CK_OBJECT_HANDLE h[4];
	char uri[2048];
	struct token *t;
	struct err_ctx e;
	size_t i;

	/* The backend first: the module stays initialised by p11-kit. */
	uri_by_path(uri, sizeof(uri), TOKEN_RSA, "weak", PIN);
	t = open_token(uri, NULL);

	raw_open(&r, TOKEN_RSA, 1);
	/* Sensitive now, but extractable once: CKA_NEVER_EXTRACTABLE false. */
	raw_ec_pair(&r, "weak-sig", CK_TRUE, CK_TRUE, CK_TRUE, CK_TRUE,
	    CK_FALSE, &h[0], &h[1]);
	raw_ec_pair(&r, "weak-enc", CK_TRUE, CK_TRUE, CK_FALSE, CK_FALSE,
	    CK_FALSE, &h[2], &h[3]);

	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_KEY_POLICY);
	assert_non_null(strstr(e.msg, "weak-sig"));
	assert_non_null(strstr(e.msg, "CKA_NEVER_EXTRACTABLE false"));
	assert_non_null(strstr(e.msg, "token 'devrsa'"));
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, (const uint8_t *)
	    "0123456789abcdef0123456789abcdef", (uint8_t[64]){ 0 }, &e),
	    ERR_INVALID_ARG);

	for (i = 0; i < 4; i++)
		assert_int_equal(r.f->C_DestroyObject(r.s, h[i]), CKR_OK);
	raw_close(&r);
	token_close(t);
}

/* --- the signing key alone (sig_only), on its own token --- */

static struct token *
open_sig_only(const char *uri)
{
	struct p11_options opt;

	memset(&opt, 0, sizeof(opt));
	opt.sig_only = 1;
	return open_token(uri, &opt);
}

/*
 * Every operation that needs the encryption key is refused with
 * ERR_UNSUPPORTED and a message that says why, and never reaches the
 * token.
 */
static void
assert_enc_refused(struct token *t)
{
	uint8_t *spki = NULL, peer[65], dh[32], ct[256] = { 0 }, pt[64];
	size_t spki_len = 0, pt_len = 0;
	EVP_PKEY *sw = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(token_public_key(t, TOKEN_KEY_ENC, &spki, &spki_len,
	    &e), ERR_UNSUPPORTED);
	assert_null(spki);
	assert_non_null(strstr(e.msg, "signing key only"));
	assert_int_equal(crypto_ec_generate(&sw), 0);
	assert_int_equal(crypto_ec_point_get(sw, peer), 0);
	err_clear(&e);
	assert_int_equal(token_ecdh(t, peer, dh, &e), ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "ECDH needs the encryption key"));
	err_clear(&e);
	assert_int_equal(token_rsa_decrypt(t, ct, sizeof(ct), pt, sizeof(pt),
	    &pt_len, &e), ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "signing key only"));
	assert_int_equal(t->stats.ecdhs, 0);
	assert_int_equal(t->stats.decrypts, 0);
	EVP_PKEY_free(sw);
}

/*
 * Lists every object on the token (C_FindObjects with an empty template)
 * and checks that it holds exactly the pair of the signing key label: a
 * public key and a private key, the private one with the attributes devid
 * sets, and no encryption key under any label.
 */
static void
raw_assert_only_sig_pair(struct raw *r, const char *label)
{
	CK_OBJECT_HANDLE h[16];
	CK_ULONG n = 0, i;
	CK_OBJECT_CLASS cls;
	CK_BBOOL tok, priv, sens, extr, sign, derive, decrypt;
	char got[64];
	CK_ATTRIBUTE a[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, got, sizeof(got) - 1 },
	};
	CK_ATTRIBUTE b[] = {
		{ CKA_TOKEN, &tok, sizeof(tok) },
		{ CKA_PRIVATE, &priv, sizeof(priv) },
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
		{ CKA_SIGN, &sign, sizeof(sign) },
		{ CKA_DERIVE, &derive, sizeof(derive) },
		{ CKA_DECRYPT, &decrypt, sizeof(decrypt) },
	};
	int pubs = 0, privs = 0;

	assert_int_equal(r->f->C_FindObjectsInit(r->s, NULL, 0), CKR_OK);
	assert_int_equal(r->f->C_FindObjects(r->s, h, 16, &n), CKR_OK);
	assert_int_equal(r->f->C_FindObjectsFinal(r->s), CKR_OK);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		memset(got, 0, sizeof(got));
		a[1].ulValueLen = sizeof(got) - 1;
		assert_int_equal(r->f->C_GetAttributeValue(r->s, h[i], a, 2),
		    CKR_OK);
		assert_null(strstr(got, "-enc"));
		assert_string_equal(got, label);
		if (cls == CKO_PUBLIC_KEY) {
			pubs++;
			continue;
		}
		assert_int_equal(cls, CKO_PRIVATE_KEY);
		privs++;
		assert_int_equal(r->f->C_GetAttributeValue(r->s, h[i], b, 7),
		    CKR_OK);
		assert_int_equal(tok, CK_TRUE);
		assert_int_equal(priv, CK_TRUE);
		assert_int_equal(sens, CK_TRUE);
		assert_int_equal(extr, CK_FALSE);
		assert_int_equal(sign, CK_TRUE);
		assert_int_equal(derive, CK_FALSE);
		assert_int_equal(decrypt, CK_FALSE);
	}
	assert_int_equal(pubs, 1);
	assert_int_equal(privs, 1);
}

/*
 * sig_only: create_keys makes the P-256 signing key and nothing else, and
 * every encryption-key operation is refused.
 */
static void
test_create_sig_only(void **state)
{
	char uri[2048];
	struct p11_options opt;
	struct token *t;
	struct token_desc d;
	struct raw r;
	struct err_ctx e;
	uint8_t *spki;
	size_t spki_len;

	uri_by_path(uri, sizeof(uri), TOKEN_SIG, "head", PIN);
	/* Asking for an encryption algorithm contradicts sig_only. */
	memset(&opt, 0, sizeof(opt));
	opt.sig_only = 1;
	opt.enc_alg = TOKEN_ENC_HPKE_P256;
	t = open_token(uri, &opt);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_NONE, &e),
	    ERR_INVALID_ARG);
	assert_non_null(strstr(e.msg, "hpke-p256"));
	token_close(t);

	t = open_sig_only(uri);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_RSA_OAEP, &e),
	    ERR_INVALID_ARG);
	err_clear(&e);
	/* Nothing yet: the message names the signing key only. */
	assert_int_equal(token_open_keys(t, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "head-sig"));
	/* Before any keys, too. */
	assert_enc_refused(t);
	err_clear(&e);
	if (token_create_keys(t, TOKEN_ENC_NONE, &e) != 0)
		fail_msg("create_keys (sig_only): %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_NONE);
	/* The self-test signed once; no ECDH or decryption was tried. */
	assert_int_equal(t->stats.signs, 1);

	assert_int_equal(token_describe(t, &d, &e), 0);
	assert_string_equal(d.backend, "pkcs11");
	assert_string_equal(d.token, TOKEN_SIG);
	assert_int_equal(d.enc_alg, TOKEN_ENC_NONE);
	assert_non_null(strstr(d.sig_ref, "object=head-sig"));
	assert_non_null(strstr(d.sig_ref, "id="));
	assert_string_equal(d.enc_ref, "");
	assert_string_equal(d.enc_attrs, "");
	assert_non_null(strstr(d.sig_attrs, "always-sensitive"));
	assert_non_null(strstr(d.sig_attrs, "never-extractable"));

	assert_int_equal(token_public_key(t, TOKEN_KEY_SIG, &spki, &spki_len,
	    &e), 0);
	save_file("sigonly.der", spki, spki_len);
	free(spki);
	sign_and_verify(t, "signing key alone");
	assert_enc_refused(t);

	/* A second key under the same label is refused. */
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_NONE, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "head-sig"));

	raw_open(&r, TOKEN_SIG, 1);
	raw_assert_only_sig_pair(&r, "head-sig");
	assert_not_exportable(&r, "head-sig", CKK_EC);
	raw_close(&r);
	token_close(t);
}

/* --- use (a new process) --- */

static void
test_reopen_and_sign(void **state)
{
	char uri[2048], pin_path[512];
	uint8_t digest[32], sig[64], *der = NULL;
	size_t der_len = 0, saved_len;
	uint8_t *saved;
	struct token *t;
	struct err_ctx e;
	EVP_PKEY *pub = NULL;
	const char *msg = "devid signing test";

	/* By registered module name and a PIN file this time. */
	path_in_dir(pin_path, sizeof(pin_path), "pin");
	snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=devid-sig"
	    "?module-name=softhsm2&pin-source=file:%s", TOKEN_EC, pin_path);
	t = open_keys(uri);
	assert_int_equal(t->enc_alg, TOKEN_ENC_HPKE_P256);
	assert_public_equals_file(t, TOKEN_KEY_SIG, "sig.der");
	assert_public_equals_file(t, TOKEN_KEY_ENC, "enc.der");

	/* Sign in the token; verify with OpenSSL and the exported key. */
	err_clear(&e);
	assert_int_equal(crypto_sha256(msg, strlen(msg), digest), 0);
	assert_int_equal(token_sign_digest(t, digest, sig, &e), 0);
	assert_int_equal(t->stats.signs, 1);
	saved = load_file("sig.der", &saved_len);
	assert_int_equal(crypto_spki_import(saved, saved_len, &pub, &e), 0);
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), 0);
	/* For `openssl pkeyutl -verify` in the script. */
	save_file("digest.bin", digest, sizeof(digest));
	assert_int_equal(crypto_ecdsa_raw_to_der(sig, &der, &der_len), 0);
	save_file("sig.bin", der, der_len);
	free(der);
	free(saved);
	EVP_PKEY_free(pub);

	/* Asking an EC token for RSA is a clear refusal. */
	err_clear(&e);
	{
		uint8_t ct[256] = { 0 }, pt[64];
		size_t pt_len;

		assert_int_equal(token_rsa_decrypt(t, ct, sizeof(ct), pt,
		    sizeof(pt), &pt_len, &e), ERR_UNSUPPORTED);
	}
	token_close(t);
}

static void
test_ecdh(void **state)
{
	char uri[2048];
	uint8_t peer[65], in_token[32], in_software[32];
	EVP_PKEY *sw = NULL, *enc_pub;
	struct token *t;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_keys(uri);
	enc_pub = public_pkey(t, TOKEN_KEY_ENC);
	assert_int_equal(crypto_ec_generate(&sw), 0);
	assert_int_equal(crypto_ec_point_get(sw, peer), 0);

	err_clear(&e);
	if (token_ecdh(t, peer, in_token, &e) != 0)
		fail_msg("ecdh: %s", err_msg(&e));
	assert_int_equal(crypto_ecdh(sw, enc_pub, in_software), 0);
	assert_memory_equal(in_token, in_software, 32);
	assert_int_equal(t->stats.ecdhs, 1);

	/* A point off the curve never reaches the token. */
	peer[64] ^= 1;
	err_clear(&e);
	assert_int_equal(token_ecdh(t, peer, in_token, &e), ERR_FORMAT);
	assert_int_equal(t->stats.ecdhs, 1);

	crypto_wipe(in_token, sizeof(in_token));
	crypto_wipe(in_software, sizeof(in_software));
	EVP_PKEY_free(sw);
	EVP_PKEY_free(enc_pub);
	token_close(t);
}

static void
test_hpke_through_token(void **state)
{
	static const uint8_t info[] = "devid-wrap-v1 test info";
	static const uint8_t aad[] = "header digest";
	char uri[2048];
	uint8_t pk_r[65], enc[65], key[32], ct[32 + 16], opened[32];
	struct hpke_ctx sender, recipient;
	EVP_PKEY *enc_pub;
	struct token *t;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_keys(uri);
	enc_pub = public_pkey(t, TOKEN_KEY_ENC);
	assert_int_equal(crypto_ec_point_get(enc_pub, pk_r), 0);
	assert_int_equal(crypto_random(key, sizeof(key)), 0);

	/* Seal in software to the token's public point. */
	err_clear(&e);
	assert_int_equal(hpke_setup_base_s(pk_r, info, sizeof(info), NULL, 0,
	    enc, &sender, &e), 0);
	assert_int_equal(hpke_seal(&sender, aad, sizeof(aad), key,
	    sizeof(key), ct), 0);
	hpke_ctx_wipe(&sender);

	/* Open with the DH step in the token. */
	if (hpke_setup_base_r(enc, pk_r, token_hpke_dh, t, info,
	    sizeof(info), &recipient, &e) != 0)
		fail_msg("setup_base_r: %s", err_msg(&e));
	assert_int_equal(hpke_open(&recipient, aad, sizeof(aad), ct,
	    sizeof(ct), opened), 0);
	assert_memory_equal(opened, key, sizeof(key));
	hpke_ctx_wipe(&recipient);

	/* Another ephemeral key gives another secret: the tag fails. */
	{
		EVP_PKEY *other = NULL;
		uint8_t other_enc[65];

		assert_int_equal(crypto_ec_generate(&other), 0);
		assert_int_equal(crypto_ec_point_get(other, other_enc), 0);
		assert_int_equal(hpke_setup_base_r(other_enc, pk_r,
		    token_hpke_dh, t, info, sizeof(info), &recipient, &e), 0);
		assert_int_equal(hpke_open(&recipient, aad, sizeof(aad), ct,
		    sizeof(ct), opened), ERR_DECRYPT);
		hpke_ctx_wipe(&recipient);
		EVP_PKEY_free(other);
	}
	assert_int_equal(t->stats.ecdhs, 2);
	crypto_wipe(key, sizeof(key));
	crypto_wipe(opened, sizeof(opened));
	EVP_PKEY_free(enc_pub);
	token_close(t);
}

static void
test_rsa_oaep(void **state)
{
	char uri[2048];
	uint8_t key[32], out[64], *ct = NULL, peer[65] = { 0x04 }, dh[32];
	size_t ct_len = 0, out_len = 0;
	struct p11_options opt;
	EVP_PKEY *pub;
	struct token *t;
	struct err_ctx e;
	int r;

	/* Existing keys, by registered module name, their label base from
	 * the options. */
	memset(&opt, 0, sizeof(opt));
	opt.label_base = "card";
	snprintf(uri, sizeof(uri), "pkcs11:token=%s"
	    "?module-name=softhsm2&pin-value=%s", TOKEN_RSA, PIN);
	t = open_token(uri, &opt);
	existing_card_keys();
	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys: %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_RSA_OAEP);
	pub = public_pkey(t, TOKEN_KEY_ENC);
	assert_true(crypto_is_rsa(pub));
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_rsa_oaep_encrypt(pub, key, sizeof(key), &ct,
	    &ct_len), 0);
	assert_int_equal(ct_len, 256);

	err_clear(&e);
	r = token_rsa_decrypt(t, ct, ct_len, out, sizeof(out), &out_len, &e);
	if (r == 0) {
		/* A module that does OAEP with SHA-256. */
		assert_int_equal(out_len, sizeof(key));
		assert_memory_equal(out, key, sizeof(key));
		assert_int_equal(t->stats.decrypts, 1);
		err_clear(&e);
		assert_int_equal(token_rsa_decrypt(t, ct, ct_len, out, 31,
		    &out_len, &e), ERR_TOO_LARGE);
		ct[100] ^= 0x40;
		err_clear(&e);
		assert_int_equal(token_rsa_decrypt(t, ct, ct_len, out,
		    sizeof(out), &out_len, &e), ERR_DECRYPT);
	} else {
		/* SoftHSM 2.6: OAEP with SHA-1 only. */
		assert_int_equal(r, ERR_UNSUPPORTED);
		assert_non_null(strstr(e.msg, "token 'devrsa' does not do "
		    "RSA-OAEP with SHA-256"));
		assert_non_null(strstr(e.msg, "CKR_ARGUMENTS_BAD"));
		assert_int_equal(t->stats.decrypts, 0);
	}
	/* A truncated ciphertext never reaches the token. */
	err_clear(&e);
	assert_int_equal(token_rsa_decrypt(t, ct, ct_len - 1, out,
	    sizeof(out), &out_len, &e), ERR_DECRYPT);
	/* ECDH with an RSA key. */
	err_clear(&e);
	assert_int_equal(token_ecdh(t, peer, dh, &e), ERR_UNSUPPORTED);
	/* The signing key signs. */
	sign_and_verify(t, "rsa token");

	crypto_wipe(key, sizeof(key));
	crypto_wipe(out, sizeof(out));
	free(ct);
	EVP_PKEY_free(pub);
	token_close(t);
}

/* CKA_ALWAYS_AUTHENTICATE: the token wants the PIN for each signature. */
static void
test_always_authenticate(void **state)
{
	char uri[2048];
	uint8_t digest[32] = { 7 }, sig[64];
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG sig_len = sizeof(sig);
	struct token *t;
	struct raw r;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, "auth", PIN);
	t = open_token(uri, NULL);
	existing_auth_keys();
	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys: %s", err_msg(&e));
	assert_int_equal(t->stats.logins, 1);

	/* The module does insist: without the PIN again, no signature. */
	raw_open(&r, TOKEN_EC, 1);
	assert_int_equal(r.f->C_SignInit(r.s, &mech, raw_find(&r,
	    CKO_PRIVATE_KEY, "auth-sig")), CKR_OK);
	assert_int_equal(r.f->C_Sign(r.s, digest, sizeof(digest), sig,
	    &sig_len), CKR_USER_NOT_LOGGED_IN);
	raw_close(&r);

	sign_and_verify(t, "one");
	sign_and_verify(t, "two");
	assert_int_equal(t->stats.signs, 2);
	assert_int_equal(t->stats.logins, 3);
	token_close(t);
}

static void
test_not_exportable(void **state)
{
	struct raw r;

	existing_card_keys();
	raw_open(&r, TOKEN_EC, 1);
	assert_not_exportable(&r, "devid-sig", CKK_EC);
	assert_not_exportable(&r, "devid-enc", CKK_EC);
	raw_close(&r);
	raw_open(&r, TOKEN_RSA, 1);
	assert_not_exportable(&r, "card-sig", CKK_EC);
	assert_not_exportable(&r, "card-enc", CKK_RSA);
	raw_close(&r);
}

/* The key URI ref (from describe) without its label, with the PIN: a URI
 * that finds keys by CKA_ID alone.  The caller frees it. */
static char *
uri_id_only(const char *ref)
{
	P11KitUri *kit;
	char *text = NULL;

	assert_non_null(kit = p11_kit_uri_new());
	assert_int_equal(p11_kit_uri_parse(ref, P11_KIT_URI_FOR_ANY, kit),
	    P11_KIT_URI_OK);
	assert_int_equal(p11_kit_uri_clear_attribute(kit, CKA_LABEL),
	    P11_KIT_URI_OK);
	p11_kit_uri_set_pin_value(kit, PIN);
	assert_int_equal(p11_kit_uri_format(kit, P11_KIT_URI_FOR_ANY, &text),
	    P11_KIT_URI_OK);
	p11_kit_uri_free(kit);
	assert_non_null(strstr(text, "id="));
	assert_null(strstr(text, "object="));
	return text;
}

/*
 * The signing key alone, in a new process: found again by label and by
 * CKA_ID, signs (the signature is checked here and by the openssl tool in
 * the script), survives a reconnection, and still has no encryption key
 * beside it.
 */
static void
test_sig_only_reopen(void **state)
{
	char uri[2048], pin_path[512];
	uint8_t digest[32], sig[64], *der = NULL, *saved;
	size_t der_len = 0, saved_len;
	const char *msg = "devid head signing test";
	struct token *t, *t2;
	struct token_desc d;
	struct raw r;
	struct err_ctx e;
	EVP_PKEY *pub = NULL;
	char *text = NULL;

	path_in_dir(pin_path, sizeof(pin_path), "pin");
	snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=head"
	    "?module-name=softhsm2&pin-source=file:%s", TOKEN_SIG, pin_path);
	t = open_sig_only(uri);
	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys (sig_only): %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_NONE);
	assert_public_equals_file(t, TOKEN_KEY_SIG, "sigonly.der");

	/* Sign in the token; verify with OpenSSL and the exported key. */
	assert_int_equal(crypto_sha256(msg, strlen(msg), digest), 0);
	assert_int_equal(token_sign_digest(t, digest, sig, &e), 0);
	saved = load_file("sigonly.der", &saved_len);
	assert_int_equal(crypto_spki_import(saved, saved_len, &pub, &e), 0);
	assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), 0);
	save_file("sigonly-digest.bin", digest, sizeof(digest));
	assert_int_equal(crypto_ecdsa_raw_to_der(sig, &der, &der_len), 0);
	save_file("sigonly-sig.bin", der, der_len);
	free(der);
	free(saved);
	EVP_PKEY_free(pub);
	assert_enc_refused(t);

	/* The sessions go away: only the signing key is compared again. */
	raw_open(&r, TOKEN_SIG, 0);
	assert_int_equal(r.f->C_CloseAllSessions(r.slot), CKR_OK);
	raw_close(&r);
	sign_and_verify(t, "after reconnect");
	assert_int_equal(t->stats.reconnects, 1);
	assert_int_equal(t->enc_alg, TOKEN_ENC_NONE);

	/* By CKA_ID alone: the one signing key with that id. */
	err_clear(&e);
	assert_int_equal(token_describe(t, &d, &e), 0);
	text = uri_id_only(d.sig_ref);
	t2 = open_sig_only(text);
	err_clear(&e);
	if (token_open_keys(t2, &e) != 0)
		fail_msg("open_keys (sig_only, by id): %s", err_msg(&e));
	assert_public_equals_file(t2, TOKEN_KEY_SIG, "sigonly.der");
	token_close(t2);
	/* Without sig_only the token lacks the encryption key. */
	t2 = open_token(text, NULL);
	err_clear(&e);
	assert_int_equal(token_open_keys(t2, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "has 1 private keys with the URI's id"));
	token_close(t2);
	free(text);
	token_close(t);

	uri_by_path(uri, sizeof(uri), TOKEN_SIG, "head", PIN);
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "head-enc"));
	token_close(t);

	/* A token holding both keys serves its signing key alone, by label
	 * and by the id the two keys share. */
	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_sig_only(uri);
	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys (sig_only, full token): %s", err_msg(&e));
	assert_public_equals_file(t, TOKEN_KEY_SIG, "sig.der");
	assert_enc_refused(t);
	err_clear(&e);
	assert_int_equal(token_describe(t, &d, &e), 0);
	assert_non_null(strstr(d.sig_ref, "object=devid-sig"));
	assert_string_equal(d.enc_ref, "");
	token_close(t);
	text = uri_id_only(d.sig_ref);
	t = open_sig_only(text);
	err_clear(&e);
	if (token_open_keys(t, &e) != 0)
		fail_msg("open_keys (sig_only, full token, by id): %s",
		    err_msg(&e));
	assert_public_equals_file(t, TOKEN_KEY_SIG, "sig.der");
	free(text);
	token_close(t);

	raw_open(&r, TOKEN_SIG, 1);
	raw_assert_only_sig_pair(&r, "head-sig");
	raw_close(&r);
}

/* The object URI from describe, without its label: found by CKA_ID. */
static void
test_open_by_id(void **state)
{
	char uri[2048];
	struct token *t, *t2;
	struct token_desc d;
	struct err_ctx e;
	P11KitUri *kit;
	char *text = NULL;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_keys(uri);
	err_clear(&e);
	assert_int_equal(token_describe(t, &d, &e), 0);
	assert_non_null(strstr(d.sig_ref, "id="));

	assert_non_null(kit = p11_kit_uri_new());
	assert_int_equal(p11_kit_uri_parse(d.sig_ref, P11_KIT_URI_FOR_ANY,
	    kit), P11_KIT_URI_OK);
	assert_int_equal(p11_kit_uri_clear_attribute(kit, CKA_LABEL),
	    P11_KIT_URI_OK);
	p11_kit_uri_set_pin_value(kit, PIN);
	assert_int_equal(p11_kit_uri_format(kit, P11_KIT_URI_FOR_ANY, &text),
	    P11_KIT_URI_OK);
	assert_null(strstr(text, "object="));
	t2 = open_keys(text);
	assert_public_equals_file(t2, TOKEN_KEY_SIG, "sig.der");
	assert_public_equals_file(t2, TOKEN_KEY_ENC, "enc.der");
	token_close(t2);
	free(text);
	p11_kit_uri_free(kit);
	token_close(t);
}

/*
 * The sessions go away under the backend (what a removed and reinserted
 * token does to them): the next operation opens a new session, logs in
 * once more and succeeds.
 */
static void
test_reconnect(void **state)
{
	char uri[2048], pin_path[512];
	uint8_t peer[65], dh[32];
	EVP_PKEY *sw = NULL;
	struct token *t;
	struct raw r;
	struct err_ctx e;

	path_in_dir(pin_path, sizeof(pin_path), "pin");
	snprintf(uri, sizeof(uri), "pkcs11:token=%s?module-path=%s"
	    "&pin-source=%s", TOKEN_EC, module_path, pin_path);
	t = open_keys(uri);
	sign_and_verify(t, "before");
	assert_int_equal(t->stats.reconnects, 0);
	assert_int_equal(t->stats.logins, 1);

	raw_open(&r, TOKEN_EC, 0);
	assert_int_equal(r.f->C_CloseAllSessions(r.slot), CKR_OK);
	sign_and_verify(t, "after");
	assert_int_equal(t->stats.reconnects, 1);
	assert_int_equal(t->stats.logins, 2);
	assert_int_equal(t->stats.signs, 2);

	/* Again, this time for ECDH. */
	assert_int_equal(r.f->C_CloseAllSessions(r.slot), CKR_OK);
	assert_int_equal(crypto_ec_generate(&sw), 0);
	assert_int_equal(crypto_ec_point_get(sw, peer), 0);
	err_clear(&e);
	if (token_ecdh(t, peer, dh, &e) != 0)
		fail_msg("ecdh after reconnect: %s", err_msg(&e));
	assert_int_equal(t->stats.reconnects, 2);
	assert_int_equal(t->stats.logins, 3);
	raw_close(&r);
	EVP_PKEY_free(sw);
	token_close(t);
}

static void
test_wrong_pin(void **state)
{
	char uri[2048];
	struct token *t;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_PIN, NULL, "0000");
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_PIN_INCORRECT);
	assert_non_null(strstr(e.msg, "token 'devpin' rejected the PIN "
	    "(CKR_PIN_INCORRECT)"));
	/* SoftHSM sets CKF_USER_PIN_COUNT_LOW after a failure. */
	assert_non_null(strstr(e.msg, "few tries left"));
	assert_null(strstr(e.msg, "0000"));
	assert_int_equal(t->stats.logins, 1);

	/* Never tried again. */
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_PIN_INCORRECT);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_NONE, &e),
	    ERR_PIN_INCORRECT);
	assert_int_equal(t->stats.logins, 1);
	token_close(t);

	/* The right PIN logs in: what is missing then is the keys. */
	uri_by_path(uri, sizeof(uri), TOKEN_PIN, NULL, PIN);
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_NOT_FOUND);
	assert_int_equal(t->stats.logins, 1);
	token_close(t);

	/* No PIN from anywhere. */
	snprintf(uri, sizeof(uri), "pkcs11:token=%s?module-path=%s",
	    TOKEN_PIN, module_path);
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_open_keys(t, &e), ERR_PIN_REQUIRED);
	assert_int_equal(t->stats.logins, 0);
	token_close(t);
}

static void
test_open_errors(void **state)
{
	char uri[2048];
	struct token *t = NULL;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), "absent", NULL, PIN);
	err_clear(&e);
	assert_int_equal(p11_token_new(uri, NULL, &t, &e),
	    ERR_TOKEN_NOT_PRESENT);
	assert_null(t);
	/* Three tokens match a URI without token=. */
	snprintf(uri, sizeof(uri), "pkcs11:?module-path=%s", module_path);
	err_clear(&e);
	assert_int_equal(p11_token_new(uri, NULL, &t, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "matches 4 tokens"));
	err_clear(&e);
	assert_int_equal(p11_token_new("pkcs11:token=devid?module-name="
	    "no-such-module", NULL, &t, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "no-such-module"));
	err_clear(&e);
	assert_int_equal(p11_token_new("pkcs11:token=devid?module-path="
	    "/nonexistent/module.so", NULL, &t, &e), ERR_NOT_FOUND);
	assert_null(t);
}

/* --- loss (a new process: SoftHSM cannot take the token back) --- */

static char tokens_dir[1024], away_dir[1024];
static int moved_away;

static int
restore_tokens(void **state)
{
	if (moved_away && rename(away_dir, tokens_dir) != 0)
		return -1;
	moved_away = 0;
	return 0;
}

static void
test_token_removed(void **state)
{
	char uri[2048];
	uint8_t digest[32] = { 1 }, sig[64];
	struct token *t;
	struct raw r;
	struct err_ctx e;

	uri_by_path(uri, sizeof(uri), TOKEN_EC, NULL, PIN);
	t = open_keys(uri);
	sign_and_verify(t, "present");

	/* Pull the token: its sessions end and its files disappear. */
	raw_open(&r, TOKEN_EC, 0);
	assert_int_equal(r.f->C_CloseAllSessions(r.slot), CKR_OK);
	path_in_dir(tokens_dir, sizeof(tokens_dir), "tokens");
	path_in_dir(away_dir, sizeof(away_dir), "tokens.away");
	assert_int_equal(rename(tokens_dir, away_dir), 0);
	moved_away = 1;

	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_TOKEN_NOT_PRESENT);
	assert_non_null(strstr(e.msg, "token 'devid' is not present"));
	/* The next operation tries again, and still finds nothing. */
	err_clear(&e);
	assert_int_equal(token_sign_digest(t, digest, sig, &e),
	    ERR_TOKEN_NOT_PRESENT);
	assert_int_equal(t->stats.signs, 1);
	assert_int_equal(t->stats.reconnects, 0);
	assert_int_equal(restore_tokens(NULL), 0);
	raw_close(&r);
	token_close(t);
}

/* --- tpm2-pkcs11: a module without ECDH, with RSA-OAEP-SHA256 --- */

#define TOKEN_TPM "tpmtok"

static void
test_tpm_create(void **state)
{
	char uri[2048];
	struct p11_options opt;
	struct token *t;
	struct token_desc d;
	struct err_ctx e;
	uint8_t *spki;
	size_t spki_len;

	snprintf(uri, sizeof(uri), "pkcs11:token=%s?module-name=tpm2_pkcs11"
	    "&pin-value=%s", TOKEN_TPM, PIN);
	/* No CKM_ECDH1_DERIVE: asking for hpke-p256 is refused up front,
	 * whether the create_keys argument or the options (--enc-alg) ask. */
	memset(&opt, 0, sizeof(opt));
	opt.enc_alg = TOKEN_ENC_HPKE_P256;
	t = open_token(uri, &opt);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_NONE, &e),
	    ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "token 'tpmtok' cannot do hpke-p256"));
	assert_non_null(strstr(e.msg, "CKM_ECDH1_DERIVE"));
	token_close(t);
	t = open_token(uri, NULL);
	err_clear(&e);
	assert_int_equal(token_create_keys(t, TOKEN_ENC_HPKE_P256, &e),
	    ERR_UNSUPPORTED);
	assert_non_null(strstr(e.msg, "CKM_ECDH1_DERIVE"));
	/* The choice falls to RSA-OAEP, which passes its self-test here. */
	err_clear(&e);
	if (token_create_keys(t, TOKEN_ENC_NONE, &e) != 0)
		fail_msg("create_keys: %s", err_msg(&e));
	assert_int_equal(t->enc_alg, TOKEN_ENC_RSA_OAEP);
	assert_int_equal(t->stats.decrypts, 1);
	assert_int_equal(token_describe(t, &d, &e), 0);
	assert_int_equal(d.enc_alg, TOKEN_ENC_RSA_OAEP);
	assert_non_null(strstr(d.enc_attrs, "never-extractable"));
	assert_non_null(strstr(d.sig_attrs, "never-extractable"));
	assert_int_equal(token_public_key(t, TOKEN_KEY_SIG, &spki, &spki_len,
	    &e), 0);
	save_file("tpm-sig.der", spki, spki_len);
	free(spki);
	assert_int_equal(token_public_key(t, TOKEN_KEY_ENC, &spki, &spki_len,
	    &e), 0);
	save_file("tpm-enc.der", spki, spki_len);
	free(spki);
	token_close(t);
}

static void
test_tpm_use(void **state)
{
	char uri[2048], pin_path[512];
	uint8_t key[32], out[64], *ct = NULL, peer[65], dh[32];
	size_t ct_len = 0, out_len = 0;
	EVP_PKEY *pub, *sw = NULL;
	struct token *t;
	struct raw r;
	struct err_ctx e;
	uint8_t value[4096];
	CK_ATTRIBUTE get = { CKA_VALUE, value, sizeof(value) };
	CK_BBOOL flag;
	CK_ATTRIBUTE get_b = { CKA_NEVER_EXTRACTABLE, &flag, sizeof(flag) };
	CK_RV rv;
	const char *labels[2] = { "devid-sig", "devid-enc" };
	size_t i;

	path_in_dir(pin_path, sizeof(pin_path), "pin");
	snprintf(uri, sizeof(uri), "pkcs11:token=%s?module-path=%s"
	    "&pin-source=file:%s", TOKEN_TPM, raw_module, pin_path);
	t = open_keys(uri);
	assert_int_equal(t->enc_alg, TOKEN_ENC_RSA_OAEP);
	assert_public_equals_file(t, TOKEN_KEY_SIG, "tpm-sig.der");
	assert_public_equals_file(t, TOKEN_KEY_ENC, "tpm-enc.der");

	/* RSA-OAEP-SHA256: OpenSSL encrypts, the TPM decrypts. */
	pub = public_pkey(t, TOKEN_KEY_ENC);
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_rsa_oaep_encrypt(pub, key, sizeof(key), &ct,
	    &ct_len), 0);
	err_clear(&e);
	if (token_rsa_decrypt(t, ct, ct_len, out, sizeof(out), &out_len,
	    &e) != 0)
		fail_msg("rsa_decrypt: %s", err_msg(&e));
	assert_int_equal(out_len, sizeof(key));
	assert_memory_equal(out, key, sizeof(key));
	assert_int_equal(t->stats.decrypts, 1);
	err_clear(&e);
	assert_int_equal(token_rsa_decrypt(t, ct, ct_len, out, 31, &out_len,
	    &e), ERR_TOO_LARGE);
	ct[100] ^= 0x40;
	err_clear(&e);
	assert_int_equal(token_rsa_decrypt(t, ct, ct_len, out, sizeof(out),
	    &out_len, &e), ERR_DECRYPT);
	/* No ECDH with an RSA key. */
	assert_int_equal(crypto_ec_generate(&sw), 0);
	assert_int_equal(crypto_ec_point_get(sw, peer), 0);
	err_clear(&e);
	assert_int_equal(token_ecdh(t, peer, dh, &e), ERR_UNSUPPORTED);
	sign_and_verify(t, "tpm");

	/* The private halves are not readable and never were. */
	raw_open(&r, TOKEN_TPM, 1);
	for (i = 0; i < 2; i++) {
		CK_OBJECT_HANDLE h = raw_find(&r, CKO_PRIVATE_KEY, labels[i]);

		get.ulValueLen = sizeof(value);
		rv = r.f->C_GetAttributeValue(r.s, h, &get, 1);
		assert_true(rv != CKR_OK ||
		    get.ulValueLen == CK_UNAVAILABLE_INFORMATION);
		assert_int_equal(r.f->C_GetAttributeValue(r.s, h, &get_b, 1),
		    CKR_OK);
		assert_int_equal(flag, CK_TRUE);
	}
	raw_close(&r);

	crypto_wipe(key, sizeof(key));
	crypto_wipe(out, sizeof(out));
	free(ct);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(sw);
	token_close(t);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest create_tests[] = {
		cmocka_unit_test(test_create_hpke),
		cmocka_unit_test(test_create_rsa),
		cmocka_unit_test(test_raw_ec_point),
		cmocka_unit_test(test_exportable_refused),
		cmocka_unit_test(test_create_sig_only),
	};
	const struct CMUnitTest use_tests[] = {
		cmocka_unit_test(test_reopen_and_sign),
		cmocka_unit_test(test_ecdh),
		cmocka_unit_test(test_hpke_through_token),
		cmocka_unit_test(test_rsa_oaep),
		cmocka_unit_test(test_always_authenticate),
		cmocka_unit_test(test_not_exportable),
		cmocka_unit_test(test_open_by_id),
		cmocka_unit_test(test_sig_only_reopen),
		cmocka_unit_test(test_reconnect),
		cmocka_unit_test(test_wrong_pin),
		cmocka_unit_test(test_open_errors),
	};
	const struct CMUnitTest tpm_create_tests[] = {
		cmocka_unit_test(test_tpm_create),
	};
	const struct CMUnitTest tpm_use_tests[] = {
		cmocka_unit_test(test_tpm_use),
	};
	const struct CMUnitTest loss_tests[] = {
		cmocka_unit_test_teardown(test_token_removed, restore_tokens),
	};

	module_path = getenv("SOFTHSM2_MODULE");
	test_dir = getenv("P11_TEST_DIR");
	if (argc != 2 || module_path == NULL || module_path[0] == '\0' ||
	    test_dir == NULL || getenv("SOFTHSM2_CONF") == NULL) {
		fprintf(stderr, "usage: SOFTHSM2_MODULE=... SOFTHSM2_CONF=... "
		    "P11_TEST_DIR=... test_pkcs11 "
		    "create|use|loss|tpm-create|tpm-use\n");
		return 2;
	}
	raw_module = module_path;
	if (strncmp(argv[1], "tpm-", 4) == 0) {
		if ((raw_module = getenv("P11_TPM_MODULE")) == NULL ||
		    raw_module[0] != '/') {
			fprintf(stderr, "test_pkcs11: the tpm modes need "
			    "P11_TPM_MODULE (the tpm2-pkcs11 module file)\n");
			return 2;
		}
		/* Keep the module mapped until exit, so that the leak report
		 * can name its frames (the script suppresses those). */
		if (dlopen(raw_module, RTLD_NOW | RTLD_NODELETE) == NULL) {
			fprintf(stderr, "test_pkcs11: %s\n", dlerror());
			return 2;
		}
		if (strcmp(argv[1], "tpm-create") == 0)
			return cmocka_run_group_tests_name("tpm2-pkcs11 create",
			    tpm_create_tests, NULL, NULL);
		if (strcmp(argv[1], "tpm-use") == 0)
			return cmocka_run_group_tests_name("tpm2-pkcs11 use",
			    tpm_use_tests, NULL, NULL);
	}
	if (strcmp(argv[1], "create") == 0)
		return cmocka_run_group_tests_name("pkcs11 create",
		    create_tests, NULL, NULL);
	if (strcmp(argv[1], "use") == 0)
		return cmocka_run_group_tests_name("pkcs11 use", use_tests,
		    NULL, NULL);
	if (strcmp(argv[1], "loss") == 0)
		return cmocka_run_group_tests_name("pkcs11 loss", loss_tests,
		    NULL, restore_tokens);
	fprintf(stderr, "test_pkcs11: unknown mode '%s'\n", argv[1]);
	return 2;
}
