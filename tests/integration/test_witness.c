/*
 * test_witness.c - the real devid-witness on loopback, driven through
 * common/witclient (C2SP tlog-witness, docs/protocol.md 7.4).
 *
 *   test_witness DIR
 *
 * DIR is an empty private directory (test-witness.sh makes it and
 * removes it); the witness binary is $top_builddir/witness/devid-witness.
 * The witness key is DIR/witness.key, or the pkcs11: URI in
 * $DEVID_TEST_WITNESS_KEY (a SoftHSM2 token: the same tests with the key
 * in a token).
 * Every witness started dies with this process (PR_SET_PDEATHSIG) and is
 * killed by the teardown on every other path.
 *
 * A log key (P-256) signs checkpoints of trees built here; the witness
 * must cosign the first one and a proven extension, answer 409 with its
 * size to a stale old size, refuse a fork of the same or a larger size
 * and show both notes in `devid-witness evidence`, answer 403, 404, 400
 * and 413 where it must, keep a 200 across kill -9, refuse a second
 * process on its state, and keep serving while slow clients hold
 * connections open.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "merkle.h"
#include "tlog-note.h"
#include "tlog-test-util.h"
#include "witclient.h"

#define ORIGIN "devid.test/log"
#define WNAME "witness.test"
#define OUT_MAX 65536
#define READY_WAIT_MS 15000

static const char *work;            /* DIR */

struct fx {
	char bin[600];
	char key[600], state[600], ready[600], logfile[600];
	char wvkey_text[TLOG_VKEY_MAX * 2];
	char log_vkey_text[TLOG_VKEY_MAX * 2];
	struct tlog_vkey wvkey, log_vk, other_vk;
	EVP_PKEY *log_key, *other_key;
	struct ttree t, f;
	pid_t pid;
	char url[200];
	struct witc *wc;
};

static struct fx fx;

/* --- trees and requests --- */

/* The signed note of size leaves of t (caller frees). */
static char *
note_of(const struct ttree *t, uint64_t size, EVP_PKEY *key,
    const struct tlog_vkey *vk, const char *origin, size_t *len)
{
	struct tlog_checkpoint c;
	struct tlog_note *n = calloc(1, sizeof(*n));
	struct err_ctx e;
	char *s = NULL;

	err_clear(&e);
	assert_non_null(n);
	memset(&c, 0, sizeof(c));
	snprintf(c.origin, sizeof(c.origin), "%s", origin);
	c.size = size;
	assert_int_equal(merkle_root(size, ttree_node, (void *)t, c.root, &e), 0);
	assert_int_equal(tlog_checkpoint_format(&c, n->text, sizeof(n->text),
	    &n->text_len), 0);
	assert_int_equal(tlog_note_sign_log(n, vk, ttree_log_sign, key, &e), 0);
	assert_int_equal(tlog_note_format(n, &s, len), 0);
	free(n);
	return s;
}

/* An add-checkpoint body: old, its proof in t, and note (caller frees). */
static char *
body_of(const struct ttree *t, uint64_t old, uint64_t size, const char *note,
    size_t note_len, size_t *len)
{
	uint8_t proof[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
	struct err_ctx e;
	size_t np = 0;
	char *body = NULL;

	err_clear(&e);
	assert_int_equal(merkle_consistency_proof(old, size, ttree_node,
	    (void *)t, proof, &np, &e), 0);
	assert_int_equal(tlog_witness_req_format(old,
	    (const uint8_t (*)[MERKLE_HASH_LEN])proof, np, note, note_len,
	    &body, len), 0);
	return body;
}

/*
 * Submits old -> size of t signed by key as vk under origin; returns
 * witc's result, *size_out its witness size, and checks the cosignature
 * of a 200.
 */
static int
submit(const struct ttree *t, uint64_t old, uint64_t size, EVP_PKEY *key,
    const struct tlog_vkey *vk, const char *origin, uint64_t *size_out,
    char **note_out)
{
	struct tlog_note *n = calloc(1, sizeof(*n));
	struct tlog_sigline sl;
	struct err_ctx e;
	char *note, *body, *lines = NULL;
	size_t note_len, len;
	uint64_t ws = 0, ts = 0, now = (uint64_t)time(NULL);
	int r;

	err_clear(&e);
	assert_non_null(n);
	note = note_of(t, size, key, vk, origin, &note_len);
	body = body_of(t, old, size, note, note_len, &len);
	r = witc_add_checkpoint(fx.wc, body, len, &lines, &ws, &e);
	if (size_out != NULL)
		*size_out = ws;
	if (r == 0) {
		assert_int_equal(tlog_note_parse(note, note_len, n, &e), 0);
		assert_int_equal(tlog_sigline_parse(lines, strlen(lines), &sl,
		    &e), 0);
		assert_int_equal(tlog_note_add_sig(n, &sl), 0);
		if (tlog_cosig_verify(n, &fx.wvkey, &ts, &e) != 0)
			fail_msg("the cosignature does not verify: %s",
			    err_msg(&e));
		assert_true(ts + 60 > now && ts < now + 60);
		free(lines);
	} else {
		assert_null(lines);
	}
	if (note_out != NULL)
		*note_out = note;
	else
		free(note);
	free(body);
	free(n);
	return r;
}

/* --- processes --- */

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/*
 * Runs argv (argv[0] the binary), its standard output into out (OUT_MAX,
 * NUL-terminated); returns its exit status (-1 when it did not exit).
 */
static int
run_capture(char *const argv[], char *out)
{
	int p[2], status;
	size_t len = 0;
	ssize_t k;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while ((k = read(p[0], out + len, OUT_MAX - 1 - len)) > 0)
		len += (size_t)k;
	out[len] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Starts `devid-witness run` on fx.state; returns its pid, or fails. */
static pid_t
witness_start(int expect_ready)
{
	char *argv[32];
	char addr[128];
	FILE *f;
	double t0;
	pid_t pid;
	int n = 0, status, fd;

	unlink(fx.ready);
	argv[n++] = fx.bin;
	argv[n++] = "run";
	argv[n++] = "--key";
	argv[n++] = fx.key;
	argv[n++] = "--name";
	argv[n++] = WNAME;
	argv[n++] = "--state";
	argv[n++] = fx.state;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--log";
	argv[n++] = fx.log_vkey_text;
	argv[n++] = "--ready-file";
	argv[n++] = fx.ready;
	argv[n++] = "--threads";
	argv[n++] = "2";
	argv[n++] = "--timeout";
	argv[n++] = "3";
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(fx.logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	t0 = mono_ms();
	while ((f = fopen(fx.ready, "r")) == NULL) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (!expect_ready)
				return WIFEXITED(status) ?
				    -WEXITSTATUS(status) : -1000;
			fail_msg("devid-witness exited (status %d) before it "
			    "was ready; see %s", WIFEXITED(status) ?
			    WEXITSTATUS(status) : -1, fx.logfile);
		}
		if (mono_ms() - t0 > READY_WAIT_MS)
			fail_msg("devid-witness did not become ready");
		usleep(20000);
	}
	if (fgets(addr, sizeof(addr), f) == NULL)
		addr[0] = '\0';
	fclose(f);
	if (!expect_ready) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("a second devid-witness started on the same state");
	}
	snprintf(fx.url, sizeof(fx.url), "http://%s", addr);
	return pid;
}

static void
witness_kill(void)
{
	if (fx.pid > 0) {
		kill(fx.pid, SIGKILL);
		waitpid(fx.pid, NULL, 0);
		fx.pid = 0;
	}
}

static void
client_new(void)
{
	struct err_ctx e;

	err_clear(&e);
	witc_free(fx.wc);
	fx.wc = NULL;
	if (witc_new(fx.url, 5, &fx.wc, &e) != 0)
		fail_msg("witc_new %s: %s", fx.url, err_msg(&e));
}

static int
setup(void **state)
{
	char *argv[8], *out = malloc(OUT_MAX), *nl;
	const char *top = getenv("top_builddir");
	const char *token_key = getenv("DEVID_TEST_WITNESS_KEY");
	struct stat st;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_non_null(out);
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.bin, sizeof(fx.bin), "%s/witness/devid-witness",
	    top != NULL ? top : ".");
	if (token_key != NULL)
		snprintf(fx.key, sizeof(fx.key), "%s", token_key);
	else
		snprintf(fx.key, sizeof(fx.key), "%s/witness.key", work);
	snprintf(fx.state, sizeof(fx.state), "%s/state", work);
	snprintf(fx.ready, sizeof(fx.ready), "%s/ready", work);
	snprintf(fx.logfile, sizeof(fx.logfile), "%s/witness.log", work);

	argv[0] = fx.bin;
	argv[1] = "init";
	argv[2] = "--key";
	argv[3] = fx.key;
	argv[4] = "--name";
	argv[5] = WNAME;
	argv[6] = NULL;
	assert_int_equal(run_capture(argv, out), 0);
	nl = strchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	snprintf(fx.wvkey_text, sizeof(fx.wvkey_text), "%s", out);
	if (tlog_vkey_parse(fx.wvkey_text, &fx.wvkey, &e) != 0)
		fail_msg("init printed '%s': %s", out, err_msg(&e));
	assert_int_equal(fx.wvkey.type, TLOG_SIGTYPE_COSIG);
	assert_string_equal(fx.wvkey.name, WNAME);
	if (token_key == NULL) {
		assert_int_equal(stat(fx.key, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	/* never over an existing key */
	assert_int_not_equal(run_capture(argv, out), 0);
	/* vkey prints the same again */
	argv[1] = "vkey";
	assert_int_equal(run_capture(argv, out), 0);
	assert_int_equal(strncmp(out, fx.wvkey_text, strlen(fx.wvkey_text)),
	    0);
	free(out);

	assert_int_equal(crypto_ec_generate(&fx.log_key), 0);
	assert_int_equal(crypto_ec_generate(&fx.other_key), 0);
	ttree_log_vkey(fx.log_key, ORIGIN, &fx.log_vk);
	ttree_log_vkey(fx.other_key, ORIGIN, &fx.other_vk);
	assert_int_equal(tlog_vkey_format(&fx.log_vk, fx.log_vkey_text,
	    sizeof(fx.log_vkey_text)), 0);
	ttree_build(&fx.t, TTREE_LEAVES_MAX, 0, 0);
	ttree_build(&fx.f, TTREE_LEAVES_MAX, 5, 8);
	fx.pid = witness_start(1);
	client_new();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	witness_kill();
	witc_free(fx.wc);
	EVP_PKEY_free(fx.log_key);
	EVP_PKEY_free(fx.other_key);
	return 0;
}

/* Runs `devid-witness CMD --state STATE` into out; its exit status. */
static int
witness_tool(const char *cmd, char *out)
{
	char *argv[5];

	argv[0] = fx.bin;
	argv[1] = (char *)cmd;
	argv[2] = "--state";
	argv[3] = fx.state;
	argv[4] = NULL;
	return run_capture(argv, out);
}

/* --- the tests, in order, on one witness --- */

static void
test_cosign_and_extend(void **state)
{
	uint64_t ws = 0;
	char *out = malloc(OUT_MAX);

	(void)state;
	assert_non_null(out);
	assert_int_equal(submit(&fx.t, 0, 5, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	assert_int_equal(submit(&fx.t, 5, 12, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	/* the held checkpoint again */
	assert_int_equal(submit(&fx.t, 12, 12, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	/* stale: witc reports the witness's size */
	assert_int_equal(submit(&fx.t, 5, 20, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), ERR_EXISTS);
	assert_true(ws == 12);
	assert_int_equal(submit(&fx.t, 0, 20, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), ERR_EXISTS);
	assert_true(ws == 12);
	assert_int_equal(witness_tool("status", out), 0);
	if (strstr(out, ORIGIN " 12 ") == NULL)
		fail_msg("status says: %s", out);
	free(out);
}

static void
test_fork_kept_as_evidence(void **state)
{
	uint64_t ws = 0;
	char *out = malloc(OUT_MAX), *held = NULL, *forked = NULL,
	    *bigger = NULL;

	(void)state;
	assert_non_null(out);
	assert_int_equal(witness_tool("evidence", out), 0);
	assert_non_null(strstr(out, "no evidence"));
	/* the note the witness holds */
	held = note_of(&fx.t, 12, fx.log_key, &fx.log_vk, ORIGIN,
	    &(size_t){ 0 });
	/* a fork of the same size */
	assert_int_equal(submit(&fx.f, 12, 12, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, &forked), ERR_EXISTS);
	assert_true(ws == 12);
	/* a larger fork with a proof from its own size 12 */
	assert_int_equal(submit(&fx.f, 12, 30, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, &bigger), ERR_SIGNATURE);
	assert_int_equal(witness_tool("evidence", out), 0);
	/* ECDSA signatures differ each time: compare the texts */
	*strstr(held, "\n\n") = '\0';
	*strstr(forked, "\n\n") = '\0';
	*strstr(bigger, "\n\n") = '\0';
	if (strstr(out, held) == NULL || strstr(out, forked) == NULL ||
	    strstr(out, bigger) == NULL || strstr(out, "evidence 2") == NULL ||
	    strstr(out, "fork") == NULL)
		fail_msg("evidence says:\n%s", out);
	/* the held checkpoint is untouched */
	assert_int_equal(submit(&fx.t, 12, 13, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	free(held);
	free(forked);
	free(bigger);
	free(out);
}

static void
test_refusals(void **state)
{
	struct err_ctx e;
	uint64_t ws = 0;
	char *lines = NULL, *big, *note, *body;
	size_t note_len, len;

	(void)state;
	err_clear(&e);
	/* signed by another key under the origin's name */
	assert_int_equal(submit(&fx.t, 13, 20, fx.other_key, &fx.other_vk,
	    ORIGIN, &ws, NULL), ERR_DENIED);
	assert_int_equal(submit(&fx.t, 13, 20, fx.other_key, &fx.log_vk,
	    ORIGIN, &ws, NULL), ERR_DENIED);
	/* an origin it does not witness */
	assert_int_equal(submit(&fx.t, 0, 20, fx.log_key, &fx.log_vk,
	    "other.test/log", &ws, NULL), ERR_NOT_FOUND);
	/* malformed */
	assert_int_equal(witc_add_checkpoint(fx.wc, "old 1\nxyz\n\n", 11,
	    &lines, &ws, &e), ERR_FORMAT);
	assert_int_equal(witc_add_checkpoint(fx.wc, "hello", 5, &lines, &ws,
	    &e), ERR_FORMAT);
	/* old > size */
	note = note_of(&fx.t, 20, fx.log_key, &fx.log_vk, ORIGIN, &note_len);
	body = body_of(&fx.t, 13, 20, note, note_len, &len);
	assert_memory_equal(body, "old 13\n", 7);
	body[4] = '9';
	err_clear(&e);
	assert_int_equal(witc_add_checkpoint(fx.wc, body, len, &lines, &ws,
	    &e), ERR_FORMAT);
	free(body);
	free(note);
	/* too large */
	big = malloc(70000);
	assert_non_null(big);
	memset(big, 'a', 70000);
	memcpy(big, "old 0\n\n", 7);
	err_clear(&e);
	assert_int_equal(witc_add_checkpoint(fx.wc, big, 70000, &lines, &ws,
	    &e), ERR_TOO_LARGE);
	free(big);
	assert_null(lines);
	/* and it still works */
	assert_int_equal(submit(&fx.t, 13, 14, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
}

static void
test_slow_clients(void **state)
{
	struct sockaddr_in sa;
	int s[6], i, port;
	uint64_t ws = 0;
	const char *colon = strrchr(fx.url, ':');
	double t0;

	(void)state;
	assert_non_null(colon);
	port = atoi(colon + 1);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* more idle or half-sent requests than the witness has threads */
	for (i = 0; i < 6; i++) {
		s[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(s[i] >= 0);
		assert_int_equal(connect(s[i], (struct sockaddr *)&sa,
		    sizeof(sa)), 0);
		if (i % 2 == 0)
			assert_true(write(s[i], "POST /add-checkpoint HTTP/1.1"
			    "\r\nContent-Length: 100\r\n\r\nold", 57) == 57);
	}
	t0 = mono_ms();
	assert_int_equal(submit(&fx.t, 14, 15, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	assert_true(mono_ms() - t0 < 2000);
	for (i = 0; i < 6; i++)
		close(s[i]);
}

/* A connection to the witness, or a failed test. */
static int
witness_connect(void)
{
	struct sockaddr_in sa;
	const char *colon = strrchr(fx.url, ':');
	int s;

	assert_non_null(colon);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

/* Sends req on a new connection; the status line of the answer. */
static void
raw_status(const char *req, char *line, size_t line_len)
{
	char buf[4096];
	size_t len = 0;
	ssize_t k;
	int s = witness_connect();

	assert_true(write(s, req, strlen(req)) == (ssize_t)strlen(req));
	while (len < sizeof(buf) - 1 &&
	    (k = read(s, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)k;
	buf[len] = '\0';
	close(s);
	snprintf(line, line_len, "%.*s", (int)strcspn(buf, "\r\n"), buf);
}

static void
test_http_edges(void **state)
{
	char line[200], c;
	struct timeval tv = { 10, 0 };
	double t0;
	int s;

	(void)state;
	raw_status("GET /add-checkpoint HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n", line, sizeof(line));
	assert_int_equal(strncmp(line, "HTTP/1.1 405 ", 13), 0);
	raw_status("POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0"
	    "\r\nConnection: close\r\n\r\n", line, sizeof(line));
	assert_int_equal(strncmp(line, "HTTP/1.1 404 ", 13), 0);
	raw_status("POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 1000000\r\nConnection: close\r\n\r\n", line,
	    sizeof(line));
	assert_int_equal(strncmp(line, "HTTP/1.1 413 ", 13), 0);
	/* a request that never completes is closed after --timeout 3 */
	s = witness_connect();
	assert_true(write(s, "POST /add-checkpoint HTTP/1.1\r\n", 31) == 31);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = mono_ms();
	assert_true(read(s, &c, 1) <= 0);
	assert_true(mono_ms() - t0 < 8000);
	close(s);
}

static void
test_durable_and_exclusive(void **state)
{
	uint64_t ws = 0;
	char *out = malloc(OUT_MAX);
	int i;

	(void)state;
	assert_non_null(out);
	for (i = 0; i < 3; i++) {
		/* a 200, then kill -9 at once */
		assert_int_equal(submit(&fx.t, 15 + (uint64_t)i * 5,
		    20 + (uint64_t)i * 5, fx.log_key, &fx.log_vk, ORIGIN, &ws,
		    NULL), 0);
		witness_kill();
		fx.pid = witness_start(1);
		client_new();
		assert_int_equal(submit(&fx.t, 15 + (uint64_t)i * 5,
		    20 + (uint64_t)i * 5, fx.log_key, &fx.log_vk, ORIGIN, &ws,
		    NULL), ERR_EXISTS);
		assert_true(ws == 20 + (uint64_t)i * 5);
	}
	assert_int_equal(witness_tool("status", out), 0);
	if (strstr(out, ORIGIN " 30 ") == NULL)
		fail_msg("status says: %s", out);
	/* a second process on the same state is refused */
	assert_true(witness_start(0) < 0);
	/* and the first goes on */
	assert_int_equal(submit(&fx.t, 30, 31, fx.log_key, &fx.log_vk, ORIGIN,
	    &ws, NULL), 0);
	free(out);
}

static void
test_client_refuses_plain_http_elsewhere(void **state)
{
	struct witc *w = NULL;
	struct err_ctx e;

	(void)state;
	err_clear(&e);
	assert_int_equal(witc_new("http://192.0.2.1:80", 5, &w, &e),
	    ERR_CONFIG);
	assert_null(w);
	assert_int_equal(witc_new("ftp://127.0.0.1/", 5, &w, &e), ERR_CONFIG);
	assert_int_equal(witc_new("https://witness.example/", 5, &w, &e), 0);
	witc_free(w);
	w = NULL;
	/* nobody listening */
	assert_int_equal(witc_new("http://127.0.0.1:1", 2, &w, &e), 0);
	err_clear(&e);
	{
		char *lines = NULL;

		assert_int_equal(witc_add_checkpoint(w, "old 0\n\n", 7,
		    &lines, NULL, &e), ERR_NETWORK);
		assert_non_null(strstr(err_msg(&e), "127.0.0.1:1"));
	}
	witc_free(w);
}


/* --- witclient against canned answers --- */

struct canned {
	int fd;                       /* listening */
	const char *answer;           /* the whole HTTP answer */
	size_t answer_len;
};

/* Accepts one connection, reads the request head and body, answers. */
static void *
canned_main(void *arg)
{
	struct canned *c = arg;
	char buf[8192], *end, *cl;
	size_t len = 0, want = 0;
	ssize_t k;
	int s;

	if ((s = accept(c->fd, NULL, NULL)) < 0)
		return NULL;
	for (;;) {
		k = read(s, buf + len, sizeof(buf) - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
		buf[len] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) == NULL)
			continue;
		cl = strcasestr(buf, "Content-Length:");
		want = (size_t)(end + 4 - buf) +
		    (cl != NULL ? strtoul(cl + 15, NULL, 10) : 0);
		if (len >= want || len == sizeof(buf) - 1)
			break;
	}
	if (write(s, c->answer, c->answer_len) < 0)
		(void)0;
	close(s);
	return NULL;
}

/* witc_add_checkpoint against a server that sends answer. */
static int
against(const char *answer, size_t answer_len, uint64_t *ws,
    struct err_ctx *e)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct canned c;
	struct witc *w = NULL;
	pthread_t th;
	char url[64], *lines = NULL;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c.fd >= 0);
	assert_int_equal(bind(c.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(c.fd, 1), 0);
	assert_int_equal(getsockname(c.fd, (struct sockaddr *)&sa, &sl), 0);
	c.answer = answer;
	c.answer_len = answer_len;
	assert_int_equal(pthread_create(&th, NULL, canned_main, &c), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/",
	    (unsigned int)ntohs(sa.sin_port));
	assert_int_equal(witc_new(url, 5, &w, e), 0);
	err_clear(e);
	r = witc_add_checkpoint(w, "old 0\n\n", 7, &lines, ws, e);
	if (r == 0)
		free(lines);
	else
		assert_null(lines);
	pthread_join(th, NULL);
	close(c.fd);
	witc_free(w);
	return r;
}

static int
against_text(const char *status_line, const char *type, const char *body,
    uint64_t *ws, struct err_ctx *e)
{
	char a[1024];
	int n;

	n = snprintf(a, sizeof(a), "HTTP/1.1 %s\r\nConnection: close\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s", status_line,
	    type, strlen(body), body);
	assert_true(n > 0 && (size_t)n < sizeof(a));
	return against(a, (size_t)n, ws, e);
}

/* A 200 whose body is the first n bytes of body. */
static int
against_text_big(const char *body, size_t n, uint64_t *ws,
    struct err_ctx *e)
{
	char *a = malloc(n + 200);
	int k, r;

	assert_non_null(a);
	k = snprintf(a, 200, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", n);
	assert_true(k > 0 && k < 200);
	memcpy(a + k, body, n);
	r = against(a, (size_t)k + n, ws, e);
	free(a);
	return r;
}

static void
test_client_answers(void **state)
{
	struct err_ctx e;
	uint64_t ws = 99;
	char *big;
	size_t n;

	(void)state;
	err_clear(&e);
	assert_int_equal(against_text("409 Conflict", "text/x.tlog.size",
	    "7\n", &ws, &e), ERR_EXISTS);
	assert_true(ws == 7);
	/* a size in another type, with leading zeros, junk or too large */
	assert_int_equal(against_text("409 Conflict", "text/plain", "7\n",
	    &ws, &e), ERR_EXISTS);
	assert_true(ws == 0);
	assert_int_equal(against_text("409 Conflict", "text/x.tlog.size",
	    "07\n", &ws, &e), ERR_EXISTS);
	assert_true(ws == 0);
	assert_int_equal(against_text("409 Conflict", "text/x.tlog.size",
	    "7 \n", &ws, &e), ERR_EXISTS);
	assert_true(ws == 0);
	assert_int_equal(against_text("409 Conflict", "text/x.tlog.size",
	    "9223372036854775808\n", &ws, &e), ERR_EXISTS);
	assert_true(ws == 0);
	assert_int_equal(against_text("409 Conflict", "text/x.tlog.size",
	    "9223372036854775807\n", &ws, &e), ERR_EXISTS);
	assert_true(ws == UINT64_C(9223372036854775807));
	assert_int_equal(against_text("422 Unprocessable Entity",
	    "text/plain", "bad proof\n", &ws, &e), ERR_SIGNATURE);
	assert_int_equal(against_text("403 Forbidden", "text/plain", "",
	    &ws, &e), ERR_DENIED);
	assert_int_equal(against_text("404 Not Found", "text/plain", "",
	    &ws, &e), ERR_NOT_FOUND);
	assert_int_equal(against_text("400 Bad Request", "text/plain", "x",
	    &ws, &e), ERR_FORMAT);
	assert_int_equal(against_text("500 Oops", "text/plain", "x", &ws, &e),
	    ERR_NETWORK);
	assert_non_null(strstr(err_msg(&e), "500"));
	/* a 200 that is not signature lines */
	assert_int_equal(against_text("200 OK", "text/plain", "hello\n", &ws,
	    &e), ERR_FORMAT);
	assert_int_equal(against_text("200 OK", "text/plain", "", &ws, &e),
	    ERR_FORMAT);
	/* a 200 larger than any note */
	n = TLOG_NOTE_MAX + 200;
	big = malloc(n + 200);
	assert_non_null(big);
	memset(big, 'a', n + 200);
	big[n + 199] = '\0';
	assert_int_equal(against_text_big(big, n, &ws, &e), ERR_TOO_LARGE);
	free(big);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cosign_and_extend),
		cmocka_unit_test(test_fork_kept_as_evidence),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_slow_clients),
		cmocka_unit_test(test_http_edges),
		cmocka_unit_test(test_durable_and_exclusive),
		cmocka_unit_test(test_client_refuses_plain_http_elsewhere),
		cmocka_unit_test(test_client_answers),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_witness DIR\n");
		return 2;
	}
	work = argv[1];
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
