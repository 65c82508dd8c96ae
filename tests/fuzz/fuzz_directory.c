/*
 * fuzz_directory.c - libFuzzer harness for devid-directory's own parsers
 * (directory/dir-parse.c).
 *
 * The first input byte picks the parser; the rest is its input:
 *   0  request path: dir_parse_path() and dir_parse_route()
 *   1  query number: dir_parse_query_u64() with the bounds of since, wait
 *      and limit
 *   2  login body (POST /v1/session)
 *   3  revocation body (DELETE /v1/accounts/{a}/devices/{d})
 *   4  acknowledgement body (POST /v1/inbox/ack)
 *   5  account request body (POST /v1/accounts)
 *   6  Authorization header with HTTP Basic credentials
 *   7  stored password hash
 *   8  client address from X-Forwarded-For (dir-net.c)
 * Nothing may crash, leak or trip a sanitizer.  Parsers with one canonical
 * text (paths, query numbers, Basic credentials, password hashes) must
 * re-encode what they accept to the same bytes; JSON bodies, whose text is
 * free in spacing and key order, must survive an encode/parse round trip
 * unchanged and re-encode to the same bytes.  The harness aborts otherwise.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "devrec.h"
#include "dir-auth.h"
#include "dir-net.h"
#include "dir-parse.h"
#include "errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATH_TEXT_MAX \
	(1 + DIR_PATH_SEGMENTS_MAX * (DIR_PATH_SEGMENT_MAX + 1) + 1)

/* A NUL-terminated copy of len bytes (text parsers see C strings, so an
 * embedded NUL ends the text as it would in a header or path). */
static char *
text_copy(const uint8_t *p, size_t len)
{
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Joins segments as "/a/b"; "/" for none. */
static void
path_join(const struct dir_path *p, char *out, size_t out_len)
{
	size_t i, off = 0;

	out[0] = '\0';
	if (p->n == 0)
		snprintf(out, out_len, "/");
	for (i = 0; i < p->n; i++)
		off += (size_t)snprintf(out + off, out_len - off, "/%s",
		    p->seg[i]);
}

/* The path of a routed endpoint, as a client writes it. */
static void
route_encode(const struct dir_route *r, char *out, size_t out_len)
{
	static const char *const top[] = {
		[DIR_EP_INFO] = "info", [DIR_EP_HEALTH] = "health",
		[DIR_EP_ACCOUNTS] = "accounts", [DIR_EP_SESSION] = "session",
		[DIR_EP_MESSAGES] = "messages", [DIR_EP_INBOX] = "inbox",
	};

	switch (r->endpoint) {
	case DIR_EP_INBOX_ACK:
		snprintf(out, out_len, "/v1/inbox/ack");
		break;
	case DIR_EP_LOG:
		snprintf(out, out_len, "/v1/accounts/%s/log", r->account);
		break;
	case DIR_EP_DEVICES:
		snprintf(out, out_len, "/v1/accounts/%s/devices", r->account);
		break;
	case DIR_EP_DEVICE:
		snprintf(out, out_len, "/v1/accounts/%s/devices/%s",
		    r->account, r->device);
		break;
	case DIR_EP_TLOG_CHECKPOINT:
		snprintf(out, out_len, "/v1/tlog/checkpoint");
		break;
	case DIR_EP_TLOG_INCLUSION:
		snprintf(out, out_len, "/v1/tlog/proof/inclusion");
		break;
	case DIR_EP_TLOG_CONSISTENCY:
		snprintf(out, out_len, "/v1/tlog/proof/consistency");
		break;
	case DIR_EP_TLOG_LEAVES:
		snprintf(out, out_len, "/v1/tlog/leaves");
		break;
	case DIR_EP_BLOBS:
		snprintf(out, out_len, "/v1/blobs");
		break;
	case DIR_EP_BLOB:
		snprintf(out, out_len, "/v1/blobs/%s", r->blob);
		break;
	case DIR_EP_NONE:
		abort();
	default:
		if ((size_t)r->endpoint >= sizeof(top) / sizeof(top[0]) ||
		    top[r->endpoint] == NULL)
			abort();        /* an endpoint this harness lacks */
		snprintf(out, out_len, "/v1/%s", top[r->endpoint]);
		break;
	}
}

static void
fuzz_path(const uint8_t *p, size_t len)
{
	struct dir_path *a, *b;
	struct dir_route route;
	char *s = text_copy(p, len), joined[PATH_TEXT_MAX], routed[PATH_TEXT_MAX];
	size_t slen = strlen(s), i;
	int path_ok;

	if ((a = calloc(2, sizeof(*a))) == NULL)
		abort();
	b = a + 1;
	joined[0] = '\0';
	if ((path_ok = dir_parse_path(s, a) == 0)) {
		/* Canonical but for one optional trailing '/'. */
		path_join(a, joined, sizeof(joined));
		if (strcmp(joined, s) != 0 &&
		    !(slen > 1 && s[slen - 1] == '/' &&
		    strlen(joined) == slen - 1 &&
		    memcmp(joined, s, slen - 1) == 0))
			abort();
		if (dir_parse_path(joined, b) != 0 || b->n != a->n)
			abort();
		for (i = 0; i < a->n; i++)
			if (strcmp(a->seg[i], b->seg[i]) != 0)
				abort();
	}
	if (dir_parse_route(s, &route) != DIR_EP_NONE) {
		if (!path_ok)
			abort();
		route_encode(&route, routed, sizeof(routed));
		if (strcmp(routed, joined) != 0)
			abort();
	} else if (route.endpoint != DIR_EP_NONE) {
		abort();
	}
	free(a);
	free(s);
}

static void
fuzz_query(const uint8_t *p, size_t len)
{
	static const struct {
		const char *name;
		uint64_t def, min, max;
	} args[] = {
		{ "since", 0, 0, INT64_MAX },
		{ "wait", 0, 0, 60 },
		{ "limit", 100, 1, 1000 },
	};
	struct err_ctx e;
	char *s = text_copy(p, len), again[32];
	const char *digits;
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		err_clear(&e);
		if (dir_parse_query_u64(args[i].name, NULL, args[i].def,
		    args[i].min, args[i].max, &v, &e) != 0 || v != args[i].def)
			abort();
		if (dir_parse_query_u64(args[i].name, s, args[i].def,
		    args[i].min, args[i].max, &v, &e) != 0)
			continue;
		if (v < args[i].min || v > args[i].max)
			abort();
		/* Canonical once leading zeros are dropped. */
		for (digits = s; digits[0] == '0' && digits[1] != '\0';
		    digits++)
			;
		snprintf(again, sizeof(again), "%llu", (unsigned long long)v);
		if (strcmp(again, digits) != 0)
			abort();
	}
	free(s);
}

/* Compact JSON text of obj (consumed). */
static char *
json_text(json_t *obj)
{
	char *text;

	if (obj == NULL || (text = json_dumps(obj, JSON_COMPACT)) == NULL)
		abort();
	json_decref(obj);
	return text;
}

static char *
login_encode(const struct dir_login_req *req)
{
	json_t *obj = json_object();

	if (obj == NULL ||
	    devrec_json_set_str(obj, "device", req->device) != 0 ||
	    devrec_json_set_u64(obj, "time", req->time) != 0 ||
	    devrec_json_set_b64(obj, "nonce", req->nonce,
	    req->nonce_len) != 0 ||
	    devrec_json_set_b64(obj, "sig", req->sig, sizeof(req->sig)) != 0)
		abort();
	return json_text(obj);
}

static void
fuzz_login(const uint8_t *p, size_t len)
{
	struct dir_login_req a, b;
	struct err_ctx e;
	char *t1, *t2;

	err_clear(&e);
	if (dir_parse_login(p, len, &a, &e) != 0)
		return;
	if (a.nonce_len < DIR_NONCE_MIN || a.nonce_len > DIR_NONCE_MAX ||
	    !devrec_id_valid(a.device))
		abort();
	t1 = login_encode(&a);
	if (dir_parse_login((const uint8_t *)t1, strlen(t1), &b, &e) != 0 ||
	    strcmp(a.device, b.device) != 0 || a.time != b.time ||
	    a.nonce_len != b.nonce_len ||
	    memcmp(a.nonce, b.nonce, a.nonce_len) != 0 ||
	    memcmp(a.sig, b.sig, sizeof(a.sig)) != 0)
		abort();
	t2 = login_encode(&b);
	if (strcmp(t1, t2) != 0)
		abort();
	free(t1);
	free(t2);
}

static char *
revoke_encode(const struct dir_revoke_req *req)
{
	json_t *obj = json_object();

	if (obj == NULL ||
	    devrec_json_set_u64(obj, "time", req->time) != 0 ||
	    devrec_json_set_b64(obj, "revoke_sig", req->sig,
	    sizeof(req->sig)) != 0)
		abort();
	return json_text(obj);
}

static void
fuzz_revoke(const uint8_t *p, size_t len)
{
	struct dir_revoke_req a, b;
	struct err_ctx e;
	char *t1, *t2;

	err_clear(&e);
	if (dir_parse_revoke(p, len, &a, &e) != 0)
		return;
	t1 = revoke_encode(&a);
	if (dir_parse_revoke((const uint8_t *)t1, strlen(t1), &b, &e) != 0 ||
	    a.time != b.time || memcmp(a.sig, b.sig, sizeof(a.sig)) != 0)
		abort();
	t2 = revoke_encode(&b);
	if (strcmp(t1, t2) != 0)
		abort();
	free(t1);
	free(t2);
}

static void
fuzz_ack(const uint8_t *p, size_t len)
{
	struct err_ctx e;
	uint64_t a, b;
	json_t *obj;
	char *t1, *t2;

	err_clear(&e);
	if (dir_parse_ack(p, len, &a, &e) != 0)
		return;
	if ((obj = json_object()) == NULL ||
	    devrec_json_set_u64(obj, "upto", a) != 0)
		abort();
	t1 = json_text(obj);
	if (dir_parse_ack((const uint8_t *)t1, strlen(t1), &b, &e) != 0 ||
	    a != b)
		abort();
	if ((obj = json_object()) == NULL ||
	    devrec_json_set_u64(obj, "upto", b) != 0)
		abort();
	t2 = json_text(obj);
	if (strcmp(t1, t2) != 0)
		abort();
	free(t1);
	free(t2);
}

static char *
account_encode(const struct dir_account_req *req)
{
	json_t *obj = json_object();

	if (obj == NULL ||
	    json_object_set_new(obj, "account",
	    json_string(req->account)) != 0 ||
	    json_object_set_new(obj, "password", json_stringn(req->password,
	    req->password_len)) != 0)
		abort();
	return json_text(obj);
}

static void
fuzz_account(const uint8_t *p, size_t len)
{
	struct dir_account_req a, b;
	struct err_ctx e;
	char *t1, *t2;

	err_clear(&e);
	if (dir_parse_account(p, len, &a, &e) != 0)
		return;
	if (devrec_account_check(a.account, NULL) != 0 ||
	    dir_password_check(a.password, a.password_len, NULL) != 0)
		abort();
	t1 = account_encode(&a);
	if (dir_parse_account((const uint8_t *)t1, strlen(t1), &b, &e) != 0 ||
	    strcmp(a.account, b.account) != 0 ||
	    a.password_len != b.password_len ||
	    memcmp(a.password, b.password, a.password_len) != 0)
		abort();
	t2 = account_encode(&b);
	if (strcmp(t1, t2) != 0)
		abort();
	dir_parse_account_clear(&a);
	dir_parse_account_clear(&b);
	dir_parse_account_clear(NULL);
	free(t1);
	free(t2);
}

static void
fuzz_basic(const uint8_t *p, size_t len)
{
	char *s = text_copy(p, len), *user = NULL, *pw = NULL, *again;
	unsigned char *plain;
	size_t pw_len = 0, ulen, plain_len;

	if (dir_parse_basic_auth(s, &user, &pw, &pw_len) != 0)
		goto out;
	ulen = strlen(user);
	if (strlen(pw) != pw_len || strchr(user, ':') != NULL)
		abort();
	plain_len = ulen + 1 + pw_len;
	if ((plain = malloc(plain_len)) == NULL ||
	    (again = malloc(6 + 4 * (plain_len / 3 + 1) + 1)) == NULL)
		abort();
	memcpy(plain, user, ulen);
	plain[ulen] = ':';
	memcpy(plain + ulen + 1, pw, pw_len);
	memcpy(again, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)again + 6, plain, (int)plain_len);
	if (strcmp(again, s) != 0)
		abort();
	free(plain);
	free(again);
	free(user);
	free(pw);
 out:
	free(s);
}

static void
fuzz_pwhash(const uint8_t *p, size_t len)
{
	struct dir_pwhash h;
	struct err_ctx e;
	char *s = text_copy(p, len), *again = NULL;

	err_clear(&e);
	if (dir_parse_pwhash(s, &h, &e) == 0) {
		if (h.log_n < DIR_SCRYPT_LOG_N_MIN ||
		    h.log_n > DIR_SCRYPT_LOG_N_MAX ||
		    dir_parse_pwhash_encode(&h, &again) != 0 ||
		    strcmp(again, s) != 0)
			abort();
		free(again);
	}
	free(s);
}

/*
 * An address that is accepted gives a key that is either the IPv4 address
 * again (and accepted again, to itself) or an IPv6 /64 prefix.
 */
static void
fuzz_forwarded(const uint8_t *p, size_t len)
{
	char *s = text_copy(p, len);
	char key[DIR_NET_KEY_MAX], again[DIR_NET_KEY_MAX];
	size_t n;

	if (dir_net_key_text(s, key, sizeof(key)) == 0) {
		n = strlen(key);
		if (n == 0 || n >= sizeof(key))
			abort();
		if (strchr(key, ':') != NULL) {
			if (n < 4 || strcmp(key + n - 3, "/64") != 0)
				abort();
		} else if (dir_net_key_text(key, again, sizeof(again)) != 0 ||
		    strcmp(again, key) != 0) {
			abort();
		}
	} else if (strcmp(key, "unknown") != 0) {
		abort();
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 9) {
	case 0:
		fuzz_path(data + 1, size - 1);
		break;
	case 1:
		fuzz_query(data + 1, size - 1);
		break;
	case 2:
		fuzz_login(data + 1, size - 1);
		break;
	case 3:
		fuzz_revoke(data + 1, size - 1);
		break;
	case 4:
		fuzz_ack(data + 1, size - 1);
		break;
	case 5:
		fuzz_account(data + 1, size - 1);
		break;
	case 6:
		fuzz_basic(data + 1, size - 1);
		break;
	case 7:
		fuzz_pwhash(data + 1, size - 1);
		break;
	default:
		fuzz_forwarded(data + 1, size - 1);
		break;
	}
	return 0;
}
