/*
 * test_registry.c - the token-signed registry: encode/parse,
 * signature over H("devid-registry-v1"\0 || file), verification that
 * catches every change to the file or the signature, the strict parser's
 * refusals and device-prefix matching.  A software P-256 key stands in
 * for the token.
 */
#include "config.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "paths.h"
#include "registry.h"
#include "transcript.h"

#define DIRID "5c7a655f4354ad30ee348a2235da1e4af5c21822e90ad926f88fea1e9d01278f"

struct fx {
	EVP_PKEY *key;          /* "token" signing key */
	EVP_PKEY *other;
	struct devrec rec;      /* this device's record */
	char dir[64];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t *sig = NULL, *enc = NULL;
	size_t sl = 0, el = 0;
	EVP_PKEY *ek = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (f == NULL || crypto_ec_generate(&f->key) != 0 ||
	    crypto_ec_generate(&f->other) != 0 ||
	    crypto_ec_generate(&ek) != 0 ||
	    crypto_spki_export(f->key, &sig, &sl) != 0 ||
	    crypto_spki_export(ek, &enc, &el) != 0 ||
	    devrec_build(&f->rec, "alice@example.org", "laptop", sig, sl,
	    DEVREC_ENC_HPKE_P256, enc, el, 1764400000, devrec_sign_pkey,
	    f->key, &e) != 0)
		return -1;
	free(sig);
	free(enc);
	EVP_PKEY_free(ek);
	snprintf(f->dir, sizeof(f->dir), "%s/devid-reg-XXXXXX", P_tmpdir);
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char *p;

	p = path_join(f->dir, REG_FILE);
	unlink(p);
	free(p);
	p = path_join(f->dir, REG_SIG_FILE);
	unlink(p);
	free(p);
	rmdir(f->dir);
	EVP_PKEY_free(f->key);
	EVP_PKEY_free(f->other);
	free(f);
	return 0;
}

static void
make_reg(struct fx *f, struct registry *reg)
{
	struct reg_device *d;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(reg_init(reg, "alice@example.org", f->rec.device,
	    DIRID, &e), 0);
	assert_int_equal(reg_add(reg, f->rec.device, &d, &e), 0);
	snprintf(d->label, sizeof(d->label), "laptop");
	d->state = REG_APPROVED;
	d->first_seen = 1764400000;
	d->rec = f->rec;
	d->has_record = 1;
	assert_int_equal(reg_add(reg, "3f2a9c0177deb410" "0000000000000000"
	    "0000000000000000" "0000000000000001", &d, &e), 0);
	snprintf(d->label, sizeof(d->label), "card");
	d->state = REG_PENDING;
	d->add_seq = 2;
	memset(d->add_hash, 0xab, 32);
	assert_int_equal(reg_add(reg, f->rec.device, &d, &e), ERR_EXISTS);
}

static char *
path_of(struct fx *f, const char *name)
{
	char *p = path_join(f->dir, name);

	assert_non_null(p);
	return p;
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static char *
read_text(const char *path)
{
	struct err_ctx e;
	char *t = NULL, *copy;
	size_t n = 0;
	int r;

	r = fileio_read(path, REG_FILE_MAX, 0, &t, &n, &e);
	assert_int_equal(r, 0);
	/* A copy: returning t itself makes GCC 12 at -O2 warn, wrongly,
	 * that callers use a dangling pointer to this local. */
	copy = strdup(t);
	free(t);
	assert_non_null(copy);
	return copy;
}

static void
test_save_load(void **state)
{
	struct fx *f = *state;
	struct registry reg, back;
	struct err_ctx e;
	struct stat st;
	char *p;

	make_reg(f, &reg);
	err_clear(&e);
	assert_int_equal(reg_save(&reg, f->dir, devrec_sign_pkey, f->key, &e),
	    0);
	p = path_of(f, REG_FILE);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(p);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), 0);
	assert_string_equal(back.account, "alice@example.org");
	assert_string_equal(back.device, f->rec.device);
	assert_int_equal(back.n_devs, 2);
	assert_int_equal(back.devs[0].state, REG_APPROVED);
	assert_true(back.devs[0].has_record);
	assert_int_equal(back.devs[1].state, REG_PENDING);
	assert_int_equal(back.devs[1].add_seq, 2);
	assert_memory_equal(back.devs[1].add_hash, reg.devs[1].add_hash, 32);
	reg_clear(&back);
	/* The signature is over H(tag \0 || bytes). */
	{
		char *tp = path_of(f, REG_FILE);
		char *text = read_text(tp), *sigtext;
		uint8_t digest[32], sig[64], manual[32];
		struct buf *b = buf_new(0);
		char *sp = path_of(f, REG_SIG_FILE);

		sigtext = read_text(sp);
		assert_int_equal(b64url_decode_exact(sigtext,
		    strlen(sigtext) - 1, sig, 64), 0);
		assert_int_equal(reg_digest(text, strlen(text), digest), 0);
		assert_int_equal(buf_put(b, "devid-registry-v1", 18), 0);
		assert_int_equal(buf_put(b, text, strlen(text)), 0);
		assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), manual),
		    0);
		assert_memory_equal(digest, manual, 32);
		assert_int_equal(crypto_ecdsa_verify(f->key, digest, sig), 0);
		buf_free(b);
		free(text);
		free(sigtext);
		free(sp);
		free(tp);
	}
	reg_clear(&reg);
	reg_clear(NULL);
}

static void
test_tamper(void **state)
{
	struct fx *f = *state;
	struct registry reg, back;
	struct err_ctx e;
	char *p = path_of(f, REG_FILE), *sp = path_of(f, REG_SIG_FILE);
	char *text, *sig, *edited;
	size_t i;

	make_reg(f, &reg);
	err_clear(&e);
	assert_int_equal(reg_save(&reg, f->dir, devrec_sign_pkey, f->key, &e),
	    0);
	text = read_text(p);
	sig = read_text(sp);

	/* A device added or changed by hand: every byte counts. */
	edited = strdup(text);
	*strstr(edited, "\"pending\"") = '\0';
	{
		char *full = NULL;
		int n;

		n = asprintf(&full, "%s\"approved\"%s", edited,
		    strstr(text, "\"pending\"") + 9);
		assert_true(n > 0);
		write_text(p, full);
		free(full);
	}
	err_clear(&e);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_SIGNATURE);
	assert_non_null(strstr(err_msg(&e), "changed outside the agent"));
	free(edited);
	/* one flipped byte, trailing whitespace */
	for (i = 0; i < 2; i++) {
		edited = strdup(text);
		if (i == 0)
			edited[strlen(edited) / 2] ^= 1;
		write_text(p, edited);
		if (i == 1) {
			FILE *fp = fopen(p, "a");

			fputs("\n", fp);
			fclose(fp);
		}
		assert_int_equal(reg_load(f->dir, f->key, &back, &e),
		    ERR_SIGNATURE);
		free(edited);
	}
	write_text(p, text);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), 0);
	reg_clear(&back);
	/* The signature file: missing, garbage, padded, another key. */
	unlink(sp);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_SIGNATURE);
	write_text(sp, "not a signature\n");
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_SIGNATURE);
	write_text(sp, "");
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_SIGNATURE);
	{
		char *nonl = strdup(sig);

		nonl[strlen(nonl) - 1] = '\0';
		write_text(sp, nonl);   /* without the newline */
		assert_int_equal(reg_load(f->dir, f->key, &back, &e),
		    ERR_SIGNATURE);
		free(nonl);
	}
	write_text(sp, sig);
	assert_int_equal(reg_load(f->dir, f->other, &back, &e), ERR_SIGNATURE);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), 0);
	reg_clear(&back);
	/* A registry signed with another key (someone else's token). */
	assert_int_equal(reg_save(&reg, f->dir, devrec_sign_pkey, f->other,
	    &e), 0);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_SIGNATURE);
	/* No registry at all. */
	unlink(p);
	assert_int_equal(reg_load(f->dir, f->key, &back, &e), ERR_NOT_FOUND);
	free(text);
	free(sig);
	free(p);
	free(sp);
	reg_clear(&reg);
}

/* Parses text after replacing the first `from` by `to`; returns r. */
static int
parse_edited(const char *text, const char *from, const char *to)
{
	struct registry back;
	struct err_ctx e;
	const char *at = strstr(text, from);
	char *s;
	int r;

	assert_non_null(at);
	assert_true(asprintf(&s, "%.*s%s%s", (int)(at - text), text, to,
	    at + strlen(from)) > 0);
	err_clear(&e);
	r = reg_parse(s, strlen(s), &back, &e);
	if (r == 0)
		reg_clear(&back);
	free(s);
	return r;
}

static void
test_parse_bad(void **state)
{
	struct fx *f = *state;
	struct registry reg, back;
	struct err_ctx e;
	char *text = NULL;
	size_t len = 0;

	make_reg(f, &reg);
	err_clear(&e);
	assert_int_equal(reg_encode(&reg, &text, &len, &e), 0);
	assert_int_equal(reg_parse(text, len, &back, &e), 0);
	reg_clear(&back);
	assert_int_not_equal(parse_edited(text, "\"version\": 1",
	    "\"version\": 2"), 0);
	assert_int_not_equal(parse_edited(text, "\"version\": 1",
	    "\"version\": 1, \"extra\": 1"), 0);
	assert_int_not_equal(parse_edited(text, "\"pending\"", "\"maybe\""),
	    0);
	assert_int_not_equal(parse_edited(text, "\"card\"", "\"\""), 0);
	assert_int_not_equal(parse_edited(text, "\"card\"", "\"a\\u0001b\""),
	    0);
	assert_int_not_equal(parse_edited(text, "\"add_seq\": 2",
	    "\"add_seq\": -2"), 0);
	assert_int_not_equal(parse_edited(text, "\"add_seq\": 2",
	    "\"add_seq\": \"2\""), 0);
	assert_int_not_equal(parse_edited(text, "abababab", "ABABABAB"), 0);
	assert_int_not_equal(parse_edited(text, "\"devices\": [",
	    "\"devices\": {\"x\": ["), 0);
	assert_int_not_equal(parse_edited(text, "\"alice@example.org\"",
	    "\"bob@example.org\""), 0);
	assert_int_not_equal(parse_edited(text, "\"label\": \"laptop\"",
	    "\"label\": \"laptop\", \"label\": \"x\""), 0);
	assert_int_not_equal(parse_edited(text, "\"binding_sig\": \"",
	    "\"binding_sig\": \"AA"), 0);
	assert_int_not_equal(parse_edited(text, DIRID, "00"), 0);
	/* a device id that is not 64 hex digits */
	assert_int_not_equal(parse_edited(text, "\"device\": \"",
	    "\"device\": \"0"), 0);
	assert_int_not_equal(reg_parse("", 0, &back, &e), 0);
	assert_int_not_equal(reg_parse("[]", 2, &back, &e), 0);
	/* trust_endorsed (contact pins): true or false, nothing else */
	assert_int_equal(parse_edited(text, "\"version\": 1",
	    "\"version\": 1, \"trust_endorsed\": false"), 0);
	assert_int_not_equal(parse_edited(text, "\"version\": 1",
	    "\"version\": 1, \"trust_endorsed\": 1"), 0);
	assert_int_not_equal(parse_edited(text, "\"version\": 1",
	    "\"version\": 1, \"trust_endorsed\": \"yes\""), 0);
	assert_null(strstr(text, "trust_endorsed"));    /* off: not written */
	free(text);
	reg.trust_endorsed = 1;
	assert_int_equal(reg_encode(&reg, &text, &len, &e), 0);
	assert_non_null(strstr(text, "\"trust_endorsed\": true"));
	assert_int_equal(reg_parse(text, len, &back, &e), 0);
	assert_int_equal(back.trust_endorsed, 1);
	reg_clear(&back);
	free(text);
	reg_clear(&reg);
}

static void
test_match(void **state)
{
	struct fx *f = *state;
	struct registry reg;
	struct reg_device *d = NULL, *extra;
	struct err_ctx e;
	char pfx[8];

	make_reg(f, &reg);
	err_clear(&e);
	assert_int_equal(reg_match(&reg, "3f2a-9c01", &d, &e), 0);
	assert_string_equal(d->label, "card");
	assert_int_equal(reg_match(&reg, "3f2a9c0177deb410", &d, &e), 0);
	assert_int_equal(reg_match(&reg, "3f2", &d, &e), ERR_FORMAT);
	assert_int_equal(reg_match(&reg, "3F2A", &d, &e), ERR_FORMAT);
	assert_int_equal(reg_match(&reg, "zzzz", &d, &e), ERR_FORMAT);
	assert_int_equal(reg_match(&reg, "ffff", &d, &e), ERR_NOT_FOUND);
	memcpy(pfx, f->rec.device, 4);
	pfx[4] = '\0';
	assert_int_equal(reg_match(&reg, pfx, &d, &e), 0);
	assert_string_equal(d->label, "laptop");
	assert_int_equal(reg_add(&reg, "3f2a9c01ffff0000" "0000000000000000"
	    "0000000000000000" "0000000000000002", &extra, &e), 0);
	assert_int_equal(reg_match(&reg, "3f2a", &d, &e), ERR_EXISTS);
	assert_int_equal(reg_match(&reg, "3f2a9c0177", &d, &e), 0);
	reg_clear(&reg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_load, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_bad, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_match, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
