/*
 * test_devrec.c - device records: name and label syntax, ids, the binding
 * and endorsement signatures, and the strict JSON parser.
 *
 * Software P-256 keys stand in for the token's keys.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

struct keys {
	EVP_PKEY *sig;
	EVP_PKEY *enc;
	EVP_PKEY *other;
	uint8_t *sig_der, *enc_der, *other_der;
	size_t sig_der_len, enc_der_len, other_der_len;
};

static int
setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	if (k == NULL ||
	    crypto_ec_generate(&k->sig) != 0 ||
	    crypto_ec_generate(&k->enc) != 0 ||
	    crypto_ec_generate(&k->other) != 0 ||
	    crypto_spki_export(k->sig, &k->sig_der, &k->sig_der_len) != 0 ||
	    crypto_spki_export(k->enc, &k->enc_der, &k->enc_der_len) != 0 ||
	    crypto_spki_export(k->other, &k->other_der,
	    &k->other_der_len) != 0)
		return -1;
	*state = k;
	return 0;
}

static int
teardown(void **state)
{
	struct keys *k = *state;

	EVP_PKEY_free(k->sig);
	EVP_PKEY_free(k->enc);
	EVP_PKEY_free(k->other);
	free(k->sig_der);
	free(k->enc_der);
	free(k->other_der);
	free(k);
	return 0;
}

/* A signing callback that fails like a token without its PIN. */
static int
sign_fail(void *arg, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	(void)arg;
	(void)digest;
	memset(sig, 0, 64);
	return err_set(e, ERR_PIN_REQUIRED, "no PIN");
}

static struct devrec *
make_record(struct keys *k)
{
	struct devrec *rec = calloc(1, sizeof(*rec));
	struct err_ctx e;

	err_clear(&e);
	assert_non_null(rec);
	assert_int_equal(devrec_build(rec, "alice@example.org", "laptop",
	    k->sig_der, k->sig_der_len, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1764400000, devrec_sign_pkey, k->sig, &e), 0);
	return rec;
}

/* --- syntax tables --- */

static void
test_account_syntax(void **state)
{
	static const char *const good[] = {
		"alice@example.org", "a", "0", "a.b_c+d@e-f", "9lives",
		"bob+tag@mail.example.co.uk",
	};
	static const char *const bad[] = {
		"", "Alice@example.org", ".alice", "-a", "_a", "+a", "@a",
		"a b", "a/b", "a:b", "a\tb", "\xc3\xa4lice", "alice\n",
		"a*", "ALICE",
	};
	char longest[130];
	size_t i;
	struct err_ctx e;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(devrec_account_valid(good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(devrec_account_valid(bad[i]));
		err_clear(&e);
		assert_int_equal(devrec_account_check(bad[i], &e), ERR_FORMAT);
		assert_true(strlen(err_msg(&e)) > 10);
	}
	memset(longest, 'a', 128);
	longest[128] = '\0';
	assert_true(devrec_account_valid(longest));
	longest[128] = 'a';
	longest[129] = '\0';
	assert_false(devrec_account_valid(longest));
	assert_false(devrec_account_valid(NULL));
}

static void
test_label_syntax(void **state)
{
	static const char *const good[] = {
		"laptop", "Mein B\xc3\xbcro", "\xe6\x97\xa5\xe6\x9c\xac",
		"\xf0\x9f\x93\xb1 phone",        /* U+1F4F1, 4 bytes */
		("a\xc2\xa0" "b"),                 /* U+00A0, just past C1 */
		"\xf4\x8f\xbf\xbf",              /* U+10FFFF, the last */
		"\xef\xbf\xbd",                  /* U+FFFD */
		"~ tab-less label ~", " ",
	};
	static const char *const bad[] = {
		"",                     /* empty */
		"\x01", "a\tb", "line\n", "\x1f", "\x7f",      /* C0, DEL */
		"\xc2\x80", "x\xc2\x9f",                        /* C1 */
		"\xc0\xaf", "\xc1\xbf",                         /* overlong 2 */
		"\xe0\x80\xaf", "\xe0\x9f\xbf",                 /* overlong 3 */
		"\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf",         /* overlong 4 */
		"\xed\xa0\x80", "\xed\xbf\xbf",                 /* surrogates */
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80",         /* > U+10FFFF */
		"\xff", "\xfe", "\x80", ("a\xbf" "b"),            /* stray bytes */
		"\xe6\x97", "\xf0\x9f\x93", "\xc3",             /* truncated */
		"\xc3\x28", "\xe2\x28\xa1",                     /* bad cont. */
		("abc\xe2\x80\xae" "gpj.exe"),                    /* U+202E RLO */
		("\xe2\x81\xa6" "x"),                             /* U+2066 */
		"\xe2\x80\x8f",                                 /* U+200F RLM */
	};
	char label[70];
	size_t i;
	struct err_ctx e;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err_clear(&e);
		if (devrec_label_check(good[i], &e) != 0)
			fail_msg("label %zu rejected: %s", i, err_msg(&e));
		assert_true(devrec_label_valid(good[i]));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (devrec_label_valid(bad[i]))
			fail_msg("bad label %zu accepted", i);
		err_clear(&e);
		assert_int_equal(devrec_label_check(bad[i], &e), ERR_FORMAT);
	}
	/* 64 bytes is the limit, counted in bytes, not characters. */
	memset(label, 'x', 64);
	label[64] = '\0';
	assert_true(devrec_label_valid(label));
	label[64] = 'x';
	label[65] = '\0';
	assert_false(devrec_label_valid(label));
	/* 21 three-byte characters (63 bytes) then a 2-byte one: 65. */
	for (i = 0; i < 21; i++)
		memcpy(label + 3 * i, "\xe6\x97\xa5", 3);
	memcpy(label + 63, "\xc3\xbc", 3);
	assert_int_equal(strlen(label), 65);
	assert_false(devrec_label_valid(label));
	label[63] = 'x';
	label[64] = '\0';
	assert_true(devrec_label_valid(label));
	assert_false(devrec_label_valid(NULL));
}

/* --- ids --- */

static void
test_ids(void **state)
{
	struct keys *k = *state;
	char id[65], short_id[20], want[65];
	uint8_t h[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;

	assert_int_equal(devrec_device_id(k->sig_der, k->sig_der_len, id), 0);
	/* hex(SHA-256(SPKI)), computed here with OpenSSL directly. */
	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(md, k->sig_der, k->sig_der_len), 1);
	assert_int_equal(EVP_DigestFinal_ex(md, h, &n), 1);
	EVP_MD_CTX_free(md);
	hex_encode(h, 32, want);
	assert_string_equal(id, want);
	assert_true(devrec_id_valid(id));
	assert_int_equal(devrec_pkey_id(k->sig, id), 0);
	assert_string_equal(id, want);

	assert_int_equal(devrec_short_id("3f2a9c0177deb410"
	    "000000000000000000000000000000000000000000000000", short_id), 0);
	assert_string_equal(short_id, "3f2a-9c01-77de-b410");
	assert_int_equal(devrec_short_id(id, short_id), 0);
	assert_int_equal(strlen(short_id), DEVREC_SHORT_ID_LEN);
	assert_memory_equal(short_id, id, 4);
	assert_int_equal(short_id[4], '-');
	assert_memory_equal(short_id + 15, id + 12, 4);

	assert_int_equal(devrec_short_id("3f2a", short_id), ERR_INVALID_ARG);
	assert_int_equal(devrec_short_id("3F2A9C0177DEB410"
	    "000000000000000000000000000000000000000000000000", short_id),
	    ERR_INVALID_ARG);
	assert_false(devrec_id_valid("3f2a"));
	{
		char longer[66];

		snprintf(longer, sizeof(longer), "%s0", id);
		assert_false(devrec_id_valid(longer));
	}
	id[10] = 'g';
	assert_false(devrec_id_valid(id));
}

/* --- building and verifying --- */

static void
test_build_verify(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = make_record(k);
	struct devrec *bad = calloc(1, sizeof(*bad));
	struct buf *b = buf_new(0);
	uint8_t hb[32], want[32];
	char id[65];
	struct err_ctx e;

	assert_non_null(bad);
	err_clear(&e);
	assert_int_equal(devrec_verify(rec, &e), 0);
	assert_int_equal(devrec_device_id(k->sig_der, k->sig_der_len, id), 0);
	assert_string_equal(rec->device, id);
	assert_string_equal(rec->enc_alg, "hpke-p256");
	assert_false(rec->has_endorsement);

	/* H(B) spelled out independently of the transcript builder. */
	assert_int_equal(buf_put(b, "devid-device-v1", 16), 0);
	assert_int_equal(buf_put_u32(b, 17), 0);
	assert_int_equal(buf_put(b, "alice@example.org", 17), 0);
	assert_int_equal(buf_put_u32(b, 6), 0);
	assert_int_equal(buf_put(b, "laptop", 6), 0);
	assert_int_equal(buf_put_u32(b, (uint32_t)k->sig_der_len), 0);
	assert_int_equal(buf_put(b, k->sig_der, k->sig_der_len), 0);
	assert_int_equal(buf_put_u32(b, 9), 0);
	assert_int_equal(buf_put(b, "hpke-p256", 9), 0);
	assert_int_equal(buf_put_u32(b, (uint32_t)k->enc_der_len), 0);
	assert_int_equal(buf_put(b, k->enc_der, k->enc_der_len), 0);
	assert_int_equal(buf_put_u64(b, 1764400000), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), want), 0);
	assert_int_equal(devrec_binding_hash(rec, hb), 0);
	assert_memory_equal(hb, want, 32);
	/* And the signature is over exactly that digest. */
	assert_int_equal(crypto_ecdsa_verify(k->sig, want, rec->binding_sig),
	    0);

	/* Any field changed breaks the binding signature. */
	*bad = *rec;
	memcpy(bad->label, "laptoq", 7);
	err_clear(&e);
	assert_int_equal(devrec_verify(bad, &e), ERR_SIGNATURE);
	*bad = *rec;
	bad->created++;
	assert_int_equal(devrec_verify(bad, NULL), ERR_SIGNATURE);
	*bad = *rec;
	bad->binding_sig[5] ^= 1;
	assert_int_equal(devrec_verify(bad, NULL), ERR_SIGNATURE);
	*bad = *rec;
	memcpy(bad->enc_pub, k->other_der, k->other_der_len);
	bad->enc_pub_len = k->other_der_len;
	assert_int_equal(devrec_verify(bad, NULL), ERR_SIGNATURE);
	*bad = *rec;
	memcpy(bad->account, "bob@example.org", 16);
	assert_int_equal(devrec_verify(bad, NULL), ERR_SIGNATURE);

	/* A device id that is not H(sig_pub). */
	*bad = *rec;
	bad->device[0] = bad->device[0] == 'a' ? 'b' : 'a';
	err_clear(&e);
	assert_int_equal(devrec_verify(bad, &e), ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "hash of its sig_pub"));
	/* Another key with a record that claims to be this one. */
	*bad = *rec;
	memcpy(bad->sig_pub, k->other_der, k->other_der_len);
	bad->sig_pub_len = k->other_der_len;
	assert_int_equal(devrec_verify(bad, NULL), ERR_FORMAT);

	/* Bad syntax is caught by verify too. */
	*bad = *rec;
	memcpy(bad->label, "a\x01", 3);
	assert_int_equal(devrec_verify(bad, NULL), ERR_FORMAT);
	*bad = *rec;
	memcpy(bad->enc_alg, "rsa-oaep", 9);
	assert_int_equal(devrec_verify(bad, NULL), ERR_FORMAT);
	*bad = *rec;
	memcpy(bad->enc_alg, "rsa-oaep-sha256", 16);
	assert_int_equal(devrec_verify(bad, NULL), ERR_FORMAT);

	buf_free(b);
	free(bad);
	free(rec);
}

static void
test_build_errors(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = calloc(1, sizeof(*rec));
	struct err_ctx e;

	assert_non_null(rec);
	memset(rec, 0x5a, sizeof(*rec));
	/* A token that signs with another key is caught at once. */
	err_clear(&e);
	assert_int_equal(devrec_build(rec, "alice@example.org", "laptop",
	    k->sig_der, k->sig_der_len, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->other, &e), ERR_SIGNATURE);
	/* The callback's error comes through. */
	err_clear(&e);
	assert_int_equal(devrec_build(rec, "alice@example.org", "laptop",
	    k->sig_der, k->sig_der_len, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1, sign_fail, NULL, &e), ERR_PIN_REQUIRED);
	assert_string_equal(err_msg(&e), "no PIN");
	assert_int_equal(devrec_build(rec, "Alice", "laptop",
	    k->sig_der, k->sig_der_len, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	assert_int_equal(devrec_build(rec, "alice", "",
	    k->sig_der, k->sig_der_len, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	assert_int_equal(devrec_build(rec, "alice", "x",
	    k->sig_der, k->sig_der_len, "x25519", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->sig, NULL),
	    ERR_UNSUPPORTED);
	/* An EC encryption key cannot be an RSA-OAEP key. */
	assert_int_equal(devrec_build(rec, "alice", "x",
	    k->sig_der, k->sig_der_len, "rsa-oaep-sha256", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	assert_int_equal(devrec_build(rec, "alice", "x",
	    k->sig_der, k->sig_der_len - 1, "hpke-p256", k->enc_der,
	    k->enc_der_len, 1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	/* Nothing was written on failure. */
	assert_int_equal(rec->account[0], 0x5a);
	free(rec);
}

static void
test_rsa_record(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = calloc(1, sizeof(*rec));
	struct devrec *back = calloc(1, sizeof(*back));
	EVP_PKEY *rsa = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	char *s = NULL;
	struct err_ctx e;

	assert_non_null(rec);
	assert_non_null(back);
	assert_int_equal(crypto_rsa_generate(2048, &rsa), 0);
	assert_int_equal(crypto_spki_export(rsa, &der, &der_len), 0);
	err_clear(&e);
	assert_int_equal(devrec_build(rec, "carol", "smartcard",
	    k->sig_der, k->sig_der_len, "rsa-oaep-sha256", der, der_len,
	    1764400000, devrec_sign_pkey, k->sig, &e), 0);
	assert_int_equal(devrec_verify(rec, &e), 0);
	assert_int_equal(devrec_encode(rec, &s, &e), 0);
	assert_int_equal(devrec_parse(s, strlen(s), 0, back, &e), 0);
	assert_int_equal(devrec_verify(back, &e), 0);
	assert_memory_equal(back->enc_pub, der, der_len);
	/* RSA for hpke-p256 is refused, and RSA as a signing key too. */
	assert_int_equal(devrec_build(rec, "carol", "smartcard",
	    k->sig_der, k->sig_der_len, "hpke-p256", der, der_len,
	    1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	assert_int_equal(devrec_build(rec, "carol", "smartcard",
	    der, der_len, "hpke-p256", k->enc_der, k->enc_der_len,
	    1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	/* PROTOCOL section 2 allows RSA 2048 or 3072 only. */
	free(der);
	EVP_PKEY_free(rsa);
	assert_int_equal(crypto_rsa_generate(4096, &rsa), 0);
	assert_int_equal(crypto_spki_export(rsa, &der, &der_len), 0);
	assert_int_equal(devrec_build(rec, "carol", "smartcard",
	    k->sig_der, k->sig_der_len, "rsa-oaep-sha256", der, der_len,
	    1, devrec_sign_pkey, k->sig, NULL), ERR_FORMAT);
	free(s);
	free(der);
	EVP_PKEY_free(rsa);
	free(back);
	free(rec);
}

static void
test_endorsement(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = make_record(k);
	struct devrec *copy = calloc(1, sizeof(*copy));
	struct buf *b = buf_new(0);
	uint8_t hb[32], want[32];
	char other_id[65];
	struct err_ctx e;

	assert_non_null(copy);
	err_clear(&e);
	assert_int_equal(devrec_verify_endorsement(rec, k->other_der,
	    k->other_der_len, &e), ERR_NOT_FOUND);
	err_clear(&e);
	assert_int_equal(devrec_endorse(rec, k->other_der, k->other_der_len,
	    devrec_sign_pkey, k->other, &e), 0);
	assert_true(rec->has_endorsement);
	assert_int_equal(devrec_device_id(k->other_der, k->other_der_len,
	    other_id), 0);
	assert_string_equal(rec->endorsed_by, other_id);
	assert_int_equal(devrec_verify_endorsement(rec, k->other_der,
	    k->other_der_len, &e), 0);
	/* The binding is unaffected by the endorsement. */
	assert_int_equal(devrec_verify(rec, &e), 0);

	/* The endorsement transcript, spelled out. */
	assert_int_equal(devrec_binding_hash(rec, hb), 0);
	assert_int_equal(buf_put(b, "devid-endorse-v1", 17), 0);
	assert_int_equal(buf_put_lp(b, "alice@example.org", 17), 0);
	assert_int_equal(buf_put_lp(b, rec->device, 64), 0);
	assert_int_equal(buf_put_lp(b, hb, 32), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), want), 0);
	assert_int_equal(crypto_ecdsa_verify(k->other, want,
	    rec->endorsement_sig), 0);

	/* Checked with a key that is not the endorser's. */
	assert_int_equal(devrec_verify_endorsement(rec, k->sig_der,
	    k->sig_der_len, NULL), ERR_FORMAT);
	*copy = *rec;
	copy->endorsement_sig[0] ^= 0x80;
	assert_int_equal(devrec_verify_endorsement(copy, k->other_der,
	    k->other_der_len, NULL), ERR_SIGNATURE);
	*copy = *rec;
	copy->created++;
	assert_int_equal(devrec_verify_endorsement(copy, k->other_der,
	    k->other_der_len, NULL), ERR_SIGNATURE);

	/* A signer that is not the key named leaves the record as it was. */
	*copy = *rec;
	assert_int_equal(devrec_endorse(copy, k->other_der, k->other_der_len,
	    devrec_sign_pkey, k->sig, NULL), ERR_SIGNATURE);
	assert_memory_equal(copy, rec, sizeof(*rec));

	buf_free(b);
	free(copy);
	free(rec);
}

/* --- JSON --- */

static void
test_json_roundtrip(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = make_record(k);
	struct devrec *back = calloc(1, sizeof(*back));
	json_t *obj = NULL;
	char *s = NULL;
	struct err_ctx e;

	assert_non_null(back);
	err_clear(&e);
	assert_int_equal(devrec_encode(rec, &s, &e), 0);
	assert_non_null(strstr(s, "\"enc_alg\":\"hpke-p256\""));
	assert_null(strstr(s, "endorsement"));
	assert_null(strchr(s, '='));
	assert_int_equal(devrec_parse(s, strlen(s), 0, back, &e), 0);
	assert_memory_equal(back, rec, sizeof(*rec));
	free(s);

	assert_int_equal(devrec_endorse(rec, k->other_der, k->other_der_len,
	    devrec_sign_pkey, k->other, &e), 0);
	assert_int_equal(devrec_to_json(rec, &obj, &e), 0);
	memset(back, 0, sizeof(*back));
	assert_int_equal(devrec_from_json(obj, back, &e), 0);
	assert_memory_equal(back, rec, sizeof(*rec));
	assert_int_equal(devrec_verify_endorsement(back, k->other_der,
	    k->other_der_len, &e), 0);
	json_decref(obj);
	free(back);
	free(rec);
}

enum mut {
	M_DEL,          /* remove the field */
	M_INT,          /* replace by the integer 7 */
	M_REAL,         /* replace by 7.0 */
	M_STR,          /* replace by the string given */
	M_NULL,         /* replace by null */
	M_NEG,          /* replace by -1 */
	M_HUGE,         /* replace by 2^53 + 1 */
	M_ARRAY,        /* replace by [] */
	M_TRUE,         /* replace by true */
};

struct json_case {
	const char *key;        /* "endorsement.by" reaches inside */
	enum mut mut;
	const char *str;
	int want;
};

/* Applies one mutation to a deep copy of base and parses it both as a
 * json_t and as text; both must fail with c->want. */
static void
check_json_case(const json_t *base, const struct json_case *c, size_t idx)
{
	json_t *obj = json_deep_copy(base), *target = obj, *v = NULL;
	struct devrec *out = calloc(1, sizeof(*out));
	const char *key = c->key, *dot;
	char parent[32];
	char *s;
	struct err_ctx e;
	int r;

	assert_non_null(obj);
	assert_non_null(out);
	if ((dot = strchr(key, '.')) != NULL) {
		memcpy(parent, key, (size_t)(dot - key));
		parent[dot - key] = '\0';
		target = json_object_get(obj, parent);
		assert_non_null(target);
		key = dot + 1;
	}
	switch (c->mut) {
	case M_DEL:
		json_object_del(target, key);
		break;
	case M_INT:
		v = json_integer(7);
		break;
	case M_REAL:
		v = json_real(7.0);
		break;
	case M_STR:
		v = json_string(c->str);
		break;
	case M_NULL:
		v = json_null();
		break;
	case M_NEG:
		v = json_integer(-1);
		break;
	case M_HUGE:
		v = json_integer(((json_int_t)1 << 53) + 1);
		break;
	case M_ARRAY:
		v = json_array();
		break;
	case M_TRUE:
		v = json_true();
		break;
	}
	if (v != NULL)
		json_object_set_new(target, key, v);
	memset(out, 0x5a, sizeof(*out));
	err_clear(&e);
	r = devrec_from_json(obj, out, &e);
	if (r != c->want)
		fail_msg("case %zu (%s): got %d (%s), want %d", idx, c->key, r,
		    err_msg(&e), c->want);
	assert_true(strlen(err_msg(&e)) > 0);
	assert_int_equal(((uint8_t *)out)[0], 0x5a);     /* untouched */
	s = json_dumps(obj, JSON_COMPACT);
	assert_non_null(s);
	r = devrec_parse(s, strlen(s), 0, out, NULL);
	if (r != c->want)
		fail_msg("case %zu (%s) as text: got %d, want %d", idx, c->key,
		    r, c->want);
	free(s);
	free(out);
	json_decref(obj);
}

static void
test_json_negative(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = make_record(k);
	json_t *base = NULL;
	char *b64 = NULL, *padded = NULL, *big = NULL;
	uint8_t *blob;
	size_t i, n;
	struct err_ctx e;
	/* Strings computed below. */
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p;
	char sig_padded[200], sig_ws[200], sig_plus[200], sig_trail[200];
	char long_label[80], upper_id[80], short_id[80];
	struct json_case cases[64];

	assert_int_equal(devrec_endorse(rec, k->other_der, k->other_der_len,
	    devrec_sign_pkey, k->other, NULL), 0);
	err_clear(&e);
	assert_int_equal(devrec_to_json(rec, &base, &e), 0);

	/* binding_sig variants: padding, whitespace, other alphabet, and
	 * non-zero trailing bits (86 characters carry 516 bits). */
	assert_int_equal(b64url_encode(rec->binding_sig, 64, &b64), 0);
	assert_int_equal(strlen(b64), 86);
	snprintf(sig_padded, sizeof(sig_padded), "%s==", b64);
	snprintf(sig_ws, sizeof(sig_ws), "%.40s %s", b64, b64 + 40);
	snprintf(sig_plus, sizeof(sig_plus), "%s", b64);
	sig_plus[3] = '+';
	snprintf(sig_trail, sizeof(sig_trail), "%s", b64);
	/* The last character holds 2 data bits and 4 zero bits: set one. */
	p = strchr(alphabet, sig_trail[85]);
	assert_non_null(p);
	assert_int_equal((p - alphabet) & 0xf, 0);
	sig_trail[85] = alphabet[(p - alphabet) | 1];
	memset(long_label, 'x', 65);
	long_label[65] = '\0';
	snprintf(upper_id, sizeof(upper_id), "%s", rec->device);
	for (i = 0; i < 64; i++)
		if (upper_id[i] >= 'a' && upper_id[i] <= 'f')
			upper_id[i] = (char)(upper_id[i] - 'a' + 'A');
	snprintf(short_id, sizeof(short_id), "%.63s", rec->device);
	/* sig_pub of CRYPTO_SPKI_MAX + 1 bytes. */
	blob = calloc(1, CRYPTO_SPKI_MAX + 1);
	assert_non_null(blob);
	assert_int_equal(b64url_encode(blob, CRYPTO_SPKI_MAX + 1, &big), 0);
	assert_int_equal(b64url_encode(k->sig_der, k->sig_der_len, &padded),
	    0);

	n = 0;
#define CASE(k_, m_, s_, w_) do {					\
		cases[n].key = (k_); cases[n].mut = (m_);		\
		cases[n].str = (s_); cases[n].want = (w_); n++;		\
	} while (0)
	CASE("account", M_DEL, NULL, ERR_FORMAT);
	CASE("device", M_DEL, NULL, ERR_FORMAT);
	CASE("label", M_DEL, NULL, ERR_FORMAT);
	CASE("sig_pub", M_DEL, NULL, ERR_FORMAT);
	CASE("enc_alg", M_DEL, NULL, ERR_FORMAT);
	CASE("enc_pub", M_DEL, NULL, ERR_FORMAT);
	CASE("created", M_DEL, NULL, ERR_FORMAT);
	CASE("binding_sig", M_DEL, NULL, ERR_FORMAT);
	CASE("endorsement.by", M_DEL, NULL, ERR_FORMAT);
	CASE("endorsement.sig", M_DEL, NULL, ERR_FORMAT);
	CASE("account", M_INT, NULL, ERR_FORMAT);
	CASE("label", M_NULL, NULL, ERR_FORMAT);
	CASE("created", M_STR, "1764400000", ERR_FORMAT);
	CASE("created", M_REAL, NULL, ERR_FORMAT);
	CASE("created", M_NEG, NULL, ERR_FORMAT);
	CASE("created", M_HUGE, NULL, ERR_FORMAT);
	CASE("created", M_TRUE, NULL, ERR_FORMAT);
	CASE("sig_pub", M_ARRAY, NULL, ERR_FORMAT);
	CASE("endorsement", M_STR, "x", ERR_FORMAT);
	CASE("endorsement", M_NULL, NULL, ERR_FORMAT);
	CASE("endorsement.extra", M_INT, NULL, ERR_FORMAT);
	CASE("extra", M_INT, NULL, ERR_FORMAT);
	CASE("Account", M_STR, "alice", ERR_FORMAT);
	CASE("account", M_STR, "Alice@example.org", ERR_FORMAT);
	CASE("account", M_STR, "", ERR_FORMAT);
	CASE("label", M_STR, long_label, ERR_TOO_LARGE);
	CASE("label", M_STR, "a\x7f", ERR_FORMAT);
	CASE("label", M_STR, "\xc2\x85", ERR_FORMAT);
	CASE("device", M_STR, upper_id, ERR_FORMAT);
	CASE("device", M_STR, short_id, ERR_FORMAT);
	CASE("endorsement.by", M_STR, upper_id, ERR_FORMAT);
	CASE("enc_alg", M_STR, "rsa-oaep-sha256", ERR_FORMAT);  /* EC key */
	CASE("enc_alg", M_STR, "HPKE-P256", ERR_FORMAT);
	CASE("enc_alg", M_STR, "x25519", ERR_FORMAT);
	CASE("enc_alg", M_STR, "rsa-oaep-sha256-extra", ERR_FORMAT);
	CASE("binding_sig", M_STR, sig_padded, ERR_FORMAT);
	CASE("binding_sig", M_STR, sig_ws, ERR_FORMAT);
	CASE("binding_sig", M_STR, sig_plus, ERR_FORMAT);
	CASE("binding_sig", M_STR, sig_trail, ERR_FORMAT);
	CASE("binding_sig", M_STR, "AAAA", ERR_FORMAT);
	CASE("endorsement.sig", M_STR, sig_padded, ERR_FORMAT);
	CASE("sig_pub", M_STR, big, ERR_TOO_LARGE);
	CASE("enc_pub", M_STR, big, ERR_TOO_LARGE);
	CASE("sig_pub", M_STR, "AAAA", ERR_FORMAT);     /* not an SPKI */
	CASE("sig_pub", M_STR, "", ERR_FORMAT);
#undef CASE
	for (i = 0; i < n; i++)
		check_json_case(base, &cases[i], i);
	(void)padded;

	free(blob);
	free(big);
	free(padded);
	free(b64);
	json_decref(base);
	free(rec);
}

static void
test_json_text_negative(void **state)
{
	struct keys *k = *state;
	struct devrec *rec = make_record(k);
	struct devrec *out = calloc(1, sizeof(*out));
	char *s = NULL, *t;
	const char *p;
	size_t len;
	struct err_ctx e;

	assert_non_null(out);
	assert_int_equal(devrec_encode(rec, &s, NULL), 0);
	len = strlen(s);
	t = calloc(1, len + 64);
	assert_non_null(t);

	/* A duplicate key, even with the same value. */
	snprintf(t, len + 64, "{\"label\":\"laptop\",%s", s + 1);
	err_clear(&e);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, &e), ERR_FORMAT);
	/* Trailing bytes after the object. */
	snprintf(t, len + 64, "%s x", s);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);
	/* Two objects. */
	snprintf(t, len + 64, "%s{}", s);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);
	/* Truncated. */
	assert_int_equal(devrec_parse(s, len - 1, 0, out, NULL), ERR_FORMAT);
	/* Not an object. */
	assert_int_equal(devrec_parse("[]", 2, 0, out, NULL), ERR_FORMAT);
	assert_int_equal(devrec_parse("\"x\"", 3, 0, out, NULL), ERR_FORMAT);
	assert_int_equal(devrec_parse("", 0, 0, out, NULL), ERR_FORMAT);
	/* Larger than the caller's limit. */
	assert_int_equal(devrec_parse(s, len, len - 1, out, NULL),
	    ERR_TOO_LARGE);
	assert_int_equal(devrec_parse(s, len, len, out, NULL), 0);
	/* A NUL inside a string (jansson refuses \u0000 by default). */
	t[0] = '\0';
	snprintf(t, len + 64, "%s", s);
	memcpy(strstr(t, "laptop"), "la\\u0000", 8);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);
	/* Invalid UTF-8 in the text. */
	snprintf(t, len + 64, "%s", s);
	memcpy(strstr(t, "laptop"), "l\xc0\xaftop", 6);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);
	/* An escaped control character. */
	snprintf(t, len + 64, "%s", s);
	memcpy(strstr(t, "laptop"), "\\u0007", 6);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);
	/* A huge created that does not fit in 63 bits. */
	snprintf(t, len + 64, "%s", s);
	memcpy(strstr(t, "1764400000"), "9999999999", 10);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), 0);
	p = strstr(s, "1764400000");
	assert_non_null(p);
	snprintf(t, len + 64, "%.*s99999999999999999999%s", (int)(p - s), s,
	    p + 10);
	assert_int_equal(devrec_parse(t, strlen(t), 0, out, NULL), ERR_FORMAT);

	free(t);
	free(s);
	free(out);
	free(rec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_account_syntax),
		cmocka_unit_test(test_label_syntax),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_build_verify),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_rsa_record),
		cmocka_unit_test(test_endorsement),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_negative),
		cmocka_unit_test(test_json_text_negative),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
