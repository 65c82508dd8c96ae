/*
 * dirclient.c - the directory HTTP client on libcurl.
 */
#include "config.h"

#include <netinet/in.h>
#include <arpa/inet.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "acctlog.h"
#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "dirclient-private.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-client.h"
#include "tlog-note.h"
#include "transcript.h"

#define URL_MAX 2048
#define ERROR_BODY_MAX ((size_t)8192)
#define LONGPOLL_MARGIN_S 15
#define URL_HOST_MAX 255
/* docs/protocol.md section 8.3: hashes in POST /v1/messages?blobs=. */
#define BLOBS_PER_MESSAGE_MAX 16
/*
 * Blob transfers have no total timeout (a large blob on a slow link takes
 * long): instead they fail when fewer than BLOB_LOW_SPEED_BYTES move per
 * second for the request timeout.  Large buffers keep the throughput up.
 */
#define BLOB_LOW_SPEED_BYTES 512L
#define BLOB_BUFFER_SIZE (512L * 1024)

struct dirc {
	CURL *curl;
	char *base;
	char *ca_file;
	long timeout_s;
	size_t max_response;
	char token[DIRC_TOKEN_MAX + 1];
	long last_status;
	char last_code[DIRC_CODE_MAX + 1];  /* error word of the last answer */
	int plain;                   /* http://: never through a proxy */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ?
	    0 : -1;
}

int
dirc_curl_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_rc;
}

size_t
dirc_on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dirc_answer *a = arg;
	size_t n = size * nmemb, cap;
	char *np;

	if (nmemb != 0 && n / nmemb != size)
		return 0;
	if (n > a->max - a->len) {
		a->too_large = 1;
		return 0;
	}
	if (a->len + n + 1 > a->cap) {
		cap = a->cap == 0 ? 4096 : a->cap;
		while (cap < a->len + n + 1)
			cap *= 2;
		if ((np = realloc(a->p, cap)) == NULL)
			return 0;
		a->p = np;
		a->cap = cap;
	}
	memcpy(a->p + a->len, data, n);
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

/*
 * 1 when h (len bytes, not NUL-terminated) is a dotted quad in 127.0.0.0/8:
 * exactly four decimal parts of 0-255 without leading zeros, so that no
 * resolver or URL parser reads it as another address (0177.0.0.1 is octal
 * elsewhere, 127.1 is short form).
 */
static int
host_is_loopback_ipv4(const char *h, size_t len)
{
	unsigned int part = 0, parts = 0, digits = 0, first = 0;
	size_t i;

	for (i = 0; i <= len; i++) {
		if (i == len || h[i] == '.') {
			if (digits == 0 || part > 255)
				return 0;
			if (parts++ == 0)
				first = part;
			part = 0;
			digits = 0;
			continue;
		}
		if (h[i] < '0' || h[i] > '9' || digits == 3 ||
		    (digits == 1 && part == 0))
			return 0;
		part = part * 10 + (unsigned int)(h[i] - '0');
		digits++;
	}
	return parts == 4 && first == 127;
}

/* 1 when h (len bytes, the inside of [...]) is exactly ::1 in any form. */
static int
host_is_loopback_ipv6(const char *h, size_t len)
{
	char text[INET6_ADDRSTRLEN + 1];
	struct in6_addr a;

	if (len == 0 || len >= sizeof(text))
		return 0;
	memcpy(text, h, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &a) == 1 && IN6_IS_ADDR_LOOPBACK(&a);
}

int
dirc_url_check(const char *url, struct err_ctx *e)
{
	const char *auth, *end, *host, *p, *close;
	size_t host_len, i;
	unsigned long port = 0;
	int loopback;

	return_val_if_fail(url != NULL, ERR_INVALID_ARG);
	if (strncasecmp(url, "https://", 8) == 0)
		return 0;
	if (strncasecmp(url, "http://", 7) != 0)
		return err_set(e, ERR_CONFIG, "directory URL '%.200s' must "
		    "start with https:// (or http:// to a loopback address)",
		    url);
	/*
	 * URL parsers disagree on '@' (the first or the last one?) and on
	 * backslashes; refuse both rather than guess which host libcurl
	 * would reach.
	 */
	for (i = 0; url[i] != '\0'; i++) {
		if ((unsigned char)url[i] <= 0x20 ||
		    (unsigned char)url[i] >= 0x7f)
			return err_set(e, ERR_CONFIG, "directory URL '%.200s' "
			    "contains a space, control or non-ASCII character",
			    url);
		if (url[i] == '@')
			return err_set(e, ERR_CONFIG, "refusing the directory "
			    "URL '%.200s': a plain http:// URL must not carry "
			    "a user name (devid never takes credentials from "
			    "the URL); remove the part up to '@'", url);
		if (url[i] == '\\')
			return err_set(e, ERR_CONFIG, "directory URL '%.200s' "
			    "contains a backslash", url);
	}
	auth = url + 7;
	end = auth + strcspn(auth, "/?#");
	host = auth;
	if (*auth == '[') {
		if ((close = memchr(auth, ']', (size_t)(end - auth))) == NULL)
			return err_set(e, ERR_CONFIG, "directory URL '%.200s': "
			    "an IPv6 address must be closed with ']'", url);
		host_len = (size_t)(close + 1 - auth);
		loopback = host_is_loopback_ipv6(auth + 1, host_len - 2);
		p = close + 1;
	} else {
		p = memchr(auth, ':', (size_t)(end - auth));
		if (p == NULL)
			p = end;
		host_len = (size_t)(p - auth);
		loopback = (host_len == 9 &&
		    strncasecmp(auth, "localhost", 9) == 0) ||
		    host_is_loopback_ipv4(auth, host_len);
	}
	if (host_len == 0)
		return err_set(e, ERR_CONFIG, "directory URL '%.200s' names no "
		    "host", url);
	if (p != end) {
		if (*p != ':' || p + 1 == end || end - (p + 1) > 5)
			goto bad_port;
		for (p++; p < end; p++) {
			if (*p < '0' || *p > '9')
				goto bad_port;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port < 1 || port > 65535)
			goto bad_port;
	}
	if (!loopback)
		return err_set(e, ERR_CONFIG, "refusing plain http:// to %.*s: "
		    "the directory's answers and your session token would "
		    "travel unencrypted; use https://, or http:// only to a "
		    "loopback address (127.0.0.1, [::1], localhost)",
		    (int)(host_len > URL_HOST_MAX ? URL_HOST_MAX : host_len),
		    host);
	return 0;
 bad_port:
	return err_set(e, ERR_CONFIG, "directory URL '%.200s': the port must "
	    "be a number from 1 to 65535", url);
}

int
dirc_new(const char *base_url, const struct dirc_options *opt,
    struct dirc **out, struct err_ctx *e)
{
	struct dirc *c = NULL;
	size_t n;
	int r = ERR_INTERNAL;

	return_val_if_fail(base_url != NULL && out != NULL, ERR_INVALID_ARG);
	if ((r = dirc_url_check(base_url, e)) != 0)
		return r;
	if (dirc_curl_init() != 0)
		return err_set(e, ERR_INTERNAL, "libcurl failed to initialise");
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->base = strdup(base_url)) == NULL ||
	    (opt != NULL && opt->ca_file != NULL &&
	    (c->ca_file = strdup(opt->ca_file)) == NULL)) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	c->plain = strncasecmp(c->base, "http://", 7) == 0;
	n = strlen(c->base);
	while (n > 0 && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	if ((c->curl = curl_easy_init()) == NULL) {
		r = err_set(e, ERR_INTERNAL, "libcurl failed to initialise");
		goto out;
	}
	c->timeout_s = opt != NULL && opt->timeout_s > 0 ? opt->timeout_s :
	    DIRC_TIMEOUT_S_DEFAULT;
	c->max_response = opt != NULL && opt->max_response > 0 ?
	    opt->max_response : DIRC_RESPONSE_MAX_DEFAULT;
	*out = c;
	c = NULL; /* transferred */
	r = 0;
 out:
	dirc_free(c);
	return r;
}

void
dirc_free(struct dirc *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	crypto_wipe(c->token, sizeof(c->token));
	free(c->base);
	free(c->ca_file);
	free(c);
}

const char *
dirc_last_error_code(const struct dirc *c)
{
	return c->last_code;
}

long
dirc_last_status(const struct dirc *c)
{
	return c->last_status;
}

const char *
dirc_token(const struct dirc *c)
{
	return c->token;
}

int
dirc_set_token(struct dirc *c, const char *token)
{
	crypto_wipe(c->token, sizeof(c->token));
	if (token == NULL)
		return 0;
	if (strlen(token) > DIRC_TOKEN_MAX)
		return ERR_TOO_LARGE;
	memcpy(c->token, token, strlen(token) + 1);
	return 0;
}

/* Turns an error answer into an ERR_* code with the directory's sentence. */
static int
answer_error(struct dirc *c, long status, const struct dirc_answer *a,
    const char *what, struct err_ctx *e)
{
	json_t *obj = NULL, *err;
	const char *code = NULL, *msg = NULL;
	int r;

	if (a->p != NULL && a->len <= ERROR_BODY_MAX &&
	    (obj = json_loadb(a->p, a->len, JSON_REJECT_DUPLICATES,
	    NULL)) != NULL &&
	    json_is_object(err = json_object_get(obj, "error"))) {
		code = json_string_value(json_object_get(err, "code"));
		msg = json_string_value(json_object_get(err, "message"));
	}
	if (code == NULL)
		code = "unknown";
	snprintf(c->last_code, sizeof(c->last_code), "%s", code);
	switch (status) {
	case 400:
		r = strcmp(code, "bad_signature") == 0 ? ERR_SIGNATURE :
		    strcmp(code, "bad_time") == 0 ? ERR_STALE : ERR_FORMAT;
		break;
	case 401:
		r = strcmp(code, "bad_time") == 0 ? ERR_STALE :
		    strcmp(code, "replayed") == 0 ? ERR_REPLAY :
		    strcmp(code, "bad_signature") == 0 ? ERR_SIGNATURE :
		    ERR_DENIED;
		break;
	case 403:
		r = ERR_DENIED;
		break;
	case 404:
		r = ERR_NOT_FOUND;
		break;
	case 409:
		r = strcmp(code, "replayed") == 0 ? ERR_REPLAY : ERR_EXISTS;
		break;
	case 410:
		r = ERR_GONE;
		break;
	case 413:
		r = strcmp(code, "blob_quota") == 0 ? ERR_QUOTA :
		    ERR_TOO_LARGE;
		break;
	case 416:
		/* A download resumed past the blob's end. */
		r = ERR_FORMAT;
		break;
	default:
		r = ERR_NETWORK;
		break;
	}
	err_set(e, r, "directory %s refused %s: %.300s (HTTP %ld, %.40s)",
	    c->base, what, msg != NULL ? msg : "no explanation given", status,
	    code);
	json_decref(obj);
	return r;
}

enum auth_kind {
	AUTH_NONE,
	AUTH_BEARER,
	AUTH_BASIC,
};

/*
 * The headers of a request into *out (caller curl_slist_free_all): JSON
 * accepted, "Content-Type: " ctype when ctype is not NULL, the line extra
 * when not NULL, and the session's bearer token for AUTH_BEARER.  0 or
 * ERR_ALLOC.
 */
static int
request_headers(const struct dirc *c, const char *ctype, const char *extra,
    enum auth_kind auth, struct curl_slist **out, struct err_ctx *e)
{
	struct curl_slist *hdrs = NULL, *h;
	char bearer[DIRC_TOKEN_MAX + 32], line[128];
	int r = ERR_INTERNAL;

	memset(bearer, 0, sizeof(bearer));
	if ((h = curl_slist_append(hdrs, "Accept: application/json")) ==
	    NULL)
		goto oom;
	hdrs = h;
	if (ctype != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		if ((h = curl_slist_append(hdrs, line)) == NULL)
			goto oom;
		hdrs = h;
	}
	if (extra != NULL) {
		if ((h = curl_slist_append(hdrs, extra)) == NULL)
			goto oom;
		hdrs = h;
	}
	if (auth == AUTH_BEARER) {
		snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s",
		    c->token);
		if ((h = curl_slist_append(hdrs, bearer)) == NULL)
			goto oom;
		hdrs = h;
	}
	*out = hdrs;
	hdrs = NULL; /* transferred */
	r = 0;
	goto out;
 oom:
	r = err_set(e, ERR_ALLOC, "out of memory");
 out:
	crypto_wipe(bearer, sizeof(bearer));
	curl_slist_free_all(hdrs);
	return r;
}

/*
 * The options of every request on c->curl (reset first): url, method and
 * hdrs, the answer into a (errors into cerr, CURL_ERROR_SIZE bytes), the
 * timeouts (extra_s more for long-polls), HTTP(S) only and no redirects.
 */
static void
request_options(struct dirc *c, const char *url, const char *method,
    struct curl_slist *hdrs, struct dirc_answer *a, char *cerr, long extra_s)
{
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, dirc_on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, c->timeout_s + extra_s);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, c->timeout_s);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	if (c->plain)
		curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "*");
	if (c->ca_file != NULL)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
}

/* The error of a request that got no HTTP answer (curl failed with cc). */
static int
transfer_error(const struct dirc *c, CURLcode cc, const struct dirc_answer *a,
    const char *cerr, const char *what, struct err_ctx *e)
{
	if (a->too_large)
		return err_set(e, ERR_TOO_LARGE, "directory %s: the answer to "
		    "%s is larger than %zu bytes", c->base, what, a->max);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return err_set(e, ERR_TIMEOUT, "directory %s did not answer "
		    "%s in time: %s", c->base, what,
		    cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
	return err_set(e, ERR_NETWORK, "directory at %s is unreachable: %s",
	    c->base, cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
}

/*
 * One request: method on base + path (already escaped) with an optional
 * JSON body.  On a 2xx answer *text is the NUL-terminated body (caller
 * frees) and *text_len its length.  extra_s is added to the timeout
 * (long-polls).
 */
static int
request(struct dirc *c, const char *method, const char *path,
    const char *body, size_t body_len, enum auth_kind auth,
    const char *user, const char *password, long extra_s,
    char **text, size_t *text_len, const char *what, struct err_ctx *e)
{
	struct curl_slist *hdrs = NULL;
	struct dirc_answer a;
	char url[URL_MAX];
	char cerr[CURL_ERROR_SIZE];
	CURLcode cc;
	long status = 0;
	int r = ERR_INTERNAL;

	memset(&a, 0, sizeof(a));
	a.max = c->max_response;
	c->last_status = 0;
	c->last_code[0] = '\0';
	cerr[0] = '\0';
	if (snprintf(url, sizeof(url), "%s%s", c->base, path) >=
	    (int)sizeof(url))
		return err_set(e, ERR_INVALID_ARG, "URL too long");
	if (auth == AUTH_BEARER && c->token[0] == '\0')
		return err_set(e, ERR_DENIED, "no directory session: log in "
		    "first");
	if ((r = request_headers(c, body != NULL ? "application/json" : NULL,
	    NULL, auth, &hdrs, e)) != 0)
		goto out;
	request_options(c, url, method, hdrs, &a, cerr, extra_s);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body_len);
	}
	if (auth == AUTH_BASIC) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c->curl, CURLOPT_USERNAME, user);
		curl_easy_setopt(c->curl, CURLOPT_PASSWORD, password);
	}
	cc = curl_easy_perform(c->curl);
	if (auth == AUTH_BASIC)
		curl_easy_setopt(c->curl, CURLOPT_PASSWORD, "");
	if (cc != CURLE_OK) {
		r = transfer_error(c, cc, &a, cerr, what, e);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	c->last_status = status;
	if (status < 200 || status > 299) {
		r = answer_error(c, status, &a, what, e);
		goto out;
	}
	if (a.p == NULL) {
		r = err_set(e, ERR_FORMAT, "directory %s answered %s with an "
		    "empty body", c->base, what);
		goto out;
	}
	*text = a.p;
	*text_len = a.len;
	a.p = NULL; /* transferred */
	r = 0;
 out:
	curl_slist_free_all(hdrs);
	if (a.p != NULL) {
		crypto_wipe(a.p, a.len);
		free(a.p);
	}
	return r;
}

/* The 2xx answer as a JSON object. */
static int
request_json(struct dirc *c, const char *method, const char *path,
    json_t *body, enum auth_kind auth, const char *user,
    const char *password, long extra_s, json_t **out, const char *what,
    struct err_ctx *e)
{
	char *btext = NULL, *text = NULL;
	size_t text_len = 0;
	json_t *obj;
	int r;

	if (body != NULL &&
	    (btext = json_dumps(body, JSON_COMPACT)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	r = request(c, method, path, btext, btext != NULL ? strlen(btext) : 0,
	    auth, user, password, extra_s, &text, &text_len, what, e);
	if (btext != NULL) {
		/* The body may hold a password. */
		crypto_wipe(btext, strlen(btext));
		free(btext);
	}
	if (r != 0)
		return r;
	obj = json_loadb(text, text_len, JSON_REJECT_DUPLICATES, NULL);
	crypto_wipe(text, text_len);
	free(text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return err_set(e, ERR_FORMAT, "directory %s answered %s with "
		    "something other than a JSON object", c->base, what);
	}
	*out = obj;
	return 0;
}

/* "/v1/accounts/<escaped account><suffix>" into path. */
static int
account_path(struct dirc *c, const char *account, const char *suffix,
    char *path, size_t path_len, struct err_ctx *e)
{
	char *esc;
	int n;

	if (devrec_account_check(account, e) != 0)
		return ERR_INVALID_ARG;
	if ((esc = curl_easy_escape(c->curl, account, 0)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	n = snprintf(path, path_len, "/v1/accounts/%s%s", esc, suffix);
	curl_free(esc);
	if (n < 0 || (size_t)n >= path_len)
		return err_set(e, ERR_INVALID_ARG, "URL too long");
	return 0;
}

static uint64_t
now_s(void)
{
	time_t t = time(NULL);

	return t < 0 ? 0 : (uint64_t)t;
}

/* --- info and health --- */

/*
 * The integer limits.key of an info answer into *out: 0 when limits or
 * the member is absent (a directory without blobs), ERR_FORMAT when it is
 * there but not an integer of 0..2^53.
 */
static int
info_limit(const json_t *obj, const char *key, uint64_t *out,
    struct err_ctx *e)
{
	const json_t *limits = json_object_get(obj, "limits");

	*out = 0;
	if (limits == NULL)
		return 0;
	if (!json_is_object(limits))
		return err_set(e, ERR_FORMAT, "info: \"limits\" is not an "
		    "object");
	if (json_object_get(limits, key) == NULL)
		return 0;
	return devrec_json_u64(limits, key, out, "info limits", e);
}

int
dirc_info(struct dirc *c, struct dirc_info *out, struct err_ctx *e)
{
	static const char what[] = "info";
	json_t *obj = NULL;
	const char *version;
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t h[32];
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = request_json(c, "GET", "/v1/info", NULL, AUTH_NONE, NULL,
	    NULL, 0, &obj, what, e)) != 0)
		return r;
	if ((r = devrec_json_str(obj, "version", sizeof(out->version) - 1,
	    &version, what, e)) != 0 ||
	    (r = devrec_json_id(obj, "directory_id", out->directory_id, what,
	    e)) != 0 ||
	    (r = devrec_json_b64(obj, "head_key", out->head_key,
	    sizeof(out->head_key), &out->head_key_len, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "time", &out->time, what, e)) != 0)
		goto out;
	snprintf(out->version, sizeof(out->version), "%s", version);
	out->open_signup = json_is_true(json_object_get(obj, "open_signup"));
	if ((r = info_limit(obj, "max_blob", &out->max_blob, e)) != 0 ||
	    (r = info_limit(obj, "blob_quota", &out->blob_quota, e)) != 0 ||
	    (r = info_limit(obj, "blob_days", &out->blob_days, e)) != 0)
		goto out;
	if ((r = crypto_sha256(out->head_key, out->head_key_len, h)) != 0)
		goto out;
	hex_encode(h, sizeof(h), id);
	if (strcmp(id, out->directory_id) != 0) {
		r = err_set(e, ERR_FORMAT, "directory %s: its id is not the "
		    "hash of its head key", c->base);
		goto out;
	}
	r = 0;
 out:
	json_decref(obj);
	return r;
}

int
dirc_health(struct dirc *c, struct err_ctx *e)
{
	json_t *obj = NULL;
	int r;

	if ((r = request_json(c, "GET", "/v1/health", NULL, AUTH_NONE, NULL,
	    NULL, 0, &obj, "the health check", e)) != 0)
		return r;
	json_decref(obj);
	return 0;
}

/* --- accounts and devices --- */

int
dirc_create_account(struct dirc *c, const char *account,
    const char *password, struct err_ctx *e)
{
	json_t *body, *obj = NULL;
	int r;

	if ((r = devrec_account_check(account, e)) != 0)
		return r;
	if ((body = json_pack("{s:s,s:s}", "account", account, "password",
	    password)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	r = request_json(c, "POST", "/v1/accounts", body, AUTH_NONE, NULL,
	    NULL, 0, &obj, "the new account", e);
	crypto_wipe((void *)(uintptr_t)json_string_value(json_object_get(body,
	    "password")), strlen(password));
	json_decref(body);
	json_decref(obj);
	return r;
}

/* Parses the "head" member of obj into head (when not NULL). */
static int
answer_head(const json_t *obj, struct acctlog_head *head, struct err_ctx *e)
{
	if (head == NULL)
		return 0;
	return acctlog_head_from_json(json_object_get(obj, "head"), head, e);
}

int
dirc_register_device(struct dirc *c, const char *password,
    const struct devrec *rec, struct acctlog_head *head, struct err_ctx *e)
{
	char path[512];
	json_t *body = NULL, *obj = NULL;
	int r;

	if ((r = account_path(c, rec->account, "/devices", path, sizeof(path),
	    e)) != 0 ||
	    (r = devrec_to_json(rec, &body, e)) != 0)
		goto out;
	if ((r = request_json(c, "POST", path, body, AUTH_BASIC, rec->account,
	    password, 0, &obj, "the device registration", e)) != 0 ||
	    (r = answer_head(obj, head, e)) != 0)
		goto out;
	r = 0;
 out:
	json_decref(body);
	json_decref(obj);
	return r;
}

int
dirc_login(struct dirc *c, const char *directory_id, const char *device_id,
    dirc_sign_fn sign, void *sign_arg, uint64_t *expires, struct err_ctx *e)
{
	static const char what[] = "the login";
	uint8_t nonce[DIRC_NONCE_LEN], sig[64];
	struct buf *b = NULL;
	json_t *body = NULL, *obj = NULL;
	const char *token;
	uint64_t t = now_s(), exp;
	int r = ERR_INTERNAL;

	return_val_if_fail(c != NULL && directory_id != NULL &&
	    device_id != NULL && sign != NULL, ERR_INVALID_ARG);
	if ((r = crypto_random(nonce, sizeof(nonce))) != 0) {
		err_set(e, r, "no random nonce");
		goto out;
	}
	if ((b = buf_new(1024)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = tr_login(b, directory_id, device_id, t, nonce,
	    sizeof(nonce))) != 0) {
		err_set(e, r, "cannot build the login transcript");
		goto out;
	}
	if ((r = sign(sign_arg, buf_ptr(b), buf_len(b), sig, e)) != 0)
		goto out;
	if ((body = json_object()) == NULL ||
	    (r = devrec_json_set_str(body, "device", device_id)) != 0 ||
	    (r = devrec_json_set_u64(body, "time", t)) != 0 ||
	    (r = devrec_json_set_b64(body, "nonce", nonce,
	    sizeof(nonce))) != 0 ||
	    (r = devrec_json_set_b64(body, "sig", sig, sizeof(sig))) != 0) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = request_json(c, "POST", "/v1/session", body, AUTH_NONE, NULL,
	    NULL, 0, &obj, what, e)) != 0)
		goto out;
	if ((r = devrec_json_str(obj, "token", DIRC_TOKEN_MAX, &token, what,
	    e)) != 0 ||
	    (r = devrec_json_u64(obj, "expires", &exp, what, e)) != 0)
		goto out;
	if ((r = dirc_set_token(c, token)) != 0) {
		err_set(e, r, "session token too long");
		goto out;
	}
	if (expires != NULL)
		*expires = exp;
	r = 0;
 out:
	if (obj != NULL) {
		token = json_string_value(json_object_get(obj, "token"));
		if (token != NULL)
			crypto_wipe((void *)(uintptr_t)token, strlen(token));
	}
	json_decref(obj);
	json_decref(body);
	buf_free(b);
	return r;
}

/* The log read of dirc_get_log(), with "&tlog=1" when tlog is set. */
static int
get_log(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, int tlog, struct acctlog_response **out,
    struct err_ctx *e)
{
	char path[512], suffix[80], *text = NULL;
	size_t len = 0;
	int r;

	if (wait_s > 0)
		snprintf(suffix, sizeof(suffix), "/log?since=%" PRIu64
		    "&wait=%u%s", since, wait_s, tlog ? "&tlog=1" : "");
	else
		snprintf(suffix, sizeof(suffix), "/log?since=%" PRIu64 "%s",
		    since, tlog ? "&tlog=1" : "");
	if ((r = account_path(c, account, suffix, path, sizeof(path), e)) != 0)
		return r;
	if ((r = request(c, "GET", path, NULL, 0, AUTH_BEARER, NULL, NULL,
	    wait_s > 0 ? (long)wait_s + LONGPOLL_MARGIN_S : 0, &text, &len,
	    "the log request", e)) != 0)
		return r;
	r = acctlog_response_parse(text, len, out, e);
	free(text);
	return r;
}

int
dirc_get_log(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, struct acctlog_response **out, struct err_ctx *e)
{
	return get_log(c, account, since, wait_s, 0, out, e);
}

int
dirc_get_log_tlog(struct dirc *c, const char *account, uint64_t since,
    unsigned int wait_s, struct acctlog_response **out, struct err_ctx *e)
{
	return get_log(c, account, since, wait_s, 1, out, e);
}

void
dirc_devices_free(struct dirc_devices *d)
{
	if (d == NULL)
		return;
	free(d->devices);
	free(d);
}

int
dirc_devices(struct dirc *c, const char *account, struct dirc_devices **out,
    struct err_ctx *e)
{
	static const char what[] = "the device list";
	struct dirc_devices *d = NULL;
	char path[512];
	json_t *obj = NULL, *arr;
	size_t i;
	int r;

	if ((r = account_path(c, account, "/devices", path, sizeof(path),
	    e)) != 0 ||
	    (r = request_json(c, "GET", path, NULL, AUTH_BEARER, NULL, NULL, 0,
	    &obj, what, e)) != 0)
		goto out;
	arr = json_object_get(obj, "devices");
	if (!json_is_array(arr) ||
	    json_array_size(arr) > ACCTLOG_MAX_DEVICES) {
		r = err_set(e, ERR_FORMAT, "directory %s: %s has no devices "
		    "array of at most %d entries", c->base, what,
		    ACCTLOG_MAX_DEVICES);
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (json_array_size(arr) > 0 && (d->devices = calloc(
	    json_array_size(arr), sizeof(*d->devices))) == NULL)) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(arr); i++) {
		if ((r = devrec_from_json(json_array_get(arr, i),
		    &d->devices[i], e)) != 0)
			goto out;
		d->n_devices++;
	}
	if ((r = answer_head(obj, &d->head, e)) != 0)
		goto out;
	*out = d;
	d = NULL; /* transferred */
	r = 0;
 out:
	dirc_devices_free(d);
	json_decref(obj);
	return r;
}

int
dirc_revoke(struct dirc *c, const char *account, const char *device_id,
    uint64_t time, const uint8_t revoke_sig[64], struct acctlog_head *head,
    struct err_ctx *e)
{
	char path[512], suffix[80];
	json_t *body = NULL, *obj = NULL;
	int r;

	if (!devrec_id_valid(device_id))
		return err_set(e, ERR_INVALID_ARG, "not a device id");
	snprintf(suffix, sizeof(suffix), "/devices/%s", device_id);
	if ((r = account_path(c, account, suffix, path, sizeof(path), e)) != 0)
		return r;
	if ((body = json_object()) == NULL ||
	    devrec_json_set_u64(body, "time", time) != 0 ||
	    devrec_json_set_b64(body, "revoke_sig", revoke_sig, 64) != 0) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = request_json(c, "DELETE", path, body, AUTH_BEARER, NULL, NULL,
	    0, &obj, "the revocation", e)) != 0 ||
	    (r = answer_head(obj, head, e)) != 0)
		goto out;
	r = 0;
 out:
	json_decref(body);
	json_decref(obj);
	return r;
}

/* --- mailbox --- */

/* POST path (/v1/messages with or without a query) with the envelope. */
static int
post_message(struct dirc *c, const char *path, const char *envelope_json,
    size_t len, uint64_t *queued, struct err_ctx *e)
{
	static const char what[] = "the message";
	char *text = NULL;
	size_t tlen = 0;
	json_t *obj = NULL;
	int r;

	if ((r = request(c, "POST", path, envelope_json, len,
	    AUTH_BEARER, NULL, NULL, 0, &text, &tlen, what, e)) != 0)
		return r;
	obj = json_loadb(text, tlen, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	if (!json_is_object(obj)) {
		r = err_set(e, ERR_FORMAT, "directory %s: bad answer to %s",
		    c->base, what);
		goto out;
	}
	if (queued != NULL &&
	    (r = devrec_json_u64(obj, "queued", queued, what, e)) != 0)
		goto out;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

int
dirc_post_message(struct dirc *c, const char *envelope_json, size_t len,
    uint64_t *queued, struct err_ctx *e)
{
	return post_message(c, "/v1/messages", envelope_json, len, queued, e);
}

int
dirc_post_message_blobs(struct dirc *c, const char *envelope_json,
    size_t len, const char *const *blobs, size_t n, uint64_t *queued,
    struct err_ctx *e)
{
	/* "/v1/messages?blobs=" and up to 16 hashes with commas. */
	char path[32 + BLOBS_PER_MESSAGE_MAX * 65];
	size_t i, j, pos;

	return_val_if_fail(c != NULL && envelope_json != NULL &&
	    (n == 0 || blobs != NULL), ERR_INVALID_ARG);
	if (n == 0)
		return dirc_post_message(c, envelope_json, len, queued, e);
	if (n > BLOBS_PER_MESSAGE_MAX)
		return err_set(e, ERR_INVALID_ARG, "a message names at most "
		    "%d blobs, not %zu", BLOBS_PER_MESSAGE_MAX, n);
	pos = (size_t)snprintf(path, sizeof(path), "/v1/messages?blobs=");
	for (i = 0; i < n; i++) {
		if (blobs[i] == NULL || !hex_text_valid(blobs[i], 64))
			return err_set(e, ERR_INVALID_ARG, "blob %zu of the "
			    "message is not named by 64 lowercase hex digits",
			    i + 1);
		for (j = 0; j < i; j++)
			if (strcmp(blobs[i], blobs[j]) == 0)
				return err_set(e, ERR_INVALID_ARG, "the "
				    "message names blob %.64s twice", blobs[i]);
		pos += (size_t)snprintf(path + pos, sizeof(path) - pos,
		    "%s%s", i > 0 ? "," : "", blobs[i]);
	}
	return post_message(c, path, envelope_json, len, queued, e);
}

void
dirc_inbox_free(struct dirc_inbox *in)
{
	size_t i;

	if (in == NULL)
		return;
	for (i = 0; i < in->n_items; i++)
		free(in->items[i].envelope);
	free(in->items);
	free(in);
}

int
dirc_inbox(struct dirc *c, unsigned int wait_s, unsigned int limit,
    struct dirc_inbox **out, struct err_ctx *e)
{
	static const char what[] = "the inbox request";
	struct dirc_inbox *in = NULL;
	struct dirc_inbox_item *it;
	char path[128];
	json_t *obj = NULL, *arr, *item, *env;
	size_t i, n;
	int r;

	n = (size_t)snprintf(path, sizeof(path), "/v1/inbox?wait=%u", wait_s);
	if (limit > 0)
		snprintf(path + n, sizeof(path) - n, "&limit=%u", limit);
	if ((r = request_json(c, "GET", path, NULL, AUTH_BEARER, NULL, NULL,
	    wait_s > 0 ? (long)wait_s + LONGPOLL_MARGIN_S : 0, &obj, what,
	    e)) != 0)
		goto out;
	arr = json_object_get(obj, "messages");
	if (!json_is_array(arr)) {
		r = err_set(e, ERR_FORMAT, "directory %s: the inbox answer "
		    "has no messages array", c->base);
		goto out;
	}
	if ((in = calloc(1, sizeof(*in))) == NULL ||
	    (json_array_size(arr) > 0 && (in->items = calloc(
	    json_array_size(arr), sizeof(*in->items))) == NULL)) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(arr); i++) {
		item = json_array_get(arr, i);
		env = json_object_get(item, "envelope");
		it = &in->items[i];
		if ((r = devrec_json_u64(item, "seq", &it->seq, "inbox item",
		    e)) != 0)
			goto out;
		if (!json_is_object(env) ||
		    (it->envelope = json_dumps(env, JSON_COMPACT)) == NULL) {
			r = err_set(e, ERR_FORMAT, "directory %s: inbox item "
			    "%" PRIu64 " has no envelope object", c->base,
			    it->seq);
			goto out;
		}
		it->envelope_len = strlen(it->envelope);
		in->n_items++;
	}
	*out = in;
	in = NULL; /* transferred */
	r = 0;
 out:
	dirc_inbox_free(in);
	json_decref(obj);
	return r;
}

int
dirc_ack(struct dirc *c, uint64_t upto, uint64_t *removed, struct err_ctx *e)
{
	json_t *body = NULL, *obj = NULL;
	int r;

	if ((body = json_object()) == NULL ||
	    devrec_json_set_u64(body, "upto", upto) != 0) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if ((r = request_json(c, "POST", "/v1/inbox/ack", body, AUTH_BEARER,
	    NULL, NULL, 0, &obj, "the acknowledgement", e)) != 0)
		goto out;
	if (removed != NULL && (r = devrec_json_u64(obj, "removed", removed,
	    "acknowledgement answer", e)) != 0)
		goto out;
	r = 0;
 out:
	json_decref(body);
	json_decref(obj);
	return r;
}

/* --- blobs --- */

/* The state of one upload, shared by its read and progress callbacks. */
struct upload_state {
	dirc_read_fn rd;
	void *rd_arg;
	dirc_progress_fn progress;
	void *progress_arg;
	uint64_t len;                /* bytes announced */
	uint64_t sent;               /* bytes handed to libcurl */
	int err;                     /* the callback error that stopped it */
	struct err_ctx *e;
};

/* CURLOPT_READFUNCTION of an upload: the next bytes from st->rd. */
static size_t
upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload_state *st = arg;
	size_t max, n = 0;
	int r;

	if (nitems != 0 && size > SIZE_MAX / nitems)
		return CURL_READFUNC_ABORT;
	max = size * nitems;
	if ((uint64_t)max > st->len - st->sent)
		max = (size_t)(st->len - st->sent);
	if (max == 0)
		return 0;
	if ((r = st->rd(st->rd_arg, (uint8_t *)buf, max, &n, st->e)) != 0) {
		st->err = r;
		return CURL_READFUNC_ABORT;
	}
	if (n == 0 || n > max) {
		st->err = err_set(st->e, ERR_INTERNAL, "the blob's source "
		    "gave %zu bytes where %zu of the %" PRIu64 " announced "
		    "remained", n, max, st->len);
		return CURL_READFUNC_ABORT;
	}
	st->sent += n;
	return n;
}

/* CURLOPT_XFERINFOFUNCTION of an upload. */
static int
upload_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct upload_state *st = arg;
	int r;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (st->progress == NULL)
		return 0;
	if ((r = st->progress(st->progress_arg, ulnow < 0 ? 0 :
	    (uint64_t)ulnow, st->len)) != 0) {
		st->err = err_set(st->e, r, "the upload was cancelled");
		return 1;
	}
	return 0;
}

/*
 * The options that blob transfers add to request_options(): no total
 * timeout but a low-speed limit, large buffers, progress through fn.
 */
static void
blob_options(struct dirc *c, curl_xferinfo_callback fn, void *arg)
{
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 0L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT,
	    BLOB_LOW_SPEED_BYTES);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, c->timeout_s);
	curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE, BLOB_BUFFER_SIZE);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD_BUFFERSIZE,
	    BLOB_BUFFER_SIZE);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, fn);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, arg);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
}

/* The error of a blob transfer that libcurl ended with cc. */
static int
blob_transfer_error(const struct dirc *c, CURLcode cc, const char *cerr,
    const char *what, struct err_ctx *e)
{
	const char *why = cerr[0] != '\0' ? cerr : curl_easy_strerror(cc);

	if (cc == CURLE_OPERATION_TIMEDOUT)
		return err_set(e, ERR_NETWORK, "%s with directory %s stalled "
		    "(under %ld bytes/s for %ld s): %s; try again", what,
		    c->base, BLOB_LOW_SPEED_BYTES, c->timeout_s, why);
	return err_set(e, ERR_NETWORK, "%s with directory %s failed: %s; "
	    "try again", what, c->base, why);
}

/* The upload answer {hash, size, expires} into out; its size must be len. */
static int
upload_answer(const struct dirc *c, const struct dirc_answer *a,
    uint64_t len, struct dirc_blob_info *out, struct err_ctx *e)
{
	static const char what[] = "the blob upload answer";
	json_t *obj = NULL;
	int r;

	if (a->p == NULL || (obj = json_loadb(a->p, a->len,
	    JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_is_object(obj)) {
		r = err_set(e, ERR_FORMAT, "directory %s answered the blob "
		    "upload with something other than a JSON object", c->base);
		goto out;
	}
	if ((r = devrec_json_id(obj, "hash", out->hash, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "size", &out->size, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, "expires", &out->expires, what,
	    e)) != 0)
		goto out;
	if (out->size != len) {
		r = err_set(e, ERR_FORMAT, "directory %s kept %" PRIu64
		    " bytes of a blob of %" PRIu64, c->base, out->size, len);
		goto out;
	}
	r = 0;
 out:
	json_decref(obj);
	return r;
}

int
dirc_blob_upload(struct dirc *c, uint64_t len, dirc_read_fn rd,
    void *rd_arg, dirc_progress_fn progress, void *progress_arg,
    struct dirc_blob_info *out, struct err_ctx *e)
{
	static const char what[] = "the blob upload";
	struct upload_state st;
	struct curl_slist *hdrs = NULL;
	struct dirc_answer a;
	struct dirc_blob_info info;
	char url[URL_MAX], cerr[CURL_ERROR_SIZE];
	CURLcode cc;
	long status = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(c != NULL && rd != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if (len > (uint64_t)INT64_MAX)
		return err_set(e, ERR_TOO_LARGE, "a blob of %" PRIu64 " bytes "
		    "cannot be sent", len);
	memset(&a, 0, sizeof(a));
	memset(&st, 0, sizeof(st));
	memset(&info, 0, sizeof(info));
	a.max = ERROR_BODY_MAX;
	st.rd = rd;
	st.rd_arg = rd_arg;
	st.progress = progress;
	st.progress_arg = progress_arg;
	st.len = len;
	st.e = e;
	c->last_status = 0;
	c->last_code[0] = '\0';
	cerr[0] = '\0';
	snprintf(url, sizeof(url), "%s/v1/blobs", c->base);
	if (c->token[0] == '\0')
		return err_set(e, ERR_DENIED, "no directory session: log in "
		    "first");
	/*
	 * libcurl sends "Expect: 100-continue" with bodies over 1 MiB, so
	 * that a 413 (too large, over quota) arrives before the body is sent.
	 */
	if ((r = request_headers(c, "application/octet-stream", NULL,
	    AUTH_BEARER, &hdrs, e)) != 0)
		goto out;
	request_options(c, url, "POST", hdrs, &a, cerr, 0);
	blob_options(c, upload_progress, &st);
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, upload_read);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, &st);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)len);
	cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	c->last_status = status;
	if (st.err != 0) {
		r = st.err;
		goto out;
	}
	/*
	 * A directory that refuses the body may answer and close while the
	 * body is still going out: its answer is what counts.
	 */
	if (status >= 300 && !a.too_large) {
		r = answer_error(c, status, &a, what, e);
		goto out;
	}
	if (cc != CURLE_OK) {
		r = a.too_large ? transfer_error(c, cc, &a, cerr, what, e) :
		    blob_transfer_error(c, cc, cerr, what, e);
		goto out;
	}
	if (status < 200 || status > 299) {
		r = answer_error(c, status, &a, what, e);
		goto out;
	}
	if ((r = upload_answer(c, &a, len, &info, e)) != 0)
		goto out;
	*out = info;
	r = 0;
 out:
	curl_slist_free_all(hdrs);
	free(a.p);
	return r;
}

enum download_mode {
	DL_HEADERS,                  /* the headers of an answer arrive */
	DL_BODY,                     /* the blob's bytes go to wr */
	DL_ERROR,                    /* an error answer goes to err_body */
};

/* The state of one download, shared by its callbacks. */
struct download_state {
	struct dirc *c;
	dirc_write_fn wr;
	void *wr_arg;
	dirc_progress_fn progress;
	void *progress_arg;
	uint64_t offset;             /* the first byte asked for */
	enum download_mode mode;
	long status;
	int has_length;
	uint64_t length;             /* Content-Length of this answer */
	int has_range;
	uint64_t range_first, range_last, range_size;  /* Content-Range */
	uint64_t total;              /* the whole blob's size, once known */
	uint64_t received;           /* body bytes given to wr */
	struct dirc_answer err_body; /* an error answer, bounded */
	int err;                     /* the callback error that stopped it */
	struct err_ctx *e;
};

/* Parses the decimal at *p (advancing it) into *out; 0 or -1. */
static int
parse_dec(const char **p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return 0;
}

/*
 * If the header line h (n bytes, with its CRLF) is name (with its colon,
 * any case), *value and *vend frame its value without surrounding
 * blanks; 1 then, else 0.
 */
static int
header_value(const char *h, size_t n, const char *name, const char **value,
    const char **vend)
{
	size_t nl = strlen(name);
	const char *v, *end = h + n;

	if (n < nl || strncasecmp(h, name, nl) != 0)
		return 0;
	for (v = h + nl; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' ||
	    end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*value = v;
	*vend = end;
	return 1;
}

/*
 * The end of an answer's headers: a 2xx must be the one asked for (200
 * from the start, or 206 whose Content-Range starts at offset) with a
 * length; anything else is an error answer.  0, or an error in st.
 */
static int
download_headers_done(struct download_state *st)
{
	const struct dirc *c = st->c;

	if (st->status < 200 || st->status > 299) {
		st->mode = DL_ERROR;
		return 0;
	}
	if (st->status == 206 && st->offset > 0 && st->has_range) {
		if (st->range_first != st->offset ||
		    st->range_last < st->range_first ||
		    st->range_last + 1 != st->range_size ||
		    (st->has_length && st->length !=
		    st->range_last - st->range_first + 1))
			return st->err = err_set(st->e, ERR_FORMAT,
			    "directory %s answered a download from byte %"
			    PRIu64 " with the range %" PRIu64 "-%" PRIu64 "/%"
			    PRIu64, c->base, st->offset, st->range_first,
			    st->range_last, st->range_size);
		st->total = st->range_size;
		st->length = st->range_last - st->range_first + 1;
	} else if (st->status == 200 && st->offset == 0 && st->has_length) {
		st->total = st->length;
	} else {
		return st->err = err_set(st->e, ERR_FORMAT, "directory %s "
		    "answered a download from byte %" PRIu64 " with HTTP %ld%s",
		    c->base, st->offset, st->status, st->has_length ||
		    st->has_range ? "" : " without a length");
	}
	st->mode = DL_BODY;
	return 0;
}

/* CURLOPT_HEADERFUNCTION of a download. */
static size_t
download_header(char *h, size_t size, size_t nitems, void *arg)
{
	struct download_state *st = arg;
	const char *v, *vend;
	size_t n;

	if (nitems != 0 && size > SIZE_MAX / nitems)
		return 0;
	n = size * nitems;
	if (n >= 5 && strncmp(h, "HTTP/", 5) == 0) {
		/* A new answer (after a 100 Continue, say) starts over. */
		st->mode = DL_HEADERS;
		st->has_length = 0;
		st->has_range = 0;
		curl_easy_getinfo(st->c->curl, CURLINFO_RESPONSE_CODE,
		    &st->status);
		return n;
	}
	if (header_value(h, n, "Content-Length:", &v, &vend)) {
		if (parse_dec(&v, vend, &st->length) != 0 || v != vend) {
			st->err = err_set(st->e, ERR_FORMAT, "directory %s "
			    "sent a malformed Content-Length", st->c->base);
			return 0;
		}
		st->has_length = 1;
	} else if (header_value(h, n, "Content-Range:", &v, &vend)) {
		if (vend - v < 6 || strncmp(v, "bytes ", 6) != 0 ||
		    (v += 6, parse_dec(&v, vend, &st->range_first)) != 0 ||
		    v == vend || *v++ != '-' ||
		    parse_dec(&v, vend, &st->range_last) != 0 ||
		    v == vend || *v++ != '/' ||
		    parse_dec(&v, vend, &st->range_size) != 0 || v != vend) {
			st->err = err_set(st->e, ERR_FORMAT, "directory %s "
			    "sent a malformed Content-Range", st->c->base);
			return 0;
		}
		st->has_range = 1;
	} else if (n <= 2 && (n == 0 || h[0] == '\r' || h[0] == '\n')) {
		if (st->status >= 100 && st->status <= 199)
			return n;
		if (download_headers_done(st) != 0)
			return 0;
	}
	return n;
}

/* CURLOPT_WRITEFUNCTION of a download: the blob to wr, errors aside. */
static size_t
download_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct download_state *st = arg;
	size_t n;
	int r;

	if (nmemb != 0 && size > SIZE_MAX / nmemb)
		return 0;
	n = size * nmemb;
	if (st->mode == DL_HEADERS && download_headers_done(st) != 0)
		return 0;
	if (st->mode == DL_ERROR) {
		/* Only the start of an error answer is kept. */
		if (n <= st->err_body.max - st->err_body.len)
			return dirc_on_data(data, 1, n, &st->err_body);
		st->err_body.too_large = 1;
		return n;
	}
	if ((uint64_t)n > st->length - st->received) {
		st->err = err_set(st->e, ERR_FORMAT, "directory %s sent more "
		    "than the %" PRIu64 " bytes it announced", st->c->base,
		    st->length);
		return 0;
	}
	if ((r = st->wr(st->wr_arg, (const uint8_t *)data, n)) != 0) {
		st->err = err_set(st->e, r, "the downloaded blob could not "
		    "be taken (%s)", err_str(r));
		return 0;
	}
	st->received += n;
	return n;
}

/* CURLOPT_XFERINFOFUNCTION of a download. */
static int
download_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct download_state *st = arg;
	int r;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (st->progress == NULL || st->mode != DL_BODY)
		return 0;
	if ((r = st->progress(st->progress_arg, st->offset + st->received,
	    st->total)) != 0) {
		st->err = err_set(st->e, r, "the download was cancelled");
		return 1;
	}
	return 0;
}

int
dirc_blob_download(struct dirc *c, const char *hash, uint64_t offset,
    dirc_write_fn wr, void *wr_arg, dirc_progress_fn progress,
    void *progress_arg, uint64_t *total, struct err_ctx *e)
{
	static const char what[] = "the blob download";
	struct download_state st;
	struct curl_slist *hdrs = NULL;
	struct dirc_answer unused;
	char url[URL_MAX], range[64], cerr[CURL_ERROR_SIZE];
	CURLcode cc;
	int r = ERR_INTERNAL;

	return_val_if_fail(c != NULL && hash != NULL && wr != NULL,
	    ERR_INVALID_ARG);
	if (!hex_text_valid(hash, 64))
		return err_set(e, ERR_INVALID_ARG, "a blob is named by 64 "
		    "lowercase hex digits");
	if (offset > (uint64_t)INT64_MAX)
		return err_set(e, ERR_INVALID_ARG, "no blob has %" PRIu64
		    " bytes", offset);
	memset(&st, 0, sizeof(st));
	memset(&unused, 0, sizeof(unused));
	st.c = c;
	st.wr = wr;
	st.wr_arg = wr_arg;
	st.progress = progress;
	st.progress_arg = progress_arg;
	st.offset = offset;
	st.err_body.max = ERROR_BODY_MAX;
	st.e = e;
	c->last_status = 0;
	c->last_code[0] = '\0';
	cerr[0] = '\0';
	snprintf(url, sizeof(url), "%s/v1/blobs/%s", c->base, hash);
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", offset);
	if (c->token[0] == '\0')
		return err_set(e, ERR_DENIED, "no directory session: log in "
		    "first");
	if ((r = request_headers(c, NULL, offset > 0 ? range : NULL,
	    AUTH_BEARER, &hdrs, e)) != 0)
		goto out;
	request_options(c, url, "GET", hdrs, &unused, cerr, 0);
	blob_options(c, download_progress, &st);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, download_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &st);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, download_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &st);
	cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &st.status);
	c->last_status = st.status;
	if (st.err != 0) {
		r = st.err;
		goto out;
	}
	if (st.mode == DL_ERROR || (cc == CURLE_OK &&
	    (st.status < 200 || st.status > 299))) {
		r = answer_error(c, st.status, &st.err_body, what, e);
		goto out;
	}
	if (cc != CURLE_OK) {
		r = blob_transfer_error(c, cc, cerr, what, e);
		goto out;
	}
	if (st.mode == DL_HEADERS && download_headers_done(&st) != 0) {
		r = st.err;
		goto out;
	}
	if (st.received != st.length) {
		r = err_set(e, ERR_NETWORK, "directory %s: the download of "
		    "blob %.16s... ended after %" PRIu64 " of %" PRIu64
		    " bytes; try again", c->base, hash, offset + st.received,
		    st.total);
		goto out;
	}
	if (total != NULL)
		*total = st.total;
	r = 0;
 out:
	curl_slist_free_all(hdrs);
	free(st.err_body.p);
	return r;
}

/* --- the global transparency log --- */

int
dirc_tlog_checkpoint(struct dirc *c, char **note, size_t *len,
    struct err_ctx *e)
{
	static const char what[] = "the checkpoint request";
	static const char *const fields[] = { "checkpoint" };
	json_t *obj = NULL;
	const char *s;
	char *copy;
	size_t n;
	int r;

	return_val_if_fail(c != NULL && note != NULL && len != NULL,
	    ERR_INVALID_ARG);
	if ((r = request_json(c, "GET", "/v1/tlog/checkpoint", NULL,
	    AUTH_NONE, NULL, NULL, 0, &obj, what, e)) != 0)
		return r;
	if ((r = devrec_json_keys(obj, fields, 1, "checkpoint answer",
	    e)) != 0 ||
	    (r = devrec_json_str(obj, "checkpoint", TLOG_NOTE_MAX, &s,
	    "checkpoint answer", e)) != 0)
		goto out;
	n = strlen(s);
	if ((copy = malloc(n + 1)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	memcpy(copy, s, n + 1);
	*note = copy;
	*len = n;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

/*
 * The proof answer obj of a proof request: "proof" and the two numbers
 * k1 = v1, k2 = v2 it must echo, and nothing else.
 */
static int
proof_answer(const struct dirc *c, const json_t *obj, const char *k1,
    uint64_t v1, const char *k2, uint64_t v2,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, const char *what,
    struct err_ctx *e)
{
	const char *fields[3];
	uint64_t a, b;
	int r;

	fields[0] = k1;
	fields[1] = k2;
	fields[2] = "proof";
	if ((r = devrec_json_keys(obj, fields, 3, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, k1, &a, what, e)) != 0 ||
	    (r = devrec_json_u64(obj, k2, &b, what, e)) != 0)
		return r;
	if (a != v1 || b != v2)
		return err_set(e, ERR_FORMAT, "directory %s answered %s for "
		    "%s %" PRIu64 " and %s %" PRIu64 " instead of %" PRIu64
		    " and %" PRIu64, c->base, what, k1, a, k2, b, v1, v2);
	return tlog_proof_from_json(json_object_get(obj, "proof"), proof, n,
	    e);
}

int
dirc_tlog_consistency(void *arg, uint64_t old, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	static const char what[] = "the consistency proof request";
	struct dirc *c = arg;
	json_t *obj = NULL;
	char path[128];
	int r;

	return_val_if_fail(c != NULL && proof != NULL && n != NULL,
	    ERR_INVALID_ARG);
	if (old > size || size > MERKLE_SIZE_MAX)
		return err_set(e, ERR_INVALID_ARG, "a consistency proof from "
		    "size %" PRIu64 " to %" PRIu64 " cannot exist", old, size);
	snprintf(path, sizeof(path), "/v1/tlog/proof/consistency?old=%"
	    PRIu64 "&size=%" PRIu64, old, size);
	if ((r = request_json(c, "GET", path, NULL, AUTH_NONE, NULL, NULL, 0,
	    &obj, what, e)) != 0)
		return r;
	r = proof_answer(c, obj, "old", old, "size", size, proof, n,
	    "consistency proof", e);
	json_decref(obj);
	return r;
}

int
dirc_tlog_inclusion(struct dirc *c, uint64_t index, uint64_t size,
    uint8_t proof[][MERKLE_HASH_LEN], size_t *n, struct err_ctx *e)
{
	static const char what[] = "the inclusion proof request";
	json_t *obj = NULL;
	char path[128];
	int r;

	return_val_if_fail(c != NULL && proof != NULL && n != NULL,
	    ERR_INVALID_ARG);
	if (index >= size || size > MERKLE_SIZE_MAX)
		return err_set(e, ERR_INVALID_ARG, "leaf %" PRIu64 " is not in "
		    "a tree of size %" PRIu64, index, size);
	snprintf(path, sizeof(path), "/v1/tlog/proof/inclusion?index=%"
	    PRIu64 "&size=%" PRIu64, index, size);
	if ((r = request_json(c, "GET", path, NULL, AUTH_NONE, NULL, NULL, 0,
	    &obj, what, e)) != 0)
		return r;
	r = proof_answer(c, obj, "index", index, "size", size, proof, n,
	    "inclusion proof", e);
	json_decref(obj);
	return r;
}

int
dirc_tlog_leaves(struct dirc *c, uint64_t start, uint64_t end,
    struct dirc_tlog_leaf *out, size_t *n, struct err_ctx *e)
{
	static const char what[] = "tlog leaves";
	static const char *const leaf_fields[] = { "account", "seq", "hash" };
	static const char *const fields[] = { "leaves" };
	json_t *obj = NULL, *arr, *item;
	const char *account;
	char path[128];
	size_t i, count;
	int r;

	return_val_if_fail(c != NULL && out != NULL && n != NULL,
	    ERR_INVALID_ARG);
	if (end <= start || end - start > DIRC_TLOG_LEAVES_MAX ||
	    end > MERKLE_SIZE_MAX)
		return err_set(e, ERR_INVALID_ARG, "leaves %" PRIu64 " to %"
		    PRIu64 ": ask for 1 to %d leaves at a time", start, end,
		    DIRC_TLOG_LEAVES_MAX);
	snprintf(path, sizeof(path), "/v1/tlog/leaves?start=%" PRIu64
	    "&end=%" PRIu64, start, end);
	if ((r = request_json(c, "GET", path, NULL, AUTH_NONE, NULL, NULL, 0,
	    &obj, "the leaves request", e)) != 0)
		return r;
	if ((r = devrec_json_keys(obj, fields, 1, what, e)) != 0)
		goto out;
	arr = json_object_get(obj, "leaves");
	count = json_array_size(arr);
	if (!json_is_array(arr) || count == 0 ||
	    count > (size_t)(end - start)) {
		r = err_set(e, ERR_FORMAT, "directory %s: the answer for "
		    "leaves %" PRIu64 " to %" PRIu64 " has no array of 1 to %"
		    PRIu64 " leaves", c->base, start, end, end - start);
		goto out;
	}
	for (i = 0; i < count; i++) {
		item = json_array_get(arr, i);
		if (!json_is_object(item)) {
			r = err_set(e, ERR_FORMAT, "directory %s: leaf %zu "
			    "is not an object", c->base, i);
			goto out;
		}
		if ((r = devrec_json_keys(item, leaf_fields, 3, what,
		    e)) != 0 ||
		    (r = devrec_json_str(item, "account", ACCTLOG_ACCOUNT_MAX,
		    &account, what, e)) != 0 ||
		    (r = devrec_json_u64(item, "seq", &out[i].seq, what,
		    e)) != 0 ||
		    (r = devrec_json_hex32(item, "hash", out[i].hash, what,
		    e)) != 0)
			goto out;
		if (devrec_account_check(account, NULL) != 0 ||
		    out[i].seq == 0) {
			r = err_set(e, ERR_FORMAT, "directory %s: leaf %"
			    PRIu64 " names no valid account event", c->base,
			    start + i);
			goto out;
		}
		snprintf(out[i].account, sizeof(out[i].account), "%s",
		    account);
	}
	*n = count;
	r = 0;
 out:
	json_decref(obj);
	return r;
}

/* dirc_tlog_checkpoint() in the shape of tlog_note_fn. */
static int
latest_note(void *arg, char **note, size_t *len, struct err_ctx *e)
{
	return dirc_tlog_checkpoint(arg, note, len, e);
}

/* tlog-client.h: the checks of a client, bound to the directory c. */
int
tlog_check_log(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    struct dirc *c, const char *account, const struct acctlog_response *resp,
    const uint8_t *ev_hash_of_tlog_seq, uint64_t now,
    struct tlog_check_result *res, struct err_ctx *e)
{
	return_val_if_fail(c != NULL, ERR_INVALID_ARG);
	return tlog_check_log_cb(p, dir_spki, spki_len, st, state_path,
	    dirc_tlog_consistency, latest_note, c, account, resp,
	    ev_hash_of_tlog_seq, now, res, e);
}

int
tlog_check_checkpoint(const struct tlog_policy *p, const uint8_t *dir_spki,
    size_t spki_len, struct tlog_state *st, const char *state_path,
    struct dirc *c, const char *note, size_t len, uint64_t now,
    struct tlog_check_result *res, struct err_ctx *e)
{
	return_val_if_fail(c != NULL, ERR_INVALID_ARG);
	return tlog_check_checkpoint_cb(p, dir_spki, spki_len, st,
	    state_path, dirc_tlog_consistency, c, note, len, now, res, e);
}
