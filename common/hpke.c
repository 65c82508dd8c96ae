/*
 * hpke.c - RFC 9180 base mode for DHKEM(P-256, HKDF-SHA256), HKDF-SHA256
 * and AES-128-GCM.
 *
 * Section numbers below are those of RFC 9180.  Every intermediate secret
 * (DH outputs, PRKs, private scalars, the key schedule's secret) lives on
 * the stack or in a scratch allocation and is wiped before return.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "errors.h"
#include "hpke.h"

#define HPKE_KEM_ID 0x0010
#define HPKE_KDF_ID 0x0001
#define HPKE_AEAD_ID 0x0001
#define HPKE_MODE_BASE 0x00
#define HPKE_SK_LEN 32          /* Nsk */

/* "HPKE-v1", the version label of section 4. */
static const uint8_t hpke_version[] = { 'H', 'P', 'K', 'E', '-', 'v', '1' };

/* suite_id of the KEM (section 4.1) and of the key schedule (section 5.1). */
static const uint8_t suite_kem[] = {
	'K', 'E', 'M', HPKE_KEM_ID >> 8, HPKE_KEM_ID & 0xff,
};
static const uint8_t suite_hpke[] = {
	'H', 'P', 'K', 'E',
	HPKE_KEM_ID >> 8, HPKE_KEM_ID & 0xff,
	HPKE_KDF_ID >> 8, HPKE_KDF_ID & 0xff,
	HPKE_AEAD_ID >> 8, HPKE_AEAD_ID & 0xff,
};

struct hpke_suite {
	const uint8_t *id;
	size_t id_len;
};

static const struct hpke_suite kem_suite = { suite_kem, sizeof(suite_kem) };
static const struct hpke_suite hpke_suite = { suite_hpke,
	sizeof(suite_hpke) };

/*
 * Concatenates prefix (0 or 2 bytes), "HPKE-v1", the suite id, label and
 * data into a new array in *out of *out_len bytes.  The result may hold a
 * secret: the caller wipes and frees it.
 */
static int
labeled_input(const uint8_t *prefix, size_t prefix_len,
    const struct hpke_suite *suite, const char *label, const uint8_t *data,
    size_t data_len, uint8_t **out, size_t *out_len)
{
	size_t label_len = strlen(label), len, off = 0;
	uint8_t *p;

	len = prefix_len + sizeof(hpke_version) + suite->id_len + label_len;
	if (data_len > SIZE_MAX - len)
		return ERR_TOO_LARGE;
	len += data_len;
	if ((p = malloc(len)) == NULL)
		return ERR_ALLOC;
	if (prefix_len > 0)
		memcpy(p, prefix, prefix_len);
	off += prefix_len;
	memcpy(p + off, hpke_version, sizeof(hpke_version));
	off += sizeof(hpke_version);
	memcpy(p + off, suite->id, suite->id_len);
	off += suite->id_len;
	memcpy(p + off, label, label_len);
	off += label_len;
	if (data_len > 0)
		memcpy(p + off, data, data_len);
	*out = p;
	*out_len = len;
	return 0;
}

/* LabeledExtract(salt, label, ikm) (section 4); salt may be empty. */
static int
labeled_extract(const struct hpke_suite *suite, const uint8_t *salt,
    size_t salt_len, const char *label, const uint8_t *ikm, size_t ikm_len,
    uint8_t prk[HPKE_SECRET_LEN])
{
	uint8_t *in = NULL;
	size_t in_len = 0;
	int r;

	if ((r = labeled_input(NULL, 0, suite, label, ikm, ikm_len, &in,
	    &in_len)) != 0)
		return r;
	r = crypto_hkdf_extract(salt, salt_len, in, in_len, prk);
	crypto_wipe(in, in_len);
	free(in);
	return r;
}

/* LabeledExpand(prk, label, info, L) (section 4), L = out_len. */
static int
labeled_expand(const struct hpke_suite *suite,
    const uint8_t prk[HPKE_SECRET_LEN], const char *label,
    const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	uint8_t len_be[2], *in = NULL;
	size_t in_len = 0;
	int r;

	if (out_len == 0 || out_len > 255 * HPKE_SECRET_LEN)
		return ERR_INVALID_ARG;
	len_be[0] = (uint8_t)(out_len >> 8);
	len_be[1] = (uint8_t)out_len;
	if ((r = labeled_input(len_be, sizeof(len_be), suite, label, info,
	    info_len, &in, &in_len)) != 0)
		return r;
	r = crypto_hkdf_expand(prk, in, in_len, out, out_len);
	crypto_wipe(in, in_len);
	free(in);
	return r;
}

/*
 * DeriveKeyPair for P-256 (section 7.1.3): candidates from the expanded
 * "dkp_prk" until one lies in [1, n-1].  The bitmask is 0xff for P-256, so
 * the first byte is used as is.
 */
int
hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len,
    uint8_t sk[32], uint8_t pk[HPKE_ENC_LEN])
{
	uint8_t dkp_prk[HPKE_SECRET_LEN], cand[HPKE_SK_LEN], counter;
	EVP_PKEY *key = NULL;
	unsigned int i;
	int r = ERR_INTERNAL;

	return_val_if_fail(ikm != NULL || ikm_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(sk != NULL && pk != NULL, ERR_INVALID_ARG);
	/* Nsk bytes of input keying material at least (section 7.1.3). */
	if (ikm_len < HPKE_SK_LEN)
		return ERR_INVALID_ARG;
	if ((r = labeled_extract(&kem_suite, NULL, 0, "dkp_prk", ikm, ikm_len,
	    dkp_prk)) != 0)
		goto out;
	for (i = 0; i <= 255; i++) {
		counter = (uint8_t)i;
		if ((r = labeled_expand(&kem_suite, dkp_prk, "candidate",
		    &counter, 1, cand, sizeof(cand))) != 0)
			goto out;
		cand[0] &= 0xff;
		/* crypto_ec_from_scalar refuses 0 and values >= n. */
		r = crypto_ec_from_scalar(cand, &key);
		if (r == 0)
			break;
		if (r != ERR_INVALID_ARG)
			goto out;
	}
	if (key == NULL) {
		/* DeriveKeyPairError: about 2^-8192 likely. */
		r = ERR_CRYPTO;
		goto out;
	}
	if ((r = crypto_ec_point_get(key, pk)) != 0)
		goto out;
	memcpy(sk, cand, HPKE_SK_LEN);
	r = 0;
 out:
	EVP_PKEY_free(key);
	crypto_wipe(dkp_prk, sizeof(dkp_prk));
	crypto_wipe(cand, sizeof(cand));
	return r;
}

/*
 * ExtractAndExpand (section 4.1) of dh with kem_context = enc || pkRm:
 * the KEM shared secret.
 */
static int
extract_and_expand(const uint8_t dh[HPKE_SECRET_LEN],
    const uint8_t enc[HPKE_ENC_LEN], const uint8_t pk_r[HPKE_ENC_LEN],
    uint8_t shared_secret[HPKE_SECRET_LEN])
{
	uint8_t eae_prk[HPKE_SECRET_LEN], kem_context[2 * HPKE_ENC_LEN];
	int r;

	memcpy(kem_context, enc, HPKE_ENC_LEN);
	memcpy(kem_context + HPKE_ENC_LEN, pk_r, HPKE_ENC_LEN);
	if ((r = labeled_extract(&kem_suite, NULL, 0, "eae_prk", dh,
	    HPKE_SECRET_LEN, eae_prk)) == 0)
		r = labeled_expand(&kem_suite, eae_prk, "shared_secret",
		    kem_context, sizeof(kem_context), shared_secret,
		    HPKE_SECRET_LEN);
	crypto_wipe(eae_prk, sizeof(eae_prk));
	return r;
}

/*
 * KeySchedule (section 5.1) in base mode: empty psk and psk_id.  Fills
 * key, base_nonce and exporter_secret of ctx (shared_secret already set)
 * and sets seq to 0.
 */
static int
key_schedule(struct hpke_ctx *ctx, const uint8_t *info, size_t info_len)
{
	uint8_t ksc[1 + 2 * HPKE_SECRET_LEN], secret[HPKE_SECRET_LEN];
	int r;

	ksc[0] = HPKE_MODE_BASE;
	if ((r = labeled_extract(&hpke_suite, NULL, 0, "psk_id_hash", NULL, 0,
	    ksc + 1)) != 0 ||
	    (r = labeled_extract(&hpke_suite, NULL, 0, "info_hash", info,
	    info_len, ksc + 1 + HPKE_SECRET_LEN)) != 0 ||
	    (r = labeled_extract(&hpke_suite, ctx->shared_secret,
	    HPKE_SECRET_LEN, "secret", NULL, 0, secret)) != 0 ||
	    (r = labeled_expand(&hpke_suite, secret, "key", ksc, sizeof(ksc),
	    ctx->key, HPKE_KEY_LEN)) != 0 ||
	    (r = labeled_expand(&hpke_suite, secret, "base_nonce", ksc,
	    sizeof(ksc), ctx->base_nonce, HPKE_NONCE_LEN)) != 0 ||
	    (r = labeled_expand(&hpke_suite, secret, "exp", ksc, sizeof(ksc),
	    ctx->exporter_secret, HPKE_SECRET_LEN)) != 0)
		goto out;
	ctx->seq = 0;
	r = 0;
 out:
	crypto_wipe(secret, sizeof(secret));
	return r;
}

int
hpke_dh_software(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e)
{
	EVP_PKEY *sk_r = arg, *peer = NULL;
	int r;

	return_val_if_fail(sk_r != NULL && pk_e != NULL && dh_out != NULL,
	    ERR_INVALID_ARG);
	if ((r = crypto_ec_point_to_pkey(pk_e, HPKE_ENC_LEN, &peer)) != 0)
		return err_set(e, r, "hpke: the sender's ephemeral key is not "
		    "a valid P-256 point");
	if ((r = crypto_ecdh(sk_r, peer, dh_out)) != 0)
		err_set(e, r, "hpke: ECDH with the recipient key failed");
	EVP_PKEY_free(peer);
	return r;
}

/*
 * SetupBaseS (section 5.1.1) with Encap (section 4.1), for a recipient key
 * already imported and validated (key_r) whose point is pk_r.  Without
 * ikm_e the ephemeral key is a fresh random key pair (GenerateKeyPair of
 * section 7.1.3); with it, DeriveKeyPair(ikm_e) as in the test vectors.
 */
static int
setup_base_s(EVP_PKEY *key_r, const uint8_t pk_r[HPKE_ENC_LEN],
    const uint8_t *info, size_t info_len, const uint8_t *ikm_e,
    size_t ikm_e_len, uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx *ctx,
    struct err_ctx *e)
{
	uint8_t sk_e[HPKE_SK_LEN], pk_e[HPKE_ENC_LEN], dh[HPKE_SECRET_LEN];
	EVP_PKEY *key_e = NULL;
	int r = ERR_INTERNAL;

	memset(ctx, 0, sizeof(*ctx));
	if (ikm_e == NULL)
		r = crypto_ec_generate(&key_e);
	else if ((r = hpke_derive_keypair(ikm_e, ikm_e_len, sk_e, pk_e)) == 0)
		r = crypto_ec_from_scalar(sk_e, &key_e);
	if (r == 0)
		r = crypto_ec_point_get(key_e, pk_e);
	if (r != 0) {
		r = err_set(e, r, "hpke: cannot make the ephemeral key");
		goto out;
	}
	if ((r = crypto_ecdh(key_e, key_r, dh)) != 0) {
		r = err_set(e, r, "hpke: ECDH with the recipient key failed");
		goto out;
	}
	if ((r = extract_and_expand(dh, pk_e, pk_r, ctx->shared_secret)) != 0 ||
	    (r = key_schedule(ctx, info, info_len)) != 0) {
		r = err_set(e, r, "hpke: key schedule failed");
		goto out;
	}
	memcpy(enc, pk_e, HPKE_ENC_LEN);
	r = 0;
 out:
	if (r != 0)
		hpke_ctx_wipe(ctx);
	EVP_PKEY_free(key_e);
	crypto_wipe(sk_e, sizeof(sk_e));
	crypto_wipe(dh, sizeof(dh));
	return r;
}

int
hpke_setup_base_s(const uint8_t pk_r[HPKE_ENC_LEN], const uint8_t *info,
    size_t info_len, const uint8_t *ikm_e, size_t ikm_e_len,
    uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx *ctx, struct err_ctx *e)
{
	EVP_PKEY *key_r = NULL;
	int r;

	return_val_if_fail(pk_r != NULL && enc != NULL && ctx != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(info != NULL || info_len == 0, ERR_INVALID_ARG);
	return_val_if_fail(ikm_e != NULL || ikm_e_len == 0, ERR_INVALID_ARG);
	memset(ctx, 0, sizeof(*ctx));
	if ((r = crypto_ec_point_to_pkey(pk_r, HPKE_ENC_LEN, &key_r)) != 0)
		return err_set(e, ERR_FORMAT, "hpke: the recipient public key "
		    "is not a valid P-256 point");
	r = setup_base_s(key_r, pk_r, info, info_len, ikm_e, ikm_e_len, enc,
	    ctx, e);
	EVP_PKEY_free(key_r);
	return r;
}

int
hpke_setup_base_s_key(EVP_PKEY *key_r, const uint8_t *info, size_t info_len,
    uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx *ctx, struct err_ctx *e)
{
	uint8_t pk_r[HPKE_ENC_LEN];

	return_val_if_fail(key_r != NULL && enc != NULL && ctx != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(info != NULL || info_len == 0, ERR_INVALID_ARG);
	memset(ctx, 0, sizeof(*ctx));
	if (!crypto_is_p256(key_r) || crypto_ec_point_get(key_r, pk_r) != 0)
		return err_set(e, ERR_FORMAT, "hpke: the recipient public key "
		    "is not a P-256 key");
	return setup_base_s(key_r, pk_r, info, info_len, NULL, 0, enc, ctx, e);
}

/*
 * SetupBaseR (section 5.1.1) with Decap (section 4.1).  enc is checked to
 * be a valid uncompressed P-256 point (ERR_FORMAT) before dh is called, so
 * a token never sees an invalid point.
 */
int
hpke_setup_base_r(const uint8_t enc[HPKE_ENC_LEN],
    const uint8_t pk_r[HPKE_ENC_LEN], hpke_dh_fn dh, void *dh_arg,
    const uint8_t *info, size_t info_len, struct hpke_ctx *ctx,
    struct err_ctx *e)
{
	uint8_t dh_out[HPKE_SECRET_LEN];
	EVP_PKEY *key = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(enc != NULL && pk_r != NULL && dh != NULL &&
	    ctx != NULL, ERR_INVALID_ARG);
	return_val_if_fail(info != NULL || info_len == 0, ERR_INVALID_ARG);
	memset(ctx, 0, sizeof(*ctx));
	memset(dh_out, 0, sizeof(dh_out));
	if (crypto_ec_point_to_pkey(enc, HPKE_ENC_LEN, &key) != 0) {
		r = err_set(e, ERR_FORMAT, "hpke: enc is not a valid "
		    "uncompressed P-256 point");
		goto out;
	}
	EVP_PKEY_free(key);
	key = NULL;
	if (crypto_ec_point_to_pkey(pk_r, HPKE_ENC_LEN, &key) != 0) {
		r = err_set(e, ERR_FORMAT, "hpke: the recipient public key is "
		    "not a valid P-256 point");
		goto out;
	}
	if ((r = dh(dh_arg, enc, dh_out, e)) != 0)
		goto out;
	if ((r = extract_and_expand(dh_out, enc, pk_r,
	    ctx->shared_secret)) != 0 ||
	    (r = key_schedule(ctx, info, info_len)) != 0) {
		r = err_set(e, r, "hpke: key schedule failed");
		goto out;
	}
	r = 0;
 out:
	if (r != 0)
		hpke_ctx_wipe(ctx);
	EVP_PKEY_free(key);
	crypto_wipe(dh_out, sizeof(dh_out));
	return r;
}

/* ComputeNonce (section 5.2): base_nonce XOR I2OSP(seq, Nn). */
static void
compute_nonce(const struct hpke_ctx *ctx, uint8_t nonce[HPKE_NONCE_LEN])
{
	int i;

	memcpy(nonce, ctx->base_nonce, HPKE_NONCE_LEN);
	for (i = 0; i < 8; i++)
		nonce[HPKE_NONCE_LEN - 1 - i] ^= (uint8_t)(ctx->seq >> (8 * i));
}

/*
 * Seal and Open (section 5.2).  seq is 64 bits here, far below the RFC's
 * 2^96 - 1 limit; reaching UINT64_MAX is ERR_TOO_LARGE
 * (MessageLimitReachedError), so a nonce is never reused.
 */
int
hpke_seal(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
    const uint8_t *pt, size_t pt_len, uint8_t *out)
{
	uint8_t nonce[HPKE_NONCE_LEN];
	int r;

	return_val_if_fail(ctx != NULL && out != NULL, ERR_INVALID_ARG);
	if (ctx->seq == UINT64_MAX)
		return ERR_TOO_LARGE;
	compute_nonce(ctx, nonce);
	if ((r = crypto_aes_gcm_seal(ctx->key, HPKE_KEY_LEN, nonce, aad,
	    aad_len, pt, pt_len, out)) == 0)
		ctx->seq++;
	return r;
}

int
hpke_open(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
    const uint8_t *ct, size_t ct_len, uint8_t *out)
{
	uint8_t nonce[HPKE_NONCE_LEN];
	int r;

	return_val_if_fail(ctx != NULL, ERR_INVALID_ARG);
	if (ctx->seq == UINT64_MAX)
		return ERR_TOO_LARGE;
	compute_nonce(ctx, nonce);
	if ((r = crypto_aes_gcm_open(ctx->key, HPKE_KEY_LEN, nonce, aad,
	    aad_len, ct, ct_len, out)) == 0)
		ctx->seq++;
	return r;
}

/*
 * Export (section 5.3): LabeledExpand(exporter_secret, "sec",
 * exporter_context, L) with L = out_len in 1..255*32.  The exporter context
 * is limited by CRYPTO_HKDF_INFO_MAX less the label overhead.
 */
int
hpke_export(const struct hpke_ctx *ctx, const uint8_t *exporter_context,
    size_t ctx_len, uint8_t *out, size_t out_len)
{
	return_val_if_fail(ctx != NULL && out != NULL, ERR_INVALID_ARG);
	return_val_if_fail(exporter_context != NULL || ctx_len == 0,
	    ERR_INVALID_ARG);
	return labeled_expand(&hpke_suite, ctx->exporter_secret, "sec",
	    exporter_context, ctx_len, out, out_len);
}

void
hpke_ctx_wipe(struct hpke_ctx *ctx)
{
	if (ctx != NULL)
		crypto_wipe(ctx, sizeof(*ctx));
}
