/*
 * transcript.c - PROTOCOL.md transcripts.
 */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>

#include "errors.h"
#include "transcript.h"

/*
 * Every builder writes into b only through buf_put_*; on failure b may hold
 * a partial transcript, which callers discard (they never sign a buffer
 * whose builder failed).
 */

int
tr_device_binding(struct buf *b, const char *account, const char *label,
    const uint8_t *sig_pub, size_t sig_pub_len, const char *enc_alg,
    const uint8_t *enc_pub, size_t enc_pub_len, uint64_t created)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_DEVICE)) != 0 ||
	    (r = buf_put_lp_str(b, account)) != 0 ||
	    (r = buf_put_lp_str(b, label)) != 0 ||
	    (r = buf_put_lp(b, sig_pub, sig_pub_len)) != 0 ||
	    (r = buf_put_lp_str(b, enc_alg)) != 0 ||
	    (r = buf_put_lp(b, enc_pub, enc_pub_len)) != 0 ||
	    (r = buf_put_u64(b, created)) != 0)
		return r;
	return 0;
}

int
tr_endorsement(struct buf *b, const char *account, const char *device_id,
    const uint8_t hash_b[32])
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_ENDORSE)) != 0 ||
	    (r = buf_put_lp_str(b, account)) != 0 ||
	    (r = buf_put_lp_str(b, device_id)) != 0 ||
	    (r = buf_put_lp(b, hash_b, 32)) != 0)
		return r;
	return 0;
}

int
tr_revoke(struct buf *b, const char *account, const char *device_id,
    uint64_t time)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_REVOKE)) != 0 ||
	    (r = buf_put_lp_str(b, account)) != 0 ||
	    (r = buf_put_lp_str(b, device_id)) != 0 ||
	    (r = buf_put_u64(b, time)) != 0)
		return r;
	return 0;
}

int
tr_event(struct buf *b, uint64_t seq, uint64_t time, const char *type,
    const uint8_t prev[32], const uint8_t *payload, size_t payload_len)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_EVENT)) != 0 ||
	    (r = buf_put_u64(b, seq)) != 0 ||
	    (r = buf_put_u64(b, time)) != 0 ||
	    (r = buf_put_lp_str(b, type)) != 0 ||
	    (r = buf_put_lp(b, prev, 32)) != 0 ||
	    (r = buf_put_lp(b, payload, payload_len)) != 0)
		return r;
	return 0;
}

int
tr_head(struct buf *b, const char *directory_id, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t time)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_HEAD)) != 0 ||
	    (r = buf_put_lp_str(b, directory_id)) != 0 ||
	    (r = buf_put_lp_str(b, account)) != 0 ||
	    (r = buf_put_u64(b, seq)) != 0 ||
	    (r = buf_put_lp(b, hash, 32)) != 0 ||
	    (r = buf_put_u64(b, time)) != 0)
		return r;
	return 0;
}

int
tr_login(struct buf *b, const char *directory_id, const char *device_id,
    uint64_t time, const uint8_t *nonce, size_t nonce_len)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_LOGIN)) != 0 ||
	    (r = buf_put_lp_str(b, directory_id)) != 0 ||
	    (r = buf_put_lp_str(b, device_id)) != 0 ||
	    (r = buf_put_u64(b, time)) != 0 ||
	    (r = buf_put_lp(b, nonce, nonce_len)) != 0)
		return r;
	return 0;
}

int
tr_registry(struct buf *b, const uint8_t *file, size_t file_len)
{
	int r;

	if ((r = buf_put_tag(b, TR_TAG_REGISTRY)) != 0 ||
	    (r = buf_put(b, file, file_len)) != 0)
		return r;
	return 0;
}

int
tr_is_signable(const uint8_t *p, size_t len)
{
	/* Not TR_TAG_ENDORSE: an endorsement is made only by the agent's
	 * "endorse", which checks the record and asks no client to be
	 * trusted with vouching for a device. */
	static const char *const tags[] = {
		TR_TAG_DEVICE, TR_TAG_REVOKE, TR_TAG_LOGIN, TR_TAG_ENV_SIG,
		TR_TAG_CONTACT,
	};
	size_t i, n;

	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		n = strlen(tags[i]) + 1;	/* with its NUL */
		if (len >= n && memcmp(p, tags[i], n) == 0)
			return 1;
	}
	return 0;
}

int
tr_hash(const struct buf *b, uint8_t out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(buf_ptr(b), buf_len(b), out, &n, EVP_sha256(),
	    NULL) != 1 || n != 32)
		return ERR_CRYPTO;
	return 0;
}

int
tr_hash_free(struct buf *b, int built, uint8_t out[32])
{
	int r = built;

	return_val_if_fail(b != NULL || built != 0, ERR_INVALID_ARG);
	if (r == 0)
		r = tr_hash(b, out);
	buf_free(b);
	return r;
}
