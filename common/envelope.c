/*
 * envelope.c - the message envelope: transcripts, seal and open
 * (PROTOCOL.md section 4).  The JSON side is in envelope-json.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "envelope.h"
#include "envelope-private.h"
#include "errors.h"
#include "hpke.h"
#include "token.h"
#include "transcript.h"

/* Largest RSA-OAEP ciphertext (RSA 4096) and so the largest plaintext an
 * RSA token may hand back. */
#define ENV_RSA_MAX_LEN 512

void
env_free(struct env *env)
{
	size_t i;

	if (env == NULL)
		return;
	if (env->to != NULL) {
		for (i = 0; i < env->n_to; i++)
			free(env->to[i]);
		free(env->to);
	}
	free(env->views);
	if (env->recipients != NULL) {
		for (i = 0; i < env->n_recipients; i++)
			free(env->recipients[i].wrapped);
		free(env->recipients);
	}
	free(env->ciphertext);
	free(env);
}

/* --- small shared helpers (envelope-private.h) --- */

int
env_account_valid(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > ENV_ACCOUNT_MAX ||
	    strnlen(s, len + 1) != len)
		return 0;
	return devrec_account_valid(s);
}

int
env_device_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len != ENV_DEVICE_LEN)
		return 0;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

void
env_short_id(const char *device, char out[ENV_SHORT_ID_LEN])
{
	size_t i, o = 0;

	if (device == NULL || strnlen(device, ENV_DEVICE_LEN + 1) !=
	    ENV_DEVICE_LEN) {
		memcpy(out, "?", 2);
		return;
	}
	for (i = 0; i < 16; i++) {
		if (i > 0 && i % 4 == 0)
			out[o++] = '-';
		out[o++] = device[i];
	}
	out[o] = '\0';
}

static const char *
env_alg_name(enum token_enc_alg alg)
{
	switch (alg) {
	case TOKEN_ENC_HPKE_P256:
	case TOKEN_ENC_RSA_OAEP:
		return token_enc_alg_name(alg);
	case TOKEN_ENC_NONE:
		break;
	}
	return NULL;
}

/* --- transcripts --- */

int
env_hdr(const struct env *env, struct buf *b)
{
	const struct acctlog_head *v;
	size_t i;
	int r;

	return_val_if_fail(env != NULL && b != NULL, ERR_INVALID_ARG);
	return_val_if_fail(env->n_to == 0 || env->to != NULL, ERR_INVALID_ARG);
	return_val_if_fail(env->n_views == 0 || env->views != NULL,
	    ERR_INVALID_ARG);
	if (env->n_to > UINT32_MAX || env->n_views > UINT32_MAX)
		return ERR_TOO_LARGE;
	if ((r = buf_put_tag(b, TR_TAG_MSG)) != 0 ||
	    (r = buf_put_lp(b, env->id, sizeof(env->id))) != 0 ||
	    (r = buf_put_lp_str(b, env->sender_account)) != 0 ||
	    (r = buf_put_lp_str(b, env->sender_device)) != 0 ||
	    (r = buf_put_u64(b, env->sent)) != 0 ||
	    (r = buf_put_u32(b, (uint32_t)env->n_to)) != 0)
		return r;
	for (i = 0; i < env->n_to; i++) {
		if ((r = buf_put_lp_str(b, env->to[i])) != 0)
			return r;
	}
	if ((r = buf_put_u32(b, (uint32_t)env->n_views)) != 0)
		return r;
	for (i = 0; i < env->n_views; i++) {
		v = &env->views[i];
		if ((r = buf_put_lp_str(b, v->account)) != 0 ||
		    (r = buf_put_u64(b, v->seq)) != 0 ||
		    (r = buf_put_lp(b, v->hash, sizeof(v->hash))) != 0 ||
		    (r = buf_put_u64(b, v->time)) != 0 ||
		    (r = buf_put_lp(b, v->sig, sizeof(v->sig))) != 0)
			return r;
	}
	return 0;
}

int
env_hdr_hash(const struct env *env, uint8_t out[32])
{
	struct buf *b;

	return_val_if_fail(env != NULL && out != NULL, ERR_INVALID_ARG);
	if ((b = buf_new(0)) == NULL)
		return ERR_ALLOC;
	return tr_hash_free(b, env_hdr(env, b), out);
}

/* SIG = "devid-env-sig-v1"\0 lp(H(HDR)) lp(nonce) lp(H(ciphertext))
 * u32(#recipients) { lp(device) lp(alg) lp(enc or "") lp(wrapped) }... */
static int
env_sig_transcript_hdr(const struct env *env, const uint8_t hdr_hash[32],
    struct buf *b)
{
	const struct env_recipient *rc;
	uint8_t ct_hash[CRYPTO_SHA256_LEN];
	const char *alg;
	size_t i;
	int r;

	return_val_if_fail(env->ciphertext != NULL || env->ciphertext_len == 0,
	    ERR_INVALID_ARG);
	return_val_if_fail(env->n_recipients == 0 || env->recipients != NULL,
	    ERR_INVALID_ARG);
	if (env->n_recipients > UINT32_MAX)
		return ERR_TOO_LARGE;
	if ((r = crypto_sha256(env->ciphertext == NULL ?
	    (const uint8_t *)"" : env->ciphertext, env->ciphertext_len,
	    ct_hash)) != 0)
		return r;
	if ((r = buf_put_tag(b, TR_TAG_ENV_SIG)) != 0 ||
	    (r = buf_put_lp(b, hdr_hash, 32)) != 0 ||
	    (r = buf_put_lp(b, env->nonce, sizeof(env->nonce))) != 0 ||
	    (r = buf_put_lp(b, ct_hash, sizeof(ct_hash))) != 0 ||
	    (r = buf_put_u32(b, (uint32_t)env->n_recipients)) != 0)
		return r;
	for (i = 0; i < env->n_recipients; i++) {
		rc = &env->recipients[i];
		if ((alg = env_alg_name(rc->alg)) == NULL)
			return ERR_INVALID_ARG;
		if ((r = buf_put_lp_str(b, rc->device)) != 0 ||
		    (r = buf_put_lp_str(b, alg)) != 0 ||
		    (r = buf_put_lp(b, rc->enc, rc->alg == TOKEN_ENC_HPKE_P256 ?
		    sizeof(rc->enc) : 0)) != 0 ||
		    (r = buf_put_lp(b, rc->wrapped == NULL ?
		    (const uint8_t *)"" : rc->wrapped, rc->wrapped_len)) != 0)
			return r;
	}
	return 0;
}

/* H(SIG) of env whose H(HDR) is hdr_hash. */
static int
env_sig_digest_hdr(const struct env *env, const uint8_t hdr_hash[32],
    uint8_t out[32])
{
	struct buf *b;

	if ((b = buf_new(0)) == NULL)
		return ERR_ALLOC;
	return tr_hash_free(b, env_sig_transcript_hdr(env, hdr_hash, b), out);
}

int
env_sig_digest(const struct env *env, uint8_t out[32])
{
	uint8_t hdr_hash[CRYPTO_SHA256_LEN];
	struct buf *b;
	int r;

	return_val_if_fail(env != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = env_hdr_hash(env, hdr_hash)) != 0)
		return r;
	if ((b = buf_new(0)) == NULL)
		return ERR_ALLOC;
	return tr_hash_free(b, env_sig_transcript_hdr(env, hdr_hash, b), out);
}

int
env_sig_transcript(const struct env *env, struct buf *b)
{
	uint8_t hdr_hash[CRYPTO_SHA256_LEN];
	int r;

	return_val_if_fail(env != NULL && b != NULL, ERR_INVALID_ARG);
	if ((r = env_hdr_hash(env, hdr_hash)) != 0)
		return r;
	return env_sig_transcript_hdr(env, hdr_hash, b);
}

/* HPKE info = "devid-wrap-v1"\0 lp(id) lp(recipient device id, hex). */
static int
env_wrap_info(struct buf *b, const uint8_t id[ENV_ID_LEN],
    const char *device)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_WRAP)) != 0 ||
	    (r = buf_put_lp(b, id, ENV_ID_LEN)) != 0 ||
	    (r = buf_put_lp_str(b, device)) != 0)
		return r;
	return 0;
}

/* --- sealing --- */

static int
env_cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
env_cmp_rkey_ptr(const void *a, const void *b)
{
	const struct env_recipient_key *ra =
	    *(const struct env_recipient_key *const *)a;
	const struct env_recipient_key *rb =
	    *(const struct env_recipient_key *const *)b;

	return strcmp(ra->device, rb->device);
}

/* Copies a's sender account and device into env once they are valid. */
static int
env_seal_fill_sender(struct env *env, const struct env_seal_args *a,
    struct err_ctx *e)
{
	size_t len;

	len = strnlen(a->sender_account, ENV_ACCOUNT_MAX + 1);
	if (!env_account_valid(a->sender_account, len))
		return err_set(e, ERR_INVALID_ARG, "envelope: sender account "
		    "is not a valid account name");
	memcpy(env->sender_account, a->sender_account, len + 1);
	len = strnlen(a->sender_device, ENV_DEVICE_LEN + 1);
	if (!env_device_valid(a->sender_device, len))
		return err_set(e, ERR_INVALID_ARG, "envelope: sender device is "
		    "not a 64-digit lowercase hex device id");
	memcpy(env->sender_device, a->sender_device, len + 1);
	return 0;
}

/*
 * The distinct accounts of a->to, sorted, in a new array *out of *n
 * pointers borrowed from a->to (the caller frees the array).
 */
static int
env_seal_sorted_to(const struct env_seal_args *a, const char ***out,
    size_t *n_out, struct err_ctx *e)
{
	const char **sorted;
	size_t i, n = 0;

	if (a->n_to == 0 || a->n_to > ENV_MAX_TO)
		return err_set(e, ERR_INVALID_ARG, "envelope: between 1 and %d "
		    "accounts in \"to\" are needed", ENV_MAX_TO);
	if ((sorted = calloc(a->n_to, sizeof(*sorted))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < a->n_to; i++) {
		if (a->to[i] == NULL || !env_account_valid(a->to[i],
		    strnlen(a->to[i], ENV_ACCOUNT_MAX + 1))) {
			free(sorted);
			return err_set(e, ERR_INVALID_ARG, "envelope: \"to\" "
			    "entry %zu is not a valid account name", i);
		}
		sorted[i] = a->to[i];
	}
	qsort(sorted, a->n_to, sizeof(*sorted), env_cmp_str_ptr);
	for (i = 0; i < a->n_to; i++) {
		if (n == 0 || strcmp(sorted[n - 1], sorted[i]) != 0)
			sorted[n++] = sorted[i];
	}
	*out = sorted;
	*n_out = n;
	return 0;
}

/* The one view in a->views of account, in *out. */
static int
env_seal_find_view(const struct env_seal_args *a, const char *account,
    const struct acctlog_head **out, struct err_ctx *e)
{
	const struct acctlog_head *view = NULL;
	size_t j;

	for (j = 0; j < a->n_views; j++) {
		if (strncmp(a->views[j].account, account,
		    sizeof(a->views[j].account)) != 0)
			continue;
		if (view != NULL)
			return err_set(e, ERR_INVALID_ARG, "envelope: two "
			    "views for account %s", account);
		view = &a->views[j];
	}
	if (view == NULL)
		return err_set(e, ERR_INVALID_ARG, "envelope: no view (signed "
		    "head) for account %s", account);
	*out = view;
	return 0;
}

/*
 * Copies the sender, the sorted distinct accounts of a->to and the view of
 * each into env.  Argument errors are ERR_INVALID_ARG with the reason in e.
 */
static int
env_seal_fill_to(struct env *env, const struct env_seal_args *a,
    struct err_ctx *e)
{
	const char **sorted = NULL;
	const struct acctlog_head *view = NULL;
	size_t i, n = 0;
	int r = ERR_INTERNAL, found_sender = 0;

	if ((r = env_seal_fill_sender(env, a, e)) != 0 ||
	    (r = env_seal_sorted_to(a, &sorted, &n, e)) != 0)
		goto out;
	if (a->n_views != n) {
		r = err_set(e, ERR_INVALID_ARG, "envelope: %zu views given "
		    "for %zu accounts; one signed head per account is needed",
		    a->n_views, n);
		goto out;
	}
	if ((env->to = calloc(n, sizeof(*env->to))) == NULL ||
	    (env->views = calloc(n, sizeof(*env->views))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((env->to[i] = strdup(sorted[i])) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		env->n_to++;
		if (strcmp(sorted[i], a->sender_account) == 0)
			found_sender = 1;
		if ((r = env_seal_find_view(a, sorted[i], &view, e)) != 0)
			goto out;
		env->views[i] = *view;
		env->n_views++;
	}
	if (!found_sender) {
		r = err_set(e, ERR_INVALID_ARG, "envelope: \"to\" must include "
		    "the sender's account %s", a->sender_account);
		goto out;
	}
	r = 0;
 out:
	free(sorted);
	return r;
}

/*
 * Orders a->recipients by device into env->recipients (no wrapped keys
 * yet) and returns in *keys_out the matching public keys, in that order
 * (caller frees the array).
 */
static int
env_seal_fill_recipients(struct env *env, const struct env_seal_args *a,
    EVP_PKEY ***keys_out, struct err_ctx *e)
{
	const struct env_recipient_key **sorted = NULL;
	const struct env_recipient_key *rk;
	EVP_PKEY **keys = NULL;
	size_t i, len;
	int r = ERR_INTERNAL;

	if (a->n_recipients == 0 || a->n_recipients > ENV_MAX_RECIPIENTS) {
		r = err_set(e, ERR_INVALID_ARG, "envelope: between 1 and %d "
		    "recipient devices are needed, not %zu",
		    ENV_MAX_RECIPIENTS, a->n_recipients);
		goto out;
	}
	if ((sorted = calloc(a->n_recipients, sizeof(*sorted))) == NULL ||
	    (keys = calloc(a->n_recipients, sizeof(*keys))) == NULL ||
	    (env->recipients = calloc(a->n_recipients,
	    sizeof(*env->recipients))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < a->n_recipients; i++) {
		rk = &a->recipients[i];
		if (rk->device == NULL || !env_device_valid(rk->device,
		    strnlen(rk->device, ENV_DEVICE_LEN + 1))) {
			r = err_set(e, ERR_INVALID_ARG, "envelope: recipient "
			    "%zu has no valid device id", i);
			goto out;
		}
		if (strcmp(rk->device, a->sender_device) == 0) {
			r = err_set(e, ERR_INVALID_ARG, "envelope: the sender "
			    "device cannot be a recipient of its own message");
			goto out;
		}
		if (rk->enc_pub == NULL ||
		    (rk->alg == TOKEN_ENC_HPKE_P256 &&
		    !crypto_is_p256(rk->enc_pub)) ||
		    (rk->alg == TOKEN_ENC_RSA_OAEP &&
		    (!crypto_is_rsa(rk->enc_pub) ||
		    (EVP_PKEY_get_bits(rk->enc_pub) != 2048 &&
		    EVP_PKEY_get_bits(rk->enc_pub) != 3072))) ||
		    env_alg_name(rk->alg) == NULL) {
			r = err_set(e, ERR_INVALID_ARG, "envelope: recipient "
			    "%.16s has no encryption key of its algorithm",
			    rk->device);
			goto out;
		}
		sorted[i] = rk;
	}
	qsort(sorted, a->n_recipients, sizeof(*sorted), env_cmp_rkey_ptr);
	for (i = 0; i < a->n_recipients; i++) {
		if (i > 0 && strcmp(sorted[i - 1]->device,
		    sorted[i]->device) == 0) {
			r = err_set(e, ERR_INVALID_ARG, "envelope: recipient "
			    "device %.16s is listed twice", sorted[i]->device);
			goto out;
		}
		len = strlen(sorted[i]->device);
		memcpy(env->recipients[i].device, sorted[i]->device, len + 1);
		env->recipients[i].alg = sorted[i]->alg;
		keys[i] = sorted[i]->enc_pub;
		env->n_recipients++;
	}
	*keys_out = keys;
	keys = NULL;		/* transferred */
	r = 0;
 out:
	free(sorted);
	free(keys);
	return r;
}

/* Wraps key to one hpke-p256 recipient: fills rc->enc and rc->wrapped. */
static int
env_wrap_hpke(const struct env *env, struct env_recipient *rc,
    EVP_PKEY *pub, const uint8_t hdr_hash[32], const uint8_t key[ENV_KEY_LEN],
    struct buf *info, struct err_ctx *e)
{
	struct hpke_ctx ctx;
	int r = ERR_INTERNAL;

	memset(&ctx, 0, sizeof(ctx));
	buf_reset(info);
	if ((r = env_wrap_info(info, env->id, rc->device)) != 0)
		goto out;
	if ((r = hpke_setup_base_s_key(pub, buf_ptr(info), buf_len(info),
	    rc->enc, &ctx, e)) != 0)
		goto out;
	if ((rc->wrapped = malloc(ENV_HPKE_WRAPPED_LEN)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = hpke_seal(&ctx, hdr_hash, 32, key, ENV_KEY_LEN,
	    rc->wrapped)) != 0)
		goto out;
	rc->wrapped_len = ENV_HPKE_WRAPPED_LEN;
	r = 0;
 out:
	hpke_ctx_wipe(&ctx);
	return r;
}

/* Wraps key to one rsa-oaep-sha256 recipient: fills rc->wrapped. */
static int
env_wrap_rsa(struct env_recipient *rc, EVP_PKEY *pub,
    const uint8_t key[ENV_KEY_LEN], struct err_ctx *e)
{
	uint8_t *ct = NULL;
	size_t ct_len = 0;
	int r;

	if ((r = crypto_rsa_oaep_encrypt(pub, key, ENV_KEY_LEN, &ct,
	    &ct_len)) != 0)
		return err_set(e, r, "envelope: RSA-OAEP wrap to device %.16s "
		    "failed", rc->device);
	if (ct_len != ENV_RSA2048_WRAPPED_LEN &&
	    ct_len != ENV_RSA3072_WRAPPED_LEN) {
		free(ct);
		return err_set(e, ERR_UNSUPPORTED, "envelope: device %.16s "
		    "has an RSA key that is neither 2048 nor 3072 bits",
		    rc->device);
	}
	rc->wrapped = ct;
	rc->wrapped_len = ct_len;
	return 0;
}

/*
 * The body, once: AES-256-GCM of a->payload under key with AAD = HDR of
 * env (complete but for the wraps and the signature) into
 * env->ciphertext; hdr_hash gets H(HDR), to which every wrap is bound.
 */
static int
env_seal_body(struct env *env, const struct env_seal_args *a,
    const uint8_t key[ENV_KEY_LEN], uint8_t hdr_hash[CRYPTO_SHA256_LEN],
    struct err_ctx *e)
{
	struct buf *hdr = NULL;
	int r = ERR_INTERNAL;

	if ((hdr = buf_new(0)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = env_hdr(env, hdr)) != 0 ||
	    (r = tr_hash(hdr, hdr_hash)) != 0)
		goto out;
	env->ciphertext_len = a->payload_len + ENV_TAG_LEN;
	if ((env->ciphertext = malloc(env->ciphertext_len)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = crypto_aes_gcm_seal(key, ENV_KEY_LEN, env->nonce,
	    buf_ptr(hdr), buf_len(hdr), a->payload, a->payload_len,
	    env->ciphertext)) != 0) {
		err_set(e, r, "envelope: body encryption failed");
		goto out;
	}
	r = 0;
 out:
	buf_free(hdr);
	return r;
}

/* One wrap of key per recipient device of env, keys[i] for the i-th. */
static int
env_seal_wrap_all(struct env *env, EVP_PKEY **keys,
    const uint8_t hdr_hash[CRYPTO_SHA256_LEN],
    const uint8_t key[ENV_KEY_LEN], struct err_ctx *e)
{
	struct env_recipient *rc;
	struct buf *info = NULL;
	size_t i;
	int r = ERR_INTERNAL;

	if ((info = buf_new(0)) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < env->n_recipients; i++) {
		rc = &env->recipients[i];
		if (rc->alg == TOKEN_ENC_HPKE_P256)
			r = env_wrap_hpke(env, rc, keys[i], hdr_hash, key, info,
			    e);
		else
			r = env_wrap_rsa(rc, keys[i], key, e);
		if (r != 0) {
			err_set(e, r, "envelope: wrapping the content key to "
			    "device %.16s failed", rc->device);
			goto out;
		}
	}
	r = 0;
 out:
	buf_free(info);
	return r;
}

/* Has a->sign sign the SIG transcript of env into env->sig. */
static int
env_seal_sign(struct env *env, const struct env_seal_args *a,
    struct err_ctx *e)
{
	struct buf *sigt = NULL;
	int r = ERR_INTERNAL;

	if ((sigt = buf_new(0)) == NULL)
		return ERR_ALLOC;
	if ((r = env_sig_transcript(env, sigt)) != 0)
		goto out;
	if ((r = a->sign(a->sign_arg, buf_ptr(sigt), buf_len(sigt), env->sig,
	    e)) != 0) {
		err_set(e, r, "envelope: signing failed");
		goto out;
	}
	r = 0;
 out:
	buf_free(sigt);
	return r;
}

int
env_seal(const struct env_seal_args *a, struct env **out, struct err_ctx *e)
{
	struct env *env = NULL;
	EVP_PKEY **keys = NULL;
	uint8_t key[ENV_KEY_LEN];
	uint8_t hdr_hash[CRYPTO_SHA256_LEN];
	int r = ERR_INTERNAL;

	return_val_if_fail(a != NULL && out != NULL, ERR_INVALID_ARG);
	return_val_if_fail(a->sender_account != NULL &&
	    a->sender_device != NULL && a->sign != NULL, ERR_INVALID_ARG);
	return_val_if_fail(a->to != NULL && a->recipients != NULL,
	    ERR_INVALID_ARG);
	return_val_if_fail(a->views != NULL || a->n_views == 0,
	    ERR_INVALID_ARG);
	return_val_if_fail(a->payload != NULL || a->payload_len == 0,
	    ERR_INVALID_ARG);

	memset(key, 0, sizeof(key));
	if (a->sent > ENV_JSON_INT_MAX)
		return err_set(e, ERR_INVALID_ARG, "envelope: the send time "
		    "does not fit a JSON integer");
	if (a->payload_len > SIZE_MAX - ENV_TAG_LEN)
		return err_set(e, ERR_TOO_LARGE, "envelope: payload too large");
	if ((env = calloc(1, sizeof(*env))) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	env->sent = a->sent;
	if ((r = env_seal_fill_to(env, a, e)) != 0 ||
	    (r = env_seal_fill_recipients(env, a, &keys, e)) != 0)
		goto out;
	if ((r = crypto_random(env->id, sizeof(env->id))) != 0 ||
	    (r = crypto_random(env->nonce, sizeof(env->nonce))) != 0 ||
	    (r = crypto_random(key, sizeof(key))) != 0) {
		err_set(e, r, "envelope: no random bytes");
		goto out;
	}
	if ((r = env_seal_body(env, a, key, hdr_hash, e)) != 0 ||
	    (r = env_seal_wrap_all(env, keys, hdr_hash, key, e)) != 0 ||
	    (r = env_seal_sign(env, a, e)) != 0)
		goto out;
	*out = env;
	env = NULL;		/* transferred */
	r = 0;
 out:
	crypto_wipe(key, sizeof(key));
	free(keys);
	env_free(env);
	return r;
}

/* --- opening --- */

const char *
env_check_name(enum env_check c)
{
	switch (c) {
	case ENV_CHECK_NONE:
		return "none";
	case ENV_CHECK_PARSE:
		return "parse";
	case ENV_CHECK_SENDER:
		return "sender";
	case ENV_CHECK_SIGNATURE:
		return "signature";
	case ENV_CHECK_REPLAY:
		return "replay";
	case ENV_CHECK_DECRYPT:
		return "decrypt";
	case ENV_CHECK_PAYLOAD:
		return "payload";
	case ENV_CHECK_GOSSIP:
		return "gossip";
	case ENV_CHECK_RECORD:
		return "record";
	}
	return "unknown";
}

void
env_opened_clear(struct env_opened *o)
{
	if (o == NULL)
		return;
	env_payload_clear(&o->payload);
	crypto_wipe(o, sizeof(*o));
}

int
env_token_rsa_decrypt(void *arg, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e)
{
	return token_rsa_decrypt((struct token *)arg, ct, ct_len, out, out_max,
	    out_len, e);
}

/*
 * Conditions of this machine rather than of the message: the caller gets
 * them as they are and may try the same message again later.
 */
static int
env_is_local_failure(int code)
{
	switch (code) {
	case ERR_ALLOC:
	case ERR_TOKEN_NOT_PRESENT:
	case ERR_PIN_INCORRECT:
	case ERR_PIN_LOCKED:
	case ERR_PIN_REQUIRED:
	case ERR_IO:
	case ERR_NETWORK:
	case ERR_TIMEOUT:
		return 1;
	}
	return 0;
}

/* Turns the failure cause of check c into the result env_open() gives. */
static int
env_open_fail(struct env_opened *out, enum env_check c, int cause,
    const struct err_ctx *detail, struct err_ctx *e)
{
	out->failed = c;
	if (env_is_local_failure(cause))
		return err_wrap(e, cause, "message not opened at check %d "
		    "(%s), try again later: %s", (int)c, env_check_name(c),
		    detail->code != 0 ? err_msg(detail) : err_str(cause));
	return err_wrap(e, ERR_REJECTED, "message rejected at check %d (%s): "
	    "%s", (int)c, env_check_name(c),
	    detail->code != 0 ? err_msg(detail) : err_str(cause));
}

/* The DER of a P-256 SubjectPublicKeyInfo before its 65-byte uncompressed
 * point (id-ecPublicKey, prime256v1, BIT STRING): crypto_spki_export()'s
 * canonical form, the one a device id hashes. */
static const uint8_t env_p256_spki_prefix[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
	0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	0x07, 0x03, 0x42, 0x00
};

/*
 * 1 when the device id of the P-256 key pub is device, computed from its
 * point and the fixed SPKI prefix (no DER encoder: OpenSSL's costs more
 * than the ECDSA verify); 0 otherwise, also when the point cannot be had.
 */
static int
env_p256_id_matches(EVP_PKEY *pub, const char *device)
{
	uint8_t spki[sizeof(env_p256_spki_prefix) + CRYPTO_P256_POINT_LEN];
	uint8_t hash[CRYPTO_SHA256_LEN];
	char hex[ENV_DEVICE_LEN + 1];

	memcpy(spki, env_p256_spki_prefix, sizeof(env_p256_spki_prefix));
	if (crypto_ec_point_get(pub,
	    spki + sizeof(env_p256_spki_prefix)) != 0 ||
	    crypto_sha256(spki, sizeof(spki), hash) != 0)
		return 0;
	hex_encode(hash, sizeof(hash), hex);
	return strcmp(hex, device) == 0;
}

/* Check 2 beyond the callback: the key is P-256 and its id is the sender
 * device, so a confused lookup cannot lend another device's key. */
static int
env_check_sender_key(EVP_PKEY *pub, const char *device, struct err_ctx *e)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	uint8_t hash[CRYPTO_SHA256_LEN];
	char hex[ENV_DEVICE_LEN + 1];
	int r = ERR_INTERNAL;

	if (pub == NULL || !crypto_is_p256(pub)) {
		r = err_set(e, ERR_WRONG_KEY, "the signing key of sender "
		    "device %.16s is not a P-256 key", device);
		goto out;
	}
	/* The canonical SPKI (the only one crypto_spki_import() accepts, and
	 * the one a device id is the hash of) from the point first; the
	 * encoder only when that does not match. */
	if (env_p256_id_matches(pub, device)) {
		r = 0;
		goto out;
	}
	if ((r = crypto_spki_export(pub, &der, &der_len)) != 0 ||
	    (r = crypto_sha256(der, der_len, hash)) != 0)
		goto out;
	hex_encode(hash, sizeof(hash), hex);
	if (strcmp(hex, device) != 0) {
		r = err_set(e, ERR_WRONG_KEY, "the signing key found for "
		    "sender device %.16s has another device id", device);
		goto out;
	}
	r = 0;
 out:
	free(der);
	return r;
}

static int
env_cmp_device(const void *key, const void *elem)
{
	return strcmp((const char *)key,
	    ((const struct env_recipient *)elem)->device);
}

/* Check 5, first half: K from the own recipient entry. */
static int
env_unwrap(const struct env *env, const struct env_recipient *own,
    const struct env_self *self, const uint8_t hdr_hash[32],
    uint8_t key[ENV_KEY_LEN], struct err_ctx *e)
{
	struct hpke_ctx ctx;
	struct buf *info = NULL;
	uint8_t rsa_out[ENV_RSA_MAX_LEN];
	size_t rsa_len = 0;
	int r = ERR_INTERNAL;

	memset(&ctx, 0, sizeof(ctx));
	if (own->alg != self->alg) {
		r = err_set(e, ERR_UNSUPPORTED, "the copy for this device is "
		    "wrapped with %s, this device's key is %s",
		    token_enc_alg_name(own->alg),
		    token_enc_alg_name(self->alg));
		goto out;
	}
	if (own->alg == TOKEN_ENC_HPKE_P256) {
		if (own->wrapped_len != ENV_HPKE_WRAPPED_LEN) {
			r = err_set(e, ERR_FORMAT, "wrapped key of %zu bytes",
			    own->wrapped_len);
			goto out;
		}
		if ((info = buf_new(0)) == NULL) {
			r = ERR_ALLOC;
			goto out;
		}
		if ((r = env_wrap_info(info, env->id, self->device)) != 0)
			goto out;
		if ((r = hpke_setup_base_r(own->enc, self->enc_point, self->dh,
		    self->dh_arg, buf_ptr(info), buf_len(info), &ctx,
		    e)) != 0) {
			err_wrap(e, r, "HPKE decapsulation failed: %s",
			    err_msg(e));
			goto out;
		}
		if ((r = hpke_open(&ctx, hdr_hash, 32, own->wrapped,
		    own->wrapped_len, key)) != 0) {
			r = err_wrap(e, ERR_DECRYPT, "the wrapped content key "
			    "does not decrypt (HPKE)");
			goto out;
		}
	} else {
		if ((r = self->rsa_decrypt(self->rsa_arg, own->wrapped,
		    own->wrapped_len, rsa_out, sizeof(rsa_out), &rsa_len,
		    e)) != 0) {
			err_wrap(e, r, "the wrapped content key does not "
			    "decrypt (RSA-OAEP): %s", err_msg(e));
			goto out;
		}
		if (rsa_len != ENV_KEY_LEN) {
			r = err_set(e, ERR_DECRYPT, "the wrapped content key "
			    "does not decrypt (RSA-OAEP)");
			goto out;
		}
		memcpy(key, rsa_out, ENV_KEY_LEN);
	}
	r = 0;
 out:
	crypto_wipe(rsa_out, sizeof(rsa_out));
	hpke_ctx_wipe(&ctx);
	buf_free(info);
	return r;
}

/*
 * Check 2: the sender is another device, and ops->sender_key gives its
 * signing key (in *sig_pub, which the caller frees), active and accepted.
 */
static int
env_check_sender(const struct env *env, const struct env_self *self,
    const struct env_open_ops *ops, EVP_PKEY **sig_pub, struct err_ctx *e)
{
	char short_id[ENV_SHORT_ID_LEN];
	int r;

	if (strcmp(env->sender_device, self->device) == 0) {
		env_short_id(env->sender_device, short_id);
		return err_set(e, ERR_DENIED, "reflection: the sender device "
		    "%s is this device", short_id);
	}
	if ((r = ops->sender_key(ops->arg, env->sender_account,
	    env->sender_device, sig_pub, e)) != 0)
		return r;
	return env_check_sender_key(*sig_pub, env->sender_device, e);
}

/* Check 3: sig verifies over H(SIG) under the sender's key; hdr_hash is
 * H(HDR) of env. */
static int
env_check_signature(const struct env *env, const uint8_t hdr_hash[32],
    EVP_PKEY *sig_pub, struct err_ctx *e)
{
	uint8_t digest[CRYPTO_SHA256_LEN];
	char short_id[ENV_SHORT_ID_LEN];
	int r;

	if ((r = env_sig_digest_hdr(env, hdr_hash, digest)) != 0)
		return r;
	if ((r = crypto_ecdsa_verify(sig_pub, digest, env->sig)) != 0) {
		env_short_id(env->sender_device, short_id);
		return err_set(e, r, "the signature of sender device %s on "
		    "%s's message does not verify", short_id,
		    env->sender_account);
	}
	return 0;
}

/*
 * Check 5: the own copy of K, then the body with AAD = HDR (hdr, whose
 * hash is hdr_hash).  On success *pt_out (of *pt_len_out bytes) is the
 * authenticated plaintext, which the caller wipes: in a new array that
 * the caller frees, or, when in_place is not NULL, in in_place itself --
 * env's ciphertext, which the caller may overwrite.  A failed
 * decryption leaves nothing of the plaintext.  K is wiped on every path.
 */
static int
env_decrypt(const struct env *env, const struct env_self *self,
    const struct buf *hdr, const uint8_t hdr_hash[32], uint8_t *in_place,
    uint8_t **pt_out, size_t *pt_len_out, struct err_ctx *e)
{
	const struct env_recipient *own;
	uint8_t key[ENV_KEY_LEN];
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	char short_id[ENV_SHORT_ID_LEN];
	int r = ERR_INTERNAL;

	memset(key, 0, sizeof(key));
	own = bsearch(self->device, env->recipients, env->n_recipients,
	    sizeof(*env->recipients), env_cmp_device);
	if (own == NULL) {
		env_short_id(self->device, short_id);
		r = err_set(e, ERR_NOT_FOUND, "the message has no copy for "
		    "this device %s", short_id);
		goto out;
	}
	if ((r = env_unwrap(env, own, self, hdr_hash, key, e)) != 0)
		goto out;
	pt_len = env->ciphertext_len - ENV_TAG_LEN;
	if (in_place != NULL)
		pt = in_place;
	else if ((pt = malloc(pt_len == 0 ? 1 : pt_len)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = crypto_aes_gcm_open(key, sizeof(key), env->nonce,
	    buf_ptr(hdr), buf_len(hdr), env->ciphertext, env->ciphertext_len,
	    pt)) != 0) {
		r = err_wrap(e, ERR_DECRYPT, "the body does not decrypt "
		    "(AES-256-GCM tag)");
		goto out;
	}
	*pt_out = pt;
	*pt_len_out = pt_len;
	pt = NULL;		/* transferred */
	r = 0;
 out:
	crypto_wipe(key, sizeof(key));
	if (pt != NULL && pt != in_place) {
		crypto_wipe(pt, pt_len);
		free(pt);
	}
	return r;
}

/* What an accepted env says, into out; takes the contents of payload. */
static void
env_opened_fill(struct env_opened *out, const struct env *env,
    struct env_payload *payload)
{
	memcpy(out->id, env->id, sizeof(out->id));
	memcpy(out->sender_account, env->sender_account,
	    sizeof(out->sender_account));
	memcpy(out->sender_device, env->sender_device,
	    sizeof(out->sender_device));
	out->sent = env->sent;
	out->payload = *payload;
	memset(payload, 0, sizeof(*payload));	/* transferred */
	out->failed = ENV_CHECK_NONE;
}

/*
 * env_open_parsed(), which decrypts into in_place when it is not NULL:
 * env's own ciphertext, when the caller owns env and needs no more of it
 * (no second copy of a large body).  The plaintext is wiped there too.
 */
static int
env_open_checks(const struct env *env, uint8_t *in_place,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e)
{
	struct err_ctx d;
	struct env_payload payload;
	struct buf *hdr = NULL;
	uint8_t hdr_hash[CRYPTO_SHA256_LEN];
	EVP_PKEY *sig_pub = NULL;
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	enum env_check c = ENV_CHECK_NONE;
	int r = ERR_INTERNAL;

	return_val_if_fail(env != NULL && self != NULL && ops != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	return_val_if_fail(ops->sender_key != NULL &&
	    ops->replay_check != NULL && ops->replay_record != NULL &&
	    ops->gossip != NULL, ERR_INVALID_ARG);
	return_val_if_fail(self->device != NULL, ERR_INVALID_ARG);
	return_val_if_fail((self->alg == TOKEN_ENC_HPKE_P256 &&
	    self->dh != NULL) || (self->alg == TOKEN_ENC_RSA_OAEP &&
	    self->rsa_decrypt != NULL), ERR_INVALID_ARG);
	return_val_if_fail(env->recipients != NULL &&
	    env->ciphertext_len >= ENV_TAG_LEN && env->ciphertext != NULL,
	    ERR_INVALID_ARG);

	memset(out, 0, sizeof(*out));
	memset(&payload, 0, sizeof(payload));
	err_clear(&d);

	c = ENV_CHECK_SENDER;
	if ((r = env_check_sender(env, self, ops, &sig_pub, &d)) != 0)
		goto out;
	/* HDR once: H(HDR) is in the signature transcript and binds every
	 * wrap, HDR itself is the body's AAD. */
	c = ENV_CHECK_SIGNATURE;
	if ((hdr = buf_new(0)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	if ((r = env_hdr(env, hdr)) != 0 ||
	    (r = tr_hash(hdr, hdr_hash)) != 0 ||
	    (r = env_check_signature(env, hdr_hash, sig_pub, &d)) != 0)
		goto out;
	/* 4: never accepted before from this sender device. */
	c = ENV_CHECK_REPLAY;
	if ((r = ops->replay_check(ops->arg, env->sender_device, env->id,
	    &d)) != 0)
		goto out;
	c = ENV_CHECK_DECRYPT;
	if ((r = env_decrypt(env, self, hdr, hdr_hash, in_place, &pt, &pt_len,
	    &d)) != 0)
		goto out;
	/* 6: the inner payload, only now that it is authenticated. */
	c = ENV_CHECK_PAYLOAD;
	if ((r = env_payload_parse(pt, pt_len, &payload, &d)) != 0)
		goto out;
	/* 7: the sender's views against the own verified logs. */
	c = ENV_CHECK_GOSSIP;
	if ((r = ops->gossip(ops->arg, env->sender_account,
	    env->sender_device, env->views, env->n_views, &d)) != 0)
		goto out;
	c = ENV_CHECK_RECORD;
	if ((r = ops->replay_record(ops->arg, env->sender_device, env->id,
	    env->sent, &d)) != 0)
		goto out;
	env_opened_fill(out, env, &payload);
	r = 0;
 out:
	if (pt != NULL) {
		crypto_wipe(pt, pt_len);
		if (pt != in_place)
			free(pt);
	}
	env_payload_clear(&payload);
	EVP_PKEY_free(sig_pub);
	buf_free(hdr);
	if (r != 0)
		r = env_open_fail(out, c, r, &d, e);
	return r;
}

int
env_open_parsed(const struct env *env, const struct env_self *self,
    const struct env_open_ops *ops, struct env_opened *out,
    struct err_ctx *e)
{
	return env_open_checks(env, NULL, self, ops, out, e);
}

/*
 * The rest of env_open() once check 1 gave parse_r: a failure (reason in
 * d) reported as env_open() reports it, or checks 2 to 7 of env, which
 * is freed here.
 */
static int
env_open_rest(int parse_r, struct env *env, const struct err_ctx *d,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e)
{
	int r;

	if (parse_r == ERR_INVALID_ARG)
		return err_wrap(e, parse_r, "%s", err_msg(d));
	if (parse_r != 0)
		return env_open_fail(out, ENV_CHECK_PARSE, parse_r, d, e);
	/* env is ours and is freed next: the body is decrypted where it
	 * was decoded. */
	r = env_open_checks(env, env->ciphertext, self, ops, out, e);
	env_free(env);
	return r;
}

int
env_open(const uint8_t *json, size_t len, const struct env_limits *lim,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e)
{
	struct env *env = NULL;
	struct err_ctx d;
	int r;

	return_val_if_fail(json != NULL && self != NULL && ops != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	memset(out, 0, sizeof(*out));
	err_clear(&d);
	/* 1: bounded parse. */
	r = env_parse(json, len, lim, &env, &d);
	return env_open_rest(r, env, &d, self, ops, out, e);
}

int
env_open_tree(json_t *root, const struct env_limits *lim,
    const struct env_self *self, const struct env_open_ops *ops,
    struct env_opened *out, struct err_ctx *e)
{
	struct env *env = NULL;
	struct err_ctx d;
	int r;

	return_val_if_fail(root != NULL && self != NULL && ops != NULL &&
	    out != NULL, ERR_INVALID_ARG);
	memset(out, 0, sizeof(*out));
	err_clear(&d);
	/* 1: bounded parse, of the tree. */
	r = env_parse_tree(root, lim, &env, &d);
	return env_open_rest(r, env, &d, self, ops, out, e);
}
