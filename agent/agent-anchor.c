/*
 * agent-anchor.c - checking the token's keys against what malware without
 * the PIN cannot forge: the token's own private keys, the directory's
 * signed log, and a registry signed by this device's earlier key.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "agent-alert.h"
#include "agent-anchor.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-token.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "paths.h"
#include "registry.h"
#include "sigfile.h"
#include "token.h"

/* Where a user reads what to do; every message names it. */
#define ANCHOR_DOC "docs/agent.md \"When the state directory is not yours\""

/* --- pure checks --- */

/* The short form of an id, or "?" for an empty or malformed one. */
static void
short_of(const char *id, char out[DEVREC_SHORT_ID_LEN + 1])
{
	if (id == NULL || devrec_short_id(id, out) != 0)
		snprintf(out, DEVREC_SHORT_ID_LEN + 1, "?");
}

static void finding(struct agent_anchor_finding *f, const char *reason,
    const char *expected, const char *label, uint64_t seq,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Fills f as a finding with the evidence clause fmt. */
static void
finding(struct agent_anchor_finding *f, const char *reason,
    const char *expected, const char *label, uint64_t seq,
    const char *fmt, ...)
{
	va_list ap;

	f->found = 1;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	snprintf(f->expected, sizeof(f->expected), "%s",
	    expected != NULL ? expected : "");
	snprintf(f->label, sizeof(f->label), "%s", label != NULL ? label : "");
	f->seq = seq;
	va_start(ap, fmt);
	(void)vsnprintf(f->evidence, sizeof(f->evidence), fmt, ap);
	va_end(ap);
}

/* 1 when the view's head is the directory's signature of its point. */
static int
view_signed(const struct acctlog_state *view, EVP_PKEY *dir_pub)
{
	return view->has_head && view->head.seq == view->seq &&
	    memcmp(view->head.hash, view->hash, 32) == 0 &&
	    strcmp(view->head.account, view->account) == 0 &&
	    acctlog_head_verify(&view->head, dir_pub, NULL, NULL) == 0;
}

/* 1 when the view's history holds a revocation of device. */
static int
revoked_in(const struct acctlog_state *view, const char *device)
{
	size_t i;

	for (i = 0; i < view->n_history; i++)
		if (view->history[i].type == ACCTLOG_REVOKE &&
		    strcmp(view->history[i].device, device) == 0)
			return 1;
	return 0;
}

/* The first active device of view labelled label other than not_id. */
static const struct acctlog_device *
labelled(const struct acctlog_state *view, const char *label,
    const char *not_id)
{
	size_t i;

	for (i = 0; label != NULL && label[0] != '\0' &&
	    i < view->n_devices; i++)
		if (strcmp(view->devices[i].rec.label, label) == 0 &&
		    strcmp(view->devices[i].rec.device, not_id) != 0)
			return &view->devices[i];
	return NULL;
}

static int
spki_differs(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	return a_len != b_len || memcmp(a, b, a_len) != 0;
}

void
agent_anchor_judge_view(const struct acctlog_state *view, EVP_PKEY *dir_pub,
    const char *token_id, const uint8_t *enc_spki, size_t enc_len,
    const char *label, int self_revoked, struct agent_anchor_finding *f)
{
	const struct acctlog_device *d;
	char s[DEVREC_SHORT_ID_LEN + 1];
	unsigned long long seq = (unsigned long long)view->seq;

	memset(f, 0, sizeof(*f));
	if (view->seq == 0)
		return;         /* never verified: not registered yet */
	if (dir_pub != NULL && !view_signed(view, dir_pub)) {
		finding(f, "unsigned_view", NULL, label, view->seq, "the "
		    "registry, signed with the token's key, holds a view of "
		    "the account at seq %llu that the directory did not sign",
		    seq);
		return;
	}
	if ((d = acctlog_state_find(view, token_id)) != NULL) {
		if (enc_len > 0 && spki_differs(d->rec.enc_pub,
		    d->rec.enc_pub_len, enc_spki, enc_len))
			finding(f, "enc_key", token_id, d->rec.label,
			    view->seq, "the account's log (seq %llu) lists "
			    "it as '%s' with another encryption key than the "
			    "one the token shows", seq, d->rec.label);
		return;
	}
	/* A device revoked by itself or another device is not replaced. */
	if (self_revoked || revoked_in(view, token_id))
		return;
	if ((d = labelled(view, label, token_id)) != NULL) {
		short_of(d->rec.device, s);
		finding(f, "not_in_view", d->rec.device, label, view->seq,
		    "the account's log as last verified (seq %llu, signed by "
		    "the directory) lists this device '%s' as %s, not the "
		    "token's key", seq, label, s);
		return;
	}
	finding(f, "not_in_view", NULL, label, view->seq, "the account's log "
	    "as last verified (seq %llu, signed by the directory) does not "
	    "list the token's key among its %zu devices", seq,
	    view->n_devices);
}

void
agent_anchor_judge_foreign(const char *text, size_t len,
    const uint8_t sig[64], const char *token_id,
    struct agent_anchor_finding *f)
{
	struct registry reg;
	const struct reg_device *self;
	const struct acctlog_device *ad;
	const struct devrec *rec = NULL;
	char s[DEVREC_SHORT_ID_LEN + 1];
	EVP_PKEY *pub = NULL;

	memset(f, 0, sizeof(*f));
	if (reg_parse(text, len, &reg, NULL) != 0)
		return;
	if (strcmp(reg.device, token_id) == 0)
		goto out;       /* this key's registry, changed: tampered */
	/* The record of the device the registry is of: its own entry, or
	 * (after a reset that kept no record) the log's. */
	if ((self = reg_find(&reg, reg.device)) != NULL && self->has_record)
		rec = &self->rec;
	else if ((ad = acctlog_state_find(&reg.log, reg.device)) != NULL)
		rec = &ad->rec;
	/* reg_parse verified every record: its id is H(its sig_pub). */
	if (rec == NULL || strcmp(rec->device, reg.device) != 0 ||
	    crypto_spki_import(rec->sig_pub, rec->sig_pub_len, &pub,
	    NULL) != 0 || reg_verify(text, len, sig, pub, NULL) != 0)
		goto out;
	short_of(reg.device, s);
	finding(f, "foreign_registry", reg.device, self != NULL ? self->label :
	    rec->label, reg.log.seq, "the registry is signed by this device "
	    "'%s' %s, whose key the token does not show", self != NULL ?
	    self->label : rec->label, s);
 out:
	EVP_PKEY_free(pub);
	reg_clear(&reg);
}

/* 1 when both views have the same active devices, added by the same
 * events, with the same keys and labels. */
static int
same_devices(const struct acctlog_state *a, const struct acctlog_state *b)
{
	const struct acctlog_device *x, *y;
	size_t i;

	if (a->n_devices != b->n_devices)
		return 0;
	for (i = 0; i < a->n_devices; i++) {
		x = &a->devices[i];
		if ((y = acctlog_state_find(b, x->rec.device)) == NULL ||
		    x->add_seq != y->add_seq ||
		    memcmp(x->add_hash, y->add_hash, 32) != 0 ||
		    spki_differs(x->rec.enc_pub, x->rec.enc_pub_len,
		    y->rec.enc_pub, y->rec.enc_pub_len) ||
		    strcmp(x->rec.label, y->rec.label) != 0)
			return 0;
	}
	return 1;
}

void
agent_anchor_compare_views(const struct acctlog_state *saved,
    const struct acctlog_state *real, const char *token_id,
    const char *label, struct agent_anchor_finding *f)
{
	const struct acctlog_device *named;
	char s[DEVREC_SHORT_ID_LEN + 1];
	unsigned long long seq = (unsigned long long)saved->seq;

	memset(f, 0, sizeof(*f));
	if (saved->seq != real->seq ||
	    memcmp(saved->hash, real->hash, 32) != 0 ||
	    same_devices(saved, real))
		return;
	if (acctlog_state_find(saved, token_id) != NULL &&
	    acctlog_state_find(real, token_id) == NULL) {
		if ((named = labelled(real, label, token_id)) != NULL) {
			short_of(named->rec.device, s);
			finding(f, "view_forged", named->rec.device, label,
			    saved->seq, "the account's log at seq %llu lists "
			    "this device '%s' as %s, while the registry's view "
			    "of seq %llu lists the token's key: the registry "
			    "was rewritten too", seq, label, s, seq);
		} else {
			finding(f, "view_forged", NULL, label, saved->seq,
			    "the account's log at seq %llu does not list the "
			    "token's key, while the registry's view of seq "
			    "%llu does: the registry was rewritten too", seq,
			    seq);
		}
		return;
	}
	finding(f, "view_rewritten", token_id, label, saved->seq, "the "
	    "registry's view of the account at seq %llu (%zu devices) is not "
	    "the account's log at seq %llu (%zu devices)", seq,
	    saved->n_devices, seq, real->n_devices);
}

void
agent_anchor_ref_short(const char *ref, char *out, size_t out_len)
{
	const char *p, *obj = NULL, *tok = NULL, *end;
	size_t path_len, obj_len = 0, tok_len = 0, n;

	if (out_len == 0)
		return;
	out[0] = '\0';
	if (ref == NULL || ref[0] == '\0')
		return;
	if (strncmp(ref, "pkcs11:", 7) == 0) {
		/* The path attributes only: the query may hold a path. */
		path_len = strcspn(ref, "?");
		for (p = ref + 7; p < ref + path_len; p = end + 1) {
			end = p + strcspn(p, ";?");
			if (end > ref + path_len)
				end = ref + path_len;
			n = (size_t)(end - p);
			if (n > 7 && strncmp(p, "object=", 7) == 0) {
				obj = p + 7;
				obj_len = n - 7;
			} else if (n > 6 && strncmp(p, "token=", 6) == 0) {
				tok = p + 6;
				tok_len = n - 6;
			}
			if (end >= ref + path_len)
				break;
		}
		if (obj != NULL && tok != NULL)
			snprintf(out, out_len, "object '%.*s' on token '%.*s'",
			    (int)obj_len, obj, (int)tok_len, tok);
		else if (tok != NULL)
			snprintf(out, out_len, "token '%.*s'", (int)tok_len,
			    tok);
		else
			snprintf(out, out_len, "%.*s", (int)path_len, ref);
		return;
	}
	if ((p = strrchr(ref, '/')) != NULL && p[1] != '\0')
		ref = p + 1;
	snprintf(out, out_len, "%s", ref);
}

void
agent_anchor_message(const struct agent_anchor_finding *f,
    const char *token_id, const char *key_ref, char *out, size_t out_len)
{
	static const char stop[] = "the agent does not use that key (no "
	    "directory login, signature or registry write) until it runs "
	    "with this device's own keys (" ANCHOR_DOC ")";
	char s[DEVREC_SHORT_ID_LEN + 1], ref[128];

	agent_anchor_ref_short(key_ref, ref, sizeof(ref));
	if (token_id == NULL || token_id[0] == '\0') {
		snprintf(out, out_len, "the keys of this device were replaced "
		    "or altered: %s; %s", f->evidence, stop);
		return;
	}
	short_of(token_id, s);
	if (strcmp(f->reason, "view_rewritten") == 0) {
		snprintf(out, out_len, "the registry of this device was "
		    "rewritten with its signing key %s by someone else who "
		    "can use it: %s; %s", s, f->evidence, stop);
		return;
	}
	snprintf(out, out_len, "the keys of this device were replaced: the "
	    "token's signing key%s%s%s is %s, but %s; %s",
	    ref[0] != '\0' ? " (" : "", ref, ref[0] != '\0' ? ")" : "", s,
	    f->evidence, stop);
}

int
agent_anchor_op_allowed(const char *op)
{
	/* Answers from what the agent holds; none uses or trusts the key.
	 * A new operation is refused until it is listed here. */
	static const char *const allowed[] = { "info", "status", "devices",
	    "alerts", "ack", "lock", "gossip_alert", "tlog_fork" };
	size_t i;

	for (i = 0; op != NULL && i < sizeof(allowed) / sizeof(allowed[0]);
	    i++)
		if (strcmp(op, allowed[i]) == 0)
			return 1;
	return 0;
}

/* --- the token --- */

/* ECDH of the encryption key (public half enc) against a fresh software
 * key, compared with software ECDH. */
static int
prove_ecdh(struct token *t, EVP_PKEY *enc, struct err_ctx *e)
{
	uint8_t peer[CRYPTO_P256_POINT_LEN], got[32], want[32];
	EVP_PKEY *eph = NULL;
	int r = ERR_INTERNAL;

	if (crypto_ec_generate(&eph) != 0 ||
	    crypto_ec_point_get(eph, peer) != 0 ||
	    crypto_ecdh(eph, enc, want) != 0) {
		r = err_set(e, ERR_CRYPTO, "software ECDH failed");
		goto out;
	}
	if ((r = token_ecdh(t, peer, got, e)) != 0)
		goto out;
	if (crypto_memeq_ct(got, want, sizeof(want)) != 0) {
		r = err_set(e, ERR_KEY_POLICY, "the token's private encryption "
		    "key does not match the public one it shows");
		goto out;
	}
	r = 0;
 out:
	crypto_wipe(got, sizeof(got));
	crypto_wipe(want, sizeof(want));
	EVP_PKEY_free(eph);
	return r;
}

/* An RSA-OAEP round trip through the encryption key (public half enc). */
static int
prove_rsa(struct token *t, EVP_PKEY *enc, struct err_ctx *e)
{
	uint8_t plain[32], pt[64], *ct = NULL;
	size_t ct_len = 0, pt_len = 0;
	int r = ERR_INTERNAL;

	if (crypto_random(plain, sizeof(plain)) != 0 ||
	    crypto_rsa_oaep_encrypt(enc, plain, sizeof(plain), &ct,
	    &ct_len) != 0) {
		r = err_set(e, ERR_CRYPTO, "software RSA-OAEP failed");
		goto out;
	}
	r = token_rsa_decrypt(t, ct, ct_len, pt, sizeof(pt), &pt_len, e);
	if (r == ERR_DECRYPT || (r == 0 && (pt_len != sizeof(plain) ||
	    crypto_memeq_ct(pt, plain, sizeof(plain)) != 0))) {
		err_clear(e);
		r = err_set(e, ERR_KEY_POLICY, "the token's private encryption "
		    "key does not match the public one it shows");
	}
 out:
	crypto_wipe(plain, sizeof(plain));
	crypto_wipe(pt, sizeof(pt));
	free(ct);
	return r;
}

int
agent_anchor_prove(struct agent_token *at, struct err_ctx *e)
{
	uint8_t digest[32], sig[64];
	EVP_PKEY *enc = NULL;
	struct token *t;
	int r = ERR_INTERNAL;

	return_val_if_fail(at != NULL && at->have_keys, ERR_INVALID_ARG);
	if (crypto_random(digest, sizeof(digest)) != 0)
		return err_set(e, ERR_CRYPTO, "no random bytes");
	if ((r = agent_token_sign(at, digest, sig, e)) != 0)
		return r;
	if (crypto_ecdsa_verify(at->sig_pub, digest, sig) != 0)
		return err_set(e, ERR_KEY_POLICY, "the token's private "
		    "signing key does not sign for it");
	if ((t = agent_token_backend(at, e)) == NULL)
		return e != NULL && e->code != 0 ? e->code :
		    ERR_TOKEN_NOT_PRESENT;
	if ((r = crypto_spki_import(at->enc_spki, at->enc_spki_len, &enc,
	    e)) != 0)
		return r;
	r = crypto_is_p256(enc) ? prove_ecdh(t, enc, e) : prove_rsa(t, enc, e);
	EVP_PKEY_free(enc);
	return r;
}

/* --- the agent --- */

/* This device's label: the configured one, else the registry's. */
static const char *
own_label(struct agent *a)
{
	const struct reg_device *self;

	if (a->cfg->label != NULL)
		return a->cfg->label;
	if (a->tok.have_keys &&
	    (self = reg_find(&a->reg, a->tok.device)) != NULL)
		return self->label;
	return NULL;
}

/*
 * Raises the `key_replaced` alert for f and stops every use of the
 * token's keys: no directory session, no registry write (also not by the
 * check that notices a changed registry), no operation that is not
 * agent_anchor_op_allowed().
 */
static void
anchor_block(struct agent *a, const struct agent_anchor_finding *f)
{
	const char *tid = a->tok.have_keys ? a->tok.device : "";
	char msg[AGENT_ALERT_MESSAGE_MAX + 1], key[AGENT_ALERT_KEY_MAX + 1];
	struct token_desc d;
	struct err_ctx e;
	json_t *det;

	memset(&d, 0, sizeof(d));
	err_clear(&e);
	if (a->tok.t != NULL && a->tok.keys_open)
		(void)token_describe(a->tok.t, &d, &e);
	agent_anchor_message(f, tid, d.sig_ref, msg, sizeof(msg));
	snprintf(key, sizeof(key), "key_replaced:%.16s:%s",
	    tid[0] != '\0' ? tid : "unknown", f->reason);
	det = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}",
	    "reason", f->reason, "token_device", tid,
	    "expected_device", f->expected, "label", f->label,
	    "seq", (json_int_t)f->seq, "sig_ref", d.sig_ref,
	    "enc_ref", d.enc_ref, "backend", a->tok.backend);
	err_clear(&e);
	(void)agent_raise_alert_severity(a, AGENT_ALERT_KEY_REPLACED,
	    AGENT_ALERT_CRITICAL, key, a->cfg->account,
	    f->expected[0] != '\0' ? f->expected : tid, f->label, msg, det,
	    NULL, &e);
	a->anchor.blocked = 1;
	snprintf(a->anchor.why, sizeof(a->anchor.why), "%s", msg);
	a->reg_files_known = 0;
	agent_session_store(a, NULL, 0);
	agent_log(LOG_ERR, "the token's keys are not used from now on: %s",
	    f->reason);
}

/*
 * Judges the registry files as they are on disk against the token's keys
 * (which must be known) into f.  What the files do not decide (missing,
 * unreadable, changed by someone without any key) is left to the
 * registry's own verification.  0 or ERR_ALLOC.
 */
static int
anchor_judge_files(struct agent *a, struct agent_anchor_finding *f)
{
	char *path = NULL, *sig_path = NULL, *text = NULL;
	char s[DEVREC_SHORT_ID_LEN + 1];
	const struct reg_device *self, *named;
	struct registry reg;
	uint8_t sig[64];
	size_t len = 0;
	int r = ERR_INTERNAL;

	memset(f, 0, sizeof(*f));
	memset(&reg, 0, sizeof(reg));
	if ((path = path_join(a->cfg->state_dir, REG_FILE)) == NULL ||
	    (sig_path = path_join(a->cfg->state_dir, REG_SIG_FILE)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	r = sigfile_read(path, sig_path, REG_FILE_MAX, &text, &len, sig, NULL);
	if (r != 0) {
		r = r == ERR_ALLOC ? r : 0;
		goto out;
	}
	if (reg_verify(text, len, sig, a->tok.sig_pub, NULL) != 0) {
		agent_anchor_judge_foreign(text, len, sig, a->tok.device, f);
		r = 0;
		goto out;
	}
	if (reg_parse(text, len, &reg, NULL) != 0) {
		r = 0;
		goto out;
	}
	self = reg_find(&reg, a->tok.device);
	if (strcmp(reg.device, a->tok.device) != 0) {
		named = reg_find(&reg, reg.device);
		short_of(reg.device, s);
		finding(f, "other_device", reg.device, named != NULL ?
		    named->label : own_label(a), reg.log.seq, "the registry, "
		    "signed with the token's key, is of device %s '%s'", s,
		    named != NULL ? named->label : "?");
	} else if (self != NULL && self->has_record &&
	    spki_differs(self->rec.enc_pub, self->rec.enc_pub_len,
	    a->tok.enc_spki, a->tok.enc_spki_len)) {
		finding(f, "enc_key", a->tok.device, self->label, 0, "this "
		    "device's record in the registry has another encryption "
		    "key than the one the token shows");
	} else {
		agent_anchor_judge_view(&reg.log, a->dir_pub, a->tok.device,
		    a->tok.enc_spki, a->tok.enc_spki_len, own_label(a),
		    self != NULL && self->state == REG_REVOKED, f);
	}
	r = 0;
 out:
	reg_clear(&reg);
	free(text);
	free(path);
	free(sig_path);
	return r;
}

int
agent_anchor_check(struct agent *a, struct err_ctx *e)
{
	struct agent_anchor_finding f;
	struct err_ctx local;
	int r;

	if (a->anchor.blocked || !a->tok.have_keys)
		return 0;
	if (!a->anchor.files_judged) {
		if ((r = anchor_judge_files(a, &f)) != 0)
			return err_set(e, r, "out of memory");
		a->anchor.files_judged = 1;
		if (f.found) {
			anchor_block(a, &f);
			return 0;
		}
	}
	if (a->anchor.proven)
		return 0;
	err_clear(&local);
	r = agent_anchor_prove(&a->tok, &local);
	if (r == ERR_KEY_POLICY) {
		memset(&f, 0, sizeof(f));
		finding(&f, "proof_failed", NULL, own_label(a), 0, "%s: the "
		    "public keys the token shows were replaced (a PKCS#11 "
		    "token's public objects need no PIN)", err_msg(&local));
		anchor_block(a, &f);
		return 0;
	}
	if (r == ERR_PIN_REQUIRED || r == ERR_PIN_INCORRECT ||
	    r == ERR_PIN_LOCKED || r == ERR_TOKEN_NOT_PRESENT) {
		/* Proven at unlock, or when the token is back. */
		agent_log(LOG_INFO, "the token's keys are proven later: %s",
		    err_msg(&local));
		return 0;
	}
	if (r != 0)
		return err_wrap(e, r, "proving the token's keys failed: %s",
		    err_msg(&local));
	a->anchor.proven = 1;
	return 0;
}

void
agent_anchor_keys_refused(struct agent *a, const struct err_ctx *why)
{
	struct agent_anchor_finding f;

	if (a->anchor.blocked)
		return;
	memset(&f, 0, sizeof(f));
	finding(&f, "key_refused", NULL, own_label(a), 0, "the token's keys "
	    "are not the ones this device was set up with: %s", err_msg(why));
	anchor_block(a, &f);
}

/*
 * Replays the account's log from seq 1 up to target into real (lock not
 * held), a page at a time.  0 when real reached target; 1 when the log
 * ends before target or does not verify (the watcher's own check says
 * why); else the directory client's error.
 */
static int
anchor_replay(struct dirc *c, const char *account, uint64_t target,
    struct acctlog_state *real, struct err_ctx *e)
{
	struct acctlog_response *resp = NULL;
	struct err_ctx local;
	uint64_t pages = target / ACCTLOG_MAX_EVENTS + 2;
	size_t n;
	int r;

	while (real->seq < target) {
		if (pages-- == 0)
			return 1;
		if ((r = dirc_get_log(c, account, real->seq, 0, &resp, e)) != 0)
			return r;
		for (n = 0; n < resp->n_events &&
		    resp->events[n].seq <= target; n++)
			;
		err_clear(&local);
		r = n == 0 ? 1 : acctlog_state_apply(real, resp->events, n,
		    &local);
		acctlog_response_free(resp);
		resp = NULL;
		if (r != 0) {
			if (r != 1)
				agent_log(LOG_WARNING, "re-reading the log of "
				    "%s: %s", account, err_msg(&local));
			return 1;
		}
	}
	return 0;
}

int
agent_anchor_reverify(struct agent *a, struct dirc *c, struct err_ctx *e)
{
	struct acctlog_state saved, real;
	struct agent_anchor_finding f;
	char account[ACCTLOG_ACCOUNT_MAX + 1];
	int r;

	if (a->anchor.reverified || a->anchor.blocked)
		return 0;
	/* Nothing saved to compare, or a view the start check refused. */
	if (a->reg.log.seq == 0 || !a->reg.log.has_head || !a->tok.have_keys) {
		a->anchor.reverified = 1;
		return 0;
	}
	memset(&saved, 0, sizeof(saved));
	memset(&real, 0, sizeof(real));
	if ((r = acctlog_state_copy(&saved, &a->reg.log)) != 0 ||
	    (r = acctlog_state_init(&real, saved.account, saved.directory,
	    e)) != 0) {
		err_set(e, r, "re-reading the log: %s", err_str(r));
		goto out;
	}
	snprintf(account, sizeof(account), "%s", saved.account);
	pthread_mutex_unlock(&a->lock);
	r = anchor_replay(c, account, saved.seq, &real, e);
	pthread_mutex_lock(&a->lock);
	if (r < 0 || a->stop)
		goto out;
	a->anchor.reverified = 1;
	if (r == 0) {
		agent_anchor_compare_views(&saved, &real, a->tok.device,
		    own_label(a), &f);
		if (f.found)
			anchor_block(a, &f);
		else
			agent_log(LOG_INFO, "the registry's view of %s (seq "
			    "%llu) is the directory's log", account,
			    (unsigned long long)saved.seq);
	}
	r = 0;
 out:
	acctlog_state_clear(&saved);
	acctlog_state_clear(&real);
	return r;
}

void
agent_anchor_after_check(struct agent *a)
{
	struct agent_anchor_finding f;
	const struct reg_device *self;

	if (a->anchor.blocked || !a->tok.have_keys)
		return;
	self = reg_find(&a->reg, a->tok.device);
	agent_anchor_judge_view(&a->reg.log, NULL, a->tok.device,
	    a->tok.enc_spki, a->tok.enc_spki_len, own_label(a),
	    self != NULL && self->state == REG_REVOKED, &f);
	if (f.found)
		anchor_block(a, &f);
}

void
agent_anchor_login_refused(struct agent *a, int r, const char *dir_code,
    struct err_ctx *e)
{
	const struct reg_device *self;
	char s[DEVREC_SHORT_ID_LEN + 1];
	uint64_t seq = 0;

	if (r != ERR_DENIED || dir_code == NULL ||
	    strcmp(dir_code, "unknown_device") != 0 || !a->tok.have_keys)
		return;
	short_of(a->tok.device, s);
	if ((self = reg_find(&a->reg, a->tok.device)) != NULL)
		seq = self->add_seq;
	if (seq == 0 && acctlog_state_find(&a->reg.log, a->tok.device) != NULL)
		seq = a->reg.log.seq;
	if (seq > 0)
		err_wrap(e, ERR_DENIED, "the directory does not know this "
		    "device's key %s, although the registry says it was "
		    "registered (seq %llu): another device revoked it, or its "
		    "keys and registry were replaced (%s)", s,
		    (unsigned long long)seq, ANCHOR_DOC);
	else
		err_wrap(e, ERR_DENIED, "the directory does not know this "
		    "device's key %s: it is not registered yet (devid-agent "
		    "register); if it was registered before, its keys were "
		    "replaced: do not register it again (%s)", s, ANCHOR_DOC);
}

int
agent_anchor_blocked(const struct agent_anchor *an)
{
	return an->blocked;
}

int
agent_anchor_refuse(const struct agent *a, struct err_ctx *e)
{
	return err_wrap(e, ERR_DENIED, "%s", a->anchor.why);
}
