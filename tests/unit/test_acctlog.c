/*
 * test_acctlog.c - account-log events, signed heads, log responses and the
 * verified state: valid chains, every kind of tampering the directory or
 * the network could try, and the strict JSON parsers.
 *
 * Software P-256 keys stand in for the devices' tokens and for the
 * directory's head key.  Every failing update must leave the state exactly
 * as it was; state_unchanged() checks that through the state's JSON.
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

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"

#define NDEV 5
#define ALICE "alice@example.org"
#define T0 1764400000ULL
#define NOW (T0 + 1000)
#define MAX_STALE 900
#define CHAIN_MAX 16

/* Devices 0-3 belong to alice; device 4 is bob's. */
struct fx {
	EVP_PKEY *dir, *dir2;
	char dir_id[65], dir2_id[65];
	EVP_PKEY *sig[NDEV], *enc[NDEV];
	struct devrec rec[NDEV];
};

struct chain {
	struct acctlog_event ev[CHAIN_MAX];
	size_t n;
	uint8_t hash[32];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t *sd = NULL, *ed = NULL;
	size_t sl = 0, el = 0;
	char label[32];
	int i;

	if (f == NULL || crypto_ec_generate(&f->dir) != 0 ||
	    crypto_ec_generate(&f->dir2) != 0 ||
	    acctlog_directory_id(f->dir, f->dir_id) != 0 ||
	    acctlog_directory_id(f->dir2, f->dir2_id) != 0)
		return -1;
	for (i = 0; i < NDEV; i++) {
		if (crypto_ec_generate(&f->sig[i]) != 0 ||
		    crypto_ec_generate(&f->enc[i]) != 0 ||
		    crypto_spki_export(f->sig[i], &sd, &sl) != 0 ||
		    crypto_spki_export(f->enc[i], &ed, &el) != 0)
			return -1;
		snprintf(label, sizeof(label), "device %d", i);
		if (devrec_build(&f->rec[i], i == 4 ? "bob@example.org" : ALICE,
		    label, sd, sl, "hpke-p256", ed, el, T0 - 100 + (uint64_t)i,
		    devrec_sign_pkey, f->sig[i], NULL) != 0)
			return -1;
		free(sd);
		free(ed);
		sd = ed = NULL;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int i;

	EVP_PKEY_free(f->dir);
	EVP_PKEY_free(f->dir2);
	for (i = 0; i < NDEV; i++) {
		EVP_PKEY_free(f->sig[i]);
		EVP_PKEY_free(f->enc[i]);
	}
	free(f);
	return 0;
}

static struct chain *
chain_new(void)
{
	struct chain *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	return c;
}

static void
chain_add_rec(struct chain *c, const struct devrec *rec)
{
	struct err_ctx e;

	assert_true(c->n < CHAIN_MAX);
	err_clear(&e);
	assert_int_equal(acctlog_event_add(&c->ev[c->n], c->n + 1,
	    T0 + c->n + 1, c->hash, rec, &e), 0);
	memcpy(c->hash, c->ev[c->n].hash, 32);
	c->n++;
}

static void
chain_add(struct chain *c, struct fx *f, int dev)
{
	chain_add_rec(c, &f->rec[dev]);
}

/* Revokes device target with signer's key. */
static void
chain_revoke(struct chain *c, struct fx *f, int target, int signer)
{
	uint8_t d[32], sig[64];
	uint64_t t = T0 + c->n + 1;

	assert_true(c->n < CHAIN_MAX);
	assert_int_equal(acctlog_revoke_digest(ALICE, f->rec[target].device,
	    t, d), 0);
	assert_int_equal(crypto_ecdsa_sign(f->sig[signer], d, sig), 0);
	assert_int_equal(acctlog_event_revoke(&c->ev[c->n], c->n + 1, t,
	    c->hash, f->rec[target].device, sig, NULL), 0);
	memcpy(c->hash, c->ev[c->n].hash, 32);
	c->n++;
}

/* Recomputes the hash of event i and re-links everything after it, as a
 * directory rewriting its history would. */
static void
chain_rehash_from(struct chain *c, size_t i)
{
	for (; i < c->n; i++) {
		if (i > 0)
			memcpy(c->ev[i].prev, c->ev[i - 1].hash, 32);
		assert_int_equal(acctlog_event_hash(&c->ev[i], c->ev[i].hash),
		    0);
	}
	memcpy(c->hash, c->ev[c->n - 1].hash, 32);
}

static void
make_head(EVP_PKEY *key, const char *dir_id, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t time,
    struct acctlog_head *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->account, sizeof(h->account), "%s", account);
	h->seq = seq;
	memcpy(h->hash, hash, 32);
	h->time = time;
	assert_int_equal(acctlog_head_sign(h, dir_id, devrec_sign_pkey, key,
	    NULL), 0);
}

/* The head of c after its first n events, signed by the pinned key. */
static void
chain_head(struct fx *f, const struct chain *c, size_t n,
    struct acctlog_head *h)
{
	static const uint8_t zero[32];

	make_head(f->dir, f->dir_id, ALICE, n,
	    n == 0 ? zero : c->ev[n - 1].hash, NOW - 10, h);
}

static char *
snapshot(const struct acctlog_state *st)
{
	json_t *obj = NULL;
	char *s;

	assert_int_equal(acctlog_state_to_json(st, &obj, NULL), 0);
	s = json_dumps(obj, JSON_COMPACT);
	assert_non_null(s);
	json_decref(obj);
	return s;
}

static void
state_unchanged(const struct acctlog_state *st, const char *snap)
{
	char *now = snapshot(st);

	assert_string_equal(now, snap);
	free(now);
}

/* A state verified up to event n of c (0: the empty log). */
static void
state_at(struct fx *f, const struct chain *c, size_t n,
    struct acctlog_state *st)
{
	struct acctlog_head h;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(acctlog_state_init(st, ALICE, f->dir_id, &e), 0);
	chain_head(f, c, n, &h);
	if (acctlog_verify_update(st, c->ev, n, &h, f->dir, NOW, MAX_STALE,
	    NULL, &e) != 0)
		fail_msg("state_at(%zu): %s", n, err_msg(&e));
}

/* Runs an update that must fail with want and leave st unchanged. */
static void
update_fails(struct fx *f, struct acctlog_state *st,
    const struct acctlog_event *ev, size_t n, const struct acctlog_head *h,
    EVP_PKEY *key, int want, struct acctlog_evidence *evid)
{
	char *snap = snapshot(st);
	struct err_ctx e;
	int r;

	(void)f;
	err_clear(&e);
	r = acctlog_verify_update(st, ev, n, h, key, NOW, MAX_STALE, evid, &e);
	if (r != want)
		fail_msg("update: got %d (%s), want %d", r, err_msg(&e), want);
	assert_true(strlen(err_msg(&e)) > 10);
	state_unchanged(st, snap);
	free(snap);
}

/* The standard log: add 0, add 1, add 2 endorsed by 0, revoke 1 by 0,
 * add 3. */
static struct chain *
standard_chain(struct fx *f)
{
	struct chain *c = chain_new();
	struct devrec rec2 = f->rec[2];
	uint8_t *der = NULL;
	size_t len = 0;

	assert_int_equal(crypto_spki_export(f->sig[0], &der, &len), 0);
	assert_int_equal(devrec_endorse(&rec2, der, len, devrec_sign_pkey,
	    f->sig[0], NULL), 0);
	free(der);
	chain_add(c, f, 0);
	chain_add(c, f, 1);
	chain_add_rec(c, &rec2);
	chain_revoke(c, f, 1, 0);
	chain_add(c, f, 3);
	return c;
}

/* --- the happy paths --- */

static void
test_event_hash_spelled_out(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new();
	struct buf *p = buf_new(0), *bt = buf_new(0), *b = buf_new(0);
	const struct devrec *r = &f->rec[0];
	uint8_t want[32];

	chain_add(c, f, 0);
	chain_revoke(c, f, 0, 0);
	/* add: P = lp(B) lp(binding_sig) lp("") lp("") */
	assert_int_equal(buf_put(bt, "devid-device-v1", 16), 0);
	assert_int_equal(buf_put_lp(bt, ALICE, strlen(ALICE)), 0);
	assert_int_equal(buf_put_lp(bt, r->label, strlen(r->label)), 0);
	assert_int_equal(buf_put_lp(bt, r->sig_pub, r->sig_pub_len), 0);
	assert_int_equal(buf_put_lp(bt, "hpke-p256", 9), 0);
	assert_int_equal(buf_put_lp(bt, r->enc_pub, r->enc_pub_len), 0);
	assert_int_equal(buf_put_u64(bt, r->created), 0);
	assert_int_equal(buf_put_lp(p, buf_ptr(bt), buf_len(bt)), 0);
	assert_int_equal(buf_put_lp(p, r->binding_sig, 64), 0);
	assert_int_equal(buf_put_u32(p, 0), 0);
	assert_int_equal(buf_put_u32(p, 0), 0);
	assert_int_equal(buf_put(b, "devid-event-v1", 15), 0);
	assert_int_equal(buf_put_u64(b, 1), 0);
	assert_int_equal(buf_put_u64(b, T0 + 1), 0);
	assert_int_equal(buf_put_lp(b, "add", 3), 0);
	assert_int_equal(buf_put_u32(b, 32), 0);
	assert_int_equal(buf_put(b, c->ev[0].prev, 32), 0);
	assert_int_equal(buf_put_lp(b, buf_ptr(p), buf_len(p)), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), want), 0);
	assert_memory_equal(c->ev[0].hash, want, 32);

	/* revoke: P = lp(device id) lp(revoke_sig) */
	buf_reset(p);
	buf_reset(b);
	assert_int_equal(buf_put_lp(p, r->device, 64), 0);
	assert_int_equal(buf_put_lp(p, c->ev[1].revoke_sig, 64), 0);
	assert_int_equal(buf_put(b, "devid-event-v1", 15), 0);
	assert_int_equal(buf_put_u64(b, 2), 0);
	assert_int_equal(buf_put_u64(b, T0 + 2), 0);
	assert_int_equal(buf_put_lp(b, "revoke", 6), 0);
	assert_int_equal(buf_put_lp(b, c->ev[0].hash, 32), 0);
	assert_int_equal(buf_put_lp(b, buf_ptr(p), buf_len(p)), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), want), 0);
	assert_memory_equal(c->ev[1].hash, want, 32);
	assert_memory_equal(c->ev[1].prev, c->ev[0].hash, 32);

	/* R = tag lp(account) lp(device) u64(time), signed by device 0. */
	buf_reset(b);
	assert_int_equal(buf_put(b, "devid-revoke-v1", 16), 0);
	assert_int_equal(buf_put_lp(b, ALICE, strlen(ALICE)), 0);
	assert_int_equal(buf_put_lp(b, r->device, 64), 0);
	assert_int_equal(buf_put_u64(b, T0 + 2), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), want), 0);
	assert_int_equal(crypto_ecdsa_verify(f->sig[0], want,
	    c->ev[1].revoke_sig), 0);

	buf_free(p);
	buf_free(bt);
	buf_free(b);
	free(c);
}

static void
test_head_sign_verify(void **state)
{
	struct fx *f = *state;
	struct acctlog_head h, bad;
	struct buf *b = buf_new(0);
	uint8_t hash[32], d[32];
	struct err_ctx e;

	memset(hash, 0x42, sizeof(hash));
	make_head(f->dir, f->dir_id, ALICE, 7, hash, NOW, &h);
	err_clear(&e);
	assert_int_equal(acctlog_head_verify(&h, f->dir, NULL, &e), 0);
	assert_int_equal(acctlog_head_verify(&h, f->dir, f->dir_id, &e), 0);

	/* The head transcript, spelled out. */
	assert_int_equal(buf_put(b, "devid-head-v1", 14), 0);
	assert_int_equal(buf_put_lp(b, f->dir_id, 64), 0);
	assert_int_equal(buf_put_lp(b, ALICE, strlen(ALICE)), 0);
	assert_int_equal(buf_put_u64(b, 7), 0);
	assert_int_equal(buf_put_lp(b, hash, 32), 0);
	assert_int_equal(buf_put_u64(b, NOW), 0);
	assert_int_equal(crypto_sha256(buf_ptr(b), buf_len(b), d), 0);
	assert_int_equal(crypto_ecdsa_verify(f->dir, d, h.sig), 0);

	/* Each field is covered. */
	bad = h;
	bad.seq++;
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_SIGNATURE);
	bad = h;
	bad.time--;
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_SIGNATURE);
	bad = h;
	bad.hash[31] ^= 1;
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_SIGNATURE);
	bad = h;
	bad.account[0] = 'b';
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_SIGNATURE);

	/* Signed by another directory key: a bad signature under the
	 * pinned key, and ERR_WRONG_KEY once the directory says which key
	 * it uses. */
	make_head(f->dir2, f->dir2_id, ALICE, 7, hash, NOW, &bad);
	err_clear(&e);
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, &e),
	    ERR_SIGNATURE);
	err_clear(&e);
	assert_int_equal(acctlog_head_verify(&bad, f->dir, f->dir2_id, &e),
	    ERR_WRONG_KEY);
	assert_non_null(strstr(err_msg(&e), "pinned"));
	assert_int_equal(acctlog_head_verify(&bad, f->dir2, f->dir2_id, NULL),
	    0);
	/* Signed for another directory id with the right key. */
	make_head(f->dir, f->dir2_id, ALICE, 7, hash, NOW, &bad);
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_SIGNATURE);
	/* seq 0 must carry the zero hash. */
	make_head(f->dir, f->dir_id, ALICE, 1, hash, NOW, &bad);
	bad.seq = 0;
	assert_int_equal(acctlog_head_verify(&bad, f->dir, NULL, NULL),
	    ERR_FORMAT);
	buf_free(b);
}

static void
test_chain_from_zero(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_state st;
	struct acctlog_head h;
	struct acctlog_evidence ev;
	struct err_ctx e;

	assert_int_equal(acctlog_state_init(&st, ALICE, f->dir_id, NULL), 0);
	assert_int_equal(st.seq, 0);
	assert_int_equal(st.n_devices, 0);
	chain_head(f, c, c->n, &h);
	err_clear(&e);
	if (acctlog_verify_update(&st, c->ev, c->n, &h, f->dir, NOW,
	    MAX_STALE, &ev, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(ev.kind, 0);
	assert_int_equal(ev.first_applied, 0);
	assert_int_equal(ev.n_applied, 5);
	assert_int_equal(st.seq, 5);
	assert_memory_equal(st.hash, c->hash, 32);
	assert_true(st.has_head);
	assert_memory_equal(&st.head, &h, sizeof(h));
	/* Active: 0, 2, 3 in order of addition; 1 was revoked. */
	assert_int_equal(st.n_devices, 3);
	assert_string_equal(st.devices[0].rec.device, f->rec[0].device);
	assert_string_equal(st.devices[1].rec.device, f->rec[2].device);
	assert_string_equal(st.devices[2].rec.device, f->rec[3].device);
	assert_true(st.devices[1].rec.has_endorsement);
	assert_int_equal(st.devices[1].add_seq, 3);
	assert_memory_equal(st.devices[1].add_hash, c->ev[2].hash, 32);
	assert_null(acctlog_state_find(&st, f->rec[1].device));
	assert_non_null(acctlog_state_find(&st, f->rec[3].device));
	/* The history says what happened. */
	assert_int_equal(st.n_history, 5);
	assert_int_equal(st.history[3].type, ACCTLOG_REVOKE);
	assert_string_equal(st.history[3].device, f->rec[1].device);
	assert_int_equal(st.history[4].type, ACCTLOG_ADD);
	assert_int_equal(st.history[4].seq, 5);
	assert_memory_equal(st.history[4].hash, c->hash, 32);

	/* Nothing new: a fresh head at the same seq, nothing applied. */
	make_head(f->dir, f->dir_id, ALICE, 5, c->hash, NOW, &h);
	assert_int_equal(acctlog_verify_update(&st, NULL, 0, &h, f->dir, NOW,
	    MAX_STALE, &ev, NULL), 0);
	assert_int_equal(ev.n_applied, 0);
	assert_int_equal(st.head.time, NOW);

	/* The empty log verifies too. */
	acctlog_state_clear(&st);
	state_at(f, c, 0, &st);
	assert_int_equal(st.seq, 0);
	assert_true(st.has_head);
	acctlog_state_clear(&st);
	acctlog_state_clear(NULL);
	free(c);
}

static void
test_incremental(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_state st, back;
	struct acctlog_head h;
	struct acctlog_evidence ev;
	json_t *obj = NULL, *obj2 = NULL;
	json_error_t jerr;
	char *s, *s2;
	struct err_ctx e;

	state_at(f, c, 2, &st);
	assert_int_equal(st.n_devices, 2);

	/* Through the registry's JSON and back. */
	assert_int_equal(acctlog_state_to_json(&st, &obj, NULL), 0);
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	obj = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(obj);
	err_clear(&e);
	if (acctlog_state_from_json(obj, &back, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(acctlog_state_to_json(&back, &obj2, NULL), 0);
	s2 = json_dumps(obj2, JSON_COMPACT);
	assert_string_equal(s, s2);
	free(s2);
	json_decref(obj2);
	json_decref(obj);
	free(s);
	acctlog_state_clear(&st);

	/* Events 3..5 from the stored (seq 2, hash). */
	chain_head(f, c, 5, &h);
	err_clear(&e);
	if (acctlog_verify_update(&back, c->ev + 2, 3, &h, f->dir, NOW,
	    MAX_STALE, &ev, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(ev.first_applied, 0);
	assert_int_equal(ev.n_applied, 3);
	assert_int_equal(back.seq, 5);
	assert_int_equal(back.n_devices, 3);
	assert_int_equal(back.n_history, 5);
	acctlog_state_clear(&back);

	/* The whole log again from seq 2: events 1..2 are skipped. */
	state_at(f, c, 2, &st);
	assert_int_equal(acctlog_verify_update(&st, c->ev, 5, &h, f->dir, NOW,
	    MAX_STALE, &ev, NULL), 0);
	assert_int_equal(ev.first_applied, 2);
	assert_int_equal(ev.n_applied, 3);
	assert_memory_equal(st.hash, c->hash, 32);
	acctlog_state_clear(&st);

	/* acctlog_state_apply, as the directory uses it, without heads. */
	assert_int_equal(acctlog_state_init(&st, ALICE, f->dir_id, NULL), 0);
	assert_int_equal(acctlog_state_apply(&st, c->ev, 3, NULL), 0);
	assert_int_equal(acctlog_state_apply(&st, c->ev + 3, 2, NULL), 0);
	assert_int_equal(st.seq, 5);
	assert_false(st.has_head);
	s = snapshot(&st);
	assert_int_equal(acctlog_state_apply(&st, c->ev + 3, 2, NULL),
	    ERR_CHAIN);
	state_unchanged(&st, s);
	free(s);
	acctlog_state_clear(&st);
	free(c);
}

/* --- tampering --- */

static void
test_rewritten_middle_event(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct chain *w = chain_new();
	struct acctlog_state st;
	struct acctlog_head h, h3;
	struct acctlog_evidence ev;

	/* A changed event that keeps its old stated hash. */
	*w = *c;
	w->ev[2].time++;
	state_at(f, c, 0, &st);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_CHAIN, &ev);
	assert_int_equal(ev.kind, ERR_CHAIN);
	assert_int_equal(ev.seq, 3);
	acctlog_state_clear(&st);

	/* The directory rewrites event 2 (device 3 instead of device 1),
	 * re-links the events after it and signs a new head. */
	*w = *c;
	w->n = 1;
	memcpy(w->hash, w->ev[0].hash, 32);
	chain_add(w, f, 3);
	chain_add(w, f, 2);
	chain_add(w, f, 1);
	/* A client that verified the original up to seq 3 ... */
	state_at(f, c, 3, &st);
	h3 = st.head;
	/* ... is shown events 4.. of the rewritten log under a new head. */
	make_head(f->dir, f->dir_id, ALICE, 4, w->hash, NOW, &h);
	update_fails(f, &st, w->ev + 3, 1, &h, f->dir, ERR_CHAIN, &ev);
	assert_int_equal(ev.kind, ERR_CHAIN);
	assert_int_equal(ev.seq, 4);
	assert_true(ev.has_verified);
	assert_memory_equal(&ev.verified, &h3, sizeof(h3));
	assert_memory_equal(&ev.conflicting, &h, sizeof(h));
	/* ... or all of it: event 3 differs from the verified one: a fork. */
	update_fails(f, &st, w->ev, 4, &h, f->dir, ERR_FORK, &ev);
	assert_int_equal(ev.kind, ERR_FORK);
	assert_int_equal(ev.seq, 3);
	assert_memory_equal(&ev.verified, &h3, sizeof(h3));
	assert_memory_equal(&ev.conflicting, &h, sizeof(h));
	acctlog_state_clear(&st);

	/* A middle event changed and everything re-hashed, but the head is
	 * the old one: the chain does not end in the signed hash. */
	*w = *c;
	w->ev[3].time += 5;      /* also breaks revoke_sig, checked later */
	chain_rehash_from(w, 3);
	state_at(f, c, 0, &st);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_SIGNATURE, NULL);
	*w = *c;
	w->ev[4].time += 5;
	chain_rehash_from(w, 4);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_CHAIN, &ev);
	assert_int_equal(ev.kind, ERR_CHAIN);
	assert_int_equal(ev.seq, 5);
	acctlog_state_clear(&st);
	free(w);
	free(c);
}

static void
test_wrong_prev_and_gap(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct chain *w = chain_new();
	struct acctlog_event *gap = calloc(4, sizeof(*gap));
	struct acctlog_state st;
	struct acctlog_head h;

	assert_non_null(gap);
	state_at(f, c, 0, &st);
	chain_head(f, c, 5, &h);

	/* prev of event 3 wrong, its own hash consistent with that. */
	*w = *c;
	w->ev[2].prev[0] ^= 1;
	assert_int_equal(acctlog_event_hash(&w->ev[2], w->ev[2].hash), 0);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_CHAIN, NULL);
	/* seq 1 with a non-zero prev. */
	*w = *c;
	w->ev[0].prev[5] = 1;
	chain_rehash_from(w, 0);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_CHAIN, NULL);
	/* Renumbered: event 3 claims seq 4; prev and the stated hashes are
	 * consistent and the head is signed over the renumbered chain. */
	*w = *c;
	w->ev[2].seq = 4;
	w->ev[3].seq = 5;
	w->ev[4].seq = 6;
	chain_rehash_from(w, 2);
	make_head(f->dir, f->dir_id, ALICE, 6, w->hash, NOW, &h);
	update_fails(f, &st, w->ev, 5, &h, f->dir, ERR_CHAIN, NULL);
	chain_head(f, c, 5, &h);
	/* A gap: 1, 2, 4, 5. */
	gap[0] = c->ev[0];
	gap[1] = c->ev[1];
	gap[2] = c->ev[3];
	gap[3] = c->ev[4];
	update_fails(f, &st, gap, 4, &h, f->dir, ERR_CHAIN, NULL);
	/* A duplicate: 1, 2, 2, 3. */
	gap[2] = c->ev[1];
	gap[3] = c->ev[2];
	update_fails(f, &st, gap, 4, &h, f->dir, ERR_CHAIN, NULL);
	/* Events starting late (2..5 from seq 0). */
	update_fails(f, &st, c->ev + 1, 4, &h, f->dir, ERR_CHAIN, NULL);
	/* Stopping short of the head: fetch more. */
	update_fails(f, &st, c->ev, 4, &h, f->dir, ERR_TRUNCATED, NULL);
	update_fails(f, &st, NULL, 0, &h, f->dir, ERR_TRUNCATED, NULL);
	/* Going past it. */
	chain_head(f, c, 4, &h);
	update_fails(f, &st, c->ev, 5, &h, f->dir, ERR_FORMAT, NULL);
	acctlog_state_clear(&st);
	free(gap);
	free(w);
	free(c);
}

static void
test_rollback(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_state st;
	struct acctlog_head h2, h5;
	struct acctlog_evidence ev;

	state_at(f, c, 5, &st);
	h5 = st.head;
	/* A genuine, validly signed older head replayed. */
	chain_head(f, c, 2, &h2);
	update_fails(f, &st, c->ev, 2, &h2, f->dir, ERR_ROLLBACK, &ev);
	assert_int_equal(ev.kind, ERR_ROLLBACK);
	assert_int_equal(ev.seq, 2);
	assert_true(ev.has_verified);
	assert_memory_equal(&ev.verified, &h5, sizeof(h5));
	assert_memory_equal(&ev.conflicting, &h2, sizeof(h2));
	assert_int_equal(acctlog_head_verify(&ev.verified, f->dir, NULL,
	    NULL), 0);
	assert_int_equal(acctlog_head_verify(&ev.conflicting, f->dir, NULL,
	    NULL), 0);
	/* All the way back to the empty log. */
	chain_head(f, c, 0, &h2);
	update_fails(f, &st, NULL, 0, &h2, f->dir, ERR_ROLLBACK, &ev);
	assert_int_equal(ev.seq, 0);
	/* An unsigned rollback is a bad signature, not evidence. */
	chain_head(f, c, 2, &h2);
	h2.sig[0] ^= 1;
	update_fails(f, &st, NULL, 0, &h2, f->dir, ERR_SIGNATURE, &ev);
	assert_int_equal(ev.kind, 0);
	acctlog_state_clear(&st);
	free(c);
}

static void
test_fork(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct chain *other = chain_new();
	struct acctlog_state st;
	struct acctlog_head h2, o2;
	struct acctlog_evidence ev;

	/* We verified 0, 1; the directory shows someone else 0, 3. */
	chain_add(other, f, 0);
	chain_add(other, f, 3);
	state_at(f, c, 2, &st);
	h2 = st.head;
	make_head(f->dir, f->dir_id, ALICE, 2, other->hash, NOW, &o2);
	update_fails(f, &st, NULL, 0, &o2, f->dir, ERR_FORK, &ev);
	assert_int_equal(ev.kind, ERR_FORK);
	assert_int_equal(ev.seq, 2);
	assert_memory_equal(&ev.verified, &h2, sizeof(h2));
	assert_memory_equal(&ev.conflicting, &o2, sizeof(o2));
	update_fails(f, &st, other->ev, 2, &o2, f->dir, ERR_FORK, &ev);
	/* The fork continued beyond our seq. */
	chain_add(other, f, 2);
	make_head(f->dir, f->dir_id, ALICE, 3, other->hash, NOW, &o2);
	update_fails(f, &st, other->ev, 3, &o2, f->dir, ERR_FORK, &ev);
	assert_int_equal(ev.kind, ERR_FORK);
	update_fails(f, &st, other->ev + 2, 1, &o2, f->dir, ERR_CHAIN, &ev);
	assert_int_equal(ev.kind, ERR_CHAIN);
	assert_memory_equal(&ev.conflicting, &o2, sizeof(o2));
	acctlog_state_clear(&st);
	free(other);
	free(c);
}

static void
test_wrong_key_and_stale(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_state st;
	struct acctlog_head h;
	char *snap;
	struct err_ctx e;

	state_at(f, c, 2, &st);
	/* Signed by another directory key. */
	make_head(f->dir2, f->dir2_id, ALICE, 5, c->hash, NOW, &h);
	update_fails(f, &st, c->ev + 2, 3, &h, f->dir2, ERR_WRONG_KEY, NULL);
	update_fails(f, &st, c->ev + 2, 3, &h, f->dir, ERR_SIGNATURE, NULL);
	/* A head for another account. */
	make_head(f->dir, f->dir_id, "bob@example.org", 5, c->hash, NOW, &h);
	update_fails(f, &st, c->ev + 2, 3, &h, f->dir, ERR_FORMAT, NULL);

	/* Stale: older than max_stale. */
	make_head(f->dir, f->dir_id, ALICE, 5, c->hash, NOW - MAX_STALE - 1,
	    &h);
	update_fails(f, &st, c->ev + 2, 3, &h, f->dir, ERR_STALE, NULL);
	/* Stale even with nothing new. */
	make_head(f->dir, f->dir_id, ALICE, 2, c->ev[1].hash,
	    NOW - MAX_STALE - 1, &h);
	update_fails(f, &st, NULL, 0, &h, f->dir, ERR_STALE, NULL);
	/* Exactly at the limit is still fresh. */
	make_head(f->dir, f->dir_id, ALICE, 5, c->hash, NOW - MAX_STALE, &h);
	snap = snapshot(&st);
	err_clear(&e);
	assert_int_equal(acctlog_verify_update(&st, c->ev + 2, 3, &h, f->dir,
	    NOW, MAX_STALE, NULL, &e), 0);
	assert_int_equal(st.seq, 5);
	free(snap);
	acctlog_state_clear(&st);
	free(c);
}

static void
test_bad_records(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new();
	struct devrec rec;
	struct acctlog_state st;
	struct acctlog_head h;

	chain_add(c, f, 0);
	state_at(f, c, 1, &st);

	/* A bad binding signature (the event hash itself is consistent). */
	rec = f->rec[1];
	rec.binding_sig[10] ^= 4;
	chain_add_rec(c, &rec);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_SIGNATURE, NULL);

	/* A device id that is not H(sig_pub): device 1's keys under the id
	 * of device 2. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	rec = f->rec[1];
	memcpy(rec.device, f->rec[2].device, sizeof(rec.device));
	chain_add_rec(c, &rec);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_FORMAT, NULL);

	/* The event's device field says something else than its record. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	chain_add(c, f, 1);
	memcpy(c->ev[1].device, f->rec[2].device, 65);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_FORMAT, NULL);

	/* bob's device in alice's log. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	chain_add(c, f, 4);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_FORMAT, NULL);

	/* The same device added twice. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	chain_add(c, f, 0);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_EXISTS, NULL);

	/* Endorsed by a device that is not in the log. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	rec = f->rec[1];
	{
		uint8_t *der = NULL;
		size_t len = 0;

		assert_int_equal(crypto_spki_export(f->sig[3], &der, &len), 0);
		assert_int_equal(devrec_endorse(&rec, der, len,
		    devrec_sign_pkey, f->sig[3], NULL), 0);
		free(der);
	}
	chain_add_rec(c, &rec);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_NOT_FOUND, NULL);
	/* Endorsement claimed by device 0 with a forged signature. */
	c->n = 1;
	memcpy(c->hash, c->ev[0].hash, 32);
	memcpy(rec.endorsed_by, f->rec[0].device, 65);
	chain_add_rec(c, &rec);
	chain_head(f, c, 2, &h);
	update_fails(f, &st, c->ev + 1, 1, &h, f->dir, ERR_SIGNATURE, NULL);

	acctlog_state_clear(&st);
	free(c);
}

static void
test_bad_revokes(void **state)
{
	struct fx *f = *state;
	struct chain *c = chain_new();
	struct acctlog_state st;
	struct acctlog_head h;
	struct acctlog_evidence ev;

	chain_add(c, f, 0);
	chain_add(c, f, 1);
	chain_revoke(c, f, 1, 0);
	state_at(f, c, 3, &st);             /* active: 0 */

	/* Signed by a device that never was in the log. */
	chain_add(c, f, 2);
	chain_revoke(c, f, 2, 3);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, c->ev + 3, 2, &h, f->dir, ERR_SIGNATURE, NULL);
	/* Signed by the revoked device 1. */
	c->n = 4;
	memcpy(c->hash, c->ev[3].hash, 32);
	chain_revoke(c, f, 2, 1);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, c->ev + 3, 2, &h, f->dir, ERR_SIGNATURE, NULL);
	/* Revoking a device that is not active. */
	c->n = 4;
	memcpy(c->hash, c->ev[3].hash, 32);
	chain_revoke(c, f, 1, 0);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, c->ev + 3, 2, &h, f->dir, ERR_NOT_FOUND, NULL);
	c->n = 4;
	memcpy(c->hash, c->ev[3].hash, 32);
	chain_revoke(c, f, 3, 0);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, c->ev + 3, 2, &h, f->dir, ERR_NOT_FOUND, NULL);
	/* A revoke signature over another time (time is covered). */
	c->n = 4;
	memcpy(c->hash, c->ev[3].hash, 32);
	chain_revoke(c, f, 2, 0);
	c->ev[4].time++;
	chain_rehash_from(c, 4);
	chain_head(f, c, 5, &h);
	update_fails(f, &st, c->ev + 3, 2, &h, f->dir, ERR_SIGNATURE, NULL);

	/* And the good one: device 2 revoked by itself, then by nobody. */
	c->n = 4;
	memcpy(c->hash, c->ev[3].hash, 32);
	chain_revoke(c, f, 2, 2);
	chain_head(f, c, 5, &h);
	assert_int_equal(acctlog_verify_update(&st, c->ev + 3, 2, &h, f->dir,
	    NOW, MAX_STALE, &ev, NULL), 0);
	assert_int_equal(st.n_devices, 1);
	assert_string_equal(st.devices[0].rec.device, f->rec[0].device);
	/* Device 0 revokes itself: the account has no device left. */
	chain_revoke(c, f, 0, 0);
	chain_head(f, c, 6, &h);
	assert_int_equal(acctlog_verify_update(&st, c->ev + 5, 1, &h, f->dir,
	    NOW, MAX_STALE, &ev, NULL), 0);
	assert_int_equal(st.n_devices, 0);
	/* Now nobody can revoke or endorse anything. */
	chain_revoke(c, f, 0, 0);
	chain_head(f, c, 7, &h);
	update_fails(f, &st, c->ev + 6, 1, &h, f->dir, ERR_NOT_FOUND, NULL);
	acctlog_state_clear(&st);
	free(c);
}

/* --- JSON --- */

static void
test_response_roundtrip(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_response *resp = NULL;
	struct acctlog_head h;
	struct acctlog_state st;
	json_t *obj = NULL;
	uint8_t hash[32];
	char *s;
	size_t i;
	struct err_ctx e;

	chain_head(f, c, 5, &h);
	err_clear(&e);
	assert_int_equal(acctlog_response_to_json(c->ev, 5, &h, &obj, &e), 0);
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	assert_non_null(s);
	if (acctlog_response_parse(s, strlen(s), &resp, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(resp->n_events, 5);
	assert_memory_equal(&resp->head, &h, sizeof(h));
	for (i = 0; i < 5; i++) {
		assert_int_equal(resp->events[i].seq, c->ev[i].seq);
		assert_int_equal(resp->events[i].time, c->ev[i].time);
		assert_int_equal(resp->events[i].type, c->ev[i].type);
		assert_string_equal(resp->events[i].device, c->ev[i].device);
		assert_memory_equal(resp->events[i].prev, c->ev[i].prev, 32);
		assert_memory_equal(resp->events[i].hash, c->ev[i].hash, 32);
		/* The hash covers everything: recomputed, it matches. */
		assert_int_equal(acctlog_event_hash(&resp->events[i], hash), 0);
		assert_memory_equal(hash, c->ev[i].hash, 32);
	}
	/* And the parsed response verifies. */
	assert_int_equal(acctlog_state_init(&st, ALICE, f->dir_id, NULL), 0);
	assert_int_equal(acctlog_verify_update(&st, resp->events,
	    resp->n_events, &resp->head, f->dir, NOW, MAX_STALE, NULL, &e), 0);
	acctlog_state_clear(&st);
	acctlog_response_free(resp);
	acctlog_response_free(NULL);
	free(s);

	/* The empty response. */
	chain_head(f, c, 0, &h);
	assert_int_equal(acctlog_response_to_json(NULL, 0, &h, &obj, &e), 0);
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	assert_int_equal(acctlog_response_parse(s, strlen(s), &resp, &e), 0);
	assert_int_equal(resp->n_events, 0);
	acctlog_response_free(resp);
	free(s);
	free(c);
}

/* Parses obj (as text) as a response and expects want. */
static void
response_fails(json_t *obj, int want, const char *why)
{
	struct acctlog_response *resp = (struct acctlog_response *)0x1;
	char *s = json_dumps(obj, JSON_COMPACT);
	struct err_ctx e;
	int r;

	assert_non_null(s);
	err_clear(&e);
	r = acctlog_response_parse(s, strlen(s), &resp, &e);
	if (r != want)
		fail_msg("%s: got %d (%s), want %d", why, r, err_msg(&e), want);
	assert_ptr_equal(resp, (struct acctlog_response *)0x1);
	free(s);
}

static json_t *
response_obj(struct fx *f, const struct chain *c)
{
	struct acctlog_head h;
	json_t *obj = NULL;

	chain_head(f, c, c->n, &h);
	assert_int_equal(acctlog_response_to_json(c->ev, c->n, &h, &obj,
	    NULL), 0);
	return obj;
}

/* The event object i of a response. */
static json_t *
ev_obj(json_t *resp, size_t i)
{
	return json_array_get(json_object_get(resp, "events"), i);
}

static void
test_response_negative(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	json_t *base = response_obj(f, c), *o, *arr;
	char upper[65], *s, *t, *p;
	const char *hash;
	size_t i;

	/* Missing and unknown fields, wrong types at the top. */
	o = json_deep_copy(base);
	json_object_del(o, "head");
	response_fails(o, ERR_FORMAT, "no head");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_del(o, "events");
	response_fails(o, ERR_FORMAT, "no events");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(o, "events", json_object());
	response_fails(o, ERR_FORMAT, "events not an array");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(o, "more", json_true());
	response_fails(o, ERR_FORMAT, "unknown field");
	json_decref(o);
	o = json_deep_copy(base);
	json_array_append_new(json_object_get(o, "events"), json_integer(1));
	response_fails(o, ERR_FORMAT, "event not an object");
	json_decref(o);

	/* Event fields. */
	o = json_deep_copy(base);
	json_object_del(ev_obj(o, 1), "prev");
	response_fails(o, ERR_FORMAT, "no prev");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_del(ev_obj(o, 1), "hash");
	response_fails(o, ERR_FORMAT, "no hash");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_del(ev_obj(o, 1), "record");
	response_fails(o, ERR_FORMAT, "add without record");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_del(ev_obj(o, 3), "revoke_sig");
	response_fails(o, ERR_FORMAT, "revoke without sig");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "device",
	    json_string(c->ev[1].device));
	response_fails(o, ERR_FORMAT, "add with a device field");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 3), "record", json_object());
	response_fails(o, ERR_FORMAT, "revoke with a record");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "type", json_string("delete"));
	response_fails(o, ERR_FORMAT, "unknown type");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "type", json_string("Add"));
	response_fails(o, ERR_FORMAT, "type case");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "seq", json_string("2"));
	response_fails(o, ERR_FORMAT, "seq as a string");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 0), "seq", json_integer(0));
	response_fails(o, ERR_FORMAT, "seq 0");
	json_decref(o);
	{
		struct acctlog_event *one = calloc(1, sizeof(*one));

		assert_non_null(one);
		o = json_deep_copy(ev_obj(base, 3));
		assert_int_equal(acctlog_event_from_json(o, one, NULL), 0);
		assert_int_equal(one->type, ACCTLOG_REVOKE);
		json_object_set_new(o, "seq", json_integer(0));
		assert_int_equal(acctlog_event_from_json(o, one, NULL),
		    ERR_FORMAT);
		json_decref(o);
		free(one);
	}
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "time", json_integer(-5));
	response_fails(o, ERR_FORMAT, "negative time");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "time", json_real(5.5));
	response_fails(o, ERR_FORMAT, "real time");
	json_decref(o);

	/* Hex: uppercase, short, long, non-hex. */
	hash = json_string_value(json_object_get(ev_obj(base, 1), "hash"));
	memcpy(upper, hash, 65);
	for (i = 0; i < 64; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 32);
	if (strcmp(upper, hash) == 0)
		upper[0] = 'A';
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "hash", json_string(upper));
	response_fails(o, ERR_FORMAT, "uppercase hex");
	json_decref(o);
	memcpy(upper, hash, 65);
	upper[63] = '\0';
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "prev", json_string(upper));
	response_fails(o, ERR_FORMAT, "63 hex digits");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "prev", json_string("00"));
	response_fails(o, ERR_FORMAT, "2 hex digits");
	json_decref(o);
	s = calloc(1, 80);
	assert_non_null(s);
	snprintf(s, 80, "%s0", hash);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "hash", json_string(s));
	response_fails(o, ERR_FORMAT, "65 hex digits");
	json_decref(o);
	snprintf(s, 80, "%.63sg", hash);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 1), "hash", json_string(s));
	response_fails(o, ERR_FORMAT, "non-hex");
	json_decref(o);
	snprintf(s, 80, "%.63s ", hash);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 3), "device", json_string(s));
	response_fails(o, ERR_FORMAT, "space in an id");
	json_decref(o);
	free(s);

	/* revoke_sig: padded, whitespace, short. */
	hash = json_string_value(json_object_get(ev_obj(base, 3),
	    "revoke_sig"));
	s = calloc(1, 200);
	assert_non_null(s);
	snprintf(s, 200, "%s==", hash);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 3), "revoke_sig", json_string(s));
	response_fails(o, ERR_FORMAT, "padded revoke_sig");
	json_decref(o);
	snprintf(s, 200, "%.20s\n%s", hash, hash + 20);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 3), "revoke_sig", json_string(s));
	response_fails(o, ERR_FORMAT, "whitespace in revoke_sig");
	json_decref(o);
	snprintf(s, 200, "%.84s", hash);
	o = json_deep_copy(base);
	json_object_set_new(ev_obj(o, 3), "revoke_sig", json_string(s));
	response_fails(o, ERR_FORMAT, "short revoke_sig");
	json_decref(o);
	free(s);

	/* A bad record inside an event. */
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(ev_obj(o, 0), "record"), "label",
	    json_string(""));
	response_fails(o, ERR_FORMAT, "empty label");
	json_decref(o);

	/* seq order inside the response, and past the head. */
	o = json_deep_copy(base);
	arr = json_object_get(o, "events");
	json_array_remove(arr, 2);
	response_fails(o, ERR_FORMAT, "gap");
	json_decref(o);
	o = json_deep_copy(base);
	arr = json_object_get(o, "events");
	json_array_insert(arr, 1, json_array_get(arr, 1));
	response_fails(o, ERR_FORMAT, "repeat");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(o, "head"), "seq",
	    json_integer(4));
	response_fails(o, ERR_FORMAT, "events past the head");
	json_decref(o);

	/* Head fields. */
	o = json_deep_copy(base);
	json_object_del(json_object_get(o, "head"), "sig");
	response_fails(o, ERR_FORMAT, "head without sig");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(o, "head"), "account",
	    json_string("Alice"));
	response_fails(o, ERR_FORMAT, "head account syntax");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(o, "head"), "sig",
	    json_string("AAAA"));
	response_fails(o, ERR_FORMAT, "short head sig");
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(o, "head"), "extra",
	    json_null());
	response_fails(o, ERR_FORMAT, "head extra field");
	json_decref(o);

	/* Too many events: checked before any is parsed. */
	o = json_deep_copy(base);
	arr = json_object_get(o, "events");
	while (json_array_size(arr) <= ACCTLOG_MAX_EVENTS)
		json_array_append(arr, json_array_get(arr, 0));
	response_fails(o, ERR_TOO_LARGE, "too many events");
	json_decref(o);

	/* Text-level: duplicate keys, trailing bytes, size limit. */
	s = json_dumps(base, JSON_COMPACT);
	assert_non_null(s);
	t = calloc(1, strlen(s) + 64);
	assert_non_null(t);
	p = strstr(s, "\"seq\":1,");
	assert_non_null(p);
	snprintf(t, strlen(s) + 64, "%.*s\"seq\":1,%s", (int)(p - s), s, p);
	{
		struct acctlog_response *r = NULL;

		assert_int_equal(acctlog_response_parse(t, strlen(t), &r,
		    NULL), ERR_FORMAT);
		snprintf(t, strlen(s) + 64, "%s]", s);
		assert_int_equal(acctlog_response_parse(t, strlen(t), &r,
		    NULL), ERR_FORMAT);
		assert_int_equal(acctlog_response_parse(s, strlen(s) - 1, &r,
		    NULL), ERR_FORMAT);
		assert_int_equal(acctlog_response_parse("null", 4, &r, NULL),
		    ERR_FORMAT);
		assert_null(r);
	}
	free(t);
	t = malloc(ACCTLOG_RESPONSE_MAX + 1);
	assert_non_null(t);
	memset(t, ' ', ACCTLOG_RESPONSE_MAX + 1);
	memcpy(t, s, strlen(s));
	{
		struct acctlog_response *r = NULL;

		assert_int_equal(acctlog_response_parse(t,
		    ACCTLOG_RESPONSE_MAX + 1, &r, NULL), ERR_TOO_LARGE);
		assert_int_equal(acctlog_response_parse(t,
		    ACCTLOG_RESPONSE_MAX, &r, NULL), 0);
		acctlog_response_free(r);
	}
	free(t);
	free(s);
	json_decref(base);
	free(c);
}

#define HASH1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"

/* A "tlog" member for a response whose head is at 5. */
static json_t *
tlog_obj(void)
{
	json_t *t = json_pack("{s:s, s:I, s:I, s:[s, s]}", "checkpoint",
	    "devid/x\n9\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
	    "\xe2\x80\x94 devid/x AAAAAAAAAA==\n", "seq", (json_int_t)5,
	    "index", (json_int_t)8, "proof",
	    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
	    "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI");

	assert_non_null(t);
	return t;
}

static void
test_response_tlog(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_response *resp = NULL;
	json_t *obj, *t;
	char *s, *big;
	size_t i;
	struct err_ctx e;

	/* Without the member: absent. */
	obj = response_obj(f, c);
	s = json_dumps(obj, JSON_COMPACT);
	assert_int_equal(acctlog_response_parse(s, strlen(s), &resp, NULL), 0);
	assert_false(resp->tlog.present);
	assert_null(resp->tlog.checkpoint);
	acctlog_response_free(resp);
	free(s);

	/* With it. */
	json_object_set_new(obj, "tlog", tlog_obj());
	s = json_dumps(obj, JSON_COMPACT);
	err_clear(&e);
	if (acctlog_response_parse(s, strlen(s), &resp, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_true(resp->tlog.present);
	assert_int_equal(resp->tlog.seq, 5);
	assert_int_equal(resp->tlog.index, 8);
	assert_int_equal(resp->tlog.n_proof, 2);
	for (i = 0; i < 32; i++) {
		assert_int_equal(resp->tlog.proof[0][i], 1);
		assert_int_equal(resp->tlog.proof[1][i], 2);
	}
	assert_non_null(strstr(resp->tlog.checkpoint, "devid/x\n9\n"));
	assert_int_equal(resp->tlog.checkpoint_len,
	    strlen(resp->tlog.checkpoint));
	acctlog_response_free(resp);
	free(s);
	/* An empty proof is a proof (a tree of one leaf). */
	t = json_object_get(obj, "tlog");
	json_object_set_new(t, "proof", json_array());
	s = json_dumps(obj, JSON_COMPACT);
	assert_int_equal(acctlog_response_parse(s, strlen(s), &resp, NULL), 0);
	assert_int_equal(resp->tlog.n_proof, 0);
	acctlog_response_free(resp);
	free(s);
	json_decref(obj);

	/* Negative cases: each on a fresh member. */
#define TLOG_FAILS(want, why, edit) do {				\
		obj = response_obj(f, c);				\
		t = tlog_obj();						\
		json_object_set_new(obj, "tlog", t);			\
		edit;							\
		response_fails(obj, want, why);				\
		json_decref(obj);					\
	} while (0)
	TLOG_FAILS(ERR_FORMAT, "not an object",
	    json_object_set_new(obj, "tlog", json_string("x")));
	TLOG_FAILS(ERR_FORMAT, "null",
	    json_object_set_new(obj, "tlog", json_null()));
	TLOG_FAILS(ERR_FORMAT, "unknown key",
	    json_object_set_new(t, "extra", json_true()));
	TLOG_FAILS(ERR_FORMAT, "no checkpoint",
	    json_object_del(t, "checkpoint"));
	TLOG_FAILS(ERR_FORMAT, "no seq", json_object_del(t, "seq"));
	TLOG_FAILS(ERR_FORMAT, "no index", json_object_del(t, "index"));
	TLOG_FAILS(ERR_FORMAT, "no proof", json_object_del(t, "proof"));
	TLOG_FAILS(ERR_FORMAT, "empty checkpoint",
	    json_object_set_new(t, "checkpoint", json_string("")));
	TLOG_FAILS(ERR_FORMAT, "checkpoint not a string",
	    json_object_set_new(t, "checkpoint", json_integer(1)));
	TLOG_FAILS(ERR_FORMAT, "checkpoint with NUL",
	    json_object_set_new(t, "checkpoint", json_stringn("a\0b", 3)));
	TLOG_FAILS(ERR_FORMAT, "seq 0",
	    json_object_set_new(t, "seq", json_integer(0)));
	TLOG_FAILS(ERR_FORMAT, "seq past the head",
	    json_object_set_new(t, "seq", json_integer(6)));
	TLOG_FAILS(ERR_FORMAT, "negative index",
	    json_object_set_new(t, "index", json_integer(-1)));
	TLOG_FAILS(ERR_FORMAT, "index a string",
	    json_object_set_new(t, "index", json_string("8")));
	TLOG_FAILS(ERR_FORMAT, "proof not an array",
	    json_object_set_new(t, "proof", json_string("AQEB")));
	TLOG_FAILS(ERR_FORMAT, "proof hash too short",
	    json_array_set_new(json_object_get(t, "proof"), 0,
	    json_string("AQEB")));
	TLOG_FAILS(ERR_FORMAT, "proof hash not base64url",
	    json_array_set_new(json_object_get(t, "proof"), 0,
	    json_string("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBA+E")));
	TLOG_FAILS(ERR_FORMAT, "proof hash a number",
	    json_array_set_new(json_object_get(t, "proof"), 0,
	    json_integer(1)));
	/* Bounds: a note past TLOG_NOTE_MAX, a proof past MERKLE_PROOF_MAX. */
	big = malloc(TLOG_NOTE_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', TLOG_NOTE_MAX + 1);
	big[TLOG_NOTE_MAX + 1] = '\0';
	TLOG_FAILS(ERR_TOO_LARGE, "checkpoint too long",
	    json_object_set_new(t, "checkpoint", json_string(big)));
	free(big);
	TLOG_FAILS(ERR_TOO_LARGE, "proof too long",
	    for (i = 0; i < MERKLE_PROOF_MAX - 1; i++)
		json_array_append_new(json_object_get(t, "proof"),
		    json_string(HASH1)));
#undef TLOG_FAILS
	/* A duplicated "tlog" key. */
	obj = response_obj(f, c);
	json_object_set_new(obj, "tlog", tlog_obj());
	s = json_dumps(obj, JSON_COMPACT);
	{
		char *dup = malloc(strlen(s) * 2 + 16), *p;
		char *tl = strstr(s, "\"tlog\"");
		size_t tl_len;

		assert_non_null(dup);
		assert_non_null(tl);
		/* "tlog":{...} is the last member: copy it once more. */
		tl_len = strlen(tl) - 1;
		p = dup;
		memcpy(p, s, strlen(s) - 1);
		p += strlen(s) - 1;
		*p++ = ',';
		memcpy(p, tl, tl_len);
		p += tl_len;
		*p++ = '}';
		*p = '\0';
		err_clear(&e);
		resp = NULL;
		assert_int_equal(acctlog_response_parse(dup, strlen(dup), &resp,
		    &e), ERR_FORMAT);
		assert_null(resp);
		free(dup);
	}
	free(s);
	json_decref(obj);
	free(c);
}

static void
test_head_json(void **state)
{
	struct fx *f = *state;
	struct acctlog_head h, back;
	json_t *obj = NULL;
	uint8_t hash[32];
	char *s, big[1200];
	struct err_ctx e;

	memset(hash, 0xab, 32);
	make_head(f->dir, f->dir_id, ALICE, 9, hash, NOW, &h);
	err_clear(&e);
	assert_int_equal(acctlog_head_to_json(&h, &obj, &e), 0);
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	assert_int_equal(acctlog_head_parse(s, strlen(s), &back, &e), 0);
	assert_memory_equal(&back, &h, sizeof(h));
	assert_int_equal(acctlog_head_verify(&back, f->dir, NULL, &e), 0);
	free(s);

	s = "{\"account\":\"a\",\"account\":\"a\"}";
	assert_int_equal(acctlog_head_parse(s, strlen(s), &back, NULL),
	    ERR_FORMAT);
	/* seq 0 with a non-zero hash. */
	assert_int_equal(acctlog_head_to_json(&h, &obj, &e), 0);
	json_object_set_new(obj, "seq", json_integer(0));
	err_clear(&e);
	assert_int_equal(acctlog_head_from_json(obj, &back, &e), ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "seq 0"));
	json_decref(obj);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	assert_int_equal(acctlog_head_parse(big, sizeof(big), &back, NULL),
	    ERR_TOO_LARGE);
}

static void
test_state_json_negative(void **state)
{
	struct fx *f = *state;
	struct chain *c = standard_chain(f);
	struct acctlog_state st, back;
	json_t *base = NULL, *o;
	int r;

	state_at(f, c, 5, &st);
	assert_int_equal(acctlog_state_to_json(&st, &base, NULL), 0);

	o = json_deep_copy(base);
	json_object_set_new(o, "seq", json_integer(6));
	r = acctlog_state_from_json(o, &back, NULL);
	assert_int_equal(r, ERR_FORMAT);            /* head at 5 */
	assert_null(back.devices);
	json_decref(o);
	o = json_deep_copy(base);
	json_object_del(o, "directory");
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), ERR_FORMAT);
	json_decref(o);
	o = json_deep_copy(base);
	json_array_append(json_object_get(o, "devices"),
	    json_array_get(json_object_get(o, "devices"), 0));
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), ERR_FORMAT);
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_object_get(json_array_get(json_object_get(o,
	    "devices"), 0), "record"), "created", json_integer(1));
	assert_int_equal(acctlog_state_from_json(o, &back, NULL),
	    ERR_SIGNATURE);
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(json_array_get(json_object_get(o, "history"), 1),
	    "type", json_string("move"));
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), ERR_FORMAT);
	json_decref(o);
	o = json_deep_copy(base);
	json_array_remove(json_object_get(o, "history"), 0);
	json_array_append(json_object_get(o, "history"),
	    json_array_get(json_object_get(o, "history"), 0));
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), ERR_FORMAT);
	json_decref(o);
	o = json_deep_copy(base);
	json_object_set_new(o, "extra", json_integer(1));
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), ERR_FORMAT);
	json_decref(o);
	/* Without a head it still loads. */
	o = json_deep_copy(base);
	json_object_del(o, "head");
	assert_int_equal(acctlog_state_from_json(o, &back, NULL), 0);
	assert_false(back.has_head);
	assert_int_equal(back.n_devices, 3);
	acctlog_state_clear(&back);
	json_decref(o);

	json_decref(base);
	acctlog_state_clear(&st);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_hash_spelled_out),
		cmocka_unit_test(test_head_sign_verify),
		cmocka_unit_test(test_chain_from_zero),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_rewritten_middle_event),
		cmocka_unit_test(test_wrong_prev_and_gap),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_wrong_key_and_stale),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_bad_revokes),
		cmocka_unit_test(test_response_roundtrip),
		cmocka_unit_test(test_response_negative),
		cmocka_unit_test(test_response_tlog),
		cmocka_unit_test(test_head_json),
		cmocka_unit_test(test_state_json_negative),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
