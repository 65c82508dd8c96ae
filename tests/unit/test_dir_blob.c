/*
 * test_dir_blob.c - blobs (PROTOCOL.md section 8) over HTTP.
 *
 * Each test runs an in-process server (dir-server + dir-api + dir-blob +
 * the SQLite store, as devid-directory serve runs them) on a free
 * loopback port with a fresh database and blob directory.  Uploads and
 * downloads go through raw libcurl, and the requests a client library
 * would never send (headers only, a body cut off) through a raw socket.
 * Every refusal must leave no file in the blob directory and no row.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "acctlog.h"
#include "codec.h"
#include "crypto.h"
#include "dir-api.h"
#include "dir-auth.h"
#include "dir-blob.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"
#include "stream.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"
#define BLOB_MAX ((uint64_t)80 * 1024 * 1024)

struct fx {
	struct tdir d;               /* with blobs */
	struct tdir_devs dev;        /* alice: a1, a2; bob: b1 */
	char hdr_a[128], hdr_b[128], hdr_2[128];
};

/* The server's request timeout for the next setup (0: its default). */
static unsigned int setup_timeout_s;

static uint64_t
now_s(void)
{
	return (uint64_t)time(NULL);
}

static void
bearer_of(struct dirc *c, char *hdr, size_t hdr_len)
{
	snprintf(hdr, hdr_len, "Authorization: Bearer %s", dirc_token(c));
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct tdir_opts o;

	assert_non_null(f);
	*state = f;
	tdir_opts_default(&o);
	o.api.max_body = 64 * 1024;
	o.api.blob_max = BLOB_MAX;
	o.blobs = 1;
	o.srv.threads = 4;
	o.srv.request_timeout_s = setup_timeout_s;
	o.srv.max_per_address = DIR_UNLIMITED;
	o.srv.preauth = dir_api_preauth;
	assert_int_equal(tdir_start(&f->d, &o), 0);
	assert_int_equal(tdir_devs_make(&f->d, &f->dev, ALICE, PW, BOB,
	    BOB_PW), 0);
	bearer_of(f->dev.ca, f->hdr_a, sizeof(f->hdr_a));
	bearer_of(f->dev.cb, f->hdr_b, sizeof(f->hdr_b));
	bearer_of(f->dev.c2, f->hdr_2, sizeof(f->hdr_2));
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	tdir_devs_clear(&f->dev);
	tdir_stop(&f->d);
	free(f);
	return 0;
}

/* --- blobs and transfers --- */

/* A body of len bytes that starts with a well-formed blob header; the
 * rest is random (the directory never opens a blob). */
static uint8_t *
blob_make(size_t len)
{
	struct stream_header h;
	uint8_t *p = malloc(len);

	assert_non_null(p);
	assert_true(len >= STREAM_HEADER_LEN);
	memset(&h, 0, sizeof(h));
	h.version = STREAM_VERSION;
	h.segment_len = STREAM_SEGMENT_DEFAULT;
	assert_int_equal(crypto_random(h.salt, sizeof(h.salt)), 0);
	assert_int_equal(stream_header_format(&h, p), 0);
	assert_int_equal(crypto_random(p + STREAM_HEADER_LEN,
	    len - STREAM_HEADER_LEN), 0);
	return p;
}

static void
hash_hex(const uint8_t *p, size_t len, char out[65])
{
	uint8_t md[32];

	assert_int_equal(crypto_sha256(p, len, md), 0);
	hex_encode(md, sizeof(md), out);
}

struct membuf {
	struct tbody body;           /* what came */
	char content_range[128];
};

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct membuf *m = arg;
	size_t n = size * nmemb;

	if (n > 15 && strncasecmp(data, "Content-Range: ", 15) == 0)
		snprintf(m->content_range, sizeof(m->content_range), "%.*s",
		    (int)strcspn(data + 15, "\r\n"), data + 15);
	return n;
}

/* A body made on the fly: len bytes of a header, then a counter. */
struct gen {
	uint64_t len, off;
	uint8_t hdr[STREAM_HEADER_LEN];
};

static size_t
gen_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct gen *g = arg;
	size_t n = size * nmemb, i;

	if (n > g->len - g->off)
		n = (size_t)(g->len - g->off);
	for (i = 0; i < n; i++, g->off++)
		buf[i] = g->off < STREAM_HEADER_LEN ? (char)g->hdr[g->off] :
		    (char)(g->off * 7);
	return n;
}

/*
 * POST /v1/blobs with body (len bytes) or, when body is NULL, with len
 * bytes from gen; chunked sends without a Content-Length.  The status,
 * and the JSON answer in *ans (may be NULL).
 */
static long
upload_ex(struct fx *f, const char *hdr, const uint8_t *body, uint64_t len,
    struct gen *gen, int chunked, json_t **ans)
{
	struct curl_slist *h = NULL;
	struct membuf m;
	char url[256];
	long status = 0;
	CURL *c;

	memset(&m, 0, sizeof(m));
	if (ans != NULL)
		*ans = NULL;
	assert_non_null(c = curl_easy_init());
	snprintf(url, sizeof(url), "%s/v1/blobs", f->d.base);
	if (hdr != NULL)
		h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	if (chunked)
		h = curl_slist_append(h, "Transfer-Encoding: chunked");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tbody_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m.body);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)len);
	} else {
		curl_easy_setopt(c, CURLOPT_READFUNCTION, gen_read);
		curl_easy_setopt(c, CURLOPT_READDATA, gen);
		if (!chunked)
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)len);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (ans != NULL && m.body.p != NULL)
		*ans = json_loadb((const char *)m.body.p, m.body.len, 0, NULL);
	free(m.body.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

static long
upload(struct fx *f, const char *hdr, const uint8_t *body, size_t len,
    json_t **ans)
{
	return upload_ex(f, hdr, body, len, NULL, 0, ans);
}

/* GET /v1/blobs/{hash} with an optional Range value; the body in *m. */
static long
download(struct fx *f, const char *hdr, const char *hash, const char *range,
    struct membuf *m)
{
	struct curl_slist *h = NULL;
	char url[256], rh[128];
	long status = 0;
	CURL *c;

	memset(m, 0, sizeof(*m));
	assert_non_null(c = curl_easy_init());
	snprintf(url, sizeof(url), "%s/v1/blobs/%s", f->d.base, hash);
	if (hdr != NULL)
		h = curl_slist_append(h, hdr);
	if (range != NULL) {
		snprintf(rh, sizeof(rh), "Range: %s", range);
		h = curl_slist_append(h, rh);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tbody_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, m);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return status;
}

/* The error code word of a download's JSON answer, compared to want. */
static void
assert_dl_error(struct membuf *m, const char *want)
{
	json_t *j = m->body.p != NULL ? json_loadb((const char *)m->body.p,
	    m->body.len, 0, NULL) : NULL;

	if (strcmp(terror_code(j), want) != 0)
		fail_msg("want error %s, got %s", want, m->body.p != NULL ?
		    (const char *)m->body.p : "(nothing)");
	json_decref(j);
	free(m->body.p);
	m->body.p = NULL;
}

static void
assert_code(json_t *ans, const char *want)
{
	if (strcmp(terror_code(ans), want) != 0) {
		char *d = ans != NULL ? json_dumps(ans, 0) : NULL;

		fail_msg("want error %s, got %s", want, d != NULL ? d :
		    "(no JSON)");
	}
	json_decref(ans);
}

/* Uploads a fresh blob of len bytes as the session in hdr; its hash. */
static void
upload_ok(struct fx *f, const char *hdr, size_t len, char hash[65])
{
	uint8_t *b = blob_make(len);
	json_t *ans = NULL;

	hash_hex(b, len, hash);
	assert_int_equal(upload(f, hdr, b, len, &ans), 201);
	assert_string_equal(json_string_value(json_object_get(ans, "hash")),
	    hash);
	json_decref(ans);
	free(b);
}

/* Regular files anywhere under the blob directory, but its lock file. */
static unsigned int
count_files(const char *dir)
{
	char path[1024];
	struct dirent *de;
	struct stat st;
	unsigned int n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, ".lock") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += count_files(path);
		else
			n++;
	}
	closedir(d);
	return n;
}

static int
blob_file_exists(struct fx *f, const char *hash)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%.2s/%s", f->d.blob_dir, hash, hash);
	return stat(path, &st) == 0;
}

static int
blob_kept(struct fx *f, const char *hash)
{
	struct err_ctx e;
	int kept = -1;

	err_clear(&e);
	assert_int_equal(f->d.store->ops->blob_exists(f->d.store, hash, &kept,
	    &e), 0);
	return kept;
}

static uint64_t
usage(struct fx *f, const char *account)
{
	struct err_ctx e;
	uint64_t u = UINT64_MAX;

	err_clear(&e);
	assert_int_equal(f->d.store->ops->blob_usage(f->d.store, account, &u,
	    &e), 0);
	return u;
}

/* An envelope from a1 to bob's b1 (and alice's a2 when both). */
static void
envelope(struct fx *f, int both, char **json, size_t *len)
{
	static const char *const to[] = { ALICE, BOB };
	const struct tdev *r1[] = { &f->dev.b1 };
	const struct tdev *r2[] = { &f->dev.b1, &f->dev.a2 };
	struct acctlog_response *resp = NULL;
	struct acctlog_head v[2];
	struct err_ctx e;

	err_clear(&e);
	assert_int_equal(dirc_get_log(f->dev.ca, ALICE, 0, 0, &resp, &e), 0);
	v[0] = resp->head;
	acctlog_response_free(resp);
	assert_int_equal(dirc_get_log(f->dev.ca, BOB, 0, 0, &resp, &e), 0);
	v[1] = resp->head;
	acctlog_response_free(resp);
	assert_int_equal(tenv_make(&f->dev.a1, to, 2, v, 2, both ? r2 : r1,
	    both ? 2 : 1, json, len), 0);
}

/* POST /v1/messages?blobs=list from a1; the status, *ans the answer. */
static long
post_with_blobs(struct fx *f, const char *list, int both, json_t **ans)
{
	char path[2048], *json = NULL;
	size_t len = 0;
	long st;

	envelope(f, both, &json, &len);
	snprintf(path, sizeof(path), "/v1/messages?blobs=%s", list);
	st = thttp(f->d.base, "POST", path, json, len, f->hdr_a, NULL, NULL,
	    ans);
	free(json);
	return st;
}

/* The number of messages queued for the session of c. */
static size_t
queued(struct dirc *c)
{
	struct dirc_inbox *in = NULL;
	struct err_ctx e;
	size_t n;

	err_clear(&e);
	assert_int_equal(dirc_inbox(c, 0, 0, &in, &e), 0);
	n = in->n_items;
	dirc_inbox_free(in);
	return n;
}

/* --- raw sockets --- */

static int
raw_connect(struct fx *f)
{
	struct sockaddr_in sin;
	const char *addr = dir_server_address(f->d.srv);
	const char *colon = strrchr(addr, ':');
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	return fd;
}

static void
raw_send(int fd, const void *p, size_t len)
{
	const uint8_t *q = p;
	ssize_t n;

	while (len > 0) {
		n = send(fd, q, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		q += n;
		len -= (size_t)n;
	}
}

/* Reads what the server sends within timeout_ms into out (NUL ended). */
static size_t
raw_read(int fd, char *out, size_t out_len, unsigned int timeout_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	double end = tmono_ms() + timeout_ms;
	size_t got = 0;
	ssize_t n;

	while (got + 1 < out_len && tmono_ms() < end) {
		if (poll(&pfd, 1, 100) != 1)
			continue;
		n = recv(fd, out + got, out_len - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (strstr(out, "\r\n\r\n") != NULL && strchr(out, '}'))
			break;
		out[got] = '\0';
	}
	out[got] = '\0';
	return got;
}

/* Headers of a POST /v1/blobs announcing len bytes. */
static void
raw_headers(struct fx *f, const char *auth, uint64_t len, char *out,
    size_t out_len)
{
	snprintf(out, out_len, "POST /v1/blobs HTTP/1.1\r\nHost: %s\r\n"
	    "%s\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Length: %llu\r\n\r\n", dir_server_address(f->d.srv), auth,
	    (unsigned long long)len);
}

/* --- tests --- */

static void
test_info_limits(void **state)
{
	struct fx *f = *state;

	assert_int_equal(tinfo_limit(f->d.base, "max_blob"), BLOB_MAX);
	assert_int_equal(tinfo_limit(f->d.base, "blob_quota"),
	    DIR_BLOB_QUOTA_DEFAULT);
	assert_int_equal(tinfo_limit(f->d.base, "blob_days"),
	    DIR_BLOB_DAYS_DEFAULT);
}

/* Upload, link, download by the addressed device, ranges, who is
 * refused, and the end of the blob once its message is acknowledged. */
static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	const size_t len = 300 * 1024 + 17;
	uint8_t *b = blob_make(len);
	char hash[65], other[65], range[64], want_cr[128];
	struct membuf m;
	struct err_ctx e;
	json_t *ans = NULL;
	uint64_t removed = 0;

	hash_hex(b, len, hash);
	assert_int_equal(upload(f, f->hdr_a, b, len, &ans), 201);
	assert_string_equal(json_string_value(json_object_get(ans, "hash")),
	    hash);
	assert_int_equal(json_integer_value(json_object_get(ans, "size")),
	    len);
	assert_true(json_integer_value(json_object_get(ans, "expires")) >=
	    (json_int_t)(now_s() + 7 * 86400 - 5));
	json_decref(ans);
	assert_true(blob_file_exists(f, hash));
	assert_int_equal(blob_kept(f, hash), 1);
	assert_int_equal(usage(f, ALICE), len);
	/* The same bytes again from the same device: 200, one file. */
	assert_int_equal(upload(f, f->hdr_a, b, len, &ans), 200);
	assert_string_equal(json_string_value(json_object_get(ans, "hash")),
	    hash);
	json_decref(ans);
	assert_int_equal(count_files(f->d.blob_dir), 1);
	assert_int_equal(usage(f, ALICE), len);

	/* Nobody is addressed yet: 403, like an unknown hash. */
	assert_int_equal(download(f, f->hdr_b, hash, NULL, &m), 403);
	assert_dl_error(&m, "not_addressed");
	memset(other, 'a', 64);
	other[64] = '\0';
	assert_int_equal(download(f, f->hdr_b, other, NULL, &m), 403);
	assert_dl_error(&m, "not_addressed");
	assert_int_equal(download(f, f->hdr_b, "ABC", NULL, &m), 400);
	assert_dl_error(&m, "bad_request");
	other[63] = 'A';
	assert_int_equal(download(f, f->hdr_b, other, NULL, &m), 400);
	assert_dl_error(&m, "bad_request");
	assert_int_equal(download(f, NULL, hash, NULL, &m), 401);
	assert_dl_error(&m, "unauthorized");

	/* Linked to a message for b1. */
	assert_int_equal(post_with_blobs(f, hash, 0, &ans), 201);
	json_decref(ans);
	assert_int_equal(download(f, f->hdr_b, hash, NULL, &m), 200);
	assert_int_equal(m.body.len, len);
	assert_memory_equal(m.body.p, b, len);
	hash_hex(m.body.p, m.body.len, other);
	assert_string_equal(other, hash);
	free(m.body.p);
	/* The sender and a2 are not addressed. */
	assert_int_equal(download(f, f->hdr_a, hash, NULL, &m), 403);
	assert_dl_error(&m, "not_addressed");
	assert_int_equal(download(f, f->hdr_2, hash, NULL, &m), 403);
	assert_dl_error(&m, "not_addressed");

	/* Resuming from byte 1000. */
	assert_int_equal(download(f, f->hdr_b, hash, "bytes=1000-", &m), 206);
	assert_int_equal(m.body.len, len - 1000);
	assert_memory_equal(m.body.p, b + 1000, len - 1000);
	snprintf(want_cr, sizeof(want_cr), "bytes 1000-%zu/%zu", len - 1,
	    len);
	assert_string_equal(m.content_range, want_cr);
	free(m.body.p);
	snprintf(range, sizeof(range), "bytes=%zu-", len - 1);
	assert_int_equal(download(f, f->hdr_b, hash, range, &m), 206);
	assert_int_equal(m.body.len, 1);
	assert_int_equal(m.body.p[0], b[len - 1]);
	free(m.body.p);
	/* Past the end: 416 with the size. */
	snprintf(range, sizeof(range), "bytes=%zu-", len);
	assert_int_equal(download(f, f->hdr_b, hash, range, &m), 416);
	snprintf(want_cr, sizeof(want_cr), "bytes */%zu", len);
	assert_string_equal(m.content_range, want_cr);
	assert_dl_error(&m, "range_not_satisfiable");
	/* Other forms of Range are ignored: the whole blob. */
	assert_int_equal(download(f, f->hdr_b, hash, "bytes=0-10", &m), 200);
	assert_int_equal(m.body.len, len);
	free(m.body.p);
	assert_int_equal(download(f, f->hdr_b, hash, "bytes=-10", &m), 200);
	assert_int_equal(m.body.len, len);
	free(m.body.p);
	assert_int_equal(download(f, f->hdr_b, hash, "items=5-", &m), 200);
	assert_int_equal(m.body.len, len);
	free(m.body.p);

	/* Expiry keeps it while the message is queued... */
	err_clear(&e);
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s(),
	    &removed, &e), 0);
	assert_int_equal(removed, 0);
	assert_true(blob_file_exists(f, hash));
	/* ... and removes it once b1 acknowledged. */
	err_clear(&e);
	assert_int_equal(dirc_ack(f->dev.cb, UINT32_MAX, NULL, &e), 0);
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s(),
	    &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_false(blob_file_exists(f, hash));
	assert_int_equal(blob_kept(f, hash), 0);
	assert_int_equal(usage(f, ALICE), 0);
	assert_int_equal(count_files(f->d.blob_dir), 0);
	assert_int_equal(download(f, f->hdr_b, hash, NULL, &m), 403);
	assert_dl_error(&m, "not_addressed");
	free(b);
}

/* Refusals from the headers alone, and of bad bodies: nothing kept. */
static void
test_refusals(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob_make(4096);
	struct gen g;
	char req[1024], ans[4096];
	double t0;
	json_t *j = NULL;
	long st;
	int fd;

	/* 401 without a session, with a wrong one. */
	assert_int_equal(upload(f, NULL, b, 4096, &j), 401);
	assert_code(j, "unauthorized");
	assert_int_equal(upload(f, "Authorization: Bearer xyz", b, 4096, &j),
	    401);
	assert_code(j, "unauthorized");
	/* 411 for a chunked body. */
	memset(&g, 0, sizeof(g));
	memcpy(g.hdr, b, sizeof(g.hdr));
	g.len = 4096;
	assert_int_equal(upload_ex(f, f->hdr_a, NULL, 4096, &g, 1, &j), 411);
	assert_code(j, "length_required");
	/* 400: not a blob header, too short to be a blob. */
	memcpy(b, "DVSX", 4);
	assert_int_equal(upload(f, f->hdr_a, b, 4096, &j), 400);
	assert_code(j, "bad_request");
	memcpy(b, "DVST", 4);
	b[4] = 2;
	assert_int_equal(upload(f, f->hdr_a, b, 4096, &j), 400);
	assert_code(j, "bad_request");
	b[4] = 1;
	assert_int_equal(upload(f, f->hdr_a, b, 50, &j), 400);
	assert_code(j, "bad_request");
	/* 413 too_large, answered before any of the body was sent. */
	fd = raw_connect(f);
	raw_headers(f, f->hdr_a, BLOB_MAX + 1, req, sizeof(req));
	raw_send(fd, req, strlen(req));
	t0 = tmono_ms();
	assert_true(raw_read(fd, ans, sizeof(ans), 5000) > 0);
	assert_true(tmono_ms() - t0 < 4000);
	assert_non_null(strstr(ans, " 413 "));
	assert_non_null(strstr(ans, "too_large"));
	close(fd);
	/* The same through curl's Expect: 100-continue. */
	memset(&g, 0, sizeof(g));
	memcpy(g.hdr, b, sizeof(g.hdr));
	g.len = BLOB_MAX + 1;
	assert_int_equal(upload_ex(f, f->hdr_a, NULL, BLOB_MAX + 1, &g, 0,
	    &j), 413);
	assert_code(j, "too_large");
	assert_true(g.off < BLOB_MAX / 2);
	/* 401 before the body as well. */
	fd = raw_connect(f);
	raw_headers(f, "X-Nothing: 1", 1000, req, sizeof(req));
	raw_send(fd, req, strlen(req));
	assert_true(raw_read(fd, ans, sizeof(ans), 5000) > 0);
	assert_non_null(strstr(ans, " 401 "));
	close(fd);
	/* A bad header in a body longer than what the server reads on
	 * after refusing it: 400, or the connection is cut; nothing kept. */
	memset(&g, 0, sizeof(g));
	memcpy(g.hdr, "DVSX", 4);
	g.len = 3 * DIR_STREAM_DISCARD_MAX;
	j = NULL;
	st = upload_ex(f, f->hdr_a, NULL, g.len, &g, 0, &j);
	assert_true(st == 400 || st == 0);
	json_decref(j);
	assert_int_equal(count_files(f->d.blob_dir), 0);
	/* 413 blob_quota: usage + length over the quota. */
	f->d.api.cfg.blob_quota = 6000;
	assert_int_equal(upload(f, f->hdr_a, b, 4096, &j), 201);
	json_decref(j);
	free(b);
	b = blob_make(4096);
	assert_int_equal(upload(f, f->hdr_2, b, 4096, &j), 413);
	assert_code(j, "blob_quota");
	/* Another account has its own quota. */
	assert_int_equal(upload(f, f->hdr_b, b, 4096, &j), 201);
	json_decref(j);
	assert_int_equal(usage(f, ALICE), 4096);
	assert_int_equal(usage(f, BOB), 4096);
	/* Only the two accepted blobs have files. */
	assert_int_equal(count_files(f->d.blob_dir), 2);
	free(b);
}

/* A connection cut in the middle of a body leaves nothing. */
static void
test_cut_upload(void **state)
{
	struct fx *f = *state;
	const size_t len = 512 * 1024;
	uint8_t *b = blob_make(len);
	char req[1024], hash[65];
	double end;
	int fd;

	hash_hex(b, len, hash);
	fd = raw_connect(f);
	raw_headers(f, f->hdr_a, len, req, sizeof(req));
	raw_send(fd, req, strlen(req));
	raw_send(fd, b, len / 2);
	/* The partial file exists while the upload runs... */
	end = tmono_ms() + 5000;
	while (count_files(f->d.blob_dir) == 0 && tmono_ms() < end)
		tsleep_ms(10);
	assert_int_equal(count_files(f->d.blob_dir), 1);
	close(fd);
	/* ... and goes with the connection. */
	end = tmono_ms() + 5000;
	while (count_files(f->d.blob_dir) != 0 && tmono_ms() < end)
		tsleep_ms(10);
	assert_int_equal(count_files(f->d.blob_dir), 0);
	assert_int_equal(blob_kept(f, hash), 0);
	assert_int_equal(usage(f, ALICE), 0);
	/* The whole body on a new connection is kept. */
	assert_int_equal(upload(f, f->hdr_a, b, len, NULL), 201);
	assert_true(blob_file_exists(f, hash));
	free(b);
}

/* POST /v1/messages?blobs=: the list's syntax and whose blobs. */
static void
test_message_blobs(void **state)
{
	struct fx *f = *state;
	char ha[65], hb[65], list[2048];
	json_t *ans = NULL;
	size_t i;

	upload_ok(f, f->hdr_a, 1000, ha);
	upload_ok(f, f->hdr_b, 1000, hb);
	/* Malformed lists. */
	assert_int_equal(post_with_blobs(f, "", 0, &ans), 400);
	assert_code(ans, "bad_request");
	assert_int_equal(post_with_blobs(f, "xyz", 0, &ans), 400);
	assert_code(ans, "bad_request");
	snprintf(list, sizeof(list), "%s,", ha);
	assert_int_equal(post_with_blobs(f, list, 0, &ans), 400);
	assert_code(ans, "bad_request");
	snprintf(list, sizeof(list), "%s,%s", ha, ha);
	assert_int_equal(post_with_blobs(f, list, 0, &ans), 400);
	assert_code(ans, "bad_request");
	list[0] = '\0';
	for (i = 0; i < 17; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		    "%s%064zx", i > 0 ? "," : "", i);
	assert_int_equal(post_with_blobs(f, list, 0, &ans), 400);
	assert_code(ans, "bad_request");
	/* Bob's blob named by alice's device: refused, nothing queued. */
	snprintf(list, sizeof(list), "%s,%s", ha, hb);
	assert_int_equal(post_with_blobs(f, list, 0, &ans), 403);
	assert_code(ans, "blob_refused");
	assert_int_equal(queued(f->dev.cb), 0);
	/* A hash nobody uploaded. */
	memset(list, 'c', 64);
	list[64] = '\0';
	assert_int_equal(post_with_blobs(f, list, 0, &ans), 403);
	assert_code(ans, "blob_refused");
	assert_int_equal(queued(f->dev.cb), 0);
	/* Its own: queued for both recipients, who may both fetch it. */
	assert_int_equal(post_with_blobs(f, ha, 1, &ans), 201);
	json_decref(ans);
	assert_int_equal(queued(f->dev.cb), 1);
	assert_int_equal(queued(f->dev.c2), 1);
}

/* A blob removed while its message is still queued is 410. */
static void
test_expired(void **state)
{
	struct fx *f = *state;
	struct membuf m;
	struct err_ctx e;
	char h[65], unlinked[65];
	json_t *ans = NULL;
	uint64_t removed = 0;

	upload_ok(f, f->hdr_a, 2000, h);
	upload_ok(f, f->hdr_a, 2000, unlinked);
	assert_int_equal(post_with_blobs(f, h, 0, &ans), 201);
	json_decref(ans);
	/* Within the hour nothing goes. */
	err_clear(&e);
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s() + 60,
	    &removed, &e), 0);
	assert_int_equal(removed, 0);
	/* After an hour the blob no message named goes... */
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s() +
	    DIR_BLOB_UNLINKED_S + 1, &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_false(blob_file_exists(f, unlinked));
	assert_true(blob_file_exists(f, h));
	/* ... after blob_days the linked one too. */
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s() +
	    DIR_BLOB_DAYS_DEFAULT * 86400 + 1, &removed, &e), 0);
	assert_int_equal(removed, 1);
	assert_false(blob_file_exists(f, h));
	assert_int_equal(download(f, f->hdr_b, h, NULL, &m), 410);
	assert_dl_error(&m, "expired");
	assert_int_equal(count_files(f->d.blob_dir), 0);
}

/* The start-up sweep: partial uploads and files without a row go. */
static void
test_sweep(void **state)
{
	struct fx *f = *state;
	char kept[65], path[1024], orphan[65];
	struct err_ctx e;
	struct timeval tv[2];
	uint64_t removed = 0;
	FILE *fp;

	upload_ok(f, f->hdr_a, 1000, kept);
	snprintf(path, sizeof(path), "%s/.tmp-0123456789abcdef", f->d.blob_dir);
	assert_non_null(fp = fopen(path, "w"));
	fclose(fp);
	memset(orphan, 'd', 64);
	orphan[64] = '\0';
	snprintf(path, sizeof(path), "%s/dd", f->d.blob_dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dd/%s", f->d.blob_dir, orphan);
	assert_non_null(fp = fopen(path, "w"));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/README", f->d.blob_dir);
	assert_non_null(fp = fopen(path, "w"));
	fclose(fp);
	assert_int_equal(count_files(f->d.blob_dir), 4);
	/* With a grace period fresh files stay. */
	err_clear(&e);
	assert_int_equal(dir_blobs_sweep(f->d.blobs, f->d.store, 3600, &removed,
	    &e), 0);
	assert_int_equal(removed, 0);
	/* Old ones go. */
	memset(tv, 0, sizeof(tv));
	tv[0].tv_sec = tv[1].tv_sec = (time_t)(now_s() - 7200);
	snprintf(path, sizeof(path), "%s/dd/%s", f->d.blob_dir, orphan);
	assert_int_equal(utimes(path, tv), 0);
	assert_int_equal(dir_blobs_sweep(f->d.blobs, f->d.store, 3600, &removed,
	    &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(dir_blobs_sweep(f->d.blobs, f->d.store, 0, &removed,
	    &e), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(count_files(f->d.blob_dir), 2);
	assert_true(blob_file_exists(f, kept));
	snprintf(path, sizeof(path), "%s/README", f->d.blob_dir);
	assert_int_equal(access(path, F_OK), 0);
}

/*
 * The receive deadline of a streamed body grows with its length: with a
 * 1 s request timeout, 256 KiB sent over about 2 s still arrive (the
 * deadline is 1 s + 256 KiB / 64 KiB/s), while a JSON request that
 * stalls as long is cut.
 */
static void
test_slow_upload(void **state)
{
	struct fx *f = *state;
	const size_t len = 256 * 1024, piece = 32 * 1024;
	uint8_t *b = blob_make(len);
	char req[1024], ans[4096];
	size_t off;
	int fd;

	fd = raw_connect(f);
	raw_headers(f, f->hdr_a, len, req, sizeof(req));
	raw_send(fd, req, strlen(req));
	for (off = 0; off < len; off += piece) {
		tsleep_ms(250);
		raw_send(fd, b + off, piece);
	}
	assert_true(raw_read(fd, ans, sizeof(ans), 5000) > 0);
	assert_non_null(strstr(ans, " 201 "));
	close(fd);
	/* An ordinary request gets the plain deadline. */
	fd = raw_connect(f);
	snprintf(req, sizeof(req), "POST /v1/inbox/ack HTTP/1.1\r\n"
	    "Host: x\r\n%s\r\nContent-Length: 100\r\n\r\n{", f->hdr_a);
	raw_send(fd, req, strlen(req));
	tsleep_ms(600);
	raw_send(fd, " ", 1);
	tsleep_ms(600);
	raw_send(fd, " ", 1);
	tsleep_ms(600);
	(void)send(fd, " ", 1, MSG_NOSIGNAL);
	assert_int_equal(raw_read(fd, ans, sizeof(ans), 3000), 0);
	close(fd);
	free(b);
}

static int
setup_short_timeout(void **state)
{
	int r;

	setup_timeout_s = 1;
	r = setup(state);
	setup_timeout_s = 0;
	return r;
}

/* dirc_read_fn over a buffer. */
struct rd {
	const uint8_t *p;
	size_t len, off;
};

static int
rd_fn(void *arg, uint8_t *buf, size_t max, size_t *n, struct err_ctx *e)
{
	struct rd *r = arg;

	(void)e;
	*n = r->len - r->off < max ? r->len - r->off : max;
	memcpy(buf, r->p + r->off, *n);
	r->off += *n;
	return 0;
}

/* dirc_write_fn into a membuf. */
static int
wr_fn(void *arg, const uint8_t *p, size_t len)
{
	struct membuf *m = arg;

	return tbody_write((char *)(uintptr_t)p, 1, len, &m->body) == len ?
	    0 : ERR_ALLOC;
}

/* common/dirclient against this server: the two ends agree. */
static void
test_dirclient(void **state)
{
	struct fx *f = *state;
	const size_t len = 200 * 1000 + 3;
	uint8_t *b = blob_make(len);
	struct dirc_blob_info bi;
	struct dirc_info info;
	struct membuf m;
	struct err_ctx e;
	struct rd r;
	const char *list[1];
	char hash[65], *json = NULL;
	size_t jlen = 0;
	uint64_t total = 0, removed = 0;

	err_clear(&e);
	assert_int_equal(dirc_info(f->dev.ca, &info, &e), 0);
	assert_int_equal(info.max_blob, BLOB_MAX);
	assert_int_equal(info.blob_quota, DIR_BLOB_QUOTA_DEFAULT);
	assert_int_equal(info.blob_days, DIR_BLOB_DAYS_DEFAULT);
	hash_hex(b, len, hash);
	r.p = b;
	r.len = len;
	r.off = 0;
	memset(&bi, 0, sizeof(bi));
	if (dirc_blob_upload(f->dev.ca, len, rd_fn, &r, NULL, NULL, &bi,
	    &e) != 0)
		fail_msg("upload: %s", err_msg(&e));
	assert_string_equal(bi.hash, hash);
	assert_int_equal(bi.size, len);
	envelope(f, 0, &json, &jlen);
	list[0] = hash;
	if (dirc_post_message_blobs(f->dev.ca, json, jlen, list, 1, NULL,
	    &e) != 0)
		fail_msg("post: %s", err_msg(&e));
	free(json);
	/* Whole, then resumed from an offset. */
	memset(&m, 0, sizeof(m));
	if (dirc_blob_download(f->dev.cb, hash, 0, wr_fn, &m, NULL, NULL,
	    &total, &e) != 0)
		fail_msg("download: %s", err_msg(&e));
	assert_int_equal(total, len);
	assert_int_equal(m.body.len, len);
	assert_memory_equal(m.body.p, b, len);
	free(m.body.p);
	memset(&m, 0, sizeof(m));
	assert_int_equal(dirc_blob_download(f->dev.cb, hash, 4097, wr_fn, &m,
	    NULL, NULL, &total, &e), 0);
	assert_int_equal(m.body.len, len - 4097);
	assert_memory_equal(m.body.p, b + 4097, len - 4097);
	free(m.body.p);
	/* The refusals map to their codes. */
	memset(&m, 0, sizeof(m));
	err_clear(&e);
	assert_int_equal(dirc_blob_download(f->dev.c2, hash, 0, wr_fn, &m, NULL,
	    NULL, NULL, &e), ERR_DENIED);
	free(m.body.p);
	assert_int_equal(dir_blobs_expire(f->d.blobs, f->d.store, now_s() +
	    DIR_BLOB_DAYS_DEFAULT * 86400 + 1, &removed, &e), 0);
	assert_int_equal(removed, 1);
	memset(&m, 0, sizeof(m));
	err_clear(&e);
	assert_int_equal(dirc_blob_download(f->dev.cb, hash, 0, wr_fn, &m, NULL,
	    NULL, NULL, &e), ERR_GONE);
	free(m.body.p);
	f->d.api.cfg.blob_quota = 1000;
	r.off = 0;
	err_clear(&e);
	assert_int_equal(dirc_blob_upload(f->dev.ca, len, rd_fn, &r, NULL, NULL,
	    &bi, &e), ERR_QUOTA);
	free(b);
}

struct par {
	struct fx *f;
	uint64_t len;
	long status;
};

static void *
par_upload(void *arg)
{
	struct par *p = arg;
	struct gen g;
	struct stream_header h;

	memset(&g, 0, sizeof(g));
	memset(&h, 0, sizeof(h));
	h.version = STREAM_VERSION;
	h.segment_len = STREAM_SEGMENT_DEFAULT;
	if (crypto_random(h.salt, sizeof(h.salt)) != 0 ||
	    stream_header_format(&h, g.hdr) != 0)
		return NULL;
	g.len = p->len;
	p->status = upload_ex(p->f, p->f->hdr_a, NULL, p->len, &g, 0, NULL);
	return NULL;
}

static long
maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/*
 * Large uploads stream: 8 at once of 8 MiB each and one of 64 MiB move
 * no body into memory (the process, client included, grows by far less
 * than the bytes moved), at a rate worth printing.
 */
static void
test_large_parallel(void **state)
{
	struct fx *f = *state;
	struct par p[8];
	pthread_t t[8];
	long rss0;
	double t0, ms;
	size_t i;

	f->d.api.cfg.blob_quota = (uint64_t)1 << 40;
	rss0 = maxrss_kib();
	for (i = 0; i < 8; i++) {
		p[i].f = f;
		p[i].len = (uint64_t)8 * 1024 * 1024 + i;
		p[i].status = 0;
		assert_int_equal(pthread_create(&t[i], NULL, par_upload,
		    &p[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].status, 201);
	}
	p[0].len = (uint64_t)64 * 1024 * 1024;
	t0 = tmono_ms();
	par_upload(&p[0]);
	ms = tmono_ms() - t0;
	assert_int_equal(p[0].status, 201);
	fprintf(stderr, "# 64 MiB upload in %.0f ms (%.0f MB/s); max RSS "
	    "grew by %ld KiB\n", ms, 64 * 1.048576 * 1000 / ms,
	    maxrss_kib() - rss0);
	assert_true(maxrss_kib() - rss0 < 48 * 1024);
	assert_int_equal(count_files(f->d.blob_dir), 9);
}

/* --- the upload API without a server --- */

struct ufx {
	char *dir;
	char blobdir[512];
	struct dir_blobs *blobs;
};

static int
usetup(void **state)
{
	struct ufx *f = calloc(1, sizeof(*f));
	struct err_ctx e;

	assert_non_null(f);
	err_clear(&e);
	assert_non_null(f->dir = ttmpdir_make());
	snprintf(f->blobdir, sizeof(f->blobdir), "%s/blobs", f->dir);
	if (dir_blobs_open(f->blobdir, &f->blobs, &e) != 0)
		fail_msg("%s", err_msg(&e));
	*state = f;
	return 0;
}

static int
uteardown(void **state)
{
	struct ufx *f = *state;

	dir_blobs_free(f->blobs);
	ttmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* The whole file of hash, compared with want (len bytes). */
static void
assert_blob_file(struct dir_blobs *b, const char *hash, const uint8_t *want,
    size_t len)
{
	struct err_ctx e;
	uint64_t size = 0;
	uint8_t *got;
	size_t off = 0;
	ssize_t n;
	int fd = -1;

	err_clear(&e);
	if (dir_blob_open(b, hash, &fd, &size, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_int_equal(size, len);
	assert_non_null(got = malloc(len + 1));
	while ((n = read(fd, got + off, len + 1 - off)) > 0)
		off += (size_t)n;
	close(fd);
	assert_int_equal(off, len);
	assert_memory_equal(got, want, len);
	free(got);
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The sizes of the uploads in progress (temporary files), sorted. */
static size_t
tmp_file_sizes(const char *blobdir, uint64_t *out, size_t max)
{
	char path[1024];
	struct dirent *de;
	struct stat st;
	size_t n = 0;
	DIR *d;

	assert_non_null(d = opendir(blobdir));
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", blobdir, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		assert_true(n < max);
		out[n++] = (uint64_t)st.st_size;
	}
	closedir(d);
	qsort(out, n, sizeof(*out), u64_cmp);
	return n;
}

/* The size of the one upload in progress (its temporary file). */
static uint64_t
tmp_file_size(const char *blobdir)
{
	uint64_t size[2];

	assert_int_equal(tmp_file_sizes(blobdir, size, 2), 1);
	return size[0];
}

/*
 * The same bytes uploaded again by their uploader: 200, and the answer
 * gives the time the kept row has, not a new one.
 */
static void
test_reupload_answer(void **state)
{
	struct fx *f = *state;
	uint8_t *b = blob_make(3000);
	struct err_ctx e;
	json_t *ans = NULL;
	uint64_t kept_until = now_s() + 100;
	char h[65];
	int existed = -1;

	hash_hex(b, 3000, h);
	err_clear(&e);
	/* The row as an upload a while ago would have left it. */
	assert_int_equal(f->d.store->ops->blob_put(f->d.store, h,
	    f->dev.a1.rec.device, ALICE, 3000, now_s() - 10, &kept_until,
	    BLOB_MAX, &existed, &e), 0);
	assert_int_equal(existed, 0);
	assert_int_equal(upload(f, f->hdr_a, b, 3000, &ans), 200);
	assert_string_equal(json_string_value(json_object_get(ans, "hash")),
	    h);
	assert_int_equal(json_integer_value(json_object_get(ans, "expires")),
	    kept_until);
	json_decref(ans);
	assert_true(blob_file_exists(f, h));
	free(b);
}

/* A thread running expiry or the sweep while an upload commits. */
struct racer {
	struct fx *f;
	int sweep;                   /* 1: dir_blobs_sweep; 0: expire */
	uint64_t at;                 /* expiry's now */
	pthread_t t;
	volatile int done;
	int r;
	uint64_t removed;
};

static void *
racer_run(void *arg)
{
	struct racer *x = arg;
	struct err_ctx e;

	err_clear(&e);
	if (x->sweep)
		x->r = dir_blobs_sweep(x->f->d.blobs, x->f->d.store, 0,
		    &x->removed, &e);
	else
		x->r = dir_blobs_expire(x->f->d.blobs, x->f->d.store, x->at,
		    &x->removed, &e);
	x->done = 1;
	return NULL;
}

/* The commit of an upload that starts the racer, gives it time to run,
 * then stores the row as handle_blob_post does. */
struct racy_commit {
	struct racer *x;
	uint64_t size;
	int existed;
	int racer_done_before_row;
};

static int
racy_commit(void *arg, const char *hash, struct err_ctx *e)
{
	struct racy_commit *rc = arg;
	struct fx *f = rc->x->f;
	uint64_t expires = now_s() + 86400;
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	assert_int_equal(pthread_create(&rc->x->t, NULL, racer_run, rc->x),
	    0);
	nanosleep(&ts, NULL);
	rc->racer_done_before_row = rc->x->done;
	return f->d.store->ops->blob_put(f->d.store, hash,
	    f->dev.a1.rec.device, ALICE, rc->size, now_s(), &expires,
	    BLOB_MAX, &rc->existed, e);
}

/* Uploads b (len bytes) through dir_blob_upload_* with the racer x
 * started inside the commit; waits for the racer. */
static void
upload_racing(struct fx *f, struct racer *x, const uint8_t *b, size_t len,
    struct racy_commit *rc)
{
	struct dir_blob_upload *u = NULL;
	struct err_ctx e;
	char hash[65];

	memset(rc, 0, sizeof(*rc));
	rc->x = x;
	rc->size = len;
	x->f = f;
	err_clear(&e);
	assert_int_equal(dir_blob_upload_begin(f->d.blobs, len, &u, &e), 0);
	assert_int_equal(dir_blob_upload_write(u, b, len), 0);
	if (dir_blob_upload_finish(u, hash, racy_commit, rc, NULL, &e) != 0)
		fail_msg("%s", err_msg(&e));
	dir_blob_upload_free(u);
	assert_int_equal(pthread_join(x->t, NULL), 0);
	assert_int_equal(x->r, 0);
}

/*
 * An upload's link and row against the sweep and expiry running at the
 * same moment: they wait for its lock, so a row never stays without its
 * file.  Without the lock, the sweep would find the new file before its
 * row and remove it; expiry would remove the file of a blob whose row
 * the upload then stores again.
 */
static void
test_commit_against_removal(void **state)
{
	struct fx *f = *state;
	struct racer x;
	struct racy_commit rc;
	struct err_ctx e;
	uint8_t *b = blob_make(5000);
	uint64_t removed = 0;
	char h[65];

	hash_hex(b, 5000, h);
	/* The sweep (no grace) while the new file has no row yet.  It may
	 * remove the upload's temporary name, linked already (that depends
	 * on the order readdir gives), never the file under its hash. */
	memset(&x, 0, sizeof(x));
	x.sweep = 1;
	upload_racing(f, &x, b, 5000, &rc);
	assert_false(rc.racer_done_before_row);
	assert_int_equal(rc.existed, 0);
	assert_true(x.removed <= 1);
	assert_true(blob_file_exists(f, h));
	assert_blob_file(f->d.blobs, h, b, 5000);
	/* Expiry of this very blob (no message named it for an hour) while
	 * the same bytes are uploaded again: it runs after the commit, and
	 * takes the row and the file together. */
	memset(&x, 0, sizeof(x));
	x.at = now_s() + DIR_BLOB_UNLINKED_S + 1;
	upload_racing(f, &x, b, 5000, &rc);
	assert_false(rc.racer_done_before_row);
	assert_int_equal(rc.existed, 1);
	assert_int_equal(x.removed, 1);
	assert_false(blob_file_exists(f, h));
	err_clear(&e);
	assert_int_equal(f->d.store->ops->blob_usage(f->d.store, ALICE,
	    &removed, &e), 0);
	assert_int_equal(removed, 0);
	free(b);
}

/*
 * Pieces of every size against the write buffer: single bytes (the
 * header across pieces), a piece that fills the buffer exactly, pieces
 * larger than the buffer arriving with it empty and half full, and a
 * short tail.  The file grows by whole buffers, holding all but what
 * the buffer keeps, and in the end exactly the bytes, under their hash.
 */
static void
test_upload_pieces(void **state)
{
	struct ufx *f = *state;
	const size_t wb = DIR_BLOB_WRITE_BUF;
	const size_t pieces[] = { 1, 1, 39, 16 * 1024, wb - 16 * 1024 - 41,
	    wb, 2 * wb + 7, wb / 2, 3 * wb, 1, 16 * 1024 + 3, 13 };
	struct dir_blob_upload *u = NULL;
	struct err_ctx e;
	size_t len = 0, off = 0, i;
	char hash[65], want[65];
	uint8_t *b;
	int created = -1;

	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		len += pieces[i];
	b = blob_make(len);
	hash_hex(b, len, want);
	err_clear(&e);
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u, &e), 0);
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		assert_int_equal(dir_blob_upload_write(u, b + off,
		    pieces[i]), 0);
		off += pieces[i];
		assert_int_equal(dir_blob_upload_size(u), off);
		assert_int_equal(tmp_file_size(f->blobdir), off - off % wb);
	}
	if (dir_blob_upload_finish(u, hash, NULL, NULL, &created, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_string_equal(hash, want);
	assert_int_equal(created, 1);
	assert_int_equal(dir_blob_upload_size(u), len);
	dir_blob_upload_free(u);
	assert_blob_file(f->blobs, hash, b, len);
	/* The same bytes in one piece: the same name, not made again. */
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u, &e), 0);
	assert_int_equal(dir_blob_upload_write(u, b, len), 0);
	assert_int_equal(dir_blob_upload_finish(u, hash, NULL, NULL, &created,
	    &e), 0);
	assert_string_equal(hash, want);
	assert_int_equal(created, 0);
	dir_blob_upload_free(u);
	assert_blob_file(f->blobs, hash, b, len);
	assert_int_equal(count_files(f->blobdir), 1);
	free(b);
}

/*
 * More uploads at once than hold a buffer: the ones beyond
 * DIR_BLOB_BUFFERS_MAX write each piece as it comes, a buffer given
 * back is taken by the next upload, and every upload keeps its bytes.
 */
static void
test_upload_buffers_bounded(void **state)
{
	struct ufx *f = *state;
	enum { N = DIR_BLOB_BUFFERS_MAX + 2 };
	const size_t len = DIR_BLOB_WRITE_BUF + 1000, first = 5000;
	struct dir_blob_upload *u[N + 1];
	uint64_t sizes[N + 1];
	struct err_ctx e;
	char hash[65], want[65];
	uint8_t *b = blob_make(len);
	size_t i;

	hash_hex(b, len, want);
	err_clear(&e);
	for (i = 0; i < N; i++) {
		assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u[i],
		    &e), 0);
		assert_int_equal(dir_blob_upload_write(u[i], b, first), 0);
	}
	/* Buffered: nothing in the file yet; the last two: all of it. */
	assert_int_equal(tmp_file_sizes(f->blobdir, sizes, N + 1), N);
	assert_int_equal(sizes[0], 0);
	assert_int_equal(sizes[N - 3], 0);
	assert_int_equal(sizes[N - 2], first);
	assert_int_equal(sizes[N - 1], first);
	/* A finished upload gives its buffer back to the next one. */
	assert_int_equal(dir_blob_upload_write(u[0], b + first,
	    len - first), 0);
	if (dir_blob_upload_finish(u[0], hash, NULL, NULL, NULL, &e) != 0)
		fail_msg("%s", err_msg(&e));
	assert_string_equal(hash, want);
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u[N], &e), 0);
	assert_int_equal(dir_blob_upload_write(u[N], b, first), 0);
	assert_int_equal(tmp_file_sizes(f->blobdir, sizes, N + 1), N);
	assert_int_equal(sizes[N - 3], 0);
	assert_int_equal(sizes[N - 2], first);
	/* Every one ends with the same bytes, pieces of every size. */
	for (i = 1; i <= N; i++) {
		assert_int_equal(dir_blob_upload_write(u[i], b + first, 1),
		    0);
		assert_int_equal(dir_blob_upload_write(u[i], b + first + 1,
		    len - first - 1), 0);
		if (dir_blob_upload_finish(u[i], hash, NULL, NULL, NULL,
		    &e) != 0)
			fail_msg("%s", err_msg(&e));
		assert_string_equal(hash, want);
	}
	for (i = 0; i <= N; i++)
		dir_blob_upload_free(u[i]);
	assert_blob_file(f->blobs, want, b, len);
	assert_int_equal(count_files(f->blobdir), 1);
	free(b);
}

/* Blobs shorter than the buffer, down to the smallest. */
static void
test_upload_small(void **state)
{
	struct ufx *f = *state;
	const size_t lens[] = { STREAM_HEADER_LEN + 16, 4096,
	    DIR_BLOB_WRITE_BUF - 1, DIR_BLOB_WRITE_BUF,
	    DIR_BLOB_WRITE_BUF + 1 };
	struct dir_blob_upload *u = NULL;
	struct err_ctx e;
	char hash[65], want[65];
	uint8_t *b;
	size_t i;

	err_clear(&e);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		b = blob_make(lens[i]);
		hash_hex(b, lens[i], want);
		assert_int_equal(dir_blob_upload_begin(f->blobs, lens[i], &u,
		    &e), 0);
		assert_int_equal(dir_blob_upload_write(u, b, 7), 0);
		assert_int_equal(dir_blob_upload_write(u, b + 7,
		    lens[i] - 7), 0);
		if (dir_blob_upload_finish(u, hash, NULL, NULL, NULL, &e) != 0)
			fail_msg("%s", err_msg(&e));
		assert_string_equal(hash, want);
		dir_blob_upload_free(u);
		assert_blob_file(f->blobs, hash, b, lens[i]);
		free(b);
	}
	assert_int_equal(count_files(f->blobdir), 5);
}

/* Too many bytes, too few, a bad header: refused, kept, nothing left. */
static void
test_upload_refused(void **state)
{
	struct ufx *f = *state;
	const size_t len = DIR_BLOB_WRITE_BUF + 100;
	uint8_t *b = blob_make(len + 1);
	struct dir_blob_upload *u = NULL;
	const struct err_ctx *we = NULL;
	struct err_ctx e;
	char hash[65];

	err_clear(&e);
	/* One byte more than announced, in the last piece. */
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u, &e), 0);
	assert_int_equal(dir_blob_upload_write(u, b, len - 10), 0);
	assert_int_equal(dir_blob_upload_write(u, b + len - 10, 11),
	    ERR_TOO_LARGE);
	assert_int_equal(dir_blob_upload_error(u, &we), ERR_TOO_LARGE);
	assert_int_equal(dir_blob_upload_write(u, b, 1), ERR_TOO_LARGE);
	assert_int_equal(dir_blob_upload_finish(u, hash, NULL, NULL, NULL, &e),
	    ERR_TOO_LARGE);
	dir_blob_upload_free(u);
	/* One byte fewer. */
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u, &e), 0);
	assert_int_equal(dir_blob_upload_write(u, b, len - 1), 0);
	assert_int_equal(dir_blob_upload_finish(u, hash, NULL, NULL, NULL, &e),
	    ERR_TRUNCATED);
	dir_blob_upload_free(u);
	/* A bad header, found in the first piece that completes it. */
	b[0] ^= 0xff;
	assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u, &e), 0);
	assert_int_equal(dir_blob_upload_write(u, b, 20), 0);
	assert_int_equal(dir_blob_upload_write(u, b + 20, 30), ERR_FORMAT);
	assert_int_equal(dir_blob_upload_write(u, b + 50, 30), ERR_FORMAT);
	assert_int_equal(dir_blob_upload_finish(u, hash, NULL, NULL, NULL, &e),
	    ERR_FORMAT);
	dir_blob_upload_free(u);
	assert_int_equal(count_files(f->blobdir), 0);
	free(b);
}

/*
 * A write that fails (the file size limit here) is an ERR_IO that the
 * upload keeps, whether it shows in a write or only in the finish that
 * writes the last of the buffer; nothing is left.
 */
static void
test_upload_io_error(void **state)
{
	struct ufx *f = *state;
	/* Not whole buffers: the last part waits for the finish. */
	const size_t len = 4 * DIR_BLOB_WRITE_BUF - 100;
	const rlim_t limits[] = { DIR_BLOB_WRITE_BUF + 4096,
	    3 * DIR_BLOB_WRITE_BUF + 4096 };
	uint8_t *b = blob_make(len);
	struct dir_blob_upload *u = NULL;
	struct sigaction sa, old_sa;
	struct rlimit rl, old_rl;
	struct err_ctx e;
	char hash[65];
	size_t off, n, i;
	int r, failed_in_write;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGXFSZ, &sa, &old_sa), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_rl), 0);
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		err_clear(&e);
		assert_int_equal(dir_blob_upload_begin(f->blobs, len, &u,
		    &e), 0);
		rl = old_rl;
		rl.rlim_cur = limits[i];
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
		failed_in_write = 0;
		for (off = 0; off < len; off += n) {
			n = len - off < 16 * 1024 ? len - off : 16 * 1024;
			r = dir_blob_upload_write(u, b + off, n);
			if (r != 0) {
				assert_int_equal(r, ERR_IO);
				failed_in_write = 1;
				break;
			}
		}
		/* Past the limit only in the last buffer: the finish. */
		assert_int_equal(failed_in_write, i == 0);
		r = dir_blob_upload_finish(u, hash, NULL, NULL, NULL, &e);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_rl), 0);
		assert_int_equal(r, ERR_IO);
		assert_non_null(strstr(err_msg(&e), "writing to the blob "
		    "directory"));
		assert_int_equal(dir_blob_upload_error(u, NULL), ERR_IO);
		dir_blob_upload_free(u);
		assert_int_equal(count_files(f->blobdir), 0);
	}
	assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cut_upload, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_message_blobs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reupload_answer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit_against_removal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_parallel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_slow_upload,
		    setup_short_timeout, teardown),
		cmocka_unit_test_setup_teardown(test_dirclient, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_upload_pieces, usetup,
		    uteardown),
		cmocka_unit_test_setup_teardown(test_upload_small, usetup,
		    uteardown),
		cmocka_unit_test_setup_teardown(test_upload_refused, usetup,
		    uteardown),
		cmocka_unit_test_setup_teardown(test_upload_buffers_bounded,
		    usetup, uteardown),
		cmocka_unit_test_setup_teardown(test_upload_io_error, usetup,
		    uteardown),
	};
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
