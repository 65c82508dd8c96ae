/*
 * test_dir_api.c - request validation of every endpoint.
 *
 * Each test runs an in-process server (dir-server + dir-api + the SQLite
 * store, exactly what devid-directory runs) on a free loopback port with
 * a fresh database, and talks HTTP to it: through common/dirclient for
 * well-formed requests and through raw libcurl for the malformed ones a
 * real client would never send.  Every refused request must answer with
 * the JSON error of PROTOCOL.md section 5 and leave the stored state
 * exactly as it was (snapshot() compares it).
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"
#include "transcript.h"

#define DEV_ZERO \
    "0000000000000000000000000000000000000000000000000000000000000000"
#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"

struct fx {
	struct tdir d;
	struct tdev a1, a2, a3, b1;  /* made, not registered */
};

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct tdir_opts o;

	assert_non_null(f);
	*state = f;
	tdir_opts_default(&o);
	o.api.max_devices = 3;
	o.api.max_queue = 2;
	o.api.max_body = 64 * 1024;
	assert_int_equal(tdir_start(&f->d, &o), 0);
	assert_int_equal(tdir_account(&f->d, ALICE, PW), 0);
	assert_int_equal(tdir_account(&f->d, BOB, BOB_PW), 0);
	assert_int_equal(tdev_make(&f->a1, ALICE, "laptop", now_s()), 0);
	assert_int_equal(tdev_make(&f->a2, ALICE, "phone", now_s()), 0);
	assert_int_equal(tdev_make(&f->a3, ALICE, "card", now_s()), 0);
	assert_int_equal(tdev_make(&f->b1, BOB, "desktop", now_s()), 0);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tdir_stop(&f->d);
	tdev_clear(&f->a1);
	tdev_clear(&f->a2);
	tdev_clear(&f->a3);
	tdev_clear(&f->b1);
	free(f);
	return 0;
}

/* --- state snapshots --- */

struct snap {
	char text[8192];
};

static int
snap_event(void *arg, uint64_t seq, const char *type, const char *json)
{
	struct snap *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "[%llu %s]",
	    (unsigned long long)seq, type);
	return 0;
}

static int
snap_device(void *arg, const char *device, const char *record_json)
{
	struct snap *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "<%.8s>", device);
	return 0;
}

static int
snap_queue(void *arg, uint64_t seq, const char *envelope)
{
	struct snap *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "(q%llu)",
	    (unsigned long long)seq);
	return 0;
}

static int
snap_account(void *arg, const char *name, uint64_t created)
{
	struct snap *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "{%s}", name);
	return 0;
}

/* Accounts, logs, active devices and queues as one string. */
static struct snap
snapshot(struct fx *f)
{
	static const char *const accounts[] = { ALICE, BOB };
	const struct tdev *devs[] = { &f->a1, &f->a2, &f->a3, &f->b1 };
	struct snap s;
	struct err_ctx e;
	uint64_t seq;
	uint8_t h[32];
	size_t i;

	memset(&s, 0, sizeof(s));
	err_clear(&e);
	assert_int_equal(f->d.store->ops->account_list(f->d.store, snap_account,
	    &s, &e), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(f->d.store->ops->log_events(f->d.store,
		    accounts[i], 0, UINT32_MAX, UINT32_MAX, snap_event, &s, &e),
		    0);
		assert_int_equal(f->d.store->ops->devices_active(f->d.store,
		    accounts[i], &seq, h, snap_device, &s, &e), 0);
	}
	for (i = 0; i < 4; i++)
		assert_int_equal(f->d.store->ops->inbox_get(f->d.store,
		    devs[i]->rec.device, 0, 1000, SIZE_MAX, snap_queue, &s,
		    &e), 0);
	return s;
}

#define assert_unchanged(f, before) do {				\
		struct snap after_ = snapshot(f);			\
		assert_string_equal((before).text, after_.text);	\
	} while (0)

/* --- helpers --- */

static struct dirc *
client(struct fx *f)
{
	struct dirc *c = tdir_client(&f->d);

	assert_non_null(c);
	return c;
}

static void
register_dev(struct fx *f, struct tdev *d, const char *pw)
{
	assert_int_equal(tdir_register(&f->d, d, pw, NULL), 0);
}

/* A client logged in as d. */
static struct dirc *
login(struct fx *f, struct tdev *d)
{
	struct dirc *c = NULL;

	assert_int_equal(tdir_login(&f->d, d, &c), 0);
	return c;
}

static void
bearer_of(struct dirc *c, char *out, size_t len)
{
	snprintf(out, len, "Authorization: Bearer %s", dirc_token(c));
}

/* A raw request that must fail with status and code. */
static void
expect_err(struct fx *f, const char *method, const char *path,
    const char *body, const char *header, const char *user, const char *pw,
    long status, const char *code)
{
	json_t *ans = NULL;
	long st;

	st = thttp(f->d.base, method, path, body, body != NULL ?
	    strlen(body) : 0, header, user, pw, &ans);
	if (st != status || strcmp(terror_code(ans), code) != 0) {
		char *dump = ans != NULL ? json_dumps(ans, 0) : NULL;

		fprintf(stderr, "%s %s: got %ld %s, want %ld %s\n", method,
		    path, st, dump != NULL ? dump : "(no JSON)", status, code);
		free(dump);
		json_decref(ans);
		fail();
	}
	/* Every error has a sentence. */
	assert_true(strlen(json_string_value(json_object_get(json_object_get(
	    ans, "error"), "message"))) > 10);
	json_decref(ans);
}

/* The record of d as JSON text, after applying edit (may be NULL). */
static char *
record_text(const struct devrec *rec)
{
	char *s = NULL;

	assert_int_equal(devrec_encode(rec, &s, NULL), 0);
	return s;
}

/* --- tests --- */

static void
test_info_health_routing(void **state)
{
	struct fx *f = *state;
	struct dirc *c = client(f);
	struct dirc_info info;
	struct err_ctx e;
	json_t *ans = NULL;

	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_string_equal(info.directory_id, dir_key_id(f->d.key));
	assert_true(info.open_signup);
	assert_true(info.time + 5 >= now_s());
	assert_int_equal(dirc_health(c, &e), 0);
	assert_int_equal(thttp(f->d.base, "GET", "/v1/health", NULL, 0, NULL,
	    NULL, NULL, &ans), 200);
	assert_string_equal(json_string_value(json_object_get(ans, "status")),
	    "ok");
	json_decref(ans);
	/* The client bounds what it accepts. */
	{
		struct dirc_options opt;
		struct dirc *small = NULL;

		memset(&opt, 0, sizeof(opt));
		opt.max_response = 64;
		assert_int_equal(dirc_new(f->d.base, &opt, &small, &e), 0);
		err_clear(&e);
		assert_int_equal(dirc_info(small, &info, &e), ERR_TOO_LARGE);
		assert_non_null(strstr(err_msg(&e), "larger than 64 bytes"));
		/* Small answers still fit. */
		err_clear(&e);
		assert_int_equal(dirc_health(small, &e), 0);
		dirc_free(small);
	}
	expect_err(f, "GET", "/", NULL, NULL, NULL, NULL, 404, "not_found");
	expect_err(f, "GET", "/v2/info", NULL, NULL, NULL, NULL, 404,
	    "not_found");
	expect_err(f, "GET", "/v1/info/x", NULL, NULL, NULL, NULL, 404,
	    "not_found");
	expect_err(f, "GET", "/v1//info", NULL, NULL, NULL, NULL, 404,
	    "not_found");
	/* Decoded control bytes and invalid UTF-8 in the path still give a
	 * JSON error (the path is sanitised before it is echoed). */
	expect_err(f, "GET", "/v1/%0A%FFinfo", NULL, NULL, NULL, NULL, 404,
	    "not_found");
	/* Credentials come first: without them even a malformed account
	 * is 401 (with a session it is 400: see test_log_and_devices). */
	expect_err(f, "GET", "/v1/accounts/%FF/log", NULL, NULL, NULL, NULL,
	    401, "unauthorized");
	expect_err(f, "POST", "/v1/info", "{}", NULL, NULL, NULL, 405,
	    "bad_method");
	expect_err(f, "DELETE", "/v1/inbox", NULL, NULL, NULL, NULL, 405,
	    "bad_method");
	expect_err(f, "PUT", "/v1/accounts/" ALICE "/devices", "{}", NULL,
	    NULL, NULL, 405, "bad_method");
	dirc_free(c);
}

static void
test_account_create(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{",
		"{\"account\":\"carol\"}",
		"{\"password\":\"12345678\"}",
		"{\"account\":\"carol\",\"password\":\"short\"}",
		"{\"account\":\"Carol\",\"password\":\"12345678\"}",
		"{\"account\":\".carol\",\"password\":\"12345678\"}",
		"{\"account\":\"carol smith\",\"password\":\"12345678\"}",
		"{\"account\":\"\",\"password\":\"12345678\"}",
		"{\"account\":7,\"password\":\"12345678\"}",
		"{\"account\":\"carol\",\"password\":\"12345678\",\"x\":1}",
		"{\"account\":\"carol\",\"account\":\"dave\","
		    "\"password\":\"12345678\"}",
	};
	struct fx *f = *state;
	struct snap before = snapshot(f);
	struct dirc *c = client(f);
	struct err_ctx e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_err(f, "POST", "/v1/accounts", bad[i], NULL, NULL, NULL,
		    400, "bad_request");
	expect_err(f, "POST", "/v1/accounts", "{\"account\":\"" ALICE "\","
	    "\"password\":\"12345678\"}", NULL, NULL, NULL, 409, "conflict");
	assert_unchanged(f, before);
	/* Closed sign-up. */
	f->d.api.cfg.open_signup = 0;
	expect_err(f, "POST", "/v1/accounts", "{\"account\":\"carol\","
	    "\"password\":\"12345678\"}", NULL, NULL, NULL, 403,
	    "signup_closed");
	assert_unchanged(f, before);
	f->d.api.cfg.open_signup = 1;
	err_clear(&e);
	assert_int_equal(dirc_create_account(c, "carol", "carol's secret",
	    &e), 0);
	err_clear(&e);
	assert_int_equal(dirc_create_account(c, "carol", "carol's secret",
	    &e), ERR_EXISTS);
	assert_non_null(strstr(err_msg(&e), "already exists"));
	dirc_free(c);
}

static void
test_register(void **state)
{
	struct fx *f = *state;
	struct snap before = snapshot(f);
	struct dirc *c = client(f);
	struct devrec rec;
	struct acctlog_head head;
	struct err_ctx e;
	char *text;
	const char *path = "/v1/accounts/" ALICE "/devices";

	text = record_text(&f->a1.rec);
	/* Authentication. */
	expect_err(f, "POST", path, text, NULL, NULL, NULL, 401,
	    "unauthorized");
	expect_err(f, "POST", path, text, NULL, ALICE, "wrong password", 401,
	    "unauthorized");
	expect_err(f, "POST", path, text, NULL, BOB, BOB_PW, 401,
	    "unauthorized");
	expect_err(f, "POST", path, text, "Authorization: Basic !!!", NULL,
	    NULL, 401, "unauthorized");
	/* An unknown account fails like a wrong password, to the byte. */
	expect_err(f, "POST", "/v1/accounts/carol/devices", text, NULL,
	    "carol", PW, 401, "unauthorized");
	expect_err(f, "POST", "/v1/accounts/Alice/devices", text, NULL,
	    "Alice", PW, 400, "bad_request");
	/* The record: posted to the wrong account. */
	expect_err(f, "POST", "/v1/accounts/" BOB "/devices", text, NULL, BOB,
	    BOB_PW, 400, "bad_request");
	/* Malformed JSON, unknown members, truncated. */
	expect_err(f, "POST", path, "{", NULL, ALICE, PW, 400, "bad_request");
	expect_err(f, "POST", path, "", NULL, ALICE, PW, 400, "bad_request");
	/* Compact JSON ends with the closing brace: drop it. */
	text[strlen(text) - 1] = '\0';
	expect_err(f, "POST", path, text, NULL, ALICE, PW, 400,
	    "bad_request");
	expect_err(f, "POST", path, "{\"account\":\"" ALICE "\",\"x\":1}",
	    NULL, ALICE, PW, 400, "bad_request");
	free(text);
	/* A binding signature that does not verify. */
	rec = f->a1.rec;
	rec.binding_sig[10] ^= 1;
	text = record_text(&rec);
	expect_err(f, "POST", path, text, NULL, ALICE, PW, 400,
	    "bad_signature");
	free(text);
	/* A device id that is not H(sig_pub). */
	rec = f->a1.rec;
	rec.device[0] = rec.device[0] == 'a' ? 'b' : 'a';
	text = record_text(&rec);
	expect_err(f, "POST", path, text, NULL, ALICE, PW, 400,
	    "bad_request");
	free(text);
	/* A label changed after signing. */
	rec = f->a1.rec;
	snprintf(rec.label, sizeof(rec.label), "evil");
	text = record_text(&rec);
	expect_err(f, "POST", path, text, NULL, ALICE, PW, 400,
	    "bad_signature");
	free(text);
	/* An endorsement by a device that is not active. */
	rec = f->a2.rec;
	err_clear(&e);
	{
		uint8_t *der = NULL;
		size_t len = 0;

		assert_int_equal(crypto_spki_export(f->a1.sig, &der, &len), 0);
		assert_int_equal(devrec_endorse(&rec, der, len,
		    devrec_sign_pkey, f->a1.sig, &e), 0);
		free(der);
	}
	text = record_text(&rec);
	expect_err(f, "POST", path, text, NULL, ALICE, PW, 400,
	    "bad_request");
	assert_unchanged(f, before);

	/* Now the real thing, verified under the head key. */
	err_clear(&e);
	assert_int_equal(dirc_register_device(c, PW, &f->a1.rec, &head, &e),
	    0);
	assert_int_equal(head.seq, 1);
	assert_int_equal(acctlog_head_verify(&head, dir_key_public(f->d.key),
	    NULL, &e), 0);
	/* Registered twice: conflict. */
	before = snapshot(f);
	{
		char *t1 = record_text(&f->a1.rec);

		expect_err(f, "POST", path, t1, NULL, ALICE, PW, 409,
		    "conflict");
		free(t1);
	}
	/* The same device key under another account. */
	{
		struct tdev other;
		char *t2;

		memset(&other, 0, sizeof(other));
		other.sig = f->a1.sig;
		other.enc = f->a1.enc;
		assert_int_equal(devrec_build(&other.rec, BOB, "stolen",
		    f->a1.rec.sig_pub, f->a1.rec.sig_pub_len, "hpke-p256",
		    f->a1.rec.enc_pub, f->a1.rec.enc_pub_len, now_s(),
		    devrec_sign_pkey, f->a1.sig, NULL), 0);
		t2 = record_text(&other.rec);
		expect_err(f, "POST", "/v1/accounts/" BOB "/devices", t2,
		    NULL, BOB, BOB_PW, 409, "conflict");
		free(t2);
	}
	assert_unchanged(f, before);
	/* The endorsed record is fine now that its endorser is active. */
	assert_int_equal(thttp(f->d.base, "POST", path, text, strlen(text),
	    NULL, ALICE, PW, NULL), 201);
	free(text);
	register_dev(f, &f->a3, PW);
	/* The fourth device passes the limit of 3. */
	{
		struct tdev d4;

		assert_int_equal(tdev_make(&d4, ALICE, "fourth", now_s()), 0);
		text = record_text(&d4.rec);
		before = snapshot(f);
		expect_err(f, "POST", path, text, NULL, ALICE, PW, 403,
		    "forbidden");
		assert_unchanged(f, before);
		free(text);
		tdev_clear(&d4);
	}
	dirc_free(c);
}

static void
test_register_too_large(void **state)
{
	struct fx *f = *state;
	struct snap before = snapshot(f);
	size_t n = 70 * 1024;
	char *big = malloc(n + 1);

	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	expect_err(f, "POST", "/v1/accounts/" ALICE "/devices", big, NULL,
	    ALICE, PW, 413, "too_large");
	expect_err(f, "POST", "/v1/messages", big, NULL, NULL, NULL, 413,
	    "too_large");
	/* Chunked, without a Content-Length: the cap still holds. */
	expect_err(f, "POST", "/v1/accounts", big,
	    "Transfer-Encoding: chunked", NULL, NULL, 413, "too_large");
	assert_unchanged(f, before);
	free(big);
}

/* A login body for d with the given fields. */
static char *
login_body(struct fx *f, struct tdev *signer, const char *device,
    uint64_t t, const uint8_t *nonce, size_t nonce_len)
{
	struct buf *b = buf_new(1024);
	uint8_t digest[32], sig[64];
	json_t *o = json_object();
	char *s;

	assert_int_equal(tr_login(b, dir_key_id(f->d.key), device, t, nonce,
	    nonce_len), 0);
	assert_int_equal(tr_hash(b, digest), 0);
	assert_int_equal(crypto_ecdsa_sign(signer->sig, digest, sig), 0);
	assert_int_equal(devrec_json_set_str(o, "device", device), 0);
	assert_int_equal(devrec_json_set_u64(o, "time", t), 0);
	assert_int_equal(devrec_json_set_b64(o, "nonce", nonce, nonce_len), 0);
	assert_int_equal(devrec_json_set_b64(o, "sig", sig, 64), 0);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	buf_free(b);
	return s;
}

static void
test_login(void **state)
{
	struct fx *f = *state;
	struct dirc *c;
	struct snap before;
	struct err_ctx e;
	uint8_t nonce[32];
	char *body, hdr[128];
	json_t *ans = NULL;
	uint64_t exp = 0;

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->b1, BOB_PW);
	before = snapshot(f);
	memset(nonce, 0x5a, sizeof(nonce));
	/* Syntax. */
	expect_err(f, "POST", "/v1/session", "{}", NULL, NULL, NULL, 400,
	    "bad_request");
	expect_err(f, "POST", "/v1/session", "{\"device\":\"abc\",\"time\":1,"
	    "\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sig\":\"AA\"}", NULL, NULL,
	    NULL, 400, "bad_request");
	body = login_body(f, &f->a1, f->a1.rec.device, now_s(), nonce, 8);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 400,
	    "bad_request");
	free(body);
	/* Unknown device. */
	body = login_body(f, &f->a2, f->a2.rec.device, now_s(), nonce, 32);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 401,
	    "unknown_device");
	free(body);
	/* Signed by another device's key. */
	body = login_body(f, &f->b1, f->a1.rec.device, now_s(), nonce, 32);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 401,
	    "bad_signature");
	free(body);
	/* Outside the window, both ways. */
	body = login_body(f, &f->a1, f->a1.rec.device, now_s() - 400, nonce,
	    32);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 401,
	    "bad_time");
	free(body);
	body = login_body(f, &f->a1, f->a1.rec.device, now_s() + 400, nonce,
	    32);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 401,
	    "bad_time");
	free(body);
	assert_unchanged(f, before);
	/* A good login, then its replay. */
	body = login_body(f, &f->a1, f->a1.rec.device, now_s(), nonce, 32);
	assert_int_equal(thttp(f->d.base, "POST", "/v1/session", body,
	    strlen(body), NULL, NULL, NULL, &ans), 200);
	assert_int_equal(strlen(json_string_value(json_object_get(ans,
	    "token"))), DIR_TOKEN_B64_LEN);
	assert_true(json_integer_value(json_object_get(ans, "expires")) >=
	    (json_int_t)(now_s() + DIR_SESSION_TTL_S - 5));
	json_decref(ans);
	expect_err(f, "POST", "/v1/session", body, NULL, NULL, NULL, 401,
	    "replayed");
	free(body);
	/* Bearer tokens: missing, malformed, unknown. */
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log", NULL, NULL, NULL,
	    NULL, 401, "unauthorized");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log", NULL,
	    "Authorization: Bearer abc", NULL, NULL, 401, "unauthorized");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log", NULL,
	    "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    NULL, NULL, 401, "unauthorized");
	expect_err(f, "GET", "/v1/inbox", NULL,
	    "Authorization: Basic YWxpY2U6cHc=", NULL, NULL, 401,
	    "unauthorized");
	/* The client's login works and its token is accepted. */
	c = client(f);
	err_clear(&e);
	assert_int_equal(dirc_login(c, dir_key_id(f->d.key), f->a1.rec.device,
	    tdev_sign, &f->a1, &exp, &e), 0);
	assert_true(exp > now_s());
	bearer_of(c, hdr, sizeof(hdr));
	assert_int_equal(thttp(f->d.base, "GET", "/v1/inbox", NULL, 0, hdr,
	    NULL, NULL, NULL), 200);
	/* A login bound to another directory id does not verify. */
	err_clear(&e);
	assert_int_equal(dirc_login(c, f->a1.rec.device, f->a1.rec.device,
	    tdev_sign, &f->a1, NULL, &e), ERR_SIGNATURE);
	dirc_free(c);
}

static void
test_log_and_devices(void **state)
{
	struct fx *f = *state;
	struct dirc *c;
	struct acctlog_state st;
	struct acctlog_response *resp = NULL;
	struct dirc_devices *devs = NULL;
	struct err_ctx e;
	char hdr[128];

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->a2, PW);
	c = login(f, &f->a1);
	bearer_of(c, hdr, sizeof(hdr));
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log?since=x", NULL, hdr,
	    NULL, NULL, 400, "bad_request");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log?since=-1", NULL, hdr,
	    NULL, NULL, 400, "bad_request");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log?since=1&wait=61",
	    NULL, hdr, NULL, NULL, 400, "bad_request");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log?wait=99999999999999"
	    "999999999", NULL, hdr, NULL, NULL, 400, "bad_request");
	expect_err(f, "GET", "/v1/accounts/carol/log", NULL, hdr, NULL, NULL,
	    404, "not_found");
	expect_err(f, "GET", "/v1/accounts/-x/log", NULL, hdr, NULL, NULL,
	    400, "bad_request");
	expect_err(f, "GET", "/v1/accounts/carol/devices", NULL, hdr, NULL,
	    NULL, 404, "not_found");
	expect_err(f, "GET", "/v1/accounts/%FF/log", NULL, hdr, NULL, NULL,
	    400, "bad_request");
	/* Without a session, an unknown account and a known one look the
	 * same. */
	expect_err(f, "GET", "/v1/accounts/carol/log", NULL, NULL, NULL, NULL,
	    401, "unauthorized");
	expect_err(f, "GET", "/v1/accounts/" ALICE "/log", NULL, NULL, NULL,
	    NULL, 401, "unauthorized");
	expect_err(f, "GET", "/v1/accounts/carol/devices", NULL, NULL, NULL,
	    NULL, 401, "unauthorized");
	expect_err(f, "DELETE", "/v1/accounts/carol/devices/" DEV_ZERO, "{}",
	    NULL, NULL, NULL, 401, "unauthorized");
	/* The log verifies with common/acctlog from scratch... */
	err_clear(&e);
	assert_int_equal(dirc_get_log(c, ALICE, 0, 0, &resp, &e), 0);
	assert_int_equal(resp->n_events, 2);
	assert_int_equal(acctlog_state_init(&st, ALICE, dir_key_id(f->d.key),
	    &e), 0);
	assert_int_equal(acctlog_verify_update(&st, resp->events,
	    resp->n_events, &resp->head, dir_key_public(f->d.key), now_s(), 900,
	    NULL, &e), 0);
	assert_int_equal(st.n_devices, 2);
	acctlog_response_free(resp);
	/* ...and incrementally: since=2 gives no events and the same head. */
	assert_int_equal(dirc_get_log(c, ALICE, 2, 0, &resp, &e), 0);
	assert_int_equal(resp->n_events, 0);
	assert_int_equal(acctlog_verify_update(&st, resp->events,
	    resp->n_events, &resp->head, dir_key_public(f->d.key), now_s(), 900,
	    NULL, &e), 0);
	acctlog_response_free(resp);
	/* A client that is ahead sees the rollback in the head. */
	assert_int_equal(dirc_get_log(c, ALICE, 7, 0, &resp, &e), 0);
	assert_int_equal(resp->head.seq, 2);
	acctlog_response_free(resp);
	acctlog_state_clear(&st);
	/* The device list and its head. */
	assert_int_equal(dirc_devices(c, ALICE, &devs, &e), 0);
	assert_int_equal(devs->n_devices, 2);
	assert_int_equal(devs->head.seq, 2);
	assert_int_equal(acctlog_head_verify(&devs->head,
	    dir_key_public(f->d.key), NULL, &e), 0);
	assert_int_equal(devrec_verify(&devs->devices[0], &e), 0);
	dirc_devices_free(devs);
	/* Bob's (empty) log is readable by alice's session too. */
	assert_int_equal(dirc_devices(c, BOB, &devs, &e), 0);
	assert_int_equal(devs->n_devices, 0);
	assert_int_equal(devs->head.seq, 0);
	dirc_devices_free(devs);
	dirc_free(c);
}

static char *
revoke_body(uint64_t t, const uint8_t sig[64])
{
	json_t *o = json_object();
	char *s;

	assert_int_equal(devrec_json_set_u64(o, "time", t), 0);
	assert_int_equal(devrec_json_set_b64(o, "revoke_sig", sig, 64), 0);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static void
test_revoke(void **state)
{
	struct fx *f = *state;
	struct dirc *ca, *cb;
	struct snap before;
	struct acctlog_head head;
	struct err_ctx e;
	char path[256], hdr_a[128], hdr_b[128], *body;
	uint8_t sig[64];
	uint64_t t;

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->a2, PW);
	register_dev(f, &f->b1, BOB_PW);
	ca = login(f, &f->a1);
	cb = login(f, &f->b1);
	bearer_of(ca, hdr_a, sizeof(hdr_a));
	bearer_of(cb, hdr_b, sizeof(hdr_b));
	/* After the registrations: a revocation may not be older than the
	 * add event of the device it revokes. */
	t = now_s();
	snprintf(path, sizeof(path), "/v1/accounts/" ALICE "/devices/%s",
	    f->a2.rec.device);
	before = snapshot(f);
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->a2.rec.device, t,
	    sig), 0);
	body = revoke_body(t, sig);
	/* Only alice's devices may revoke alice's devices. */
	expect_err(f, "DELETE", path, body, hdr_b, NULL, NULL, 403,
	    "forbidden");
	expect_err(f, "DELETE", path, body, NULL, NULL, NULL, 401,
	    "unauthorized");
	free(body);
	/* Signed by bob's key, or for another time, or another device. */
	assert_int_equal(tdev_sign_revoke(&f->b1, ALICE, f->a2.rec.device, t,
	    sig), 0);
	body = revoke_body(t, sig);
	expect_err(f, "DELETE", path, body, hdr_a, NULL, NULL, 400,
	    "bad_signature");
	free(body);
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->a2.rec.device, t,
	    sig), 0);
	body = revoke_body(t + 1, sig);
	expect_err(f, "DELETE", path, body, hdr_a, NULL, NULL, 400,
	    "bad_signature");
	free(body);
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->a2.rec.device,
	    t - 1000, sig), 0);
	body = revoke_body(t - 1000, sig);
	expect_err(f, "DELETE", path, body, hdr_a, NULL, NULL, 400,
	    "bad_time");
	free(body);
	expect_err(f, "DELETE", path, "{\"time\":1}", hdr_a, NULL, NULL, 400,
	    "bad_request");
	expect_err(f, "DELETE", "/v1/accounts/" ALICE "/devices/xyz",
	    "{}", hdr_a, NULL, NULL, 400, "bad_request");
	snprintf(path, sizeof(path), "/v1/accounts/" ALICE "/devices/%s",
	    f->b1.rec.device);
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->b1.rec.device, t,
	    sig), 0);
	body = revoke_body(t, sig);
	expect_err(f, "DELETE", path, body, hdr_a, NULL, NULL, 404,
	    "not_found");
	free(body);
	assert_unchanged(f, before);
	/* The real revocation through the client, checked by the log. */
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->a2.rec.device, t,
	    sig), 0);
	err_clear(&e);
	assert_int_equal(dirc_revoke(ca, ALICE, f->a2.rec.device, t, sig,
	    &head, &e), 0);
	assert_int_equal(head.seq, 3);
	assert_int_equal(acctlog_head_verify(&head, dir_key_public(f->d.key),
	    NULL, &e), 0);
	/* Again: not active any more. */
	err_clear(&e);
	assert_int_equal(dirc_revoke(ca, ALICE, f->a2.rec.device, t, sig,
	    NULL, &e), ERR_NOT_FOUND);
	/* A device may revoke itself; its session then ends. */
	assert_int_equal(tdev_sign_revoke(&f->a1, ALICE, f->a1.rec.device, t,
	    sig), 0);
	err_clear(&e);
	assert_int_equal(dirc_revoke(ca, ALICE, f->a1.rec.device, t, sig,
	    NULL, &e), 0);
	expect_err(f, "GET", "/v1/inbox", NULL, hdr_a, NULL, NULL, 401,
	    "unauthorized");
	dirc_free(ca);
	dirc_free(cb);
}

/* Fetches the signed heads of alice and bob for envelope views. */
static void
views(struct dirc *c, struct acctlog_head v[2])
{
	struct acctlog_response *resp = NULL;
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(dirc_get_log(c, ALICE, 0, 0, &resp, &e), 0);
	v[0] = resp->head;
	acctlog_response_free(resp);
	assert_int_equal(dirc_get_log(c, BOB, 0, 0, &resp, &e), 0);
	v[1] = resp->head;
	acctlog_response_free(resp);
}

static void
test_messages(void **state)
{
	struct fx *f = *state;
	static const char *const to[] = { ALICE, BOB };
	static const char *const to_alice[] = { ALICE };
	const struct tdev *r_ok[] = { &f->a2, &f->b1 };
	const struct tdev *r_bad[] = { &f->a2, &f->a3 };
	struct acctlog_head v[2];
	struct dirc *ca, *cb, *c2;
	struct dirc_inbox *in = NULL;
	struct snap before;
	struct err_ctx e;
	char hdr_a[128], hdr_b[128], *json = NULL;
	size_t len = 0;
	uint64_t queued = 0, removed = 0;

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->a2, PW);
	register_dev(f, &f->b1, BOB_PW);
	ca = login(f, &f->a1);
	cb = login(f, &f->b1);
	c2 = login(f, &f->a2);
	bearer_of(ca, hdr_a, sizeof(hdr_a));
	bearer_of(cb, hdr_b, sizeof(hdr_b));
	views(ca, v);
	before = snapshot(f);
	/* A device that is not registered (a3) among the recipients. */
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_bad, 2, &json,
	    &len), 0);
	expect_err(f, "POST", "/v1/messages", json, hdr_a, NULL, NULL, 400,
	    "bad_request");
	free(json);
	/* Bob's device as a recipient, but bob not in "to". */
	assert_int_equal(tenv_make(&f->a1, to_alice, 1, v, 1, r_ok, 2, &json,
	    &len), 0);
	expect_err(f, "POST", "/v1/messages", json, hdr_a, NULL, NULL, 400,
	    "bad_request");
	free(json);
	/* Posted by another session than the sender's. */
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_ok, 2, &json, &len),
	    0);
	expect_err(f, "POST", "/v1/messages", json, hdr_b, NULL, NULL, 403,
	    "forbidden");
	expect_err(f, "POST", "/v1/messages", json, NULL, NULL, NULL, 401,
	    "unauthorized");
	/* Structure: truncated, not an envelope, wrong version. */
	json[len / 2] = '\0';
	expect_err(f, "POST", "/v1/messages", json, hdr_a, NULL, NULL, 400,
	    "bad_request");
	free(json);
	expect_err(f, "POST", "/v1/messages", "{\"v\":2}", hdr_a, NULL, NULL,
	    400, "bad_request");
	expect_err(f, "POST", "/v1/messages", "", hdr_a, NULL, NULL, 400,
	    "bad_request");
	assert_unchanged(f, before);

	/* A good message: queued for a2 and b1, not for the sender. */
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_ok, 2, &json, &len),
	    0);
	err_clear(&e);
	assert_int_equal(dirc_post_message(ca, json, len, &queued, &e), 0);
	assert_int_equal(queued, 2);
	/* The same id again. */
	err_clear(&e);
	assert_int_equal(dirc_post_message(ca, json, len, NULL, &e),
	    ERR_EXISTS);
	free(json);
	assert_int_equal(dirc_inbox(cb, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 1);
	assert_int_equal(tenv_open(&f->b1, &f->a1, in->items[0].envelope,
	    in->items[0].envelope_len), 0);
	dirc_inbox_free(in);
	assert_int_equal(dirc_inbox(ca, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 0);
	dirc_inbox_free(in);
	/* Inbox and ack arguments. */
	expect_err(f, "GET", "/v1/inbox?limit=0", NULL, hdr_b, NULL, NULL,
	    400, "bad_request");
	expect_err(f, "GET", "/v1/inbox?limit=1001", NULL, hdr_b, NULL, NULL,
	    400, "bad_request");
	expect_err(f, "GET", "/v1/inbox?wait=61", NULL, hdr_b, NULL, NULL,
	    400, "bad_request");
	expect_err(f, "POST", "/v1/inbox/ack", "{\"upto\":-1}", hdr_b, NULL,
	    NULL, 400, "bad_request");
	expect_err(f, "POST", "/v1/inbox/ack", "{\"upto\":\"1\"}", hdr_b,
	    NULL, NULL, 400, "bad_request");
	expect_err(f, "POST", "/v1/inbox/ack", "{\"upto\":1,\"x\":2}", hdr_b,
	    NULL, NULL, 400, "bad_request");
	expect_err(f, "POST", "/v1/inbox/ack", "{\"upto\":1}", NULL, NULL,
	    NULL, 401, "unauthorized");
	/* Queue limit 2: a second message fits, a third does not. */
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_ok, 2, &json, &len),
	    0);
	assert_int_equal(dirc_post_message(ca, json, len, NULL, &e), 0);
	free(json);
	before = snapshot(f);
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_ok, 2, &json, &len),
	    0);
	expect_err(f, "POST", "/v1/messages", json, hdr_a, NULL, NULL, 503,
	    "queue_full");
	free(json);
	assert_unchanged(f, before);
	/* Bob acknowledges the first; a2 still has both. */
	assert_int_equal(dirc_inbox(cb, 0, 1, &in, &e), 0);
	assert_int_equal(in->n_items, 1);
	assert_int_equal(dirc_ack(cb, in->items[0].seq, &removed, &e), 0);
	assert_int_equal(removed, 1);
	dirc_inbox_free(in);
	assert_int_equal(dirc_inbox(cb, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 1);
	dirc_inbox_free(in);
	assert_int_equal(dirc_inbox(c2, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 2);
	assert_int_equal(tenv_open(&f->a2, &f->a1, in->items[1].envelope,
	    in->items[1].envelope_len), 0);
	dirc_inbox_free(in);
	dirc_free(ca);
	dirc_free(cb);
	dirc_free(c2);
}

struct poster {
	struct fx *f;
	struct dirc *c;
	char *json;
	size_t len;
	int rc;
};

static void *
post_later(void *arg)
{
	struct poster *p = arg;
	struct err_ctx e;

	usleep(300 * 1000);
	err_clear(&e);
	p->rc = dirc_post_message(p->c, p->json, p->len, NULL, &e);
	return NULL;
}

static void
test_longpoll(void **state)
{
	struct fx *f = *state;
	static const char *const to[] = { ALICE, BOB };
	const struct tdev *r[] = { &f->b1 };
	struct acctlog_head v[2];
	struct dirc *ca, *cb;
	struct dirc_inbox *in = NULL;
	struct acctlog_response *resp = NULL;
	struct poster p;
	struct err_ctx e;
	pthread_t th;
	struct timespec t0, t1;
	double ms;

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->b1, BOB_PW);
	ca = login(f, &f->a1);
	cb = login(f, &f->b1);
	views(ca, v);
	/* An empty inbox with a short wait ends empty after the wait. */
	err_clear(&e);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dirc_inbox(cb, 1, 0, &in, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(in->n_items, 0);
	dirc_inbox_free(in);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 900);
	/* A post wakes the waiting inbox. */
	memset(&p, 0, sizeof(p));
	p.f = f;
	p.c = ca;
	p.rc = -1;
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r, 1, &p.json, &p.len),
	    0);
	assert_int_equal(pthread_create(&th, NULL, post_later, &p), 0);
	assert_int_equal(dirc_inbox(cb, 30, 0, &in, &e), 0);
	pthread_join(th, NULL);
	assert_int_equal(p.rc, 0);
	assert_int_equal(in->n_items, 1);
	dirc_inbox_free(in);
	free(p.json);
	/* The log long-poll ends at once when the log is already past. */
	assert_int_equal(dirc_get_log(cb, ALICE, 0, 30, &resp, &e), 0);
	assert_int_equal(resp->n_events, 1);
	acctlog_response_free(resp);
	dirc_free(ca);
	dirc_free(cb);
}

struct registrar {
	struct fx *f;
	struct tdev *d;
	int rc;
};

static void *
register_thread(void *arg)
{
	struct registrar *g = arg;
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	g->rc = dirc_new(g->f->d.base, NULL, &c, &e);
	if (g->rc == 0)
		g->rc = dirc_register_device(c, PW, &g->d->rec, NULL, &e);
	if (g->rc != 0)
		fprintf(stderr, "concurrent registration: %s\n", err_msg(&e));
	dirc_free(c);
	return NULL;
}

/* Three registrations at once: each lands exactly once and the log is
 * one valid chain (the store refuses a stale tail; the API retries). */
static void
test_concurrent_registrations(void **state)
{
	struct fx *f = *state;
	struct tdev *devs[3] = { &f->a1, &f->a2, &f->a3 };
	struct registrar g[3];
	pthread_t th[3];
	struct acctlog_state st;
	struct acctlog_response *resp = NULL;
	struct dirc *c;
	struct err_ctx e;
	int i;

	for (i = 0; i < 3; i++) {
		g[i].f = f;
		g[i].d = devs[i];
		g[i].rc = -1;
		assert_int_equal(pthread_create(&th[i], NULL, register_thread,
		    &g[i]), 0);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].rc, 0);
	}
	c = login(f, &f->a1);
	err_clear(&e);
	assert_int_equal(dirc_get_log(c, ALICE, 0, 0, &resp, &e), 0);
	assert_int_equal(resp->n_events, 3);
	assert_int_equal(acctlog_state_init(&st, ALICE, dir_key_id(f->d.key),
	    &e), 0);
	assert_int_equal(acctlog_verify_update(&st, resp->events,
	    resp->n_events, &resp->head, dir_key_public(f->d.key), now_s(), 900,
	    NULL, &e), 0);
	assert_int_equal(st.n_devices, 3);
	acctlog_state_clear(&st);
	acctlog_response_free(resp);
	dirc_free(c);
}

static void
test_rate_limit(void **state)
{
	struct fx *f = *state;
	struct dir_server_config sc;
	struct dir_server *srv = NULL;
	struct err_ctx e;
	char base[128];
	json_t *ans = NULL;
	int i, limited = 0, ok = 0;
	long st;

	memset(&sc, 0, sizeof(sc));
	sc.listen = "127.0.0.1:0";
	sc.rate = 1;
	sc.burst = 3;
	sc.quiet = 1;
	sc.handler = dir_api_handle;
	sc.handler_arg = &f->d.api;
	err_clear(&e);
	assert_int_equal(dir_server_start(&sc, &srv, &e), 0);
	snprintf(base, sizeof(base), "http://%s", dir_server_address(srv));
	for (i = 0; i < 10; i++) {
		st = thttp(base, "GET", "/v1/info", NULL, 0, NULL, NULL, NULL,
		    &ans);
		if (st == 429) {
			assert_string_equal(terror_code(ans), "rate_limited");
			limited++;
		} else if (st == 200) {
			ok++;
		}
		json_decref(ans);
	}
	/* The burst passes; at 1 per second most of the rest does not. */
	assert_true(ok >= 3);
	assert_true(limited >= 1);
	assert_int_equal(ok + limited, 10);
	dir_server_stop(srv);
}

/* An answer with its Retry-After header. */
struct answer_ra {
	char body[4096];
	size_t len;
	long retry_after;               /* -1: no header */
};

static size_t
ra_body(char *p, size_t size, size_t n, void *arg)
{
	struct answer_ra *a = arg;
	size_t len = size * n;

	if (len > sizeof(a->body) - 1 - a->len)
		return 0;
	memcpy(a->body + a->len, p, len);
	a->len += len;
	a->body[a->len] = '\0';
	return len;
}

static size_t
ra_header(char *p, size_t size, size_t n, void *arg)
{
	struct answer_ra *a = arg;
	size_t len = size * n;
	char line[128];

	snprintf(line, sizeof(line), "%.*s", (int)(len < 127 ? len : 127), p);
	if (strncasecmp(line, "Retry-After:", 12) == 0)
		a->retry_after = strtol(line + 12, NULL, 10);
	return len;
}

/* POSTs an envelope with header; the status, body and Retry-After. */
static long
post_envelope(struct fx *f, const char *json, size_t len, const char *header,
    struct answer_ra *a)
{
	struct curl_slist *hdrs = NULL;
	char url[256];
	long status = 0;
	CURL *c;

	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
	assert_non_null(c = curl_easy_init());
	snprintf(url, sizeof(url), "%s/v1/messages", f->d.base);
	hdrs = curl_slist_append(hdrs, header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ra_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ra_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 90L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

/* The answer must be 429 with code, Retry-After >= 1 and a sentence
 * containing each of the words. */
static void
expect_429(const struct answer_ra *a, long status, const char *code,
    const char *const *words, size_t n_words)
{
	json_t *ans;
	const char *msg;
	size_t i;

	if (status != 429)
		fail_msg("got %ld %s, want 429 %s", status, a->body, code);
	assert_non_null(ans = json_loads(a->body, 0, NULL));
	assert_string_equal(terror_code(ans), code);
	assert_true(a->retry_after >= 1);
	msg = json_string_value(json_object_get(json_object_get(ans, "error"),
	    "message"));
	assert_non_null(msg);
	for (i = 0; i < n_words; i++)
		if (strstr(msg, words[i]) == NULL)
			fail_msg("\"%s\" does not say \"%s\"", msg, words[i]);
	json_decref(ans);
}

/* The limits of GET /v1/info include the inbox limits. */
static void
check_info_limits(struct fx *f, unsigned int per_sender, uint64_t quota)
{
	assert_int_equal(tinfo_limit(f->d.base, "max_queue_per_sender"),
	    per_sender);
	assert_int_equal(tinfo_limit(f->d.base, "account_quota"), quota);
}

static void
test_sender_share(void **state)
{
	struct fx *f = *state;
	static const char *const to[] = { ALICE, BOB };
	static const char *const words[] = { "device ", " of '" BOB "'",
	    "1 unread message", "wait until it reads them" };
	const struct tdev *r_b1[] = { &f->b1 };
	struct acctlog_head v[2];
	struct answer_ra a;
	struct dirc *c1, *c2, *cb;
	struct dirc_inbox *in = NULL;
	struct snap before;
	struct err_ctx e;
	char hdr1[128], hdr2[128], *json = NULL;
	size_t len = 0;
	uint64_t removed = 0;
	long st;

	/* One message per sender per device; the queue holds 2. */
	f->d.api.cfg.max_queue_per_sender = 1;
	check_info_limits(f, 1, DIR_ACCOUNT_QUOTA_DEFAULT);
	register_dev(f, &f->a1, PW);
	register_dev(f, &f->a2, PW);
	register_dev(f, &f->b1, BOB_PW);
	c1 = login(f, &f->a1);
	c2 = login(f, &f->a2);
	cb = login(f, &f->b1);
	bearer_of(c1, hdr1, sizeof(hdr1));
	bearer_of(c2, hdr2, sizeof(hdr2));
	views(c1, v);
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_b1, 1, &json,
	    &len), 0);
	assert_int_equal(post_envelope(f, json, len, hdr1, &a), 201);
	free(json);
	/* The first sender's second message: its share is used up. */
	before = snapshot(f);
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_b1, 1, &json,
	    &len), 0);
	st = post_envelope(f, json, len, hdr1, &a);
	expect_429(&a, st, "sender_share", words,
	    sizeof(words) / sizeof(words[0]));
	assert_unchanged(f, before);
	/* Another sender still gets through to the same device. */
	{
		char *json2 = NULL;
		size_t len2 = 0;

		assert_int_equal(tenv_make(&f->a2, to, 2, v, 2, r_b1, 1,
		    &json2, &len2), 0);
		assert_int_equal(post_envelope(f, json2, len2, hdr2, &a), 201);
		free(json2);
	}
	/* Once bob's device read the first message, the refused one
	 * passes. */
	err_clear(&e);
	assert_int_equal(dirc_inbox(cb, 0, 1, &in, &e), 0);
	assert_int_equal(in->n_items, 1);
	assert_int_equal(dirc_ack(cb, in->items[0].seq, &removed, &e), 0);
	dirc_inbox_free(in);
	assert_int_equal(post_envelope(f, json, len, hdr1, &a), 201);
	free(json);
	dirc_free(c1);
	dirc_free(c2);
	dirc_free(cb);
}

static void
test_quota(void **state)
{
	struct fx *f = *state;
	static const char *const to[] = { ALICE, BOB };
	static const char *const words[] = { "account '" BOB "'", "quota" };
	const struct tdev *r_b1[] = { &f->b1 };
	struct acctlog_head v[2];
	struct answer_ra a;
	struct dirc *c1, *c2;
	struct snap before;
	char hdr1[128], hdr2[128], *j1 = NULL, *j2 = NULL;
	size_t l1 = 0, l2 = 0;
	long st;

	register_dev(f, &f->a1, PW);
	register_dev(f, &f->a2, PW);
	register_dev(f, &f->b1, BOB_PW);
	c1 = login(f, &f->a1);
	c2 = login(f, &f->a2);
	bearer_of(c1, hdr1, sizeof(hdr1));
	bearer_of(c2, hdr2, sizeof(hdr2));
	views(c1, v);
	assert_int_equal(tenv_make(&f->a1, to, 2, v, 2, r_b1, 1, &j1,
	    &l1), 0);
	assert_int_equal(tenv_make(&f->a2, to, 2, v, 2, r_b1, 1, &j2,
	    &l2), 0);
	/* Room for the first envelope, not for both. */
	f->d.api.cfg.account_quota = l1 + l2 - 1;
	check_info_limits(f, DIR_MAX_QUEUE_PER_SENDER_DEFAULT, l1 + l2 - 1);
	assert_int_equal(post_envelope(f, j1, l1, hdr1, &a), 201);
	before = snapshot(f);
	st = post_envelope(f, j2, l2, hdr2, &a);
	expect_429(&a, st, "quota_exceeded", words,
	    sizeof(words) / sizeof(words[0]));
	assert_unchanged(f, before);
	/* One byte more and it fits. */
	f->d.api.cfg.account_quota = l1 + l2;
	assert_int_equal(post_envelope(f, j2, l2, hdr2, &a), 201);
	free(j1);
	free(j2);
	dirc_free(c1);
	dirc_free(c2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info_health_routing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_account_create, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_register, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_register_too_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_and_devices, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sender_share, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longpoll, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_concurrent_registrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
