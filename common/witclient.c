/*
 * witclient.c - the client side of C2SP tlog-witness on libcurl
 * (docs/protocol.md section 7.4).
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "dirclient.h"
#include "dirclient-private.h"
#include "errors.h"
#include "merkle.h"
#include "tlog-note.h"
#include "witclient.h"

#define WITC_URL_MAX 2048
#define WITC_TIMEOUT_S_DEFAULT 10
/* The bodies of refusals are a size or one sentence. */
#define WITC_ERROR_BODY_MAX ((size_t)4096)
#define WITC_SIZE_TYPE "text/x.tlog.size"

struct witc {
	CURL *curl;
	char *url;                   /* the submission prefix, no trailing / */
	long timeout_s;
	int plain;                   /* http://: never through a proxy */
};

int
witc_new(const char *url, long timeout_s, struct witc **out,
    struct err_ctx *e)
{
	struct witc *w = NULL;
	size_t n;
	int r = ERR_INTERNAL;

	return_val_if_fail(url != NULL && out != NULL && timeout_s >= 0,
	    ERR_INVALID_ARG);
	if ((r = dirc_url_check(url, e)) != 0)
		return err_wrap(e, r, "witness: %s", err_msg(e));
	if (strlen(url) + sizeof("/add-checkpoint") > WITC_URL_MAX)
		return err_set(e, ERR_CONFIG, "witness URL '%.200s...' is "
		    "too long", url);
	if (dirc_curl_init() != 0)
		return err_set(e, ERR_INTERNAL, "libcurl failed to initialise");
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->url = strdup(url)) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	n = strlen(w->url);
	while (n > 0 && w->url[n - 1] == '/')
		w->url[--n] = '\0';
	w->plain = strncasecmp(w->url, "http://", 7) == 0;
	w->timeout_s = timeout_s > 0 ? timeout_s : WITC_TIMEOUT_S_DEFAULT;
	if ((w->curl = curl_easy_init()) == NULL) {
		r = err_set(e, ERR_INTERNAL, "libcurl failed to initialise");
		goto out;
	}
	*out = w;
	w = NULL; /* transferred */
	r = 0;
 out:
	witc_free(w);
	return r;
}

void
witc_free(struct witc *w)
{
	if (w == NULL)
		return;
	if (w->curl != NULL)
		curl_easy_cleanup(w->curl);
	free(w->url);
	free(w);
}

/*
 * The size in a 409 body: decimal digits without leading zeros, one
 * newline, nothing else; 0 when the body is anything else.
 */
static uint64_t
size_body_parse(const struct dirc_answer *a)
{
	uint64_t v = 0;
	size_t i;

	if (a->p == NULL || a->len < 2 || a->len > 21 ||
	    a->p[a->len - 1] != '\n' || (a->p[0] == '0' && a->len != 2))
		return 0;
	for (i = 0; i + 1 < a->len; i++) {
		if (a->p[i] < '0' || a->p[i] > '9')
			return 0;
		if (v > (MERKLE_SIZE_MAX - (uint64_t)(a->p[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(a->p[i] - '0');
	}
	return v;
}

/* One line of the witness's explanation, printable, for a message. */
static void
reason_copy(const struct dirc_answer *a, char *out, size_t out_len)
{
	size_t i, n = 0;

	for (i = 0; a->p != NULL && i < a->len && n + 1 < out_len; i++) {
		if (a->p[i] == '\n')
			break;
		out[n++] = isprint((unsigned char)a->p[i]) ? a->p[i] : '?';
	}
	out[n] = '\0';
}

/* Turns a refusal (status, body a, content type ctype) into an error. */
static int
refusal(const struct witc *w, long status, const struct dirc_answer *a,
    const char *ctype, uint64_t *witness_size, struct err_ctx *e)
{
	char reason[200];
	uint64_t size;

	reason_copy(a, reason, sizeof(reason));
	switch (status) {
	case 409:
		size = ctype != NULL && strncasecmp(ctype, WITC_SIZE_TYPE,
		    strlen(WITC_SIZE_TYPE)) == 0 ? size_body_parse(a) : 0;
		if (witness_size != NULL)
			*witness_size = size;
		return err_set(e, ERR_EXISTS, "witness %s holds a checkpoint "
		    "of size %" PRIu64 " that the one submitted does not "
		    "extend from the old size given (HTTP 409)", w->url,
		    size);
	case 422:
		return err_set(e, ERR_SIGNATURE, "witness %s: the consistency "
		    "proof does not verify (HTTP 422): %s", w->url, reason);
	case 403:
		return err_set(e, ERR_DENIED, "witness %s: the log's signature "
		    "does not verify under the key it has for this origin "
		    "(HTTP 403): %s", w->url, reason);
	case 404:
		return err_set(e, ERR_NOT_FOUND, "witness %s does not witness "
		    "this log, or is not a witness at this URL (HTTP 404)",
		    w->url);
	case 400:
		return err_set(e, ERR_FORMAT, "witness %s refused the request "
		    "as malformed (HTTP 400): %s", w->url, reason);
	case 413:
		return err_set(e, ERR_TOO_LARGE, "witness %s: the request is "
		    "too large (HTTP 413)", w->url);
	default:
		return err_set(e, ERR_NETWORK, "witness %s answered HTTP %ld: "
		    "%s", w->url, status, reason);
	}
}

/*
 * Checks that the body of a 200 is one or more signature lines of at
 * most TLOG_NOTE_MAX bytes in all.
 */
static int
lines_check(const struct witc *w, const struct dirc_answer *a, struct err_ctx *e)
{
	struct tlog_sigline sl;
	struct err_ctx pe;
	const char *p, *nl;
	size_t left, count = 0;

	err_clear(&pe);
	if (a->p == NULL || a->len == 0 || a->p[a->len - 1] != '\n' ||
	    strlen(a->p) != a->len)
		return err_set(e, ERR_FORMAT, "witness %s answered 200 "
		    "without cosignature lines", w->url);
	for (p = a->p, left = a->len; left > 0; count++) {
		nl = memchr(p, '\n', left);
		if (count == TLOG_SIGS_MAX ||
		    tlog_sigline_parse(p, (size_t)(nl - p) + 1, &sl, &pe) != 0)
			return err_set(e, ERR_FORMAT, "witness %s answered 200 "
			    "with something other than signature lines: %s",
			    w->url, count == TLOG_SIGS_MAX ? "too many" :
			    err_msg(&pe));
		left -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	return 0;
}

int
witc_add_checkpoint(struct witc *w, const char *body, size_t len,
    char **lines, uint64_t *witness_size, struct err_ctx *e)
{
	struct curl_slist *hdrs = NULL, *h;
	struct dirc_answer a;
	char url[WITC_URL_MAX];
	char cerr[CURL_ERROR_SIZE];
	char *ctype = NULL;
	CURLcode cc;
	long status = 0;
	int r = ERR_INTERNAL;

	return_val_if_fail(w != NULL && body != NULL && lines != NULL,
	    ERR_INVALID_ARG);
	memset(&a, 0, sizeof(a));
	a.max = TLOG_NOTE_MAX;
	cerr[0] = '\0';
	if (witness_size != NULL)
		*witness_size = 0;
	snprintf(url, sizeof(url), "%s/add-checkpoint", w->url);
	if ((h = curl_slist_append(NULL, "Content-Type: text/plain; "
	    "charset=utf-8")) == NULL ||
	    (hdrs = h, h = curl_slist_append(hdrs, "Expect:")) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	hdrs = h;
	curl_easy_reset(w->curl);
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	curl_easy_setopt(w->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)len);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, dirc_on_data);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(w->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, w->timeout_s);
	curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT, w->timeout_s);
	curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(w->curl, CURLOPT_FOLLOWLOCATION, 0L);
	if (w->plain)
		curl_easy_setopt(w->curl, CURLOPT_NOPROXY, "*");
	cc = curl_easy_perform(w->curl);
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		if (a.too_large)
			r = err_set(e, ERR_TOO_LARGE, "witness %s: its answer "
			    "is larger than %zu bytes", w->url, a.max);
		else if (cc == CURLE_OPERATION_TIMEDOUT)
			r = err_set(e, ERR_TIMEOUT, "witness %s did not answer "
			    "within %ld s: %s", w->url, w->timeout_s,
			    cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
		else
			r = err_set(e, ERR_NETWORK, "witness %s is "
			    "unreachable: %s", w->url, cerr[0] != '\0' ? cerr :
			    curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200) {
		curl_easy_getinfo(w->curl, CURLINFO_CONTENT_TYPE, &ctype);
		if (a.len > WITC_ERROR_BODY_MAX)
			a.len = WITC_ERROR_BODY_MAX;
		r = refusal(w, status, &a, ctype, witness_size, e);
		goto out;
	}
	if ((r = lines_check(w, &a, e)) != 0)
		goto out;
	*lines = a.p;
	a.p = NULL; /* transferred */
	r = 0;
 out:
	curl_slist_free_all(hdrs);
	free(a.p);
	return r;
}
