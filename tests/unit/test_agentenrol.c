/*
 * test_agentenrol.c - enrolment codes and endorsement strings: both ways
 * round, and what the parsers refuse: truncated, wrong prefix, oversized,
 * bad base64url, strict JSON, another account, a record changed after it
 * was signed, an endorsement of another device or by another key, a
 * self-endorsement and trailing garbage.
 *
 * Software P-256 keys stand in for the tokens' keys.
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

#include "agent-enrol.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

#define ACCOUNT "alice@example.org"

/* One device: its two keys and its record. */
struct dev {
	EVP_PKEY *sig, *enc;
	uint8_t *sig_der, *enc_der;
	size_t sig_der_len, enc_der_len;
	struct devrec rec;
};

struct fx {
	struct dev card;        /* the new device */
	struct dev laptop;      /* the existing device that endorses */
	struct dev phone;       /* another new device */
	struct dev bob;         /* a device of another account */
};

static int
make_dev(struct dev *d, const char *account, const char *label)
{
	struct err_ctx e;

	err_clear(&e);
	if (crypto_ec_generate(&d->sig) != 0 ||
	    crypto_ec_generate(&d->enc) != 0 ||
	    crypto_spki_export(d->sig, &d->sig_der, &d->sig_der_len) != 0 ||
	    crypto_spki_export(d->enc, &d->enc_der, &d->enc_der_len) != 0 ||
	    devrec_build(&d->rec, account, label, d->sig_der, d->sig_der_len,
	    DEVREC_ENC_HPKE_P256, d->enc_der, d->enc_der_len, 1764400000,
	    devrec_sign_pkey, d->sig, &e) != 0)
		return -1;
	return 0;
}

static void
free_dev(struct dev *d)
{
	EVP_PKEY_free(d->sig);
	EVP_PKEY_free(d->enc);
	free(d->sig_der);
	free(d->enc_der);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || make_dev(&f->card, ACCOUNT, "card") != 0 ||
	    make_dev(&f->laptop, ACCOUNT, "laptop") != 0 ||
	    make_dev(&f->phone, ACCOUNT, "phone") != 0 ||
	    make_dev(&f->bob, "bob@example.org", "card") != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	free_dev(&f->card);
	free_dev(&f->laptop);
	free_dev(&f->phone);
	free_dev(&f->bob);
	free(f);
	return 0;
}

/* prefix + base64url(text), a new string. */
static char *
wrap(const char *prefix, const char *text)
{
	char *b64 = NULL, *out = NULL;

	assert_int_equal(b64url_encode((const uint8_t *)text, strlen(text),
	    &b64), 0);
	assert_true(asprintf(&out, "%s%s", prefix, b64) > 0);
	free(b64);
	return out;
}

/* The code parser's answer to s (NUL-terminated). */
static int
code_parse(const char *s, const char *account, struct devrec *out)
{
	struct err_ctx e;
	int r;

	err_clear(&e);
	r = agent_enrol_code_parse(s, strlen(s), account, out, &e);
	if (r != 0)
		assert_true(strlen(err_msg(&e)) > 0);
	return r;
}

static int
endorsement_parse(const char *s, struct agent_enrol_endorsement *out)
{
	struct err_ctx e;
	int r;

	err_clear(&e);
	r = agent_enrol_endorsement_parse(s, strlen(s), out, &e);
	if (r != 0)
		assert_true(strlen(err_msg(&e)) > 0);
	return r;
}

/* The endorsement string of d's record endorsed by by's key. */
static char *
endorsement_of(const struct devrec *rec, struct dev *by)
{
	struct devrec tmp = *rec;
	struct err_ctx e;
	char *s = NULL;

	err_clear(&e);
	assert_int_equal(devrec_endorse(&tmp, by->sig_der, by->sig_der_len,
	    devrec_sign_pkey, by->sig, &e), 0);
	assert_int_equal(agent_enrol_endorsement_encode(&tmp, by->sig_der,
	    by->sig_der_len, &s, &e), 0);
	return s;
}

static void
test_code_roundtrip(void **state)
{
	struct fx *f = *state;
	struct devrec out, endorsed;
	struct err_ctx e;
	char *code = NULL, *code2 = NULL;

	err_clear(&e);
	assert_int_equal(agent_enrol_code_encode(&f->card.rec, &code, &e), 0);
	assert_true(strncmp(code, AGENT_ENROL_CODE_PREFIX,
	    strlen(AGENT_ENROL_CODE_PREFIX)) == 0);
	assert_true(strlen(code) <= AGENT_ENROL_CODE_MAX);
	memset(&out, 0, sizeof(out));
	assert_int_equal(code_parse(code, ACCOUNT, &out), 0);
	assert_string_equal(out.device, f->card.rec.device);
	assert_string_equal(out.label, "card");
	assert_memory_equal(out.binding_sig, f->card.rec.binding_sig,
	    DEVREC_SIG_LEN);
	assert_int_equal(out.has_endorsement, 0);
	/* any account when none is expected */
	assert_int_equal(code_parse(code, NULL, &out), 0);
	/* an endorsement in the record is left out of the code */
	endorsed = f->card.rec;
	assert_int_equal(devrec_endorse(&endorsed, f->laptop.sig_der,
	    f->laptop.sig_der_len, devrec_sign_pkey, f->laptop.sig, &e), 0);
	assert_int_equal(agent_enrol_code_encode(&endorsed, &code2, &e), 0);
	assert_string_equal(code, code2);
	free(code);
	free(code2);
}

static void
test_code_refused(void **state)
{
	struct fx *f = *state;
	struct devrec out, endorsed, sentinel;
	struct err_ctx e;
	json_t *j = NULL;
	char *code = NULL, *s = NULL, *json = NULL, *big;
	size_t len, n, plen = strlen(AGENT_ENROL_CODE_PREFIX);

	err_clear(&e);
	assert_int_equal(agent_enrol_code_encode(&f->card.rec, &code, &e), 0);
	len = strlen(code);
	memset(&sentinel, 0x5a, sizeof(sentinel));

	/* truncated: at every length; never accepted, out untouched */
	for (n = 0; n < len; n++) {
		s = strndup(code, n);
		out = sentinel;
		assert_int_not_equal(code_parse(s, ACCOUNT, &out), 0);
		assert_memory_equal(&out, &sentinel, sizeof(out));
		free(s);
	}
	/* wrong prefix */
	s = strdup(code);
	s[plen - 2] = '2';
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	s[plen - 2] = '1';
	s[0] = 'D';
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	assert_int_equal(code_parse(code + plen, ACCOUNT, &out), ERR_FORMAT);
	/* an endorsement string is not a code */
	s = endorsement_of(&f->card.rec, &f->laptop);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	/* oversized */
	big = malloc(AGENT_ENROL_CODE_MAX + 2);
	memcpy(big, code, len);
	memset(big + len, 'A', AGENT_ENROL_CODE_MAX + 1 - len);
	big[AGENT_ENROL_CODE_MAX + 1] = '\0';
	assert_int_equal(code_parse(big, ACCOUNT, &out), ERR_TOO_LARGE);
	free(big);
	/* bad base64url: padding, the standard alphabet, white space */
	assert_true(asprintf(&s, "%s=", code) > 0);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	s = strdup(code);
	s[plen + 3] = '+';
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	s[plen + 3] = ' ';
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	assert_true(asprintf(&s, "%s\n", code) > 0);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	/* trailing garbage after the code, and after the JSON inside it */
	assert_true(asprintf(&s, "%sAAAA", code) > 0);
	assert_int_not_equal(code_parse(s, ACCOUNT, &out), 0);
	free(s);
	assert_true(asprintf(&s, "%s devid", code) > 0);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	assert_int_equal(devrec_encode(&f->card.rec, &json, &e), 0);
	{
		char *t;

		assert_true(asprintf(&t, "%s{}", json) > 0);
		s = wrap(AGENT_ENROL_CODE_PREFIX, t);
		assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
		free(s);
		free(t);
	}
	/* not JSON, not an object, an unknown field, a duplicate key */
	s = wrap(AGENT_ENROL_CODE_PREFIX, "not json");
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	s = wrap(AGENT_ENROL_CODE_PREFIX, "[1,2]");
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	{
		char *t;

		assert_true(asprintf(&t, "{\"extra\":1,%s", json + 1) > 0);
		s = wrap(AGENT_ENROL_CODE_PREFIX, t);
		assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
		free(s);
		free(t);
		assert_true(asprintf(&t, "{\"label\":\"x\",%s", json + 1) > 0);
		s = wrap(AGENT_ENROL_CODE_PREFIX, t);
		assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
		free(s);
		free(t);
	}
	/* another account */
	free(code);
	assert_int_equal(agent_enrol_code_encode(&f->bob.rec, &code, &e), 0);
	assert_int_equal(code_parse(code, ACCOUNT, &out), ERR_DENIED);
	assert_int_equal(code_parse(code, "bob@example.org", &out), 0);
	/* a field changed after the device signed it (a swapped label, a
	 * swapped encryption key) */
	assert_int_equal(devrec_to_json(&f->card.rec, &j, &e), 0);
	json_object_set_new(j, "label", json_string("laptop"));
	free(json);
	json = json_dumps(j, JSON_COMPACT);
	s = wrap(AGENT_ENROL_CODE_PREFIX, json);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_SIGNATURE);
	free(s);
	json_decref(j);
	assert_int_equal(devrec_to_json(&f->card.rec, &j, &e), 0);
	{
		char *enc = NULL;

		assert_int_equal(b64url_encode(f->phone.enc_der,
		    f->phone.enc_der_len, &enc), 0);
		json_object_set_new(j, "enc_pub", json_string(enc));
		free(enc);
	}
	free(json);
	json = json_dumps(j, JSON_COMPACT);
	s = wrap(AGENT_ENROL_CODE_PREFIX, json);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_SIGNATURE);
	free(s);
	json_decref(j);
	/* an endorsed record is never a new device's code */
	endorsed = f->card.rec;
	assert_int_equal(devrec_endorse(&endorsed, f->laptop.sig_der,
	    f->laptop.sig_der_len, devrec_sign_pkey, f->laptop.sig, &e), 0);
	free(json);
	assert_int_equal(devrec_encode(&endorsed, &json, &e), 0);
	s = wrap(AGENT_ENROL_CODE_PREFIX, json);
	assert_int_equal(code_parse(s, ACCOUNT, &out), ERR_FORMAT);
	free(s);
	free(json);
	free(code);
}

static void
test_endorsement_roundtrip(void **state)
{
	struct fx *f = *state;
	struct agent_enrol_endorsement en;
	struct devrec rec;
	struct err_ctx e;
	char *s;

	err_clear(&e);
	s = endorsement_of(&f->card.rec, &f->laptop);
	assert_true(strncmp(s, AGENT_ENROL_ENDORSEMENT_PREFIX,
	    strlen(AGENT_ENROL_ENDORSEMENT_PREFIX)) == 0);
	assert_true(strlen(s) <= AGENT_ENROL_ENDORSEMENT_MAX);
	assert_int_equal(endorsement_parse(s, &en), 0);
	assert_string_equal(en.by, f->laptop.rec.device);
	assert_memory_equal(en.sig_pub, f->laptop.sig_der,
	    f->laptop.sig_der_len);
	rec = f->card.rec;
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e), 0);
	assert_int_equal(rec.has_endorsement, 1);
	assert_string_equal(rec.endorsed_by, f->laptop.rec.device);
	assert_int_equal(devrec_verify_endorsement(&rec, f->laptop.sig_der,
	    f->laptop.sig_der_len, &e), 0);
	/* applying again replaces it */
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e), 0);
	/* the encoder refuses a record the key did not endorse */
	free(s);
	s = NULL;
	assert_int_equal(agent_enrol_endorsement_encode(&f->card.rec,
	    f->laptop.sig_der, f->laptop.sig_der_len, &s, &e),
	    ERR_INVALID_ARG);
	assert_int_equal(agent_enrol_endorsement_encode(&rec,
	    f->phone.sig_der, f->phone.sig_der_len, &s, &e), ERR_INVALID_ARG);
	assert_null(s);
}

/* prefix + base64url of the JSON object {by, sig_pub, sig} given. */
static char *
endorsement_json(const char *by, const uint8_t *spki, size_t spki_len,
    const uint8_t *sig, size_t sig_len, const char *extra)
{
	char *spki_b64 = NULL, *sig_b64 = NULL, *t = NULL, *s;

	assert_int_equal(b64url_encode(spki, spki_len, &spki_b64), 0);
	assert_int_equal(b64url_encode(sig, sig_len, &sig_b64), 0);
	assert_true(asprintf(&t, "{\"by\":\"%s\",\"sig_pub\":\"%s\","
	    "\"sig\":\"%s\"%s}", by, spki_b64, sig_b64, extra) > 0);
	s = wrap(AGENT_ENROL_ENDORSEMENT_PREFIX, t);
	free(spki_b64);
	free(sig_b64);
	free(t);
	return s;
}

static void
test_endorsement_refused(void **state)
{
	struct fx *f = *state;
	struct agent_enrol_endorsement en, sentinel;
	struct devrec rec, before;
	struct err_ctx e;
	EVP_PKEY *rsa = NULL;
	uint8_t *rsa_der = NULL, sig[DEVREC_SIG_LEN];
	size_t rsa_len = 0, len, n, plen = strlen(AGENT_ENROL_ENDORSEMENT_PREFIX);
	char *s, *good, *big, *code = NULL, id[DEVREC_ID_HEX_LEN + 1];

	err_clear(&e);
	good = endorsement_of(&f->card.rec, &f->laptop);
	len = strlen(good);
	memset(&sentinel, 0x5a, sizeof(sentinel));
	/* truncated at every length */
	for (n = 0; n < len; n++) {
		s = strndup(good, n);
		en = sentinel;
		assert_int_not_equal(endorsement_parse(s, &en), 0);
		assert_memory_equal(&en, &sentinel, sizeof(en));
		free(s);
	}
	/* wrong prefix; an enrolment code is no endorsement */
	s = strdup(good);
	s[plen - 2] = '2';
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	assert_int_equal(endorsement_parse(good + plen, &en), ERR_FORMAT);
	assert_int_equal(agent_enrol_code_encode(&f->card.rec, &code, &e), 0);
	assert_int_equal(endorsement_parse(code, &en), ERR_FORMAT);
	free(code);
	/* oversized */
	big = malloc(AGENT_ENROL_ENDORSEMENT_MAX + 2);
	memcpy(big, good, len);
	memset(big + len, 'A', AGENT_ENROL_ENDORSEMENT_MAX + 1 - len);
	big[AGENT_ENROL_ENDORSEMENT_MAX + 1] = '\0';
	assert_int_equal(endorsement_parse(big, &en), ERR_TOO_LARGE);
	free(big);
	/* bad base64url, trailing garbage */
	assert_true(asprintf(&s, "%s==", good) > 0);
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	s = strdup(good);
	s[plen + 5] = '/';
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	assert_true(asprintf(&s, "%s x", good) > 0);
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	assert_true(asprintf(&s, "%sAAAA", good) > 0);
	assert_int_not_equal(endorsement_parse(s, &en), 0);
	free(s);

	memset(sig, 7, sizeof(sig));
	/* strict JSON: an extra field, a missing one, a short signature */
	s = endorsement_json(f->laptop.rec.device, f->laptop.sig_der,
	    f->laptop.sig_der_len, sig, sizeof(sig), ",\"x\":1");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	s = wrap(AGENT_ENROL_ENDORSEMENT_PREFIX, "{\"by\":\"00\"}");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	s = endorsement_json(f->laptop.rec.device, f->laptop.sig_der,
	    f->laptop.sig_der_len, sig, 63, "");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	s = endorsement_json(f->laptop.rec.device, f->laptop.sig_der,
	    f->laptop.sig_der_len, sig, sizeof(sig), ",\"by\":\"x\"");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	/* by is not the id of the key it carries */
	s = endorsement_json(f->phone.rec.device, f->laptop.sig_der,
	    f->laptop.sig_der_len, sig, sizeof(sig), "");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	/* a key that is no P-256 signing key */
	assert_int_equal(crypto_rsa_generate(2048, &rsa), 0);
	assert_int_equal(crypto_spki_export(rsa, &rsa_der, &rsa_len), 0);
	assert_int_equal(devrec_device_id(rsa_der, rsa_len, id), 0);
	s = endorsement_json(id, rsa_der, rsa_len, sig, sizeof(sig), "");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);
	s = endorsement_json(id, (const uint8_t *)"junk", 4, sig, sizeof(sig),
	    "");
	assert_int_equal(endorsement_parse(s, &en), ERR_FORMAT);
	free(s);

	/* a bad signature: parses, but does not apply; rec untouched */
	s = endorsement_json(f->laptop.rec.device, f->laptop.sig_der,
	    f->laptop.sig_der_len, sig, sizeof(sig), "");
	assert_int_equal(endorsement_parse(s, &en), 0);
	rec = before = f->card.rec;
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e),
	    ERR_SIGNATURE);
	assert_memory_equal(&rec, &before, sizeof(rec));
	free(s);
	/* the endorsement of another device (the phone's code was endorsed,
	 * and the card is given its endorsement) */
	s = endorsement_of(&f->phone.rec, &f->laptop);
	assert_int_equal(endorsement_parse(s, &en), 0);
	err_clear(&e);
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e),
	    ERR_SIGNATURE);
	assert_non_null(strstr(err_msg(&e), "not one of this device"));
	assert_memory_equal(&rec, &before, sizeof(rec));
	free(s);
	/* another account: bob's card endorsed, given to alice's card */
	s = endorsement_of(&f->bob.rec, &f->laptop);
	assert_int_equal(endorsement_parse(s, &en), 0);
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e),
	    ERR_SIGNATURE);
	free(s);
	/* the record changed after it was endorsed (another label) */
	assert_int_equal(endorsement_parse(good, &en), 0);
	rec.label[0] = 'C';
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e),
	    ERR_SIGNATURE);
	rec = before;
	/* a device that endorses itself */
	s = endorsement_of(&f->card.rec, &f->card);
	assert_int_equal(endorsement_parse(s, &en), 0);
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e),
	    ERR_DENIED);
	free(s);
	/* and the good one still applies */
	assert_int_equal(endorsement_parse(good, &en), 0);
	assert_int_equal(agent_enrol_endorsement_apply(&rec, &en, &e), 0);
	free(good);
	free(rsa_der);
	EVP_PKEY_free(rsa);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_roundtrip),
		cmocka_unit_test(test_code_refused),
		cmocka_unit_test(test_endorsement_roundtrip),
		cmocka_unit_test(test_endorsement_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
