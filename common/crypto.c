/*
 * crypto.c - hashing, HKDF-SHA256, AES-GCM, randomness and wiping, all
 * through the OpenSSL 3 EVP interfaces.  Failures clear OpenSSL's error
 * queue (see crypto-keys.c).
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "errors.h"

void
crypto_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

int
crypto_memeq_ct(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 0;
	return CRYPTO_memcmp(a, b, len) == 0 ? 0 : 1;
}

int
crypto_random(void *p, size_t len)
{
	uint8_t *q = p;
	int n;

	return_val_if_fail(p != NULL || len == 0, ERR_INVALID_ARG);
	/* RAND_bytes takes an int; large requests go in pieces. */
	while (len > 0) {
		n = len > INT_MAX ? INT_MAX : (int)len;
		if (RAND_bytes(q, n) != 1)
			return ERR_CRYPTO;
		q += n;
		len -= (size_t)n;
	}
	return 0;
}

int
crypto_sha256(const void *p, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
	unsigned int out_len = 0;

	return_val_if_fail(p != NULL || len == 0, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (EVP_Digest(len == 0 ? "" : p, len, out, &out_len, EVP_sha256(),
	    NULL) != 1 || out_len != CRYPTO_SHA256_LEN)
		return ERR_CRYPTO;
	return 0;
}

/*
 * Runs the OpenSSL "HKDF" KDF with SHA-256 in the given mode ("EXTRACT_ONLY"
 * or "EXPAND_ONLY").  key is the IKM (extract) or the PRK (expand); salt and
 * info are used only by the mode that needs them.  OpenSSL keeps its own
 * copies of the inputs and frees them with the context; it clears them.
 */
static int
hkdf_run(const char *mode, const uint8_t *key, size_t key_len,
    const uint8_t *salt, size_t salt_len, const uint8_t *info, size_t info_len,
    uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[6], *p = params;
	int r = ERR_CRYPTO;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE,
	    (char *)mode, 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)key, key_len);
	if (salt != NULL)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, salt_len);
	if (info != NULL && info_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
		crypto_wipe(out, out_len);
		goto out;
	}
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return r;
}

/*
 * HKDF-Extract.  An absent or empty salt is replaced by HashLen zero bytes
 * (RFC 5869 section 2.2); under HMAC the two are the same key, and being
 * explicit keeps OpenSSL from having to guess.
 */
int
crypto_hkdf_extract(const uint8_t *salt, size_t salt_len,
    const uint8_t *ikm, size_t ikm_len, uint8_t prk[CRYPTO_SHA256_LEN])
{
	static const uint8_t zero_salt[CRYPTO_SHA256_LEN];
	static const uint8_t empty[1];

	return_val_if_fail(salt != NULL || salt_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(ikm != NULL || ikm_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(prk != NULL, ERR_INVALID_ARG);
	if (salt == NULL || salt_len == 0) {
		salt = zero_salt;
		salt_len = sizeof(zero_salt);
	}
	return hkdf_run("EXTRACT_ONLY", ikm_len == 0 ? empty : ikm, ikm_len,
	    salt, salt_len, NULL, 0, prk, CRYPTO_SHA256_LEN);
}

int
crypto_hkdf_expand(const uint8_t prk[CRYPTO_SHA256_LEN],
    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	return_val_if_fail(prk != NULL && out != NULL, ERR_INVALID_ARG);
	return_val_if_fail(info != NULL || info_len == 0, ERR_INVALID_ARG);
	if (out_len == 0 || out_len > 255 * CRYPTO_SHA256_LEN)
		return ERR_INVALID_ARG;
	if (info_len > CRYPTO_HKDF_INFO_MAX)
		return ERR_TOO_LARGE;
	return hkdf_run("EXPAND_ONLY", prk, CRYPTO_SHA256_LEN, NULL, 0,
	    info, info_len, out, out_len);
}

static const EVP_CIPHER *
gcm_cipher(size_t key_len)
{
	if (key_len == 16)
		return EVP_aes_128_gcm();
	if (key_len == 32)
		return EVP_aes_256_gcm();
	return NULL;
}

/*
 * AES-GCM seal.  out may be the same array as pt (in-place).  On failure
 * the pt_len + 16 bytes at out are wiped.
 */
int
crypto_aes_gcm_seal(const uint8_t *key, size_t key_len,
    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad,
    size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out)
{
	const EVP_CIPHER *cipher = gcm_cipher(key_len);
	EVP_CIPHER_CTX *cctx = NULL;
	int n, r = ERR_CRYPTO;

	return_val_if_fail(key != NULL && nonce != NULL && out != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(aad != NULL || aad_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(pt != NULL || pt_len == 0, ERR_INVALID_ARG);
	if (cipher == NULL)
		return ERR_INVALID_ARG;
	if (pt_len > INT_MAX - CRYPTO_GCM_TAG_LEN || aad_len > INT_MAX)
		return ERR_TOO_LARGE;

	if ((cctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (EVP_EncryptInit_ex(cctx, cipher, NULL, key, nonce) != 1)
		goto out;
	/* With out == NULL, an update feeds additional data. */
	if (aad_len > 0 &&
	    EVP_EncryptUpdate(cctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (pt_len > 0 &&
	    (EVP_EncryptUpdate(cctx, out, &n, pt, (int)pt_len) != 1 ||
	    (size_t)n != pt_len))
		goto out;
	if (EVP_EncryptFinal_ex(cctx, out + pt_len, &n) != 1 || n != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_GCM_TAG_LEN,
	    out + pt_len) != 1)
		goto out;
	r = 0;
 out:
	if (r != 0) {
		crypto_wipe(out, pt_len + CRYPTO_GCM_TAG_LEN);
		ERR_clear_error();
	}
	EVP_CIPHER_CTX_free(cctx);
	return r;
}

/*
 * AES-GCM open.  ct_len < 16 cannot hold a tag and, like a bad tag, is
 * ERR_DECRYPT, so callers see one result for every forgery.  out may be the
 * same array as ct.  Nothing is released before the tag has been checked:
 * on failure the ct_len - 16 bytes at out are wiped.
 */
int
crypto_aes_gcm_open(const uint8_t *key, size_t key_len,
    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad,
    size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *out)
{
	const EVP_CIPHER *cipher = gcm_cipher(key_len);
	EVP_CIPHER_CTX *cctx = NULL;
	uint8_t tag[CRYPTO_GCM_TAG_LEN];
	size_t body_len;
	int n, r = ERR_CRYPTO;

	return_val_if_fail(key != NULL && nonce != NULL, ERR_INVALID_ARG);
	return_val_if_fail(aad != NULL || aad_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(ct != NULL || ct_len == 0, ERR_INVALID_ARG);
	if (cipher == NULL)
		return ERR_INVALID_ARG;
	if (ct_len < CRYPTO_GCM_TAG_LEN)
		return ERR_DECRYPT;
	return_val_if_fail(out != NULL || ct_len == CRYPTO_GCM_TAG_LEN,
	    ERR_INVALID_ARG);
	if (ct_len > INT_MAX || aad_len > INT_MAX)
		return ERR_TOO_LARGE;
	body_len = ct_len - CRYPTO_GCM_TAG_LEN;
	/* Copy the tag first: out may overlap ct. */
	memcpy(tag, ct + body_len, sizeof(tag));

	if ((cctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (EVP_DecryptInit_ex(cctx, cipher, NULL, key, nonce) != 1)
		goto out;
	if (aad_len > 0 &&
	    EVP_DecryptUpdate(cctx, NULL, &n, aad, (int)aad_len) != 1)
		goto out;
	if (body_len > 0 &&
	    (EVP_DecryptUpdate(cctx, out, &n, ct, (int)body_len) != 1 ||
	    (size_t)n != body_len))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, sizeof(tag),
	    tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(cctx, out == NULL ? tag : out + body_len,
	    &n) != 1) {
		r = ERR_DECRYPT;
		goto out;
	}
	r = 0;
 out:
	if (r != 0 && out != NULL)
		crypto_wipe(out, body_len);
	if (r != 0)
		ERR_clear_error();
	EVP_CIPHER_CTX_free(cctx);
	return r;
}
