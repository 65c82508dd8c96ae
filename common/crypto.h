/*
 * crypto.h - the OpenSSL 3 helpers devid uses (EVP interfaces only).
 *
 * Hashing, HKDF, AES-GCM, randomness and wiping are in crypto.c; public
 * keys (SPKI), ECDSA signature encodings, ECDH and RSA-OAEP with software
 * keys are in crypto-keys.c.  Software private keys exist only in tests,
 * in the directory's head-signing key file and in ephemeral HPKE keys:
 * device keys live in tokens (token.h).
 */
#ifndef DEVID_CRYPTO_H
#define DEVID_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_P256_POINT_LEN 65   /* uncompressed: 04 || X || Y */
#define CRYPTO_P256_SCALAR_LEN 32
#define CRYPTO_ECDSA_SIG_LEN 64    /* raw r || s */
#define CRYPTO_GCM_TAG_LEN 16
#define CRYPTO_GCM_NONCE_LEN 12
/* Largest SPKI devid accepts (RSA 4096 is ~550 bytes). */
#define CRYPTO_SPKI_MAX 1024

/* --- crypto.c --- */

/* Wipes len bytes at p so the compiler cannot elide it. */
void crypto_wipe(void *p, size_t len);

/* Constant-time comparison of len bytes: 0 when equal (also for len 0),
 * nonzero otherwise. */
int crypto_memeq_ct(const void *a, const void *b, size_t len);

/* Fills p with len bytes from the OpenSSL CSPRNG.  0 or ERR_CRYPTO. */
int crypto_random(void *p, size_t len);

/* SHA-256 of len bytes at p into out.  0 or ERR_CRYPTO. */
int crypto_sha256(const void *p, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* HKDF-SHA256 Extract (RFC 5869): prk = HMAC(salt, ikm).  salt may be
 * NULL/0 (then HashLen zero bytes are used). */
int crypto_hkdf_extract(const uint8_t *salt, size_t salt_len,
    const uint8_t *ikm, size_t ikm_len, uint8_t prk[CRYPTO_SHA256_LEN]);

/* The longest info crypto_hkdf_expand takes; longer is ERR_TOO_LARGE.
 * Early OpenSSL 3.0 releases keep HKDF info in a 1024-byte buffer. */
#define CRYPTO_HKDF_INFO_MAX 1024

/* HKDF-SHA256 Expand: out_len (1 .. 255*32) bytes from prk and info.
 * 0, ERR_INVALID_ARG, ERR_TOO_LARGE or ERR_CRYPTO; out is wiped on failure. */
int crypto_hkdf_expand(const uint8_t prk[CRYPTO_SHA256_LEN],
    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/*
 * AES-GCM with a 16- or 32-byte key (AES-128/256 chosen by key_len) and a
 * 12-byte nonce.  Seal writes pt_len bytes of ciphertext followed by the
 * 16-byte tag to out (room for pt_len + 16).  Open takes ct || tag of
 * ct_len >= 16 bytes and writes ct_len - 16 bytes of plaintext to out; on
 * a bad tag it returns ERR_DECRYPT and wipes out.  aad may be NULL/0.
 */
int crypto_aes_gcm_seal(const uint8_t *key, size_t key_len,
    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad,
    size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out);
int crypto_aes_gcm_open(const uint8_t *key, size_t key_len,
    const uint8_t nonce[CRYPTO_GCM_NONCE_LEN], const uint8_t *aad,
    size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *out);

/* --- crypto-keys.c --- */

/*
 * Parses a DER SubjectPublicKeyInfo into a new EVP_PKEY (caller frees with
 * EVP_PKEY_free).  Only EC P-256 (named curve, uncompressed point) and RSA
 * 2048..4096 are accepted, and only in the canonical DER that
 * crypto_spki_export produces, so that one key has one SPKI (and one device
 * id).  Anything else, trailing bytes, more than CRYPTO_SPKI_MAX bytes, or
 * an invalid point or modulus is ERR_FORMAT with a message in e; *out is
 * untouched on failure.
 */
int crypto_spki_import(const uint8_t *der, size_t der_len, EVP_PKEY **out,
    struct err_ctx *e);

/* Encodes the public half of pkey as DER SPKI into a new array in *der
 * (caller frees with free()) of *der_len bytes.  0, ERR_ALLOC or
 * ERR_CRYPTO. */
int crypto_spki_export(EVP_PKEY *pkey, uint8_t **der, size_t *der_len);

/*
 * The uncompressed point of a P-256 key (ERR_INVALID_ARG for another key
 * type), and a new public key (caller frees) from one: anything but 65
 * bytes starting with 0x04 that lie on the curve is ERR_FORMAT.
 */
int crypto_ec_point_get(EVP_PKEY *pkey, uint8_t out[CRYPTO_P256_POINT_LEN]);
int crypto_ec_point_to_pkey(const uint8_t *point, size_t point_len,
    EVP_PKEY **out);

/* True (1) when pkey is an EC P-256 key, 0 otherwise; likewise RSA with
 * a modulus of 2048 to 4096 bits. */
int crypto_is_p256(EVP_PKEY *pkey);
int crypto_is_rsa(EVP_PKEY *pkey);

/* ECDSA signature encodings: raw r||s (PROTOCOL.md) and DER (OpenSSL,
 * PKCS#11 returns raw, TPM returns r and s).  raw_to_der gives a new array
 * (caller frees with free()).  der_to_raw rejects values longer than 32
 * bytes, negative or non-minimal DER and trailing bytes with ERR_FORMAT,
 * leaving raw untouched. */
int crypto_ecdsa_raw_to_der(const uint8_t raw[CRYPTO_ECDSA_SIG_LEN],
    uint8_t **der, size_t *der_len);
int crypto_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
    uint8_t raw[CRYPTO_ECDSA_SIG_LEN]);

/*
 * Verifies a raw r||s signature over a SHA-256 digest with a P-256 public
 * key.  Returns 0, ERR_SIGNATURE (does not verify, including r or s out of
 * range) or ERR_CRYPTO.
 */
int crypto_ecdsa_verify(EVP_PKEY *pub, const uint8_t digest[CRYPTO_SHA256_LEN],
    const uint8_t sig[CRYPTO_ECDSA_SIG_LEN]);

/* Signs a digest with a software P-256 private key, raw r||s out.
 * ERR_INVALID_ARG when priv is not a P-256 key. */
int crypto_ecdsa_sign(EVP_PKEY *priv, const uint8_t digest[CRYPTO_SHA256_LEN],
    uint8_t sig[CRYPTO_ECDSA_SIG_LEN]);

/* Generates a software P-256 key pair (tests, ephemeral HPKE keys, the
 * directory's head key) or an RSA key of the given bits, 1024..4096 (tests;
 * below 2048 only to test that such keys are refused).  The caller frees
 * the key. */
int crypto_ec_generate(EVP_PKEY **out);
int crypto_rsa_generate(unsigned int bits, EVP_PKEY **out);

/* A P-256 key pair from its 32-byte big-endian private scalar (HPKE
 * DeriveKeyPair), public point included.  A scalar of 0 or >= the group
 * order is ERR_INVALID_ARG.  The caller frees the key. */
int crypto_ec_from_scalar(const uint8_t scalar[CRYPTO_P256_SCALAR_LEN],
    EVP_PKEY **out);

/* Software ECDH: the 32-byte x-coordinate of priv * peer (caller wipes).
 * Both must be P-256 keys (ERR_INVALID_ARG).  peer is not validated again:
 * it must come from crypto_spki_import, crypto_ec_point_to_pkey or key
 * generation, which validate.  out is wiped on failure. */
int crypto_ecdh(EVP_PKEY *priv, EVP_PKEY *peer,
    uint8_t out[CRYPTO_P256_SCALAR_LEN]);

/*
 * RSA-OAEP with SHA-256, MGF1-SHA-256 and an empty label.  encrypt writes
 * a new array (caller frees); decrypt (software keys: tests) writes at most
 * out_max bytes, returning ERR_DECRYPT on any padding failure.
 */
int crypto_rsa_oaep_encrypt(EVP_PKEY *pub, const uint8_t *pt, size_t pt_len,
    uint8_t **ct, size_t *ct_len);
int crypto_rsa_oaep_decrypt(EVP_PKEY *priv, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len);

/*
 * PEM load/save of a software private key (directory head key), EC P-256
 * or RSA 2048..4096, unencrypted PKCS#8.  save creates the file with mode
 * 0600 and refuses to overwrite it or follow a symlink (ERR_EXISTS).  load
 * refuses a file that group or others may access (ERR_DENIED), a missing
 * file is ERR_NOT_FOUND, anything that is not such a key ERR_FORMAT or
 * ERR_UNSUPPORTED; the caller frees the key.
 */
int crypto_pkey_load_pem(const char *path, EVP_PKEY **out, struct err_ctx *e);
int crypto_pkey_save_pem(const char *path, EVP_PKEY *pkey, struct err_ctx *e);

/* As crypto_pkey_load_pem() with the same file checks, for a key of any
 * type OpenSSL reads (a witness's Ed25519 key): the caller checks it. */
int crypto_pkey_load_pem_any(const char *path, EVP_PKEY **out,
    struct err_ctx *e);

#endif /* DEVID_CRYPTO_H */
