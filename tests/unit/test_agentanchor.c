/*
 * test_agentanchor.c - the checks that notice a device's keys were
 * swapped, without a token: software P-256 keys stand in for the token,
 * the directory's head key and the devices.
 *
 *  - a registry view that lists this device's label under another key,
 *    that the directory did not sign, or that lists the token's key with
 *    another encryption key, is evidence; a view that lists the token's
 *    key, one at seq 0 (not registered yet) and one where the token's key
 *    was revoked are not;
 *  - a registry that verifies under the key of the device it names as
 *    this device, and not under the token's, is evidence; one that
 *    verifies under nobody's, or names the token's key, is not;
 *  - a saved view whose devices differ from the log's at the same seq
 *    and hash is evidence (the token's key or another device put in);
 *    the same devices, or another hash (a fork: the watcher's), are not;
 *  - the alert message names both keys, the key's file or object and
 *    what to read; references are shortened; only operations that do not
 *    use the key run while it is blocked.
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
#include <openssl/evp.h>

#include "acctlog.h"
#include "agent-anchor.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "registry.h"

#define ACCOUNT "alice@example.org"
#define T0 1764400000ULL

struct dev {
	EVP_PKEY *sig;
	EVP_PKEY *enc;
	struct devrec rec;
};

struct fx {
	EVP_PKEY *dir;                  /* the directory's head key */
	EVP_PKEY *other_dir;            /* a key the agent did not pin */
	char dir_id[DEVREC_ID_HEX_LEN + 1];
	struct dev laptop;              /* this device, as registered */
	struct dev card;                /* another device of the account */
	struct dev evil;                /* the malware's key pair */
	struct acctlog_state real;      /* the log: laptop, card; signed */
};

static void
dev_make(struct dev *d, const char *label)
{
	uint8_t *sig = NULL, *enc = NULL;
	size_t sl = 0, el = 0;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(crypto_ec_generate(&d->sig), 0);
	assert_int_equal(crypto_ec_generate(&d->enc), 0);
	assert_int_equal(crypto_spki_export(d->sig, &sig, &sl), 0);
	assert_int_equal(crypto_spki_export(d->enc, &enc, &el), 0);
	if (devrec_build(&d->rec, ACCOUNT, label, sig, sl,
	    DEVREC_ENC_HPKE_P256, enc, el, T0, devrec_sign_pkey, d->sig,
	    &e) != 0)
		fail_msg("devrec_build: %s", err_msg(&e));
	free(sig);
	free(enc);
}

static void
dev_free(struct dev *d)
{
	EVP_PKEY_free(d->sig);
	EVP_PKEY_free(d->enc);
}

/* Appends the addition of rec to st. */
static void
add_event(struct acctlog_state *st, const struct devrec *rec)
{
	struct acctlog_event ev;
	struct err_ctx e;

	err_clear(&e);
	if (acctlog_event_add(&ev, st->seq + 1, T0 + st->seq, st->hash, rec,
	    &e) != 0 || acctlog_state_apply(st, &ev, 1, &e) != 0)
		fail_msg("add: %s", err_msg(&e));
}

/* Signs a head for st's point with key (the directory's, or another). */
static void
sign_head(struct fx *f, struct acctlog_state *st, EVP_PKEY *key)
{
	struct acctlog_head h;
	struct err_ctx e;

	err_clear(&e);
	memset(&h, 0, sizeof(h));
	snprintf(h.account, sizeof(h.account), "%s", st->account);
	h.seq = st->seq;
	memcpy(h.hash, st->hash, 32);
	h.time = T0 + 100;
	if (acctlog_head_sign(&h, f->dir_id, devrec_sign_pkey, key, &e) != 0)
		fail_msg("head: %s", err_msg(&e));
	st->head = h;
	st->has_head = 1;
}

static void
view_init(struct fx *f, struct acctlog_state *st)
{
	memset(st, 0, sizeof(*st));
	assert_int_equal(acctlog_state_init(st, ACCOUNT, f->dir_id, NULL), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || crypto_ec_generate(&f->dir) != 0 ||
	    crypto_ec_generate(&f->other_dir) != 0 ||
	    acctlog_directory_id(f->dir, f->dir_id) != 0)
		return -1;
	dev_make(&f->laptop, "laptop");
	dev_make(&f->card, "card");
	dev_make(&f->evil, "laptop");
	view_init(f, &f->real);
	add_event(&f->real, &f->laptop.rec);
	add_event(&f->real, &f->card.rec);
	sign_head(f, &f->real, f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	acctlog_state_clear(&f->real);
	dev_free(&f->laptop);
	dev_free(&f->card);
	dev_free(&f->evil);
	EVP_PKEY_free(f->dir);
	EVP_PKEY_free(f->other_dir);
	free(f);
	return 0;
}

/* The DER SPKI of a device's encryption key (caller frees). */
static uint8_t *
enc_of(const struct dev *d, size_t *len)
{
	uint8_t *der = NULL;

	assert_int_equal(crypto_spki_export(d->enc, &der, len), 0);
	return der;
}

/* --- views in the registry --- */

static void
test_view_lists_token(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	size_t len;
	uint8_t *enc = enc_of(&f->laptop, &len);

	agent_anchor_judge_view(&f->real, f->dir, f->laptop.rec.device, enc,
	    len, "laptop", 0, &fd);
	assert_int_equal(fd.found, 0);
	/* Without the encryption key to compare, the same. */
	agent_anchor_judge_view(&f->real, f->dir, f->laptop.rec.device, NULL,
	    0, "laptop", 0, &fd);
	assert_int_equal(fd.found, 0);
	free(enc);
}

static void
test_view_seq0_not_registered(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state empty;

	/* A device set up but not registered: nothing can be said. */
	view_init(f, &empty);
	agent_anchor_judge_view(&empty, f->dir, f->evil.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 0);
	acctlog_state_clear(&empty);
}

static void
test_view_lists_label_under_other_key(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	char s[DEVREC_SHORT_ID_LEN + 1];

	agent_anchor_judge_view(&f->real, f->dir, f->evil.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "not_in_view");
	assert_string_equal(fd.expected, f->laptop.rec.device);
	assert_string_equal(fd.label, "laptop");
	assert_int_equal(fd.seq, 2);
	assert_int_equal(devrec_short_id(f->laptop.rec.device, s), 0);
	assert_non_null(strstr(fd.evidence, s));
	assert_non_null(strstr(fd.evidence, "'laptop'"));
	assert_non_null(strstr(fd.evidence, "seq 2"));
}

static void
test_view_lacks_token_no_label(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;

	/* Another label (or none): still evidence, without a name. */
	agent_anchor_judge_view(&f->real, f->dir, f->evil.rec.device, NULL, 0,
	    "tablet", 0, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "not_in_view");
	assert_string_equal(fd.expected, "");
	assert_non_null(strstr(fd.evidence, "2 devices"));
	agent_anchor_judge_view(&f->real, f->dir, f->evil.rec.device, NULL, 0,
	    NULL, 0, &fd);
	assert_int_equal(fd.found, 1);
}

static void
test_view_other_enc_key(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	size_t len;
	uint8_t *enc = enc_of(&f->evil, &len);

	/* The signing key is this device's, the encryption key is not. */
	agent_anchor_judge_view(&f->real, f->dir, f->laptop.rec.device, enc,
	    len, "laptop", 0, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "enc_key");
	free(enc);
}

static void
test_view_revoked_is_not_replaced(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state st;
	struct acctlog_event ev;
	uint8_t digest[32], sig[64];
	struct err_ctx e;

	/* The registry says this device was revoked. */
	agent_anchor_judge_view(&f->real, f->dir, f->evil.rec.device, NULL, 0,
	    "laptop", 1, &fd);
	assert_int_equal(fd.found, 0);
	/* The log's history says so: card revokes laptop. */
	err_clear(&e);
	view_init(f, &st);
	add_event(&st, &f->laptop.rec);
	add_event(&st, &f->card.rec);
	assert_int_equal(acctlog_revoke_digest(ACCOUNT, f->laptop.rec.device,
	    T0 + 9, digest), 0);
	assert_int_equal(devrec_sign_pkey(f->card.sig, digest, sig, &e), 0);
	if (acctlog_event_revoke(&ev, 3, T0 + 9, st.hash,
	    f->laptop.rec.device, sig, &e) != 0 ||
	    acctlog_state_apply(&st, &ev, 1, &e) != 0)
		fail_msg("revoke: %s", err_msg(&e));
	sign_head(f, &st, f->dir);
	agent_anchor_judge_view(&st, f->dir, f->laptop.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 0);
	acctlog_state_clear(&st);
}

static void
test_view_not_signed_by_directory(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state st;

	/* Signed by another key than the pinned one. */
	assert_int_equal(acctlog_state_copy(&st, &f->real), 0);
	sign_head(f, &st, f->other_dir);
	agent_anchor_judge_view(&st, f->dir, f->laptop.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "unsigned_view");
	/* No head at all. */
	st.has_head = 0;
	agent_anchor_judge_view(&st, f->dir, f->laptop.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "unsigned_view");
	/* A head of the directory over another point. */
	sign_head(f, &st, f->dir);
	st.hash[0] ^= 1;
	agent_anchor_judge_view(&st, f->dir, f->laptop.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 1);
	/* A view verified from the directory needs no head check. */
	agent_anchor_judge_view(&st, NULL, f->laptop.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	assert_int_equal(fd.found, 0);
	acctlog_state_clear(&st);
}

/* --- a registry the token's key does not verify --- */

/* The text and signature of a registry of dev (with its record) holding
 * view, signed by signer. */
static char *
registry_text(struct fx *f, const struct dev *dev, int with_record,
    const struct acctlog_state *view, EVP_PKEY *signer, uint8_t sig[64],
    size_t *len)
{
	struct registry reg;
	struct reg_device *d;
	uint8_t digest[32];
	struct err_ctx e;
	char *text = NULL;

	err_clear(&e);
	assert_int_equal(reg_init(&reg, ACCOUNT, dev->rec.device, f->dir_id,
	    &e), 0);
	assert_int_equal(reg_add(&reg, dev->rec.device, &d, &e), 0);
	snprintf(d->label, sizeof(d->label), "%s", dev->rec.label);
	d->state = REG_APPROVED;
	d->first_seen = d->changed = T0;
	if (with_record) {
		d->rec = dev->rec;
		d->has_record = 1;
	}
	if (view != NULL) {
		acctlog_state_clear(&reg.log);
		assert_int_equal(acctlog_state_copy(&reg.log, view), 0);
	}
	if (reg_encode(&reg, &text, len, &e) != 0)
		fail_msg("reg_encode: %s", err_msg(&e));
	assert_int_equal(reg_digest(text, *len, digest), 0);
	assert_int_equal(devrec_sign_pkey(signer, digest, sig, &e), 0);
	reg_clear(&reg);
	return text;
}

static void
test_foreign_registry(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	uint8_t sig[64];
	size_t len = 0;
	char *text;

	/* This device's registry, signed by its key; the token shows evil. */
	text = registry_text(f, &f->laptop, 1, &f->real, f->laptop.sig, sig,
	    &len);
	agent_anchor_judge_foreign(text, len, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "foreign_registry");
	assert_string_equal(fd.expected, f->laptop.rec.device);
	assert_string_equal(fd.label, "laptop");
	assert_int_equal(fd.seq, 2);
	/* The token's own key: a tampered registry, not a swap. */
	agent_anchor_judge_foreign(text, len, sig, f->laptop.rec.device, &fd);
	assert_int_equal(fd.found, 0);
	/* Changed by someone without any key: not this check's either. */
	text[len - 2] ^= 1;
	agent_anchor_judge_foreign(text, len, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 0);
	free(text);
	/* Signed by a key that is not the named device's. */
	text = registry_text(f, &f->laptop, 1, &f->real, f->card.sig, sig,
	    &len);
	agent_anchor_judge_foreign(text, len, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 0);
	free(text);
	/* Not a registry at all. */
	agent_anchor_judge_foreign("{}", 2, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 0);
}

static void
test_foreign_registry_record_from_view(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	uint8_t sig[64];
	size_t len = 0;
	char *text;

	/* A registry reset after tampering keeps no record of its own; the
	 * view has it. */
	text = registry_text(f, &f->laptop, 0, &f->real, f->laptop.sig, sig,
	    &len);
	agent_anchor_judge_foreign(text, len, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.expected, f->laptop.rec.device);
	free(text);
	/* Neither a record nor a view: nothing to verify with. */
	text = registry_text(f, &f->laptop, 0, NULL, f->laptop.sig, sig,
	    &len);
	agent_anchor_judge_foreign(text, len, sig, f->evil.rec.device, &fd);
	assert_int_equal(fd.found, 0);
	free(text);
}

/* --- the saved view against the log from seq 1 --- */

static void
test_compare_same(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state saved;

	assert_int_equal(acctlog_state_copy(&saved, &f->real), 0);
	agent_anchor_compare_views(&saved, &f->real, f->laptop.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 0);
	acctlog_state_clear(&saved);
}

static void
test_compare_forged_token(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state saved;
	char s[DEVREC_SHORT_ID_LEN + 1];

	/* The malware put its record where this device's is: same point. */
	assert_int_equal(acctlog_state_copy(&saved, &f->real), 0);
	saved.devices[0].rec = f->evil.rec;
	agent_anchor_compare_views(&saved, &f->real, f->evil.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "view_forged");
	assert_string_equal(fd.expected, f->laptop.rec.device);
	assert_int_equal(devrec_short_id(f->laptop.rec.device, s), 0);
	assert_non_null(strstr(fd.evidence, s));
	/* Without this device's label in the log: still found. */
	agent_anchor_compare_views(&saved, &f->real, f->evil.rec.device,
	    "tablet", &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.expected, "");
	acctlog_state_clear(&saved);
}

static void
test_compare_rewritten(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state saved;

	/* A device dropped from the view, the token's key still there. */
	assert_int_equal(acctlog_state_copy(&saved, &f->real), 0);
	saved.n_devices = 1;
	agent_anchor_compare_views(&saved, &f->real, f->laptop.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 1);
	assert_string_equal(fd.reason, "view_rewritten");
	/* A label changed. */
	saved.n_devices = 2;
	snprintf(saved.devices[1].rec.label,
	    sizeof(saved.devices[1].rec.label), "card2");
	agent_anchor_compare_views(&saved, &f->real, f->laptop.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 1);
	acctlog_state_clear(&saved);
}

static void
test_compare_fork_is_not_ours(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	struct acctlog_state saved;

	assert_int_equal(acctlog_state_copy(&saved, &f->real), 0);
	saved.devices[0].rec = f->evil.rec;
	saved.hash[5] ^= 0x40;
	agent_anchor_compare_views(&saved, &f->real, f->evil.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 0);
	saved.hash[5] ^= 0x40;
	saved.seq = 1;
	agent_anchor_compare_views(&saved, &f->real, f->evil.rec.device,
	    "laptop", &fd);
	assert_int_equal(fd.found, 0);
	acctlog_state_clear(&saved);
}

/* --- messages --- */

static void
test_message(void **state)
{
	struct fx *f = *state;
	struct agent_anchor_finding fd;
	char msg[512], s[DEVREC_SHORT_ID_LEN + 1], t[DEVREC_SHORT_ID_LEN + 1];

	agent_anchor_judge_view(&f->real, f->dir, f->evil.rec.device, NULL, 0,
	    "laptop", 0, &fd);
	agent_anchor_message(&fd, f->evil.rec.device,
	    "/home/u/.local/share/devid/tpm-sig.pem", msg, sizeof(msg));
	assert_int_equal(devrec_short_id(f->evil.rec.device, t), 0);
	assert_int_equal(devrec_short_id(f->laptop.rec.device, s), 0);
	assert_non_null(strstr(msg, "were replaced"));
	assert_non_null(strstr(msg, "(tpm-sig.pem)"));
	assert_null(strstr(msg, "/home/"));
	assert_non_null(strstr(msg, t));
	assert_non_null(strstr(msg, s));
	assert_non_null(strstr(msg, "'laptop'"));
	assert_non_null(strstr(msg, "does not use that key"));
	/* Cut short, still terminated. */
	agent_anchor_message(&fd, f->evil.rec.device, NULL, msg, 40);
	assert_int_equal(strlen(msg), 39);
	/* Keys the token refused: no id to name. */
	memset(&fd, 0, sizeof(fd));
	fd.found = 1;
	snprintf(fd.reason, sizeof(fd.reason), "key_refused");
	snprintf(fd.evidence, sizeof(fd.evidence), "the keys could have been "
	    "exported");
	agent_anchor_message(&fd, "", NULL, msg, sizeof(msg));
	assert_non_null(strstr(msg, "replaced or altered: the keys could"));
	/* Rewritten with this device's own key. */
	snprintf(fd.reason, sizeof(fd.reason), "view_rewritten");
	agent_anchor_message(&fd, f->laptop.rec.device, NULL, msg,
	    sizeof(msg));
	assert_non_null(strstr(msg, "someone else who can use it"));
	assert_non_null(strstr(msg, s));
}

static void
test_ref_short(void **state)
{
	char out[128];

	(void)state;
	agent_anchor_ref_short("/home/u/.local/share/devid/tpm-enc.pem", out,
	    sizeof(out));
	assert_string_equal(out, "tpm-enc.pem");
	agent_anchor_ref_short("tpm-sig.pem", out, sizeof(out));
	assert_string_equal(out, "tpm-sig.pem");
	agent_anchor_ref_short("pkcs11:model=SoftHSM%20v2;token=alicecard;"
	    "object=devid-sig;type=private;id=%01%02?module-path=/usr/lib/"
	    "softhsm/libsofthsm2.so", out, sizeof(out));
	assert_string_equal(out, "object 'devid-sig' on token 'alicecard'");
	agent_anchor_ref_short("pkcs11:token=card?module-name=softhsm2", out,
	    sizeof(out));
	assert_string_equal(out, "token 'card'");
	agent_anchor_ref_short("pkcs11:id=%01?object=x", out, sizeof(out));
	assert_string_equal(out, "pkcs11:id=%01");
	agent_anchor_ref_short("", out, sizeof(out));
	assert_string_equal(out, "");
	agent_anchor_ref_short(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	agent_anchor_ref_short("/a/b/c.pem", out, 4);
	assert_string_equal(out, "c.p");
}

static void
test_ops_allowed(void **state)
{
	static const char *const yes[] = { "info", "status", "devices",
	    "alerts", "ack", "lock", "gossip_alert" };
	static const char *const no[] = { "sign", "open", "approve",
	    "revoke", "session", "unlock", "endorse", "" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_int_equal(agent_anchor_op_allowed(yes[i]), 1);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(agent_anchor_op_allowed(no[i]), 0);
	assert_int_equal(agent_anchor_op_allowed(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_lists_token),
		cmocka_unit_test(test_view_seq0_not_registered),
		cmocka_unit_test(test_view_lists_label_under_other_key),
		cmocka_unit_test(test_view_lacks_token_no_label),
		cmocka_unit_test(test_view_other_enc_key),
		cmocka_unit_test(test_view_revoked_is_not_replaced),
		cmocka_unit_test(test_view_not_signed_by_directory),
		cmocka_unit_test(test_foreign_registry),
		cmocka_unit_test(test_foreign_registry_record_from_view),
		cmocka_unit_test(test_compare_same),
		cmocka_unit_test(test_compare_forged_token),
		cmocka_unit_test(test_compare_rewritten),
		cmocka_unit_test(test_compare_fork_is_not_ours),
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_ref_short),
		cmocka_unit_test(test_ops_allowed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
