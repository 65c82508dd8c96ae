/*
 * test_msgcontacts.c - contact pins: signed over
 * H("devid-contact-v1"\0 || file), verified with the device key only; every
 * change to the file or the signature is caught; a registry signature
 * does not pass for a pin; first contact accepts, later additions stay
 * pending until trusted; a device revoked and added again is asked for
 * again; explanations name the device, its time and its endorsement.  A
 * software P-256 key stands in for the token.
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
#include <openssl/evp.h>

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "msg-contacts.h"
#include "registry.h"
#include "transcript.h"

#define DIRID "5c7a655f4354ad30ee348a2235da1e4af5c21822e90ad926f88fea1e9d01278f"
#define SELF "1111111111111111111111111111111111111111111111111111111111111111"
#define BOB "bob@example.org"

struct dev {
	EVP_PKEY *sig;
	EVP_PKEY *enc;
	struct devrec rec;
};

struct fx {
	EVP_PKEY *key;          /* this device's "token" key */
	EVP_PKEY *other;
	struct dev devs[3];     /* bob's devices */
	struct acctlog_event ev[4];
	size_t n_ev;
	char dir[256];
	int signs;
};

static int
soft_sign(void *arg, const uint8_t *tr, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	struct fx *f = arg;
	uint8_t d[32];

	(void)e;
	f->signs++;
	if (crypto_sha256(tr, len, d) != 0)
		return ERR_CRYPTO;
	return crypto_ecdsa_sign(f->key, d, sig);
}

static int
other_sign(void *arg, const uint8_t *tr, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	struct fx *f = arg;
	uint8_t d[32];

	(void)e;
	if (crypto_sha256(tr, len, d) != 0)
		return ERR_CRYPTO;
	return crypto_ecdsa_sign(f->other, d, sig);
}

static void
make_dev(struct dev *d, const char *label, uint64_t created)
{
	uint8_t *sd = NULL, *ed = NULL;
	size_t sl = 0, el = 0;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_ec_generate(&d->sig), 0);
	assert_int_equal(crypto_ec_generate(&d->enc), 0);
	assert_int_equal(crypto_spki_export(d->sig, &sd, &sl), 0);
	assert_int_equal(crypto_spki_export(d->enc, &ed, &el), 0);
	assert_int_equal(devrec_build(&d->rec, BOB, label, sd, sl,
	    DEVREC_ENC_HPKE_P256, ed, el, created, devrec_sign_pkey, d->sig,
	    &e), 0);
	free(sd);
	free(ed);
}

/* Appends an add event for d to the fixture's log. */
static void
log_add(struct fx *f, const struct devrec *rec, uint64_t time)
{
	static const uint8_t zero[32];
	struct err_ctx e;

	err_clear(&e);
	assert_true(f->n_ev < 4);
	assert_int_equal(acctlog_event_add(&f->ev[f->n_ev], f->n_ev + 1, time,
	    f->n_ev == 0 ? zero : f->ev[f->n_ev - 1].hash, rec, &e), 0);
	f->n_ev++;
}

/* A new directory under $TMPDIR (or the system's temporary directory). */
static void
tmp_dir(char *out, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");

	if (base == NULL || *base != '/')
		base = P_tmpdir;
	snprintf(out, len, "%s/%s.XXXXXX", base, name);
	assert_non_null(mkdtemp(out));
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(crypto_ec_generate(&f->key), 0);
	assert_int_equal(crypto_ec_generate(&f->other), 0);
	make_dev(&f->devs[0], "laptop", 1764400000);
	make_dev(&f->devs[1], "phone", 1764400100);
	make_dev(&f->devs[2], "tablet", 1764400200);
	tmp_dir(f->dir, sizeof(f->dir), "devid-msgc");
	*state = f;
	return 0;
}

static void
rm_dir(const char *dir)
{
	char cmd[320];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	size_t i;

	for (i = 0; i < 3; i++) {
		EVP_PKEY_free(f->devs[i].sig);
		EVP_PKEY_free(f->devs[i].enc);
	}
	EVP_PKEY_free(f->key);
	EVP_PKEY_free(f->other);
	rm_dir(f->dir);
	free(f);
	return 0;
}

/* A pin of bob holding the fixture's first n events, synced. */
static void
pin_with(struct fx *f, struct registry *pin, size_t n, int first_use)
{
	struct err_ctx e;
	int changed = 0;

	err_clear(&e);
	assert_int_equal(reg_init(pin, BOB, SELF, DIRID, &e), 0);
	assert_int_equal(acctlog_state_apply(&pin->log, f->ev, n, &e), 0);
	assert_int_equal(msg_contact_sync(pin, first_use, 1764400500,
	    &changed, &e), 0);
	assert_int_equal(changed, 1);
}

static char *
path_of(struct fx *f, const char *ext)
{
	char *p = NULL;

	assert_int_equal(msg_contact_path(f->dir, BOB, ext, &p, NULL), 0);
	return p;
}

static void
test_save_load_roundtrip(void **state)
{
	struct fx *f = *state;
	struct registry pin, back;
	struct err_ctx e;
	struct stat st;
	char *p;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	log_add(f, &f->devs[1].rec, 1764400101);
	pin_with(f, &pin, 2, 1);
	assert_int_equal(msg_contact_save(f->dir, &pin, f->key, soft_sign, f,
	    &e), 0);
	assert_int_equal(f->signs, 1);
	p = path_of(f, "json");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(p);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), 0);
	assert_int_equal(back.n_devs, 2);
	assert_int_equal(back.log.seq, 2);
	assert_true(msg_contact_accepted(&back, f->devs[0].rec.device));
	assert_true(msg_contact_accepted(&back, f->devs[1].rec.device));
	/* Another holder or another account is not this pin. */
	reg_clear(&back);
	assert_int_equal(msg_contact_load(f->dir, BOB, DIRID, f->key, &back,
	    &e), ERR_FORMAT);
	reg_clear(&back);
	err_clear(&e);
	assert_int_equal(msg_contact_load(f->dir, "carol@example.org", SELF,
	    f->key, &back, &e), ERR_NOT_FOUND);
	reg_clear(&back);
	reg_clear(&pin);
}

static void
test_tamper_detected(void **state)
{
	struct fx *f = *state;
	struct registry pin, back;
	struct err_ctx e;
	char *p, *text = NULL, *sig = NULL;
	size_t len = 0, slen = 0, i;
	FILE *fp;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	log_add(f, &f->devs[1].rec, 1764400101);
	pin_with(f, &pin, 2, 1);
	assert_int_equal(msg_contact_save(f->dir, &pin, f->key, soft_sign, f,
	    &e), 0);
	p = path_of(f, "json");
	assert_int_equal(fileio_read(p, REG_FILE_MAX, 0, &text, &len, &e), 0);
	/* Every single changed byte of the file is caught. */
	for (i = 0; i < len; i += 97) {
		text[i] ^= 0x01;
		assert_int_equal(fileio_write_atomic(p, text, len, 0600, &e),
		    0);
		err_clear(&e);
		assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key,
		    &back, &e), ERR_SIGNATURE);
		reg_clear(&back);
		text[i] ^= 0x01;
	}
	assert_int_equal(fileio_write_atomic(p, text, len, 0600, &e), 0);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), 0);
	reg_clear(&back);
	/* Another key's signature, or none, does not verify. */
	err_clear(&e);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->other, &back,
	    &e), ERR_SIGNATURE);
	reg_clear(&back);
	free(p);
	p = path_of(f, "sig");
	assert_int_equal(fileio_read(p, 128, 0, &sig, &slen, &e), 0);
	assert_int_equal(unlink(p), 0);
	err_clear(&e);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), ERR_SIGNATURE);
	reg_clear(&back);
	assert_non_null(fp = fopen(p, "w"));
	fputs("not base64!\n", fp);
	fclose(fp);
	err_clear(&e);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), ERR_SIGNATURE);
	reg_clear(&back);
	/* Moving it aside makes room for a new pin. */
	assert_int_equal(msg_contact_reject(f->dir, BOB, 42, &e), 0);
	err_clear(&e);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), ERR_NOT_FOUND);
	reg_clear(&back);
	free(p);
	free(text);
	free(sig);
	reg_clear(&pin);
}

static void
test_registry_signature_is_not_a_pin(void **state)
{
	struct fx *f = *state;
	struct registry pin, back;
	struct err_ctx e;
	struct buf *b;
	uint8_t d[32], sig[64];
	char *text = NULL, *p, *b64 = NULL;
	size_t len = 0;
	FILE *fp;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	pin_with(f, &pin, 1, 1);
	assert_int_equal(msg_contact_save(f->dir, &pin, f->key, soft_sign, f,
	    &e), 0);
	/* Sign the same bytes as a registry: the tags keep them apart. */
	p = path_of(f, "json");
	assert_int_equal(fileio_read(p, REG_FILE_MAX, 0, &text, &len, &e), 0);
	assert_int_equal(reg_digest(text, len, d), 0);
	assert_int_equal(crypto_ecdsa_sign(f->key, d, sig), 0);
	assert_int_equal(b64url_encode(sig, 64, &b64), 0);
	free(p);
	p = path_of(f, "sig");
	assert_non_null(fp = fopen(p, "w"));
	fprintf(fp, "%s\n", b64);
	fclose(fp);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), ERR_SIGNATURE);
	reg_clear(&back);
	/* The transcript starts with the pin's own tag, which the agent's
	 * "sign" accepts (tr_is_signable). */
	assert_int_equal(msg_contact_transcript("x", 1, &b), 0);
	assert_int_equal(buf_len(b), strlen(MSG_CONTACT_TAG) + 2);
	assert_memory_equal(buf_ptr(b), MSG_CONTACT_TAG "\0x",
	    strlen(MSG_CONTACT_TAG) + 2);
	assert_true(tr_is_signable(buf_ptr(b), buf_len(b)));
	buf_free(b);
	free(p);
	free(text);
	free(b64);
	reg_clear(&pin);
}

static void
test_wrong_signer_caught(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct err_ctx e;
	char *p;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	pin_with(f, &pin, 1, 1);
	assert_int_equal(msg_contact_save(f->dir, &pin, f->key, other_sign, f,
	    &e), ERR_SIGNATURE);
	p = path_of(f, "json");
	assert_int_not_equal(access(p, F_OK), 0);
	free(p);
	reg_clear(&pin);
}

static void
test_new_device_pending_until_trusted(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct err_ctx e;
	char msg[512], short_id[DEVREC_SHORT_ID_LEN + 1];
	size_t n = 0;
	int changed = 0;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	pin_with(f, &pin, 1, 1);
	assert_true(msg_contact_accepted(&pin, f->devs[0].rec.device));
	/* A device added later stays pending: not first use any more. */
	log_add(f, &f->devs[1].rec, 1764400101);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[1], 1, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400600, &changed, &e),
	    0);
	assert_int_equal(changed, 1);
	assert_false(msg_contact_accepted(&pin, f->devs[1].rec.device));
	assert_true(msg_contact_accepted(&pin, f->devs[0].rec.device));
	/* Nothing new: nothing changes. */
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400700, &changed, &e),
	    0);
	assert_int_equal(changed, 0);
	msg_contact_explain(&pin, f->devs[1].rec.device, msg, sizeof(msg));
	assert_int_equal(devrec_short_id(f->devs[1].rec.device, short_id), 0);
	assert_non_null(strstr(msg, "'phone'"));
	assert_non_null(strstr(msg, short_id));
	assert_non_null(strstr(msg, "log entry 2"));
	assert_non_null(strstr(msg, "not endorsed"));
	assert_non_null(strstr(msg, "UTC"));
	/* trust with a prefix of another device changes nothing of it. */
	assert_int_equal(msg_contact_trust(&pin, "zzzz", 1764400800, &n, &e),
	    ERR_FORMAT);
	err_clear(&e);
	assert_int_equal(msg_contact_trust(&pin, NULL, 1764400800, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_true(msg_contact_accepted(&pin, f->devs[1].rec.device));
	assert_int_equal(msg_contact_trust(&pin, NULL, 1764400900, &n, &e), 0);
	assert_int_equal(n, 0);
	reg_clear(&pin);
}

static void
test_trust_one_device(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct err_ctx e;
	char prefix[9];
	size_t n = 0;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	log_add(f, &f->devs[1].rec, 1764400101);
	log_add(f, &f->devs[2].rec, 1764400201);
	pin_with(f, &pin, 1, 1);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[1], 2, &e), 0);
	memcpy(prefix, f->devs[2].rec.device, 8);
	prefix[8] = '\0';
	assert_int_equal(msg_contact_trust(&pin, prefix, 1764400800, &n, &e),
	    0);
	assert_int_equal(n, 1);
	assert_true(msg_contact_accepted(&pin, f->devs[2].rec.device));
	assert_false(msg_contact_accepted(&pin, f->devs[1].rec.device));
	reg_clear(&pin);
}

static void
test_endorsed_explained(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct err_ctx e;
	struct devrec rec;
	uint8_t *sd = NULL;
	size_t sl = 0;
	char msg[512];

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	rec = f->devs[1].rec;
	assert_int_equal(crypto_spki_export(f->devs[0].sig, &sd, &sl), 0);
	assert_int_equal(devrec_endorse(&rec, sd, sl, devrec_sign_pkey,
	    f->devs[0].sig, &e), 0);
	free(sd);
	log_add(f, &rec, 1764400101);
	pin_with(f, &pin, 1, 1);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[1], 1, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400600, NULL, &e), 0);
	msg_contact_explain(&pin, rec.device, msg, sizeof(msg));
	assert_non_null(strstr(msg, "endorsed by its device 'laptop'"));
	assert_non_null(strstr(msg, "(which you accepted)"));
	reg_clear(&pin);
}

/* Endorses rec by the fixture's device number by. */
static void
endorse_by(struct fx *f, struct devrec *rec, size_t by)
{
	struct err_ctx e;
	uint8_t *sd = NULL;
	size_t sl = 0;

	err_clear(&e);
	assert_int_equal(crypto_spki_export(f->devs[by].sig, &sd, &sl), 0);
	assert_int_equal(devrec_endorse(rec, sd, sl, devrec_sign_pkey,
	    f->devs[by].sig, &e), 0);
	free(sd);
}

static int shown_count;

static void
count_shown(void *arg, const struct registry *pin, const char *device)
{
	(void)arg;
	assert_true(msg_contact_accepted(pin, device));
	shown_count++;
}

/*
 * trust_endorsed: off, nothing is accepted by itself; on, a device
 * endorsed by an accepted one is accepted and shown, and so is one
 * endorsed by that one (a chain back to what the user accepted); an
 * unendorsed device stays pending.  The setting survives the signed file.
 */
static void
test_trust_endorsed(void **state)
{
	struct fx *f = *state;
	struct registry pin, back;
	struct devrec phone, tablet;
	struct err_ctx e;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	pin_with(f, &pin, 1, 1);
	phone = f->devs[1].rec;
	endorse_by(f, &phone, 0);               /* laptop vouches for phone */
	tablet = f->devs[2].rec;
	endorse_by(f, &tablet, 1);              /* phone vouches for tablet */
	log_add(f, &phone, 1764400101);
	log_add(f, &tablet, 1764400201);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[1], 2, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400600, NULL, &e), 0);
	shown_count = 0;
	assert_int_equal(msg_contact_accept_endorsed(&pin, 1764400600,
	    count_shown, NULL), 0);
	assert_false(msg_contact_accepted(&pin, phone.device));
	pin.trust_endorsed = 1;
	assert_int_equal(msg_contact_accept_endorsed(&pin, 1764400600,
	    count_shown, NULL), 2);
	assert_int_equal(shown_count, 2);
	assert_true(msg_contact_accepted(&pin, phone.device));
	assert_true(msg_contact_accepted(&pin, tablet.device));
	assert_int_equal(msg_contact_accept_endorsed(&pin, 1764400700,
	    count_shown, NULL), 0);
	/* Saved and loaded with it; a pin without it reads as off. */
	assert_int_equal(msg_contact_save(f->dir, &pin, f->key, soft_sign, f,
	    &e), 0);
	assert_int_equal(msg_contact_load(f->dir, BOB, SELF, f->key, &back,
	    &e), 0);
	assert_int_equal(back.trust_endorsed, 1);
	reg_clear(&back);
	reg_clear(&pin);
}

/* trust_endorsed never accepts an unendorsed device, nor one endorsed
 * by a device that is itself pending. */
static void
test_trust_endorsed_needs_accepted_endorser(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct devrec tablet;
	struct err_ctx e;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	pin_with(f, &pin, 1, 1);
	pin.trust_endorsed = 1;
	tablet = f->devs[2].rec;
	endorse_by(f, &tablet, 1);              /* by phone, not accepted */
	log_add(f, &f->devs[1].rec, 1764400101); /* phone: unendorsed */
	log_add(f, &tablet, 1764400201);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[1], 2, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400600, NULL, &e), 0);
	assert_int_equal(msg_contact_accept_endorsed(&pin, 1764400600, NULL,
	    NULL), 0);
	assert_false(msg_contact_accepted(&pin, f->devs[1].rec.device));
	assert_false(msg_contact_accepted(&pin, tablet.device));
	reg_clear(&pin);
}

static void
test_revoked_and_added_again(void **state)
{
	struct fx *f = *state;
	struct registry pin;
	struct acctlog_event ev;
	struct err_ctx e;
	uint8_t d[32], sig[64];
	int changed = 0;
	size_t i;

	err_clear(&e);
	log_add(f, &f->devs[0].rec, 1764400001);
	log_add(f, &f->devs[1].rec, 1764400101);
	pin_with(f, &pin, 2, 1);
	/* Revoke the phone (signed by the laptop). */
	assert_int_equal(acctlog_revoke_digest(BOB, f->devs[1].rec.device,
	    1764400300, d), 0);
	assert_int_equal(crypto_ecdsa_sign(f->devs[0].sig, d, sig), 0);
	assert_int_equal(acctlog_event_revoke(&ev, 3, 1764400300,
	    f->ev[1].hash, f->devs[1].rec.device, sig, &e), 0);
	assert_int_equal(acctlog_state_apply(&pin.log, &ev, 1, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400600, &changed, &e),
	    0);
	assert_int_equal(changed, 1);
	for (i = 0; i < pin.n_devs; i++)
		if (strcmp(pin.devs[i].device, f->devs[1].rec.device) == 0)
			assert_int_equal(pin.devs[i].state, REG_REVOKED);
	assert_false(msg_contact_accepted(&pin, f->devs[1].rec.device));
	/* Added again: a new add event, asked for again. */
	f->ev[2] = ev;
	f->n_ev = 3;
	log_add(f, &f->devs[1].rec, 1764400400);
	assert_int_equal(acctlog_state_apply(&pin.log, &f->ev[3], 1, &e), 0);
	assert_int_equal(msg_contact_sync(&pin, 0, 1764400700, &changed, &e),
	    0);
	assert_false(msg_contact_accepted(&pin, f->devs[1].rec.device));
	assert_true(msg_contact_accepted(&pin, f->devs[0].rec.device));
	reg_clear(&pin);
}

static void
test_path_rejects_bad_names(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(msg_contact_path("/d", "../etc/passwd", "json", &p,
	    NULL), ERR_FORMAT);
	assert_int_equal(msg_contact_path("/d", ".hidden", "json", &p, NULL),
	    ERR_FORMAT);
	assert_int_equal(msg_contact_path("/d", "Bob@example.org", "json", &p,
	    NULL), ERR_FORMAT);
	assert_int_equal(msg_contact_path("/d", "bob/x", "json", &p, NULL),
	    ERR_FORMAT);
	assert_null(p);
	assert_int_equal(msg_contact_path("/d", BOB, "json", &p, NULL), 0);
	assert_string_equal(p, "/d/" BOB ".json");
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tamper_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_registry_signature_is_not_a_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_signer_caught, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_new_device_pending_until_trusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_one_device, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_endorsed_explained, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_trust_endorsed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_trust_endorsed_needs_accepted_endorser, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_revoked_and_added_again,
		    setup, teardown),
		cmocka_unit_test(test_path_rejects_bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
