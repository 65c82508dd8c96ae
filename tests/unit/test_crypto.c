/*
 * test_crypto.c - the OpenSSL helpers: known answers for SHA-256, HKDF and
 * AES-GCM, strict SPKI and signature parsing, ECDSA, ECDH, RSA-OAEP and
 * PEM key files.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "errors.h"

/* Keys made once for the whole run: RSA key generation is slow. */
struct keys {
	EVP_PKEY *ec;
	EVP_PKEY *rsa2048;
	EVP_PKEY *rsa1024;
};

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes lowercase hex into out, which must hold strlen(s)/2 bytes. */
static size_t
unhex(const char *s, uint8_t *out, size_t out_max)
{
	size_t i, n = strlen(s) / 2;

	assert_int_equal(strlen(s) % 2, 0);
	assert_true(n <= out_max);
	for (i = 0; i < n; i++) {
		assert_true(hexval(s[2 * i]) >= 0 && hexval(s[2 * i + 1]) >= 0);
		out[i] = (uint8_t)(hexval(s[2 * i]) << 4 |
		    hexval(s[2 * i + 1]));
	}
	return n;
}

static int
all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static int
setup_keys(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	if (k == NULL || crypto_ec_generate(&k->ec) != 0 ||
	    crypto_rsa_generate(2048, &k->rsa2048) != 0 ||
	    crypto_rsa_generate(1024, &k->rsa1024) != 0)
		return -1;
	*state = k;
	return 0;
}

static int
teardown_keys(void **state)
{
	struct keys *k = *state;

	EVP_PKEY_free(k->ec);
	EVP_PKEY_free(k->rsa2048);
	EVP_PKEY_free(k->rsa1024);
	free(k);
	return 0;
}

/* --- hashing, HKDF, randomness, comparison --- */

static void
test_sha256(void **state)
{
	uint8_t out[CRYPTO_SHA256_LEN], want[CRYPTO_SHA256_LEN];

	(void)state;
	assert_int_equal(crypto_sha256("abc", 3, out), 0);
	unhex("ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad",
	    want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	assert_int_equal(crypto_sha256(NULL, 0, out), 0);
	unhex("e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855",
	    want, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* RFC 5869 appendix A.1 (test case 1). */
static void
test_hkdf_rfc5869_case1(void **state)
{
	uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];
	uint8_t want_prk[32], want_okm[42];
	size_t i;

	(void)state;
	memset(ikm, 0x0b, sizeof(ikm));
	for (i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);
	unhex("077709362c2e32df0ddc3f0dc47bba63"
	    "90b6c73bb50f9c3122ec844ad7c2b3e5",
	    want_prk, sizeof(want_prk));
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	    "34007208d5b887185865", want_okm, sizeof(want_okm));

	assert_int_equal(crypto_hkdf_extract(salt, sizeof(salt), ikm,
	    sizeof(ikm), prk), 0);
	assert_memory_equal(prk, want_prk, sizeof(prk));
	assert_int_equal(crypto_hkdf_expand(prk, info, sizeof(info), okm,
	    sizeof(okm)), 0);
	assert_memory_equal(okm, want_okm, sizeof(okm));
}

/* RFC 5869 appendix A.3 (test case 3): empty salt and info. */
static void
test_hkdf_rfc5869_case3(void **state)
{
	uint8_t ikm[22], prk[32], okm[42], want_prk[32], want_okm[42];

	(void)state;
	memset(ikm, 0x0b, sizeof(ikm));
	unhex("19ef24a32c717b167f33a91d6f648bdf"
	    "96596776afdb6377ac434c1c293ccb04",
	    want_prk, sizeof(want_prk));
	unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	    "9d201395faa4b61a96c8", want_okm, sizeof(want_okm));

	assert_int_equal(crypto_hkdf_extract(NULL, 0, ikm, sizeof(ikm), prk),
	    0);
	assert_memory_equal(prk, want_prk, sizeof(prk));
	assert_int_equal(crypto_hkdf_expand(prk, NULL, 0, okm, sizeof(okm)),
	    0);
	assert_memory_equal(okm, want_okm, sizeof(okm));
}

static void
test_hkdf_limits(void **state)
{
	static uint8_t big[CRYPTO_HKDF_INFO_MAX + 1];
	uint8_t prk[32], okm[32];
	uint8_t *huge;

	(void)state;
	memset(prk, 0x42, sizeof(prk));
	assert_int_equal(crypto_hkdf_expand(prk, NULL, 0, okm, 0),
	    ERR_INVALID_ARG);
	huge = malloc(255 * 32 + 1);
	assert_non_null(huge);
	assert_int_equal(crypto_hkdf_expand(prk, NULL, 0, huge, 255 * 32), 0);
	assert_int_equal(crypto_hkdf_expand(prk, NULL, 0, huge, 255 * 32 + 1),
	    ERR_INVALID_ARG);
	free(huge);
	assert_int_equal(crypto_hkdf_expand(prk, big, CRYPTO_HKDF_INFO_MAX,
	    okm, sizeof(okm)), 0);
	assert_int_equal(crypto_hkdf_expand(prk, big, sizeof(big), okm,
	    sizeof(okm)), ERR_TOO_LARGE);
}

static void
test_random_and_memeq(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	assert_int_equal(crypto_random(a, sizeof(a)), 0);
	assert_int_equal(crypto_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(crypto_random(NULL, 0), 0);

	memcpy(b, a, sizeof(a));
	assert_int_equal(crypto_memeq_ct(a, b, sizeof(a)), 0);
	b[31] ^= 0x01;
	assert_int_not_equal(crypto_memeq_ct(a, b, sizeof(a)), 0);
	b[31] ^= 0x01;
	b[0] ^= 0x80;
	assert_int_not_equal(crypto_memeq_ct(a, b, sizeof(a)), 0);
	assert_int_equal(crypto_memeq_ct(a, b, 0), 0);

	crypto_wipe(a, sizeof(a));
	assert_true(all_zero(a, sizeof(a)));
	crypto_wipe(NULL, 10);
}

/* --- AES-GCM --- */

/* GCM specification (McGrew and Viega) test cases 1 and 2: zero key, zero
 * IV, empty and one-block zero plaintext. */
static void
test_gcm_known_answer(void **state)
{
	uint8_t key[16], nonce[12], pt[16], out[32], want[32];

	(void)state;
	memset(key, 0, sizeof(key));
	memset(nonce, 0, sizeof(nonce));
	memset(pt, 0, sizeof(pt));
	assert_int_equal(crypto_aes_gcm_seal(key, 16, nonce, NULL, 0, NULL, 0,
	    out), 0);
	unhex("58e2fccefa7e3061367f1d57a4e7455a", want, sizeof(want));
	assert_memory_equal(out, want, 16);
	assert_int_equal(crypto_aes_gcm_open(key, 16, nonce, NULL, 0, out, 16,
	    NULL), 0);

	assert_int_equal(crypto_aes_gcm_seal(key, 16, nonce, NULL, 0, pt,
	    sizeof(pt), out), 0);
	unhex("0388dace60b6a392f328c2b971b2fe78"
	    "ab6e47d42cec13bdf53a67b21257bddf",
	    want, sizeof(want));
	assert_memory_equal(out, want, 32);
}

static void
gcm_round_trip(size_t key_len)
{
	static const uint8_t aad[] = "header";
	static const uint8_t pt[] = "the content key or a message body";
	uint8_t key[32], nonce[12], ct[sizeof(pt) + 16], back[sizeof(pt)];
	size_t i;

	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_random(nonce, sizeof(nonce)), 0);
	assert_int_equal(crypto_aes_gcm_seal(key, key_len, nonce, aad,
	    sizeof(aad), pt, sizeof(pt), ct), 0);
	assert_memory_not_equal(ct, pt, sizeof(pt));
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad), ct, sizeof(ct), back), 0);
	assert_memory_equal(back, pt, sizeof(pt));

	/* Every flipped bit of the ciphertext and tag is caught, and the
	 * output is wiped. */
	for (i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 0x04;
		memset(back, 0xaa, sizeof(back));
		assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
		    sizeof(aad), ct, sizeof(ct), back), ERR_DECRYPT);
		assert_true(all_zero(back, sizeof(back)));
		assert_int_equal(ERR_peek_error(), 0);
		ct[i] ^= 0x04;
	}
	/* Wrong aad, missing aad, wrong nonce, wrong key. */
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad) - 1, ct, sizeof(ct), back), ERR_DECRYPT);
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, NULL, 0, ct,
	    sizeof(ct), back), ERR_DECRYPT);
	nonce[11] ^= 1;
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad), ct, sizeof(ct), back), ERR_DECRYPT);
	nonce[11] ^= 1;
	key[0] ^= 1;
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad), ct, sizeof(ct), back), ERR_DECRYPT);
	key[0] ^= 1;
	/* Truncated below a tag. */
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad), ct, 15, back), ERR_DECRYPT);
	assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
	    sizeof(aad), ct, sizeof(ct) - 1, back), ERR_DECRYPT);

	/* In place. */
	memcpy(back, pt, sizeof(pt));
	{
		uint8_t buf[sizeof(pt) + 16];

		memcpy(buf, pt, sizeof(pt));
		assert_int_equal(crypto_aes_gcm_seal(key, key_len, nonce, aad,
		    sizeof(aad), buf, sizeof(pt), buf), 0);
		assert_memory_equal(buf, ct, sizeof(ct));
		assert_int_equal(crypto_aes_gcm_open(key, key_len, nonce, aad,
		    sizeof(aad), buf, sizeof(buf), buf), 0);
		assert_memory_equal(buf, pt, sizeof(pt));
	}
}

static void
test_gcm_128(void **state)
{
	(void)state;
	gcm_round_trip(16);
}

static void
test_gcm_256(void **state)
{
	uint8_t key[32], nonce[12], ct128[16 + 16], ct256[16 + 16];
	static const uint8_t pt[16] = "sixteen bytes!!";

	(void)state;
	gcm_round_trip(32);
	/* The key length picks the cipher: same first 16 key bytes, different
	 * results. */
	memset(key, 0x17, sizeof(key));
	memset(nonce, 0x01, sizeof(nonce));
	assert_int_equal(crypto_aes_gcm_seal(key, 16, nonce, NULL, 0, pt,
	    sizeof(pt), ct128), 0);
	assert_int_equal(crypto_aes_gcm_seal(key, 32, nonce, NULL, 0, pt,
	    sizeof(pt), ct256), 0);
	assert_memory_not_equal(ct128, ct256, sizeof(ct128));
	assert_int_equal(crypto_aes_gcm_open(key, 16, nonce, NULL, 0, ct256,
	    sizeof(ct256), ct128), ERR_DECRYPT);
	/* Other key sizes are refused. */
	assert_int_equal(crypto_aes_gcm_seal(key, 24, nonce, NULL, 0, pt,
	    sizeof(pt), ct128), ERR_INVALID_ARG);
	assert_int_equal(crypto_aes_gcm_open(key, 24, nonce, NULL, 0, ct256,
	    sizeof(ct256), ct128), ERR_INVALID_ARG);
}

/* --- SPKI --- */

static void
spki_round_trip(EVP_PKEY *pkey)
{
	uint8_t *der = NULL, *der2 = NULL;
	size_t der_len = 0, der2_len = 0;
	EVP_PKEY *back = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_spki_export(pkey, &der, &der_len), 0);
	assert_true(der_len > 0 && der_len <= CRYPTO_SPKI_MAX);
	assert_int_equal(crypto_spki_import(der, der_len, &back, &e), 0);
	assert_int_equal(EVP_PKEY_eq(pkey, back), 1);
	assert_int_equal(crypto_spki_export(back, &der2, &der2_len), 0);
	assert_int_equal(der2_len, der_len);
	assert_memory_equal(der2, der, der_len);
	free(der);
	free(der2);
	EVP_PKEY_free(back);
}

static void
test_spki_round_trip(void **state)
{
	struct keys *k = *state;

	spki_round_trip(k->ec);
	spki_round_trip(k->rsa2048);
	assert_true(crypto_is_p256(k->ec));
	assert_false(crypto_is_rsa(k->ec));
	assert_true(crypto_is_rsa(k->rsa2048));
	assert_false(crypto_is_p256(k->rsa2048));
	assert_false(crypto_is_rsa(k->rsa1024));
	assert_false(crypto_is_p256(NULL));
}

/* Expects import of der to fail with ERR_FORMAT and a message. */
static void
assert_spki_rejected(const uint8_t *der, size_t der_len)
{
	EVP_PKEY *pkey = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_spki_import(der, der_len, &pkey, &e),
	    ERR_FORMAT);
	assert_null(pkey);
	assert_int_equal(e.code, ERR_FORMAT);
	assert_true(strlen(e.msg) > 0);
	/* Nothing is left on OpenSSL's error queue for others to trip on. */
	assert_int_equal(ERR_peek_error(), 0);
}

/* DER SPKI straight from OpenSSL, for keys devid itself would refuse. */
static void
openssl_spki(EVP_PKEY *pkey, uint8_t **der, size_t *der_len)
{
	unsigned char *p = NULL;
	int n = i2d_PUBKEY(pkey, &p);

	assert_true(n > 0);
	*der = malloc((size_t)n);
	assert_non_null(*der);
	memcpy(*der, p, (size_t)n);
	*der_len = (size_t)n;
	OPENSSL_free(p);
}

static void
test_spki_reject_key_types(void **state)
{
	struct keys *k = *state;
	EVP_PKEY *p384, *x25519;
	uint8_t *der;
	size_t der_len;

	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(p384);
	openssl_spki(p384, &der, &der_len);
	assert_spki_rejected(der, der_len);
	free(der);
	EVP_PKEY_free(p384);

	x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	assert_non_null(x25519);
	openssl_spki(x25519, &der, &der_len);
	assert_spki_rejected(der, der_len);
	free(der);
	EVP_PKEY_free(x25519);

	openssl_spki(k->rsa1024, &der, &der_len);
	assert_spki_rejected(der, der_len);
	free(der);
}

/* An RSA public key with modulus n and exponent e, as SPKI DER. */
static void
rsa_spki(const BIGNUM *n, const BIGNUM *e, uint8_t **der, size_t *der_len)
{
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pkey = NULL;

	assert_non_null(bld = OSSL_PARAM_BLD_new());
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n),
	    1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e),
	    1);
	assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
	assert_non_null(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL));
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
	    params), 1);
	openssl_spki(pkey, der, der_len);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
}

/* crypto_spki_import()'s answer for RSA (n, e), asked 20 times: it must
 * be the same every time (the check draws nothing at random). */
static int
rsa_verdict(const BIGNUM *n, const BIGNUM *e)
{
	EVP_PKEY *pkey;
	struct err_ctx err;
	uint8_t *der;
	size_t der_len;
	int i, r, first = 1;

	rsa_spki(n, e, &der, &der_len);
	for (i = 0; i < 20; i++) {
		pkey = NULL;
		err_clear(&err);
		r = crypto_spki_import(der, der_len, &pkey, &err);
		EVP_PKEY_free(pkey);
		if (i == 0)
			first = r;
		assert_int_equal(r, first);
	}
	free(der);
	return first;
}

/*
 * RSA moduli and exponents that no key pair has are refused, and the
 * same way every time: an even modulus, one with a small factor, a
 * prime, and exponents 3, 65536 and one above the modulus' half.
 */
static void
test_spki_rsa_sanity(void **state)
{
	struct keys *k = *state;
	BIGNUM *n = NULL, *e = NULL, *bad, *e3, *p;
	BN_CTX *ctx;

	assert_non_null(ctx = BN_CTX_new());
	assert_int_equal(EVP_PKEY_get_bn_param(k->rsa2048,
	    OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(k->rsa2048,
	    OSSL_PKEY_PARAM_RSA_E, &e), 1);
	assert_non_null(bad = BN_new());
	assert_non_null(e3 = BN_new());
	assert_non_null(p = BN_new());
	assert_int_equal(rsa_verdict(n, e), 0);
	/* even */
	assert_non_null(BN_copy(bad, n));
	assert_int_equal(BN_add_word(bad, 1), 1);
	assert_int_equal(rsa_verdict(bad, e), ERR_FORMAT);
	/* 3 * 2^2046-ish + something: a multiple of a small prime */
	assert_int_equal(BN_set_word(bad, 1013), 1);
	assert_int_equal(BN_lshift(bad, bad, 2038), 1);
	assert_int_equal(BN_add_word(bad, 1013), 1);
	assert_int_equal(BN_num_bits(bad), 2048);
	assert_int_equal(rsa_verdict(bad, e), ERR_FORMAT);
	/* a prime */
	assert_int_equal(BN_generate_prime_ex(p, 2048, 0, NULL, NULL, NULL),
	    1);
	assert_int_equal(rsa_verdict(p, e), ERR_FORMAT);
	/* exponents */
	assert_int_equal(BN_set_word(e3, 3), 1);
	assert_int_equal(rsa_verdict(n, e3), ERR_FORMAT);
	assert_int_equal(BN_set_word(e3, 65536), 1);
	assert_int_equal(rsa_verdict(n, e3), ERR_FORMAT);
	assert_int_equal(BN_set_word(e3, 65539), 1);
	assert_int_equal(rsa_verdict(n, e3), 0);
	BN_free(p);
	BN_free(e3);
	BN_free(bad);
	BN_free(n);
	BN_free(e);
	BN_CTX_free(ctx);
}

static void
test_spki_reject_encodings(void **state)
{
	struct keys *k = *state;
	uint8_t *der = NULL, *longer;
	size_t der_len = 0, i;
	EVP_PKEY *dup;

	assert_int_equal(crypto_spki_export(k->ec, &der, &der_len), 0);
	/* Trailing garbage. */
	longer = malloc(der_len + 1);
	assert_non_null(longer);
	memcpy(longer, der, der_len);
	longer[der_len] = 0x00;
	assert_spki_rejected(longer, der_len + 1);
	free(longer);
	/* Every truncation. */
	for (i = 0; i < der_len; i++)
		assert_spki_rejected(der, i);
	/* The outer length in BER long form (0x81 nn) instead of DER. */
	assert_true(der[1] < 0x80);
	longer = malloc(der_len + 1);
	assert_non_null(longer);
	longer[0] = 0x30;
	longer[1] = 0x81;
	memcpy(longer + 2, der + 1, der_len - 1);
	assert_spki_rejected(longer, der_len + 1);
	free(longer);
	/* Not a SEQUENCE. */
	der[0] = 0x31;
	assert_spki_rejected(der, der_len);
	der[0] = 0x30;
	/* A point off the curve (last byte of y changed). */
	der[der_len - 1] ^= 0x01;
	assert_spki_rejected(der, der_len);
	der[der_len - 1] ^= 0x01;
	/* Far too large. */
	longer = calloc(1, CRYPTO_SPKI_MAX + 1);
	assert_non_null(longer);
	memcpy(longer, der, der_len);
	assert_spki_rejected(longer, CRYPTO_SPKI_MAX + 1);
	free(longer);
	free(der);

	/* The same key with a compressed point: a second encoding of one key
	 * would give it a second device id. */
	dup = EVP_PKEY_dup(k->ec);
	assert_non_null(dup);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(dup,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"), 1);
	openssl_spki(dup, &der, &der_len);
	assert_spki_rejected(der, der_len);
	free(der);
	{
		EVP_PKEY *compressed = NULL;
		uint8_t point[65], pub[33];

		/* crypto_ec_point_to_pkey refuses the compressed form too. */
		assert_int_equal(crypto_ec_point_get(k->ec, point), 0);
		pub[0] = (uint8_t)(0x02 | (point[64] & 1));
		memcpy(pub + 1, point + 1, 32);
		assert_int_equal(crypto_ec_point_to_pkey(pub, sizeof(pub),
		    &compressed), ERR_FORMAT);
		assert_null(compressed);
	}
	/* Explicit curve parameters instead of the curve's name. */
	assert_int_equal(EVP_PKEY_set_utf8_string_param(dup,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed"), 1);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(dup,
	    OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT), 1);
	openssl_spki(dup, &der, &der_len);
	assert_spki_rejected(der, der_len);
	free(der);
	EVP_PKEY_free(dup);
}

static void
test_ec_points(void **state)
{
	/* The P-256 generator: the public point of scalar 1. */
	static const char *g_hex = "046b17d1f2e12c4247f8bce6e563a440f277037d81"
	    "2deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce3357"
	    "6b315ececbb6406837bf51f5";
	static const char *n_hex = "ffffffff00000000ffffffffffffffffbce6faad"
	    "a7179e84f3b9cac2fc632551";
	struct keys *k = *state;
	uint8_t point[65], g[65], scalar[32];
	EVP_PKEY *pkey = NULL;

	assert_int_equal(crypto_ec_point_get(k->ec, point), 0);
	assert_int_equal(point[0], 0x04);
	assert_int_equal(crypto_ec_point_to_pkey(point, sizeof(point), &pkey),
	    0);
	assert_int_equal(EVP_PKEY_eq(pkey, k->ec), 1);
	EVP_PKEY_free(pkey);
	pkey = NULL;

	assert_int_equal(crypto_ec_point_to_pkey(point, 64, &pkey),
	    ERR_FORMAT);
	point[0] = 0x02;
	assert_int_equal(crypto_ec_point_to_pkey(point, 65, &pkey),
	    ERR_FORMAT);
	point[0] = 0x04;
	point[64] ^= 0x01;
	assert_int_equal(crypto_ec_point_to_pkey(point, 65, &pkey),
	    ERR_FORMAT);
	assert_null(pkey);
	assert_int_equal(crypto_ec_point_get(k->rsa2048, point),
	    ERR_INVALID_ARG);

	/* Scalars: 1 gives G; 0 and n are refused; n - 1 is fine. */
	unhex(g_hex, g, sizeof(g));
	memset(scalar, 0, sizeof(scalar));
	assert_int_equal(crypto_ec_from_scalar(scalar, &pkey),
	    ERR_INVALID_ARG);
	scalar[31] = 1;
	assert_int_equal(crypto_ec_from_scalar(scalar, &pkey), 0);
	assert_int_equal(crypto_ec_point_get(pkey, point), 0);
	assert_memory_equal(point, g, sizeof(g));
	EVP_PKEY_free(pkey);
	pkey = NULL;
	unhex(n_hex, scalar, sizeof(scalar));
	assert_int_equal(crypto_ec_from_scalar(scalar, &pkey),
	    ERR_INVALID_ARG);
	memset(scalar, 0xff, sizeof(scalar));
	assert_int_equal(crypto_ec_from_scalar(scalar, &pkey),
	    ERR_INVALID_ARG);
	unhex(n_hex, scalar, sizeof(scalar));
	scalar[31] -= 1;
	assert_int_equal(crypto_ec_from_scalar(scalar, &pkey), 0);
	/* (n - 1) G = -G: same x as G, y negated. */
	assert_int_equal(crypto_ec_point_get(pkey, point), 0);
	assert_memory_equal(point, g, 33);
	assert_memory_not_equal(point + 33, g + 33, 32);
	EVP_PKEY_free(pkey);
}

/* --- ECDSA --- */

static void
test_sig_encodings(void **state)
{
	struct keys *k = *state;
	uint8_t digest[32], raw[64], raw2[64], *der = NULL, bad[80];
	size_t der_len = 0, i;

	assert_int_equal(crypto_sha256("message", 7, digest), 0);
	assert_int_equal(crypto_ecdsa_sign(k->ec, digest, raw), 0);
	assert_int_equal(crypto_ecdsa_raw_to_der(raw, &der, &der_len), 0);
	assert_int_equal(der[0], 0x30);
	assert_int_equal(crypto_ecdsa_der_to_raw(der, der_len, raw2), 0);
	assert_memory_equal(raw, raw2, 64);

	/* Small values are left-padded in raw form and minimal in DER. */
	memset(raw, 0, sizeof(raw));
	raw[31] = 0x01;
	raw[63] = 0x80;
	free(der);
	assert_int_equal(crypto_ecdsa_raw_to_der(raw, &der, &der_len), 0);
	{
		static const uint8_t want[] = { 0x30, 0x07, 0x02, 0x01, 0x01,
			0x02, 0x02, 0x00, 0x80 };

		assert_int_equal(der_len, sizeof(want));
		assert_memory_equal(der, want, sizeof(want));
	}
	assert_int_equal(crypto_ecdsa_der_to_raw(der, der_len, raw2), 0);
	assert_memory_equal(raw, raw2, 64);

	/* Malformed DER; raw2 is left alone. */
	memset(raw2, 0x5a, sizeof(raw2));
	memcpy(bad, der, der_len);
	bad[der_len] = 0;
	assert_int_equal(crypto_ecdsa_der_to_raw(bad, der_len + 1, raw2),
	    ERR_FORMAT);                                  /* trailing byte */
	for (i = 0; i < der_len; i++)
		assert_int_equal(crypto_ecdsa_der_to_raw(der, i, raw2),
		    ERR_FORMAT);                          /* truncated */
	{
		/* Non-minimal INTEGER (leading zero). */
		static const uint8_t nonmin[] = { 0x30, 0x08, 0x02, 0x02, 0x00,
			0x01, 0x02, 0x02, 0x00, 0x80 };
		/* Negative s. */
		static const uint8_t neg[] = { 0x30, 0x06, 0x02, 0x01, 0x01,
			0x02, 0x01, 0x80 };
		/* Wrong outer tag. */
		static const uint8_t tag[] = { 0x31, 0x06, 0x02, 0x01, 0x01,
			0x02, 0x01, 0x01 };
		/* BER long-form length where DER needs the short form. */
		static const uint8_t longlen[] = { 0x30, 0x81, 0x06, 0x02,
			0x01, 0x01, 0x02, 0x01, 0x01 };
		/* Three integers. */
		static const uint8_t three[] = { 0x30, 0x09, 0x02, 0x01, 0x01,
			0x02, 0x01, 0x01, 0x02, 0x01, 0x01 };
		uint8_t wide[2 + 2 + 33 + 3];

		assert_int_equal(crypto_ecdsa_der_to_raw(nonmin,
		    sizeof(nonmin), raw2), ERR_FORMAT);
		assert_int_equal(crypto_ecdsa_der_to_raw(neg, sizeof(neg),
		    raw2), ERR_FORMAT);
		assert_int_equal(crypto_ecdsa_der_to_raw(tag, sizeof(tag),
		    raw2), ERR_FORMAT);
		assert_int_equal(crypto_ecdsa_der_to_raw(three, sizeof(three),
		    raw2), ERR_FORMAT);
		assert_int_equal(crypto_ecdsa_der_to_raw(longlen,
		    sizeof(longlen), raw2), ERR_FORMAT);
		/* r of 33 significant bytes. */
		wide[0] = 0x30;
		wide[1] = sizeof(wide) - 2;
		wide[2] = 0x02;
		wide[3] = 33;
		memset(wide + 4, 0x01, 33);
		wide[37] = 0x02;
		wide[38] = 0x01;
		wide[39] = 0x01;
		assert_int_equal(crypto_ecdsa_der_to_raw(wide, sizeof(wide),
		    raw2), ERR_FORMAT);
		assert_int_equal(crypto_ecdsa_der_to_raw(NULL, 0, raw2),
		    ERR_FORMAT);
	}
	for (i = 0; i < sizeof(raw2); i++)
		assert_int_equal(raw2[i], 0x5a);
	free(der);
}

static void
test_sign_verify(void **state)
{
	static const char *n_hex = "ffffffff00000000ffffffffffffffffbce6faad"
	    "a7179e84f3b9cac2fc632551";
	struct keys *k = *state;
	uint8_t digest[32], sig[64], bad[64];
	EVP_PKEY *other = NULL;

	assert_int_equal(crypto_sha256("transcript", 10, digest), 0);
	assert_int_equal(crypto_ecdsa_sign(k->ec, digest, sig), 0);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, sig), 0);

	/* A public-only copy verifies too. */
	{
		uint8_t point[65];
		EVP_PKEY *pub = NULL;

		assert_int_equal(crypto_ec_point_get(k->ec, point), 0);
		assert_int_equal(crypto_ec_point_to_pkey(point, 65, &pub), 0);
		assert_int_equal(crypto_ecdsa_verify(pub, digest, sig), 0);
		EVP_PKEY_free(pub);
	}

	digest[0] ^= 1;
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, sig),
	    ERR_SIGNATURE);
	digest[0] ^= 1;

	memcpy(bad, sig, 64);
	bad[10] ^= 1;
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memcpy(bad, sig, 64);
	bad[63] ^= 1;
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);

	/* r = 0, s = 0, r = n, s = n, r = 2^256 - 1. */
	memcpy(bad, sig, 64);
	memset(bad, 0, 32);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memcpy(bad, sig, 64);
	memset(bad + 32, 0, 32);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memcpy(bad, sig, 64);
	unhex(n_hex, bad, 32);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memcpy(bad, sig, 64);
	unhex(n_hex, bad + 32, 32);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memcpy(bad, sig, 64);
	memset(bad, 0xff, 32);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);
	memset(bad, 0, 64);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, bad),
	    ERR_SIGNATURE);

	/* Another key. */
	assert_int_equal(crypto_ec_generate(&other), 0);
	assert_int_equal(crypto_ecdsa_verify(other, digest, sig),
	    ERR_SIGNATURE);
	EVP_PKEY_free(other);

	/* Not an EC key. */
	assert_int_equal(crypto_ecdsa_verify(k->rsa2048, digest, sig),
	    ERR_INVALID_ARG);
	assert_int_equal(crypto_ecdsa_sign(k->rsa2048, digest, sig),
	    ERR_INVALID_ARG);
}

/* --- ECDH --- */

static void
test_ecdh(void **state)
{
	struct keys *k = *state;
	EVP_PKEY *b = NULL, *a_pub = NULL, *b_pub = NULL;
	uint8_t pa[65], pb[65], s1[32], s2[32], s3[32];

	assert_int_equal(crypto_ec_generate(&b), 0);
	assert_int_equal(crypto_ec_point_get(k->ec, pa), 0);
	assert_int_equal(crypto_ec_point_get(b, pb), 0);
	assert_int_equal(crypto_ec_point_to_pkey(pa, 65, &a_pub), 0);
	assert_int_equal(crypto_ec_point_to_pkey(pb, 65, &b_pub), 0);
	assert_int_equal(crypto_ecdh(k->ec, b_pub, s1), 0);
	assert_int_equal(crypto_ecdh(b, a_pub, s2), 0);
	assert_memory_equal(s1, s2, 32);
	assert_false(all_zero(s1, 32));
	/* With itself: a different secret. */
	assert_int_equal(crypto_ecdh(k->ec, a_pub, s3), 0);
	assert_memory_not_equal(s1, s3, 32);
	assert_int_equal(crypto_ecdh(k->rsa2048, b_pub, s3), ERR_INVALID_ARG);
	assert_int_equal(crypto_ecdh(k->ec, k->rsa2048, s3), ERR_INVALID_ARG);
	EVP_PKEY_free(b);
	EVP_PKEY_free(a_pub);
	EVP_PKEY_free(b_pub);
}

/* --- RSA-OAEP --- */

static void
test_rsa_oaep(void **state)
{
	struct keys *k = *state;
	uint8_t key[32], out[512], *ct = NULL, *pub_der = NULL;
	size_t ct_len = 0, out_len = 0, pub_len = 0;
	EVP_PKEY *pub = NULL;
	struct err_ctx e;

	/* Encrypt with the public key as a sender would get it. */
	err_clear(&e);
	assert_int_equal(crypto_spki_export(k->rsa2048, &pub_der, &pub_len),
	    0);
	assert_int_equal(crypto_spki_import(pub_der, pub_len, &pub, &e), 0);
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_rsa_oaep_encrypt(pub, key, sizeof(key), &ct,
	    &ct_len), 0);
	assert_int_equal(ct_len, 256);
	assert_int_equal(crypto_rsa_oaep_decrypt(k->rsa2048, ct, ct_len, out,
	    sizeof(out), &out_len), 0);
	assert_int_equal(out_len, sizeof(key));
	assert_memory_equal(out, key, sizeof(key));

	/* Output buffer too small. */
	assert_int_equal(crypto_rsa_oaep_decrypt(k->rsa2048, ct, ct_len, out,
	    31, &out_len), ERR_DECRYPT);
	/* Tampered, truncated, empty. */
	ct[100] ^= 0x01;
	assert_int_equal(crypto_rsa_oaep_decrypt(k->rsa2048, ct, ct_len, out,
	    sizeof(out), &out_len), ERR_DECRYPT);
	ct[100] ^= 0x01;
	assert_int_equal(crypto_rsa_oaep_decrypt(k->rsa2048, ct, ct_len - 1,
	    out, sizeof(out), &out_len), ERR_DECRYPT);
	assert_int_equal(crypto_rsa_oaep_decrypt(k->rsa2048, ct, 0, out,
	    sizeof(out), &out_len), ERR_DECRYPT);
	/* A public key cannot decrypt; an EC key is not RSA. */
	assert_int_not_equal(crypto_rsa_oaep_decrypt(pub, ct, ct_len, out,
	    sizeof(out), &out_len), 0);
	assert_int_equal(crypto_rsa_oaep_encrypt(k->ec, key, sizeof(key), &ct,
	    &ct_len), ERR_INVALID_ARG);
	free(ct);
	ct = NULL;
	/* Too long for the modulus (2048 bits - 2 * 32 - 2 = 190 bytes). */
	assert_int_not_equal(crypto_rsa_oaep_encrypt(pub, out, 191, &ct,
	    &ct_len), 0);
	assert_null(ct);
	free(pub_der);
	EVP_PKEY_free(pub);
}

/* --- PEM files --- */

/* The PEM test's temporary directory, made and removed by its fixtures so
 * that it goes away even when an assertion fails. */
static char pem_dir[256];
static char pem_path[300];
static char pem_other[300];

static int
setup_pem_dir(void **state)
{
	(void)state;
	snprintf(pem_dir, sizeof(pem_dir), "%s/devid-test-crypto-XXXXXX",
	    P_tmpdir);
	if (mkdtemp(pem_dir) == NULL)
		return -1;
	snprintf(pem_path, sizeof(pem_path), "%s/head.pem", pem_dir);
	snprintf(pem_other, sizeof(pem_other), "%s/other.pem", pem_dir);
	return 0;
}

static int
teardown_pem_dir(void **state)
{
	(void)state;
	(void)unlink(pem_path);
	(void)unlink(pem_other);
	return rmdir(pem_dir) == 0 ? 0 : -1;
}

static void
test_pem_files(void **state)
{
	struct keys *k = *state;
	const char *path = pem_path, *other = pem_other;
	EVP_PKEY *back = NULL;
	struct err_ctx e;
	struct stat st, st2;
	uint8_t digest[32], sig[64];
	FILE *f;

	err_clear(&e);
	assert_int_equal(crypto_pkey_save_pem(path, k->ec, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(crypto_pkey_load_pem(path, &back, &e), 0);
	assert_int_equal(EVP_PKEY_eq(back, k->ec), 1);
	/* The loaded key is the private key: it signs. */
	assert_int_equal(crypto_sha256("x", 1, digest), 0);
	assert_int_equal(crypto_ecdsa_sign(back, digest, sig), 0);
	assert_int_equal(crypto_ecdsa_verify(k->ec, digest, sig), 0);
	EVP_PKEY_free(back);
	back = NULL;

	/* No overwrite: the file stays as it was. */
	err_clear(&e);
	assert_int_equal(crypto_pkey_save_pem(path, k->rsa2048, &e),
	    ERR_EXISTS);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st2.st_size, st.st_size);
	assert_int_equal(crypto_pkey_load_pem(path, &back, &e), 0);
	assert_int_equal(EVP_PKEY_eq(back, k->ec), 1);
	EVP_PKEY_free(back);
	back = NULL;

	/* Nor through a symlink planted where the file should go. */
	assert_int_equal(symlink(path, other), 0);
	assert_int_equal(crypto_pkey_save_pem(other, k->rsa2048, &e),
	    ERR_EXISTS);
	assert_int_equal(unlink(other), 0);

	/* An RSA key round-trips as well, with the umask ignored. */
	{
		mode_t old = umask(0);

		assert_int_equal(crypto_pkey_save_pem(other, k->rsa2048, &e),
		    0);
		umask(old);
	}
	assert_int_equal(stat(other, &st2), 0);
	assert_int_equal(st2.st_mode & 07777, 0600);
	assert_int_equal(crypto_pkey_load_pem(other, &back, &e), 0);
	assert_int_equal(EVP_PKEY_eq(back, k->rsa2048), 1);
	EVP_PKEY_free(back);
	back = NULL;
	assert_int_equal(unlink(other), 0);

	/* A key file others can read is refused. */
	assert_int_equal(chmod(path, 0640), 0);
	err_clear(&e);
	assert_int_equal(crypto_pkey_load_pem(path, &back, &e), ERR_DENIED);
	assert_null(back);
	assert_int_equal(chmod(path, 0600), 0);

	/* Missing and malformed files. */
	err_clear(&e);
	assert_int_equal(crypto_pkey_load_pem(other, &back, &e),
	    ERR_NOT_FOUND);
	f = fopen(other, "w");
	assert_non_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
	    "-----END PRIVATE KEY-----\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(other, 0600), 0);
	err_clear(&e);
	assert_int_equal(crypto_pkey_load_pem(other, &back, &e), ERR_FORMAT);
	assert_null(back);

	/* A directory is not a key file. */
	err_clear(&e);
	assert_int_not_equal(crypto_pkey_load_pem(pem_dir, &back, &e), 0);
	assert_null(back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_hkdf_rfc5869_case1),
		cmocka_unit_test(test_hkdf_rfc5869_case3),
		cmocka_unit_test(test_hkdf_limits),
		cmocka_unit_test(test_random_and_memeq),
		cmocka_unit_test(test_gcm_known_answer),
		cmocka_unit_test(test_gcm_128),
		cmocka_unit_test(test_gcm_256),
		cmocka_unit_test(test_spki_round_trip),
		cmocka_unit_test(test_spki_reject_key_types),
		cmocka_unit_test(test_spki_rsa_sanity),
		cmocka_unit_test(test_spki_reject_encodings),
		cmocka_unit_test(test_ec_points),
		cmocka_unit_test(test_sig_encodings),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_ecdh),
		cmocka_unit_test(test_rsa_oaep),
		cmocka_unit_test_setup_teardown(test_pem_files,
		    setup_pem_dir, teardown_pem_dir),
	};

	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
