/*
 * hpke.h - RFC 9180 base mode for one suite: DHKEM(P-256, HKDF-SHA256)
 * (kem 0x0010), HKDF-SHA256 (kdf 0x0001), AES-128-GCM (aead 0x0001).
 *
 * The recipient's Diffie-Hellman step is a callback so that the private
 * key can stay in a token (TPM2_ECDH_ZGen, CKM_ECDH1_DERIVE); everything
 * else runs here.
 */
#ifndef DEVID_HPKE_H
#define DEVID_HPKE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"

#define HPKE_ENC_LEN 65      /* Nenc: uncompressed P-256 point */
#define HPKE_KEY_LEN 16      /* Nk: AES-128 */
#define HPKE_NONCE_LEN 12    /* Nn */
#define HPKE_TAG_LEN 16      /* Nt */
#define HPKE_SECRET_LEN 32   /* Nh, Nsecret */

/*
 * A context after setup.  Holds secrets: always end with hpke_ctx_wipe().
 * The fields are public for the test vectors; do not change them.
 */
struct hpke_ctx {
	uint8_t shared_secret[HPKE_SECRET_LEN];
	uint8_t key[HPKE_KEY_LEN];
	uint8_t base_nonce[HPKE_NONCE_LEN];
	uint8_t exporter_secret[HPKE_SECRET_LEN];
	uint64_t seq;
};

/*
 * The recipient's DH: computes the 32-byte x-coordinate of skR * pkE, where
 * pkE is the 65-byte uncompressed point from the sender.  Returns 0 or a
 * negative ERR_* code (with a message in e).  The callee must validate pkE
 * (on the curve) or let its token do so.  The caller wipes dh_out.
 */
typedef int (*hpke_dh_fn)(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e);

/* A hpke_dh_fn for a software private key: arg is an EVP_PKEY *. */
int hpke_dh_software(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e);

/*
 * DeriveKeyPair (RFC 9180 section 7.1.3) for P-256: the private scalar and
 * the public point from ikm, which must be at least 32 bytes
 * (ERR_INVALID_ARG).  For test vectors and deterministic keys; the caller
 * wipes sk.
 */
int hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len,
    uint8_t sk[32], uint8_t pk[HPKE_ENC_LEN]);

/*
 * SetupBaseS: encapsulates to the recipient's public key pk_r (65-byte
 * point) with info, writes enc and fills ctx.  ikm_e may be NULL (a fresh
 * random ephemeral key, the normal case) or the ikmE of a test vector.
 * Returns 0 or an ERR_* code; ctx is wiped on failure.
 */
int hpke_setup_base_s(const uint8_t pk_r[HPKE_ENC_LEN], const uint8_t *info,
    size_t info_len, const uint8_t *ikm_e, size_t ikm_e_len,
    uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx *ctx, struct err_ctx *e);

/*
 * SetupBaseS with a random ephemeral key for a recipient public key that
 * is already an EVP_PKEY (from crypto_spki_import, which validated it):
 * saves importing and validating the point again for every wrap.
 */
int hpke_setup_base_s_key(EVP_PKEY *key_r, const uint8_t *info,
    size_t info_len, uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx *ctx,
    struct err_ctx *e);

/*
 * SetupBaseR: decapsulates enc with the recipient's private key through dh
 * (pk_r is the recipient's own public point, part of the KEM context).
 * An enc or pk_r that is not a valid uncompressed P-256 point is ERR_FORMAT
 * and dh is not called.  An error from dh is returned as is.  ctx is wiped
 * on failure.  A wrong private key is not detected here: the first
 * hpke_open fails with ERR_DECRYPT.
 */
int hpke_setup_base_r(const uint8_t enc[HPKE_ENC_LEN],
    const uint8_t pk_r[HPKE_ENC_LEN], hpke_dh_fn dh, void *dh_arg,
    const uint8_t *info, size_t info_len, struct hpke_ctx *ctx,
    struct err_ctx *e);

/*
 * Seal/Open with the context's next nonce (seq is incremented on success
 * only).  Seal writes pt_len + 16 bytes; Open takes ct_len >= 16 and writes
 * ct_len - 16 bytes, returning ERR_DECRYPT (out wiped) on a bad tag and for
 * ct_len < 16.  After 2^64 - 1 messages both return ERR_TOO_LARGE.
 */
int hpke_seal(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
    const uint8_t *pt, size_t pt_len, uint8_t *out);
int hpke_open(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
    const uint8_t *ct, size_t ct_len, uint8_t *out);

/* Secret export (RFC 9180 section 5.3): out_len (1 .. 255*32) bytes.  The
 * exporter context may be up to about CRYPTO_HKDF_INFO_MAX - 32 bytes;
 * longer is ERR_TOO_LARGE. */
int hpke_export(const struct hpke_ctx *ctx, const uint8_t *exporter_context,
    size_t ctx_len, uint8_t *out, size_t out_len);

/* Wipes every secret in ctx. */
void hpke_ctx_wipe(struct hpke_ctx *ctx);

#endif /* DEVID_HPKE_H */
