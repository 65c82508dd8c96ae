/*
 * test_directory.c - the real devid-directory binary over HTTP.
 *
 * Each test starts $top_builddir/directory/devid-directory (through
 * dir-server-fixture) on a free loopback port (port 0; the server writes
 * the bound address to a ready file) with a fresh database in a temporary
 * directory, talks to it with common/dirclient (libcurl), and stops it
 * with SIGTERM, which must drain and exit 0 -- under the sanitizers that
 * also means without leaks.  The server dies with the test process
 * (PR_SET_PDEATHSIG) if the test crashes, and the temporary directory is
 * removed on every path.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"
#include "dir-server-fixture.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define PW "alice's password"
#define BOB_PW "bob's password!"

static int
setup(void **state)
{
	return (*state = tsrv_new(TSRV_OPEN_SIGNUP)) != NULL ? 0 : -1;
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
	w->start_ms = tmono_ms();
	w->rc = dirc_inbox(w->c, w->wait_s, 0, &w->in, &e);
	w->end_ms = tmono_ms();
	return NULL;
}

static void *
log_waiter(void *arg)
{
	struct waiter *w = arg;
	struct err_ctx e;

	err_clear(&e);
	w->start_ms = tmono_ms();
	w->rc = dirc_get_log(w->c, w->account, w->since, w->wait_s, &w->resp,
	    &e);
	w->end_ms = tmono_ms();
	return NULL;
}

static void
test_end_to_end(void **state)
{
	struct tsrv *s = *state;
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

	tsrv_start(s, NULL);
	c = tsrv_client(s);
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
	cl = tsrv_login(s, info.directory_id, &laptop);
	cp = tsrv_login(s, info.directory_id, &phone);
	ct = tsrv_login(s, info.directory_id, &tablet);
	cd = tsrv_login(s, info.directory_id, &desk);

	/* The laptop's watcher verifies alice's log; the desktop pins
	 * bob's. */
	assert_int_equal(acctlog_state_init(&alice, ALICE, info.directory_id,
	    &e), 0);
	assert_int_equal(acctlog_state_init(&bob, BOB, info.directory_id,
	    &e), 0);
	tsrv_watch(cl, &alice, dir_pub);
	tsrv_watch(cl, &bob, dir_pub);
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
	post_start = tmono_ms();
	assert_int_equal(dirc_post_message(cl, json, len, &queued, &e), 0);
	post_end = tmono_ms();
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
	tsrv_watch(cl, &alice, dir_pub);
	assert_int_equal(alice.n_devices, 4);

	/* The laptop revokes the tablet; the log proves it, the tablet's
	 * session ends, and it is no longer a valid recipient. */
	now = (uint64_t)time(NULL);
	assert_int_equal(tdev_sign_revoke(&laptop, ALICE, tablet.rec.device,
	    now, sig), 0);
	assert_int_equal(dirc_revoke(cl, ALICE, tablet.rec.device, now, sig,
	    NULL, &e), 0);
	tsrv_watch(cl, &alice, dir_pub);
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
	assert_int_equal(tsrv_stop(s), 0);
	snprintf(wal, sizeof(wal), "%s-wal", s->db);
	assert_int_equal(stat(wal, &sb), -1);
}

static void
test_sigterm_answers_long_polls(void **state)
{
	struct tsrv *s = *state;
	struct dirc_info info;
	struct dirc *c;
	struct tdev d;
	struct waiter w;
	struct err_ctx e;
	pthread_t th;

	tsrv_start(s, NULL);
	c = tsrv_client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	assert_int_equal(dirc_create_account(c, ALICE, PW, &e), 0);
	assert_int_equal(tdev_make(&d, ALICE, "laptop", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &d.rec, NULL, &e), 0);
	dirc_free(c);
	c = tsrv_login(s, info.directory_id, &d);
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
	/* ...and the server exits 0 of its own accord. */
	assert_int_equal(tsrv_wait(s), 0);
	dirc_free(c);
	tdev_clear(&d);
}

static void
test_tls(void **state)
{
	struct tsrv *s = *state;
	struct tsrv_tls tls;
	struct dirc_options opt;
	struct dirc_info info;
	struct dirc *c = NULL;
	struct err_ctx e;
	char plain[200];

	tsrv_tls_make(s, &tls);
	tsrv_start_on(s, NULL, "https", tls.args);
	memset(&opt, 0, sizeof(opt));
	opt.ca_file = tls.cert;
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
	assert_int_equal(tsrv_stop(s), 0);
}

static void
test_cli(void **state)
{
	struct tsrv *s = *state;
	struct dirc_info info;
	struct dirc *c;
	struct tdev d;
	struct err_ctx e;
	char out[8192], pwfile[600], other_db[600];
	const char *add_alice[] = { "account", "add", ALICE, "--db", s->db,
		"--scrypt-cost", "10", "--password-file", pwfile, NULL };
	const char *add_bob[] = { "account", "add", BOB, "--db", s->db,
		"--scrypt-cost", "10", NULL };
	const char *add_bad_name[] = { "account", "add", "Alice", "--db",
		s->db, "--password-file", pwfile, NULL };
	const char *add_carol[] = { "account", "add", "carol", "--db", s->db,
		"--scrypt-cost", "10", NULL };
	const char *list[] = { "account", "list", "--db", s->db, NULL };
	const char *show_alice[] = { "account", "show", ALICE, "--db", s->db,
		NULL };
	const char *show_nobody[] = { "account", "show", "nobody", "--db",
		s->db, NULL };
	const char *key[] = { "key", "--db", s->db, NULL };
	const char *none[] = { NULL };
	const char *serve[] = { "serve", NULL };
	const char *frobnicate[] = { "frobnicate", NULL };
	const char *bad_listen[] = { "serve", "--db", other_db, "--listen",
		"nowhere", NULL };
	const char *help[] = { "--help", NULL };
	FILE *f;

	tsrv_start(s, NULL);
	c = tsrv_client(s);
	err_clear(&e);
	assert_int_equal(dirc_info(c, &info, &e), 0);
	/* account add from a file and from standard input. */
	snprintf(pwfile, sizeof(pwfile), "%s/pw", s->dir);
	assert_non_null(f = fopen(pwfile, "w"));
	fprintf(f, "%s\n", PW);
	fclose(f);
	assert_int_equal(chmod(pwfile, 0600), 0);	/* others: refused */
	assert_int_equal(tsrv_run(s, add_alice, NULL, 0, out, sizeof(out)), 0);
	assert_int_equal(tsrv_run(s, add_bob, "bobs password\n", 0, out,
	    sizeof(out)), 0);
	/* Refusals: a bad name, a taken name, a short password. */
	assert_int_equal(tsrv_run(s, add_bad_name, NULL, 0, out, sizeof(out)),
	    2);
	assert_non_null(strstr(out, "account name"));
	assert_int_equal(tsrv_run(s, add_alice, NULL, 0, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "already exists"));
	assert_int_equal(tsrv_run(s, add_carol, "short\n", 0, out,
	    sizeof(out)), 1);
	/* The running server sees the accounts the tool made. */
	assert_int_equal(tdev_make(&d, ALICE, "laptop", (uint64_t)time(NULL)),
	    0);
	assert_int_equal(dirc_register_device(c, PW, &d.rec, NULL, &e), 0);
	assert_int_equal(tsrv_run(s, list, NULL, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, ALICE));
	assert_non_null(strstr(out, BOB));
	assert_null(strstr(out, "carol"));
	assert_int_equal(tsrv_run(s, show_alice, NULL, 0, out, sizeof(out)),
	    0);
	assert_non_null(strstr(out, "'laptop'"));
	assert_non_null(strstr(out, d.rec.device));
	assert_non_null(strstr(out, "add"));
	assert_int_equal(tsrv_run(s, show_nobody, NULL, 0, out, sizeof(out)),
	    1);
	assert_non_null(strstr(out, "does not exist"));
	/* key: the same directory id the server announces. */
	assert_int_equal(tsrv_run(s, key, NULL, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, info.directory_id));
	/* Usage errors. */
	assert_int_equal(tsrv_run(s, none, NULL, 0, out, sizeof(out)), 2);
	assert_int_equal(tsrv_run(s, serve, NULL, 0, out, sizeof(out)), 2);
	assert_int_equal(tsrv_run(s, frobnicate, NULL, 0, out, sizeof(out)),
	    2);
	snprintf(other_db, sizeof(other_db), "%s/other.db", s->dir);
	assert_int_equal(tsrv_run(s, bad_listen, NULL, 0, out, sizeof(out)),
	    2);
	assert_non_null(strstr(out, "ADDR:PORT"));
	assert_int_equal(tsrv_run(s, help, NULL, 0, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "--signing-key"));
	dirc_free(c);
	tdev_clear(&d);
	assert_int_equal(tsrv_stop(s), 0);
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
	struct tsrv *s = *state;
	const char *util = getenv("SOFTHSM2_UTIL");
	const char *module = getenv("SOFTHSM2_MODULE");
	const char *tool = getenv("PKCS11_TOOL");
	const char *top = getenv("top_srcdir");
	char cmd[2048], line[1024], uri[1024], out[4096];
	const char *keycmd[] = { "key", "--signing-key", uri, NULL };
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
	assert_int_equal(tsrv_run(s, keycmd, NULL, 0, out, sizeof(out)), 0);
	assert_token_holds_sig_only(tool, module, "dirkey");
	extra[0] = "--signing-key";
	extra[1] = uri;
	extra[2] = NULL;
	tsrv_start(s, extra);
	c = tsrv_client(s);
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
	assert_int_equal(tsrv_stop(s), 0);
	/* The same key again on the next start. */
	tsrv_restart(s);
	dirc_free(c);
	c = tsrv_client(s);
	{
		struct dirc_info again;

		assert_int_equal(dirc_info(c, &again, &e), 0);
		assert_string_equal(again.directory_id, info.directory_id);
	}
	assert_int_equal(tsrv_stop(s), 0);
	assert_token_holds_sig_only(tool, module, "dirkey");
	unsetenv("SOFTHSM2_CONF");
	EVP_PKEY_free(pub);
	dirc_free(c);
	tdev_clear(&d);
}

static void
test_unreachable(void **state)
{
	struct tsrv *s = *state;
	struct dirc *c = NULL;
	struct dirc_info info;
	struct err_ctx e;
	char url[200];

	/* A port that was just served and is closed now. */
	tsrv_start(s, NULL);
	snprintf(url, sizeof(url), "%s", s->url);
	assert_int_equal(tsrv_stop(s), 0);
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
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(
		    test_sigterm_answers_long_polls, setup, tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_pkcs11_head_key, setup,
		    tsrv_teardown),
		cmocka_unit_test_setup_teardown(test_unreachable, setup,
		    tsrv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
