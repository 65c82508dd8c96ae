/*
 * test_hpke.c - RFC 9180 base mode against the Appendix A.3 vectors
 * (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), and the ways a
 * recipient must refuse bad input.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "crypto.h"
#include "errors.h"
#include "hpke.h"

#define VECTOR_FILE DEVID_TESTDATA_DIR "/rfc9180-a3-p256-base.json"

/* One decoded hex field of the vector file. */
struct bytes {
	uint8_t *p;
	size_t len;
};

struct vectors {
	json_t *root;
	struct bytes info, ikm_e, pk_em, sk_em, ikm_r, pk_rm, sk_rm, enc;
	struct bytes shared_secret, key, base_nonce, exporter_secret;
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

/* Decodes a lowercase hex string; fails the test on anything else. */
static struct bytes
unhex(const char *s)
{
	struct bytes b;
	size_t i, n = strlen(s);
	int hi, lo;

	assert_int_equal(n % 2, 0);
	b.len = n / 2;
	b.p = malloc(b.len + 1);
	assert_non_null(b.p);
	for (i = 0; i < b.len; i++) {
		hi = hexval(s[2 * i]);
		lo = hexval(s[2 * i + 1]);
		assert_true(hi >= 0 && lo >= 0);
		b.p[i] = (uint8_t)(hi << 4 | lo);
	}
	return b;
}

static struct bytes
field(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	assert_non_null(v);
	assert_true(json_is_string(v));
	return unhex(json_string_value(v));
}

static void
bytes_free(struct bytes *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static int
setup_vectors(void **state)
{
	struct vectors *v = calloc(1, sizeof(*v));
	json_error_t jerr;

	assert_non_null(v);
	v->root = json_load_file(VECTOR_FILE, 0, &jerr);
	if (v->root == NULL)
		fail_msg("%s:%d: %s", VECTOR_FILE, jerr.line, jerr.text);
	assert_int_equal(json_integer_value(json_object_get(v->root, "mode")),
	    0);
	assert_int_equal(json_integer_value(json_object_get(v->root,
	    "kem_id")), 0x0010);
	assert_int_equal(json_integer_value(json_object_get(v->root,
	    "kdf_id")), 0x0001);
	assert_int_equal(json_integer_value(json_object_get(v->root,
	    "aead_id")), 0x0001);
	v->info = field(v->root, "info");
	v->ikm_e = field(v->root, "ikmE");
	v->pk_em = field(v->root, "pkEm");
	v->sk_em = field(v->root, "skEm");
	v->ikm_r = field(v->root, "ikmR");
	v->pk_rm = field(v->root, "pkRm");
	v->sk_rm = field(v->root, "skRm");
	v->enc = field(v->root, "enc");
	v->shared_secret = field(v->root, "shared_secret");
	v->key = field(v->root, "key");
	v->base_nonce = field(v->root, "base_nonce");
	v->exporter_secret = field(v->root, "exporter_secret");
	assert_int_equal(v->pk_rm.len, HPKE_ENC_LEN);
	assert_int_equal(v->enc.len, HPKE_ENC_LEN);
	assert_int_equal(v->sk_rm.len, 32);
	*state = v;
	return 0;
}

static int
teardown_vectors(void **state)
{
	struct vectors *v = *state;

	bytes_free(&v->info);
	bytes_free(&v->ikm_e);
	bytes_free(&v->pk_em);
	bytes_free(&v->sk_em);
	bytes_free(&v->ikm_r);
	bytes_free(&v->pk_rm);
	bytes_free(&v->sk_rm);
	bytes_free(&v->enc);
	bytes_free(&v->shared_secret);
	bytes_free(&v->key);
	bytes_free(&v->base_nonce);
	bytes_free(&v->exporter_secret);
	json_decref(v->root);
	free(v);
	return 0;
}

static void
assert_ctx_matches(const struct vectors *v, const struct hpke_ctx *ctx)
{
	assert_memory_equal(ctx->shared_secret, v->shared_secret.p,
	    HPKE_SECRET_LEN);
	assert_memory_equal(ctx->key, v->key.p, HPKE_KEY_LEN);
	assert_memory_equal(ctx->base_nonce, v->base_nonce.p, HPKE_NONCE_LEN);
	assert_memory_equal(ctx->exporter_secret, v->exporter_secret.p,
	    HPKE_SECRET_LEN);
	assert_int_equal(ctx->seq, 0);
}

/* The sender's context of the vectors (ephemeral key from ikmE). */
static void
setup_sender(const struct vectors *v, struct hpke_ctx *ctx)
{
	uint8_t enc[HPKE_ENC_LEN];
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(hpke_setup_base_s(v->pk_rm.p, v->info.p, v->info.len,
	    v->ikm_e.p, v->ikm_e.len, enc, ctx, &e), 0);
	assert_memory_equal(enc, v->enc.p, HPKE_ENC_LEN);
}

/* The recipient's context of the vectors, with a software key from skRm. */
static void
setup_recipient(const struct vectors *v, struct hpke_ctx *ctx)
{
	EVP_PKEY *sk_r = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_ec_from_scalar(v->sk_rm.p, &sk_r), 0);
	assert_int_equal(hpke_setup_base_r(v->enc.p, v->pk_rm.p,
	    hpke_dh_software, sk_r, v->info.p, v->info.len, ctx, &e), 0);
	EVP_PKEY_free(sk_r);
}

static void
test_derive_keypair(void **state)
{
	struct vectors *v = *state;
	uint8_t sk[32], pk[HPKE_ENC_LEN];

	assert_int_equal(hpke_derive_keypair(v->ikm_e.p, v->ikm_e.len, sk, pk),
	    0);
	assert_memory_equal(sk, v->sk_em.p, 32);
	assert_memory_equal(pk, v->pk_em.p, HPKE_ENC_LEN);

	assert_int_equal(hpke_derive_keypair(v->ikm_r.p, v->ikm_r.len, sk, pk),
	    0);
	assert_memory_equal(sk, v->sk_rm.p, 32);
	assert_memory_equal(pk, v->pk_rm.p, HPKE_ENC_LEN);

	/* Less than Nsk bytes of input keying material is refused. */
	assert_int_equal(hpke_derive_keypair(v->ikm_r.p, 31, sk, pk),
	    ERR_INVALID_ARG);
}

static void
test_setup_sender(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx ctx;

	setup_sender(v, &ctx);
	assert_ctx_matches(v, &ctx);
	hpke_ctx_wipe(&ctx);
}

static void
test_setup_recipient(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx ctx;

	setup_recipient(v, &ctx);
	assert_ctx_matches(v, &ctx);
	hpke_ctx_wipe(&ctx);
	/* The wipe leaves nothing behind. */
	assert_int_equal(ctx.seq, 0);
	assert_int_equal(ctx.key[0] | ctx.key[HPKE_KEY_LEN - 1], 0);
}

/* Seals and opens one throw-away message to move both contexts on. */
static void
advance(struct hpke_ctx *s, struct hpke_ctx *r)
{
	static const uint8_t pt[] = "filler";
	uint8_t ct[sizeof(pt) + HPKE_TAG_LEN], back[sizeof(pt)];

	assert_int_equal(hpke_seal(s, NULL, 0, pt, sizeof(pt), ct), 0);
	assert_int_equal(hpke_open(r, NULL, 0, ct, sizeof(ct), back), 0);
	assert_memory_equal(back, pt, sizeof(pt));
}

static void
test_encryptions(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx s, r;
	json_t *list, *item;
	struct bytes pt, aad, nonce, ct;
	uint8_t *out;
	uint64_t want_seq;
	size_t i;
	unsigned int k;

	setup_sender(v, &s);
	setup_recipient(v, &r);
	list = json_object_get(v->root, "encryptions");
	assert_true(json_is_array(list));
	assert_true(json_array_size(list) > 0);
	json_array_foreach(list, i, item) {
		want_seq = (uint64_t)json_integer_value(json_object_get(item,
		    "sequence_number"));
		assert_true(want_seq >= s.seq);
		while (s.seq < want_seq)
			advance(&s, &r);
		assert_int_equal(r.seq, want_seq);

		pt = field(item, "pt");
		aad = field(item, "aad");
		nonce = field(item, "nonce");
		ct = field(item, "ct");
		assert_int_equal(ct.len, pt.len + HPKE_TAG_LEN);
		/* The vector's nonce is base_nonce XOR I2OSP(seq, 12). */
		for (k = 0; k < HPKE_NONCE_LEN; k++)
			assert_int_equal(nonce.p[k], v->base_nonce.p[k] ^
			    (k < 4 ? 0 : (uint8_t)(want_seq >>
			    (8 * (HPKE_NONCE_LEN - 1 - k)))));

		out = malloc(ct.len);
		assert_non_null(out);
		assert_int_equal(hpke_seal(&s, aad.p, aad.len, pt.p, pt.len,
		    out), 0);
		assert_memory_equal(out, ct.p, ct.len);
		assert_int_equal(s.seq, want_seq + 1);

		memset(out, 0, ct.len);
		assert_int_equal(hpke_open(&r, aad.p, aad.len, ct.p, ct.len,
		    out), 0);
		assert_memory_equal(out, pt.p, pt.len);
		assert_int_equal(r.seq, want_seq + 1);

		free(out);
		bytes_free(&pt);
		bytes_free(&aad);
		bytes_free(&nonce);
		bytes_free(&ct);
	}
	hpke_ctx_wipe(&s);
	hpke_ctx_wipe(&r);
}

/*
 * RFC 9180 A.3.1.2, the exported values of this setup.  The vector file
 * carries none, so they are listed here; entries under "exports" in the
 * file, if any, are checked as well.
 */
static const struct {
	const char *context;
	size_t len;
	const char *value;
} rfc_exports[] = {
	{ "", 32, "5e9bc3d236e1911d95e65b576a8a86d4"
	    "78fb827e8bdfe77b741b289890490d4d" },
	{ "00", 32, "6cff87658931bda83dc857e6353efe49"
	    "87a201b849658d9b047aab4cf216e796" },
	{ "54657374436f6e74657874", 32, "d8f1ea7942adbba7412c6d431c62d013"
	    "71ea476b823eb697e1f6e6cae1dab85a" },
};

static void
check_export(const struct hpke_ctx *s, const struct hpke_ctx *r,
    const char *context_hex, size_t len, const char *value_hex)
{
	struct bytes context = unhex(context_hex);
	struct bytes value = unhex(value_hex);
	uint8_t *out;

	assert_int_equal(value.len, len);
	out = malloc(len);
	assert_non_null(out);
	assert_int_equal(hpke_export(s, context.len ? context.p : NULL,
	    context.len, out, len), 0);
	assert_memory_equal(out, value.p, len);
	memset(out, 0, len);
	assert_int_equal(hpke_export(r, context.len ? context.p : NULL,
	    context.len, out, len), 0);
	assert_memory_equal(out, value.p, len);
	free(out);
	bytes_free(&context);
	bytes_free(&value);
}

static void
test_exports(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx s, r;
	json_t *list, *item;
	uint8_t out[2][64];
	size_t i;

	setup_sender(v, &s);
	setup_recipient(v, &r);
	for (i = 0; i < sizeof(rfc_exports) / sizeof(rfc_exports[0]); i++)
		check_export(&s, &r, rfc_exports[i].context,
		    rfc_exports[i].len, rfc_exports[i].value);
	list = json_object_get(v->root, "exports");
	json_array_foreach(list, i, item) {
		check_export(&s, &r, json_string_value(json_object_get(item,
		    "exporter_context")),
		    (size_t)json_integer_value(json_object_get(item, "L")),
		    json_string_value(json_object_get(item, "exported_value")));
	}
	/* Export does not depend on the sequence number. */
	advance(&s, &r);
	check_export(&s, &r, rfc_exports[1].context, rfc_exports[1].len,
	    rfc_exports[1].value);
	/* A shorter length is a different value, not a prefix. */
	assert_int_equal(hpke_export(&s, NULL, 0, out[0], 16), 0);
	assert_int_equal(hpke_export(&s, NULL, 0, out[1], 32), 0);
	assert_memory_not_equal(out[0], out[1], 16);
	/* L must be 1 .. 255 * Nh. */
	assert_int_equal(hpke_export(&s, NULL, 0, out[0], 0), ERR_INVALID_ARG);
	{
		uint8_t *big = calloc(1, CRYPTO_HKDF_INFO_MAX);

		assert_non_null(big);
		assert_int_equal(hpke_export(&s, big, 900, out[0], 32), 0);
		assert_int_equal(hpke_export(&s, big, CRYPTO_HKDF_INFO_MAX,
		    out[0], 32), ERR_TOO_LARGE);
		free(big);
	}
	hpke_ctx_wipe(&s);
	hpke_ctx_wipe(&r);
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

/* The first encryption of the vectors: pt, aad and ct at seq 0. */
struct first_msg {
	struct bytes pt, aad, ct;
};

static void
first_msg_load(const struct vectors *v, struct first_msg *m)
{
	json_t *item = json_array_get(json_object_get(v->root, "encryptions"),
	    0);

	assert_non_null(item);
	assert_int_equal(json_integer_value(json_object_get(item,
	    "sequence_number")), 0);
	m->pt = field(item, "pt");
	m->aad = field(item, "aad");
	m->ct = field(item, "ct");
}

static void
first_msg_free(struct first_msg *m)
{
	bytes_free(&m->pt);
	bytes_free(&m->aad);
	bytes_free(&m->ct);
}

static void
test_open_wrong_aad(void **state)
{
	struct vectors *v = *state;
	struct first_msg m;
	struct hpke_ctx r;
	uint8_t out[256];

	first_msg_load(v, &m);
	setup_recipient(v, &r);
	memset(out, 0xaa, sizeof(out));
	m.aad.p[0] ^= 0x01;
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p, m.ct.len,
	    out), ERR_DECRYPT);
	assert_true(all_zero(out, m.pt.len));
	assert_int_equal(r.seq, 0);
	/* No aad at all is also wrong. */
	assert_int_equal(hpke_open(&r, NULL, 0, m.ct.p, m.ct.len, out),
	    ERR_DECRYPT);
	/* The right aad still opens it: a failure does not move seq. */
	m.aad.p[0] ^= 0x01;
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p, m.ct.len,
	    out), 0);
	assert_memory_equal(out, m.pt.p, m.pt.len);
	hpke_ctx_wipe(&r);
	first_msg_free(&m);
}

static void
test_open_flipped_bit(void **state)
{
	struct vectors *v = *state;
	struct first_msg m;
	struct hpke_ctx r;
	uint8_t out[256];
	size_t pos[3], i;

	first_msg_load(v, &m);
	setup_recipient(v, &r);
	/* A bit in the body, in the tag's first and last byte. */
	pos[0] = 0;
	pos[1] = m.pt.len;
	pos[2] = m.ct.len - 1;
	for (i = 0; i < 3; i++) {
		memset(out, 0xaa, sizeof(out));
		m.ct.p[pos[i]] ^= 0x80;
		assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p,
		    m.ct.len, out), ERR_DECRYPT);
		assert_true(all_zero(out, m.pt.len));
		m.ct.p[pos[i]] ^= 0x80;
	}
	assert_int_equal(r.seq, 0);
	hpke_ctx_wipe(&r);
	first_msg_free(&m);
}

static void
test_open_truncated(void **state)
{
	struct vectors *v = *state;
	struct first_msg m;
	struct hpke_ctx r;
	uint8_t out[256];

	first_msg_load(v, &m);
	setup_recipient(v, &r);
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p,
	    HPKE_TAG_LEN - 1, out), ERR_DECRYPT);
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p, 0, out),
	    ERR_DECRYPT);
	/* Exactly a tag's worth, and one byte short of the whole. */
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p,
	    HPKE_TAG_LEN, out), ERR_DECRYPT);
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p,
	    m.ct.len - 1, out), ERR_DECRYPT);
	assert_int_equal(r.seq, 0);
	hpke_ctx_wipe(&r);
	first_msg_free(&m);
}

/* A DH callback that counts its calls and must never be reached. */
static int
dh_counting(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e)
{
	int *calls = arg;

	(*calls)++;
	memset(dh_out, 0x11, HPKE_SECRET_LEN);
	return 0;
}

static void
test_invalid_enc(void **state)
{
	struct vectors *v = *state;
	uint8_t bad[HPKE_ENC_LEN], enc[HPKE_ENC_LEN];
	struct hpke_ctx ctx;
	struct err_ctx e;
	int calls = 0;

	/* Off the curve: y changed. */
	memcpy(bad, v->enc.p, HPKE_ENC_LEN);
	bad[HPKE_ENC_LEN - 1] ^= 0x01;
	err_clear(&e);
	memset(&ctx, 0xaa, sizeof(ctx));
	assert_int_equal(hpke_setup_base_r(bad, v->pk_rm.p, dh_counting,
	    &calls, v->info.p, v->info.len, &ctx, &e), ERR_FORMAT);
	assert_true(all_zero((const uint8_t *)&ctx, sizeof(ctx)));
	assert_true(strlen(err_msg(&e)) > 0);

	/* Compressed form tag with a valid x. */
	memcpy(bad, v->enc.p, HPKE_ENC_LEN);
	bad[0] = 0x02;
	assert_int_equal(hpke_setup_base_r(bad, v->pk_rm.p, dh_counting,
	    &calls, v->info.p, v->info.len, &ctx, &e), ERR_FORMAT);

	/* All zeros (not a point; also not the point at infinity's form). */
	memset(bad, 0, sizeof(bad));
	assert_int_equal(hpke_setup_base_r(bad, v->pk_rm.p, dh_counting,
	    &calls, v->info.p, v->info.len, &ctx, &e), ERR_FORMAT);

	/* x = p (out of the field) with the tag right. */
	memset(bad, 0xff, sizeof(bad));
	bad[0] = 0x04;
	assert_int_equal(hpke_setup_base_r(bad, v->pk_rm.p, dh_counting,
	    &calls, v->info.p, v->info.len, &ctx, &e), ERR_FORMAT);

	assert_int_equal(calls, 0);

	/* The software DH refuses the same point on its own. */
	memcpy(bad, v->enc.p, HPKE_ENC_LEN);
	bad[HPKE_ENC_LEN - 1] ^= 0x01;
	{
		EVP_PKEY *sk_r = NULL;
		uint8_t dh[HPKE_SECRET_LEN];

		assert_int_equal(crypto_ec_from_scalar(v->sk_rm.p, &sk_r), 0);
		assert_int_equal(hpke_dh_software(sk_r, bad, dh, NULL),
		    ERR_FORMAT);
		EVP_PKEY_free(sk_r);
	}

	/* A valid enc reaches the callback exactly once. */
	assert_int_equal(hpke_setup_base_r(v->enc.p, v->pk_rm.p, dh_counting,
	    &calls, v->info.p, v->info.len, &ctx, &e), 0);
	assert_int_equal(calls, 1);
	hpke_ctx_wipe(&ctx);

	/* The sender refuses an invalid recipient key. */
	memcpy(bad, v->pk_rm.p, HPKE_ENC_LEN);
	bad[HPKE_ENC_LEN - 1] ^= 0x01;
	assert_int_equal(hpke_setup_base_s(bad, v->info.p, v->info.len, NULL,
	    0, enc, &ctx, &e), ERR_FORMAT);
}

/* A DH callback that fails as a token would. */
static int
dh_failing(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e)
{
	return err_set(e, ERR_TOKEN_NOT_PRESENT, "test token removed");
}

static void
test_dh_failure(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx ctx;
	struct err_ctx e;

	err_clear(&e);
	memset(&ctx, 0xaa, sizeof(ctx));
	assert_int_equal(hpke_setup_base_r(v->enc.p, v->pk_rm.p, dh_failing,
	    NULL, v->info.p, v->info.len, &ctx, &e), ERR_TOKEN_NOT_PRESENT);
	assert_string_equal(err_msg(&e), "test token removed");
	assert_true(all_zero((const uint8_t *)&ctx, sizeof(ctx)));
}

static void
test_wrong_recipient_key(void **state)
{
	struct vectors *v = *state;
	struct first_msg m;
	struct hpke_ctx r;
	struct err_ctx e;
	EVP_PKEY *other = NULL;
	uint8_t out[256];

	first_msg_load(v, &m);
	/* skEm is a valid scalar that is not skRm. */
	assert_int_equal(crypto_ec_from_scalar(v->sk_em.p, &other), 0);
	err_clear(&e);
	assert_int_equal(hpke_setup_base_r(v->enc.p, v->pk_rm.p,
	    hpke_dh_software, other, v->info.p, v->info.len, &r, &e), 0);
	assert_memory_not_equal(r.shared_secret, v->shared_secret.p,
	    HPKE_SECRET_LEN);
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p, m.ct.len,
	    out), ERR_DECRYPT);
	hpke_ctx_wipe(&r);
	EVP_PKEY_free(other);
	first_msg_free(&m);
}

static void
test_wrong_info(void **state)
{
	struct vectors *v = *state;
	struct first_msg m;
	struct hpke_ctx r;
	struct err_ctx e;
	EVP_PKEY *sk_r = NULL;
	uint8_t out[256];

	first_msg_load(v, &m);
	assert_int_equal(crypto_ec_from_scalar(v->sk_rm.p, &sk_r), 0);
	err_clear(&e);
	assert_int_equal(hpke_setup_base_r(v->enc.p, v->pk_rm.p,
	    hpke_dh_software, sk_r, v->info.p, v->info.len - 1, &r, &e), 0);
	assert_memory_equal(r.shared_secret, v->shared_secret.p,
	    HPKE_SECRET_LEN);
	assert_memory_not_equal(r.key, v->key.p, HPKE_KEY_LEN);
	assert_int_equal(hpke_open(&r, m.aad.p, m.aad.len, m.ct.p, m.ct.len,
	    out), ERR_DECRYPT);
	hpke_ctx_wipe(&r);
	EVP_PKEY_free(sk_r);
	first_msg_free(&m);
}

/* The normal case: a fresh ephemeral key each time, recipient key in a
 * software EVP_PKEY. */
static void
test_random_round_trip(void **state)
{
	static const uint8_t info[] = "devid-wrap-v1";
	static const uint8_t aad[] = "header hash";
	uint8_t pk_r[HPKE_ENC_LEN], enc1[HPKE_ENC_LEN], enc2[HPKE_ENC_LEN];
	uint8_t key[32], ct[32 + HPKE_TAG_LEN], back[32];
	struct hpke_ctx s1, s2, r;
	struct err_ctx e;
	EVP_PKEY *sk_r = NULL;

	(void)state;
	err_clear(&e);
	assert_int_equal(crypto_ec_generate(&sk_r), 0);
	assert_int_equal(crypto_ec_point_get(sk_r, pk_r), 0);
	assert_int_equal(crypto_random(key, sizeof(key)), 0);

	assert_int_equal(hpke_setup_base_s(pk_r, info, sizeof(info), NULL, 0,
	    enc1, &s1, &e), 0);
	assert_int_equal(hpke_setup_base_s(pk_r, info, sizeof(info), NULL, 0,
	    enc2, &s2, &e), 0);
	assert_memory_not_equal(enc1, enc2, HPKE_ENC_LEN);
	assert_memory_not_equal(s1.key, s2.key, HPKE_KEY_LEN);

	assert_int_equal(hpke_seal(&s1, aad, sizeof(aad), key, sizeof(key),
	    ct), 0);
	assert_int_equal(hpke_setup_base_r(enc1, pk_r, hpke_dh_software, sk_r,
	    info, sizeof(info), &r, &e), 0);
	assert_memory_equal(r.shared_secret, s1.shared_secret,
	    HPKE_SECRET_LEN);
	assert_int_equal(hpke_open(&r, aad, sizeof(aad), ct, sizeof(ct),
	    back), 0);
	assert_memory_equal(back, key, sizeof(key));
	/* Replaying the same ciphertext at the next seq fails. */
	assert_int_equal(hpke_open(&r, aad, sizeof(aad), ct, sizeof(ct),
	    back), ERR_DECRYPT);

	/* The same with the recipient key given as an EVP_PKEY. */
	hpke_ctx_wipe(&s1);
	hpke_ctx_wipe(&r);
	assert_int_equal(hpke_setup_base_s_key(sk_r, info, sizeof(info), enc1,
	    &s1, &e), 0);
	assert_memory_not_equal(enc1, enc2, HPKE_ENC_LEN);
	assert_int_equal(hpke_seal(&s1, aad, sizeof(aad), key, sizeof(key),
	    ct), 0);
	assert_int_equal(hpke_setup_base_r(enc1, pk_r, hpke_dh_software, sk_r,
	    info, sizeof(info), &r, &e), 0);
	assert_int_equal(hpke_open(&r, aad, sizeof(aad), ct, sizeof(ct),
	    back), 0);
	assert_memory_equal(back, key, sizeof(key));

	hpke_ctx_wipe(&s1);
	hpke_ctx_wipe(&s2);
	hpke_ctx_wipe(&r);
	hpke_ctx_wipe(NULL);
	EVP_PKEY_free(sk_r);
}

static void
test_seq_limit(void **state)
{
	struct vectors *v = *state;
	struct hpke_ctx s;
	uint8_t out[HPKE_TAG_LEN + 1];

	setup_sender(v, &s);
	s.seq = UINT64_MAX;
	assert_int_equal(hpke_seal(&s, NULL, 0, (const uint8_t *)"x", 1, out),
	    ERR_TOO_LARGE);
	assert_int_equal(hpke_open(&s, NULL, 0, out, sizeof(out), out),
	    ERR_TOO_LARGE);
	hpke_ctx_wipe(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derive_keypair),
		cmocka_unit_test(test_setup_sender),
		cmocka_unit_test(test_setup_recipient),
		cmocka_unit_test(test_encryptions),
		cmocka_unit_test(test_exports),
		cmocka_unit_test(test_open_wrong_aad),
		cmocka_unit_test(test_open_flipped_bit),
		cmocka_unit_test(test_open_truncated),
		cmocka_unit_test(test_invalid_enc),
		cmocka_unit_test(test_dh_failure),
		cmocka_unit_test(test_wrong_recipient_key),
		cmocka_unit_test(test_wrong_info),
		cmocka_unit_test(test_random_round_trip),
		cmocka_unit_test(test_seq_limit),
	};

	return cmocka_run_group_tests(tests, setup_vectors, teardown_vectors);
}
