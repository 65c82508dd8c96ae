/*
 * test_dir_pg_wake.c - long-polls woken across two devid-directory
 * processes on one PostgreSQL database (LISTEN/NOTIFY).
 *
 * Run by tests/integration/test-dir-pg-instances.sh, which starts a
 * throw-away cluster and the two instances and hands over:
 *   DEVID_TEST_DIR_A, DEVID_TEST_DIR_B  the instances' base URLs;
 *   DEVID_TEST_LOG_B                   instance B's log file;
 *   DEVID_TEST_PG_RESTART              a command that stops and starts
 *                                      PostgreSQL again.
 *
 * A device registered through A wakes a log long-poll waiting on B; a
 * message posted through A wakes an inbox long-poll waiting on B; and a
 * long-poll that waits on B across a restart of PostgreSQL is still
 * woken by a registration through A once B listens again; a revocation
 * through A ends the revoked device's inbox long-poll on B with a
 * refusal.  A long-poll
 * that was not woken would return only when its wait (30 or 60 s) ends:
 * the test asks for an answer within a few seconds and prints the time
 * each wake-up took (the 100 ms the directory aims at is measured by
 * tests/bench, not asserted on shared test machines).
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "acctlog.h"
#include "devrec.h"
#include "dirclient.h"
#include "errors.h"
#include "dir-test-util.h"

#define ALICE "alice@example.org"
#define PW "alice's password"
/* An answer within this long was woken, not timed out (waits are 30 s
 * and more). */
#define WOKEN_MS 5000.0

static const char *url_a, *url_b;

static struct dirc *
client(const char *url)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(url, NULL, &c, &e) != 0)
		fail_msg("client of %s: %s", url, err_msg(&e));
	return c;
}

static struct dirc *
login(const char *url, const char *dir_id, struct tdev *d)
{
	struct dirc *c = client(url);
	struct err_ctx e;

	err_clear(&e);
	if (dirc_login(c, dir_id, d->rec.device, tdev_sign, d, NULL, &e) != 0)
		fail_msg("login of %.16s at %s: %s", d->rec.device, url,
		    err_msg(&e));
	return c;
}

/* A long-poll on a thread of its own. */
struct waiter {
	struct dirc *c;
	unsigned int wait_s;
	const char *account;            /* log; NULL: inbox */
	uint64_t since;
	int rc;
	double start_ms, end_ms;
	struct acctlog_response *resp;
	struct dirc_inbox *in;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct err_ctx e;

	err_clear(&e);
	w->start_ms = tmono_ms();
	if (w->account != NULL)
		w->rc = dirc_get_log(w->c, w->account, w->since, w->wait_s,
		    &w->resp, &e);
	else
		w->rc = dirc_inbox(w->c, w->wait_s, 0, &w->in, &e);
	w->end_ms = tmono_ms();
	if (w->rc != 0)
		print_message("long-poll: %s\n", err_msg(&e));
	return NULL;
}

/* Starts w and gives it time to reach the server and be suspended. */
static void
waiter_start(struct waiter *w, pthread_t *t)
{
	w->rc = -1;
	assert_int_equal(pthread_create(t, NULL, waiter_main, w), 0);
	tsleep_ms(500);
}

/* How many times B's log says it (re)started listening for changes. */
static int
listens_of_b(void)
{
	const char *path = getenv("DEVID_TEST_LOG_B");
	char line[1024];
	FILE *f;
	int n = 0;

	assert_non_null(path);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, "listening for changes made by other "
		    "instances") != NULL;
	fclose(f);
	return n;
}

static void
register_device(struct dirc *c, struct tdev *d, struct acctlog_head *head,
    double *start_ms, double *end_ms)
{
	struct err_ctx e;

	err_clear(&e);
	*start_ms = tmono_ms();
	if (dirc_register_device(c, PW, &d->rec, head, &e) != 0)
		fail_msg("registering %.16s: %s", d->rec.device, err_msg(&e));
	*end_ms = tmono_ms();
}

static void
test_wake_across_instances(void **state)
{
	static const char *const to[] = { ALICE };
	struct tdev laptop, phone, tablet, card;
	const struct tdev *recips[1];
	struct dirc *ca, *lb, *pb, *la, *cb;
	struct dirc_info info;
	struct acctlog_head head;
	struct waiter w;
	struct err_ctx e;
	pthread_t t;
	const char *restart = getenv("DEVID_TEST_PG_RESTART");
	char *json = NULL;
	size_t len = 0;
	uint8_t sig[64];
	uint64_t now = (uint64_t)time(NULL), queued = 0;
	double start, end, deadline;
	int listens;

	(void)state;
	assert_non_null(restart);
	ca = client(url_a);
	err_clear(&e);
	assert_int_equal(dirc_info(ca, &info, &e), 0);
	assert_int_equal(dirc_create_account(ca, ALICE, PW, &e), 0);
	assert_int_equal(tdev_make(&laptop, ALICE, "laptop", now), 0);
	assert_int_equal(tdev_make(&phone, ALICE, "phone", now), 0);
	assert_int_equal(tdev_make(&tablet, ALICE, "tablet", now), 0);
	assert_int_equal(tdev_make(&card, ALICE, "card", now), 0);
	register_device(ca, &laptop, NULL, &start, &end);
	lb = login(url_b, info.directory_id, &laptop);

	/* A log long-poll on B, a device added through A. */
	memset(&w, 0, sizeof(w));
	w.c = lb;
	w.wait_s = 30;
	w.account = ALICE;
	w.since = 1;
	waiter_start(&w, &t);
	register_device(ca, &phone, &head, &start, &end);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.resp->n_events, 1);
	assert_int_equal(w.resp->events[0].seq, 2);
	assert_true(w.start_ms < start);
	print_message("log long-poll on B woken %.1f ms after the "
	    "registration through A was answered (%.1f ms after it was "
	    "sent)\n", w.end_ms - end, w.end_ms - start);
	assert_true(w.end_ms - start < WOKEN_MS);
	acctlog_response_free(w.resp);

	/* An inbox long-poll on B, a message posted through A. */
	pb = login(url_b, info.directory_id, &phone);
	la = login(url_a, info.directory_id, &laptop);
	recips[0] = &phone;
	assert_int_equal(tenv_make(&laptop, to, 1, &head, 1, recips, 1, &json,
	    &len), 0);
	memset(&w, 0, sizeof(w));
	w.c = pb;
	w.wait_s = 30;
	waiter_start(&w, &t);
	start = tmono_ms();
	assert_int_equal(dirc_post_message(la, json, len, &queued, &e), 0);
	end = tmono_ms();
	assert_int_equal(queued, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.in->n_items, 1);
	assert_int_equal(tenv_open(&phone, &laptop, w.in->items[0].envelope,
	    w.in->items[0].envelope_len), 0);
	print_message("inbox long-poll on B woken %.1f ms after the post "
	    "through A was answered (%.1f ms after it was sent)\n",
	    w.end_ms - end, w.end_ms - start);
	assert_true(w.end_ms - start < WOKEN_MS);
	dirc_inbox_free(w.in);
	free(json);

	/*
	 * PostgreSQL restarts while a log long-poll waits on B: B loses
	 * its listening connection, connects again (and wakes everyone to
	 * read again: nothing new, so the long-poll waits on), and then
	 * hears of a registration through A.
	 */
	listens = listens_of_b();
	assert_true(listens >= 1);
	memset(&w, 0, sizeof(w));
	w.c = lb;
	w.wait_s = 60;
	w.account = ALICE;
	w.since = 2;
	waiter_start(&w, &t);
	assert_int_equal(system(restart), 0);
	deadline = tmono_ms() + 30000;
	while (listens_of_b() <= listens) {
		if (tmono_ms() > deadline)
			fail_msg("B did not listen again after the restart");
		tsleep_ms(50);
	}
	/* A answers again (its pool reconnects on the next request). */
	while (dirc_health(ca, &e) != 0) {
		if (tmono_ms() > deadline)
			fail_msg("A did not recover: %s", err_msg(&e));
		err_clear(&e);
		tsleep_ms(100);
	}
	register_device(ca, &tablet, NULL, &start, &end);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.resp->n_events, 1);
	assert_int_equal(w.resp->events[0].seq, 3);
	print_message("after the restart, a log long-poll on B woken %.1f ms "
	    "after the registration through A was answered (%.1f ms after "
	    "it was sent)\n", w.end_ms - end, w.end_ms - start);
	assert_true(w.end_ms - start < WOKEN_MS);
	acctlog_response_free(w.resp);

	/* And a new one, too. */
	memset(&w, 0, sizeof(w));
	w.c = lb;
	w.wait_s = 30;
	w.account = ALICE;
	w.since = 3;
	waiter_start(&w, &t);
	register_device(ca, &card, NULL, &start, &end);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.resp->n_events, 1);
	assert_int_equal(w.resp->events[0].seq, 4);
	assert_true(w.end_ms - start < WOKEN_MS);
	acctlog_response_free(w.resp);

	/* A device revoked through A: its inbox long-poll on B ends at
	 * once, refused (B's cached session went with it). */
	cb = login(url_b, info.directory_id, &card);
	memset(&w, 0, sizeof(w));
	w.c = cb;
	w.wait_s = 30;
	waiter_start(&w, &t);
	now = (uint64_t)time(NULL);
	assert_int_equal(tdev_sign_revoke(&laptop, ALICE, card.rec.device,
	    now, sig), 0);
	start = tmono_ms();
	assert_int_equal(dirc_revoke(la, ALICE, card.rec.device, now, sig,
	    NULL, &e), 0);
	end = tmono_ms();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, ERR_DENIED);
	print_message("inbox long-poll of a device on B ended %.1f ms after "
	    "its revocation through A was answered (%.1f ms after it was "
	    "sent)\n", w.end_ms - end, w.end_ms - start);
	assert_true(w.end_ms - start < WOKEN_MS);

	dirc_free(cb);
	dirc_free(ca);
	dirc_free(lb);
	dirc_free(pb);
	dirc_free(la);
	tdev_clear(&laptop);
	tdev_clear(&phone);
	tdev_clear(&tablet);
	tdev_clear(&card);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_across_instances),
	};

	url_a = getenv("DEVID_TEST_DIR_A");
	url_b = getenv("DEVID_TEST_DIR_B");
	if (url_a == NULL || url_b == NULL) {
		fprintf(stderr, "test_dir_pg_wake: run it through "
		    "tests/integration/test-dir-pg-instances.sh\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
