/*
 * crypto-keys.c - public keys (SPKI), ECDSA signature encodings, ECDH and
 * RSA-OAEP with software keys, and PEM files, through the OpenSSL 3 EVP
 * interfaces.  The EC_GROUP/EC_POINT calls used to turn a scalar into its
 * public point are not part of the deprecated EC_KEY API.
 *
 * Untrusted input fails here routinely, so every failure clears OpenSSL's
 * per-thread error queue: other users of libcrypto in the process (libcurl's
 * TLS) read that queue and must not find stale entries in it.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "errors.h"
#include "fileio.h"

/* The P-256 group name in OpenSSL's provider parameters. */
#define P256_GROUP_NAME "prime256v1"
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 4096
/* A PEM private key file larger than this is not one devid wrote. */
#define PEM_FILE_MAX (64 * 1024)

/* The order n of the P-256 group, big-endian. */
static const uint8_t p256_order[CRYPTO_P256_SCALAR_LEN] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/*
 * 1 when the big-endian 32-byte value s satisfies 0 < s < n, else 0.
 * Constant time in s, which may be a private scalar.
 */
static int
p256_scalar_in_range(const uint8_t s[CRYPTO_P256_SCALAR_LEN])
{
	unsigned int borrow = 0, nonzero = 0, d;
	int i;

	/* s - n from the least significant byte; a final borrow: s < n. */
	for (i = CRYPTO_P256_SCALAR_LEN - 1; i >= 0; i--) {
		d = (unsigned int)s[i] - (unsigned int)p256_order[i] - borrow;
		borrow = (d >> 8) & 1;
		nonzero |= s[i];
	}
	return (int)(borrow & ((nonzero + 0xff) >> 8));
}

int
crypto_is_p256(EVP_PKEY *pkey)
{
	char name[64];
	size_t len = 0;

	if (pkey == NULL || !EVP_PKEY_is_a(pkey, "EC"))
		return 0;
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	    name, sizeof(name), &len) != 1)
		return 0;
	return strcmp(name, P256_GROUP_NAME) == 0;
}

int
crypto_is_rsa(EVP_PKEY *pkey)
{
	int bits;

	/* EVP_PKEY_RSA only: RSA-PSS keys carry restrictions devid does not
	 * use. */
	if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
		return 0;
	bits = EVP_PKEY_get_bits(pkey);
	return bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS;
}

/*
 * 1 when an EC key is encoded the one way devid accepts: parameters given
 * by the curve's name, not spelled out, and an uncompressed point.
 */
static int
ec_canonical_form(EVP_PKEY *pkey)
{
	char val[32];
	size_t len = 0;

	/* Absent parameters mean OpenSSL's defaults, which are these. */
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING,
	    val, sizeof(val), &len) == 1 &&
	    strcmp(val, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
		return 0;
	if (EVP_PKEY_get_utf8_string_param(pkey,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, val, sizeof(val),
	    &len) == 1 &&
	    strcmp(val, OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 0)
		return 0;
	return 1;
}

/* The odd primes below this divide no valid modulus (trial division). */
#define RSA_SMALL_PRIME_BOUND 2048

/* 1 when n is a strong probable prime to base 2 (one Miller-Rabin round
 * with a fixed base: the same answer on every machine). */
static int
rsa_sprp2(const BIGNUM *n, BN_CTX *ctx)
{
	BIGNUM *n1, *d, *x, *two;
	int s = 0, i, prime = 0;

	BN_CTX_start(ctx);
	n1 = BN_CTX_get(ctx);
	d = BN_CTX_get(ctx);
	x = BN_CTX_get(ctx);
	two = BN_CTX_get(ctx);
	if (two == NULL || BN_copy(n1, n) == NULL || !BN_sub_word(n1, 1) ||
	    BN_copy(d, n1) == NULL || !BN_set_word(two, 2))
		goto out;
	while (!BN_is_zero(d) && !BN_is_odd(d)) {
		if (!BN_rshift1(d, d))
			goto out;
		s++;
	}
	if (!BN_mod_exp(x, two, d, n, ctx))
		goto out;
	if (BN_is_one(x) || BN_cmp(x, n1) == 0) {
		prime = 1;
		goto out;
	}
	for (i = 1; i < s; i++) {
		if (!BN_mod_sqr(x, x, n, ctx))
			goto out;
		if (BN_cmp(x, n1) == 0) {
			prime = 1;
			goto out;
		}
	}
 out:
	BN_CTX_end(ctx);
	return prime;
}

/*
 * RSA public-key sanity, decided the same way on every machine:
 * OpenSSL's own check tests the modulus with random bases, so a crafted
 * record could pass on one device and fail on another.  The exponent is
 * odd, at least 65537 and at most 256 bits; the modulus is odd, has no
 * prime factor below RSA_SMALL_PRIME_BOUND and is not a probable prime
 * to base 2.  1 when the key passes.
 */
static int
rsa_public_ok(EVP_PKEY *pkey)
{
	BIGNUM *n = NULL, *e = NULL;
	BN_CTX *ctx = NULL;
	unsigned char sieve[RSA_SMALL_PRIME_BOUND];
	BN_ULONG rem;
	unsigned int p, q;
	int ok = 0;

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
	    (ctx = BN_CTX_new()) == NULL)
		goto out;
	if (!BN_is_odd(n) || !BN_is_odd(e) || BN_num_bits(e) > 256 ||
	    BN_get_word(e) < 65537 || BN_cmp(e, n) >= 0)
		goto out;
	memset(sieve, 0, sizeof(sieve));
	for (p = 3; p < RSA_SMALL_PRIME_BOUND; p += 2) {
		if (sieve[p])
			continue;
		for (q = p * p; q < RSA_SMALL_PRIME_BOUND; q += 2 * p)
			sieve[q] = 1;
		if ((rem = BN_mod_word(n, p)) == 0 || rem == (BN_ULONG)-1)
			goto out;
	}
	ok = !rsa_sprp2(n, ctx);
 out:
	BN_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return ok;
}

/* The public-key validation: point on the curve, or RSA sanity.  1 when
 * it passes. */
static int
pkey_public_ok(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *pctx;
	int ok;

	if (!EVP_PKEY_is_a(pkey, "EC"))
		return rsa_public_ok(pkey);
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL)
		return 0;
	/*
	 * The quick check (point on the curve, not at infinity) is the whole
	 * check on P-256: its cofactor is 1, so every point on the curve is
	 * in the prime-order group and the full check's extra scalar
	 * multiplication proves nothing more.
	 */
	ok = EVP_PKEY_public_check_quick(pctx) == 1;
	EVP_PKEY_CTX_free(pctx);
	return ok;
}

int
crypto_spki_export(EVP_PKEY *pkey, uint8_t **der, size_t *der_len)
{
	unsigned char *tmp = NULL;
	uint8_t *copy = NULL;
	int n, r = ERR_CRYPTO;

	return_val_if_fail(pkey != NULL && der != NULL && der_len != NULL,
	    ERR_INVALID_ARG);
	/* i2d_PUBKEY writes only the public half, also of a private key. */
	if ((n = i2d_PUBKEY(pkey, &tmp)) <= 0)
		goto out;
	/* Hand back a malloc'd copy so callers free() it like every other
	 * devid array. */
	if ((copy = malloc((size_t)n)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	memcpy(copy, tmp, (size_t)n);
	*der = copy;
	copy = NULL;	/* transferred */
	*der_len = (size_t)n;
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	OPENSSL_free(tmp);
	free(copy);
	return r;
}

/*
 * Parses SPKI strictly: one DER object with nothing after it, a P-256 key
 * with a named curve and a valid point, or an RSA key of 2048..4096 bits;
 * and the input must be the canonical encoding of the key it holds (what
 * crypto_spki_export gives back), so a key has exactly one SPKI and hence
 * one device id.
 */
int
crypto_spki_import(const uint8_t *der, size_t der_len, EVP_PKEY **out,
    struct err_ctx *e)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey = NULL;
	uint8_t *canon = NULL;
	size_t canon_len = 0;
	int r = ERR_FORMAT;

	return_val_if_fail(der != NULL || der_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (der_len == 0 || der_len > CRYPTO_SPKI_MAX) {
		r = err_set(e, ERR_FORMAT, "public key: %zu bytes of SPKI "
		    "(expected 1 to %d)", der_len, CRYPTO_SPKI_MAX);
		goto out;
	}
	if ((pkey = d2i_PUBKEY(NULL, &p, (long)der_len)) == NULL) {
		r = err_set(e, ERR_FORMAT, "public key: not a valid DER "
		    "SubjectPublicKeyInfo");
		goto out;
	}
	if (p != der + der_len) {
		r = err_set(e, ERR_FORMAT, "public key: %zu trailing bytes "
		    "after the SubjectPublicKeyInfo",
		    der_len - (size_t)(p - der));
		goto out;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!crypto_is_p256(pkey)) {
			r = err_set(e, ERR_FORMAT, "public key: an EC key on "
			    "a curve other than P-256");
			goto out;
		}
		if (!ec_canonical_form(pkey)) {
			r = err_set(e, ERR_FORMAT, "public key: P-256 key "
			    "with explicit curve parameters or a compressed "
			    "point (expected the named curve and an "
			    "uncompressed point)");
			goto out;
		}
	} else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
		if (!crypto_is_rsa(pkey)) {
			r = err_set(e, ERR_FORMAT, "public key: RSA key of "
			    "%d bits (expected %d to %d)",
			    EVP_PKEY_get_bits(pkey), RSA_MIN_BITS,
			    RSA_MAX_BITS);
			goto out;
		}
	} else {
		r = err_set(e, ERR_FORMAT, "public key: unsupported key type "
		    "(expected EC P-256 or RSA)");
		goto out;
	}
	if (!pkey_public_ok(pkey)) {
		r = err_set(e, ERR_FORMAT, "public key: invalid key (point "
		    "not on the curve, or bad RSA modulus or exponent)");
		goto out;
	}
	if ((r = crypto_spki_export(pkey, &canon, &canon_len)) != 0) {
		r = err_set(e, r, "public key: cannot re-encode the key");
		goto out;
	}
	if (canon_len != der_len || memcmp(canon, der, der_len) != 0) {
		r = err_set(e, ERR_FORMAT, "public key: SPKI is not in "
		    "canonical DER form");
		goto out;
	}
	*out = pkey;
	pkey = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	free(canon);
	EVP_PKEY_free(pkey);
	return r;
}

int
crypto_ec_point_get(EVP_PKEY *pkey, uint8_t out[CRYPTO_P256_POINT_LEN])
{
	size_t len = 0;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (!crypto_is_p256(pkey))
		return ERR_INVALID_ARG;
	if (EVP_PKEY_get_octet_string_param(pkey,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, CRYPTO_P256_POINT_LEN,
	    &len) != 1 || len != CRYPTO_P256_POINT_LEN || out[0] != 0x04)
		return ERR_CRYPTO;
	return 0;
}

/*
 * Builds a P-256 key from OSSL_PARAMs: the group, the public point and,
 * when priv is not NULL, the private scalar.
 */
static int
ec_pkey_fromdata(const uint8_t point[CRYPTO_P256_POINT_LEN],
    const BIGNUM *priv, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ERR_CRYPTO;

	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    P256_GROUP_NAME, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
	    point, CRYPTO_P256_POINT_LEN) != 1)
		goto out;
	if (priv != NULL && OSSL_PARAM_BLD_push_BN(bld,
	    OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1)
		goto out;
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1)
		goto out;
	if (EVP_PKEY_fromdata(pctx, &pkey, priv != NULL ? EVP_PKEY_KEYPAIR :
	    EVP_PKEY_PUBLIC_KEY, params) != 1) {
		/* A point that is not on the curve ends here. */
		r = ERR_FORMAT;
		goto out;
	}
	*out = pkey;
	pkey = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);	/* holds a copy of priv: cleared */
	OSSL_PARAM_BLD_free(bld);
	return r;
}

/*
 * A public key from a 65-byte uncompressed P-256 point.  Any other length
 * or form, or a point that is not on the curve, is ERR_FORMAT.
 */
int
crypto_ec_point_to_pkey(const uint8_t *point, size_t point_len,
    EVP_PKEY **out)
{
	EVP_PKEY *pkey = NULL;
	int r;

	return_val_if_fail(point != NULL || point_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (point_len != CRYPTO_P256_POINT_LEN || point[0] != 0x04)
		return ERR_FORMAT;
	if ((r = ec_pkey_fromdata(point, NULL, &pkey)) != 0)
		goto out;
	if (!pkey_public_ok(pkey)) {
		r = ERR_FORMAT;
		goto out;
	}
	*out = pkey;
	pkey = NULL;	/* transferred */
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_PKEY_free(pkey);
	return r;
}

/*
 * A P-256 key pair from its private scalar, which must lie in [1, n-1]
 * (else ERR_INVALID_ARG).  The public point is computed here because
 * EVP_PKEY_fromdata in OpenSSL 3.0 does not derive it.
 */
int
crypto_ec_from_scalar(const uint8_t scalar[CRYPTO_P256_SCALAR_LEN],
    EVP_PKEY **out)
{
	EC_GROUP *group = NULL;
	EC_POINT *pub = NULL;
	BIGNUM *priv = NULL;
	BN_CTX *bnctx = NULL;
	uint8_t point[CRYPTO_P256_POINT_LEN];
	int r = ERR_CRYPTO;

	return_val_if_fail(scalar != NULL && out != NULL, ERR_INVALID_ARG);
	if (!p256_scalar_in_range(scalar))
		return ERR_INVALID_ARG;
	if ((group = EC_GROUP_new_by_curve_name_ex(NULL, NULL,
	    NID_X9_62_prime256v1)) == NULL ||
	    (pub = EC_POINT_new(group)) == NULL ||
	    (bnctx = BN_CTX_secure_new()) == NULL ||
	    (priv = BN_secure_new()) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	BN_set_flags(priv, BN_FLG_CONSTTIME);
	if (BN_bin2bn(scalar, CRYPTO_P256_SCALAR_LEN, priv) == NULL ||
	    EC_POINT_mul(group, pub, priv, NULL, NULL, bnctx) != 1 ||
	    EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED,
	    point, sizeof(point), bnctx) != sizeof(point))
		goto out;
	r = ec_pkey_fromdata(point, priv, out);
 out:
	if (r != 0)
		ERR_clear_error();
	BN_clear_free(priv);
	BN_CTX_free(bnctx);
	EC_POINT_free(pub);
	EC_GROUP_free(group);
	return r;
}

int
crypto_ec_generate(EVP_PKEY **out)
{
	EVP_PKEY *pkey;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
		return ERR_CRYPTO;
	*out = pkey;
	return 0;
}

/* bits may go below devid's 2048 so that tests can make keys that the
 * importer must refuse. */
int
crypto_rsa_generate(unsigned int bits, EVP_PKEY **out)
{
	EVP_PKEY *pkey;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (bits < 1024 || bits > RSA_MAX_BITS)
		return ERR_INVALID_ARG;
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits)) ==
	    NULL)
		return ERR_CRYPTO;
	*out = pkey;
	return 0;
}

int
crypto_ecdsa_raw_to_der(const uint8_t raw[CRYPTO_ECDSA_SIG_LEN],
    uint8_t **der, size_t *der_len)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *tmp = NULL;
	uint8_t *copy = NULL;
	int n, r = ERR_CRYPTO;

	return_val_if_fail(raw != NULL && der != NULL && der_len != NULL,
	    ERR_INVALID_ARG);
	if ((sig = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(raw, 32, NULL)) == NULL ||
	    (bs = BN_bin2bn(raw + 32, 32, NULL)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if (ECDSA_SIG_set0(sig, br, bs) != 1)
		goto out;
	br = bs = NULL;	/* transferred */
	if ((n = i2d_ECDSA_SIG(sig, &tmp)) <= 0)
		goto out;
	if ((copy = malloc((size_t)n)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	memcpy(copy, tmp, (size_t)n);
	*der = copy;
	*der_len = (size_t)n;
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	OPENSSL_free(tmp);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(sig);
	return r;
}

/*
 * DER ECDSA-Sig-Value to raw r||s.  Strict: one SEQUENCE and nothing after
 * it, encoded exactly as OpenSSL would encode it (minimal INTEGERs), both
 * values non-negative and at most 32 bytes.  raw is untouched on failure.
 */
int
crypto_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
    uint8_t raw[CRYPTO_ECDSA_SIG_LEN])
{
	const unsigned char *p = der;
	const BIGNUM *br, *bs;
	ECDSA_SIG *sig = NULL;
	unsigned char *canon = NULL;
	uint8_t tmp[CRYPTO_ECDSA_SIG_LEN];
	int n, r = ERR_FORMAT;

	return_val_if_fail(der != NULL || der_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(raw != NULL, ERR_INVALID_ARG);
	/* 2 + 2 * (2 + 33) bytes at most for 32-byte values. */
	if (der_len == 0 || der_len > 72)
		goto out;
	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL ||
	    p != der + der_len)
		goto out;
	if ((n = i2d_ECDSA_SIG(sig, &canon)) <= 0 || (size_t)n != der_len ||
	    memcmp(canon, der, der_len) != 0)
		goto out;
	ECDSA_SIG_get0(sig, &br, &bs);
	if (BN_is_negative(br) || BN_is_negative(bs) ||
	    BN_num_bytes(br) > 32 || BN_num_bytes(bs) > 32)
		goto out;
	if (BN_bn2binpad(br, tmp, 32) != 32 ||
	    BN_bn2binpad(bs, tmp + 32, 32) != 32) {
		r = ERR_CRYPTO;
		goto out;
	}
	memcpy(raw, tmp, sizeof(tmp));
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	OPENSSL_free(canon);
	ECDSA_SIG_free(sig);
	return r;
}

/*
 * Verification.  r and s are range-checked here (1 <= r, s < n) before
 * OpenSSL sees them, so an out-of-range value is ERR_SIGNATURE whatever the
 * library would do with it.  Any result but a valid signature is
 * ERR_SIGNATURE; ERR_CRYPTO only when OpenSSL cannot run at all.
 */
int
crypto_ecdsa_verify(EVP_PKEY *pub, const uint8_t digest[CRYPTO_SHA256_LEN],
    const uint8_t sig[CRYPTO_ECDSA_SIG_LEN])
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r = ERR_CRYPTO;

	return_val_if_fail(digest != NULL && sig != NULL, ERR_INVALID_ARG);
	if (!crypto_is_p256(pub))
		return ERR_INVALID_ARG;
	if (!p256_scalar_in_range(sig) || !p256_scalar_in_range(sig + 32))
		return ERR_SIGNATURE;
	if ((r = crypto_ecdsa_raw_to_der(sig, &der, &der_len)) != 0)
		goto out;
	r = ERR_CRYPTO;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL)) == NULL ||
	    EVP_PKEY_verify_init(pctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1)
		goto out;
	if (EVP_PKEY_verify(pctx, der, der_len, digest,
	    CRYPTO_SHA256_LEN) != 1) {
		r = ERR_SIGNATURE;
		goto out;
	}
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	free(der);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

int
crypto_ecdsa_sign(EVP_PKEY *priv, const uint8_t digest[CRYPTO_SHA256_LEN],
    uint8_t sig[CRYPTO_ECDSA_SIG_LEN])
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t der[80];
	size_t der_len = sizeof(der);
	int r = ERR_CRYPTO;

	return_val_if_fail(digest != NULL && sig != NULL, ERR_INVALID_ARG);
	if (!crypto_is_p256(priv))
		return ERR_INVALID_ARG;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL ||
	    EVP_PKEY_sign_init(pctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_sign(pctx, der, &der_len, digest,
	    CRYPTO_SHA256_LEN) != 1)
		goto out;
	if (crypto_ecdsa_der_to_raw(der, der_len, sig) != 0)
		goto out;
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/* ECDH on P-256 with a peer key that was validated when it was made. */
int
crypto_ecdh(EVP_PKEY *priv, EVP_PKEY *peer,
    uint8_t out[CRYPTO_P256_SCALAR_LEN])
{
	EVP_PKEY_CTX *pctx = NULL;
	size_t len = CRYPTO_P256_SCALAR_LEN;
	int r = ERR_CRYPTO;

	return_val_if_fail(out != NULL, ERR_INVALID_ARG);
	if (!crypto_is_p256(priv) || !crypto_is_p256(peer))
		return ERR_INVALID_ARG;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL ||
	    EVP_PKEY_derive_init(pctx) != 1)
		goto out;
	/* No second validation: every peer EVP_PKEY in devid comes from
	 * crypto_spki_import, crypto_ec_point_to_pkey or key generation, and
	 * those validate the point already (see crypto.h). */
	if (EVP_PKEY_derive_set_peer_ex(pctx, peer, 0) != 1) {
		r = ERR_FORMAT;
		goto out;
	}
	if (EVP_PKEY_derive(pctx, out, &len) != 1 ||
	    len != CRYPTO_P256_SCALAR_LEN)
		goto out;
	r = 0;
 out:
	if (r != 0) {
		crypto_wipe(out, CRYPTO_P256_SCALAR_LEN);
		ERR_clear_error();
	}
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/* Sets RSA-OAEP with SHA-256 for both hashes and the empty label. */
static int
oaep_params(EVP_PKEY_CTX *pctx)
{
	if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
		return ERR_CRYPTO;
	return 0;
}

int
crypto_rsa_oaep_encrypt(EVP_PKEY *pub, const uint8_t *pt, size_t pt_len,
    uint8_t **ct, size_t *ct_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = ERR_CRYPTO;

	return_val_if_fail(pt != NULL || pt_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(ct != NULL && ct_len != NULL, ERR_INVALID_ARG);
	if (!crypto_is_rsa(pub))
		return ERR_INVALID_ARG;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pctx) != 1 || oaep_params(pctx) != 0 ||
	    EVP_PKEY_encrypt(pctx, NULL, &len, pt, pt_len) != 1)
		goto out;
	if ((buf = malloc(len)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	/* Fails (too long for the modulus) before writing anything secret. */
	if (EVP_PKEY_encrypt(pctx, buf, &len, pt, pt_len) != 1) {
		r = ERR_INVALID_ARG;
		goto out;
	}
	*ct = buf;
	buf = NULL;	/* transferred */
	*ct_len = len;
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	free(buf);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/*
 * Decrypts into a scratch buffer of the modulus size and copies at most
 * out_max bytes out; the scratch copy is wiped.  Every padding or length
 * failure is ERR_DECRYPT.
 */
int
crypto_rsa_oaep_decrypt(EVP_PKEY *priv, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *buf = NULL;
	size_t buf_len = 0, len;
	int r = ERR_CRYPTO;

	return_val_if_fail(ct != NULL || ct_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(out_len != NULL, ERR_INVALID_ARG);
	return_val_if_fail(out != NULL || out_max == 0, ERR_INVALID_ARG);
	if (!crypto_is_rsa(priv))
		return ERR_INVALID_ARG;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL ||
	    EVP_PKEY_decrypt_init(pctx) != 1 || oaep_params(pctx) != 0)
		goto out;
	buf_len = (size_t)EVP_PKEY_get_size(priv);
	if ((buf = malloc(buf_len)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	len = buf_len;
	if (ct_len == 0 ||
	    EVP_PKEY_decrypt(pctx, buf, &len, ct, ct_len) != 1 ||
	    len > out_max) {
		r = ERR_DECRYPT;
		goto out;
	}
	if (len > 0)
		memcpy(out, buf, len);
	*out_len = len;
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	if (buf != NULL) {
		crypto_wipe(buf, buf_len);
		free(buf);
	}
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/* The PEM reader's passphrase callback: devid key files are not encrypted,
 * and OpenSSL must never prompt on a terminal. */
static int
pem_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

int
crypto_pkey_load_pem_any(const char *path, EVP_PKEY **out, struct err_ctx *e)
{
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ERR_IO;

	return_val_if_fail(path != NULL && out != NULL, ERR_INVALID_ARG);
	r = fileio_read(path, PEM_FILE_MAX, FILEIO_FOLLOW | FILEIO_PRIVATE |
	    FILEIO_SECRET, &data, &len, e);
	if (r == ERR_TOO_LARGE)
		r = ERR_FORMAT;
	if (r != 0) {
		r = err_wrap(e, r, "key file: %s", err_msg(e));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		r = err_set(e, ERR_ALLOC, "key file %s: out of memory", path);
		goto out;
	}
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, pem_no_passphrase,
	    NULL)) == NULL) {
		r = err_set(e, ERR_FORMAT, "key file %s: not an unencrypted "
		    "PEM private key", path);
		goto out;
	}
	*out = pkey;
	pkey = NULL;	/* transferred */
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

int
crypto_pkey_load_pem(const char *path, EVP_PKEY **out, struct err_ctx *e)
{
	EVP_PKEY *pkey = NULL;
	int r;

	if ((r = crypto_pkey_load_pem_any(path, &pkey, e)) != 0)
		return r;
	if (!crypto_is_p256(pkey) && !crypto_is_rsa(pkey)) {
		EVP_PKEY_free(pkey);
		return err_set(e, ERR_UNSUPPORTED, "key file %s: key type not "
		    "supported (expected EC P-256 or RSA 2048-4096)", path);
	}
	*out = pkey;
	return 0;
}

/*
 * Writes pkey as an unencrypted PKCS#8 PEM file.  The file is created with
 * O_EXCL and mode 0600 (an existing file, or a symlink in its place, is
 * ERR_EXISTS and left alone), synced, and removed again if any step fails.
 * The PEM text is built in OpenSSL's secure heap, which is wiped on free.
 */
int
crypto_pkey_save_pem(const char *path, EVP_PKEY *pkey, struct err_ctx *e)
{
	BIO *bio = NULL;
	char *pem = NULL;
	long pem_len;
	int r = ERR_IO;

	return_val_if_fail(path != NULL && pkey != NULL, ERR_INVALID_ARG);
	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		r = err_set(e, ERR_ALLOC, "key file %s: out of memory", path);
		goto out;
	}
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || (pem_len = BIO_get_mem_data(bio, &pem)) <= 0) {
		r = err_set(e, ERR_CRYPTO, "key file %s: cannot encode the "
		    "private key", path);
		goto out;
	}
	if ((r = fileio_write_new(path, pem, (size_t)pem_len, 0600, e)) != 0) {
		r = err_wrap(e, r, "key file: %s", err_msg(e));
		goto out;
	}
	r = 0;
 out:
	if (r != 0)
		ERR_clear_error();
	BIO_free(bio);
	return r;
}
