/*
 * test_directory.c - the real devid-directory binary over HTTP.
 *
 * Each test starts $top_builddir/directory/devid-directory on a free
 * loopback port (port 0; the server writes the bound address to a ready
 * file) with a fresh database in a temporary directory, talks to it with
 * common/dirclient (libcurl), and stops it with SIGTERM, which must drain
 * and exit 0 -- under the sanitizers that also means without leaks.  The
 * server dies with the test process (PR_SET_PDEATHSIG) if the test
 * crashes, and the temporary directory is removed on every path.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"
#define READY_WAIT_MS 30000

struct server {
	char *dir;
	pid_t pid;
	char url[160];
	char db[512];
};

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *
binary(void)
{
	static char path[1024];
	const char *top = getenv("top_builddir");

	snprintf(path, sizeof(path), "%s/directory/devid-directory",
	    top != NULL ? top : ".");
	return path;
}

/*
 * Starts the server with extra arguments (NULL-terminated) and waits for
 * its ready file.  scheme is "http" or "https".
 */
static void
server_start(struct server *s, const char *scheme, const char *const *extra)
{
	const char *argv[32];
	char ready[512], addr[128];
	FILE *f;
	double t0;
	size_t n = 0, i;
	int status;

	assert_non_null(s->dir);
	snprintf(s->db, sizeof(s->db), "%s/dir.db", s->dir);
	snprintf(ready, sizeof(ready), "%s/ready", s->dir);
	unlink(ready);
	argv[n++] = binary();
	argv[n++] = "serve";
	argv[n++] = "--db";
	argv[n++] = s->db;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--ready-file";
	argv[n++] = ready;
	argv[n++] = "--open-signup";
	argv[n++] = "--scrypt-cost";
	argv[n++] = "10";
	argv[n++] = "--rate";
	argv[n++] = "0";
	argv[n++] = "--quiet";
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(argv[0], (char *const *)(uintptr_t)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	t0 = mono_ms();
	while ((f = fopen(ready, "r")) == NULL) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			fail_msg("devid-directory exited before it was ready");
		}
		if (mono_ms() - t0 > READY_WAIT_MS)
			fail_msg("devid-directory did not become ready");
		usleep(20 * 1000);
	}
	assert_non_null(fgets(addr, sizeof(addr), f));
	fclose(f);
	addr[strcspn(addr, "\n")] = '\0';
	snprintf(s->url, sizeof(s->url), "%s://%s", scheme, addr);
}

/* SIGTERM; returns the exit status (or -1 when killed by a signal). */
static int
server_stop(struct server *s)
{
	int status = 0, ret = -1;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		if (waitpid(s->pid, &status, 0) == s->pid &&
		    WIFEXITED(status))
			ret = WEXITSTATUS(status);
		s->pid = 0;
	}
	return ret;
}

static void
server_cleanup(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	ttmpdir_remove(s->dir);
	s->dir = NULL;
}

static int
teardown(void **state)
{
	struct server *s = *state;

	if (s != NULL) {
		server_cleanup(s);
		free(s);
	}
	return 0;
}

static int
setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;
	if ((s->dir = ttmpdir_make()) == NULL) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static struct dirc *
client(const struct server *s)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(s->url, NULL, &c, &e) != 0)
		fail_msg("%s", err_msg(&e));
	return c;
}

static struct dirc *
login(const struct server *s, const char *dir_id, struct tdev *d)
{
	struct dirc *c = client(s);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) != 0)
		fail_msg("login: %s", err_msg(&e));
	return c;
}

/* Brings st up to date from the directory, verifying everything. */
static void
watch(struct dirc *c, struct acctlog_state *st, EVP_PKEY *dir_pub)
{
	struct acctlog_response *resp = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_get_log(c, st->account, st->seq, 0, &resp, &e) != 0 ||
	    acctlog_verify_update(st, resp->events, resp->n_events,
	    &resp->head, dir_pub, (uint64_t)time(NULL), 900, NULL, &e) != 0)
		fail_msg("log of %s: %s", st->account, err_msg(&e));
	acctlog_response_free(resp);
}

struct waiter {
	struct dirc *c;
	unsigned int wait_s;
	struct dirc_inbox *in;
	int rc;
	double start_ms, end_ms;
	/* log long-poll */
	const char *account;
	uint64_t since;
	struct acctlog_response *resp;
};

static void *
inbox_waiter(void *arg)
{
	struct waiter *w = arg;
	struct err_ctx e;

	err_clear(&e);
	w->start_ms = mono_ms();
	w->rc = dirc_inbox(w->c, w->wait_s, 0, &w->in, &e);
	w->end_ms = mono_ms();
	return NULL;
}

static void *
log_waiter(void *arg)
{
	struct waiter *w = arg;
	struct err_ctx e;

	err_clear(&e);
	w->start_ms = mono_ms();
	w->rc = dirc_get_log(w->c, w->account, w->since, w->wait_s, &w->resp,
	    &e);
	w->end_ms = mono_ms();
	return NULL;
}

static void
test_end_to_end(void **state)
{
	struct server *s = *state;
	static const char *const to[] = { ALICE, BOB };
	struct tdev laptop, phone, tablet, desk, card;
	const struct tdev *recips[3];
	struct tdev *const readers[3] = { &phone, &tablet, &desk };
	struct dirc *c, *cl, *cp, *ct, *cd, *creader[3];
	struct dirc_info info;
	struct dirc_inbox *in = NULL;
	struct acctlog_state alice, bob;
	struct acctlog_head views[2];
	struct waiter w;
	EVP_PKEY *dir_pub = NULL;
	struct err_ctx e;
	pthread_t th;
	char *json = NULL, wal[600];
	size_t len = 0, i;
	uint64_t queued = 0, removed = 0, now;
	uint8_t sig[64];
	double post_start, post_end;
	struct stat sb;

	server_start(s, "http", NULL);
	c = client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &dir_pub, &e), 0);

	/* Accounts (open sign-up) and five devices of two accounts. */
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	assert_int_equal(dirc_create_account(c, BOB, BOB_PW, &e), 0);
	now = (uint64_t)time(NULL);
	assert_int_equal(tdev_make(&laptop, ALICE, "laptop", now), 0);
	assert_int_equal(tdev_make(&phone, ALICE, "phone", now), 0);
	assert_int_equal(tdev_make(&tablet, ALICE, "tablet", now), 0);
	assert_int_equal(tdev_make(&card, ALICE, "card", now), 0);
	assert_int_equal(tdev_make(&desk, BOB, "desktop", now), 0);
	assert_int_equal(dirc_register_device(c, PW, &laptop.rec, NULL, &e),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &phone.rec, NULL, &e), 0);
	assert_int_equal(dirc_register_device(c, PW, &tablet.rec, NULL, &e),
	    0);
	assert_int_equal(dirc_register_device(c, BOB_PW, &desk.rec, NULL, &e),
	    0);
	/* A wrong password is refused with the directory's sentence. */
	err_clear(&e);
	assert_int_equal(dirc_register_device(c, "guess", &card.rec, NULL,
	    &e), ERR_DENIED);
	assert_non_null(strstr(err_msg(&e), "wrong account name or password"));

	/* Sessions by device signature. */
	cl = login(s, info.directory_id, &laptop);
	cp = login(s, info.directory_id, &phone);
	ct = login(s, info.directory_id, &tablet);
	cd = login(s, info.directory_id, &desk);

	/* The laptop's watcher verifies alice's log; the desktop pins
	 * bob's. */
	assert_int_equal(acctlog_state_init(&alice, ALICE, info.directory_id,
	    &e), 0);
	assert_int_equal(acctlog_state_init(&bob, BOB, info.directory_id,
	    &e), 0);
	watch(cl, &alice, dir_pub);
	watch(cl, &bob, dir_pub);
	assert_int_equal(alice.seq, 3);
	assert_int_equal(alice.n_devices, 3);
	assert_int_equal(bob.n_devices, 1);

	/* Fan-out: laptop -> phone, tablet (alice) and desktop (bob). */
	views[0] = alice.head;
	views[1] = bob.head;
	recips[0] = &phone;
	recips[1] = &tablet;
	recips[2] = &desk;
	assert_int_equal(tenv_make(&laptop, to, 2, views, 2, recips, 3, &json,
	    &len), 0);

	/* The desktop is already waiting when the message is posted. */
	memset(&w, 0, sizeof(w));
	w.c = cd;
	w.wait_s = 30;
	w.rc = -1;
	assert_int_equal(pthread_create(&th, NULL, inbox_waiter, &w), 0);
	usleep(500 * 1000);
	post_start = mono_ms();
	assert_int_equal(dirc_post_message(cl, json, len, &queued, &e), 0);
	post_end = mono_ms();
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.in->n_items, 1);
	/* It was sent before the post and woken by the post, not by its
	 * 30 s deadline; the time is printed for the record, the bound is
	 * generous because test machines are shared. */
	assert_true(w.start_ms < post_start);
	print_message("inbox long-poll woken %.1f ms after the post was "
	    "sent (%.1f ms after its answer; the post took %.1f ms)\n",
	    w.end_ms - post_start, w.end_ms - post_end,
	    post_end - post_start);
	assert_true(w.end_ms - post_start < 2000);
	assert_int_equal(queued, 3);
	free(json);
	json = NULL;
	dirc_inbox_free(w.in);

	/* Every recipient opens its copy, acknowledges, and is empty. */
	creader[0] = cp;
	creader[1] = ct;
	creader[2] = cd;
	for (i = 0; i < 3; i++) {
		assert_int_equal(dirc_inbox(creader[i], 0, 0, &in, &e), 0);
		assert_int_equal(in->n_items, 1);
		assert_int_equal(tenv_open(readers[i], &laptop,
		    in->items[0].envelope, in->items[0].envelope_len), 0);
		/* Not openable by a device that is no recipient. */
		assert_int_not_equal(tenv_open(&card, &laptop,
		    in->items[0].envelope, in->items[0].envelope_len), 0);
		assert_int_equal(dirc_ack(creader[i], in->items[0].seq,
		    &removed, &e), 0);
		assert_int_equal(removed, 1);
		dirc_inbox_free(in);
		assert_int_equal(dirc_inbox(creader[i], 0, 0, &in, &e), 0);
		assert_int_equal(in->n_items, 0);
		dirc_inbox_free(in);
	}
	/* The sender got no copy of its own. */
	assert_int_equal(dirc_inbox(cl, 0, 0, &in, &e), 0);
	assert_int_equal(in->n_items, 0);
	dirc_inbox_free(in);

	/* Bob's desktop long-polls alice's log; a new device wakes it. */
	memset(&w, 0, sizeof(w));
	w.c = cd;
	w.wait_s = 30;
	w.account = ALICE;
	w.since = alice.seq;
	w.rc = -1;
	assert_int_equal(pthread_create(&th, NULL, log_waiter, &w), 0);
	usleep(300 * 1000);
	assert_int_equal(dirc_register_device(c, PW, &card.rec, NULL, &e), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.resp->n_events, 1);
	assert_int_equal(w.resp->events[0].seq, 4);
	assert_true(w.end_ms - w.start_ms < 20000);
	acctlog_response_free(w.resp);
	watch(cl, &alice, dir_pub);
	assert_int_equal(alice.n_devices, 4);

	/* The laptop revokes the tablet; the log proves it, the tablet's
	 * session ends, and it is no longer a valid recipient. */
	now = (uint64_t)time(NULL);
	assert_int_equal(tdev_sign_revoke(&laptop, ALICE, tablet.rec.device,
	    now, sig), 0);
	assert_int_equal(dirc_revoke(cl, ALICE, tablet.rec.device, now, sig,
	    NULL, &e), 0);
	watch(cl, &alice, dir_pub);
	assert_int_equal(alice.seq, 5);
	assert_int_equal(alice.n_devices, 3);
	assert_null(acctlog_state_find(&alice, tablet.rec.device));
	err_clear(&e);
	assert_int_equal(dirc_inbox(ct, 0, 0, &in, &e), ERR_DENIED);
	views[0] = alice.head;
	assert_int_equal(tenv_make(&laptop, to, 2, views, 2, recips, 3, &json,
	    &len), 0);
	err_clear(&e);
	assert_int_equal(dirc_post_message(cl, json, len, NULL, &e),
	    ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "not an active device"));
	free(json);

	acctlog_state_clear(&alice);
	acctlog_state_clear(&bob);
	dirc_free(c);
	dirc_free(cl);
	dirc_free(cp);
	dirc_free(ct);
	dirc_free(cd);
	EVP_PKEY_free(dir_pub);
	tdev_clear(&laptop);
	tdev_clear(&phone);
	tdev_clear(&tablet);
	tdev_clear(&card);
	tdev_clear(&desk);
	/* SIGTERM: a clean exit, and the database closed cleanly (the last
	 * connection folds the WAL back and removes it). */
	assert_int_equal(server_stop(s), 0);
	snprintf(wal, sizeof(wal), "%s-wal", s->db);
	assert_int_equal(stat(wal, &sb), -1);
}

static void
test_sigterm_answers_long_polls(void **state)
{
	struct server *s = *state;
	struct dirc_info info;
	struct dirc *c;
	struct tdev d;
	struct waiter w;
	struct err_ctx e;
	pthread_t th;
	int status;

	server_start(s, "http", NULL);
	c = client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	assert_int_equal(tdev_make(&d, ALICE, "laptop", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &d.rec, NULL, &e), 0);
	dirc_free(c);
	c = login(s, info.directory_id, &d);
	memset(&w, 0, sizeof(w));
	w.c = c;
	w.wait_s = 60;
	w.rc = -1;
	assert_int_equal(pthread_create(&th, NULL, inbox_waiter, &w), 0);
	usleep(500 * 1000);
	kill(s->pid, SIGTERM);
	pthread_join(th, NULL);
	/* The waiting request was answered (empty), not cut off. */
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.in->n_items, 0);
	assert_true(w.end_ms - w.start_ms < 30000);
	dirc_inbox_free(w.in);
	assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
	s->pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	dirc_free(c);
	tdev_clear(&d);
}

static void
test_tls(void **state)
{
	struct server *s = *state;
	const char *openssl = getenv("OPENSSL_BIN");
	char cmd[2048], cert[600], key[600];
	const char *extra[5];
	struct dirc_options opt;
	struct dirc_info info;
	struct dirc *c = NULL;
	struct err_ctx e;
	char plain[200];

	snprintf(cert, sizeof(cert), "%s/cert.pem", s->dir);
	snprintf(key, sizeof(key), "%s/key.pem", s->dir);
	snprintf(cmd, sizeof(cmd), "'%s' req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 "
	    "-addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' "
	    ">/dev/null 2>&1", openssl != NULL && *openssl != '\0' ? openssl :
	    "openssl", key, cert);
	assert_int_equal(system(cmd), 0);
	extra[0] = "--tls-cert";
	extra[1] = cert;
	extra[2] = "--tls-key";
	extra[3] = key;
	extra[4] = NULL;
	server_start(s, "https", extra);
	memset(&opt, 0, sizeof(opt));
	opt.ca_file = cert;
	err_clear(&e);
	assert_int_equal(dirc_new(s->url, &opt, &c, &e), 0);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	dirc_free(c);
	/* Without the certificate pinned as CA, the handshake fails. */
	assert_int_equal(dirc_new(s->url, NULL, &c, &e), 0);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), ERR_NETWORK);
	dirc_free(c);
	/* Plain HTTP to the TLS port gets no answer. */
	snprintf(plain, sizeof(plain), "http://%s", s->url + 8);
	assert_int_equal(dirc_new(plain, NULL, &c, &e), 0);
	err_clear(&e);
	assert_int_not_equal(dirc_info(c, &info, &e), 0);
	dirc_free(c);
	assert_int_equal(server_stop(s), 0);
}

/* Runs the binary with args; its standard output in out. */
static int
run(const char *args, const char *input, char *out, size_t out_len)
{
	char cmd[4096];
	FILE *p;
	size_t n = 0;
	int status;

	snprintf(cmd, sizeof(cmd), "%s'%s' %s 2>&1", input != NULL ?
	    input : "", binary(), args);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (n + 1 < out_len && fgets(out + n, (int)(out_len - n), p) != NULL)
		n = strlen(out);
	out[n] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_cli(void **state)
{
	struct server *s = *state;
	struct dirc_info info;
	struct dirc *c;
	struct tdev d;
	struct err_ctx e;
	char args[1200], out[8192], pwfile[600], input[700];
	FILE *f;

	server_start(s, "http", NULL);
	c = client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	/* account add from a file and from standard input. */
	snprintf(pwfile, sizeof(pwfile), "%s/pw", s->dir);
	assert_non_null(f = fopen(pwfile, "w"));
	fprintf(f, "%s\n", PW);
	fclose(f);
	snprintf(args, sizeof(args), "account add " ALICE " --db '%s' "
	    "--scrypt-cost 10 --password-file '%s'", s->db, pwfile);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 0);
	snprintf(args, sizeof(args), "account add " BOB " --db '%s' "
	    "--scrypt-cost 10", s->db);
	snprintf(input, sizeof(input), "echo 'bobs password' | ");
	assert_int_equal(run(args, input, out, sizeof(out)), 0);
	/* Refusals: a bad name, a taken name, a short password. */
	snprintf(args, sizeof(args), "account add Alice --db '%s' "
	    "--password-file '%s'", s->db, pwfile);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "account name"));
	snprintf(args, sizeof(args), "account add " ALICE " --db '%s' "
	    "--scrypt-cost 10 --password-file '%s'", s->db, pwfile);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "already exists"));
	snprintf(args, sizeof(args), "account add carol --db '%s' "
	    "--scrypt-cost 10", s->db);
	assert_int_equal(run(args, "echo short | ", out, sizeof(out)), 1);
	/* The running server sees the accounts the tool made. */
	assert_int_equal(tdev_make(&d, ALICE, "laptop", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &d.rec, NULL, &e), 0);
	snprintf(args, sizeof(args), "account list --db '%s'", s->db);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ALICE));
	assert_non_null(strstr(out, BOB));
	assert_null(strstr(out, "carol"));
	snprintf(args, sizeof(args), "account show " ALICE " --db '%s'",
	    s->db);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "'laptop'"));
	assert_non_null(strstr(out, d.rec.device));
	assert_non_null(strstr(out, "add"));
	snprintf(args, sizeof(args), "account show nobody --db '%s'", s->db);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "does not exist"));
	/* key: the same directory id the server announces. */
	snprintf(args, sizeof(args), "key --db '%s'", s->db);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, info.directory_id));
	/* Usage errors. */
	assert_int_equal(run("", NULL, out, sizeof(out)), 2);
	assert_int_equal(run("serve", NULL, out, sizeof(out)), 2);
	assert_int_equal(run("frobnicate", NULL, out, sizeof(out)), 2);
	snprintf(args, sizeof(args), "serve --db '%s/other.db' --listen "
	    "nowhere", s->dir);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "ADDR:PORT"));
	assert_int_equal(run("--help", NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "--signing-key"));
	dirc_free(c);
	tdev_clear(&d);
	assert_int_equal(server_stop(s), 0);
}

/*
 * The head key's token, as pkcs11-tool (not devid) lists it: exactly one
 * key pair, the signing key "head-sig", and no encryption key -- the
 * directory never asks for one.
 */
static void
assert_token_holds_sig_only(const char *tool, const char *module,
    const char *label)
{
	char cmd[2048], out[8192];
	const char *at;
	size_t len = 0, n;
	int privs = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' --module '%s' --token-label '%s' "
	    "--login --pin 1234 -O 2>&1", tool, module, label);
	assert_non_null(p = popen(cmd, "r"));
	while (len < sizeof(out) - 1 &&
	    (n = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
		len += n;
	out[len] = '\0';
	if (pclose(p) != 0)
		fail_msg("pkcs11-tool -O failed: %s", out);
	for (at = out; (at = strstr(at, "Private Key Object")) != NULL; at++)
		privs++;
	if (privs != 1 || strstr(out, "head-sig") == NULL ||
	    strstr(out, "-enc") != NULL)
		fail_msg("token '%s' should hold the signing key alone:\n%s",
		    label, out);
}

/*
 * The head key in a SoftHSM2 token, through the PKCS#11 backend: only
 * the signing key is created in the token, and it stays the only key.
 */
static void
test_pkcs11_head_key(void **state)
{
	struct server *s = *state;
	const char *util = getenv("SOFTHSM2_UTIL");
	const char *module = getenv("SOFTHSM2_MODULE");
	const char *tool = getenv("PKCS11_TOOL");
	const char *top = getenv("top_srcdir");
	char cmd[2048], line[1024], uri[1024], args[1200], out[4096];
	const char *extra[3];
	struct dirc_info info;
	struct dirc *c;
	struct tdev d;
	struct acctlog_head head;
	EVP_PKEY *pub = NULL;
	struct err_ctx e;
	FILE *p;

	/* A missing tool fails the test: CI must have SoftHSM2. */
	if (util == NULL || *util == '\0' || module == NULL ||
	    *module == '\0' || tool == NULL || *tool == '\0' || top == NULL)
		fail_msg("SOFTHSM2_UTIL, SOFTHSM2_MODULE, PKCS11_TOOL and "
		    "top_srcdir must be set (install softhsm2 and opensc, and "
		    "run through make check)");
	snprintf(cmd, sizeof(cmd), "'%s/swtpm-ci/softhsm-token' '%s' dirkey "
	    "1234 5678", top, s->dir);
	assert_non_null(p = popen(cmd, "r"));
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	line[strcspn(line, "\n")] = '\0';
	assert_int_equal(strncmp(line, "SOFTHSM2_CONF=", 14), 0);
	/* The server and the tool inherit it. */
	assert_int_equal(setenv("SOFTHSM2_CONF", line + 14, 1), 0);
	snprintf(uri, sizeof(uri), "pkcs11:token=dirkey;object=head"
	    "?module-path=%s&pin-value=1234", module);
	/* `key` creates the key in the token and prints its id; no
	 * encryption key is made beside it. */
	snprintf(args, sizeof(args), "key --signing-key '%s'", uri);
	assert_int_equal(run(args, NULL, out, sizeof(out)), 0);
	assert_token_holds_sig_only(tool, module, "dirkey");
	extra[0] = "--signing-key";
	extra[1] = uri;
	extra[2] = NULL;
	server_start(s, "http", extra);
	c = client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_non_null(strstr(out, info.directory_id));
	assert_int_equal(crypto_spki_import(info.head_key, info.head_key_len,
	    &pub, &e), 0);
	/* A head signed in the token verifies under the announced key. */
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	assert_int_equal(tdev_make(&d, ALICE, "laptop", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &d.rec, &head, &e), 0);
	assert_int_equal(acctlog_head_verify(&head, pub, info.directory_id,
	    &e), 0);
	assert_int_equal(server_stop(s), 0);
	/* The same key again on the next start. */
	server_start(s, "http", extra);
	dirc_free(c);
	c = client(s);
	{
		struct dirc_info again;

		assert_int_equal(dirc_info(c, &again, &e), 0);
		assert_string_equal(again.directory_id, info.directory_id);
	}
	assert_int_equal(server_stop(s), 0);
	assert_token_holds_sig_only(tool, module, "dirkey");
	unsetenv("SOFTHSM2_CONF");
	EVP_PKEY_free(pub);
	dirc_free(c);
	tdev_clear(&d);
}

static void
test_unreachable(void **state)
{
	struct server *s = *state;
	struct dirc *c = NULL;
	struct dirc_info info;
	struct err_ctx e;
	char url[200];

	/* A port that was just served and is closed now. */
	server_start(s, "http", NULL);
	snprintf(url, sizeof(url), "%s", s->url);
	assert_int_equal(server_stop(s), 0);
	err_clear(&e);
	assert_int_equal(dirc_new(url, NULL, &c, &e), 0);
	assert_int_equal(dirc_info(c, &info, &e), ERR_NETWORK);
	assert_non_null(strstr(err_msg(&e), "is unreachable"));
	dirc_free(c);
	err_clear(&e);
	assert_int_equal(dirc_new("ftp://example.org", NULL, &c, &e),
	    ERR_CONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_end_to_end, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_sigterm_answers_long_polls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pkcs11_head_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unreachable, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
