/*
 * dir-parse.c - request paths, query numbers, small JSON bodies, HTTP
 * Basic credentials and stored password hashes, without HTTP or storage.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dir-auth.h"
#include "dir-parse.h"
#include "errors.h"

#define BASIC_PREFIX "Basic "
#define PWHASH_PREFIX "$scrypt$ln="

/* --- paths --- */

int
dir_parse_path(const char *path, struct dir_path *out)
{
	const char *p = path, *q;
	size_t len;

	out->n = 0;
	if (*p != '/')
		return ERR_FORMAT;
	while (*p == '/') {
		p++;
		if (*p == '\0')
			break;
		q = strchr(p, '/');
		len = q != NULL ? (size_t)(q - p) : strlen(p);
		if (len == 0 || len > DIR_PATH_SEGMENT_MAX ||
		    out->n == DIR_PATH_SEGMENTS_MAX)
			return ERR_FORMAT;
		memcpy(out->seg[out->n], p, len);
		out->seg[out->n][len] = '\0';
		out->n++;
		p += len;
	}
	return *p == '\0' ? 0 : ERR_FORMAT;
}

/* The endpoints directly under /v1/. */
static const struct {
	const char *name;
	enum dir_endpoint endpoint;
} top_endpoints[] = {
	{ "info", DIR_EP_INFO },
	{ "health", DIR_EP_HEALTH },
	{ "accounts", DIR_EP_ACCOUNTS },
	{ "session", DIR_EP_SESSION },
	{ "messages", DIR_EP_MESSAGES },
	{ "inbox", DIR_EP_INBOX },
	{ "blobs", DIR_EP_BLOBS },
};

enum dir_endpoint
dir_parse_route(const char *path, struct dir_route *out)
{
	struct dir_path path_segs, *p = &path_segs;
	enum dir_endpoint ep = DIR_EP_NONE;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (dir_parse_path(path, p) != 0 || p->n < 2 ||
	    strcmp(p->seg[0], "v1") != 0)
		goto out;
	if (p->n == 2) {
		for (i = 0; i < sizeof(top_endpoints) /
		    sizeof(top_endpoints[0]); i++)
			if (strcmp(p->seg[1], top_endpoints[i].name) == 0)
				ep = top_endpoints[i].endpoint;
		goto out;
	}
	if (strcmp(p->seg[1], "tlog") == 0) {
		if (p->n == 3 && strcmp(p->seg[2], "checkpoint") == 0)
			ep = DIR_EP_TLOG_CHECKPOINT;
		else if (p->n == 3 && strcmp(p->seg[2], "leaves") == 0)
			ep = DIR_EP_TLOG_LEAVES;
		else if (p->n == 4 && strcmp(p->seg[2], "proof") == 0 &&
		    strcmp(p->seg[3], "inclusion") == 0)
			ep = DIR_EP_TLOG_INCLUSION;
		else if (p->n == 4 && strcmp(p->seg[2], "proof") == 0 &&
		    strcmp(p->seg[3], "consistency") == 0)
			ep = DIR_EP_TLOG_CONSISTENCY;
		goto out;
	}
	if (p->n == 3) {
		if (strcmp(p->seg[1], "inbox") == 0 &&
		    strcmp(p->seg[2], "ack") == 0)
			ep = DIR_EP_INBOX_ACK;
		else if (strcmp(p->seg[1], "blobs") == 0) {
			ep = DIR_EP_BLOB;
			memcpy(out->blob, p->seg[2], sizeof(out->blob));
		}
		goto out;
	}
	if (strcmp(p->seg[1], "accounts") != 0)
		goto out;
	if (p->n == 4 && strcmp(p->seg[3], "log") == 0)
		ep = DIR_EP_LOG;
	else if (p->n == 4 && strcmp(p->seg[3], "devices") == 0)
		ep = DIR_EP_DEVICES;
	else if (p->n == 5 && strcmp(p->seg[3], "devices") == 0)
		ep = DIR_EP_DEVICE;
	if (ep != DIR_EP_NONE)
		memcpy(out->account, p->seg[2], sizeof(out->account));
	if (ep == DIR_EP_DEVICE)
		memcpy(out->device, p->seg[4], sizeof(out->device));
 out:
	out->endpoint = ep;
	return ep;
}

/* --- query arguments --- */

int
dir_parse_query_u64(const char *name, const char *value, uint64_t def,
    uint64_t min, uint64_t max, uint64_t *out, struct err_ctx *e)
{
	unsigned long long v;
	char *end;

	if (value == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	if (*value < '0' || *value > '9' || strlen(value) > 20 ||
	    (v = strtoull(value, &end, 10), errno != 0) || *end != '\0' ||
	    v < min || v > max)
		return err_set(e, ERR_FORMAT, "query argument '%s' must be a "
		    "decimal number from %llu to %llu", name,
		    (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}

/* --- JSON bodies --- */

/* The body as a JSON object with only the allowed keys; *out is a new
 * reference on success. */
static int
body_object(const uint8_t *body, size_t len, size_t max,
    const char *const *allowed, size_t n_allowed, const char *what,
    json_t **out, struct err_ctx *e)
{
	json_t *obj = NULL;
	int r;

	if (len == 0)
		return err_set(e, ERR_FORMAT, "the request needs a JSON body "
		    "(%s)", what);
	if ((r = devrec_json_load((const char *)body, len, max, &obj, what,
	    e)) != 0)
		return r;
	if (!json_is_object(obj)) {
		json_decref(obj);
		return err_set(e, ERR_FORMAT, "%s must be a JSON object",
		    what);
	}
	if ((r = devrec_json_keys(obj, allowed, n_allowed, what, e)) != 0) {
		json_decref(obj);
		return r;
	}
	*out = obj;
	return 0;
}

int
dir_parse_login(const uint8_t *body, size_t len, struct dir_login_req *out,
    struct err_ctx *e)
{
	static const char *const keys[] = { "device", "time", "nonce", "sig" };
	struct dir_login_req req;
	json_t *obj = NULL;
	int r = ERR_INTERNAL;

	memset(&req, 0, sizeof(req));
	if ((r = body_object(body, len, DIR_LOGIN_JSON_MAX, keys, 4, "login",
	    &obj, e)) != 0 ||
	    (r = devrec_json_id(obj, "device", req.device, "login", e)) != 0 ||
	    (r = devrec_json_u64(obj, "time", &req.time, "login", e)) != 0 ||
	    (r = devrec_json_b64(obj, "nonce", req.nonce, sizeof(req.nonce),
	    &req.nonce_len, "login", e)) != 0 ||
	    (r = devrec_json_b64_exact(obj, "sig", req.sig, sizeof(req.sig),
	    "login", e)) != 0)
		goto out;
	if (req.nonce_len < DIR_NONCE_MIN) {
		r = err_set(e, ERR_FORMAT, "login: the nonce must be %d to %d "
		    "random bytes (32 recommended)", DIR_NONCE_MIN,
		    DIR_NONCE_MAX);
		goto out;
	}
	*out = req;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

int
dir_parse_revoke(const uint8_t *body, size_t len, struct dir_revoke_req *out,
    struct err_ctx *e)
{
	static const char *const keys[] = { "time", "revoke_sig" };
	struct dir_revoke_req req;
	json_t *obj = NULL;
	int r = ERR_INTERNAL;

	if ((r = body_object(body, len, DIR_SMALL_JSON_MAX, keys, 2,
	    "revocation", &obj, e)) != 0 ||
	    (r = devrec_json_u64(obj, "time", &req.time, "revocation",
	    e)) != 0 ||
	    (r = devrec_json_b64_exact(obj, "revoke_sig", req.sig,
	    sizeof(req.sig), "revocation", e)) != 0)
		goto out;
	*out = req;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

int
dir_parse_ack(const uint8_t *body, size_t len, uint64_t *upto,
    struct err_ctx *e)
{
	static const char *const keys[] = { "upto" };
	json_t *obj = NULL;
	uint64_t v;
	int r = ERR_INTERNAL;

	if ((r = body_object(body, len, DIR_SMALL_JSON_MAX, keys, 1,
	    "acknowledgement", &obj, e)) != 0 ||
	    (r = devrec_json_u64(obj, "upto", &v, "acknowledgement", e)) != 0)
		goto out;
	*upto = v;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

/* Overwrites a JSON string value that held a secret before it is freed. */
static void
json_wipe_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		crypto_wipe((void *)(uintptr_t)json_string_value(v),
		    json_string_length(v));
}

int
dir_parse_account(const uint8_t *body, size_t len,
    struct dir_account_req *out, struct err_ctx *e)
{
	static const char *const keys[] = { "account", "password" };
	json_t *obj = NULL;
	const char *account, *pw;
	size_t pw_len;
	int r = ERR_INTERNAL;

	if ((r = body_object(body, len, DIR_SMALL_JSON_MAX, keys, 2,
	    "account request", &obj, e)) != 0 ||
	    (r = devrec_json_str(obj, "account", DEVREC_ACCOUNT_MAX,
	    &account, "account request", e)) != 0 ||
	    (r = devrec_account_check(account, e)) != 0 ||
	    (r = devrec_json_str(obj, "password", DIR_PASSWORD_MAX, &pw,
	    "account request", e)) != 0)
		goto out;
	pw_len = json_string_length(json_object_get(obj, "password"));
	if ((r = dir_password_check(pw, pw_len, e)) != 0)
		goto out;
	out->obj = obj;
	obj = NULL; /* transferred */
	out->account = account;
	out->password = pw;
	out->password_len = pw_len;
	r = 0;
 out:
	if (obj != NULL) {
		json_wipe_string(obj, "password");
		json_decref(obj);
	}
	return r;
}

void
dir_parse_account_clear(struct dir_account_req *req)
{
	if (req == NULL)
		return;
	if (req->obj != NULL) {
		json_wipe_string(req->obj, "password");
		json_decref(req->obj);
	}
	memset(req, 0, sizeof(*req));
}

/* --- HTTP Basic credentials --- */

/* The base64url letter of a standard base64 letter; -1 for '-', '_' and
 * anything outside the standard alphabet. */
static int
std_to_url(char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return c;
	if (c == '+')
		return '-';
	if (c == '/')
		return '_';
	return -1;
}

int
dir_parse_basic_auth(const char *header, char **user, char **pw,
    size_t *pw_len)
{
	const char *b64;
	char *url = NULL, *u = NULL, *p = NULL;
	uint8_t *dec = NULL;
	const uint8_t *colon;
	size_t len, n, i = 0, dec_len = 0;
	int c, r = ERR_INTERNAL;

	if (header == NULL ||
	    strncmp(header, BASIC_PREFIX, sizeof(BASIC_PREFIX) - 1) != 0)
		return ERR_NOT_FOUND;
	b64 = header + sizeof(BASIC_PREFIX) - 1;
	len = strlen(b64);
	/* Padded to whole groups of four, one or two '=' at the end only. */
	if (len == 0 || len % 4 != 0)
		return ERR_FORMAT;
	n = len;
	if (b64[n - 1] == '=')
		n--;
	if (b64[n - 1] == '=')
		n--;
	if ((url = malloc(n + 1)) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n; i++) {
		if ((c = std_to_url(b64[i])) < 0) {
			r = ERR_FORMAT;
			goto out;
		}
		url[i] = (char)c;
	}
	/* Strict: canonical trailing bits, no impossible lengths. */
	if ((r = b64url_decode(url, n, len, &dec, &dec_len)) != 0)
		goto out;
	if (memchr(dec, '\0', dec_len) != NULL ||
	    (colon = memchr(dec, ':', dec_len)) == NULL) {
		r = ERR_FORMAT;
		goto out;
	}
	n = (size_t)(colon - dec);
	if ((u = malloc(n + 1)) == NULL ||
	    (p = malloc(dec_len - n)) == NULL) {
		r = ERR_ALLOC;
		goto out;
	}
	memcpy(u, dec, n);
	u[n] = '\0';
	memcpy(p, colon + 1, dec_len - n - 1);
	p[dec_len - n - 1] = '\0';
	*pw_len = dec_len - n - 1;
	*user = u;
	*pw = p;
	u = p = NULL; /* transferred */
	r = 0;
 out:
	crypto_wipe(url, i);
	free(url);
	if (dec != NULL) {
		crypto_wipe(dec, dec_len);
		free(dec);
	}
	free(u);
	free(p);
	return r;
}

/* --- stored password hashes --- */

int
dir_parse_pwhash(const char *stored, struct dir_pwhash *out,
    struct err_ctx *e)
{
	struct dir_pwhash h;
	char params[32];
	const char *p, *dk_s;
	size_t params_len;
	int r = ERR_FORMAT;

	memset(&h, 0, sizeof(h));
	if (strncmp(stored, PWHASH_PREFIX, sizeof(PWHASH_PREFIX) - 1) != 0)
		goto out;
	p = stored + sizeof(PWHASH_PREFIX) - 1;
	/* One or two digits, no leading zero: the form written above. */
	if (*p < '1' || *p > '9')
		goto out;
	h.log_n = (unsigned int)(*p++ - '0');
	if (*p >= '0' && *p <= '9')
		h.log_n = h.log_n * 10 + (unsigned int)(*p++ - '0');
	if (h.log_n < DIR_SCRYPT_LOG_N_MIN || h.log_n > DIR_SCRYPT_LOG_N_MAX)
		goto out;
	params_len = (size_t)snprintf(params, sizeof(params), ",r=%d,p=%d$",
	    DIR_SCRYPT_R, DIR_SCRYPT_P);
	if (strncmp(p, params, params_len) != 0)
		goto out;
	p += params_len;
	if ((dk_s = strchr(p, '$')) == NULL ||
	    b64url_decode_exact(p, (size_t)(dk_s - p), h.salt,
	    sizeof(h.salt)) != 0 ||
	    b64url_decode_exact(dk_s + 1, strlen(dk_s + 1), h.dk,
	    sizeof(h.dk)) != 0)
		goto out;
	*out = h;
	r = 0;
 out:
	crypto_wipe(&h, sizeof(h));
	if (r != 0)
		return err_set(e, ERR_FORMAT, "stored password hash has an "
		    "unknown format");
	return 0;
}

int
dir_parse_pwhash_encode(const struct dir_pwhash *h, char **out)
{
	char *salt_b64 = NULL, *dk_b64 = NULL, *s = NULL;
	int r = ERR_ALLOC;

	if (b64url_encode(h->salt, sizeof(h->salt), &salt_b64) != 0 ||
	    b64url_encode(h->dk, sizeof(h->dk), &dk_b64) != 0 ||
	    (s = malloc(DIR_PWHASH_TEXT_MAX)) == NULL)
		goto out;
	snprintf(s, DIR_PWHASH_TEXT_MAX, PWHASH_PREFIX "%u,r=%d,p=%d$%s$%s",
	    h->log_n, DIR_SCRYPT_R, DIR_SCRYPT_P, salt_b64, dk_b64);
	*out = s;
	r = 0;
 out:
	free(salt_b64);
	if (dk_b64 != NULL) {
		crypto_wipe(dk_b64, strlen(dk_b64));
		free(dk_b64);
	}
	return r;
}
