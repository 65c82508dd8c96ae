/*
 * test_dir_hardening.c - the real devid-directory binary under abuse.
 *
 * Each test starts $top_builddir/directory/devid-directory on a free
 * loopback port with the flags it needs and a fresh database in a
 * temporary directory, and plays several clients by binding its sockets to
 * different loopback source addresses (127.0.0.2, 127.0.0.3, ...: the
 * whole of 127.0.0.0/8 is loopback on Linux), so that the server's
 * per-client limits see different clients.  Requests that a well-behaved
 * client never sends (trickled headers, bodies announced and never sent)
 * go over raw sockets; the answers are compared byte for byte where the
 * directory promises identical answers.
 *
 * What is checked (docs/directory.md, "Limits"):
 * - password checks are throttled per account and per client network, and
 *   never slow down device-signed logins or bearer requests;
 * - an unknown account and a wrong password get identical answers;
 * - nothing about an account is revealed before authentication;
 * - large bodies are read only from authenticated clients;
 * - the per-address connection limit and the request timeout;
 * - a full password pool answers 503 and leaves other requests alone;
 * - throttled answers are held without holding a thread;
 * - plain HTTP only on loopback unless --behind-proxy, whose client address
 *   is the last X-Forwarded-For entry;
 * - the database and key files are private whatever the umask.
 * Every refused request leaves the database unchanged (the account as
 * `devid-directory account show` prints it).
 *
 * The server dies with the test process (PR_SET_PDEATHSIG) if the test
 * crashes, and the temporary directory is removed on every path.  The
 * time bounds below are wide: they tell a timeout from an immediate
 * answer, not a fast server from a slow one.
 */
#include "config.h"

#include <arpa/inet.h>
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
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "buf.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "transcript.h"
#include "dir-test-util.h"
#include "dir-server-fixture.h"

#define ALICE "alice@example.org"
#define ALICE_PATH "alice%40example.org"
#define BOB "bob@example.org"
#define NOSUCH "nosuch@example.org"
#define NOSUCH_PATH "nosuch%40example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"
#define CAROL "carol@example.org"
#define CAROL_PW "carol's password"
#define ANSWER_WAIT_MS 30000
#define OUT_MAX 16384

/* One HTTP answer as received. */
struct hans {
	int status;              /* 0: no answer */
	char *raw;               /* everything received, NUL-terminated */
	size_t raw_len;
	size_t head_len;         /* status line and headers with the blank
	                          * line */
	const char *body;        /* into raw */
	size_t body_len;
	long retry_after;        /* -1: no Retry-After header */
	json_t *json;            /* the body parsed, or NULL */
};

/* Files private whatever the umask: the tests hold the server and its
 * tools to umask 022. */
static int
setup(void **state)
{
	return (*state = tsrv_new(TSRV_OPEN_SIGNUP | TSRV_UMASK_022)) !=
	    NULL ? 0 : -1;
}

/* --- raw HTTP from a chosen loopback source address --- */

/*
 * A TCP connection to the server from source address src (a 127.x.y.z
 * text): the socket, -1 when connect() failed (errno kept), -2 when no
 * socket could be bound to src (said on stderr).  Never asserts: the
 * client threads below use it.
 */
static int
hconnect(const struct tsrv *s, const char *src)
{
	struct sockaddr_in from, to;
	int fd, err;

	memset(&from, 0, sizeof(from));
	from.sin_family = AF_INET;
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons(s->port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
	    (fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "no socket from %s: %s\n", src,
		    strerror(errno));
		return -2;
	}
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0) {
		fprintf(stderr, "cannot bind to %s: %s\n", src,
		    strerror(errno));
		close(fd);
		return -2;
	}
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Sends all of p; 0, or -errno (EPIPE, ECONNRESET: the server closed). */
static int
hsend(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t k;

	while (len > 0) {
		if ((k = send(fd, c, len, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += k;
		len -= (size_t)k;
	}
	return 0;
}

static void
hans_free(struct hans *a)
{
	free(a->raw);
	json_decref(a->json);
	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
}

/* The value of header name in a's head, or NULL; copied into v. */
static const char *
hans_header(const struct hans *a, const char *name, char *v, size_t v_len)
{
	const char *p = a->raw, *end = a->raw + a->head_len, *eol, *colon;
	size_t n = strlen(name), k;

	while (p < end && (eol = strstr(p, "\r\n")) != NULL && eol < end) {
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL && (size_t)(colon - p) == n &&
		    strncasecmp(p, name, n) == 0) {
			colon++;
			while (*colon == ' ' || *colon == '\t')
				colon++;
			k = (size_t)(eol - colon);
			if (k >= v_len)
				k = v_len - 1;
			memcpy(v, colon, k);
			v[k] = '\0';
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Parses what a->raw holds once the head is complete. */
static void
hans_parse(struct hans *a)
{
	char v[64];

	a->status = 0;
	if (a->raw_len >= 12 && strncmp(a->raw, "HTTP/1.", 7) == 0)
		a->status = atoi(a->raw + 9);
	a->body = a->raw + a->head_len;
	a->body_len = a->raw_len - a->head_len;
	a->retry_after = -1;
	if (hans_header(a, "Retry-After", v, sizeof(v)) != NULL)
		a->retry_after = strtol(v, NULL, 10);
	json_decref(a->json);
	a->json = json_loadb(a->body, a->body_len, 0, NULL);
}

/*
 * Reads one answer from fd, waiting at most timeout_ms: up to its
 * Content-Length, or to the end of the connection when it has none.
 * Returns 1 when a complete answer came, 0 when the connection was closed
 * (or reset) before any byte of an answer, -1 on timeout, -2 when it was
 * closed in the middle of an answer (or memory ran out).  Never asserts.
 */
static int
hread(int fd, struct hans *a, unsigned int timeout_ms)
{
	double deadline = tmono_ms() + timeout_ms;
	size_t cap = 0, want = 0;
	const char *hend;
	char v[32];
	int have_len = 0, left;
	struct pollfd pfd;
	ssize_t k;
	char *np;

	hans_free(a);
	for (;;) {
		if (a->head_len == 0 && a->raw != NULL &&
		    (hend = strstr(a->raw, "\r\n\r\n")) != NULL) {
			a->head_len = (size_t)(hend + 4 - a->raw);
			if (hans_header(a, "Content-Length", v, sizeof(v)) !=
			    NULL) {
				have_len = 1;
				want = a->head_len + strtoul(v, NULL, 10);
			}
		}
		if (a->head_len > 0 && have_len && a->raw_len >= want) {
			a->raw_len = want;
			a->raw[want] = '\0';
			hans_parse(a);
			return 1;
		}
		left = (int)(deadline - tmono_ms());
		if (left <= 0)
			return -1;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		if (cap - a->raw_len < 4097) {
			cap = cap == 0 ? 8192 : cap * 2;
			if ((np = realloc(a->raw, cap)) == NULL)
				return -2;
			a->raw = np;
		}
		k = recv(fd, a->raw + a->raw_len, cap - a->raw_len - 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (a->raw_len == 0)
				return 0;
			if (a->head_len > 0 && !have_len) {
				hans_parse(a);
				return 1;
			}
			return -2;
		}
		a->raw_len += (size_t)k;
		a->raw[a->raw_len] = '\0';
	}
}

/*
 * Waits up to timeout_ms for the server to close fd (end of stream or
 * reset), discarding any bytes.  Returns 1 when it closed, 0 on timeout.
 */
static int
hwait_closed(int fd, unsigned int timeout_ms)
{
	double deadline = tmono_ms() + timeout_ms;
	struct pollfd pfd;
	char junk[4096];
	ssize_t k;
	int left;

	for (;;) {
		if ((left = (int)(deadline - tmono_ms())) <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		k = recv(fd, junk, sizeof(junk), 0);
		if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
			return 1;
	}
}

/*
 * One request from src: method, path, extra header lines (each ending in
 * "\r\n"; may be NULL), an optional body.  "Connection: close" is sent.
 * The answer is in *a (hans_free it); returns its status, 0 when none came.
 * Never asserts: the client threads below use it.
 */
static int
hreq(const struct tsrv *s, const char *src, const char *method,
    const char *path, const char *headers, const void *body, size_t body_len,
    struct hans *a)
{
	char head[8192];
	int fd, n;

	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
	if (body != NULL)
		n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\n"
		    "Host: 127.0.0.1\r\nConnection: close\r\n"
		    "Content-Type: application/json\r\n"
		    "Content-Length: %zu\r\n%s\r\n", method, path, body_len,
		    headers != NULL ? headers : "");
	else
		n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\n"
		    "Host: 127.0.0.1\r\nConnection: close\r\n%s\r\n", method,
		    path, headers != NULL ? headers : "");
	if (n < 0 || (size_t)n >= sizeof(head) || (fd = hconnect(s, src)) < 0)
		return 0;
	if (hsend(fd, head, (size_t)n) == 0 &&
	    (body == NULL || hsend(fd, body, body_len) == 0))
		(void)hread(fd, a, ANSWER_WAIT_MS);
	close(fd);
	return a->status;
}

/* The error code word of an answer ("" when none). */
static const char *
hcode(const struct hans *a)
{
	return terror_code(a->json);
}

/* "Authorization: Basic base64(user:password)\r\n" into out. */
static void
basic_header(const char *user, const char *password, char *out,
    size_t out_len)
{
	char plain[512];
	unsigned char enc[800];
	int n;

	n = snprintf(plain, sizeof(plain), "%s:%s", user, password);
	assert_true(n > 0 && (size_t)n < sizeof(plain));
	EVP_EncodeBlock(enc, (const unsigned char *)plain, n);
	n = snprintf(out, out_len, "Authorization: Basic %s\r\n", enc);
	assert_true(n > 0 && (size_t)n < out_len);
}

static void
bearer_header(const char *token, char *out, size_t out_len)
{
	int n = snprintf(out, out_len, "Authorization: Bearer %s\r\n", token);

	assert_true(n > 0 && (size_t)n < out_len);
}

/* The device record of d as the JSON body of a registration. */
static char *
devrec_body(const struct tdev *d)
{
	json_t *o = NULL;
	struct err_ctx e;
	char *text;

	err_clear(&e);
	assert_int_equal(devrec_to_json(&d->rec, &o, &e), 0);
	assert_non_null(text = json_dumps(o, JSON_COMPACT));
	json_decref(o);
	return text;
}

/* "/v1/accounts/ACCOUNT%40DOMAIN" + suffix into out. */
static void
account_url(const char *account, const char *suffix, char *out,
    size_t out_len)
{
	const char *at = strchr(account, '@');
	int n;

	assert_non_null(at);
	n = snprintf(out, out_len, "/v1/accounts/%.*s%%40%s%s",
	    (int)(at - account), account, at + 1, suffix);
	assert_true(n > 0 && (size_t)n < out_len);
}

/*
 * POST /v1/accounts/{account}/devices for d from src with Basic
 * account:password; the answer in *a.
 */
static int
register_from(const struct tsrv *s, const char *src, const char *account,
    const char *password, const struct tdev *d, struct hans *a)
{
	char hdr[1024], path[512], *body = devrec_body(d);
	int st;

	basic_header(account, password, hdr, sizeof(hdr));
	account_url(account, "/devices", path, sizeof(path));
	st = hreq(s, src, "POST", path, hdr, body, strlen(body), a);
	free(body);
	return st;
}

/*
 * A device-signed login (POST /v1/session) from src, as dirc_login()
 * does it; the status, and the token in token[] on 200.
 */
static int
login_from(const struct tsrv *s, const char *src, const char *dir_id,
    struct tdev *d, char *token, size_t token_len)
{
	uint8_t nonce[32], sig[64];
	struct buf *b;
	struct err_ctx e;
	struct hans a;
	json_t *o;
	char *text;
	const char *t;
	uint64_t now = (uint64_t)time(NULL);
	int st;

	err_clear(&e);
	assert_non_null(b = buf_new(1024));
	assert_int_equal(crypto_random(nonce, sizeof(nonce)), 0);
	assert_int_equal(tr_login(b, dir_id, d->rec.device, now, nonce,
	    sizeof(nonce)), 0);
	assert_int_equal(tdev_sign(d, buf_ptr(b), buf_len(b), sig, &e), 0);
	buf_free(b);
	assert_non_null(o = json_object());
	assert_int_equal(devrec_json_set_str(o, "device", d->rec.device), 0);
	assert_int_equal(devrec_json_set_u64(o, "time", now), 0);
	assert_int_equal(devrec_json_set_b64(o, "nonce", nonce,
	    sizeof(nonce)), 0);
	assert_int_equal(devrec_json_set_b64(o, "sig", sig, sizeof(sig)), 0);
	assert_non_null(text = json_dumps(o, JSON_COMPACT));
	json_decref(o);
	st = hreq(s, src, "POST", "/v1/session", NULL, text, strlen(text), &a);
	free(text);
	if (st == 200) {
		t = json_string_value(json_object_get(a.json, "token"));
		assert_non_null(t);
		assert_true(strlen(t) < token_len);
		snprintf(token, token_len, "%s", t);
	}
	hans_free(&a);
	return st;
}

/* --- the usual client, from 127.0.0.1 --- */

/*
 * Creates account with password, makes *d a device of it and registers it
 * (from 127.0.0.1, with dirclient); the directory's id in dir_id.
 */
static void
account_with_device(const struct tsrv *s, const char *account,
    const char *password, struct tdev *d, char dir_id[DEVREC_ID_HEX_LEN + 1])
{
	struct dirc *c = tsrv_client(s);
	struct dirc_info info;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_info(c, &info, &e) != 0 ||
	    dirc_create_account(c, account, password, &e) != 0)
		fail_msg("%s: %s", account, err_msg(&e));
	assert_int_equal(tdev_make(d, account, "laptop", (uint64_t)time(NULL)),
	    0);
	if (dirc_register_device(c, password, &d->rec, NULL, &e) != 0)
		fail_msg("register on %s: %s", account, err_msg(&e));
	snprintf(dir_id, DEVREC_ID_HEX_LEN + 1, "%s", info.directory_id);
	dirc_free(c);
}

/*
 * What `devid-directory account show` prints about account: its log and
 * devices as stored, to compare before and after a refused request.
 */
static void
snapshot(const struct tsrv *s, const char *account, char *out,
    size_t out_len)
{
	const char *args[] = { "account", "show", account, "--db", s->db,
		NULL };

	if (tsrv_run(s, args, NULL, 20000, out, out_len) != 0)
		fail_msg("account show %s: %s", account, out);
}

/* --- the tests --- */

/*
 * Wrong passwords slow down the account and the network they come from,
 * and nothing else: device-signed logins and bearer requests of the same
 * account, from the same network too, go through.
 */
static void
test_password_throttling(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--throttle-delay", "0", NULL };
	static const char *const guessers[] = { "127.0.0.4", "127.0.0.5",
		"127.0.0.6" };
	char dir_id[DEVREC_ID_HEX_LEN + 1], dir_id2[DEVREC_ID_HEX_LEN + 1];
	char before[OUT_MAX], after[OUT_MAX], token[DIRC_TOKEN_MAX + 1];
	char hdr[512], path[512], acct[64];
	struct tdev d1, d2, bob1, bob2, u;
	struct hans a;
	long wait_s;
	size_t i;

	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	assert_int_equal(tdev_make(&d2, ALICE, "phone", (uint64_t)time(NULL)),
	    0);
	snapshot(s, ALICE, before, sizeof(before));

	/* 127.0.0.2 guesses alice's password: three free failures... */
	for (i = 0; i < 3; i++) {
		assert_int_equal(register_from(s, "127.0.0.2", ALICE,
		    "wrong guess", &d2, &a), 401);
		assert_string_equal(hcode(&a), "unauthorized");
		hans_free(&a);
	}
	/* ...then it must wait: even the right password is not checked. */
	assert_int_equal(register_from(s, "127.0.0.2", ALICE, PW, &d2, &a),
	    429);
	assert_string_equal(hcode(&a), "throttled");
	assert_true(a.retry_after >= 1);
	hans_free(&a);
	snapshot(s, ALICE, after, sizeof(after));
	assert_string_equal(before, after);

	/* Alice's device logs in by signature and reads with its session,
	 * from another address and from the guesser's own. */
	assert_int_equal(login_from(s, "127.0.0.3", dir_id, &d1, token,
	    sizeof(token)), 200);
	bearer_header(token, hdr, sizeof(hdr));
	account_url(ALICE, "/log?since=0", path, sizeof(path));
	assert_int_equal(hreq(s, "127.0.0.3", "GET", path, hdr, NULL, 0, &a),
	    200);
	hans_free(&a);
	assert_int_equal(login_from(s, "127.0.0.2", dir_id, &d1, token,
	    sizeof(token)), 200);
	bearer_header(token, hdr, sizeof(hdr));
	assert_int_equal(hreq(s, "127.0.0.2", "GET", path, hdr, NULL, 0, &a),
	    200);
	hans_free(&a);

	/* Per account: three guessers on three addresses, then the owner
	 * with the right password from a fourth is asked to wait too. */
	account_with_device(s, BOB, BOB_PW, &bob1, dir_id2);
	assert_string_equal(dir_id, dir_id2);
	assert_int_equal(tdev_make(&bob2, BOB, "phone", (uint64_t)time(NULL)),
	    0);
	snapshot(s, BOB, before, sizeof(before));
	for (i = 0; i < 3; i++) {
		assert_int_equal(register_from(s, guessers[i], BOB, "guess",
		    &bob2, &a), 401);
		hans_free(&a);
	}
	assert_int_equal(register_from(s, "127.0.0.7", BOB, BOB_PW, &bob2,
	    &a), 429);
	assert_string_equal(hcode(&a), "throttled");
	assert_true(a.retry_after >= 1);
	wait_s = a.retry_after;
	hans_free(&a);
	snapshot(s, BOB, after, sizeof(after));
	assert_string_equal(before, after);
	/* After Retry-After, the right password is checked and accepted. */
	tsleep_ms((unsigned int)wait_s * 1000 + 200);
	assert_int_equal(register_from(s, "127.0.0.7", BOB, BOB_PW, &bob2,
	    &a), 201);
	hans_free(&a);
	snapshot(s, BOB, after, sizeof(after));
	assert_non_null(strstr(after, bob2.rec.device));
	/* The success cleared the account's failures: a wrong password from
	 * a fresh address is checked (401), not throttled. */
	assert_int_equal(register_from(s, "127.0.0.8", BOB, "guess", &bob2,
	    &a), 401);
	hans_free(&a);

	/* Per network: one address guessing across (unknown) accounts. */
	for (i = 0; i < 4; i++) {
		snprintf(acct, sizeof(acct), "guess%zu@example.org", i);
		assert_int_equal(tdev_make(&u, acct, "x", (uint64_t)time(NULL)),
		    0);
		assert_int_equal(register_from(s, "127.0.0.9", acct, "guess",
		    &u, &a), i < 3 ? 401 : 429);
		if (i == 3) {
			assert_string_equal(hcode(&a), "throttled");
			assert_true(a.retry_after >= 1);
			hans_free(&a);
			/* The same attempt from another network is checked. */
			assert_int_equal(register_from(s, "127.0.0.10", acct,
			    "guess", &u, &a), 401);
		}
		hans_free(&a);
		tdev_clear(&u);
	}

	tdev_clear(&d1);
	tdev_clear(&d2);
	tdev_clear(&bob1);
	tdev_clear(&bob2);
	assert_int_equal(tsrv_stop(s), 0);
}

/* The answer's head without its Date line, to compare two answers. */
static void
head_without_date(const struct hans *a, char *out, size_t out_len)
{
	const char *p = a->raw, *end = a->raw + a->head_len, *eol;
	size_t n = 0, k;

	while (p < end && (eol = strstr(p, "\r\n")) != NULL && eol < end) {
		k = (size_t)(eol + 2 - p);
		if (strncasecmp(p, "Date:", 5) != 0 && n + k < out_len) {
			memcpy(out + n, p, k);
			n += k;
		}
		p = eol + 2;
	}
	out[n] = '\0';
}

/* An unknown account and a wrong password: the same answer, byte for
 * byte. */
static void
test_unknown_vs_wrong(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--throttle-delay", "0", NULL };
	char dir_id[DEVREC_ID_HEX_LEN + 1], h1[4096], h2[4096];
	struct tdev d1, da, dn;
	struct hans wrong, unknown;

	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	assert_int_equal(tdev_make(&da, ALICE, "phone", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(tdev_make(&dn, NOSUCH, "phone", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(register_from(s, "127.0.0.2", ALICE, "not it", &da,
	    &wrong), 401);
	assert_int_equal(register_from(s, "127.0.0.3", NOSUCH, "not it", &dn,
	    &unknown), 401);
	assert_string_equal(hcode(&wrong), "unauthorized");
	assert_non_null(strstr(wrong.body, "wrong account name or password"));
	if (wrong.body_len != unknown.body_len ||
	    memcmp(wrong.body, unknown.body, wrong.body_len) != 0)
		fail_msg("the bodies differ:\n%s\n%s", wrong.body,
		    unknown.body);
	head_without_date(&wrong, h1, sizeof(h1));
	head_without_date(&unknown, h2, sizeof(h2));
	assert_string_equal(h1, h2);
	hans_free(&wrong);
	hans_free(&unknown);
	tdev_clear(&d1);
	tdev_clear(&da);
	tdev_clear(&dn);
	assert_int_equal(tsrv_stop(s), 0);
}

/* body with every occurrence of account replaced by "{a}". */
static void
without_account(const struct hans *a, const char *account, char *out,
    size_t out_len)
{
	const char *p = a->body != NULL ? a->body : "", *hit;
	size_t n = 0, k, alen = strlen(account);

	while ((hit = strstr(p, account)) != NULL) {
		k = (size_t)(hit - p);
		assert_true(n + k + 4 < out_len);
		memcpy(out + n, p, k);
		memcpy(out + n + k, "{a}", 3);
		n += k + 3;
		p = hit + alen;
	}
	k = strlen(p);
	assert_true(n + k < out_len);
	memcpy(out + n, p, k + 1);
}

/*
 * Without valid credentials, nothing tells whether an account exists;
 * with a session, an unknown account is 404.
 */
static void
test_auth_before_reveal(void **state)
{
	struct tsrv *s = *state;
	static const char *const accounts[] = { NOSUCH, ALICE };
	static const char *const suffixes[] = { "/log?since=0", "/devices" };
	char dir_id[DEVREC_ID_HEX_LEN + 1], before[OUT_MAX], after[OUT_MAX];
	char hdr[512], bad[512], path[512], body[256], b1[4096], b2[4096];
	char *rec, *text;
	struct hans a, first;
	json_t *o;
	struct dirc *c;
	struct tdev d1, dn;
	uint8_t sig[64];
	uint64_t now = (uint64_t)time(NULL);
	size_t i, j;

	tsrv_start(s, NULL);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	c = tsrv_login(s, dir_id, &d1);
	bearer_header(dirc_token(c), hdr, sizeof(hdr));
	bearer_header("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", bad,
	    sizeof(bad));
	snapshot(s, ALICE, before, sizeof(before));

	for (i = 0; i < 2; i++) {
		memset(&first, 0, sizeof(first));
		for (j = 0; j < 2; j++) {
			account_url(accounts[j], suffixes[i], path,
			    sizeof(path));
			/* No credentials, or a token that is no session. */
			assert_int_equal(hreq(s, "127.0.0.2", "GET", path,
			    NULL, NULL, 0, &a), 401);
			assert_string_equal(hcode(&a), "unauthorized");
			if (j == 0) {
				first = a;
				memset(&a, 0, sizeof(a));
			} else {
				without_account(&first, accounts[0], b1,
				    sizeof(b1));
				without_account(&a, accounts[1], b2,
				    sizeof(b2));
				assert_string_equal(b1, b2);
				hans_free(&first);
			}
			hans_free(&a);
			assert_int_equal(hreq(s, "127.0.0.2", "GET", path,
			    bad, NULL, 0, &a), 401);
			hans_free(&a);
			/* With a session: 404 for the unknown account. */
			assert_int_equal(hreq(s, "127.0.0.3", "GET", path,
			    hdr, NULL, 0, &a), j == 0 ? 404 : 200);
			hans_free(&a);
		}
	}

	/* DELETE a device: a well-formed revocation, signed by the device
	 * itself, for both accounts. */
	for (j = 0; j < 2; j++) {
		assert_int_equal(tdev_sign_revoke(&d1, accounts[j],
		    d1.rec.device, now, sig), 0);
		assert_non_null(o = json_object());
		assert_int_equal(devrec_json_set_u64(o, "time", now), 0);
		assert_int_equal(devrec_json_set_b64(o, "revoke_sig", sig,
		    sizeof(sig)), 0);
		assert_non_null(text = json_dumps(o, JSON_COMPACT));
		json_decref(o);
		snprintf(body, sizeof(body), "%s", text);
		free(text);
		snprintf(path, sizeof(path), "/devices/%s", d1.rec.device);
		{
			char full[512];

			account_url(accounts[j], path, full, sizeof(full));
			assert_int_equal(hreq(s, "127.0.0.2", "DELETE", full,
			    NULL, body, strlen(body), &a), 401);
			hans_free(&a);
			assert_int_equal(hreq(s, "127.0.0.2", "DELETE", full,
			    bad, body, strlen(body), &a), 401);
			hans_free(&a);
			if (j == 0) {
				assert_int_equal(hreq(s, "127.0.0.3",
				    "DELETE", full, hdr, body, strlen(body),
				    &a), 404);
				hans_free(&a);
			}
		}
	}

	/* POST a device without Basic credentials: 401 for both. */
	assert_int_equal(tdev_make(&dn, NOSUCH, "x", now), 0);
	for (j = 0; j < 2; j++) {
		rec = devrec_body(j == 0 ? &dn : &d1);
		account_url(accounts[j], "/devices", path, sizeof(path));
		assert_int_equal(hreq(s, "127.0.0.2", "POST", path, NULL, rec,
		    strlen(rec), &a), 401);
		hans_free(&a);
		free(rec);
	}
	snapshot(s, ALICE, after, sizeof(after));
	assert_string_equal(before, after);
	dirc_free(c);
	tdev_clear(&d1);
	tdev_clear(&dn);
	assert_int_equal(tsrv_stop(s), 0);
}

/*
 * Sends head (the request line and headers of a request with a large
 * body) from src and no body: the answer must come anyway, and the
 * connection must be closed after it.  Returns the answer's status.
 */
static int
head_only(const struct tsrv *s, const char *src, const char *head)
{
	struct hans a;
	int fd, st;

	memset(&a, 0, sizeof(a));
	assert_true((fd = hconnect(s, src)) >= 0);
	assert_int_equal(hsend(fd, head, strlen(head)), 0);
	if (hread(fd, &a, 5000) != 1)
		fail_msg("no answer within 5 s to a request whose body was "
		    "not sent:\n%s", head);
	st = a.status;
	assert_string_equal(hcode(&a), "unauthorized");
	if (!hwait_closed(fd, 5000))
		fail_msg("the connection stayed open after refusing the "
		    "body:\n%s", head);
	hans_free(&a);
	close(fd);
	return st;
}

/* Large bodies are read only when the headers carry a valid session. */
static void
test_preauth_body(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--max-body", "2097152", NULL };
	static const char *const to[] = { ALICE, BOB };
	char dir_id[DEVREC_ID_HEX_LEN + 1], dir_id2[DEVREC_ID_HEX_LEN + 1];
	char head[1024], hdr[512], *big, *json = NULL, *padded;
	const struct tdev *recips[1];
	struct tdev d1, bob1;
	struct dirc *ca, *cb, *c;
	struct dirc_info info;
	struct dirc_inbox *in = NULL;
	struct acctlog_state alice, bob;
	struct acctlog_head views[2];
	EVP_PKEY *dir_pub = NULL;
	struct err_ctx e;
	struct hans a;
	size_t len = 0, big_len = 20 * 1024;

	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	account_with_device(s, BOB, BOB_PW, &bob1, dir_id2);
	ca = tsrv_login(s, dir_id, &d1);
	cb = tsrv_login(s, dir_id, &bob1);

	/* 1 MiB announced, no credentials, nothing sent: 401 at once. */
	snprintf(head, sizeof(head), "POST /v1/messages HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Content-Length: 1048576\r\n\r\n");
	assert_int_equal(head_only(s, "127.0.0.2", head), 401);
	/* A token that is no session is no better. */
	snprintf(head, sizeof(head), "POST /v1/messages HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "\r\nContent-Length: 1048576\r\n\r\n");
	assert_int_equal(head_only(s, "127.0.0.3", head), 401);
	/* A chunked body is large by definition. */
	snprintf(head, sizeof(head), "POST /v1/messages HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n");
	assert_int_equal(head_only(s, "127.0.0.4", head), 401);
	/* A small body without credentials: read, then 401 as always. */
	big = malloc(big_len + 1);
	assert_non_null(big);
	memset(big, ' ', 100);
	memcpy(big, "{}", 2);
	assert_int_equal(hreq(s, "127.0.0.5", "POST", "/v1/messages", NULL,
	    big, 100, &a), 401);
	hans_free(&a);

	/* Nothing of the above reached bob's inbox. */
	err_clear(&e);
	assert_int_equal(dirc_inbox(cb, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 0);
	dirc_inbox_free(in);

	/* With a session a large body is read: 20 KiB that are no envelope
	 * get 400 (parsed), not 401. */
	bearer_header(dirc_token(ca), hdr, sizeof(hdr));
	memset(big, 'x', big_len);
	memcpy(big, "{\"pad\":\"", 8);
	memcpy(big + big_len - 2, "\"}", 2);
	big[big_len] = '\0';
	assert_int_equal(hreq(s, "127.0.0.6", "POST", "/v1/messages", hdr,
	    big, big_len, &a), 400);
	hans_free(&a);
	/* ...and a real envelope padded with 20 KiB of JSON whitespace is
	 * delivered. */
	c = tsrv_client(s);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &dir_pub, &e), 0);
	assert_int_equal(acctlog_state_init(&alice, ALICE, info.directory_id,
	    &e), 0);
	assert_int_equal(acctlog_state_init(&bob, BOB, info.directory_id,
	    &e), 0);
	tsrv_watch(ca, &alice, dir_pub);
	tsrv_watch(ca, &bob, dir_pub);
	views[0] = alice.head;
	views[1] = bob.head;
	recips[0] = &bob1;
	assert_int_equal(tenv_make(&d1, to, 2, views, 2, recips, 1, &json,
	    &len), 0);
	assert_non_null(padded = malloc(len + big_len));
	memcpy(padded, json, len);
	memset(padded + len, ' ', big_len);
	assert_int_equal(hreq(s, "127.0.0.6", "POST", "/v1/messages", hdr,
	    padded, len + big_len, &a), 201);
	hans_free(&a);
	assert_int_equal(dirc_inbox(cb, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 1);
	assert_int_equal(tenv_open(&bob1, &d1, in->items[0].envelope,
	    in->items[0].envelope_len), 0);
	dirc_inbox_free(in);

	free(padded);
	free(json);
	free(big);
	acctlog_state_clear(&alice);
	acctlog_state_clear(&bob);
	EVP_PKEY_free(dir_pub);
	dirc_free(c);
	dirc_free(ca);
	dirc_free(cb);
	tdev_clear(&d1);
	tdev_clear(&bob1);
	assert_int_equal(tsrv_stop(s), 0);
}

/* The number of messages queued for the device of c. */
static size_t
inbox_count(struct dirc *c)
{
	struct dirc_inbox *in = NULL;
	struct err_ctx e;
	size_t n;

	err_clear(&e);
	if (dirc_inbox(c, 0, 0, &in, &e) != 0)
		fail_msg("inbox: %s", err_msg(&e));
	n = in->n_items;
	dirc_inbox_free(in);
	return n;
}

/*
 * An envelope from sender (session c) to recipient device r of account
 * rcpt, with the heads of both accounts as views; the JSON text in
 * *json (caller frees).
 */
static size_t
envelope_to(struct dirc *c, const struct tdev *sender, const char *rcpt,
    const struct tdev *r, EVP_PKEY *dir_pub, const char *dir_id, char **json)
{
	const char *to[2];
	const struct tdev *recips[1] = { r };
	struct acctlog_state st[2];
	struct acctlog_head views[2];
	struct err_ctx e;
	size_t len = 0, i;

	err_clear(&e);
	/* "to" is sorted. */
	if (strcmp(sender->rec.account, rcpt) < 0) {
		to[0] = sender->rec.account;
		to[1] = rcpt;
	} else {
		to[0] = rcpt;
		to[1] = sender->rec.account;
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(acctlog_state_init(&st[i], to[i], dir_id, &e),
		    0);
		tsrv_watch(c, &st[i], dir_pub);
		views[i] = st[i].head;
	}
	assert_int_equal(tenv_make(sender, to, 2, views, 2, recips, 1, json,
	    &len), 0);
	for (i = 0; i < 2; i++)
		acctlog_state_clear(&st[i]);
	return len;
}

/*
 * Inbox fairness against the real server, each sender on its own
 * address: one sender may fill only its share of a recipient device's
 * queue while another still gets through, and the recipient account's
 * quota holds; refused posts store nothing, and reading frees the share.
 */
static void
test_inbox_fairness(void **state)
{
	struct tsrv *s = *state;
	char dir_id[DEVREC_ID_HEX_LEN + 1], dir_id2[DEVREC_ID_HEX_LEN + 1];
	char dir_id3[DEVREC_ID_HEX_LEN + 1], quota[32], ha[512], hc[512];
	const char *extra[] = { "--max-queue-per-sender", "2",
		"--account-quota", quota, NULL };
	char *env[6];
	struct tdev a1, b1, c1;
	struct dirc *ca, *cb, *cc, *c;
	struct dirc_info info;
	EVP_PKEY *dir_pub = NULL;
	struct err_ctx e;
	struct hans a;
	size_t len[6], i;
	uint64_t removed = 0;

	err_clear(&e);
	/* The quota holds three of these envelopes and a half. */
	snprintf(quota, sizeof(quota), "%u", 100000u);
	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &a1, dir_id);
	account_with_device(s, BOB, BOB_PW, &b1, dir_id2);
	account_with_device(s, CAROL, CAROL_PW, &c1, dir_id3);
	ca = tsrv_login(s, dir_id, &a1);
	cb = tsrv_login(s, dir_id, &b1);
	cc = tsrv_login(s, dir_id, &c1);
	c = tsrv_client(s);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &dir_pub, &e), 0);
	for (i = 0; i < 6; i++)
		len[i] = envelope_to(i < 3 ? ca : cc, i < 3 ? &a1 : &c1, BOB,
		    &b1, dir_pub, dir_id, &env[i]);
	/* Restart with the quota set to what three and a half take. */
	assert_int_equal(tsrv_stop(s), 0);
	snprintf(quota, sizeof(quota), "%zu", len[0] * 3 + len[0] / 2);
	tsrv_start(s, extra);
	dirc_free(ca);
	dirc_free(cb);
	dirc_free(cc);
	ca = tsrv_login(s, dir_id, &a1);
	cb = tsrv_login(s, dir_id, &b1);
	cc = tsrv_login(s, dir_id, &c1);
	bearer_header(dirc_token(ca), ha, sizeof(ha));
	bearer_header(dirc_token(cc), hc, sizeof(hc));

	/* alice's share of bob's device: two, then 429. */
	assert_int_equal(hreq(s, "127.0.0.2", "POST", "/v1/messages", ha,
	    env[0], len[0], &a), 201);
	hans_free(&a);
	assert_int_equal(hreq(s, "127.0.0.2", "POST", "/v1/messages", ha,
	    env[1], len[1], &a), 201);
	hans_free(&a);
	assert_int_equal(hreq(s, "127.0.0.2", "POST", "/v1/messages", ha,
	    env[2], len[2], &a), 429);
	assert_string_equal(hcode(&a), "sender_share");
	assert_true(a.retry_after >= 1);
	hans_free(&a);
	assert_int_equal(inbox_count(cb), 2);
	/* carol, from elsewhere, still gets through... */
	assert_int_equal(hreq(s, "127.0.0.3", "POST", "/v1/messages", hc,
	    env[3], len[3], &a), 201);
	hans_free(&a);
	/* ...until bob's account holds what its quota allows. */
	assert_int_equal(hreq(s, "127.0.0.3", "POST", "/v1/messages", hc,
	    env[4], len[4], &a), 429);
	assert_string_equal(hcode(&a), "quota_exceeded");
	assert_non_null(strstr(json_string_value(json_object_get(
	    json_object_get(a.json, "error"), "message")), BOB));
	hans_free(&a);
	assert_int_equal(inbox_count(cb), 3);
	/* bob reads and acknowledges: alice's share and the quota are free
	 * again, and the refused envelopes may be sent now. */
	assert_int_equal(dirc_ack(cb, UINT64_MAX >> 12, &removed, &e), 0);
	assert_int_equal(removed, 3);
	assert_int_equal(hreq(s, "127.0.0.2", "POST", "/v1/messages", ha,
	    env[2], len[2], &a), 201);
	hans_free(&a);
	assert_int_equal(hreq(s, "127.0.0.3", "POST", "/v1/messages", hc,
	    env[4], len[4], &a), 201);
	hans_free(&a);
	assert_int_equal(inbox_count(cb), 2);

	for (i = 0; i < 6; i++)
		free(env[i]);
	EVP_PKEY_free(dir_pub);
	dirc_free(c);
	dirc_free(ca);
	dirc_free(cb);
	dirc_free(cc);
	tdev_clear(&a1);
	tdev_clear(&b1);
	tdev_clear(&c1);
	assert_int_equal(tsrv_stop(s), 0);
}

/* GET /v1/health on fd, keeping the connection open; the status. */
static int
health_keepalive(int fd)
{
	static const char req[] = "GET /v1/health HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n\r\n";
	struct hans a;
	int st = 0;

	memset(&a, 0, sizeof(a));
	if (hsend(fd, req, sizeof(req) - 1) == 0 &&
	    hread(fd, &a, ANSWER_WAIT_MS) == 1)
		st = a.status;
	hans_free(&a);
	return st;
}

/* At most --max-per-address connections from one address. */
static void
test_per_address_limit(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--max-per-address", "4", NULL };
	static const char req[] = "GET /v1/health HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	struct hans a;
	int fds[4], fd, r, i, ok = 0;

	tsrv_start(s, extra);
	/* Four connections from 127.0.0.2, each known to be accepted (it
	 * was answered once), then idle. */
	for (i = 0; i < 4; i++) {
		assert_true((fds[i] = hconnect(s, "127.0.0.2")) >= 0);
		assert_int_equal(health_keepalive(fds[i]), 200);
	}
	/* A fifth from the same address is closed without an answer. */
	memset(&a, 0, sizeof(a));
	fd = hconnect(s, "127.0.0.2");
	assert_int_not_equal(fd, -2);
	if (fd >= 0) {
		r = hsend(fd, req, sizeof(req) - 1);
		if (r == 0) {
			r = hread(fd, &a, 5000);
			if (r != 0)
				fail_msg("a fifth connection from one address "
				    "was served (%d, status %d)", r, a.status);
		}
		hans_free(&a);
		close(fd);
	}
	/* Another address is served meanwhile. */
	assert_int_equal(hreq(s, "127.0.0.3", "GET", "/v1/health", NULL, NULL,
	    0, &a), 200);
	hans_free(&a);
	/* Once the four are closed, 127.0.0.2 is served again (the server
	 * notices the closes asynchronously). */
	for (i = 0; i < 4; i++)
		close(fds[i]);
	for (i = 0; i < 100 && !ok; i++) {
		ok = hreq(s, "127.0.0.2", "GET", "/v1/health", NULL, NULL, 0,
		    &a) == 200;
		hans_free(&a);
		if (!ok)
			tsleep_ms(100);
	}
	assert_true(ok);
	assert_int_equal(tsrv_stop(s), 0);
}

struct poller {
	const struct tsrv *s;
	const char *src;
	char hdr[512];
	int status;
	double start_ms, end_ms;
	char body[256];
};

static void *
inbox_poller(void *arg)
{
	struct poller *p = arg;
	struct hans a;

	p->start_ms = tmono_ms();
	p->status = hreq(p->s, p->src, "GET", "/v1/inbox?wait=5", p->hdr,
	    NULL, 0, &a);
	p->end_ms = tmono_ms();
	snprintf(p->body, sizeof(p->body), "%s", a.body != NULL ? a.body : "");
	hans_free(&a);
	return NULL;
}

/*
 * --request-timeout: a request must arrive whole within the timeout of
 * the connection's start (or of the previous answer); a long-poll whose
 * request arrived is not cut.
 */
static void
test_request_timeout(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--request-timeout", "2", NULL };
	static const char trickle[] = "GET /v1/health HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	char dir_id[DEVREC_ID_HEX_LEN + 1];
	struct tdev d1;
	struct dirc *c;
	struct poller p;
	struct pollfd pfd[2];
	pthread_t th;
	double t0, cut_ms = -1, idle_ms[2] = { -1, -1 };
	char junk[512];
	ssize_t k;
	size_t sent = 0;
	int fd, fds[2], i, n, answered = 0, ka_status = 0;

	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	c = tsrv_login(s, dir_id, &d1);
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.src = "127.0.0.4";
	bearer_header(dirc_token(c), p.hdr, sizeof(p.hdr));
	assert_int_equal(pthread_create(&th, NULL, inbox_poller, &p), 0);

	/*
	 * Nothing is asserted until the long-poll thread is joined (a failed
	 * assertion would leave it running on this stack frame).
	 *
	 * A connection that sends nothing, and one that is idle after an
	 * answered request: both closed by the server.
	 */
	t0 = tmono_ms();
	fds[0] = hconnect(s, "127.0.0.3");
	fds[1] = hconnect(s, "127.0.0.5");
	if (fds[1] >= 0)
		ka_status = health_keepalive(fds[1]);
	while (fds[0] >= 0 && fds[1] >= 0 &&
	    (idle_ms[0] < 0 || idle_ms[1] < 0) && tmono_ms() - t0 < 15000) {
		for (i = 0, n = 0; i < 2; i++) {
			if (idle_ms[i] >= 0)
				continue;
			pfd[n].fd = fds[i];
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		if (poll(pfd, (nfds_t)n, 200) <= 0)
			continue;
		for (i = 0; i < 2; i++) {
			if (idle_ms[i] >= 0)
				continue;
			k = recv(fds[i], junk, sizeof(junk), MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN &&
			    errno != EINTR))
				idle_ms[i] = tmono_ms() - t0;
		}
	}
	for (i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);

	/* One byte every 500 ms: cut long before the request is complete
	 * (it would take 50 s). */
	fd = hconnect(s, "127.0.0.2");
	t0 = tmono_ms();
	while (fd >= 0 && sent < sizeof(trickle) - 1 &&
	    tmono_ms() - t0 < 15000) {
		if (hsend(fd, trickle + sent, 1) != 0) {
			cut_ms = tmono_ms() - t0;
			break;
		}
		sent++;
		pfd[0].fd = fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (poll(pfd, 1, 500) > 0) {
			k = recv(fd, junk, sizeof(junk) - 1, 0);
			if (k > 0) {
				junk[k] = '\0';
				answered = strstr(junk, " 200 ") != NULL;
			}
			if (k == 0 || (k < 0 && errno != EINTR) ||
			    hwait_closed(fd, 5000)) {
				cut_ms = tmono_ms() - t0;
				break;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	pthread_join(th, NULL);

	assert_true(fds[0] >= 0 && fds[1] >= 0 && fd >= 0);
	assert_int_equal(ka_status, 200);
	print_message("idle connections closed after %.0f ms (nothing sent) "
	    "and %.0f ms (after an answer)\n", idle_ms[0], idle_ms[1]);
	if (idle_ms[0] < 0 || idle_ms[1] < 0)
		fail_msg("an idle connection was not closed within 15 s");
	assert_true(idle_ms[0] >= 1500);
	assert_true(idle_ms[1] >= 1500);
	print_message("trickling client cut after %.0f ms (%zu bytes sent)\n",
	    cut_ms, sent);
	assert_false(answered);
	if (cut_ms < 0)
		fail_msg("a client trickling one byte per 500 ms was not cut "
		    "within 15 s");
	assert_true(cut_ms >= 1500);
	assert_true(sent < sizeof(trickle) - 1);
	/* The long-poll (5 s, longer than the timeout) was answered. */
	print_message("long-poll of 5 s answered %d after %.0f ms\n",
	    p.status, p.end_ms - p.start_ms);
	assert_int_equal(p.status, 200);
	assert_true(p.end_ms - p.start_ms >= 4000);
	dirc_free(c);
	tdev_clear(&d1);
	assert_int_equal(tsrv_stop(s), 0);
}

#define FLOOD 8

struct flood {
	const struct tsrv *s;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
	int *go;
	int *answered;
	char src[32];
	char account[64];
	char path[512];
	char hdr[1024];
	char *body;
	struct tdev d;
	int status;
	long retry_after;
	char code[32];
};

static void *
flood_one(void *arg)
{
	struct flood *f = arg;
	struct hans a;
	int st;

	pthread_mutex_lock(f->mu);
	while (!*f->go)
		pthread_cond_wait(f->cv, f->mu);
	pthread_mutex_unlock(f->mu);
	st = hreq(f->s, f->src, "POST", f->path, f->hdr, f->body,
	    strlen(f->body), &a);
	pthread_mutex_lock(f->mu);
	f->status = st;
	f->retry_after = a.retry_after;
	snprintf(f->code, sizeof(f->code), "%s", hcode(&a));
	hans_free(&a);
	(*f->answered)++;
	pthread_cond_broadcast(f->cv);
	pthread_mutex_unlock(f->mu);
	return NULL;
}

/*
 * A full password pool answers 503 at once; requests that need no
 * password are not queued behind it.
 */
static void
test_password_pool_overload(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--password-threads", "1",
		"--password-queue", "1", "--scrypt-cost", "17",
		"--throttle-delay", "0", NULL };
	char dir_id[DEVREC_ID_HEX_LEN + 1], hdr[512], path[512];
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct flood f[FLOOD];
	pthread_t th[FLOOD];
	struct tdev d1;
	struct dirc *c;
	struct hans a;
	int go = 0, answered = 0, overloaded = 0, pending_at_read, st, i;
	int created;
	double t0, read_ms;

	tsrv_start(s, extra);
	account_with_device(s, ALICE, PW, &d1, dir_id);
	c = tsrv_login(s, dir_id, &d1);
	bearer_header(dirc_token(c), hdr, sizeof(hdr));
	account_url(ALICE, "/log?since=0", path, sizeof(path));
	for (i = 0; i < FLOOD; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		f[i].s = s;
		f[i].mu = &mu;
		f[i].cv = &cv;
		f[i].go = &go;
		f[i].answered = &answered;
		snprintf(f[i].src, sizeof(f[i].src), "127.0.0.%d", 20 + i);
		if (i == 0)
			snprintf(f[i].account, sizeof(f[i].account), ALICE);
		else
			snprintf(f[i].account, sizeof(f[i].account),
			    "flood%d@example.org", i);
		assert_int_equal(tdev_make(&f[i].d, f[i].account, "x",
		    (uint64_t)time(NULL)), 0);
		f[i].body = devrec_body(&f[i].d);
		basic_header(f[i].account, "wrong password", f[i].hdr,
		    sizeof(f[i].hdr));
		account_url(f[i].account, "/devices", f[i].path,
		    sizeof(f[i].path));
	}
	/* Nothing is asserted from here until every thread is joined. */
	for (i = 0; i < FLOOD; i++)
		if (pthread_create(&th[i], NULL, flood_one, &f[i]) != 0)
			break;
	created = i;
	t0 = tmono_ms();
	pthread_mutex_lock(&mu);
	go = 1;
	pthread_cond_broadcast(&cv);
	/* Wait for the first refusal: the queue is full from then on. */
	while (overloaded == 0 && answered < created) {
		pthread_cond_wait(&cv, &mu);
		for (i = 0; i < created; i++)
			if (f[i].status == 503)
				overloaded = 1;
	}
	pthread_mutex_unlock(&mu);
	/* A bearer read from another address, while scrypt is busy. */
	st = hreq(s, "127.0.0.3", "GET", path, hdr, NULL, 0, &a);
	hans_free(&a);
	read_ms = tmono_ms() - t0;
	pthread_mutex_lock(&mu);
	pending_at_read = created - answered;
	pthread_mutex_unlock(&mu);
	for (i = 0; i < created; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(created, FLOOD);
	print_message("bearer read answered %d at %.0f ms with %d password "
	    "checks still pending; the flood ended at %.0f ms\n", st, read_ms,
	    pending_at_read, tmono_ms() - t0);
	for (overloaded = 0, i = 0; i < FLOOD; i++) {
		if (f[i].status == 503) {
			overloaded++;
			assert_string_equal(f[i].code, "overloaded");
			assert_true(f[i].retry_after >= 1);
		} else if (f[i].status != 401) {
			fail_msg("password check %d: status %d (%s)", i,
			    f[i].status, f[i].code);
		}
		tdev_clear(&f[i].d);
		free(f[i].body);
	}
	assert_true(overloaded >= 1);
	assert_int_equal(st, 200);
	/* It did not wait for the checks queued before it. */
	assert_true(pending_at_read >= 1);
	dirc_free(c);
	tdev_clear(&d1);
	assert_int_equal(tsrv_stop(s), 0);
}

struct held {
	const struct tsrv *s;
	char path[512];
	char hdr[1024];
	char *body;
	int status;
	double end_ms;
};

static void *
held_one(void *arg)
{
	struct held *h = arg;
	struct hans a;

	h->status = hreq(h->s, "127.0.0.2", "POST", h->path, h->hdr, h->body,
	    strlen(h->body), &a);
	h->end_ms = tmono_ms();
	hans_free(&a);
	return NULL;
}

/*
 * --throttle-delay: a 429 is held before it is sent, without holding
 * one of the HTTP threads (there is only one here).
 */
static void
test_throttle_delay(void **state)
{
	struct tsrv *s = *state;
	static const char *const extra[] = { "--throttle-delay", "1500",
		"--threads", "1", NULL };
	struct tdev u[4];
	struct held h;
	struct hans a;
	pthread_t th;
	char acct[4][64];
	double t0, health_end;
	int i, health;

	tsrv_start(s, extra);
	for (i = 0; i < 4; i++) {
		snprintf(acct[i], sizeof(acct[i]), "held%d@example.org", i);
		assert_int_equal(tdev_make(&u[i], acct[i], "x",
		    (uint64_t)time(NULL)), 0);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(register_from(s, "127.0.0.2", acct[i],
		    "guess", &u[i], &a), 401);
		hans_free(&a);
	}
	memset(&h, 0, sizeof(h));
	h.s = s;
	h.body = devrec_body(&u[3]);
	basic_header(acct[3], "guess", h.hdr, sizeof(h.hdr));
	account_url(acct[3], "/devices", h.path, sizeof(h.path));
	t0 = tmono_ms();
	assert_int_equal(pthread_create(&th, NULL, held_one, &h), 0);
	/* While it is held, the only HTTP thread serves someone else. */
	tsleep_ms(300);
	health = hreq(s, "127.0.0.3", "GET", "/v1/health", NULL, NULL, 0, &a);
	health_end = tmono_ms();
	hans_free(&a);
	pthread_join(th, NULL);
	free(h.body);
	print_message("429 held %.0f ms; health answered at %.0f ms\n",
	    h.end_ms - t0, health_end - t0);
	assert_int_equal(health, 200);
	assert_int_equal(h.status, 429);
	assert_true(h.end_ms - t0 >= 1200);
	assert_true(health_end < h.end_ms);
	for (i = 0; i < 4; i++)
		tdev_clear(&u[i]);
	assert_int_equal(tsrv_stop(s), 0);
}

/*
 * Plain HTTP on a non-loopback address needs --behind-proxy (or TLS);
 * behind a proxy, the client is the last X-Forwarded-For entry.
 */
static void
test_plain_http_listen(void **state)
{
	struct tsrv *s = *state;
	static const char *const proxy[] = { "--behind-proxy",
		"--throttle-delay", "0", NULL };
	struct tsrv_tls tls;
	char db[600], ready[600], out[OUT_MAX];
	char acct[64], xff[128];
	const char *args[] = { "serve", "--db", db, "--listen", "0.0.0.0:0",
		"--ready-file", ready, "--quiet", NULL };
	struct tdev u;
	struct hans a;
	int i, st;

	snprintf(db, sizeof(db), "%s/plain.db", s->dir);
	snprintf(ready, sizeof(ready), "%s/plain.ready", s->dir);
	st = tsrv_run(s, args, NULL, 10000, out, sizeof(out));
	if (st != 2)
		fail_msg("serve --listen 0.0.0.0:0 without TLS: status %d "
		    "(-2: still running after 10 s), output:\n%s", st, out);
	assert_non_null(strstr(out, "TLS"));
	assert_non_null(strstr(out, "--behind-proxy"));
	assert_int_equal(access(ready, F_OK), -1);

	/* With --behind-proxy it serves. */
	tsrv_start_on(s, "0.0.0.0:0", NULL, proxy);
	assert_int_equal(hreq(s, "127.0.0.2", "GET", "/v1/health", NULL, NULL,
	    0, &a), 200);
	hans_free(&a);
	/* Password failures count against the network the proxy names
	 * last, whatever the client put before it. */
	for (i = 0; i < 5; i++) {
		snprintf(acct, sizeof(acct), "proxied%d@example.org", i);
		assert_int_equal(tdev_make(&u, acct, "x", (uint64_t)time(NULL)),
		    0);
		snprintf(xff, sizeof(xff), "X-Forwarded-For: %s\r\n",
		    i < 3 ? "198.51.100.7, 192.0.2.1" :
		    i == 3 ? "192.0.2.1" : "192.0.2.1, 192.0.2.2");
		{
			char hdr[1024], path[512], *body = devrec_body(&u);

			basic_header(acct, "guess", hdr, sizeof(hdr));
			snprintf(hdr + strlen(hdr), sizeof(hdr) - strlen(hdr),
			    "%s", xff);
			account_url(acct, "/devices", path, sizeof(path));
			/* All from 127.0.0.2: only the header differs. */
			st = hreq(s, "127.0.0.2", "POST", path, hdr, body,
			    strlen(body), &a);
			free(body);
		}
		if (st != (i == 3 ? 429 : 401))
			fail_msg("attempt %d with %.*s: status %d (%s)", i,
			    (int)strcspn(xff, "\r"), xff, st, hcode(&a));
		hans_free(&a);
		tdev_clear(&u);
	}
	assert_int_equal(tsrv_stop(s), 0);

	/* With TLS, any address is fine. */
	tsrv_tls_make(s, &tls);
	tsrv_start_on(s, "0.0.0.0:0", NULL, tls.args);
	assert_int_equal(tsrv_stop(s), 0);
}

/* st's permission bits, or -1 when path does not exist. */
static int
mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

static void
assert_private(const char *path)
{
	int m = mode_of(path);

	if (m != 0600)
		fail_msg("%s: mode %04o, not 0600 (umask 022)", path, m);
}

/*
 * The database, its -wal and -shm, and the head key are 0600 under umask
 * 022; a key file others can read stops the server.
 */
static void
test_file_modes(void **state)
{
	struct tsrv *s = *state;
	char path[640], key[640], db2[600], out[OUT_MAX];
	const char *serve[] = { "serve", "--db", s->db, "--listen",
		"127.0.0.1:0", "--quiet", NULL };
	const char *add[] = { "account", "add", BOB, "--db", db2,
		"--scrypt-cost", "10", "--password-file", path, NULL };
	const char *keycmd[] = { "key", "--db", db2, NULL };
	struct dirc *c;
	struct err_ctx e;
	FILE *f;
	int st;

	tsrv_start(s, NULL);
	c = tsrv_client(s);
	err_clear(&e);
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	dirc_free(c);
	/* While serving: the database, its WAL and shared memory, the
	 * key. */
	assert_private(s->db);
	snprintf(path, sizeof(path), "%s-wal", s->db);
	assert_private(path);
	snprintf(path, sizeof(path), "%s-shm", s->db);
	assert_private(path);
	snprintf(key, sizeof(key), "%s.key", s->db);
	assert_private(key);
	assert_int_equal(tsrv_stop(s), 0);

	/* A key file that others can read: the server refuses to start and
	 * names the file. */
	assert_int_equal(chmod(key, 0644), 0);
	st = tsrv_run(s, serve, NULL, 10000, out, sizeof(out));
	if (st == 0 || st == -2 || strstr(out, key) == NULL)
		fail_msg("serve with a key file of mode 0644: status %d "
		    "(-2: still running after 10 s), output:\n%s", st, out);
	assert_int_equal(chmod(key, 0600), 0);
	tsrv_start(s, NULL);
	assert_int_equal(tsrv_stop(s), 0);

	/* The command-line tools create private files too. */
	snprintf(db2, sizeof(db2), "%s/tool.db", s->dir);
	snprintf(path, sizeof(path), "%s/pw", s->dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "%s\n", BOB_PW);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);	/* others: refused */
	assert_int_equal(tsrv_run(s, add, NULL, 20000, out, sizeof(out)), 0);
	assert_private(db2);
	assert_int_equal(tsrv_run(s, keycmd, NULL, 20000, out, sizeof(out)),
	    0);
	snprintf(path, sizeof(path), "%s.key", db2);
	assert_private(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_password_throttling,
		    setup, tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_vs_wrong, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_auth_before_reveal, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_preauth_body, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_inbox_fairness, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_per_address_limit, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_request_timeout, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_password_pool_overload,
		    setup, tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_throttle_delay, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_plain_http_listen, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_file_modes, setup,
		    tsrv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
