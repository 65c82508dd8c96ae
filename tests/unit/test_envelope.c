/*
 * test_envelope.c - the message envelope (PROTOCOL.md section 4): seal and
 * open round trips, every recipient check in its order with the uniform
 * ERR_REJECTED result, attacks on the binding of sender, recipients and
 * header, and the strict parser.
 *
 * Keys are software keys made once per run; the token steps (signing, the
 * recipient's DH, RSA decryption) are played by callbacks over them.
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

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "envelope.h"
#include "transcript.h"
#include "errors.h"
#include "hpke.h"
#include "token.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"

/* --- the world: devices of two accounts --- */

struct device {
	const char *account;
	char id[ENV_DEVICE_LEN + 1];
	EVP_PKEY *sig;                  /* private: software stands in */
	EVP_PKEY *enc;                  /* for the token */
	enum token_enc_alg alg;
	int active;                     /* what sender lookups find */
};

/* A1 sends; A2 is another device of alice; A3 is alice's RSA device. */
enum { A1, A2, A3, B1, B2, N_DEV };
static struct device devs[N_DEV];
static struct acctlog_head views[2];    /* alice, bob: what senders saw */

/* One receiving device with its own replay store and verified logs. */
#define MAX_SEEN 64
struct receiver {
	char id[ENV_DEVICE_LEN + 1];
	EVP_PKEY *enc;
	enum token_enc_alg alg;
	struct {
		char device[ENV_DEVICE_LEN + 1];
		uint8_t id[ENV_ID_LEN];
	} seen[MAX_SEEN];
	size_t n_seen;
	struct acctlog_head known[2];   /* its own verified heads */
	int token_fail;                 /* an ERR_* the token returns, or 0 */
	int lend_wrong_key;             /* lookup returns another key */
	int gossip_calls;
};

static void
device_id_of(EVP_PKEY *sig, char out[ENV_DEVICE_LEN + 1])
{
	uint8_t *der = NULL, hash[32];
	size_t der_len = 0;

	assert_int_equal(crypto_spki_export(sig, &der, &der_len), 0);
	assert_int_equal(crypto_sha256(der, der_len, hash), 0);
	hex_encode(hash, sizeof(hash), out);
	free(der);
}

static void
random_device_id(char out[ENV_DEVICE_LEN + 1])
{
	uint8_t raw[32];

	assert_int_equal(crypto_random(raw, sizeof(raw)), 0);
	hex_encode(raw, sizeof(raw), out);
}

static int
group_setup(void **state)
{
	static const char *const accounts[N_DEV] = {
		ALICE, ALICE, ALICE, BOB, BOB
	};
	EVP_PKEY *rsa1 = NULL, *rsa2 = NULL;
	size_t i;

	/* RSA key generation is slow: two keys for the whole run. */
	assert_int_equal(crypto_rsa_generate(2048, &rsa1), 0);
	assert_int_equal(crypto_rsa_generate(2048, &rsa2), 0);
	for (i = 0; i < N_DEV; i++) {
		devs[i].account = accounts[i];
		assert_int_equal(crypto_ec_generate(&devs[i].sig), 0);
		device_id_of(devs[i].sig, devs[i].id);
		if (i == A3 || i == B2) {
			devs[i].alg = TOKEN_ENC_RSA_OAEP;
			devs[i].enc = i == A3 ? rsa1 : rsa2;
		} else {
			devs[i].alg = TOKEN_ENC_HPKE_P256;
			assert_int_equal(crypto_ec_generate(&devs[i].enc), 0);
		}
		devs[i].active = 1;
	}
	for (i = 0; i < 2; i++) {
		strcpy(views[i].account, i == 0 ? ALICE : BOB);
		views[i].seq = 5 + i;
		assert_int_equal(crypto_random(views[i].hash, 32), 0);
		views[i].time = 1764400000 + i;
		assert_int_equal(crypto_random(views[i].sig, 64), 0);
	}
	(void)state;
	return 0;
}

static int
group_teardown(void **state)
{
	size_t i;

	for (i = 0; i < N_DEV; i++) {
		EVP_PKEY_free(devs[i].sig);
		EVP_PKEY_free(devs[i].enc);
	}
	(void)state;
	return 0;
}

static int
test_setup(void **state)
{
	size_t i;

	for (i = 0; i < N_DEV; i++)
		devs[i].active = 1;
	(void)state;
	return 0;
}

static void
receiver_init(struct receiver *rx, const char *id, EVP_PKEY *enc,
    enum token_enc_alg alg)
{
	memset(rx, 0, sizeof(*rx));
	strcpy(rx->id, id);
	rx->enc = enc;
	rx->alg = alg;
	rx->known[0] = views[0];
	rx->known[1] = views[1];
}

static void
receiver_of(struct receiver *rx, int dev)
{
	receiver_init(rx, devs[dev].id, devs[dev].enc, devs[dev].alg);
}

/* --- callbacks: the token and the agent's stores --- */

static int
cb_sign(void *arg, const uint8_t *transcript, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	uint8_t digest[32];

	/* What the agent does: only tagged transcripts are signed. */
	assert_true(tr_is_signable(transcript, len));
	assert_memory_equal(transcript, "devid-env-sig-v1", 17);
	if (crypto_sha256(transcript, len, digest) != 0 ||
	    crypto_ecdsa_sign((EVP_PKEY *)arg, digest, sig) != 0)
		return err_set(e, ERR_CRYPTO, "test signing failed");
	return 0;
}

static int
cb_dh(void *arg, const uint8_t pk_e[HPKE_ENC_LEN],
    uint8_t dh_out[HPKE_SECRET_LEN], struct err_ctx *e)
{
	struct receiver *rx = arg;

	if (rx->token_fail != 0)
		return err_set(e, rx->token_fail, "test token fails");
	return hpke_dh_software(rx->enc, pk_e, dh_out, e);
}

static int
cb_rsa(void *arg, const uint8_t *ct, size_t ct_len, uint8_t *out,
    size_t out_max, size_t *out_len, struct err_ctx *e)
{
	struct receiver *rx = arg;
	int r;

	if (rx->token_fail != 0)
		return err_set(e, rx->token_fail, "test token fails");
	if ((r = crypto_rsa_oaep_decrypt(rx->enc, ct, ct_len, out, out_max,
	    out_len)) != 0)
		return err_set(e, r, "test RSA decryption failed");
	return 0;
}

static int
cb_sender_key(void *arg, const char *account, const char *device,
    EVP_PKEY **sig_pub, struct err_ctx *e)
{
	struct receiver *rx = arg;
	EVP_PKEY *k;
	size_t i;

	for (i = 0; i < N_DEV; i++) {
		if (strcmp(devs[i].id, device) != 0 ||
		    strcmp(devs[i].account, account) != 0)
			continue;
		if (!devs[i].active)
			return err_set(e, ERR_DENIED, "sender device revoked");
		k = rx->lend_wrong_key ? devs[(i + 1) % N_DEV].sig :
		    devs[i].sig;
		assert_int_equal(EVP_PKEY_up_ref(k), 1);
		*sig_pub = k;
		return 0;
	}
	return err_set(e, ERR_NOT_FOUND, "sender device is not in the "
	    "verified log of %s", account);
}

static int
cb_replay_check(void *arg, const char *device, const uint8_t id[16],
    struct err_ctx *e)
{
	struct receiver *rx = arg;
	size_t i;

	for (i = 0; i < rx->n_seen; i++) {
		if (strcmp(rx->seen[i].device, device) == 0 &&
		    memcmp(rx->seen[i].id, id, ENV_ID_LEN) == 0)
			return err_set(e, ERR_REPLAY, "id seen before");
	}
	return 0;
}

static int
cb_replay_record(void *arg, const char *device, const uint8_t id[16],
    uint64_t sent, struct err_ctx *e)
{
	struct receiver *rx = arg;

	assert_true(rx->n_seen < MAX_SEEN);
	strcpy(rx->seen[rx->n_seen].device, device);
	memcpy(rx->seen[rx->n_seen].id, id, ENV_ID_LEN);
	rx->n_seen++;
	(void)sent;
	(void)e;
	return 0;
}

static int
cb_gossip(void *arg, const char *sender_account, const char *sender_device,
    const struct acctlog_head *v, size_t n, struct err_ctx *e)
{
	struct receiver *rx = arg;
	size_t i, k;

	rx->gossip_calls++;
	for (i = 0; i < n; i++) {
		for (k = 0; k < 2; k++) {
			if (strcmp(rx->known[k].account, v[i].account) != 0)
				continue;
			if (rx->known[k].seq == v[i].seq &&
			    memcmp(rx->known[k].hash, v[i].hash, 32) != 0)
				return err_set(e, ERR_FORK, "split view of %s "
				    "at seq %llu", v[i].account,
				    (unsigned long long)v[i].seq);
		}
	}
	(void)sender_account;
	(void)sender_device;
	return 0;
}

static const struct env_open_ops ops_template = {
	.sender_key = cb_sender_key,
	.replay_check = cb_replay_check,
	.replay_record = cb_replay_record,
	.gossip = cb_gossip,
};

/* Fills self for rx, whose keys the callbacks use. */
static void
self_of(struct receiver *rx, struct env_self *self)
{
	memset(self, 0, sizeof(*self));
	self->device = rx->id;
	self->alg = rx->alg;
	if (rx->alg == TOKEN_ENC_HPKE_P256) {
		assert_int_equal(crypto_ec_point_get(rx->enc, self->enc_point),
		    0);
		self->dh = cb_dh;
		self->dh_arg = rx;
	} else {
		self->rsa_decrypt = cb_rsa;
		self->rsa_arg = rx;
	}
}

/* Asserts that two opens of one envelope came to the same result. */
static void
assert_same_open(int r1, const struct env_opened *o1,
    const struct err_ctx *e1, int r2, const struct env_opened *o2,
    const struct err_ctx *e2)
{
	if (r1 != r2 || o1->failed != o2->failed ||
	    strcmp(e1->msg, e2->msg) != 0)
		fail_msg("text: %d at check %d: %s; tree: %d at check %d: %s",
		    r1, (int)o1->failed, e1->msg, r2, (int)o2->failed,
		    e2->msg);
	if (r1 != 0)
		return;
	assert_memory_equal(o1->id, o2->id, ENV_ID_LEN);
	assert_string_equal(o1->sender_account, o2->sender_account);
	assert_string_equal(o1->sender_device, o2->sender_device);
	assert_int_equal(o1->sent, o2->sent);
	assert_string_equal(o1->payload.type, o2->payload.type);
	assert_int_equal(o1->payload.body_len, o2->payload.body_len);
	if (o1->payload.body_len > 0)
		assert_memory_equal(o1->payload.body, o2->payload.body,
		    o1->payload.body_len);
	assert_true((o1->payload.name == NULL) == (o2->payload.name == NULL));
	if (o1->payload.name != NULL)
		assert_string_equal(o1->payload.name, o2->payload.name);
}

/*
 * Opens json as rx with env_open().  When the text loads as JSON (and is
 * within lim: a tree has no size), env_open_tree() -- what devid-agent
 * does with the envelope of an `open` request -- opens it first and must
 * come to the same result, check and message; rx's replay store and
 * gossip count are rolled back in between.  out is cleared by the caller.
 */
static int
open_as(struct receiver *rx, const char *json, size_t len,
    const struct env_limits *lim, struct env_opened *out, struct err_ctx *e)
{
	struct env_self self;
	struct env_open_ops ops = ops_template;
	struct env_opened o2;
	struct err_ctx e2;
	size_t n_seen = rx->n_seen;
	int gossip_calls = rx->gossip_calls, r, r2 = 0, tree = 0;
	json_t *root = NULL;

	self_of(rx, &self);
	ops.arg = rx;
	if ((lim == NULL || lim->max_bytes == 0 || len <= lim->max_bytes) &&
	    (root = json_loadb(json, len, JSON_REJECT_DUPLICATES,
	    NULL)) != NULL) {
		tree = 1;
		err_clear(&e2);
		r2 = env_open_tree(root, lim, &self, &ops, &o2, &e2);
		json_decref(root);
		rx->n_seen = n_seen;
		rx->gossip_calls = gossip_calls;
	}
	err_clear(e);
	r = env_open((const uint8_t *)json, len, lim, &self, &ops, out, e);
	if (tree) {
		assert_same_open(r, out, e, r2, &o2, &e2);
		env_opened_clear(&o2);
	}
	return r;
}

/* Asserts the uniform rejection at check c, said so in the message. */
static void
assert_rejected_at(int r, const struct env_opened *o,
    const struct err_ctx *e, enum env_check c)
{
	char want[64];

	if (r != ERR_REJECTED || o->failed != c)
		fail_msg("want rejection at check %d, got %d at check %d: %s",
		    (int)c, r, (int)o->failed, err_msg(e));
	snprintf(want, sizeof(want), "check %d (%s)", (int)c,
	    env_check_name(c));
	if (strstr(e->msg, want) == NULL)
		fail_msg("message \"%s\" does not name \"%s\"", e->msg, want);
	assert_int_equal(e->code, ERR_REJECTED);
}

static void
expect_open_rejected(struct receiver *rx, const char *json, size_t len,
    enum env_check c, const char *detail)
{
	struct env_opened o;
	struct err_ctx e;
	int r;

	r = open_as(rx, json, len, NULL, &o, &e);
	assert_rejected_at(r, &o, &e, c);
	if (detail != NULL && strstr(e.msg, detail) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, detail);
	assert_null(o.payload.body);
	assert_null(o.payload.type);
	env_opened_clear(&o);
}

/* --- sealing helpers --- */

static uint8_t *
make_payload(const char *type, const uint8_t *body, size_t body_len,
    const char *name, size_t *len)
{
	uint8_t *p = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(env_payload_encode(type, body, body_len, name, &p,
	    len, &e), 0);
	return p;
}

/* Seals payload from devs[sender] to the given recipient keys. */
static struct env *
seal_keys(int sender, const struct env_recipient_key *rk, size_t n,
    const uint8_t *payload, size_t payload_len)
{
	static const char *const to[] = { BOB, ALICE };
	struct env_seal_args a;
	struct env *env = NULL;
	struct err_ctx e;

	memset(&a, 0, sizeof(a));
	a.sender_account = devs[sender].account;
	a.sender_device = devs[sender].id;
	a.sent = 1764400123;
	a.to = to;
	a.n_to = 2;
	a.views = views;
	a.n_views = 2;
	a.recipients = rk;
	a.n_recipients = n;
	a.payload = payload;
	a.payload_len = payload_len;
	a.sign = cb_sign;
	a.sign_arg = devs[sender].sig;
	err_clear(&e);
	if (env_seal(&a, &env, &e) != 0)
		fail_msg("seal: %s", err_msg(&e));
	return env;
}

/* Seals a short text from devs[sender] to the listed devices. */
static struct env *
seal_to(int sender, const int *to_devs, size_t n, const char *text)
{
	struct env_recipient_key rk[N_DEV];
	struct env *env;
	uint8_t *p;
	size_t i, len;

	assert_true(n <= N_DEV);
	for (i = 0; i < n; i++) {
		rk[i].device = devs[to_devs[i]].id;
		rk[i].alg = devs[to_devs[i]].alg;
		rk[i].enc_pub = devs[to_devs[i]].enc;
	}
	p = make_payload("text/plain; charset=utf-8", (const uint8_t *)text,
	    strlen(text), NULL, &len);
	env = seal_keys(sender, rk, n, p, len);
	crypto_wipe(p, len);
	free(p);
	return env;
}

static char *
to_json(const struct env *env, size_t *len)
{
	char *s = NULL;

	assert_int_equal(env_to_json(env, &s, len), 0);
	assert_int_equal(strlen(s), *len);
	return s;
}

static struct env *
parse_ok(const char *json, size_t len)
{
	struct env *env = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (env_parse((const uint8_t *)json, len, NULL, &env, &e) != 0)
		fail_msg("parse: %s", err_msg(&e));
	return env;
}

/* Re-signs env as devs[signer] would. */
static void
resign(struct env *env, int signer)
{
	uint8_t digest[32];

	assert_int_equal(env_sig_digest(env, digest), 0);
	assert_int_equal(crypto_ecdsa_sign(devs[signer].sig, digest,
	    env->sig), 0);
}

static void
expect_env_rejected(struct receiver *rx, const struct env *env,
    enum env_check c, const char *detail)
{
	char *json;
	size_t len;

	json = to_json(env, &len);
	expect_open_rejected(rx, json, len, c, detail);
	free(json);
}

static void
expect_opens(struct receiver *rx, const char *json, size_t len,
    const char *text)
{
	struct env_opened o;
	struct err_ctx e;
	int r;

	r = open_as(rx, json, len, NULL, &o, &e);
	if (r != 0)
		fail_msg("open: %d %s", r, err_msg(&e));
	assert_int_equal(o.failed, ENV_CHECK_NONE);
	assert_string_equal(o.sender_account, ALICE);
	assert_string_equal(o.sender_device, devs[A1].id);
	assert_int_equal(o.sent, 1764400123);
	assert_string_equal(o.payload.type, "text/plain; charset=utf-8");
	assert_null(o.payload.name);
	assert_int_equal(o.payload.body_len, strlen(text));
	assert_memory_equal(o.payload.body, text, strlen(text));
	env_opened_clear(&o);
}

/* --- round trips --- */

static void
test_roundtrip_one(void **state)
{
	static const int to[] = { B1 };
	struct receiver rx;
	struct env *env, *again;
	char *json, *json2;
	size_t len, len2;

	env = seal_to(A1, to, 1, "hello bob");
	assert_int_equal(env->n_to, 2);
	assert_string_equal(env->to[0], ALICE);
	assert_string_equal(env->to[1], BOB);
	assert_string_equal(env->views[0].account, ALICE);
	assert_string_equal(env->views[1].account, BOB);
	assert_int_equal(env->n_recipients, 1);
	assert_int_equal(env->recipients[0].wrapped_len, ENV_HPKE_WRAPPED_LEN);
	assert_int_equal(env->recipients[0].enc[0], 0x04);
	json = to_json(env, &len);

	/* The encoding is canonical: parse and encode give the same bytes. */
	again = parse_ok(json, len);
	json2 = to_json(again, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(json, json2, len);

	receiver_of(&rx, B1);
	expect_opens(&rx, json, len, "hello bob");
	assert_int_equal(rx.gossip_calls, 1);
	assert_int_equal(rx.n_seen, 1);

	/* A device of the account that was not addressed has no copy. */
	receiver_of(&rx, A2);
	expect_open_rejected(&rx, json, len, ENV_CHECK_DECRYPT, "no copy");
	assert_int_equal(rx.n_seen, 0);

	free(json);
	free(json2);
	env_free(env);
	env_free(again);
	(void)state;
}

static void
test_roundtrip_two_mixed(void **state)
{
	static const int to[] = { B2, B1, A2, A3 };
	struct receiver rx;
	struct env *env;
	char *json;
	size_t len, i;
	int d;

	env = seal_to(A1, to, 4, "to everyone");
	for (i = 1; i < env->n_recipients; i++)
		assert_true(strcmp(env->recipients[i - 1].device,
		    env->recipients[i].device) < 0);
	json = to_json(env, &len);
	for (i = 0; i < 4; i++) {
		d = to[i];
		receiver_of(&rx, d);
		expect_opens(&rx, json, len, "to everyone");
	}
	free(json);
	env_free(env);
	(void)state;
}

static void
test_roundtrip_300(void **state)
{
	enum { N = 300 };
	struct env_recipient_key *rk;
	char (*ids)[ENV_DEVICE_LEN + 1];
	struct receiver rx;
	struct env *env;
	uint8_t *p;
	char *json;
	size_t i, len, plen;
	static const size_t probe[] = { 0, 7, 150, 299 };

	rk = calloc(N, sizeof(*rk));
	ids = calloc(N, sizeof(*ids));
	assert_non_null(rk);
	assert_non_null(ids);
	for (i = 0; i < N; i++) {
		random_device_id(ids[i]);
		rk[i].device = ids[i];
		/* Every seventh device has an RSA key; keys may repeat,
		 * device ids do not. */
		if (i % 7 == 0) {
			rk[i].alg = TOKEN_ENC_RSA_OAEP;
			rk[i].enc_pub = devs[i % 2 ? A3 : B2].enc;
		} else {
			rk[i].alg = TOKEN_ENC_HPKE_P256;
			rk[i].enc_pub = devs[B1].enc;
		}
	}
	p = make_payload("text/plain; charset=utf-8",
	    (const uint8_t *)"many", 4, NULL, &plen);
	env = seal_keys(A1, rk, N, p, plen);
	assert_int_equal(env->n_recipients, N);
	json = to_json(env, &len);
	for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
		receiver_init(&rx, ids[probe[i]], rk[probe[i]].enc_pub,
		    rk[probe[i]].alg);
		expect_opens(&rx, json, len, "many");
	}
	free(json);
	free(p);
	env_free(env);
	free(ids);
	free(rk);
	(void)state;
}

static void
open_body(int size_mode)
{
	struct env_recipient_key rk[2];
	struct receiver rx;
	struct env_opened o;
	struct err_ctx e;
	struct env *env;
	uint8_t *body = NULL, *p;
	size_t body_len = size_mode ? (size_t)4 * 1024 * 1024 : 0;
	size_t i, len, plen;
	char *json;
	int r;

	if (body_len > 0) {
		body = malloc(body_len);
		assert_non_null(body);
		for (i = 0; i < body_len; i++)
			body[i] = (uint8_t)(i * 131 + (i >> 12));
	}
	p = make_payload("application/octet-stream", body, body_len,
	    size_mode ? "photo.raw" : NULL, &plen);
	rk[0].device = devs[B1].id;
	rk[0].alg = TOKEN_ENC_HPKE_P256;
	rk[0].enc_pub = devs[B1].enc;
	rk[1].device = devs[B2].id;
	rk[1].alg = TOKEN_ENC_RSA_OAEP;
	rk[1].enc_pub = devs[B2].enc;
	env = seal_keys(A1, rk, 2, p, plen);
	assert_int_equal(env->ciphertext_len, plen + ENV_TAG_LEN);
	json = to_json(env, &len);
	for (i = 0; i < 2; i++) {
		receiver_of(&rx, i == 0 ? B1 : B2);
		r = open_as(&rx, json, len, NULL, &o, &e);
		if (r != 0)
			fail_msg("open: %s", err_msg(&e));
		assert_string_equal(o.payload.type,
		    "application/octet-stream");
		assert_int_equal(o.payload.body_len, body_len);
		if (body_len > 0) {
			assert_memory_equal(o.payload.body, body, body_len);
			assert_string_equal(o.payload.name, "photo.raw");
		} else {
			assert_null(o.payload.name);
		}
		env_opened_clear(&o);
	}
	free(json);
	free(p);
	free(body);
	env_free(env);
}

static void
test_empty_body(void **state)
{
	open_body(0);
	(void)state;
}

static void
test_4mib_body(void **state)
{
	open_body(1);
	(void)state;
}

static struct env_recipient *
find_recipient(struct env *env, int dev)
{
	size_t i;

	for (i = 0; i < env->n_recipients; i++) {
		if (strcmp(env->recipients[i].device, devs[dev].id) == 0)
			return &env->recipients[i];
	}
	fail_msg("no recipient");
	abort();	/* not reached: tells the compiler there is no NULL */
}

/* --- the transcripts, built by hand from PROTOCOL.md section 4 --- */

struct bytes_out {
	uint8_t b[4096];
	size_t n;
};

static void
put(struct bytes_out *o, const void *p, size_t len)
{
	assert_true(o->n + len <= sizeof(o->b));
	memcpy(o->b + o->n, p, len);
	o->n += len;
}

static void
put_u32(struct bytes_out *o, uint32_t v)
{
	uint8_t x[4] = { v >> 24, v >> 16, v >> 8, v };

	put(o, x, 4);
}

static void
put_u64(struct bytes_out *o, uint64_t v)
{
	put_u32(o, (uint32_t)(v >> 32));
	put_u32(o, (uint32_t)v);
}

static void
put_lp(struct bytes_out *o, const void *p, size_t len)
{
	put_u32(o, (uint32_t)len);
	put(o, p, len);
}

static void
put_lp_str(struct bytes_out *o, const char *s)
{
	put_lp(o, s, strlen(s));
}

/*
 * An independent reading of section 4: HDR, SIG, the HPKE info and AADs,
 * and the body's AAD, each built here byte by byte, must match what
 * env_seal() made.  Round trips cannot show this: both sides would share
 * a mistake.
 */
static void
test_transcripts_by_hand(void **state)
{
	static const int to[] = { B1, B2 };
	struct bytes_out hdr, sig, info;
	struct buf *b;
	struct env *env;
	struct hpke_ctx ctx;
	uint8_t hdr_hash[32], digest[32], ct_hash[32], point[65];
	uint8_t k_hpke[32], k_rsa[512], *pt;
	size_t i, k_len;
	const struct env_recipient *rc;

	env = seal_to(A1, to, 2, "known answer");
	memset(&hdr, 0, sizeof(hdr));
	put(&hdr, "devid-msg-v1", 13);
	put_lp(&hdr, env->id, 16);
	put_lp_str(&hdr, ALICE);
	put_lp_str(&hdr, devs[A1].id);
	put_u64(&hdr, 1764400123);
	put_u32(&hdr, 2);
	put_lp_str(&hdr, ALICE);
	put_lp_str(&hdr, BOB);
	put_u32(&hdr, 2);
	for (i = 0; i < 2; i++) {
		put_lp_str(&hdr, views[i].account);
		put_u64(&hdr, views[i].seq);
		put_lp(&hdr, views[i].hash, 32);
		put_u64(&hdr, views[i].time);
		put_lp(&hdr, views[i].sig, 64);
	}
	b = buf_new(0);
	assert_non_null(b);
	assert_int_equal(env_hdr(env, b), 0);
	assert_int_equal(buf_len(b), hdr.n);
	assert_memory_equal(buf_ptr(b), hdr.b, hdr.n);
	buf_free(b);
	assert_int_equal(crypto_sha256(hdr.b, hdr.n, hdr_hash), 0);

	memset(&sig, 0, sizeof(sig));
	put(&sig, "devid-env-sig-v1", 17);
	put_lp(&sig, hdr_hash, 32);
	put_lp(&sig, env->nonce, 12);
	assert_int_equal(crypto_sha256(env->ciphertext, env->ciphertext_len,
	    ct_hash), 0);
	put_lp(&sig, ct_hash, 32);
	put_u32(&sig, 2);
	for (i = 0; i < 2; i++) {
		rc = &env->recipients[i];
		put_lp_str(&sig, rc->device);
		if (rc->alg == TOKEN_ENC_HPKE_P256) {
			put_lp_str(&sig, "hpke-p256");
			put_lp(&sig, rc->enc, 65);
		} else {
			put_lp_str(&sig, "rsa-oaep-sha256");
			put_lp(&sig, "", 0);
		}
		put_lp(&sig, rc->wrapped, rc->wrapped_len);
	}
	assert_int_equal(crypto_sha256(sig.b, sig.n, digest), 0);
	assert_int_equal(crypto_ecdsa_verify(devs[A1].sig, digest, env->sig),
	    0);

	/* B1's wrap: info and aad by hand. */
	rc = find_recipient(env, B1);
	memset(&info, 0, sizeof(info));
	put(&info, "devid-wrap-v1", 14);
	put_lp(&info, env->id, 16);
	put_lp_str(&info, devs[B1].id);
	assert_int_equal(crypto_ec_point_get(devs[B1].enc, point), 0);
	assert_int_equal(hpke_setup_base_r(rc->enc, point, hpke_dh_software,
	    devs[B1].enc, info.b, info.n, &ctx, NULL), 0);
	assert_int_equal(hpke_open(&ctx, hdr_hash, 32, rc->wrapped,
	    rc->wrapped_len, k_hpke), 0);
	hpke_ctx_wipe(&ctx);

	/* B2's wrap is plain RSA-OAEP of the same K. */
	rc = find_recipient(env, B2);
	assert_int_equal(crypto_rsa_oaep_decrypt(devs[B2].enc, rc->wrapped,
	    rc->wrapped_len, k_rsa, sizeof(k_rsa), &k_len), 0);
	assert_int_equal(k_len, 32);
	assert_memory_equal(k_rsa, k_hpke, 32);

	/* The body: AES-256-GCM under K with AAD = HDR. */
	pt = malloc(env->ciphertext_len);
	assert_non_null(pt);
	assert_int_equal(crypto_aes_gcm_open(k_hpke, 32, env->nonce, hdr.b,
	    hdr.n, env->ciphertext, env->ciphertext_len, pt), 0);
	assert_int_equal(env->ciphertext_len - 16,
	    strlen("{\"type\":\"text/plain; charset=utf-8\","
	    "\"body\":\"a25vd24gYW5zd2Vy\"}"));
	assert_memory_equal(pt, "{\"type\":\"text/plain; charset=utf-8\","
	    "\"body\":\"a25vd24gYW5zd2Vy\"}", env->ciphertext_len - 16);
	free(pt);
	env_free(env);
	(void)state;
}

/* --- every bit of one envelope --- */

struct flip_stats {
	size_t flips;
};

/* Flips each of the bits in mask positions of len bytes at p in turn and
 * checks that B1 rejects the result at one of the allowed checks. */
static void
flip_bits(struct receiver *rx, struct env *env, uint8_t *p, size_t len,
    unsigned int bit_mask, enum env_check c1, enum env_check c2,
    struct flip_stats *st, const char *what)
{
	struct env_opened o;
	struct err_ctx e;
	char *json;
	size_t i, jlen;
	unsigned int b;
	int r;

	for (i = 0; i < len; i++) {
		for (b = 0; b < 8; b++) {
			if ((bit_mask & (1u << b)) == 0)
				continue;
			p[i] ^= (uint8_t)(1u << b);
			json = to_json(env, &jlen);
			r = open_as(rx, json, jlen, NULL, &o, &e);
			if (r != ERR_REJECTED ||
			    (o.failed != c1 && o.failed != c2))
				fail_msg("%s byte %zu bit %u: got %d at check "
				    "%d: %s", what, i, b, r, (int)o.failed,
				    err_msg(&e));
			assert_int_equal(e.code, ERR_REJECTED);
			env_opened_clear(&o);
			free(json);
			p[i] ^= (uint8_t)(1u << b);
			st->flips++;
		}
	}
}

/* The same for a hex id: flips bits of the decoded bytes. */
static void
flip_hex(struct receiver *rx, struct env *env, char *hex,
    enum env_check c1, enum env_check c2, struct flip_stats *st,
    const char *what)
{
	uint8_t raw[32];
	struct env_opened o;
	struct err_ctx e;
	char *json, saved[ENV_DEVICE_LEN + 1];
	size_t i, jlen;
	int b, r;

	strcpy(saved, hex);
	assert_int_equal(hex_decode(hex, 64, raw, 32), 0);
	for (i = 0; i < 32; i++) {
		for (b = 0; b < 8; b++) {
			raw[i] ^= (uint8_t)(1u << b);
			hex_encode(raw, 32, hex);
			json = to_json(env, &jlen);
			r = open_as(rx, json, jlen, NULL, &o, &e);
			if (r != ERR_REJECTED ||
			    (o.failed != c1 && o.failed != c2))
				fail_msg("%s byte %zu bit %d: got %d at check "
				    "%d: %s", what, i, b, r, (int)o.failed,
				    err_msg(&e));
			env_opened_clear(&o);
			free(json);
			raw[i] ^= (uint8_t)(1u << b);
			st->flips++;
		}
	}
	strcpy(hex, saved);
}

/*
 * The same for an integer.  Values above 2^53 cannot be written: JSON
 * integers in devid stop there (docs/protocol.md), so env_to_json() may
 * refuse, and the parser rejects what an attacker could write instead
 * (test_huge_integers).
 */
static void
flip_u64(struct receiver *rx, struct env *env, uint64_t *v,
    struct flip_stats *st)
{
	struct env_opened o;
	struct err_ctx e;
	char *json = NULL;
	size_t len;
	int i, r;

	for (i = 0; i < 64; i++) {
		*v ^= (uint64_t)1 << i;
		r = env_to_json(env, &json, &len);
		if (r == ERR_INVALID_ARG) {
			assert_true(*v > ENV_JSON_INT_MAX);
		} else {
			assert_int_equal(r, 0);
			r = open_as(rx, json, len, NULL, &o, &e);
			if (r != ERR_REJECTED ||
			    !(o.failed == ENV_CHECK_SIGNATURE ||
			    (o.failed == ENV_CHECK_PARSE &&
			    *v > ENV_JSON_INT_MAX)))
				fail_msg("integer bit %d: got %d at check %d: "
				    "%s", i, r, (int)o.failed, err_msg(&e));
			env_opened_clear(&o);
			free(json);
		}
		*v ^= (uint64_t)1 << i;
		st->flips++;
	}
}

static void
test_every_bit_flip_rejected(void **state)
{
	static const int to[] = { B1, B2 };
	struct flip_stats st = { 0 };
	struct receiver rx;
	struct env *env;
	char *json;
	size_t i, len;

	env = seal_to(A1, to, 2, "hi");
	receiver_of(&rx, B1);
	json = to_json(env, &len);
	expect_opens(&rx, json, len, "hi");
	free(json);
	/* From here on B1 has seen it: forget, so that every rejection
	 * below comes from the flipped bit and not from the replay store. */
	rx.n_seen = 0;

	flip_bits(&rx, env, env->id, sizeof(env->id), 0xff,
	    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "id");
	flip_bits(&rx, env, env->nonce, sizeof(env->nonce), 0xff,
	    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "nonce");
	flip_bits(&rx, env, env->ciphertext, env->ciphertext_len, 0xff,
	    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "ciphertext");
	flip_bits(&rx, env, env->sig, sizeof(env->sig), 0xff,
	    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "sig");
	flip_u64(&rx, env, &env->sent, &st);
	/* Another sender device is unknown; ASCII text flips of names make
	 * invalid or other names. */
	flip_hex(&rx, env, env->sender_device, ENV_CHECK_SENDER,
	    ENV_CHECK_SENDER, &st, "sender device");
	flip_bits(&rx, env, (uint8_t *)env->sender_account,
	    strlen(env->sender_account), 0x7f, ENV_CHECK_PARSE,
	    ENV_CHECK_SENDER, &st, "sender account");
	for (i = 0; i < env->n_to; i++) {
		flip_bits(&rx, env, (uint8_t *)env->to[i], strlen(env->to[i]),
		    0x7f, ENV_CHECK_PARSE, ENV_CHECK_SIGNATURE, &st, "to");
		flip_bits(&rx, env, (uint8_t *)env->views[i].account,
		    strlen(env->views[i].account), 0x7f, ENV_CHECK_PARSE,
		    ENV_CHECK_PARSE, &st, "view account");
		flip_u64(&rx, env, &env->views[i].seq, &st);
		flip_u64(&rx, env, &env->views[i].time, &st);
		flip_bits(&rx, env, env->views[i].hash, 32, 0xff,
		    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st,
		    "view hash");
		flip_bits(&rx, env, env->views[i].sig, 64, 0xff,
		    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "view sig");
	}
	for (i = 0; i < env->n_recipients; i++) {
		/* A flipped device id may break the order (parse). */
		flip_hex(&rx, env, env->recipients[i].device,
		    ENV_CHECK_SIGNATURE, ENV_CHECK_PARSE, &st,
		    "recipient device");
		if (env->recipients[i].alg == TOKEN_ENC_HPKE_P256)
			flip_bits(&rx, env, env->recipients[i].enc,
			    HPKE_ENC_LEN, 0xff, ENV_CHECK_SIGNATURE,
			    ENV_CHECK_PARSE, &st, "enc");
		flip_bits(&rx, env, env->recipients[i].wrapped,
		    env->recipients[i].wrapped_len, 0xff,
		    ENV_CHECK_SIGNATURE, ENV_CHECK_SIGNATURE, &st, "wrapped");
	}
	/* The algorithm name is signed too. */
	env->recipients[0].alg = env->recipients[0].alg == TOKEN_ENC_RSA_OAEP ?
	    TOKEN_ENC_HPKE_P256 : TOKEN_ENC_RSA_OAEP;
	expect_env_rejected(&rx, env, ENV_CHECK_PARSE, NULL);
	st.flips++;
	assert_true(st.flips > 5000);

	/* Untouched, it still opens. */
	env->recipients[0].alg = env->recipients[0].alg == TOKEN_ENC_RSA_OAEP ?
	    TOKEN_ENC_HPKE_P256 : TOKEN_ENC_RSA_OAEP;
	json = to_json(env, &len);
	expect_opens(&rx, json, len, "hi");
	free(json);
	env_free(env);
	(void)state;
}

/* --- attacks --- */

static void
test_signature_stripped_or_zero(void **state)
{
	static const int to[] = { B1 };
	struct receiver rx;
	struct env *env;
	json_t *root;
	char *json, *s;
	size_t len;

	env = seal_to(A1, to, 1, "signed");
	receiver_of(&rx, B1);
	json = to_json(env, &len);
	root = json_loadb(json, len, 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_object_del(root, "sig"), 0);
	s = json_dumps(root, JSON_COMPACT);
	expect_open_rejected(&rx, s, strlen(s), ENV_CHECK_PARSE, "\"sig\"");
	free(s);
	json_decref(root);
	free(json);

	memset(env->sig, 0, sizeof(env->sig));
	expect_env_rejected(&rx, env, ENV_CHECK_SIGNATURE, "does not verify");
	env_free(env);
	(void)state;
}

static void
remove_recipient(struct env *env, const char *device)
{
	size_t i;

	for (i = 0; i < env->n_recipients; i++) {
		if (strcmp(env->recipients[i].device, device) != 0)
			continue;
		free(env->recipients[i].wrapped);
		memmove(&env->recipients[i], &env->recipients[i + 1],
		    (env->n_recipients - i - 1) * sizeof(env->recipients[0]));
		env->n_recipients--;
		return;
	}
	fail_msg("no recipient %s", device);
}

/*
 * The 2016 iMessage attack: someone holding another registered device of
 * the sender's account (A2) takes A1's envelope, claims to be A2 and signs
 * it anew.  Checks 2-4 pass (A2 is a real, active device and the new
 * signature is good); what stops it is that HDR, which names the sender
 * device, is the AAD of every HPKE wrap (as H(HDR)) and of the body.
 */
static void
test_resigned_by_other_own_device(void **state)
{
	static const int to[] = { B1, B2, A2 };
	struct receiver rx;
	struct env *env;

	env = seal_to(A1, to, 3, "from A1");
	strcpy(env->sender_device, devs[A2].id);
	remove_recipient(env, devs[A2].id);
	resign(env, A2);

	/* HPKE recipient: the wrap's AAD H(HDR) no longer matches. */
	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	/* RSA-OAEP has no AAD: K comes out, the body's AAD = HDR stops it. */
	receiver_of(&rx, B2);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "AES-256-GCM");
	assert_int_equal(rx.n_seen, 0);

	/* Without the new signature it fails at the signature. */
	resign(env, A1);
	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_SIGNATURE, NULL);
	env_free(env);
	(void)state;
}

/* A header field changed and signed again by the real sender still fails:
 * HDR is the AAD of the wraps and of the body. */
static void
test_resigned_header_change(void **state)
{
	static const int to[] = { B1, B2 };
	struct receiver rx;
	struct env *env;

	env = seal_to(A1, to, 2, "when?");
	env->sent++;
	resign(env, A1);
	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	receiver_of(&rx, B2);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "AES-256-GCM");
	env->sent--;

	/* The body itself, re-signed: the GCM tag. */
	env->ciphertext[0] ^= 1;
	resign(env, A1);
	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "AES-256-GCM");
	env->ciphertext[0] ^= 1;

	/* RSA wrap, re-signed: the OAEP padding. */
	find_recipient(env, B2)->wrapped[10] ^= 1;
	resign(env, A1);
	receiver_of(&rx, B2);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "RSA-OAEP");
	env_free(env);
	(void)state;
}

/* A's copy of K put into B's slot: signed, so a directory cannot; and
 * even the sender cannot, since the HPKE info names the device. */
static void
test_wrap_moved_to_other_slot(void **state)
{
	static const int to[] = { B1, A2 };
	struct env_recipient *b1, *a2, tmp;
	struct receiver rx;
	struct env *env;

	env = seal_to(A1, to, 2, "mine");
	b1 = find_recipient(env, B1);
	a2 = find_recipient(env, A2);
	tmp = *b1;
	memcpy(b1->enc, a2->enc, HPKE_ENC_LEN);
	b1->wrapped = a2->wrapped;
	memcpy(a2->enc, tmp.enc, HPKE_ENC_LEN);
	a2->wrapped = tmp.wrapped;

	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_SIGNATURE, NULL);
	resign(env, A1);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	receiver_of(&rx, A2);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	env_free(env);
	(void)state;
}

/*
 * Two device ids with one and the same encryption key (a record may name
 * any public key as its encryption key).  Only the device id in the HPKE
 * info tells their wraps apart: swapped and re-signed, neither opens.
 */
static void
test_wrap_bound_to_device_id(void **state)
{
	struct env_recipient_key rk[2];
	struct env_recipient *mine, *twin, tmp;
	char twin_id[ENV_DEVICE_LEN + 1];
	struct receiver rx;
	struct env *env;
	uint8_t *p;
	size_t len;

	random_device_id(twin_id);
	rk[0].device = devs[B1].id;
	rk[0].alg = TOKEN_ENC_HPKE_P256;
	rk[0].enc_pub = devs[B1].enc;
	rk[1].device = twin_id;
	rk[1].alg = TOKEN_ENC_HPKE_P256;
	rk[1].enc_pub = devs[B1].enc;
	p = make_payload("text/plain; charset=utf-8", (const uint8_t *)"twin",
	    4, NULL, &len);
	env = seal_keys(A1, rk, 2, p, len);
	free(p);
	mine = find_recipient(env, B1);
	twin = mine == &env->recipients[0] ? &env->recipients[1] :
	    &env->recipients[0];
	tmp = *mine;
	memcpy(mine->enc, twin->enc, HPKE_ENC_LEN);
	mine->wrapped = twin->wrapped;
	memcpy(twin->enc, tmp.enc, HPKE_ENC_LEN);
	twin->wrapped = tmp.wrapped;
	resign(env, A1);

	receiver_of(&rx, B1);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	receiver_init(&rx, twin_id, devs[B1].enc, TOKEN_ENC_HPKE_P256);
	expect_env_rejected(&rx, env, ENV_CHECK_DECRYPT, "HPKE");
	env_free(env);
	(void)state;
}

/* Loads json, lets fn change the tree, returns the new text. */
static char *
mutate_json(const char *json, size_t len, void (*fn)(json_t *root))
{
	json_t *root;
	char *s;

	root = json_loadb(json, len, 0, NULL);
	assert_non_null(root);
	fn(root);
	s = json_dumps(root, JSON_COMPACT);
	assert_non_null(s);
	json_decref(root);
	return s;
}

/* Runs fn on a fresh envelope to B1 and B2 and expects a parse failure
 * with code want from env_parse and check 1 from env_open. */
static void
expect_parse_fails(void (*fn)(json_t *root), int want, const char *detail)
{
	static const int to[] = { B1, B2 };
	struct receiver rx;
	struct env *env, *parsed = NULL;
	struct err_ctx e;
	char *json, *bad;
	size_t len;
	int r;

	env = seal_to(A1, to, 2, "parse me");
	json = to_json(env, &len);
	bad = mutate_json(json, len, fn);
	err_clear(&e);
	r = env_parse((const uint8_t *)bad, strlen(bad), NULL, &parsed, &e);
	if (r != want)
		fail_msg("want %d, got %d: %s", want, r, err_msg(&e));
	assert_null(parsed);
	if (detail != NULL && strstr(e.msg, detail) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, detail);
	receiver_of(&rx, B1);
	expect_open_rejected(&rx, bad, strlen(bad), ENV_CHECK_PARSE, detail);
	free(bad);
	free(json);
	env_free(env);
}

static void
mut_swap_recipients(json_t *root)
{
	json_t *arr = json_object_get(root, "recipients"), *first;

	first = json_incref(json_array_get(arr, 0));
	assert_int_equal(json_array_remove(arr, 0), 0);
	assert_int_equal(json_array_append_new(arr, first), 0);
}

static void
mut_dup_recipient(json_t *root)
{
	json_t *arr = json_object_get(root, "recipients");

	assert_int_equal(json_array_insert_new(arr, 0,
	    json_deep_copy(json_array_get(arr, 0))), 0);
}

static void
mut_no_recipients(json_t *root)
{
	json_array_clear(json_object_get(root, "recipients"));
}

static void
mut_swap_to(json_t *root)
{
	json_t *arr = json_object_get(root, "to"), *first;

	first = json_incref(json_array_get(arr, 0));
	assert_int_equal(json_array_remove(arr, 0), 0);
	assert_int_equal(json_array_append_new(arr, first), 0);
	arr = json_object_get(root, "views");
	first = json_incref(json_array_get(arr, 0));
	assert_int_equal(json_array_remove(arr, 0), 0);
	assert_int_equal(json_array_append_new(arr, first), 0);
}

static void
mut_dup_to(json_t *root)
{
	json_t *arr = json_object_get(root, "to");

	assert_int_equal(json_array_set_new(arr, 1,
	    json_string(json_string_value(json_array_get(arr, 0)))), 0);
}

static void
mut_swap_views(json_t *root)
{
	json_t *arr = json_object_get(root, "views"), *first;

	first = json_incref(json_array_get(arr, 0));
	assert_int_equal(json_array_remove(arr, 0), 0);
	assert_int_equal(json_array_append_new(arr, first), 0);
}

static void
mut_drop_view(json_t *root)
{
	assert_int_equal(json_array_remove(json_object_get(root, "views"), 1),
	    0);
}

static void
mut_sender_is_recipient(json_t *root)
{
	json_t *sender = json_object_get(root, "sender");

	assert_int_equal(json_object_set_new(sender, "device",
	    json_deep_copy(json_object_get(json_array_get(json_object_get(root,
	    "recipients"), 0), "device"))), 0);
}

static void
mut_sender_not_in_to(json_t *root)
{
	assert_int_equal(json_object_set_new(json_object_get(root, "sender"),
	    "account", json_string("carol@example.org")), 0);
}

static void
test_recipient_and_to_order(void **state)
{
	expect_parse_fails(mut_swap_recipients, ERR_FORMAT, "sorted");
	expect_parse_fails(mut_dup_recipient, ERR_FORMAT, "sorted");
	expect_parse_fails(mut_no_recipients, ERR_FORMAT, "no recipients");
	expect_parse_fails(mut_swap_to, ERR_FORMAT, "sorted");
	expect_parse_fails(mut_dup_to, ERR_FORMAT, "sorted");
	expect_parse_fails(mut_swap_views, ERR_FORMAT, "views");
	expect_parse_fails(mut_drop_view, ERR_FORMAT, "views");
	expect_parse_fails(mut_sender_is_recipient, ERR_FORMAT,
	    "sender device");
	expect_parse_fails(mut_sender_not_in_to, ERR_FORMAT,
	    "sender's account");
	(void)state;
}

static void
mut_v2(json_t *r)
{
	json_object_set_new(r, "v", json_integer(2));
}
static void
mut_v0(json_t *r)
{
	json_object_set_new(r, "v", json_integer(0));
}
static void
mut_vstr(json_t *r)
{
	json_object_set_new(r, "v", json_string("1"));
}
static void
mut_vreal(json_t *r)
{
	json_object_set_new(r, "v", json_real(1.0));
}
static void
mut_vtrue(json_t *r)
{
	json_object_set_new(r, "v", json_true());
}

static void
test_wrong_version(void **state)
{
	expect_parse_fails(mut_v2, ERR_FORMAT, "version 2");
	expect_parse_fails(mut_v0, ERR_FORMAT, "version 0");
	expect_parse_fails(mut_vstr, ERR_FORMAT, "\"v\"");
	expect_parse_fails(mut_vreal, ERR_FORMAT, "\"v\"");
	expect_parse_fails(mut_vtrue, ERR_FORMAT, "\"v\"");
	(void)state;
}

/* Replaces the string member key of obj with fn(old value). */
static void
edit_string(json_t *obj, const char *key, const char *prefix,
    size_t keep, const char *suffix)
{
	const char *old = json_string_value(json_object_get(obj, key));
	char buf[4096];

	assert_non_null(old);
	assert_true(keep <= strlen(old));
	snprintf(buf, sizeof(buf), "%s%.*s%s", prefix, (int)keep, old, suffix);
	assert_int_equal(json_object_set_new(obj, key, json_string(buf)), 0);
}

static size_t
slen(json_t *obj, const char *key)
{
	return strlen(json_string_value(json_object_get(obj, key)));
}

static void
mut_id_short(json_t *r)
{
	edit_string(r, "id", "", slen(r, "id") - 1, "");
}
static void
mut_id_pad(json_t *r)
{
	edit_string(r, "id", "", slen(r, "id"), "==");
}
static void
mut_id_space(json_t *r)
{
	edit_string(r, "id", " ", slen(r, "id"), "");
}
static void
mut_id_plus(json_t *r)
{
	edit_string(r, "id", "+", slen(r, "id") - 1, "");
}
static void
mut_id_long(json_t *r)
{
	edit_string(r, "id", "", slen(r, "id"), "AAAA");
}
static void
mut_nonce_nl(json_t *r)
{
	edit_string(r, "nonce", "", slen(r, "nonce"), "\n");
}
static void
mut_sig_std_b64(json_t *r)
{
	/* Same length, one character from the standard alphabet. */
	edit_string(r, "sig", "/", slen(r, "sig") - 1, "");
}

static void
mut_id_noncanonical(json_t *r)
{
	/* 16 bytes = 22 characters; the last one carries 4 unused bits. */
	const char *old = json_string_value(json_object_get(r, "id"));
	char buf[32];
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *pos;

	assert_int_equal(strlen(old), 22);
	memcpy(buf, old, 23);
	pos = strchr(alphabet, buf[21]);
	assert_non_null(pos);
	buf[21] = alphabet[((pos - alphabet) & ~3) | 1];
	json_object_set_new(r, "id", json_string(buf));
}

static void
mut_ct_short(json_t *r)
{
	/* 15 bytes: shorter than the GCM tag. */
	json_object_set_new(r, "ciphertext",
	    json_string("AAAAAAAAAAAAAAAAAAAA"));
}

static void
test_bad_base64url(void **state)
{
	expect_parse_fails(mut_id_short, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_id_pad, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_id_space, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_id_plus, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_id_long, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_id_noncanonical, ERR_FORMAT, "\"id\"");
	expect_parse_fails(mut_nonce_nl, ERR_FORMAT, "\"nonce\"");
	expect_parse_fails(mut_sig_std_b64, ERR_FORMAT, "\"sig\"");
	expect_parse_fails(mut_ct_short, ERR_FORMAT, "ciphertext");
	(void)state;
}

static const char *const root_members[] = {
	"v", "id", "sender", "sent", "to", "views", "recipients", "nonce",
	"ciphertext", "sig"
};
static size_t drop_index;

static void
mut_drop_root(json_t *r)
{
	assert_int_equal(json_object_del(r, root_members[drop_index]), 0);
}

static void
mut_drop_sender_dev(json_t *r)
{
	json_object_del(json_object_get(r, "sender"), "device");
}
static void
mut_drop_wrapped(json_t *r)
{
	json_object_del(json_array_get(json_object_get(r, "recipients"), 1),
	    "wrapped");
}
static void
mut_drop_enc(json_t *r)
{
	size_t i;
	json_t *rc;

	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "hpke-p256") == 0)
			json_object_del(rc, "enc");
	}
}
static void
mut_drop_view_sig(json_t *r)
{
	json_object_del(json_array_get(json_object_get(r, "views"), 0), "sig");
}

static void
test_missing_fields(void **state)
{
	char want[32];

	for (drop_index = 0; drop_index < 10; drop_index++) {
		snprintf(want, sizeof(want), "\"%s\" is missing",
		    root_members[drop_index]);
		expect_parse_fails(mut_drop_root, ERR_FORMAT, want);
	}
	expect_parse_fails(mut_drop_sender_dev, ERR_FORMAT, "\"device\"");
	expect_parse_fails(mut_drop_wrapped, ERR_FORMAT, "\"wrapped\"");
	expect_parse_fails(mut_drop_enc, ERR_FORMAT, "\"enc\"");
	expect_parse_fails(mut_drop_view_sig, ERR_FORMAT, "sig");
	(void)state;
}

static void
mut_extra_root(json_t *r)
{
	json_object_set_new(r, "cc", json_string("x"));
}
static void
mut_extra_sender(json_t *r)
{
	json_object_set_new(json_object_get(r, "sender"), "label",
	    json_string("x"));
}
static void
mut_extra_recipient(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "recipients"),
	    0), "note", json_string("x"));
}
static void
mut_extra_view(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "views"), 0),
	    "note", json_string("x"));
}
static void
mut_enc_on_rsa(json_t *r)
{
	size_t i;
	json_t *rc;

	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "rsa-oaep-sha256") == 0)
			json_object_set_new(rc, "enc", json_string(""));
	}
}
static void
mut_alg_unknown(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "recipients"),
	    0), "alg", json_string("x25519"));
}

static void
test_unknown_fields(void **state)
{
	expect_parse_fails(mut_extra_root, ERR_FORMAT, "unknown member");
	expect_parse_fails(mut_extra_sender, ERR_FORMAT, "unknown member");
	expect_parse_fails(mut_extra_recipient, ERR_FORMAT, "unknown");
	expect_parse_fails(mut_extra_view, ERR_FORMAT, NULL);
	expect_parse_fails(mut_enc_on_rsa, ERR_FORMAT, "unknown member");
	expect_parse_fails(mut_alg_unknown, ERR_FORMAT, "unknown algorithm");
	(void)state;
}

static void
mut_sent_str(json_t *r)
{
	json_object_set_new(r, "sent", json_string("1764400123"));
}
static void
mut_sent_neg(json_t *r)
{
	json_object_set_new(r, "sent", json_integer(-1));
}
static void
mut_to_str(json_t *r)
{
	json_object_set_new(r, "to", json_string(ALICE));
}
static void
mut_to_num(json_t *r)
{
	json_array_set_new(json_object_get(r, "to"), 0, json_integer(1));
}
static void
mut_recips_obj(json_t *r)
{
	json_object_set_new(r, "recipients", json_object());
}
static void
mut_sender_str(json_t *r)
{
	json_object_set_new(r, "sender", json_string(ALICE));
}
static void
mut_view_not_obj(json_t *r)
{
	json_array_set_new(json_object_get(r, "views"), 0, json_string(ALICE));
}

static void
test_wrong_types(void **state)
{
	expect_parse_fails(mut_sent_str, ERR_FORMAT, "\"sent\"");
	expect_parse_fails(mut_sent_neg, ERR_FORMAT, "\"sent\"");
	expect_parse_fails(mut_to_str, ERR_FORMAT, "\"to\"");
	expect_parse_fails(mut_to_num, ERR_FORMAT, "\"to\"");
	expect_parse_fails(mut_recips_obj, ERR_FORMAT, "\"recipients\"");
	expect_parse_fails(mut_sender_str, ERR_FORMAT, "\"sender\"");
	expect_parse_fails(mut_view_not_obj, ERR_FORMAT, "view");
	(void)state;
}

static void
mut_long_account(json_t *r)
{
	char name[200];

	memset(name, 'a', 129);
	name[129] = '\0';
	json_object_set_new(json_object_get(r, "sender"), "account",
	    json_string(name));
}
static void
mut_upper_account(json_t *r)
{
	json_object_set_new(json_object_get(r, "sender"), "account",
	    json_string("Alice@example.org"));
}
static void
mut_dot_account(json_t *r)
{
	json_array_set_new(json_object_get(r, "to"), 0, json_string(".alice"));
}
static void
mut_upper_device(json_t *r)
{
	json_t *s = json_object_get(r, "sender");
	char buf[80];

	strcpy(buf, json_string_value(json_object_get(s, "device")));
	buf[0] = 'A';
	json_object_set_new(s, "device", json_string(buf));
}
static void
mut_short_device(json_t *r)
{
	edit_string(json_object_get(r, "sender"), "device", "", 63, "");
}
static void
mut_long_device(json_t *r)
{
	edit_string(json_object_get(r, "sender"), "device", "", 64, "0");
}
static void
mut_wrapped_long(json_t *r)
{
	json_t *rc;
	size_t i;

	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "hpke-p256") == 0)
			edit_string(rc, "wrapped", "", slen(rc, "wrapped"),
			    "AA");
	}
}
static void
mut_rsa_wrapped_short(json_t *r)
{
	json_t *rc;
	size_t i;
	char text[341];

	/* 340 characters: valid base64url of 255 bytes. */
	memset(text, 'A', 340);
	text[340] = '\0';
	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "rsa-oaep-sha256") == 0)
			json_object_set_new(rc, "wrapped", json_string(text));
	}
}
static void
mut_rsa_wrapped_huge(json_t *r)
{
	json_t *rc;
	size_t i;
	char *big = malloc(4096);

	assert_non_null(big);
	memset(big, 'A', 4095);
	big[4095] = '\0';
	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "rsa-oaep-sha256") == 0)
			json_object_set_new(rc, "wrapped", json_string(big));
	}
	free(big);
}
static void
mut_rsa_wrapped_4096(json_t *r)
{
	json_t *rc;
	size_t i;
	char text[684];

	/* 683 characters: valid base64url of 512 bytes (RSA 4096). */
	memset(text, 'A', 683);
	text[683] = '\0';
	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "rsa-oaep-sha256") == 0)
			json_object_set_new(rc, "wrapped", json_string(text));
	}
}
static void
mut_enc_short(json_t *r)
{
	json_t *rc;
	size_t i;

	json_array_foreach(json_object_get(r, "recipients"), i, rc) {
		if (strcmp(json_string_value(json_object_get(rc, "alg")),
		    "hpke-p256") == 0)
			edit_string(rc, "enc", "", slen(rc, "enc") - 2, "");
	}
}
static void
mut_view_hash_upper(json_t *r)
{
	json_t *v = json_array_get(json_object_get(r, "views"), 0);
	char buf[80];

	strcpy(buf, json_string_value(json_object_get(v, "hash")));
	buf[0] = 'F';
	json_object_set_new(v, "hash", json_string(buf));
}
static void
mut_view_seq0(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "views"), 0),
	    "seq", json_integer(0));
}

static void
test_oversized_and_malformed_fields(void **state)
{
	expect_parse_fails(mut_long_account, ERR_FORMAT, "sender account");
	expect_parse_fails(mut_upper_account, ERR_FORMAT, "sender account");
	expect_parse_fails(mut_dot_account, ERR_FORMAT, "\"to\"");
	expect_parse_fails(mut_upper_device, ERR_FORMAT, "sender device");
	expect_parse_fails(mut_short_device, ERR_FORMAT, "sender device");
	expect_parse_fails(mut_long_device, ERR_FORMAT, "sender device");
	expect_parse_fails(mut_wrapped_long, ERR_FORMAT, "\"wrapped\"");
	expect_parse_fails(mut_rsa_wrapped_short, ERR_FORMAT, "RSA");
	expect_parse_fails(mut_rsa_wrapped_huge, ERR_TOO_LARGE, "\"wrapped\"");
	expect_parse_fails(mut_rsa_wrapped_4096, ERR_TOO_LARGE, "\"wrapped\"");
	expect_parse_fails(mut_enc_short, ERR_FORMAT, "\"enc\"");
	expect_parse_fails(mut_view_hash_upper, ERR_FORMAT, NULL);
	expect_parse_fails(mut_view_seq0, ERR_FORMAT, NULL);
	(void)state;
}

static size_t fake_count;

static void
mut_many_recipients(json_t *r)
{
	json_t *arr = json_object_get(r, "recipients"), *rc;
	char id[ENV_DEVICE_LEN + 1];
	uint8_t point[HPKE_ENC_LEN] = { 0x04 }, wrapped[48] = { 0 };
	char *enc = NULL, *wr = NULL;
	size_t i;

	assert_int_equal(b64url_encode(point, sizeof(point), &enc), 0);
	assert_int_equal(b64url_encode(wrapped, sizeof(wrapped), &wr), 0);
	json_array_clear(arr);
	for (i = 0; i < fake_count; i++) {
		/* Sorted, unique ids: the count alone must be the problem. */
		snprintf(id, sizeof(id), "%064zx", i + 1);
		rc = json_object();
		json_object_set_new(rc, "device", json_string(id));
		json_object_set_new(rc, "alg", json_string("hpke-p256"));
		json_object_set_new(rc, "enc", json_string(enc));
		json_object_set_new(rc, "wrapped", json_string(wr));
		json_array_append_new(arr, rc);
	}
	free(enc);
	free(wr);
}

static void
test_too_many_recipients(void **state)
{
	static const int to[] = { B1, B2, A2 };
	struct env_limits lim = { 0, 2 };
	struct receiver rx;
	struct env_opened o;
	struct env *env, *parsed = NULL;
	struct err_ctx e;
	char *json;
	size_t len;
	int r;

	fake_count = ENV_MAX_RECIPIENTS + 1;
	expect_parse_fails(mut_many_recipients, ERR_TOO_LARGE, "recipients");
	/* Exactly the maximum gets past the parser (and fails later). */
	fake_count = ENV_MAX_RECIPIENTS;
	{
		static const int to1[] = { B1 };
		struct env *e1 = seal_to(A1, to1, 1, "x");
		char *j1, *bad;
		size_t l1;

		j1 = to_json(e1, &l1);
		bad = mutate_json(j1, l1, mut_many_recipients);
		err_clear(&e);
		r = env_parse((const uint8_t *)bad, strlen(bad), NULL, &parsed,
		    &e);
		if (r != 0)
			fail_msg("1024 recipients: %s", err_msg(&e));
		assert_int_equal(parsed->n_recipients, ENV_MAX_RECIPIENTS);
		env_free(parsed);
		parsed = NULL;
		receiver_of(&rx, B1);
		expect_open_rejected(&rx, bad, strlen(bad),
		    ENV_CHECK_SIGNATURE, NULL);
		free(bad);
		free(j1);
		env_free(e1);
	}

	/* A configured lower limit. */
	env = seal_to(A1, to, 3, "three");
	json = to_json(env, &len);
	err_clear(&e);
	assert_int_equal(env_parse((const uint8_t *)json, len, &lim, &parsed,
	    &e), ERR_TOO_LARGE);
	assert_null(parsed);
	receiver_of(&rx, B1);
	r = open_as(&rx, json, len, &lim, &o, &e);
	assert_rejected_at(r, &o, &e, ENV_CHECK_PARSE);
	env_opened_clear(&o);
	/* And a limit above the protocol's is a caller error. */
	lim.max_recipients = ENV_MAX_RECIPIENTS + 1;
	assert_int_equal(env_parse((const uint8_t *)json, len, &lim, &parsed,
	    NULL), ERR_INVALID_ARG);
	free(json);
	env_free(env);
	(void)state;
}

static void
test_size_limit(void **state)
{
	static const int to[] = { B1 };
	struct env_limits lim = { 0, 0 };
	struct receiver rx;
	struct env_opened o;
	struct env *env, *parsed = NULL;
	struct err_ctx e;
	char *json;
	size_t len;
	int r;

	env = seal_to(A1, to, 1, "sized");
	json = to_json(env, &len);
	lim.max_bytes = len;
	receiver_of(&rx, B1);
	r = open_as(&rx, json, len, &lim, &o, &e);
	assert_int_equal(r, 0);
	env_opened_clear(&o);
	lim.max_bytes = len - 1;
	err_clear(&e);
	assert_int_equal(env_parse((const uint8_t *)json, len, &lim, &parsed,
	    &e), ERR_TOO_LARGE);
	receiver_of(&rx, B1);
	r = open_as(&rx, json, len, &lim, &o, &e);
	assert_rejected_at(r, &o, &e, ENV_CHECK_PARSE);
	assert_non_null(strstr(e.msg, "bytes"));
	env_opened_clear(&o);
	free(json);
	env_free(env);
	(void)state;
}

/* Raw texts the tree mutations cannot make. */
static void
expect_text_rejected(const char *text, size_t len, int want,
    const char *detail)
{
	struct receiver rx;
	struct env *parsed = NULL;
	struct err_ctx e;
	int r;

	err_clear(&e);
	r = env_parse((const uint8_t *)text, len, NULL, &parsed, &e);
	if (r != want)
		fail_msg("want %d, got %d: %s", want, r, err_msg(&e));
	if (detail != NULL && strstr(e.msg, detail) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, detail);
	receiver_of(&rx, B1);
	expect_open_rejected(&rx, text, len, ENV_CHECK_PARSE, detail);
}

static void
test_deep_nesting_and_raw_text(void **state)
{
	static const int to[] = { B1 };
	struct env *env;
	char *json, *text;
	size_t len, i, depth = 100000;

	/* Deep nesting in an unknown member, and deep beyond any stack. */
	text = malloc(2 * depth + 64);
	assert_non_null(text);
	len = (size_t)sprintf(text, "{\"v\":1,\"x\":");
	for (i = 0; i < depth; i++)
		text[len++] = '[';
	for (i = 0; i < depth; i++)
		text[len++] = ']';
	text[len++] = '}';
	expect_text_rejected(text, len, ERR_FORMAT, "nested");
	len = (size_t)sprintf(text, "{\"sender\":{\"account\":[[\"a\"]]}}");
	expect_text_rejected(text, len, ERR_FORMAT, "nested");
	/* Brackets inside strings do not count. */
	len = (size_t)sprintf(text, "{\"v\":1,\"x\":\"[[[[[[\"}");
	expect_text_rejected(text, len, ERR_FORMAT, "unknown member");
	free(text);

	expect_text_rejected("", 0, ERR_FORMAT, "invalid JSON");
	expect_text_rejected("[]", 2, ERR_FORMAT, "not a JSON object");
	expect_text_rejected("1", 1, ERR_FORMAT, NULL);
	expect_text_rejected("{\"v\":1,\"v\":1}", 13, ERR_FORMAT,
	    "invalid JSON");

	env = seal_to(A1, to, 1, "raw");
	json = to_json(env, &len);
	/* Trailing bytes after the object. */
	text = malloc(len + 8);
	assert_non_null(text);
	memcpy(text, json, len);
	memcpy(text + len, " {}", 3);
	expect_text_rejected(text, len + 3, ERR_FORMAT, "invalid JSON");
	/* A duplicate member. */
	memcpy(text, "{\"v\":1,", 7);
	memcpy(text + 7, json + 1, len - 1);
	expect_text_rejected(text, len + 6, ERR_FORMAT, "invalid JSON");
	/* A NUL inside a string. */
	free(text);
	text = strdup(json);
	assert_non_null(text);
	free(json);
	json = NULL;
	{
		const char *at = strstr(text, "alice@example.org");
		char *buf;
		size_t pre;

		assert_non_null(at);
		pre = (size_t)(at - text);
		buf = malloc(strlen(text) + 16);
		assert_non_null(buf);
		memcpy(buf, text, pre);
		memcpy(buf + pre, "a\\u0000", 7);
		strcpy(buf + pre + 7, at + 1);
		expect_text_rejected(buf, strlen(buf), ERR_FORMAT, NULL);
		free(buf);
	}
	free(text);
	env_free(env);
	(void)state;
}

/*
 * The tree forms: env_parse_keep_tree() hands back the tree it parsed,
 * env_parse_tree() reads a tree as env_parse() reads the text, nesting
 * checked on the tree.
 */
static void
test_parse_tree(void **state)
{
	static const int to[] = { B1, B2 };
	struct env_limits lim = { 0, ENV_MAX_RECIPIENTS + 1 };
	struct env *env, *parsed = NULL;
	struct err_ctx e;
	json_t *kept = NULL, *root, *deep;
	char *json, *again;
	size_t len, len2, i;

	env = seal_to(A1, to, 2, "as a tree");
	json = to_json(env, &len);

	err_clear(&e);
	assert_int_equal(env_parse_keep_tree((const uint8_t *)json, len, NULL,
	    &parsed, &kept, &e), 0);
	root = json_loadb(json, len, 0, NULL);
	assert_non_null(root);
	assert_non_null(kept);
	assert_true(json_equal(kept, root));
	again = to_json(parsed, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(again, json, len);
	free(again);
	env_free(parsed);
	parsed = NULL;
	json_decref(kept);
	kept = NULL;

	assert_int_equal(env_parse_tree(root, NULL, &parsed, &e), 0);
	again = to_json(parsed, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(again, json, len);
	free(again);
	env_free(parsed);
	parsed = NULL;
	assert_int_equal(env_parse_tree(root, &lim, &parsed, &e),
	    ERR_INVALID_ARG);
	assert_null(parsed);

	/* A failure leaves both out-parameters alone. */
	err_clear(&e);
	assert_int_equal(env_parse_keep_tree((const uint8_t *)json, len - 1,
	    NULL, &parsed, &kept, &e), ERR_FORMAT);
	assert_null(parsed);
	assert_null(kept);

	/* Nesting deeper than an envelope's, in an unknown member. */
	deep = json_array();
	for (i = 0; i < 3; i++)
		deep = json_pack("[o]", deep);
	assert_non_null(deep);
	assert_int_equal(json_object_set_new(root, "x", deep), 0);
	err_clear(&e);
	assert_int_equal(env_parse_tree(root, NULL, &parsed, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "nested deeper"));
	assert_null(parsed);
	json_decref(root);

	root = json_array();
	err_clear(&e);
	assert_int_equal(env_parse_tree(root, NULL, &parsed, &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "not a JSON object"));
	json_decref(root);
	free(json);
	env_free(env);
	(void)state;
}

/* Integers beyond what a u64 field may hold, written as raw text. */
static void
test_huge_integers(void **state)
{
	static const int to[] = { B1 };
	static const char *const bad[] = {
		"18446744073709551615", "9223372036854775808",
		"9007199254740993", "-1", "1e3", "1.0", "01", "\"1\"", "null",
	};
	struct env *env;
	char *json, *text, *at;
	size_t len, i, pre, tail;

	env = seal_to(A1, to, 1, "numbers");
	json = to_json(env, &len);
	at = strstr(json, "\"sent\":");
	assert_non_null(at);
	pre = (size_t)(at - json) + 7;
	tail = pre;
	while (json[tail] >= '0' && json[tail] <= '9')
		tail++;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = malloc(len + 32);
		assert_non_null(text);
		memcpy(text, json, pre);
		strcpy(text + pre, bad[i]);
		strcat(text, json + tail);
		expect_text_rejected(text, strlen(text), ERR_FORMAT, NULL);
		free(text);
	}
	free(json);
	env_free(env);
	(void)state;
}

/* --- replay, reflection, sender --- */

static void
test_replay(void **state)
{
	static const int to[] = { B1, B2, A2 };
	struct receiver b1, b2, a3;
	struct env *env;
	char *json;
	size_t len;

	env = seal_to(A1, to, 3, "once");
	json = to_json(env, &len);
	receiver_of(&b1, B1);
	expect_opens(&b1, json, len, "once");
	expect_open_rejected(&b1, json, len, ENV_CHECK_REPLAY, "seen");
	assert_int_equal(b1.n_seen, 1);

	/* Another device of the same account was addressed too: its own
	 * store has not seen it, so it opens once, and only once. */
	receiver_of(&b2, B2);
	expect_opens(&b2, json, len, "once");
	expect_open_rejected(&b2, json, len, ENV_CHECK_REPLAY, NULL);

	/* A device of the account that was not addressed: no copy. */
	receiver_of(&a3, A3);
	expect_open_rejected(&a3, json, len, ENV_CHECK_DECRYPT, "no copy");
	free(json);
	env_free(env);
	(void)state;
}

static void
test_reflection(void **state)
{
	static const int to[] = { B1, A2 };
	struct receiver rx;
	struct env *env;
	char *json;
	size_t len;

	env = seal_to(A1, to, 2, "mirror");
	json = to_json(env, &len);
	receiver_of(&rx, A1);
	expect_open_rejected(&rx, json, len, ENV_CHECK_SENDER, "reflection");
	free(json);
	env_free(env);
	(void)state;
}

static void
test_sender_checks(void **state)
{
	static const int to[] = { B1 };
	struct receiver rx;
	struct env *env;
	char *json;
	size_t len;

	env = seal_to(A1, to, 1, "who?");
	json = to_json(env, &len);
	receiver_of(&rx, B1);
	devs[A1].active = 0;
	expect_open_rejected(&rx, json, len, ENV_CHECK_SENDER, "revoked");
	devs[A1].active = 1;
	rx.lend_wrong_key = 1;
	expect_open_rejected(&rx, json, len, ENV_CHECK_SENDER,
	    "another device id");
	rx.lend_wrong_key = 0;
	expect_opens(&rx, json, len, "who?");
	free(json);

	/* A sender from another account claiming alice's device. */
	strcpy(env->sender_account, BOB);
	expect_env_rejected(&rx, env, ENV_CHECK_SENDER, "verified log");
	env_free(env);
	(void)state;
}

static void
test_gossip_split_view(void **state)
{
	static const int to[] = { B1 };
	struct receiver rx;
	struct env *env;
	char *json;
	size_t len;

	env = seal_to(A1, to, 1, "views");
	json = to_json(env, &len);
	receiver_of(&rx, B1);
	rx.known[0].hash[0] ^= 0xff;
	expect_open_rejected(&rx, json, len, ENV_CHECK_GOSSIP, "split view");
	assert_int_equal(rx.gossip_calls, 1);
	assert_int_equal(rx.n_seen, 0);
	/* Not recorded: once the views agree it opens. */
	rx.known[0] = views[0];
	expect_opens(&rx, json, len, "views");
	free(json);
	env_free(env);
	(void)state;
}

static void
test_token_failures(void **state)
{
	static const int to[] = { B1, B2 };
	struct receiver rx;
	struct env_opened o;
	struct err_ctx e;
	struct env *env;
	char *json;
	size_t len;
	int r, i;

	env = seal_to(A1, to, 2, "later");
	json = to_json(env, &len);
	for (i = 0; i < 2; i++) {
		receiver_of(&rx, i == 0 ? B1 : B2);
		/* A token that is away: not a verdict on the message. */
		rx.token_fail = ERR_TOKEN_NOT_PRESENT;
		r = open_as(&rx, json, len, NULL, &o, &e);
		assert_int_equal(r, ERR_TOKEN_NOT_PRESENT);
		assert_int_equal(o.failed, ENV_CHECK_DECRYPT);
		assert_non_null(strstr(e.msg, "try again"));
		assert_int_equal(rx.n_seen, 0);
		env_opened_clear(&o);
		/* A token error caused by the message is a rejection. */
		rx.token_fail = ERR_TOKEN;
		expect_open_rejected(&rx, json, len, ENV_CHECK_DECRYPT, NULL);
		rx.token_fail = 0;
		expect_opens(&rx, json, len, "later");
	}
	free(json);
	env_free(env);
	(void)state;
}

/* An authenticated envelope whose plaintext is not a valid payload. */
static void
test_bad_inner_payload(void **state)
{
	static const char *const bad[] = {
		"not json",
		"{\"type\":\"text/plain\"}",
		"{\"type\":\"text/plain\",\"body\":\"aGk=\"}",
		"{\"type\":\"text/plain\",\"body\":\"aGk\",\"name\":\"../x\"}",
		"{\"type\":\"text/plain\",\"body\":\"aGk\",\"x\":1}",
		"{\"type\":\"\",\"body\":\"aGk\"}",
		"{\"type\":\"text/plain\",\"body\":[\"aGk\"]}",
	};
	struct env_recipient_key rk;
	struct receiver rx;
	struct env *env;
	size_t i;

	rk.device = devs[B1].id;
	rk.alg = TOKEN_ENC_HPKE_P256;
	rk.enc_pub = devs[B1].enc;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env = seal_keys(A1, &rk, 1, (const uint8_t *)bad[i],
		    strlen(bad[i]));
		receiver_of(&rx, B1);
		expect_env_rejected(&rx, env, ENV_CHECK_PAYLOAD, "message");
		assert_int_equal(rx.n_seen, 0);
		env_free(env);
	}
	(void)state;
}

/* --- the inner payload --- */

static void
test_payload_roundtrip_and_names(void **state)
{
	static const char *const bad_names[] = {
		"", ".hidden", "..", "../etc/passwd", "a/b", "a\\b",
		"tab\there",
		"del\x7f", "c1\xc2\x85", "bad\xff", "over\xc0\xaf",
		"surrogate\xed\xa0\x80",
	};
	struct env_payload p;
	struct err_ctx e;
	uint8_t *enc = NULL, body[3] = { 0, 1, 2 };
	char longname[300], json[400];
	size_t len, i;

	enc = make_payload("image/png", body, 3, "r\xc3\xa9sum\xc3\xa9.png",
	    &len);
	err_clear(&e);
	assert_int_equal(env_payload_parse(enc, len, &p, &e), 0);
	assert_string_equal(p.type, "image/png");
	assert_string_equal(p.name, "r\xc3\xa9sum\xc3\xa9.png");
	assert_int_equal(p.body_len, 3);
	assert_memory_equal(p.body, body, 3);
	env_payload_clear(&p);
	assert_null(p.body);
	free(enc);

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		enc = NULL;
		assert_int_equal(env_payload_encode("text/plain", body, 3,
		    bad_names[i], &enc, &len, NULL), ERR_INVALID_ARG);
		assert_null(enc);
	}
	memset(longname, 'n', 256);
	longname[256] = '\0';
	assert_int_equal(env_payload_encode("text/plain", body, 3, longname,
	    &enc, &len, NULL), ERR_INVALID_ARG);
	longname[255] = '\0';
	enc = make_payload("text/plain", body, 3, longname, &len);
	free(enc);
	assert_int_equal(env_payload_encode("text/\x01", body, 3, NULL, &enc,
	    &len, NULL), ERR_INVALID_ARG);

	/* The parser applies the same rules to what arrives. */
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\","
	    "\"name\":\"%s\"}", ".profile");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\","
	    "\"name\":\"a\\u002fb\"}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\","
	    "\"name\":\"a\\u0085b\"}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\","
	    "\"name\":{}}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\","
	    "\"type\":\"u\"}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"AA==\"}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_FORMAT);
	assert_null(p.type);
	snprintf(json, sizeof(json), "{\"type\":\"t\",\"body\":\"\"}");
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), 0);
	assert_int_equal(p.body_len, 0);
	assert_null(p.name);
	env_payload_clear(&p);
	(void)state;
}

/* --- attachments in the inner payload (section 8.2) --- */

/* n blob references with distinct hashes, keys and names. */
static struct env_blob_ref *
make_blobs(size_t n)
{
	static char types[2][32] = { "image/png", "application/pdf" };
	struct env_blob_ref *b;
	size_t i, j;

	b = calloc(n, sizeof(*b));
	assert_non_null(b);
	for (i = 0; i < n; i++) {
		for (j = 0; j < 64; j++)
			b[i].hash[j] = "0123456789abcdef"[(i * 7 + j) % 16];
		b[i].hash[0] = "0123456789abcdef"[i % 16];
		b[i].hash[1] = "0123456789abcdef"[i / 16 % 16];
		b[i].hash[64] = '\0';
		b[i].size = i == 0 ? ENV_JSON_INT_MAX : (uint64_t)i * 1000;
		for (j = 0; j < sizeof(b[i].key); j++)
			b[i].key[j] = (uint8_t)(i * 31 + j * 5 + 1);
		b[i].type = types[i % 2];
		b[i].name = malloc(48);
		assert_non_null(b[i].name);
		snprintf(b[i].name, 48, "file %zu \xc3\xa9.bin", i);
	}
	return b;
}

static void
free_blobs(struct env_blob_ref *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(b[i].name);
	free(b);
}

/* Encodes a payload with n blobs, parses it back and compares. */
static void
blobs_roundtrip(size_t n)
{
	struct env_payload in, out;
	struct err_ctx e;
	uint8_t *enc = NULL, body[3] = { 'c', 'a', 'p' };
	size_t len, i;

	memset(&in, 0, sizeof(in));
	in.type = (char *)"text/plain; charset=utf-8";
	in.body = body;
	in.body_len = sizeof(body);
	in.blobs = make_blobs(n);
	in.n_blobs = n;
	err_clear(&e);
	if (env_payload_encode_full(&in, &enc, &len, &e) != 0)
		fail_msg("encode: %s", err_msg(&e));
	if (env_payload_parse(enc, len, &out, &e) != 0)
		fail_msg("parse: %s", err_msg(&e));
	assert_string_equal(out.type, in.type);
	assert_int_equal(out.body_len, 3);
	assert_memory_equal(out.body, body, 3);
	assert_null(out.name);
	assert_int_equal(out.n_blobs, n);
	for (i = 0; i < n; i++) {
		assert_string_equal(out.blobs[i].hash, in.blobs[i].hash);
		assert_int_equal(out.blobs[i].size, in.blobs[i].size);
		assert_memory_equal(out.blobs[i].key, in.blobs[i].key, 32);
		assert_string_equal(out.blobs[i].type, in.blobs[i].type);
		assert_string_equal(out.blobs[i].name, in.blobs[i].name);
	}
	env_payload_clear(&out);
	assert_null(out.blobs);
	assert_int_equal(out.n_blobs, 0);
	crypto_wipe(enc, len);
	free(enc);
	free_blobs(in.blobs, n);
}

static void
test_payload_blobs_roundtrip(void **state)
{
	static const char *const keys[] = {
		"hash", "size", "key", "type", "name"
	};
	struct env_payload p, in;
	uint8_t *enc = NULL;
	size_t len, i;
	json_t *root, *arr, *o;

	blobs_roundtrip(1);
	blobs_roundtrip(ENV_PAYLOAD_BLOBS_MAX);

	/* The wire form: members in order, key in base64url. */
	memset(&in, 0, sizeof(in));
	in.type = (char *)"text/plain";
	in.blobs = make_blobs(1);
	in.n_blobs = 1;
	memset(in.blobs[0].key, 0xff, 32);
	assert_int_equal(env_payload_encode_full(&in, &enc, &len, NULL), 0);
	root = json_loadb((const char *)enc, len, 0, NULL);
	assert_non_null(root);
	arr = json_object_get(root, "blobs");
	assert_int_equal(json_array_size(arr), 1);
	o = json_array_get(arr, 0);
	assert_int_equal(json_object_size(o), 5);
	for (i = 0; i < 5; i++)
		assert_non_null(json_object_get(o, keys[i]));
	assert_string_equal(json_string_value(json_object_get(o, "key")),
	    "__________________________________________8");
	json_decref(root);
	free(enc);
	free_blobs(in.blobs, 1);

	/* The body is found wherever "blobs" stands, even with a blob
	 * named "body". */
	static const char moved[] = "{\"blobs\":[{\"hash\":\""
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	    "\",\"size\":1,\"key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "\",\"type\":\"body\",\"name\":\"body\"}],\"type\":\"t\","
	    "\"body\":\"AAEC\"}";
	assert_int_equal(env_payload_parse((const uint8_t *)moved,
	    strlen(moved), &p, NULL), 0);
	assert_int_equal(p.body_len, 3);
	assert_int_equal(p.body[2], 2);
	assert_int_equal(p.n_blobs, 1);
	assert_string_equal(p.blobs[0].name, "body");
	env_payload_clear(&p);
	(void)state;
}

#define HASH_31A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_32A HASH_31A "a"
#define HASH_32A_UPPER "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define HASH_A HASH_32A HASH_32A
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" \
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_OK "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define ENTRY(hash, size, key, type, name) \
	"{\"hash\":" hash ",\"size\":" size ",\"key\":" key ",\"type\":" \
	type ",\"name\":" name "}"
#define GOOD(h) ENTRY("\"" h "\"", "5", "\"" KEY_OK "\"", "\"text/plain\"", \
	"\"f.txt\"")

/* Parses {"type","body","blobs": blobs}; the result must be want. */
static void
expect_blobs_parse(const char *blobs, int want)
{
	struct env_payload p;
	struct err_ctx e;
	char *json;
	size_t n = strlen(blobs) + 64;
	int r;

	json = malloc(n);
	assert_non_null(json);
	snprintf(json, n, "{\"type\":\"t\",\"body\":\"\",\"blobs\":%s}",
	    blobs);
	err_clear(&e);
	r = env_payload_parse((const uint8_t *)json, strlen(json), &p, &e);
	if (r != want)
		fail_msg("%d (%s) instead of %d for %s", r, err_msg(&e), want,
		    json);
	if (r == 0)
		env_payload_clear(&p);
	else {
		assert_null(p.blobs);
		assert_int_equal(p.n_blobs, 0);
		assert_null(p.type);
	}
	free(json);
}

static void
test_payload_blobs_parse_bad(void **state)
{
	static const char *const bad[] = {
		/* not an array of 1..16 objects */
		"{}", "\"x\"", "null", "1", "[]", "[1]", "[[]]", "[null]",
		/* duplicate hash */
		"[" GOOD(HASH_A) "," GOOD(HASH_B) "," GOOD(HASH_A) "]",
		/* the hash */
		"[" GOOD(HASH_32A HASH_32A_UPPER) "]",
		"[" GOOD(HASH_32A HASH_31A "A") "]",
		"[" GOOD(HASH_32A HASH_31A) "]",
		"[" GOOD(HASH_32A HASH_32A "a") "]",
		"[" GOOD("g" HASH_31A HASH_32A) "]",
		"[" GOOD("") "]",
		"[" ENTRY("1", "5", "\"" KEY_OK "\"", "\"t\"", "\"f\"") "]",
		/* the key: 31 and 33 bytes, not strict base64url */
		"[" ENTRY("\"" HASH_A "\"", "5",
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
		    "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5",
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
		    "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5",
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+\"",
		    "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5",
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\"",
		    "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5",
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
		    "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "32", "\"t\"", "\"f\"") "]",
		/* the size */
		"[" ENTRY("\"" HASH_A "\"", "5.5", "\"" KEY_OK "\"", "\"t\"",
		    "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5.0", "\"" KEY_OK "\"", "\"t\"",
		    "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "-1", "\"" KEY_OK "\"", "\"t\"",
		    "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "9007199254740993",
		    "\"" KEY_OK "\"", "\"t\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "\"5\"", "\"" KEY_OK "\"",
		    "\"t\"", "\"f\"") "]",
		/* the type */
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"\"",
		    "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"",
		    "\"text/\\u0001\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"",
		    "\"text/\xc3\xa9\"", "\"f\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "null",
		    "\"f\"") "]",
		/* the name */
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"a/b\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"a\\\\b\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\".hidden\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"..\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"a\\nb\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"a\\u0000b\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"a\\u0085b\"") "]",
		"[" ENTRY("\"" HASH_A "\"", "5", "\"" KEY_OK "\"", "\"t\"",
		    "\"\"") "]",
		/* members: unknown, missing, twice */
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\",\"name\":\"f\",\"x\":1}]",
		"[{\"size\":5,\"key\":\"" KEY_OK "\",\"type\":\"t\","
		    "\"name\":\"f\"}]",
		"[{\"hash\":\"" HASH_A "\",\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\",\"name\":\"f\"}]",
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"type\":\"t\","
		    "\"name\":\"f\"}]",
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"key\":\"" KEY_OK "\","
		    "\"name\":\"f\"}]",
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\"}]",
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\",\"name\":\"f\",\"name\":\"g\"}]",
		/* deeper than an entry */
		"[{\"hash\":\"" HASH_A "\",\"size\":5,\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\",\"name\":[\"f\"]}]",
	};
	char many[(ENV_PAYLOAD_BLOBS_MAX + 1) * 200], hash[65];
	size_t i, o;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_blobs_parse(bad[i], ERR_FORMAT);
	expect_blobs_parse("[" GOOD(HASH_A) "]", 0);
	expect_blobs_parse("[" ENTRY("\"" HASH_A "\"", "9007199254740992",
	    "\"" KEY_OK "\"", "\"t\"", "\"f\"") "]", 0);
	expect_blobs_parse("[" ENTRY("\"" HASH_A "\"", "0",
	    "\"" KEY_OK "\"", "\"t\"", "\"f\"") "]", 0);

	/* 16 entries are fine, 17 are not. */
	o = 0;
	many[o++] = '[';
	for (i = 0; i < ENV_PAYLOAD_BLOBS_MAX + 1; i++) {
		memset(hash, 'a', 64);
		hash[0] = "0123456789abcdef"[i % 16];
		hash[1] = "0123456789abcdef"[i / 16];
		hash[64] = '\0';
		o += (size_t)snprintf(many + o, sizeof(many) - o, "%s"
		    "{\"hash\":\"%s\",\"size\":%zu,\"key\":\"" KEY_OK "\","
		    "\"type\":\"t\",\"name\":\"f%zu\"}", i > 0 ? "," : "",
		    hash, i, i);
		if (i == ENV_PAYLOAD_BLOBS_MAX - 1) {
			many[o] = ']';
			many[o + 1] = '\0';
			expect_blobs_parse(many, 0);
		}
	}
	many[o++] = ']';
	many[o] = '\0';
	expect_blobs_parse(many, ERR_FORMAT);
	(void)state;
}

/* What the encoder refuses to write. */
static void
test_payload_blobs_encode_bad(void **state)
{
	struct env_payload p;
	struct env_blob_ref *b;
	uint8_t *enc = NULL;
	size_t len;
	char saved;

	b = make_blobs(ENV_PAYLOAD_BLOBS_MAX + 1);
	memset(&p, 0, sizeof(p));
	p.type = (char *)"t";
	p.blobs = b;
	p.n_blobs = ENV_PAYLOAD_BLOBS_MAX + 1;
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	p.n_blobs = 2;
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL), 0);
	free(enc);
	enc = NULL;

	memcpy(b[1].hash, b[0].hash, sizeof(b[0].hash));
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].hash[0] = b[0].hash[0] == 'a' ? 'b' : 'a';
	saved = b[1].hash[5];
	b[1].hash[5] = 'A';
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].hash[5] = saved;
	b[1].hash[63] = '\0';
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].hash[63] = 'c';
	b[1].size = ENV_JSON_INT_MAX + 1;
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].size = 1;
	b[1].name[0] = '.';
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].name[0] = 'f';
	b[1].type = NULL;
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL),
	    ERR_INVALID_ARG);
	b[1].type = (char *)"t";
	assert_int_equal(env_payload_encode_full(&p, &enc, &len, NULL), 0);
	assert_non_null(enc);
	free(enc);
	free_blobs(b, ENV_PAYLOAD_BLOBS_MAX + 1);
	(void)state;
}

/* A sealed message with attachments opens with them. */
static void
test_open_with_blobs(void **state)
{
	struct env_recipient_key rk;
	struct env_payload in;
	struct receiver rx;
	struct env_opened o;
	struct err_ctx e;
	struct env *env;
	uint8_t *p = NULL;
	size_t plen, len, i;
	char *json;

	memset(&in, 0, sizeof(in));
	in.type = (char *)"text/plain; charset=utf-8";
	in.body = (uint8_t *)"see attached";
	in.body_len = strlen("see attached");
	in.blobs = make_blobs(3);
	in.n_blobs = 3;
	assert_int_equal(env_payload_encode_full(&in, &p, &plen, NULL), 0);
	rk.device = devs[B1].id;
	rk.alg = TOKEN_ENC_HPKE_P256;
	rk.enc_pub = devs[B1].enc;
	env = seal_keys(A1, &rk, 1, p, plen);
	json = to_json(env, &len);
	receiver_of(&rx, B1);
	err_clear(&e);
	if (open_as(&rx, json, len, NULL, &o, &e) != 0)
		fail_msg("open: %s", err_msg(&e));
	assert_int_equal(o.payload.body_len, in.body_len);
	assert_int_equal(o.payload.n_blobs, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(o.payload.blobs[i].hash,
		    in.blobs[i].hash);
		assert_memory_equal(o.payload.blobs[i].key, in.blobs[i].key,
		    32);
		assert_string_equal(o.payload.blobs[i].name,
		    in.blobs[i].name);
	}
	env_opened_clear(&o);
	free(json);
	crypto_wipe(p, plen);
	free(p);
	env_free(env);
	free_blobs(in.blobs, 3);
	(void)state;
}

/* The optional "checkpoint" member of the inner payload (section 7.7). */
static void
test_payload_checkpoint(void **state)
{
	static const char note[] = "devid/x\n9\n"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
	    "\xe2\x80\x94 devid/x AAAAAAAAAA==\n";
	struct env_payload p;
	struct err_ctx e;
	uint8_t *enc = NULL, body[3] = { 0, 1, 2 };
	char *big, *json;
	size_t len;

	/* Round trip, with and without a name. */
	err_clear(&e);
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3, "f.txt",
	    note, &enc, &len, &e), 0);
	assert_int_equal(env_payload_parse(enc, len, &p, &e), 0);
	assert_non_null(p.checkpoint);
	assert_string_equal(p.checkpoint, note);
	assert_string_equal(p.name, "f.txt");
	assert_int_equal(p.body_len, 3);
	env_payload_clear(&p);
	assert_null(p.checkpoint);
	free(enc);
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3, NULL,
	    NULL, &enc, &len, &e), 0);
	assert_int_equal(env_payload_parse(enc, len, &p, &e), 0);
	assert_null(p.checkpoint);
	env_payload_clear(&p);
	free(enc);

	/* Bounds on both sides. */
	big = malloc(ENV_PAYLOAD_CHECKPOINT_MAX + 2);
	assert_non_null(big);
	memset(big, 'c', ENV_PAYLOAD_CHECKPOINT_MAX + 1);
	big[ENV_PAYLOAD_CHECKPOINT_MAX + 1] = '\0';
	enc = NULL;
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3, NULL,
	    big, &enc, &len, NULL), ERR_INVALID_ARG);
	assert_null(enc);
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3, NULL,
	    "", &enc, &len, NULL), ERR_INVALID_ARG);
	big[ENV_PAYLOAD_CHECKPOINT_MAX] = '\0';
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3, NULL,
	    big, &enc, &len, NULL), 0);
	assert_int_equal(env_payload_parse(enc, len, &p, NULL), 0);
	assert_int_equal(strlen(p.checkpoint), ENV_PAYLOAD_CHECKPOINT_MAX);
	env_payload_clear(&p);
	free(enc);

	json = malloc(ENV_PAYLOAD_CHECKPOINT_MAX + 128);
	assert_non_null(json);
	big[ENV_PAYLOAD_CHECKPOINT_MAX] = 'c';
	snprintf(json, ENV_PAYLOAD_CHECKPOINT_MAX + 128, "{\"type\":\"t\","
	    "\"body\":\"\",\"checkpoint\":\"%s\"}", big);
	assert_int_equal(env_payload_parse((const uint8_t *)json,
	    strlen(json), &p, NULL), ERR_TOO_LARGE);
	assert_null(p.type);
	free(json);
	free(big);

	/* The parser's negative cases. */
	static const char *const bad[] = {
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":\"\"}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":1}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":null}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":[\"a\"]}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":\"a\\u0000b\"}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoint\":\"a\","
		    "\"checkpoint\":\"b\"}",
		"{\"type\":\"t\",\"body\":\"\",\"checkpoints\":\"a\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (env_payload_parse((const uint8_t *)bad[i], strlen(bad[i]),
		    &p, &e) != ERR_FORMAT)
			fail_msg("accepted or wrong error: %s", bad[i]);
		assert_null(p.checkpoint);
		assert_null(p.type);
	}
	(void)state;
}

/* --- seal arguments --- */

static void
test_seal_rejects_bad_arguments(void **state)
{
	static const char *const to[] = { BOB, ALICE, BOB };
	static const char *const to_no_sender[] = { BOB };
	static const char *const to_bad[] = { ALICE, "Bob" };
	struct env_recipient_key rk[3];
	struct acctlog_head v3[3];
	struct env_seal_args a;
	struct env *env = NULL;
	struct err_ctx e;
	uint8_t payload[] = "{}";

	memset(&a, 0, sizeof(a));
	a.sender_account = ALICE;
	a.sender_device = devs[A1].id;
	a.sent = 1;
	a.to = to;
	a.n_to = 3;
	a.views = views;
	a.n_views = 2;
	rk[0].device = devs[B1].id;
	rk[0].alg = TOKEN_ENC_HPKE_P256;
	rk[0].enc_pub = devs[B1].enc;
	rk[1] = rk[0];
	a.recipients = rk;
	a.n_recipients = 1;
	a.payload = payload;
	a.payload_len = 2;
	a.sign = cb_sign;
	a.sign_arg = devs[A1].sig;

	/* Good, with "to" deduplicated and sorted. */
	assert_int_equal(env_seal(&a, &env, NULL), 0);
	assert_int_equal(env->n_to, 2);
	assert_string_equal(env->to[0], ALICE);
	env_free(env);
	env = NULL;

#define SEAL_FAILS(want, detail) do {					\
		err_clear(&e);						\
		assert_int_equal(env_seal(&a, &env, &e), (want));	\
		assert_null(env);					\
		if (strstr(e.msg, (detail)) == NULL)			\
			fail_msg("\"%s\" lacks \"%s\"", e.msg, (detail)); \
	} while (0)

	a.n_recipients = 2;
	SEAL_FAILS(ERR_INVALID_ARG, "twice");
	rk[1].device = devs[A1].id;
	SEAL_FAILS(ERR_INVALID_ARG, "sender device");
	rk[1].device = devs[B2].id;
	rk[1].alg = TOKEN_ENC_RSA_OAEP;        /* with an EC key */
	SEAL_FAILS(ERR_INVALID_ARG, "encryption key");
	rk[1].alg = TOKEN_ENC_NONE;
	rk[1].enc_pub = devs[B2].enc;
	SEAL_FAILS(ERR_INVALID_ARG, "encryption key");
	rk[1].alg = TOKEN_ENC_RSA_OAEP;
	rk[1].device = "0123";
	SEAL_FAILS(ERR_INVALID_ARG, "device id");
	rk[1].device = devs[B2].id;
	a.n_recipients = 0;
	SEAL_FAILS(ERR_INVALID_ARG, "recipient");
	a.n_recipients = 2;

	a.to = to_no_sender;
	a.n_to = 1;
	a.n_views = 1;
	a.views = &views[1];
	SEAL_FAILS(ERR_INVALID_ARG, "sender's account");
	a.to = to_bad;
	a.n_to = 2;
	a.views = views;
	a.n_views = 2;
	SEAL_FAILS(ERR_INVALID_ARG, "not a valid account");
	a.to = to;
	a.n_to = 3;
	a.n_views = 1;
	SEAL_FAILS(ERR_INVALID_ARG, "views");
	v3[0] = views[0];
	v3[1] = views[0];
	v3[2] = views[1];
	a.views = v3;
	a.n_views = 2;
	SEAL_FAILS(ERR_INVALID_ARG, "two views");
	a.views = views;
	a.sender_account = "Alice";
	SEAL_FAILS(ERR_INVALID_ARG, "sender account");
	a.sender_account = ALICE;
	a.sender_device = "nothex";
	SEAL_FAILS(ERR_INVALID_ARG, "sender device");
	a.sender_device = devs[A1].id;
	a.sent = ENV_JSON_INT_MAX + 1;
	SEAL_FAILS(ERR_INVALID_ARG, "send time");
	a.sent = ENV_JSON_INT_MAX;
	assert_int_equal(env_seal(&a, &env, NULL), 0);
	assert_int_equal(env->n_recipients, 2);
	env_free(env);
#undef SEAL_FAILS
	(void)state;
}

/* --- large members: decoded straight from the text --- */

/* jansson's own compact form of json: what every text devid writes must
 * be, byte for byte. */
static void
assert_jansson_form(const char *json, size_t len)
{
	json_t *root;
	char *again;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(root);
	again = json_dumps(root, JSON_COMPACT);
	assert_non_null(again);
	assert_int_equal(strlen(again), len);
	assert_memory_equal(again, json, len);
	free(again);
	json_decref(root);
}

/* A text of n characters 'a'..'z' for a message body (caller frees). */
static char *
long_text(size_t n)
{
	char *t;
	size_t i;

	t = malloc(n + 1);
	assert_non_null(t);
	for (i = 0; i < n; i++)
		t[i] = (char)('a' + i % 26);
	t[n] = '\0';
	return t;
}

/* The offset and length of the string value of member key ("key":"...")
 * in json, found by text. */
static void
find_value(const char *json, const char *key, size_t *start, size_t *len)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(json, pat);
	assert_non_null(p);
	p += strlen(pat);
	q = strchr(p, '"');
	assert_non_null(q);
	*start = (size_t)(p - json);
	*len = (size_t)(q - p);
}

/* json with its bytes [at, at + cut) replaced by ins (a new string). */
static char *
splice_text(const char *json, size_t at, size_t cut, const char *ins)
{
	size_t len = strlen(json), ins_len = strlen(ins);
	char *out;

	out = malloc(len - cut + ins_len + 1);
	assert_non_null(out);
	memcpy(out, json, at);
	memcpy(out + at, ins, ins_len);
	memcpy(out + at + ins_len, json + at + cut, len - at - cut + 1);
	return out;
}

static void
expect_text_parse_fails(const char *json, int want, const char *detail)
{
	struct env *env = NULL;
	struct err_ctx e;
	int r;

	err_clear(&e);
	r = env_parse((const uint8_t *)json, strlen(json), NULL, &env, &e);
	if (r != want)
		fail_msg("want %d, got %d: %s", want, r, err_msg(&e));
	assert_null(env);
	if (detail != NULL && strstr(e.msg, detail) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, detail);
}

/*
 * The envelope and inner payload texts are jansson's compact form byte
 * for byte, although their large members are written straight into the
 * text (PROTOCOL.md section 4 is a contract on those bytes).
 */
static void
test_large_text_form(void **state)
{
	static const int to[] = { B1, B2 };
	static const char note[] = "devid/x\n9\nAAAA\n\n\xe2\x80\x94 k AA==\n";
	static const char *const names[] = { NULL, "f\xc3\xa9.txt" };
	static const char *const notes[] = { NULL, note };
	static const size_t sizes[] = { 0, 1, 2, 3, 100, 70000 };
	struct env *env;
	uint8_t *enc, *body;
	char *json, *text;
	size_t len, i, j, k;

	text = long_text(70000);
	env = seal_to(A1, to, 2, text);
	json = to_json(env, &len);
	assert_jansson_form(json, len);
	free(json);
	env_free(env);
	free(text);

	body = malloc(70000);
	assert_non_null(body);
	for (i = 0; i < 70000; i++)
		body[i] = (uint8_t)(i * 13);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (j = 0; j < 2; j++) {
			for (k = 0; k < 2; k++) {
				enc = NULL;
				assert_int_equal(env_payload_encode_cp(
				    "text/plain; charset=\"utf-8\"", body,
				    sizes[i], names[j], notes[k], &enc, &len,
				    NULL), 0);
				assert_int_equal(strlen((char *)enc), len);
				assert_jansson_form((char *)enc, len);
				free(enc);
			}
		}
	}
	free(body);
	(void)state;
}

/*
 * A large ciphertext is decoded straight from the text; whatever that
 * way cannot judge is judged as before: escapes in it are still JSON,
 * a bad character or a duplicate is refused for the same reason, and a
 * "ciphertext" member elsewhere in the text is not taken for it.
 */
static void
test_large_ciphertext_from_text(void **state)
{
	static const int to[] = { B1 };
	struct receiver rx;
	struct env *env, *parsed, *kept_env = NULL;
	struct env_self self;
	struct env_open_ops ops = ops_template;
	struct env_opened o;
	struct err_ctx e;
	json_t *kept = NULL, *full;
	char *json, *bad, *text, ins[16], *dup;
	size_t len, at, ct_len;

	text = long_text(4000);
	env = seal_to(A1, to, 1, text);
	json = to_json(env, &len);
	find_value(json, "ciphertext", &at, &ct_len);
	assert_true(ct_len > 1000);

	/* As it is: the same envelope, and the kept tree is all of it. */
	parsed = parse_ok(json, len);
	assert_int_equal(parsed->ciphertext_len, env->ciphertext_len);
	assert_memory_equal(parsed->ciphertext, env->ciphertext,
	    env->ciphertext_len);
	env_free(parsed);
	err_clear(&e);
	assert_int_equal(env_parse_keep_tree((const uint8_t *)json, len, NULL,
	    &kept_env, &kept, &e), 0);
	full = json_loadb(json, len, 0, NULL);
	assert_non_null(full);
	assert_true(json_equal(kept, full));
	json_decref(full);
	json_decref(kept);
	env_free(kept_env);
	receiver_of(&rx, B1);
	expect_opens(&rx, json, len, text);

	/* env_open_parsed() opens it too, and leaves the caller's envelope
	 * -- its ciphertext above all -- as it was. */
	parsed = parse_ok(json, len);
	receiver_of(&rx, B1);
	self_of(&rx, &self);
	ops.arg = &rx;
	err_clear(&e);
	assert_int_equal(env_open_parsed(parsed, &self, &ops, &o, &e), 0);
	assert_int_equal(o.payload.body_len, strlen(text));
	assert_memory_equal(o.payload.body, text, strlen(text));
	env_opened_clear(&o);
	assert_memory_equal(parsed->ciphertext, env->ciphertext,
	    env->ciphertext_len);
	env_free(parsed);
	receiver_of(&rx, B1);

	/* One character written as a JSON escape: the same bytes. */
	snprintf(ins, sizeof(ins), "\\u%04x", (unsigned char)json[at + 500]);
	bad = splice_text(json, at + 500, 1, ins);
	parsed = parse_ok(bad, strlen(bad));
	assert_memory_equal(parsed->ciphertext, env->ciphertext,
	    env->ciphertext_len);
	env_free(parsed);
	receiver_of(&rx, B1);	/* one that has not seen it yet */
	expect_opens(&rx, bad, strlen(bad), text);
	free(bad);

	/* A character outside the alphabet, a raw control character. */
	bad = splice_text(json, at + 700, 1, "!");
	expect_text_parse_fails(bad, ERR_FORMAT,
	    "member \"ciphertext\" is not base64url");
	expect_open_rejected(&rx, bad, strlen(bad), ENV_CHECK_PARSE,
	    "not base64url");
	free(bad);
	bad = splice_text(json, at + 700, 1, "\x01");
	expect_text_parse_fails(bad, ERR_FORMAT, "invalid JSON");
	free(bad);
	bad = splice_text(json, at + 700, 1, "\xc3\xa9");
	expect_text_parse_fails(bad, ERR_FORMAT, "not base64url");
	free(bad);

	/* The member twice. */
	dup = malloc(ct_len + 32);
	assert_non_null(dup);
	memcpy(dup, ",\"ciphertext\":\"", 15);
	memcpy(dup + 15, json + at, ct_len);
	memcpy(dup + 15 + ct_len, "\"", 2);
	bad = splice_text(json, at + ct_len + 1, 0, dup);
	expect_text_parse_fails(bad, ERR_FORMAT, "invalid JSON");
	free(bad);

	/* A "ciphertext" member inside "sender", before the real one. */
	memcpy(dup, "\"ciphertext\":\"", 14);
	memcpy(dup + 14, json + at, ct_len);
	memcpy(dup + 14 + ct_len, "\",", 3);
	bad = strstr(json, "\"sender\":{");
	assert_non_null(bad);
	bad = splice_text(json, (size_t)(bad - json) + 10, 0, dup);
	expect_text_parse_fails(bad, ERR_FORMAT, "unknown member");
	free(bad);

	/* A long "ciphertext" that is a value, not the member's. */
	memcpy(dup, "\"ciphertext\",", 14);
	bad = strstr(json, "\"to\":[");
	assert_non_null(bad);
	bad = splice_text(json, (size_t)(bad - json) + 6, 0, dup);
	expect_text_parse_fails(bad, ERR_FORMAT, NULL);
	free(bad);

	free(dup);
	free(json);
	free(text);
	env_free(env);
	(void)state;
}

/* The inner payload's large body, likewise. */
static void
test_large_body_from_text(void **state)
{
	struct env_payload p;
	struct err_ctx e;
	uint8_t *enc = NULL, *body;
	char *bad, ins[16], *dup;
	size_t len, at, b_len, i;

	body = malloc(3000);
	assert_non_null(body);
	for (i = 0; i < 3000; i++)
		body[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(env_payload_encode_cp("text/plain", body, 3000,
	    "a.txt", NULL, &enc, &len, NULL), 0);
	find_value((char *)enc, "body", &at, &b_len);

	err_clear(&e);
	assert_int_equal(env_payload_parse(enc, len, &p, &e), 0);
	assert_int_equal(p.body_len, 3000);
	assert_memory_equal(p.body, body, 3000);
	assert_string_equal(p.name, "a.txt");
	env_payload_clear(&p);

	snprintf(ins, sizeof(ins), "\\u%04x", enc[at + 10]);
	bad = splice_text((char *)enc, at + 10, 1, ins);
	assert_int_equal(env_payload_parse((uint8_t *)bad, strlen(bad), &p,
	    &e), 0);
	assert_memory_equal(p.body, body, 3000);
	env_payload_clear(&p);
	free(bad);

	bad = splice_text((char *)enc, at + 10, 1, "*");
	err_clear(&e);
	assert_int_equal(env_payload_parse((uint8_t *)bad, strlen(bad), &p,
	    &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "member \"body\" is not base64url"));
	assert_null(p.body);
	free(bad);

	bad = splice_text((char *)enc, at + 10, 1, "\x1f");
	err_clear(&e);
	assert_int_equal(env_payload_parse((uint8_t *)bad, strlen(bad), &p,
	    &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "invalid JSON"));
	free(bad);

	dup = malloc(b_len + 16);
	assert_non_null(dup);
	memcpy(dup, "\"body\":\"", 8);
	memcpy(dup + 8, enc + at, b_len);
	memcpy(dup + 8 + b_len, "\",", 3);
	bad = splice_text((char *)enc, 1, 0, dup);
	err_clear(&e);
	assert_int_equal(env_payload_parse((uint8_t *)bad, strlen(bad), &p,
	    &e), ERR_FORMAT);
	assert_non_null(strstr(e.msg, "invalid JSON"));
	free(bad);
	free(dup);

	free(enc);
	free(body);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_roundtrip_one, test_setup),
		cmocka_unit_test_setup(test_roundtrip_two_mixed, test_setup),
		cmocka_unit_test_setup(test_roundtrip_300, test_setup),
		cmocka_unit_test_setup(test_empty_body, test_setup),
		cmocka_unit_test_setup(test_4mib_body, test_setup),
		cmocka_unit_test_setup(test_transcripts_by_hand, test_setup),
		cmocka_unit_test_setup(test_every_bit_flip_rejected,
		    test_setup),
		cmocka_unit_test_setup(test_signature_stripped_or_zero,
		    test_setup),
		cmocka_unit_test_setup(test_resigned_by_other_own_device,
		    test_setup),
		cmocka_unit_test_setup(test_resigned_header_change, test_setup),
		cmocka_unit_test_setup(test_wrap_moved_to_other_slot,
		    test_setup),
		cmocka_unit_test_setup(test_wrap_bound_to_device_id,
		    test_setup),
		cmocka_unit_test_setup(test_recipient_and_to_order, test_setup),
		cmocka_unit_test_setup(test_wrong_version, test_setup),
		cmocka_unit_test_setup(test_bad_base64url, test_setup),
		cmocka_unit_test_setup(test_missing_fields, test_setup),
		cmocka_unit_test_setup(test_unknown_fields, test_setup),
		cmocka_unit_test_setup(test_wrong_types, test_setup),
		cmocka_unit_test_setup(test_oversized_and_malformed_fields,
		    test_setup),
		cmocka_unit_test_setup(test_too_many_recipients, test_setup),
		cmocka_unit_test_setup(test_size_limit, test_setup),
		cmocka_unit_test_setup(test_deep_nesting_and_raw_text,
		    test_setup),
		cmocka_unit_test_setup(test_parse_tree, test_setup),
		cmocka_unit_test_setup(test_huge_integers, test_setup),
		cmocka_unit_test_setup(test_replay, test_setup),
		cmocka_unit_test_setup(test_reflection, test_setup),
		cmocka_unit_test_setup(test_sender_checks, test_setup),
		cmocka_unit_test_setup(test_gossip_split_view, test_setup),
		cmocka_unit_test_setup(test_token_failures, test_setup),
		cmocka_unit_test_setup(test_bad_inner_payload, test_setup),
		cmocka_unit_test_setup(test_payload_roundtrip_and_names,
		    test_setup),
		cmocka_unit_test_setup(test_payload_checkpoint, test_setup),
		cmocka_unit_test_setup(test_payload_blobs_roundtrip,
		    test_setup),
		cmocka_unit_test_setup(test_payload_blobs_parse_bad,
		    test_setup),
		cmocka_unit_test_setup(test_payload_blobs_encode_bad,
		    test_setup),
		cmocka_unit_test_setup(test_open_with_blobs, test_setup),
		cmocka_unit_test_setup(test_large_text_form, test_setup),
		cmocka_unit_test_setup(test_large_ciphertext_from_text,
		    test_setup),
		cmocka_unit_test_setup(test_large_body_from_text, test_setup),
		cmocka_unit_test_setup(test_seal_rejects_bad_arguments,
		    test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
