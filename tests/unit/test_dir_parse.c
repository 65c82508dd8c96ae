/*
 * test_dir_parse.c - the directory's request parsers: paths and routes,
 * query numbers, the small JSON bodies, HTTP Basic credentials and stored
 * password hashes.  Mostly what they must refuse, and with which words.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dir-parse.h"
#include "errors.h"

#define DEV "0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"
/* base64url of 32 and 64 zero bytes, of 15 and 65 zero bytes */
#define B64_32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define B64_64 B64_32 B64_32
#define B64_15 "AAAAAAAAAAAAAAAAAAAA"
#define B64_65 B64_64 "A"
#define SALT "AAECAwQFBgcICQoLDA0ODw"
#define DK "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM"

static int
parse_text(int (*fn)(const uint8_t *, size_t, void *, struct err_ctx *),
    const char *text, void *out, struct err_ctx *e)
{
	err_clear(e);
	return fn((const uint8_t *)text, strlen(text), out, e);
}

static int
login(const uint8_t *p, size_t len, void *out, struct err_ctx *e)
{
	return dir_parse_login(p, len, out, e);
}

static int
revoke(const uint8_t *p, size_t len, void *out, struct err_ctx *e)
{
	return dir_parse_revoke(p, len, out, e);
}

static int
ack(const uint8_t *p, size_t len, void *out, struct err_ctx *e)
{
	return dir_parse_ack(p, len, out, e);
}

static int
account(const uint8_t *p, size_t len, void *out, struct err_ctx *e)
{
	return dir_parse_account(p, len, out, e);
}

static void
test_path(void **state)
{
	static const char *const bad[] = {
		"", "v1/info", "//v1", "/v1//info", "/a/b/c/d/e/f/g",
		"/v1/info//",
	};
	struct dir_path p;
	char seg[DIR_PATH_SEGMENT_MAX + 3];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dir_parse_path(bad[i], &p), ERR_FORMAT);
	memset(seg, 'a', sizeof(seg));
	seg[0] = '/';
	seg[sizeof(seg) - 1] = '\0';          /* 257-byte segment */
	assert_int_equal(dir_parse_path(seg, &p), ERR_FORMAT);
	seg[sizeof(seg) - 2] = '\0';          /* 256 bytes: fine */
	assert_int_equal(dir_parse_path(seg, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(dir_parse_path("/", &p), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(dir_parse_path("/a/b/c/d/e/f/", &p), 0);
	assert_int_equal(p.n, 6);
	assert_string_equal(p.seg[5], "f");
}

static void
test_route(void **state)
{
	static const char *const none[] = {
		"", "/", "/v1", "/v2/info", "/v1/infox", "/v1/inbox/ack/x",
		"/v1/inbox/nack", "/v1/users/a/log", "/v1/accounts/a",
		"/v1/accounts/a/logs", "/v1/accounts/a/log/x",
		"/v1/accounts/a/devices/d/x", "/v1/accounts//log",
		"/v1/blobs/a/b", "/v1/blobs//", "/v1/blob",
	};
	struct dir_route r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		assert_int_equal(dir_parse_route(none[i], &r), DIR_EP_NONE);
		assert_string_equal(r.account, "");
	}
	assert_int_equal(dir_parse_route("/v1/info", &r), DIR_EP_INFO);
	assert_int_equal(dir_parse_route("/v1/inbox/", &r), DIR_EP_INBOX);
	assert_int_equal(dir_parse_route("/v1/inbox/ack", &r),
	    DIR_EP_INBOX_ACK);
	assert_int_equal(dir_parse_route("/v1/accounts/a@b.c/log", &r),
	    DIR_EP_LOG);
	assert_string_equal(r.account, "a@b.c");
	assert_int_equal(dir_parse_route("/v1/accounts/x/devices/" DEV, &r),
	    DIR_EP_DEVICE);
	assert_string_equal(r.account, "x");
	assert_string_equal(r.device, DEV);
	assert_int_equal(dir_parse_route("/v1/blobs", &r), DIR_EP_BLOBS);
	assert_string_equal(r.blob, "");
	assert_int_equal(dir_parse_route("/v1/blobs/" DEV, &r), DIR_EP_BLOB);
	assert_string_equal(r.blob, DEV);
	assert_string_equal(r.account, "");
}

static void
test_query(void **state)
{
	static const char *const bad[] = {
		"", "-1", "+1", " 1", "1 ", "0x10", "61", "1e3",
		"000000000000000000001", "18446744073709551616",
	};
	struct err_ctx e;
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		v = 7;
		assert_int_equal(dir_parse_query_u64("wait", bad[i], 0, 0, 60,
		    &v, &e), ERR_FORMAT);
		assert_int_equal(v, 7);
		assert_string_equal(err_msg(&e), "query argument 'wait' must "
		    "be a decimal number from 0 to 60");
	}
	assert_int_equal(dir_parse_query_u64("limit", "0", 100, 1, 1000, &v,
	    &e), ERR_FORMAT);
	assert_int_equal(dir_parse_query_u64("limit", NULL, 100, 1, 1000, &v,
	    &e), 0);
	assert_int_equal(v, 100);
	assert_int_equal(dir_parse_query_u64("since", "0060", 0, 0, 60, &v,
	    &e), 0);
	assert_int_equal(v, 60);
}

static void
test_login(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"device\":\"" DEV "\",\"time\":1,\"nonce\":\"" B64_32
		    "\",\"sig\":\"" B64_64 "\",\"extra\":1}",
		"{\"device\":\"" DEV "\",\"time\":1,\"nonce\":\"" B64_32 "\"}",
		"{\"device\":\"ABC\",\"time\":1,\"nonce\":\"" B64_32
		    "\",\"sig\":\"" B64_64 "\"}",
		"{\"device\":\"" DEV "\",\"time\":-1,\"nonce\":\"" B64_32
		    "\",\"sig\":\"" B64_64 "\"}",
		"{\"device\":\"" DEV "\",\"time\":1,\"nonce\":\"" B64_32
		    "=\",\"sig\":\"" B64_64 "\"}",
		"{\"device\":\"" DEV "\",\"time\":1,\"nonce\":\"" B64_32
		    "\",\"sig\":\"" B64_65 "\"}",
		"{\"device\":\"" DEV "\",\"time\":1,\"time\":2,\"nonce\":\""
		    B64_32 "\",\"sig\":\"" B64_64 "\"}",
	};
	struct dir_login_req req;
	struct err_ctx e;
	char big[DIR_LOGIN_JSON_MAX + 2];
	size_t i;

	(void)state;
	err_clear(&e);
	assert_int_equal(dir_parse_login((const uint8_t *)"", 0, &req, &e),
	    ERR_FORMAT);
	assert_string_equal(err_msg(&e), "the request needs a JSON body "
	    "(login)");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(parse_text(login, bad[i], &req, &e), 0);
	assert_int_equal(parse_text(login, "[]", &req, &e), ERR_FORMAT);
	assert_string_equal(err_msg(&e), "login: not a JSON object");
	/* Too short a nonce, and the words a client sees. */
	assert_int_equal(parse_text(login, "{\"device\":\"" DEV "\",\"time\":1,"
	    "\"nonce\":\"" B64_15 "\",\"sig\":\"" B64_64 "\"}", &req, &e),
	    ERR_FORMAT);
	assert_string_equal(err_msg(&e), "login: the nonce must be 16 to 64 "
	    "random bytes (32 recommended)");
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	assert_int_not_equal(parse_text(login, big, &req, &e), 0);
	assert_int_equal(parse_text(login, "{\"device\":\"" DEV "\",\"time\":5,"
	    "\"nonce\":\"" B64_32 "\",\"sig\":\"" B64_64 "\"}", &req, &e), 0);
	assert_string_equal(req.device, DEV);
	assert_int_equal(req.time, 5);
	assert_int_equal(req.nonce_len, 32);
}

static void
test_revoke_ack(void **state)
{
	static const char *const bad_revoke[] = {
		"{}", "{\"time\":1}", "{\"time\":\"1\",\"revoke_sig\":\""
		    B64_64 "\"}",
		"{\"time\":1,\"revoke_sig\":\"" B64_32 "\"}",
		"{\"time\":1,\"sig\":\"" B64_64 "\"}",
		"{\"time\":9007199254740993,\"revoke_sig\":\"" B64_64 "\"}",
	};
	static const char *const bad_ack[] = {
		"{}", "{\"upto\":1.5}", "{\"upto\":-3}", "{\"upto\":null}",
		"{\"upto\":1,\"upto\":2}", "{\"upto\":1,\"x\":2}", "17", "{",
	};
	struct dir_revoke_req rv;
	struct err_ctx e;
	uint64_t upto = 99;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_revoke) / sizeof(bad_revoke[0]); i++)
		assert_int_not_equal(parse_text(revoke, bad_revoke[i], &rv,
		    &e), 0);
	assert_int_equal(parse_text(revoke, "{\"time\":3,\"revoke_sig\":\""
	    B64_64 "\"}", &rv, &e), 0);
	assert_int_equal(rv.time, 3);
	for (i = 0; i < sizeof(bad_ack) / sizeof(bad_ack[0]); i++) {
		assert_int_not_equal(parse_text(ack, bad_ack[i], &upto, &e),
		    0);
		assert_int_equal(upto, 99);
	}
	assert_int_equal(parse_text(ack, "{\"upto\":17}", &upto, &e), 0);
	assert_int_equal(upto, 17);
}

static void
test_account(void **state)
{
	static const char *const bad[] = {
		"{\"account\":\"carol@example.org\"}",
		"{\"password\":\"long enough\"}",
		"{\"account\":\"not an account\",\"password\":\"long enough\"}",
		"{\"account\":\"carol@example.org\",\"password\":\"short\"}",
		"{\"account\":\"carol@example.org\",\"password\":\"nul\\u0000"
		    "inside\"}",
		"{\"account\":\"carol@example.org\",\"password\":7}",
		"{\"account\":\"carol@example.org\",\"password\":\"long "
		    "enough\",\"admin\":true}",
	};
	struct dir_account_req req;
	struct err_ctx e;
	size_t i;

	(void)state;
	memset(&req, 0, sizeof(req));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_text(account, bad[i], &req, &e),
		    ERR_FORMAT);
		assert_null(req.obj);
	}
	assert_int_equal(parse_text(account, "{\"account\":\"carol@example."
	    "org\",\"password\":\"short\"}", &req, &e), ERR_FORMAT);
	assert_string_equal(err_msg(&e), "the password must be 8 to 1024 "
	    "bytes long");
	assert_int_equal(parse_text(account, "{\"password\":\"long enough\","
	    "\"account\":\"carol@example.org\"}", &req, &e), 0);
	assert_string_equal(req.account, "carol@example.org");
	assert_int_equal(req.password_len, 11);
	assert_memory_equal(req.password, "long enough", 11);
	dir_parse_account_clear(&req);
	assert_null(req.obj);
	dir_parse_account_clear(NULL);
}

static void
test_basic_auth(void **state)
{
	static const char *const bad[] = {
		"Basic ",
		"Basic YWxpY2U=",                       /* "alice": no ':' */
		"Basic YWxpY2U6cHc",                    /* unpadded */
		"Basic YWxpY2U6cHc==",                  /* too much padding */
		"Basic YWxp=2U6cHc=",                   /* '=' inside */
		"Basic YWxpY2U6cHd=",                   /* trailing bits */
		"Basic YWxpY2U6-_8=",                   /* base64url letters */
		"Basic YWxpY2U6 cHc=",
		"Basic YQA6cHc=",                       /* "a\0:pw" */
		"Basic  YWxpY2U6cHc=",
	};
	char *user = NULL, *pw = NULL;
	size_t pw_len = 0, i;

	(void)state;
	assert_int_equal(dir_parse_basic_auth(NULL, &user, &pw, &pw_len),
	    ERR_NOT_FOUND);
	assert_int_equal(dir_parse_basic_auth("Bearer YWxpY2U6cHc=", &user,
	    &pw, &pw_len), ERR_NOT_FOUND);
	assert_int_equal(dir_parse_basic_auth("basic YWxpY2U6cHc=", &user,
	    &pw, &pw_len), ERR_NOT_FOUND);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dir_parse_basic_auth(bad[i], &user, &pw,
		    &pw_len), ERR_FORMAT);
		assert_null(user);
		assert_null(pw);
	}
	/* "alice:pw:x": the split is at the first ':' */
	assert_int_equal(dir_parse_basic_auth("Basic YWxpY2U6cHc6eA==", &user,
	    &pw, &pw_len), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(pw, "pw:x");
	assert_int_equal(pw_len, 4);
	free(user);
	free(pw);
	/* ":" alone: empty user and password */
	assert_int_equal(dir_parse_basic_auth("Basic Og==", &user, &pw,
	    &pw_len), 0);
	assert_string_equal(user, "");
	assert_int_equal(pw_len, 0);
	free(user);
	free(pw);
}

static void
test_pwhash(void **state)
{
	static const char *const bad[] = {
		"",
		"$scrypt$ln=15,r=8,p=1$" SALT,
		"$scrypt$ln=015,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln= 15,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln=+15,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln=9,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln=21,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln=150,r=8,p=1$" SALT "$" DK,
		"$scrypt$ln=15,r=08,p=1$" SALT "$" DK,
		"$scrypt$ln=15,r=8,p=2$" SALT "$" DK,
		"$scrypt$ln=15,r=8,p=1$" SALT "$" DK "$",
		"$scrypt$ln=15,r=8,p=1$" SALT "A$" DK,
		"$scrypt$ln=15,r=8,p=1$" SALT "$" DK "A",
		"$SCRYPT$ln=15,r=8,p=1$" SALT "$" DK,
	};
	struct dir_pwhash h;
	struct err_ctx e;
	char *text = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(dir_parse_pwhash(bad[i], &h, &e), ERR_FORMAT);
		assert_string_equal(err_msg(&e), "stored password hash has an "
		    "unknown format");
	}
	assert_int_equal(dir_parse_pwhash("$scrypt$ln=20,r=8,p=1$" SALT "$"
	    DK, &h, &e), 0);
	assert_int_equal(h.log_n, 20);
	assert_int_equal(h.salt[15], 15);
	assert_int_equal(dir_parse_pwhash_encode(&h, &text), 0);
	assert_string_equal(text, "$scrypt$ln=20,r=8,p=1$" SALT "$" DK);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_revoke_ack),
		cmocka_unit_test(test_account),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_pwhash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
